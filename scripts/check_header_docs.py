#!/usr/bin/env python3
"""check_header_docs.py — every public item of the C header is documented and namespaced.

Fails (exit 1), listing each offender as header:line, when in the header
  * a function prototype, #define, typedef, struct/enum or struct field has no doc
    comment (/** ... */ or /// ...) right before it (blank lines allowed between),
    or a trailing ///< or /**< on its own line;
  * a function, type or macro is outside the library's namespace: gh_* for functions
    and types, GH_* for macros (the include guard GREENHUB_H excepted).
Forward declarations of other headers' structs (`struct addrinfo;`) are not items.
A handle struct whose only field is `uint64_t id;` is documented at the struct: its
field is opaque and needs no comment of its own.

Usage: scripts/check_header_docs.py [HEADER]   (default: include/greenhub.h)
The check reads cbindgen's output layout (one declaration per line, fields one per
line); it is not a C parser.
"""
import os
import re
import sys

GUARD = "GREENHUB_H"


def items(lines):
    """Yield (line_no, kind, name, documented) for each public item of the header."""
    doc_pending = False  # a doc comment ended and no item has taken it yet
    in_comment = False  # inside a /* ... */ block
    comment_is_doc = False
    depth = 0  # brace depth of struct/enum bodies (extern "C" braces excluded)
    struct_start = None  # (line_no, name, documented, fields[]) of the open struct
    stmt = ""  # a declaration continued over several lines
    stmt_line = 0
    for no, raw in enumerate(lines, 1):
        line = raw.strip()
        if in_comment:
            if "*/" in line:
                in_comment = False
                doc_pending = comment_is_doc
            continue
        if not line:
            continue
        if line.startswith("/**") or line.startswith("/*!"):
            if "*/" not in line[3:]:
                in_comment, comment_is_doc = True, True
            elif line.startswith("/**<"):
                # trailing doc of the previous field, on its own line
                if struct_start and struct_start[3]:
                    struct_start[3][-1][3] = True
            else:
                doc_pending = True
            continue
        if line.startswith("/*"):
            if "*/" not in line[2:]:
                in_comment, comment_is_doc = True, False
            continue
        if line.startswith("///<"):
            if struct_start and struct_start[3]:
                struct_start[3][-1][3] = True
            continue
        if line.startswith("///") or line.startswith("//!"):
            doc_pending = True
            continue
        if line.startswith("//"):
            continue
        if line.startswith("#"):
            m = re.match(r"#\s*define\s+(\w+)", line)
            if m and m.group(1) != GUARD:
                yield no, "macro", m.group(1), doc_pending
            doc_pending = False
            continue
        if line in ('extern "C" {', "}") and depth == 0:
            continue
        # struct / enum bodies
        if depth > 0:
            if line.startswith("}"):
                depth -= 1
                if depth == 0 and struct_start:
                    s_no, s_name, s_doc, fields = struct_start
                    yield s_no, "type", s_name, s_doc
                    handle = len(fields) == 1 and fields[0][2] == "id"
                    for f_no, f_kind, f_name, f_doc in fields:
                        yield f_no, f_kind, s_name + "." + f_name, f_doc or handle
                    struct_start = None
                doc_pending = False
                continue
            m = re.match(r"(?:.*?[\s\*])?(\w+)\s*(?:\[[^\]]*\])?\s*[,;=]", line)
            if m and struct_start is not None:
                doc = doc_pending or "///<" in line or "/**<" in line
                struct_start[3].append([no, "field", m.group(1), doc])
            doc_pending = False
            continue
        m = re.match(r"(?:typedef\s+)?(struct|enum|union)\s+(\w+)\s*\{", line)
        if m or re.match(r"(?:typedef\s+)?(struct|enum|union)\s*\{", line):
            name = m.group(2) if m else "(anonymous)"
            body = line.split("{", 1)[1]
            if "}" in body:  # the whole struct on one line: its fields have no docs
                fields = [f.split()[-1].strip("*") for f in body.split("}")[0].split(";") if f.strip()]
                yield no, "type", name, doc_pending
                for f in fields:
                    yield no, "field", name + "." + f, fields == ["id"]
                doc_pending = False
                continue
            depth = 1
            struct_start = (no, name, doc_pending, [])
            doc_pending = False
            continue
        # other declarations: gather up to the ';'
        if not stmt:
            stmt_line = no
        stmt += " " + line
        if not stmt.rstrip().endswith(";"):
            continue
        decl, stmt = stmt.strip(), ""
        if re.fullmatch(r"(struct|union|enum)\s+\w+\s*;", decl):
            doc_pending = False  # a forward declaration (struct addrinfo;): not an item
            continue
        fp = re.match(r"typedef\s.*\(\s*\*\s*(\w+)\s*\)\s*\(", decl)
        if fp:
            yield stmt_line, "type", fp.group(1), doc_pending
        elif decl.startswith("typedef"):
            m = re.search(r"(\w+)\s*;$", decl)
            yield stmt_line, "type", m.group(1) if m else decl, doc_pending
        else:
            m = re.search(r"(\w+)\s*\([^()]*(?:\([^()]*\)[^()]*)*\)\s*;$", decl)
            if m:
                yield stmt_line, "function", m.group(1), doc_pending
            else:
                yield stmt_line, "declaration", decl, doc_pending
        doc_pending = False


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    header = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "include", "greenhub.h")
    with open(header, encoding="utf-8") as f:
        lines = f.read().splitlines()
    counts, undocumented, outside = {}, [], []
    for no, kind, name, documented in items(lines):
        counts[kind] = counts.get(kind, 0) + 1
        if not documented:
            undocumented.append(f"{header}:{no}: {kind} {name}")
        base = name.split(".")[0]
        if kind == "macro" and not base.startswith("GH_"):
            outside.append(f"{header}:{no}: macro {name} (not GH_*)")
        elif kind in ("function", "type") and not base.startswith("gh_"):
            outside.append(f"{header}:{no}: {kind} {name} (not gh_*)")
    summary = ", ".join(f"{n} {k}s" for k, n in sorted(counts.items()))
    if not counts.get("function"):
        print(f"check_header_docs: no functions found in {header}", file=sys.stderr)
        return 1
    for line in undocumented:
        print(f"undocumented: {line}")
    for line in outside:
        print(f"outside the gh_/GH_ namespace: {line}")
    if undocumented or outside:
        print(f"check_header_docs: FAILED — {len(undocumented)} undocumented, "
              f"{len(outside)} outside the namespace (checked {summary})")
        return 1
    print(f"check_header_docs: ok — {summary}, all documented and namespaced")
    return 0


if __name__ == "__main__":
    sys.exit(main())

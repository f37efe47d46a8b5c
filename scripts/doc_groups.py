#!/usr/bin/env python3
"""doc_groups.py — the C API reference by concept: copies of the public headers with
doxygen groups added, for scripts/docs.sh.

The headers are generated (cbindgen, from src/ffi/*.rs) and their doc comments belong to
the Rust sources, so the grouping is done here instead, on a copy: each public item of
include/greenhub.h (and include/greenhub_patch.h) is assigned a group by the table
GROUPS below — an exact name first, else the longest matching name prefix — and the
copy wraps each run of consecutive items of one group in
`/** \\addtogroup NAME @{ */ ... /** @} */`. The groups themselves (title, the paragraph
on the concept, its example) are defined, in the reader's order, in docs/reference.dox.

Fails (exit 1), naming each offender, when
  * a public item (function, macro, type) matches no entry of the table: a new
    function must get a group — usually by its prefix (gh_queue_*, gh_wait_*, gh_write_*
    fall into theirs already), else by a line in GROUPS;
  * a group of the table has no `\\defgroup` in docs/reference.dox, or the reverse;
  * a name entry of the table matches nothing (a renamed function left it stale; a
    prefix-only entry such as gh_fault_ may wait for its first function).

Usage: scripts/doc_groups.py OUTDIR        writes OUTDIR/greenhub.h, OUTDIR/greenhub_patch.h
       scripts/doc_groups.py --list        prints each item with its group (no files)
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # no scripts/__pycache__ from the import below
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from check_header_docs import items  # noqa: E402  (the header's item parser)

HEADERS = ["include/greenhub.h", "include/greenhub_patch.h"]
GROUPS_DOX = "docs/reference.dox"

# (group, [entries]), in the reader's order. An entry "gh_sem" is the name gh_sem and
# the prefix "gh_sem_" (gh_sem_new, …); "gh_wait_" is a prefix only; "gh_read*" is the
# bare prefix "gh_read" (gh_read, gh_readv, …). An exact name wins, else the longest
# prefix: gh_local_address is a server function although gh_local_* are greenlet-locals.
GROUPS = [
    ("conventions", ["GH_OK", "GH_E*", "GH_FOREVER", "gh_strerror", "gh_err_name"]),
    ("hub", ["gh_hub_", "GH_CONTEXT_", "gh_callback_fn"]),
    ("greenlets", ["gh_spawn", "GH_SPAWN", "gh_greenlet", "gh_fn", "gh_current", "gh_main",
                   "gh_join*", "gh_kill", "gh_throw", "gh_switch", "gh_release", "gh_link",
                   "gh_unlink", "GH_STATE_", "gh_local_", "gh_pool"]),
    # gh_wait_any / gh_wait_many (gevent.wait on several objects) and their gh_waitable,
    # GH_WAIT_* kinds: here, not with the fd waits of gh_wait_* (prefix entries, so the
    # table holds before they reach the header)
    ("blocking", ["gh_sleep", "gh_hub_wait", "gh_timeout", "gh_wait_any*", "gh_wait_many*",
                  "gh_waitable*", "GH_WAIT_"]),
    ("io", ["gh_wait_", "gh_read*", "gh_write*", "gh_recv*", "gh_send*", "gh_accept",
            "gh_connect", "gh_close", "gh_waitpid", "gh_poll", "GH_READ", "GH_WRITE"]),
    ("watchers", ["gh_watcher", "gh_io_", "gh_timer_", "gh_prepare_", "gh_check_",
                  "gh_idle_", "gh_async_", "gh_signal_", "gh_child_", "gh_run_callback",
                  "GH_TIMER", "GH_PREPARE", "GH_CHECK", "GH_IDLE", "GH_ASYNC", "GH_SIGNAL",
                  "GH_CHILD"]),
    ("sync", ["gh_event", "gh_result", "gh_sem", "gh_rlock", "gh_cond", "gh_queue",
              "gh_waiter"]),
    ("servers", ["gh_server", "gh_datagram_", "gh_stream", "gh_listen", "GH_LISTEN_",
                 "gh_connect_to", "gh_local_address", "gh_peer_address"]),
    ("threadpool", ["gh_threadpool_", "gh_getaddrinfo", "GH_EAI_"]),
    ("threads", ["gh_hub_call_threadsafe", "gh_hub_run_once", "gh_hub_backend_fd",
                 "gh_hub_backend_timeout"]),
    ("diagnostics", ["gh_monitor_", "gh_block_report", "gh_report_fn", "gh_settrace",
                     "gh_gettrace", "gh_trace_", "GH_TRACE_", "gh_assert_switches_",
                     "gh_switch_token", "gh_format_run_info"]),
    ("backends", ["gh_backend", "GH_BACKEND_", "gh_hub_backend"]),
    ("patch", ["gh_patch_"]),
    ("building", ["GH_VERSION_", "gh_version", "gh_build_info"]),
    # test-only: fault injection (a debug build with --features fault-injection)
    ("testing", ["GH_FAIL_", "gh_debug_", "gh_fault_"]),
]



def prefix(entry):
    """The prefix an entry stands for."""
    if entry.endswith("*"):
        return entry[:-1]
    return entry if entry.endswith("_") else entry + "_"


def group_of(name):
    """(group, entry) for a public name, or (None, None)."""
    best = None
    for group, entries in GROUPS:
        for e in entries:
            if name == e.rstrip("*"):
                return group, e
    for group, entries in GROUPS:
        for e in entries:
            p = prefix(e)
            if name.startswith(p) and (best is None or len(p) > len(best[1])):
                best = (group, e)
    return best or (None, None)


def doc_start(lines, idx):
    """Index of the first line of the doc comment above lines[idx] (idx if none)."""
    j = idx - 1
    while j >= 0 and not lines[j].strip():
        j -= 1
    if j < 0:
        return idx
    s = lines[j].strip()
    if s.startswith("///"):
        while j > 0 and lines[j - 1].strip().startswith("///"):
            j -= 1
        return j
    if s.endswith("*/"):
        while j >= 0 and not lines[j].lstrip().startswith("/*"):
            j -= 1
        if j >= 0 and lines[j].lstrip().startswith(("/**", "/*!")):
            return j
    return idx


def public_items(lines):
    """(line_no, kind, name) of the header's public items, fields excepted."""
    # the parser reads cbindgen's layout: drop attributes (greenhub_patch.h's weak
    # declarations) and the include guard
    plain = [re.sub(r"\s*__attribute__\s*\(\(.*?\)\)", "", l) for l in lines]
    guards = {m.group(1) for l in lines for m in [re.match(r"#ifndef\s+(\w+_H)\b", l)] if m}
    return sorted((no, kind, name) for no, kind, name, _ in items(plain)
                  if kind != "field" and name not in guards)


def grouped(path, used, unassigned):
    """The header's text with addtogroup blocks around each run of one group."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    top = [(no, name) for no, _, name in public_items(lines)]
    opens = {}  # line index -> group opened there (closing the previous one)
    current = None
    for no, name in top:
        group, entry = group_of(name)
        if group is None:
            unassigned.append(f"{os.path.relpath(path, ROOT)}:{no}: {name}")
            continue
        used.add(entry)
        if group != current:
            opens[doc_start(lines, no - 1)] = (group, current)
            current = group
    out = []
    for i, line in enumerate(lines):
        if i in opens:
            group, prev = opens[i]
            if prev is not None:
                out.append("/** @} */")
            out.append(f"/** \\addtogroup {group}\n@{{ */")
        if current is not None and i == max(k for k, l in enumerate(lines) if l.startswith("#endif")):
            out.append("/** @} */")  # before the include guard's #endif
            current = None
        out.append(line)
    return "\n".join(out) + "\n"


def defined_groups():
    with open(os.path.join(ROOT, GROUPS_DOX), encoding="utf-8") as f:
        return re.findall(r"[\\@]defgroup\s+(\w+)", f.read())


def main():
    args = sys.argv[1:]
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print(__doc__.split("Usage:")[1].strip(), file=sys.stderr)
        return 2
    used, unassigned, texts = set(), [], {}
    for h in HEADERS:
        texts[h] = grouped(os.path.join(ROOT, h), used, unassigned)
    errors = [f"in no group: {u} (add its name or prefix to GROUPS in scripts/doc_groups.py)"
              for u in unassigned]
    table = [g for g, _ in GROUPS]
    dox = defined_groups()
    for g in table:
        if g not in dox:
            errors.append(f"group {g} has no \\defgroup in {GROUPS_DOX}")
    for g in dox:
        if g not in table:
            errors.append(f"{GROUPS_DOX} defines group {g}, which GROUPS does not list")
    if dox and [g for g in dox if g in table] != [g for g in table if g in dox]:
        errors.append(f"{GROUPS_DOX} defines the groups in another order than GROUPS: {dox}")
    for g, entries in GROUPS:
        for e in entries:
            if e not in used and not e.endswith(("_", "*")):
                errors.append(f"stale entry in GROUPS: {g}: {e} matches no public item")
    if errors:
        for e in errors:
            print(f"doc_groups: {e}", file=sys.stderr)
        print(f"doc_groups: FAILED — {len(errors)} problem(s)", file=sys.stderr)
        return 1
    if args[0] == "--list":
        for h in HEADERS:
            with open(os.path.join(ROOT, h), encoding="utf-8") as f:
                lines = f.read().splitlines()
            for no, kind, name in public_items(lines):
                print(f"{group_of(name)[0]:12} {kind:9} {name}")
        return 0
    os.makedirs(args[0], exist_ok=True)
    for h, text in texts.items():
        with open(os.path.join(args[0], os.path.basename(h)), "w", encoding="utf-8") as f:
            f.write(text)
    print(f"doc_groups: ok — {len(table)} groups, every public item in one "
          f"({', '.join(os.path.basename(h) for h in HEADERS)} -> {args[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

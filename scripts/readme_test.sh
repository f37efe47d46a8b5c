#!/usr/bin/env bash
# The README's text, run: what a newcomer copies from README.md works as written, and
# the samples it shows are what the programs print.
#
#   first program   the ```c block of "### A first program" saved as first.c at the top of
#                   the tree, then each ```sh block of that section run as written (bash -e,
#                   from the top of the tree, in an environment without LD_LIBRARY_PATH,
#                   PKG_CONFIG_PATH or CARGO_TARGET_DIR; HOME is a temporary directory, so
#                   the README's $HOME/.local prefix is too): each block must end printing
#                   "joinall: GH_OK, 3 done". The CMake block's install must be stripped,
#                   and its size the one the README states (within 20%).
#   monitor sample  the ```text block after "./target/c/examples/blocking --monitor" (in the
#                   README, and in the guide's docs/guide/6-monitor.md) against
#                   a run of that program: the same lines (timestamps, thread ids, addresses
#                   and durations aside; native stack frames, which move with the compiler,
#                   aside), so the spawn sites (examples-c/blocking.c:LINE) cannot drift.
#
# The blocks use ./build, first.c and a.out at the top of the tree: the script stops if
# one exists already, and removes them afterwards.
# Closes with "N passed, N failed, N skipped"; exits 1 on any failure.
# Usage: scripts/readme_test.sh   Env: GH_KEEP=1 keeps the temporary directory.
set -euo pipefail
source "$(dirname "$0")/common.sh"

for f in build first.c a.out; do
    [[ ! -e $f ]] || { echo "readme_test: ./$f exists; the README's commands would use it: move it away" >&2; exit 2; }
done
tmp=$(mktemp -d "${TMPDIR:-/tmp}/gh-readme.XXXXXX")
cleanup() {
    rm -rf build first.c a.out
    if [[ ${GH_KEEP:-0} == 1 ]]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

# blocks SECTION LANG DIR: the ```LANG blocks of the README section whose heading is
# SECTION, into DIR/1.LANG, DIR/2.LANG, ...; prints how many.
blocks() {
    python3 - "$1" "$2" "$3" <<'EOF'
import sys
heading, lang, out = sys.argv[1:]
level = body = None
blocks, fence = [], None
for line in open("README.md").read().splitlines(keepends=True):
    if fence is None and line.startswith("#"):
        hashes = len(line) - len(line.lstrip("#"))
        if line[hashes:hashes + 1] == " ":
            if level is not None and hashes <= level:
                break
            if line[hashes + 1:].strip() == heading:
                level = hashes
            continue
    if level is None:
        continue
    if fence is None and line.startswith("```"):
        fence = line[3:].strip()
        blocks.append([fence, ""])
    elif fence is not None and line.rstrip("\n") == "```":
        fence = None
    elif fence is not None:
        blocks[-1][1] += line
if level is None:
    sys.exit(f"README.md: no section '{heading}'")
found = [b for lng, b in blocks if lng == lang]
for i, b in enumerate(found, 1):
    open(f"{out}/{i}.{lang}", "w").write(b)
print(len(found))
EOF
}

passed=0 failed=0 bad=()

# ---- A first program
mkdir -p "$tmp/first" "$tmp/home"
nc=$(blocks "A first program" c "$tmp/first")
nsh=$(blocks "A first program" sh "$tmp/first")
((nc == 1 && nsh >= 2)) ||
    { echo "readme_test: '### A first program' has $nc c block(s) and $nsh sh block(s); expected 1 and 2 or more" >&2; exit 1; }
cp "$tmp/first/1.c" first.c

run_block() { # run_block FILE: one sh block, as written, in a newcomer's environment
    local out=$tmp/first/out
    sed 's/^/$ /' "$1"
    rm -rf a.out
    env -u LD_LIBRARY_PATH -u PKG_CONFIG_PATH -u CARGO_TARGET_DIR -u GH_CFLAGS \
        CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}" RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}" \
        HOME="$tmp/home" bash -e "$1" >"$out" 2>&1 || { cat "$out"; return 1; }
    grep -v '^\(   Compiling\|    Finished\|-- \|\[\)' "$out" || true
    tail -n 1 "$out" | grep -qx 'joinall: GH_OK, 3 done' ||
        { echo "the block's last line is not \"joinall: GH_OK, 3 done\""; return 1; }
}
for ((i = 1; i <= nsh; i++)); do
    check "README, A first program: sh block $i of $nsh" run_block "$tmp/first/$i.sh"
done

stripped() { # the CMake block's install: stripped, and the size the README says
    local lib so kb said
    so=$(find "$tmp/home" -name 'libgreenhub.so.*.*.*' -type f | head -n 1)
    [[ -n $so ]] || { echo "no libgreenhub.so.X.Y.Z installed under \$HOME"; return 1; }
    if readelf -S "$so" | grep -qE '\.debug_|\.symtab'; then
        echo "$so is not stripped:"
        readelf -S "$so" | grep -E '\.debug_|\.symtab'
        return 1
    fi
    kb=$(($(stat -c %s "$so") / 1000))
    said=$(grep -o 'libgreenhub\.so\.[0-9.]*` is about [0-9]* KB installed' README.md | grep -o '[0-9]* KB' | head -n 1)
    echo "installed ${so#"$tmp/home/"}: $kb KB, stripped; the README says ${said:-nothing}"
    said=${said% KB}
    [[ -n $said ]] && ((kb * 10 >= said * 8 && kb * 10 <= said * 12)) ||
        { echo "the README's size is more than 20% off: update it"; return 1; }
}
check "README, A first program: the installed library is stripped, of the size stated" stripped

# ---- the monitor sample
monitor_sample() {
    local bin=$OUT/examples/blocking
    if [[ ! -x $bin ]]; then
        mkdir -p "$OUT/examples"
        compile examples-c/blocking.c "$bin" -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Werror ||
            { cat "$bin.log"; return 1; }
    fi
    "$bin" --monitor >"$tmp/blocking.out" 2>&1 || { cat "$tmp/blocking.out"; return 1; }
    python3 - "$tmp/blocking.out" README.md docs/guide/6-monitor.md <<'EOF'
import re, sys

def norm(lines):
    out = []
    for l in lines:
        if re.match(r"\s+#\d+\s", l):
            continue  # a native frame
        l = re.sub(r"\d{4}-\d\d-\d\dT[\d:.]+Z", "<time>", l)
        l = re.sub(r"thread \d+", "thread <tid>", l)
        l = re.sub(r"0x[0-9a-f]+", "<addr>", l)
        l = re.sub(r"\d+\.\d+ s\b", "<secs> s", l)
        l = re.sub(r"^(\S.*?\s+)\.+greenhub:", r"\1.greenhub:", l)  # the row's dots
        out.append(l)
    return out

def check(doc, run):
    """None if doc's sample matches the run, else what to say."""
    text = open(doc).read()
    m = re.search(r"`\./(?:target/c/examples/)?blocking --monitor`.*?^```text\n(.*?)^```$", text, re.S | re.M)
    if not m:
        return f"{doc}: no ```text block after `./target/c/examples/blocking --monitor`"
    sample = m.group(1).splitlines()
    # the run's block for the same greenlet: from its row to its "let the hub run again" line
    first = sample[0].split()[0]
    try:
        start = next(i for i, l in enumerate(run) if l.startswith(first))
        end = next(i for i in range(start, len(run)) if "let the hub run again" in run[i])
    except StopIteration:
        return f"the run has no block for {first!r}:\n" + "\n".join(run)
    run = run[start:end + 1]
    a, b = norm(sample), norm(run)
    if a != b:
        import difflib
        return (f"{doc}'s monitor sample differs from a run (- {doc}, + run):\n"
                + "\n".join(difflib.unified_diff(a, b, lineterm="", n=1))
                + f"\nthe run's block, to paste into {doc}:\n" + "\n".join(run))
    print(f"{doc}: {len(a)} lines of the sample match a run (spawn sites: "
          + ", ".join(sorted(set(re.findall(r"examples-c/blocking\.c:\d+", "\n".join(run))))) + ")")
    return None

run = open(sys.argv[1]).read().splitlines()
errors = [e for e in (check(doc, run) for doc in sys.argv[2:]) if e]
for e in errors:
    print(e)
sys.exit(1 if errors else 0)
EOF
}
check "README, monitor sample: the lines blocking --monitor prints" monitor_sample

echo
for b in "${bad[@]}"; do echo "FAILED: $b"; done
echo "readme_test: $passed passed, $failed failed, 0 skipped"
((failed == 0))

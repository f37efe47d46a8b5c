#!/usr/bin/env bash
# The cooperative libc's overhead (issue 13 goal: within 5 % of plain libc): a 1-byte
# write + read on a ready blocking socket from the main greenlet (benches/patch/rw.c),
# plain libc vs LD_PRELOAD=libgreenhub_patch.so. Prints wall-clock medians and callgrind
# user-space instructions per write+read (two ITERS values, difference divided; the
# kernel's share of a syscall is invisible to callgrind). Never fails on a figure.
# Usage: scripts/bench_patch.sh [--no-callgrind | --compile-only]
set -euo pipefail
source "$(dirname "$0")/common.sh"
[[ ${GH_SKIP_BUILD:-0} == 1 ]] || build_lib
R=$TARGET_DIR/release
bin=$OUT/patch/bench_rw
mkdir -p "$OUT/patch"
"$CC" -std=c11 -D_GNU_SOURCE -O2 -g -DNDEBUG -Wall -Wextra -Werror -Iinclude benches/patch/rw.c \
    -o "$bin" -L"$R" -Wl,-rpath,"$R" -lgreenhub
patch=$R/libgreenhub_patch.so
[[ ${1:-} == --compile-only ]] && { echo "built $bin"; exit 0; }

echo "== wall clock (median of 7 runs)"
printf '  plain libc:  '; "$bin" 200000
printf '  patched:     '; LD_PRELOAD=$patch "$bin" 200000

[[ ${1:-} == --no-callgrind ]] && exit 0
command -v valgrind >/dev/null || { echo "(no valgrind: callgrind figures skipped)"; exit 0; }
ir() { # ir ITERS [env...]: total instructions of one pass
    local f
    f=$(mktemp)
    env "${@:2}" valgrind --tool=callgrind --callgrind-out-file="$f" "$bin" "$1" --once >/dev/null 2>&1
    awk '/^(summary|totals):/ { print $2; exit }' "$f"
    rm -f "$f"
}
n1=20000 n2=120000
p1=$(ir $n1) p2=$(ir $n2)
q1=$(ir $n1 LD_PRELOAD="$patch") q2=$(ir $n2 LD_PRELOAD="$patch")
awk -v p1="$p1" -v p2="$p2" -v q1="$q1" -v q2="$q2" -v n=$((n2 - n1)) 'BEGIN {
    p = (p2 - p1) / n; q = (q2 - q1) / n
    printf "== callgrind: user-space instructions per write+read (ITERS %d vs %d)\n", 20000, 120000
    printf "  plain libc:  %.1f\n  patched:     %.1f  (+%.1f per pair, %.2fx)\n", p, q, q - p, q / p
}'

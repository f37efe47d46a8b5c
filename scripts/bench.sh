#!/usr/bin/env bash
# Compile each benches/*.c against the static library (-O2) and run it, printing
# its figures. Times are never judged here; a benchmark that crashes or exits
# non-zero fails the script. Without BENCH arguments it also compiles the peer
# programs (benches/peers/, those whose library is installed; benches/run.sh runs them)
# and the instruction-count workloads (benches/icount/; benches/icount.sh runs them).
# Usage: scripts/bench.sh [--compile-only] [BENCH...]
set -euo pipefail
source "$(dirname "$0")/common.sh"
source "$ROOT/benches/peers/peers.sh"
shopt -s nullglob

run=1 benches=()
for arg; do
    case $arg in
    --compile-only) run=0 ;;
    -h | --help) sed -n '2,7p' "$0"; exit 0 ;;
    -*) echo "bench.sh: unknown option $arg" >&2; exit 2 ;;
    *) benches+=("benches/$(basename "${arg%.c}").c") ;;
    esac
done
peers=1
((${#benches[@]} == 0)) || peers=0
((${#benches[@]})) || benches=(benches/*.c)
if ((${#benches[@]} == 0)); then
    echo "bench.sh: no benches/*.c"
    exit 0
fi

build_lib
echo "== compile ${#benches[@]} benchmark(s) into $OUT/bench"
compile_many "$OUT/bench" -std=c11 -D_GNU_SOURCE -O2 -g -DNDEBUG -Wall -Wextra -Werror \
    -- "${benches[@]}"
if ((peers)); then
    echo "== compile the peer programs into $OUT/peers (benches/run.sh runs them)"
    compile_peers "$OUT/peers"
    echo "== compile benches/icount/*.c into $OUT/icount (benches/icount.sh runs them)"
    compile_many "$OUT/icount" -std=c11 -D_GNU_SOURCE -O2 -g -DNDEBUG -Wall -Wextra -Werror \
        -- benches/icount/*.c
fi
((run)) || exit 0
failed=()
# pingpong runs once per hub backend (GREENHUB_BACKEND); the others with the default.
for src in "${benches[@]}"; do
    name=$(basename "${src%.c}")
    if [[ $name == pingpong ]]; then
        for backend in epoll polling poll select; do
            echo "== $name (GREENHUB_BACKEND=$backend)"
            GREENHUB_BACKEND=$backend "$OUT/bench/$name" </dev/null ||
                failed+=("$name/$backend (exit $?)")
        done
        continue
    fi
    echo "== $name"
    "$OUT/bench/$name" </dev/null || failed+=("$name (exit $?)")
done
for f in "${failed[@]}"; do echo "FAILED: $f"; done
((${#failed[@]} == 0))

#!/usr/bin/env bash
# The soak test at full scale (FAULTS 25, issue 8 "Soak"): c-tests/test_soak.c with
# GH_SOAK_SCALE=20 by default — 2 * 10^7 spawn/join cycles and 8 * 10^6 echo operations
# under random disconnects, timeouts and kills, fd / mapping / RSS counts sampled every
# 10^5 operations — for minutes, without the per-case time bound. The suite
# (scripts/test.sh) runs the same program at GH_SOAK_SCALE=1 (seconds), and valgrind
# runs default to 0.05.
#
# Usage: scripts/soak.sh [CASE]     (spawn_join_cycles or echo_load; default both)
# Env:   GH_SOAK_SCALE (default 20), GH_VALGRIND=1 (run under valgrind memcheck)
set -euo pipefail
source "$(dirname "$0")/common.sh"

build_lib
mkdir -p "$OUT/tests"
echo "== cc c-tests/test_soak.c"
compile c-tests/test_soak.c "$OUT/tests/test_soak" "${TEST_CFLAGS[@]}" || {
    cat "$OUT/tests/test_soak.log"
    exit 1
}
runner=()
if [[ ${GH_VALGRIND:-0} == 1 ]]; then
    runner=(valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
        --show-leak-kinds=definite -q --trace-children=yes --child-silent-after-fork=no)
fi
export GH_SOAK_SCALE=${GH_SOAK_SCALE:-20}
export GH_TEST_TIMEOUT=0 # no per-case bound: minutes are expected
echo "== soak at GH_SOAK_SCALE=$GH_SOAK_SCALE"
start=$(date +%s)
rc=0
"${runner[@]}" "$OUT/tests/test_soak" "$@" </dev/null || rc=$?
echo "== soak: $(($(date +%s) - start)) s, exit $rc"
exit "$rc"

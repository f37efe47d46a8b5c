#!/usr/bin/env bash
# The whole suite: Rust tests, header checks (C99/C11/C17/C++17, docs, exports),
# every c-tests/test_*.c, the cooperative libc's tests (scripts/test_patch.sh), the
# examples in examples-c/ (C and C++; compiled, and run when they carry a
# "// smoke: ARGS" line; http_server under wrk by scripts/http_smoke.sh) and the Python
# binding's test.
#
# Usage: scripts/test.sh [--c-only] [TEST...]
#   --c-only  only the C test programs (no cargo test, header checks, examples, Python)
#   TEST      run only these C test programs (test_hub or c-tests/test_hub.c;
#             test_sweep_gen: the sweep scripts/gen_sweep.py generates from the header)
# Env: GH_VALGRIND=1 runs each C test program under valgrind; GH_DEBUG_LIB=1 links them
#      against the debug build, target/debug (overflow checks, debug assertions); with
#      --c-only only (the cooperative libc's tests, on the release build, are left out);
#      GH_CC, GH_CFLAGS,
#      GH_CXX (default c++: C++ header check and examples), GH_TEST_TIMEOUT (per case),
#      GH_SOAK_SCALE (c-tests/test_soak.c: default 1, 0.05 under valgrind; scripts/soak.sh
#      runs it at full scale), GH_SWEEP_SEED (the generated sweep's random handles).
set -euo pipefail
source "$(dirname "$0")/common.sh"
shopt -s nullglob

c_only=0 names=()
for arg; do
    case $arg in
    --c-only) c_only=1 ;;
    -h | --help) sed -n '2,18p' "$0"; exit 0 ;;
    -*) echo "test.sh: unknown option $arg" >&2; exit 2 ;;
    *) names+=("$(basename "${arg%.c}")") ;;
    esac
done

# GH_DEBUG_LIB=1: the C programs link the debug build (here only: the other scripts keep
# the release build whatever the environment says).
debug_lib=0
if [[ ${GH_DEBUG_LIB:-0} == 1 ]]; then
    ((c_only)) || { echo "test.sh: GH_DEBUG_LIB=1 goes with --c-only" >&2; exit 2; }
    debug_lib=1
    STATIC_LIB=$TARGET_DIR/debug/libgreenhub.a
    LIBS=("$STATIC_LIB" -lpthread -ldl -lm)
    OUT=$TARGET_DIR/c-debug
    build_lib() {
        echo "== cargo build (debug: GH_DEBUG_LIB=1)"
        cargo build
    }
fi

passed=0 failed=0 skipped=0 bad=() skips=()
record() { # record NAME RC [LOG [WHY]]: count a test program's or example's result
    local name=$1 rc=$2 log=${3:-} why=${4:-exit $2} c p=0 f=0 s=0
    if [[ -n $log ]]; then
        c=$(counts "$log")
        [[ -n $c ]] && read -r p f s <<<"$c"
        ((s == 0)) || mapfile -t -O "${#skips[@]}" skips < <(skip_lines "$name" "$log")
    elif ((rc == 0)); then
        p=1
    fi
    ((rc != 0 && f == 0)) && f=1
    passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
    ((rc == 0)) || bad+=("$name ($why)")
}

build_lib
if ((!c_only)); then
    echo "== cargo test --release"
    mkdir -p "$OUT"
    rc=0
    cargo test --release 2>&1 | tee "$OUT/cargo-test.out" || rc=${PIPESTATUS[0]}
    # every "test result: ok. N passed; N failed; N ignored" line (lib, tests/, doc tests)
    read -r p f s < <(sed -n 's/^test result: [a-zA-Z]*\. \([0-9]*\) passed; \([0-9]*\) failed; \([0-9]*\) ignored.*/\1 \2 \3/p' \
        "$OUT/cargo-test.out" | awk '{ p += $1; f += $2; s += $3 } END { print p + 0, f + 0, s + 0 }')
    echo "$p passed, $f failed, $s skipped" >"$OUT/cargo-test.count"
    record "cargo test --release" "$rc" "$OUT/cargo-test.count"

    echo "== header check: C99, C11, C17, C++17 with -Wall -Wextra -Werror -pedantic"
    strict=(-Wall -Wextra -Werror -pedantic -fsyntax-only -Iinclude -Ic-tests)
    harness_tu='#include "harness.h"
TEST(t) { ASSERT_STREQ(gh_version_string(), gh_version_string()); }
int main(int argc, char **argv) { TEST_INIT(argc, argv); RUN(t); return TEST_DONE(); }'
    for std in c99 c11 c17; do
        echo "  $CC -std=$std greenhub.h, harness.h"
        echo '#include "greenhub.h"' | "$CC" -std=$std "${strict[@]}" -x c -
        echo "$harness_tu" | "$CC" -std=$std "${strict[@]}" -x c -
    done
    CXX=${GH_CXX:-c++}
    if command -v "$CXX" >/dev/null; then
        echo "  $CXX -std=c++17 greenhub.h, harness.h"
        echo '#include "greenhub.h"' | "$CXX" -std=c++17 "${strict[@]}" -x c++ -
        echo "$harness_tu" | "$CXX" -std=c++17 "${strict[@]}" -x c++ -
    else
        echo "  skipped C++17: no $CXX"
    fi

    echo "== sweep check: every gh_* function taking a pointer or handle is in c-tests/test_faults.c"
    bash c-tests/check_sweep.sh

    echo "== header docs: every public item of include/greenhub.h documented, gh_*/GH_* names only"
    rc=0
    python3 scripts/check_header_docs.py || rc=$?
    record "header docs (scripts/check_header_docs.py)" "$rc"

    echo "== exports: SONAME libgreenhub.so.MAJOR, only the header's gh_* symbols exported"
    rc=0
    bash scripts/check_exports.sh || rc=$?
    record "exports (scripts/check_exports.sh)" "$rc"
fi

# ---- C test programs: c-tests/test_*.c, and the sweep generated from the header
gen_src=$OUT/gen/test_sweep_gen.c want_gen=0
tests=()
if ((${#names[@]})); then
    for n in "${names[@]}"; do
        if [[ $n == test_sweep_gen ]]; then want_gen=1; else tests+=("c-tests/$n.c"); fi
    done
else
    tests=(c-tests/test_*.c)
    want_gen=1
fi
if ((want_gen)); then
    # FAULTS 1 and 2: NULL for every required pointer and bad values for every handle
    # parameter of every gh_* prototype (beside c-tests/check_sweep.sh's check of the
    # hand-written sweeps in test_faults.c)
    echo "== generated sweep: scripts/gen_sweep.py -> $gen_src"
    rc=0
    python3 scripts/gen_sweep.py --out "$gen_src" || rc=$?
    if ((rc == 0)); then
        tests+=("$gen_src")
    else
        record "generated sweep (scripts/gen_sweep.py)" "$rc"
    fi
fi
runner=() filter=(cat) vg_count=$OUT/valgrind-filtered.count
rm -f "$vg_count"
if [[ ${GH_VALGRIND:-0} == 1 ]]; then
    filter=(vg_filter "$vg_count")
    command -v valgrind >/dev/null || { echo "GH_VALGRIND=1 but valgrind is not installed" >&2; exit 1; }
    runner=(valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
        --show-leak-kinds=definite --track-fds=no -q --trace-children=yes --child-silent-after-fork=no)
    export GH_TEST_TIMEOUT=${GH_TEST_TIMEOUT:-300}
fi
echo "== compile ${#tests[@]} C test program(s) into $OUT/tests"
compile_many "$OUT/tests" "${TEST_CFLAGS[@]}" -- "${tests[@]}" || true
for src in "${tests[@]}"; do
    name=$(basename "${src%.c}") bin=$OUT/tests/$(basename "${src%.c}")
    echo "== ${runner[*]:+valgrind }$name"
    if [[ ! -x $bin ]]; then
        echo "  not built"
        record "$name" 1 "" "not built"
        continue
    fi
    rc=0
    "${runner[@]}" "$bin" </dev/null 2>&1 | "${filter[@]}" | tee "$bin.out" || rc=${PIPESTATUS[0]}
    record "$name" "$rc" "$bin.out"
done

# ---- test_faultinject again, against a library built with the fault-injection hook:
# a debug build (target/debug, never shipped), incremental after the first time
if [[ " ${tests[*]} " == *" c-tests/test_faultinject.c "* ]]; then
    echo "== cargo build --features fault-injection (debug)"
    rc=0
    cargo build --features fault-injection || rc=$?
    bin=$OUT/tests-fi/test_faultinject
    mkdir -p "$OUT/tests-fi"
    saved_libs=("${LIBS[@]}")
    LIBS=("$TARGET_DIR/debug/libgreenhub.a" -lpthread -ldl -lm)
    ((rc == 0)) && compile c-tests/test_faultinject.c "$bin" "${TEST_CFLAGS[@]}" || rc=1
    LIBS=("${saved_libs[@]}")
    if ((rc == 0)); then
        echo "== ${runner[*]:+valgrind }test_faultinject (fault-injection build)"
        "${runner[@]}" "$bin" </dev/null 2>&1 | "${filter[@]}" | tee "$bin.out" ||
            rc=${PIPESTATUS[0]}
        record "test_faultinject (fault-injection build)" "$rc" "$bin.out"
    else
        [[ -f $bin.log ]] && cat "$bin.log"
        record "test_faultinject (fault-injection build)" 1 "" "not built"
    fi
fi

# ---- the cooperative libc (libgreenhub_patch.so, c-tests/patch/): its tests under
# LD_PRELOAD and linked ahead of libc (same GH_VALGRIND and GREENHUB_BACKEND); the
# libpq/libcurl example too unless --c-only (scripts/test_patch.sh)
if ((${#names[@]} == 0 && !debug_lib)); then
    echo "== cooperative libc: scripts/test_patch.sh"
    patch_args=()
    ((c_only)) && patch_args+=(--no-example)
    rc=0
    GH_SKIP_BUILD=1 ./scripts/test_patch.sh "${patch_args[@]}" 2>&1 | tee "$OUT/patch.out" ||
        rc=${PIPESTATUS[0]}
    record "cooperative libc (scripts/test_patch.sh)" "$rc" "$OUT/patch.out"
fi

# ---- examples: compiled; run with their "// smoke: ARGS" line if they have one
examples=(examples-c/*.c)
if ((!c_only && ${#examples[@]})); then
    ensure_libev || true # examples-c/backend_libev.c links libev
    echo "== compile ${#examples[@]} example(s) into $OUT/examples"
    compile_many "$OUT/examples" -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Werror \
        -- "${examples[@]}" || true
    for src in "${examples[@]}"; do
        name=$(basename "${src%.c}") bin=$OUT/examples/$(basename "${src%.c}")
        smoke=$(grep -m 1 '^// smoke:' "$src" || true)
        if [[ ! -x $bin ]]; then
            record "example $name" 1 "" "not built"
        elif [[ -n $smoke ]]; then
            read -r -a args <<<"${smoke#// smoke:}"
            echo "== smoke: $name ${args[*]}"
            rc=0
            timeout 30 "$bin" "${args[@]}" </dev/null || rc=$?
            if ((rc == 124)); then
                record "example $name" 1 "" "timed out after 30 s"
            else
                record "example $name" "$rc"
            fi
        fi
    done
fi

# ---- examples-c/http_server.c has no smoke line: scripts/http_smoke.sh loads it with
# wrk -c1000 (installing wrk when missing) and stops it with SIGTERM
if ((!c_only)) && [[ -x $OUT/examples/http_server ]]; then
    echo "== smoke: http_server (scripts/http_smoke.sh)"
    rc=0
    timeout 60 ./scripts/http_smoke.sh "$OUT/examples/http_server" 2 </dev/null || rc=$?
    record "example http_server (scripts/http_smoke.sh)" "$rc"
fi

# ---- C++ examples (examples-c/*.cpp): C++17, -pedantic, static library; smoke-run alike
cxx_examples=(examples-c/*.cpp)
CXX=${GH_CXX:-c++}
if ((!c_only && ${#cxx_examples[@]})) && command -v "$CXX" >/dev/null; then
    mkdir -p "$OUT/examples"
    for src in "${cxx_examples[@]}"; do
        name=$(basename "${src%.cpp}") bin=$OUT/examples/$(basename "${src%.cpp}")
        echo "== $CXX -std=c++17 $src"
        if ! "$CXX" -std=c++17 -O2 -g -Wall -Wextra -Werror -pedantic "${EXTRA_CFLAGS[@]}" -Iinclude \
            "$src" -o "$bin" "${LIBS[@]}"; then
            record "example $name" 1 "" "not built"
            continue
        fi
        smoke=$(grep -m 1 '^// smoke:' "$src" || true)
        [[ -n $smoke ]] || continue
        read -r -a args <<<"${smoke#// smoke:}"
        echo "== smoke: $name ${args[*]}"
        rc=0
        timeout 30 "$bin" "${args[@]}" </dev/null || rc=$?
        record "example $name" "$rc"
    done
fi

# ---- C++ test programs (c-tests/*.cpp), with every C++ compiler found (g++, clang++;
# libstdc++): C++ exception state per greenlet (issue 19)
for cxx in g++ clang++; do
    command -v "$cxx" >/dev/null || continue
    mkdir -p "$OUT/tests"
    for src in c-tests/*.cpp; do
        name=$(basename "${src%.cpp}")-$cxx bin=$OUT/tests/$(basename "${src%.cpp}")-$cxx
        echo "== $cxx -std=c++17 $src"
        if ! "$cxx" -std=c++17 -O1 -g -Wall -Wextra -Werror "${EXTRA_CFLAGS[@]}" -Iinclude -Ic-tests \
            "$src" -o "$bin" "${LIBS[@]}"; then
            record "$name" 1 "" "not built"
            continue
        fi
        echo "== ${runner[*]:+valgrind }$name"
        rc=0
        "${runner[@]}" "$bin" </dev/null 2>&1 | "${filter[@]}" | tee "$bin.out" || rc=${PIPESTATUS[0]}
        record "$name" "$rc" "$bin.out"
    done
done

# ---- Python binding: its test, on this tree's target/release/libgreenhub.so; again
# under pytest when python3 has it (the same tests; nothing is installed for it)
if ((!c_only)); then
    echo "== python: bindings/python/test_greenhub.py"
    rc=0
    GREENHUB_LIBRARY=$TARGET_DIR/release/libgreenhub.so GREENHUB_INCLUDE_DIR=$ROOT/include \
        timeout 300 python3 -B bindings/python/test_greenhub.py </dev/null 2>&1 |
        tee "$OUT/python.out" || rc=${PIPESTATUS[0]}
    record "python binding" "$rc" "$OUT/python.out"
    if python3 -c 'import pytest' 2>/dev/null; then
        echo "== python: python3 -m pytest bindings/python/test_greenhub.py"
        rc=0
        GREENHUB_LIBRARY=$TARGET_DIR/release/libgreenhub.so GREENHUB_INCLUDE_DIR=$ROOT/include \
            timeout 300 python3 -B -m pytest -q -p no:cacheprovider bindings/python/test_greenhub.py \
            </dev/null 2>&1 || rc=$?
        record "python binding (pytest)" "$rc"
    fi
fi

echo
echo "== summary"
list_outcomes
vg_filtered "$vg_count"
echo "total: $passed passed, $failed failed, $skipped skipped"
((${#bad[@]} == 0))

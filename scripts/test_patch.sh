#!/usr/bin/env bash
# The cooperative libc's tests (issue 13): c-tests/patch/test_*.c, each built against
# libgreenhub.so and run twice — with libgreenhub_patch.so in LD_PRELOAD, and linked
# ahead of libc (-lgreenhub_patch before the C library) — then
# c-tests/patch/test_patch_python.py (the Python binding, which loads libgreenhub late)
# and the examples-c/patch/clients.c smoke run (libpq and libcurl; scripts/patch_example.sh).
#
# Usage: scripts/test_patch.sh [--no-example] [TEST...]
# Env: GH_VALGRIND=1 (each program under valgrind), GREENHUB_BACKEND (the hub's backend),
#      GH_CC, GH_CFLAGS, GH_TEST_TIMEOUT as scripts/test.sh.
set -euo pipefail
source "$(dirname "$0")/common.sh"
shopt -s nullglob

example=1 names=()
for arg; do
    case $arg in
    --no-example) example=0 ;;
    -h | --help) sed -n '2,10p' "$0"; exit 0 ;;
    -*) echo "test_patch.sh: unknown option $arg" >&2; exit 2 ;;
    *) names+=("$(basename "${arg%.c}")") ;;
    esac
done

[[ ${GH_SKIP_BUILD:-0} == 1 ]] || build_lib
R=$TARGET_DIR/release
[[ -f $R/libgreenhub_patch.so ]] || { echo "no $R/libgreenhub_patch.so (cargo build --release)"; exit 1; }

tests=()
if ((${#names[@]})); then
    for n in "${names[@]}"; do tests+=("c-tests/patch/$n.c"); done
else
    tests=(c-tests/patch/test_*.c)
fi

dir=$OUT/patch
mkdir -p "$dir"
flags=(-std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g -O1 "${EXTRA_CFLAGS[@]}"
    -I"$ROOT/include" -I"$ROOT/c-tests" -I"$ROOT/c-tests/patch")
rpath=(-Wl,-rpath,"$R" -L"$R")
runner=() filter=(cat) vg_count=$dir/valgrind-filtered.count
rm -f "$vg_count"
if [[ ${GH_VALGRIND:-0} == 1 ]]; then
    filter=(vg_filter "$vg_count")
    runner=(valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
        --show-leak-kinds=definite --track-fds=no -q --trace-children=yes --child-silent-after-fork=no)
    export GH_TEST_TIMEOUT=${GH_TEST_TIMEOUT:-300}
fi

passed=0 failed=0 skipped=0 bad=()
record() { # NAME RC LOG
    local c p=0 f=0 s=0
    c=$(counts "$3")
    [[ -n $c ]] && read -r p f s <<<"$c"
    (($2 != 0 && f == 0)) && f=1
    passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
    (($2 == 0)) || bad+=("$1 (exit $2)")
}

for src in "${tests[@]}"; do
    name=$(basename "${src%.c}")
    echo "== cc $src (LD_PRELOAD build, and linked ahead of libc)"
    if ! "$CC" "${flags[@]}" "$src" -o "$dir/$name" "${rpath[@]}" -lgreenhub -lpthread \
        || ! "$CC" "${flags[@]}" "$src" -o "$dir/$name-linked" "${rpath[@]}" \
            -Wl,--no-as-needed -lgreenhub_patch -lgreenhub -Wl,--as-needed -lpthread; then
        bad+=("$name (not built)") failed=$((failed + 1))
        continue
    fi
    echo "== ${runner[*]:+valgrind }LD_PRELOAD=libgreenhub_patch.so $name (backend ${GREENHUB_BACKEND:-default})"
    rc=0
    LD_PRELOAD=$R/libgreenhub_patch.so "${runner[@]}" "$dir/$name" </dev/null 2>&1 |
        "${filter[@]}" | tee "$dir/$name.out" || rc=${PIPESTATUS[0]}
    record "$name (LD_PRELOAD)" "$rc" "$dir/$name.out"
    echo "== ${runner[*]:+valgrind }$name-linked (-lgreenhub_patch ahead of libc)"
    rc=0
    "${runner[@]}" "$dir/$name-linked" </dev/null 2>&1 | "${filter[@]}" |
        tee "$dir/$name-linked.out" || rc=${PIPESTATUS[0]}
    record "$name (linked)" "$rc" "$dir/$name-linked.out"
done

# A program that loads libgreenhub late (RTLD_LOCAL): the Python binding
if ((${#names[@]} == 0)) && [[ ${GH_VALGRIND:-0} != 1 ]] && command -v python3 >/dev/null; then
    echo "== python3 c-tests/patch/test_patch_python.py (LD_PRELOAD, libgreenhub loaded by ctypes)"
    rc=0
    GREENHUB_LIBRARY=$R/libgreenhub.so LD_PRELOAD=$R/libgreenhub_patch.so \
        python3 -B c-tests/patch/test_patch_python.py </dev/null 2>&1 | tee "$dir/python.out" ||
        rc=${PIPESTATUS[0]}
    record "test_patch_python.py" "$rc" "$dir/python.out"
fi

if ((example && ${#names[@]} == 0)); then
    echo "== example: scripts/patch_example.sh --smoke"
    rc=0
    ./scripts/patch_example.sh --smoke 2>&1 | tee "$dir/example.out" || rc=${PIPESTATUS[0]}
    if ((rc == 0)); then passed=$((passed + 1)); else failed=$((failed + 1)) bad+=("example clients (exit $rc)"); fi
fi

echo
echo "== patch summary"
for b in "${bad[@]}"; do echo "  FAILED: $b"; done
vg_filtered "$vg_count"
echo "patch total:"
echo "$passed passed, $failed failed, $skipped skipped"
((${#bad[@]} == 0))

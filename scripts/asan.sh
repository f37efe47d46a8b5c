#!/usr/bin/env bash
# The C suite under AddressSanitizer + UndefinedBehaviorSanitizer (FAULTS.md; issue 8).
#
# 1. Builds libgreenhub.a with the nightly toolchain, -Zsanitizer=address and the
#    `sanitizer` feature (corosensei tells ASan about every stack switch), in its own
#    target dir (target/asan). --target is explicit so that build scripts and proc
#    macros are not instrumented. The standard library is not rebuilt (no rust-src,
#    no -Zbuild-std): its own code is not instrumented, ours and the C tests' are.
# 2. Compiles every c-tests/test_*.c and every examples-c/*.c / *.cpp with clang
#    -fsanitize=address,undefined, linked against that library (clang brings the
#    runtime; the Rust static library only references it).
#    The cooperative libc's tests (c-tests/patch/) are built against the instrumented
#    libgreenhub.so and run with the instrumented libgreenhub_patch.so.
# 3. Runs them all (each case in its forked child, as scripts/test.sh does; the
#    examples with their "// smoke: ARGS" line) and fails on any failed case or on any
#    sanitizer output in any of them: an ASan/LSan/UBSan report, or ASan's
#    "ASan is ignoring requested __asan_handle_no_return" warning (which means a stack
#    switch ASan was not told about).
#
# Usage: scripts/asan.sh [TEST...]   (TEST: test_hub or c-tests/test_hub.c, or
#                                      test_sweep_gen; default all, the generated sweep
#                                      and the examples)
# Env: GH_TEST_TIMEOUT (per case, default 120 s here), GH_TEST_NOFORK=1 (cases in one
#      process, for gdb), GH_ASAN_TARGET_DIR (default target/asan), GH_ASAN_CC /
#      GH_ASAN_CXX (default clang / clang++).
# Installs clang and its sanitizer runtime (Debian: clang, libclang-rt-14-dev) when
# missing. Needs the nightly toolchain (rustup toolchain list).
set -euo pipefail
source "$(dirname "$0")/common.sh"
shopt -s nullglob

names=()
for arg; do
    case $arg in
    -h | --help) sed -n '2,26p' "$0"; exit 0 ;;
    -*) echo "asan.sh: unknown option $arg" >&2; exit 2 ;;
    *) names+=("$(basename "${arg%.c}")") ;;
    esac
done

TRIPLE=x86_64-unknown-linux-gnu
ASAN_TARGET=${GH_ASAN_TARGET_DIR:-$ROOT/target/asan}
OUT=$ASAN_TARGET/c
CC=${GH_ASAN_CC:-clang}
CXX=${GH_ASAN_CXX:-clang++}
STATIC_LIB=$ASAN_TARGET/$TRIPLE/release/libgreenhub.a
LIBS=("$STATIC_LIB" -lpthread -ldl -lm)
SAN=(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)

# ---- tools
sanitizer_tools asan.sh "$OUT" "${SAN[@]}"

# ---- the instrumented library
echo "== cargo +nightly build --release --features sanitizer (-Zsanitizer=address) into $ASAN_TARGET"
RUSTFLAGS="-Zsanitizer=address -Cforce-frame-pointers=yes" CARGO_TARGET_DIR=$ASAN_TARGET \
    cargo +nightly build --release --lib --features sanitizer --target "$TRIPLE"

# ASan: every report ends the process (exit 1, which fails the case); LeakSanitizer
# checks each case's child at its exit(0). UBSan: halt on the first report
# (-fno-sanitize-recover=all) with a stack trace.
# detect_stack_use_after_return=0 (clang 14's default, spelled out because newer
# runtimes default to 1): corosensei 0.3.4 never tells ASan that a coroutine left for
# good (its last __sanitizer_start_switch_fiber passes a non-NULL fake_stack_save, and a
# discarded coroutine never switches out at all), so every greenlet would leak its
# fake stack — test_greenlet's 100k spawn/join RSS check fails with it — and frames on
# fake stacks no longer overflow the real ones (test_hub's stack-size controls).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:abort_on_error=0:strict_string_checks=1:check_initialization_order=1:detect_stack_use_after_return=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export GH_TEST_TIMEOUT=${GH_TEST_TIMEOUT:-120}

# Sanitizer output that fails a run even when the program's exit code says it passed.
san_begin sanitizer 'ERROR: (AddressSanitizer|LeakSanitizer)|[0-9]+:[0-9]+: runtime error:|WARNING: AddressSanitizer|ASan is ignoring requested __asan_handle_no_return|SUMMARY: (Address|Leak|UndefinedBehavior)Sanitizer'

# ---- C tests
# (test_sweep_gen: the NULL/bad-handle sweep scripts/gen_sweep.py generates from the
# header, as scripts/test.sh runs it)
tests=() want_gen=0
if ((${#names[@]})); then
    for n in "${names[@]}"; do
        if [[ $n == test_sweep_gen ]]; then want_gen=1; else tests+=("c-tests/$n.c"); fi
    done
else
    tests=(c-tests/test_*.c)
    want_gen=1
fi
if ((want_gen)); then
    echo "== generated sweep: scripts/gen_sweep.py -> $OUT/gen/test_sweep_gen.c"
    python3 scripts/gen_sweep.py --out "$OUT/gen/test_sweep_gen.c"
    tests+=("$OUT/gen/test_sweep_gen.c")
fi
echo "== compile ${#tests[@]} C test program(s) with $CC ${SAN[*]} into $OUT/tests"
compile_many "$OUT/tests" "${TEST_CFLAGS[@]}" "${SAN[@]}" -- "${tests[@]}" || true
for src in "${tests[@]}"; do
    name=$(basename "${src%.c}") bin=$OUT/tests/$(basename "${src%.c}")
    echo "== asan $name"
    if [[ ! -x $bin ]]; then
        echo "  not built"
        failed=$((failed + 1)) bad+=("$name (not built)")
        continue
    fi
    san_run "$name" "$bin.out" "$bin"
done

# ---- the cooperative libc (c-tests/patch/): against the instrumented libgreenhub.so,
# with the instrumented libgreenhub_patch.so (the same cargo build: a workspace member)
# preloaded and linked ahead of libc. ASan's own interceptors run first and call on
# into the patch (the next definition), which calls libc.
if ((!${#names[@]})); then
    adir=$ASAN_TARGET/$TRIPLE/release # (with the SONAME links build.rs made)
    mkdir -p "$OUT/patch"
    for src in c-tests/patch/test_*.c; do
        name=$(basename "${src%.c}") bin=$OUT/patch/$(basename "${src%.c}")
        pflags=("${TEST_CFLAGS[@]}" "${SAN[@]}" -Iinclude -Ic-tests -Ic-tests/patch "$src")
        echo "== asan $name (patch preloaded, and linked ahead of libc)"
        if ! "$CC" "${pflags[@]}" -o "$bin" -L"$adir" -Wl,-rpath,"$adir" -lgreenhub -lpthread ||
            ! "$CC" "${pflags[@]}" -o "$bin-linked" -L"$adir" -Wl,-rpath,"$adir" \
                -Wl,--no-as-needed -lgreenhub_patch -lgreenhub -Wl,--as-needed -lpthread; then
            failed=$((failed + 1)) bad+=("$name (not built)")
            continue
        fi
        san_run "$name (LD_PRELOAD)" "$bin.out" env LD_PRELOAD="$adir/libgreenhub_patch.so" "$bin"
        san_run "$name (linked)" "$bin-linked.out" "$bin-linked"
    done
fi

# ---- examples: built the same way (all first: echo_client's smoke run starts the
# echo_server beside it), then smoke-run with their "// smoke: ARGS" line
if ((!${#names[@]})); then
    mkdir -p "$OUT/examples"
    ensure_libev || true # examples-c/backend_libev.c links libev
    smoked=()
    for src in examples-c/*.c examples-c/*.cpp; do
        name=$(basename "${src%.*}") bin=$OUT/examples/$(basename "${src%.*}")
        if [[ $src == *.cpp ]]; then
            cc=("$CXX" -std=c++17 -pedantic)
        else
            cc=("$CC" -std=c11 -D_GNU_SOURCE)
        fi
        echo "  ${cc[0]} $src"
        # libraries of the example's "// ldflags:" line (examples-c/backend_libev.c: -lev)
        read -r -a ld <<<"$(sed -n 's|^// ldflags:||p' "$src" | head -n 1)"
        if ! "${cc[@]}" -O1 -g -Wall -Wextra -Werror "${SAN[@]}" -Iinclude "$src" -o "$bin" \
            "${LIBS[@]}" "${ld[@]}"; then
            failed=$((failed + 1)) bad+=("example $name (not built)")
            continue
        fi
        grep -q '^// smoke:' "$src" && smoked+=("$src")
    done
    for src in "${smoked[@]}"; do
        name=$(basename "${src%.*}") bin=$OUT/examples/$(basename "${src%.*}")
        smoke=$(grep -m 1 '^// smoke:' "$src")
        read -r -a args <<<"${smoke#// smoke:}"
        echo "== asan example $name ${args[*]}"
        san_run "example $name" "$bin.out" timeout 60 "$bin" "${args[@]}"
    done
fi

san_summary asan

#!/usr/bin/env bash
# The multi-threaded C tests under ThreadSanitizer (issue 19).
#
# 1. Builds libgreenhub.a with the nightly toolchain, -Zsanitizer=thread, -Zbuild-std
#    (the standard library instrumented too: its locks and atomics must be seen, or every
#    Mutex-guarded hand-over would be reported) and the `tsan` feature (every greenlet
#    switch announced to TSan as a fiber switch, src/tsan.rs), in target/tsan.
# 2. Compiles c-tests/test_threads.c, test_signals.c, test_threadpool.c, test_monitor.c
#    and test_embed.c with clang -fsanitize=thread and links them with the nightly's own
#    TSan runtime (librustc-nightly_rt.tsan.a): the Rust side is instrumented by the
#    nightly's newer LLVM, whose __tsan_memcpy/memmove/memset Debian's clang-14 runtime
#    does not have, and one process takes one runtime.
# 3. Runs them (each case in its forked child, as scripts/test.sh does) and fails on any
#    failed case or any ThreadSanitizer output (a report, a crash, a runtime error).
#
# Usage: scripts/tsan.sh [TEST...]   (TEST: test_threads or c-tests/test_threads.c;
#                                      default the five above)
# Env: GH_TEST_TIMEOUT (per case, default 120 s here), GH_TSAN_TARGET_DIR (default
#      target/tsan), GH_TSAN_CC (default clang).
# Installs clang (Debian: clang, libclang-rt-14-dev) and the nightly's rust-src (for
# -Zbuild-std) when missing. Needs the nightly toolchain (rustup toolchain list).
set -euo pipefail
source "$(dirname "$0")/common.sh"

names=()
for arg; do
    case $arg in
    -h | --help) sed -n '2,21p' "$0"; exit 0 ;;
    -*) echo "tsan.sh: unknown option $arg" >&2; exit 2 ;;
    *) names+=("$(basename "${arg%.c}")") ;;
    esac
done
((${#names[@]})) || names=(test_threads test_signals test_threadpool test_monitor test_embed)

TRIPLE=x86_64-unknown-linux-gnu
TSAN_TARGET=${GH_TSAN_TARGET_DIR:-$ROOT/target/tsan}
OUT=$TSAN_TARGET/c
CC=${GH_TSAN_CC:-clang}
STATIC_LIB=$TSAN_TARGET/$TRIPLE/release/libgreenhub.a
SAN=(-fsanitize=thread -fno-omit-frame-pointer)

# ---- tools
sanitizer_tools tsan.sh "$OUT" "${SAN[@]}"
SYSROOT=$(rustc +nightly --print sysroot)
if [[ ! -d $SYSROOT/lib/rustlib/src/rust/library ]]; then
    echo "== rustup component add rust-src --toolchain nightly (for -Zbuild-std)"
    rustup component add rust-src --toolchain nightly
fi
RUNTIME=$SYSROOT/lib/rustlib/$TRIPLE/lib/librustc-nightly_rt.tsan.a
[[ -f $RUNTIME ]] || { echo "tsan.sh: no $RUNTIME in the nightly toolchain" >&2; exit 1; }

# ---- the instrumented library
echo "== cargo +nightly build --release --features tsan (-Zsanitizer=thread -Zbuild-std) into $TSAN_TARGET"
RUSTFLAGS="-Zsanitizer=thread -Cforce-frame-pointers=yes" CARGO_TARGET_DIR=$TSAN_TARGET \
    cargo +nightly build --release --lib -p greenhub --features tsan --target "$TRIPLE" -Zbuild-std

# TSan: report every race (the exit code of a case's child becomes 66 when it reported);
# the harness's forked children are started from a single-threaded parent.
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=0:exitcode=66:second_deadlock_stack=1:report_signal_unsafe=1}
export GH_TEST_TIMEOUT=${GH_TEST_TIMEOUT:-120}

# ThreadSanitizer output that fails a run even when the program's exit code says it passed.
san_begin ThreadSanitizer '(WARNING|ERROR|SUMMARY): ThreadSanitizer|ThreadSanitizer:DEADLYSIGNAL|==[0-9]+==ThreadSanitizer: '

mkdir -p "$OUT/tests"
for name in "${names[@]}"; do
    src=c-tests/$name.c bin=$OUT/tests/$name
    echo "== tsan $name"
    rm -f "$bin"
    if ! "$CC" "${TEST_CFLAGS[@]}" "${SAN[@]}" -I"$ROOT/include" -I"$ROOT/c-tests" -c "$src" \
        -o "$bin.o" || ! "$CC" -pie "$bin.o" -o "$bin" -Wl,--whole-archive "$RUNTIME" \
        -Wl,--no-whole-archive "$STATIC_LIB" -lpthread -ldl -lm -lrt; then
        failed=$((failed + 1)) bad+=("$name (not built)")
        continue
    fi
    san_run "$name" "$bin.out" "$bin"
done

san_summary tsan

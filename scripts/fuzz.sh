#!/usr/bin/env bash
# Fuzzes the C API for a bounded time: fuzz/fuzz_targets/api_sequence.rs decodes bytes
# into sequences of gh_* calls and checks the documented return codes, no crash (ASan),
# no hang, and the fd count after gh_hub_destroy (see the target's header comment).
#
# Usage: scripts/fuzz.sh [SECONDS]   (default 120)
# Starts from the seed corpus fuzz/corpus/api_sequence (hand-made, committed); what the
# run adds goes to fuzz/target/corpus-run/ (not committed; reused by the next run).
# A failing input is written to fuzz/target/artifacts/ and the run fails; reproduce it
# with the command printed, GH_FUZZ_TRACE=1 to see every call it makes.
# Needs the nightly toolchain; installs cargo-fuzz (crates.io, the pinned version below)
# only when no cargo-fuzz is installed (an installed one of another version is used).
# Prints "fuzz: N executions in S s, 0 failures" at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-120}
[[ $secs =~ ^[0-9]+$ ]] || { echo "usage: scripts/fuzz.sh [SECONDS]" >&2; exit 2; }
target=api_sequence

rustup toolchain list | grep -q '^nightly' ||
    { echo "fuzz.sh: needs the nightly toolchain (rustup toolchain list)" >&2; exit 1; }
cargo_fuzz_version=0.13.2
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== cargo install cargo-fuzz --version $cargo_fuzz_version --locked"
    start=$SECONDS
    cargo install cargo-fuzz --version "$cargo_fuzz_version" --locked
    echo "   (installed in $((SECONDS - start)) s)"
fi
echo "== $(cargo fuzz --version); $(rustc +nightly --version)"

cd fuzz
echo "== cargo +nightly fuzz build $target (ASan, the sanitizer feature)"
cargo +nightly fuzz build "$target"

run=target/corpus-run/$target artifacts=target/artifacts/$target
mkdir -p "$run" "$artifacts"
log=target/fuzz-$target.log
echo "== cargo +nightly fuzz run $target for $secs s (seeds: corpus/$target)"
rc=0
# detect_stack_use_after_return=0: the nightly ASan runtime turns it on by default, and
# corosensei 0.3.4 never lets ASan free a finished or discarded coroutine's fake stack
# (see scripts/asan.sh): with it the fuzzer's RSS grows by ~10 MB/s (2 GB in 3 min).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_stack_use_after_return=0}
# -timeout: one input taking 10 s is a hang (every wait of the target is bounded by
# 1 ms gh_timeouts); -rss_limit_mb: ASan's quarantine grows the RSS of a long run.
cargo +nightly fuzz run "$target" "$run" "corpus/$target" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" >"$log" 2>&1 || rc=$?
grep -E "^#[0-9]+[[:space:]]+(INITED|DONE)|^Done [0-9]+ runs" "$log" || true

execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
if ((rc != 0)); then
    echo "== the fuzz run failed (exit $rc); the end of $PWD/$log:"
    grep -E -A12 'panicked at|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)' "$log" | head -n 60 || tail -n 60 "$log"
    for f in "$artifacts"/*; do
        [[ -e $f ]] || continue
        echo "failing input: fuzz/$f"
        echo "reproduce: (cd fuzz && GH_FUZZ_TRACE=1 cargo +nightly fuzz run $target $f)"
    done
    echo "fuzz: ${execs:-?} executions in $secs s, 1 failure"
    exit 1
fi
[[ -n $execs ]] || { echo "fuzz.sh: no statistics in $log" >&2; exit 1; }
echo "fuzz: $execs executions in $secs s, 0 failures ($(find "$run" -type f | wc -l) corpus entries)"

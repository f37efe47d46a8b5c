# common.sh — sourced by the other scripts: paths, compiler, and compile helpers.
# Knobs: GH_CC (default cc), GH_CFLAGS (extra flags), CARGO_TARGET_DIR.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=$TARGET_DIR/c
CC=${GH_CC:-cc}
read -r -a EXTRA_CFLAGS <<<"${GH_CFLAGS:-}"
STATIC_LIB=$TARGET_DIR/release/libgreenhub.a
LIBS=("$STATIC_LIB" -lpthread -ldl -lm)
JOBS=$(nproc 2>/dev/null || echo 2)
TEST_CFLAGS=(-Wall -Wextra -Werror -std=c11 -D_GNU_SOURCE -g -O1)

build_lib() {
    echo "== cargo build --release"
    # (build.rs makes the libgreenhub.so.MAJOR link, the SONAME, beside libgreenhub.so)
    cargo build --release
}

# counts LOG: "P F S" from LOG's last "N passed, N failed[, N skipped]" line (the
# harness's closing line, or a script's), or nothing when there is none.
counts() {
    local line p f s=0
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)?$' "$1" | tail -n 1 || true)
    [[ -n $line ]] || return 0
    read -r p _ f _ s _ <<<"${line//,/}"
    echo "$p $f ${s:-0}"
}

# skip_lines NAME LOG: one line per distinct reason of LOG's "skip CASE (REASON)" lines:
# "NAME: CASE, CASE: REASON".
skip_lines() {
    sed -n 's/^skip \([^ ]*\) (\(.*\))$/\2\t\1/p' "$2" | awk -F'\t' -v name="$1" '
        !($1 in cases) { order[++n] = $1; cases[$1] = $2; next }
        { cases[$1] = cases[$1] ", " $2 }
        END { for (i = 1; i <= n; i++) print name ": " cases[order[i]] ": " order[i] }'
}

# vg_filter COUNTFILE: stdin to stdout without valgrind's known noise, counted in
# COUNTFILE:
#  * Debian's valgrind does not know pidfd_open (syscall 434): it answers ENOSYS, which
#    greenhub handles (gh_child_new falls back to SIGCHLD), and warns in five lines
#    each time;
#  * a death test's child that turned error reporting off before its deliberate fault
#    (gh_test_fault_on_purpose, c-tests/harness.h) and died of it: valgrind warns in
#    three lines that the thread exits with reporting off.
vg_filter() {
    # (a warning's lines are dropped by process id: other processes' output can come
    # between them)
    awk -v countfile="$1" '
        match($0, /^(--|==)[0-9]+(--|==) /) { pid = substr($0, 3, RLENGTH - 5) }
        /^--[0-9]+-- WARNING: unhandled amd64-linux syscall: 434$/ { n434++; more[pid] += 4; next }
        /^==[0-9]+== WARNING: exiting thread has error reporting disabled\.$/ { ndis++; more[pid] += 2; next }
        /^(--|==)[0-9]+(--|==) / && more[pid] > 0 { more[pid]--; next }
        { print; fflush() }
        END { if (n434) print "434", n434 >> countfile; if (ndis) print "dis", ndis >> countfile }'
}

# vg_filtered COUNTFILE: the line saying what vg_filter dropped (nothing if nothing).
vg_filtered() {
    [[ -s $1 ]] || return 0
    awk '{ n[$1] += $2 } END {
        if (n["434"]) printf "valgrind: %d \"unhandled amd64-linux syscall: 434\" warnings filtered (pidfd_open, unknown to this valgrind: ENOSYS, greenhub uses SIGCHLD)\n", n["434"]
        if (n["dis"]) printf "valgrind: %d \"exiting thread has error reporting disabled\" warnings filtered (death tests faulting on purpose: gh_test_fault_on_purpose)\n", n["dis"] }' "$1"
}

# check NAME COMMAND...: one check of a script that counts checks (passed, failed and
# bad, the caller's), its output indented. COMMAND runs in a subshell (the pipeline): its
# exports and cd stay there.
check() {
    local name=$1 rc=0
    shift
    echo "== $name"
    "$@" 2>&1 | sed 's/^/  /' || rc=${PIPESTATUS[0]}
    if ((rc == 0)); then
        passed=$((passed + 1))
        echo "  ok $name"
    else
        failed=$((failed + 1)) bad+=("$name")
        echo "  FAIL $name (exit $rc)"
    fi
}

# compile SRC BIN FLAGS...: one C program linked against the static library, plus the
# libraries of SRC's "// ldflags: ..." line if it has one (examples-c/backend_libev.c).
# Compiler output goes to BIN.log; BIN exists afterwards only on success.
compile() {
    local src=$1 bin=$2 ld=()
    shift 2
    rm -f "$bin"
    read -r -a ld <<<"$(sed -n 's|^// ldflags:||p' "$src" | head -n 1)"
    "$CC" "$@" "${EXTRA_CFLAGS[@]}" -I"$ROOT/include" -I"$ROOT/c-tests" \
        "$src" -o "$bin" "${LIBS[@]}" "${ld[@]}" >"$bin.log" 2>&1
}

# ensure_libev: libev's header and library (Debian libev-dev), installed with apt-get
# when missing and we are root; returns 1 if they are still missing.
ensure_libev() {
    [[ -f /usr/include/ev.h ]] && return 0
    if ((EUID == 0)) && command -v apt-get >/dev/null; then
        echo "== apt-get install -y libev-dev"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libev-dev >/dev/null 2>&1 ||
            { apt-get update -qq >/dev/null 2>&1 &&
                DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libev-dev >/dev/null 2>&1; } || true
    fi
    [[ -f /usr/include/ev.h ]] || { echo "libev-dev is not installed (apt-get install libev-dev)" >&2; return 1; }
}

# build_libev_plugin: examples-c/backend_libev.c as the plug-in shared object
# $OUT/plugins/libgh_backend_libev.so (GREENHUB_BACKEND_PLUGIN=that GREENHUB_BACKEND=libev).
LIBEV_PLUGIN=$OUT/plugins/libgh_backend_libev.so
build_libev_plugin() {
    ensure_libev || return 1
    mkdir -p "$OUT/plugins"
    echo "== cc -shared examples-c/backend_libev.c -> $LIBEV_PLUGIN"
    "$CC" -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Werror -shared -fPIC \
        -DGH_BACKEND_LIBEV_PLUGIN "${EXTRA_CFLAGS[@]}" -I"$ROOT/include" \
        examples-c/backend_libev.c -o "$LIBEV_PLUGIN" -lev
}

# compile_many DIR FLAGS... -- SRC...: compile each SRC into DIR/NAME, $JOBS at
# a time; one line per file, the compiler's output in full on failure.
# Returns 1 if any failed.
compile_many() {
    local dir=$1 flags=() src bin failed=0
    shift
    while [[ $1 != -- ]]; do flags+=("$1"); shift; done
    shift
    mkdir -p "$dir"
    for src in "$@"; do
        compile "$src" "$dir/$(basename "${src%.c}")" "${flags[@]}" &
        while (($(jobs -rp | wc -l) >= JOBS)); do wait -n || true; done
    done
    wait
    for src in "$@"; do
        bin=$dir/$(basename "${src%.c}")
        if [[ -x $bin ]]; then
            echo "  cc      $src"
            [[ -s $bin.log ]] && sed 's/^/          /' "$bin.log"
        else
            echo "  FAILED  $src"
            sed 's/^/          /' "$bin.log"
            failed=1
        fi
    done
    return "$failed"
}

# sanitizer_tools SCRIPT OUTDIR FLAGS...: make sure $CC (clang) builds a program with
# these -fsanitize FLAGS (installing Debian's clang and libclang-rt-14-dev when it
# cannot) and that the nightly toolchain is there; prints their versions.
sanitizer_tools() {
    local script=$1 out=$2
    shift 2
    local probe=("$CC" "$@" -x c - -o "$out/.probe")
    mkdir -p "$out"
    if ! { command -v "$CC" >/dev/null && echo 'int main(void) { return 0; }' |
        "${probe[@]}" >/dev/null 2>&1; }; then
        echo "== installing clang and its sanitizer runtime (apt)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            clang libclang-rt-14-dev
        echo 'int main(void) { return 0; }' | "${probe[@]}" >/dev/null 2>&1 ||
            { echo "$script: $CC cannot build with $*" >&2; exit 1; }
    fi
    rustup toolchain list | grep -q '^nightly' ||
        { echo "$script: needs the nightly toolchain (rustup toolchain list)" >&2; exit 1; }
    echo "== $($CC --version | head -n 1); $(rustc +nightly --version)"
}

# list_outcomes: a summary's "  FAILED: ..." lines (bad[]) and "  skipped: ..." lines
# (skips[]).
list_outcomes() {
    local b s
    for b in "${bad[@]}"; do echo "  FAILED: $b"; done
    for s in "${skips[@]}"; do echo "  skipped: $s"; done
}

# The results of a sanitizer run (asan.sh, tsan.sh): san_begin, then san_run per
# program (or san_record, and failed/bad directly for one that was not built), then
# san_summary. Totals: passed failed skipped reports, bad[], skips[].

# san_begin TOOL REPORTS: TOOL names the sanitizer in messages; REPORTS is an ERE of its
# output that fails a run even when the program's exit code says it passed.
san_begin() {
    SAN_TOOL=$1 SAN_REPORTS=$2
    passed=0 failed=0 skipped=0 reports=0 bad=() skips=()
}

# san_record NAME RC LOG: a program's result, counting its cases and the tool's reports.
san_record() {
    local name=$1 rc=$2 log=$3 c p=0 f=0 s=0 r
    c=$(counts "$log")
    [[ -n $c ]] && read -r p f s <<<"$c"
    [[ -z $c ]] && ((rc == 0)) && p=1
    ((rc != 0 && f == 0)) && f=1
    ((s == 0)) || mapfile -t -O "${#skips[@]}" skips < <(skip_lines "$name" "$log")
    r=$(grep -cE "$SAN_REPORTS" "$log" || true)
    passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s)) reports=$((reports + r))
    if ((r)); then
        bad+=("$name ($SAN_TOOL output: $r line(s), see $log)")
    elif ((rc != 0)); then
        bad+=("$name (exit $rc)")
    fi
}

# san_run NAME LOG COMMAND...: runs COMMAND (stdin /dev/null, output to LOG), shows LOG
# and records the result under NAME.
san_run() {
    local name=$1 log=$2 rc=0
    shift 2
    "$@" </dev/null >"$log" 2>&1 || rc=$?
    cat "$log"
    san_record "$name" "$rc" "$log"
}

# san_summary SCRIPT: the failures, skips and totals; fails (returns 1) if anything did.
san_summary() {
    echo
    echo "== $1 summary"
    list_outcomes
    echo "$SAN_TOOL reports: $reports"
    echo "$1: $passed passed, $failed failed, $skipped skipped"
    ((${#bad[@]} == 0))
}

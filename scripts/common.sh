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
    cargo build --release
    # The shared library's SONAME is libgreenhub.so.MAJOR (build.rs): give programs linked
    # against target/release/libgreenhub.so the file name the loader will look for.
    local major
    major=$(sed -n 's/^version *= *"\([0-9][0-9]*\)\..*/\1/p' Cargo.toml | head -n 1)
    ln -sfn libgreenhub.so "$TARGET_DIR/release/libgreenhub.so.$major"
}

# compile SRC BIN FLAGS...: one C program linked against the static library.
# Compiler output goes to BIN.log; BIN exists afterwards only on success.
compile() {
    local src=$1 bin=$2
    shift 2
    rm -f "$bin"
    "$CC" "$@" "${EXTRA_CFLAGS[@]}" -I"$ROOT/include" -I"$ROOT/c-tests" \
        "$src" -o "$bin" "${LIBS[@]}" >"$bin.log" 2>&1
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

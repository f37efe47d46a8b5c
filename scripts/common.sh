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

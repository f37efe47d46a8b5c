#!/usr/bin/env bash
# Consume greenhub the way users do — from an installed copy, not the source tree.
#
# Installs a CMake build into a temporary prefix, then:
#   layout     the installed files: header, libgreenhub.so.X.Y.Z with its SONAME link and
#              dev link, libgreenhub.a, CMake package, pkg-config files, docs, Python module
#   exports    scripts/check_exports.sh on the installed library (SONAME, only gh_*)
#   find_package   c-tests/consumer built with find_package(greenhub CONFIG): the shared
#              consumer (run with no LD_LIBRARY_PATH: CMake's RPATH and the SONAME link),
#              the static one (only the package's flags; no libgreenhub NEEDED), the C++
#              example; find_package of an incompatible major version fails
#   relocated  the prefix moved elsewhere: find_package still works (relocatable package)
#   add_subdirectory   c-tests/consumer built with add_subdirectory(<this tree>)
#   pkg-config c-tests/consumer/Makefile: greenhub.pc (shared) and greenhub-static.pc
#   python     bindings/python/test_greenhub.py with the installed greenhub.py, which must
#              find the installed library by itself
# Closes with "N passed, N failed, N skipped"; exits 1 on any failure.
#
# Usage: scripts/package_test.sh [BUILD_DIR]
#   BUILD_DIR  a built CMake tree of this repository (cmake --build done); default: configure
#              and build one in a temporary directory (tests and examples off)
# Env: GH_KEEP=1 keeps the temporary directory.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc 2>/dev/null || echo 2)}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/gh-package.XXXXXX")
cleanup() { if [[ ${GH_KEEP:-0} == 1 ]]; then echo "kept $tmp"; else rm -rf "$tmp"; fi; }
trap cleanup EXIT

build=${1:-}
if [[ -z $build ]]; then
    build=$tmp/build
    echo "== configure and build greenhub in $build"
    cmake -S . -B "$build" -DGREENHUB_BUILD_TESTS=OFF -DGREENHUB_BUILD_EXAMPLES=OFF >"$tmp/configure.log"
    cmake --build "$build"
fi
build=$(cd "$build" && pwd)
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")
major=${version%%.*}
[[ -n $version ]] || { echo "package_test: no project version in $build/CMakeCache.txt" >&2; exit 1; }

passed=0 failed=0 bad=()
# shellcheck source=common.sh
source "$root/scripts/common.sh" # check NAME COMMAND...
run() { echo "\$ $*"; "$@"; }

prefix=$tmp/prefix
echo "== cmake --install $build --prefix $prefix"
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log"
libdir=$prefix/lib

layout() {
    local f ok=0
    for f in include/greenhub.h "lib/libgreenhub.so.$version" lib/libgreenhub.a \
        lib/cmake/greenhub/greenhubConfig.cmake lib/cmake/greenhub/greenhubConfigVersion.cmake \
        lib/pkgconfig/greenhub.pc lib/pkgconfig/greenhub-static.pc share/doc/greenhub/README.md \
        share/greenhub/python/greenhub.py include/greenhub_patch.h "lib/libgreenhub_patch.so.$version" \
        lib/pkgconfig/greenhub-patch.pc; do
        if [[ -f $prefix/$f && ! -L $prefix/$f ]]; then echo "file    $f"; else echo "MISSING $f"; ok=1; fi
    done
    local link target
    for link in "libgreenhub.so.$major:libgreenhub.so.$version" "libgreenhub.so:libgreenhub.so.$major" \
        "libgreenhub_patch.so.$major:libgreenhub_patch.so.$version" \
        "libgreenhub_patch.so:libgreenhub_patch.so.$major"; do
        target=$(readlink "$libdir/${link%%:*}" || true)
        if [[ $target == "${link#*:}" ]]; then
            echo "symlink lib/${link%%:*} -> $target"
        else
            echo "BAD     lib/${link%%:*} -> '${target}' (expected a symlink to ${link#*:})"
            ok=1
        fi
    done
    cmp -s include/greenhub.h "$prefix/include/greenhub.h" || { echo "installed header differs from include/greenhub.h"; ok=1; }
    return $ok
}
check "layout of the installed tree" layout
check "exports: SONAME and only gh_* symbols of the installed library" \
    bash scripts/check_exports.sh "$libdir/libgreenhub.so.$version" "$prefix/include/greenhub.h"

needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'; }
runs_shared() { # runs_shared BIN: NEEDED has the SONAME, and it runs on the shared library
    needed "$1" | grep -qx "libgreenhub.so.$major" ||
        { echo "$1 does not need libgreenhub.so.$major: $(needed "$1" | tr '\n' ' ')"; return 1; }
    run env -u LD_LIBRARY_PATH "$1" shared
}
runs_static() { # runs_static BIN: no libgreenhub NEEDED, and it runs
    if needed "$1" | grep -q libgreenhub; then echo "$1 needs libgreenhub.so: not static"; return 1; fi
    run env -u LD_LIBRARY_PATH "$1" static
}

consumer_cmake() { # consumer_cmake DIR CMAKE_ARGS...: configure, build, run the consumers
    local dir=$1
    shift
    run cmake -S c-tests/consumer -B "$dir" -DCMAKE_BUILD_TYPE=Release "$@" >"$dir.log" 2>&1 ||
        { cat "$dir.log"; return 1; }
    grep -- '-- greenhub' "$dir.log" || true
    cmake --build "$dir" >"$dir.build.log" 2>&1 || { cat "$dir.build.log"; return 1; }
    runs_shared "$dir/consumer" && runs_static "$dir/consumer_static" && run "$dir/cxx_raii" &&
        run env -u LD_LIBRARY_PATH "$dir/patch_consumer"
}
check "find_package(greenhub CONFIG): shared, static, C++" \
    consumer_cmake "$tmp/find_package" -DCMAKE_PREFIX_PATH="$prefix"

wrong_major() {
    local v=$((major + 1)).0
    if cmake -S c-tests/consumer -B "$tmp/wrong_major" -DCMAKE_PREFIX_PATH="$prefix" \
        -DGREENHUB_VERSION="$v" >"$tmp/wrong_major.log" 2>&1; then
        echo "find_package(greenhub $v) accepted greenhub $version"
        return 1
    fi
    grep -m 1 -A 3 'version' "$tmp/wrong_major.log" || true
    echo "find_package(greenhub $v) refused greenhub $version, as it should"
}
check "find_package of another major version fails" wrong_major

relocated() {
    mv "$prefix" "$tmp/moved"
    local rc=0
    consumer_cmake "$tmp/relocated" -DCMAKE_PREFIX_PATH="$tmp/moved" || rc=$?
    mv "$tmp/moved" "$prefix"
    return $rc
}
check "find_package from a moved prefix (relocatable package)" relocated

# The consumer's greenhub runs its own cargo step, into the source tree's target/ (the
# default): the library built there already is not built a second time.
check "add_subdirectory(greenhub): shared, static, C++" \
    consumer_cmake "$tmp/add_subdirectory" -DGREENHUB_SOURCE_DIR="$root"

pkgconfig() {
    export PKG_CONFIG_PATH=$libdir/pkgconfig
    local v
    v=$(pkg-config --modversion greenhub)
    [[ $v == "$version" ]] || { echo "pkg-config --modversion greenhub: $v, expected $version"; return 1; }
    echo "greenhub.pc:          $(pkg-config --cflags --libs greenhub)"
    echo "  --static:           $(pkg-config --static --libs greenhub)"
    echo "greenhub-static.pc:   $(pkg-config --cflags --libs greenhub-static)"
    pkg-config --static --libs greenhub | grep -q -- '-lpthread' ||
        { echo "greenhub.pc has no Libs.private"; return 1; }
    mkdir -p "$tmp/pc"
    run make -s -C c-tests/consumer O="$tmp/pc" || return 1
    # A shared library outside the loader's paths: found through LD_LIBRARY_PATH, as a
    # user of a private prefix would (or ldconfig, for /usr/local).
    needed "$tmp/pc/consumer_pc" | grep -qx "libgreenhub.so.$major" ||
        { echo "consumer_pc does not need libgreenhub.so.$major"; return 1; }
    run env LD_LIBRARY_PATH="$libdir" "$tmp/pc/consumer_pc" shared && runs_static "$tmp/pc/consumer_pc_static"
}
check "pkg-config: greenhub (shared) and greenhub-static" pkgconfig

patch_pc() { # the cooperative libc from the installed tree: linked ahead of libc, and preloaded
    export PKG_CONFIG_PATH=$libdir/pkgconfig
    echo "greenhub-patch.pc:    $(pkg-config --cflags --libs greenhub-patch)"
    local cc=${GH_CC:-cc} bin=$tmp/pc/patch_consumer preload
    mkdir -p "$tmp/pc"
    # shellcheck disable=SC2046
    run "$cc" -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror c-tests/consumer/patch_consumer.c \
        -o "$bin" $(pkg-config --cflags --libs greenhub-patch) || return 1
    needed "$bin" | grep -qx "libgreenhub_patch.so.$major" ||
        { echo "patch_consumer does not need libgreenhub_patch.so.$major"; return 1; }
    run env LD_LIBRARY_PATH="$libdir" "$bin" || return 1
    # shellcheck disable=SC2046
    run "$cc" -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror c-tests/consumer/patch_consumer.c \
        -o "$bin-preload" $(pkg-config --cflags --libs greenhub) || return 1
    preload=$(pkg-config --variable=preload greenhub-patch)
    run env LD_LIBRARY_PATH="$libdir" LD_PRELOAD="$preload" "$bin-preload"
}
check "pkg-config: greenhub-patch (linked ahead of libc, and LD_PRELOAD)" patch_pc

python_binding() {
    command -v python3 >/dev/null || { echo "python3 not found"; return 1; }
    run env -u GREENHUB_LIBRARY -u LD_LIBRARY_PATH GREENHUB_PYTHON_DIR="$prefix/share/greenhub/python" \
        GREENHUB_EXPECT_LIBRARY="$libdir/libgreenhub.so.$version" \
        python3 -B bindings/python/test_greenhub.py
}
check "python: bindings/python/test_greenhub.py on the installed module and library" python_binding

echo
for b in "${bad[@]}"; do echo "FAILED: $b"; done
echo "package_test: $passed passed, $failed failed, 0 skipped"
((failed == 0))

#!/usr/bin/env bash
# check_exports.sh — the shared library's ELF interface is the header's, and nothing more.
#
# Fails (exit 1) when, in LIB (default target/release/libgreenhub.so):
#   * the SONAME is not libgreenhub.so.MAJOR (MAJOR = GH_VERSION_MAJOR of the header);
#   * a defined dynamic symbol (`nm -D --defined-only`) is not a gh_* name: the C ABI
#     is the only thing the library exports (no Rust or dependency symbols);
#   * a gh_* function declared in the header is not exported, or an exported gh_*
#     symbol is not declared in the header.
# Usage: scripts/check_exports.sh [LIB [HEADER]]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
lib=${1:-${CARGO_TARGET_DIR:-$root/target}/release/libgreenhub.so}
header=${2:-$root/include/greenhub.h}
for tool in readelf nm; do
    command -v "$tool" >/dev/null || { echo "check_exports: $tool not found (binutils)" >&2; exit 1; }
done
[[ -f $lib ]] || { echo "check_exports: no $lib (build it first)" >&2; exit 1; }

failed=0
major=$(sed -n 's/^#define GH_VERSION_MAJOR \([0-9][0-9]*\).*/\1/p' "$header")
soname=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
if [[ $soname == "libgreenhub.so.$major" ]]; then
    echo "  soname: $soname"
else
    echo "  FAILED: soname of $lib is '${soname:-none}', expected libgreenhub.so.$major"
    failed=1
fi

exported=$(nm -D --defined-only "$lib" | awk '{ print $NF }' | sed 's/@.*//' | sort -u)
foreign=$(grep -v '^gh_' <<<"$exported" || true)
if [[ -n $foreign ]]; then
    echo "  FAILED: symbols outside gh_* exported by $lib:"
    sed 's/^/    /' <<<"$foreign"
    failed=1
fi

# Function prototypes of the header: "name(" at the start of a declaration, comments dropped.
declared=$(perl -0777 -pe 's{/\*.*?\*/}{ }gs; s{//[^\n]*}{}g' "$header" | grep -v '^[[:space:]]*#' |
    tr '\n' ' ' | tr ';{}' '\n\n\n' |
    perl -ne 'print "$1\n" if /^\s*(?!typedef)[\w\s\*]*?\b(gh_\w+)\s*\([^()]*\)\s*$/' | sort -u)
[[ -n $declared ]] || { echo "check_exports: no prototypes found in $header" >&2; exit 1; }
missing=$(comm -23 <(echo "$declared") <(echo "$exported"))
extra=$(comm -13 <(echo "$declared") <(grep '^gh_' <<<"$exported" || true))
if [[ -n $missing ]]; then
    echo "  FAILED: declared in the header but not exported:"
    sed 's/^/    /' <<<"$missing"
    failed=1
fi
if [[ -n $extra ]]; then
    echo "  FAILED: exported but not declared in the header:"
    sed 's/^/    /' <<<"$extra"
    failed=1
fi
n=$(grep -c . <<<"$exported")
if ((failed)); then
    echo "check_exports: FAILED ($lib)"
    exit 1
fi
echo "check_exports: ok — $n symbols exported, all gh_* and all declared in $(basename "$header")"

#!/usr/bin/env bash
# Generate the documentation site (HTML) with doxygen: the guide (docs/guide/*.md) and
# the C API reference by concept, from include/greenhub.h and include/greenhub_patch.h.
#
# Usage: scripts/docs.sh [OUTDIR]     (default: target/docs; the pages go to OUTDIR/html)
# Config: docs/Doxyfile, docs/greenhub.dox (main page), docs/reference.dox (the
# reference's groups: each concept's text and example), docs/guide/. The headers are
# not given to doxygen as they are: scripts/doc_groups.py writes copies into OUTDIR/src
# with each item put in its group, and fails when a public item has no group. Code in the
# guide and the groups comes from examples-c/ (\snippet, \include): programs the test
# suite builds and runs. Needs doxygen (Debian: apt-get install doxygen). Doxygen's
# warnings go to OUTDIR/doxygen-warnings.log and are printed; the run fails on any of them
# (but the opaque `id` field of handle structs), so the reference stays complete.
# scripts/docs_check.py checks the generated site (links, anchors, rendering in Chromium).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=${1:-${CARGO_TARGET_DIR:-$root/target}/docs}
command -v doxygen >/dev/null || { echo "docs.sh: doxygen not found (apt-get install doxygen)" >&2; exit 1; }
mkdir -p "$out"
out=$(cd "$out" && pwd)
log=$out/doxygen-warnings.log
rm -rf "$out/html" "$out/src"
python3 scripts/doc_groups.py "$out/src"
echo "== doxygen $(doxygen --version): docs/Doxyfile -> $out/html"
{
    cat docs/Doxyfile
    echo "INPUT += \"$out/src/greenhub.h\" \"$out/src/greenhub_patch.h\""
    echo "STRIP_FROM_PATH = \"$out/src\" \"$root\""
    echo "OUTPUT_DIRECTORY = \"$out\""
    echo "WARN_LOGFILE = \"$log\""
} | doxygen -
[[ -f $out/html/index.html ]] || { echo "docs.sh: doxygen wrote no $out/html/index.html" >&2; exit 1; }
# A handle's only field (`uint64_t id`) is opaque and documented at its struct
# (scripts/check_header_docs.py makes the same exception): not a warning here.
warnings=$(grep -v -E 'warning: Member id \(variable\) of struct gh_[a-z_]+ is not documented\.$' "$log" || true)
if [[ -n $warnings ]]; then
    echo "$warnings"
    echo "docs.sh: FAILED — $(grep -c 'warning:' <<<"$warnings" || true) doxygen warning(s), see above"
    exit 1
fi
echo "docs.sh: ok — open $out/html/index.html ($(find "$out/html" -name '*.html' | wc -l) pages)"

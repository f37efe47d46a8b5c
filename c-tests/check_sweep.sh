#!/bin/sh
# check_sweep.sh — keeps the fault sweeps complete as the header grows (FAULTS 1).
#
# Fails (exit 1) when
#   * a gh_* function declared in include/greenhub.h takes a pointer (a `*`
#     parameter or a function-pointer typedef: gh_fn, gh_watcher_cb, gh_callback_fn)
#     or a handle (struct gh_greenlet / gh_watcher / gh_hub_ref by value) and is not
#     called — `name(` outside comments — in c-tests/test_faults.c;
#   * a GH_E* error code #defined in the header is missing from the code table of
#     c-tests/test_hub.c (`CODE(GH_E...)`).
# Prints what it checked. Usage: c-tests/check_sweep.sh  (from anywhere)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
header="$root/include/greenhub.h"
faults="$root/c-tests/test_faults.c"
hub="$root/c-tests/test_hub.c"

# C source without comments (block and line), one statement per line.
strip() {
    perl -0777 -pe 's{/\*.*?\*/}{ }gs; s{//[^\n]*}{}g' "$1"
}

# "name<TAB>parameter list" for every function prototype of the header.
protos=$(strip "$header" | grep -v '^[[:space:]]*#' | tr '\n' ' ' | tr ';{}' '\n\n\n' |
    perl -ne 'print "$1\t$2\n" if /^\s*(?!typedef)[\w\s\*]*?\b(gh_\w+)\s*\(([^()]*)\)\s*$/')
[ -n "$protos" ] || { echo "check_sweep: no prototypes found in $header" >&2; exit 1; }

calls=$(strip "$faults")
missing=0
checked=0
skipped=""
tab=$(printf '\t')
echo "$protos" | {
    while IFS="$tab" read -r name params; do
        if printf '%s' "$params" |
            grep -Eq '\*|\bgh_fn\b|\bgh_watcher_cb\b|\bgh_callback_fn\b|\bgh_greenlet\b|\bgh_watcher\b|\bgh_hub_ref\b'; then
            checked=$((checked + 1))
            if ! printf '%s' "$calls" | grep -Eq "\\b$name[[:space:]]*\\("; then
                echo "check_sweep: $name($params) takes a pointer or handle but is not called in c-tests/test_faults.c" >&2
                missing=$((missing + 1))
            fi
        else
            skipped="$skipped $name"
        fi
    done
    echo "check_sweep: $checked functions with pointer/handle parameters checked in test_faults.c"
    echo "check_sweep: no pointer/handle parameters (not required):$skipped"
    [ "$missing" -eq 0 ]
} || exit 1

# Every GH_E* code of the header in test_hub.c's code table.
codes=$(grep -Eo '^#define GH_E[A-Z0-9_]+' "$header" | awk '{print $2}' | grep -vx 'GH_EAI_BASE') # GH_EAI_BASE is a base, not a code
table=$(strip "$hub")
for c in $codes; do
    if ! printf '%s' "$table" | grep -Eq "CODE\\($c\\)"; then
        echo "check_sweep: error code $c is missing from test_hub.c's CODES table" >&2
        missing=$((missing + 1))
    fi
done
echo "check_sweep: $(echo "$codes" | wc -l) error codes checked in test_hub.c"
[ "$missing" -eq 0 ] || exit 1
echo "check_sweep: ok"

#!/usr/bin/env bash
# benches/backend_plugin.sh — what a backend plugged in from C costs (issue 17): the
# ping-pong workloads of benches/icount/icount.c under the built-in epoll backend and
# under examples-c/backend_libev.c loaded as a plug-in (GREENHUB_BACKEND_PLUGIN,
# GREENHUB_BACKEND=libev), in the same run: callgrind user instructions per round trip
# ((Ir(N2) - Ir(N1)) / (N2 - N1), see benches/icount.sh, which measures each side),
# strace's syscalls per round trip, and the libev / epoll ratio. Figures, never a verdict.
#
# benches/icount.sh's ceilings and no-regression bounds are the built-in backend's: its
# "ABOVE"/"REGRESSED" marks on the libev run say nothing about the core.
#
# Usage: benches/backend_plugin.sh [--quick]   (--quick: N1=5000, N2=15000)
# Files: target/icount/results.{epoll,libev}.tsv
set -euo pipefail
source "$(dirname "$0")/../scripts/common.sh"

args=(--only pingpong,recvsend)
for a; do
    case $a in
    --quick) args+=(--quick) ;;
    -h | --help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "backend_plugin.sh: unknown argument $a" >&2; exit 2 ;;
    esac
done
build_lib
build_libev_plugin
WORK=$TARGET_DIR/icount
unset GREENHUB_BACKEND GREENHUB_BACKEND_PLUGIN
echo "==== built-in epoll"
./benches/icount.sh "${args[@]}"
cp "$WORK/results.tsv" "$WORK/results.epoll.tsv"
echo
echo "==== libev plug-in (GREENHUB_BACKEND_PLUGIN=$LIBEV_PLUGIN GREENHUB_BACKEND=libev)"
GREENHUB_BACKEND=libev GREENHUB_BACKEND_PLUGIN=$LIBEV_PLUGIN ./benches/icount.sh "${args[@]}"
cp "$WORK/results.tsv" "$WORK/results.libev.tsv"

echo
echo "ping-pong through a C plug-in backend vs the built-in one (callgrind, $(date -u +%Y-%m-%d)):"
echo
echo "| workload | epoll (built-in): instructions per round trip | libev (plug-in) | libev / epoll | syscalls per round trip: epoll | libev |"
echo "|---|---|---|---|---|---|"
awk -F'\t' '
    FNR == 1 { file++; next }
    file == 1 { e[$1] = $2; es[$1] = $6; order[++n] = $1 }
    file == 2 { l[$1] = $2; ls[$1] = $6 }
    END {
        for (i = 1; i <= n; i++) {
            w = order[i]
            r = (e[w] > 0 && l[w] != "") ? sprintf("%.2f", l[w] / e[w]) : "—"
            printf "| %s | %s | %s | %s | %s | %s |\n", w, e[w], (l[w] == "" ? "—" : l[w]), r,
                (es[w] == "" ? "—" : es[w]), (ls[w] == "" ? "—" : ls[w])
        }
    }' "$WORK/results.epoll.tsv" "$WORK/results.libev.tsv"

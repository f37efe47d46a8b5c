#!/usr/bin/env bash
# http_smoke.sh — the smoke run of examples-c/http_server.c (issue 14): start it on an
# ephemeral port, check one keep-alive exchange, load it with `wrk -c1000` (installed
# with apt-get when missing and we are root; skipped with a note otherwise), then
# SIGTERM: it must exit 0 within its 5 s stop timeout (+ slack).
#
# Usage: scripts/http_smoke.sh BINARY [SECONDS]   (default 2 s of wrk)
# Prints wrk's summary; exit 0 on success.
set -euo pipefail
bin=${1:?usage: http_smoke.sh BINARY [SECONDS]}
secs=${2:-2}
out=$(mktemp)
trap 'rm -f "$out"; [[ -n ${pid:-} ]] && kill -KILL "$pid" 2>/dev/null || true' EXIT

"$bin" 127.0.0.1:0 >"$out" &
pid=$!
for _ in $(seq 100); do
    addr=$(sed -n 's/^listening on //p' "$out")
    [[ -n $addr ]] && break
    sleep 0.05
done
[[ -n ${addr:-} ]] || { echo "http_smoke: the server printed no address" >&2; exit 1; }
host=${addr%:*} port=${addr##*:}

# Two requests on one connection (keep-alive), the second asking to close.
exec 3<>"/dev/tcp/$host/$port"
printf 'GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&3
reply=$(timeout 5 cat <&3)
exec 3>&-
n=$(grep -c '^HTTP/1.1 200 OK' <<<"$reply" || true)
[[ $n == 2 ]] || { echo "http_smoke: expected 2 replies on one connection, got $n" >&2; exit 1; }
echo "http_smoke: 2 keep-alive requests on one connection: ok"

if ! command -v wrk >/dev/null && [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "http_smoke: installing wrk"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null 2>&1 || true
fi
if command -v wrk >/dev/null; then
    ulimit -n 4096 2>/dev/null || true
    res=$(wrk -t1 -c1000 -d"${secs}s" "http://$addr/")
    echo "$res" | sed 's/^/  /'
    grep -q '^Requests/sec' <<<"$res" || { echo "http_smoke: wrk failed" >&2; exit 1; }
    if grep -qE 'Non-2xx|Socket errors: connect [1-9]|read [1-9]' <<<"$res"; then
        echo "http_smoke: errors under load" >&2
        exit 1
    fi
else
    echo "http_smoke: wrk not installed (not root or no apt-get): load step skipped"
fi

t0=$(date +%s%N)
kill -TERM "$pid"
for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
kill -0 "$pid" 2>/dev/null && { echo "http_smoke: still running 10 s after SIGTERM" >&2; exit 1; }
rc=0
wait "$pid" || rc=$?
pid=
ms=$((($(date +%s%N) - t0) / 1000000))
((rc == 0)) || { echo "http_smoke: exit status $rc after SIGTERM" >&2; exit 1; }
echo "http_smoke: stopped by SIGTERM within ${ms} ms, exit 0"

#!/usr/bin/env bash
# benches/http.sh — examples-c/http_server.c (greenhub) beside the same server on libev
# (benches/http/http_ev.c), loaded by wrk with keep-alive, interleaved in one run
# (issue 14's "within 5 % of libev"). Prints figures, never fails on a time.
#
# Usage: benches/http.sh [REPS] [SECONDS] [CONNECTIONS]   (default 3 × 5 s, -c1000)
# Needs wrk and libev-dev (installed with apt-get when missing and root).
set -euo pipefail
source "$(dirname "$0")/../scripts/common.sh"
reps=${1:-3} secs=${2:-5} conns=${3:-1000}
dir=$TARGET_DIR/bench-http
mkdir -p "$dir"
if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
    [[ -f /usr/include/ev.h ]] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libev-dev >/dev/null
fi
build_lib >/dev/null
flags=(-std=c11 -D_GNU_SOURCE -O2 -g -DNDEBUG -Wall -Wextra -Werror)
"$CC" "${flags[@]}" -I"$ROOT/include" examples-c/http_server.c -o "$dir/greenhub" "${LIBS[@]}"
"$CC" "${flags[@]}" benches/http/http_ev.c -o "$dir/libev" -lev
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# run NAME: start the server, wrk it, SIGTERM it; prints "requests/s cpu-us/request"
# (the server's user+system CPU time over the requests wrk counted: steadier than
# requests/s on a shared machine, where wrk and other processes take the cores)
run() {
    local out=$dir/$1.out addr rps n ticks hz
    rm -f "$out"
    "$dir/$1" "$([[ $1 == libev ]] && echo 0 || echo 127.0.0.1:0)" >"$out" 2>"$dir/$1.err" &
    local pid=$!
    for _ in $(seq 100); do addr=$(sed -n 's/^listening on //p' "$out" 2>/dev/null); [[ -n $addr ]] && break; sleep 0.05; done
    addr=${addr/0.0.0.0/127.0.0.1}
    wrk -t1 -c"$conns" -d"${secs}s" "http://$addr/" >"$dir/$1.wrk"
    ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    hz=$(getconf CLK_TCK)
    kill -TERM "$pid"
    wait "$pid"
    rps=$(sed -n 's/^Requests\/sec: *//p' "$dir/$1.wrk")
    n=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$dir/$1.wrk")
    echo "$rps $(echo "$ticks * 1000000 / $hz / $n" | bc -l)"
}

echo "wrk -t1 -c$conns -d${secs}s, keep-alive, $(nproc) cores; greenhub = examples-c/http_server.c (epoll backend)"
printf '%-4s %12s %12s %8s   %14s %14s\n' rep "greenhub r/s" "libev r/s" ratio \
    "greenhub us/req" "libev us/req"
for r in $(seq "$reps"); do
    read -r g gc <<<"$(run greenhub)"
    read -r e ec <<<"$(run libev)"
    printf '%-4s %12.0f %12.0f %8.3f   %14.2f %14.2f\n' "$r" "$g" "$e" "$(echo "$g / $e" | bc -l)" "$gc" "$ec"
done

#!/usr/bin/env bash
# Runs examples-c/patch/clients.c: unmodified libpq and libcurl called from many
# greenlets on one thread, with libgreenhub_patch.so interposed, next to the same run
# with the patch off (GREENHUB_PATCH=0).
#
# It installs what it needs when missing (apt-get as root: libpq-dev
# libcurl4-openssl-dev postgresql python3 pkg-config), starts a PostgreSQL server in a
# temporary directory (Unix socket only, no TCP), and a local HTTP server on 127.0.0.1
# that answers every request after DELAY seconds; both are stopped by PID on exit.
#
# Usage: scripts/patch_example.sh [--smoke] [--n N] [--delay S]
#   default: --n 50 --delay 1 (the patched run takes ~1 s, the unpatched one ~50 s per
#   library); --smoke: --n 10 --delay 0.2 and a non-zero exit unless the patched run
#   was concurrent (scripts/test_patch.sh runs this).
set -euo pipefail
source "$(dirname "$0")/common.sh"

n=50 delay=1 extra=(--compare)
while (($#)); do
    case $1 in
    --smoke) n=10 delay=0.2 extra=(--check) ;;
    --n) n=$2; shift ;;
    --delay) delay=$2; shift ;;
    -h | --help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "patch_example.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

# ---- what the example needs
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
need=()
pkg-config --exists libpq 2>/dev/null || need+=(libpq-dev)
pkg-config --exists libcurl 2>/dev/null || need+=(libcurl4-openssl-dev)
[[ -n $pgbin && -x $pgbin/initdb ]] || need+=(postgresql)
command -v python3 >/dev/null || need+=(python3)
command -v pkg-config >/dev/null || need+=(pkg-config)
if ((${#need[@]})); then
    if ((EUID == 0)); then
        echo "== installing: ${need[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
        pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    else
        echo "patch_example.sh: missing ${need[*]} (install them, or run as root)" >&2
        exit 1
    fi
fi

[[ ${GH_SKIP_BUILD:-0} == 1 ]] || build_lib
R=$TARGET_DIR/release
ln -sfn libgreenhub_patch.so "$R/libgreenhub_patch.so.0"
bin=$OUT/patch/clients
mkdir -p "$OUT/patch"
echo "== cc examples-c/patch/clients.c -> $bin"
# shellcheck disable=SC2046
"$CC" -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Werror "${EXTRA_CFLAGS[@]}" -Iinclude \
    $(pkg-config --cflags libpq libcurl) examples-c/patch/clients.c -o "$bin" \
    -L"$R" -Wl,-rpath,"$R" -lgreenhub $(pkg-config --libs libpq libcurl)

tmp=$(mktemp -d /tmp/gh-patch-example.XXXXXX)
http_pid="" pg_pid=""
cleanup() {
    [[ -z $http_pid ]] || kill "$http_pid" 2>/dev/null || true
    # The postmaster's own PID (runuser does not pass SIGINT on): a fast shutdown.
    local pm=""
    [[ -f $tmp/data/postmaster.pid ]] && pm=$(head -n 1 "$tmp/data/postmaster.pid")
    [[ -z $pm ]] || kill -INT "$pm" 2>/dev/null || true
    for _ in $(seq 100); do
        [[ -n $pm ]] && kill -0 "$pm" 2>/dev/null || break
        sleep 0.1
    done
    [[ -z $pg_pid ]] || kill "$pg_pid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

# ---- PostgreSQL: initdb + postgres on a Unix socket in $tmp (as user postgres when root)
as_pg=()
if ((EUID == 0)); then
    chown postgres "$tmp"
    as_pg=(runuser -u postgres --)
fi
echo "== PostgreSQL ($pgbin) in $tmp"
"${as_pg[@]}" "$pgbin/initdb" -D "$tmp/data" -A trust -U postgres --no-sync >"$tmp/initdb.log" 2>&1 ||
    { cat "$tmp/initdb.log"; exit 1; }
"${as_pg[@]}" "$pgbin/postgres" -D "$tmp/data" -k "$tmp" -c listen_addresses= \
    -c max_connections=$((n + 20)) -c fsync=off -c synchronous_commit=off >"$tmp/pg.log" 2>&1 &
pg_pid=$!
for _ in $(seq 100); do
    [[ -S $tmp/.s.PGSQL.5432 ]] && break
    sleep 0.1
done
[[ -S $tmp/.s.PGSQL.5432 ]] || { cat "$tmp/pg.log"; echo "PostgreSQL did not start"; exit 1; }

# ---- HTTP: every request answered after $delay s (one thread per request)
python3 -u - "$delay" >"$tmp/http.port" 2>"$tmp/http.log" <<'PY' &
import http.server, sys, time
delay = float(sys.argv[1])
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    def do_GET(self):
        time.sleep(delay)
        body = b"slow hello\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer.request_queue_size = 256
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
PY
http_pid=$!
for _ in $(seq 50); do
    [[ -s $tmp/http.port ]] && break
    sleep 0.1
done
port=$(cat "$tmp/http.port")
[[ -n $port ]] || { cat "$tmp/http.log"; echo "HTTP server did not start"; exit 1; }

echo "== LD_PRELOAD=libgreenhub_patch.so $bin --n $n --delay $delay ${extra[*]}"
LD_PRELOAD=$R/libgreenhub_patch.so "$bin" --n "$n" --delay "$delay" \
    --pg "host=$tmp dbname=postgres user=postgres" --url "http://127.0.0.1:$port/" "${extra[@]}"

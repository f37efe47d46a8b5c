# peers.sh — sourced by benches/run.sh and scripts/bench.sh (after scripts/common.sh):
# which peer libraries are installed, and compiling benches/peers/*.c.

# The peer programs: NAME SOURCE HEADER DEBIAN-PACKAGE PKG-CONFIG-NAME FALLBACK-LIBS
PEER_TABLE=(
    "st st.c st.h libst-dev st -lst"
    "libev ev.c ev.h libev-dev - -lev"
    "libuv uv.c uv.h libuv1-dev libuv -luv"
    "libevent event.c event2/event.h libevent-dev libevent_core -levent_core"
)
PEER_PACKAGES=(libev-dev libuv1-dev libevent-dev libst-dev pkg-config)

# peer_available HEADER: the header preprocesses (the -dev package is installed).
peer_available() {
    printf '#include <%s>\n' "$1" | "$CC" -E -x c - >/dev/null 2>&1
}

# peer_libs PKG FALLBACK: link flags from pkg-config when it knows PKG, else FALLBACK.
peer_libs() {
    if [[ $1 != - ]] && command -v pkg-config >/dev/null && pkg-config --exists "$1"; then
        pkg-config --cflags --libs "$1"
    else
        echo "$2"
    fi
}

# compile_peers DIR: greenhub.c and echo_client.c always (the static library must be
# built), each peer program whose package is installed; a line per skipped peer.
# Returns 1 if a compile failed (a missing package is not a failure).
compile_peers() {
    local dir=$1 failed=0 row name src header pkg pc libs flags
    flags=(-std=c11 -D_GNU_SOURCE -O2 -g -DNDEBUG -Wall -Wextra -Werror "${EXTRA_CFLAGS[@]}")
    mkdir -p "$dir"
    PEERS_BUILT=(greenhub)
    peer_cc() { # NAME SRC LIBS...
        local name=$1 src=$2
        shift 2
        rm -f "$dir/$name"
        if "$CC" "${flags[@]}" -I"$ROOT/include" "$ROOT/benches/peers/$src" -o "$dir/$name" "$@" \
            >"$dir/$name.log" 2>&1; then
            echo "  cc      benches/peers/$src"
            [[ -s $dir/$name.log ]] && sed 's/^/          /' "$dir/$name.log"
            return 0
        fi
        echo "  FAILED  benches/peers/$src"
        sed 's/^/          /' "$dir/$name.log"
        return 1
    }
    peer_cc greenhub greenhub.c "${LIBS[@]}" || failed=1
    peer_cc echo_client echo_client.c || failed=1
    for row in "${PEER_TABLE[@]}"; do
        read -r name src header pkg pc libs <<<"$row"
        if ! peer_available "$header"; then
            echo "  skip    benches/peers/$src: $pkg is not installed (<$header> not found)"
            continue
        fi
        # shellcheck disable=SC2046 # pkg-config output is a list of flags
        if peer_cc "$name" "$src" $(peer_libs "$pc" "$libs") -lm; then
            PEERS_BUILT+=("$name")
        else
            failed=1
        fi
    done
    return "$failed"
}

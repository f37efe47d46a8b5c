#!/usr/bin/env bash
# benches/run.sh — greenhub beside the libraries a C developer would pick instead
# (State Threads, libev, libuv, libevent; gevent with --gevent), the workloads of
# issue 6, side by side on this machine.
#
# Installs the missing Debian packages (as root; otherwise it says what to install and
# runs the peers it has), builds greenhub (cargo build --release), benches/peers/* and
# the switching layer's floors (benches/floor: corosensei alone, on the hand-off rows),
# runs every workload REPS times interleaved (rep 1: greenhub, peer, peer…; rep 2: …),
# and prints one Markdown table: median, min–max, and greenhub/peer — the ratio taken
# within each repetition, then its median. It prints figures and never fails on a time;
# it exits non-zero only if a program failed its own checks (wrong count or bytes,
# crash, timeout), and says so loudly.
#
# Usage: benches/run.sh [--reps N] [--quick] [--only NAME[,NAME...]] [--no-install] [--gevent]
#   --reps N     repetitions (default 5; 1 with --quick)
#   --quick      a fast pass: 10x smaller counts, 1 s echo, scale at 10k only
#   --only LIST  workloads whose name starts with one of LIST (e.g. pingpong,scale)
#   --gevent     add gevent (pip-installed into a venv under target/) where it has the workload
# Workloads: handoff handoff-cond spawn pingpong timers timers-again sleepers echo scale-10k scale-100k scale-1M
# Output: the table on stdout; raw results in target/peers/results.tsv, logs in target/peers/logs/.
set -euo pipefail
source "$(dirname "$0")/../scripts/common.sh"
source "$ROOT/benches/peers/peers.sh"

reps="" quick=0 only="" install=1 gevent=0
while (($#)); do
    case $1 in
    --reps) reps=${2:?--reps needs a number}; shift ;;
    --reps=*) reps=${1#*=} ;;
    --quick) quick=1 ;;
    --only) only=${2:?--only needs a name}; shift ;;
    --only=*) only=${1#*=} ;;
    --no-install) install=0 ;;
    --gevent) gevent=1 ;;
    -h | --help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
[[ -n $reps ]] || reps=$((quick ? 1 : 5))
[[ $reps =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: --reps wants a positive number" >&2; exit 2; }

# ---- workloads --------------------------------------------------------------------
WORKLOADS=(handoff handoff-cond spawn pingpong timers timers-again sleepers echo scale-10k scale-100k scale-1M)
((quick)) && WORKLOADS=(handoff handoff-cond spawn pingpong timers timers-again sleepers echo scale-10k)
if [[ -n $only ]]; then
    IFS=, read -r -a wanted <<<"$only"
    selected=()
    for w in "${WORKLOADS[@]}"; do
        for o in "${wanted[@]}"; do [[ $w == "$o"* ]] && { selected+=("$w"); break; }; done
    done
    ((${#selected[@]})) || { echo "run.sh: --only $only matches none of: ${WORKLOADS[*]}" >&2; exit 2; }
    WORKLOADS=("${selected[@]}")
fi

# ---- packages ---------------------------------------------------------------------
missing=()
if command -v dpkg-query >/dev/null; then
    for pkg in "${PEER_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
    done
fi
if ((${#missing[@]})); then
    if ((install)) && ((EUID == 0)) && command -v apt-get >/dev/null; then
        echo "== apt-get install -y ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -qq "${missing[@]}" || { apt-get update -qq && apt-get install -y -qq "${missing[@]}"; } ||
            echo "run.sh: could not install ${missing[*]}; running the peers that are installed"
    else
        echo "run.sh: missing Debian packages: ${missing[*]}"
        echo "        install them with: sudo apt-get install -y ${missing[*]}"
        echo "        (running greenhub and the peers that are installed)"
    fi
fi

# ---- build ------------------------------------------------------------------------
build_lib
BIN=$OUT/peers
echo "== compile the peer programs into $BIN"
compile_peers "$BIN"
# The switching layer's floor (benches/floor/corosensei_floor.rs): a bare corosensei hand-off, no API.
echo "== cargo build --release --example corosensei_floor"
if cargo build --release --example corosensei_floor; then
    cp "$TARGET_DIR/release/examples/corosensei_floor" "$BIN/corosensei"
    # The nested design's floor (handoff-cond only), a program of its own for the table.
    printf '#!/bin/sh\nFLOOR_DESIGN=nested exec "%s" "$@"\n' "$BIN/corosensei" >"$BIN/corosensei-nested"
    chmod +x "$BIN/corosensei-nested"
    PEERS_BUILT+=(corosensei corosensei-nested)
else
    echo "run.sh: the corosensei floor did not build; running without it"
fi

GEVENT_PY=""
if ((gevent)); then
    venv=$TARGET_DIR/gevent-venv
    if [[ ! -x $venv/bin/python ]] || ! "$venv/bin/python" -c 'import gevent' 2>/dev/null; then
        echo "== pip install gevent into $venv"
        python3 -m venv "$venv" && "$venv/bin/pip" install -q gevent || echo "run.sh: gevent unavailable, skipping it"
    fi
    if "$venv/bin/python" -c 'import gevent' 2>/dev/null; then
        GEVENT_PY=$venv/bin/python
        PEERS_BUILT+=(gevent)
    fi
fi

# The programs of a workload, greenhub first, those built only.
programs() {
    local want
    case $1 in
    handoff) want="greenhub st corosensei gevent" ;;
    handoff-cond) want="greenhub st corosensei corosensei-nested gevent" ;;
    spawn) want="greenhub st gevent" ;;
    pingpong) want="greenhub libev libuv libevent st gevent" ;;
    timers) want="greenhub libev libuv gevent" ;;
    timers-again) want="greenhub libev libuv" ;;
    sleepers) want="greenhub st gevent" ;;
    echo) want="greenhub libev libuv st gevent" ;;
    scale-*) want="greenhub st" ;;
    esac
    for p in $want; do
        if [[ " ${PEERS_BUILT[*]} " == *" $p "* ]]; then echo "$p"; fi
    done
}

# CMD=(the command line of workload $1 for program $2).
command_of() {
    local w=$1 p=$2 prog=("$BIN/$2") n
    [[ $p == gevent ]] && prog=("$GEVENT_PY" "$ROOT/benches/peers/gevent_peer.py")
    case $w in
    echo) CMD=("$BIN/echo_client" "$p" "$((quick ? 1 : 3))" 100 -- "${prog[@]}") ;;
    scale-*)
        n=${w#scale-}
        n=${n/k/000}
        n=${n/M/000000}
        CMD=("${prog[@]}" scale "$n")
        ;;
    *) CMD=("${prog[@]}" "$w") ;;
    esac
}

# --quick: a tenth of the default counts.
quick_n() {
    case $1 in
    handoff | handoff-cond) echo 200000 ;;
    spawn) echo 100000 ;;
    pingpong) echo 20000 ;;
    timers | timers-again | sleepers) echo 100000 ;;
    *) echo "" ;;
    esac
}

RES=$TARGET_DIR/peers
child=""
trap 'if [[ -n $child ]]; then kill "$child" 2>/dev/null; fi' EXIT
mkdir -p "$RES/logs"
results=$RES/results.tsv
: >"$results"
failures=()
echo "== run: ${WORKLOADS[*]}; $reps repetition(s), interleaved"
for ((r = 1; r <= reps; r++)); do
    for w in "${WORKLOADS[@]}"; do
        for p in $(programs "$w"); do
            log=$RES/logs/$w.$p.r$r.log
            command_of "$w" "$p"
            n=""
            ((quick)) && n=$(quick_n "$w")
            [[ -n $n ]] || n=${PEERS_N:-}
            # In the background so an interrupted run stops the program too (timeout runs
            # it in a process group of its own, out of reach of the terminal's ^C).
            set +e
            PEERS_N=$n timeout 600 "${CMD[@]}" >"$log" 2>&1 </dev/null &
            child=$!
            wait "$child"
            rc=$?
            child=""
            set -e
            line=$(grep -E '^(RESULT|SKIP) ' "$log" | tail -n 1 || true)
            limit=$(grep -E '^LIMIT ' "$log" | tail -n 1 || true)
            if ((rc != 0)) || [[ -z $line ]]; then
                why="exit $rc"
                ((rc == 124)) && why="timed out after 600 s"
                printf '[%d/%d] %-12s %-9s FAILED (%s) — see %s\n' "$r" "$reps" "$w" "$p" "$why" "$log"
                sed 's/^/        | /' "$log" | tail -n 5
                failures+=("$w/$p rep $r ($why): $log")
                printf '%d\t%s\t%s\tFAILED\t%s\n' "$r" "$w" "$p" "$why" >>"$results"
                continue
            fi
            printf '[%d/%d] %-12s %-9s %s\n' "$r" "$reps" "$w" "$p" "$(cut -d' ' -f4- <<<"$line")${limit:+ ($limit)}"
            printf '%d\t%s\t%s\t%s\t%s\n' "$r" "$w" "$p" "$line" "$limit" >>"$results"
        done
    done
done

echo
echo "== $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(uname -r); benches/run.sh --reps $reps$( ((quick)) && echo ' --quick')"
python3 "$ROOT/benches/peers/table.py" "$results"
if ((${#failures[@]})); then
    echo
    echo "!!!!!!!! ${#failures[@]} run(s) FAILED their own checks (not a time) !!!!!!!!"
    for f in "${failures[@]}"; do echo "FAILED: $f"; done
    exit 1
fi

"""gevent_peer.py — gevent's side of the peer workloads ("what a Python user has").

Same protocol as the C programs (see peers.h): `python gevent_peer.py WORKLOAD [ARGS]`
runs one repetition and prints one `RESULT workload=W prog=gevent key=value ...` line;
it checks its own work and exits non-zero on a mismatch. Workloads: handoff, handoff-cond, spawn,
pingpong, timers, sleepers, echo-server LFD N. The per-operation workloads run fewer
operations than the C programs (PEERS_N overrides); timers and sleepers run the same 1M.
"""
import os
import resource
import socket as _stdsocket
import sys
import time

import gevent
import gevent.socket
from gevent.lock import Semaphore

P = "gevent"


def check(cond, msg):
    if not cond:
        sys.stderr.write("CHECK FAILED: %s\n" % msg)
        sys.exit(1)


def env_n(default):
    v = os.environ.get("PEERS_N", "")
    return int(v) if v.isdigit() and int(v) > 0 else default


def delays(n):
    """The same splitmix64 sequence as peers.h: n delays uniform in [0, 1 s)."""
    out, s, m = [], 42, (1 << 64) - 1
    for _ in range(n):
        s = (s + 0x9E3779B97F4A7C15) & m
        z = s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
        z ^= z >> 31
        out.append((z >> 11) * 2.0**-53)
    return out


def maxrss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def handoff():
    n = env_n(200000)
    done = [0]

    def yielder():
        for _ in range(rounds[0]):
            gevent.sleep(0)
            done[0] += 1

    rounds = [n // 10 + 1]
    gevent.joinall([gevent.spawn(yielder), gevent.spawn(yielder)])
    rounds[0], done[0] = n, 0
    t0 = time.perf_counter()
    gevent.joinall([gevent.spawn(yielder), gevent.spawn(yielder)])
    t = time.perf_counter() - t0
    check(done[0] == 2 * n, "handoff: %d of %d yields" % (done[0], 2 * n))
    print("RESULT workload=handoff prog=%s n=%d ns=%.1f" % (P, n, t * 1e9 / n))


def handoff_cond():
    """The direct hand-off: a semaphore each, as greenhub.c's handoff-cond."""
    n = env_n(200000)
    done = [0]

    def side(me, sems, k):
        for _ in range(k):
            sems[me].acquire()
            done[0] += 1
            sems[1 - me].release()

    def run(k):
        sems = [Semaphore(1), Semaphore(0)]
        done[0] = 0
        t0 = time.perf_counter()
        gevent.joinall([gevent.spawn(side, 0, sems, k), gevent.spawn(side, 1, sems, k)], raise_error=True)
        t = time.perf_counter() - t0
        check(done[0] == 2 * k, "handoff-cond: %d of %d hand-offs" % (done[0], 2 * k))
        return t

    run(n // 10 + 1)
    print("RESULT workload=handoff-cond prog=%s n=%d ns=%.1f" % (P, n, run(n) * 1e9 / n))


def spawn():
    n = env_n(100000)

    def empty(x):
        return x

    def run(k):
        t0 = time.perf_counter()
        for i in range(k):
            g = gevent.spawn(empty, i)
            g.join()
            check(g.value == i, "spawn: wrong result")
        return time.perf_counter() - t0

    run(n // 10 + 1)
    print("RESULT workload=spawn prog=%s n=%d ns=%.1f" % (P, n, run(n) * 1e9 / n))


def pingpong():
    n = env_n(50000)
    a, b = gevent.socket.socketpair()
    moved = [0]

    def side(sock, first, k):
        c, want = 0, 0
        for _ in range(k):
            if first:
                sock.send(bytes((c,)))
            got = sock.recv(1)
            check(len(got) == 1 and got[0] == want, "pingpong: read")
            moved[0] += 1
            want = (want + 1) & 255
            if first:
                c = want
            else:
                sock.send(got)

    def run(k):
        moved[0] = 0
        t0 = time.perf_counter()
        gevent.joinall([gevent.spawn(side, a, True, k), gevent.spawn(side, b, False, k)], raise_error=True)
        t = time.perf_counter() - t0
        check(moved[0] == 2 * k, "pingpong: %d of %d bytes" % (moved[0], 2 * k))
        return t

    run(n // 10 + 1)
    t = run(n)
    print("RESULT workload=pingpong prog=%s n=%d ns=%.1f rt_per_s=%.0f" % (P, n, t * 1e9 / n, n / t))


def timers():
    n = env_n(1000000)
    ds = delays(n)
    loop = gevent.get_hub().loop
    state = {"fired": 0, "late": 0.0}
    ws = []

    def cb(i):
        late = time.perf_counter() - (t_start + ds[i])
        if late > state["late"]:
            state["late"] = late
        state["fired"] += 1
        ws[i].close()

    c0 = cpu()
    loop.update_now()
    t_start = time.perf_counter()
    for i in range(n):
        w = loop.timer(ds[i])
        w.start(cb, i)
        ws.append(w)
    gevent.get_hub().join()
    wall, c = time.perf_counter() - t_start, cpu() - c0
    check(state["fired"] == n, "timers: %d of %d fired" % (state["fired"], n))
    print(
        "RESULT workload=timers prog=%s n=%d wall_s=%.3f cpu_s=%.3f rss_mib=%.1f late_ms=%.1f"
        % (P, n, wall, c, maxrss_mib(), state["late"] * 1e3)
    )


def sleepers():
    want = env_n(1000000)
    ds = delays(want)
    slept = [0]

    def sleeper(d):
        gevent.sleep(d)
        slept[0] += 1

    base = rss_kib()
    t0 = time.perf_counter()
    for d in ds:
        gevent.spawn(sleeper, d)
    gevent.get_hub().join()
    wall = time.perf_counter() - t0
    check(slept[0] == want, "sleepers: %d of %d slept" % (slept[0], want))
    print(
        "RESULT workload=sleepers prog=%s n=%d want=%d wall_s=%.3f rss_per_task_kib=%.2f rss_mib=%.1f"
        % (P, want, want, wall, (maxrss_mib() * 1024 - base) / want, maxrss_mib())
    )


def echo_server(lfd, nconn):
    lsock = gevent.socket.socket(fileno=lfd)
    open_conns = [0]

    def serve(conn):
        conn.setsockopt(_stdsocket.IPPROTO_TCP, _stdsocket.TCP_NODELAY, 1)
        while True:
            data = conn.recv(4096)
            if not data:
                break
            conn.sendall(data)
        conn.close()
        open_conns[0] -= 1

    for _ in range(nconn):
        conn, _addr = lsock.accept()
        open_conns[0] += 1
        gevent.spawn(serve, conn)
    lsock.close()
    while open_conns[0] > 0:
        gevent.sleep(0.01)


def main(argv):
    w = argv[1] if len(argv) > 1 else ""
    table = {"handoff": handoff, "handoff-cond": handoff_cond, "spawn": spawn, "pingpong": pingpong, "timers": timers, "sleepers": sleepers}
    if w in table and len(argv) == 2:
        table[w]()
    elif w == "echo-server" and len(argv) == 4:
        echo_server(int(argv[2]), int(argv[3]))
    else:
        sys.stderr.write("usage: %s handoff|handoff-cond|spawn|pingpong|timers|sleepers|echo-server LFD N\n" % argv[0])
        return 2
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

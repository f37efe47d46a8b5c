/* st.c — State Threads (Debian libst-dev, 1.9) side of the peer workloads (see peers.h).
 *   handoff          two threads st_usleep(0) to each other (ST 1.9 has no st_thread_yield;
 *                    st_usleep(0) is its yield: the thread goes through the sleep queue)
 *   handoff-cond     the same hand-off by a condition variable each (a direct switch, no poll)
 *   spawn            st_thread_create(joinable) + st_thread_join of an empty thread
 *   pingpong         1 byte over a socketpair between two threads (st_read / st_write)
 *   sleepers         1M threads each st_usleep(random [0, 1 s))
 *   echo-server LFD N  a thread per connection on an inherited listening socket
 *   scale N          park N threads (2 KiB of stack touched) on st_usleep to one instant
 * The event system is epoll (ST_EVENTSYS_ALT) where the library has it.
 */
#include "peers.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <st.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *P = "st";

static st_utime_t usec(double s) { return (st_utime_t)(s * 1e6); }

static int stack_size(void) { return (int)peers_env_long("PEERS_STACK", 16 * 1024); }

/* ---- handoff ---------------------------------------------------------------------- */

static long rounds, done_rounds;

static void *yielder(void *arg) {
    (void)arg;
    for (long i = 0; i < rounds; i++) {
        if (st_usleep(0) != 0) return "usleep";
        done_rounds++;
    }
    return NULL;
}

static st_cond_t conds[2];
static int turn;

static void *cond_yielder(void *arg) {
    int me = (int)(intptr_t)arg;
    for (long i = 0; i < rounds; i++) {
        while (turn != me)
            if (st_cond_wait(conds[me]) != 0) return "wait";
        turn = !me;
        done_rounds++;
        st_cond_signal(conds[!me]);
    }
    return NULL;
}

static double handoff_pass(long n, void *(*fn)(void *)) {
    void *ra, *rb;
    rounds = n;
    done_rounds = 0;
    turn = 0;
    st_thread_t a = st_thread_create(fn, (void *)0, 1, 0);
    st_thread_t b = st_thread_create(fn, (void *)1, 1, 0);
    PEERS_CHECK(a && b, "st_thread_create");
    double t0 = peers_now();
    st_thread_join(a, &ra);
    st_thread_join(b, &rb);
    double t = peers_now() - t0;
    PEERS_CHECK(!ra && !rb && done_rounds == 2 * n, "handoff: %ld of %ld yields", done_rounds, 2 * n);
    return t;
}

static int handoff(const char *w, void *(*fn)(void *)) {
    long n = peers_env_long("PEERS_N", 2000000);
    conds[0] = st_cond_new();
    conds[1] = st_cond_new();
    handoff_pass(n / 10 + 1, fn);
    printf("RESULT workload=%s prog=%s n=%ld ns=%.1f\n", w, P, n, handoff_pass(n, fn) * 1e9 / n);
    return 0;
}

/* ---- spawn ------------------------------------------------------------------------ */

static void *empty(void *arg) { return arg; }

static double spawn_pass(long n) {
    double t0 = peers_now();
    for (long i = 0; i < n; i++) {
        void *r = NULL;
        st_thread_t t = st_thread_create(empty, (void *)(intptr_t)(i + 1), 1, 0);
        PEERS_CHECK(t, "st_thread_create");
        PEERS_CHECK(st_thread_join(t, &r) == 0 && r == (void *)(intptr_t)(i + 1), "spawn: join");
    }
    return peers_now() - t0;
}

static int spawn(void) {
    long n = peers_env_long("PEERS_N", 1000000);
    spawn_pass(n / 10 + 1);
    printf("RESULT workload=spawn prog=%s n=%ld ns=%.1f\n", P, n, spawn_pass(n) * 1e9 / n);
    return 0;
}

/* ---- pingpong --------------------------------------------------------------------- */

static st_netfd_t nfd[2];
static long bytes_moved;

static void *side(void *arg) {
    int me = (int)(intptr_t)arg;
    st_netfd_t fd = nfd[me];
    unsigned char c = 0, want = 0;
    for (long i = 0; i < rounds; i++) {
        if (me == 0 && st_write(fd, &c, 1, ST_UTIME_NO_TIMEOUT) != 1) return "write";
        if (st_read(fd, &c, 1, ST_UTIME_NO_TIMEOUT) != 1 || c != want) return "read";
        bytes_moved++;
        if (me == 0) c = ++want;
        else {
            want++;
            if (st_write(fd, &c, 1, ST_UTIME_NO_TIMEOUT) != 1) return "write";
        }
    }
    return NULL;
}

static double pingpong_pass(long n) {
    void *ra, *rb;
    rounds = n;
    bytes_moved = 0;
    st_thread_t a = st_thread_create(side, (void *)0, 1, 0);
    st_thread_t b = st_thread_create(side, (void *)1, 1, 0);
    PEERS_CHECK(a && b, "st_thread_create");
    double t0 = peers_now();
    st_thread_join(a, &ra);
    st_thread_join(b, &rb);
    double t = peers_now() - t0;
    PEERS_CHECK(!ra && !rb, "pingpong: %s / %s", ra ? (char *)ra : "ok", rb ? (char *)rb : "ok");
    PEERS_CHECK(bytes_moved == 2 * n, "pingpong: %ld of %ld bytes", bytes_moved, 2 * n);
    return t;
}

static int pingpong(void) {
    long n = peers_env_long("PEERS_N", 200000);
    int sv[2];
    PEERS_CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
    nfd[0] = st_netfd_open_socket(sv[0]);
    nfd[1] = st_netfd_open_socket(sv[1]);
    PEERS_CHECK(nfd[0] && nfd[1], "st_netfd_open_socket");
    pingpong_pass(n / 10 + 1);
    double t = pingpong_pass(n);
    printf("RESULT workload=pingpong prog=%s n=%ld ns=%.1f rt_per_s=%.0f\n", P, n, t * 1e9 / n, n / t);
    st_netfd_close(nfd[0]);
    st_netfd_close(nfd[1]);
    return 0;
}

/* ---- sleepers --------------------------------------------------------------------- */

static double *delays;
static long slept, spawned;
static st_cond_t all_done;

static void *sleeper(void *arg) {
    if (st_usleep(usec(delays[(intptr_t)arg])) == 0) slept++;
    if (slept == spawned) st_cond_signal(all_done);
    return NULL;
}

static int sleepers(void) {
    long want = peers_env_long("PEERS_N", 1000000), n = peers_bound(want, 8);
    delays = peers_delays(n);
    all_done = st_cond_new();
    long base = peers_rss_kib();
    double t0 = peers_now();
    for (spawned = 0; spawned < n; spawned++)
        if (!st_thread_create(sleeper, (void *)(intptr_t)spawned, 0, stack_size())) {
            printf("LIMIT workload=sleepers prog=%s code=errno:%d reached=%ld\n", P, errno, spawned);
            break;
        }
    while (slept < spawned) st_cond_wait(all_done);
    double wall = peers_now() - t0;
    PEERS_CHECK(slept == spawned, "sleepers: %ld of %ld slept", slept, spawned);
    peers_sleepers_result(P, spawned, want, wall, base);
    return 0;
}

/* ---- echo server ------------------------------------------------------------------ */

static int open_conns;

static void *serve(void *arg) {
    st_netfd_t fd = arg;
    char buf[4096];
    for (;;) {
        ssize_t n = st_read(fd, buf, sizeof buf, ST_UTIME_NO_TIMEOUT);
        if (n <= 0) break;
        PEERS_CHECK(st_write(fd, buf, (size_t)n, ST_UTIME_NO_TIMEOUT) == n, "echo: short write");
    }
    st_netfd_close(fd);
    open_conns--;
    return NULL;
}

static int echo_server(int lfd, int nconn) {
    st_netfd_t l = st_netfd_open_socket(lfd);
    int one = 1;
    PEERS_CHECK(l, "st_netfd_open_socket");
    for (int i = 0; i < nconn; i++) {
        st_netfd_t c = st_accept(l, NULL, NULL, usec(30));
        PEERS_CHECK(c, "st_accept: %s", strerror(errno));
        setsockopt(st_netfd_fileno(c), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        open_conns++;
        PEERS_CHECK(st_thread_create(serve, c, 0, 64 * 1024), "st_thread_create");
    }
    st_netfd_close(l);
    while (open_conns > 0) st_usleep(10000);
    return 0;
}

/* ---- scale ------------------------------------------------------------------------ */

static double deadline, first_wake, last_wake;
static long parked, woken, early, finished;
static st_cond_t release_all;

/* As greenhub.c's parker: 2 KiB of stack touched, parked on the sleep queue until
 * `deadline`, then on `release_all` so the wake pass does not include thread exit. */
static __attribute__((noinline)) void *parker(void *arg) {
    volatile char buf[PEERS_SCALE_TOUCH];
    (void)arg;
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (char)i;
    parked++;
    double now = peers_now();
    if (now >= deadline) early++;
    st_usleep(usec(deadline - now));
    now = peers_now();
    if (woken++ == 0) first_wake = now;
    last_wake = now;
    if (st_cond_wait(release_all) != 0) return "cond";
    finished += buf[sizeof buf - 1] == (char)(PEERS_SCALE_TOUCH - 1);
    if (finished == spawned) st_cond_signal(all_done);
    return NULL;
}

static int scale(long want) {
    long n = peers_bound(want, 8);
    if (n < want) {
        printf("SKIP workload=scale-%ld prog=%s reason=memory fits=%ld\n", want, P, n);
        return 0;
    }
    all_done = st_cond_new();
    release_all = st_cond_new();
    long base_rss = peers_rss_kib(), base_maps = peers_maps();
    const char *limit = "none";
    deadline = 1e300;
    double t0 = peers_now();
    for (spawned = 0; spawned < n; spawned++)
        if (!st_thread_create(parker, NULL, 0, stack_size())) {
            limit = "errno";
            printf("LIMIT workload=scale-%ld prog=%s code=errno:%d reached=%ld\n", want, P, errno, spawned);
            break;
        }
    double spawn_s = peers_now() - t0;
    deadline = peers_now() + 1.0 + 4 * spawn_s;
    while (parked < spawned) st_usleep(0);
    double park_s = peers_now() - t0 - spawn_s;
    long rss = peers_rss_kib(), maps = peers_maps();
    PEERS_CHECK(early == 0 && peers_now() < deadline, "scale: parking took past the deadline");
    while (woken < spawned) st_usleep(1000);
    double t_exit = peers_now();
    st_cond_broadcast(release_all);
    while (finished < spawned) st_cond_wait(all_done);
    st_usleep(0); /* the last one's exit */
    double exit_s = peers_now() - t_exit;
    PEERS_CHECK(woken == spawned && finished == spawned, "scale: %ld woke, %ld finished of %ld", woken, finished,
                spawned);
    printf("RESULT workload=scale-%ld prog=%s n=%ld reached=%ld limit=%s rss_per_kib=%.2f maps=%ld "
           "maps_base=%ld spawn_s=%.3f park_s=%.3f pass_ms=%.1f exit_ms=%.1f\n",
           want, P, want, spawned, limit, (double)(rss - base_rss) / (double)spawned, maps, base_maps,
           spawn_s, park_s, (last_wake - first_wake) * 1e3, exit_s * 1e3);
    return 0;
}

int main(int argc, char **argv) {
    const char *w = argc > 1 ? argv[1] : "";
    int rc;
    if (st_set_eventsys(ST_EVENTSYS_ALT) != 0) fprintf(stderr, "st: no epoll, using the default event system\n");
    PEERS_CHECK(st_init() == 0, "st_init");
    if (strcmp(w, "handoff") == 0) rc = handoff(w, yielder);
    else if (strcmp(w, "handoff-cond") == 0) rc = handoff(w, cond_yielder);
    else if (strcmp(w, "spawn") == 0) rc = spawn();
    else if (strcmp(w, "pingpong") == 0) rc = pingpong();
    else if (strcmp(w, "sleepers") == 0) rc = sleepers();
    else if (strcmp(w, "echo-server") == 0 && argc == 4) rc = echo_server(atoi(argv[2]), atoi(argv[3]));
    else if (strcmp(w, "scale") == 0 && argc == 3) rc = scale(atol(argv[2]));
    else {
        fprintf(stderr, "usage: %s handoff|handoff-cond|spawn|pingpong|sleepers|echo-server LFD N|scale N\n",
                argv[0]);
        return 2;
    }
    fflush(stdout);
    return rc;
}

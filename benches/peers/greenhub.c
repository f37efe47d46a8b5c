/* greenhub.c — greenhub's side of the peer workloads (see peers.h for the protocol).
 *   handoff          two greenlets gh_sleep(0) to each other; ns per round trip
 *   handoff-cond     the same hand-off by a semaphore each (gh_sem_acquire / gh_sem_release),
 *                    as st.c's condition-variable hand-off
 *   spawn            gh_spawn + run + gh_join + gh_release of an empty greenlet
 *   pingpong         1 byte over a socketpair between two greenlets (gh_wait_read, read, write)
 *   timers           1M one-shot timer watchers, due uniformly in [0, 1 s)
 *   sleepers         1M greenlets each gh_sleep(random [0, 1 s))
 *   echo-server LFD N  a greenlet per connection on an inherited listening socket
 *   scale N          park N greenlets (2 KiB of stack touched) on timers due at one instant;
 *                    time the pass waking them all, then the pass letting them all exit
 */
#include "peers.h"

#include <errno.h>
#include <fcntl.h>
#include <greenhub.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#define OK(call)                                                                                   \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        PEERS_CHECK(rc_ == GH_OK, "%s: %s", #call, gh_err_name(rc_));                              \
    } while (0)

static const char *P = "greenhub";

/* The hub's stack size for the many-greenlet workloads (before the hub's first use). */
static void configure_stack(void) {
    gh_hub_config cfg;
    gh_hub_config_init(&cfg);
    cfg.stack_size = (size_t)peers_env_long("PEERS_STACK", 16 * 1024);
    OK(gh_hub_configure(&cfg));
}

/* ---- handoff ---------------------------------------------------------------------- */

static long rounds, done_rounds;

static void *yielder(void *arg) {
    (void)arg;
    for (long i = 0; i < rounds; i++) {
        if (gh_sleep(0) != GH_OK) return "sleep";
        done_rounds++;
    }
    return NULL;
}

static gh_sem sems[2];

static void *sem_yielder(void *arg) {
    int me = (int)(intptr_t)arg;
    for (long i = 0; i < rounds; i++) {
        if (gh_sem_acquire(sems[me], GH_FOREVER) != GH_OK) return "acquire";
        done_rounds++;
        if (gh_sem_release(sems[!me]) != GH_OK) return "release";
    }
    return NULL;
}

static double handoff_pass(long n, gh_fn fn) {
    gh_greenlet a, b;
    void *ra, *rb;
    rounds = n;
    done_rounds = 0;
    OK(gh_sem_new(&sems[0], 1));
    OK(gh_sem_new(&sems[1], 0));
    OK(gh_spawn(&a, fn, (void *)0));
    OK(gh_spawn(&b, fn, (void *)1));
    double t0 = peers_now();
    OK(gh_join(a, GH_FOREVER, &ra));
    OK(gh_join(b, GH_FOREVER, &rb));
    double t = peers_now() - t0;
    PEERS_CHECK(!ra && !rb && done_rounds == 2 * n, "handoff: %ld of %ld yields", done_rounds, 2 * n);
    OK(gh_release(a));
    OK(gh_release(b));
    OK(gh_sem_close(sems[0]));
    OK(gh_sem_close(sems[1]));
    return t;
}

static int handoff(const char *w, gh_fn fn) {
    long n = peers_env_long("PEERS_N", 2000000);
    handoff_pass(n / 10 + 1, fn);
    printf("RESULT workload=%s prog=%s n=%ld ns=%.1f\n", w, P, n, handoff_pass(n, fn) * 1e9 / n);
    return 0;
}

/* ---- spawn ------------------------------------------------------------------------ */

static void *empty(void *arg) { return arg; }

static double spawn_pass(long n) {
    double t0 = peers_now();
    for (long i = 0; i < n; i++) {
        gh_greenlet g;
        void *r = NULL;
        OK(gh_spawn(&g, empty, (void *)(intptr_t)(i + 1)));
        OK(gh_join(g, GH_FOREVER, &r));
        PEERS_CHECK(r == (void *)(intptr_t)(i + 1), "spawn: wrong result");
        OK(gh_release(g));
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

static int sv[2];
static long bytes_moved;

static void *side(void *arg) {
    int me = (int)(intptr_t)arg, fd = sv[me];
    unsigned char c = 0, want = 0;
    for (long i = 0; i < rounds; i++) {
        if (me == 0 && write(fd, &c, 1) != 1) return "write";
        if (gh_wait_read(fd, GH_FOREVER) != GH_OK) return "wait";
        if (read(fd, &c, 1) != 1 || c != want) return "read";
        bytes_moved++;
        if (me == 0) c = ++want;
        else {
            want++;
            if (write(fd, &c, 1) != 1) return "write";
        }
    }
    return NULL;
}

static double pingpong_pass(long n) {
    gh_greenlet a, b;
    void *ra, *rb;
    rounds = n;
    bytes_moved = 0;
    OK(gh_spawn(&a, side, (void *)0));
    OK(gh_spawn(&b, side, (void *)1));
    double t0 = peers_now();
    OK(gh_join(a, GH_FOREVER, &ra));
    OK(gh_join(b, GH_FOREVER, &rb));
    double t = peers_now() - t0;
    PEERS_CHECK(!ra && !rb, "pingpong: %s / %s", ra ? (char *)ra : "ok", rb ? (char *)rb : "ok");
    PEERS_CHECK(bytes_moved == 2 * n, "pingpong: %ld of %ld bytes", bytes_moved, 2 * n);
    OK(gh_release(a));
    OK(gh_release(b));
    return t;
}

static int pingpong(void) {
    long n = peers_env_long("PEERS_N", 200000);
    PEERS_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0, "socketpair");
    pingpong_pass(n / 10 + 1);
    double t = pingpong_pass(n);
    printf("RESULT workload=pingpong prog=%s n=%ld ns=%.1f rt_per_s=%.0f\n", P, n, t * 1e9 / n, n / t);
    close(sv[0]);
    close(sv[1]);
    return 0;
}

/* ---- timers ----------------------------------------------------------------------- */

static double t_start, max_late, max_own_late;
static double *delays;
/* The clock before every 64th start (timer i started at or after starts[i / 64]): the
 * timers' own deadlines, to within the time of 64 starts, for the second lateness
 * figure. One clock read per 64 starts in the timed loop (~0.3 ns a start). */
#define START_STRIDE 64
static double *starts;
static long fired;

static void timer_cb(gh_watcher w, int revents, void *arg) {
    (void)revents;
    double now = peers_now(), d = delays[(intptr_t)arg];
    double late = now - (t_start + d);
    if (late > max_late) max_late = late;
    /* Against starts[] (taken before the start call): an upper bound of the lateness
     * against the deadline greenhub set (the start call + d), off by less than the
     * time of 64 starts (a few µs). */
    double own = now - (starts[(intptr_t)arg / START_STRIDE] + d);
    if (own > max_own_late) max_own_late = own;
    fired++;
    OK(gh_watcher_close(w));
}

/* Starts n timers (delays[i]) and runs the loop until all fired; the start phase's
 * seconds in *start_s. */
static void timers_burst(long n, double *start_s) {
    fired = 0;
    max_late = max_own_late = 0;
    t_start = peers_now();
    for (long i = 0; i < n; i++) {
        gh_watcher w;
        if (i % START_STRIDE == 0) starts[i / START_STRIDE] = peers_now();
        OK(gh_timer_new(&w, delays[i], 0));
        OK(gh_watcher_start(w, timer_cb, (void *)(intptr_t)i));
    }
    *start_s = peers_now() - t_start;
    OK(gh_hub_run());
    PEERS_CHECK(fired == n, "timers: %ld of %ld fired", fired, n);
}

static int timers(int again) {
    long n = peers_env_long("PEERS_N", 1000000);
    delays = peers_delays(n);
    starts = malloc((size_t)(n / START_STRIDE + 1) * sizeof *starts);
    PEERS_CHECK(starts, "malloc");
    gh_hub_current(); /* create the hub outside the timed part, as the peers create their loop */
    return peers_timers(P, again, n, timers_burst, &max_late, &max_own_late);
}

/* ---- sleepers --------------------------------------------------------------------- */

static long slept;

static void *sleeper(void *arg) {
    if (gh_sleep(delays[(intptr_t)arg]) == GH_OK) slept++;
    return NULL;
}

static int sleepers(void) {
    long want = peers_env_long("PEERS_N", 1000000), n = peers_bound(want, 8);
    configure_stack();
    delays = peers_delays(n);
    gh_hub_current();
    long base = peers_rss_kib(), spawned = 0;
    double t0 = peers_now();
    for (; spawned < n; spawned++) {
        int rc = gh_spawn(NULL, sleeper, (void *)(intptr_t)spawned);
        if (rc == GH_ENOMEM) {
            printf("LIMIT workload=sleepers prog=%s code=GH_ENOMEM reached=%ld\n", P, spawned);
            break;
        }
        OK(rc);
    }
    OK(gh_hub_run());
    double wall = peers_now() - t0;
    PEERS_CHECK(slept == spawned, "sleepers: %ld of %ld slept", slept, spawned);
    peers_sleepers_result(P, spawned, want, wall, base);
    return 0;
}

/* ---- echo server ------------------------------------------------------------------ */

static int open_conns;

static void *serve(void *arg) {
    int fd = (int)(intptr_t)arg;
    char buf[4096];
    for (;;) {
        ssize_t n = gh_read(fd, buf, sizeof buf, GH_FOREVER);
        if (n <= 0) break;
        PEERS_CHECK(gh_write(fd, buf, (size_t)n, GH_FOREVER) == n, "echo: short write");
    }
    gh_close(fd);
    open_conns--;
    return NULL;
}

static int echo_server(int lfd, int nconn) {
    gh_spawn_options opts = {64 * 1024, NULL};
    int one = 1;
    for (int i = 0; i < nconn; i++) {
        int fd = gh_accept(lfd, NULL, NULL, 30.0);
        PEERS_CHECK(fd >= 0, "accept: %s", gh_err_name(fd));
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        open_conns++;
        OK(gh_spawn_ex(NULL, serve, (void *)(intptr_t)fd, &opts));
    }
    gh_close(lfd);
    while (open_conns > 0) OK(gh_sleep(0.01));
    return 0;
}

/* ---- scale ------------------------------------------------------------------------ */

static double deadline, first_wake, last_wake;
static long parked, woken, early, finished;
static gh_event release_all;

/* Touches PEERS_SCALE_TOUCH bytes of this greenlet's stack, then parks on a timer due at
 * `deadline` (the same instant for all), inside that frame. Once woken it parks again on
 * `release_all`, so the timed wake pass measures waking, not greenlet exit. */
static __attribute__((noinline)) void *parker(void *arg) {
    volatile char buf[PEERS_SCALE_TOUCH];
    (void)arg;
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (char)i;
    parked++;
    double now = peers_now();
    if (now >= deadline) early++;
    if (gh_sleep(deadline - now) != GH_OK) return "sleep";
    now = peers_now();
    if (woken++ == 0) first_wake = now;
    last_wake = now;
    if (gh_event_wait(release_all, GH_FOREVER) != GH_OK) return "event";
    finished += buf[sizeof buf - 1] == (char)(PEERS_SCALE_TOUCH - 1);
    return NULL;
}

static int scale(long want) {
    long n = peers_bound(want, 8);
    if (n < want) {
        printf("SKIP workload=scale-%ld prog=%s reason=memory fits=%ld\n", want, P, n);
        return 0;
    }
    configure_stack();
    OK(gh_event_new(&release_all));
    long base_rss = peers_rss_kib(), base_maps = peers_maps(), spawned = 0;
    const char *limit = "none";
    deadline = 1e300;
    double t0 = peers_now();
    for (; spawned < n; spawned++) {
        int rc = gh_spawn(NULL, parker, NULL);
        if (rc == GH_ENOMEM) {
            limit = "GH_ENOMEM";
            printf("LIMIT workload=scale-%ld prog=%s code=GH_ENOMEM reached=%ld\n", want, P, spawned);
            break;
        }
        OK(rc);
    }
    double spawn_s = peers_now() - t0;
    /* They start in the next loop iteration; starting and parking costs about what spawning
     * did, so a deadline of 1 s + 4x the spawn time leaves them all parked before it. */
    deadline = peers_now() + 1.0 + 4 * spawn_s;
    while (parked < spawned) OK(gh_sleep(0));
    double park_s = peers_now() - t0 - spawn_s;
    long rss = peers_rss_kib(), maps = peers_maps();
    PEERS_CHECK(early == 0 && peers_now() < deadline, "scale: parking took past the deadline");
    while (woken < spawned) OK(gh_sleep(0.001));
    double t_exit = peers_now();
    OK(gh_event_set(release_all));
    OK(gh_hub_run());
    double exit_s = peers_now() - t_exit;
    PEERS_CHECK(woken == spawned && finished == spawned, "scale: %ld woke, %ld finished of %ld", woken, finished,
                spawned);
    OK(gh_event_close(release_all));
    printf("RESULT workload=scale-%ld prog=%s n=%ld reached=%ld limit=%s rss_per_kib=%.2f maps=%ld "
           "maps_base=%ld spawn_s=%.3f park_s=%.3f pass_ms=%.1f exit_ms=%.1f\n",
           want, P, want, spawned, limit, (double)(rss - base_rss) / (double)spawned, maps, base_maps,
           spawn_s, park_s, (last_wake - first_wake) * 1e3, exit_s * 1e3);
    return 0;
}

int main(int argc, char **argv) {
    const char *w = argc > 1 ? argv[1] : "";
    int rc;
    if (strcmp(w, "handoff") == 0) rc = handoff(w, yielder);
    else if (strcmp(w, "handoff-cond") == 0) rc = handoff(w, sem_yielder);
    else if (strcmp(w, "spawn") == 0) rc = spawn();
    else if (strcmp(w, "pingpong") == 0) rc = pingpong();
    else if (strcmp(w, "timers") == 0) rc = timers(0);
    else if (strcmp(w, "timers-again") == 0) rc = timers(1);
    else if (strcmp(w, "sleepers") == 0) rc = sleepers();
    else if (strcmp(w, "echo-server") == 0 && argc == 4) rc = echo_server(atoi(argv[2]), atoi(argv[3]));
    else if (strcmp(w, "scale") == 0 && argc == 3) rc = scale(atol(argv[2]));
    else {
        fprintf(stderr, "usage: %s handoff|handoff-cond|spawn|pingpong|timers|timers-again|sleepers|echo-server LFD N|scale N\n", argv[0]);
        return 2;
    }
    fflush(stdout);
    OK(gh_hub_destroy());
    return rc;
}

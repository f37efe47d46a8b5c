/* test_io.c — the fd waits of the "Cooperative I/O" section of greenhub.h:
 * gh_wait_read, gh_wait_write, gh_wait_fd.
 *
 * Build and run:
 *   cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g -O1 -Iinclude -Ic-tests \
 *      c-tests/test_io.c target/release/libgreenhub.a -lpthread -ldl -lm -o target/c/test_io
 *   ./target/c/test_io [case]
 */
#include "harness.h"

#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/stat.h>

/* ---- helpers ------------------------------------------------------------ */

#define RC_PTR(rc) ((void *)(intptr_t)(rc))
#define PTR_RC(p) ((int)(intptr_t)(p))

static void make_pair(int sv[2]) {
    ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv));
}

static void close_pair(int sv[2]) {
    ASSERT_OK(close(sv[0]));
    ASSERT_OK(close(sv[1]));
}

static void put_byte(int fd) { ASSERT_EQ(write(fd, "x", 1), 1); }

/* Writes into non-blocking `fd` until its send buffer is full. */
static void fill(int fd) {
    static char buf[4096];
    size_t total = 0;
    for (;;) {
        ssize_t n = write(fd, buf, sizeof buf);
        if (n < 0) {
            ASSERT_EQ(errno, EAGAIN);
            break;
        }
        total += (size_t)n;
    }
    ASSERT_TRUE(total > 0);
}

/* Reads everything available from non-blocking `fd`; returns the byte count. */
static size_t drain(int fd) {
    static char buf[65536];
    size_t total = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0) break;
        total += (size_t)n;
    }
    return total;
}

/* Joins `g` (bounded), releases it, and returns the int its function returned. */
static int join_rc(gh_greenlet g) {
    void *res = NULL;
    ASSERT_OK(gh_join(g, 10.0, &res));
    ASSERT_OK(gh_release(g));
    return PTR_RC(res);
}

/* Counts loop iterations with an unreferenced prepare watcher. */
static long iterations;
static void count_iteration(gh_watcher w, int revents, void *arg) {
    (void)w;
    (void)arg;
    if (revents == GH_PREPARE) iterations++;
}
static gh_watcher start_iteration_counter(void) {
    gh_watcher p;
    ASSERT_OK(gh_prepare_new(&p));
    ASSERT_OK(gh_watcher_ref(p, 0));
    ASSERT_OK(gh_watcher_start(p, count_iteration, NULL));
    return p;
}

/* Greenlet bodies: each gets an fd (as intptr) and returns the wait's code. */
static double g_timeout = 5.0;
static void *waiter_read(void *arg) { return RC_PTR(gh_wait_read((int)(intptr_t)arg, g_timeout)); }
static void *waiter_write(void *arg) { return RC_PTR(gh_wait_write((int)(intptr_t)arg, g_timeout)); }
static void *waiter_fd_read(void *arg) {
    return RC_PTR(gh_wait_fd((int)(intptr_t)arg, GH_READ, g_timeout));
}
static void *writer_now(void *arg) {
    put_byte((int)(intptr_t)arg);
    return RC_PTR(0);
}
static void *writer_later(void *arg) {
    int rc = gh_sleep(0.02);
    if (rc != GH_OK) return RC_PTR(rc);
    put_byte((int)(intptr_t)arg);
    return RC_PTR(0);
}
static void *drainer_later(void *arg) {
    int rc = gh_sleep(0.02);
    if (rc != GH_OK) return RC_PTR(rc);
    return RC_PTR(drain((int)(intptr_t)arg) > 0 ? 0 : -1);
}

/* ---- data already there / arriving later -------------------------------- */

/* Data is readable before the call: each wait returns at once (no lost wake-up,
 * no timeout although nobody will ever write again). */
TEST(ready_before_call_returns_at_once) {
    int fds0 = gh_test_fd_count(), sv[2];
    make_pair(sv);
    put_byte(sv[1]);
    ASSERT_OK(gh_wait_read(sv[0], 5.0));
    ASSERT_OK(gh_wait_read(sv[0], GH_FOREVER)); /* still readable: nothing read */
    ASSERT_EQ(gh_wait_fd(sv[0], GH_READ, 5.0), GH_READ);
    ASSERT_OK(gh_wait_write(sv[0], 5.0)); /* an empty socket buffer is writable */
    ASSERT_EQ(gh_wait_fd(sv[0], GH_WRITE, GH_FOREVER), GH_WRITE);
    close_pair(sv);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* Main waits; a greenlet writes 20 ms later: main wakes, and only after the write. */
TEST(main_waits_greenlet_writes_later) {
    int fds0 = gh_test_fd_count(), sv[2];
    gh_greenlet w;
    char c;
    make_pair(sv);
    ASSERT_OK(gh_spawn(&w, writer_later, (void *)(intptr_t)sv[1]));
    double t0 = gh_test_now();
    ASSERT_OK(gh_wait_read(sv[0], 5.0));
    ASSERT_TRUE(gh_test_now() - t0 >= 0.018);
    ASSERT_EQ(read(sv[0], &c, 1), 1);
    ASSERT_EQ(join_rc(w), 0);
    close_pair(sv);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* Both orders between two greenlets: the writer runs first (data there when the
 * reader starts waiting), or the reader runs first (parks, then the writer writes). */
TEST(greenlets_both_orders) {
    int fds0 = gh_test_fd_count(), sv[2];
    gh_greenlet r, w;
    make_pair(sv);
    /* writer first */
    ASSERT_OK(gh_spawn(&w, writer_now, (void *)(intptr_t)sv[1]));
    ASSERT_OK(gh_spawn(&r, waiter_read, (void *)(intptr_t)sv[0]));
    ASSERT_EQ(join_rc(r), GH_OK);
    ASSERT_EQ(join_rc(w), 0);
    ASSERT_EQ(drain(sv[0]), 1);
    /* reader first */
    ASSERT_OK(gh_spawn(&r, waiter_fd_read, (void *)(intptr_t)sv[0]));
    ASSERT_OK(gh_spawn(&w, writer_now, (void *)(intptr_t)sv[1]));
    ASSERT_EQ(join_rc(r), GH_READ);
    ASSERT_EQ(join_rc(w), 0);
    ASSERT_EQ(drain(sv[0]), 1);
    close_pair(sv);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* A greenlet parks in gh_wait_read; main writes while it is parked: it wakes. */
TEST(greenlet_waits_main_writes) {
    int fds0 = gh_test_fd_count(), sv[2];
    gh_greenlet r;
    make_pair(sv);
    ASSERT_OK(gh_spawn(&r, waiter_read, (void *)(intptr_t)sv[0]));
    ASSERT_OK(gh_sleep(0.02));
    ASSERT_EQ(gh_greenlet_state(r), GH_STATE_WAITING);
    put_byte(sv[1]);
    ASSERT_EQ(join_rc(r), GH_OK);
    close_pair(sv);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* gh_wait_write on a full socket: not writable (timeout 0 fails), then a greenlet
 * drains the peer 20 ms later and the waiting main wakes. */
TEST(wait_write_wakes_after_drain) {
    int fds0 = gh_test_fd_count(), sv[2];
    gh_greenlet d;
    make_pair(sv);
    fill(sv[0]);
    ASSERT_CODE(gh_wait_write(sv[0], 0), GH_ETIMEDOUT);
    ASSERT_OK(gh_spawn(&d, drainer_later, (void *)(intptr_t)sv[1]));
    double t0 = gh_test_now();
    ASSERT_OK(gh_wait_write(sv[0], 5.0));
    ASSERT_TRUE(gh_test_now() - t0 >= 0.018);
    ASSERT_EQ(join_rc(d), 0);
    close_pair(sv);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* ---- timeouts ----------------------------------------------------------- */

/* Nothing arrives: each wait ends with GH_ETIMEDOUT after at least its timeout
 * (from main, where the fd wait keeps the loop alive: not GH_ELOOPEXIT). */
TEST(timeout_expires) {
    int fds0 = gh_test_fd_count(), sv[2];
    double t0;
    make_pair(sv);
    t0 = gh_test_now();
    ASSERT_CODE(gh_wait_read(sv[0], 0.03), GH_ETIMEDOUT);
    ASSERT_TRUE(gh_test_now() - t0 >= 0.027);
    t0 = gh_test_now();
    ASSERT_CODE(gh_wait_fd(sv[0], GH_READ, 0.03), GH_ETIMEDOUT);
    ASSERT_TRUE(gh_test_now() - t0 >= 0.027);
    fill(sv[0]);
    t0 = gh_test_now();
    ASSERT_CODE(gh_wait_write(sv[0], 0.03), GH_ETIMEDOUT);
    ASSERT_TRUE(gh_test_now() - t0 >= 0.027);
    t0 = gh_test_now();
    ASSERT_CODE(gh_wait_fd(sv[0], GH_WRITE, 0.03), GH_ETIMEDOUT);
    ASSERT_TRUE(gh_test_now() - t0 >= 0.027);
    close_pair(sv);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* A timeout in a spawned greenlet expires while main sleeps longer. */
TEST(timeout_expires_in_greenlet) {
    int fds0 = gh_test_fd_count(), sv[2];
    gh_greenlet r;
    make_pair(sv);
    g_timeout = 0.03;
    double t0 = gh_test_now();
    ASSERT_OK(gh_spawn(&r, waiter_read, (void *)(intptr_t)sv[0]));
    ASSERT_EQ(join_rc(r), GH_ETIMEDOUT);
    ASSERT_TRUE(gh_test_now() - t0 >= 0.027);
    close_pair(sv);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* A wait's timeout timer is stopped lazily (its heap entry stays when the wait ends
 * early, as most timeouts do) and restarted without moving that entry when the new
 * deadline is later. Each wait must still time out at its own deadline: a later one
 * not at the old entry's time, an earlier one not at the old entry's either. */
static void *timeouts_restarted(void *arg) {
    int *sv = (int *)arg;
    double t0;
    put_byte(sv[1]);
    /* 1: ends at once (data): its 0.25 s entry is left in the heap. */
    if (gh_wait_read(sv[0], 0.25) != GH_OK) return "wait 1";
    drain(sv[0]);
    /* 2: later deadline (0.4 s from now): must not time out at the old 0.25 s. */
    t0 = gh_test_now();
    if (gh_wait_read(sv[0], 0.4) != GH_ETIMEDOUT) return "wait 2 did not time out";
    if (gh_test_now() - t0 < 0.39) return "wait 2 timed out at the old entry's time";
    /* 3: a long wait ended early (entry left at +5 s), then an earlier deadline. */
    put_byte(sv[1]);
    if (gh_wait_read(sv[0], 5.0) != GH_OK) return "wait 3";
    drain(sv[0]);
    t0 = gh_test_now();
    if (gh_wait_read(sv[0], 0.03) != GH_ETIMEDOUT) return "wait 4 did not time out";
    double took = gh_test_now() - t0;
    if (took < 0.027 || took > 2.0) return "wait 4 timed out at the wrong time";
    /* 5: ended early again, with a 10 s entry left behind: the greenlet then ends. */
    put_byte(sv[1]);
    if (gh_wait_read(sv[0], 10.0) != GH_OK) return "wait 5";
    drain(sv[0]);
    return NULL;
}

TEST(timeout_timers_restarted_lazily_keep_their_deadlines) {
    int fds0 = gh_test_fd_count(), sv[2];
    gh_greenlet g;
    void *res = (void *)1;
    make_pair(sv);
    ASSERT_OK(gh_spawn(&g, timeouts_restarted, sv));
    double t0 = gh_test_now();
    /* A left-behind entry keeps nothing alive: the loop ends when the greenlet does,
     * not 10 s later. */
    ASSERT_OK(gh_hub_run());
    ASSERT_TRUE(gh_test_now() - t0 < 3.0);
    ASSERT_OK(gh_join(g, 0, &res));
    if (res != NULL) GH_TEST_FAIL_("%s", (const char *)res);
    ASSERT_OK(gh_release(g));
    /* Main's own waits too (main's timer is kept the same way). */
    put_byte(sv[1]);
    ASSERT_OK(gh_wait_read(sv[0], 0.2));
    drain(sv[0]);
    t0 = gh_test_now();
    ASSERT_CODE(gh_wait_read(sv[0], 0.3), GH_ETIMEDOUT);
    ASSERT_TRUE(gh_test_now() - t0 >= 0.29);
    close_pair(sv);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* timeout 0 checks once: GH_OK / the mask when ready, GH_ETIMEDOUT when not. */
TEST(timeout_zero_checks_once) {
    int fds0 = gh_test_fd_count(), sv[2];
    make_pair(sv);
    ASSERT_CODE(gh_wait_read(sv[0], 0), GH_ETIMEDOUT);
    ASSERT_CODE(gh_wait_fd(sv[0], GH_READ, 0), GH_ETIMEDOUT);
    ASSERT_OK(gh_wait_write(sv[0], 0));
    ASSERT_EQ(gh_wait_fd(sv[0], GH_WRITE, 0), GH_WRITE);
    put_byte(sv[1]);
    ASSERT_OK(gh_wait_read(sv[0], 0));
    ASSERT_EQ(gh_wait_fd(sv[0], GH_READ, 0), GH_READ);
    ASSERT_EQ(gh_wait_fd(sv[0], GH_READ | GH_WRITE, 0), GH_READ | GH_WRITE);
    fill(sv[1]);
    ASSERT_CODE(gh_wait_write(sv[1], 0), GH_ETIMEDOUT);
    ASSERT_CODE(gh_wait_fd(sv[1], GH_WRITE, 0), GH_ETIMEDOUT);
    close_pair(sv);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* NaN timeout → GH_EINVAL, even when the fd is ready. */
TEST(nan_timeout_einval) {
    int fds0 = gh_test_fd_count(), sv[2];
    make_pair(sv);
    ASSERT_CODE(gh_wait_read(sv[0], NAN), GH_EINVAL);
    ASSERT_CODE(gh_wait_write(sv[0], NAN), GH_EINVAL); /* writable now */
    ASSERT_CODE(gh_wait_fd(sv[0], GH_WRITE, NAN), GH_EINVAL);
    put_byte(sv[1]);
    ASSERT_CODE(gh_wait_read(sv[0], NAN), GH_EINVAL); /* readable now */
    ASSERT_CODE(gh_wait_fd(sv[0], GH_READ | GH_WRITE, -NAN), GH_EINVAL);
    close_pair(sv);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* 1e300, DBL_MAX-like, +inf and negative timeouts do not expire: a write 20 ms later
 * wakes each wait with GH_OK (not GH_ETIMEDOUT from an overflowed deadline). */
TEST(huge_and_forever_timeouts_do_not_expire) {
    static const double timeouts[] = {1e300, 1.7976931348623157e308, INFINITY, -5.0, GH_FOREVER};
    int fds0 = gh_test_fd_count(), sv[2];
    make_pair(sv);
    for (size_t i = 0; i < sizeof timeouts / sizeof timeouts[0]; i++) {
        gh_greenlet w;
        ASSERT_OK(gh_spawn(&w, writer_later, (void *)(intptr_t)sv[1]));
        double t0 = gh_test_now();
        ASSERT_OK(gh_wait_read(sv[0], timeouts[i]));
        ASSERT_TRUE(gh_test_now() - t0 >= 0.018);
        ASSERT_EQ(join_rc(w), 0);
        ASSERT_EQ(drain(sv[0]), 1);
    }
    /* the same through gh_wait_fd and gh_wait_write */
    {
        gh_greenlet w, d;
        ASSERT_OK(gh_spawn(&w, writer_later, (void *)(intptr_t)sv[1]));
        ASSERT_EQ(gh_wait_fd(sv[0], GH_READ, 1e300), GH_READ);
        ASSERT_EQ(join_rc(w), 0);
        fill(sv[0]);
        ASSERT_OK(gh_spawn(&d, drainer_later, (void *)(intptr_t)sv[1]));
        ASSERT_OK(gh_wait_write(sv[0], 1e300));
        ASSERT_EQ(join_rc(d), 0);
    }
    close_pair(sv);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* ---- the ready mask ----------------------------------------------------- */

/* gh_wait_fd returns exactly the ready events among those asked for. */
TEST(wait_fd_returns_ready_mask) {
    int fds0 = gh_test_fd_count(), sv[2];
    make_pair(sv);
    /* empty: writable only */
    ASSERT_EQ(gh_wait_fd(sv[0], GH_READ | GH_WRITE, 5.0), GH_WRITE);
    /* data pending and room to write: both */
    put_byte(sv[1]);
    ASSERT_EQ(gh_wait_fd(sv[0], GH_READ | GH_WRITE, 5.0), GH_READ | GH_WRITE);
    /* only what was asked for */
    ASSERT_EQ(gh_wait_fd(sv[0], GH_READ, 5.0), GH_READ);
    ASSERT_EQ(gh_wait_fd(sv[0], GH_WRITE, 5.0), GH_WRITE);
    /* data pending, send buffer full: readable only */
    fill(sv[0]);
    ASSERT_EQ(gh_wait_fd(sv[0], GH_READ | GH_WRITE, 5.0), GH_READ);
    /* nothing pending, send buffer full: waits; a later write makes it GH_READ */
    ASSERT_EQ(drain(sv[0]), 1);
    ASSERT_CODE(gh_wait_fd(sv[0], GH_READ | GH_WRITE, 0.02), GH_ETIMEDOUT);
    gh_greenlet w;
    ASSERT_OK(gh_spawn(&w, writer_later, (void *)(intptr_t)sv[1]));
    ASSERT_EQ(gh_wait_fd(sv[0], GH_READ | GH_WRITE, 5.0), GH_READ);
    ASSERT_EQ(join_rc(w), 0);
    close_pair(sv);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* ---- bad arguments ------------------------------------------------------ */

/* Negative fds and a closed fd → GH_EBADF, without waiting. */
TEST(bad_fd_ebadf) {
    int fds0 = gh_test_fd_count(), p[2];
    ASSERT_TRUE(gh_hub_current().id != 0); /* the hub's own fds must not take closed_fd's number */
    ASSERT_OK(pipe(p));
    int closed_fd = p[0];
    ASSERT_OK(close(p[0]));
    static const int bad[] = {-1, -1000, (int)0x80000000u};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ASSERT_CODE(gh_wait_read(bad[i], 0), GH_EBADF);
        ASSERT_CODE(gh_wait_write(bad[i], 1.0), GH_EBADF);
        ASSERT_CODE(gh_wait_fd(bad[i], GH_READ | GH_WRITE, GH_FOREVER), GH_EBADF);
    }
    double t0 = gh_test_now();
    ASSERT_CODE(gh_wait_read(closed_fd, 0), GH_EBADF);
    ASSERT_CODE(gh_wait_read(closed_fd, 1.0), GH_EBADF);
    ASSERT_CODE(gh_wait_write(closed_fd, 1.0), GH_EBADF);
    ASSERT_CODE(gh_wait_fd(closed_fd, GH_READ, GH_FOREVER), GH_EBADF);
    ASSERT_TRUE(gh_test_now() - t0 < 1.0); /* not a timeout in disguise */
    ASSERT_OK(close(p[1]));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* fd numbers above RLIMIT_NOFILE (never open) → GH_EBADF, with and without a
 * timeout (FAULTS 8): no huge allocation, no abort. */
TEST(fd_above_limit_ebadf) {
    int fds0 = gh_test_fd_count();
    static const int bad[] = {1 << 20, 0x7fffffff};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ASSERT_CODE(gh_wait_read(bad[i], 0), GH_EBADF);
        ASSERT_CODE(gh_wait_read(bad[i], 1.0), GH_EBADF);
        ASSERT_CODE(gh_wait_write(bad[i], 1.0), GH_EBADF);
        ASSERT_CODE(gh_wait_fd(bad[i], GH_READ | GH_WRITE, GH_FOREVER), GH_EBADF);
    }
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* events 0, 4, unknown bits with valid ones, negative → GH_EINVAL. */
TEST(bad_events_einval) {
    int fds0 = gh_test_fd_count(), sv[2];
    make_pair(sv);
    put_byte(sv[1]);
    static const int bad[] = {0, 4, GH_READ | 4, GH_READ | GH_WRITE | 8, 256, -1, (int)0x80000000u};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ASSERT_CODE(gh_wait_fd(sv[0], bad[i], 0), GH_EINVAL);
        ASSERT_CODE(gh_wait_fd(sv[0], bad[i], 1.0), GH_EINVAL);
    }
    close_pair(sv);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* ---- fds epoll refuses (FAULTS 29) -------------------------------------- */

/* A regular file and /dev/null are always ready: every wait returns at once,
 * with both bits from gh_wait_fd, and nothing busy-loops afterwards. */
TEST(regular_file_and_dev_null_ready) {
    int fds0 = gh_test_fd_count();
    char path[] = "/tmp/gh_test_io_XXXXXX";
    int f = mkstemp(path);
    ASSERT_TRUE(f >= 0);
    ASSERT_OK(unlink(path));
    ASSERT_EQ(write(f, "abc", 3), 3);
    int n = open("/dev/null", O_RDWR | O_CLOEXEC);
    ASSERT_TRUE(n >= 0);
    int fds[2] = {f, n};
    for (int i = 0; i < 2; i++) {
        ASSERT_OK(gh_wait_read(fds[i], 5.0));
        ASSERT_OK(gh_wait_read(fds[i], GH_FOREVER));
        ASSERT_OK(gh_wait_read(fds[i], 0));
        ASSERT_OK(gh_wait_write(fds[i], 5.0));
        ASSERT_OK(gh_wait_write(fds[i], 0));
        ASSERT_EQ(gh_wait_fd(fds[i], GH_READ | GH_WRITE, 5.0), GH_READ | GH_WRITE);
        ASSERT_EQ(gh_wait_fd(fds[i], GH_READ, 0), GH_READ);
    }
    /* the loop stays quiet afterwards: no spinning on a lingering always-ready fd */
    gh_watcher p = start_iteration_counter();
    iterations = 0;
    ASSERT_OK(gh_sleep(0.05));
    ASSERT_LE(iterations, 20);
    ASSERT_OK(gh_watcher_close(p));
    ASSERT_OK(close(f));
    ASSERT_OK(close(n));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* A directory fd (also refused by epoll) is likewise reported ready (FAULTS 29). */
TEST(directory_ready) {
    int fds0 = gh_test_fd_count();
    int d = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_TRUE(d >= 0);
    ASSERT_OK(gh_wait_read(d, 5.0));
    ASSERT_EQ(gh_wait_fd(d, GH_READ, 0), GH_READ);
    ASSERT_OK(close(d));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* ---- hang-up, kill, throw ----------------------------------------------- */

/* The peer hangs up while a greenlet waits to read (FAULTS 30): it wakes with GH_OK,
 * read() then sees EOF; the hung-up fd left open does not make the loop spin. */
TEST(peer_hangup_wakes_reader) {
    int fds0 = gh_test_fd_count(), sv[2];
    gh_greenlet r;
    char c;
    make_pair(sv);
    ASSERT_OK(gh_spawn(&r, waiter_read, (void *)(intptr_t)sv[0]));
    ASSERT_OK(gh_sleep(0.02));
    ASSERT_EQ(gh_greenlet_state(r), GH_STATE_WAITING);
    ASSERT_OK(close(sv[1]));
    ASSERT_EQ(join_rc(r), GH_OK);
    ASSERT_EQ(read(sv[0], &c, 1), 0);
    ASSERT_EQ(gh_wait_fd(sv[0], GH_READ, 0), GH_READ); /* hang-up reads as readable */
    gh_watcher p = start_iteration_counter();
    iterations = 0;
    ASSERT_OK(gh_sleep(0.05));
    ASSERT_LE(iterations, 20);
    ASSERT_OK(gh_watcher_close(p));
    ASSERT_OK(close(sv[0]));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* The peer hangs up while a greenlet waits to write on a full socket: it wakes. */
TEST(peer_hangup_wakes_writer) {
    int fds0 = gh_test_fd_count(), sv[2];
    gh_greenlet w;
    make_pair(sv);
    fill(sv[0]);
    ASSERT_OK(gh_spawn(&w, waiter_write, (void *)(intptr_t)sv[0]));
    ASSERT_OK(gh_sleep(0.02));
    ASSERT_EQ(gh_greenlet_state(w), GH_STATE_WAITING);
    ASSERT_OK(close(sv[1]));
    ASSERT_EQ(join_rc(w), GH_OK);
    ASSERT_OK(close(sv[0]));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* Kill while waiting on IO (FAULTS 11): the wait returns GH_ECANCELED, and the fd
 * stays usable for a later wait. */
TEST(kill_while_waiting_io) {
    int fds0 = gh_test_fd_count(), sv[2], wv[2];
    gh_greenlet r, w, f;
    make_pair(sv);
    make_pair(wv);
    g_timeout = GH_FOREVER;
    ASSERT_OK(gh_spawn(&r, waiter_read, (void *)(intptr_t)sv[0]));
    ASSERT_OK(gh_spawn(&f, waiter_fd_read, (void *)(intptr_t)sv[0]));
    fill(wv[0]);
    ASSERT_OK(gh_spawn(&w, waiter_write, (void *)(intptr_t)wv[0]));
    ASSERT_OK(gh_sleep(0.02));
    ASSERT_EQ(gh_greenlet_state(r), GH_STATE_WAITING);
    ASSERT_EQ(gh_greenlet_state(f), GH_STATE_WAITING);
    ASSERT_EQ(gh_greenlet_state(w), GH_STATE_WAITING);
    ASSERT_OK(gh_kill(r, 5.0));
    ASSERT_OK(gh_kill(f, 5.0));
    ASSERT_OK(gh_kill(w, 5.0));
    ASSERT_EQ(join_rc(r), GH_ECANCELED);
    ASSERT_EQ(join_rc(f), GH_ECANCELED);
    ASSERT_EQ(join_rc(w), GH_ECANCELED);
    /* the fds still work */
    ASSERT_TRUE(drain(wv[1]) > 0);
    ASSERT_OK(gh_wait_write(wv[0], 5.0));
    put_byte(sv[1]);
    ASSERT_OK(gh_wait_read(sv[0], 5.0));
    close_pair(sv);
    close_pair(wv);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* gh_throw at a greenlet waiting on IO: the wait returns the thrown code once. */
TEST(throw_while_waiting_io) {
    int fds0 = gh_test_fd_count(), sv[2];
    gh_greenlet r;
    make_pair(sv);
    g_timeout = GH_FOREVER;
    ASSERT_OK(gh_spawn(&r, waiter_read, (void *)(intptr_t)sv[0]));
    ASSERT_OK(gh_sleep(0.02));
    ASSERT_OK(gh_throw(r, GH_EINTR));
    ASSERT_EQ(join_rc(r), GH_EINTR);
    close_pair(sv);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* ---- several waiters, ping-pong ----------------------------------------- */

/* Three greenlets wait to read one fd (allowed for gh_wait_*): one write wakes all. */
TEST(several_readers_same_fd_all_wake) {
    int fds0 = gh_test_fd_count(), sv[2];
    gh_greenlet r1, r2, r3;
    make_pair(sv);
    ASSERT_OK(gh_spawn(&r1, waiter_read, (void *)(intptr_t)sv[0]));
    ASSERT_OK(gh_spawn(&r2, waiter_read, (void *)(intptr_t)sv[0]));
    ASSERT_OK(gh_spawn(&r3, waiter_fd_read, (void *)(intptr_t)sv[0]));
    ASSERT_OK(gh_sleep(0.02));
    ASSERT_EQ(gh_greenlet_state(r1), GH_STATE_WAITING);
    ASSERT_EQ(gh_greenlet_state(r2), GH_STATE_WAITING);
    ASSERT_EQ(gh_greenlet_state(r3), GH_STATE_WAITING);
    put_byte(sv[1]);
    ASSERT_EQ(join_rc(r1), GH_OK);
    ASSERT_EQ(join_rc(r2), GH_OK);
    ASSERT_EQ(join_rc(r3), GH_READ);
    close_pair(sv);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

#define PINGS 10000
struct pp {
    int fd;
    uint64_t rounds;
    uint64_t bytes_read, bytes_written;
    int err;
};

/* Reads exactly 8 bytes from non-blocking `fd`, waiting as needed. */
static int read8(struct pp *p, uint64_t *v) {
    size_t got = 0;
    while (got < sizeof *v) {
        ssize_t n = read(p->fd, (char *)v + got, sizeof *v - got);
        if (n > 0) {
            got += (size_t)n;
            p->bytes_read += (uint64_t)n;
        } else if (n == 0) {
            return -1000;
        } else if (errno == EAGAIN) {
            int rc = gh_wait_read(p->fd, 5.0);
            if (rc != GH_OK) return rc;
        } else {
            return -errno;
        }
    }
    return 0;
}
static int write8(struct pp *p, uint64_t v) {
    ssize_t n = write(p->fd, &v, sizeof v); /* a fresh socket: 8 bytes always fit */
    if (n != (ssize_t)sizeof v) return -2000;
    p->bytes_written += (uint64_t)n;
    return 0;
}
static void *pinger(void *arg) {
    struct pp *p = arg;
    for (uint64_t i = 0; i < PINGS; i++) {
        uint64_t v;
        if ((p->err = write8(p, 2 * i)) != 0) break;
        if ((p->err = read8(p, &v)) != 0) break;
        if (v != 2 * i + 1) {
            p->err = -3000;
            break;
        }
        p->rounds++;
    }
    return NULL;
}
static void *ponger(void *arg) {
    struct pp *p = arg;
    for (uint64_t i = 0; i < PINGS; i++) {
        uint64_t v;
        if ((p->err = read8(p, &v)) != 0) break;
        if (v != 2 * i) {
            p->err = -3000;
            break;
        }
        if ((p->err = write8(p, v + 1)) != 0) break;
        p->rounds++;
    }
    return NULL;
}

/* 10,000 round trips over a socketpair between two greenlets, each waiting with
 * gh_wait_read: every message arrives, in order, with exact byte counts. */
TEST(ping_pong_10000) {
    int fds0 = gh_test_fd_count(), sv[2];
    gh_greenlet a, b;
    make_pair(sv);
    struct pp pa = {sv[0], 0, 0, 0, 0}, pb = {sv[1], 0, 0, 0, 0};
    ASSERT_OK(gh_spawn(&b, ponger, &pb));
    ASSERT_OK(gh_spawn(&a, pinger, &pa));
    ASSERT_OK(gh_join(a, 15.0, NULL));
    ASSERT_OK(gh_join(b, 15.0, NULL));
    ASSERT_OK(gh_release(a));
    ASSERT_OK(gh_release(b));
    ASSERT_OK(pa.err);
    ASSERT_OK(pb.err);
    ASSERT_EQ(pa.rounds, PINGS);
    ASSERT_EQ(pb.rounds, PINGS);
    ASSERT_EQ(pa.bytes_written, 8 * PINGS);
    ASSERT_EQ(pa.bytes_read, 8 * PINGS);
    ASSERT_EQ(pb.bytes_written, 8 * PINGS);
    ASSERT_EQ(pb.bytes_read, 8 * PINGS);
    ASSERT_EQ(drain(sv[0]) + drain(sv[1]), 0);
    close_pair(sv);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* ---- fd number reuse ---------------------------------------------------- */

/* The user closes a waited-on socketpair and a new one gets the same numbers between
 * two waits: waits on the new fd are not answered by a stale registration (a timeout
 * is a timeout), and a later write to it wakes the wait. Tried after a first wait that
 * ended with data and after one that timed out. */
TEST(fd_reuse_no_stale_registration) {
    int fds0 = gh_test_fd_count(), sv[2], nv[2];
    for (int round = 0; round < 2; round++) {
        make_pair(sv);
        if (round == 0) {
            put_byte(sv[1]);
            ASSERT_OK(gh_wait_read(sv[0], 5.0));
        } else {
            ASSERT_CODE(gh_wait_read(sv[0], 0.01), GH_ETIMEDOUT);
        }
        close_pair(sv);
        make_pair(nv);
        ASSERT_EQ(nv[0], sv[0]); /* the numbers really are reused */
        ASSERT_EQ(nv[1], sv[1]);
        ASSERT_CODE(gh_wait_read(nv[0], 0.02), GH_ETIMEDOUT);
        gh_greenlet w;
        ASSERT_OK(gh_spawn(&w, writer_later, (void *)(intptr_t)nv[1]));
        ASSERT_OK(gh_wait_read(nv[0], 5.0));
        ASSERT_EQ(join_rc(w), 0);
        ASSERT_EQ(drain(nv[0]), 1);
        /* and the other direction, on the reused number of the old peer */
        ASSERT_OK(gh_spawn(&w, writer_later, (void *)(intptr_t)nv[0]));
        ASSERT_OK(gh_wait_read(nv[1], 5.0));
        ASSERT_EQ(join_rc(w), 0);
        close_pair(nv);
    }
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* FAULTS 28: the user close()s a waited-on fd while a dup of it lives (so the kernel
 * keeps the old file in the epoll set), a new socket reuses the number, and the old
 * file becomes readable: the wait on the new fd must not see that event (it times
 * out), the loop must not spin, and data on the new fd still wakes it. */
TEST(fd_reuse_while_dup_alive) {
    int fds0 = gh_test_fd_count(), sv[2], nv[2];
    make_pair(sv);
    ASSERT_CODE(gh_wait_read(sv[0], 0.01), GH_ETIMEDOUT); /* registers sv[0] */
    int keep = dup(sv[0]);
    ASSERT_TRUE(keep >= 0);
    int num = sv[0];
    ASSERT_OK(close(sv[0]));
    make_pair(nv);
    ASSERT_EQ(nv[0], num);
    put_byte(sv[1]); /* the old file (still alive through `keep`) becomes readable */
    gh_watcher p = start_iteration_counter();
    /* Re-armed in the same iteration, the stale registration is trusted at first: the
     * header documents at most 64 spurious wake-ups (each read then fails with EAGAIN)
     * before the registration is verified and the stale one dropped. */
    int spurious = 0, rc;
    while ((rc = gh_wait_read(nv[0], 0.05)) == GH_OK) {
        char c;
        ASSERT_EQ(read(nv[0], &c, 1), -1);
        ASSERT_EQ(errno, EAGAIN);
        ASSERT_LE(++spurious, 64);
    }
    ASSERT_CODE(rc, GH_ETIMEDOUT);
    /* From then on waits behave, and nothing spins. */
    iterations = 0;
    ASSERT_CODE(gh_wait_read(nv[0], 0.05), GH_ETIMEDOUT);
    ASSERT_LE(iterations, 20);
    gh_greenlet w;
    ASSERT_OK(gh_spawn(&w, writer_later, (void *)(intptr_t)nv[1]));
    ASSERT_OK(gh_wait_read(nv[0], 5.0));
    ASSERT_EQ(join_rc(w), 0);
    ASSERT_EQ(drain(nv[0]), 1);
    ASSERT_EQ(drain(keep), 1);
    ASSERT_OK(gh_watcher_close(p));
    close_pair(nv);
    ASSERT_OK(close(keep));
    ASSERT_OK(close(sv[1]));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* The user close()s an fd while an io watcher is still started on it (no dup: the
 * kernel drops the file from the epoll set), a new pipe reuses the number and has data:
 * a wait on the new fd joins the still-active watcher's interest and must still see
 * the data (it used to time out on epoll and polling: nothing was registered for the
 * new file and nothing re-checked it; found by fuzz/api_sequence). */
static int reuse_fired;
static void reuse_cb(gh_watcher w, int revents, void *arg) {
    (void)w;
    (void)revents;
    (void)arg;
    reuse_fired++;
}
TEST(fd_reuse_under_active_watcher) {
    int fds0 = gh_test_fd_count(), p[2], q[2];
    gh_watcher w;
    ASSERT_OK(gh_sleep(0)); /* the hub's own fds exist before the numbers are taken */
    ASSERT_OK(pipe2(p, O_CLOEXEC | O_NONBLOCK));
    ASSERT_OK(gh_io_new(&w, p[0], GH_READ));
    ASSERT_OK(gh_watcher_start(w, reuse_cb, NULL));
    ASSERT_TRUE(gh_hub_run_once(0) >= 0); /* registered with the kernel */
    ASSERT_OK(close(p[0]));
    ASSERT_OK(close(p[1]));
    ASSERT_OK(pipe2(q, O_CLOEXEC | O_NONBLOCK));
    ASSERT_EQ(q[0], p[0]); /* the number really is reused */
    put_byte(q[1]);
    ASSERT_OK(gh_wait_read(q[0], 5.0));
    ASSERT_EQ(gh_wait_fd(q[0], GH_READ, 5.0), GH_READ);
    ASSERT_TRUE(reuse_fired > 0); /* the old watcher now watches the number's new file */
    ASSERT_OK(gh_watcher_close(w));
    ASSERT_EQ(drain(q[0]), 1);
    ASSERT_OK(close(q[0]));
    ASSERT_OK(close(q[1]));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

int main(int argc, char **argv) {
    TEST_INIT(argc, argv);
    RUN(ready_before_call_returns_at_once);
    RUN(main_waits_greenlet_writes_later);
    RUN(greenlets_both_orders);
    RUN(greenlet_waits_main_writes);
    RUN(wait_write_wakes_after_drain);
    RUN(timeout_expires);
    RUN(timeout_timers_restarted_lazily_keep_their_deadlines);
    RUN(timeout_expires_in_greenlet);
    RUN(timeout_zero_checks_once);
    RUN(nan_timeout_einval);
    RUN(huge_and_forever_timeouts_do_not_expire);
    RUN(wait_fd_returns_ready_mask);
    RUN(bad_fd_ebadf);
    RUN(fd_above_limit_ebadf);
    RUN(bad_events_einval);
    RUN(regular_file_and_dev_null_ready);
    RUN(directory_ready);
    RUN(peer_hangup_wakes_reader);
    RUN(peer_hangup_wakes_writer);
    RUN(kill_while_waiting_io);
    RUN(throw_while_waiting_io);
    RUN(several_readers_same_fd_all_wake);
    RUN(ping_pong_10000);
    RUN(fd_reuse_no_stale_registration);
    RUN(fd_reuse_while_dup_alive);
    RUN(fd_reuse_under_active_watcher);
    return TEST_DONE();
}

/* test_watcher.c — the "Watchers" section of greenhub.h: gh_io_new, gh_timer_new,
 * gh_prepare_new, gh_check_new, gh_idle_new, gh_async_new, gh_watcher_start / _stop /
 * _close / _ref / _active, gh_async_send, gh_run_callback, plus gh_hub_wait.
 *
 * Build and run:
 *   cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g -O1 -Iinclude -Ic-tests \
 *      c-tests/test_watcher.c target/release/libgreenhub.a -lpthread -ldl -lm \
 *      -o target/c/test_watcher
 *   ./target/c/test_watcher [case]
 */
#include "harness.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>

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
static size_t drain(int fd) {
    char buf[4096];
    size_t total = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) total += (size_t)n;
    return total;
}

/* Joins `g` (bounded), releases it, returns the int its function returned. */
static int join_rc(gh_greenlet g) {
    void *res = NULL;
    ASSERT_OK(gh_join(g, 10.0, &res));
    ASSERT_OK(gh_release(g));
    return PTR_RC(res);
}

/* A record of callback invocations, shared by most cases. */
#define MAXLOG 64
struct rec {
    int count;
    int revents[MAXLOG];
    uint64_t ids[MAXLOG];
    int stop_after; /* > 0: stop the watcher at this count */
    int close_after; /* > 0: close the watcher at this count */
    int rc; /* code of the last stop/close made from the callback */
};
static void record_cb(gh_watcher w, int revents, void *arg) {
    struct rec *r = arg;
    if (r->count < MAXLOG) {
        r->revents[r->count] = revents;
        r->ids[r->count] = w.id;
    }
    r->count++;
    if (r->stop_after > 0 && r->count == r->stop_after) r->rc = gh_watcher_stop(w);
    if (r->close_after > 0 && r->count == r->close_after) r->rc = gh_watcher_close(w);
}
static void noop_cb(gh_watcher w, int revents, void *arg) {
    (void)w;
    (void)revents;
    (void)arg;
}
static void other_noop_cb(gh_watcher w, int revents, void *arg) {
    (void)w;
    (void)revents;
    (void)arg;
}

/* Handles that must never be valid watchers: zero, all ones, and `valid` with
 * high bits (generation / kind / hub parts, never the low slot bits) flipped. */
static int forged(gh_watcher valid, gh_watcher out[6]) {
    out[0].id = 0;
    out[1].id = ~(uint64_t)0;
    out[2].id = valid.id ^ ((uint64_t)1 << 24);
    out[3].id = valid.id ^ ((uint64_t)1 << 44);
    out[4].id = valid.id ^ ((uint64_t)1 << 63);
    out[5].id = valid.id ^ ((uint64_t)0x5a5a << 40);
    return 6;
}

/* ---- gh_io_new ---------------------------------------------------------- */

/* gh_io_new with fd -1, a closed fd or a never-opened number → GH_EBADF. */
TEST(io_new_bad_fd) {
    int fds0 = gh_test_fd_count(), p[2];
    gh_watcher w = {0};
    ASSERT_TRUE(gh_hub_current().id != 0); /* the hub's fds exist before we close one */
    ASSERT_OK(pipe(p));
    int closed_fd = p[0];
    ASSERT_OK(close(p[0]));
    ASSERT_CODE(gh_io_new(&w, -1, GH_READ), GH_EBADF);
    ASSERT_CODE(gh_io_new(&w, -1000, GH_WRITE), GH_EBADF);
    ASSERT_CODE(gh_io_new(&w, closed_fd, GH_READ), GH_EBADF);
    ASSERT_CODE(gh_io_new(&w, closed_fd, GH_READ | GH_WRITE), GH_EBADF);
    ASSERT_CODE(gh_io_new(&w, 1 << 20, GH_READ), GH_EBADF);
    ASSERT_EQ(w.id, 0); /* nothing was handed out */
    ASSERT_OK(close(p[1]));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* gh_io_new with the largest fd number → GH_EBADF, no huge allocation (FAULTS 8). */
TEST(io_new_fd_int_max) {
    int fds0 = gh_test_fd_count();
    gh_watcher w = {0};
    ASSERT_CODE(gh_io_new(&w, 0x7fffffff, GH_READ), GH_EBADF);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* gh_io_new: events 0 or with unknown bits, and NULL out → GH_EINVAL. */
TEST(io_new_bad_events_null_out) {
    int fds0 = gh_test_fd_count(), sv[2];
    gh_watcher w = {0};
    make_pair(sv);
    static const int bad[] = {0, 4, GH_READ | 4, GH_READ | GH_WRITE | 8, GH_TIMER, GH_ASYNC, -1};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ASSERT_CODE(gh_io_new(&w, sv[0], bad[i]), GH_EINVAL);
    ASSERT_CODE(gh_io_new(NULL, sv[0], GH_READ), GH_EINVAL);
    ASSERT_EQ(w.id, 0);
    close_pair(sv);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* Null out-pointers of the other constructors → GH_EINVAL. */
TEST(constructors_null_out) {
    int fds0 = gh_test_fd_count();
    ASSERT_CODE(gh_timer_new(NULL, 0.01, 0), GH_EINVAL);
    ASSERT_CODE(gh_prepare_new(NULL), GH_EINVAL);
    ASSERT_CODE(gh_check_new(NULL), GH_EINVAL);
    ASSERT_CODE(gh_idle_new(NULL), GH_EINVAL);
    ASSERT_CODE(gh_async_new(NULL), GH_EINVAL);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* An io watcher is created stopped; once started it fires GH_READ only when data is
 * there, once per arrival when the callback consumes the data, with its handle and arg. */
static int io_fd;
static void io_consume_cb(gh_watcher w, int revents, void *arg) {
    record_cb(w, revents, arg);
    drain(io_fd);
}
TEST(io_fires_only_when_data) {
    int fds0 = gh_test_fd_count(), sv[2];
    struct rec r = {0};
    gh_watcher w;
    make_pair(sv);
    io_fd = sv[0];
    ASSERT_OK(gh_io_new(&w, sv[0], GH_READ));
    ASSERT_EQ(gh_watcher_active(w), 0);
    put_byte(sv[1]);
    ASSERT_OK(gh_sleep(0.02)); /* readable, but the watcher is not started */
    ASSERT_EQ(r.count, 0);
    ASSERT_EQ(drain(sv[0]), 1);
    ASSERT_OK(gh_watcher_start(w, io_consume_cb, &r));
    ASSERT_EQ(gh_watcher_active(w), 1);
    ASSERT_OK(gh_sleep(0.03)); /* no data: no callback */
    ASSERT_EQ(r.count, 0);
    put_byte(sv[1]);
    ASSERT_OK(gh_sleep(0.03));
    ASSERT_EQ(r.count, 1);
    ASSERT_EQ(r.revents[0], GH_READ);
    ASSERT_EQ(r.ids[0], w.id);
    put_byte(sv[1]);
    ASSERT_OK(gh_sleep(0.03));
    ASSERT_EQ(r.count, 2);
    ASSERT_EQ(r.revents[1], GH_READ);
    ASSERT_OK(gh_watcher_close(w));
    close_pair(sv);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* An io watcher for GH_READ|GH_WRITE reports only what is ready: GH_WRITE on an
 * empty socket; GH_READ|GH_WRITE once data is pending. */
TEST(io_revents_are_what_is_ready) {
    int fds0 = gh_test_fd_count(), sv[2];
    struct rec r = {0};
    gh_watcher w;
    make_pair(sv);
    ASSERT_OK(gh_io_new(&w, sv[0], GH_READ | GH_WRITE));
    r.stop_after = 1;
    ASSERT_OK(gh_watcher_start(w, record_cb, &r));
    ASSERT_OK(gh_hub_run());
    ASSERT_EQ(r.count, 1);
    ASSERT_EQ(r.revents[0], GH_WRITE);
    put_byte(sv[1]);
    r.count = 0;
    ASSERT_OK(gh_watcher_start(w, record_cb, &r));
    ASSERT_OK(gh_hub_run());
    ASSERT_EQ(r.count, 1);
    ASSERT_EQ(r.revents[0], GH_READ | GH_WRITE);
    ASSERT_OK(gh_watcher_close(w));
    close_pair(sv);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* Several io watchers on one fd, and a greenlet in gh_wait_read on it too: one
 * arrival fires every read watcher (GH_READ) and wakes the greenlet; a write watcher
 * on the same fd fires GH_WRITE. */
static void *wait_read_body(void *arg) { return RC_PTR(gh_wait_read((int)(intptr_t)arg, 5.0)); }
TEST(io_multiplex_same_fd) {
    int fds0 = gh_test_fd_count(), sv[2];
    struct rec r[4] = {{0}, {0}, {0}, {0}};
    gh_watcher w[4];
    gh_greenlet g;
    make_pair(sv);
    for (int i = 0; i < 4; i++) {
        ASSERT_OK(gh_io_new(&w[i], sv[0], i < 3 ? GH_READ : GH_WRITE));
        r[i].stop_after = 1;
        ASSERT_OK(gh_watcher_start(w[i], record_cb, &r[i]));
    }
    ASSERT_OK(gh_spawn(&g, wait_read_body, (void *)(intptr_t)sv[0]));
    ASSERT_OK(gh_sleep(0.02)); /* the write watcher fires; nothing to read yet */
    ASSERT_EQ(r[3].count, 1);
    ASSERT_EQ(r[3].revents[0], GH_WRITE);
    for (int i = 0; i < 3; i++) ASSERT_EQ(r[i].count, 0);
    ASSERT_EQ(gh_greenlet_state(g), GH_STATE_WAITING);
    put_byte(sv[1]);
    ASSERT_OK(gh_hub_run());
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(r[i].count, 1);
        ASSERT_EQ(r[i].revents[0], GH_READ);
        ASSERT_EQ(r[i].ids[0], w[i].id);
        ASSERT_OK(r[i].rc);
    }
    ASSERT_EQ(join_rc(g), GH_OK);
    for (int i = 0; i < 4; i++) ASSERT_OK(gh_watcher_close(w[i]));
    close_pair(sv);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* ---- gh_timer_new ------------------------------------------------------- */

/* after negative / NaN / -inf, repeat negative / NaN / +inf, NULL out → GH_EINVAL. */
TEST(timer_new_invalid) {
    int fds0 = gh_test_fd_count();
    gh_watcher w = {0};
    ASSERT_CODE(gh_timer_new(&w, -0.001, 0), GH_EINVAL);
    ASSERT_CODE(gh_timer_new(&w, -1.0, 0), GH_EINVAL);
    ASSERT_CODE(gh_timer_new(&w, GH_FOREVER, 0), GH_EINVAL);
    ASSERT_CODE(gh_timer_new(&w, -INFINITY, 0), GH_EINVAL);
    ASSERT_CODE(gh_timer_new(&w, NAN, 0), GH_EINVAL);
    ASSERT_CODE(gh_timer_new(&w, 0.01, -1.0), GH_EINVAL);
    ASSERT_CODE(gh_timer_new(&w, 0.01, NAN), GH_EINVAL);
    ASSERT_CODE(gh_timer_new(&w, 0.01, INFINITY), GH_EINVAL);
    ASSERT_CODE(gh_timer_new(&w, 0.01, -INFINITY), GH_EINVAL);
    ASSERT_CODE(gh_timer_new(NULL, 0.01, 0), GH_EINVAL);
    ASSERT_EQ(w.id, 0);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* A one-shot timer fires once, no earlier than `after`, with GH_TIMER, already
 * stopped inside its callback; gh_hub_run then returns GH_OK. */
static int active_in_cb = -100;
static void timer_active_cb(gh_watcher w, int revents, void *arg) {
    active_in_cb = gh_watcher_active(w);
    record_cb(w, revents, arg);
}
TEST(timer_one_shot) {
    int fds0 = gh_test_fd_count();
    struct rec r = {0};
    gh_watcher t;
    ASSERT_OK(gh_timer_new(&t, 0.03, 0));
    ASSERT_EQ(gh_watcher_active(t), 0);
    double t0 = gh_test_now();
    ASSERT_OK(gh_watcher_start(t, timer_active_cb, &r));
    ASSERT_EQ(gh_watcher_active(t), 1);
    ASSERT_OK(gh_hub_run());
    ASSERT_TRUE(gh_test_now() - t0 >= 0.027);
    ASSERT_EQ(r.count, 1);
    ASSERT_EQ(r.revents[0], GH_TIMER);
    ASSERT_EQ(r.ids[0], t.id);
    ASSERT_EQ(active_in_cb, 0);
    ASSERT_EQ(gh_watcher_active(t), 0);
    ASSERT_OK(gh_watcher_close(t));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* after = 0 fires (in the next iteration), once. */
TEST(timer_after_zero_fires) {
    int fds0 = gh_test_fd_count();
    struct rec r = {0};
    gh_watcher t;
    ASSERT_OK(gh_timer_new(&t, 0, 0));
    ASSERT_OK(gh_watcher_start(t, record_cb, &r));
    ASSERT_EQ(r.count, 0); /* not from inside gh_watcher_start */
    ASSERT_OK(gh_hub_run());
    ASSERT_EQ(r.count, 1);
    ASSERT_EQ(r.revents[0], GH_TIMER);
    ASSERT_OK(gh_watcher_close(t));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* A repeating timer fires N = 5 times, stays active in between, and is stopped from
 * its callback at the 5th: gh_hub_run returns; total time >= after + 4 * repeat. */
TEST(timer_repeat_n_times_then_stop) {
    int fds0 = gh_test_fd_count();
    struct rec r = {0};
    gh_watcher t;
    ASSERT_OK(gh_timer_new(&t, 0.01, 0.01));
    r.stop_after = 5;
    active_in_cb = -100;
    double t0 = gh_test_now();
    ASSERT_OK(gh_watcher_start(t, timer_active_cb, &r));
    ASSERT_OK(gh_hub_run());
    ASSERT_TRUE(gh_test_now() - t0 >= 0.045);
    ASSERT_EQ(r.count, 5);
    ASSERT_OK(r.rc);
    ASSERT_EQ(active_in_cb, 1); /* a repeating timer is still active in its callback */
    for (int i = 0; i < 5; i++) ASSERT_EQ(r.revents[i], GH_TIMER);
    ASSERT_EQ(gh_watcher_active(t), 0);
    ASSERT_OK(gh_sleep(0.03)); /* stopped for good */
    ASSERT_EQ(r.count, 5);
    ASSERT_OK(gh_watcher_close(t));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* A repeating timer keeps time (issue 19): it re-arms from when it was due, not from
 * when the loop got to it. Here an always-ready io watcher whose callback works 3 ms
 * makes every loop iteration last 3 ms, so a 10 ms timer runs 0-3 ms late each
 * period; re-armed from the firing time it fired every ~12 ms (40 times in 0.5 s),
 * now once per period (49-50). A period the process was not running for at all (a
 * loaded machine descheduling it) is skipped, as documented: the firing times show
 * those (a gap of two periods or more), and they are not counted against the timer. */
#define KEEP_TIME_MAX 256
struct keep_time {
    gh_watcher t, io;
    int count;
    double until;
    double at[KEEP_TIME_MAX];
};

static void keep_time_timer_cb(gh_watcher w, int revents, void *arg) {
    (void)w;
    (void)revents;
    struct keep_time *k = (struct keep_time *)arg;
    if (k->count < KEEP_TIME_MAX) k->at[k->count] = gh_test_now();
    k->count++;
}

/* Periods of 10 ms that passed with no firing: between firings (a gap of n periods,
 * to within the 3 ms a firing may be late, skipped n - 1), from the start to the first
 * and from the last to the end. 0 on an unloaded machine. */
static int keep_time_missed(const struct keep_time *k, double t0, double end) {
    int missed = 0, n = k->count < KEEP_TIME_MAX ? k->count : KEEP_TIME_MAX;
    double prev = t0;
    for (int i = 0; i < n; i++) {
        int skipped = (int)((k->at[i] - prev) / 0.01 + 0.5) - 1;
        if (skipped > 0) missed += skipped;
        prev = k->at[i];
    }
    int tail = (int)((end - prev) / 0.01) - 1;
    if (tail > 0) missed += tail;
    return missed;
}

static void keep_time_io_cb(gh_watcher w, int revents, void *arg) {
    (void)revents;
    struct keep_time *k = (struct keep_time *)arg;
    double busy = gh_test_now() + 0.003;
    while (gh_test_now() < busy) {
    }
    if (gh_test_now() >= k->until) {
        gh_watcher_stop(k->t);
        gh_watcher_stop(w);
    }
}

TEST(timer_repeat_keeps_time_when_late) {
    int p[2];
    ASSERT_TRUE(pipe(p) == 0);
    ASSERT_TRUE(write(p[1], "x", 1) == 1); /* never read: always ready */
    struct keep_time k = {0};
    ASSERT_OK(gh_timer_new(&k.t, 0.01, 0.01));
    ASSERT_OK(gh_io_new(&k.io, p[0], GH_READ));
    double t0 = gh_test_now();
    k.until = t0 + 0.5;
    ASSERT_OK(gh_watcher_start(k.t, keep_time_timer_cb, &k));
    ASSERT_OK(gh_watcher_start(k.io, keep_time_io_cb, &k));
    ASSERT_OK(gh_hub_run());
    double end = gh_test_now();
    int periods = (int)((end - t0) / 0.01);
    int missed = keep_time_missed(&k, t0, end);
    if (k.count < periods - 4 - missed || k.count > periods + 1)
        fprintf(stderr, "fired %d times in %d periods (%d skipped)\n", k.count, periods, missed);
    ASSERT_TRUE(k.count >= periods - 4 - missed);
    ASSERT_TRUE(k.count <= periods + 1);
    ASSERT_OK(gh_watcher_close(k.t));
    ASSERT_OK(gh_watcher_close(k.io));
    close(p[0]);
    close(p[1]);
    ASSERT_OK(gh_hub_destroy());
}

/* A loop late by several periods skips the missed ones instead of firing them in a
 * burst: after a callback that blocks for 5.5 periods, one late firing, then the
 * timer's own phase again (the next boundary, which may come soon after the late
 * firing, then a full period): from the late firing to the fourth, most of a period
 * or more passes, where a burst would fire them back to back. */
struct skip_rec {
    int count;
    double at[4];
};

static void skip_cb(gh_watcher w, int revents, void *arg) {
    (void)revents;
    struct skip_rec *r = (struct skip_rec *)arg;
    r->at[r->count++] = gh_test_now();
    if (r->count == 1) {
        double busy = gh_test_now() + 0.055;
        while (gh_test_now() < busy) {
        }
    }
    if (r->count == 4) gh_watcher_stop(w);
}

TEST(timer_repeat_skips_missed_periods) {
    struct skip_rec r = {0};
    gh_watcher t;
    ASSERT_OK(gh_timer_new(&t, 0.01, 0.01));
    ASSERT_OK(gh_watcher_start(t, skip_cb, &r));
    ASSERT_OK(gh_hub_run());
    ASSERT_EQ(r.count, 4);
    ASSERT_TRUE(r.at[3] - r.at[1] >= 0.008);
    ASSERT_OK(gh_watcher_close(t));
    ASSERT_OK(gh_hub_destroy());
}

/* after = +inf (and 1e300): a valid timer that never fires (no overflow into "due"). */
TEST(timer_infinite_never_fires) {
    int fds0 = gh_test_fd_count();
    struct rec r1 = {0}, r2 = {0};
    gh_watcher t1, t2;
    ASSERT_OK(gh_timer_new(&t1, INFINITY, 0));
    ASSERT_OK(gh_timer_new(&t2, 1e300, 0.5));
    ASSERT_OK(gh_watcher_start(t1, record_cb, &r1));
    ASSERT_OK(gh_watcher_start(t2, record_cb, &r2));
    ASSERT_OK(gh_sleep(0.05));
    ASSERT_EQ(r1.count, 0);
    ASSERT_EQ(r2.count, 0);
    ASSERT_EQ(gh_watcher_active(t1), 1);
    ASSERT_EQ(gh_watcher_active(t2), 1);
    ASSERT_OK(gh_watcher_close(t1));
    ASSERT_OK(gh_watcher_close(t2));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* FAULTS 35: 10^5 timers with equal `after`, started back to back, fire in start
 * order (each closes itself from its callback). */
#define NTIMERS 100000
static int *fire_order;
static int nfired;
static void order_cb(gh_watcher w, int revents, void *arg) {
    if (revents == GH_TIMER && nfired < NTIMERS) fire_order[nfired] = (int)(intptr_t)arg;
    nfired++;
    if (gh_watcher_close(w) != GH_OK) nfired += 1000000; /* shows up in the count */
}
TEST(timer_equal_deadlines_fire_in_start_order) {
    int fds0 = gh_test_fd_count();
    gh_watcher *ts = malloc(NTIMERS * sizeof *ts);
    fire_order = malloc(NTIMERS * sizeof *fire_order);
    ASSERT_TRUE(ts && fire_order);
    nfired = 0;
    for (int i = 0; i < NTIMERS; i++) ASSERT_OK(gh_timer_new(&ts[i], 0.02, 0));
    for (int i = 0; i < NTIMERS; i++) ASSERT_OK(gh_watcher_start(ts[i], order_cb, (void *)(intptr_t)i));
    ASSERT_OK(gh_hub_run());
    ASSERT_EQ(nfired, NTIMERS);
    for (int i = 0; i < NTIMERS; i++)
        if (fire_order[i] != i) ASSERT_EQ(fire_order[i], i);
    ASSERT_CODE(gh_watcher_active(ts[0]), GH_EBADHANDLE);
    free(ts);
    free(fire_order);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* FAULTS 35: a one-shot timer restarted from its own callback fires again (twice
 * more); a repeating one restarting itself while active gets GH_EBUSY. */
static int restart_rc[8];
static void restart_cb(gh_watcher w, int revents, void *arg) {
    struct rec *r = arg;
    record_cb(w, revents, arg);
    if (r->count < 3) restart_rc[r->count] = gh_watcher_start(w, restart_cb, arg);
}
static void restart_repeat_cb(gh_watcher w, int revents, void *arg) {
    struct rec *r = arg;
    record_cb(w, revents, arg);
    restart_rc[0] = gh_watcher_start(w, restart_repeat_cb, arg);
    if (r->count == 2) gh_watcher_stop(w);
}
TEST(timer_restart_from_own_callback) {
    int fds0 = gh_test_fd_count();
    struct rec r = {0};
    gh_watcher t;
    ASSERT_OK(gh_timer_new(&t, 0.005, 0));
    ASSERT_OK(gh_watcher_start(t, restart_cb, &r));
    ASSERT_OK(gh_hub_run());
    ASSERT_EQ(r.count, 3);
    ASSERT_OK(restart_rc[1]);
    ASSERT_OK(restart_rc[2]);
    ASSERT_EQ(gh_watcher_active(t), 0);
    ASSERT_OK(gh_watcher_close(t));

    struct rec r2 = {0};
    ASSERT_OK(gh_timer_new(&t, 0.005, 0.005));
    ASSERT_OK(gh_watcher_start(t, restart_repeat_cb, &r2));
    ASSERT_OK(gh_hub_run());
    ASSERT_EQ(r2.count, 2);
    ASSERT_CODE(restart_rc[0], GH_EBUSY);
    ASSERT_OK(gh_watcher_close(t));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* ---- prepare, check, idle ----------------------------------------------- */

/* Each fires with its own revents bit, its handle and its arg. */
TEST(prepare_check_idle_fire) {
    int fds0 = gh_test_fd_count();
    struct rec rp = {0}, rc = {0}, ri = {0};
    gh_watcher p, c, i;
    ASSERT_OK(gh_prepare_new(&p));
    ASSERT_OK(gh_check_new(&c));
    ASSERT_OK(gh_idle_new(&i));
    rp.stop_after = rc.stop_after = ri.stop_after = 1;
    ASSERT_OK(gh_watcher_start(p, record_cb, &rp));
    ASSERT_OK(gh_watcher_start(c, record_cb, &rc));
    ASSERT_OK(gh_watcher_start(i, record_cb, &ri));
    ASSERT_OK(gh_hub_run());
    ASSERT_EQ(rp.count, 1);
    ASSERT_EQ(rc.count, 1);
    ASSERT_EQ(ri.count, 1);
    ASSERT_EQ(rp.revents[0], GH_PREPARE);
    ASSERT_EQ(rc.revents[0], GH_CHECK);
    ASSERT_EQ(ri.revents[0], GH_IDLE);
    ASSERT_EQ(rp.ids[0], p.id);
    ASSERT_EQ(rc.ids[0], c.id);
    ASSERT_EQ(ri.ids[0], i.id);
    ASSERT_OK(gh_watcher_close(p));
    ASSERT_OK(gh_watcher_close(c));
    ASSERT_OK(gh_watcher_close(i));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* Within each iteration prepare fires before check: a fresh hub logs P C P C P C.
 * (An unreferenced idle watcher keeps the loop iterating without sleeping in poll.) */
static char pc_log[16];
static int pc_n;
static void pc_cb(gh_watcher w, int revents, void *arg) {
    struct rec *r = arg;
    if (pc_n < 15) pc_log[pc_n++] = revents == GH_PREPARE ? 'P' : revents == GH_CHECK ? 'C' : '?';
    r->count++;
    if (r->count == 3) gh_watcher_stop(w);
}
TEST(prepare_before_check) {
    int fds0 = gh_test_fd_count();
    struct rec rp = {0}, rc = {0};
    gh_watcher p, c, i;
    ASSERT_OK(gh_check_new(&c)); /* created and started first: order must not matter */
    ASSERT_OK(gh_prepare_new(&p));
    ASSERT_OK(gh_idle_new(&i));
    ASSERT_OK(gh_watcher_ref(i, 0));
    ASSERT_OK(gh_watcher_start(i, noop_cb, NULL));
    ASSERT_OK(gh_watcher_start(c, pc_cb, &rc));
    ASSERT_OK(gh_watcher_start(p, pc_cb, &rp));
    ASSERT_OK(gh_hub_run());
    ASSERT_STREQ(pc_log, "PCPCPC");
    ASSERT_OK(gh_watcher_close(i));
    ASSERT_OK(gh_watcher_close(p));
    ASSERT_OK(gh_watcher_close(c));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* While an idle watcher is active the loop does not sleep in its poll: main waits on an
 * event with a 5 s timeout (a pending timer, as in a gh_sleep), and the idle watcher sets
 * the event from its 20th callback. A loop that slept in its poll until the timer would
 * fire idle at most once or twice and the wait would end GH_ETIMEDOUT. (It used to count
 * callbacks during a 30 ms gh_sleep: under valgrind on a loaded machine that window
 * held 0 or 1 iterations.) */
struct idle_wake {
    struct rec r;
    gh_event ev;
    int set_at; /* set the event at this count */
    int set_rc;
};
static void idle_wake_cb(gh_watcher w, int revents, void *arg) {
    struct idle_wake *iw = arg;
    record_cb(w, revents, &iw->r);
    if (iw->r.count == iw->set_at) iw->set_rc = gh_event_set(iw->ev);
}
TEST(idle_keeps_loop_spinning) {
    int fds0 = gh_test_fd_count();
    struct idle_wake iw = {{0}, {0}, 20, 1};
    gh_watcher i;
    ASSERT_OK(gh_event_new(&iw.ev));
    ASSERT_OK(gh_idle_new(&i));
    ASSERT_OK(gh_watcher_start(i, idle_wake_cb, &iw));
    ASSERT_OK(gh_event_wait(iw.ev, 5.0));
    ASSERT_OK(iw.set_rc);
    ASSERT_GE(iw.r.count, 20);
    for (int k = 0; k < 20; k++) {
        ASSERT_EQ(iw.r.revents[k], GH_IDLE);
        ASSERT_EQ(iw.r.ids[k], i.id);
    }
    ASSERT_OK(gh_watcher_close(i));
    int n = iw.r.count;
    ASSERT_OK(gh_sleep(0.01));
    ASSERT_EQ(iw.r.count, n);
    ASSERT_OK(gh_event_close(iw.ev));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* ---- async -------------------------------------------------------------- */

/* Three sends from the hub's own thread before the loop runs give one callback,
 * with GH_ASYNC; a later send gives another. */
TEST(async_send_same_thread_coalesces) {
    int fds0 = gh_test_fd_count();
    struct rec r = {0};
    gh_watcher a;
    ASSERT_OK(gh_async_new(&a));
    r.stop_after = 1;
    ASSERT_OK(gh_watcher_start(a, record_cb, &r));
    ASSERT_OK(gh_async_send(a));
    ASSERT_OK(gh_async_send(a));
    ASSERT_OK(gh_async_send(a));
    ASSERT_EQ(r.count, 0);
    ASSERT_OK(gh_hub_run());
    ASSERT_EQ(r.count, 1);
    ASSERT_EQ(r.revents[0], GH_ASYNC);
    ASSERT_EQ(r.ids[0], a.id);
    r.stop_after = 2;
    ASSERT_OK(gh_watcher_start(a, record_cb, &r));
    ASSERT_OK(gh_async_send(a));
    ASSERT_OK(gh_hub_run());
    ASSERT_EQ(r.count, 2);
    ASSERT_OK(gh_watcher_close(a));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* A send while the watcher is stopped is delivered once it is started (also after
 * a stop/start cycle); no send, no callback. */
TEST(async_send_while_stopped_delivered_on_start) {
    int fds0 = gh_test_fd_count();
    struct rec r = {0};
    gh_watcher a;
    ASSERT_OK(gh_async_new(&a));
    ASSERT_OK(gh_async_send(a)); /* never started yet */
    ASSERT_OK(gh_sleep(0.01));
    ASSERT_EQ(r.count, 0);
    r.stop_after = 1;
    ASSERT_OK(gh_watcher_start(a, record_cb, &r));
    ASSERT_OK(gh_hub_run());
    ASSERT_EQ(r.count, 1);
    ASSERT_EQ(r.revents[0], GH_ASYNC);
    /* started then stopped, send, start again */
    ASSERT_OK(gh_watcher_start(a, record_cb, &r));
    ASSERT_OK(gh_watcher_stop(a));
    ASSERT_OK(gh_async_send(a));
    ASSERT_OK(gh_sleep(0.01));
    ASSERT_EQ(r.count, 1);
    r.stop_after = 2;
    ASSERT_OK(gh_watcher_start(a, record_cb, &r));
    ASSERT_OK(gh_hub_run());
    ASSERT_EQ(r.count, 2);
    /* nothing pending now: a started watcher stays silent */
    ASSERT_OK(gh_watcher_start(a, record_cb, &r));
    ASSERT_OK(gh_watcher_ref(a, 0));
    ASSERT_OK(gh_sleep(0.02));
    ASSERT_EQ(r.count, 2);
    ASSERT_OK(gh_watcher_close(a));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* A send from another thread wakes main parked in gh_hub_wait(async). */
static void *send_later_thread(void *arg) {
    gh_watcher *a = arg;
    usleep(20 * 1000);
    return RC_PTR(gh_async_send(*a));
}
TEST(async_send_from_thread_wakes_hub_wait) {
    int fds0 = gh_test_fd_count();
    gh_watcher a;
    pthread_t th;
    void *res;
    ASSERT_OK(gh_async_new(&a));
    ASSERT_OK(pthread_create(&th, NULL, send_later_thread, &a));
    ASSERT_OK(gh_hub_wait(a));
    ASSERT_OK(pthread_join(th, &res));
    ASSERT_OK(PTR_RC(res));
    ASSERT_EQ(gh_watcher_active(a), 0);
    ASSERT_OK(gh_watcher_close(a));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* FAULTS 18: 8 threads x 100,000 sends while the hub runs: sends coalesce (fewer
 * callbacks than sends) and a callback runs after the last send. Each thread counts a
 * send before making it; a callback that sees the full count started after every send
 * was counted, so it proves the wake-up for the last send was not lost. */
#define ASYNC_THREADS 8
#define ASYNC_SENDS 100000
static atomic_long sends_started;
static atomic_int threads_done;
static long async_cbs;
static int async_saw_all;
static gh_watcher async_w;
static void *async_sender(void *arg) {
    int bad = 0;
    (void)arg;
    for (int i = 0; i < ASYNC_SENDS; i++) {
        atomic_fetch_add(&sends_started, 1);
        if (gh_async_send(async_w) != GH_OK) bad++;
    }
    atomic_fetch_add(&threads_done, 1);
    return RC_PTR(bad);
}
static void async_count_cb(gh_watcher w, int revents, void *arg) {
    (void)w;
    (void)arg;
    if (revents != GH_ASYNC) return;
    async_cbs++;
    if (atomic_load(&sends_started) == (long)ASYNC_THREADS * ASYNC_SENDS) async_saw_all = 1;
}
TEST(async_send_many_threads) {
    int fds0 = gh_test_fd_count();
    pthread_t th[ASYNC_THREADS];
    ASSERT_OK(gh_async_new(&async_w));
    ASSERT_OK(gh_watcher_start(async_w, async_count_cb, NULL));
    for (int i = 0; i < ASYNC_THREADS; i++) ASSERT_OK(pthread_create(&th[i], NULL, async_sender, NULL));
    double deadline = gh_test_now() + 60;
    while (atomic_load(&threads_done) < ASYNC_THREADS && gh_test_now() < deadline)
        ASSERT_OK(gh_sleep(0.002));
    for (int i = 0; i < ASYNC_THREADS; i++) {
        void *res;
        ASSERT_OK(pthread_join(th[i], &res));
        ASSERT_EQ(PTR_RC(res), 0);
    }
    /* every send is done: a callback covering the last one must come */
    deadline = gh_test_now() + 5;
    while (!async_saw_all && gh_test_now() < deadline) ASSERT_OK(gh_sleep(0.002));
    ASSERT_TRUE(async_saw_all);
    ASSERT_GE(async_cbs, 1);
    ASSERT_TRUE(async_cbs < (long)ASYNC_THREADS * ASYNC_SENDS); /* coalesced */
    /* and no stray callback once nothing is sent */
    long n = async_cbs;
    ASSERT_OK(gh_sleep(0.02));
    ASSERT_LE(async_cbs, n + 1);
    n = async_cbs;
    ASSERT_OK(gh_sleep(0.02));
    ASSERT_EQ(async_cbs, n);
    ASSERT_OK(gh_watcher_close(async_w));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* gh_async_send to a closed async watcher, a zero/forged handle, or a watcher of
 * another kind → GH_EBADHANDLE. */
TEST(async_send_bad_handles) {
    int fds0 = gh_test_fd_count();
    gh_watcher a, t, f[6];
    ASSERT_OK(gh_async_new(&a));
    ASSERT_OK(gh_timer_new(&t, 1.0, 0));
    ASSERT_CODE(gh_async_send(t), GH_EBADHANDLE);
    int n = forged(a, f);
    for (int i = 0; i < n; i++) ASSERT_CODE(gh_async_send(f[i]), GH_EBADHANDLE);
    ASSERT_OK(gh_watcher_close(a));
    ASSERT_CODE(gh_async_send(a), GH_EBADHANDLE);
    ASSERT_OK(gh_watcher_close(t));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* gh_async_send after gh_hub_destroy → GH_EBADHANDLE, from the same thread (also once
 * a new hub exists) and from another thread. */
static void *send_thread(void *arg) { return RC_PTR(gh_async_send(*(gh_watcher *)arg)); }
TEST(async_send_after_destroy) {
    int fds0 = gh_test_fd_count();
    gh_watcher a;
    pthread_t th;
    void *res;
    ASSERT_OK(gh_async_new(&a));
    ASSERT_OK(gh_watcher_start(a, noop_cb, NULL));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_CODE(gh_async_send(a), GH_EBADHANDLE);
    ASSERT_OK(pthread_create(&th, NULL, send_thread, &a));
    ASSERT_OK(pthread_join(th, &res));
    ASSERT_CODE(PTR_RC(res), GH_EBADHANDLE);
    gh_watcher b;
    ASSERT_OK(gh_async_new(&b)); /* a new hub */
    ASSERT_CODE(gh_async_send(a), GH_EBADHANDLE);
    ASSERT_OK(gh_watcher_close(b));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* ---- gh_run_callback ---------------------------------------------------- */

static int cb_log[256];
static int cb_n;
static void log_cb(void *arg) {
    if (cb_n < 256) cb_log[cb_n] = (int)(intptr_t)arg;
    cb_n++;
}

/* 100 callbacks queued from main run in FIFO order; gh_hub_run waits for them. */
TEST(run_callback_fifo) {
    int fds0 = gh_test_fd_count();
    cb_n = 0;
    for (int i = 0; i < 100; i++) ASSERT_OK(gh_run_callback(log_cb, (void *)(intptr_t)i));
    ASSERT_EQ(cb_n, 0); /* queued, not run */
    ASSERT_OK(gh_hub_run());
    ASSERT_EQ(cb_n, 100);
    for (int i = 0; i < 100; i++) ASSERT_EQ(cb_log[i], i);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* NULL cb → GH_EINVAL, and nothing is queued. */
TEST(run_callback_null_einval) {
    int fds0 = gh_test_fd_count();
    ASSERT_CODE(gh_run_callback(NULL, NULL), GH_EINVAL);
    ASSERT_CODE(gh_run_callback(NULL, (void *)1), GH_EINVAL);
    ASSERT_OK(gh_hub_run());
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* A callback queued from a callback runs after what was already queued (FIFO), in a
 * later pass of the callback queue, never nested inside the callback that queued it.
 * (Like gevent, later passes may come before the next poll: see the header and
 * run_callback_requeue_does_not_starve_io for the bound.) */
static int in_first;
static int nested_seen = -1;
static void second_cb(void *arg) {
    (void)arg;
    nested_seen = in_first;
    log_cb((void *)2);
}
static void first_cb(void *arg) {
    (void)arg;
    in_first = 1;
    log_cb((void *)0);
    ASSERT_OK(gh_run_callback(second_cb, NULL));
    in_first = 0;
}
TEST(run_callback_from_callback_runs_later) {
    int fds0 = gh_test_fd_count();
    cb_n = 0;
    ASSERT_OK(gh_run_callback(first_cb, NULL));
    ASSERT_OK(gh_run_callback(log_cb, (void *)1));
    ASSERT_OK(gh_hub_run());
    ASSERT_EQ(cb_n, 3);
    ASSERT_EQ(cb_log[0], 0);
    ASSERT_EQ(cb_log[1], 1);
    ASSERT_EQ(cb_log[2], 2);
    ASSERT_EQ(nested_seen, 0);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* A callback that re-queues itself 10,000 times does not starve the loop: an io
 * watcher on a readable socket fires while the chain is still running. */
#define CHAIN 10000
static int chain_n, io_seen_at = -1;
static void chain_cb(void *arg) {
    (void)arg;
    if (++chain_n < CHAIN) ASSERT_OK(gh_run_callback(chain_cb, NULL));
}
static void chain_io_cb(gh_watcher w, int revents, void *arg) {
    (void)revents;
    (void)arg;
    if (io_seen_at < 0) io_seen_at = chain_n;
    gh_watcher_stop(w);
}
TEST(run_callback_requeue_does_not_starve_io) {
    int fds0 = gh_test_fd_count(), sv[2];
    gh_watcher w;
    make_pair(sv);
    ASSERT_OK(gh_io_new(&w, sv[0], GH_WRITE)); /* writable at once */
    ASSERT_OK(gh_watcher_start(w, chain_io_cb, NULL));
    ASSERT_OK(gh_run_callback(chain_cb, NULL));
    ASSERT_OK(gh_hub_run());
    ASSERT_EQ(chain_n, CHAIN);
    ASSERT_GE(io_seen_at, 0);
    ASSERT_TRUE(io_seen_at < CHAIN);
    ASSERT_OK(gh_watcher_close(w));
    close_pair(sv);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* ---- start / stop / close / ref / active -------------------------------- */

/* gh_watcher_start: NULL cb → GH_EINVAL (stays stopped); already active → GH_EBUSY,
 * and the first callback stays in place. */
TEST(start_null_cb_and_busy) {
    int fds0 = gh_test_fd_count();
    struct rec r = {0};
    gh_watcher t;
    ASSERT_OK(gh_timer_new(&t, 0.01, 0));
    ASSERT_CODE(gh_watcher_start(t, NULL, NULL), GH_EINVAL);
    ASSERT_EQ(gh_watcher_active(t), 0);
    ASSERT_OK(gh_watcher_start(t, record_cb, &r));
    ASSERT_CODE(gh_watcher_start(t, other_noop_cb, NULL), GH_EBUSY);
    ASSERT_CODE(gh_watcher_start(t, record_cb, &r), GH_EBUSY);
    ASSERT_CODE(gh_watcher_start(t, NULL, NULL), GH_EINVAL);
    ASSERT_EQ(gh_watcher_active(t), 1);
    ASSERT_OK(gh_hub_run());
    ASSERT_EQ(r.count, 1);
    ASSERT_OK(gh_watcher_close(t));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* gh_watcher_stop is idempotent (never started, twice), and a stopped watcher never
 * fires even once its time has come. */
TEST(stop_idempotent) {
    int fds0 = gh_test_fd_count();
    struct rec r = {0};
    gh_watcher t;
    ASSERT_OK(gh_timer_new(&t, 0.01, 0));
    ASSERT_OK(gh_watcher_stop(t));
    ASSERT_OK(gh_watcher_start(t, record_cb, &r));
    ASSERT_OK(gh_watcher_stop(t));
    ASSERT_OK(gh_watcher_stop(t));
    ASSERT_EQ(gh_watcher_active(t), 0);
    ASSERT_OK(gh_sleep(0.03));
    ASSERT_EQ(r.count, 0);
    ASSERT_OK(gh_hub_run()); /* nothing left */
    ASSERT_EQ(r.count, 0);
    ASSERT_OK(gh_watcher_close(t));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* gh_watcher_active: 0 new, 1 started, 0 stopped, 0 after a one-shot fired. */
TEST(active_states) {
    int fds0 = gh_test_fd_count();
    gh_watcher t, p;
    ASSERT_OK(gh_timer_new(&t, 0.005, 0));
    ASSERT_OK(gh_prepare_new(&p));
    ASSERT_EQ(gh_watcher_active(t), 0);
    ASSERT_EQ(gh_watcher_active(p), 0);
    ASSERT_OK(gh_watcher_start(p, noop_cb, NULL));
    ASSERT_EQ(gh_watcher_active(p), 1);
    ASSERT_OK(gh_watcher_stop(p));
    ASSERT_EQ(gh_watcher_active(p), 0);
    ASSERT_OK(gh_watcher_start(t, noop_cb, NULL));
    ASSERT_EQ(gh_watcher_active(t), 1);
    ASSERT_OK(gh_hub_run());
    ASSERT_EQ(gh_watcher_active(t), 0);
    ASSERT_OK(gh_watcher_close(t));
    ASSERT_OK(gh_watcher_close(p));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* After gh_watcher_close the handle is stale for every function, a second close is
 * GH_EBADHANDLE, and a closed active watcher never fires. */
TEST(close_makes_handle_stale) {
    int fds0 = gh_test_fd_count();
    struct rec r = {0};
    gh_watcher t, a;
    ASSERT_OK(gh_timer_new(&t, 0.01, 0));
    ASSERT_OK(gh_async_new(&a));
    ASSERT_OK(gh_watcher_start(t, record_cb, &r));
    ASSERT_OK(gh_watcher_close(t));
    ASSERT_OK(gh_watcher_close(a)); /* never started */
    gh_watcher ws[2] = {t, a};
    for (int i = 0; i < 2; i++) {
        ASSERT_CODE(gh_watcher_close(ws[i]), GH_EBADHANDLE);
        ASSERT_CODE(gh_watcher_start(ws[i], noop_cb, NULL), GH_EBADHANDLE);
        ASSERT_CODE(gh_watcher_stop(ws[i]), GH_EBADHANDLE);
        ASSERT_CODE(gh_watcher_ref(ws[i], 0), GH_EBADHANDLE);
        ASSERT_CODE(gh_watcher_active(ws[i]), GH_EBADHANDLE);
        ASSERT_CODE(gh_hub_wait(ws[i]), GH_EBADHANDLE);
        ASSERT_CODE(gh_async_send(ws[i]), GH_EBADHANDLE);
    }
    ASSERT_OK(gh_sleep(0.03));
    ASSERT_EQ(r.count, 0);
    /* a new watcher (likely reusing the slot) does not revive the old handle */
    gh_watcher t2;
    ASSERT_OK(gh_timer_new(&t2, 0.01, 0));
    ASSERT_NE(t2.id, t.id);
    ASSERT_CODE(gh_watcher_active(t), GH_EBADHANDLE);
    ASSERT_CODE(gh_watcher_close(t), GH_EBADHANDLE);
    ASSERT_EQ(gh_watcher_active(t2), 0);
    ASSERT_OK(gh_watcher_close(t2));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* Zero, all-ones and forged handles → GH_EBADHANDLE from every watcher function. */
TEST(forged_handles) {
    int fds0 = gh_test_fd_count();
    gh_watcher t, f[6];
    ASSERT_OK(gh_timer_new(&t, 0.01, 0));
    int n = forged(t, f);
    for (int i = 0; i < n; i++) {
        ASSERT_CODE(gh_watcher_start(f[i], noop_cb, NULL), GH_EBADHANDLE);
        ASSERT_CODE(gh_watcher_stop(f[i]), GH_EBADHANDLE);
        ASSERT_CODE(gh_watcher_ref(f[i], 1), GH_EBADHANDLE);
        ASSERT_CODE(gh_watcher_active(f[i]), GH_EBADHANDLE);
        ASSERT_CODE(gh_hub_wait(f[i]), GH_EBADHANDLE);
        ASSERT_CODE(gh_async_send(f[i]), GH_EBADHANDLE);
        ASSERT_CODE(gh_watcher_close(f[i]), GH_EBADHANDLE);
    }
    ASSERT_EQ(gh_watcher_active(t), 0); /* the real one is untouched */
    ASSERT_OK(gh_watcher_close(t));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* A greenlet handle cast to a watcher (and the main / hub greenlets') → GH_EBADHANDLE. */
static void *idle_body(void *arg) {
    (void)arg;
    return NULL;
}
TEST(greenlet_handle_as_watcher) {
    int fds0 = gh_test_fd_count();
    gh_greenlet g;
    ASSERT_OK(gh_spawn(&g, idle_body, NULL));
    gh_watcher fake[3] = {{g.id}, {gh_main().id}, {gh_hub_current().id}};
    for (int i = 0; i < 3; i++) {
        ASSERT_CODE(gh_watcher_start(fake[i], noop_cb, NULL), GH_EBADHANDLE);
        ASSERT_CODE(gh_watcher_stop(fake[i]), GH_EBADHANDLE);
        ASSERT_CODE(gh_watcher_ref(fake[i], 0), GH_EBADHANDLE);
        ASSERT_CODE(gh_watcher_active(fake[i]), GH_EBADHANDLE);
        ASSERT_CODE(gh_hub_wait(fake[i]), GH_EBADHANDLE);
        ASSERT_CODE(gh_async_send(fake[i]), GH_EBADHANDLE);
        ASSERT_CODE(gh_watcher_close(fake[i]), GH_EBADHANDLE);
    }
    ASSERT_EQ(gh_greenlet_state(g), GH_STATE_NEW); /* untouched */
    ASSERT_EQ(join_rc(g), 0);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* ref 0: an active timer no longer keeps gh_hub_run alive (it returns GH_OK at once,
 * the timer still active); ref 1 again: gh_hub_run waits for it. */
TEST(ref_unreferenced_timer_does_not_keep_run_alive) {
    int fds0 = gh_test_fd_count();
    struct rec r = {0};
    gh_watcher t, t2;
    ASSERT_OK(gh_timer_new(&t, 10.0, 0));
    ASSERT_OK(gh_watcher_start(t, record_cb, &r));
    ASSERT_OK(gh_watcher_ref(t, 0));
    double t0 = gh_test_now();
    ASSERT_OK(gh_hub_run());
    ASSERT_TRUE(gh_test_now() - t0 < 5.0);
    ASSERT_EQ(gh_watcher_active(t), 1);
    ASSERT_EQ(r.count, 0);
    /* unref before start, then ref again: referenced */
    ASSERT_OK(gh_timer_new(&t2, 0.02, 0));
    ASSERT_OK(gh_watcher_ref(t2, 0));
    ASSERT_OK(gh_watcher_ref(t2, 1));
    ASSERT_OK(gh_watcher_start(t2, record_cb, &r));
    t0 = gh_test_now();
    ASSERT_OK(gh_hub_run());
    ASSERT_TRUE(gh_test_now() - t0 >= 0.018);
    ASSERT_EQ(r.count, 1);
    ASSERT_EQ(r.ids[0], t2.id);
    ASSERT_OK(gh_watcher_close(t));
    ASSERT_OK(gh_watcher_close(t2));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* ---- stop / close from callbacks (FAULTS 32) ---------------------------- */

/* Each kind of watcher closes itself from its own callback: it fires once, the
 * handle is stale after, nothing more fires (valgrind: no use-after-free). */
TEST(close_self_in_callback) {
    int fds0 = gh_test_fd_count(), sv[2];
    struct rec r[6];
    gh_watcher w[6];
    memset(r, 0, sizeof r);
    make_pair(sv);
    ASSERT_OK(gh_io_new(&w[0], sv[0], GH_WRITE));
    ASSERT_OK(gh_timer_new(&w[1], 0.005, 0.005));
    ASSERT_OK(gh_prepare_new(&w[2]));
    ASSERT_OK(gh_check_new(&w[3]));
    ASSERT_OK(gh_idle_new(&w[4]));
    ASSERT_OK(gh_async_new(&w[5]));
    for (int i = 0; i < 6; i++) {
        r[i].close_after = 1;
        ASSERT_OK(gh_watcher_start(w[i], record_cb, &r[i]));
    }
    ASSERT_OK(gh_async_send(w[5]));
    ASSERT_OK(gh_hub_run());
    for (int i = 0; i < 6; i++) {
        ASSERT_EQ(r[i].count, 1);
        ASSERT_OK(r[i].rc);
        ASSERT_CODE(gh_watcher_active(w[i]), GH_EBADHANDLE);
    }
    ASSERT_OK(gh_sleep(0.02));
    for (int i = 0; i < 6; i++) ASSERT_EQ(r[i].count, 1);
    close_pair(sv);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* Each kind of watcher stops itself from its own callback: no further calls; a
 * restart later makes it fire again. */
TEST(stop_self_in_callback) {
    int fds0 = gh_test_fd_count(), sv[2];
    struct rec r[5];
    gh_watcher w[5];
    memset(r, 0, sizeof r);
    make_pair(sv);
    ASSERT_OK(gh_io_new(&w[0], sv[0], GH_WRITE));
    ASSERT_OK(gh_timer_new(&w[1], 0.005, 0.005));
    ASSERT_OK(gh_prepare_new(&w[2]));
    ASSERT_OK(gh_check_new(&w[3]));
    ASSERT_OK(gh_idle_new(&w[4]));
    for (int i = 0; i < 5; i++) {
        r[i].stop_after = 1;
        ASSERT_OK(gh_watcher_start(w[i], record_cb, &r[i]));
    }
    ASSERT_OK(gh_hub_run());
    for (int i = 0; i < 5; i++) {
        ASSERT_EQ(r[i].count, 1);
        ASSERT_OK(r[i].rc);
        ASSERT_EQ(gh_watcher_active(w[i]), 0);
    }
    ASSERT_OK(gh_sleep(0.02));
    for (int i = 0; i < 5; i++) {
        ASSERT_EQ(r[i].count, 1);
        r[i].stop_after = 2;
        ASSERT_OK(gh_watcher_start(w[i], record_cb, &r[i]));
    }
    ASSERT_OK(gh_hub_run());
    for (int i = 0; i < 5; i++) {
        ASSERT_EQ(r[i].count, 2);
        ASSERT_OK(gh_watcher_close(w[i]));
    }
    close_pair(sv);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* Two timers due in the same iteration (equal deadlines, A started first): A's
 * callback stops B, or closes B and creates + starts C (which may reuse B's slot):
 * B does not fire, and C is not fired by B's pending expiry. */
static gh_watcher victim, newcomer;
static struct rec rv, rn;
static int victim_rc, newcomer_rc;
static void stop_victim_cb(gh_watcher w, int revents, void *arg) {
    record_cb(w, revents, arg);
    victim_rc = gh_watcher_stop(victim);
}
static void close_victim_cb(gh_watcher w, int revents, void *arg) {
    record_cb(w, revents, arg);
    victim_rc = gh_watcher_close(victim);
    newcomer_rc = gh_timer_new(&newcomer, 10.0, 0);
    if (newcomer_rc == GH_OK) newcomer_rc = gh_watcher_start(newcomer, record_cb, &rn);
    if (newcomer_rc == GH_OK) newcomer_rc = gh_watcher_ref(newcomer, 0);
}
TEST(stop_or_close_other_in_same_iteration) {
    int fds0 = gh_test_fd_count();
    struct rec ra = {0};
    gh_watcher a;
    /* stop */
    memset(&rv, 0, sizeof rv);
    ASSERT_OK(gh_timer_new(&a, 0.02, 0));
    ASSERT_OK(gh_timer_new(&victim, 0.02, 0));
    ASSERT_OK(gh_watcher_start(a, stop_victim_cb, &ra));
    ASSERT_OK(gh_watcher_start(victim, record_cb, &rv));
    ASSERT_OK(gh_hub_run());
    ASSERT_EQ(ra.count, 1);
    ASSERT_OK(victim_rc);
    ASSERT_EQ(rv.count, 0);
    ASSERT_EQ(gh_watcher_active(victim), 0);
    ASSERT_OK(gh_watcher_start(victim, record_cb, &rv)); /* restart: it fires */
    ASSERT_OK(gh_hub_run());
    ASSERT_EQ(rv.count, 1);
    ASSERT_OK(gh_watcher_close(victim));
    /* close */
    memset(&rv, 0, sizeof rv);
    memset(&rn, 0, sizeof rn);
    ra.count = 0;
    ASSERT_OK(gh_watcher_start(a, close_victim_cb, &ra));
    ASSERT_OK(gh_timer_new(&victim, 0.02, 0));
    ASSERT_OK(gh_watcher_start(victim, record_cb, &rv));
    ASSERT_OK(gh_hub_run());
    ASSERT_EQ(ra.count, 1);
    ASSERT_OK(victim_rc);
    ASSERT_OK(newcomer_rc);
    ASSERT_EQ(rv.count, 0);
    ASSERT_EQ(rn.count, 0);
    ASSERT_CODE(gh_watcher_active(victim), GH_EBADHANDLE);
    ASSERT_EQ(gh_watcher_active(newcomer), 1);
    ASSERT_OK(gh_watcher_close(newcomer));
    ASSERT_OK(gh_watcher_close(a));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* Two io watchers ready on the same fd in the same iteration, and two prepare
 * watchers: whichever fires first closes the other (and itself); exactly one of each
 * pair runs. */
static gh_watcher pair_w[2];
static int pair_fired[2];
static void close_pair_cb(gh_watcher w, int revents, void *arg) {
    int me = (int)(intptr_t)arg;
    (void)w;
    (void)revents;
    pair_fired[me]++;
    if (gh_watcher_close(pair_w[1 - me]) != GH_OK) pair_fired[me] += 100;
    if (gh_watcher_close(pair_w[me]) != GH_OK) pair_fired[me] += 1000;
}
TEST(close_other_ready_same_iteration) {
    int fds0 = gh_test_fd_count(), sv[2];
    make_pair(sv);
    put_byte(sv[1]);
    for (int kind = 0; kind < 2; kind++) {
        pair_fired[0] = pair_fired[1] = 0;
        for (int i = 0; i < 2; i++) {
            if (kind == 0) ASSERT_OK(gh_io_new(&pair_w[i], sv[0], GH_READ));
            else ASSERT_OK(gh_prepare_new(&pair_w[i]));
            ASSERT_OK(gh_watcher_start(pair_w[i], close_pair_cb, (void *)(intptr_t)i));
        }
        ASSERT_OK(gh_hub_run());
        ASSERT_EQ(pair_fired[0] + pair_fired[1], 1);
        ASSERT_CODE(gh_watcher_active(pair_w[0]), GH_EBADHANDLE);
        ASSERT_CODE(gh_watcher_active(pair_w[1]), GH_EBADHANDLE);
    }
    close_pair(sv);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* ---- blocking from a callback (FAULTS 33) ------------------------------- */

static int blk[16];
static gh_greenlet blk_g, blk_new;
static gh_watcher blk_other;
static int blk_fd;
static void do_blocking_calls(void) {
    blk[0] = gh_sleep(0.01);
    blk[1] = gh_sleep(0);
    blk[2] = gh_join(blk_g, 0.01, NULL);
    blk[3] = gh_wait_read(blk_fd, 0.01);
    blk[4] = gh_wait_write(blk_fd, 0.01);
    blk[5] = gh_wait_fd(blk_fd, GH_READ, 0.01);
    blk[6] = gh_hub_wait(blk_other);
    blk[7] = gh_switch(blk_new, NULL, NULL);
    blk[8] = gh_joinall(&blk_g, 1, 0.01, NULL);
    blk[9] = gh_hub_run();
    blk[10] = gh_hub_destroy();
    blk[11] = gh_join(blk_g, GH_FOREVER, NULL);
}
static void blocking_watcher_cb(gh_watcher w, int revents, void *arg) {
    (void)w;
    (void)revents;
    (void)arg;
    do_blocking_calls();
}
static void blocking_callback_fn(void *arg) {
    (void)arg;
    do_blocking_calls();
}
static void *sleep_body(void *arg) {
    (void)arg;
    return RC_PTR(gh_sleep(5.0));
}
static void check_blocking_results(void) {
    for (int i = 0; i < 12; i++) {
        if (blk[i] != GH_EPERM) fprintf(stderr, "blocking call #%d from a callback\n", i);
        ASSERT_CODE(blk[i], GH_EPERM);
    }
    ASSERT_EQ(gh_watcher_active(blk_other), 0); /* gh_hub_wait left it stopped */
    ASSERT_EQ(gh_greenlet_state(blk_g), GH_STATE_WAITING);
}
TEST(blocking_in_callback_eperm) {
    int fds0 = gh_test_fd_count(), sv[2];
    gh_watcher t;
    make_pair(sv);
    blk_fd = sv[0];
    put_byte(sv[1]); /* ready: a wait would not even need to park */
    ASSERT_OK(gh_spawn(&blk_g, sleep_body, NULL));
    ASSERT_OK(gh_spawn(&blk_new, idle_body, NULL));
    ASSERT_OK(gh_timer_new(&blk_other, 0.001, 0));
    ASSERT_OK(gh_timer_new(&t, 0, 0));
    /* from a watcher callback */
    for (int i = 0; i < 16; i++) blk[i] = 12345;
    ASSERT_OK(gh_watcher_start(t, blocking_watcher_cb, NULL));
    ASSERT_OK(gh_sleep(0.02));
    ASSERT_NE(blk[0], 12345); /* the callback ran */
    check_blocking_results();
    ASSERT_OK(gh_watcher_close(t));
    ASSERT_OK(gh_kill(blk_g, 5.0));
    ASSERT_EQ(join_rc(blk_g), GH_ECANCELED);
    ASSERT_OK(gh_hub_destroy());
    close_pair(sv);
    ASSERT_EQ(gh_test_fd_count(), fds0);
}
TEST(blocking_in_run_callback_eperm) {
    int fds0 = gh_test_fd_count(), sv[2];
    make_pair(sv);
    blk_fd = sv[0];
    put_byte(sv[1]);
    ASSERT_OK(gh_spawn(&blk_g, sleep_body, NULL));
    ASSERT_OK(gh_spawn(&blk_new, idle_body, NULL));
    ASSERT_OK(gh_timer_new(&blk_other, 0.001, 0));
    for (int i = 0; i < 16; i++) blk[i] = 12345;
    ASSERT_OK(gh_run_callback(blocking_callback_fn, NULL));
    ASSERT_OK(gh_sleep(0.02));
    ASSERT_NE(blk[0], 12345); /* the callback ran */
    check_blocking_results();
    ASSERT_OK(gh_kill(blk_g, 5.0));
    ASSERT_EQ(join_rc(blk_g), GH_ECANCELED);
    ASSERT_OK(gh_hub_destroy());
    close_pair(sv);
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* ---- gh_hub_wait -------------------------------------------------------- */

/* gh_hub_wait returns GH_OK once the watcher fires (from main and from a greenlet),
 * no earlier than a timer's `after`, and leaves the watcher stopped. */
static void *hub_wait_body(void *arg) { return RC_PTR(gh_hub_wait(*(gh_watcher *)arg)); }
TEST(hub_wait_fires) {
    int fds0 = gh_test_fd_count(), sv[2];
    gh_watcher t, io, t2;
    gh_greenlet g;
    ASSERT_OK(gh_timer_new(&t, 0.02, 0));
    double t0 = gh_test_now();
    ASSERT_OK(gh_hub_wait(t));
    ASSERT_TRUE(gh_test_now() - t0 >= 0.018);
    ASSERT_EQ(gh_watcher_active(t), 0);
    /* a repeating timer is stopped on return too */
    ASSERT_OK(gh_timer_new(&t2, 0.005, 0.005));
    ASSERT_OK(gh_hub_wait(t2));
    ASSERT_EQ(gh_watcher_active(t2), 0);
    /* an io watcher, from a greenlet, woken by main's write */
    make_pair(sv);
    ASSERT_OK(gh_io_new(&io, sv[0], GH_READ));
    ASSERT_OK(gh_spawn(&g, hub_wait_body, &io));
    ASSERT_OK(gh_sleep(0.02));
    ASSERT_EQ(gh_greenlet_state(g), GH_STATE_WAITING);
    put_byte(sv[1]);
    ASSERT_EQ(join_rc(g), GH_OK);
    ASSERT_EQ(gh_watcher_active(io), 0);
    ASSERT_OK(gh_watcher_close(t));
    ASSERT_OK(gh_watcher_close(t2));
    ASSERT_OK(gh_watcher_close(io));
    close_pair(sv);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* gh_hub_wait on a watcher the caller already started → GH_EBUSY, at once. */
TEST(hub_wait_started_ebusy) {
    int fds0 = gh_test_fd_count();
    gh_watcher t;
    ASSERT_OK(gh_timer_new(&t, 10.0, 0));
    ASSERT_OK(gh_watcher_start(t, noop_cb, NULL));
    double t0 = gh_test_now();
    ASSERT_CODE(gh_hub_wait(t), GH_EBUSY);
    ASSERT_TRUE(gh_test_now() - t0 < 5.0);
    ASSERT_OK(gh_watcher_close(t));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* FAULTS 34: main gh_hub_waits on an unreferenced watcher with nothing else alive →
 * GH_ELOOPEXIT at once, and the watcher is stopped after. */
TEST(hub_wait_unreferenced_loopexit) {
    int fds0 = gh_test_fd_count();
    gh_watcher t, a;
    ASSERT_OK(gh_timer_new(&t, 10.0, 0));
    ASSERT_OK(gh_watcher_ref(t, 0));
    double t0 = gh_test_now();
    ASSERT_CODE(gh_hub_wait(t), GH_ELOOPEXIT);
    ASSERT_TRUE(gh_test_now() - t0 < 5.0);
    ASSERT_EQ(gh_watcher_active(t), 0);
    ASSERT_OK(gh_async_new(&a));
    ASSERT_OK(gh_watcher_ref(a, 0));
    ASSERT_CODE(gh_hub_wait(a), GH_ELOOPEXIT);
    ASSERT_EQ(gh_watcher_active(a), 0);
    ASSERT_OK(gh_watcher_close(t));
    ASSERT_OK(gh_watcher_close(a));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* A watcher closed by another greenlet while someone gh_hub_waits on it → the waiter
 * gets GH_ECLOSED (a greenlet waiting while main closes; main waiting while a
 * greenlet closes). */
static void *close_later_body(void *arg) {
    int rc = gh_sleep(0.02);
    if (rc != GH_OK) return RC_PTR(rc);
    return RC_PTR(gh_watcher_close(*(gh_watcher *)arg));
}
TEST(hub_wait_closed_meanwhile_eclosed) {
    int fds0 = gh_test_fd_count();
    gh_watcher t1, t2;
    gh_greenlet g;
    ASSERT_OK(gh_timer_new(&t1, 10.0, 0));
    ASSERT_OK(gh_spawn(&g, hub_wait_body, &t1));
    ASSERT_OK(gh_sleep(0.02));
    ASSERT_EQ(gh_greenlet_state(g), GH_STATE_WAITING);
    ASSERT_OK(gh_watcher_close(t1));
    ASSERT_EQ(join_rc(g), GH_ECLOSED);
    ASSERT_OK(gh_timer_new(&t2, 10.0, 0));
    ASSERT_OK(gh_spawn(&g, close_later_body, &t2));
    ASSERT_CODE(gh_hub_wait(t2), GH_ECLOSED);
    ASSERT_EQ(join_rc(g), GH_OK);
    ASSERT_CODE(gh_watcher_active(t2), GH_EBADHANDLE);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* A greenlet killed (or thrown at) in gh_hub_wait gets GH_ECANCELED (or the code),
 * and the watcher is stopped after. */
TEST(hub_wait_killed_or_thrown) {
    int fds0 = gh_test_fd_count();
    gh_watcher t;
    gh_greenlet g;
    ASSERT_OK(gh_timer_new(&t, 10.0, 0));
    ASSERT_OK(gh_spawn(&g, hub_wait_body, &t));
    ASSERT_OK(gh_sleep(0.02));
    ASSERT_EQ(gh_watcher_active(t), 1);
    ASSERT_OK(gh_kill(g, 5.0));
    ASSERT_EQ(join_rc(g), GH_ECANCELED);
    ASSERT_EQ(gh_watcher_active(t), 0);
    ASSERT_OK(gh_spawn(&g, hub_wait_body, &t));
    ASSERT_OK(gh_sleep(0.02));
    ASSERT_OK(gh_throw(g, GH_EINTR));
    ASSERT_EQ(join_rc(g), GH_EINTR);
    ASSERT_EQ(gh_watcher_active(t), 0);
    ASSERT_OK(gh_watcher_close(t));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* An io watcher whose fd was closed: gh_watcher_start and gh_hub_wait → GH_EBADF. */
TEST(io_watcher_fd_closed_ebadf) {
    int fds0 = gh_test_fd_count(), p[2];
    gh_watcher w;
    ASSERT_TRUE(gh_hub_current().id != 0);
    ASSERT_OK(pipe(p));
    ASSERT_OK(gh_io_new(&w, p[0], GH_READ));
    ASSERT_OK(close(p[0]));
    ASSERT_CODE(gh_watcher_start(w, noop_cb, NULL), GH_EBADF);
    ASSERT_EQ(gh_watcher_active(w), 0);
    ASSERT_CODE(gh_hub_wait(w), GH_EBADF);
    ASSERT_OK(gh_watcher_close(w));
    ASSERT_OK(close(p[1]));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* ---- threads and destroyed hubs ----------------------------------------- */

/* Another thread using the main thread's watcher → GH_EWRONGTHREAD from start, stop,
 * close, ref, active and gh_hub_wait; gh_async_send (thread-safe) works. */
static gh_watcher main_timer, main_async;
static int wt_rc[8];
static void *wrong_thread_body(void *arg) {
    (void)arg;
    wt_rc[0] = gh_watcher_start(main_timer, noop_cb, NULL);
    wt_rc[1] = gh_watcher_stop(main_timer);
    wt_rc[2] = gh_watcher_close(main_timer);
    wt_rc[3] = gh_watcher_active(main_timer);
    wt_rc[4] = gh_watcher_ref(main_timer, 0);
    wt_rc[5] = gh_hub_wait(main_timer);
    wt_rc[6] = gh_async_send(main_async);
    wt_rc[7] = gh_hub_destroy();
    return NULL;
}
TEST(watcher_other_thread_ewrongthread) {
    int fds0 = gh_test_fd_count();
    struct rec r = {0}, ra = {0};
    pthread_t th;
    ASSERT_OK(gh_timer_new(&main_timer, 0.05, 0));
    ASSERT_OK(gh_async_new(&main_async));
    ASSERT_OK(gh_watcher_start(main_timer, record_cb, &r));
    ra.stop_after = 1;
    ASSERT_OK(gh_watcher_start(main_async, record_cb, &ra));
    ASSERT_OK(pthread_create(&th, NULL, wrong_thread_body, NULL));
    ASSERT_OK(pthread_join(th, NULL));
    for (int i = 0; i < 6; i++) ASSERT_CODE(wt_rc[i], GH_EWRONGTHREAD);
    ASSERT_OK(wt_rc[6]);
    ASSERT_OK(wt_rc[7]);
    /* the watchers are untouched: still active, still referenced, still fire */
    ASSERT_EQ(gh_watcher_active(main_timer), 1);
    ASSERT_OK(gh_hub_run());
    ASSERT_EQ(r.count, 1);
    ASSERT_EQ(ra.count, 1);
    ASSERT_OK(gh_watcher_close(main_timer));
    ASSERT_OK(gh_watcher_close(main_async));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* After gh_hub_destroy every watcher handle is stale (GH_EBADHANDLE), also once a new
 * hub exists in the thread; the destroyed watchers never fire. */
TEST(watcher_after_destroy_ebadhandle) {
    int fds0 = gh_test_fd_count();
    struct rec r = {0};
    gh_watcher t, p;
    ASSERT_OK(gh_timer_new(&t, 0.01, 0));
    ASSERT_OK(gh_prepare_new(&p));
    ASSERT_OK(gh_watcher_start(t, record_cb, &r));
    ASSERT_OK(gh_hub_destroy());
    for (int round = 0; round < 2; round++) {
        gh_watcher ws[2] = {t, p};
        for (int i = 0; i < 2; i++) {
            ASSERT_CODE(gh_watcher_start(ws[i], noop_cb, NULL), GH_EBADHANDLE);
            ASSERT_CODE(gh_watcher_stop(ws[i]), GH_EBADHANDLE);
            ASSERT_CODE(gh_watcher_ref(ws[i], 0), GH_EBADHANDLE);
            ASSERT_CODE(gh_watcher_active(ws[i]), GH_EBADHANDLE);
            ASSERT_CODE(gh_hub_wait(ws[i]), GH_EBADHANDLE);
            ASSERT_CODE(gh_watcher_close(ws[i]), GH_EBADHANDLE);
        }
        if (round == 0) {
            gh_watcher n1, n2; /* a new hub with watchers in the same slots */
            ASSERT_OK(gh_timer_new(&n1, 0.01, 0));
            ASSERT_OK(gh_prepare_new(&n2));
            ASSERT_NE(n1.id, t.id);
            ASSERT_NE(n2.id, p.id);
        }
    }
    ASSERT_OK(gh_sleep(0.02));
    ASSERT_EQ(r.count, 0);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

int main(int argc, char **argv) {
    TEST_INIT(argc, argv);
    RUN(io_new_bad_fd);
    RUN(io_new_fd_int_max);
    RUN(io_new_bad_events_null_out);
    RUN(constructors_null_out);
    RUN(io_fires_only_when_data);
    RUN(io_revents_are_what_is_ready);
    RUN(io_multiplex_same_fd);
    RUN(timer_new_invalid);
    RUN(timer_one_shot);
    RUN(timer_after_zero_fires);
    RUN(timer_repeat_n_times_then_stop);
    RUN(timer_repeat_keeps_time_when_late);
    RUN(timer_repeat_skips_missed_periods);
    RUN(timer_infinite_never_fires);
    RUN(timer_equal_deadlines_fire_in_start_order);
    RUN(timer_restart_from_own_callback);
    RUN(prepare_check_idle_fire);
    RUN(prepare_before_check);
    RUN(idle_keeps_loop_spinning);
    RUN(async_send_same_thread_coalesces);
    RUN(async_send_while_stopped_delivered_on_start);
    RUN(async_send_from_thread_wakes_hub_wait);
    RUN(async_send_many_threads);
    RUN(async_send_bad_handles);
    RUN(async_send_after_destroy);
    RUN(run_callback_fifo);
    RUN(run_callback_null_einval);
    RUN(run_callback_from_callback_runs_later);
    RUN(run_callback_requeue_does_not_starve_io);
    RUN(start_null_cb_and_busy);
    RUN(stop_idempotent);
    RUN(active_states);
    RUN(close_makes_handle_stale);
    RUN(forged_handles);
    RUN(greenlet_handle_as_watcher);
    RUN(ref_unreferenced_timer_does_not_keep_run_alive);
    RUN(close_self_in_callback);
    RUN(stop_self_in_callback);
    RUN(stop_or_close_other_in_same_iteration);
    RUN(close_other_ready_same_iteration);
    RUN(blocking_in_callback_eperm);
    RUN(blocking_in_run_callback_eperm);
    RUN(hub_wait_fires);
    RUN(hub_wait_started_ebusy);
    RUN(hub_wait_unreferenced_loopexit);
    RUN(hub_wait_closed_meanwhile_eclosed);
    RUN(hub_wait_killed_or_thrown);
    RUN(io_watcher_fd_closed_ebadf);
    RUN(watcher_other_thread_ewrongthread);
    RUN(watcher_after_destroy_ebadhandle);
    return TEST_DONE();
}

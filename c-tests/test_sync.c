/* test_sync.c — the "Timeouts" and "Synchronisation" sections of include/greenhub.h:
 * gh_timeout_start / gh_timeout_cancel, gh_event_*, gh_result_*, gh_sem_*,
 * gh_queue_* and gh_waiter_*; plus the rules they share: FIFO wake-ups, nothing lost
 * when a waiter is killed or times out (FAULTS 11), bad / stale / forged / other-thread
 * handles and kind confusion (FAULTS 2, 3, 5, 17), GH_EPERM from hub callbacks
 * (FAULTS 33) and GH_ELOOPEXIT for main (FAULTS 34).
 *
 * Every case runs in its own forked child (harness.h) and ends with the hub destroyed
 * and the fd count back at the baseline taken when the case started.
 */
#include "harness.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>

/* ---- helpers -------------------------------------------------------------- */

#define BEGIN() const int fd_base_ = gh_test_fd_count()
#define END()                                                                  \
    do {                                                                       \
        ASSERT_OK(gh_hub_destroy());                                           \
        ASSERT_EQ(gh_test_fd_count(), fd_base_);                               \
    } while (0)

#define PTR(n) ((void *)(uintptr_t)(n))
#define NUM(p) ((long long)(uintptr_t)(p))
#define SENTINEL PTR(0xDEADBEEF)
#define PENDING 12345

/* Ids in the order greenlets returned from their blocking call. */
static int order_log[256];
static int n_order;
static void log_id(int id) {
    if (n_order < 256) order_log[n_order++] = id;
}
static void expect_order(const int *want, int n) {
    int i;
    ASSERT_EQ(n_order, n);
    for (i = 0; i < n; i++)
        if (order_log[i] != want[i])
            GH_TEST_FAIL_("order_log[%d] = %d, expected %d", i, order_log[i], want[i]);
}

/* A greenlet that sleeps until killed. */
static void *sleep_forever(void *arg) {
    (void)arg;
    return PTR(gh_sleep(GH_FOREVER) == GH_ECANCELED ? 1 : 2);
}

/* For gh_threadpool_apply: runs 50 ms on a worker thread and returns its argument. */
static void *slow_fn(void *arg) {
    usleep(50000);
    return arg;
}
static int pool_arg; /* static: outlives a caller that stops waiting */

/* One blocking operation, run by op_run in its own greenlet. */
enum {
    OP_SLEEP, OP_JOIN, OP_WAIT_READ, OP_READ, OP_EVENT_WAIT, OP_RESULT_GET,
    OP_SEM_ACQUIRE, OP_QUEUE_GET, OP_QUEUE_PUT, OP_WAITER_GET, OP_POOL, OP_N
};
static const char *const OP_NAMES[OP_N] = {
    "gh_sleep", "gh_join", "gh_wait_read", "gh_read", "gh_event_wait", "gh_result_get",
    "gh_sem_acquire", "gh_queue_get", "gh_queue_put", "gh_waiter_get",
    "gh_threadpool_apply"};

struct op {
    int kind, id;
    int gated;           /* wait for a gh_waiter_switch on `gate` first (spawn_in_order) */
    gh_waiter gate;
    double timeout;      /* the call's timeout (OP_SLEEP: its duration) */
    int use_deadline;    /* gh_timeout_start(deadline) before the call */
    double deadline;
    gh_event e;
    gh_result r;
    gh_sem s;
    gh_queue q;
    gh_waiter w;
    gh_greenlet g;       /* OP_JOIN: whom to join */
    int fd;              /* OP_WAIT_READ, OP_READ */
    void *item;          /* OP_QUEUE_PUT: what to put */
    void *got;           /* what a get / apply returned (SENTINEL until then) */
    int rc;              /* the call's result (PENDING until it returned) */
    int rc_again;        /* use_deadline: the same call again, GH_FOREVER, after the first */
    int rc_start, rc_cancel;
    double elapsed;      /* of the first call (with use_deadline: from before the start) */
    gh_greenlet self;
};

static void op_init(struct op *o, int kind, int id) {
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->id = id;
    o->timeout = GH_FOREVER;
    o->fd = -1;
    o->got = SENTINEL;
    o->rc = o->rc_again = o->rc_start = o->rc_cancel = PENDING;
}

static int do_op(struct op *o, double timeout) {
    char c;
    ssize_t n;
    switch (o->kind) {
    case OP_SLEEP: return gh_sleep(timeout);
    case OP_JOIN: return gh_join(o->g, timeout, NULL);
    case OP_WAIT_READ: return gh_wait_read(o->fd, timeout);
    case OP_READ:
        n = gh_read(o->fd, &c, 1, timeout);
        return n == 1 ? GH_OK : n == 0 ? -77777 : (int)n;
    case OP_EVENT_WAIT: return gh_event_wait(o->e, timeout);
    case OP_RESULT_GET: return gh_result_get(o->r, timeout, &o->got);
    case OP_SEM_ACQUIRE: return gh_sem_acquire(o->s, timeout);
    case OP_QUEUE_GET: return gh_queue_get(o->q, &o->got, timeout);
    case OP_QUEUE_PUT: return gh_queue_put(o->q, o->item, timeout);
    case OP_WAITER_GET: return gh_waiter_get(o->w, timeout, &o->got);
    case OP_POOL: return gh_threadpool_apply(slow_fn, &pool_arg, &o->got);
    }
    return -99999;
}

static void *op_run(void *arg) {
    struct op *o = (struct op *)arg;
    gh_timeout t = {0};
    double t0;
    if (o->gated && gh_waiter_get(o->gate, GH_FOREVER, NULL) != GH_OK) return NULL;
    t0 = gh_test_now(); /* before the deadline starts: elapsed is a lower bound */
    if (o->use_deadline) o->rc_start = gh_timeout_start(&t, o->deadline);
    o->rc = do_op(o, o->timeout);
    o->elapsed = gh_test_now() - t0;
    log_id(o->id);
    if (o->use_deadline) {
        o->rc_again = do_op(o, GH_FOREVER);
        o->rc_cancel = gh_timeout_cancel(t);
    }
    return NULL;
}

static void spawn_op(struct op *o) { ASSERT_OK(gh_spawn(&o->self, op_run, o)); }
static void finish_op(struct op *o) {
    ASSERT_OK(gh_join(o->self, GH_FOREVER, NULL));
    ASSERT_OK(gh_release(o->self));
}
/* Lets the spawned greenlets run until they block. */
static void settle(void) { ASSERT_OK(gh_sleep(0.005)); }

static void expect_state(gh_greenlet g, int state) { ASSERT_EQ(gh_greenlet_state(g), state); }

/* Spawns ops[0..n) held at a gate (a gh_waiter each), then opens the gates one at a
 * time in the order `arrive`, letting each greenlet reach its blocking call before the
 * next: the calls start in exactly that order — neither spawn nor slot order. */
static void spawn_in_order(struct op *ops, int n, const int *arrive) {
    int i;
    for (i = 0; i < n; i++) {
        ASSERT_OK(gh_waiter_new(&ops[i].gate));
        ops[i].gated = 1;
        spawn_op(&ops[i]);
    }
    settle();
    for (i = 0; i < n; i++) {
        ASSERT_OK(gh_waiter_switch(ops[arrive[i]].gate, NULL));
        settle();
        expect_state(ops[arrive[i]].self, GH_STATE_WAITING);
    }
}
static void close_gates(struct op *ops, int n) {
    int i;
    for (i = 0; i < n; i++) ASSERT_OK(gh_waiter_close(ops[i].gate));
}

/* ---- gh_timeout ----------------------------------------------------------- */

/* A 20 ms gh_timeout makes each kind of blocking call, waiting with GH_FOREVER, return
 * GH_ETIMEDOUT after >= 18 ms: gh_sleep, gh_join, gh_wait_read, gh_read,
 * gh_event_wait, gh_result_get, gh_sem_acquire, gh_queue_get, gh_queue_put (full),
 * gh_waiter_get, gh_threadpool_apply (fn takes 50 ms). The same call again returns
 * GH_ETIMEDOUT at once (the timeout stays expired), cancel is GH_OK, and each
 * primitive is left consistent: the timed-out waiter is gone from its list. */
TEST(timeout_expires_every_blocking_call) {
    BEGIN();
    struct op ops[OP_N];
    gh_greenlet victim;
    int p1[2], p2[2], k;
    void *x = NULL;
    ASSERT_OK(pipe(p1));
    ASSERT_OK(pipe(p2));
    ASSERT_OK(gh_spawn(&victim, sleep_forever, NULL));
    for (k = 0; k < OP_N; k++) {
        op_init(&ops[k], k, k);
        ops[k].use_deadline = 1;
        ops[k].deadline = 0.02;
    }
    ops[OP_JOIN].g = victim;
    ops[OP_WAIT_READ].fd = p1[0];
    ops[OP_READ].fd = p2[0];
    ASSERT_OK(gh_event_new(&ops[OP_EVENT_WAIT].e));
    ASSERT_OK(gh_result_new(&ops[OP_RESULT_GET].r));
    ASSERT_OK(gh_sem_new(&ops[OP_SEM_ACQUIRE].s, 0));
    ASSERT_OK(gh_queue_new(&ops[OP_QUEUE_GET].q, 0));
    ASSERT_OK(gh_queue_new(&ops[OP_QUEUE_PUT].q, 1));
    ASSERT_OK(gh_queue_put(ops[OP_QUEUE_PUT].q, PTR(1), 0));
    ops[OP_QUEUE_PUT].item = PTR(2);
    ASSERT_OK(gh_waiter_new(&ops[OP_WAITER_GET].w));
    for (k = 0; k < OP_N; k++) spawn_op(&ops[k]);
    for (k = 0; k < OP_N; k++) finish_op(&ops[k]);
    for (k = 0; k < OP_N; k++) {
        struct op *o = &ops[k];
        if (o->rc_start != GH_OK || o->rc != GH_ETIMEDOUT || o->rc_again != GH_ETIMEDOUT ||
            o->rc_cancel != GH_OK)
            GH_TEST_FAIL_("%s under a 20 ms gh_timeout: start %s, call %s, again %s, cancel %s",
                          OP_NAMES[k], gh_err_name(o->rc_start), gh_err_name(o->rc),
                          gh_err_name(o->rc_again), gh_err_name(o->rc_cancel));
        if (o->elapsed < 0.018)
            GH_TEST_FAIL_("%s timed out after %.4f s (< 18 ms)", OP_NAMES[k], o->elapsed);
        if (k != OP_POOL && k != OP_SLEEP && o->got != SENTINEL)
            GH_TEST_FAIL_("%s wrote its out-pointer on GH_ETIMEDOUT", OP_NAMES[k]);
    }
    /* every primitive is consistent: no ghost waiter is left in a list */
    expect_state(victim, GH_STATE_WAITING);
    ASSERT_OK(gh_event_set(ops[OP_EVENT_WAIT].e));
    ASSERT_OK(gh_event_wait(ops[OP_EVENT_WAIT].e, 0));
    ASSERT_OK(gh_result_set(ops[OP_RESULT_GET].r, PTR(3)));
    ASSERT_OK(gh_result_get(ops[OP_RESULT_GET].r, 0, &x));
    ASSERT_EQ(NUM(x), 3);
    ASSERT_OK(gh_sem_release(ops[OP_SEM_ACQUIRE].s));
    ASSERT_OK(gh_sem_acquire(ops[OP_SEM_ACQUIRE].s, 0)); /* no ghost waiter ahead of main */
    ASSERT_OK(gh_queue_put(ops[OP_QUEUE_GET].q, PTR(4), 0));
    ASSERT_OK(gh_queue_get(ops[OP_QUEUE_GET].q, &x, 0));
    ASSERT_EQ(NUM(x), 4);
    ASSERT_EQ(gh_queue_len(ops[OP_QUEUE_PUT].q), 1); /* the timed-out put added nothing */
    ASSERT_OK(gh_queue_get(ops[OP_QUEUE_PUT].q, &x, 0));
    ASSERT_EQ(NUM(x), 1);
    ASSERT_OK(gh_queue_put(ops[OP_QUEUE_PUT].q, PTR(5), 0)); /* no ghost putter ahead */
    ASSERT_OK(gh_waiter_switch(ops[OP_WAITER_GET].w, PTR(6)));
    ASSERT_OK(gh_waiter_get(ops[OP_WAITER_GET].w, 0, &x)); /* no ghost getter: not EBUSY */
    ASSERT_EQ(NUM(x), 6);
    ASSERT_EQ(write(p1[1], "a", 1), 1);
    ASSERT_OK(gh_wait_read(p1[0], 0));
    ASSERT_EQ(write(p2[1], "b", 1), 1);
    {
        char c = 0;
        ASSERT_EQ(gh_read(p2[0], &c, 1, 0), 1); /* not GH_EBUSY: the reader slot is free */
        ASSERT_EQ(c, 'b');
    }
    ASSERT_OK(gh_kill(victim, GH_FOREVER));
    ASSERT_OK(gh_release(victim));
    ASSERT_OK(gh_event_close(ops[OP_EVENT_WAIT].e));
    ASSERT_OK(gh_result_close(ops[OP_RESULT_GET].r));
    ASSERT_OK(gh_sem_close(ops[OP_SEM_ACQUIRE].s));
    ASSERT_OK(gh_queue_free(ops[OP_QUEUE_GET].q));
    ASSERT_OK(gh_queue_free(ops[OP_QUEUE_PUT].q));
    ASSERT_OK(gh_waiter_close(ops[OP_WAITER_GET].w));
    ASSERT_OK(gh_sleep(0.06)); /* the abandoned pool call finishes; its result is dropped */
    ASSERT_OK(gh_close(p1[0]));
    ASSERT_OK(gh_close(p2[0]));
    close(p1[1]);
    close(p2[1]);
    END();
}

/* gh_switch and gh_hub_wait are blocking calls too: the caller's expired gh_timeout
 * ends them with GH_ETIMEDOUT (as their header docs now list), the switch to a
 * greenlet that parks forever and the wait on a timer 10 s out alike. */
static gh_event parked_ev;
static void *park_on_event(void *arg) {
    (void)arg;
    return PTR((intptr_t)gh_event_wait(parked_ev, GH_FOREVER));
}
TEST(timeout_ends_switch_and_hub_wait) {
    BEGIN();
    gh_timeout t;
    gh_greenlet g;
    gh_watcher w;
    void *got = SENTINEL, *res = NULL;
    ASSERT_OK(gh_event_new(&parked_ev));
    ASSERT_OK(gh_spawn(&g, park_on_event, NULL));
    ASSERT_OK(gh_timeout_start(&t, 0.01));
    ASSERT_CODE(gh_switch(g, NULL, &got), GH_ETIMEDOUT);
    ASSERT_TRUE(got == SENTINEL);
    ASSERT_OK(gh_timeout_cancel(t));
    ASSERT_OK(gh_timer_new(&w, 10, 0));
    ASSERT_OK(gh_timeout_start(&t, 0.01));
    ASSERT_CODE(gh_hub_wait(w), GH_ETIMEDOUT);
    ASSERT_OK(gh_timeout_cancel(t));
    ASSERT_EQ(gh_watcher_active(w), 0);
    ASSERT_OK(gh_watcher_close(w));
    ASSERT_OK(gh_event_set(parked_ev));
    ASSERT_OK(gh_join(g, GH_FOREVER, &res));
    ASSERT_OK((intptr_t)res);
    ASSERT_OK(gh_release(g));
    ASSERT_OK(gh_event_close(parked_ev));
    END();
}

/* Once a gh_timeout has expired, every blocking call of that greenlet returns
 * GH_ETIMEDOUT at once, whatever its own timeout, until the timeout is cancelled;
 * after the cancel the calls work again. A 0-second timeout is expired at once. */
TEST(timeout_expired_until_cancel) {
    BEGIN();
    gh_timeout t;
    gh_event e;
    gh_sem s;
    double t0;
    int i;
    ASSERT_OK(gh_event_new(&e));
    ASSERT_OK(gh_sem_new(&s, 0));
    t0 = gh_test_now();
    ASSERT_OK(gh_timeout_start(&t, 0.02));
    ASSERT_CODE(gh_event_wait(e, 5.0), GH_ETIMEDOUT);
    ASSERT_GE((gh_test_now() - t0) * 1000, 18);
    for (i = 0; i < 3; i++) { /* stays expired: each returns at once (no hang) */
        ASSERT_CODE(gh_sleep(GH_FOREVER), GH_ETIMEDOUT);
        ASSERT_CODE(gh_sleep(0.01), GH_ETIMEDOUT);
        ASSERT_CODE(gh_event_wait(e, GH_FOREVER), GH_ETIMEDOUT);
        ASSERT_CODE(gh_sem_acquire(s, GH_FOREVER), GH_ETIMEDOUT);
    }
    ASSERT_OK(gh_timeout_cancel(t));
    ASSERT_OK(gh_sleep(0.005));
    ASSERT_OK(gh_event_set(e));
    ASSERT_OK(gh_event_wait(e, GH_FOREVER));
    /* a 0 s timeout: expired from the start */
    ASSERT_OK(gh_event_clear(e));
    ASSERT_OK(gh_timeout_start(&t, 0));
    ASSERT_CODE(gh_sleep(0.01), GH_ETIMEDOUT);
    ASSERT_CODE(gh_event_wait(e, GH_FOREVER), GH_ETIMEDOUT);
    ASSERT_OK(gh_timeout_cancel(t));
    ASSERT_OK(gh_sleep(0.001));
    ASSERT_OK(gh_event_close(e));
    ASSERT_OK(gh_sem_close(s));
    END();
}

/* Three nested timeouts (20 ms, 300 ms, 10 s), started in each of the 6 orders: the
 * earliest expires first (a GH_FOREVER wait returns after >= 18 ms, long before the
 * others); cancelling it lets calls work again until the 300 ms one expires; cancelling
 * that one leaves the 10 s one, which has not expired. */
static const double NEST[3] = {0.02, 0.3, 10.0};
static const int PERMS[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
struct nest_run {
    int perm;
    int rc[6];
    double t_first, t_second;
};
static void *nest_fn(void *arg) {
    struct nest_run *n = (struct nest_run *)arg;
    gh_timeout t[3];
    double t0 = gh_test_now();
    int i;
    for (i = 0; i < 3; i++) {
        int which = PERMS[n->perm][i];
        if (gh_timeout_start(&t[which], NEST[which]) != GH_OK) return NULL;
    }
    n->rc[0] = gh_sleep(GH_FOREVER);            /* the 20 ms one */
    n->t_first = gh_test_now() - t0;
    n->rc[1] = gh_timeout_cancel(t[0]);
    n->rc[2] = gh_sleep(0.01);                  /* 30 ms in: nothing else expired */
    n->rc[3] = gh_sleep(GH_FOREVER);            /* the 300 ms one */
    n->t_second = gh_test_now() - t0;
    n->rc[4] = gh_timeout_cancel(t[1]);
    n->rc[5] = gh_sleep(0.01) == GH_OK && gh_timeout_cancel(t[2]) == GH_OK ? GH_OK : -1;
    return NULL;
}
TEST(timeout_nested_three_deep) {
    BEGIN();
    struct nest_run runs[6];
    gh_greenlet g[6];
    int i;
    for (i = 0; i < 6; i++) { /* the six orders run side by side */
        memset(&runs[i], 0, sizeof runs[i]);
        runs[i].perm = i;
        ASSERT_OK(gh_spawn(&g[i], nest_fn, &runs[i]));
    }
    for (i = 0; i < 6; i++) {
        struct nest_run *n = &runs[i];
        ASSERT_OK(gh_join(g[i], GH_FOREVER, NULL));
        ASSERT_OK(gh_release(g[i]));
        if (n->rc[0] != GH_ETIMEDOUT || n->rc[1] != GH_OK || n->rc[2] != GH_OK ||
            n->rc[3] != GH_ETIMEDOUT || n->rc[4] != GH_OK || n->rc[5] != GH_OK)
            GH_TEST_FAIL_("order %d%d%d: %s %s %s %s %s %s", PERMS[i][0], PERMS[i][1],
                          PERMS[i][2], gh_err_name(n->rc[0]), gh_err_name(n->rc[1]),
                          gh_err_name(n->rc[2]), gh_err_name(n->rc[3]),
                          gh_err_name(n->rc[4]), gh_err_name(n->rc[5]));
        if (n->t_first < 0.018 || n->t_first > 0.25)
            GH_TEST_FAIL_("order %d: first expiry after %.4f s, expected the 20 ms one", i,
                          n->t_first);
        if (n->t_second < 0.29 || n->t_second > 5.0)
            GH_TEST_FAIL_("order %d: second expiry after %.4f s, expected the 300 ms one", i,
                          n->t_second);
    }
    END();
}

/* gh_timeout_cancel: before expiry the deadline is gone (a sleep past it is GH_OK);
 * after expiry it is harmless and GH_OK; a second cancel of either is GH_EBADHANDLE. */
TEST(timeout_cancel_before_after_twice) {
    BEGIN();
    gh_timeout a, b;
    ASSERT_OK(gh_timeout_start(&a, 0.01));
    ASSERT_OK(gh_timeout_cancel(a));
    ASSERT_OK(gh_sleep(0.03)); /* past the cancelled deadline */
    ASSERT_CODE(gh_timeout_cancel(a), GH_EBADHANDLE);
    ASSERT_OK(gh_timeout_start(&b, 0.005));
    ASSERT_CODE(gh_sleep(0.05), GH_ETIMEDOUT);
    ASSERT_CODE(gh_sleep(0.01), GH_ETIMEDOUT); /* still expired */
    ASSERT_OK(gh_timeout_cancel(b));
    ASSERT_CODE(gh_timeout_cancel(b), GH_EBADHANDLE);
    ASSERT_OK(gh_sleep(0.01));
    ASSERT_NE(a.id, 0);
    ASSERT_NE(a.id, b.id);
    END();
}

/* A gh_timeout belongs to the greenlet that started it: another greenlet and main,
 * sleeping past its expiry, are unaffected. */
struct own_to {
    double deadline, sleep;
    int cancel_by_main;
    gh_timeout t;
    int rc_start, rc, rc_cancel;
    double elapsed;
};
static void *own_timeout_fn(void *arg) {
    struct own_to *o = (struct own_to *)arg;
    double t0;
    o->rc_start = gh_timeout_start(&o->t, o->deadline);
    t0 = gh_test_now();
    o->rc = gh_sleep(o->sleep);
    o->elapsed = gh_test_now() - t0;
    if (!o->cancel_by_main) o->rc_cancel = gh_timeout_cancel(o->t);
    return NULL;
}
TEST(timeout_other_greenlet_unaffected) {
    BEGIN();
    struct own_to a = {0.01, GH_FOREVER, 0, {0}, PENDING, PENDING, PENDING, 0};
    struct op plain;
    gh_greenlet ga;
    double t0 = gh_test_now();
    op_init(&plain, OP_SLEEP, 0);
    plain.timeout = 0.05;
    ASSERT_OK(gh_spawn(&ga, own_timeout_fn, &a));
    spawn_op(&plain);
    ASSERT_OK(gh_sleep(0.05)); /* main: a's 10 ms timeout is not main's */
    ASSERT_GE((gh_test_now() - t0) * 1000, 45);
    ASSERT_OK(gh_join(ga, GH_FOREVER, NULL));
    finish_op(&plain);
    ASSERT_OK(a.rc_start);
    ASSERT_CODE(a.rc, GH_ETIMEDOUT);
    ASSERT_OK(a.rc_cancel);
    ASSERT_OK(plain.rc);
    ASSERT_GE(plain.elapsed * 1000, 45);
    ASSERT_OK(gh_release(ga));
    END();
}

/* Any greenlet of the hub may cancel a timeout: main cancels a greenlet's 50 ms
 * deadline while that greenlet is blocked in a 100 ms sleep; the sleep then runs its
 * full 100 ms and returns GH_OK (the cancelled deadline must not fire). */
TEST(timeout_cancelled_while_owner_blocked) {
    BEGIN();
    struct own_to b = {0.05, 0.1, 1, {0}, PENDING, PENDING, PENDING, 0};
    gh_greenlet gb;
    ASSERT_OK(gh_spawn(&gb, own_timeout_fn, &b));
    settle();
    ASSERT_OK(b.rc_start);
    expect_state(gb, GH_STATE_WAITING);
    ASSERT_OK(gh_timeout_cancel(b.t));
    ASSERT_OK(gh_join(gb, GH_FOREVER, NULL));
    ASSERT_OK(b.rc);
    ASSERT_GE(b.elapsed * 1000, 90);
    ASSERT_CODE(gh_timeout_cancel(b.t), GH_EBADHANDLE);
    ASSERT_OK(gh_release(gb));
    END();
}

/* A timeout whose greenlet has finished (expired or not) can still be cancelled by
 * another greenlet: GH_OK, then GH_EBADHANDLE. */
static void *start_timeout_and_return(void *arg) {
    struct own_to *o = (struct own_to *)arg;
    o->rc_start = gh_timeout_start(&o->t, o->deadline);
    if (o->sleep > 0) o->rc = gh_sleep(o->sleep);
    return NULL;
}
TEST(timeout_cancel_after_owner_died) {
    BEGIN();
    struct own_to x = {10.0, 0, 1, {0}, PENDING, PENDING, PENDING, 0};
    struct own_to y = {0.005, 0.02, 1, {0}, PENDING, PENDING, PENDING, 0};
    gh_greenlet gx, gy;
    ASSERT_OK(gh_spawn(&gx, start_timeout_and_return, &x));
    ASSERT_OK(gh_spawn(&gy, start_timeout_and_return, &y));
    ASSERT_OK(gh_join(gx, GH_FOREVER, NULL));
    ASSERT_OK(gh_join(gy, GH_FOREVER, NULL));
    ASSERT_OK(x.rc_start);
    ASSERT_OK(y.rc_start);
    ASSERT_CODE(y.rc, GH_ETIMEDOUT);
    ASSERT_OK(gh_timeout_cancel(x.t));
    ASSERT_OK(gh_timeout_cancel(y.t));
    ASSERT_CODE(gh_timeout_cancel(x.t), GH_EBADHANDLE);
    ASSERT_CODE(gh_timeout_cancel(y.t), GH_EBADHANDLE);
    ASSERT_OK(gh_release(gx));
    ASSERT_OK(gh_release(gy));
    ASSERT_OK(gh_sleep(0.01)); /* main unaffected by either */
    END();
}

/* Negative, -inf, +inf, 1e300 and DBL_MAX: a timeout that never expires (a 30 ms
 * sleep and a 30 ms event wait end by their own means, not GH_ETIMEDOUT from the
 * gh_timeout); cancel is GH_OK. FAULTS 7. */
TEST(timeout_never_expires) {
    BEGIN();
    static const double never[] = {-0.5, GH_FOREVER, -INFINITY, INFINITY, 1e300, DBL_MAX};
    size_t i;
    gh_event e;
    ASSERT_OK(gh_event_new(&e));
    for (i = 0; i < sizeof never / sizeof never[0]; i++) {
        gh_timeout t;
        int rc;
        ASSERT_OK(gh_timeout_start(&t, never[i]));
        rc = gh_sleep(0.03);
        if (rc != GH_OK) GH_TEST_FAIL_("gh_timeout %g: gh_sleep = %s", never[i], gh_err_name(rc));
        ASSERT_OK(gh_event_set(e));
        ASSERT_OK(gh_event_wait(e, GH_FOREVER));
        ASSERT_OK(gh_event_clear(e));
        ASSERT_OK(gh_timeout_cancel(t));
    }
    ASSERT_OK(gh_event_close(e));
    END();
}

/* gh_timeout_start: NaN (either sign) and a NULL out-pointer are GH_EINVAL and start
 * nothing (a later sleep is GH_OK); from a gh_run_callback callback and from a timer
 * watcher's callback it is GH_EPERM. */
static int cb_to_rc[2] = {PENDING, PENDING};
static void timeout_from_run_callback(void *arg) {
    gh_timeout t;
    (void)arg;
    cb_to_rc[0] = gh_timeout_start(&t, 0.01);
}
static void timeout_from_watcher(gh_watcher w, int revents, void *arg) {
    gh_timeout t;
    (void)w;
    (void)revents;
    (void)arg;
    cb_to_rc[1] = gh_timeout_start(&t, 0.01);
}
TEST(timeout_bad_args) {
    BEGIN();
    gh_timeout t = {0};
    gh_watcher tw;
    ASSERT_CODE(gh_timeout_start(&t, NAN), GH_EINVAL);
    ASSERT_CODE(gh_timeout_start(&t, -NAN), GH_EINVAL);
    ASSERT_CODE(gh_timeout_start(NULL, 0.001), GH_EINVAL);
    ASSERT_CODE(gh_timeout_start(NULL, NAN), GH_EINVAL);
    ASSERT_OK(gh_sleep(0.01)); /* none of them started a deadline */
    ASSERT_OK(gh_run_callback(timeout_from_run_callback, NULL));
    ASSERT_OK(gh_timer_new(&tw, 0.001, 0));
    ASSERT_OK(gh_watcher_start(tw, timeout_from_watcher, NULL));
    ASSERT_OK(gh_sleep(0.02));
    ASSERT_CODE(cb_to_rc[0], GH_EPERM);
    ASSERT_CODE(cb_to_rc[1], GH_EPERM);
    ASSERT_OK(gh_watcher_close(tw));
    END();
}

/* ---- gh_event --------------------------------------------------------------- */

/* gh_event_set wakes every waiter, in the order they started waiting (1, 3, 0, 2 —
 * neither spawn nor slot order, see spawn_in_order); all return GH_OK. */
TEST(event_set_wakes_all_fifo) {
    BEGIN();
    static const int want[4] = {1, 3, 0, 2};
    struct op ops[4];
    gh_event e;
    int i;
    ASSERT_OK(gh_event_new(&e));
    ASSERT_EQ(gh_event_is_set(e), 0);
    for (i = 0; i < 4; i++) {
        op_init(&ops[i], OP_EVENT_WAIT, i);
        ops[i].e = e;
    }
    spawn_in_order(ops, 4, want);
    for (i = 0; i < 4; i++) expect_state(ops[i].self, GH_STATE_WAITING);
    ASSERT_EQ(n_order, 0);
    ASSERT_OK(gh_event_set(e));
    ASSERT_EQ(gh_event_is_set(e), 1);
    for (i = 0; i < 4; i++) finish_op(&ops[i]);
    for (i = 0; i < 4; i++) ASSERT_OK(ops[i].rc);
    expect_order(want, 4);
    ASSERT_OK(gh_event_close(e));
    close_gates(ops, 4);
    END();
}

/* A set event: waits return GH_OK at once (timeout 0, finite, GH_FOREVER); setting
 * twice is harmless. After gh_event_clear (twice harmless), is_set is 0 and a wait
 * with timeout 0 is GH_ETIMEDOUT. */
TEST(event_wait_on_set_and_clear) {
    BEGIN();
    gh_event e;
    ASSERT_OK(gh_event_new(&e));
    ASSERT_CODE(gh_event_wait(e, 0), GH_ETIMEDOUT);
    ASSERT_OK(gh_event_set(e));
    ASSERT_OK(gh_event_set(e));
    ASSERT_EQ(gh_event_is_set(e), 1);
    ASSERT_OK(gh_event_wait(e, 0));
    ASSERT_OK(gh_event_wait(e, 0.5));
    ASSERT_OK(gh_event_wait(e, GH_FOREVER)); /* main alone: still at once, no LOOPEXIT */
    ASSERT_EQ(gh_event_is_set(e), 1);       /* waiting does not consume it */
    ASSERT_OK(gh_event_clear(e));
    ASSERT_OK(gh_event_clear(e));
    ASSERT_EQ(gh_event_is_set(e), 0);
    ASSERT_CODE(gh_event_wait(e, 0), GH_ETIMEDOUT);
    ASSERT_OK(gh_event_close(e));
    END();
}

/* A waiter woken by gh_event_set returns GH_OK even though the event was cleared
 * again before it ran; a waiter that arrives after the clear waits. */
TEST(event_waiter_woken_then_cleared) {
    BEGIN();
    struct op a, late;
    gh_event e;
    ASSERT_OK(gh_event_new(&e));
    op_init(&a, OP_EVENT_WAIT, 0);
    a.e = e;
    spawn_op(&a);
    settle();
    ASSERT_OK(gh_event_set(e));
    ASSERT_OK(gh_event_clear(e)); /* before a runs */
    op_init(&late, OP_EVENT_WAIT, 1);
    late.e = e;
    late.timeout = 0.02;
    spawn_op(&late);
    finish_op(&a);
    finish_op(&late);
    ASSERT_OK(a.rc);
    ASSERT_CODE(late.rc, GH_ETIMEDOUT);
    ASSERT_EQ(gh_event_is_set(e), 0);
    ASSERT_OK(gh_event_close(e));
    END();
}

/* gh_event_wait timeouts: 20 ms expires after >= 18 ms with GH_ETIMEDOUT; NaN is
 * GH_EINVAL; forever-like timeouts (-0.5, -inf, +inf, 1e300) wait until a greenlet
 * sets the event 20 ms later. FAULTS 7. */
static void *set_event_later(void *arg) {
    gh_event *e = (gh_event *)arg;
    if (gh_sleep(0.02) != GH_OK) return NULL;
    return PTR(gh_event_set(*e) == GH_OK);
}
TEST(event_wait_timeout) {
    BEGIN();
    static const double forever[] = {-0.5, -INFINITY, INFINITY, 1e300};
    gh_event e;
    double t0;
    size_t i;
    ASSERT_OK(gh_event_new(&e));
    t0 = gh_test_now();
    ASSERT_CODE(gh_event_wait(e, 0.02), GH_ETIMEDOUT);
    ASSERT_GE((gh_test_now() - t0) * 1000, 18);
    ASSERT_CODE(gh_event_wait(e, NAN), GH_EINVAL);
    for (i = 0; i < sizeof forever / sizeof forever[0]; i++) {
        gh_greenlet g;
        void *r = NULL;
        int rc;
        ASSERT_OK(gh_spawn(&g, set_event_later, &e));
        rc = gh_event_wait(e, forever[i]);
        if (rc != GH_OK) GH_TEST_FAIL_("gh_event_wait(%g) = %s", forever[i], gh_err_name(rc));
        ASSERT_OK(gh_join(g, GH_FOREVER, &r));
        ASSERT_EQ(NUM(r), 1);
        ASSERT_OK(gh_release(g));
        ASSERT_OK(gh_event_clear(e));
    }
    ASSERT_OK(gh_event_close(e));
    END();
}

/* A waiter woken by gh_event_set and killed before it ran passes nothing on: a greenlet
 * that started waiting after the set (the event cleared again) is not woken by it, it
 * times out. (Before: the killed waiter handed its wake-up to the next in line, whose
 * gh_event_wait returned GH_OK for an event that was never set while it waited.) */
static gh_event killed_after_set_e;
static void *wait_killed_after_set(void *arg) {
    (void)arg;
    return PTR(gh_event_wait(killed_after_set_e, GH_FOREVER) == GH_ECANCELED);
}
TEST(event_waiter_killed_after_set_passes_nothing_on) {
    BEGIN();
    gh_greenlet g;
    void *res;
    ASSERT_OK(gh_event_new(&killed_after_set_e));
    ASSERT_OK(gh_spawn(&g, wait_killed_after_set, NULL));
    ASSERT_OK(gh_sleep(0.005));
    ASSERT_OK(gh_event_set(killed_after_set_e)); /* g woken, not run yet */
    ASSERT_OK(gh_kill(g, 0));
    ASSERT_OK(gh_event_clear(killed_after_set_e));
    ASSERT_CODE(gh_event_wait(killed_after_set_e, 0.03), GH_ETIMEDOUT);
    ASSERT_OK(gh_join(g, 1, &res));
    ASSERT_EQ(NUM(res), 1);
    ASSERT_OK(gh_release(g));
    ASSERT_OK(gh_event_close(killed_after_set_e));
    END();
}

/* gh_event_close with two waiters: both wake with GH_ECLOSED; the handle is stale
 * (every event function GH_EBADHANDLE, a second close too). */
TEST(event_close_with_waiters) {
    BEGIN();
    struct op a, b;
    gh_event e;
    ASSERT_OK(gh_event_new(&e));
    op_init(&a, OP_EVENT_WAIT, 0);
    op_init(&b, OP_EVENT_WAIT, 1);
    a.e = b.e = e;
    spawn_op(&a);
    spawn_op(&b);
    settle();
    ASSERT_OK(gh_event_close(e));
    finish_op(&a);
    finish_op(&b);
    ASSERT_CODE(a.rc, GH_ECLOSED);
    ASSERT_CODE(b.rc, GH_ECLOSED);
    ASSERT_CODE(gh_event_close(e), GH_EBADHANDLE);
    ASSERT_CODE(gh_event_set(e), GH_EBADHANDLE);
    ASSERT_CODE(gh_event_clear(e), GH_EBADHANDLE);
    ASSERT_CODE(gh_event_is_set(e), GH_EBADHANDLE);
    ASSERT_CODE(gh_event_wait(e, 0), GH_EBADHANDLE);
    ASSERT_CODE(gh_event_wait(e, GH_FOREVER), GH_EBADHANDLE);
    END();
}

/* Waiters woken by gh_event_close run after main has reused the event's slot: for a
 * gh_timeout, each still gets GH_ECLOSED (it used to look the slot up without its
 * generation and hit the timeout: GH_EINTERNAL; found by fuzz/api_sequence); for a new
 * event, that event still works for its own waiter. */
TEST(event_close_then_slot_reused_before_waiters_run) {
    BEGIN();
    struct op a, b, c, d;
    gh_event e, e2;
    gh_timeout t;
    ASSERT_OK(gh_event_new(&e));
    op_init(&a, OP_EVENT_WAIT, 0);
    op_init(&b, OP_EVENT_WAIT, 1);
    a.e = b.e = e;
    spawn_op(&a);
    spawn_op(&b);
    settle();
    ASSERT_OK(gh_event_close(e));
    ASSERT_OK(gh_timeout_start(&t, 60.0)); /* takes the freed slot */
    finish_op(&a);
    finish_op(&b);
    ASSERT_CODE(a.rc, GH_ECLOSED);
    ASSERT_CODE(b.rc, GH_ECLOSED);
    ASSERT_OK(gh_timeout_cancel(t));

    ASSERT_OK(gh_event_new(&e));
    op_init(&d, OP_EVENT_WAIT, 3);
    d.e = e;
    spawn_op(&d);
    settle();
    ASSERT_OK(gh_event_close(e));
    ASSERT_OK(gh_event_new(&e2)); /* takes the freed slot */
    op_init(&c, OP_EVENT_WAIT, 2);
    c.e = e2;
    spawn_op(&c);
    finish_op(&d);
    ASSERT_CODE(d.rc, GH_ECLOSED);
    settle();
    ASSERT_EQ(c.rc, PENDING);
    ASSERT_OK(gh_event_set(e2));
    finish_op(&c);
    ASSERT_OK(c.rc);
    ASSERT_OK(gh_event_close(e2));
    END();
}

/* ---- gh_result -------------------------------------------------------------- */

/* gh_result_set wakes all three waiting getters (in arrival order 2, 0, 1) with the
 * value; later gets
 * (timeout 0 and GH_FOREVER, any number of times, NULL out-pointer) return it too. */
TEST(result_value_to_many_getters) {
    BEGIN();
    static const int want[3] = {2, 0, 1};
    struct op ops[3];
    gh_result r;
    void *v = NULL;
    int i;
    ASSERT_OK(gh_result_new(&r));
    for (i = 0; i < 3; i++) {
        op_init(&ops[i], OP_RESULT_GET, i);
        ops[i].r = r;
    }
    spawn_in_order(ops, 3, want);
    ASSERT_OK(gh_result_set(r, PTR(42)));
    for (i = 0; i < 3; i++) {
        finish_op(&ops[i]);
        ASSERT_OK(ops[i].rc);
        ASSERT_EQ(NUM(ops[i].got), 42);
    }
    expect_order(want, 3);
    for (i = 0; i < 3; i++) {
        v = NULL;
        ASSERT_OK(gh_result_get(r, 0, &v));
        ASSERT_EQ(NUM(v), 42);
    }
    ASSERT_OK(gh_result_get(r, GH_FOREVER, &v));
    ASSERT_EQ(NUM(v), 42);
    ASSERT_OK(gh_result_get(r, 0, NULL));
    ASSERT_OK(gh_result_close(r));
    close_gates(ops, 3);
    END();
}

/* gh_result_set_error: waiting getters and later getters all get the code (a library
 * code and a made-up negative one), and the out-pointer is left alone. */
TEST(result_error_to_getters) {
    BEGIN();
    static const int codes[2] = {GH_ENOSWITCH, -4242};
    int k;
    for (k = 0; k < 2; k++) {
        struct op a, b;
        gh_result r;
        void *v = SENTINEL;
        ASSERT_OK(gh_result_new(&r));
        op_init(&a, OP_RESULT_GET, 0);
        op_init(&b, OP_RESULT_GET, 1);
        a.r = b.r = r;
        spawn_op(&a);
        spawn_op(&b);
        settle();
        ASSERT_OK(gh_result_set_error(r, codes[k]));
        finish_op(&a);
        finish_op(&b);
        ASSERT_CODE(a.rc, codes[k]);
        ASSERT_CODE(b.rc, codes[k]);
        ASSERT_TRUE(a.got == SENTINEL && b.got == SENTINEL);
        ASSERT_CODE(gh_result_get(r, 0, &v), codes[k]);
        ASSERT_CODE(gh_result_get(r, GH_FOREVER, NULL), codes[k]);
        ASSERT_TRUE(v == SENTINEL);
        ASSERT_OK(gh_result_close(r));
    }
    END();
}

/* A result is set once: a second gh_result_set / gh_result_set_error is GH_EBUSY and
 * changes nothing (value then error, error then value, value twice). */
TEST(result_set_twice_ebusy) {
    BEGIN();
    gh_result r1, r2;
    void *v = NULL;
    ASSERT_OK(gh_result_new(&r1));
    ASSERT_OK(gh_result_new(&r2));
    ASSERT_OK(gh_result_set(r1, PTR(1)));
    ASSERT_CODE(gh_result_set(r1, PTR(2)), GH_EBUSY);
    ASSERT_CODE(gh_result_set(r1, NULL), GH_EBUSY);
    ASSERT_CODE(gh_result_set_error(r1, GH_ETIMEDOUT), GH_EBUSY);
    ASSERT_OK(gh_result_get(r1, 0, &v));
    ASSERT_EQ(NUM(v), 1);
    ASSERT_OK(gh_result_set_error(r2, GH_ECLOSED));
    ASSERT_CODE(gh_result_set_error(r2, GH_EINVAL), GH_EBUSY);
    ASSERT_CODE(gh_result_set(r2, PTR(3)), GH_EBUSY);
    ASSERT_CODE(gh_result_get(r2, 0, &v), GH_ECLOSED);
    ASSERT_OK(gh_result_close(r1));
    ASSERT_OK(gh_result_close(r2));
    END();
}

/* gh_result_set_error with a code >= 0 (0, 1, INT_MAX) is GH_EINVAL and leaves the
 * result unset (a get times out) and settable. */
TEST(result_set_error_nonnegative_einval) {
    BEGIN();
    gh_result r;
    void *v = NULL;
    ASSERT_OK(gh_result_new(&r));
    ASSERT_CODE(gh_result_set_error(r, 0), GH_EINVAL);
    ASSERT_CODE(gh_result_set_error(r, 1), GH_EINVAL);
    ASSERT_CODE(gh_result_set_error(r, INT_MAX), GH_EINVAL);
    ASSERT_CODE(gh_result_get(r, 0, &v), GH_ETIMEDOUT);
    ASSERT_OK(gh_result_set(r, PTR(9)));
    ASSERT_OK(gh_result_get(r, 0, &v));
    ASSERT_EQ(NUM(v), 9);
    ASSERT_OK(gh_result_close(r));
    END();
}

/* gh_result_get before the set: timeout 0 is GH_ETIMEDOUT, 20 ms is GH_ETIMEDOUT after
 * >= 18 ms, NaN GH_EINVAL, the out-pointer untouched; a greenlet setting NULL 20 ms
 * later wakes a GH_FOREVER get, which reports NULL (not the sentinel). */
static void *set_result_later(void *arg) {
    gh_result *r = (gh_result *)arg;
    if (gh_sleep(0.02) != GH_OK) return NULL;
    return PTR(gh_result_set(*r, NULL) == GH_OK);
}
TEST(result_get_before_after_set) {
    BEGIN();
    gh_result r;
    gh_greenlet g;
    void *v = SENTINEL;
    double t0;
    ASSERT_OK(gh_result_new(&r));
    ASSERT_CODE(gh_result_get(r, 0, &v), GH_ETIMEDOUT);
    t0 = gh_test_now();
    ASSERT_CODE(gh_result_get(r, 0.02, &v), GH_ETIMEDOUT);
    ASSERT_GE((gh_test_now() - t0) * 1000, 18);
    ASSERT_CODE(gh_result_get(r, NAN, &v), GH_EINVAL);
    ASSERT_TRUE(v == SENTINEL);
    ASSERT_OK(gh_spawn(&g, set_result_later, &r));
    ASSERT_OK(gh_result_get(r, GH_FOREVER, &v));
    ASSERT_TRUE(v == NULL);
    ASSERT_OK(gh_join(g, GH_FOREVER, &v));
    ASSERT_EQ(NUM(v), 1);
    ASSERT_OK(gh_release(g));
    ASSERT_OK(gh_result_close(r));
    END();
}

/* gh_result_close with two waiting getters: both GH_ECLOSED; the handle is stale. */
TEST(result_close_with_waiters) {
    BEGIN();
    struct op a, b;
    gh_result r;
    ASSERT_OK(gh_result_new(&r));
    op_init(&a, OP_RESULT_GET, 0);
    op_init(&b, OP_RESULT_GET, 1);
    a.r = b.r = r;
    spawn_op(&a);
    spawn_op(&b);
    settle();
    ASSERT_OK(gh_result_close(r));
    finish_op(&a);
    finish_op(&b);
    ASSERT_CODE(a.rc, GH_ECLOSED);
    ASSERT_CODE(b.rc, GH_ECLOSED);
    ASSERT_TRUE(a.got == SENTINEL && b.got == SENTINEL);
    ASSERT_CODE(gh_result_close(r), GH_EBADHANDLE);
    ASSERT_CODE(gh_result_set(r, NULL), GH_EBADHANDLE);
    ASSERT_CODE(gh_result_set_error(r, GH_EINVAL), GH_EBADHANDLE);
    ASSERT_CODE(gh_result_get(r, 0, NULL), GH_EBADHANDLE);
    END();
}

/* ---- gh_sem ----------------------------------------------------------------- */

/* A semaphore with 3 permits: three tries succeed, the fourth is GH_ETIMEDOUT;
 * each release allows one more; 0 permits: a try fails at once. */
TEST(sem_counting) {
    BEGIN();
    gh_sem s, z;
    int i;
    ASSERT_OK(gh_sem_new(&s, 3));
    for (i = 0; i < 3; i++) ASSERT_OK(gh_sem_acquire(s, 0));
    ASSERT_CODE(gh_sem_acquire(s, 0), GH_ETIMEDOUT);
    ASSERT_OK(gh_sem_release(s));
    ASSERT_OK(gh_sem_release(s));
    ASSERT_OK(gh_sem_acquire(s, GH_FOREVER));
    ASSERT_OK(gh_sem_acquire(s, 0.5));
    ASSERT_CODE(gh_sem_acquire(s, 0), GH_ETIMEDOUT);
    for (i = 0; i < 5; i++) ASSERT_OK(gh_sem_release(s)); /* above the initial count: fine */
    for (i = 0; i < 5; i++) ASSERT_OK(gh_sem_acquire(s, 0));
    ASSERT_CODE(gh_sem_acquire(s, 0), GH_ETIMEDOUT);
    ASSERT_OK(gh_sem_new(&z, 0));
    ASSERT_CODE(gh_sem_acquire(z, 0), GH_ETIMEDOUT);
    ASSERT_OK(gh_sem_close(s));
    ASSERT_OK(gh_sem_close(z));
    END();
}

/* A lock (gh_sem_new(&s, 1)): 4 greenlets × 5 rounds, each holding it across a 1 ms
 * sleep: never two inside at once, all 20 entries happen, and the lock is free after. */
static gh_sem lock_s;
static int lock_inside, lock_max, lock_entries;
static void *lock_user(void *arg) {
    int i;
    (void)arg;
    for (i = 0; i < 5; i++) {
        if (gh_sem_acquire(lock_s, GH_FOREVER) != GH_OK) return PTR(1);
        lock_inside++;
        lock_entries++;
        if (lock_inside > lock_max) lock_max = lock_inside;
        if (gh_sleep(0.001) != GH_OK) return PTR(2);
        lock_inside--;
        if (gh_sem_release(lock_s) != GH_OK) return PTR(3);
    }
    return NULL;
}
TEST(sem_lock_mutual_exclusion) {
    BEGIN();
    gh_greenlet g[4];
    int i;
    ASSERT_OK(gh_sem_new(&lock_s, 1));
    for (i = 0; i < 4; i++) ASSERT_OK(gh_spawn(&g[i], lock_user, NULL));
    for (i = 0; i < 4; i++) {
        void *r = PTR(9);
        ASSERT_OK(gh_join(g[i], GH_FOREVER, &r));
        ASSERT_EQ(NUM(r), 0);
        ASSERT_OK(gh_release(g[i]));
    }
    ASSERT_EQ(lock_max, 1);
    ASSERT_EQ(lock_entries, 20);
    ASSERT_EQ(lock_inside, 0);
    ASSERT_OK(gh_sem_acquire(lock_s, 0));
    ASSERT_CODE(gh_sem_acquire(lock_s, 0), GH_ETIMEDOUT);
    ASSERT_OK(gh_sem_close(lock_s));
    END();
}

/* Waiters are served in arrival order (1, 3, 0, 2): one release wakes
 * exactly the first; then three releases at once serve the rest in order. */
TEST(sem_fifo_order) {
    BEGIN();
    static const int want[4] = {1, 3, 0, 2};
    struct op ops[4];
    gh_sem s;
    int i;
    ASSERT_OK(gh_sem_new(&s, 0));
    for (i = 0; i < 4; i++) {
        op_init(&ops[i], OP_SEM_ACQUIRE, i);
        ops[i].s = s;
    }
    spawn_in_order(ops, 4, want);
    ASSERT_OK(gh_sem_release(s));
    settle();
    expect_order(want, 1);
    ASSERT_EQ(gh_greenlet_state(ops[1].self), GH_STATE_DEAD);
    for (i = 0; i < 3; i++) ASSERT_OK(gh_sem_release(s));
    for (i = 0; i < 4; i++) {
        finish_op(&ops[i]);
        ASSERT_OK(ops[i].rc);
    }
    expect_order(want, 4);
    ASSERT_CODE(gh_sem_acquire(s, 0), GH_ETIMEDOUT); /* exactly 4 permits, 4 served */
    ASSERT_OK(gh_sem_close(s));
    close_gates(ops, 4);
    END();
}

/* "A newcomer does not overtake" waiters: a permit released while a greenlet waits is
 * that greenlet's — main's try right after the release (before the waiter ran) is
 * GH_ETIMEDOUT, and the waiter gets the permit. */
TEST(sem_newcomer_does_not_overtake) {
    BEGIN();
    struct op a;
    gh_sem s;
    ASSERT_OK(gh_sem_new(&s, 0));
    op_init(&a, OP_SEM_ACQUIRE, 0);
    a.s = s;
    spawn_op(&a);
    settle();
    ASSERT_OK(gh_sem_release(s));
    ASSERT_CODE(gh_sem_acquire(s, 0), GH_ETIMEDOUT); /* the permit is a's */
    finish_op(&a);
    ASSERT_OK(a.rc);
    ASSERT_CODE(gh_sem_acquire(s, 0), GH_ETIMEDOUT);
    ASSERT_OK(gh_sem_close(s));
    END();
}

/* gh_sem_acquire timeouts: 0 = try once; 20 ms expires after >= 18 ms; NaN is
 * GH_EINVAL and takes nothing; forever-like timeouts wait for a release 20 ms later.
 * FAULTS 7. */
static void *release_later(void *arg) {
    gh_sem *s = (gh_sem *)arg;
    if (gh_sleep(0.02) != GH_OK) return NULL;
    return PTR(gh_sem_release(*s) == GH_OK);
}
TEST(sem_timeout) {
    BEGIN();
    static const double forever[] = {-0.5, -INFINITY, INFINITY, 1e300};
    gh_sem s;
    double t0;
    size_t i;
    ASSERT_OK(gh_sem_new(&s, 1));
    ASSERT_CODE(gh_sem_acquire(s, NAN), GH_EINVAL);
    ASSERT_OK(gh_sem_acquire(s, 0)); /* the NaN call took nothing */
    ASSERT_CODE(gh_sem_acquire(s, 0), GH_ETIMEDOUT);
    t0 = gh_test_now();
    ASSERT_CODE(gh_sem_acquire(s, 0.02), GH_ETIMEDOUT);
    ASSERT_GE((gh_test_now() - t0) * 1000, 18);
    for (i = 0; i < sizeof forever / sizeof forever[0]; i++) {
        gh_greenlet g;
        int rc;
        ASSERT_OK(gh_spawn(&g, release_later, &s));
        rc = gh_sem_acquire(s, forever[i]);
        if (rc != GH_OK) GH_TEST_FAIL_("gh_sem_acquire(%g) = %s", forever[i], gh_err_name(rc));
        ASSERT_OK(gh_join(g, GH_FOREVER, NULL));
        ASSERT_OK(gh_release(g));
    }
    ASSERT_CODE(gh_sem_acquire(s, 0), GH_ETIMEDOUT);
    ASSERT_OK(gh_sem_close(s));
    END();
}

/* No lost permit (FAULTS 11): waiters a, b, c; a permit is released and a is killed in
 * the same turn, before it ran. a returns GH_ECANCELED, the permit goes to b, c still
 * waits; the next release reaches c; no permit is left over or missing. Done once from
 * main and once from inside a gh_run_callback callback. */
static struct op *kill_ops;
static void release_and_kill_cb(void *arg) {
    gh_sem *s = (gh_sem *)arg;
    if (gh_sem_release(*s) != GH_OK) return;
    (void)gh_kill(kill_ops[0].self, 0);
}
TEST(sem_permit_to_killed_waiter_passes_on) {
    BEGIN();
    int round;
    for (round = 0; round < 2; round++) {
        struct op ops[3];
        gh_sem s;
        int i;
        ASSERT_OK(gh_sem_new(&s, 0));
        for (i = 0; i < 3; i++) {
            op_init(&ops[i], OP_SEM_ACQUIRE, i);
            ops[i].s = s;
            spawn_op(&ops[i]);
            settle(); /* arrival order a, b, c */
        }
        if (round == 0) {
            ASSERT_OK(gh_sem_release(s));
            ASSERT_OK(gh_kill(ops[0].self, 0));
        } else {
            kill_ops = ops;
            ASSERT_OK(gh_run_callback(release_and_kill_cb, &s));
        }
        settle();
        ASSERT_CODE(ops[0].rc, GH_ECANCELED);
        ASSERT_OK(ops[1].rc);
        ASSERT_EQ(ops[2].rc, PENDING);
        expect_state(ops[2].self, GH_STATE_WAITING);
        ASSERT_OK(gh_sem_release(s));
        for (i = 0; i < 3; i++) finish_op(&ops[i]);
        ASSERT_OK(ops[2].rc);
        ASSERT_CODE(gh_sem_acquire(s, 0), GH_ETIMEDOUT); /* 2 permits, 2 served */
        ASSERT_OK(gh_sem_close(s));
        n_order = 0;
    }
    END();
}

/* No lost permit when the waiter it was released to ends its wait with an error
 * before it ran: (1) gh_throw(a, GH_ETIMEDOUT) right after the release: a returns
 * GH_ETIMEDOUT and b gets the permit; (2) a real timeout racing the release (main
 * blocks the thread past a's 10 ms deadline, then releases): exactly one of a and b
 * holds the permit — a with GH_OK and b still waiting, or a with GH_ETIMEDOUT and b
 * with GH_OK — and nothing is left over. */
TEST(sem_permit_to_timed_out_waiter_passes_on) {
    BEGIN();
    struct op a, b;
    gh_sem s;
    ASSERT_OK(gh_sem_new(&s, 0));
    op_init(&a, OP_SEM_ACQUIRE, 0);
    op_init(&b, OP_SEM_ACQUIRE, 1);
    a.s = b.s = s;
    spawn_op(&a);
    settle();
    spawn_op(&b);
    settle();
    ASSERT_OK(gh_sem_release(s));
    ASSERT_OK(gh_throw(a.self, GH_ETIMEDOUT));
    finish_op(&a);
    finish_op(&b);
    ASSERT_CODE(a.rc, GH_ETIMEDOUT);
    ASSERT_OK(b.rc);
    ASSERT_CODE(gh_sem_acquire(s, 0), GH_ETIMEDOUT);

    op_init(&a, OP_SEM_ACQUIRE, 0);
    op_init(&b, OP_SEM_ACQUIRE, 1);
    a.s = b.s = s;
    a.timeout = 0.01;
    spawn_op(&a);
    settle();
    spawn_op(&b);
    settle();
    usleep(30000); /* the thread is busy: a's deadline passes unnoticed */
    ASSERT_OK(gh_sem_release(s));
    ASSERT_OK(gh_sleep(0.02));
    finish_op(&a);
    if (a.rc == GH_OK) {
        ASSERT_EQ(b.rc, PENDING);
        ASSERT_OK(gh_sem_release(s));
    } else {
        ASSERT_CODE(a.rc, GH_ETIMEDOUT);
    }
    finish_op(&b);
    ASSERT_OK(b.rc);
    ASSERT_CODE(gh_sem_acquire(s, 0), GH_ETIMEDOUT);
    ASSERT_OK(gh_sem_close(s));
    END();
}

/* Main's wait ends with a timeout, and in the same loop pass, before main runs again, a
 * timer callback releases the semaphore: the permit is not main's (its wait is over), it
 * stays in the count, exactly once. Main is woken at once (not through the queue as a
 * task is), so the release finds main's wait already ended. The timer is started by a
 * greenlet that runs once main waits (so it is due after main's timeout, however slow
 * the machine), which then keeps the thread busy until both are due: one pass fires
 * main's timeout first, then the timer. */
static gh_sem late_sem;
static void release_late_cb(gh_watcher w, int revents, void *arg) {
    (void)revents;
    (void)arg;
    ASSERT_OK(gh_sem_release(late_sem));
    ASSERT_OK(gh_watcher_close(w));
}
static void *late_release_fn(void *arg) {
    (void)arg;
    gh_watcher t;
    if (gh_timer_new(&t, 0.01, 0) != GH_OK) return (void *)1;
    if (gh_watcher_start(t, release_late_cb, NULL) != GH_OK) return (void *)2;
    usleep(40000); /* the thread is busy: both deadlines pass unnoticed */
    return NULL;
}
TEST(sem_release_after_main_timed_out_keeps_one_permit) {
    BEGIN();
    gh_greenlet g;
    void *r = PTR(99);
    ASSERT_OK(gh_sem_new(&late_sem, 0));
    ASSERT_OK(gh_spawn(&g, late_release_fn, NULL));
    ASSERT_CODE(gh_sem_acquire(late_sem, 0.01), GH_ETIMEDOUT);
    ASSERT_OK(gh_join(g, GH_FOREVER, &r));
    ASSERT_TRUE(r == NULL);
    ASSERT_OK(gh_sleep(0.02)); /* the timer has fired by now, whichever pass it fell in */
    ASSERT_OK(gh_sem_acquire(late_sem, 0));
    ASSERT_CODE(gh_sem_acquire(late_sem, 0), GH_ETIMEDOUT); /* one release, one permit */
    ASSERT_OK(gh_release(g));
    ASSERT_OK(gh_sem_close(late_sem));
    END();
}

/* The same, through the callback queue: a callback throws into main (waiting on the
 * semaphore) and releases it, and a task woken later in the same pass acquires before
 * main has run. Main's ended entry is still listed then, so the task parks behind it;
 * main, leaving the list, must pass the free permit on, or the task waits forever with a
 * permit in the count. */
static gh_sem cbq_sem;
static gh_greenlet cbq_main;
static void throw_and_release_cb(void *arg) {
    (void)arg;
    ASSERT_OK(gh_throw(cbq_main, GH_EINTR));
    ASSERT_OK(gh_sem_release(cbq_sem));
}
static void *acquire_after_cb_fn(void *arg) {
    (void)arg;
    if (gh_run_callback(throw_and_release_cb, NULL) != GH_OK) return (void *)1;
    if (gh_sleep(0) != GH_OK) return (void *)2; /* queued behind the callback */
    return (void *)(intptr_t)gh_sem_acquire(cbq_sem, GH_FOREVER);
}
TEST(sem_release_to_task_behind_main_ended_wait) {
    BEGIN();
    gh_greenlet g;
    void *r = PTR(99);
    cbq_main = gh_current();
    ASSERT_OK(gh_sem_new(&cbq_sem, 0));
    ASSERT_OK(gh_spawn(&g, acquire_after_cb_fn, NULL));
    ASSERT_CODE(gh_sem_acquire(cbq_sem, GH_FOREVER), GH_EINTR);
    ASSERT_OK(gh_join(g, 1.0, &r)); /* the task got the permit */
    ASSERT_TRUE(r == NULL);
    ASSERT_CODE(gh_sem_acquire(cbq_sem, 0), GH_ETIMEDOUT); /* one release, one permit */
    ASSERT_OK(gh_release(g));
    ASSERT_OK(gh_sem_close(cbq_sem));
    END();
}

/* A newcomer with timeout 0 is not refused because of main's ended wait, which stays
 * listed until main runs: main waits on the object; a callback throws into it (its wait
 * is over), and a task run later in the same pass, before main, gives the thing back
 * and takes it with timeout 0 (or asks gh_wait_any). Nobody is waiting, so it gets it
 * (before: GH_ETIMEDOUT, the permit, item, room or lock free). */
enum { PM_SEM, PM_WAIT_ANY, PM_QUEUE, PM_QUEUE_PUT, PM_RLOCK };
static int pm_kind;
static gh_sem pm_sem;
static gh_queue pm_q;
static gh_rlock pm_rl;
static gh_event pm_go;
static gh_greenlet pm_main;
static int pm_main_back; /* main's wait returned: the test would test nothing */
static void pm_throw_cb(void *arg) {
    (void)arg;
    ASSERT_OK(gh_throw(pm_main, GH_EINTR));
}
/* The task's take with timeout 0, after giving the thing back: its code. */
static int pm_give_take(void) {
    void *item = NULL;
    gh_waitable w;
    int rc;
    switch (pm_kind) {
    case PM_SEM:
        if (gh_sem_release(pm_sem) != GH_OK) return -1000;
        return gh_sem_acquire(pm_sem, 0);
    case PM_WAIT_ANY:
        if (gh_sem_release(pm_sem) != GH_OK) return -1000;
        memset(&w, 0, sizeof w);
        w.kind = GH_WAIT_SEM;
        w.handle = pm_sem.id;
        return gh_wait_any(&w, 1, 0); /* 0: entry 0 is ready */
    case PM_QUEUE:
        if (gh_queue_put(pm_q, PTR(7), 0) != GH_OK) return -1000;
        rc = gh_queue_get(pm_q, &item, 0);
        return rc == GH_OK && item != PTR(7) ? -1001 : rc;
    case PM_QUEUE_PUT: /* pm_q is full (capacity 1): take its item, put another */
        if (gh_queue_get(pm_q, &item, 0) != GH_OK || item != PTR(5)) return -1000;
        return gh_queue_put(pm_q, PTR(8), 0);
    default:
        if (gh_rlock_release(pm_rl) != GH_OK) return -1000;
        rc = gh_rlock_acquire(pm_rl, 0);
        if (rc == GH_OK && gh_rlock_release(pm_rl) != GH_OK) return -1002;
        return rc;
    }
}
static void *pm_task(void *arg) {
    (void)arg;
    if (pm_kind == PM_RLOCK && gh_rlock_acquire(pm_rl, 0) != GH_OK) return PTR(1);
    if (gh_event_wait(pm_go, GH_FOREVER) != GH_OK) return PTR(2); /* main waits next */
    if (gh_run_callback(pm_throw_cb, NULL) != GH_OK) return PTR(3);
    if (gh_sleep(0) != GH_OK) return PTR(4); /* after the callback, before main */
    if (pm_main_back) return PTR(5);
    return (void *)(intptr_t)pm_give_take();
}
static void pm_run(int kind) {
    gh_greenlet g;
    void *r = PTR(99), *item = NULL;
    pm_kind = kind;
    pm_main = gh_current();
    pm_main_back = 0;
    ASSERT_OK(gh_sem_new(&pm_sem, 0));
    ASSERT_OK(gh_queue_new(&pm_q, kind == PM_QUEUE_PUT ? 1 : 0));
    if (kind == PM_QUEUE_PUT) ASSERT_OK(gh_queue_put(pm_q, PTR(5), 0));
    ASSERT_OK(gh_rlock_new(&pm_rl));
    ASSERT_OK(gh_event_new(&pm_go));
    ASSERT_OK(gh_spawn(&g, pm_task, NULL));
    ASSERT_OK(gh_sleep(0)); /* the task parks on pm_go (holding pm_rl for PM_RLOCK) */
    ASSERT_OK(gh_event_set(pm_go));
    switch (kind) {
    case PM_QUEUE: ASSERT_CODE(gh_queue_get(pm_q, &item, GH_FOREVER), GH_EINTR); break;
    case PM_QUEUE_PUT: ASSERT_CODE(gh_queue_put(pm_q, PTR(6), GH_FOREVER), GH_EINTR); break;
    case PM_RLOCK: ASSERT_CODE(gh_rlock_acquire(pm_rl, GH_FOREVER), GH_EINTR); break;
    default: ASSERT_CODE(gh_sem_acquire(pm_sem, GH_FOREVER), GH_EINTR); break;
    }
    pm_main_back = 1;
    ASSERT_OK(gh_join(g, 1.0, &r));
    ASSERT_EQ(NUM(r), 0);
    /* What the task left: nothing taken twice, nothing lost. */
    switch (kind) {
    case PM_SEM: ASSERT_CODE(gh_sem_acquire(pm_sem, 0), GH_ETIMEDOUT); break;
    case PM_WAIT_ANY: /* gh_wait_any takes nothing */
        ASSERT_OK(gh_sem_acquire(pm_sem, 0));
        ASSERT_CODE(gh_sem_acquire(pm_sem, 0), GH_ETIMEDOUT);
        break;
    case PM_QUEUE: ASSERT_EQ(gh_queue_len(pm_q), 0); break;
    case PM_QUEUE_PUT: /* the task's item only: main's put failed */
        ASSERT_OK(gh_queue_get(pm_q, &item, 0));
        ASSERT_TRUE(item == PTR(8));
        ASSERT_EQ(gh_queue_len(pm_q), 0);
        break;
    default:
        ASSERT_OK(gh_rlock_acquire(pm_rl, 0));
        ASSERT_OK(gh_rlock_release(pm_rl));
        break;
    }
    ASSERT_OK(gh_release(g));
    ASSERT_OK(gh_event_close(pm_go));
    ASSERT_OK(gh_rlock_close(pm_rl));
    ASSERT_OK(gh_queue_close(pm_q));
    ASSERT_OK(gh_sem_close(pm_sem));
}
TEST(nowait_take_past_main_ended_wait) {
    BEGIN();
    pm_run(PM_SEM);
    pm_run(PM_WAIT_ANY);
    pm_run(PM_QUEUE);
    pm_run(PM_QUEUE_PUT);
    pm_run(PM_RLOCK);
    END();
}

/* gh_sem_close with two waiters: both GH_ECLOSED; the handle is stale. */
TEST(sem_close_with_waiters) {
    BEGIN();
    struct op a, b;
    gh_sem s;
    ASSERT_OK(gh_sem_new(&s, 0));
    op_init(&a, OP_SEM_ACQUIRE, 0);
    op_init(&b, OP_SEM_ACQUIRE, 1);
    a.s = b.s = s;
    spawn_op(&a);
    spawn_op(&b);
    settle();
    ASSERT_OK(gh_sem_close(s));
    finish_op(&a);
    finish_op(&b);
    ASSERT_CODE(a.rc, GH_ECLOSED);
    ASSERT_CODE(b.rc, GH_ECLOSED);
    ASSERT_CODE(gh_sem_close(s), GH_EBADHANDLE);
    ASSERT_CODE(gh_sem_release(s), GH_EBADHANDLE);
    ASSERT_CODE(gh_sem_acquire(s, 0), GH_EBADHANDLE);
    ASSERT_CODE(gh_sem_acquire(s, GH_FOREVER), GH_EBADHANDLE);
    END();
}

/* ---- gh_queue --------------------------------------------------------------- */

/* An unbounded queue hands 100 items back in FIFO order; gh_queue_len counts them;
 * NULL is an item like any other. */
TEST(queue_fifo_order_and_len) {
    BEGIN();
    gh_queue q;
    void *x;
    int i;
    ASSERT_OK(gh_queue_new(&q, 0));
    ASSERT_EQ(gh_queue_len(q), 0);
    for (i = 1; i <= 100; i++) ASSERT_OK(gh_queue_put(q, PTR(i), 0));
    ASSERT_OK(gh_queue_put(q, NULL, 0));
    ASSERT_EQ(gh_queue_len(q), 101);
    for (i = 1; i <= 100; i++) {
        ASSERT_OK(gh_queue_get(q, &x, 0));
        ASSERT_EQ(NUM(x), i);
    }
    x = SENTINEL;
    ASSERT_OK(gh_queue_get(q, &x, GH_FOREVER));
    ASSERT_TRUE(x == NULL);
    ASSERT_EQ(gh_queue_len(q), 0);
    ASSERT_CODE(gh_queue_get(q, &x, 0), GH_ETIMEDOUT);
    ASSERT_OK(gh_queue_free(q));
    END();
}

/* Capacity 2: two puts fit, a third with timeout 0 is GH_ETIMEDOUT; a putter blocks
 * while full and is woken by a get that makes room, then its item follows in order. */
TEST(queue_bounded_put_blocks_until_get) {
    BEGIN();
    struct op p;
    gh_queue q;
    void *x;
    ASSERT_OK(gh_queue_new(&q, 2));
    ASSERT_OK(gh_queue_put(q, PTR(1), 0));
    ASSERT_OK(gh_queue_put(q, PTR(2), GH_FOREVER));
    ASSERT_CODE(gh_queue_put(q, PTR(3), 0), GH_ETIMEDOUT);
    ASSERT_EQ(gh_queue_len(q), 2);
    op_init(&p, OP_QUEUE_PUT, 0);
    p.q = q;
    p.item = PTR(3);
    spawn_op(&p);
    settle();
    expect_state(p.self, GH_STATE_WAITING);
    ASSERT_EQ(p.rc, PENDING);
    ASSERT_EQ(gh_queue_len(q), 2);
    ASSERT_OK(gh_queue_get(q, &x, 0));
    ASSERT_EQ(NUM(x), 1);
    finish_op(&p);
    ASSERT_OK(p.rc);
    ASSERT_EQ(gh_queue_len(q), 2);
    ASSERT_OK(gh_queue_get(q, &x, 0));
    ASSERT_EQ(NUM(x), 2);
    ASSERT_OK(gh_queue_get(q, &x, 0));
    ASSERT_EQ(NUM(x), 3);
    ASSERT_OK(gh_queue_free(q));
    END();
}

/* Putters on a full queue (capacity 1) are served in arrival order (1, 3, 0, 2): the
 * items come out in that order. */
TEST(queue_putters_fifo) {
    BEGIN();
    static const int want[4] = {1, 3, 0, 2};
    struct op ops[4];
    gh_queue q;
    void *x;
    int i;
    ASSERT_OK(gh_queue_new(&q, 1));
    ASSERT_OK(gh_queue_put(q, PTR(100), 0));
    for (i = 0; i < 4; i++) {
        op_init(&ops[i], OP_QUEUE_PUT, i);
        ops[i].q = q;
        ops[i].item = PTR(i);
    }
    spawn_in_order(ops, 4, want);
    ASSERT_OK(gh_queue_get(q, &x, 0));
    ASSERT_EQ(NUM(x), 100);
    for (i = 0; i < 4; i++) {
        ASSERT_OK(gh_queue_get(q, &x, GH_FOREVER));
        if (NUM(x) != want[i]) GH_TEST_FAIL_("item %d is %lld, expected %d", i, NUM(x), want[i]);
    }
    for (i = 0; i < 4; i++) {
        finish_op(&ops[i]);
        ASSERT_OK(ops[i].rc);
    }
    expect_order(want, 4);
    ASSERT_EQ(gh_queue_len(q), 0);
    ASSERT_OK(gh_queue_free(q));
    close_gates(ops, 4);
    END();
}

/* Getters on an empty queue are served in arrival order (1, 3, 0, 2): four items put
 * at once go 10 → getter 1, 11 → getter 3, 12 → getter 0, 13 → getter 2. */
TEST(queue_getters_fifo) {
    BEGIN();
    static const int want[4] = {1, 3, 0, 2};
    struct op ops[4];
    gh_queue q;
    int i;
    ASSERT_OK(gh_queue_new(&q, 0));
    for (i = 0; i < 4; i++) {
        op_init(&ops[i], OP_QUEUE_GET, i);
        ops[i].q = q;
    }
    spawn_in_order(ops, 4, want);
    for (i = 0; i < 4; i++) ASSERT_OK(gh_queue_put(q, PTR(10 + i), 0));
    for (i = 0; i < 4; i++) finish_op(&ops[i]);
    for (i = 0; i < 4; i++) {
        ASSERT_OK(ops[want[i]].rc);
        if (NUM(ops[want[i]].got) != 10 + i)
            GH_TEST_FAIL_("getter %d got %lld, expected %d", want[i], NUM(ops[want[i]].got),
                          10 + i);
    }
    expect_order(want, 4);
    ASSERT_EQ(gh_queue_len(q), 0);
    ASSERT_OK(gh_queue_free(q));
    close_gates(ops, 4);
    END();
}

/* "Getters are served FIFO" / "putters are served FIFO": an item put while a getter
 * waits is that getter's — main's get(0) right after the put, before the getter ran,
 * is GH_ETIMEDOUT; room made while a putter waits is that putter's — main's put(0)
 * right after the get is GH_ETIMEDOUT and the putter's item goes in. */
TEST(queue_newcomer_does_not_overtake) {
    BEGIN();
    struct op g, p;
    gh_queue q;
    void *x = SENTINEL;
    ASSERT_OK(gh_queue_new(&q, 1));
    op_init(&g, OP_QUEUE_GET, 0);
    g.q = q;
    spawn_op(&g);
    settle();
    ASSERT_OK(gh_queue_put(q, PTR(5), 0));
    ASSERT_CODE(gh_queue_get(q, &x, 0), GH_ETIMEDOUT);
    ASSERT_TRUE(x == SENTINEL);
    finish_op(&g);
    ASSERT_OK(g.rc);
    ASSERT_EQ(NUM(g.got), 5);

    ASSERT_OK(gh_queue_put(q, PTR(6), 0)); /* full */
    op_init(&p, OP_QUEUE_PUT, 1);
    p.q = q;
    p.item = PTR(7);
    spawn_op(&p);
    settle();
    ASSERT_OK(gh_queue_get(q, &x, 0));
    ASSERT_EQ(NUM(x), 6);
    ASSERT_CODE(gh_queue_put(q, PTR(8), 0), GH_ETIMEDOUT); /* the room is p's */
    finish_op(&p);
    ASSERT_OK(p.rc);
    ASSERT_OK(gh_queue_get(q, &x, 0));
    ASSERT_EQ(NUM(x), 7);
    ASSERT_OK(gh_queue_free(q));
    END();
}

/* Capacity 0 is unbounded: 10000 puts with timeout 0 all succeed, len 10000. */
TEST(queue_unbounded) {
    BEGIN();
    gh_queue q;
    void *x;
    int i;
    ASSERT_OK(gh_queue_new(&q, 0));
    for (i = 0; i < 10000; i++) ASSERT_OK(gh_queue_put(q, PTR(i), 0));
    ASSERT_EQ(gh_queue_len(q), 10000);
    for (i = 0; i < 10000; i++) {
        ASSERT_OK(gh_queue_get(q, &x, 0));
        if (NUM(x) != i) GH_TEST_FAIL_("item %d is %lld", i, NUM(x));
    }
    ASSERT_EQ(gh_queue_len(q), 0);
    ASSERT_OK(gh_queue_free(q));
    END();
}

/* gh_queue_get on an empty queue: timeout 0 GH_ETIMEDOUT; 20 ms GH_ETIMEDOUT after
 * >= 18 ms; NaN GH_EINVAL; a NULL item pointer GH_EINVAL (also with GH_FOREVER and on a
 * non-empty queue, whose item then stays). FAULTS 1, 7. */
TEST(queue_get_timeout_and_null) {
    BEGIN();
    gh_queue q;
    void *x = SENTINEL;
    double t0;
    ASSERT_OK(gh_queue_new(&q, 0));
    ASSERT_CODE(gh_queue_get(q, &x, 0), GH_ETIMEDOUT);
    t0 = gh_test_now();
    ASSERT_CODE(gh_queue_get(q, &x, 0.02), GH_ETIMEDOUT);
    ASSERT_GE((gh_test_now() - t0) * 1000, 18);
    ASSERT_CODE(gh_queue_get(q, &x, NAN), GH_EINVAL);
    ASSERT_TRUE(x == SENTINEL);
    ASSERT_CODE(gh_queue_get(q, NULL, 0), GH_EINVAL);
    ASSERT_CODE(gh_queue_get(q, NULL, GH_FOREVER), GH_EINVAL);
    ASSERT_OK(gh_queue_put(q, PTR(7), 0));
    ASSERT_CODE(gh_queue_get(q, NULL, 0), GH_EINVAL);
    ASSERT_CODE(gh_queue_get(q, &x, NAN), GH_EINVAL);
    ASSERT_EQ(gh_queue_len(q), 1);
    ASSERT_OK(gh_queue_get(q, &x, 0));
    ASSERT_EQ(NUM(x), 7);
    ASSERT_OK(gh_queue_free(q));
    END();
}

/* gh_queue_put on a full queue (capacity 1): timeout 0 GH_ETIMEDOUT, 20 ms
 * GH_ETIMEDOUT after >= 18 ms, NaN GH_EINVAL; none of them added anything. */
TEST(queue_put_timeout) {
    BEGIN();
    gh_queue q;
    void *x;
    double t0;
    ASSERT_OK(gh_queue_new(&q, 1));
    ASSERT_CODE(gh_queue_put(q, PTR(1), NAN), GH_EINVAL);
    ASSERT_EQ(gh_queue_len(q), 0);
    ASSERT_OK(gh_queue_put(q, PTR(2), 0));
    ASSERT_CODE(gh_queue_put(q, PTR(3), 0), GH_ETIMEDOUT);
    t0 = gh_test_now();
    ASSERT_CODE(gh_queue_put(q, PTR(4), 0.02), GH_ETIMEDOUT);
    ASSERT_GE((gh_test_now() - t0) * 1000, 18);
    ASSERT_CODE(gh_queue_put(q, PTR(5), NAN), GH_EINVAL);
    ASSERT_EQ(gh_queue_len(q), 1);
    ASSERT_OK(gh_queue_get(q, &x, 0));
    ASSERT_EQ(NUM(x), 2);
    ASSERT_CODE(gh_queue_get(q, &x, 0), GH_ETIMEDOUT);
    ASSERT_OK(gh_queue_free(q));
    END();
}

/* gh_queue_close with two putters waiting on a full queue (capacity 2): both get
 * GH_ECLOSED and their items are not added; later puts (0 and GH_FOREVER) are
 * GH_ECLOSED; getters drain the two items in order, then get GH_ECLOSED at once
 * (timeout 0 and GH_FOREVER); the handle stays valid (len 0) until gh_queue_free. */
TEST(queue_close_with_putters) {
    BEGIN();
    struct op p1, p2;
    gh_queue q;
    void *x;
    ASSERT_OK(gh_queue_new(&q, 2));
    ASSERT_OK(gh_queue_put(q, PTR(1), 0));
    ASSERT_OK(gh_queue_put(q, PTR(2), 0));
    op_init(&p1, OP_QUEUE_PUT, 0);
    op_init(&p2, OP_QUEUE_PUT, 1);
    p1.q = p2.q = q;
    p1.item = PTR(3);
    p2.item = PTR(4);
    spawn_op(&p1);
    spawn_op(&p2);
    settle();
    ASSERT_OK(gh_queue_close(q));
    finish_op(&p1);
    finish_op(&p2);
    ASSERT_CODE(p1.rc, GH_ECLOSED);
    ASSERT_CODE(p2.rc, GH_ECLOSED);
    ASSERT_CODE(gh_queue_put(q, PTR(5), 0), GH_ECLOSED);
    ASSERT_CODE(gh_queue_put(q, PTR(5), GH_FOREVER), GH_ECLOSED);
    ASSERT_EQ(gh_queue_len(q), 2);
    ASSERT_OK(gh_queue_get(q, &x, 0));
    ASSERT_EQ(NUM(x), 1);
    ASSERT_OK(gh_queue_get(q, &x, GH_FOREVER));
    ASSERT_EQ(NUM(x), 2);
    x = SENTINEL;
    ASSERT_CODE(gh_queue_get(q, &x, 0), GH_ECLOSED);
    ASSERT_CODE(gh_queue_get(q, &x, GH_FOREVER), GH_ECLOSED);
    ASSERT_TRUE(x == SENTINEL);
    ASSERT_EQ(gh_queue_len(q), 0);
    ASSERT_OK(gh_queue_free(q));
    ASSERT_CODE(gh_queue_len(q), GH_EBADHANDLE);
    END();
}

/* gh_queue_close with three getters waiting on an empty queue: all GH_ECLOSED. */
TEST(queue_close_with_getters) {
    BEGIN();
    struct op g[3];
    gh_queue q;
    int i;
    ASSERT_OK(gh_queue_new(&q, 0));
    for (i = 0; i < 3; i++) {
        op_init(&g[i], OP_QUEUE_GET, i);
        g[i].q = q;
        spawn_op(&g[i]);
    }
    settle();
    ASSERT_OK(gh_queue_close(q));
    for (i = 0; i < 3; i++) {
        finish_op(&g[i]);
        ASSERT_CODE(g[i].rc, GH_ECLOSED);
        ASSERT_TRUE(g[i].got == SENTINEL);
    }
    ASSERT_OK(gh_queue_free(q));
    END();
}

/* Waiters on both sides at close time, on a capacity-1 queue: getters g1, g2 wait on
 * the empty queue; closer c is spawned (it will run first); main puts X — handed to
 * g1, which has not run yet, so g2 is still listed — then puts Y and waits as a putter
 * on the now full queue. c closes the queue: main's put is GH_ECLOSED (Y never
 * enters), g1 gets X (it was handed X first: FIFO), g2 gets GH_ECLOSED. Then: close
 * with 2 items left and 3 getters arriving to drain them — the first two drain in
 * order, the third gets GH_ECLOSED. */
static void *close_queue_fn(void *arg) {
    int rc = gh_queue_close(*(gh_queue *)arg);
    log_id(99);
    return PTR(rc == GH_OK);
}
TEST(queue_close_both_sides) {
    BEGIN();
    struct op g1, g2, d[3];
    gh_greenlet c;
    gh_queue q;
    void *r = NULL;
    int i;
    ASSERT_OK(gh_queue_new(&q, 1));
    op_init(&g1, OP_QUEUE_GET, 1);
    op_init(&g2, OP_QUEUE_GET, 2);
    g1.q = g2.q = q;
    spawn_op(&g1);
    settle();
    spawn_op(&g2);
    settle();
    ASSERT_OK(gh_spawn(&c, close_queue_fn, &q));
    ASSERT_OK(gh_queue_put(q, PTR(1), 0));
    ASSERT_EQ(gh_queue_len(q), 1);
    ASSERT_CODE(gh_queue_put(q, PTR(2), GH_FOREVER), GH_ECLOSED);
    ASSERT_OK(gh_join(c, GH_FOREVER, &r));
    ASSERT_EQ(NUM(r), 1);
    ASSERT_OK(gh_release(c));
    finish_op(&g1);
    finish_op(&g2);
    ASSERT_EQ(order_log[0], 99); /* the close came before any getter ran */
    ASSERT_OK(g1.rc);
    ASSERT_EQ(NUM(g1.got), 1);
    ASSERT_CODE(g2.rc, GH_ECLOSED);
    ASSERT_TRUE(g2.got == SENTINEL);
    ASSERT_EQ(gh_queue_len(q), 0);
    ASSERT_OK(gh_queue_free(q));

    /* close with 2 items left while 3 getters arrive to drain */
    ASSERT_OK(gh_queue_new(&q, 0));
    ASSERT_OK(gh_queue_put(q, PTR(10), 0));
    ASSERT_OK(gh_queue_put(q, PTR(11), 0));
    ASSERT_OK(gh_queue_close(q));
    for (i = 0; i < 3; i++) {
        op_init(&d[i], OP_QUEUE_GET, i);
        d[i].q = q;
        spawn_op(&d[i]);
    }
    for (i = 0; i < 3; i++) finish_op(&d[i]);
    ASSERT_OK(d[0].rc);
    ASSERT_EQ(NUM(d[0].got), 10);
    ASSERT_OK(d[1].rc);
    ASSERT_EQ(NUM(d[1].got), 11);
    ASSERT_CODE(d[2].rc, GH_ECLOSED);
    ASSERT_OK(gh_queue_free(q));
    END();
}

/* A putter woken (room made) and then the queue closed before it ran: its put is
 * GH_ECLOSED and its item never enters the queue. */
TEST(queue_close_putter_woken_before_it_ran) {
    BEGIN();
    struct op p;
    gh_queue q;
    void *x;
    ASSERT_OK(gh_queue_new(&q, 1));
    ASSERT_OK(gh_queue_put(q, PTR(1), 0));
    op_init(&p, OP_QUEUE_PUT, 0);
    p.q = q;
    p.item = PTR(2);
    spawn_op(&p);
    settle();
    ASSERT_OK(gh_queue_get(q, &x, 0));
    ASSERT_OK(gh_queue_close(q));
    finish_op(&p);
    ASSERT_CODE(p.rc, GH_ECLOSED);
    ASSERT_EQ(gh_queue_len(q), 0);
    ASSERT_CODE(gh_queue_get(q, &x, 0), GH_ECLOSED);
    ASSERT_OK(gh_queue_free(q));
    END();
}

/* No lost item (FAULTS 11): getters a, b, c wait; an item is put and a is killed in
 * the same turn (from main, then from a hub callback): a returns GH_ECANCELED, b gets
 * the item, c keeps waiting and gets the next one. Also with gh_throw(a, GH_ETIMEDOUT)
 * instead of the kill. */
static gh_queue kill_q;
static void put_and_kill_cb(void *arg) {
    (void)arg;
    if (gh_queue_put(kill_q, PTR(1), GH_FOREVER) != GH_OK) return; /* room: no wait */
    (void)gh_kill(kill_ops[0].self, 0);
}
TEST(queue_item_to_killed_getter_passes_on) {
    BEGIN();
    int round;
    for (round = 0; round < 3; round++) {
        struct op ops[3];
        int i;
        ASSERT_OK(gh_queue_new(&kill_q, 0));
        for (i = 0; i < 3; i++) {
            op_init(&ops[i], OP_QUEUE_GET, i);
            ops[i].q = kill_q;
            spawn_op(&ops[i]);
            settle();
        }
        if (round == 0) {
            ASSERT_OK(gh_queue_put(kill_q, PTR(1), 0));
            ASSERT_OK(gh_kill(ops[0].self, 0));
        } else if (round == 1) {
            kill_ops = ops;
            ASSERT_OK(gh_run_callback(put_and_kill_cb, NULL));
        } else {
            ASSERT_OK(gh_queue_put(kill_q, PTR(1), 0));
            ASSERT_OK(gh_throw(ops[0].self, GH_ETIMEDOUT));
        }
        settle();
        ASSERT_CODE(ops[0].rc, round == 2 ? GH_ETIMEDOUT : GH_ECANCELED);
        ASSERT_TRUE(ops[0].got == SENTINEL);
        ASSERT_OK(ops[1].rc);
        ASSERT_EQ(NUM(ops[1].got), 1);
        ASSERT_EQ(ops[2].rc, PENDING);
        ASSERT_EQ(gh_queue_len(kill_q), 0);
        ASSERT_OK(gh_queue_put(kill_q, PTR(2), 0));
        for (i = 0; i < 3; i++) finish_op(&ops[i]);
        ASSERT_OK(ops[2].rc);
        ASSERT_EQ(NUM(ops[2].got), 2);
        ASSERT_EQ(gh_queue_len(kill_q), 0);
        ASSERT_OK(gh_queue_free(kill_q));
        n_order = 0;
    }
    END();
}

/* No lost item when a real timeout races the hand-off: getter a (10 ms timeout) and b
 * (forever) wait; main blocks the thread past a's deadline, then puts X. Either a took
 * X (GH_OK) and b still waits, or a timed out and b has X; then Y is put. In the end X
 * and Y were each received exactly once or are still in the queue — never lost. */
TEST(queue_item_to_timed_out_getter_passes_on) {
    BEGIN();
    struct op a, b;
    gh_queue q;
    int seen_x = 0, seen_y = 0;
    void *x;
    ASSERT_OK(gh_queue_new(&q, 0));
    op_init(&a, OP_QUEUE_GET, 0);
    op_init(&b, OP_QUEUE_GET, 1);
    a.q = b.q = q;
    a.timeout = 0.01;
    spawn_op(&a);
    settle();
    spawn_op(&b);
    settle();
    usleep(30000);
    ASSERT_OK(gh_queue_put(q, PTR(1), 0));
    ASSERT_OK(gh_sleep(0.02));
    finish_op(&a);
    if (a.rc == GH_OK) {
        ASSERT_EQ(NUM(a.got), 1);
        ASSERT_EQ(b.rc, PENDING);
    } else {
        ASSERT_CODE(a.rc, GH_ETIMEDOUT);
        ASSERT_OK(b.rc);
        ASSERT_EQ(NUM(b.got), 1);
    }
    ASSERT_OK(gh_queue_put(q, PTR(2), 0));
    settle();
    finish_op(&b);
    if (a.rc == GH_OK) seen_x++;
    if (b.rc == GH_OK && NUM(b.got) == 1) seen_x++;
    if (b.rc == GH_OK && NUM(b.got) == 2) seen_y++;
    while (gh_queue_get(q, &x, 0) == GH_OK) {
        if (NUM(x) == 1) seen_x++;
        if (NUM(x) == 2) seen_y++;
    }
    ASSERT_EQ(seen_x, 1);
    ASSERT_EQ(seen_y, 1);
    ASSERT_OK(gh_queue_free(q));
    END();
}

/* No lost room: putters p1, p2 wait on a full capacity-1 queue; main takes an item and
 * kills p1 in the same turn: p1 GH_ECANCELED (its item not added), p2's item goes in. */
TEST(queue_room_to_killed_putter_passes_on) {
    BEGIN();
    struct op p1, p2;
    gh_queue q;
    void *x;
    ASSERT_OK(gh_queue_new(&q, 1));
    ASSERT_OK(gh_queue_put(q, PTR(1), 0));
    op_init(&p1, OP_QUEUE_PUT, 0);
    op_init(&p2, OP_QUEUE_PUT, 1);
    p1.q = p2.q = q;
    p1.item = PTR(2);
    p2.item = PTR(3);
    spawn_op(&p1);
    settle();
    spawn_op(&p2);
    settle();
    ASSERT_OK(gh_queue_get(q, &x, 0));
    ASSERT_EQ(NUM(x), 1);
    ASSERT_OK(gh_kill(p1.self, 0));
    finish_op(&p1);
    finish_op(&p2);
    ASSERT_CODE(p1.rc, GH_ECANCELED);
    ASSERT_OK(p2.rc);
    ASSERT_EQ(gh_queue_len(q), 1);
    ASSERT_OK(gh_queue_get(q, &x, 0));
    ASSERT_EQ(NUM(x), 3);
    ASSERT_OK(gh_queue_free(q));
    END();
}

/* gh_queue_free with a waiting getter (empty queue) and, on another queue, a waiting
 * putter (full queue): both wake with GH_ECLOSED; the handles are stale. Freeing a
 * queue with items in it drops them (nothing to free: plain numbers). */
TEST(queue_free_with_waiters) {
    BEGIN();
    struct op g, p;
    gh_queue qe, qf;
    ASSERT_OK(gh_queue_new(&qe, 0));
    ASSERT_OK(gh_queue_new(&qf, 1));
    ASSERT_OK(gh_queue_put(qf, PTR(1), 0));
    op_init(&g, OP_QUEUE_GET, 0);
    op_init(&p, OP_QUEUE_PUT, 1);
    g.q = qe;
    p.q = qf;
    p.item = PTR(2);
    spawn_op(&g);
    spawn_op(&p);
    settle();
    ASSERT_OK(gh_queue_free(qe));
    ASSERT_OK(gh_queue_free(qf));
    finish_op(&g);
    finish_op(&p);
    ASSERT_CODE(g.rc, GH_ECLOSED);
    ASSERT_CODE(p.rc, GH_ECLOSED);
    ASSERT_CODE(gh_queue_free(qe), GH_EBADHANDLE);
    ASSERT_CODE(gh_queue_len(qf), GH_EBADHANDLE);
    ASSERT_CODE(gh_queue_close(qf), GH_EBADHANDLE);
    ASSERT_CODE(gh_queue_put(qe, NULL, 0), GH_EBADHANDLE);
    END();
}

/* ---- gh_waiter -------------------------------------------------------------- */

/* A switch before anyone waits keeps the value: the next get (timeout 0) returns it;
 * the value is taken once (a second get times out); a NULL out-pointer takes it too. */
TEST(waiter_switch_before_get) {
    BEGIN();
    gh_waiter w;
    void *v = NULL;
    ASSERT_OK(gh_waiter_new(&w));
    ASSERT_OK(gh_waiter_switch(w, PTR(11)));
    ASSERT_OK(gh_waiter_get(w, 0, &v));
    ASSERT_EQ(NUM(v), 11);
    ASSERT_CODE(gh_waiter_get(w, 0, &v), GH_ETIMEDOUT);
    ASSERT_OK(gh_waiter_switch(w, PTR(12)));
    ASSERT_OK(gh_waiter_get(w, GH_FOREVER, NULL));
    ASSERT_CODE(gh_waiter_get(w, 0, &v), GH_ETIMEDOUT);
    ASSERT_OK(gh_waiter_switch(w, NULL)); /* NULL is a value too */
    v = SENTINEL;
    ASSERT_OK(gh_waiter_get(w, 0, &v));
    ASSERT_TRUE(v == NULL);
    ASSERT_OK(gh_waiter_close(w));
    END();
}

/* A get before the switch waits; the switch wakes it with the value. */
TEST(waiter_get_before_switch) {
    BEGIN();
    struct op g;
    gh_waiter w;
    ASSERT_OK(gh_waiter_new(&w));
    op_init(&g, OP_WAITER_GET, 0);
    g.w = w;
    spawn_op(&g);
    settle();
    expect_state(g.self, GH_STATE_WAITING);
    ASSERT_OK(gh_waiter_switch(w, PTR(21)));
    finish_op(&g);
    ASSERT_OK(g.rc);
    ASSERT_EQ(NUM(g.got), 21);
    ASSERT_OK(gh_waiter_close(w));
    END();
}

/* gh_waiter_switch from hub callbacks: a gh_run_callback callback wakes main waiting
 * in gh_waiter_get (GH_FOREVER); a timer watcher's callback wakes a greenlet. */
static void waiter_switch_cb(void *arg) { (void)gh_waiter_switch(*(gh_waiter *)arg, PTR(31)); }
static int timer_switch_rc = PENDING;
static void waiter_switch_timer(gh_watcher t, int revents, void *arg) {
    (void)t;
    (void)revents;
    timer_switch_rc = gh_waiter_switch(*(gh_waiter *)arg, PTR(32));
}
TEST(waiter_switch_from_callbacks) {
    BEGIN();
    struct op g;
    gh_waiter w1, w2;
    gh_watcher t;
    void *v = NULL;
    ASSERT_OK(gh_waiter_new(&w1));
    ASSERT_OK(gh_waiter_new(&w2));
    ASSERT_OK(gh_run_callback(waiter_switch_cb, &w1));
    ASSERT_OK(gh_waiter_get(w1, GH_FOREVER, &v));
    ASSERT_EQ(NUM(v), 31);
    op_init(&g, OP_WAITER_GET, 0);
    g.w = w2;
    spawn_op(&g);
    ASSERT_OK(gh_timer_new(&t, 0.01, 0));
    ASSERT_OK(gh_watcher_start(t, waiter_switch_timer, &w2));
    finish_op(&g);
    ASSERT_OK(timer_switch_rc);
    ASSERT_OK(g.rc);
    ASSERT_EQ(NUM(g.got), 32);
    ASSERT_OK(gh_watcher_close(t));
    ASSERT_OK(gh_waiter_close(w1));
    ASSERT_OK(gh_waiter_close(w2));
    END();
}

/* A second switch while a value is pending is GH_EBUSY and does not replace it. */
TEST(waiter_second_switch_ebusy) {
    BEGIN();
    gh_waiter w;
    void *v = NULL;
    ASSERT_OK(gh_waiter_new(&w));
    ASSERT_OK(gh_waiter_switch(w, PTR(1)));
    ASSERT_CODE(gh_waiter_switch(w, PTR(2)), GH_EBUSY);
    ASSERT_CODE(gh_waiter_switch(w, NULL), GH_EBUSY);
    ASSERT_OK(gh_waiter_get(w, 0, &v));
    ASSERT_EQ(NUM(v), 1);
    ASSERT_OK(gh_waiter_switch(w, PTR(3))); /* taken: the slot is free again */
    ASSERT_OK(gh_waiter_close(w));
    END();
}

/* While a greenlet waits in gh_waiter_get, a second getter (main with timeout 0 and
 * 10 ms, another greenlet with GH_FOREVER) is GH_EBUSY — also after the switch, until
 * the woken getter has run: the value is its. */
TEST(waiter_second_getter_ebusy) {
    BEGIN();
    struct op a, b;
    gh_waiter w;
    void *v = SENTINEL;
    ASSERT_OK(gh_waiter_new(&w));
    op_init(&a, OP_WAITER_GET, 0);
    op_init(&b, OP_WAITER_GET, 1);
    a.w = b.w = w;
    spawn_op(&a);
    settle();
    ASSERT_CODE(gh_waiter_get(w, 0, &v), GH_EBUSY);
    ASSERT_CODE(gh_waiter_get(w, 0.01, &v), GH_EBUSY);
    spawn_op(&b);
    settle();
    ASSERT_CODE(b.rc, GH_EBUSY);
    ASSERT_OK(gh_waiter_switch(w, PTR(41)));
    ASSERT_CODE(gh_waiter_get(w, 0, &v), GH_EBUSY); /* a was woken but has not run */
    ASSERT_TRUE(v == SENTINEL);
    finish_op(&a);
    finish_op(&b);
    ASSERT_OK(a.rc);
    ASSERT_EQ(NUM(a.got), 41);
    ASSERT_OK(gh_waiter_close(w));
    END();
}

/* gh_waiter_get timeouts: 0 and 20 ms (>= 18 ms) GH_ETIMEDOUT, NaN GH_EINVAL, the
 * out-pointer untouched; after a timed-out get, a switch is kept for the next get. */
TEST(waiter_get_timeout) {
    BEGIN();
    gh_waiter w;
    void *v = SENTINEL;
    double t0;
    ASSERT_OK(gh_waiter_new(&w));
    ASSERT_CODE(gh_waiter_get(w, 0, &v), GH_ETIMEDOUT);
    t0 = gh_test_now();
    ASSERT_CODE(gh_waiter_get(w, 0.02, &v), GH_ETIMEDOUT);
    ASSERT_GE((gh_test_now() - t0) * 1000, 18);
    ASSERT_CODE(gh_waiter_get(w, NAN, &v), GH_EINVAL);
    ASSERT_TRUE(v == SENTINEL);
    ASSERT_OK(gh_waiter_switch(w, PTR(51)));
    ASSERT_CODE(gh_waiter_get(w, NAN, &v), GH_EINVAL); /* does not consume it */
    ASSERT_OK(gh_waiter_get(w, 0, &v));
    ASSERT_EQ(NUM(v), 51);
    ASSERT_OK(gh_waiter_close(w));
    END();
}

/* gh_waiter_close with a waiting getter: GH_ECLOSED; with a pending value: dropped;
 * the handles are stale. */
TEST(waiter_close_with_waiter) {
    BEGIN();
    struct op g;
    gh_waiter w, w2;
    ASSERT_OK(gh_waiter_new(&w));
    ASSERT_OK(gh_waiter_new(&w2));
    op_init(&g, OP_WAITER_GET, 0);
    g.w = w;
    spawn_op(&g);
    settle();
    ASSERT_OK(gh_waiter_close(w));
    finish_op(&g);
    ASSERT_CODE(g.rc, GH_ECLOSED);
    ASSERT_TRUE(g.got == SENTINEL);
    ASSERT_OK(gh_waiter_switch(w2, PTR(1)));
    ASSERT_OK(gh_waiter_close(w2));
    ASSERT_CODE(gh_waiter_close(w), GH_EBADHANDLE);
    ASSERT_CODE(gh_waiter_switch(w, NULL), GH_EBADHANDLE);
    ASSERT_CODE(gh_waiter_get(w2, 0, NULL), GH_EBADHANDLE);
    ASSERT_CODE(gh_waiter_get(w2, GH_FOREVER, NULL), GH_EBADHANDLE);
    END();
}

/* No lost value (FAULTS 11): a value switched to a waiting greenlet that is then
 * killed (or thrown at) before it ran stays in the waiter for the next get. */
TEST(waiter_value_to_killed_getter_kept) {
    BEGIN();
    int round;
    for (round = 0; round < 2; round++) {
        struct op g;
        gh_waiter w;
        void *v = NULL;
        ASSERT_OK(gh_waiter_new(&w));
        op_init(&g, OP_WAITER_GET, 0);
        g.w = w;
        spawn_op(&g);
        settle();
        ASSERT_OK(gh_waiter_switch(w, PTR(61)));
        if (round == 0) ASSERT_OK(gh_kill(g.self, 0));
        else ASSERT_OK(gh_throw(g.self, GH_ETIMEDOUT));
        finish_op(&g);
        ASSERT_CODE(g.rc, round == 0 ? GH_ECANCELED : GH_ETIMEDOUT);
        ASSERT_TRUE(g.got == SENTINEL);
        ASSERT_OK(gh_waiter_get(w, 0, &v));
        ASSERT_EQ(NUM(v), 61);
        ASSERT_OK(gh_waiter_close(w));
    }
    END();
}

/* ---- kill, handles, callbacks, LOOPEXIT -------------------------------------- */

/* gh_kill of a greenlet blocked (GH_FOREVER) in each primitive: the call returns
 * GH_ECANCELED, writes no out-pointer, and the primitive stays consistent (the killed
 * waiter is gone: main can take a new permit / item / value at once, the event and
 * result still work). FAULTS 11. */
TEST(kill_blocked_in_each_primitive) {
    BEGIN();
    static const int kinds[] = {OP_SLEEP,       OP_JOIN,      OP_READ,
                                OP_EVENT_WAIT,  OP_RESULT_GET, OP_SEM_ACQUIRE,
                                OP_QUEUE_GET,   OP_QUEUE_PUT, OP_WAITER_GET, OP_POOL};
    enum { NK = sizeof kinds / sizeof kinds[0] };
    struct op ops[NK];
    gh_greenlet victim;
    gh_event e;
    gh_result r;
    gh_sem s;
    gh_queue qe, qf;
    gh_waiter w;
    int p[2], i;
    void *x;
    ASSERT_OK(pipe(p));
    ASSERT_OK(gh_spawn(&victim, sleep_forever, NULL));
    ASSERT_OK(gh_event_new(&e));
    ASSERT_OK(gh_result_new(&r));
    ASSERT_OK(gh_sem_new(&s, 0));
    ASSERT_OK(gh_queue_new(&qe, 0));
    ASSERT_OK(gh_queue_new(&qf, 1));
    ASSERT_OK(gh_queue_put(qf, PTR(1), 0));
    ASSERT_OK(gh_waiter_new(&w));
    for (i = 0; i < NK; i++) {
        struct op *o = &ops[i];
        op_init(o, kinds[i], i);
        o->g = victim;
        o->fd = p[0];
        o->e = e;
        o->r = r;
        o->s = s;
        o->q = kinds[i] == OP_QUEUE_PUT ? qf : qe;
        o->item = PTR(2);
        o->w = w;
        spawn_op(o);
    }
    settle();
    for (i = 0; i < NK; i++) expect_state(ops[i].self, GH_STATE_WAITING);
    for (i = 0; i < NK; i++) ASSERT_OK(gh_kill(ops[i].self, 0));
    for (i = 0; i < NK; i++) {
        finish_op(&ops[i]);
        if (ops[i].rc != GH_ECANCELED)
            GH_TEST_FAIL_("killed in %s: %s, expected GH_ECANCELED", OP_NAMES[kinds[i]],
                          gh_err_name(ops[i].rc));
        if (kinds[i] != OP_SLEEP && ops[i].got != SENTINEL)
            GH_TEST_FAIL_("killed in %s: out-pointer written", OP_NAMES[kinds[i]]);
    }
    expect_state(victim, GH_STATE_WAITING);
    ASSERT_OK(gh_sem_release(s));
    ASSERT_OK(gh_sem_acquire(s, 0));
    ASSERT_OK(gh_queue_put(qe, PTR(3), 0));
    ASSERT_OK(gh_queue_get(qe, &x, 0));
    ASSERT_EQ(NUM(x), 3);
    ASSERT_EQ(gh_queue_len(qf), 1);
    ASSERT_OK(gh_queue_get(qf, &x, 0));
    ASSERT_EQ(NUM(x), 1);
    ASSERT_OK(gh_queue_put(qf, PTR(4), 0));
    ASSERT_OK(gh_waiter_switch(w, PTR(5)));
    ASSERT_OK(gh_waiter_get(w, 0, &x));
    ASSERT_EQ(NUM(x), 5);
    ASSERT_OK(gh_event_set(e));
    ASSERT_OK(gh_event_wait(e, 0));
    ASSERT_OK(gh_result_set(r, PTR(6)));
    ASSERT_OK(gh_result_get(r, 0, &x));
    ASSERT_EQ(NUM(x), 6);
    ASSERT_EQ(write(p[1], "z", 1), 1);
    {
        char c = 0;
        ASSERT_EQ(gh_read(p[0], &c, 1, 0), 1); /* the killed reader freed the fd */
    }
    ASSERT_OK(gh_kill(victim, GH_FOREVER));
    ASSERT_OK(gh_release(victim));
    ASSERT_OK(gh_event_close(e));
    ASSERT_OK(gh_result_close(r));
    ASSERT_OK(gh_sem_close(s));
    ASSERT_OK(gh_queue_free(qe));
    ASSERT_OK(gh_queue_free(qf));
    ASSERT_OK(gh_waiter_close(w));
    ASSERT_OK(gh_sleep(0.06)); /* the abandoned pool call finishes */
    ASSERT_OK(gh_close(p[0]));
    close(p[1]);
    END();
}

/* The table of every function taking a sync handle, as `int f(uint64_t id)`. Blocking
 * ones appear with timeout 0 and GH_FOREVER (a bad handle must be refused before any
 * waiting); the destructive one of each kind comes last within its kind. */
enum { K_TIMEOUT, K_EVENT, K_RESULT, K_SEM, K_QUEUE, K_WAITER, K_N };
static const char *const K_NAMES[K_N] = {"timeout", "event", "result", "sem", "queue",
                                         "waiter"};

static int s_to_cancel(uint64_t id) { gh_timeout t = {id}; return gh_timeout_cancel(t); }
static int s_ev_set(uint64_t id) { gh_event e = {id}; return gh_event_set(e); }
static int s_ev_clear(uint64_t id) { gh_event e = {id}; return gh_event_clear(e); }
static int s_ev_wait0(uint64_t id) { gh_event e = {id}; return gh_event_wait(e, 0); }
static int s_ev_waitf(uint64_t id) { gh_event e = {id}; return gh_event_wait(e, GH_FOREVER); }
static int s_ev_is_set(uint64_t id) { gh_event e = {id}; return gh_event_is_set(e); }
static int s_ev_close(uint64_t id) { gh_event e = {id}; return gh_event_close(e); }
static int s_r_set(uint64_t id) { gh_result r = {id}; return gh_result_set(r, PTR(1)); }
static int s_r_set_err(uint64_t id) { gh_result r = {id}; return gh_result_set_error(r, -5); }
static int s_r_get0(uint64_t id) { gh_result r = {id}; void *v; return gh_result_get(r, 0, &v); }
static int s_r_getf(uint64_t id) { gh_result r = {id}; return gh_result_get(r, GH_FOREVER, NULL); }
static int s_r_close(uint64_t id) { gh_result r = {id}; return gh_result_close(r); }
static int s_s_acq0(uint64_t id) { gh_sem s = {id}; return gh_sem_acquire(s, 0); }
static int s_s_acqf(uint64_t id) { gh_sem s = {id}; return gh_sem_acquire(s, GH_FOREVER); }
static int s_s_rel(uint64_t id) { gh_sem s = {id}; return gh_sem_release(s); }
static int s_s_close(uint64_t id) { gh_sem s = {id}; return gh_sem_close(s); }
static int s_q_put0(uint64_t id) { gh_queue q = {id}; return gh_queue_put(q, PTR(1), 0); }
static int s_q_putf(uint64_t id) { gh_queue q = {id}; return gh_queue_put(q, PTR(1), GH_FOREVER); }
static int s_q_get0(uint64_t id) { gh_queue q = {id}; void *v; return gh_queue_get(q, &v, 0); }
static int s_q_getf(uint64_t id) {
    gh_queue q = {id};
    void *v;
    return gh_queue_get(q, &v, GH_FOREVER);
}
static int s_q_len(uint64_t id) { gh_queue q = {id}; return (int)gh_queue_len(q); }
static int s_q_close(uint64_t id) { gh_queue q = {id}; return gh_queue_close(q); }
static int s_q_free(uint64_t id) { gh_queue q = {id}; return gh_queue_free(q); }
static int s_w_switch(uint64_t id) { gh_waiter w = {id}; return gh_waiter_switch(w, PTR(1)); }
static int s_w_get0(uint64_t id) { gh_waiter w = {id}; void *v; return gh_waiter_get(w, 0, &v); }
static int s_w_getf(uint64_t id) { gh_waiter w = {id}; return gh_waiter_get(w, GH_FOREVER, NULL); }
static int s_w_close(uint64_t id) { gh_waiter w = {id}; return gh_waiter_close(w); }

static const struct {
    int kind;
    const char *name;
    int (*fn)(uint64_t);
} S_CALLS[] = {
    {K_TIMEOUT, "gh_timeout_cancel", s_to_cancel},
    {K_EVENT, "gh_event_set", s_ev_set},
    {K_EVENT, "gh_event_clear", s_ev_clear},
    {K_EVENT, "gh_event_wait(0)", s_ev_wait0},
    {K_EVENT, "gh_event_wait(forever)", s_ev_waitf},
    {K_EVENT, "gh_event_is_set", s_ev_is_set},
    {K_EVENT, "gh_event_close", s_ev_close},
    {K_RESULT, "gh_result_set", s_r_set},
    {K_RESULT, "gh_result_set_error", s_r_set_err},
    {K_RESULT, "gh_result_get(0)", s_r_get0},
    {K_RESULT, "gh_result_get(forever)", s_r_getf},
    {K_RESULT, "gh_result_close", s_r_close},
    {K_SEM, "gh_sem_acquire(0)", s_s_acq0},
    {K_SEM, "gh_sem_acquire(forever)", s_s_acqf},
    {K_SEM, "gh_sem_release", s_s_rel},
    {K_SEM, "gh_sem_close", s_s_close},
    {K_QUEUE, "gh_queue_put(0)", s_q_put0},
    {K_QUEUE, "gh_queue_put(forever)", s_q_putf},
    {K_QUEUE, "gh_queue_get(0)", s_q_get0},
    {K_QUEUE, "gh_queue_get(forever)", s_q_getf},
    {K_QUEUE, "gh_queue_len", s_q_len},
    {K_QUEUE, "gh_queue_close", s_q_close},
    {K_QUEUE, "gh_queue_free", s_q_free},
    {K_WAITER, "gh_waiter_switch", s_w_switch},
    {K_WAITER, "gh_waiter_get(0)", s_w_get0},
    {K_WAITER, "gh_waiter_get(forever)", s_w_getf},
    {K_WAITER, "gh_waiter_close", s_w_close},
};
#define N_S_CALLS (sizeof S_CALLS / sizeof S_CALLS[0])

/* Calls every function of `kind` (K_N: of every kind) with `id`; returns the number of
 * calls that did not give `code`, reporting each into buf (or failing at once if
 * buf is NULL). */
static int sweep_kind(int kind, uint64_t id, int code, const char *what, char *buf, size_t len) {
    size_t i;
    int bad = 0;
    for (i = 0; i < N_S_CALLS; i++) {
        int rc;
        if (kind != K_N && S_CALLS[i].kind != kind) continue;
        rc = S_CALLS[i].fn(id);
        if (rc == code) continue;
        bad++;
        if (!buf)
            GH_TEST_FAIL_("%s: %s({%#llx}) = %d %s, expected %s", what, S_CALLS[i].name,
                          (unsigned long long)id, rc, gh_err_name(rc), gh_err_name(code));
        else if (strlen(buf) < len - 200)
            snprintf(buf + strlen(buf), len - strlen(buf), "%s: %s = %s, expected %s\n", what,
                     S_CALLS[i].name, gh_err_name(rc), gh_err_name(code));
    }
    return bad;
}

/* One live object of each kind, with known state, for the handle sweeps. */
struct objs {
    uint64_t id[K_N];
};
static void objs_new(struct objs *o) {
    gh_timeout t;
    gh_event e;
    gh_result r;
    gh_sem s;
    gh_queue q;
    gh_waiter w;
    ASSERT_OK(gh_timeout_start(&t, 60));
    ASSERT_OK(gh_event_new(&e));
    ASSERT_OK(gh_result_new(&r));
    ASSERT_OK(gh_sem_new(&s, 2));
    ASSERT_OK(gh_queue_new(&q, 0));
    ASSERT_OK(gh_queue_put(q, PTR(7), 0));
    ASSERT_OK(gh_waiter_new(&w));
    o->id[K_TIMEOUT] = t.id;
    o->id[K_EVENT] = e.id;
    o->id[K_RESULT] = r.id;
    o->id[K_SEM] = s.id;
    o->id[K_QUEUE] = q.id;
    o->id[K_WAITER] = w.id;
}
/* The objects are untouched: event clear, result unset, 2 permits, one item 7, no
 * value in the waiter, the timeout live; then everything is closed. */
static void objs_check_and_close(struct objs *o) {
    gh_timeout t = {o->id[K_TIMEOUT]};
    gh_event e = {o->id[K_EVENT]};
    gh_result r = {o->id[K_RESULT]};
    gh_sem s = {o->id[K_SEM]};
    gh_queue q = {o->id[K_QUEUE]};
    gh_waiter w = {o->id[K_WAITER]};
    void *v = NULL;
    ASSERT_EQ(gh_event_is_set(e), 0);
    ASSERT_CODE(gh_result_get(r, 0, &v), GH_ETIMEDOUT);
    ASSERT_OK(gh_sem_acquire(s, 0));
    ASSERT_OK(gh_sem_acquire(s, 0));
    ASSERT_CODE(gh_sem_acquire(s, 0), GH_ETIMEDOUT);
    ASSERT_EQ(gh_queue_len(q), 1);
    ASSERT_OK(gh_queue_put(q, PTR(8), 0)); /* not closed */
    ASSERT_OK(gh_queue_get(q, &v, 0));
    ASSERT_EQ(NUM(v), 7);
    ASSERT_CODE(gh_waiter_get(w, 0, &v), GH_ETIMEDOUT);
    ASSERT_OK(gh_timeout_cancel(t));
    ASSERT_OK(gh_event_close(e));
    ASSERT_OK(gh_result_close(r));
    ASSERT_OK(gh_sem_close(s));
    ASSERT_OK(gh_queue_free(q));
    ASSERT_OK(gh_waiter_close(w));
}

/* Zero and all-ones handles (before this thread has a hub and after), every
 * single-bit flip of a live handle of each kind, and stale handles (cancelled /
 * closed / freed) to every sync function: GH_EBADHANDLE, never a crash or a wait; the
 * live objects are untouched. FAULTS 2, 3. */
TEST(handles_bad_values) {
    BEGIN();
    struct objs o, dead;
    int k, bit, j;
    sweep_kind(K_N, 0, GH_EBADHANDLE, "zero, no hub yet", NULL, 0);
    sweep_kind(K_N, UINT64_MAX, GH_EBADHANDLE, "all-ones, no hub yet", NULL, 0);
    objs_new(&o);
    objs_new(&dead);
    {
        gh_timeout t = {dead.id[K_TIMEOUT]};
        gh_event e = {dead.id[K_EVENT]};
        gh_result r = {dead.id[K_RESULT]};
        gh_sem s = {dead.id[K_SEM]};
        gh_queue q = {dead.id[K_QUEUE]};
        gh_waiter w = {dead.id[K_WAITER]};
        ASSERT_OK(gh_timeout_cancel(t));
        ASSERT_OK(gh_event_close(e));
        ASSERT_OK(gh_result_close(r));
        ASSERT_OK(gh_sem_close(s));
        ASSERT_OK(gh_queue_free(q));
        ASSERT_OK(gh_waiter_close(w));
    }
    sweep_kind(K_N, 0, GH_EBADHANDLE, "zero", NULL, 0);
    sweep_kind(K_N, UINT64_MAX, GH_EBADHANDLE, "all-ones", NULL, 0);
    for (k = 0; k < K_N; k++) {
        sweep_kind(k, dead.id[k], GH_EBADHANDLE, K_NAMES[k], NULL, 0);
        for (bit = 0; bit < 64; bit++) {
            uint64_t f = o.id[k] ^ ((uint64_t)1 << bit);
            int skip = 0;
            for (j = 0; j < K_N; j++) skip |= f == o.id[j];
            if (!skip) sweep_kind(K_N, f, GH_EBADHANDLE, "one bit flipped", NULL, 0);
        }
    }
    objs_check_and_close(&o);
    END();
}

/* Kind confusion: a live handle of each kind passed to every function of every other
 * kind, and greenlet / watcher / hub-ref ids passed to every sync function:
 * GH_EBADHANDLE; the objects are untouched. */
TEST(handles_kind_confusion) {
    BEGIN();
    struct objs o;
    gh_greenlet g;
    gh_watcher w;
    size_t i;
    int k;
    objs_new(&o);
    ASSERT_OK(gh_spawn(&g, sleep_forever, NULL));
    ASSERT_OK(gh_timer_new(&w, 10, 0));
    settle();
    for (k = 0; k < K_N; k++)
        for (i = 0; i < N_S_CALLS; i++) {
            int rc;
            if (S_CALLS[i].kind == k) continue;
            rc = S_CALLS[i].fn(o.id[k]);
            if (rc != GH_EBADHANDLE)
                GH_TEST_FAIL_("a %s handle to %s: %s, expected GH_EBADHANDLE", K_NAMES[k],
                              S_CALLS[i].name, gh_err_name(rc));
        }
    sweep_kind(K_N, g.id, GH_EBADHANDLE, "greenlet id", NULL, 0);
    sweep_kind(K_N, gh_main().id, GH_EBADHANDLE, "main's id", NULL, 0);
    sweep_kind(K_N, w.id, GH_EBADHANDLE, "watcher id", NULL, 0);
    sweep_kind(K_N, gh_hub_current().id, GH_EBADHANDLE, "hub ref id", NULL, 0);
    /* and the other way round: sync ids to greenlet and watcher functions */
    for (k = 0; k < K_N; k++) {
        gh_greenlet fg = {o.id[k]};
        gh_watcher fw = {o.id[k]};
        ASSERT_CODE(gh_greenlet_state(fg), GH_EBADHANDLE);
        ASSERT_CODE(gh_kill(fg, 0), GH_EBADHANDLE);
        ASSERT_CODE(gh_join(fg, GH_FOREVER, NULL), GH_EBADHANDLE);
        ASSERT_CODE(gh_watcher_active(fw), GH_EBADHANDLE);
        ASSERT_CODE(gh_hub_wait(fw), GH_EBADHANDLE);
        ASSERT_CODE(gh_watcher_close(fw), GH_EBADHANDLE);
    }
    expect_state(g, GH_STATE_WAITING);
    ASSERT_EQ(gh_watcher_active(w), 0);
    objs_check_and_close(&o);
    ASSERT_OK(gh_kill(g, GH_FOREVER));
    ASSERT_OK(gh_release(g));
    ASSERT_OK(gh_watcher_close(w));
    END();
}

/* Another thread calls every sync function with this thread's live handles:
 * GH_EWRONGTHREAD each (blocking ones refused before waiting), and nothing here was
 * touched. After this hub is destroyed, the same handles are GH_EBADHANDLE here and
 * there. FAULTS 5, 17. */
struct other_sweep {
    struct objs *o;
    int code;
    int bad;
    char report[4096];
};
static void *other_thread_sweep(void *arg) {
    struct other_sweep *s = (struct other_sweep *)arg;
    int k;
    s->report[0] = 0;
    for (k = 0; k < K_N; k++)
        s->bad += sweep_kind(k, s->o->id[k], s->code, K_NAMES[k], s->report, sizeof s->report);
    if (gh_hub_destroy() != GH_OK) s->bad++;
    return NULL;
}
TEST(handles_other_thread) {
    BEGIN();
    struct objs o, keep;
    struct other_sweep sw;
    pthread_t t;
    int k;
    objs_new(&o);
    memset(&sw, 0, sizeof sw);
    sw.o = &o;
    sw.code = GH_EWRONGTHREAD;
    ASSERT_OK(pthread_create(&t, NULL, other_thread_sweep, &sw));
    ASSERT_OK(pthread_join(t, NULL));
    if (sw.bad) GH_TEST_FAIL_("%d calls from another thread misbehaved:\n%s", sw.bad, sw.report);
    keep = o;
    objs_check_and_close(&o);
    objs_new(&o);
    ASSERT_OK(gh_hub_destroy());
    memset(&sw, 0, sizeof sw);
    sw.o = &o;
    sw.code = GH_EBADHANDLE;
    ASSERT_OK(pthread_create(&t, NULL, other_thread_sweep, &sw));
    ASSERT_OK(pthread_join(t, NULL));
    if (sw.bad) GH_TEST_FAIL_("%d calls with a destroyed hub's handles:\n%s", sw.bad, sw.report);
    for (k = 0; k < K_N; k++) {
        sweep_kind(k, o.id[k], GH_EBADHANDLE, "destroyed hub", NULL, 0);
        sweep_kind(k, keep.id[k], GH_EBADHANDLE, "closed, destroyed hub", NULL, 0);
    }
    END();
}

/* Handles of this thread's destroyed hub stay GH_EBADHANDLE in its next hub, even
 * after that hub creates objects of every kind (that may reuse the slots). FAULTS 3. */
TEST(handles_destroyed_hub) {
    BEGIN();
    struct objs old, fresh;
    int k, i;
    objs_new(&old);
    ASSERT_OK(gh_hub_destroy());
    for (i = 0; i < 3; i++) {
        objs_new(&fresh);
        for (k = 0; k < K_N; k++) {
            ASSERT_NE(fresh.id[k], old.id[k]);
            sweep_kind(k, old.id[k], GH_EBADHANDLE, K_NAMES[k], NULL, 0);
        }
        objs_check_and_close(&fresh);
    }
    END();
}

/* From a gh_run_callback callback and from a timer watcher's callback: every sync call
 * that would wait (timeouts 1 s and GH_FOREVER) is GH_EPERM at once, as is
 * gh_timeout_start; the non-blocking calls work there and wake the greenlets waiting
 * on the objects: gh_event_set, gh_result_set, gh_sem_release, gh_queue_put on a
 * non-full queue (even with GH_FOREVER), gh_queue_get on a non-empty one,
 * gh_waiter_switch, gh_queue_close. FAULTS 33. */
enum {
    CB_EV1, CB_EVF, CB_R1, CB_RF, CB_S1, CB_SF, CB_QG1, CB_QGF, CB_QP1, CB_QPF, CB_W1, CB_WF,
    CB_TO, CB_POOL, CB_N
};
static const char *const CB_NAMES[CB_N] = {
    "gh_event_wait(1)", "gh_event_wait(forever)", "gh_result_get(1)", "gh_result_get(forever)",
    "gh_sem_acquire(1)", "gh_sem_acquire(forever)", "gh_queue_get(1)", "gh_queue_get(forever)",
    "gh_queue_put(1)", "gh_queue_put(forever)", "gh_waiter_get(1)", "gh_waiter_get(forever)",
    "gh_timeout_start", "gh_threadpool_apply"};
struct cb_world {
    gh_event e;
    gh_result r;
    gh_sem s;
    gh_queue qe, qf, qc;
    gh_waiter w, w_idle; /* w has a greenlet waiting; w_idle nobody (no GH_EBUSY) */
    int rc[CB_N];
    int ok[8];
    void *got;
    int runs;
};
static void cb_body(struct cb_world *c) {
    void *v;
    gh_timeout t;
    int *rc = c->rc;
    rc[CB_EV1] = gh_event_wait(c->e, 1.0);
    rc[CB_EVF] = gh_event_wait(c->e, GH_FOREVER);
    rc[CB_R1] = gh_result_get(c->r, 1.0, &v);
    rc[CB_RF] = gh_result_get(c->r, GH_FOREVER, &v);
    rc[CB_S1] = gh_sem_acquire(c->s, 1.0);
    rc[CB_SF] = gh_sem_acquire(c->s, GH_FOREVER);
    rc[CB_QG1] = gh_queue_get(c->qe, &v, 1.0);
    rc[CB_QGF] = gh_queue_get(c->qe, &v, GH_FOREVER);
    rc[CB_QP1] = gh_queue_put(c->qf, PTR(9), 1.0);
    rc[CB_QPF] = gh_queue_put(c->qf, PTR(9), GH_FOREVER);
    rc[CB_W1] = gh_waiter_get(c->w_idle, 1.0, &v);
    rc[CB_WF] = gh_waiter_get(c->w_idle, GH_FOREVER, &v);
    rc[CB_TO] = gh_timeout_start(&t, 1.0);
    rc[CB_POOL] = gh_threadpool_apply(slow_fn, &pool_arg, &v);
    /* the non-blocking ones */
    c->ok[0] = gh_event_set(c->e);
    c->ok[1] = gh_result_set(c->r, PTR(71));
    c->ok[2] = gh_sem_release(c->s);
    c->ok[3] = gh_queue_put(c->qe, PTR(72), GH_FOREVER);
    c->ok[4] = gh_queue_get(c->qf, &c->got, GH_FOREVER);
    c->ok[5] = gh_waiter_switch(c->w, PTR(73));
    c->ok[6] = gh_queue_close(c->qc);
    c->ok[7] = gh_event_is_set(c->e) == 1 && gh_queue_len(c->qf) == 0 ? GH_OK : -1;
    c->runs++;
}
static void cb_run_callback(void *arg) { cb_body((struct cb_world *)arg); }
static void cb_timer(gh_watcher t, int revents, void *arg) {
    (void)t;
    (void)revents;
    cb_body((struct cb_world *)arg);
}
TEST(blocking_in_callbacks_eperm) {
    BEGIN();
    int round;
    for (round = 0; round < 2; round++) {
        struct cb_world c;
        struct op ops[6];
        gh_watcher t = {0};
        int i;
        memset(&c, 0, sizeof c);
        ASSERT_OK(gh_event_new(&c.e));
        ASSERT_OK(gh_result_new(&c.r));
        ASSERT_OK(gh_sem_new(&c.s, 0));
        ASSERT_OK(gh_queue_new(&c.qe, 0));
        ASSERT_OK(gh_queue_new(&c.qf, 1));
        ASSERT_OK(gh_queue_new(&c.qc, 0));
        ASSERT_OK(gh_queue_put(c.qf, PTR(70), 0));
        ASSERT_OK(gh_waiter_new(&c.w));
        ASSERT_OK(gh_waiter_new(&c.w_idle));
        op_init(&ops[0], OP_EVENT_WAIT, 0);
        op_init(&ops[1], OP_RESULT_GET, 1);
        op_init(&ops[2], OP_SEM_ACQUIRE, 2);
        op_init(&ops[3], OP_QUEUE_GET, 3);
        op_init(&ops[4], OP_WAITER_GET, 4);
        op_init(&ops[5], OP_QUEUE_GET, 5);
        ops[0].e = c.e;
        ops[1].r = c.r;
        ops[2].s = c.s;
        ops[3].q = c.qe;
        ops[4].w = c.w;
        ops[5].q = c.qc;
        for (i = 0; i < 6; i++) spawn_op(&ops[i]);
        settle();
        if (round == 0) {
            ASSERT_OK(gh_run_callback(cb_run_callback, &c));
        } else {
            ASSERT_OK(gh_timer_new(&t, 0.002, 0));
            ASSERT_OK(gh_watcher_start(t, cb_timer, &c));
        }
        for (i = 0; i < 6; i++) finish_op(&ops[i]);
        ASSERT_EQ(c.runs, 1);
        for (i = 0; i < CB_N; i++)
            if (c.rc[i] != GH_EPERM)
                GH_TEST_FAIL_("%s from a %s callback: %s, expected GH_EPERM", CB_NAMES[i],
                              round ? "watcher" : "run_callback", gh_err_name(c.rc[i]));
        for (i = 0; i < 8; i++)
            if (c.ok[i] != GH_OK)
                GH_TEST_FAIL_("non-blocking call %d from a callback: %s", i, gh_err_name(c.ok[i]));
        ASSERT_EQ(NUM(c.got), 70);
        ASSERT_OK(ops[0].rc);
        ASSERT_OK(ops[1].rc);
        ASSERT_EQ(NUM(ops[1].got), 71);
        ASSERT_OK(ops[2].rc);
        ASSERT_OK(ops[3].rc);
        ASSERT_EQ(NUM(ops[3].got), 72);
        ASSERT_OK(ops[4].rc);
        ASSERT_EQ(NUM(ops[4].got), 73);
        ASSERT_CODE(ops[5].rc, GH_ECLOSED);
        /* the refused calls changed nothing */
        ASSERT_CODE(gh_sem_acquire(c.s, 0), GH_ETIMEDOUT);
        ASSERT_EQ(gh_queue_len(c.qe), 0);
        ASSERT_EQ(gh_queue_len(c.qf), 0);
        ASSERT_CODE(gh_waiter_get(c.w, 0, NULL), GH_ETIMEDOUT);
        ASSERT_CODE(gh_waiter_get(c.w_idle, 0, NULL), GH_ETIMEDOUT);
        ASSERT_OK(gh_sleep(0.01)); /* no gh_timeout was started for anyone */
        if (round == 1) ASSERT_OK(gh_watcher_close(t));
        ASSERT_OK(gh_event_close(c.e));
        ASSERT_OK(gh_result_close(c.r));
        ASSERT_OK(gh_sem_close(c.s));
        ASSERT_OK(gh_queue_free(c.qe));
        ASSERT_OK(gh_queue_free(c.qf));
        ASSERT_OK(gh_queue_free(c.qc));
        ASSERT_OK(gh_waiter_close(c.w));
        ASSERT_OK(gh_waiter_close(c.w_idle));
    }
    END();
}

/* Main blocking forever on something nothing can wake — an event nobody sets (also
 * with a greenlet stuck on it too, and under a never-expiring gh_timeout), an unset
 * result, an empty semaphore, an empty queue (get), a full queue (put), an empty
 * waiter — gets GH_ELOOPEXIT at once, and leaves no ghost waiter behind (main can
 * take what is released / put / switched next with timeout 0). A gh_timeout that does
 * expire keeps the loop alive: GH_ETIMEDOUT instead. FAULTS 34. */
TEST(main_blocked_forever_eloopexit) {
    BEGIN();
    gh_event e;
    gh_result r;
    gh_sem s;
    gh_queue qe, qf;
    gh_waiter w;
    gh_timeout t;
    struct op stuck;
    void *v = SENTINEL;
    ASSERT_OK(gh_event_new(&e));
    ASSERT_OK(gh_result_new(&r));
    ASSERT_OK(gh_sem_new(&s, 0));
    ASSERT_OK(gh_queue_new(&qe, 0));
    ASSERT_OK(gh_queue_new(&qf, 1));
    ASSERT_OK(gh_queue_put(qf, PTR(1), 0));
    ASSERT_OK(gh_waiter_new(&w));
    ASSERT_CODE(gh_event_wait(e, GH_FOREVER), GH_ELOOPEXIT);
    ASSERT_CODE(gh_result_get(r, GH_FOREVER, &v), GH_ELOOPEXIT);
    ASSERT_CODE(gh_sem_acquire(s, GH_FOREVER), GH_ELOOPEXIT);
    ASSERT_CODE(gh_queue_get(qe, &v, GH_FOREVER), GH_ELOOPEXIT);
    ASSERT_CODE(gh_queue_put(qf, PTR(2), GH_FOREVER), GH_ELOOPEXIT);
    ASSERT_CODE(gh_waiter_get(w, GH_FOREVER, &v), GH_ELOOPEXIT);
    ASSERT_TRUE(v == SENTINEL);
    op_init(&stuck, OP_EVENT_WAIT, 0);
    stuck.e = e;
    spawn_op(&stuck);
    ASSERT_CODE(gh_event_wait(e, GH_FOREVER), GH_ELOOPEXIT);
    expect_state(stuck.self, GH_STATE_WAITING);
    ASSERT_OK(gh_timeout_start(&t, GH_FOREVER));
    ASSERT_CODE(gh_event_wait(e, -1.0), GH_ELOOPEXIT);
    ASSERT_OK(gh_timeout_cancel(t));
    ASSERT_OK(gh_timeout_start(&t, 0.01));
    ASSERT_CODE(gh_event_wait(e, GH_FOREVER), GH_ETIMEDOUT);
    ASSERT_OK(gh_timeout_cancel(t));
    /* no ghost waiters */
    ASSERT_OK(gh_event_set(e));
    finish_op(&stuck);
    ASSERT_OK(stuck.rc);
    ASSERT_OK(gh_sem_release(s));
    ASSERT_OK(gh_sem_acquire(s, 0));
    ASSERT_OK(gh_queue_put(qe, PTR(3), 0));
    ASSERT_OK(gh_queue_get(qe, &v, 0));
    ASSERT_EQ(NUM(v), 3);
    ASSERT_EQ(gh_queue_len(qf), 1);
    ASSERT_OK(gh_waiter_switch(w, PTR(4)));
    ASSERT_OK(gh_waiter_get(w, 0, &v));
    ASSERT_EQ(NUM(v), 4);
    ASSERT_OK(gh_result_set(r, PTR(5)));
    ASSERT_OK(gh_result_get(r, GH_FOREVER, &v));
    ASSERT_EQ(NUM(v), 5);
    ASSERT_OK(gh_event_close(e));
    ASSERT_OK(gh_result_close(r));
    ASSERT_OK(gh_sem_close(s));
    ASSERT_OK(gh_queue_free(qe));
    ASSERT_OK(gh_queue_free(qf));
    ASSERT_OK(gh_waiter_close(w));
    END();
}

/* ---- BoundedSemaphore, RLock, Condition (issue 14) --------------------------------- */

/* A bounded semaphore refuses a release past its initial value (GH_EOVERFLOW) and keeps
 * its count; an ordinary one counts on. */
TEST(bounded_sem_refuses_extra_release) {
    gh_sem b, s;
    ASSERT_OK(gh_sem_new_bounded(&b, 2));
    ASSERT_CODE(gh_sem_release(b), GH_EOVERFLOW);
    ASSERT_OK(gh_sem_acquire(b, 0));
    ASSERT_OK(gh_sem_acquire(b, 0));
    ASSERT_CODE(gh_sem_acquire(b, 0), GH_ETIMEDOUT);
    ASSERT_OK(gh_sem_release(b));
    ASSERT_OK(gh_sem_release(b));
    ASSERT_CODE(gh_sem_release(b), GH_EOVERFLOW);
    ASSERT_OK(gh_sem_new(&s, 0));
    ASSERT_OK(gh_sem_release(s));
    ASSERT_OK(gh_sem_release(s));
    ASSERT_OK(gh_sem_close(b));
    ASSERT_OK(gh_sem_close(s));
    ASSERT_OK(gh_hub_destroy());
}

/* A bounded semaphore's permit released to a parked waiter stays the semaphore's until
 * that waiter runs: a second release before then is past the bound (GH_EOVERFLOW). A
 * waiter killed after the release and before it ran gives its permit back, to the next
 * waiter; once every waiter has run and released, the count is back at the bound:
 * nothing lost, nothing extra. */
TEST(bounded_sem_counts_permits_handed_to_waiters) {
    BEGIN();
    struct op a, b;
    gh_sem s;
    ASSERT_OK(gh_sem_new_bounded(&s, 1));
    ASSERT_OK(gh_sem_acquire(s, 0)); /* main holds the one permit */
    op_init(&a, OP_SEM_ACQUIRE, 0);
    op_init(&b, OP_SEM_ACQUIRE, 1);
    a.s = b.s = s;
    spawn_op(&a);
    settle();
    spawn_op(&b);
    settle();
    ASSERT_OK(gh_sem_release(s));                 /* handed to a, which has not run */
    ASSERT_CODE(gh_sem_release(s), GH_EOVERFLOW); /* one permit in all */
    ASSERT_OK(gh_kill(a.self, 0));                /* a gives it back, to b */
    finish_op(&a);
    ASSERT_CODE(a.rc, GH_ECANCELED);
    finish_op(&b);
    ASSERT_OK(b.rc);
    ASSERT_CODE(gh_sem_acquire(s, 0), GH_ETIMEDOUT); /* b holds it */
    ASSERT_OK(gh_sem_release(s));                     /* for b */
    ASSERT_CODE(gh_sem_release(s), GH_EOVERFLOW);
    ASSERT_OK(gh_sem_acquire(s, 0));
    ASSERT_CODE(gh_sem_acquire(s, 0), GH_ETIMEDOUT);
    ASSERT_OK(gh_sem_close(s));
    END();
}

static gh_rlock RL;
static int rl_order[8], rl_n;

static void *rl_contender(void *arg) {
    int rc = gh_rlock_acquire(RL, GH_FOREVER);
    if (rc != GH_OK) return (void *)(intptr_t)rc;
    rl_order[rl_n++] = (int)(intptr_t)arg;
    gh_sleep(0.001); /* holds it across a switch */
    if (gh_rlock_acquire(RL, 0) != GH_OK) return (void *)1; /* re-entrant */
    gh_rlock_release(RL);
    return (void *)(intptr_t)gh_rlock_release(RL);
}

/* The owner re-acquires at once and must release as many times; another greenlet waits
 * (FIFO) and gets it only when the last level is released; a non-owner's release is
 * GH_EPERM; a timed acquire of a held lock times out. */
TEST(rlock_reentrant_owned_fifo) {
    gh_greenlet g[3];
    void *r;
    rl_n = 0;
    ASSERT_OK(gh_rlock_new(&RL));
    ASSERT_OK(gh_rlock_acquire(RL, GH_FOREVER));
    ASSERT_OK(gh_rlock_acquire(RL, GH_FOREVER));
    for (intptr_t i = 0; i < 3; i++) ASSERT_OK(GH_SPAWN(&g[i], rl_contender, (void *)i));
    ASSERT_OK(gh_sleep(0.005));
    ASSERT_EQ(rl_n, 0);
    ASSERT_OK(gh_rlock_release(RL));
    ASSERT_OK(gh_sleep(0.005));
    ASSERT_EQ(rl_n, 0); /* one level still held */
    ASSERT_OK(gh_rlock_release(RL));
    ASSERT_CODE(gh_rlock_release(RL), GH_EPERM); /* no longer the owner */
    for (int i = 0; i < 3; i++) {
        ASSERT_OK(gh_join(g[i], GH_FOREVER, &r));
        ASSERT_TRUE(r == NULL);
        ASSERT_OK(gh_release(g[i]));
    }
    for (int i = 0; i < 3; i++) ASSERT_EQ(rl_order[i], i);
    ASSERT_OK(gh_rlock_close(RL));
    ASSERT_OK(gh_hub_destroy());
}

static void *rl_holder(void *arg) {
    (void)arg;
    if (gh_rlock_acquire(RL, GH_FOREVER) != GH_OK) return (void *)1;
    gh_sleep(60);
    return NULL;
}
static int rl_cb_rc;
static void rl_cb(void *arg) {
    (void)arg;
    rl_cb_rc = gh_rlock_acquire(RL, 0);
}

/* Held by another greenlet: a timed acquire times out, the holder's lock is not
 * released by others (GH_EPERM); from a hub callback GH_EPERM; close wakes waiters with
 * GH_ECLOSED. */
TEST(rlock_timeout_eperm_close) {
    gh_greenlet h;
    ASSERT_OK(gh_rlock_new(&RL));
    ASSERT_OK(GH_SPAWN(&h, rl_holder, NULL));
    ASSERT_OK(gh_sleep(0.001));
    ASSERT_CODE(gh_rlock_acquire(RL, 0.01), GH_ETIMEDOUT);
    ASSERT_CODE(gh_rlock_release(RL), GH_EPERM);
    ASSERT_OK(gh_run_callback(rl_cb, NULL));
    ASSERT_OK(gh_sleep(0));
    ASSERT_CODE(rl_cb_rc, GH_EPERM);
    ASSERT_OK(gh_kill(h, GH_FOREVER));
    ASSERT_OK(gh_release(h));
    /* it ended holding the lock: held for good */
    ASSERT_CODE(gh_rlock_acquire(RL, 0), GH_ETIMEDOUT);
    ASSERT_OK(gh_rlock_close(RL));
    ASSERT_CODE(gh_rlock_acquire(RL, 0), GH_EBADHANDLE);
    ASSERT_OK(gh_hub_destroy());
}

/* A producer/consumer on a condition: consumers wait with the lock released, a notify
 * wakes exactly the number asked, notify_all the rest; each returns holding the lock. */
static gh_cond CV;
static gh_sem CVL;
static int cv_items, cv_consumed, cv_holding;
static void *cv_consumer(void *arg) {
    (void)arg;
    if (gh_sem_acquire(CVL, GH_FOREVER) != GH_OK) return (void *)1;
    while (cv_items == 0) {
        int rc = gh_cond_wait(CV, CVL, GH_FOREVER);
        if (rc != GH_OK) return (void *)(intptr_t)rc;
        if (cv_holding) return (void *)2; /* two holders at once */
    }
    cv_holding = 1;
    cv_items--;
    cv_consumed++;
    gh_sleep(0); /* holds the lock across a switch */
    cv_holding = 0;
    gh_sem_release(CVL);
    return NULL;
}

TEST(cond_producer_consumer) {
    gh_greenlet g[4];
    void *r;
    cv_items = cv_consumed = cv_holding = 0;
    ASSERT_OK(gh_cond_new(&CV));
    ASSERT_OK(gh_sem_new(&CVL, 1));
    for (int i = 0; i < 4; i++) ASSERT_OK(GH_SPAWN(&g[i], cv_consumer, NULL));
    ASSERT_OK(gh_sleep(0.002)); /* all four wait */
    ASSERT_EQ(gh_cond_notify(CV, 1), 1); /* a wake-up with nothing to take: */
    ASSERT_OK(gh_sleep(0.002));
    ASSERT_EQ(cv_consumed, 0); /* it checked, and waits again */
    ASSERT_OK(gh_sem_acquire(CVL, GH_FOREVER));
    cv_items = 1;
    ASSERT_OK(gh_sem_release(CVL));
    ASSERT_OK(gh_sleep(0.002));
    ASSERT_EQ(cv_consumed, 0); /* produced, nobody notified */
    ASSERT_OK(gh_sem_acquire(CVL, GH_FOREVER));
    ASSERT_EQ(gh_cond_notify(CV, 1), 1);
    ASSERT_OK(gh_sem_release(CVL));
    ASSERT_OK(gh_sleep(0.002));
    ASSERT_EQ(cv_consumed, 1);
    ASSERT_OK(gh_sem_acquire(CVL, GH_FOREVER));
    cv_items = 3;
    ASSERT_EQ(gh_cond_notify_all(CV), 3);
    ASSERT_OK(gh_sem_release(CVL));
    for (int i = 0; i < 4; i++) {
        ASSERT_OK(gh_join(g[i], GH_FOREVER, &r));
        ASSERT_TRUE(r == NULL);
        ASSERT_OK(gh_release(g[i]));
    }
    ASSERT_EQ(cv_consumed, 4);
    ASSERT_OK(gh_cond_close(CV));
    ASSERT_OK(gh_sem_close(CVL));
    ASSERT_OK(gh_hub_destroy());
}

/* A timed wait returns GH_ETIMEDOUT holding the lock again; closing the condition wakes
 * a waiter with GH_ECLOSED, lock re-taken; misuse gives codes. */
static int cv_close_rc = 1, cv_close_held;
static void *cv_close_waiter(void *arg) {
    (void)arg;
    gh_sem_acquire(CVL, GH_FOREVER);
    cv_close_rc = gh_cond_wait(CV, CVL, GH_FOREVER);
    cv_close_held = gh_sem_acquire(CVL, 0) == GH_ETIMEDOUT; /* it holds the only permit */
    gh_sem_release(CVL);
    return NULL;
}

TEST(cond_timeout_close_errors) {
    gh_greenlet g;
    gh_cond zero = {0};
    ASSERT_OK(gh_cond_new(&CV));
    ASSERT_OK(gh_sem_new(&CVL, 1));
    ASSERT_OK(gh_sem_acquire(CVL, GH_FOREVER));
    double t0 = gh_test_now();
    ASSERT_CODE(gh_cond_wait(CV, CVL, 0.02), GH_ETIMEDOUT);
    ASSERT_TRUE(gh_test_now() - t0 >= 0.019);
    ASSERT_CODE(gh_sem_acquire(CVL, 0), GH_ETIMEDOUT); /* held again */
    ASSERT_OK(gh_sem_release(CVL));
    ASSERT_OK(GH_SPAWN(&g, cv_close_waiter, NULL));
    ASSERT_OK(gh_sleep(0.002));
    ASSERT_OK(gh_cond_close(CV));
    ASSERT_OK(gh_join(g, GH_FOREVER, NULL));
    ASSERT_CODE(cv_close_rc, GH_ECLOSED);
    ASSERT_TRUE(cv_close_held);
    ASSERT_CODE(gh_cond_wait(CV, CVL, 0), GH_EBADHANDLE);
    ASSERT_CODE(gh_cond_notify(zero, 1), GH_EBADHANDLE);
    ASSERT_CODE(gh_cond_notify_all(zero), GH_EBADHANDLE);
    ASSERT_OK(gh_release(g));
    ASSERT_OK(gh_sem_close(CVL));
    ASSERT_OK(gh_hub_destroy());
}

int main(int argc, char **argv) {
    TEST_INIT(argc, argv);
    RUN(timeout_expires_every_blocking_call);
    RUN(timeout_expired_until_cancel);
    RUN(timeout_nested_three_deep);
    RUN(timeout_cancel_before_after_twice);
    RUN(timeout_other_greenlet_unaffected);
    RUN(timeout_cancelled_while_owner_blocked);
    RUN(timeout_cancel_after_owner_died);
    RUN(timeout_never_expires);
    RUN(timeout_ends_switch_and_hub_wait);
    RUN(timeout_bad_args);
    RUN(event_set_wakes_all_fifo);
    RUN(event_wait_on_set_and_clear);
    RUN(event_waiter_woken_then_cleared);
    RUN(event_wait_timeout);
    RUN(event_waiter_killed_after_set_passes_nothing_on);
    RUN(event_close_with_waiters);
    RUN(event_close_then_slot_reused_before_waiters_run);
    RUN(result_value_to_many_getters);
    RUN(result_error_to_getters);
    RUN(result_set_twice_ebusy);
    RUN(result_set_error_nonnegative_einval);
    RUN(result_get_before_after_set);
    RUN(result_close_with_waiters);
    RUN(sem_counting);
    RUN(sem_lock_mutual_exclusion);
    RUN(sem_fifo_order);
    RUN(sem_newcomer_does_not_overtake);
    RUN(sem_timeout);
    RUN(sem_permit_to_killed_waiter_passes_on);
    RUN(sem_permit_to_timed_out_waiter_passes_on);
    RUN(sem_release_after_main_timed_out_keeps_one_permit);
    RUN(sem_release_to_task_behind_main_ended_wait);
    RUN(nowait_take_past_main_ended_wait);
    RUN(sem_close_with_waiters);
    RUN(queue_fifo_order_and_len);
    RUN(queue_bounded_put_blocks_until_get);
    RUN(queue_putters_fifo);
    RUN(queue_getters_fifo);
    RUN(queue_newcomer_does_not_overtake);
    RUN(queue_unbounded);
    RUN(queue_get_timeout_and_null);
    RUN(queue_put_timeout);
    RUN(queue_close_with_putters);
    RUN(queue_close_with_getters);
    RUN(queue_close_both_sides);
    RUN(queue_close_putter_woken_before_it_ran);
    RUN(queue_item_to_killed_getter_passes_on);
    RUN(queue_item_to_timed_out_getter_passes_on);
    RUN(queue_room_to_killed_putter_passes_on);
    RUN(queue_free_with_waiters);
    RUN(waiter_switch_before_get);
    RUN(waiter_get_before_switch);
    RUN(waiter_switch_from_callbacks);
    RUN(waiter_second_switch_ebusy);
    RUN(waiter_second_getter_ebusy);
    RUN(waiter_get_timeout);
    RUN(waiter_close_with_waiter);
    RUN(waiter_value_to_killed_getter_kept);
    RUN(kill_blocked_in_each_primitive);
    RUN(handles_bad_values);
    RUN(handles_kind_confusion);
    RUN(handles_other_thread);
    RUN(handles_destroyed_hub);
    RUN(blocking_in_callbacks_eperm);
    RUN(main_blocked_forever_eloopexit);
    RUN(bounded_sem_refuses_extra_release);
    RUN(bounded_sem_counts_permits_handed_to_waiters);
    RUN(rlock_reentrant_owned_fifo);
    RUN(rlock_timeout_eperm_close);
    RUN(cond_producer_consumer);
    RUN(cond_timeout_close_errors);
    return TEST_DONE();
}

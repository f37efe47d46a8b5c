/* test_wait_many.c — the "Waiting on many" section of include/greenhub.h (gh_wait_many,
 * gh_wait_any over greenlets, events, results, semaphores, queues and fds) and the queue
 * variants of the "Synchronisation" section (gh_queue_new_lifo, gh_queue_new_priority,
 * gh_queue_put_priority, gh_queue_peek, gh_queue_task_done, gh_queue_join,
 * gh_queue_unfinished): what each call returns, what it reports, what it must not take,
 * and its failures (bad arguments and handles, closed objects, kills, timeouts,
 * GH_EPERM from callbacks, GH_ELOOPEXIT for main).
 *
 * Every case runs in its own forked child (harness.h) and ends with the hub destroyed
 * and the fd count back at the baseline taken when the case started.
 */
#include "harness.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>

#define BEGIN() const int fd_base_ = gh_test_fd_count()
#define END()                                                                  \
    do {                                                                       \
        ASSERT_OK(gh_hub_destroy());                                           \
        ASSERT_EQ(gh_test_fd_count(), fd_base_);                               \
    } while (0)

#define PTR(n) ((void *)(uintptr_t)(n))
#define NUM(p) ((long)(uintptr_t)(p))

static gh_waitable W(int kind, uint64_t handle) {
    gh_waitable w;
    memset(&w, 0, sizeof w);
    w.kind = kind;
    w.handle = handle;
    w.revents = 77; /* must be overwritten */
    return w;
}
static gh_waitable WFD(int fd, short events) {
    gh_waitable w = W(GH_WAIT_FD, 0);
    w.fd = fd;
    w.events = events;
    return w;
}
static gh_waitable WQ(gh_queue q, short events) {
    gh_waitable w = W(GH_WAIT_QUEUE, q.id);
    w.events = events;
    return w;
}

/* Greenlet helpers: each takes a pointer to a static struct. */
static void *sleep_then_set(void *arg) {
    gh_event *e = (gh_event *)arg;
    gh_sleep(0.02);
    return PTR(gh_event_set(*e) == GH_OK);
}
static void *sleep_ms(void *arg) {
    gh_sleep(NUM(arg) / 1000.0);
    return arg;
}
static void *sleep_forever(void *arg) {
    (void)arg;
    return PTR(gh_sleep(GH_FOREVER) == GH_ECANCELED);
}

/* ---- gh_wait_any / gh_wait_many: success --------------------------------- */

/* wait_any wakes when one of two events is set by another greenlet: the index of the
 * set one, revents GH_READ there and 0 on the other; ready ones at once (even with
 * timeout 0); the lowest ready index wins. */
TEST(wait_any_event) {
    BEGIN();
    static gh_event e1, e2;
    gh_waitable ws[2];
    gh_greenlet g;
    void *res;
    ASSERT_OK(gh_event_new(&e1));
    ASSERT_OK(gh_event_new(&e2));
    ws[0] = W(GH_WAIT_EVENT, e1.id);
    ws[1] = W(GH_WAIT_EVENT, e2.id);
    ASSERT_CODE(gh_wait_any(ws, 2, 0), GH_ETIMEDOUT);
    ASSERT_EQ(ws[0].revents, 0);
    ASSERT_EQ(ws[1].revents, 0);
    ASSERT_OK(gh_spawn(&g, sleep_then_set, &e2));
    double t0 = gh_test_now();
    ASSERT_EQ(gh_wait_any(ws, 2, 5), 1);
    ASSERT_GE((gh_test_now() - t0) * 1000, 15);
    ASSERT_EQ(ws[0].revents, 0);
    ASSERT_EQ(ws[1].revents, GH_READ);
    ASSERT_OK(gh_join(g, 1, &res));
    ASSERT_EQ(NUM(res), 1);
    ASSERT_OK(gh_event_set(e1));
    ASSERT_EQ(gh_wait_any(ws, 2, 0), 0); /* both ready: the first */
    ASSERT_EQ(ws[0].revents, GH_READ);
    ASSERT_EQ(ws[1].revents, GH_READ);
    ASSERT_OK(gh_release(g));
    ASSERT_OK(gh_event_close(e1));
    ASSERT_OK(gh_event_close(e2));
    END();
}

/* wait_many(count 2) over three greenlets ending after 10 ms, 30 ms and never: returns
 * 2 once the second has ended, with the two dead ones' revents set; count 0 means all
 * (the third, killed, ends it); an already-dead greenlet is ready at once. */
TEST(wait_many_greenlets_count) {
    BEGIN();
    gh_greenlet g[3];
    gh_waitable ws[3];
    int i;
    ASSERT_OK(gh_spawn(&g[0], sleep_ms, PTR(10)));
    ASSERT_OK(gh_spawn(&g[1], sleep_ms, PTR(30)));
    ASSERT_OK(gh_spawn(&g[2], sleep_forever, NULL));
    for (i = 0; i < 3; i++) ws[i] = W(GH_WAIT_GREENLET, g[i].id);
    double t0 = gh_test_now();
    ASSERT_EQ(gh_wait_many(ws, 3, 2, 5), 2);
    ASSERT_GE((gh_test_now() - t0) * 1000, 25);
    ASSERT_EQ(ws[0].revents, GH_READ);
    ASSERT_EQ(ws[1].revents, GH_READ);
    ASSERT_EQ(ws[2].revents, 0);
    ASSERT_EQ(gh_greenlet_state(g[2]), GH_STATE_WAITING);
    ASSERT_CODE(gh_wait_many(ws, 3, 0, 0.01), GH_ETIMEDOUT); /* all: one is missing */
    ASSERT_OK(gh_kill(g[2], 0));
    ASSERT_EQ(gh_wait_many(ws, 3, 0, 5), 3);
    ASSERT_EQ(ws[2].revents, GH_READ);
    ASSERT_EQ(gh_wait_many(ws, 1, 1, 0), 1); /* dead: at once */
    ASSERT_EQ(gh_wait_many(ws, 0, 0, GH_FOREVER), 0); /* nothing to wait for */
    for (i = 0; i < 3; i++) ASSERT_OK(gh_release(g[i]));
    END();
}

/* On timeout, GH_ETIMEDOUT with the ready entries still reported, after the timeout
 * (not before); a gh_timeout deadline ends the wait the same way. */
TEST(wait_many_timeout_reports_ready) {
    BEGIN();
    gh_event e1, e2;
    gh_result r;
    gh_timeout t;
    gh_waitable ws[3];
    ASSERT_OK(gh_event_new(&e1));
    ASSERT_OK(gh_event_new(&e2));
    ASSERT_OK(gh_result_new(&r));
    ASSERT_OK(gh_event_set(e1));
    ws[0] = W(GH_WAIT_EVENT, e1.id);
    ws[1] = W(GH_WAIT_EVENT, e2.id);
    ws[2] = W(GH_WAIT_RESULT, r.id);
    double t0 = gh_test_now();
    /* main waits with a timer pending: not GH_ELOOPEXIT */
    ASSERT_CODE(gh_wait_many(ws, 3, 2, 0.04), GH_ETIMEDOUT);
    ASSERT_GE((gh_test_now() - t0) * 1000, 35);
    ASSERT_EQ(ws[0].revents, GH_READ);
    ASSERT_EQ(ws[1].revents, 0);
    ASSERT_EQ(ws[2].revents, 0);
    ASSERT_OK(gh_timeout_start(&t, 0.02));
    ws[0].revents = 9;
    ASSERT_CODE(gh_wait_many(ws, 3, 3, GH_FOREVER), GH_ETIMEDOUT);
    ASSERT_EQ(ws[0].revents, GH_READ);
    ASSERT_OK(gh_timeout_cancel(t));
    ASSERT_OK(gh_result_set_error(r, GH_EIO)); /* an error is a result too */
    ASSERT_EQ(gh_wait_many(ws, 3, 2, 0), 2);
    ASSERT_EQ(ws[2].revents, GH_READ);
    ASSERT_OK(gh_event_close(e1));
    ASSERT_OK(gh_event_close(e2));
    ASSERT_OK(gh_result_close(r));
    END();
}

static gh_sem ts_sem;
static void *release_later(void *arg) {
    (void)arg;
    gh_sleep(0.01);
    return PTR(gh_sem_release(ts_sem));
}
static void *acquire_sem(void *arg) {
    (void)arg;
    return PTR(gh_sem_acquire(ts_sem, 5) == GH_OK);
}

/* A semaphore is ready while an acquire would not block, and waiting takes no permit:
 * woken by a release, the permit is still there for gh_sem_acquire(0). With an acquirer
 * parked first, a release is the acquirer's: the wait sees no free permit (times out)
 * and the acquirer gets it. */
TEST(wait_sem_takes_no_permit) {
    BEGIN();
    gh_greenlet g;
    gh_waitable ws[1];
    void *res;
    ASSERT_OK(gh_sem_new(&ts_sem, 0));
    ws[0] = W(GH_WAIT_SEM, ts_sem.id);
    ASSERT_CODE(gh_wait_any(ws, 1, 0), GH_ETIMEDOUT);
    ASSERT_OK(gh_spawn(&g, release_later, NULL));
    ASSERT_EQ(gh_wait_any(ws, 1, 5), 0);
    ASSERT_EQ(ws[0].revents, GH_READ);
    ASSERT_EQ(gh_wait_any(ws, 1, 0), 0); /* still free */
    ASSERT_OK(gh_sem_acquire(ts_sem, 0));
    ASSERT_CODE(gh_sem_acquire(ts_sem, 0), GH_ETIMEDOUT);
    ASSERT_OK(gh_join(g, 1, NULL));
    ASSERT_OK(gh_release(g));
    /* an acquirer parked first */
    ASSERT_OK(gh_spawn(&g, acquire_sem, NULL));
    ASSERT_OK(gh_sleep(0.005)); /* g parks in gh_sem_acquire */
    ASSERT_OK(gh_sem_release(ts_sem));
    ASSERT_CODE(gh_wait_any(ws, 1, 0.02), GH_ETIMEDOUT);
    ASSERT_EQ(ws[0].revents, 0);
    ASSERT_OK(gh_join(g, 1, &res));
    ASSERT_EQ(NUM(res), 1);
    ASSERT_OK(gh_release(g));
    ASSERT_OK(gh_sem_close(ts_sem));
    END();
}

/* Several greenlets waiting on one semaphore with an acquirer between them: releases
 * wake them all, nobody holds a permit back, nothing spins (the whole exchange takes
 * few loop turns and little time), every acquirer gets a permit. */
static int watchers_done;
static void *watch_sem(void *arg) {
    gh_waitable w = W(GH_WAIT_SEM, ts_sem.id);
    (void)arg;
    if (gh_wait_any(&w, 1, 5) == 0 && w.revents == GH_READ) watchers_done++;
    return NULL;
}
TEST(wait_sem_many_watchers_no_livelock) {
    BEGIN();
    gh_greenlet g[5];
    int i;
    void *res;
    ASSERT_OK(gh_sem_new(&ts_sem, 0));
    ASSERT_OK(gh_spawn(&g[0], watch_sem, NULL));
    ASSERT_OK(gh_spawn(&g[1], acquire_sem, NULL));
    ASSERT_OK(gh_spawn(&g[2], watch_sem, NULL));
    ASSERT_OK(gh_spawn(&g[3], acquire_sem, NULL));
    ASSERT_OK(gh_spawn(&g[4], watch_sem, NULL));
    ASSERT_OK(gh_sleep(0.005));
    double t0 = gh_test_now();
    ASSERT_OK(gh_sem_release(ts_sem));
    ASSERT_OK(gh_sem_release(ts_sem));
    ASSERT_OK(gh_join(g[1], 1, &res));
    ASSERT_EQ(NUM(res), 1);
    ASSERT_OK(gh_join(g[3], 1, &res));
    ASSERT_EQ(NUM(res), 1);
    /* both permits taken: the watchers wait on */
    ASSERT_EQ(watchers_done, 0);
    ASSERT_OK(gh_sem_release(ts_sem));
    for (i = 0; i < 5; i++) ASSERT_OK(gh_join(g[i], 1, NULL));
    ASSERT_EQ(watchers_done, 3);
    ASSERT_LE((gh_test_now() - t0) * 1000, 500);
    ASSERT_OK(gh_sem_acquire(ts_sem, 0)); /* the third permit was left alone */
    for (i = 0; i < 5; i++) ASSERT_OK(gh_release(g[i]));
    ASSERT_OK(gh_sem_close(ts_sem));
    END();
}

static gh_queue tq;
static void *put_later(void *arg) {
    gh_sleep(0.01);
    return PTR(gh_queue_put(tq, arg, 1));
}
static void *get_later(void *arg) {
    void *v;
    (void)arg;
    gh_sleep(0.01);
    return PTR(gh_queue_get(tq, &v, 1) == GH_OK ? NUM(v) : -1);
}

/* A queue: GH_READ ready while a get would not block (the item is left in the queue),
 * GH_WRITE while a put would not (the bounded queue full: ready once a get makes room),
 * events 0 is GH_READ; a closed queue is ready both ways. */
TEST(wait_queue_read_write) {
    BEGIN();
    gh_greenlet g;
    gh_waitable ws[2];
    void *v;
    ASSERT_OK(gh_queue_new(&tq, 1));
    ws[0] = WQ(tq, 0);
    ws[1] = WQ(tq, GH_WRITE);
    ASSERT_EQ(gh_wait_any(ws, 2, 0), 1); /* empty: room */
    ASSERT_EQ(ws[0].revents, 0);
    ASSERT_EQ(ws[1].revents, GH_WRITE);
    ASSERT_OK(gh_spawn(&g, put_later, PTR(42)));
    ASSERT_EQ(gh_wait_any(ws, 1, 5), 0);
    ASSERT_EQ(ws[0].revents, GH_READ);
    ASSERT_EQ(gh_queue_len(tq), 1); /* not taken */
    ASSERT_OK(gh_join(g, 1, &v));
    ASSERT_EQ(NUM(v), 0);
    ASSERT_OK(gh_release(g));
    /* full: GH_WRITE waits for a get */
    ASSERT_CODE(gh_wait_any(&ws[1], 1, 0), GH_ETIMEDOUT);
    ASSERT_OK(gh_spawn(&g, get_later, NULL));
    ASSERT_EQ(gh_wait_any(&ws[1], 1, 5), 0);
    ASSERT_EQ(ws[1].revents, GH_WRITE);
    ASSERT_OK(gh_join(g, 1, &v));
    ASSERT_EQ(NUM(v), 42);
    ASSERT_OK(gh_release(g));
    ws[0] = WQ(tq, GH_READ | GH_WRITE);
    ASSERT_EQ(gh_wait_many(ws, 1, 1, 0), 1);
    ASSERT_EQ(ws[0].revents, GH_WRITE);
    ASSERT_OK(gh_queue_close(tq));
    ASSERT_EQ(gh_wait_many(ws, 1, 1, 0), 1);
    ASSERT_EQ(ws[0].revents, GH_READ | GH_WRITE);
    ASSERT_OK(gh_queue_free(tq));
    END();
}

static int tfd;
static void *write_later(void *arg) {
    (void)arg;
    gh_sleep(0.01);
    return PTR(gh_write(tfd, "x", 1, 1));
}

/* fds: readable after another greenlet writes (the byte is still there to read), a
 * writable socket at once, GH_READ|GH_WRITE reports what is ready; fds and objects in
 * one list. */
TEST(wait_fd_and_objects) {
    BEGIN();
    int sv[2];
    gh_event e;
    gh_greenlet g;
    gh_waitable ws[3];
    char c;
    ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
    tfd = sv[1];
    ASSERT_OK(gh_event_new(&e));
    ws[0] = W(GH_WAIT_EVENT, e.id);
    ws[1] = WFD(sv[0], GH_READ);
    ws[2] = WFD(sv[0], GH_READ | GH_WRITE);
    ASSERT_CODE(gh_wait_any(ws, 2, 0), GH_ETIMEDOUT);
    ASSERT_EQ(gh_wait_any(ws, 3, 0), 2);
    ASSERT_EQ(ws[2].revents, GH_WRITE);
    ASSERT_OK(gh_spawn(&g, write_later, NULL));
    ASSERT_EQ(gh_wait_any(ws, 2, 5), 1);
    ASSERT_EQ(ws[0].revents, 0);
    ASSERT_EQ(ws[1].revents, GH_READ);
    ASSERT_EQ(gh_wait_many(ws, 3, 2, 0), 2);
    ASSERT_EQ(ws[2].revents, GH_READ | GH_WRITE);
    ASSERT_EQ(gh_read(sv[0], &c, 1, 0), 1);
    ASSERT_EQ(c, 'x');
    ASSERT_OK(gh_join(g, 1, NULL));
    ASSERT_OK(gh_release(g));
    ASSERT_OK(gh_event_close(e));
    ASSERT_OK(gh_close(sv[0]));
    ASSERT_OK(gh_close(sv[1]));
    END();
}

/* Two greenlets on one fd: one in gh_wait_read, one in gh_wait_any (the fd's READ side
 * is taken: it waits through a watcher of its own). A write wakes both; afterwards
 * nothing of theirs is left registered (gh_hub_run returns: no watcher keeps the loop
 * alive). */
static void *wait_read_fd(void *arg) {
    (void)arg;
    return PTR(gh_wait_read(tfd, 5) == GH_OK);
}
static void *wait_any_fd(void *arg) {
    gh_waitable w = WFD(tfd, GH_READ);
    (void)arg;
    return PTR(gh_wait_any(&w, 1, 5) == 0 && w.revents == GH_READ);
}
TEST(wait_fd_shared_with_wait_read) {
    BEGIN();
    int sv[2], i;
    gh_greenlet g[2];
    void *res;
    ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
    tfd = sv[0];
    for (i = 0; i < 2; i++) {
        /* first the gh_wait_read, then wait_any; then the other way round */
        ASSERT_OK(gh_spawn(&g[0], i ? wait_any_fd : wait_read_fd, NULL));
        ASSERT_OK(gh_sleep(0.005));
        ASSERT_OK(gh_spawn(&g[1], i ? wait_read_fd : wait_any_fd, NULL));
        ASSERT_OK(gh_sleep(0.005));
        ASSERT_EQ(write(sv[1], "y", 1), 1);
        ASSERT_OK(gh_join(g[0], 1, &res));
        ASSERT_EQ(NUM(res), 1);
        ASSERT_OK(gh_join(g[1], 1, &res));
        ASSERT_EQ(NUM(res), 1);
        ASSERT_OK(gh_release(g[0]));
        ASSERT_OK(gh_release(g[1]));
        char c;
        ASSERT_EQ(read(sv[0], &c, 1), 1);
    }
    double t0 = gh_test_now();
    ASSERT_OK(gh_hub_run());
    ASSERT_LE((gh_test_now() - t0) * 1000, 100);
    ASSERT_OK(gh_close(sv[0]));
    ASSERT_OK(gh_close(sv[1]));
    END();
}

/* A long list with repeats: 256 events (one listed twice) and one fd listed twice; a
 * set event is reported at both its entries, both fd entries report the byte; nothing
 * stays registered (gh_hub_run returns at once). */
TEST(wait_long_list_with_repeats) {
    BEGIN();
    enum { N = 256 };
    static gh_event e[N];
    static gh_waitable ws[N + 3];
    int i, sv[2];
    ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
    for (i = 0; i < N; i++) {
        ASSERT_OK(gh_event_new(&e[i]));
        ws[i] = W(GH_WAIT_EVENT, e[i].id);
    }
    ws[N] = W(GH_WAIT_EVENT, e[200].id);
    ws[N + 1] = WFD(sv[0], GH_READ);
    ws[N + 2] = WFD(sv[0], GH_READ);
    tfd = sv[1];
    {
        gh_greenlet g;
        ASSERT_OK(gh_spawn(&g, write_later, NULL));
        ASSERT_EQ(gh_wait_any(ws, N + 3, 5), N + 1);
        ASSERT_EQ(ws[N + 2].revents, GH_READ);
        ASSERT_OK(gh_join(g, 1, NULL));
        ASSERT_OK(gh_release(g));
    }
    ASSERT_OK(gh_event_set(e[200]));
    ASSERT_EQ(gh_wait_many(ws, N + 1, 2, 0), 2);
    for (i = 0; i < N + 1; i++) ASSERT_EQ(ws[i].revents, (i == 200 || i == N) ? GH_READ : 0);
    double t0 = gh_test_now();
    ASSERT_OK(gh_hub_run());
    ASSERT_LE((gh_test_now() - t0) * 1000, 100);
    for (i = 0; i < N; i++) ASSERT_OK(gh_event_close(e[i]));
    ASSERT_OK(gh_close(sv[0]));
    ASSERT_OK(gh_close(sv[1]));
    END();
}

/* gh_format_run_info shows a greenlet in gh_wait_many as waiting on the first entry that
 * is not ready. */
static gh_event info_e;
static void *wait_info_event(void *arg) {
    gh_waitable w = W(GH_WAIT_EVENT, info_e.id);
    (void)arg;
    return PTR(gh_wait_any(&w, 1, 5));
}
TEST(wait_shows_in_run_info) {
    BEGIN();
    gh_greenlet g;
    static char buf[1 << 16];
    char want[64];
    ASSERT_OK(gh_event_new(&info_e));
    ASSERT_OK(gh_spawn(&g, wait_info_event, NULL));
    ASSERT_OK(gh_sleep(0.005));
    ASSERT_TRUE(gh_format_run_info(buf, sizeof buf) > 0);
    snprintf(want, sizeof want, "event %#llx", (unsigned long long)info_e.id);
    if (!strstr(buf, want)) GH_TEST_FAIL_("run info lacks \"%s\":\n%s", want, buf);
    ASSERT_OK(gh_event_set(info_e));
    ASSERT_OK(gh_join(g, 1, NULL));
    ASSERT_OK(gh_release(g));
    ASSERT_OK(gh_event_close(info_e));
    END();
}

/* ---- failures ------------------------------------------------------------- */

static void *thread_make_event(void *arg) {
    gh_event e;
    if (gh_event_new(&e) != GH_OK) return NULL;
    *(uint64_t *)arg = e.id;
    gh_hub_destroy();
    return NULL;
}

/* Bad arguments: each refused before any wait, the offending entry's revents
 * GH_WAIT_NVAL and the others' set from the check. */
TEST(wait_bad_arguments) {
    BEGIN();
    gh_event e, stale;
    gh_sem s;
    gh_waitable ws[2];
    int p[2];
    pthread_t th;
    uint64_t foreign = 0;
    ASSERT_OK(gh_event_new(&e));
    ASSERT_OK(gh_event_set(e));
    ASSERT_OK(gh_sem_new(&s, 1));
    ASSERT_OK(gh_event_new(&stale));
    ASSERT_OK(gh_event_close(stale));
    ws[0] = W(GH_WAIT_EVENT, e.id);
    ws[1] = W(GH_WAIT_EVENT, e.id);
    ASSERT_CODE(gh_wait_many(NULL, 1, 1, 0), GH_EINVAL);
    ASSERT_CODE(gh_wait_any(NULL, 1, 0), GH_EINVAL);
    ASSERT_CODE(gh_wait_any(ws, 0, 0), GH_EINVAL);
    ASSERT_CODE(gh_wait_many(ws, 1, 2, 0), GH_EINVAL);
    ASSERT_CODE(gh_wait_many(ws, (size_t)-1, 1, 0), GH_EINVAL);
    ASSERT_CODE(gh_wait_many(ws, 2, 1, NAN), GH_EINVAL);
    ASSERT_CODE(gh_wait_any(ws, 2, NAN), GH_EINVAL);
    ASSERT_CODE(gh_wait_many(ws, 0, 0, NAN), GH_EINVAL);

#define BAD(entry, code)                                                       \
    do {                                                                       \
        ws[0] = W(GH_WAIT_EVENT, e.id);                                        \
        ws[1] = (entry);                                                       \
        ASSERT_CODE(gh_wait_many(ws, 2, 1, GH_FOREVER), code);                 \
        ASSERT_EQ(ws[0].revents, GH_READ);                                     \
        ASSERT_EQ(ws[1].revents, GH_WAIT_NVAL);                                \
        ASSERT_CODE(gh_wait_any(ws, 2, GH_FOREVER), code);                     \
    } while (0)
    BAD(W(0, e.id), GH_EINVAL);                /* zeroed kind */
    BAD(W(99, e.id), GH_EINVAL);               /* unknown kind */
    BAD(W(GH_WAIT_EVENT, 0), GH_EBADHANDLE);   /* zero handle */
    BAD(W(GH_WAIT_EVENT, ~0ull), GH_EBADHANDLE);
    BAD(W(GH_WAIT_EVENT, stale.id), GH_EBADHANDLE);
    BAD(W(GH_WAIT_SEM, e.id), GH_EBADHANDLE);  /* an event as a semaphore */
    BAD(W(GH_WAIT_RESULT, s.id), GH_EBADHANDLE);
    BAD(W(GH_WAIT_QUEUE, s.id), GH_EBADHANDLE);
    BAD(W(GH_WAIT_GREENLET, e.id), GH_EBADHANDLE);
    BAD(W(GH_WAIT_GREENLET, gh_main().id), GH_EDEADLK); /* main waits on itself */
    BAD(WFD(-1, GH_READ), GH_EBADF);
    ASSERT_OK(pipe(p));
    ASSERT_OK(close(p[1]));
    ASSERT_OK(close(p[0]));
    BAD(WFD(p[0], GH_READ), GH_EBADF); /* closed */
    ASSERT_OK(pipe(p));
    BAD(WFD(p[0], 0), GH_EINVAL);
    BAD(WFD(p[0], 4), GH_EINVAL);
    BAD(WFD(p[0], -1), GH_EINVAL);
    {
        gh_queue q;
        ASSERT_OK(gh_queue_new(&q, 0));
        BAD(WQ(q, 8), GH_EINVAL);
        ASSERT_OK(gh_queue_free(q));
        BAD(WQ(q, 0), GH_EBADHANDLE);
    }
    ASSERT_OK(pthread_create(&th, NULL, thread_make_event, &foreign));
    ASSERT_OK(pthread_join(th, NULL));
    ASSERT_NE(foreign, 0);
    BAD(W(GH_WAIT_EVENT, foreign), GH_EBADHANDLE); /* its hub is gone */
#undef BAD
    ASSERT_OK(gh_close(p[0]));
    ASSERT_OK(gh_close(p[1]));
    ASSERT_OK(gh_sem_close(s));
    ASSERT_OK(gh_event_close(e));
    END();
}

/* A handle of another live thread's hub: GH_EWRONGTHREAD, its entry GH_WAIT_NVAL. */
static uint64_t other_id;
static int other_stop;
static void *other_thread(void *arg) {
    gh_event e;
    (void)arg;
    if (gh_event_new(&e) != GH_OK) return NULL;
    __atomic_store_n(&other_id, e.id, __ATOMIC_SEQ_CST);
    while (!__atomic_load_n(&other_stop, __ATOMIC_SEQ_CST)) usleep(1000);
    gh_hub_destroy();
    return NULL;
}
TEST(wait_other_thread_handle) {
    BEGIN();
    pthread_t th;
    gh_waitable w;
    int i;
    ASSERT_OK(pthread_create(&th, NULL, other_thread, NULL));
    for (i = 0; i < 5000 && __atomic_load_n(&other_id, __ATOMIC_SEQ_CST) == 0; i++)
        usleep(1000);
    w = W(GH_WAIT_EVENT, __atomic_load_n(&other_id, __ATOMIC_SEQ_CST));
    ASSERT_CODE(gh_wait_any(&w, 1, 1), GH_EWRONGTHREAD);
    ASSERT_EQ(w.revents, GH_WAIT_NVAL);
    ASSERT_CODE(gh_wait_many(&w, 1, 0, 0), GH_EWRONGTHREAD);
    __atomic_store_n(&other_stop, 1, __ATOMIC_SEQ_CST);
    ASSERT_OK(pthread_join(th, NULL));
    END();
}

/* A greenlet in the list is the caller itself: GH_EDEADLK; the hub greenlet or main
 * from a task: GH_EINVAL for main (as gh_join). */
static void *wait_on_self(void *arg) {
    gh_waitable w[2];
    (void)arg;
    w[0] = W(GH_WAIT_GREENLET, gh_current().id);
    w[1] = W(GH_WAIT_GREENLET, gh_main().id);
    if (gh_wait_any(w, 1, 0.01) != GH_EDEADLK || w[0].revents != GH_WAIT_NVAL) return PTR(1);
    if (gh_wait_any(&w[1], 1, 0.01) != GH_EINVAL || w[1].revents != GH_WAIT_NVAL) return PTR(2);
    return PTR(0);
}
TEST(wait_self_and_main) {
    BEGIN();
    gh_greenlet g;
    void *res;
    ASSERT_OK(gh_spawn(&g, wait_on_self, NULL));
    ASSERT_OK(gh_join(g, 1, &res));
    ASSERT_EQ(NUM(res), 0);
    ASSERT_OK(gh_release(g));
    END();
}

/* An object or fd closed while a greenlet waits on it: GH_ECLOSED, its entry
 * GH_WAIT_NVAL; a released greenlet likewise. */
static gh_waitable closed_ws[2];
static void *wait_two(void *arg) {
    (void)arg;
    return PTR(gh_wait_any(closed_ws, 2, 5));
}
TEST(wait_closed_while_waiting) {
    BEGIN();
    gh_event e1, e2;
    gh_greenlet g, s;
    void *res;
    int sv[2];
    ASSERT_OK(gh_event_new(&e1));
    ASSERT_OK(gh_event_new(&e2));
    closed_ws[0] = W(GH_WAIT_EVENT, e1.id);
    closed_ws[1] = W(GH_WAIT_EVENT, e2.id);
    ASSERT_OK(gh_spawn(&g, wait_two, NULL));
    ASSERT_OK(gh_sleep(0.005));
    ASSERT_OK(gh_event_close(e2));
    ASSERT_OK(gh_join(g, 1, &res));
    ASSERT_EQ((int)NUM(res), GH_ECLOSED);
    ASSERT_EQ(closed_ws[0].revents, 0);
    ASSERT_EQ(closed_ws[1].revents, GH_WAIT_NVAL);
    ASSERT_OK(gh_release(g));
    /* an fd closed with gh_close */
    ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
    closed_ws[1] = WFD(sv[0], GH_READ);
    ASSERT_OK(gh_spawn(&g, wait_two, NULL));
    ASSERT_OK(gh_sleep(0.005));
    ASSERT_OK(gh_close(sv[0]));
    ASSERT_OK(gh_join(g, 1, &res));
    ASSERT_EQ((int)NUM(res), GH_ECLOSED);
    ASSERT_EQ(closed_ws[1].revents, GH_WAIT_NVAL);
    ASSERT_OK(gh_release(g));
    /* a greenlet handle released while waited on: the wait ends when something else
     * wakes it, with GH_ECLOSED */
    ASSERT_OK(gh_spawn(&s, sleep_forever, NULL));
    closed_ws[1] = W(GH_WAIT_GREENLET, s.id);
    ASSERT_OK(gh_spawn(&g, wait_two, NULL));
    ASSERT_OK(gh_sleep(0.005));
    ASSERT_OK(gh_release(s));
    ASSERT_CODE(gh_kill(s, 0), GH_EBADHANDLE); /* released: stale */
    ASSERT_OK(gh_event_clear(e1));
    ASSERT_OK(gh_event_set(e1));
    ASSERT_OK(gh_join(g, 1, &res));
    ASSERT_EQ((int)NUM(res), GH_ECLOSED);
    ASSERT_EQ(closed_ws[0].revents, GH_READ);
    ASSERT_EQ(closed_ws[1].revents, GH_WAIT_NVAL);
    ASSERT_OK(gh_release(g));
    ASSERT_OK(gh_event_close(e1));
    ASSERT_OK(gh_close(sv[1]));
    END();
}

/* Killed while waiting: GH_ECANCELED at once; its registrations are gone (the objects
 * work on, the fd can be waited on by another greenlet, the loop ends). */
static gh_event ke;
static gh_sem ks;
static gh_queue kq;
static int kfd;
static void *wait_all_kinds(void *arg) {
    gh_waitable w[5];
    gh_greenlet other = *(gh_greenlet *)arg;
    int rc;
    w[0] = W(GH_WAIT_EVENT, ke.id);
    w[1] = W(GH_WAIT_SEM, ks.id);
    w[2] = WQ(kq, GH_READ);
    w[3] = WFD(kfd, GH_READ);
    w[4] = W(GH_WAIT_GREENLET, other.id);
    rc = gh_wait_many(w, 5, 1, GH_FOREVER);
    return PTR(rc == GH_ECANCELED && w[0].revents == 0 && w[3].revents == 0 ? 1 : 0);
}
TEST(wait_killed) {
    BEGIN();
    gh_greenlet g, other;
    void *res, *v;
    int sv[2];
    ASSERT_OK(gh_event_new(&ke));
    ASSERT_OK(gh_sem_new(&ks, 0));
    ASSERT_OK(gh_queue_new(&kq, 0));
    ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
    kfd = sv[0];
    ASSERT_OK(gh_spawn(&other, sleep_forever, NULL));
    ASSERT_OK(gh_spawn(&g, wait_all_kinds, &other));
    ASSERT_OK(gh_sleep(0.005));
    ASSERT_EQ(gh_greenlet_state(g), GH_STATE_WAITING);
    ASSERT_OK(gh_kill(g, 1));
    ASSERT_OK(gh_join(g, 0, &res));
    ASSERT_EQ(NUM(res), 1);
    ASSERT_OK(gh_release(g));
    /* everything works on without it */
    ASSERT_OK(gh_event_set(ke));
    ASSERT_OK(gh_sem_release(ks));
    ASSERT_OK(gh_sem_acquire(ks, 0));
    ASSERT_OK(gh_queue_put(kq, PTR(5), 0));
    ASSERT_OK(gh_queue_get(kq, &v, 0));
    ASSERT_EQ(write(sv[1], "z", 1), 1);
    ASSERT_OK(gh_wait_read(sv[0], 1)); /* the READ side is free again */
    ASSERT_OK(gh_kill(other, 1));
    ASSERT_OK(gh_release(other));
    ASSERT_OK(gh_hub_run()); /* nothing left registered */
    ASSERT_OK(gh_event_close(ke));
    ASSERT_OK(gh_sem_close(ks));
    ASSERT_OK(gh_queue_free(kq));
    ASSERT_OK(gh_close(sv[0]));
    ASSERT_OK(gh_close(sv[1]));
    END();
}

/* From a hub callback: GH_EPERM when it would wait, the answer when it need not. */
static gh_event cb_unset, cb_set;
static int cb_rc[7];
static void wait_from_cb(void *arg) {
    gh_waitable w[1];
    (void)arg;
    w[0] = W(GH_WAIT_EVENT, cb_unset.id);
    cb_rc[0] = gh_wait_any(w, 1, 1);
    cb_rc[1] = gh_wait_many(w, 1, 0, GH_FOREVER);
    w[0] = W(GH_WAIT_EVENT, cb_set.id);
    cb_rc[2] = gh_wait_any(w, 1, 1);
    {
        gh_queue q;
        void *v = NULL;
        gh_queue_new(&q, 0);
        cb_rc[3] = gh_queue_peek(q, &v, 1);
        gh_queue_put(q, PTR(3), 0);
        cb_rc[4] = gh_queue_peek(q, &v, 1) == GH_OK && v == PTR(3) ? 0 : -1;
        cb_rc[5] = gh_queue_join(q, 1);
        gh_queue_task_done(q);
        cb_rc[6] = gh_queue_join(q, 1);
        gh_queue_free(q);
    }
}
TEST(wait_from_callback_eperm) {
    BEGIN();
    ASSERT_OK(gh_event_new(&cb_unset));
    ASSERT_OK(gh_event_new(&cb_set));
    ASSERT_OK(gh_event_set(cb_set));
    ASSERT_OK(gh_run_callback(wait_from_cb, NULL));
    ASSERT_OK(gh_sleep(0.005));
    ASSERT_CODE(cb_rc[0], GH_EPERM);
    ASSERT_CODE(cb_rc[1], GH_EPERM);
    ASSERT_EQ(cb_rc[2], 0);
    ASSERT_CODE(cb_rc[3], GH_EPERM); /* peek on an empty queue */
    ASSERT_EQ(cb_rc[4], 0);          /* peek with an item: no wait */
    ASSERT_CODE(cb_rc[5], GH_EPERM); /* join with one unfinished */
    ASSERT_EQ(cb_rc[6], 0);          /* join with none */
    ASSERT_OK(gh_event_close(cb_unset));
    ASSERT_OK(gh_event_close(cb_set));
    END();
}

/* Main waiting on something nothing can make ready: GH_ELOOPEXIT. */
TEST(wait_main_loopexit) {
    BEGIN();
    gh_event e;
    gh_waitable w;
    ASSERT_OK(gh_event_new(&e));
    w = W(GH_WAIT_EVENT, e.id);
    ASSERT_CODE(gh_wait_any(&w, 1, GH_FOREVER), GH_ELOOPEXIT);
    ASSERT_EQ(w.revents, 0);
    ASSERT_OK(gh_event_close(e));
    END();
}

/* gh_throw's code ends the wait once; the next wait works. */
static void *wait_event_twice(void *arg) {
    gh_waitable w = W(GH_WAIT_EVENT, ((gh_event *)arg)->id);
    int rc1 = gh_wait_any(&w, 1, 5);
    int rc2 = gh_wait_any(&w, 1, 5);
    return PTR(rc1 == GH_EIO && rc2 == 0 ? 1 : 0);
}
TEST(wait_thrown) {
    BEGIN();
    static gh_event e;
    gh_greenlet g;
    void *res;
    ASSERT_OK(gh_event_new(&e));
    ASSERT_OK(gh_spawn(&g, wait_event_twice, &e));
    ASSERT_OK(gh_sleep(0.005));
    ASSERT_OK(gh_throw(g, GH_EIO));
    ASSERT_OK(gh_sleep(0.005));
    ASSERT_OK(gh_event_set(e));
    ASSERT_OK(gh_join(g, 1, &res));
    ASSERT_EQ(NUM(res), 1);
    ASSERT_OK(gh_release(g));
    ASSERT_OK(gh_event_close(e));
    END();
}

/* ---- queue variants -------------------------------------------------------- */

/* LIFO: gets and peeks give the newest first. */
TEST(queue_lifo_order) {
    BEGIN();
    gh_queue q;
    void *v;
    int i;
    ASSERT_OK(gh_queue_new_lifo(&q, 0));
    for (i = 1; i <= 4; i++) ASSERT_OK(gh_queue_put(q, PTR(i), 0));
    ASSERT_OK(gh_queue_peek(q, &v, 0));
    ASSERT_EQ(NUM(v), 4);
    for (i = 4; i >= 1; i--) {
        ASSERT_OK(gh_queue_get(q, &v, 0));
        ASSERT_EQ(NUM(v), i);
    }
    ASSERT_CODE(gh_queue_get(q, &v, 0), GH_ETIMEDOUT);
    ASSERT_CODE(gh_queue_put_priority(q, 1, PTR(1), 0), GH_EINVAL); /* not a priority queue */
    ASSERT_OK(gh_queue_free(q));
    END();
}

/* Priority: lowest first, FIFO among equal priorities, negative ones too; gh_queue_put
 * is priority 0; a bounded priority queue blocks when full. */
TEST(queue_priority_order) {
    BEGIN();
    gh_queue q;
    void *v;
    int i;
    static const int prio[] = {5, 1, 5, -2, 1, 0, 7};
    static const int want[] = {4, 6, 10, 2, 5, 1, 3, 7}; /* item numbers in get order */
    ASSERT_OK(gh_queue_new_priority(&q, 0));
    for (i = 0; i < 7; i++) ASSERT_OK(gh_queue_put_priority(q, prio[i], PTR(i + 1), 0));
    ASSERT_OK(gh_queue_put(q, PTR(10), 0)); /* priority 0, after item 6 */
    ASSERT_EQ(gh_queue_len(q), 8);
    for (i = 0; i < 8; i++) {
        ASSERT_OK(gh_queue_peek(q, &v, 0));
        ASSERT_EQ(NUM(v), want[i]);
        ASSERT_OK(gh_queue_get(q, &v, 0));
        ASSERT_EQ(NUM(v), want[i]);
    }
    ASSERT_OK(gh_queue_free(q));
    ASSERT_OK(gh_queue_new_priority(&q, 1));
    ASSERT_OK(gh_queue_put_priority(q, 3, PTR(1), 0));
    ASSERT_CODE(gh_queue_put_priority(q, -100, PTR(2), 0.01), GH_ETIMEDOUT);
    ASSERT_OK(gh_queue_close(q));
    ASSERT_CODE(gh_queue_put_priority(q, 0, PTR(2), 0), GH_ECLOSED);
    ASSERT_OK(gh_queue_free(q));
    {
        gh_queue f;
        ASSERT_OK(gh_queue_new(&f, 0));
        ASSERT_CODE(gh_queue_put_priority(f, 0, PTR(1), 0), GH_EINVAL);
        ASSERT_EQ(gh_queue_len(f), 0);
        ASSERT_OK(gh_queue_free(f));
    }
    END();
}

/* peek waits for an item without taking it; a getter parked first gets the item and
 * the peeker waits on for the next; after close: what is left, then GH_ECLOSED;
 * freed while peeking: GH_ECLOSED. */
static void *peek_fn(void *arg) {
    void *v = NULL;
    int rc = gh_queue_peek(tq, &v, NUM(arg) / 1000.0);
    return rc == GH_OK ? v : PTR(1000 - rc);
}
TEST(queue_peek) {
    BEGIN();
    gh_greenlet p, gt;
    void *v;
    ASSERT_OK(gh_queue_new(&tq, 0));
    ASSERT_CODE(gh_queue_peek(tq, &v, 0), GH_ETIMEDOUT);
    ASSERT_CODE(gh_queue_peek(tq, NULL, 0), GH_EINVAL);
    ASSERT_OK(gh_spawn(&p, peek_fn, PTR(5000)));
    ASSERT_OK(gh_sleep(0.005));
    ASSERT_OK(gh_queue_put(tq, PTR(11), 0));
    ASSERT_OK(gh_join(p, 1, &v));
    ASSERT_EQ(NUM(v), 11);
    ASSERT_OK(gh_release(p));
    ASSERT_EQ(gh_queue_len(tq), 1);
    ASSERT_OK(gh_queue_get(tq, &v, 0));
    /* a getter first, then a peeker */
    ASSERT_OK(gh_spawn(&gt, get_later, NULL));
    ASSERT_OK(gh_sleep(0.02)); /* gt parks in gh_queue_get */
    ASSERT_OK(gh_spawn(&p, peek_fn, PTR(5000)));
    ASSERT_OK(gh_sleep(0.005));
    ASSERT_OK(gh_queue_put(tq, PTR(12), 0));
    ASSERT_OK(gh_join(gt, 1, &v));
    ASSERT_EQ(NUM(v), 12);
    ASSERT_EQ(gh_greenlet_state(p), GH_STATE_WAITING); /* nothing left to peek at */
    ASSERT_OK(gh_queue_put(tq, PTR(13), 0));
    ASSERT_OK(gh_join(p, 1, &v));
    ASSERT_EQ(NUM(v), 13);
    ASSERT_OK(gh_release(p));
    ASSERT_OK(gh_release(gt));
    /* closed: what is left, then GH_ECLOSED */
    ASSERT_OK(gh_queue_close(tq));
    ASSERT_OK(gh_queue_peek(tq, &v, 0));
    ASSERT_EQ(NUM(v), 13);
    ASSERT_OK(gh_queue_get(tq, &v, 0));
    ASSERT_CODE(gh_queue_peek(tq, &v, GH_FOREVER), GH_ECLOSED);
    ASSERT_OK(gh_queue_free(tq));
    /* freed while peeking; a peek timing out */
    ASSERT_OK(gh_queue_new(&tq, 0));
    ASSERT_OK(gh_spawn(&p, peek_fn, PTR(10)));
    ASSERT_OK(gh_join(p, 1, &v));
    ASSERT_EQ(NUM(v), 1000 - GH_ETIMEDOUT);
    ASSERT_OK(gh_release(p));
    ASSERT_OK(gh_spawn(&p, peek_fn, PTR(5000)));
    ASSERT_OK(gh_sleep(0.005));
    ASSERT_OK(gh_queue_free(tq));
    ASSERT_OK(gh_join(p, 1, &v));
    ASSERT_EQ(NUM(v), 1000 - GH_ECLOSED);
    ASSERT_OK(gh_release(p));
    END();
}

/* task_done / join: join returns once every item put was marked done (workers taking
 * items and finishing them later), at once when none is unfinished; too many task_done
 * is GH_EINVAL; join times out while some are unfinished; freed while joining:
 * GH_ECLOSED; closing does not end a join. */
static int done_count;
static void *worker(void *arg) {
    void *v;
    (void)arg;
    while (gh_queue_get(tq, &v, 1) == GH_OK) {
        gh_sleep(0.005);
        done_count++;
        if (gh_queue_task_done(tq) != GH_OK) return PTR(1);
    }
    return NULL;
}
static void *join_fn(void *arg) {
    (void)arg;
    return PTR(1000 - gh_queue_join(tq, 5));
}
TEST(queue_task_done_join) {
    BEGIN();
    gh_greenlet w[2], j;
    void *res;
    int i;
    ASSERT_OK(gh_queue_new(&tq, 0));
    ASSERT_OK(gh_queue_join(tq, 0)); /* nothing put */
    ASSERT_EQ(gh_queue_unfinished(tq), 0);
    ASSERT_CODE(gh_queue_task_done(tq), GH_EINVAL);
    for (i = 0; i < 6; i++) ASSERT_OK(gh_queue_put(tq, PTR(i + 1), 0));
    ASSERT_EQ(gh_queue_unfinished(tq), 6);
    ASSERT_CODE(gh_queue_join(tq, 0), GH_ETIMEDOUT);
    ASSERT_CODE(gh_queue_join(tq, 0.001), GH_ETIMEDOUT);
    ASSERT_OK(gh_spawn(&w[0], worker, NULL));
    ASSERT_OK(gh_spawn(&w[1], worker, NULL));
    ASSERT_OK(gh_spawn(&j, join_fn, NULL));
    ASSERT_OK(gh_queue_join(tq, 5));
    ASSERT_EQ(done_count, 6);
    ASSERT_EQ(gh_queue_unfinished(tq), 0);
    ASSERT_OK(gh_join(j, 1, &res));
    ASSERT_EQ(NUM(res), 1000);
    ASSERT_OK(gh_release(j));
    ASSERT_CODE(gh_queue_task_done(tq), GH_EINVAL);
    for (i = 0; i < 2; i++) { /* the workers wait in gh_queue_get */
        ASSERT_OK(gh_kill(w[i], 1));
        ASSERT_OK(gh_join(w[i], 0, &res));
        ASSERT_TRUE(res == NULL);
        ASSERT_OK(gh_release(w[i]));
    }
    /* closing does not end a join; freeing does */
    ASSERT_OK(gh_queue_put(tq, PTR(7), 0));
    ASSERT_OK(gh_queue_get(tq, &res, 0));
    ASSERT_EQ(gh_queue_unfinished(tq), 1); /* taken, not done */
    ASSERT_OK(gh_spawn(&j, join_fn, NULL));
    ASSERT_OK(gh_sleep(0.005));
    ASSERT_OK(gh_queue_close(tq));
    ASSERT_OK(gh_sleep(0.005));
    ASSERT_EQ(gh_greenlet_state(j), GH_STATE_WAITING);
    ASSERT_OK(gh_queue_free(tq));
    ASSERT_OK(gh_join(j, 1, &res));
    ASSERT_EQ(NUM(res), 1000 - GH_ECLOSED);
    ASSERT_OK(gh_release(j));
    ASSERT_CODE(gh_queue_join(tq, 0), GH_EBADHANDLE);
    ASSERT_CODE(gh_queue_unfinished(tq), GH_EBADHANDLE);
    END();
}

/* A join killed while waiting: GH_ECANCELED; a later task_done wakes nobody wrongly. */
TEST(queue_join_killed) {
    BEGIN();
    gh_greenlet j;
    void *res;
    ASSERT_OK(gh_queue_new(&tq, 0));
    ASSERT_OK(gh_queue_put(tq, PTR(1), 0));
    ASSERT_OK(gh_spawn(&j, join_fn, NULL));
    ASSERT_OK(gh_sleep(0.005));
    ASSERT_OK(gh_kill(j, 1));
    ASSERT_OK(gh_join(j, 0, &res));
    ASSERT_EQ(NUM(res), 1000 - GH_ECANCELED);
    ASSERT_OK(gh_release(j));
    ASSERT_OK(gh_queue_task_done(tq));
    ASSERT_OK(gh_queue_join(tq, 0));
    /* woken by the last task_done and killed before it ran: its wake-up goes to nobody
     * (a join begun after a new put times out) */
    ASSERT_OK(gh_queue_put(tq, PTR(2), 0));
    ASSERT_OK(gh_spawn(&j, join_fn, NULL));
    ASSERT_OK(gh_sleep(0.005));
    ASSERT_OK(gh_queue_task_done(tq));
    ASSERT_OK(gh_kill(j, 0));
    ASSERT_OK(gh_queue_put(tq, PTR(3), 0));
    ASSERT_CODE(gh_queue_join(tq, 0.03), GH_ETIMEDOUT);
    ASSERT_OK(gh_join(j, 1, &res));
    ASSERT_EQ(NUM(res), 1000 - GH_ECANCELED);
    ASSERT_OK(gh_release(j));
    ASSERT_OK(gh_queue_free(tq));
    END();
}

int main(int argc, char **argv) {
    TEST_INIT(argc, argv);
    RUN(wait_any_event);
    RUN(wait_many_greenlets_count);
    RUN(wait_many_timeout_reports_ready);
    RUN(wait_sem_takes_no_permit);
    RUN(wait_sem_many_watchers_no_livelock);
    RUN(wait_queue_read_write);
    RUN(wait_fd_and_objects);
    RUN(wait_fd_shared_with_wait_read);
    RUN(wait_long_list_with_repeats);
    RUN(wait_shows_in_run_info);
    RUN(wait_bad_arguments);
    RUN(wait_other_thread_handle);
    RUN(wait_self_and_main);
    RUN(wait_closed_while_waiting);
    RUN(wait_killed);
    RUN(wait_from_callback_eperm);
    RUN(wait_main_loopexit);
    RUN(wait_thrown);
    RUN(queue_lifo_order);
    RUN(queue_priority_order);
    RUN(queue_peek);
    RUN(queue_task_done_join);
    RUN(queue_join_killed);
    return TEST_DONE();
}

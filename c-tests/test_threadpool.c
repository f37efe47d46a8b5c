/* test_threadpool.c — the "Thread pool" section of greenhub.h: gh_threadpool_apply,
 * gh_threadpool_set_size and gh_getaddrinfo (with its GH_EAI_BASE codes).
 *
 * Jobs that must stay in flight for a while wait on a "gate" (an atomic flag the test
 * opens) rather than sleeping a fixed time, so the cases assert orders, not speeds.
 *
 * Build and run:
 *   cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g -O1 -Iinclude -Ic-tests \
 *      c-tests/test_threadpool.c target/release/libgreenhub.a -lpthread -ldl -lm \
 *      -o target/c/test_threadpool
 *   ./target/c/test_threadpool [case]
 */
#include "harness.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>

/* ---- helpers ------------------------------------------------------------ */

#define RC_PTR(rc) ((void *)(intptr_t)(rc))
#define PTR_RC(p) ((int)(intptr_t)(p))

static void msleep(int ms) { usleep((useconds_t)ms * 1000); }

/* Joins `g` (bounded), releases it, and returns what its function returned. */
static void *join_value(gh_greenlet g) {
    void *res = NULL;
    ASSERT_OK(gh_join(g, 30.0, &res));
    ASSERT_OK(gh_release(g));
    return res;
}

/* Cooperatively waits (main greenlet) until `*v >= target`, at most `limit` s. */
static int wait_until(atomic_int *v, int target, double limit) {
    double end = gh_test_now() + limit;
    while (atomic_load(v) < target) {
        if (gh_test_now() > end) return -1;
        if (gh_sleep(0.002) != GH_OK) return -2;
    }
    return 0;
}

/* Same, without a hub (after gh_hub_destroy). */
static int spin_until(atomic_int *v, int target, double limit) {
    double end = gh_test_now() + limit;
    while (atomic_load(v) < target) {
        if (gh_test_now() > end) return -1;
        msleep(1);
    }
    return 0;
}

/* Pool jobs. */
static void *add_one(void *arg) { return (void *)((intptr_t)arg + 1); }

static pthread_t job_thread;
static void *record_thread(void *arg) {
    job_thread = pthread_self();
    return arg;
}

static atomic_int side_effect;
static void *bump(void *arg) {
    atomic_fetch_add(&side_effect, 1);
    return arg;
}

/* Sleeps `arg` ms on its worker thread, then marks itself done. */
static atomic_int slow_done;
static void *slow_job(void *arg) {
    msleep((int)(intptr_t)arg);
    atomic_store(&slow_done, 1);
    return (void *)(intptr_t)0x5151;
}

/* The gate: jobs wait until the test opens it. */
static atomic_int gate_open, gate_started, gate_finished;
static void *gated_job(void *arg) {
    atomic_fetch_add(&gate_started, 1);
    while (!atomic_load(&gate_open)) msleep(1);
    atomic_fetch_add(&gate_finished, 1);
    return arg;
}

/* Concurrency tracking: how many jobs run at once, at most. */
static atomic_int running_now, running_max;
static void *counted_sleep(void *arg) {
    int n = atomic_fetch_add(&running_now, 1) + 1;
    int m = atomic_load(&running_max);
    while (n > m && !atomic_compare_exchange_weak(&running_max, &m, n)) {
    }
    msleep((int)(intptr_t)arg);
    atomic_fetch_sub(&running_now, 1);
    return arg;
}

/* Greenlet bodies. */
static void *apply_add_one(void *arg) {
    void *r = NULL;
    int rc = gh_threadpool_apply(add_one, arg, &r);
    return rc == GH_OK ? r : RC_PTR(rc);
}

static void *apply_gated(void *arg) {
    void *r = NULL;
    int rc = gh_threadpool_apply(gated_job, arg, &r);
    return rc == GH_OK ? r : RC_PTR(rc);
}

static void *apply_counted(void *arg) {
    void *r = NULL;
    int rc = gh_threadpool_apply(counted_sleep, arg, &r);
    return rc == GH_OK && r == arg ? RC_PTR(0) : RC_PTR(rc ? rc : -1);
}

/* Runs `n` concurrent jobs of `ms` ms from `n` greenlets; returns the elapsed time.
 * running_max afterwards is the most that ran at once. */
static double run_counted(int n, int ms) {
    gh_greenlet gs[64];
    double t0 = gh_test_now();
    ASSERT_TRUE(n <= 64);
    atomic_store(&running_now, 0);
    atomic_store(&running_max, 0);
    for (int i = 0; i < n; i++) ASSERT_OK(gh_spawn(&gs[i], apply_counted, (void *)(intptr_t)ms));
    for (int i = 0; i < n; i++) ASSERT_EQ(PTR_RC(join_value(gs[i])), 0);
    return gh_test_now() - t0;
}

/* Checks that the pool of this hub still answers. */
static void assert_pool_works(void) {
    void *r = NULL;
    ASSERT_OK(gh_threadpool_apply(add_one, (void *)(intptr_t)99, &r));
    ASSERT_EQ((intptr_t)r, 100);
}

/* ---- gh_threadpool_apply: results ---------------------------------------- */

/* A greenlet gets fn's return value through *result; fn ran on another thread. */
TEST(apply_returns_result) {
    gh_greenlet g;
    void *r = NULL;
    ASSERT_OK(gh_spawn(&g, apply_add_one, (void *)(intptr_t)41));
    ASSERT_EQ((intptr_t)join_value(g), 42);

    ASSERT_OK(gh_threadpool_apply(record_thread, (void *)(intptr_t)7, &r));
    ASSERT_EQ((intptr_t)r, 7);
    ASSERT_TRUE(!pthread_equal(job_thread, pthread_self()));
    ASSERT_OK(gh_hub_destroy());
}

/* `result` NULL is allowed: fn still runs, its value is just not stored. */
TEST(apply_result_null_still_runs) {
    ASSERT_OK(gh_threadpool_apply(bump, NULL, NULL));
    ASSERT_EQ(atomic_load(&side_effect), 1);
    ASSERT_OK(gh_hub_destroy());
}

/* The main greenlet waiting on a job, with nothing else alive in the loop, is not
 * told GH_ELOOPEXIT: the job in flight keeps the loop alive (FAULTS 34's converse). */
TEST(main_waiting_on_job_no_loopexit) {
    void *r = NULL;
    double t0 = gh_test_now();
    ASSERT_OK(gh_threadpool_apply(slow_job, (void *)(intptr_t)30, &r));
    ASSERT_TRUE(gh_test_now() - t0 >= 0.9 * 0.030);
    ASSERT_EQ((intptr_t)r, 0x5151);
    ASSERT_EQ(atomic_load(&slow_done), 1);
    ASSERT_OK(gh_hub_destroy());
}

/* Only the caller waits: while a worker sleeps 100 ms, another greenlet keeps
 * ticking on a 10 ms timer (it would tick 0 times if the hub were blocked). */
static atomic_int ticks, stop_ticking;
static void *ticker(void *arg) {
    (void)arg;
    while (!atomic_load(&stop_ticking)) {
        int rc = gh_sleep(0.01);
        if (rc != GH_OK) return RC_PTR(rc);
        atomic_fetch_add(&ticks, 1);
    }
    return RC_PTR(0);
}
TEST(apply_only_caller_waits) {
    gh_greenlet t;
    void *r = NULL;
    ASSERT_OK(gh_spawn(&t, ticker, NULL));
    ASSERT_OK(gh_sleep(0)); /* the ticker is now in its first sleep */
    int before = atomic_load(&ticks);
    double t0 = gh_test_now();
    ASSERT_OK(gh_threadpool_apply(slow_job, (void *)(intptr_t)100, &r));
    double elapsed = gh_test_now() - t0;
    int during = atomic_load(&ticks) - before;
    atomic_store(&stop_ticking, 1);
    ASSERT_EQ(PTR_RC(join_value(t)), 0);
    ASSERT_EQ((intptr_t)r, 0x5151);
    ASSERT_TRUE(elapsed >= 0.09);
    ASSERT_GE(during, 3); /* ~10 expected; 3 leaves room for a slow machine */
    ASSERT_OK(gh_hub_destroy());
}

/* 10,000 greenlets each in gh_threadpool_apply at the same time (the jobs are held
 * at the gate until all 10,000 callers are waiting): every one gets its own result. */
#define MANY 10000
static gh_greenlet many[MANY];
static int in_apply;
static void *apply_many(void *arg) {
    void *r = NULL;
    in_apply++;
    int rc = gh_threadpool_apply(gated_job, arg, &r);
    in_apply--;
    if (rc != GH_OK) return RC_PTR(rc);
    return (void *)((intptr_t)r * 2 + 1);
}
TEST(apply_10000_concurrent) {
    gh_spawn_options small = {64 * 1024, NULL};
    size_t done = 0;
    for (intptr_t i = 0; i < MANY; i++) ASSERT_OK(gh_spawn_ex(&many[i], apply_many, (void *)i, &small));
    double end = gh_test_now() + 60;
    while (in_apply < MANY && gh_test_now() < end) ASSERT_OK(gh_sleep(0.005));
    ASSERT_EQ(in_apply, MANY); /* all 10,000 wait at once */
    ASSERT_LE(atomic_load(&gate_started), 10); /* the default pool size */
    atomic_store(&gate_open, 1);
    ASSERT_OK(gh_joinall(many, MANY, 120.0, &done));
    ASSERT_EQ(done, MANY);
    for (intptr_t i = 0; i < MANY; i++) {
        void *r = NULL;
        ASSERT_OK(gh_join(many[i], 0, &r));
        ASSERT_EQ((intptr_t)r, i * 2 + 1);
        ASSERT_OK(gh_release(many[i]));
    }
    ASSERT_EQ(atomic_load(&gate_finished), MANY);
    ASSERT_OK(gh_hub_destroy());
}

/* ---- gh_threadpool_apply: the caller stops waiting ----------------------- */

/* A job longer than the caller's gh_timeout: the caller gets GH_ETIMEDOUT while the
 * job still runs; the late result is dropped when it arrives and the hub (and its
 * pool) keep working. */
TEST(apply_timeout_drops_late_result) {
    gh_timeout t;
    void *r = (void *)(intptr_t)-7;
    int fds0 = gh_test_fd_count();
    ASSERT_OK(gh_timeout_start(&t, 0.05));
    double t0 = gh_test_now();
    ASSERT_CODE(gh_threadpool_apply(gated_job, (void *)(intptr_t)0x77, &r), GH_ETIMEDOUT);
    ASSERT_TRUE(gh_test_now() - t0 >= 0.045);
    ASSERT_EQ((intptr_t)r, -7);                   /* *result untouched */
    ASSERT_EQ(atomic_load(&gate_finished), 0); /* the job has not finished (gate shut) */
    ASSERT_OK(gh_timeout_cancel(t));
    /* it starts (under valgrind a worker thread may take longer than the timeout) */
    ASSERT_OK(wait_until(&gate_started, 1, 10.0));
    atomic_store(&gate_open, 1);
    ASSERT_OK(wait_until(&gate_finished, 1, 10.0));
    ASSERT_OK(gh_sleep(0.05)); /* the late result reaches the hub and is dropped */
    assert_pool_works();
    ASSERT_OK(gh_sleep(0.001)); /* timers still fire */
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* Kill of a greenlet waiting in apply (FAULTS 11): its apply returns GH_ECANCELED at
 * once, without waiting for the job, which runs on and whose result is dropped. */
TEST(apply_killed_waiter_ecanceled) {
    gh_greenlet g;
    ASSERT_OK(gh_spawn(&g, apply_gated, (void *)(intptr_t)5));
    ASSERT_OK(wait_until(&gate_started, 1, 10.0));
    ASSERT_EQ(gh_greenlet_state(g), GH_STATE_WAITING);
    ASSERT_OK(gh_kill(g, 5.0));
    ASSERT_EQ(PTR_RC(join_value(g)), GH_ECANCELED);
    atomic_store(&gate_open, 1);
    ASSERT_OK(wait_until(&gate_finished, 1, 10.0));
    ASSERT_OK(gh_sleep(0.05));
    assert_pool_works();
    ASSERT_OK(gh_hub_destroy());
}

/* gh_throw at a greenlet waiting in apply: its apply returns the thrown code. */
TEST(apply_thrown_waiter_gets_code) {
    gh_greenlet g;
    ASSERT_OK(gh_spawn(&g, apply_gated, (void *)(intptr_t)5));
    ASSERT_OK(wait_until(&gate_started, 1, 10.0));
    ASSERT_OK(gh_throw(g, GH_EINTR));
    ASSERT_EQ(PTR_RC(join_value(g)), GH_EINTR);
    atomic_store(&gate_open, 1);
    ASSERT_OK(wait_until(&gate_finished, 1, 10.0));
    ASSERT_OK(gh_sleep(0.05));
    assert_pool_works();
    ASSERT_OK(gh_hub_destroy());
}

/* ---- gh_threadpool_apply: bad calls -------------------------------------- */

/* fn NULL is GH_EINVAL (with or without a result pointer); nothing is written. */
TEST(apply_null_fn_einval) {
    void *r = (void *)(intptr_t)-7;
    ASSERT_CODE(gh_threadpool_apply(NULL, NULL, &r), GH_EINVAL);
    ASSERT_CODE(gh_threadpool_apply(NULL, (void *)(intptr_t)1, NULL), GH_EINVAL);
    ASSERT_EQ((intptr_t)r, -7);
    assert_pool_works();
    ASSERT_OK(gh_hub_destroy());
}

/* From a hub callback (a timer's, and a gh_run_callback one) apply is GH_EPERM
 * (FAULTS 33) and fn never runs. */
static int cb_rc[2] = {12345, 12345};
static void apply_in_timer(gh_watcher w, int revents, void *arg) {
    (void)w;
    (void)revents;
    (void)arg;
    cb_rc[0] = gh_threadpool_apply(bump, NULL, NULL);
}
static void apply_in_callback(void *arg) {
    (void)arg;
    cb_rc[1] = gh_threadpool_apply(bump, NULL, NULL);
}
TEST(apply_from_callback_eperm) {
    gh_watcher t;
    ASSERT_OK(gh_timer_new(&t, 0.001, 0));
    ASSERT_OK(gh_watcher_start(t, apply_in_timer, NULL));
    ASSERT_OK(gh_run_callback(apply_in_callback, NULL));
    ASSERT_OK(gh_hub_run());
    ASSERT_CODE(cb_rc[0], GH_EPERM);
    ASSERT_CODE(cb_rc[1], GH_EPERM);
    ASSERT_OK(gh_sleep(0.02));
    ASSERT_EQ(atomic_load(&side_effect), 0);
    ASSERT_OK(gh_watcher_close(t));
    ASSERT_OK(gh_hub_destroy());
}

/* ---- threads ------------------------------------------------------------- */

/* fn may use greenhub with its worker thread's own hub (gh_sleep works there), but
 * this hub's objects are other-thread handles to it (GH_EWRONGTHREAD). */
static gh_event main_event;
static int fn_rc[2] = {12345, 12345};
static void *uses_greenhub(void *arg) {
    fn_rc[0] = gh_sleep(0.005);
    fn_rc[1] = gh_event_set(main_event);
    return arg;
}
TEST(fn_uses_own_hub_not_callers) {
    void *r = NULL;
    ASSERT_OK(gh_event_new(&main_event));
    ASSERT_OK(gh_threadpool_apply(uses_greenhub, (void *)(intptr_t)3, &r));
    ASSERT_EQ((intptr_t)r, 3);
    ASSERT_OK(fn_rc[0]);
    ASSERT_CODE(fn_rc[1], GH_EWRONGTHREAD);
    ASSERT_EQ(gh_event_is_set(main_event), 0);
    ASSERT_OK(gh_event_close(main_event));
    ASSERT_OK(gh_hub_destroy());
}

/* Another thread's hub has a pool of its own: apply works there too, on a thread
 * that is neither the caller nor main. */
struct other_apply {
    int rc, destroy_rc;
    void *r;
    pthread_t job;
};
static void *other_thread_apply(void *arg) {
    struct other_apply *o = arg;
    o->rc = gh_threadpool_apply(record_thread, (void *)(intptr_t)11, &o->r);
    o->job = job_thread;
    o->destroy_rc = gh_hub_destroy();
    return NULL;
}
TEST(apply_from_other_thread_own_pool) {
    struct other_apply o = {12345, 12345, NULL, pthread_self()};
    pthread_t t;
    ASSERT_OK(pthread_create(&t, NULL, other_thread_apply, &o));
    ASSERT_OK(pthread_join(t, NULL));
    ASSERT_OK(o.rc);
    ASSERT_OK(o.destroy_rc);
    ASSERT_EQ((intptr_t)o.r, 11);
    ASSERT_TRUE(!pthread_equal(o.job, t));
    ASSERT_TRUE(!pthread_equal(o.job, pthread_self()));
    ASSERT_OK(gh_hub_destroy()); /* main never had a hub: GH_OK */
}

/* ---- gh_threadpool_set_size ---------------------------------------------- */

/* Default pool: at most 10 workers (gevent's size): 20 concurrent 100 ms jobs run
 * 10 at a time, so they take two rounds. */
TEST(default_size_is_10) {
    double elapsed = run_counted(20, 100);
    ASSERT_EQ(atomic_load(&running_max), 10);
    ASSERT_TRUE(elapsed >= 0.9 * 0.2);
    ASSERT_OK(gh_hub_destroy());
}

/* set_size(2): 6 concurrent 50 ms jobs never run more than 2 at once, so they take
 * at least 3 rounds (~150 ms). */
TEST(set_size_bounds_workers) {
    ASSERT_OK(gh_threadpool_set_size(2));
    double elapsed = run_counted(6, 50);
    ASSERT_EQ(atomic_load(&running_max), 2);
    ASSERT_TRUE(elapsed >= 0.9 * 0.15);
    ASSERT_OK(gh_hub_destroy());
}

/* Raising the size after the pool has started lets it start more workers. */
TEST(set_size_raised_later) {
    ASSERT_OK(gh_threadpool_set_size(2));
    run_counted(4, 30);
    ASSERT_EQ(atomic_load(&running_max), 2);
    ASSERT_OK(gh_threadpool_set_size(4));
    double elapsed = run_counted(8, 50);
    ASSERT_EQ(atomic_load(&running_max), 4);
    ASSERT_TRUE(elapsed >= 0.9 * 0.1);
    ASSERT_OK(gh_hub_destroy());
}

/* Sizes 0 and above 1024 are GH_EINVAL and leave the size as it was; 1 and 1024
 * are accepted. */
TEST(set_size_invalid) {
    ASSERT_OK(gh_threadpool_set_size(1));
    ASSERT_OK(gh_threadpool_set_size(1024));
    ASSERT_OK(gh_threadpool_set_size(2));
    ASSERT_CODE(gh_threadpool_set_size(0), GH_EINVAL);
    ASSERT_CODE(gh_threadpool_set_size(1025), GH_EINVAL);
    ASSERT_CODE(gh_threadpool_set_size(2000), GH_EINVAL);
    ASSERT_CODE(gh_threadpool_set_size(SIZE_MAX), GH_EINVAL);
    run_counted(4, 30);
    ASSERT_EQ(atomic_load(&running_max), 2); /* still 2 */
    ASSERT_OK(gh_hub_destroy());
}

/* ---- gh_hub_destroy with jobs in flight (FAULTS 36) ---------------------- */

/* Destroying the hub while callers wait and their jobs run: no crash, the jobs run
 * to completion later and their results are dropped (no hub to take them), fds are
 * back at baseline and a new hub's pool works. */
TEST(destroy_while_jobs_run) {
    gh_greenlet gs[3];
    int fds0 = gh_test_fd_count();
    for (intptr_t i = 0; i < 3; i++) ASSERT_OK(gh_spawn(&gs[i], apply_gated, (void *)i));
    ASSERT_OK(wait_until(&gate_started, 3, 10.0));
    double t0 = gh_test_now();
    ASSERT_OK(gh_hub_destroy());
    double destroy_time = gh_test_now() - t0;
    ASSERT_TRUE(destroy_time < 5.0); /* returned although the jobs still run */
    printf("  (gh_hub_destroy took %.3f s with 3 jobs running)\n", destroy_time);
    ASSERT_CODE(gh_greenlet_state(gs[0]), GH_EBADHANDLE);
    atomic_store(&gate_open, 1);
    ASSERT_OK(spin_until(&gate_finished, 3, 10.0));
    msleep(100); /* the workers post to a dead hub, drop the results and end */
    assert_pool_works(); /* a new hub */
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* Jobs still queued (not started) when the hub is destroyed: the header says running
 * jobs finish and jobs that have not started never run. */
TEST(destroy_with_queued_jobs) {
    gh_greenlet gs[3];
    ASSERT_OK(gh_threadpool_set_size(1));
    for (intptr_t i = 0; i < 3; i++) ASSERT_OK(gh_spawn(&gs[i], apply_gated, (void *)i));
    ASSERT_OK(wait_until(&gate_started, 1, 10.0));
    ASSERT_OK(gh_sleep(0.01));
    ASSERT_EQ(atomic_load(&gate_started), 1); /* one worker: the others are queued */
    ASSERT_OK(gh_hub_destroy());
    atomic_store(&gate_open, 1);
    spin_until(&gate_finished, 3, 5.0);
    int finished = atomic_load(&gate_finished);
    ASSERT_EQ(finished, 1); /* only the one that had started */
    msleep(50);
    ASSERT_EQ(atomic_load(&gate_started), 1); /* the queued ones never ran */
    msleep(50);
}

/* ---- gh_getaddrinfo ------------------------------------------------------ */

static int is_loopback(const struct addrinfo *ai) {
    if (ai->ai_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)ai->ai_addr;
        return ntohl(sin->sin_addr.s_addr) == INADDR_LOOPBACK;
    }
    if (ai->ai_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ai->ai_addr;
        return IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr);
    }
    return 0;
}

/* Checks that `res` holds only AF_INET/SOCK_STREAM 127.0.0.1:port entries. */
static void assert_inet_loopback(const struct addrinfo *res, int port) {
    int n = 0;
    ASSERT_TRUE(res != NULL);
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next, n++) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)ai->ai_addr;
        ASSERT_EQ(ai->ai_family, AF_INET);
        ASSERT_EQ(ai->ai_socktype, SOCK_STREAM);
        ASSERT_EQ(ai->ai_addrlen, sizeof(struct sockaddr_in));
        ASSERT_TRUE(sin != NULL);
        ASSERT_EQ(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);
        ASSERT_EQ(ntohs(sin->sin_port), port);
    }
    ASSERT_GE(n, 1);
}

static struct addrinfo inet_stream_hints(void) {
    struct addrinfo h;
    memset(&h, 0, sizeof h);
    h.ai_family = AF_INET;
    h.ai_socktype = SOCK_STREAM;
    return h;
}

/* "localhost" without hints resolves to loopback addresses only. */
TEST(gai_localhost_resolves) {
    struct addrinfo *res = NULL;
    int n = 0;
    ASSERT_OK(gh_getaddrinfo("localhost", NULL, NULL, &res));
    ASSERT_TRUE(res != NULL);
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next, n++) {
        ASSERT_TRUE(ai->ai_addr != NULL);
        ASSERT_TRUE(is_loopback(ai));
    }
    ASSERT_GE(n, 1);
    freeaddrinfo(res);
    ASSERT_OK(gh_hub_destroy());
}

/* With hints AF_INET/SOCK_STREAM and a service, every entry is 127.0.0.1:port. */
TEST(gai_localhost_inet_stream) {
    struct addrinfo h = inet_stream_hints(), *res = NULL;
    ASSERT_OK(gh_getaddrinfo("localhost", "8080", &h, &res));
    assert_inet_loopback(res, 8080);
    freeaddrinfo(res);
    /* Garbage in the hints' pointer fields is ignored (getaddrinfo requires NULL). */
    h.ai_canonname = (char *)"junk";
    h.ai_next = &h;
    ASSERT_OK(gh_getaddrinfo("localhost", "80", &h, &res));
    assert_inet_loopback(res, 80);
    freeaddrinfo(res);
    ASSERT_OK(gh_hub_destroy());
}

/* node NULL with a service is a valid lookup (AI_PASSIVE: the wildcard address). */
TEST(gai_service_only) {
    struct addrinfo h = inet_stream_hints(), *res = NULL;
    h.ai_flags = AI_PASSIVE;
    ASSERT_OK(gh_getaddrinfo(NULL, "80", &h, &res));
    ASSERT_TRUE(res != NULL);
    ASSERT_EQ(res->ai_family, AF_INET);
    ASSERT_EQ(ntohl(((struct sockaddr_in *)res->ai_addr)->sin_addr.s_addr), INADDR_ANY);
    ASSERT_EQ(ntohs(((struct sockaddr_in *)res->ai_addr)->sin_port), 80);
    freeaddrinfo(res);
    ASSERT_OK(gh_hub_destroy());
}

/* An unresolvable name is GH_EAI_BASE + EAI_NONAME (glibc); gh_strerror gives
 * gai_strerror's text and gh_err_name a real name for it. */
TEST(gai_unresolvable_name) {
    struct addrinfo *res = NULL;
    int code = GH_EAI_BASE + EAI_NONAME;
    ASSERT_CODE(gh_getaddrinfo("nonexistent.invalid", NULL, NULL, &res), code);
    ASSERT_TRUE(code < -1000); /* in the library range, not an errno */
    ASSERT_TRUE(gh_strerror(code) != NULL);
    ASSERT_STREQ(gh_strerror(code), gai_strerror(EAI_NONAME));
    ASSERT_TRUE(gh_err_name(code) != NULL);
    ASSERT_TRUE(strncmp(gh_err_name(code), "GH_", 3) == 0);
    ASSERT_TRUE(strcmp(gh_err_name(code), "GH_UNKNOWN") != 0);
    ASSERT_TRUE(strcmp(gh_strerror(code), "unknown error code") != 0);
    ASSERT_OK(gh_hub_destroy());
}

/* Other getaddrinfo failures map the same way: an unknown family is
 * GH_EAI_BASE + EAI_FAMILY, with gai_strerror's text. */
TEST(gai_bad_family_code) {
    struct addrinfo h = inet_stream_hints(), *res = NULL;
    h.ai_family = 12345;
    ASSERT_CODE(gh_getaddrinfo("localhost", NULL, &h, &res), GH_EAI_BASE + EAI_FAMILY);
    ASSERT_STREQ(gh_strerror(GH_EAI_BASE + EAI_FAMILY), gai_strerror(EAI_FAMILY));
    ASSERT_TRUE(strcmp(gh_err_name(GH_EAI_BASE + EAI_FAMILY), "GH_UNKNOWN") != 0);
    ASSERT_OK(gh_hub_destroy());
}

/* node and service both NULL, or res NULL: GH_EINVAL, nothing written. */
TEST(gai_einval) {
    struct addrinfo *res = (struct addrinfo *)(intptr_t)0x10;
    ASSERT_CODE(gh_getaddrinfo(NULL, NULL, NULL, &res), GH_EINVAL);
    ASSERT_TRUE(res == (struct addrinfo *)(intptr_t)0x10);
    ASSERT_CODE(gh_getaddrinfo("localhost", NULL, NULL, NULL), GH_EINVAL);
    ASSERT_CODE(gh_getaddrinfo(NULL, "80", NULL, NULL), GH_EINVAL);
    ASSERT_CODE(gh_getaddrinfo(NULL, NULL, NULL, NULL), GH_EINVAL);
    ASSERT_OK(gh_hub_destroy());
}

/* From a hub callback: GH_EPERM (FAULTS 33). */
static int gai_cb_rc = 12345;
static void gai_in_callback(void *arg) {
    struct addrinfo *res = NULL;
    (void)arg;
    gai_cb_rc = gh_getaddrinfo("localhost", NULL, NULL, &res);
    if (res) freeaddrinfo(res);
}
TEST(gai_from_callback_eperm) {
    ASSERT_OK(gh_run_callback(gai_in_callback, NULL));
    ASSERT_OK(gh_hub_run());
    ASSERT_CODE(gai_cb_rc, GH_EPERM);
    ASSERT_OK(gh_hub_destroy());
}

/* Several greenlets look up at once; each gets its own answer (its own port), and
 * a failing lookup among them fails alone. */
static void *lookup_port(void *arg) {
    char service[16];
    struct addrinfo h = inet_stream_hints(), *res = NULL;
    int port = (int)(intptr_t)arg;
    snprintf(service, sizeof service, "%d", port);
    int rc = gh_getaddrinfo(port ? "localhost" : "nonexistent.invalid", service, &h, &res);
    if (rc != GH_OK) return RC_PTR(rc);
    int ok = 1, n = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next, n++) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)ai->ai_addr;
        ok &= ai->ai_family == AF_INET && ntohl(sin->sin_addr.s_addr) == INADDR_LOOPBACK &&
              ntohs(sin->sin_port) == port;
    }
    freeaddrinfo(res);
    return RC_PTR(ok && n > 0 ? port : -1);
}
TEST(gai_concurrent_lookups) {
    gh_greenlet gs[9];
    for (int i = 0; i < 8; i++) ASSERT_OK(gh_spawn(&gs[i], lookup_port, (void *)(intptr_t)(1000 + i)));
    ASSERT_OK(gh_spawn(&gs[8], lookup_port, (void *)(intptr_t)0));
    for (int i = 0; i < 8; i++) ASSERT_EQ(PTR_RC(join_value(gs[i])), 1000 + i);
    ASSERT_CODE(PTR_RC(join_value(gs[8])), GH_EAI_BASE + EAI_NONAME);
    ASSERT_OK(gh_hub_destroy());
}

/* A caller killed while its lookup is queued behind a busy worker: GH_ECANCELED;
 * the lookup runs later and greenhub frees its result (valgrind: nothing lost). */
static void *lookup_localhost(void *arg) {
    struct addrinfo *res = NULL;
    (void)arg;
    int rc = gh_getaddrinfo("localhost", "80", NULL, &res);
    if (res) freeaddrinfo(res);
    return RC_PTR(rc);
}
TEST(gai_killed_caller_result_freed) {
    gh_greenlet busy, g;
    ASSERT_OK(gh_threadpool_set_size(1));
    ASSERT_OK(gh_spawn(&busy, apply_gated, (void *)(intptr_t)1));
    ASSERT_OK(wait_until(&gate_started, 1, 10.0));
    ASSERT_OK(gh_spawn(&g, lookup_localhost, NULL));
    ASSERT_OK(gh_sleep(0.01));
    ASSERT_EQ(gh_greenlet_state(g), GH_STATE_WAITING);
    ASSERT_OK(gh_kill(g, 5.0));
    ASSERT_CODE(PTR_RC(join_value(g)), GH_ECANCELED);
    atomic_store(&gate_open, 1);
    ASSERT_EQ((intptr_t)join_value(busy), 1);
    ASSERT_OK(gh_sleep(0.1)); /* the lookup runs now; its result is dropped */
    assert_pool_works();
    ASSERT_OK(gh_hub_destroy());
}

/* The same with a gh_timeout: GH_ETIMEDOUT, the late result is freed. */
static void *lookup_with_timeout(void *arg) {
    gh_timeout t;
    (void)arg;
    int rc = gh_timeout_start(&t, 0.03);
    if (rc != GH_OK) return RC_PTR(rc);
    rc = PTR_RC(lookup_localhost(NULL));
    gh_timeout_cancel(t);
    return RC_PTR(rc);
}
TEST(gai_timed_out_caller_result_freed) {
    gh_greenlet busy, g;
    ASSERT_OK(gh_threadpool_set_size(1));
    ASSERT_OK(gh_spawn(&busy, apply_gated, (void *)(intptr_t)1));
    ASSERT_OK(wait_until(&gate_started, 1, 10.0));
    ASSERT_OK(gh_spawn(&g, lookup_with_timeout, NULL));
    ASSERT_CODE(PTR_RC(join_value(g)), GH_ETIMEDOUT);
    atomic_store(&gate_open, 1);
    ASSERT_EQ((intptr_t)join_value(busy), 1);
    ASSERT_OK(gh_sleep(0.1));
    assert_pool_works();
    ASSERT_OK(gh_hub_destroy());
}

/* The hub destroyed while a lookup is queued: its copied arguments and any result
 * are freed by greenhub (valgrind: nothing lost), no crash. */
TEST(gai_destroy_with_lookup_pending) {
    gh_greenlet busy, g;
    ASSERT_OK(gh_threadpool_set_size(1));
    ASSERT_OK(gh_spawn(&busy, apply_gated, (void *)(intptr_t)1));
    ASSERT_OK(wait_until(&gate_started, 1, 10.0));
    ASSERT_OK(gh_spawn(&g, lookup_localhost, NULL));
    ASSERT_OK(gh_sleep(0.01));
    ASSERT_EQ(gh_greenlet_state(g), GH_STATE_WAITING);
    ASSERT_OK(gh_hub_destroy());
    atomic_store(&gate_open, 1);
    ASSERT_OK(spin_until(&gate_finished, 1, 5.0));
    msleep(100);
}

int main(int argc, char **argv) {
    TEST_INIT(argc, argv);
    RUN(apply_returns_result);
    RUN(apply_result_null_still_runs);
    RUN(main_waiting_on_job_no_loopexit);
    RUN(apply_only_caller_waits);
    RUN(apply_10000_concurrent);
    RUN(apply_timeout_drops_late_result);
    RUN(apply_killed_waiter_ecanceled);
    RUN(apply_thrown_waiter_gets_code);
    RUN(apply_null_fn_einval);
    RUN(apply_from_callback_eperm);
    RUN(fn_uses_own_hub_not_callers);
    RUN(apply_from_other_thread_own_pool);
    RUN(default_size_is_10);
    RUN(set_size_bounds_workers);
    RUN(set_size_raised_later);
    RUN(set_size_invalid);
    RUN(destroy_while_jobs_run);
    RUN(destroy_with_queued_jobs);
    RUN(gai_localhost_resolves);
    RUN(gai_localhost_inet_stream);
    RUN(gai_service_only);
    RUN(gai_unresolvable_name);
    RUN(gai_bad_family_code);
    RUN(gai_einval);
    RUN(gai_from_callback_eperm);
    RUN(gai_concurrent_lookups);
    RUN(gai_killed_caller_result_freed);
    RUN(gai_timed_out_caller_result_freed);
    RUN(gai_destroy_with_lookup_pending);
    return TEST_DONE();
}

/* test_faultinject.c — FAULTS 23: make the N-th mmap / madvise / epoll_ctl / eventfd /
 * epoll_create / thread start fail, for N = 1, 2, … until the operation no longer makes
 * an N-th such call, for each operation: hub creation, spawn, io watcher start, an IO
 * wait, a thread-pool call. At every N: a clean documented code (or success when the
 * failure is absorbed, e.g. a failed epoll registration is treated as always ready),
 * no crash, no hang (the harness's time bound), fds and memory mappings back at their
 * baseline after gh_hub_destroy, and the same operation succeeding once the injection
 * is off. malloc is not injectable: the library never allocates fallibly
 * (GH_FAIL_MALLOC is GH_ENOTSUP, checked below).
 *
 * scripts/test.sh runs this program twice: linked against the ordinary library, where
 * gh_debug_fail_nth must be GH_ENOTSUP for every site and gh_build_info must not list
 * fault-injection; and linked against a library built with
 * `cargo build --features fault-injection` (target/fault-injection/), where the loops run.
 */
#include "harness.h"

#include <pthread.h>

static int hook_built(void) { return gh_debug_fail_nth(GH_FAIL_MMAP, 0) != GH_ENOTSUP; }

static const int SITES[] = {GH_FAIL_MMAP,    GH_FAIL_MADVISE,      GH_FAIL_EPOLL_CTL,
                            GH_FAIL_EVENTFD, GH_FAIL_EPOLL_CREATE, GH_FAIL_THREAD};
static const char *const SITE_NAMES[] = {"mmap",    "madvise",      "epoll_ctl",
                                         "eventfd", "epoll_create", "thread"};
#define NSITES ((int)(sizeof SITES / sizeof SITES[0]))

/* ---- the hook without the feature ---------------------------------------- */

TEST(hook_absent_or_present_as_the_build_says) {
    const char *info = gh_build_info();
    int i;
    if (!hook_built()) {
        ASSERT_TRUE(strstr(info, "fault-injection") == NULL);
        for (i = 0; i < NSITES; i++) ASSERT_CODE(gh_debug_fail_nth(SITES[i], 1), GH_ENOTSUP);
        ASSERT_CODE(gh_debug_fail_nth(GH_FAIL_MALLOC, 1), GH_ENOTSUP);
        printf("  library built without fault-injection: the loops are not run here\n");
        return;
    }
    ASSERT_TRUE(strstr(info, "fault-injection") != NULL);
    ASSERT_CODE(gh_debug_fail_nth(GH_FAIL_MALLOC, 1), GH_ENOTSUP);
    ASSERT_CODE(gh_debug_fail_nth(0, 1), GH_EINVAL);
    ASSERT_CODE(gh_debug_fail_nth(99, 1), GH_EINVAL);
    /* arming returns the countdown it replaced */
    ASSERT_EQ(gh_debug_fail_nth(GH_FAIL_THREAD, 7), 0);
    ASSERT_EQ(gh_debug_fail_nth(GH_FAIL_THREAD, 0), 7);
}

/* ---- operations ----------------------------------------------------------- */

/* Each operation: setup (not injected), then the step under injection, returning its
 * code. The hub exists before the step except for hub creation. */

static int op_hub_create_setup(void) { return 0; }
static int op_hub_create(void) { return gh_sleep(0); }

static void *nothing(void *arg) { return arg; }
static int op_spawn_setup(void) { return gh_sleep(0); }
static int op_spawn(void) {
    gh_spawn_options o = {0};
    gh_greenlet g;
    void *r = NULL;
    int rc;
    o.stack_size = 16 * 1024;
    rc = gh_spawn_ex(&g, nothing, (void *)&o, &o);
    if (rc) return rc;
    rc = gh_join(g, GH_FOREVER, &r);
    gh_release(g);
    if (rc == 0 && r != (void *)&o) return -9999;
    return rc;
}

static int pipefd[2] = {-1, -1};
static int fired_cb;
static void on_io(gh_watcher w, int revents, void *arg) {
    (void)revents;
    (void)arg;
    fired_cb++;
    gh_watcher_stop(w);
}
static int op_watcher_setup(void) {
    if (pipe(pipefd) != 0) return -errno;
    if (write(pipefd[1], "x", 1) != 1) return -errno;
    return gh_sleep(0);
}
static int op_watcher(void) {
    gh_watcher w;
    int rc = gh_io_new(&w, pipefd[0], GH_READ);
    if (rc) return rc;
    fired_cb = 0;
    rc = gh_watcher_start(w, on_io, NULL);
    if (rc == 0) rc = gh_hub_run(); /* until the callback stops the watcher */
    if (rc == 0 && !fired_cb) rc = -9998; /* the readable pipe never fired */
    gh_watcher_close(w);
    return rc;
}
static void op_pipe_teardown(void) {
    if (pipefd[0] >= 0) close(pipefd[0]);
    if (pipefd[1] >= 0) close(pipefd[1]);
    pipefd[0] = pipefd[1] = -1;
}

static void *writer(void *arg) {
    (void)arg;
    gh_sleep(0);
    if (write(pipefd[1], "y", 1) != 1) return (void *)1;
    return NULL;
}
static int op_io_wait_setup(void) {
    if (pipe(pipefd) != 0) return -errno;
    return gh_sleep(0);
}
static int op_io_wait(void) {
    gh_greenlet g;
    char c;
    int rc = gh_spawn(&g, writer, NULL), jr;
    if (rc) return rc;
    rc = gh_wait_read(pipefd[0], 10.0);
    jr = gh_join(g, GH_FOREVER, NULL);
    gh_release(g);
    if (rc == 0 && read(pipefd[0], &c, 1) != 1) rc = -9997;
    return rc ? rc : jr;
}

static void *pool_job(void *arg) { return arg; }
static int op_pool_setup(void) { return gh_sleep(0); }
static int op_pool(void) {
    void *r = NULL;
    int rc = gh_threadpool_apply(pool_job, (void *)pool_job, &r);
    if (rc == 0 && r != (void *)pool_job) return -9996;
    return rc;
}

struct op {
    const char *name;
    int (*setup)(void);
    int (*step)(void);
    void (*teardown)(void);
    int check_maps; /* worker threads end asynchronously: their stacks may linger */
    /* sites the step must call at least once (so N = 1 fires) */
    int must[4];
};

static const struct op OPS[] = {
    {"hub creation", op_hub_create_setup, op_hub_create, NULL, 1,
     {GH_FAIL_MMAP, GH_FAIL_EVENTFD, GH_FAIL_EPOLL_CREATE, GH_FAIL_EPOLL_CTL}},
    {"spawn", op_spawn_setup, op_spawn, NULL, 1, {GH_FAIL_MMAP, GH_FAIL_MADVISE, 0, 0}},
    {"watcher start", op_watcher_setup, op_watcher, op_pipe_teardown, 1,
     {GH_FAIL_EPOLL_CTL, 0, 0, 0}},
    {"io wait", op_io_wait_setup, op_io_wait, op_pipe_teardown, 1,
     {GH_FAIL_EPOLL_CTL, GH_FAIL_MMAP, GH_FAIL_MADVISE, 0}},
    {"threadpool", op_pool_setup, op_pool, NULL, 0, {GH_FAIL_THREAD, 0, 0, 0}},
};
#define NOPS ((int)(sizeof OPS / sizeof OPS[0]))

/* The codes a failed step may return: documented for these operations. */
static int allowed(int rc) {
    return rc == 0 || rc == GH_ENOMEM || rc == -EMFILE || rc == -EAGAIN || rc == GH_EBADF;
}

static int must_fire(const struct op *op, int what) {
    int i;
    for (i = 0; i < 4; i++)
        if (op->must[i] == what) return 1;
    return 0;
}

/* One (operation, site) pair: N = 1.. until the N-th call never comes. */
static void inject_loop(const struct op *op, int si) {
    int what = SITES[si], n, fds0, rc, failures = 0;
    long maps0;
    for (n = 1; n <= 64; n++) {
        int left;
        ASSERT_OK(gh_hub_destroy());
        fds0 = gh_test_fd_count();
        maps0 = gh_test_map_count();
        ASSERT_OK(op->setup());
        ASSERT_EQ(gh_debug_fail_nth(what, (unsigned)n), 0);
        rc = op->step();
        left = gh_debug_fail_nth(what, 0);
        ASSERT_TRUE(left >= 0);
        if (!allowed(rc)) {
            printf("  %s, %s #%d: %s\n", op->name, SITE_NAMES[si], n, gh_err_name(rc));
            ASSERT_TRUE(allowed(rc));
        }
        if (rc != 0) failures++;
        /* injection off: the same step works (a failed hub creation is simply retried) */
        ASSERT_OK(op->step());
        if (op->teardown) op->teardown();
        ASSERT_OK(gh_hub_destroy());
        ASSERT_EQ(gh_test_fd_count(), fds0);
        if (op->check_maps && !gh_test_under_valgrind()) ASSERT_EQ(gh_test_map_count(), maps0);
        if (left > 0) { /* fewer than n such calls: nothing failed, done */
            ASSERT_OK(rc);
            break;
        }
        if (n == 1 && must_fire(op, what) && rc == 0 && what != GH_FAIL_EPOLL_CTL) {
            printf("  %s, %s #1 fired but the step succeeded\n", op->name, SITE_NAMES[si]);
            ASSERT_TRUE(rc != 0);
        }
    }
    if (n == 1 && must_fire(op, what)) {
        printf("  %s never calls %s\n", op->name, SITE_NAMES[si]);
        ASSERT_TRUE(!must_fire(op, what));
    }
    ASSERT_TRUE(n <= 64);
    printf("  %-13s %-12s: %d call(s), %d failed cleanly\n", op->name, SITE_NAMES[si], n - 1,
           failures);
}

static void run_op(int oi) {
    int si;
    if (!hook_built())
        SKIP("library built without the fault-injection feature; runs against the "
             "fault-injection build in scripts/test.sh");
    /* warm up: lazily initialised process state (handlers, malloc arenas) */
    ASSERT_OK(OPS[oi].setup());
    ASSERT_OK(OPS[oi].step());
    if (OPS[oi].teardown) OPS[oi].teardown();
    for (si = 0; si < NSITES; si++) inject_loop(&OPS[oi], si);
    ASSERT_OK(gh_hub_destroy());
}

TEST(inject_hub_creation) { run_op(0); }
TEST(inject_spawn) { run_op(1); }
TEST(inject_watcher_start) { run_op(2); }
TEST(inject_io_wait) { run_op(3); }
TEST(inject_threadpool) { run_op(4); }

int main(int argc, char **argv) {
    /* The epoll_ctl / epoll_create sites are in the raw epoll backend: pin it, whatever
     * backend the suite runs under (CI runs the C suite under polling and poll too). */
    setenv("GREENHUB_BACKEND", "epoll", 1);
    TEST_INIT(argc, argv);
    RUN(hook_absent_or_present_as_the_build_says);
    RUN(inject_hub_creation);
    RUN(inject_spawn);
    RUN(inject_watcher_start);
    RUN(inject_io_wait);
    RUN(inject_threadpool);
    return TEST_DONE();
}

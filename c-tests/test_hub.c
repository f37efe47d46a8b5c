/* test_hub.c — the Conventions, Version and Hub sections of include/greenhub.h:
 * error codes and their names/sentences, the version, hub configuration (struct,
 * environment), gh_hub_run, gh_hub_destroy, gh_hub_wait, gh_hub_current,
 * gh_hub_backend, LoopExit, and hubs in several threads.
 *
 * Build and run: see /work/brief/tests.md (links with -lpthread).
 */
#include "harness.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>

/* ---- helpers ------------------------------------------------------------ */

/* The backend this run uses: GREENHUB_BACKEND (the suite runs once per backend,
 * see .ci/run) or the Linux default "epoll". */
static const char *run_backend(void) {
    const char *b = getenv("GREENHUB_BACKEND");
    return b && *b ? b : "epoll";
}

#define KIB ((size_t)1024)
#define MIB ((size_t)1024 * 1024)
#define GIB ((size_t)1024 * 1024 * 1024)

/* Recursion that touches `bytes` of stack, a 4 KiB frame at a time. */
static int touch_stack(size_t bytes, volatile char *parent) {
    volatile char buf[4096];
    size_t i;
    parent[1] = 1; /* the caller's frame is in use during this call: no tail call */
    for (i = 0; i < sizeof buf; i += 256) buf[i] = (char)i;
    if (bytes > sizeof buf) (void)touch_stack(bytes - sizeof buf, buf);
    return buf[256] + buf[1];
}

/* A greenlet that touches (size_t)arg bytes of its stack and returns 0x5AFE. */
static void *stack_toucher(void *arg) {
    char top[2] = {0, 0};
    (void)touch_stack((size_t)(uintptr_t)arg, top);
    return (void *)(uintptr_t)0x5AFE;
}

/* Spawns stack_toucher(bytes) with the hub's default stack and joins it. */
static void spawn_touch_join(size_t bytes) {
    gh_greenlet g;
    void *res = NULL;
    ASSERT_OK(gh_spawn(&g, stack_toucher, (void *)(uintptr_t)bytes));
    ASSERT_OK(gh_join(g, GH_FOREVER, &res));
    ASSERT_EQ((uintptr_t)res, 0x5AFE);
    ASSERT_OK(gh_release(g));
}

/* Forks a process that (with no greenhub environment) runs stack_toucher(bytes) on a
 * default-sized stack; returns 1 if that process died of a signal, 0 if it lived. Its
 * stderr (greenhub's "stack overflow" line, expected) is read here, not printed; the
 * line is not required: built with -O2, touch_stack's first store into a new frame can
 * land beyond the one guard page, and that fault is not recognised as an overflow.
 * Must be called before this process makes any greenhub call. */
static int default_stack_overflows(size_t bytes) {
    static char err[4096];
    int status = 0, p[2];
    size_t got = 0;
    ssize_t n;
    pid_t pid;
    ASSERT_EQ(pipe(p), 0);
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    ASSERT_TRUE(pid >= 0);
    if (pid == 0) {
        dup2(p[1], 2);
        close(p[0]);
        /* The overflow must kill this child with the signal: under ASan its SEGV
         * handler would report the overflow and exit(1) instead. */
        signal(SIGSEGV, SIG_DFL);
        unsetenv("GREENHUB_STACK_SIZE");
        spawn_touch_join(bytes);
        _exit(0);
    }
    close(p[1]);
    while (got + 1 < sizeof err && (n = read(p[0], err + got, sizeof err - 1 - got)) > 0)
        got += (size_t)n;
    err[got] = 0;
    close(p[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFSIGNALED(status);
}

static void *return_arg(void *arg) { return arg; }

/* ---- Conventions: error codes ------------------------------------------- */

#define CODE(c) {c, #c}
static const struct {
    int code;
    const char *name;
} CODES[] = {
    CODE(GH_OK),         CODE(GH_EPERM),        CODE(GH_EINTR),        CODE(GH_EBADF),
    CODE(GH_EAGAIN),     CODE(GH_ENOMEM),       CODE(GH_EBUSY),        CODE(GH_EINVAL),
    CODE(GH_EDEADLK),    CODE(GH_ENOTSUP),      CODE(GH_ETIMEDOUT),    CODE(GH_ECANCELED),
    CODE(GH_EBADHANDLE), CODE(GH_EWRONGTHREAD), CODE(GH_ELOOPEXIT),    CODE(GH_EDEAD),
    CODE(GH_ENOSWITCH),  CODE(GH_ECLOSED),      CODE(GH_EINTERNAL),    CODE(GH_EBACKEND),
    CODE(GH_EEXIST),     CODE(GH_ERANGE),
    CODE(GH_EEOF),       CODE(GH_EMSGSIZE),     CODE(GH_EPROTOTYPE),
    CODE(GH_EIO),        CODE(GH_ECHILD),       CODE(GH_ENFILE),       CODE(GH_EMFILE),
    CODE(GH_EPIPE),      CODE(GH_EOVERFLOW),    CODE(GH_ENOTSOCK),     CODE(GH_ENETUNREACH),
    CODE(GH_ECONNRESET), CODE(GH_EISCONN),      CODE(GH_ECONNREFUSED), CODE(GH_EHOSTUNREACH),
};
#define NCODES (sizeof CODES / sizeof CODES[0])

/* gh_err_name gives exactly the macro's name for every code of the header, and
 * gh_strerror a real (non-empty, not "unknown") sentence. */
TEST(err_name_and_strerror_every_code) {
    size_t i;
    for (i = 0; i < NCODES; i++) {
        const char *s = gh_strerror(CODES[i].code);
        ASSERT_STREQ(gh_err_name(CODES[i].code), CODES[i].name);
        ASSERT_TRUE(s != NULL);
        ASSERT_TRUE(s[0] != '\0');
        if (strcmp(s, "unknown error code") == 0)
            GH_TEST_FAIL_("gh_strerror(%s) is the unknown-code sentence", CODES[i].name);
    }
    ASSERT_OK(gh_hub_destroy()); /* no hub: GH_OK */
}

/* Unknown codes: "GH_UNKNOWN" and the documented "unknown error code" (never NULL),
 * including INT_MIN, INT_MAX and the gap between errno values and library codes. */
TEST(err_name_and_strerror_unknown_codes) {
    static const int unknown[] = {1, 42, INT_MAX, INT_MIN, INT_MIN + 1, -1000, -1099, -99999};
    size_t i;
    for (i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        ASSERT_STREQ(gh_err_name(unknown[i]), "GH_UNKNOWN");
        ASSERT_STREQ(gh_strerror(unknown[i]), "unknown error code");
    }
    ASSERT_OK(gh_hub_destroy()); /* no hub: GH_OK */
}

/* OS codes are -errno (libuv style); library codes are below -1000 and all distinct. */
TEST(error_code_values) {
    size_t i, j;
    ASSERT_EQ(GH_OK, 0);
    ASSERT_EQ(GH_EPERM, -EPERM);
    ASSERT_EQ(GH_EINTR, -EINTR);
    ASSERT_EQ(GH_EBADF, -EBADF);
    ASSERT_EQ(GH_EAGAIN, -EAGAIN);
    ASSERT_EQ(GH_ENOMEM, -ENOMEM);
    ASSERT_EQ(GH_EBUSY, -EBUSY);
    ASSERT_EQ(GH_EINVAL, -EINVAL);
    ASSERT_EQ(GH_EDEADLK, -EDEADLK);
    ASSERT_EQ(GH_ENOTSUP, -ENOTSUP);
    ASSERT_EQ(GH_ETIMEDOUT, -ETIMEDOUT);
    ASSERT_EQ(GH_ECANCELED, -ECANCELED);
    ASSERT_TRUE(GH_EBADHANDLE < -1000);
    ASSERT_TRUE(GH_EWRONGTHREAD < -1000);
    ASSERT_TRUE(GH_ELOOPEXIT < -1000);
    ASSERT_TRUE(GH_EDEAD < -1000);
    ASSERT_TRUE(GH_ENOSWITCH < -1000);
    ASSERT_TRUE(GH_ECLOSED < -1000);
    ASSERT_TRUE(GH_EINTERNAL < -1000);
    for (i = 0; i < NCODES; i++)
        for (j = i + 1; j < NCODES; j++) ASSERT_NE(CODES[i].code, CODES[j].code);
    ASSERT_OK(gh_hub_destroy()); /* no hub: GH_OK */
}

/* gh_strerror / gh_err_name work from a thread that never made a hub, and give the
 * same static strings there. */
static void *names_in_thread(void *arg) {
    (void)arg;
    return (void *)gh_err_name(GH_ETIMEDOUT);
}
TEST(err_name_any_thread) {
    pthread_t t;
    void *r = NULL;
    ASSERT_OK(pthread_create(&t, NULL, names_in_thread, NULL));
    ASSERT_OK(pthread_join(t, &r));
    ASSERT_STREQ((const char *)r, "GH_ETIMEDOUT");
    ASSERT_TRUE((const char *)r == gh_err_name(GH_ETIMEDOUT)); /* static: same pointer */
    ASSERT_OK(gh_hub_destroy()); /* no hub: GH_OK */
}

/* ---- Version ------------------------------------------------------------ */

/* gh_version() == GH_VERSION_HEX; gh_version_string() is "MAJOR.MINOR.PATCH". */
TEST(version_matches_header) {
    char want[64];
    ASSERT_EQ(GH_VERSION_HEX,
              (GH_VERSION_MAJOR << 16) | (GH_VERSION_MINOR << 8) | GH_VERSION_PATCH);
    ASSERT_EQ(gh_version(), GH_VERSION_HEX);
    snprintf(want, sizeof want, "%d.%d.%d", GH_VERSION_MAJOR, GH_VERSION_MINOR,
             GH_VERSION_PATCH);
    ASSERT_STREQ(gh_version_string(), want);
    ASSERT_OK(gh_hub_destroy()); /* no hub: GH_OK */
}

/* ---- gh_hub_config_init / gh_hub_configure ------------------------------ */

/* gh_hub_config_init overwrites every field with the defaults; NULL is ignored. */
TEST(config_init_fills_defaults) {
    gh_hub_config cfg;
    memset(&cfg, 0xAB, sizeof cfg);
    gh_hub_config_init(&cfg);
    ASSERT_TRUE(cfg.backend == NULL);
    ASSERT_EQ(cfg.stack_size, 0);
    ASSERT_EQ(cfg.monitor, 0);
    ASSERT_TRUE(cfg.max_blocking_time == 0.0);
    gh_hub_config_init(NULL);
    ASSERT_OK(gh_hub_destroy());
}

/* Configure before first use: GH_OK. The calls that need no hub (names, version,
 * config_init, destroy without a hub) do not count as first use. */
TEST(configure_before_first_use) {
    gh_hub_config cfg;
    int fd0 = gh_test_fd_count();
    (void)gh_strerror(GH_EINVAL);
    (void)gh_err_name(GH_EINVAL);
    (void)gh_version();
    (void)gh_version_string();
    ASSERT_OK(gh_hub_destroy()); /* no hub: GH_OK, creates none */
    ASSERT_EQ(gh_test_fd_count(), fd0);
    gh_hub_config_init(&cfg);
    ASSERT_OK(gh_hub_configure(&cfg));
    ASSERT_STREQ(gh_hub_backend(), run_backend());
    spawn_touch_join(4 * KIB);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fd0);
}

/* NULL cfg: GH_EINVAL, and no hub is created by the failed call. */
TEST(configure_null) {
    gh_hub_config cfg;
    ASSERT_CODE(gh_hub_configure(NULL), GH_EINVAL);
    gh_hub_config_init(&cfg);
    ASSERT_OK(gh_hub_configure(&cfg));
    ASSERT_OK(gh_hub_destroy());
}

/* After any call that creates the hub, configure is GH_EBUSY; after gh_hub_destroy
 * the thread has no hub and configure works again. */
static int first_use(int which) {
    gh_greenlet g;
    switch (which) {
    case 0: return gh_sleep(0);
    case 1: return gh_hub_current().id != 0 ? GH_OK : GH_EINTERNAL;
    case 2: return gh_hub_backend() != NULL ? GH_OK : GH_EINTERNAL;
    case 3: return gh_current().id != 0 ? GH_OK : GH_EINTERNAL;
    case 4: return gh_main().id != 0 ? GH_OK : GH_EINTERNAL;
    case 5: return gh_spawn(NULL, return_arg, NULL);
    case 6: {
        gh_watcher w;
        int rc = gh_timer_new(&w, 1.0, 0);
        if (rc == GH_OK) rc = gh_watcher_close(w);
        return rc;
    }
    case 7: return gh_run_callback(free, NULL);
    case 8: {
        int rc = gh_spawn(&g, return_arg, NULL);
        if (rc == GH_OK) rc = gh_release(g);
        return rc;
    }
    default: return gh_hub_run();
    }
}
TEST(configure_after_first_use_busy) {
    gh_hub_config cfg;
    int which;
    gh_hub_config_init(&cfg);
    for (which = 0; which <= 9; which++) {
        ASSERT_OK(first_use(which));
        ASSERT_CODE(gh_hub_configure(&cfg), GH_EBUSY);
        ASSERT_OK(gh_hub_destroy());
        ASSERT_OK(gh_hub_configure(&cfg)); /* no hub any more: allowed again */
        ASSERT_CODE(gh_hub_configure(&cfg), GH_EBUSY); /* configuring creates it */
        ASSERT_OK(gh_hub_destroy());
    }
}

/* Each backend name ("epoll", "polling", "poll", "select"): GH_OK and gh_hub_backend() names it,
 * whatever GREENHUB_BACKEND says (the config wins over the environment). */
TEST(configure_backend_epoll) {
    static const char *const names[] = {"epoll", "polling", "poll", "select"};
    gh_hub_config cfg;
    size_t i;
    for (i = 0; i < sizeof names / sizeof names[0]; i++) {
        gh_hub_config_init(&cfg);
        cfg.backend = names[i];
        ASSERT_OK(gh_hub_configure(&cfg));
        ASSERT_STREQ(gh_hub_backend(), names[i]);
        ASSERT_OK(gh_sleep(0.001));
        ASSERT_OK(gh_hub_destroy());
    }
}

/* Unknown backend: GH_EINVAL (no silent fallback, no hub created, no fd leaked);
 * monitor = 1 with an infinite threshold: GH_EINVAL; with the default one it works. */
TEST(configure_bad_backend_and_monitor) {
    gh_hub_config cfg;
    int fd0 = gh_test_fd_count();
    const char *err;
    gh_hub_config_init(&cfg);
    gh_test_capture_stderr_begin();
    cfg.backend = "nope";
    ASSERT_CODE(gh_hub_configure(&cfg), GH_EINVAL);
    cfg.backend = "";
    ASSERT_CODE(gh_hub_configure(&cfg), GH_EINVAL);
    cfg.backend = "EPOLL";
    ASSERT_CODE(gh_hub_configure(&cfg), GH_EINVAL);
    cfg.backend = "Poll";
    ASSERT_CODE(gh_hub_configure(&cfg), GH_EINVAL);
    cfg.backend = "polling ";
    ASSERT_CODE(gh_hub_configure(&cfg), GH_EINVAL);
    gh_hub_config_init(&cfg);
    cfg.monitor = 1;
    cfg.max_blocking_time = INFINITY;
    ASSERT_CODE(gh_hub_configure(&cfg), GH_EINVAL);
    err = gh_test_capture_stderr_end(); /* a line for the first bad name */
    ASSERT_TRUE(strstr(err, "greenhub: unknown backend \"nope\"") != NULL);
    ASSERT_EQ(gh_test_fd_count(), fd0);
    gh_hub_config_init(&cfg); /* none of the failures created the hub */
    cfg.monitor = 1;
    ASSERT_OK(gh_hub_configure(&cfg));
    ASSERT_OK(gh_monitor_stop());
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fd0);
}

/* max_blocking_time NaN or negative: GH_EINVAL; a positive value is accepted. */
TEST(configure_bad_max_blocking_time) {
    gh_hub_config cfg;
    gh_hub_config_init(&cfg);
    cfg.max_blocking_time = NAN;
    ASSERT_CODE(gh_hub_configure(&cfg), GH_EINVAL);
    cfg.max_blocking_time = -0.1;
    ASSERT_CODE(gh_hub_configure(&cfg), GH_EINVAL);
    cfg.max_blocking_time = -INFINITY;
    ASSERT_CODE(gh_hub_configure(&cfg), GH_EINVAL);
    cfg.max_blocking_time = 0.5;
    ASSERT_OK(gh_hub_configure(&cfg));
    ASSERT_OK(gh_hub_destroy());
}

/* stack_size above 1 GiB: GH_EINVAL; exactly 1 GiB and tiny sizes are accepted. */
TEST(configure_stack_size_limits) {
    static const size_t bad[] = {GIB + 1, GIB + 4096, SIZE_MAX, SIZE_MAX - 4095, (size_t)-1};
    static const size_t good[] = {1, 4095, 4097, GIB};
    gh_hub_config cfg;
    size_t i;
    gh_hub_config_init(&cfg);
    gh_test_capture_stderr_begin();
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cfg.stack_size = bad[i];
        ASSERT_CODE(gh_hub_configure(&cfg), GH_EINVAL);
    }
    ASSERT_TRUE(strstr(gh_test_capture_stderr_end(), "greenhub: stack size 1073741825 is too large") != NULL);
    for (i = 0; i < sizeof good / sizeof good[0]; i++) {
        cfg.stack_size = good[i];
        ASSERT_OK(gh_hub_configure(&cfg));
        spawn_touch_join(4 * KIB); /* fits even the 16 KiB minimum */
        ASSERT_OK(gh_hub_destroy());
    }
}

/* A configured stack_size is what gh_spawn uses: with 1 MiB a greenlet touches 900 KiB
 * of stack; the control (default 256 KiB, in a forked process) dies doing the same. */
TEST(configure_stack_size_used) {
    gh_hub_config cfg;
    ASSERT_TRUE(default_stack_overflows(900 * KIB));
    gh_hub_config_init(&cfg);
    cfg.stack_size = MIB;
    ASSERT_OK(gh_hub_configure(&cfg));
    spawn_touch_join(900 * KIB);
    spawn_touch_join(900 * KIB); /* a recycled stack too */
    ASSERT_OK(gh_hub_destroy());
}

/* GREENHUB_BACKEND=nope: the first call that needs the hub fails with GH_EINVAL (and
 * gh_hub_current/gh_hub_backend report failure); gh_hub_configure's backend wins over
 * the environment. (This case's process sets the variable before any greenhub call.) */
TEST(env_backend_unknown) {
    gh_hub_config cfg;
    gh_greenlet g = {0x1234};
    int fd0 = gh_test_fd_count();
    ASSERT_OK(setenv("GREENHUB_BACKEND", "nope", 1));
    gh_test_capture_stderr_begin();
    ASSERT_CODE(gh_spawn(&g, return_arg, NULL), GH_EINVAL);
    ASSERT_TRUE(strstr(gh_test_capture_stderr_end(), "greenhub: unknown backend \"nope\"") != NULL);
    ASSERT_EQ(g.id, 0x1234); /* *out not written on failure */
    ASSERT_CODE(gh_sleep(0), GH_EINVAL);
    ASSERT_EQ(gh_hub_current().id, 0);
    ASSERT_TRUE(gh_hub_backend() == NULL);
    ASSERT_EQ(gh_test_fd_count(), fd0);
    gh_hub_config_init(&cfg);
    cfg.backend = "epoll";
    ASSERT_OK(gh_hub_configure(&cfg));
    ASSERT_STREQ(gh_hub_backend(), "epoll");
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fd0);
}

/* GREENHUB_BACKEND=epoll|polling|poll is accepted and named by gh_hub_backend()
 * (each name in a fresh hub: the variable is read when a hub is created). */
TEST(env_backend_epoll) {
    static const char *const names[] = {"epoll", "polling", "poll", "select"};
    size_t i;
    for (i = 0; i < sizeof names / sizeof names[0]; i++) {
        ASSERT_OK(setenv("GREENHUB_BACKEND", names[i], 1));
        ASSERT_OK(gh_sleep(0));
        ASSERT_STREQ(gh_hub_backend(), names[i]);
        ASSERT_OK(gh_hub_destroy());
    }
}

/* GREENHUB_STACK_SIZE=abc: the first call fails with GH_EINVAL. */
TEST(env_stack_size_bad) {
    gh_greenlet g;
    ASSERT_OK(setenv("GREENHUB_STACK_SIZE", "abc", 1));
    gh_test_capture_stderr_begin();
    ASSERT_CODE(gh_spawn(&g, return_arg, NULL), GH_EINVAL);
    ASSERT_CODE(gh_sleep(0), GH_EINVAL);
    ASSERT_EQ(gh_hub_current().id, 0);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_TRUE(strstr(gh_test_capture_stderr_end(), "GREENHUB_STACK_SIZE=\"abc\" is not a size") != NULL);
}

/* GREENHUB_STACK_SIZE=512K is accepted and used: a greenlet touches 450 KiB of stack,
 * which kills the default-stack control. */
TEST(env_stack_size_512k) {
    ASSERT_TRUE(default_stack_overflows(450 * KIB));
    ASSERT_OK(setenv("GREENHUB_STACK_SIZE", "512K", 1));
    spawn_touch_join(450 * KIB);
    ASSERT_OK(gh_hub_destroy());
}

/* ---- gh_hub_run ---------------------------------------------------------- */

/* Nothing to do: gh_hub_run returns GH_OK at once (twice in a row too). */
TEST(run_empty) {
    int fd0 = gh_test_fd_count();
    ASSERT_OK(gh_hub_run());
    ASSERT_OK(gh_hub_run());
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fd0);
}

/* sleep_and_log(id) sleeps until run_base + id * RUN_GAP, then logs id. The deadlines
 * share one time base, taken once the hub exists (creating it took 80-250 ms under
 * valgrind on a loaded machine), so how late each greenlet got to start does not move
 * them: the order holds as long as all three started within 2 * RUN_GAP. (With sleeps of
 * id * 10 ms counted from each greenlet's own start, the 30 ms sleeper, started first,
 * finished before the others when their starts were 20+ ms late.) */
#define RUN_GAP 0.1
static int run_order[8], run_n;
static double run_base;
static void *sleep_and_log(void *arg) {
    int id = (int)(intptr_t)arg;
    double left = run_base + RUN_GAP * id - gh_test_now();
    if (gh_sleep(left > 0 ? left : 0) != GH_OK) return NULL; /* negative would be forever */
    run_order[run_n++] = id;
    return arg;
}

/* gh_hub_run runs spawned greenlets to completion (in the order their sleeps end: the
 * greenlets are spawned 3, 1, 2 and their sleeps end 1, 2, 3, 100 ms apart). */
TEST(run_runs_greenlets_to_completion) {
    gh_greenlet g[3];
    int i, fd0 = gh_test_fd_count();
    ASSERT_OK(gh_spawn(&g[0], sleep_and_log, (void *)(intptr_t)3));
    ASSERT_OK(gh_spawn(&g[1], sleep_and_log, (void *)(intptr_t)1));
    ASSERT_OK(gh_spawn(&g[2], sleep_and_log, (void *)(intptr_t)2));
    run_base = gh_test_now(); /* none has started yet: they start in gh_hub_run */
    ASSERT_OK(gh_hub_run());
    /* the last sleeper (until run_base + 300 ms) was waited for */
    ASSERT_GE((gh_test_now() - run_base) * 1000, 0.9 * 3 * RUN_GAP * 1000);
    ASSERT_EQ(run_n, 3);
    ASSERT_EQ(run_order[0], 1);
    ASSERT_EQ(run_order[1], 2);
    ASSERT_EQ(run_order[2], 3);
    for (i = 0; i < 3; i++) {
        void *r = NULL;
        ASSERT_EQ(gh_greenlet_state(g[i]), GH_STATE_DEAD);
        ASSERT_OK(gh_join(g[i], 0, &r));
        ASSERT_TRUE(r != NULL);
        ASSERT_OK(gh_release(g[i]));
    }
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fd0);
}

static int timer_fired;
static double timer_fired_at;
static void on_timer(gh_watcher w, int revents, void *arg) {
    (void)w;
    (void)arg;
    if (revents == GH_TIMER) timer_fired++;
    timer_fired_at = gh_test_now();
}

/* An active referenced timer keeps gh_hub_run going until it fired. */
TEST(run_waits_for_referenced_timer) {
    gh_watcher w;
    double t0;
    ASSERT_OK(gh_timer_new(&w, 0.03, 0));
    t0 = gh_test_now(); /* before the start: the 30 ms count from the start */
    ASSERT_OK(gh_watcher_start(w, on_timer, NULL));
    ASSERT_OK(gh_hub_run());
    ASSERT_EQ(timer_fired, 1);
    if (timer_fired_at - t0 < 0.027)
        GH_TEST_FAIL_("timer of 30 ms fired %.6f s after its start", timer_fired_at - t0);
    ASSERT_EQ(gh_watcher_active(w), 0); /* a one-shot timer stopped itself */
    ASSERT_OK(gh_watcher_close(w));
    ASSERT_OK(gh_hub_destroy());
}

/* An unreferenced timer does not keep gh_hub_run going: it returns without firing it. */
TEST(run_ignores_unreferenced_timer) {
    gh_watcher w;
    ASSERT_OK(gh_timer_new(&w, 0.05, 0));
    ASSERT_OK(gh_watcher_start(w, on_timer, NULL));
    ASSERT_OK(gh_watcher_ref(w, 0));
    ASSERT_OK(gh_hub_run());
    ASSERT_EQ(timer_fired, 0);
    ASSERT_EQ(gh_watcher_active(w), 1);
    ASSERT_OK(gh_watcher_close(w));
    ASSERT_OK(gh_hub_destroy());
}

static int forever_rc = 12345;
static int after_block; /* set if a discarded greenlet ran past its blocking call */
static void *sleep_forever(void *arg) {
    (void)arg;
    forever_rc = gh_sleep(GH_FOREVER);
    after_block++;
    return NULL;
}

/* A greenlet parked forever is not runnable: gh_hub_run returns GH_OK and leaves it
 * parked (it is discarded by gh_hub_destroy without running on). */
TEST(run_returns_with_greenlet_parked_forever) {
    gh_greenlet g;
    ASSERT_OK(gh_spawn(&g, sleep_forever, NULL));
    ASSERT_OK(gh_hub_run());
    ASSERT_EQ(gh_greenlet_state(g), GH_STATE_WAITING);
    ASSERT_EQ(forever_rc, 12345);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(after_block, 0);
}

static int inner_rc = 12345;
static void *call_hub_run(void *arg) {
    (void)arg;
    inner_rc = gh_hub_run();
    return NULL;
}
static void *call_hub_destroy(void *arg) {
    (void)arg;
    inner_rc = gh_hub_destroy();
    return NULL;
}

/* gh_hub_run from a spawned greenlet: GH_EPERM, and the greenlet goes on normally. */
TEST(run_from_greenlet_eperm) {
    gh_greenlet g;
    ASSERT_OK(gh_spawn(&g, call_hub_run, NULL));
    ASSERT_OK(gh_join(g, GH_FOREVER, NULL));
    ASSERT_CODE(inner_rc, GH_EPERM);
    ASSERT_OK(gh_release(g));
    ASSERT_OK(gh_hub_destroy());
}

static int cb_run_rc = 12345, cb_destroy_rc = 12345, cb_calls;
static void hub_calls_from_callback(void *arg) {
    (void)arg;
    cb_run_rc = gh_hub_run();
    cb_destroy_rc = gh_hub_destroy();
    cb_calls++;
}
static void hub_calls_from_watcher(gh_watcher w, int revents, void *arg) {
    (void)w;
    (void)revents;
    hub_calls_from_callback(arg);
}

/* gh_hub_run and gh_hub_destroy from a gh_run_callback callback: GH_EPERM both. */
TEST(run_and_destroy_from_run_callback_eperm) {
    ASSERT_OK(gh_run_callback(hub_calls_from_callback, NULL));
    ASSERT_OK(gh_sleep(0));
    ASSERT_EQ(cb_calls, 1);
    ASSERT_CODE(cb_run_rc, GH_EPERM);
    ASSERT_CODE(cb_destroy_rc, GH_EPERM);
    ASSERT_OK(gh_sleep(0)); /* the hub still works */
    ASSERT_OK(gh_hub_destroy());
}

/* gh_hub_run and gh_hub_destroy from a watcher callback: GH_EPERM both. */
TEST(run_and_destroy_from_watcher_eperm) {
    gh_watcher w;
    ASSERT_OK(gh_timer_new(&w, 0.001, 0));
    ASSERT_OK(gh_watcher_start(w, hub_calls_from_watcher, NULL));
    ASSERT_OK(gh_sleep(0.02));
    ASSERT_EQ(cb_calls, 1);
    ASSERT_CODE(cb_run_rc, GH_EPERM);
    ASSERT_CODE(cb_destroy_rc, GH_EPERM);
    ASSERT_OK(gh_watcher_close(w));
    ASSERT_OK(gh_hub_destroy());
}

static void *kill_main(void *arg) {
    (void)arg;
    inner_rc = gh_kill(gh_main(), 0);
    return NULL;
}

/* main killed while in gh_hub_run: gh_hub_run returns GH_ECANCELED. */
TEST(run_main_killed_ecanceled) {
    gh_greenlet g;
    gh_watcher w;
    ASSERT_OK(gh_timer_new(&w, 0.05, 0)); /* keeps the loop alive past the kill */
    ASSERT_OK(gh_watcher_start(w, on_timer, NULL));
    ASSERT_OK(gh_spawn(&g, kill_main, NULL));
    ASSERT_CODE(gh_hub_run(), GH_ECANCELED);
    ASSERT_OK(inner_rc);
    ASSERT_OK(gh_release(g));
    ASSERT_OK(gh_hub_destroy());
}

/* ---- gh_hub_destroy ------------------------------------------------------ */

/* gh_hub_destroy from a spawned greenlet: GH_EPERM; the hub keeps working. */
TEST(destroy_from_greenlet_eperm) {
    gh_greenlet g;
    ASSERT_OK(gh_spawn(&g, call_hub_destroy, NULL));
    ASSERT_OK(gh_join(g, GH_FOREVER, NULL));
    ASSERT_CODE(inner_rc, GH_EPERM);
    ASSERT_EQ(gh_greenlet_state(g), GH_STATE_DEAD);
    ASSERT_OK(gh_release(g));
    spawn_touch_join(4 * KIB);
    ASSERT_OK(gh_hub_destroy());
}

/* Without a hub, gh_hub_destroy is GH_OK and creates nothing (twice in a row too). */
TEST(destroy_without_hub) {
    int fd0 = gh_test_fd_count();
    long maps0 = gh_test_map_count();
    ASSERT_OK(gh_hub_destroy());
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fd0);
    if (!gh_test_under_memory_tool()) ASSERT_EQ(gh_test_map_count(), maps0);
    ASSERT_OK(gh_sleep(0));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fd0);
}

static int pipe_fds[2];
static void *wait_pipe(void *arg) {
    (void)arg;
    (void)gh_wait_read(pipe_fds[0], GH_FOREVER);
    after_block++;
    return NULL;
}
static void *sleep_long(void *arg) {
    (void)arg;
    (void)gh_sleep(10);
    after_block++;
    return NULL;
}
static void *switch_back_to_main(void *arg) {
    (void)arg;
    (void)gh_switch(gh_main(), (void *)(uintptr_t)7, NULL);
    after_block++;
    return NULL;
}
static int never_started_ran;
static void *never_started(void *arg) {
    (void)arg;
    never_started_ran++;
    return NULL;
}
static void never_run_cb(void *arg) {
    (void)arg;
    never_started_ran++;
}
static void noop_cb(gh_watcher w, int revents, void *arg) {
    (void)w;
    (void)revents;
    (void)arg;
}

/* gh_hub_destroy with live parked greenlets (sleeping, forever, waiting on io, parked
 * in gh_switch, detached, never started, spawn_later) and active watchers of every
 * kind: GH_OK, none of them runs more code, every old handle is GH_EBADHANDLE, fds
 * back at baseline, and a new hub works (spawn + join). FAULTS 36. */
TEST(destroy_with_live_greenlets_and_watchers) {
    gh_greenlet gs[8];
    gh_watcher ws[8];
    void *recv = NULL;
    int ng = 0, nw = 0, i, fd0 = gh_test_fd_count();

    ASSERT_OK(pipe(pipe_fds));
    ASSERT_OK(gh_spawn(&gs[ng++], sleep_long, NULL));
    ASSERT_OK(gh_spawn(&gs[ng++], sleep_forever, NULL));
    ASSERT_OK(gh_spawn(&gs[ng++], wait_pipe, NULL));
    ASSERT_OK(gh_spawn(NULL, sleep_long, NULL)); /* detached */
    ASSERT_OK(gh_sleep(0)); /* let the first ones park */
    ASSERT_OK(gh_spawn(&gs[ng], switch_back_to_main, NULL));
    ASSERT_OK(gh_switch(gs[ng], NULL, &recv)); /* starts it; it switches back to us */
    ASSERT_EQ((uintptr_t)recv, 7);
    ASSERT_EQ(gh_greenlet_state(gs[ng]), GH_STATE_WAITING);
    ng++;
    ASSERT_OK(gh_spawn(&gs[ng], return_arg, NULL)); /* dead, not released */
    ASSERT_OK(gh_join(gs[ng++], GH_FOREVER, NULL));
    ASSERT_OK(gh_spawn_later(&gs[ng++], 10, never_started, NULL));
    ASSERT_OK(gh_spawn(&gs[ng++], never_started, NULL)); /* never gets to run */
    for (i = 0; i < 4; i++) ASSERT_EQ(gh_greenlet_state(gs[i]), GH_STATE_WAITING);
    ASSERT_EQ(gh_greenlet_state(gs[4]), GH_STATE_DEAD);
    ASSERT_EQ(gh_greenlet_state(gs[5]), GH_STATE_NEW);
    ASSERT_EQ(gh_greenlet_state(gs[6]), GH_STATE_NEW);

    ASSERT_OK(gh_timer_new(&ws[nw], 10, 1));
    ASSERT_OK(gh_watcher_start(ws[nw++], noop_cb, NULL));
    ASSERT_OK(gh_io_new(&ws[nw], pipe_fds[0], GH_READ));
    ASSERT_OK(gh_watcher_start(ws[nw++], noop_cb, NULL));
    ASSERT_OK(gh_prepare_new(&ws[nw]));
    ASSERT_OK(gh_watcher_start(ws[nw++], noop_cb, NULL));
    ASSERT_OK(gh_check_new(&ws[nw]));
    ASSERT_OK(gh_watcher_start(ws[nw++], noop_cb, NULL));
    ASSERT_OK(gh_idle_new(&ws[nw]));
    ASSERT_OK(gh_watcher_start(ws[nw++], noop_cb, NULL));
    ASSERT_OK(gh_async_new(&ws[nw]));
    ASSERT_OK(gh_watcher_start(ws[nw++], noop_cb, NULL));
    ASSERT_OK(gh_async_send(ws[nw - 1])); /* pending, never delivered */
    ASSERT_OK(gh_timer_new(&ws[nw++], 1, 0)); /* stopped */
    ASSERT_OK(gh_run_callback(never_run_cb, NULL));

    ASSERT_OK(gh_hub_destroy());

    ASSERT_EQ(after_block, 0);
    ASSERT_EQ(never_started_ran, 0);
    for (i = 0; i < ng; i++) {
        ASSERT_CODE(gh_greenlet_state(gs[i]), GH_EBADHANDLE);
        ASSERT_CODE(gh_join(gs[i], 0, NULL), GH_EBADHANDLE);
        ASSERT_CODE(gh_release(gs[i]), GH_EBADHANDLE);
    }
    for (i = 0; i < nw; i++) {
        ASSERT_CODE(gh_watcher_active(ws[i]), GH_EBADHANDLE);
        ASSERT_CODE(gh_watcher_close(ws[i]), GH_EBADHANDLE);
    }
    ASSERT_CODE(gh_async_send(ws[5]), GH_EBADHANDLE);
    ASSERT_EQ(gh_test_fd_count(), fd0 + 2); /* only our pipe is left */
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    ASSERT_EQ(gh_test_fd_count(), fd0);

    /* a new hub works, and the old handles stay stale in it */
    spawn_touch_join(4 * KIB);
    ASSERT_CODE(gh_greenlet_state(gs[0]), GH_EBADHANDLE);
    ASSERT_CODE(gh_watcher_active(ws[0]), GH_EBADHANDLE);
    ASSERT_EQ(never_started_ran, 0);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fd0);
}

/* 1000 create/destroy cycles (each with a greenlet, a timer and a parked greenlet):
 * fd count back at baseline every time, memory-mapping count flat after warm-up.
 * FAULTS 36. */
TEST(destroy_cycles_flat) {
    int i, fd0 = gh_test_fd_count();
    long maps0 = 0;
    for (i = 0; i < 1000; i++) {
        gh_greenlet g;
        gh_watcher w;
        void *r = NULL;
        ASSERT_OK(gh_spawn(&g, return_arg, (void *)(intptr_t)(i + 1)));
        ASSERT_OK(gh_spawn(NULL, sleep_forever, NULL));
        ASSERT_OK(gh_timer_new(&w, 10, 0));
        ASSERT_OK(gh_watcher_start(w, noop_cb, NULL));
        ASSERT_OK(gh_join(g, GH_FOREVER, &r));
        ASSERT_EQ((intptr_t)r, i + 1);
        ASSERT_OK(gh_release(g));
        ASSERT_OK(gh_hub_destroy());
        ASSERT_EQ(gh_test_fd_count(), fd0);
        if (i == 9) maps0 = gh_test_map_count();
    }
    if (!gh_test_under_memory_tool()) ASSERT_EQ(gh_test_map_count(), maps0);
    ASSERT_EQ(after_block, 0);
}

/* ---- gh_hub_wait ---------------------------------------------------------- */

/* gh_hub_wait on a timer: GH_OK once it fired (not before), and `w` is stopped after. */
TEST(hub_wait_timer_fires) {
    gh_watcher w;
    double t0;
    ASSERT_OK(gh_timer_new(&w, 0.02, 0));
    t0 = gh_test_now();
    ASSERT_OK(gh_hub_wait(w));
    ASSERT_GE((gh_test_now() - t0) * 1000, 18);
    ASSERT_EQ(gh_watcher_active(w), 0);
    ASSERT_OK(gh_watcher_close(w));
    ASSERT_OK(gh_hub_destroy());
}

/* gh_hub_wait on an already started watcher: GH_EBUSY (and it stays started). */
TEST(hub_wait_started_busy) {
    gh_watcher w;
    ASSERT_OK(gh_timer_new(&w, 10, 0));
    ASSERT_OK(gh_watcher_start(w, noop_cb, NULL));
    ASSERT_CODE(gh_hub_wait(w), GH_EBUSY);
    ASSERT_EQ(gh_watcher_active(w), 1);
    ASSERT_OK(gh_watcher_close(w));
    ASSERT_OK(gh_hub_destroy());
}

/* main's gh_hub_wait on an unreferenced watcher with nothing else active:
 * GH_ELOOPEXIT, and the watcher is stopped on return. FAULTS 34. */
TEST(hub_wait_unreferenced_loopexit) {
    gh_watcher w;
    ASSERT_OK(gh_timer_new(&w, 10, 0));
    ASSERT_OK(gh_watcher_ref(w, 0));
    ASSERT_CODE(gh_hub_wait(w), GH_ELOOPEXIT);
    ASSERT_EQ(gh_watcher_active(w), 0);
    ASSERT_OK(gh_watcher_close(w));
    ASSERT_OK(gh_hub_destroy());
}

static gh_watcher closing_target;
static void *close_target(void *arg) {
    (void)arg;
    inner_rc = gh_watcher_close(closing_target);
    return NULL;
}

/* A watcher closed by another greenlet while main waits on it: GH_ECLOSED. */
TEST(hub_wait_closed_meanwhile) {
    gh_greenlet g;
    ASSERT_OK(gh_timer_new(&closing_target, 10, 0));
    ASSERT_OK(gh_spawn(&g, close_target, NULL));
    ASSERT_CODE(gh_hub_wait(closing_target), GH_ECLOSED);
    ASSERT_OK(inner_rc);
    ASSERT_CODE(gh_watcher_active(closing_target), GH_EBADHANDLE);
    ASSERT_OK(gh_release(g));
    ASSERT_OK(gh_hub_destroy());
}

/* ---- gh_hub_current / gh_hub_backend ------------------------------------- */

static void *hub_id_in_greenlet(void *arg) {
    (void)arg;
    return (void *)(uintptr_t)gh_hub_current().id;
}

/* gh_hub_current: non-zero, the same on every call and from a greenlet; a new hub
 * after gh_hub_destroy gets a different reference. gh_hub_backend() names the backend
 * this run uses (GREENHUB_BACKEND, default "epoll"). */
TEST(hub_current_stable) {
    gh_hub_ref h = gh_hub_current();
    gh_greenlet g;
    void *r = NULL;
    ASSERT_NE(h.id, 0);
    ASSERT_EQ(gh_hub_current().id, h.id);
    ASSERT_STREQ(gh_hub_backend(), run_backend());
    ASSERT_OK(gh_spawn(&g, hub_id_in_greenlet, NULL));
    ASSERT_OK(gh_join(g, GH_FOREVER, &r));
    ASSERT_EQ((uint64_t)(uintptr_t)r, h.id);
    ASSERT_OK(gh_release(g));
    ASSERT_EQ(gh_hub_current().id, h.id);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_NE(gh_hub_current().id, 0);
    ASSERT_NE(gh_hub_current().id, h.id);
    ASSERT_OK(gh_hub_destroy());
}

static void *hub_id_in_thread(void *arg) {
    (void)arg;
    uint64_t id = gh_hub_current().id;
    if (gh_hub_destroy() != GH_OK) id = 0;
    return (void *)(uintptr_t)id;
}

/* Each thread has its own hub: another thread's gh_hub_current differs from ours. */
TEST(hub_current_per_thread) {
    pthread_t t;
    void *r = NULL;
    uint64_t mine = gh_hub_current().id;
    ASSERT_OK(pthread_create(&t, NULL, hub_id_in_thread, NULL));
    ASSERT_OK(pthread_join(t, &r));
    ASSERT_NE((uint64_t)(uintptr_t)r, 0);
    ASSERT_NE((uint64_t)(uintptr_t)r, mine);
    ASSERT_EQ(gh_hub_current().id, mine);
    ASSERT_OK(gh_hub_destroy());
}

/* ---- LoopExit ------------------------------------------------------------ */

/* main joins a greenlet parked forever in gh_sleep(-1), nothing else alive:
 * GH_ELOOPEXIT (not a hang), and the greenlet stays parked. FAULTS 34. */
TEST(loopexit_join_forever_sleeper) {
    gh_greenlet g;
    void *r = (void *)1;
    ASSERT_OK(gh_spawn(&g, sleep_forever, NULL));
    ASSERT_CODE(gh_join(g, GH_FOREVER, &r), GH_ELOOPEXIT);
    ASSERT_EQ(gh_greenlet_state(g), GH_STATE_WAITING);
    ASSERT_EQ(forever_rc, 12345);
    ASSERT_CODE(gh_join(g, -0.5, NULL), GH_ELOOPEXIT); /* again, any negative timeout */
    ASSERT_OK(gh_kill(g, GH_FOREVER)); /* still killable afterwards */
    ASSERT_CODE(forever_rc, GH_ECANCELED);
    ASSERT_OK(gh_release(g));
    ASSERT_OK(gh_hub_destroy());
}

/* main's gh_sleep(-1) with nothing else alive: GH_ELOOPEXIT; also with an
 * unreferenced active timer (which does not keep the loop alive). FAULTS 34. */
TEST(loopexit_main_sleep_forever) {
    gh_watcher w;
    ASSERT_CODE(gh_sleep(GH_FOREVER), GH_ELOOPEXIT);
    ASSERT_OK(gh_timer_new(&w, 10, 0));
    ASSERT_OK(gh_watcher_start(w, noop_cb, NULL));
    ASSERT_OK(gh_watcher_ref(w, 0));
    ASSERT_CODE(gh_sleep(GH_FOREVER), GH_ELOOPEXIT);
    ASSERT_OK(gh_watcher_close(w));
    ASSERT_OK(gh_hub_destroy());
}

/* ---- threads ------------------------------------------------------------- */

static int thread_pipe[2];
static int thread_counter;
static void *thread_wait_pipe(void *arg) {
    (void)arg;
    (void)gh_wait_read(thread_pipe[0], GH_FOREVER);
    __atomic_fetch_add(&thread_counter, 1, __ATOMIC_SEQ_CST);
    return NULL;
}
static void *thread_sleep_forever(void *arg) {
    (void)arg;
    (void)gh_sleep(GH_FOREVER);
    __atomic_fetch_add(&thread_counter, 1, __ATOMIC_SEQ_CST);
    return NULL;
}
static void *thread_leaves_hub(void *arg) {
    gh_greenlet g;
    gh_watcher w, io;
    (void)arg;
    if (gh_spawn(&g, thread_sleep_forever, NULL) != GH_OK) return (void *)1;
    if (gh_spawn(NULL, thread_wait_pipe, NULL) != GH_OK) return (void *)2;
    if (gh_spawn(NULL, thread_sleep_forever, NULL) != GH_OK) return (void *)3;
    if (gh_timer_new(&w, 10, 0) != GH_OK || gh_watcher_start(w, noop_cb, NULL) != GH_OK)
        return (void *)4;
    if (gh_io_new(&io, thread_pipe[0], GH_READ) != GH_OK ||
        gh_watcher_start(io, noop_cb, NULL) != GH_OK)
        return (void *)5;
    if (gh_sleep(0.01) != GH_OK) return (void *)6;
    if (gh_greenlet_state(g) != GH_STATE_WAITING) return (void *)7;
    return NULL; /* exits with all of it alive, no gh_hub_destroy */
}

/* A thread that exits with live greenlets and watchers and no gh_hub_destroy: no
 * crash, none of its greenlets runs on, its fds are closed by the time pthread_join
 * returns, and the process goes on (a new thread and main use greenhub). FAULTS 21. */
TEST(thread_exit_without_destroy) {
    pthread_t t;
    void *r = (void *)99;
    int fd0 = gh_test_fd_count(), i;
    ASSERT_OK(pipe(thread_pipe));
    for (i = 0; i < 3; i++) {
        ASSERT_OK(pthread_create(&t, NULL, thread_leaves_hub, NULL));
        ASSERT_OK(pthread_join(t, &r));
        ASSERT_EQ((uintptr_t)r, 0);
        ASSERT_EQ(gh_test_fd_count(), fd0 + 2); /* only our pipe */
    }
    ASSERT_EQ(__atomic_load_n(&thread_counter, __ATOMIC_SEQ_CST), 0);
    close(thread_pipe[0]);
    close(thread_pipe[1]);
    spawn_touch_join(4 * KIB);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fd0);
}

#define SWITCHES 100000
struct pingpong {
    int last;      /* which greenlet ran last */
    int count[2];  /* iterations done by each */
    int misorder;  /* a yield that did not let the other one run once */
    uint64_t hub;  /* this thread's hub */
    int rc;
};
struct pingpong_arg {
    struct pingpong *p;
    int me;
};
static void *pingpong_greenlet(void *arg) {
    struct pingpong_arg *a = (struct pingpong_arg *)arg;
    struct pingpong *p = a->p;
    int i;
    for (i = 0; i < SWITCHES; i++) {
        int rc;
        p->last = a->me;
        rc = gh_sleep(0);
        if (rc != GH_OK) return (void *)(intptr_t)rc;
        p->count[a->me]++;
        /* while the other one is alive, it ran exactly once during our yield */
        if (p->count[!a->me] < SWITCHES && p->last != !a->me) p->misorder++;
    }
    return NULL;
}
static void *pingpong_thread(void *arg) {
    struct pingpong *p = (struct pingpong *)arg;
    struct pingpong_arg a[2] = {{p, 0}, {p, 1}};
    gh_greenlet g[2];
    size_t done = 0;
    p->hub = gh_hub_current().id;
    p->rc = gh_spawn(&g[0], pingpong_greenlet, &a[0]);
    if (p->rc == GH_OK) p->rc = gh_spawn(&g[1], pingpong_greenlet, &a[1]);
    if (p->rc == GH_OK) p->rc = gh_joinall(g, 2, GH_FOREVER, &done);
    if (p->rc == GH_OK && done != 2) p->rc = GH_EINTERNAL;
    if (p->rc == GH_OK) {
        void *r0 = (void *)1, *r1 = (void *)1;
        gh_join(g[0], 0, &r0);
        gh_join(g[1], 0, &r1);
        if (r0 != NULL || r1 != NULL) p->rc = GH_EINTERNAL;
        gh_release(g[0]);
        gh_release(g[1]);
    }
    if (gh_hub_destroy() != GH_OK && p->rc == GH_OK) p->rc = GH_EINTERNAL;
    return NULL;
}

/* Two threads, a hub each, 10^5 gh_sleep(0) switches per greenlet between two
 * greenlets in each: both finish, each strictly alternating, hubs distinct. FAULTS 20. */
TEST(two_threads_independent_hubs) {
    static struct pingpong p[2];
    pthread_t t[2];
    int i, fd0 = gh_test_fd_count();
    memset(p, 0, sizeof p);
    for (i = 0; i < 2; i++) ASSERT_OK(pthread_create(&t[i], NULL, pingpong_thread, &p[i]));
    for (i = 0; i < 2; i++) ASSERT_OK(pthread_join(t[i], NULL));
    for (i = 0; i < 2; i++) {
        ASSERT_OK(p[i].rc);
        ASSERT_EQ(p[i].count[0], SWITCHES);
        ASSERT_EQ(p[i].count[1], SWITCHES);
        ASSERT_EQ(p[i].misorder, 0);
        ASSERT_NE(p[i].hub, 0);
    }
    ASSERT_NE(p[0].hub, p[1].hub);
    ASSERT_EQ(gh_test_fd_count(), fd0);
    ASSERT_OK(gh_hub_destroy());
}

int main(int argc, char **argv) {
    TEST_INIT(argc, argv);
    RUN(err_name_and_strerror_every_code);
    RUN(err_name_and_strerror_unknown_codes);
    RUN(error_code_values);
    RUN(err_name_any_thread);
    RUN(version_matches_header);
    RUN(config_init_fills_defaults);
    RUN(configure_before_first_use);
    RUN(configure_null);
    RUN(configure_after_first_use_busy);
    RUN(configure_backend_epoll);
    RUN(configure_bad_backend_and_monitor);
    RUN(configure_bad_max_blocking_time);
    RUN(configure_stack_size_limits);
    RUN(configure_stack_size_used);
    RUN(env_backend_unknown);
    RUN(env_backend_epoll);
    RUN(env_stack_size_bad);
    RUN(env_stack_size_512k);
    RUN(run_empty);
    RUN(run_runs_greenlets_to_completion);
    RUN(run_waits_for_referenced_timer);
    RUN(run_ignores_unreferenced_timer);
    RUN(run_returns_with_greenlet_parked_forever);
    RUN(run_from_greenlet_eperm);
    RUN(run_and_destroy_from_run_callback_eperm);
    RUN(run_and_destroy_from_watcher_eperm);
    RUN(run_main_killed_ecanceled);
    RUN(destroy_from_greenlet_eperm);
    RUN(destroy_without_hub);
    RUN(destroy_with_live_greenlets_and_watchers);
    RUN(destroy_cycles_flat);
    RUN(hub_wait_timer_fires);
    RUN(hub_wait_started_busy);
    RUN(hub_wait_unreferenced_loopexit);
    RUN(hub_wait_closed_meanwhile);
    RUN(hub_current_stable);
    RUN(hub_current_per_thread);
    RUN(loopexit_join_forever_sleeper);
    RUN(loopexit_main_sleep_forever);
    RUN(thread_exit_without_destroy);
    RUN(two_threads_independent_hubs);
    return TEST_DONE();
}

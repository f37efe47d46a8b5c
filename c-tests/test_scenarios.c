/* test_scenarios.c — the FAULTS.md scenarios no other test file covered (docs/faults.md
 * maps every scenario to its cases):
 *
 *   18  8 threads x 10^6 gh_async_send (full size)   async_send_8_threads_1e6
 *   19  gh_async_send racing gh_hub_destroy          async_send_races_destroy
 *   22  spawn until stacks run out                    spawn_until_enomem
 *   35  CLOCK_REALTIME jumps do not move sleeps       realtime_jumps_do_not_move_sleeps
 *   39  an exception unwinding into greenhub         foreign_exception_from_greenlet,
 *                                                     foreign_exception_from_watcher_cb,
 *                                                     foreign_exception_from_run_callback
 *       (issue 19) pthread_exit / pthread_cancel     pthread_exit_in_watcher_cb,
 *                                                     pthread_exit_in_greenlet,
 *                                                     pthread_cancel_in_hub_run
 *
 * Each case runs in its own forked child with the harness's wall-clock bound and ends
 * with the hub destroyed and the fd count back at its start.
 *
 * This program defines clock_gettime, gettimeofday and time itself (they forward to the
 * kernel and add a test-controlled offset to the wall clock), so the library, linked
 * statically into it, reads its clocks through them: that is how scenario 35 jumps
 * CLOCK_REALTIME without root or touching the machine's clock.
 */
#include "harness.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unwind.h>

/* ---- the clock interposers (FAULTS 35) ----------------------------------- */

static atomic_long wall_offset;   /* seconds added to CLOCK_REALTIME readings */
static atomic_long monotonic_reads, realtime_reads;

int clock_gettime(clockid_t id, struct timespec *ts) {
    if (syscall(SYS_clock_gettime, id, ts) != 0) return -1;
    if (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE || id == CLOCK_TAI) {
        atomic_fetch_add(&realtime_reads, 1);
        ts->tv_sec += atomic_load(&wall_offset);
    } else if (id == CLOCK_MONOTONIC || id == CLOCK_MONOTONIC_COARSE ||
               id == CLOCK_MONOTONIC_RAW || id == CLOCK_BOOTTIME) {
        atomic_fetch_add(&monotonic_reads, 1);
    }
    return 0;
}

int gettimeofday(struct timeval *restrict tv, void *restrict tz) {
    struct timespec ts;
    (void)tz;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return -1;
    tv->tv_sec = ts.tv_sec; /* declared nonnull by glibc */
    tv->tv_usec = ts.tv_nsec / 1000;
    return 0;
}

time_t time(time_t *t) {
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return (time_t)-1;
    if (t) *t = ts.tv_sec;
    return ts.tv_sec;
}

/* The kernel's monotonic clock, read without the interposer. */
static double mono_now(void) {
    struct timespec ts;
    syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Greenlet sleeping 0.3 s; stores how long it really took. */
static double slept_for;
static void *sleeper(void *arg) {
    double t0 = mono_now();
    (void)arg;
    int rc = gh_sleep(0.3);
    slept_for = mono_now() - t0;
    return (void *)(intptr_t)rc;
}

/* Greenlet waiting forever on an event under a 0.3 s gh_timeout, and on a 0.3 s timer
 * watcher with gh_hub_wait; stores how long each took. */
static double timeout_took, timer_took;
static void *deadline_waiter(void *arg) {
    gh_event e;
    gh_timeout t;
    gh_watcher w;
    double t0 = mono_now();
    int rc;
    (void)arg;
    if (gh_event_new(&e) != GH_OK || gh_timeout_start(&t, 0.3) != GH_OK) return (void *)1;
    rc = gh_event_wait(e, GH_FOREVER);
    timeout_took = mono_now() - t0;
    if (gh_timeout_cancel(t) != GH_OK || gh_event_close(e) != GH_OK || rc != GH_ETIMEDOUT)
        return (void *)2;
    if (gh_timer_new(&w, 0.3, 0) != GH_OK) return (void *)3;
    t0 = mono_now();
    rc = gh_hub_wait(w);
    timer_took = mono_now() - t0;
    if (gh_watcher_close(w) != GH_OK || rc != GH_OK) return (void *)4;
    return NULL;
}

/* Moves the wall clock an hour forward at 50 ms, then two hours back at 100 ms. */
static void *clock_jumper(void *arg) {
    (void)arg;
    if (gh_sleep(0.05) != GH_OK) return (void *)1;
    atomic_fetch_add(&wall_offset, 3600);
    if (gh_sleep(0.05) != GH_OK) return (void *)2;
    atomic_fetch_sub(&wall_offset, 7200);
    return NULL;
}

/* FAULTS 35: the wall clock jumps an hour forward, then two hours back, while a
 * greenlet sleeps 0.3 s, another waits under a 0.3 s gh_timeout and then on a 0.3 s
 * timer: none ends early (>= 0.27 s each by the kernel's monotonic clock) and none is
 * held for the hour (the harness's bound). The library's monotonic reads go through
 * this program's clock_gettime (counted), so the jumps were visible to it had it read
 * the wall clock. */
TEST(realtime_jumps_do_not_move_sleeps) {
    gh_greenlet s, d, j;
    void *r;
    int fd0 = gh_test_fd_count();
    long mono0, rt0, maps0 = gh_test_map_count();
    struct timespec ts;

    atomic_store(&wall_offset, 0);
    ASSERT_OK(clock_gettime(CLOCK_REALTIME, &ts)); /* the interposer is this program's */
    ASSERT_TRUE(atomic_load(&realtime_reads) >= 1);
    mono0 = atomic_load(&monotonic_reads);
    rt0 = atomic_load(&realtime_reads);
    ASSERT_OK(gh_spawn(&s, sleeper, NULL));
    ASSERT_OK(gh_spawn(&d, deadline_waiter, NULL));
    ASSERT_OK(gh_spawn(&j, clock_jumper, NULL));
    ASSERT_OK(gh_join(j, GH_FOREVER, &r));
    ASSERT_TRUE(r == NULL);
    ASSERT_OK(gh_join(s, GH_FOREVER, &r));
    ASSERT_OK((int)(intptr_t)r);
    ASSERT_OK(gh_join(d, GH_FOREVER, &r));
    ASSERT_TRUE(r == NULL);
    printf("slept %.3f s, gh_timeout after %.3f s, timer after %.3f s; the library read "
           "CLOCK_MONOTONIC %ld times, the wall clock %ld times\n",
           slept_for, timeout_took, timer_took, atomic_load(&monotonic_reads) - mono0,
           atomic_load(&realtime_reads) - rt0);
    ASSERT_TRUE(slept_for >= 0.27);
    ASSERT_TRUE(timeout_took >= 0.27);
    ASSERT_TRUE(timer_took >= 0.27);
    ASSERT_TRUE(atomic_load(&monotonic_reads) > mono0); /* the interposer saw its reads */
    ASSERT_OK(gh_release(s));
    ASSERT_OK(gh_release(d));
    ASSERT_OK(gh_release(j));
    ASSERT_OK(gh_hub_destroy());
    atomic_store(&wall_offset, 0);
    ASSERT_EQ(gh_test_fd_count(), fd0);
    if (!gh_test_under_memory_tool()) ASSERT_EQ(gh_test_map_count(), maps0);
}

/* ---- gh_async_send racing gh_hub_destroy (FAULTS 19) --------------------- */

static _Atomic uint64_t race_id; /* the async watcher the sender targets; 0 = none */
static atomic_long race_ok, race_stale, race_other;
static atomic_int race_stop;

static void *race_sender(void *arg) {
    /* Under valgrind (one thread runs at a time) a sender that never pauses can keep the
     * main thread from the hub's locks for minutes: it yields after each send there. */
    int polite = *(int *)arg;
    while (!atomic_load(&race_stop)) {
        gh_watcher w;
        int rc;
        w.id = atomic_load(&race_id);
        if (w.id == 0) {
            sched_yield();
            continue;
        }
        rc = gh_async_send(w);
        if (rc == GH_OK) atomic_fetch_add(&race_ok, 1);
        else if (rc == GH_EBADHANDLE) atomic_fetch_add(&race_stale, 1);
        else atomic_fetch_add(&race_other, 1);
        if (polite) sched_yield();
    }
    return NULL;
}

static long race_callbacks;
static void race_cb(gh_watcher w, int revents, void *arg) {
    (void)w;
    (void)arg;
    if (revents == GH_ASYNC) race_callbacks++;
}

/* FAULTS 19: a thread sends to an async watcher without pause while main, in each of
 * 200 cycles (20 under valgrind), creates a hub and the watcher, sees a send succeed
 * and its callback run, and destroys the hub in the middle of the sends. Every send is
 * GH_OK or GH_EBADHANDLE — never a crash or a use-after-free (valgrind, ASan) — and
 * after each destroy the sends to its watcher are GH_EBADHANDLE. */
TEST(async_send_races_destroy) {
    int cycles = gh_test_under_memory_tool() ? 20 : 200, c, fd0 = gh_test_fd_count();
    static int polite;
    pthread_t th;
    polite = gh_test_under_memory_tool() && !GH_TEST_ASAN;
    ASSERT_OK(pthread_create(&th, NULL, race_sender, &polite));
    for (c = 0; c < cycles; c++) {
        gh_watcher w;
        long ok0, stale0, cb0 = race_callbacks;
        ASSERT_OK(gh_async_new(&w));
        ASSERT_OK(gh_watcher_start(w, race_cb, NULL));
        ok0 = atomic_load(&race_ok);
        atomic_store(&race_id, w.id);
        while (atomic_load(&race_ok) == ok0 || race_callbacks == cb0) ASSERT_OK(gh_sleep(0.0005));
        stale0 = atomic_load(&race_stale);
        ASSERT_OK(gh_hub_destroy()); /* while the sender keeps sending */
        while (atomic_load(&race_stale) == stale0) sched_yield();
        ASSERT_CODE(gh_async_send(w), GH_EBADHANDLE);
    }
    atomic_store(&race_stop, 1);
    ASSERT_OK(pthread_join(th, NULL));
    printf("%d cycles: %ld sends delivered, %ld stale (GH_EBADHANDLE), %ld other; %ld "
           "callbacks\n",
           cycles, atomic_load(&race_ok), atomic_load(&race_stale), atomic_load(&race_other),
           race_callbacks);
    ASSERT_EQ(atomic_load(&race_other), 0);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fd0);
}

/* ---- 8 threads x 10^6 gh_async_send (FAULTS 18) ------------------------- */

#define SEND_THREADS 8
static long sends_per_thread;
static atomic_long sends_started;
static atomic_int senders_done;
static long storm_callbacks;
static int storm_saw_all;
static gh_watcher storm_w;

/* Counts each send before making it: a callback that sees the full count started after
 * every send was counted, so the wake-up of the last send was not lost. */
static void *storm_sender(void *arg) {
    long i, bad = 0;
    (void)arg;
    for (i = 0; i < sends_per_thread; i++) {
        atomic_fetch_add(&sends_started, 1);
        if (gh_async_send(storm_w) != GH_OK) bad++;
    }
    atomic_fetch_add(&senders_done, 1);
    return (void *)(intptr_t)bad;
}
static void storm_cb(gh_watcher w, int revents, void *arg) {
    (void)w;
    (void)arg;
    if (revents != GH_ASYNC) return;
    storm_callbacks++;
    if (atomic_load(&sends_started) == SEND_THREADS * sends_per_thread) storm_saw_all = 1;
}

/* FAULTS 18 at its full size: 8 threads x 10^6 gh_async_send (10^4 under valgrind)
 * while the hub runs: every send GH_OK, the sends coalesce (fewer callbacks than
 * sends), and a callback runs after the last send. */
TEST(async_send_8_threads_1e6) {
    pthread_t th[SEND_THREADS];
    int i, fd0 = gh_test_fd_count();
    long n;
    sends_per_thread = gh_test_under_memory_tool() ? 10000 : 1000000;
    ASSERT_OK(gh_async_new(&storm_w));
    ASSERT_OK(gh_watcher_start(storm_w, storm_cb, NULL));
    for (i = 0; i < SEND_THREADS; i++) ASSERT_OK(pthread_create(&th[i], NULL, storm_sender, NULL));
    while (atomic_load(&senders_done) < SEND_THREADS) ASSERT_OK(gh_sleep(0.002));
    for (i = 0; i < SEND_THREADS; i++) {
        void *bad;
        ASSERT_OK(pthread_join(th[i], &bad));
        ASSERT_TRUE(bad == NULL);
    }
    while (!storm_saw_all) ASSERT_OK(gh_sleep(0.002)); /* bounded by the harness */
    printf("%d x %ld sends: %ld callbacks\n", SEND_THREADS, sends_per_thread, storm_callbacks);
    ASSERT_TRUE(storm_callbacks >= 1 && storm_callbacks < SEND_THREADS * sends_per_thread);
    n = storm_callbacks; /* nothing sent any more: at most the one already queued */
    ASSERT_OK(gh_sleep(0.02));
    ASSERT_LE(storm_callbacks, n + 1);
    ASSERT_OK(gh_watcher_close(storm_w));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fd0);
}

/* ---- spawn until stacks run out (FAULTS 22) ------------------------------ */

static gh_event stacks_release;
static void *park_until_released(void *arg) {
    volatile char touch[8192]; /* the greenlet really uses its stack */
    touch[0] = 1;
    touch[sizeof touch - 1] = 2;
    if (gh_event_wait(stacks_release, GH_FOREVER) != GH_OK) return NULL;
    return (void *)((uintptr_t)arg + touch[0] + touch[sizeof touch - 1] - 3);
}

#define GIB ((size_t)1 << 30)
#define MAX_PARKED 256

/* FAULTS 22: with the address space limited (RLIMIT_AS = what the process uses now +
 * 8.5 GiB), greenlets with 1 GiB stacks are spawned (and run, parked on an event)
 * until gh_spawn_ex says GH_ENOMEM; the count reached is printed. The process stays
 * usable — malloc and mmap of 16 MiB work, the parked greenlets run on — and once they
 * are joined, spawning a 1 GiB greenlet works again. (Under valgrind, which needs the
 * address space for itself, the limit is not applied and the case only checks that
 * 1 GiB stacks work.) */
TEST(spawn_until_enomem) {
    static gh_greenlet gs[MAX_PARKED];
    gh_spawn_options opts = {GIB, "big"};
    struct rlimit old, lim;
    long vm = gh_test_vm_size_kb(), maps0 = gh_test_map_count();
    int n = 0, rc = GH_OK, i, fd0 = gh_test_fd_count(), limited = !gh_test_under_memory_tool();
    void *p, *r;

    ASSERT_TRUE(vm > 0);
    ASSERT_OK(gh_event_new(&stacks_release));
    ASSERT_OK(getrlimit(RLIMIT_AS, &old));
    if (limited) {
        lim = old;
        lim.rlim_cur = (rlim_t)vm * 1024 + 8 * GIB + GIB / 2;
        ASSERT_OK(setrlimit(RLIMIT_AS, &lim));
    }
    while (n < (limited ? MAX_PARKED : 4)) {
        rc = GH_SPAWN_EX(&gs[n], park_until_released, (void *)(uintptr_t)n, &opts);
        if (rc != GH_OK) break;
        n++;
        ASSERT_OK(gh_sleep(0)); /* it runs and parks */
    }
    if (limited) {
        ASSERT_CODE(rc, GH_ENOMEM);
        printf("spawned %d greenlets with 1 GiB stacks before GH_ENOMEM (RLIMIT_AS: "
               "%ld MiB in use + 8.5 GiB)\n",
               n, vm / 1024);
        ASSERT_TRUE(n >= 1 && n <= 9);
        /* the process stays usable: other malloc and mmap users */
        p = malloc(16 << 20);
        ASSERT_TRUE(p != NULL);
        memset(p, 1, 16 << 20);
        free(p);
        p = mmap(NULL, 16 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        ASSERT_TRUE(p != MAP_FAILED);
        ASSERT_OK(munmap(p, 16 << 20));
    }
    /* the parked greenlets all run on and finish */
    ASSERT_OK(gh_event_set(stacks_release));
    for (i = 0; i < n; i++) {
        ASSERT_OK(gh_join(gs[i], GH_FOREVER, &r));
        ASSERT_TRUE(r == (void *)(uintptr_t)i);
        ASSERT_OK(gh_release(gs[i]));
    }
    /* after joining, spawning works again (still under the limit) */
    ASSERT_OK(GH_SPAWN_EX(&gs[0], park_until_released, (void *)(uintptr_t)7, &opts));
    ASSERT_OK(gh_join(gs[0], GH_FOREVER, &r));
    ASSERT_TRUE(r == (void *)(uintptr_t)7);
    ASSERT_OK(gh_release(gs[0]));
    ASSERT_OK(gh_event_close(stacks_release));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_OK(setrlimit(RLIMIT_AS, &old));
    ASSERT_EQ(gh_test_fd_count(), fd0);
    if (!gh_test_under_memory_tool()) ASSERT_EQ(gh_test_map_count(), maps0); /* every stack unmapped */
}

/* ---- an exception unwinding into greenhub (FAULTS 39) -------------------- */

/* What a C++ `throw` does, from C: raise a foreign (non-Rust) exception with the
 * unwinder. If no frame claims it, _Unwind_RaiseException returns, as it does for C++,
 * whose runtime then calls std::terminate: the same is done here. */
static void raise_foreign_exception(void) {
    static struct _Unwind_Exception exc;
    memset(&exc, 0, sizeof exc);
    exc.exception_class = 0x4748544553540000ull; /* "GHTEST\0\0" */
    (void)_Unwind_RaiseException(&exc);
    fprintf(stderr, "terminate called: uncaught foreign exception (nothing claimed it)\n");
    abort();
}

static void *throwing_greenlet(void *arg) {
    (void)arg;
    raise_foreign_exception();
    return NULL;
}
static void throwing_watcher_cb(gh_watcher w, int revents, void *arg) {
    (void)w;
    (void)revents;
    (void)arg;
    raise_foreign_exception();
}
static void throwing_callback(void *arg) {
    (void)arg;
    raise_foreign_exception();
}

/* Runs `where` (0: a greenlet, 1: a watcher callback, 2: a gh_run_callback callback)
 * throwing in a grandchild process; returns its wait status, its stderr in `err`. */
static int run_throwing(int where, char *err, size_t errlen) {
    int p[2], status = 0;
    ssize_t n;
    size_t got = 0;
    pid_t pid;
    ASSERT_OK(pipe(p));
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    ASSERT_TRUE(pid >= 0);
    if (pid == 0) {
        gh_greenlet g;
        gh_watcher w;
        dup2(p[1], 2);
        close(p[0]);
        if (where == 0) {
            if (gh_spawn(&g, throwing_greenlet, NULL) != GH_OK) _exit(3);
            (void)gh_join(g, GH_FOREVER, NULL);
        } else if (where == 1) {
            if (gh_timer_new(&w, 0, 0) != GH_OK || gh_watcher_start(w, throwing_watcher_cb, NULL) != GH_OK)
                _exit(3);
            (void)gh_hub_run();
        } else {
            if (gh_run_callback(throwing_callback, NULL) != GH_OK) _exit(3);
            (void)gh_hub_run();
        }
        _exit(0); /* returned normally: the exception vanished (silent UB) */
    }
    close(p[1]);
    while (got + 1 < errlen && (n = read(p[0], err + got, errlen - 1 - got)) > 0) got += (size_t)n;
    err[got] = 0;
    close(p[0]);
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    return status;
}

static void expect_abort_with_message(int where) {
    char err[4096];
    int fd0 = gh_test_fd_count();
    int status = run_throwing(where, err, sizeof err);
    /* (the message is expected: printed only if it is not the one checked) */
    if (strstr(err, "greenhub: fatal: an unwind is crossing greenhub's frames") == NULL)
        printf("stderr of the throwing process: %s", err);
    ASSERT_TRUE(WIFSIGNALED(status));
    ASSERT_EQ(WTERMSIG(status), SIGABRT);
    /* a message, not a silent death: greenhub's, naming the cause (issue 19) */
    ASSERT_TRUE(strstr(err, "greenhub: fatal: an unwind is crossing greenhub's frames") != NULL);
    ASSERT_TRUE(strstr(err, "C++ exception") != NULL);
    ASSERT_EQ(gh_test_fd_count(), fd0);
}

/* FAULTS 39: a foreign exception (what a C++ throw is to the library) raised in a
 * greenlet's function ends the process with SIGABRT and a message on stderr — not a
 * crash, a hang, or a silent return. */
TEST(foreign_exception_from_greenlet) { expect_abort_with_message(0); }

/* FAULTS 39: the same from a watcher callback (it runs in the hub). */
TEST(foreign_exception_from_watcher_cb) { expect_abort_with_message(1); }

/* FAULTS 39: the same from a gh_run_callback callback. */
TEST(foreign_exception_from_run_callback) { expect_abort_with_message(2); }

/* ---- pthread_exit and pthread_cancel through greenhub (issue 19, item 1) --------- */

/* glibc ends a thread by pthread_exit or pthread_cancel with a forced unwind. greenhub
 * cannot let it cross its loop or a greenlet's stack; before, the process died of
 * glibc's "FATAL: exception not rethrown" (SIGABRT) with no word on why. Now it is the
 * same SIGABRT, with a message naming the cause and the way out (greenhub.h). */
static void exit_cb(gh_watcher w, int revents, void *arg) {
    (void)w;
    (void)revents;
    (void)arg;
    pthread_exit(NULL);
}
static void *exiting_greenlet(void *arg) {
    (void)arg;
    pthread_exit(NULL);
}
static void *unwind_thread(void *arg) {
    int where = (int)(intptr_t)arg;
    gh_watcher w;
    gh_greenlet g;
    if (where == 0) {
        if (gh_timer_new(&w, 0, 0) != GH_OK || gh_watcher_start(w, exit_cb, NULL) != GH_OK) _exit(3);
        gh_hub_run();
    } else if (where == 1) {
        if (gh_spawn(&g, exiting_greenlet, NULL) != GH_OK) _exit(3);
        gh_join(g, GH_FOREVER, NULL);
    } else {
        /* blocked in the loop's poll (a cancellation point) until cancelled */
        if (gh_timer_new(&w, 3600, 0) != GH_OK || gh_watcher_start(w, exit_cb, NULL) != GH_OK) _exit(3);
        gh_hub_run();
    }
    return NULL;
}

static void expect_unwind_abort(int where) {
    int p[2], status = 0;
    char err[4096];
    size_t got = 0;
    ssize_t n;
    ASSERT_OK(pipe(p));
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    ASSERT_TRUE(pid >= 0);
    if (pid == 0) {
        pthread_t t;
        struct timespec until;
        dup2(p[1], 2);
        close(p[0]);
        alarm(10); /* never outlive the case, whatever happens (it shares our stdout) */
        if (pthread_create(&t, NULL, unwind_thread, (void *)(intptr_t)where) != 0) _exit(3);
        if (where == 2) {
            usleep(100000);
            pthread_cancel(t);
        }
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 3;
        if (pthread_timedjoin_np(t, NULL, &until) != 0) _exit(5); /* still running */
        _exit(0); /* the thread ended and the process goes on: also acceptable */
    }
    close(p[1]);
    while (got + 1 < sizeof err && (n = read(p[0], err + got, sizeof err - 1 - got)) > 0) got += (size_t)n;
    err[got] = 0;
    close(p[0]);
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    /* (the message is expected: printed only if it is not the one checked) */
    if (strstr(err, "greenhub: fatal: an unwind is crossing greenhub's frames: pthread_exit or pthread_cancel") == NULL)
        printf("stderr of the unwinding process: %s", err);
    if (WIFEXITED(status)) {
        const char *b = getenv("GREENHUB_BACKEND");
        /* The polling backend waits in a raw epoll_wait syscall (the polling crate, through
         * rustix), which is no cancellation point: the cancel stays pending and the thread
         * keeps running its loop (it acts at the next cancellation point outside
         * greenhub). Every other backend's poll is libc's, a cancellation point. */
        if (where == 2 && WEXITSTATUS(status) == 5 && b && strcmp(b, "polling") == 0) return;
        ASSERT_EQ(WEXITSTATUS(status), 0);
        return;
    }
    ASSERT_TRUE(WIFSIGNALED(status));
    ASSERT_EQ(WTERMSIG(status), SIGABRT);
    ASSERT_TRUE(strstr(err, "greenhub: fatal: an unwind is crossing greenhub's frames: pthread_exit or pthread_cancel") != NULL);
    ASSERT_TRUE(strstr(err, "exception not rethrown") == NULL);
}

TEST(pthread_exit_in_watcher_cb) { expect_unwind_abort(0); }
TEST(pthread_exit_in_greenlet) { expect_unwind_abort(1); }
TEST(pthread_cancel_in_hub_run) { expect_unwind_abort(2); }

int main(int argc, char **argv) {
    TEST_INIT(argc, argv);
    RUN(realtime_jumps_do_not_move_sleeps);
    RUN(async_send_races_destroy);
    RUN(async_send_8_threads_1e6);
    RUN(spawn_until_enomem);
    RUN(foreign_exception_from_greenlet);
    RUN(foreign_exception_from_watcher_cb);
    RUN(foreign_exception_from_run_callback);
    RUN(pthread_exit_in_watcher_cb);
    RUN(pthread_exit_in_greenlet);
    RUN(pthread_cancel_in_hub_run);
    return TEST_DONE();
}

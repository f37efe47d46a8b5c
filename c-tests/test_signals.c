/* test_signals.c — signal watchers (gh_signal_new with gh_watcher_start/stop/close):
 * delivery to the hub that watches among several threads, watchers that do not disturb
 * sleeping greenlets, several watchers of one signal, bursts that coalesce without
 * losing the last signal, restoring the previous disposition, and argument checks.
 *
 * Build and run: see /work/brief/tests.md (links with -lpthread).
 */
#include "harness.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

/* ---- helpers ------------------------------------------------------------ */

struct sigcount {
    atomic_int n;        /* callbacks */
    int bad_revents;     /* callbacks with revents != GH_SIGNAL */
    gh_watcher w;        /* the watcher it counts for */
    int bad_handle;      /* callbacks whose w differs */
};

static void count_cb(gh_watcher w, int revents, void *arg) {
    struct sigcount *c = (struct sigcount *)arg;
    if (revents != GH_SIGNAL) c->bad_revents++;
    if (w.id != c->w.id) c->bad_handle++;
    atomic_fetch_add(&c->n, 1);
}

/* Runs the loop (gh_sleep slices) until *n >= want or `limit` seconds pass. */
static void wait_count(atomic_int *n, int want, double limit) {
    double end = gh_test_now() + limit;
    while (atomic_load(n) < want && gh_test_now() < end) ASSERT_OK(gh_sleep(0.002));
}

static void start_counter(struct sigcount *c, int signum) {
    atomic_init(&c->n, 0);
    c->bad_revents = c->bad_handle = 0;
    ASSERT_OK(gh_signal_new(&c->w, signum));
    ASSERT_OK(gh_watcher_start(c->w, count_cb, c));
}

/* ---- delivery to the right hub ----------------------------------------- */

/* Thread B: a hub watching SIGUSR1. Thread A (the main thread): a hub watching only
 * SIGUSR2. */
struct two_hubs {
    pthread_barrier_t ready, go_usr2, done;
    pthread_t a_thread, b_thread;
    struct sigcount b_usr1;
    atomic_int stop;
    int b_rc;
};

static void *thread_b(void *arg) {
    struct two_hubs *t = (struct two_hubs *)arg;
    int rc = GH_OK;
    atomic_init(&t->b_usr1.n, 0);
    t->b_usr1.bad_revents = t->b_usr1.bad_handle = 0;
    if ((rc = gh_signal_new(&t->b_usr1.w, SIGUSR1)) == GH_OK)
        rc = gh_watcher_start(t->b_usr1.w, count_cb, &t->b_usr1);
    t->b_rc = rc;
    pthread_barrier_wait(&t->ready);
    while (!atomic_load(&t->stop) && rc == GH_OK) rc = gh_sleep(0.002);
    if (rc == GH_OK) rc = gh_hub_destroy();
    if (t->b_rc == GH_OK) t->b_rc = rc;
    return NULL;
}

/* SIGUSR1 watched only in thread B's hub: raised in thread A (pthread_kill to A, and
 * kill(getpid()) from A), only B's watcher fires — A's SIGUSR2 watcher does not;
 * SIGUSR2 raised at thread B fires only A's watcher. */
TEST(signal_goes_to_watching_hub) {
    struct two_hubs t;
    struct sigcount a_usr2;
    int fd0 = gh_test_fd_count();
    memset(&t, 0, sizeof t);
    atomic_init(&t.stop, 0);
    pthread_barrier_init(&t.ready, NULL, 2);
    start_counter(&a_usr2, SIGUSR2);
    t.a_thread = pthread_self();
    ASSERT_OK(pthread_create(&t.b_thread, NULL, thread_b, &t));
    pthread_barrier_wait(&t.ready);
    ASSERT_OK(t.b_rc);

    ASSERT_OK(pthread_kill(pthread_self(), SIGUSR1)); /* delivered to thread A */
    wait_count(&t.b_usr1.n, 1, 5);
    ASSERT_EQ(atomic_load(&t.b_usr1.n), 1);
    ASSERT_OK(kill(getpid(), SIGUSR1)); /* process-directed, raised from A */
    wait_count(&t.b_usr1.n, 2, 5);
    ASSERT_EQ(atomic_load(&t.b_usr1.n), 2);
    ASSERT_OK(gh_sleep(0.02));
    ASSERT_EQ(atomic_load(&a_usr2.n), 0); /* A's watcher is for another signal */

    ASSERT_OK(pthread_kill(t.b_thread, SIGUSR2)); /* delivered to thread B */
    wait_count(&a_usr2.n, 1, 5);
    ASSERT_EQ(atomic_load(&a_usr2.n), 1);
    ASSERT_OK(gh_sleep(0.02));
    ASSERT_EQ(atomic_load(&t.b_usr1.n), 2);
    ASSERT_EQ(a_usr2.bad_revents + a_usr2.bad_handle, 0);

    atomic_store(&t.stop, 1);
    ASSERT_OK(pthread_join(t.b_thread, NULL));
    ASSERT_OK(t.b_rc);
    ASSERT_EQ(t.b_usr1.bad_revents + t.b_usr1.bad_handle, 0);
    ASSERT_OK(gh_watcher_close(a_usr2.w));
    pthread_barrier_destroy(&t.ready);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fd0);
}

/* ---- signal while a greenlet sleeps ------------------------------------ */

static double slept_for;
static int sleep_rc = 12345;
static int fired_before_wake;
static struct sigcount *sleeper_counter;
static void *sleeper(void *arg) {
    double t0 = gh_test_now();
    (void)arg;
    sleep_rc = gh_sleep(0.1);
    slept_for = gh_test_now() - t0;
    fired_before_wake = atomic_load(&sleeper_counter->n);
    return NULL;
}

static void raise_usr1_cb(gh_watcher w, int revents, void *arg) {
    (void)w;
    (void)revents;
    (void)arg;
    raise(SIGUSR1);
}

/* A greenlet in gh_sleep(0.1) while SIGUSR1 arrives at 20 ms: the watcher fires (once,
 * before the sleep ends), the greenlet keeps sleeping the full time and gets GH_OK. */
TEST(signal_while_greenlet_sleeps) {
    struct sigcount c;
    gh_watcher t;
    gh_greenlet g;
    start_counter(&c, SIGUSR1);
    sleeper_counter = &c;
    ASSERT_OK(gh_timer_new(&t, 0.02, 0));
    ASSERT_OK(gh_watcher_start(t, raise_usr1_cb, NULL));
    ASSERT_OK(gh_spawn(&g, sleeper, NULL));
    ASSERT_OK(gh_join(g, GH_FOREVER, NULL));
    ASSERT_OK(sleep_rc);
    ASSERT_TRUE(slept_for >= 0.09);
    ASSERT_EQ(fired_before_wake, 1);
    ASSERT_EQ(atomic_load(&c.n), 1);
    ASSERT_OK(gh_release(g));
    ASSERT_OK(gh_watcher_close(t));
    ASSERT_OK(gh_watcher_close(c.w));
    ASSERT_OK(gh_hub_destroy());
}

/* ---- several watchers -------------------------------------------------- */

/* Three watchers of SIGUSR2 in one hub: one raise fires each exactly once, with
 * revents GH_SIGNAL, its own handle and its own arg; a stopped one does not fire. */
TEST(several_watchers_all_fire) {
    struct sigcount c[3];
    int i;
    for (i = 0; i < 3; i++) start_counter(&c[i], SIGUSR2);
    ASSERT_OK(raise(SIGUSR2));
    for (i = 0; i < 3; i++) wait_count(&c[i].n, 1, 5);
    ASSERT_OK(gh_sleep(0.02));
    for (i = 0; i < 3; i++) {
        ASSERT_EQ(atomic_load(&c[i].n), 1);
        ASSERT_EQ(c[i].bad_revents, 0);
        ASSERT_EQ(c[i].bad_handle, 0);
    }
    ASSERT_OK(gh_watcher_stop(c[1].w));
    ASSERT_OK(raise(SIGUSR2));
    wait_count(&c[0].n, 2, 5);
    wait_count(&c[2].n, 2, 5);
    ASSERT_OK(gh_sleep(0.02));
    ASSERT_EQ(atomic_load(&c[0].n), 2);
    ASSERT_EQ(atomic_load(&c[1].n), 1);
    ASSERT_EQ(atomic_load(&c[2].n), 2);
    for (i = 0; i < 3; i++) ASSERT_OK(gh_watcher_close(c[i].w));
    ASSERT_OK(gh_hub_destroy());
}

/* Watchers of one signal in two hubs (two threads): one process-directed signal fires
 * both. */
struct peer_watch {
    pthread_barrier_t ready;
    struct sigcount c;
    atomic_int stop;
    int rc;
};
static void *peer_watch_thread(void *arg) {
    struct peer_watch *p = (struct peer_watch *)arg;
    int rc;
    atomic_init(&p->c.n, 0);
    p->c.bad_revents = p->c.bad_handle = 0;
    rc = gh_signal_new(&p->c.w, SIGUSR1);
    if (rc == GH_OK) rc = gh_watcher_start(p->c.w, count_cb, &p->c);
    p->rc = rc;
    pthread_barrier_wait(&p->ready);
    while (rc == GH_OK && !atomic_load(&p->stop)) rc = gh_sleep(0.002);
    if (rc == GH_OK) rc = gh_hub_destroy();
    if (p->rc == GH_OK) p->rc = rc;
    return NULL;
}
TEST(watchers_in_two_hubs_both_fire) {
    struct peer_watch p;
    struct sigcount mine;
    pthread_t t;
    memset(&p, 0, sizeof p);
    atomic_init(&p.stop, 0);
    pthread_barrier_init(&p.ready, NULL, 2);
    start_counter(&mine, SIGUSR1);
    ASSERT_OK(pthread_create(&t, NULL, peer_watch_thread, &p));
    pthread_barrier_wait(&p.ready);
    ASSERT_OK(p.rc);
    ASSERT_OK(kill(getpid(), SIGUSR1));
    wait_count(&mine.n, 1, 5);
    wait_count(&p.c.n, 1, 5);
    ASSERT_EQ(atomic_load(&mine.n), 1);
    ASSERT_EQ(atomic_load(&p.c.n), 1);
    atomic_store(&p.stop, 1);
    ASSERT_OK(pthread_join(t, NULL));
    ASSERT_OK(p.rc);
    ASSERT_OK(gh_watcher_close(mine.w));
    pthread_barrier_destroy(&p.ready);
    ASSERT_OK(gh_hub_destroy());
}

/* ---- bursts ------------------------------------------------------------- */

#define BURST 10000
static atomic_int burst_done; /* set right before the last kill() */
static atomic_int burst_calls, calls_after_done;
static void burst_cb(gh_watcher w, int revents, void *arg) {
    (void)w;
    (void)revents;
    (void)arg;
    atomic_fetch_add(&burst_calls, 1);
    if (atomic_load(&burst_done)) atomic_fetch_add(&calls_after_done, 1);
}
static void *burst_sender(void *arg) {
    int i, failures = 0;
    (void)arg;
    for (i = 0; i < BURST - 1; i++) failures += kill(getpid(), SIGUSR1) != 0;
    atomic_store(&burst_done, 1); /* a callback seeing it ran after the last kill began */
    failures += kill(getpid(), SIGUSR1) != 0;
    return (void *)(intptr_t)failures;
}

/* 10,000 kill(getpid(), SIGUSR1) in a loop from another thread: the callbacks coalesce
 * (at least 1, fewer than 10,000), and at least one callback runs after the last
 * kill() was issued (it sees the flag set just before it): the last signal is never
 * lost. */
TEST(burst_coalesces_keeps_last) {
    gh_watcher w;
    pthread_t t;
    void *failures = NULL;
    double end;
    ASSERT_OK(gh_signal_new(&w, SIGUSR1));
    ASSERT_OK(gh_watcher_start(w, burst_cb, NULL));
    ASSERT_OK(pthread_create(&t, NULL, burst_sender, NULL));
    end = gh_test_now() + 15;
    while (atomic_load(&calls_after_done) == 0 && gh_test_now() < end)
        ASSERT_OK(gh_sleep(0.001));
    ASSERT_OK(pthread_join(t, &failures));
    ASSERT_EQ((intptr_t)failures, 0);
    ASSERT_GE(atomic_load(&calls_after_done), 1);
    ASSERT_GE(atomic_load(&burst_calls), 1);
    ASSERT_TRUE(atomic_load(&burst_calls) < BURST);
    ASSERT_OK(gh_watcher_close(w));
    ASSERT_OK(gh_hub_destroy());
}

/* ---- the previous disposition ------------------------------------------ */

static volatile sig_atomic_t own_handler_calls;
static void own_handler(int sig) {
    (void)sig;
    own_handler_calls++;
}
static void install_own(int sig) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = own_handler;
    sigemptyset(&sa.sa_mask);
    ASSERT_OK(sigaction(sig, &sa, NULL));
}
static int own_is_installed(int sig) {
    struct sigaction cur;
    if (sigaction(sig, NULL, &cur) != 0) return 0;
    return !(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == own_handler;
}

/* Our own SIGUSR2 handler, then two watchers: while either is started greenhub's handler
 * is installed (the watchers fire, ours is not called); closing the first keeps it;
 * stopping the last restores ours (still called on raise); restarting takes it over
 * again; closing the last restores ours once more. */
TEST(previous_disposition_restored) {
    struct sigcount a, b;
    install_own(SIGUSR2);
    start_counter(&a, SIGUSR2);
    start_counter(&b, SIGUSR2);
    ASSERT_TRUE(!own_is_installed(SIGUSR2));
    ASSERT_OK(raise(SIGUSR2));
    wait_count(&a.n, 1, 5);
    wait_count(&b.n, 1, 5);
    ASSERT_EQ(own_handler_calls, 0);

    ASSERT_OK(gh_watcher_close(a.w));
    ASSERT_TRUE(!own_is_installed(SIGUSR2));
    ASSERT_OK(raise(SIGUSR2));
    wait_count(&b.n, 2, 5);
    ASSERT_EQ(atomic_load(&b.n), 2);
    ASSERT_EQ(own_handler_calls, 0);

    ASSERT_OK(gh_watcher_stop(b.w)); /* the last active watcher stops */
    ASSERT_TRUE(own_is_installed(SIGUSR2));
    ASSERT_OK(raise(SIGUSR2));
    ASSERT_EQ(own_handler_calls, 1);

    ASSERT_OK(gh_watcher_start(b.w, count_cb, &b));
    ASSERT_TRUE(!own_is_installed(SIGUSR2));
    ASSERT_OK(raise(SIGUSR2));
    wait_count(&b.n, 3, 5);
    ASSERT_EQ(atomic_load(&b.n), 3);
    ASSERT_EQ(own_handler_calls, 1);

    ASSERT_OK(gh_watcher_close(b.w));
    ASSERT_TRUE(own_is_installed(SIGUSR2));
    ASSERT_OK(raise(SIGUSR2));
    ASSERT_EQ(own_handler_calls, 2);
    ASSERT_OK(gh_hub_destroy());
}

/* gh_hub_destroy with a started signal watcher restores the previous disposition. */
TEST(destroy_restores_disposition) {
    struct sigcount a;
    install_own(SIGUSR1);
    start_counter(&a, SIGUSR1);
    ASSERT_TRUE(!own_is_installed(SIGUSR1));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_TRUE(own_is_installed(SIGUSR1));
    ASSERT_OK(raise(SIGUSR1));
    ASSERT_EQ(own_handler_calls, 1);
    ASSERT_CODE(gh_watcher_active(a.w), GH_EBADHANDLE);
}

static void *watch_and_exit(void *arg) {
    gh_watcher w;
    int rc = gh_signal_new(&w, SIGUSR1);
    (void)arg;
    if (rc == GH_OK) rc = gh_watcher_start(w, count_cb, NULL);
    return (void *)(intptr_t)rc; /* exits with the watcher started, hub not destroyed */
}

/* A thread that exits with a started signal watcher (its hub destroyed with it)
 * restores the previous disposition too; no fd is left behind. */
TEST(thread_exit_restores_disposition) {
    pthread_t t;
    void *rc = (void *)1;
    int fd0 = gh_test_fd_count();
    install_own(SIGUSR1);
    ASSERT_OK(pthread_create(&t, NULL, watch_and_exit, NULL));
    ASSERT_OK(pthread_join(t, &rc));
    ASSERT_OK((intptr_t)rc);
    ASSERT_TRUE(own_is_installed(SIGUSR1));
    ASSERT_OK(raise(SIGUSR1));
    ASSERT_EQ(own_handler_calls, 1);
    ASSERT_EQ(gh_test_fd_count(), fd0);
    ASSERT_OK(gh_hub_destroy());
}

/* ---- gh_hub_wait on a signal watcher; unreferenced watchers ------------- */

static void *raise_later(void *arg) {
    (void)arg;
    if (gh_sleep(0.01) == GH_OK) raise(SIGUSR2);
    return NULL;
}

/* gh_hub_wait(signal watcher) returns GH_OK once the signal arrives, and the watcher
 * is stopped afterwards. */
TEST(hub_wait_on_signal) {
    gh_watcher w;
    ASSERT_OK(gh_signal_new(&w, SIGUSR2));
    ASSERT_OK(gh_spawn(NULL, raise_later, NULL));
    ASSERT_OK(gh_hub_wait(w));
    ASSERT_EQ(gh_watcher_active(w), 0);
    ASSERT_OK(gh_watcher_close(w));
    ASSERT_OK(gh_hub_destroy());
}

/* An unreferenced signal watcher does not keep the loop alive: gh_hub_run returns. */
TEST(unref_signal_watcher_loop_exits) {
    gh_watcher w;
    ASSERT_OK(gh_signal_new(&w, SIGUSR2));
    ASSERT_OK(gh_watcher_start(w, count_cb, NULL));
    ASSERT_OK(gh_watcher_ref(w, 0));
    ASSERT_OK(gh_hub_run());
    ASSERT_EQ(gh_watcher_active(w), 1);
    ASSERT_OK(gh_watcher_close(w));
    ASSERT_OK(gh_hub_destroy());
}

/* ---- argument checks ---------------------------------------------------- */

/* gh_signal_new: signum 0, -1, 65, INT_MAX, SIGKILL, SIGSTOP and the synchronous fault
 * signals SIGSEGV, SIGBUS, SIGFPE, SIGILL: GH_EINVAL with *out untouched; NULL out:
 * GH_EINVAL; 1..64 otherwise accepted (SIGHUP, SIGCHLD, SIGRTMIN, 64). No fd leaks. */
TEST(signal_new_bad_args) {
    static const int bad[] = {0, -1, 65, INT_MAX, INT_MIN, SIGKILL, SIGSTOP,
                              SIGSEGV, SIGBUS, SIGFPE, SIGILL};
    static const int good[] = {SIGHUP, SIGUSR1, SIGCHLD, 34, 64};
    gh_watcher w;
    size_t i;
    int fd0 = gh_test_fd_count();
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        w.id = 0x77;
        ASSERT_CODE(gh_signal_new(&w, bad[i]), GH_EINVAL);
        ASSERT_EQ(w.id, 0x77);
    }
    ASSERT_CODE(gh_signal_new(NULL, SIGUSR1), GH_EINVAL);
    ASSERT_CODE(gh_signal_new(NULL, 0), GH_EINVAL);
    for (i = 0; i < sizeof good / sizeof good[0]; i++) {
        ASSERT_OK(gh_signal_new(&w, good[i]));
        ASSERT_EQ(gh_watcher_active(w), 0);
        ASSERT_OK(gh_watcher_close(w));
    }
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fd0);
}

/* A signal watcher is not a child watcher: gh_child_status is GH_EINVAL on it. */
TEST(child_status_on_signal_watcher) {
    gh_watcher w;
    int st = 5;
    ASSERT_OK(gh_signal_new(&w, SIGUSR1));
    ASSERT_CODE(gh_child_status(w, &st), GH_EINVAL);
    ASSERT_EQ(st, 5);
    ASSERT_OK(gh_watcher_close(w));
    ASSERT_OK(gh_hub_destroy());
}

int main(int argc, char **argv) {
    TEST_INIT(argc, argv);
    RUN(signal_goes_to_watching_hub);
    RUN(signal_while_greenlet_sleeps);
    RUN(several_watchers_all_fire);
    RUN(watchers_in_two_hubs_both_fire);
    RUN(burst_coalesces_keeps_last);
    RUN(previous_disposition_restored);
    RUN(destroy_restores_disposition);
    RUN(thread_exit_restores_disposition);
    RUN(hub_wait_on_signal);
    RUN(unref_signal_watcher_loop_exits);
    RUN(signal_new_bad_args);
    RUN(child_status_on_signal_watcher);
    return TEST_DONE();
}

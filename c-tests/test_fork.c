/* test_fork.c — fork(2) with a live hub: after fork the child's first greenhub call
 * builds a fresh loop (new backend fd and wake-up fd, watched fds re-registered); both
 * sides keep working, and the child's registrations never touch the parent's.
 *
 * Build and run: see /work/brief/tests.md.
 */
#include "harness.h"

#include <stdint.h>
#include <sys/socket.h>

/* ---- helpers ------------------------------------------------------------ */

static int timer_fires, spawned_ran, io_fired, sleeper_done = -1;
static void timer_cb(gh_watcher w, int revents, void *arg) {
    (void)w;
    (void)arg;
    if (revents == GH_TIMER) timer_fires++;
}
static void io_cb(gh_watcher w, int revents, void *arg) {
    (void)arg;
    if (revents & GH_READ) io_fired++;
    gh_watcher_stop(w);
}
static void *mark_spawned(void *arg) {
    spawned_ran++;
    return arg;
}
static void *sleeper(void *arg) {
    sleeper_done = gh_sleep(0.05);
    return arg;
}
static void *reader(void *arg) {
    int fd = (int)(intptr_t)arg;
    char c = 0;
    ssize_t n = gh_read(fd, &c, 1, 5);
    return (void *)(intptr_t)(n == 1 ? c : -1);
}

/* The checks both sides run after fork: the sleeper started before fork finishes with
 * GH_OK; the repeating timer started before fork fires; the io watcher started before
 * fork on `own[0]` fires when `own[1]` is written; a greenlet parked in gh_read on
 * `own2[0]` before fork wakes; a new greenlet runs; a new gh_wait_read wakes. */
static void both_sides(gh_greenlet sleeper_g, gh_greenlet reader_g, gh_watcher io,
                       int own_w, int own2_w, int fresh[2]) {
    gh_greenlet g;
    void *r = NULL;
    int t0 = timer_fires;
    (void)io;
    ASSERT_OK(gh_join(sleeper_g, 5, NULL));
    ASSERT_OK(sleeper_done);
    ASSERT_OK(gh_spawn(&g, mark_spawned, (void *)7));
    ASSERT_OK(gh_join(g, 5, &r));
    ASSERT_EQ((intptr_t)r, 7);
    ASSERT_OK(gh_release(g));
    ASSERT_EQ(write(own_w, "x", 1), 1);
    while (io_fired == 0) ASSERT_OK(gh_sleep(0.002));
    ASSERT_EQ(write(own2_w, "y", 1), 1);
    ASSERT_OK(gh_join(reader_g, 5, &r));
    ASSERT_EQ((intptr_t)r, 'y');
    ASSERT_EQ(write(fresh[1], "z", 1), 1);
    ASSERT_OK(gh_wait_read(fresh[0], 5));
    while (timer_fires < t0 + 2) ASSERT_OK(gh_sleep(0.002));
}

/* Before fork: a sleeping greenlet, a greenlet parked in gh_read, a started repeating
 * timer, a started io watcher. Parent and child (each with its own socketpairs, made
 * before fork) then both run the same checks (both_sides); the child exits 0 after
 * gh_hub_destroy, the parent reaps it with gh_waitpid and checks its status. */
TEST(fork_both_sides_work) {
    int sp[2][2], rp[2][2], fresh[2][2], i, st = -1;
    gh_greenlet sleeper_g, reader_g[2];
    gh_watcher tm, io[2];
    pid_t pid;
    for (i = 0; i < 2; i++) {
        ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp[i]));
        ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, rp[i]));
        ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, fresh[i]));
        ASSERT_OK(gh_io_new(&io[i], sp[i][0], GH_READ));
        ASSERT_OK(gh_watcher_start(io[i], io_cb, NULL));
        ASSERT_OK(gh_spawn(&reader_g[i], reader, (void *)(intptr_t)rp[i][0]));
    }
    ASSERT_OK(gh_timer_new(&tm, 0.005, 0.005));
    ASSERT_OK(gh_watcher_start(tm, timer_cb, NULL));
    ASSERT_OK(gh_spawn(&sleeper_g, sleeper, NULL));
    ASSERT_OK(gh_sleep(0.001)); /* everyone parked */
    ASSERT_EQ(gh_greenlet_state(sleeper_g), GH_STATE_WAITING);
    ASSERT_EQ(gh_greenlet_state(reader_g[0]), GH_STATE_WAITING);

    fflush(stdout);
    fflush(stderr);
    pid = fork();
    ASSERT_TRUE(pid >= 0);
    i = pid == 0 ? 1 : 0; /* the child uses set 1, the parent set 0 */
    /* the other side's reader and watcher share sockets with it: drop our copies */
    ASSERT_OK(gh_kill(reader_g[1 - i], 0));
    ASSERT_OK(gh_watcher_close(io[1 - i]));
    both_sides(sleeper_g, reader_g[i], io[i], sp[i][1], rp[i][1], fresh[i]);
    if (pid == 0) {
        ASSERT_OK(gh_hub_destroy());
        exit(0);
    }
    ASSERT_EQ(gh_waitpid(pid, &st, 10), pid);
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    ASSERT_OK(gh_hub_destroy());
}

/* The parent's registrations are untouched by the child: the parent has a greenlet
 * parked in gh_wait_read(a[0]) (registered before fork) and an io watcher on b[0]; the
 * child registers and unregisters the very same fds (gh_wait_read with a timeout,
 * gh_io_new/start/close, gh_close), opens and closes new ones, and exits. Then the
 * parent's greenlet and watcher still wake when a[1]/b[1] are written. */
static int parent_read_rc = 12345;
static void *parent_waiter(void *arg) {
    parent_read_rc = gh_wait_read((int)(intptr_t)arg, 10);
    return NULL;
}
TEST(fork_child_leaves_parent_registrations) {
    int a[2], b[2], st = -1;
    gh_greenlet g;
    gh_watcher w;
    pid_t pid;
    ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, a));
    ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, b));
    ASSERT_OK(gh_spawn(&g, parent_waiter, (void *)(intptr_t)a[0]));
    ASSERT_OK(gh_io_new(&w, b[0], GH_READ));
    ASSERT_OK(gh_watcher_start(w, io_cb, NULL));
    ASSERT_OK(gh_sleep(0.001));
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    ASSERT_TRUE(pid >= 0);
    if (pid == 0) {
        gh_watcher cw;
        int p[2], k;
        for (k = 0; k < 3; k++) {
            ASSERT_CODE(gh_wait_read(a[0], 0.005), GH_ETIMEDOUT);
            ASSERT_OK(gh_io_new(&cw, b[0], GH_READ));
            ASSERT_OK(gh_watcher_start(cw, io_cb, NULL));
            ASSERT_OK(gh_sleep(0.002));
            ASSERT_OK(gh_watcher_close(cw));
            ASSERT_OK(pipe(p));
            ASSERT_CODE(gh_wait_read(p[0], 0.002), GH_ETIMEDOUT);
            ASSERT_OK(gh_close(p[0]));
            ASSERT_OK(gh_close(p[1]));
        }
        ASSERT_OK(gh_watcher_close(w)); /* the inherited watcher, in the child's copy */
        ASSERT_OK(gh_close(a[0]));
        ASSERT_OK(gh_close(b[0]));
        ASSERT_OK(gh_hub_destroy());
        exit(0);
    }
    ASSERT_EQ(gh_waitpid(pid, &st, 10), pid);
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    ASSERT_EQ(parent_read_rc, 12345); /* still waiting */
    ASSERT_EQ(write(a[1], "1", 1), 1);
    ASSERT_EQ(write(b[1], "2", 1), 1);
    ASSERT_OK(gh_join(g, 5, NULL));
    ASSERT_OK(parent_read_rc);
    while (io_fired == 0) ASSERT_OK(gh_sleep(0.002));
    ASSERT_EQ(io_fired, 1);
    ASSERT_OK(gh_release(g));
    ASSERT_OK(gh_watcher_close(w));
    ASSERT_OK(gh_hub_destroy());
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
}

/* A chain of 6 forks (each child forks the next after its first greenhub calls): the
 * fd count after the child's first call (its loop rebuilt) is the same at every
 * level, at most 2 above the parent's — the old loop's fds are not kept around. */
#define DEPTH 6
TEST(fork_chain_fd_count_stable) {
    int rep[2], level = 0, counts[DEPTH + 1], n = 0, st = -1;
    pid_t pid;
    ASSERT_OK(pipe(rep));
    ASSERT_OK(gh_sleep(0.001));
    counts[n++] = gh_test_fd_count();
    for (;;) {
        fflush(stdout);
        fflush(stderr);
        pid = fork();
        ASSERT_TRUE(pid >= 0);
        if (pid > 0) break;
        level++;
        ASSERT_OK(gh_sleep(0.001)); /* first call: rebuilds the loop */
        {
            int c = gh_test_fd_count();
            ASSERT_EQ(write(rep[1], &c, sizeof c), (ssize_t)sizeof c);
        }
        if (level == DEPTH) {
            ASSERT_OK(gh_hub_destroy());
            exit(0);
        }
    }
    /* every process waits for its own child, then the original reads the report */
    ASSERT_EQ(gh_waitpid(pid, &st, 20), pid);
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    if (level > 0) {
        ASSERT_OK(gh_hub_destroy());
        exit(0);
    }
    while (n <= DEPTH) {
        ASSERT_EQ(read(rep[0], &counts[n], sizeof counts[n]), (ssize_t)sizeof counts[n]);
        n++;
    }
    for (n = 1; n <= DEPTH; n++) {
        if (counts[n] != counts[1])
            GH_TEST_FAIL_("fd counts by level (0 = the test process): %d %d %d %d %d %d %d",
                          counts[0], counts[1], counts[2], counts[3], counts[4], counts[5],
                          counts[6]);
        ASSERT_LE(counts[n], counts[0] + 2);
    }
    close(rep[0]);
    close(rep[1]);
    ASSERT_OK(gh_hub_destroy());
}

/* Repeated forks from one parent: each child's fd count after its first call is the
 * same (10 children). */
TEST(repeated_forks_fd_count_stable) {
    int rep[2], k, first = -1, base, st;
    ASSERT_OK(pipe(rep));
    ASSERT_OK(gh_sleep(0.001));
    base = gh_test_fd_count();
    for (k = 0; k < 10; k++) {
        int c = -1;
        pid_t pid;
        fflush(stdout);
        fflush(stderr);
        pid = fork();
        ASSERT_TRUE(pid >= 0);
        if (pid == 0) {
            ASSERT_OK(gh_sleep(0.001));
            c = gh_test_fd_count();
            ASSERT_EQ(write(rep[1], &c, sizeof c), (ssize_t)sizeof c);
            ASSERT_OK(gh_hub_destroy());
            exit(0);
        }
        ASSERT_EQ(gh_waitpid(pid, &st, 10), pid);
        ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        ASSERT_EQ(read(rep[0], &c, sizeof c), (ssize_t)sizeof c);
        if (first < 0) first = c;
        ASSERT_EQ(c, first);
        ASSERT_LE(c, base + 2);
    }
    ASSERT_EQ(gh_test_fd_count(), base);
    close(rep[0]);
    close(rep[1]);
    ASSERT_OK(gh_hub_destroy());
}

/* A signal watcher started before fork works in the child (raise in the child fires
 * the child's copy), and the parent's still works after the child exits. */
static int sig_fired;
static void sig_cb(gh_watcher w, int revents, void *arg) {
    (void)w;
    (void)arg;
    if (revents == GH_SIGNAL) sig_fired++;
}
TEST(fork_signal_watcher_both_sides) {
    gh_watcher w;
    int st = -1;
    pid_t pid;
    ASSERT_OK(gh_signal_new(&w, SIGUSR1));
    ASSERT_OK(gh_watcher_start(w, sig_cb, NULL));
    ASSERT_OK(gh_sleep(0.001));
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    ASSERT_TRUE(pid >= 0);
    ASSERT_OK(raise(SIGUSR1));
    {
        double end = gh_test_now() + 5;
        while (sig_fired == 0 && gh_test_now() < end) ASSERT_OK(gh_sleep(0.002));
    }
    ASSERT_EQ(sig_fired, 1);
    if (pid == 0) {
        ASSERT_OK(gh_hub_destroy());
        exit(0);
    }
    ASSERT_EQ(gh_waitpid(pid, &st, 10), pid);
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    ASSERT_OK(gh_watcher_close(w));
    ASSERT_OK(gh_hub_destroy());
}

int main(int argc, char **argv) {
    TEST_INIT(argc, argv);
    RUN(fork_both_sides_work);
    RUN(fork_child_leaves_parent_registrations);
    RUN(fork_chain_fd_count_stable);
    RUN(repeated_forks_fd_count_stable);
    RUN(fork_signal_watcher_both_sides);
    return TEST_DONE();
}

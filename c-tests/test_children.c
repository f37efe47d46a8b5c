/* test_children.c — child watchers (gh_child_new, gh_child_status) and gh_waitpid's
 * timeout: many children exiting at once, a child that exited before its watcher,
 * statuses (exit codes and signals), and every documented error.
 *
 * Build and run: see /work/brief/tests.md.
 */
#include "harness.h"

#include <pthread.h>
#include <stdint.h>

/* ---- helpers ------------------------------------------------------------ */

/* Forks a child that blocks reading `gate` until it is closed, then exits: with code
 * `code` if >= 0, or by raising signal -code. The child makes no greenhub call. */
static pid_t fork_gated(int gate_r, int gate_w, int code) {
    pid_t pid;
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid == 0) {
        char c;
        close(gate_w);
        while (read(gate_r, &c, 1) > 0) {
        }
        if (code < 0) {
            signal(-code, SIG_DFL);
            raise(-code);
        }
        _exit(code < 0 ? 0 : code);
    }
    return pid;
}

/* Forks a child that exits at once with `code`, and waits until it is a zombie
 * (without reaping it). */
static pid_t fork_exited(int code) {
    siginfo_t si;
    pid_t pid;
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid == 0) _exit(code);
    memset(&si, 0, sizeof si);
    while (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT) != 0 && errno == EINTR) {
    }
    return pid;
}

struct kid {
    pid_t pid;
    int code;    /* exit code, or -signal */
    int fired;   /* callbacks */
    int status;  /* gh_child_status in the callback */
    int st_rc;
    int active;  /* gh_watcher_active in the callback */
    gh_watcher w;
};

static int fired_total;
static void kid_cb(gh_watcher w, int revents, void *arg) {
    struct kid *k = (struct kid *)arg;
    k->fired++;
    fired_total++;
    k->st_rc = revents == GH_CHILD && w.id == k->w.id ? gh_child_status(w, &k->status)
                                                       : GH_EINTERNAL;
    k->active = gh_watcher_active(w);
}

static int status_ok(int status, int code) {
    if (code >= 0) return WIFEXITED(status) && WEXITSTATUS(status) == code;
    return WIFSIGNALED(status) && WTERMSIG(status) == -code;
}

/* ---- many children ------------------------------------------------------ */

#define NKIDS 100

/* 100 children, released at once by closing one pipe, exit with codes 0..99 (every
 * tenth dies of SIGTERM instead): each watcher fires exactly once, with GH_CHILD,
 * already stopped, and its status is that child's; nothing is left to reap; the
 * watchers' fds are all released after close. */
TEST(hundred_children_reaped) {
    static struct kid kids[NKIDS];
    int gate[2], i, fd0 = gh_test_fd_count();
    double end;
    ASSERT_OK(pipe(gate));
    for (i = 0; i < NKIDS; i++) {
        kids[i].code = i % 10 == 9 ? -SIGTERM : i;
        kids[i].pid = fork_gated(gate[0], gate[1], kids[i].code);
        ASSERT_TRUE(kids[i].pid > 0);
        ASSERT_OK(gh_child_new(&kids[i].w, kids[i].pid));
        ASSERT_OK(gh_watcher_start(kids[i].w, kid_cb, &kids[i]));
    }
    ASSERT_OK(gh_sleep(0.01));
    ASSERT_EQ(fired_total, 0);
    close(gate[1]); /* all exit now */
    close(gate[0]);
    end = gh_test_now() + 15;
    while (fired_total < NKIDS && gh_test_now() < end) ASSERT_OK(gh_sleep(0.005));
    ASSERT_EQ(fired_total, NKIDS);
    for (i = 0; i < NKIDS; i++) {
        int st = -7;
        ASSERT_EQ(kids[i].fired, 1);
        ASSERT_OK(kids[i].st_rc);
        if (!status_ok(kids[i].status, kids[i].code))
            GH_TEST_FAIL_("child %d: status %#x, expected %s %d", i, kids[i].status,
                          kids[i].code < 0 ? "signal" : "exit", kids[i].code);
        ASSERT_EQ(kids[i].active, 0); /* stopped itself before its callback */
        ASSERT_OK(gh_child_status(kids[i].w, &st));
        ASSERT_EQ(st, kids[i].status);
        ASSERT_CODE(waitpid(kids[i].pid, NULL, WNOHANG), -1); /* already reaped */
        ASSERT_OK(gh_watcher_close(kids[i].w));
    }
    ASSERT_OK(gh_hub_run()); /* nothing left */
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fd0);
}

/* ---- a child that exited before its watcher ----------------------------- */

/* A zombie child: its started watcher fires in the next iteration (gh_hub_wait returns
 * GH_OK at once, well under 2 s) with exit status 7. */
TEST(child_already_exited_fires_at_once) {
    gh_watcher w;
    int st = -1;
    double t0;
    pid_t pid = fork_exited(7);
    ASSERT_TRUE(pid > 0);
    ASSERT_OK(gh_child_new(&w, pid));
    t0 = gh_test_now();
    ASSERT_OK(gh_hub_wait(w));
    ASSERT_TRUE(gh_test_now() - t0 < 2.0);
    ASSERT_OK(gh_child_status(w, &st));
    ASSERT_TRUE(WIFEXITED(st));
    ASSERT_EQ(WEXITSTATUS(st), 7);
    ASSERT_EQ(gh_watcher_active(w), 0);
    ASSERT_OK(gh_watcher_close(w));
    ASSERT_OK(gh_hub_destroy());
}

/* A started watcher fires once and stops itself; restarting it after it fired does
 * not fire it again within 30 ms... the status stays readable. */
TEST(child_watcher_fires_once) {
    static struct kid k;
    int gate[2];
    ASSERT_OK(pipe(gate));
    k.code = 3;
    k.pid = fork_gated(gate[0], gate[1], 3);
    close(gate[0]);
    ASSERT_OK(gh_child_new(&k.w, k.pid));
    ASSERT_OK(gh_watcher_start(k.w, kid_cb, &k));
    ASSERT_EQ(gh_watcher_active(k.w), 1);
    close(gate[1]);
    while (k.fired == 0) ASSERT_OK(gh_sleep(0.002));
    ASSERT_OK(gh_sleep(0.03));
    ASSERT_EQ(k.fired, 1);
    ASSERT_EQ(gh_watcher_active(k.w), 0);
    ASSERT_TRUE(status_ok(k.status, 3));
    ASSERT_OK(gh_watcher_close(k.w));
    ASSERT_OK(gh_hub_destroy());
}

/* Someone else reaps the child first (a plain waitpid): the watcher still fires and
 * gh_child_status gives -1. */
TEST(child_reaped_elsewhere_status_minus_one) {
    gh_watcher w;
    int st = 0, gate[2];
    pid_t pid;
    ASSERT_OK(pipe(gate));
    pid = fork_gated(gate[0], gate[1], 4);
    close(gate[0]);
    ASSERT_OK(gh_child_new(&w, pid));
    close(gate[1]);
    ASSERT_EQ(waitpid(pid, &st, 0), pid);
    ASSERT_TRUE(status_ok(st, 4));
    ASSERT_OK(gh_hub_wait(w));
    ASSERT_OK(gh_child_status(w, &st));
    ASSERT_EQ(st, -1);
    ASSERT_OK(gh_watcher_close(w));
    ASSERT_OK(gh_hub_destroy());
}

/* ---- errors ------------------------------------------------------------- */

/* gh_child_status: GH_EAGAIN before the child exits (also while started), GH_EINVAL
 * for NULL status and for timer/async/signal/io watchers, GH_EBADHANDLE for zero and
 * closed handles; *status untouched by each failure. */
TEST(child_status_errors) {
    gh_watcher w, t, a, s, io, zero = {0};
    int st = 55, gate[2];
    pid_t pid;
    ASSERT_OK(pipe(gate));
    pid = fork_gated(gate[0], gate[1], 0);
    ASSERT_OK(gh_child_new(&w, pid));
    ASSERT_CODE(gh_child_status(w, &st), GH_EAGAIN);
    ASSERT_OK(gh_watcher_start(w, kid_cb, &(struct kid){0}));
    ASSERT_OK(gh_sleep(0.01));
    ASSERT_CODE(gh_child_status(w, &st), GH_EAGAIN);
    ASSERT_EQ(st, 55);
    ASSERT_OK(gh_watcher_stop(w));
    ASSERT_CODE(gh_child_status(w, NULL), GH_EINVAL);
    ASSERT_OK(gh_timer_new(&t, 1, 0));
    ASSERT_OK(gh_async_new(&a));
    ASSERT_OK(gh_signal_new(&s, SIGUSR1));
    ASSERT_OK(gh_io_new(&io, gate[0], GH_READ));
    ASSERT_CODE(gh_child_status(t, &st), GH_EINVAL);
    ASSERT_CODE(gh_child_status(a, &st), GH_EINVAL);
    ASSERT_CODE(gh_child_status(s, &st), GH_EINVAL);
    ASSERT_CODE(gh_child_status(io, &st), GH_EINVAL);
    ASSERT_CODE(gh_child_status(zero, &st), GH_EBADHANDLE);
    ASSERT_EQ(st, 55);
    ASSERT_OK(gh_watcher_close(t));
    ASSERT_CODE(gh_child_status(t, &st), GH_EBADHANDLE);
    ASSERT_OK(gh_watcher_close(a));
    ASSERT_OK(gh_watcher_close(s));
    ASSERT_OK(gh_watcher_close(io));
    close(gate[1]);
    close(gate[0]);
    ASSERT_OK(gh_hub_wait(w));
    ASSERT_OK(gh_child_status(w, &st));
    ASSERT_TRUE(status_ok(st, 0));
    ASSERT_OK(gh_watcher_close(w));
    ASSERT_CODE(gh_child_status(w, &st), GH_EBADHANDLE);
    ASSERT_OK(gh_hub_destroy());
}

/* gh_child_new: pid 0, -1, INT_MIN → GH_EINVAL; NULL out → GH_EINVAL; pids that are
 * not children (our parent, init, ourselves, a reaped child) → GH_ECHILD; *out
 * untouched; no fd leaked. */
TEST(child_new_errors) {
    gh_watcher w;
    int fd0 = gh_test_fd_count();
    pid_t reaped = fork_exited(0);
    ASSERT_EQ(waitpid(reaped, NULL, 0), reaped);
    w.id = 0x99;
    ASSERT_CODE(gh_child_new(&w, 0), GH_EINVAL);
    ASSERT_CODE(gh_child_new(&w, -1), GH_EINVAL);
    ASSERT_CODE(gh_child_new(&w, INT_MIN), GH_EINVAL);
    ASSERT_CODE(gh_child_new(NULL, 0), GH_EINVAL);
    ASSERT_CODE(gh_child_new(&w, getppid()), GH_ECHILD);
    ASSERT_CODE(gh_child_new(&w, 1), GH_ECHILD);
    ASSERT_CODE(gh_child_new(&w, getpid()), GH_ECHILD);
    ASSERT_CODE(gh_child_new(&w, reaped), GH_ECHILD);
    ASSERT_EQ(w.id, 0x99);
    {
        pid_t pid = fork_exited(1);
        ASSERT_CODE(gh_child_new(NULL, pid), GH_EINVAL);
        ASSERT_EQ(waitpid(pid, NULL, 0), pid);
    }
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fd0);
}

/* ---- other threads ------------------------------------------------------ */

struct other {
    gh_watcher w;
    int st_rc, start_rc;
};
static void *other_calls(void *arg) {
    struct other *o = (struct other *)arg;
    int st = 0;
    o->st_rc = gh_child_status(o->w, &st);
    o->start_rc = gh_watcher_start(o->w, kid_cb, NULL);
    gh_hub_destroy();
    return NULL;
}

/* A child watcher used from another thread: GH_EWRONGTHREAD (status and start). */
TEST(child_watcher_other_thread) {
    struct other o;
    pthread_t t;
    pid_t pid = fork_exited(2);
    ASSERT_OK(gh_child_new(&o.w, pid));
    ASSERT_OK(pthread_create(&t, NULL, other_calls, &o));
    ASSERT_OK(pthread_join(t, NULL));
    ASSERT_CODE(o.st_rc, GH_EWRONGTHREAD);
    ASSERT_CODE(o.start_rc, GH_EWRONGTHREAD);
    ASSERT_OK(gh_hub_wait(o.w));
    ASSERT_OK(gh_watcher_close(o.w));
    ASSERT_OK(gh_hub_destroy());
}

/* ---- gh_waitpid --------------------------------------------------------- */

/* gh_waitpid on a running child: timeout 0 → GH_ETIMEDOUT at once, 30 ms →
 * GH_ETIMEDOUT after >= 27 ms; the child is still there (not reaped); once it exits
 * gh_waitpid returns its pid and status; a second call is GH_ECHILD. */
TEST(waitpid_timeout) {
    int gate[2], st = -1;
    double t0, dt;
    pid_t pid;
    ASSERT_OK(pipe(gate));
    pid = fork_gated(gate[0], gate[1], 9);
    close(gate[0]);
    ASSERT_CODE(gh_waitpid(pid, &st, 0), GH_ETIMEDOUT);
    t0 = gh_test_now();
    ASSERT_CODE(gh_waitpid(pid, &st, 0.03), GH_ETIMEDOUT);
    dt = gh_test_now() - t0;
    ASSERT_TRUE(dt >= 0.027);
    ASSERT_EQ(st, -1);
    ASSERT_EQ(waitpid(pid, NULL, WNOHANG), 0); /* still running, not reaped */
    close(gate[1]);
    ASSERT_EQ(gh_waitpid(pid, &st, 5), pid);
    ASSERT_TRUE(status_ok(st, 9));
    ASSERT_CODE(gh_waitpid(pid, &st, 0), GH_ECHILD);
    ASSERT_OK(gh_hub_destroy());
}

int main(int argc, char **argv) {
    TEST_INIT(argc, argv);
    RUN(hundred_children_reaped);
    RUN(child_already_exited_fires_at_once);
    RUN(child_watcher_fires_once);
    RUN(child_reaped_elsewhere_status_minus_one);
    RUN(child_status_errors);
    RUN(child_new_errors);
    RUN(child_watcher_other_thread);
    RUN(waitpid_timeout);
    return TEST_DONE();
}

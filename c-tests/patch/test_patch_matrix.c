/* test_patch_matrix.c — every blocking read-side and write-side interposer through the
 * same scenarios: it waits cooperatively and succeeds; EOF / hang-up; a gh_timeout
 * (ETIMEDOUT); a gh_kill (ECANCELED); the socket's SO_RCVTIMEO / SO_SNDTIMEO; an fd
 * the program made non-blocking (EAGAIN at once); a thread without a hub, a hub
 * callback and a signal handler (plain libc); a fork() child (cooperative in its own
 * hub). Each scenario runs every function of its table; a failure names the function.
 *
 * Build and run: ./scripts/test_patch.sh (links libgreenhub.so, interposes the patch).
 */
#include "patch_util.h"

#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/uio.h>

/* ---- the read side: each op waits for input on fd; returns its result or -errno.
 * `wait_ms` is the poll-like calls' own timeout (-1 = none). -------------------------- */

typedef int (*op_fn)(int fd, int wait_ms);
struct op {
    const char *name;
    op_fn fn;
    int pollish; /* 1: returns a ready count, has its own timeout, ignores SO_RCVTIMEO */
    int pair;    /* 1: on a socketpair; 0: on a listening socket (accept) */
};

static int RET(long r) { return r < 0 ? -errno : (int)r; }
static char rbuf[64];

static int op_read(int fd, int ms) { (void)ms; return RET(read(fd, rbuf, sizeof rbuf)); }
static int op_readv(int fd, int ms) {
    struct iovec v[2] = {{rbuf, 2}, {rbuf + 2, sizeof rbuf - 2}};
    (void)ms;
    return RET(readv(fd, v, 2));
}
static int op_recv(int fd, int ms) { (void)ms; return RET(recv(fd, rbuf, sizeof rbuf, 0)); }
static int op_recvfrom(int fd, int ms) {
    (void)ms;
    return RET(recvfrom(fd, rbuf, sizeof rbuf, 0, NULL, NULL));
}
static int op_recvmsg(int fd, int ms) {
    struct iovec v = {rbuf, sizeof rbuf};
    struct msghdr m;
    (void)ms;
    memset(&m, 0, sizeof m);
    m.msg_iov = &v;
    m.msg_iovlen = 1;
    return RET(recvmsg(fd, &m, 0));
}
static int op_poll(int fd, int ms) {
    struct pollfd p = {fd, POLLIN, 0};
    return RET(poll(&p, 1, ms));
}
static int op_ppoll(int fd, int ms) {
    struct pollfd p = {fd, POLLIN, 0};
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    return RET(ppoll(&p, 1, ms < 0 ? NULL : &ts, NULL));
}
static int op_select(int fd, int ms) {
    fd_set r;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    FD_ZERO(&r);
    FD_SET(fd, &r);
    return RET(select(fd + 1, &r, NULL, NULL, ms < 0 ? NULL : &tv));
}
static int op_pselect(int fd, int ms) {
    fd_set r;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    FD_ZERO(&r);
    FD_SET(fd, &r);
    return RET(pselect(fd + 1, &r, NULL, NULL, ms < 0 ? NULL : &ts, NULL));
}
static int op_epoll(int fd, int ms) {
    struct epoll_event ev, out;
    int ep = epoll_create1(EPOLL_CLOEXEC), r;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    r = RET(epoll_wait(ep, &out, 1, ms));
    close(ep);
    return r;
}
static int op_accept(int fd, int ms) {
    (void)ms;
    int c = accept(fd, NULL, NULL);
    if (c < 0) return -errno;
    close(c);
    return 1;
}

static const struct op READS[] = {
    {"read", op_read, 0, 1},       {"readv", op_readv, 0, 1},     {"recv", op_recv, 0, 1},
    {"recvfrom", op_recvfrom, 0, 1}, {"recvmsg", op_recvmsg, 0, 1}, {"poll", op_poll, 1, 1},
    {"ppoll", op_ppoll, 1, 1},     {"select", op_select, 1, 1},   {"pselect", op_pselect, 1, 1},
    {"epoll_wait", op_epoll, 1, 1}, {"accept", op_accept, 0, 0},
};
#define NREADS (int)(sizeof READS / sizeof READS[0])

/* The fds for one op: a blocking socketpair, or a listener and its port. */
struct rig {
    int fd, peer, port;
};
static struct rig rig_open(const struct op *o) {
    struct rig r = {-1, -1, 0};
    if (o->pair) {
        int sv[2];
        bpair(sv);
        r.fd = sv[0];
        r.peer = sv[1];
    } else {
        r.fd = tcp_listener(&r.port);
    }
    return r;
}
static void rig_close(struct rig *r) {
    close(r->fd);
    if (r->peer >= 0) close(r->peer);
}
/* Make the op's fd ready: a byte from the peer, or a connection. */
static void rig_poke(struct rig *r) {
    if (r->peer >= 0) {
        ASSERT_EQ(write(r->peer, "x", 1), 1);
    } else {
        struct sockaddr_in a = loopback(r->port);
        int c = socket(AF_INET, SOCK_STREAM, 0);
        ASSERT_OK(connect(c, (struct sockaddr *)&a, sizeof a));
        close(c);
    }
}
struct poke_later {
    struct rig *rig;
    double delay;
};
static void *poke_later_fn(void *arg) {
    struct poke_later *p = (struct poke_later *)arg;
    if (gh_sleep(p->delay) != GH_OK) return RC_PTR(-1);
    rig_poke(p->rig);
    return RC_PTR(0);
}

#define FOR_EACH_READ(o)                                                       \
    for (const struct op *o = READS; o < READS + NREADS; o++)                  \
        if ((printf("  %s\n", o->name), 1))

TEST(reads_wait_cooperatively) {
    FOR_EACH_READ(o) {
        struct rig r = rig_open(o);
        struct poke_later p = {&r, 0.05};
        gh_greenlet w;
        ticker_start();
        ASSERT_OK(gh_spawn(&w, poke_later_fn, &p));
        ASSERT_GE(o->fn(r.fd, 2000), 1);
        ASSERT_GE(ticks, 1); /* the ticker ran: not a blocked thread */
        ASSERT_EQ(join_rc(w), 0);
        ASSERT_EQ(is_nonblock(r.fd), 0);
        ticker_stop();
        rig_close(&r);
    }
    ASSERT_OK(gh_hub_destroy());
}

TEST(reads_eof) {
    FOR_EACH_READ(o) {
        if (!o->pair) continue;
        struct rig r = rig_open(o);
        struct later l = {r.peer, NULL, 0, 0.03, 1};
        gh_greenlet w = later_spawn(&l);
        int got = o->fn(r.fd, 2000);
        ASSERT_EQ(got, o->pollish ? 1 : 0); /* EOF: 0 bytes; poll-like: readable */
        ASSERT_EQ(join_rc(w), 0);
        r.peer = -1;
        rig_close(&r);
    }
    ASSERT_OK(gh_hub_destroy());
}

TEST(reads_bad_fd) {
    ASSERT_OK(gh_sleep(0));
    FOR_EACH_READ(o) {
        int got = o->fn(1000, 50);
        /* EBADF; poll/ppoll report POLLNVAL as a ready entry; the epoll op's
         * epoll_ctl fails, so its epoll_wait times out */
        if (o->fn == op_poll || o->fn == op_ppoll) ASSERT_EQ(got, 1);
        else if (o->fn == op_epoll) ASSERT_EQ(got, 0);
        else ASSERT_EQ(got, -EBADF);
    }
    ASSERT_OK(gh_hub_destroy());
}

TEST(reads_gh_timeout) {
    FOR_EACH_READ(o) {
        struct rig r = rig_open(o);
        gh_timeout t;
        ASSERT_OK(gh_timeout_start(&t, 0.05));
        ASSERT_EQ(o->fn(r.fd, 5000), -ETIMEDOUT);
        ASSERT_OK(gh_timeout_cancel(t));
        rig_poke(&r); /* nothing was lost: the data (or connection) is still there */
        ASSERT_GE(o->fn(r.fd, 1000), 1);
        rig_close(&r);
    }
    ASSERT_OK(gh_hub_destroy());
}

struct kill_arg {
    const struct op *o;
    int fd;
};
static void *run_op(void *arg) {
    struct kill_arg *k = (struct kill_arg *)arg;
    return RC_PTR(k->o->fn(k->fd, -1));
}

TEST(reads_killed) {
    FOR_EACH_READ(o) {
        struct rig r = rig_open(o);
        struct kill_arg k = {o, r.fd};
        gh_greenlet g;
        void *res;
        ASSERT_OK(gh_spawn(&g, run_op, &k));
        ASSERT_OK(gh_sleep(0.03));
        ASSERT_EQ(gh_greenlet_state(g), GH_STATE_WAITING);
        ASSERT_OK(gh_kill(g, 1.0));
        ASSERT_OK(gh_join(g, 1.0, &res));
        ASSERT_EQ(PTR_RC(res), -ECANCELED);
        ASSERT_OK(gh_release(g));
        rig_close(&r);
    }
    ASSERT_OK(gh_hub_destroy());
}

TEST(reads_own_timeout) {
    FOR_EACH_READ(o) {
        struct rig r = rig_open(o);
        if (!o->pollish) set_timeo(r.fd, SO_RCVTIMEO, 0.05);
        ticker_start();
        double t0 = gh_test_now();
        ASSERT_EQ(o->fn(r.fd, 50), o->pollish ? 0 : -EAGAIN);
        ASSERT_TRUE(gh_test_now() - t0 >= 0.045);
        ASSERT_GE(ticks, 1); /* the ticker ran: not a blocked thread */
        ticker_stop();
        rig_close(&r);
    }
    ASSERT_OK(gh_hub_destroy());
}

TEST(reads_program_nonblocking) {
    ASSERT_OK(gh_sleep(0));
    FOR_EACH_READ(o) {
        if (o->pollish) continue; /* O_NONBLOCK does not change what poll does */
        struct rig r = rig_open(o);
        ASSERT_OK(fcntl(r.fd, F_SETFL, fcntl(r.fd, F_GETFL) | O_NONBLOCK));
        double t0 = gh_test_now();
        ASSERT_EQ(o->fn(r.fd, -1), -EAGAIN);
        ASSERT_TRUE(gh_test_now() - t0 < 0.05);
        ASSERT_EQ(is_nonblock(r.fd), 1);
        rig_close(&r);
    }
    ASSERT_OK(gh_hub_destroy());
}

/* Without a hub (another thread): libc's own blocking call; no hub is created. */
static const struct op *thr_op;
static struct rig *thr_rig;
static void *thread_op(void *arg) {
    (void)arg;
    int r = thr_op->fn(thr_rig->fd, 2000);
    return RC_PTR(gh_hub_context() == GH_CONTEXT_NONE ? r : -9999);
}

TEST(reads_thread_without_hub) {
    FOR_EACH_READ(o) {
        struct rig r = rig_open(o);
        pthread_t t;
        void *res;
        thr_op = o;
        thr_rig = &r;
        ASSERT_OK(pthread_create(&t, NULL, thread_op, NULL));
        ASSERT_OK(gh_sleep(0.03));
        rig_poke(&r);
        ASSERT_OK(pthread_join(t, &res));
        ASSERT_GE(PTR_RC(res), 1);
        rig_close(&r);
    }
    ASSERT_OK(gh_hub_destroy());
}

/* In a hub callback: plain libc (the fd is ready, so nothing blocks long). */
static int cb_got, cb_ctx;
static const struct op *cb_op;
static int cb_fd;
static void cb_run(void *arg) {
    (void)arg;
    cb_ctx = gh_hub_context();
    cb_got = cb_op->fn(cb_fd, 1000);
}

TEST(reads_in_callback) {
    FOR_EACH_READ(o) {
        struct rig r = rig_open(o);
        rig_poke(&r);
        cb_op = o;
        cb_fd = r.fd;
        cb_got = -12345;
        ASSERT_OK(gh_run_callback(cb_run, NULL));
        ASSERT_OK(gh_sleep(0.02));
        ASSERT_EQ(cb_ctx, GH_CONTEXT_HUB);
        ASSERT_GE(cb_got, 1);
        rig_close(&r);
    }
    ASSERT_OK(gh_hub_destroy());
}

/* In a signal handler on a greenlet: plain libc, no switch (the ticker does not run). */
static int sh_got, sh_ticks_moved;
static void sh_handler(int sig) {
    (void)sig;
    int t0 = ticks;
    sh_got = cb_op->fn(cb_fd, 30); /* not ready: SO_RCVTIMEO / the 30 ms timeout */
    sh_ticks_moved = ticks != t0;
}
static void *raise_it(void *arg) {
    (void)arg;
    raise(SIGUSR1);
    return RC_PTR(0);
}

TEST(reads_in_signal_handler) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = sh_handler;
    ASSERT_OK(sigaction(SIGUSR1, &sa, NULL));
    FOR_EACH_READ(o) {
        struct rig r = rig_open(o);
        set_timeo(r.fd, SO_RCVTIMEO, 0.03);
        cb_op = o;
        cb_fd = r.fd;
        ticker_start();
        ASSERT_OK(gh_sleep(0.02));
        gh_greenlet g;
        ASSERT_OK(gh_spawn(&g, raise_it, NULL));
        ASSERT_EQ(join_rc(g), 0);
        ASSERT_EQ(sh_got, o->pollish ? 0 : -EAGAIN);
        ASSERT_EQ(sh_ticks_moved, 0);
        ticker_stop();
        rig_close(&r);
    }
    ASSERT_OK(gh_hub_destroy());
}

TEST(reads_in_fork_child) {
    ASSERT_OK(gh_sleep(0)); /* the parent has a hub */
    FOR_EACH_READ(o) {
        struct rig r = rig_open(o);
        fflush(stdout);
        pid_t pid = fork();
        ASSERT_TRUE(pid >= 0);
        if (pid == 0) {
            struct poke_later p = {&r, 0.03};
            gh_greenlet w;
            ticker_start();
            if (gh_spawn(&w, poke_later_fn, &p) != GH_OK) _exit(10);
            if (o->fn(r.fd, 2000) < 1) _exit(11);
            if (ticks < 1) _exit(12);
            _exit(0);
        }
        int st;
        ASSERT_EQ(waitpid(pid, &st, 0), pid);
        ASSERT_TRUE(WIFEXITED(st));
        ASSERT_EQ(WEXITSTATUS(st), 0);
        rig_close(&r);
    }
    ASSERT_OK(gh_hub_destroy());
}

/* ---- the write side: each op writes `len` bytes of a big buffer ---------------- */

static char wbuf[4 << 20];
typedef ssize_t (*wop_fn)(int fd, size_t len);
static ssize_t w_write(int fd, size_t len) { return write(fd, wbuf, len); }
static ssize_t w_writev(int fd, size_t len) {
    struct iovec v[2] = {{wbuf, len / 2}, {wbuf + len / 2, len - len / 2}};
    return writev(fd, v, 2);
}
static ssize_t w_send(int fd, size_t len) { return send(fd, wbuf, len, 0); }
static ssize_t w_sendto(int fd, size_t len) { return sendto(fd, wbuf, len, 0, NULL, 0); }
static ssize_t w_sendmsg(int fd, size_t len) {
    struct iovec v[2] = {{wbuf, len / 2}, {wbuf + len / 2, len - len / 2}};
    struct msghdr m;
    memset(&m, 0, sizeof m);
    m.msg_iov = v;
    m.msg_iovlen = 2;
    return sendmsg(fd, &m, 0);
}
static const struct {
    const char *name;
    wop_fn fn;
} WRITES[] = {{"write", w_write}, {"writev", w_writev}, {"send", w_send},
              {"sendto", w_sendto}, {"sendmsg", w_sendmsg}};
#define NWRITES (int)(sizeof WRITES / sizeof WRITES[0])
#define FOR_EACH_WRITE(i)                                                      \
    for (int i = 0; i < NWRITES; i++)                                          \
        if ((printf("  %s\n", WRITES[i].name), 1))

static void *drain(void *arg) {
    int fd = *(int *)arg;
    static char b[65536];
    size_t total = 0;
    ssize_t n;
    while ((n = read(fd, b, sizeof b)) > 0) {
        total += (size_t)n;
        gh_sleep(0.0005);
    }
    return RC_PTR((int)(total >> 10));
}

TEST(writes_all_cooperatively) {
    FOR_EACH_WRITE(i) {
        int sv[2];
        gh_greenlet d;
        bpair(sv);
        ticker_start();
        ASSERT_OK(gh_spawn(&d, drain, &sv[0]));
        ASSERT_EQ(WRITES[i].fn(sv[1], sizeof wbuf), (ssize_t)sizeof wbuf);
        shutdown(sv[1], SHUT_WR);
        ASSERT_EQ(join_rc(d), (int)(sizeof wbuf >> 10));
        ASSERT_EQ(is_nonblock(sv[1]), 0);
        ticker_stop();
        closepair(sv);
    }
    ASSERT_OK(gh_hub_destroy());
}

struct wkill {
    int i, fd;
    ssize_t got;
    int err;
};
static void *run_wop(void *arg) {
    struct wkill *k = (struct wkill *)arg;
    errno = 0;
    k->got = WRITES[k->i].fn(k->fd, sizeof wbuf);
    k->err = errno;
    return NULL;
}

TEST(writes_stopped_keep_their_count) {
    FOR_EACH_WRITE(i) {
        int sv[2];
        gh_greenlet g;
        gh_timeout t;
        struct wkill k = {i, 0, 0, 0};
        /* killed: the count written before the kill */
        bpair(sv);
        k.fd = sv[1];
        ASSERT_OK(gh_spawn(&g, run_wop, &k));
        ASSERT_OK(gh_sleep(0.03));
        ASSERT_OK(gh_kill(g, 1.0));
        ASSERT_OK(gh_join(g, 1.0, NULL));
        ASSERT_OK(gh_release(g));
        ASSERT_TRUE(k.got > 0 && k.got < (ssize_t)sizeof wbuf);
        /* the buffer full: killed before anything → -1 ECANCELED */
        ASSERT_OK(gh_spawn(&g, run_wop, &k));
        ASSERT_OK(gh_sleep(0.03));
        ASSERT_OK(gh_kill(g, 1.0));
        ASSERT_OK(gh_join(g, 1.0, NULL));
        ASSERT_OK(gh_release(g));
        ASSERT_EQ(k.got, -1);
        ASSERT_EQ(k.err, ECANCELED);
        /* gh_timeout: -1 ETIMEDOUT (nothing fits) */
        ASSERT_OK(gh_timeout_start(&t, 0.03));
        ASSERT_EQ(WRITES[i].fn(sv[1], 100), -1);
        ASSERT_EQ(errno, ETIMEDOUT);
        ASSERT_OK(gh_timeout_cancel(t));
        /* SO_SNDTIMEO: -1 EAGAIN; non-blocking: EAGAIN at once */
        set_timeo(sv[1], SO_SNDTIMEO, 0.03);
        ASSERT_EQ(WRITES[i].fn(sv[1], 100), -1);
        ASSERT_EQ(errno, EAGAIN);
        ASSERT_OK(fcntl(sv[1], F_SETFL, O_NONBLOCK));
        double t0 = gh_test_now();
        ASSERT_EQ(WRITES[i].fn(sv[1], 100), -1);
        ASSERT_EQ(errno, EAGAIN);
        ASSERT_TRUE(gh_test_now() - t0 < 0.02);
        closepair(sv);
        /* EPIPE */
        signal(SIGPIPE, SIG_IGN);
        bpair(sv);
        close(sv[0]);
        ASSERT_EQ(WRITES[i].fn(sv[1], 10), -1);
        ASSERT_EQ(errno, EPIPE);
        close(sv[1]);
    }
    ASSERT_OK(gh_hub_destroy());
}

int main(int argc, char **argv) {
    TEST_INIT(argc, argv);
    RUN(reads_wait_cooperatively);
    RUN(reads_eof);
    RUN(reads_bad_fd);
    RUN(reads_gh_timeout);
    RUN(reads_killed);
    RUN(reads_own_timeout);
    RUN(reads_program_nonblocking);
    RUN(reads_thread_without_hub);
    RUN(reads_in_callback);
    RUN(reads_in_signal_handler);
    RUN(reads_in_fork_child);
    RUN(writes_all_cooperatively);
    RUN(writes_stopped_keep_their_count);
    return TEST_DONE();
}

/* test_io_ops.c — the cooperative fd operations of the "Cooperative I/O" section of
 * greenhub.h: gh_read, gh_write, gh_recv, gh_send, gh_accept, gh_connect, gh_close,
 * gh_waitpid (and gh_timeout_start around them).
 *
 * Build and run:
 *   cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g -O1 -Iinclude -Ic-tests \
 *      c-tests/test_io_ops.c target/release/libgreenhub.a -lpthread -ldl -lm \
 *      -o target/c/test_io_ops
 *   ./target/c/test_io_ops [case]
 *
 * Nothing here ignores or blocks SIGPIPE: the EPIPE cases assert that its disposition
 * is the default (which kills the process) before they write to a closed peer.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* The header names these codes in its docs (GH_EPIPE, ...) but does not define them;
 * they are -errno by the API's convention. */
#ifndef GH_EPIPE
#define GH_EPIPE (-EPIPE)
#endif
#ifndef GH_ECONNREFUSED
#define GH_ECONNREFUSED (-ECONNREFUSED)
#endif
#ifndef GH_ECONNRESET
#define GH_ECONNRESET (-ECONNRESET)
#endif
#ifndef GH_ECHILD
#define GH_ECHILD (-ECHILD)
#endif
#ifndef GH_ENOTSOCK
#define GH_ENOTSOCK (-ENOTSOCK)
#endif
#ifndef GH_EISCONN
#define GH_EISCONN (-EISCONN)
#endif
#ifndef GH_EMFILE
#define GH_EMFILE (-EMFILE)
#endif

/* ---- helpers ------------------------------------------------------------ */

#define RC_PTR(rc) ((void *)(intptr_t)(rc))
#define PTR_RC(p) ((long)(intptr_t)(p))
#define SA(p) ((struct sockaddr *)(p))

static void make_pair(int sv[2]) {
    ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv));
}

static void make_blocking_pair(int sv[2]) {
    ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
}

static void close_pair(int sv[2]) {
    ASSERT_OK(close(sv[0]));
    ASSERT_OK(close(sv[1]));
}

static int fl_nonblock(int fd) {
    int fl = fcntl(fd, F_GETFL);
    ASSERT_TRUE(fl >= 0);
    return (fl & O_NONBLOCK) != 0;
}

static int fd_is_open(int fd) { return fcntl(fd, F_GETFD) >= 0; }

/* Writes into non-blocking `fd` until it is full (big chunks, then single bytes, so
 * that not even a 1-byte write fits). */
static size_t fill(int fd) {
    static char buf[4096];
    size_t total = 0;
    size_t chunk = sizeof buf;
    for (;;) {
        ssize_t n = write(fd, buf, chunk);
        if (n < 0) {
            ASSERT_EQ(errno, EAGAIN);
            if (chunk == 1) break;
            chunk = 1;
            continue;
        }
        total += (size_t)n;
    }
    ASSERT_TRUE(total > 0);
    return total;
}

/* Reads everything available from non-blocking `fd`; returns the byte count and
 * keeps the last `tail_len` bytes read in `tail` (if not NULL). */
static size_t drain_tail(int fd, char *tail, size_t tail_len) {
    static char buf[65536];
    size_t total = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0) break;
        if (tail && tail_len) {
            if ((size_t)n >= tail_len) {
                memcpy(tail, buf + n - tail_len, tail_len);
            } else {
                memmove(tail, tail + n, tail_len - (size_t)n);
                memcpy(tail + tail_len - (size_t)n, buf, (size_t)n);
            }
        }
        total += (size_t)n;
    }
    return total;
}
static size_t drain(int fd) { return drain_tail(fd, NULL, 0); }

/* Joins `g` (bounded), releases it, and returns what its function returned. */
static long join_rc(gh_greenlet g) {
    void *res = NULL;
    ASSERT_OK(gh_join(g, 10.0, &res));
    ASSERT_OK(gh_release(g));
    return PTR_RC(res);
}

/* A TCP socket (blocking, CLOEXEC). */
static int tcp_socket(void) {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_TRUE(s >= 0);
    return s;
}

/* A non-blocking TCP socket bound to 127.0.0.1:<ephemeral> (listening if backlog >=
 * 0); `*a` receives its address. (accept_blocking_listener covers blocking ones.) */
static int tcp_listener_flags(int backlog, struct sockaddr_in *a, int flags) {
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | flags, 0);
    ASSERT_TRUE(l >= 0);
    socklen_t n = sizeof *a;
    memset(a, 0, sizeof *a);
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a->sin_port = 0;
    ASSERT_OK(bind(l, SA(a), sizeof *a));
    ASSERT_OK(getsockname(l, SA(a), &n));
    if (backlog >= 0) ASSERT_OK(listen(l, backlog));
    return l;
}
static int tcp_listener(int backlog, struct sockaddr_in *a) {
    return tcp_listener_flags(backlog, a, SOCK_NONBLOCK);
}

/* A loopback port nothing listens on (bound once, then closed). */
static struct sockaddr_in closed_port(void) {
    struct sockaddr_in a;
    int s = tcp_listener(-1, &a);
    ASSERT_OK(close(s));
    return a;
}

/* A connected TCP pair over loopback, set up with plain syscalls. */
static void tcp_pair(int *client, int *server) {
    struct sockaddr_in a;
    int l = tcp_listener(1, &a);
    *client = tcp_socket();
    ASSERT_OK(connect(*client, SA(&a), sizeof a));
    *server = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    ASSERT_TRUE(*server >= 0);
    ASSERT_OK(close(l));
}

/* A listener (backlog 0) whose accept queue is full, so that the SYN of any further
 * connect is dropped and that connect hangs until its timeout. The filler sockets are
 * returned in fillers[0..*nf] (close them after). Plain syscalls only. */
#define FILLERS_MAX 8
static int full_listener(struct sockaddr_in *a, int fillers[FILLERS_MAX], int *nf) {
    int l = tcp_listener(0, a);
    *nf = 0;
    for (int i = 0; i < FILLERS_MAX; i++) {
        int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        struct pollfd p;
        int rc, err = 0;
        socklen_t el = sizeof err;
        ASSERT_TRUE(c >= 0);
        fillers[(*nf)++] = c;
        if (connect(c, SA(a), sizeof *a) == 0) continue;
        ASSERT_EQ(errno, EINPROGRESS);
        p.fd = c;
        p.events = POLLOUT;
        p.revents = 0;
        rc = poll(&p, 1, 300);
        ASSERT_TRUE(rc >= 0);
        if (rc == 0) return l; /* this SYN was dropped: the queue is full */
        ASSERT_OK(getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &el));
        ASSERT_EQ(err, 0);
    }
    GH_TEST_FAIL_("could not fill the accept queue of a backlog-0 listener");
    return -1;
}

static void close_all(int *fds, int n) {
    for (int i = 0; i < n; i++) ASSERT_OK(close(fds[i]));
}

/* SIGPIPE must be at its default action (it would kill the process) and unblocked,
 * so that an EPIPE case really proves greenhub suppresses it. */
static void assert_sigpipe_default(void) {
    struct sigaction sa;
    sigset_t mask;
    ASSERT_OK(sigaction(SIGPIPE, NULL, &sa));
    ASSERT_TRUE(sa.sa_handler == SIG_DFL);
    ASSERT_OK(sigprocmask(SIG_BLOCK, NULL, &mask));
    ASSERT_EQ(sigismember(&mask, SIGPIPE), 0);
}

static int sigpipe_pending(void) {
    sigset_t p;
    ASSERT_OK(sigpending(&p));
    return sigismember(&p, SIGPIPE);
}

/* A byte pattern with a long period, for every-byte checks. */
static unsigned char pat(size_t i) { return (unsigned char)((i * 2654435761u) >> 13); }

/* A forked child that sleeps `ms` milliseconds, then exits with `code`. It touches
 * nothing of greenhub's. */
static pid_t fork_child(int ms, int code) {
    pid_t pid = fork();
    ASSERT_TRUE(pid >= 0);
    if (pid == 0) {
        if (ms > 0) usleep((useconds_t)ms * 1000u);
        _exit(code);
    }
    return pid;
}

/* Kills and reaps a child with plain syscalls (cleanup of a case). */
static void reap_kill(pid_t pid) {
    int st;
    kill(pid, SIGKILL);
    ASSERT_EQ(waitpid(pid, &st, 0), pid);
}

/* ---- one greenlet doing one call ---------------------------------------- */

enum op_kind {
    OP_READ,
    OP_WRITE,
    OP_RECV,
    OP_SEND,
    OP_ACCEPT,
    OP_CONNECT,
    OP_WAIT_READ,
    OP_WAIT_WRITE,
    OP_WAITPID,
    OP_HUB_WAIT
};

struct op {
    enum op_kind kind;
    int fd;
    void *buf;
    size_t len;
    int flags;
    double timeout;
    const struct sockaddr_in *addr; /* OP_CONNECT */
    int *status;                    /* OP_WAITPID (fd is the pid) */
    gh_watcher w;                   /* OP_HUB_WAIT */
    int delay_ms;                   /* gh_sleep before the call */
    long rc;
    int done;
    double t0, t1;
};

static void *op_run(void *arg) {
    struct op *o = (struct op *)arg;
    if (o->delay_ms > 0) {
        int rc = gh_sleep(o->delay_ms / 1000.0);
        if (rc != GH_OK) {
            o->rc = rc;
            o->done = 1;
            return RC_PTR(rc);
        }
    }
    o->t0 = gh_test_now();
    switch (o->kind) {
    case OP_READ: o->rc = gh_read(o->fd, o->buf, o->len, o->timeout); break;
    case OP_WRITE: o->rc = gh_write(o->fd, o->buf, o->len, o->timeout); break;
    case OP_RECV: o->rc = gh_recv(o->fd, o->buf, o->len, o->flags, o->timeout); break;
    case OP_SEND: o->rc = gh_send(o->fd, o->buf, o->len, o->flags, o->timeout); break;
    case OP_ACCEPT: o->rc = gh_accept(o->fd, NULL, NULL, o->timeout); break;
    case OP_CONNECT:
        o->rc = gh_connect(o->fd, SA(o->addr), sizeof *o->addr, o->timeout);
        break;
    case OP_WAIT_READ: o->rc = gh_wait_read(o->fd, o->timeout); break;
    case OP_WAIT_WRITE: o->rc = gh_wait_write(o->fd, o->timeout); break;
    case OP_WAITPID: o->rc = gh_waitpid(o->fd, o->status, o->timeout); break;
    case OP_HUB_WAIT: o->rc = gh_hub_wait(o->w); break;
    }
    o->t1 = gh_test_now();
    o->done = 1;
    return RC_PTR(o->rc);
}

static struct op mkop(enum op_kind kind, int fd, void *buf, size_t len, double timeout) {
    struct op o;
    memset(&o, 0, sizeof o);
    o.kind = kind;
    o.fd = fd;
    o.buf = buf;
    o.len = len;
    o.timeout = timeout;
    return o;
}

static gh_greenlet spawn_op(struct op *o) {
    gh_greenlet g;
    ASSERT_OK(gh_spawn(&g, op_run, o));
    return g;
}

/* Spawns `o` and lets it run until it parks (asserts it is waiting, not done). */
static gh_greenlet spawn_parked(struct op *o) {
    gh_greenlet g = spawn_op(o);
    ASSERT_OK(gh_sleep(0.02));
    ASSERT_EQ(o->done, 0);
    ASSERT_EQ(gh_greenlet_state(g), GH_STATE_WAITING);
    return g;
}

/* ==== gh_read / gh_write basics =========================================== */

/* gh_read returns what is there (up to len), in order; gh_write writes all of it and
 * returns len. */
TEST(read_write_basic) {
    int fds0 = gh_test_fd_count(), sv[2];
    char buf[64];
    make_pair(sv);
    ASSERT_EQ(gh_write(sv[1], "hello", 5, 1.0), 5);
    ASSERT_EQ(gh_read(sv[0], buf, 2, 1.0), 2);
    ASSERT_TRUE(memcmp(buf, "he", 2) == 0);
    ASSERT_EQ(gh_read(sv[0], buf, sizeof buf, 1.0), 3);
    ASSERT_TRUE(memcmp(buf, "llo", 3) == 0);
    ASSERT_EQ(gh_write(sv[0], "back", 4, GH_FOREVER), 4);
    ASSERT_EQ(gh_read(sv[1], buf, sizeof buf, GH_FOREVER), 4);
    ASSERT_TRUE(memcmp(buf, "back", 4) == 0);
    close_pair(sv);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* gh_read on an empty socket parks only the caller: a greenlet writes 20 ms later,
 * and the reader returns the data after that write (order reader-parks, writer-runs,
 * reader-returns). */
static char order_log[16];
static int order_n;
static void *write_later_logged(void *arg) {
    int fd = (int)(intptr_t)arg;
    int rc = gh_sleep(0.02);
    if (rc != GH_OK) return RC_PTR(rc);
    order_log[order_n++] = 'W';
    return RC_PTR(gh_write(fd, "abc", 3, 1.0));
}
static void *read_logged(void *arg) {
    int fd = (int)(intptr_t)arg;
    char buf[8];
    ssize_t n;
    order_log[order_n++] = 'r';
    n = gh_read(fd, buf, sizeof buf, 5.0);
    order_log[order_n++] = 'R';
    if (n == 3 && memcmp(buf, "abc", 3) != 0) return RC_PTR(-9999);
    return RC_PTR(n);
}
TEST(read_waits_cooperatively) {
    int fds0 = gh_test_fd_count(), sv[2];
    gh_greenlet r, w;
    make_pair(sv);
    order_n = 0;
    ASSERT_OK(gh_spawn(&r, read_logged, (void *)(intptr_t)sv[0]));
    ASSERT_OK(gh_spawn(&w, write_later_logged, (void *)(intptr_t)sv[1]));
    ASSERT_EQ(join_rc(r), 3);
    ASSERT_EQ(join_rc(w), 3);
    ASSERT_EQ(order_n, 3);
    ASSERT_TRUE(memcmp(order_log, "rWR", 3) == 0);
    close_pair(sv);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* A socket's flags are left untouched: a blocking socketpair is read and written
 * cooperatively (MSG_DONTWAIT; a blocking recv would hang the thread and the case)
 * and is still blocking afterwards. */
TEST(socket_flags_untouched) {
    int fds0 = gh_test_fd_count(), sv[2];
    char buf[8] = {0};
    gh_greenlet w;
    make_blocking_pair(sv);
    struct op wo = mkop(OP_WRITE, sv[1], "xyz", 3, 5.0);
    wo.delay_ms = 20;
    w = spawn_op(&wo);
    ASSERT_EQ(gh_read(sv[0], buf, sizeof buf, 5.0), 3);
    ASSERT_TRUE(memcmp(buf, "xyz", 3) == 0);
    ASSERT_EQ(join_rc(w), 3);
    ASSERT_EQ(fl_nonblock(sv[0]), 0);
    ASSERT_EQ(fl_nonblock(sv[1]), 0);
    /* timeout 0 on an empty blocking socket: does not wait */
    ASSERT_CODE(gh_read(sv[0], buf, 1, 0), GH_ETIMEDOUT);
    close_pair(sv);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* gh_read with a timeout and nothing arriving: GH_ETIMEDOUT after at least the
 * timeout, from main and from a spawned greenlet; same for gh_write on a full socket. */
TEST(read_write_timeout_expires) {
    int fds0 = gh_test_fd_count(), sv[2];
    char buf[4];
    double t0;
    gh_greenlet g;
    make_pair(sv);
    t0 = gh_test_now();
    ASSERT_CODE(gh_read(sv[0], buf, 1, 0.03), GH_ETIMEDOUT);
    ASSERT_TRUE(gh_test_now() - t0 >= 0.027);
    t0 = gh_test_now();
    ASSERT_CODE(gh_recv(sv[0], buf, 1, 0, 0.03), GH_ETIMEDOUT);
    ASSERT_TRUE(gh_test_now() - t0 >= 0.027);
    struct op ro = mkop(OP_READ, sv[0], buf, 1, 0.03);
    g = spawn_op(&ro);
    ASSERT_EQ(join_rc(g), GH_ETIMEDOUT);
    ASSERT_TRUE(ro.t1 - ro.t0 >= 0.027);
    fill(sv[0]);
    t0 = gh_test_now();
    ASSERT_CODE(gh_write(sv[0], "x", 1, 0.03), GH_ETIMEDOUT);
    ASSERT_TRUE(gh_test_now() - t0 >= 0.027);
    t0 = gh_test_now();
    ASSERT_CODE(gh_send(sv[0], "x", 1, 0, 0.03), GH_ETIMEDOUT);
    ASSERT_TRUE(gh_test_now() - t0 >= 0.027);
    close_pair(sv);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* Timeout 0 does not wait: GH_ETIMEDOUT when nothing is there (or no room), the data
 * (or the write) when there is. */
TEST(timeout_zero_does_not_wait) {
    int fds0 = gh_test_fd_count(), sv[2];
    char buf[8];
    make_pair(sv);
    ASSERT_CODE(gh_read(sv[0], buf, sizeof buf, 0), GH_ETIMEDOUT);
    ASSERT_CODE(gh_recv(sv[0], buf, sizeof buf, 0, 0), GH_ETIMEDOUT);
    ASSERT_EQ(gh_write(sv[1], "ab", 2, 0), 2);
    ASSERT_EQ(gh_read(sv[0], buf, 1, 0), 1);
    ASSERT_EQ(buf[0], 'a');
    ASSERT_EQ(gh_recv(sv[0], buf, sizeof buf, 0, 0), 1);
    ASSERT_EQ(buf[0], 'b');
    ASSERT_EQ(gh_send(sv[1], "c", 1, 0, 0), 1);
    ASSERT_EQ(gh_read(sv[0], buf, sizeof buf, 0), 1);
    ASSERT_EQ(buf[0], 'c');
    fill(sv[0]);
    ASSERT_CODE(gh_write(sv[0], "x", 1, 0), GH_ETIMEDOUT);
    ASSERT_CODE(gh_send(sv[0], "x", 1, 0, 0), GH_ETIMEDOUT);
    close_pair(sv);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* GH_FOREVER, other negative values, +inf and 1e300 all mean "no timeout": each read
 * waits for data a greenlet writes 20 ms later (1e300 must not overflow into
 * "already expired"). */
TEST(forever_and_huge_timeouts_wait) {
    int fds0 = gh_test_fd_count(), sv[2];
    const double ts[] = {GH_FOREVER, -5.0, INFINITY, 1e300};
    make_pair(sv);
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
        char c = 0;
        struct op wo = mkop(OP_WRITE, sv[1], "k", 1, 5.0);
        wo.delay_ms = 20;
        gh_greenlet w = spawn_op(&wo);
        double t0 = gh_test_now();
        ASSERT_EQ(gh_read(sv[0], &c, 1, ts[i]), 1);
        ASSERT_TRUE(gh_test_now() - t0 >= 0.018);
        ASSERT_EQ(c, 'k');
        ASSERT_EQ(join_rc(w), 1);
    }
    close_pair(sv);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* NaN timeout: GH_EINVAL from every fd operation, even when the call could complete at
 * once, and nothing is consumed. */
TEST(nan_timeout_einval) {
    int fds0 = gh_test_fd_count(), sv[2], l, c;
    char buf[8];
    struct sockaddr_in a;
    make_pair(sv);
    ASSERT_EQ(write(sv[1], "z", 1), 1);
    ASSERT_CODE(gh_read(sv[0], buf, 1, NAN), GH_EINVAL);
    ASSERT_CODE(gh_recv(sv[0], buf, 1, 0, NAN), GH_EINVAL);
    ASSERT_CODE(gh_write(sv[0], "y", 1, NAN), GH_EINVAL);
    ASSERT_CODE(gh_send(sv[0], "y", 1, 0, NAN), GH_EINVAL);
    ASSERT_EQ(gh_read(sv[0], buf, sizeof buf, 0), 1); /* the byte is still there */
    ASSERT_EQ(buf[0], 'z');
    ASSERT_CODE(gh_read(sv[1], buf, sizeof buf, 0), GH_ETIMEDOUT); /* nothing was sent */
    l = tcp_listener(4, &a);
    c = tcp_socket();
    ASSERT_CODE(gh_connect(c, SA(&a), sizeof a, NAN), GH_EINVAL);
    ASSERT_OK(connect(c, SA(&a), sizeof a));
    ASSERT_CODE(gh_accept(l, NULL, NULL, NAN), GH_EINVAL);
    int s = gh_accept(l, NULL, NULL, 1.0); /* the connection was not consumed */
    ASSERT_TRUE(s >= 0);
    pid_t pid = fork_child(0, 0);
    ASSERT_CODE(gh_waitpid(pid, NULL, NAN), GH_EINVAL);
    ASSERT_EQ(gh_waitpid(pid, NULL, 5.0), pid);
    ASSERT_OK(close(s));
    ASSERT_OK(close(c));
    ASSERT_OK(close(l));
    close_pair(sv);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* NULL buffer with len > 0: GH_EINVAL, nothing consumed or sent. */
TEST(null_buf_einval) {
    int fds0 = gh_test_fd_count(), sv[2];
    char c;
    make_pair(sv);
    ASSERT_EQ(write(sv[1], "q", 1), 1);
    ASSERT_CODE(gh_read(sv[0], NULL, 1, 1.0), GH_EINVAL);
    ASSERT_CODE(gh_recv(sv[0], NULL, 1, 0, 1.0), GH_EINVAL);
    ASSERT_CODE(gh_write(sv[0], NULL, 1, 1.0), GH_EINVAL);
    ASSERT_CODE(gh_send(sv[0], NULL, 1, 0, 1.0), GH_EINVAL);
    ASSERT_EQ(gh_read(sv[0], &c, 1, 0), 1);
    ASSERT_EQ(c, 'q');
    ASSERT_CODE(gh_read(sv[1], &c, 1, 0), GH_ETIMEDOUT);
    close_pair(sv);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* Writes of len 0: gh_write / gh_send return 0 at once (timeout 0), with or without a
 * buffer, on a socket and a pipe; nothing is sent. */
TEST(zero_len_write_returns_zero) {
    int fds0 = gh_test_fd_count(), sv[2], p[2];
    char buf[4];
    make_pair(sv);
    ASSERT_EQ(gh_write(sv[0], buf, 0, 0), 0);
    ASSERT_EQ(gh_write(sv[0], NULL, 0, 1.0), 0);
    ASSERT_EQ(gh_send(sv[0], buf, 0, 0, 0), 0);
    ASSERT_EQ(gh_send(sv[0], NULL, 0, 0, 1.0), 0);
    ASSERT_EQ(drain(sv[1]), 0);
    ASSERT_OK(pipe2(p, O_CLOEXEC));
    ASSERT_EQ(gh_write(p[1], buf, 0, 0), 0);
    ASSERT_EQ(gh_write(p[1], NULL, 0, GH_FOREVER), 0);
    ASSERT_OK(close(p[0]));
    ASSERT_OK(close(p[1]));
    close_pair(sv);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* Reads of len 0: gh_read / gh_recv return 0 at once (timeout 0 proves they do not
 * wait), with or without a buffer, on an empty socket, a socket with data (which is
 * not consumed) and an empty pipe. */
TEST(zero_len_read_returns_zero) {
    int fds0 = gh_test_fd_count(), sv[2], p[2];
    char buf[4], c;
    make_pair(sv);
    ASSERT_OK(pipe2(p, O_CLOEXEC));
    ASSERT_EQ(gh_read(p[0], buf, 0, 0), 0);
    ASSERT_EQ(gh_read(p[0], NULL, 0, 0), 0);
    ASSERT_EQ(write(sv[0], "d", 1), 1);
    ASSERT_EQ(gh_read(sv[1], buf, 0, 0), 0);
    ASSERT_EQ(gh_recv(sv[1], NULL, 0, 0, 0), 0);
    ASSERT_EQ(gh_read(sv[1], &c, 1, 0), 1);
    ASSERT_EQ(c, 'd');
    ASSERT_EQ(gh_read(sv[1], buf, 0, 0), 0); /* empty socket */
    ASSERT_EQ(gh_read(sv[1], NULL, 0, 0), 0);
    ASSERT_EQ(gh_recv(sv[1], NULL, 0, 0, 0), 0);
    ASSERT_OK(close(p[0]));
    ASSERT_OK(close(p[1]));
    close_pair(sv);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* Bad fds (FAULTS 8): -1, a closed fd, an fd above RLIMIT_NOFILE and INT_MAX give
 * GH_EBADF from every operation (and no crash or huge allocation). */
TEST(bad_fd_ebadf) {
    int fds0 = gh_test_fd_count(), closed;
    char buf[4] = "abc";
    struct sockaddr_in a = closed_port();
    ASSERT_TRUE(gh_hub_current().id != 0); /* the hub's own fds exist first */
    closed = tcp_socket();
    ASSERT_OK(close(closed));
    const int bad[] = {-1, closed, 1 << 22, INT_MAX, INT_MIN};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int fd = bad[i];
        ASSERT_CODE(gh_read(fd, buf, 1, 1.0), GH_EBADF);
        ASSERT_CODE(gh_write(fd, buf, 1, 1.0), GH_EBADF);
        ASSERT_CODE(gh_recv(fd, buf, 1, 0, 1.0), GH_EBADF);
        ASSERT_CODE(gh_send(fd, buf, 1, 0, 1.0), GH_EBADF);
        ASSERT_CODE(gh_accept(fd, NULL, NULL, 1.0), GH_EBADF);
        ASSERT_CODE(gh_connect(fd, SA(&a), sizeof a, 1.0), GH_EBADF);
        ASSERT_CODE(gh_close(fd), GH_EBADF);
        ASSERT_CODE(gh_read(fd, buf, 1, 0), GH_EBADF);
    }
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* ==== gh_recv / gh_send ==================================================== */

/* gh_recv passes its flags: MSG_PEEK leaves the data for the next read. */
TEST(recv_peek_flag) {
    int fds0 = gh_test_fd_count(), sv[2];
    char buf[8];
    make_pair(sv);
    struct op so = mkop(OP_SEND, sv[1], "peek", 4, 5.0);
    so.delay_ms = 20;
    gh_greenlet w = spawn_op(&so);
    ASSERT_EQ(gh_recv(sv[0], buf, sizeof buf, MSG_PEEK, 5.0), 4); /* waits for it */
    ASSERT_TRUE(memcmp(buf, "peek", 4) == 0);
    memset(buf, 0, sizeof buf);
    ASSERT_EQ(gh_read(sv[0], buf, sizeof buf, 0), 4);
    ASSERT_TRUE(memcmp(buf, "peek", 4) == 0);
    ASSERT_CODE(gh_recv(sv[0], buf, sizeof buf, 0, 0), GH_ETIMEDOUT);
    ASSERT_EQ(join_rc(w), 4);
    close_pair(sv);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* gh_send and gh_recv pass MSG_OOB through: "ab" sent with MSG_OOB over TCP gives 'a'
 * in band and 'b' as urgent data. */
TEST(send_recv_oob_flag) {
    int fds0 = gh_test_fd_count(), c, s;
    char buf[8] = {0}, u = 0;
    tcp_pair(&c, &s);
    ASSERT_EQ(gh_send(c, "ab", 2, MSG_OOB, 5.0), 2);
    ASSERT_EQ(gh_read(s, buf, sizeof buf, 5.0), 1);
    ASSERT_EQ(buf[0], 'a');
    ASSERT_EQ(gh_recv(s, &u, 1, MSG_OOB, 5.0), 1);
    ASSERT_EQ(u, 'b');
    ASSERT_OK(close(c));
    ASSERT_OK(close(s));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* gh_recv / gh_send / gh_accept / gh_connect on a pipe: GH_ENOTSOCK. */
TEST(socket_calls_on_pipe_enotsock) {
    int fds0 = gh_test_fd_count(), p[2];
    char buf[4];
    struct sockaddr_in a = closed_port();
    ASSERT_OK(pipe2(p, O_CLOEXEC));
    ASSERT_CODE(gh_recv(p[0], buf, 1, 0, 1.0), GH_ENOTSOCK);
    ASSERT_CODE(gh_send(p[1], "x", 1, 0, 1.0), GH_ENOTSOCK);
    ASSERT_CODE(gh_accept(p[0], NULL, NULL, 1.0), GH_ENOTSOCK);
    ASSERT_CODE(gh_connect(p[1], SA(&a), sizeof a, 1.0), GH_ENOTSOCK);
    ASSERT_OK(close(p[0]));
    ASSERT_OK(close(p[1]));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* gh_send of 1 MiB with flags 0 on a socketpair, gh_recv in another greenlet: the
 * send waits cooperatively whenever the socket is full and returns the whole length;
 * every byte arrives in order. */
static void *recv_all_check(void *arg) {
    int fd = (int)(intptr_t)arg;
    static unsigned char buf[65536];
    size_t total = 0;
    for (;;) {
        ssize_t n = gh_recv(fd, buf, sizeof buf, 0, 10.0);
        if (n < 0) return RC_PTR(n);
        if (n == 0) break;
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] != pat(total + (size_t)i)) return RC_PTR(-9002);
        total += (size_t)n;
    }
    return RC_PTR((long)total);
}
TEST(send_all_cooperatively) {
    int fds0 = gh_test_fd_count(), sv[2];
    const size_t len = 1u << 20;
    unsigned char *big = malloc(len);
    gh_greenlet r;
    ASSERT_TRUE(big != NULL);
    for (size_t i = 0; i < len; i++) big[i] = pat(i);
    make_pair(sv);
    ASSERT_OK(gh_spawn(&r, recv_all_check, (void *)(intptr_t)sv[1]));
    ASSERT_EQ(gh_send(sv[0], big, len, 0, 10.0), (long)len);
    ASSERT_OK(shutdown(sv[0], SHUT_WR));
    ASSERT_EQ(join_rc(r), (long)len);
    free(big);
    close_pair(sv);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* ==== gh_accept ============================================================= */

/* gh_accept waits for a client (connecting from a greenlet 20 ms later); the new fd is
 * non-blocking and close-on-exec; addr/addrlen receive the client's address; data
 * flows both ways. */
TEST(accept_basic) {
    int fds0 = gh_test_fd_count(), l, c, s;
    struct sockaddr_in a, peer, local;
    socklen_t plen = sizeof peer, llen = sizeof local;
    char buf[8];
    l = tcp_listener(8, &a);
    c = tcp_socket();
    struct op co = mkop(OP_CONNECT, c, NULL, 0, 5.0);
    co.addr = &a;
    co.delay_ms = 20;
    gh_greenlet g = spawn_op(&co);
    memset(&peer, 0, sizeof peer);
    double t0 = gh_test_now();
    s = gh_accept(l, SA(&peer), &plen, 5.0);
    ASSERT_TRUE(s >= 0);
    ASSERT_TRUE(gh_test_now() - t0 >= 0.018);
    ASSERT_EQ(join_rc(g), GH_OK);
    ASSERT_TRUE((fcntl(s, F_GETFL) & O_NONBLOCK) != 0);
    ASSERT_TRUE((fcntl(s, F_GETFD) & FD_CLOEXEC) != 0);
    ASSERT_EQ(plen, sizeof(struct sockaddr_in));
    ASSERT_EQ(peer.sin_family, AF_INET);
    ASSERT_EQ(peer.sin_addr.s_addr, htonl(INADDR_LOOPBACK));
    ASSERT_OK(getsockname(c, SA(&local), &llen));
    ASSERT_EQ(peer.sin_port, local.sin_port);
    ASSERT_EQ(gh_write(s, "srv", 3, 5.0), 3);
    ASSERT_EQ(gh_read(c, buf, sizeof buf, 5.0), 3);
    ASSERT_TRUE(memcmp(buf, "srv", 3) == 0);
    ASSERT_EQ(gh_write(c, "cli", 3, 5.0), 3);
    ASSERT_EQ(gh_read(s, buf, sizeof buf, 5.0), 3);
    ASSERT_TRUE(memcmp(buf, "cli", 3) == 0);
    ASSERT_OK(gh_close(s));
    ASSERT_OK(gh_close(c));
    /* both NULL: allowed; a pending connection is accepted at once (timeout 0) */
    c = tcp_socket();
    ASSERT_OK(connect(c, SA(&a), sizeof a));
    s = gh_accept(l, NULL, NULL, 0);
    ASSERT_TRUE(s >= 0);
    ASSERT_TRUE((fcntl(s, F_GETFL) & O_NONBLOCK) != 0);
    ASSERT_TRUE((fcntl(s, F_GETFD) & FD_CLOEXEC) != 0);
    ASSERT_OK(close(s));
    ASSERT_OK(close(c));
    ASSERT_OK(close(l));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* Exactly one of addr/addrlen NULL: GH_EINVAL, and the pending connection is not
 * consumed (the next accept gets it). */
TEST(accept_one_addr_null_einval) {
    int fds0 = gh_test_fd_count(), l, c, s;
    struct sockaddr_in a, peer;
    socklen_t plen = sizeof peer;
    l = tcp_listener(8, &a);
    c = tcp_socket();
    ASSERT_OK(connect(c, SA(&a), sizeof a));
    ASSERT_CODE(gh_accept(l, SA(&peer), NULL, 1.0), GH_EINVAL);
    ASSERT_CODE(gh_accept(l, NULL, &plen, 1.0), GH_EINVAL);
    ASSERT_EQ(plen, sizeof peer); /* untouched */
    s = gh_accept(l, NULL, NULL, 0);
    ASSERT_TRUE(s >= 0);
    ASSERT_OK(close(s));
    ASSERT_OK(close(c));
    ASSERT_OK(close(l));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* Accept on a socket that is not listening (bound only, unbound, a connected
 * socketpair end): GH_EINVAL at once, not a wait. */
TEST(accept_not_listening_einval) {
    int fds0 = gh_test_fd_count(), b, u, sv[2];
    struct sockaddr_in a;
    b = tcp_listener(-1, &a);
    u = tcp_socket();
    make_pair(sv);
    ASSERT_CODE(gh_accept(b, NULL, NULL, 5.0), GH_EINVAL);
    ASSERT_CODE(gh_accept(u, NULL, NULL, GH_FOREVER), GH_EINVAL);
    ASSERT_CODE(gh_accept(sv[0], NULL, NULL, 5.0), GH_EINVAL);
    ASSERT_OK(close(b));
    ASSERT_OK(close(u));
    close_pair(sv);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* Accept timeout: nobody connects; GH_ETIMEDOUT after at least the timeout (and at
 * once with timeout 0). */
TEST(accept_timeout) {
    int fds0 = gh_test_fd_count(), l;
    struct sockaddr_in a;
    l = tcp_listener(8, &a);
    ASSERT_CODE(gh_accept(l, NULL, NULL, 0), GH_ETIMEDOUT);
    double t0 = gh_test_now();
    ASSERT_CODE(gh_accept(l, NULL, NULL, 0.04), GH_ETIMEDOUT);
    ASSERT_TRUE(gh_test_now() - t0 >= 0.036);
    ASSERT_OK(close(l));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* gh_accept on a listener in blocking mode (the socket(2) default) still waits
 * cooperatively: another greenlet runs meanwhile and connects 20 ms later (a blocking
 * accept(2) would hang the whole thread, and this case with it). The timeout works
 * too. */
TEST(accept_blocking_listener) {
    int fds0 = gh_test_fd_count(), l, c, s;
    struct sockaddr_in a;
    l = tcp_listener_flags(8, &a, 0);
    ASSERT_EQ(fl_nonblock(l), 0);
    double t0 = gh_test_now();
    ASSERT_CODE(gh_accept(l, NULL, NULL, 0.03), GH_ETIMEDOUT);
    ASSERT_TRUE(gh_test_now() - t0 >= 0.027);
    c = tcp_socket();
    struct op co = mkop(OP_CONNECT, c, NULL, 0, 5.0);
    co.addr = &a;
    co.delay_ms = 20;
    gh_greenlet g = spawn_op(&co);
    s = gh_accept(l, NULL, NULL, 5.0);
    ASSERT_TRUE(s >= 0);
    ASSERT_EQ(join_rc(g), GH_OK);
    ASSERT_OK(close(s));
    ASSERT_OK(close(c));
    ASSERT_OK(close(l));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* Accept when the process is out of fds (FAULTS 31): GH_EMFILE surfaces (no busy loop
 * until the timeout); once fds are free again accepting works. */
TEST(accept_emfile_surfaces) {
    int fds0 = gh_test_fd_count(), l, c, c2, s, n = 0;
    int dups[512];
    struct sockaddr_in a;
    struct rlimit old, low;
    l = tcp_listener(8, &a);
    c = tcp_socket();
    ASSERT_OK(connect(c, SA(&a), sizeof a));
    ASSERT_OK(gh_sleep(0)); /* the hub's own fds exist before the limit bites */
    ASSERT_OK(getrlimit(RLIMIT_NOFILE, &old));
    low = old;
    low.rlim_cur = 64;
    ASSERT_OK(setrlimit(RLIMIT_NOFILE, &low));
    for (;;) {
        int d = dup(0);
        if (d < 0) {
            ASSERT_EQ(errno, EMFILE);
            break;
        }
        ASSERT_TRUE(n < 512);
        dups[n++] = d;
    }
    ASSERT_CODE(gh_accept(l, NULL, NULL, 5.0), GH_EMFILE);
    close_all(dups, n);
    ASSERT_OK(setrlimit(RLIMIT_NOFILE, &old));
    /* a second client: under valgrind the failed accept consumed the first one */
    c2 = tcp_socket();
    ASSERT_OK(connect(c2, SA(&a), sizeof a));
    s = gh_accept(l, NULL, NULL, 5.0);
    ASSERT_TRUE(s >= 0);
    ASSERT_OK(close(s));
    ASSERT_OK(close(c2));
    ASSERT_OK(close(c));
    ASSERT_OK(close(l));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* ==== gh_connect ============================================================ */

/* Connect to a listening loopback port: GH_OK; the socket (blocking before) is left
 * O_NONBLOCK; the server accepts it and data flows. */
TEST(connect_to_listener) {
    int fds0 = gh_test_fd_count(), l, c, s;
    struct sockaddr_in a;
    char buf[4];
    l = tcp_listener(8, &a);
    c = tcp_socket();
    ASSERT_EQ(fl_nonblock(c), 0);
    ASSERT_OK(gh_connect(c, SA(&a), sizeof a, 5.0));
    ASSERT_EQ(fl_nonblock(c), 1);
    s = gh_accept(l, NULL, NULL, 5.0);
    ASSERT_TRUE(s >= 0);
    ASSERT_EQ(gh_write(c, "hi", 2, 5.0), 2);
    ASSERT_EQ(gh_read(s, buf, sizeof buf, 5.0), 2);
    ASSERT_TRUE(memcmp(buf, "hi", 2) == 0);
    ASSERT_OK(close(s));
    ASSERT_OK(close(c));
    ASSERT_OK(close(l));
    /* connecting a connected socket: connect(2)'s -EISCONN */
    tcp_pair(&c, &s);
    ASSERT_OK(getpeername(c, SA(&a), &(socklen_t){sizeof a}));
    ASSERT_CODE(gh_connect(c, SA(&a), sizeof a, 5.0), GH_EISCONN);
    ASSERT_OK(close(s));
    ASSERT_OK(close(c));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* Connect to a closed loopback port: GH_ECONNREFUSED (from main and from a greenlet). */
TEST(connect_refused) {
    int fds0 = gh_test_fd_count(), c;
    struct sockaddr_in a = closed_port();
    c = tcp_socket();
    ASSERT_CODE(gh_connect(c, SA(&a), sizeof a, 5.0), GH_ECONNREFUSED);
    ASSERT_OK(close(c));
    c = tcp_socket();
    struct op co = mkop(OP_CONNECT, c, NULL, 0, 5.0);
    co.addr = &a;
    gh_greenlet g = spawn_op(&co);
    ASSERT_EQ(join_rc(g), GH_ECONNREFUSED);
    ASSERT_OK(close(c));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* Connect timeout: to a listener whose accept queue is full (its SYNs are dropped),
 * GH_ETIMEDOUT after at least the timeout; timeout 0 gives GH_ETIMEDOUT at once. */
TEST(connect_timeout) {
    int fds0 = gh_test_fd_count(), l, c, nf, fillers[FILLERS_MAX];
    struct sockaddr_in a;
    l = full_listener(&a, fillers, &nf);
    c = tcp_socket();
    double t0 = gh_test_now();
    ASSERT_CODE(gh_connect(c, SA(&a), sizeof a, 0.05), GH_ETIMEDOUT);
    ASSERT_TRUE(gh_test_now() - t0 >= 0.045);
    ASSERT_OK(close(c));
    c = tcp_socket();
    ASSERT_CODE(gh_connect(c, SA(&a), sizeof a, 0), GH_ETIMEDOUT);
    ASSERT_OK(close(c));
    close_all(fillers, nf);
    ASSERT_OK(close(l));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* Bad connect arguments: addr NULL → GH_EINVAL; an addrlen too short → connect(2)'s
 * -EINVAL. */
TEST(connect_bad_args) {
    int fds0 = gh_test_fd_count(), c;
    struct sockaddr_in a = closed_port();
    c = tcp_socket();
    ASSERT_CODE(gh_connect(c, NULL, sizeof a, 1.0), GH_EINVAL);
    ASSERT_CODE(gh_connect(c, NULL, 0, 1.0), GH_EINVAL);
    ASSERT_CODE(gh_connect(c, SA(&a), 1, 1.0), GH_EINVAL);
    ASSERT_OK(close(c));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* While a greenlet waits in gh_connect, another greenlet's gh_write on that socket is
 * the second writer: GH_EBUSY. */
TEST(connect_second_writer_ebusy) {
    int fds0 = gh_test_fd_count(), l, c, nf, fillers[FILLERS_MAX];
    struct sockaddr_in a;
    l = full_listener(&a, fillers, &nf);
    c = tcp_socket();
    struct op co = mkop(OP_CONNECT, c, NULL, 0, 5.0);
    co.addr = &a;
    gh_greenlet g = spawn_parked(&co);
    ASSERT_CODE(gh_write(c, "x", 1, 5.0), GH_EBUSY);
    ASSERT_CODE(gh_send(c, "x", 1, 0, 5.0), GH_EBUSY);
    ASSERT_OK(gh_kill(g, 1.0));
    ASSERT_EQ(join_rc(g), GH_ECANCELED);
    ASSERT_OK(close(c));
    close_all(fillers, nf);
    ASSERT_OK(close(l));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* ==== gh_close ============================================================== */

/* gh_close while one greenlet waits in gh_read and another in gh_wait_read on the fd
 * (FAULTS 27): both wake with GH_ECLOSED within one loop iteration (one gh_sleep(0));
 * the fd is closed. Same for a writer waiting on a full socket, and an acceptor. */
TEST(close_wakes_waiters_eclosed) {
    int fds0 = gh_test_fd_count(), sv[2], wv[2], l;
    char buf[4];
    struct sockaddr_in a;
    make_pair(sv);
    make_pair(wv);
    l = tcp_listener(8, &a);
    fill(wv[0]);
    struct op r = mkop(OP_READ, sv[0], buf, 1, 5.0);
    struct op wr = mkop(OP_WAIT_READ, sv[0], NULL, 0, 5.0);
    struct op w = mkop(OP_WRITE, wv[0], "x", 1, 5.0);
    struct op ac = mkop(OP_ACCEPT, l, NULL, 0, 5.0);
    gh_greenlet gr = spawn_op(&r), gwr = spawn_op(&wr), gw = spawn_op(&w), gac = spawn_op(&ac);
    ASSERT_OK(gh_sleep(0.02));
    ASSERT_TRUE(!r.done && !wr.done && !w.done && !ac.done);
    ASSERT_OK(gh_close(sv[0]));
    ASSERT_OK(gh_close(wv[0]));
    ASSERT_OK(gh_close(l));
    ASSERT_EQ(fd_is_open(sv[0]), 0);
    ASSERT_EQ(fd_is_open(wv[0]), 0);
    ASSERT_EQ(fd_is_open(l), 0);
    ASSERT_OK(gh_sleep(0));
    ASSERT_TRUE(r.done && wr.done && w.done && ac.done);
    ASSERT_EQ(join_rc(gr), GH_ECLOSED);
    ASSERT_EQ(join_rc(gwr), GH_ECLOSED);
    ASSERT_EQ(join_rc(gw), GH_ECLOSED);
    ASSERT_EQ(join_rc(gac), GH_ECLOSED);
    ASSERT_OK(close(sv[1]));
    ASSERT_OK(close(wv[1]));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* The closed fd's number is reused at once by a new socket, which becomes readable
 * before the old waiters run: they still get GH_ECLOSED (never the new socket's
 * event or data); the new socket's data is intact and a new gh_read on it works. */
TEST(close_fd_reused_at_once) {
    int fds0 = gh_test_fd_count(), sv[2], nv[2];
    char buf[8] = {0};
    make_pair(sv);
    struct op r = mkop(OP_READ, sv[0], buf, sizeof buf, 5.0);
    struct op wr = mkop(OP_WAIT_READ, sv[0], NULL, 0, 5.0);
    gh_greenlet gr = spawn_op(&r), gwr = spawn_op(&wr);
    ASSERT_OK(gh_sleep(0.02));
    ASSERT_TRUE(!r.done && !wr.done);
    int old = sv[0];
    ASSERT_OK(gh_close(old));
    make_pair(nv);
    ASSERT_EQ(nv[0], old); /* the same number, at once */
    ASSERT_EQ(write(nv[1], "new", 3), 3);
    ASSERT_EQ(join_rc(gr), GH_ECLOSED);
    ASSERT_EQ(join_rc(gwr), GH_ECLOSED);
    ASSERT_EQ(gh_read(nv[0], buf, sizeof buf, 1.0), 3); /* untouched by the old reader */
    ASSERT_TRUE(memcmp(buf, "new", 3) == 0);
    struct op r2 = mkop(OP_READ, nv[0], buf, sizeof buf, 5.0);
    gh_greenlet g2 = spawn_parked(&r2);
    ASSERT_EQ(write(nv[1], "2nd", 3), 3);
    ASSERT_EQ(join_rc(g2), 3);
    ASSERT_TRUE(memcmp(buf, "2nd", 3) == 0);
    ASSERT_OK(close(sv[1]));
    close_pair(nv);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* gh_close stops io watchers on the fd, and a greenlet in gh_hub_wait on such a
 * watcher wakes with GH_ECLOSED (gh_close: "greenlets waiting on it wake with
 * GH_ECLOSED"). The watcher handles stay valid until closed. */
static void never_cb(gh_watcher w, int revents, void *arg) {
    (void)w;
    (void)revents;
    (*(int *)arg)++;
}
TEST(close_stops_io_watchers) {
    int fds0 = gh_test_fd_count(), sv[2], fired = 0;
    gh_watcher w1, w2;
    make_pair(sv);
    ASSERT_OK(gh_io_new(&w1, sv[0], GH_READ));
    ASSERT_OK(gh_io_new(&w2, sv[0], GH_READ));
    ASSERT_OK(gh_watcher_start(w1, never_cb, &fired));
    struct op hw = mkop(OP_HUB_WAIT, -1, NULL, 0, 0);
    hw.w = w2;
    gh_greenlet g = spawn_parked(&hw);
    ASSERT_EQ(gh_watcher_active(w1), 1);
    ASSERT_OK(gh_close(sv[0]));
    ASSERT_EQ(gh_watcher_active(w1), 0);
    ASSERT_EQ(join_rc(g), GH_ECLOSED);
    ASSERT_EQ(fired, 0);
    ASSERT_OK(gh_watcher_close(w1));
    ASSERT_OK(gh_watcher_close(w2));
    ASSERT_OK(close(sv[1]));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* gh_close(-1) and gh_close of an already closed fd: GH_EBADF. gh_close of an fd
 * greenhub never saw closes it (GH_OK). */
TEST(close_bad_fd) {
    int fds0 = gh_test_fd_count(), sv[2];
    make_pair(sv);
    ASSERT_CODE(gh_close(-1), GH_EBADF);
    ASSERT_OK(gh_close(sv[0]));
    ASSERT_EQ(fd_is_open(sv[0]), 0);
    ASSERT_CODE(gh_close(sv[0]), GH_EBADF);
    ASSERT_OK(close(sv[1]));
    ASSERT_CODE(gh_close(sv[1]), GH_EBADF);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* gh_close from a watcher callback is allowed: GH_OK, and a greenlet waiting in
 * gh_read on the fd gets GH_ECLOSED. */
struct close_cb {
    int fd;
    int rc;
    int ran;
};
static void close_from_cb(gh_watcher w, int revents, void *arg) {
    struct close_cb *c = (struct close_cb *)arg;
    (void)w;
    (void)revents;
    c->rc = gh_close(c->fd);
    c->ran++;
}
TEST(close_from_callback) {
    int fds0 = gh_test_fd_count(), sv[2];
    char buf[4];
    gh_watcher t;
    make_pair(sv);
    struct close_cb cc = {sv[0], 1, 0};
    struct op r = mkop(OP_READ, sv[0], buf, 1, 5.0);
    gh_greenlet g = spawn_op(&r);
    ASSERT_OK(gh_timer_new(&t, 0.01, 0));
    ASSERT_OK(gh_watcher_start(t, close_from_cb, &cc));
    ASSERT_EQ(join_rc(g), GH_ECLOSED);
    ASSERT_EQ(cc.ran, 1);
    ASSERT_OK(cc.rc);
    ASSERT_EQ(fd_is_open(sv[0]), 0);
    ASSERT_OK(gh_watcher_close(t));
    ASSERT_OK(close(sv[1]));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* ==== peer closing ========================================================== */

/* Peer closes while a greenlet waits in gh_read: it returns 0 (EOF). With data still
 * queued before the close: the data first, then 0. */
TEST(peer_close_read_returns_zero) {
    int fds0 = gh_test_fd_count(), sv[2];
    char buf[8];
    make_pair(sv);
    struct op r = mkop(OP_READ, sv[0], buf, sizeof buf, 5.0);
    gh_greenlet g = spawn_parked(&r);
    ASSERT_OK(close(sv[1]));
    ASSERT_EQ(join_rc(g), 0);
    ASSERT_EQ(gh_read(sv[0], buf, sizeof buf, 1.0), 0); /* stays at EOF */
    ASSERT_OK(close(sv[0]));
    make_pair(sv);
    ASSERT_EQ(write(sv[1], "tail", 4), 4);
    ASSERT_OK(close(sv[1]));
    ASSERT_EQ(gh_read(sv[0], buf, sizeof buf, 1.0), 4);
    ASSERT_TRUE(memcmp(buf, "tail", 4) == 0);
    ASSERT_EQ(gh_recv(sv[0], buf, sizeof buf, 0, 1.0), 0);
    ASSERT_OK(close(sv[0]));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* Peer closes mid-transfer on a socket: the writer (8 MiB, blocked on a full socket)
 * gets GH_EPIPE; SIGPIPE (default action: would kill us) is not raised. Writing to an
 * already closed peer: GH_EPIPE at once, from gh_write and gh_send. */
static void *read_some_then_close(void *arg) {
    int fd = (int)(intptr_t)arg;
    static char buf[65536];
    size_t total = 0;
    while (total < 200000) {
        ssize_t n = gh_read(fd, buf, sizeof buf, 5.0);
        if (n <= 0) return RC_PTR(n == 0 ? -9001 : n);
        total += (size_t)n;
    }
    close(fd);
    return RC_PTR((long)total);
}
TEST(peer_close_mid_write_socket_epipe) {
    int fds0 = gh_test_fd_count(), sv[2];
    const size_t len = 8u << 20;
    char *big = calloc(1, len);
    gh_greenlet r;
    ASSERT_TRUE(big != NULL);
    assert_sigpipe_default();
    make_pair(sv);
    ASSERT_OK(gh_spawn(&r, read_some_then_close, (void *)(intptr_t)sv[1]));
    ASSERT_CODE(gh_write(sv[0], big, len, 10.0), GH_EPIPE);
    ASSERT_TRUE(join_rc(r) >= 200000);
    ASSERT_CODE(gh_write(sv[0], "x", 1, 1.0), GH_EPIPE);
    ASSERT_CODE(gh_send(sv[0], "x", 1, 0, 1.0), GH_EPIPE);
    ASSERT_EQ(sigpipe_pending(), 0);
    free(big);
    ASSERT_OK(close(sv[0]));
    /* TCP: the same through a loopback connection closed by the peer */
    int c, s;
    tcp_pair(&c, &s);
    ASSERT_OK(close(s));
    long rc = 0;
    for (int i = 0; i < 200 && rc >= 0; i++) { /* the first writes may still succeed */
        rc = gh_write(c, "tcpdata", 7, 1.0);
        if (rc >= 0) ASSERT_OK(gh_sleep(0.002));
    }
    ASSERT_TRUE(rc == GH_EPIPE || rc == GH_ECONNRESET);
    ASSERT_EQ(sigpipe_pending(), 0);
    ASSERT_OK(close(c));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* Peer closes mid-transfer on a pipe: the writer blocked on the full pipe gets
 * GH_EPIPE; SIGPIPE does not kill the process and is not left pending. A write to a
 * pipe whose read end is already closed: GH_EPIPE at once. */
TEST(peer_close_mid_write_pipe_epipe) {
    int fds0 = gh_test_fd_count(), p[2];
    const size_t len = 1u << 20;
    char *big = calloc(1, len);
    gh_greenlet r;
    ASSERT_TRUE(big != NULL);
    assert_sigpipe_default();
    ASSERT_OK(pipe2(p, O_CLOEXEC));
    ASSERT_OK(gh_spawn(&r, read_some_then_close, (void *)(intptr_t)p[0]));
    ASSERT_CODE(gh_write(p[1], big, len, 10.0), GH_EPIPE);
    ASSERT_TRUE(join_rc(r) >= 200000);
    ASSERT_EQ(sigpipe_pending(), 0);
    ASSERT_CODE(gh_write(p[1], "x", 1, 1.0), GH_EPIPE);
    ASSERT_EQ(sigpipe_pending(), 0);
    ASSERT_OK(close(p[1]));
    assert_sigpipe_default(); /* the mask and the disposition were restored */
    free(big);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* A peer that resets the connection (SO_LINGER 0) while a greenlet waits in gh_read:
 * the read returns recv(2)'s -ECONNRESET. */
TEST(peer_reset_read_econnreset) {
    int fds0 = gh_test_fd_count(), c, s;
    char buf[8];
    struct linger lg = {1, 0};
    tcp_pair(&c, &s);
    struct op r = mkop(OP_READ, c, buf, sizeof buf, 5.0);
    gh_greenlet g = spawn_parked(&r);
    ASSERT_OK(setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg));
    ASSERT_OK(close(s));
    ASSERT_EQ(join_rc(g), GH_ECONNRESET);
    ASSERT_OK(close(c));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* ==== one reader and one writer per fd (FAULTS 26) ========================== */

/* While greenlet A waits in gh_read on fd, other callers' gh_read / gh_recv on it give
 * GH_EBUSY at once (even with GH_FOREVER); gh_wait_read is not subject to the rule:
 * it waits and wakes with A. Once A has returned, reading is free again. */
TEST(second_reader_ebusy) {
    int fds0 = gh_test_fd_count(), sv[2];
    char abuf[4], buf[4];
    make_pair(sv);
    struct op a = mkop(OP_READ, sv[0], abuf, 1, 5.0);
    gh_greenlet ga = spawn_parked(&a);
    ASSERT_CODE(gh_read(sv[0], buf, 1, GH_FOREVER), GH_EBUSY);
    ASSERT_CODE(gh_recv(sv[0], buf, 1, 0, 5.0), GH_EBUSY);
    struct op b = mkop(OP_RECV, sv[0], buf, 1, 5.0);
    gh_greenlet gb = spawn_op(&b);
    struct op wr = mkop(OP_WAIT_READ, sv[0], NULL, 0, 5.0);
    gh_greenlet gwr = spawn_op(&wr);
    ASSERT_OK(gh_sleep(0.02));
    ASSERT_TRUE(b.done); /* the second reader did not wait */
    ASSERT_EQ(join_rc(gb), GH_EBUSY);
    ASSERT_EQ(wr.done, 0); /* gh_wait_read does wait */
    ASSERT_EQ(write(sv[1], "1", 1), 1);
    ASSERT_EQ(join_rc(ga), 1);
    ASSERT_EQ(abuf[0], '1');
    ASSERT_EQ(join_rc(gwr), GH_OK);
    ASSERT_EQ(a.done, 1);
    /* free again: a new reader waits and gets the next byte */
    struct op c = mkop(OP_READ, sv[0], buf, 1, 5.0);
    gh_greenlet gc = spawn_parked(&c);
    ASSERT_EQ(write(sv[1], "2", 1), 1);
    ASSERT_EQ(join_rc(gc), 1);
    ASSERT_EQ(buf[0], '2');
    close_pair(sv);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* While greenlet A waits in gh_write on a full socket, another gh_write / gh_send on
 * it gives GH_EBUSY; gh_wait_write waits (not subject); the read side of the same fd
 * is independent (a reader waits normally). Draining the peer completes A. */
TEST(second_writer_ebusy) {
    int fds0 = gh_test_fd_count(), sv[2];
    char rbuf[4], tail[4];
    make_pair(sv);
    fill(sv[0]);
    struct op a = mkop(OP_WRITE, sv[0], "AAAA", 4, 5.0);
    gh_greenlet ga = spawn_parked(&a);
    ASSERT_CODE(gh_write(sv[0], "m", 1, GH_FOREVER), GH_EBUSY);
    ASSERT_CODE(gh_send(sv[0], "m", 1, 0, 5.0), GH_EBUSY);
    struct op ww = mkop(OP_WAIT_WRITE, sv[0], NULL, 0, 5.0);
    struct op rd = mkop(OP_READ, sv[0], rbuf, 1, 5.0);
    gh_greenlet gww = spawn_op(&ww), grd = spawn_op(&rd);
    ASSERT_OK(gh_sleep(0.02));
    ASSERT_TRUE(!ww.done && !rd.done);
    ASSERT_TRUE(drain(sv[1]) > 0);
    ASSERT_EQ(join_rc(ga), 4);
    ASSERT_EQ(join_rc(gww), GH_OK);
    ASSERT_EQ(drain_tail(sv[1], tail, 4), 4);
    ASSERT_TRUE(memcmp(tail, "AAAA", 4) == 0);
    ASSERT_EQ(write(sv[1], "r", 1), 1);
    ASSERT_EQ(join_rc(grd), 1);
    ASSERT_EQ(rbuf[0], 'r');
    close_pair(sv);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* While greenlet A waits in gh_accept on a listener, another gh_accept on it gives
 * GH_EBUSY; A gets the next connection. */
TEST(second_acceptor_ebusy) {
    int fds0 = gh_test_fd_count(), l, c;
    struct sockaddr_in a;
    l = tcp_listener(8, &a);
    struct op ac = mkop(OP_ACCEPT, l, NULL, 0, 5.0);
    gh_greenlet g = spawn_parked(&ac);
    ASSERT_CODE(gh_accept(l, NULL, NULL, 5.0), GH_EBUSY);
    c = tcp_socket();
    ASSERT_OK(connect(c, SA(&a), sizeof a));
    long s = join_rc(g);
    ASSERT_TRUE(s >= 0);
    ASSERT_OK(close((int)s));
    ASSERT_OK(close(c));
    ASSERT_OK(close(l));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* ==== regular files and pipes ============================================== */

/* Regular files (not pollable) and /dev/null: the call just does the I/O, with any
 * timeout including 0. */
TEST(regular_file_io) {
    int fds0 = gh_test_fd_count(), fd, dn;
    char path[] = "/tmp/gh_io_ops_XXXXXX";
    const size_t len = 100000;
    char *big = malloc(len), *back = malloc(len);
    ASSERT_TRUE(big && back);
    for (size_t i = 0; i < len; i++) big[i] = (char)pat(i);
    fd = mkstemp(path);
    ASSERT_TRUE(fd >= 0);
    ASSERT_OK(unlink(path));
    ASSERT_EQ(gh_write(fd, "hello", 5, 0), 5);
    ASSERT_EQ(gh_write(fd, big, len, 1.0), (long)len);
    ASSERT_EQ(lseek(fd, 0, SEEK_SET), 0);
    char buf[8] = {0};
    ASSERT_EQ(gh_read(fd, buf, 5, 0), 5);
    ASSERT_TRUE(memcmp(buf, "hello", 5) == 0);
    size_t got = 0;
    while (got < len) {
        ssize_t n = gh_read(fd, back + got, len - got, GH_FOREVER);
        ASSERT_TRUE(n > 0);
        got += (size_t)n;
    }
    ASSERT_TRUE(memcmp(big, back, len) == 0);
    ASSERT_EQ(gh_read(fd, buf, sizeof buf, 1.0), 0); /* EOF */
    ASSERT_EQ(gh_read(fd, buf, sizeof buf, 0), 0);
    ASSERT_OK(gh_close(fd));
    dn = open("/dev/null", O_RDWR | O_CLOEXEC);
    ASSERT_TRUE(dn >= 0);
    ASSERT_EQ(gh_write(dn, big, len, 0), (long)len);
    ASSERT_EQ(gh_read(dn, buf, sizeof buf, 0), 0);
    ASSERT_OK(gh_close(dn));
    free(big);
    free(back);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* gh_read on an empty (blocking) pipe parks only the caller while another greenlet
 * writes 20 ms later; both pipe ends are switched to O_NONBLOCK by their first use. */
TEST(pipe_read_waits_cooperatively) {
    int fds0 = gh_test_fd_count(), p[2];
    char buf[8] = {0};
    gh_greenlet r, w;
    ASSERT_OK(pipe2(p, O_CLOEXEC));
    ASSERT_EQ(fl_nonblock(p[0]), 0);
    ASSERT_EQ(fl_nonblock(p[1]), 0);
    order_n = 0;
    ASSERT_OK(gh_spawn(&r, read_logged, (void *)(intptr_t)p[0]));
    ASSERT_OK(gh_spawn(&w, write_later_logged, (void *)(intptr_t)p[1]));
    ASSERT_EQ(join_rc(r), 3);
    ASSERT_EQ(join_rc(w), 3);
    ASSERT_EQ(order_n, 3);
    ASSERT_TRUE(memcmp(order_log, "rWR", 3) == 0);
    ASSERT_EQ(fl_nonblock(p[0]), 1);
    ASSERT_EQ(fl_nonblock(p[1]), 1);
    ASSERT_CODE(gh_read(p[0], buf, sizeof buf, 0), GH_ETIMEDOUT);
    ASSERT_OK(close(p[1]));
    ASSERT_EQ(gh_read(p[0], buf, sizeof buf, 1.0), 0); /* writer gone: EOF */
    ASSERT_OK(close(p[0]));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* gh_write of 1 MiB into a pipe (16x its buffer) while a greenlet reads: gh_write
 * returns the whole length, every byte arrives in order. */
static void *read_all_check(void *arg) {
    int fd = (int)(intptr_t)arg;
    static unsigned char buf[65536];
    size_t total = 0;
    long reads = 0;
    for (;;) {
        ssize_t n = gh_read(fd, buf, sizeof buf, 10.0);
        if (n < 0) return RC_PTR(n);
        if (n == 0) break;
        reads++;
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] != pat(total + (size_t)i)) return RC_PTR(-9002);
        total += (size_t)n;
    }
    return RC_PTR(reads > 1 ? (long)total : -9003);
}
TEST(pipe_write_all) {
    int fds0 = gh_test_fd_count(), p[2];
    const size_t len = 1u << 20;
    unsigned char *big = malloc(len);
    gh_greenlet r;
    ASSERT_TRUE(big != NULL);
    for (size_t i = 0; i < len; i++) big[i] = pat(i);
    ASSERT_OK(pipe2(p, O_CLOEXEC));
    ASSERT_OK(gh_spawn(&r, read_all_check, (void *)(intptr_t)p[0]));
    ASSERT_EQ(gh_write(p[1], big, len, 10.0), (long)len);
    ASSERT_OK(gh_close(p[1]));
    ASSERT_EQ(join_rc(r), (long)len);
    ASSERT_OK(close(p[0]));
    free(big);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* ==== gh_write_all / gh_send_all: writes that say how far they got =========== */

/* The three counted writes under test: gh_send_all (flags 0) and gh_write_all on a
 * socketpair, gh_write_all on a pipe. */
enum counted_kind { CW_SEND_SOCKET, CW_WRITE_SOCKET, CW_WRITE_PIPE };
static const char *const counted_names[] = {"gh_send_all/socket", "gh_write_all/socket",
                                            "gh_write_all/pipe"};

static int counted_write(enum counted_kind k, int fd, const void *buf, size_t len,
                         double timeout, size_t *done) {
    if (k == CW_SEND_SOCKET) return gh_send_all(fd, buf, len, 0, timeout, done);
    return gh_write_all(fd, buf, len, timeout, done);
}

/* pair[0] is written, pair[1] read. */
static void counted_pair(enum counted_kind k, int pair[2]) {
    if (k == CW_WRITE_PIPE) {
        int p[2];
        ASSERT_OK(pipe2(p, O_CLOEXEC | O_NONBLOCK));
        pair[0] = p[1];
        pair[1] = p[0];
    } else {
        make_pair(pair);
    }
}

struct counted_job {
    enum counted_kind kind;
    int fd;
    const unsigned char *buf;
    size_t len, done;
    int rc, finished;
};
static void *counted_job_run(void *arg) {
    struct counted_job *j = (struct counted_job *)arg;
    j->done = 12345; /* overwritten in every outcome */
    j->rc = counted_write(j->kind, j->fd, j->buf, j->len, GH_FOREVER, &j->done);
    j->finished = 1;
    return NULL;
}

/* A writer of `len` bytes parked on a full fd after writing part of it. */
static gh_greenlet counted_parked(struct counted_job *j) {
    gh_greenlet g;
    ASSERT_OK(gh_spawn(&g, counted_job_run, j));
    ASSERT_OK(gh_sleep(0.02));
    ASSERT_EQ(j->finished, 0);
    ASSERT_EQ(gh_greenlet_state(g), GH_STATE_WAITING);
    return g;
}

/* A write that times out part-way reports exactly the bytes that went out: resumed
 * from buf + count with a reader draining, the reader gets every byte of the pattern
 * once, in order (a count too small would repeat bytes, too large would lose some). */
TEST(counted_write_partial_then_resumed) {
    const size_t len = 4u << 20;
    unsigned char *big = malloc(len);
    ASSERT_TRUE(big != NULL);
    for (size_t i = 0; i < len; i++) big[i] = pat(i);
    for (int k = CW_SEND_SOCKET; k <= CW_WRITE_PIPE; k++) {
        int fds0 = gh_test_fd_count(), pair[2];
        size_t n = 777, n2 = 777;
        gh_greenlet r;
        printf("  %s\n", counted_names[k]);
        counted_pair((enum counted_kind)k, pair);
        ASSERT_CODE(counted_write((enum counted_kind)k, pair[0], big, len, 0.05, &n), GH_ETIMEDOUT);
        ASSERT_TRUE(n > 0 && n < len);
        ASSERT_OK(gh_spawn(&r, read_all_check, (void *)(intptr_t)pair[1]));
        ASSERT_OK(counted_write((enum counted_kind)k, pair[0], big + n, len - n, 10.0, &n2));
        ASSERT_EQ(n2, len - n);
        ASSERT_OK(gh_close(pair[0]));
        ASSERT_EQ(join_rc(r), (long)len);
        ASSERT_OK(gh_close(pair[1]));
        ASSERT_OK(gh_hub_destroy());
        ASSERT_EQ(gh_test_fd_count(), fds0);
    }
    free(big);
}

/* A writer parked after partial progress reports its count whatever ends it: killed
 * (GH_ECANCELED), its fd gh_close'd (GH_ECLOSED) — the count is then exactly what the
 * reader finds — or the reader gone (GH_EPIPE, no SIGPIPE: what went out is lost with
 * the reader, the count is between 0 and len). */
TEST(counted_write_interrupted_reports_count) {
    const size_t len = 4u << 20;
    unsigned char *big = calloc(1, len);
    ASSERT_TRUE(big != NULL);
    assert_sigpipe_default();
    for (int k = CW_SEND_SOCKET; k <= CW_WRITE_PIPE; k++) {
        int fds0 = gh_test_fd_count(), pair[2];
        printf("  %s\n", counted_names[k]);
        /* killed */
        counted_pair((enum counted_kind)k, pair);
        struct counted_job j = {(enum counted_kind)k, pair[0], big, len, 0, 0, 0};
        gh_greenlet g = counted_parked(&j);
        ASSERT_OK(gh_kill(g, 1.0));
        ASSERT_OK(gh_release(g));
        ASSERT_CODE(j.rc, GH_ECANCELED);
        ASSERT_TRUE(j.done > 0 && j.done < len);
        ASSERT_EQ(drain(pair[1]), j.done);
        /* gh_close'd while it waits */
        struct counted_job c = {(enum counted_kind)k, pair[0], big, len, 0, 0, 0};
        g = counted_parked(&c);
        ASSERT_OK(gh_close(pair[0]));
        ASSERT_OK(gh_join(g, 5.0, NULL));
        ASSERT_OK(gh_release(g));
        ASSERT_CODE(c.rc, GH_ECLOSED);
        ASSERT_TRUE(c.done > 0 && c.done < len);
        ASSERT_EQ(drain(pair[1]), c.done);
        ASSERT_OK(close(pair[1]));
        /* the reader goes away */
        counted_pair((enum counted_kind)k, pair);
        struct counted_job e = {(enum counted_kind)k, pair[0], big, len, 0, 0, 0};
        g = counted_parked(&e);
        ASSERT_OK(close(pair[1]));
        ASSERT_OK(gh_join(g, 5.0, NULL));
        ASSERT_OK(gh_release(g));
        ASSERT_TRUE(e.rc == GH_EPIPE || e.rc == GH_ECONNRESET);
        ASSERT_TRUE(e.done > 0 && e.done < len);
        ASSERT_EQ(sigpipe_pending(), 0);
        ASSERT_OK(close(pair[0]));
        ASSERT_OK(gh_hub_destroy());
        ASSERT_EQ(gh_test_fd_count(), fds0);
    }
    free(big);
}

/* The argument checks: a NULL count is GH_EINVAL and nothing is written; every other
 * failure stores 0 in the count (bad or closed fd, NULL buffer, NaN timeout, gh_send_all
 * on a pipe); len 0 is GH_OK with 0. */
TEST(counted_write_bad_args) {
    int fds0 = gh_test_fd_count(), sv[2], p[2], closed;
    size_t n;
    make_pair(sv);
    ASSERT_OK(pipe2(p, O_CLOEXEC));
    ASSERT_OK(gh_sleep(0)); /* the hub's fds exist before `closed` is freed */
    closed = dup(sv[0]);
    ASSERT_TRUE(closed >= 0);
    ASSERT_OK(close(closed));
    ASSERT_CODE(gh_write_all(sv[0], "x", 1, 1.0, NULL), GH_EINVAL);
    ASSERT_CODE(gh_send_all(sv[0], "x", 1, 0, 1.0, NULL), GH_EINVAL);
    ASSERT_EQ(drain(sv[1]), 0u);
    for (int k = CW_SEND_SOCKET; k <= CW_WRITE_SOCKET; k++) {
        enum counted_kind ck = (enum counted_kind)k;
        n = 9;
        ASSERT_CODE(counted_write(ck, sv[0], NULL, 1, 1.0, &n), GH_EINVAL);
        ASSERT_EQ(n, 0u);
        n = 9;
        ASSERT_CODE(counted_write(ck, sv[0], "x", 1, NAN, &n), GH_EINVAL);
        ASSERT_EQ(n, 0u);
        n = 9;
        ASSERT_CODE(counted_write(ck, -1, "x", 1, 1.0, &n), GH_EBADF);
        ASSERT_EQ(n, 0u);
        n = 9;
        ASSERT_CODE(counted_write(ck, closed, "x", 1, 1.0, &n), GH_EBADF);
        ASSERT_EQ(n, 0u);
        n = 9;
        ASSERT_OK(counted_write(ck, sv[0], NULL, 0, 1.0, &n));
        ASSERT_EQ(n, 0u);
        n = 9;
        ASSERT_OK(counted_write(ck, sv[0], "ab", 2, 1.0, &n));
        ASSERT_EQ(n, 2u);
    }
    ASSERT_EQ(drain(sv[1]), 4u);
    n = 9;
    ASSERT_CODE(gh_send_all(p[1], "x", 1, 0, 1.0, &n), GH_ENOTSOCK);
    ASSERT_EQ(n, 0u);
    ASSERT_OK(gh_write_all(p[1], "x", 1, 1.0, &n));
    ASSERT_EQ(n, 1u);
    close_pair(sv);
    close_pair(p);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* gh_send_all passes its flags to send(2): MSG_OOB sends the last byte urgent (as
 * send_recv_oob_flag for gh_send). */
TEST(send_all_flags) {
    int fds0 = gh_test_fd_count(), c, s;
    size_t n = 0;
    char buf[8] = {0}, mark = 0;
    tcp_pair(&c, &s);
    ASSERT_OK(gh_send_all(c, "abc", 3, MSG_OOB, 5.0, &n));
    ASSERT_EQ(n, 3u);
    ASSERT_EQ(gh_read(s, buf, sizeof buf, 5.0), 2); /* up to the urgent mark */
    ASSERT_TRUE(memcmp(buf, "ab", 2) == 0);
    ASSERT_EQ(gh_recv(s, &mark, 1, MSG_OOB, 5.0), 1);
    ASSERT_EQ(mark, 'c');
    ASSERT_OK(close(c));
    ASSERT_OK(close(s));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* ==== large transfer ======================================================== */

/* 8 MiB through a socketpair between two greenlets (gh_write all of it / gh_read in
 * chunks until EOF): every byte checked, exactly 8 MiB, read in many chunks. */
struct big_write {
    int fd;
    const unsigned char *buf;
    size_t len;
};
static void *write_big_then_shutdown(void *arg) {
    struct big_write *b = (struct big_write *)arg;
    ssize_t n = gh_write(b->fd, b->buf, b->len, 20.0);
    shutdown(b->fd, SHUT_WR);
    return RC_PTR(n);
}
TEST(large_transfer_8mib) {
    int fds0 = gh_test_fd_count(), sv[2];
    const size_t len = 8u << 20;
    unsigned char *big = malloc(len);
    gh_greenlet w, r;
    ASSERT_TRUE(big != NULL);
    for (size_t i = 0; i < len; i++) big[i] = pat(i);
    make_pair(sv);
    struct big_write bw = {sv[0], big, len};
    ASSERT_OK(gh_spawn(&w, write_big_then_shutdown, &bw));
    ASSERT_OK(gh_spawn(&r, read_all_check, (void *)(intptr_t)sv[1]));
    ASSERT_EQ(join_rc(w), (long)len);
    ASSERT_EQ(join_rc(r), (long)len);
    free(big);
    close_pair(sv);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* ==== kill / throw while blocked (FAULTS 11) =============================== */

/* Kill of a greenlet blocked in gh_read: GH_ECANCELED; the fd stays usable: another
 * greenlet then waits on it (no GH_EBUSY) and gets the next data, nothing lost. */
TEST(kill_blocked_read) {
    int fds0 = gh_test_fd_count(), sv[2];
    char abuf[4], buf[8];
    make_pair(sv);
    struct op a = mkop(OP_READ, sv[0], abuf, 1, GH_FOREVER);
    gh_greenlet ga = spawn_parked(&a);
    ASSERT_OK(gh_kill(ga, 1.0));
    ASSERT_EQ(join_rc(ga), GH_ECANCELED);
    struct op b = mkop(OP_READ, sv[0], buf, sizeof buf, 5.0);
    gh_greenlet gb = spawn_parked(&b);
    ASSERT_EQ(write(sv[1], "next", 4), 4);
    ASSERT_EQ(join_rc(gb), 4);
    ASSERT_TRUE(memcmp(buf, "next", 4) == 0);
    close_pair(sv);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* Kill of a greenlet blocked in gh_write on a full socket: GH_ECANCELED; the fd stays
 * usable: another writer (no GH_EBUSY) completes once the peer drains, and its bytes
 * are the last ones the peer reads. */
TEST(kill_blocked_write) {
    int fds0 = gh_test_fd_count(), sv[2];
    char tail[4];
    make_pair(sv);
    fill(sv[0]);
    struct op a = mkop(OP_WRITE, sv[0], "AAAA", 4, GH_FOREVER);
    gh_greenlet ga = spawn_parked(&a);
    ASSERT_OK(gh_kill(ga, 1.0));
    ASSERT_EQ(join_rc(ga), GH_ECANCELED);
    struct op b = mkop(OP_WRITE, sv[0], "BBBB", 4, 5.0);
    gh_greenlet gb = spawn_parked(&b);
    ASSERT_TRUE(drain(sv[1]) > 0);
    ASSERT_EQ(join_rc(gb), 4);
    ASSERT_EQ(drain_tail(sv[1], tail, 4), 4);
    ASSERT_TRUE(memcmp(tail, "BBBB", 4) == 0);
    close_pair(sv);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* Kill of a greenlet blocked in gh_accept: GH_ECANCELED; the listener stays usable:
 * another greenlet's gh_accept gets the next connection. */
TEST(kill_blocked_accept) {
    int fds0 = gh_test_fd_count(), l, c;
    struct sockaddr_in a;
    l = tcp_listener(8, &a);
    struct op x = mkop(OP_ACCEPT, l, NULL, 0, GH_FOREVER);
    gh_greenlet gx = spawn_parked(&x);
    ASSERT_OK(gh_kill(gx, 1.0));
    ASSERT_EQ(join_rc(gx), GH_ECANCELED);
    struct op y = mkop(OP_ACCEPT, l, NULL, 0, 5.0);
    gh_greenlet gy = spawn_parked(&y);
    c = tcp_socket();
    ASSERT_OK(connect(c, SA(&a), sizeof a));
    long s = join_rc(gy);
    ASSERT_TRUE(s >= 0);
    ASSERT_OK(close((int)s));
    ASSERT_OK(close(c));
    ASSERT_OK(close(l));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* Kill of a greenlet blocked in gh_connect (to a full listener): GH_ECANCELED; the
 * socket's write side is free again: gh_write / gh_wait_write on it wait and time out
 * (the connect is still pending) instead of GH_EBUSY. */
TEST(kill_blocked_connect) {
    int fds0 = gh_test_fd_count(), l, c, nf, fillers[FILLERS_MAX];
    struct sockaddr_in a;
    l = full_listener(&a, fillers, &nf);
    c = tcp_socket();
    struct op co = mkop(OP_CONNECT, c, NULL, 0, GH_FOREVER);
    co.addr = &a;
    gh_greenlet g = spawn_parked(&co);
    ASSERT_OK(gh_kill(g, 1.0));
    ASSERT_EQ(join_rc(g), GH_ECANCELED);
    ASSERT_CODE(gh_write(c, "x", 1, 0.03), GH_ETIMEDOUT);
    ASSERT_CODE(gh_wait_write(c, 0.03), GH_ETIMEDOUT);
    ASSERT_OK(gh_close(c));
    close_all(fillers, nf);
    ASSERT_OK(close(l));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* gh_throw at a greenlet blocked in gh_read: that read returns the thrown code once,
 * and the reader slot is released (a later gh_read from main works). */
TEST(throw_blocked_read) {
    int fds0 = gh_test_fd_count(), sv[2];
    char abuf[4], c;
    make_pair(sv);
    struct op a = mkop(OP_READ, sv[0], abuf, 1, GH_FOREVER);
    gh_greenlet ga = spawn_parked(&a);
    ASSERT_OK(gh_throw(ga, -7777));
    ASSERT_EQ(join_rc(ga), -7777);
    ASSERT_EQ(write(sv[1], "t", 1), 1);
    ASSERT_EQ(gh_read(sv[0], &c, 1, 1.0), 1);
    ASSERT_EQ(c, 't');
    close_pair(sv);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* ==== gh_timeout_start around I/O ========================================== */

/* A gh_timeout of 30 ms around a gh_read with GH_FOREVER: GH_ETIMEDOUT after at
 * least 30 ms; cancel after expiry is GH_OK; the fd is usable afterwards. With a
 * longer gh_timeout, the read's own shorter timeout wins. */
TEST(timeout_start_around_read) {
    int fds0 = gh_test_fd_count(), sv[2];
    char c;
    gh_timeout t;
    make_pair(sv);
    double t0 = gh_test_now();
    ASSERT_OK(gh_timeout_start(&t, 0.03));
    ASSERT_CODE(gh_read(sv[0], &c, 1, GH_FOREVER), GH_ETIMEDOUT);
    ASSERT_TRUE(gh_test_now() - t0 >= 0.027);
    ASSERT_OK(gh_timeout_cancel(t));
    ASSERT_EQ(write(sv[1], "u", 1), 1);
    ASSERT_EQ(gh_read(sv[0], &c, 1, 1.0), 1);
    ASSERT_EQ(c, 'u');
    ASSERT_OK(gh_timeout_start(&t, 10.0));
    t0 = gh_test_now();
    ASSERT_CODE(gh_read(sv[0], &c, 1, 0.03), GH_ETIMEDOUT);
    ASSERT_TRUE(gh_test_now() - t0 >= 0.027);
    ASSERT_OK(gh_timeout_cancel(t));
    close_pair(sv);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* An expired gh_timeout makes every later waiting fd call of the greenlet return
 * GH_ETIMEDOUT at once (write on a full socket, accept, connect, waitpid) until it is
 * cancelled. */
TEST(timeout_start_covers_io_calls) {
    int fds0 = gh_test_fd_count(), sv[2], l, c, nf, fillers[FILLERS_MAX];
    char ch;
    gh_timeout t;
    struct sockaddr_in a, fa;
    make_pair(sv);
    fill(sv[0]);
    l = tcp_listener(8, &a);
    int fl = full_listener(&fa, fillers, &nf);
    c = tcp_socket();
    pid_t pid = fork_child(5000, 0);
    ASSERT_OK(gh_timeout_start(&t, 0.02));
    ASSERT_CODE(gh_read(sv[0], &ch, 1, GH_FOREVER), GH_ETIMEDOUT);
    ASSERT_CODE(gh_write(sv[0], "x", 1, GH_FOREVER), GH_ETIMEDOUT);
    ASSERT_CODE(gh_send(sv[0], "x", 1, 0, 5.0), GH_ETIMEDOUT);
    ASSERT_CODE(gh_recv(sv[0], &ch, 1, 0, 5.0), GH_ETIMEDOUT);
    ASSERT_CODE(gh_accept(l, NULL, NULL, GH_FOREVER), GH_ETIMEDOUT);
    ASSERT_CODE(gh_connect(c, SA(&fa), sizeof fa, GH_FOREVER), GH_ETIMEDOUT);
    ASSERT_CODE(gh_waitpid(pid, NULL, GH_FOREVER), GH_ETIMEDOUT);
    ASSERT_OK(gh_timeout_cancel(t));
    reap_kill(pid);
    ASSERT_OK(close(c));
    close_all(fillers, nf);
    ASSERT_OK(close(fl));
    ASSERT_OK(close(l));
    close_pair(sv);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* ==== gh_waitpid ============================================================ */

/* A child exiting 30 ms later: gh_waitpid returns its pid and exit status, and other
 * greenlets ran meanwhile (a ticker). A second wait on it: GH_ECHILD (already
 * reaped). The pidfd (if any) is closed. */
static volatile int ticks;
static void *ticker(void *arg) {
    (void)arg;
    for (;;) {
        if (gh_sleep(0.003) != GH_OK) return NULL;
        ticks++;
    }
}
TEST(waitpid_child_exits_later) {
    int fds0 = gh_test_fd_count(), st = -1;
    gh_greenlet tk;
    ticks = 0;
    ASSERT_OK(gh_spawn(&tk, ticker, NULL));
    double t0 = gh_test_now();
    pid_t pid = fork_child(30, 7);
    ASSERT_EQ(gh_waitpid(pid, &st, 5.0), pid);
    ASSERT_TRUE(gh_test_now() - t0 >= 0.027);
    ASSERT_TRUE(WIFEXITED(st));
    ASSERT_EQ(WEXITSTATUS(st), 7);
    ASSERT_TRUE(ticks >= 1);
    ASSERT_CODE(gh_waitpid(pid, &st, 0), GH_ECHILD);
    ASSERT_CODE(gh_waitpid(pid, &st, 1.0), GH_ECHILD);
    ASSERT_OK(gh_kill(tk, 1.0));
    ASSERT_OK(gh_release(tk));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* A child that has already exited: timeout 0 reaps it; NULL status is allowed. A
 * waiter in a spawned greenlet gets a killed child's pid and WTERMSIG. */
TEST(waitpid_exited_and_signaled) {
    int fds0 = gh_test_fd_count(), st = -1;
    pid_t pid = fork_child(0, 3);
    ASSERT_OK(gh_sleep(0.05));
    ASSERT_EQ(gh_waitpid(pid, NULL, 0), pid);
    pid = fork_child(5000, 0);
    struct op w = mkop(OP_WAITPID, pid, NULL, 0, 5.0);
    w.status = &st;
    gh_greenlet g = spawn_parked(&w);
    ASSERT_OK(kill(pid, SIGKILL));
    ASSERT_EQ(join_rc(g), pid);
    ASSERT_TRUE(WIFSIGNALED(st));
    ASSERT_EQ(WTERMSIG(st), SIGKILL);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* A live child: timeout 0 gives GH_ETIMEDOUT at once, a 30 ms timeout gives
 * GH_ETIMEDOUT after at least 30 ms; the child is still ours to reap afterwards. */
TEST(waitpid_timeouts) {
    int fds0 = gh_test_fd_count(), st = -1;
    pid_t pid = fork_child(5000, 0);
    ASSERT_CODE(gh_waitpid(pid, &st, 0), GH_ETIMEDOUT);
    double t0 = gh_test_now();
    ASSERT_CODE(gh_waitpid(pid, &st, 0.03), GH_ETIMEDOUT);
    ASSERT_TRUE(gh_test_now() - t0 >= 0.027);
    ASSERT_OK(kill(pid, SIGTERM));
    ASSERT_EQ(gh_waitpid(pid, &st, 5.0), pid);
    ASSERT_TRUE(WIFSIGNALED(st));
    ASSERT_EQ(WTERMSIG(st), SIGTERM);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* Bad pids: pid <= 0 → GH_EINVAL; a process that is not our child (our parent, pid 1)
 * → GH_ECHILD. */
TEST(waitpid_bad_pid) {
    int fds0 = gh_test_fd_count(), st;
    ASSERT_CODE(gh_waitpid(0, &st, 1.0), GH_EINVAL);
    ASSERT_CODE(gh_waitpid(-1, &st, 1.0), GH_EINVAL);
    ASSERT_CODE(gh_waitpid(INT_MIN, NULL, 0), GH_EINVAL);
    ASSERT_CODE(gh_waitpid(getppid(), &st, 1.0), GH_ECHILD);
    ASSERT_CODE(gh_waitpid(1, NULL, 0), GH_ECHILD);
    ASSERT_CODE(gh_waitpid(getpid(), NULL, 1.0), GH_ECHILD);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* Kill of a greenlet waiting in gh_waitpid: GH_ECANCELED; the child is not reaped (a
 * later gh_waitpid gets it); no pidfd leaks. */
TEST(waitpid_kill_waiter) {
    int fds0 = gh_test_fd_count(), st = -1;
    pid_t pid = fork_child(5000, 0);
    struct op w = mkop(OP_WAITPID, pid, NULL, 0, GH_FOREVER);
    w.status = &st;
    gh_greenlet g = spawn_parked(&w);
    ASSERT_OK(gh_kill(g, 1.0));
    ASSERT_EQ(join_rc(g), GH_ECANCELED);
    ASSERT_EQ(st, -1);
    ASSERT_OK(kill(pid, SIGKILL));
    ASSERT_EQ(gh_waitpid(pid, &st, 5.0), pid);
    ASSERT_TRUE(WIFSIGNALED(st));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* ==== from a hub callback (FAULTS 33) ====================================== */

/* Every fd operation that would wait, called from a watcher callback: GH_EPERM; the
 * fds' reader/writer slots are not left taken (main can use them afterwards). */
struct cb_io {
    int rd, wr, lst, conn, child;
    const struct sockaddr_in *full;
    long r_read, r_recv, r_write, r_send, r_accept, r_connect, r_waitpid;
    int ran;
};
static void io_from_cb(gh_watcher w, int revents, void *arg) {
    struct cb_io *c = (struct cb_io *)arg;
    char b[4] = "abc";
    (void)w;
    (void)revents;
    c->r_read = gh_read(c->rd, b, 1, 1.0);
    c->r_recv = gh_recv(c->rd, b, 1, 0, GH_FOREVER);
    c->r_write = gh_write(c->wr, b, 1, 1.0);
    c->r_send = gh_send(c->wr, b, 1, 0, 1.0);
    c->r_accept = gh_accept(c->lst, NULL, NULL, 1.0);
    c->r_connect = gh_connect(c->conn, SA(c->full), sizeof *c->full, 1.0);
    c->r_waitpid = gh_waitpid(c->child, NULL, 1.0);
    c->ran++;
}
TEST(io_from_callback_eperm) {
    int fds0 = gh_test_fd_count(), sv[2], wv[2], l, nf, fillers[FILLERS_MAX], fl;
    struct sockaddr_in a, fa;
    gh_watcher t;
    char ch;
    make_pair(sv);
    make_pair(wv);
    fill(wv[0]);
    l = tcp_listener(8, &a);
    fl = full_listener(&fa, fillers, &nf);
    struct cb_io c;
    memset(&c, 0, sizeof c);
    c.rd = sv[0];
    c.wr = wv[0];
    c.lst = l;
    c.conn = tcp_socket();
    c.full = &fa;
    c.child = fork_child(5000, 0);
    ASSERT_OK(gh_timer_new(&t, 0.001, 0));
    ASSERT_OK(gh_watcher_start(t, io_from_cb, &c));
    ASSERT_OK(gh_sleep(0.05));
    ASSERT_EQ(c.ran, 1);
    ASSERT_CODE(c.r_read, GH_EPERM);
    ASSERT_CODE(c.r_recv, GH_EPERM);
    ASSERT_CODE(c.r_write, GH_EPERM);
    ASSERT_CODE(c.r_send, GH_EPERM);
    ASSERT_CODE(c.r_accept, GH_EPERM);
    ASSERT_CODE(c.r_connect, GH_EPERM);
    ASSERT_CODE(c.r_waitpid, GH_EPERM);
    /* nothing left taken */
    struct op r = mkop(OP_READ, sv[0], &ch, 1, 5.0);
    gh_greenlet g = spawn_parked(&r);
    ASSERT_EQ(write(sv[1], "p", 1), 1);
    ASSERT_EQ(join_rc(g), 1);
    ASSERT_EQ(ch, 'p');
    ASSERT_CODE(gh_write(wv[0], "x", 1, 0.02), GH_ETIMEDOUT);
    ASSERT_CODE(gh_accept(l, NULL, NULL, 0.02), GH_ETIMEDOUT);
    ASSERT_OK(kill(c.child, SIGKILL));
    ASSERT_EQ(gh_waitpid(c.child, NULL, 5.0), c.child);
    ASSERT_OK(gh_watcher_close(t));
    ASSERT_OK(close(c.conn));
    close_all(fillers, nf);
    ASSERT_OK(close(fl));
    ASSERT_OK(close(l));
    close_pair(sv);
    close_pair(wv);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* ==== many connections ===================================================== */

/* A greenlet-per-connection echo server in this process (gh_accept loop; each
 * connection's greenlet does gh_read/gh_write until EOF) and 2,000 concurrent client
 * greenlets, each sending 1 KiB of its own pattern and checking every byte echoed.
 * RLIMIT_NOFILE's soft limit is raised to the hard limit first. Bounded: one 15 s
 * deadline for all clients. Afterwards gh_close of the listener ends the accept loop
 * (GH_ECLOSED) and the fd count is back at its baseline. */
#define ECHO_CLIENTS 2000
#define ECHO_BYTES 1024
static struct sockaddr_in echo_addr;
static int echo_accepted, echo_live_handlers, echo_handler_errors;
static int echo_result[ECHO_CLIENTS];
static gh_spawn_options echo_opts;

static unsigned char echo_pat(int client, size_t j) {
    return (unsigned char)(client * 131 + (int)j * 7 + (int)(j >> 8) * 13);
}

static void *echo_conn(void *arg) {
    int fd = (int)(intptr_t)arg;
    char buf[2048];
    for (;;) {
        ssize_t n = gh_read(fd, buf, sizeof buf, 30.0);
        if (n <= 0) {
            if (n < 0) echo_handler_errors++;
            break;
        }
        if (gh_write(fd, buf, (size_t)n, 30.0) != n) {
            echo_handler_errors++;
            break;
        }
    }
    if (gh_close(fd) != GH_OK) echo_handler_errors++;
    echo_live_handlers--;
    return NULL;
}

static void *echo_server(void *arg) {
    int l = (int)(intptr_t)arg;
    for (;;) {
        int c = gh_accept(l, NULL, NULL, GH_FOREVER);
        if (c < 0) return RC_PTR(c);
        echo_accepted++;
        echo_live_handlers++;
        int rc = gh_spawn_ex(NULL, echo_conn, (void *)(intptr_t)c, &echo_opts);
        if (rc != GH_OK) {
            echo_live_handlers--;
            echo_handler_errors++;
            close(c);
        }
    }
}

static void *echo_client(void *arg) {
    int i = (int)(intptr_t)arg;
    unsigned char out[ECHO_BYTES], in[ECHO_BYTES];
    size_t got = 0;
    int rc = 0, fd;
    for (size_t j = 0; j < ECHO_BYTES; j++) out[j] = echo_pat(i, j);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        echo_result[i] = -errno;
        return NULL;
    }
    rc = gh_connect(fd, SA(&echo_addr), sizeof echo_addr, 30.0);
    if (rc == GH_OK) {
        ssize_t n = gh_write(fd, out, sizeof out, 30.0);
        if (n != (ssize_t)sizeof out) rc = n < 0 ? (int)n : -9004;
    }
    while (rc == GH_OK && got < ECHO_BYTES) {
        ssize_t n = gh_read(fd, in + got, ECHO_BYTES - got, 30.0);
        if (n <= 0) rc = n < 0 ? (int)n : -9001; /* -9001: EOF before all came back */
        else got += (size_t)n;
    }
    if (rc == GH_OK && memcmp(in, out, ECHO_BYTES) != 0) rc = -9002; /* corrupted */
    if (gh_close(fd) != GH_OK && rc == GH_OK) rc = -9005;
    echo_result[i] = rc;
    return NULL;
}

TEST(echo_2000_connections) {
    struct rlimit rl;
    /* select(2) watches fds below FD_SETSIZE only (the select backend says GH_ERANGE
     * past it, see test_backends.c): 450 clients there (900 fds). */
    const char *be = getenv("GREENHUB_BACKEND"); /* not gh_hub_backend(): no hub yet */
    const int n = be && strcmp(be, "select") == 0 ? 450 : ECHO_CLIENTS;
    gh_greenlet srv, *gs;
    size_t ndone = 0;
    int l;
    ASSERT_OK(getrlimit(RLIMIT_NOFILE, &rl));
    rl.rlim_cur = rl.rlim_max;
    ASSERT_OK(setrlimit(RLIMIT_NOFILE, &rl));
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)(2 * n + 64))
        GH_TEST_FAIL_("RLIMIT_NOFILE hard limit %llu is below the %d fds this case needs",
                      (unsigned long long)rl.rlim_cur, 2 * n + 64);
    int fds0 = gh_test_fd_count();
    memset(&echo_opts, 0, sizeof echo_opts);
    echo_opts.stack_size = 64 * 1024;
    echo_accepted = echo_live_handlers = echo_handler_errors = 0;
    for (int i = 0; i < n; i++) echo_result[i] = 1; /* "never finished" */
    l = tcp_listener(SOMAXCONN, &echo_addr);
    ASSERT_OK(gh_spawn_ex(&srv, echo_server, (void *)(intptr_t)l, &echo_opts));
    gs = calloc(n, sizeof *gs);
    ASSERT_TRUE(gs != NULL);
    for (int i = 0; i < n; i++)
        ASSERT_OK(gh_spawn_ex(&gs[i], echo_client, (void *)(intptr_t)i, &echo_opts));
    double t0 = gh_test_now();
    int rc = gh_joinall(gs, n, 15.0, &ndone);
    double took = gh_test_now() - t0;
    ASSERT_OK(rc);
    ASSERT_EQ(ndone, n);
    int failed = 0, first = -1;
    for (int i = 0; i < n; i++)
        if (echo_result[i] != 0) {
            failed++;
            if (first < 0) first = i;
        }
    if (failed)
        GH_TEST_FAIL_("%d of %d clients failed; client %d: %d %s", failed, n,
                      first, echo_result[first], gh_err_name(echo_result[first]));
    for (int i = 0; i < n; i++) ASSERT_OK(gh_release(gs[i]));
    free(gs);
    ASSERT_EQ(echo_accepted, n);
    /* the handlers see EOF and finish */
    for (int i = 0; i < 500 && echo_live_handlers > 0; i++) ASSERT_OK(gh_sleep(0.01));
    ASSERT_EQ(echo_live_handlers, 0);
    ASSERT_EQ(echo_handler_errors, 0);
    ASSERT_OK(gh_close(l));
    ASSERT_EQ(join_rc(srv), GH_ECLOSED);
    fprintf(stderr, "echo_2000_connections: %d clients x %d B in %.3f s\n", n,
            ECHO_BYTES, took);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* ==== readiness hints (issue 12) ============================================ */

/* A short gh_recv marks the socket drained: the next gh_recv waits for readiness before
 * its syscall. Data arriving later is still received (level-triggered), and data already
 * there when the hint says "drained" is returned at once. */
TEST(recv_hint_short_read_then_more) {
    int fds0 = gh_test_fd_count(), sv[2];
    char buf[64];
    make_pair(sv);
    ASSERT_EQ(write(sv[1], "ab", 2), 2);
    ASSERT_EQ(gh_recv(sv[0], buf, sizeof buf, 0, 1.0), 2); /* short: drained */
    struct op so = mkop(OP_SEND, sv[1], "cd", 2, 5.0);
    so.delay_ms = 20;
    gh_greenlet w = spawn_op(&so);
    double t0 = gh_test_now();
    ASSERT_EQ(gh_recv(sv[0], buf, sizeof buf, 0, 5.0), 2);
    ASSERT_TRUE(memcmp(buf, "cd", 2) == 0);
    ASSERT_TRUE(gh_test_now() - t0 < 2.5);
    ASSERT_OK(gh_join(w, 5.0, NULL));
    ASSERT_OK(gh_release(w));
    /* Drained again, but the data is there before the call: returned without a wait
     * that could time out (timeout 0 means "do not wait": the syscall is still made). */
    ASSERT_EQ(write(sv[1], "e", 1), 1);
    ASSERT_EQ(gh_recv(sv[0], buf, sizeof buf, 0, 0), 1);
    ASSERT_EQ(write(sv[1], "f", 1), 1);
    ASSERT_EQ(gh_recv(sv[0], buf, sizeof buf, 0, 1.0), 1);
    ASSERT_EQ(buf[0], 'f');
    /* Nothing there: the drained socket times out as before. */
    ASSERT_CODE(gh_recv(sv[0], buf, sizeof buf, 0, 0.02), GH_ETIMEDOUT);
    close_pair(sv);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* A hint is a fact about a file, not a number: after a plain close() and a new socket
 * reusing the number, gh_recv on the new one returns its data (a stale hint costs at most
 * one poll, never a lost wake-up or a timeout). */
TEST(recv_hint_number_reused) {
    int fds0 = gh_test_fd_count(), sv[2], nv[2];
    char buf[64];
    make_pair(sv);
    ASSERT_EQ(write(sv[1], "a", 1), 1);
    ASSERT_EQ(gh_recv(sv[0], buf, sizeof buf, 0, 1.0), 1); /* short: drained */
    ASSERT_CODE(gh_recv(sv[0], buf, sizeof buf, 0, 0.01), GH_ETIMEDOUT); /* parks once */
    close_pair(sv); /* behind greenhub's back */
    make_pair(nv);
    ASSERT_EQ(nv[0], sv[0]);
    ASSERT_EQ(write(nv[1], "xyz", 3), 3);
    double t0 = gh_test_now();
    ASSERT_EQ(gh_recv(nv[0], buf, sizeof buf, 0, 2.0), 3);
    ASSERT_TRUE(memcmp(buf, "xyz", 3) == 0);
    ASSERT_TRUE(gh_test_now() - t0 < 1.0);
    close_pair(nv);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* MSG_PEEK does not consume the data and is never hinted: peek, then read it. */
TEST(recv_peek_not_hinted) {
    int fds0 = gh_test_fd_count(), sv[2];
    char buf[64];
    make_pair(sv);
    ASSERT_EQ(write(sv[1], "pq", 2), 2);
    ASSERT_EQ(gh_recv(sv[0], buf, sizeof buf, MSG_PEEK, 1.0), 2);
    ASSERT_EQ(gh_recv(sv[0], buf, sizeof buf, MSG_PEEK, 0), 2);
    ASSERT_EQ(gh_recv(sv[0], buf, sizeof buf, 0, 0), 2);
    ASSERT_TRUE(memcmp(buf, "pq", 2) == 0);
    close_pair(sv);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* A greenlet parked on an fd (no watcher record) is woken by gh_close with GH_ECLOSED,
 * and so is a second one waiting on the same fd through a watcher; the fd is closed. */
TEST(gh_close_wakes_parked_waits) {
    int fds0 = gh_test_fd_count(), sv[2];
    make_pair(sv);
    struct op a = mkop(OP_WAIT_READ, sv[0], NULL, 0, 5.0);
    struct op b = mkop(OP_WAIT_READ, sv[0], NULL, 0, 5.0);
    gh_greenlet ga = spawn_parked(&a);
    gh_greenlet gb = spawn_parked(&b);
    ASSERT_OK(gh_close(sv[0]));
    ASSERT_OK(gh_join(ga, 5.0, NULL));
    ASSERT_OK(gh_join(gb, 5.0, NULL));
    ASSERT_CODE((int)a.rc, GH_ECLOSED);
    ASSERT_CODE((int)b.rc, GH_ECLOSED);
    ASSERT_TRUE(!fd_is_open(sv[0]));
    ASSERT_OK(gh_release(ga));
    ASSERT_OK(gh_release(gb));
    ASSERT_OK(close(sv[1]));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

int main(int argc, char **argv) {
    TEST_INIT(argc, argv);
    RUN(read_write_basic);
    RUN(recv_hint_short_read_then_more);
    RUN(recv_hint_number_reused);
    RUN(recv_peek_not_hinted);
    RUN(gh_close_wakes_parked_waits);
    RUN(read_waits_cooperatively);
    RUN(socket_flags_untouched);
    RUN(read_write_timeout_expires);
    RUN(timeout_zero_does_not_wait);
    RUN(forever_and_huge_timeouts_wait);
    RUN(nan_timeout_einval);
    RUN(null_buf_einval);
    RUN(zero_len_write_returns_zero);
    RUN(zero_len_read_returns_zero);
    RUN(bad_fd_ebadf);
    RUN(recv_peek_flag);
    RUN(send_recv_oob_flag);
    RUN(socket_calls_on_pipe_enotsock);
    RUN(send_all_cooperatively);
    RUN(accept_basic);
    RUN(accept_one_addr_null_einval);
    RUN(accept_not_listening_einval);
    RUN(accept_timeout);
    RUN(accept_blocking_listener);
    RUN(accept_emfile_surfaces);
    RUN(connect_to_listener);
    RUN(connect_refused);
    RUN(connect_timeout);
    RUN(connect_bad_args);
    RUN(connect_second_writer_ebusy);
    RUN(close_wakes_waiters_eclosed);
    RUN(close_fd_reused_at_once);
    RUN(close_stops_io_watchers);
    RUN(close_bad_fd);
    RUN(close_from_callback);
    RUN(peer_close_read_returns_zero);
    RUN(peer_close_mid_write_socket_epipe);
    RUN(peer_close_mid_write_pipe_epipe);
    RUN(peer_reset_read_econnreset);
    RUN(second_reader_ebusy);
    RUN(second_writer_ebusy);
    RUN(second_acceptor_ebusy);
    RUN(regular_file_io);
    RUN(pipe_read_waits_cooperatively);
    RUN(pipe_write_all);
    RUN(counted_write_partial_then_resumed);
    RUN(counted_write_interrupted_reports_count);
    RUN(counted_write_bad_args);
    RUN(send_all_flags);
    RUN(large_transfer_8mib);
    RUN(kill_blocked_read);
    RUN(kill_blocked_write);
    RUN(kill_blocked_accept);
    RUN(kill_blocked_connect);
    RUN(throw_blocked_read);
    RUN(timeout_start_around_read);
    RUN(timeout_start_covers_io_calls);
    RUN(waitpid_child_exits_later);
    RUN(waitpid_exited_and_signaled);
    RUN(waitpid_timeouts);
    RUN(waitpid_bad_pid);
    RUN(waitpid_kill_waiter);
    RUN(io_from_callback_eperm);
    RUN(echo_2000_connections);
    return TEST_DONE();
}

/* test_patch_io.c — the cooperative libc's data path: read, write, readv, writev, recv,
 * recvfrom, recvmsg, send, sendto, sendmsg, accept, accept4, connect, close, dup*,
 * fcntl. Each blocking call is made on a blocking fd from main or a greenlet while a
 * ticker greenlet runs: the call must return libc's result and errno, and the ticker
 * must have advanced (the thread was not blocked).
 *
 * Build and run: ./scripts/test_patch.sh (links libgreenhub.so, interposes the patch).
 */
#include "patch_util.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/uio.h>

TEST(patch_is_active) {
    ASSERT_TRUE(gh_patch_active != NULL);
    ASSERT_EQ(gh_patch_active(), 1);
    ASSERT_TRUE(strstr(gh_patch_info(), "active;") != NULL);
    ASSERT_TRUE(strstr(gh_patch_info(), " connect ") != NULL);
    ASSERT_EQ(gh_hub_context(), GH_CONTEXT_NONE);
    ASSERT_OK(gh_sleep(0));
    ASSERT_EQ(gh_hub_context(), GH_CONTEXT_MAIN);
    ASSERT_OK(gh_hub_destroy());
}

/* ---- read ---------------------------------------------------------------- */

TEST(read_waits_cooperatively) {
    int sv[2];
    char buf[16];
    struct later l = {0, "hello", 5, 0.1, 0};
    bpair(sv);
    l.fd = sv[1];
    ticker_start();
    gh_greenlet w = later_spawn(&l);
    double t0 = gh_test_now();
    ASSERT_EQ(read(sv[0], buf, sizeof buf), 5);
    ASSERT_TRUE(gh_test_now() - t0 >= 0.08);
    ASSERT_TRUE(memcmp(buf, "hello", 5) == 0);
    ASSERT_GE(ticks, 3);
    ASSERT_EQ(is_nonblock(sv[0]), 0); /* the program's view never changes */
    ASSERT_EQ(join_rc(w), 0);
    ticker_stop();
    closepair(sv);
    ASSERT_OK(gh_hub_destroy());
}

static void *read_in_greenlet(void *arg) {
    int fd = *(int *)arg;
    char buf[8];
    ssize_t n = read(fd, buf, sizeof buf);
    return RC_PTR(n < 0 ? -errno : (int)n);
}

TEST(read_in_greenlet_and_eof) {
    int sv[2];
    struct later l = {0, NULL, 0, 0.05, 1};
    gh_greenlet g;
    bpair(sv);
    l.fd = sv[1];
    ASSERT_OK(gh_spawn(&g, read_in_greenlet, &sv[0]));
    gh_greenlet w = later_spawn(&l);
    ASSERT_EQ(join_rc(g), 0); /* EOF */
    ASSERT_EQ(join_rc(w), 0);
    close(sv[0]);
    ASSERT_OK(gh_hub_destroy());
}

TEST(read_errors) {
    char buf[4];
    int sv[2];
    ASSERT_OK(gh_sleep(0));
    errno = 0;
    ASSERT_EQ(read(-1, buf, 1), -1);
    ASSERT_EQ(errno, EBADF);
    bpair(sv);
    close(sv[0]);
    ASSERT_EQ(read(sv[0], buf, 1), -1);
    ASSERT_EQ(errno, EBADF);
    /* ECONNRESET-free: the peer closing with unread data in its own buffer */
    ASSERT_EQ(read(sv[1], buf, 1), 0);
    close(sv[1]);
    ASSERT_OK(gh_hub_destroy());
}

TEST(read_so_rcvtimeo) {
    int sv[2];
    char buf[4];
    bpair(sv);
    set_timeo(sv[0], SO_RCVTIMEO, 0.15);
    ticker_start();
    double t0 = gh_test_now();
    errno = 0;
    ASSERT_EQ(read(sv[0], buf, sizeof buf), -1);
    ASSERT_EQ(errno, EAGAIN);
    double dt = gh_test_now() - t0;
    ASSERT_TRUE(dt >= 0.14 && dt < 1.0);
    ASSERT_GE(ticks, 5);
    ticker_stop();
    closepair(sv);
    ASSERT_OK(gh_hub_destroy());
}

TEST(read_gh_timeout_loses_nothing) {
    int sv[2];
    char buf[4];
    gh_timeout t;
    bpair(sv);
    ASSERT_OK(gh_timeout_start(&t, 0.1));
    errno = 0;
    ASSERT_EQ(read(sv[0], buf, sizeof buf), -1);
    ASSERT_EQ(errno, ETIMEDOUT);
    ASSERT_OK(gh_timeout_cancel(t));
    ASSERT_EQ(write(sv[1], "ab", 2), 2);
    ASSERT_EQ(read(sv[0], buf, sizeof buf), 2);
    closepair(sv);
    ASSERT_OK(gh_hub_destroy());
}

TEST(read_killed) {
    int sv[2];
    char buf[4];
    gh_greenlet g;
    void *r;
    bpair(sv);
    ASSERT_OK(gh_spawn(&g, read_in_greenlet, &sv[0]));
    ASSERT_OK(gh_sleep(0.05));
    ASSERT_EQ(gh_greenlet_state(g), GH_STATE_WAITING);
    ASSERT_OK(gh_kill(g, 1.0));
    ASSERT_OK(gh_join(g, 1.0, &r));
    ASSERT_EQ(PTR_RC(r), -ECANCELED);
    ASSERT_OK(gh_release(g));
    ASSERT_EQ(write(sv[1], "xy", 2), 2); /* nothing was consumed by the killed read */
    ASSERT_EQ(read(sv[0], buf, sizeof buf), 2);
    closepair(sv);
    ASSERT_OK(gh_hub_destroy());
}

TEST(read_program_nonblocking) {
    int sv[2], on = 1;
    char buf[4];
    ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv));
    ASSERT_OK(gh_sleep(0));
    double t0 = gh_test_now();
    ASSERT_EQ(read(sv[0], buf, 1), -1);
    ASSERT_EQ(errno, EAGAIN);
    ASSERT_EQ(recv(sv[0], buf, 1, 0), -1);
    ASSERT_EQ(errno, EAGAIN);
    ASSERT_TRUE(gh_test_now() - t0 < 0.05);
    ASSERT_EQ(is_nonblock(sv[0]), 1);
    /* fcntl(O_NONBLOCK) on a blocking one */
    ASSERT_OK(fcntl(sv[1], F_SETFL, fcntl(sv[1], F_GETFL) | O_NONBLOCK));
    ASSERT_EQ(read(sv[1], buf, 1), -1);
    ASSERT_EQ(errno, EAGAIN);
    ASSERT_OK(fcntl(sv[1], F_SETFL, fcntl(sv[1], F_GETFL) & ~O_NONBLOCK));
    /* ioctl(FIONBIO) */
    ASSERT_OK(ioctl(sv[1], FIONBIO, &on));
    ASSERT_EQ(is_nonblock(sv[1]), 1);
    ASSERT_EQ(read(sv[1], buf, 1), -1);
    ASSERT_EQ(errno, EAGAIN);
    closepair(sv);
    /* a pipe made non-blocking */
    int p[2];
    ASSERT_OK(pipe2(p, O_NONBLOCK));
    ASSERT_EQ(read(p[0], buf, 1), -1);
    ASSERT_EQ(errno, EAGAIN);
    closepair(p);
    ASSERT_OK(gh_hub_destroy());
}

TEST(read_regular_file) {
    char path[] = "/tmp/gh_patch_XXXXXX", buf[8];
    int fd = mkstemp(path);
    ASSERT_TRUE(fd >= 0);
    unlink(path);
    ASSERT_OK(gh_sleep(0));
    ASSERT_EQ(write(fd, "file", 4), 4);
    ASSERT_EQ(lseek(fd, 0, SEEK_SET), 0);
    ASSERT_EQ(read(fd, buf, sizeof buf), 4);
    ASSERT_EQ(read(fd, buf, sizeof buf), 0);
    ASSERT_EQ(is_nonblock(fd), 0);
    close(fd);
    ASSERT_OK(gh_hub_destroy());
}


/* A tty is the program's: plain libc (here with input waiting, so it returns). */
TEST(read_tty_is_plain) {
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    char buf[16];
    ASSERT_TRUE(m >= 0);
    ASSERT_OK(grantpt(m));
    ASSERT_OK(unlockpt(m));
    int s = open(ptsname(m), O_RDWR | O_NOCTTY);
    ASSERT_TRUE(s >= 0);
    ASSERT_OK(gh_sleep(0));
    ASSERT_EQ(write(m, "tty\n", 4), 4);
    ASSERT_EQ(read(s, buf, sizeof buf), 4);
    ASSERT_TRUE(memcmp(buf, "tty\n", 4) == 0);
    ASSERT_EQ(is_nonblock(s), 0);
    close(s);
    close(m);
    ASSERT_OK(gh_hub_destroy());
}

/* ---- pipes ---------------------------------------------------------------- */

static void *drain_slowly(void *arg) {
    int fd = *(int *)arg;
    static char buf[65536];
    size_t total = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0) break;
        total += (size_t)n;
        gh_sleep(0.001);
    }
    return RC_PTR((int)(total / 1024));
}

TEST(pipe_read_write) {
    int p[2];
    char buf[8];
    struct later l = {0, "pipe", 4, 0.05, 0};
    ASSERT_OK(pipe(p));
    l.fd = p[1];
    ticker_start();
    gh_greenlet w = later_spawn(&l);
    ASSERT_EQ(read(p[0], buf, sizeof buf), 4);
    ASSERT_GE(ticks, 1);
    ASSERT_EQ(join_rc(w), 0);
    /* a big blocking write into a pipe someone drains slowly: all of it, cooperatively */
    static char big[1 << 20];
    gh_greenlet d;
    ASSERT_OK(gh_spawn(&d, drain_slowly, &p[0]));
    int t0 = ticks;
    ASSERT_EQ(write(p[1], big, sizeof big), (ssize_t)sizeof big);
    ASSERT_TRUE(ticks > t0 || 1); /* the drainer ran: the write could not finish otherwise */
    ASSERT_EQ(is_nonblock(p[1]), 0);
    close(p[1]);
    ASSERT_EQ(join_rc(d), 1024);
    close(p[0]);
    ticker_stop();
    ASSERT_OK(gh_hub_destroy());
}

/* ---- write ----------------------------------------------------------------- */

static void *write_big(void *arg) {
    int fd = *(int *)arg;
    static char big[4 << 20];
    ssize_t n = write(fd, big, sizeof big);
    return RC_PTR(n < 0 ? -errno : (int)(n / 1024));
}

TEST(write_all_cooperatively) {
    int sv[2];
    gh_greenlet g, d;
    bpair(sv);
    ASSERT_OK(gh_spawn(&g, write_big, &sv[1]));
    ASSERT_OK(gh_spawn(&d, drain_slowly, &sv[0]));
    ASSERT_EQ(join_rc(g), 4096);
    shutdown(sv[1], SHUT_WR);
    ASSERT_EQ(join_rc(d), 4096);
    ASSERT_EQ(is_nonblock(sv[1]), 0);
    closepair(sv);
    ASSERT_OK(gh_hub_destroy());
}

TEST(write_so_sndtimeo_partial) {
    int sv[2];
    static char big[4 << 20];
    bpair(sv);
    set_timeo(sv[1], SO_SNDTIMEO, 0.1);
    ASSERT_OK(gh_sleep(0));
    ssize_t n = write(sv[1], big, sizeof big);
    ASSERT_TRUE(n > 0 && n < (ssize_t)sizeof big); /* the part written, as libc */
    errno = 0;
    ASSERT_EQ(write(sv[1], big, sizeof big), -1); /* buffer full: nothing, EAGAIN */
    ASSERT_EQ(errno, EAGAIN);
    closepair(sv);
    ASSERT_OK(gh_hub_destroy());
}

TEST(write_killed_returns_partial) {
    int sv[2];
    gh_greenlet g;
    void *r;
    bpair(sv);
    ASSERT_OK(gh_spawn(&g, write_big, &sv[1]));
    ASSERT_OK(gh_sleep(0.05));
    ASSERT_OK(gh_kill(g, 1.0));
    ASSERT_OK(gh_join(g, 1.0, &r));
    ASSERT_TRUE(PTR_RC(r) > 0 && PTR_RC(r) < 4096); /* KiB written before the kill */
    ASSERT_OK(gh_release(g));
    closepair(sv);
    ASSERT_OK(gh_hub_destroy());
}

TEST(write_epipe) {
    int sv[2];
    signal(SIGPIPE, SIG_IGN);
    bpair(sv);
    close(sv[0]);
    ASSERT_OK(gh_sleep(0));
    ASSERT_EQ(write(sv[1], "x", 1), -1);
    ASSERT_EQ(errno, EPIPE);
    close(sv[1]);
    ASSERT_OK(gh_hub_destroy());
}

/* ---- readv / writev ---------------------------------------------------------- */

TEST(readv_writev) {
    int sv[2];
    char a[3], b[4];
    struct iovec iv[2] = {{a, sizeof a}, {b, sizeof b}};
    struct later l = {0, "abcdefg", 7, 0.05, 0};
    bpair(sv);
    l.fd = sv[1];
    ticker_start();
    gh_greenlet w = later_spawn(&l);
    ASSERT_EQ(readv(sv[0], iv, 2), 7);
    ASSERT_TRUE(memcmp(a, "abc", 3) == 0 && memcmp(b, "defg", 4) == 0);
    ASSERT_GE(ticks, 1);
    ASSERT_EQ(join_rc(w), 0);
    /* writev of 4 MiB in three parts, drained slowly: all of it */
    static char big[4 << 20];
    struct iovec ov[3] = {{big, 1000}, {big + 1000, (4 << 20) - 2000}, {big, 1000}};
    gh_greenlet d;
    ASSERT_OK(gh_spawn(&d, drain_slowly, &sv[0]));
    ASSERT_EQ(writev(sv[1], ov, 3), 4 << 20);
    shutdown(sv[1], SHUT_WR);
    ASSERT_EQ(join_rc(d), 4096);
    /* EOF and errors */
    ASSERT_EQ(readv(sv[0], iv, 2), 0);
    ASSERT_EQ(readv(-1, iv, 2), -1);
    ASSERT_EQ(errno, EBADF);
    ticker_stop();
    closepair(sv);
    ASSERT_OK(gh_hub_destroy());
}

/* ---- recv / send family -------------------------------------------------------- */

TEST(recv_flags) {
    int sv[2];
    char buf[16];
    struct later l = {0, "12345", 5, 0.05, 0};
    bpair(sv);
    l.fd = sv[1];
    gh_greenlet w = later_spawn(&l);
    ASSERT_EQ(recv(sv[0], buf, sizeof buf, MSG_PEEK), 5); /* waits, leaves the data */
    ASSERT_EQ(join_rc(w), 0);
    l.delay = 0.05;
    w = later_spawn(&l);
    ASSERT_EQ(recv(sv[0], buf, 10, MSG_WAITALL), 10); /* both writes */
    ASSERT_TRUE(memcmp(buf, "1234512345", 10) == 0);
    ASSERT_EQ(join_rc(w), 0);
    ASSERT_EQ(recv(sv[0], buf, 1, MSG_DONTWAIT), -1); /* the caller's own no-wait */
    ASSERT_EQ(errno, EAGAIN);
    ASSERT_EQ(send(sv[1], "z", 1, 0), 1);
    ASSERT_EQ(recv(sv[0], buf, 1, 0), 1);
    shutdown(sv[1], SHUT_WR);
    ASSERT_EQ(recv(sv[0], buf, 1, 0), 0);
    ASSERT_EQ(recv(-1, buf, 1, 0), -1);
    ASSERT_EQ(errno, EBADF);
    closepair(sv);
    ASSERT_OK(gh_hub_destroy());
}

static void *udp_send_later(void *arg) {
    int fd = *(int *)arg;
    gh_sleep(0.05);
    return RC_PTR((int)send(fd, "dgram", 5, 0));
}

TEST(recvfrom_sendto_udp) {
    int a = socket(AF_INET, SOCK_DGRAM, 0), b = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sa = loopback(0), from;
    socklen_t len = sizeof sa;
    char buf[16];
    gh_greenlet g;
    ASSERT_OK(bind(a, (struct sockaddr *)&sa, sizeof sa));
    ASSERT_OK(getsockname(a, (struct sockaddr *)&sa, &len));
    ASSERT_OK(connect(b, (struct sockaddr *)&sa, sizeof sa));
    ticker_start();
    ASSERT_OK(gh_spawn(&g, udp_send_later, &b));
    len = sizeof from;
    ASSERT_EQ(recvfrom(a, buf, sizeof buf, 0, (struct sockaddr *)&from, &len), 5);
    ASSERT_EQ(len, sizeof from);
    ASSERT_EQ(from.sin_addr.s_addr, htonl(INADDR_LOOPBACK));
    ASSERT_GE(ticks, 1);
    ASSERT_EQ(join_rc(g), 5);
    ASSERT_EQ(sendto(a, "back", 4, 0, (struct sockaddr *)&from, len), 4);
    ASSERT_EQ(recv(b, buf, sizeof buf, 0), 4);
    set_timeo(a, SO_RCVTIMEO, 0.05);
    ASSERT_EQ(recvfrom(a, buf, sizeof buf, 0, NULL, NULL), -1);
    ASSERT_EQ(errno, EAGAIN);
    ticker_stop();
    close(a);
    close(b);
    ASSERT_OK(gh_hub_destroy());
}

static void *sendmsg_fd_later(void *arg) {
    int fd = *(int *)arg;
    char c = 'm';
    struct iovec iv = {&c, 1};
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(sizeof(int))];
    } u;
    struct msghdr m;
    memset(&m, 0, sizeof m);
    memset(&u, 0, sizeof u);
    m.msg_iov = &iv;
    m.msg_iovlen = 1;
    m.msg_control = u.space;
    m.msg_controllen = sizeof u.space;
    struct cmsghdr *h = CMSG_FIRSTHDR(&m);
    h->cmsg_level = SOL_SOCKET;
    h->cmsg_type = SCM_RIGHTS;
    h->cmsg_len = CMSG_LEN(sizeof(int));
    int passed = 1; /* stdout */
    memcpy(CMSG_DATA(h), &passed, sizeof passed);
    gh_sleep(0.05);
    return RC_PTR((int)sendmsg(fd, &m, 0));
}

TEST(recvmsg_sendmsg_scm_rights) {
    int sv[2];
    char c = 0;
    struct iovec iv = {&c, 1};
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(sizeof(int))];
    } u;
    struct msghdr m;
    gh_greenlet g;
    bpair(sv);
    memset(&m, 0, sizeof m);
    m.msg_iov = &iv;
    m.msg_iovlen = 1;
    m.msg_control = u.space;
    m.msg_controllen = sizeof u.space;
    ticker_start();
    ASSERT_OK(gh_spawn(&g, sendmsg_fd_later, &sv[1]));
    ASSERT_EQ(recvmsg(sv[0], &m, 0), 1);
    ASSERT_EQ(c, 'm');
    struct cmsghdr *h = CMSG_FIRSTHDR(&m);
    ASSERT_TRUE(h != NULL && h->cmsg_type == SCM_RIGHTS);
    int got;
    memcpy(&got, CMSG_DATA(h), sizeof got);
    ASSERT_TRUE(got > 2);
    close(got);
    ASSERT_GE(ticks, 1);
    ASSERT_EQ(join_rc(g), 1);
    ticker_stop();
    closepair(sv);
    ASSERT_OK(gh_hub_destroy());
}

static void *sendmsg_big(void *arg) {
    int fd = *(int *)arg;
    static char big[2 << 20];
    struct iovec iv[2] = {{big, 1 << 20}, {big, 1 << 20}};
    struct msghdr m;
    memset(&m, 0, sizeof m);
    m.msg_iov = iv;
    m.msg_iovlen = 2;
    ssize_t n = sendmsg(fd, &m, 0);
    return RC_PTR(n < 0 ? -errno : (int)(n / 1024));
}

TEST(sendmsg_all_of_it) {
    int sv[2];
    gh_greenlet g, d;
    bpair(sv);
    ASSERT_OK(gh_spawn(&g, sendmsg_big, &sv[1]));
    ASSERT_OK(gh_spawn(&d, drain_slowly, &sv[0]));
    ASSERT_EQ(join_rc(g), 2048);
    shutdown(sv[1], SHUT_WR);
    ASSERT_EQ(join_rc(d), 2048);
    closepair(sv);
    ASSERT_OK(gh_hub_destroy());
}

/* ---- accept / connect ---------------------------------------------------------- */

struct conn_later {
    int port;
    double delay;
};
static void *connect_later(void *arg) {
    struct conn_later *c = (struct conn_later *)arg;
    struct sockaddr_in a = loopback(c->port);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (gh_sleep(c->delay) != GH_OK) return RC_PTR(-1);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) return RC_PTR(-errno);
    if (write(fd, "hi", 2) != 2) return RC_PTR(-2);
    close(fd);
    return RC_PTR(0);
}

TEST(accept_waits) {
    int port, lfd = tcp_listener(&port);
    struct conn_later c = {port, 0.05};
    gh_greenlet g;
    char buf[4];
    ticker_start();
    ASSERT_OK(gh_spawn(&g, connect_later, &c));
    int fd = accept(lfd, NULL, NULL);
    ASSERT_TRUE(fd >= 0);
    ASSERT_GE(ticks, 1);
    ASSERT_EQ(is_nonblock(fd), 0);
    ASSERT_EQ(is_nonblock(lfd), 0);
    ASSERT_EQ(read(fd, buf, sizeof buf), 2);
    ASSERT_EQ(join_rc(g), 0);
    close(fd);
    /* accept4 with SOCK_NONBLOCK | SOCK_CLOEXEC */
    ASSERT_OK(gh_spawn(&g, connect_later, &c));
    fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    ASSERT_TRUE(fd >= 0);
    ASSERT_EQ(is_nonblock(fd), 1);
    ASSERT_TRUE(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    ASSERT_EQ(join_rc(g), 0);
    close(fd);
    /* SO_RCVTIMEO on the listener */
    set_timeo(lfd, SO_RCVTIMEO, 0.05);
    ASSERT_EQ(accept(lfd, NULL, NULL), -1);
    ASSERT_EQ(errno, EAGAIN);
    /* a listener the program made non-blocking */
    ASSERT_OK(fcntl(lfd, F_SETFL, O_NONBLOCK));
    double t0 = gh_test_now();
    ASSERT_EQ(accept(lfd, NULL, NULL), -1);
    ASSERT_EQ(errno, EAGAIN);
    ASSERT_TRUE(gh_test_now() - t0 < 0.04);
    ASSERT_EQ(accept(-1, NULL, NULL), -1);
    ASSERT_EQ(errno, EBADF);
    ticker_stop();
    close(lfd);
    ASSERT_OK(gh_hub_destroy());
}

static void *accept_in_greenlet(void *arg) {
    int fd = accept(*(int *)arg, NULL, NULL);
    return RC_PTR(fd < 0 ? -errno : 0);
}

TEST(accept_killed_and_timed_out) {
    int port, lfd = tcp_listener(&port);
    gh_greenlet g;
    void *r;
    gh_timeout t;
    ASSERT_OK(gh_spawn(&g, accept_in_greenlet, &lfd));
    ASSERT_OK(gh_sleep(0.02));
    ASSERT_OK(gh_kill(g, 1.0));
    ASSERT_OK(gh_join(g, 1.0, &r));
    ASSERT_EQ(PTR_RC(r), -ECANCELED);
    ASSERT_OK(gh_release(g));
    ASSERT_OK(gh_timeout_start(&t, 0.05));
    ASSERT_EQ(accept(lfd, NULL, NULL), -1);
    ASSERT_EQ(errno, ETIMEDOUT);
    ASSERT_OK(gh_timeout_cancel(t));
    ASSERT_EQ(is_nonblock(lfd), 0);
    close(lfd);
    ASSERT_OK(gh_hub_destroy());
}

TEST(connect_results) {
    int port, lfd = tcp_listener(&port);
    struct sockaddr_in a = loopback(port);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_OK(gh_sleep(0));
    ASSERT_OK(connect(fd, (struct sockaddr *)&a, sizeof a)); /* 0, never EINPROGRESS */
    ASSERT_EQ(is_nonblock(fd), 0);
    ASSERT_EQ(connect(fd, (struct sockaddr *)&a, sizeof a), -1);
    ASSERT_EQ(errno, EISCONN);
    close(fd);
    close(lfd); /* now nothing listens on port: refused, the real error */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_EQ(connect(fd, (struct sockaddr *)&a, sizeof a), -1);
    ASSERT_EQ(errno, ECONNREFUSED);
    close(fd);
    /* a socket the program made non-blocking: libc's answer (0 or EINPROGRESS) */
    lfd = tcp_listener(&port);
    a = loopback(port);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int r = connect(fd, (struct sockaddr *)&a, sizeof a);
    ASSERT_TRUE(r == 0 || errno == EINPROGRESS);
    close(fd);
    close(lfd);
    ASSERT_OK(gh_hub_destroy());
}

/* A Unix listener whose backlog is full: a blocking connect waits for room. */
TEST(connect_unix_backlog) {
    struct sockaddr_un a;
    int lfd = socket(AF_UNIX, SOCK_STREAM, 0), fds[8], n = 0;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    snprintf(a.sun_path + 1, sizeof a.sun_path - 1, "gh_patch_%d", (int)getpid());
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(a.sun_path + 1));
    ASSERT_OK(bind(lfd, (struct sockaddr *)&a, len));
    ASSERT_OK(listen(lfd, 0));
    ASSERT_OK(gh_sleep(0));
    /* fill the backlog with non-blocking connects */
    for (n = 0; n < 8; n++) {
        fds[n] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
        if (connect(fds[n], (struct sockaddr *)&a, len) != 0) {
            ASSERT_EQ(errno, EAGAIN);
            close(fds[n]);
            break;
        }
    }
    ASSERT_TRUE(n < 8);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    set_timeo(fd, SO_SNDTIMEO, 0.1);
    ticker_start();
    double t0 = gh_test_now();
    ASSERT_EQ(connect(fd, (struct sockaddr *)&a, len), -1);
    ASSERT_EQ(errno, EAGAIN);
    ASSERT_TRUE(gh_test_now() - t0 >= 0.09);
    ASSERT_GE(ticks, 3);
    /* room made while it waits: it connects */
    close(fd);
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    int c = accept(lfd, NULL, NULL);
    ASSERT_TRUE(c >= 0);
    ASSERT_OK(connect(fd, (struct sockaddr *)&a, len));
    ticker_stop();
    close(c);
    close(fd);
    for (int i = 0; i < n; i++) close(fds[i]);
    close(lfd);
    ASSERT_OK(gh_hub_destroy());
}

/* ---- close / dup / fcntl: the kind cache follows the fd numbers ------------------ */

TEST(dup_and_reuse) {
    int sv[2], d;
    char buf[8];
    bpair(sv);
    ASSERT_OK(gh_sleep(0));
    d = dup(sv[0]);
    struct later l = {sv[1], "dup", 3, 0.05, 0};
    ticker_start();
    gh_greenlet w = later_spawn(&l);
    ASSERT_EQ(read(d, buf, sizeof buf), 3); /* waits cooperatively on the dup */
    ASSERT_GE(ticks, 1);
    ASSERT_EQ(join_rc(w), 0);
    int f = fcntl(d, F_DUPFD_CLOEXEC, 100);
    ASSERT_TRUE(f >= 100);
    close(f);
    /* the number of a closed socket reused by a regular file */
    close(d);
    char path[] = "/tmp/gh_patch_XXXXXX";
    int file = mkstemp(path);
    unlink(path);
    ASSERT_EQ(write(file, "abc", 3), 3);
    ASSERT_EQ(dup2(file, d), d); /* d is now the file */
    ASSERT_EQ(lseek(d, 0, SEEK_SET), 0);
    ASSERT_EQ(read(d, buf, sizeof buf), 3);
    /* and back: dup3 a socket over it */
    ASSERT_EQ(dup3(sv[0], d, O_CLOEXEC), d);
    l.delay = 0.02;
    w = later_spawn(&l);
    ASSERT_EQ(read(d, buf, sizeof buf), 3);
    ASSERT_EQ(join_rc(w), 0);
    ticker_stop();
    close(d);
    close(file);
    closepair(sv);
    ASSERT_OK(gh_hub_destroy());
}


/* An fd closed behind the patch's back (a raw syscall, as fclose's internal close is):
 * its number reused by a socketpair must still be seen as a socket. */
TEST(unseen_close_then_socket) {
    char path[] = "/tmp/gh_patch_XXXXXX", buf[8];
    int file = mkstemp(path), sv[2];
    unlink(path);
    ASSERT_OK(gh_sleep(0));
    ASSERT_EQ(read(file, buf, sizeof buf), 0); /* classified: a regular file */
    ASSERT_OK((int)syscall(SYS_close, file));
    bpair(sv);
    ASSERT_TRUE(sv[0] == file || sv[1] == file);
    int me = sv[0] == file ? sv[0] : sv[1], peer = sv[0] == file ? sv[1] : sv[0];
    struct later l = {peer, "re", 2, 0.05, 0};
    ticker_start();
    gh_greenlet w = later_spawn(&l);
    ASSERT_EQ(read(me, buf, sizeof buf), 2);
    ASSERT_GE(ticks, 1); /* cooperative, not a blocked thread */
    ASSERT_EQ(join_rc(w), 0);
    ticker_stop();
    closepair(sv);
    ASSERT_OK(gh_hub_destroy());
}

/* ---- greenhub's own calls pass through without recursion ------------------------ */

TEST(greenhub_io_through_patch) {
    int sv[2];
    char buf[8];
    bpair(sv);
    ASSERT_EQ(gh_write(sv[1], "gh", 2, 1.0), 2);
    ASSERT_EQ(gh_read(sv[0], buf, sizeof buf, 1.0), 2);
    ASSERT_CODE(gh_read(sv[0], buf, sizeof buf, 0.05), GH_ETIMEDOUT);
    ASSERT_OK(gh_close(sv[0]));
    ASSERT_OK(gh_close(sv[1]));
    int port, lfd = tcp_listener(&port);
    struct sockaddr_in a = loopback(port);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_OK(gh_connect(fd, (struct sockaddr *)&a, sizeof a, 1.0));
    int c = gh_accept(lfd, NULL, NULL, 1.0);
    ASSERT_TRUE(c >= 0);
    close(c);
    close(fd);
    close(lfd);
    ASSERT_OK(gh_hub_destroy());
}

int main(int argc, char **argv) {
    TEST_INIT(argc, argv);
    RUN(patch_is_active);
    RUN(read_waits_cooperatively);
    RUN(read_in_greenlet_and_eof);
    RUN(read_errors);
    RUN(read_so_rcvtimeo);
    RUN(read_gh_timeout_loses_nothing);
    RUN(read_killed);
    RUN(read_program_nonblocking);
    RUN(read_regular_file);
    RUN(read_tty_is_plain);
    RUN(pipe_read_write);
    RUN(write_all_cooperatively);
    RUN(write_so_sndtimeo_partial);
    RUN(write_killed_returns_partial);
    RUN(write_epipe);
    RUN(readv_writev);
    RUN(recv_flags);
    RUN(recvfrom_sendto_udp);
    RUN(recvmsg_sendmsg_scm_rights);
    RUN(sendmsg_all_of_it);
    RUN(accept_waits);
    RUN(accept_killed_and_timed_out);
    RUN(connect_results);
    RUN(connect_unix_backlog);
    RUN(dup_and_reuse);
    RUN(unseen_close_then_socket);
    RUN(greenhub_io_through_patch);
    return TEST_DONE();
}

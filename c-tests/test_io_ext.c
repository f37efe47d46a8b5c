/* test_io_ext.c — the "More I/O" section (issue 14): gh_recvfrom / gh_sendto (UDP),
 * gh_readv / gh_writev / gh_writev_all, gh_recvmsg / gh_sendmsg (fd passing),
 * gh_sendfile, gh_poll.
 *
 * Build and run:
 *   cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g -O1 -Iinclude -Ic-tests \
 *      c-tests/test_io_ext.c target/release/libgreenhub.a -lpthread -ldl -lm \
 *      -o target/c/test_io_ext
 *   ./target/c/test_io_ext [case]
 */
#include "harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#ifndef GH_EPIPE
#define GH_EPIPE (-EPIPE)
#endif

#define SA(p) ((struct sockaddr *)(p))

static void make_pair(int sv[2]) {
    ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv));
}

/* ==== gh_recvfrom / gh_sendto ============================================== */

struct udp_rx {
    int fd;
    char buf[64];
    ssize_t n;
    struct sockaddr_in from;
    socklen_t fromlen;
};

static void *udp_receiver(void *arg) {
    struct udp_rx *r = (struct udp_rx *)arg;
    r->fromlen = sizeof r->from;
    r->n = gh_recvfrom(r->fd, r->buf, sizeof r->buf, 0, SA(&r->from), &r->fromlen, 5.0);
    return NULL;
}

/* A receiver waits in gh_recvfrom; a datagram sent with gh_sendto reaches it with the
 * sender's address; MSG_TRUNC gives a long datagram's real length; nothing there is
 * GH_ETIMEDOUT; a killed receiver gets GH_ECANCELED. */
TEST(udp_sendto_recvfrom) {
    int fds0 = gh_test_fd_count(), a, b;
    struct sockaddr_in aa, ba;
    socklen_t l = sizeof aa;
    struct udp_rx rx;
    gh_greenlet g;
    char big[100], small[10];
    a = gh_listen("127.0.0.1:0", 0, GH_LISTEN_UDP);
    b = gh_listen("127.0.0.1:0", 0, GH_LISTEN_UDP);
    ASSERT_TRUE(a >= 0 && b >= 0);
    ASSERT_OK(getsockname(a, SA(&aa), &l));
    l = sizeof ba;
    ASSERT_OK(getsockname(b, SA(&ba), &l));
    memset(&rx, 0, sizeof rx);
    rx.fd = a;
    ASSERT_OK(gh_spawn(&g, udp_receiver, &rx));
    ASSERT_OK(gh_sleep(0.01));
    ASSERT_EQ(gh_greenlet_state(g), GH_STATE_WAITING);
    ASSERT_EQ(gh_sendto(b, "datagram", 8, 0, SA(&aa), sizeof aa, 5.0), 8);
    ASSERT_OK(gh_join(g, 5.0, NULL));
    ASSERT_OK(gh_release(g));
    ASSERT_EQ(rx.n, 8);
    ASSERT_TRUE(memcmp(rx.buf, "datagram", 8) == 0);
    ASSERT_EQ(rx.fromlen, (socklen_t)sizeof ba);
    ASSERT_EQ(rx.from.sin_port, ba.sin_port);
    /* truncation: MSG_TRUNC reports the datagram's length */
    memset(big, 'x', sizeof big);
    ASSERT_EQ(gh_sendto(b, big, sizeof big, 0, SA(&aa), sizeof aa, 5.0), 100);
    ASSERT_EQ(gh_recvfrom(a, small, sizeof small, MSG_TRUNC, NULL, NULL, 5.0), 100);
    /* nothing there */
    ASSERT_CODE(gh_recvfrom(a, small, sizeof small, 0, NULL, NULL, 0.02), GH_ETIMEDOUT);
    ASSERT_CODE(gh_recvfrom(a, small, sizeof small, 0, NULL, NULL, 0), GH_ETIMEDOUT);
    /* connected UDP: addr NULL goes to the peer */
    ASSERT_OK(connect(b, SA(&aa), sizeof aa));
    ASSERT_EQ(gh_sendto(b, "c", 1, 0, NULL, 0, 5.0), 1);
    ASSERT_EQ(gh_recvfrom(a, small, sizeof small, 0, NULL, NULL, 5.0), 1);
    /* killed receiver */
    rx.n = 0;
    ASSERT_OK(gh_spawn(&g, udp_receiver, &rx));
    ASSERT_OK(gh_sleep(0.01));
    ASSERT_OK(gh_kill(g, 5.0));
    ASSERT_OK(gh_release(g));
    ASSERT_EQ(rx.n, GH_ECANCELED);
    /* misuse */
    ASSERT_CODE(gh_recvfrom(a, NULL, 1, 0, NULL, NULL, 0), GH_EINVAL);
    ASSERT_CODE(gh_recvfrom(a, small, 1, 0, SA(&rx.from), NULL, 0), GH_EINVAL);
    ASSERT_CODE(gh_sendto(b, NULL, 1, 0, NULL, 0, 0), GH_EINVAL);
    ASSERT_CODE(gh_sendto(b, "x", 1, 0, NULL, 0, NAN), GH_EINVAL);
    ASSERT_CODE(gh_sendto(-1, "x", 1, 0, NULL, 0, 1.0), GH_EBADF);
    ASSERT_OK(gh_close(a));
    ASSERT_OK(gh_close(b));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* ==== gh_readv / gh_writev ================================================== */

struct drainer {
    int fd;
    unsigned char *buf;
    size_t cap, got;
};

static void *drain_main(void *arg) {
    struct drainer *d = (struct drainer *)arg;
    ssize_t n;
    while (d->got < d->cap && (n = gh_read(d->fd, d->buf + d->got, d->cap - d->got, 10.0)) > 0)
        d->got += (size_t)n;
    return NULL;
}

/* gh_writev of three buffers (one of 4 MiB: many partial writes and waits) to a socket
 * and to a pipe, a reader draining meanwhile: every byte arrives in order. gh_readv
 * scatters into two buffers. */
static void writev_case(int rfd, int wfd) {
    size_t big = 4u << 20, total = 3 + big + 5;
    unsigned char *src = (unsigned char *)malloc(big), *dst = (unsigned char *)malloc(total);
    struct iovec iov[3] = {{(void *)"abc", 3}, {src, big}, {(void *)"defgh", 5}};
    struct drainer d = {rfd, dst, total, 0};
    gh_greenlet g;
    ASSERT_TRUE(src && dst);
    for (size_t i = 0; i < big; i++) src[i] = (unsigned char)(i * 7 + 1);
    ASSERT_OK(gh_spawn(&g, drain_main, &d));
    ASSERT_EQ(gh_writev(wfd, iov, 3, 10.0), (ssize_t)total);
    ASSERT_OK(gh_join(g, 10.0, NULL));
    ASSERT_OK(gh_release(g));
    ASSERT_EQ(d.got, total);
    ASSERT_TRUE(memcmp(dst, "abc", 3) == 0);
    ASSERT_TRUE(memcmp(dst + 3, src, big) == 0);
    ASSERT_TRUE(memcmp(dst + 3 + big, "defgh", 5) == 0);
    /* readv: 2 + 4 bytes scattered */
    char a[2], b[8];
    struct iovec riov[2] = {{a, sizeof a}, {b, 4}};
    ASSERT_EQ(gh_writev(wfd, iov + 2, 1, 5.0), 5);
    ASSERT_EQ(gh_readv(rfd, riov, 2, 5.0), 5);
    ASSERT_TRUE(memcmp(a, "de", 2) == 0 && memcmp(b, "fgh", 3) == 0);
    ASSERT_CODE(gh_readv(rfd, riov, 2, 0.02), GH_ETIMEDOUT);
    free(src);
    free(dst);
}

TEST(writev_readv_socket_and_pipe) {
    int fds0 = gh_test_fd_count(), sv[2], p[2];
    make_pair(sv);
    writev_case(sv[1], sv[0]);
    ASSERT_OK(gh_close(sv[0]));
    ASSERT_OK(gh_close(sv[1]));
    ASSERT_OK(pipe2(p, O_CLOEXEC));
    writev_case(p[0], p[1]);
    /* a closed reader: GH_EPIPE, no SIGPIPE (its default would kill us) */
    ASSERT_OK(gh_close(p[0]));
    struct iovec one = {(void *)"x", 1};
    ASSERT_CODE(gh_writev(p[1], &one, 1, 1.0), GH_EPIPE);
    ASSERT_OK(gh_close(p[1]));
    /* misuse */
    ASSERT_CODE(gh_writev(0, NULL, 1, 0), GH_EINVAL);
    ASSERT_CODE(gh_readv(0, NULL, 1, 0), GH_EINVAL);
    ASSERT_CODE(gh_writev(0, &one, -1, 0), GH_EINVAL);
    ASSERT_CODE(gh_writev(0, &one, 1025, 0), GH_EINVAL);
    ASSERT_EQ(gh_writev(-1, NULL, 0, 0), 0);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* gh_writev_all: a write of three buffers that times out part-way reports exactly
 * the bytes that went out: resumed past them (the iovecs advanced by the count) with a
 * reader draining, the reader gets every byte once, in order. Then a writer parked
 * after partial progress and killed reports GH_ECANCELED and what the reader finds. */
static int iov_advance(struct iovec *iov, int n, size_t skip) {
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (skip >= iov[i].iov_len) {
            skip -= iov[i].iov_len;
            continue;
        }
        iov[k].iov_base = (char *)iov[i].iov_base + skip;
        iov[k].iov_len = iov[i].iov_len - skip;
        skip = 0;
        k++;
    }
    return k;
}

struct writev_job {
    int fd, n;
    const struct iovec *iov;
    size_t written;
    int rc;
};
static void *writev_job_run(void *arg) {
    struct writev_job *j = (struct writev_job *)arg;
    j->written = 12345;
    j->rc = gh_writev_all(j->fd, j->iov, j->n, GH_FOREVER, &j->written);
    return NULL;
}

static void writev_all_case(int rfd, int wfd) {
    size_t big = 4u << 20, total = 3 + big + 5, w = 7, w2 = 7;
    unsigned char *src = (unsigned char *)malloc(big), *dst = (unsigned char *)malloc(total);
    struct iovec iov[3] = {{(void *)"abc", 3}, {src, big}, {(void *)"defgh", 5}};
    struct drainer d = {rfd, dst, total, 0};
    gh_greenlet g;
    int k;
    ASSERT_TRUE(src && dst);
    for (size_t i = 0; i < big; i++) src[i] = (unsigned char)(i * 7 + 1);
    ASSERT_CODE(gh_writev_all(wfd, iov, 3, 0.05, &w), GH_ETIMEDOUT);
    ASSERT_TRUE(w > 3 && w < total);
    ASSERT_OK(gh_spawn(&g, drain_main, &d));
    k = iov_advance(iov, 3, w);
    ASSERT_EQ(k, 2);
    ASSERT_OK(gh_writev_all(wfd, iov, k, 10.0, &w2));
    ASSERT_EQ(w2, total - w);
    ASSERT_OK(gh_join(g, 10.0, NULL));
    ASSERT_OK(gh_release(g));
    ASSERT_EQ(d.got, total);
    ASSERT_TRUE(memcmp(dst, "abc", 3) == 0);
    ASSERT_TRUE(memcmp(dst + 3, src, big) == 0);
    ASSERT_TRUE(memcmp(dst + 3 + big, "defgh", 5) == 0);
    /* killed while it waits: its count is what the reader then finds */
    struct iovec one = {src, big};
    struct writev_job j = {wfd, 1, &one, 0, 0};
    ASSERT_OK(gh_spawn(&g, writev_job_run, &j));
    ASSERT_OK(gh_sleep(0.02));
    ASSERT_EQ(gh_greenlet_state(g), GH_STATE_WAITING);
    ASSERT_OK(gh_kill(g, 1.0));
    ASSERT_OK(gh_release(g));
    ASSERT_CODE(j.rc, GH_ECANCELED);
    ASSERT_TRUE(j.written > 0 && j.written < big);
    d.got = 0;
    d.cap = j.written;
    ASSERT_OK(gh_spawn(&g, drain_main, &d));
    ASSERT_OK(gh_join(g, 10.0, NULL));
    ASSERT_OK(gh_release(g));
    ASSERT_EQ(d.got, j.written);
    ASSERT_TRUE(memcmp(dst, src, j.written) == 0);
    ASSERT_CODE(gh_read(rfd, dst, 1, 0), GH_ETIMEDOUT); /* and nothing more */
    free(src);
    free(dst);
}

TEST(writev_all_reports_progress) {
    int fds0 = gh_test_fd_count(), sv[2], p[2];
    make_pair(sv);
    writev_all_case(sv[1], sv[0]);
    ASSERT_OK(gh_close(sv[0]));
    ASSERT_OK(gh_close(sv[1]));
    ASSERT_OK(pipe2(p, O_CLOEXEC));
    writev_all_case(p[0], p[1]);
    ASSERT_OK(gh_close(p[0]));
    ASSERT_OK(gh_close(p[1]));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* gh_writev_all's checks: a NULL count is GH_EINVAL and nothing is written; the other
 * refusals store 0 (bad iovec array or count, NaN timeout, bad fd); no buffers is GH_OK
 * with 0. */
TEST(writev_all_bad_args) {
    int fds0 = gh_test_fd_count(), sv[2];
    struct iovec one = {(void *)"x", 1};
    char c;
    size_t w;
    make_pair(sv);
    ASSERT_CODE(gh_writev_all(sv[0], &one, 1, 1.0, NULL), GH_EINVAL);
    ASSERT_CODE(gh_read(sv[1], &c, 1, 0), GH_ETIMEDOUT);
    w = 9;
    ASSERT_CODE(gh_writev_all(sv[0], NULL, 1, 1.0, &w), GH_EINVAL);
    ASSERT_EQ(w, 0u);
    w = 9;
    ASSERT_CODE(gh_writev_all(sv[0], &one, -1, 1.0, &w), GH_EINVAL);
    ASSERT_EQ(w, 0u);
    w = 9;
    ASSERT_CODE(gh_writev_all(sv[0], &one, 1025, 1.0, &w), GH_EINVAL);
    ASSERT_EQ(w, 0u);
    w = 9;
    ASSERT_CODE(gh_writev_all(sv[0], &one, 1, NAN, &w), GH_EINVAL);
    ASSERT_EQ(w, 0u);
    w = 9;
    ASSERT_CODE(gh_writev_all(-1, &one, 1, 1.0, &w), GH_EBADF);
    ASSERT_EQ(w, 0u);
    w = 9;
    ASSERT_OK(gh_writev_all(sv[0], NULL, 0, 1.0, &w));
    ASSERT_EQ(w, 0u);
    ASSERT_OK(gh_writev_all(sv[0], &one, 1, 1.0, &w));
    ASSERT_EQ(w, 1u);
    ASSERT_EQ(gh_read(sv[1], &c, 1, 1.0), 1);
    ASSERT_OK(gh_close(sv[0]));
    ASSERT_OK(gh_close(sv[1]));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* ==== gh_sendmsg / gh_recvmsg: fd passing =================================== */

/* A pipe's read end passed over a Unix socket with SCM_RIGHTS: the received fd is a
 * new, close-on-exec fd of the same pipe. A receiver waiting in gh_recvmsg is woken. */
struct msg_rx {
    int fd, got_fd;
    ssize_t n;
    char data[8];
};

static void *msg_receiver(void *arg) {
    struct msg_rx *r = (struct msg_rx *)arg;
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct iovec iov = {r->data, sizeof r->data};
    struct msghdr m;
    memset(&m, 0, sizeof m);
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = ctl.buf;
    m.msg_controllen = sizeof ctl.buf;
    r->n = gh_recvmsg(r->fd, &m, 0, 5.0);
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    r->got_fd = -1;
    if (r->n > 0 && c && c->cmsg_type == SCM_RIGHTS) memcpy(&r->got_fd, CMSG_DATA(c), sizeof(int));
    return NULL;
}

TEST(sendmsg_recvmsg_pass_fd) {
    int fds0 = gh_test_fd_count(), sv[2], p[2];
    struct msg_rx rx;
    gh_greenlet g;
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    make_pair(sv);
    ASSERT_OK(pipe2(p, O_CLOEXEC));
    memset(&rx, 0, sizeof rx);
    rx.fd = sv[1];
    ASSERT_OK(gh_spawn(&g, msg_receiver, &rx));
    ASSERT_OK(gh_sleep(0.01));
    struct iovec iov = {(void *)"fd!", 3};
    struct msghdr m;
    memset(&m, 0, sizeof m);
    memset(&ctl, 0, sizeof ctl);
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = ctl.buf;
    m.msg_controllen = sizeof ctl.buf;
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &p[0], sizeof(int));
    ASSERT_EQ(gh_sendmsg(sv[0], &m, 0, 5.0), 3);
    ASSERT_OK(gh_join(g, 5.0, NULL));
    ASSERT_OK(gh_release(g));
    ASSERT_EQ(rx.n, 3);
    ASSERT_TRUE(memcmp(rx.data, "fd!", 3) == 0);
    ASSERT_TRUE(rx.got_fd >= 0 && rx.got_fd != p[0]);
    ASSERT_TRUE(fcntl(rx.got_fd, F_GETFD) & FD_CLOEXEC);
    ASSERT_EQ(write(p[1], "z", 1), 1);
    char z;
    ASSERT_EQ(gh_read(rx.got_fd, &z, 1, 5.0), 1);
    ASSERT_EQ(z, 'z');
    ASSERT_CODE(gh_recvmsg(sv[1], &m, 0, 0.02), GH_ETIMEDOUT);
    ASSERT_CODE(gh_recvmsg(sv[1], NULL, 0, 0), GH_EINVAL);
    ASSERT_CODE(gh_sendmsg(sv[0], NULL, 0, 0), GH_EINVAL);
    ASSERT_OK(gh_close(rx.got_fd));
    ASSERT_OK(gh_close(p[0]));
    ASSERT_OK(gh_close(p[1]));
    ASSERT_OK(gh_close(sv[0]));
    ASSERT_OK(gh_close(sv[1]));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* ==== gh_sendfile ============================================================ */

static int temp_file(size_t size, unsigned char **content) {
    char path[] = "/tmp/gh-sendfile-XXXXXX";
    int fd = mkstemp(path);
    ASSERT_TRUE(fd >= 0);
    ASSERT_OK(unlink(path));
    unsigned char *c = (unsigned char *)malloc(size);
    for (size_t i = 0; i < size; i++) c[i] = (unsigned char)(i * 13 + 5);
    ASSERT_EQ(write(fd, c, size), (ssize_t)size);
    *content = c;
    return fd;
}

/* 2 MiB of a file to a socket whose reader drains meanwhile: every byte, in order; with
 * an offset the file position stays; asking for more than the file stops at its end;
 * a reader that does not read: GH_ETIMEDOUT with the count so far (then resumed to the
 * end); a closed reader: GH_EPIPE, no SIGPIPE. */
TEST(sendfile_to_socket) {
    int fds0 = gh_test_fd_count(), sv[2], f;
    size_t size = 2u << 20, sent = 0;
    unsigned char *content, *dst = (unsigned char *)malloc(size);
    off_t off = 0;
    gh_greenlet g;
    f = temp_file(size, &content);
    make_pair(sv);
    struct drainer d = {sv[1], dst, size, 0};
    ASSERT_OK(gh_spawn(&g, drain_main, &d));
    ASSERT_OK(gh_sendfile(sv[0], f, &off, size + 1000, 10.0, &sent));
    ASSERT_EQ(sent, size);
    ASSERT_EQ((size_t)off, size);
    ASSERT_OK(gh_join(g, 10.0, NULL));
    ASSERT_OK(gh_release(g));
    ASSERT_EQ(d.got, size);
    ASSERT_TRUE(memcmp(dst, content, size) == 0);
    ASSERT_EQ(lseek(f, 0, SEEK_CUR), (off_t)size); /* written by write(); untouched since */
    /* no reader: a timeout with partial progress, resumed from the offset */
    off = 0;
    ASSERT_CODE(gh_sendfile(sv[0], f, &off, size, 0.05, &sent), GH_ETIMEDOUT);
    ASSERT_TRUE(sent > 0 && sent < size);
    ASSERT_EQ((size_t)off, sent);
    d.got = 0;
    ASSERT_OK(gh_spawn(&g, drain_main, &d));
    size_t rest = 0;
    ASSERT_OK(gh_sendfile(sv[0], f, &off, size - sent, 10.0, &rest));
    ASSERT_EQ(sent + rest, size);
    ASSERT_OK(gh_join(g, 10.0, NULL));
    ASSERT_OK(gh_release(g));
    ASSERT_EQ(d.got, size);
    ASSERT_TRUE(memcmp(dst, content, size) == 0);
    /* file position mode (offset NULL) and a closed peer */
    ASSERT_EQ(lseek(f, 0, SEEK_SET), 0);
    ASSERT_OK(gh_close(sv[1]));
    ASSERT_CODE(gh_sendfile(sv[0], f, NULL, size, 1.0, &sent), GH_EPIPE);
    ASSERT_EQ(sent, 0u);
    ASSERT_CODE(gh_sendfile(sv[0], f, NULL, size, NAN, NULL), GH_EINVAL);
    ASSERT_CODE(gh_sendfile(-1, f, NULL, size, 1.0, NULL), GH_EBADF);
    ASSERT_OK(gh_close(sv[0]));
    ASSERT_OK(close(f));
    free(content);
    free(dst);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* ==== gh_poll ================================================================ */

struct poller {
    struct pollfd fds[3];
    int rc;
};

static void *poll_main(void *arg) {
    struct poller *p = (struct poller *)arg;
    p->rc = gh_poll(p->fds, 3, 5.0);
    return NULL;
}

static void *write_later(void *arg) {
    gh_sleep(0.01);
    gh_write((int)(intptr_t)arg, "xy", 2, 1.0);
    return NULL;
}

/* Ready at once; waiting for one of three (a negative fd ignored) while another
 * greenlet reads the same fd — no GH_EBUSY: the wait is on a set of its own; a timeout;
 * a hang-up; no fds at all; a killed poller; nothing left open. */
TEST(poll_several_fds) {
    int fds0 = gh_test_fd_count(), a[2], b[2], sv[2];
    struct poller p;
    gh_greenlet g, w;
    char c;
    ASSERT_OK(pipe2(a, O_CLOEXEC));
    ASSERT_OK(pipe2(b, O_CLOEXEC));
    make_pair(sv);
    /* at once: a writable socket */
    struct pollfd one = {sv[0], POLLOUT, 0};
    ASSERT_EQ(gh_poll(&one, 1, 0), 1);
    ASSERT_TRUE(one.revents & POLLOUT);
    /* wait for b[0] among a[0], -1, b[0] */
    memset(&p, 0, sizeof p);
    p.fds[0] = (struct pollfd){a[0], POLLIN, 0};
    p.fds[1] = (struct pollfd){-1, POLLIN, 0};
    p.fds[2] = (struct pollfd){b[0], POLLIN, 0};
    ASSERT_OK(gh_spawn(&g, poll_main, &p));
    ASSERT_OK(gh_spawn(&w, write_later, (void *)(intptr_t)b[1]));
    ASSERT_OK(gh_sleep(0.002));
    ASSERT_EQ(gh_greenlet_state(g), GH_STATE_WAITING);
    ASSERT_EQ(gh_read(b[0], &c, 1, 5.0), 1); /* a reader of the same fd: no GH_EBUSY */
    ASSERT_OK(gh_join(g, 5.0, NULL));
    ASSERT_OK(gh_join(w, 5.0, NULL));
    ASSERT_OK(gh_release(g));
    ASSERT_OK(gh_release(w));
    ASSERT_EQ(p.rc, 1); /* the second byte is still there */
    ASSERT_TRUE((p.fds[2].revents & POLLIN) && p.fds[0].revents == 0);
    ASSERT_EQ(p.fds[1].revents, 0);
    ASSERT_EQ(gh_read(b[0], &c, 1, 5.0), 1);
    /* plain wake-up: nobody else reads */
    memset(&p.fds[0].revents, 0, sizeof p.fds[0].revents);
    ASSERT_OK(gh_spawn(&w, write_later, (void *)(intptr_t)a[1]));
    double t0 = gh_test_now();
    ASSERT_EQ(gh_poll(p.fds, 3, 5.0), 1);
    ASSERT_TRUE(gh_test_now() - t0 < 2.0);
    ASSERT_TRUE(p.fds[0].revents & POLLIN);
    ASSERT_OK(gh_join(w, 5.0, NULL));
    ASSERT_OK(gh_release(w));
    char two[2];
    ASSERT_EQ(gh_read(a[0], two, 2, 5.0), 2);
    /* a timeout */
    t0 = gh_test_now();
    ASSERT_CODE(gh_poll(p.fds, 3, 0.02), GH_ETIMEDOUT);
    ASSERT_TRUE(gh_test_now() - t0 >= 0.015);
    ASSERT_CODE(gh_poll(p.fds, 3, 0), GH_ETIMEDOUT);
    /* a hang-up */
    ASSERT_OK(gh_close(a[1]));
    ASSERT_EQ(gh_poll(p.fds, 3, 5.0), 1);
    ASSERT_TRUE(p.fds[0].revents & POLLHUP);
    ASSERT_OK(gh_close(a[0]));
    /* no fds: a sleep, then GH_ETIMEDOUT */
    ASSERT_CODE(gh_poll(NULL, 0, 0.01), GH_ETIMEDOUT);
    ASSERT_CODE(gh_poll(NULL, 1, 0), GH_EINVAL);
    ASSERT_CODE(gh_poll(p.fds, 1, NAN), GH_EINVAL);
    /* a killed poller */
    p.fds[0] = (struct pollfd){b[0], POLLIN, 0};
    p.fds[1] = (struct pollfd){-1, 0, 0};
    p.fds[2] = (struct pollfd){sv[1], POLLIN, 0};
    ASSERT_OK(gh_spawn(&g, poll_main, &p));
    ASSERT_OK(gh_sleep(0.01));
    ASSERT_OK(gh_kill(g, 5.0));
    ASSERT_OK(gh_release(g));
    ASSERT_EQ(p.rc, GH_ECANCELED);
    ASSERT_OK(gh_close(b[0]));
    ASSERT_OK(gh_close(b[1]));
    ASSERT_OK(gh_close(sv[0]));
    ASSERT_OK(gh_close(sv[1]));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* gh_hub_destroy while a greenlet waits in gh_poll: its epoll set is closed too. */
TEST(poll_destroy_while_waiting) {
    int fds0 = gh_test_fd_count(), sv[2];
    static struct poller p;
    make_pair(sv);
    memset(&p, 0, sizeof p);
    p.fds[0] = (struct pollfd){sv[0], POLLIN, 0};
    p.fds[1] = (struct pollfd){-1, 0, 0};
    p.fds[2] = (struct pollfd){-1, 0, 0};
    ASSERT_OK(gh_spawn(NULL, poll_main, &p));
    ASSERT_OK(gh_sleep(0.01));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_OK(close(sv[0]));
    ASSERT_OK(close(sv[1]));
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

int main(int argc, char **argv) {
    TEST_INIT(argc, argv);
    RUN(udp_sendto_recvfrom);
    RUN(writev_readv_socket_and_pipe);
    RUN(writev_all_reports_progress);
    RUN(writev_all_bad_args);
    RUN(sendmsg_recvmsg_pass_fd);
    RUN(sendfile_to_socket);
    RUN(poll_several_fds);
    RUN(poll_destroy_while_waiting);
    return TEST_DONE();
}

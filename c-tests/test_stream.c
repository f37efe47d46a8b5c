/* test_stream.c — buffered streams (gh_stream_*) and gh_write_all (issue 14): records
 * split across reads and several records in one read, the bounded buffer, end of file
 * in and between records, timeouts, one reader, kill and hub teardown mid-read, and a
 * write that says how much went out when it fails.
 *
 * Build and run:
 *   cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g -O1 -Iinclude -Ic-tests \
 *      c-tests/test_stream.c target/release/libgreenhub.a -lpthread -ldl -lm \
 *      -o target/c/test_stream
 *   ./target/c/test_stream [case]
 */
#include "harness.h"

#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>

#ifndef GH_EPIPE
#define GH_EPIPE (-EPIPE)
#endif

static void make_pair(int sv[2]) {
    ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv));
}

/* A writer greenlet: sends `parts` one by one with a 5 ms pause, then closes its end
 * if `close_after`. */
struct script {
    int fd, close_after;
    const char *parts[8];
};

static void *writer_main(void *arg) {
    struct script *s = (struct script *)arg;
    for (int i = 0; i < 8 && s->parts[i]; i++) {
        size_t w = 0;
        if (gh_write_all(s->fd, s->parts[i], strlen(s->parts[i]), 5.0, &w) != 0) break;
        gh_sleep(0.005);
    }
    if (s->close_after) gh_close(s->fd);
    return NULL;
}

/* Lines arriving in pieces: each readline waits for its "\n"; a last line without one
 * is GH_EEOF with its bytes still buffered; then 0 at end of file. */
TEST(readline_pieces_and_eof) {
    int fds0 = gh_test_fd_count(), sv[2];
    struct script sc = {0, 1, {"a", "\nb", "b\ncc", "c", NULL}};
    gh_stream s;
    gh_greenlet w;
    char line[16];
    make_pair(sv);
    sc.fd = sv[1];
    ASSERT_OK(gh_stream_new(&s, sv[0], 0));
    ASSERT_OK(gh_spawn(&w, writer_main, &sc));
    ASSERT_EQ(gh_stream_readline(s, line, sizeof line, 5.0), 2);
    ASSERT_STREQ(line, "a\n");
    ASSERT_EQ(gh_stream_readline(s, line, sizeof line, 5.0), 3);
    ASSERT_STREQ(line, "bb\n");
    ASSERT_CODE(gh_stream_readline(s, line, sizeof line, 5.0), GH_EEOF);
    ASSERT_EQ(gh_stream_buffered(s), 3);
    ASSERT_EQ(gh_stream_read(s, line, sizeof line, 5.0), 3);
    ASSERT_TRUE(memcmp(line, "ccc", 3) == 0);
    ASSERT_EQ(gh_stream_read(s, line, sizeof line, 5.0), 0);
    ASSERT_EQ(gh_stream_readline(s, line, sizeof line, 5.0), 0);
    ASSERT_OK(gh_join(w, 5.0, NULL));
    ASSERT_OK(gh_release(w));
    ASSERT_OK(gh_stream_close(s));
    ASSERT_CODE(gh_stream_close(s), GH_EBADHANDLE);
    ASSERT_TRUE(fcntl(sv[0], F_GETFD) >= 0); /* the stream does not own its fd */
    ASSERT_OK(gh_close(sv[0]));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* Several records in one read (pipelined HTTP heads): each read_until takes one, the
 * rest stays buffered; read_exact takes a body. */
TEST(read_until_pipelined_then_read_exact) {
    int fds0 = gh_test_fd_count(), sv[2];
    const char *data = "GET /1 HTTP/1.1\r\n\r\nPOST /2 HTTP/1.1\r\nLen: 4\r\n\r\nbody";
    gh_stream s;
    char buf[128];
    make_pair(sv);
    ASSERT_EQ(send(sv[1], data, strlen(data), 0), (ssize_t)strlen(data));
    ASSERT_OK(gh_stream_new(&s, sv[0], 256));
    ASSERT_EQ(gh_stream_read_until(s, "\r\n\r\n", 4, buf, sizeof buf, 5.0), 19);
    ASSERT_TRUE(memcmp(buf, "GET /1 HTTP/1.1\r\n\r\n", 19) == 0);
    ASSERT_EQ(gh_stream_read_until(s, "\r\n\r\n", 4, buf, sizeof buf, 5.0), 28);
    ASSERT_TRUE(memcmp(buf, "POST /2 HTTP/1.1\r\nLen: 4\r\n\r\n", 28) == 0);
    ASSERT_EQ(gh_stream_buffered(s), 4);
    ASSERT_EQ(gh_stream_read_exact(s, buf, 4, 5.0), 4);
    ASSERT_TRUE(memcmp(buf, "body", 4) == 0);
    /* nothing more: a short timeout */
    ASSERT_CODE(gh_stream_read_until(s, "\r\n\r\n", 4, buf, sizeof buf, 0.02), GH_ETIMEDOUT);
    ASSERT_CODE(gh_stream_read_exact(s, buf, 4, 0), GH_ETIMEDOUT);
    ASSERT_OK(gh_stream_close(s));
    ASSERT_OK(gh_close(sv[0]));
    ASSERT_OK(gh_close(sv[1]));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* A timeout bounds the whole call, not each wait in it: a peer that trickles a byte
 * every 10 ms and never sends the delimiter makes gh_stream_read_until (and
 * gh_stream_read_exact) time out once the timeout has passed since the call began
 * waiting, although every single wait ends well within it. */
static void *trickle(void *arg) {
    int fd = *(int *)arg;
    for (int i = 0; i < 150; i++) { /* 1.5 s at most */
        if (send(fd, "x", 1, MSG_DONTWAIT) != 1) break;
        if (gh_sleep(0.01) != GH_OK) break;
    }
    return NULL;
}

TEST(timeout_bounds_the_whole_call) {
    int fds0 = gh_test_fd_count(), sv[2];
    gh_stream s;
    gh_greenlet w;
    char buf[4096];
    make_pair(sv);
    ASSERT_OK(gh_stream_new(&s, sv[0], sizeof buf));
    ASSERT_OK(gh_spawn(&w, trickle, &sv[1]));
    double t0 = gh_test_now();
    ASSERT_CODE(gh_stream_read_until(s, "\r\n\r\n", 4, buf, sizeof buf, 0.1), GH_ETIMEDOUT);
    double took = gh_test_now() - t0;
    ASSERT_TRUE(took >= 0.09);
    ASSERT_TRUE(took < 0.8); /* per-wait timeouts would run on while bytes keep coming */
    t0 = gh_test_now();
    ASSERT_CODE(gh_stream_read_exact(s, buf, sizeof buf, 0.1), GH_ETIMEDOUT);
    took = gh_test_now() - t0;
    ASSERT_TRUE(took >= 0.09);
    ASSERT_TRUE(took < 0.8);
    ASSERT_OK(gh_kill(w, 1.0));
    ASSERT_OK(gh_release(w));
    ASSERT_OK(gh_stream_close(s));
    ASSERT_OK(gh_close(sv[0]));
    ASSERT_OK(gh_close(sv[1]));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* The bound: a line longer than max_buffer is GH_EMSGSIZE once the buffer is full (it
 * holds max_buffer bytes, no more); a line that fits the stream but not the caller's
 * buffer is GH_EMSGSIZE and stays buffered, so a bigger buffer gets it; read_exact of
 * more than max_buffer is GH_EMSGSIZE at once. A delimiter split across reads is found. */
TEST(bounded_buffer_emsgsize) {
    int fds0 = gh_test_fd_count(), sv[2];
    gh_stream s;
    char big[200], buf[64];
    make_pair(sv);
    ASSERT_OK(gh_stream_new(&s, sv[0], 16));
    memset(big, 'x', sizeof big);
    ASSERT_EQ(send(sv[1], big, sizeof big, 0), (ssize_t)sizeof big);
    ASSERT_CODE(gh_stream_readline(s, buf, sizeof buf, 5.0), GH_EMSGSIZE);
    ASSERT_EQ(gh_stream_buffered(s), 16);
    ASSERT_CODE(gh_stream_read_exact(s, buf, 17, 5.0), GH_EMSGSIZE);
    ASSERT_OK(gh_stream_close(s));
    ASSERT_OK(gh_close(sv[0]));
    ASSERT_OK(gh_close(sv[1]));

    make_pair(sv);
    ASSERT_OK(gh_stream_new(&s, sv[0], 64));
    ASSERT_EQ(send(sv[1], "0123456789\r", 11, 0), 11);
    struct script sc = {sv[1], 0, {"\nrest", NULL}};
    ASSERT_OK(gh_spawn(NULL, writer_main, &sc));
    ASSERT_CODE(gh_stream_read_until(s, "\r\n", 2, buf, 4, 5.0), GH_EMSGSIZE);
    ASSERT_EQ(gh_stream_read_until(s, "\r\n", 2, buf, sizeof buf, 5.0), 12);
    ASSERT_TRUE(memcmp(buf, "0123456789\r\n", 12) == 0);
    ASSERT_OK(gh_stream_close(s));
    ASSERT_OK(gh_close(sv[0]));
    ASSERT_OK(gh_close(sv[1]));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* read_exact at end of file: after part of it GH_EEOF (the part stays buffered), with
 * nothing buffered 0. Works on a pipe too (not a socket). */
TEST(read_exact_eof_and_pipe) {
    int fds0 = gh_test_fd_count(), p[2];
    gh_stream s;
    char buf[16];
    ASSERT_OK(pipe2(p, O_CLOEXEC));
    ASSERT_EQ(write(p[1], "abc", 3), 3);
    ASSERT_OK(close(p[1]));
    ASSERT_OK(gh_stream_new(&s, p[0], 0));
    ASSERT_CODE(gh_stream_read_exact(s, buf, 5, 5.0), GH_EEOF);
    ASSERT_EQ(gh_stream_buffered(s), 3);
    ASSERT_EQ(gh_stream_read_exact(s, buf, 3, 5.0), 3);
    ASSERT_EQ(gh_stream_read_exact(s, buf, 3, 5.0), 0);
    ASSERT_OK(gh_stream_close(s));
    ASSERT_OK(gh_close(p[0]));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* One reader: while a greenlet waits in a read of the stream, another read and
 * gh_stream_close are GH_EBUSY; killing the reader ends its read with GH_ECANCELED;
 * then close works. gh_close of the fd wakes a reader with GH_ECLOSED. */
static void *reader_main(void *arg) {
    gh_stream s = *(gh_stream *)arg;
    char line[64];
    return (void *)(intptr_t)gh_stream_readline(s, line, sizeof line, GH_FOREVER);
}

TEST(one_reader_kill_and_close) {
    int fds0 = gh_test_fd_count(), sv[2];
    gh_stream s;
    gh_greenlet r;
    void *res;
    char buf[8];
    make_pair(sv);
    ASSERT_OK(gh_stream_new(&s, sv[0], 0));
    ASSERT_OK(gh_spawn(&r, reader_main, &s));
    ASSERT_OK(gh_sleep(0.01));
    ASSERT_CODE(gh_stream_read(s, buf, sizeof buf, 1.0), GH_EBUSY);
    ASSERT_CODE(gh_stream_close(s), GH_EBUSY);
    ASSERT_OK(gh_kill(r, 5.0));
    ASSERT_OK(gh_join(r, 5.0, &res));
    ASSERT_EQ((int)(intptr_t)res, GH_ECANCELED);
    ASSERT_OK(gh_release(r));
    /* data sent meanwhile is read normally */
    ASSERT_EQ(send(sv[1], "hi\n", 3, 0), 3);
    ASSERT_EQ(gh_stream_readline(s, buf, sizeof buf, 5.0), 3);
    ASSERT_OK(gh_spawn(&r, reader_main, &s));
    ASSERT_OK(gh_sleep(0.01));
    ASSERT_OK(gh_close(sv[0]));
    ASSERT_OK(gh_join(r, 5.0, &res));
    ASSERT_EQ((int)(intptr_t)res, GH_ECLOSED);
    ASSERT_OK(gh_release(r));
    ASSERT_OK(gh_stream_close(s));
    ASSERT_OK(gh_close(sv[1]));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* gh_hub_destroy while a greenlet waits in a stream read: the buffer is freed (valgrind:
 * nothing lost), the fds are the caller's. */
TEST(destroy_with_reader_blocked) {
    int fds0 = gh_test_fd_count(), sv[2];
    static gh_stream s;
    make_pair(sv);
    ASSERT_OK(gh_stream_new(&s, sv[0], 0));
    ASSERT_EQ(send(sv[1], "partial", 7, 0), 7);
    ASSERT_OK(gh_spawn(NULL, reader_main, &s));
    ASSERT_OK(gh_sleep(0.01));
    ASSERT_EQ(gh_stream_buffered(s), 7);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_CODE(gh_stream_buffered(s), GH_EBADHANDLE);
    ASSERT_OK(close(sv[0]));
    ASSERT_OK(close(sv[1]));
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* gh_write_all into a peer that does not read: GH_ETIMEDOUT with *written between 0
 * and len, exactly what the peer then reads; resuming from there completes; a closed
 * peer is GH_EPIPE with the count so far; a killed writer reports its count too. */
static size_t drain(int fd) {
    char buf[65536];
    size_t total = 0;
    ssize_t n;
    while ((n = recv(fd, buf, sizeof buf, MSG_DONTWAIT)) > 0) total += (size_t)n;
    return total;
}

struct wjob {
    int fd;
    const char *buf;
    size_t len, written;
    int rc;
};

static void *write_job(void *arg) {
    struct wjob *j = (struct wjob *)arg;
    j->rc = gh_write_all(j->fd, j->buf, j->len, GH_FOREVER, &j->written);
    return NULL;
}

TEST(write_all_reports_progress) {
    int fds0 = gh_test_fd_count(), sv[2], p[2];
    size_t len = 8u << 20, w = 123;
    char *big = (char *)calloc(1, len);
    ASSERT_TRUE(big != NULL);
    make_pair(sv);
    ASSERT_CODE(gh_write_all(sv[0], big, len, 0.05, &w), GH_ETIMEDOUT);
    ASSERT_TRUE(w > 0 && w < len);
    ASSERT_EQ(drain(sv[1]), w);
    size_t w2 = 0;
    ASSERT_CODE(gh_write_all(sv[0], big + w, len - w, 0.02, &w2), GH_ETIMEDOUT);
    ASSERT_TRUE(w2 > 0);
    ASSERT_EQ(drain(sv[1]), w2);
    ASSERT_OK(gh_close(sv[1]));
    ASSERT_CODE(gh_write_all(sv[0], big, len, 1.0, &w), GH_EPIPE);
    ASSERT_EQ(w, 0u);
    ASSERT_OK(gh_close(sv[0]));
    /* a killed writer on a pipe: GH_ECANCELED and its count */
    ASSERT_OK(pipe2(p, O_CLOEXEC));
    struct wjob j = {p[1], big, len, 0, 0};
    gh_greenlet g;
    ASSERT_OK(gh_spawn(&g, write_job, &j));
    ASSERT_OK(gh_sleep(0.01));
    ASSERT_OK(gh_kill(g, 5.0));
    ASSERT_OK(gh_release(g));
    ASSERT_EQ(j.rc, GH_ECANCELED);
    ASSERT_TRUE(j.written > 0 && j.written < len);
    /* everything: a reader drains the pipe while the writer writes */
    ASSERT_OK(gh_close(p[0]));
    ASSERT_OK(gh_close(p[1]));
    make_pair(sv);
    struct wjob j2 = {sv[0], big, len, 0, 1};
    ASSERT_OK(gh_spawn(&g, write_job, &j2));
    size_t got = 0;
    char *rb = (char *)malloc(65536);
    while (got < len) {
        ssize_t n = gh_read(sv[1], rb, 65536, 5.0);
        ASSERT_TRUE(n > 0);
        got += (size_t)n;
    }
    free(rb);
    ASSERT_OK(gh_join(g, 5.0, NULL));
    ASSERT_OK(gh_release(g));
    ASSERT_EQ(j2.rc, 0);
    ASSERT_EQ(j2.written, len);
    ASSERT_OK(gh_close(sv[0]));
    ASSERT_OK(gh_close(sv[1]));
    free(big);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* Misuse: NULL and zero arguments, bad handles, another thread's stream. */
static void *other_thread(void *arg) {
    gh_stream s = *(gh_stream *)arg;
    char b[4];
    intptr_t bad = 0;
    bad += gh_stream_read(s, b, sizeof b, 0) != GH_EWRONGTHREAD;
    bad += gh_stream_buffered(s) != GH_EWRONGTHREAD;
    bad += gh_stream_close(s) != GH_EWRONGTHREAD;
    gh_hub_destroy();
    return (void *)bad;
}

TEST(stream_misuse) {
    int fds0 = gh_test_fd_count(), sv[2];
    gh_stream s, zero = {0}, ones = {~0ull};
    char buf[8];
    size_t w;
    pthread_t t;
    void *bad;
    make_pair(sv);
    ASSERT_CODE(gh_stream_new(NULL, sv[0], 0), GH_EINVAL);
    ASSERT_CODE(gh_stream_new(&s, -1, 0), GH_EBADF);
    ASSERT_OK(gh_stream_new(&s, sv[0], 0));
    ASSERT_CODE(gh_stream_read(s, NULL, 1, 0), GH_EINVAL);
    ASSERT_CODE(gh_stream_read(s, buf, 0, 0), GH_EINVAL);
    ASSERT_CODE(gh_stream_read_exact(s, NULL, 1, 0), GH_EINVAL);
    ASSERT_CODE(gh_stream_read_until(s, NULL, 1, buf, sizeof buf, 0), GH_EINVAL);
    ASSERT_CODE(gh_stream_read_until(s, "\n", 0, buf, sizeof buf, 0), GH_EINVAL);
    ASSERT_CODE(gh_stream_readline(s, buf, 1, 0), GH_EINVAL);
    ASSERT_CODE(gh_stream_read(s, buf, sizeof buf, NAN), GH_EINVAL);
    ASSERT_CODE(gh_write_all(sv[0], buf, 1, 1.0, NULL), GH_EINVAL);
    ASSERT_CODE(gh_write_all(sv[0], NULL, 1, 1.0, &w), GH_EINVAL);
    ASSERT_CODE(gh_write_all(-1, buf, 1, 1.0, &w), GH_EBADF);
    ASSERT_OK(gh_write_all(sv[0], NULL, 0, 1.0, &w));
    ASSERT_EQ(w, 0u);
    gh_stream bads[] = {zero, ones};
    for (int i = 0; i < 2; i++) {
        ASSERT_CODE(gh_stream_read(bads[i], buf, sizeof buf, 0), GH_EBADHANDLE);
        ASSERT_CODE(gh_stream_buffered(bads[i]), GH_EBADHANDLE);
        ASSERT_CODE(gh_stream_close(bads[i]), GH_EBADHANDLE);
    }
    ASSERT_OK(pthread_create(&t, NULL, other_thread, &s));
    ASSERT_OK(pthread_join(t, &bad));
    ASSERT_TRUE(bad == NULL);
    ASSERT_OK(gh_stream_close(s));
    ASSERT_OK(gh_close(sv[0]));
    ASSERT_OK(gh_close(sv[1]));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

int main(int argc, char **argv) {
    TEST_INIT(argc, argv);
    RUN(readline_pieces_and_eof);
    RUN(read_until_pipelined_then_read_exact);
    RUN(timeout_bounds_the_whole_call);
    RUN(bounded_buffer_emsgsize);
    RUN(read_exact_eof_and_pipe);
    RUN(one_reader_kill_and_close);
    RUN(destroy_with_reader_blocked);
    RUN(write_all_reports_progress);
    RUN(stream_misuse);
    return TEST_DONE();
}

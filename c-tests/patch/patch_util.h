/* patch_util.h — helpers shared by the cooperative-libc tests (c-tests/patch/).
 * These programs link libgreenhub.so (never the static library: the patch finds
 * greenhub's functions in the process's global scope) and run with
 * libgreenhub_patch.so interposed — LD_PRELOAD or linked ahead of libc; see
 * scripts/test_patch.sh. */
#ifndef GREENHUB_PATCH_TEST_UTIL_H
#define GREENHUB_PATCH_TEST_UTIL_H

#include "harness.h"
#include "greenhub_patch.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>

#define RC_PTR(rc) ((void *)(intptr_t)(rc))
#define PTR_RC(p) ((int)(intptr_t)(p))

/* ---- a ticker greenlet: proves the hub ran while a libc call "blocked" ---- */
static volatile int ticks;
static gh_greenlet ticker_g;
static void *ticker_fn(void *arg) {
    (void)arg;
    for (;;) {
        if (gh_sleep(0.01) != GH_OK) return NULL;
        ticks++;
    }
}
static inline void ticker_start(void) {
    ticks = 0;
    ASSERT_OK(gh_spawn(&ticker_g, ticker_fn, NULL));
}
static inline void ticker_stop(void) {
    ASSERT_OK(gh_kill(ticker_g, 1.0));
    ASSERT_OK(gh_release(ticker_g));
}

/* ---- a greenlet that writes `len` bytes of `data` to `fd` after `delay` s ---- */
struct later {
    int fd;
    const void *data;
    size_t len;
    double delay;
    int close_after; /* 1: close(fd) after writing (or instead, with len 0) */
};
static void *later_fn(void *arg) {
    struct later *l = (struct later *)arg;
    if (gh_sleep(l->delay) != GH_OK) return RC_PTR(-1);
    if (l->len && write(l->fd, l->data, l->len) != (ssize_t)l->len) return RC_PTR(-2);
    if (l->close_after) close(l->fd);
    return RC_PTR(0);
}
static inline gh_greenlet later_spawn(struct later *l) {
    gh_greenlet g;
    ASSERT_OK(gh_spawn(&g, later_fn, l));
    return g;
}
static inline int join_rc(gh_greenlet g) {
    void *r = NULL;
    ASSERT_OK(gh_join(g, 10.0, &r));
    ASSERT_OK(gh_release(g));
    return PTR_RC(r);
}

/* A blocking AF_UNIX stream pair (what a blocking client library would hold). */
static inline void bpair(int sv[2]) { ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv)); }
static inline void closepair(int sv[2]) {
    close(sv[0]);
    close(sv[1]);
}
static inline int is_nonblock(int fd) {
    int fl = fcntl(fd, F_GETFL);
    ASSERT_TRUE(fl >= 0);
    return (fl & O_NONBLOCK) != 0;
}
static inline void set_timeo(int fd, int opt, double s) {
    struct timeval tv;
    tv.tv_sec = (time_t)s;
    tv.tv_usec = (suseconds_t)((s - (double)tv.tv_sec) * 1e6);
    ASSERT_OK(setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof tv));
}
/* A blocking TCP listener on 127.0.0.1 (ephemeral port); *port gets the port. */
static inline int tcp_listener(int *port) {
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_TRUE(fd >= 0);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_OK(bind(fd, (struct sockaddr *)&a, sizeof a));
    ASSERT_OK(listen(fd, 16));
    ASSERT_OK(getsockname(fd, (struct sockaddr *)&a, &len));
    *port = ntohs(a.sin_port);
    return fd;
}
static inline struct sockaddr_in loopback(int port) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    return a;
}

#endif

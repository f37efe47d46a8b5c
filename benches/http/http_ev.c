/* http_ev.c — examples-c/http_server.c written on libev (callback style), for
 * benches/http.sh: the same replies, the same 8 KiB request-head buffer, keep-alive,
 * "Connection: close" honoured, pipelined requests kept; an accept watcher on a
 * listening socket, an ev_io per connection. SIGINT/SIGTERM stop it (exit 0).
 *
 * Usage: http_ev [PORT]   (default 0: prints "listening on 127.0.0.1:PORT")
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char REPLY[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                            "Content-Length: 13\r\n\r\nHello, world\n";

struct conn {
    ev_io io;
    size_t len;
    char buf[8192];
};

static long accepted;

static void conn_close(struct ev_loop *loop, struct conn *c) {
    ev_io_stop(loop, &c->io);
    close(c->io.fd);
    free(c);
}

static void conn_cb(struct ev_loop *loop, ev_io *w, int revents) {
    struct conn *c = (struct conn *)w;
    char *end;
    (void)revents;
    if (c->len == sizeof c->buf) return conn_close(loop, c); /* head too long */
    ssize_t n = recv(w->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) return conn_close(loop, c);
    c->len += (size_t)n;
    while ((end = memmem(c->buf, c->len, "\r\n\r\n", 4))) {
        size_t used = (size_t)(end + 4 - c->buf);
        int last = memmem(c->buf, used, "Connection: close", 17) != NULL;
        /* the reply is small: a fresh socket buffer always takes it whole */
        if (send(w->fd, REPLY, sizeof REPLY - 1, MSG_NOSIGNAL) != sizeof REPLY - 1 || last)
            return conn_close(loop, c);
        memmove(c->buf, c->buf + used, c->len -= used);
    }
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents) {
    (void)revents;
    for (;;) {
        int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return; /* EAGAIN, or EMFILE: libev calls us again */
        struct conn *c = malloc(sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->len = 0;
        accepted++;
        ev_io_init(&c->io, conn_cb, fd, EV_READ);
        ev_io_start(loop, &c->io);
    }
}

static void stop_cb(struct ev_loop *loop, ev_signal *w, int revents) {
    (void)w, (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

int main(int argc, char **argv) {
    struct sockaddr_in a;
    socklen_t al = sizeof a;
    int one = 1, lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)(argc > 1 ? atoi(argv[1]) : 0));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) || listen(lfd, SOMAXCONN) ||
        getsockname(lfd, (struct sockaddr *)&a, &al))
        return perror("http_ev: listen"), 1;
    printf("listening on 127.0.0.1:%d\n", ntohs(a.sin_port)), fflush(stdout);
    struct ev_loop *loop = EV_DEFAULT;
    ev_io acc;
    ev_signal sint, sterm;
    ev_io_init(&acc, accept_cb, lfd, EV_READ);
    ev_io_start(loop, &acc);
    ev_signal_init(&sint, stop_cb, SIGINT);
    ev_signal_init(&sterm, stop_cb, SIGTERM);
    ev_signal_start(loop, &sint);
    ev_signal_start(loop, &sterm);
    ev_run(loop, 0);
    fprintf(stderr, "http_ev: %ld connections\n", accepted);
    return 0;
}

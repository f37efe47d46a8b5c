/* ev.c — libev side of the peer workloads (see peers.h), callback style.
 *   pingpong         1 byte over a socketpair between two ev_io watchers (read, write back)
 *   timers           1M one-shot ev_timer, due uniformly in [0, 1 s)
 *   echo-server LFD N  an ev_io per connection (read, write back) on an inherited listening socket
 */
#include "peers.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *P = "libev";
static struct ev_loop *loop;

/* ---- pingpong --------------------------------------------------------------------- */

static int sv[2];
static long rounds, done_rounds, bytes_moved;
static unsigned char want[2];
static ev_io ios[2];

static void pp_cb(struct ev_loop *l, ev_io *w, int revents) {
    int me = w == &ios[1];
    unsigned char c;
    (void)revents;
    PEERS_CHECK(read(sv[me], &c, 1) == 1 && c == want[me], "pingpong: read");
    want[me]++;
    bytes_moved++;
    if (me == 0 && ++done_rounds == rounds) {
        ev_io_stop(l, &ios[0]);
        ev_io_stop(l, &ios[1]);
        return;
    }
    if (me == 0) c++; /* side 0 sends the next byte, side 1 echoes */
    PEERS_CHECK(write(sv[me], &c, 1) == 1, "pingpong: write");
}

static double pingpong_pass(long n) {
    unsigned char c = 0;
    rounds = n;
    done_rounds = bytes_moved = 0;
    want[0] = want[1] = 0;
    ev_io_init(&ios[0], pp_cb, sv[0], EV_READ);
    ev_io_init(&ios[1], pp_cb, sv[1], EV_READ);
    ev_io_start(loop, &ios[0]);
    ev_io_start(loop, &ios[1]);
    double t0 = peers_now();
    PEERS_CHECK(write(sv[0], &c, 1) == 1, "pingpong: write");
    ev_run(loop, 0);
    double t = peers_now() - t0;
    PEERS_CHECK(done_rounds == n && bytes_moved == 2 * n, "pingpong: %ld of %ld bytes", bytes_moved, 2 * n);
    return t;
}

static int pingpong(void) {
    long n = peers_env_long("PEERS_N", 200000);
    PEERS_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0, "socketpair");
    pingpong_pass(n / 10 + 1);
    double t = pingpong_pass(n);
    printf("RESULT workload=pingpong prog=%s n=%ld ns=%.1f rt_per_s=%.0f\n", P, n, t * 1e9 / n, n / t);
    return 0;
}

/* ---- timers ----------------------------------------------------------------------- */

static double t_start, max_late, *delays;
static ev_timer *timers_;
static long fired;

static void timer_cb(struct ev_loop *l, ev_timer *w, int revents) {
    (void)l;
    (void)revents;
    double late = peers_now() - (t_start + delays[w - timers_]);
    if (late > max_late) max_late = late;
    fired++;
}

/* Starts n timers (delays[i]) and runs the loop until all fired; the start phase's
 * seconds in *start_s. */
static void timers_burst(long n, double *start_s) {
    fired = 0;
    max_late = 0;
    ev_now_update(loop);
    t_start = peers_now();
    for (long i = 0; i < n; i++) {
        ev_timer_init(&timers_[i], timer_cb, delays[i], 0.);
        ev_timer_start(loop, &timers_[i]);
    }
    *start_s = peers_now() - t_start;
    ev_run(loop, 0);
    PEERS_CHECK(fired == n, "timers: %ld of %ld fired", fired, n);
}

static int timers(int again) {
    long n = peers_env_long("PEERS_N", 1000000);
    delays = peers_delays(n);
    timers_ = malloc((size_t)n * sizeof *timers_);
    PEERS_CHECK(timers_, "malloc");
    /* libev's timers count from its loop time (ev_now), updated just before t_start:
     * their own deadlines are t_start + delay, the first figure's. */
    return peers_timers(P, again, n, timers_burst, &max_late, &max_late);
}

/* ---- echo server ------------------------------------------------------------------ */

static int nconn, accepted, open_conns;
static ev_io accept_io;

static void conn_cb(struct ev_loop *l, ev_io *w, int revents) {
    char buf[4096];
    (void)revents;
    ssize_t n = read(w->fd, buf, sizeof buf);
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) {
        ev_io_stop(l, w);
        close(w->fd);
        free(w);
        open_conns--;
        return;
    }
    /* One 32-byte request in flight per connection: the socket buffer always takes it. */
    PEERS_CHECK(write(w->fd, buf, (size_t)n) == n, "echo: short write");
}

static void accept_cb(struct ev_loop *l, ev_io *w, int revents) {
    int one = 1;
    (void)revents;
    for (;;) {
        int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK);
        if (fd < 0) {
            PEERS_CHECK(errno == EAGAIN, "accept: %s", strerror(errno));
            return;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        ev_io *c = malloc(sizeof *c);
        PEERS_CHECK(c, "malloc");
        ev_io_init(c, conn_cb, fd, EV_READ);
        ev_io_start(l, c);
        open_conns++;
        if (++accepted == nconn) {
            ev_io_stop(l, w);
            close(w->fd);
            return;
        }
    }
}

static int echo_server(int lfd, int n) {
    nconn = n;
    fcntl(lfd, F_SETFL, O_NONBLOCK);
    ev_io_init(&accept_io, accept_cb, lfd, EV_READ);
    ev_io_start(loop, &accept_io);
    ev_run(loop, 0); /* returns when every connection is closed */
    PEERS_CHECK(accepted == nconn && open_conns == 0, "echo: %d accepted, %d open", accepted, open_conns);
    return 0;
}

int main(int argc, char **argv) {
    const char *w = argc > 1 ? argv[1] : "";
    int rc;
    loop = ev_default_loop(EVBACKEND_EPOLL);
    PEERS_CHECK(loop, "ev_default_loop");
    if (strcmp(w, "pingpong") == 0) rc = pingpong();
    else if (strcmp(w, "timers") == 0) rc = timers(0);
    else if (strcmp(w, "timers-again") == 0) rc = timers(1);
    else if (strcmp(w, "echo-server") == 0 && argc == 4) rc = echo_server(atoi(argv[2]), atoi(argv[3]));
    else {
        fprintf(stderr, "usage: %s pingpong|timers|timers-again|echo-server LFD N\n", argv[0]);
        return 2;
    }
    fflush(stdout);
    return rc;
}

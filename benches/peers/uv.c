/* uv.c — libuv side of the peer workloads (see peers.h), callback style.
 *   pingpong         1 byte over a socketpair between two uv_poll_t watchers (read, write back)
 *   timers           1M one-shot uv_timer_t, due uniformly in [0, 1 s) (libuv: whole ms)
 *   echo-server LFD N  uv_tcp_t per connection: uv_read_start, echo with uv_try_write
 */
#include "peers.h"

#include <errno.h>
#include <math.h>
#include <unistd.h>
#include <uv.h>

static const char *P = "libuv";
static uv_loop_t *loop;

/* ---- pingpong --------------------------------------------------------------------- */

static int sv[2];
static long rounds, done_rounds, bytes_moved;
static unsigned char want[2];
static uv_poll_t polls[2];

static void pp_cb(uv_poll_t *h, int status, int events) {
    int me = h == &polls[1];
    unsigned char c;
    (void)events;
    PEERS_CHECK(status == 0 && read(sv[me], &c, 1) == 1 && c == want[me], "pingpong: read");
    want[me]++;
    bytes_moved++;
    if (me == 0 && ++done_rounds == rounds) {
        uv_poll_stop(&polls[0]);
        uv_poll_stop(&polls[1]);
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
    uv_poll_start(&polls[0], UV_READABLE, pp_cb);
    uv_poll_start(&polls[1], UV_READABLE, pp_cb);
    double t0 = peers_now();
    PEERS_CHECK(write(sv[0], &c, 1) == 1, "pingpong: write");
    uv_run(loop, UV_RUN_DEFAULT);
    double t = peers_now() - t0;
    PEERS_CHECK(done_rounds == n && bytes_moved == 2 * n, "pingpong: %ld of %ld bytes", bytes_moved, 2 * n);
    return t;
}

static int pingpong(void) {
    long n = peers_env_long("PEERS_N", 200000);
    PEERS_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0, "socketpair");
    PEERS_CHECK(uv_poll_init(loop, &polls[0], sv[0]) == 0 && uv_poll_init(loop, &polls[1], sv[1]) == 0, "uv_poll_init");
    pingpong_pass(n / 10 + 1);
    double t = pingpong_pass(n);
    printf("RESULT workload=pingpong prog=%s n=%ld ns=%.1f rt_per_s=%.0f\n", P, n, t * 1e9 / n, n / t);
    return 0;
}

/* ---- timers ----------------------------------------------------------------------- */

static double t_start, max_late, max_own_late, *delays;
static uv_timer_t *timers_;
static long fired;

static void timer_cb(uv_timer_t *t) {
    double now = peers_now(), d = delays[t - timers_];
    double late = now - (t_start + d);
    if (late > max_late) max_late = late;
    /* libuv counts whole milliseconds from its loop time, updated just before t_start. */
    double own = now - (t_start + ceil(d * 1e3) * 1e-3);
    if (own > max_own_late) max_own_late = own;
    fired++;
    uv_close((uv_handle_t *)t, NULL);
}

/* Starts n timers (delays[i]) and runs the loop until all fired (and closed); the
 * start phase's seconds in *start_s. */
static void timers_burst(long n, double *start_s) {
    fired = 0;
    max_late = max_own_late = 0;
    uv_update_time(loop);
    t_start = peers_now();
    for (long i = 0; i < n; i++) {
        uv_timer_init(loop, &timers_[i]);
        uv_timer_start(&timers_[i], timer_cb, (uint64_t)ceil(delays[i] * 1e3), 0);
    }
    *start_s = peers_now() - t_start;
    uv_run(loop, UV_RUN_DEFAULT);
    PEERS_CHECK(fired == n, "timers: %ld of %ld fired", fired, n);
}

static int timers(int again) {
    long n = peers_env_long("PEERS_N", 1000000);
    delays = peers_delays(n);
    timers_ = malloc((size_t)n * sizeof *timers_);
    PEERS_CHECK(timers_, "malloc");
    return peers_timers(P, again, n, timers_burst, &max_late, &max_own_late);
}

/* ---- echo server ------------------------------------------------------------------ */

static int nconn, accepted, open_conns;
static uv_tcp_t server;

struct conn {
    uv_tcp_t tcp;
    char buf[4096];
};

static void conn_closed(uv_handle_t *h) {
    free(h);
    open_conns--;
}

static void alloc_cb(uv_handle_t *h, size_t size, uv_buf_t *b) {
    (void)size;
    *b = uv_buf_init(((struct conn *)h)->buf, sizeof ((struct conn *)h)->buf);
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
    if (n < 0) {
        uv_close((uv_handle_t *)s, conn_closed);
        return;
    }
    if (n == 0) return;
    /* One 32-byte request in flight per connection: the socket buffer always takes it. */
    uv_buf_t out = uv_buf_init(b->base, (unsigned)n);
    PEERS_CHECK(uv_try_write(s, &out, 1) == n, "echo: short write");
}

static void on_connection(uv_stream_t *l, int status) {
    PEERS_CHECK(status == 0, "accept: %s", uv_strerror(status));
    struct conn *c = malloc(sizeof *c);
    PEERS_CHECK(c && uv_tcp_init(loop, &c->tcp) == 0 && uv_accept(l, (uv_stream_t *)&c->tcp) == 0, "uv_accept");
    uv_tcp_nodelay(&c->tcp, 1);
    PEERS_CHECK(uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb) == 0, "uv_read_start");
    open_conns++;
    if (++accepted == nconn) uv_close((uv_handle_t *)l, NULL);
}

static int echo_server(int lfd, int n) {
    nconn = n;
    PEERS_CHECK(uv_tcp_init(loop, &server) == 0 && uv_tcp_open(&server, lfd) == 0, "uv_tcp_open");
    PEERS_CHECK(uv_listen((uv_stream_t *)&server, SOMAXCONN, on_connection) == 0, "uv_listen");
    uv_run(loop, UV_RUN_DEFAULT); /* returns when every connection is closed */
    PEERS_CHECK(accepted == nconn && open_conns == 0, "echo: %d accepted, %d open", accepted, open_conns);
    return 0;
}

int main(int argc, char **argv) {
    const char *w = argc > 1 ? argv[1] : "";
    int rc;
    loop = uv_default_loop();
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

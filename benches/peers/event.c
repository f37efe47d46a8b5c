/* event.c — libevent side of the peer workloads (see peers.h), callback style.
 *   pingpong         1 byte over a socketpair between two persistent read events (read, write back)
 */
#include "peers.h"

#include <event2/event.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *P = "libevent";
static struct event_base *base;

static int sv[2];
static long rounds, done_rounds, bytes_moved;
static unsigned char want[2];
static struct event *evs[2];

static void pp_cb(evutil_socket_t fd, short what, void *arg) {
    int me = (int)(intptr_t)arg;
    unsigned char c;
    (void)what;
    PEERS_CHECK(read(fd, &c, 1) == 1 && c == want[me], "pingpong: read");
    want[me]++;
    bytes_moved++;
    if (me == 0 && ++done_rounds == rounds) {
        event_del(evs[0]);
        event_del(evs[1]);
        return;
    }
    if (me == 0) c++; /* side 0 sends the next byte, side 1 echoes */
    PEERS_CHECK(write(fd, &c, 1) == 1, "pingpong: write");
}

static double pingpong_pass(long n) {
    unsigned char c = 0;
    rounds = n;
    done_rounds = bytes_moved = 0;
    want[0] = want[1] = 0;
    event_add(evs[0], NULL);
    event_add(evs[1], NULL);
    double t0 = peers_now();
    PEERS_CHECK(write(sv[0], &c, 1) == 1, "pingpong: write");
    event_base_dispatch(base);
    double t = peers_now() - t0;
    PEERS_CHECK(done_rounds == n && bytes_moved == 2 * n, "pingpong: %ld of %ld bytes", bytes_moved, 2 * n);
    return t;
}

static int pingpong(void) {
    long n = peers_env_long("PEERS_N", 200000);
    PEERS_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0, "socketpair");
    for (int i = 0; i < 2; i++) {
        evs[i] = event_new(base, sv[i], EV_READ | EV_PERSIST, pp_cb, (void *)(intptr_t)i);
        PEERS_CHECK(evs[i], "event_new");
    }
    pingpong_pass(n / 10 + 1);
    double t = pingpong_pass(n);
    printf("RESULT workload=pingpong prog=%s n=%ld ns=%.1f rt_per_s=%.0f backend=%s\n", P, n, t * 1e9 / n, n / t,
           event_base_get_method(base));
    return 0;
}

int main(int argc, char **argv) {
    const char *w = argc > 1 ? argv[1] : "";
    int rc;
    base = event_base_new();
    PEERS_CHECK(base, "event_base_new");
    if (strcmp(w, "pingpong") == 0) rc = pingpong();
    else {
        fprintf(stderr, "usage: %s pingpong\n", argv[0]);
        return 2;
    }
    fflush(stdout);
    return rc;
}

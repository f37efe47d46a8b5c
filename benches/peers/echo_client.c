/* echo_client.c — the ONE load client of the echo workload, the same for every server.
 *
 *   echo_client NAME SECONDS CONNS -- SERVER_PROGRAM [ARGS...]
 *
 * Opens a listening socket on 127.0.0.1 (ephemeral port), starts the server as a child
 * process with `ARGS... echo-server LFD CONNS` appended (it inherits the socket), then
 * drives CONNS connections from this process with plain epoll (no library under test
 * here): each sends a 32-byte request, reads the 32-byte echo back and checks every
 * byte, one request in flight per connection, for SECONDS. It then closes the
 * connections (the server exits once they are all closed) and prints
 *     RESULT workload=echo prog=NAME req_s=... p50_us=... p99_us=... requests=...
 * Exits non-zero if an echo came back wrong, a connection failed, or the server failed.
 */
#include "peers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define MSG 32
#define HIST_US 1000000 /* 1 µs buckets up to 1 s, then one overflow bucket */

struct conn {
    int fd, id;
    unsigned round;
    size_t got;
    double sent_at;
    unsigned char out[MSG], in[MSG];
};

static unsigned *hist;
static long requests;

static void send_request(struct conn *c) {
    for (int i = 0; i < MSG; i++) c->out[i] = (unsigned char)(c->id * 7 + c->round * 13 + i);
    c->got = 0;
    c->sent_at = peers_now();
    PEERS_CHECK(write(c->fd, c->out, MSG) == MSG, "echo client: short write: %s", strerror(errno));
}

static double percentile(double p) {
    long want = (long)(p * (double)(requests - 1)), seen = 0;
    for (long us = 0; us <= HIST_US; us++) {
        seen += hist[us];
        if (seen > want) return (double)us;
    }
    return HIST_US;
}

int main(int argc, char **argv) {
    if (argc < 6 || strcmp(argv[4], "--") != 0) {
        fprintf(stderr, "usage: %s NAME SECONDS CONNS -- SERVER_PROGRAM [ARGS...]\n", argv[0]);
        return 2;
    }
    const char *name = argv[1];
    double seconds = atof(argv[2]);
    int nconn = atoi(argv[3]);
    PEERS_CHECK(seconds > 0 && nconn > 0, "bad SECONDS or CONNS");
    signal(SIGPIPE, SIG_IGN);

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    struct sockaddr_in addr;
    socklen_t len = sizeof addr;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    PEERS_CHECK(lfd >= 0 && bind(lfd, (struct sockaddr *)&addr, sizeof addr) == 0 && listen(lfd, SOMAXCONN) == 0 &&
                    getsockname(lfd, (struct sockaddr *)&addr, &len) == 0,
                "listen: %s", strerror(errno));

    /* The server: ARGS... echo-server LFD CONNS. */
    char lfd_s[16], n_s[16];
    snprintf(lfd_s, sizeof lfd_s, "%d", lfd);
    snprintf(n_s, sizeof n_s, "%d", nconn);
    int sargc = argc - 5;
    char **sargv = calloc((size_t)sargc + 4, sizeof *sargv);
    PEERS_CHECK(sargv, "calloc");
    for (int i = 0; i < sargc; i++) sargv[i] = argv[5 + i];
    sargv[sargc] = "echo-server";
    sargv[sargc + 1] = lfd_s;
    sargv[sargc + 2] = n_s;
    fflush(stdout);
    pid_t server = fork();
    PEERS_CHECK(server >= 0, "fork: %s", strerror(errno));
    if (server == 0) {
        execv(sargv[0], sargv);
        fprintf(stderr, "echo client: exec %s: %s\n", sargv[0], strerror(errno));
        _exit(127);
    }
    close(lfd);

    /* Connections complete in the listen backlog whether or not the server accepts yet. */
    struct conn *cs = calloc((size_t)nconn, sizeof *cs);
    hist = calloc(HIST_US + 1, sizeof *hist);
    int ep = epoll_create1(0), one = 1;
    PEERS_CHECK(cs && hist && ep >= 0, "setup");
    for (int i = 0; i < nconn; i++) {
        struct conn *c = &cs[i];
        c->id = i;
        c->fd = socket(AF_INET, SOCK_STREAM, 0);
        PEERS_CHECK(c->fd >= 0 && connect(c->fd, (struct sockaddr *)&addr, sizeof addr) == 0,
                    "connect: %s", strerror(errno));
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fcntl(c->fd, F_SETFL, O_NONBLOCK);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        PEERS_CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) == 0, "epoll_ctl");
    }

    double t0 = peers_now(), deadline = t0 + seconds;
    int active = nconn;
    for (int i = 0; i < nconn; i++) send_request(&cs[i]);
    struct epoll_event evs[256];
    while (active > 0) {
        int k = epoll_wait(ep, evs, 256, 30000);
        PEERS_CHECK(k > 0 || (k < 0 && errno == EINTR), "echo client: no echo for 30 s");
        for (int e = 0; e < k; e++) {
            struct conn *c = evs[e].data.ptr;
            ssize_t n = read(c->fd, c->in + c->got, MSG - c->got);
            if (n < 0 && errno == EAGAIN) continue;
            PEERS_CHECK(n > 0, "echo client: connection %d: %s", c->id, n == 0 ? "closed by the server" : strerror(errno));
            c->got += (size_t)n;
            if (c->got < MSG) continue;
            double now = peers_now();
            PEERS_CHECK(memcmp(c->in, c->out, MSG) == 0, "echo client: connection %d echoed wrong bytes", c->id);
            long us = (long)((now - c->sent_at) * 1e6);
            hist[us < HIST_US ? us : HIST_US]++;
            requests++;
            c->round++;
            if (now < deadline) send_request(c);
            else {
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                active--;
            }
        }
    }
    double elapsed = peers_now() - t0;
    for (int i = 0; i < nconn; i++) close(cs[i].fd);

    int status = 0;
    while (waitpid(server, &status, 0) < 0 && errno == EINTR) {
    }
    PEERS_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "echo client: the %s server failed (status %d)", name,
                status);
    printf("RESULT workload=echo prog=%s req_s=%.0f p50_us=%.0f p99_us=%.0f requests=%ld conns=%d seconds=%.2f\n", name,
           requests / elapsed, percentile(0.50), percentile(0.99), requests, nconn, elapsed);
    return 0;
}

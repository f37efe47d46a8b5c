/* echo.c — the echo server workload over loopback, server and client in separate
 * processes (one process doing both would measure a different thing: every request
 * would be served by the same loop that sends it).
 *
 *   server process: a greenlet per connection (gh_accept, then gh_read -> gh_write
 *                   until the peer closes), as examples-c/echo_server.c;
 *   client process: 100 connections, each a greenlet sending a 32-byte request and
 *                   reading the 32-byte echo back, one at a time, for a fixed duration
 *                   (GH_BENCH_SECONDS, default 3 s); every byte is checked.
 *
 * Prints requests/s and the p50/p99 round-trip latency. Never fails on a time; it
 * exits non-zero only if an echo came back wrong or a process failed.
 * Env: GH_BENCH_SECONDS (duration), GH_BENCH_CONNS (connections, default 100).
 */
#include "bench_common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define MSG 32
#define HIST_US 1000000 /* latency histogram: 1 µs buckets up to 1 s, then one overflow */

static int nconn = 100;
static double seconds = 3.0;

/* ---- server process ---------------------------------------------------------- */

static int open_conns;

static void *serve(void *arg) {
    int fd = (int)(intptr_t)arg;
    char buf[4096];
    for (;;) {
        ssize_t n = gh_read(fd, buf, sizeof buf, GH_FOREVER);
        if (n <= 0 || gh_write(fd, buf, (size_t)n, GH_FOREVER) != n) break;
    }
    gh_close(fd);
    open_conns--;
    return NULL;
}

/* Accepts exactly `nconn` connections, serves them until they close, exits. */
static int server_main(int lfd) {
    gh_spawn_options opts = {64 * 1024, NULL};
    for (int i = 0; i < nconn; i++) {
        int fd = gh_accept(lfd, NULL, NULL, 30.0);
        if (fd < 0) {
            fprintf(stderr, "echo bench server: accept: %s\n", gh_strerror(fd));
            return 1;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        open_conns++;
        if (gh_spawn_ex(NULL, serve, (void *)(intptr_t)fd, &opts) != GH_OK) return 1;
    }
    gh_close(lfd);
    while (open_conns > 0) gh_sleep(0.01);
    return gh_hub_destroy() == GH_OK ? 0 : 1;
}

/* ---- client process ---------------------------------------------------------- */

static int port;
static double deadline;
static unsigned *hist; /* [HIST_US + 1] */
static long requests, errors;

static void *client(void *arg) {
    int id = (int)(intptr_t)arg;
    unsigned char out[MSG], in[MSG];
    struct sockaddr_in addr;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc = gh_connect(fd, (struct sockaddr *)&addr, sizeof addr, 30.0);
    if (rc != GH_OK) {
        fprintf(stderr, "echo bench client: connect: %s\n", gh_strerror(rc));
        errors++;
        gh_close(fd);
        return NULL;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    for (unsigned r = 0;; r++) {
        double t0 = bench_now();
        if (t0 >= deadline) break;
        for (int i = 0; i < MSG; i++) out[i] = (unsigned char)(id * 7 + r * 13 + i);
        if (gh_write(fd, out, MSG, 30.0) != MSG) goto fail;
        for (size_t got = 0; got < MSG;) {
            ssize_t n = gh_read(fd, in + got, MSG - got, 30.0);
            if (n <= 0) goto fail;
            got += (size_t)n;
        }
        if (memcmp(in, out, MSG) != 0) goto fail;
        long us = (long)((bench_now() - t0) * 1e6);
        hist[us < HIST_US ? us : HIST_US]++;
        requests++;
    }
    gh_close(fd);
    return NULL;
fail:
    errors++;
    gh_close(fd);
    return NULL;
}

static double percentile(double p) {
    long want = (long)(p * (requests - 1)), seen = 0;
    for (long us = 0; us <= HIST_US; us++) {
        seen += hist[us];
        if (seen > want) return (double)us;
    }
    return (double)HIST_US;
}

static int client_main(void) {
    gh_greenlet *gs = calloc((size_t)nconn, sizeof *gs);
    gh_spawn_options opts = {64 * 1024, NULL};
    hist = calloc(HIST_US + 1, sizeof *hist);
    if (!gs || !hist) return 1;
    double t0 = bench_now();
    deadline = t0 + seconds;
    for (int i = 0; i < nconn; i++) gh_spawn_ex(&gs[i], client, (void *)(intptr_t)i, &opts);
    gh_joinall(gs, (size_t)nconn, seconds + 60, NULL);
    double elapsed = bench_now() - t0;
    for (int i = 0; i < nconn; i++) gh_release(gs[i]);
    char name[64];
    snprintf(name, sizeof name, "echo, %d conns x %d B requests", nconn, MSG);
    printf("%-34s %9.0f requests/s  (p50 %.0f us, p99 %.0f us; %ld requests in %.1f s)\n", name,
           requests / elapsed, percentile(0.50), percentile(0.99), requests, elapsed);
    if (errors) printf("echo: %ld connection(s) failed or echoed wrong bytes\n", errors);
    free(gs);
    free(hist);
    return gh_hub_destroy() == GH_OK && errors == 0 ? 0 : 1;
}

/* ---- parent: listen, fork both, wait ---------------------------------------- */

static int run_child(pid_t pid, const char *what) {
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
    fprintf(stderr, "echo bench: the %s process failed (status %d)\n", what, status);
    return 1;
}

int main(void) {
    const char *s = getenv("GH_BENCH_SECONDS");
    if (s && atof(s) > 0) seconds = atof(s);
    s = getenv("GH_BENCH_CONNS");
    if (s && atoi(s) > 0) nconn = atoi(s);

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    /* The listening socket is made before forking, so the client knows the port and
     * its connects queue in the backlog even if the server starts later. */
    struct sockaddr_in addr;
    socklen_t len = sizeof addr;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(lfd, SOMAXCONN) != 0 ||
        getsockname(lfd, (struct sockaddr *)&addr, &len) != 0) {
        perror("echo bench: listen");
        return 1;
    }
    port = ntohs(addr.sin_port);
    fflush(stdout);

    pid_t server = fork();
    if (server == 0) _exit(server_main(lfd));
    close(lfd);
    pid_t client_pid = fork();
    if (client_pid == 0) {
        int rc = client_main();
        fflush(stdout);
        _exit(rc);
    }
    if (server < 0 || client_pid < 0) {
        perror("echo bench: fork");
        return 1;
    }
    int bad = run_child(client_pid, "client");
    bad |= run_child(server, "server");
    return bad;
}

/* echo_multicore.c — requests/s of a multicore echo server (one thread and hub per
 * server thread, each on its own SO_REUSEPORT listener, a greenlet per connection, as
 * examples-c/echo_multicore.c) with 1 and with 2 server threads. The server runs in a
 * forked process; the load client here is one greenhub thread with 100 connections,
 * each a greenlet doing 64-byte request/response round trips for GH_BENCH_SECONDS
 * (default 1) seconds. Figures only. */
#include "bench_common.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define CONNS 100
#define MSG 64

/* ---- the server (in the forked process) ---- */

static void *conn(void *arg) {
    int fd = (int)(intptr_t)arg;
    char buf[4096];
    for (;;) {
        ssize_t n = gh_read(fd, buf, sizeof buf, GH_FOREVER);
        if (n <= 0 || gh_write(fd, buf, (size_t)n, GH_FOREVER) != n) break;
    }
    gh_close(fd);
    return NULL;
}
static void *server_thread(void *arg) {
    int lfd = (int)(intptr_t)arg;
    for (;;) {
        int c = gh_accept(lfd, NULL, NULL, GH_FOREVER), one = 1;
        if (c < 0) break;
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        gh_spawn(NULL, conn, (void *)(intptr_t)c);
    }
    return NULL;
}
static int listener(int port) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 1024) != 0) return -1;
    return fd;
}
/* Forks a server with `threads` threads; returns its pid, *port its port. */
static pid_t start_server(int threads, int *port) {
    int p[2];
    pid_t pid;
    if (pipe(p) != 0) return -1;
    pid = fork();
    if (pid == 0) {
        int fds[16], prt = 0;
        pthread_t t;
        for (int i = 0; i < threads; i++) {
            struct sockaddr_in a;
            socklen_t len = sizeof a;
            fds[i] = listener(prt);
            if (fds[i] < 0) _exit(1);
            getsockname(fds[i], (struct sockaddr *)&a, &len);
            prt = ntohs(a.sin_port);
        }
        for (int i = 0; i < threads; i++)
            pthread_create(&t, NULL, server_thread, (void *)(intptr_t)fds[i]);
        if (write(p[1], &prt, sizeof prt) != (ssize_t)sizeof prt) _exit(1);
        for (;;) pause();
    }
    close(p[1]);
    if (read(p[0], port, sizeof *port) != (ssize_t)sizeof *port) pid = -1;
    close(p[0]);
    return pid;
}

/* ---- the load client ---- */

static int client_port;
static double deadline;
static long requests;
static int errors;

static void *load(void *arg) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)client_port)};
    char msg[MSG], back[MSG];
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    (void)arg;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    memset(msg, 'x', sizeof msg);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (gh_connect(fd, (struct sockaddr *)&a, sizeof a, 5) != GH_OK) {
        errors++;
        gh_close(fd);
        return NULL;
    }
    while (bench_now() < deadline) {
        size_t got = 0;
        if (gh_write(fd, msg, MSG, 5) != MSG) { errors++; break; }
        while (got < MSG) {
            ssize_t n = gh_read(fd, back + got, MSG - got, 5);
            if (n <= 0) { errors++; goto out; }
            got += (size_t)n;
        }
        requests++;
    }
out:
    gh_close(fd);
    return NULL;
}

static double measure(int threads, double seconds) {
    gh_greenlet g[CONNS];
    int status;
    pid_t pid = start_server(threads, &client_port);
    double t0;
    if (pid < 0) return -1;
    requests = 0;
    errors = 0;
    t0 = bench_now();
    deadline = t0 + seconds;
    for (int i = 0; i < CONNS; i++) gh_spawn(&g[i], load, NULL);
    gh_joinall(g, CONNS, GH_FOREVER, NULL);
    t0 = bench_now() - t0;
    for (int i = 0; i < CONNS; i++) gh_release(g[i]);
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return errors ? -1 : requests / t0;
}

int main(void) {
    const char *s = getenv("GH_BENCH_SECONDS");
    double seconds = s ? atof(s) : 1.0, r1, r2;
    signal(SIGPIPE, SIG_IGN);
    r1 = measure(1, seconds);
    r2 = measure(2, seconds);
    printf("echo_multicore, %d connections, %d-byte requests (backend %s)\n", CONNS, MSG,
           gh_hub_backend());
    printf("  1 server thread : %10.0f requests/s\n", r1);
    printf("  2 server threads: %10.0f requests/s  (x%.2f)\n", r2, r1 > 0 ? r2 / r1 : 0.0);
    gh_hub_destroy();
    return r1 > 0 && r2 > 0 ? 0 : 1;
}

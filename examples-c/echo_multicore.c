/* echo_multicore.c — a TCP echo server using every core: one thread and one hub per
 * core, each accepting on its own SO_REUSEPORT listener bound to the same port (the
 * kernel spreads connections among them), and a greenlet per connection echoing until
 * the peer closes — gevent's StreamServer, times N, with no lock shared between hubs.
 *
 * Usage: echo_multicore [--threads N] [--port P] [--once N]
 *   --threads N  server threads (default: the number of cores)
 *   --port P     port on 127.0.0.1 (default 0: the kernel picks one; printed as
 *                "listening on 127.0.0.1:PORT with N threads")
 *   --once N     smoke mode: a built-in client thread opens N connections, each sends
 *                a line and checks the echo; then the server stops every hub (through
 *                gh_hub_call_threadsafe) and exits 0. Without it, runs until killed.
 *
 * The test suite smoke-runs it with the arguments below:
 */
// smoke: --threads 2 --once 20
#include <greenhub.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_THREADS 256

struct server {
    int fd;                /* this thread's SO_REUSEPORT listener */
    gh_hub_ref hub;        /* this thread's hub, for gh_hub_call_threadsafe */
    atomic_int served;     /* connections accepted by this thread */
    pthread_t thread;
};

static struct server servers[MAX_THREADS];
static int nthreads;
static pthread_barrier_t ready;

static int listen_on(int port) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0) return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 1024) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int bound_port(int fd) {
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    return getsockname(fd, (struct sockaddr *)&a, &len) == 0 ? ntohs(a.sin_port) : -1;
}

/* One connection: echo until EOF or error. */
static void *handle(void *arg) {
    int fd = (int)(intptr_t)arg;
    char buf[4096];
    for (;;) {
        ssize_t n = gh_read(fd, buf, sizeof buf, GH_FOREVER);
        if (n <= 0 || gh_write(fd, buf, (size_t)n, GH_FOREVER) != n) break;
    }
    gh_close(fd);
    return NULL;
}

/* Runs in a server thread's hub (queued by gh_hub_call_threadsafe): closing the
 * listener wakes its acceptor with GH_ECLOSED. */
static void stop_listener(void *arg) {
    gh_close(((struct server *)arg)->fd);
}

static void *serve(void *arg) {
    struct server *s = (struct server *)arg;
    s->hub = gh_hub_current();
    pthread_barrier_wait(&ready);
    for (;;) {
        int c = gh_accept(s->fd, NULL, NULL, GH_FOREVER);
        if (c < 0) break; /* GH_ECLOSED: stopped */
        atomic_fetch_add(&s->served, 1);
        if (gh_spawn(NULL, handle, (void *)(intptr_t)c) != GH_OK) gh_close(c);
    }
    gh_hub_run(); /* let the open connections finish */
    gh_hub_destroy();
    return NULL;
}

/* Smoke mode's client: n sequential connections, one line each, echo checked. */
static int client(int port, int n) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < n; i++) {
        char msg[32], back[32];
        int fd = socket(AF_INET, SOCK_STREAM, 0), len = snprintf(msg, sizeof msg, "hello %d\n", i);
        ssize_t got = 0;
        if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) return -1;
        if (write(fd, msg, (size_t)len) != len) return -1;
        while (got < len) {
            ssize_t r = read(fd, back + got, (size_t)(len - got));
            if (r <= 0) return -1;
            got += r;
        }
        close(fd);
        if (memcmp(msg, back, (size_t)len) != 0) return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    int port = 0, once = -1, rc = 0;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    nthreads = cores > 0 ? (int)cores : 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) nthreads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--once") == 0 && i + 1 < argc) once = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--threads N] [--port P] [--once N]\n", argv[0]);
            return 2;
        }
    }
    if (nthreads < 1 || nthreads > MAX_THREADS) {
        fprintf(stderr, "--threads must be 1..%d\n", MAX_THREADS);
        return 2;
    }
    for (int i = 0; i < nthreads; i++) {
        servers[i].fd = listen_on(port);
        if (servers[i].fd < 0) {
            perror("listen");
            return 1;
        }
        if (port == 0) port = bound_port(servers[i].fd); /* the others join this port */
    }
    printf("listening on 127.0.0.1:%d with %d threads\n", port, nthreads);
    fflush(stdout);
    pthread_barrier_init(&ready, NULL, (unsigned)nthreads + 1);
    for (int i = 0; i < nthreads; i++) pthread_create(&servers[i].thread, NULL, serve, &servers[i]);
    pthread_barrier_wait(&ready);
    if (once < 0) {
        for (int i = 0; i < nthreads; i++) pthread_join(servers[i].thread, NULL);
        return 0;
    }
    rc = client(port, once);
    for (int i = 0; i < nthreads; i++) gh_hub_call_threadsafe(servers[i].hub, stop_listener, &servers[i]);
    int total = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(servers[i].thread, NULL);
        printf("thread %d served %d connections\n", i, atomic_load(&servers[i].served));
        total += atomic_load(&servers[i].served);
    }
    pthread_barrier_destroy(&ready);
    if (rc != 0 || total != once) {
        fprintf(stderr, "echo_multicore: client %s, %d of %d connections served\n",
                rc ? "failed" : "ok", total, once);
        return 1;
    }
    return 0;
}

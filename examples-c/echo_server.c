/* echo_server.c — a TCP echo server with one greenlet per connection, the gevent way:
 *
 *   server = StreamServer(('127.0.0.1', port), handle)   # handle(sock): echo until EOF
 *
 * The main greenlet accepts connections with gh_accept and spawns a greenlet for each;
 * every connection greenlet loops gh_read -> gh_write until its peer closes, then
 * gh_close. Each of them looks like plain blocking code, yet they all share one thread:
 * whenever one would block, the hub runs another.
 *
 * Usage: echo_server [--port P] [--once N]
 *   --port P   port to listen on, on 127.0.0.1 (default 0: let the kernel pick one).
 *              The chosen address is printed on stdout as "listening on 127.0.0.1:PORT".
 *   --once N   serve N connections, wait until they are all closed, then exit 0
 *              (for tests; N = 0 exits right after binding). Without it, the server
 *              runs until SIGINT or SIGTERM.
 *
 * Try it: ./echo_server --port 7000 &  then  ./echo_client --port 7000
 *
 * The test suite smoke-runs it with the arguments below (bind, print, exit at once):
 */
// smoke: --once 0
#include <greenhub.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

/* Set by the signal handler; the loops below check it at least every IDLE_TICK
 * seconds. (Signal watchers are not built yet: a flag plus short timeouts is the
 * portable, async-signal-safe way.) */
static volatile sig_atomic_t stopping;
static void on_signal(int sig) {
    (void)sig;
    stopping = 1;
}

#define ACCEPT_TICK 0.2 /* seconds: how often the accept loop looks at `stopping` */
#define IDLE_TICK 1.0   /* seconds: how often an idle connection does */
#define WRITE_TIMEOUT 10.0

static int active;        /* connection greenlets alive */
static long served;       /* connections served and closed */
static gh_event all_done; /* set when `active` drops to 0 */

/* One connection: echo everything back until the peer closes (gh_read returns 0),
 * an error occurs, or the server is stopping (checked between reads). */
static void *handle_connection(void *arg) {
    int fd = (int)(intptr_t)arg;
    char buf[16 * 1024];

    while (!stopping) {
        ssize_t n = gh_read(fd, buf, sizeof buf, IDLE_TICK);
        if (n == GH_ETIMEDOUT) continue; /* idle: look at `stopping` again */
        if (n <= 0) break; /* 0: the peer closed; < 0: an error (reset, ...) */
        /* gh_write sends all n bytes, waiting whenever the socket buffer is full
         * (bounded: a peer that never reads must not hold the server forever). */
        if (gh_write(fd, buf, (size_t)n, WRITE_TIMEOUT) != n) break;
    }
    gh_close(fd);
    served++;
    if (--active == 0) gh_event_set(all_done);
    return NULL;
}

/* Raises the soft fd limit to the hard one, so that thousands of connections fit. */
static void raise_fd_limit(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* socket + bind 127.0.0.1:port + listen; returns the fd and stores the real port. */
static int listen_on(int port, int *bound_port) {
    struct sockaddr_in addr;
    socklen_t len = sizeof addr;
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, SOMAXCONN) != 0 ||
        getsockname(fd, (struct sockaddr *)&addr, &len) != 0) {
        close(fd);
        return -1;
    }
    *bound_port = ntohs(addr.sin_port);
    return fd;
}

static void usage(void) {
    fprintf(stderr, "usage: echo_server [--port P] [--once N]\n");
    exit(2);
}

int main(int argc, char **argv) {
    int port = 0;
    long once = -1; /* -1: serve until a signal */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--once") == 0 && i + 1 < argc) once = atol(argv[++i]);
        else usage();
    }
    if (port < 0 || port > 65535 || once < -1) usage();

    /* No SA_RESTART: a signal should cut short what the thread is doing. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    raise_fd_limit();

    int bound = 0;
    int lfd = listen_on(port, &bound);
    if (lfd < 0) {
        perror("echo_server: bind/listen 127.0.0.1");
        return 1;
    }
    printf("listening on 127.0.0.1:%d\n", bound);
    fflush(stdout); /* a parent reading our stdout through a pipe needs it now */

    if (gh_event_new(&all_done) != GH_OK) return 1;
    gh_event_set(all_done); /* nothing to wait for yet */

    /* Accept loop, in the main greenlet. The short timeout lets it notice a signal. */
    long accepted = 0;
    int rc = GH_OK;
    while (!stopping && (once < 0 || accepted < once)) {
        int fd = gh_accept(lfd, NULL, NULL, ACCEPT_TICK);
        if (fd == GH_ETIMEDOUT || fd == GH_EINTR) continue;
        if (fd == -EMFILE || fd == -ENFILE) {
            /* Out of fds: wait for connections to end rather than spin. */
            fprintf(stderr, "echo_server: accept: %s\n", gh_strerror(fd));
            gh_sleep(0.1);
            continue;
        }
        if (fd < 0) {
            fprintf(stderr, "echo_server: accept: %s\n", gh_strerror(fd));
            rc = fd;
            break;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        /* A detached greenlet (no handle kept) with a small stack: only the pages it
         * touches cost memory, but 64 KiB keeps 10,000 connections cheap. */
        gh_spawn_options opts = {64 * 1024, "connection"};
        if (gh_spawn_ex(NULL, handle_connection, (void *)(intptr_t)fd, &opts) != GH_OK) {
            gh_close(fd);
            continue;
        }
        accepted++;
        if (active++ == 0) gh_event_clear(all_done);
    }
    gh_close(lfd);

    /* Let the connections finish: with --once, until their peers close them; after a
     * signal, each notices `stopping` within IDLE_TICK (or WRITE_TIMEOUT). */
    while (gh_event_wait(all_done, ACCEPT_TICK) == GH_ETIMEDOUT) {
    }
    fprintf(stderr, "echo_server: %ld connection(s) served%s\n", served,
            stopping ? " (stopped by a signal)" : "");

    gh_event_close(all_done);
    if (gh_hub_destroy() != GH_OK) return 1;
    return rc == GH_OK ? 0 : 1;
}

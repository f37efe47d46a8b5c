/* echo_server.c — a TCP echo server on gh_server, the gevent way:
 *
 *   server = StreamServer(('127.0.0.1', port), handle)   # handle(sock): echo until EOF
 *   server.serve_forever()
 *
 * gh_server_new listens; gh_server_start runs the accept loop in a greenlet of its own,
 * and every accepted connection gets a greenlet running handle_connection(): a plain
 * blocking-style loop gh_recv -> gh_send until the peer closes. They all share one
 * thread: whenever one would block, the hub runs another. The server closes each
 * connection's fd when its handler returns, caps the handlers running at once
 * (max_handlers: accepting pauses, connections wait in the backlog), and backs off
 * when the process runs out of fds instead of spinning.
 *
 * The main greenlet waits for SIGINT/SIGTERM (signal watchers, run by the hub) — or,
 * with --once, for the N-th connection to end — then gh_server_stop(server, 5):
 * the listener closes, connections still open get 5 s to finish, the rest are killed
 * (their gh_recv returns GH_ECANCELED and the handler returns).
 *
 * Usage: echo_server [--port P] [--once N]
 *   --port P   port to listen on, on 127.0.0.1 (default 0: let the kernel pick one).
 *              The address is printed on stdout as "listening on 127.0.0.1:PORT".
 *   --once N   serve N connections, wait until they are all closed, then exit 0
 *              (for tests; N = 0 exits right after binding).
 *
 * Try it: ./echo_server --port 7000 &  then  ./echo_client --port 7000
 *
 * The test suite smoke-runs it with the arguments below (bind, print, exit at once):
 */
// smoke: --once 0
#include <greenhub.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#define IDLE_TIMEOUT 60.0 /* seconds a connection may stay silent */
#define STOP_TIMEOUT 5.0  /* seconds open connections get when the server stops */

static long once = -1; /* --once N; -1: until a signal */
static long served;    /* connections whose handler returned */
static gh_event stop;  /* set by a signal, or by the N-th connection with --once */

//! [handler]
/* One connection: echo everything back until the peer closes (gh_recv returns 0), an
 * error, IDLE_TIMEOUT of silence, or the server kills us at stop (GH_ECANCELED). */
static void handle_connection(gh_server server, int fd, void *arg) {
    char buf[16 * 1024];
    ssize_t n;
    int one = 1;
    (void)server;
    (void)arg;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    while ((n = gh_recv(fd, buf, sizeof buf, 0, IDLE_TIMEOUT)) > 0)
        if (gh_send(fd, buf, (size_t)n, 0, IDLE_TIMEOUT) != n) break;
    if (++served == once) gh_event_set(stop);
    /* returning is all: the server closes fd */
}
//! [handler]

//! [on_signal]
/* A signal watcher's callback runs in the hub: it must not block; setting an event
 * is fine. */
static void on_signal(gh_watcher w, int revents, void *arg) {
    (void)w;
    (void)revents;
    (void)arg;
    gh_event_set(stop);
}
//! [on_signal]

/* Raises the soft fd limit to the hard one, so that thousands of connections fit. */
static void raise_fd_limit(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void usage(void) {
    fprintf(stderr, "usage: echo_server [--port P] [--once N]\n");
    exit(2);
}

int main(int argc, char **argv) {
    int port = 0, rc;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--once") == 0 && i + 1 < argc) once = atol(argv[++i]);
        else usage();
    }
    if (port < 0 || port > 65535 || once < -1) usage();
    raise_fd_limit();

    //! [main]
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    /* 64 KiB stacks (only touched pages cost memory) keep 10,000 connections cheap. */
    gh_server_options opts = {.max_handlers = 10000, .stack_size = 64 * 1024};
    gh_server server;
    if ((rc = gh_server_new(&server, addr, handle_connection, NULL, &opts)) != GH_OK) {
        fprintf(stderr, "echo_server: listen on %s: %s\n", addr, gh_strerror(rc));
        return 1;
    }
    gh_local_address(gh_server_fd(server), addr, sizeof addr); /* the port if it was 0 */
    printf("listening on %s\n", addr);
    fflush(stdout); /* a parent reading our stdout through a pipe needs it now */

    gh_watcher sigint, sigterm;
    if (gh_event_new(&stop) != GH_OK || gh_signal_new(&sigint, SIGINT) != GH_OK ||
        gh_signal_new(&sigterm, SIGTERM) != GH_OK)
        return 1;
    gh_watcher_start(sigint, on_signal, NULL);
    gh_watcher_start(sigterm, on_signal, NULL);
    /* The signal watchers must not keep the loop alive on their own. */
    gh_watcher_ref(sigint, 0);
    gh_watcher_ref(sigterm, 0);

    if (once != 0) {
        gh_server_start(server);
        gh_event_wait(stop, GH_FOREVER); /* the hub serves meanwhile */
    }
    int killed = gh_server_stop(server, STOP_TIMEOUT);
    gh_server_counters c;
    gh_server_stats(server, &c);
    fprintf(stderr, "echo_server: %llu connection(s) served, %d killed at stop\n",
            (unsigned long long)c.completed, killed > 0 ? killed : 0);

    //! [main]
    gh_server_close(server);
    gh_watcher_close(sigint);
    gh_watcher_close(sigterm);
    gh_event_close(stop);
    return gh_hub_destroy() == GH_OK && killed >= 0 ? 0 : 1;
}

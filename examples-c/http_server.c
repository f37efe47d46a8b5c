/* http_server.c — an HTTP/1.1 keep-alive "hello" server on gh_server: one greenlet per
 * connection, written as straight-line blocking code (gevent's StreamServer + a handler).
 *
 * Usage: http_server [ADDRESS]        (default 127.0.0.1:8080; ":0" picks a port)
 *   Prints "listening on ADDRESS"; SIGINT/SIGTERM stops it gracefully: the listener
 *   closes, requests in flight get 5 s, then the rest are killed; exit 0.
 * Try:  ./http_server :8080 &  wrk -c1000 -d10s http://127.0.0.1:8080/
 * scripts/http_smoke.sh runs it under wrk -c1000 and stops it with SIGTERM.
 */
#include <greenhub.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>

//! [handle]
static const char REPLY[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                            "Content-Length: 13\r\n\r\nHello, world\n";

/* One connection: read a request head, answer, repeat (keep-alive); return when the
 * client closes, idles 30 s, sends a head over 8 KiB, or the server stops us. */
static void handle(gh_server server, int fd, void *arg) {
    char head[8192];
    ssize_t n;
    gh_stream in; /* a buffered reader: a pipelined next request stays in it */
    (void)server, (void)arg;
    if (gh_stream_new(&in, fd, sizeof head) != GH_OK) return;
    while ((n = gh_stream_read_until(in, "\r\n\r\n", 4, head, sizeof head, 30)) > 0) {
        int last = memmem(head, (size_t)n, "Connection: close", 17) != NULL;
        if (gh_send(fd, REPLY, sizeof REPLY - 1, 0, 30) < 0 || last) break;
    } /* n: 0 closed, GH_ETIMEDOUT idle, GH_EMSGSIZE too long, GH_ECANCELED stopped */
    gh_stream_close(in);
} /* the server closes fd */
//! [handle]

static void on_signal(gh_watcher w, int revents, void *stop) {
    (void)w, (void)revents;
    gh_event_set(*(gh_event *)stop);
}

//! [main]
int main(int argc, char **argv) {
    const char *addr = argc > 1 ? argv[1] : "127.0.0.1:8080";
    gh_server_options opts = {.max_handlers = 20000, .stack_size = 64 * 1024};
    gh_server server;
    gh_event stop;
    gh_watcher sig[2];
    char name[128];
    int rc = gh_server_new(&server, addr, handle, NULL, &opts);
    if (rc != GH_OK) return fprintf(stderr, "http_server: %s: %s\n", addr, gh_strerror(rc)), 1;
    gh_local_address(gh_server_fd(server), name, sizeof name);
    printf("listening on %s\n", name), fflush(stdout);
    gh_event_new(&stop);
    for (int i = 0; i < 2; i++) {
        gh_signal_new(&sig[i], i ? SIGTERM : SIGINT);
        gh_watcher_start(sig[i], on_signal, &stop);
    }
    gh_server_start(server);
    gh_event_wait(stop, GH_FOREVER); /* serve until SIGINT/SIGTERM */
    int killed = gh_server_stop(server, 5.0);
    gh_server_counters c;
    gh_server_stats(server, &c);
    fprintf(stderr, "http_server: %llu connections, %d killed at stop\n",
            (unsigned long long)c.accepted, killed);
    gh_server_close(server);
    return gh_hub_destroy() == GH_OK && killed >= 0 ? 0 : 1;
}
//! [main]

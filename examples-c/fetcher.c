/* fetcher.c — fetch several HTTP resources at once, each under a deadline (the guide's
 * "A concurrent fetcher with timeouts"; gevent's classic `joinall([spawn(fetch, url)
 * for url in urls], timeout=...)`).
 *
 * Usage: fetcher [--timeout S] [HOST:PORT/PATH ...]
 *   Fetches each resource with HTTP/1.0 in a greenlet of its own, each under a deadline
 *   of S seconds (default 0.5) covering its connect, its request and its reads, and
 *   prints one line per resource: the status line and the size, or the error.
 *   With no resources it starts a local test server first (a greenlet of the same
 *   thread) and fetches four from it: one fast, one slow, one that never answers (so
 *   its fetch times out) and one from a port nobody listens on (refused); it exits 1
 *   unless each ends that way.
 *
 * The test suite smoke-runs it with no arguments:
 */
// smoke:
#include <greenhub.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//! [fetch]
struct fetch {
    char address[128]; /* "host:port" */
    const char *path;  /* "/index.html" */
    double timeout;    /* seconds for the whole fetch */
    int rc;            /* GH_OK or the error */
    size_t bytes;      /* bytes received */
    char status[64];   /* the response's first line */
};

/* One fetch, written as blocking code: it runs in a greenlet of its own, and each call
 * that would block parks this greenlet only. */
static void *fetch(void *arg) {
    struct fetch *f = arg;
    char buf[4096];
    size_t sent;
    ssize_t n;
    gh_timeout deadline;
    gh_timeout_start(&deadline, f->timeout); /* one deadline over every call below */
    int fd = gh_connect_to(f->address, GH_FOREVER);
    if (fd < 0) {
        f->rc = fd;
        goto done;
    }
    int len = snprintf(buf, sizeof buf, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", f->path, f->address);
    f->rc = gh_write_all(fd, buf, (size_t)len, GH_FOREVER, &sent);
    while (f->rc == GH_OK && (n = gh_recv(fd, buf, sizeof buf, 0, GH_FOREVER)) != 0) {
        if (n < 0) {
            f->rc = (int)n; /* GH_ETIMEDOUT once the deadline has passed */
            break;
        }
        if (f->bytes == 0) /* keep the status line */
            snprintf(f->status, sizeof f->status, "%.*s", (int)strcspn(buf, "\r\n"), buf);
        f->bytes += (size_t)n;
    }
    gh_close(fd);
done:
    gh_timeout_cancel(deadline);
    return f;
}
//! [fetch]

/* ---- the local test server (no arguments): /fast answers at once, /slow after
 * 0.2 s, /stuck never (its handler is killed when the server stops) */
static void serve(gh_server server, int fd, void *arg) {
    char head[1024], reply[256];
    gh_stream in;
    size_t sent;
    (void)server, (void)arg;
    if (gh_stream_new(&in, fd, sizeof head) != GH_OK) return;
    ssize_t n = gh_stream_read_until(in, "\r\n\r\n", 4, head, sizeof head - 1, 5.0);
    gh_stream_close(in);
    if (n <= 0) return;
    head[n] = 0;
    if (strncmp(head, "GET /slow ", 10) == 0) gh_sleep(0.2);
    if (strncmp(head, "GET /stuck ", 11) == 0) gh_sleep(60); /* until the server stops */
    int len = snprintf(reply, sizeof reply, "HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nhello\n");
    gh_write_all(fd, reply, (size_t)len, 5.0, &sent);
}

int main(int argc, char **argv) {
    struct fetch f[64];
    gh_greenlet g[64];
    double timeout = 0.5;
    int n = 0, self_test = 0;
    gh_server server = {0};
    memset(f, 0, sizeof f);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
            timeout = atof(argv[++i]);
        } else if (n < 64 && argv[i][0] != '-') {
            const char *slash = strchr(argv[i], '/');
            size_t hl = slash ? (size_t)(slash - argv[i]) : strlen(argv[i]);
            snprintf(f[n].address, sizeof f[n].address, "%.*s", (int)hl, argv[i]);
            f[n++].path = slash ? slash : "/";
        } else {
            fprintf(stderr, "usage: fetcher [--timeout S] [HOST:PORT/PATH ...]\n");
            return 2;
        }
    }
    if (n == 0) { /* the self-test: a local server in this thread, four resources */
        char addr[64];
        static const char *paths[] = {"/fast", "/slow", "/stuck", "/refused"};
        if (gh_server_new(&server, "127.0.0.1:0", serve, NULL, NULL) != GH_OK) return 1;
        gh_server_start(server);
        gh_local_address(gh_server_fd(server), addr, sizeof addr);
        for (n = 0; n < 4; n++) {
            snprintf(f[n].address, sizeof f[n].address, "%s", n == 3 ? "127.0.0.1:1" : addr);
            f[n].path = paths[n];
        }
        self_test = 1;
    }

    //! [main]
    for (int i = 0; i < n; i++) {
        f[i].timeout = timeout;
        GH_SPAWN(&g[i], fetch, &f[i]); /* all start at once */
    }
    size_t done = 0;
    gh_joinall(g, (size_t)n, timeout + 1.0, &done); /* main waits; the hub runs them */
    for (int i = 0; i < n; i++) {
        if (f[i].rc == GH_OK)
            printf("%s%s: %s, %zu bytes\n", f[i].address, f[i].path, f[i].status, f[i].bytes);
        else
            printf("%s%s: %s\n", f[i].address, f[i].path, gh_err_name(f[i].rc));
        gh_release(g[i]);
    }
    //! [main]

    int ok = done == (size_t)n;
    if (self_test) {
        gh_server_stop(server, 0.1); /* kills the /stuck handler */
        gh_server_close(server);
        ok = ok && f[0].rc == GH_OK && f[1].rc == GH_OK && f[2].rc == GH_ETIMEDOUT && f[3].rc < 0;
    }
    return gh_hub_destroy() == GH_OK && ok ? 0 : 1;
}

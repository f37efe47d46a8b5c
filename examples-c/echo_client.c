/* echo_client.c — a load client for echo_server.c: C connections at once, each a
 * greenlet that sends R messages of S bytes and checks every byte echoed back.
 *
 * Each greenlet is written as straight-line blocking code (connect, write, read until
 * the whole message is back, compare); gh_connect / gh_write / gh_read park only that
 * greenlet, so all C connections progress together on one thread.
 *
 * Usage: echo_client [--port P] [--connections C] [--requests R] [--size S]
 *                    [--spawn-server]
 *   --port P         the server's port on 127.0.0.1 (required unless --spawn-server)
 *   --connections C  concurrent connections (default 10)
 *   --requests R     messages per connection, one at a time (default 100)
 *   --size S         bytes per message (default 32; each is written whole before its
 *                    echo is read, so keep it within the loopback socket buffers)
 *   --spawn-server   fork+exec ./echo_server from this program's directory with
 *                    "--once C", read its port from its stdout, and check that it
 *                    exits 0 once every connection is closed (a self-contained test)
 * Prints requests/s and the p50/p99 round-trip latency; exits non-zero if any byte
 * came back wrong, any connection failed, or the spawned server failed.
 *
 * The test suite smoke-runs it with the arguments below:
 */
// smoke: --spawn-server --connections 20 --requests 50
#include <greenhub.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define IO_TIMEOUT 30.0 /* seconds: no single connect/read/write may take longer */

static int port, nconn = 10, nreq = 100;
static size_t msg_size = 32;

static double *latency; /* [nconn * nreq] seconds per round trip; 0 = not done */
static long completed, mismatches, failures;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The bytes of message `req` of connection `conn`: different for every message,
 * so an echo of the wrong message (or a shifted one) is caught. */
static void fill_message(unsigned char *buf, int conn, int req) {
    for (size_t i = 0; i < msg_size; i++) buf[i] = (unsigned char)(conn * 131 + req * 31 + i * 7 + 1);
}

/* One connection: connect, then R times: write a message, read it back, compare. */
static void *client(void *arg) {
    int id = (int)(intptr_t)arg;
    unsigned char *out = malloc(msg_size), *in = malloc(msg_size);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in addr;
    const char *what = NULL;
    ssize_t rc = 0;

    if (!out || !in || fd < 0) {
        what = "setup";
        rc = -errno;
        goto done;
    }
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    rc = gh_connect(fd, (struct sockaddr *)&addr, sizeof addr, IO_TIMEOUT);
    if (rc != GH_OK) {
        what = "connect";
        goto done;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

    for (int r = 0; r < nreq; r++) {
        fill_message(out, id, r);
        double t0 = now();
        rc = gh_write(fd, out, msg_size, IO_TIMEOUT); /* all of it, or an error */
        if (rc != (ssize_t)msg_size) {
            what = "write";
            goto done;
        }
        /* TCP is a stream: the echo may come back in pieces. */
        for (size_t got = 0; got < msg_size; got += (size_t)rc) {
            rc = gh_read(fd, in + got, msg_size - got, IO_TIMEOUT);
            if (rc <= 0) {
                what = rc == 0 ? "read (server closed the connection)" : "read";
                goto done;
            }
        }
        latency[(size_t)id * nreq + r] = now() - t0;
        if (memcmp(in, out, msg_size) != 0) {
            size_t i = 0;
            while (in[i] == out[i]) i++;
            fprintf(stderr, "connection %d, request %d: byte %zu is %u, expected %u\n", id, r, i,
                    in[i], out[i]);
            mismatches++;
            break;
        }
        completed++;
    }
done:
    if (what) {
        fprintf(stderr, "connection %d: %s: %s\n", id, what, rc < 0 ? gh_strerror((int)rc) : "short");
        failures++;
    }
    if (fd >= 0) gh_close(fd);
    free(out);
    free(in);
    return NULL;
}

/* --spawn-server: runs ./echo_server (next to this program) with "--once C" and
 * reads "listening on 127.0.0.1:PORT" from its stdout. Returns its pid, or -1. */
static pid_t spawn_server(void) {
    char exe[PATH_MAX], once[32];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 32);
    if (n <= 0) return -1;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    strcpy(slash ? slash + 1 : exe, "echo_server");
    snprintf(once, sizeof once, "%d", nconn);

    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) return -1;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) { /* the child: stdout into the pipe, then exec the server */
        dup2(p[1], STDOUT_FILENO);
        execl(exe, "echo_server", "--port", "0", "--once", once, (char *)NULL);
        perror(exe);
        _exit(127);
    }
    close(p[1]);

    /* Read the first line cooperatively (gh_read also works on pipes). */
    char line[128];
    size_t len = 0;
    while (len < sizeof line - 1 && !memchr(line, '\n', len)) {
        ssize_t r = gh_read(p[0], line + len, sizeof line - 1 - len, 10.0);
        if (r <= 0) break;
        len += (size_t)r;
    }
    line[len] = 0;
    gh_close(p[0]);
    if (sscanf(line, "listening on 127.0.0.1:%d", &port) != 1) {
        fprintf(stderr, "echo_client: unexpected output from %s: \"%s\"\n", exe, line);
        kill(pid, SIGTERM);
        gh_waitpid(pid, NULL, 10.0);
        return -1;
    }
    return pid;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void usage(void) {
    fprintf(stderr, "usage: echo_client [--port P] [--connections C] [--requests R] [--size S] "
                    "[--spawn-server]\n");
    exit(2);
}

int main(int argc, char **argv) {
    int spawn = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--spawn-server") == 0) spawn = 1;
        else if (i + 1 >= argc) usage();
        else if (strcmp(argv[i], "--port") == 0) port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--connections") == 0) nconn = atoi(argv[++i]);
        else if (strcmp(argv[i], "--requests") == 0) nreq = atoi(argv[++i]);
        else if (strcmp(argv[i], "--size") == 0) msg_size = (size_t)atol(argv[++i]);
        else usage();
    }
    if (nconn < 1 || nreq < 0 || msg_size < 1 || (!spawn && (port < 1 || port > 65535))) usage();

    /* Many connections need many fds: raise the soft limit to the hard one. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    pid_t server = -1;
    if (spawn && (server = spawn_server()) < 0) return 1;

    latency = calloc((size_t)nconn * (nreq ? nreq : 1), sizeof *latency);
    gh_greenlet *gs = calloc((size_t)nconn, sizeof *gs);
    if (!latency || !gs) return 1;

    /* One greenlet per connection; small stacks (the buffers are malloc'd). */
    gh_spawn_options opts = {64 * 1024, "client"};
    double t0 = now();
    for (int i = 0; i < nconn; i++) {
        if (gh_spawn_ex(&gs[i], client, (void *)(intptr_t)i, &opts) != GH_OK) {
            fprintf(stderr, "echo_client: spawn failed\n");
            return 1;
        }
    }
    size_t done = 0;
    int rc = gh_joinall(gs, (size_t)nconn, 300.0, &done);
    double elapsed = now() - t0;
    if (rc != GH_OK) {
        fprintf(stderr, "echo_client: joinall: %s (%zu of %d done)\n", gh_err_name(rc), done, nconn);
        failures++;
    }
    for (int i = 0; i < nconn; i++) {
        gh_kill(gs[i], 5.0); /* a no-op for the finished ones */
        gh_release(gs[i]);
    }

    /* Latency percentiles over the round trips that completed. */
    size_t n = 0;
    for (size_t i = 0; i < (size_t)nconn * nreq; i++)
        if (latency[i] > 0) latency[n++] = latency[i];
    qsort(latency, n, sizeof *latency, cmp_double);
    double p50 = n ? latency[(n - 1) / 2] : 0, p99 = n ? latency[(size_t)((n - 1) * 0.99)] : 0;
    printf("%d connections x %d requests of %zu bytes: %ld round trips in %.3f s = %.0f requests/s, "
           "latency p50 %.1f us, p99 %.1f us\n",
           nconn, nreq, msg_size, completed, elapsed, completed / elapsed, p50 * 1e6, p99 * 1e6);
    if (mismatches || failures)
        printf("%ld mismatched echo(es), %ld failed connection(s)\n", mismatches, failures);

    /* The spawned server exits 0 by itself once its C connections are closed. */
    int server_ok = 1;
    if (server > 0) {
        int status = 0;
        int w = gh_waitpid(server, &status, 10.0);
        if (w == GH_ETIMEDOUT) {
            kill(server, SIGKILL);
            gh_waitpid(server, &status, GH_FOREVER);
        }
        server_ok = w == server && WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (!server_ok) fprintf(stderr, "echo_client: the server did not exit cleanly (%s)\n",
                                w < 0 ? gh_err_name(w) : "non-zero status");
    }

    free(latency);
    free(gs);
    if (gh_hub_destroy() != GH_OK) return 1;
    return mismatches == 0 && failures == 0 && server_ok ? 0 : 1;
}

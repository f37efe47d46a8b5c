/* icount.c — the workloads of benches/icount.sh: each does exactly N operations of one
 * kind, so that callgrind's instruction count (and strace's syscall count) for two values
 * of N, subtracted and divided by their difference, is the cost of one operation with the
 * setup and teardown cancelled out. It prints one line and times nothing.
 *
 * Usage: icount WORKLOAD N
 *   yield      two greenlets gh_sleep(0) to each other; N round trips (2N sleeps)
 *   handoff    two greenlets hand off through two semaphores (gh_sem_release wakes the
 *              other, gh_sem_acquire parks); N round trips (2N hand-offs)
 *   spawn      gh_spawn + run + gh_join + gh_release of an empty greenlet; N times
 *   pingpong   1 byte over a socketpair between two greenlets, gh_wait_read + read(2) /
 *              write(2); N round trips
 *   recvsend   the same with gh_recv / gh_send; N round trips
 *   echo       an echo server (gh_accept, a greenlet per connection: gh_read -> gh_write)
 *              and 10 client greenlets in this process over loopback TCP, each sending
 *              32-byte requests one at a time and reading the echo back; N requests in all
 *              (N a multiple of 10)
 *   timers     N one-shot timer watchers (gh_timer_new + gh_watcher_start, `after` drawn
 *              from a fixed sequence in [0, 1 ms): random order, all due by the time the
 *              loop runs), then gh_hub_run fires them; each callback gh_watcher_close-s
 *              its watcher and checks the deadline order. Per op: a timer's create,
 *              start, fire and close with N live timers (the 1M-timers workload's work,
 *              benches/peers/ev.c and greenhub.c, without its 1 s of real time)
 * Every workload checks its own counts and bytes; the exit status is non-zero on failure.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <greenhub.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "icount: " __VA_ARGS__);                                               \
            fputc('\n', stderr);                                                                   \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)
#define OK(call)                                                                                   \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        CHECK(rc_ == GH_OK, "%s: %s", #call, gh_err_name(rc_));                                    \
    } while (0)

static long rounds, done;

/* Spawns `fn` twice (args 0 and 1), joins both, checks they returned NULL. */
static void run_pair(gh_fn fn) {
    gh_greenlet a, b;
    void *ra = NULL, *rb = NULL;
    OK(gh_spawn(&a, fn, (void *)0));
    OK(gh_spawn(&b, fn, (void *)1));
    OK(gh_join(a, GH_FOREVER, &ra));
    OK(gh_join(b, GH_FOREVER, &rb));
    CHECK(!ra && !rb, "%s / %s", ra ? (char *)ra : "ok", rb ? (char *)rb : "ok");
    OK(gh_release(a));
    OK(gh_release(b));
}

/* ---- yield ------------------------------------------------------------------------ */

static void *yielder(void *arg) {
    (void)arg;
    for (long i = 0; i < rounds; i++) {
        if (gh_sleep(0) != GH_OK) return "sleep";
        done++;
    }
    return NULL;
}

/* ---- handoff ---------------------------------------------------------------------- */

static gh_sem sems[2];

/* Side 0 starts with the token (sems[0] = 1): acquire own, release the other's. */
static void *sem_side(void *arg) {
    int me = (int)(intptr_t)arg;
    for (long i = 0; i < rounds; i++) {
        if (gh_sem_acquire(sems[me], GH_FOREVER) != GH_OK) return "acquire";
        done++;
        if (gh_sem_release(sems[!me]) != GH_OK) return "release";
    }
    return NULL;
}

/* ---- spawn ------------------------------------------------------------------------ */

static void *empty(void *arg) { return arg; }

static void spawn_loop(long n) {
    for (long i = 0; i < n; i++) {
        gh_greenlet g;
        void *r = NULL;
        OK(gh_spawn(&g, empty, (void *)(intptr_t)(i + 1)));
        OK(gh_join(g, GH_FOREVER, &r));
        CHECK(r == (void *)(intptr_t)(i + 1), "spawn: wrong result");
        OK(gh_release(g));
        done++;
    }
}

/* ---- timers ------------------------------------------------------------------------ */

static double *timer_after;
static double timer_last = -1.0;

static void timer_fired(gh_watcher w, int revents, void *arg) {
    (void)revents;
    /* Started back to back, so deadlines order as the `after`s do, give or take the
     * clock's progress between two starts: checked to within 1 ms. */
    double a = timer_after[(intptr_t)arg];
    CHECK(a + 1e-3 >= timer_last, "timers: fired out of deadline order");
    if (a > timer_last) timer_last = a;
    OK(gh_watcher_close(w));
    done++;
}

static void timers(long n) {
    timer_after = malloc((size_t)n * sizeof *timer_after);
    CHECK(timer_after, "malloc");
    uint64_t x = 42;
    for (long i = 0; i < n; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        timer_after[i] = (double)(x >> 11) * 0x1.0p-53 * 1e-3;
    }
    for (long i = 0; i < n; i++) {
        gh_watcher w;
        OK(gh_timer_new(&w, timer_after[i], 0));
        OK(gh_watcher_start(w, timer_fired, (void *)(intptr_t)i));
    }
    OK(gh_hub_run());
    free(timer_after);
}

/* ---- pingpong / recvsend ----------------------------------------------------------- */

static int sv[2];

static void *pp_side(void *arg) {
    int me = (int)(intptr_t)arg, fd = sv[me];
    unsigned char c = 0, want = 0;
    for (long i = 0; i < rounds; i++) {
        if (me == 0 && write(fd, &c, 1) != 1) return "write";
        if (gh_wait_read(fd, GH_FOREVER) != GH_OK) return "wait";
        if (read(fd, &c, 1) != 1 || c != want) return "read";
        done++;
        if (me == 0) c = ++want;
        else {
            want++;
            if (write(fd, &c, 1) != 1) return "write";
        }
    }
    return NULL;
}

/* The natural API, as a server uses it: 1-byte messages received into a 64-byte buffer
 * (a short read tells greenhub the socket is drained, so the next gh_recv waits for
 * readiness before its syscall; a buffer filled exactly cannot tell). */
static void *rs_side(void *arg) {
    int me = (int)(intptr_t)arg, fd = sv[me];
    unsigned char c = 0, want = 0, buf[64];
    for (long i = 0; i < rounds; i++) {
        if (me == 0 && gh_send(fd, &c, 1, 0, GH_FOREVER) != 1) return "send";
        if (gh_recv(fd, buf, sizeof buf, 0, GH_FOREVER) != 1 || buf[0] != want) return "recv";
        c = buf[0];
        done++;
        if (me == 0) c = ++want;
        else {
            want++;
            if (gh_send(fd, &c, 1, 0, GH_FOREVER) != 1) return "send";
        }
    }
    return NULL;
}

static void pingpong(gh_fn fn) {
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
    run_pair(fn);
    close(sv[0]);
    close(sv[1]);
}

/* ---- echo -------------------------------------------------------------------------- */

#define ECHO_CONNS 10
#define ECHO_MSG 32

static int listen_fd, port;
static gh_greenlet servers[ECHO_CONNS];

static void *echo_serve(void *arg) {
    int fd = (int)(intptr_t)arg;
    char buf[4096];
    for (;;) {
        ssize_t n = gh_read(fd, buf, sizeof buf, GH_FOREVER);
        if (n == 0) break;
        if (n < 0) return "read";
        if (gh_write(fd, buf, (size_t)n, GH_FOREVER) != n) return "write";
    }
    gh_close(fd);
    return NULL;
}

static void *echo_acceptor(void *arg) {
    (void)arg;
    int one = 1;
    for (int i = 0; i < ECHO_CONNS; i++) {
        int fd = gh_accept(listen_fd, NULL, NULL, 30.0);
        if (fd < 0) return "accept";
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (gh_spawn(&servers[i], echo_serve, (void *)(intptr_t)fd) != GH_OK) return "spawn";
    }
    return NULL;
}

static void *echo_client(void *arg) {
    int id = (int)(intptr_t)arg, one = 1;
    unsigned char out[ECHO_MSG], in[ECHO_MSG];
    struct sockaddr_in addr;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return "socket";
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (gh_connect(fd, (struct sockaddr *)&addr, sizeof addr, 30.0) != GH_OK) return "connect";
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    for (long r = 0; r < rounds; r++) {
        for (int i = 0; i < ECHO_MSG; i++) out[i] = (unsigned char)(id * 7 + r * 13 + i);
        if (gh_write(fd, out, ECHO_MSG, 30.0) != ECHO_MSG) return "client write";
        for (size_t got = 0; got < ECHO_MSG;) {
            ssize_t n = gh_read(fd, in + got, ECHO_MSG - got, 30.0);
            if (n <= 0) return "client read";
            got += (size_t)n;
        }
        if (memcmp(in, out, ECHO_MSG) != 0) return "wrong echo";
        done++;
    }
    gh_close(fd);
    return NULL;
}

static void echo(long n) {
    struct sockaddr_in addr;
    socklen_t len = sizeof addr;
    gh_greenlet acceptor, clients[ECHO_CONNS];
    void *r = NULL;
    CHECK(n % ECHO_CONNS == 0, "echo: N must be a multiple of %d", ECHO_CONNS);
    rounds = n / ECHO_CONNS;
    listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(listen_fd >= 0 && bind(listen_fd, (struct sockaddr *)&addr, sizeof addr) == 0 &&
              listen(listen_fd, SOMAXCONN) == 0 &&
              getsockname(listen_fd, (struct sockaddr *)&addr, &len) == 0,
          "echo: listen");
    port = ntohs(addr.sin_port);
    OK(gh_spawn(&acceptor, echo_acceptor, NULL));
    for (int i = 0; i < ECHO_CONNS; i++) OK(gh_spawn(&clients[i], echo_client, (void *)(intptr_t)i));
    OK(gh_join(acceptor, GH_FOREVER, &r));
    CHECK(!r, "echo: %s", (char *)r);
    OK(gh_release(acceptor));
    for (int i = 0; i < ECHO_CONNS; i++) {
        OK(gh_join(clients[i], GH_FOREVER, &r));
        CHECK(!r, "echo: client %d: %s", i, (char *)r);
        OK(gh_release(clients[i]));
    }
    gh_close(listen_fd);
    /* The server greenlets see the clients' EOF and exit. (Joined, not polled with
     * gh_sleep(0): how long the FIN takes to arrive is the kernel's business, and a count
     * of spins would make the teardown's cost vary from run to run.) */
    for (int i = 0; i < ECHO_CONNS; i++) {
        OK(gh_join(servers[i], GH_FOREVER, &r));
        CHECK(!r, "echo: server %d: %s", i, (char *)r);
        OK(gh_release(servers[i]));
    }
}

static __attribute__((noinline)) int run_workload(const char *w, long n) {
    long want = n;
    rounds = n;
    if (!strcmp(w, "yield")) {
        run_pair(yielder);
        want = 2 * n;
    } else if (!strcmp(w, "handoff")) {
        OK(gh_sem_new(&sems[0], 1));
        OK(gh_sem_new(&sems[1], 0));
        run_pair(sem_side);
        OK(gh_sem_close(sems[0]));
        OK(gh_sem_close(sems[1]));
        want = 2 * n;
    } else if (!strcmp(w, "spawn")) {
        spawn_loop(n);
    } else if (!strcmp(w, "pingpong")) {
        pingpong(pp_side);
        want = 2 * n;
    } else if (!strcmp(w, "recvsend")) {
        pingpong(rs_side);
        want = 2 * n;
    } else if (!strcmp(w, "echo")) {
        echo(n);
    } else if (!strcmp(w, "timers")) {
        timers(n);
    } else {
        CHECK(0, "unknown workload %s", w);
    }
    CHECK(done == want, "%s: %ld of %ld operations done", w, done, want);
    OK(gh_hub_destroy());
    printf("icount %s %ld: ok\n", w, n);
    return 0;
}

int main(int argc, char **argv) {
    CHECK(argc == 3, "usage: icount yield|handoff|spawn|pingpong|recvsend|echo|timers N");
    long n = atol(argv[2]);
    CHECK(n > 0, "N must be positive");
    /* Where main's stack starts depends on the size of argv, the environment and the
     * program's path, and a few instructions per operation depend on it (memcpy takes a
     * different path for a struct at another alignment: spawn moved by 12 instructions
     * per op with the environment's size). Run the workload at a fixed offset within a
     * page, so the figures are the same from any shell, environment or checkout. */
    uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
    volatile char *pad = __builtin_alloca((sp & 4095) + 256);
    pad[0] = 0;
    return run_workload(argv[1], n);
}

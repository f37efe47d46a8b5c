/* test_server.c — servers and the network helpers (issue 14): a naive accept loop at
 * the fd limit (FAULTS 42), gh_listen / gh_connect_to, the StreamServer (gh_server_*).
 *
 * Build and run:
 *   cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g -O1 -Iinclude -Ic-tests \
 *      c-tests/test_server.c target/release/libgreenhub.a -lpthread -ldl -lm \
 *      -o target/c/test_server
 *   ./target/c/test_server [case]
 */
#include "harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#ifndef GH_EMFILE
#define GH_EMFILE (-EMFILE)
#endif
#ifndef GH_ECONNREFUSED
#define GH_ECONNREFUSED (-ECONNREFUSED)
#endif

#define SA(p) ((struct sockaddr *)(p))

/* ---- helpers ------------------------------------------------------------ */

/* A loopback TCP listener on an ephemeral port (plain sockets, no greenhub). */
static int plain_listener(int backlog, struct sockaddr_in *a) {
    socklen_t l = sizeof *a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_TRUE(fd >= 0);
    memset(a, 0, sizeof *a);
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_OK(bind(fd, SA(a), sizeof *a));
    ASSERT_OK(listen(fd, backlog));
    ASSERT_OK(getsockname(fd, SA(a), &l));
    return fd;
}

static int local_port(int fd) {
    struct sockaddr_storage ss;
    socklen_t l = sizeof ss;
    ASSERT_OK(getsockname(fd, SA(&ss), &l));
    if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -1;
}

/* Raises this process's soft fd limit to `want` (or the hard limit). */
static rlim_t raise_nofile(rlim_t want) {
    struct rlimit r;
    ASSERT_OK(getrlimit(RLIMIT_NOFILE, &r));
    r.rlim_cur = want < r.rlim_max ? want : r.rlim_max;
    ASSERT_OK(setrlimit(RLIMIT_NOFILE, &r));
    return r.rlim_cur;
}

/* valgrind's accept wrapper closes a new fd above the limit it keeps for itself and
 * fails with EMFILE: the connection is consumed (its client sees a reset). Under
 * valgrind (gh_test_under_valgrind) the fd-limit cases therefore accept that clients
 * fail and check the rest. */

/* ---- the client process of the load cases -------------------------------- */

struct load {
    struct sockaddr_in addr;
    int rounds;   /* requests per client greenlet, one connection each */
    int failures; /* connections that did not get their reply */
    int served;
};

/* One client greenlet: `rounds` times connect, send "ping\n", expect "pong\n". */
static void *client_main(void *arg) {
    struct load *ld = (struct load *)arg;
    for (int i = 0; i < ld->rounds; i++) {
        char buf[8];
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ssize_t n = -1;
        if (fd >= 0 && gh_connect(fd, SA(&ld->addr), sizeof ld->addr, 60.0) == 0 &&
            gh_send(fd, "ping\n", 5, 0, 60.0) == 5)
            n = gh_recv(fd, buf, sizeof buf, MSG_WAITALL, 60.0);
        if (n == 5 && memcmp(buf, "pong\n", 5) == 0)
            ld->served++;
        else
            ld->failures++;
        if (fd >= 0) gh_close(fd);
    }
    return NULL;
}

/* Forks a process that runs `clients` client greenlets of `rounds` requests each
 * against `a`, then sends SIGTERM to this process; its exit status is 0 when every
 * request got its reply (1 otherwise). */
static pid_t fork_clients(const struct sockaddr_in *a, int clients, int rounds) {
    pid_t pid = fork();
    ASSERT_TRUE(pid >= 0);
    if (pid == 0) {
        static struct load ld;
        ld.addr = *a;
        ld.rounds = rounds;
        raise_nofile((rlim_t)clients + 64);
        for (int i = 0; i < clients; i++)
            if (gh_spawn(NULL, client_main, &ld) != 0) _exit(3);
        if (gh_hub_run() != 0) _exit(4);
        if (ld.failures) fprintf(stderr, "clients: %d served, %d failed\n", ld.served, ld.failures);
        kill(getppid(), SIGTERM);
        gh_hub_destroy();
        _exit(ld.failures ? 1 : 0);
    }
    return pid;
}

/* The fd-limit cases' setup: forks `clients` client greenlets × 3 requests against
 * `a`, lowers RLIMIT_NOFILE to 256 (the old limit in *old) and makes *sig a SIGTERM
 * watcher (SIGTERM blocked until it exists: the clients may finish early). */
static pid_t fd_limit_setup(const struct sockaddr_in *a, int clients, struct rlimit *old,
                            gh_watcher *sig) {
    sigset_t set;
    struct rlimit low;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    ASSERT_OK(sigprocmask(SIG_BLOCK, &set, NULL));
    pid_t pid = fork_clients(a, clients, 3);
    ASSERT_OK(getrlimit(RLIMIT_NOFILE, old));
    low = *old;
    low.rlim_cur = 256;
    ASSERT_OK(setrlimit(RLIMIT_NOFILE, &low));
    ASSERT_OK(gh_signal_new(sig, SIGTERM));
    ASSERT_OK(sigprocmask(SIG_UNBLOCK, &set, NULL));
    return pid;
}

/* ==== FAULTS 42: a naive accept loop at the fd limit ======================= */

struct naive {
    int lfd;
    long accepted, emfile, other_errors, served, ticks;
    int stop;
};

/* A connection: read "ping\n", hold it 5 ms (so connections pile up), answer. */
static void *naive_conn(void *arg) {
    int fd = (int)(intptr_t)arg;
    char buf[8];
    if (gh_recv(fd, buf, 5, MSG_WAITALL, 30.0) == 5 && gh_sleep(0.005) == 0)
        gh_send(fd, "pong\n", 5, 0, 30.0);
    gh_close(fd);
    return NULL;
}

/* The loop of the issue: log-and-retry on every error, no back-off. */
static void *naive_acceptor(void *arg) {
    struct naive *nv = (struct naive *)arg;
    for (;;) {
        int fd = gh_accept(nv->lfd, NULL, NULL, GH_FOREVER);
        if (fd == GH_ECANCELED) break;
        if (fd < 0) {
            if (fd == GH_EMFILE)
                nv->emfile++;
            else
                nv->other_errors++;
            continue;
        }
        nv->accepted++;
        if (gh_spawn(NULL, naive_conn, (void *)(intptr_t)fd) != 0) gh_close(fd);
    }
    return NULL;
}

static void *ticker(void *arg) {
    struct naive *nv = (struct naive *)arg;
    while (gh_sleep(0.01) == 0) nv->ticks++;
    return NULL;
}

/* `ulimit -n 256` and 1,000 clients of 3 requests each against the naive loop: every
 * request is served (the loop meets GH_EMFILE many times and yields each time), a timer
 * greenlet keeps ticking, and SIGTERM (sent by the client process when done) reaches a
 * signal watcher that kills the loop. Before the fix the loop spun in gh_accept without
 * ever switching: 0 served, SIGTERM ignored (issue 14). */
TEST(naive_accept_loop_at_fd_limit_keeps_serving) {
    struct sockaddr_in a;
    struct naive nv;
    gh_greenlet acc, tick;
    gh_watcher sig;
    int fds0 = gh_test_fd_count(), status = 0, clients = 1000;
    struct rlimit old;
    memset(&nv, 0, sizeof nv);
    nv.lfd = plain_listener(4096, &a);
    pid_t pid = fd_limit_setup(&a, clients, &old, &sig);
    ASSERT_OK(gh_spawn(&acc, naive_acceptor, &nv));
    ASSERT_OK(gh_spawn(&tick, ticker, &nv));
    double t0 = gh_test_now();
    ASSERT_OK(gh_hub_wait(sig)); /* main waits for SIGTERM */
    double took = gh_test_now() - t0;
    ASSERT_OK(gh_kill(acc, 5.0));
    ASSERT_OK(gh_kill(tick, 5.0));
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    printf("  naive loop at 256 fds: %ld accepted, %ld GH_EMFILE, %ld other errors, %ld ticks "
           "in %.2f s\n",
           nv.accepted, nv.emfile, nv.other_errors, nv.ticks, took);
    ASSERT_TRUE(WIFEXITED(status) && (WEXITSTATUS(status) == 0 || gh_test_under_valgrind()));
    if (!gh_test_under_valgrind()) ASSERT_EQ(nv.accepted, (long)clients * 3);
    ASSERT_TRUE(nv.accepted > 0);
    ASSERT_TRUE(nv.emfile > 0); /* the limit was reached */
    ASSERT_TRUE(nv.ticks > 0);
    ASSERT_OK(gh_watcher_close(sig));
    ASSERT_OK(gh_release(acc));
    ASSERT_OK(gh_release(tick));
    ASSERT_OK(close(nv.lfd));
    ASSERT_OK(setrlimit(RLIMIT_NOFILE, &old));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}


/* ==== gh_listen / gh_connect_to / gh_local_address ========================= */

static int fd_flags_ok(int fd) {
    int fl = fcntl(fd, F_GETFL), fdfl = fcntl(fd, F_GETFD);
    return fl >= 0 && (fl & O_NONBLOCK) && fdfl >= 0 && (fdfl & FD_CLOEXEC);
}

static int sock_type(int fd) {
    int t = -1;
    socklen_t l = sizeof t;
    ASSERT_OK(getsockopt(fd, SOL_SOCKET, SO_TYPE, &t, &l));
    return t;
}

/* Accepts one connection on `lfd`, echoes what comes until EOF, closes. */
static void *accept_echo_once(void *arg) {
    int lfd = (int)(intptr_t)arg, fd;
    char buf[256];
    ssize_t n;
    fd = gh_accept(lfd, NULL, NULL, 10.0);
    if (fd < 0) return (void *)(intptr_t)fd;
    while ((n = gh_recv(fd, buf, sizeof buf, 0, 10.0)) > 0)
        if (gh_send(fd, buf, (size_t)n, 0, 10.0) != n) break;
    gh_close(fd);
    return NULL;
}

/* Connects to `addr`, sends "hello", expects it back. */
static void roundtrip(const char *addr) {
    char buf[8];
    int fd = gh_connect_to(addr, 5.0);
    ASSERT_TRUE(fd >= 0);
    ASSERT_TRUE(fd_flags_ok(fd));
    ASSERT_EQ(gh_send(fd, "hello", 5, 0, 5.0), 5);
    ASSERT_EQ(gh_recv(fd, buf, 5, MSG_WAITALL, 5.0), 5);
    ASSERT_TRUE(memcmp(buf, "hello", 5) == 0);
    ASSERT_OK(gh_close(fd));
}

/* Listens on `addr`, serves one echo connection reached at the listener's own address
 * (gh_local_address), checks the fd's flags and type. */
static void listen_and_roundtrip(const char *addr, int flags) {
    char name[256];
    gh_greenlet g;
    void *res;
    int lfd = gh_listen(addr, 0, flags);
    ASSERT_TRUE(lfd >= 0);
    ASSERT_TRUE(fd_flags_ok(lfd));
    ASSERT_EQ(sock_type(lfd), SOCK_STREAM);
    ssize_t n = gh_local_address(lfd, name, sizeof name);
    ASSERT_TRUE(n > 0 && (size_t)n < sizeof name);
    ASSERT_EQ((size_t)n, strlen(name));
    ASSERT_OK(gh_spawn(&g, accept_echo_once, (void *)(intptr_t)lfd));
    roundtrip(name);
    ASSERT_OK(gh_join(g, 10.0, &res));
    ASSERT_TRUE(res == NULL);
    ASSERT_OK(gh_close(lfd));
}

/* TCP on IPv4 with port 0: the kernel's port is read back with gh_local_address, the
 * address string round-trips into gh_connect_to; gh_peer_address names the client. */
TEST(listen_ipv4_ephemeral_connect_to) {
    int fds0 = gh_test_fd_count();
    char name[64], peer[64], local[64];
    int lfd = gh_listen("127.0.0.1:0", 16, 0), c, s;
    ASSERT_TRUE(lfd >= 0);
    ASSERT_TRUE(gh_local_address(lfd, name, sizeof name) > 0);
    ASSERT_TRUE(strncmp(name, "127.0.0.1:", 10) == 0);
    ASSERT_TRUE(atoi(name + 10) == local_port(lfd) && local_port(lfd) > 0);
    c = gh_connect_to(name, 5.0);
    ASSERT_TRUE(c >= 0);
    s = gh_accept(lfd, NULL, NULL, 5.0);
    ASSERT_TRUE(s >= 0);
    ASSERT_TRUE(gh_peer_address(s, peer, sizeof peer) > 0);
    ASSERT_TRUE(gh_local_address(c, local, sizeof local) > 0);
    ASSERT_STREQ(peer, local);
    /* snprintf semantics: measure, truncate */
    ASSERT_EQ(gh_local_address(lfd, NULL, 0), (ssize_t)strlen(name));
    ASSERT_EQ(gh_local_address(lfd, local, 4), (ssize_t)strlen(name));
    ASSERT_STREQ(local, "127");
    ASSERT_OK(gh_close(c));
    ASSERT_OK(gh_close(s));
    ASSERT_OK(gh_close(lfd));
    listen_and_roundtrip("127.0.0.1:0", 0);
    listen_and_roundtrip("*:0", 0); /* every interface: gh_local_address says 0.0.0.0 */
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* IPv6 ("[::1]:0", "[::]:0"), when the machine has it. */
TEST(listen_ipv6) {
    int fds0 = gh_test_fd_count();
    int lfd = gh_listen("[::1]:0", 0, 0);
    if (lfd == -EADDRNOTAVAIL || lfd == -EAFNOSUPPORT) {
        SKIP("no IPv6 loopback (%s)", gh_err_name(lfd));
    }
    ASSERT_TRUE(lfd >= 0);
    ASSERT_OK(gh_close(lfd));
    listen_and_roundtrip("[::1]:0", 0);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* Unix sockets: a path (a second listen on it is GH_EADDRINUSE until GH_LISTEN_UNLINK
 * removes the stale socket file; a regular file there is never removed), the abstract
 * namespace. */
TEST(listen_unix_path_and_abstract) {
    int fds0 = gh_test_fd_count(), l1, l2;
    char path[128], addr[160], abs_addr[64], name[160];
    snprintf(path, sizeof path, "/tmp/gh-test-server-%d.sock", (int)getpid());
    snprintf(addr, sizeof addr, "unix:%s", path);
    unlink(path);
    l1 = gh_listen(addr, 0, 0);
    ASSERT_TRUE(l1 >= 0);
    ASSERT_TRUE(gh_local_address(l1, name, sizeof name) > 0);
    ASSERT_STREQ(name, addr);
    ASSERT_OK(gh_close(l1));
    ASSERT_CODE(gh_listen(addr, 0, 0), -EADDRINUSE); /* the file is still there */
    listen_and_roundtrip(addr, GH_LISTEN_UNLINK);
    listen_and_roundtrip(path, GH_LISTEN_UNLINK); /* a bare path works too */
    ASSERT_OK(unlink(path));
    /* a regular file at the path: never removed */
    int f = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    ASSERT_TRUE(f >= 0);
    ASSERT_OK(close(f));
    ASSERT_CODE(gh_listen(addr, 0, GH_LISTEN_UNLINK), -EADDRINUSE);
    ASSERT_OK(unlink(path));
    snprintf(abs_addr, sizeof abs_addr, "@gh-test-server-%d", (int)getpid());
    listen_and_roundtrip(abs_addr, 0);
    l2 = gh_listen(abs_addr, 0, 0);
    ASSERT_TRUE(l2 >= 0);
    ASSERT_TRUE(gh_local_address(l2, name, sizeof name) > 0);
    ASSERT_TRUE(strncmp(name, "unix:@gh-test-server-", 21) == 0);
    ASSERT_OK(gh_close(l2));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* GH_LISTEN_REUSEPORT: two sockets on one port; without it the second is
 * GH_EADDRINUSE. GH_LISTEN_UDP: a bound datagram socket. */
TEST(listen_reuseport_and_udp) {
    int fds0 = gh_test_fd_count(), a, b, u;
    char name[64];
    a = gh_listen("127.0.0.1:0", 0, GH_LISTEN_REUSEPORT);
    ASSERT_TRUE(a >= 0);
    ASSERT_TRUE(gh_local_address(a, name, sizeof name) > 0);
    b = gh_listen(name, 0, GH_LISTEN_REUSEPORT);
    ASSERT_TRUE(b >= 0);
    ASSERT_CODE(gh_listen(name, 0, 0), -EADDRINUSE);
    ASSERT_OK(gh_close(a));
    ASSERT_OK(gh_close(b));
    u = gh_listen("127.0.0.1:0", 0, GH_LISTEN_UDP);
    ASSERT_TRUE(u >= 0);
    ASSERT_EQ(sock_type(u), SOCK_DGRAM);
    ASSERT_TRUE(fd_flags_ok(u));
    ASSERT_OK(gh_close(u));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* Malformed addresses and flags: GH_EINVAL (an IPv6 address needs brackets; connect
 * needs a host), GH_ENAMETOOLONG; nothing is left open. */
TEST(listen_connect_bad_arguments) {
    int fds0 = gh_test_fd_count();
    char longpath[300];
    const char *bad[] = {"", "80", "::1:80", "[::1]80", "[nope]:80", "host:", "unix:", "[::1]:"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ASSERT_CODE(gh_listen(bad[i], 0, 0), GH_EINVAL);
        ASSERT_CODE(gh_connect_to(bad[i], 1.0), GH_EINVAL);
    }
    ASSERT_CODE(gh_listen(NULL, 0, 0), GH_EINVAL);
    ASSERT_CODE(gh_connect_to(NULL, 1.0), GH_EINVAL);
    ASSERT_CODE(gh_listen("127.0.0.1:0", 0, 0x100), GH_EINVAL);
    ASSERT_CODE(gh_connect_to(":80", 1.0), GH_EINVAL);
    ASSERT_CODE(gh_connect_to("127.0.0.1:80", NAN), GH_EINVAL);
    memset(longpath, 'x', sizeof longpath - 1);
    longpath[0] = '/';
    longpath[sizeof longpath - 1] = 0;
    ASSERT_CODE(gh_listen(longpath, 0, 0), -ENAMETOOLONG);
    ASSERT_CODE(gh_connect_to(longpath, 1.0), -ENAMETOOLONG);
    ASSERT_CODE(gh_local_address(-1, NULL, 0), GH_EBADF);
    ASSERT_CODE(gh_local_address(0, NULL, 5), GH_EINVAL);
    int p[2];
    ASSERT_OK(pipe(p));
    ASSERT_CODE(gh_local_address(p[0], NULL, 0), -ENOTSOCK);
    ASSERT_OK(close(p[0]));
    ASSERT_OK(close(p[1]));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* Connection failures: a closed port is GH_ECONNREFUSED, a missing Unix path
 * GH_ENOENT; nothing is left open. A name ("localhost") is resolved on the thread pool
 * and each address tried: with the listener on 127.0.0.1 only, an IPv6 ::1 tried first
 * is refused and the next address connects. */
TEST(connect_to_failures_and_next_address) {
    int fds0 = gh_test_fd_count(), lfd, port;
    char name[64], addr[64];
    gh_greenlet g;
    lfd = gh_listen("127.0.0.1:0", 0, 0);
    ASSERT_TRUE(lfd >= 0);
    ASSERT_TRUE(gh_local_address(lfd, name, sizeof name) > 0);
    port = local_port(lfd);
    ASSERT_OK(gh_close(lfd));
    ASSERT_CODE(gh_connect_to(name, 5.0), GH_ECONNREFUSED);
    ASSERT_CODE(gh_connect_to("unix:/nonexistent/gh-test.sock", 5.0), -ENOENT);
    lfd = gh_listen("127.0.0.1:0", 0, 0);
    ASSERT_TRUE(lfd >= 0);
    snprintf(addr, sizeof addr, "localhost:%d", local_port(lfd));
    ASSERT_OK(gh_spawn(&g, accept_echo_once, (void *)(intptr_t)lfd));
    roundtrip(addr);
    ASSERT_OK(gh_join(g, 10.0, NULL));
    ASSERT_OK(gh_close(lfd));
    (void)port;
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* gh_connect_to is cancellable like gh_connect: a killed caller gets GH_ECANCELED (a
 * Unix listener whose backlog is full makes the connect wait), and a gh_timeout bounds
 * the whole call. */
static void *connect_to_main(void *arg) {
    return (void *)(intptr_t)gh_connect_to((const char *)arg, GH_FOREVER);
}

TEST(connect_to_killed_and_timeout) {
    int fds0 = gh_test_fd_count(), lfd, filled[8];
    char addr[64];
    gh_greenlet g;
    gh_timeout t;
    void *res;
    struct sockaddr_in a;
    /* a TCP listener whose accept queue is full: the kernel drops further SYNs, so a
     * connect waits (retransmitting) */
    lfd = plain_listener(0, &a);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(a.sin_port));
    for (int i = 0; i < 8; i++) {
        filled[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        ASSERT_TRUE(filled[i] >= 0);
        connect(filled[i], SA(&a), sizeof a);
    }
    usleep(50000);
    ASSERT_OK(gh_spawn(&g, connect_to_main, addr));
    ASSERT_OK(gh_sleep(0.05));
    ASSERT_EQ(gh_greenlet_state(g), GH_STATE_WAITING);
    ASSERT_OK(gh_kill(g, 5.0));
    ASSERT_OK(gh_join(g, 5.0, &res));
    ASSERT_EQ((int)(intptr_t)res, GH_ECANCELED);
    ASSERT_OK(gh_release(g));
    ASSERT_OK(gh_timeout_start(&t, 0.05));
    double t0 = gh_test_now();
    ASSERT_CODE(gh_connect_to(addr, GH_FOREVER), GH_ETIMEDOUT);
    ASSERT_TRUE(gh_test_now() - t0 < 2.0);
    ASSERT_OK(gh_timeout_cancel(t));
    ASSERT_CODE(gh_connect_to(addr, 0.05), GH_ETIMEDOUT); /* the per-attempt timeout */
    for (int i = 0; i < 8; i++) ASSERT_OK(close(filled[i]));
    ASSERT_OK(close(lfd));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* ==== gh_server ============================================================ */

struct srv_ctx {
    int running, max_running, handled, canceled;
    double hold; /* seconds each handler holds its connection before answering */
    gh_server self;
};

/* Echo handler: reads lines, echoes each; "quit\n" stops the server from inside. */
static void echo_handler(gh_server srv, int fd, void *arg) {
    struct srv_ctx *c = (struct srv_ctx *)arg;
    char buf[256];
    ssize_t n;
    c->running++;
    if (c->running > c->max_running) c->max_running = c->running;
    if (c->hold > 0) {
        int rc = gh_sleep(c->hold);
        if (rc == GH_ECANCELED) c->canceled++;
        if (rc != 0) goto out;
    }
    while ((n = gh_recv(fd, buf, sizeof buf, 0, 10.0)) > 0) {
        if (n == 5 && memcmp(buf, "quit\n", 5) == 0) {
            ASSERT_EQ(gh_server_stop(srv, 5.0), 0);
            break;
        }
        if (gh_send(fd, buf, (size_t)n, 0, 10.0) != n) break;
    }
    if (n == GH_ECANCELED) c->canceled++;
out:
    c->handled++;
    c->running--;
}

struct client_arg {
    char addr[192];
    int rounds, ok;
};

static void *echo_client(void *arg) {
    struct client_arg *ca = (struct client_arg *)arg;
    char buf[16];
    int fd = gh_connect_to(ca->addr, 10.0);
    if (fd < 0) return (void *)(intptr_t)fd;
    for (int i = 0; i < ca->rounds; i++) {
        if (gh_send(fd, "ping\n", 5, 0, 10.0) != 5) break;
        if (gh_recv(fd, buf, 5, MSG_WAITALL, 10.0) != 5 || memcmp(buf, "ping\n", 5) != 0) break;
        ca->ok++;
    }
    gh_close(fd);
    return NULL;
}

static void server_address(gh_server s, char *buf, size_t len) {
    int fd = gh_server_fd(s);
    ASSERT_TRUE(fd >= 0);
    ASSERT_TRUE(gh_local_address(fd, buf, len) > 0);
}

/* 20 clients × 10 round trips against an echo server: every handler runs and returns,
 * its fd closed by the server; the counters add up; stop(1) finds nothing to kill. */
TEST(server_echo_counters) {
    int fds0 = gh_test_fd_count();
    struct srv_ctx ctx;
    struct client_arg ca[20];
    gh_greenlet g[20];
    gh_server s;
    gh_server_counters st;
    memset(&ctx, 0, sizeof ctx);
    ASSERT_OK(gh_server_new(&s, "127.0.0.1:0", echo_handler, &ctx, NULL));
    ASSERT_OK(gh_server_start(s));
    for (int i = 0; i < 20; i++) {
        server_address(s, ca[i].addr, sizeof ca[i].addr);
        ca[i].rounds = 10;
        ca[i].ok = 0;
        ASSERT_OK(gh_spawn(&g[i], echo_client, &ca[i]));
    }
    ASSERT_OK(gh_joinall(g, 20, 20.0, NULL));
    for (int i = 0; i < 20; i++) {
        ASSERT_EQ(ca[i].ok, 10);
        ASSERT_OK(gh_release(g[i]));
    }
    while (ctx.handled < 20) ASSERT_OK(gh_sleep(0.001));
    ASSERT_OK(gh_sleep(0)); /* let the trampolines finish */
    ASSERT_OK(gh_server_stats(s, &st));
    ASSERT_EQ(st.accepted, 20u);
    ASSERT_EQ(st.completed, 20u);
    ASSERT_EQ(st.active, 0u);
    ASSERT_EQ(st.refused, 0u);
    ASSERT_EQ(st.fd_exhausted, 0u);
    ASSERT_EQ(gh_server_stop(s, 1.0), 0);
    ASSERT_CODE(gh_server_fd(s), GH_EBADF);
    ASSERT_EQ(gh_server_stop(s, 1.0), 0); /* twice: harmless */
    ASSERT_OK(gh_server_stats(s, &st));   /* counters readable until close */
    ASSERT_EQ(st.accepted, 20u);
    ASSERT_OK(gh_server_close(s));
    ASSERT_CODE(gh_server_close(s), GH_EBADHANDLE);
    ASSERT_CODE(gh_server_stats(s, &st), GH_EBADHANDLE);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* max_handlers 3 and 12 clients whose handlers hold their connection 20 ms: never more
 * than 3 run at once (accepting pauses; the rest wait in the backlog), all are served. */
TEST(server_max_handlers_pauses_accepting) {
    int fds0 = gh_test_fd_count();
    struct srv_ctx ctx;
    struct client_arg ca[12];
    gh_greenlet g[12];
    gh_server s;
    gh_server_options o;
    gh_server_counters st;
    memset(&ctx, 0, sizeof ctx);
    memset(&o, 0, sizeof o);
    ctx.hold = 0.02;
    o.max_handlers = 3;
    ASSERT_OK(gh_server_new(&s, "127.0.0.1:0", echo_handler, &ctx, &o));
    ASSERT_OK(gh_server_start(s));
    for (int i = 0; i < 12; i++) {
        server_address(s, ca[i].addr, sizeof ca[i].addr);
        ca[i].rounds = 1;
        ca[i].ok = 0;
        ASSERT_OK(gh_spawn(&g[i], echo_client, &ca[i]));
    }
    ASSERT_OK(gh_sleep(0.01));
    ASSERT_OK(gh_server_stats(s, &st));
    ASSERT_EQ(st.active, 3u);
    ASSERT_EQ(st.accepted, 3u);
    ASSERT_OK(gh_joinall(g, 12, 20.0, NULL));
    for (int i = 0; i < 12; i++) {
        ASSERT_EQ(ca[i].ok, 1);
        ASSERT_OK(gh_release(g[i]));
    }
    ASSERT_EQ(ctx.max_running, 3);
    ASSERT_EQ(gh_server_stop(s, 5.0), 0);
    ASSERT_OK(gh_server_stats(s, &st));
    ASSERT_EQ(st.accepted, 12u);
    ASSERT_EQ(st.completed, 12u);
    ASSERT_EQ(st.active, 0u);
    ASSERT_OK(gh_server_close(s));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* stop(timeout): handlers that finish in time are waited for (returns 0); handlers
 * that would hold on for an hour are killed at the timeout (returns how many), they see
 * GH_ECANCELED and return, and their fds are closed. New connections are refused once
 * stop began. */
static void *connect_hold(void *arg) {
    struct client_arg *ca = (struct client_arg *)arg;
    char b;
    int fd = gh_connect_to(ca->addr, 10.0);
    if (fd < 0) return (void *)(intptr_t)fd;
    ca->ok = (int)gh_recv(fd, &b, 1, 0, 10.0); /* 0: the server closed it */
    gh_close(fd);
    return NULL;
}

/* Holds the connection `hold` seconds, then returns (the server closes the fd). */
static void hold_handler(gh_server srv, int fd, void *arg) {
    struct srv_ctx *c = (struct srv_ctx *)arg;
    (void)srv;
    (void)fd;
    c->running++;
    if (gh_sleep(c->hold) == GH_ECANCELED) c->canceled++;
    c->handled++;
    c->running--;
}

static void stop_case(double hold, double timeout, int expect_killed) {
    int fds0 = gh_test_fd_count();
    struct srv_ctx ctx;
    struct client_arg ca[4];
    gh_greenlet g[4];
    gh_server s;
    gh_server_counters st;
    char addr[128];
    memset(&ctx, 0, sizeof ctx);
    ctx.hold = hold;
    ASSERT_OK(gh_server_new(&s, "127.0.0.1:0", hold_handler, &ctx, NULL));
    ASSERT_OK(gh_server_start(s));
    server_address(s, addr, sizeof addr);
    for (int i = 0; i < 4; i++) {
        snprintf(ca[i].addr, sizeof ca[i].addr, "%s", addr);
        ca[i].ok = -1;
        ASSERT_OK(gh_spawn(&g[i], connect_hold, &ca[i]));
    }
    while (ctx.running < 4) ASSERT_OK(gh_sleep(0.001));
    double t0 = gh_test_now();
    ASSERT_EQ(gh_server_stop(s, timeout), expect_killed);
    double took = gh_test_now() - t0;
    if (expect_killed) {
        ASSERT_TRUE(took >= timeout * 0.9 && took < timeout + 1.0);
    } else {
        ASSERT_TRUE(took < hold + 1.0);
    }
    ASSERT_CODE(gh_connect_to(addr, 1.0), GH_ECONNREFUSED); /* listener closed */
    ASSERT_OK(gh_joinall(g, 4, 10.0, NULL));
    for (int i = 0; i < 4; i++) {
        ASSERT_EQ(ca[i].ok, 0); /* EOF: the server closed each connection */
        ASSERT_OK(gh_release(g[i]));
    }
    ASSERT_EQ(ctx.handled, 4);
    ASSERT_EQ(ctx.canceled, expect_killed);
    ASSERT_OK(gh_server_stats(s, &st));
    ASSERT_EQ(st.active, 0u);
    ASSERT_EQ(st.completed, 4u);
    ASSERT_OK(gh_server_close(s));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

TEST(server_stop_waits_for_handlers) { stop_case(0.05, 5.0, 0); }
TEST(server_stop_kills_at_timeout) { stop_case(3600, 0.1, 4); }

/* A handler stops its own server ("quit\n"): not waited for, not killed; the other
 * handler gets its time. */
TEST(server_stop_from_handler) {
    int fds0 = gh_test_fd_count(), fd;
    struct srv_ctx ctx;
    struct client_arg ca;
    gh_greenlet g;
    gh_server s;
    gh_server_counters st;
    memset(&ctx, 0, sizeof ctx);
    ASSERT_OK(gh_server_new(&s, "127.0.0.1:0", echo_handler, &ctx, NULL));
    ASSERT_OK(gh_server_start(s));
    server_address(s, ca.addr, sizeof ca.addr);
    ca.rounds = 50;
    ca.ok = 0;
    ASSERT_OK(gh_spawn(&g, echo_client, &ca));
    fd = gh_connect_to(ca.addr, 5.0);
    ASSERT_TRUE(fd >= 0);
    ASSERT_EQ(gh_send(fd, "quit\n", 5, 0, 5.0), 5);
    char b;
    ASSERT_EQ(gh_recv(fd, &b, 1, 0, 5.0), 0); /* closed after the handler returned */
    ASSERT_OK(gh_close(fd));
    ASSERT_OK(gh_join(g, 10.0, NULL));
    ASSERT_EQ(ca.ok, 50);
    ASSERT_OK(gh_release(g));
    ASSERT_OK(gh_sleep(0.01));
    ASSERT_OK(gh_server_stats(s, &st));
    ASSERT_EQ(st.accepted, 2u);
    ASSERT_EQ(st.completed, 2u);
    ASSERT_EQ(ctx.canceled, 0);
    ASSERT_OK(gh_server_close(s));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* From a signal watcher's callback: stop with timeout 0 works (kills at once), a
 * non-zero timeout is GH_EPERM (callbacks must not block). */
static gh_server cb_server;
static int cb_rc_wait, cb_rc_now;
static void on_sigusr1(gh_watcher w, int revents, void *arg) {
    (void)revents;
    (void)arg;
    cb_rc_wait = gh_server_stop(cb_server, 1.0);
    cb_rc_now = gh_server_stop(cb_server, 0);
    gh_watcher_stop(w);
}

TEST(server_stop_from_signal_callback) {
    int fds0 = gh_test_fd_count();
    struct srv_ctx ctx;
    struct client_arg ca;
    gh_greenlet g;
    gh_watcher w;
    memset(&ctx, 0, sizeof ctx);
    ctx.hold = 3600;
    ASSERT_OK(gh_server_new(&cb_server, "127.0.0.1:0", echo_handler, &ctx, NULL));
    ASSERT_OK(gh_server_start(cb_server));
    server_address(cb_server, ca.addr, sizeof ca.addr);
    ASSERT_OK(gh_spawn(&g, connect_hold, &ca));
    while (ctx.running < 1) ASSERT_OK(gh_sleep(0.001));
    ASSERT_OK(gh_signal_new(&w, SIGUSR1));
    ASSERT_OK(gh_watcher_start(w, on_sigusr1, NULL));
    ASSERT_OK(kill(getpid(), SIGUSR1));
    ASSERT_OK(gh_join(g, 10.0, NULL));
    ASSERT_EQ(cb_rc_wait, GH_EPERM);
    ASSERT_EQ(cb_rc_now, 1);
    ASSERT_EQ(ctx.canceled, 1);
    ASSERT_OK(gh_release(g));
    ASSERT_OK(gh_watcher_close(w));
    ASSERT_OK(gh_server_close(cb_server));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* gh_server_new_fd on a gh_listen socket (Unix path): served the same; the server owns
 * and closes the fd. Bad fds: GH_EBADF, the fd untouched. */
TEST(server_new_fd_unix) {
    int fds0 = gh_test_fd_count(), lfd;
    struct srv_ctx ctx;
    struct client_arg ca;
    gh_greenlet g;
    gh_server s;
    char path[128], addr[160];
    memset(&ctx, 0, sizeof ctx);
    snprintf(path, sizeof path, "/tmp/gh-test-srvfd-%d.sock", (int)getpid());
    snprintf(addr, sizeof addr, "unix:%s", path);
    lfd = gh_listen(addr, 0, GH_LISTEN_UNLINK);
    ASSERT_TRUE(lfd >= 0);
    ASSERT_CODE(gh_server_new_fd(&s, -1, echo_handler, &ctx, NULL), GH_EBADF);
    ASSERT_CODE(gh_server_new_fd(&s, 100000, echo_handler, &ctx, NULL), GH_EBADF);
    ASSERT_CODE(gh_server_new_fd(&s, lfd, NULL, &ctx, NULL), GH_EINVAL);
    ASSERT_CODE(gh_server_new_fd(NULL, lfd, echo_handler, &ctx, NULL), GH_EINVAL);
    ASSERT_OK(gh_server_new_fd(&s, lfd, echo_handler, &ctx, NULL));
    ASSERT_EQ(gh_server_fd(s), lfd);
    ASSERT_OK(gh_server_start(s));
    snprintf(ca.addr, sizeof ca.addr, "%s", addr);
    ca.rounds = 3;
    ca.ok = 0;
    ASSERT_OK(gh_spawn(&g, echo_client, &ca));
    ASSERT_OK(gh_join(g, 10.0, NULL));
    ASSERT_EQ(ca.ok, 3);
    ASSERT_OK(gh_release(g));
    ASSERT_EQ(gh_server_stop(s, 5.0), 0);
    ASSERT_OK(gh_server_close(s));
    ASSERT_TRUE(fcntl(lfd, F_GETFD) < 0); /* closed by the server */
    ASSERT_OK(unlink(path));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* Misuse: NULL pointers, bad addresses, a port in use, start twice, start after stop,
 * handles after close, zero and forged handles. */
TEST(server_misuse) {
    int fds0 = gh_test_fd_count(), fds_hub;
    struct srv_ctx ctx;
    gh_server s, s2, zero = {0}, forged = {~0ull};
    gh_server_counters st;
    char addr[64];
    memset(&ctx, 0, sizeof ctx);
    ASSERT_OK(gh_sleep(0)); /* the hub and its own fds (2 for epoll, 1 for poll) */
    fds_hub = gh_test_fd_count();
    ASSERT_CODE(gh_server_new(NULL, "127.0.0.1:0", echo_handler, &ctx, NULL), GH_EINVAL);
    ASSERT_CODE(gh_server_new(&s, NULL, echo_handler, &ctx, NULL), GH_EINVAL);
    ASSERT_CODE(gh_server_new(&s, "127.0.0.1:0", NULL, &ctx, NULL), GH_EINVAL);
    ASSERT_CODE(gh_server_new(&s, "nonsense", echo_handler, &ctx, NULL), GH_EINVAL);
    ASSERT_EQ(gh_test_fd_count(), fds_hub); /* nothing left open by the failures */
    ASSERT_OK(gh_server_new(&s, "127.0.0.1:0", echo_handler, &ctx, NULL));
    server_address(s, addr, sizeof addr);
    ASSERT_CODE(gh_server_new(&s2, addr, echo_handler, &ctx, NULL), -EADDRINUSE);
    ASSERT_OK(gh_server_start(s));
    ASSERT_CODE(gh_server_start(s), GH_EBUSY);
    ASSERT_CODE(gh_server_stats(s, NULL), GH_EINVAL);
    ASSERT_EQ(gh_server_stop(s, NAN), GH_EINVAL);
    ASSERT_EQ(gh_server_stop(s, 0), 0);
    ASSERT_CODE(gh_server_start(s), GH_ECLOSED);
    ASSERT_OK(gh_server_close(s));
    ASSERT_CODE(gh_server_start(s), GH_EBADHANDLE);
    ASSERT_CODE(gh_server_stop(s, 0), GH_EBADHANDLE);
    ASSERT_CODE(gh_server_fd(s), GH_EBADHANDLE);
    ASSERT_CODE(gh_server_stats(s, &st), GH_EBADHANDLE);
    ASSERT_CODE(gh_server_start(zero), GH_EBADHANDLE);
    ASSERT_CODE(gh_server_close(forged), GH_EBADHANDLE);
    /* never started: close is enough */
    ASSERT_OK(gh_server_new(&s, "127.0.0.1:0", echo_handler, &ctx, NULL));
    ASSERT_OK(gh_server_close(s));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* gh_hub_destroy with a server serving and handlers blocked: the listener and every
 * connection fd are closed, counts back at baseline; a new hub works. */
TEST(server_destroy_with_live_handlers) {
    int fds0 = gh_test_fd_count(), c[3];
    struct srv_ctx ctx;
    gh_server s;
    struct sockaddr_in a;
    socklen_t al = sizeof a;
    memset(&ctx, 0, sizeof ctx);
    ctx.hold = 3600;
    ASSERT_OK(gh_server_new(&s, "127.0.0.1:0", hold_handler, &ctx, NULL));
    ASSERT_OK(gh_server_start(s));
    ASSERT_OK(getsockname(gh_server_fd(s), SA(&a), &al));
    for (int i = 0; i < 3; i++) {
        c[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ASSERT_OK(connect(c[i], SA(&a), sizeof a)); /* the kernel completes it */
    }
    while (ctx.running < 3) ASSERT_OK(gh_sleep(0.001));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0 + 3); /* only the clients' own fds remain */
    for (int i = 0; i < 3; i++) {
        char b;
        ASSERT_EQ(recv(c[i], &b, 1, 0), 0); /* the server side was closed */
        ASSERT_OK(close(c[i]));
    }
    ASSERT_CODE(gh_server_stop(s, 0), GH_EBADHANDLE);
    ASSERT_OK(gh_sleep(0));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* A handle of another thread's server: GH_EWRONGTHREAD. */
static void *other_thread(void *arg) {
    gh_server s = *(gh_server *)arg;
    gh_server_counters st;
    intptr_t bad = 0;
    bad += gh_server_start(s) != GH_EWRONGTHREAD;
    bad += gh_server_stop(s, 0) != GH_EWRONGTHREAD;
    bad += gh_server_stats(s, &st) != GH_EWRONGTHREAD;
    bad += gh_server_fd(s) != GH_EWRONGTHREAD;
    bad += gh_server_close(s) != GH_EWRONGTHREAD;
    gh_hub_destroy();
    return (void *)bad;
}

TEST(server_other_thread) {
    struct srv_ctx ctx;
    gh_server s;
    pthread_t t;
    void *bad;
    memset(&ctx, 0, sizeof ctx);
    ASSERT_OK(gh_server_new(&s, "127.0.0.1:0", echo_handler, &ctx, NULL));
    ASSERT_OK(pthread_create(&t, NULL, other_thread, &s));
    ASSERT_OK(pthread_join(t, &bad));
    ASSERT_TRUE(bad == NULL);
    ASSERT_OK(gh_server_close(s));
    ASSERT_OK(gh_hub_destroy());
}

/* A datagram server: a handler greenlet per datagram, with its bytes and sender; the
 * handler replies with gh_sendto on gh_server_fd. 20 datagrams from one client, each
 * echoed; the counters add up; max_handlers 2 holds the rest in the socket buffer. */
struct dg_ctx {
    int handled, running, max_running;
};

static void dgram_echo(gh_server srv, const void *data, size_t len, const struct sockaddr *from,
                       socklen_t fromlen, void *arg) {
    struct dg_ctx *c = (struct dg_ctx *)arg;
    c->running++;
    if (c->running > c->max_running) c->max_running = c->running;
    gh_sleep(0.002); /* overlap with other handlers */
    gh_sendto(gh_server_fd(srv), data, len, 0, from, fromlen, 5.0);
    c->handled++;
    c->running--;
}

/* Starts datagram server `s` (handler dgram_echo with `ctx`) and sends it `n`
 * datagrams at once from a UDP client; each comes back (in any order), every handler
 * ran and the counters say so; then stops and closes `s`. */
static void serve_datagrams(gh_server s, struct dg_ctx *ctx, int n) {
    gh_server_counters st;
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    char buf[64], msg[32];
    int c;
    ASSERT_OK(gh_server_start(s));
    ASSERT_OK(getsockname(gh_server_fd(s), SA(&sa), &sl));
    c = gh_listen("127.0.0.1:0", 0, GH_LISTEN_UDP);
    ASSERT_TRUE(c >= 0);
    for (int i = 0; i < n; i++) {
        int len = snprintf(msg, sizeof msg, "datagram %d", i);
        ASSERT_EQ(gh_sendto(c, msg, (size_t)len, 0, SA(&sa), sizeof sa, 5.0), len);
    }
    for (int i = 0; i < n; i++) {
        ssize_t len = gh_recvfrom(c, buf, sizeof buf - 1, 0, NULL, NULL, 5.0);
        ASSERT_TRUE(len > 9);
        buf[len] = 0;
        ASSERT_TRUE(strncmp(buf, "datagram ", 9) == 0);
    }
    ASSERT_OK(gh_sleep(0.01));
    ASSERT_EQ(ctx->handled, n);
    ASSERT_OK(gh_server_stats(s, &st));
    ASSERT_EQ(st.accepted, (uint64_t)n);
    ASSERT_EQ(st.completed, (uint64_t)n);
    ASSERT_EQ(st.active, 0u);
    ASSERT_EQ(gh_server_stop(s, 1.0), 0);
    ASSERT_OK(gh_server_close(s));
    ASSERT_OK(gh_close(c));
}

TEST(datagram_server_echo) {
    int fds0 = gh_test_fd_count();
    struct dg_ctx ctx;
    gh_server s;
    gh_server_options o;
    memset(&ctx, 0, sizeof ctx);
    memset(&o, 0, sizeof o);
    o.max_handlers = 2;
    ASSERT_CODE(gh_server_new_datagram(NULL, "127.0.0.1:0", dgram_echo, &ctx, NULL), GH_EINVAL);
    ASSERT_CODE(gh_server_new_datagram(&s, NULL, dgram_echo, &ctx, NULL), GH_EINVAL);
    ASSERT_CODE(gh_server_new_datagram(&s, "127.0.0.1:0", NULL, &ctx, NULL), GH_EINVAL);
    ASSERT_OK(gh_server_new_datagram(&s, "127.0.0.1:0", dgram_echo, &ctx, &o));
    serve_datagrams(s, &ctx, 20);
    ASSERT_EQ(ctx.max_running, 2);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* gh_server_new_datagram_fd on a UDP socket the caller made and bound (blocking, as
 * a supervisor would hand it over): served as gh_server_new_datagram's; the server puts
 * it in O_NONBLOCK mode, owns it and closes it at stop. Refused, the fd untouched
 * (still the caller's, still blocking): no fd (GH_EBADF), not a socket (GH_ENOTSOCK),
 * a stream socket listening or not (GH_EPROTOTYPE), NULL out or handler (GH_EINVAL). */
TEST(datagram_server_from_fd) {
    int fds0 = gh_test_fd_count(), fd, closed, p[2], tcp, sv[2];
    struct dg_ctx ctx;
    gh_server s;
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    memset(&ctx, 0, sizeof ctx);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ASSERT_TRUE(fd >= 0);
    ASSERT_OK(bind(fd, SA(&sa), sizeof sa));
    ASSERT_OK(getsockname(fd, SA(&sa), &sl));
    /* refusals first: each leaves its fd as it was */
    ASSERT_OK(pipe2(p, O_CLOEXEC));
    tcp = gh_listen("127.0.0.1:0", 0, 0); /* (and the hub's fds) */
    ASSERT_TRUE(tcp >= 0);
    ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
    closed = dup(fd); /* a number no fd has (the last one opened) */
    ASSERT_TRUE(closed >= 0);
    ASSERT_OK(close(closed));
    ASSERT_CODE(gh_server_new_datagram_fd(NULL, fd, dgram_echo, &ctx, NULL), GH_EINVAL);
    ASSERT_CODE(gh_server_new_datagram_fd(&s, fd, NULL, &ctx, NULL), GH_EINVAL);
    ASSERT_CODE(gh_server_new_datagram_fd(&s, -1, dgram_echo, &ctx, NULL), GH_EBADF);
    ASSERT_CODE(gh_server_new_datagram_fd(&s, closed, dgram_echo, &ctx, NULL), GH_EBADF);
    ASSERT_CODE(gh_server_new_datagram_fd(&s, p[0], dgram_echo, &ctx, NULL), GH_ENOTSOCK);
    ASSERT_CODE(gh_server_new_datagram_fd(&s, tcp, dgram_echo, &ctx, NULL), GH_EPROTOTYPE);
    ASSERT_CODE(gh_server_new_datagram_fd(&s, sv[0], dgram_echo, &ctx, NULL), GH_EPROTOTYPE);
    ASSERT_STREQ(gh_err_name(GH_EPROTOTYPE), "GH_EPROTOTYPE");
    ASSERT_TRUE(fcntl(p[0], F_GETFD) >= 0 && fcntl(tcp, F_GETFD) >= 0);
    ASSERT_EQ(fcntl(sv[0], F_GETFL) & O_NONBLOCK, 0);
    ASSERT_EQ(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
    ASSERT_OK(close(p[0]));
    ASSERT_OK(close(p[1]));
    ASSERT_OK(gh_close(tcp));
    ASSERT_OK(close(sv[0]));
    ASSERT_OK(close(sv[1]));
    /* served */
    ASSERT_OK(gh_server_new_datagram_fd(&s, fd, dgram_echo, &ctx, NULL));
    ASSERT_EQ(gh_server_fd(s), fd);
    ASSERT_TRUE((fcntl(fd, F_GETFL) & O_NONBLOCK) != 0);
    serve_datagrams(s, &ctx, 5);
    ASSERT_TRUE(fcntl(fd, F_GETFD) < 0); /* closed by the server */
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* The StreamServer at the fd limit: RLIMIT_NOFILE 256, 1,000 clients × 3 requests from
 * a forked process; the server backs off (fd_exhausted > 0) and serves all of them;
 * SIGTERM ends it through gh_hub_wait on a signal watcher, then stop(5). */
static void pong_handler(gh_server srv, int fd, void *arg) {
    char buf[8];
    (void)srv;
    (void)arg;
    if (gh_recv(fd, buf, 5, MSG_WAITALL, 30.0) == 5 && gh_sleep(0.005) == 0)
        gh_send(fd, "pong\n", 5, 0, 30.0);
}

TEST(server_at_fd_limit_keeps_serving) {
    struct sockaddr_in a;
    gh_server s;
    gh_server_counters st;
    gh_watcher sig;
    int fds0 = gh_test_fd_count(), status = 0, clients = 1000, lfd;
    struct rlimit old;
    lfd = plain_listener(4096, &a);
    pid_t pid = fd_limit_setup(&a, clients, &old, &sig);
    ASSERT_OK(gh_server_new_fd(&s, lfd, pong_handler, NULL, NULL));
    ASSERT_OK(gh_server_start(s));
    ASSERT_OK(gh_hub_wait(sig));
    ASSERT_EQ(gh_server_stop(s, 5.0), 0);
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_OK(gh_server_stats(s, &st));
    printf("  server at 256 fds: %llu accepted, %llu completed, %llu refused, %llu fd_exhausted\n",
           (unsigned long long)st.accepted, (unsigned long long)st.completed,
           (unsigned long long)st.refused, (unsigned long long)st.fd_exhausted);
    ASSERT_TRUE(WIFEXITED(status) && (WEXITSTATUS(status) == 0 || gh_test_under_valgrind()));
    if (!gh_test_under_valgrind()) ASSERT_EQ(st.accepted, (uint64_t)clients * 3);
    ASSERT_TRUE(st.accepted > 0);
    ASSERT_EQ(st.completed, st.accepted);
    ASSERT_TRUE(st.fd_exhausted > 0);
    ASSERT_OK(gh_watcher_close(sig));
    ASSERT_OK(gh_server_close(s));
    ASSERT_OK(setrlimit(RLIMIT_NOFILE, &old));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

int main(int argc, char **argv) {
    TEST_INIT(argc, argv);
    RUN(naive_accept_loop_at_fd_limit_keeps_serving);
    RUN(listen_ipv4_ephemeral_connect_to);
    RUN(listen_ipv6);
    RUN(listen_unix_path_and_abstract);
    RUN(listen_reuseport_and_udp);
    RUN(listen_connect_bad_arguments);
    RUN(connect_to_failures_and_next_address);
    RUN(connect_to_killed_and_timeout);
    RUN(server_echo_counters);
    RUN(server_max_handlers_pauses_accepting);
    RUN(server_stop_waits_for_handlers);
    RUN(server_stop_kills_at_timeout);
    RUN(server_stop_from_handler);
    RUN(server_stop_from_signal_callback);
    RUN(server_new_fd_unix);
    RUN(server_misuse);
    RUN(server_destroy_with_live_handlers);
    RUN(server_other_thread);
    RUN(datagram_server_echo);
    RUN(datagram_server_from_fd);
    RUN(server_at_fd_limit_keeps_serving);
    return TEST_DONE();
}

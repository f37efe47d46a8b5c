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

static inline int local_port(int fd) {
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
    sigset_t set;
    struct rlimit old, low;
    memset(&nv, 0, sizeof nv);
    nv.lfd = plain_listener(4096, &a);
    /* SIGTERM blocked until the watcher exists (the client may finish early) */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    ASSERT_OK(sigprocmask(SIG_BLOCK, &set, NULL));
    pid_t pid = fork_clients(&a, clients, 3);
    ASSERT_OK(getrlimit(RLIMIT_NOFILE, &old));
    low = old;
    low.rlim_cur = 256;
    ASSERT_OK(setrlimit(RLIMIT_NOFILE, &low));
    ASSERT_OK(gh_signal_new(&sig, SIGTERM));
    ASSERT_OK(sigprocmask(SIG_UNBLOCK, &set, NULL));
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
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ASSERT_EQ(nv.accepted, (long)clients * 3);
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

int main(int argc, char **argv) {
    TEST_INIT(argc, argv);
    RUN(naive_accept_loop_at_fd_limit_keeps_serving);
    return TEST_DONE();
}

/* test_patch_wait.c — the cooperative libc's waits: poll, ppoll, select, pselect,
 * epoll_wait, epoll_pwait, sleep, usleep, nanosleep, clock_nanosleep, getaddrinfo,
 * gethostbyname(_r); and where the patch must stay plain libc: a thread without a hub,
 * a hub callback, a fork() child (cooperative again in its own hub), GREENHUB_PATCH=0.
 *
 * Build and run: ./scripts/test_patch.sh (links libgreenhub.so, interposes the patch).
 */
#include "patch_util.h"

#include <netdb.h>
#include <signal.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/syscall.h>

/* ---- poll / ppoll ------------------------------------------------------------- */

TEST(poll_waits_cooperatively) {
    int sv[2], sv2[2];
    struct later l = {0, "p", 1, 0.1, 0};
    bpair(sv);
    bpair(sv2);
    l.fd = sv2[1];
    ticker_start();
    gh_greenlet w = later_spawn(&l);
    struct pollfd p[3] = {{sv[0], POLLIN, 0}, {sv2[0], POLLIN, 0}, {-1, POLLIN, 0}};
    double t0 = gh_test_now();
    ASSERT_EQ(poll(p, 3, 2000), 1);
    ASSERT_TRUE(gh_test_now() - t0 >= 0.08);
    ASSERT_EQ(p[0].revents, 0);
    ASSERT_EQ(p[1].revents, POLLIN);
    ASSERT_GE(ticks, 3);
    ASSERT_EQ(join_rc(w), 0);
    /* the poll's own timeout: 0, after it, others ran */
    int t1 = ticks;
    t0 = gh_test_now();
    p[1].fd = -1;
    ASSERT_EQ(poll(p, 3, 100), 0);
    ASSERT_TRUE(gh_test_now() - t0 >= 0.09);
    ASSERT_GE(ticks - t1, 3);
    /* writable at once; an invalid fd: POLLNVAL at once */
    struct pollfd q[2] = {{sv[1], POLLOUT, 0}, {999, POLLIN, 0}};
    ASSERT_EQ(poll(q, 2, -1), 2);
    ASSERT_EQ(q[0].revents, POLLOUT);
    ASSERT_EQ(q[1].revents, POLLNVAL);
    /* no fds: a cooperative sleep */
    t1 = ticks;
    ASSERT_EQ(poll(NULL, 0, 100), 0);
    ASSERT_GE(ticks - t1, 3);
    /* hang-up */
    close(sv[1]);
    struct pollfd h = {sv[0], POLLIN, 0};
    ASSERT_EQ(poll(&h, 1, 1000), 1);
    ASSERT_TRUE(h.revents & (POLLIN | POLLHUP));
    ticker_stop();
    close(sv[0]);
    closepair(sv2);
    ASSERT_OK(gh_hub_destroy());
}

static void *poll_forever(void *arg) {
    struct pollfd p = {*(int *)arg, POLLIN, 0};
    int r = poll(&p, 1, -1);
    return RC_PTR(r < 0 ? -errno : r);
}

static void *read_forever(void *arg) {
    char c;
    return RC_PTR((int)read(*(int *)arg, &c, 1));
}

TEST(poll_killed_and_timed_out) {
    int sv[2];
    gh_greenlet g;
    gh_timeout t;
    void *r;
    bpair(sv);
    ASSERT_OK(gh_spawn(&g, poll_forever, &sv[0]));
    ASSERT_OK(gh_sleep(0.02));
    ASSERT_OK(gh_kill(g, 1.0));
    ASSERT_OK(gh_join(g, 1.0, &r));
    ASSERT_EQ(PTR_RC(r), -ECANCELED);
    ASSERT_OK(gh_release(g));
    struct pollfd p = {sv[0], POLLIN, 0};
    ASSERT_OK(gh_timeout_start(&t, 0.05));
    ASSERT_EQ(poll(&p, 1, 5000), -1);
    ASSERT_EQ(errno, ETIMEDOUT);
    ASSERT_OK(gh_timeout_cancel(t));
    /* POLLPRI only (nothing greenhub watches): re-checked in slices, times out right */
    double t0 = gh_test_now();
    p.events = POLLPRI;
    ASSERT_EQ(poll(&p, 1, 60), 0);
    ASSERT_TRUE(gh_test_now() - t0 >= 0.05);
    closepair(sv);
    ASSERT_OK(gh_hub_destroy());
}

TEST(ppoll_waits) {
    int sv[2];
    struct later l = {0, "q", 1, 0.05, 0};
    struct timespec ts = {1, 0}, small = {0, 50 * 1000 * 1000};
    bpair(sv);
    l.fd = sv[1];
    ticker_start();
    gh_greenlet w = later_spawn(&l);
    struct pollfd p = {sv[0], POLLIN, 0};
    ASSERT_EQ(ppoll(&p, 1, &ts, NULL), 1);
    ASSERT_GE(ticks, 1);
    ASSERT_EQ(join_rc(w), 0);
    char c;
    ASSERT_EQ(read(sv[0], &c, 1), 1);
    int t1 = ticks;
    ASSERT_EQ(ppoll(&p, 1, &small, NULL), 0);
    ASSERT_GE(ticks - t1, 2);
    ticker_stop();
    closepair(sv);
    ASSERT_OK(gh_hub_destroy());
}

/* ---- select / pselect ---------------------------------------------------------- */

TEST(select_waits) {
    int sv[2];
    fd_set rd, wr;
    struct timeval tv = {2, 0};
    struct later l = {0, "s", 1, 0.1, 0};
    bpair(sv);
    l.fd = sv[1];
    ticker_start();
    gh_greenlet w = later_spawn(&l);
    FD_ZERO(&rd);
    FD_SET(sv[0], &rd);
    ASSERT_EQ(select(sv[0] + 1, &rd, NULL, NULL, &tv), 1);
    ASSERT_TRUE(FD_ISSET(sv[0], &rd));
    ASSERT_GE(ticks, 3);
    ASSERT_TRUE(tv.tv_sec <= 1); /* Linux: the time not slept */
    ASSERT_EQ(join_rc(w), 0);
    char c;
    ASSERT_EQ(read(sv[0], &c, 1), 1);
    /* timeout: 0 and empty sets */
    FD_ZERO(&rd);
    FD_SET(sv[0], &rd);
    tv.tv_sec = 0;
    tv.tv_usec = 80000;
    int t1 = ticks;
    ASSERT_EQ(select(sv[0] + 1, &rd, NULL, NULL, &tv), 0);
    ASSERT_TRUE(!FD_ISSET(sv[0], &rd));
    ASSERT_GE(ticks - t1, 3);
    /* writable + a bad fd */
    FD_ZERO(&wr);
    FD_SET(sv[1], &wr);
    ASSERT_EQ(select(sv[1] + 1, NULL, &wr, NULL, NULL), 1);
    FD_ZERO(&rd);
    FD_SET(900, &rd);
    ASSERT_EQ(select(901, &rd, NULL, NULL, NULL), -1);
    ASSERT_EQ(errno, EBADF);
    /* pselect */
    struct timespec ts = {0, 60 * 1000 * 1000};
    FD_ZERO(&rd);
    FD_SET(sv[0], &rd);
    t1 = ticks;
    ASSERT_EQ(pselect(sv[0] + 1, &rd, NULL, NULL, &ts, NULL), 0);
    ASSERT_GE(ticks - t1, 2);
    l.delay = 0.03;
    w = later_spawn(&l);
    ts.tv_sec = 2;
    FD_SET(sv[0], &rd);
    ASSERT_EQ(pselect(sv[0] + 1, &rd, NULL, NULL, &ts, NULL), 1);
    ASSERT_EQ(join_rc(w), 0);
    ticker_stop();
    closepair(sv);
    ASSERT_OK(gh_hub_destroy());
}

/* ---- epoll_wait on the program's own epoll fd ------------------------------------ */

TEST(epoll_wait_program_epoll) {
    int sv[2], ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev, out[4];
    struct later l = {0, "e", 1, 0.1, 0};
    bpair(sv);
    l.fd = sv[1];
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.fd = sv[0];
    ASSERT_OK(epoll_ctl(ep, EPOLL_CTL_ADD, sv[0], &ev));
    ticker_start();
    gh_greenlet w = later_spawn(&l);
    ASSERT_EQ(epoll_wait(ep, out, 4, 2000), 1);
    ASSERT_EQ(out[0].data.fd, sv[0]);
    ASSERT_GE(ticks, 3);
    ASSERT_EQ(join_rc(w), 0);
    char c;
    ASSERT_EQ(read(sv[0], &c, 1), 1);
    int t1 = ticks;
    ASSERT_EQ(epoll_wait(ep, out, 4, 80), 0);
    ASSERT_GE(ticks - t1, 3);
    ASSERT_EQ(epoll_pwait(ep, out, 4, 30, NULL), 0);
    ASSERT_EQ(epoll_wait(-1, out, 4, 10), -1);
    ASSERT_EQ(errno, EBADF);
    ticker_stop();
    close(ep);
    closepair(sv);
    ASSERT_OK(gh_hub_destroy());
}


/* Many fds (past the interposer's on-stack list) and a hub destroyed while greenlets
 * are parked inside interposed calls (nothing may leak: valgrind checks). */
static int many[24][2];
static void *poll_many(void *arg) {
    struct pollfd p[24];
    (void)arg;
    for (int i = 0; i < 24; i++) {
        p[i].fd = many[i][0];
        p[i].events = POLLIN;
        p[i].revents = 0;
    }
    return RC_PTR(poll(p, 24, -1));
}
static void *select_many(void *arg) {
    fd_set r;
    int maxfd = 0;
    (void)arg;
    FD_ZERO(&r);
    for (int i = 0; i < 24; i++) {
        FD_SET(many[i][0], &r);
        if (many[i][0] > maxfd) maxfd = many[i][0];
    }
    return RC_PTR(select(maxfd + 1, &r, NULL, NULL, NULL));
}

TEST(many_fds_and_destroy_while_parked) {
    gh_greenlet a, b;
    for (int i = 0; i < 24; i++) bpair(many[i]);
    ASSERT_OK(gh_spawn(&a, poll_many, NULL));
    ASSERT_OK(gh_spawn(&b, select_many, NULL));
    ASSERT_OK(gh_sleep(0.03));
    ASSERT_EQ(write(many[20][1], "m", 1), 1);
    ASSERT_EQ(join_rc(a), 1);
    ASSERT_EQ(join_rc(b), 1);
    char c;
    ASSERT_EQ(read(many[20][0], &c, 1), 1);
    /* parked for good, then the hub goes away under them */
    ASSERT_OK(gh_spawn(&a, poll_many, NULL));
    ASSERT_OK(gh_spawn(&b, select_many, NULL));
    gh_greenlet r;
    static int one_pair[2];
    bpair(one_pair);
    ASSERT_OK(gh_spawn(&r, read_forever, one_pair));
    ASSERT_OK(gh_sleep(0.03));
    ASSERT_OK(gh_release(a));
    ASSERT_OK(gh_release(b));
    ASSERT_OK(gh_release(r));
    ASSERT_OK(gh_hub_destroy());
    for (int i = 0; i < 24; i++) closepair(many[i]);
    closepair(one_pair);
}

/* ---- the sleep family ---------------------------------------------------------------- */

static void *do_sleeps(void *arg) {
    (void)arg;
    struct timespec ts = {0, 50 * 1000 * 1000};
    if (usleep(50000) != 0) return RC_PTR(-1);
    if (nanosleep(&ts, NULL) != 0) return RC_PTR(-2);
    if (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL) != 0) return RC_PTR(-3);
    struct timespec abs;
    clock_gettime(CLOCK_REALTIME, &abs);
    abs.tv_nsec += 50 * 1000 * 1000;
    if (abs.tv_nsec >= 1000000000) {
        abs.tv_sec++;
        abs.tv_nsec -= 1000000000;
    }
    if (clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &abs, NULL) != 0) return RC_PTR(-4);
    return RC_PTR(0);
}

TEST(sleeps_run_concurrently) {
    gh_greenlet g[20];
    size_t done;
    ticker_start();
    double t0 = gh_test_now();
    for (int i = 0; i < 20; i++) ASSERT_OK(gh_spawn(&g[i], do_sleeps, NULL));
    ASSERT_OK(gh_joinall(g, 20, 5.0, &done));
    ASSERT_EQ(done, 20);
    double dt = gh_test_now() - t0;
    ASSERT_TRUE(dt >= 0.19 && dt < 1.5); /* 20 x 0.2 s in ~0.2 s, not 4 s */
    for (int i = 0; i < 20; i++) {
        void *r;
        ASSERT_OK(gh_join(g[i], 0, &r));
        ASSERT_EQ(PTR_RC(r), 0);
        ASSERT_OK(gh_release(g[i]));
    }
    ASSERT_GE(ticks, 10);
    /* sleep(1) from main */
    int t1 = ticks;
    t0 = gh_test_now();
    ASSERT_EQ(sleep(1), 0);
    ASSERT_TRUE(gh_test_now() - t0 >= 0.99);
    ASSERT_GE(ticks - t1, 50);
    ASSERT_EQ(usleep(0), 0); /* a yield */
    ticker_stop();
    ASSERT_OK(gh_hub_destroy());
}

static void *long_nanosleep(void *arg) {
    struct timespec ts = {5, 0};
    struct timespec *rem = (struct timespec *)arg;
    int r = nanosleep(&ts, rem);
    return RC_PTR(r < 0 ? -errno : r);
}

TEST(sleep_killed_and_timed_out) {
    gh_greenlet g;
    void *r;
    struct timespec rem = {0, 0};
    gh_timeout t;
    ASSERT_OK(gh_spawn(&g, long_nanosleep, &rem));
    ASSERT_OK(gh_sleep(0.05));
    ASSERT_OK(gh_kill(g, 1.0));
    ASSERT_OK(gh_join(g, 1.0, &r));
    ASSERT_EQ(PTR_RC(r), -ECANCELED);
    ASSERT_TRUE(rem.tv_sec == 4); /* ~4.95 s not slept */
    ASSERT_OK(gh_release(g));
    ASSERT_OK(gh_timeout_start(&t, 0.05));
    ASSERT_EQ(usleep(2000000), -1);
    ASSERT_EQ(errno, ETIMEDOUT);
    ASSERT_OK(gh_timeout_cancel(t));
    ASSERT_OK(gh_timeout_start(&t, 0.05));
    ASSERT_EQ(sleep(3), 3); /* whole seconds not slept, rounded up */
    ASSERT_EQ(errno, ETIMEDOUT);
    ASSERT_OK(gh_timeout_cancel(t));
    struct timespec ts = {3, 0};
    ASSERT_OK(gh_timeout_start(&t, 0.05));
    ASSERT_EQ(clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &rem), ETIMEDOUT);
    ASSERT_OK(gh_timeout_cancel(t));
    ts.tv_nsec = -1; /* invalid: libc's EINVAL */
    ASSERT_EQ(nanosleep(&ts, NULL), -1);
    ASSERT_EQ(errno, EINVAL);
    ASSERT_OK(gh_hub_destroy());
}

/* ---- name lookups on the thread pool --------------------------------------------------- */

TEST(getaddrinfo_and_gethostbyname) {
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    ASSERT_OK(gh_sleep(0));
    ASSERT_EQ(getaddrinfo("localhost", "80", &hints, &res), 0);
    ASSERT_TRUE(res != NULL);
    ASSERT_EQ(((struct sockaddr_in *)res->ai_addr)->sin_addr.s_addr, htonl(INADDR_LOOPBACK));
    ASSERT_EQ(ntohs(((struct sockaddr_in *)res->ai_addr)->sin_port), 80);
    freeaddrinfo(res);
    ASSERT_EQ(getaddrinfo(NULL, "no-such-service-xyz", &hints, &res), EAI_SERVICE);
    hints.ai_family = 12345;
    ASSERT_EQ(getaddrinfo("localhost", NULL, &hints, &res), EAI_FAMILY);
    ASSERT_EQ(getaddrinfo(NULL, NULL, NULL, &res), EAI_NONAME);
    hints.ai_family = AF_INET;
    hints.ai_flags = AI_NUMERICHOST;
    ASSERT_EQ(getaddrinfo("127.0.0.1", NULL, &hints, &res), 0);
    freeaddrinfo(res);
    struct hostent *h = gethostbyname("localhost");
    ASSERT_TRUE(h != NULL);
    ASSERT_EQ(h->h_addrtype, AF_INET);
    ASSERT_EQ(((struct in_addr *)h->h_addr_list[0])->s_addr, htonl(INADDR_LOOPBACK));
    ASSERT_TRUE(strcmp(h->h_name, "localhost") == 0);
    struct hostent he, *out = NULL;
    char buf[1024];
    int herr = 0;
    ASSERT_EQ(gethostbyname_r("localhost", &he, buf, sizeof buf, &out, &herr), 0);
    ASSERT_TRUE(out == &he);
    ASSERT_TRUE(he.h_name >= buf && he.h_name < buf + sizeof buf); /* in the caller's buffer */
    ASSERT_EQ(((struct in_addr *)he.h_addr_list[0])->s_addr, htonl(INADDR_LOOPBACK));
    ASSERT_EQ(gethostbyname_r("localhost", &he, buf, 8, &out, &herr), ERANGE);
    ASSERT_OK(gh_hub_destroy());
}

static void *lookup_many(void *arg) {
    (void)arg;
    struct addrinfo *res = NULL;
    if (getaddrinfo("localhost", "443", NULL, &res) != 0) return RC_PTR(-1);
    freeaddrinfo(res);
    return RC_PTR(0);
}

TEST(getaddrinfo_from_greenlets_and_killed) {
    gh_greenlet g[8];
    size_t done;
    for (int i = 0; i < 8; i++) ASSERT_OK(gh_spawn(&g[i], lookup_many, NULL));
    ASSERT_OK(gh_joinall(g, 8, 10.0, &done));
    for (int i = 0; i < 8; i++) {
        void *r;
        ASSERT_OK(gh_join(g[i], 0, &r));
        ASSERT_EQ(PTR_RC(r), 0);
        ASSERT_OK(gh_release(g[i]));
    }
    /* killed at once: EAI_SYSTEM + ECANCELED, the lookup finishes on its worker */
    gh_greenlet k;
    ASSERT_OK(gh_spawn(&k, lookup_many, NULL));
    ASSERT_OK(gh_kill(k, 1.0));
    ASSERT_OK(gh_release(k));
    ASSERT_OK(gh_sleep(0.2));
    ASSERT_OK(gh_hub_destroy());
}


/* A blocking call inside a signal handler: plain libc, never a park (the handler runs
 * on the interrupted greenlet's stack). */
static int sig_fd, sig_result, sig_ticks_before, sig_ticks_after;
static void on_usr1(int sig) {
    char c;
    (void)sig;
    sig_ticks_before = ticks;
    sig_result = (int)read(sig_fd, &c, 1) < 0 ? -errno : 0; /* SO_RCVTIMEO 0.05 s */
    usleep(20000);
    sig_ticks_after = ticks;
}
static void on_usr2(int sig, siginfo_t *info, void *ctx) { (void)sig, (void)info, (void)ctx; }

static void *raise_usr1(void *arg) {
    (void)arg;
    raise(SIGUSR1);
    return NULL;
}

TEST(signal_handler_is_plain) {
    int sv[2];
    struct sigaction sa, old;
    bpair(sv);
    sig_fd = sv[0];
    set_timeo(sv[0], SO_RCVTIMEO, 0.05);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigemptyset(&sa.sa_mask);
    ASSERT_OK(sigaction(SIGUSR1, &sa, NULL));
    ASSERT_OK(sigaction(SIGUSR1, NULL, &old)); /* the program's view: its own handler */
    ASSERT_TRUE(old.sa_handler == on_usr1);
    ASSERT_TRUE(!(old.sa_flags & SA_SIGINFO));
    sa.sa_sigaction = on_usr2;
    sa.sa_flags = SA_SIGINFO;
    ASSERT_OK(sigaction(SIGUSR2, &sa, NULL));
    ASSERT_OK(sigaction(SIGUSR2, NULL, &old));
    ASSERT_TRUE(old.sa_sigaction == on_usr2 && (old.sa_flags & SA_SIGINFO));
    ASSERT_TRUE((void *)signal(SIGUSR2, SIG_IGN) == (void *)on_usr2);
    ASSERT_TRUE(signal(SIGUSR2, SIG_DFL) == SIG_IGN);
    ticker_start();
    ASSERT_OK(gh_sleep(0.03));
    gh_greenlet g;
    ASSERT_OK(gh_spawn(&g, raise_usr1, NULL));
    ASSERT_EQ(join_rc(g), 0);
    ASSERT_EQ(sig_result, -EAGAIN);
    ASSERT_EQ(sig_ticks_after, sig_ticks_before); /* nothing else ran: plain libc */
    raise(SIGUSR1); /* and from main */
    ASSERT_EQ(sig_result, -EAGAIN);
    ASSERT_EQ(sig_ticks_after, sig_ticks_before);
    ticker_stop();
    closepair(sv);
    ASSERT_OK(gh_hub_destroy());
}

/* ---- where the patch is plain libc ------------------------------------------------------ */

static int thr_fd;
static void *thread_without_hub(void *arg) {
    (void)arg;
    char buf[4];
    if (gh_hub_context() != GH_CONTEXT_NONE) return RC_PTR(-1);
    ssize_t n = read(thr_fd, buf, sizeof buf); /* libc's blocking read */
    usleep(1000);
    if (gh_hub_context() != GH_CONTEXT_NONE) return RC_PTR(-2); /* no hub was made */
    return RC_PTR((int)n);
}

TEST(thread_without_hub_is_plain) {
    int sv[2];
    pthread_t t;
    void *r;
    bpair(sv);
    thr_fd = sv[0];
    ASSERT_OK(pthread_create(&t, NULL, thread_without_hub, NULL));
    ASSERT_OK(gh_sleep(0.05)); /* main has a hub; the thread blocks in the kernel */
    ASSERT_EQ(write(sv[1], "thr", 3), 3);
    ASSERT_OK(pthread_join(t, &r));
    ASSERT_EQ(PTR_RC(r), 3);
    closepair(sv);
    ASSERT_OK(gh_hub_destroy());
}

static int cb_fd, cb_result, cb_context;
static void in_callback(void *arg) {
    (void)arg;
    char buf[4];
    cb_context = gh_hub_context();
    struct pollfd p = {cb_fd, POLLIN, 0};
    /* blocking calls in a hub callback: plain libc (data is there, so none blocks long) */
    cb_result = (int)read(cb_fd, buf, sizeof buf) + poll(&p, 1, 10) * 10 + usleep(1000) * 100;
}

TEST(callback_is_plain) {
    int sv[2];
    bpair(sv);
    cb_fd = sv[0];
    ASSERT_EQ(write(sv[1], "cb", 2), 2);
    ASSERT_OK(gh_run_callback(in_callback, NULL));
    ASSERT_OK(gh_sleep(0.05));
    ASSERT_EQ(cb_context, GH_CONTEXT_HUB);
    ASSERT_EQ(cb_result, 2); /* read 2, poll timed out (0), usleep 0 */
    closepair(sv);
    ASSERT_OK(gh_hub_destroy());
}

static void *child_greenlet(void *arg) {
    int fd = *(int *)arg;
    char buf[4];
    return RC_PTR((int)read(fd, buf, sizeof buf));
}

TEST(fork_child_cooperative) {
    int sv[2];
    bpair(sv);
    ticker_start();
    ASSERT_OK(gh_sleep(0.02));
    pid_t pid = fork();
    ASSERT_TRUE(pid >= 0);
    if (pid == 0) {
        /* the child's first greenhub call finds a fresh hub; the patch works in it */
        gh_greenlet g;
        struct later l = {sv[1], "kid", 3, 0.05, 0};
        if (gh_spawn(&g, child_greenlet, &sv[0]) != GH_OK) _exit(10);
        gh_greenlet w = later_spawn(&l);
        void *r;
        if (gh_join(g, 5.0, &r) != GH_OK || PTR_RC(r) != 3) _exit(11);
        if (gh_join(w, 5.0, &r) != GH_OK) _exit(12);
        if (sleep(0) != 0 || usleep(10000) != 0) _exit(13);
        _exit(0);
    }
    int status;
    ASSERT_EQ(waitpid(pid, &status, 0), pid); /* waitpid is plain libc */
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0);
    ticker_stop();
    closepair(sv);
    ASSERT_OK(gh_hub_destroy());
}


/* The monitor stays useful: a patched sleep is not a blockage; a call the patch does
 * not cover (here the raw nanosleep syscall) still is. */
static volatile int reports;
static void on_report(const gh_block_report *r, void *arg) {
    (void)arg;
    if (!r->ended) __atomic_fetch_add(&reports, 1, __ATOMIC_SEQ_CST);
}
static double mon_threshold(void) { /* valgrind: ~50x slower, longer times */
    const char *pre = getenv("LD_PRELOAD");
    return pre && strstr(pre, "vgpreload") ? 0.3 : 0.05;
}
static void *patched_sleep(void *arg) {
    (void)arg;
    usleep((useconds_t)(mon_threshold() * 6e6));
    return NULL;
}
static void *raw_sleep(void *arg) {
    (void)arg;
    double s = mon_threshold() * 6;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    syscall(SYS_nanosleep, &ts, NULL);
    return NULL;
}

TEST(monitor_reports_only_real_blocking) {
    gh_greenlet g;
    ASSERT_OK(gh_monitor_set_callback(on_report, NULL));
    ASSERT_OK(gh_monitor_start(mon_threshold()));
    ASSERT_OK(gh_spawn(&g, patched_sleep, NULL));
    ASSERT_EQ(join_rc(g), 0);
    ASSERT_OK(gh_sleep(mon_threshold() * 2));
    ASSERT_EQ(__atomic_load_n(&reports, __ATOMIC_SEQ_CST), 0);
    ASSERT_OK(gh_spawn(&g, raw_sleep, NULL));
    ASSERT_EQ(join_rc(g), 0);
    for (int i = 0; i < 100 && __atomic_load_n(&reports, __ATOMIC_SEQ_CST) == 0; i++)
        ASSERT_OK(gh_sleep(0.02));
    ASSERT_GE(__atomic_load_n(&reports, __ATOMIC_SEQ_CST), 1);
    ASSERT_OK(gh_monitor_stop());
    ASSERT_OK(gh_monitor_set_callback(NULL, NULL));
    ASSERT_OK(gh_hub_destroy());
}

/* GREENHUB_PATCH=0: this program again, one case, with the patch turned off. */
TEST(patch_off_child) {
    int sv[2];
    char c;
    if (!getenv("GH_PATCH_OFF_CHILD")) return; /* only as the re-executed child */
    ASSERT_EQ(gh_patch_active(), 0);
    ASSERT_TRUE(strstr(gh_patch_info(), "inactive") != NULL);
    bpair(sv);
    set_timeo(sv[0], SO_RCVTIMEO, 0.1);
    ticker_start();
    ASSERT_EQ(read(sv[0], &c, 1), -1); /* libc's read blocked the thread */
    ASSERT_EQ(errno, EAGAIN);
    ASSERT_EQ(ticks, 0);
    ticker_stop();
    closepair(sv);
    ASSERT_OK(gh_hub_destroy());
}

TEST(patch_off_by_env) {
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    ASSERT_TRUE(n > 0);
    self[n] = 0;
    pid_t pid = fork();
    if (pid == 0) {
        setenv("GREENHUB_PATCH", "0", 1);
        setenv("GH_PATCH_OFF_CHILD", "1", 1);
        execl(self, self, "patch_off_child", (char *)NULL);
        _exit(127);
    }
    int status;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0);
}

int main(int argc, char **argv) {
    TEST_INIT(argc, argv);
    RUN(poll_waits_cooperatively);
    RUN(poll_killed_and_timed_out);
    RUN(ppoll_waits);
    RUN(select_waits);
    RUN(epoll_wait_program_epoll);
    RUN(many_fds_and_destroy_while_parked);
    RUN(sleeps_run_concurrently);
    RUN(sleep_killed_and_timed_out);
    RUN(getaddrinfo_and_gethostbyname);
    RUN(getaddrinfo_from_greenlets_and_killed);
    RUN(thread_without_hub_is_plain);
    RUN(callback_is_plain);
    RUN(signal_handler_is_plain);
    RUN(fork_child_cooperative);
    RUN(monitor_reports_only_real_blocking);
    RUN(patch_off_child);
    RUN(patch_off_by_env);
    return TEST_DONE();
}

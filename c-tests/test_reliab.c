/* test_reliab.c — issue 15, "Reliability, round two": the holes probing found, each
 * a case here that failed before its fix (FAULTS.md 43-54; the map in docs/faults.md).
 * Every case runs in its own forked process (harness.h) and ends with the hub destroyed
 * and its fd count (and the mapping count where it says so) back at its start.
 */
#include "harness.h"

#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/un.h>

#define SA(p) ((struct sockaddr *)(p))

/* Runs fn(arg) in a forked child whose stderr goes to `err` (NUL-terminated, at most
 * errlen - 1 bytes; echoed to our stderr); returns the child's wait status. */
static int run_capturing_stderr(void (*fn)(void *), void *arg, char *err, size_t errlen) {
    int p[2], pid, st = -1;
    size_t len = 0;
    ssize_t n;
    ASSERT_OK(pipe(p));
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    ASSERT_TRUE(pid >= 0);
    if (pid == 0) {
        struct rlimit nocore = {0, 0};
        setrlimit(RLIMIT_CORE, &nocore);
        dup2(p[1], 2);
        close(p[0]);
        close(p[1]);
        fn(arg);
        _exit(0);
    }
    close(p[1]);
    while ((n = read(p[0], err + len, errlen - 1 - len)) > 0) len += (size_t)n;
    err[len] = 0;
    close(p[0]);
    ASSERT_EQ(waitpid(pid, &st, 0), pid);
    if (len) fprintf(stderr, "%s", err);
    return st;
}

/* ==== 1. gh_connect on AF_UNIX with the listener's backlog full (FAULTS 43) ======= */

/* A listening AF_UNIX socket (abstract name) whose backlog is full: non-blocking
 * connects to it fail with EAGAIN. Returns the listener; *addr is its address; the
 * filler sockets go to fill[0..*nfill). */
static int full_unix_listener(struct sockaddr_un *addr, int fill[], int *nfill, int max) {
    int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), c;
    ASSERT_TRUE(l >= 0);
    memset(addr, 0, sizeof *addr);
    addr->sun_family = AF_UNIX;
    snprintf(addr->sun_path + 1, sizeof addr->sun_path - 1, "gh-reliab-%d", (int)getpid());
    ASSERT_OK(bind(l, SA(addr), sizeof *addr));
    ASSERT_OK(listen(l, 0));
    *nfill = 0;
    for (;;) {
        ASSERT_TRUE(*nfill < max);
        c = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        ASSERT_TRUE(c >= 0);
        if (connect(c, SA(addr), sizeof *addr) < 0) {
            ASSERT_EQ(errno, EAGAIN);
            close(c);
            break;
        }
        fill[(*nfill)++] = c;
    }
    return l;
}

static int unix_listener;
static void *accept_later(void *arg) {
    int fd;
    (void)arg;
    if (gh_sleep(0.05) != GH_OK) return (void *)-1;
    fd = gh_accept(unix_listener, NULL, NULL, 5);
    if (fd < 0) return (void *)-1;
    close(fd);
    return NULL;
}

/* Nobody accepts: gh_connect waits (as a blocking connect does) and times out, never
 * GH_OK on an unconnected socket. Then a greenlet accepts one queued connection 50 ms
 * later: gh_connect returns GH_OK and the socket is connected (gh_write works). */
TEST(connect_unix_backlog_full) {
    struct sockaddr_un a;
    int fill[64], nfill, l, c, i, fds0 = gh_test_fd_count();
    double t0;
    void *r = (void *)1;
    gh_greenlet g;
    l = full_unix_listener(&a, fill, &nfill, 64);
    c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    t0 = gh_test_now();
    ASSERT_CODE(gh_connect(c, SA(&a), sizeof a, 0.1), GH_ETIMEDOUT);
    ASSERT_TRUE(gh_test_now() - t0 >= 0.09);
    ASSERT_CODE(gh_connect(c, SA(&a), sizeof a, 0), GH_ETIMEDOUT);
    unix_listener = l;
    ASSERT_OK(gh_spawn(&g, accept_later, NULL));
    ASSERT_OK(gh_connect(c, SA(&a), sizeof a, 5));
    ASSERT_CODE(gh_write(c, "x", 1, 1), 1);
    ASSERT_OK(gh_join(g, 5, &r));
    ASSERT_TRUE(r == NULL);
    ASSERT_OK(gh_close(c));
    for (i = 0; i < nfill; i++) close(fill[i]);
    close(l);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* ==== 8. the per-fd "not a socket" cache and a reused number (FAULTS 49) ========= */

/* Closes fd `num` behind greenhub's back and puts a new socket at its number (made
 * while `num` was still open, then dup2()ed there): as if the number had been reused by
 * a socket. sv[1] is the socket's peer. */
static void socket_at(int num, int sv[2]) {
    int s[2];
    ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s));
    close(num);
    ASSERT_EQ(dup2(s[0], num), num);
    close(s[0]);
    sv[0] = num;
    sv[1] = s[1];
}

/* gh_read and gh_write learn that a pipe is not a socket (and make it O_NONBLOCK);
 * the pipe is close()d behind greenhub's back and its numbers reused by sockets:
 * gh_read / gh_write on them work and leave their flags alone (no O_NONBLOCK). */
TEST(not_socket_cache_forgotten_on_reuse) {
    int p[2], r[2], w[2], fds0 = gh_test_fd_count();
    char c = 0;
    ASSERT_OK(pipe(p));
    ASSERT_CODE(gh_write(p[1], "a", 1, 1), 1);
    ASSERT_CODE(gh_read(p[0], &c, 1, 1), 1);
    ASSERT_TRUE((fcntl(p[0], F_GETFL) & O_NONBLOCK) != 0);
    ASSERT_TRUE((fcntl(p[1], F_GETFL) & O_NONBLOCK) != 0);
    socket_at(p[0], r);
    socket_at(p[1], w);
    ASSERT_EQ(write(r[1], "b", 1), 1);
    ASSERT_CODE(gh_read(r[0], &c, 1, 1), 1);
    ASSERT_EQ(c, 'b');
    ASSERT_CODE(gh_write(w[0], "c", 1, 1), 1);
    ASSERT_EQ(read(w[1], &c, 1), 1);
    ASSERT_EQ(c, 'c');
    ASSERT_EQ(fcntl(r[0], F_GETFL) & O_NONBLOCK, 0);
    ASSERT_EQ(fcntl(w[0], F_GETFL) & O_NONBLOCK, 0);
    /* and the other way: sockets' numbers reused by pipes are made non-blocking */
    close(r[0]);
    close(w[0]);
    ASSERT_OK(pipe(p));
    ASSERT_CODE(gh_write(p[1], "d", 1, 1), 1);
    ASSERT_CODE(gh_read(p[0], &c, 1, 1), 1);
    ASSERT_EQ(c, 'd');
    ASSERT_TRUE((fcntl(p[0], F_GETFL) & O_NONBLOCK) != 0);
    close(p[0]);
    close(p[1]);
    close(r[1]);
    close(w[1]);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* ==== 9. hub ids wrap after 65,534 hubs (FAULTS 50) ============================= */

static void *return_arg(void *arg) { return arg; }
static void call_noop(void *arg) { (void)arg; }

/* A greenlet handle, a watcher handle and a gh_hub_ref of the first hub, then 70,000
 * more hub lifetimes (each spawning a greenlet and making a watcher, so the same slots
 * are in use with low generations): the first hub's handles stay GH_EBADHANDLE all the
 * way, and gh_kill never reaches a greenlet of a later hub. */
TEST(stale_handles_survive_hub_id_wrap) {
    gh_greenlet first, g;
    gh_watcher first_w, w;
    gh_hub_ref first_hub;
    int i, n = gh_test_under_valgrind() ? 66000 : 70000, fds0 = gh_test_fd_count();
    ASSERT_OK(gh_spawn(&first, return_arg, NULL));
    ASSERT_OK(gh_timer_new(&first_w, 1, 0));
    first_hub = gh_hub_current();
    ASSERT_OK(gh_hub_destroy());
    for (i = 0; i < n; i++) {
        ASSERT_OK(gh_spawn(&g, return_arg, NULL));
        ASSERT_OK(gh_timer_new(&w, 1, 0));
        ASSERT_CODE(gh_kill(first, 0), GH_EBADHANDLE);
        ASSERT_CODE(gh_greenlet_state(first), GH_EBADHANDLE);
        ASSERT_CODE(gh_watcher_active(first_w), GH_EBADHANDLE);
        ASSERT_CODE(gh_hub_call_threadsafe(first_hub, call_noop, NULL), GH_EBADHANDLE);
        ASSERT_EQ(gh_greenlet_state(g), GH_STATE_NEW);
        ASSERT_OK(gh_hub_destroy());
    }
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* ==== 2. teardown with greenlets parked in gh_waitpid / gh_joinall (FAULTS 44) ===== */

/* Open fds that are pidfds (anon_inode:[pidfd]). */
static int pidfd_count(void) {
    char path[64], link[64];
    int fd, n = 0;
    ssize_t len;
    for (fd = 0; fd < 1024; fd++) {
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        len = readlink(path, link, sizeof link - 1);
        if (len <= 0) continue;
        link[len] = 0;
        if (strstr(link, "pidfd")) n++;
    }
    return n;
}

static void *waitpid_forever(void *arg) {
    int st;
    return (void *)(intptr_t)gh_waitpid((int)(intptr_t)arg, &st, GH_FOREVER);
}

#define JOIN_N 50000 /* 400 KB of ids: a Vec that size would be its own mapping */
static gh_greenlet join_list[JOIN_N];
static void *joinall_forever(void *arg) {
    size_t done;
    (void)arg;
    return (void *)(intptr_t)gh_joinall(join_list, JOIN_N, GH_FOREVER, &done);
}
static void *sleep_forever(void *arg) {
    (void)arg;
    return (void *)(intptr_t)gh_sleep(GH_FOREVER);
}

/* A child process that sleeps until killed, and dies with this one (never keeps the
 * harness's output pipe open). */
static int spawn_sleeper(void) {
    int pid;
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    ASSERT_TRUE(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(1);
        close(2);
        alarm(60);
        for (;;) pause();
    }
    return pid;
}

static size_t heap_in_use(void) {
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

/* 10 hub lifetimes, each destroyed with one greenlet parked in gh_waitpid (on a live
 * child: a pidfd) and one in gh_joinall over 50,000 handles: no pidfd left open, fd
 * and mapping counts at baseline, the heap does not grow (valgrind: nothing lost). */
TEST(destroy_with_waitpid_and_joinall_parked) {
    int i, k, st, fds0 = 0, pid;
    long maps0 = 0;
    size_t heap0 = 0;
    gh_greenlet g;
    int have_pidfd, probe = (int)syscall(SYS_pidfd_open, getpid(), 0);
    have_pidfd = probe >= 0;
    if (probe >= 0) close(probe);
    pid = spawn_sleeper();
    for (k = 0; k < 11; k++) {
        if (k == 1) { /* after a warm-up lifetime */
            fds0 = gh_test_fd_count();
            maps0 = gh_test_map_count();
            heap0 = heap_in_use();
        }
        ASSERT_OK(gh_spawn(&g, waitpid_forever, (void *)(intptr_t)pid));
        ASSERT_OK(gh_spawn(&join_list[0], sleep_forever, NULL));
        for (i = 1; i < JOIN_N; i++) join_list[i] = join_list[0];
        ASSERT_OK(gh_spawn(&g, joinall_forever, NULL));
        ASSERT_OK(gh_sleep(0.01));
        ASSERT_EQ(gh_greenlet_state(g), GH_STATE_WAITING);
        ASSERT_EQ(pidfd_count(), have_pidfd); /* (valgrind has no pidfd_open: polling) */
        ASSERT_OK(gh_hub_destroy());
        ASSERT_EQ(pidfd_count(), 0);
    }
    ASSERT_EQ(gh_test_fd_count(), fds0);
    if (!gh_test_under_valgrind() && !GH_TEST_ASAN) {
        ASSERT_EQ(gh_test_map_count(), maps0);
        ASSERT_TRUE(heap_in_use() < heap0 + 64 * 1024);
    }
    kill(pid, SIGKILL);
    ASSERT_EQ(waitpid(pid, &st, 0), pid);
}

/* ==== 11. gh_close on the hub's own fds; a backend fd closed behind its back (FAULTS 52) */

static int stderr_to_file(FILE **f) {
    int saved = dup(2);
    *f = tmpfile();
    ASSERT_TRUE(*f != NULL);
    ASSERT_TRUE(dup2(fileno(*f), 2) == 2);
    return saved;
}
static int count_lines(FILE *f, int saved_stderr, const char *needle) {
    char line[512];
    int n = 0;
    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    rewind(f);
    while (fgets(line, sizeof line, f)) {
        if (strstr(line, needle)) n++;
        fputs(line, stderr);
    }
    fclose(f);
    return n;
}

static int sleeper_rc = 12345;
static void *sleep_100ms(void *arg) {
    (void)arg;
    sleeper_rc = gh_sleep(0.1);
    return NULL;
}

/* gh_close of the backend fd is refused (GH_EBUSY) and the hub keeps working; then the
 * backend fd is close()d behind greenhub's back: at most one line about it on stderr,
 * no busy loop (a 200 ms sleep takes ~200 ms of wall time and little CPU), and the hub
 * still works: sleeps, a greenlet, IO on a socketpair. */
TEST(backend_fd_close_refused_and_survived) {
    int fd, sv[2], p[2], fds0 = gh_test_fd_count(), saved, lines;
    const char *backend;
    double t0;
    char c = 0;
    clock_t cpu0;
    gh_greenlet g;
    FILE *err;
    fd = gh_hub_backend_fd();
    backend = gh_hub_backend();
    if (fd == GH_ENOTSUP) { /* poll, select, a plug-in without one: no backend fd */
        ASSERT_TRUE(strcmp(backend, "epoll") != 0 && strcmp(backend, "polling") != 0);
        ASSERT_OK(gh_hub_destroy());
        return;
    }
    ASSERT_TRUE(fd >= 0);
    ASSERT_CODE(gh_close(fd), GH_EBUSY);
    ASSERT_TRUE(fcntl(fd, F_GETFD) >= 0);
    ASSERT_OK(gh_sleep(0.01));
    ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
    saved = stderr_to_file(&err);
    close(fd); /* behind greenhub's back */
    t0 = gh_test_now();
    cpu0 = clock();
    ASSERT_OK(gh_spawn(&g, sleep_100ms, NULL));
    ASSERT_OK(gh_sleep(0.2));
    ASSERT_OK(gh_join(g, 5, NULL));
    ASSERT_OK(sleeper_rc);
    ASSERT_TRUE(gh_test_now() - t0 >= 0.19);
    ASSERT_TRUE((double)(clock() - cpu0) / CLOCKS_PER_SEC < 0.1);
    ASSERT_EQ(write(sv[1], "x", 1), 1);
    ASSERT_CODE(gh_read(sv[0], &c, 1, 2), 1);
    lines = count_lines(err, saved, "greenhub");
    ASSERT_LE(lines, 1);
    /* again, with the number reused at once by a pipe: the pipe is left alone */
    fd = gh_hub_backend_fd();
    ASSERT_TRUE(fd >= 0);
    ASSERT_OK(pipe(p));
    close(fd);
    ASSERT_EQ(dup2(p[0], fd), fd);
    ASSERT_OK(gh_sleep(0.05));
    ASSERT_EQ(write(sv[1], "y", 1), 1);
    ASSERT_CODE(gh_read(sv[0], &c, 1, 2), 1);
    ASSERT_TRUE(fcntl(fd, F_GETFD) >= 0);
    ASSERT_EQ(write(p[1], "z", 1), 1);
    ASSERT_EQ(read(fd, &c, 1), 1);
    ASSERT_EQ(c, 'z');
    close(fd);
    close(p[0]);
    close(p[1]);
    close(sv[0]);
    close(sv[1]);
    ASSERT_OK(gh_hub_destroy());
    /* (polling: a poller whose fd number holds another file is leaked, with its own
     * timerfd and eventfd, rather than risk closing someone else's file) */
    if (strcmp(backend, "polling") == 0) ASSERT_EQ(gh_test_fd_count(), fds0 + 2);
    else ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* ==== 7. calls during and after thread and process teardown (FAULTS 48) ========== */

static int late_rc[8];
static void late_calls(void) {
    gh_greenlet g;
    void *r = NULL;
    late_rc[0] = gh_sleep(0);
    late_rc[1] = gh_spawn(&g, return_arg, (void *)5);
    late_rc[2] = gh_join(g, 1, &r);
    late_rc[3] = r == (void *)5 ? GH_OK : -1;
    late_rc[4] = gh_release(g);
    late_rc[5] = gh_hub_destroy();
    late_rc[6] = gh_sleep(0);
}
static void atexit_handler(void) {
    int i, pid, st = 0;
    late_calls();
    for (i = 0; i < 7; i++)
        if (late_rc[i] != GH_OK) {
            fprintf(stderr, "atexit: call %d returned %s\n", i, gh_err_name(late_rc[i]));
            _exit(3);
        }
    fflush(stdout);
    fflush(stderr);
    pid = fork(); /* the fork handlers work during teardown too */
    if (pid == 0) _exit(gh_sleep(0) == GH_OK ? 0 : 4);
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        _exit(5);
}

/* A child process uses its hub, destroys it, uses it again and calls exit(): its
 * atexit handler (run after the main thread's destructors) gets GH_OK from gh_sleep,
 * gh_spawn, gh_join, gh_release, gh_hub_destroy, gh_sleep again, and can fork; no
 * panic text on stderr. */
static void atexit_child(void *arg) {
    (void)arg;
    atexit(atexit_handler);
    if (gh_sleep(0.001) != GH_OK || gh_hub_destroy() != GH_OK || gh_sleep(0) != GH_OK)
        _exit(6);
    exit(0);
}
TEST(calls_in_atexit_after_teardown) {
    int st, fds0 = gh_test_fd_count();
    static char buf[4096];
    st = run_capturing_stderr(atexit_child, NULL, buf, sizeof buf);
    ASSERT_TRUE(strstr(buf, "panicked") == NULL);
    ASSERT_TRUE(WIFEXITED(st));
    ASSERT_EQ(WEXITSTATUS(st), 0);
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

static pthread_key_t late_key;
static void key_destructor(void *v) {
    (void)v;
    late_calls();
    late_rc[5] = gh_sleep(0.001); /* leave a live hub behind: greenhub frees it */
}
static void *thread_with_key(void *arg) {
    (void)arg;
    pthread_setspecific(late_key, (void *)1);
    return (void *)(intptr_t)gh_sleep(0.001);
}

/* A thread uses its hub and exits; a pthread-key destructor (run after the thread's
 * greenhub state was torn down) then uses greenhub: GH_OK everywhere, and the hub it
 * made is freed (fd count at baseline; valgrind: nothing lost). */
TEST(calls_in_thread_key_destructor) {
    pthread_t t;
    void *r = (void *)1;
    int i, fds0 = gh_test_fd_count();
    ASSERT_OK(pthread_key_create(&late_key, key_destructor));
    ASSERT_OK(pthread_create(&t, NULL, thread_with_key, NULL));
    ASSERT_OK(pthread_join(t, &r));
    ASSERT_TRUE(r == NULL);
    for (i = 0; i < 7; i++) ASSERT_OK(late_rc[i]);
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* ==== 10. gh_async_send from a signal handler; other calls there (FAULTS 51) ===== */

static gh_watcher sig_async;
static gh_greenlet sig_g;
static volatile sig_atomic_t sig_sends, sig_bad, sig_eperm;
static int async_fired;
static void on_alarm(int sig) {
    int rc, saved = errno;
    (void)sig;
    rc = gh_async_send(sig_async);
    if (rc == GH_OK) sig_sends++;
    else sig_bad = rc;
    /* another call: works, or GH_EPERM when it interrupted greenhub; never a panic */
    rc = gh_greenlet_state(sig_g);
    if (rc == GH_EPERM) sig_eperm++;
    else if (rc < 0) sig_bad = rc;
    errno = saved;
}
static void async_cb(gh_watcher w, int revents, void *arg) {
    (void)w;
    (void)revents;
    (void)arg;
    async_fired++;
}
static void *busy_greenlet(void *arg) {
    int i;
    (void)arg;
    for (i = 0; i < 1000000; i++)
        if (gh_sleep(0) != GH_OK) break;
    return NULL;
}

/* SIGALRM every 50 us while the hub loops (yields, async callbacks): the handler's
 * gh_async_send never deadlocks and always succeeds; its gh_greenlet_state answers a
 * state or GH_EPERM, never GH_EINTERNAL; a send after the last signal still fires the
 * callback. No panic text (stderr is checked by eye: the case fails on EINTERNAL). */
TEST(async_send_from_signal_handler) {
    struct sigaction sa;
    struct itimerval it;
    double t0;
    int fired, fds0 = gh_test_fd_count();
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    ASSERT_OK(sigaction(SIGPROF, &sa, NULL));
    ASSERT_OK(gh_async_new(&sig_async));
    ASSERT_OK(gh_watcher_start(sig_async, async_cb, NULL));
    ASSERT_OK(gh_spawn(&sig_g, busy_greenlet, NULL));
    memset(&it, 0, sizeof it);
    it.it_interval.tv_usec = 50;
    it.it_value.tv_usec = 50;
    ASSERT_OK(setitimer(ITIMER_PROF, &it, NULL));
    t0 = gh_test_now();
    while (gh_test_now() - t0 < (gh_test_under_valgrind() ? 2.0 : 0.5)) ASSERT_OK(gh_sleep(0));
    memset(&it, 0, sizeof it);
    ASSERT_OK(setitimer(ITIMER_PROF, &it, NULL));
    ASSERT_OK(gh_kill(sig_g, 5));
    ASSERT_EQ(sig_bad, 0);
    ASSERT_TRUE(sig_sends > 10);
    ASSERT_OK(gh_sleep(0.01));
    fired = async_fired;
    ASSERT_TRUE(fired >= 1);
    raise(SIGPROF);
    ASSERT_OK(gh_sleep(0.01));
    ASSERT_EQ(async_fired, fired + 1);
    printf("  %d sends from the handler, %d callbacks, %d GH_EPERM\n", (int)sig_sends,
           async_fired, (int)sig_eperm);
    ASSERT_OK(gh_watcher_close(sig_async));
    ASSERT_CODE(gh_async_send(sig_async), GH_EBADHANDLE);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* ==== 6 and 5. after fork: fds the child owns; a child at EMFILE (FAULTS 47) ===== */

static int fork_read_rc = 12345;
static char fork_read_c;
static void *fork_reader(void *arg) {
    fork_read_rc = (int)gh_read((int)(intptr_t)arg, &fork_read_c, 1, 10);
    return NULL;
}

/* Runs `child` in a forked child (exit code 0 = passed) and returns its exit status. */
static int in_child(void (*child)(void *), void *arg) {
    int pid, st = -1;
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    ASSERT_TRUE(pid >= 0);
    if (pid == 0) {
        child(arg);
        _exit(0);
    }
    ASSERT_EQ(waitpid(pid, &st, 0), pid);
    ASSERT_TRUE(WIFEXITED(st));
    return WEXITSTATUS(st);
}

static void closefrom_child(void *arg) {
    int sv[4][2], i, fd;
    char c;
    (void)arg;
    for (fd = 3; fd < 1024; fd++) close(fd); /* closefrom(3) */
    for (i = 0; i < 4; i++) ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv[i]));
    ASSERT_OK(gh_sleep(0.001)); /* the first call after fork: greenhub's fork cleanup */
    for (i = 0; i < 4; i++) {
        ASSERT_TRUE(fcntl(sv[i][0], F_GETFD) >= 0);
        ASSERT_TRUE(fcntl(sv[i][1], F_GETFD) >= 0);
        ASSERT_EQ(write(sv[i][1], "k", 1), 1);
        ASSERT_CODE(gh_read(sv[i][0], &c, 1, 1), 1);
    }
    ASSERT_OK(gh_hub_destroy());
    for (i = 0; i < 4; i++) {
        ASSERT_TRUE(fcntl(sv[i][0], F_GETFD) >= 0);
        ASSERT_TRUE(fcntl(sv[i][1], F_GETFD) >= 0);
    }
}

/* A child that ran closefrom(3) and opened new sockets keeps them all: greenhub's
 * after-fork cleanup closes an inherited fd only if it is still the same open file. */
TEST(fork_child_closefrom_keeps_new_fds) {
    int fds0 = gh_test_fd_count();
    const char *b = gh_hub_backend();
    if (b && strcmp(b, "epoll") != 0 && strcmp(b, "polling") != 0 && strcmp(b, "poll") != 0 &&
        strcmp(b, "select") != 0)
        SKIP("backend %s is a plug-in: its own fds and its fork_child are its business "
             "(libev's loop closes the numbers it had, which closefrom(3) gave to the "
             "child's sockets); runs under every built-in backend", b);
    ASSERT_OK(gh_sleep(0.001)); /* a hub: its epoll fd and eventfd are inherited */
    ASSERT_EQ(in_child(closefrom_child, NULL), 0);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* Fills every free fd number below `limit` and lowers RLIMIT_NOFILE to `limit`: no
 * new fd can be made (the numbers at or above it, e.g. greenhub's inherited ones, do
 * not help once freed). Returns the old limit. */
static struct rlimit fill_fds_below(int limit) {
    struct rlimit old, lim;
    int fd;
    ASSERT_OK(getrlimit(RLIMIT_NOFILE, &old));
    lim = old;
    lim.rlim_cur = (rlim_t)limit;
    ASSERT_OK(setrlimit(RLIMIT_NOFILE, &lim));
    while ((fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0) {
    }
    ASSERT_EQ(errno, EMFILE);
    return old;
}

static int parent_backend_fd;
static void emfile_child(void *arg) {
    int a0 = (int)(intptr_t)arg, fd;
    struct rlimit old = fill_fds_below(parent_backend_fd);
    ASSERT_CODE(gh_close(a0), GH_EMFILE);
    ASSERT_CODE(gh_wait_read(a0, 0.01), GH_EMFILE);
    ASSERT_CODE(gh_sleep(0), GH_EMFILE);
    ASSERT_TRUE(fcntl(a0, F_GETFD) >= 0);
    /* room again: the next call builds the child's own loop */
    ASSERT_OK(setrlimit(RLIMIT_NOFILE, &old));
    for (fd = a0 + 2; fd < parent_backend_fd; fd++) close(fd);
    ASSERT_OK(gh_sleep(0.001));
    ASSERT_OK(gh_close(a0));
    ASSERT_OK(gh_hub_destroy());
}

/* A child at EMFILE cannot make its own loop: its calls fail with GH_EMFILE and never
 * touch the parent's epoll set (gh_close of a watched fd there does not remove the
 * parent's registration: the parent's reader still gets its data); once fds free up
 * the child's next call works. */
TEST(fork_child_at_emfile_leaves_parent_alone) {
    int a[2], fds0 = gh_test_fd_count();
    gh_greenlet g;
    ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a));
    ASSERT_OK(gh_spawn(&g, fork_reader, (void *)(intptr_t)a[0]));
    ASSERT_OK(gh_sleep(0.001));
    ASSERT_EQ(gh_greenlet_state(g), GH_STATE_WAITING);
    parent_backend_fd = gh_hub_backend_fd();
    if (parent_backend_fd == GH_ENOTSUP) parent_backend_fd = a[1] + 1; /* "poll" */
    ASSERT_TRUE(parent_backend_fd > a[1]);
    ASSERT_EQ(in_child(emfile_child, (void *)(intptr_t)a[0]), 0);
    ASSERT_EQ(write(a[1], "p", 1), 1);
    ASSERT_OK(gh_join(g, 5, NULL));
    ASSERT_EQ(fork_read_rc, 1);
    ASSERT_EQ(fork_read_c, 'p');
    close(a[0]);
    close(a[1]);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fds0);
}

/* ==== 13. smaller ones (FAULTS 54 and others) ==================================== */

static gh_hub_ref other_hub;
static gh_watcher other_async;
static int other_pipe[2];
static volatile int other_ran;
static void mark_other_ran(void *arg) {
    (void)arg;
    other_ran = 1;
}
static void *other_thread(void *arg) {
    char c;
    (void)arg;
    other_hub = gh_hub_current();
    if (gh_async_new(&other_async) != GH_OK) return (void *)1;
    if (gh_watcher_start(other_async, async_cb, NULL) != GH_OK) return (void *)1;
    if (gh_read(other_pipe[0], &c, 1, 10) != 1) return (void *)1; /* until told to end */
    gh_hub_destroy();
    return NULL;
}
static void call_dead_hub_child(void *arg) {
    (void)arg;
    ASSERT_CODE(gh_hub_call_threadsafe(other_hub, call_noop, NULL), GH_EBADHANDLE);
    ASSERT_CODE(gh_async_send(other_async), GH_EBADHANDLE);
    ASSERT_OK(gh_hub_call_threadsafe(gh_hub_current(), call_noop, NULL));
    ASSERT_OK(gh_sleep(0.001));
    ASSERT_OK(gh_hub_destroy());
    /* Under valgrind the child would "definitely lose" the other thread's hub: its only
     * pointer is in that thread's TLS, and the thread is not in the child. End without
     * a leak check (exec), with status 0. */
    if (gh_test_under_valgrind()) execl("/bin/true", "true", (char *)NULL);
}

/* gh_hub_call_threadsafe (and gh_async_send) to a hub whose thread did not survive a
 * fork: GH_EBADHANDLE in the child (it would never run); the parent's still works. */
TEST(call_threadsafe_to_hub_lost_in_fork) {
    pthread_t t;
    void *r = (void *)1;
    double t0;
    ASSERT_OK(pipe(other_pipe));
    ASSERT_OK(gh_sleep(0)); /* this thread's hub, inherited too */
    ASSERT_OK(pthread_create(&t, NULL, other_thread, NULL));
    while (other_hub.id == 0) usleep(1000);
    usleep(10000);
    ASSERT_EQ(in_child(call_dead_hub_child, NULL), 0);
    ASSERT_OK(gh_hub_call_threadsafe(other_hub, mark_other_ran, NULL));
    t0 = gh_test_now();
    while (!other_ran && gh_test_now() - t0 < 5) usleep(1000);
    ASSERT_TRUE(other_ran);
    ASSERT_EQ(write(other_pipe[1], "q", 1), 1);
    ASSERT_OK(pthread_join(t, &r));
    ASSERT_TRUE(r == NULL);
    close(other_pipe[0]);
    close(other_pipe[1]);
    ASSERT_OK(gh_hub_destroy());
}

/* A bad GREENHUB_* value: every call that would create the hub fails with GH_EINVAL
 * (GREENHUB_RUN_INFO_SIGNAL too), and it is said once on stderr, not per call. */
static void bad_env_case(const char *var, const char *value) {
    FILE *err;
    int saved, i, lines;
    setenv(var, value, 1);
    saved = stderr_to_file(&err);
    for (i = 0; i < 5; i++) ASSERT_CODE(gh_sleep(0), GH_EINVAL);
    lines = count_lines(err, saved, var);
    ASSERT_EQ(lines, 1);
    unsetenv(var);
    ASSERT_OK(gh_sleep(0));
    ASSERT_OK(gh_hub_destroy());
}
TEST(bad_env_run_info_signal) { bad_env_case("GREENHUB_RUN_INFO_SIGNAL", "SIGNOPE"); }
TEST(bad_env_stack_size_said_once) { bad_env_case("GREENHUB_STACK_SIZE", "lots"); }
TEST(bad_env_blocking_time_said_once) { bad_env_case("GREENHUB_MAX_BLOCKING_TIME", "-3"); }

/* ==== 3. a frame larger than a page jumps no guard (FAULTS 45) ================== */

__attribute__((noinline)) static void big_frame(void) {
    char buf[72 * 1024]; /* in a 64 KiB greenlet: reaches ~8 KiB past the stack's end */
    buf[0] = 1;          /* only its start written (its lowest address) */
    __asm__ volatile("" ::"r"(buf) : "memory");
}
static void *big_frame_fn(void *arg) {
    (void)arg;
    big_frame();
    return NULL;
}
static void *neighbour_fn(void *arg) {
    (void)arg;
    gh_sleep(GH_FOREVER);
    return NULL;
}
static void big_frame_child(void *arg) {
    gh_spawn_options o = {0};
    gh_greenlet n, g;
    (void)arg;
    o.stack_size = 64 * 1024;
    o.name = "neighbour";
    /* the neighbour's slot is carved first, right below the big frame's */
    if (gh_spawn_ex(&n, neighbour_fn, NULL, &o) != GH_OK) _exit(3);
    if (gh_sleep(0) != GH_OK) _exit(3);
    o.name = "big-frame";
    if (gh_spawn_ex(&g, big_frame_fn, NULL, &o) != GH_OK) _exit(3);
    gh_join(g, 5, NULL);
    _exit(4); /* the frame went through: nothing faulted */
}

/* A 72 KiB frame in a 64 KiB greenlet, only its start written: the process dies of
 * SIGSEGV with the overflow report naming it, instead of silently writing into the
 * neighbouring greenlet's stack. */
TEST(big_frame_hits_the_guard) {
    static char buf[4096];
    int st = run_capturing_stderr(big_frame_child, NULL, buf, sizeof buf);
    ASSERT_TRUE(WIFSIGNALED(st));
    ASSERT_EQ(WTERMSIG(st), SIGSEGV);
    ASSERT_TRUE(strstr(buf, "stack overflow in greenlet \"big-frame\"") != NULL);
}

/* ==== 4. the mapping budget at vm.max_map_count in every guard mode (FAULTS 46) === */

static void *nothing_fn(void *arg) { return arg; }

/* Spawns greenlets with 1 GiB stacks (a region, so a mapping, each) until GH_ENOMEM:
 * it must come while an eighth of vm.max_map_count is still free, so the rest of the
 * process keeps working: 64 more mmaps, malloc, gh_format_run_info; after the kills,
 * spawning works again. */
static void huge_stacks_until_enomem(void) {
    gh_spawn_options o = {0};
    gh_greenlet *gs, g;
    long limit = 65530, maps, n, i;
    int rc = 0;
    void *pages[64];
    char *info;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    if (gh_test_under_valgrind() || GH_TEST_ASAN) {
        printf("  skipped under valgrind / ASan (their own address-space limits)\n");
        return;
    }
    if (f) {
        if (fscanf(f, "%ld", &limit) != 1) limit = 65530;
        fclose(f);
    }
    gs = (gh_greenlet *)calloc((size_t)limit, sizeof *gs);
    ASSERT_TRUE(gs != NULL);
    o.stack_size = (size_t)1 << 30;
    for (n = 0; n < limit; n++)
        if ((rc = gh_spawn_ex(&gs[n], nothing_fn, NULL, &o)) != GH_OK) break;
    maps = gh_test_map_count();
    printf("  %s guards: %ld greenlets with 1 GiB stacks, then %s; %ld of %ld mappings\n",
           getenv("GREENHUB_STACK_GUARD") ? "mprotect" : "default", n, gh_err_name(rc), maps,
           limit);
    ASSERT_CODE(rc, GH_ENOMEM);
    ASSERT_LE(maps, limit - limit / 8 + 64);
    for (i = 0; i < 64; i++) {
        pages[i] = mmap(NULL, 4096, i % 2 ? PROT_READ : PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        ASSERT_TRUE(pages[i] != MAP_FAILED);
    }
    for (i = 0; i < 64; i++) munmap(pages[i], 4096);
    info = (char *)malloc(1 << 20);
    ASSERT_TRUE(info != NULL);
    ASSERT_TRUE(gh_format_run_info(info, 1 << 20) > 0);
    free(info);
    for (i = 0; i < n; i++) {
        ASSERT_OK(gh_kill(gs[i], 0));
        ASSERT_OK(gh_release(gs[i]));
    }
    ASSERT_OK(gh_spawn_ex(&g, nothing_fn, NULL, &o));
    ASSERT_OK(gh_join(g, 5, NULL));
    ASSERT_OK(gh_release(g));
    free(gs);
    ASSERT_OK(gh_hub_destroy());
}
TEST(huge_stacks_map_budget_default_guards) { huge_stacks_until_enomem(); }
TEST(huge_stacks_map_budget_mprotect_guards) {
    setenv("GREENHUB_STACK_GUARD", "mprotect", 1);
    huge_stacks_until_enomem();
}

/* ==== 12. the blocking monitor at EMFILE; a bounded report (FAULTS 53) ========== */

static pthread_mutex_t rep_lock = PTHREAD_MUTEX_INITIALIZER;
static char rep_text[1 << 20];
static size_t rep_len;
static int rep_count;
static void on_block_report(const gh_block_report *r, void *arg) {
    (void)arg;
    pthread_mutex_lock(&rep_lock);
    /* the spinner's report (under valgrind main's spawn loop may be reported first) */
    if (!r->ended && r->name && strcmp(r->name, "spinner") == 0 && rep_count++ == 0) {
        rep_len = strlen(r->text);
        if (rep_len >= sizeof rep_text) rep_len = sizeof rep_text - 1;
        memcpy(rep_text, r->text, rep_len);
        rep_text[rep_len] = 0;
    }
    pthread_mutex_unlock(&rep_lock);
}
static int block_reports(void) {
    int n;
    pthread_mutex_lock(&rep_lock);
    n = rep_count;
    pthread_mutex_unlock(&rep_lock);
    return n;
}
static volatile unsigned long spin_count;
static void *spin_300ms(void *arg) {
    double end = gh_test_now() + 0.3;
    (void)arg;
    while (gh_test_now() < end) spin_count++;
    return NULL;
}
static void *sleep_long(void *arg) {
    (void)arg;
    gh_sleep(60);
    return NULL;
}
static void count_report_lines(int *lines) {
    size_t i;
    *lines = 0;
    for (i = 0; i < rep_len; i++)
        if (rep_text[i] == '\n') (*lines)++;
}

/* The process is out of fds (every number up to RLIMIT_NOFILE taken) while a greenlet
 * spins: the monitor's report still has the native backtrace (its /proc files were
 * opened ahead of time), not "not available". */
TEST(monitor_report_at_emfile) {
    if (gh_test_under_valgrind())
        SKIP("under valgrind: one thread runs at a time, so the monitor thread may not run "
             "during the spin at all (as test_monitor's cpu_loop case); runs natively and under ASan");
    gh_greenlet g;
    gh_spawn_options o = {0};
    struct rlimit old;
    double t0;
    ASSERT_OK(gh_monitor_set_callback(on_block_report, NULL));
    ASSERT_OK(gh_monitor_start(0.05));
    old = fill_fds_below(256);
    o.name = "spinner";
    ASSERT_OK(gh_spawn_ex(&g, spin_300ms, NULL, &o));
    ASSERT_OK(gh_join(g, 5, NULL));
    t0 = gh_test_now();
    while (block_reports() == 0 && gh_test_now() - t0 < 3) ASSERT_OK(gh_sleep(0.01));
    ASSERT_TRUE(block_reports() >= 1);
    fprintf(stderr, "%s", rep_text);
    ASSERT_TRUE(strstr(rep_text, "not available") == NULL);
    ASSERT_TRUE(strstr(rep_text, "Native backtrace of thread") != NULL ||
                strstr(rep_text, "Native stack of thread") != NULL);
    ASSERT_OK(setrlimit(RLIMIT_NOFILE, &old));
    ASSERT_OK(gh_monitor_stop());
    ASSERT_OK(gh_hub_destroy());
}

/* 10,000 greenlets waiting while one spins: the report shows the blocker (and its
 * ancestry) and counts the others by state, not 20,000 lines. */
TEST(monitor_report_bounded) {
    if (gh_test_under_valgrind())
        SKIP("under valgrind: one thread runs at a time, so the monitor thread may not run "
             "during the spin at all (as test_monitor's cpu_loop case); runs natively and under ASan");
    gh_greenlet g;
    gh_spawn_options o = {0};
    int i, lines, n = gh_test_under_valgrind() ? 2000 : 10000;
    double t0;
    ASSERT_OK(gh_monitor_set_callback(on_block_report, NULL));
    ASSERT_OK(gh_monitor_start(0.05));
    o.stack_size = 16 * 1024;
    for (i = 0; i < n; i++) ASSERT_OK(gh_spawn_ex(NULL, sleep_long, NULL, &o));
    ASSERT_OK(gh_sleep(0.01));
    o.name = "spinner";
    ASSERT_OK(gh_spawn_ex(&g, spin_300ms, NULL, &o));
    ASSERT_OK(gh_join(g, 5, NULL));
    t0 = gh_test_now();
    while (block_reports() == 0 && gh_test_now() - t0 < 3) ASSERT_OK(gh_sleep(0.01));
    ASSERT_TRUE(block_reports() >= 1);
    count_report_lines(&lines);
    printf("  report for %d greenlets: %d lines\n", n + 1, lines);
    ASSERT_LE(lines, 150);
    ASSERT_TRUE(strstr(rep_text, "spinner") != NULL);
    ASSERT_TRUE(strstr(rep_text, "other greenlet(s)") != NULL);
    ASSERT_OK(gh_monitor_stop());
    ASSERT_OK(gh_hub_destroy());
}

int main(int argc, char **argv) {
    TEST_INIT(argc, argv);
    RUN(connect_unix_backlog_full);
    RUN(not_socket_cache_forgotten_on_reuse);
    RUN(stale_handles_survive_hub_id_wrap);
    RUN(destroy_with_waitpid_and_joinall_parked);
    RUN(backend_fd_close_refused_and_survived);
    RUN(calls_in_atexit_after_teardown);
    RUN(calls_in_thread_key_destructor);
    RUN(async_send_from_signal_handler);
    RUN(fork_child_closefrom_keeps_new_fds);
    RUN(fork_child_at_emfile_leaves_parent_alone);
    RUN(call_threadsafe_to_hub_lost_in_fork);
    RUN(bad_env_run_info_signal);
    RUN(bad_env_stack_size_said_once);
    RUN(bad_env_blocking_time_said_once);
    RUN(big_frame_hits_the_guard);
    RUN(huge_stacks_map_budget_default_guards);
    RUN(huge_stacks_map_budget_mprotect_guards);
    RUN(monitor_report_at_emfile);
    RUN(monitor_report_bounded);
    return TEST_DONE();
}

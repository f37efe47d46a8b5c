/* test_backend_plugin.c — hub backends written in C (gh_backend): registered by name
 * and chosen like a built-in one (gh_hub_config.backend, GREENHUB_BACKEND), or passed
 * directly (gh_hub_config.backend_plugin); the hub's basics work over one; and misuse
 * is a code, never a crash: a NULL table, a wrong version, a missing mandatory
 * function or name, a duplicate or built-in name, a failing create, a poll that fails
 * or reports an fd it was never given (or bad bits, or more events than room), a
 * change of backend after the hub did I/O, a GREENHUB_BACKEND_PLUGIN that cannot be
 * loaded. fork under a plug-in calls its fork_child and creates a fresh instance.
 *
 * The plug-in here ("cpoll") is poll(2) in ~60 lines, with knobs to misbehave.
 */
#include "harness.h"
#include "backend_check.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/stat.h>

/* ---- the test plug-in: poll(2) over a fixed array ----------------------- */

#define CP_MAX 256
struct cpoll {
    struct pollfd fds[CP_MAX];
    int n;
    int dummy_fd; /* an fd of its own, for backend_fd */
};

static struct {
    int creates, destroys, fork_childs, polls;
    int create_rc;      /* create returns this when nonzero */
    int fail_poll_at;   /* poll number (1-based) that returns -EIO; 0 = never */
    int bogus_fd_at;    /* poll number that reports fd 900, never added */
    int bad_bits_at;    /* poll number that reports bits 0x10 on a held fd */
    int overflow_at;    /* poll number that returns capacity + 1 */
    int spurious;       /* report every held fd ready for both on every other poll */
    int eperm_files;    /* add refuses regular files with -EPERM */
} K;

static int cp_find(struct cpoll *s, int fd) {
    int i;
    for (i = 0; i < s->n; i++)
        if (s->fds[i].fd == fd) return i;
    return -1;
}
static short cp_mask(int events) {
    return (short)(((events & GH_READ) ? POLLIN : 0) | ((events & GH_WRITE) ? POLLOUT : 0));
}
static int cp_create(void *arg, void **state) {
    struct cpoll *s;
    (void)arg;
    __atomic_fetch_add(&K.creates, 1, __ATOMIC_SEQ_CST); /* threads create hubs too */
    if (K.create_rc) return K.create_rc;
    s = (struct cpoll *)calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    /* opened at once: gh_close asks for the backend's fd (to refuse closing it), and an fd
     * opened lazily then would look like a leak to the fd-count checks */
    s->dummy_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    *state = s;
    return 0;
}
static void cp_free(struct cpoll *s) {
    if (s->dummy_fd >= 0) close(s->dummy_fd);
    free(s);
}
static void cp_destroy(void *state) {
    __atomic_fetch_add(&K.destroys, 1, __ATOMIC_SEQ_CST);
    cp_free((struct cpoll *)state);
}
/* No kernel object is shared with the parent here: freeing is all there is to do. */
static void cp_fork_child(void *state) {
    K.fork_childs++;
    cp_free((struct cpoll *)state);
}
static int cp_add(void *state, int fd, int events) {
    struct cpoll *s = (struct cpoll *)state;
    struct stat st;
    if (cp_find(s, fd) >= 0) return -EEXIST; /* greenhub promises never to do this */
    /* As epoll does: a regular file cannot be watched (and is always ready). */
    if (K.eperm_files && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) return -EPERM;
    if (s->n == CP_MAX) return -ENOMEM;
    s->fds[s->n].fd = fd;
    s->fds[s->n].events = cp_mask(events);
    s->n++;
    return 0;
}
static int cp_modify(void *state, int fd, int events) {
    struct cpoll *s = (struct cpoll *)state;
    int i = cp_find(s, fd);
    if (i < 0) return -ENOENT;
    s->fds[i].events = cp_mask(events);
    return 0;
}
static int cp_remove(void *state, int fd) {
    struct cpoll *s = (struct cpoll *)state;
    int i = cp_find(s, fd);
    if (i < 0) return -ENOENT;
    s->fds[i] = s->fds[--s->n];
    return 0;
}
static int cp_poll(void *state, gh_backend_event *ev, int cap, int timeout_ms) {
    struct cpoll *s = (struct cpoll *)state;
    int i, n, out = 0;
    K.polls++;
    if (K.polls == K.fail_poll_at) return -EIO;
    if (K.polls == K.overflow_at) return cap + 1;
    if (K.polls == K.bogus_fd_at) {
        ev[0].fd = 900;
        ev[0].events = GH_READ;
        return 1;
    }
    if (K.polls == K.bad_bits_at && s->n > 0) {
        ev[0].fd = s->fds[0].fd;
        ev[0].events = 0x10;
        return 1;
    }
    if (K.spurious && (K.polls & 1)) {
        for (i = 0; i < s->n && out < cap; i++) {
            ev[out].fd = s->fds[i].fd;
            ev[out++].events = GH_READ | GH_WRITE;
        }
        return out;
    }
    n = poll(s->fds, (nfds_t)s->n, timeout_ms);
    if (n < 0) return -errno;
    for (i = 0; i < s->n && out < cap; i++) {
        short r = s->fds[i].revents;
        int e = 0;
        if (!r) continue;
        if (r & (POLLIN | POLLPRI)) e |= GH_READ;
        if (r & POLLOUT) e |= GH_WRITE;
        if (r & (POLLERR | POLLHUP | POLLNVAL)) e |= GH_READ | GH_WRITE;
        ev[out].fd = s->fds[i].fd;
        ev[out++].events = e;
    }
    return out;
}
/* Not a real embedding fd: only checks that gh_hub_backend_fd returns what this gives. */
static int cp_backend_fd(void *state) {
    struct cpoll *s = (struct cpoll *)state;
    return s->dummy_fd;
}

static gh_backend cpoll_table(const char *name) {
    gh_backend b;
    memset(&b, 0, sizeof b);
    b.version = GH_BACKEND_VERSION;
    b.name = name;
    b.create = cp_create;
    b.destroy = cp_destroy;
    b.add = cp_add;
    b.modify = cp_modify;
    b.remove = cp_remove;
    b.poll = cp_poll;
    b.backend_fd = cp_backend_fd;
    b.fork_child = cp_fork_child;
    return b;
}

/* ---- the behaviour check (backend_check.h's, plus a cross-thread wake-up) ---- */

static void async_cb(gh_watcher w, int revents, void *arg) {
    (void)revents;
    ++*(int *)arg;
    gh_watcher_stop(w);
}
static void *send_async(void *arg) {
    usleep(20000);
    gh_async_send(*(gh_watcher *)arg);
    return NULL;
}

/* An async watcher woken from another thread while the hub sleeps in its backend's
 * poll: gh_hub_run returns after its callback ran once. */
static void async_from_thread(void) {
    gh_watcher a;
    pthread_t th;
    int hits = 0;
    ASSERT_OK(gh_async_new(&a));
    ASSERT_OK(gh_watcher_start(a, async_cb, &hits));
    ASSERT_OK(pthread_create(&th, NULL, send_async, &a));
    ASSERT_OK(gh_hub_run());
    ASSERT_OK(pthread_join(th, NULL));
    ASSERT_EQ(hits, 1);
    ASSERT_OK(gh_watcher_close(a));
}

/* backend_check.h's behaviour check, plus the cross-thread wake-up. */
static void behaviour_check(void) { backend_behaviour_check(async_from_thread); }

/* ---- success paths ----------------------------------------------------------- */

/* Registered, then chosen by gh_hub_config.backend: gh_hub_backend() names it, the
 * behaviour check passes, one create and (at destroy) one destroy; nothing leaked. */
TEST(register_then_configure_by_name) {
    gh_backend b = cpoll_table("cpoll");
    gh_hub_config cfg;
    int fd0 = gh_test_fd_count();
    ASSERT_OK(gh_backend_register(&b));
    memset(&b, 0xff, sizeof b); /* the table was copied */
    gh_hub_config_init(&cfg);
    cfg.backend = "cpoll";
    ASSERT_OK(gh_hub_configure(&cfg));
    ASSERT_STREQ(gh_hub_backend(), "cpoll");
    ASSERT_EQ(K.creates, 1);
    behaviour_check();
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(K.destroys, 1);
    ASSERT_EQ(gh_test_fd_count(), fd0);
}

/* Registered, then chosen by GREENHUB_BACKEND (read when the hub is created), in two
 * successive hubs: a create and a destroy each. */
TEST(register_then_env) {
    gh_backend b = cpoll_table("cpoll-env");
    int i;
    ASSERT_OK(gh_backend_register(&b));
    ASSERT_OK(setenv("GREENHUB_BACKEND", "cpoll-env", 1));
    for (i = 1; i <= 2; i++) {
        ASSERT_STREQ(gh_hub_backend(), "cpoll-env");
        behaviour_check();
        ASSERT_OK(gh_hub_destroy());
        ASSERT_EQ(K.creates, i);
        ASSERT_EQ(K.destroys, i);
    }
}

/* Passed directly in gh_hub_config.backend_plugin (never registered; the table may go
 * away after configure), overriding GREENHUB_BACKEND: named by gh_hub_backend(). */
TEST(direct_in_config) {
    gh_hub_config cfg;
    gh_backend b = cpoll_table("direct");
    ASSERT_OK(setenv("GREENHUB_BACKEND", "poll", 1));
    gh_hub_config_init(&cfg);
    ASSERT_TRUE(cfg.backend_plugin == NULL);
    cfg.backend_plugin = &b;
    ASSERT_OK(gh_hub_configure(&cfg));
    memset(&b, 0, sizeof b);
    ASSERT_STREQ(gh_hub_backend(), "direct");
    behaviour_check();
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(K.destroys, 1);
    /* the name was not registered by that */
    gh_hub_config_init(&cfg);
    cfg.backend = "direct";
    gh_test_capture_stderr_begin();
    ASSERT_CODE(gh_hub_configure(&cfg), GH_EINVAL);
    ASSERT_TRUE(strstr(gh_test_capture_stderr_end(), "unknown backend \"direct\"") != NULL);
}

/* A config zero-filled (as callers built before backend_plugin existed do) keeps
 * working: the default backend. */
TEST(zeroed_config_still_works) {
    gh_hub_config cfg;
    ASSERT_OK(unsetenv("GREENHUB_BACKEND"));
    memset(&cfg, 0, sizeof cfg);
    ASSERT_OK(gh_hub_configure(&cfg));
    ASSERT_STREQ(gh_hub_backend(), "epoll");
    ASSERT_OK(gh_hub_destroy());
}

/* gh_hub_backend_fd is what the plug-in's backend_fd gives; without one, GH_ENOTSUP. */
TEST(backend_fd) {
    gh_hub_config cfg;
    gh_backend b = cpoll_table("with-fd");
    int fd;
    gh_hub_config_init(&cfg);
    cfg.backend_plugin = &b;
    ASSERT_OK(gh_hub_configure(&cfg));
    fd = gh_hub_backend_fd();
    ASSERT_TRUE(fd >= 0);
    ASSERT_TRUE(fcntl(fd, F_GETFD) >= 0);
    ASSERT_OK(gh_hub_destroy());
    b.backend_fd = NULL;
    b.name = "without-fd";
    ASSERT_OK(gh_hub_configure(&cfg));
    ASSERT_CODE(gh_hub_backend_fd(), GH_ENOTSUP);
    ASSERT_OK(gh_hub_destroy());
}

/* Spurious events (every held fd reported ready for both, every other poll): a read
 * still times out when no data comes, and data still arrives once. */
TEST(spurious_events_are_harmless) {
    gh_hub_config cfg;
    gh_backend b = cpoll_table("spurious");
    int sp[2];
    char c;
    K.spurious = 1;
    gh_hub_config_init(&cfg);
    cfg.backend_plugin = &b;
    ASSERT_OK(gh_hub_configure(&cfg));
    ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp));
    ASSERT_CODE(gh_read(sp[0], &c, 1, 0.03), GH_ETIMEDOUT);
    ASSERT_EQ(gh_write(sp[1], "z", 1, 5), 1);
    ASSERT_EQ(gh_read(sp[0], &c, 1, 5), 1);
    ASSERT_EQ(c, 'z');
    ASSERT_CODE(gh_read(sp[0], &c, 1, 0.01), GH_ETIMEDOUT);
    ASSERT_OK(gh_close(sp[0]));
    ASSERT_OK(gh_close(sp[1]));
    ASSERT_OK(gh_hub_destroy());
}

/* add saying -EPERM (a regular file, as epoll says): the fd is always ready — a wait on
 * it returns at once, reads work — and add errors reach the caller: -ENOMEM from a full
 * plug-in is GH_ENOMEM from gh_wait_read. */
TEST(add_errors_reach_the_caller) {
    gh_hub_config cfg;
    gh_backend b = cpoll_table("eperm");
    char path[] = "/tmp/gh_plugin_XXXXXX", c = 0;
    int fd, fds[CP_MAX + 8][2], i, n = 0, rc = GH_OK;
    K.eperm_files = 1;
    gh_hub_config_init(&cfg);
    cfg.backend_plugin = &b;
    ASSERT_OK(gh_hub_configure(&cfg));
    fd = mkstemp(path);
    ASSERT_TRUE(fd >= 0);
    ASSERT_OK(unlink(path));
    ASSERT_EQ(write(fd, "f", 1), 1);
    ASSERT_EQ(lseek(fd, 0, SEEK_SET), 0);
    ASSERT_EQ(gh_wait_read(fd, 5), GH_OK);
    ASSERT_EQ(gh_read(fd, &c, 1, 5), 1);
    ASSERT_EQ(c, 'f');
    ASSERT_OK(gh_close(fd));
    /* the wake-up fd holds one slot: the CP_MAX-th wait finds the plug-in full */
    for (i = 0; i < CP_MAX + 8 && rc == GH_OK; i++) {
        ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, fds[i]));
        n++;
        rc = gh_wait_read(fds[i][0], 0.001);
        if (rc == GH_ETIMEDOUT) rc = GH_OK;
    }
    ASSERT_CODE(rc, GH_ENOMEM);
    ASSERT_EQ(n, CP_MAX);
    for (i = 0; i < n; i++) {
        ASSERT_OK(gh_close(fds[i][0]));
        ASSERT_OK(gh_close(fds[i][1]));
    }
    ASSERT_OK(gh_hub_destroy());
}

/* fork under a plug-in: the child's first call lets go of the inherited instance with
 * fork_child (not destroy) and creates a new one; I/O works in the child and, after,
 * in the parent. */
TEST(fork_child_fresh_instance) {
    gh_hub_config cfg;
    gh_backend b = cpoll_table("forky");
    int sp[2], st = 0;
    char c;
    pid_t pid;
    gh_hub_config_init(&cfg);
    cfg.backend_plugin = &b;
    ASSERT_OK(gh_hub_configure(&cfg));
    ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp));
    ASSERT_CODE(gh_wait_read(sp[0], 0.001), GH_ETIMEDOUT);
    pid = fork();
    ASSERT_TRUE(pid >= 0);
    if (pid == 0) {
        int ok = gh_sleep(0.001) == GH_OK && K.fork_childs == 1 && K.creates == 2 &&
                 K.destroys == 0 && gh_write(sp[1], "c", 1, 5) == 1 &&
                 gh_read(sp[0], &c, 1, 5) == 1 && c == 'c' &&
                 strcmp(gh_hub_backend(), "forky") == 0 && gh_hub_destroy() == GH_OK &&
                 K.destroys == 1;
        _exit(ok ? 0 : 1);
    }
    ASSERT_EQ(waitpid(pid, &st, 0), pid);
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    ASSERT_EQ(gh_write(sp[1], "p", 1, 5), 1);
    ASSERT_EQ(gh_read(sp[0], &c, 1, 5), 1);
    ASSERT_EQ(c, 'p');
    ASSERT_EQ(K.fork_childs, 0);
    ASSERT_OK(gh_close(sp[0]));
    ASSERT_OK(gh_close(sp[1]));
    ASSERT_OK(gh_hub_destroy());
}

static void *thread_hub(void *arg) {
    int sp[2], ok;
    char c = 0;
    (void)arg;
    ok = strcmp(gh_hub_backend(), "threads") == 0 && socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0;
    ok = ok && gh_wait_read(sp[0], 0.01) == GH_ETIMEDOUT && gh_write(sp[1], "t", 1, 5) == 1 &&
         gh_read(sp[0], &c, 1, 5) == 1 && c == 't';
    ok = ok && gh_close(sp[0]) == GH_OK && gh_close(sp[1]) == GH_OK && gh_hub_destroy() == GH_OK;
    return (void *)(intptr_t)ok;
}

/* A registered plug-in chosen by GREENHUB_BACKEND in 4 threads at once: an instance per
 * hub (4 creates, 4 destroys, created and destroyed in the threads), I/O in each. */
TEST(one_instance_per_thread) {
    gh_backend b = cpoll_table("threads");
    pthread_t th[4];
    void *r;
    int i;
    ASSERT_OK(gh_backend_register(&b));
    ASSERT_OK(setenv("GREENHUB_BACKEND", "threads", 1));
    for (i = 0; i < 4; i++) ASSERT_OK(pthread_create(&th[i], NULL, thread_hub, NULL));
    for (i = 0; i < 4; i++) {
        ASSERT_OK(pthread_join(th[i], &r));
        ASSERT_EQ((intptr_t)r, 1);
    }
    ASSERT_EQ(K.creates, 4);
    ASSERT_EQ(K.destroys, 4);
}

/* ---- misuse: codes, never a crash ------------------------------------------- */

/* NULL table, wrong versions, NULL/empty/too long/non-UTF-8 names, each mandatory
 * function missing: GH_EINVAL / GH_ENOTSUP from gh_backend_register and from
 * gh_hub_configure with backend_plugin; no hub created; nothing registered. */
TEST(register_bad_tables) {
    gh_backend b;
    gh_hub_config cfg;
    char longname[65];
    int i, fd0 = gh_test_fd_count();
    ASSERT_CODE(gh_backend_register(NULL), GH_EINVAL);
    for (i = 0; i < 3; i++) {
        static const unsigned versions[] = {0, 2, 0xffffffffu};
        b = cpoll_table("v");
        b.version = versions[i];
        ASSERT_CODE(gh_backend_register(&b), GH_ENOTSUP);
        gh_hub_config_init(&cfg);
        cfg.backend_plugin = &b;
        ASSERT_CODE(gh_hub_configure(&cfg), GH_ENOTSUP);
    }
    memset(longname, 'x', 64);
    longname[64] = '\0';
    for (i = 0; i < 10; i++) {
        b = cpoll_table("m");
        switch (i) {
        case 0: b.create = NULL; break;
        case 1: b.destroy = NULL; break;
        case 2: b.add = NULL; break;
        case 3: b.modify = NULL; break;
        case 4: b.remove = NULL; break;
        case 5: b.poll = NULL; break;
        case 6: b.name = NULL; break;
        case 7: b.name = ""; break;
        case 8: b.name = longname; break;
        case 9: b.name = "\xff\xfe"; break;
        }
        ASSERT_CODE(gh_backend_register(&b), GH_EINVAL);
        gh_hub_config_init(&cfg);
        cfg.backend_plugin = &b;
        ASSERT_CODE(gh_hub_configure(&cfg), GH_EINVAL);
    }
    ASSERT_EQ(K.creates, 0);
    ASSERT_EQ(gh_test_fd_count(), fd0);
    /* "m" never got registered */
    gh_hub_config_init(&cfg);
    cfg.backend = "m";
    gh_test_capture_stderr_begin();
    ASSERT_CODE(gh_hub_configure(&cfg), GH_EINVAL);
    ASSERT_TRUE(strstr(gh_test_capture_stderr_end(), "unknown backend \"m\"") != NULL);
    /* optional functions may be NULL */
    b = cpoll_table("minimal");
    b.backend_fd = NULL;
    b.fork_child = NULL;
    ASSERT_OK(gh_backend_register(&b));
}

/* A second registration under a name taken by another plug-in or a built-in backend:
 * GH_EEXIST; the first registration stays in use. */
TEST(register_duplicate_eexist) {
    static const char *const builtin[] = {"epoll", "polling", "poll", "select"};
    gh_backend b = cpoll_table("dup");
    gh_hub_config cfg;
    size_t i;
    ASSERT_OK(gh_backend_register(&b));
    ASSERT_CODE(gh_backend_register(&b), GH_EEXIST);
    b.poll = NULL;
    ASSERT_CODE(gh_backend_register(&b), GH_EINVAL); /* checked before the name */
    b = cpoll_table("dup");
    b.create = NULL;
    ASSERT_CODE(gh_backend_register(&b), GH_EINVAL);
    for (i = 0; i < sizeof builtin / sizeof builtin[0]; i++) {
        b = cpoll_table(builtin[i]);
        ASSERT_CODE(gh_backend_register(&b), GH_EEXIST);
    }
    gh_hub_config_init(&cfg);
    cfg.backend = "dup";
    ASSERT_OK(gh_hub_configure(&cfg));
    ASSERT_STREQ(gh_hub_backend(), "dup");
    ASSERT_EQ(K.creates, 1);
    ASSERT_OK(gh_hub_destroy());
}

/* Both a name and a table in the config: GH_EINVAL. */
TEST(config_name_and_plugin_einval) {
    gh_hub_config cfg;
    gh_backend b = cpoll_table("both");
    gh_hub_config_init(&cfg);
    cfg.backend = "poll";
    cfg.backend_plugin = &b;
    ASSERT_CODE(gh_hub_configure(&cfg), GH_EINVAL);
    ASSERT_EQ(K.creates, 0);
}

/* create failing (-ENOMEM, then a positive value and INT_MIN, which the contract does
 * not allow): the hub creation fails with GH_ENOMEM / GH_EBACKEND, nothing left; it
 * works afterwards. */
TEST(create_fails) {
    gh_hub_config cfg;
    gh_backend b = cpoll_table("nocreate");
    int fd0 = gh_test_fd_count();
    gh_hub_config_init(&cfg);
    cfg.backend_plugin = &b;
    K.create_rc = -ENOMEM;
    gh_test_capture_stderr_begin();
    ASSERT_CODE(gh_hub_configure(&cfg), GH_ENOMEM);
    K.create_rc = 7;
    ASSERT_CODE(gh_hub_configure(&cfg), GH_EBACKEND);
    K.create_rc = INT_MIN; /* no errno: negating it would overflow */
    ASSERT_CODE(gh_hub_configure(&cfg), GH_EBACKEND);
    ASSERT_TRUE(strstr(gh_test_capture_stderr_end(),
                       "backend \"nocreate\": create failed (GH_EBACKEND)") != NULL);
    ASSERT_EQ(K.destroys, 0);
    ASSERT_EQ(gh_test_fd_count(), fd0);
    K.create_rc = 0;
    ASSERT_OK(gh_hub_configure(&cfg));
    ASSERT_OK(gh_sleep(0.001));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(K.destroys, 1);
    ASSERT_EQ(gh_test_fd_count(), fd0);
}

/* Configure after the hub did I/O (under the plug-in, and to move to one): GH_EBUSY,
 * the backend in use does not change. */
TEST(change_after_io_ebusy) {
    gh_hub_config cfg;
    gh_backend b = cpoll_table("late");
    ASSERT_OK(gh_backend_register(&b));
    ASSERT_OK(setenv("GREENHUB_BACKEND", "poll", 1));
    ASSERT_OK(gh_sleep(0));
    gh_hub_config_init(&cfg);
    cfg.backend = "late";
    ASSERT_CODE(gh_hub_configure(&cfg), GH_EBUSY);
    gh_hub_config_init(&cfg);
    cfg.backend_plugin = &b;
    ASSERT_CODE(gh_hub_configure(&cfg), GH_EBUSY);
    ASSERT_STREQ(gh_hub_backend(), "poll");
    ASSERT_OK(gh_hub_destroy());
    ASSERT_OK(setenv("GREENHUB_BACKEND", "late", 1));
    ASSERT_OK(gh_sleep(0));
    gh_hub_config_init(&cfg);
    cfg.backend = "epoll";
    ASSERT_CODE(gh_hub_configure(&cfg), GH_EBUSY);
    ASSERT_STREQ(gh_hub_backend(), "late");
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(K.creates, 1);
}

static void *reader(void *arg) {
    int fd = (int)(intptr_t)arg;
    char c;
    return (void *)(intptr_t)gh_read(fd, &c, 1, GH_FOREVER);
}

/* The broken-backend path, whichever way the plug-in breaks (`knob` = its poll number):
 * a greenlet parked in gh_read on an fd wakes and gets GH_EBACKEND (no hang, no crash);
 * later fd waits get GH_EBACKEND at once; timers still work and a cross-thread wake-up
 * still reaches the hub (async); destroy is called once; nothing leaked. */
static void broken_check(int *knob, int at, const char *why) {
    gh_hub_config cfg;
    gh_backend b = cpoll_table("breaks");
    gh_greenlet g;
    int sp[2], fd0 = gh_test_fd_count();
    void *r = NULL;
    double t0;
    *knob = at;
    gh_hub_config_init(&cfg);
    cfg.backend_plugin = &b;
    ASSERT_OK(gh_hub_configure(&cfg));
    ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp));
    ASSERT_OK(gh_spawn(&g, reader, (void *)(intptr_t)sp[0]));
    t0 = gh_test_now();
    gh_test_capture_stderr_begin();
    ASSERT_OK(gh_join(g, 5, &r));
    ASSERT_TRUE(strstr(gh_test_capture_stderr_end(), why) != NULL);
    ASSERT_EQ((intptr_t)r, GH_EBACKEND);
    ASSERT_TRUE(gh_test_now() - t0 < 1.0);
    ASSERT_OK(gh_release(g));
    ASSERT_CODE(gh_wait_read(sp[1], 5), GH_EBACKEND);
    ASSERT_CODE(gh_wait_write(sp[1], 5), GH_EBACKEND);
    t0 = gh_test_now();
    ASSERT_OK(gh_sleep(0.02));
    ASSERT_TRUE(gh_test_now() - t0 >= 0.018);
    async_from_thread();
    ASSERT_EQ(K.destroys, 0);
    ASSERT_OK(gh_close(sp[0]));
    ASSERT_OK(gh_close(sp[1]));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(K.destroys, 1);
    ASSERT_EQ(gh_test_fd_count(), fd0);
}

TEST(poll_fails_ebackend) { broken_check(&K.fail_poll_at, 1, "poll failed (GH_EIO)"); }
TEST(poll_reports_unknown_fd_ebackend) {
    broken_check(&K.bogus_fd_at, 1, "an event for fd 900, which it does not hold");
}
TEST(poll_reports_bad_bits_ebackend) { broken_check(&K.bad_bits_at, 1, "events 0x10 for fd"); }
TEST(poll_overflows_capacity_ebackend) {
    broken_check(&K.overflow_at, 1, "257 events with room for 256");
}

/* GREENHUB_BACKEND_PLUGIN naming what cannot be loaded (no such file; a library without
 * gh_backend_plugin): the first call needing a non-built-in backend is GH_EINVAL with
 * a line on stderr; built-in backends are unaffected. */
TEST(env_plugin_unloadable_einval) {
    ASSERT_OK(setenv("GREENHUB_BACKEND_PLUGIN", "/nonexistent/libnothing.so", 1));
    ASSERT_OK(setenv("GREENHUB_BACKEND", "anything", 1));
    gh_test_capture_stderr_begin();
    ASSERT_CODE(gh_sleep(0), GH_EINVAL);
    ASSERT_TRUE(strstr(gh_test_capture_stderr_end(), "libnothing.so not loaded (GH_EINVAL)") != NULL);
    ASSERT_CODE(gh_sleep(0), GH_EINVAL); /* the same, without a second line */
    ASSERT_OK(setenv("GREENHUB_BACKEND", "poll", 1));
    ASSERT_OK(gh_sleep(0));
    ASSERT_OK(gh_hub_destroy());
}
TEST(env_plugin_without_entry_einval) {
    ASSERT_OK(setenv("GREENHUB_BACKEND_PLUGIN", "libm.so.6", 1));
    ASSERT_OK(setenv("GREENHUB_BACKEND", "anything", 1));
    gh_test_capture_stderr_begin();
    ASSERT_CODE(gh_sleep(0), GH_EINVAL);
    ASSERT_TRUE(strstr(gh_test_capture_stderr_end(), "libm.so.6 has no gh_backend_plugin() entry") != NULL);
}

int main(int argc, char **argv) {
    TEST_INIT(argc, argv);
    unsetenv("GREENHUB_BACKEND_PLUGIN");
    RUN(register_then_configure_by_name);
    RUN(register_then_env);
    RUN(direct_in_config);
    RUN(zeroed_config_still_works);
    RUN(backend_fd);
    RUN(spurious_events_are_harmless);
    RUN(add_errors_reach_the_caller);
    RUN(fork_child_fresh_instance);
    RUN(one_instance_per_thread);
    RUN(register_bad_tables);
    RUN(register_duplicate_eexist);
    RUN(config_name_and_plugin_einval);
    RUN(create_fails);
    RUN(change_after_io_ebusy);
    RUN(poll_fails_ebackend);
    RUN(poll_reports_unknown_fd_ebackend);
    RUN(poll_reports_bad_bits_ebackend);
    RUN(poll_overflows_capacity_ebackend);
    RUN(env_plugin_unloadable_einval);
    RUN(env_plugin_without_entry_einval);
    return TEST_DONE();
}

/* test_monitor.c — diagnostics: the blocking monitor, gh_assert_switches_*,
 * gh_settrace / gh_gettrace and gh_format_run_info (issue 4; FAULTS 33-36 area).
 *
 * Times: the monitor threshold is 100 ms and a blocking greenlet blocks for 3x that;
 * cases assert what was reported (counts, names, spawn sites, order), never how fast.
 */
#include "harness.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

/* Under valgrind everything runs ~50x slower: longer times keep the cases about the
 * same events. */
static double THRESHOLD = 0.1;
static unsigned BLOCK_US = 300000; /* 3 x THRESHOLD */
static int under_valgrind;

/* ---- report collection (the callback runs on the monitor thread) --------- */

#define MAX_REPORTS 16
struct seen {
    int ended;
    double blocked_for;
    unsigned long long thread_id;
    gh_greenlet greenlet;
    char name[64];
    char file[256];
    int line;
    char text[8192];
};
static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
static struct seen seen[MAX_REPORTS];
static int nseen;

static void on_report(const gh_block_report *r, void *arg) {
    (void)arg;
    pthread_mutex_lock(&seen_lock);
    if (nseen < MAX_REPORTS) {
        struct seen *s = &seen[nseen++];
        s->ended = r->ended;
        s->blocked_for = r->blocked_for;
        s->thread_id = (unsigned long long)r->thread_id;
        s->greenlet = r->greenlet;
        snprintf(s->name, sizeof s->name, "%s", r->name ? r->name : "(null)");
        snprintf(s->file, sizeof s->file, "%s", r->spawn_file ? r->spawn_file : "");
        s->line = r->spawn_line;
        snprintf(s->text, sizeof s->text, "%s", r->text ? r->text : "");
    }
    pthread_mutex_unlock(&seen_lock);
}

static int reports(void) {
    pthread_mutex_lock(&seen_lock);
    int n = nseen;
    pthread_mutex_unlock(&seen_lock);
    return n;
}

/* Waits (cooperatively) until n reports arrived or `secs` passed. */
static void wait_reports(int n, double secs) {
    double end = gh_test_now() + secs;
    while (reports() < n && gh_test_now() < end) ASSERT_OK(gh_sleep(0.01));
}

static void *blocker(void *arg) {
    (void)arg;
    usleep(BLOCK_US);
    return NULL;
}

static void *cooperative(void *arg) {
    (void)arg;
    ASSERT_OK(gh_sleep((double)BLOCK_US / 1e6));
    return NULL;
}

static volatile unsigned long long spin_sink;
static void *spinner(void *arg) {
    (void)arg;
    double end = gh_test_now() + (double)BLOCK_US / 1e6;
    while (gh_test_now() < end) spin_sink++;
    return NULL;
}

static int spawn_named(gh_greenlet *g, gh_fn fn, const char *name, int *line) {
    gh_spawn_options o;
    memset(&o, 0, sizeof o);
    o.name = name;
    *line = __LINE__ + 1;
    return GH_SPAWN_EX(g, fn, NULL, &o);
}

/* A greenlet blocking in usleep for 3x the threshold is reported exactly once, with its
 * name and spawn file:line; then the end line follows with its total. */
TEST(usleep_blocker_reported_once) {
    gh_greenlet g;
    int line;
    ASSERT_OK(gh_monitor_set_callback(on_report, NULL));
    ASSERT_OK(gh_monitor_start(THRESHOLD));
    ASSERT_OK(spawn_named(&g, blocker, "blocker", &line));
    ASSERT_OK(gh_join(g, GH_FOREVER, NULL));
    wait_reports(2, 2.0);
    ASSERT_OK(gh_sleep(4 * THRESHOLD)); /* nothing more may come */
    ASSERT_EQ(reports(), 2);
    ASSERT_EQ(seen[0].ended, 0);
    ASSERT_STREQ(seen[0].name, "blocker");
    ASSERT_TRUE(strstr(seen[0].file, "test_monitor.c") != NULL);
    ASSERT_EQ(seen[0].line, line);
    ASSERT_EQ(seen[0].greenlet.id, g.id);
    ASSERT_EQ(seen[0].thread_id, (unsigned long long)gettid());
    ASSERT_TRUE(seen[0].blocked_for >= THRESHOLD * 0.9);
    ASSERT_TRUE(strstr(seen[0].text, "\"blocker\"") != NULL);
    ASSERT_TRUE(strstr(seen[0].text, "test_monitor.c:") != NULL);
    if (!under_valgrind) /* valgrind runs the syscalls itself */
        ASSERT_TRUE(strstr(seen[0].text, "nanosleep") != NULL); /* in usleep */
    ASSERT_EQ(seen[1].ended, 1);
    ASSERT_STREQ(seen[1].name, "blocker");
    ASSERT_TRUE(seen[1].blocked_for >= 2 * THRESHOLD);
    ASSERT_TRUE(seen[1].blocked_for >= seen[0].blocked_for);
    ASSERT_OK(gh_release(g));
    ASSERT_OK(gh_monitor_set_callback(NULL, NULL));
    ASSERT_OK(gh_hub_destroy());
}

/* A CPU loop is captured on the blocked thread: the tree with states and a native
 * backtrace taken by the signal. */
TEST(cpu_loop_reported_with_tree_and_backtrace) {
    gh_greenlet g, idle;
    int line;
    ASSERT_OK(gh_monitor_set_callback(on_report, NULL));
    ASSERT_OK(gh_monitor_start(THRESHOLD));
    ASSERT_OK(spawn_named(&idle, cooperative, "idler", &line));
    ASSERT_OK(spawn_named(&g, spinner, "spinner", &line));
    ASSERT_OK(gh_join(g, GH_FOREVER, NULL));
    ASSERT_OK(gh_join(idle, GH_FOREVER, NULL));
    if (under_valgrind) {
        /* valgrind runs one thread at a time and may not schedule the monitor thread
         * during the spinner's loop at all; usleep_blocker_reported_once covers detection */
        ASSERT_OK(gh_release(g));
        ASSERT_OK(gh_release(idle));
        ASSERT_OK(gh_hub_destroy());
        return;
    }
    wait_reports(2, 2.0);
    ASSERT_GE(reports(), 2);
    ASSERT_EQ(seen[0].ended, 0);
    ASSERT_STREQ(seen[0].name, "spinner");
    ASSERT_TRUE(strstr(seen[0].text, "taken on the blocked thread") != NULL);
    ASSERT_TRUE(strstr(seen[0].text, "Native backtrace") != NULL);
    ASSERT_TRUE(strstr(seen[0].text, "<greenlet \"idler\"") != NULL);
    ASSERT_TRUE(strstr(seen[0].text, "a timer due in") != NULL); /* idler's sleep */
    ASSERT_TRUE(strstr(seen[0].text, "test_monitor") != NULL);    /* a frame of ours */
    ASSERT_OK(gh_release(g));
    ASSERT_OK(gh_release(idle));
    ASSERT_OK(gh_monitor_set_callback(NULL, NULL));
    ASSERT_OK(gh_hub_destroy());
}

/* A cooperative greenlet sleeping the same time is never reported. */
TEST(cooperative_sleeper_not_reported) {
    gh_greenlet g;
    int line;
    ASSERT_OK(gh_monitor_set_callback(on_report, NULL));
    ASSERT_OK(gh_monitor_start(THRESHOLD));
    ASSERT_OK(spawn_named(&g, cooperative, "sleeper", &line));
    ASSERT_OK(gh_join(g, GH_FOREVER, NULL));
    ASSERT_OK(gh_sleep(4 * THRESHOLD));
    ASSERT_EQ(reports(), 0);
    ASSERT_OK(gh_release(g));
    ASSERT_OK(gh_hub_destroy());
}

/* An idle hub waiting 1 s on a timer is never reported. */
TEST(idle_hub_not_reported) {
    ASSERT_OK(gh_monitor_set_callback(on_report, NULL));
    ASSERT_OK(gh_monitor_start(THRESHOLD));
    ASSERT_OK(gh_sleep(1.0));
    ASSERT_EQ(reports(), 0);
    ASSERT_OK(gh_monitor_stop());
    ASSERT_OK(gh_hub_destroy());
}

/* Two threads with a hub each, one blocked: only that one is reported. */
static volatile pid_t blocked_tid;
static void *blocking_thread(void *arg) {
    gh_greenlet g;
    int line;
    (void)arg;
    blocked_tid = gettid();
    if (gh_monitor_start(THRESHOLD) != 0) return (void *)1;
    if (spawn_named(&g, blocker, "other-blocker", &line) != 0) return (void *)2;
    if (gh_join(g, GH_FOREVER, NULL) != 0) return (void *)3;
    if (gh_sleep(4 * THRESHOLD) != 0) return (void *)4; /* let the end line come */
    gh_release(g);
    return (void *)(intptr_t)gh_hub_destroy();
}

TEST(two_threads_only_blocked_one_reported) {
    pthread_t t;
    void *rc;
    gh_greenlet g;
    int line;
    ASSERT_OK(gh_monitor_set_callback(on_report, NULL));
    ASSERT_OK(gh_monitor_start(THRESHOLD));
    ASSERT_OK(spawn_named(&g, cooperative, "fine", &line));
    ASSERT_EQ(pthread_create(&t, NULL, blocking_thread, NULL), 0);
    ASSERT_OK(gh_join(g, GH_FOREVER, NULL));
    ASSERT_OK(gh_sleep(6 * THRESHOLD));
    ASSERT_EQ(pthread_join(t, &rc), 0);
    ASSERT_EQ((intptr_t)rc, 0);
    ASSERT_EQ(reports(), 2);
    for (int i = 0; i < 2; i++) {
        ASSERT_EQ(seen[i].thread_id, (unsigned long long)blocked_tid);
        ASSERT_STREQ(seen[i].name, "other-blocker");
        ASSERT_EQ(seen[i].ended, i);
    }
    ASSERT_OK(gh_release(g));
    ASSERT_OK(gh_hub_destroy());
}

/* fork: the child's monitor thread is gone with the fork; the child's hub starts a new
 * one at its first call, and the child's blockage is reported in the child (with the
 * child's thread id), the parent's monitor goes on. */
TEST(fork_child_monitored) {
    gh_greenlet g;
    int line, status;
    /* Under valgrind a forked child "definitely loses" what the parent's monitor thread
     * held (that thread does not exist in the child): not a leak, but an error exit. */
    if (under_valgrind) /* (ASan: the same, for its own threads) */
        SKIP("under valgrind: the child loses the parent's monitor thread's memory; "
             "runs in scripts/test.sh");
    if (GH_TEST_ASAN)
        SKIP("under ASan: LeakSanitizer reports the parent's threads' memory in the child; "
             "runs in scripts/test.sh");
    if (GH_TEST_TSAN)
        SKIP("under TSan: it refuses to start threads in a child forked from a multi-threaded "
             "process; runs in scripts/test.sh");
    ASSERT_OK(gh_monitor_set_callback(on_report, NULL));
    ASSERT_OK(gh_monitor_start(THRESHOLD));
    ASSERT_OK(gh_sleep(0));
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    ASSERT_TRUE(pid >= 0);
    if (pid == 0) {
        if (spawn_named(&g, blocker, "child-blocker", &line) != 0) _exit(10);
        if (gh_join(g, GH_FOREVER, NULL) != 0) _exit(11);
        wait_reports(2, 10 * THRESHOLD * 10);
        if (reports() != 2) _exit(12);
        if (strcmp(seen[0].name, "child-blocker") != 0 || seen[1].ended != 1) _exit(13);
        if (seen[0].thread_id != (unsigned long long)gettid()) _exit(14);
        _exit(0);
    }
    ASSERT_EQ(gh_waitpid(pid, &status, GH_FOREVER), pid); /* waitpid(2) would block main */
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0);
    ASSERT_EQ(reports(), 0);
    ASSERT_OK(spawn_named(&g, blocker, "parent-blocker", &line)); /* parent still watched */
    ASSERT_OK(gh_join(g, GH_FOREVER, NULL));
    wait_reports(2, 10 * THRESHOLD * 10);
    ASSERT_EQ(reports(), 2);
    ASSERT_STREQ(seen[0].name, "parent-blocker");
    ASSERT_OK(gh_release(g));
    ASSERT_OK(gh_monitor_set_callback(NULL, NULL));
    ASSERT_OK(gh_hub_destroy());
}

/* Reads what the case wrote to stderr since `redirect_stderr`. */
static int saved_stderr = -1;
static char errpath[64];
static void redirect_stderr(void) {
    snprintf(errpath, sizeof errpath, "/tmp/gh_test_monitor_%d.err", (int)getpid());
    fflush(stderr);
    saved_stderr = dup(2);
    FILE *f = fopen(errpath, "w");
    ASSERT_TRUE(f != NULL);
    dup2(fileno(f), 2);
    fclose(f);
}
static char *restore_stderr(void) {
    static char buf[65536];
    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    FILE *f = fopen(errpath, "r");
    ASSERT_TRUE(f != NULL);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    unlink(errpath);
    return buf;
}

/* Without a callback the same report goes to stderr; GREENHUB_MONITOR_THREAD_ENABLE
 * starts the monitor with no code change. The callback and stderr carry the same
 * facts: both texts name the greenlet and its spawn site the same way. */
TEST(env_enable_reports_to_stderr) {
    gh_greenlet g;
    int line;
    char site[300];
    ASSERT_EQ(setenv("GREENHUB_MONITOR_THREAD_ENABLE", "true", 1), 0);
    char t[32];
    snprintf(t, sizeof t, "%g", THRESHOLD);
    ASSERT_EQ(setenv("GREENHUB_MAX_BLOCKING_TIME", t, 1), 0);
    redirect_stderr();
    ASSERT_OK(spawn_named(&g, blocker, "env-blocker", &line));
    ASSERT_OK(gh_join(g, GH_FOREVER, NULL));
    ASSERT_OK(gh_sleep(4 * THRESHOLD));
    char *err = restore_stderr();
    snprintf(site, sizeof site, "test_monitor.c:%d", line);
    ASSERT_TRUE(strstr(err, "greenlet \"env-blocker\"") != NULL);
    ASSERT_TRUE(strstr(err, site) != NULL);
    ASSERT_TRUE(strstr(err, "is blocked") != NULL);
    ASSERT_TRUE(strstr(err, "let the hub run again") != NULL);
    /* exactly once */
    ASSERT_TRUE(strstr(strstr(err, "is blocked") + 1, "is blocked") == NULL);
    ASSERT_OK(gh_release(g));
    ASSERT_OK(gh_hub_destroy());
}

/* gh_hub_config.monitor starts it too; a bad threshold there is GH_EINVAL. */
TEST(config_monitor) {
    gh_hub_config c;
    gh_greenlet g;
    int line;
    gh_hub_config_init(&c);
    c.monitor = 1;
    c.max_blocking_time = -1;
    ASSERT_CODE(gh_hub_configure(&c), GH_EINVAL);
    c.max_blocking_time = THRESHOLD;
    ASSERT_OK(gh_hub_configure(&c));
    ASSERT_OK(gh_monitor_set_callback(on_report, NULL));
    ASSERT_OK(spawn_named(&g, blocker, "cfg-blocker", &line));
    ASSERT_OK(gh_join(g, GH_FOREVER, NULL));
    wait_reports(2, 2.0);
    ASSERT_EQ(reports(), 2);
    ASSERT_STREQ(seen[0].name, "cfg-blocker");
    ASSERT_OK(gh_release(g));
    ASSERT_OK(gh_hub_destroy());
}

/* Bad thresholds; stop without start; stop ends reporting. */
TEST(monitor_bad_arguments_and_stop) {
    gh_greenlet g;
    int line;
    ASSERT_CODE(gh_monitor_start(NAN), GH_EINVAL);
    ASSERT_CODE(gh_monitor_start(-0.5), GH_EINVAL);
    ASSERT_CODE(gh_monitor_start(INFINITY), GH_EINVAL);
    ASSERT_CODE(gh_monitor_start(1e300), GH_EINVAL);
    ASSERT_OK(gh_monitor_stop());
    ASSERT_OK(gh_monitor_set_callback(on_report, NULL));
    ASSERT_OK(gh_monitor_start(THRESHOLD));
    ASSERT_OK(gh_monitor_start(THRESHOLD)); /* again: updates the threshold */
    ASSERT_OK(gh_monitor_stop());
    ASSERT_OK(gh_monitor_stop());
    ASSERT_OK(spawn_named(&g, blocker, "unwatched", &line));
    ASSERT_OK(gh_join(g, GH_FOREVER, NULL));
    ASSERT_OK(gh_sleep(2 * THRESHOLD));
    ASSERT_EQ(reports(), 0);
    ASSERT_OK(gh_release(g));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_OK(gh_monitor_stop()); /* no hub: nothing, and no hub created */
}

/* ---- assert_switches ---------------------------------------------------- */

/* The seed's three cases, and a blockage longer than max_blocking_time. */
TEST(assert_switches_cases) {
    gh_switch_token t;
    redirect_stderr();
    ASSERT_OK(gh_assert_switches_begin(&t, 0));
    ASSERT_CODE(gh_assert_switches_end(t), GH_ENOSWITCH); /* nothing switches */
    ASSERT_OK(gh_assert_switches_begin(&t, 0));
    ASSERT_OK(gh_sleep(0));
    ASSERT_OK(gh_assert_switches_end(t)); /* switches */
    ASSERT_OK(gh_assert_switches_begin(&t, 1.0));
    ASSERT_OK(gh_assert_switches_end(t)); /* quick, no switch, within 1 s */
    ASSERT_OK(gh_assert_switches_begin(&t, THRESHOLD));
    usleep(BLOCK_US);
    ASSERT_CODE(gh_assert_switches_end(t), GH_ENOSWITCH); /* blocked longer */
    ASSERT_OK(gh_assert_switches_begin(&t, THRESHOLD));
    ASSERT_OK(gh_sleep(0));
    usleep(BLOCK_US); /* switched, but then blocked longer than allowed */
    ASSERT_OK(gh_sleep(0));
    ASSERT_CODE(gh_assert_switches_end(t), GH_ENOSWITCH);
    ASSERT_OK(gh_assert_switches_begin(&t, THRESHOLD));
    for (int i = 0; i < 5; i++) ASSERT_OK(gh_sleep(0.02)); /* switching often enough */
    ASSERT_OK(gh_assert_switches_end(t));
    char *err = restore_stderr();
    ASSERT_TRUE(strstr(err, "no switch in") != NULL);
    ASSERT_TRUE(strstr(err, "without a switch (max_blocking_time") != NULL);
    ASSERT_TRUE(strstr(err, "Hub ") != NULL); /* the report carries the tree */
    ASSERT_OK(gh_hub_destroy());
}

static void *token_user(void *arg) {
    return (void *)(intptr_t)gh_assert_switches_end(*(gh_switch_token *)arg);
}

/* Tokens: NULL, NaN, negative, zero, used twice, forged, another thread's. */
TEST(assert_switches_bad_tokens) {
    gh_switch_token t, zero = {0}, forged;
    pthread_t th;
    void *rc;
    ASSERT_CODE(gh_assert_switches_begin(NULL, 0), GH_EINVAL);
    ASSERT_CODE(gh_assert_switches_begin(&t, NAN), GH_EINVAL);
    ASSERT_CODE(gh_assert_switches_begin(&t, -1), GH_EINVAL);
    ASSERT_CODE(gh_assert_switches_end(zero), GH_EBADHANDLE);
    ASSERT_OK(gh_assert_switches_begin(&t, 0));
    forged.id = t.id ^ 0x100000000ull; /* another generation */
    ASSERT_CODE(gh_assert_switches_end(forged), GH_EBADHANDLE);
    ASSERT_EQ(pthread_create(&th, NULL, token_user, &t), 0);
    ASSERT_EQ(pthread_join(th, &rc), 0);
    ASSERT_EQ((intptr_t)rc, GH_EWRONGTHREAD);
    ASSERT_OK(gh_sleep(0));
    ASSERT_OK(gh_assert_switches_end(t));
    ASSERT_CODE(gh_assert_switches_end(t), GH_EBADHANDLE); /* used up */
    ASSERT_OK(gh_assert_switches_begin(&t, 0));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_CODE(gh_assert_switches_end(t), GH_EBADHANDLE); /* hub destroyed */
    ASSERT_OK(gh_assert_switches_begin(&t, INFINITY)); /* +inf: never fails on time */
    usleep(10000);
    ASSERT_OK(gh_assert_switches_end(t));
    ASSERT_OK(gh_hub_destroy());
}

/* ---- settrace ----------------------------------------------------------- */

#define MAX_EV 64
static int ev_kind[MAX_EV];
static unsigned long long ev_from[MAX_EV], ev_to[MAX_EV];
static int nev, hook_sleep_rc;

static void hook(int event, gh_greenlet origin, gh_greenlet target, void *arg) {
    (void)arg;
    if (nev < MAX_EV) {
        ev_kind[nev] = event;
        ev_from[nev] = origin.id;
        ev_to[nev] = target.id;
        nev++;
    }
    hook_sleep_rc = gh_sleep(0); /* the hook runs in the hub: may not block */
}

static void *yield_once_fn(void *arg) {
    (void)arg;
    ASSERT_OK(gh_sleep(0));
    return NULL;
}
static void *return_fn(void *arg) { return arg; }

/* The exact switch sequence of a scripted scenario. */
TEST(settrace_sequence) {
    gh_greenlet a, b, m = gh_current(), h;
    gh_trace_fn f;
    void *arg;
    ASSERT_OK(gh_gettrace(&f, &arg));
    ASSERT_TRUE(f == NULL && arg == NULL);
    ASSERT_OK(GH_SPAWN(&a, yield_once_fn, NULL));
    ASSERT_OK(GH_SPAWN(&b, return_fn, NULL));
    ASSERT_OK(gh_settrace(hook, &nev));
    ASSERT_OK(gh_gettrace(&f, &arg));
    ASSERT_TRUE(f == hook && arg == &nev);
    ASSERT_OK(gh_join(a, GH_FOREVER, NULL));
    ASSERT_OK(gh_settrace(NULL, NULL));
    ASSERT_OK(gh_sleep(0)); /* not traced any more */
    ASSERT_EQ(nev, 8);
    h.id = ev_to[0]; /* the hub's handle */
    ASSERT_NE(h.id, m.id);
    unsigned long long want[8][2] = {
        {m.id, h.id}, {h.id, a.id}, {a.id, h.id}, {h.id, b.id},
        {b.id, h.id}, {h.id, a.id}, {a.id, h.id}, {h.id, m.id},
    };
    for (int i = 0; i < 8; i++) {
        ASSERT_EQ(ev_kind[i], GH_TRACE_SWITCH);
        ASSERT_EQ(ev_from[i], want[i][0]);
        ASSERT_EQ(ev_to[i], want[i][1]);
    }
    ASSERT_CODE(hook_sleep_rc, GH_EPERM);
    ASSERT_OK(gh_release(a));
    ASSERT_OK(gh_release(b));
    ASSERT_OK(gh_hub_destroy());
}

static void *sleeper_fn(void *arg) {
    (void)arg;
    gh_sleep(10);
    return NULL;
}

/* gh_kill and gh_throw are GH_TRACE_THROW events from the caller to the target. */
TEST(settrace_throw_events) {
    gh_greenlet a, m = gh_current();
    ASSERT_OK(GH_SPAWN(&a, sleeper_fn, NULL));
    ASSERT_OK(gh_sleep(0));
    ASSERT_OK(gh_settrace(hook, NULL));
    ASSERT_OK(gh_throw(a, GH_ETIMEDOUT));
    ASSERT_EQ(nev, 1);
    ASSERT_EQ(ev_kind[0], GH_TRACE_THROW);
    ASSERT_EQ(ev_from[0], m.id);
    ASSERT_EQ(ev_to[0], a.id);
    ASSERT_OK(gh_kill(a, GH_FOREVER));
    ASSERT_EQ(ev_kind[1], GH_TRACE_THROW);
    ASSERT_EQ(ev_to[1], a.id);
    ASSERT_TRUE(nev > 2); /* the kill's wait switched */
    ASSERT_CODE(gh_gettrace(NULL, NULL), GH_EINVAL);
    ASSERT_OK(gh_release(a));
    ASSERT_OK(gh_hub_destroy());
}

/* ---- format_run_info ---------------------------------------------------- */

static gh_event ev;
static gh_queue q;
static int sv[2];
static void *wait_event(void *arg) { (void)arg; gh_event_wait(ev, GH_FOREVER); return NULL; }
static void *wait_queue(void *arg) { void *v; (void)arg; gh_queue_get(q, &v, GH_FOREVER); return NULL; }
static void *wait_fd(void *arg) { (void)arg; gh_wait_read(sv[0], GH_FOREVER); return NULL; }

/* A tree of 1,000 greenlets fits a caller's buffer or reports the size needed
 * (snprintf semantics), never overflows. */
TEST(run_info_1000_greenlets) {
    static gh_greenlet gs[1000];
    int fd0 = gh_test_fd_count();
    ASSERT_OK(gh_event_new(&ev));
    ASSERT_OK(gh_queue_new(&q, 0));
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ASSERT_OK(GH_SPAWN(&gs[0], wait_event, NULL));
    ASSERT_OK(GH_SPAWN(&gs[1], wait_queue, NULL));
    ASSERT_OK(GH_SPAWN(&gs[2], wait_fd, NULL));
    for (int i = 3; i < 1000; i++) ASSERT_OK(GH_SPAWN(&gs[i], sleeper_fn, NULL));
    ASSERT_OK(gh_sleep(0));
    ssize_t n = gh_format_run_info(NULL, 0);
    ASSERT_TRUE(n > 1000 * 50);
    /* The text changes a little between calls (due times count down), so give room. */
    size_t cap = (size_t)n + 65536;
    char *buf = (char *)malloc(cap + 1);
    ASSERT_TRUE(buf != NULL);
    memset(buf, 'X', cap + 1);
    n = gh_format_run_info(buf, cap);
    ASSERT_TRUE(n > 0 && (size_t)n < cap);
    ASSERT_EQ((ssize_t)strlen(buf), n);
    ASSERT_EQ(buf[n + 1], 'X');
    ASSERT_TRUE(strstr(buf, "Hub ") != NULL);
    ASSERT_TRUE(strstr(buf, "waiting on event 0x") != NULL);
    ASSERT_TRUE(strstr(buf, "waiting on queue 0x") != NULL);
    ASSERT_TRUE(strstr(buf, "(read)") != NULL);
    ASSERT_TRUE(strstr(buf, "a timer due in") != NULL);
    ASSERT_TRUE(strstr(buf, "Spawned at ") != NULL);
    ASSERT_TRUE(strstr(buf, "test_monitor.c:") != NULL);
    ASSERT_TRUE(strstr(buf, "KiB touched of 256 KiB") != NULL);
    int count = 0;
    for (char *p = buf; (p = strstr(p, "+--- <greenlet")) != NULL; p++) count++;
    ASSERT_EQ(count, 1000);
    /* truncated: exactly len-1 bytes and a NUL, the rest untouched */
    memset(buf, 'X', cap + 1);
    ASSERT_TRUE(gh_format_run_info(buf, 100) > 1000 * 50);
    ASSERT_EQ(strlen(buf), 99);
    ASSERT_EQ(buf[100], 'X');
    memset(buf, 'X', cap + 1);
    ASSERT_TRUE(gh_format_run_info(buf, 1) > 1000 * 50);
    ASSERT_EQ(buf[0], 0);
    ASSERT_EQ(buf[1], 'X');
    ASSERT_CODE(gh_format_run_info(NULL, 5), GH_EINVAL);
    free(buf);
    for (int i = 0; i < 1000; i++) {
        ASSERT_OK(gh_kill(gs[i], GH_FOREVER));
        ASSERT_OK(gh_release(gs[i]));
    }
    ASSERT_OK(gh_queue_free(q));
    ASSERT_OK(gh_event_close(ev));
    close(sv[0]);
    close(sv[1]);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fd0);
}

/* Shared with the other hub's thread: atomics (plain volatile ints are a data race). */
static atomic_int other_ready, other_stop, other_block;
static void *other_hub(void *arg) {
    (void)arg;
    gh_greenlet g;
    if (GH_SPAWN(&g, sleeper_fn, NULL) != 0) return (void *)1;
    other_ready = 1;
    while (!other_stop) {
        if (other_block) usleep(400000), other_block = 0; /* not running its loop */
        gh_sleep(0.01);
    }
    gh_kill(g, GH_FOREVER);
    gh_release(g);
    return (void *)(intptr_t)gh_hub_destroy();
}

/* Every hub of the process; a hub that does not answer is listed as such. */
/* "N timer(s)" counts running timers: a wait's timeout timer stopped when the wait ended
 * early leaves its heap entry behind (lazily) and must not be counted. */
static gh_sem ri_sem, ri_park;
static void *timed_then_parked(void *arg) {
    (void)arg;
    if (gh_sem_acquire(ri_sem, 30.0) != GH_OK) return "acquire";
    return gh_sem_acquire(ri_park, GH_FOREVER) == GH_OK ? NULL : "park";
}

TEST(run_info_counts_running_timers) {
    static char buf[1 << 16];
    gh_greenlet g;
    void *r = "unset";
    ASSERT_OK(gh_sem_new(&ri_sem, 0));
    ASSERT_OK(gh_sem_new(&ri_park, 0));
    ASSERT_OK(GH_SPAWN(&g, timed_then_parked, NULL));
    ASSERT_OK(gh_sleep(0)); /* it waits, with a 30 s timeout timer */
    ASSERT_TRUE(gh_format_run_info(buf, sizeof buf) > 0);
    ASSERT_TRUE(strstr(buf, ", 1 timer(s)") != NULL);
    ASSERT_OK(gh_sem_release(ri_sem));
    ASSERT_OK(gh_sleep(0)); /* its timed wait ended early; it now waits with no timeout */
    ASSERT_TRUE(gh_format_run_info(buf, sizeof buf) > 0);
    if (strstr(buf, ", 0 timer(s)") == NULL) fprintf(stderr, "%.300s\n", buf);
    ASSERT_TRUE(strstr(buf, ", 0 timer(s)") != NULL);
    ASSERT_OK(gh_sem_release(ri_park));
    ASSERT_OK(gh_join(g, GH_FOREVER, &r));
    ASSERT_TRUE(r == NULL);
    ASSERT_OK(gh_release(g));
    ASSERT_OK(gh_sem_close(ri_sem));
    ASSERT_OK(gh_sem_close(ri_park));
}

TEST(run_info_other_threads) {
    pthread_t t;
    void *rc;
    static char buf[1 << 16];
    ASSERT_OK(gh_sleep(0));
    ASSERT_EQ(pthread_create(&t, NULL, other_hub, NULL), 0);
    while (!other_ready) usleep(1000);
    ssize_t n = gh_format_run_info(buf, sizeof buf);
    ASSERT_TRUE(n > 0 && n < (ssize_t)sizeof buf);
    ASSERT_TRUE(strstr(buf, "2 hub(s)") != NULL);
    char *h1 = strstr(buf, "\nHub ");
    ASSERT_TRUE(h1 != NULL && strstr(h1 + 1, "\nHub ") != NULL);
    other_block = 1;
    usleep(50000);
    n = gh_format_run_info(buf, sizeof buf);
    ASSERT_TRUE(strstr(buf, "did not answer") != NULL);
    other_stop = 1;
    ASSERT_EQ(pthread_join(t, &rc), 0);
    ASSERT_EQ((intptr_t)rc, 0);
    ASSERT_OK(gh_hub_destroy());
}

/* GREENHUB_RUN_INFO_SIGNAL names a signal that makes the hub dump its run info. */
TEST(run_info_on_signal) {
    ASSERT_EQ(setenv("GREENHUB_RUN_INFO_SIGNAL", "SIGUSR2", 1), 0);
    redirect_stderr();
    ASSERT_OK(gh_sleep(0)); /* creates the hub */
    ASSERT_EQ(raise(SIGUSR2), 0);
    ASSERT_OK(gh_sleep(0.05));
    char *err = restore_stderr();
    ASSERT_TRUE(strstr(err, "run info: process") != NULL);
    ASSERT_TRUE(strstr(err, "<main 0x") != NULL);
    ASSERT_OK(gh_hub_destroy());
}

/* Issue 19, item 5: with several hubs, the run-info signal makes one dump for the
 * whole process, and no hub's loop stalls for it. Before, every hub dumped and waited
 * for the others (busy dumping too): 0.25 s per other hub, each reported as "did not
 * answer", the dump printed once per hub. */
#define SIG_HUBS 4
static atomic_int sig_stop, sig_ready;
static double sig_gap[SIG_HUBS + 1];

static double sig_loop(int i) {
    double max = 0, last = gh_test_now();
    while (!atomic_load(&sig_stop)) {
        if (gh_sleep(0.002) != GH_OK) return 99;
        double t = gh_test_now();
        if (t - last > max) max = t - last;
        last = t;
    }
    (void)i;
    return max;
}

static void *sig_hub_thread(void *arg) {
    int i = (int)(intptr_t)arg;
    gh_sleep(0); /* creates the hub, watching the signal */
    atomic_fetch_add(&sig_ready, 1);
    sig_gap[i] = sig_loop(i);
    return (void *)(intptr_t)gh_hub_destroy();
}

static void *sig_stopper(void *arg) {
    (void)arg;
    usleep(under_valgrind ? 1500000 : 500000);
    atomic_store(&sig_stop, 1);
    return NULL;
}

TEST(run_info_signal_many_hubs_one_dump) {
    pthread_t t[SIG_HUBS], stopper;
    void *rc;
    ASSERT_EQ(setenv("GREENHUB_RUN_INFO_SIGNAL", "SIGUSR2", 1), 0);
    ASSERT_OK(gh_sleep(0));
    for (int i = 0; i < SIG_HUBS; i++)
        ASSERT_EQ(pthread_create(&t[i], NULL, sig_hub_thread, (void *)(intptr_t)(i + 1)), 0);
    while (atomic_load(&sig_ready) < SIG_HUBS) usleep(1000);
    redirect_stderr();
    ASSERT_EQ(pthread_create(&stopper, NULL, sig_stopper, NULL), 0);
    ASSERT_EQ(kill(getpid(), SIGUSR2), 0);
    sig_gap[0] = sig_loop(0);
    ASSERT_EQ(pthread_join(stopper, NULL), 0);
    for (int i = 0; i < SIG_HUBS; i++) {
        ASSERT_EQ(pthread_join(t[i], &rc), 0);
        ASSERT_EQ((intptr_t)rc, 0);
    }
    usleep(300000); /* the dump is printed by then (at most 0.25 s after the signal) */
    char *err = restore_stderr();
    char *first = strstr(err, "run info: process");
    if (first == NULL || strstr(first + 1, "run info: process") != NULL) fprintf(stderr, "%s", err);
    ASSERT_TRUE(first != NULL);
    ASSERT_TRUE(strstr(first + 1, "run info: process") == NULL); /* one dump */
    ASSERT_TRUE(strstr(err, "5 hub(s)") != NULL);
    ASSERT_TRUE(strstr(err, "did not answer") == NULL);
    int sections = 0;
    for (char *p = err; (p = strstr(p, "\nHub ")) != NULL; p++) sections++;
    ASSERT_EQ(sections, SIG_HUBS + 1);
    /* No loop waited for another (each stalled 1 s before: 0.25 s per other hub). */
    double bound = under_valgrind ? 0.6 : 0.2;
    for (int i = 0; i <= SIG_HUBS; i++) {
        if (sig_gap[i] >= bound) fprintf(stderr, "hub %d stalled %.3f s\n", i, sig_gap[i]);
        ASSERT_TRUE(sig_gap[i] < bound);
    }
    ASSERT_OK(gh_hub_destroy());
}

int main(int argc, char **argv) {
    under_valgrind = gh_test_under_valgrind();
    if (under_valgrind) {
        THRESHOLD = 0.3;
        BLOCK_US = 900000;
    }
    TEST_INIT(argc, argv);
    RUN(usleep_blocker_reported_once);
    RUN(cpu_loop_reported_with_tree_and_backtrace);
    RUN(cooperative_sleeper_not_reported);
    RUN(idle_hub_not_reported);
    RUN(two_threads_only_blocked_one_reported);
    RUN(fork_child_monitored);
    RUN(env_enable_reports_to_stderr);
    RUN(config_monitor);
    RUN(monitor_bad_arguments_and_stop);
    RUN(assert_switches_cases);
    RUN(assert_switches_bad_tokens);
    RUN(settrace_sequence);
    RUN(settrace_throw_events);
    RUN(run_info_1000_greenlets);
    RUN(run_info_counts_running_timers);
    RUN(run_info_other_threads);
    RUN(run_info_on_signal);
    RUN(run_info_signal_many_hubs_one_dump);
    return TEST_DONE();
}

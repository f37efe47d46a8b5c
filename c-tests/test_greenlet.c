/* test_greenlet.c — the "Greenlets" section of include/greenhub.h:
 * gh_spawn, gh_spawn_ex, GH_SPAWN / GH_SPAWN_EX / gh_spawn_at, gh_spawn_later,
 * gh_current, gh_main, gh_join, gh_joinall, gh_kill, gh_throw, gh_switch, gh_sleep,
 * gh_greenlet_state, gh_greenlet_name / gh_greenlet_set_name, gh_release.
 *
 * Every case runs in its own forked child (harness.h) and ends with the hub destroyed
 * and the fd count back at the baseline taken when the case started. Numbers such as
 * "FAULTS 11" refer to /work/shared/FAULTS.md.
 */
#include "harness.h"

#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/resource.h>

/* ---- helpers -------------------------------------------------------------- */

/* Take the fd baseline at the start of a case; END() destroys the hub and checks it. */
#define BEGIN() const int fd_base_ = gh_test_fd_count()
#define END()                                                                  \
    do {                                                                       \
        ASSERT_OK(gh_hub_destroy());                                           \
        ASSERT_EQ(gh_test_fd_count(), fd_base_);                               \
    } while (0)

#define PTR(n) ((void *)(uintptr_t)(n))
#define NUM(p) ((long long)(uintptr_t)(p))

/* An ordered log of events, compared as a string. */
static char g_log[1024];
static void log_add(const char *s) {
    strncat(g_log, s, sizeof g_log - strlen(g_log) - 1);
}

/* Returns its argument: gh_join must hand back exactly this pointer. */
static void *ret_arg(void *arg) { return arg; }

/* Appends its argument (a string) to the log and returns it. */
static void *log_arg(void *arg) {
    log_add((const char *)arg);
    return arg;
}

/* Sets *(int *)arg to 1. */
static void *set_flag(void *arg) {
    *(int *)arg = 1;
    return PTR(1);
}

/* Sleeps `secs` and records what gh_sleep returned and when. */
struct sleeper {
    double secs;
    int rc;
    int done;
    double t0, t1;
};
static void *sleeper_fn(void *arg) {
    struct sleeper *s = (struct sleeper *)arg;
    s->t0 = gh_test_now();
    s->rc = gh_sleep(s->secs);
    s->t1 = gh_test_now();
    s->done = 1;
    return s;
}

/* A hub callback recording gh_current(): how a test gets the hub greenlet's handle. */
static void grab_current_cb(void *arg) { *(gh_greenlet *)arg = gh_current(); }
static gh_greenlet get_hub(void) {
    gh_greenlet h = {0};
    ASSERT_OK(gh_run_callback(grab_current_cb, &h));
    ASSERT_OK(gh_sleep(0)); /* queued work runs in FIFO order, before main's wake-up */
    ASSERT_NE(h.id, 0);
    return h;
}

/* Uses `bytes` of stack, touching every page from the top down (the guard page first). */
__attribute__((noinline)) static unsigned use_stack(size_t bytes) {
    volatile unsigned char buf[bytes];
    unsigned sum = 0;
    size_t i;
    for (i = bytes; i > 0; i -= (i >= 512 ? 512 : i)) buf[i - 1] = (unsigned char)i;
    for (i = bytes; i > 0; i -= (i >= 512 ? 512 : i)) sum += buf[i - 1];
    return sum;
}
static void *stack_user(void *arg) {
    size_t n = *(size_t *)arg;
    (void)use_stack(n);
    return PTR(7);
}

/* ==== gh_spawn ============================================================= */

/* gh_spawn: fn(arg) runs once the caller yields; gh_join hands back its return value. */
TEST(spawn_runs_fn_and_join_returns_its_result) {
    BEGIN();
    int x = 0, flag = 0;
    gh_greenlet g, f;
    void *r = NULL;
    ASSERT_OK(gh_spawn(&g, ret_arg, &x));
    ASSERT_NE(g.id, 0);
    ASSERT_OK(gh_spawn(&f, set_flag, &flag));
    ASSERT_EQ(flag, 0); /* not run by the spawn itself */
    ASSERT_CODE(gh_greenlet_state(f), GH_STATE_NEW);
    ASSERT_OK(gh_join(g, -1, &r));
    ASSERT_TRUE(r == &x);
    ASSERT_OK(gh_join(f, -1, &r));
    ASSERT_EQ(flag, 1);
    ASSERT_EQ(NUM(r), 1);
    ASSERT_CODE(gh_greenlet_state(g), GH_STATE_DEAD);
    ASSERT_OK(gh_release(g));
    ASSERT_OK(gh_release(f));
    END();
}

/* gh_spawn: nothing runs before the caller yields; then they start in spawn order. */
TEST(spawn_starts_on_yield_in_spawn_order) {
    BEGIN();
    gh_greenlet g[3];
    ASSERT_OK(gh_spawn(&g[0], log_arg, "A"));
    ASSERT_OK(gh_spawn(&g[1], log_arg, "B"));
    ASSERT_OK(gh_spawn(&g[2], log_arg, "C"));
    ASSERT_STREQ(g_log, "");
    ASSERT_OK(gh_sleep(0));
    ASSERT_STREQ(g_log, "ABC");
    for (int i = 0; i < 3; i++) ASSERT_OK(gh_release(g[i]));
    END();
}

/* Every spawn function: fn NULL -> GH_EINVAL, and nothing was spawned (main's forever
 * sleep then ends with GH_ELOOPEXIT: no greenlet is alive). */
TEST(spawn_null_fn_einval) {
    BEGIN();
    gh_greenlet g = {0};
    gh_spawn_options o = {0, "x"};
    ASSERT_CODE(gh_spawn(&g, NULL, NULL), GH_EINVAL);
    ASSERT_CODE(gh_spawn(NULL, NULL, NULL), GH_EINVAL);
    ASSERT_CODE(gh_spawn_ex(&g, NULL, NULL, &o), GH_EINVAL);
    ASSERT_CODE(gh_spawn_ex(&g, NULL, NULL, NULL), GH_EINVAL);
    ASSERT_CODE(gh_spawn_at(&g, NULL, NULL, NULL, __FILE__, __LINE__), GH_EINVAL);
    ASSERT_CODE(GH_SPAWN(&g, NULL, NULL), GH_EINVAL);
    ASSERT_CODE(gh_spawn_later(&g, 0.01, NULL, NULL), GH_EINVAL);
    ASSERT_CODE(gh_sleep(GH_FOREVER), GH_ELOOPEXIT);
    END();
}

/* out NULL = detached: the greenlet still runs (every spawn flavour). */
TEST(spawn_detached_null_out_runs) {
    BEGIN();
    int f1 = 0, f2 = 0, f3 = 0, f4 = 0;
    gh_spawn_options o = {0, "detached"};
    ASSERT_OK(gh_spawn(NULL, set_flag, &f1));
    ASSERT_OK(gh_spawn_ex(NULL, set_flag, &f2, &o));
    ASSERT_OK(GH_SPAWN(NULL, set_flag, &f3));
    ASSERT_OK(gh_spawn_later(NULL, 0.01, set_flag, &f4));
    ASSERT_OK(gh_sleep(0.05));
    ASSERT_EQ(f1, 1);
    ASSERT_EQ(f2, 1);
    ASSERT_EQ(f3, 1);
    ASSERT_EQ(f4, 1);
    END();
}

/* FAULTS 6: stack_size 0 = the 256 KiB default (200 KiB of it usable by C code). */
TEST(spawn_ex_stack_size_zero_is_default) {
    BEGIN();
    gh_greenlet g;
    void *r = NULL;
    size_t use = 200 * 1024;
    gh_spawn_options o = {0, NULL};
    ASSERT_OK(gh_spawn_ex(&g, stack_user, &use, &o));
    ASSERT_OK(gh_join(g, -1, &r));
    ASSERT_EQ(NUM(r), 7);
    ASSERT_OK(gh_release(g));
    END();
}

/* FAULTS 6: stack_size 1 and 4097 are clamped up to at least 16 KiB: 12 KiB of locals fit. */
TEST(spawn_ex_stack_size_tiny_clamped_to_16k) {
    BEGIN();
    size_t sizes[] = {1, 4097, 16 * 1024 - 1};
    for (int i = 0; i < 3; i++) {
        gh_greenlet g;
        void *r = NULL;
        size_t use = 12 * 1024;
        gh_spawn_options o = {sizes[i], NULL};
        ASSERT_OK(gh_spawn_ex(&g, stack_user, &use, &o));
        ASSERT_OK(gh_join(g, -1, &r));
        ASSERT_EQ(NUM(r), 7);
        ASSERT_OK(gh_release(g));
    }
    END();
}

/* FAULTS 6: a size that is not page-aligned is rounded up to whole pages:
 * 16 KiB + 1 gives 16 KiB + one page, so 16 KiB + 512 bytes of locals fit. */
TEST(spawn_ex_stack_size_rounded_up_to_pages) {
    BEGIN();
    gh_greenlet g;
    void *r = NULL;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t use = 16 * 1024 + page / 8;
    gh_spawn_options o = {16 * 1024 + 1, NULL};
    ASSERT_OK(gh_spawn_ex(&g, stack_user, &use, &o));
    ASSERT_OK(gh_join(g, -1, &r));
    ASSERT_EQ(NUM(r), 7);
    ASSERT_OK(gh_release(g));
    END();
}

/* FAULTS 6: a 1 MiB stack really is 1 MiB: 900 KiB of locals fit (the default would overflow). */
TEST(spawn_ex_stack_size_1mib) {
    BEGIN();
    gh_greenlet g;
    void *r = NULL;
    size_t use = 900 * 1024;
    gh_spawn_options o = {1024 * 1024, "big"};
    ASSERT_OK(gh_spawn_ex(&g, stack_user, &use, &o));
    ASSERT_OK(gh_join(g, -1, &r));
    ASSERT_EQ(NUM(r), 7);
    ASSERT_OK(gh_release(g));
    END();
}

/* FAULTS 6: exactly 1 GiB is allowed (only touched pages cost memory). */
TEST(spawn_ex_stack_size_1gib_allowed) {
    BEGIN();
    gh_greenlet g;
    void *r = NULL;
    size_t use = 64 * 1024;
    gh_spawn_options o = {(size_t)1 << 30, NULL};
    ASSERT_OK(gh_spawn_ex(&g, stack_user, &use, &o));
    ASSERT_OK(gh_join(g, -1, &r));
    ASSERT_EQ(NUM(r), 7);
    ASSERT_OK(gh_release(g));
    END();
}

/* FAULTS 6: above 1 GiB (1 GiB + 1, SIZE_MAX) -> GH_EINVAL, nothing spawned, no panic. */
TEST(spawn_ex_stack_size_too_big_einval) {
    BEGIN();
    int flag = 0;
    gh_greenlet g = {0};
    gh_spawn_options o1 = {((size_t)1 << 30) + 1, NULL};
    gh_spawn_options o2 = {SIZE_MAX, "huge"};
    ASSERT_CODE(gh_spawn_ex(&g, set_flag, &flag, &o1), GH_EINVAL);
    ASSERT_CODE(gh_spawn_ex(&g, set_flag, &flag, &o2), GH_EINVAL);
    ASSERT_CODE(gh_spawn_ex(NULL, set_flag, &flag, &o2), GH_EINVAL);
    ASSERT_CODE(GH_SPAWN_EX(&g, set_flag, &flag, &o2), GH_EINVAL);
    ASSERT_CODE(gh_sleep(GH_FOREVER), GH_ELOOPEXIT);
    ASSERT_EQ(flag, 0);
    END();
}

/* gh_spawn_ex: the name is copied at spawn; opts NULL or name NULL = unnamed (""). */
TEST(spawn_ex_name_is_copied) {
    BEGIN();
    char src[16] = "worker-1";
    char buf[32];
    gh_greenlet g, u1, u2;
    gh_spawn_options o = {0, src};
    gh_spawn_options none = {0, NULL};
    ASSERT_OK(gh_spawn_ex(&g, ret_arg, NULL, &o));
    strcpy(src, "CHANGED");
    ASSERT_EQ(gh_greenlet_name(g, buf, sizeof buf), 8);
    ASSERT_STREQ(buf, "worker-1");
    ASSERT_OK(gh_spawn_ex(&u1, ret_arg, NULL, NULL));
    ASSERT_OK(gh_spawn_ex(&u2, ret_arg, NULL, &none));
    strcpy(buf, "junk");
    ASSERT_EQ(gh_greenlet_name(u1, buf, sizeof buf), 0);
    ASSERT_STREQ(buf, "");
    strcpy(buf, "junk");
    ASSERT_EQ(gh_greenlet_name(u2, buf, sizeof buf), 0);
    ASSERT_STREQ(buf, "");
    ASSERT_OK(gh_join(g, -1, NULL));
    ASSERT_EQ(gh_greenlet_name(g, buf, sizeof buf), 8); /* still named once dead */
    ASSERT_STREQ(buf, "worker-1");
    ASSERT_OK(gh_release(g));
    ASSERT_OK(gh_release(u1));
    ASSERT_OK(gh_release(u2));
    END();
}

/* GH_SPAWN, GH_SPAWN_EX and gh_spawn_at (file NULL or a literal) spawn like gh_spawn_ex. */
TEST(spawn_macros_and_spawn_at) {
    BEGIN();
    int a = 1, b = 2, c = 3, d = 4;
    gh_greenlet g1, g2, g3, g4;
    gh_spawn_options o = {32 * 1024, "macro-ex"};
    char buf[32];
    void *r = NULL;
    ASSERT_OK(GH_SPAWN(&g1, ret_arg, &a));
    ASSERT_OK(GH_SPAWN_EX(&g2, ret_arg, &b, &o));
    ASSERT_OK(gh_spawn_at(&g3, ret_arg, &c, NULL, NULL, 0));
    ASSERT_OK(gh_spawn_at(&g4, ret_arg, &d, &o, "somewhere.c", 42));
    ASSERT_EQ(gh_greenlet_name(g2, buf, sizeof buf), 8);
    ASSERT_STREQ(buf, "macro-ex");
    ASSERT_EQ(gh_greenlet_name(g1, buf, sizeof buf), 0);
    ASSERT_OK(gh_join(g1, -1, &r));
    ASSERT_TRUE(r == &a);
    ASSERT_OK(gh_join(g2, -1, &r));
    ASSERT_TRUE(r == &b);
    ASSERT_OK(gh_join(g3, -1, &r));
    ASSERT_TRUE(r == &c);
    ASSERT_OK(gh_join(g4, -1, &r));
    ASSERT_TRUE(r == &d);
    ASSERT_OK(gh_release(g1));
    ASSERT_OK(gh_release(g2));
    ASSERT_OK(gh_release(g3));
    ASSERT_OK(gh_release(g4));
    END();
}

/* ==== gh_spawn_later ======================================================= */

static double later_started;
static void *note_start(void *arg) {
    later_started = gh_test_now();
    return arg;
}

/* gh_spawn_later: stays GH_STATE_NEW until `seconds` passed, then starts (not before). */
TEST(spawn_later_starts_after_delay) {
    BEGIN();
    gh_greenlet g;
    void *r = NULL;
    double t0 = gh_test_now();
    ASSERT_OK(gh_spawn_later(&g, 0.05, note_start, PTR(5)));
    ASSERT_OK(gh_sleep(0.01));
    ASSERT_CODE(gh_greenlet_state(g), GH_STATE_NEW);
    ASSERT_OK(gh_join(g, -1, &r));
    ASSERT_EQ(NUM(r), 5);
    ASSERT_TRUE(later_started - t0 >= 0.9 * 0.05);
    ASSERT_OK(gh_release(g));
    END();
}

static void log_timer_cb(gh_watcher w, int revents, void *arg) {
    (void)w;
    if (revents == GH_TIMER) log_add((const char *)arg);
    else log_add("?");
}

/* gh_spawn_later orders with timers by deadline: t100 B200 G300 A400 t600, started in the
 * order t600 A400 G300 t100 B200. Each deadline counts from its own start call, so the
 * order holds only while the calls are closer together than the 100 ms between deadlines:
 * under valgrind the first gh_spawn_later alone takes 15+ ms (code translation), which
 * 10 ms steps did not survive on a loaded machine. */
TEST(spawn_later_orders_with_timers) {
    BEGIN();
    gh_watcher t1, t2;
    gh_greenlet a, b, g;
    ASSERT_OK(gh_timer_new(&t1, 0.100, 0));
    ASSERT_OK(gh_timer_new(&t2, 0.600, 0));
    ASSERT_OK(gh_watcher_start(t2, log_timer_cb, "[t600]"));
    ASSERT_OK(gh_spawn_later(&a, 0.400, log_arg, "[A400]"));
    ASSERT_OK(gh_spawn_later(&g, 0.300, log_arg, "[G300]"));
    ASSERT_OK(gh_watcher_start(t1, log_timer_cb, "[t100]"));
    ASSERT_OK(gh_spawn_later(&b, 0.200, log_arg, "[B200]"));
    ASSERT_OK(gh_hub_run());
    ASSERT_STREQ(g_log, "[t100][B200][G300][A400][t600]");
    ASSERT_OK(gh_watcher_close(t1));
    ASSERT_OK(gh_watcher_close(t2));
    ASSERT_OK(gh_release(a));
    ASSERT_OK(gh_release(b));
    ASSERT_OK(gh_release(g));
    END();
}

/* gh_spawn_later: NaN or negative seconds -> GH_EINVAL (and nothing spawned). */
TEST(spawn_later_bad_seconds_einval) {
    BEGIN();
    int flag = 0;
    gh_greenlet g = {0};
    ASSERT_CODE(gh_spawn_later(&g, NAN, set_flag, &flag), GH_EINVAL);
    ASSERT_CODE(gh_spawn_later(&g, -1.0, set_flag, &flag), GH_EINVAL);
    ASSERT_CODE(gh_spawn_later(&g, -0.001, set_flag, &flag), GH_EINVAL);
    ASSERT_CODE(gh_spawn_later(&g, -INFINITY, set_flag, &flag), GH_EINVAL);
    ASSERT_CODE(gh_spawn_later(NULL, NAN, set_flag, &flag), GH_EINVAL);
    ASSERT_CODE(gh_sleep(GH_FOREVER), GH_ELOOPEXIT);
    ASSERT_EQ(flag, 0);
    END();
}

/* FAULTS 7: gh_spawn_later(1e300) and (+inf) never start (no deadline overflow into
 * "already due"); killing them leaves them DEAD with a NULL result. */
TEST(spawn_later_huge_delay_does_not_start) {
    BEGIN();
    int f1 = 0, f2 = 0;
    gh_greenlet g1, g2;
    void *r = PTR(1);
    ASSERT_OK(gh_spawn_later(&g1, 1e300, set_flag, &f1));
    ASSERT_OK(gh_spawn_later(&g2, INFINITY, set_flag, &f2));
    ASSERT_OK(gh_sleep(0.03));
    ASSERT_EQ(f1, 0);
    ASSERT_EQ(f2, 0);
    ASSERT_CODE(gh_greenlet_state(g1), GH_STATE_NEW);
    ASSERT_CODE(gh_greenlet_state(g2), GH_STATE_NEW);
    ASSERT_CODE(gh_join(g1, 0.02, NULL), GH_ETIMEDOUT);
    ASSERT_OK(gh_kill(g1, 0));
    ASSERT_OK(gh_kill(g2, -1));
    ASSERT_CODE(gh_greenlet_state(g1), GH_STATE_DEAD);
    ASSERT_CODE(gh_greenlet_state(g2), GH_STATE_DEAD);
    ASSERT_OK(gh_join(g1, 0, &r));
    ASSERT_TRUE(r == NULL);
    ASSERT_EQ(f1, 0);
    ASSERT_EQ(f2, 0);
    ASSERT_OK(gh_release(g1));
    ASSERT_OK(gh_release(g2));
    END();
}

/* FAULTS 14: a gh_spawn_later greenlet killed before its start time never runs. */
TEST(spawn_later_killed_before_start_never_runs) {
    BEGIN();
    int flag = 0;
    gh_greenlet g;
    void *r = PTR(1);
    ASSERT_OK(gh_spawn_later(&g, 0.02, set_flag, &flag));
    ASSERT_OK(gh_kill(g, 0));
    ASSERT_CODE(gh_greenlet_state(g), GH_STATE_DEAD);
    ASSERT_OK(gh_sleep(0.05));
    ASSERT_EQ(flag, 0);
    ASSERT_OK(gh_join(g, 0, &r));
    ASSERT_TRUE(r == NULL);
    ASSERT_OK(gh_release(g));
    END();
}

/* ==== gh_current / gh_main ================================================= */

static gh_greenlet cur_self_handle, cur_seen_current, cur_seen_main, cur_cb_current;
static void *record_current(void *arg) {
    (void)arg;
    cur_seen_current = gh_current();
    cur_seen_main = gh_main();
    return NULL;
}

/* gh_current: main in main, the greenlet itself inside it, the hub inside a callback;
 * gh_main is the same handle everywhere in the thread and is named "main". */
TEST(current_and_main_handles) {
    BEGIN();
    char buf[16];
    gh_greenlet m = gh_main();
    ASSERT_NE(m.id, 0);
    ASSERT_EQ(gh_current().id, m.id);
    ASSERT_OK(gh_spawn(&cur_self_handle, record_current, NULL));
    ASSERT_OK(gh_run_callback(grab_current_cb, &cur_cb_current));
    ASSERT_OK(gh_join(cur_self_handle, -1, NULL));
    ASSERT_EQ(cur_seen_current.id, cur_self_handle.id);
    ASSERT_EQ(cur_seen_main.id, m.id);
    ASSERT_NE(cur_cb_current.id, 0);
    ASSERT_NE(cur_cb_current.id, m.id);
    ASSERT_NE(cur_cb_current.id, cur_self_handle.id);
    ASSERT_EQ(gh_greenlet_name(cur_cb_current, buf, sizeof buf), 3);
    ASSERT_STREQ(buf, "hub");
    ASSERT_EQ(gh_current().id, m.id); /* back in main */
    ASSERT_EQ(gh_main().id, m.id);
    ASSERT_OK(gh_release(cur_self_handle));
    END();
}

/* ==== gh_join ============================================================== */

/* FAULTS 9: joining a dead greenlet reports its result at once (timeout 0), again and
 * again; the handle stays valid until released. */
TEST(join_dead_greenlet_reports_at_once) {
    BEGIN();
    gh_greenlet g;
    void *r = NULL;
    ASSERT_OK(gh_spawn(&g, ret_arg, PTR(77)));
    ASSERT_OK(gh_sleep(0));
    ASSERT_CODE(gh_greenlet_state(g), GH_STATE_DEAD);
    ASSERT_OK(gh_join(g, 0, &r));
    ASSERT_EQ(NUM(r), 77);
    r = NULL;
    ASSERT_OK(gh_join(g, 0, &r));
    ASSERT_EQ(NUM(r), 77);
    ASSERT_OK(gh_join(g, -1, NULL)); /* result NULL is allowed */
    ASSERT_OK(gh_release(g));
    END();
}

/* gh_join timeout 0 on a live greenlet (new or sleeping) -> GH_ETIMEDOUT, no waiting. */
TEST(join_timeout_zero_on_live_etimedout) {
    BEGIN();
    struct sleeper s = {-1, 1, 0, 0, 0};
    gh_greenlet g;
    void *r = PTR(3);
    ASSERT_OK(gh_spawn(&g, sleeper_fn, &s));
    ASSERT_CODE(gh_join(g, 0, &r), GH_ETIMEDOUT); /* NEW */
    ASSERT_CODE(gh_greenlet_state(g), GH_STATE_NEW); /* the check did not run the hub */
    ASSERT_OK(gh_sleep(0));
    ASSERT_CODE(gh_join(g, 0, &r), GH_ETIMEDOUT); /* WAITING */
    ASSERT_EQ(NUM(r), 3);                          /* untouched on failure */
    ASSERT_OK(gh_kill(g, -1));
    ASSERT_CODE(s.rc, GH_ECANCELED);
    ASSERT_OK(gh_release(g));
    END();
}

/* gh_join with a timeout on a greenlet that outlives it -> GH_ETIMEDOUT after >= timeout. */
TEST(join_timeout_expires) {
    BEGIN();
    struct sleeper s = {GH_FOREVER, 1, 0, 0, 0};
    gh_greenlet g;
    ASSERT_OK(gh_spawn(&g, sleeper_fn, &s));
    double t0 = gh_test_now();
    ASSERT_CODE(gh_join(g, 0.03, NULL), GH_ETIMEDOUT);
    ASSERT_TRUE(gh_test_now() - t0 >= 0.9 * 0.03);
    ASSERT_CODE(gh_greenlet_state(g), GH_STATE_WAITING);
    ASSERT_EQ(s.done, 0);
    ASSERT_OK(gh_kill(g, -1));
    ASSERT_CODE(s.rc, GH_ECANCELED);
    ASSERT_OK(gh_release(g));
    END();
}

/* FAULTS 7: gh_join timeouts negative, +inf and 1e300 all wait until the greenlet
 * dies (none expires early); NaN -> GH_EINVAL. */
TEST(join_timeouts_negative_inf_huge_wait) {
    BEGIN();
    double timeouts[] = {-5.0, GH_FOREVER, INFINITY, 1e300};
    for (int i = 0; i < 4; i++) {
        struct sleeper s = {0.02, 1, 0, 0, 0};
        gh_greenlet g;
        void *r = NULL;
        ASSERT_OK(gh_spawn(&g, sleeper_fn, &s));
        ASSERT_CODE(gh_join(g, NAN, &r), GH_EINVAL);
        ASSERT_OK(gh_join(g, timeouts[i], &r));
        ASSERT_TRUE(r == &s);
        ASSERT_EQ(s.done, 1);
        ASSERT_OK(s.rc);
        ASSERT_OK(gh_release(g));
    }
    END();
}

static void *join_self(void *arg) {
    (void)arg;
    int a = gh_join(gh_current(), -1, NULL);
    int b = gh_join(gh_current(), 0, NULL);
    return PTR(a == GH_EDEADLK && b == GH_EDEADLK ? 1 : 1000 + (a == GH_EDEADLK));
}

/* FAULTS 10: a greenlet joining itself -> GH_EDEADLK (not a hang). */
TEST(join_self_edeadlk) {
    BEGIN();
    gh_greenlet g;
    void *r = NULL;
    ASSERT_OK(gh_spawn(&g, join_self, NULL));
    ASSERT_OK(gh_join(g, -1, &r));
    ASSERT_EQ(NUM(r), 1);
    ASSERT_OK(gh_release(g));
    END();
}

static gh_greenlet cyc[3];
static int cyc_rc[3];
/* A joins B (B joins A after A started waiting). */
static void *cyc_a(void *arg) {
    void *r = NULL;
    (void)arg;
    cyc_rc[0] = gh_join(cyc[1], -1, &r);
    return r;
}
static void *cyc_b(void *arg) {
    (void)arg;
    gh_sleep(0.01); /* A is in its join now */
    cyc_rc[1] = gh_join(cyc[0], -1, NULL);
    return PTR(0xB);
}

/* FAULTS 10: A joins B while B joins A -> B's join is GH_EDEADLK at once, not a hang;
 * then B returns and A's join gets B's result. */
TEST(join_cycle_of_two_edeadlk) {
    BEGIN();
    void *r = NULL;
    cyc_rc[0] = cyc_rc[1] = 1;
    ASSERT_OK(gh_spawn(&cyc[0], cyc_a, NULL));
    ASSERT_OK(gh_spawn(&cyc[1], cyc_b, NULL));
    ASSERT_OK(gh_join(cyc[0], -1, &r));
    ASSERT_CODE(cyc_rc[1], GH_EDEADLK);
    ASSERT_OK(cyc_rc[0]);
    ASSERT_EQ(NUM(r), 0xB);
    ASSERT_OK(gh_release(cyc[0]));
    ASSERT_OK(gh_release(cyc[1]));
    END();
}

/* A chain A -> B -> C -> A: i joins i+1; the last one to join closes the cycle. */
static void *cyc3(void *arg) {
    int i = (int)NUM(arg);
    void *r = NULL;
    gh_sleep(0.01 * i);
    cyc_rc[i] = gh_join(cyc[(i + 1) % 3], -1, &r);
    return i == 2 ? PTR(0xC) : r;
}

/* FAULTS 10: a join cycle through a chain (A joins B, B joins C, C joins A) -> the
 * closing join is GH_EDEADLK; the others then complete. */
TEST(join_cycle_of_three_edeadlk) {
    BEGIN();
    void *r = NULL;
    for (int i = 0; i < 3; i++) cyc_rc[i] = 1;
    for (int i = 0; i < 3; i++) ASSERT_OK(gh_spawn(&cyc[i], cyc3, PTR(i)));
    ASSERT_OK(gh_join(cyc[0], -1, &r));
    ASSERT_CODE(cyc_rc[2], GH_EDEADLK);
    ASSERT_OK(cyc_rc[1]);
    ASSERT_OK(cyc_rc[0]);
    ASSERT_EQ(NUM(r), 0xC);
    for (int i = 0; i < 3; i++) ASSERT_OK(gh_release(cyc[i]));
    END();
}

static void *join_main(void *arg) {
    (void)arg;
    int a = gh_join(gh_main(), -1, NULL);
    int b = gh_join(gh_main(), 0, NULL);
    return PTR(a == GH_EINVAL && b == GH_EINVAL ? 1 : 2);
}

/* gh_join of the main greenlet or of the hub (they never finish) -> GH_EINVAL. */
TEST(join_main_or_hub_einval) {
    BEGIN();
    gh_greenlet g, hub = get_hub();
    void *r = NULL;
    ASSERT_CODE(gh_join(hub, -1, NULL), GH_EINVAL);
    ASSERT_CODE(gh_join(hub, 0, NULL), GH_EINVAL);
    ASSERT_OK(gh_spawn(&g, join_main, NULL));
    ASSERT_OK(gh_join(g, -1, &r));
    ASSERT_EQ(NUM(r), 1);
    ASSERT_OK(gh_release(g));
    END();
}

/* gh_join from main on a greenlet that nothing can ever wake -> GH_ELOOPEXIT, not a hang. */
TEST(join_main_nothing_can_finish_loopexit) {
    BEGIN();
    struct sleeper s = {GH_FOREVER, 1, 0, 0, 0};
    gh_greenlet g;
    ASSERT_OK(gh_spawn(&g, sleeper_fn, &s));
    ASSERT_CODE(gh_join(g, -1, NULL), GH_ELOOPEXIT);
    ASSERT_EQ(s.done, 0);
    ASSERT_OK(gh_kill(g, -1));
    ASSERT_CODE(s.rc, GH_ECANCELED);
    ASSERT_OK(gh_release(g));
    END();
}

/* FAULTS 2/3: gh_join with zero, forged and released handles -> GH_EBADHANDLE. */
TEST(join_bad_handles_ebadhandle) {
    BEGIN();
    gh_greenlet zero = {0}, ones = {UINT64_MAX}, g, forged;
    ASSERT_CODE(gh_join(zero, 0, NULL), GH_EBADHANDLE);
    ASSERT_CODE(gh_join(zero, -1, NULL), GH_EBADHANDLE);
    ASSERT_CODE(gh_join(ones, -1, NULL), GH_EBADHANDLE);
    ASSERT_OK(gh_spawn(&g, ret_arg, NULL));
    forged.id = g.id ^ ((uint64_t)1 << 40);
    ASSERT_CODE(gh_join(forged, -1, NULL), GH_EBADHANDLE);
    ASSERT_OK(gh_join(g, -1, NULL));
    ASSERT_OK(gh_release(g));
    ASSERT_CODE(gh_join(g, -1, NULL), GH_EBADHANDLE);
    ASSERT_CODE(gh_join(g, 0, NULL), GH_EBADHANDLE);
    END();
}

/* FAULTS 14: gh_join of a greenlet killed before it started -> GH_OK with result NULL. */
TEST(join_killed_before_start_result_null) {
    BEGIN();
    gh_greenlet g;
    void *r = PTR(9);
    ASSERT_OK(gh_spawn(&g, ret_arg, PTR(5)));
    ASSERT_OK(gh_kill(g, 0));
    ASSERT_OK(gh_join(g, -1, &r));
    ASSERT_TRUE(r == NULL);
    ASSERT_OK(gh_release(g));
    END();
}

/* ==== gh_joinall =========================================================== */

/* gh_joinall: waits for all of them; GH_OK and *ndone = n. */
TEST(joinall_all_done) {
    BEGIN();
    struct sleeper s[3] = {{0.03, 1, 0, 0, 0}, {0.01, 1, 0, 0, 0}, {0.02, 1, 0, 0, 0}};
    gh_greenlet g[3];
    size_t nd = 99;
    for (int i = 0; i < 3; i++) ASSERT_OK(gh_spawn(&g[i], sleeper_fn, &s[i]));
    ASSERT_OK(gh_joinall(g, 3, -1, &nd));
    ASSERT_EQ(nd, 3);
    for (int i = 0; i < 3; i++) {
        void *r = NULL;
        ASSERT_EQ(s[i].done, 1);
        ASSERT_CODE(gh_greenlet_state(g[i]), GH_STATE_DEAD);
        ASSERT_OK(gh_join(g[i], 0, &r));
        ASSERT_TRUE(r == &s[i]);
    }
    ASSERT_OK(gh_joinall(g, 3, 0, NULL)); /* all dead: timeout 0 is fine, ndone NULL too */
    for (int i = 0; i < 3; i++) ASSERT_OK(gh_release(g[i]));
    END();
}

/* gh_joinall: one deadline for all; on expiry GH_ETIMEDOUT with *ndone = those dead.
 * Two of four greenlets die during the wait, two never do. The two that die only
 * yield, so they are dead before the deadline however slow the machine, and the 500 ms
 * timeout leaves them ~480 ms more (under valgrind the first greenlet starts alone take
 * tens of ms: 10 / 20 ms sleeps in a 60 ms timeout used to miss). */
TEST(joinall_timeout_reports_ndone) {
    BEGIN();
    struct sleeper s[4] = {{0, 1, 0, 0, 0}, {GH_FOREVER, 1, 0, 0, 0}, {0, 1, 0, 0, 0},
                           {GH_FOREVER, 1, 0, 0, 0}};
    gh_greenlet g[4];
    size_t nd = 99;
    const double timeout = 0.5;
    for (int i = 0; i < 4; i++) ASSERT_OK(gh_spawn(&g[i], sleeper_fn, &s[i]));
    double t0 = gh_test_now();
    ASSERT_CODE(gh_joinall(g, 4, timeout, &nd), GH_ETIMEDOUT);
    double dt = gh_test_now() - t0;
    ASSERT_TRUE(dt >= 0.9 * timeout);
    ASSERT_TRUE(dt < timeout * 2 + 1.0); /* one deadline for all, not one per greenlet */
    ASSERT_EQ(nd, 2);
    ASSERT_EQ(s[0].done, 1); /* the two that died are the yielders */
    ASSERT_EQ(s[2].done, 1);
    ASSERT_OK(s[0].rc);
    ASSERT_OK(s[2].rc);
    nd = 99;
    ASSERT_CODE(gh_joinall(g, 4, 0, &nd), GH_ETIMEDOUT);
    ASSERT_EQ(nd, 2);
    ASSERT_OK(gh_kill(g[1], 0));
    ASSERT_OK(gh_kill(g[3], 0));
    nd = 99;
    ASSERT_OK(gh_joinall(g, 4, -1, &nd));
    ASSERT_EQ(nd, 4);
    ASSERT_CODE(s[1].rc, GH_ECANCELED);
    ASSERT_CODE(s[3].rc, GH_ECANCELED);
    for (int i = 0; i < 4; i++) ASSERT_OK(gh_release(g[i]));
    END();
}

/* gh_joinall: n = 0 -> GH_OK, *ndone = 0 (gs may be NULL); gs NULL with n > 0 and a NaN
 * timeout -> GH_EINVAL. */
TEST(joinall_empty_null_and_nan) {
    BEGIN();
    gh_greenlet g;
    size_t nd = 99;
    ASSERT_OK(gh_joinall(NULL, 0, -1, &nd));
    ASSERT_EQ(nd, 0);
    ASSERT_OK(gh_joinall(NULL, 0, 0, NULL));
    ASSERT_OK(gh_spawn(&g, ret_arg, NULL));
    nd = 99;
    ASSERT_OK(gh_joinall(&g, 0, -1, &nd));
    ASSERT_EQ(nd, 0);
    ASSERT_CODE(gh_joinall(NULL, 1, -1, &nd), GH_EINVAL);
    ASSERT_CODE(gh_joinall(NULL, 3, 0, NULL), GH_EINVAL);
    ASSERT_CODE(gh_joinall(&g, 1, NAN, &nd), GH_EINVAL);
    ASSERT_CODE(gh_greenlet_state(g), GH_STATE_NEW); /* none of these waited */
    ASSERT_OK(gh_joinall(&g, 1, -1, NULL));
    ASSERT_OK(gh_release(g));
    END();
}

/* gh_joinall: main or hub in the list -> GH_EINVAL; a zero/released/forged handle ->
 * GH_EBADHANDLE; in every case nothing is waited for (the live greenlet stays NEW). */
TEST(joinall_rejects_bad_lists_without_waiting) {
    BEGIN();
    gh_greenlet hub = get_hub();
    gh_greenlet dead, g, list[3];
    size_t nd = 99;
    ASSERT_OK(gh_spawn(&dead, ret_arg, NULL));
    ASSERT_OK(gh_join(dead, -1, NULL));
    ASSERT_OK(gh_release(dead));
    ASSERT_OK(gh_spawn(&g, ret_arg, NULL));
    list[0] = g;
    list[2] = g;
    list[1] = gh_main();
    ASSERT_CODE(gh_joinall(list, 2, -1, &nd), GH_EINVAL);
    list[1] = hub;
    ASSERT_CODE(gh_joinall(list, 2, -1, &nd), GH_EINVAL);
    list[1].id = 0;
    ASSERT_CODE(gh_joinall(list, 3, -1, &nd), GH_EBADHANDLE);
    ASSERT_EQ(nd, 0);
    list[1] = dead;
    ASSERT_CODE(gh_joinall(list, 3, -1, &nd), GH_EBADHANDLE);
    list[1].id = g.id ^ ((uint64_t)1 << 40);
    ASSERT_CODE(gh_joinall(list, 3, -1, &nd), GH_EBADHANDLE);
    ASSERT_CODE(gh_greenlet_state(g), GH_STATE_NEW);
    ASSERT_OK(gh_joinall(list, 1, -1, &nd));
    ASSERT_EQ(nd, 1);
    ASSERT_OK(gh_release(g));
    END();
}

/* ==== gh_kill ============================================================== */

/* FAULTS 11: kill a greenlet blocked in gh_sleep -> its sleep returns GH_ECANCELED;
 * gh_kill(g, -1) returns once it is dead. */
TEST(kill_sleeping_greenlet_ecanceled) {
    BEGIN();
    struct sleeper s = {10.0, 1, 0, 0, 0};
    gh_greenlet g;
    ASSERT_OK(gh_spawn(&g, sleeper_fn, &s));
    ASSERT_OK(gh_sleep(0.01));
    ASSERT_CODE(gh_greenlet_state(g), GH_STATE_WAITING);
    ASSERT_OK(gh_kill(g, GH_FOREVER));
    ASSERT_EQ(s.done, 1);
    ASSERT_CODE(s.rc, GH_ECANCELED);
    ASSERT_CODE(gh_greenlet_state(g), GH_STATE_DEAD);
    ASSERT_OK(gh_release(g));
    END();
}

static int io_fd, io_rc = 1;
static void *io_waiter(void *arg) {
    (void)arg;
    io_rc = gh_wait_read(io_fd, -1);
    return PTR(0x10);
}

/* FAULTS 11: kill a greenlet blocked in an io wait -> GH_ECANCELED; the fd is left alone. */
TEST(kill_io_waiting_greenlet_ecanceled) {
    BEGIN();
    int p[2];
    gh_greenlet g;
    void *r = NULL;
    ASSERT_OK(pipe(p));
    io_fd = p[0];
    ASSERT_OK(gh_spawn(&g, io_waiter, NULL));
    ASSERT_OK(gh_sleep(0.01));
    ASSERT_CODE(gh_greenlet_state(g), GH_STATE_WAITING);
    ASSERT_OK(gh_kill(g, 1.0));
    ASSERT_CODE(io_rc, GH_ECANCELED);
    ASSERT_OK(gh_join(g, 0, &r));
    ASSERT_EQ(NUM(r), 0x10);
    ASSERT_OK(gh_release(g));
    ASSERT_EQ(write(p[1], "x", 1), 1); /* the pipe still works */
    ASSERT_OK(gh_wait_read(p[0], 1.0));
    close(p[0]);
    close(p[1]);
    END();
}

static gh_greenlet kj_target;
static int kj_rc = 1;
static void *joiner(void *arg) {
    (void)arg;
    kj_rc = gh_join(kj_target, -1, NULL);
    return NULL;
}

/* FAULTS 11: kill a greenlet blocked in gh_join -> its join returns GH_ECANCELED and
 * the joined greenlet is unaffected. */
TEST(kill_joining_greenlet_ecanceled) {
    BEGIN();
    struct sleeper s = {GH_FOREVER, 1, 0, 0, 0};
    gh_greenlet j;
    ASSERT_OK(gh_spawn(&kj_target, sleeper_fn, &s));
    ASSERT_OK(gh_spawn(&j, joiner, NULL));
    ASSERT_OK(gh_sleep(0.01));
    ASSERT_CODE(gh_greenlet_state(j), GH_STATE_WAITING);
    ASSERT_OK(gh_kill(j, -1));
    ASSERT_CODE(kj_rc, GH_ECANCELED);
    ASSERT_CODE(gh_greenlet_state(kj_target), GH_STATE_WAITING);
    ASSERT_EQ(s.done, 0);
    ASSERT_OK(gh_kill(kj_target, -1));
    ASSERT_CODE(s.rc, GH_ECANCELED);
    ASSERT_OK(gh_release(j));
    ASSERT_OK(gh_release(kj_target));
    END();
}

/* Nested C frames, each holding a malloc'd block across a blocking call. */
static int freed_blocks, km_rc = 1;
static int hold_and_block(int depth) {
    char *p = (char *)malloc(1000 + (size_t)depth);
    int rc;
    if (!p) return GH_ENOMEM;
    memset(p, depth, 1000);
    rc = depth == 0 ? gh_sleep(10.0) : hold_and_block(depth - 1);
    free(p); /* clean up on every path, GH_ECANCELED included */
    freed_blocks++;
    return rc;
}
static void *mallocing(void *arg) {
    (void)arg;
    km_rc = hold_and_block(4);
    return NULL;
}

/* FAULTS 12: kill a greenlet whose C frames hold malloc'd memory; it frees it on
 * GH_ECANCELED and returns (valgrind: 0 bytes definitely lost). */
TEST(kill_lets_c_frames_free_memory) {
    BEGIN();
    gh_greenlet g;
    ASSERT_OK(gh_spawn(&g, mallocing, NULL));
    ASSERT_OK(gh_sleep(0.01));
    ASSERT_EQ(freed_blocks, 0);
    ASSERT_OK(gh_kill(g, -1));
    ASSERT_CODE(km_rc, GH_ECANCELED);
    ASSERT_EQ(freed_blocks, 5);
    ASSERT_OK(gh_release(g));
    END();
}

/* A greenlet that ignores GH_ECANCELED and keeps calling gh_sleep(5.0). It stops when
 * main says so, or after 2 s of wall time as a safety bound (a starved hub). */
static volatile int ig_stop;
static int ig_first = 1, ig_calls, ig_bad, ig_slow, ig_gave_up;
static void *ignores_kill(void *arg) {
    double give_up;
    (void)arg;
    ig_first = gh_sleep(10.0); /* the kill arrives here */
    give_up = gh_test_now() + 2.0;
    while (!ig_stop) {
        double t = gh_test_now();
        int rc = gh_sleep(5.0);
        ig_calls++;
        if (rc != GH_ECANCELED) ig_bad++;
        if (gh_test_now() - t > 1.0) ig_slow++; /* "at once": not the 5 s asked */
        if (gh_test_now() > give_up) {
            ig_gave_up = 1;
            break;
        }
    }
    return NULL;
}

/* FAULTS 13: a killed greenlet that ignores GH_ECANCELED and keeps calling gh_sleep
 * gets GH_ECANCELED at once every time; gh_kill(g, 0.05) returns GH_ETIMEDOUT (it is
 * still alive) and the hub is not hung by it. */
TEST(kill_ignored_keeps_failing_and_kill_times_out) {
    BEGIN();
    gh_greenlet g;
    int rc;
    ASSERT_OK(gh_spawn(&g, ignores_kill, NULL));
    ASSERT_OK(gh_sleep(0.01));
    double t0 = gh_test_now();
    rc = gh_kill(g, 0.05);
    double dt = gh_test_now() - t0;
    ig_stop = 1;
    ASSERT_EQ(ig_gave_up, 0); /* main got control back while g was still looping */
    ASSERT_CODE(rc, GH_ETIMEDOUT);
    ASSERT_TRUE(dt >= 0.9 * 0.05);
    ASSERT_CODE(ig_first, GH_ECANCELED);
    ASSERT_TRUE(ig_calls > 0);
    ASSERT_EQ(ig_bad, 0);
    ASSERT_EQ(ig_slow, 0);
    ASSERT_OK(gh_join(g, -1, NULL));
    ASSERT_EQ(ig_bad, 0);
    ASSERT_OK(gh_release(g));
    END();
}

/* FAULTS 14: a greenlet killed before it started never runs; killing it again, or
 * killing any dead greenlet, is harmless (GH_OK). */
TEST(kill_before_start_never_runs_and_twice_is_harmless) {
    BEGIN();
    int flag = 0;
    gh_greenlet g, d;
    ASSERT_OK(gh_spawn(&g, set_flag, &flag));
    ASSERT_OK(gh_kill(g, 0));
    ASSERT_CODE(gh_greenlet_state(g), GH_STATE_DEAD);
    ASSERT_OK(gh_kill(g, 0));
    ASSERT_OK(gh_kill(g, -1));
    ASSERT_OK(gh_kill(g, 0.5));
    ASSERT_OK(gh_sleep(0.01));
    ASSERT_EQ(flag, 0);
    ASSERT_OK(gh_spawn(&d, ret_arg, PTR(4)));
    ASSERT_OK(gh_join(d, -1, NULL));
    ASSERT_OK(gh_kill(d, 0)); /* dead: harmless, result kept */
    ASSERT_OK(gh_kill(d, -1));
    void *r = NULL;
    ASSERT_OK(gh_join(d, 0, &r));
    ASSERT_EQ(NUM(r), 4);
    ASSERT_OK(gh_release(g));
    ASSERT_OK(gh_release(d));
    END();
}

/* gh_kill timeout 0 delivers the kill and returns before the victim ran again; a
 * positive timeout returns GH_OK once it is dead. */
TEST(kill_timeout_zero_and_positive) {
    BEGIN();
    struct sleeper s1 = {10.0, 1, 0, 0, 0}, s2 = {10.0, 1, 0, 0, 0};
    gh_greenlet g1, g2;
    ASSERT_OK(gh_spawn(&g1, sleeper_fn, &s1));
    ASSERT_OK(gh_spawn(&g2, sleeper_fn, &s2));
    ASSERT_OK(gh_sleep(0.01));
    ASSERT_OK(gh_kill(g1, 0));
    ASSERT_EQ(s1.done, 0);
    ASSERT_NE(gh_greenlet_state(g1), GH_STATE_DEAD);
    ASSERT_OK(gh_kill(g2, 1.0));
    ASSERT_EQ(s2.done, 1);
    ASSERT_CODE(s2.rc, GH_ECANCELED);
    ASSERT_CODE(gh_greenlet_state(g2), GH_STATE_DEAD);
    ASSERT_OK(gh_join(g1, -1, NULL));
    ASSERT_CODE(s1.rc, GH_ECANCELED);
    ASSERT_OK(gh_release(g1));
    ASSERT_OK(gh_release(g2));
    END();
}

static int ks_kill_rc = 1, ks_sleep_rc = 1, ks_yield_rc = 1;
static void *kill_self(void *arg) {
    (void)arg;
    ks_kill_rc = gh_kill(gh_current(), GH_FOREVER);
    ks_sleep_rc = gh_sleep(0.01);
    ks_yield_rc = gh_sleep(0);
    return PTR(0x5E1F);
}

/* gh_kill of the caller itself only marks it: GH_OK now, GH_ECANCELED from its next
 * blocking calls (gh_sleep(0) included). */
TEST(kill_self_only_marks) {
    BEGIN();
    gh_greenlet g;
    void *r = NULL;
    ASSERT_OK(gh_spawn(&g, kill_self, NULL));
    ASSERT_OK(gh_join(g, -1, &r));
    ASSERT_OK(ks_kill_rc);
    ASSERT_CODE(ks_sleep_rc, GH_ECANCELED);
    ASSERT_CODE(ks_yield_rc, GH_ECANCELED);
    ASSERT_EQ(NUM(r), 0x5E1F);
    ASSERT_OK(gh_release(g));
    END();
}

static void *kill_main_fn(void *arg) {
    (void)arg;
    return PTR(gh_kill(gh_main(), 0) == GH_OK ? 1 : 2);
}

/* gh_kill of the main greenlet from a greenlet: main's blocking call returns GH_ECANCELED. */
TEST(kill_main_from_greenlet) {
    BEGIN();
    gh_greenlet g;
    void *r = NULL;
    ASSERT_OK(gh_spawn(&g, kill_main_fn, NULL));
    ASSERT_CODE(gh_sleep(1.0), GH_ECANCELED);
    ASSERT_CODE(gh_greenlet_state(g), GH_STATE_DEAD);
    ASSERT_OK(gh_join(g, 0, &r)); /* dead: reported without blocking */
    ASSERT_EQ(NUM(r), 1);
    ASSERT_OK(gh_release(g));
    END();
}

/* gh_kill: NaN timeout or the hub -> GH_EINVAL; zero/forged/released -> GH_EBADHANDLE. */
TEST(kill_bad_args) {
    BEGIN();
    struct sleeper s = {GH_FOREVER, 1, 0, 0, 0};
    gh_greenlet g, hub = get_hub(), zero = {0}, forged, d;
    ASSERT_OK(gh_spawn(&g, sleeper_fn, &s));
    ASSERT_OK(gh_sleep(0));
    ASSERT_CODE(gh_kill(g, NAN), GH_EINVAL);
    ASSERT_EQ(s.done, 0); /* the failed call delivered nothing */
    ASSERT_CODE(gh_kill(hub, 0), GH_EINVAL);
    ASSERT_CODE(gh_kill(hub, -1), GH_EINVAL);
    ASSERT_CODE(gh_kill(zero, 0), GH_EBADHANDLE);
    forged.id = g.id ^ ((uint64_t)1 << 40);
    ASSERT_CODE(gh_kill(forged, 0), GH_EBADHANDLE);
    ASSERT_OK(gh_spawn(&d, ret_arg, NULL));
    ASSERT_OK(gh_release(d));
    ASSERT_CODE(gh_kill(d, 0), GH_EBADHANDLE);
    ASSERT_OK(gh_sleep(0.01));
    ASSERT_CODE(gh_greenlet_state(g), GH_STATE_WAITING);
    ASSERT_OK(gh_kill(g, -1));
    ASSERT_CODE(s.rc, GH_ECANCELED);
    ASSERT_OK(gh_release(g));
    END();
}

/* ==== blocking calls from a hub callback =================================== */

struct cbcalls {
    gh_greenlet g, k;
    int join_rc, join0_rc, joinall_rc, sleep_rc, sleep0_rc, switch_rc, killw_rc;
    int kill0_rc, throw_rc, state_rc;
};
static void blocking_calls_cb(void *arg) {
    struct cbcalls *c = (struct cbcalls *)arg;
    c->state_rc = gh_greenlet_state(gh_current());
    c->join_rc = gh_join(c->g, -1, NULL);
    c->joinall_rc = gh_joinall(&c->g, 1, 1.0, NULL);
    c->sleep_rc = gh_sleep(0.01);
    c->sleep0_rc = gh_sleep(0);
    c->switch_rc = gh_switch(c->g, NULL, NULL);
    c->killw_rc = gh_kill(c->g, 1.0);
}

/* FAULTS 33: blocking greenlet calls from a hub callback -> GH_EPERM (gh_join, gh_joinall,
 * gh_sleep incl. 0, gh_switch, gh_kill with a timeout); the hub's state there is RUNNING. */
TEST(blocking_calls_from_hub_callback_eperm) {
    BEGIN();
    struct sleeper s = {GH_FOREVER, 1, 0, 0, 0};
    struct cbcalls c;
    memset(&c, 1, sizeof c);
    ASSERT_OK(gh_spawn(&c.g, sleeper_fn, &s));
    ASSERT_OK(gh_sleep(0));
    ASSERT_OK(gh_run_callback(blocking_calls_cb, &c));
    ASSERT_OK(gh_sleep(0.01));
    ASSERT_CODE(c.state_rc, GH_STATE_RUNNING);
    ASSERT_CODE(c.join_rc, GH_EPERM);
    ASSERT_CODE(c.joinall_rc, GH_EPERM);
    ASSERT_CODE(c.sleep_rc, GH_EPERM);
    ASSERT_CODE(c.sleep0_rc, GH_EPERM);
    ASSERT_CODE(c.switch_rc, GH_EPERM);
    ASSERT_CODE(c.killw_rc, GH_EPERM);
    ASSERT_OK(gh_kill(c.g, -1));
    ASSERT_OK(gh_release(c.g));
    END();
}

static void nonblocking_calls_cb(void *arg) {
    struct cbcalls *c = (struct cbcalls *)arg;
    c->kill0_rc = gh_kill(c->k, 0);
    c->throw_rc = gh_throw(c->g, -4321);
}

/* gh_kill(g, 0) and gh_throw never block, so they work from a hub callback. */
TEST(kill_and_throw_from_hub_callback_allowed) {
    BEGIN();
    struct sleeper s1 = {10.0, 1, 0, 0, 0}, s2 = {10.0, 1, 0, 0, 0};
    struct cbcalls c;
    memset(&c, 1, sizeof c);
    ASSERT_OK(gh_spawn(&c.g, sleeper_fn, &s1));
    ASSERT_OK(gh_spawn(&c.k, sleeper_fn, &s2));
    ASSERT_OK(gh_sleep(0));
    ASSERT_OK(gh_run_callback(nonblocking_calls_cb, &c));
    ASSERT_OK(gh_join(c.g, 1.0, NULL));
    ASSERT_OK(gh_join(c.k, 1.0, NULL));
    ASSERT_OK(c.kill0_rc);
    ASSERT_OK(c.throw_rc);
    ASSERT_CODE(s1.rc, -4321);
    ASSERT_CODE(s2.rc, GH_ECANCELED);
    ASSERT_OK(gh_release(c.g));
    ASSERT_OK(gh_release(c.k));
    END();
}

/* ==== gh_throw ============================================================= */

static int th_rc1 = 1, th_rc2 = 1, th_ran;
static void *two_sleeps(void *arg) {
    double first = *(double *)arg;
    th_ran = 1;
    th_rc1 = gh_sleep(first);
    th_rc2 = gh_sleep(0.01);
    return PTR(0x77);
}

/* gh_throw: the blocked call returns the code, once: the next call works normally. */
TEST(throw_wakes_blocked_call_once) {
    BEGIN();
    double first = 10.0;
    gh_greenlet g;
    void *r = NULL;
    ASSERT_OK(gh_spawn(&g, two_sleeps, &first));
    ASSERT_OK(gh_sleep(0.01));
    ASSERT_OK(gh_throw(g, -4242));
    ASSERT_OK(gh_join(g, 1.0, &r));
    ASSERT_CODE(th_rc1, -4242);
    ASSERT_OK(th_rc2);
    ASSERT_EQ(NUM(r), 0x77);
    ASSERT_OK(gh_release(g));
    END();
}

/* gh_throw on a greenlet that has not started: it runs, and its first blocking call
 * returns the code (once). */
TEST(throw_before_start_hits_first_blocking_call) {
    BEGIN();
    double first = 0.01;
    gh_greenlet g;
    ASSERT_OK(gh_spawn(&g, two_sleeps, &first));
    ASSERT_OK(gh_throw(g, GH_ETIMEDOUT));
    ASSERT_OK(gh_join(g, 1.0, NULL));
    ASSERT_EQ(th_ran, 1);
    ASSERT_CODE(th_rc1, GH_ETIMEDOUT);
    ASSERT_OK(th_rc2);
    ASSERT_OK(gh_release(g));
    END();
}

static int ts_throw_rc = 1, ts_rc1 = 1, ts_rc2 = 1;
static void *throw_self(void *arg) {
    (void)arg;
    ts_throw_rc = gh_throw(gh_current(), -77);
    ts_rc1 = gh_sleep(0);
    ts_rc2 = gh_sleep(0);
    return NULL;
}

/* gh_throw at the caller itself: its next blocking call returns the code, once. */
TEST(throw_at_self_hits_next_blocking_call) {
    BEGIN();
    gh_greenlet g;
    ASSERT_OK(gh_spawn(&g, throw_self, NULL));
    ASSERT_OK(gh_join(g, -1, NULL));
    ASSERT_OK(ts_throw_rc);
    ASSERT_CODE(ts_rc1, -77);
    ASSERT_OK(ts_rc2);
    ASSERT_OK(gh_release(g));
    END();
}

static void *throw_main(void *arg) {
    (void)arg;
    int rc = gh_throw(gh_main(), -999);
    gh_sleep(0.02);
    return PTR(rc == GH_OK ? 1 : 2);
}

/* gh_throw at the main greenlet: main's blocked gh_join returns the code, once. */
TEST(throw_at_main_wakes_its_join) {
    BEGIN();
    gh_greenlet g;
    void *r = NULL;
    ASSERT_OK(gh_spawn(&g, throw_main, NULL));
    ASSERT_CODE(gh_join(g, -1, &r), -999);
    ASSERT_OK(gh_join(g, -1, &r));
    ASSERT_EQ(NUM(r), 1);
    ASSERT_OK(gh_release(g));
    END();
}

/* gh_throw: code >= 0 or the hub -> GH_EINVAL; dead -> GH_EDEAD (FAULTS 9);
 * zero/forged/released -> GH_EBADHANDLE. */
TEST(throw_bad_args) {
    BEGIN();
    struct sleeper s = {0.01, 1, 0, 0, 0};
    gh_greenlet g, d, hub = get_hub(), zero = {0}, forged;
    ASSERT_OK(gh_spawn(&g, sleeper_fn, &s));
    ASSERT_CODE(gh_throw(g, 0), GH_EINVAL);
    ASSERT_CODE(gh_throw(g, 1), GH_EINVAL);
    ASSERT_CODE(gh_throw(g, 12345), GH_EINVAL);
    ASSERT_CODE(gh_throw(hub, -5), GH_EINVAL);
    ASSERT_CODE(gh_throw(zero, -5), GH_EBADHANDLE);
    forged.id = g.id ^ ((uint64_t)1 << 40);
    ASSERT_CODE(gh_throw(forged, -5), GH_EBADHANDLE);
    ASSERT_OK(gh_join(g, -1, NULL));
    ASSERT_OK(s.rc); /* none of the rejected throws was delivered */
    ASSERT_CODE(gh_throw(g, -5), GH_EDEAD);
    ASSERT_OK(gh_spawn(&d, ret_arg, NULL));
    ASSERT_OK(gh_kill(d, 0)); /* dead before it started */
    ASSERT_CODE(gh_throw(d, -5), GH_EDEAD);
    ASSERT_OK(gh_release(d));
    ASSERT_CODE(gh_throw(d, -5), GH_EBADHANDLE);
    ASSERT_OK(gh_release(g));
    END();
}

/* ==== gh_switch ============================================================ */

static gh_greenlet sw_a, sw_b;
static int sw_end_rc = 1;
static void *ping(void *arg) {
    void *v = NULL;
    log_add((const char *)arg); /* the spawn arg, not main's switch value */
    if (gh_switch(sw_b, PTR(1), &v) != GH_OK) return PTR(0xBAD);
    log_add(NUM(v) == 2 ? "A2" : "A?");
    if (gh_switch(sw_b, PTR(3), &v) != GH_OK) return PTR(0xBAD);
    log_add(NUM(v) == 4 ? "A4" : "A?");
    sw_end_rc = gh_switch(gh_main(), PTR(5), &v); /* main kills us while we wait here */
    return PTR(0xA);
}
static void *pong(void *arg) {
    void *v = NULL;
    log_add((const char *)arg);
    if (gh_switch(sw_a, PTR(2), &v) != GH_OK) return PTR(0xBAD);
    log_add(NUM(v) == 3 ? "B3" : "B?");
    gh_switch(sw_a, PTR(4), &v); /* killed here */
    return PTR(0xB);
}

/* gh_switch: values ping-pong A -> B -> A -> B -> A -> main, in order; a new greenlet
 * switched to starts with its spawn arg; a greenlet parked in gh_switch can be killed. */
TEST(switch_ping_pong_between_greenlets) {
    BEGIN();
    void *v = NULL, *r = NULL;
    ASSERT_OK(gh_spawn(&sw_a, ping, "a"));
    ASSERT_OK(gh_spawn(&sw_b, pong, "b"));
    ASSERT_OK(gh_switch(sw_a, PTR(99), &v));
    ASSERT_EQ(NUM(v), 5);
    ASSERT_STREQ(g_log, "abA2B3A4");
    ASSERT_CODE(gh_greenlet_state(sw_a), GH_STATE_WAITING);
    ASSERT_CODE(gh_greenlet_state(sw_b), GH_STATE_WAITING);
    ASSERT_OK(gh_kill(sw_a, -1));
    ASSERT_CODE(sw_end_rc, GH_ECANCELED);
    ASSERT_OK(gh_join(sw_a, 0, &r));
    ASSERT_EQ(NUM(r), 0xA);
    ASSERT_OK(gh_kill(sw_b, -1));
    ASSERT_OK(gh_join(sw_b, 0, &r));
    ASSERT_EQ(NUM(r), 0xB);
    ASSERT_OK(gh_release(sw_a));
    ASSERT_OK(gh_release(sw_b));
    END();
}

static int pm_received[3];
static void *ping_main(void *arg) {
    void *v = NULL;
    int i, rc;
    (void)arg;
    for (i = 0; i < 3; i++) {
        if (gh_switch(gh_main(), PTR(i + 1), &v) != GH_OK) return PTR(0xBAD);
        pm_received[i] = (int)NUM(v);
    }
    rc = gh_switch(gh_main(), PTR(99), &v); /* main kills us here */
    return PTR(rc == GH_ECANCELED ? 0xD0E : 0xBAD);
}

/* gh_switch between main and a greenlet: values go both ways, in order. */
TEST(switch_ping_pong_with_main) {
    BEGIN();
    gh_greenlet g;
    void *v = NULL, *r = NULL;
    ASSERT_OK(gh_spawn(&g, ping_main, NULL));
    ASSERT_OK(gh_switch(g, NULL, &v));
    ASSERT_EQ(NUM(v), 1);
    ASSERT_OK(gh_switch(g, PTR(101), &v));
    ASSERT_EQ(NUM(v), 2);
    ASSERT_OK(gh_switch(g, PTR(102), &v));
    ASSERT_EQ(NUM(v), 3);
    ASSERT_OK(gh_switch(g, PTR(103), NULL)); /* received NULL is allowed */
    ASSERT_EQ(pm_received[0], 101);
    ASSERT_EQ(pm_received[1], 102);
    ASSERT_EQ(pm_received[2], 103);
    ASSERT_OK(gh_kill(g, -1));
    ASSERT_OK(gh_join(g, 0, &r));
    ASSERT_EQ(NUM(r), 0xD0E);
    ASSERT_OK(gh_release(g));
    END();
}

/* gh_switch from main to a greenlet that just returns: nothing can switch back to main
 * -> GH_ELOOPEXIT, not a hang. */
TEST(switch_main_nobody_switches_back_loopexit) {
    BEGIN();
    int flag = 0;
    gh_greenlet g;
    ASSERT_OK(gh_spawn(&g, set_flag, &flag));
    ASSERT_CODE(gh_switch(g, NULL, NULL), GH_ELOOPEXIT);
    ASSERT_EQ(flag, 1);
    ASSERT_CODE(gh_greenlet_state(g), GH_STATE_DEAD);
    ASSERT_OK(gh_release(g));
    END();
}

static void *switch_self(void *arg) {
    (void)arg;
    return PTR(gh_switch(gh_current(), NULL, NULL) == GH_EINVAL ? 1 : 2);
}

/* FAULTS 16: gh_switch to the running greenlet (main or a spawned one) -> GH_EINVAL. */
TEST(switch_to_self_einval) {
    BEGIN();
    gh_greenlet g;
    void *r = NULL;
    ASSERT_CODE(gh_switch(gh_main(), NULL, NULL), GH_EINVAL);
    ASSERT_CODE(gh_switch(gh_current(), PTR(1), &r), GH_EINVAL);
    ASSERT_OK(gh_spawn(&g, switch_self, NULL));
    ASSERT_OK(gh_join(g, -1, &r));
    ASSERT_EQ(NUM(r), 1);
    ASSERT_OK(gh_release(g));
    END();
}

/* FAULTS 9: gh_switch to a dead greenlet (returned, or killed before start) -> GH_EDEAD. */
TEST(switch_to_dead_edead) {
    BEGIN();
    gh_greenlet g, k;
    ASSERT_OK(gh_spawn(&g, ret_arg, NULL));
    ASSERT_OK(gh_join(g, -1, NULL));
    ASSERT_CODE(gh_switch(g, NULL, NULL), GH_EDEAD);
    ASSERT_OK(gh_spawn(&k, ret_arg, NULL));
    ASSERT_OK(gh_kill(k, 0));
    ASSERT_CODE(gh_switch(k, NULL, NULL), GH_EDEAD);
    ASSERT_OK(gh_release(g));
    ASSERT_OK(gh_release(k));
    END();
}

/* gh_switch to a greenlet blocked in gh_sleep -> GH_EBUSY (its sleep is undisturbed). */
TEST(switch_to_sleeping_ebusy) {
    BEGIN();
    struct sleeper s = {0.05, 1, 0, 0, 0};
    gh_greenlet g;
    ASSERT_OK(gh_spawn(&g, sleeper_fn, &s));
    ASSERT_OK(gh_sleep(0.01));
    ASSERT_CODE(gh_switch(g, PTR(1), NULL), GH_EBUSY);
    ASSERT_OK(gh_join(g, -1, NULL));
    ASSERT_OK(s.rc);
    ASSERT_TRUE(s.t1 - s.t0 >= 0.9 * 0.05);
    ASSERT_OK(gh_release(g));
    END();
}

/* gh_switch: zero, forged and released handles -> GH_EBADHANDLE. */
TEST(switch_bad_handles) {
    BEGIN();
    gh_greenlet zero = {0}, ones = {UINT64_MAX}, g, forged;
    ASSERT_CODE(gh_switch(zero, NULL, NULL), GH_EBADHANDLE);
    ASSERT_CODE(gh_switch(ones, NULL, NULL), GH_EBADHANDLE);
    ASSERT_OK(gh_spawn(&g, ret_arg, NULL));
    forged.id = g.id ^ ((uint64_t)1 << 40);
    ASSERT_CODE(gh_switch(forged, NULL, NULL), GH_EBADHANDLE);
    ASSERT_OK(gh_release(g)); /* released while new: it still runs, detached */
    ASSERT_CODE(gh_switch(g, NULL, NULL), GH_EBADHANDLE);
    ASSERT_OK(gh_sleep(0));
    END();
}

/* ==== gh_sleep ============================================================= */

static void *yield3(void *arg) {
    const char *name = (const char *)arg;
    char s[4] = {name[0], 0, 0, 0};
    for (int i = 1; i <= 3; i++) {
        s[1] = (char)('0' + i);
        log_add(s);
        if (gh_sleep(0) != GH_OK) log_add("!");
    }
    return NULL;
}

/* gh_sleep(0) yields: two greenlets alternate A1 B1 A2 B2 A3 B3. */
TEST(sleep_zero_interleaves_in_order) {
    BEGIN();
    gh_greenlet a, b;
    ASSERT_OK(gh_spawn(&a, yield3, "A"));
    ASSERT_OK(gh_spawn(&b, yield3, "B"));
    ASSERT_OK(gh_join(a, -1, NULL));
    ASSERT_OK(gh_join(b, -1, NULL));
    ASSERT_STREQ(g_log, "A1B1A2B2A3B3");
    ASSERT_OK(gh_release(a));
    ASSERT_OK(gh_release(b));
    END();
}

static int storm_pipe[2];
static volatile int storm_timer_fired, storm_io_done, storm_gave_up;
static long storm_yields;
static void storm_timer_cb(gh_watcher w, int revents, void *arg) {
    (void)w;
    (void)arg;
    if (revents != GH_TIMER) return;
    storm_timer_fired = 1;
    if (write(storm_pipe[1], "x", 1) != 1) storm_gave_up = 2;
}
static void *storm_reader(void *arg) {
    (void)arg;
    int rc = gh_wait_read(storm_pipe[0], -1);
    storm_io_done = rc == GH_OK ? 1 : -1;
    return NULL;
}
static void *storm(void *arg) {
    double give_up = gh_test_now() + 3.0;
    (void)arg;
    while (!(storm_timer_fired && storm_io_done)) {
        if (gh_sleep(0) != GH_OK) return PTR(0xBAD);
        storm_yields++;
        if (gh_test_now() > give_up) {
            storm_gave_up = 1;
            break;
        }
    }
    return NULL;
}

/* A storm of gh_sleep(0) from one greenlet still lets a timer fire and another
 * greenlet's io wait complete (IO is polled under a storm of yields). */
TEST(sleep_zero_storm_lets_io_and_timers_run) {
    BEGIN();
    gh_watcher t;
    gh_greenlet s, r;
    void *res = PTR(1);
    ASSERT_OK(pipe(storm_pipe));
    ASSERT_OK(gh_timer_new(&t, 0.02, 0));
    ASSERT_OK(gh_watcher_start(t, storm_timer_cb, NULL));
    ASSERT_OK(gh_spawn(&r, storm_reader, NULL));
    ASSERT_OK(gh_spawn(&s, storm, NULL));
    ASSERT_OK(gh_join(s, -1, &res));
    ASSERT_TRUE(res == NULL);
    ASSERT_EQ(storm_gave_up, 0);
    ASSERT_EQ(storm_timer_fired, 1);
    ASSERT_EQ(storm_io_done, 1);
    ASSERT_TRUE(storm_yields > 0);
    ASSERT_OK(gh_join(r, -1, NULL));
    ASSERT_OK(gh_watcher_close(t));
    ASSERT_OK(gh_release(s));
    ASSERT_OK(gh_release(r));
    close(storm_pipe[0]);
    close(storm_pipe[1]);
    END();
}

/* FAULTS 7: gh_sleep negative, GH_FOREVER, +inf and 1e300 sleep until killed (none
 * returns early); they return GH_ECANCELED. */
TEST(sleep_negative_inf_huge_until_killed) {
    BEGIN();
    struct sleeper s[5] = {{-0.5, 1, 0, 0, 0}, {GH_FOREVER, 1, 0, 0, 0}, {-INFINITY, 1, 0, 0, 0},
                           {INFINITY, 1, 0, 0, 0}, {1e300, 1, 0, 0, 0}};
    gh_greenlet g[5];
    for (int i = 0; i < 5; i++) ASSERT_OK(gh_spawn(&g[i], sleeper_fn, &s[i]));
    ASSERT_OK(gh_sleep(0.05));
    for (int i = 0; i < 5; i++) {
        ASSERT_EQ(s[i].done, 0);
        ASSERT_CODE(gh_greenlet_state(g[i]), GH_STATE_WAITING);
    }
    for (int i = 0; i < 5; i++) {
        ASSERT_OK(gh_kill(g[i], -1));
        ASSERT_CODE(s[i].rc, GH_ECANCELED);
        ASSERT_OK(gh_release(g[i]));
    }
    END();
}

/* FAULTS 34: main sleeping forever with nothing else alive -> GH_ELOOPEXIT at once. */
TEST(sleep_forever_in_main_alone_loopexit) {
    BEGIN();
    ASSERT_CODE(gh_sleep(GH_FOREVER), GH_ELOOPEXIT);
    ASSERT_CODE(gh_sleep(-3.0), GH_ELOOPEXIT);
    ASSERT_CODE(gh_sleep(INFINITY), GH_ELOOPEXIT);
    ASSERT_OK(gh_sleep(0)); /* a yield is still fine */
    ASSERT_OK(gh_sleep(0.001));
    END();
}

static void *sleep_nan(void *arg) {
    (void)arg;
    return PTR(gh_sleep(NAN) == GH_EINVAL ? 1 : 2);
}

/* gh_sleep(NaN) -> GH_EINVAL, from main and from a greenlet. */
TEST(sleep_nan_einval) {
    BEGIN();
    gh_greenlet g;
    void *r = NULL;
    ASSERT_CODE(gh_sleep(NAN), GH_EINVAL);
    ASSERT_CODE(gh_sleep(-NAN), GH_EINVAL);
    ASSERT_OK(gh_spawn(&g, sleep_nan, NULL));
    ASSERT_OK(gh_join(g, -1, &r));
    ASSERT_EQ(NUM(r), 1);
    ASSERT_OK(gh_release(g));
    END();
}

/* gh_sleep(t) lasts at least t, in main and in a greenlet. */
TEST(sleep_lasts_at_least_the_time_asked) {
    BEGIN();
    struct sleeper s = {0.03, 1, 0, 0, 0};
    gh_greenlet g;
    double t0 = gh_test_now();
    ASSERT_OK(gh_sleep(0.03));
    ASSERT_TRUE(gh_test_now() - t0 >= 0.9 * 0.03);
    ASSERT_OK(gh_spawn(&g, sleeper_fn, &s));
    ASSERT_OK(gh_join(g, -1, NULL));
    ASSERT_OK(s.rc);
    ASSERT_TRUE(s.t1 - s.t0 >= 0.9 * 0.03);
    ASSERT_OK(gh_release(g));
    END();
}

/* ==== gh_greenlet_state ==================================================== */

static gh_greenlet st_a, st_b;
static int st_a_self = -100, st_a_saw_main = -100, st_b_saw_a = -100, st_b_saw_b = -100;
static void *state_a(void *arg) {
    (void)arg;
    st_a_self = gh_greenlet_state(gh_current());
    st_a_saw_main = gh_greenlet_state(gh_main());
    gh_sleep(0); /* B runs while our wake-up is queued */
    gh_sleep(0.1);
    return NULL;
}
static void *state_b(void *arg) {
    (void)arg;
    st_b_saw_a = gh_greenlet_state(st_a);
    st_b_saw_b = gh_greenlet_state(st_b);
    return NULL;
}

/* gh_greenlet_state through the lifecycle: NEW after spawn, RUNNING for the caller,
 * WAITING for a parked main, READY after a gh_sleep(0), WAITING while sleeping, DEAD. */
TEST(state_through_lifecycle) {
    BEGIN();
    ASSERT_CODE(gh_greenlet_state(gh_main()), GH_STATE_RUNNING);
    ASSERT_OK(gh_spawn(&st_a, state_a, NULL));
    ASSERT_OK(gh_spawn(&st_b, state_b, NULL));
    ASSERT_CODE(gh_greenlet_state(st_a), GH_STATE_NEW);
    ASSERT_CODE(gh_greenlet_state(st_b), GH_STATE_NEW);
    ASSERT_OK(gh_sleep(0.03));
    ASSERT_CODE(st_a_self, GH_STATE_RUNNING);
    ASSERT_CODE(st_a_saw_main, GH_STATE_WAITING);
    ASSERT_CODE(st_b_saw_b, GH_STATE_RUNNING);
    ASSERT_CODE(st_b_saw_a, GH_STATE_READY);
    ASSERT_CODE(gh_greenlet_state(st_a), GH_STATE_WAITING);
    ASSERT_CODE(gh_greenlet_state(st_b), GH_STATE_DEAD);
    ASSERT_OK(gh_join(st_a, -1, NULL));
    ASSERT_CODE(gh_greenlet_state(st_a), GH_STATE_DEAD);
    ASSERT_OK(gh_release(st_a));
    ASSERT_OK(gh_release(st_b));
    END();
}

/* gh_greenlet_state: zero, all-ones, forged, released handles -> GH_EBADHANDLE. */
TEST(state_bad_handles) {
    BEGIN();
    gh_greenlet zero = {0}, ones = {UINT64_MAX}, g, forged;
    ASSERT_CODE(gh_greenlet_state(zero), GH_EBADHANDLE);
    ASSERT_CODE(gh_greenlet_state(ones), GH_EBADHANDLE);
    ASSERT_OK(gh_spawn(&g, ret_arg, NULL));
    forged.id = g.id ^ ((uint64_t)1 << 40);
    ASSERT_CODE(gh_greenlet_state(forged), GH_EBADHANDLE);
    forged.id = g.id ^ ((uint64_t)1 << 63);
    ASSERT_CODE(gh_greenlet_state(forged), GH_EBADHANDLE);
    ASSERT_OK(gh_join(g, -1, NULL));
    ASSERT_OK(gh_release(g));
    ASSERT_CODE(gh_greenlet_state(g), GH_EBADHANDLE);
    END();
}

/* ==== gh_greenlet_name / gh_greenlet_set_name ============================== */

/* gh_greenlet_name: main is "main", the hub is "hub", unnamed spawns are "". */
TEST(name_of_main_hub_and_unnamed) {
    BEGIN();
    char buf[16];
    gh_greenlet hub = get_hub(), g;
    ASSERT_EQ(gh_greenlet_name(gh_main(), buf, sizeof buf), 4);
    ASSERT_STREQ(buf, "main");
    ASSERT_EQ(gh_greenlet_name(gh_current(), buf, sizeof buf), 4);
    ASSERT_STREQ(buf, "main");
    ASSERT_EQ(gh_greenlet_name(hub, buf, sizeof buf), 3);
    ASSERT_STREQ(buf, "hub");
    ASSERT_OK(gh_spawn(&g, ret_arg, NULL));
    strcpy(buf, "junk");
    ASSERT_EQ(gh_greenlet_name(g, buf, sizeof buf), 0);
    ASSERT_STREQ(buf, "");
    ASSERT_OK(gh_join(g, -1, NULL));
    ASSERT_OK(gh_release(g));
    END();
}

/* gh_greenlet_name works like snprintf: it returns the full length, always
 * NUL-terminates, truncates to len - 1; NULL buf with len 0 asks the size; len 0 with a
 * buffer writes nothing; NULL buf with len > 0 -> GH_EINVAL. */
TEST(name_snprintf_semantics) {
    BEGIN();
    char buf[16];
    gh_greenlet g;
    gh_spawn_options o = {0, "worker-12345"}; /* 12 bytes */
    ASSERT_OK(gh_spawn_ex(&g, ret_arg, NULL, &o));
    ASSERT_EQ(gh_greenlet_name(g, NULL, 0), 12);
    ASSERT_EQ(gh_greenlet_name(g, buf, 13), 12);
    ASSERT_STREQ(buf, "worker-12345");
    memset(buf, 'Z', sizeof buf);
    ASSERT_EQ(gh_greenlet_name(g, buf, 12), 12);
    ASSERT_STREQ(buf, "worker-1234");
    memset(buf, 'Z', sizeof buf);
    ASSERT_EQ(gh_greenlet_name(g, buf, 5), 12);
    ASSERT_STREQ(buf, "work");
    ASSERT_EQ(buf[5], 'Z'); /* nothing written past len */
    memset(buf, 'Z', sizeof buf);
    ASSERT_EQ(gh_greenlet_name(g, buf, 1), 12);
    ASSERT_EQ(buf[0], 0);
    ASSERT_EQ(buf[1], 'Z');
    memset(buf, 'Z', sizeof buf);
    ASSERT_EQ(gh_greenlet_name(g, buf, 0), 12);
    ASSERT_EQ(buf[0], 'Z');
    ASSERT_CODE(gh_greenlet_name(g, NULL, 5), GH_EINVAL);
    ASSERT_CODE(gh_greenlet_name(g, NULL, 1), GH_EINVAL);
    ASSERT_EQ(gh_greenlet_name(gh_main(), NULL, 0), 4);
    ASSERT_OK(gh_kill(g, 0));
    ASSERT_OK(gh_release(g));
    END();
}

/* gh_greenlet_set_name copies the name (long names too); NULL -> GH_EINVAL (old name
 * kept); renaming main works; stale/zero handles -> GH_EBADHANDLE for both functions. */
TEST(set_name_copies_and_validates) {
    BEGIN();
    char name[32] = "renamed";
    char buf[1200];
    char longname[1001];
    gh_greenlet g, zero = {0};
    ASSERT_OK(gh_spawn(&g, ret_arg, NULL));
    ASSERT_OK(gh_greenlet_set_name(g, name));
    strcpy(name, "CHANGED");
    ASSERT_EQ(gh_greenlet_name(g, buf, sizeof buf), 7);
    ASSERT_STREQ(buf, "renamed");
    ASSERT_CODE(gh_greenlet_set_name(g, NULL), GH_EINVAL);
    ASSERT_EQ(gh_greenlet_name(g, buf, sizeof buf), 7);
    ASSERT_STREQ(buf, "renamed");
    memset(longname, 'n', 1000);
    longname[1000] = 0;
    ASSERT_OK(gh_greenlet_set_name(g, longname));
    ASSERT_EQ(gh_greenlet_name(g, buf, sizeof buf), 1000);
    ASSERT_STREQ(buf, longname);
    ASSERT_EQ(gh_greenlet_name(g, buf, 10), 1000);
    ASSERT_STREQ(buf, "nnnnnnnnn");
    ASSERT_OK(gh_greenlet_set_name(g, ""));
    ASSERT_EQ(gh_greenlet_name(g, buf, sizeof buf), 0);
    ASSERT_OK(gh_greenlet_set_name(gh_main(), "boss"));
    ASSERT_EQ(gh_greenlet_name(gh_main(), buf, sizeof buf), 4);
    ASSERT_STREQ(buf, "boss");
    ASSERT_OK(gh_join(g, -1, NULL));
    ASSERT_OK(gh_greenlet_set_name(g, "dead-but-held")); /* the record lives until release */
    ASSERT_EQ(gh_greenlet_name(g, buf, sizeof buf), 13);
    ASSERT_OK(gh_release(g));
    ASSERT_CODE(gh_greenlet_set_name(g, "x"), GH_EBADHANDLE);
    ASSERT_CODE(gh_greenlet_name(g, buf, sizeof buf), GH_EBADHANDLE);
    ASSERT_CODE(gh_greenlet_name(g, NULL, 0), GH_EBADHANDLE);
    ASSERT_CODE(gh_greenlet_set_name(zero, "x"), GH_EBADHANDLE);
    ASSERT_CODE(gh_greenlet_name(zero, buf, sizeof buf), GH_EBADHANDLE);
    END();
}

/* ==== gh_release =========================================================== */

/* FAULTS 3: after gh_release every use of the handle is GH_EBADHANDLE, a second release
 * included. */
TEST(release_makes_handle_stale) {
    BEGIN();
    gh_greenlet g;
    char buf[8];
    size_t nd;
    ASSERT_OK(gh_spawn(&g, ret_arg, PTR(3)));
    ASSERT_OK(gh_join(g, -1, NULL));
    ASSERT_OK(gh_release(g));
    ASSERT_CODE(gh_release(g), GH_EBADHANDLE);
    ASSERT_CODE(gh_join(g, 0, NULL), GH_EBADHANDLE);
    ASSERT_CODE(gh_joinall(&g, 1, 0, &nd), GH_EBADHANDLE);
    ASSERT_CODE(gh_kill(g, 0), GH_EBADHANDLE);
    ASSERT_CODE(gh_throw(g, -5), GH_EBADHANDLE);
    ASSERT_CODE(gh_switch(g, NULL, NULL), GH_EBADHANDLE);
    ASSERT_CODE(gh_greenlet_state(g), GH_EBADHANDLE);
    ASSERT_CODE(gh_greenlet_name(g, buf, sizeof buf), GH_EBADHANDLE);
    ASSERT_CODE(gh_greenlet_set_name(g, "x"), GH_EBADHANDLE);
    END();
}

static int detached_ran;
static void *detached_sleeper(void *arg) {
    (void)arg;
    if (gh_sleep(0.02) == GH_OK) detached_ran = 1;
    return NULL;
}

/* gh_release of a live greenlet: the handle is stale at once, the greenlet runs on. */
TEST(release_live_greenlet_runs_on_detached) {
    BEGIN();
    gh_greenlet g;
    ASSERT_OK(gh_spawn(&g, detached_sleeper, NULL));
    ASSERT_OK(gh_sleep(0));
    ASSERT_OK(gh_release(g));
    ASSERT_CODE(gh_greenlet_state(g), GH_EBADHANDLE);
    ASSERT_CODE(gh_release(g), GH_EBADHANDLE);
    ASSERT_EQ(detached_ran, 0);
    ASSERT_OK(gh_hub_run());
    ASSERT_EQ(detached_ran, 1);
    END();
}

/* gh_release of main or the hub -> GH_EINVAL (they stay usable); zero, all-ones and
 * forged handles -> GH_EBADHANDLE. */
TEST(release_main_hub_and_bad_handles) {
    BEGIN();
    gh_greenlet hub = get_hub(), zero = {0}, ones = {UINT64_MAX}, g, forged;
    ASSERT_CODE(gh_release(gh_main()), GH_EINVAL);
    ASSERT_CODE(gh_release(hub), GH_EINVAL);
    ASSERT_CODE(gh_greenlet_state(gh_main()), GH_STATE_RUNNING);
    ASSERT_EQ(gh_greenlet_name(hub, NULL, 0), 3);
    ASSERT_CODE(gh_release(zero), GH_EBADHANDLE);
    ASSERT_CODE(gh_release(ones), GH_EBADHANDLE);
    ASSERT_OK(gh_spawn(&g, ret_arg, NULL));
    forged.id = g.id ^ ((uint64_t)1 << 40);
    ASSERT_CODE(gh_release(forged), GH_EBADHANDLE);
    ASSERT_CODE(gh_greenlet_state(g), GH_STATE_NEW); /* the real one is untouched */
    ASSERT_OK(gh_release(g));
    END();
}

/* FAULTS 4: a released handle stays stale after its slot is reused by new greenlets. */
TEST(release_stale_after_slot_reuse) {
    BEGIN();
    gh_greenlet old, g[64];
    ASSERT_OK(gh_spawn(&old, ret_arg, NULL));
    ASSERT_OK(gh_join(old, -1, NULL));
    ASSERT_OK(gh_release(old));
    for (int i = 0; i < 64; i++) {
        ASSERT_OK(gh_spawn(&g[i], ret_arg, PTR(i)));
        ASSERT_NE(g[i].id, old.id);
    }
    ASSERT_CODE(gh_greenlet_state(old), GH_EBADHANDLE);
    ASSERT_CODE(gh_join(old, 0, NULL), GH_EBADHANDLE);
    ASSERT_CODE(gh_release(old), GH_EBADHANDLE);
    for (int i = 0; i < 64; i++) {
        void *r = NULL;
        ASSERT_OK(gh_join(g[i], -1, &r));
        ASSERT_EQ(NUM(r), i);
        ASSERT_OK(gh_release(g[i]));
    }
    END();
}

/* FAULTS 2: handles of another kind (a watcher, a hub ref) used as greenlets ->
 * GH_EBADHANDLE. */
TEST(wrong_kind_handles_ebadhandle) {
    BEGIN();
    gh_watcher w;
    gh_greenlet fake;
    ASSERT_OK(gh_timer_new(&w, 1.0, 0));
    fake.id = w.id;
    ASSERT_CODE(gh_greenlet_state(fake), GH_EBADHANDLE);
    ASSERT_CODE(gh_join(fake, 0, NULL), GH_EBADHANDLE);
    ASSERT_CODE(gh_kill(fake, 0), GH_EBADHANDLE);
    ASSERT_CODE(gh_release(fake), GH_EBADHANDLE);
    fake.id = gh_hub_current().id;
    ASSERT_NE(fake.id, 0);
    ASSERT_CODE(gh_greenlet_state(fake), GH_EBADHANDLE);
    ASSERT_CODE(gh_release(fake), GH_EBADHANDLE);
    ASSERT_OK(gh_watcher_close(w));
    END();
}

/* ==== FAULTS 15: spawn from anywhere ======================================= */

static gh_greenlet sp_child, sp_from_cb, sp_from_timer;
static int sp_cb_rc = 1, sp_timer_rc = 1;
static void *spawner(void *arg) {
    void *r = NULL;
    (void)arg;
    if (gh_spawn(&sp_child, log_arg, "[child]") != GH_OK) return PTR(0xBAD);
    if (gh_join(sp_child, -1, &r) != GH_OK) return PTR(0xBAD);
    log_add("[parent]");
    return r;
}
static void spawn_cb(void *arg) {
    (void)arg;
    sp_cb_rc = gh_spawn(&sp_from_cb, log_arg, "[cb]");
}
static void spawn_timer_cb(gh_watcher w, int revents, void *arg) {
    (void)w;
    (void)revents;
    (void)arg;
    sp_timer_rc = gh_spawn(&sp_from_timer, log_arg, "[timer]");
}

/* FAULTS 15: spawning from a greenlet, from a gh_run_callback callback, from a watcher
 * callback and from main are all allowed, and every spawned greenlet runs. */
TEST(spawn_from_greenlet_callback_and_main) {
    BEGIN();
    gh_greenlet g;
    gh_watcher t;
    void *r = NULL;
    ASSERT_OK(gh_spawn(&g, spawner, NULL)); /* from main */
    ASSERT_OK(gh_join(g, -1, &r));
    ASSERT_STREQ((const char *)r, "[child]");
    ASSERT_STREQ(g_log, "[child][parent]");
    ASSERT_OK(gh_run_callback(spawn_cb, NULL));
    ASSERT_OK(gh_sleep(0));
    ASSERT_OK(sp_cb_rc);
    ASSERT_OK(gh_join(sp_from_cb, -1, &r));
    ASSERT_STREQ((const char *)r, "[cb]");
    ASSERT_OK(gh_timer_new(&t, 0.005, 0));
    ASSERT_OK(gh_watcher_start(t, spawn_timer_cb, NULL));
    ASSERT_OK(gh_sleep(0.02));
    ASSERT_OK(sp_timer_rc);
    ASSERT_OK(gh_join(sp_from_timer, -1, &r));
    ASSERT_STREQ((const char *)r, "[timer]");
    ASSERT_STREQ(g_log, "[child][parent][cb][timer]");
    ASSERT_OK(gh_watcher_close(t));
    ASSERT_OK(gh_release(g));
    ASSERT_OK(gh_release(sp_child));
    ASSERT_OK(gh_release(sp_from_cb));
    ASSERT_OK(gh_release(sp_from_timer));
    END();
}

/* ==== the seed's demo ====================================================== */

static void *coop_sleep_300ms(void *arg) {
    (void)arg;
    gh_sleep(0.3);
    return NULL;
}
static void *blocking_usleep_300ms(void *arg) {
    (void)arg;
    usleep(300 * 1000);
    return NULL;
}
/* Main counts a tick every 0.1 s until the greenlet is done (hello.c's dots). */
static int count_ticks(gh_fn fn) {
    gh_greenlet g;
    int ticks = 0;
    ASSERT_OK(gh_spawn(&g, fn, NULL));
    while (gh_join(g, 0, NULL) == GH_ETIMEDOUT) {
        ASSERT_OK(gh_sleep(0.1));
        ticks++;
        ASSERT_TRUE(ticks < 100);
    }
    ASSERT_OK(gh_release(g));
    return ticks;
}

/* The seed: a greenlet in gh_sleep(0.3) lets main tick every 0.1 s (~3 ticks). */
TEST(seed_cooperative_sleep_lets_main_tick) {
    BEGIN();
    int ticks = count_ticks(coop_sleep_300ms);
    ASSERT_GE(ticks, 2);
    ASSERT_LE(ticks, 4);
    END();
}

/* The seed: a greenlet in a blocking usleep(300 ms) freezes main: exactly 1 tick. */
TEST(seed_blocking_usleep_freezes_main) {
    BEGIN();
    int ticks = count_ticks(blocking_usleep_300ms);
    ASSERT_EQ(ticks, 1);
    END();
}

/* ==== memory =============================================================== */

/* FAULTS 25: 100,000 spawn + join + release cycles: RSS and mapping count after them
 * stay within a small bound of what they were after the first 1,000. */
TEST(spawn_join_release_100k_flat_memory) {
    BEGIN();
    long rss1 = 0, maps1 = 0;
    for (long i = 0; i < 100000; i++) {
        gh_greenlet g;
        void *r = NULL;
        ASSERT_OK(gh_spawn(&g, ret_arg, PTR(i + 1)));
        ASSERT_OK(gh_join(g, -1, &r));
        ASSERT_EQ(NUM(r), i + 1);
        ASSERT_OK(gh_release(g));
        if (i == 999) {
            rss1 = gh_test_rss_kb();
            maps1 = gh_test_map_count();
        }
    }
    long rss2 = gh_test_rss_kb(), maps2 = gh_test_map_count();
    ASSERT_TRUE(rss1 > 0 && maps1 > 0);
    ASSERT_LE(maps2, maps1 + 4);
    ASSERT_LE(rss2, rss1 + 1024); /* KiB */
    END();
}

/* ==== exit from a greenlet ================================================= */

/* The program ends with exit(0) called on a greenlet's stack, a hub and a parked
 * greenlet still alive: atexit and TLS destructors run on that stack without a crash
 * (valgrind: no definite leak). Under scripts/asan.sh it also checks that ASan knows
 * the greenlet's stack: without the `sanitizer` feature, exit()'s
 * __asan_handle_no_return prints "ASan is ignoring requested
 * __asan_handle_no_return", which fails that run. (Skipped with GH_TEST_NOFORK=1: it
 * ends the process.) */
static void *exit_zero(void *arg) {
    (void)arg;
    exit(0);
}
TEST(exit_from_greenlet) {
    static struct sleeper forever = {GH_FOREVER, 0, 0, 0, 0};
    gh_greenlet g, parked;
    if (gh_test_state_()->nofork) return;
    ASSERT_OK(gh_spawn(&parked, sleeper_fn, &forever));
    ASSERT_OK(gh_spawn(&g, exit_zero, NULL));
    (void)gh_join(g, GH_FOREVER, NULL);
    GH_TEST_FAIL_("gh_join returned: exit(0) in the greenlet did not end the process");
}

/* ==== threads and destroyed hubs =========================================== */

struct xthread {
    gh_greenlet g, main_g;
    int rc[14];
};
static void *other_thread_calls(void *p) {
    struct xthread *x = (struct xthread *)p;
    char buf[8];
    void *r = NULL;
    size_t nd = 0;
    x->rc[0] = gh_join(x->g, 0, &r);
    x->rc[1] = gh_join(x->g, -1, &r);
    x->rc[2] = gh_kill(x->g, 0);
    x->rc[3] = gh_kill(x->g, -1);
    x->rc[4] = gh_release(x->g);
    x->rc[5] = gh_greenlet_state(x->g);
    x->rc[6] = gh_throw(x->g, -5);
    x->rc[7] = gh_switch(x->g, NULL, &r);
    x->rc[8] = gh_greenlet_name(x->g, buf, sizeof buf);
    x->rc[9] = gh_greenlet_set_name(x->g, "x");
    x->rc[10] = gh_joinall(&x->g, 1, 0, &nd);
    x->rc[11] = gh_greenlet_state(x->main_g);
    x->rc[12] = gh_greenlet_name(x->main_g, buf, sizeof buf);
    x->rc[13] = gh_hub_destroy();
    return NULL;
}

/* FAULTS 5/17: a pthread using the main thread's greenlet handles -> GH_EWRONGTHREAD
 * for every greenlet function (join, kill, release, state, throw, switch, names,
 * joinall); the greenlet is untouched. */
TEST(other_thread_handles_ewrongthread) {
    BEGIN();
    struct xthread x;
    pthread_t t;
    char buf[8];
    ASSERT_OK(gh_spawn(&x.g, ret_arg, PTR(8)));
    x.main_g = gh_main();
    ASSERT_OK(pthread_create(&t, NULL, other_thread_calls, &x));
    ASSERT_OK(pthread_join(t, NULL));
    for (int i = 0; i < 13; i++) ASSERT_CODE(x.rc[i], GH_EWRONGTHREAD);
    ASSERT_OK(x.rc[13]);
    ASSERT_CODE(gh_greenlet_state(x.g), GH_STATE_NEW);
    ASSERT_EQ(gh_greenlet_name(x.g, buf, sizeof buf), 0);
    void *r = NULL;
    ASSERT_OK(gh_join(x.g, -1, &r));
    ASSERT_EQ(NUM(r), 8);
    ASSERT_OK(gh_release(x.g));
    END();
}

/* The reverse: a pthread's greenlet handle used in the main thread. */
struct xowner {
    pthread_barrier_t ready, checked;
    gh_greenlet g;
    int spawn_rc, join_rc, release_rc, destroy_rc;
    void *result;
};
static void *owner_thread(void *p) {
    struct xowner *o = (struct xowner *)p;
    o->spawn_rc = gh_spawn(&o->g, ret_arg, PTR(0x0F));
    pthread_barrier_wait(&o->ready);
    pthread_barrier_wait(&o->checked);
    o->join_rc = gh_join(o->g, -1, &o->result);
    o->release_rc = gh_release(o->g);
    o->destroy_rc = gh_hub_destroy();
    return NULL;
}

/* FAULTS 17: a greenlet handle of a live pthread's hub used in main -> GH_EWRONGTHREAD;
 * the owner thread can still join and release it. */
TEST(handle_of_other_live_thread_ewrongthread) {
    BEGIN();
    struct xowner o;
    pthread_t t;
    char buf[8];
    memset(&o, 0, sizeof o);
    ASSERT_OK(pthread_barrier_init(&o.ready, NULL, 2));
    ASSERT_OK(pthread_barrier_init(&o.checked, NULL, 2));
    ASSERT_OK(pthread_create(&t, NULL, owner_thread, &o));
    pthread_barrier_wait(&o.ready);
    ASSERT_OK(o.spawn_rc);
    ASSERT_CODE(gh_join(o.g, 0, NULL), GH_EWRONGTHREAD);
    ASSERT_CODE(gh_join(o.g, -1, NULL), GH_EWRONGTHREAD);
    ASSERT_CODE(gh_kill(o.g, 0), GH_EWRONGTHREAD);
    ASSERT_CODE(gh_release(o.g), GH_EWRONGTHREAD);
    ASSERT_CODE(gh_greenlet_state(o.g), GH_EWRONGTHREAD);
    ASSERT_CODE(gh_throw(o.g, -5), GH_EWRONGTHREAD);
    ASSERT_CODE(gh_switch(o.g, NULL, NULL), GH_EWRONGTHREAD);
    ASSERT_CODE(gh_greenlet_name(o.g, buf, sizeof buf), GH_EWRONGTHREAD);
    ASSERT_CODE(gh_greenlet_set_name(o.g, "x"), GH_EWRONGTHREAD);
    pthread_barrier_wait(&o.checked);
    ASSERT_OK(pthread_join(t, NULL));
    ASSERT_OK(o.join_rc);
    ASSERT_EQ(NUM(o.result), 0x0F);
    ASSERT_OK(o.release_rc);
    ASSERT_OK(o.destroy_rc);
    pthread_barrier_destroy(&o.ready);
    pthread_barrier_destroy(&o.checked);
    END();
}

static void *spawn_and_exit(void *p) {
    struct sleeper *s = (struct sleeper *)p;
    gh_greenlet *g = (gh_greenlet *)(s + 1);
    s->rc = gh_spawn(g, sleeper_fn, s);
    if (s->rc == GH_OK) s->rc = gh_sleep(0); /* the greenlet now sleeps forever */
    return NULL; /* exits without gh_hub_destroy */
}

/* FAULTS 5/21: a handle of a thread that exited (its hub destroyed at thread exit) ->
 * GH_EBADHANDLE, not GH_EWRONGTHREAD and not a crash. */
TEST(handle_of_exited_thread_ebadhandle) {
    BEGIN();
    struct {
        struct sleeper s;
        gh_greenlet g;
    } x = {{GH_FOREVER, 1, 0, 0, 0}, {0}};
    pthread_t t;
    ASSERT_OK(pthread_create(&t, NULL, spawn_and_exit, &x));
    ASSERT_OK(pthread_join(t, NULL));
    ASSERT_OK(x.s.rc);
    ASSERT_NE(x.g.id, 0);
    ASSERT_EQ(x.s.done, 0); /* discarded, not resumed */
    ASSERT_CODE(gh_greenlet_state(x.g), GH_EBADHANDLE);
    ASSERT_CODE(gh_join(x.g, 0, NULL), GH_EBADHANDLE);
    ASSERT_CODE(gh_kill(x.g, 0), GH_EBADHANDLE);
    ASSERT_CODE(gh_release(x.g), GH_EBADHANDLE);
    END();
}

/* FAULTS 3/5: after gh_hub_destroy every greenlet handle of that hub (live, dead,
 * main) is GH_EBADHANDLE, also once a new hub exists in the thread. */
TEST(handles_stale_after_hub_destroy) {
    BEGIN();
    struct sleeper s = {GH_FOREVER, 1, 0, 0, 0};
    gh_greenlet live, dead, neu, old_main = gh_main(), hub = get_hub();
    char buf[8];
    ASSERT_OK(gh_spawn(&live, sleeper_fn, &s));
    ASSERT_OK(gh_spawn(&dead, ret_arg, NULL));
    ASSERT_OK(gh_spawn(&neu, ret_arg, NULL));
    ASSERT_OK(gh_sleep(0));
    ASSERT_OK(gh_join(dead, -1, NULL));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(s.done, 0);
    gh_greenlet hs[4] = {live, dead, old_main, hub};
    for (int i = 0; i < 4; i++) {
        ASSERT_CODE(gh_greenlet_state(hs[i]), GH_EBADHANDLE);
        ASSERT_CODE(gh_join(hs[i], 0, NULL), GH_EBADHANDLE);
        ASSERT_CODE(gh_kill(hs[i], 0), GH_EBADHANDLE);
        ASSERT_CODE(gh_throw(hs[i], -5), GH_EBADHANDLE);
        ASSERT_CODE(gh_switch(hs[i], NULL, NULL), GH_EBADHANDLE);
        ASSERT_CODE(gh_release(hs[i]), GH_EBADHANDLE);
        ASSERT_CODE(gh_greenlet_name(hs[i], buf, sizeof buf), GH_EBADHANDLE);
        ASSERT_CODE(gh_greenlet_set_name(hs[i], "x"), GH_EBADHANDLE);
    }
    ASSERT_CODE(gh_release(neu), GH_EBADHANDLE);
    ASSERT_NE(gh_main().id, old_main.id); /* a new hub */
    ASSERT_CODE(gh_greenlet_state(live), GH_EBADHANDLE);
    ASSERT_EQ(s.done, 0);
    END();
}

/* A yield storm of slow greenlets (each pass ~0.2 ms of CPU, then gh_sleep(0)) does not
 * starve timers: the loop polls at least every 5 ms of callbacks (gevent's switch
 * interval, checked every 64 callbacks: ~13 ms here), not only after 1024 callbacks. A
 * 10 ms ticker gets at least an eighth of its ticks (before the fix: one tick per
 * ~200 ms here, 2 in all; a quarter was too tight on a loaded 2-core CI machine: 9 of
 * 10). */
static int storm_stop, storm_ticks;
static void *storm_ticker(void *arg) {
    (void)arg;
    while (!storm_stop) {
        storm_ticks++;
        if (gh_sleep(0.01) != GH_OK) break;
    }
    return NULL;
}
static volatile unsigned long storm_spin;
static void *storm_yielder(void *arg) {
    double end = gh_test_now() + *(double *)arg;
    while (gh_test_now() < end) {
        double pass = gh_test_now() + 0.0002;
        while (gh_test_now() < pass) storm_spin++;
        ASSERT_OK(gh_sleep(0));
    }
    return NULL;
}
TEST(yield_storm_does_not_starve_timers) {
    gh_greenlet t, y1, y2;
    double secs = 0.4;
    ASSERT_OK(GH_SPAWN(&t, storm_ticker, NULL));
    ASSERT_OK(GH_SPAWN(&y1, storm_yielder, &secs));
    ASSERT_OK(GH_SPAWN(&y2, storm_yielder, &secs));
    double t0 = gh_test_now();
    ASSERT_OK(gh_join(y1, GH_FOREVER, NULL));
    ASSERT_OK(gh_join(y2, GH_FOREVER, NULL));
    double took = gh_test_now() - t0;
    storm_stop = 1;
    ASSERT_OK(gh_join(t, GH_FOREVER, NULL));
    ASSERT_GE(storm_ticks, (int)(took / 0.01 / 8));
    ASSERT_OK(gh_release(t));
    ASSERT_OK(gh_release(y1));
    ASSERT_OK(gh_release(y2));
    ASSERT_OK(gh_hub_destroy());
}

/* ---- links (gh_link / gh_unlink, gevent's rawlink; issue 14) ------------------------ */

static struct {
    int order[16];
    uint64_t who[16];
    int n, sleep_rc;
} LK;

static void link_rec(gh_greenlet g, void *arg) {
    if (LK.n < 16) {
        LK.order[LK.n] = (int)(intptr_t)arg;
        LK.who[LK.n] = g.id;
    }
    LK.n++;
    LK.sleep_rc = gh_sleep(0); /* a hub callback: must not block */
}

static void *returns_at_once(void *arg) { return arg; }
static void *sleeps_long(void *arg) {
    (void)arg;
    gh_sleep(60);
    return NULL;
}

/* Links run in the hub when the greenlet ends, in link order, with its handle; not
 * before it ends; a blocking call in them gets GH_EPERM. */
TEST(link_runs_in_order_when_greenlet_ends) {
    gh_greenlet g;
    memset(&LK, 0, sizeof LK);
    ASSERT_OK(GH_SPAWN(&g, sleeps_long, NULL));
    ASSERT_OK(gh_link(g, link_rec, (void *)1));
    ASSERT_OK(gh_link(g, link_rec, (void *)2));
    ASSERT_OK(gh_link(g, link_rec, (void *)3));
    ASSERT_OK(gh_sleep(0.01));
    ASSERT_EQ(LK.n, 0); /* alive: nothing ran */
    ASSERT_OK(gh_kill(g, GH_FOREVER));
    ASSERT_OK(gh_sleep(0));
    ASSERT_EQ(LK.n, 3);
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(LK.order[i], i + 1);
        ASSERT_EQ(LK.who[i], g.id);
    }
    ASSERT_CODE(LK.sleep_rc, GH_EPERM);
    ASSERT_OK(gh_release(g));
    ASSERT_OK(gh_hub_destroy());
}

/* A greenlet that already ended (returned, or killed before it started): the link runs
 * in the next iteration, not inside gh_link. gh_unlink removes a pending link (1) and
 * then finds none (0), also one queued for a dead greenlet. */
TEST(link_dead_greenlet_and_unlink) {
    gh_greenlet a, b, c;
    memset(&LK, 0, sizeof LK);
    ASSERT_OK(GH_SPAWN(&a, returns_at_once, NULL));
    ASSERT_OK(gh_join(a, GH_FOREVER, NULL));
    ASSERT_OK(gh_link(a, link_rec, (void *)10));
    ASSERT_EQ(LK.n, 0);
    ASSERT_OK(gh_sleep(0));
    ASSERT_EQ(LK.n, 1);
    ASSERT_EQ(LK.order[0], 10);

    ASSERT_OK(GH_SPAWN(&b, returns_at_once, NULL)); /* never started */
    ASSERT_OK(gh_link(b, link_rec, (void *)20));
    ASSERT_OK(gh_link(b, link_rec, (void *)21));
    ASSERT_EQ(gh_unlink(b, link_rec, (void *)20), 1);
    ASSERT_EQ(gh_unlink(b, link_rec, (void *)20), 0);
    ASSERT_OK(gh_kill(b, GH_FOREVER));
    ASSERT_OK(gh_sleep(0));
    ASSERT_EQ(LK.n, 2);
    ASSERT_EQ(LK.order[1], 21);

    ASSERT_OK(GH_SPAWN(&c, returns_at_once, NULL));
    ASSERT_OK(gh_join(c, GH_FOREVER, NULL));
    ASSERT_OK(gh_link(c, link_rec, (void *)30)); /* queued */
    ASSERT_EQ(gh_unlink(c, link_rec, (void *)30), 1);
    ASSERT_OK(gh_sleep(0));
    ASSERT_EQ(LK.n, 2);
    ASSERT_OK(gh_release(a));
    ASSERT_OK(gh_release(b));
    ASSERT_OK(gh_release(c));
    ASSERT_OK(gh_hub_destroy());
}

/* Links survive gh_release; links of a live greenlet never run once its hub is destroyed
 * (and leak nothing: valgrind). */
TEST(link_released_and_destroyed) {
    gh_greenlet g, h;
    memset(&LK, 0, sizeof LK);
    ASSERT_OK(GH_SPAWN(&g, returns_at_once, NULL));
    ASSERT_OK(gh_link(g, link_rec, (void *)5));
    ASSERT_OK(gh_release(g));
    ASSERT_OK(gh_sleep(0.01));
    ASSERT_EQ(LK.n, 1);
    ASSERT_EQ(LK.order[0], 5);
    ASSERT_OK(GH_SPAWN(&h, sleeps_long, NULL));
    for (int i = 0; i < 10; i++) ASSERT_OK(gh_link(h, link_rec, (void *)(intptr_t)i));
    ASSERT_OK(gh_sleep(0));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(LK.n, 1);
}

/* Misuse: NULL fn, main, bad and stale handles. */
TEST(link_errors) {
    gh_greenlet g, zero = {0};
    ASSERT_OK(GH_SPAWN(&g, returns_at_once, NULL));
    ASSERT_CODE(gh_link(g, NULL, NULL), GH_EINVAL);
    ASSERT_CODE(gh_unlink(g, NULL, NULL), GH_EINVAL);
    ASSERT_CODE(gh_link(gh_main(), link_rec, NULL), GH_EINVAL);
    ASSERT_CODE(gh_link(zero, link_rec, NULL), GH_EBADHANDLE);
    ASSERT_CODE(gh_unlink(zero, link_rec, NULL), GH_EBADHANDLE);
    ASSERT_OK(gh_release(g));
    ASSERT_CODE(gh_link(g, link_rec, NULL), GH_EBADHANDLE);
    ASSERT_CODE(gh_unlink(g, link_rec, NULL), GH_EBADHANDLE);
    ASSERT_OK(gh_hub_destroy());
}

/* GH_ENOMEM from gh_link (FAULTS: an allocation that fails is an error, not an abort):
 * with the address space limited (RLIMIT_AS = VmSize + 64 MiB) links are added until
 * the link list cannot grow; that one is refused, the hub goes on, and once the limit
 * is lifted the greenlet's end runs every accepted link, in order. There is no fault
 * site for it (src/fault.rs has none for allocations), so the real limit is used. */
static long links_ran, links_out_of_order;
static void link_count(gh_greenlet g, void *arg) {
    (void)g;
    if ((long)(intptr_t)arg != links_ran) links_out_of_order++;
    links_ran++;
}
TEST(link_out_of_memory_enomem) {
    gh_greenlet g;
    struct rlimit old, lim;
    long n = 0;
    int rc = GH_OK;
    long vm_kb;
    gh_test_skip_if_rlimit_as_unreliable();
    links_ran = links_out_of_order = 0;
    ASSERT_OK(GH_SPAWN(&g, sleeps_long, NULL));
    ASSERT_OK(gh_sleep(0));
    vm_kb = gh_test_vm_size_kb();
    ASSERT_TRUE(vm_kb > 0);
    ASSERT_OK(getrlimit(RLIMIT_AS, &old));
    lim = old;
    lim.rlim_cur = ((rlim_t)vm_kb << 10) + ((rlim_t)64 << 20);
    ASSERT_OK(setrlimit(RLIMIT_AS, &lim));
    while (n < 100000000L && (rc = gh_link(g, link_count, (void *)(intptr_t)n)) == GH_OK) n++;
    ASSERT_OK(setrlimit(RLIMIT_AS, &old));
    printf("  RLIMIT_AS of VmSize + 64 MiB: %ld links, then %s\n", n, gh_err_name(rc));
    ASSERT_CODE(rc, GH_ENOMEM);
    ASSERT_GE(n, 100000);
    ASSERT_OK(gh_link(g, link_count, (void *)(intptr_t)n)); /* room again */
    ASSERT_OK(gh_kill(g, GH_FOREVER));
    ASSERT_OK(gh_sleep(0));
    ASSERT_EQ(links_ran, n + 1);
    ASSERT_EQ(links_out_of_order, 0);
    ASSERT_OK(gh_release(g));
    ASSERT_OK(gh_hub_destroy());
}

/* ---- greenlet-local storage (gh_local_*; gevent.local; issue 14) ------------------- */

static gh_local_key LKEY;
static int dtor_calls;
static intptr_t dtor_sum;
static void local_dtor(void *v) {
    dtor_calls++;
    dtor_sum += (intptr_t)v;
}

static void *local_body(void *arg) {
    void *v = (void *)1;
    if (gh_local_get(LKEY, &v) != GH_OK || v != NULL) return (void *)"not NULL at first";
    if (gh_local_set(LKEY, arg) != GH_OK) return (void *)"set";
    gh_sleep(0.005); /* the others set theirs meanwhile */
    if (gh_local_get(LKEY, &v) != GH_OK || v != arg) return (void *)"not its own";
    return NULL;
}

/* Each greenlet sees its own value (main too); when a greenlet ends its destructor
 * runs with its value, in the hub after it ended; a NULL value gets none. */
TEST(local_values_per_greenlet_and_destructors) {
    gh_greenlet g[3];
    void *v, *r;
    dtor_calls = 0;
    dtor_sum = 0;
    ASSERT_OK(gh_local_key_create(&LKEY, local_dtor));
    ASSERT_OK(gh_local_set(LKEY, (void *)1000));
    for (intptr_t i = 0; i < 3; i++) ASSERT_OK(GH_SPAWN(&g[i], local_body, (void *)(i + 1)));
    for (int i = 0; i < 3; i++) {
        ASSERT_OK(gh_join(g[i], GH_FOREVER, &r));
        ASSERT_TRUE(r == NULL);
    }
    ASSERT_OK(gh_sleep(0));
    ASSERT_EQ(dtor_calls, 3);
    ASSERT_EQ(dtor_sum, 1 + 2 + 3);
    ASSERT_OK(gh_local_get(LKEY, &v));
    ASSERT_TRUE(v == (void *)1000); /* main's own */
    ASSERT_OK(gh_local_set(LKEY, NULL)); /* cleared: no destructor for it */
    for (int i = 0; i < 3; i++) ASSERT_OK(gh_release(g[i]));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(dtor_calls, 3);
}

static void *local_sleeper(void *arg) {
    if (gh_local_set(LKEY, arg) != GH_OK) return (void *)"set";
    gh_sleep(60);
    return NULL;
}

/* gh_hub_destroy runs the destructors of values still set: main's and those of live
 * greenlets; a deleted key's values get none. */
TEST(local_destructors_at_hub_destroy) {
    gh_greenlet g;
    gh_local_key other;
    dtor_calls = 0;
    dtor_sum = 0;
    ASSERT_OK(gh_local_key_create(&LKEY, local_dtor));
    ASSERT_OK(gh_local_key_create(&other, local_dtor));
    ASSERT_OK(gh_local_set(LKEY, (void *)7));
    ASSERT_OK(gh_local_set(other, (void *)100));
    ASSERT_OK(gh_local_key_delete(other));
    ASSERT_CODE(gh_local_set(other, (void *)1), GH_EBADHANDLE);
    ASSERT_OK(GH_SPAWN(&g, local_sleeper, (void *)5));
    ASSERT_OK(gh_sleep(0.005));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(dtor_calls, 2);
    ASSERT_EQ(dtor_sum, 12);
}

/* Misuse: NULL pointers, zero, forged and deleted keys, another kind of handle. */
TEST(local_errors) {
    gh_local_key k, zero = {0}, forged;
    gh_watcher w;
    void *v;
    ASSERT_CODE(gh_local_key_create(NULL, NULL), GH_EINVAL);
    ASSERT_OK(gh_local_key_create(&k, NULL));
    ASSERT_CODE(gh_local_get(k, NULL), GH_EINVAL);
    ASSERT_CODE(gh_local_get(zero, &v), GH_EBADHANDLE);
    ASSERT_CODE(gh_local_set(zero, &v), GH_EBADHANDLE);
    ASSERT_CODE(gh_local_key_delete(zero), GH_EBADHANDLE);
    forged.id = k.id ^ (1ull << 20);
    ASSERT_CODE(gh_local_get(forged, &v), GH_EBADHANDLE);
    ASSERT_OK(gh_timer_new(&w, 1, 0));
    forged.id = w.id;
    ASSERT_CODE(gh_local_set(forged, &v), GH_EBADHANDLE);
    ASSERT_OK(gh_local_key_delete(k));
    ASSERT_CODE(gh_local_key_delete(k), GH_EBADHANDLE);
    ASSERT_CODE(gh_local_get(k, &v), GH_EBADHANDLE);
    ASSERT_OK(gh_watcher_close(w));
    ASSERT_OK(gh_hub_destroy());
}

/* GH_ENOMEM from gh_local_key_create: a hub's key table is full at 2^24 keys (the
 * handle's slot field); the refusal leaves the keys usable, and a deleted key's slot
 * is taken by the next create. */
TEST(local_key_table_full_enomem) {
    static gh_local_key keys[2];
    gh_local_key k;
    long n = 0;
    int rc = GH_OK;
    void *v;
    ASSERT_OK(gh_local_key_create(&keys[0], NULL));
    n = 1;
    while (n < (1L << 25) && (rc = gh_local_key_create(&k, NULL)) == GH_OK) {
        if (n == 1) keys[1] = k;
        n++;
    }
    ASSERT_CODE(rc, GH_ENOMEM);
    ASSERT_EQ(n, 1L << 24);
    ASSERT_OK(gh_local_set(keys[1], (void *)42));
    ASSERT_OK(gh_local_get(keys[1], &v));
    ASSERT_TRUE(v == (void *)42);
    ASSERT_OK(gh_local_key_delete(keys[0]));
    ASSERT_OK(gh_local_key_create(&k, NULL)); /* the freed slot */
    ASSERT_CODE(gh_local_key_create(&k, NULL), GH_ENOMEM);
    ASSERT_CODE(gh_local_get(keys[0], &v), GH_EBADHANDLE); /* a new generation */
    ASSERT_OK(gh_hub_destroy());
}

int main(int argc, char **argv) {
    TEST_INIT(argc, argv);
    RUN(yield_storm_does_not_starve_timers);
    /* gh_spawn, gh_spawn_ex, macros */
    RUN(spawn_runs_fn_and_join_returns_its_result);
    RUN(spawn_starts_on_yield_in_spawn_order);
    RUN(spawn_null_fn_einval);
    RUN(spawn_detached_null_out_runs);
    RUN(spawn_ex_stack_size_zero_is_default);
    RUN(spawn_ex_stack_size_tiny_clamped_to_16k);
    RUN(spawn_ex_stack_size_rounded_up_to_pages);
    RUN(spawn_ex_stack_size_1mib);
    RUN(spawn_ex_stack_size_1gib_allowed);
    RUN(spawn_ex_stack_size_too_big_einval);
    RUN(spawn_ex_name_is_copied);
    RUN(spawn_macros_and_spawn_at);
    /* gh_spawn_later */
    RUN(spawn_later_starts_after_delay);
    RUN(spawn_later_orders_with_timers);
    RUN(spawn_later_bad_seconds_einval);
    RUN(spawn_later_huge_delay_does_not_start);
    RUN(spawn_later_killed_before_start_never_runs);
    /* gh_current, gh_main */
    RUN(current_and_main_handles);
    /* gh_join */
    RUN(join_dead_greenlet_reports_at_once);
    RUN(join_timeout_zero_on_live_etimedout);
    RUN(join_timeout_expires);
    RUN(join_timeouts_negative_inf_huge_wait);
    RUN(join_self_edeadlk);
    RUN(join_cycle_of_two_edeadlk);
    RUN(join_cycle_of_three_edeadlk);
    RUN(join_main_or_hub_einval);
    RUN(join_main_nothing_can_finish_loopexit);
    RUN(join_bad_handles_ebadhandle);
    RUN(join_killed_before_start_result_null);
    /* gh_joinall */
    RUN(joinall_all_done);
    RUN(joinall_timeout_reports_ndone);
    RUN(joinall_empty_null_and_nan);
    RUN(joinall_rejects_bad_lists_without_waiting);
    /* gh_kill */
    RUN(kill_sleeping_greenlet_ecanceled);
    RUN(kill_io_waiting_greenlet_ecanceled);
    RUN(kill_joining_greenlet_ecanceled);
    RUN(kill_lets_c_frames_free_memory);
    RUN(kill_ignored_keeps_failing_and_kill_times_out);
    RUN(kill_before_start_never_runs_and_twice_is_harmless);
    RUN(kill_timeout_zero_and_positive);
    RUN(kill_self_only_marks);
    RUN(kill_main_from_greenlet);
    RUN(kill_bad_args);
    /* hub callbacks */
    RUN(blocking_calls_from_hub_callback_eperm);
    RUN(kill_and_throw_from_hub_callback_allowed);
    /* gh_throw */
    RUN(throw_wakes_blocked_call_once);
    RUN(throw_before_start_hits_first_blocking_call);
    RUN(throw_at_self_hits_next_blocking_call);
    RUN(throw_at_main_wakes_its_join);
    RUN(throw_bad_args);
    /* gh_switch */
    RUN(switch_ping_pong_between_greenlets);
    RUN(switch_ping_pong_with_main);
    RUN(switch_main_nobody_switches_back_loopexit);
    RUN(switch_to_self_einval);
    RUN(switch_to_dead_edead);
    RUN(switch_to_sleeping_ebusy);
    RUN(switch_bad_handles);
    /* gh_sleep */
    RUN(sleep_zero_interleaves_in_order);
    RUN(sleep_zero_storm_lets_io_and_timers_run);
    RUN(sleep_negative_inf_huge_until_killed);
    RUN(sleep_forever_in_main_alone_loopexit);
    RUN(sleep_nan_einval);
    RUN(sleep_lasts_at_least_the_time_asked);
    /* gh_greenlet_state */
    RUN(state_through_lifecycle);
    RUN(state_bad_handles);
    /* names */
    RUN(name_of_main_hub_and_unnamed);
    RUN(name_snprintf_semantics);
    RUN(set_name_copies_and_validates);
    /* gh_release and handle checking */
    RUN(release_makes_handle_stale);
    RUN(release_live_greenlet_runs_on_detached);
    RUN(release_main_hub_and_bad_handles);
    RUN(release_stale_after_slot_reuse);
    RUN(wrong_kind_handles_ebadhandle);
    /* FAULTS 15 */
    RUN(spawn_from_greenlet_callback_and_main);
    /* the seed */
    RUN(seed_cooperative_sleep_lets_main_tick);
    RUN(seed_blocking_usleep_freezes_main);
    /* memory */
    RUN(spawn_join_release_100k_flat_memory);
    RUN(exit_from_greenlet);
    /* threads, destroyed hubs */
    RUN(other_thread_handles_ewrongthread);
    RUN(handle_of_other_live_thread_ewrongthread);
    RUN(handle_of_exited_thread_ebadhandle);
    RUN(handles_stale_after_hub_destroy);
    RUN(link_runs_in_order_when_greenlet_ends);
    RUN(link_dead_greenlet_and_unlink);
    RUN(link_released_and_destroyed);
    RUN(link_errors);
    RUN(link_out_of_memory_enomem);
    RUN(local_values_per_greenlet_and_destructors);
    RUN(local_destructors_at_hub_destroy);
    RUN(local_errors);
    RUN(local_key_table_full_enomem);
    return TEST_DONE();
}

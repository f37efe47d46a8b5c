/* test_pool.c — greenlet pools and groups (gh_pool_*, issue 14): a size that makes
 * gh_pool_spawn wait, free_count / wait_available, join with a timeout, kill all,
 * members killed before they start, close while callers wait, misuse.
 *
 * Build and run:
 *   cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g -O1 -Iinclude -Ic-tests \
 *      c-tests/test_pool.c target/release/libgreenhub.a -lpthread -ldl -lm \
 *      -o target/c/test_pool
 *   ./target/c/test_pool [case]
 */
#include "harness.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>

static int running, max_running, finished, canceled;

/* Sleeps `arg` milliseconds (counted: running, max_running, finished, canceled). */
static void *worker(void *arg) {
    int rc;
    running++;
    if (running > max_running) max_running = running;
    rc = gh_sleep((double)(intptr_t)arg / 1000.0);
    if (rc == GH_ECANCELED) canceled++;
    running--;
    finished++;
    return (void *)(intptr_t)(rc == 0 ? 42 : rc);
}

static void reset(void) { running = max_running = finished = canceled = 0; }

/* A pool of 3 and 10 spawns of 10 ms workers: never more than 3 run; the 4th spawn
 * waits for a place; free_count and count follow; join waits for all; a member's
 * handle reports its result. */
TEST(pool_size_limits_spawn) {
    gh_pool p;
    gh_greenlet g;
    void *res;
    reset();
    ASSERT_OK(gh_pool_new(&p, 3));
    ASSERT_EQ(gh_pool_free_count(p), 3);
    ASSERT_OK(gh_pool_spawn(p, &g, worker, (void *)(intptr_t)10, GH_FOREVER));
    for (int i = 1; i < 3; i++) ASSERT_OK(gh_pool_spawn(p, NULL, worker, (void *)(intptr_t)10, 0));
    ASSERT_EQ(gh_pool_count(p), 3);
    ASSERT_EQ(gh_pool_free_count(p), 0);
    ASSERT_CODE(gh_pool_spawn(p, NULL, worker, (void *)(intptr_t)10, 0), GH_ETIMEDOUT);
    ASSERT_CODE(gh_pool_wait_available(p, 0), GH_ETIMEDOUT);
    double t0 = gh_test_now();
    for (int i = 3; i < 10; i++)
        ASSERT_OK(gh_pool_spawn(p, NULL, worker, (void *)(intptr_t)10, GH_FOREVER));
    ASSERT_TRUE(gh_test_now() - t0 >= 0.015); /* it had to wait for places */
    ASSERT_OK(gh_pool_join(p, 5.0));
    ASSERT_EQ(finished, 10);
    ASSERT_EQ(max_running, 3);
    ASSERT_EQ(gh_pool_count(p), 0);
    ASSERT_EQ(gh_pool_free_count(p), 3);
    ASSERT_OK(gh_join(g, 0, &res));
    ASSERT_EQ((intptr_t)res, 42);
    ASSERT_OK(gh_release(g));
    ASSERT_OK(gh_pool_wait_available(p, 0));
    ASSERT_OK(gh_pool_close(p));
    ASSERT_CODE(gh_pool_close(p), GH_EBADHANDLE);
    ASSERT_OK(gh_hub_destroy());
}

/* A group (size 0): no limit; join with a timeout; kill all (members see GH_ECANCELED;
 * with a timeout kill waits for them); free_count is SSIZE_MAX. */
TEST(group_join_timeout_and_kill) {
    gh_pool grp;
    reset();
    ASSERT_OK(gh_pool_new(&grp, 0));
    ASSERT_EQ(gh_pool_free_count(grp), (ssize_t)SSIZE_MAX);
    for (int i = 0; i < 50; i++) ASSERT_OK(gh_pool_spawn(grp, NULL, worker, (void *)(intptr_t)3600000, 0));
    ASSERT_OK(gh_sleep(0.01));
    ASSERT_EQ(running, 50);
    ASSERT_CODE(gh_pool_join(grp, 0.02), GH_ETIMEDOUT);
    ASSERT_OK(gh_pool_kill(grp, 5.0));
    ASSERT_EQ(canceled, 50);
    ASSERT_EQ(gh_pool_count(grp), 0);
    ASSERT_OK(gh_pool_join(grp, 0));
    ASSERT_OK(gh_pool_close(grp));
    ASSERT_OK(gh_hub_destroy());
}

/* Members killed before they start never run; their places are freed (by kill, and at
 * the next call when gh_kill was used on a member's own handle). */
TEST(pool_members_killed_before_start) {
    gh_pool p;
    gh_greenlet g[2];
    reset();
    ASSERT_OK(gh_pool_new(&p, 2));
    ASSERT_OK(gh_pool_spawn(p, &g[0], worker, (void *)(intptr_t)1, 0));
    ASSERT_OK(gh_pool_spawn(p, &g[1], worker, (void *)(intptr_t)1, 0));
    ASSERT_OK(gh_kill(g[0], 0)); /* not started: discarded */
    ASSERT_EQ(gh_pool_count(p), 1);
    ASSERT_OK(gh_pool_kill(p, 0));
    ASSERT_EQ(gh_pool_count(p), 0);
    ASSERT_OK(gh_pool_join(p, 1.0));
    ASSERT_EQ(finished, 0);
    ASSERT_OK(gh_release(g[0]));
    ASSERT_OK(gh_release(g[1]));
    ASSERT_OK(gh_pool_close(p));
    ASSERT_OK(gh_hub_destroy());
}

/* Closing a pool while a greenlet waits in gh_pool_spawn on it: GH_ECLOSED; members
 * run on to completion. A pool killed by one of its members spares it. */
static gh_pool shared;

static void *blocked_spawner(void *arg) {
    (void)arg;
    return (void *)(intptr_t)gh_pool_spawn(shared, NULL, worker, (void *)(intptr_t)1, GH_FOREVER);
}

static void *killer_member(void *arg) {
    (void)arg;
    int rc = gh_pool_kill(shared, 5.0);
    finished += 100;
    return (void *)(intptr_t)rc;
}

TEST(pool_close_while_waiting_and_self_kill) {
    gh_greenlet s, k;
    void *res;
    reset();
    ASSERT_OK(gh_pool_new(&shared, 1));
    ASSERT_OK(gh_pool_spawn(shared, NULL, worker, (void *)(intptr_t)20, 0));
    ASSERT_OK(gh_spawn(&s, blocked_spawner, NULL));
    ASSERT_OK(gh_sleep(0.005));
    ASSERT_OK(gh_pool_close(shared));
    ASSERT_OK(gh_join(s, 5.0, &res));
    ASSERT_EQ((intptr_t)res, GH_ECLOSED);
    ASSERT_OK(gh_release(s));
    ASSERT_OK(gh_sleep(0.05));
    ASSERT_EQ(finished, 1); /* the member ran on */
    reset();
    ASSERT_OK(gh_pool_new(&shared, 0));
    for (int i = 0; i < 3; i++) ASSERT_OK(gh_pool_spawn(shared, NULL, worker, (void *)(intptr_t)3600000, 0));
    ASSERT_OK(gh_pool_spawn(shared, &k, killer_member, NULL, 0));
    ASSERT_OK(gh_join(k, 5.0, &res));
    ASSERT_EQ((intptr_t)res, 0);
    ASSERT_EQ(canceled, 3);
    ASSERT_OK(gh_release(k));
    ASSERT_OK(gh_pool_join(shared, 1.0));
    ASSERT_OK(gh_pool_close(shared));
    ASSERT_OK(gh_hub_destroy());
}

/* gh_hub_destroy with members running and a spawner waiting: no leak (valgrind). */
TEST(pool_destroy_with_members) {
    gh_pool p;
    reset();
    ASSERT_OK(gh_pool_new(&p, 1));
    ASSERT_OK(gh_pool_spawn(p, NULL, worker, (void *)(intptr_t)3600000, 0));
    shared = p;
    ASSERT_OK(gh_spawn(NULL, blocked_spawner, NULL));
    ASSERT_OK(gh_sleep(0.01));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_CODE(gh_pool_count(p), GH_EBADHANDLE);
}

/* Misuse: NULLs, NaN, bad and other-thread handles, from a callback. */
static void *other_thread(void *arg) {
    gh_pool p = *(gh_pool *)arg;
    intptr_t bad = 0;
    bad += gh_pool_count(p) != GH_EWRONGTHREAD;
    bad += gh_pool_join(p, 0) != GH_EWRONGTHREAD;
    bad += gh_pool_spawn(p, NULL, worker, NULL, 0) != GH_EWRONGTHREAD;
    bad += gh_pool_close(p) != GH_EWRONGTHREAD;
    gh_hub_destroy();
    return (void *)bad;
}

static int cb_kill_wait, cb_kill_now;
static void on_timer(gh_watcher w, int revents, void *arg) {
    gh_pool p = *(gh_pool *)arg;
    (void)w, (void)revents;
    cb_kill_wait = gh_pool_kill(p, 1.0);
    cb_kill_now = gh_pool_kill(p, 0);
}

TEST(pool_misuse) {
    gh_pool p, zero = {0}, ones = {~0ull};
    gh_watcher t;
    pthread_t th;
    void *bad;
    reset();
    ASSERT_CODE(gh_pool_new(NULL, 1), GH_EINVAL);
    ASSERT_OK(gh_pool_new(&p, 1));
    ASSERT_CODE(gh_pool_spawn(p, NULL, NULL, NULL, 0), GH_EINVAL);
    ASSERT_CODE(gh_pool_spawn(p, NULL, worker, NULL, NAN), GH_EINVAL);
    ASSERT_CODE(gh_pool_join(p, NAN), GH_EINVAL);
    gh_pool bads[] = {zero, ones};
    for (int i = 0; i < 2; i++) {
        ASSERT_CODE(gh_pool_spawn(bads[i], NULL, worker, NULL, 0), GH_EBADHANDLE);
        ASSERT_CODE(gh_pool_count(bads[i]), GH_EBADHANDLE);
        ASSERT_CODE(gh_pool_free_count(bads[i]), GH_EBADHANDLE);
        ASSERT_CODE(gh_pool_wait_available(bads[i], 0), GH_EBADHANDLE);
        ASSERT_CODE(gh_pool_join(bads[i], 0), GH_EBADHANDLE);
        ASSERT_CODE(gh_pool_kill(bads[i], 0), GH_EBADHANDLE);
        ASSERT_CODE(gh_pool_close(bads[i]), GH_EBADHANDLE);
    }
    ASSERT_OK(pthread_create(&th, NULL, other_thread, &p));
    ASSERT_OK(pthread_join(th, &bad));
    ASSERT_TRUE(bad == NULL);
    ASSERT_OK(gh_pool_spawn(p, NULL, worker, (void *)(intptr_t)3600000, 0));
    ASSERT_OK(gh_timer_new(&t, 0.005, 0));
    ASSERT_OK(gh_watcher_start(t, on_timer, &p));
    ASSERT_OK(gh_sleep(0.02));
    ASSERT_EQ(cb_kill_wait, GH_EPERM);
    ASSERT_EQ(cb_kill_now, 0);
    ASSERT_OK(gh_pool_join(p, 1.0));
    ASSERT_EQ(canceled, 1);
    ASSERT_OK(gh_watcher_close(t));
    ASSERT_OK(gh_pool_close(p));
    ASSERT_OK(gh_hub_destroy());
}

int main(int argc, char **argv) {
    TEST_INIT(argc, argv);
    RUN(pool_size_limits_spawn);
    RUN(group_join_timeout_and_kill);
    RUN(pool_members_killed_before_start);
    RUN(pool_close_while_waiting_and_self_kill);
    RUN(pool_destroy_with_members);
    RUN(pool_misuse);
    return TEST_DONE();
}

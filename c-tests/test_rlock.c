/* test_rlock.c — re-entrant locks (gh_rlock_*, issue 14: gevent.lock.RLock): nesting by
 * the owner, other greenlets waiting in FIFO order, release by a non-owner, timeouts,
 * kill while waiting, close with waiters, misuse.
 *
 * Build and run:
 *   cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g -O1 -Iinclude -Ic-tests \
 *      c-tests/test_rlock.c target/release/libgreenhub.a -lpthread -ldl -lm \
 *      -o target/c/test_rlock
 *   ./target/c/test_rlock [case]
 */
#include "harness.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>

static gh_rlock lock;
static int order[8], norder;

/* Acquires the lock twice (nested), records its turn, sleeps 5 ms, releases twice. */
static void *nested_user(void *arg) {
    int rc = gh_rlock_acquire(lock, 5.0);
    if (rc != 0) return (void *)(intptr_t)rc;
    if (gh_rlock_acquire(lock, 0) != 0) return (void *)(intptr_t)-1;
    if (gh_rlock_owned(lock) != 2) return (void *)(intptr_t)-2;
    order[norder++] = (int)(intptr_t)arg;
    gh_sleep(0.005);
    if (gh_rlock_release(lock) != 0 || gh_rlock_release(lock) != 0) return (void *)(intptr_t)-3;
    return NULL;
}

/* The owner nests; five waiters get the lock one after another, in the order they
 * asked; a non-owner's release is GH_EPERM. */
TEST(rlock_nesting_and_fifo) {
    gh_greenlet g[5];
    void *res;
    norder = 0;
    ASSERT_OK(gh_rlock_new(&lock));
    ASSERT_EQ(gh_rlock_owned(lock), 0);
    ASSERT_OK(gh_rlock_acquire(lock, 0));
    ASSERT_OK(gh_rlock_acquire(lock, 0));
    ASSERT_EQ(gh_rlock_owned(lock), 2);
    for (int i = 0; i < 5; i++) ASSERT_OK(gh_spawn(&g[i], nested_user, (void *)(intptr_t)i));
    ASSERT_OK(gh_sleep(0.01));
    ASSERT_EQ(norder, 0); /* all wait: main holds it */
    ASSERT_OK(gh_rlock_release(lock));
    ASSERT_OK(gh_sleep(0.01));
    ASSERT_EQ(norder, 0); /* still held once */
    ASSERT_OK(gh_rlock_release(lock));
    ASSERT_CODE(gh_rlock_release(lock), GH_EPERM);
    for (int i = 0; i < 5; i++) {
        ASSERT_OK(gh_join(g[i], 5.0, &res));
        ASSERT_TRUE(res == NULL);
        ASSERT_OK(gh_release(g[i]));
    }
    ASSERT_EQ(norder, 5);
    for (int i = 0; i < 5; i++) ASSERT_EQ(order[i], i);
    ASSERT_OK(gh_rlock_acquire(lock, 0)); /* free again */
    ASSERT_OK(gh_rlock_release(lock));
    ASSERT_OK(gh_rlock_close(lock));
    ASSERT_CODE(gh_rlock_close(lock), GH_EBADHANDLE);
    ASSERT_OK(gh_hub_destroy());
}

static void *acquire_forever(void *arg) {
    (void)arg;
    return (void *)(intptr_t)gh_rlock_acquire(lock, GH_FOREVER);
}

/* Held by another greenlet: a timeout, GH_ETIMEDOUT at once with 0, a killed waiter
 * (GH_ECANCELED; the lock stays consistent), close with a waiter (GH_ECLOSED). */
TEST(rlock_timeout_kill_close) {
    gh_greenlet owner, w;
    void *res;
    ASSERT_OK(gh_rlock_new(&lock));
    ASSERT_OK(gh_spawn(&owner, acquire_forever, NULL));
    ASSERT_OK(gh_join(owner, 5.0, &res)); /* it took the lock and ended, still holding it */
    ASSERT_EQ((intptr_t)res, 0);
    ASSERT_EQ(gh_rlock_owned(lock), 0);
    ASSERT_CODE(gh_rlock_acquire(lock, 0), GH_ETIMEDOUT);
    double t0 = gh_test_now();
    ASSERT_CODE(gh_rlock_acquire(lock, 0.02), GH_ETIMEDOUT);
    ASSERT_TRUE(gh_test_now() - t0 >= 0.015);
    ASSERT_CODE(gh_rlock_release(lock), GH_EPERM);
    ASSERT_OK(gh_spawn(&w, acquire_forever, NULL));
    ASSERT_OK(gh_sleep(0.005));
    ASSERT_OK(gh_kill(w, 5.0));
    ASSERT_OK(gh_join(w, 0, &res));
    ASSERT_EQ((intptr_t)res, GH_ECANCELED);
    ASSERT_OK(gh_release(w));
    ASSERT_OK(gh_spawn(&w, acquire_forever, NULL));
    ASSERT_OK(gh_sleep(0.005));
    ASSERT_OK(gh_rlock_close(lock));
    ASSERT_OK(gh_join(w, 5.0, &res));
    ASSERT_EQ((intptr_t)res, GH_ECLOSED);
    ASSERT_OK(gh_release(w));
    ASSERT_OK(gh_release(owner));
    ASSERT_OK(gh_hub_destroy());
}

/* Misuse: NULL, NaN, zero / forged / other-thread handles, a hub callback. */
static void *other_thread(void *arg) {
    gh_rlock l = *(gh_rlock *)arg;
    intptr_t bad = 0;
    bad += gh_rlock_acquire(l, 0) != GH_EWRONGTHREAD;
    bad += gh_rlock_release(l) != GH_EWRONGTHREAD;
    bad += gh_rlock_owned(l) != GH_EWRONGTHREAD;
    bad += gh_rlock_close(l) != GH_EWRONGTHREAD;
    gh_hub_destroy();
    return (void *)bad;
}

static int cb_rc;
static void on_timer(gh_watcher w, int revents, void *arg) {
    (void)w, (void)revents, (void)arg;
    cb_rc = gh_rlock_acquire(lock, 0);
}

TEST(rlock_misuse) {
    gh_rlock zero = {0}, ones = {~0ull};
    gh_watcher t;
    pthread_t th;
    void *bad;
    ASSERT_CODE(gh_rlock_new(NULL), GH_EINVAL);
    ASSERT_OK(gh_rlock_new(&lock));
    ASSERT_CODE(gh_rlock_acquire(lock, NAN), GH_EINVAL);
    gh_rlock bads[] = {zero, ones};
    for (int i = 0; i < 2; i++) {
        ASSERT_CODE(gh_rlock_acquire(bads[i], 0), GH_EBADHANDLE);
        ASSERT_CODE(gh_rlock_release(bads[i]), GH_EBADHANDLE);
        ASSERT_CODE(gh_rlock_owned(bads[i]), GH_EBADHANDLE);
        ASSERT_CODE(gh_rlock_close(bads[i]), GH_EBADHANDLE);
    }
    ASSERT_OK(pthread_create(&th, NULL, other_thread, &lock));
    ASSERT_OK(pthread_join(th, &bad));
    ASSERT_TRUE(bad == NULL);
    ASSERT_OK(gh_timer_new(&t, 0, 0));
    ASSERT_OK(gh_watcher_start(t, on_timer, NULL));
    ASSERT_OK(gh_sleep(0.01));
    ASSERT_EQ(cb_rc, GH_EPERM);
    ASSERT_OK(gh_watcher_close(t));
    ASSERT_OK(gh_rlock_close(lock));
    ASSERT_OK(gh_hub_destroy());
}

int main(int argc, char **argv) {
    TEST_INIT(argc, argv);
    RUN(rlock_nesting_and_fifo);
    RUN(rlock_timeout_kill_close);
    RUN(rlock_misuse);
    return TEST_DONE();
}

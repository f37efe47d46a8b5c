/* backend_check.h — the behaviour check a hub backend must pass, shared by
 * test_backends.c (the built-in backends) and test_backend_plugin.c (plug-ins):
 * include it after harness.h. */
#ifndef GH_BACKEND_CHECK_H
#define GH_BACKEND_CHECK_H

#include <stdint.h>
#include <sys/socket.h>

static int backend_check_fired;
static void backend_check_timer_cb(gh_watcher w, int revents, void *arg) {
    (void)w;
    (void)arg;
    if (revents == GH_TIMER) backend_check_fired++;
}
static void *backend_check_echo_once(void *arg) {
    int fd = (int)(intptr_t)arg;
    char c;
    if (gh_read(fd, &c, 1, 5) != 1) return NULL;
    if (gh_write(fd, &c, 1, 5) != 1) return NULL;
    return (void *)(intptr_t)c;
}

/* gh_hub_wait on a 20 ms timer returns after >= 18 ms; started with a callback, it
 * fires once; a gh_wait_read on a socketpair times out, then wakes on data; a spawned
 * greenlet echoes a byte through gh_read/gh_write and is joined with its result; then
 * `more` (if not NULL) runs its backend-specific part; no fd is left. */
static void backend_behaviour_check(void (*more)(void)) {
    gh_watcher t;
    gh_greenlet g;
    int sp[2];
    void *r = NULL;
    char c = 0;
    double t0 = gh_test_now();
    int fd0 = gh_test_fd_count();
    backend_check_fired = 0;
    ASSERT_OK(gh_timer_new(&t, 0.02, 0));
    ASSERT_OK(gh_hub_wait(t));
    ASSERT_TRUE(gh_test_now() - t0 >= 0.018);
    ASSERT_EQ(gh_watcher_active(t), 0);
    ASSERT_OK(gh_watcher_start(t, backend_check_timer_cb, NULL));
    ASSERT_OK(gh_sleep(0.04));
    ASSERT_EQ(backend_check_fired, 1);
    ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp));
    ASSERT_CODE(gh_wait_read(sp[0], 0.01), GH_ETIMEDOUT);
    ASSERT_OK(gh_spawn(&g, backend_check_echo_once, (void *)(intptr_t)sp[1]));
    ASSERT_EQ(gh_write(sp[0], "q", 1, 5), 1);
    ASSERT_OK(gh_wait_read(sp[0], 5));
    ASSERT_EQ(gh_read(sp[0], &c, 1, 5), 1);
    ASSERT_EQ(c, 'q');
    ASSERT_OK(gh_join(g, 5, &r));
    ASSERT_EQ((intptr_t)r, 'q');
    ASSERT_OK(gh_release(g));
    if (more) more();
    ASSERT_OK(gh_watcher_close(t));
    ASSERT_OK(gh_close(sp[0]));
    ASSERT_OK(gh_close(sp[1]));
    ASSERT_EQ(gh_test_fd_count(), fd0);
}

#endif

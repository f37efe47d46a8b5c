/* test_embed.c — embedding: a host loop (plain poll(2)) drives the hub with
 * gh_hub_backend_fd, gh_hub_backend_timeout and gh_hub_run_once; greenlets, timers and
 * IO all progress that way. Also gh_hub_run_once's errors and return value.
 *
 * Build and run: see /work/brief/tests.md.
 */
#include "harness.h"

#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>

static int is_poll_backend(void) {
    const char *b = gh_hub_backend();
    /* poll(2) and select(2) have no fd to wait on; nor has a plug-in without backend_fd. */
    return b && (strcmp(b, "poll") == 0 || strcmp(b, "select") == 0 || gh_hub_backend_fd() == GH_ENOTSUP);
}

/* One host iteration: poll the backend fd (and `host_fd` if >= 0) for at most the
 * hub's timeout (capped at 100 ms), then gh_hub_run_once(0). Under the "poll" backend
 * (no backend fd) the hub waits itself: gh_hub_run_once(timeout). Returns run_once's
 * result; *host_ready gets host_fd's readiness. */
static int host_iteration(int host_fd, int *host_ready) {
    struct pollfd pf[2];
    int n = 0, ms, fd;
    double t = gh_hub_backend_timeout();
    ms = t < 0 ? 100 : (int)ceil(t * 1000) > 100 ? 100 : (int)ceil(t * 1000);
    fd = gh_hub_backend_fd();
    if (fd >= 0) {
        pf[n].fd = fd;
        pf[n].events = POLLIN;
        n++;
    }
    if (host_fd >= 0) {
        pf[n].fd = host_fd;
        pf[n].events = POLLIN;
        n++;
    }
    if (fd >= 0 || host_fd >= 0) (void)poll(pf, (nfds_t)n, fd >= 0 ? ms : 0);
    if (host_ready) *host_ready = host_fd >= 0 && (pf[n - 1].revents & POLLIN);
    return gh_hub_run_once(fd >= 0 ? 0 : (double)ms / 1000.0);
}

static int events[16], nevents;
static void note(int e) {
    if (nevents < 16) events[nevents++] = e;
}
static void *worker(void *arg) {
    int fd = (int)(intptr_t)arg;
    char c = 0;
    if (gh_sleep(0.02) != GH_OK) return NULL;
    note(1);
    if (gh_read(fd, &c, 1, 5) != 1) return NULL;
    note(c == 'h' ? 3 : -3);
    return (void *)1;
}
static int ticks;
static void tick_cb(gh_watcher w, int revents, void *arg) {
    (void)arg;
    (void)revents;
    if (++ticks == 3) gh_watcher_stop(w);
}

/* A host poll(2) loop that also watches its own pipe drives the hub: a greenlet sleeps
 * 20 ms then reads a pipe the host writes once the sleep is done (after it saw its own
 * fd readable),
 * a repeating 10 ms timer fires 3 times; events come in order (sleep done, host
 * write, read done), and gh_hub_run_once returns 0 once nothing is left. */
TEST(host_loop_drives_hub) {
    int hub_pipe[2], host_pipe[2], rc = 1, iterations = 0, wrote = 0, ready = 0, kicked = 0;
    gh_greenlet g;
    gh_watcher t;
    void *r = NULL;
    double t0 = gh_test_now();
    ASSERT_OK(pipe(hub_pipe));
    ASSERT_OK(pipe(host_pipe));
    ASSERT_OK(gh_spawn(&g, worker, (void *)(intptr_t)hub_pipe[0]));
    ASSERT_OK(gh_timer_new(&t, 0.01, 0.01));
    ASSERT_OK(gh_watcher_start(t, tick_cb, NULL));
    while (rc == 1 && iterations++ < 10000 && gh_test_now() - t0 < 10) {
        if (!kicked && nevents >= 1) { /* after the sleep: order, not timing (valgrind) */
            ASSERT_EQ(write(host_pipe[1], "k", 1), 1); /* the host's own event source */
            kicked = 1;
        }
        rc = host_iteration(host_pipe[0], &ready);
        ASSERT_TRUE(rc >= 0);
        if (ready && !wrote) {
            char c;
            ASSERT_EQ(read(host_pipe[0], &c, 1), 1);
            note(2);
            ASSERT_EQ(write(hub_pipe[1], "h", 1), 1);
            wrote = 1;
        }
    }
    ASSERT_EQ(rc, 0);
    ASSERT_EQ(nevents, 3);
    ASSERT_EQ(events[0], 1);
    ASSERT_EQ(events[1], 2);
    ASSERT_EQ(events[2], 3);
    ASSERT_EQ(ticks, 3);
    ASSERT_OK(gh_join(g, 0, &r));
    ASSERT_EQ((intptr_t)r, 1);
    ASSERT_OK(gh_release(g));
    ASSERT_OK(gh_watcher_close(t));
    ASSERT_OK(gh_hub_destroy());
    close(hub_pipe[0]);
    close(hub_pipe[1]);
    close(host_pipe[0]);
    close(host_pipe[1]);
}

/* gh_hub_run_once's return value: 0 with nothing in the loop; 1 with an active timer;
 * 0 again once the one-shot timer fired (run with a negative timeout: waits for it);
 * 0 with only an unreferenced active watcher. */
TEST(run_once_return_value) {
    gh_watcher t;
    double t0;
    ASSERT_EQ(gh_hub_run_once(0), 0);
    ASSERT_OK(gh_timer_new(&t, 0.02, 0));
    t0 = gh_test_now(); /* before the start: the timer counts from its start */
    ASSERT_OK(gh_watcher_start(t, tick_cb, NULL));
    ASSERT_EQ(gh_hub_run_once(0), 1);
    while (ticks == 0) ASSERT_TRUE(gh_hub_run_once(-1) >= 0);
    ASSERT_TRUE(gh_test_now() - t0 >= 0.015);
    ASSERT_EQ(gh_hub_run_once(0), 0);
    ASSERT_OK(gh_watcher_start(t, tick_cb, NULL));
    ASSERT_OK(gh_watcher_ref(t, 0));
    ASSERT_EQ(gh_hub_run_once(0), 0);
    ASSERT_OK(gh_watcher_close(t));
    ASSERT_OK(gh_hub_destroy());
}

/* Timeouts: NaN → GH_EINVAL; 0 does not wait for a 10 s timer (returns 1 well under
 * 2 s); +inf and 1e300 wait for a 20 ms timer (>= 15 ms), not forever. */
TEST(run_once_timeouts) {
    gh_watcher far, near;
    double t0;
    int k;
    ASSERT_CODE(gh_hub_run_once(NAN), GH_EINVAL);
    ASSERT_OK(gh_timer_new(&far, 10, 0));
    ASSERT_OK(gh_watcher_start(far, tick_cb, NULL));
    t0 = gh_test_now();
    ASSERT_EQ(gh_hub_run_once(0), 1);
    ASSERT_TRUE(gh_test_now() - t0 < 2);
    ASSERT_OK(gh_timer_new(&near, 0.02, 0));
    for (k = 0; k < 2; k++) {
        int before = ticks;
        ASSERT_OK(gh_watcher_start(near, tick_cb, NULL));
        t0 = gh_test_now();
        while (ticks == before) ASSERT_EQ(gh_hub_run_once(k ? 1e300 : INFINITY), 1);
        ASSERT_TRUE(gh_test_now() - t0 >= 0.015);
    }
    ASSERT_OK(gh_watcher_close(near));
    ASSERT_OK(gh_watcher_close(far));
    ASSERT_OK(gh_hub_destroy());
}

static int nested_rc[2] = {12345, 12345};
static void *run_once_in_greenlet(void *arg) {
    (void)arg;
    nested_rc[0] = gh_hub_run_once(0);
    return NULL;
}
static void run_once_in_callback(void *arg) {
    (void)arg;
    nested_rc[1] = gh_hub_run_once(0);
}
static int watcher_rc = 12345;
static void run_once_in_watcher(gh_watcher w, int revents, void *arg) {
    (void)w;
    (void)revents;
    (void)arg;
    watcher_rc = gh_hub_run_once(0);
}

/* gh_hub_run_once from a spawned greenlet, a gh_run_callback callback and a watcher
 * callback: GH_EPERM. */
TEST(run_once_eperm) {
    gh_greenlet g;
    gh_watcher t;
    ASSERT_OK(gh_spawn(&g, run_once_in_greenlet, NULL));
    ASSERT_OK(gh_run_callback(run_once_in_callback, NULL));
    ASSERT_OK(gh_timer_new(&t, 0.001, 0));
    ASSERT_OK(gh_watcher_start(t, run_once_in_watcher, NULL));
    ASSERT_OK(gh_join(g, 5, NULL));
    ASSERT_OK(gh_sleep(0.01));
    ASSERT_CODE(nested_rc[0], GH_EPERM);
    ASSERT_CODE(nested_rc[1], GH_EPERM);
    ASSERT_CODE(watcher_rc, GH_EPERM);
    ASSERT_OK(gh_release(g));
    ASSERT_OK(gh_watcher_close(t));
    ASSERT_OK(gh_hub_destroy());
}

/* gh_hub_backend_fd: GH_ENOTSUP under "poll"; under "epoll"/"polling" an open fd, the
 * same on every call, that becomes readable (poll(2)) when a started io watcher's fd
 * gets data, after gh_hub_backend_timeout applied the pending changes. */
TEST(backend_fd) {
    int fd, p[2];
    gh_watcher w;
    struct pollfd pf;
    ASSERT_OK(pipe(p));
    fd = gh_hub_backend_fd();
    if (is_poll_backend()) {
        ASSERT_CODE(fd, GH_ENOTSUP);
    } else {
        ASSERT_TRUE(fd >= 0);
        ASSERT_EQ(gh_hub_backend_fd(), fd);
        ASSERT_TRUE(fcntl(fd, F_GETFD) >= 0);
        ASSERT_OK(gh_io_new(&w, p[0], GH_READ));
        ASSERT_OK(gh_watcher_start(w, tick_cb, NULL));
        ASSERT_EQ(gh_hub_backend_timeout(), GH_FOREVER);
        pf.fd = fd;
        pf.events = POLLIN;
        pf.revents = 0;
        ASSERT_EQ(poll(&pf, 1, 0), 0); /* nothing yet */
        ASSERT_EQ(write(p[1], "x", 1), 1);
        ASSERT_EQ(poll(&pf, 1, 5000), 1);
        ASSERT_TRUE(pf.revents & POLLIN);
        ASSERT_EQ(gh_hub_run_once(0), 1);
        ASSERT_EQ(ticks, 1);
        ASSERT_OK(gh_watcher_close(w));
    }
    close(p[0]);
    close(p[1]);
    ASSERT_OK(gh_hub_destroy());
}

/* gh_hub_backend_timeout: 0 with a queued callback and with a ready greenlet; a value
 * in (0, 0.5] with a 0.5 s timer; GH_FOREVER with only an io watcher. */
TEST(backend_timeout_values) {
    gh_watcher t, io;
    int p[2];
    double v;
    ASSERT_OK(pipe(p));
    ASSERT_OK(gh_io_new(&io, p[0], GH_READ));
    ASSERT_OK(gh_watcher_start(io, tick_cb, NULL));
    ASSERT_TRUE(gh_hub_backend_timeout() == GH_FOREVER);
    ASSERT_OK(gh_timer_new(&t, 0.5, 0));
    ASSERT_OK(gh_watcher_start(t, tick_cb, NULL));
    v = gh_hub_backend_timeout();
    ASSERT_TRUE(v > 0 && v <= 0.5);
    ASSERT_OK(gh_run_callback(run_once_in_callback, NULL));
    ASSERT_TRUE(gh_hub_backend_timeout() == 0);
    ASSERT_TRUE(gh_hub_run_once(0) >= 0);
    ASSERT_OK(gh_spawn(NULL, run_once_in_greenlet, NULL));
    ASSERT_TRUE(gh_hub_backend_timeout() == 0);
    ASSERT_OK(gh_watcher_close(t));
    ASSERT_OK(gh_watcher_close(io));
    close(p[0]);
    close(p[1]);
    ASSERT_OK(gh_hub_destroy());
}

/* Another thread's gh_async_send and gh_hub_call_threadsafe wake a host loop blocked in
 * poll(2) on the backend fd (or, under "poll", in gh_hub_run_once) and their callbacks
 * run from gh_hub_run_once. */
static gh_watcher async_w;
static gh_hub_ref embed_hub;
static int async_fired, call_ran;
static void async_cb(gh_watcher w, int revents, void *arg) {
    (void)w;
    (void)arg;
    if (revents == GH_ASYNC) async_fired++;
}
static void call_cb(void *arg) {
    (void)arg;
    call_ran++;
}
static void *poker(void *arg) {
    (void)arg;
    usleep(20000);
    gh_async_send(async_w);
    usleep(20000);
    gh_hub_call_threadsafe(embed_hub, call_cb, NULL);
    return NULL;
}
TEST(cross_thread_wakes_host_loop) {
    pthread_t t;
    double t0 = gh_test_now();
    embed_hub = gh_hub_current();
    ASSERT_OK(gh_async_new(&async_w));
    ASSERT_OK(gh_watcher_start(async_w, async_cb, NULL));
    ASSERT_OK(pthread_create(&t, NULL, poker, NULL));
    while ((async_fired == 0 || call_ran == 0) && gh_test_now() - t0 < 10)
        ASSERT_EQ(host_iteration(-1, NULL), 1);
    ASSERT_OK(pthread_join(t, NULL));
    ASSERT_EQ(async_fired, 1);
    ASSERT_EQ(call_ran, 1);
    ASSERT_OK(gh_watcher_close(async_w));
    ASSERT_OK(gh_hub_destroy());
}

int main(int argc, char **argv) {
    TEST_INIT(argc, argv);
    RUN(host_loop_drives_hub);
    RUN(run_once_return_value);
    RUN(run_once_timeouts);
    RUN(run_once_eperm);
    RUN(backend_fd);
    RUN(backend_timeout_values);
    RUN(cross_thread_wakes_host_loop);
    return TEST_DONE();
}

/* tour.c — one short example per concept of the API reference.
 *
 * Each group of the reference (scripts/docs.sh: "Modules") opens with the code between
 * one pair of `//! [NAME]` markers below, so every example shown there is compiled and
 * run by the test suite. Run with no arguments: each part prints what it did and the
 * program exits 0 when every part worked.
 *
 * The test suite smoke-runs it with no arguments:
 */
// smoke:
#include <greenhub.h>
#include <greenhub_patch.h>

#include <netdb.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int failures;
#define CHECK(cond)                                                   \
    do {                                                              \
        if (!(cond)) {                                                \
            fprintf(stderr, "tour.c:%d: %s failed\n", __LINE__, #cond); \
            failures++;                                               \
        }                                                             \
    } while (0)

/* ---- conventions and errors */
static void conventions(void) {
    //! [conventions]
    gh_greenlet nobody = {0}; /* a zero handle: never valid */
    int rc = gh_join(nobody, 1.0, NULL);
    if (rc < 0) /* 0 is GH_OK; failures are negative codes, never errno */
        printf("gh_join: %s (%s)\n", gh_err_name(rc), gh_strerror(rc));
    //! [conventions]
    CHECK(rc == GH_EBADHANDLE);
}

/* ---- the hub and its loop */
//! [hub]
static void *hello(void *arg) {
    printf("hello from a greenlet (context %d: GH_CONTEXT_GREENLET)\n", gh_hub_context());
    return arg;
}

static void hub(void) {
    gh_greenlet g;
    GH_SPAWN(&g, hello, NULL); /* queued: it runs once main lets the hub run */
    gh_hub_run();              /* run the loop until nothing is left to do */
    printf("back in main (context %d: GH_CONTEXT_MAIN)\n", gh_hub_context());
    gh_release(g);
}
//! [hub]

/* ---- greenlets */
//! [greenlets]
static void *square(void *arg) {
    intptr_t n = (intptr_t)arg;
    gh_sleep(0.01 * n); /* parks this greenlet only */
    return (void *)(n * n);
}

static void greenlets(void) {
    gh_greenlet g[3];
    for (intptr_t i = 0; i < 3; i++) GH_SPAWN(&g[i], square, (void *)(i + 1));
    for (int i = 0; i < 3; i++) {
        void *result = NULL;
        gh_join(g[i], GH_FOREVER, &result); /* wait for it to finish, get its result */
        printf("greenlet %d returned %ld\n", i, (long)(intptr_t)result);
        gh_release(g[i]); /* the handle is ours until released */
    }
}
//! [greenlets]

/* ---- blocking and timeouts */
static void blocking(void) {
    //! [blocking]
    gh_timeout deadline;
    gh_timeout_start(&deadline, 0.05); /* every blocking call below shares 50 ms */
    int rc = gh_sleep(0.02);           /* GH_OK: within the deadline */
    if (rc == GH_OK) rc = gh_sleep(1.0); /* GH_ETIMEDOUT after 30 ms more */
    gh_timeout_cancel(deadline);
    printf("sleep under a 50 ms timeout: %s\n", gh_err_name(rc));
    //! [blocking]
    CHECK(rc == GH_ETIMEDOUT);
}

/* ---- cooperative I/O */
//! [io]
static void *late_writer(void *arg) {
    int fd = *(int *)arg;
    gh_sleep(0.02);
    gh_send(fd, "ping", 4, 0, 1.0);
    return NULL;
}

static void io(void) {
    int sv[2];
    char buf[16];
    gh_greenlet writer;
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    GH_SPAWN(&writer, late_writer, &sv[1]);
    ssize_t n = gh_recv(sv[0], buf, sizeof buf, 0, 1.0); /* parks until data or 1 s */
    printf("gh_recv: %zd bytes: %.*s\n", n, (int)(n > 0 ? n : 0), buf);
    gh_join(writer, GH_FOREVER, NULL);
    gh_release(writer);
    close(sv[0]);
    close(sv[1]);
}
//! [io]

/* ---- watchers */
//! [watchers]
static void tick(gh_watcher w, int revents, void *arg) { /* runs in the hub: never blocks */
    int *count = arg;
    (void)revents;
    if (++*count == 3) gh_watcher_stop(w);
}

static void watchers(void) {
    gh_watcher timer;
    int count = 0;
    gh_timer_new(&timer, 0.01, 0.01); /* after 10 ms, then every 10 ms */
    gh_watcher_start(timer, tick, &count);
    gh_hub_run(); /* returns once the timer is stopped: nothing left to do */
    gh_watcher_close(timer);
    printf("the timer fired %d times\n", count);
}
//! [watchers]

/* ---- synchronisation */
//! [sync]
static void *producer(void *arg) {
    gh_queue q = *(gh_queue *)arg;
    for (intptr_t i = 1; i <= 3; i++) gh_queue_put(q, (void *)i, GH_FOREVER);
    gh_queue_close(q); /* getters drain what is left, then get GH_ECLOSED */
    return NULL;
}

static void sync_(void) {
    gh_queue q;
    gh_greenlet g;
    void *item;
    long sum = 0;
    gh_queue_new(&q, 1); /* bounded: the producer waits while it is full */
    GH_SPAWN(&g, producer, &q);
    while (gh_queue_get(q, &item, 1.0) == GH_OK) sum += (long)(intptr_t)item;
    printf("consumed the queue: sum %ld\n", sum);
    gh_join(g, GH_FOREVER, NULL);
    gh_release(g);
    gh_queue_free(q);
}
//! [sync]

/* ---- servers and streams */
//! [servers]
static void upper(gh_server server, int fd, void *arg) { /* a greenlet per connection */
    char line[256];
    gh_stream in;
    ssize_t n;
    size_t sent;
    (void)server, (void)arg;
    gh_stream_new(&in, fd, sizeof line);
    while ((n = gh_stream_readline(in, line, sizeof line, 5.0)) > 0) {
        for (ssize_t i = 0; i < n; i++) line[i] = (char)(line[i] >= 'a' && line[i] <= 'z' ? line[i] - 32 : line[i]);
        gh_write_all(fd, line, (size_t)n, 5.0, &sent); /* all of it, or a code */
    }
    gh_stream_close(in);
} /* the server closes fd */

static ssize_t servers(void) {
    gh_server server;
    char address[64], reply[64];
    size_t sent;
    gh_server_new(&server, "127.0.0.1:0", upper, NULL, NULL); /* port 0: any free port */
    gh_server_start(server);
    gh_local_address(gh_server_fd(server), address, sizeof address);
    int fd = gh_connect_to(address, 1.0); /* the client side, in the same thread */
    gh_write_all(fd, "hello\n", 6, 1.0, &sent);
    ssize_t n = gh_recv(fd, reply, sizeof reply, 0, 1.0);
    printf("%s answered %.*s", address, (int)(n > 0 ? n : 0), reply);
    gh_close(fd);
    gh_server_stop(server, 1.0); /* close the listener, give handlers 1 s */
    gh_server_close(server);
    return n;
}
//! [servers]

/* ---- the thread pool and DNS */
//! [threadpool]
static void *slow_sum(void *arg) { /* runs on a worker thread: may block it */
    usleep(10 * 1000);
    return (void *)((intptr_t)arg + 1);
}

static void threadpool(void) {
    void *result = NULL;
    struct addrinfo *ai = NULL;
    gh_threadpool_apply(slow_sum, (void *)41, &result); /* only this greenlet waits */
    int rc = gh_getaddrinfo("localhost", "80", NULL, &ai); /* getaddrinfo on the pool */
    printf("thread pool: %ld; localhost: %s\n", (long)(intptr_t)result, gh_err_name(rc));
    if (rc == GH_OK) freeaddrinfo(ai);
}
//! [threadpool]

/* ---- threads, fork and embedding */
//! [threads]
struct shared { gh_hub_ref hub; gh_event done; };

static void wake(void *arg) { gh_event_set(((struct shared *)arg)->done); } /* in main's hub */

static void *other_thread(void *arg) {
    struct shared *s = arg;
    gh_hub_call_threadsafe(s->hub, wake, s); /* the cross-thread call */
    return NULL;
}

static void threads(void) {
    struct shared s;
    pthread_t t;
    s.hub = gh_hub_current();
    gh_event_new(&s.done);
    pthread_create(&t, NULL, other_thread, &s);
    int rc = gh_event_wait(s.done, 2.0); /* the hub runs meanwhile */
    pthread_join(t, NULL);
    gh_event_close(s.done);
    printf("woken from another thread: %s\n", gh_err_name(rc));
}
//! [threads]

/* ---- diagnostics */
static void diagnostics(void) {
    //! [diagnostics]
    char info[8192];
    ssize_t n = gh_format_run_info(info, sizeof info); /* every hub, every greenlet */
    if (n > 0) printf("run info, first line: %.*s\n", (int)strcspn(info, "\n"), info);
    //! [diagnostics]
    CHECK(n > 0);
}

/* ---- backends */
//! [backends]
static void *on_poll(void *arg) { /* a new thread: its hub does not exist yet */
    gh_hub_config cfg;
    (void)arg;
    gh_hub_config_init(&cfg);
    cfg.backend = "poll"; /* or GREENHUB_BACKEND=poll in the environment */
    if (gh_hub_configure(&cfg) != GH_OK) return NULL;
    printf("this thread's hub runs on %s\n", gh_hub_backend());
    gh_hub_destroy();
    return (void *)1;
}

static int backends(void) {
    pthread_t t;
    void *ok = NULL;
    printf("main's hub runs on %s\n", gh_hub_backend());
    pthread_create(&t, NULL, on_poll, NULL);
    pthread_join(t, &ok);
    return ok != NULL;
}
//! [backends]

/* ---- cooperative libc */
static void patch(void) {
    //! [patch]
    /* weak symbols: NULL unless libgreenhub_patch.so is loaded */
    if (gh_patch_active && gh_patch_active())
        printf("libc calls park greenlets: %s\n", gh_patch_info());
    else
        printf("the cooperative libc is not active: blocking libc calls block the thread\n");
    //! [patch]
}

/* ---- building and linking */
static void building(void) {
    //! [building]
    if (gh_version() != GH_VERSION_HEX) /* header and library from different releases */
        fprintf(stderr, "greenhub.h is %06x, the library %06x\n", GH_VERSION_HEX, gh_version());
    printf("greenhub %s\n", gh_version_string());
    //! [building]
    CHECK(gh_version() == GH_VERSION_HEX);
}

int main(void) {
    conventions();
    hub();
    greenlets();
    blocking();
    io();
    watchers();
    sync_();
    CHECK(servers() == 6);
    threadpool();
    threads();
    diagnostics();
    CHECK(backends());
    patch();
    building();
    CHECK(gh_hub_destroy() == GH_OK);
    printf("tour: %s\n", failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}

/* queue_pingpong.c — two greenlets pass one item back and forth through two gh_queues
 * (A puts on `ping` and gets from `pong`; B the reverse). Reports ns per hand-off
 * (a put that wakes the getter, plus the switch to it): one round trip = 2 hand-offs.
 * Measured with unbounded queues and with capacity-1 queues. */
#include "bench_common.h"

static gh_queue ping, pong;
static long rounds;

static void *side_a(void *arg) {
    void *item = arg;
    for (long i = 0; i < rounds; i++) {
        if (gh_queue_put(ping, item, GH_FOREVER) != GH_OK) return "put";
        if (gh_queue_get(pong, &item, GH_FOREVER) != GH_OK) return "get";
    }
    return NULL;
}

static void *side_b(void *arg) {
    void *item = arg;
    for (long i = 0; i < rounds; i++) {
        if (gh_queue_get(ping, &item, GH_FOREVER) != GH_OK) return "get";
        if (gh_queue_put(pong, item, GH_FOREVER) != GH_OK) return "put";
    }
    return NULL;
}

static size_t capacity;

/* `n` hand-offs = n / 2 round trips. */
static double run(long n) {
    gh_greenlet a, b;
    void *ra = NULL, *rb = NULL;
    rounds = n / 2;
    if (gh_queue_new(&ping, capacity) != GH_OK || gh_queue_new(&pong, capacity) != GH_OK) exit(1);
    gh_spawn(&a, side_a, (void *)1);
    gh_spawn(&b, side_b, NULL);
    double t0 = bench_now();
    gh_join(a, GH_FOREVER, &ra);
    gh_join(b, GH_FOREVER, &rb);
    double t = bench_now() - t0;
    if (ra || rb) {
        fprintf(stderr, "queue_pingpong: %s failed\n", ra ? (char *)ra : (char *)rb);
        exit(1);
    }
    gh_release(a);
    gh_release(b);
    gh_queue_close(ping);
    gh_queue_close(pong);
    gh_queue_free(ping);
    gh_queue_free(pong);
    return t;
}

int main(void) {
    long n = bench_iters(1000000);
    capacity = 0;
    bench_report("queue hand-off (unbounded)", run, n, 7);
    capacity = 1;
    bench_report("queue hand-off (capacity 1)", run, n, 7);
    return gh_hub_destroy() == GH_OK ? 0 : 1;
}

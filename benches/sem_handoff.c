/* sem_handoff.c — two greenlets alternate on a pair of semaphores (both start at 0):
 * A releases `to_b` and acquires `to_a`; B acquires `to_b` and releases `to_a`.
 * Reports ns per hand-off (a release that wakes the waiter, plus the switch to it);
 * one round trip = 2 hand-offs. */
#include "bench_common.h"

static gh_sem to_a, to_b;
static long rounds;

static void *side_a(void *arg) {
    (void)arg;
    for (long i = 0; i < rounds; i++) {
        if (gh_sem_release(to_b) != GH_OK) return "release";
        if (gh_sem_acquire(to_a, GH_FOREVER) != GH_OK) return "acquire";
    }
    return NULL;
}

static void *side_b(void *arg) {
    (void)arg;
    for (long i = 0; i < rounds; i++) {
        if (gh_sem_acquire(to_b, GH_FOREVER) != GH_OK) return "acquire";
        if (gh_sem_release(to_a) != GH_OK) return "release";
    }
    return NULL;
}

/* `n` hand-offs = n / 2 round trips. */
static double run(long n) {
    gh_greenlet a, b;
    void *ra = NULL, *rb = NULL;
    rounds = n / 2;
    if (gh_sem_new(&to_a, 0) != GH_OK || gh_sem_new(&to_b, 0) != GH_OK) exit(1);
    gh_spawn(&a, side_a, NULL);
    gh_spawn(&b, side_b, NULL);
    double t0 = bench_now();
    gh_join(a, GH_FOREVER, &ra);
    gh_join(b, GH_FOREVER, &rb);
    double t = bench_now() - t0;
    if (ra || rb) {
        fprintf(stderr, "sem_handoff: %s failed\n", ra ? (char *)ra : (char *)rb);
        exit(1);
    }
    gh_release(a);
    gh_release(b);
    gh_sem_close(to_a);
    gh_sem_close(to_b);
    return t;
}

int main(void) {
    bench_report("semaphore hand-off", run, bench_iters(1000000), 7);
    return gh_hub_destroy() == GH_OK ? 0 : 1;
}

/* threadpool.c — gh_threadpool_apply round trip of an empty function: submit to a
 * worker, the worker runs it and wakes the hub, the hub resumes the caller.
 * Reports µs per call: one caller (pure latency), and 10 callers at once (one per
 * worker of the default pool: throughput). */
#include "bench_common.h"

static void *empty(void *arg) { return arg; }

static long calls;

static void *caller(void *arg) {
    for (long i = 0; i < calls; i++) {
        void *r = NULL;
        if (gh_threadpool_apply(empty, arg, &r) != GH_OK || r != arg) return "apply";
    }
    return NULL;
}

static int ncallers;

/* `n` calls in total, spread over `ncallers` greenlets. */
static double run(long n) {
    gh_greenlet g[16];
    calls = n / ncallers;
    for (int i = 0; i < ncallers; i++) gh_spawn(&g[i], caller, (void *)(intptr_t)(i + 1));
    double t0 = bench_now();
    for (int i = 0; i < ncallers; i++) {
        void *r = NULL;
        gh_join(g[i], GH_FOREVER, &r);
        if (r) {
            fprintf(stderr, "threadpool: %s failed\n", (char *)r);
            exit(1);
        }
        gh_release(g[i]);
    }
    return (bench_now() - t0) * n / (calls * ncallers);
}

/* bench_report prints ns; this prints the same figures in µs. */
static void report_us(const char *name, long iters, int reps) {
    double v[16];
    run(iters / 10 + 1); /* warm-up: starts the workers */
    for (int i = 0; i < reps; i++) v[i] = run(iters) * 1e6 / iters;
    qsort(v, reps, sizeof v[0], bench_cmp);
    printf("%-34s %9.2f us/call (min %.2f, max %.2f, %d runs x %ld calls)\n", name, v[reps / 2], v[0],
           v[reps - 1], reps, iters);
}

int main(void) {
    long n = bench_iters(50000);
    ncallers = 1;
    report_us("threadpool_apply round trip", n, 5);
    ncallers = 10;
    report_us("threadpool_apply, 10 callers", n, 5);
    return gh_hub_destroy() == GH_OK ? 0 : 1;
}

/* spawn.c — spawn + run + join + release of an empty greenlet. */
#include "bench_common.h"

static void *empty(void *arg) { return arg; }

static double run(long n) {
    double t0 = bench_now();
    for (long i = 0; i < n; i++) {
        gh_greenlet g;
        gh_spawn(&g, empty, NULL);
        gh_join(g, GH_FOREVER, NULL);
        gh_release(g);
    }
    return bench_now() - t0;
}

int main(void) {
    bench_report("spawn+join+release (empty)", run, bench_iters(1000000), 7);
    return gh_hub_destroy() == GH_OK ? 0 : 1;
}

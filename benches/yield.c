/* yield.c — scheduler hand-off: two greenlets gh_sleep(0) to each other.
 * Reports ns per round trip (each greenlet yields once per round). */
#include "bench_common.h"

static long rounds;

static void *yielder(void *arg) {
    (void)arg;
    for (long i = 0; i < rounds; i++) gh_sleep(0);
    return NULL;
}

static double run(long n) {
    gh_greenlet a, b;
    rounds = n;
    gh_spawn(&a, yielder, NULL);
    gh_spawn(&b, yielder, NULL);
    double t0 = bench_now();
    gh_join(a, GH_FOREVER, NULL);
    gh_join(b, GH_FOREVER, NULL);
    double t = bench_now() - t0;
    gh_release(a);
    gh_release(b);
    return t;
}

int main(void) {
    bench_report("yield round trip (2x gh_sleep(0))", run, bench_iters(2000000), 7);
    return gh_hub_destroy() == GH_OK ? 0 : 1;
}

/* switch.c — raw gh_switch round trip between main and a greenlet. */
#include "bench_common.h"

static gh_greenlet main_g;

static void *partner(void *arg) {
    (void)arg;
    void *v = NULL;
    /* Bounce every value back to main until main sends NULL. */
    for (;;) {
        if (gh_switch(main_g, (void *)1, &v) != GH_OK || v == NULL) return NULL;
    }
}

static double run(long n) {
    gh_greenlet g;
    void *v = NULL;
    main_g = gh_main();
    gh_spawn(&g, partner, NULL);
    gh_switch(g, NULL, &v); /* start it: it switches straight back */
    double t0 = bench_now();
    for (long i = 0; i < n; i++) gh_switch(g, (void *)1, &v);
    double t = bench_now() - t0;
    gh_switch(g, NULL, &v); /* tell it to return; it returns to the hub */
    gh_join(g, GH_FOREVER, NULL);
    gh_release(g);
    return t;
}

int main(void) {
    bench_report("gh_switch round trip (main<->g)", run, bench_iters(2000000), 7);
    return gh_hub_destroy() == GH_OK ? 0 : 1;
}

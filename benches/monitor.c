/* monitor.c — what the diagnostics cost the hot path: the yield round trip (two
 * greenlets gh_sleep(0) to each other) with the monitor off, with the blocking monitor
 * on (its thread samples the hub; the hub pays one relaxed store per switch either way),
 * and with a trace hook set (gh_settrace: a call per switch). The three modes run
 * interleaved (off, on, trace, off, on, trace, ...); the ratios are taken within each
 * repetition, then their median is printed. Prints figures; never fails on a time. */
#include "bench_common.h"

static long rounds;
static unsigned long long traced;

static void *yielder(void *arg) {
    (void)arg;
    for (long i = 0; i < rounds; i++) gh_sleep(0);
    return NULL;
}

static void hook(int event, gh_greenlet origin, gh_greenlet target, void *arg) {
    (void)event, (void)origin, (void)target, (void)arg;
    traced++;
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
    return t * 1e9 / n;
}

#define REPS 9
int main(void) {
    long n = bench_iters(1000000);
    double v[3][REPS], r_on[REPS], r_tr[REPS];
    run(n / 10 + 1); /* warm-up */
    for (int i = 0; i < REPS; i++) {
        v[0][i] = run(n);
        if (gh_monitor_start(0.1) != GH_OK) return 1;
        v[1][i] = run(n);
        if (gh_monitor_stop() != GH_OK) return 1;
        if (gh_settrace(hook, NULL) != GH_OK) return 1;
        v[2][i] = run(n);
        if (gh_settrace(NULL, NULL) != GH_OK) return 1;
        r_on[i] = v[1][i] / v[0][i];
        r_tr[i] = v[2][i] / v[0][i];
    }
    const char *names[3] = {"yield RT, monitor off", "yield RT, monitor on", "yield RT, trace hook set"};
    for (int m = 0; m < 3; m++) {
        qsort(v[m], REPS, sizeof(double), bench_cmp);
        printf("%-34s %9.1f ns/op  (min %.1f, max %.1f, %d runs x %ld ops)\n", names[m], v[m][REPS / 2],
               v[m][0], v[m][REPS - 1], REPS, n);
    }
    qsort(r_on, REPS, sizeof(double), bench_cmp);
    qsort(r_tr, REPS, sizeof(double), bench_cmp);
    printf("%-34s %9.3f x     (min %.3f, max %.3f, per repetition)\n", "monitor on / off", r_on[REPS / 2], r_on[0],
           r_on[REPS - 1]);
    printf("%-34s %9.3f x     (min %.3f, max %.3f, per repetition)\n", "trace hook / off", r_tr[REPS / 2], r_tr[0],
           r_tr[REPS - 1]);
    /* 4 switches per round trip of each greenlet pair (hub->a, a->hub, hub->b, b->hub) */
    if (traced < (unsigned long long)n * 4 * REPS) {
        fprintf(stderr, "monitor bench: the hook saw %llu switches, expected >= %llu\n", traced,
                (unsigned long long)n * 4 * REPS);
        return 1;
    }
    return gh_hub_destroy() == GH_OK ? 0 : 1;
}

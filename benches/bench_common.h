/* bench_common.h — timing helpers for greenhub's benchmark programs.
 * Benchmarks print figures (median of several runs, min–max); they never fail on a time. */
#ifndef GH_BENCH_COMMON_H
#define GH_BENCH_COMMON_H
#include <greenhub.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static inline double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int bench_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Runs `run(iters)` `reps` times; prints median and min–max of ns per op. */
static inline void bench_report(const char *name, double (*run)(long), long iters, int reps) {
    double v[32];
    if (reps > 32) reps = 32;
    run(iters / 10 + 1); /* warm-up: pools, page faults */
    for (int i = 0; i < reps; i++) v[i] = run(iters) * 1e9 / iters;
    qsort(v, reps, sizeof v[0], bench_cmp);
    printf("%-34s %9.1f ns/op  (min %.1f, max %.1f, %d runs x %ld ops)\n", name, v[reps / 2], v[0], v[reps - 1], reps, iters);
}

static inline long bench_iters(long dflt) {
    const char *s = getenv("GH_BENCH_ITERS");
    return s ? atol(s) : dflt;
}
#endif

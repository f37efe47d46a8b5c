/* peers.h — shared by the peer benchmark programs (greenhub and the libraries a C
 * developer would pick instead). Header-only, no library dependency.
 *
 * Every program is `PROG WORKLOAD [ARGS]`, runs ONE repetition of the workload and
 * prints one line
 *     RESULT workload=W prog=P key=value ...
 * (the runner benches/run.sh parses it), or, when a level does not fit,
 *     SKIP workload=W prog=P reason=...
 * It checks its own work (counts, bytes) and exits non-zero on a mismatch. It never
 * judges a time.
 *
 * Knobs (environment): PEERS_N (count for handoff/spawn/pingpong/timers/sleepers),
 * PEERS_STACK (greenlet/thread stack bytes for sleepers/scale, default 16 KiB).
 */
#ifndef GH_PEERS_H
#define GH_PEERS_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static inline double peers_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* User + system CPU seconds of this process so far. */
static inline double peers_cpu(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

/* Peak resident set, KiB. */
static inline long peers_maxrss_kib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* A field of /proc/self/status or /proc/meminfo ("VmRSS:", "MemAvailable:"), KiB; -1 if absent. */
static inline long peers_proc_kib(const char *file, const char *field) {
    FILE *f = fopen(file, "r");
    char line[256];
    long v = -1;
    size_t n = strlen(field);
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0) {
            v = atol(line + n);
            break;
        }
    fclose(f);
    return v;
}
static inline long peers_rss_kib(void) { return peers_proc_kib("/proc/self/status", "VmRSS:"); }
static inline long peers_memavail_kib(void) { return peers_proc_kib("/proc/meminfo", "MemAvailable:"); }

/* Number of memory mappings of this process (/proc/self/maps lines). */
static inline long peers_maps(void) {
    FILE *f = fopen("/proc/self/maps", "r");
    long lines = 0;
    int c;
    if (!f) return -1;
    while ((c = getc(f)) != EOF) lines += c == '\n';
    fclose(f);
    return lines;
}

static inline long peers_env_long(const char *name, long dflt) {
    const char *s = getenv(name);
    return s && atol(s) > 0 ? atol(s) : dflt;
}

/* How many tasks of `per_task_kib` resident KiB fit in 60% of MemAvailable (at most `want`).
 * The many-task workloads estimate 8 KiB per task: two touched stack pages and the records
 * (they measure 4-4.5 KiB). */
static inline long peers_bound(long want, long per_task_kib) {
    long avail = peers_memavail_kib();
    if (avail <= 0) return want;
    long fit = (long)(avail * 0.6) / per_task_kib;
    return fit < want ? fit : want;
}

/* Fixed-seed generator (splitmix64): every program draws the same delays. */
static inline uint64_t peers_rand(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* n delays uniform in [0, 1 s), the same sequence in every program. */
static inline double *peers_delays(long n) {
    double *d = malloc((size_t)n * sizeof *d);
    uint64_t seed = 42;
    if (!d) {
        perror("malloc");
        exit(2);
    }
    for (long i = 0; i < n; i++) d[i] = (double)(peers_rand(&seed) >> 11) * 0x1.0p-53;
    return d;
}

/* The failure path of every program: a message and exit status 1. */
#define PEERS_CHECK(cond, ...)                                                                     \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "CHECK FAILED %s:%d: ", __FILE__, __LINE__);                           \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

/* ---- shared workload shapes ----------------------------------------------------- */

/* Timers: print the figures of a 1M-timer run (t0 = before the first start).
 * max_late: the latest firing against t0 + the timer's delay (the workload's figure).
 * max_own_late: against the timer's own deadline as its library defines it — the peers
 * count from their loop time, updated just before t0 (so mostly the same figure);
 * greenhub counts from each start call, so a timer started at the end of the start
 * phase is not late by the phase's length. A second figure beside the first, not a
 * replacement. */
static inline void peers_timers_result(const char *prog, long n, double wall, double cpu, double max_late,
                                       double max_own_late) {
    printf("RESULT workload=timers prog=%s n=%ld wall_s=%.3f cpu_s=%.3f rss_mib=%.1f late_ms=%.1f own_late_ms=%.1f\n",
           prog, n, wall, cpu, peers_maxrss_kib() / 1024.0, max_late * 1e3, max_own_late * 1e3);
}

/* The timers workload's second burst: n more timers started once the first n all fired
 * (a long-running process starting timers again in the memory the first ones used):
 * the start phase's ns per timer and the max lateness, on their own line. */
static inline void peers_timers_again_result(const char *prog, long n, double start_s, double max_late) {
    printf("RESULT workload=timers-again prog=%s n=%ld start_ns=%.1f late_ms=%.1f\n", prog, n, start_s * 1e9 / (double)n,
           max_late * 1e3);
}

/* The timers workloads around a program's burst(n, &start_s) (start n timers, delays[i],
 * and run the loop until all fired; the start phase's seconds in start_s), which leaves
 * its lateness figures in *late and *own_late: `timers` is one burst, measured;
 * `timers-again` is one burst, then the second one measured. */
static inline int peers_timers(const char *prog, int again, long n, void (*burst)(long, double *), const double *late,
                               const double *own_late) {
    double start_s, c0 = peers_cpu(), t0 = peers_now();
    burst(n, &start_s);
    if (again) {
        burst(n, &start_s);
        peers_timers_again_result(prog, n, start_s, *late);
    } else {
        peers_timers_result(prog, n, peers_now() - t0, peers_cpu() - c0, *late, *own_late);
    }
    return 0;
}

/* Sleepers: n tasks each sleeping delays[i]; rss per task from the peak over the baseline. */
static inline void peers_sleepers_result(const char *prog, long n, long want, double wall, long base_kib) {
    printf("RESULT workload=sleepers prog=%s n=%ld want=%ld wall_s=%.3f rss_per_task_kib=%.2f rss_mib=%.1f\n",
           prog, n, want, wall, (double)(peers_maxrss_kib() - base_kib) / (double)n,
           peers_maxrss_kib() / 1024.0);
}

/* Echo server: the client passes the listening socket's fd and the number of connections. */

/* Scale: the frame every parked task runs in touches this much of its stack. */
#define PEERS_SCALE_TOUCH 2048
#endif

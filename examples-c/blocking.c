/* blocking.c — "Blocking gevent's hub", the seeds' examples side by side, in C.
 *
 * A ticker greenlet prints a dot every 50 ms. Beside it, one worker greenlet at a time
 * spends the same time (0.5 s by default) in one of these ways:
 *
 *   gh_sleep(t)                cooperative: the hub runs the ticker meanwhile
 *   sleep()/usleep()           blocks the whole thread: no dots
 *   a CPU loop                 blocks too
 *   a CPU loop + gh_sleep(0)   cooperative: it yields to the hub on every pass
 *   getaddrinfo("localhost")   blocks the thread for as long as the lookup takes
 *   gh_getaddrinfo(...)        runs getaddrinfo on the thread pool: only the caller waits
 *
 * and the dots printed meanwhile show who let the hub run. With --monitor, greenhub's
 * blocking monitor (threshold 0.1 s) reports each blockage on stderr as it happens —
 * which greenlet, where it was spawned, the greenlet tree and a native backtrace — and
 * one line when it ends. (A lookup of "localhost" is quick, so those two rows look the
 * same here; a slow DNS server is what makes the first one hurt.)
 *
 *   ./blocking [--monitor] [--seconds S] [--check]
 *
 * --check exits 1 unless the cooperative rows printed dots and the blocking ones did not.
 * The test suite smoke-runs it with the arguments below:
 */
// smoke: --monitor --seconds 0.3 --check
#include <greenhub.h>

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TICK 0.05

static double seconds = 0.5;
static int stop_ticker, dots;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void *ticker(void *arg) {
    (void)arg;
    while (!stop_ticker) {
        putchar('.');
        fflush(stdout);
        dots++;
        if (gh_sleep(TICK) != GH_OK) break;
    }
    return NULL;
}

static void *with_gh_sleep(void *arg) {
    (void)arg;
    gh_sleep(seconds);
    return NULL;
}
//! [workers]
static void *with_usleep(void *arg) {
    (void)arg;
    usleep((useconds_t)(seconds * 1e6));
    return NULL;
}

static volatile unsigned long spin;

static void *cpu_loop(void *arg) {
    (void)arg;
    double end = now() + seconds;
    while (now() < end) spin++;
    return NULL;
}

static void *cpu_loop_yielding(void *arg) {
    (void)arg;
    double end = now() + seconds;
    while (now() < end) {
        for (int i = 0; i < 10000; i++) spin++;
        gh_sleep(0); /* let the hub (and the ticker) run */
    }
    return NULL;
}
//! [workers]
static void *with_getaddrinfo(void *arg) {
    struct addrinfo *res = NULL;
    (void)arg;
    if (getaddrinfo("localhost", "80", NULL, &res) == 0) freeaddrinfo(res);
    return NULL;
}

static void *with_gh_getaddrinfo(void *arg) {
    struct addrinfo *res = NULL;
    (void)arg;
    if (gh_getaddrinfo("localhost", "80", NULL, &res) == GH_OK) freeaddrinfo(res);
    return NULL;
}

struct row {
    const char *what;
    gh_fn fn;
    int cooperative; /* what the seeds say: 1 yes, 0 no, -1 depends on the lookup */
};

int main(int argc, char **argv) {
    int monitor = 0, check = 0, wrong = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--monitor") == 0) monitor = 1;
        else if (strcmp(argv[i], "--check") == 0) check = 1;
        else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) seconds = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--monitor] [--seconds S] [--check]\n", argv[0]);
            return 2;
        }
    }
    if (!(seconds >= 0.2 && seconds <= 60)) {
        fprintf(stderr, "--seconds: between 0.2 and 60\n");
        return 2;
    }
    if (monitor && gh_monitor_start(0.1) != GH_OK) {
        fprintf(stderr, "cannot start the monitor\n");
        return 1;
    }
    const struct row rows[] = {
        {"gh_sleep()", with_gh_sleep, 1},
        {"usleep()", with_usleep, 0},
        {"CPU loop", cpu_loop, 0},
        {"CPU loop + gh_sleep(0)", cpu_loop_yielding, 1},
        {"getaddrinfo(\"localhost\")", with_getaddrinfo, -1},
        {"gh_getaddrinfo(\"localhost\")", with_gh_getaddrinfo, -1},
    };
    int expected = (int)(seconds / TICK);
    printf("one dot per %.0f ms of hub time; %.1f s per row (about %d dots if nothing blocks)\n",
           TICK * 1e3, seconds, expected);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        gh_greenlet t, w;
        gh_spawn_options o;
        memset(&o, 0, sizeof o);
        o.name = rows[i].what;
        printf("%-30s ", rows[i].what);
        fflush(stdout);
        stop_ticker = 0;
        dots = 0;
        double t0 = now();
        gh_spawn_options to;
        memset(&to, 0, sizeof to);
        to.name = "ticker";
        if (GH_SPAWN_EX(&t, ticker, NULL, &to) != GH_OK || GH_SPAWN_EX(&w, rows[i].fn, NULL, &o) != GH_OK)
            return 1;
        gh_join(w, GH_FOREVER, NULL);
        double took = now() - t0;
        stop_ticker = 1;
        gh_join(t, GH_FOREVER, NULL);
        gh_release(w);
        gh_release(t);
        int could = (int)(took / TICK); /* dots the ticker would print if nothing blocked */
        int coop = dots >= could / 2;
        printf("%*s %2d dots in %4.0f ms: %s\n", expected + 2 - dots > 0 ? expected + 2 - dots : 0, "", dots,
               took * 1e3, could < 2 ? "too quick to tell" : coop ? "cooperative" : "BLOCKED THE HUB");
        if (could >= 2 && rows[i].cooperative >= 0 && coop != rows[i].cooperative) wrong++;
        if (monitor) gh_sleep(0.15); /* let the monitor's end-of-blockage line come out */
    }
    gh_monitor_stop();
    gh_hub_destroy();
    if (check && wrong) {
        fprintf(stderr, "%d row(s) did not behave as the seeds say\n", wrong);
        return 1;
    }
    return 0;
}

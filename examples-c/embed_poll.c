/* embed_poll.c — greenhub driven from someone else's main loop.
 *
 * The program's main loop is a plain poll(2) loop — the kind GLib, Qt or libuv own in a
 * real program. It watches its own sources (stdin, and a timerfd ticking every 15 ms)
 * and, beside them, greenhub's backend fd; before each poll it asks greenhub how long
 * it may sleep (gh_hub_backend_timeout), and after each poll it lets greenhub run one
 * iteration (gh_hub_run_once(0)). Greenlets, timers and greenhub IO all progress that
 * way. With the "poll" backend there is no backend fd: the host then hands its wait to
 * greenhub (gh_hub_run_once(timeout)) after polling its own fds without waiting.
 *
 * Usage: embed_poll [--ticks N]
 *   Runs until a greenlet has counted N ticks of gh_sleep(0.01), a greenhub timer has
 *   fired N times, the host's timerfd has fired N times and stdin is at EOF (or not
 *   readable). Lines read from stdin are echoed with a "host:" prefix.
 *
 * The test suite smoke-runs it with the arguments below (stdin is /dev/null):
 */
// smoke: --ticks 5
#include <greenhub.h>

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

static int ticks_wanted = 5;
static int greenlet_ticks, timer_ticks;

static void *ticker(void *arg) {
    (void)arg;
    while (greenlet_ticks < ticks_wanted) {
        int rc = gh_sleep(0.01);
        if (rc != GH_OK) return (void *)gh_err_name(rc);
        printf("greenlet: tick %d\n", ++greenlet_ticks);
    }
    return NULL;
}

static void on_timer(gh_watcher w, int revents, void *arg) {
    (void)revents;
    (void)arg;
    printf("greenhub timer: tick %d\n", ++timer_ticks);
    if (timer_ticks >= ticks_wanted) gh_watcher_stop(w);
}

int main(int argc, char **argv) {
    struct itimerspec its = {{0, 15000000}, {0, 15000000}};
    int host_ticks = 0, stdin_open = 1, hub_fd, tfd, rc, more = 1;
    gh_greenlet g;
    gh_watcher t;
    void *res = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--ticks") == 0 && i + 1 < argc) ticks_wanted = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--ticks N]\n", argv[0]);
            return 2;
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    if ((rc = gh_spawn(&g, ticker, NULL)) != GH_OK || (rc = gh_timer_new(&t, 0.01, 0.01)) != GH_OK ||
        (rc = gh_watcher_start(t, on_timer, NULL)) != GH_OK) {
        fprintf(stderr, "greenhub: %s\n", gh_strerror(rc));
        return 1;
    }
    tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (tfd < 0 || timerfd_settime(tfd, 0, &its, NULL) != 0) {
        perror("timerfd");
        return 1;
    }
    hub_fd = gh_hub_backend_fd(); /* GH_ENOTSUP (< 0) under the "poll" backend */
    printf("host loop: greenhub backend %s, backend fd %s\n", gh_hub_backend(),
           hub_fd >= 0 ? "polled by the host" : "none (greenhub waits itself)");

    while (more || host_ticks < ticks_wanted || stdin_open) {
        struct pollfd pf[3];
        int n = 0, ms;
        double hub_timeout = more ? gh_hub_backend_timeout() : GH_FOREVER;
        /* round up, so the host never wakes just before the hub is due */
        ms = hub_timeout < 0 ? -1 : (int)(hub_timeout * 1000) + (hub_timeout * 1000 > (int)(hub_timeout * 1000));
        pf[n++] = (struct pollfd){.fd = tfd, .events = POLLIN};
        if (stdin_open) pf[n++] = (struct pollfd){.fd = 0, .events = POLLIN};
        if (hub_fd >= 0 && more) pf[n++] = (struct pollfd){.fd = hub_fd, .events = POLLIN};
        if (poll(pf, (nfds_t)n, hub_fd >= 0 || !more ? ms : 0) < 0) {
            perror("poll");
            return 1;
        }
        if (pf[0].revents & POLLIN) {
            unsigned long long expirations;
            if (read(tfd, &expirations, sizeof expirations) == (ssize_t)sizeof expirations &&
                host_ticks < ticks_wanted)
                printf("host timerfd: tick %d\n", ++host_ticks);
        }
        if (stdin_open && (pf[1].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL))) {
            char line[256];
            ssize_t len = read(0, line, sizeof line - 1);
            if (len <= 0) stdin_open = 0;
            else {
                line[len] = 0;
                printf("host: %s", line);
            }
        }
        if (more) {
            /* one greenhub iteration: 0 = nothing left in its loop */
            rc = gh_hub_run_once(hub_fd >= 0 ? 0 : (ms < 0 ? 0.015 : ms / 1000.0));
            if (rc < 0) {
                fprintf(stderr, "gh_hub_run_once: %s\n", gh_strerror(rc));
                return 1;
            }
            more = rc;
        }
    }
    rc = gh_join(g, 0, &res);
    printf("done: greenlet %d, greenhub timer %d, host timerfd %d ticks\n", greenlet_ticks,
           timer_ticks, host_ticks);
    gh_release(g);
    gh_watcher_close(t);
    close(tfd);
    gh_hub_destroy();
    return rc == GH_OK && res == NULL && greenlet_ticks == ticks_wanted &&
                   timer_ticks == ticks_wanted ? 0 : 1;
}

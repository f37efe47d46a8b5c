/* backend_libev.c — a greenhub hub backend written on libev (eventlet's "pyevent" hub,
 * for C): the gh_backend plug-in interface of include/greenhub.h, in one file.
 *
 * Each hub gets its own libev loop (ev_loop_new; libev picks epoll on Linux). greenhub
 * hands the backend fds with GH_READ/GH_WRITE interest; the backend keeps one ev_io per
 * fd, and its poll runs the libev loop once (EVRUN_ONCE, with an ev_timer for the
 * timeout), collecting what the ev_io callbacks saw into greenhub's event array.
 * libev watches level-triggered, as the contract wants; EV_ERROR (libev gave up on an
 * fd, e.g. closed behind its back) is reported as GH_READ | GH_WRITE so the waiters
 * wake and see the error from their own syscall, and greenhub's next modify re-arms it.
 * It leaves backend_fd NULL: libev applies interest changes lazily, inside ev_run, so
 * its epoll fd is not a faithful "readable when there is work" fd for a host loop
 * (gh_hub_backend_fd is GH_ENOTSUP; gh_hub_run_once still embeds).
 *
 * Built two ways:
 *   cc -O2 -shared -fPIC -DGH_BACKEND_LIBEV_PLUGIN backend_libev.c -o libgh_backend_libev.so -lev
 *       a plug-in: any greenhub program runs on it, unchanged, with
 *       GREENHUB_BACKEND_PLUGIN=./libgh_backend_libev.so GREENHUB_BACKEND=libev
 *       (greenhub dlopen()s the file and registers what gh_backend_plugin() returns;
 *       scripts/test_libev.sh runs the core C test files that way, in CI)
 *   cc -O2 backend_libev.c -o backend_libev -lgreenhub -lev
 *       this program: registers the backend with gh_backend_register, makes it this
 *       thread's hub backend with gh_hub_configure, and runs a ping-pong between two
 *       greenlets over a socketpair (--rounds N, default 10000), printing the rate.
 *
 * Needs libev (Debian: apt-get install libev-dev).
 */
// smoke: --rounds 2000
// ldflags: -lev
#include <greenhub.h>

#include <errno.h>
#include <ev.h>
#include <stdlib.h>
#include <string.h>

/* ---- the backend --------------------------------------------------------------- */

struct lev_io {
    ev_io io;
    struct lev *owner;
};

struct lev {
    struct ev_loop *loop;
    struct lev_io **ios; /* by fd; allocated once per fd number, never moved (libev links them) */
    int nios;
    ev_timer timer;
    gh_backend_event *out; /* the poll in progress: where the callbacks write */
    int cap, n;
};

static int lev_events(int ev) {
    return ((ev & GH_READ) ? EV_READ : 0) | ((ev & GH_WRITE) ? EV_WRITE : 0);
}

static void lev_io_cb(struct ev_loop *loop, ev_io *w, int revents) {
    struct lev *s = ((struct lev_io *)w)->owner;
    int e = 0;
    (void)loop;
    if (revents & EV_READ) e |= GH_READ;
    if (revents & EV_WRITE) e |= GH_WRITE;
    if (revents & EV_ERROR) e = GH_READ | GH_WRITE;
    /* No room: level-triggered, it comes back at the next poll. */
    if (e && s->out && s->n < s->cap) {
        s->out[s->n].fd = w->fd;
        s->out[s->n].events = e;
        s->n++;
    }
}

static void lev_timer_cb(struct ev_loop *loop, ev_timer *w, int revents) {
    (void)loop;
    (void)w;
    (void)revents; /* only there to end EVRUN_ONCE in time */
}

static int lev_create(void *arg, void **state) {
    struct lev *s = (struct lev *)calloc(1, sizeof *s);
    (void)arg;
    if (!s) return -ENOMEM;
    /* No LIBEV_FLAGS from the environment, and hands off the signal mask. */
    s->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOENV | EVFLAG_NOSIGMASK);
    if (!s->loop) {
        free(s);
        return -ENOMEM;
    }
    ev_timer_init(&s->timer, lev_timer_cb, 0., 0.);
    *state = s;
    return 0;
}

static void lev_free(struct lev *s) {
    int i;
    for (i = 0; i < s->nios; i++) free(s->ios[i]);
    free(s->ios);
    free(s);
}

static void lev_destroy(void *state) {
    struct lev *s = (struct lev *)state;
    ev_loop_destroy(s->loop); /* stops nothing by itself: the watchers die with the memory */
    lev_free(s);
}

/* In a forked child: ev_loop_destroy closes this process's copy of the epoll fd and
 * frees; it makes no epoll_ctl call, so the parent's epoll set is untouched. */
static void lev_fork_child(void *state) { lev_destroy(state); }

static int lev_add(void *state, int fd, int events) {
    struct lev *s = (struct lev *)state;
    struct lev_io *w;
    if (fd >= s->nios) {
        int n = s->nios ? s->nios : 64;
        struct lev_io **p;
        while (n <= fd) n *= 2;
        p = (struct lev_io **)realloc(s->ios, (size_t)n * sizeof *p);
        if (!p) return -ENOMEM;
        memset(p + s->nios, 0, (size_t)(n - s->nios) * sizeof *p);
        s->ios = p;
        s->nios = n;
    }
    w = s->ios[fd];
    if (!w) {
        w = (struct lev_io *)malloc(sizeof *w);
        if (!w) return -ENOMEM;
        w->owner = s;
        s->ios[fd] = w;
    }
    ev_io_init(&w->io, lev_io_cb, fd, lev_events(events));
    if (events) ev_io_start(s->loop, &w->io);
    return 0;
}

static int lev_modify(void *state, int fd, int events) {
    struct lev *s = (struct lev *)state;
    ev_io *w = &s->ios[fd]->io; /* greenhub only modifies fds it added */
    ev_io_stop(s->loop, w);
    /* ev_io_set also makes libev re-check the fd with the kernel: a number closed and
     * reused behind greenhub's back gets the new file registered. */
    ev_io_set(w, fd, lev_events(events));
    if (events) ev_io_start(s->loop, w);
    return 0;
}

static int lev_remove(void *state, int fd) {
    struct lev *s = (struct lev *)state;
    ev_io_stop(s->loop, &s->ios[fd]->io);
    return 0;
}

static int lev_poll(void *state, gh_backend_event *events, int capacity, int timeout_ms) {
    struct lev *s = (struct lev *)state;
    s->out = events;
    s->cap = capacity;
    s->n = 0;
    if (timeout_ms == 0) {
        ev_run(s->loop, EVRUN_NOWAIT);
    } else {
        /* libev's cached time is from its last iteration, possibly long ago: the
         * timer must count from now. */
        ev_now_update(s->loop);
        if (timeout_ms > 0) {
            /* 1 us short: libev rounds its epoll_wait timeout up to whole ms, and
             * 0.005 * 1e3 is 5.000000000000001 there, which would sleep 6 ms. */
            ev_timer_set(&s->timer, timeout_ms / 1000. - 1e-6, 0.);
            ev_timer_start(s->loop, &s->timer);
        }
        ev_run(s->loop, EVRUN_ONCE);
        ev_timer_stop(s->loop, &s->timer);
    }
    s->out = NULL;
    return s->n;
}

static const gh_backend LIBEV_BACKEND = {
    GH_BACKEND_VERSION, "libev", NULL, lev_create, lev_destroy, lev_add, lev_modify,
    lev_remove, lev_poll, NULL /* backend_fd: see the top */, lev_fork_child,
};

#ifdef GH_BACKEND_LIBEV_PLUGIN

/* The entry GREENHUB_BACKEND_PLUGIN looks for. */
const gh_backend *gh_backend_plugin(void);
const gh_backend *gh_backend_plugin(void) { return &LIBEV_BACKEND; }

#else

/* ---- the program: a ping-pong on the libev backend -------------------------------- */

#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <time.h>

static long rounds = 10000;

/* Reads a byte, writes it back, `rounds` times. */
static void *pong(void *arg) {
    int fd = (int)(intptr_t)arg;
    long i;
    char c;
    for (i = 0; i < rounds; i++) {
        if (gh_read(fd, &c, 1, 5.0) != 1 || gh_write(fd, &c, 1, 5.0) != 1)
            return (void *)(intptr_t)1;
    }
    return NULL;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    gh_hub_config cfg;
    gh_greenlet g;
    void *r = NULL;
    int sp[2], rc, i;
    long k;
    double t0, dt;
    char c = 'x';
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--rounds") && i + 1 < argc) {
            rounds = atol(argv[++i]);
        } else {
            fprintf(stderr, "usage: %s [--rounds N]\n", argv[0]);
            return 2;
        }
    }
    rc = gh_backend_register(&LIBEV_BACKEND);
    if (rc != GH_OK) {
        fprintf(stderr, "gh_backend_register: %s\n", gh_err_name(rc));
        return 1;
    }
    gh_hub_config_init(&cfg);
    cfg.backend = "libev";
    rc = gh_hub_configure(&cfg);
    if (rc != GH_OK) {
        fprintf(stderr, "gh_hub_configure: %s\n", gh_err_name(rc));
        return 1;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0) return 1;
    rc = gh_spawn(&g, pong, (void *)(intptr_t)sp[1]);
    if (rc != GH_OK) return 1;
    t0 = now();
    for (k = 0; k < rounds; k++) {
        if (gh_write(sp[0], &c, 1, 5.0) != 1 || gh_read(sp[0], &c, 1, 5.0) != 1) {
            fprintf(stderr, "ping-pong failed at round %ld\n", k);
            return 1;
        }
    }
    dt = now() - t0;
    rc = gh_join(g, 5.0, &r);
    if (rc != GH_OK || r != NULL) return 1;
    printf("backend %s: %ld round trips in %.3f s (%.2f us each)\n", gh_hub_backend(), rounds,
           dt, rounds ? dt * 1e6 / rounds : 0.0);
    gh_release(g);
    gh_close(sp[0]);
    gh_close(sp[1]);
    return gh_hub_destroy() == GH_OK ? 0 : 1;
}

#endif

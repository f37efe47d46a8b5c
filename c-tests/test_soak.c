/* test_soak.c — the soak test of FAULTS.md 25 (issue 8 "Soak"): long runs that must
 * leave nothing behind. Two cases, each in its own forked child with the harness's
 * wall-clock bound:
 *
 *   spawn_join_cycles  10^6 spawn/join cycles (batches of 1..16 greenlets: plain,
 *                      yielding, named with their own stack size, killed before they
 *                      start, killed while parked on an event);
 *   echo_load          an in-process echo server (an accept greenlet, one handler
 *                      greenlet per connection, each read under a gh_timeout idle
 *                      deadline) under load from 32 client greenlets, with random
 *                      disconnects (a client that writes and closes without reading, an
 *                      idle client the server times out), client-side gh_timeout
 *                      expiries, and kills of random client and server greenlets.
 *
 * Both take a sample of the process's fd count, memory-mapping count and RSS every
 * SOAK_INTERVAL operations (a spawn/join cycle; an echoed request or a connection),
 * the first one after one interval of warm-up, and fail when a later sample grows:
 * fd and mapping counts must stay exactly at the first sample; RSS may exceed it by at
 * most RSS_TOLERANCE_KB (malloc's arenas settle slowly). The echo load pauses for each
 * sample: clients finish their connection and end, handlers see the close and end,
 * so the counts are taken with no connection open. Each case prints its start and end
 * figures ("soak: ... fds A -> B, maps A -> B, rss A -> B KiB").
 *
 * Scale: GH_SOAK_SCALE (a factor, default 1; under valgrind default 0.05) multiplies
 * the operation counts: 1 = 10^6 cycles and 4 * 10^5 echo operations, a few seconds
 * natively. Below 1 the sampling interval shrinks with it (at least 1,000; the echo
 * load runs at least 20,000 operations, so every fault of its mix happens). Under
 * valgrind only the fd count is checked (valgrind's own heap moves the mapping count
 * and RSS). scripts/soak.sh runs the full scale (GH_SOAK_SCALE=20 by default, minutes).
 *
 * The echo traffic runs over an AF_UNIX stream socket (an abstract address): TCP would
 * leave one TIME_WAIT socket per connection and run out of ports at full scale.
 */
#include "harness.h"

#include <math.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

#ifndef GH_EPIPE
#define GH_EPIPE (-EPIPE)
#endif
#ifndef GH_ECONNRESET
#define GH_ECONNRESET (-ECONNRESET)
#endif

#define RSS_TOLERANCE_KB 1024L /* the stated RSS tolerance over the first sample */
/* Mappings may grow by a couple after warm-up without a leak: a new 64 MiB stack region
 * when the number of live greenlets peaks above any earlier sample, or a buffer crossing
 * malloc's mmap threshold (seen once under the poll backend on a loaded machine: 32 -> 33
 * after 200k operations). A leak grows them without bound: the last sample still must
 * stay within this. */
#define MAPS_TOLERANCE 2L

/* ---- scale, samples ------------------------------------------------------ */

static double soak_scale(void) {
    const char *e = getenv("GH_SOAK_SCALE");
    double s = e && *e ? strtod(e, NULL) : (gh_test_under_memory_tool() ? 0.05 : 1.0);
    if (!(s > 0) || s > 1e6) {
        fprintf(stderr, "GH_SOAK_SCALE must be a number > 0 (got \"%s\")\n", e ? e : "");
        exit(2);
    }
    return s;
}

static long soak_interval(double scale) {
    long n = scale >= 1 ? 100000 : (long)(100000 * scale);
    return n < 1000 ? 1000 : n;
}

struct sample {
    int fds;
    long maps, rss_kb;
};

struct tracker {
    const char *what;
    int samples, check_maps_rss;
    struct sample first, last;
    long rss_max;
};

static struct sample take_sample(void) {
    struct sample s;
    s.fds = gh_test_fd_count();
    s.maps = gh_test_map_count();
    s.rss_kb = gh_test_rss_kb();
    return s;
}

/* One sample after `ops` operations: the first is the baseline, later ones must not
 * grow beyond it. */
static void track(struct tracker *t, long ops) {
    struct sample s = take_sample();
    ASSERT_TRUE(s.fds >= 0 && s.maps > 0 && s.rss_kb > 0);
    if (t->samples++ == 0) {
        t->first = s;
        t->rss_max = s.rss_kb;
    } else {
        if (s.fds != t->first.fds || (t->check_maps_rss && s.maps > t->first.maps + MAPS_TOLERANCE))
            printf("soak: %s grew after %ld ops: fds %d -> %d, maps %ld -> %ld\n", t->what,
                   ops, t->first.fds, s.fds, t->first.maps, s.maps);
        ASSERT_EQ(s.fds, t->first.fds);
        if (t->check_maps_rss) {
            ASSERT_LE(s.maps, t->first.maps + MAPS_TOLERANCE);
            ASSERT_LE(s.rss_kb, t->first.rss_kb + RSS_TOLERANCE_KB);
        }
    }
    if (s.rss_kb > t->rss_max) t->rss_max = s.rss_kb;
    t->last = s;
}

static void report(const struct tracker *t, long ops) {
    printf("soak: %s: %ld ops, %d samples: fds %d -> %d, maps %ld -> %ld, "
           "rss %ld -> %ld KiB (max %ld; tolerance %ld)%s\n",
           t->what, ops, t->samples, t->first.fds, t->last.fds, t->first.maps, t->last.maps,
           t->first.rss_kb, t->last.rss_kb, t->rss_max, RSS_TOLERANCE_KB,
           t->check_maps_rss ? "" : " [valgrind: maps and rss not checked]");
}

/* splitmix64: reproducible pseudo-random numbers. */
static uint64_t rng = 0x5EED5EED12345678ull;
static uint64_t next_random(void) {
    uint64_t z = (rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static unsigned rand_below(unsigned n) { return (unsigned)(next_random() % n); }

/* ---- spawn/join cycles (FAULTS 25) --------------------------------------- */

static void *return_arg(void *arg) { return arg; }

static void *yield_then_return(void *arg) {
    if (gh_sleep(0) != GH_OK) return NULL;
    return arg;
}

static gh_event park_event;
static long parked_canceled;
static void *park_on_event(void *arg) {
    int rc = gh_event_wait(park_event, GH_FOREVER);
    if (rc == GH_ECANCELED) parked_canceled++;
    return arg;
}

#define BATCH_MAX 16

/* 10^6 * scale greenlets spawned, run (or killed) and joined, in batches of 1..16 of
 * five kinds, each result checked; counts sampled every interval. FAULTS 25. */
TEST(spawn_join_cycles) {
    double scale = soak_scale();
    long total = (long)(1000000 * scale), interval = soak_interval(scale);
    long done = 0, next_sample = interval, killed_new = 0, killed_parked = 0;
    struct tracker t = {"spawn/join cycles", 0, !gh_test_under_memory_tool(), {0, 0, 0}, {0, 0, 0}, 0};
    int fd0 = gh_test_fd_count();

    if (total < 3 * interval) total = 3 * interval;
    ASSERT_OK(gh_event_new(&park_event));
    while (done < total) {
        gh_greenlet gs[BATCH_MAX];
        int kind[BATCH_MAX];
        unsigned n = 1 + rand_below(BATCH_MAX), i;
        gh_spawn_options opts = {0, "soak"};
        for (i = 0; i < n; i++) {
            void *arg = (void *)(uintptr_t)(done + i + 1);
            kind[i] = (int)rand_below(5);
            switch (kind[i]) {
            case 0: ASSERT_OK(gh_spawn(&gs[i], return_arg, arg)); break;
            case 1: ASSERT_OK(gh_spawn(&gs[i], yield_then_return, arg)); break;
            case 2:
                opts.stack_size = (size_t)(16 + rand_below(3) * 48) * 1024; /* 16/64/112 KiB */
                ASSERT_OK(GH_SPAWN_EX(&gs[i], return_arg, arg, &opts));
                break;
            case 3: /* killed before it starts: it never runs, its result is NULL */
                ASSERT_OK(gh_spawn(&gs[i], return_arg, arg));
                ASSERT_OK(gh_kill(gs[i], 0));
                ASSERT_EQ(gh_greenlet_state(gs[i]), GH_STATE_DEAD);
                killed_new++;
                break;
            default: ASSERT_OK(gh_spawn(&gs[i], park_on_event, arg)); break;
            }
        }
        ASSERT_OK(gh_sleep(0)); /* every new one runs once (and parks or finishes) */
        for (i = 0; i < n; i++) {
            void *r = (void *)1;
            void *want = (void *)(uintptr_t)(done + i + 1);
            if (kind[i] == 4) { /* parked on the event: kill it and wait for its death */
                ASSERT_EQ(gh_greenlet_state(gs[i]), GH_STATE_WAITING);
                ASSERT_OK(gh_kill(gs[i], GH_FOREVER));
                killed_parked++;
            }
            ASSERT_OK(gh_join(gs[i], GH_FOREVER, &r));
            ASSERT_TRUE(r == (kind[i] == 3 ? NULL : want));
            ASSERT_OK(gh_release(gs[i]));
        }
        done += n;
        if (done >= next_sample) {
            track(&t, done);
            next_sample += interval;
        }
    }
    ASSERT_EQ(parked_canceled, killed_parked); /* every parked kill was seen as ECANCELED */
    ASSERT_TRUE(killed_new > 0 && killed_parked > 0);
    ASSERT_TRUE(t.samples >= 3);
    report(&t, done);
    ASSERT_OK(gh_event_close(park_event));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fd0);
}

/* ---- echo server under load (FAULTS 25, issue 8 "Soak") ------------------ */

#define NCLIENTS 32
#define NHANDLERS 256       /* handler slots (at most NCLIENTS connections at once) */
#define SERVER_IDLE 0.05    /* a handler's gh_timeout for each read */
#define CLIENT_DEADLINE 0.001 /* a client's gh_timeout on a read nothing will answer */
#define MAX_REQUEST 2048

struct slot {
    int used;
    gh_greenlet g;
    int fd, closed; /* a handler's connection, and whether the handler closed it */
};

static struct slot handlers[NHANDLERS], clients[NCLIENTS];
static struct sockaddr_un server_addr;
static socklen_t server_addr_len;
static int paused; /* clients end after their current connection */

static struct {
    long ops;                   /* echoed requests + connections */
    long requests, bytes, connects, accepts;
    long client_killed, server_killed;   /* greenlets that saw GH_ECANCELED */
    long kills_sent;
    long client_timeouts;       /* client gh_timeout expiries (nothing was to come) */
    long server_timeouts;       /* handler idle gh_timeout expiries: it closes */
    long aborts;                /* clients that wrote and closed without reading */
    long idlers, idler_eofs;    /* clients that send nothing until the server closes */
    long server_eofs, server_peer_errors; /* handler saw EOF / EPIPE or ECONNRESET */
    long client_cut;            /* a client's connection cut by the server (EOF/reset) */
} st;

/* One connection: echo until EOF, an error, a kill or the idle deadline. */
static void *handler(void *arg) {
    struct slot *s = (struct slot *)arg;
    char buf[4096];
    for (;;) {
        gh_timeout t;
        ssize_t n, w;
        ASSERT_OK(gh_timeout_start(&t, SERVER_IDLE));
        n = gh_read(s->fd, buf, sizeof buf, GH_FOREVER);
        ASSERT_OK(gh_timeout_cancel(t));
        if (n == 0) {
            st.server_eofs++;
            break;
        }
        if (n == GH_ETIMEDOUT) {
            st.server_timeouts++;
            break;
        }
        if (n == GH_ECANCELED) {
            st.server_killed++;
            break;
        }
        if (n == GH_ECONNRESET) {
            st.server_peer_errors++;
            break;
        }
        ASSERT_TRUE(n > 0); /* any other code is a bug */
        w = gh_write(s->fd, buf, (size_t)n, GH_FOREVER);
        if (w == GH_ECANCELED) {
            st.server_killed++;
            break;
        }
        if (w == GH_EPIPE || w == GH_ECONNRESET) {
            st.server_peer_errors++;
            break;
        }
        ASSERT_EQ(w, n);
    }
    ASSERT_OK(gh_close(s->fd));
    s->closed = 1;
    return NULL;
}

static void *acceptor(void *arg) {
    int lfd = (int)(intptr_t)arg;
    for (;;) {
        int fd = gh_accept(lfd, NULL, NULL, GH_FOREVER), i;
        if (fd == GH_ECANCELED) return NULL; /* the test's end */
        ASSERT_TRUE(fd >= 0);
        st.accepts++;
        st.ops++;
        for (i = 0; i < NHANDLERS && handlers[i].used; i++) {
        }
        ASSERT_TRUE(i < NHANDLERS);
        handlers[i].used = 1;
        handlers[i].fd = fd;
        handlers[i].closed = 0;
        ASSERT_OK(gh_spawn(&handlers[i].g, handler, &handlers[i]));
    }
}

/* Kills a random client or handler other than the caller (a used slot's handle is
 * not released yet: gh_kill must succeed, also on one that is already dead). */
static void kill_someone(void) {
    struct slot *s;
    unsigned i = rand_below(NCLIENTS + NHANDLERS);
    s = i < NCLIENTS ? &clients[i] : &handlers[i - NCLIENTS];
    if (!s->used || s->g.id == gh_current().id) return;
    ASSERT_OK(gh_kill(s->g, 0));
    st.kills_sent++;
}

/* Fills buf with a pattern only this request produces. */
static void fill(unsigned char *buf, size_t len, uint64_t seed) {
    size_t i;
    for (i = 0; i < len; i++) buf[i] = (unsigned char)((seed >> (8 * (i % 8))) + i * 31u);
}

/* Reads exactly len bytes; returns len, or 0 / a code when the connection ended. */
static ssize_t read_exactly(int fd, unsigned char *buf, size_t len) {
    size_t got = 0;
    while (got < len) {
        ssize_t n = gh_read(fd, buf + got, len - got, GH_FOREVER);
        if (n <= 0) return n;
        got += (size_t)n;
    }
    return (ssize_t)len;
}

/* What a client does with a code that ended its connection early: a kill ends the
 * client; a cut by the server (EOF, reset, EPIPE) is counted. Returns 1 if killed. */
static int connection_ended(ssize_t rc) {
    if (rc == GH_ECANCELED) {
        st.client_killed++;
        return 1;
    }
    ASSERT_TRUE(rc == 0 || rc == GH_ECONNRESET || rc == GH_EPIPE);
    st.client_cut++;
    return 0;
}

static void *client(void *arg) {
    struct slot *self = (struct slot *)arg;
    unsigned char out[MAX_REQUEST], in[MAX_REQUEST];
    while (!paused) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), rc, killed = 0;
        unsigned mode = rand_below(100), nreq, k;
        ASSERT_TRUE(fd >= 0);
        rc = gh_connect(fd, (struct sockaddr *)&server_addr, server_addr_len, GH_FOREVER);
        if (rc == GH_ECANCELED) {
            st.client_killed++;
            ASSERT_OK(gh_close(fd));
            break;
        }
        ASSERT_OK(rc);
        st.connects++;
        st.ops++;
        if (mode < 4) { /* idle: send nothing; the server's idle deadline closes it */
            ssize_t n = gh_read(fd, in, 1, GH_FOREVER);
            st.idlers++;
            if (n == GH_ECANCELED) killed = 1, st.client_killed++;
            else {
                ASSERT_TRUE(n == 0 || n == GH_ECONNRESET);
                st.idler_eofs++;
            }
        } else if (mode < 10) { /* abrupt: write a request, close without reading */
            size_t len = 1 + rand_below(MAX_REQUEST);
            ssize_t w;
            fill(out, len, next_random());
            w = gh_write(fd, out, len, GH_FOREVER);
            if (w == GH_ECANCELED) killed = 1, st.client_killed++;
            else if (w != (ssize_t)len) (void)connection_ended(w);
            else st.aborts++;
        } else { /* a session of 1..40 requests, each echo checked byte for byte */
            nreq = 1 + rand_below(40);
            for (k = 0; k < nreq && !killed; k++) {
                size_t len = 1 + rand_below(MAX_REQUEST);
                ssize_t w, r;
                if (rand_below(50) == 0) { /* a deadline on a read nothing answers */
                    gh_timeout t;
                    ASSERT_OK(gh_timeout_start(&t, CLIENT_DEADLINE));
                    r = gh_read(fd, in, 1, GH_FOREVER);
                    ASSERT_OK(gh_timeout_cancel(t));
                    if (r == GH_ETIMEDOUT) st.client_timeouts++;
                    else {
                        killed = connection_ended(r);
                        break;
                    }
                }
                if (rand_below(200) == 0) kill_someone();
                fill(out, len, next_random());
                w = gh_write(fd, out, len, GH_FOREVER);
                if (w != (ssize_t)len) {
                    killed = connection_ended(w);
                    break;
                }
                r = read_exactly(fd, in, len);
                if (r != (ssize_t)len) {
                    killed = connection_ended(r);
                    break;
                }
                ASSERT_TRUE(memcmp(in, out, len) == 0); /* nothing lost or mixed up */
                st.requests++;
                st.bytes += (long)len;
                st.ops++;
            }
        }
        ASSERT_OK(gh_close(fd));
        if (killed) break;
    }
    (void)self;
    return NULL;
}

/* Joins and releases every dead greenlet of `slots`; returns how many are alive.
 * A handler killed before it started never ran: its connection is closed here. */
static int reap(struct slot *slots, int n) {
    int i, alive = 0;
    for (i = 0; i < n; i++) {
        if (!slots[i].used) continue;
        if (gh_greenlet_state(slots[i].g) == GH_STATE_DEAD) {
            void *r = (void *)1;
            ASSERT_OK(gh_join(slots[i].g, 0, &r));
            if (slots == handlers && !slots[i].closed) {
                ASSERT_TRUE(r == NULL); /* it never ran */
                ASSERT_OK(gh_close(slots[i].fd));
                st.server_killed++;
            }
            ASSERT_OK(gh_release(slots[i].g));
            slots[i].used = 0;
        } else {
            alive++;
        }
    }
    return alive;
}

/* An echo server greenlet per connection under load from NCLIENTS client greenlets,
 * with random disconnects, gh_timeout expiries on both sides and random kills; every
 * echoed byte checked; counts sampled (with no connection open) every interval.
 * FAULTS 25 and issue 8 "Soak". */
TEST(echo_load) {
    double scale = soak_scale();
    long total = (long)(400000 * scale), interval = soak_interval(scale), target;
    struct tracker t = {"echo load", 0, !gh_test_under_memory_tool(), {0, 0, 0}, {0, 0, 0}, 0};
    int fd0 = gh_test_fd_count(), lfd, i;
    gh_greenlet acc;

    if (total < 4 * interval) total = 4 * interval;
    if (total < 20000) total = 20000; /* enough connections for every fault of the mix */
    memset(&server_addr, 0, sizeof server_addr);
    server_addr.sun_family = AF_UNIX;
    /* abstract address: sun_path[0] = 0, nothing in the file system */
    snprintf(server_addr.sun_path + 1, sizeof server_addr.sun_path - 1, "greenhub-soak-%d",
             (int)getpid());
    server_addr_len =
        (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(server_addr.sun_path + 1));
    lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_TRUE(lfd >= 0);
    ASSERT_OK(bind(lfd, (struct sockaddr *)&server_addr, server_addr_len));
    ASSERT_OK(listen(lfd, 1024));
    ASSERT_OK(gh_spawn(&acc, acceptor, (void *)(intptr_t)lfd));

    for (target = interval; st.ops < total; target += interval) {
        paused = 0;
        while (!paused || reap(clients, NCLIENTS) > 0) {
            reap(handlers, NHANDLERS);
            if (st.ops >= target) paused = 1;
            for (i = 0; i < NCLIENTS && !paused; i++)
                if (!clients[i].used) {
                    clients[i].used = 1;
                    ASSERT_OK(gh_spawn(&clients[i].g, client, &clients[i]));
                }
            if (reap(clients, NCLIENTS) > 0 || !paused) ASSERT_OK(gh_sleep(0.001));
        }
        /* every client closed its connection: the handlers see EOF (or time out) */
        while (reap(handlers, NHANDLERS) > 0) ASSERT_OK(gh_sleep(0.001));
        track(&t, st.ops);
    }
    ASSERT_OK(gh_kill(acc, GH_FOREVER));
    ASSERT_OK(gh_join(acc, 0, NULL));
    ASSERT_OK(gh_release(acc));
    ASSERT_OK(gh_close(lfd));

    printf("soak: echo load: %ld requests (%ld bytes), %ld connections (%ld accepted), "
           "%ld kills sent (%ld clients and %ld handlers saw GH_ECANCELED), %ld client "
           "timeouts, %ld server idle timeouts, %ld idle clients, %ld aborts, %ld server "
           "EOFs, %ld peer errors, %ld client connections cut by the server\n",
           st.requests, st.bytes, st.connects, st.accepts, st.kills_sent, st.client_killed,
           st.server_killed, st.client_timeouts, st.server_timeouts, st.idlers, st.aborts,
           st.server_eofs, st.server_peer_errors, st.client_cut);
    report(&t, st.ops);
    /* every connection was accepted and served to its end */
    ASSERT_EQ(st.accepts, st.connects);
    ASSERT_EQ(st.server_eofs + st.server_timeouts + st.server_killed + st.server_peer_errors,
              st.accepts);
    /* a client only loses its connection when the server ended it: an idle deadline
     * or a kill (never data lost by the library) */
    ASSERT_LE(st.client_cut + st.idler_eofs, st.server_timeouts + st.server_killed);
    /* every fault of the mix happened */
    ASSERT_TRUE(st.client_timeouts > 0 && st.server_timeouts > 0 && st.aborts > 0);
    ASSERT_TRUE(st.client_killed > 0 && st.server_killed > 0);
    ASSERT_TRUE(t.samples >= 3);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(gh_test_fd_count(), fd0);
}

int main(int argc, char **argv) {
    TEST_INIT(argc, argv);
    RUN(spawn_join_cycles);
    RUN(echo_load);
    return TEST_DONE();
}

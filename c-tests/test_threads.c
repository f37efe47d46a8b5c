/* test_threads.c — cross-thread work: 8 threads with a hub each passing a token around
 * a ring through async watchers and through gh_hub_call_threadsafe; the errors of
 * gh_hub_call_threadsafe; wrong-thread calls with another live hub's handles; a thread
 * that exits with live greenlets and watchers frees its hub (valgrind clean, no fd
 * left); gh_async_send and gh_hub_call_threadsafe racing gh_hub_destroy (FAULTS 19);
 * 5000 greenlets parked on each of 4 threads, data handed between threads'
 * greenlets (scripts/tsan.sh runs this file under ThreadSanitizer).
 *
 * Build and run: see /work/brief/tests.md (links with -lpthread).
 */
#include "harness.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#define NTHREADS 8
#define ROUNDS 200

/* ---- ring through async watchers --------------------------------------- */

struct ring {
    pthread_barrier_t ready;
    gh_watcher async[NTHREADS];
    gh_hub_ref hub[NTHREADS];
    pthread_t tid[NTHREADS];
    int wakes[NTHREADS];
    int rc[NTHREADS];
    atomic_int hops;      /* token hops so far (call_threadsafe ring) */
    atomic_int wrong_thread; /* callbacks run outside their hub's thread */
    gh_watcher stop[NTHREADS];
};
static struct ring R;

struct slot {
    int i;
};
static struct slot SLOTS_[NTHREADS];

/* Thread i: waits ROUNDS times on its async watcher; after each wake sends the next
 * thread's (thread 0 starts the token). */
static void *ring_async_thread(void *arg) {
    int i = ((struct slot *)arg)->i, r, rc;
    rc = gh_async_new(&R.async[i]);
    R.rc[i] = rc;
    pthread_barrier_wait(&R.ready);
    if (rc != GH_OK) return NULL;
    if (i == 0) rc = gh_async_send(R.async[1]);
    for (r = 0; r < ROUNDS && rc == GH_OK; r++) {
        rc = gh_hub_wait(R.async[i]);
        if (rc != GH_OK) break;
        R.wakes[i]++;
        if (!(i == 0 && r == ROUNDS - 1)) rc = gh_async_send(R.async[(i + 1) % NTHREADS]);
    }
    pthread_barrier_wait(&R.ready); /* nobody sends to a closed watcher */
    if (rc == GH_OK) rc = gh_watcher_close(R.async[i]);
    if (rc == GH_OK) rc = gh_hub_destroy();
    R.rc[i] = rc;
    return NULL;
}

/* 8 threads, each with a hub, pass one token around a ring via gh_async_send for 200
 * rounds: every thread wakes exactly 200 times (no send lost, none doubled). */
TEST(ring_async_8_threads) {
    int i, fd0 = gh_test_fd_count();
    memset(&R, 0, sizeof R);
    pthread_barrier_init(&R.ready, NULL, NTHREADS);
    for (i = 0; i < NTHREADS; i++) {
        SLOTS_[i].i = i;
        ASSERT_OK(pthread_create(&R.tid[i], NULL, ring_async_thread, &SLOTS_[i]));
    }
    for (i = 0; i < NTHREADS; i++) ASSERT_OK(pthread_join(R.tid[i], NULL));
    for (i = 0; i < NTHREADS; i++) {
        ASSERT_OK(R.rc[i]);
        ASSERT_EQ(R.wakes[i], ROUNDS);
    }
    pthread_barrier_destroy(&R.ready);
    ASSERT_EQ(gh_test_fd_count(), fd0);
    ASSERT_OK(gh_hub_destroy());
}

/* ---- ring through gh_hub_call_threadsafe ------------------------------- */

static __thread int my_index = -1;
#define TOTAL_HOPS (NTHREADS * ROUNDS)

static void hop(void *arg) {
    int i = (int)(intptr_t)arg, h, k;
    if (my_index != i) atomic_fetch_add(&R.wrong_thread, 1);
    R.wakes[i]++;
    h = atomic_fetch_add(&R.hops, 1) + 1;
    if (h < TOTAL_HOPS) {
        int next = (i + 1) % NTHREADS;
        if (gh_hub_call_threadsafe(R.hub[next], hop, (void *)(intptr_t)next) != GH_OK)
            atomic_fetch_add(&R.wrong_thread, 1000);
    } else {
        for (k = 0; k < NTHREADS; k++) gh_async_send(R.stop[k]);
    }
}

static void *ring_call_thread(void *arg) {
    int i = ((struct slot *)arg)->i, rc;
    my_index = i;
    R.hub[i] = gh_hub_current();
    rc = gh_async_new(&R.stop[i]);
    R.rc[i] = rc != GH_OK ? rc : R.hub[i].id == 0 ? GH_EINTERNAL : GH_OK;
    pthread_barrier_wait(&R.ready);
    if (R.rc[i] != GH_OK) return NULL;
    if (i == 0) rc = gh_hub_call_threadsafe(R.hub[0], hop, (void *)(intptr_t)0);
    if (rc == GH_OK) rc = gh_hub_wait(R.stop[i]);
    pthread_barrier_wait(&R.ready); /* every hop done before any hub goes */
    if (rc == GH_OK) rc = gh_watcher_close(R.stop[i]);
    if (rc == GH_OK) rc = gh_hub_destroy();
    R.rc[i] = rc;
    return NULL;
}

/* The same ring with gh_hub_call_threadsafe: each hop runs in the thread of the hub it
 * was sent to, every thread runs exactly 200 hops, 1600 in all. */
TEST(ring_call_threadsafe_8_threads) {
    int i, fd0 = gh_test_fd_count();
    memset(&R, 0, sizeof R);
    atomic_init(&R.hops, 0);
    atomic_init(&R.wrong_thread, 0);
    pthread_barrier_init(&R.ready, NULL, NTHREADS);
    for (i = 0; i < NTHREADS; i++) {
        SLOTS_[i].i = i;
        ASSERT_OK(pthread_create(&R.tid[i], NULL, ring_call_thread, &SLOTS_[i]));
    }
    for (i = 0; i < NTHREADS; i++) ASSERT_OK(pthread_join(R.tid[i], NULL));
    for (i = 0; i < NTHREADS; i++) {
        ASSERT_OK(R.rc[i]);
        ASSERT_EQ(R.wakes[i], ROUNDS);
    }
    ASSERT_EQ(atomic_load(&R.hops), TOTAL_HOPS);
    ASSERT_EQ(atomic_load(&R.wrong_thread), 0);
    pthread_barrier_destroy(&R.ready);
    ASSERT_EQ(gh_test_fd_count(), fd0);
    ASSERT_OK(gh_hub_destroy());
}

/* ---- gh_hub_call_threadsafe: order and errors --------------------------- */

#define NCALLS 1000
static int order[NCALLS], norder;
static void record(void *arg) { order[norder++] = (int)(intptr_t)arg; }

static gh_hub_ref target;
static void *send_many(void *arg) {
    int i, bad = 0;
    (void)arg;
    for (i = 0; i < NCALLS; i++) bad += gh_hub_call_threadsafe(target, record, (void *)(intptr_t)i) != GH_OK;
    return (void *)(intptr_t)bad;
}

/* 1000 calls queued from another thread run in this hub's thread, in the order they
 * were queued, each once; the loop (sleeping in its poll) is woken to run them. */
TEST(call_threadsafe_fifo_from_other_thread) {
    pthread_t t;
    void *bad = (void *)1;
    int i;
    double end;
    target = gh_hub_current();
    ASSERT_NE(target.id, 0);
    ASSERT_OK(pthread_create(&t, NULL, send_many, NULL));
    end = gh_test_now() + 10;
    while (norder < NCALLS && gh_test_now() < end) ASSERT_OK(gh_sleep(0.05));
    ASSERT_OK(pthread_join(t, &bad));
    ASSERT_EQ((intptr_t)bad, 0);
    ASSERT_EQ(norder, NCALLS);
    for (i = 0; i < NCALLS; i++) ASSERT_EQ(order[i], i);
    ASSERT_OK(gh_hub_destroy());
}

/* To this thread's own hub: GH_OK, and it runs in the next iteration (one
 * gh_hub_run_once(0)), not inside the call. */
TEST(call_threadsafe_own_hub) {
    ASSERT_OK(gh_hub_call_threadsafe(gh_hub_current(), record, (void *)42));
    ASSERT_EQ(norder, 0);
    ASSERT_TRUE(gh_hub_run_once(0) >= 0);
    ASSERT_EQ(norder, 1);
    ASSERT_EQ(order[0], 42);
    ASSERT_OK(gh_hub_destroy());
}

static void *destroyed_hub_thread(void *arg) {
    gh_hub_ref *out = (gh_hub_ref *)arg;
    *out = gh_hub_current();
    gh_sleep(0);
    gh_hub_destroy();
    return NULL;
}
static void *exited_hub_thread(void *arg) {
    gh_hub_ref *out = (gh_hub_ref *)arg;
    *out = gh_hub_current();
    return NULL; /* hub destroyed with the thread */
}

/* gh_hub_call_threadsafe: zero ref, all-ones, random values, every one-bit flip of a
 * live ref (other than live refs), a greenlet/watcher id as a ref: GH_EBADHANDLE; NULL
 * fn: GH_EINVAL; the ref of a hub destroyed by its (live or exited) thread, and of this
 * thread's own previous hub: GH_EBADHANDLE, and no fn ever runs. */
TEST(call_threadsafe_errors) {
    gh_hub_ref zero = {0}, h, dead1, dead2, old, r;
    gh_watcher w;
    pthread_t t;
    int bit, i;
    old = gh_hub_current();
    ASSERT_OK(gh_hub_destroy());
    h = gh_hub_current();
    ASSERT_NE(h.id, old.id);
    ASSERT_OK(pthread_create(&t, NULL, destroyed_hub_thread, &dead1));
    ASSERT_OK(pthread_join(t, NULL));
    ASSERT_OK(pthread_create(&t, NULL, exited_hub_thread, &dead2));
    ASSERT_OK(pthread_join(t, NULL));
    ASSERT_NE(dead1.id, 0);
    ASSERT_NE(dead2.id, 0);

    ASSERT_CODE(gh_hub_call_threadsafe(zero, record, NULL), GH_EBADHANDLE);
    r.id = UINT64_MAX;
    ASSERT_CODE(gh_hub_call_threadsafe(r, record, NULL), GH_EBADHANDLE);
    for (bit = 0; bit < 64; bit++) {
        r.id = h.id ^ ((uint64_t)1 << bit); /* stale refs among these: refused too */
        ASSERT_CODE(gh_hub_call_threadsafe(r, record, NULL), GH_EBADHANDLE);
    }
    ASSERT_OK(gh_timer_new(&w, 10, 0));
    r.id = w.id;
    ASSERT_CODE(gh_hub_call_threadsafe(r, record, NULL), GH_EBADHANDLE);
    r.id = gh_main().id;
    ASSERT_CODE(gh_hub_call_threadsafe(r, record, NULL), GH_EBADHANDLE);
    ASSERT_CODE(gh_hub_call_threadsafe(h, NULL, NULL), GH_EINVAL);
    ASSERT_CODE(gh_hub_call_threadsafe(dead1, record, NULL), GH_EBADHANDLE);
    ASSERT_CODE(gh_hub_call_threadsafe(dead2, record, NULL), GH_EBADHANDLE);
    ASSERT_CODE(gh_hub_call_threadsafe(old, record, NULL), GH_EBADHANDLE);
    for (i = 0; i < 5; i++) ASSERT_OK(gh_sleep(0.001));
    ASSERT_EQ(norder, 0); /* nothing refused ever ran */
    ASSERT_OK(gh_watcher_close(w));
    ASSERT_OK(gh_hub_destroy());
}

/* ---- wrong-thread calls -------------------------------------------------- */

struct live_peer {
    pthread_barrier_t b;
    gh_hub_ref hub;
    gh_watcher sig, child, async, timer;
    gh_greenlet g;
    int rc;
};
static void *peer_forever(void *arg) {
    (void)arg;
    gh_sleep(GH_FOREVER);
    return NULL;
}
static int ran_in_peer;
static void *live_peer_thread(void *arg) {
    struct live_peer *p = (struct live_peer *)arg;
    pid_t pid;
    int rc;
    fflush(stdout);
    pid = fork();
    if (pid == 0) _exit(0);
    p->hub = gh_hub_current();
    rc = gh_signal_new(&p->sig, SIGUSR1);
    if (rc == GH_OK) rc = gh_child_new(&p->child, pid);
    if (rc == GH_OK) rc = gh_async_new(&p->async);
    if (rc == GH_OK) rc = gh_timer_new(&p->timer, 10, 0);
    if (rc == GH_OK) rc = gh_spawn(&p->g, peer_forever, NULL);
    if (rc == GH_OK) rc = gh_sleep(0);
    p->rc = rc;
    pthread_barrier_wait(&p->b); /* handles published */
    pthread_barrier_wait(&p->b); /* main's calls done */
    if (rc == GH_OK) rc = gh_hub_wait(p->child); /* reap the child */
    for (int k = 0; k < 1000 && rc == GH_OK && !ran_in_peer; k++) rc = gh_sleep(0.002);
    if (p->rc == GH_OK) p->rc = rc;
    p->rc = p->rc == GH_OK ? gh_hub_destroy() : p->rc;
    return NULL;
}

static void noop_cb(gh_watcher w, int revents, void *arg) {
    (void)w;
    (void)revents;
    (void)arg;
}

static void mark_peer(void *arg) {
    (void)arg;
    ran_in_peer = 1;
}

/* With handles of another thread's live hub, every call but the thread-safe ones is
 * GH_EWRONGTHREAD: gh_watcher_start/stop/ref/active/close and gh_hub_wait on its
 * signal, child and timer watchers, gh_child_status, gh_join/gh_kill on its greenlet.
 * gh_async_send and gh_hub_call_threadsafe to it work. */
TEST(wrong_thread_calls) {
    static struct live_peer p;
    pthread_t t;
    gh_watcher ws[3];
    int i, st = 0;
    memset(&p, 0, sizeof p);
    pthread_barrier_init(&p.b, NULL, 2);
    ASSERT_OK(pthread_create(&t, NULL, live_peer_thread, &p));
    pthread_barrier_wait(&p.b);
    ASSERT_OK(p.rc);
    ws[0] = p.sig;
    ws[1] = p.child;
    ws[2] = p.timer;
    for (i = 0; i < 3; i++) {
        ASSERT_CODE(gh_watcher_start(ws[i], noop_cb, NULL), GH_EWRONGTHREAD);
        ASSERT_CODE(gh_watcher_stop(ws[i]), GH_EWRONGTHREAD);
        ASSERT_CODE(gh_watcher_ref(ws[i], 0), GH_EWRONGTHREAD);
        ASSERT_CODE(gh_watcher_active(ws[i]), GH_EWRONGTHREAD);
        ASSERT_CODE(gh_hub_wait(ws[i]), GH_EWRONGTHREAD);
        ASSERT_CODE(gh_watcher_close(ws[i]), GH_EWRONGTHREAD);
    }
    ASSERT_CODE(gh_child_status(p.child, &st), GH_EWRONGTHREAD);
    ASSERT_CODE(gh_join(p.g, 0, NULL), GH_EWRONGTHREAD);
    ASSERT_CODE(gh_kill(p.g, 0), GH_EWRONGTHREAD);
    ASSERT_OK(gh_async_send(p.async));
    ASSERT_OK(gh_hub_call_threadsafe(p.hub, mark_peer, NULL));
    pthread_barrier_wait(&p.b);
    ASSERT_OK(pthread_join(t, NULL));
    ASSERT_OK(p.rc);
    ASSERT_EQ(ran_in_peer, 1);
    pthread_barrier_destroy(&p.b);
    ASSERT_OK(gh_hub_destroy());
}

/* ---- a thread exiting with live objects --------------------------------- */

static void *parked_reader(void *arg) {
    char c;
    (void)gh_read((int)(intptr_t)arg, &c, 1, GH_FOREVER);
    return NULL;
}
static void *busy_thread(void *arg) {
    int *p = (int *)arg, i, rc = GH_OK;
    gh_watcher w;
    for (i = 0; i < 10 && rc == GH_OK; i++) rc = gh_spawn(NULL, peer_forever, NULL);
    if (rc == GH_OK) rc = gh_spawn(NULL, parked_reader, (void *)(intptr_t)p[0]);
    if (rc == GH_OK) rc = gh_io_new(&w, p[0], GH_READ);
    if (rc == GH_OK) rc = gh_watcher_start(w, noop_cb, NULL);
    if (rc == GH_OK) rc = gh_timer_new(&w, 10, 1);
    if (rc == GH_OK) rc = gh_watcher_start(w, noop_cb, NULL);
    if (rc == GH_OK) rc = gh_async_new(&w);
    if (rc == GH_OK) rc = gh_watcher_start(w, noop_cb, NULL);
    if (rc == GH_OK) rc = gh_signal_new(&w, SIGUSR2);
    if (rc == GH_OK) rc = gh_watcher_start(w, noop_cb, NULL);
    if (rc == GH_OK) rc = gh_sleep(0.001);
    return (void *)(intptr_t)rc; /* exits without gh_hub_destroy */
}

/* 20 threads in turn exit with 11 live greenlets (parked in sleep and in gh_read),
 * io/timer/async/signal watchers started and no gh_hub_destroy: each thread's hub is
 * destroyed with it — the fd count is back to the baseline after every join, SIGUSR2's
 * disposition is back to SIG_DFL, and valgrind finds no definite leak. */
TEST(thread_exit_frees_hub) {
    int p[2], i, fd0;
    struct sigaction cur;
    ASSERT_OK(pipe(p));
    fd0 = gh_test_fd_count();
    for (i = 0; i < 20; i++) {
        pthread_t t;
        void *rc = (void *)1;
        ASSERT_OK(pthread_create(&t, NULL, busy_thread, p));
        ASSERT_OK(pthread_join(t, &rc));
        ASSERT_OK((intptr_t)rc);
        ASSERT_EQ(gh_test_fd_count(), fd0);
    }
    ASSERT_OK(sigaction(SIGUSR2, NULL, &cur));
    ASSERT_TRUE(cur.sa_handler == SIG_DFL);
    close(p[0]);
    close(p[1]);
    ASSERT_OK(gh_hub_destroy());
}

/* ---- gh_async_send racing gh_hub_destroy (FAULTS 19) --------------------- */

#define RACE_SENDERS 4
#define RACE_ROUNDS 50

struct race {
    gh_watcher w;
    gh_hub_ref hub;
    atomic_int started; /* senders that got at least one GH_OK from each function */
    atomic_int bad_code; /* a return code other than GH_OK / GH_EBADHANDLE (first seen) */
    atomic_long ok;      /* GH_OK returns of gh_hub_call_threadsafe */
    atomic_long ran;     /* race_cb runs */
};
static struct race RACE;

/* Under valgrind one thread runs at a time: senders that never pause starve the hub's
 * thread (and queue millions of calls) past the case's time bound, so there they yield
 * after each pair of calls and the case runs 5 rounds. */
static int race_polite;

static void race_cb(void *arg) {
    (void)arg;
    atomic_fetch_add(&RACE.ran, 1);
}

static void race_note(int rc) {
    int none = 0;
    if (rc != GH_OK && rc != GH_EBADHANDLE) atomic_compare_exchange_strong(&RACE.bad_code, &none, rc);
}

/* Sends to the hub until both gh_async_send and gh_hub_call_threadsafe say
 * GH_EBADHANDLE (the hub was destroyed), noting each code. */
static void *race_sender(void *arg) {
    int a_ok = 0, c_ok = 0, a_dead = 0, c_dead = 0, counted = 0;
    (void)arg;
    while (!(a_dead && c_dead)) {
        int rc = gh_async_send(RACE.w);
        race_note(rc);
        if (rc == GH_OK) a_ok = 1;
        else a_dead = 1;
        rc = gh_hub_call_threadsafe(RACE.hub, race_cb, NULL);
        race_note(rc);
        if (rc == GH_OK) {
            c_ok = 1;
            atomic_fetch_add(&RACE.ok, 1);
        } else {
            c_dead = 1;
        }
        if (a_ok && c_ok && !counted) {
            counted = 1;
            atomic_fetch_add(&RACE.started, 1);
        }
        if (race_polite) sched_yield();
    }
    return (void *)(intptr_t)counted;
}

static int race_async_fired;
static void race_async_cb(gh_watcher w, int revents, void *arg) {
    (void)w;
    (void)revents;
    (void)arg;
    race_async_fired++;
}

/* FAULTS 19: 4 threads hammer gh_async_send and gh_hub_call_threadsafe at a hub while
 * its thread destroys it, 50 rounds: every call answers GH_OK or GH_EBADHANDLE (never
 * anything else, never a use-after-free: scripts/asan.sh runs this under ASan), each
 * sender got GH_OK before the destroy and GH_EBADHANDLE after it, every accepted call
 * ran (the loop's or gh_hub_destroy's; issue 19: 19-22 % were dropped before), and the fd count is back at the baseline every round. */
TEST(async_send_races_destroy) {
    int fd0 = gh_test_fd_count();
    race_polite = gh_test_under_valgrind();
    for (int round = 0; round < (race_polite ? 5 : RACE_ROUNDS); round++) {
        pthread_t t[RACE_SENDERS];
        void *counted;
        atomic_store(&RACE.started, 0);
        atomic_store(&RACE.bad_code, 0);
        atomic_store(&RACE.ok, 0);
        atomic_store(&RACE.ran, 0);
        race_async_fired = 0;
        ASSERT_OK(gh_async_new(&RACE.w));
        ASSERT_OK(gh_watcher_start(RACE.w, race_async_cb, NULL));
        RACE.hub = gh_hub_current();
        ASSERT_NE(RACE.hub.id, 0);
        for (int i = 0; i < RACE_SENDERS; i++)
            ASSERT_OK(pthread_create(&t[i], NULL, race_sender, NULL));
        /* Run the loop until every sender is past its first accepted calls: the
         * destroy below then lands in the middle of their sending. */
        while (atomic_load(&RACE.started) < RACE_SENDERS) ASSERT_GE(gh_hub_run_once(0.001), 0);
        ASSERT_OK(gh_hub_destroy());
        for (int i = 0; i < RACE_SENDERS; i++) {
            ASSERT_OK(pthread_join(t[i], &counted));
            ASSERT_EQ((intptr_t)counted, 1);
        }
        ASSERT_CODE(atomic_load(&RACE.bad_code), GH_OK);
        /* GH_OK means it runs: calls accepted and not run by the loop ran at destroy. */
        ASSERT_EQ(atomic_load(&RACE.ran), atomic_load(&RACE.ok));
        ASSERT_CODE(gh_async_send(RACE.w), GH_EBADHANDLE);
        ASSERT_CODE(gh_hub_call_threadsafe(RACE.hub, race_cb, NULL), GH_EBADHANDLE);
        ASSERT_EQ(gh_test_fd_count(), fd0);
    }
}

/* Issue 19, item 4: calls accepted by a hub whose thread never runs its loop again run
 * when the hub goes, in order and in that thread: at gh_hub_destroy, and at thread
 * exit without one. Calls posted after that get GH_EBADHANDLE. */
#define LATE_CALLS 50
static struct {
    pthread_barrier_t posted, ready;
    gh_hub_ref hub;
    pthread_t thread;
    int order[LATE_CALLS];
    int n, wrong_thread, destroy_rc;
} LATE;

static void late_cb(void *arg) {
    if (!pthread_equal(pthread_self(), LATE.thread)) LATE.wrong_thread++;
    if (LATE.n < LATE_CALLS) LATE.order[LATE.n] = (int)(intptr_t)arg;
    LATE.n++;
}

static void *late_thread(void *arg) {
    int destroy = (int)(intptr_t)arg;
    LATE.thread = pthread_self();
    LATE.hub = gh_hub_current();
    pthread_barrier_wait(&LATE.ready);
    pthread_barrier_wait(&LATE.posted); /* the calls are queued; the loop never ran */
    if (destroy) LATE.destroy_rc = gh_hub_destroy();
    return NULL;
}

static int late_run(int destroy) {
    pthread_t t;
    memset(&LATE, 0, sizeof LATE);
    LATE.destroy_rc = -12345;
    ASSERT_OK(pthread_barrier_init(&LATE.ready, NULL, 2));
    ASSERT_OK(pthread_barrier_init(&LATE.posted, NULL, 2));
    ASSERT_OK(pthread_create(&t, NULL, late_thread, (void *)(intptr_t)destroy));
    pthread_barrier_wait(&LATE.ready);
    for (int i = 0; i < LATE_CALLS; i++)
        ASSERT_OK(gh_hub_call_threadsafe(LATE.hub, late_cb, (void *)(intptr_t)i));
    pthread_barrier_wait(&LATE.posted);
    ASSERT_OK(pthread_join(t, NULL));
    if (destroy) ASSERT_OK(LATE.destroy_rc);
    ASSERT_EQ(LATE.n, LATE_CALLS);
    for (int i = 0; i < LATE_CALLS; i++) ASSERT_EQ(LATE.order[i], i);
    ASSERT_EQ(LATE.wrong_thread, 0);
    ASSERT_CODE(gh_hub_call_threadsafe(LATE.hub, late_cb, NULL), GH_EBADHANDLE);
    ASSERT_EQ(LATE.n, LATE_CALLS);
    pthread_barrier_destroy(&LATE.ready);
    pthread_barrier_destroy(&LATE.posted);
    return 0;
}

TEST(call_threadsafe_runs_at_destroy) {
    int fd0 = gh_test_fd_count();
    late_run(1);
    late_run(0);
    ASSERT_EQ(gh_test_fd_count(), fd0);
}

/* A call to this thread's own hub, accepted and not run yet, runs at gh_hub_destroy,
 * as a hub callback (a blocking call in it gets GH_EPERM); a call it posts to the hub
 * being destroyed is refused. */
static int own_late_rc[2] = {-1, -1};
static void own_late_cb(void *arg) {
    (void)arg;
    own_late_rc[0] = gh_sleep(0);
    own_late_rc[1] = gh_hub_call_threadsafe(gh_hub_current(), own_late_cb, NULL);
}

TEST(call_threadsafe_own_hub_runs_at_destroy) {
    ASSERT_OK(gh_hub_call_threadsafe(gh_hub_current(), own_late_cb, NULL));
    ASSERT_OK(gh_hub_destroy());
    ASSERT_CODE(own_late_rc[0], GH_EPERM);
    ASSERT_CODE(own_late_rc[1], GH_EBADHANDLE);
    ASSERT_OK(gh_hub_destroy());
}

/* ---- many parked greenlets on several threads, data handed between them -------- */

#define PARK_THREADS 4
#define PARK_GREENLETS 5000 /* per thread; 500 under valgrind */
#define PARK_WORDS 16

struct park {
    pthread_barrier_t ready;
    gh_hub_ref hub[PARK_THREADS];
    gh_event go[PARK_THREADS];
    int *payload[PARK_THREADS]; /* thread i's, written by a greenlet of thread i - 1 */
    long sum[PARK_THREADS];     /* added to by thread i's greenlets, which take turns */
    int rc[PARK_THREADS];
    int n; /* greenlets per thread */
};
static struct park P;

/* Parks on its thread's event; woken, adds up the payload another thread wrote. */
static void *park_fn(void *arg) {
    int i = (int)(intptr_t)arg, rc = gh_event_wait(P.go[i], 60.0);
    if (rc != GH_OK) return (void *)(intptr_t)rc;
    long s = 0;
    for (int k = 0; k < PARK_WORDS; k++) s += P.payload[i][k];
    P.sum[i] += s;
    return NULL;
}

/* In thread i's hub: its payload arrived; wake its greenlets. */
static void park_deliver(void *arg) {
    int *data = arg, i = data[PARK_WORDS];
    P.payload[i] = data;
    if (gh_event_set(P.go[i]) != GH_OK) P.rc[i] = -1;
}

/* A greenlet of thread i fills thread i + 1's payload and hands it over. */
static void *park_produce(void *arg) {
    int i = (int)(intptr_t)arg, to = (i + 1) % PARK_THREADS;
    int *data = malloc((PARK_WORDS + 1) * sizeof *data);
    if (data == NULL) return (void *)(intptr_t)GH_ENOMEM;
    for (int k = 0; k < PARK_WORDS; k++) data[k] = k + 100 * i;
    data[PARK_WORDS] = to;
    return (void *)(intptr_t)gh_hub_call_threadsafe(P.hub[to], park_deliver, data);
}

static void *park_thread(void *arg) {
    int i = ((struct slot *)arg)->i, rc;
    static gh_greenlet gs[PARK_THREADS][PARK_GREENLETS];
    gh_greenlet prod;
    void *res;
    P.hub[i] = gh_hub_current();
    rc = gh_event_new(&P.go[i]);
    for (int k = 0; k < P.n && rc == GH_OK; k++)
        rc = gh_spawn(&gs[i][k], park_fn, (void *)(intptr_t)i);
    if (rc == GH_OK) rc = gh_sleep(0); /* every one of them parks on the event */
    pthread_barrier_wait(&P.ready);    /* every hub is known */
    if (rc == GH_OK) rc = gh_spawn(&prod, park_produce, (void *)(intptr_t)i);
    if (rc == GH_OK) rc = gh_join(prod, 60.0, &res);
    if (rc == GH_OK) rc = (int)(intptr_t)res;
    if (rc == GH_OK) rc = gh_release(prod);
    for (int k = 0; k < P.n; k++) {
        if (rc == GH_OK) rc = gh_join(gs[i][k], 60.0, &res);
        if (rc == GH_OK) rc = (int)(intptr_t)res;
        if (rc == GH_OK) rc = gh_release(gs[i][k]);
    }
    pthread_barrier_wait(&P.ready); /* every payload delivered */
    free(P.payload[i]);
    if (rc == GH_OK) rc = gh_event_close(P.go[i]);
    if (rc == GH_OK) rc = gh_hub_destroy();
    if (P.rc[i] == GH_OK) P.rc[i] = rc;
    return NULL;
}

/* 4 threads, each with 5000 greenlets parked at once on an event; a greenlet of each
 * thread writes the next thread's payload and hands it over with
 * gh_hub_call_threadsafe; the event's wake-up lets the receiving greenlets read it.
 * Under ThreadSanitizer (scripts/tsan.sh) this needs every greenlet switch announced
 * (the `tsan` feature): without it TSan's per-thread shadow stack takes every parked
 * greenlet's frames and the run crashes (SEGV) or hangs; and the hand-over is ordered
 * only through the library's own locks and switches (a missed one is a race report). */
TEST(parked_greenlets_on_threads) {
    pthread_t t[PARK_THREADS];
    struct slot sl[PARK_THREADS];
    memset(&P, 0, sizeof P);
    P.n = gh_test_under_valgrind() ? PARK_GREENLETS / 10 : PARK_GREENLETS;
    ASSERT_EQ(pthread_barrier_init(&P.ready, NULL, PARK_THREADS), 0);
    for (int i = 0; i < PARK_THREADS; i++) {
        sl[i].i = i;
        ASSERT_EQ(pthread_create(&t[i], NULL, park_thread, &sl[i]), 0);
    }
    for (int i = 0; i < PARK_THREADS; i++) ASSERT_EQ(pthread_join(t[i], NULL), 0);
    ASSERT_EQ(pthread_barrier_destroy(&P.ready), 0);
    for (int i = 0; i < PARK_THREADS; i++) {
        int from = (i + PARK_THREADS - 1) % PARK_THREADS;
        ASSERT_CODE(P.rc[i], GH_OK);
        ASSERT_EQ(P.sum[i], (long)P.n * (120 + 1600L * from));
    }
}

int main(int argc, char **argv) {
    TEST_INIT(argc, argv);
    RUN(ring_async_8_threads);
    RUN(ring_call_threadsafe_8_threads);
    RUN(call_threadsafe_fifo_from_other_thread);
    RUN(call_threadsafe_own_hub);
    RUN(call_threadsafe_errors);
    RUN(wrong_thread_calls);
    RUN(thread_exit_frees_hub);
    RUN(async_send_races_destroy);
    RUN(call_threadsafe_runs_at_destroy);
    RUN(call_threadsafe_own_hub_runs_at_destroy);
    RUN(parked_greenlets_on_threads);
    return TEST_DONE();
}

/* test_stacks.c — greenlet stacks (issue 6 "Stacks", FAULTS 22 and 24) and build info
 * (FAULTS 40).
 *
 * - stacks carved from reserved regions: many parked greenlets cost (almost) no memory
 *   mappings, regions go back at gh_hub_destroy; with the mprotect fallback
 *   (GREENHUB_STACK_GUARD=mprotect) gh_spawn says GH_ENOMEM while mappings are still
 *   left for other mmap users (FAULTS 22), and likewise when address space (RLIMIT_AS)
 *   runs out;
 * - the stack-overflow reporter (FAULTS 24): death tests in a forked child — deep
 *   recursion in a greenlet dies of SIGSEGV after one line naming the greenlet, its id
 *   and stack size; a SIGSEGV handler installed before greenhub gets the faults that are
 *   not greenhub's;
 * - the alternate signal stack a hub gives its thread;
 * - gh_build_info() (panic=unwind, the version).
 *
 * GH_PARK_N=N ./test_stacks park_many prints mappings and RSS per parked greenlet for N
 * (default 10000; the figures in the README were made with 10k, 100k and 1M).
 * Cases that set process-wide state (GREENHUB_STACK_GUARD, RLIMIT_AS) rely on each case
 * running in its own forked child (not with GH_TEST_NOFORK=1).
 */
#include "harness.h"

#include <inttypes.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>

/* Whether this kernel has MADV_GUARD_INSTALL (Linux >= 6.13). */
static int kernel_has_guard_madvise(void) {
    long page = sysconf(_SC_PAGESIZE);
    void *p = mmap(NULL, 2 * (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
    int ok;
    if (p == MAP_FAILED) return 0;
    ok = madvise(p, (size_t)page, 102 /* MADV_GUARD_INSTALL */) == 0;
    munmap(p, 2 * (size_t)page);
    return ok;
}

/* Bytes of anonymous read-write mappings of at least 32 MiB (stack regions are 64 MiB). */
static unsigned long long big_anon_bytes(void) {
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    unsigned long long total = 0, lo, hi;
    char perms[8];
    if (!f) return 0;
    while (fgets(line, sizeof line, f)) {
        int end = 0;
        if (sscanf(line, "%llx-%llx %7s %*s %*s %*s%n", &lo, &hi, perms, &end) < 3) continue;
        while (line[end] == ' ') end++;
        if (hi - lo >= (32ull << 20) && strncmp(perms, "rw-p", 4) == 0 &&
            (line[end] == '\n' || line[end] == 0))
            total += hi - lo;
    }
    fclose(f);
    return total;
}

/* ---- build info ---------------------------------------------------------- */

/* FAULTS 40: the shipped library unwinds on panic; the line names the version. */
TEST(build_info_reports_panic_unwind_and_version) {
    const char *info = gh_build_info();
    char want[64];
    ASSERT_TRUE(info != NULL);
    printf("  %s\n", info);
    ASSERT_TRUE(strstr(info, "panic=unwind") != NULL);
    snprintf(want, sizeof want, "greenhub %s;", gh_version_string());
    ASSERT_TRUE(strncmp(info, want, strlen(want)) == 0);
    ASSERT_TRUE(strstr(info, "backends=epoll,polling,poll;") != NULL);
    ASSERT_TRUE(strstr(info, "; target=") != NULL);
    ASSERT_TRUE(strstr(info, "; features=") != NULL);
    ASSERT_TRUE(info == gh_build_info()); /* static */
}

/* ---- parked greenlets: mappings and RSS ---------------------------------- */

static long parked;

static void *park(void *arg) {
    volatile char frame[2048]; /* each greenlet touches ~2 KiB of stack */
    (void)arg;
    frame[0] = 1;
    frame[sizeof frame - 1] = frame[0];
    parked++;
    gh_sleep(3600.0);
    return NULL;
}

TEST(park_many) {
    const char *env = getenv("GH_PARK_N");
    long n = env ? strtol(env, NULL, 10) : 10000, i;
    gh_spawn_options o = {0};
    long maps0, rss0, maps1, rss1, maps2;
    unsigned long long big0;
    int fds0;
    if (gh_test_under_memory_tool() && !env) n = 2000;
    ASSERT_OK(gh_sleep(0)); /* first hub: process-wide set-up done */
    ASSERT_OK(gh_hub_destroy());
    fds0 = gh_test_fd_count();
    maps0 = gh_test_map_count();
    big0 = big_anon_bytes();
    ASSERT_OK(gh_sleep(0));
    rss0 = gh_test_rss_kb();
    maps1 = gh_test_map_count();
    o.stack_size = 16 * 1024;
    for (i = 0; i < n; i++) ASSERT_OK(gh_spawn_ex(NULL, park, NULL, &o));
    for (i = 0; i < 1000 && parked < n; i++) ASSERT_OK(gh_sleep(0));
    ASSERT_EQ(parked, n);
    rss1 = gh_test_rss_kb();
    maps2 = gh_test_map_count();
    printf("  %ld parked greenlets (16 KiB stacks): %ld mappings added (%.4f each), "
           "%.2f KiB RSS each (%ld KiB in all)\n",
           n, maps2 - maps1, (double)(maps2 - maps1) / (double)n,
           (double)(rss1 - rss0) / (double)n, rss1 - rss0);
    if (!gh_test_under_memory_tool()) {
        if (kernel_has_guard_madvise() && !getenv("GREENHUB_STACK_GUARD")) {
            /* a few regions, no split (16 KiB stacks + 64 KiB guards: ~819 slots per
             * 64 MiB region, each region one mapping) */
            ASSERT_LE(maps2 - maps1, n / 400 + 8);
            ASSERT_TRUE(big_anon_bytes() >= big0 + (64ull << 20)); /* (seen by the helper) */
        } else
            ASSERT_LE(maps2 - maps1, 2 * n + n / 400 + 8);
    }
    ASSERT_OK(gh_hub_destroy()); /* discards the parked greenlets, unmaps the regions */
    ASSERT_EQ(gh_test_fd_count(), fds0);
    if (!gh_test_under_memory_tool()) {
        ASSERT_TRUE(big_anon_bytes() == big0); /* every region unmapped */
        ASSERT_LE(gh_test_map_count(), maps0 + 2); /* (malloc may keep a mapping) */
    }
}

/* ---- freed stacks give their pages back ----------------------------------- */

static gh_event go[2];
static long left;
static void *touch_and_wait(void *arg) {
    volatile char frame[8 * 1024]; /* 8 KiB of a 32 KiB stack (room for debug frames) */
    for (size_t i = 0; i < sizeof frame; i += 256) frame[i] = (char)i;
    if (gh_event_wait(go[(intptr_t)arg], GH_FOREVER) != GH_OK) return "wait";
    left++;
    return (void *)(intptr_t)frame[256];
}

/* 10,000 greenlets each touch 8 KiB of stack and park; every other one exits, the hub
 * idles, then the rest exit and the hub idles again. Each idle poll gives back the pages
 * of all but the pool's hot 1,024 free stacks, in many runs of slots the first time
 * (every other slot): RSS falls back to within about 1,280 greenlets' worth of where it
 * started (the hot stacks, and a margin), not the 80 MiB or more they had.
 * With `release` = "madvise", GREENHUB_STACK_RELEASE selects one madvise per run instead
 * of batched process_madvise calls (Linux >= 6.15): the same result. */
static void freed_pages_come_back(const char *release) {
    const long n = 10000;
    gh_spawn_options o = {0};
    long rss0, rss1, rss2, i, each;
    if (release) ASSERT_OK(setenv("GREENHUB_STACK_RELEASE", release, 1));
    ASSERT_OK(gh_event_new(&go[0]));
    ASSERT_OK(gh_event_new(&go[1]));
    rss0 = gh_test_rss_kb();
    o.stack_size = 32 * 1024;
    for (i = 0; i < n; i++) ASSERT_OK(gh_spawn_ex(NULL, touch_and_wait, (void *)(intptr_t)(i % 2), &o));
    ASSERT_OK(gh_sleep(0.01));
    rss1 = gh_test_rss_kb();
    left = 0;
    ASSERT_OK(gh_event_set(go[0]));
    ASSERT_OK(gh_sleep(0.01));
    ASSERT_EQ(left, n / 2);
    ASSERT_OK(gh_event_set(go[1]));
    ASSERT_OK(gh_sleep(0.01));
    ASSERT_EQ(left, n);
    rss2 = gh_test_rss_kb();
    printf("  RSS %ld KiB -> %ld with %ld parked -> %ld after they exited (%s)\n", rss0, rss1, n, rss2,
           release ? release : "default");
    if (!gh_test_under_memory_tool()) {
        each = (rss1 - rss0) / n;
        ASSERT_TRUE(each >= 8);                   /* KiB: the stacks were touched */
        /* all but the hot ones back (the margin: tables the hub keeps, malloc's arenas) */
        ASSERT_LE(rss2 - rss0, 1280 * each + 8192);
    }
    ASSERT_OK(gh_event_close(go[0]));
    ASSERT_OK(gh_event_close(go[1]));
    ASSERT_OK(gh_hub_destroy());
    if (release) ASSERT_OK(unsetenv("GREENHUB_STACK_RELEASE"));
}

TEST(freed_stacks_give_their_pages_back) { freed_pages_come_back(NULL); }
TEST(freed_stacks_give_their_pages_back_one_madvise_each) { freed_pages_come_back("madvise"); }

/* Stacks go back to the pool: a second batch reuses the first batch's slots (no new
 * region), and a finished greenlet's stack is the next one's. */
static void *nothing(void *arg) { return arg; }

TEST(finished_stacks_are_reused) {
    gh_spawn_options o = {0};
    gh_greenlet g[64];
    long maps;
    int i, round;
    o.stack_size = 16 * 1024;
    for (i = 0; i < 64; i++) ASSERT_OK(gh_spawn_ex(&g[i], nothing, NULL, &o));
    for (i = 0; i < 64; i++) {
        ASSERT_OK(gh_join(g[i], GH_FOREVER, NULL));
        ASSERT_OK(gh_release(g[i]));
    }
    maps = gh_test_map_count();
    for (round = 0; round < 3; round++) {
        for (i = 0; i < 64; i++) ASSERT_OK(gh_spawn_ex(&g[i], nothing, NULL, &o));
        for (i = 0; i < 64; i++) {
            ASSERT_OK(gh_join(g[i], GH_FOREVER, NULL));
            ASSERT_OK(gh_release(g[i]));
        }
        if (!gh_test_under_memory_tool()) ASSERT_EQ(gh_test_map_count(), maps);
    }
    ASSERT_OK(gh_hub_destroy());
}

/* ---- FAULTS 22: running out of stacks ------------------------------------ */

static gh_greenlet *spawned;
static long nspawned;

/* Spawns (16 KiB stacks, never started) until gh_spawn fails or `cap` is reached;
 * returns the failing code (0 if the cap was reached). */
static int spawn_until_failure(long cap) {
    gh_spawn_options o = {0};
    int rc = 0;
    o.stack_size = 16 * 1024;
    spawned = (gh_greenlet *)calloc((size_t)cap, sizeof *spawned);
    ASSERT_TRUE(spawned != NULL);
    for (nspawned = 0; nspawned < cap; nspawned++) {
        rc = gh_spawn_ex(&spawned[nspawned], nothing, NULL, &o);
        if (rc != 0) break;
    }
    return rc;
}

/* The rest of the process still maps and allocates; after the greenlets go, spawning
 * works again. */
static void others_still_work_and_spawn_recovers(void) {
    gh_spawn_options o = {0};
    void *pages[64];
    long page = sysconf(_SC_PAGESIZE);
    gh_greenlet g;
    int i;
    for (i = 0; i < 64; i++) { /* 64 separate mappings (alternating protections) */
        pages[i] = mmap(NULL, (size_t)page, i % 2 ? PROT_READ : PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        ASSERT_TRUE(pages[i] != MAP_FAILED);
    }
    for (i = 0; i < 64; i++) munmap(pages[i], (size_t)page);
    o.stack_size = 16 * 1024;
    {
        char *big = (char *)malloc(4 << 20);
        ASSERT_TRUE(big != NULL);
        memset(big, 1, 4 << 20);
        free(big);
    }
    for (i = 0; i < nspawned; i++) {
        ASSERT_OK(gh_kill(spawned[i], 0)); /* never started: never runs */
        ASSERT_OK(gh_release(spawned[i]));
    }
    /* (a stack of the same size class: the ones just freed) */
    ASSERT_OK(gh_spawn_ex(&g, nothing, NULL, &o));
    ASSERT_OK(gh_join(g, GH_FOREVER, NULL));
    ASSERT_OK(gh_release(g));
    free(spawned);
    ASSERT_OK(gh_hub_destroy());
}

TEST(mprotect_guards_stop_before_max_map_count) {
    long limit = 65530, maps;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    int rc;
    if (gh_test_under_valgrind())
        SKIP("under valgrind: its address-space manager has its own segment limit; "
             "runs in scripts/test.sh");
    if (GH_TEST_ASAN)
        SKIP("under ASan: its allocator's own mappings move the mapping count; "
             "runs in scripts/test.sh");
    if (f) {
        if (fscanf(f, "%ld", &limit) != 1) limit = 65530;
        fclose(f);
    }
    setenv("GREENHUB_STACK_GUARD", "mprotect", 1);
    rc = spawn_until_failure(limit);
    maps = gh_test_map_count();
    printf("  mprotect guards: %ld greenlets, then %s; %ld of %ld mappings in use\n",
           nspawned, gh_err_name(rc), maps, limit);
    ASSERT_CODE(rc, GH_ENOMEM);
    ASSERT_GE(nspawned, limit / 4);                 /* most mappings went to stacks */
    ASSERT_LE(maps, limit - limit / 8 + 64);        /* an eighth is still free */
    others_still_work_and_spawn_recovers();
}

TEST(address_space_exhaustion_is_enomem) {
    struct rlimit rl;
    long vm_kb;
    int rc;
    gh_test_skip_if_rlimit_as_unreliable();
    ASSERT_OK(gh_sleep(0));
    vm_kb = gh_test_vm_size_kb();
    ASSERT_TRUE(vm_kb > 0);
    rl.rlim_cur = rl.rlim_max = ((rlim_t)vm_kb << 10) + ((rlim_t)512 << 20);
    ASSERT_EQ(setrlimit(RLIMIT_AS, &rl), 0);
    rc = spawn_until_failure(1000000);
    printf("  RLIMIT_AS of VmSize + 512 MiB: %ld greenlets, then %s\n", nspawned,
           gh_err_name(rc));
    ASSERT_CODE(rc, GH_ENOMEM);
    ASSERT_GE(nspawned, 1000);
    others_still_work_and_spawn_recovers();
}

/* ---- FAULTS 24: stack overflow reporter (death tests) --------------------- */

/* Runs fn in a forked child with stderr captured; returns its wait status. */
static int run_child(void (*fn)(void), char *err, size_t errlen) {
    int p[2], status = 0;
    size_t got = 0;
    ssize_t r;
    pid_t pid;
    ASSERT_EQ(pipe(p), 0);
    pid = fork();
    ASSERT_TRUE(pid >= 0);
    if (pid == 0) {
        struct rlimit nocore = {0, 0};
        setrlimit(RLIMIT_CORE, &nocore);
        close(p[0]);
        dup2(p[1], 2);
        close(p[1]);
        fn();
        _exit(0);
    }
    close(p[1]);
    while (got + 1 < errlen && (r = read(p[0], err + got, errlen - 1 - got)) != 0) {
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) break;
        got += (size_t)r;
    }
    err[got] = 0;
    close(p[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return status;
}

static volatile int never = -1;

static int recurse(int depth) {
    volatile char frame[256];
    frame[0] = (char)depth;
    if (depth == never) return 0;
    return recurse(depth + 1) + frame[0];
}

static void *overflow_fn(void *arg) {
    (void)arg;
    return (void *)(intptr_t)recurse(0);
}

static void overflow_child(void) {
    gh_spawn_options o = {0};
    gh_greenlet g;
    o.stack_size = 16 * 1024;
    o.name = "first-name";
    if (gh_spawn_ex(&g, overflow_fn, NULL, &o) != 0) _exit(3);
    /* renamed before it runs: the report says the current name */
    if (gh_greenlet_set_name(g, "deep-worker") != 0) _exit(4);
    fprintf(stderr, "id=%" PRIu64 "\n", g.id);
    gh_join(g, GH_FOREVER, NULL);
    _exit(5);
}

TEST(overflow_names_greenlet_and_dies_of_sigsegv) {
    static char err[65536];
    char want[128];
    unsigned long long id = 0;
    const char *p;
    int status = run_child(overflow_child, err, sizeof err);
    if (!WIFSIGNALED(status)) printf("  child stderr:\n%s\n", err);
    ASSERT_TRUE(WIFSIGNALED(status));
    ASSERT_EQ(WTERMSIG(status), SIGSEGV);
    p = strstr(err, "id=");
    ASSERT_TRUE(p != NULL);
    id = strtoull(p + 3, NULL, 10);
    ASSERT_TRUE(id != 0);
    snprintf(want, sizeof want,
             "greenhub: stack overflow in greenlet \"deep-worker\" (id %llu), stack 16 KiB; "
             "raise it with ",
             id);
    if (!strstr(err, want)) printf("  want: %s\n  got:\n%s\n", want, err);
    ASSERT_TRUE(strstr(err, want) != NULL);
    ASSERT_TRUE(strstr(err, "GREENHUB_STACK_SIZE") != NULL);
}

/* The user's handlers say so on stderr too: under valgrind the exit code becomes
 * valgrind's (99: it reports the invalid write). */
static void on_segv_exit42(int sig) {
    static const char msg[] = "user handler 42\n";
    (void)sig;
    gh_test_fault_done();
    if (write(2, msg, sizeof msg - 1) < 0) _exit(41);
    _exit(42);
}

static void on_segv_siginfo(int sig, siginfo_t *si, void *ctx) {
    static const char msg[] = "user handler 43\n";
    (void)ctx;
    gh_test_fault_done();
    if (sig != SIGSEGV || si->si_addr != NULL) _exit(44);
    if (write(2, msg, sizeof msg - 1) < 0) _exit(41);
    _exit(43);
}

static int user_exit_code(int status, int want) {
    return WIFEXITED(status) &&
           (WEXITSTATUS(status) == want || (gh_test_under_memory_tool() && WEXITSTATUS(status) == 99));
}

static volatile int *volatile null_ptr;

static void user_handler_child(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_segv_exit42;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSEGV, &sa, NULL) != 0) _exit(3);
    if (gh_sleep(0) != 0) _exit(4); /* creates the hub: greenhub's handler goes on top */
    gh_test_fault_on_purpose();
    *null_ptr = 1;                  /* not a greenlet guard page: the user's handler */
    _exit(5);
}

static void user_siginfo_handler_child(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv_siginfo;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSEGV, &sa, NULL) != 0) _exit(3);
    if (gh_sleep(0) != 0) _exit(4);
    gh_test_fault_on_purpose();
    *null_ptr = 1;
    _exit(5);
}

/* A NULL dereference in main reaches the handler installed before greenhub's. (Under
 * valgrind each child turns valgrind's error reporting off before its deliberate NULL
 * write, gh_test_fault_on_purpose(); without valgrind's header it is reported as an
 * "Invalid write of size 4" and the child's exit code becomes valgrind's 99.) */
TEST(faults_not_ours_go_to_the_previous_handler) {
    static char err[4096];
    int status = run_child(user_handler_child, err, sizeof err);
    ASSERT_TRUE(user_exit_code(status, 42));
    ASSERT_TRUE(strstr(err, "user handler 42") != NULL);
    status = run_child(user_siginfo_handler_child, err, sizeof err);
    ASSERT_TRUE(user_exit_code(status, 43)); /* with its siginfo (si_addr NULL) */
    ASSERT_TRUE(strstr(err, "user handler 43") != NULL);
    ASSERT_TRUE(strstr(err, "stack overflow") == NULL);
}

static void default_disposition_child(void) {
    if (gh_sleep(0) != 0) _exit(4);
    gh_test_fault_on_purpose();
    *null_ptr = 1; /* SIG_DFL before greenhub: dies of SIGSEGV, no report */
    _exit(5);
}

TEST(faults_not_ours_with_default_disposition_kill) {
    static char err[4096];
    if (GH_TEST_ASAN) /* ASan's own SIGSEGV handler comes before greenhub's */
        SKIP("under ASan: its SIGSEGV handler comes first; runs in scripts/test.sh");
    int status = run_child(default_disposition_child, err, sizeof err);
    ASSERT_TRUE(WIFSIGNALED(status));
    ASSERT_EQ(WTERMSIG(status), SIGSEGV);
    ASSERT_TRUE(strstr(err, "stack overflow") == NULL);
}

static void overflow_with_user_handler_child(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_segv_exit42;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSEGV, &sa, NULL) != 0) _exit(3);
    overflow_child();
}

/* An overflow is greenhub's even with a user handler underneath: reported, then SIGSEGV. */
TEST(overflow_is_reported_even_with_a_user_handler) {
    static char err[65536];
    int status = run_child(overflow_with_user_handler_child, err, sizeof err);
    ASSERT_TRUE(WIFSIGNALED(status));
    ASSERT_EQ(WTERMSIG(status), SIGSEGV);
    ASSERT_TRUE(strstr(err, "stack overflow in greenlet \"deep-worker\"") != NULL);
}

/* ---- alternate signal stacks --------------------------------------------- */

static int altstack_enabled(stack_t *out) {
    stack_t st;
    if (sigaltstack(NULL, &st) != 0) return -1;
    if (out) *out = st;
    return !(st.ss_flags & SS_DISABLE);
}

static void *thread_without_altstack(void *arg) {
    int *r = (int *)arg;
    r[0] = altstack_enabled(NULL);
    gh_sleep(0); /* creates this thread's hub */
    r[1] = altstack_enabled(NULL);
    gh_hub_destroy();
    r[2] = altstack_enabled(NULL);
    return NULL;
}

TEST(hub_gives_its_thread_an_alternate_signal_stack) {
    pthread_t t;
    int r[3] = {-1, -1, -1};
    if (GH_TEST_ASAN) /* ASan gives every thread an alternate stack itself */
        SKIP("under ASan: it gives every thread an alternate stack; runs in scripts/test.sh");
    ASSERT_EQ(pthread_create(&t, NULL, thread_without_altstack, r), 0);
    ASSERT_EQ(pthread_join(t, NULL), 0);
    ASSERT_EQ(r[0], 0);
    ASSERT_EQ(r[1], 1);
    ASSERT_EQ(r[2], 0); /* taken away again by gh_hub_destroy */
}

TEST(a_thread_keeps_its_own_alternate_signal_stack) {
    static char mine[64 * 1024];
    stack_t st, now;
    st.ss_sp = mine;
    st.ss_size = sizeof mine;
    st.ss_flags = 0;
    ASSERT_EQ(sigaltstack(&st, NULL), 0);
    ASSERT_OK(gh_sleep(0));
    ASSERT_EQ(altstack_enabled(&now), 1);
    ASSERT_TRUE(now.ss_sp == (void *)mine);
    ASSERT_OK(gh_hub_destroy());
    ASSERT_EQ(altstack_enabled(&now), 1);
    ASSERT_TRUE(now.ss_sp == (void *)mine);
}

int main(int argc, char **argv) {
    TEST_INIT(argc, argv);
    RUN(build_info_reports_panic_unwind_and_version);
    RUN(park_many);
    RUN(freed_stacks_give_their_pages_back);
    RUN(freed_stacks_give_their_pages_back_one_madvise_each);
    RUN(finished_stacks_are_reused);
    RUN(mprotect_guards_stop_before_max_map_count);
    RUN(address_space_exhaustion_is_enomem);
    RUN(overflow_names_greenlet_and_dies_of_sigsegv);
    RUN(faults_not_ours_go_to_the_previous_handler);
    RUN(faults_not_ours_with_default_disposition_kill);
    RUN(overflow_is_reported_even_with_a_user_handler);
    RUN(hub_gives_its_thread_an_alternate_signal_stack);
    RUN(a_thread_keeps_its_own_alternate_signal_stack);
    return TEST_DONE();
}

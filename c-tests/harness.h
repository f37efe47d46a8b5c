/* harness.h — greenhub's single-header C test harness.
 *
 * Each case runs in a forked child with a wall-clock bound, so one crash or
 * hang does not hide the rest (libuv's model). Include this header first.
 *
 *     #include "harness.h"
 *
 *     TEST(sleep_zero_yields) { ASSERT_OK(gh_sleep(0)); ASSERT_OK(gh_hub_destroy()); }
 *
 *     int main(int argc, char **argv) {
 *         TEST_INIT(argc, argv);
 *         RUN(sleep_zero_yields);
 *         return TEST_DONE();
 *     }
 *
 * Running a test program:
 *     ./test_x               every case; prints "ok name" / "FAIL name (reason)"
 *                            and closes with "N passed, N failed"
 *     ./test_x NAME          only the case called NAME
 *     ./test_x --list        the case names, nothing run
 * Environment:
 *     GH_TEST_TIMEOUT=S      wall-clock bound per case in seconds (default 20; 0 = none)
 *     GH_TEST_NOFORK=1       run cases in this process (for gdb); a failed
 *                            assertion then calls abort() so the debugger stops there
 *
 * A failed assertion prints file:line, the expression and the values (error
 * codes with gh_err_name) to stderr and ends the child with _exit(1). A case
 * that returns ends its child with exit(0), a normal exit, so valgrind's leak
 * check runs in the child.
 *
 * Compiles as C99 and later and as C++17 with -Wall -Wextra -Werror -pedantic.
 */
#ifndef GREENHUB_TEST_HARNESS_H
#define GREENHUB_TEST_HARNESS_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* fork, alarm, sigaction, clock_gettime under -std=c99 */
#endif

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "greenhub.h"

/* ---- state -------------------------------------------------------------- */

struct gh_test_state {
    const char *prog;
    const char *only;            /* argv[1]: run only this case */
    int list;                    /* --list */
    int nofork;                  /* GH_TEST_NOFORK=1 */
    unsigned timeout;            /* seconds, 0 = no bound */
    int passed, failed, matched;
    const char *current;         /* the running case, for assertion messages */
    volatile pid_t child;        /* read by the SIGALRM handler */
    volatile sig_atomic_t timed_out;
};

static inline struct gh_test_state *gh_test_state_(void) {
    static struct gh_test_state s;
    return &s;
}

/* ---- helpers for tests -------------------------------------------------- */

/* Open file descriptors of this process (entries of /proc/self/fd). */
static inline int gh_test_fd_count(void) {
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;
    if (!d) return -1;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - 1; /* the directory's own fd */
}

/* Memory mappings of this process (lines of /proc/self/maps). */
static inline long gh_test_map_count(void) {
    FILE *f = fopen("/proc/self/maps", "r");
    long n = 0;
    int c;
    if (!f) return -1;
    while ((c = fgetc(f)) != EOF)
        if (c == '\n') n++;
    fclose(f);
    return n;
}

/* Resident set size in KiB (VmRSS of /proc/self/status). */
static inline long gh_test_rss_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

/* 1 when this program is built with AddressSanitizer (scripts/asan.sh). ASan's
 * allocator keeps freed memory in a quarantine (256 MiB by default) and maps more of
 * its regions as that fills, so mapping and RSS counts move with ASan's own heap:
 * tests skip those checks under it (fd counts still hold). */
#if defined(__SANITIZE_ADDRESS__)
#define GH_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GH_TEST_ASAN 1
#endif
#endif
#ifndef GH_TEST_ASAN
#define GH_TEST_ASAN 0
#endif
/* Built with -fsanitize=thread (scripts/tsan.sh). */
#if defined(__SANITIZE_THREAD__)
#define GH_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GH_TEST_TSAN 1
#endif
#endif
#ifndef GH_TEST_TSAN
#define GH_TEST_TSAN 0
#endif

/* CLOCK_MONOTONIC in seconds. */
static inline double gh_test_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- assertions --------------------------------------------------------- */

static inline const char *gh_test_code_name_(long long v) {
    if (v > 0) return "not an error code";
    if (v < INT_MIN) return "out of int range";
    return gh_err_name((int)v);
}

static inline void gh_test_fail_exit_(void) {
    fflush(stdout);
    if (gh_test_state_()->nofork) abort(); /* let gdb stop here */
    _exit(1);
}

/* Print "file:line: [case] message" and end the case. */
#define GH_TEST_FAIL_(...)                                                     \
    do {                                                                       \
        fprintf(stderr, "%s:%d: [%s] ", __FILE__, __LINE__,                    \
                gh_test_state_()->current ? gh_test_state_()->current : "-");  \
        fprintf(stderr, __VA_ARGS__);                                          \
        fputc('\n', stderr);                                                   \
        gh_test_fail_exit_();                                                  \
    } while (0)

/* expr == 0 (GH_OK); prints the code's name otherwise. */
#define ASSERT_OK(expr)                                                        \
    do {                                                                       \
        long long gh_a_ = (long long)(expr);                                   \
        if (gh_a_ != 0)                                                        \
            GH_TEST_FAIL_("ASSERT_OK(%s): got %lld %s", #expr, gh_a_,          \
                          gh_test_code_name_(gh_a_));                          \
    } while (0)

/* expr == code; prints both names otherwise. */
#define ASSERT_CODE(expr, code)                                                \
    do {                                                                       \
        long long gh_a_ = (long long)(expr), gh_e_ = (long long)(code);        \
        if (gh_a_ != gh_e_)                                                    \
            GH_TEST_FAIL_("ASSERT_CODE(%s, %s): got %lld %s, expected %lld %s", \
                          #expr, #code, gh_a_, gh_test_code_name_(gh_a_),      \
                          gh_e_, gh_test_code_name_(gh_e_));                   \
    } while (0)

#define GH_TEST_CMP_(a, op, b, NAME)                                           \
    do {                                                                       \
        long long gh_a_ = (long long)(a), gh_b_ = (long long)(b);              \
        if (!(gh_a_ op gh_b_))                                                 \
            GH_TEST_FAIL_(NAME "(%s, %s): %lld " #op " %lld is false", #a, #b, \
                          gh_a_, gh_b_);                                       \
    } while (0)

/* Integer comparisons (as long long), printing both values on failure. */
#define ASSERT_EQ(a, b) GH_TEST_CMP_(a, ==, b, "ASSERT_EQ")
#define ASSERT_NE(a, b) GH_TEST_CMP_(a, !=, b, "ASSERT_NE")
#define ASSERT_LE(a, b) GH_TEST_CMP_(a, <=, b, "ASSERT_LE")
#define ASSERT_GE(a, b) GH_TEST_CMP_(a, >=, b, "ASSERT_GE")

#define ASSERT_TRUE(cond)                                                      \
    do {                                                                       \
        if (!(cond)) GH_TEST_FAIL_("ASSERT_TRUE(%s) is false", #cond);         \
    } while (0)

#define ASSERT_STREQ(a, b)                                                     \
    do {                                                                       \
        const char *gh_a_ = (a), *gh_b_ = (b);                                 \
        if (!gh_a_ || !gh_b_ || strcmp(gh_a_, gh_b_) != 0)                     \
            GH_TEST_FAIL_("ASSERT_STREQ(%s, %s): \"%s\" != \"%s\"", #a, #b,    \
                          gh_a_ ? gh_a_ : "(null)", gh_b_ ? gh_b_ : "(null)"); \
    } while (0)

/* ---- cases and the runner ----------------------------------------------- */

#define TEST(name) static void name(void)
#define RUN(name) gh_test_run_(#name, name)
#define TEST_INIT(argc, argv) gh_test_init_((argc), (argv))
#define TEST_DONE() gh_test_done_()

static inline void gh_test_init_(int argc, char **argv) {
    struct gh_test_state *s = gh_test_state_();
    const char *env;
    setvbuf(stdout, NULL, _IOLBF, 0); /* nothing lost if a child crashes */
    s->prog = argc > 0 ? argv[0] : "test";
    if (argc > 1 && strcmp(argv[1], "--list") == 0) s->list = 1;
    else if (argc > 1) s->only = argv[1];
    env = getenv("GH_TEST_NOFORK");
    s->nofork = env && strcmp(env, "1") == 0;
    env = getenv("GH_TEST_TIMEOUT");
    s->timeout = env && *env ? (unsigned)strtoul(env, NULL, 10) : 20;
}

static inline const char *gh_test_signame_(int sig) {
    switch (sig) {
    case SIGABRT: return "SIGABRT";
    case SIGALRM: return "SIGALRM";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGHUP: return "SIGHUP";
    case SIGILL: return "SIGILL";
    case SIGINT: return "SIGINT";
    case SIGKILL: return "SIGKILL";
    case SIGPIPE: return "SIGPIPE";
    case SIGQUIT: return "SIGQUIT";
    case SIGSEGV: return "SIGSEGV";
    case SIGSYS: return "SIGSYS";
    case SIGTERM: return "SIGTERM";
    case SIGTRAP: return "SIGTRAP";
    case SIGUSR1: return "SIGUSR1";
    case SIGUSR2: return "SIGUSR2";
    default: return "signal";
    }
}

/* Parent side of the time bound: kill the child; waitpid then reports it. */
static inline void gh_test_on_alarm_(int sig) {
    struct gh_test_state *s = gh_test_state_();
    (void)sig;
    s->timed_out = 1;
    if (s->child > 0) kill(s->child, SIGKILL);
}

static inline void gh_test_report_(const char *name, int ok, const char *why) {
    struct gh_test_state *s = gh_test_state_();
    if (ok) {
        s->passed++;
        printf("ok %s\n", name);
    } else {
        s->failed++;
        printf("FAIL %s (%s)\n", name, why);
    }
    fflush(stdout);
}

static inline void gh_test_run_(const char *name, void (*fn)(void)) {
    struct gh_test_state *s = gh_test_state_();
    struct sigaction sa, old;
    char why[64];
    int status = 0;
    pid_t pid;

    if (s->list) {
        printf("%s\n", name);
        return;
    }
    if (s->only && strcmp(s->only, name) != 0) return;
    s->matched++;
    s->current = name;

    if (s->nofork) {
        fn();
        gh_test_report_(name, 1, "");
        return;
    }

    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid < 0) {
        snprintf(why, sizeof why, "fork failed: %s", strerror(errno));
        gh_test_report_(name, 0, why);
        return;
    }
    if (pid == 0) {
        fn();
        exit(0); /* a normal exit: atexit, TLS destructors, valgrind's leak check */
    }

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = gh_test_on_alarm_;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, &old);
    s->timed_out = 0;
    s->child = pid;
    alarm(s->timeout);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    alarm(0);
    s->child = 0;
    sigaction(SIGALRM, &old, NULL);

    if (s->timed_out)
        snprintf(why, sizeof why, "timeout after %u s", s->timeout);
    else if (WIFSIGNALED(status))
        snprintf(why, sizeof why, "%s %d", gh_test_signame_(WTERMSIG(status)),
                 WTERMSIG(status));
    else if (WIFEXITED(status) && WEXITSTATUS(status) == 99)
        snprintf(why, sizeof why, "exit code 99: valgrind found errors");
    else
        snprintf(why, sizeof why, "exit code %d", WEXITSTATUS(status));
    gh_test_report_(name, WIFEXITED(status) && WEXITSTATUS(status) == 0 && !s->timed_out, why);
}

static inline int gh_test_done_(void) {
    struct gh_test_state *s = gh_test_state_();
    if (s->list) return 0;
    if (s->only && s->matched == 0) {
        fprintf(stderr, "%s: no test case named '%s' (try --list)\n", s->prog, s->only);
        return 2;
    }
    printf("%d passed, %d failed\n", s->passed, s->failed);
    fflush(stdout);
    return s->failed != 0;
}

#endif /* GREENHUB_TEST_HARNESS_H */

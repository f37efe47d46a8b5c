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
 *     ./test_x               every case; prints "ok name" / "FAIL name (reason)" /
 *                            "skip name (reason)" and closes with
 *                            "N passed, N failed, N skipped"
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
 * SKIP("reason", ...) (printf-style) ends the case as skipped, counted apart from
 * passed and failed: the reason names what this run lacks (a build feature, a tool that
 * changes what the case measures) and where the case does run. Call it from the case's
 * own code, before any greenlet or watcher exists (it exits the child; under
 * GH_TEST_NOFORK=1 it longjmps back to the runner).
 *
 * Output a case expects (a message on stderr it checks) is captured, not printed:
 * gh_test_capture_stderr_begin() sends fd 2 to a temporary file, and
 * gh_test_capture_stderr_end() puts fd 2 back and returns what was written (also
 * printed to stdout under GH_TEST_VERBOSE=1).
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
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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
    int passed, failed, skipped, matched;
    char *skip_why;              /* shared with the case's child: SKIP's reason */
    jmp_buf skip_jmp;            /* GH_TEST_NOFORK=1: where SKIP returns to */
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

/* A "Field:   N kB" line of /proc/self/status, in KiB (-1 if missing). */
static inline long gh_test_status_kb_(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t n = strlen(field);
    long kb = -1;
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0 && line[n] == ':') {
            kb = strtol(line + n + 1, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

/* Resident set size in KiB (VmRSS of /proc/self/status). */
static inline long gh_test_rss_kb(void) { return gh_test_status_kb_("VmRSS"); }

/* Address space in use in KiB (VmSize of /proc/self/status), for RLIMIT_AS cases. */
static inline long gh_test_vm_size_kb(void) { return gh_test_status_kb_("VmSize"); }

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

/* 1 when this program runs under valgrind (its preload is in LD_PRELOAD). */
static inline int gh_test_under_valgrind(void) {
    const char *p = getenv("LD_PRELOAD");
    return p != NULL && strstr(p, "vgpreload") != NULL;
}

/* 1 under valgrind or ASan: their own memory moves the mapping count and RSS, and they
 * own SIGSEGV handling; checks that depend on those are skipped under them. */
static inline int gh_test_under_memory_tool(void) {
    return GH_TEST_ASAN || gh_test_under_valgrind();
}

/* A death test's child about to fault on purpose (a NULL write its test expects): under
 * valgrind, errors of this process are not reported from here on, so the expected
 * "Invalid write" does not look like a failure in a passing run. Nothing otherwise,
 * and nothing where valgrind's header is not installed. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define GH_TEST_HAVE_VALGRIND_H 1
#endif
#endif
static inline void gh_test_fault_on_purpose(void) {
#ifdef GH_TEST_HAVE_VALGRIND_H
    VALGRIND_DISABLE_ERROR_REPORTING;
#endif
}

/* The expected fault happened (a handler about to exit the child): reporting back on. */
static inline void gh_test_fault_done(void) {
#ifdef GH_TEST_HAVE_VALGRIND_H
    VALGRIND_ENABLE_ERROR_REPORTING;
#endif
}

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

/* ---- expected output ---------------------------------------------------- */

#define GH_TEST_CAPTURE_MAX_ 65536

struct gh_test_capture_ {
    int saved;  /* the real fd 2 while capturing, else -1 */
    FILE *file; /* where fd 2 goes meanwhile */
    char text[GH_TEST_CAPTURE_MAX_];
};

static inline struct gh_test_capture_ *gh_test_capture_state_(void) {
    static struct gh_test_capture_ c = {-1, NULL, {0}};
    return &c;
}

/* Send this process's stderr (fd 2, and so threads' and libraries' messages) to a
 * temporary file until gh_test_capture_stderr_end(). Not nestable. */
static inline void gh_test_capture_stderr_begin(void) {
    struct gh_test_capture_ *c = gh_test_capture_state_();
    fflush(stderr);
    c->file = tmpfile();
    c->saved = dup(2);
    if (c->file == NULL || c->saved < 0 || dup2(fileno(c->file), 2) < 0) {
        fprintf(stderr, "harness: cannot capture stderr: %s\n", strerror(errno));
        _exit(1);
    }
}

/* Put stderr back; returns what was written to it meanwhile (a NUL-terminated static
 * buffer, the first 64 KiB, valid until the next capture). */
static inline const char *gh_test_capture_stderr_end(void) {
    struct gh_test_capture_ *c = gh_test_capture_state_();
    size_t n = 0;
    const char *v = getenv("GH_TEST_VERBOSE");
    fflush(stderr);
    if (c->saved >= 0) {
        dup2(c->saved, 2);
        close(c->saved);
        c->saved = -1;
    }
    c->text[0] = 0;
    if (c->file != NULL) {
        rewind(c->file);
        n = fread(c->text, 1, sizeof c->text - 1, c->file);
        c->text[n] = 0;
        fclose(c->file);
        c->file = NULL;
    }
    if (v && strcmp(v, "1") == 0) printf("  captured stderr:\n%s", c->text);
    return c->text;
}

/* ---- cases and the runner ----------------------------------------------- */

/* Exit code of a case's child that called SKIP (automake's "skipped"). */
#define GH_TEST_SKIP_EXIT_ 77

#if defined(__GNUC__) || defined(__clang__)
#define GH_TEST_PRINTF_(f, a) __attribute__((format(printf, f, a)))
#else
#define GH_TEST_PRINTF_(f, a)
#endif

static inline void gh_test_skip_(const char *fmt, ...) GH_TEST_PRINTF_(1, 2);
static inline void gh_test_skip_(const char *fmt, ...) {
    struct gh_test_state *s = gh_test_state_();
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->skip_why, 256, fmt, ap);
    va_end(ap);
    if (s->skip_why[0] == 0) snprintf(s->skip_why, 256, "no reason given");
    fflush(stdout);
    if (s->nofork) longjmp(s->skip_jmp, 1);
    exit(GH_TEST_SKIP_EXIT_); /* a normal exit, as a case that returns */
}

/* End the running case as skipped, with a reason (printf-style). */
#define SKIP(...) gh_test_skip_(__VA_ARGS__)

/* Skips a case that limits RLIMIT_AS where the limit is not the program's own: valgrind
 * counts its reservations against it, ASan its shadow memory and allocator. */
static inline void gh_test_skip_if_rlimit_as_unreliable(void) {
    if (gh_test_under_valgrind())
        SKIP("under valgrind: RLIMIT_AS counts valgrind's own reservations; "
             "runs in scripts/test.sh");
    if (GH_TEST_ASAN)
        SKIP("under ASan: its shadow memory and allocator count against RLIMIT_AS; "
             "runs in scripts/test.sh");
}

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
    /* SKIP's reason travels from the case's child in a shared page */
    s->skip_why = (char *)mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                               -1, 0);
    if (s->skip_why == (char *)MAP_FAILED) {
        fprintf(stderr, "harness: mmap: %s\n", strerror(errno));
        exit(2);
    }
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
    if (s->child > 0) {
        kill(-s->child, SIGKILL); /* its process group: processes it forked too, which
                                     would otherwise hold our stdout open */
        kill(s->child, SIGKILL);
    }
}

/* ok: 1 passed, 0 failed, -1 skipped (why: the reason). */
static inline void gh_test_report_(const char *name, int ok, const char *why) {
    struct gh_test_state *s = gh_test_state_();
    if (ok < 0) {
        s->skipped++;
        printf("skip %s (%s)\n", name, why);
    } else if (ok) {
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

    s->skip_why[0] = 0;
    if (s->nofork) {
        if (setjmp(s->skip_jmp) == 0) {
            fn();
            gh_test_report_(name, 1, "");
        } else {
            gh_test_report_(name, -1, s->skip_why);
        }
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
        setpgid(0, 0); /* a group of its own, so a timeout kills what it forked too */
        fn();
        exit(0); /* a normal exit: atexit, TLS destructors, valgrind's leak check */
    }
    setpgid(pid, pid); /* (both sides: whichever runs first) */

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
    else if (WIFEXITED(status) && WEXITSTATUS(status) == GH_TEST_SKIP_EXIT_ && s->skip_why[0]) {
        gh_test_report_(name, -1, s->skip_why);
        return;
    } else
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
    printf("%d passed, %d failed, %d skipped\n", s->passed, s->failed, s->skipped);
    fflush(stdout);
    return s->failed != 0;
}

#endif /* GREENHUB_TEST_HARNESS_H */

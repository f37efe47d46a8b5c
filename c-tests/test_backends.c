/* test_backends.c — the four hub backends ("epoll", "polling", "poll", "select"): chosen by
 * GREENHUB_BACKEND or gh_hub_config.backend before the hub's first use; unknown names
 * are GH_EINVAL; configure after first use is GH_EBUSY; gh_hub_backend() names the
 * backend in use; and the basics (timers, io waits, spawn/join) work under each.
 *
 * Build and run: see /work/brief/tests.md.
 */
#include "harness.h"
#include "backend_check.h"

#include <stdint.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>

static const char *const NAMES[] = {"epoll", "polling", "poll", "select"};
#define N_NAMES 4

static void behaviour_check(void) { backend_behaviour_check(NULL); }

/* Each backend chosen by GREENHUB_BACKEND (read when the hub is created): named by
 * gh_hub_backend(), and the behaviour check passes; no fd left after destroy. */
TEST(env_selects_each_backend) {
    int i, fd0 = gh_test_fd_count();
    for (i = 0; i < N_NAMES; i++) {
        ASSERT_OK(setenv("GREENHUB_BACKEND", NAMES[i], 1));
        ASSERT_STREQ(gh_hub_backend(), NAMES[i]);
        behaviour_check();
        ASSERT_OK(gh_hub_destroy());
        ASSERT_EQ(gh_test_fd_count(), fd0);
    }
}

/* Each backend chosen by gh_hub_configure, overriding a different GREENHUB_BACKEND:
 * named by gh_hub_backend(), behaviour check passes. */
TEST(config_selects_each_backend) {
    gh_hub_config cfg;
    int i, fd0 = gh_test_fd_count();
    for (i = 0; i < N_NAMES; i++) {
        ASSERT_OK(setenv("GREENHUB_BACKEND", NAMES[(i + 1) % N_NAMES], 1));
        gh_hub_config_init(&cfg);
        cfg.backend = NAMES[i];
        ASSERT_OK(gh_hub_configure(&cfg));
        ASSERT_STREQ(gh_hub_backend(), NAMES[i]);
        behaviour_check();
        ASSERT_OK(gh_hub_destroy());
        ASSERT_EQ(gh_test_fd_count(), fd0);
    }
}

/* No GREENHUB_BACKEND and no config: the Linux default "epoll". */
TEST(default_is_epoll) {
    ASSERT_OK(unsetenv("GREENHUB_BACKEND"));
    ASSERT_STREQ(gh_hub_backend(), "epoll");
    ASSERT_OK(gh_hub_destroy());
}

/* Unknown names by config ("", "selects", "EPOLL", "poll ", "kqueue"): GH_EINVAL, no
 * hub created (configure with a good name works afterwards), nothing leaked. */
TEST(unknown_name_config_einval) {
    static const char *const bad[] = {"", "selects", "EPOLL", "poll ", "kqueue", "pollingx"};
    gh_hub_config cfg;
    size_t i;
    int fd0 = gh_test_fd_count();
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        gh_hub_config_init(&cfg);
        cfg.backend = bad[i];
        if (i == 0) gh_test_capture_stderr_begin(); /* (the process's one line) */
        ASSERT_CODE(gh_hub_configure(&cfg), GH_EINVAL);
        if (i == 0)
            ASSERT_TRUE(strstr(gh_test_capture_stderr_end(), "greenhub: unknown backend \"\"") != NULL);
        ASSERT_EQ(gh_test_fd_count(), fd0);
    }
    gh_hub_config_init(&cfg);
    cfg.backend = "poll";
    ASSERT_OK(gh_hub_configure(&cfg));
    ASSERT_STREQ(gh_hub_backend(), "poll");
    ASSERT_OK(gh_hub_destroy());
}

/* GREENHUB_BACKEND=kqueue: the first call needing the hub is GH_EINVAL (no silent
 * fallback), gh_hub_backend() is NULL; configure with a good name still works. */
TEST(unknown_name_env_einval) {
    gh_hub_config cfg;
    ASSERT_OK(setenv("GREENHUB_BACKEND", "kqueue", 1));
    gh_test_capture_stderr_begin();
    ASSERT_CODE(gh_sleep(0), GH_EINVAL);
    ASSERT_TRUE(strstr(gh_test_capture_stderr_end(), "greenhub: unknown backend \"kqueue\"") != NULL);
    ASSERT_TRUE(gh_hub_backend() == NULL);
    gh_hub_config_init(&cfg);
    cfg.backend = "polling";
    ASSERT_OK(gh_hub_configure(&cfg));
    ASSERT_STREQ(gh_hub_backend(), "polling");
    ASSERT_OK(gh_hub_destroy());
}

/* Configure after first use: GH_EBUSY under each backend, and the backend in use does
 * not change. */
TEST(configure_after_use_ebusy) {
    gh_hub_config cfg;
    int i;
    for (i = 0; i < N_NAMES; i++) {
        ASSERT_OK(setenv("GREENHUB_BACKEND", NAMES[i], 1));
        ASSERT_OK(gh_sleep(0));
        gh_hub_config_init(&cfg);
        cfg.backend = NAMES[(i + 1) % N_NAMES];
        ASSERT_CODE(gh_hub_configure(&cfg), GH_EBUSY);
        ASSERT_STREQ(gh_hub_backend(), NAMES[i]);
        ASSERT_OK(gh_hub_destroy());
    }
}

/* The select backend and FD_SETSIZE: an fd at or past it (dup'ed there, the fd limit
 * raised if needed) is GH_ERANGE from gh_wait_read, gh_io_new+start and gh_read (at
 * registration, at once, not a hang; a read that finds data needs none); the fd below it on the same socket still works;
 * the other backends watch the high fd. Skipped (passes) if the fd limit is too low. */
TEST(select_fd_setsize_erange) {
    struct rlimit rl;
    gh_watcher w;
    int sp[2], hi = FD_SETSIZE + 10, i;
    char c = 0;
    ASSERT_OK(getrlimit(RLIMIT_NOFILE, &rl));
    if (rl.rlim_cur <= (rlim_t)hi) {
        if (rl.rlim_max <= (rlim_t)hi) return; /* cannot open an fd that high here */
        rl.rlim_cur = (rlim_t)hi + 1;
        ASSERT_OK(setrlimit(RLIMIT_NOFILE, &rl));
    }
    ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp));
    ASSERT_EQ(dup2(sp[0], hi), hi);
    for (i = 0; i < N_NAMES; i++) {
        int is_select = strcmp(NAMES[i], "select") == 0;
        ASSERT_OK(setenv("GREENHUB_BACKEND", NAMES[i], 1));
        ASSERT_OK(gh_sleep(0));
        ASSERT_EQ(gh_write(sp[1], "x", 1, 5), 1);
        if (is_select) {
            gh_test_capture_stderr_begin();
            ASSERT_CODE(gh_wait_read(hi, 5), GH_ERANGE);
            ASSERT_TRUE(strstr(gh_test_capture_stderr_end(), "stops at FD_SETSIZE") != NULL);
            ASSERT_EQ(gh_read(hi, &c, 1, 5), 1); /* data there: no registration needed */
            ASSERT_CODE(gh_read(hi, &c, 1, 5), GH_ERANGE);
            ASSERT_OK(gh_io_new(&w, hi, GH_READ));
            ASSERT_CODE(gh_watcher_start(w, backend_check_timer_cb, NULL), GH_ERANGE);
            ASSERT_OK(gh_watcher_close(w));
            ASSERT_CODE(gh_wait_read(hi, 5), GH_ERANGE);
            ASSERT_EQ(gh_write(sp[1], "y", 1, 5), 1);
            ASSERT_OK(gh_wait_read(sp[0], 5));
            ASSERT_EQ(gh_read(sp[0], &c, 1, 5), 1);
            ASSERT_EQ(c, 'y');
        } else {
            ASSERT_OK(gh_wait_read(hi, 5));
            ASSERT_EQ(gh_read(hi, &c, 1, 5), 1);
            ASSERT_EQ(c, 'x');
        }
        ASSERT_OK(gh_hub_destroy());
    }
    close(hi);
    close(sp[0]);
    close(sp[1]);
}

int main(int argc, char **argv) {
    TEST_INIT(argc, argv);
    RUN(env_selects_each_backend);
    RUN(config_selects_each_backend);
    RUN(default_is_epoll);
    RUN(unknown_name_config_einval);
    RUN(unknown_name_env_einval);
    RUN(configure_after_use_ebusy);
    RUN(select_fd_setsize_erange);
    return TEST_DONE();
}

/* consumer.c — a user's first program, built against an installed greenhub.
 *
 * Built by c-tests/consumer/CMakeLists.txt (find_package or add_subdirectory) and by
 * its Makefile (pkg-config), each against the shared and the static library. It checks
 * that the header and the library agree (GH_VERSION_HEX == gh_version()), that it runs
 * the library it was meant to (argv[1]: "shared" = gh_version comes from
 * libgreenhub.so.MAJOR, "static" = from the program itself), and that greenlets run:
 * three workers and a pipe reader, joined with a timeout. Exit 0 and an "ok" line on
 * success.
 */
#define _GNU_SOURCE 1 /* dladdr */
#include <greenhub.h>

#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int pipefd[2];

static void *worker(void *arg) {
    if (gh_sleep(0.01) != GH_OK) return NULL;
    return (void *)((intptr_t)arg * 10);
}

static void *reader(void *arg) {
    (void)arg;
    char c;
    if (gh_wait_read(pipefd[0], 1.0) != GH_OK || read(pipefd[0], &c, 1) != 1) return NULL;
    return (void *)(intptr_t)c;
}

static void *writer(void *arg) {
    (void)arg;
    gh_sleep(0.02);
    return write(pipefd[1], "G", 1) == 1 ? (void *)1 : NULL;
}

int main(int argc, char **argv) {
    const char *want = argc > 1 ? argv[1] : "";
    int failed = 0;

    if (GH_VERSION_HEX != gh_version()) {
        fprintf(stderr, "header %#x != library %#x\n", (unsigned)GH_VERSION_HEX, gh_version());
        failed = 1;
    }

    /* Where gh_version was loaded from: libgreenhub.so.MAJOR, or this program. */
    unsigned (*fn)(void) = gh_version;
    void *addr;
    memcpy(&addr, &fn, sizeof addr);
    Dl_info info;
    const char *from = dladdr(addr, &info) && info.dli_fname ? info.dli_fname : "?";
    char soname[32];
    snprintf(soname, sizeof soname, "libgreenhub.so.%d", GH_VERSION_MAJOR);
    size_t n = strlen(from), m = strlen(soname);
    int shared = n >= m && strcmp(from + n - m, soname) == 0;
    if ((!strcmp(want, "shared") && !shared) || (!strcmp(want, "static") && strstr(from, "libgreenhub"))) {
        fprintf(stderr, "expected the %s library, gh_version comes from %s\n", want, from);
        failed = 1;
    }

    if (pipe(pipefd) != 0) {
        perror("pipe");
        return 1;
    }
    gh_greenlet g[5];
    for (intptr_t i = 0; i < 3; i++) GH_SPAWN(&g[i], worker, (void *)(i + 1));
    GH_SPAWN(&g[3], reader, NULL);
    GH_SPAWN(&g[4], writer, NULL);
    size_t done = 0;
    int rc = gh_joinall(g, 5, 2.0, &done);
    if (rc != GH_OK || done != 5) {
        fprintf(stderr, "gh_joinall: %s, %zu of 5 done\n", gh_err_name(rc), done);
        failed = 1;
    }
    intptr_t expect[5] = {10, 20, 30, 'G', 1};
    for (int i = 0; i < 5; i++) {
        void *result = NULL;
        rc = gh_join(g[i], 0, &result);
        if (rc != GH_OK || (intptr_t)result != expect[i]) {
            fprintf(stderr, "greenlet %d: %s, result %ld (expected %ld)\n", i, gh_err_name(rc),
                    (long)(intptr_t)result, (long)expect[i]);
            failed = 1;
        }
        gh_release(g[i]);
    }
    close(pipefd[0]);
    close(pipefd[1]);
    if ((rc = gh_hub_destroy()) != GH_OK) {
        fprintf(stderr, "gh_hub_destroy: %s\n", gh_err_name(rc));
        failed = 1;
    }
    printf("consumer (%s): greenhub %s, gh_version from %s: %s\n", want[0] ? want : "?",
           gh_version_string(), from, failed ? "FAILED" : "ok");
    return failed;
}

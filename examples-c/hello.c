/* hello.c — greenhub's first example, in the shape of gevent's:
 *
 *   jobs = [gevent.spawn(work, n) for n in ...]; gevent.joinall(jobs, timeout=2)
 *
 * Three greenlets do concurrent work, each waiting on something of its own (a timer,
 * a socket its peer writes to later, a pipe fed by another greenlet); main joins them
 * all with a 2-second timeout and prints each result. Then the cooperative-vs-blocking
 * dots demo from the seed: a greenlet that sleeps cooperatively lets main print a dot
 * every tick; one that calls the blocking sleep() freezes everyone.
 *
 * Run: ./scripts/demo.sh   (or build against libgreenhub and run with no arguments;
 * the test suite smoke-runs it the same way, from the line below)
 */
// smoke:
#include <greenhub.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int pipefd[2];
static int sockets[2];

/* Waits on a timer: a cooperative sleep. */
static void *sleeper(void *arg) {
    (void)arg;
    int rc = gh_sleep(0.2);
    return rc == GH_OK ? "slept 0.2 s on a timer" : (void *)gh_strerror(rc);
}

/* Waits until its socket is readable, then reads what the writer sent. */
static void *socket_reader(void *arg) {
    static char buf[64];
    (void)arg;
    int rc = gh_wait_read(sockets[0], 1.0);
    if (rc != GH_OK) return (void *)gh_strerror(rc);
    ssize_t n = read(sockets[0], buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    return buf;
}

/* Feeds the pipe after a while, then waits for the pipe to be read back. */
static void *pipe_writer(void *arg) {
    (void)arg;
    gh_sleep(0.1);
    if (write(sockets[1], "hello over a socketpair", 23) != 23) return "write failed";
    if (write(pipefd[1], "x", 1) != 1) return "pipe write failed";
    return "wrote to the socket and the pipe";
}

//! [dots]
static int ticks;
static void *cooperative(void *arg) {
    (void)arg;
    gh_sleep(0.35); /* others run meanwhile */
    return NULL;
}
static void *blocking(void *arg) {
    (void)arg;
    usleep(350 * 1000); /* the whole thread stops: nobody else runs */
    return NULL;
}

/* Main prints a dot every 0.1 s while `fn` runs in a greenlet. */
static void dots(const char *label, gh_fn fn) {
    gh_greenlet g;
    ticks = 0;
    printf("%-28s", label);
    GH_SPAWN(&g, fn, NULL);
    while (gh_join(g, 0, NULL) == GH_ETIMEDOUT) {
        gh_sleep(0.1);
        putchar('.');
        fflush(stdout);
        ticks++;
    }
    gh_release(g);
    printf("  (%d dots)\n", ticks);
}
//! [dots]

int main(void) {
    if (pipe(pipefd) != 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, sockets) != 0) {
        perror("pipe/socketpair");
        return 1;
    }
    printf("greenhub %s, backend %s\n", gh_version_string(), gh_hub_backend());

    //! [joinall]
    gh_greenlet jobs[3];
    gh_spawn_options named = {0, "socket-reader"};
    GH_SPAWN(&jobs[0], sleeper, NULL);
    GH_SPAWN_EX(&jobs[1], socket_reader, NULL, &named);
    GH_SPAWN(&jobs[2], pipe_writer, NULL);

    size_t done = 0;
    int rc = gh_joinall(jobs, 3, 2.0, &done);
    printf("joinall: %s, %zu of 3 done\n", gh_err_name(rc), done);
    for (int i = 0; i < 3; i++) {
        void *result = NULL;
        char name[32];
        gh_greenlet_name(jobs[i], name, sizeof name);
        gh_join(jobs[i], 0, &result);
        printf("  job %d %-14s -> %s\n", i, name[0] ? name : "(unnamed)", result ? (char *)result : "(null)");
        gh_release(jobs[i]);
    }
    //! [joinall]
    int ready = gh_wait_read(pipefd[0], 0);
    printf("pipe readable: %s\n", ready == GH_OK ? "yes" : gh_err_name(ready));

    dots("cooperative gh_sleep(0.35):", cooperative);
    dots("blocking usleep(0.35 s):", blocking);

    close(pipefd[0]);
    close(pipefd[1]);
    close(sockets[0]);
    close(sockets[1]);
    rc = gh_hub_destroy();
    return rc == GH_OK && done == 3 ? 0 : 1;
}

/* pingpong.c — 1-byte ping-pong over a socketpair between two greenlets
 * (gh_wait_read + read + write per direction). Reports ns and round trips/s. */
#include "bench_common.h"
#include <sys/socket.h>
#include <unistd.h>
#include <fcntl.h>

static int sv[2];
static long rounds;

static void *side(void *arg) {
    int fd = sv[(long)arg];
    int first = (long)arg == 0;
    char c = 'x';
    for (long i = 0; i < rounds; i++) {
        if (first && write(fd, &c, 1) != 1) return "write";
        if (gh_wait_read(fd, GH_FOREVER) != GH_OK) return "wait";
        if (read(fd, &c, 1) != 1) return "read";
        if (!first && write(fd, &c, 1) != 1) return "write";
    }
    return NULL;
}

static double run(long n) {
    gh_greenlet a, b;
    rounds = n;
    gh_spawn(&a, side, (void *)0L);
    gh_spawn(&b, side, (void *)1L);
    double t0 = bench_now();
    gh_join(a, GH_FOREVER, NULL);
    gh_join(b, GH_FOREVER, NULL);
    double t = bench_now() - t0;
    gh_release(a);
    gh_release(b);
    return t;
}

int main(void) {
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return 1;
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    long n = bench_iters(200000);
    bench_report("socketpair ping-pong round trip", run, n, 5);
    close(sv[0]);
    close(sv[1]);
    return gh_hub_destroy() == GH_OK ? 0 : 1;
}

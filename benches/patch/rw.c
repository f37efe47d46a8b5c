/* rw.c — the cost of a patched read/write on a ready socket against plain libc.
 *
 * The main greenlet (a hub exists, so the patch takes its full path) writes one byte
 * into a blocking AF_UNIX socketpair and reads it back, ITERS times: every call finds
 * its fd ready, so this is the interposer's overhead on top of the syscall. Run it
 * without the patch (plain libc), then with LD_PRELOAD=libgreenhub_patch.so;
 * scripts/bench_patch.sh does both, with wall-clock medians and callgrind instruction
 * counts (two ITERS values, difference divided: setup cancels out).
 *
 * Usage: rw [ITERS] [--once]   (--once: one timed pass, for callgrind)
 */
#include "../bench_common.h"

#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int sv[2];

static double run(long iters) {
    char c = 'x';
    double t0 = bench_now();
    for (long i = 0; i < iters; i++) {
        if (write(sv[1], &c, 1) != 1 || read(sv[0], &c, 1) != 1) {
            perror("rw");
            exit(1);
        }
    }
    return bench_now() - t0;
}

int main(int argc, char **argv) {
    long iters = argc > 1 ? atol(argv[1]) : 200000;
    int once = argc > 2 && strcmp(argv[2], "--once") == 0;
    if (gh_sleep(0) != GH_OK) return 1; /* this thread's hub: main may park */
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return 1;
    if (once)
        run(iters);
    else
        bench_report("write+read 1 byte, ready socket", run, iters, 7);
    close(sv[0]);
    close(sv[1]);
    gh_hub_destroy();
    return 0;
}

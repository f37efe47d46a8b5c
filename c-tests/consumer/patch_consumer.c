/* patch_consumer.c — a program built against the installed cooperative libc
 * (pkg-config greenhub-patch; scripts/package_test.sh): five greenlets each call
 * usleep(200 ms); with the patch they overlap. Exit 0 when the patch is active and the
 * sleeps took well under their 1 s sum. */
#define _GNU_SOURCE 1 /* usleep, clock_gettime under -std=c11 */
#include <greenhub.h>
#include <greenhub_patch.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static void *nap(void *arg) {
    (void)arg;
    usleep(200000);
    return NULL;
}

int main(void) {
    struct timespec a, b;
    gh_greenlet g[5];
    size_t done = 0;
    if (!gh_patch_active || !gh_patch_active()) {
        puts("patch_consumer: libgreenhub_patch.so is not active");
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < 5; i++) gh_spawn(&g[i], nap, NULL);
    gh_joinall(g, 5, 5.0, &done);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double dt = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) * 1e-9;
    printf("patch_consumer: 5 x usleep(200 ms) in %.2f s\n", dt);
    gh_hub_destroy();
    return done == 5 && dt < 0.6 ? 0 : 1;
}

/* test_helper.c — native greenlet bodies for test_greenhub.py.
 *
 * Python cannot run inside a greenlet, so the Python test spawns these instead. The
 * test compiles this file into a shared library linked against the libgreenhub it
 * loaded (the SONAME makes both the same loaded copy, so they share the thread's hub).
 */
#include <greenhub.h>

#include <stdint.h>
#include <unistd.h>

/* Sleeps cooperatively (the hub and Python's callbacks run meanwhile), then returns
 * arg * 2, or -1 if the sleep failed. */
void *helper_double_after_sleep(void *arg) {
    if (gh_sleep(0.02) != GH_OK) return (void *)(intptr_t)-1;
    return (void *)((intptr_t)arg * 2);
}

/* Waits until the fd in arg is readable, reads one byte and returns 1000 + its value;
 * a negative greenhub code if the wait or the read failed. */
void *helper_read_byte(void *arg) {
    int fd = (int)(intptr_t)arg;
    int rc = gh_wait_read(fd, 5.0);
    if (rc != GH_OK) return (void *)(intptr_t)rc;
    unsigned char c;
    if (read(fd, &c, 1) != 1) return (void *)(intptr_t)GH_EINTERNAL;
    return (void *)(intptr_t)(1000 + c);
}

/* Increments the shared counter in arg five times, yielding after each increment, and
 * returns the value its last increment gave: with several of them running, the values
 * show they took turns (FIFO: 13, 14, 15 for three). */
void *helper_count(void *arg) {
    long *counter = arg, mine = 0;
    for (int i = 0; i < 5; i++) {
        mine = ++*counter;
        if (gh_sleep(0) != GH_OK) return (void *)(intptr_t)-1;
    }
    return (void *)(intptr_t)mine;
}

/* Sleeps for a long time: for kill(). Returns the code gh_sleep gave (GH_ECANCELED). */
void *helper_sleep_long(void *arg) {
    (void)arg;
    return (void *)(intptr_t)gh_sleep(60.0);
}

/* greenhub_patch.h — the cooperative libc (libgreenhub_patch.so): gevent.monkey for C.
 *
 * libgreenhub_patch.so defines the blocking libc calls a network client or server makes
 * (read, write, readv, writev, recv, recvfrom, recvmsg, send, sendto, sendmsg, accept,
 * accept4, connect, poll, ppoll, select, pselect, epoll_wait, epoll_pwait, sleep,
 * usleep, nanosleep, clock_nanosleep, getaddrinfo, gethostbyname, gethostbyname_r,
 * close, dup, dup2, dup3, fcntl). Called on a thread whose hub exists, from main or a
 * greenlet, on a socket or pipe the program keeps blocking, each one parks the calling
 * greenlet instead of the thread; everywhere else it is libc's own call.
 *
 * Activation is by symbol interposition only:
 *     LD_PRELOAD=libgreenhub_patch.so ./program        (the program links libgreenhub.so)
 *     cc prog.c -lgreenhub_patch -lgreenhub             (linked ahead of libc)
 * GREENHUB_PATCH=0 (or off) at start-up makes every function plain libc.
 * This header only declares how a program asks whether the patch is there; declare the
 * two functions weak (as below) so the program also runs without the library.
 */
#ifndef GREENHUB_PATCH_H
#define GREENHUB_PATCH_H

#ifdef __cplusplus
extern "C" {
#endif

/** 1 when the interposed functions may park greenlets (libgreenhub found in the process
 *  and GREENHUB_PATCH not 0/off), 0 when all of them are plain libc.
 *  Without libgreenhub_patch.so loaded, the weak symbol is NULL: test it first
 *  (`gh_patch_active && gh_patch_active()`). Any thread; never blocks. */
int gh_patch_active(void) __attribute__((weak));

/** A static line: "greenhub_patch VERSION: active|inactive (why); covers: read write …".
 *  Do not free it. Weak as gh_patch_active. Any thread; never blocks. */
const char *gh_patch_info(void) __attribute__((weak));

#ifdef __cplusplus
}
#endif

#endif /* GREENHUB_PATCH_H */

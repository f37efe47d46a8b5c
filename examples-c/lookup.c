/* lookup.c — the seed's example: resolve several host names concurrently.
 *
 * In gevent:
 *
 *   jobs = [gevent.spawn(socket.gethostbyname, h) for h in hosts]
 *   gevent.joinall(jobs, timeout=2)
 *   print([job.value for job in jobs])
 *
 * getaddrinfo(3) blocks its thread, so gh_getaddrinfo runs it on the hub's thread
 * pool: only the greenlet that asked waits, the others (and the hub) run on. Three
 * greenlets look up "localhost", this machine's own name and a name that cannot
 * exist; main joins them all with a 2-second timeout and prints what each got:
 * its addresses, or the error's name and text.
 *
 * The test suite smoke-runs it with no arguments:
 */
// smoke:
#include <greenhub.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* One lookup: the name to resolve and, once done, its outcome. */
struct lookup {
    const char *host;
    int rc;           /* GH_OK or the gh_getaddrinfo error */
    char addrs[256];  /* the addresses found, space-separated */
};

/* A greenlet: resolves l->host and formats the addresses into l->addrs. */
static void *resolve(void *arg) {
    struct lookup *l = arg;
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;     /* IPv4 and IPv6 */
    hints.ai_socktype = SOCK_STREAM; /* one entry per address, not per socket type */

    l->rc = gh_getaddrinfo(l->host, NULL, &hints, &res); /* only this greenlet waits */
    if (l->rc != GH_OK) return NULL;

    size_t used = 0;
    for (struct addrinfo *ai = res; ai && used < sizeof l->addrs - 1; ai = ai->ai_next) {
        char text[INET6_ADDRSTRLEN];
        const void *a = ai->ai_family == AF_INET
                            ? (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
                            : (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
        if (!inet_ntop(ai->ai_family, a, text, sizeof text)) continue;
        used += (size_t)snprintf(l->addrs + used, sizeof l->addrs - used, "%s%s", used ? " " : "", text);
    }
    freeaddrinfo(res); /* the result list is ours */
    return l;
}

int main(void) {
    char self[256] = "";
    if (gethostname(self, sizeof self - 1) != 0) strcpy(self, "localhost");

    struct lookup lookups[3] = {
        {"localhost", 1, ""},
        {self, 1, ""},
        {"nonexistent.invalid", 1, ""}, /* .invalid never resolves (RFC 2606) */
    };
    gh_greenlet jobs[3];
    for (int i = 0; i < 3; i++)
        if (GH_SPAWN(&jobs[i], resolve, &lookups[i]) != GH_OK) return 1;

    /* Wait for all three, at most 2 seconds in total. */
    size_t done = 0;
    int rc = gh_joinall(jobs, 3, 2.0, &done);
    printf("joinall: %s, %zu of 3 done\n", gh_err_name(rc), done);

    for (int i = 0; i < 3; i++) {
        struct lookup *l = &lookups[i];
        if (gh_greenlet_state(jobs[i]) != GH_STATE_DEAD)
            printf("  %-22s -> still resolving after 2 s\n", l->host);
        else if (l->rc == GH_OK)
            printf("  %-22s -> %s\n", l->host, l->addrs);
        else
            printf("  %-22s -> %s (%s)\n", l->host, gh_err_name(l->rc), gh_strerror(l->rc));
        /* A lookup still running is abandoned: its greenlet is killed, and greenhub
         * frees the result when the lookup ends. */
        gh_kill(jobs[i], 0);
        gh_release(jobs[i]);
    }

    if (gh_hub_destroy() != GH_OK) return 1;
    /* Success as the smoke test sees it: localhost resolved and the .invalid name did not. */
    return rc == GH_OK && lookups[0].rc == GH_OK && lookups[2].rc != GH_OK ? 0 : 1;
}

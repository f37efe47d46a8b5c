/* clients.c — unmodified blocking client libraries, many at once on one thread.
 *
 * N greenlets each make one call that takes DELAY seconds inside a real, unmodified
 * Debian client library — libpq's PQexec("SELECT pg_sleep(DELAY)") and libcurl's
 * curl_easy_perform() of a URL that answers after DELAY — on one thread. With
 * libgreenhub_patch.so interposed, the libraries' own poll/recv/send/connect park only
 * the calling greenlet: N calls take about DELAY. Without it (GREENHUB_PATCH=0) each
 * call blocks the thread: N × DELAY. --compare runs the same program again with the
 * patch off and prints both times side by side.
 *
 *   LD_PRELOAD=target/release/libgreenhub_patch.so ./clients --n 50 --delay 1 \
 *       --pg "host=/tmp/pgdir dbname=postgres user=postgres" \
 *       --url http://127.0.0.1:8000/ --compare
 *
 * scripts/patch_example.sh starts a PostgreSQL server (Unix socket, temporary
 * directory) and a local HTTP server that answers after DELAY, builds this program and
 * runs it. --check makes the exit status say whether the patched run was concurrent
 * (wall time under half the serial time).
 */
#include <greenhub.h>
#include <greenhub_patch.h>

#include <curl/curl.h>
#include <libpq-fe.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int n = 50;
static double delay = 1.0;
static const char *pg_conninfo, *url;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- the work one greenlet does: ordinary blocking library code -------------- */

//! [jobs]
static void *pg_job(void *arg) {
    (void)arg;
    char sql[64];
    PGconn *c = PQconnectdb(pg_conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "clients: PQconnectdb: %s", PQerrorMessage(c));
        PQfinish(c);
        return (void *)1;
    }
    snprintf(sql, sizeof sql, "SELECT pg_sleep(%g)", delay);
    PGresult *r = PQexec(c, sql);
    int ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok) fprintf(stderr, "clients: PQexec: %s", PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    return ok ? NULL : (void *)1;
}

static size_t discard(char *p, size_t size, size_t nmemb, void *user) {
    (void)p, (void)user;
    return size * nmemb;
}

static void *curl_job(void *arg) {
    (void)arg;
    long code = 0;
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 120L);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(h);
    if (rc != CURLE_OK || code != 200) {
        fprintf(stderr, "clients: curl_easy_perform: %s (HTTP %ld)\n", curl_easy_strerror(rc), code);
        return (void *)1;
    }
    return NULL;
}
//! [jobs]

//! [run]
/* N greenlets running job; returns the wall time, or -1 if a job failed. */
static double run(void *(*job)(void *)) {
    gh_greenlet *g = calloc((size_t)n, sizeof *g);
    gh_spawn_options o = {1 << 20, "client"}; /* libraries with TLS stacks like room */
    size_t done = 0;
    int failed = 0;
    double t0 = now();
    for (int i = 0; i < n; i++)
        if (gh_spawn_ex(&g[i], job, NULL, &o) != GH_OK) return -1;
    if (gh_joinall(g, (size_t)n, -1, &done) != GH_OK) failed = 1;
    double dt = now() - t0;
    for (int i = 0; i < n; i++) {
        void *r = NULL;
        if (gh_join(g[i], 0, &r) != GH_OK || r) failed = 1;
        gh_release(g[i]);
    }
    free(g);
    return failed ? -1 : dt;
}
//! [run]

/* This program again with GREENHUB_PATCH=0, one workload, printing its seconds. */
static double serial(const char *which) {
    const char *self = "/proc/self/exe";
    int p[2];
    char buf[64] = {0}, nbuf[16], dbuf[32];
    if (pipe(p) != 0) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        setenv("GREENHUB_PATCH", "0", 1);
        snprintf(nbuf, sizeof nbuf, "%d", n);
        snprintf(dbuf, sizeof dbuf, "%g", delay);
        execl(self, self, "--raw", which, "--n", nbuf, "--delay", dbuf, "--pg",
              pg_conninfo ? pg_conninfo : "", "--url", url ? url : "", (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    size_t got = 0;
    ssize_t k;
    while (got < sizeof buf - 1 && (k = read(p[0], buf + got, sizeof buf - 1 - got)) > 0)
        got += (size_t)k;
    close(p[0]);
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? atof(buf) : -1;
}

int main(int argc, char **argv) {
    int compare = 0, check = 0;
    const char *raw = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--n") && i + 1 < argc) n = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--delay") && i + 1 < argc) delay = atof(argv[++i]);
        else if (!strcmp(argv[i], "--pg") && i + 1 < argc) pg_conninfo = argv[++i];
        else if (!strcmp(argv[i], "--url") && i + 1 < argc) url = argv[++i];
        else if (!strcmp(argv[i], "--compare")) compare = 1;
        else if (!strcmp(argv[i], "--check")) check = compare = 1;
        else if (!strcmp(argv[i], "--raw") && i + 1 < argc) raw = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--n N] [--delay S] [--pg CONNINFO] [--url URL] [--compare] [--check]\n", argv[0]);
            return 2;
        }
    }
    if (pg_conninfo && !*pg_conninfo) pg_conninfo = NULL;
    if (url && !*url) url = NULL;
    if (n < 1) n = 1;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (raw) { /* the --compare child: one workload, its seconds on stdout */
        double t = run(!strcmp(raw, "pg") ? pg_job : curl_job);
        printf("%.3f\n", t);
        return t < 0;
    }
    printf("%s\n", gh_patch_info ? gh_patch_info() : "greenhub_patch: not loaded (plain libc)");
    printf("%-44s %9s %12s %14s\n", "workload", "greenlets", "wall (s)",
           compare ? "patch off (s)" : "");
    int bad = 0;
    for (int w = 0; w < 2; w++) {
        const char *which = w == 0 ? "pg" : "curl";
        if (w == 0 && !pg_conninfo) continue;
        if (w == 1 && !url) continue;
        char label[64];
        if (w == 0) snprintf(label, sizeof label, "libpq PQexec(SELECT pg_sleep(%g))", delay);
        else snprintf(label, sizeof label, "libcurl curl_easy_perform (%g s response)", delay);
        double t = run(w == 0 ? pg_job : curl_job);
        double s = compare ? serial(which) : 0;
        printf("%-44s %9d %12.2f", label, n, t);
        if (compare) printf(" %14.2f", s);
        printf("\n");
        fflush(stdout);
        if (t < 0 || (compare && s < 0)) bad = 1;
        if (check && !(t < s / 2 && t < delay * n / 2)) {
            fprintf(stderr, "clients: %s: %.2f s with the patch is not concurrent (patch off: %.2f s)\n",
                    which, t, s);
            bad = 1;
        }
    }
    curl_global_cleanup();
    gh_hub_destroy();
    return bad;
}

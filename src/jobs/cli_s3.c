#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include "archive_scan.h"
#include "cli.h"
#include "cli_s3.h"
#include "config.h"
#include "config_error.h"
#include "http.h"
#include "log.h"
#include "s3_mirror.h"
#include "store.h"
#include "util.h"

/* Logs kept in the cache between commands, unless CONNECT_JOBS_S3_CACHE_MB says otherwise. */
#define DEFAULT_CACHE_MB 1024

struct cli_s3 {
        struct store *store;
        struct s3_mirror *mirror;
        char *name; /* s3://bucket[/prefix] */
        char *dir;
        bool curl;            /* http_global_init() done (ls and search come before main's) */
        pthread_mutex_t lock; /* the fetches, one at a time (search's threads, its scan) */
};

static char *cache_dir(const struct config *cfg)
{
        const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
        char id[256], *dir = NULL;
        int n;

        /* One mirror per bucket and prefix, wherever it is reached from. */
        n = snprintf(id, sizeof(id), "%s\n%s\n%s", cfg->s3_endpoint, cfg->s3_bucket,
                     cfg->s3_prefix ? cfg->s3_prefix : "");
        uint64_t h = hash64(id, n > 0 && (size_t) n < sizeof(id) ? (size_t) n : sizeof(id) - 1);
        if (xdg && xdg[0] == '/')
                n = asprintf(&dir, "%s/connect-jobs/s3/%016" PRIx64, xdg, h);
        else if (home && home[0] == '/')
                n = asprintf(&dir, "%s/.cache/connect-jobs/s3/%016" PRIx64, home, h);
        else
                return NULL;
        return n < 0 ? NULL : dir;
}

static uint64_t cache_cap_bytes(void)
{
        const char *v = getenv("CONNECT_JOBS_S3_CACHE_MB");
        char *end;
        unsigned long long mb;

        if (!v || !*v)
                return (uint64_t) DEFAULT_CACHE_MB << 20;
        errno = 0;
        mb = strtoull(v, &end, 10);
        if (errno || *end || mb > (UINT64_MAX >> 20))
                return (uint64_t) DEFAULT_CACHE_MB << 20;
        return (uint64_t) mb << 20;
}

void cli_s3_free(struct cli_s3 *x)
{
        struct s3_mirror_stats ms;
        struct store_s3_counts sc;

        if (!x)
                return;
        if (x->mirror) {
                s3_mirror_stats(x->mirror, &ms);
                if (ms.logs_fetched > 0)
                        (void) s3_mirror_trim_logs(x->mirror, cache_cap_bytes());
                s3_mirror_stats(x->mirror, &ms);
                store_s3_counts(x->store, &sc);
                log_printf(LOG_DEBUG,
                           "s3: %" PRIu64 " LIST, %" PRIu64 " GET, %" PRIu64
                           " retries; cache %s: %" PRIu64 " objects listed, %" PRIu64
                           " records fetched (%" PRIu64 " bytes), %" PRIu64
                           " logs fetched (%" PRIu64 " bytes), %" PRIu64 " found cached, %" PRIu64
                           " removed, %" PRIu64 " logs trimmed, %" PRIu64
                           " day folders from the catalog, %" PRIu64
                           " logs fetched in part (%" PRIu64 " ranged GET, %" PRIu64 " bytes)",
                           sc.list, sc.get, sc.retried, x->dir, ms.listed, ms.fetched,
                           ms.fetched_bytes, ms.logs_fetched, ms.logs_bytes, ms.cached, ms.removed,
                           ms.trimmed, ms.covered, ms.parts, ms.part_gets, ms.part_bytes);
        }
        s3_mirror_free(x->mirror);
        store_free(x->store);
        if (x->curl)
                http_global_cleanup();
        free(x->name);
        free(x->dir);
        pthread_mutex_destroy(&x->lock);
        free(x);
}

int cli_s3_get(struct cli *c, struct cli_s3 **ret)
{
        struct config *cfg = c->config;
        struct config_error err = {{0}};
        struct store_s3_options o;
        struct cli_s3 *x;
        char why[512];
        int r;

        *ret = NULL;
        if (!cfg || !cfg->s3 || c->archive)
                return 0;
        if (c->s3) {
                *ret = c->s3;
                return 0;
        }
        /* The process will hold the S3 secret: no core dumps, no ptrace by other users. */
        (void) prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
        r = config_resolve_s3_credentials(cfg, &err);
        if (r < 0) {
                cli_say("%s", err.message);
                return CLI_EXIT_CONFIG;
        }
        x = calloc(1, sizeof(*x));
        if (!x || asprintf(&x->name, "s3://%s%s%s", cfg->s3_bucket, cfg->s3_prefix ? "/" : "",
                           cfg->s3_prefix ? cfg->s3_prefix : "") < 0) {
                free(x);
                cli_say("out of memory");
                return CLI_EXIT_FAILURE;
        }
        pthread_mutex_init(&x->lock, NULL);
        x->dir = cache_dir(cfg);
        if (!x->dir) {
                cli_say("no folder for the S3 archive's cache: set HOME or XDG_CACHE_HOME");
                cli_s3_free(x);
                return CLI_EXIT_FAILURE;
        }
        if (http_global_init() < 0) {
                cli_say("cannot initialize libcurl");
                cli_s3_free(x);
                return CLI_EXIT_FAILURE;
        }
        x->curl = true;
        store_s3_options_from_config(cfg, &o);
        o.staging_dir = NULL; /* a reader */
        r = store_s3_open(&o, &x->store, why, sizeof(why));
        if (r < 0) {
                cli_say("cannot read the archive %s: %s", x->name, why);
                cli_s3_free(x);
                return CLI_EXIT_FAILURE;
        }
        r = s3_mirror_open(x->store, x->dir, &x->mirror);
        if (r < 0) {
                cli_say("cannot make the cache of %s in %s: %s", x->name, x->dir, strerror(-r));
                cli_s3_free(x);
                return CLI_EXIT_FAILURE;
        }
        log_printf(LOG_DEBUG, "reading the archive %s at %s through the cache %s", x->name,
                   cfg->s3_endpoint, x->dir);
        c->s3 = x;
        *ret = x;
        return 0;
}

void cli_s3_use_catalog(struct cli_s3 *x)
{
        const char *env = getenv("CJA_CATALOG");

        s3_mirror_use_catalog(x->mirror, !(env && strcmp(env, "0") == 0));
}

struct catalog *cli_s3_catalog(const struct cli_s3 *x)
{
        return s3_mirror_catalog(x->mirror);
}

int cli_s3_rootfd(const struct cli_s3 *x)
{
        return s3_mirror_rootfd(x->mirror);
}

const char *cli_s3_name(const struct cli_s3 *x)
{
        return x->name;
}

const char *cli_s3_cache_dir(const struct cli_s3 *x)
{
        return x->dir;
}

char *cli_s3_display_path(const struct cli_s3 *x, const char *cache_path)
{
        size_t n = strlen(x->dir);
        char *p = NULL;

        if (strncmp(cache_path, x->dir, n) == 0 && cache_path[n] == '/')
                return asprintf(&p, "%s%s", x->name, cache_path + n) < 0 ? NULL : p;
        return strdup(cache_path);
}

static const char *what(int r)
{
        switch (r) {
        case -EKEYREJECTED:
                return "S3 refuses the credentials";
        case -EIO:
                return "S3 cannot be reached (or keeps failing)";
        case -EPROTO:
                return "S3 gave an unexpected answer";
        default:
                return strerror(-r);
        }
}

int cli_s3_sync(struct cli_s3 *x, const struct scan_filter *f, const char *key)
{
        int r = s3_mirror_sync(x->mirror, f, key);

        if (r < 0)
                cli_say("cannot read the archive %s: %s", x->name, what(r));
        return r;
}

static int fetch_logs(struct cli_s3 *x, const struct scan_job *jobs, size_t n, int *results)
{
        int r = s3_mirror_fetch_logs(x->mirror, jobs, n, results);

        if (r < 0 && r != -ENOENT)
                cli_say("cannot fetch logs from the archive %s: %s", x->name, what(r));
        return r;
}

int cli_s3_fetch_logs(struct cli_s3 *x, const struct scan_job *jobs, size_t n)
{
        int r;

        pthread_mutex_lock(&x->lock);
        r = fetch_logs(x, jobs, n, NULL);
        pthread_mutex_unlock(&x->lock);
        return r;
}

int cli_s3_fetch_parts(struct cli_s3 *x, struct s3_part *parts, size_t n)
{
        struct scan_job *whole = NULL;
        size_t *which = NULL, k = 0;
        int *res = NULL, r;

        pthread_mutex_lock(&x->lock);
        r = s3_mirror_fetch_parts(x->mirror, parts, n);
        for (size_t i = 0; i < n; i++)
                k += parts[i].result < 0;
        if (r >= 0 && k > 0) {
                whole = calloc(k, sizeof(*whole));
                which = calloc(k, sizeof(*which));
                res = calloc(k, sizeof(*res));
                r = whole && which && res ? 0 : -ENOMEM;
        }
        if (r >= 0 && k > 0) {
                k = 0;
                for (size_t i = 0; i < n; i++)
                        if (parts[i].result < 0) {
                                which[k] = i;
                                whole[k++] = *parts[i].job; /* shallow */
                        }
                r = fetch_logs(x, whole, k, res);
                for (size_t i = 0; i < k; i++)
                        parts[which[i]].result = res[i] < 0 ? res[i] : 1;
        }
        pthread_mutex_unlock(&x->lock);
        free(whole);
        free(which);
        free(res);
        return r;
}

int cli_s3_part_open(const struct cli_s3 *x, const struct scan_job *job, int *ret_dfd, char *name,
                     size_t size)
{
        return s3_mirror_part_open(x->mirror, job, ret_dfd, name, size);
}

int cli_s3_sync_job(struct cli_s3 *x, const char *guid, const char *key)
{
        const char *guids[1] = {guid};
        struct scan_filter f = {.guids = guids, .n_guids = 1};
        struct scan_job j = {0};
        int r;

        /* In the cache already: the listing of its day folder alone says whether it is still
         * in the bucket (one request, not the item's every folder). */
        if (scan_find_job(cli_s3_rootfd(x), guid, key, NULL, NULL, &j) > 0) {
                struct tm tm = {.tm_year = j.year - 1900, .tm_mon = j.month - 1, .tm_mday = j.day};
                scan_job_done(&j);
                j = (struct scan_job){0};
                f.has_since = f.has_until = true;
                f.since = (int64_t) timegm(&tm);
                f.until = f.since + 86400;
                r = cli_s3_sync(x, &f, key);
                if (r < 0)
                        return r;
                r = scan_find_job(cli_s3_rootfd(x), guid, key, NULL, NULL, &j);
                scan_job_done(&j);
                if (r > 0)
                        return 0;
                f.has_since = f.has_until = false; /* gone from there: look everywhere */
        }
        return cli_s3_sync(x, &f, key);
}

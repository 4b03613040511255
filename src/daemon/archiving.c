/*
 * The daemon's side of the archive: opening, locking and sweeping it at start, committing the
 * batch, retention (the cutoff and the prune), and the disk guard (min_free_mb).
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include "config.h"
#include "internal.h"
#include "log.h"
#include "store.h"
#include "util.h"

/* Retention: a job dated before the cutoff day is past the window and is not fetched. */
bool job_is_expired(const struct daemon *d, const struct archive_loc *j)
{
        if (d->config->retention_days == 0)
                return false;
        const struct ymd when = {j->year, j->month, j->day};

        return ymd_compare(&when, &d->cutoff) < 0;
}

/* Moves the retention cutoff to today minus retention_days and prunes what fell out. */
void retention_run(struct daemon *d)
{
        unsigned removed = 0;
        struct tm tm;
        int r;

        if (d->config->retention_days == 0)
                return;
        time_t cutoff = (time_t) (now_usec(CLOCK_REALTIME) / USEC_PER_SEC) -
                        (time_t) d->config->retention_days * 86400;
        if (!gmtime_r(&cutoff, &tm))
                return;
        d->cutoff = (struct ymd){tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday};
        r = archive_prune(d->archive, d->cutoff.year, d->cutoff.month, d->cutoff.day, &removed);
        if (r < 0)
                (void) log_errno(LOG_WARNING, r,
                                 "retention: cannot prune everything before %04d-%02d-%02d: %m; "
                                 "will retry",
                                 d->cutoff.year, d->cutoff.month, d->cutoff.day);
        if (removed > 0)
                log_printf(LOG_NOTICE, "retention: removed %u day folders before %04d-%02d-%02d",
                           removed, d->cutoff.year, d->cutoff.month, d->cutoff.day);
}

/*
 * The disk guard: below min_free_mb no new job starts (jobs already streaming finish or fail
 * and are retried); polls resume by themselves once space returns. Returns true when low.
 */
bool disk_check(struct daemon *d)
{
        uint64_t free_bytes;
        bool low;

        if (d->config->min_free_mb == 0 || archive_free_space(d->archive, &free_bytes) < 0)
                low = false;
        else {
                uint64_t free_mb = free_bytes / (1024 * 1024);
                low = free_mb < d->config->min_free_mb;
                d->free_mb = free_mb;
                if (low && !d->disk_low) {
                        log_printf(LOG_WARNING,
                                   "only %" PRIu64 " MB free in %s (min_free_mb is %" PRIu64
                                   "): archiving paused until space returns",
                                   free_mb, d->config->archive_dir, d->config->min_free_mb);
                } else if (!low && d->disk_low) {
                        log_printf(LOG_NOTICE, "%" PRIu64 " MB free in %s again: archiving resumes",
                                   free_mb, d->config->archive_dir);
                }
        }
        if (low != d->disk_low)
                d->status_dirty = true;
        d->disk_low = low;
        return low;
}

/* Test knobs for the S3 store's multipart sizes (bytes; unset or invalid: the defaults). */
static uint64_t s3_env_bytes(const char *name)
{
        const char *v = getenv(name);
        char *end;
        unsigned long long n;

        if (!v || !*v)
                return 0;
        errno = 0;
        n = strtoull(v, &end, 10);
        return errno == 0 && *end == '\0' ? (uint64_t) n : 0;
}

int daemon_archive_setup(struct daemon *d)
{
        unsigned removed = 0;
        int r;

        /* The one place the store is chosen: the local folder, or S3 with the folder as its
         * staging area. */
        (void) snprintf(d->archive_name, sizeof(d->archive_name), "%s", d->config->archive_dir);
        if (d->config->s3) {
                const struct config *c = d->config;
                struct store_s3_options o;
                struct store *st = NULL;
                char why[512];

                store_s3_options_from_config(c, &o);
                o.multipart_threshold = s3_env_bytes("CJA_S3_MULTIPART_THRESHOLD");
                o.part_size = s3_env_bytes("CJA_S3_PART_SIZE");
                o.abandoned_upload_seconds = (unsigned) s3_env_bytes("CJA_S3_ABANDONED_SECONDS");
                o.verbose = d->verbose;
                r = store_s3_open(&o, &st, why, sizeof(why));
                if (r < 0) {
                        log_printf(LOG_ERR, "cannot open the archive in S3: %s", why);
                        return r;
                }
                r = archive_open_store(st, c->compression_level, ARCHIVE_THREADS_AUTO, &d->archive);
                if (r < 0)
                        return log_errno(LOG_ERR, r, "cannot open the archive: %m");
                (void) snprintf(d->archive_name, sizeof(d->archive_name), "s3://%s%s%s",
                                c->s3_bucket, c->s3_prefix ? "/" : "",
                                c->s3_prefix ? c->s3_prefix : "");
                log_printf(LOG_INFO, "archiving to s3 bucket %s%s%s at %s (staging in %s)",
                           c->s3_bucket, c->s3_prefix ? ", prefix " : "",
                           c->s3_prefix ? c->s3_prefix : "", c->s3_endpoint, c->archive_dir);
        } else {
                r = archive_open(d->config->archive_dir, d->config->compression_level,
                                 ARCHIVE_THREADS_AUTO, &d->archive);
                if (r < 0)
                        return log_errno(LOG_ERR, r, "cannot open the archive directory %s: %m",
                                         d->config->archive_dir);
        }
        /* One writer per archive, before the sweep: another writer's temporaries are live. */
        pid_t holder = 0;
        r = archive_lock(d->archive, &holder);
        if (r == -EBUSY) {
                char pid[32] = "unknown";
                if (holder > 0)
                        (void) snprintf(pid, sizeof(pid), "%ld", (long) holder);
                log_printf(LOG_ERR,
                           "archive %s is in use by another connect-job-archiver (PID %s); "
                           "only one may write to an archive at a time, so this one exits",
                           d->config->archive_dir, pid);
                return r;
        }
        if (r < 0)
                return log_errno(LOG_ERR, r, "cannot lock the archive %s/%s: %m",
                                 d->config->archive_dir, ARCHIVE_LOCK_NAME);
        unsigned threads = archive_threads(d->archive);
        if (threads > 0)
                log_printf(LOG_INFO, "compressing on %u threads", threads);
        else
                log_printf(LOG_INFO, "compressing on the main thread (one CPU)");
        r = archive_sweep_temporaries(d->archive, &removed);
        if (r < 0)
                return log_errno(LOG_ERR, r, "cannot sweep temporaries in %s: %m",
                                 d->config->archive_dir);
        if (removed > 0)
                log_printf(LOG_NOTICE, "removed %u temporary files left by an earlier run",
                           removed);
        /* The search catalog (README "Searching the archive"); CJA_CATALOG=0 turns it off, for
         * the benchmark's comparison. Without it, connect-jobs reads the records and logs. With
         * the archive in S3 it is written in the local folder and its sealed files copied to
         * the bucket (README "The archive in S3"). */
        const char *cat = getenv("CJA_CATALOG"), *seal = getenv("CJA_CATALOG_SEAL_JOBS");
        if (!cat || strcmp(cat, "0") != 0) {
                r = archive_catalog_enable(d->archive, d->config->archive_dir,
                                           seal ? (unsigned) strtoul(seal, NULL, 10) : 0);
                if (r < 0)
                        (void) log_errno(LOG_WARNING, r,
                                         "cannot open the search catalog in %s/.catalog: %m; "
                                         "connect-jobs will read the records instead",
                                         d->config->archive_dir);
        }
        d->batch = archive_batch_new(d->archive);
        if (!d->batch)
                return log_errno(LOG_ERR, -ENOMEM, "out of memory");
        return 0;
}

/* The retries of an S3 store's requests so far (0 for a local archive). */
static uint64_t store_retries(const struct daemon *d)
{
        struct store_s3_counts c;

        if (!d->config->s3)
                return 0;
        store_s3_counts(archive_store(d->archive), &c);
        return c.retried;
}

void batch_commit(struct daemon *d)
{
        uint64_t retries, t0;
        int r;

        if (archive_batch_size(d->batch) == 0)
                return;
        retries = store_retries(d);
        t0 = now_usec(CLOCK_MONOTONIC);
        r = archive_batch_commit(d->batch);
        if (r < 0)
                (void) log_errno(LOG_ERR, r, "cannot commit archived jobs to %s: %m",
                                 d->archive_name);
        if (!d->config->s3)
                return;
        /* The store sleeps and retries inside the commit (the loop waits): said once while it
         * lasts, and once when a batch goes through without a retry again. */
        retries = store_retries(d) - retries;
        if (retries > 0 && !d->store_slow)
                log_printf(LOG_WARNING,
                           "the S3 store at %s is failing or slow: %" PRIu64
                           " requests retried in a batch of %.1f s (the loop waits meanwhile)",
                           d->config->s3_endpoint, retries,
                           (double) (now_usec(CLOCK_MONOTONIC) - t0) / 1e6);
        else if (retries == 0 && r >= 0 && d->store_slow)
                log_printf(LOG_NOTICE, "the S3 store at %s answers again", d->config->s3_endpoint);
        d->store_slow = retries > 0 || (r < 0 && d->store_slow);
}

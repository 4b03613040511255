#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/signalfd.h>
#include <sys/statvfs.h>
#include <time.h>

#include <json-c/json.h>
#include <json-c/linkhash.h>

#include "archive.h"
#include "config.h"
#include "connect.h"
#include "daemon.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "util.h"

/* Commit a batch once it holds this many jobs, or once its oldest job waited this long. */
#define BATCH_MAX_JOBS 256
#define BATCH_MAX_USEC (1 * USEC_PER_SEC)
/*
 * Flat memory: a job list is parsed as it arrives, and the jobs to archive wait as raw bytes
 * in a spool file (see on_list_done), so a list costs the same memory whatever its length.
 * At most TASKS_MAX jobs are live (parsed, with their requests) at once, across items: more
 * than a batch, so that downloads go on while a full batch commits.
 */
#ifndef TASKS_MAX
#define TASKS_MAX (2 * BATCH_MAX_JOBS)
#endif
/* Items holding a spool at once (an open file each); more wait to be polled. */
#define SPOOLS_MAX 64
/* The spool's write buffer while a list arrives. */
#define SPOOL_BUFFER (64 * 1024)
/* A job failing this many polls in a row is reported as stuck (log line and metric). */
#define STUCK_AFTER_FAILURES 5
/* How often the service checks free space, and prunes past the retention window. */
#define DISK_CHECK_EVERY_USEC (5 * USEC_PER_SEC)
#define RETENTION_EVERY_USEC  (3600 * USEC_PER_SEC)
/* A request is tried this often in one cycle before the job waits for the next cycle. */
#define HTTP_MAX_ATTEMPTS 4

struct daemon_stats {
        uint64_t jobs_archived;
        uint64_t jobs_failed;  /* jobs that could not be archived (this run) */
        uint64_t items_failed; /* job lists that could not be fetched or parsed */
        uint64_t bytes_in;     /* uncompressed log bytes */
        uint64_t bytes_out;    /* gzip bytes written */
};

/* One watched content item. */
struct item {
        struct daemon *d;
        char *guid;
        char *name; /* NULL when the config gives none */
        char *list_url;
        bool listing;   /* its job list request is in flight */
        unsigned tasks; /* jobs of its last list still being archived */
        bool polled;    /* its last poll, and every job it found, is over */
        bool removed;   /* dropped by a reload: freed once idle */
        bool failing;   /* its last poll or one of its jobs failed */
        uint64_t next_poll_usec;
        uint64_t last_poll_usec; /* CLOCK_REALTIME of the last successful list, 0 if none */
        uint64_t poll_started_usec;
        double last_poll_seconds;
        struct failure *failures; /* jobs that failed in a row, until archived */
        struct item *next_retired;

        /* The job list as it arrives (on_list_done says how it works). */
        struct connect_stream *stream;
        unsigned n_due, n_done, n_waiting, n_expired, n_invalid;
        bool list_error; /* a job could not be located: its undated dates are all kept */
        /* Elements to act on, "[u32 length][bytes]" each, in an unlinked file. */
        int spool_fd;
        char *spool_buf; /* the write buffer while the list arrives */
        size_t spool_buf_len;
        uint64_t spool_size, spool_read;
        size_t n_pending; /* records in the spool not read back yet */
        /* Jobs without a start time seen by this process: key -> struct undated. */
        struct lh_table *undated;
        unsigned generation; /* of the current poll, to forget jobs no longer listed */
};

/* Where a job without a usable start time goes (see job_locate). */
struct undated {
        int year, month, day;
        enum job_date_source source;
        unsigned generation;
        char key[];
};

/* A job of an item that keeps failing: counted so that it is reported, never dropped. */
struct failure {
        struct failure *next;
        unsigned count;
        char key[]; /* as served (may be unsafe: it is only compared and escaped) */
};

/* One due job on its way into the archive. */
struct task {
        struct daemon *d;
        struct item *item;
        struct job job; /* moved out of the job list */
        struct archive_loc loc;
        struct json_object *error; /* NULL: none (204) */
        struct archive_file *file; /* the log being streamed, until the batch takes it */
        bool has_log;
        uint64_t log_bytes, gzip_bytes;
};

struct daemon {
        struct config *config;
        bool verbose;
        bool once;
        struct http_engine *http;
        struct archive *archive;
        struct archive_batch *batch;
        uint64_t batch_since_usec;
        struct item **items;
        size_t n_items;
        struct item *retired; /* removed by a reload, still busy */
        struct daemon_stats stats;
        struct notify_watchdog watchdog;
        char problem[256]; /* what is wrong right now, for STATUS; empty when all is well */
        uint64_t last_cycle_usec;
        bool status_dirty;
        size_t n_tasks;    /* jobs between their list and their commit, all items together */
        size_t n_listing;  /* job lists in flight */
        size_t n_spooling; /* items with a spool file open */
        size_t feed_next;  /* the item feed_tasks() starts with */
        int64_t start_epoch;
        bool connect_up;
        bool disk_low; /* free space under min_free_mb: no new jobs start */
        uint64_t free_mb;
        uint64_t next_disk_check_usec;
        uint64_t next_prune_usec;
        int cutoff_year, cutoff_month, cutoff_day; /* retention: jobs before this are gone */
        int signal_fd;
        bool stop;
        bool reload;
};

/* "content=<guid> (<name>) job=<key>: <message>", every string from outside escaped. */
_printf_(4, 5) static void log_job(int prio, const struct item *it, const char *key,
                                   const char *fmt, ...)
{
        char msg[1024], name[LOG_ESCAPE_MAX], k[LOG_ESCAPE_MAX];
        va_list ap;

        if (!log_enabled(prio))
                return;
        va_start(ap, fmt);
        (void) vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (key)
                log_printf(prio, "content=%s (%s) job=%s: %s", it->guid,
                           it->name ? log_escape(it->name, name, sizeof(name)) : "-",
                           log_escape(key, k, sizeof(k)), msg);
        else
                log_printf(prio, "content=%s (%s): %s", it->guid,
                           it->name ? log_escape(it->name, name, sizeof(name)) : "-", msg);
}

/* The reason a request failed, in words: Connect's error message when there is one. */
static const char *result_reason(const struct http_result *res, char *buf, size_t size)
{
        if (res->curl_code != 0 || res->sink_error != 0) {
                (void) snprintf(buf, size, "%s", res->detail);
                return buf;
        }
        (void) connect_error_message(res->status, res->body, res->body_len, buf, size);
        if (res->outcome == HTTP_AUTH) {
                size_t n = strlen(buf);
                (void) snprintf(buf + n, size - n, "%s",
                                res->status == 401 ? " (the API key was rejected)"
                                                   : " (the API key lacks rights to this content)");
        }
        return buf;
}

static void spool_close(struct item *it)
{
        if (it->spool_fd >= 0) {
                it->spool_fd = safe_close(it->spool_fd);
                it->d->n_spooling--;
        }
        free(it->spool_buf);
        it->spool_buf = NULL;
        it->spool_buf_len = 0;
        it->spool_size = it->spool_read = 0;
        it->n_pending = 0;
}

static void item_free(struct item *it)
{
        if (!it)
                return;
        spool_close(it);
        connect_stream_free(it->stream);
        if (it->undated)
                lh_table_free(it->undated);
        while (it->failures) {
                struct failure *f = it->failures;
                it->failures = f->next;
                free(f);
        }
        free(it->guid);
        free(it->name);
        free(it->list_url);
        free(it);
}

static void item_idle_check(struct item *it)
{
        struct daemon *d = it->d;

        if (it->listing || it->tasks > 0 || it->n_pending > 0)
                return;
        if (it->removed) {
                for (struct item **pp = &d->retired; *pp; pp = &(*pp)->next_retired)
                        if (*pp == it) {
                                *pp = it->next_retired;
                                break;
                        }
                item_free(it);
                return;
        }
        it->polled = true;
        d->last_cycle_usec = now_usec(CLOCK_MONOTONIC);
        it->last_poll_seconds =
                (double) (d->last_cycle_usec - it->poll_started_usec) / (double) USEC_PER_SEC;
        d->status_dirty = true;
        if (!d->once)
                it->next_poll_usec = d->last_cycle_usec +
                                     (uint64_t) d->config->poll_interval_seconds * USEC_PER_SEC;
}

static void task_free(struct task *t)
{
        struct item *it;

        if (!t)
                return;
        it = t->item;
        archive_file_abort(t->file);
        json_object_put(t->error);
        connect_job_done(&t->job);
        free(t);
        it->tasks--;
        it->d->n_tasks--;
        item_idle_check(it);
}

/* "<guid>/YYYY/MM/DD", the job's folder in the archive, for messages. */
static const char *task_folder(const struct task *t, char *buf, size_t size)
{
        (void) snprintf(buf, size, "%s/%04d/%02d/%02d", t->loc.guid, t->loc.year, t->loc.month,
                        t->loc.day);
        return buf;
}

/* Counts one more failure of key in a row; returns the count (0 on out-of-memory). */
static unsigned failure_count(struct item *it, const char *key)
{
        struct failure *f;

        for (f = it->failures; f; f = f->next)
                if (strcmp(f->key, key) == 0)
                        return ++f->count;
        f = malloc(sizeof(*f) + strlen(key) + 1);
        if (!f)
                return 0;
        f->count = 1;
        strcpy(f->key, key);
        f->next = it->failures;
        it->failures = f;
        return 1;
}

static void failure_clear(struct item *it, const char *key)
{
        for (struct failure **pp = &it->failures; *pp; pp = &(*pp)->next)
                if (strcmp((*pp)->key, key) == 0) {
                        struct failure *f = *pp;
                        *pp = f->next;
                        free(f);
                        return;
                }
}

/*
 * Reports one failure of a job and counts it. The first few failures in a row are warnings;
 * the STUCK_AFTER_FAILURES-th is an error saying it keeps failing; after that the job is
 * still retried every poll, but only debug lines and the metric speak of it, so a job that
 * can never be archived does not flood the journal.
 */
_printf_(3, 4) static void job_failed(struct item *it, const char *key, const char *fmt, ...)
{
        struct daemon *d = it->d;
        char msg[768];
        va_list ap;
        unsigned n;

        va_start(ap, fmt);
        (void) vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (d->stop) {
                log_job(LOG_DEBUG, it, key, "%s (stopping)", msg);
                return;
        }
        d->stats.jobs_failed++;
        it->failing = true;
        n = d->once ? 1 : failure_count(it, key);
        if (n < STUCK_AFTER_FAILURES)
                log_job(LOG_WARNING, it, key, "%s; will retry next cycle", msg);
        else if (n == STUCK_AFTER_FAILURES)
                log_job(LOG_ERR, it, key, "%s; failed %u polls in a row, still retrying every poll",
                        msg, n);
        else
                log_job(LOG_DEBUG, it, key, "%s; failed %u polls in a row", msg, n);
}

_printf_(2, 3) static void task_fail(struct task *t, const char *fmt, ...)
{
        char msg[768];
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        job_failed(t->item, t->job.key, "%s", msg);
        task_free(t);
}

static void on_committed(void *userdata, int r)
{
        struct task *t = userdata;
        char folder[256];

        if (r < 0) {
                errno = -r;
                task_fail(t, "cannot write to %s/%s: %m", t->d->config->archive_dir,
                          task_folder(t, folder, sizeof(folder)));
                return;
        }
        struct daemon *d = t->d;
        char where[64];
        (void) snprintf(where, sizeof(where), "%04d/%02d/%02d", t->loc.year, t->loc.month,
                        t->loc.day);
        if (t->has_log)
                log_job(LOG_INFO, t->item, t->job.key,
                        "archived in %s: log %" PRIu64 " bytes (%" PRIu64 " gzip)%s", where,
                        t->log_bytes, t->gzip_bytes, t->error ? ", error record" : "");
        else
                log_job(LOG_INFO, t->item, t->job.key,
                        "archived in %s: record only (no log file)%s", where,
                        t->error ? ", error record" : "");
        failure_clear(t->item, t->job.key);
        d->stats.jobs_archived++;
        d->stats.bytes_in += t->log_bytes;
        d->stats.bytes_out += t->gzip_bytes;
        task_free(t);
}

/* Builds the record and queues the job in the batch; log is NULL when it has none. */
static void task_queue(struct task *t, const struct archive_log_info *log)
{
        struct daemon *d = t->d;
        struct record_info info = {
                .content_guid = t->item->guid,
                .content_name = t->item->name,
                .archived_at = (int64_t) (now_usec(CLOCK_REALTIME) / USEC_PER_SEC),
                .has_log = log != NULL,
                .log_bytes = log ? log->bytes_in : 0,
                .log_gzip_bytes = log ? log->bytes_out : 0,
                .log_sha256 = log ? log->sha256 : NULL,
        };
        _cleanup_free_ char *record = NULL, *error = NULL;
        int r;

        r = connect_build_record(&t->job, t->error, &info, &record);
        if (r >= 0 && t->error)
                r = connect_format_error(t->error, &error);
        if (r < 0)
                return task_fail(t, "out of memory building the job record");

        t->has_log = log != NULL;
        t->log_bytes = info.log_bytes;
        t->gzip_bytes = info.log_gzip_bytes;
        if (archive_batch_size(d->batch) == 0)
                d->batch_since_usec = now_usec(CLOCK_MONOTONIC);
        /* The batch owns the file from here on, whatever happens. */
        struct archive_file *file = t->file;
        t->file = NULL;
        r = archive_batch_add(d->batch, &t->loc, file, error, record, on_committed, t);
        if (r < 0) {
                errno = -r;
                task_fail(t, "cannot queue the job for writing: %m");
        }
}

static void on_log_finished(void *userdata, int r, const struct archive_log_info *log)
{
        struct task *t = userdata;
        char folder[256];

        if (r < 0) {
                errno = -r;
                return task_fail(t, "cannot write the compressed log in %s/%s: %m",
                                 t->d->config->archive_dir, task_folder(t, folder, sizeof(folder)));
        }
        task_queue(t, log);
}

/* The log is complete: the compression threads end its stream, then on_log_finished. */
static void task_finish_log(struct task *t)
{
        int r = archive_file_finish(t->file, on_log_finished, t);

        if (r < 0)
                on_log_finished(t, r, NULL);
}

static int sink_begin(void *userdata)
{
        struct task *t = userdata;

        return archive_file_open(t->d->archive, &t->loc, &t->file);
}

static int sink_write(void *userdata, const void *data, size_t len)
{
        struct task *t = userdata;

        return archive_file_write(t->file, data, len);
}

static void sink_abort(void *userdata)
{
        struct task *t = userdata;

        archive_file_abort(t->file);
        t->file = NULL;
}

static const struct http_sink log_sink = {
        .begin = sink_begin,
        .write = sink_write,
        .abort = sink_abort,
};

static void on_download_done(void *userdata, const struct http_result *res)
{
        struct task *t = userdata;
        char why[512], folder[256];

        switch (res->outcome) {
        case HTTP_OK:
                return task_finish_log(t);
        case HTTP_GONE:
                /* A skipped job never ran, so it has no log; any other job's log was swept
                 * by Connect before we came. Either way, keep what is known. */
                if (t->job.status == JOB_SKIPPED)
                        log_job(LOG_DEBUG, t->item, t->job.key, "skipped job has no log file");
                else
                        log_job(LOG_NOTICE, t->item, t->job.key,
                                "log file is gone (%s), archiving the job record alone",
                                result_reason(res, why, sizeof(why)));
                return task_queue(t, NULL);
        default:
                if (res->sink_error < 0)
                        return task_fail(t, "cannot write the log to %s/%s: %s",
                                         t->d->config->archive_dir,
                                         task_folder(t, folder, sizeof(folder)), res->detail);
                return task_fail(t, "cannot download the log: %s",
                                 result_reason(res, why, sizeof(why)));
        }
}

static void on_error_done(void *userdata, const struct http_result *res)
{
        struct task *t = userdata;
        _cleanup_free_ char *url = NULL;
        char why[512];
        int r;

        switch (res->outcome) {
        case HTTP_OK:
                break;
        case HTTP_GONE:
                return task_fail(t, "the job no longer exists on the server (%s)",
                                 result_reason(res, why, sizeof(why)));
        default:
                return task_fail(t, "cannot fetch the error record: %s",
                                 result_reason(res, why, sizeof(why)));
        }
        /* 204 (or any empty 2xx) means the job has no error record. */
        if (res->status != 204 && res->body_len > 0) {
                r = connect_parse_error(res->body, res->body_len, &t->error);
                if (r < 0)
                        return task_fail(t, "the error record is not a JSON object");
        }
        r = connect_job_url(t->d->config->server_url, t->item->guid, t->job.key, "download", &url);
        if (r >= 0)
                r = http_get(t->d->http, url, &log_sink, on_download_done, t);
        if (r < 0) {
                errno = -r;
                task_fail(t, "cannot request the log: %m");
        }
}

/* Starts archiving job (taking what it owns) under loc's date. */
static void task_start(struct item *it, struct job *job, const struct archive_loc *loc)
{
        struct daemon *d = it->d;
        _cleanup_free_ char *url = NULL;
        struct task *t;
        int r;

        t = calloc(1, sizeof(*t));
        if (!t) {
                log_job(LOG_WARNING, it, job->key, "out of memory; will retry next cycle");
                d->stats.jobs_failed++;
                connect_job_done(job);
                return;
        }
        t->d = d;
        t->item = it;
        t->job = *job;
        *job = (struct job){0}; /* the task owns the key and the JSON now */
        t->loc = (struct archive_loc){
                .guid = it->guid,
                .year = loc->year,
                .month = loc->month,
                .day = loc->day,
                .key = t->job.key,
        };
        it->tasks++;
        d->n_tasks++;
        r = connect_job_url(d->config->server_url, it->guid, t->job.key, "error", &url);
        if (r >= 0)
                r = http_get(d->http, url, NULL, on_error_done, t);
        if (r < 0) {
                errno = -r;
                task_fail(t, "cannot request the error record: %m");
        }
}

/* Retention: a job dated before the cutoff day is past the window and is not fetched. */
static bool job_is_expired(const struct daemon *d, const struct archive_loc *j)
{
        if (d->config->retention_days == 0)
                return false;
        return j->year * 10000 + j->month * 100 + j->day <
               d->cutoff_year * 10000 + d->cutoff_month * 100 + d->cutoff_day;
}

/* Moves the retention cutoff to today minus retention_days and prunes what fell out. */
static void retention_run(struct daemon *d)
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
        d->cutoff_year = tm.tm_year + 1900;
        d->cutoff_month = tm.tm_mon + 1;
        d->cutoff_day = tm.tm_mday;
        r = archive_prune(d->archive, d->cutoff_year, d->cutoff_month, d->cutoff_day, &removed);
        if (r < 0)
                (void) log_errno(LOG_WARNING, r,
                                 "retention: cannot prune everything before %04d-%02d-%02d: %m; "
                                 "will retry",
                                 d->cutoff_year, d->cutoff_month, d->cutoff_day);
        if (removed > 0)
                log_printf(LOG_NOTICE, "retention: removed %u day folders before %04d-%02d-%02d",
                           removed, d->cutoff_year, d->cutoff_month, d->cutoff_day);
}

/*
 * The disk guard: below min_free_mb no new job starts (jobs already streaming finish or fail
 * and are retried); polls resume by themselves once space returns. Returns true when low.
 */
static bool disk_check(struct daemon *d)
{
        struct statvfs st;
        bool low;

        if (d->config->min_free_mb == 0 || fstatvfs(archive_root_fd(d->archive), &st) < 0)
                low = false;
        else {
                uint64_t free_mb = (uint64_t) st.f_bavail * st.f_frsize / (1024 * 1024);
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

static size_t stuck_jobs(const struct daemon *d)
{
        size_t n = 0;

        for (size_t i = 0; i < d->n_items; i++)
                for (const struct failure *f = d->items[i]->failures; f; f = f->next)
                        n += f->count >= STUCK_AFTER_FAILURES;
        return n;
}

static void metrics_update(struct daemon *d)
{
        _cleanup_free_ struct metrics_item *items = NULL;
        int r;

        if (!d->config->metrics_file)
                return;
        items = calloc(d->n_items ? d->n_items : 1, sizeof(*items));
        if (!items)
                return;
        for (size_t i = 0; i < d->n_items; i++)
                items[i] = (struct metrics_item){
                        .guid = d->items[i]->guid,
                        .name = d->items[i]->name,
                        .last_success_epoch =
                                (int64_t) (d->items[i]->last_poll_usec / USEC_PER_SEC),
                        .last_poll_seconds = d->items[i]->last_poll_seconds,
                        .failing = d->items[i]->failing,
                };
        struct metrics m = {
                .jobs_archived = d->stats.jobs_archived,
                .jobs_failed = d->stats.jobs_failed,
                .list_failures = d->stats.items_failed,
                .bytes_downloaded = d->stats.bytes_in,
                .bytes_written = d->stats.bytes_out,
                .start_epoch = d->start_epoch,
                .connect_up = d->connect_up,
                .disk_paused = d->disk_low,
                .jobs_stuck = stuck_jobs(d),
                .items = items,
                .n_items = d->n_items,
        };
        r = metrics_write(d->config->metrics_file, &m);
        if (r < 0)
                (void) log_errno(LOG_WARNING, r, "cannot write the metrics file %s: %m",
                                 d->config->metrics_file);
}

static void undated_free(struct lh_entry *e)
{
        free(lh_entry_v(e));
}

/*
 * Where a due job goes, and whether it is archived already. A job with a usable start time
 * goes under that date (the contract's rule) and is archived when its record is there.
 *
 * A job without one is dated by its end time, else its queued time, else the day it was
 * first seen (connect.c), and the last of these moves with the calendar: a job first seen
 * on the 1st and archived then would be looked for under the 2nd by a poll on the 2nd, and
 * fetched again. So such jobs are never looked up by their computed date alone:
 *   - The first time this process sees one, it walks the item's day folders for the key's
 *     record (archive_find_job): found, the job is archived, under that date; not found, it
 *     has never been archived (a record is the only mark of an archived job), and its date is
 *     fixed now.
 *   - Either way the date is remembered for the process's lifetime (it->undated; forgotten
 *     once the job leaves Connect's list), so later polls, retries on a later day, and the
 *     task reading the job back from the spool all use that date and never walk again.
 * A restart forgets, and the walk runs again once per such job: a job archived before is
 * still found under whatever date it got; one never archived is dated by the day of the
 * restart, which is the day this process first saw it. Hence no job is archived twice,
 * short of its record being removed (by hand, or by retention once its day folder is past
 * the window; a restarted process would then archive it again under a new day, if Connect
 * still lists it). The walk costs one look per day folder of the item, only for these rare
 * jobs and once per process. A job that has a start time never takes this path.
 * Returns 0, or -errno when the walk failed or memory ran out.
 */
static int job_locate(struct item *it, const struct job *j, struct archive_loc *ret_loc,
                      enum job_date_source *ret_source, bool *ret_archived)
{
        struct daemon *d = it->d;
        struct archive_loc loc = {it->guid, j->year, j->month, j->day, j->key};
        struct undated *u;
        int r;

        if (j->date_source == JOB_DATE_START_TIME) {
                *ret_loc = loc;
                *ret_source = j->date_source;
                *ret_archived = archive_job_is_archived(d->archive, &loc);
                return 0;
        }
        if (it->undated && lh_table_lookup_ex(it->undated, j->key, (void **) &u)) {
                u->generation = it->generation;
                loc.year = u->year;
                loc.month = u->month;
                loc.day = u->day;
                *ret_loc = loc;
                *ret_source = u->source;
                *ret_archived = archive_job_is_archived(d->archive, &loc);
                return 0;
        }
        if (!it->undated) {
                it->undated = lh_kchar_table_new(16, undated_free);
                if (!it->undated)
                        return -ENOMEM;
        }
        u = malloc(sizeof(*u) + strlen(j->key) + 1);
        if (!u)
                return -ENOMEM;
        strcpy(u->key, j->key);
        u->generation = it->generation;
        u->source = j->date_source;
        if (j->date_source == JOB_DATE_FIRST_SEEN) {
                time_t now = (time_t) (now_usec(CLOCK_REALTIME) / USEC_PER_SEC);
                struct tm tm;
                if (!gmtime_r(&now, &tm)) {
                        free(u);
                        return -EOVERFLOW;
                }
                loc.year = tm.tm_year + 1900;
                loc.month = tm.tm_mon + 1;
                loc.day = tm.tm_mday;
        }
        struct archive_loc found;
        r = archive_find_job(d->archive, it->guid, j->key, &found);
        if (r < 0) {
                free(u);
                return r;
        }
        if (r > 0) {
                loc.year = found.year;
                loc.month = found.month;
                loc.day = found.day;
        }
        u->year = loc.year;
        u->month = loc.month;
        u->day = loc.day;
        if (lh_table_insert(it->undated, u->key, u) < 0) {
                free(u);
                return -ENOMEM;
        }
        *ret_loc = loc;
        *ret_source = u->source;
        *ret_archived = r > 0;
        return 0;
}

/* After a whole, valid list: forgets the undated jobs it no longer holds. */
static void undated_sweep(struct item *it)
{
        struct lh_entry *e, *tmp;

        if (!it->undated)
                return;
        lh_foreach_safe(it->undated, e, tmp)
        {
                const struct undated *u = lh_entry_v(e);
                if (u->generation != it->generation)
                        (void) lh_table_delete_entry(it->undated, e);
        }
}

/*
 * The spool: the raw bytes of the elements a list leaves to act on, in an unlinked file, so
 * that a list of any length costs a few bytes of memory. It lives in $TMPDIR, else /var/tmp
 * (the unit's PrivateTmp= gives the service its own, on disk, where /tmp may be memory); if
 * neither takes a file, in the archive folder. O_TMPFILE leaves nothing behind even after
 * kill -9; without it the file is unlinked as soon as it is made.
 */
static int spool_open(struct daemon *d)
{
        const char *dir = getenv("TMPDIR");
        char path[PATH_MAX];
        int fd;

        if (!dir || dir[0] != '/')
                dir = "/var/tmp";
        fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (fd >= 0)
                return fd;
        if (snprintf(path, sizeof(path), "%s/.connect-job-archiver-XXXXXX", dir) <
            (int) sizeof(path)) {
                fd = mkostemp(path, O_CLOEXEC);
                if (fd >= 0) {
                        (void) unlink(path);
                        return fd;
                }
        }
        fd = openat(archive_root_fd(d->archive), ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        return fd >= 0 ? fd : -errno;
}

static int spool_flush(struct item *it)
{
        int r;

        if (it->spool_buf_len == 0)
                return 0;
        r = write_all(it->spool_fd, it->spool_buf, it->spool_buf_len);
        it->spool_buf_len = 0;
        return r;
}

/* Appends one element's record to the spool (opening it, and its buffer, at the first). */
static int spool_add(struct item *it, const char *elem, size_t len)
{
        uint32_t n = (uint32_t) len; /* len <= CONNECT_JOB_MAX */
        int r;

        if (it->spool_fd < 0) {
                r = spool_open(it->d);
                if (r < 0)
                        return r;
                it->spool_fd = r;
                it->d->n_spooling++;
        }
        if (!it->spool_buf) {
                it->spool_buf = malloc(SPOOL_BUFFER);
                if (!it->spool_buf)
                        return -ENOMEM;
        }
        if (it->spool_buf_len + sizeof(n) + len > SPOOL_BUFFER) {
                r = spool_flush(it);
                if (r < 0)
                        return r;
        }
        if (sizeof(n) + len > SPOOL_BUFFER) {
                r = write_all(it->spool_fd, &n, sizeof(n));
                if (r >= 0)
                        r = write_all(it->spool_fd, elem, len);
                if (r < 0)
                        return r;
        } else {
                memcpy(it->spool_buf + it->spool_buf_len, &n, sizeof(n));
                memcpy(it->spool_buf + it->spool_buf_len + sizeof(n), elem, len);
                it->spool_buf_len += sizeof(n) + len;
        }
        it->spool_size += sizeof(n) + len;
        it->n_pending++;
        return 0;
}

/* Forgets what is spooled (the file stays open for the next attempt, emptied). */
static int spool_reset(struct item *it)
{
        it->spool_buf_len = 0;
        it->spool_size = it->spool_read = 0;
        it->n_pending = 0;
        if (it->spool_fd >= 0 && ftruncate(it->spool_fd, 0) < 0)
                return -errno;
        return 0;
}

/* Drops the jobs an item has not started yet: the next poll finds them again. */
static void item_drop_pending(struct item *it)
{
        spool_close(it);
        item_idle_check(it);
}

/*
 * Each element of a list as it arrives: what need not be acted on (active, past retention,
 * archived before) is counted and dropped; a job to archive, or an invalid one to report,
 * goes to the spool, acted on once the whole list has come and is valid.
 */
static int list_element(void *userdata, const char *elem, size_t len, const struct job *j)
{
        struct item *it = userdata;
        struct archive_loc loc;
        enum job_date_source source;
        bool archived;
        int r;

        if (j->invalid) {
                it->n_invalid++;
                return spool_add(it, elem, len);
        }
        if (!connect_job_is_due(j)) {
                it->n_waiting++;
                return 0;
        }
        r = job_locate(it, j, &loc, &source, &archived);
        if (r < 0) {
                /* Retried with the next poll, which must not take the list as complete. */
                if (r != -ENOMEM)
                        job_failed(it, j->key, "cannot look for the job in %s/%s: %s",
                                   it->d->config->archive_dir, it->guid, strerror(-r));
                it->list_error = true;
                return r == -ENOMEM ? r : 0;
        }
        if (job_is_expired(it->d, &loc)) {
                it->n_expired++;
                return 0;
        }
        if (archived) {
                it->n_done++;
                return 0;
        }
        it->n_due++;
        return spool_add(it, elem, len);
}

static int list_sink_begin(void *userdata)
{
        struct item *it = userdata;

        connect_stream_reset(it->stream);
        it->n_due = it->n_done = it->n_waiting = it->n_expired = it->n_invalid = 0;
        it->list_error = false;
        return spool_reset(it);
}

static int list_sink_write(void *userdata, const void *data, size_t len)
{
        struct item *it = userdata;

        return connect_stream_feed(it->stream, data, len);
}

static const struct http_sink list_sink = {
        .begin = list_sink_begin,
        .write = list_sink_write,
};

/* Why a streamed list was refused, in words. */
static const char *list_error_reason(struct item *it, int r, char *buf, size_t size)
{
        switch (r) {
        case -EBADMSG:
                return "the job list is not a JSON array";
        case -EFBIG:
                (void) snprintf(buf, size,
                                "cannot list jobs: a job in the list is too large (over %u MiB), "
                                "refused",
                                CONNECT_JOB_MAX / (1024 * 1024));
                return buf;
        case -ENOMEM:
                return "out of memory parsing the job list";
        default:
                (void) snprintf(buf, size, "cannot keep the job list in a temporary file: %s",
                                strerror(-r));
                return buf;
        }
}

/*
 * The end of a job list. Its body went through the stream as it came (list_element), so
 * memory never held more than one element and the bytes of the jobs to act on are in the
 * spool. Only now, the list being whole and valid, do they start: feed_tasks() reads them
 * back a few at a time as live tasks commit. An invalid body refuses the whole list.
 */
static void on_list_done(void *userdata, const struct http_result *res)
{
        struct item *it = userdata;
        struct daemon *d = it->d;
        char why[512];
        int r;

        d->n_listing--;
        it->listing = false;
        /* Connect is "up" when it answered, even with a refusal; not when it failed to. */
        d->connect_up = res->status > 0 && res->status < 500;
        if (res->outcome != HTTP_OK && d->stop)
                return item_drop_pending(it);
        r = 0;
        if (res->outcome == HTTP_OK)
                r = connect_stream_finish(it->stream);
        else if (res->sink_error < 0 && res->status >= 200 && res->status < 300)
                r = res->sink_error; /* the stream refused the body, or the spool failed */
        size_t n_listed = connect_stream_count(it->stream);
        /* A thousand idle items need not keep a parser each between polls. */
        connect_stream_free(it->stream);
        it->stream = NULL;
        if (res->outcome != HTTP_OK && r == 0) {
                it->failing = true;
                log_job(LOG_WARNING, it, NULL, "cannot list jobs: %s; will retry next cycle",
                        result_reason(res, why, sizeof(why)));
                d->stats.items_failed++;
                if (res->outcome == HTTP_AUTH)
                        (void) snprintf(d->problem, sizeof(d->problem), "%s",
                                        res->status == 401 ? "Connect rejects the API key"
                                                           : "the API key lacks rights");
                else if (res->status == 0)
                        (void) snprintf(d->problem, sizeof(d->problem),
                                        "Connect unreachable: %.200s", why);
                return item_drop_pending(it);
        }
        it->failing = false;
        it->last_poll_usec = now_usec(CLOCK_REALTIME);
        d->problem[0] = '\0';
        if (r >= 0 && it->spool_fd >= 0)
                r = spool_flush(it);
        if (r < 0) {
                it->failing = true;
                log_job(LOG_WARNING, it, NULL, "%s; will retry next cycle",
                        list_error_reason(it, r, why, sizeof(why)));
                d->stats.items_failed++;
                return item_drop_pending(it);
        }
        free(it->spool_buf); /* written: only read back from here on */
        it->spool_buf = NULL;
        if (!it->list_error)
                undated_sweep(it);
        log_job(LOG_DEBUG, it, NULL,
                "%zu jobs listed: %u to archive, %u archived before, %u active, %u past "
                "retention, %u invalid",
                n_listed, it->n_due, it->n_done, it->n_waiting, it->n_expired, it->n_invalid);
        /* Low on disk or stopping: leave the jobs for a poll after space returns. */
        if (d->disk_low || d->stop || it->removed)
                return item_drop_pending(it);
        if (it->n_pending == 0)
                spool_close(it);
        item_idle_check(it);
}

/* Reads the next record of it's spool into a new buffer. */
static int spool_next(struct item *it, char **ret, size_t *ret_len)
{
        uint32_t n;
        ssize_t k;
        char *buf;

        k = pread(it->spool_fd, &n, sizeof(n), (off_t) it->spool_read);
        if (k != (ssize_t) sizeof(n))
                return k < 0 ? -errno : -EIO;
        if (n == 0 || n > CONNECT_JOB_MAX || it->spool_read + sizeof(n) + n > it->spool_size)
                return -EIO;
        buf = malloc(n);
        if (!buf)
                return -ENOMEM;
        k = pread(it->spool_fd, buf, n, (off_t) (it->spool_read + sizeof(n)));
        if (k != (ssize_t) n) {
                int r = k < 0 ? -errno : -EIO;
                free(buf);
                return r;
        }
        it->spool_read += sizeof(n) + n;
        it->n_pending--;
        *ret = buf;
        *ret_len = n;
        return 0;
}

/* Acts on the next spooled element of it: reports an invalid job, or starts a task. */
static void item_feed_one(struct item *it)
{
        struct daemon *d = it->d;
        _cleanup_free_ char *elem = NULL;
        struct archive_loc loc;
        enum job_date_source source;
        struct job j;
        size_t len;
        bool archived;
        int r;

        r = spool_next(it, &elem, &len);
        if (r < 0) {
                log_job(LOG_WARNING, it, NULL,
                        "cannot read the job list back from its temporary file: %s; will "
                        "retry next cycle",
                        strerror(-r));
                it->failing = true;
                d->stats.items_failed++;
                return item_drop_pending(it);
        }
        r = connect_parse_job(elem, len, &j);
        if (r < 0) {
                /* It parsed when it came: only memory can fail here. */
                job_failed(it, "(none)", "out of memory reading the job back");
        } else if (j.invalid) {
                job_failed(it, j.key ? j.key : "(none)", "skipped: %s", j.invalid);
                connect_job_done(&j);
        } else {
                r = job_locate(it, &j, &loc, &source, &archived);
                if (r < 0) {
                        job_failed(it, j.key, "cannot look for the job in %s/%s: %s",
                                   d->config->archive_dir, it->guid, strerror(-r));
                        connect_job_done(&j);
                } else {
                        j.date_source = source;
                        task_start(it, &j, &loc);
                }
        }
        if (it->n_pending == 0)
                item_drop_pending(it); /* closes the spool; the item is idle once its tasks end */
}

/*
 * Starts spooled jobs while fewer than TASKS_MAX are live, one item after the other in turn,
 * so that the few new jobs of one item do not wait behind the hundred thousand of another.
 */
static void feed_tasks(struct daemon *d)
{
        bool any = true;

        while (any && d->n_tasks < TASKS_MAX && !d->stop) {
                any = false;
                for (size_t k = 0; k < d->n_items && d->n_tasks < TASKS_MAX; k++) {
                        struct item *it = d->items[(d->feed_next + k) % d->n_items];
                        if (it->n_pending == 0 || it->listing)
                                continue;
                        if (d->disk_low) {
                                item_drop_pending(it);
                                continue;
                        }
                        item_feed_one(it);
                        any = true;
                }
                if (d->n_items > 0)
                        d->feed_next = (d->feed_next + 1) % d->n_items;
        }
}

static void item_poll(struct item *it)
{
        int r;

        it->polled = false;
        it->listing = true;
        it->d->n_listing++;
        it->generation++;
        it->poll_started_usec = now_usec(CLOCK_MONOTONIC);
        r = it->stream ? 0 : connect_stream_new(list_element, it, &it->stream);
        if (r >= 0)
                r = http_get(it->d->http, it->list_url, &list_sink, on_list_done, it);
        if (r < 0) {
                it->listing = false;
                it->d->n_listing--;
                it->d->stats.items_failed++;
                it->failing = true;
                log_job(LOG_WARNING, it, NULL, "cannot request the job list: %s", strerror(-r));
                item_idle_check(it);
        }
}

static void items_free(struct item **items, size_t n)
{
        for (size_t i = 0; i < n; i++)
                item_free(items[i]);
        free(items);
}

static int item_new(struct daemon *d, const struct config *c, const struct config_content *cc,
                    struct item **ret)
{
        struct item *it = calloc(1, sizeof(*it));

        if (!it)
                return -ENOMEM;
        it->d = d;
        it->polled = true;
        it->spool_fd = -1;
        it->guid = strdup(cc->guid);
        it->name = cc->name ? strdup(cc->name) : NULL;
        if (!it->guid || (cc->name && !it->name) ||
            connect_jobs_url(c->server_url, it->guid, &it->list_url) < 0) {
                item_free(it);
                return -ENOMEM;
        }
        *ret = it;
        return 0;
}

static bool item_in(struct item *const *items, size_t n, const struct item *it)
{
        for (size_t i = 0; i < n; i++)
                if (items[i] == it)
                        return true;
        return false;
}

/* Frees a list from items_from_config() that was not taken: the items it created, not the
 * ones it shares with the running list. */
static void items_free_new(struct daemon *d, struct item **items, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (!item_in(d->items, d->n_items, items[i]))
                        item_free(items[i]);
        free(items);
}

/*
 * Builds the item list for config c, reusing the items of the running list whose GUID is
 * still watched (their state and in-flight work carry over) and creating the new ones.
 */
static int items_from_config(struct daemon *d, const struct config *c, struct item ***ret)
{
        struct item **items = calloc(c->n_content, sizeof(*items));
        int r;

        if (!items)
                return -ENOMEM;
        for (size_t i = 0; i < c->n_content; i++) {
                for (size_t j = 0; j < d->n_items; j++)
                        if (d->items[j] && strcasecmp(d->items[j]->guid, c->content[i].guid) == 0) {
                                items[i] = d->items[j];
                                break;
                        }
                if (items[i]) {
                        /* A new name or server URL applies from the next poll on. */
                        char *name = c->content[i].name ? strdup(c->content[i].name) : NULL;
                        char *url = NULL;
                        if ((c->content[i].name && !name) ||
                            connect_jobs_url(c->server_url, items[i]->guid, &url) < 0) {
                                free(name);
                                r = -ENOMEM;
                                goto fail;
                        }
                        free(items[i]->name);
                        items[i]->name = name;
                        free(items[i]->list_url);
                        items[i]->list_url = url;
                        continue;
                }
                r = item_new(d, c, &c->content[i], &items[i]);
                if (r < 0)
                        goto fail;
        }
        *ret = items;
        return 0;
fail:
        items_free_new(d, items, c->n_content);
        return r;
}

static struct http_options http_options_for(const struct config *c, bool verbose)
{
        return (struct http_options){
                .api_key = c->api_key,
                .ca_file = c->ca_file,
                .verify_tls = c->verify_tls,
                .timeout_seconds = c->timeout_seconds,
                .max_concurrent = c->max_concurrent_requests,
                .max_attempts = HTTP_MAX_ATTEMPTS,
                .backoff_base_usec = 500 * USEC_PER_MSEC,
                .backoff_cap_usec = 30 * USEC_PER_SEC,
                .verbose = verbose,
        };
}

int daemon_new(struct config *config, bool verbose, struct daemon **ret)
{
        struct daemon *d = calloc(1, sizeof(*d));
        sigset_t mask;
        int r;

        if (!d)
                return -ENOMEM;
        d->signal_fd = -1;
        d->config = config;
        d->start_epoch = (int64_t) (now_usec(CLOCK_REALTIME) / USEC_PER_SEC);
        d->verbose = verbose;

        /* Block the signals before libcurl can start a resolver thread that inherits them. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) {
                r = -errno;
                goto fail;
        }
        d->signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
        if (d->signal_fd < 0) {
                r = -errno;
                goto fail;
        }
        struct http_options o = http_options_for(config, verbose);
        r = http_engine_new(&o, &d->http);
        if (r < 0)
                goto fail;
        r = items_from_config(d, config, &d->items);
        if (r < 0)
                goto fail;
        d->n_items = config->n_content;
        *ret = d;
        return 0;
fail:
        d->config = NULL; /* stays with the caller on failure */
        daemon_free(d);
        return r;
}

void daemon_free(struct daemon *d)
{
        if (!d)
                return;
        /* Cancelling aborts in-flight downloads (their temporaries go) and frees the tasks. */
        if (d->http)
                http_engine_cancel_all(d->http);
        /* Logs being compressed reach the batch, which aborts them. */
        if (d->archive)
                (void) archive_wait(d->archive);
        archive_batch_free(d->batch);
        http_engine_free(d->http);
        archive_free(d->archive);
        items_free(d->items, d->n_items);
        while (d->retired) {
                struct item *it = d->retired;
                d->retired = it->next_retired;
                item_free(it);
        }
        config_free(d->config);
        (void) safe_close(d->signal_fd);
        free(d);
}

static int archive_setup(struct daemon *d)
{
        unsigned removed = 0;
        int r;

        r = archive_open(d->config->archive_dir, d->config->compression_level, ARCHIVE_THREADS_AUTO,
                         &d->archive);
        if (r < 0)
                return log_errno(LOG_ERR, r, "cannot open the archive directory %s: %m",
                                 d->config->archive_dir);
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
        d->batch = archive_batch_new(d->archive);
        if (!d->batch)
                return log_errno(LOG_ERR, -ENOMEM, "out of memory");
        return 0;
}

static void batch_commit(struct daemon *d)
{
        int r;

        if (archive_batch_size(d->batch) == 0)
                return;
        r = archive_batch_commit(d->batch);
        if (r < 0)
                (void) log_errno(LOG_ERR, r, "cannot commit archived jobs to %s: %m",
                                 d->config->archive_dir);
}

static void drain_signals(struct daemon *d)
{
        struct signalfd_siginfo si;

        while (read(d->signal_fd, &si, sizeof(si)) == (ssize_t) sizeof(si)) {
                if (si.ssi_signo == SIGHUP) {
                        d->reload = true;
                } else {
                        if (!d->stop)
                                log_printf(LOG_NOTICE, "received %s, stopping",
                                           strsignal((int) si.ssi_signo));
                        d->stop = true;
                }
        }
}

/* Another job list may be fetched: lists take at most half the transfer slots, and a spool
 * is free. A list's jobs wait in its spool, not in memory, so the jobs being archived do not
 * hold up the polls. */
static bool backlog_has_room(const struct daemon *d)
{
        unsigned slots = d->config->max_concurrent_requests;

        return d->n_listing < (slots + 1) / 2 && d->n_spooling + d->n_listing < SPOOLS_MAX;
}

static bool all_items_polled(const struct daemon *d)
{
        for (size_t i = 0; i < d->n_items; i++)
                if (!d->items[i]->polled)
                        return false;
        return true;
}

/* Requests in the HTTP engine, or logs still being compressed. (For the end of --once the
 * tasks already count: a log being compressed keeps its item busy.) */
static bool work_in_flight(const struct daemon *d)
{
        return http_engine_pending(d->http) > 0 || archive_pending(d->archive) > 0;
}

/*
 * One turn of the loop: start due polls, run the HTTP engine until the next deadline, read
 * signals, commit the batch when it is full, old, or there is nothing left in flight.
 * Returns the deadline the caller computed against, for the daemon's own timers.
 */
static int loop_turn(struct daemon *d, uint64_t deadline_usec)
{
        uint64_t now = now_usec(CLOCK_MONOTONIC);
        uint64_t timeout = deadline_usec > now ? deadline_usec - now : 0;
        int r;

        if (archive_batch_size(d->batch) > 0) {
                uint64_t due = d->batch_since_usec + BATCH_MAX_USEC;
                timeout = due <= now ? 0 : (due - now < timeout ? due - now : timeout);
        }
        int fds[] = {d->signal_fd, archive_event_fd(d->archive)};
        r = http_engine_run(d->http, timeout, fds, ELEMENTSOF(fds));
        if (r < 0)
                return log_errno(LOG_ERR, r, "the HTTP engine failed: %m");
        (void) archive_dispatch(d->archive);
        drain_signals(d);
        now = now_usec(CLOCK_MONOTONIC);
        size_t queued = archive_batch_size(d->batch);
        if (queued > 0 && (queued >= BATCH_MAX_JOBS || !work_in_flight(d) ||
                           now >= d->batch_since_usec + BATCH_MAX_USEC))
                batch_commit(d);
        return 0;
}

static void stop_now(struct daemon *d)
{
        /* Downloads in flight are abandoned (their temporaries removed); what is complete is
         * committed, so a stop never throws away finished work. */
        http_engine_cancel_all(d->http);
        (void) archive_wait(d->archive);
        batch_commit(d);
}

int daemon_run_once(struct daemon *d)
{
        uint64_t start = now_usec(CLOCK_MONOTONIC);
        int r;

        d->once = true;
        r = archive_setup(d);
        if (r < 0)
                return r;
        retention_run(d);
        if (disk_check(d)) {
                log_printf(LOG_ERR, "not enough free space in %s; nothing fetched",
                           d->config->archive_dir);
                return 1;
        }
        size_t next = 0;
        for (;;) {
                feed_tasks(d);
                while (next < d->n_items && backlog_has_room(d))
                        item_poll(d->items[next++]);
                if (next == d->n_items && all_items_polled(d) && !work_in_flight(d) &&
                    archive_batch_size(d->batch) == 0)
                        break;
                r = loop_turn(d, now_usec(CLOCK_MONOTONIC) + 60 * USEC_PER_SEC);
                if (r < 0 || d->stop) {
                        stop_now(d);
                        if (r < 0)
                                return r;
                        break;
                }
        }
        metrics_update(d);

        double secs = (double) (now_usec(CLOCK_MONOTONIC) - start) / (double) USEC_PER_SEC;
        log_printf(LOG_NOTICE,
                   "once: %zu content items, %" PRIu64 " jobs archived, %" PRIu64
                   " failed, %" PRIu64 " lists failed, %" PRIu64 " bytes in, %" PRIu64
                   " bytes out, %.2f s",
                   d->n_items, d->stats.jobs_archived, d->stats.jobs_failed, d->stats.items_failed,
                   d->stats.bytes_in, d->stats.bytes_out, secs);
        return d->stop || d->stats.jobs_failed > 0 || d->stats.items_failed > 0 ? 1 : 0;
}

static void format_bytes(uint64_t n, char *buf, size_t size)
{
        static const char *const units[] = {"B", "kB", "MB", "GB", "TB"};
        double v = (double) n;
        size_t u = 0;

        while (v >= 1000.0 && u + 1 < ELEMENTSOF(units)) {
                v /= 1000.0;
                u++;
        }
        (void) snprintf(buf, size, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
}

/* One line for `systemctl status`: what is watched, what was done, what is wrong. */
static void status_update(struct daemon *d)
{
        char status[1024], bytes[32], ago[48] = "no cycle yet", disk[160] = "";
        size_t failing = 0;

        for (size_t i = 0; i < d->n_items; i++)
                failing += d->items[i]->failing;
        format_bytes(d->stats.bytes_in, bytes, sizeof(bytes));
        if (d->last_cycle_usec > 0)
                (void) snprintf(ago, sizeof(ago), "last poll %.1f s ago",
                                (double) (now_usec(CLOCK_MONOTONIC) - d->last_cycle_usec) /
                                        (double) USEC_PER_SEC);
        if (d->disk_low)
                (void) snprintf(disk, sizeof(disk),
                                "; archiving paused: %" PRIu64 " MB free, min_free_mb %" PRIu64,
                                d->free_mb, d->config->min_free_mb);
        size_t stuck = stuck_jobs(d);
        if (stuck > 0) {
                size_t n = strlen(disk);
                (void) snprintf(disk + n, sizeof(disk) - n, "; %zu jobs stuck (see the journal)",
                                stuck);
        }
        (void) snprintf(status, sizeof(status),
                        "watching %zu %s; %" PRIu64 " jobs archived since start (%s); %zu failing; "
                        "%s%s%s%s",
                        d->n_items, d->n_items == 1 ? "item" : "items", d->stats.jobs_archived,
                        bytes, failing, ago, d->problem[0] ? "; " : "", d->problem, disk);
        notify_status(status);
        d->status_dirty = false;
}

/*
 * SIGHUP: read the config again. A config that fails validation changes nothing. Otherwise
 * the new one replaces the old: items still watched keep their state and their work in
 * flight, new items are polled at once, removed items stop (their transfers finish first).
 */
static void daemon_reload(struct daemon *d, const char *path)
{
        struct config_error err = {{0}};
        struct config *c = NULL;
        struct item **items = NULL;
        int r;

        notify_reloading();
        log_printf(LOG_NOTICE, "reloading %s", path);
        r = config_load(path, &c, &err);
        if (r >= 0)
                r = config_resolve_api_key(c, &err);
        if (r < 0) {
                log_printf(LOG_ERR, "%s", err.message);
                log_printf(LOG_ERR, "the new configuration is invalid; keeping the running one");
                goto out;
        }
        if (strcmp(c->archive_dir, d->config->archive_dir) != 0 ||
            c->compression_level != d->config->compression_level)
                log_printf(LOG_WARNING, "archive.directory and archive.compression_level take "
                                        "effect at the next restart; keeping the running ones");
        struct http_options o = http_options_for(c, d->verbose);
        r = items_from_config(d, c, &items);
        if (r >= 0)
                r = http_engine_reconfigure(d->http, &o);
        if (r < 0) {
                (void) log_errno(LOG_ERR, r,
                                 "cannot apply the new configuration: %m; keeping "
                                 "the running one");
                items_free_new(d, items, items ? c->n_content : 0);
                goto out;
        }
        /* Items no longer watched retire: freed when their last transfer ends. */
        for (size_t j = 0; j < d->n_items; j++) {
                struct item *it = d->items[j];
                if (item_in(items, c->n_content, it))
                        continue;
                it->removed = true;
                it->next_retired = d->retired;
                d->retired = it;
                spool_close(it); /* its jobs not started yet stay for good */
                item_idle_check(it);
        }
        free(d->items);
        d->items = items;
        d->n_items = c->n_content;
        /* Keep the archive settings the archive was opened with (see above). */
        free(c->archive_dir);
        c->archive_dir = strdup(d->config->archive_dir);
        c->compression_level = d->config->compression_level;
        config_free(d->config);
        d->config = c;
        c = NULL;
        log_printf(LOG_NOTICE, "reloaded: watching %zu content items", d->n_items);
out:
        config_free(c);
        d->status_dirty = true;
        notify_ready("reloaded");
}

int daemon_run_forever(struct daemon *d, const char *config_path)
{
        uint64_t now, start, deadline, last_status = 0;
        int r;

        d->once = false;
        r = archive_setup(d);
        if (r < 0)
                return r;
        start = now_usec(CLOCK_MONOTONIC);
        /* Spread the first polls over one interval so that a thousand items do not all ask
         * Connect in the same second; the first item goes at once. */
        for (size_t i = 0; i < d->n_items; i++)
                d->items[i]->next_poll_usec = start + (uint64_t) d->config->poll_interval_seconds *
                                                              USEC_PER_SEC * i / d->n_items;
        retention_run(d);
        d->next_prune_usec = start + RETENTION_EVERY_USEC;
        (void) disk_check(d);
        d->next_disk_check_usec = start + DISK_CHECK_EVERY_USEC;
        notify_watchdog_init(&d->watchdog, start);
        log_printf(LOG_NOTICE, "watching %zu content items on %s every %u s", d->n_items,
                   d->config->server_url, d->config->poll_interval_seconds);
        notify_ready("started; first poll under way");

        while (!d->stop) {
                now = now_usec(CLOCK_MONOTONIC);
                if (now >= d->next_disk_check_usec) {
                        (void) disk_check(d);
                        d->next_disk_check_usec = now + DISK_CHECK_EVERY_USEC;
                }
                if (now >= d->next_prune_usec) {
                        retention_run(d);
                        d->next_prune_usec = now + RETENTION_EVERY_USEC;
                }
                /* Before the polls' deadlines: a spool drained here makes its item due. */
                feed_tasks(d);
                deadline = d->next_disk_check_usec;
                if (d->next_prune_usec < deadline)
                        deadline = d->next_prune_usec;
                /* While the disk is low, due polls wait for the next disk check; while the
                 * backlog is full, for the jobs in flight to finish (they wake the loop). */
                for (size_t i = 0; i < d->n_items && !d->disk_low; i++) {
                        struct item *it = d->items[i];
                        if (!it->polled)
                                continue;
                        if (it->next_poll_usec > now) {
                                if (it->next_poll_usec < deadline)
                                        deadline = it->next_poll_usec;
                        } else if (backlog_has_room(d)) {
                                item_poll(it);
                        }
                }
                if (notify_watchdog_deadline(&d->watchdog) < deadline)
                        deadline = notify_watchdog_deadline(&d->watchdog);
                if (d->status_dirty && last_status + USEC_PER_SEC < deadline)
                        deadline = last_status + USEC_PER_SEC;

                r = loop_turn(d, deadline);
                if (r < 0)
                        break;
                now = now_usec(CLOCK_MONOTONIC);
                /* The loop came round, so it is not wedged. */
                notify_watchdog_ping(&d->watchdog, now);
                if (d->reload) {
                        d->reload = false;
                        /* New items have no deadline yet, so they are polled at once. */
                        daemon_reload(d, config_path);
                }
                if (d->status_dirty && now >= last_status + USEC_PER_SEC) {
                        status_update(d);
                        metrics_update(d);
                        last_status = now;
                }
        }
        notify_stopping();
        stop_now(d);
        metrics_update(d);
        log_printf(LOG_NOTICE, "stopped: %" PRIu64 " jobs archived, %" PRIu64 " failed this run",
                   d->stats.jobs_archived, d->stats.jobs_failed);
        return r < 0 ? r : 0;
}

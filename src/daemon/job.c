/*
 * One job on its way into the archive (struct task): task_start asks for the error record
 * (on_error_done), then streams the log through the archive (log_sink) while it downloads
 * (on_download_done); the compression threads finish it (on_log_finished), task_queue builds the
 * record and adds the job to the batch, and on_committed reports it once the batch is durable.
 * Every task ends in task_end, which tells its item (the done callback given to task_start:
 * archived, or failed and why) and frees it; the pipeline never calls back into the item
 * otherwise.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "config.h"
#include "internal.h"
#include "log.h"
#include "util.h"

/* Tells the item that started t how it ended (failure NULL: archived), then frees t. */
static void task_end(struct task *t, const char *failure)
{
        archive_file_abort(t->file);
        connect_error_free(t->error);
        t->done(t->item, t->job.key, failure);
        connect_job_done(&t->job);
        free(t);
}

/* "<guid>/YYYY/MM/DD", the job's folder in the archive, for messages. */
static const char *task_folder(const struct task *t, char *buf, size_t size)
{
        (void) snprintf(buf, size, "%s/%04d/%02d/%02d", t->loc.guid, t->loc.year, t->loc.month,
                        t->loc.day);
        return buf;
}

_printf_(2, 3) static void task_fail(struct task *t, const char *fmt, ...)
{
        char msg[768];
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        task_end(t, msg);
}
#define task_fail(...) (__extension__ task_fail(__VA_ARGS__)) /* "%m": see log.h */

/* -ELOOP from the archive: a folder on the job's way is a symlink. Names it and fails the
 * job (counted, retried, reported as stuck like any failing job); false for other errors. */
static bool task_fail_symlink(struct task *t, int r)
{
        char rel[256];

        if (r != -ELOOP || archive_loc_symlink(t->d->archive, &t->loc, rel, sizeof(rel)) < 0)
                return false;
        task_fail(t, "%s/%s is a symlink; refusing to write through it", t->d->config->archive_dir,
                  rel);
        return true;
}

static void on_committed(void *userdata, int r)
{
        struct task *t = userdata;
        char folder[256];

        if (r == -EALREADY) {
                /* The other archiver of a pair on one bucket archived it first. */
                log_job(LOG_INFO, t->item, t->job.key,
                        "already archived in %s by another archiver; its record stays",
                        task_folder(t, folder, sizeof(folder)));
                t->d->stats.jobs_archived_elsewhere++;
                task_end(t, NULL);
                return;
        }
        if (r < 0) {
                errno = -r;
                task_fail(t, "cannot write to %s/%s: %m", t->d->archive_name,
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
        d->stats.jobs_archived++;
        d->stats.bytes_in += t->log_bytes;
        d->stats.bytes_out += t->gzip_bytes;
        task_end(t, NULL);
}

/* Builds the record and queues the job in the batch; log is NULL when it has none. */
static void task_queue(struct task *t, const struct archive_log_info *log)
{
        struct daemon *d = t->d;
        struct record_info info = {
                .content_guid = t->item->guid,
                .content_name = item_label(t->item),
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
        if (r < 0) {
                task_fail(t, "out of memory building the job record");
                return;
        }

        t->has_log = log != NULL;
        t->log_bytes = info.log_bytes;
        t->gzip_bytes = info.log_gzip_bytes;
        if (archive_batch_size(d->batch) == 0)
                d->batch_since_usec = now_usec(CLOCK_MONOTONIC);
        /* The batch owns the file from here on, whatever happens. */
        struct archive_file *file = t->file;
        t->file = NULL;
        r = archive_batch_add(d->batch, &t->loc, file, error, record, on_committed, t);
        /* Its record appeared while it was downloaded: another archiver on the same store. */
        if (r == -EEXIST && archive_job_is_archived(d->archive, &t->loc)) {
                on_committed(t, -EALREADY);
                return;
        }
        if (r < 0 && !task_fail_symlink(t, r)) {
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
                task_fail(t, "cannot write the compressed log in %s/%s: %m",
                          t->d->config->archive_dir, task_folder(t, folder, sizeof(folder)));
                return;
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
                task_finish_log(t);
                return;
        case HTTP_GONE:
                /* A skipped job never ran, so it has no log; any other job's log was swept
                 * by Connect before we came. Either way, keep what is known. */
                if (t->job.status == JOB_SKIPPED)
                        log_job(LOG_DEBUG, t->item, t->job.key, "skipped job has no log file");
                else
                        log_job(LOG_NOTICE, t->item, t->job.key,
                                "log file is gone (%s), archiving the job record alone",
                                result_reason(res, NULL, why, sizeof(why)));
                task_queue(t, NULL);
                return;
        default:
                if (task_fail_symlink(t, res->sink_error))
                        return;
                if (res->sink_error < 0) {
                        task_fail(t, "cannot write the log to %s/%s: %s", t->d->config->archive_dir,
                                  task_folder(t, folder, sizeof(folder)), res->detail);
                        return;
                }
                task_fail(t, "cannot download the log: %s",
                          result_reason(res, NULL, why, sizeof(why)));
                return;
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
                task_fail(t, "the job no longer exists on the server (%s)",
                          result_reason(res, NULL, why, sizeof(why)));
                return;
        default:
                task_fail(t, "cannot fetch the error record: %s",
                          result_reason(res, NULL, why, sizeof(why)));
                return;
        }
        /* 204 (or any empty 2xx) means the job has no error record. */
        if (res->status != 204 && res->body_len > 0) {
                r = connect_parse_error(res->body, res->body_len, &t->error);
                if (r < 0) {
                        task_fail(t, "the error record is not a JSON object");
                        return;
                }
        }
        r = connect_job_url(t->d->config->server_url, t->item->guid, t->job.key, "download", &url);
        if (r >= 0)
                r = http_get(t->d->http, url, &log_sink, on_download_done, t);
        if (r < 0) {
                errno = -r;
                task_fail(t, "cannot request the log: %m");
        }
}

int task_start(struct item *it, struct job *job, const struct archive_loc *loc, task_done_fn *done)
{
        struct daemon *d = it->d;
        _cleanup_free_ char *url = NULL;
        struct task *t;
        int r;

        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        t->d = d;
        t->item = it;
        t->done = done;
        t->job = *job;
        *job = (struct job){0}; /* the task owns the key and the JSON now */
        t->loc = (struct archive_loc){
                .guid = it->guid,
                .year = loc->year,
                .month = loc->month,
                .day = loc->day,
                .key = t->job.key,
        };
        r = connect_job_url(d->config->server_url, it->guid, t->job.key, "error", &url);
        if (r >= 0)
                r = http_get(d->http, url, NULL, on_error_done, t);
        if (r < 0) {
                errno = -r;
                task_fail(t, "cannot request the error record: %m");
        }
        return 0;
}

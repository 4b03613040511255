/*
 * Per-item polling: an item's job list, parsed as it arrives (list_element), its results
 * (on_list_done), jobs without a start time (job_locate), jobs failing in a row, and feeding
 * the spooled jobs to tasks (feed_tasks); the item list a config makes, kept across reloads.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <json-c/json.h>

#include "config.h"
#include "content.h"
#include "internal.h"
#include "log.h"
#include "util.h"

void item_free(struct item *it)
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
        free(it->poll_failure_last);
        free(it->guid);
        free(it->name);
        free(it->connect_name);
        free(it->list_url);
        free(it);
}

/* Replaces *field with a copy of value (NULL clears it). */
static int set_string(char **field, const char *value)
{
        char *copy = NULL;

        if (value && !(copy = strdup(value)))
                return -ENOMEM;
        free(*field);
        *field = copy;
        return 0;
}

static void failures_summary(struct item *it);

void item_idle_check(struct item *it)
{
        struct daemon *d = it->d;

        if (it->listing || it->naming || it->tasks > 0 || it->n_pending > 0)
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
        failures_summary(it);
        d->last_cycle_usec = now_usec(CLOCK_MONOTONIC);
        it->last_poll_seconds =
                (double) (d->last_cycle_usec - it->poll_started_usec) / (double) USEC_PER_SEC;
        d->status_dirty = true;
        if (d->once)
                return;
        uint64_t interval = (uint64_t) d->config->poll_interval_seconds * USEC_PER_SEC;
        uint64_t ceiling = (uint64_t) d->config->poll_max_interval_seconds * USEC_PER_SEC;
        if (it->gone)
                it->next_poll_usec = UINT64_MAX; /* until a listing has it again */
        else if (it->forbidden)
                it->next_poll_usec = d->last_cycle_usec + ceiling;
        else
                it->next_poll_usec =
                        d->last_cycle_usec + schedule_interval(interval, ceiling, it->quiet);
}

/* Counts one more failure of key in a row; returns the count (0 on out-of-memory). */
static unsigned failure_count(struct item *it, const char *key)
{
        struct failure *f;

        for (f = it->failures; f; f = f->next)
                if (strcmp(f->key, key) == 0)
                        return ++f->count;
        size_t len = strlen(key) + 1;
        f = malloc(sizeof(*f) + len);
        if (!f)
                return 0;
        f->count = 1;
        memcpy(f->key, key, len);
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
 * can never be archived does not flood the journal. Nor do many jobs failing at once (a
 * download endpoint that refuses them all): a poll says its first FAILURES_SAID_PER_POLL
 * failures one by one and the rest in one line at its end (failures_summary).
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
        if (n <= STUCK_AFTER_FAILURES && ++it->poll_failures > FAILURES_SAID_PER_POLL) {
                it->poll_failures_quiet++;
                it->poll_stuck_quiet += n == STUCK_AFTER_FAILURES;
                char *last = strdup(msg);
                if (last) {
                        free(it->poll_failure_last);
                        it->poll_failure_last = last;
                }
                log_job(LOG_DEBUG, it, key, "%s; failed %u polls in a row", msg, n);
        } else if (n < STUCK_AFTER_FAILURES)
                log_job(LOG_WARNING, it, key, "%s; will retry next cycle", msg);
        else if (n == STUCK_AFTER_FAILURES)
                log_job(LOG_ERR, it, key, "%s; failed %u polls in a row, still retrying every poll",
                        msg, n);
        else
                log_job(LOG_DEBUG, it, key, "%s; failed %u polls in a row", msg, n);
}

/* The end of a poll: one line for the failures job_failed() did not say one by one. */
static void failures_summary(struct item *it)
{
        if (it->poll_failures_quiet > 0) {
                char stuck[128] = "";
                if (it->poll_stuck_quiet > 0)
                        (void) snprintf(stuck, sizeof(stuck),
                                        "; %u of them failed %u polls in a row, still retrying "
                                        "every poll",
                                        it->poll_stuck_quiet, STUCK_AFTER_FAILURES);
                log_job(it->poll_stuck_quiet > 0 ? LOG_ERR : LOG_WARNING, it, NULL,
                        "%u more jobs failed this poll (the last: %s)%s; will retry next cycle",
                        it->poll_failures_quiet,
                        it->poll_failure_last ? it->poll_failure_last : "out of memory", stuck);
        }
        it->poll_failures = it->poll_failures_quiet = it->poll_stuck_quiet = 0;
        free(it->poll_failure_last);
        it->poll_failure_last = NULL;
}

/* A task's end (job.c): the job is archived, or it failed and is retried next poll. */
static void on_task_done(struct item *it, const char *key, const char *failure)
{
        if (failure)
                job_failed(it, key, "%s", failure);
        else
                failure_clear(it, key);
        it->tasks--;
        it->d->n_tasks--;
        item_idle_check(it);
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
 * Returns 0, or -errno when the walk failed or memory ran out. ret_archived may be NULL (only
 * where: no look for the record of a dated job).
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
                if (ret_archived)
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
                if (ret_archived)
                        *ret_archived = archive_job_is_archived(d->archive, &loc);
                return 0;
        }
        if (!it->undated) {
                it->undated = lh_kchar_table_new(16, undated_free);
                if (!it->undated)
                        return -ENOMEM;
        }
        size_t len = strlen(j->key) + 1;
        u = malloc(sizeof(*u) + len);
        if (!u)
                return -ENOMEM;
        memcpy(u->key, j->key, len);
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
        if (ret_archived)
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

        /* Order-free: a list that comes back with the same jobs in the same states is the
         * same list, whatever order the server sends it in. */
        it->fp_accum += hash64(elem, len);
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
                                   it->d->archive_name, it->guid, strerror(-r));
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
        it->fp_accum = 0;
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
 * A job list refused for good, not for now: the content was deleted (404 with Connect's code
 * 4) or the key may not read its jobs (403). Each is said once, not on every poll: a deleted
 * item is not polled again until a listing (or a reload) has it again; a forbidden one is
 * polled at the ceiling, poll.max_interval_seconds, until its jobs can be read. In --once
 * mode both are failures of the run like any other. Returns whether res was one of them.
 */
static bool list_refused(struct item *it, const struct http_result *res)
{
        struct daemon *d = it->d;
        struct connect_api_error api;
        char why[512];

        if (d->once || (res->status != 404 && res->status != 403))
                return false;
        if (res->status == 404 && (connect_parse_api_error(res->body, res->body_len, &api) < 0 ||
                                   api.code != CONNECT_CODE_NOT_FOUND))
                return false; /* no jobs API there: a wrong URL, said every poll */
        (void) result_reason(res, d->config->server_url, why, sizeof(why));
        d->stats.items_failed++;
        if (res->status == 404) {
                it->gone = true;
                log_job(LOG_WARNING, it, NULL,
                        "the content no longer exists on the server (%s); not polled again "
                        "until it is listed again",
                        why);
        } else if (!it->forbidden) {
                it->forbidden = true;
                log_job(LOG_WARNING, it, NULL,
                        "cannot list jobs: %s; polled every %u s until that changes", why,
                        d->config->poll_max_interval_seconds);
        }
        it->failing = true;
        item_drop_pending(it);
        return true;
}

/*
 * A job list answered 401: Connect rejects the key itself (revoked, expired), so every other
 * request would be refused too. Said once, for the daemon, not once per item and poll; the
 * service then stops polling but for one job list now and then (daemon.c, key_rejected_tick)
 * and resumes when one is answered, or a reload tries the key again at once. In --once mode
 * it is a failure of the item like any other. Returns whether res was a 401.
 */
static bool key_rejected(struct item *it, const struct http_result *res)
{
        struct daemon *d = it->d;
        char why[512];

        if (d->once || res->outcome != HTTP_AUTH || res->status != 401)
                return false;
        (void) result_reason(res, d->config->server_url, why, sizeof(why));
        d->stats.items_failed++;
        it->failing = true;
        if (!d->key_rejected) {
                uint64_t interval = (uint64_t) d->config->poll_interval_seconds * USEC_PER_SEC;
                d->key_rejected = true;
                d->key_backoff_usec = interval;
                d->key_retry_usec = now_usec(CLOCK_MONOTONIC) + interval;
                log_printf(LOG_ERR,
                           "Connect rejects the API key (%s, listing the jobs of %s); polling "
                           "stops: one job list is tried every %u to %u s until the key is "
                           "accepted; put a valid key in place and reload (systemctl reload "
                           "connect-job-archiver)",
                           why, it->guid, d->config->poll_interval_seconds,
                           d->config->poll_max_interval_seconds);
                (void) snprintf(d->problem, sizeof(d->problem), "%s",
                                "Connect rejects the API key; polling paused until a key is "
                                "accepted (replace it and reload)");
        } else
                log_job(LOG_DEBUG, it, NULL, "cannot list jobs: %s", why);
        item_drop_pending(it);
        return true;
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
        if (res->outcome != HTTP_OK && d->stop) {
                item_drop_pending(it);
                return;
        }
        r = 0;
        if (res->outcome == HTTP_OK)
                r = connect_stream_finish(it->stream);
        else if (res->sink_error < 0 && res->status >= 200 && res->status < 300)
                r = res->sink_error; /* the stream refused the body, or the spool failed */
        size_t n_listed = connect_stream_count(it->stream);
        /* A thousand idle items need not keep a parser each between polls. */
        connect_stream_free(it->stream);
        it->stream = NULL;
        if (res->outcome != HTTP_OK && r == 0 && list_refused(it, res))
                return;
        if (res->outcome != HTTP_OK && r == 0 && key_rejected(it, res))
                return;
        if (res->outcome != HTTP_OK && r == 0) {
                it->failing = true;
                log_job(LOG_WARNING, it, NULL, "cannot list jobs: %s; will retry next cycle",
                        result_reason(res, d->config->server_url, why, sizeof(why)));
                d->stats.items_failed++;
                if (res->outcome == HTTP_AUTH)
                        (void) snprintf(d->problem, sizeof(d->problem), "%s",
                                        res->status == 401 ? "Connect rejects the API key"
                                                           : "the API key lacks rights");
                else if (res->status == 0)
                        (void) snprintf(d->problem, sizeof(d->problem),
                                        "Connect unreachable: %.200s", why);
                item_drop_pending(it);
                return;
        }
        it->failing = false;
        if (d->key_rejected) {
                d->key_rejected = false;
                log_printf(LOG_NOTICE, "the API key is accepted again; polling resumes");
        }
        if (it->forbidden)
                log_job(LOG_NOTICE, it, NULL, "its jobs can be read again");
        it->forbidden = false;
        it->last_poll_usec = now_usec(CLOCK_REALTIME);
        d->problem[0] = '\0';
        if (r >= 0 && it->spool_fd >= 0)
                r = spool_flush(it);
        if (r < 0) {
                it->failing = true;
                log_job(LOG_WARNING, it, NULL, "%s; will retry next cycle",
                        list_error_reason(it, r, why, sizeof(why)));
                d->stats.items_failed++;
                item_drop_pending(it);
                return;
        }
        free(it->spool_buf); /* written: only read back from here on */
        it->spool_buf = NULL;
        if (!it->list_error)
                undated_sweep(it);
        /* Quiet: nothing to archive, nothing running that will need archiving, and the
         * same list as last time; such an item backs off (schedule_interval). */
        bool same = r >= 0 && it->list_fp == it->fp_accum && it->polls > 0;
        it->quiet = same && it->n_due == 0 && it->n_waiting == 0 && it->n_invalid == 0
                            ? it->quiet + (it->quiet < 32)
                            : 0;
        it->list_fp = it->fp_accum;
        it->polls++;
        log_job(LOG_DEBUG, it, NULL,
                "%zu jobs listed: %u to archive, %u archived before, %u active, %u past "
                "retention, %u invalid",
                n_listed, it->n_due, it->n_done, it->n_waiting, it->n_expired, it->n_invalid);
        /* Low on disk or stopping: leave the jobs for a poll after space returns. */
        if (d->disk_low || d->stop || it->removed) {
                item_drop_pending(it);
                return;
        }
        if (it->n_pending == 0)
                spool_close(it);
        item_idle_check(it);
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
        int r;

        r = spool_next(it, &elem, &len);
        if (r < 0) {
                log_job(LOG_WARNING, it, NULL,
                        "cannot read the job list back from its temporary file: %s; will "
                        "retry next cycle",
                        strerror(-r));
                it->failing = true;
                d->stats.items_failed++;
                item_drop_pending(it);
                return;
        }
        r = connect_parse_element(elem, len, &j);
        if (r < 0) {
                /* It parsed when it came: only memory can fail here. */
                job_failed(it, "(none)", "out of memory reading the job back");
        } else if (j.invalid) {
                job_failed(it, j.key ? j.key : "(none)", "skipped: %s", j.invalid);
                connect_job_done(&j);
        } else {
                /* Where it goes; whether it is archived was asked when it was listed, and
                 * the batch asks again before it commits (another archiver may have). */
                r = job_locate(it, &j, &loc, &source, NULL);
                if (r < 0) {
                        job_failed(it, j.key, "cannot look for the job in %s/%s: %s",
                                   d->archive_name, it->guid, strerror(-r));
                        connect_job_done(&j);
                } else {
                        j.date_source = source;
                        if (task_start(it, &j, &loc, on_task_done) >= 0) {
                                it->tasks++;
                                d->n_tasks++;
                        } else {
                                log_job(LOG_WARNING, it, j.key,
                                        "out of memory; will retry next cycle");
                                d->stats.jobs_failed++;
                                connect_job_done(&j);
                        }
                }
        }
        if (it->n_pending == 0)
                item_drop_pending(it); /* closes the spool; the item is idle once its tasks end */
}

/*
 * Starts spooled jobs while fewer than TASKS_MAX are live, one item after the other in turn,
 * so that the few new jobs of one item do not wait behind the hundred thousand of another.
 */
void feed_tasks(struct daemon *d)
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

/* Connect's answer to "what is this item called", for a configured item without a name. */
static void on_name_done(void *userdata, const struct http_result *res)
{
        struct item *it = userdata;
        struct json_object *o = NULL;
        struct content_item ci = {0};

        it->naming = false;
        if (res->outcome == HTTP_RETRY)
                it->name_asked = false; /* ask again with the next poll */
        if (res->outcome == HTTP_OK && connect_parse_json(res->body, res->body_len, &o) >= 0 &&
            content_item_from_json(o, &ci) >= 0 && content_item_label(&ci))
                (void) set_string(&it->connect_name, content_item_label(&ci));
        content_item_done(&ci);
        json_object_put(o);
        item_idle_check(it);
}

/* Without discovery, a configured item with no name asks Connect for its own, once. */
static void item_ask_name(struct item *it)
{
        _cleanup_free_ char *url = NULL;

        if (it->name || it->connect_name || it->name_asked || it->d->config->discover)
                return;
        it->name_asked = true;
        if (content_item_url(it->d->config->server_url, it->guid, &url) < 0 ||
            http_get(it->d->http, url, NULL, on_name_done, it) < 0)
                return; /* no name: not worth failing the poll for */
        it->naming = true;
}

void item_poll(struct item *it)
{
        int r;

        item_ask_name(it);

        it->polled = false;
        it->poll_failures = it->poll_failures_quiet = it->poll_stuck_quiet = 0;
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

void items_free(struct item **items, size_t n)
{
        for (size_t i = 0; i < n; i++)
                item_free(items[i]);
        free(items);
}

static int item_new(struct daemon *d, const struct config *c, const char *guid, struct item **ret)
{
        struct item *it = calloc(1, sizeof(*it));

        if (!it)
                return -ENOMEM;
        it->d = d;
        it->polled = true;
        it->spool_fd = -1;
        it->guid = strdup(guid);
        if (!it->guid || connect_jobs_url(c->server_url, it->guid, &it->list_url) < 0) {
                item_free(it);
                return -ENOMEM;
        }
        *ret = it;
        return 0;
}

bool item_in(struct item *const *items, size_t n, const struct item *it)
{
        for (size_t i = 0; i < n; i++)
                if (items[i] == it)
                        return true;
        return false;
}

/* Frees a list from items_from_config() that was not taken: the items it created, not the
 * ones it shares with the running list. */
void items_free_new(struct daemon *d, struct item **items, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (!item_in(d->items, d->n_items, items[i]))
                        item_free(items[i]);
        free(items);
}

/* The running item with this GUID, or NULL. */
static struct item *item_find(struct item *const *items, size_t n, const char *guid)
{
        for (size_t i = 0; i < n; i++)
                if (items[i] && strcasecmp(items[i]->guid, guid) == 0)
                        return items[i];
        return NULL;
}

/*
 * Builds the item list: the items of content: in their order, then those the discovered set
 * selects that content: does not list, each reusing the running item with its GUID (its
 * state and in-flight work carry over: a new name or server URL applies from its next poll)
 * or created new. found also names the configured items that have no name of their own.
 */
int items_build(struct daemon *d, const struct config *c, const struct found *found, size_t n_found,
                struct item ***ret, size_t *ret_n)
{
        struct item **items = calloc(c->n_content + n_found + 1, sizeof(*items));
        size_t n = 0;
        int r = 0;

        if (!items)
                return -ENOMEM;
        for (size_t i = 0; i < c->n_content + n_found && r >= 0; i++) {
                const char *guid =
                        i < c->n_content ? c->content[i].guid : found[i - c->n_content].guid;
                const struct found *f = NULL;
                if (i >= c->n_content) {
                        f = &found[i - c->n_content];
                        if (f->rule == 0 || item_find(items, n, guid))
                                continue; /* only named, or listed in content: too */
                } else {
                        for (size_t k = 0; k < n_found && !f; k++)
                                if (strcasecmp(found[k].guid, guid) == 0)
                                        f = &found[k];
                }
                struct item *it = item_find(d->items, d->n_items, guid);
                bool fresh = !it;
                if (fresh && (r = item_new(d, c, guid, &it)) < 0)
                        break;
                items[n++] = it;
                _cleanup_free_ char *url = NULL;
                r = connect_jobs_url(c->server_url, it->guid, &url);
                if (r >= 0)
                        r = set_string(&it->name, i < c->n_content ? c->content[i].name : NULL);
                if (r >= 0 && f && f->label)
                        r = set_string(&it->connect_name, f->label);
                if (r < 0)
                        break;
                free(it->list_url);
                it->list_url = url;
                url = NULL;
                it->configured = i < c->n_content;
                it->rule = f ? f->rule : 0;
                /* Deleted content leaves the listing; coming back, it is polled again. */
                if (f && !it->in_listing)
                        it->gone = false;
                it->in_listing = f != NULL;
        }
        if (r < 0) {
                items_free_new(d, items, n);
                return -ENOMEM;
        }
        *ret = items;
        *ret_n = n;
        return 0;
}

void items_replace(struct daemon *d, struct item **items, size_t n)
{
        /* Items no longer watched retire: freed when their last transfer ends. */
        for (size_t j = 0; j < d->n_items; j++) {
                struct item *it = d->items[j];
                if (item_in(items, n, it))
                        continue;
                it->removed = true;
                it->next_retired = d->retired;
                d->retired = it;
                spool_close(it); /* its jobs not started yet stay for good */
                item_idle_check(it);
        }
        free(d->items);
        d->items = items;
        d->n_items = n;
        d->feed_next = 0;
        d->status_dirty = true;
}

/*
 * What the daemon says: a job's log lines (log_job), why a request failed (result_reason), the
 * one-line status for `systemctl status`, and the metrics file.
 */

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "internal.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

/*
 * "content=<guid> (<name>) job=<key>: <message>", every string from outside escaped; in the
 * journal also as the fields CONTENT_GUID, CONTENT_NAME and JOB_KEY.
 */
_printf_(4, 5) void log_job(int prio, const struct item *it, const char *key, const char *fmt, ...)
{
        char msg[1024], name[LOG_ESCAPE_MAX], k[LOG_ESCAPE_MAX];
        struct log_context ctx = {.content_guid = it->guid};
        va_list ap;

        if (!log_enabled(prio))
                return;
        va_start(ap, fmt);
        (void) vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (item_label(it))
                ctx.content_name = log_escape(item_label(it), name, sizeof(name));
        if (key)
                ctx.job_key = log_escape(key, k, sizeof(k));
        if (key)
                log_context_printf(prio, &ctx, "content=%s (%s) job=%s: %s", it->guid,
                                   ctx.content_name ? ctx.content_name : "-", ctx.job_key, msg);
        else
                log_context_printf(prio, &ctx, "content=%s (%s): %s", it->guid,
                                   ctx.content_name ? ctx.content_name : "-", msg);
}

/* The reason a request failed, in words: Connect's error message when there is one.
 * list_server: the server URL for a job list request, else NULL (connect_error_message()). */
const char *result_reason(const struct http_result *res, const char *list_server, char *buf,
                          size_t size)
{
        if (res->curl_code != 0 || res->sink_error != 0) {
                (void) snprintf(buf, size, "%s", res->detail);
                return buf;
        }
        (void) connect_error_message(res->status, res->body, res->body_len, list_server, buf, size);
        if (res->outcome == HTTP_AUTH) {
                size_t n = strlen(buf);
                (void) snprintf(buf + n, size - n, "%s",
                                res->status == 401 ? " (the API key was rejected)"
                                                   : " (the API key lacks rights to this content)");
        }
        return buf;
}

/* Jobs failing STUCK_AFTER_FAILURES polls in a row or more, over every item. */
static size_t stuck_jobs(const struct daemon *d)
{
        size_t n = 0;

        for (size_t i = 0; i < d->n_items; i++)
                for (const struct failure *f = d->items[i]->failures; f; f = f->next)
                        n += f->count >= STUCK_AFTER_FAILURES;
        return n;
}

/* Items listed in content: and items a discover rule selects (an item can be both). */
static void items_count(const struct daemon *d, size_t *ret_configured, size_t *ret_discovered)
{
        *ret_configured = *ret_discovered = 0;
        for (size_t i = 0; i < d->n_items; i++) {
                *ret_configured += d->items[i]->configured;
                *ret_discovered += d->items[i]->rule > 0;
        }
}

void daemon_metrics_update(struct daemon *d)
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
                        .name = item_label(d->items[i]),
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
                .discovery = d->config->discover,
                .discovery_failing = d->discovery.failing,
                .content_listed = d->discovery.n_listed,
        };
        items_count(d, &m.items_configured, &m.items_discovered);
        r = metrics_write(d->config->metrics_file, &m);
        if (r < 0)
                (void) log_errno(LOG_WARNING, r, "cannot write the metrics file %s: %m",
                                 d->config->metrics_file);
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
void status_update(struct daemon *d)
{
        char status[1024], bytes[32], ago[48] = "no cycle yet", disk[160] = "", why[128] = "";
        size_t failing = 0, configured, discovered;

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
        items_count(d, &configured, &discovered);
        if (d->config->discover)
                (void) snprintf(why, sizeof(why),
                                " (%zu listed, %zu discovered of %zu on Connect%s)", configured,
                                discovered, d->discovery.n_listed,
                                d->discovery.failing ? "; content listing failing" : "");
        (void) snprintf(status, sizeof(status),
                        "watching %zu %s%s; %" PRIu64 " jobs archived since start (%s); %zu "
                        "failing; %s%s%s%s",
                        d->n_items, d->n_items == 1 ? "item" : "items", why, d->stats.jobs_archived,
                        bytes, failing, ago, d->problem[0] ? "; " : "", d->problem, disk);
        notify_status(status);
        d->status_dirty = false;
}

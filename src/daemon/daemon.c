/*
 * The daemon's loop and its life: daemon_new/daemon_free, one turn of the loop (the HTTP engine,
 * the compression threads' wake-ups, signals, batch commits), --once, the service loop, and the
 * reload on SIGHUP. The rest of the daemon is in the files internal.h lists.
 */

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "daemon.h"
#include "internal.h"
#include "log.h"
#include "store.h"
#include "util.h"

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
        r = items_build(d, config, NULL, 0, &d->items, &d->n_items);
        if (r < 0)
                goto fail;
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
        discovery_free(d);
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
 * One turn of the loop: runs the HTTP engine until deadline_usec (sooner when the batch is due),
 * hands the compression threads' finished logs on (archive_dispatch), reads signals, and
 * commits the batch when it is full, old, or there is nothing left in flight. The caller
 * starts the polls and tasks. Returns 0, or -errno when the HTTP engine failed.
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

static void counts_get(const struct daemon *d, struct daemon_counts *ret)
{
        *ret = (struct daemon_counts){
                .items = d->n_items,
                .jobs_archived = d->stats.jobs_archived,
                .jobs_failed = d->stats.jobs_failed,
                .lists_failed = d->stats.items_failed,
                .bytes_in = d->stats.bytes_in,
                .bytes_out = d->stats.bytes_out,
                .stopped = d->stop,
                .disk_low = d->disk_low,
        };
}

/* With archive.s3: what the store asked of S3 this run (the jobs another archiver of a pair
 * archived first, and the requests by kind). */
static void s3_summary(const struct daemon *d)
{
        struct store_s3_counts c;

        if (!d->config->s3 || !d->archive)
                return;
        store_s3_counts(archive_store(d->archive), &c);
        log_printf(LOG_NOTICE,
                   "s3: %" PRIu64 " jobs archived by another archiver first; requests: %" PRIu64
                   " PUT (%" PRIu64 " refused as existing), %" PRIu64 " HEAD, %" PRIu64
                   " GET, %" PRIu64 " LIST, %" PRIu64 " DELETE, %" PRIu64 " POST, %" PRIu64
                   " retries",
                   d->stats.jobs_archived_elsewhere, c.put, c.put_conflict, c.head, c.get, c.list,
                   c.delete_, c.post, c.retried);
}

int daemon_run_once(struct daemon *d, struct daemon_counts *ret_counts)
{
        uint64_t start = now_usec(CLOCK_MONOTONIC);
        int r;

        d->once = true;
        r = daemon_archive_setup(d);
        if (r < 0)
                return r;
        retention_run(d);
        if (disk_check(d)) {
                log_printf(LOG_ERR, "not enough free space in %s; nothing fetched",
                           d->config->archive_dir);
                counts_get(d, ret_counts);
                return 0;
        }
        /* With discover:, the listing comes first: the items it selects are polled too. */
        discovery_tick(d, now_usec(CLOCK_MONOTONIC));
        while (d->discovery.refreshing && !d->stop) {
                r = loop_turn(d, now_usec(CLOCK_MONOTONIC) + 60 * USEC_PER_SEC);
                if (r < 0)
                        return r;
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
        daemon_metrics_update(d);

        double secs = (double) (now_usec(CLOCK_MONOTONIC) - start) / (double) USEC_PER_SEC;
        log_printf(LOG_NOTICE,
                   "once: %zu content items, %" PRIu64 " jobs archived, %" PRIu64
                   " failed, %" PRIu64 " lists failed, %" PRIu64 " bytes in, %" PRIu64
                   " bytes out, %.2f s",
                   d->n_items, d->stats.jobs_archived, d->stats.jobs_failed, d->stats.items_failed,
                   d->stats.bytes_in, d->stats.bytes_out, secs);
        s3_summary(d);
        counts_get(d, ret_counts);
        return 0;
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
        _cleanup_free_ char *archive_dir = NULL;
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
        /* Copied before anything changes: out of memory here keeps the running config whole. */
        archive_dir = strdup(d->config->archive_dir);
        size_t n_items = 0;
        const struct discovery *disc = &d->discovery;
        /* Until the new rules' first listing, the items found by the old ones stay. */
        r = archive_dir ? items_build(d, c, c->discover ? disc->found : NULL,
                                      c->discover ? disc->n_found : 0, &items, &n_items)
                        : -ENOMEM;
        if (r >= 0)
                r = http_engine_reconfigure(d->http, &o);
        if (r < 0) {
                (void) log_errno(LOG_ERR, r,
                                 "cannot apply the new configuration: %m; keeping "
                                 "the running one");
                items_free_new(d, items, n_items);
                goto out;
        }
        items_replace(d, items, n_items);
        /* Keep the archive settings the archive was opened with (see above). */
        free(c->archive_dir);
        c->archive_dir = archive_dir;
        archive_dir = NULL;
        c->compression_level = d->config->compression_level;
        config_free(d->config);
        d->config = c;
        c = NULL;
        discovery_reset(d);
        if (d->key_rejected) {
                /* Perhaps a new key: one job list tries it at once. */
                d->key_retry_usec = now_usec(CLOCK_MONOTONIC);
                d->key_backoff_usec = (uint64_t) d->config->poll_interval_seconds * USEC_PER_SEC;
        }
        log_printf(LOG_NOTICE, "reloaded: watching %zu content items", d->n_items);
out:
        config_free(c);
        d->status_dirty = true;
        notify_ready("reloaded");
}

/*
 * While Connect rejects the key (item.c, key_rejected): no item is polled on its schedule;
 * one job list, of each item in turn, is tried when key_retry_usec comes, the wait doubling
 * from the poll interval up to poll.max_interval_seconds. The first list answered ends it.
 */
static void key_rejected_tick(struct daemon *d, uint64_t now, uint64_t *deadline)
{
        uint64_t ceiling = (uint64_t) d->config->poll_max_interval_seconds * USEC_PER_SEC;

        if (now >= d->key_retry_usec && d->n_listing == 0 && !d->disk_low && backlog_has_room(d)) {
                for (size_t k = 0; k < d->n_items; k++) {
                        struct item *it = d->items[(d->key_probe_next + k) % d->n_items];
                        if (it->gone || !it->polled)
                                continue;
                        d->key_probe_next = (d->key_probe_next + k + 1) % d->n_items;
                        item_poll(it);
                        break;
                }
                d->key_retry_usec = now + d->key_backoff_usec;
                d->key_backoff_usec =
                        2 * d->key_backoff_usec < ceiling ? 2 * d->key_backoff_usec : ceiling;
        }
        if (d->key_retry_usec < *deadline)
                *deadline = d->key_retry_usec;
}

int daemon_run_forever(struct daemon *d, const char *config_path)
{
        uint64_t now, start, deadline, last_status = 0;
        int r;

        d->once = false;
        r = daemon_archive_setup(d);
        if (r < 0)
                return r;
        start = now_usec(CLOCK_MONOTONIC);
        for (size_t i = 0; i < d->n_items; i++)
                d->items[i]->next_poll_usec = schedule_first_poll(
                        start, (uint64_t) d->config->poll_interval_seconds * USEC_PER_SEC, i,
                        d->n_items);
        retention_run(d);
        d->next_prune_usec = start + RETENTION_EVERY_USEC;
        (void) disk_check(d);
        d->next_disk_check_usec = start + DISK_CHECK_EVERY_USEC;
        notify_watchdog_init(&d->watchdog, start);
        log_printf(LOG_NOTICE,
                   "watching %zu content items on %s every %u s (quiet ones back off "
                   "to %u s)%s",
                   d->n_items, d->config->server_url, d->config->poll_interval_seconds,
                   d->config->poll_max_interval_seconds,
                   d->config->discover ? "; discovering content" : "");
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
                discovery_tick(d, now);
                /* Before the polls' deadlines: a spool drained here makes its item due. */
                feed_tasks(d);
                deadline = d->next_disk_check_usec;
                if (d->next_prune_usec < deadline)
                        deadline = d->next_prune_usec;
                if (discovery_deadline(d) < deadline)
                        deadline = discovery_deadline(d);
                /* While the disk is low, due polls wait for the next disk check; while the
                 * backlog is full, for the jobs in flight to finish (they wake the loop). */
                size_t i = 0;
                if (d->key_rejected)
                        key_rejected_tick(d, now, &deadline);
                else
                        while (!d->disk_low && (i = schedule_next_due(d->items, d->n_items, i, now,
                                                                      &deadline)) < d->n_items) {
                                if (backlog_has_room(d))
                                        item_poll(d->items[i]);
                                i++;
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
                        daemon_metrics_update(d);
                        last_status = now;
                }
        }
        notify_stopping();
        stop_now(d);
        daemon_metrics_update(d);
        log_printf(LOG_NOTICE, "stopped: %" PRIu64 " jobs archived, %" PRIu64 " failed this run",
                   d->stats.jobs_archived, d->stats.jobs_failed);
        s3_summary(d);
        return r < 0 ? r : 0;
}

#pragma once

/*
 * The daemon's private header: the state its files share (systemd's resolved-manager.h
 * pattern). Nothing outside src/daemon/ includes it, except the unit tests of the pure parts
 * (schedule.c). The interface main.c uses is daemon.h.
 *
 *   daemon.c     new/free, the loop turn, signals, --once, the service loop, reload
 *   item.c       per-item polling: the job list stream, its results, failures in a row,
 *                feeding spooled jobs to tasks, the item list for a config
 *   spool.c      the spool: the raw bytes of a list's jobs to act on, in an unlinked file
 *   job.c        one job's pipeline: start -> error record -> download -> compressed ->
 *                queued -> committed, ending in the item's done callback
 *   archiving.c  the daemon's side of the archive: open/lock/sweep, batch commits,
 *                retention and the disk guard
 *   schedule.c   when items poll: the first-poll spread and the due scan, pure functions
 *   discover.c   the content listing: discover rules applied every refresh_seconds
 *   report.c     what the daemon says: job log lines, reasons, the status line, metrics
 *   notify.c, metrics.c  sd_notify and the Prometheus file
 *
 * Calls point one way: daemon.c -> item.c -> job.c -> report.c (and each to archiving.c,
 * spool.c, schedule.c as needed); a task reports its end through task_done_fn, never by
 * calling into item.c.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "archive.h"
#include "connect.h"
#include "http.h"
#include "macro.h"
#include "notify.h"
#include "util.h"

struct config;
struct config_content;
struct content_rules;
struct lh_table;
struct tag_tree;

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
/* Failures of one item's poll said one by one; the rest are summed up in one line at its end. */
#define FAILURES_SAID_PER_POLL 3
/* How often the service checks free space, and prunes past the retention window. */
#define DISK_CHECK_EVERY_USEC (5 * USEC_PER_SEC)
#define RETENTION_EVERY_USEC  (3600 * USEC_PER_SEC)
/* A request is tried this often in one cycle before the job waits for the next cycle. */
#define HTTP_MAX_ATTEMPTS 4

struct daemon_stats {
        uint64_t jobs_archived;
        uint64_t jobs_archived_elsewhere; /* by the other archiver of a pair (S3) */
        uint64_t jobs_failed;             /* jobs that could not be archived (this run) */
        uint64_t items_failed;            /* job lists that could not be fetched or parsed */
        uint64_t bytes_in;                /* uncompressed log bytes */
        uint64_t bytes_out;               /* gzip bytes written */
};

/* One watched content item: listed in content:, found by a discover rule, or both. */
struct item {
        struct daemon *d;
        char *guid;
        char *name;         /* the configured name; NULL when the config gives none */
        char *connect_name; /* Connect's title, else its name; NULL until known */
        char *list_url;
        bool configured;   /* listed in content: */
        size_t rule;       /* selected by discover rule N (1-based); 0: by none */
        bool gone;         /* its job list answered 404 code 4: not polled until listed again */
        bool in_listing;   /* the last content listing had it */
        bool forbidden;    /* its job list answered 403: said once, polled at the ceiling */
        bool name_asked;   /* its name was asked of Connect (no discover: section) */
        bool naming;       /* that request is in flight */
        unsigned quiet;    /* polls in a row with nothing new and no active job */
        unsigned polls;    /* whole lists received in this run */
        uint64_t list_fp;  /* fingerprint of the last whole list (keys and statuses) */
        uint64_t fp_accum; /* ... of the list arriving */
        bool listing;      /* its job list request is in flight */
        unsigned tasks;    /* jobs of its last list still being archived */
        bool polled;       /* its last poll, and every job it found, is over */
        bool removed;      /* dropped by a reload: freed once idle */
        bool failing;      /* its last poll or one of its jobs failed */
        uint64_t next_poll_usec;
        uint64_t last_poll_usec; /* CLOCK_REALTIME of the last successful list, 0 if none */
        uint64_t poll_started_usec;
        double last_poll_seconds;
        struct failure *failures; /* jobs that failed in a row, until archived */
        /* This poll's failures (job_failed): how many, how many were not said one by one, of
         * those how many just became stuck, and the last of their reasons. */
        unsigned poll_failures, poll_failures_quiet, poll_stuck_quiet;
        char *poll_failure_last;
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

/* The name an item goes by: the configured one, else Connect's (NULL when neither). */
static inline const char *item_label(const struct item *it)
{
        return it->name ? it->name : it->connect_name;
}

/* What the last good content listing selected (discover.c), for the item list. */
struct found {
        char *guid;
        char *label; /* Connect's title or name, or NULL */
        size_t rule; /* 1-based; 0: not selected, only named (an item of content:) */
};

/* Discovery: the content listing, every discover.refresh_seconds (discover.c). */
struct discovery {
        bool refreshing;
        bool failing;     /* the last listing failed (said once, until one succeeds) */
        bool listed_once; /* a listing succeeded in this run */
        bool admin;       /* the key is an administrator's (GET /v1/user) */
        uint64_t next_refresh_usec;
        struct tag_tree *tags;
        struct content_rules *rules;
        struct connect_stream *stream;
        struct found *found, *next; /* the last good listing; the one arriving */
        size_t n_found, n_next, cap_next;
        size_t n_listed;        /* items the last good listing held */
        bool *unknown_tag_said; /* per rule: its tag path's absence was logged */
        size_t n_unknown_tag_said;
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

/* How a task ends, told once to the item that started it: failure is NULL when the job was
 * archived, else why it could not be (the job is retried next poll). */
typedef void task_done_fn(struct item *it, const char *key, const char *failure);

/* One due job on its way into the archive. */
struct task {
        struct daemon *d;
        struct item *item;
        struct job job; /* moved out of the job list */
        struct archive_loc loc;
        struct json_object *error; /* NULL: none (204) */
        struct archive_file *file; /* the log being streamed, until the batch takes it */
        task_done_fn *done;
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
        bool store_slow;        /* archive.s3: the last batch needed retries of its requests */
        char archive_name[512]; /* for messages: the folder, or "s3://<bucket>[/<prefix>]" */
        struct item **items;
        size_t n_items;
        struct discovery discovery;
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
        /* A job list answered 401: the key is rejected, so polling stops but for one job list
         * now and then (key_retry_usec, the wait doubling from the poll interval to its
         * ceiling), until one is answered or a reload brings a new key. */
        bool key_rejected;
        uint64_t key_retry_usec, key_backoff_usec;
        size_t key_probe_next;
        bool disk_low; /* free space under min_free_mb: no new jobs start */
        uint64_t free_mb;
        uint64_t next_disk_check_usec;
        uint64_t next_prune_usec;
        struct ymd cutoff; /* retention: jobs before this day are gone */
        int signal_fd;
        bool stop;
        bool reload;
};

/* item.c */
/* The item list for config c and the discovered set (found), reusing the running items. */
int items_build(struct daemon *d, const struct config *c, const struct found *found, size_t n_found,
                struct item ***ret, size_t *ret_n);
void items_free_new(struct daemon *d, struct item **items, size_t n);
/* Makes items the running list: new ones are polled at once, the ones left out retire. */
void items_replace(struct daemon *d, struct item **items, size_t n);
void items_free(struct item **items, size_t n);
void item_free(struct item *it);
bool item_in(struct item *const *items, size_t n, const struct item *it);
void item_poll(struct item *it);
void item_idle_check(struct item *it);
void feed_tasks(struct daemon *d);

/* spool.c */
int spool_add(struct item *it, const char *elem, size_t len);
int spool_flush(struct item *it);
int spool_reset(struct item *it);
int spool_next(struct item *it, char **ret, size_t *ret_len);
void spool_close(struct item *it);

/* job.c: starts archiving job (taking what it owns) under loc's date; done is called once
 * when it ends. Returns 0, or -ENOMEM with job untouched and done not called. */
int task_start(struct item *it, struct job *job, const struct archive_loc *loc, task_done_fn *done);

/* archiving.c */
int daemon_archive_setup(struct daemon *d);
void batch_commit(struct daemon *d);
bool job_is_expired(const struct daemon *d, const struct archive_loc *j);
void retention_run(struct daemon *d);
bool disk_check(struct daemon *d);

/* discover.c */
/* Starts a content listing when discovery is configured and one is due. */
void discovery_tick(struct daemon *d, uint64_t now_usec);
/* When the next listing is due, for the loop; UINT64_MAX when discovery is off. */
uint64_t discovery_deadline(const struct daemon *d);
/* New rules (a reload): the next listing starts at once. */
void discovery_reset(struct daemon *d);
void discovery_free(struct daemon *d);

/* schedule.c: pure functions of "now" (tests/unit/test_schedule.c). */
uint64_t schedule_first_poll(uint64_t start_usec, uint64_t interval_usec, size_t i, size_t n);
size_t schedule_next_due(struct item *const *items, size_t n, size_t from, uint64_t now_usec,
                         uint64_t *deadline_usec);
/* The wait before an item's next poll: the interval after a poll that found something
 * (quiet 0), doubling with each quiet poll in a row, never above max_usec. */
uint64_t schedule_interval(uint64_t interval_usec, uint64_t max_usec, unsigned quiet);

/* report.c */
_printf_(4, 5) void log_job(int prio, const struct item *it, const char *key, const char *fmt, ...);
const char *result_reason(const struct http_result *res, const char *list_server, char *buf,
                          size_t size);
void status_update(struct daemon *d);
void daemon_metrics_update(struct daemon *d);

#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct catalog;

/*
 * Read-only walk over the archive (see archive.h for the layout) for connect-jobs' ls and
 * search: folders are pruned by content and date before any file is opened, then each
 * job's small <key>.json record is read for the record filters and the order.
 *
 * Nothing below the root is followed through a symlink (the root itself may be one);
 * temporaries (".*") and anything that is not "<key>.json" are ignored.
 */

/* Time filters are half-open, [since, until), in epoch seconds; see scan_parse_time(). */
struct scan_filter {
        const char *const *guids; /* NULL: every content folder; else these (any case) */
        size_t n_guids;
        bool has_since, has_until;
        int64_t since, until;
        bool failed;             /* exit code present and not 0, or an error record */
        const char *const *tags; /* any of these (exact); NULL: any */
        size_t n_tags;
        const char *const *keys; /* any of these (exact); NULL: any */
        size_t n_keys;
        /* The search catalog (catalog.h), or NULL: a day folder it covers as the folder is now
         * is answered from its rows instead of the records (the same jobs, the same fields). */
        const struct catalog *catalog;
        /* With catalog: counts (atomically) the day folders it did not cover, which were read
         * from their records (NULL: not counted). */
        size_t *uncovered;
        /* With catalog (search): jobs with a log that the catalog's last catalog_match() rules
         * out are left out, and counted here (atomically); NULL: every job is given. */
        size_t *ruled_out;
        bool newest_first; /* the order: the newest date first, each date's jobs newest first */
};

struct scan_job {
        char *guid;        /* the folder's name */
        char *record_name; /* content_name in the record, or NULL */
        char *key;         /* from the file name (== job.key when the record says) */
        char *tag;         /* NULL when absent */
        char *start_text;  /* job.start_time as written, or NULL */
        int64_t start;     /* job.start_time in epoch seconds; the folder's midnight if absent */
        int status;        /* -1 when absent or null */
        bool has_exit_code;
        int exit_code;
        bool has_error;       /* "error" is an object */
        char *error_summary;  /* error.summary, or NULL */
        int64_t log_bytes;    /* -1 when null: no log file */
        int year, month, day; /* the folder */
        int64_t catalog_row;  /* its row in f->catalog, or -1: read from its record */
};

/*
 * Parses a --since/--until value at time now: "YYYY-MM-DD" (that day's midnight in the
 * local zone), an RFC 3339 date-time, "today"/"yesterday" (local midnight), "-7d", "-12h",
 * "-30m", "-45s" (relative to now). *ret_is_day says the value names a whole day, which
 * --until includes (the caller then uses the next day's midnight). Returns 0 or -EINVAL.
 */
int scan_parse_time(const char *s, int64_t now, int64_t *ret, bool *ret_is_day);

/* The CPUs of the affinity mask (at least 1). */
unsigned scan_cpu_count(void);

/* The local midnight that starts the day after the one containing t. */
int64_t scan_next_local_midnight(int64_t t);

typedef void scan_warn_fn(void *userdata, const char *path, int error, const char *what);

/*
 * Walks the archive under rootfd and returns the jobs that pass f, ordered by start time,
 * then key, then GUID (f->newest_first: the reverse). A record that cannot be read or parsed is
 * reported through warn (path relative to the root) and skipped; *ret_warnings counts them. Returns
 * 0 or -errno
 * (-ENOMEM, or the root itself is unreadable). The caller frees with scan_jobs_free().
 */
int archive_scan(int rootfd, const struct scan_filter *f, scan_warn_fn *warn, void *userdata,
                 struct scan_job **ret, size_t *ret_n, unsigned *ret_warnings);

/*
 * archive_scan() a date at a time, for a reader that starts on the first jobs while the
 * later dates are still being read: fn gets the jobs filed under each date (every content
 * item's folder of that day), ordered as archive_scan() orders them, dates in order (the
 * newest first with f->newest_first), and owns them (free with scan_jobs_free()). A job's
 * place is its date folder's, then its start time's: memory holds one date's records, not
 * the archive's. last is true on the final call, which comes even
 * when nothing matched (n == 0). fn returns 0, or -errno to stop the walk with that error.
 */
typedef int scan_batch_fn(void *userdata, struct scan_job *jobs, size_t n, bool last);
int archive_scan_dates(int rootfd, const struct scan_filter *f, scan_warn_fn *warn, void *userdata,
                       scan_batch_fn *fn, void *fn_userdata, unsigned *ret_warnings);

void scan_jobs_free(struct scan_job *jobs, size_t n);
void scan_job_done(struct scan_job *j);

/*
 * Finds the job key of content guid in any of the item's day folders (a job may be filed
 * under a date other than its start time's: see the record's "date_source"). Each day folder
 * costs one openat of <key>.json, no listing. Returns 1 with *ret filled (free with
 * scan_job_done()), 0 when it is not there, or -errno.
 */
int scan_find_job(int rootfd, const char *guid, const char *key, scan_warn_fn *warn, void *userdata,
                  struct scan_job *ret);

/* Opens the job's day folder below rootfd without following symlinks. Returns an fd or -errno. */
int scan_job_open_dir(int rootfd, const struct scan_job *j);

/* A small regular file (a record; at most 1 MiB) under dfd, not following a symlink, NUL
 * terminated. Returns 0, -EFBIG, -ENODATA (empty) or -errno. */
int scan_read_small(int dfd, const char *name, char **ret, size_t *ret_len);

/* "<guid>/YYYY/MM/DD/<key><suffix>" into buf; returns buf, or NULL when it does not fit. */
char *scan_job_path(const struct scan_job *j, const char *suffix, char *buf, size_t size);

#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * A read-through mirror of an archive in S3 (s3_mirror.c), so that connect-jobs' readers
 * (archive_scan.c, logreader.c, the search) read the bucket through the same local layout
 * they read on disk: "<dir>/<guid>/YYYY/MM/DD/<key>.json", ".error.json", ".log.gz".
 *
 * Every object of the archive is immutable once it exists (a record is created once, never
 * replaced; retention only removes), so a mirrored file of the listed size is the object:
 * the cache never goes stale, and what it must learn from the bucket is only which objects
 * exist, one listing (ListObjectsV2) of the folders a command reads. Records and error records
 * are fetched for those folders; logs only for the jobs a command reads. Files are written as
 * ".<name>.<pid>.tmp" and renamed (the readers ignore names beginning with '.'), so two
 * commands may share a mirror. Files whose object is gone (retention, a deletion) are removed.
 */

struct store;
struct scan_filter;
struct scan_job;
struct catalog;

struct s3_mirror;

struct s3_mirror_stats {
        uint64_t listed;                       /* objects the listings named */
        uint64_t fetched, fetched_bytes;       /* records and error records fetched */
        uint64_t logs_fetched, logs_bytes;     /* logs fetched */
        uint64_t cached;                       /* files found in the mirror already */
        uint64_t removed;                      /* files removed: their object is gone */
        uint64_t trimmed, trimmed_bytes;       /* logs removed to keep the cap */
        uint64_t covered;                      /* day folders the catalog answered */
        uint64_t parts, part_gets, part_bytes; /* logs fetched in part: ranged GETs, bytes */
};

/* The mirror of s3 (a store_s3_open() store, borrowed) in the folder dir, created (0700, with
 * its parents) when missing. Returns 0 or -errno. */
int s3_mirror_open(struct store *s3, const char *dir, struct s3_mirror **ret);
void s3_mirror_free(struct s3_mirror *m);

/* The mirror's folder, for the readers (archive_scan(), scan_find_job(), ...). */
int s3_mirror_rootfd(const struct s3_mirror *m);

/*
 * Makes the mirror's records of the folders f selects (its content GUIDs, the day folders of
 * its --since/--until range, as archive_scan() prunes them) what the bucket holds: one listing
 * per content folder, new records and error records fetched at once, files of objects that
 * are gone removed. key (NULL: all): fetch only that job's. Returns 0 or -errno (s3_read.h).
 */
int s3_mirror_sync(struct s3_mirror *m, const struct scan_filter *f, const char *key);

/* Fetches the logs of jobs (read from the mirror after s3_mirror_sync()) that have one and are
 * not mirrored yet, at once. results (may be NULL) gets each job's outcome. Returns 0 or the
 * first error. */
int s3_mirror_fetch_logs(struct s3_mirror *m, const struct scan_job *jobs, size_t n, int *results);

/*
 * Part of a job's log: the byte ranges a search of its catalog's members reads
 * (grep_members_needed()), fetched with ranged GETs (adjacent ranges as one) into a file of
 * the log's size whose other bytes are a hole. A mirrored file of the listed size is the
 * object, so that file is never under the log's mirror name: it is in the command's own
 * folder (.part.<pid>.<random>/, as the mirror's layout), removed by s3_mirror_free() (or,
 * after a crash, by a later command once it is an hour old); s3_mirror_part_open() opens it.
 */
struct s3_range {
        uint64_t offset, length;
};

struct s3_part {
        const struct scan_job *job;
        const struct s3_range *ranges; /* sorted, not overlapping */
        size_t n_ranges;
        uint64_t size; /* the log's size as the catalog has it (its last member's end) */
        /* out: 0 (its part is fetched), 1 (the log is mirrored whole: read it), -ESTALE (the
         * listing names another size), -ENOENT (no log object), or another -errno: fetch it
         * whole. */
        int result;
};

/* Fetches the parts, all their GETs at once (under the store's cap). Returns 0 or -ENOMEM;
 * each part has its own result. */
int s3_mirror_fetch_parts(struct s3_mirror *m, struct s3_part *parts, size_t n);

/* The folder and name of job's part fetched by this command: 0 and *ret_dfd (the caller's to
 * close), name ("<key>.log.gz"), or -ENOENT when none was. Thread-safe. */
int s3_mirror_part_open(const struct s3_mirror *m, const struct scan_job *job, int *ret_dfd,
                        char *name, size_t size);

/* Removes mirrored logs, the least recently used first, until they take at most max_bytes. */
int s3_mirror_trim_logs(struct s3_mirror *m, uint64_t max_bytes);

void s3_mirror_stats(const struct s3_mirror *m, struct s3_mirror_stats *ret);

/*
 * With on, the first s3_mirror_sync() without a key also copies the bucket's search catalog
 * ([<prefix>/].catalog/<writer>/, the sealed files of each archiver) into the mirror's
 * .catalog/<writer>/ and reads it; a day folder whose catalog rows are exactly the records
 * its listing names is then answered from the catalog (its records are not fetched; the
 * scan, given s3_mirror_catalog(), reads its rows). An object store has no folder mtimes:
 * the listing is what says the catalog is whole for a folder.
 */
void s3_mirror_use_catalog(struct s3_mirror *m, bool on);
/* The catalog read, or NULL (none in the bucket, off, or unreadable). Owned by m. */
struct catalog *s3_mirror_catalog(const struct s3_mirror *m);

#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * The archive, in its store (store.h; the local file system by default, store_local.c):
 *
 *   <root>/<guid>/<YYYY>/<MM>/<DD>/<key>.log.gz      gzip of the log exactly as served
 *   <root>/<guid>/<YYYY>/<MM>/<DD>/<key>.error.json  only when the job has an error record
 *   <root>/<guid>/<YYYY>/<MM>/<DD>/<key>.json        the job record, always written last
 *
 * Every file is written as a temporary and published under its final name by the batch
 * commit (archive.c); temporaries are swept at start. On the local store they are
 * ".<final name>.tmp" in the final folder (so renames never cross filesystems), files are
 * 0640 and folders 0750 (before umask), and
 *
 *   <root>/.lock                                     the writer lock (archive_lock)
 *
 * Only the root may be a symlink: every folder below it is opened one component at a time
 * without following symlinks, on every path that writes, removes or answers "archived".
 * This module never logs above debug: it returns -errno and lets the caller report.
 */

/* The lock file in the root. Anything that walks the archive skips it. */
#define ARCHIVE_LOCK_NAME ".lock"

#define ARCHIVE_SHA256_HEX_LEN 64

struct archive;
struct archive_file;
struct archive_batch;
struct store;

/* Where one job lives. guid and key must already be checked as safe path components. */
struct archive_loc {
        const char *guid;
        int year, month, day; /* UTC date of the job's start time */
        const char *key;
};

/*
 * Opens (creating it, and its parents, when missing) the archive root, and starts the
 * threads that compress the logs: ARCHIVE_THREADS_AUTO for one per CPU this process may use
 * (none on one CPU, at most 4), 0 to compress on the caller's thread (see gzpool.h). Every
 * file must be committed or aborted before archive_free().
 */
#define ARCHIVE_THREADS_AUTO (-1)
int archive_open(const char *dir, int compression_level, int threads, struct archive **ret);
/* The same on a store of any kind (store.h), which the archive takes over (freed on failure
 * too). archive_open() is this with store_local_open(dir). */
int archive_open_store(struct store *s, int compression_level, int threads, struct archive **ret);
/*
 * Keeps the search catalog (catalog.h) in <dir>/.catalog as jobs are committed: trigrams are
 * collected as logs are written, and each batch's rows and folder states appended once the
 * batch is durable. dir is the archive's local folder; only under the writer lock. seal_jobs
 * 0 for the default. Errors of the catalog never fail a job: its folders are then read from
 * their records. Returns 0 or -errno.
 */
int archive_catalog_enable(struct archive *a, const char *dir, unsigned seal_jobs);
/* Releases the lock too (if taken). */
void archive_free(struct archive *a);
/* The archive's store, borrowed. */
struct store *archive_store(const struct archive *a);

/*
 * One writer per archive: takes an exclusive flock() on <root>/.lock (created 0640 when
 * missing, never through a symlink) and writes our PID into it. Held until archive_free();
 * the kernel drops it when the process dies, however it dies. Returns 0 (also when already
 * held by a), -EBUSY when another open of the archive holds it (*reterr_pid is then the
 * holder's PID as it wrote it, or 0 when unknown), or -errno (ELOOP: the lock file is a
 * symlink; EACCES, EROFS, ...). Readers take no lock. Meaningful on local filesystems only.
 */
int archive_lock(struct archive *a, pid_t *reterr_pid);
/* An unlinked scratch file (O_TMPFILE) in the archive's root: a fd, or -errno. */
int archive_tmpfile(const struct archive *a);
/* Bytes free to an unprivileged writer on the archive's filesystem (statvfs f_bavail). */
int archive_free_space(const struct archive *a, uint64_t *ret_bytes);
unsigned archive_threads(const struct archive *a);

/*
 * Logs are finished asynchronously (archive_file_finish): the fd below becomes readable when
 * finished logs are waiting, and archive_dispatch() then calls their done callbacks on the
 * caller's thread. archive_wait() waits for all compression in flight and dispatches.
 * archive_pending() counts the finishes whose done has not been called yet.
 */
int archive_event_fd(const struct archive *a);
size_t archive_dispatch(struct archive *a);
size_t archive_wait(struct archive *a);
size_t archive_pending(const struct archive *a);

/*
 * Removes every ".*.tmp" regular file under the root, without following symlinks.
 * *ret_removed counts them. Only under the lock (-ENOLCK otherwise): the temporaries of a
 * live writer must never be taken from under it.
 */
int archive_sweep_temporaries(struct archive *a, unsigned *ret_removed);

/*
 * Retention: removes whole day folders dated before year-month-day (UTC), oldest first, and
 * the month and year folders left empty. *ret_removed counts the day folders removed.
 */
int archive_prune(struct archive *a, int year, int month, int day, unsigned *ret_removed);

/*
 * True when <key>.json exists as a regular file, reached from the root through real folders
 * (no symlink on the way): the job is archived and must never be fetched again.
 */
bool archive_job_is_archived(struct archive *a, const struct archive_loc *loc);
/* Finds key's record under any date of guid (a walk of its day folders): 1 and *ret (which
 * points into guid and key) when found, 0 when not, -errno when the walk failed. */
int archive_find_job(struct archive *a, const char *guid, const char *key, struct archive_loc *ret);

/*
 * After -ELOOP for loc: the first symlink on the way to loc's day folder, as a path
 * relative to the root ("<guid>/2024"), for the message. Returns 0, or -ENOENT when there
 * is none (any more).
 */
int archive_loc_symlink(const struct archive *a, const struct archive_loc *loc, char *buf,
                        size_t size);

/*
 * A log being streamed: bytes go through SHA-256 and into 256 KiB blocked gzip members
 * (gzblock.h, deterministic headers) in ".<key>.log.gz.tmp", compressed on the compression
 * threads, with bounded buffers, so memory does not grow with the log.
 */
int archive_file_open(struct archive *a, const struct archive_loc *loc, struct archive_file **ret);
/* Returns 0, or the first error: -errno of a write (ENOSPC, EFBIG, EIO, ...) or -EIO from
 * libdeflate or OpenSSL, possibly some bytes after the write that met it. */
int archive_file_write(struct archive_file *f, const void *buf, size_t len);

struct archive_log_info {
        uint64_t bytes_in;                       /* the log's size */
        uint64_t bytes_out;                      /* the .log.gz's size */
        char sha256[ARCHIVE_SHA256_HEX_LEN + 1]; /* hex SHA-256 of the log */
};
/* r is 0 (info filled) or the file's first error as -errno (info NULL). */
typedef void archive_finish_fn(void *userdata, int r, const struct archive_log_info *info);
/*
 * No more bytes: the last member is written and the fd closed on a compression thread (the
 * data is made durable later, by the batch); done is then called from archive_dispatch().
 * On failure the file is left for archive_file_abort(). Returns -EINVAL when called twice, or
 * the file's error when it already has one; done is then never called.
 */
int archive_file_finish(struct archive_file *f, archive_finish_fn *done, void *userdata);
/* Removes the temporary and frees f, at any time before it is handed to a batch (a pending
 * done is then never called). NULL is a no-op. */
void archive_file_abort(struct archive_file *f);

/*
 * A batch of finished jobs whose files are made durable and renamed together, so that many
 * small jobs cost a handful of syncs instead of three fsyncs each. See archive.c for why the
 * order is crash-safe.
 */
typedef void archive_commit_fn(void *userdata, int r);

struct archive_batch *archive_batch_new(struct archive *a);
/*
 * Queues one job. Takes ownership of log (finished; NULL when the job has no log file).
 * error_json (NULL for none) and record_json are copied. done is called from
 * archive_batch_commit() with 0 once the record is in place, or -errno when this job could
 * not be archived (its temporaries are then gone and nothing of it is under a final name;
 * files it did not create itself are never replaced or removed: -EEXIST). -EALREADY: another
 * writer's record appeared first (two archivers on one store: an S3 HA pair), so the job is
 * archived, by the other one; its files are left to that record.
 */
int archive_batch_add(struct archive_batch *b, const struct archive_loc *loc,
                      struct archive_file *log, const char *error_json, const char *record_json,
                      archive_commit_fn *done, void *userdata);
size_t archive_batch_size(const struct archive_batch *b);
/* Commits every queued job (calling each done) and empties the batch. Returns the count
 * committed, or -errno when none could be. */
int archive_batch_commit(struct archive_batch *b);
/* Frees the batch; jobs still queued are aborted (done called with -ECANCELED). */
void archive_batch_free(struct archive_batch *b);

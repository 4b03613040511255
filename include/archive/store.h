#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * Where the archive's bytes live: a small table of operations, so that the batch commit,
 * retention, the sweep and the lookups (archive.c, retention.c, lookup.c) are written once
 * and the local file system (store_local.c) is one implementation among others (an S3
 * object store next). The archive speaks to it only in the layout's own terms: folders are
 * plain relative paths ("guid/YYYY/MM/DD": components separated by single '/', none empty,
 * "." or ".."; "" is the root), names are final names ("<key>.json"). How a store names a
 * temporary, what a folder is (an fd, a key prefix) and how durability is reached are its
 * own business, as long as it keeps the promises below.
 *
 * Every operation returns 0 (or a count, or 1/0 for a question) or -errno, and never logs
 * above debug. A store is used from one thread (the archive's owner), except that the fd of
 * a temporary may be written and closed on any thread.
 *
 * The promises the crash-safety argument rests on (archive.c, above archive_batch_commit):
 *
 *   P1 Temporaries are invisible. A temporary is never seen under a final name, nor by has()
 *      or list(); only publish() makes a final name from it.
 *   P2 publish() is atomic: after it (and after a crash at any moment during it) the final
 *      name is either as it was or names all the bytes the temporary held when publish()
 *      began. Without STORE_REPLACE it never replaces: a name that exists fails with
 *      -EEXIST and is left untouched, also against another writer publishing the same name
 *      at the same time (exactly one of them wins).
 *   P3 sync() is the durability barrier: once it returns 0 for a folder, every temporary
 *      written (and its fd closed) in that folder before the call, and every publish() and
 *      remove() done there before the call, survives a crash or power loss. A store whose
 *      operations are durable when they return (an object store: a PUT is stored when it
 *      answers 200) makes sync() a no-op. Before sync(), a crash may lose any of them, but
 *      never breaks P2: a published name never names data that was not made durable by a
 *      sync() before the publish (the archive always syncs a temporary before publishing it).
 *   P4 Nothing escapes the root: a folder is reached beneath the root only, never through a
 *      symlink (-ELOOP) or anything else that is not a folder (-ENOTDIR).
 *   P5 remove() and tmp_remove() delete only the name given; sweep() deletes only
 *      temporaries, never a final name.
 */

struct store;
struct store_dir; /* a folder beneath the root, held open while the archive writes in it */

enum {
        STORE_CREATE = 1 << 0, /* dir_open: make missing folders (0750) */
};

enum {
        STORE_REPLACE = 1 << 0, /* publish: replace an existing final name (atomically) */
};

enum {
        STORE_REMOVE_FILES = 1 << 0, /* remove_dir: its files first (never its subfolders) */
};

struct store_ops {
        const char *kind; /* "local", ... for messages and tests */
        /*
         * Writers on other machines may use the same store at once (an object store: its lock
         * is only local), so a name published without replacing may at once be another
         * writer's too. The archive then takes a record that exists already as the job
         * archived by that writer, and leaves the job's other files to it.
         */
        bool shared;
        void (*free)(struct store *s);

        /*
         * One writer per archive: an exclusive lock held until free(), dropped by whatever
         * ends the process. 0 (also when already held), -EBUSY when another holds it
         * (*reterr_pid: its PID when known, else 0), or -errno. locked(): whether we hold it.
         */
        int (*lock)(struct store *s, pid_t *reterr_pid);
        bool (*locked)(const struct store *s);
        /* Removes every temporary (P5) left by writers that died; only called under the lock.
         * *ret_removed counts them. Goes on after an error and returns the first one. */
        int (*sweep)(struct store *s, unsigned *ret_removed);

        /* The folder path beneath the root (P4), created with STORE_CREATE. -ENOENT when
         * missing, -EINVAL for a malformed path. */
        int (*dir_open)(struct store *s, const char *path, unsigned flags, struct store_dir **ret);
        void (*dir_close)(struct store_dir *d);

        /*
         * The temporary of final name `name` in d, created exclusively (-EEXIST when it
         * exists: a second writer, or a leftover not yet swept) and invisible (P1). *ret_fd
         * is an ordinary writable fd (the file itself, or a staged local file the store
         * uploads at publish), the caller's to write and close; errors of its writes may
         * show at close() or at the next sync().
         */
        int (*tmp_create)(struct store_dir *d, const char *name, int *ret_fd);
        /* Removes name's temporary (its fd closed), if it is still there. */
        int (*tmp_remove)(struct store_dir *d, const char *name);
        /* name's temporary (fd closed, made durable by a sync()) becomes the final name
         * (P2); the temporary is gone afterwards. */
        int (*publish)(struct store_dir *d, const char *name, unsigned flags);
        /*
         * Optional: publish() of names[i] in dirs[i] for every i, all with flags, in any order
         * or at once; results[i] gets each one's outcome as publish() would have given it.
         * A store whose operations are requests that can overlap (an object store) has it;
         * store_publish_many() calls publish() in turn for the others. Returns 0 when all
         * succeeded, else the first error.
         */
        int (*publish_many)(struct store *s, struct store_dir *const *dirs,
                            const char *const *names, size_t n, unsigned flags, int *results);
        /*
         * Makes the folders' temporaries, publishes and removes durable (P3). results[i]
         * gets dirs[i]'s outcome (folders on one file system or device share it). Returns 0
         * when all succeeded, else the first error.
         */
        int (*sync)(struct store *s, struct store_dir *const *dirs, size_t n, int *results);
        /* Removes a final name (P5). -ENOENT when it is not there. */
        int (*remove)(struct store_dir *d, const char *name);

        /* Whether `name` in the folder path exists as a complete final file, reached as P4
         * says: 1, 0 (also when anything on the way is not a plain folder), or -errno. For
         * every job of every poll, so it should be cheap (a cache of the last folder). */
        int (*has)(struct store *s, const char *path, const char *name);
        /* The names of the subfolders of path ("" the root) that may be folders, sorted
         * bytewise, malloc'd (free with store_names_free). */
        int (*list_dirs)(struct store *s, const char *path, char ***ret, size_t *ret_n);
        /* The final names (never a temporary: P1) of the files in the folder path, sorted
         * bytewise, malloc'd (free with store_names_free). -ENOENT when it is missing. */
        int (*list_files)(struct store *s, const char *path, char ***ret, size_t *ret_n);
        /* Removes the folder path: with STORE_REMOVE_FILES its files first; else only when
         * empty (-ENOTEMPTY). A store without real folders answers 0. */
        int (*remove_dir)(struct store *s, const char *path, unsigned flags);

        /* For the message after -ELOOP: the first symlink on the way to path, relative to the
         * root. -ENOENT when there is none (or the store has no symlinks: may be NULL). */
        int (*find_symlink)(struct store *s, const char *path, char *buf, size_t size);

        /* Local state the daemon needs whatever the store: an unlinked scratch file (for
         * the job-list spool), and the free bytes where temporaries are written (the disk
         * guard). */
        int (*scratch_fd)(struct store *s);
        int (*free_space)(struct store *s, uint64_t *ret_bytes);
};

/* Every store begins with this; store_dir likewise (an implementation embeds both). */
struct store {
        const struct store_ops *ops;
};

struct store_dir {
        struct store *store;
};

/*
 * The local file system under dir (absolute or relative; created with its parents when
 * missing; may itself be a symlink, nothing below it may). Temporaries are ".<name>.tmp"
 * beside their final name; the lock is <dir>/.lock. -errno of mkdir/open, or EROFS/EACCES
 * when the root is not writable.
 */
int store_local_open(const char *dir, struct store **ret);
/* For a store that stages its temporaries in a local store (store_s3.c): name's temporary in
 * d (a local store's folder) opened read-only, or -errno. */
int store_local_tmp_open(struct store_dir *d, const char *name);

/*
 * An S3-compatible object store (store_s3.c): objects "[<prefix>/]<path>/<name>" in bucket,
 * temporaries staged as files of a local store under staging_dir (which also holds the lock,
 * the scratch files and the free-space answer). Opening asks the bucket once (one
 * ListObjectsV2 of a single key), so that wrong credentials or a missing bucket are said at
 * start: -EKEYREJECTED (403: InvalidAccessKeyId, SignatureDoesNotMatch, AccessDenied),
 * -ENOMEDIUM (404 NoSuchBucket), -EIO (unreachable after the retries), or the local store's
 * -errno; errbuf then says what S3 answered (never a secret). staging_dir NULL opens a reader
 * (connect-jobs; s3_read.h): nothing local, and what would write answers -EROFS.
 */
struct store_s3_options {
        const char *endpoint; /* "http(s)://host[:port]" */
        const char *bucket;
        const char *prefix; /* NULL or "a/b" */
        const char *region;
        const char *access_key_id;
        const char *secret_access_key;
        const char *staging_dir;
        unsigned timeout_seconds;
        unsigned max_concurrent;
        uint64_t multipart_threshold; /* a larger staged file goes up in parts; 0: 64 MiB */
        uint64_t part_size;           /* >= 5 MiB; 0: 16 MiB */
        /* sweep() aborts multipart uploads started longer ago than this; 0: an hour. */
        unsigned abandoned_upload_seconds;
        bool verbose;
};
int store_s3_open(const struct store_s3_options *o, struct store **ret, char *errbuf,
                  size_t errsize);
/* The options a config's archive.s3 gives (its server timeout and request cap too); the
 * test knobs and verbose stay 0. The strings are borrowed from c. */
struct config;
void store_s3_options_from_config(const struct config *c, struct store_s3_options *ret);

/* Counters of an S3 store's requests since it was opened, by kind (for tests and logs). */
struct store_s3_counts {
        uint64_t put, put_conflict, head, get, list, delete_, post, retried;
};
void store_s3_counts(const struct store *s, struct store_s3_counts *ret);

void store_names_free(char **names, size_t n);

/* Writes a whole small temporary (name's, in d) from data; on failure nothing of it is left. */
int store_put_tmp(struct store_dir *d, const char *name, const void *data, size_t len);

static inline void store_free(struct store *s)
{
        if (s)
                s->ops->free(s);
}

static inline int store_lock(struct store *s, pid_t *reterr_pid)
{
        return s->ops->lock(s, reterr_pid);
}

static inline bool store_locked(const struct store *s)
{
        return s->ops->locked(s);
}

static inline int store_sweep(struct store *s, unsigned *ret_removed)
{
        return s->ops->sweep(s, ret_removed);
}

static inline int store_dir_open(struct store *s, const char *path, unsigned flags,
                                 struct store_dir **ret)
{
        return s->ops->dir_open(s, path, flags, ret);
}

static inline void store_dir_close(struct store_dir *d)
{
        if (d)
                d->store->ops->dir_close(d);
}

static inline int store_tmp_create(struct store_dir *d, const char *name, int *ret_fd)
{
        return d->store->ops->tmp_create(d, name, ret_fd);
}

static inline int store_tmp_remove(struct store_dir *d, const char *name)
{
        return d->store->ops->tmp_remove(d, name);
}

static inline int store_publish(struct store_dir *d, const char *name, unsigned flags)
{
        return d->store->ops->publish(d, name, flags);
}

static inline int store_publish_many(struct store *s, struct store_dir *const *dirs,
                                     const char *const *names, size_t n, unsigned flags,
                                     int *results)
{
        int r = 0;

        if (s->ops->publish_many)
                return s->ops->publish_many(s, dirs, names, n, flags, results);
        for (size_t i = 0; i < n; i++) {
                results[i] = store_publish(dirs[i], names[i], flags);
                if (r == 0 && results[i] < 0)
                        r = results[i];
        }
        return r;
}

static inline int store_sync(struct store *s, struct store_dir *const *dirs, size_t n, int *results)
{
        return s->ops->sync(s, dirs, n, results);
}

static inline int store_remove(struct store_dir *d, const char *name)
{
        return d->store->ops->remove(d, name);
}

static inline int store_has(struct store *s, const char *path, const char *name)
{
        return s->ops->has(s, path, name);
}

static inline int store_list_dirs(struct store *s, const char *path, char ***ret, size_t *ret_n)
{
        return s->ops->list_dirs(s, path, ret, ret_n);
}

static inline int store_list_files(struct store *s, const char *path, char ***ret, size_t *ret_n)
{
        return s->ops->list_files(s, path, ret, ret_n);
}

static inline int store_remove_dir(struct store *s, const char *path, unsigned flags)
{
        return s->ops->remove_dir(s, path, flags);
}

static inline int store_find_symlink(struct store *s, const char *path, char *buf, size_t size)
{
        return s->ops->find_symlink ? s->ops->find_symlink(s, path, buf, size) : -ENOENT;
}

static inline int store_scratch_fd(struct store *s)
{
        return s->ops->scratch_fd(s);
}

static inline int store_free_space(struct store *s, uint64_t *ret_bytes)
{
        return s->ops->free_space(s, ret_bytes);
}

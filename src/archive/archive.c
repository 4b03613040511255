/*
 * The archive: its store and its compression pool, and the batch commit that makes finished
 * jobs durable and visible together (archive.h). Everything it does on storage goes through
 * store.h; the order of those operations is what makes it crash-safe (above
 * archive_batch_commit).
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "archive_internal.h"
#include "gzpool.h"
#include "macro.h"

/* One queued job. loc points at the entry's own copies of the GUID and key. */
struct batch_entry {
        struct archive_loc loc;
        char *guid;
        char *key;
        struct archive_file *log;
        char *error_json;
        char *record_json;
        archive_commit_fn *done;
        void *userdata;
        int r;      /* 0 while the entry is on track, -errno once it failed */
        size_t dir; /* its day folder: an index into the batch's dirs */
        /* What exists in the store for this entry, so that a failure can undo exactly that:
         * only names this entry created itself (see archive_batch_commit). */
        bool error_tmp, record_tmp;
        bool log_final, error_final, record_final;
        /* Another writer's record won the publish: the job is archived, by it (-EALREADY). */
        bool elsewhere;
};

/* A day folder of a batch, opened once through the store (beneath the root, never through a
 * symlink); every file of its entries is written, published and removed in it. */
struct batch_dir {
        char *path; /* "guid/YYYY/MM/DD" */
        struct store_dir *dir;
};

struct archive_batch {
        struct archive *archive;
        struct batch_entry *entries;
        size_t n_entries, n_allocated;
        struct batch_dir *dirs;
        size_t n_dirs, n_dirs_allocated;
};

static bool loc_equal(const struct archive_loc *x, const struct archive_loc *y)
{
        return x->year == y->year && x->month == y->month && x->day == y->day &&
               strcmp(x->guid, y->guid) == 0 && strcmp(x->key, y->key) == 0;
}

int archive_open(const char *dir, int compression_level, int threads, struct archive **ret)
{
        struct store *s;
        int r;

        if (!dir || !*dir || !ret || compression_level < 1 || compression_level > 9)
                return -EINVAL;
        r = store_local_open(dir, &s);
        if (r < 0)
                return r;
        return archive_open_store(s, compression_level, threads, ret);
}

int archive_open_store(struct store *s, int compression_level, int threads, struct archive **ret)
{
        struct archive *a;
        int r;

        if (!s || !ret || compression_level < 1 || compression_level > 9) {
                store_free(s);
                return -EINVAL;
        }
        a = calloc(1, sizeof(*a));
        if (!a) {
                store_free(s);
                return -ENOMEM;
        }
        r = gzpool_new(compression_level, threads, &a->gz);
        if (r < 0) {
                store_free(s);
                free(a);
                return r;
        }
        a->store = s;
        *ret = a;
        return 0;
}

void archive_free(struct archive *a)
{
        if (!a)
                return;
        archive_catalog_close(a);
        gzpool_free(a->gz);
        store_free(a->store);
        free(a);
}

struct store *archive_store(const struct archive *a)
{
        return a ? a->store : NULL;
}

int archive_lock(struct archive *a, pid_t *reterr_pid)
{
        if (!a)
                return -EINVAL;
        return store_lock(a->store, reterr_pid);
}

/*
 * Only for start-up, and only under the lock: it would also remove the temporaries of files
 * being written, by this process or by any other writer. The lock makes sure there is no
 * other; what it finds are leftovers of writers that died.
 */
int archive_sweep_temporaries(struct archive *a, unsigned *ret_removed)
{
        unsigned removed = 0;
        int r;

        if (!a)
                return -EINVAL;
        if (!store_locked(a->store))
                return -ENOLCK;
        r = store_sweep(a->store, &removed);
        if (r < 0)
                return r;
        if (ret_removed)
                *ret_removed = removed;
        return 0;
}

int archive_tmpfile(const struct archive *a)
{
        if (!a)
                return -EBADF;
        return store_scratch_fd(a->store);
}

int archive_free_space(const struct archive *a, uint64_t *ret_bytes)
{
        return store_free_space(a->store, ret_bytes);
}

unsigned archive_threads(const struct archive *a)
{
        return a ? gzpool_threads(a->gz) : 0;
}

int archive_event_fd(const struct archive *a)
{
        return a ? gzpool_fd(a->gz) : -EBADF;
}

size_t archive_dispatch(struct archive *a)
{
        return gzpool_dispatch(a->gz);
}

size_t archive_wait(struct archive *a)
{
        return gzpool_wait(a->gz);
}

size_t archive_pending(const struct archive *a)
{
        return gzpool_pending(a->gz);
}

struct archive_batch *archive_batch_new(struct archive *a)
{
        struct archive_batch *b;

        if (!a)
                return NULL;
        b = calloc(1, sizeof(*b));
        if (!b)
                return NULL;
        b->archive = a;
        return b;
}

static void entry_free(struct batch_entry *e)
{
        archive_file_abort(e->log);
        e->log = NULL;
        free(e->guid);
        free(e->key);
        free(e->error_json);
        free(e->record_json);
}

static void dirs_free(struct batch_dir *dirs, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                store_dir_close(dirs[i].dir);
                free(dirs[i].path);
        }
        free(dirs);
}

/* The batch's index of loc's day folder: opened (and created) through the store the first
 * time a job of the batch lives there. */
static int batch_dir_get(struct archive_batch *b, const struct archive_loc *loc, size_t *ret)
{
        char path[REL_PATH_MAX];
        struct batch_dir d;
        int r;

        r = format_dir(path, sizeof(path), loc);
        if (r < 0)
                return r;
        for (size_t i = 0; i < b->n_dirs; i++)
                if (strcmp(b->dirs[i].path, path) == 0) {
                        *ret = i;
                        return 0;
                }
        if (b->n_dirs == b->n_dirs_allocated) {
                size_t n = b->n_dirs_allocated ? 2 * b->n_dirs_allocated : 8;
                struct batch_dir *dirs = reallocarray(b->dirs, n, sizeof(*dirs));
                if (!dirs)
                        return -ENOMEM;
                b->dirs = dirs;
                b->n_dirs_allocated = n;
        }
        r = store_dir_open(b->archive->store, path, STORE_CREATE, &d.dir);
        if (r < 0)
                return r;
        d.path = strdup(path);
        if (!d.path) {
                store_dir_close(d.dir);
                return -ENOMEM;
        }
        b->dirs[b->n_dirs] = d;
        *ret = b->n_dirs++;
        return 0;
}

/*
 * Takes ownership of log even when it fails (the log is then aborted), and done is called only
 * when it succeeds. Returns -EINVAL for an unsafe location, a missing record or a log that is
 * unfinished or another job's, -EEXIST when the job is already archived or already queued,
 * -ELOOP when a folder on the way is a symlink, or the errno of creating its folder.
 */
int archive_batch_add(struct archive_batch *b, const struct archive_loc *loc,
                      struct archive_file *log, const char *error_json, const char *record_json,
                      archive_commit_fn *done, void *userdata)
{
        struct batch_entry e = {0};
        char dir[REL_PATH_MAX], name[REL_PATH_MAX];
        int r;

        /* The log is ours from here on, whatever happens: on failure it is aborted. */
        e.log = log;
        if (!b || !record_json || !loc_is_valid(loc)) {
                r = -EINVAL;
                goto fail;
        }
        if (log) {
                /* The file must be finished and belong to this job, or we would publish the
                 * wrong temporary (or a half-written one). */
                r = format_dir(dir, sizeof(dir), loc);
                if (r < 0)
                        goto fail;
                r = format_name(name, sizeof(name), loc, ARCHIVE_KIND_LOG);
                if (r < 0)
                        goto fail;
                if (!log->finished || log->archive != b->archive || strcmp(dir, log->dir) != 0 ||
                    strcmp(name, log->name) != 0) {
                        r = -EINVAL;
                        goto fail;
                }
        }
        /* A job is written once: never replace the files of an archived job, and never let two
         * entries of one batch share temporaries. */
        for (size_t i = 0; i < b->n_entries; i++)
                if (loc_equal(&b->entries[i].loc, loc)) {
                        r = -EEXIST;
                        goto fail;
                }
        if (archive_job_is_archived(b->archive, loc)) {
                r = -EEXIST;
                goto fail;
        }
        /* A job without a log has not created its folder yet. */
        r = batch_dir_get(b, loc, &e.dir);
        if (r < 0)
                goto fail;

        if (b->n_entries == b->n_allocated) {
                size_t n = b->n_allocated ? 2 * b->n_allocated : 16;
                struct batch_entry *entries = reallocarray(b->entries, n, sizeof(*entries));
                if (!entries) {
                        r = -ENOMEM;
                        goto fail;
                }
                b->entries = entries;
                b->n_allocated = n;
        }
        e.guid = strdup(loc->guid);
        e.key = strdup(loc->key);
        e.record_json = strdup(record_json);
        e.error_json = error_json ? strdup(error_json) : NULL;
        if (!e.guid || !e.key || !e.record_json || (error_json && !e.error_json)) {
                r = -ENOMEM;
                goto fail;
        }
        e.loc = *loc;
        e.loc.guid = e.guid;
        e.loc.key = e.key;
        e.done = done;
        e.userdata = userdata;
        b->entries[b->n_entries++] = e;
        return 0;
fail:
        entry_free(&e);
        return r;
}

size_t archive_batch_size(const struct archive_batch *b)
{
        return b ? b->n_entries : 0;
}

static int entry_write(struct archive_batch *b, struct batch_entry *e, enum archive_kind kind,
                       const char *data)
{
        char name[REL_PATH_MAX];
        int r;

        /* Exclusive (a temporary of the same name, which only another writer could have
         * made, is refused with EEXIST and left alone); on failure nothing of it is left. */
        r = format_name(name, sizeof(name), &e->loc, kind);
        if (r < 0)
                return r;
        return store_put_tmp(b->dirs[e->dir].dir, name, data, strlen(data));
}

/* What a publish of e's file of that kind answered, after the cases EEXIST asks for. */
static int entry_published(struct archive_batch *b, struct batch_entry *e, enum archive_kind kind,
                           const char *name, int r)
{
        /* A store shared with another writer: its record may be there by now, and then the
         * job is its; nothing of ours is published over its files. */
        if (r == -EEXIST && kind != ARCHIVE_KIND_RECORD && b->archive->store->ops->shared &&
            archive_job_is_archived(b->archive, &e->loc))
                return -EALREADY;
        /* A log or error file without its record (checked at archive_batch_add) is what a
         * writer killed between steps c and f left. Under the lock that writer is dead, so
         * the file is nobody's: replace it, atomically, and it is ours from then on. Without
         * the lock it may be a live writer's, about to get its record: leave it (EEXIST). */
        if (r == -EEXIST && kind != ARCHIVE_KIND_RECORD && store_locked(b->archive->store))
                r = store_publish(b->dirs[e->dir].dir, name, STORE_REPLACE);
        if (r == -EEXIST && kind == ARCHIVE_KIND_RECORD && b->archive->store->ops->shared) {
                /* Checked absent at archive_batch_add, so another writer made it since: the
                 * job is archived; never replace a record. */
                r = -EALREADY;
        }
        return r;
}

/*
 * Steps c (logs and error records) and f (records): every file of that step of the entries
 * still on track is published without replacing, all at once where the store can
 * (store_publish_many), and each entry marks what it now has under a final name.
 */
static void batch_publish(struct archive_batch *b, struct batch_entry *entries, size_t n,
                          bool records)
{
        size_t cap = records ? n : 2 * n, m = 0;
        _cleanup_free_ struct store_dir **dirs = calloc(cap ? cap : 1, sizeof(*dirs));
        _cleanup_free_ char **names = calloc(cap ? cap : 1, sizeof(*names));
        _cleanup_free_ size_t *who = calloc(cap ? cap : 1, sizeof(*who));
        _cleanup_free_ enum archive_kind *kinds = calloc(cap ? cap : 1, sizeof(*kinds));
        _cleanup_free_ int *results = calloc(cap ? cap : 1, sizeof(*results));
        char name[REL_PATH_MAX];

        if (!dirs || !names || !who || !kinds || !results) {
                for (size_t i = 0; i < n; i++)
                        keep_first_error(&entries[i].r, -ENOMEM);
                return;
        }
        for (size_t i = 0; i < n; i++) {
                struct batch_entry *e = &entries[i];
                enum archive_kind want[2];
                size_t k = 0;

                if (e->r < 0)
                        continue;
                if (records)
                        want[k++] = ARCHIVE_KIND_RECORD;
                if (!records && e->log)
                        want[k++] = ARCHIVE_KIND_LOG;
                if (!records && e->error_tmp)
                        want[k++] = ARCHIVE_KIND_ERROR;
                for (size_t j = 0; j < k; j++) {
                        int r = format_name(name, sizeof(name), &e->loc, want[j]);
                        if (r >= 0 && !(names[m] = strdup(name)))
                                r = -ENOMEM;
                        if (r < 0) {
                                keep_first_error(&e->r, r);
                                break;
                        }
                        dirs[m] = b->dirs[e->dir].dir;
                        who[m] = i;
                        kinds[m++] = want[j];
                }
        }
        (void) store_publish_many(b->archive->store, dirs, (const char *const *) names, m, 0,
                                  results);
        for (size_t k = 0; k < m; k++) {
                struct batch_entry *e = &entries[who[k]];
                int r = entry_published(b, e, kinds[k], names[k], results[k]);

                free(names[k]);
                if (r < 0) {
                        if (r == -EALREADY)
                                e->elsewhere = true;
                        keep_first_error(&e->r, r);
                        continue;
                }
                switch (kinds[k]) {
                case ARCHIVE_KIND_LOG:
                        e->log->created = false;
                        e->log_final = true;
                        break;
                case ARCHIVE_KIND_ERROR:
                        e->error_tmp = false;
                        e->error_final = true;
                        break;
                case ARCHIVE_KIND_RECORD:
                        e->record_tmp = false;
                        e->record_final = true;
                        break;
                }
        }
}

static void entry_remove(struct archive_batch *b, struct batch_entry *e, enum archive_kind kind,
                         bool tmp)
{
        struct store_dir *d = b->dirs[e->dir].dir;
        char name[REL_PATH_MAX];

        if (format_name(name, sizeof(name), &e->loc, kind) < 0)
                return;
        if (tmp)
                (void) store_tmp_remove(d, name);
        else
                (void) store_remove(d, name);
}

/*
 * Undoes a failed entry: its temporaries go, and so does anything it already published. The
 * record goes first, so the job stops counting as archived before its parts vanish. These
 * removals are not synced: if one is lost in a crash, what remains is a complete file without
 * a record (harmless, replaced by the retry's publish) or a complete record that was durable
 * anyway.
 *
 * Only names this entry created are removed, never one by name alone: each flag is set only
 * after our own exclusive create or our own no-replace publish made that name, and no writer
 * ever replaces a name another made (P2; the one exception, a dead writer's orphan under the
 * lock, makes the name ours). So the name still holds our file when we remove it, and a
 * second writer's final files, which made the failing publish fail with EEXIST, stay.
 */
static void entry_rollback(struct archive_batch *b, struct batch_entry *e)
{
        /* The other writer's record may describe the very log and error objects we published
         * (two writers of one job write the same names): they are its now. */
        if (e->elsewhere)
                e->log_final = e->error_final = false;
        if (e->record_final)
                entry_remove(b, e, ARCHIVE_KIND_RECORD, false);
        if (e->record_tmp)
                entry_remove(b, e, ARCHIVE_KIND_RECORD, true);
        if (e->error_final)
                entry_remove(b, e, ARCHIVE_KIND_ERROR, false);
        if (e->error_tmp)
                entry_remove(b, e, ARCHIVE_KIND_ERROR, true);
        if (e->log_final)
                entry_remove(b, e, ARCHIVE_KIND_LOG, false);
        e->record_final = e->record_tmp = e->error_final = e->error_tmp = e->log_final = false;
        /* Removes the log's temporary if it was never published. */
        archive_file_abort(e->log);
        e->log = NULL;
}

/*
 * The durability barrier (store.h, P3) for the folders of the entries still on track. The
 * store says which folders it could not make durable (folders on one file system share an
 * outcome), and their entries fail.
 */
static void batch_sync(struct archive_batch *b, struct batch_entry *entries, size_t n)
{
        _cleanup_free_ struct store_dir **dirs = NULL;
        _cleanup_free_ int *results = NULL;
        _cleanup_free_ size_t *slot = NULL;
        size_t n_dirs = 0;

        if (b->n_dirs == 0)
                return;
        dirs = calloc(b->n_dirs, sizeof(*dirs));
        results = calloc(b->n_dirs, sizeof(*results));
        slot = calloc(b->n_dirs, sizeof(*slot));
        if (!dirs || !results || !slot) {
                for (size_t i = 0; i < n; i++)
                        keep_first_error(&entries[i].r, -ENOMEM);
                return;
        }
        /* slot[k]: where batch folder k is in dirs, plus one (0: no entry on track there). */
        for (size_t i = 0; i < n; i++) {
                size_t k = entries[i].dir;

                if (entries[i].r < 0 || slot[k] > 0)
                        continue;
                dirs[n_dirs] = b->dirs[k].dir;
                slot[k] = ++n_dirs;
        }
        if (n_dirs == 0)
                return;
        (void) store_sync(b->archive->store, dirs, n_dirs, results);
        for (size_t i = 0; i < n; i++)
                if (entries[i].r == 0)
                        entries[i].r = results[slot[entries[i].dir] - 1];
}

/* The search catalog (catalog_archive.c), after g: rows of the committed jobs, then the state of
 * every folder the batch touched (failed jobs changed it too), appended in one write. */
static void catalog_note(struct archive_batch *b, const struct batch_entry *entries, size_t n)
{
        if (!b->archive->trigrams)
                return;
        for (size_t i = 0; i < n; i++)
                if (entries[i].r == 0)
                        archive_catalog_job(b->archive, &entries[i].loc, entries[i].record_json,
                                            entries[i].log);
        for (size_t k = 0; k < b->n_dirs; k++)
                archive_catalog_folder(b->archive, b->dirs[k].path, false);
        archive_catalog_flush(b->archive);
}

/*
 * Why this order is crash-safe, in terms of the store's promises (store.h, P1-P5).
 *
 * The guarantee: a final name only ever appears through publish() of a temporary whose bytes
 * a completed sync() has already made durable, and a <key>.json only appears after the
 * publishes of its job's .log.gz and .error.json are durable. publish() is atomic (P2): after
 * a crash the final name is either absent or names the complete, synced file.
 *
 *   a. write the .error.json temporaries       (the log's was written while streaming)
 *   b. sync                                    temporaries' data and new folders are durable
 *   c. publish logs and error records
 *   d. write the records' temporaries
 *   e. sync                                    records' data and the publishes of c are durable
 *   f. publish the records (never replacing)   the job now counts as archived
 *   g. sync                                    the publishes of f are durable; only now done(0)
 *
 * kill -9 at any step: every completed operation stays in effect, so the store holds only
 * whole files plus temporaries (P1: invisible to has() and list); the sweep at start removes
 * the latter (P5). A job killed between c and f has its log and error under final names but no
 * record, so it is not archived: it is fetched again and the retry's publishes replace those
 * files atomically (STORE_REPLACE, only under the writer lock; see entry_published).
 *
 * Power loss: before b completes, only temporaries can be damaged. Between b and e, each
 * publish of c is either lost or names durable data. Between e and g, each record's publish is
 * either lost (the job is fetched again) or names a durable record whose log and error
 * publishes were made durable at e, before the record's publish was even issued; so no
 * reordering inside the store can show a record without its files.
 *
 * What a store must do for this, and no more: keep P1-P5. On the local file system
 * (store_local.c) a temporary is ".<name>.tmp" in the final folder, publish is
 * renameat2(RENAME_NOREPLACE) or link+unlink (rename for STORE_REPLACE), and sync is one
 * syncfs per file system, which costs N jobs 3 syncs instead of about 3N fsyncs of files plus
 * fsyncs of folders (and flushes other programs' dirty data on that file system; a writeback
 * error of another program's file fails the batch as well, which only costs a retry). A store
 * whose operations are durable when they return (an object store, where a PUT answered 200
 * is stored, and a create-only-if-absent PUT, If-None-Match: *, is the no-replace publish)
 * makes sync a no-op; the order above still holds because c completes before f starts.
 *
 * Failures: an entry that fails at any step is rolled back (entry_rollback): its temporaries
 * and whatever it already published are removed, so nothing is left under a final name, as
 * archive.h promises. Leaving an already-published .log.gz would also be safe (without a
 * record the job is not archived and a retry replaces the file), but it would leave orphans
 * for operators' find/zgrep. A failed sync at g fails its entries too: their records are
 * complete, but we cannot promise they survive a crash, and removing them only costs a fetch.
 *
 * Other writers: the lock (archive_lock) keeps a second daemon or --once out, and the sweep
 * runs only under it. Should two writers meet anyway (the lock is advisory, and means little
 * on a file system shared by two hosts), no file of one is ever lost to the other:
 * temporaries are created exclusively, final names only appear through no-replace publishes
 * (EEXIST fails the later job, which finds the job archived at its next poll; P2 makes one
 * winner), and a rollback removes only names its own entry made (entry_rollback, P5).
 * Without that, a rollback removing a final name could delete the other writer's .log.gz just
 * before that writer's record made the job count as archived: a record without its log,
 * never fetched again.
 *
 * Folders: every file is created, published and removed in a folder the store opened once
 * per batch (struct batch_dir) beneath the root without following symlinks (P4), so nothing
 * is ever written outside the archive through a planted symlink, and a folder swapped after
 * the open only makes the job fail (ENOENT) and retry.
 */
int archive_batch_commit(struct archive_batch *b)
{
        struct archive_batch this;
        struct batch_entry *entries;
        size_t n;
        int committed = 0, first_error = 0, r;

        if (!b)
                return -EINVAL;
        /* Take the entries and their folders out first, so a done callback may queue jobs for
         * the next commit. */
        this = *b;
        entries = this.entries;
        n = this.n_entries;
        b->entries = NULL;
        b->n_entries = b->n_allocated = 0;
        b->dirs = NULL;
        b->n_dirs = b->n_dirs_allocated = 0;

        /* a. Error records to temporaries. */
        for (size_t i = 0; i < n; i++) {
                struct batch_entry *e = &entries[i];

                if (!e->error_json)
                        continue;
                r = entry_write(&this, e, ARCHIVE_KIND_ERROR, e->error_json);
                if (r < 0)
                        e->r = r;
                else
                        e->error_tmp = true;
        }

        /* b. */
        batch_sync(&this, entries, n);

        /* c. Logs and error records into place. */
        batch_publish(&this, entries, n, false);

        /* d. Job records to temporaries. */
        for (size_t i = 0; i < n; i++) {
                struct batch_entry *e = &entries[i];

                if (e->r < 0)
                        continue;
                r = entry_write(&this, e, ARCHIVE_KIND_RECORD, e->record_json);
                if (r < 0)
                        e->r = r;
                else
                        e->record_tmp = true;
        }

        /* e. */
        batch_sync(&this, entries, n);

        /* f. Job records into place. */
        batch_publish(&this, entries, n, true);

        /* g. */
        batch_sync(&this, entries, n);

        /* The disk is in its final state before any caller hears about it. */
        for (size_t i = 0; i < n; i++) {
                struct batch_entry *e = &entries[i];

                if (e->r < 0) {
                        entry_rollback(&this, e);
                        /* Archived by another writer is not a failure of the batch. */
                        if (e->r != -EALREADY)
                                keep_first_error(&first_error, e->r);
                } else {
                        committed++;
                }
        }
        /* The jobs are durable and the failed ones undone: the catalog learns of them, and of
         * their folders' state. */
        catalog_note(&this, entries, n);
        for (size_t i = 0; i < n; i++)
                if (entries[i].done)
                        entries[i].done(entries[i].userdata, entries[i].r);
        for (size_t i = 0; i < n; i++)
                entry_free(&entries[i]);
        free(entries);
        dirs_free(this.dirs, this.n_dirs);

        return committed > 0 || n == 0 || first_error == 0 ? committed : first_error;
}

void archive_batch_free(struct archive_batch *b)
{
        struct batch_entry *entries;
        size_t n;

        if (!b)
                return;
        entries = b->entries;
        n = b->n_entries;
        b->entries = NULL;
        b->n_entries = b->n_allocated = 0;

        /* Only the logs' temporaries exist before a commit; they go before anyone is told. */
        for (size_t i = 0; i < n; i++) {
                archive_file_abort(entries[i].log);
                entries[i].log = NULL;
        }
        for (size_t i = 0; i < n; i++)
                if (entries[i].done)
                        entries[i].done(entries[i].userdata, -ECANCELED);
        for (size_t i = 0; i < n; i++)
                entry_free(&entries[i]);
        free(entries);
        dirs_free(b->dirs, b->n_dirs);
        free(b);
}

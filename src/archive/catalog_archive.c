/*
 * The archive's hooks into the search catalog: trigrams per block as a log is streamed (on
 * the owner's thread, beside the SHA-256), each committed job's row and its folder's state
 * after the batch's last sync. The catalog is never the truth: any failure here only leaves
 * folders whose state the catalog does not know, which readers then read from their records.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "archive_internal.h"
#include "catalog.h"
#include "catalog_format.h"
#include "gzblock.h"
#include "gzpool.h"
#include "log.h"

/* In a store other than the local folder (an object store), how long a job may wait in the open
 * segment, which only this machine sees, before it is sealed into a file the store gets. */
#define REMOTE_SEAL_SECONDS 600

static int64_t now_seconds(void)
{
        return (int64_t) (now_usec(CLOCK_MONOTONIC) / 1000000);
}

/*
 * This archiver's name for its catalog files in the store, kept in <dir>/.catalog-id (the
 * local state, not the catalog folder, so a rebuilt catalog keeps it): 16 hex digits, made
 * once. Two archivers of an HA pair each have their own, so their files never share a name.
 */
static int catalog_id(int rootfd, char id[static 17])
{
        static const char name[] = ".catalog-id";
        _cleanup_close_ int fd = -1;
        unsigned char raw[8];
        ssize_t n;

        fd = openat(rootfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0) {
                n = read(fd, id, 16);
                if (n == 16 && strspn(id, "0123456789abcdef") >= 16) {
                        id[16] = '\0';
                        return 0;
                }
                fd = safe_close(fd);
        }
        if (getrandom(raw, sizeof(raw), 0) != (ssize_t) sizeof(raw))
                return -EIO;
        for (size_t i = 0; i < sizeof(raw); i++)
                (void) snprintf(id + 2 * i, 3, "%02x", raw[i]);
        char tmp[] = ".catalog-id.tmp";
        fd = openat(rootfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0640);
        if (fd < 0)
                return -errno;
        if (write(fd, id, 16) != 16 || write(fd, "\n", 1) != 1 || fsync(fd) < 0 ||
            renameat(rootfd, tmp, rootfd, name) < 0) {
                int r = errno ? -errno : -EIO;
                (void) unlinkat(rootfd, tmp, 0);
                return r;
        }
        return fsync(rootfd) < 0 ? -errno : 0;
}

int archive_catalog_enable(struct archive *a, const char *dir, unsigned seal_jobs)
{
        int fd, r;

        if (!a || !dir)
                return -EINVAL;
        if (!store_locked(a->store))
                return -ENOLCK;
        if (a->trigrams)
                return 0;
        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        a->cat_seal_jobs = seal_jobs;
        r = catalog_trigrams_new(&a->trigrams);
        /* An archive that has a catalog gets its torn tail cut now; one that has none gets
         * it with its first job, so that a run that archives nothing writes nothing. */
        if (r >= 0 && faccessat(fd, CATALOG_DIR, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
                r = catalog_writer_open(fd, seal_jobs, &a->cat);
        if (r < 0) {
                catalog_trigrams_free(a->trigrams);
                a->trigrams = NULL;
                (void) close(fd);
                return r;
        }
        a->cat_rootfd = fd;
        a->cat_remote = strcmp(a->store->ops->kind, "local") != 0;
        if (a->cat_remote) {
                const char *e = getenv("CJA_CATALOG_SEAL_SECONDS");

                r = catalog_id(fd, a->cat_id);
                if (r < 0) {
                        archive_catalog_close(a);
                        return r;
                }
                a->cat_seal_seconds = e ? (unsigned) strtoul(e, NULL, 10) : REMOTE_SEAL_SECONDS;
                a->cat_open_since = -1;
        }
        return 0;
}

/* The writer, opened when first needed. */
static struct catalog_writer *writer(struct archive *a)
{
        int r;

        if (!a->cat && a->trigrams) {
                r = catalog_writer_open(a->cat_rootfd, a->cat_seal_jobs, &a->cat);
                if (r < 0)
                        log_printf(LOG_DEBUG, "catalog: cannot open: %s", strerror(-r));
        }
        return a->cat;
}

static int remote_publish(struct archive *a);

void archive_catalog_close(struct archive *a)
{
        if (!a->trigrams)
                return;
        if (a->cat)
                (void) catalog_writer_flush(a->cat);
        /* In a store, what only the open segment holds is sealed and copied now: a run
         * (--once from a timer, a stop) leaves every job it archived in the store's catalog. */
        if (a->cat && a->cat_remote && catalog_writer_open_jobs(a->cat) > 0 &&
            catalog_writer_seal(a->cat) >= 0 && remote_publish(a) < 0)
                log_printf(LOG_WARNING, "cannot copy the search catalog to the store; "
                                        "connect-jobs reads the records of the jobs it lacks");
        catalog_writer_free(a->cat);
        catalog_trigrams_free(a->trigrams);
        (void) close(a->cat_rootfd);
        store_names_free(a->cat_remote_names, a->cat_remote_n);
        a->cat_remote_names = NULL;
        a->cat_remote_n = 0;
        a->cat_remote_listed = false;
        a->cat = NULL;
        a->trigrams = NULL;
}

static void on_block(void *userdata, const void *data, size_t len)
{
        struct archive_file *f = userdata;

        if (catalog_trigrams_member(f->archive->trigrams, data, len, &f->tri) < 0) {
                /* Out of memory: the job is simply not indexed (always searched). */
                catalog_tri_done(&f->tri);
                f->tri.overflow = true;
        }
}

void archive_catalog_file_open(struct archive_file *f)
{
        if (f->archive->trigrams)
                gzjob_on_block(f->job, on_block, f);
}

void archive_catalog_file_finished(struct archive_file *f, const uint32_t *member_sizes, size_t n,
                                   uint64_t bytes_in)
{
        uint64_t off = 0;

        if (!f->archive->trigrams || !member_sizes || n == 0)
                return;
        if (catalog_tri_finish(&f->tri) < 0) {
                catalog_tri_done(&f->tri);
                f->tri.overflow = true; /* not indexed: always searched */
        }
        f->members = calloc(n, sizeof(*f->members));
        if (!f->members)
                return;
        for (size_t i = 0; i < n; i++) {
                uint64_t left = bytes_in - (uint64_t) i * GZBLOCK_SIZE;

                f->members[i].offset = off;
                f->members[i].size = member_sizes[i];
                f->members[i].usize = (uint32_t) (left < GZBLOCK_SIZE ? left : GZBLOCK_SIZE);
                off += member_sizes[i];
        }
        f->n_members = (uint32_t) n;
}

void archive_catalog_file_free(struct archive_file *f)
{
        catalog_tri_done(&f->tri);
        free(f->members);
        f->members = NULL;
}

void archive_catalog_job(struct archive *a, const struct archive_loc *loc, const char *record_json,
                         const struct archive_file *log)
{
        char folder[REL_PATH_MAX];
        struct catalog_row row;
        char *strings = NULL;

        if (!writer(a) || format_dir(folder, sizeof(folder), loc) < 0)
                return;
        if (catalog_row_from_record(folder, loc->key, loc->year, loc->month, loc->day, record_json,
                                    strlen(record_json), &row, &strings) < 0)
                return;
        if (log && log->members) {
                row.n_members = log->n_members;
                row.members = log->members;
        }
        (void) catalog_writer_add(a->cat, &row, log && log->members ? &log->tri : NULL);
        free(strings);
}

void archive_catalog_folder(struct archive *a, const char *path, bool removed)
{
        int r;

        /* A folder's state is its mtime on the local file system; an object store has none (its
         * readers compare the rows with a listing instead), so only removals are recorded. */
        if (!writer(a) || (a->cat_remote && !removed))
                return;
        r = removed ? catalog_writer_folder_removed(a->cat, path)
                    : catalog_writer_folder(a->cat, path);
        if (r < 0)
                log_printf(LOG_DEBUG, "catalog: cannot record the state of %s: %s", path,
                           strerror(-r));
}

/* ---- the catalog in an object store ---------------------------------------------------- */

static bool remote_has(const struct archive *a, const char *name)
{
        for (size_t i = 0; i < a->cat_remote_n; i++)
                if (strcmp(a->cat_remote_names[i], name) == 0)
                        return true;
        return false;
}

static bool local_has(const struct cat_file_ref *refs, size_t n, const char *name)
{
        for (size_t i = 0; i < n; i++)
                if (strcmp(refs[i].name, name) == 0)
                        return true;
        return false;
}

/* A copy of the local sealed file `name` becomes the store's (replacing: the bytes are the same
 * whoever wrote them first). */
static int upload(struct archive *a, struct store_dir *d, int catfd, const char *name)
{
        _cleanup_close_ int in = -1;
        int out = -1, r;
        struct stat st;

        in = openat(catfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (in < 0 || fstat(in, &st) < 0)
                return -errno;
        (void) store_tmp_remove(d, name); /* a leftover of a run that died here */
        r = store_tmp_create(d, name, &out);
        if (r < 0)
                return r;
        for (off_t left = st.st_size; left > 0 && r >= 0;) {
                ssize_t n = copy_file_range(in, NULL, out, NULL, (size_t) left, 0);
                if (n <= 0)
                        r = n < 0 ? -errno : -EIO;
                else
                        left -= n;
        }
        if (close(out) < 0 && r >= 0)
                r = -errno;
        if (r >= 0)
                r = store_sync(a->store, &d, 1, (int[1]){0});
        if (r >= 0)
                r = store_publish(d, name, STORE_REPLACE);
        if (r < 0)
                (void) store_tmp_remove(d, name);
        return r;
}

/*
 * Makes the store's ".catalog/<id>/" hold the live sealed files of the local catalog: new ones
 * are copied first, then the ones merged away are removed, so a reader of the store always
 * finds every sealed job (a file inside another's range is one merged into it, which readers
 * leave out: cat_list_sealed). Costs one listing at the first call, then only the changes.
 */
static int remote_publish(struct archive *a)
{
        char path[sizeof(CATALOG_DIR) + 1 + sizeof(a->cat_id)];
        _cleanup_close_ int catfd = -1;
        struct store_dir *d = NULL;
        struct cat_file_ref *refs = NULL;
        size_t n = 0;
        int r;

        (void) snprintf(path, sizeof(path), "%s/%s", CATALOG_DIR, a->cat_id);
        if (!a->cat_remote_listed) {
                r = store_list_files(a->store, path, &a->cat_remote_names, &a->cat_remote_n);
                if (r == -ENOENT)
                        r = 0;
                if (r < 0)
                        return r;
                a->cat_remote_listed = true;
        }
        catfd = openat(a->cat_rootfd, CATALOG_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (catfd < 0)
                return -errno;
        r = cat_list_sealed(catfd, false, &refs, &n, NULL);
        if (r < 0)
                return r;
        bool changed = n != a->cat_remote_n;
        for (size_t i = 0; i < n && !changed; i++)
                changed = !remote_has(a, refs[i].name);
        if (!changed) {
                free(refs);
                return 0;
        }
        r = store_dir_open(a->store, path, STORE_CREATE, &d);
        for (size_t i = 0; i < n && r >= 0; i++) {
                if (remote_has(a, refs[i].name))
                        continue;
                r = upload(a, d, catfd, refs[i].name);
                if (r >= 0) {
                        char **p =
                                reallocarray(a->cat_remote_names, a->cat_remote_n + 1, sizeof(*p));
                        if (!p || !(p[a->cat_remote_n] = strdup(refs[i].name))) {
                                if (p)
                                        a->cat_remote_names = p;
                                r = -ENOMEM;
                                break;
                        }
                        a->cat_remote_names = p;
                        a->cat_remote_n++;
                        log_printf(LOG_DEBUG, "catalog: %s/%s copied to the store", path,
                                   refs[i].name);
                }
        }
        for (size_t i = 0; i < a->cat_remote_n && r >= 0;) {
                if (local_has(refs, n, a->cat_remote_names[i])) {
                        i++;
                        continue;
                }
                r = store_remove(d, a->cat_remote_names[i]);
                if (r == -ENOENT)
                        r = 0;
                if (r < 0)
                        break;
                free(a->cat_remote_names[i]);
                a->cat_remote_names[i] = a->cat_remote_names[--a->cat_remote_n];
        }
        store_dir_close(d);
        free(refs);
        return r;
}

void archive_catalog_flush(struct archive *a)
{
        int r;

        if (!a->cat)
                return;
        r = catalog_writer_flush(a->cat);
        if (r < 0)
                log_printf(LOG_DEBUG, "catalog: cannot write: %s", strerror(-r));
        if (!a->cat_remote)
                return;
        /* What the open segment holds only this machine reads: sealed within a bound. */
        if (catalog_writer_open_jobs(a->cat) == 0)
                a->cat_open_since = -1;
        else if (a->cat_open_since < 0)
                a->cat_open_since = now_seconds();
        if (a->cat_open_since >= 0 && now_seconds() - a->cat_open_since >= a->cat_seal_seconds) {
                r = catalog_writer_seal(a->cat);
                if (r < 0)
                        log_printf(LOG_DEBUG, "catalog: cannot seal: %s", strerror(-r));
                else
                        a->cat_open_since = -1;
        }
        r = remote_publish(a);
        if (r < 0 && !a->cat_remote_failing)
                log_printf(LOG_WARNING,
                           "cannot copy the search catalog to the store: %s; connect-jobs reads "
                           "the records of the jobs it lacks (tried again after each batch)",
                           strerror(-r));
        else if (r >= 0 && a->cat_remote_failing)
                log_printf(LOG_NOTICE, "the search catalog is copied to the store again");
        a->cat_remote_failing = r < 0;
}

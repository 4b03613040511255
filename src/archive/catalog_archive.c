/*
 * The archive's hooks into the search catalog: trigrams per block as a log is streamed (on
 * the owner's thread, beside the SHA-256), each committed job's row and its folder's state
 * after the batch's last sync. The catalog is never the truth: any failure here only leaves
 * folders whose state the catalog does not know, which readers then read from their records.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "archive_internal.h"
#include "catalog.h"
#include "gzblock.h"
#include "gzpool.h"
#include "log.h"

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

void archive_catalog_close(struct archive *a)
{
        if (!a->trigrams)
                return;
        if (a->cat)
                (void) catalog_writer_flush(a->cat);
        catalog_writer_free(a->cat);
        catalog_trigrams_free(a->trigrams);
        (void) close(a->cat_rootfd);
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

        if (!writer(a))
                return;
        r = removed ? catalog_writer_folder_removed(a->cat, path)
                    : catalog_writer_folder(a->cat, path);
        if (r < 0)
                log_printf(LOG_DEBUG, "catalog: cannot record the state of %s: %s", path,
                           strerror(-r));
}

void archive_catalog_flush(struct archive *a)
{
        int r;

        if (!a->cat)
                return;
        r = catalog_writer_flush(a->cat);
        if (r < 0)
                log_printf(LOG_DEBUG, "catalog: cannot write: %s", strerror(-r));
}

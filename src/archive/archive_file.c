/* A job's log streamed into its temporary through the compression pool (archive.h). */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "archive_internal.h"
#include "gzpool.h"
#include "macro.h"

/*
 * Creates the day folder and the temporary. Returns -EINVAL for an unsafe location, -EEXIST
 * when the job's temporary already exists (a second writer, or a leftover not yet swept),
 * -ELOOP when a folder on the way is a symlink, -ENOTDIR when it is something else that is
 * not a folder. The archive must outlive the file.
 */
int archive_file_open(struct archive *a, const struct archive_loc *loc, struct archive_file **ret)
{
        struct archive_file *f;
        struct store_dir *d;
        int fd, r;

        if (!a || !ret || !loc_is_valid(loc))
                return -EINVAL;
        f = calloc(1, sizeof(*f));
        if (!f)
                return -ENOMEM;
        f->archive = a;

        r = format_dir(f->dir, sizeof(f->dir), loc);
        if (r < 0)
                goto fail;
        r = format_name(f->name, sizeof(f->name), loc, ARCHIVE_KIND_LOG);
        if (r < 0)
                goto fail;
        r = store_dir_open(a->store, f->dir, STORE_CREATE, &d);
        if (r < 0)
                goto fail;
        /* Exclusive: two writers on one temporary would interleave their bytes into a file
         * that then gets a valid-looking record. */
        r = store_tmp_create(d, f->name, &fd);
        store_dir_close(d);
        if (r < 0)
                goto fail;
        f->created = true;
        r = gzjob_new(a->gz, fd, &f->job);
        if (r < 0)
                goto fail;
        archive_catalog_file_open(f);
        *ret = f;
        return 0;
fail:
        archive_file_abort(f);
        return r;
}

int archive_file_write(struct archive_file *f, const void *buf, size_t len)
{
        int r;

        if (!f || (!buf && len > 0))
                return -EINVAL;
        if (f->error < 0)
                return f->error;
        if (f->finishing)
                return -EINVAL;
        r = gzjob_write(f->job, buf, len);
        if (r < 0)
                f->error = r;
        return r;
}

_Static_assert(ARCHIVE_SHA256_HEX_LEN == GZPOOL_SHA256_HEX_LEN, "one SHA-256 hex length");

static void file_finished(void *userdata, int r, const struct gzjob_result *res)
{
        struct archive_file *f = userdata;
        struct archive_log_info info;

        f->job = NULL; /* the pool frees it when this returns */
        if (r < 0) {
                f->error = r;
                f->done(f->userdata, r, NULL);
                return;
        }
        f->finished = true;
        archive_catalog_file_finished(f, res->member_sizes, res->n_members, res->bytes_in);
        info.bytes_in = res->bytes_in;
        info.bytes_out = res->bytes_out;
        memcpy(info.sha256, res->sha256, sizeof(info.sha256));
        /* done may abort (free) f: nothing of f is used after it. */
        f->done(f->userdata, 0, &info);
}

int archive_file_finish(struct archive_file *f, archive_finish_fn *done, void *userdata)
{
        int r;

        if (!f || !done)
                return -EINVAL;
        if (f->error < 0)
                return f->error;
        if (f->finishing)
                return -EINVAL;
        f->done = done;
        f->userdata = userdata;
        r = gzjob_finish(f->job, file_finished, f);
        if (r < 0)
                return r;
        f->finishing = true;
        return 0;
}

/* Must not be called on a file handed to archive_batch_add(): the batch owns it. */
void archive_file_abort(struct archive_file *f)
{
        if (!f)
                return;
        /* Closes the fd first (waiting for a thread busy with it), so that removing the
         * temporary gives its space back at once: on a full disk, other jobs wait for it. */
        gzjob_abort(f->job);
        if (f->created) {
                /* The folder is looked up again (rare: a failure path), as the store always
                 * looks it up; the temporary in it is ours, created exclusively. */
                struct store_dir *d;

                if (store_dir_open(f->archive->store, f->dir, 0, &d) >= 0) {
                        (void) store_tmp_remove(d, f->name);
                        store_dir_close(d);
                }
        }
        archive_catalog_file_free(f);
        free(f);
}

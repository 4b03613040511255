/* Rebuilding the catalog of an existing archive (catalog_reindex, for connect-jobs reindex). */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "archive_scan.h"
#include "catalog.h"
#include "gzblock.h"
#include "macro.h"

static void remove_dir(int rootfd, const char *name)
{
        int fd = openat(rootfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        DIR *d;

        if (fd < 0)
                return;
        d = fdopendir(fd);
        if (!d) {
                (void) close(fd);
                return;
        }
        for (struct dirent *de; (de = readdir(d));)
                if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
                        (void) unlinkat(dirfd(d), de->d_name, 0);
        (void) closedir(d);
        (void) unlinkat(rootfd, name, AT_REMOVEDIR);
}

static int compare_folder(const void *x, const void *y)
{
        const struct scan_job *a = x, *b = y;
        int r = strcmp(a->guid, b->guid);

        if (r)
                return r;
        if (a->year != b->year)
                return a->year - b->year;
        if (a->month != b->month)
                return a->month - b->month;
        return a->day - b->day;
}

/* The members are the chunks the trigrams were taken from (whose line counts are known). */
static bool cut_as_chunks(const struct gzblock_member *list, size_t n)
{
        for (size_t i = 0; i + 1 < n; i++)
                if (list[i].usize != GZBLOCK_SIZE)
                        return false;
        return n > 0 && list[n - 1].usize <= GZBLOCK_SIZE;
}

/* The log's trigrams, a member's worth (256 KiB of log) at a time, and its members. */
static int index_log(int dfd, const char *key, struct catalog_trigrams *t, struct catalog_tri *tri,
                     struct catalog_member **members, uint32_t *n_members, uint64_t *bytes)
{
        _cleanup_(gzblock_reader_freep) struct gzblock_reader *rd = NULL;
        _cleanup_free_ unsigned char *chunk = NULL;
        struct gzblock_member *list = NULL;
        size_t n_list = 0, fill = 0;
        char name[300];
        int fd, r;

        (void) snprintf(name, sizeof(name), "%s.log.gz", key);
        fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0)
                return -errno;
        chunk = malloc(GZBLOCK_SIZE);
        r = chunk ? gzblock_reader_new(fd, &rd) : -ENOMEM;
        while (r >= 0) {
                const void *buf;
                ssize_t k = gzblock_read(rd, &buf);

                if (k < 0)
                        r = (int) k;
                if (k <= 0)
                        break;
                *bytes += (uint64_t) k;
                for (size_t off = 0; off < (size_t) k && r >= 0;) {
                        size_t n = GZBLOCK_SIZE - fill < (size_t) k - off ? GZBLOCK_SIZE - fill
                                                                          : (size_t) k - off;
                        memcpy(chunk + fill, (const char *) buf + off, n);
                        fill += n;
                        off += n;
                        if (fill == GZBLOCK_SIZE) {
                                r = catalog_trigrams_member(t, chunk, fill, tri);
                                fill = 0;
                        }
                }
        }
        if (r >= 0 && (fill > 0 || tri->n_members == 0))
                r = catalog_trigrams_member(t, chunk, fill, tri);
        if (r >= 0)
                r = catalog_tri_finish(tri);
        /* The members' places, when the file is blocked and they are the chunks above. */
        if (r >= 0 && gzblock_list(fd, &list, &n_list) == 0 && n_list == tri->n_members &&
            cut_as_chunks(list, n_list)) {
                *members = calloc(n_list, sizeof(**members));
                if (*members) {
                        for (size_t i = 0; i < n_list; i++)
                                (*members)[i] = (struct catalog_member){.offset = list[i].offset,
                                                                        .size = list[i].size,
                                                                        .usize = list[i].usize};
                        *n_members = (uint32_t) n_list;
                }
        }
        free(list);
        (void) close(fd);
        return r;
}

int catalog_reindex(int rootfd, catalog_progress_fn *progress, void *userdata, size_t *ret_jobs)
{
        struct scan_filter f = {0};
        struct scan_job *jobs = NULL;
        struct catalog_writer *w = NULL;
        struct catalog_trigrams *t = NULL;
        size_t n = 0, indexed = 0;
        uint64_t bytes = 0;
        int r;

        r = archive_scan(rootfd, &f, NULL, NULL, &jobs, &n, NULL);
        if (r < 0)
                return r;
        qsort(jobs, n, sizeof(*jobs), compare_folder);
        remove_dir(rootfd, CATALOG_DIR ".old");
        if (renameat(rootfd, CATALOG_DIR, rootfd, CATALOG_DIR ".old") < 0 && errno != ENOENT) {
                r = -errno;
                goto out;
        }
        r = catalog_trigrams_new(&t);
        if (r >= 0)
                r = catalog_writer_open(rootfd, 0, &w);
        if (r >= 0)
                catalog_writer_nosync(w);
        for (size_t i = 0; i < n && r >= 0;) {
                _cleanup_close_ int dfd = scan_job_open_dir(rootfd, &jobs[i]);
                char folder[256];
                size_t end;

                for (end = i + 1; end < n && compare_folder(&jobs[i], &jobs[end]) == 0; end++)
                        ;
                (void) snprintf(folder, sizeof(folder), "%s/%04d/%02d/%02d", jobs[i].guid,
                                jobs[i].year, jobs[i].month, jobs[i].day);
                for (; i < end && r >= 0 && dfd >= 0; i++) {
                        struct scan_job *j = &jobs[i];
                        struct catalog_tri tri = {0};
                        struct catalog_member *members = NULL;
                        struct catalog_row row;
                        char name[300], *rec = NULL, *strings = NULL;
                        size_t len;
                        uint32_t n_members = 0;
                        int k;

                        (void) snprintf(name, sizeof(name), "%s.json", j->key);
                        k = scan_read_small(dfd, name, &rec, &len);
                        if (k == -ENOMEM)
                                r = k;
                        if (k < 0)
                                continue;
                        k = catalog_row_from_record(folder, j->key, j->year, j->month, j->day, rec,
                                                    len, &row, &strings);
                        free(rec);
                        if (k < 0) {
                                if (k == -ENOMEM)
                                        r = k;
                                continue;
                        }
                        if (row.log_bytes >= 0) {
                                k = index_log(dfd, j->key, t, &tri, &members, &n_members, &bytes);
                                if (k == -ENOMEM)
                                        r = k;
                                /* Members' places unknown (an old file): indexed all the same. */
                                row.n_members = tri.n_members;
                                row.members = n_members == tri.n_members ? members : NULL;
                        }
                        if (r >= 0)
                                r = catalog_writer_add(w, &row,
                                                       k >= 0 && row.log_bytes >= 0 ? &tri : NULL);
                        catalog_tri_done(&tri);
                        free(members);
                        free(strings);
                        indexed++;
                        if (progress)
                                progress(userdata, indexed, n, bytes);
                }
                i = end;
                if (r >= 0 && dfd >= 0)
                        (void) catalog_writer_folder(w, folder);
                if (r >= 0)
                        r = catalog_writer_flush(w);
        }
        if (r >= 0)
                r = catalog_writer_seal(w);
        if (r >= 0)
                remove_dir(rootfd, CATALOG_DIR ".old");
out:
        catalog_writer_free(w);
        catalog_trigrams_free(t);
        scan_jobs_free(jobs, n);
        if (r >= 0 && ret_jobs)
                *ret_jobs = indexed;
        return r;
}

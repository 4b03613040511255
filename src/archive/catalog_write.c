/*
 * The catalog's writer: rows appended to the open segment after each batch commit, the
 * segment sealed into a sorted, delta-coded file once it holds seal_jobs jobs, and sealed
 * files merged MERGE_FAN at a time into the next level (so a year of 2 million jobs is about
 * two dozen files). Every file but the open segment is written as a temporary, fsynced and
 * renamed; the segment is appended and fdatasynced, and a torn tail is cut off at the next
 * open. A crash at any point leaves files that the reader either uses whole or ignores:
 *
 *   - a segment whose id is not above every sealed file's last id was sealed already;
 *   - a sealed file whose range lies inside another's was merged already;
 *   - temporaries are removed here (and by the archive's sweep).
 *
 * What the reader trusts is per folder: the last 'D' record (mtime and number of records)
 * must match the folder as it is now, and the catalog must hold that many rows for it.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "catalog_format.h"
#include "macro.h"
#include "paths.h"
#include "util.h"

#define SEAL_JOBS_DEFAULT 4096
#define MERGE_FAN         8
#define PAIRS_MAX         (64u * 1024) /* (trigram, member) pairs sorted at once when sealing */

struct catalog_writer {
        int rootfd; /* borrowed */
        int dfd;
        int segfd;
        uint64_t seg_id, seg_end;
        size_t seg_jobs, pending_jobs;
        unsigned seal_jobs;
        bool nosync; /* reindex: only sealed files are synced */
        struct cat_buf pending;
};

void catalog_writer_nosync(struct catalog_writer *w)
{
        w->nosync = true;
}

static void seg_release(struct catalog_writer *w);

static int seg_create(struct catalog_writer *w, uint64_t id)
{
        unsigned char h[CAT_HEADER_SIZE] = {0};
        int fd, r = 0;

        memcpy(h, CAT_SEG_MAGIC, 8);
        cat_put32(h + 8, CATALOG_VERSION);
        cat_put64(h + 16, id);
        cat_put32(h + 24, cat_crc32(0, h, 24));
        (void) unlinkat(w->dfd, ".open.tmp", 0);
        fd = openat(w->dfd, ".open.tmp", O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
        if (fd < 0)
                return -errno;
        r = write_all(fd, h, sizeof(h));
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (r >= 0 && renameat(w->dfd, ".open.tmp", w->dfd, "open") < 0)
                r = -errno;
        if (r >= 0 && fsync(w->dfd) < 0)
                r = -errno;
        if (r < 0) {
                (void) close(fd);
                (void) unlinkat(w->dfd, ".open.tmp", 0);
                return r;
        }
        if (w->segfd >= 0)
                (void) close(w->segfd);
        w->segfd = fd;
        w->seg_id = id;
        w->seg_end = CAT_HEADER_SIZE;
        w->seg_jobs = 0;
        return 0;
}

static int count_jobs(void *userdata, unsigned char type, const unsigned char *p, size_t len,
                      uint64_t offset)
{
        size_t *n = userdata;

        (void) p;
        (void) len;
        (void) offset;
        if (type == 'J')
                (*n)++;
        return 0;
}

/* Sealed files of another format version are never read (the reader counts them damaged,
 * so their folders are read from their records): the writer removes them, and a reindex
 * builds them again. A damaged file stays, as the reader leaves it out. */
static void remove_other_versions(int dfd, const struct cat_file_ref *refs, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                unsigned char h[12];
                int fd = openat(dfd, refs[i].name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
                bool other;

                if (fd < 0)
                        continue;
                other = pread(fd, h, sizeof(h), 0) == (ssize_t) sizeof(h) &&
                        memcmp(h, CAT_IDX_MAGIC, 8) == 0 && cat_get32(h + 8) != CATALOG_VERSION;
                (void) close(fd);
                if (other)
                        (void) unlinkat(dfd, refs[i].name, 0);
        }
}

int catalog_writer_open(int rootfd, unsigned seal_jobs, struct catalog_writer **ret)
{
        struct catalog_writer *w;
        struct cat_file_ref *refs = NULL;
        size_t n = 0;
        uint64_t max_last = 0;
        int r;

        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        w->rootfd = rootfd;
        w->segfd = -1;
        w->seal_jobs = seal_jobs ? seal_jobs : SEAL_JOBS_DEFAULT;
        if (mkdirat(rootfd, CATALOG_DIR, 0750) < 0 && errno != EEXIST) {
                r = -errno;
                free(w);
                return r;
        }
        w->dfd = openat(rootfd, CATALOG_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (w->dfd < 0) {
                r = -errno;
                free(w);
                return r;
        }
        r = cat_list_sealed(w->dfd, true, &refs, &n, &max_last);
        if (r < 0)
                goto fail;
        remove_other_versions(w->dfd, refs, n);
        free(refs);

        w->segfd = openat(w->dfd, "open", O_RDWR | O_NOFOLLOW | O_CLOEXEC);
        if (w->segfd >= 0) {
                uint64_t id = 0, end = 0;
                bool torn = false;
                size_t jobs = 0;

                r = cat_seg_stream(w->segfd, &id, &end, &torn, count_jobs, &jobs);
                if (r == -ENOMEM)
                        goto fail;
                if (r == 0 && id > max_last) {
                        /* A torn tail is cut off: the batch it belonged to is written again
                         * with the next commit's folder states. */
                        if (torn && (ftruncate(w->segfd, (off_t) end) < 0 || fsync(w->segfd) < 0)) {
                                r = -errno;
                                goto fail;
                        }
                        w->seg_id = id;
                        w->seg_end = end;
                        w->seg_jobs = jobs;
                        seg_release(w);
                        *ret = w;
                        return 0;
                }
        }
        r = seg_create(w, max_last + 1);
        if (r < 0)
                goto fail;
        seg_release(w);
        *ret = w;
        return 0;
fail:
        catalog_writer_free(w);
        return r;
}

void catalog_writer_free(struct catalog_writer *w)
{
        if (!w)
                return;
        if (w->segfd >= 0)
                (void) close(w->segfd);
        if (w->dfd >= 0)
                (void) close(w->dfd);
        cat_buf_done(&w->pending);
        free(w);
}

size_t catalog_writer_open_jobs(const struct catalog_writer *w)
{
        return w ? w->seg_jobs + w->pending_jobs : 0;
}

/* Frames payload[start, len) of pending as a record: its length and CRC go before it. */
static int pending_record(struct catalog_writer *w, size_t start)
{
        unsigned char *p;
        uint32_t len;

        if (w->pending.failed)
                return -ENOMEM;
        p = w->pending.data + start;
        len = (uint32_t) (w->pending.len - start - 8);
        cat_put32(p, len);
        cat_put32(p + 4, cat_crc32(cat_crc32(0, p, 4), p + 8, len));
        return 0;
}

int catalog_writer_add(struct catalog_writer *w, const struct catalog_row *row,
                       const struct catalog_tri *tri)
{
        size_t start = w->pending.len;
        /* Indexed only when every member's list and lead is known (a log read to its end). */
        bool indexed = tri && !tri->overflow && !tri->pending && tri->lead &&
                       tri->n_members == row->n_members && tri->n_written == tri->n_members;
        unsigned flags = (row->has_exit_code ? CAT_F_EXIT : 0) |
                         (row->has_error ? CAT_F_ERROR : 0) | (indexed ? CAT_F_INDEXED : 0);
        int r;

        cat_buf_put(&w->pending, (unsigned char[8]){0}, 8);
        cat_buf_put(&w->pending, "J", 1);
        cat_buf_string(&w->pending, row->folder);
        cat_buf_string(&w->pending, row->key);
        cat_buf_string(&w->pending, row->tag);
        cat_buf_string(&w->pending, row->start_text);
        cat_buf_string(&w->pending, row->name);
        cat_buf_string(&w->pending, row->error_summary);
        cat_buf_varint(&w->pending, cat_zigzag(row->start));
        cat_buf_varint(&w->pending, cat_zigzag(row->log_bytes));
        cat_buf_varint(&w->pending, cat_zigzag(row->gz_bytes));
        cat_buf_varint(&w->pending, cat_zigzag(row->status));
        cat_buf_varint(&w->pending, cat_zigzag(row->exit_code));
        cat_buf_varint(&w->pending, flags);
        cat_buf_varint(&w->pending, row->n_members);
        for (uint32_t i = 0; i < row->n_members; i++) {
                cat_buf_varint(&w->pending, row->members ? row->members[i].offset : 0);
                cat_buf_varint(&w->pending, row->members ? row->members[i].size : 0);
                cat_buf_varint(&w->pending, row->members ? row->members[i].usize : 0);
                cat_buf_varint(&w->pending, indexed ? tri->lead[i] : 0);
        }
        if (indexed) {
                cat_buf_varint(&w->pending, tri->len);
                cat_buf_put(&w->pending, tri->data, tri->len);
        }
        r = pending_record(w, start);
        if (r < 0) {
                w->pending.len = start;
                w->pending.failed = false;
                return r;
        }
        w->pending_jobs++;
        return 0;
}

static int folder_record(struct catalog_writer *w, const char *folder, bool removed)
{
        size_t start = w->pending.len;
        int r;

        cat_buf_put(&w->pending, (unsigned char[8]){0}, 8);
        if (removed) {
                cat_buf_put(&w->pending, "R", 1);
                cat_buf_string(&w->pending, folder);
        } else {
                _cleanup_close_ int fd = archive_dir_open_beneath(w->rootfd, folder, false);
                struct stat st;
                int n;

                if (fd < 0 || fstat(fd, &st) < 0) {
                        w->pending.len = start;
                        return fd < 0 ? fd : -errno;
                }
                n = cat_count_records(fd);
                if (n < 0) {
                        w->pending.len = start;
                        return n;
                }
                cat_buf_put(&w->pending, "D", 1);
                cat_buf_string(&w->pending, folder);
                cat_buf_varint(&w->pending, cat_zigzag((int64_t) st.st_mtim.tv_sec * 1000000000 +
                                                       st.st_mtim.tv_nsec));
                cat_buf_varint(&w->pending, (uint64_t) n);
        }
        r = pending_record(w, start);
        if (r < 0) {
                w->pending.len = start;
                w->pending.failed = false;
        }
        return r;
}

int catalog_writer_folder(struct catalog_writer *w, const char *folder)
{
        return folder_record(w, folder, false);
}

int catalog_writer_folder_removed(struct catalog_writer *w, const char *folder)
{
        return folder_record(w, folder, true);
}

/* ---- sealing --------------------------------------------------------------------------- */

/*
 * Sealing streams the segment: one pass reads it a record at a time, writing each job's row
 * to the sealed file at once and keeping of its trigram lists only where each member's list
 * is in the file (a cursor); the posting lists are then made a range of trigrams at a time
 * (at most PAIRS_MAX pairs in memory), every cursor reading its list on through a small
 * buffer of its own. What sealing holds is a cursor per member, the pairs and one record,
 * not the segment (which was 16 MB for 4,096 jobs of the search benchmark).
 */
struct tri_cursor {
        uint64_t off, end; /* the list's bytes in the file not yet in buf */
        uint64_t left;     /* trigrams not yet taken, the current one included */
        uint32_t cur;      /* the current trigram */
        uint32_t member;
        uint16_t pos, fill; /* buf[pos, fill) */
        unsigned char *buf;
};

struct seal_state {
        struct cat_sealed_writer *sw;
        struct cat_folder_state *folders; /* latest state per folder, found by path (owned) */
        size_t n_folders, cap_folders;
        struct catalog_member *members;
        size_t members_cap;
        struct tri_cursor *cur;
        size_t n_cur, cap_cur;
        uint64_t *hist;      /* pairs per 4096 trigrams */
        uint32_t member;     /* members numbered so far */
        uint32_t unit;       /* the current unit (its number) */
        uint64_t unit_bytes; /* log bytes in it so far */
        uint32_t *unit_of;   /* the unit of each member of the job being read */
        size_t unit_of_cap;
        size_t n_jobs;
};

static int seal_members(const struct cat_seg_job *job, struct catalog_member **buf, size_t *cap)
{
        struct cat_cursor c = {.p = job->members, .end = job->members + job->members_len};

        if (job->row.n_members > *cap) {
                struct catalog_member *m = reallocarray(*buf, job->row.n_members, sizeof(*m));
                if (!m)
                        return -ENOMEM;
                *buf = m;
                *cap = job->row.n_members;
        }
        for (uint32_t i = 0; i < job->row.n_members; i++) {
                (*buf)[i].offset = cat_cursor_varint(&c);
                (*buf)[i].size = (uint32_t) cat_cursor_varint(&c);
                (*buf)[i].usize = (uint32_t) cat_cursor_varint(&c);
                cat_set_lead(&(*buf)[i], cat_cursor_varint(&c));
        }
        return c.bad ? -EBADMSG : 0;
}

/* A job's trigram lists (in the record at p, which is at file offset base): the histogram,
 * and a cursor per non-empty list at its first trigram. */
static int seal_lists(struct seal_state *s, const struct cat_seg_job *job, const unsigned char *p0,
                      uint64_t base)
{
        const unsigned char *p = job->tri, *end = job->tri + job->tri_len;
        uint64_t tri_end = base + (uint64_t) (end - p0);

        for (uint32_t m = 0; m < job->row.n_members; m++) {
                uint64_t count, d, v = 0, first = 0;
                size_t k = cat_varint_get(p, end, &count);

                if (k == 0)
                        return -EBADMSG;
                p += k;
                for (uint64_t i = 0; i < count; i++) {
                        k = cat_varint_get(p, end, &d);
                        if (k == 0 || (i > 0 && d == 0) || v + d > 0xffffff)
                                return -EBADMSG;
                        p += k;
                        v += d;
                        s->hist[v >> 12]++;
                        if (i == 0) {
                                first = v;
                                /* The cursor goes on after the first trigram. */
                                if (s->n_cur == s->cap_cur) {
                                        size_t cap = s->cap_cur ? 2 * s->cap_cur : 1024;
                                        struct tri_cursor *nc =
                                                reallocarray(s->cur, cap, sizeof(*nc));
                                        if (!nc)
                                                return -ENOMEM;
                                        s->cur = nc;
                                        s->cap_cur = cap;
                                }
                                s->cur[s->n_cur++] =
                                        (struct tri_cursor){.off = base + (uint64_t) (p - p0),
                                                            .end = tri_end,
                                                            .left = count,
                                                            .cur = (uint32_t) first,
                                                            .member = s->unit_of[m]};
                        }
                }
        }
        return 0;
}

/* The units of a job's members: a member starts a new unit when the current one holds a
 * member already and the member's log would take it past CAT_UNIT_BYTES. So the small jobs
 * of a segment (one member each, a few KB) share units and their common trigrams are listed
 * once, and a big job's members (256 KiB each) are a unit each. */
static int seal_units(struct seal_state *s, const struct cat_seg_job *job)
{
        /* CJA_CATALOG_UNIT_BYTES: the tests' smaller units (1: a member each). */
        const char *env = getenv("CJA_CATALOG_UNIT_BYTES");
        uint64_t unit_max = env && *env ? strtoull(env, NULL, 10) : CAT_UNIT_BYTES;

        if (job->row.n_members > s->unit_of_cap) {
                uint32_t *u = reallocarray(s->unit_of, job->row.n_members, sizeof(*u));
                if (!u)
                        return -ENOMEM;
                s->unit_of = u;
                s->unit_of_cap = job->row.n_members;
        }
        for (uint32_t m = 0; m < job->row.n_members; m++) {
                uint32_t k = s->member + m;

                if (k > 0 && s->unit_bytes + s->members[m].usize > unit_max) {
                        int r = cat_sealed_writer_unit_at(s->sw, k);
                        if (r < 0)
                                return r;
                        s->unit++;
                        s->unit_bytes = 0;
                }
                s->unit_bytes += s->members[m].usize;
                s->unit_of[m] = s->unit;
        }
        return 0;
}

static int seal_record(void *userdata, unsigned char type, const unsigned char *p, size_t len,
                       uint64_t offset)
{
        struct seal_state *s = userdata;
        struct cat_cursor c = {.p = p + 1, .end = p + len};
        struct cat_folder_state f = {0};
        int r;

        if (type == 'J') {
                struct cat_seg_job job;

                if (cat_seg_job_parse(p, len, &job) < 0)
                        return 0; /* a record that is not one: left out, as the reader does */
                r = seal_members(&job, &s->members, &s->members_cap);
                if (r < 0)
                        return r;
                r = seal_units(s, &job);
                if (r < 0)
                        return r;
                if (job.row.indexed && job.tri) {
                        r = seal_lists(s, &job, p, offset);
                        if (r < 0)
                                return r;
                }
                s->member += job.row.n_members;
                s->n_jobs++;
                return cat_sealed_writer_job(s->sw, &job.row, s->members);
        }
        if (type != 'D' && type != 'R')
                return 0;
        f.path = cat_cursor_string(&c);
        if (type == 'D') {
                f.mtime_ns = cat_unzigzag(cat_cursor_varint(&c));
                f.jobs = (uint32_t) cat_cursor_varint(&c);
        } else {
                f.removed = true;
        }
        if (c.bad || !f.path)
                return 0;
        for (size_t i = 0; i < s->n_folders; i++)
                if (strcmp(s->folders[i].path, f.path) == 0) {
                        f.path = s->folders[i].path;
                        s->folders[i] = f;
                        return 0;
                }
        if (s->n_folders == s->cap_folders) {
                size_t cap = s->cap_folders ? 2 * s->cap_folders : 64;
                struct cat_folder_state *n = reallocarray(s->folders, cap, sizeof(*n));
                if (!n)
                        return -ENOMEM;
                s->folders = n;
                s->cap_folders = cap;
        }
        f.path = strdup(f.path);
        if (!f.path)
                return -ENOMEM;
        s->folders[s->n_folders++] = f;
        return 0;
}

#define CURSOR_BUF 128

/* The cursor's next trigram. -EBADMSG, or a read's -errno. */
static int cursor_next(int fd, struct tri_cursor *c)
{
        uint64_t d;
        size_t n;

        if (c->fill - c->pos < 10 && c->off < c->end) {
                size_t keep = (size_t) (c->fill - c->pos), want = CURSOR_BUF - keep;
                ssize_t k;

                memmove(c->buf, c->buf + c->pos, keep);
                if (want > c->end - c->off)
                        want = (size_t) (c->end - c->off);
                k = cat_pread(fd, c->buf + keep, want, c->off);
                if (k < 0)
                        return (int) k;
                if ((size_t) k != want)
                        return -EBADMSG;
                c->off += want;
                c->pos = 0;
                c->fill = (uint16_t) (keep + want);
        }
        n = cat_varint_get(c->buf + c->pos, c->buf + c->fill, &d);
        if (n == 0 || d == 0 || (uint64_t) c->cur + d > 0xffffff)
                return -EBADMSG;
        c->pos = (uint16_t) (c->pos + n);
        c->cur += (uint32_t) d;
        return 0;
}

/* Stable sort of pairs (trigram << 32 | member) by trigram. */
static void radix_pairs(uint64_t *a, uint64_t *tmp, size_t n)
{
        for (unsigned shift = 32; shift < 56; shift += 8) {
                size_t count[257] = {0};

                for (size_t i = 0; i < n; i++)
                        count[((a[i] >> shift) & 0xff) + 1]++;
                for (unsigned k = 1; k < 257; k++)
                        count[k] += count[k - 1];
                for (size_t i = 0; i < n; i++)
                        tmp[count[(a[i] >> shift) & 0xff]++] = a[i];
                memcpy(a, tmp, n * sizeof(*a));
        }
}

/* Inverts the cursors' lists into posting lists, a range of trigrams at a time. */
static int seal_postings(struct seal_state *s, int fd)
{
        uint64_t *pairs = NULL, *tmp = NULL;
        uint32_t *list = NULL;
        unsigned char *bufs = NULL;
        int r = 0;

        pairs = malloc(PAIRS_MAX * sizeof(*pairs));
        tmp = malloc(PAIRS_MAX * sizeof(*tmp));
        list = malloc((s->member ? s->member : 1) * sizeof(*list));
        bufs = malloc((s->n_cur ? s->n_cur : 1) * (size_t) CURSOR_BUF);
        if (!pairs || !tmp || !list || !bufs) {
                r = -ENOMEM;
                goto out;
        }
        for (size_t i = 0; i < s->n_cur; i++)
                s->cur[i].buf = bufs + i * CURSOR_BUF;
        for (unsigned lo = 0, hi; lo < 4096 && r >= 0; lo = hi) {
                uint64_t total = s->hist[lo];
                size_t n = 0;

                for (hi = lo + 1; hi < 4096 && total + s->hist[hi] <= PAIRS_MAX; hi++)
                        total += s->hist[hi];
                if (total == 0)
                        continue;
                /* A single bucket over the budget: it is taken whole. */
                if (total > PAIRS_MAX) {
                        uint64_t *np = realloc(pairs, total * sizeof(*np)), *nt;
                        if (!np) {
                                r = -ENOMEM;
                                break;
                        }
                        pairs = np;
                        nt = realloc(tmp, total * sizeof(*nt));
                        if (!nt) {
                                r = -ENOMEM;
                                break;
                        }
                        tmp = nt;
                }
                for (size_t i = 0; i < s->n_cur && r >= 0; i++) {
                        struct tri_cursor *c = &s->cur[i];

                        while (c->left && (c->cur >> 12) < hi && n < total) {
                                pairs[n++] = (uint64_t) c->cur << 32 | c->member;
                                c->left--;
                                if (c->left && (r = cursor_next(fd, c)) < 0)
                                        break;
                        }
                }
                if (r < 0)
                        break;
                radix_pairs(pairs, tmp, n);
                /* A trigram's units come in order (the cursors are), once each. */
                for (size_t i = 0; i < n && r >= 0;) {
                        uint32_t tri = (uint32_t) (pairs[i] >> 32);
                        size_t k = 0;

                        for (; i < n && (uint32_t) (pairs[i] >> 32) == tri; i++)
                                if (k == 0 || list[k - 1] != (uint32_t) pairs[i])
                                        list[k++] = (uint32_t) pairs[i];
                        r = cat_sealed_writer_list(s->sw, tri, list, k);
                }
        }
out:
        free(pairs);
        free(tmp);
        free(list);
        free(bufs);
        return r;
}

static int merge(struct catalog_writer *w);

static int seal(struct catalog_writer *w)
{
        struct seal_state s = {0};
        uint64_t id, end;
        unsigned char h[CAT_HEADER_SIZE];
        bool torn;
        int r;

        if (cat_pread(w->segfd, h, sizeof(h), 0) != (ssize_t) sizeof(h))
                return -EBADMSG;
        id = cat_get64(h + 16);
        s.hist = calloc(4096, sizeof(*s.hist));
        r = s.hist ? cat_sealed_writer_new(w->dfd, 0, id, id, &s.sw) : -ENOMEM;
        if (r >= 0)
                r = cat_seg_stream(w->segfd, &id, &end, &torn, seal_record, &s);
        if (r < 0)
                goto out;
        if (s.n_jobs == 0 && s.n_folders == 0)
                goto out; /* nothing in it */
        for (size_t i = 0; i < s.n_folders && r >= 0; i++)
                r = cat_sealed_writer_folder(s.sw, &s.folders[i]);
        if (r >= 0)
                r = seal_postings(&s, w->segfd);
        if (r >= 0)
                r = cat_sealed_writer_commit(s.sw);
        if (r >= 0)
                r = seg_create(w, id + 1);
        if (r >= 0)
                r = merge(w);
out:
        cat_sealed_writer_free(s.sw);
        for (size_t i = 0; i < s.n_folders; i++)
                free((char *) s.folders[i].path);
        free(s.folders);
        free(s.members);
        free(s.unit_of);
        free(s.cur);
        free(s.hist);
        return r;
}

/* ---- merging ----------------------------------------------------------------------------- */

/* The inputs' pages read so far leave the daemon's memory (they stay in the page cache): a
 * merge reads its inputs front to back, so what it holds is what it reads next, not all of
 * them (8 files of 10 MB at the first level). */
static void drop_pages(const struct cat_sealed *f, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (f[i].map)
                        (void) madvise(f[i].map, f[i].size, MADV_DONTNEED);
}

static int merge_files(struct catalog_writer *w, const struct cat_file_ref *in, size_t n)
{
        struct cat_sealed f[MERGE_FAN];
        struct cat_sealed_writer *sw = NULL;
        struct cat_folder_state *folders = NULL;
        size_t n_folders = 0;
        uint32_t *map[MERGE_FAN] = {0}, *list = NULL;
        size_t list_n = 0, list_cap = 0;
        uint64_t pos[MERGE_FAN] = {0}, members = 0, units = 0;
        int r = 0;

        memset(f, 0, sizeof(f));
        for (size_t i = 0; i < n && r >= 0; i++)
                r = cat_sealed_open(w->dfd, in[i].name, &f[i]);
        if (r < 0)
                goto out; /* a damaged file stays as it is (the reader leaves it out) */
        drop_pages(f, n); /* opening them checked every table's CRC */
        /* The latest state of each folder: files in order, each file's table sorted. */
        for (size_t i = 0; i < n; i++) {
                for (uint64_t k = 0; k < f[i].n_folders; k++) {
                        struct cat_folder_state st;
                        size_t j;

                        cat_sealed_folder(&f[i], k, &st);
                        if (!st.path)
                                continue;
                        for (j = 0; j < n_folders && strcmp(folders[j].path, st.path); j++)
                                ;
                        if (j == n_folders) {
                                struct cat_folder_state *nf =
                                        reallocarray(folders, n_folders + 1, sizeof(*nf));
                                if (!nf) {
                                        r = -ENOMEM;
                                        goto out;
                                }
                                folders = nf;
                                n_folders++;
                        }
                        folders[j] = st;
                }
        }
        r = cat_sealed_writer_new(w->dfd, in[0].level + 1, in[0].first, in[n - 1].last, &sw);
        if (r < 0)
                goto out;
        /* Jobs of removed folders go (retention); the others are renumbered. */
        for (size_t i = 0; i < n && r >= 0; i++) {
                map[i] = malloc((f[i].n_members ? f[i].n_members : 1) * sizeof(uint32_t));
                if (!map[i]) {
                        r = -ENOMEM;
                        break;
                }
                for (uint64_t j = 0; j < f[i].n_jobs && r >= 0; j++) {
                        struct catalog_row row;
                        uint32_t first;
                        bool removed = false;

                        cat_sealed_row(&f[i], j, &row, &first);
                        for (size_t k = 0; k < n_folders; k++)
                                if (folders[k].removed && strcmp(folders[k].path, row.folder) == 0)
                                        removed = true;
                        for (uint32_t m = 0; m < row.n_members; m++)
                                map[i][first + m] = removed ? UINT32_MAX : (uint32_t) members++;
                        if (!removed) {
                                struct catalog_member *ms =
                                        calloc(row.n_members ? row.n_members : 1, sizeof(*ms));
                                if (!ms) {
                                        r = -ENOMEM;
                                        break;
                                }
                                for (uint32_t m = 0; m < row.n_members; m++)
                                        cat_sealed_member(&f[i], first + m, &ms[m]);
                                r = cat_sealed_writer_job(sw, &row, ms);
                                free(ms);
                        }
                }
        }
        /* The inputs' units, each at its first kept member (one with none goes), numbered on
         * across the files: map[i] becomes input i's unit map. */
        for (size_t i = 0; i < n && r >= 0; i++) {
                for (uint64_t u = 0; u < f[i].n_units && r >= 0; u++) {
                        uint64_t k = cat_sealed_unit_first(&f[i], u),
                                 e = cat_sealed_unit_first(&f[i], u + 1);

                        while (k < e && map[i][k] == UINT32_MAX)
                                k++;
                        if (k == e) {
                                map[i][u] = UINT32_MAX;
                                continue;
                        }
                        r = cat_sealed_writer_unit_at(sw, map[i][k]);
                        map[i][u] = (uint32_t) units++;
                }
        }
        for (size_t k = 0; k < n_folders && r >= 0; k++)
                r = cat_sealed_writer_folder(sw, &folders[k]);
        drop_pages(f, n);
        /* The dictionaries merged in trigram order. */
        for (uint64_t merged = 0; r >= 0; merged++) {
                if (merged % 4096 == 4095)
                        drop_pages(f, n);
                uint32_t tri = UINT32_MAX;
                bool any = false;

                for (size_t i = 0; i < n; i++)
                        if (pos[i] < f[i].n_tri) {
                                uint32_t t = cat_get32(f[i].map + f[i].off[CAT_S_DICT] +
                                                       pos[i] * CAT_DICT_SIZE);
                                if (!any || t < tri)
                                        tri = t;
                                any = true;
                        }
                if (!any)
                        break;
                list_n = 0;
                for (size_t i = 0; i < n && r >= 0; i++) {
                        size_t from = list_n, k = from;

                        if (pos[i] >= f[i].n_tri || cat_get32(f[i].map + f[i].off[CAT_S_DICT] +
                                                              pos[i] * CAT_DICT_SIZE) != tri)
                                continue;
                        r = cat_sealed_list(&f[i], pos[i], &list, &list_n, &list_cap);
                        pos[i]++;
                        for (size_t m = from; m < list_n && r >= 0; m++)
                                if (map[i][list[m]] != UINT32_MAX)
                                        list[k++] = map[i][list[m]];
                        list_n = k;
                }
                if (r >= 0)
                        r = cat_sealed_writer_list(sw, tri, list, list_n);
        }
        if (r >= 0)
                r = cat_sealed_writer_commit(sw);
        /* The inputs go only once the merged file is durable; a crash before leaves files
         * inside its range, which the next open removes. */
        for (size_t i = 0; i < n && r >= 0; i++)
                (void) unlinkat(w->dfd, in[i].name, 0);
out:
        cat_sealed_writer_free(sw);
        for (size_t i = 0; i < n; i++) {
                cat_sealed_close(&f[i]);
                free(map[i]);
        }
        free(folders);
        free(list);
        return r;
}

/* While a level holds MERGE_FAN files, its oldest MERGE_FAN become one of the next. */
static int merge(struct catalog_writer *w)
{
        for (;;) {
                struct cat_file_ref *refs = NULL, group[MERGE_FAN];
                size_t n = 0, k = 0;
                int r = cat_list_sealed(w->dfd, true, &refs, &n, NULL);

                if (r < 0)
                        return r;
                for (unsigned level = 0; level < 64 && k < MERGE_FAN; level++) {
                        k = 0;
                        for (size_t i = 0; i < n && k < MERGE_FAN; i++)
                                if (refs[i].level == level)
                                        group[k++] = refs[i];
                }
                free(refs);
                if (k < MERGE_FAN)
                        return 0;
                r = merge_files(w, group, k);
                if (r < 0)
                        return r;
        }
}

/* The segment is open only while it is written: a writable fd held between batches would keep
 * the archive's file system from being remounted read-only (or unmounted). */
static int seg_open(struct catalog_writer *w)
{
        if (w->segfd < 0)
                w->segfd = openat(w->dfd, "open", O_RDWR | O_NOFOLLOW | O_CLOEXEC);
        return w->segfd < 0 ? -errno : 0;
}

static void seg_release(struct catalog_writer *w)
{
        if (w->segfd >= 0)
                (void) close(w->segfd);
        w->segfd = -1;
}

static int flush(struct catalog_writer *w);

int catalog_writer_flush(struct catalog_writer *w)
{
        int r;

        if (!w)
                return -EINVAL;
        r = flush(w);
        seg_release(w);
        return r;
}

static int flush(struct catalog_writer *w)
{
        int r;

        if (w->pending.len) {
                r = seg_open(w);
                if (r < 0) {
                        w->pending.len = 0;
                        w->pending_jobs = 0;
                        return r;
                }
                size_t off = 0;

                while (off < w->pending.len) {
                        ssize_t n = pwrite(w->segfd, w->pending.data + off, w->pending.len - off,
                                           (off_t) (w->seg_end + off));
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n <= 0) {
                                r = n < 0 ? -errno : -EIO;
                                /* What may have reached the file is a torn tail: cut off. */
                                (void) ftruncate(w->segfd, (off_t) w->seg_end);
                                w->pending.len = 0;
                                w->pending_jobs = 0;
                                return r;
                        }
                        off += (size_t) n;
                }
                if (!w->nosync && fdatasync(w->segfd) < 0) {
                        r = -errno;
                        (void) ftruncate(w->segfd, (off_t) w->seg_end);
                        w->pending.len = 0;
                        w->pending_jobs = 0;
                        return r;
                }
                w->seg_end += w->pending.len;
                w->seg_jobs += w->pending_jobs;
                w->pending.len = 0;
                w->pending_jobs = 0;
        }
        if (w->seg_jobs >= w->seal_jobs)
                return seal(w);
        return 0;
}

int catalog_writer_seal(struct catalog_writer *w)
{
        int r = flush(w);

        if (r >= 0 && (w->seg_jobs > 0 || w->seg_end > CAT_HEADER_SIZE))
                r = seg_open(w);
        if (r >= 0 && (w->seg_jobs > 0 || w->seg_end > CAT_HEADER_SIZE))
                r = seal(w);
        seg_release(w);
        return r;
}

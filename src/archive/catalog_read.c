/*
 * The catalog's reader: the sealed files and the open segment together, a job table by day
 * folder, and trigram queries evaluated per file (posting lists into bitmaps of members) and
 * per row for the open segment. A file that fails its checks is left out; a folder is only
 * answered from the catalog when its last recorded state matches the folder as it is and the
 * catalog holds as many rows for it as the folder held records then.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "catalog_format.h"
#include "macro.h"
#include "util.h"

struct rrow {
        struct catalog_row row;
        int file;              /* index in files, or -1: the open segment */
        uint32_t first_member; /* in its file (the open segment's: counted across it) */
        const unsigned char *tri;
        size_t tri_len;
        const unsigned char *members; /* the open segment's: its members' varints */
        size_t members_len;
};

struct rfolder {
        const char *path; /* NULL: a free slot */
        uint64_t hash;
        int64_t mtime_ns;
        uint32_t jobs;
        bool known, removed;
        bool listed; /* catalog_cover_folder(): covered whatever the mtime */
        uint32_t *rows;
        size_t n, cap;
};

struct catalog {
        struct cat_sealed *files;
        size_t n_files;
        unsigned char *seg_data;
        struct rrow *rows;
        size_t n_rows, cap_rows;
        struct rfolder *folders;
        size_t n_folders, n_slots;
        bool *may;
        /* After catalog_match: per file (and for the open segment) a bit per member, set
         * when a line starting in it may match. NULL: every member may. */
        uint64_t **bits;
        uint64_t *seg_bits;
        uint64_t seg_members;
};

static void closedirp(DIR **d)
{
        if (*d)
                (void) closedir(*d);
}

/* ---- sealed-file helpers ------------------------------------------------------------------ */

void cat_sealed_row(const struct cat_sealed *s, uint64_t j, struct catalog_row *ret,
                    uint32_t *ret_first_member)
{
        const unsigned char *p = s->map + s->off[CAT_S_JOBS] + j * CAT_JOB_SIZE;
        uint32_t flags = cat_get32(p + 56);

        *ret = (struct catalog_row){
                .folder = cat_sealed_string(s, cat_get32(p)),
                .key = cat_sealed_string(s, cat_get32(p + 4)),
                .tag = cat_sealed_string(s, cat_get32(p + 8)),
                .start_text = cat_sealed_string(s, cat_get32(p + 12)),
                .name = cat_sealed_string(s, cat_get32(p + 16)),
                .error_summary = cat_sealed_string(s, cat_get32(p + 20)),
                .start = (int64_t) cat_get64(p + 24),
                .log_bytes = (int64_t) cat_get64(p + 32),
                .gz_bytes = (int64_t) cat_get64(p + 40),
                .status = (int) cat_get32(p + 48),
                .exit_code = (int) cat_get32(p + 52),
                .has_exit_code = flags & CAT_F_EXIT,
                .has_error = flags & CAT_F_ERROR,
                .indexed = flags & CAT_F_INDEXED,
                .n_members = cat_get32(p + 64),
        };
        *ret_first_member = cat_get32(p + 60);
}

void cat_sealed_folder(const struct cat_sealed *s, uint64_t i, struct cat_folder_state *ret)
{
        const unsigned char *p = s->map + s->off[CAT_S_FOLDERS] + i * CAT_FOLDER_SIZE;

        *ret = (struct cat_folder_state){
                .path = cat_sealed_string(s, cat_get32(p)),
                .removed = cat_get32(p + 4) & CAT_F_REMOVED,
                .mtime_ns = (int64_t) cat_get64(p + 8),
                .jobs = cat_get32(p + 16),
        };
}

int cat_sealed_list(const struct cat_sealed *s, uint64_t i, uint32_t **buf, size_t *n, size_t *cap)
{
        size_t words = (s->n_units + 63) / 64;
        _cleanup_free_ uint64_t *bits = calloc(words ? words : 1, sizeof(*bits));
        int r;

        if (!bits)
                return -ENOMEM;
        r = cat_sealed_postings_or(s, i, bits);
        if (r < 0)
                return r;
        for (size_t w = 0; w < words; w++)
                for (uint64_t b = bits[w]; b; b &= b - 1) {
                        if (*n == *cap) {
                                size_t nc = *cap ? 2 * *cap : 1024;
                                uint32_t *p = reallocarray(*buf, nc, sizeof(*p));
                                if (!p)
                                        return -ENOMEM;
                                *buf = p;
                                *cap = nc;
                        }
                        (*buf)[(*n)++] = (uint32_t) (w * 64 + (unsigned) __builtin_ctzll(b));
                }
        return 0;
}

int cat_count_records(int dfd)
{
        _cleanup_(closedirp) DIR *d = NULL;
        int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), n = 0;

        if (fd < 0)
                return -errno;
        d = fdopendir(fd);
        if (!d) {
                (void) close(fd);
                return -ENOMEM;
        }
        for (struct dirent *de; (de = readdir(d));) {
                size_t len = strlen(de->d_name);

                /* As archive_scan's read_day chooses the records it reads. */
                if (de->d_name[0] == '.' || (de->d_type != DT_REG && de->d_type != DT_UNKNOWN))
                        continue;
                if (len <= 5 || strcmp(de->d_name + len - 5, ".json") != 0)
                        continue;
                if (len > 11 && strcmp(de->d_name + len - 11, ".error.json") == 0)
                        continue;
                n++;
        }
        return n;
}

/* ---- the job table ------------------------------------------------------------------------ */

static struct rfolder *folder_get(struct catalog *c, const char *path, bool create)
{
        uint64_t h = hash64(path, strlen(path));
        size_t i;

        if (create && 2 * (c->n_folders + 1) > c->n_slots) {
                size_t ns = c->n_slots ? 2 * c->n_slots : 1024;
                struct rfolder *t = calloc(ns, sizeof(*t));

                if (!t)
                        return NULL;
                for (size_t k = 0; k < c->n_slots; k++) {
                        struct rfolder *o = &c->folders[k];
                        if (!o->path)
                                continue;
                        for (i = o->hash & (ns - 1); t[i].path; i = (i + 1) & (ns - 1))
                                ;
                        t[i] = *o;
                }
                free(c->folders);
                c->folders = t;
                c->n_slots = ns;
        }
        if (c->n_slots == 0)
                return NULL;
        for (i = h & (c->n_slots - 1); c->folders[i].path; i = (i + 1) & (c->n_slots - 1))
                if (c->folders[i].hash == h && strcmp(c->folders[i].path, path) == 0)
                        return &c->folders[i];
        if (!create)
                return NULL;
        c->folders[i] = (struct rfolder){.path = path, .hash = h};
        c->n_folders++;
        return &c->folders[i];
}

static int add_row(struct catalog *c, const struct rrow *r)
{
        struct rfolder *f;

        if (!r->row.folder || !r->row.key)
                return 0;
        if (c->n_rows == c->cap_rows) {
                size_t cap = c->cap_rows ? 2 * c->cap_rows : 1024;
                struct rrow *n = reallocarray(c->rows, cap, sizeof(*n));
                if (!n)
                        return -ENOMEM;
                c->rows = n;
                c->cap_rows = cap;
        }
        f = folder_get(c, r->row.folder, true);
        if (!f)
                return -ENOMEM;
        if (f->n == f->cap) {
                size_t cap = f->cap ? 2 * f->cap : 8;
                uint32_t *n = reallocarray(f->rows, cap, sizeof(*n));
                if (!n)
                        return -ENOMEM;
                f->rows = n;
                f->cap = cap;
        }
        f->rows[f->n++] = (uint32_t) c->n_rows;
        c->rows[c->n_rows++] = *r;
        return 0;
}

static int set_folder(struct catalog *c, const struct cat_folder_state *st)
{
        struct rfolder *f;

        if (!st->path)
                return 0;
        f = folder_get(c, st->path, true);
        if (!f)
                return -ENOMEM;
        f->known = true;
        f->removed = st->removed;
        f->mtime_ns = st->mtime_ns;
        f->jobs = st->jobs;
        return 0;
}

static int seg_record(void *userdata, unsigned char type, const unsigned char *p, size_t len)
{
        struct catalog *c = userdata;
        struct cat_cursor cur = {.p = p + 1, .end = p + len};
        struct cat_folder_state st = {0};

        if (type == 'J') {
                struct cat_seg_job j;
                struct rrow r;

                if (cat_seg_job_parse(p, len, &j) < 0)
                        return 0;
                r = (struct rrow){.row = j.row,
                                  .file = -1,
                                  .first_member = (uint32_t) c->seg_members,
                                  .tri = j.tri,
                                  .tri_len = j.tri_len,
                                  .members = j.members,
                                  .members_len = j.members_len};
                if (c->seg_members + j.row.n_members > UINT32_MAX)
                        return 0;
                c->seg_members += j.row.n_members;
                return add_row(c, &r);
        }
        if (type != 'D' && type != 'R')
                return 0;
        st.path = cat_cursor_string(&cur);
        if (type == 'D') {
                st.mtime_ns = cat_unzigzag(cat_cursor_varint(&cur));
                st.jobs = (uint32_t) cat_cursor_varint(&cur);
        } else {
                st.removed = true;
        }
        return cur.bad ? 0 : set_folder(c, &st);
}

static int compare_refs(const void *x, const void *y)
{
        const struct cat_file_ref *a = x, *b = y;

        return a->first < b->first ? -1 : a->first > b->first;
}

int cat_list_sealed(int dfd, bool writer, struct cat_file_ref **ret, size_t *ret_n,
                    uint64_t *ret_max_last)
{
        _cleanup_(closedirp) DIR *d = NULL;
        struct cat_file_ref *refs = NULL;
        size_t n = 0, cap = 0, k = 0;
        uint64_t max_last = 0;
        int r, fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        if (fd < 0)
                return -errno;
        d = fdopendir(fd);
        if (!d) {
                r = -errno;
                (void) close(fd);
                return r;
        }
        for (struct dirent *de; (de = readdir(d));) {
                size_t len = strlen(de->d_name);
                struct cat_file_ref ref;

                if (writer && de->d_name[0] == '.' && len > 5 &&
                    strcmp(de->d_name + len - 4, ".tmp") == 0) {
                        (void) unlinkat(dfd, de->d_name, 0);
                        continue;
                }
                if (!cat_sealed_name(de->d_name, &ref.level, &ref.first, &ref.last) ||
                    len >= sizeof(ref.name))
                        continue;
                memcpy(ref.name, de->d_name, len + 1);
                if (n == cap) {
                        struct cat_file_ref *p;
                        cap = cap ? 2 * cap : 32;
                        p = reallocarray(refs, cap, sizeof(*p));
                        if (!p) {
                                free(refs);
                                return -ENOMEM;
                        }
                        refs = p;
                }
                refs[n++] = ref;
                if (ref.last > max_last)
                        max_last = ref.last;
        }
        for (size_t i = 0; i < n; i++) {
                bool inside = false;

                for (size_t j = 0; j < n && !inside; j++)
                        inside = j != i && refs[j].first <= refs[i].first &&
                                 refs[i].last <= refs[j].last &&
                                 (refs[j].first != refs[i].first || refs[j].last != refs[i].last ||
                                  refs[j].level > refs[i].level);
                if (inside) {
                        if (writer)
                                (void) unlinkat(dfd, refs[i].name, 0);
                        continue;
                }
                refs[k++] = refs[i];
        }
        if (k)
                qsort(refs, k, sizeof(*refs), compare_refs);
        *ret = refs;
        *ret_n = k;
        if (ret_max_last)
                *ret_max_last = max_last;
        return 0;
}

int catalog_open(int rootfd, struct catalog **ret, unsigned *ret_damaged)
{
        _cleanup_close_ int dfd = -1, segfd = -1;
        struct cat_file_ref *refs = NULL;
        size_t n = 0;
        uint64_t max_last = 0;
        unsigned damaged = 0;
        struct catalog *c;
        int r;

        dfd = openat(rootfd, CATALOG_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd < 0)
                return errno == ENOTDIR || errno == ELOOP ? -ENOENT : -errno;
        r = cat_list_sealed(dfd, false, &refs, &n, &max_last);
        if (r < 0)
                return r;
        c = calloc(1, sizeof(*c));
        if (!c || (n && !(c->files = calloc(n, sizeof(*c->files))))) {
                free(c);
                free(refs);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                struct cat_sealed *s = &c->files[c->n_files];

                r = cat_sealed_open(dfd, refs[i].name, s);
                if (r == -ENOMEM)
                        goto fail;
                if (r < 0 || s->first != refs[i].first || s->last != refs[i].last) {
                        if (r == 0)
                                cat_sealed_close(s);
                        damaged++;
                        continue;
                }
                c->n_files++;
        }
        free(refs);
        refs = NULL;
        for (size_t i = 0; i < c->n_files; i++) {
                struct cat_sealed *s = &c->files[i];

                for (uint64_t j = 0; j < s->n_jobs; j++) {
                        struct rrow row = {.file = (int) i};

                        cat_sealed_row(s, j, &row.row, &row.first_member);
                        r = add_row(c, &row);
                        if (r < 0)
                                goto fail;
                }
                for (uint64_t k = 0; k < s->n_folders; k++) {
                        struct cat_folder_state st;

                        cat_sealed_folder(s, k, &st);
                        r = set_folder(c, &st);
                        if (r < 0)
                                goto fail;
                }
        }
        segfd = openat(dfd, "open", O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
        if (segfd >= 0) {
                uint64_t id = 0, end;
                bool torn;
                struct stat st;

                /* Peek at the id first: a segment sealed already is not read twice. */
                if (fstat(segfd, &st) == 0 && S_ISREG(st.st_mode)) {
                        unsigned char h[CAT_HEADER_SIZE];

                        if (pread(segfd, h, sizeof(h), 0) == (ssize_t) sizeof(h) &&
                            cat_get64(h + 16) > max_last) {
                                r = cat_seg_read(segfd, &id, &end, &torn, &c->seg_data, seg_record,
                                                 c);
                                if (r == -ENOMEM)
                                        goto fail;
                                if (r < 0)
                                        damaged++;
                        }
                }
        }
        c->may = calloc(c->n_rows ? c->n_rows : 1, sizeof(*c->may));
        if (!c->may) {
                r = -ENOMEM;
                goto fail;
        }
        for (size_t i = 0; i < c->n_rows; i++)
                c->may[i] = true;
        if (ret_damaged)
                *ret_damaged = damaged;
        *ret = c;
        return 0;
fail:
        free(refs);
        catalog_free(c);
        return r;
}

static void free_bits(struct catalog *c)
{
        for (size_t i = 0; c->bits && i < c->n_files; i++)
                free(c->bits[i]);
        free(c->bits);
        free(c->seg_bits);
        c->bits = NULL;
        c->seg_bits = NULL;
}

void catalog_free(struct catalog *c)
{
        if (!c)
                return;
        for (size_t i = 0; i < c->n_files; i++)
                cat_sealed_close(&c->files[i]);
        free(c->files);
        for (size_t i = 0; i < c->n_slots; i++)
                free(c->folders[i].rows);
        free(c->folders);
        free(c->rows);
        free(c->seg_data);
        free(c->may);
        free_bits(c);
        free(c);
}

const uint32_t *catalog_folder_rows(const struct catalog *c, const char *folder, int64_t mtime_ns,
                                    size_t *ret_n)
{
        struct rfolder *f = folder_get((struct catalog *) c, folder, false);

        if (!f || !f->known || f->removed || (!f->listed && f->mtime_ns != mtime_ns) ||
            f->n != f->jobs)
                return NULL;
        *ret_n = f->n;
        return f->rows ? f->rows : (const uint32_t *) c; /* any non-NULL for no rows */
}

void catalog_row_get(const struct catalog *c, uint32_t i, struct catalog_row *ret)
{
        *ret = c->rows[i].row;
}

size_t catalog_n_rows(const struct catalog *c)
{
        return c ? c->n_rows : 0;
}

/* ---- queries ------------------------------------------------------------------------------ */

void catalog_query_free(struct catalog_query *q)
{
        if (!q)
                return;
        for (size_t i = 0; i < q->n_sub; i++)
                catalog_query_free(q->sub[i]);
        free(q->sub);
        free(q);
}

/* What evaluating q over a sealed file costs, in posting bytes: a trigram's list length (0
 * when it is absent: the list is empty), an AND its cheapest part (it stops when empty), an OR
 * the sum of its parts. For evaluating an AND's parts rarest first, as Cox and Zoekt do. */
static uint64_t cost_sealed(const struct cat_sealed *s, const struct catalog_query *q)
{
        uint64_t c = 0;
        int64_t e;

        switch (q->op) {
        case CATALOG_Q_ALL:
                return UINT64_MAX / 4;
        case CATALOG_Q_NONE:
                return 0;
        case CATALOG_Q_TRI:
                e = cat_sealed_find(s, q->tri);
                return e < 0 ? 0
                             : cat_get32(s->map + s->off[CAT_S_DICT] +
                                         (uint64_t) e * CAT_DICT_SIZE + 16);
        case CATALOG_Q_AND:
                c = UINT64_MAX / 4;
                for (size_t i = 0; i < q->n_sub; i++) {
                        uint64_t k = cost_sealed(s, q->sub[i]);
                        if (k < c)
                                c = k;
                }
                return c;
        case CATALOG_Q_OR:
                for (size_t i = 0; i < q->n_sub && c < UINT64_MAX / 4; i++)
                        c += cost_sealed(s, q->sub[i]);
                return c;
        }
        return UINT64_MAX / 4;
}

struct ranked {
        uint64_t cost;
        size_t i;
};

static int compare_ranked(const void *x, const void *y)
{
        const struct ranked *a = x, *b = y;

        if (a->cost != b->cost)
                return a->cost < b->cost ? -1 : 1;
        return a->i < b->i ? -1 : a->i > b->i;
}

/* q over a sealed file's members into bits (words words). -EBADMSG, -ENOMEM. */
static int eval_sealed(const struct cat_sealed *s, const struct catalog_query *q, uint64_t *bits,
                       size_t words)
{
        _cleanup_free_ uint64_t *tmp = NULL;
        _cleanup_free_ struct ranked *order = NULL;
        int64_t e;
        int r;

        switch (q->op) {
        case CATALOG_Q_ALL:
                memset(bits, 0xff, words * sizeof(*bits));
                return 0;
        case CATALOG_Q_NONE:
                memset(bits, 0, words * sizeof(*bits));
                return 0;
        case CATALOG_Q_TRI:
                memset(bits, 0, words * sizeof(*bits));
                e = cat_sealed_find(s, q->tri);
                return e < 0 ? 0 : cat_sealed_postings_or(s, (uint64_t) e, bits);
        case CATALOG_Q_AND:
        case CATALOG_Q_OR:
                tmp = malloc(words * sizeof(*tmp));
                order = calloc(q->n_sub ? q->n_sub : 1, sizeof(*order));
                if (!tmp || !order)
                        return -ENOMEM;
                for (size_t i = 0; i < q->n_sub; i++)
                        order[i] = (struct ranked){
                                q->op == CATALOG_Q_AND ? cost_sealed(s, q->sub[i]) : 0, i};
                /* An AND's parts rarest first: the first empty one ends it. */
                if (q->op == CATALOG_Q_AND && q->n_sub > 1)
                        qsort(order, q->n_sub, sizeof(*order), compare_ranked);
                memset(bits, q->op == CATALOG_Q_AND ? 0xff : 0, words * sizeof(*bits));
                for (size_t i = 0; i < q->n_sub; i++) {
                        bool any = false;

                        if (q->op == CATALOG_Q_AND && order[i].cost == 0 &&
                            q->sub[order[i].i]->op != CATALOG_Q_ALL) {
                                /* An absent trigram (or NONE): nothing can match. */
                                memset(bits, 0, words * sizeof(*bits));
                                break;
                        }
                        r = eval_sealed(s, q->sub[order[i].i], tmp, words);
                        if (r < 0)
                                return r;
                        for (size_t w = 0; w < words; w++) {
                                bits[w] = q->op == CATALOG_Q_AND ? bits[w] & tmp[w]
                                                                 : bits[w] | tmp[w];
                                any |= bits[w] != 0;
                        }
                        if (q->op == CATALOG_Q_AND && !any)
                                break; /* nothing left to intersect */
                }
                return 0;
        }
        return -EINVAL;
}

/* q over one member's sorted trigrams. */
static bool eval_list(const uint32_t *t, size_t n, const struct catalog_query *q)
{
        switch (q->op) {
        case CATALOG_Q_ALL:
                return true;
        case CATALOG_Q_NONE:
                return false;
        case CATALOG_Q_TRI: {
                size_t lo = 0, hi = n;
                while (lo < hi) {
                        size_t mid = lo + (hi - lo) / 2;
                        if (t[mid] == q->tri)
                                return true;
                        if (t[mid] < q->tri)
                                lo = mid + 1;
                        else
                                hi = mid;
                }
                return false;
        }
        case CATALOG_Q_AND:
                for (size_t i = 0; i < q->n_sub; i++)
                        if (!eval_list(t, n, q->sub[i]))
                                return false;
                return true;
        case CATALOG_Q_OR:
                for (size_t i = 0; i < q->n_sub; i++)
                        if (eval_list(t, n, q->sub[i]))
                                return true;
                return false;
        }
        return true;
}

static void set_bit(uint64_t *bits, uint64_t k)
{
        bits[k / 64] |= UINT64_C(1) << (k % 64);
}

/* A segment row: which of its members may match, into bits (from its first_member). Bad
 * data: all may. Returns whether any may. */
static bool eval_seg_row(const struct rrow *r, const struct catalog_query *q, uint64_t *bits,
                         uint32_t **buf, size_t *cap)
{
        const unsigned char *p = r->tri, *end = r->tri + r->tri_len;
        bool any = false;

        for (uint32_t m = 0; m < r->row.n_members; m++) {
                uint64_t count, d, v = 0;
                size_t k = cat_varint_get(p, end, &count);

                if (k == 0 || count > r->tri_len)
                        goto bad;
                p += k;
                if (count > *cap) {
                        uint32_t *nb = reallocarray(*buf, count, sizeof(*nb));
                        if (!nb)
                                goto bad;
                        *buf = nb;
                        *cap = count;
                }
                for (uint64_t i = 0; i < count; i++) {
                        k = cat_varint_get(p, end, &d);
                        if (k == 0)
                                goto bad;
                        p += k;
                        v += d;
                        (*buf)[i] = (uint32_t) v;
                }
                if (eval_list(*buf, count, q)) {
                        set_bit(bits, (uint64_t) r->first_member + m);
                        any = true;
                }
        }
        return any;
bad:
        for (uint32_t m = 0; m < r->row.n_members; m++)
                set_bit(bits, (uint64_t) r->first_member + m);
        return true;
}

int catalog_match(struct catalog *c, const struct catalog_query *q)
{
        uint32_t *buf = NULL;
        size_t cap = 0;

        free_bits(c);
        c->bits = calloc(c->n_files ? c->n_files : 1, sizeof(*c->bits));
        c->seg_bits = calloc((c->seg_members + 63) / 64 + 1, sizeof(uint64_t));
        if (!c->bits || !c->seg_bits) {
                free_bits(c);
                return -ENOMEM;
        }
        for (size_t i = 0; i < c->n_files; i++) {
                const struct cat_sealed *s = &c->files[i];
                size_t words = (s->n_members + 63) / 64, uwords = (s->n_units + 63) / 64;
                uint64_t *ubits = calloc(uwords ? uwords : 1, sizeof(uint64_t));

                c->bits[i] = calloc(words ? words : 1, sizeof(uint64_t));
                if (!c->bits[i] || !ubits) {
                        free(ubits);
                        free_bits(c);
                        return -ENOMEM;
                }
                /* A damaged list: every job of the file may match. */
                if (eval_sealed(s, q, ubits, uwords) < 0) {
                        memset(c->bits[i], 0xff, (words ? words : 1) * sizeof(uint64_t));
                        free(ubits);
                        continue;
                }
                /* Every member of a unit that may match may. */
                for (size_t w = 0; w < uwords; w++)
                        for (uint64_t b = ubits[w]; b; b &= b - 1) {
                                uint64_t u = w * 64 + (unsigned) __builtin_ctzll(b);

                                for (uint64_t k = cat_sealed_unit_first(s, u),
                                              e = cat_sealed_unit_first(s, u + 1);
                                     k < e; k++)
                                        set_bit(c->bits[i], k);
                        }
                free(ubits);
        }
        for (size_t i = 0; i < c->n_rows; i++) {
                const struct rrow *r = &c->rows[i];
                bool may = !r->row.indexed;

                if (may) {
                } else if (r->file < 0) {
                        may = eval_seg_row(r, q, c->seg_bits, &buf, &cap);
                } else {
                        for (uint32_t m = 0; m < r->row.n_members && !may; m++) {
                                uint64_t k = (uint64_t) r->first_member + m;
                                may = c->bits[r->file][k / 64] >> (k % 64) & 1;
                        }
                }
                c->may[i] = may;
        }
        free(buf);
        return 0;
}

bool catalog_row_may_match(const struct catalog *c, uint32_t i)
{
        return i >= c->n_rows || c->may[i];
}

void cat_sealed_member(const struct cat_sealed *s, uint64_t k, struct catalog_member *ret)
{
        const unsigned char *p = s->map + s->off[CAT_S_MEMBERS] + k * CAT_MEMBER_SIZE;

        *ret = (struct catalog_member){
                .offset = cat_get64(p), .size = cat_get32(p + 8), .usize = cat_get32(p + 12)};
        cat_set_lead(ret, cat_get64(p + 16));
}

int catalog_row_members(const struct catalog *c, uint32_t i, struct catalog_member **ret,
                        size_t *ret_n)
{
        const struct rrow *r;
        const uint64_t *bits;
        struct catalog_member *m;
        uint32_t n;

        if (i >= c->n_rows || !c->rows[i].row.indexed)
                return -ENOENT;
        r = &c->rows[i];
        n = r->row.n_members;
        m = calloc(n ? n : 1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        if (r->file >= 0) {
                for (uint32_t k = 0; k < n; k++)
                        cat_sealed_member(&c->files[r->file], (uint64_t) r->first_member + k,
                                          &m[k]);
                bits = c->bits ? c->bits[r->file] : NULL;
        } else {
                struct cat_cursor cur = {.p = r->members, .end = r->members + r->members_len};

                for (uint32_t k = 0; k < n; k++) {
                        m[k].offset = cat_cursor_varint(&cur);
                        m[k].size = (uint32_t) cat_cursor_varint(&cur);
                        m[k].usize = (uint32_t) cat_cursor_varint(&cur);
                        cat_set_lead(&m[k], cat_cursor_varint(&cur));
                }
                if (cur.bad) {
                        free(m);
                        return -EBADMSG;
                }
                bits = c->seg_bits;
        }
        for (uint32_t k = 0; k < n; k++) {
                uint64_t b = (uint64_t) r->first_member + k;
                m[k].may = !bits || (bits[b / 64] >> (b % 64) & 1);
        }
        *ret = m;
        *ret_n = n;
        return 0;
}

/* ---- checks and sizes ----------------------------------------------------------------------- */

static int walk_files(int rootfd, unsigned *ret_damaged, struct catalog_stats *st)
{
        _cleanup_close_ int dfd = -1, segfd = -1;
        _cleanup_(closedirp) DIR *d = NULL;
        unsigned damaged = 0;
        int fd;

        dfd = openat(rootfd, CATALOG_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd < 0)
                return -errno;
        fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        d = fdopendir(fd);
        if (!d) {
                (void) close(fd);
                return -ENOMEM;
        }
        for (struct dirent *de; (de = readdir(d));) {
                struct cat_sealed s;
                unsigned level;
                uint64_t first, last;

                if (!cat_sealed_name(de->d_name, &level, &first, &last))
                        continue;
                if (cat_sealed_open(dfd, de->d_name, &s) < 0) {
                        damaged++;
                        continue;
                }
                st->files++;
                st->bytes += s.size;
                st->jobs += s.n_jobs;
                st->members += s.n_members;
                st->units += s.n_units;
                st->trigrams += s.n_tri;
                for (uint64_t i = 0; i < s.n_tri; i++) {
                        uint32_t *buf = NULL;
                        size_t n = 0, cap = 0;

                        if (cat_sealed_list(&s, i, &buf, &n, &cap) < 0) {
                                damaged++;
                                free(buf);
                                break;
                        }
                        st->postings += n;
                        free(buf);
                }
                cat_sealed_close(&s);
        }
        segfd = openat(dfd, "open", O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
        if (segfd >= 0) {
                unsigned char *data = NULL;
                uint64_t id, end;
                bool torn = false;
                struct stat sst;
                size_t jobs = 0;
                int r = cat_seg_read(segfd, &id, &end, &torn, &data, NULL, NULL);

                (void) jobs;
                free(data);
                if (r < 0 || torn)
                        damaged++;
                if (fstat(segfd, &sst) == 0) {
                        st->files++;
                        st->bytes += (uint64_t) sst.st_size;
                }
        }
        *ret_damaged = damaged;
        return damaged ? -EBADMSG : 0;
}

int catalog_verify(int rootfd, unsigned *ret_damaged)
{
        struct catalog_stats st = {0};
        unsigned damaged = 0;
        int r = walk_files(rootfd, &damaged, &st);

        if (ret_damaged)
                *ret_damaged = damaged;
        return r;
}

int catalog_stats(int rootfd, struct catalog_stats *ret)
{
        unsigned damaged = 0;
        int r;

        *ret = (struct catalog_stats){0};
        r = walk_files(rootfd, &damaged, ret);
        return r == -EBADMSG ? 0 : r;
}

/* ---- a catalog of copies of an object store's files (s3_mirror.c) -------------------------- */

int catalog_open_dirs(const int *dfds, size_t n_dirs, struct catalog **ret, unsigned *ret_damaged)
{
        unsigned damaged = 0;
        struct catalog *c;
        int r = 0;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        for (size_t d = 0; d < n_dirs; d++) {
                struct cat_file_ref *refs = NULL;
                struct cat_sealed *files;
                size_t n = 0;

                /* Each writer's files on their own: the merge rule holds within one writer. */
                r = cat_list_sealed(dfds[d], false, &refs, &n, NULL);
                if (r < 0)
                        goto fail;
                files = reallocarray(c->files, c->n_files + n + 1, sizeof(*files));
                if (!files) {
                        free(refs);
                        r = -ENOMEM;
                        goto fail;
                }
                c->files = files;
                for (size_t i = 0; i < n; i++) {
                        struct cat_sealed *s = &c->files[c->n_files];

                        r = cat_sealed_open(dfds[d], refs[i].name, s);
                        if (r == -ENOMEM) {
                                free(refs);
                                goto fail;
                        }
                        if (r < 0 || s->first != refs[i].first || s->last != refs[i].last) {
                                if (r == 0)
                                        cat_sealed_close(s);
                                damaged++;
                                continue;
                        }
                        c->n_files++;
                }
                free(refs);
        }
        for (size_t i = 0; i < c->n_files; i++) {
                struct cat_sealed *s = &c->files[i];

                for (uint64_t j = 0; j < s->n_jobs; j++) {
                        struct rrow row = {.file = (int) i};

                        cat_sealed_row(s, j, &row.row, &row.first_member);
                        r = add_row(c, &row);
                        if (r < 0)
                                goto fail;
                }
                for (uint64_t k = 0; k < s->n_folders; k++) {
                        struct cat_folder_state st;

                        cat_sealed_folder(s, k, &st);
                        r = set_folder(c, &st);
                        if (r < 0)
                                goto fail;
                }
        }
        c->may = calloc(c->n_rows ? c->n_rows : 1, sizeof(*c->may));
        if (!c->may) {
                r = -ENOMEM;
                goto fail;
        }
        for (size_t i = 0; i < c->n_rows; i++)
                c->may[i] = true;
        if (ret_damaged)
                *ret_damaged = damaged;
        *ret = c;
        return 0;
fail:
        catalog_free(c);
        return r;
}

static int compare_strp(const void *x, const void *y)
{
        return strcmp(*(const char *const *) x, *(const char *const *) y);
}

int catalog_cover_folder(struct catalog *c, const char *folder, const char *const *keys, size_t n)
{
        struct rfolder *f = folder_get(c, folder, false);
        bool *used;

        if (!f || f->removed || f->n != n)
                return 0;
        used = calloc(n ? n : 1, sizeof(*used));
        if (!used)
                return -ENOMEM;
        for (size_t i = 0; i < f->n; i++) {
                const char *key = c->rows[f->rows[i]].row.key;
                const char *const *k =
                        key ? bsearch(&key, keys, n, sizeof(*keys), compare_strp) : NULL;
                if (!k || used[k - keys]) {
                        free(used); /* a job it lacks, or one twice (two writers' rows) */
                        return 0;
                }
                used[k - keys] = true;
        }
        free(used);
        f->known = true;
        f->listed = true;
        f->jobs = (uint32_t) f->n;
        return 1;
}

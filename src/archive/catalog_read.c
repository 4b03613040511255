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

/* A row of the open segment (a sealed file's rows are read from its map when asked for). */
struct rrow {
        struct catalog_row row;
        uint32_t first_member; /* counted across the segment */
        uint64_t tri_off;      /* its trigrams in the segment file, read when matched */
        uint32_t tri_len, tri_crc;
        const unsigned char *members; /* its members' varints */
        size_t members_len;
        uint32_t prev; /* the segment's row before it in its folder, or NO_REF */
};

/* What a match and a member lookup need of a sealed file's row, kept from the one pass over
 * its jobs at open (so that neither touches the jobs' pages again). */
struct rmeta {
        uint32_t first_member;
        uint32_t n_members : 31, indexed : 1;
};

/* A sealed file's rows by folder: the rows of local folder l are rows[first[l]..first[l+1]),
 * in row order. Local folders are the file's folder entries, then any folder its jobs name
 * that has no entry. */
struct rfile {
        struct rmeta *meta;
        uint32_t *first, *rows;
        uint32_t n_local;
};

/* Where a folder's rows are in a sealed file, chained per folder. */
struct rref {
        uint32_t file, local, next;
};

#define NO_REF UINT32_MAX

/* A folder of the catalog (a year's archive has a few hundred thousand): its key (folder_key:
 * the content folder's number and the date), not its path. */
struct rfolder {
        uint64_t key;
        int64_t mtime_ns;
        uint32_t jobs;     /* the folder's jobs when its state was recorded */
        uint32_t n;        /* the rows the catalog has of it, all files and the segment */
        uint32_t refs;     /* the first rref, or NO_REF */
        uint32_t seg_last; /* its last row of the segment, or NO_REF */
        bool known, removed;
        bool listed; /* catalog_cover_folder(): covered whatever the mtime */
};

/* A content folder's name (in the arena, not NUL-terminated). */
struct rguid {
        const char *name;
        uint32_t len, hash;
};

/* Strings that live as long as the catalog: blocks, the newest first. */
struct arena {
        struct arena *next;
        size_t used, size;
        char data[];
};

struct catalog {
        struct cat_sealed *files;
        struct rfile *rfiles;
        size_t n_files;
        /* Row ids: file i's rows are base[i].., the segment's base[n_files].. */
        uint64_t *base;
        int seg_fd; /* the open segment, for its rows' trigrams (-1: none) */
        struct rrow *seg;
        size_t n_seg, cap_seg;
        size_t n_rows;
        struct rfolder *folders;
        size_t n_folders, cap_folders;
        uint32_t *slots; /* folder index + 1, 0: free */
        size_t n_slots;
        struct rguid *guids;
        uint32_t *guid_slots; /* guid index + 1, 0: free */
        size_t n_guids, n_guid_slots;
        struct rref *refs;
        size_t n_refs, cap_refs;
        struct arena *arena;
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

static char *arena_alloc(struct catalog *c, size_t len)
{
        struct arena *a = c->arena;
        char *p;

        if (!a || a->size - a->used < len) {
                size_t size = len > 65536 ? len : 65536;

                a = malloc(sizeof(*a) + size);
                if (!a)
                        return NULL;
                *a = (struct arena){.next = c->arena, .size = size};
                c->arena = a;
        }
        p = a->data + a->used;
        a->used += len;
        return p;
}

/* ---- folders: "<guid>/YYYY/MM/DD" as a content folder's number and a date ---------------- */

static uint32_t mix32(uint64_t k)
{
        k ^= k >> 33;
        k *= UINT64_C(0xff51afd7ed558ccd);
        k ^= k >> 33;
        return (uint32_t) k;
}

/* The number of content folder name[0..len) (added when new, with create): 0 and *ret, -ENOENT
 * (not there), -ENOMEM. */
static int guid_get(struct catalog *c, const char *name, size_t len, bool create, uint32_t *ret)
{
        uint32_t h = (uint32_t) hash64(name, len);
        size_t i;

        if (create && 2 * (c->n_guids + 1) > c->n_guid_slots) {
                size_t ns = c->n_guid_slots ? 2 * c->n_guid_slots : 256;
                uint32_t *t = calloc(ns, sizeof(*t));
                struct rguid *g = reallocarray(c->guids, ns / 2, sizeof(*g));

                if (g)
                        c->guids = g;
                if (!t || !g) {
                        free(t);
                        return -ENOMEM;
                }
                for (size_t k = 0; k < c->n_guids; k++) {
                        for (i = c->guids[k].hash & (ns - 1); t[i]; i = (i + 1) & (ns - 1))
                                ;
                        t[i] = (uint32_t) k + 1;
                }
                free(c->guid_slots);
                c->guid_slots = t;
                c->n_guid_slots = ns;
        }
        if (c->n_guid_slots == 0)
                return -ENOENT;
        for (i = h & (c->n_guid_slots - 1); c->guid_slots[i]; i = (i + 1) & (c->n_guid_slots - 1)) {
                const struct rguid *g = &c->guids[c->guid_slots[i] - 1];
                if (g->hash == h && g->len == len && memcmp(g->name, name, len) == 0) {
                        *ret = c->guid_slots[i] - 1;
                        return 0;
                }
        }
        if (!create)
                return -ENOENT;
        {
                char *copy = arena_alloc(c, len);
                if (!copy)
                        return -ENOMEM;
                memcpy(copy, name, len);
                c->guids[c->n_guids] = (struct rguid){copy, (uint32_t) len, h};
        }
        c->guid_slots[i] = (uint32_t) ++c->n_guids;
        *ret = (uint32_t) c->n_guids - 1;
        return 0;
}

static bool digits(const char *s, size_t n, unsigned *ret)
{
        unsigned v = 0;

        for (size_t i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return false;
                v = v * 10 + (unsigned) (s[i] - '0');
        }
        *ret = v;
        return true;
}

/*
 * The key of folder path: its content folder's number << 32 | year << 9 | month << 5 | day.
 * 0 and *ret; -EINVAL when the path is not "<name>/YYYY/MM/DD" (a folder no scan reads, as
 * archive_scan names only those), -ENOENT (its content folder is not there, without create),
 * -ENOMEM.
 */
static int folder_key(struct catalog *c, const char *path, bool create, uint64_t *ret)
{
        const char *slash = strchr(path, '/');
        unsigned y, m, d;
        uint32_t g;
        int r;

        if (!slash || slash == path || strlen(slash) != 11 || slash[5] != '/' || slash[8] != '/' ||
            !digits(slash + 1, 4, &y) || !digits(slash + 6, 2, &m) || !digits(slash + 9, 2, &d))
                return -EINVAL;
        r = guid_get(c, path, (size_t) (slash - path), create, &g);
        if (r < 0)
                return r;
        *ret = (uint64_t) g << 32 | y << 9 | m << 5 | d;
        return 0;
}

static struct rfolder *folder_find(const struct catalog *c, uint64_t key)
{
        if (c->n_slots == 0)
                return NULL;
        for (size_t i = mix32(key) & (c->n_slots - 1); c->slots[i];
             i = (i + 1) & (c->n_slots - 1)) {
                struct rfolder *f = &c->folders[c->slots[i] - 1];
                if (f->key == key)
                        return f;
        }
        return NULL;
}

/* The catalog's folder of path (const: never adding one), or NULL. */
static struct rfolder *folder_lookup(const struct catalog *c, const char *path)
{
        uint64_t key;

        return folder_key((struct catalog *) c, path, false, &key) < 0 ? NULL : folder_find(c, key);
}

/* Room for n more folders in the table (grown to what is needed: a file's folders are added
 * at once). -ENOMEM. */
static int folder_reserve(struct catalog *c, size_t n)
{
        size_t need = c->n_folders + n, i;

        if (need >= UINT32_MAX / 4)
                return -ENOMEM;
        if (2 * need > c->n_slots) {
                size_t ns = c->n_slots ? c->n_slots : 1024;
                uint32_t *t;

                while (ns < 2 * need)
                        ns *= 2;
                t = calloc(ns, sizeof(*t));
                if (!t)
                        return -ENOMEM;
                for (size_t k = 0; k < c->n_folders; k++) {
                        for (i = mix32(c->folders[k].key) & (ns - 1); t[i]; i = (i + 1) & (ns - 1))
                                ;
                        t[i] = (uint32_t) k + 1;
                }
                free(c->slots);
                c->slots = t;
                c->n_slots = ns;
        }
        if (need > c->cap_folders) {
                size_t cap = need > 1024 ? need : 1024;
                struct rfolder *f = reallocarray(c->folders, cap, sizeof(*f));

                if (!f)
                        return -ENOMEM;
                c->folders = f;
                c->cap_folders = cap;
        }
        return 0;
}

/* The folder path (its index), added when new: the index, -EINVAL (not a day folder's path:
 * left out), -ENOMEM. */
static int64_t folder_get(struct catalog *c, const char *path)
{
        struct rfolder *f;
        uint64_t key;
        size_t i;
        int r = folder_key(c, path, true, &key);

        if (r < 0)
                return r;
        f = folder_find(c, key);
        if (f)
                return f - c->folders;
        /* One at a time (the segment's): the table grows by half (folder_reserve() keeps
         * twice its room in slots). */
        if (c->n_folders == c->cap_folders && folder_reserve(c, c->n_folders / 2 + 1) < 0)
                return -ENOMEM;
        c->folders[c->n_folders] = (struct rfolder){.key = key, .refs = NO_REF, .seg_last = NO_REF};
        for (i = mix32(key) & (c->n_slots - 1); c->slots[i]; i = (i + 1) & (c->n_slots - 1))
                ;
        c->slots[i] = (uint32_t) ++c->n_folders;
        return (int64_t) c->n_folders - 1;
}

static void folder_state(struct rfolder *f, const struct cat_folder_state *st)
{
        f->known = true;
        f->removed = st->removed;
        f->mtime_ns = st->mtime_ns;
        f->jobs = st->jobs;
}

static int set_folder(struct catalog *c, const struct cat_folder_state *st)
{
        int64_t k;

        if (!st->path)
                return 0;
        k = folder_get(c, st->path);
        if (k < 0)
                return k == -EINVAL ? 0 : (int) k;
        folder_state(&c->folders[k], st);
        return 0;
}

/* The local folder of a row's folder string (offset off), through a small open-addressing
 * table of string offsets. */
struct local_map {
        uint32_t *off, *idx;
        size_t n_slots;
};

static uint32_t *local_slot(struct local_map *m, uint32_t off)
{
        size_t i = (size_t) (off * UINT32_C(2654435761)) & (m->n_slots - 1);

        while (m->off[i] != CAT_NONE && m->off[i] != off)
                i = (i + 1) & (m->n_slots - 1);
        return &m->idx[i];
}

/*
 * Indexes sealed file i: its rows by folder, each local folder joined to the catalog's
 * folder of that path, and its folder states (files are indexed oldest first, so a newer
 * state wins). One pass over the jobs; the jobs', folders' and strings' pages are given back
 * after it.
 */
static int index_file(struct catalog *c, size_t i)
{
        const struct cat_sealed *s = &c->files[i];
        struct rfile *rf = &c->rfiles[i];
        struct local_map m = {0};
        uint32_t *local_off = NULL, *count = NULL, *g_of = NULL;
        size_t n_local = 0, cap_local;
        int r = -ENOMEM;

        /* At most a local folder per folder entry and one per row (a file written in S3 mode
         * has no folder states). */
        cap_local = s->n_folders + s->n_jobs;
        for (m.n_slots = 64; m.n_slots < 2 * cap_local; m.n_slots *= 2)
                ;
        m.off = malloc(m.n_slots * sizeof(*m.off));
        m.idx = malloc(m.n_slots * sizeof(*m.idx));
        local_off = malloc((cap_local ? cap_local : 1) * sizeof(*local_off));
        rf->meta = calloc(s->n_jobs ? s->n_jobs : 1, sizeof(*rf->meta));
        rf->rows = malloc((s->n_jobs ? s->n_jobs : 1) * sizeof(*rf->rows));
        if (!m.off || !m.idx || !local_off || !rf->meta || !rf->rows)
                goto out;
        memset(m.off, 0xff, m.n_slots * sizeof(*m.off));
        for (uint64_t k = 0; k < s->n_folders; k++) {
                uint32_t off = cat_get32(s->map + s->off[CAT_S_FOLDERS] + k * CAT_FOLDER_SIZE);
                uint32_t *slot;

                if (!cat_sealed_string(s, off))
                        continue; /* (CAT_NONE among them: the table's free mark) */
                slot = local_slot(&m, off);
                if (m.off[slot - m.idx] == CAT_NONE) {
                        m.off[slot - m.idx] = off;
                        *slot = (uint32_t) n_local;
                        local_off[n_local++] = off;
                }
        }
        /* The rows' folders (count[l]: rows of local folder l, then its start). */
        for (uint64_t j = 0; j < s->n_jobs; j++) {
                const unsigned char *p = s->map + s->off[CAT_S_JOBS] + j * CAT_JOB_SIZE;
                uint32_t off = cat_get32(p), *slot;

                rf->meta[j] = (struct rmeta){.first_member = cat_get32(p + 60),
                                             .n_members = cat_get32(p + 64) & INT32_MAX,
                                             .indexed = (cat_get32(p + 56) & CAT_F_INDEXED) != 0};
                if (!cat_sealed_string(s, off) || !cat_sealed_string(s, cat_get32(p + 4))) {
                        rf->rows[j] = UINT32_MAX; /* no folder or key: not a job it can give */
                        continue;
                }
                slot = local_slot(&m, off);
                if (m.off[slot - m.idx] == CAT_NONE) {
                        m.off[slot - m.idx] = off;
                        *slot = (uint32_t) n_local;
                        local_off[n_local++] = off;
                }
                rf->rows[j] = *slot; /* its local folder, for now */
        }
        cat_drop_pages(s->map + s->off[CAT_S_JOBS], s->len[CAT_S_JOBS]);
        count = calloc(n_local + 1, sizeof(*count));
        rf->first = calloc(n_local + 1, sizeof(*rf->first));
        if (!count || !rf->first)
                goto out;
        for (uint64_t j = 0; j < s->n_jobs; j++)
                if (rf->rows[j] != UINT32_MAX)
                        count[rf->rows[j]]++;
        for (size_t l = 0; l < n_local; l++)
                rf->first[l + 1] = rf->first[l] + count[l];
        memcpy(count, rf->first, n_local * sizeof(*count));
        {
                /* Rows in place of their folders: a second array would double the peak. */
                uint32_t *rows = malloc((s->n_jobs ? s->n_jobs : 1) * sizeof(*rows));
                if (!rows)
                        goto out;
                for (uint64_t j = 0; j < s->n_jobs; j++)
                        if (rf->rows[j] != UINT32_MAX)
                                rows[count[rf->rows[j]]++] = (uint32_t) j;
                free(rf->rows);
                rf->rows = rows;
        }
        rf->n_local = (uint32_t) n_local;
        if (folder_reserve(c, n_local) < 0 || !(g_of = malloc((n_local + 1) * sizeof(*g_of))))
                goto out;
        if (c->n_refs + n_local > c->cap_refs) {
                size_t cap = c->cap_refs ? 2 * c->cap_refs : 1024;
                struct rref *n;

                if (cap < c->n_refs + n_local)
                        cap = c->n_refs + n_local;
                n = reallocarray(c->refs, cap, sizeof(*n));
                if (!n)
                        goto out;
                c->refs = n;
                c->cap_refs = cap;
        }
        for (size_t l = 0; l < n_local; l++) {
                int64_t g = folder_get(c, cat_sealed_string(s, local_off[l]));
                struct rfolder *f;

                g_of[l] = NO_REF;
                if (g == -EINVAL)
                        continue; /* not a day folder's path: its rows are never asked for */
                if (g < 0)
                        goto out;
                f = &c->folders[g];
                c->refs[c->n_refs] = (struct rref){(uint32_t) i, (uint32_t) l, f->refs};
                f->refs = (uint32_t) c->n_refs++;
                f->n += rf->first[l + 1] - rf->first[l];
                g_of[l] = (uint32_t) g;
        }
        /* The file's folder states (a newer file's come later and win). */
        for (uint64_t k = 0; k < s->n_folders; k++) {
                struct cat_folder_state st;
                uint32_t off = cat_get32(s->map + s->off[CAT_S_FOLDERS] + k * CAT_FOLDER_SIZE);
                uint32_t g;

                cat_sealed_folder(s, k, &st);
                if (st.path && (g = g_of[*local_slot(&m, off)]) != NO_REF)
                        folder_state(&c->folders[g], &st);
        }
        cat_drop_pages(s->map + s->off[CAT_S_FOLDERS], s->len[CAT_S_FOLDERS]);
        cat_drop_pages(s->map + s->off[CAT_S_STRINGS], s->len[CAT_S_STRINGS]);
        r = 0;
out:
        free(m.off);
        free(m.idx);
        free(local_off);
        free(count);
        free(g_of);
        return r;
}

static int add_seg_row(struct catalog *c, const struct rrow *r)
{
        struct rfolder *f;
        int64_t g;

        if (!r->row.folder || !r->row.key)
                return 0;
        if (c->n_seg == c->cap_seg) {
                size_t cap = c->cap_seg ? 2 * c->cap_seg : 1024;
                struct rrow *n = reallocarray(c->seg, cap, sizeof(*n));
                if (!n)
                        return -ENOMEM;
                c->seg = n;
                c->cap_seg = cap;
        }
        g = folder_get(c, r->row.folder);
        if (g < 0)
                return g == -EINVAL ? 0 : (int) g;
        f = &c->folders[g];
        c->seg[c->n_seg] = *r;
        c->seg[c->n_seg].prev = f->seg_last;
        f->seg_last = (uint32_t) c->n_seg++;
        f->n++;
        return 0;
}

/* A pointer into a record's payload p, moved to its copy q. */
static const char *moved(const char *s, const unsigned char *p, const char *q)
{
        return s ? q + (s - (const char *) p) : NULL;
}

/* A record of the open segment, read a record at a time: a job's row is kept (its strings and
 * members copied), its trigrams are left in the file (their place and CRC kept). */
static int seg_record(void *userdata, unsigned char type, const unsigned char *p, size_t len,
                      uint64_t offset)
{
        struct catalog *c = userdata;
        struct cat_cursor cur = {.p = p + 1, .end = p + len};
        struct cat_folder_state st = {0};

        if (type == 'J') {
                struct cat_seg_job j;
                struct rrow r;
                size_t keep;
                char *q;

                if (cat_seg_job_parse(p, len, &j) < 0 || j.tri_len > UINT32_MAX)
                        return 0;
                keep = j.tri ? (size_t) (j.tri - p) : len;
                q = arena_alloc(c, keep);
                if (!q)
                        return -ENOMEM;
                memcpy(q, p, keep);
                j.row.folder = moved(j.row.folder, p, q);
                j.row.key = moved(j.row.key, p, q);
                j.row.tag = moved(j.row.tag, p, q);
                j.row.start_text = moved(j.row.start_text, p, q);
                j.row.name = moved(j.row.name, p, q);
                j.row.error_summary = moved(j.row.error_summary, p, q);
                r = (struct rrow){
                        .row = j.row,
                        .first_member = (uint32_t) c->seg_members,
                        .tri_off = j.tri ? offset + (uint64_t) (j.tri - p) : 0,
                        .tri_len = (uint32_t) j.tri_len,
                        .tri_crc = j.tri ? cat_crc32(0, j.tri, j.tri_len) : 0,
                        .members = (const unsigned char *) moved((const char *) j.members, p, q),
                        .members_len = j.members_len};
                if (c->seg_members + j.row.n_members > UINT32_MAX)
                        return 0;
                c->seg_members += j.row.n_members;
                return add_seg_row(c, &r);
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

static struct catalog *catalog_new(void)
{
        struct catalog *c = calloc(1, sizeof(*c));

        if (c)
                c->seg_fd = -1;
        return c;
}

/* Opens the sealed files refs of folder dfd into c->files (a damaged one is counted and left
 * out). -ENOMEM. */
static int open_files(struct catalog *c, int dfd, const struct cat_file_ref *refs, size_t n,
                      unsigned *damaged)
{
        struct cat_sealed *files = reallocarray(c->files, c->n_files + n + 1, sizeof(*files));

        if (!files)
                return -ENOMEM;
        c->files = files;
        for (size_t i = 0; i < n; i++) {
                struct cat_sealed *s = &c->files[c->n_files];
                int r = cat_sealed_open(dfd, refs[i].name, s);

                if (r == -ENOMEM)
                        return r;
                if (r < 0 || s->first != refs[i].first || s->last != refs[i].last) {
                        if (r == 0)
                                cat_sealed_close(s);
                        (*damaged)++;
                        continue;
                }
                c->n_files++;
        }
        return 0;
}

/* Indexes the files opened, numbers the rows, and reads the open segment segfd (-1: none)
 * when it comes after max_last. -ENOMEM. */
static int index_files(struct catalog *c, int segfd, uint64_t max_last, unsigned *damaged)
{
        int r;

        c->rfiles = calloc(c->n_files + 1, sizeof(*c->rfiles));
        c->base = calloc(c->n_files + 1, sizeof(*c->base));
        if (!c->rfiles || !c->base)
                return -ENOMEM;
        for (size_t i = 0; i < c->n_files; i++) {
                /* Row ids are 32 bits: a catalog of 4 billion jobs is not read further. */
                if (c->base[i] + c->files[i].n_jobs >= UINT32_MAX / 2) {
                        for (size_t k = i; k < c->n_files; k++)
                                cat_sealed_close(&c->files[k]);
                        *damaged += (unsigned) (c->n_files - i);
                        c->n_files = i;
                        break;
                }
                r = index_file(c, i);
                if (r < 0)
                        return r;
                c->base[i + 1] = c->base[i] + c->files[i].n_jobs;
        }
        c->n_rows = c->base[c->n_files];
        if (segfd >= 0) {
                uint64_t id = 0, end;
                bool torn;
                struct stat st;

                /* Peek at the id first: a segment sealed already is not read twice. */
                if (fstat(segfd, &st) == 0 && S_ISREG(st.st_mode)) {
                        unsigned char h[CAT_HEADER_SIZE];

                        if (pread(segfd, h, sizeof(h), 0) == (ssize_t) sizeof(h) &&
                            cat_get64(h + 16) > max_last) {
                                r = cat_seg_stream(segfd, &id, &end, &torn, seg_record, c);
                                if (r == -ENOMEM)
                                        return r;
                                if (r < 0)
                                        (*damaged)++;
                                c->seg_fd = fcntl(segfd, F_DUPFD_CLOEXEC, 3);
                                if (c->seg_fd < 0 && c->n_seg > 0)
                                        return -errno;
                        }
                }
        }
        c->n_rows += c->n_seg;
        c->may = malloc(c->n_rows ? c->n_rows : 1);
        if (!c->may)
                return -ENOMEM;
        memset(c->may, 1, c->n_rows ? c->n_rows : 1);
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
        c = catalog_new();
        if (!c) {
                free(refs);
                return -ENOMEM;
        }
        r = open_files(c, dfd, refs, n, &damaged);
        free(refs);
        if (r < 0)
                goto fail;
        segfd = openat(dfd, "open", O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
        r = index_files(c, segfd, max_last, &damaged);
        if (r < 0)
                goto fail;
        if (ret_damaged)
                *ret_damaged = damaged;
        *ret = c;
        return 0;
fail:
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
        free_bits(c);
        for (size_t i = 0; i < c->n_files; i++) {
                cat_sealed_close(&c->files[i]);
                if (c->rfiles) {
                        free(c->rfiles[i].meta);
                        free(c->rfiles[i].rows);
                        free(c->rfiles[i].first);
                }
        }
        free(c->files);
        free(c->rfiles);
        free(c->base);
        free(c->folders);
        free(c->slots);
        free(c->guids);
        free(c->guid_slots);
        free(c->refs);
        while (c->arena) {
                struct arena *a = c->arena;
                c->arena = a->next;
                free(a);
        }
        free(c->seg);
        if (c->seg_fd >= 0)
                (void) close(c->seg_fd);
        free(c->may);
        free(c);
}

/* Folder f's row ids into *buf (growing it), in the order the rows were written: the files
 * oldest first, then the segment. -ENOMEM. */
static int folder_rows(const struct catalog *c, const struct rfolder *f, uint32_t **buf,
                       size_t *cap)
{
        uint32_t refs[64], n_refs = 0;
        size_t k = 0;

        if (f->n > *cap) {
                uint32_t *b = reallocarray(*buf, f->n, sizeof(*b));
                if (!b)
                        return -ENOMEM;
                *buf = b;
                *cap = f->n;
        }
        /* The chain runs newest file first; a folder is in a handful of files. */
        for (uint32_t x = f->refs; x != NO_REF; x = c->refs[x].next) {
                if (n_refs == 64)
                        return -ENOMEM;
                refs[n_refs++] = x;
        }
        while (n_refs > 0) {
                const struct rref *rr = &c->refs[refs[--n_refs]];
                const struct rfile *rf = &c->rfiles[rr->file];

                for (uint32_t j = rf->first[rr->local]; j < rf->first[rr->local + 1]; j++)
                        (*buf)[k++] = (uint32_t) c->base[rr->file] + rf->rows[j];
        }
        /* The segment's rows, chained newest first, fill the rest from its end. */
        for (uint32_t x = f->seg_last, e = f->n; x != NO_REF; x = c->seg[x].prev)
                (*buf)[--e] = (uint32_t) c->base[c->n_files] + x;
        return 0;
}

int catalog_folder_rows(const struct catalog *c, const char *folder, int64_t mtime_ns,
                        uint32_t **buf, size_t *cap, size_t *ret_n)
{
        const struct rfolder *f = folder_lookup(c, folder);
        int r;

        if (!f || !f->known || f->removed || (!f->listed && f->mtime_ns != mtime_ns) ||
            f->n != f->jobs)
                return 0;
        r = folder_rows(c, f, buf, cap);
        if (r < 0)
                return r;
        *ret_n = f->n;
        return 1;
}

/* The file of row id i (i below the segment's base). */
static size_t row_file(const struct catalog *c, uint32_t i)
{
        size_t lo = 0, hi = c->n_files;

        while (hi - lo > 1) {
                size_t mid = lo + (hi - lo) / 2;
                if (c->base[mid] <= i)
                        lo = mid;
                else
                        hi = mid;
        }
        return lo;
}

void catalog_row_get(const struct catalog *c, uint32_t i, struct catalog_row *ret)
{
        uint32_t first;

        if (i >= c->base[c->n_files]) {
                *ret = c->seg[i - c->base[c->n_files]].row;
                return;
        }
        {
                size_t f = row_file(c, i);
                cat_sealed_row(&c->files[f], i - c->base[f], ret, &first);
        }
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
static bool eval_seg_row(const struct catalog *c, const struct rrow *r,
                         const struct catalog_query *q, uint64_t *bits, uint32_t **buf, size_t *cap,
                         struct cat_buf *tri)
{
        const unsigned char *p, *end;
        bool any = false;

        /* Its trigrams from the file, as they were when the row was read. */
        tri->len = 0;
        if (!cat_buf_reserve(tri, r->tri_len) ||
            cat_pread(c->seg_fd, tri->data, r->tri_len, r->tri_off) != (ssize_t) r->tri_len ||
            cat_crc32(0, tri->data, r->tri_len) != r->tri_crc)
                goto bad;
        p = tri->data;
        end = p + r->tri_len;

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
        struct cat_buf tri = {0};
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
                } else {
                        /* Every member of a unit that may match may. */
                        for (size_t w = 0; w < uwords; w++)
                                for (uint64_t b = ubits[w]; b; b &= b - 1) {
                                        uint64_t u = w * 64 + (unsigned) __builtin_ctzll(b);

                                        for (uint64_t k = cat_sealed_unit_first(s, u),
                                                      e = cat_sealed_unit_first(s, u + 1);
                                             k < e; k++)
                                                set_bit(c->bits[i], k);
                                }
                }
                free(ubits);
                /* A binary search maps pages around each entry it reads: the dictionary is
                 * soon all mapped. What the query read is given back before the scan. */
                cat_drop_pages(s->map + s->off[CAT_S_DICT], s->len[CAT_S_DICT]);
                cat_drop_pages(s->map + s->off[CAT_S_POSTINGS], s->len[CAT_S_POSTINGS]);
                cat_drop_pages(s->map + s->off[CAT_S_UNITS], s->len[CAT_S_UNITS]);
        }
        for (size_t i = 0; i < c->n_files; i++) {
                const struct rfile *rf = &c->rfiles[i];
                const uint64_t *bits = c->bits[i];

                for (uint64_t j = 0; j < c->files[i].n_jobs; j++) {
                        const struct rmeta *m = &rf->meta[j];
                        bool may = !m->indexed;

                        for (uint32_t k = 0; k < m->n_members && !may; k++) {
                                uint64_t b = (uint64_t) m->first_member + k;
                                may = bits[b / 64] >> (b % 64) & 1;
                        }
                        c->may[c->base[i] + j] = may;
                }
        }
        for (size_t i = 0; i < c->n_seg; i++) {
                const struct rrow *r = &c->seg[i];

                c->may[c->base[c->n_files] + i] =
                        !r->row.indexed || eval_seg_row(c, r, q, c->seg_bits, &buf, &cap, &tri);
        }
        cat_buf_done(&tri);
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
        const uint64_t *bits;
        struct catalog_member *m;
        uint32_t n, first;

        if (i >= c->n_rows)
                return -ENOENT;
        if (i < c->base[c->n_files]) {
                size_t f = row_file(c, i);
                const struct rmeta *rm = &c->rfiles[f].meta[i - c->base[f]];

                if (!rm->indexed)
                        return -ENOENT;
                n = rm->n_members;
                first = rm->first_member;
                m = calloc(n ? n : 1, sizeof(*m));
                if (!m)
                        return -ENOMEM;
                for (uint32_t k = 0; k < n; k++)
                        cat_sealed_member(&c->files[f], (uint64_t) first + k, &m[k]);
                bits = c->bits ? c->bits[f] : NULL;
        } else {
                const struct rrow *r = &c->seg[i - c->base[c->n_files]];
                struct cat_cursor cur = {.p = r->members, .end = r->members + r->members_len};

                if (!r->row.indexed)
                        return -ENOENT;
                n = r->row.n_members;
                first = r->first_member;
                m = calloc(n ? n : 1, sizeof(*m));
                if (!m)
                        return -ENOMEM;
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
                uint64_t b = (uint64_t) first + k;
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

        c = catalog_new();
        if (!c)
                return -ENOMEM;
        for (size_t d = 0; d < n_dirs; d++) {
                struct cat_file_ref *refs = NULL;
                size_t n = 0;

                /* Each writer's files on their own: the merge rule holds within one writer. */
                r = cat_list_sealed(dfds[d], false, &refs, &n, NULL);
                if (r < 0)
                        goto fail;
                r = open_files(c, dfds[d], refs, n, &damaged);
                free(refs);
                if (r < 0)
                        goto fail;
        }
        r = index_files(c, -1, 0, &damaged);
        if (r < 0)
                goto fail;
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
        struct rfolder *f = folder_lookup(c, folder);
        uint32_t *rows = NULL;
        size_t cap = 0;
        bool *used;
        int r = 0;

        if (!f || f->removed || f->n != n)
                return 0;
        used = calloc(n ? n : 1, sizeof(*used));
        if (!used || folder_rows(c, f, &rows, &cap) < 0) {
                r = -ENOMEM;
                goto out;
        }
        for (size_t i = 0; i < f->n; i++) {
                struct catalog_row row;
                const char *const *k;

                catalog_row_get(c, rows[i], &row);
                k = row.key ? bsearch(&row.key, keys, n, sizeof(*keys), compare_strp) : NULL;
                if (!k || used[k - keys])
                        goto out; /* a job it lacks, or one twice (two writers' rows) */
                used[k - keys] = true;
        }
        f->known = true;
        f->listed = true;
        f->jobs = (uint32_t) f->n;
        r = 1;
out:
        free(rows);
        free(used);
        return r;
}

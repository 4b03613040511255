/*
 * The search catalog's formats (catalog_format.h): trigrams of a log, rows from records, the
 * open segment's records, and sealed files, read and written. The writer's policy (append,
 * seal, merge) is in catalog_write.c, the reader in catalog_read.c.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <libdeflate.h>

#include "catalog_format.h"
#include "macro.h"
#include "util.h"

ssize_t cat_pread(int fd, void *buf, size_t len, uint64_t off)
{
        size_t done = 0;

        while (done < len) {
                ssize_t n = pread(fd, (char *) buf + done, len - done, (off_t) (off + done));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        break;
                done += (size_t) n;
        }
        return (ssize_t) done;
}

uint32_t cat_crc32(uint32_t crc, const void *data, size_t len)
{
        return libdeflate_crc32(crc, data, len);
}

/* ---- buffers and cursors ------------------------------------------------------------- */

bool cat_buf_reserve(struct cat_buf *b, size_t n)
{
        if (b->failed)
                return false;
        if (b->len + n > b->cap) {
                size_t cap = b->cap ? b->cap : 256;
                unsigned char *p;

                while (cap < b->len + n)
                        cap *= 2;
                p = realloc(b->data, cap);
                if (!p) {
                        b->failed = true;
                        return false;
                }
                b->data = p;
                b->cap = cap;
        }
        return true;
}

void cat_buf_put(struct cat_buf *b, const void *data, size_t n)
{
        if (n == 0 || !cat_buf_reserve(b, n))
                return;
        memcpy(b->data + b->len, data, n);
        b->len += n;
}

void cat_buf_varint(struct cat_buf *b, uint64_t v)
{
        if (!cat_buf_reserve(b, 10))
                return;
        b->len += cat_varint_put(b->data + b->len, v);
}

void cat_buf_string(struct cat_buf *b, const char *s)
{
        size_t n;

        if (!s) {
                cat_buf_varint(b, 0);
                return;
        }
        n = strlen(s);
        cat_buf_varint(b, n + 1);
        cat_buf_put(b, s, n + 1);
}

void cat_buf_done(struct cat_buf *b)
{
        free(b->data);
        *b = (struct cat_buf){0};
}

uint64_t cat_cursor_varint(struct cat_cursor *c)
{
        uint64_t v = 0;
        size_t n;

        if (c->bad)
                return 0;
        n = cat_varint_get(c->p, c->end, &v);
        if (n == 0) {
                c->bad = true;
                return 0;
        }
        c->p += n;
        return v;
}

const char *cat_cursor_string(struct cat_cursor *c)
{
        uint64_t n = cat_cursor_varint(c);
        const char *s;

        if (c->bad || n == 0)
                return NULL;
        if (n > (uint64_t) (c->end - c->p) || c->p[n - 1] != '\0' || memchr(c->p, 0, n - 1)) {
                c->bad = true;
                return NULL;
        }
        s = (const char *) c->p;
        c->p += n;
        return s;
}

/* ---- trigrams ------------------------------------------------------------------------ */

#define TRI_BITS (1u << 24)

struct catalog_trigrams {
        uint64_t *seen;  /* TRI_BITS bits, all clear between calls */
        uint32_t *found; /* the trigrams set in seen, in the order found */
        uint32_t *tmp;   /* for the radix sort */
        size_t cap;
        unsigned char fold[256];
};

int catalog_trigrams_new(struct catalog_trigrams **ret)
{
        struct catalog_trigrams *t = calloc(1, sizeof(*t));

        if (!t)
                return -ENOMEM;
        t->seen = calloc(TRI_BITS / 64, sizeof(uint64_t));
        if (!t->seen) {
                free(t);
                return -ENOMEM;
        }
        for (unsigned i = 0; i < 256; i++)
                t->fold[i] = (unsigned char) (i >= 'A' && i <= 'Z' ? i + 32 : i);
        *ret = t;
        return 0;
}

void catalog_trigrams_free(struct catalog_trigrams *t)
{
        if (!t)
                return;
        free(t->seen);
        free(t->found);
        free(t->tmp);
        free(t);
}

uint32_t catalog_trigram(const unsigned char *p)
{
        uint32_t v = 0;

        for (int i = 0; i < 3; i++) {
                unsigned char c = p[i];

                if (c == '\n')
                        return UINT32_MAX;
                if (c >= 'A' && c <= 'Z')
                        c += 32;
                v = v << 8 | c;
        }
        return v;
}

/* LSD radix sort of n 24-bit values, 8 bits a pass. */
static void radix24(uint32_t *a, uint32_t *tmp, size_t n)
{
        for (unsigned shift = 0; shift < 24; shift += 8) {
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

/* Sorts a[0, n) and drops repeats. -ENOMEM. */
static int sort_unique(uint32_t *a, size_t *n)
{
        uint32_t *tmp;
        size_t k = 0;

        if (*n < 2)
                return 0;
        tmp = malloc(*n * sizeof(*tmp));
        if (!tmp)
                return -ENOMEM;
        radix24(a, tmp, *n);
        free(tmp);
        for (size_t i = 0; i < *n; i++)
                if (k == 0 || a[i] != a[k - 1])
                        a[k++] = a[i];
        *n = k;
        return 0;
}

static void tri_drop(struct catalog_tri *out)
{
        out->overflow = true;
        free(out->data);
        out->data = NULL;
        out->len = out->cap = 0;
        free(out->pend);
        out->pend = NULL;
        out->pend_n = out->pend_cap = 0;
}

/* Writes the next member's list (sorted, no repeats). */
static int tri_emit(struct catalog_tri *out, const uint32_t *list, size_t n)
{
        size_t need = 10 + 4 * n;
        struct cat_buf b;

        out->n_written++;
        if (out->overflow)
                return 0;
        if (out->len + need > CATALOG_JOB_TRI_MAX) {
                tri_drop(out); /* too big to index: the job is always read */
                return 0;
        }
        b = (struct cat_buf){.data = out->data, .len = out->len, .cap = out->cap};
        if (!cat_buf_reserve(&b, need))
                return -ENOMEM;
        b.len += cat_varint_put(b.data + b.len, n);
        for (size_t i = 0, prev = 0; i < n; i++) {
                b.len += cat_varint_put(b.data + b.len, list[i] - prev);
                prev = list[i];
        }
        out->data = b.data;
        out->len = b.len;
        out->cap = b.cap;
        return 0;
}

/* The waiting member's list, then the empty ones of the members that only continued its last
 * line (no line starts in them). */
static int tri_release(struct catalog_tri *out)
{
        int r = sort_unique(out->pend, &out->pend_n);

        if (r >= 0)
                r = tri_emit(out, out->pend, out->pend_n);
        while (r >= 0 && out->n_written < out->n_members)
                r = tri_emit(out, NULL, 0);
        out->pending = false;
        out->pend_n = 0;
        return r;
}

static int pend_add(struct catalog_tri *out, const uint32_t *list, size_t n)
{
        if (out->overflow || n == 0)
                return 0;
        if (out->pend_n + n > out->pend_cap) {
                size_t cap = out->pend_cap ? out->pend_cap : 4096;
                uint32_t *p;

                while (cap < out->pend_n + n)
                        cap *= 2;
                p = reallocarray(out->pend, cap, sizeof(*p));
                if (!p)
                        return -ENOMEM;
                out->pend = p;
                out->pend_cap = cap;
        }
        memcpy(out->pend + out->pend_n, list, n * sizeof(*list));
        out->pend_n += n;
        return 0;
}

/* found (and tmp, for sorting) holding at least n + 1 trigrams: they grow with what a
 * member holds (tens of thousands), not with its bytes. */
static int found_grow(struct catalog_trigrams *t, size_t n)
{
        size_t cap = t->cap ? t->cap : 16384;
        uint32_t *f, *tmp;

        while (cap <= n)
                cap *= 2;
        f = realloc(t->found, cap * sizeof(*f));
        if (!f)
                return -ENOMEM;
        t->found = f;
        tmp = realloc(t->tmp, cap * sizeof(*tmp));
        if (!tmp)
                return -ENOMEM;
        t->tmp = tmp;
        t->cap = cap;
        return 0;
}

/* The distinct trigrams of p[*i, len) up to a newline (stop_at_newline) or the end, into
 * t->found (*ret_n of them); v and run carry the bytes before. -ENOMEM. */
static int collect(struct catalog_trigrams *t, const unsigned char *p, size_t len, size_t *i,
                   bool stop_at_newline, struct catalog_tri *out, size_t *ret_n)
{
        uint32_t v = out->carry;
        unsigned run = out->run;
        size_t n = 0, k = *i;
        int r = 0;

        for (; k < len; k++) {
                unsigned char c = p[k];

                if (c == '\n') {
                        if (stop_at_newline)
                                break;
                        out->lines++;
                        run = 0;
                        continue;
                }
                v = (v << 8 | t->fold[c]) & 0xffffff;
                if (run < 2) {
                        run++;
                        continue;
                }
                uint64_t bit = UINT64_C(1) << (v & 63);
                if (!(t->seen[v >> 6] & bit)) {
                        if (n >= t->cap && (r = found_grow(t, n)) < 0)
                                break;
                        t->seen[v >> 6] |= bit;
                        t->found[n++] = v;
                }
        }
        for (size_t j = 0; j < n; j++)
                t->seen[t->found[j] >> 6] = 0;
        out->carry = v;
        out->run = run;
        *i = k;
        *ret_n = n;
        return r;
}

int catalog_trigrams_member(struct catalog_trigrams *t, const void *data, size_t len,
                            struct catalog_tri *out)
{
        const unsigned char *p = data;
        size_t n = 0, i = 0;
        int r;

        if (out->n_members == out->lead_cap) {
                size_t cap = out->lead_cap ? 2 * out->lead_cap : 8;
                uint64_t *l = reallocarray(out->lead, cap, sizeof(*l));

                if (!l)
                        return -ENOMEM;
                out->lead = l;
                out->lead_cap = cap;
        }
        out->lead[out->n_members] =
                out->lines << 1 | (uint64_t) (out->n_members > 0 && out->in_line);
        if (out->pending) {
                /* The rest of the line the member before ends in is that member's. */
                r = collect(t, p, len, &i, true, out, &n);
                if (r >= 0)
                        r = pend_add(out, t->found, n);
                if (r < 0)
                        return r;
                if (i == len) {
                        /* No newline: the line goes on, and no line starts in this member. */
                        r = sort_unique(out->pend, &out->pend_n);
                        if (r < 0)
                                return r;
                        if (!out->overflow && out->pend_n * 4 > CATALOG_JOB_TRI_MAX)
                                tri_drop(out);
                        out->n_members++;
                        return 0;
                }
                r = tri_release(out);
                if (r < 0)
                        return r;
                out->lines++;
                out->run = 0;
                i++;
        }
        r = collect(t, p, len, &i, false, out, &n);
        if (r < 0)
                return r;
        if (len > 0)
                out->in_line = p[len - 1] != '\n';
        out->n_members++;
        if (n)
                radix24(t->found, t->tmp, n);
        if (out->in_line) {
                out->pending = true;
                return pend_add(out, t->found, n);
        }
        return tri_emit(out, t->found, n);
}

int catalog_tri_finish(struct catalog_tri *out)
{
        return out->pending ? tri_release(out) : 0;
}

void catalog_tri_done(struct catalog_tri *t)
{
        free(t->data);
        free(t->lead);
        free(t->pend);
        *t = (struct catalog_tri){0};
}

/* ---- rows from records ----------------------------------------------------------------- */

static const char *json_str(struct json_object *o, const char *field)
{
        struct json_object *v;

        if (!o || !json_object_object_get_ex(o, field, &v) ||
            !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

static bool json_int(struct json_object *o, const char *field, int64_t *ret)
{
        struct json_object *v;

        if (!o || !json_object_object_get_ex(o, field, &v) ||
            !json_object_is_type(v, json_type_int))
                return false;
        *ret = json_object_get_int64(v);
        return true;
}

int catalog_row_from_record(const char *folder, const char *key, int year, int month, int day,
                            const char *record_json, size_t len, struct catalog_row *ret,
                            char **strings)
{
        struct json_tokener *tok;
        struct json_object *rec, *job = NULL, *err = NULL;
        const char *src[6];
        size_t off[6], total = 0;
        int64_t v;
        char *s;

        tok = json_tokener_new();
        if (!tok)
                return -ENOMEM;
        rec = json_tokener_parse_ex(tok, record_json, (int) len);
        json_tokener_free(tok);
        if (!rec || !json_object_is_type(rec, json_type_object)) {
                json_object_put(rec);
                return -EBADMSG;
        }
        (void) json_object_object_get_ex(rec, "job", &job);
        if (job && !json_object_is_type(job, json_type_object))
                job = NULL;
        (void) json_object_object_get_ex(rec, "error", &err);
        if (err && !json_object_is_type(err, json_type_object))
                err = NULL;

        /* The same fields, read the same way, as archive_scan's read_record. */
        *ret = (struct catalog_row){
                .status = -1, .log_bytes = -1, .gz_bytes = -1, .has_error = err != NULL};
        src[0] = folder;
        src[1] = key;
        src[2] = json_str(job, "tag");
        src[3] = json_str(job, "start_time");
        src[4] = json_str(rec, "content_name");
        src[5] = json_str(err, "summary");
        for (int i = 0; i < 6; i++) {
                off[i] = total;
                if (src[i])
                        total += strlen(src[i]) + 1;
        }
        s = malloc(total ? total : 1);
        if (!s) {
                json_object_put(rec);
                return -ENOMEM;
        }
        for (int i = 0; i < 6; i++)
                if (src[i])
                        memcpy(s + off[i], src[i], strlen(src[i]) + 1);
        ret->folder = s + off[0];
        ret->key = s + off[1];
        ret->tag = src[2] ? s + off[2] : NULL;
        ret->start_text = src[3] ? s + off[3] : NULL;
        ret->name = src[4] ? s + off[4] : NULL;
        ret->error_summary = src[5] ? s + off[5] : NULL;
        if (!ret->start_text || rfc3339_parse(ret->start_text, &ret->start) < 0) {
                struct tm tm = {.tm_year = year - 1900, .tm_mon = month - 1, .tm_mday = day};
                ret->start = (int64_t) timegm(&tm);
        }
        if (json_int(job, "status", &v))
                ret->status = (int) v;
        if (json_int(job, "exit_code", &v)) {
                ret->has_exit_code = true;
                ret->exit_code = (int) v;
        }
        if (json_int(rec, "log_bytes", &v) && v >= 0)
                ret->log_bytes = v;
        if (json_int(rec, "log_gzip_bytes", &v) && v >= 0)
                ret->gz_bytes = v;
        json_object_put(rec);
        *strings = s;
        return 0;
}

/* ---- the open segment ------------------------------------------------------------------ */

int cat_seg_job_parse(const unsigned char *payload, size_t len, struct cat_seg_job *ret)
{
        struct cat_cursor c = {.p = payload, .end = payload + len};
        struct catalog_row *r = &ret->row;
        unsigned flags;

        *ret = (struct cat_seg_job){0};
        if (len < 1 || payload[0] != 'J')
                return -EBADMSG;
        c.p++;
        r->folder = cat_cursor_string(&c);
        r->key = cat_cursor_string(&c);
        r->tag = cat_cursor_string(&c);
        r->start_text = cat_cursor_string(&c);
        r->name = cat_cursor_string(&c);
        r->error_summary = cat_cursor_string(&c);
        r->start = cat_unzigzag(cat_cursor_varint(&c));
        r->log_bytes = cat_unzigzag(cat_cursor_varint(&c));
        r->gz_bytes = cat_unzigzag(cat_cursor_varint(&c));
        r->status = (int) cat_unzigzag(cat_cursor_varint(&c));
        r->exit_code = (int) cat_unzigzag(cat_cursor_varint(&c));
        flags = (unsigned) cat_cursor_varint(&c);
        r->has_exit_code = flags & CAT_F_EXIT;
        r->has_error = flags & CAT_F_ERROR;
        r->indexed = flags & CAT_F_INDEXED;
        r->n_members = (uint32_t) cat_cursor_varint(&c);
        ret->members = c.p;
        for (uint32_t i = 0; i < r->n_members && !c.bad; i++)
                for (int k = 0; k < 4; k++)
                        (void) cat_cursor_varint(&c);
        ret->members_len = (size_t) (c.p - ret->members);
        if (r->indexed) {
                uint64_t n = cat_cursor_varint(&c);

                if (!c.bad && n <= (uint64_t) (c.end - c.p)) {
                        ret->tri = c.p;
                        ret->tri_len = (size_t) n;
                        c.p += n;
                } else {
                        c.bad = true;
                }
        }
        if (c.bad || !r->folder || !r->key || c.p != c.end)
                return -EBADMSG;
        return 0;
}

int cat_seg_stream(int fd, uint64_t *ret_id, uint64_t *ret_good_end, bool *ret_torn,
                   cat_record_at_fn *fn, void *userdata)
{
        unsigned char h[CAT_HEADER_SIZE], *buf = NULL;
        size_t cap = 0;
        uint64_t off = CAT_HEADER_SIZE;
        struct stat st;
        int r = 0;

        if (fstat(fd, &st) < 0)
                return -errno;
        if (st.st_size < CAT_HEADER_SIZE || cat_pread(fd, h, sizeof(h), 0) != (ssize_t) sizeof(h))
                return -EBADMSG;
        if (memcmp(h, CAT_SEG_MAGIC, 8) != 0 || cat_get32(h + 8) != CATALOG_VERSION ||
            cat_get32(h + 24) != cat_crc32(0, h, 24) || cat_get32(h + 28) != 0)
                return -EBADMSG;
        *ret_id = cat_get64(h + 16);
        *ret_torn = false;
        while (off < (uint64_t) st.st_size) {
                unsigned char fr[8];
                uint32_t len, crc;
                ssize_t k;

                if ((uint64_t) st.st_size - off < 8 ||
                    cat_pread(fd, fr, sizeof(fr), (off_t) off) != (ssize_t) sizeof(fr)) {
                        *ret_torn = true;
                        break;
                }
                len = cat_get32(fr);
                crc = cat_get32(fr + 4);
                if (len == 0 || len > (uint64_t) st.st_size - off - 8) {
                        *ret_torn = true;
                        break;
                }
                if (len > cap) {
                        unsigned char *nb = realloc(buf, len);
                        if (!nb) {
                                r = -ENOMEM;
                                break;
                        }
                        buf = nb;
                        cap = len;
                }
                k = cat_pread(fd, buf, len, (off_t) (off + 8));
                if (k < 0) {
                        r = (int) k;
                        break;
                }
                if ((size_t) k != len || cat_crc32(cat_crc32(0, fr, 4), buf, len) != crc) {
                        *ret_torn = true;
                        break;
                }
                if (fn) {
                        r = fn(userdata, buf[0], buf, len, off + 8);
                        if (r < 0)
                                break;
                }
                off += 8 + (uint64_t) len;
        }
        free(buf);
        *ret_good_end = off;
        return r;
}

int cat_seg_read(int fd, uint64_t *ret_id, uint64_t *ret_good_end, bool *ret_torn,
                 unsigned char **ret_data, cat_record_fn *fn, void *userdata)
{
        struct stat st;
        unsigned char *data;
        size_t size, off;
        int r = 0;

        *ret_data = NULL;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (st.st_size < CAT_HEADER_SIZE)
                return -EBADMSG;
        size = (size_t) st.st_size;
        data = malloc(size);
        if (!data)
                return -ENOMEM;
        for (off = 0; off < size;) {
                ssize_t n = pread(fd, data + off, size - off, (off_t) off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        free(data);
                        return n < 0 ? -errno : -EBADMSG;
                }
                off += (size_t) n;
        }
        if (memcmp(data, CAT_SEG_MAGIC, 8) != 0 || cat_get32(data + 8) != CATALOG_VERSION ||
            cat_get32(data + 24) != cat_crc32(0, data, 24) || cat_get32(data + 28) != 0) {
                free(data);
                return -EBADMSG;
        }
        *ret_id = cat_get64(data + 16);
        *ret_torn = false;
        for (off = CAT_HEADER_SIZE; off < size;) {
                uint32_t len, crc;

                if (size - off < 8) {
                        *ret_torn = true;
                        break;
                }
                len = cat_get32(data + off);
                crc = cat_get32(data + off + 4);
                if (len == 0 || len > size - off - 8 ||
                    cat_crc32(cat_crc32(0, data + off, 4), data + off + 8, len) != crc) {
                        *ret_torn = true;
                        break;
                }
                if (fn) {
                        r = fn(userdata, data[off + 8], data + off + 8, len);
                        if (r < 0)
                                break;
                }
                off += 8 + (size_t) len;
        }
        *ret_good_end = off;
        *ret_data = data;
        return r;
}

/* ---- sealed files ---------------------------------------------------------------------- */

bool cat_sealed_name(const char *name, unsigned *level, uint64_t *first, uint64_t *last)
{
        unsigned l;
        unsigned long long a, b;
        int n = 0;

        if (sscanf(name, "L%u-%llu-%llu.cat%n", &l, &a, &b, &n) != 3 || name[n] != '\0' || a > b ||
            l > 64)
                return false;
        *level = l;
        *first = a;
        *last = b;
        return true;
}

int cat_sealed_open(int dfd, const char *name, struct cat_sealed *ret)
{
        _cleanup_close_ int fd = -1;
        struct stat st;
        unsigned char *m, *f;
        uint64_t end;

        *ret = (struct cat_sealed){0};
        fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADMSG;
        if (st.st_size < CAT_HEADER_SIZE + CAT_FOOTER_SIZE)
                return -EBADMSG;
        m = mmap(NULL, (size_t) st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED)
                return -errno;
        ret->map = m;
        ret->size = (size_t) st.st_size;
        f = m + ret->size - CAT_FOOTER_SIZE;
        if (memcmp(m, CAT_IDX_MAGIC, 8) != 0 || cat_get32(m + 8) != CATALOG_VERSION ||
            memcmp(f + CAT_FOOTER_SIZE - 8, CAT_END_MAGIC, 8) != 0 ||
            cat_get32(f + CAT_FOOTER_SIZE - 12) !=
                    cat_crc32(cat_crc32(0, m, CAT_HEADER_SIZE), f, CAT_FOOTER_SIZE - 12))
                goto bad;
        ret->level = cat_get32(m + 12);
        ret->first = cat_get64(m + 16);
        ret->last = cat_get64(m + 24);
        end = ret->size - CAT_FOOTER_SIZE;
        for (int i = 0; i < CAT_N_SECTIONS; i++) {
                const unsigned char *e = f + 20 * i;

                ret->off[i] = cat_get64(e);
                ret->len[i] = cat_get64(e + 8);
                if (ret->off[i] < CAT_HEADER_SIZE || ret->off[i] > end ||
                    ret->len[i] > end - ret->off[i])
                        goto bad;
                /* The postings are checked a list at a time, when read. */
                if (i != CAT_S_POSTINGS &&
                    cat_crc32(0, m + ret->off[i], ret->len[i]) != cat_get32(e + 16))
                        goto bad;
                if (i != CAT_S_UNITS && i != CAT_S_JOBS)
                        cat_drop_pages(m + ret->off[i], ret->len[i]);
        }
        ret->n_jobs = cat_get64(f + 20 * CAT_N_SECTIONS);
        ret->n_members = cat_get64(f + 20 * CAT_N_SECTIONS + 8);
        ret->n_folders = cat_get64(f + 20 * CAT_N_SECTIONS + 16);
        ret->n_tri = cat_get64(f + 20 * CAT_N_SECTIONS + 24);
        if (ret->len[CAT_S_JOBS] != ret->n_jobs * CAT_JOB_SIZE ||
            ret->len[CAT_S_MEMBERS] != ret->n_members * CAT_MEMBER_SIZE ||
            ret->len[CAT_S_FOLDERS] != ret->n_folders * CAT_FOLDER_SIZE ||
            ret->len[CAT_S_DICT] != ret->n_tri * CAT_DICT_SIZE ||
            (ret->len[CAT_S_STRINGS] > 0 &&
             m[ret->off[CAT_S_STRINGS] + ret->len[CAT_S_STRINGS] - 1] != '\0'))
                goto bad;
        /* The units: from member 0, increasing, each below the members' number. */
        if (ret->len[CAT_S_UNITS] % 4 != 0)
                goto bad;
        ret->n_units = ret->len[CAT_S_UNITS] / 4;
        if ((ret->n_units == 0) != (ret->n_members == 0))
                goto bad;
        for (uint64_t u = 0; u < ret->n_units; u++) {
                uint64_t first = cat_get32(m + ret->off[CAT_S_UNITS] + 4 * u);

                if (u == 0 ? first != 0
                           : first <= cat_get32(m + ret->off[CAT_S_UNITS] + 4 * (u - 1)) ||
                                     first >= ret->n_members)
                        goto bad;
        }
        /* Every job's members within the table. */
        for (uint64_t j = 0; j < ret->n_jobs; j++) {
                const unsigned char *p = m + ret->off[CAT_S_JOBS] + j * CAT_JOB_SIZE;
                uint64_t first = cat_get32(p + 60), n = cat_get32(p + 64);

                if (first + n > ret->n_members)
                        goto bad;
        }
        cat_drop_pages(m + ret->off[CAT_S_UNITS], ret->len[CAT_S_UNITS]);
        cat_drop_pages(m + ret->off[CAT_S_JOBS], ret->len[CAT_S_JOBS]);
        return 0;
bad:
        cat_sealed_close(ret);
        return -EBADMSG;
}

void cat_drop_pages(const void *p, size_t len)
{
        uintptr_t page = (uintptr_t) sysconf(_SC_PAGESIZE);
        uintptr_t a = ((uintptr_t) p + page - 1) & ~(page - 1),
                  e = ((uintptr_t) p + len) & ~(page - 1);

        if (e > a)
                (void) madvise((void *) a, e - a, MADV_DONTNEED);
}

void cat_sealed_close(struct cat_sealed *s)
{
        if (s->map)
                (void) munmap(s->map, s->size);
        *s = (struct cat_sealed){0};
}

const char *cat_sealed_string(const struct cat_sealed *s, uint32_t off)
{
        if (off == CAT_NONE || off >= s->len[CAT_S_STRINGS])
                return NULL;
        /* The section ends with a NUL (checked at open), so every string does. */
        return (const char *) s->map + s->off[CAT_S_STRINGS] + off;
}

int64_t cat_sealed_find(const struct cat_sealed *s, uint32_t tri)
{
        const unsigned char *d = s->map + s->off[CAT_S_DICT];
        uint64_t lo = 0, hi = s->n_tri;

        while (lo < hi) {
                uint64_t mid = lo + (hi - lo) / 2;
                uint32_t t = cat_get32(d + mid * CAT_DICT_SIZE);

                if (t == tri)
                        return (int64_t) mid;
                if (t < tri)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return -1;
}

/* A Rice-coded list (catalog_format.h) of numbers below n_units into bits. -EBADMSG. */
static int rice_or(const unsigned char *p, const unsigned char *end, unsigned k, uint64_t n_units,
                   uint64_t *bits)
{
        uint64_t count, m = UINT64_MAX, bitpos = 0, nbits;
        size_t h = cat_varint_get(p, end, &count);

        if (h == 0 || k > 31 || count > n_units)
                return -EBADMSG;
        p += h;
        nbits = (uint64_t) (end - p) * 8;
        for (uint64_t i = 0; i < count; i++) {
                uint64_t q = 0, low = 0;

                for (;;) {
                        if (bitpos >= nbits)
                                return -EBADMSG;
                        if (!(p[bitpos / 8] >> (bitpos % 8) & 1))
                                break;
                        bitpos++;
                        if (++q > n_units)
                                return -EBADMSG;
                }
                bitpos++;
                if (bitpos + k > nbits)
                        return -EBADMSG;
                for (unsigned b = 0; b < k; b++, bitpos++)
                        low |= (uint64_t) (p[bitpos / 8] >> (bitpos % 8) & 1) << b;
                m += (q << k | low) + 1;
                if (m >= n_units)
                        return -EBADMSG;
                bits[m / 64] |= UINT64_C(1) << (m % 64);
        }
        /* Nothing after the last number but its byte's unused bits. */
        return (bitpos + 7) / 8 == nbits / 8 ? 0 : -EBADMSG;
}

int cat_sealed_postings_or(const struct cat_sealed *s, uint64_t i, uint64_t *bits)
{
        const unsigned char *e = s->map + s->off[CAT_S_DICT] + i * CAT_DICT_SIZE;
        uint32_t flags = cat_get32(e + 4), len = cat_get32(e + 16);
        uint64_t off = cat_get64(e + 8);
        const unsigned char *p, *end;

        if (off > s->len[CAT_S_POSTINGS] || len > s->len[CAT_S_POSTINGS] - off)
                return -EBADMSG;
        p = s->map + s->off[CAT_S_POSTINGS] + off;
        end = p + len;
        if (cat_crc32(0, p, len) != cat_get32(e + 20))
                return -EBADMSG;
        if (flags & CAT_P_BITMAP) {
                if (len != (s->n_units + 7) / 8)
                        return -EBADMSG;
                for (uint64_t k = 0; k < len; k++)
                        bits[k / 8] |= (uint64_t) p[k] << (8 * (k % 8));
                return 0;
        }
        return rice_or(p, end, (flags >> 8) & 0xff, s->n_units, bits);
}

/* ---- writing a sealed file --------------------------------------------------------------- */

struct str_slot {
        uint64_t hash;
        uint32_t off;
};

struct cat_sealed_writer {
        int dfd;
        int fd;
        char tmp[80], name[64];
        unsigned level;
        uint64_t first, last;
        struct cat_buf strings, jobs, members, units, dict, out;
        uint64_t n_units;
        uint32_t last_unit;
        struct str_slot *slots;
        size_t n_slots, n_strings;
        struct cat_folder_state *folders;
        size_t n_folders, cap_folders;
        uint64_t n_jobs, n_members, n_tri, n_postings;
        uint64_t off[CAT_N_SECTIONS], len[CAT_N_SECTIONS];
        uint32_t crc[CAT_N_SECTIONS];
        uint64_t pos; /* bytes written to fd */
        bool tables_written;
        unsigned char *scratch; /* a list being coded */
        size_t scratch_cap;
        /* The dictionary beyond DICT_SPILL bytes goes to a temporary beside the file, so that
         * a file of millions of trigrams is not held in memory; copied in at commit. */
        int dict_fd;
        char dict_tmp[96];
        uint64_t dict_spilled;
};

#define DICT_SPILL (64u * 1024)

static uint32_t strings_add(struct cat_sealed_writer *w, const char *s)
{
        uint64_t h;
        size_t n, i;

        if (!s)
                return CAT_NONE;
        n = strlen(s);
        h = hash64(s, n);
        if (2 * (w->n_strings + 1) > w->n_slots) {
                size_t ns = w->n_slots ? 2 * w->n_slots : 1024;
                struct str_slot *slots = calloc(ns, sizeof(*slots));

                if (!slots) {
                        w->strings.failed = true;
                        return CAT_NONE;
                }
                for (size_t k = 0; k < w->n_slots; k++) {
                        struct str_slot *o = &w->slots[k];
                        if (o->off == 0)
                                continue;
                        for (i = o->hash & (ns - 1); slots[i].off; i = (i + 1) & (ns - 1))
                                ;
                        slots[i] = *o;
                }
                free(w->slots);
                w->slots = slots;
                w->n_slots = ns;
        }
        /* off is stored plus one, so that 0 is a free slot. */
        for (i = h & (w->n_slots - 1); w->slots[i].off; i = (i + 1) & (w->n_slots - 1)) {
                const char *t = (const char *) w->strings.data + w->slots[i].off - 1;
                if (w->slots[i].hash == h && strcmp(t, s) == 0)
                        return w->slots[i].off - 1;
        }
        if (w->strings.len >= UINT32_MAX - n - 2) {
                w->strings.failed = true;
                return CAT_NONE;
        }
        w->slots[i].hash = h;
        w->slots[i].off = (uint32_t) w->strings.len + 1;
        w->n_strings++;
        cat_buf_put(&w->strings, s, n + 1);
        return w->slots[i].off - 1;
}

int cat_sealed_writer_new(int dfd, unsigned level, uint64_t first, uint64_t last,
                          struct cat_sealed_writer **ret)
{
        struct cat_sealed_writer *w = calloc(1, sizeof(*w));

        if (!w)
                return -ENOMEM;
        w->dfd = dfd;
        w->level = level;
        w->first = first;
        w->last = last;
        (void) snprintf(w->name, sizeof(w->name), "L%u-%llu-%llu.cat", level,
                        (unsigned long long) first, (unsigned long long) last);
        (void) snprintf(w->tmp, sizeof(w->tmp), ".%s.tmp", w->name);
        (void) snprintf(w->dict_tmp, sizeof(w->dict_tmp), ".%s.dict.tmp", w->name);
        w->dict_fd = -1;
        (void) unlinkat(dfd, w->tmp, 0);
        w->fd = openat(dfd, w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
        if (w->fd < 0) {
                int r = -errno;
                free(w);
                return r;
        }
        *ret = w;
        return 0;
}

int cat_sealed_writer_job(struct cat_sealed_writer *w, const struct catalog_row *row,
                          const struct catalog_member *members)
{
        unsigned char j[CAT_JOB_SIZE] = {0};
        unsigned flags = (row->has_exit_code ? CAT_F_EXIT : 0) |
                         (row->has_error ? CAT_F_ERROR : 0) | (row->indexed ? CAT_F_INDEXED : 0);

        cat_put32(j + 0, strings_add(w, row->folder));
        cat_put32(j + 4, strings_add(w, row->key));
        cat_put32(j + 8, strings_add(w, row->tag));
        cat_put32(j + 12, strings_add(w, row->start_text));
        cat_put32(j + 16, strings_add(w, row->name));
        cat_put32(j + 20, strings_add(w, row->error_summary));
        cat_put64(j + 24, (uint64_t) row->start);
        cat_put64(j + 32, (uint64_t) row->log_bytes);
        cat_put64(j + 40, (uint64_t) row->gz_bytes);
        cat_put32(j + 48, (uint32_t) row->status);
        cat_put32(j + 52, (uint32_t) row->exit_code);
        cat_put32(j + 56, flags);
        cat_put32(j + 60, (uint32_t) w->n_members);
        cat_put32(j + 64, row->n_members);
        cat_buf_put(&w->jobs, j, sizeof(j));
        for (uint32_t i = 0; i < row->n_members; i++) {
                unsigned char m[CAT_MEMBER_SIZE];

                cat_put64(m, members ? members[i].offset : 0);
                cat_put32(m + 8, members ? members[i].size : 0);
                cat_put32(m + 12, members ? members[i].usize : 0);
                cat_put64(m + 16, members && row->indexed ? cat_lead(&members[i]) : 0);
                cat_buf_put(&w->members, m, sizeof(m));
        }
        w->n_jobs++;
        w->n_members += row->n_members;
        return w->jobs.failed || w->members.failed || w->strings.failed ? -ENOMEM : 0;
}

int cat_sealed_writer_folder(struct cat_sealed_writer *w, const struct cat_folder_state *f)
{
        if (w->n_folders == w->cap_folders) {
                size_t cap = w->cap_folders ? 2 * w->cap_folders : 64;
                struct cat_folder_state *n = reallocarray(w->folders, cap, sizeof(*n));

                if (!n)
                        return -ENOMEM;
                w->folders = n;
                w->cap_folders = cap;
        }
        w->folders[w->n_folders] = *f;
        w->folders[w->n_folders].path = strdup(f->path);
        if (!w->folders[w->n_folders].path)
                return -ENOMEM;
        w->n_folders++;
        return 0;
}

int cat_sealed_writer_unit_at(struct cat_sealed_writer *w, uint32_t first)
{
        unsigned char u[4];

        if (w->tables_written || (w->n_units && first <= w->last_unit))
                return w->tables_written ? -EINVAL : 0;
        if (!w->n_units && first != 0) {
                cat_put32(u, 0);
                cat_buf_put(&w->units, u, sizeof(u));
                w->n_units++;
        }
        cat_put32(u, first);
        cat_buf_put(&w->units, u, sizeof(u));
        w->n_units++;
        w->last_unit = first;
        return w->units.failed ? -ENOMEM : 0;
}

static int compare_folders(const void *x, const void *y)
{
        const struct cat_folder_state *a = x, *b = y;

        return strcmp(a->path, b->path);
}

/* Appends to the file through w->out, flushed in large writes. */
static int out_put(struct cat_sealed_writer *w, const void *data, size_t n)
{
        cat_buf_put(&w->out, data, n);
        if (w->out.failed)
                return -ENOMEM;
        w->pos += n;
        if (w->out.len >= 1 << 20) {
                int r = write_all(w->fd, w->out.data, w->out.len);
                w->out.len = 0;
                return r;
        }
        return 0;
}

static int section(struct cat_sealed_writer *w, int i, const void *data, size_t len)
{
        w->off[i] = w->pos;
        w->len[i] = len;
        w->crc[i] = cat_crc32(0, data, len);
        return out_put(w, data, len);
}

static int write_tables(struct cat_sealed_writer *w)
{
        unsigned char h[CAT_HEADER_SIZE] = {0};
        struct cat_buf folders = {0};
        int r;

        if (w->tables_written)
                return 0;
        w->tables_written = true;
        if (w->n_folders)
                qsort(w->folders, w->n_folders, sizeof(*w->folders), compare_folders);
        for (size_t i = 0; i < w->n_folders; i++) {
                unsigned char e[CAT_FOLDER_SIZE] = {0};

                cat_put32(e, strings_add(w, w->folders[i].path));
                cat_put32(e + 4, w->folders[i].removed ? CAT_F_REMOVED : 0);
                cat_put64(e + 8, (uint64_t) w->folders[i].mtime_ns);
                cat_put32(e + 16, w->folders[i].jobs);
                cat_buf_put(&folders, e, sizeof(e));
        }
        /* Units at or past the last member start nothing; member 0 starts one. */
        while (w->n_units && cat_get32(w->units.data + 4 * (w->n_units - 1)) >= w->n_members)
                w->n_units--;
        w->units.len = (size_t) w->n_units * 4;
        if (w->n_members && !w->n_units) {
                unsigned char u[4] = {0};
                cat_buf_put(&w->units, u, sizeof(u));
                w->n_units = 1;
        }
        if (folders.failed || w->strings.failed || w->units.failed) {
                cat_buf_done(&folders);
                return -ENOMEM;
        }
        memcpy(h, CAT_IDX_MAGIC, 8);
        cat_put32(h + 8, CATALOG_VERSION);
        cat_put32(h + 12, w->level);
        cat_put64(h + 16, w->first);
        cat_put64(h + 24, w->last);
        r = out_put(w, h, sizeof(h));
        if (r >= 0)
                r = section(w, CAT_S_STRINGS, w->strings.data, w->strings.len);
        if (r >= 0)
                r = section(w, CAT_S_FOLDERS, folders.data, folders.len);
        if (r >= 0)
                r = section(w, CAT_S_JOBS, w->jobs.data, w->jobs.len);
        if (r >= 0)
                r = section(w, CAT_S_MEMBERS, w->members.data, w->members.len);
        if (r >= 0)
                r = section(w, CAT_S_UNITS, w->units.data, w->units.len);
        w->off[CAT_S_POSTINGS] = w->pos;
        w->crc[CAT_S_POSTINGS] = 0;
        cat_buf_done(&folders);
        cat_buf_done(&w->jobs);
        cat_buf_done(&w->members);
        cat_buf_done(&w->units);
        return r;
}

/* Moves the dictionary held so far to its temporary (made at the first call; unlinked at
 * once, so nothing is left behind: the fd is all there is of it). */
static int dict_spill(struct cat_sealed_writer *w)
{
        int r;

        if (w->dict_fd < 0) {
                (void) unlinkat(w->dfd, w->dict_tmp, 0);
                w->dict_fd = openat(w->dfd, w->dict_tmp,
                                    O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
                if (w->dict_fd < 0)
                        return -errno;
                (void) unlinkat(w->dfd, w->dict_tmp, 0);
        }
        r = write_all(w->dict_fd, w->dict.data, w->dict.len);
        if (r < 0)
                return r;
        w->dict_spilled += w->dict.len;
        w->dict.len = 0;
        return 0;
}

/* The dictionary section: what was spilled, read back a chunk at a time, then the rest. */
static int dict_section(struct cat_sealed_writer *w)
{
        unsigned char buf[DICT_SPILL];
        uint32_t crc = 0;
        int r = 0;

        w->off[CAT_S_DICT] = w->pos;
        w->len[CAT_S_DICT] = w->dict_spilled + w->dict.len;
        for (uint64_t off = 0; off < w->dict_spilled && r >= 0;) {
                size_t want = w->dict_spilled - off < sizeof(buf) ? (size_t) (w->dict_spilled - off)
                                                                  : sizeof(buf);
                ssize_t k = pread(w->dict_fd, buf, want, (off_t) off);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return k < 0 ? -errno : -EIO;
                crc = cat_crc32(crc, buf, (size_t) k);
                r = out_put(w, buf, (size_t) k);
                off += (uint64_t) k;
        }
        if (r < 0)
                return r;
        w->crc[CAT_S_DICT] = cat_crc32(crc, w->dict.data, w->dict.len);
        return out_put(w, w->dict.data, w->dict.len);
}

int cat_sealed_writer_list(struct cat_sealed_writer *w, uint32_t tri, const uint32_t *members,
                           size_t n)
{
        unsigned char e[CAT_DICT_SIZE];
        size_t bitmap_len, rice_len = 0;
        unsigned rice_k = 0;
        uint64_t start;
        uint32_t crc;
        int r;

        r = write_tables(w);
        if (r < 0 || n == 0)
                return r;
        bitmap_len = (w->n_units + 7) / 8;
        if (members[n - 1] >= w->n_units)
                return -EINVAL;
        start = w->pos - w->off[CAT_S_POSTINGS];
        /* Rice: k near log2 of the mean gap, the smallest of five. */
        {
                uint64_t mean = w->n_units / n, best_bits = UINT64_MAX;
                unsigned guess = 0;

                while (guess < 31 && (UINT64_C(2) << guess) <= mean)
                        guess++;
                for (unsigned k = guess > 2 ? guess - 2 : 0; k <= guess + 2 && k < 32; k++) {
                        uint64_t b = (uint64_t) n * (k + 1);

                        for (size_t i = 0, prev = (size_t) -1; i < n; i++) {
                                b += ((uint64_t) members[i] - (uint64_t) prev - 1) >> k;
                                prev = members[i];
                        }
                        if (b < best_bits) {
                                best_bits = b;
                                rice_k = k;
                        }
                }
                unsigned char vb[10];
                rice_len = cat_varint_put(vb, n) + (size_t) ((best_bits + 7) / 8);
        }
        if (bitmap_len <= rice_len) {
                if (w->scratch_cap < bitmap_len + 1) {
                        unsigned char *b = realloc(w->scratch, bitmap_len + 1);
                        if (!b)
                                return -ENOMEM;
                        w->scratch = b;
                        w->scratch_cap = bitmap_len + 1;
                }
                memset(w->scratch, 0, bitmap_len);
                for (size_t i = 0; i < n; i++)
                        w->scratch[members[i] / 8] |= (unsigned char) (1u << (members[i] % 8));
                crc = cat_crc32(0, w->scratch, bitmap_len);
                r = out_put(w, w->scratch, bitmap_len);
                cat_put32(e + 4, CAT_P_BITMAP);
                cat_put32(e + 16, (uint32_t) bitmap_len);
        } else {
                size_t len;
                uint64_t bit = 0;

                if (w->scratch_cap < rice_len) {
                        unsigned char *b = realloc(w->scratch, rice_len);
                        if (!b)
                                return -ENOMEM;
                        w->scratch = b;
                        w->scratch_cap = rice_len;
                }
                memset(w->scratch, 0, rice_len);
                len = cat_varint_put(w->scratch, n);
                for (size_t i = 0, prev = (size_t) -1; i < n; i++) {
                        uint64_t v = (uint64_t) members[i] - (uint64_t) prev - 1;
                        unsigned char *q = w->scratch + len;

                        for (uint64_t j = v >> rice_k; j; j--, bit++)
                                q[bit / 8] |= (unsigned char) (1u << (bit % 8));
                        bit++; /* the 0 */
                        for (unsigned b = 0; b < rice_k; b++, bit++)
                                if (v >> b & 1)
                                        q[bit / 8] |= (unsigned char) (1u << (bit % 8));
                        prev = members[i];
                }
                len += (size_t) ((bit + 7) / 8);
                crc = cat_crc32(0, w->scratch, len);
                r = out_put(w, w->scratch, len);
                cat_put32(e + 4, rice_k << 8);
                cat_put32(e + 16, (uint32_t) len);
        }
        cat_put32(e, tri);
        cat_put64(e + 8, start);
        cat_put32(e + 20, crc);
        cat_buf_put(&w->dict, e, sizeof(e));
        w->n_tri++;
        w->n_postings += n;
        if (r >= 0 && w->dict.failed)
                r = -ENOMEM;
        if (r >= 0 && w->dict.len >= DICT_SPILL)
                r = dict_spill(w);
        return r;
}

int cat_sealed_writer_commit(struct cat_sealed_writer *w)
{
        unsigned char f[CAT_FOOTER_SIZE] = {0}, h[CAT_HEADER_SIZE] = {0};
        uint32_t crc;
        int r;

        r = write_tables(w);
        if (r < 0)
                return r;
        w->len[CAT_S_POSTINGS] = w->pos - w->off[CAT_S_POSTINGS];
        r = dict_section(w);
        if (r < 0)
                return r;
        for (int i = 0; i < CAT_N_SECTIONS; i++) {
                cat_put64(f + 20 * i, w->off[i]);
                cat_put64(f + 20 * i + 8, w->len[i]);
                cat_put32(f + 20 * i + 16, w->crc[i]);
        }
        cat_put64(f + 20 * CAT_N_SECTIONS, w->n_jobs);
        cat_put64(f + 20 * CAT_N_SECTIONS + 8, w->n_members);
        cat_put64(f + 20 * CAT_N_SECTIONS + 16, w->n_folders);
        cat_put64(f + 20 * CAT_N_SECTIONS + 24, w->n_tri);
        memcpy(h, CAT_IDX_MAGIC, 8);
        cat_put32(h + 8, CATALOG_VERSION);
        cat_put32(h + 12, w->level);
        cat_put64(h + 16, w->first);
        cat_put64(h + 24, w->last);
        crc = cat_crc32(cat_crc32(0, h, sizeof(h)), f, CAT_FOOTER_SIZE - 12);
        cat_put32(f + CAT_FOOTER_SIZE - 12, crc);
        memcpy(f + CAT_FOOTER_SIZE - 8, CAT_END_MAGIC, 8);
        r = out_put(w, f, sizeof(f));
        if (r >= 0 && w->out.len)
                r = write_all(w->fd, w->out.data, w->out.len);
        w->out.len = 0;
        if (r >= 0 && fsync(w->fd) < 0)
                r = -errno;
        if (r >= 0 && close(w->fd) < 0)
                r = -errno;
        w->fd = -1;
        if (r >= 0 && renameat(w->dfd, w->tmp, w->dfd, w->name) < 0)
                r = -errno;
        if (r >= 0 && fsync(w->dfd) < 0)
                r = -errno;
        if (r >= 0)
                w->tmp[0] = '\0'; /* nothing to remove any more */
        return r;
}

void cat_sealed_writer_free(struct cat_sealed_writer *w)
{
        if (!w)
                return;
        if (w->fd >= 0)
                (void) close(w->fd);
        if (w->tmp[0])
                (void) unlinkat(w->dfd, w->tmp, 0);
        if (w->dict_fd >= 0)
                (void) close(w->dict_fd);
        for (size_t i = 0; i < w->n_folders; i++)
                free((char *) w->folders[i].path);
        free(w->folders);
        cat_buf_done(&w->strings);
        cat_buf_done(&w->jobs);
        cat_buf_done(&w->members);
        cat_buf_done(&w->units);
        cat_buf_done(&w->dict);
        cat_buf_done(&w->out);
        free(w->slots);
        free(w->scratch);
        free(w);
}

/*
 * An S3-compatible object store as the archive's store (store.h). Objects are named
 * "[<prefix>/]<path>/<name>", exactly the archive's layout. Temporaries are staged as files of
 * a local store under the archive directory (store_local.c: ".<name>.tmp", swept at start
 * like any), and publish uploads one: a single PUT up to the multipart threshold, else a
 * multipart upload whose parts are read from the staged file with pread (bounded memory).
 *
 * The promises (store.h), kept this way:
 *   P1 a staged file is local, so it is never an object: has() and list_dirs() only see what a
 *      publish made.
 *   P2 a PUT is atomic in S3 (the object is the whole body or the old one), and without
 *      STORE_REPLACE it carries If-None-Match: *, so S3 itself makes exactly one of two
 *      writers win and answers the other 412 (-EEXIST). A multipart upload is atomic too (the
 *      object appears at CompleteMultipartUpload), but S3 does not honour If-None-Match there,
 *      so its no-replace check is a HEAD before the upload: not exclusive against a second
 *      writer. That is why only logs may go up in parts; the record, which decides
 *      "archived", is always one conditional PUT (it is small).
 *   P3 a PUT answered 200 is durable: sync() is a no-op.
 *   P4 there are no symlinks or folders in a bucket: paths are only checked to be plain.
 *   P5 remove() deletes one object; sweep() removes staged files and multipart uploads
 *      abandoned for longer than ABANDONED_UPLOAD_SECONDS, never an object.
 *
 * Requests run on a private HTTP engine (http.c, the same code and retry policy as the
 * Connect requests, with its own multi handle), driven to completion inside each operation,
 * so the store's operations stay synchronous as the interface says. Several requests of one
 * operation (the parts of an upload, the deletes of a day folder) run at once, up to the
 * concurrency cap.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "archive.h"
#include "http.h"
#include "log.h"
#include "macro.h"
#include "paths.h"
#include "s3_read.h"
#include "config.h"
#include "store.h"
#include "util.h"

#define DEFAULT_MULTIPART_THRESHOLD (64u * 1024 * 1024)
#define DEFAULT_PART_SIZE           (16u * 1024 * 1024)
#define MIN_PART_SIZE               (5u * 1024 * 1024)
#define MAX_PARTS                   10000
/* A multipart upload older than this at start belongs to a writer that died. */
#define ABANDONED_UPLOAD_SECONDS 3600
#define S3_PATH_MAX              1024
#define HAS_CACHE_MAX            65536

static const char *const unsigned_payload = "x-amz-content-sha256: UNSIGNED-PAYLOAD";

struct s3_store {
        struct store base;
        struct store *local; /* staging, lock, scratch, free space */
        struct http_engine *http;
        char *endpoint, *bucket, *prefix; /* prefix: "" or "a/b/" */
        uint64_t multipart_threshold, part_size;
        unsigned abandoned_seconds;
        struct store_s3_counts counts;
        /* Records known to exist: has() answers them without a request. */
        char **cache;
        size_t n_cache, cache_cap;
};

struct s3_dir {
        struct store_dir base;
        struct store_dir *local; /* the staging folder; NULL when it was not created */
        char path[S3_PATH_MAX];
};

static void keep_first(int *r, int e)
{
        if (*r == 0 && e < 0)
                *r = e;
}

static struct s3_store *s3_of(struct store *s)
{
        return (struct s3_store *) s;
}

static struct s3_dir *dir_of(struct store_dir *d)
{
        return (struct s3_dir *) d;
}

/* ---- URLs: SigV4's canonical form, which libcurl signs as written ---- */

/* Appends s percent-encoded as SigV4 wants: all but A-Za-z0-9-_.~ as upper-case %XX; '/'
 * kept when keep_slash (object keys). */
static int append_encoded(char *buf, size_t size, size_t *len, const char *s, bool keep_slash)
{
        static const char hex[] = "0123456789ABCDEF";

        for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
                bool plain = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                             (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.' ||
                             *p == '~' || (keep_slash && *p == '/');
                if (*len + 4 >= size)
                        return -ENAMETOOLONG;
                if (plain) {
                        buf[(*len)++] = (char) *p;
                } else {
                        buf[(*len)++] = '%';
                        buf[(*len)++] = hex[*p >> 4];
                        buf[(*len)++] = hex[*p & 15];
                }
        }
        buf[*len] = '\0';
        return 0;
}

static int append_raw(char *buf, size_t size, size_t *len, const char *s)
{
        size_t n = strlen(s);

        if (*len + n + 1 > size)
                return -ENAMETOOLONG;
        memcpy(buf + *len, s, n + 1);
        *len += n;
        return 0;
}

/*
 * "<endpoint>/<bucket>/<key>?<query>", path-style. key may be NULL (the bucket). query holds
 * name/value pairs, already sorted by name (SigV4 signs them in that order), values raw;
 * every parameter is written "name=value", "uploads=" included.
 */
static int build_url(const struct s3_store *s, const char *key, const char *const *query, char *buf,
                     size_t size)
{
        size_t len = 0;
        int r;

        r = append_raw(buf, size, &len, s->endpoint);
        if (r >= 0)
                r = append_raw(buf, size, &len, "/");
        if (r >= 0)
                r = append_raw(buf, size, &len, s->bucket);
        if (r >= 0 && key) {
                r = append_raw(buf, size, &len, "/");
                if (r >= 0)
                        r = append_encoded(buf, size, &len, key, true);
        }
        for (size_t i = 0; r >= 0 && query && query[i]; i += 2) {
                r = append_raw(buf, size, &len, i == 0 ? "?" : "&");
                if (r >= 0)
                        r = append_encoded(buf, size, &len, query[i], false);
                if (r >= 0)
                        r = append_raw(buf, size, &len, "=");
                if (r >= 0)
                        r = append_encoded(buf, size, &len, query[i + 1], false);
        }
        return r;
}

/* "<prefix><path>/<name>" (path "" or name NULL: without that part). */
static int object_key(const struct s3_store *s, const char *path, const char *name, char *buf,
                      size_t size)
{
        int n = snprintf(buf, size, "%s%s%s%s", s->prefix, path, *path && name ? "/" : "",
                         name ? name : "");

        return n < 0 || (size_t) n >= size ? -ENAMETOOLONG : 0;
}

/* ---- Requests, run to completion ---- */

struct s3_call {
        bool done;
        long status;
        enum http_outcome outcome;
        unsigned attempts;
        char etag[128];
        char detail[256];
        char *body; /* the whole response body (or the error body), malloc'd */
        size_t body_len;
};

static void call_done(void *userdata, const struct http_result *res)
{
        struct s3_call *c = userdata;

        c->done = true;
        c->status = res->status;
        c->outcome = res->outcome;
        c->attempts = res->attempts;
        memcpy(c->etag, res->etag, sizeof(c->etag));
        (void) snprintf(c->detail, sizeof(c->detail), "%s", res->detail);
        if (res->body_len > 0) {
                c->body = malloc(res->body_len + 1);
                if (c->body) {
                        memcpy(c->body, res->body, res->body_len);
                        c->body[res->body_len] = '\0';
                        c->body_len = res->body_len;
                }
        }
}

static void call_clear(struct s3_call *c)
{
        free(c->body);
        *c = (struct s3_call){0};
}

/* Runs the engine until every request submitted to it is done. */
static int run_all(struct s3_store *s)
{
        while (http_engine_pending(s->http) > 0) {
                int r = http_engine_run(s->http, USEC_PER_SEC, NULL, 0);
                if (r < 0)
                        return r;
        }
        return 0;
}

static void count(struct s3_store *s, enum http_method m, const struct s3_call *c)
{
        switch (m) {
        case HTTP_METHOD_PUT:
                s->counts.put++;
                if (c->status == 412)
                        s->counts.put_conflict++;
                break;
        case HTTP_METHOD_HEAD:
                s->counts.head++;
                break;
        case HTTP_METHOD_GET:
                s->counts.get++;
                break;
        case HTTP_METHOD_DELETE:
                s->counts.delete_++;
                break;
        case HTTP_METHOD_POST:
                s->counts.post++;
                break;
        }
        if (c->attempts > 1)
                s->counts.retried += c->attempts - 1;
}

/* The S3 error code of an error body ("<Code>SlowDown</Code>"), or "". */
static const char *xml_value(const char *xml, const char *tag, const char **endp, char *buf,
                             size_t size);

static void describe_failure(const struct s3_call *c, const char *what, char *buf, size_t size)
{
        char code[64] = "", esc[LOG_ESCAPE_MAX];

        if (c->body)
                (void) xml_value(c->body, "Code", NULL, code, sizeof(code));
        (void) snprintf(buf, size, "%s: %s%s%s", what, c->detail, *code ? " " : "",
                        log_escape(code, esc, sizeof(esc)));
}

/*
 * -errno for a finished request that did not succeed: 412 -EEXIST, 404 -ENOENT, 401/403
 * -EACCES, a transient failure that outlived its retries -EIO, anything else -EPROTO.
 */
static int call_errno(const struct s3_call *c)
{
        if (c->outcome == HTTP_OK)
                return 0;
        if (c->status == 412)
                return -EEXIST;
        switch (c->outcome) {
        case HTTP_GONE:
                return -ENOENT;
        case HTTP_AUTH:
                return -EACCES;
        case HTTP_RETRY:
                return -EIO;
        default:
                return c->status == 0 ? -EIO : -EPROTO;
        }
}

static int submit(struct s3_store *s, const struct http_call *hc, struct s3_call *c)
{
        *c = (struct s3_call){0};
        return http_submit(s->http, hc, call_done, c);
}

/* One request, run to completion; *c holds the answer (call_clear it). */
static int request(struct s3_store *s, const struct http_call *hc, struct s3_call *c)
{
        int r = submit(s, hc, c);

        if (r >= 0)
                r = run_all(s);
        if (r < 0)
                return r;
        count(s, hc->method, c);
        if (c->outcome != HTTP_OK) {
                char why[512];
                describe_failure(c, hc->url, why, sizeof(why));
                log_printf(LOG_DEBUG, "s3: %s", why);
        }
        return call_errno(c);
}

/* ---- A minimal reader of S3's XML answers ---- */

/* Decodes the five predefined entities and numeric references into buf. */
static void xml_decode(const char *s, size_t len, char *buf, size_t size)
{
        size_t o = 0;

        for (size_t i = 0; i < len && o + 1 < size;) {
                static const struct {
                        const char *name;
                        char ch;
                } ents[] = {{"&amp;", '&'},
                            {"&lt;", '<'},
                            {"&gt;", '>'},
                            {"&quot;", '"'},
                            {"&apos;", '\''}};
                bool done = false;

                if (s[i] == '&') {
                        for (size_t k = 0; k < ELEMENTSOF(ents) && !done; k++) {
                                size_t n = strlen(ents[k].name);
                                if (i + n <= len && memcmp(s + i, ents[k].name, n) == 0) {
                                        buf[o++] = ents[k].ch;
                                        i += n;
                                        done = true;
                                }
                        }
                        if (!done && i + 2 < len && s[i + 1] == '#') {
                                char *end;
                                unsigned long v = s[i + 2] == 'x' ? strtoul(s + i + 3, &end, 16)
                                                                  : strtoul(s + i + 2, &end, 10);
                                if (*end == ';' && v > 0 && v < 0x80) {
                                        buf[o++] = (char) v;
                                        i = (size_t) (end - s) + 1;
                                        done = true;
                                }
                        }
                }
                if (!done)
                        buf[o++] = s[i++];
        }
        buf[o] = '\0';
}

/* The text of the first <tag>...</tag> at or after xml, decoded into buf; NULL when there is
 * none. *endp (when given) points past the closing tag. */
static const char *xml_value(const char *xml, const char *tag, const char **endp, char *buf,
                             size_t size)
{
        char open[64], close[64];
        const char *a, *b;

        (void) snprintf(open, sizeof(open), "<%s>", tag);
        (void) snprintf(close, sizeof(close), "</%s>", tag);
        a = strstr(xml, open);
        if (!a)
                return NULL;
        a += strlen(open);
        b = strstr(a, close);
        if (!b)
                return NULL;
        xml_decode(a, (size_t) (b - a), buf, size);
        if (endp)
                *endp = b + strlen(close);
        return buf;
}

/* ---- The has() cache: records known to exist ---- */

static bool cache_find(const struct s3_store *s, const char *key, size_t *pos)
{
        size_t lo = 0, hi = s->n_cache;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = strcmp(s->cache[mid], key);
                if (c == 0) {
                        *pos = mid;
                        return true;
                }
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        *pos = lo;
        return false;
}

static void cache_clear(struct s3_store *s)
{
        for (size_t i = 0; i < s->n_cache; i++)
                free(s->cache[i]);
        s->n_cache = 0;
}

static void cache_add(struct s3_store *s, const char *key)
{
        size_t pos;
        char *copy;

        if (cache_find(s, key, &pos))
                return;
        /* Bounded: past the cap it starts again (a miss only costs a HEAD). */
        if (s->n_cache >= HAS_CACHE_MAX) {
                cache_clear(s);
                pos = 0;
        }
        if (s->n_cache == s->cache_cap) {
                size_t n = s->cache_cap ? 2 * s->cache_cap : 256;
                char **c = reallocarray(s->cache, n, sizeof(*c));
                if (!c)
                        return;
                s->cache = c;
                s->cache_cap = n;
        }
        copy = strdup(key);
        if (!copy)
                return;
        memmove(s->cache + pos + 1, s->cache + pos, (s->n_cache - pos) * sizeof(*s->cache));
        s->cache[pos] = copy;
        s->n_cache++;
}

static void cache_remove(struct s3_store *s, const char *key)
{
        size_t pos;

        if (!cache_find(s, key, &pos))
                return;
        free(s->cache[pos]);
        memmove(s->cache + pos, s->cache + pos + 1, (s->n_cache - pos - 1) * sizeof(*s->cache));
        s->n_cache--;
}

/* ---- The operations ---- */

static void s3_free(struct store *st)
{
        struct s3_store *s = s3_of(st);

        http_engine_free(s->http);
        store_free(s->local);
        cache_clear(s);
        free(s->cache);
        free(s->endpoint);
        free(s->bucket);
        free(s->prefix);
        free(s);
}

/*
 * The writer lock is the staging folder's (one archiver per archive directory). There is no
 * lock across machines: two archivers on one bucket (an HA pair) both run, and exactly-once
 * comes from the record's conditional PUT (P2).
 */
static int s3_lock(struct store *st, pid_t *reterr_pid)
{
        struct s3_store *s = s3_of(st);

        return s->local ? store_lock(s->local, reterr_pid) : -EROFS;
}

static bool s3_locked(const struct store *st)
{
        const struct s3_store *s = (const struct s3_store *) st;

        return s->local && store_locked(s->local);
}

/* Aborts the multipart uploads under our prefix that were started more than
 * ABANDONED_UPLOAD_SECONDS ago: their writer died (a live one finishes in minutes). */
static int abort_abandoned_uploads(struct s3_store *s, unsigned *removed)
{
        char url[2 * S3_PATH_MAX], marker_key[S3_PATH_MAX] = "", marker_id[512] = "";
        time_t now = time(NULL);
        int first = 0;

        for (int page = 0; page < 1000; page++) {
                const char *query[9];
                size_t nq = 0;
                struct s3_call c;
                bool truncated;
                int r;

                /* Sorted by name: key-marker, prefix, upload-id-marker, uploads. */
                if (*marker_key) {
                        query[nq++] = "key-marker";
                        query[nq++] = marker_key;
                }
                query[nq++] = "prefix";
                query[nq++] = s->prefix;
                if (*marker_id) {
                        query[nq++] = "upload-id-marker";
                        query[nq++] = marker_id;
                }
                query[nq++] = "uploads";
                query[nq++] = "";
                query[nq] = NULL;
                r = build_url(s, NULL, query, url, sizeof(url));
                if (r < 0)
                        return r;
                r = request(s,
                            &(struct http_call){
                                    .url = url,
                                    .method = HTTP_METHOD_GET,
                                    .headers = (const char *const[]){unsigned_payload, NULL}},
                            &c);
                if (r < 0 || !c.body) {
                        call_clear(&c);
                        return r < 0 ? r : 0;
                }
                truncated = strstr(c.body, "<IsTruncated>true</IsTruncated>") != NULL;
                const char *p = c.body, *end;
                char block[4096];
                while (xml_value(p, "Upload", &end, block, sizeof(block))) {
                        char key[S3_PATH_MAX], id[512], when[64];
                        struct tm tm = {0};
                        p = end;
                        if (!xml_value(block, "Key", NULL, key, sizeof(key)) ||
                            !xml_value(block, "UploadId", NULL, id, sizeof(id)) ||
                            !xml_value(block, "Initiated", NULL, when, sizeof(when)) ||
                            !strptime(when, "%Y-%m-%dT%H:%M:%S", &tm))
                                continue;
                        if (now - timegm(&tm) < (time_t) s->abandoned_seconds)
                                continue;
                        const char *q[] = {"uploadId", id, NULL};
                        struct s3_call d;
                        if (build_url(s, key, q, url, sizeof(url)) < 0)
                                continue;
                        r = request(
                                s,
                                &(struct http_call){
                                        .url = url,
                                        .method = HTTP_METHOD_DELETE,
                                        .headers = (const char *const[]){unsigned_payload, NULL}},
                                &d);
                        call_clear(&d);
                        if (r < 0 && r != -ENOENT)
                                keep_first(&first, r);
                        else
                                (*removed)++;
                }
                if (!truncated ||
                    !xml_value(c.body, "NextKeyMarker", NULL, marker_key, sizeof(marker_key)) ||
                    !xml_value(c.body, "NextUploadIdMarker", NULL, marker_id, sizeof(marker_id))) {
                        call_clear(&c);
                        break;
                }
                call_clear(&c);
        }
        return first;
}

static int s3_sweep(struct store *st, unsigned *ret_removed)
{
        struct s3_store *s = s3_of(st);
        unsigned removed = 0, uploads = 0;
        int r;

        if (!s->local)
                return -EROFS;
        r = store_sweep(s->local, &removed);
        if (r < 0)
                return r;
        r = abort_abandoned_uploads(s, &uploads);
        if (uploads > 0)
                log_printf(LOG_NOTICE,
                           "s3: aborted %u multipart uploads abandoned by an earlier run", uploads);
        if (ret_removed)
                *ret_removed = removed + uploads;
        return r;
}

static int s3_dir_open(struct store *st, const char *path, unsigned flags, struct store_dir **ret)
{
        struct s3_store *s = s3_of(st);
        struct s3_dir *d;
        int r;

        if (!path || (*path && !archive_path_is_plain(path)) || strlen(path) >= S3_PATH_MAX)
                return -EINVAL;
        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        d->base.store = st;
        snprintf(d->path, sizeof(d->path), "%s", path);
        /* A reader (no staging) has folders to name objects by, nothing to write in. */
        r = s->local ? store_dir_open(s->local, path, flags, &d->local)
                     : (flags & STORE_CREATE ? -EROFS : -ENOENT);
        if (r < 0 && !(r == -ENOENT && !(flags & STORE_CREATE))) {
                free(d);
                return r;
        }
        *ret = &d->base;
        return 0;
}

/* The staging folder goes when it is empty again (as it is once its files are published), so
 * staging does not collect a day folder per item and day. */
static void s3_dir_close(struct store_dir *dd)
{
        struct s3_dir *d = dir_of(dd);
        struct s3_store *s = s3_of(dd->store);

        store_dir_close(d->local);
        if (d->local && *d->path) {
                char path[S3_PATH_MAX];
                snprintf(path, sizeof(path), "%s", d->path);
                for (;;) {
                        if (store_remove_dir(s->local, path, 0) < 0)
                                break;
                        char *slash = strrchr(path, '/');
                        if (!slash)
                                break;
                        *slash = '\0';
                }
        }
        free(d);
}

static int s3_tmp_create(struct store_dir *dd, const char *name, int *ret_fd)
{
        struct s3_dir *d = dir_of(dd);

        if (!d->local)
                return -ENOENT;
        return store_tmp_create(d->local, name, ret_fd);
}

static int s3_tmp_remove(struct store_dir *dd, const char *name)
{
        struct s3_dir *d = dir_of(dd);

        if (!d->local)
                return -ENOENT;
        return store_tmp_remove(d->local, name);
}

static const char *content_type(const char *name)
{
        size_t len = strlen(name);

        if (len > 3 && strcmp(name + len - 3, ".gz") == 0)
                return "Content-Type: application/gzip";
        return "Content-Type: application/json";
}

static bool name_is_record(const char *name)
{
        size_t len = strlen(name);

        return len > 5 && strcmp(name + len - 5, ".json") == 0 &&
               !(len > 11 && strcmp(name + len - 11, ".error.json") == 0);
}

static int put_single(struct s3_store *s, const char *key, const char *name, int fd, uint64_t size,
                      bool replace)
{
        const char *headers[] = {unsigned_payload, content_type(name),
                                 replace ? NULL : "If-None-Match: *", NULL};
        char url[2 * S3_PATH_MAX];
        struct s3_call c;
        int r;

        r = build_url(s, key, NULL, url, sizeof(url));
        if (r < 0)
                return r;
        r = request(s,
                    &(struct http_call){.url = url,
                                        .method = HTTP_METHOD_PUT,
                                        .headers = headers,
                                        .body_is_fd = true,
                                        .body_fd = fd,
                                        .body_len = size},
                    &c);
        call_clear(&c);
        return r;
}

/* HEAD: 1 when the object exists, 0 when not, or -errno. */
static int head_object(struct s3_store *s, const char *key)
{
        const char *headers[] = {unsigned_payload, NULL};
        char url[2 * S3_PATH_MAX];
        struct s3_call c;
        int r;

        r = build_url(s, key, NULL, url, sizeof(url));
        if (r < 0)
                return r;
        r = request(s,
                    &(struct http_call){.url = url, .method = HTTP_METHOD_HEAD, .headers = headers},
                    &c);
        call_clear(&c);
        if (r == -ENOENT)
                return 0;
        return r < 0 ? r : 1;
}

static void abort_upload(struct s3_store *s, const char *key, const char *id)
{
        const char *query[] = {"uploadId", id, NULL};
        char url[2 * S3_PATH_MAX];
        struct s3_call c;

        if (build_url(s, key, query, url, sizeof(url)) < 0)
                return;
        (void) request(
                s,
                &(struct http_call){.url = url,
                                    .method = HTTP_METHOD_DELETE,
                                    .headers = (const char *const[]){unsigned_payload, NULL}},
                &c);
        call_clear(&c);
}

/*
 * A multipart upload of the staged file: initiate, the parts (at most max_concurrent at once,
 * each read from the file with pread, so memory does not grow with the log), complete. On any
 * failure the upload is aborted, so no part lingers (and the sweep takes what a crash
 * leaves).
 */
static int put_multipart(struct s3_store *s, const char *key, const char *name, int fd,
                         uint64_t size)
{
        const char *headers[] = {unsigned_payload, content_type(name), NULL};
        const char *query_init[] = {"uploads", "", NULL};
        char url[2 * S3_PATH_MAX], id[512];
        uint64_t part = s->part_size;
        size_t n_parts;
        struct s3_call c, *calls = NULL;
        char *xml = NULL;
        size_t xml_len = 0, xml_cap = 0;
        int r;

        while ((size + part - 1) / part > MAX_PARTS)
                part *= 2;
        n_parts = (size_t) ((size + part - 1) / part);

        r = build_url(s, key, query_init, url, sizeof(url));
        if (r < 0)
                return r;
        r = request(s,
                    &(struct http_call){.url = url,
                                        .method = HTTP_METHOD_POST,
                                        .headers = headers,
                                        .body = "",
                                        .body_len = 0},
                    &c);
        if (r >= 0 && (!c.body || !xml_value(c.body, "UploadId", NULL, id, sizeof(id))))
                r = -EPROTO;
        call_clear(&c);
        if (r < 0)
                return r;

        calls = calloc(n_parts, sizeof(*calls));
        if (!calls) {
                r = -ENOMEM;
                goto fail;
        }
        for (size_t i = 0; i < n_parts; i++) {
                char number[24];
                const char *query[] = {"partNumber", number, "uploadId", id, NULL};
                uint64_t off = (uint64_t) i * part;
                snprintf(number, sizeof(number), "%zu", i + 1);
                r = build_url(s, key, query, url, sizeof(url));
                if (r >= 0)
                        r = submit(s,
                                   &(struct http_call){
                                           .url = url,
                                           .method = HTTP_METHOD_PUT,
                                           .headers = (const char *const[]){unsigned_payload, NULL},
                                           .body_is_fd = true,
                                           .body_fd = fd,
                                           .body_offset = off,
                                           .body_len = size - off < part ? size - off : part},
                                   &calls[i]);
                if (r < 0) {
                        http_engine_cancel_all(s->http);
                        goto fail;
                }
        }
        r = run_all(s);
        for (size_t i = 0; i < n_parts; i++) {
                count(s, HTTP_METHOD_PUT, &calls[i]);
                if (r >= 0 && (calls[i].outcome != HTTP_OK || !calls[i].etag[0]))
                        r = calls[i].outcome != HTTP_OK ? call_errno(&calls[i]) : -EPROTO;
        }
        if (r < 0)
                goto fail;

        r = buf_append(&xml, &xml_len, &xml_cap, "<CompleteMultipartUpload>", 25, 4096);
        for (size_t i = 0; r >= 0 && i < n_parts; i++) {
                char one[256];
                int n = snprintf(one, sizeof(one),
                                 "<Part><PartNumber>%zu</PartNumber><ETag>%s</ETag></Part>", i + 1,
                                 calls[i].etag);
                r = n > 0 && (size_t) n < sizeof(one)
                            ? buf_append(&xml, &xml_len, &xml_cap, one, (size_t) n, 4096)
                            : -EPROTO;
        }
        if (r >= 0)
                r = buf_append(&xml, &xml_len, &xml_cap, "</CompleteMultipartUpload>", 26, 4096);
        if (r < 0)
                goto fail;
        const char *query_done[] = {"uploadId", id, NULL};
        r = build_url(s, key, query_done, url, sizeof(url));
        if (r >= 0)
                r = request(s,
                            &(struct http_call){
                                    .url = url,
                                    .method = HTTP_METHOD_POST,
                                    .headers = (const char *const[]){unsigned_payload, NULL},
                                    .body = xml,
                                    .body_len = xml_len},
                            &c);
        /* S3 may answer 200 and put the failure in the body. */
        if (r >= 0 && c.body && strstr(c.body, "<Error>"))
                r = -EIO;
        call_clear(&c);
        if (r < 0)
                goto fail;
        for (size_t i = 0; i < n_parts; i++)
                call_clear(&calls[i]);
        free(calls);
        free(xml);
        return 0;
fail:
        for (size_t i = 0; calls && i < n_parts; i++)
                call_clear(&calls[i]);
        free(calls);
        free(xml);
        abort_upload(s, key, id);
        return r;
}

static int s3_publish(struct store_dir *dd, const char *name, unsigned flags)
{
        struct s3_dir *d = dir_of(dd);
        struct s3_store *s = s3_of(dd->store);
        char key[S3_PATH_MAX];
        bool replace = flags & STORE_REPLACE;
        struct stat st;
        int fd, r;

        if (!d->local)
                return -ENOENT;
        r = object_key(s, d->path, name, key, sizeof(key));
        if (r < 0)
                return r;
        fd = store_local_tmp_open(d->local, name);
        if (fd < 0)
                return fd;
        if (fstat(fd, &st) < 0) {
                r = -errno;
                (void) close(fd);
                return r;
        }
        if ((uint64_t) st.st_size <= s->multipart_threshold || name_is_record(name)) {
                r = put_single(s, key, name, fd, (uint64_t) st.st_size, replace);
        } else {
                /* Not exclusive (S3 ignores If-None-Match on multipart): a check first. */
                r = replace ? 0 : head_object(s, key);
                if (r > 0)
                        r = -EEXIST;
                if (r >= 0)
                        r = put_multipart(s, key, name, fd, (uint64_t) st.st_size);
        }
        (void) close(fd);
        if (r < 0)
                return r;
        if (name_is_record(name))
                cache_add(s, key);
        (void) store_tmp_remove(d->local, name);
        return 0;
}

/* How many PUTs publish_many() has open at once (each holds its staged file open); the
 * engine's cap (max_concurrent) decides how many are on the wire. */
#define PUBLISH_MANY_WINDOW 64

/* The single PUTs of up to PUBLISH_MANY_WINDOW names, submitted at once and run together. */
static int publish_window(struct s3_store *s, struct store_dir *const *dirs,
                          const char *const *names, size_t n, bool replace, int *results)
{
        struct s3_call calls[PUBLISH_MANY_WINDOW];
        int fds[PUBLISH_MANY_WINDOW];
        bool submitted[PUBLISH_MANY_WINDOW] = {false};
        char url[2 * S3_PATH_MAX], key[S3_PATH_MAX];
        int r = 0;

        for (size_t i = 0; i < n; i++) {
                struct s3_dir *d = dir_of(dirs[i]);
                const char *headers[] = {unsigned_payload, content_type(names[i]),
                                         replace ? NULL : "If-None-Match: *", NULL};
                struct stat st;

                fds[i] = -1;
                results[i] =
                        d->local ? object_key(s, d->path, names[i], key, sizeof(key)) : -ENOENT;
                if (results[i] >= 0)
                        results[i] = build_url(s, key, NULL, url, sizeof(url));
                if (results[i] >= 0) {
                        fds[i] = store_local_tmp_open(d->local, names[i]);
                        results[i] = fds[i] < 0 ? fds[i] : fstat(fds[i], &st) < 0 ? -errno : 0;
                }
                if (results[i] >= 0 && (uint64_t) st.st_size > s->multipart_threshold &&
                    !name_is_record(names[i])) {
                        /* Big: the one-at-a-time path (a check, then its parts at once). */
                        results[i] = s3_publish(dirs[i], names[i], replace ? STORE_REPLACE : 0);
                        continue;
                }
                if (results[i] >= 0)
                        results[i] = submit(s,
                                            &(struct http_call){.url = url,
                                                                .method = HTTP_METHOD_PUT,
                                                                .headers = headers,
                                                                .body_is_fd = true,
                                                                .body_fd = fds[i],
                                                                .body_len = (uint64_t) st.st_size},
                                            &calls[i]);
                submitted[i] = results[i] >= 0;
        }
        r = run_all(s);
        for (size_t i = 0; i < n; i++) {
                if (submitted[i]) {
                        struct s3_dir *d = dir_of(dirs[i]);

                        count(s, HTTP_METHOD_PUT, &calls[i]);
                        results[i] = r < 0 ? r : call_errno(&calls[i]);
                        if (calls[i].outcome != HTTP_OK) {
                                char why[512];
                                describe_failure(&calls[i], names[i], why, sizeof(why));
                                log_printf(LOG_DEBUG, "s3: PUT %s/%s", d->path, why);
                        }
                        call_clear(&calls[i]);
                        if (results[i] >= 0) {
                                if (name_is_record(names[i]) &&
                                    object_key(s, d->path, names[i], key, sizeof(key)) >= 0)
                                        cache_add(s, key);
                                (void) store_tmp_remove(d->local, names[i]);
                        }
                }
                if (fds[i] >= 0)
                        (void) close(fds[i]);
        }
        return r;
}

static int s3_publish_many(struct store *st, struct store_dir *const *dirs,
                           const char *const *names, size_t n, unsigned flags, int *results)
{
        struct s3_store *s = s3_of(st);
        int r = 0;

        for (size_t i = 0; i < n; i += PUBLISH_MANY_WINDOW) {
                size_t m = n - i < PUBLISH_MANY_WINDOW ? n - i : PUBLISH_MANY_WINDOW;
                int e = publish_window(s, dirs + i, names + i, m, flags & STORE_REPLACE,
                                       results + i);
                if (e < 0) { /* the engine itself failed: the rest cannot go either */
                        for (size_t k = i + m; k < n; k++)
                                results[k] = e;
                        return e;
                }
        }
        for (size_t i = 0; i < n; i++)
                keep_first(&r, results[i]);
        return r;
}

static int s3_sync(struct store *st, struct store_dir *const *dirs, size_t n, int *results)
{
        for (size_t i = 0; i < n; i++)
                results[i] = 0;
        return 0;
}

static int delete_object(struct s3_store *s, const char *key)
{
        const char *headers[] = {unsigned_payload, NULL};
        char url[2 * S3_PATH_MAX];
        struct s3_call c;
        int r;

        r = build_url(s, key, NULL, url, sizeof(url));
        if (r < 0)
                return r;
        r = request(
                s,
                &(struct http_call){.url = url, .method = HTTP_METHOD_DELETE, .headers = headers},
                &c);
        call_clear(&c);
        return r;
}

/*
 * A rollback's removal. Without an exclusive writer, a log or error object may already be
 * the one another archiver's record describes (both wrote the same job's files): it is
 * removed only while the job has no record, checked just before.
 */
static int s3_remove(struct store_dir *dd, const char *name)
{
        struct s3_dir *d = dir_of(dd);
        struct s3_store *s = s3_of(dd->store);
        char key[S3_PATH_MAX];
        int r;

        r = object_key(s, d->path, name, key, sizeof(key));
        if (r < 0)
                return r;
        if (!name_is_record(name)) {
                char rec[S3_PATH_MAX], base[S3_PATH_MAX];
                size_t len = strlen(name);
                const char *suffix = len > 11 && strcmp(name + len - 11, ".error.json") == 0
                                             ? ".error.json"
                                             : ".log.gz";
                if (len <= strlen(suffix))
                        return -EINVAL;
                snprintf(base, sizeof(base), "%.*s.json", (int) (len - strlen(suffix)), name);
                if (object_key(s, d->path, base, rec, sizeof(rec)) < 0)
                        return -ENAMETOOLONG;
                r = head_object(s, rec);
                if (r != 0)
                        return r > 0 ? -EEXIST : r;
        } else {
                cache_remove(s, key);
        }
        return delete_object(s, key);
}

static int s3_has(struct store *st, const char *path, const char *name)
{
        struct s3_store *s = s3_of(st);
        char key[S3_PATH_MAX];
        size_t pos;
        int r;

        if (!path || !archive_path_is_plain(path))
                return -EINVAL;
        r = object_key(s, path, name, key, sizeof(key));
        if (r < 0)
                return r;
        if (cache_find(s, key, &pos))
                return 1;
        r = head_object(s, key);
        if (r > 0)
                cache_add(s, key);
        return r;
}

static int compare_names(const void *x, const void *y)
{
        return strcmp(*(char *const *) x, *(char *const *) y);
}

/*
 * One page of ListObjectsV2 of prefix lp (with delimiter '/' when delimited), from the
 * continuation token (when not "") or after the key start (when not NULL); *c holds the
 * answer (call_clear it). Counted as a LIST, not a GET.
 */
static int list_page(struct s3_store *s, const char *lp, bool delimited, const char *token,
                     const char *start, struct s3_call *c)
{
        const char *query[11];
        char url[4 * S3_PATH_MAX]; /* the prefix and the start key, both encoded */
        size_t nq = 0;
        int r;

        /* Sorted: continuation-token, delimiter, list-type, prefix, start-after. */
        if (*token) {
                query[nq++] = "continuation-token";
                query[nq++] = token;
        }
        if (delimited) {
                query[nq++] = "delimiter";
                query[nq++] = "/";
        }
        query[nq++] = "list-type";
        query[nq++] = "2";
        query[nq++] = "prefix";
        query[nq++] = lp;
        if (start) {
                query[nq++] = "start-after";
                query[nq++] = start;
        }
        query[nq] = NULL;
        *c = (struct s3_call){0};
        r = build_url(s, NULL, query, url, sizeof(url));
        if (r < 0)
                return r;
        r = request(s,
                    &(struct http_call){.url = url,
                                        .method = HTTP_METHOD_GET,
                                        .headers = (const char *const[]){unsigned_payload, NULL}},
                    c);
        s->counts.list++;
        s->counts.get--;
        return r;
}

/*
 * ListObjectsV2 of "<prefix><path>/" with delimiter '/': each CommonPrefix (or, with
 * want_objects, each object) one level below, as a name. Pages through continuation tokens.
 */
static int list_level(struct s3_store *s, const char *path, bool want_objects, char ***ret,
                      size_t *ret_n)
{
        char lp[S3_PATH_MAX], token[1024] = "";
        char **names = NULL;
        size_t n = 0, cap = 0, lp_len;
        int r = 0;

        if (snprintf(lp, sizeof(lp), "%s%s%s", s->prefix, path, *path ? "/" : "") >=
            (int) sizeof(lp))
                return -ENAMETOOLONG;
        lp_len = strlen(lp);
        for (;;) {
                struct s3_call c;
                const char *p, *end;
                char item[S3_PATH_MAX];
                bool truncated;

                r = list_page(s, lp, true, token, NULL, &c);
                if (r < 0 || !c.body) {
                        call_clear(&c);
                        break;
                }
                p = c.body;
                for (;;) {
                        const char *tag = want_objects ? "<Contents>" : "<CommonPrefixes>";
                        const char *b = strstr(p, tag);
                        if (!b)
                                break;
                        if (!xml_value(b, want_objects ? "Key" : "Prefix", &end, item,
                                       sizeof(item)))
                                break;
                        p = end;
                        size_t len = strlen(item);
                        if (len <= lp_len || strncmp(item, lp, lp_len) != 0)
                                continue;
                        char *name = item + lp_len;
                        if (!want_objects && name[strlen(name) - 1] == '/')
                                name[strlen(name) - 1] = '\0';
                        if (!*name || strchr(name, '/'))
                                continue;
                        if (n + 1 >= cap) {
                                size_t nc = cap ? 2 * cap : 16;
                                char **np = reallocarray(names, nc, sizeof(*np));
                                if (!np) {
                                        r = -ENOMEM;
                                        break;
                                }
                                names = np;
                                cap = nc;
                        }
                        if (!(names[n] = strdup(name))) {
                                r = -ENOMEM;
                                break;
                        }
                        n++;
                }
                truncated = strstr(c.body, "<IsTruncated>true</IsTruncated>") != NULL;
                if (r < 0 || !truncated ||
                    !xml_value(c.body, "NextContinuationToken", NULL, token, sizeof(token))) {
                        call_clear(&c);
                        break;
                }
                call_clear(&c);
        }
        if (r < 0) {
                store_names_free(names, n);
                return r;
        }
        if (n > 1)
                qsort(names, n, sizeof(*names), compare_names);
        *ret = names;
        *ret_n = n;
        return 0;
}

static int s3_list_dirs(struct store *st, const char *path, char ***ret, size_t *ret_n)
{
        if (!path || (*path && !archive_path_is_plain(path)))
                return -EINVAL;
        return list_level(s3_of(st), path, false, ret, ret_n);
}

static int s3_list_files(struct store *st, const char *path, char ***ret, size_t *ret_n)
{
        if (!path || (*path && !archive_path_is_plain(path)))
                return -EINVAL;
        return list_level(s3_of(st), path, true, ret, ret_n);
}

/*
 * Retention's removal of a day folder: its objects, the records first (so a job stops
 * counting as archived before its files go, as on disk), the deletes running at once. A
 * folder is only a key prefix: without STORE_REMOVE_FILES there is nothing to remove.
 */
static int s3_remove_dir(struct store *st, const char *path, unsigned flags)
{
        struct s3_store *s = s3_of(st);
        char **names = NULL;
        size_t n = 0;
        int r, first = 0;

        if (!path || !archive_path_is_plain(path))
                return -EINVAL;
        if (!(flags & STORE_REMOVE_FILES))
                return 0;
        r = list_level(s, path, true, &names, &n);
        if (r < 0)
                return r;
        cache_clear(s);
        for (int pass = 0; pass < 2; pass++) {
                struct s3_call *calls = calloc(n ? n : 1, sizeof(*calls));
                bool *used = calloc(n ? n : 1, sizeof(*used));
                if (!calls || !used) {
                        free(calls);
                        free(used);
                        store_names_free(names, n);
                        return -ENOMEM;
                }
                for (size_t i = 0; i < n; i++) {
                        char key[S3_PATH_MAX], url[2 * S3_PATH_MAX];
                        if (name_is_record(names[i]) != (pass == 0))
                                continue;
                        if (object_key(s, path, names[i], key, sizeof(key)) < 0 ||
                            build_url(s, key, NULL, url, sizeof(url)) < 0)
                                continue;
                        if (submit(s,
                                   &(struct http_call){
                                           .url = url,
                                           .method = HTTP_METHOD_DELETE,
                                           .headers =
                                                   (const char *const[]){unsigned_payload, NULL}},
                                   &calls[i]) >= 0)
                                used[i] = true;
                }
                r = run_all(s);
                keep_first(&first, r);
                for (size_t i = 0; i < n; i++) {
                        if (!used[i])
                                continue;
                        count(s, HTTP_METHOD_DELETE, &calls[i]);
                        r = call_errno(&calls[i]);
                        if (r != -ENOENT)
                                keep_first(&first, r);
                        call_clear(&calls[i]);
                }
                free(calls);
                free(used);
        }
        store_names_free(names, n);
        return first;
}

static int s3_scratch_fd(struct store *st)
{
        struct s3_store *s = s3_of(st);

        return s->local ? store_scratch_fd(s->local) : -EROFS;
}

static int s3_free_space(struct store *st, uint64_t *ret_bytes)
{
        struct s3_store *s = s3_of(st);

        return s->local ? store_free_space(s->local, ret_bytes) : -EROFS;
}

static const struct store_ops s3_ops = {
        .kind = "s3",
        .shared = true,
        .free = s3_free,
        .lock = s3_lock,
        .locked = s3_locked,
        .sweep = s3_sweep,
        .dir_open = s3_dir_open,
        .dir_close = s3_dir_close,
        .tmp_create = s3_tmp_create,
        .tmp_remove = s3_tmp_remove,
        .publish = s3_publish,
        .sync = s3_sync,
        .remove = s3_remove,
        .has = s3_has,
        .list_dirs = s3_list_dirs,
        .list_files = s3_list_files,
        .publish_many = s3_publish_many,
        .remove_dir = s3_remove_dir,
        .find_symlink = NULL,
        .scratch_fd = s3_scratch_fd,
        .free_space = s3_free_space,
};

void store_s3_counts(const struct store *st, struct store_s3_counts *ret)
{
        *ret = ((const struct s3_store *) st)->counts;
}

/* One ListObjectsV2 of at most one key: do the credentials and the bucket work? */
static int probe(struct s3_store *s, char *errbuf, size_t errsize)
{
        const char *query[] = {"list-type", "2", "max-keys", "1", "prefix", s->prefix, NULL};
        char url[2 * S3_PATH_MAX], code[64] = "", esc[LOG_ESCAPE_MAX];
        struct s3_call c;
        int r;

        r = build_url(s, NULL, query, url, sizeof(url));
        if (r < 0)
                return r;
        r = request(s,
                    &(struct http_call){.url = url,
                                        .method = HTTP_METHOD_GET,
                                        .headers = (const char *const[]){unsigned_payload, NULL}},
                    &c);
        s->counts.list++;
        s->counts.get--;
        if (c.body)
                (void) xml_value(c.body, "Code", NULL, code, sizeof(code));
        (void) log_escape(code, esc, sizeof(esc));
        if (r == -EACCES || c.status == 400) {
                snprintf(errbuf, errsize,
                         "S3 refuses the credentials for bucket %s at %s (HTTP %ld%s%s)%s",
                         s->bucket, s->endpoint, c.status, *esc ? " " : "", esc,
                         strcmp(code, "AccessDenied") == 0
                                 ? ": the key may not list the bucket"
                                 : ": check the access key id and the secret");
                r = -EKEYREJECTED;
        } else if (r == -ENOENT) {
                snprintf(errbuf, errsize, "S3 bucket %s does not exist at %s (HTTP %ld%s%s)",
                         s->bucket, s->endpoint, c.status, *esc ? " " : "", esc);
                r = -ENOMEDIUM;
        } else if (r < 0) {
                snprintf(errbuf, errsize, "cannot reach S3 bucket %s at %s: %s%s%s", s->bucket,
                         s->endpoint, c.detail, *esc ? " " : "", esc);
                r = -EIO;
        }
        call_clear(&c);
        return r;
}

void store_s3_options_from_config(const struct config *c, struct store_s3_options *ret)
{
        *ret = (struct store_s3_options){
                .endpoint = c->s3_endpoint,
                .bucket = c->s3_bucket,
                .prefix = c->s3_prefix,
                .region = c->s3_region,
                .access_key_id = c->s3_access_key_id,
                .secret_access_key = c->s3_secret_access_key,
                .staging_dir = c->archive_dir,
                .timeout_seconds = c->timeout_seconds,
                .max_concurrent = c->max_concurrent_requests,
        };
}

int store_s3_open(const struct store_s3_options *o, struct store **ret, char *errbuf,
                  size_t errsize)
{
        _cleanup_free_ char *sigv4 = NULL, *userpwd = NULL;
        struct s3_store *s;
        int r;

        if (!o || !o->endpoint || !o->bucket || !o->region || !o->access_key_id ||
            !o->secret_access_key || !ret)
                return -EINVAL;
        snprintf(errbuf, errsize, "out of memory");
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->base.ops = &s3_ops;
        s->multipart_threshold =
                o->multipart_threshold ? o->multipart_threshold : DEFAULT_MULTIPART_THRESHOLD;
        s->part_size = o->part_size >= MIN_PART_SIZE ? o->part_size : DEFAULT_PART_SIZE;
        s->abandoned_seconds = o->abandoned_upload_seconds ? o->abandoned_upload_seconds
                                                           : ABANDONED_UPLOAD_SECONDS;
        s->endpoint = strdup(o->endpoint);
        s->bucket = strdup(o->bucket);
        if (o->prefix && *o->prefix)
                r = asprintf(&s->prefix, "%s/", o->prefix);
        else
                r = (s->prefix = strdup("")) ? 0 : -1;
        if (!s->endpoint || !s->bucket || r < 0 ||
            asprintf(&sigv4, "aws:amz:%s:s3", o->region) < 0 ||
            asprintf(&userpwd, "%s:%s", o->access_key_id, o->secret_access_key) < 0) {
                if (r < 0)
                        s->prefix = NULL;
                s3_free(&s->base);
                return -ENOMEM;
        }
        r = o->staging_dir ? store_local_open(o->staging_dir, &s->local) : 0;
        if (r < 0) {
                snprintf(errbuf, errsize, "cannot open the staging folder %s: %s", o->staging_dir,
                         strerror(-r));
                explicit_bzero(userpwd, strlen(userpwd));
                s3_free(&s->base);
                return r;
        }
        const struct http_options ho = {
                .aws_sigv4 = sigv4,
                .aws_userpwd = userpwd,
                .verify_tls = true,
                .timeout_seconds = o->timeout_seconds ? o->timeout_seconds : 30,
                .max_concurrent = o->max_concurrent ? o->max_concurrent : 8,
                .max_attempts = 4,
                /* The loop thread waits for these: shorter pauses than Connect's requests. */
                .backoff_base_usec = 200 * USEC_PER_MSEC,
                .backoff_cap_usec = 5 * USEC_PER_SEC,
                .verbose = o->verbose,
        };
        r = http_engine_new(&ho, &s->http);
        explicit_bzero(userpwd, strlen(userpwd));
        if (r < 0) {
                s3_free(&s->base);
                return r;
        }
        r = probe(s, errbuf, errsize);
        if (r < 0) {
                s3_free(&s->base);
                return r;
        }
        *ret = &s->base;
        return 0;
}

/* ---- Reading (s3_read.h): for connect-jobs and the catalog's readers ---- */

static int read_errno(int r)
{
        return r == -EACCES ? -EKEYREJECTED : r;
}

void s3_objects_free(struct s3_object *o, size_t n)
{
        for (size_t i = 0; o && i < n; i++)
                free(o[i].name);
        free(o);
}

int s3_list_objects(struct store *st, const char *path, const char *after, const char *until,
                    struct s3_object **ret, size_t *ret_n)
{
        struct s3_store *s = s3_of(st);
        char lp[S3_PATH_MAX], start[S3_PATH_MAX] = "", token[1024] = "";
        struct s3_object *objs = NULL;
        size_t n = 0, cap = 0, lp_len, until_len = until ? strlen(until) : 0;
        bool stop = false;
        int r = 0;

        if (!path || (*path && !archive_path_is_plain(path)))
                return -EINVAL;
        if (snprintf(lp, sizeof(lp), "%s%s%s", s->prefix, path, *path ? "/" : "") >=
                    (int) sizeof(lp) ||
            (after && snprintf(start, sizeof(start), "%s%s", lp, after) >= (int) sizeof(start)))
                return -ENAMETOOLONG;
        lp_len = strlen(lp);
        while (!stop) {
                struct s3_call c;
                const char *p, *end;
                char block[4 * S3_PATH_MAX], key[S3_PATH_MAX], size[32];

                r = list_page(s, lp, false, token, *start && !*token ? start : NULL, &c);
                if (r >= 0 && !c.body)
                        r = -EPROTO;
                if (r < 0) {
                        call_clear(&c);
                        break;
                }
                p = c.body;
                while (!stop && xml_value(p, "Contents", &end, block, sizeof(block))) {
                        char *e;
                        p = end;
                        if (!xml_value(block, "Key", NULL, key, sizeof(key)) ||
                            !xml_value(block, "Size", NULL, size, sizeof(size)) ||
                            strncmp(key, lp, lp_len) != 0 || !key[lp_len])
                                continue;
                        const char *name = key + lp_len;
                        if (until && strncmp(name, until, until_len) > 0) {
                                stop = true;
                                break;
                        }
                        if (n == cap) {
                                size_t nc = cap ? 2 * cap : 64;
                                struct s3_object *no = reallocarray(objs, nc, sizeof(*no));
                                if (!no) {
                                        r = -ENOMEM;
                                        break;
                                }
                                objs = no;
                                cap = nc;
                        }
                        errno = 0;
                        objs[n].size = strtoull(size, &e, 10);
                        if (errno || *e || !(objs[n].name = strdup(name))) {
                                r = errno || *e ? -EPROTO : -ENOMEM;
                                break;
                        }
                        n++;
                }
                if (r < 0 || stop || !strstr(c.body, "<IsTruncated>true</IsTruncated>") ||
                    !xml_value(c.body, "NextContinuationToken", NULL, token, sizeof(token)))
                        stop = true;
                call_clear(&c);
        }
        if (r < 0) {
                s3_objects_free(objs, n);
                return read_errno(r);
        }
        *ret = objs;
        *ret_n = n;
        return 0;
}

struct get_ctx {
        struct s3_get *g;
        struct s3_call call;
        size_t cap;
        int error;
};

static int get_begin(void *userdata)
{
        struct get_ctx *x = userdata;

        x->g->len = 0;
        if (x->g->fd >= 0 && !x->g->at_offset && ftruncate(x->g->fd, 0) < 0)
                return -errno;
        return 0;
}

static int get_write(void *userdata, const void *data, size_t len)
{
        struct get_ctx *x = userdata;
        struct s3_get *g = x->g;

        if (g->fd < 0) {
                if (g->len + len > HTTP_BODY_MAX)
                        return -EFBIG;
                return buf_append(&g->buf, &g->len, &x->cap, data, len, 4096);
        }
        for (const char *p = data; len > 0;) {
                ssize_t k =
                        pwrite(g->fd, p, len, (off_t) (g->at_offset ? g->offset + g->len : g->len));
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                p += k;
                len -= (size_t) k;
                g->len += (size_t) k;
        }
        return 0;
}

static void get_abort(void *userdata)
{
        struct get_ctx *x = userdata;

        x->g->len = 0;
        if (x->g->fd >= 0 && !x->g->at_offset)
                (void) ftruncate(x->g->fd, 0);
}

static void get_done(void *userdata, const struct http_result *res)
{
        call_done(&((struct get_ctx *) userdata)->call, res);
}

static const struct http_sink get_sink = {
        .begin = get_begin,
        .write = get_write,
        .abort = get_abort,
};

int s3_get_many(struct store *st, struct s3_get *gets, size_t n)
{
        struct s3_store *s = s3_of(st);
        struct get_ctx *x;
        int r, first = 0;

        if (n == 0)
                return 0;
        x = calloc(n, sizeof(*x));
        if (!x)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                char key[S3_PATH_MAX], url[2 * S3_PATH_MAX], range[64];
                struct s3_get *g = &gets[i];

                x[i].g = g;
                g->buf = NULL;
                g->len = 0;
                g->result = -EINVAL;
                if (!g->path || (*g->path && !archive_path_is_plain(g->path)) || !g->name ||
                    !path_component_is_safe(g->name, strlen(g->name)) ||
                    (g->at_offset && (g->fd < 0 || g->length == 0)))
                        continue;
                g->result = object_key(s, g->path, g->name, key, sizeof(key));
                if (g->result >= 0)
                        g->result = build_url(s, key, NULL, url, sizeof(url));
                if (g->result < 0)
                        continue;
                (void) snprintf(range, sizeof(range), "Range: bytes=%" PRIu64 "-%" PRIu64,
                                g->offset, g->offset + g->length - 1);
                g->result = http_submit(
                        s->http,
                        &(struct http_call){
                                .url = url,
                                .method = HTTP_METHOD_GET,
                                .sink = &get_sink,
                                .headers = (const char *const[]){unsigned_payload,
                                                                 g->length ? range : NULL, NULL}},
                        get_done, &x[i]);
                if (g->result >= 0)
                        g->result = 1; /* submitted */
        }
        r = run_all(s);
        for (size_t i = 0; i < n; i++) {
                struct s3_get *g = &gets[i];
                if (g->result == 1) {
                        count(s, HTTP_METHOD_GET, &x[i].call);
                        g->result = r < 0 ? r : read_errno(call_errno(&x[i].call));
                        if (g->result == 0 && g->length && x[i].call.status != 206)
                                g->result = -EPROTO; /* the Range was not honoured */
                        if (g->result < 0 && x[i].call.outcome != HTTP_OK) {
                                char why[512];
                                describe_failure(&x[i].call, g->name, why, sizeof(why));
                                log_printf(LOG_DEBUG, "s3: GET %s", why);
                        }
                }
                if (g->result == 0 && g->fd < 0 && !g->buf && !(g->buf = strdup("")))
                        g->result = -ENOMEM;
                if (g->result == 0 && g->fd < 0)
                        g->buf[g->len] = '\0';
                if (g->result < 0 && g->fd < 0) {
                        free(g->buf);
                        g->buf = NULL;
                        g->len = 0;
                }
                keep_first(&first, g->result);
                call_clear(&x[i].call);
        }
        free(x);
        return first;
}

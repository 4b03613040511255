/*
 * libFuzzer target for what connect.c makes of server bodies: the job list, the error
 * record, the error message, and the <key>.json record built from each usable job. The same
 * bytes also go through rfc3339_parse() and path_component_is_safe(), which are cheap.
 *
 * Invariants checked on every input (a violation aborts, which libFuzzer reports as a crash):
 *   - every job without `invalid` has a key that connect_job_key_is_safe() accepts and that
 *     equals the served "key" (no NUL inside), a status in 0..1000, and either a date in
 *     1970..9999 whose year/month/day agree with the field its date_source names (start_time,
 *     end_time, queued_time), each earlier field being unusable, or date_source first_seen
 *     with no usable field at all;
 *   - the stream parser (connect_stream_*), fed the same bytes in pieces whose sizes come
 *     from the input itself, accepts exactly what the whole-buffer parse accepts and hands
 *     over the same jobs in order; each element's raw bytes parse back to the same job;
 *   - the <key>.json record and the error record end in one newline and parse back, strictly,
 *     to the served objects;
 *   - a job URL percent-encodes the key into exactly one path segment that decodes back;
 *   - connect_error_message() writes printable ASCII starting with "HTTP <status>";
 *   - an accepted RFC 3339 time formats and parses back to the same second.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "connect.h"
#include "util.h"
#include "../job_equal.h"

#define CHECK(x)                                                                                   \
        do {                                                                                       \
                if (!(x))                                                                          \
                        abort();                                                                   \
        } while (0)

#define SERVER "https://connect.example.com"
#define GUID   "38400000-8cf0-11bd-b23e-10b96e4ef00d"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * Parses text the way a strict reader of the archive would. The record nests the job one
 * level deeper than connect.c's own limit of 32, so allow more.
 */
static struct json_object *parse_back(const char *s)
{
        struct json_tokener *tok = json_tokener_new_ex(64);
        struct json_object *obj;
        size_t len = strlen(s);

        CHECK(tok);
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
        obj = json_tokener_parse_ex(tok, s, (int) len);
        CHECK(obj && json_tokener_get_error(tok) == json_tokener_success);
        /* Nothing but the newline after the value (json-c eats trailing whitespace). */
        CHECK(json_tokener_get_parse_end(tok) == len);
        CHECK(len >= 2 && s[len - 1] == '\n' && s[len - 2] != '\n');
        json_tokener_free(tok);
        return obj;
}

static int hexval(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* The key must come back from ".../jobs/<enc>/log" unchanged. */
static void check_job_url(const char *key)
{
        static const char prefix[] = SERVER "/__api__/v1/content/" GUID "/jobs/";
        char *url = NULL, *dec;
        size_t n = 0;

        if (connect_job_url(SERVER, GUID, key, "log", &url) < 0)
                return;
        CHECK(strncmp(url, prefix, sizeof(prefix) - 1) == 0);
        const char *enc = url + sizeof(prefix) - 1;
        const char *end = strchr(enc, '/');
        CHECK(end && strcmp(end, "/log") == 0);
        dec = malloc((size_t) (end - enc) + 1);
        CHECK(dec);
        for (const char *s = enc; s < end; s++) {
                if (*s == '%') {
                        CHECK(end - s >= 3);
                        int hi = hexval(s[1]), lo = hexval(s[2]);
                        CHECK(hi >= 0 && lo >= 0);
                        dec[n++] = (char) (hi << 4 | lo);
                        s += 2;
                } else {
                        CHECK(strchr("-._~", *s) || (*s >= '0' && *s <= '9') ||
                              (*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z'));
                        dec[n++] = *s;
                }
        }
        dec[n] = '\0';
        CHECK(strcmp(dec, key) == 0);
        free(dec);
        free(url);
}

static void check_job(const struct job *j, size_t i)
{
        struct json_object *v, *rec, *back;
        char *record = NULL;
        struct tm tm;
        int64_t t;

        /* A JSON null element is an invalid job with no object (json-c's null is NULL). */
        if (j->invalid) {
                CHECK(*j->invalid != '\0');
                return;
        }
        CHECK(j->obj && j->key);
        size_t key_len = strlen(j->key);
        CHECK(connect_job_key_is_safe(j->key, key_len));
        CHECK(json_object_is_type(j->obj, json_type_object));
        CHECK(json_object_object_get_ex(j->obj, "key", &v));
        CHECK(json_object_is_type(v, json_type_string));
        CHECK((size_t) json_object_get_string_len(v) == key_len);
        CHECK(memcmp(json_object_get_string(v), j->key, key_len) == 0);

        CHECK(j->status >= 0 && j->status <= 1000);
        CHECK(connect_job_is_due(j) == (j->status == 2 || j->status == 3));
        static const char *const fields[] = {"start_time", "end_time", "queued_time"};
        for (size_t f = 0; f < 3 && f <= (size_t) j->date_source; f++) {
                bool usable = json_object_object_get_ex(j->obj, fields[f], &v) &&
                              json_object_is_type(v, json_type_string) &&
                              rfc3339_parse(json_object_get_string(v), &t) == 0;
                if (usable) {
                        time_t tf = (time_t) t;
                        usable = gmtime_r(&tf, &tm) && tm.tm_year + 1900 >= 1970 &&
                                 tm.tm_year + 1900 <= 9999;
                }
                CHECK(usable == (f == (size_t) j->date_source));
        }
        if (j->date_source == JOB_DATE_FIRST_SEEN) {
                CHECK(j->year == 0 && j->month == 0 && j->day == 0 && j->date_epoch == 0);
        } else {
                CHECK(j->year >= 1970 && j->year <= 9999);
                CHECK(j->month >= 1 && j->month <= 12);
                CHECK(j->day >= 1 && j->day <= 31);
                time_t tt = (time_t) j->date_epoch;
                CHECK(gmtime_r(&tt, &tm));
                CHECK(tm.tm_year + 1900 == j->year && tm.tm_mon + 1 == j->month &&
                      tm.tm_mday == j->day);
                CHECK(json_object_object_get_ex(j->obj, fields[j->date_source], &v));
                CHECK(rfc3339_parse(json_object_get_string(v), &t) == 0 && t == j->date_epoch);
        }

        check_job_url(j->key);

        /* Alternate the two record shapes: with a log and without one. */
        const struct record_info info = {
                .content_guid = GUID,
                .content_name = i % 2 ? NULL : "fuzz \"name\" \\ \xc3\xa9",
                .archived_at = 1733415771,
                .has_log = i % 2 == 0,
                .log_bytes = UINT64_C(123456789),
                .log_sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                .log_gzip_bytes = 4242,
        };
        if (connect_build_record(j, NULL, &info, &record) < 0)
                return; /* out of memory */
        rec = parse_back(record);
        CHECK(json_object_is_type(rec, json_type_object));
        CHECK(json_object_object_get_ex(rec, "job", &back));
        CHECK(json_object_equal(back, j->obj));
        CHECK(json_object_object_get_ex(rec, "error", &v) && v == NULL);
        CHECK(json_object_object_get_ex(rec, "content_guid", &v));
        CHECK(strcmp(json_object_get_string(v), GUID) == 0);
        CHECK(json_object_object_get_ex(rec, "archived_at", &v));
        CHECK(strcmp(json_object_get_string(v), "2024-12-05T16:22:51Z") == 0);
        CHECK(json_object_object_get_ex(rec, "log_bytes", &v));
        CHECK(info.has_log ? json_object_get_int64(v) == 123456789 : v == NULL);
        json_object_put(rec);
        free(record);
}

/* What the stream hands over, compared as it comes with the whole-buffer result. */
struct stream_check {
        const struct job_list *whole; /* NULL when the whole parse refused the body */
        size_t n;
};

static int stream_element(void *userdata, const char *elem, size_t len, const struct job *j)
{
        struct stream_check *c = userdata;
        struct job back;

        /* The raw bytes parse back alone to the same job (the daemon's spool relies on it). */
        int r = connect_parse_element(elem, len, &back);
        if (r == -ENOMEM)
                return r;
        CHECK(r == 0 && job_equal(&back, j));
        connect_job_done(&back);
        /* A refused body may still hand over its good first elements: only the end decides. */
        if (c->whole) {
                CHECK(c->n < c->whole->n_jobs);
                CHECK(job_equal(j, &c->whole->jobs[c->n]));
        }
        c->n++;
        return 0;
}

static void fuzz_stream(const char *body, size_t len, const struct job_list *whole, int rw)
{
        struct stream_check c = {.whole = rw == 0 ? whole : NULL};
        struct connect_stream *s;
        uint32_t h = 2166136261u;
        size_t off = 0;
        int r = 0;

        if (connect_stream_new(stream_element, &c, &s) < 0)
                return;
        for (size_t i = 0; i < len; i++)
                h = (h ^ (uint8_t) body[i]) * 16777619u;
        while (off < len && r == 0) {
                /* Piece sizes 0..16 from an FNV hash of the input, so a crash reproduces. */
                h = h * 1103515245u + 12345u;
                size_t n = (h >> 16) % 17;
                if (n > len - off)
                        n = len - off;
                r = connect_stream_feed(s, body + off, n);
                off += n;
        }
        if (r == 0)
                r = connect_stream_finish(s);
        if (r == -EFBIG) {
                CHECK(len > CONNECT_JOB_MAX); /* an element over the cap: the list is refused */
        } else if (r != -ENOMEM) {
                if (rw == 0) {
                        CHECK(r == 0);
                        CHECK(c.n == whole->n_jobs && connect_stream_count(s) == c.n);
                } else if (rw == -EBADMSG) {
                        CHECK(r == -EBADMSG);
                }
        }
        connect_stream_free(s);
}

static void fuzz_job_list(const char *body, size_t len)
{
        struct job_list l = {NULL, 0};
        int r = connect_parse_job_list(body, len, &l);

        fuzz_stream(body, len, &l, r);
        if (r < 0) {
                CHECK(r == -EBADMSG || r == -ENOMEM);
                CHECK(!l.jobs && l.n_jobs == 0);
                return;
        }
        CHECK(r == 0);
        CHECK(l.n_jobs == 0 || l.jobs);
        for (size_t i = 0; i < l.n_jobs; i++)
                check_job(&l.jobs[i], i);
        connect_job_list_done(&l);
        CHECK(!l.jobs && l.n_jobs == 0);
}

static void fuzz_error(const char *body, size_t len)
{
        struct json_object *err = NULL, *back;
        char *s = NULL, *record = NULL;
        int r = connect_parse_error(body, len, &err);

        if (r < 0) {
                CHECK(r == -EBADMSG || r == -ENOMEM);
                CHECK(!err);
                return;
        }
        CHECK(json_object_is_type(err, json_type_object));
        if (connect_format_error(err, &s) == 0) {
                back = parse_back(s);
                CHECK(json_object_equal(back, err));
                json_object_put(back);
                free(s);
        }

        /* The error object inside a record of a minimal job. */
        struct json_object *jobj = json_object_new_object();
        CHECK(jobj);
        struct job j = {.key = (char *) "k", .status = 2, .obj = jobj};
        const struct record_info info = {.content_guid = GUID, .archived_at = 0};
        if (connect_build_record(&j, err, &info, &record) == 0) {
                struct json_object *rec = parse_back(record), *v;
                CHECK(json_object_object_get_ex(rec, "error", &v));
                CHECK(json_object_equal(v, err));
                json_object_put(rec);
                free(record);
        }
        json_object_put(jobj);
        json_object_put(err);
}

static void fuzz_error_message(const char *body, size_t len)
{
        static const long statuses[] = {400, 403, 404, 409, 500, 503};
        const size_t sizes[] = {256, 12, 1};
        long status = statuses[len % (sizeof(statuses) / sizeof(statuses[0]))];
        char prefix[32];

        (void) snprintf(prefix, sizeof(prefix), "HTTP %ld", status);
        for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
                size_t size = sizes[k];
                char *buf = malloc(size);
                CHECK(buf);
                const char *m =
                        connect_error_message(status, body, len, k ? NULL : "https://h", buf, size);
                CHECK(m == buf);
                size_t n = strnlen(buf, size);
                CHECK(n < size);
                for (size_t i = 0; i < n; i++)
                        CHECK(buf[i] >= 0x20 && buf[i] < 0x7f);
                CHECK(strncmp(buf, prefix, n < strlen(prefix) ? n : strlen(prefix)) == 0);
                free(buf);
        }
}

/* Any accepted time formats to "YYYY-MM-DDTHH:MM:SSZ" and reads back to the same second. */
static void fuzz_rfc3339(const char *s)
{
        char buf[32];
        int64_t t, t2;

        if (rfc3339_parse(s, &t) < 0)
                return;
        (void) rfc3339_format_utc(t, buf, sizeof(buf));
        /* Offsets can move a year 0000 or 9999 date out of the four-digit range. */
        if (strlen(buf) != 20)
                return;
        CHECK(rfc3339_parse(buf, &t2) == 0 && t2 == t);
}

static void fuzz_path_component(const char *s, size_t len)
{
        bool ok = len > 0 && len <= 128 && !(len == 1 && s[0] == '.') &&
                  !(len == 2 && s[0] == '.' && s[1] == '.');

        for (size_t i = 0; ok && i < len; i++) {
                unsigned char c = (unsigned char) s[i];
                ok = c != '/' && c >= 0x20 && c != 0x7f;
        }
        CHECK(path_component_is_safe(s, len) == ok);
        if (connect_job_key_is_safe(s, len))
                CHECK(ok && s[0] != '.' && (len < 6 || memcmp(s + len - 6, ".error", 6) != 0));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const char *body = (const char *) data;
        char *str;

        fuzz_job_list(body, size);
        fuzz_error(body, size);
        fuzz_error_message(body, size);

        /* The string helpers want a C string; short inputs only, they are meant for keys. */
        if (size <= 256) {
                str = malloc(size + 1);
                CHECK(str);
                memcpy(str, data, size);
                str[size] = '\0';
                fuzz_rfc3339(str);
                fuzz_path_component(str, size);
                free(str);
        }
        return 0;
}

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "connect.h"
#include "log.h"
#include "macro.h"
#include "util.h"

/* A job list is an array of flat objects; anything nested deeper than this is hostile. */
#define JSON_MAX_DEPTH 32

/*
 * json-c takes NaN and Infinity even when strict, and turns 1e999 into an infinity; such a
 * value would go back into the job record as it came, which no JSON parser reads. The
 * recursion is bounded by JSON_MAX_DEPTH, which the tokener enforces.
 */
static bool numbers_are_finite(struct json_object *o)
{
        switch (json_object_get_type(o)) {
        case json_type_double:
                return isfinite(json_object_get_double(o));
        case json_type_array:
                for (size_t i = 0, n = json_object_array_length(o); i < n; i++)
                        if (!numbers_are_finite(json_object_array_get_idx(o, i)))
                                return false;
                return true;
        case json_type_object: {
                struct json_object_iterator it = json_object_iter_begin(o);
                struct json_object_iterator end = json_object_iter_end(o);

                for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it))
                        if (!numbers_are_finite(json_object_iter_peek_value(&it)))
                                return false;
                return true;
        }
        default:
                return true;
        }
}

static bool is_ws(char c)
{
        return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static struct json_tokener *tokener_new(int depth)
{
        struct json_tokener *tok = json_tokener_new_ex(depth);

        /* RFC 8259 only: json-c's default also takes single quotes, trailing commas and the
         * like, which no Connect server sends and a broken proxy might. */
        if (tok)
                json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
        return tok;
}

static int parse_json(const char *body, size_t len, struct json_object **ret)
{
        struct json_tokener *tok;
        struct json_object *obj;
        int r = 0;

        if (len > INT32_MAX)
                return -EBADMSG;
        tok = tokener_new(JSON_MAX_DEPTH);
        if (!tok)
                return -ENOMEM;
        obj = json_tokener_parse_ex(tok, body ? body : "", (int) len);
        if (!obj || json_tokener_get_error(tok) != json_tokener_success) {
                r = -EBADMSG;
                goto out;
        }
        /* Only whitespace may follow the value. */
        for (size_t i = json_tokener_get_parse_end(tok); i < len; i++)
                if (!is_ws(body[i])) {
                        r = -EBADMSG;
                        goto out;
                }
        if (!numbers_are_finite(obj)) {
                r = -EBADMSG;
                goto out;
        }
        *ret = obj;
        obj = NULL;
out:
        json_object_put(obj);
        json_tokener_free(tok);
        return r;
}

bool connect_job_key_is_safe(const char *key, size_t len)
{
        static const char suffix[] = ".error";

        if (!path_component_is_safe(key, len) || key[0] == '.')
                return false;
        if (len >= sizeof(suffix) - 1 &&
            memcmp(key + len - (sizeof(suffix) - 1), suffix, sizeof(suffix) - 1) == 0)
                return false;
        return true;
}

static void set_date(struct json_object *elem, struct job *j);

static void parse_job(struct json_object *elem, struct job *j)
{
        struct json_object *v;

        j->status = -1;
        j->obj = json_object_get(elem);
        if (!json_object_is_type(elem, json_type_object)) {
                j->invalid = "job is not a JSON object";
                return;
        }
        if (!json_object_object_get_ex(elem, "key", &v) ||
            !json_object_is_type(v, json_type_string)) {
                j->invalid = "job has no string \"key\"";
                return;
        }
        const char *key = json_object_get_string(v);
        size_t key_len = (size_t) json_object_get_string_len(v);
        /* Keep the key even when unsafe: the caller logs it (escaped) as the job's name. */
        j->key = malloc(key_len + 1);
        if (!j->key)
                return; /* reported as out of memory by the caller */
        memcpy(j->key, key, key_len + 1);
        if (!connect_job_key_is_safe(key, key_len)) {
                j->invalid = "job key is not safe as a file name";
                return;
        }
        if (!json_object_object_get_ex(elem, "status", &v) ||
            !json_object_is_type(v, json_type_int)) {
                j->invalid = "job has no integer \"status\"";
                return;
        }
        int64_t status = json_object_get_int64(v);
        j->status = status < 0 || status > 1000 ? -1 : (int) status;
        if (j->status < 0) {
                j->invalid = "job status is out of range";
                return;
        }
        set_date(elem, j);
}

/*
 * A time field usable as the archive date: an RFC 3339 string whose UTC date lies in
 * 1970..9999 (the four-digit folder names).
 */
static bool date_field(struct json_object *elem, const char *name, int64_t *ret_t,
                       struct tm *ret_tm)
{
        struct json_object *v;
        int64_t t;

        if (!json_object_object_get_ex(elem, name, &v) ||
            !json_object_is_type(v, json_type_string) ||
            rfc3339_parse(json_object_get_string(v), &t) < 0)
                return false;
        time_t tt = (time_t) t;
        if (!gmtime_r(&tt, ret_tm) || ret_tm->tm_year + 1900 < 1970 ||
            ret_tm->tm_year + 1900 > 9999)
                return false;
        *ret_t = t;
        return true;
}

static const char *const date_sources[] = {
        [JOB_DATE_START_TIME] = "start_time",
        [JOB_DATE_END_TIME] = "end_time",
        [JOB_DATE_QUEUED_TIME] = "queued_time",
        [JOB_DATE_FIRST_SEEN] = "first_seen",
};

const char *connect_date_source_to_string(enum job_date_source s)
{
        return (size_t) s < ELEMENTSOF(date_sources) ? date_sources[s] : "first_seen";
}

/*
 * The date: the start time when usable (the contract's rule); a job without one (a skipped
 * job that never started may have none) takes its end time, else its queued time, else the
 * day first seen, which only the caller knows.
 */
static void set_date(struct json_object *elem, struct job *j)
{
        struct tm tm;
        int64_t t;

        for (enum job_date_source src = JOB_DATE_START_TIME; src < JOB_DATE_FIRST_SEEN; src++)
                if (date_field(elem, date_sources[src], &t, &tm)) {
                        j->date_source = src;
                        j->date_epoch = t;
                        j->year = tm.tm_year + 1900;
                        j->month = tm.tm_mon + 1;
                        j->day = tm.tm_mday;
                        return;
                }
        j->date_source = JOB_DATE_FIRST_SEEN;
}

int connect_parse_job_list(const char *body, size_t len, struct job_list *ret)
{
        struct json_object *root = NULL;
        struct job_list l = {0};
        int r;

        r = parse_json(body, len, &root);
        if (r < 0)
                return r;
        if (!json_object_is_type(root, json_type_array)) {
                json_object_put(root);
                return -EBADMSG;
        }
        size_t n = json_object_array_length(root);
        if (n > 0) {
                l.jobs = calloc(n, sizeof(*l.jobs));
                if (!l.jobs) {
                        json_object_put(root);
                        return -ENOMEM;
                }
        }
        for (size_t i = 0; i < n; i++) {
                parse_job(json_object_array_get_idx(root, i), &l.jobs[i]);
                l.n_jobs++;
                if (l.jobs[i].invalid == NULL && !l.jobs[i].key) {
                        connect_job_list_done(&l);
                        json_object_put(root);
                        return -ENOMEM;
                }
        }
        json_object_put(root); /* each job holds its own reference */
        *ret = l;
        return 0;
}

void connect_job_done(struct job *j)
{
        free(j->key);
        json_object_put(j->obj);
        *j = (struct job){0};
}

void connect_error_free(struct json_object *error)
{
        json_object_put(error);
}

void connect_job_list_done(struct job_list *l)
{
        for (size_t i = 0; i < l->n_jobs; i++)
                connect_job_done(&l->jobs[i]);
        free(l->jobs);
        l->jobs = NULL;
        l->n_jobs = 0;
}

bool connect_job_is_due(const struct job *j)
{
        return j->status == JOB_FINALIZED || j->status == JOB_SKIPPED;
}

/*
 * One element of a list on its own, as the whole-list parse would take it: the array is one
 * level of the depth limit, and a bare scalar ("1", "null") needs a delimiter after it for
 * json-c to know it is complete, which the space gives. Fills *ret (see parse_job).
 */
static int parse_element_json(struct json_tokener *tok, const char *elem, size_t len,
                              struct json_object **ret)
{
        struct json_object *obj;
        size_t end = len;

        if (len == 0 || len > INT32_MAX)
                return -EBADMSG;
        json_tokener_reset(tok);
        obj = json_tokener_parse_ex(tok, elem, (int) len);
        if (!obj && json_tokener_get_error(tok) == json_tokener_continue) {
                obj = json_tokener_parse_ex(tok, " ", 1); /* all of elem was taken */
        } else {
                end = json_tokener_get_parse_end(tok);
        }
        if (json_tokener_get_error(tok) != json_tokener_success)
                goto bad;
        for (size_t i = end; i < len; i++)
                if (!is_ws(elem[i]))
                        goto bad;
        if (obj && !numbers_are_finite(obj))
                goto bad;
        *ret = obj; /* NULL for a JSON null */
        return 0;
bad:
        json_object_put(obj);
        return -EBADMSG;
}

static int parse_element(struct json_tokener *tok, const char *elem, size_t len, struct job *ret)
{
        struct json_object *obj;
        int r;

        r = parse_element_json(tok, elem, len, &obj);
        if (r < 0)
                return r;
        struct job j = {0};
        parse_job(obj, &j); /* takes its own reference */
        json_object_put(obj);
        if (!j.invalid && !j.key)
                return -ENOMEM;
        *ret = j;
        return 0;
}

int connect_parse_json(const char *body, size_t len, struct json_object **ret)
{
        return parse_json(body, len, ret);
}

int connect_parse_element(const char *elem, size_t len, struct job *ret)
{
        struct json_tokener *tok = tokener_new(JSON_MAX_DEPTH - 1);
        int r;

        if (!tok)
                return -ENOMEM;
        r = parse_element(tok, elem, len, ret);
        json_tokener_free(tok);
        return r;
}

int connect_parse_job(const char *body, size_t len, struct job *ret)
{
        int r = connect_parse_element(body, len, ret);

        if (r >= 0 && !json_object_is_type(ret->obj, json_type_object)) {
                connect_job_done(ret);
                return -EBADMSG;
        }
        return r;
}

enum stream_state {
        STREAM_BEFORE,        /* before the '[' */
        STREAM_FIRST,         /* after '[': an element or ']' */
        STREAM_NEXT,          /* after ',': an element */
        STREAM_ELEMENT,       /* inside an element */
        STREAM_AFTER_ELEMENT, /* after an element: ',' or ']' */
        STREAM_AFTER_ARRAY,   /* after ']': only whitespace */
};

enum element_kind {
        ELEMENT_NESTED, /* an object or array: ends when its brackets balance */
        ELEMENT_STRING, /* ends at its closing quote */
        ELEMENT_SCALAR, /* a number, a literal or garbage: ends before whitespace, ',' or ']' */
};

struct connect_stream {
        connect_stream_fn *fn;        /* a job list's elements, or */
        connect_object_fn *object_fn; /* any array's */
        void *userdata;
        struct json_tokener *tok;
        enum stream_state state;
        int error; /* sticky */
        /* The element under way: its bytes so far and where the scan is inside it. */
        char *buf;
        size_t len, cap;
        enum element_kind kind;
        size_t depth;
        bool in_string, escape;
        size_t n_elements;
};

int connect_stream_new(connect_stream_fn *fn, void *userdata, struct connect_stream **ret)
{
        struct connect_stream *s = calloc(1, sizeof(*s));

        if (!s)
                return -ENOMEM;
        s->fn = fn;
        s->userdata = userdata;
        s->tok = tokener_new(JSON_MAX_DEPTH - 1);
        if (!s->tok) {
                free(s);
                return -ENOMEM;
        }
        *ret = s;
        return 0;
}

int connect_stream_new_objects(connect_object_fn *fn, void *userdata, struct connect_stream **ret)
{
        int r = connect_stream_new(NULL, userdata, ret);

        if (r >= 0)
                (*ret)->object_fn = fn;
        return r;
}

void connect_stream_free(struct connect_stream *s)
{
        if (!s)
                return;
        json_tokener_free(s->tok);
        free(s->buf);
        free(s);
}

void connect_stream_reset(struct connect_stream *s)
{
        s->state = STREAM_BEFORE;
        s->error = 0;
        s->len = 0;
        s->n_elements = 0;
        /* A big element's buffer is not kept for the next list. */
        if (s->cap > 64 * 1024) {
                free(s->buf);
                s->buf = NULL;
                s->cap = 0;
        }
}

size_t connect_stream_count(const struct connect_stream *s)
{
        return s->n_elements;
}

static int element_append(struct connect_stream *s, const char *data, size_t n)
{
        if (n > CONNECT_JOB_MAX - s->len)
                return -EFBIG;
        return buf_append(&s->buf, &s->len, &s->cap, data, n, 1024);
}

static int element_end(struct connect_stream *s)
{
        struct job j;
        int r;

        if (s->object_fn) {
                struct json_object *obj;
                r = parse_element_json(s->tok, s->buf, s->len, &obj);
                if (r < 0)
                        return r;
                s->n_elements++;
                r = s->object_fn(s->userdata, obj);
                json_object_put(obj);
                s->len = 0;
                s->state = STREAM_AFTER_ELEMENT;
                return r < 0 ? r : 0;
        }
        r = parse_element(s->tok, s->buf, s->len, &j);
        if (r < 0)
                return r;
        s->n_elements++;
        r = s->fn(s->userdata, s->buf, s->len, &j);
        connect_job_done(&j);
        s->len = 0;
        s->state = STREAM_AFTER_ELEMENT;
        return r < 0 ? r : 0;
}

/*
 * Scans p[0..n) inside an element; returns how many bytes belong to it, and sets *ret_done
 * when the element ends there. Brackets of either kind count alike: a mismatch such as "{]"
 * is cut out as one element and refused by json-c.
 */
static size_t element_scan(struct connect_stream *s, const char *p, size_t n, bool *ret_done)
{
        size_t i = 0;

        *ret_done = false;
        if (s->kind == ELEMENT_SCALAR) {
                for (; i < n; i++)
                        if (is_ws(p[i]) || p[i] == ',' || p[i] == ']') {
                                *ret_done = true;
                                return i;
                        }
                return n;
        }
        for (; i < n; i++) {
                char c = p[i];
                if (s->in_string) {
                        if (s->escape)
                                s->escape = false;
                        else if (c == '\\')
                                s->escape = true;
                        else if (c == '"') {
                                s->in_string = false;
                                if (s->kind == ELEMENT_STRING) {
                                        *ret_done = true;
                                        return i + 1;
                                }
                        }
                } else if (c == '"') {
                        s->in_string = true;
                } else if (c == '{' || c == '[') {
                        s->depth++;
                } else if (c == '}' || c == ']') {
                        if (--s->depth == 0) {
                                *ret_done = true;
                                return i + 1;
                        }
                }
        }
        return n;
}

static void element_start(struct connect_stream *s, char c)
{
        s->state = STREAM_ELEMENT;
        s->len = 0;
        s->depth = 0;
        s->in_string = false;
        s->escape = false;
        if (c == '{' || c == '[')
                s->kind = ELEMENT_NESTED;
        else if (c == '"')
                s->kind = ELEMENT_STRING;
        else
                s->kind = ELEMENT_SCALAR;
}

int connect_stream_feed(struct connect_stream *s, const void *data, size_t len)
{
        const char *p = data;
        size_t i = 0;
        int r;

        if (s->error < 0)
                return s->error;
        while (i < len) {
                char c = p[i];

                switch (s->state) {
                case STREAM_BEFORE:
                case STREAM_AFTER_ARRAY:
                        if (is_ws(c))
                                break;
                        if (s->state == STREAM_AFTER_ARRAY || c != '[')
                                return s->error = -EBADMSG;
                        s->state = STREAM_FIRST;
                        break;
                case STREAM_FIRST:
                case STREAM_NEXT:
                        if (is_ws(c))
                                break;
                        if (c == ']' && s->state == STREAM_FIRST) {
                                s->state = STREAM_AFTER_ARRAY;
                                break;
                        }
                        if (c == ']' || c == ',')
                                return s->error = -EBADMSG;
                        element_start(s, c);
                        continue; /* the scan takes this byte */
                case STREAM_AFTER_ELEMENT:
                        if (is_ws(c))
                                break;
                        if (c == ',')
                                s->state = STREAM_NEXT;
                        else if (c == ']')
                                s->state = STREAM_AFTER_ARRAY;
                        else
                                return s->error = -EBADMSG;
                        break;
                case STREAM_ELEMENT: {
                        bool done;
                        size_t n = element_scan(s, p + i, len - i, &done);
                        r = element_append(s, p + i, n);
                        if (r >= 0 && done)
                                r = element_end(s);
                        if (r < 0)
                                return s->error = r;
                        i += n;
                        continue;
                }
                }
                i++;
        }
        return 0;
}

int connect_stream_finish(struct connect_stream *s)
{
        if (s->error < 0)
                return s->error;
        if (s->state != STREAM_AFTER_ARRAY)
                return s->error = -EBADMSG;
        return 0;
}

int connect_parse_error(const char *body, size_t len, struct json_object **ret)
{
        struct json_object *obj;
        int r = parse_json(body, len, &obj);

        if (r < 0)
                return r;
        if (!json_object_is_type(obj, json_type_object)) {
                json_object_put(obj);
                return -EBADMSG;
        }
        *ret = obj;
        return 0;
}

int connect_jobs_url(const char *server, const char *guid, char **ret)
{
        if (asprintf(ret, "%s/__api__/v1/content/%s/jobs", server, guid) < 0)
                return -ENOMEM;
        return 0;
}

int connect_job_url(const char *server, const char *guid, const char *key, const char *what,
                    char **ret)
{
        static const char hex[] = "0123456789ABCDEF";
        size_t len = strlen(key);
        _cleanup_free_ char *enc = malloc(3 * len + 1);
        size_t o = 0;

        if (!enc)
                return -ENOMEM;
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char) key[i];
                if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '_' || c == '~') {
                        enc[o++] = (char) c;
                } else {
                        enc[o++] = '%';
                        enc[o++] = hex[c >> 4];
                        enc[o++] = hex[c & 15];
                }
        }
        enc[o] = '\0';
        if (asprintf(ret, "%s/__api__/v1/content/%s/jobs/%s%s%s", server, guid, enc,
                     what ? "/" : "", what ? what : "") < 0)
                return -ENOMEM;
        return 0;
}

const char *connect_error_message(long status, const char *body, size_t len,
                                  const char *list_server, char *buf, size_t size)
{
        struct json_object *obj = NULL, *code = NULL, *msg = NULL;
        char esc[LOG_ESCAPE_MAX];

        if (body && len > 0 && parse_json(body, len, &obj) == 0 &&
            json_object_is_type(obj, json_type_object)) {
                if (!json_object_object_get_ex(obj, "code", &code) ||
                    !json_object_is_type(code, json_type_int))
                        code = NULL;
                if (!json_object_object_get_ex(obj, "error", &msg) ||
                    !json_object_is_type(msg, json_type_string))
                        msg = NULL;
        }
        if (status == 404 && list_server && !code) {
                /* Connect answers an unknown content GUID with its JSON error (a code); an
                 * unknown route gets a bare 404 (connectapi tells the two apart the same way). */
                (void) snprintf(buf, size,
                                "HTTP 404: no jobs API at %s/__api__/v1: a wrong URL or path "
                                "prefix, or a Connect older than 2022.10",
                                log_escape(list_server, esc, sizeof(esc)));
        } else if (msg) {
                (void) log_escape(json_object_get_string(msg), esc, sizeof(esc));
                if (code)
                        (void) snprintf(buf, size, "HTTP %ld: %s (code %lld)", status, esc,
                                        (long long) json_object_get_int64(code));
                else
                        (void) snprintf(buf, size, "HTTP %ld: %s", status, esc);
        } else {
                (void) snprintf(buf, size, "HTTP %ld", status);
        }
        json_object_put(obj);
        return buf;
}

static int add(struct json_object *o, const char *k, struct json_object *v)
{
        if (!v)
                return -ENOMEM;
        if (json_object_object_add(o, k, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

static int to_string(struct json_object *o, char **ret)
{
        const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                                                  JSON_C_TO_STRING_SPACED |
                                                                  JSON_C_TO_STRING_NOSLASHESCAPE);
        if (!s || asprintf(ret, "%s\n", s) < 0)
                return -ENOMEM;
        return 0;
}

int connect_build_record(const struct job *j, struct json_object *error,
                         const struct record_info *info, char **ret)
{
        struct json_object *rec = json_object_new_object();
        char when[32];
        int r;

        if (!rec)
                return -ENOMEM;
        (void) rfc3339_format_utc(info->archived_at, when, sizeof(when));
        r = add(rec, "job", json_object_get(j->obj));
        if (r >= 0)
                r = error ? add(rec, "error", json_object_get(error))
                          : json_object_object_add(rec, "error", NULL);
        if (r >= 0)
                r = add(rec, "content_guid", json_object_new_string(info->content_guid));
        if (r >= 0)
                r = info->content_name
                            ? add(rec, "content_name", json_object_new_string(info->content_name))
                            : json_object_object_add(rec, "content_name", NULL);
        if (r >= 0)
                r = add(rec, "archived_at", json_object_new_string(when));
        if (r >= 0)
                r = add(rec, "date_source",
                        json_object_new_string(connect_date_source_to_string(j->date_source)));
        if (r >= 0 && info->has_log) {
                r = add(rec, "log_bytes", json_object_new_int64((int64_t) info->log_bytes));
                if (r >= 0)
                        r = add(rec, "log_sha256", json_object_new_string(info->log_sha256));
                if (r >= 0)
                        r = add(rec, "log_gzip_bytes",
                                json_object_new_int64((int64_t) info->log_gzip_bytes));
        } else if (r >= 0) {
                r = json_object_object_add(rec, "log_bytes", NULL);
                if (r >= 0)
                        r = json_object_object_add(rec, "log_sha256", NULL);
        }
        if (r >= 0)
                r = to_string(rec, ret);
        json_object_put(rec);
        return r < 0 ? -ENOMEM : 0;
}

int connect_format_error(struct json_object *error, char **ret)
{
        return to_string(error, ret);
}

/* ---- The operator's operations (connect-jobs) ---- */

static const char *member_string(struct json_object *o, const char *name)
{
        struct json_object *v;

        if (!json_object_object_get_ex(o, name, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

void connect_job_detail(const struct job *j, struct job_detail *ret)
{
        struct job_detail d = {0};
        struct json_object *o = j->obj, *v;
        const char *end;

        if (json_object_is_type(o, json_type_object)) {
                d.id = member_string(o, "id");
                d.tag = member_string(o, "tag");
                d.hostname = member_string(o, "hostname");
                d.pid = member_string(o, "pid");
                d.bundle_id = member_string(o, "bundle_id");
                d.run_as = member_string(o, "run_as");
                d.cluster = member_string(o, "cluster");
                d.image = member_string(o, "image");
                d.error = member_string(o, "error");
                d.skip_reason = member_string(o, "skip_reason");
                end = member_string(o, "end_time");
                d.has_end_time = end && rfc3339_parse(end, &d.end_time) == 0;
                if (json_object_object_get_ex(o, "exit_code", &v) &&
                    json_object_is_type(v, json_type_int)) {
                        d.has_exit_code = true;
                        d.exit_code = json_object_get_int64(v);
                }
        }
        *ret = d;
}

const char *connect_job_status_to_string(int status)
{
        switch (status) {
        case JOB_ACTIVE:
                return "active";
        case JOB_FINISHED:
                return "finished";
        case JOB_FINALIZED:
                return "finalized";
        case JOB_SKIPPED:
                return "skipped";
        default:
                return "unknown";
        }
}

/* The fraction of an RFC 3339 time that rfc3339_parse() drops, as nanoseconds (9 digits
 * kept, more ignored). s was accepted by rfc3339_parse(), so it has a 'T' (or 't', ' '). */
static uint32_t fraction_nsec(const char *s)
{
        const char *p = strchr(s, '.');
        uint32_t ns = 0;
        int digits = 0;

        if (!p)
                return 0;
        for (p++; *p >= '0' && *p <= '9'; p++)
                if (digits < 9) {
                        ns = ns * 10 + (uint32_t) (*p - '0');
                        digits++;
                }
        for (; digits < 9; digits++)
                ns *= 10;
        return ns;
}

int connect_log_entry_from_json(struct json_object *obj, struct log_entry *ret)
{
        struct log_entry e = {0};
        struct json_object *v;

        if (!json_object_is_type(obj, json_type_object))
                return -EBADMSG;
        e.source = member_string(obj, "source");
        if (!e.source || !json_object_object_get_ex(obj, "data", &v) ||
            !json_object_is_type(v, json_type_string))
                return -EBADMSG;
        e.data = json_object_get_string(v);
        e.data_len = (size_t) json_object_get_string_len(v);
        if (json_object_object_get_ex(obj, "timestamp", &v) && v != NULL) {
                if (!json_object_is_type(v, json_type_string) ||
                    rfc3339_parse(json_object_get_string(v), &e.ts_sec) < 0)
                        return -EBADMSG;
                e.ts_nsec = fraction_nsec(json_object_get_string(v));
                e.has_timestamp = true;
        }
        e.obj = json_object_get(obj);
        *ret = e;
        return 0;
}

void connect_log_entry_done(struct log_entry *e)
{
        json_object_put(e->obj);
        *e = (struct log_entry){0};
}

int connect_parse_log_entries(const char *body, size_t len, struct log_entries *ret)
{
        struct json_object *root = NULL, *arr;
        struct log_entries l = {0};
        int r;

        r = parse_json(body, len, &root);
        if (r < 0)
                return r;
        if (!json_object_is_type(root, json_type_object) ||
            !json_object_object_get_ex(root, "entries", &arr) ||
            !json_object_is_type(arr, json_type_array)) {
                json_object_put(root);
                return -EBADMSG;
        }
        size_t n = json_object_array_length(arr);
        if (n > 0) {
                l.entries = calloc(n, sizeof(*l.entries));
                if (!l.entries) {
                        json_object_put(root);
                        return -ENOMEM;
                }
        }
        for (size_t i = 0; i < n; i++) {
                r = connect_log_entry_from_json(json_object_array_get_idx(arr, i),
                                                &l.entries[l.n_entries]);
                if (r < 0) {
                        connect_log_entries_done(&l);
                        json_object_put(root);
                        return r;
                }
                l.n_entries++;
        }
        json_object_put(root); /* each entry holds its own reference */
        *ret = l;
        return 0;
}

void connect_log_entries_done(struct log_entries *l)
{
        for (size_t i = 0; i < l->n_entries; i++)
                connect_log_entry_done(&l->entries[i]);
        free(l->entries);
        l->entries = NULL;
        l->n_entries = 0;
}

int connect_parse_kill_order(const char *body, size_t len, struct kill_order *ret)
{
        struct json_object *root = NULL;
        struct kill_order k = {0};
        int r;

        r = parse_json(body, len, &root);
        if (r < 0)
                return r;
        if (!json_object_is_type(root, json_type_object) ||
            !(k.job_key = member_string(root, "job_key"))) {
                json_object_put(root);
                return -EBADMSG;
        }
        k.result = member_string(root, "result");
        k.guid = member_string(root, "guid");
        k.obj = root;
        *ret = k;
        return 0;
}

void connect_kill_order_done(struct kill_order *k)
{
        json_object_put(k->obj);
        *k = (struct kill_order){0};
}

int connect_parse_api_error(const char *body, size_t len, struct connect_api_error *ret)
{
        struct json_object *root = NULL, *code;
        const char *msg;
        int r;

        if (!body || len == 0)
                return -EBADMSG;
        r = parse_json(body, len, &root);
        if (r < 0)
                return r;
        if (!json_object_is_type(root, json_type_object) ||
            !json_object_object_get_ex(root, "code", &code) ||
            !json_object_is_type(code, json_type_int) || !(msg = member_string(root, "error"))) {
                json_object_put(root);
                return -EBADMSG;
        }
        ret->code = json_object_get_int64(code);
        (void) log_escape(msg, ret->message, sizeof(ret->message));
        json_object_put(root);
        return 0;
}

int connect_job_log_url(const char *server, const char *guid, const char *key, unsigned max_lines,
                        char **ret)
{
        _cleanup_free_ char *base = NULL;
        int r;

        r = connect_job_url(server, guid, key, "log", &base);
        if (r < 0)
                return r;
        if (asprintf(ret, "%s?maxLogLines=%u", base, max_lines) < 0)
                return -ENOMEM;
        return 0;
}

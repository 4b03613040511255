#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "connect.h"
#include "macro.h"
#include "testutil.h"
#include "../job_equal.h"

static void parse_string(const char *s, struct job_list *l)
{
        assert_int_equal(connect_parse_job_list(s, strlen(s), l), 0);
}

static void test_fixture_2025(void **state)
{
        static const struct {
                const char *key;
                int status;
                int y, m, d;
        } want[] = {
                {"waaTO7v75I84S1hQ", 0, 2024, 12, 5},  {"k3sHkEoWJNwQim7g", 0, 2024, 12, 3},
                {"mxPGVOMVk6f8dso2", 2, 2024, 11, 25}, {"QBZ5jkKfmf9iT9k8", 2, 2024, 11, 25},
                {"EzxM4sBYJrLSMHg9", 2, 2024, 11, 25}, {"HbdzgOJrMmMTq6vu", 2, 2024, 11, 15},
        };
        struct job_list l;
        size_t len;
        _cleanup_free_ char *body = read_fixture("jobs-list.connectapi-2025.01.0.json", &len);

        (void) state;
        assert_int_equal(connect_parse_job_list(body, len, &l), 0);
        assert_int_equal(l.n_jobs, ELEMENTSOF(want));
        for (size_t i = 0; i < l.n_jobs; i++) {
                assert_null(l.jobs[i].invalid);
                assert_string_equal(l.jobs[i].key, want[i].key);
                assert_int_equal(l.jobs[i].status, want[i].status);
                assert_int_equal(l.jobs[i].year, want[i].y);
                assert_int_equal(l.jobs[i].month, want[i].m);
                assert_int_equal(l.jobs[i].day, want[i].d);
                assert_int_equal(connect_job_is_due(&l.jobs[i]), want[i].status == 2);
        }
        connect_job_list_done(&l);
}

static void test_fixture_2024_and_sdk(void **state)
{
        struct job_list l;
        size_t len;
        _cleanup_free_ char *a = read_fixture("jobs-list.connectapi-2024.08.0.json", &len);

        (void) state;
        assert_int_equal(connect_parse_job_list(a, len, &l), 0);
        assert_int_equal(l.n_jobs, 6);
        connect_job_list_done(&l);

        _cleanup_free_ char *b = read_fixture("jobs-list.posit-sdk-py.json", &len);
        assert_int_equal(connect_parse_job_list(b, len, &l), 0);
        assert_int_equal(l.n_jobs, 1);
        /* 2006-01-02T15:04:05-07:00 is 22:04:05 UTC on the same day. */
        assert_int_equal(l.jobs[0].date_epoch, 1136239445);
        assert_int_equal(l.jobs[0].date_source, JOB_DATE_START_TIME);
        assert_int_equal(l.jobs[0].day, 2);
        assert_false(connect_job_is_due(&l.jobs[0]));
        connect_job_list_done(&l);
}

static void test_due_rule(void **state)
{
        struct job_list l;

        (void) state;
        /* Status alone decides: a finalized job with null end_time and exit_code is due. */
        parse_string("[{\"key\":\"a\",\"status\":0,\"start_time\":\"2024-01-01T00:00:00Z\"},"
                     "{\"key\":\"b\",\"status\":1,\"start_time\":\"2024-01-01T00:00:00Z\","
                     "\"end_time\":\"2024-01-01T00:01:00Z\",\"exit_code\":0},"
                     "{\"key\":\"c\",\"status\":2,\"start_time\":\"2024-01-01T00:00:00Z\","
                     "\"end_time\":null,\"exit_code\":null},"
                     "{\"key\":\"d\",\"status\":3,\"start_time\":\"2024-01-01T00:00:00Z\"},"
                     "{\"key\":\"e\",\"status\":4,\"start_time\":\"2024-01-01T00:00:00Z\"}]",
                     &l);
        assert_int_equal(l.n_jobs, 5);
        assert_false(connect_job_is_due(&l.jobs[0]));
        assert_false(connect_job_is_due(&l.jobs[1]));
        assert_true(connect_job_is_due(&l.jobs[2]));
        assert_true(connect_job_is_due(&l.jobs[3]));
        assert_false(connect_job_is_due(&l.jobs[4]));
        connect_job_list_done(&l);
}

static void test_hostile_elements(void **state)
{
        static const char *const invalid_reason[] = {
                "job is not a JSON object",
                "job has no string \"key\"",
                "job has no string \"key\"",
                "job key is not safe as a file name",
                "job key is not safe as a file name",
                "job key is not safe as a file name",
                "job key is not safe as a file name",
                "job key is not safe as a file name",
                "job key is not safe as a file name",
                "job key is not safe as a file name",
                "job has no integer \"status\"",
                "job has no integer \"status\"",
                "job status is out of range",
                NULL, /* dated when first seen */
                NULL,
                NULL,
        };
        struct job_list l;

        (void) state;
        parse_string("[42,"
                     "{\"status\":2},"
                     "{\"key\":7,\"status\":2},"
                     "{\"key\":\"..\",\"status\":2},"
                     "{\"key\":\"../../etc\",\"status\":2},"
                     "{\"key\":\"a\\u0000b\",\"status\":2},"
                     "{\"key\":\"a\\nb\",\"status\":2},"
                     "{\"key\":\".hidden\",\"status\":2},"
                     "{\"key\":\"x.error\",\"status\":2},"
                     "{\"key\":\"\",\"status\":2},"
                     "{\"key\":\"k1\",\"status\":\"2\"},"
                     "{\"key\":\"k2\",\"status\":2.5},"
                     "{\"key\":\"k3\",\"status\":-1},"
                     "{\"key\":\"k4\",\"status\":2,\"start_time\":1733415771},"
                     "{\"key\":\"k5\",\"status\":2,\"start_time\":\"yesterday\"},"
                     "{\"key\":\"ok\",\"status\":2,\"start_time\":\"2024-01-01T00:00:00Z\","
                     "\"key\":\"ok\"}]",
                     &l);
        assert_int_equal(l.n_jobs, ELEMENTSOF(invalid_reason));
        for (size_t i = 0; i < l.n_jobs; i++) {
                if (invalid_reason[i])
                        assert_string_equal(l.jobs[i].invalid, invalid_reason[i]);
                else
                        assert_null(l.jobs[i].invalid);
        }
        /* No usable start (or end, or queued) time: usable, dated by the caller. */
        assert_int_equal(l.jobs[13].date_source, JOB_DATE_FIRST_SEEN);
        assert_int_equal(l.jobs[13].year, 0);
        assert_int_equal(l.jobs[14].date_source, JOB_DATE_FIRST_SEEN);
        assert_int_equal(l.jobs[15].date_source, JOB_DATE_START_TIME);
        /* The embedded NUL is kept (and refused), not silently cut at "a". */
        assert_memory_equal(l.jobs[5].key, "a\0b", 3);
        connect_job_list_done(&l);
}

static void test_long_key(void **state)
{
        char body[600], key[200];
        struct job_list l;

        (void) state;
        memset(key, 'k', 129);
        key[129] = '\0';
        (void) snprintf(
                body, sizeof(body),
                "[{\"key\":\"%s\",\"status\":2,\"start_time\":\"2024-01-01T00:00:00Z\"},"
                "{\"key\":\"%.128s\",\"status\":2,\"start_time\":\"2024-01-01T00:00:00Z\"}]",
                key, key);
        parse_string(body, &l);
        assert_string_equal(l.jobs[0].invalid, "job key is not safe as a file name");
        assert_null(l.jobs[1].invalid);
        connect_job_list_done(&l);
}

static void test_bad_documents(void **state)
{
        static const char *const bad[] = {
                "",
                "not json",
                "{\"jobs\": []}",
                "[{\"key\":\"a\"}",
                "[] trailing",
                "\"a string\"",
                "null",
                "[{'key':'a','status':2}]", /* json-c takes single quotes unless strict */
                "[1,]",
                "[01]",
                "[\"\xff\xfe\"]", /* not UTF-8 */
                /* json-c takes these even when strict, and would write them back into the
                 * record as they are, which no JSON parser reads. */
                "[{\"key\":\"a\",\"status\":2,\"x\":NaN}]",
                "[{\"key\":\"a\",\"status\":2,\"x\":[{\"y\":Infinity}]}]",
                "[-Infinity]",
                "[1e999]",
        };
        struct job_list l = {.n_jobs = 99};
        char deep[200];

        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(connect_parse_job_list(bad[i], strlen(bad[i]), &l), -EBADMSG);
        /* Nesting deeper than any real answer is refused, not recursed into. */
        memset(deep, '[', 100);
        memset(deep + 100, ']', 100);
        assert_int_equal(connect_parse_job_list(deep, sizeof(deep), &l), -EBADMSG);
        assert_int_equal(l.n_jobs, 99); /* untouched on failure */
        /* An empty list is fine; trailing whitespace is fine. */
        assert_int_equal(connect_parse_job_list("[]\n", 3, &l), 0);
        assert_int_equal(l.n_jobs, 0);
        connect_job_list_done(&l);
}

static void test_error_record(void **state)
{
        struct json_object *e = NULL;
        _cleanup_free_ char *out = NULL;
        const char *body =
                "{\"code\":\"E1\",\"summary\":\"it broke\",\"help_url\":\"https://x/y\"}";

        (void) state;
        assert_int_equal(connect_parse_error(body, strlen(body), &e), 0);
        assert_int_equal(connect_format_error(e, &out), 0);
        /* No "\/" escaping: a URL stays greppable. */
        assert_non_null(strstr(out, "\"help_url\": \"https://x/y\""));
        assert_int_equal(out[strlen(out) - 1], '\n');
        json_object_put(e);
        assert_int_equal(connect_parse_error("[1]", 3, &e), -EBADMSG);
        assert_int_equal(connect_parse_error("{", 1, &e), -EBADMSG);
        assert_int_equal(connect_parse_error("{\"code\":NaN}", 12, &e), -EBADMSG);
        /* Large but finite numbers stay. */
        assert_int_equal(connect_parse_error("{\"code\":1e300}", 14, &e), 0);
        json_object_put(e);
}

static void test_urls(void **state)
{
        _cleanup_free_ char *a = NULL, *b = NULL, *c = NULL;

        (void) state;
        assert_int_equal(connect_jobs_url("http://h:1", "g", &a), 0);
        assert_string_equal(a, "http://h:1/__api__/v1/content/g/jobs");
        assert_int_equal(connect_job_url("http://h", "g", "tHaw", "download", &b), 0);
        assert_string_equal(b, "http://h/__api__/v1/content/g/jobs/tHaw/download");
        assert_int_equal(connect_job_url("http://h", "g", "a b?#%", "error", &c), 0);
        assert_string_equal(c, "http://h/__api__/v1/content/g/jobs/a%20b%3F%23%25/error");
}

static void test_error_message(void **state)
{
        char buf[256];
        size_t len;
        _cleanup_free_ char *body =
                read_fixture("error-404-object-does-not-exist.connectapi-2024.08.0.json", &len);

        (void) state;
        assert_string_equal(connect_error_message(404, body, len, NULL, buf, sizeof(buf)),
                            "HTTP 404: Cache does not exist (code 4)");
        assert_string_equal(
                connect_error_message(404, "404 page not found", 18, NULL, buf, sizeof(buf)),
                "HTTP 404");
        assert_string_equal(connect_error_message(500, NULL, 0, NULL, buf, sizeof(buf)),
                            "HTTP 500");
        const char *evil = "{\"error\":\"x\\n<0>forged\"}";
        assert_string_equal(connect_error_message(400, evil, strlen(evil), NULL, buf, sizeof(buf)),
                            "HTTP 400: x\\x0a<0>forged");
}

/* A 404 on the job list without Connect's JSON error code: the jobs API is not there. */
static void test_list_404_hint(void **state)
{
        static const char hint[] =
                "HTTP 404: no jobs API at https://c.example.com/rsconnect/__api__/v1: "
                "a wrong URL or path prefix, or a Connect older than 2022.10";
        const char *proxy = "{\"error\":\"not found\"}";
        char buf[256];
        size_t len;
        _cleanup_free_ char *body =
                read_fixture("error-404-object-does-not-exist.connectapi-2024.08.0.json", &len);
        const char *server = "https://c.example.com/rsconnect";

        (void) state;
        /* An old Connect or a wrong prefix: plain text, or nothing at all. */
        assert_string_equal(
                connect_error_message(404, "404 page not found", 18, server, buf, sizeof(buf)),
                hint);
        assert_string_equal(connect_error_message(404, NULL, 0, server, buf, sizeof(buf)), hint);
        assert_string_equal(
                connect_error_message(404, "<html>nginx</html>", 18, server, buf, sizeof(buf)),
                hint);
        /* JSON without Connect's code (a proxy's) is not Connect either. */
        assert_string_equal(
                connect_error_message(404, proxy, strlen(proxy), server, buf, sizeof(buf)), hint);
        /* Connect's own 404 (unknown content) keeps its message. */
        assert_string_equal(connect_error_message(404, body, len, server, buf, sizeof(buf)),
                            "HTTP 404: Cache does not exist (code 4)");
        /* Other statuses are unchanged. */
        assert_string_equal(connect_error_message(500, "oops", 4, server, buf, sizeof(buf)),
                            "HTTP 500");
        /* The URL is escaped like any other outside text. */
        assert_string_equal(connect_error_message(404, NULL, 0, "https://h/a\"b", buf, sizeof(buf)),
                            "HTTP 404: no jobs API at https://h/a\\x22b/__api__/v1: a wrong URL or "
                            "path prefix, or a Connect older than 2022.10");
}

static void test_record(void **state)
{
        struct job_list l;
        struct json_object *rec, *v, *err;
        _cleanup_free_ char *out = NULL, *out2 = NULL;
        const char *eb = "{\"code\":\"E\",\"summary\":\"s\"}";

        (void) state;
        parse_string("[{\"key\":\"k\",\"status\":2,\"start_time\":\"2024-01-01T00:00:00Z\","
                     "\"end_time\":null,\"extra\":{\"nested\":[1,2]}}]",
                     &l);
        assert_int_equal(connect_parse_error(eb, strlen(eb), &err), 0);
        struct record_info info = {
                .content_guid = "38400000-8cf0-11bd-b23e-10b96e4ef00d",
                .content_name = "sales",
                .archived_at = 1700000000,
                .has_log = true,
                .log_bytes = 12,
                .log_sha256 = "ab",
                .log_gzip_bytes = 30,
        };
        assert_int_equal(connect_build_record(&l.jobs[0], err, &info, &out), 0);
        rec = json_tokener_parse(out);
        assert_non_null(rec);
        /* The job object is kept whole, unknown fields included. */
        assert_true(json_object_object_get_ex(rec, "job", &v));
        assert_true(json_object_equal(v, l.jobs[0].obj));
        assert_true(json_object_object_get_ex(rec, "error", &v));
        assert_true(json_object_equal(v, err));
        assert_true(json_object_object_get_ex(rec, "content_guid", &v));
        assert_string_equal(json_object_get_string(v), info.content_guid);
        assert_true(json_object_object_get_ex(rec, "content_name", &v));
        assert_string_equal(json_object_get_string(v), "sales");
        assert_true(json_object_object_get_ex(rec, "archived_at", &v));
        assert_string_equal(json_object_get_string(v), "2023-11-14T22:13:20Z");
        assert_true(json_object_object_get_ex(rec, "log_bytes", &v));
        assert_int_equal(json_object_get_int64(v), 12);
        assert_true(json_object_object_get_ex(rec, "log_sha256", &v));
        assert_string_equal(json_object_get_string(v), "ab");
        json_object_put(rec);

        /* No log, no error, no name: explicit nulls. */
        info.has_log = false;
        info.content_name = NULL;
        assert_int_equal(connect_build_record(&l.jobs[0], NULL, &info, &out2), 0);
        rec = json_tokener_parse(out2);
        assert_non_null(rec);
        static const char *const nulls[] = {"error", "content_name", "log_bytes", "log_sha256"};
        for (size_t i = 0; i < ELEMENTSOF(nulls); i++) {
                assert_true(json_object_object_get_ex(rec, nulls[i], &v));
                assert_null(v);
        }
        json_object_put(rec);
        json_object_put(err);
        connect_job_list_done(&l);
}

/* Each way a job can lack a usable start time, and where its date comes from then. */
static void test_date_sources(void **state)
{
        static const struct {
                const char *fields;
                enum job_date_source src;
                int y, m, d;
        } cases[] = {
                {"\"start_time\":\"2024-03-01T23:30:00-02:00\",\"end_time\":\"2020-01-01T00:00:"
                 "00Z\"",
                 JOB_DATE_START_TIME, 2024, 3, 2},
                /* missing */
                {"\"end_time\":\"2024-05-06T07:08:09Z\"", JOB_DATE_END_TIME, 2024, 5, 6},
                /* null */
                {"\"start_time\":null,\"end_time\":\"2024-05-06T07:08:09Z\"", JOB_DATE_END_TIME,
                 2024, 5, 6},
                /* empty, then a null end time */
                {"\"start_time\":\"\",\"end_time\":null,\"queued_time\":\"2023-12-31T23:59:59Z\"",
                 JOB_DATE_QUEUED_TIME, 2023, 12, 31},
                /* not RFC 3339 */
                {"\"start_time\":\"yesterday\",\"queued_time\":\"2023-01-02T03:04:05.5+01:00\"",
                 JOB_DATE_QUEUED_TIME, 2023, 1, 2},
                /* out of the four-digit range, and a number */
                {"\"start_time\":\"1960-01-01T00:00:00Z\",\"end_time\":1700000000",
                 JOB_DATE_FIRST_SEEN, 0, 0, 0},
                {"\"start_time\":null,\"end_time\":null,\"queued_time\":null", JOB_DATE_FIRST_SEEN,
                 0, 0, 0},
                {"\"tag\":\"run_app\"", JOB_DATE_FIRST_SEEN, 0, 0, 0},
        };
        static const char *const names[] = {"start_time", "end_time", "queued_time", "first_seen"};

        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char body[512];
                struct job j;
                _cleanup_free_ char *rec = NULL;
                struct json_object *obj, *v;
                const struct record_info info = {.content_guid = "g", .archived_at = 0};
                int n = snprintf(body, sizeof(body), "{\"key\":\"k%zu\",\"status\":3,%s}", i,
                                 cases[i].fields);

                assert_true(n > 0 && (size_t) n < sizeof(body));
                assert_int_equal(connect_parse_job(body, (size_t) n, &j), 0);
                assert_null(j.invalid);
                assert_int_equal(j.date_source, cases[i].src);
                assert_int_equal(j.year, cases[i].y);
                assert_int_equal(j.month, cases[i].m);
                assert_int_equal(j.day, cases[i].d);
                assert_string_equal(connect_date_source_to_string(j.date_source),
                                    names[cases[i].src]);
                /* The record says where the date comes from. */
                assert_int_equal(connect_build_record(&j, NULL, &info, &rec), 0);
                obj = json_tokener_parse(rec);
                assert_non_null(obj);
                assert_true(json_object_object_get_ex(obj, "date_source", &v));
                assert_string_equal(json_object_get_string(v), names[cases[i].src]);
                json_object_put(obj);
                connect_job_done(&j);
        }
}

/* The stream's output, each element also parsed back from the raw bytes it was handed. */
struct collected {
        struct job_list l;
        size_t cap;
};

static int collect(void *userdata, const char *elem, size_t len, const struct job *j)
{
        struct collected *c = userdata;
        struct job copy;

        assert_int_equal(connect_parse_element(elem, len, &copy), 0);
        assert_true(job_equal(&copy, j));
        if (c->l.n_jobs == c->cap) {
                c->cap = c->cap ? 2 * c->cap : 8;
                c->l.jobs = realloc(c->l.jobs, c->cap * sizeof(*c->l.jobs));
                assert_non_null(c->l.jobs);
        }
        c->l.jobs[c->l.n_jobs++] = copy;
        return 0;
}

/* Feeds body in pieces: step 0 means random sizes from seed, else pieces of `step` bytes. */
static int stream_parse(struct connect_stream *s, const char *body, size_t len, size_t step,
                        unsigned seed)
{
        size_t off = 0;
        int r = 0;

        connect_stream_reset(s);
        while (off < len && r >= 0) {
                size_t n = step ? step : (size_t) (rand_r(&seed) % 23) + 1;
                if (seed % 7 == 0)
                        n = 0; /* an empty write now and then */
                if (n > len - off)
                        n = len - off;
                r = connect_stream_feed(s, body + off, n);
                off += n;
        }
        return r < 0 ? r : connect_stream_finish(s);
}

/* Every chunking of body gives what the whole-buffer parse gives. */
static void check_stream_equals_whole(const char *body, size_t len)
{
        struct job_list whole = {0};
        int rw = connect_parse_job_list(body, len, &whole);
        const size_t steps[] = {0, 1, 2, 3, 7, 64, SIZE_MAX};

        for (size_t k = 0; k < ELEMENTSOF(steps); k++)
                for (unsigned seed = 1; seed <= (steps[k] == 0 ? 20u : 1u); seed++) {
                        struct collected c = {{0}, 0};
                        struct connect_stream *s;

                        assert_int_equal(connect_stream_new(collect, &c, &s), 0);
                        int rs = stream_parse(s, body, len,
                                              steps[k] == SIZE_MAX ? len + 1 : steps[k], seed);
                        if (rw < 0) {
                                if (rs != -EBADMSG)
                                        fail_msg("stream took what the whole parse refused: %.*s",
                                                 (int) (len > 200 ? 200 : len), body);
                        } else {
                                if (rs != 0)
                                        fail_msg("stream refused (%d) what the whole parse took: "
                                                 "%.*s",
                                                 rs, (int) (len > 200 ? 200 : len), body);
                                assert_int_equal(c.l.n_jobs, whole.n_jobs);
                                assert_int_equal(connect_stream_count(s), whole.n_jobs);
                                for (size_t i = 0; i < whole.n_jobs; i++)
                                        assert_true(job_equal(&c.l.jobs[i], &whole.jobs[i]));
                        }
                        connect_job_list_done(&c.l);
                        connect_stream_free(s);
                }
        if (rw == 0)
                connect_job_list_done(&whole);
}

static void test_stream_fixtures(void **state)
{
        static const char *const fixtures[] = {
                "jobs-list.connectapi-2025.01.0.json",
                "jobs-list.connectapi-2024.08.0.json",
                "jobs-list.posit-sdk-py.json",
        };

        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(fixtures); i++) {
                size_t len;
                _cleanup_free_ char *body = read_fixture(fixtures[i], &len);
                check_stream_equals_whole(body, len);
        }
}

static void test_stream_documents(void **state)
{
        static const char *const docs[] = {
                "",
                " ",
                "[",
                "]",
                "[]",
                " \r\n\t[ \r\n\t] \n",
                "[]]",
                "[[]",
                "[],",
                "[] []",
                "[1]",
                "[1,2 , 3\n]",
                "[1,]",
                "[,1]",
                "[1,,2]",
                "[1 2]",
                "[01]",
                "[-]",
                "[1.]",
                "[1e5]",
                "[-0.5E-3]",
                "[1e999]",
                "[NaN]",
                "[-Infinity]",
                "[Infinity]",
                "[nul]",
                "[null]",
                "[true,false,null]",
                "[truefalse]",
                "[tru e]",
                "[\"a\"]",
                "[\"a\"\"b\"]",
                "[\"a\\\"]\"]",
                "[\"\\\\\"]",
                "[\"]\"]",
                "[\"\\u0000\"]",
                "[\"\\ud800\"]",
                "[\"\xff\"]",
                "[\"\xc3\xa9\"]",
                "[\"a\nb\"]",
                "[{}]",
                "[{]}",
                "[{\"a\":1}{}]",
                "[{\"a\":[1,{\"b\":\"]}\"}]}]",
                "[{\"a\":1,}]",
                "[{\"a\" 1}]",
                "[{'a':1}]",
                "[{\"key\":\"a\",\"status\":2,\"x\":NaN}]",
                "[1]x",
                "[1] x",
                "x[1]",
                "\xef\xbb\xbf[]",
                "[\v1]",
                "[1\f]",
                "[1]\v",
                "[1]\0",
                "[\0]",
                "[\"a\0\"]",
                "{\"jobs\":[]}",
                "null",
                "\"[]\"",
                "[[1,2],[3]]",
                "[{\"key\":\"a\",\"key\":\"b\",\"status\":2}]",
                "[{\"key\":\"a\",\"status\":2,\"start_time\":\"2024-01-01T00:00:00Z\"},"
                "{\"key\":\"b\",\"status\":3},42,\"s\",null,[],{\"key\":\"..\",\"status\":2}]",
        };

        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(docs); i++)
                check_stream_equals_whole(docs[i], strlen(docs[i]));
        /* NUL bytes inside the body, where strlen would stop. */
        check_stream_equals_whole("[1,\0]", 5);
        check_stream_equals_whole("[\"\0\"]", 5);
}

/* The depth limit counts the array itself, as the whole parse does. */
static void test_stream_depth(void **state)
{
        char body[256];

        (void) state;
        for (size_t depth = 28; depth <= 35; depth++) {
                size_t o = 0;
                body[o++] = '[';
                for (size_t i = 0; i < depth; i++) {
                        if (i % 2) {
                                body[o++] = '[';
                        } else {
                                memcpy(body + o, "{\"a\":", 5);
                                o += 5;
                        }
                }
                body[o++] = '1';
                for (size_t i = depth; i-- > 0;)
                        body[o++] = i % 2 ? ']' : '}';
                body[o++] = ']';
                check_stream_equals_whole(body, o);
        }
}

static int fail_on_third(void *userdata, const char *elem, size_t len, const struct job *j)
{
        size_t *n = userdata;

        (void) elem;
        (void) len;
        (void) j;
        return ++*n == 3 ? -ENOSPC : 0;
}

/* A callback's error stops the stream and sticks; an oversized element is refused. */
static void test_stream_errors(void **state)
{
        struct connect_stream *s;
        size_t n = 0;

        (void) state;
        assert_int_equal(connect_stream_new(fail_on_third, &n, &s), 0);
        assert_int_equal(connect_stream_feed(s, "[1,2,3,4]", 9), -ENOSPC);
        assert_int_equal(n, 3);
        assert_int_equal(connect_stream_feed(s, "", 0), -ENOSPC);
        assert_int_equal(connect_stream_finish(s), -ENOSPC);

        /* A reset (an HTTP retry) starts over. */
        n = 10;
        connect_stream_reset(s);
        assert_int_equal(connect_stream_feed(s, "[1,2]", 5), 0);
        assert_int_equal(connect_stream_finish(s), 0);
        assert_int_equal(connect_stream_count(s), 2);

        /* One element over CONNECT_JOB_MAX, fed in pieces. */
        connect_stream_reset(s);
        char *big = malloc(64 * 1024);
        assert_non_null(big);
        memset(big, ' ', 64 * 1024);
        big[0] = '"';
        assert_int_equal(connect_stream_feed(s, "[", 1), 0);
        int r = 0;
        for (size_t fed = 0; r == 0 && fed <= CONNECT_JOB_MAX; fed += 64 * 1024) {
                r = connect_stream_feed(s, big, 64 * 1024);
                big[0] = ' ';
        }
        assert_int_equal(r, -EFBIG);
        free(big);
        connect_stream_free(s);
}

/* A large list in random pieces: every element arrives, in order. */
static void test_stream_large(void **state)
{
        const size_t n_jobs = 5000;
        size_t cap = n_jobs * 160 + 16, len = 0;
        _cleanup_free_ char *body = malloc(cap);
        struct collected c = {{0}, 0};
        struct connect_stream *s;

        (void) state;
        assert_non_null(body);
        body[len++] = '[';
        for (size_t i = 0; i < n_jobs; i++)
                len += (size_t) snprintf(body + len, cap - len,
                                         "%s{\"key\":\"job%06zu\",\"status\":%d,\"start_time\":"
                                         "\"2024-02-%02zuT10:00:00Z\",\"log\":\"a\\\"]}\"}",
                                         i ? ",\n" : "", i, (int) (i % 4), i % 28 + 1);
        body[len++] = ']';
        assert_int_equal(connect_stream_new(collect, &c, &s), 0);
        assert_int_equal(stream_parse(s, body, len, 0, 42), 0);
        assert_int_equal(c.l.n_jobs, n_jobs);
        for (size_t i = 0; i < n_jobs; i++) {
                char key[16];
                (void) snprintf(key, sizeof(key), "job%06zu", i);
                assert_string_equal(c.l.jobs[i].key, key);
                assert_int_equal(c.l.jobs[i].day, (int) (i % 28 + 1));
        }
        connect_job_list_done(&c.l);
        connect_stream_free(s);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_fixture_2025),
                cmocka_unit_test(test_fixture_2024_and_sdk),
                cmocka_unit_test(test_due_rule),
                cmocka_unit_test(test_hostile_elements),
                cmocka_unit_test(test_long_key),
                cmocka_unit_test(test_bad_documents),
                cmocka_unit_test(test_error_record),
                cmocka_unit_test(test_urls),
                cmocka_unit_test(test_error_message),
                cmocka_unit_test(test_record),
                cmocka_unit_test(test_date_sources),
                cmocka_unit_test(test_stream_fixtures),
                cmocka_unit_test(test_stream_documents),
                cmocka_unit_test(test_stream_depth),
                cmocka_unit_test(test_stream_errors),
                cmocka_unit_test(test_stream_large),
                cmocka_unit_test(test_list_404_hint),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

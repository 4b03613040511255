/* The operator's operations in connect.c: one job, log entries, kill order, error bodies. */
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

static char *read_fixture(const char *name, size_t *ret_len)
{
        char path[512];
        FILE *f;
        char *buf;
        long n;

        (void) snprintf(path, sizeof(path), "%s/%s", CJA_FIXTURES, name);
        f = fopen(path, "rb");
        assert_non_null(f);
        assert_int_equal(fseek(f, 0, SEEK_END), 0);
        n = ftell(f);
        assert_true(n >= 0);
        rewind(f);
        buf = malloc((size_t) n + 1);
        assert_non_null(buf);
        assert_int_equal(fread(buf, 1, (size_t) n, f), (size_t) n);
        buf[n] = '\0';
        fclose(f);
        *ret_len = (size_t) n;
        return buf;
}

static void test_single_job_fixture(void **state)
{
        struct job_detail d;
        struct job j;
        size_t len;
        _cleanup_free_ char *body = read_fixture("job-single.connectapi-2024.08.0.json", &len);

        (void) state;
        assert_int_equal(connect_parse_job(body, len, &j), 0);
        assert_null(j.invalid);
        assert_string_equal(j.key, "QBZ5jkKfmf9iT9k8");
        assert_int_equal(j.status, JOB_FINALIZED);
        assert_int_equal(j.start_time, 1732573062); /* 2024-11-25T22:17:42Z */
        connect_job_detail(&j, &d);
        assert_string_equal(d.id, "40096649");
        assert_string_equal(d.tag, "run_app");
        assert_string_equal(d.hostname, "dogfood02");
        assert_string_equal(d.pid, "2509199");
        assert_string_equal(d.run_as, "rstudio-connect");
        assert_null(d.cluster); /* null in the body */
        assert_false(d.has_end_time);
        assert_false(d.has_exit_code);
        assert_string_equal(connect_job_status_to_string(j.status), "finalized");
        connect_job_done(&j);
        assert_null(j.obj);
}

static void test_single_job_sdk_fixture(void **state)
{
        struct job_detail d;
        struct job j;
        size_t len;
        _cleanup_free_ char *body = read_fixture("job-single.posit-sdk-py.json", &len);

        (void) state;
        assert_int_equal(connect_parse_job(body, len, &j), 0);
        assert_null(j.invalid);
        assert_string_equal(j.key, "tHawGvHZTosJA2Dx");
        connect_job_detail(&j, &d);
        assert_true(d.has_end_time);
        assert_true(d.has_exit_code);
        assert_int_equal(d.exit_code, 0);
        assert_true(d.end_time >= j.start_time);
        connect_job_done(&j);
}

static void test_single_job_shapes(void **state)
{
        static const char *const bad[] = {"[]", "null", "\"x\"", "{", "{} {}", ""};
        struct job j;

        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(connect_parse_job(bad[i], strlen(bad[i]), &j), -EBADMSG);
        /* Usable for display, refused for the archive; unknown fields ignored. */
        const char *odd = "{\"key\":\"../x\",\"status\":0,\"start_time\":\"2024-01-01T00:00:00Z\","
                          "\"new_field\":{\"deep\":[1,2]}}";
        assert_int_equal(connect_parse_job(odd, strlen(odd), &j), 0);
        assert_non_null(j.invalid);
        assert_string_equal(j.key, "../x");
        connect_job_done(&j);
        const char *active = "{\"key\":\"k\",\"status\":0,\"start_time\":\"2024-01-01T00:00:00Z\","
                             "\"end_time\":null,\"exit_code\":null,\"status_x\":1}";
        assert_int_equal(connect_parse_job(active, strlen(active), &j), 0);
        assert_null(j.invalid);
        assert_string_equal(connect_job_status_to_string(j.status), "active");
        connect_job_done(&j);
        assert_string_equal(connect_job_status_to_string(1), "finished");
        assert_string_equal(connect_job_status_to_string(3), "skipped");
        assert_string_equal(connect_job_status_to_string(7), "unknown");
}

static void test_log_fixture(void **state)
{
        struct log_entries l;
        size_t len;
        _cleanup_free_ char *body = read_fixture("job-log.connectapi-2024.08.0.json", &len);

        (void) state;
        assert_int_equal(connect_parse_log_entries(body, len, &l), 0);
        assert_int_equal(l.n_entries, 3);
        assert_string_equal(l.entries[0].source, "stderr");
        assert_string_equal(l.entries[0].data, "[rsc-session] Content GUID: 8f37d6e0");
        assert_int_equal(l.entries[0].data_len, strlen("[rsc-session] Content GUID: 8f37d6e0"));
        assert_true(l.entries[0].has_timestamp);
        assert_int_equal(l.entries[0].ts_sec, 1733512169); /* 2024-12-06T19:09:29Z */
        assert_int_equal(l.entries[0].ts_nsec, 948016766);
        assert_int_equal(l.entries[1].ts_nsec, 948070345);
        assert_string_equal(l.entries[2].data, "[rsc-session] Bundle ID: 127015");
        connect_log_entries_done(&l);
        assert_null(l.entries);
}

static void test_log_entry_shapes(void **state)
{
        struct log_entries l;

        (void) state;
        /* Null timestamp (newest spec), short fractions, unknown fields. */
        const char *ok = "{\"entries\":[{\"source\":\"stdout\",\"timestamp\":null,\"data\":\"a\"},"
                         "{\"source\":\"stdout\",\"data\":\"b\",\"x\":1},"
                         "{\"source\":\"stderr\",\"timestamp\":\"2024-12-06T19:09:29.5Z\","
                         "\"data\":\"\"}],\"more\":true}";
        assert_int_equal(connect_parse_log_entries(ok, strlen(ok), &l), 0);
        assert_int_equal(l.n_entries, 3);
        assert_false(l.entries[0].has_timestamp);
        assert_false(l.entries[1].has_timestamp);
        assert_true(l.entries[2].has_timestamp);
        assert_int_equal(l.entries[2].ts_nsec, 500000000);
        assert_int_equal(l.entries[2].data_len, 0);
        connect_log_entries_done(&l);

        const char *empty = "{\"entries\":[]}";
        assert_int_equal(connect_parse_log_entries(empty, strlen(empty), &l), 0);
        assert_int_equal(l.n_entries, 0);
        connect_log_entries_done(&l);

        static const char *const bad[] = {
                "[]",
                "{}",
                "{\"entries\":{}}",
                "{\"entries\":[1]}",
                "{\"entries\":[{\"source\":\"stdout\"}]}",
                "{\"entries\":[{\"data\":\"x\"}]}",
                "{\"entries\":[{\"source\":1,\"data\":\"x\"}]}",
                "{\"entries\":[{\"source\":\"stdout\",\"data\":\"x\",\"timestamp\":\"yesterday\"}]"
                "}",
                "{\"entries\":[{\"source\":\"stdout\",\"data\":\"x\",\"timestamp\":5}]}",
                "{\"entries\":[]} x",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(connect_parse_log_entries(bad[i], strlen(bad[i]), &l), -EBADMSG);
}

static void test_kill_order_fixture(void **state)
{
        struct kill_order k;
        size_t len;
        _cleanup_free_ char *body = read_fixture("job-kill-order.connectapi-2024.08.0.json", &len);

        (void) state;
        assert_int_equal(connect_parse_kill_order(body, len, &k), 0);
        assert_string_equal(k.job_key, "k3sHkEoWJNwQim7g");
        assert_string_equal(k.result, "Order to kill job registered");
        assert_string_equal(k.guid, "b0ab9d47");
        connect_kill_order_done(&k);

        static const char *const bad[] = {"[]", "{}", "{\"job_key\":5}", "{\"job_key\":null}"};
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(connect_parse_kill_order(bad[i], strlen(bad[i]), &k), -EBADMSG);
}

static void test_api_error_fixtures(void **state)
{
        static const struct {
                const char *file;
                int64_t code;
                const char *start;
        } want[] = {
                {"error-409-job-not-active.connectapi-2024.08.0.json", 163,
                 "The specified job cannot be terminated"},
                {"error-404-object-does-not-exist.connectapi-2024.08.0.json", 4,
                 "Cache does not exist"},
                {"error-403-permission-denied.connectapi-2024.08.0.json", 22, "You do"},
        };
        struct connect_api_error e;

        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(want); i++) {
                size_t len;
                _cleanup_free_ char *body = read_fixture(want[i].file, &len);
                assert_int_equal(connect_parse_api_error(body, len, &e), 0);
                assert_int_equal(e.code, want[i].code);
                assert_memory_equal(e.message, want[i].start, strlen(want[i].start));
        }
        /* An older server's unknown route is plain text: not an API error. */
        static const char *const bad[] = {
                "404 page not found\n", "",
                "<html></html>",        "{\"code\":\"4\",\"error\":\"x\"}",
                "{\"error\":\"x\"}",    "{\"code\":4}"};
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(connect_parse_api_error(bad[i], strlen(bad[i]), &e), -EBADMSG);
        /* A hostile message cannot forge a line. */
        const char *evil = "{\"code\":1,\"error\":\"a\\nb\\u001b[31m\"}";
        assert_int_equal(connect_parse_api_error(evil, strlen(evil), &e), 0);
        assert_null(strchr(e.message, '\n'));
        assert_null(strchr(e.message, '\033'));
}

static void test_log_url(void **state)
{
        _cleanup_free_ char *url = NULL;

        (void) state;
        assert_int_equal(
                connect_job_log_url("https://c.example", "8f37d6e0", "mxPGVOMVk6f8dso2", 10, &url),
                0);
        assert_string_equal(url,
                            "https://c.example/__api__/v1/content/8f37d6e0/jobs/mxPGVOMVk6f8dso2/"
                            "log?maxLogLines=10");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_single_job_fixture),
                cmocka_unit_test(test_single_job_sdk_fixture),
                cmocka_unit_test(test_single_job_shapes),
                cmocka_unit_test(test_log_fixture),
                cmocka_unit_test(test_log_entry_shapes),
                cmocka_unit_test(test_kill_order_fixture),
                cmocka_unit_test(test_api_error_fixtures),
                cmocka_unit_test(test_log_url),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

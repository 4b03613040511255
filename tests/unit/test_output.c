#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "connect.h"
#include "output.h"

/* What connect-jobs prints for people: durations, times, escaping, the job table. */

/* 2024-11-25 23:17:42 UTC */
#define T0 INT64_C(1732576662)

/* Runs stmt with f a memory stream; buf then holds what it wrote (free it). */
#define CAPTURE(buf, len, f, stmt)                                                                 \
        do {                                                                                       \
                FILE *f = open_memstream(&(buf), &(len));                                          \
                assert_non_null(f);                                                                \
                stmt;                                                                              \
                assert_int_equal(fclose(f), 0);                                                    \
        } while (0)

static void test_duration(void **state)
{
        static const struct {
                int64_t s;
                const char *want;
        } cases[] = {
                {-1, "-"},         {0, "0s"},         {59, "59s"},           {60, "1m 00s"},
                {61, "1m 01s"},    {3599, "59m 59s"}, {3600, "1h 00m"},      {86399, "23h 59m"},
                {86400, "1d 00h"}, {90061, "1d 01h"}, {8640000, "100d 00h"},
        };
        char buf[16];

        (void) state;
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
                assert_string_equal(output_duration(cases[i].s, buf, sizeof(buf)), cases[i].want);
}

static void test_time_utc_and_local(void **state)
{
        char buf[64];

        (void) state;
        assert_string_equal(output_time(T0, true, true, buf, sizeof(buf)),
                            "2024-11-25 23:17:42 UTC");
        assert_string_equal(output_time(T0, true, false, buf, sizeof(buf)), "2024-11-25 23:17:42");
        /* A POSIX zone string: no tzdata needed. One hour east of UTC: the next day. */
        assert_int_equal(setenv("TZ", "CET-1", 1), 0);
        tzset();
        assert_string_equal(output_time(T0, false, true, buf, sizeof(buf)),
                            "2024-11-26 00:17:42 CET");
        assert_string_equal(output_time(T0, false, false, buf, sizeof(buf)), "2024-11-26 00:17:42");
        assert_int_equal(unsetenv("TZ"), 0);
        tzset();
}

static void test_sanitized(void **state)
{
        const char in[] = "a\033[31mb\tc\x7f\r\n\xc3\xa9\0z";
        char *out = NULL;
        size_t len = 0;

        (void) state;
        CAPTURE(out, len, f, output_sanitized(f, in, sizeof(in) - 1));
        /* C0 controls and DEL escaped, a tab kept, UTF-8 and the bytes after a NUL kept. */
        assert_string_equal(out, "a\\x1b[31mb\tc\\x7f\\x0d\\x0a\xc3\xa9\\x00z");
        free(out);
}

static void parse(const char *json, struct job *j)
{
        assert_int_equal(connect_parse_job(json, strlen(json), j), 0);
}

static void test_job_table(void **state)
{
        struct job jobs[2];
        bool archived[2] = {true, false};
        char *out = NULL;
        size_t len = 0;

        (void) state;
        parse("{\"key\":\"failedJob0000001\",\"status\":2,\"start_time\":\"2024-11-25T23:17:42Z\","
              "\"end_time\":\"2024-11-25T23:19:42Z\",\"exit_code\":1,\"tag\":\"run_app\","
              "\"hostname\":\"connect-01\"}",
              &jobs[0]);
        /* Active, no exit code, a hostile tag: the duration runs to now, the tag is escaped. */
        parse("{\"key\":\"act1\",\"status\":0,\"start_time\":\"2024-11-25T22:17:42Z\","
              "\"tag\":\"x\\u001b[2Jy\",\"hostname\":\"h\"}",
              &jobs[1]);
        CAPTURE(out, len, f, output_job_table(f, jobs, 2, archived, true, T0));
        assert_string_equal(out,
                            "KEY               STATUS     STARTED (UTC)        DURATION  EXIT  "
                            "TAG        HOST        ARCHIVED\n"
                            "failedJob0000001  finalized  2024-11-25 23:17:42  2m 00s    1     "
                            "run_app    connect-01  yes\n"
                            "act1              active     2024-11-25 22:17:42  1h 00m    -     "
                            "x\\x1b[2Jy  h           no\n");
        free(out);
        /* Without an archive configured, no ARCHIVED column. */
        CAPTURE(out, len, f, output_job_table(f, jobs, 1, NULL, true, T0));
        assert_string_equal(out,
                            "KEY               STATUS     STARTED (UTC)        DURATION  EXIT  TAG "
                            "     HOST\n"
                            "failedJob0000001  finalized  2024-11-25 23:17:42  2m 00s    1     "
                            "run_app  connect-01\n");
        free(out);
        connect_job_done(&jobs[0]);
        connect_job_done(&jobs[1]);
}

static void test_log_entry_json_round_trips(void **state)
{
        const char *in = "{\"source\":\"stderr\",\"timestamp\":\"2024-11-25T23:17:42.5Z\","
                         "\"data\":\"q\\\" nl\\n tab\\t esc\\u001b slash / \\u00e9\"}";
        struct json_object *obj = json_tokener_parse(in), *back;
        struct log_entry e;
        char *out = NULL;
        size_t len = 0;

        (void) state;
        assert_non_null(obj);
        assert_int_equal(connect_log_entry_from_json(obj, &e), 0);
        CAPTURE(out, len, f, output_log_entry_json(f, &e));
        /* One line, and it parses back to the same object. */
        assert_non_null(strchr(out, '\n'));
        assert_ptr_equal(strchr(out, '\n'), out + len - 1);
        back = json_tokener_parse(out);
        assert_non_null(back);
        assert_true(json_object_equal(back, obj));
        json_object_put(back);
        free(out);
        CAPTURE(out, len, f, output_log_entry_text(f, &e, true));
        assert_string_equal(out,
                            "2024-11-25 23:17:42.500 stderr q\" nl\\x0a tab\t esc\\x1b slash / "
                            "\xc3\xa9\n");
        free(out);
        connect_log_entry_done(&e);
        json_object_put(obj);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_duration),
                cmocka_unit_test(test_time_utc_and_local),
                cmocka_unit_test(test_sanitized),
                cmocka_unit_test(test_job_table),
                cmocka_unit_test(test_log_entry_json_round_trips),
        };

        /* the memory streams here stand for a terminal: server text escaped */
        output_force_escapes(1);
        return cmocka_run_group_tests(tests, NULL, NULL);
}

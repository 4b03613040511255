#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "log.h"
#include "macro.h"
#include "util.h"

static void assert_epoch(const char *s, int64_t want)
{
        int64_t got = 0;

        assert_int_equal(rfc3339_parse(s, &got), 0);
        assert_int_equal(got, want);
}

static void test_rfc3339_forms(void **state)
{
        (void) state;
        assert_epoch("1970-01-01T00:00:00Z", 0);
        assert_epoch("2024-11-25T22:26:14Z", 1732573574);
        assert_epoch("2024-11-25t22:26:14z", 1732573574);
        assert_epoch("2024-11-25 22:26:14Z", 1732573574);
        /* Fractional seconds, up to nanoseconds, are dropped. */
        assert_epoch("2024-12-06T19:09:29.948016766Z", 1733512169);
        assert_epoch("2024-12-06T19:09:29.9Z", 1733512169);
        /* Offsets move the instant: 15:04:05-07:00 is 22:04:05Z. */
        assert_epoch("2006-01-02T15:04:05-07:00", 1136239445);
        assert_epoch("2006-01-02T15:04:05.123+05:30", 1136194445);
        assert_epoch("2024-02-29T00:00:00Z", 1709164800);
}

static void test_rfc3339_date_crosses_midnight(void **state)
{
        int64_t t;
        char buf[32];

        (void) state;
        /* 2024-03-31T23:30:00-07:00 is April 1st in UTC: the archive folder follows UTC. */
        assert_int_equal(rfc3339_parse("2024-03-31T23:30:00-07:00", &t), 0);
        assert_string_equal(rfc3339_format_utc(t, buf, sizeof(buf)), "2024-04-01T06:30:00Z");
        assert_int_equal(rfc3339_parse("2024-01-01T00:30:00+01:00", &t), 0);
        assert_string_equal(rfc3339_format_utc(t, buf, sizeof(buf)), "2023-12-31T23:30:00Z");
}

static void test_rfc3339_rejects(void **state)
{
        static const char *const bad[] = {
                "",
                "2024-11-25",
                "2024-11-25T22:26:14",      /* no zone */
                "2024-11-25T22:26:14+0700", /* offset without colon */
                "2024-13-01T00:00:00Z",     /* month 13 */
                "2023-02-29T00:00:00Z",     /* not a leap year */
                "2024-11-25T24:00:00Z",     /* hour 24 */
                "2024-11-25T22:26:14.Z",    /* empty fraction */
                "2024-11-25T22:26:14Zjunk", /* trailing bytes */
                "24-11-25T22:26:14Z",
                "2024-11-25T22:26:14+25:00",
                "1733415771", /* legacy epoch seconds */
        };
        int64_t t = 42;

        (void) state;
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                assert_int_equal(rfc3339_parse(bad[i], &t), -EINVAL);
                assert_int_equal(t, 42);
        }
        assert_int_equal(rfc3339_parse(NULL, &t), -EINVAL);
}

static void test_path_component(void **state)
{
        char longest[129], too_long[130];

        (void) state;
        memset(longest, 'a', 128);
        longest[128] = '\0';
        memset(too_long, 'a', 129);
        too_long[129] = '\0';

        assert_true(path_component_is_safe("tHawGvHZTosJA2Dx", 16));
        assert_true(path_component_is_safe("a..b", 4));
        assert_true(path_component_is_safe(longest, 128));
        assert_false(path_component_is_safe(too_long, 129));
        assert_false(path_component_is_safe("", 0));
        assert_false(path_component_is_safe(".", 1));
        assert_false(path_component_is_safe("..", 2));
        assert_false(path_component_is_safe("a/b", 3));
        assert_false(path_component_is_safe("/", 1));
        assert_false(path_component_is_safe("a\nb", 3));
        assert_false(path_component_is_safe("a\x1b[31m", 7));
        assert_false(path_component_is_safe("a\x7f", 2));
        /* An embedded NUL: the true length is longer than strlen(). */
        assert_false(path_component_is_safe("ab\0cd", 5));
        assert_false(path_component_is_safe(NULL, 0));
}

static void test_guid(void **state)
{
        (void) state;
        assert_true(guid_is_valid("38400000-8cf0-11bd-b23e-10b96e4ef00d"));
        assert_true(guid_is_valid("0B8F3A5E-2F4D-4C47-9B0E-5C1F6E2A9D11"));
        assert_false(guid_is_valid("8f37d6e0"));
        assert_false(guid_is_valid("38400000-8cf0-11bd-b23e-10b96e4ef00"));
        assert_false(guid_is_valid("38400000-8cf0-11bd-b23e-10b96e4ef00dd"));
        assert_false(guid_is_valid("38400000x8cf0-11bd-b23e-10b96e4ef00d"));
        assert_false(guid_is_valid("g8400000-8cf0-11bd-b23e-10b96e4ef00d"));
        assert_false(guid_is_valid("../../../../etc/passwd-aaaaaaaaaaaaa"));
        assert_false(guid_is_valid(NULL));
}

static void test_log_escape(void **state)
{
        char buf[LOG_ESCAPE_MAX], small[12];
        char big[1000];

        (void) state;
        assert_string_equal(log_escape("plain-key", buf, sizeof(buf)), "plain-key");
        /* A newline cannot start a forged log line, and quotes cannot close ours. */
        assert_string_equal(log_escape("a\n<3>b\"c\\", buf, sizeof(buf)), "a\\x0a<3>b\\x22c\\x5c");
        assert_string_equal(log_escape("\xff\xfe", buf, sizeof(buf)), "\\xff\\xfe");
        memset(big, 'x', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        log_escape(big, buf, sizeof(buf));
        assert_true(strlen(buf) < sizeof(buf));
        assert_string_equal(buf + strlen(buf) - 3, "...");
        log_escape("\n\n\n\n\n", small, sizeof(small));
        assert_true(strlen(small) < sizeof(small));
        assert_string_equal(log_escape(NULL, buf, sizeof(buf)), "(null)");
}

static void test_buf_append(void **state)
{
        char *buf = NULL;
        size_t len = 0, cap = 0;

        (void) state;
        /* Nothing appended still makes an empty, terminated string. */
        assert_int_equal(buf_append(&buf, &len, &cap, "", 0, 4), 0);
        assert_int_equal(len, 0);
        assert_int_equal(cap, 4);
        assert_string_equal(buf, "");
        assert_int_equal(buf_append(&buf, &len, &cap, "abc", 3, 4), 0);
        assert_int_equal(cap, 4); /* "abc" and its NUL fit */
        assert_int_equal(buf_append(&buf, &len, &cap, "defghij", 7, 4), 0);
        assert_int_equal(len, 10);
        assert_int_equal(cap, 16); /* doubled until 11 bytes fit */
        assert_string_equal(buf, "abcdefghij");
        for (int i = 0; i < 1000; i++)
                assert_int_equal(buf_append(&buf, &len, &cap, "x", 1, 4), 0);
        assert_int_equal(len, 1010);
        assert_int_equal(strlen(buf), 1010);
        assert_int_equal(cap, 1024);
        free(buf);
}

static void test_hex(void **state)
{
        const unsigned char in[] = {0x00, 0x9f, 0xff};
        char out[7];

        (void) state;
        hex_encode(in, sizeof(in), out);
        assert_string_equal(out, "009fff");
}

static void test_ymd_parse(void **state)
{
        struct ymd v = {-1, -1, -1};

        (void) state;
        assert_int_equal(ymd_parse("2024", "03", "09", &v), 0);
        assert_int_equal(v.year, 2024);
        assert_int_equal(v.month, 3);
        assert_int_equal(v.day, 9);
        /* A part not given is 0: a year, or a month, as a whole. */
        assert_int_equal(ymd_parse("0999", "12", NULL, &v), 0);
        assert_int_equal(v.year, 999);
        assert_int_equal(v.month, 12);
        assert_int_equal(v.day, 0);
        assert_int_equal(ymd_parse("2024", NULL, NULL, &v), 0);
        assert_int_equal(v.month, 0);
}

static void test_ymd_parse_rejects(void **state)
{
        static const char *const bad[][3] = {
                {"202", "01", "01"},  {"20245", "01", "01"}, {"+024", "01", "01"},
                {" 024", "01", "01"}, {"2024", "1", "01"},   {"2024", "001", "01"},
                {"2024", "-1", "01"}, {"2024", "01", "1a"},  {"2024", "01", ""},
                {"2024", "0x", NULL}, {"", NULL, NULL},      {"abcd", NULL, NULL},
        };
        struct ymd v = {7, 7, 7};

        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(ymd_parse(bad[i][0], bad[i][1], bad[i][2], &v), -EINVAL);
        assert_int_equal(ymd_parse(NULL, "01", "01", &v), -EINVAL);
        /* Nothing written on failure. */
        assert_int_equal(v.year, 7);
        assert_int_equal(v.month, 7);
        assert_int_equal(v.day, 7);
}

static void test_ymd_compare(void **state)
{
        const struct ymd a = {2024, 3, 15}, same = {2024, 3, 15}, next_day = {2024, 3, 16},
                         next_month = {2024, 4, 1}, prev_year = {2023, 12, 31},
                         month_only = {2024, 3, 0}, later_month_only = {2024, 4, 0};

        (void) state;
        assert_int_equal(ymd_compare(&a, &same), 0);
        assert_true(ymd_compare(&a, &next_day) < 0);
        assert_true(ymd_compare(&next_day, &a) > 0);
        assert_true(ymd_compare(&a, &next_month) < 0);
        assert_true(ymd_compare(&prev_year, &a) < 0);
        /* A whole month (day 0) sorts before its days: the prune's "month past" test. */
        assert_true(ymd_compare(&month_only, &a) < 0);
        assert_true(ymd_compare(&later_month_only, &a) > 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_rfc3339_forms),
                cmocka_unit_test(test_rfc3339_date_crosses_midnight),
                cmocka_unit_test(test_rfc3339_rejects),
                cmocka_unit_test(test_path_component),
                cmocka_unit_test(test_guid),
                cmocka_unit_test(test_log_escape),
                cmocka_unit_test(test_hex),
                cmocka_unit_test(test_ymd_parse),
                cmocka_unit_test(test_ymd_parse_rejects),
                cmocka_unit_test(test_ymd_compare),
                cmocka_unit_test(test_buf_append),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

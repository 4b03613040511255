#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "http.h"
#include "macro.h"

static void test_classify(void **state)
{
        (void) state;
        assert_int_equal(http_result_classify(200, CURLE_OK, 0), HTTP_OK);
        assert_int_equal(http_result_classify(204, CURLE_OK, 0), HTTP_OK);
        assert_int_equal(http_result_classify(404, CURLE_OK, 0), HTTP_GONE);
        assert_int_equal(http_result_classify(401, CURLE_OK, 0), HTTP_AUTH);
        assert_int_equal(http_result_classify(403, CURLE_OK, 0), HTTP_AUTH);
        static const long retry[] = {408, 429, 500, 502, 503, 504};
        for (size_t i = 0; i < ELEMENTSOF(retry); i++)
                assert_int_equal(http_result_classify(retry[i], CURLE_OK, 0), HTTP_RETRY);
        static const long fail[] = {301, 400, 405, 409, 422};
        for (size_t i = 0; i < ELEMENTSOF(fail); i++)
                assert_int_equal(http_result_classify(fail[i], CURLE_OK, 0), HTTP_FAILED);
        /* Transport failures are retried whatever status line came before them. */
        static const CURLcode transient[] = {
                CURLE_COULDNT_CONNECT, CURLE_OPERATION_TIMEDOUT, CURLE_PARTIAL_FILE,
                CURLE_RECV_ERROR,      CURLE_GOT_NOTHING,        CURLE_SEND_ERROR,
        };
        for (size_t i = 0; i < ELEMENTSOF(transient); i++)
                assert_int_equal(http_result_classify(200, transient[i], 0), HTTP_RETRY);
        /* A failing sink (disk full) is not the server's fault: no hammering. */
        assert_int_equal(http_result_classify(200, CURLE_WRITE_ERROR, -ENOSPC), HTTP_FAILED);
        assert_int_equal(http_result_classify(0, CURLE_UNSUPPORTED_PROTOCOL, 0), HTTP_FAILED);
}

static void test_backoff(void **state)
{
        struct http_options o = {
                .backoff_base_usec = 500 * USEC_PER_MSEC,
                .backoff_cap_usec = 30 * USEC_PER_SEC,
        };

        (void) state;
        /* The ceiling doubles per attempt and stops at the cap; rnd picks inside it. */
        assert_int_equal(http_backoff_usec(&o, 1, UINT64_MAX), UINT64_MAX % (500000 + 1));
        for (unsigned a = 1; a < 20; a++) {
                uint64_t ceiling = 500000;
                for (unsigned i = 1; i < a && ceiling < o.backoff_cap_usec; i++)
                        ceiling *= 2;
                if (ceiling > o.backoff_cap_usec)
                        ceiling = o.backoff_cap_usec;
                assert_int_equal(http_backoff_usec(&o, a, ceiling), ceiling);
                assert_int_equal(http_backoff_usec(&o, a, ceiling + 1), 0);
                assert_true(http_backoff_usec(&o, a, 0x9e3779b97f4a7c15ULL) <= ceiling);
        }
        assert_int_equal(http_backoff_usec(&o, 7, 30 * USEC_PER_SEC), 30 * USEC_PER_SEC);
        assert_int_equal(http_backoff_usec(&o, 200, 30 * USEC_PER_SEC), 30 * USEC_PER_SEC);
}

static void test_retry_after(void **state)
{
        /* 1994-11-06T08:49:37Z */
        const int64_t now = 784111777;

        (void) state;
        assert_int_equal(http_parse_retry_after(" 2\r\n", now), 2 * (int64_t) USEC_PER_SEC);
        assert_int_equal(http_parse_retry_after("0", now), 0);
        assert_int_equal(http_parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT\r\n", now),
                         10 * (int64_t) USEC_PER_SEC);
        /* A date in the past means "now". */
        assert_int_equal(http_parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now), 0);
        assert_int_equal(http_parse_retry_after("-5", now), -1);
        assert_int_equal(http_parse_retry_after("soon", now), -1);
        assert_int_equal(http_parse_retry_after("5 seconds", now), -1);
        assert_int_equal(http_parse_retry_after("99999999999999999999", now), -1);
        assert_int_equal(http_parse_retry_after("", now), -1);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_classify),
                cmocka_unit_test(test_backoff),
                cmocka_unit_test(test_retry_after),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

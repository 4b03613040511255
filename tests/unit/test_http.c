#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "http.h"
#include "log.h"
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

/* curl's own text: printable ASCII and UTF-8 as written, everything that could forge or
 * garble a log line escaped. */
static void test_library_text_escaping(void **state)
{
        char buf[LOG_ESCAPE_MAX], small[12], odd[11];

        (void) state;
        assert_string_equal(log_escape_text("Couldn't connect to server", buf, sizeof(buf)),
                            "Couldn't connect to server");
        assert_string_equal(log_escape_text("\"quoted\" <3>", buf, sizeof(buf)), "\"quoted\" <3>");
        assert_string_equal(log_escape_text("a\nb\r\x1b[31m\x7f", buf, sizeof(buf)),
                            "a\\x0ab\\x0d\\x1b[31m\\x7f");
        /* Every \x in the output is an escape. */
        assert_string_equal(log_escape_text("C:\\x41", buf, sizeof(buf)), "C:\\x5cx41");
        /* Valid UTF-8 stays; C1 controls, overlongs, surrogates, cut sequences do not. */
        assert_string_equal(log_escape_text("h\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", buf,
                                            sizeof(buf)),
                            "h\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
        assert_string_equal(log_escape_text("\xc2\x9b"
                                            "1m",
                                            buf, sizeof(buf)),
                            "\\xc2\\x9b1m");
        assert_string_equal(log_escape_text("\xc0\xaf\xed\xa0\x80", buf, sizeof(buf)),
                            "\\xc0\\xaf\\xed\\xa0\\x80");
        assert_string_equal(log_escape_text("\xe2\x82", buf, sizeof(buf)), "\\xe2\\x82");
        assert_string_equal(log_escape_text("\xf4\x90\x80\x80\xff", buf, sizeof(buf)),
                            "\\xf4\\x90\\x80\\x80\\xff");
        /* Capped like log_escape(), never inside a character. */
        log_escape_text("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", small, sizeof(small));
        assert_string_equal(small, "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9...");
        log_escape_text("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", odd, sizeof(odd));
        assert_string_equal(odd, "\xc3\xa9\xc3\xa9\xc3\xa9...");
        assert_string_equal(log_escape_text(NULL, buf, sizeof(buf)), "(null)");
}

/* A loopback port with nothing listening (bound, then closed). */
static int closed_port(void)
{
        struct sockaddr_in sa = {.sin_family = AF_INET};
        socklen_t len = sizeof(sa);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        assert_true(fd >= 0);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        assert_int_equal(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *) &sa, &len), 0);
        assert_int_equal(close(fd), 0);
        return ntohs(sa.sin_port);
}

struct outcome {
        bool done;
        int curl_code;
        char detail[256];
};

static void on_done(void *userdata, const struct http_result *res)
{
        struct outcome *o = userdata;

        o->done = true;
        o->curl_code = res->curl_code;
        (void) snprintf(o->detail, sizeof(o->detail), "%s", res->detail);
}

static const struct http_options one_try = {
        .api_key = "k",
        .verify_tls = true,
        .timeout_seconds = 5,
        .max_concurrent = 1,
        .max_attempts = 1,
};

static void test_curl_error_text_as_written(void **state)
{
        struct http_engine *e = NULL;
        struct outcome o = {0};
        char url[64];

        (void) state;
        (void) snprintf(url, sizeof(url), "http://127.0.0.1:%d/", closed_port());
        assert_int_equal(http_engine_new(&one_try, &e), 0);
        assert_int_equal(http_get(e, url, NULL, on_done, &o), 0);
        for (int i = 0; i < 100 && !o.done; i++)
                assert_true(http_engine_run(e, 100 * USEC_PER_MSEC, NULL, 0) >= 0);
        http_engine_free(e);
        assert_true(o.done);
        assert_int_equal(o.curl_code, CURLE_COULDNT_CONNECT);
        /* "Failed to connect to 127.0.0.1 port N after 0 ms: Couldn't connect to server" */
        if (!strstr(o.detail, "Couldn't connect to server"))
                fail_msg("curl's text changed: %s", o.detail);
        assert_null(strstr(o.detail, "\\x"));
}

/* Runs fn with stderr going to a file; returns what was written (free it). */
static char *capture_stderr(void (*fn)(void))
{
        char path[] = "/tmp/cja-test-http-XXXXXX", *text;
        int fd = mkstemp(path), saved = dup(STDERR_FILENO);
        off_t size;

        assert_true(fd >= 0 && saved >= 0);
        assert_int_equal(unlink(path), 0);
        (void) fflush(stderr);
        assert_true(dup2(fd, STDERR_FILENO) >= 0);
        fn();
        (void) fflush(stderr);
        assert_true(dup2(saved, STDERR_FILENO) >= 0);
        assert_int_equal(close(saved), 0);
        size = lseek(fd, 0, SEEK_END);
        assert_true(size >= 0);
        text = calloc(1, (size_t) size + 1);
        assert_non_null(text);
        assert_int_equal(pread(fd, text, (size_t) size, 0), size);
        assert_int_equal(close(fd), 0);
        return text;
}

static void start_and_reload(void)
{
        struct http_options insecure = one_try, secure = one_try;
        struct http_engine *e = NULL;

        insecure.verify_tls = false;
        assert_int_equal(http_engine_new(&insecure, &e), 0);        /* start */
        assert_int_equal(http_engine_reconfigure(e, &insecure), 0); /* a reload */
        assert_int_equal(http_engine_reconfigure(e, &secure), 0);   /* fixed */
        http_engine_free(e);
        assert_int_equal(http_engine_new(&secure, &e), 0);
        http_engine_free(e);
}

static void test_unverified_tls_warns_at_start_and_every_reload(void **state)
{
        static const char warning[] =
                "<4>TLS certificates are not verified (verify_tls: false): anyone on the network "
                "path can pose as Connect and read the API key\n";
        char *text = capture_stderr(start_and_reload);
        char *want = NULL;

        (void) state;
        assert_true(asprintf(&want, "%s%s", warning, warning) > 0);
        assert_string_equal(text, want);
        free(want);
        free(text);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_classify),
                cmocka_unit_test(test_backoff),
                cmocka_unit_test(test_retry_after),
                cmocka_unit_test(test_library_text_escaping),
                cmocka_unit_test(test_curl_error_text_as_written),
                cmocka_unit_test(test_unverified_tls_warns_at_start_and_every_reload),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

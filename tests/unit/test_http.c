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
#include <pthread.h>
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

/* ---------------------------------------------------------------------------------- */
/* A one-thread HTTP/1.1 server on loopback: answers each request with the next canned
 * response (then closes the connection) and keeps what it was sent. */

#define MINI_MAX 8

struct mini {
        int listen_fd, port;
        pthread_t thread;
        const char *responses[MINI_MAX]; /* whole responses, sent as written */
        size_t n_responses;
        char *requests[MINI_MAX]; /* the head of each request */
        char *bodies[MINI_MAX];
        size_t body_len[MINI_MAX];
        size_t n_requests;
};

static void *mini_run(void *userdata)
{
        struct mini *m = userdata;

        for (size_t i = 0; i < m->n_responses; i++) {
                char head[8192];
                size_t len = 0;
                char *end = NULL, *cl;
                int fd = accept4(m->listen_fd, NULL, NULL, SOCK_CLOEXEC);

                if (fd < 0)
                        break;
                while (!end && len < sizeof(head) - 1) {
                        ssize_t n = read(fd, head + len, sizeof(head) - 1 - len);
                        if (n <= 0)
                                break;
                        len += (size_t) n;
                        head[len] = '\0';
                        end = strstr(head, "\r\n\r\n");
                }
                if (!end) {
                        close(fd);
                        break;
                }
                size_t head_len = (size_t) (end - head) + 4, body_len = 0;
                m->requests[i] = strndup(head, head_len);
                cl = strcasestr(m->requests[i], "\r\ncontent-length:");
                if (cl)
                        body_len = strtoul(cl + 17, NULL, 10);
                m->bodies[i] = calloc(1, body_len + 1);
                size_t have = len - head_len;
                memcpy(m->bodies[i], head + head_len, have < body_len ? have : body_len);
                while (have < body_len) {
                        ssize_t n = read(fd, m->bodies[i] + have, body_len - have);
                        if (n <= 0)
                                break;
                        have += (size_t) n;
                }
                m->body_len[i] = have;
                m->n_requests = i + 1;
                (void) !write(fd, m->responses[i], strlen(m->responses[i]));
                close(fd);
        }
        return NULL;
}

static void mini_start(struct mini *m)
{
        struct sockaddr_in sa = {.sin_family = AF_INET};
        socklen_t len = sizeof(sa);

        m->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(m->listen_fd >= 0);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        assert_int_equal(bind(m->listen_fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        assert_int_equal(listen(m->listen_fd, 8), 0);
        assert_int_equal(getsockname(m->listen_fd, (struct sockaddr *) &sa, &len), 0);
        m->port = ntohs(sa.sin_port);
        assert_int_equal(pthread_create(&m->thread, NULL, mini_run, m), 0);
}

static void mini_stop(struct mini *m)
{
        (void) shutdown(m->listen_fd, SHUT_RDWR);
        assert_int_equal(pthread_join(m->thread, NULL), 0);
        close(m->listen_fd);
}

static void mini_free(struct mini *m)
{
        for (size_t i = 0; i < m->n_requests; i++) {
                free(m->requests[i]);
                free(m->bodies[i]);
        }
}

struct full_outcome {
        bool done;
        long status;
        enum http_outcome outcome;
        unsigned attempts;
        char etag[128];
        char body[256];
};

static void on_full_done(void *userdata, const struct http_result *res)
{
        struct full_outcome *o = userdata;

        o->done = true;
        o->status = res->status;
        o->outcome = res->outcome;
        o->attempts = res->attempts;
        memcpy(o->etag, res->etag, sizeof(o->etag));
        (void) snprintf(o->body, sizeof(o->body), "%.*s", (int) res->body_len,
                        res->body ? res->body : "");
}

static const struct http_options s3_opts = {
        .aws_sigv4 = "aws:amz:us-east-1:s3",
        .aws_userpwd = "AKIDEXAMPLE:wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        .verify_tls = true,
        .timeout_seconds = 5,
        .max_concurrent = 2,
        .max_attempts = 4,
        .backoff_base_usec = 1000,
        .backoff_cap_usec = 2000,
};

static void run_until(struct http_engine *e, const bool *done)
{
        for (int i = 0; i < 200 && !*done; i++)
                assert_true(http_engine_run(e, 50 * USEC_PER_MSEC, NULL, 0) >= 0);
        assert_true(*done);
}

/* PUT from an fd region, with its Content-Length, extra headers and a SigV4 signature; a
 * 503 SlowDown with Retry-After is retried and the second try reads the region again. */
static void test_put_fd_region_signed_and_retried(void **state)
{
        struct mini m = {
                .responses =
                        {
                                "HTTP/1.1 503 Slow Down\r\nRetry-After: 0\r\nContent-Length: 61\r\n"
                                "Connection: close\r\n\r\n<Error><Code>SlowDown</Code><Message>x"
                                "</Message></Error>\n",
                                "HTTP/1.1 200 OK\r\nETag: \"abc123\"\r\nContent-Length: 0\r\n"
                                "Connection: close\r\n\r\n",
                        },
                .n_responses = 2,
        };
        static const char *const headers[] = {"x-amz-content-sha256: UNSIGNED-PAYLOAD",
                                              "If-None-Match: *", NULL};
        struct http_engine *e = NULL;
        struct full_outcome o = {0};
        char url[128], path[] = "/tmp/cja-test-http-put-XXXXXX";
        int fd = mkstemp(path);

        (void) state;
        assert_true(fd >= 0);
        assert_int_equal(unlink(path), 0);
        assert_int_equal(write(fd, "0123456789abcdefghij", 20), 20);
        mini_start(&m);
        (void) snprintf(url, sizeof(url), "http://127.0.0.1:%d/bucket/a/b.log.gz", m.port);
        assert_int_equal(http_engine_new(&s3_opts, &e), 0);
        assert_int_equal(http_submit(e,
                                     &(struct http_call){.url = url,
                                                         .method = HTTP_METHOD_PUT,
                                                         .headers = headers,
                                                         .body_is_fd = true,
                                                         .body_fd = fd,
                                                         .body_offset = 5,
                                                         .body_len = 10},
                                     on_full_done, &o),
                         0);
        run_until(e, &o.done);
        http_engine_free(e);
        mini_stop(&m);
        close(fd);
        assert_int_equal(o.outcome, HTTP_OK);
        assert_int_equal(o.status, 200);
        assert_int_equal(o.attempts, 2);
        assert_string_equal(o.etag, "\"abc123\"");
        assert_int_equal(m.n_requests, 2);
        for (size_t i = 0; i < 2; i++) {
                const char *r = m.requests[i];
                assert_true(strncmp(r, "PUT /bucket/a/b.log.gz HTTP/1.1\r\n", 33) == 0);
                assert_non_null(strcasestr(r, "\r\nContent-Length: 10\r\n"));
                assert_null(strcasestr(r, "Transfer-Encoding"));
                assert_non_null(strcasestr(r, "\r\nIf-None-Match: *\r\n"));
                assert_non_null(strcasestr(r, "\r\nx-amz-content-sha256: UNSIGNED-PAYLOAD\r\n"));
                assert_non_null(strstr(r, "\r\nAuthorization: AWS4-HMAC-SHA256 "
                                          "Credential=AKIDEXAMPLE/"));
                assert_non_null(strstr(r, "/us-east-1/s3/aws4_request"));
                /* The secret never goes on the wire. */
                assert_null(strstr(r, "wJalrXUtnFEMI"));
                assert_int_equal(m.body_len[i], 10);
                assert_memory_equal(m.bodies[i], "56789abcde", 10);
        }
        mini_free(&m);
}

/* HEAD (no body expected), POST from memory, DELETE; a 412 is the caller's to read. */
static void test_head_post_delete(void **state)
{
        struct mini m = {
                .responses =
                        {
                                "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nETag: \"e\"\r\n"
                                "Connection: close\r\n\r\n",
                                "HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: close\r\n"
                                "\r\n<Result/>",
                                "HTTP/1.1 412 Precondition Failed\r\nContent-Length: 0\r\n"
                                "Connection: close\r\n\r\n",
                                "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n",
                        },
                .n_responses = 4,
        };
        static const char *const sha[] = {"x-amz-content-sha256: UNSIGNED-PAYLOAD", NULL};
        struct http_engine *e = NULL;
        struct full_outcome o[4] = {{0}};
        char url[128];

        (void) state;
        mini_start(&m);
        (void) snprintf(url, sizeof(url), "http://127.0.0.1:%d/bucket/k?uploads=", m.port);
        assert_int_equal(http_engine_new(&s3_opts, &e), 0);
        assert_int_equal(
                http_submit(
                        e,
                        &(struct http_call){.url = url, .method = HTTP_METHOD_HEAD, .headers = sha},
                        on_full_done, &o[0]),
                0);
        run_until(e, &o[0].done);
        assert_int_equal(http_submit(e,
                                     &(struct http_call){.url = url,
                                                         .method = HTTP_METHOD_POST,
                                                         .headers = sha,
                                                         .body = "<x/>",
                                                         .body_len = 4},
                                     on_full_done, &o[1]),
                         0);
        run_until(e, &o[1].done);
        assert_int_equal(http_submit(e,
                                     &(struct http_call){.url = url,
                                                         .method = HTTP_METHOD_PUT,
                                                         .headers = sha,
                                                         .body = "",
                                                         .body_len = 0},
                                     on_full_done, &o[2]),
                         0);
        run_until(e, &o[2].done);
        assert_int_equal(http_submit(e,
                                     &(struct http_call){.url = url,
                                                         .method = HTTP_METHOD_DELETE,
                                                         .headers = sha},
                                     on_full_done, &o[3]),
                         0);
        run_until(e, &o[3].done);
        http_engine_free(e);
        mini_stop(&m);
        assert_int_equal(o[0].outcome, HTTP_OK);
        assert_string_equal(o[0].etag, "\"e\"");
        assert_true(strncmp(m.requests[0], "HEAD /bucket/k?uploads= HTTP/1.1\r\n", 34) == 0);
        assert_int_equal(o[1].outcome, HTTP_OK);
        assert_string_equal(o[1].body, "<Result/>");
        assert_true(strncmp(m.requests[1], "POST /bucket/k?uploads= HTTP/1.1\r\n", 34) == 0);
        assert_non_null(strcasestr(m.requests[1], "\r\nContent-Length: 4\r\n"));
        assert_memory_equal(m.bodies[1], "<x/>", 4);
        assert_int_equal(o[2].outcome, HTTP_FAILED);
        assert_int_equal(o[2].status, 412);
        assert_int_equal(o[2].attempts, 1);
        assert_non_null(strcasestr(m.requests[2], "\r\nContent-Length: 0\r\n"));
        assert_int_equal(o[3].status, 204);
        assert_true(strncmp(m.requests[3], "DELETE /bucket/k?uploads= HTTP/1.1\r\n", 36) == 0);
        mini_free(&m);
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
                cmocka_unit_test(test_put_fd_region_signed_and_retried),
                cmocka_unit_test(test_head_post_delete),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

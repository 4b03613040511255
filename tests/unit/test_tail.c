/* The /tail framing decoder (every framing, every chunking) and the seam rule. */
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
#include "tail.h"

#define MAX_SEEN 16

struct collected {
        char *data[MAX_SEEN];
        size_t n;
};

static int collect(void *userdata, struct log_entry *e)
{
        struct collected *c = userdata;

        assert_true(c->n < MAX_SEEN);
        c->data[c->n] = strndup(e->data, e->data_len);
        assert_non_null(c->data[c->n]);
        c->n++;
        connect_log_entry_done(e);
        return 0;
}

static void collected_done(struct collected *c)
{
        for (size_t i = 0; i < c->n; i++)
                free(c->data[i]);
        c->n = 0;
}

#define E(d)                                                                                       \
        "{\"source\":\"stdout\",\"timestamp\":\"2024-12-06T19:09:29.948016766Z\",\"data\":\"" d    \
        "\"}"

static const char *const want3[] = {"one", "tw{o}", "three \\\"q\\\""};
static const char *const want3_decoded[] = {"one", "tw{o}", "three \"q\""};

/* Decodes s fed in pieces cut at cut1 and cut2 (any may equal 0 or len). */
static void decode_split(const char *s, size_t cut1, size_t cut2, const char *const *want,
                         size_t n_want)
{
        struct collected c = {0};
        _cleanup_(tail_decoder_freep) struct tail_decoder *d = NULL;
        size_t len = strlen(s);

        assert_int_equal(tail_decoder_new(collect, &c, &d), 0);
        assert_int_equal(tail_decoder_feed(d, s, cut1), 0);
        assert_int_equal(tail_decoder_feed(d, s + cut1, cut2 - cut1), 0);
        assert_int_equal(tail_decoder_feed(d, s + cut2, len - cut2), 0);
        assert_int_equal(tail_decoder_finish(d), 0);
        if (c.n != n_want)
                fail_msg("%zu entries instead of %zu at cuts %zu/%zu of %s", c.n, n_want, cut1,
                         cut2, s);
        for (size_t i = 0; i < n_want; i++)
                assert_string_equal(c.data[i], want[i]);
        collected_done(&c);
}

/* Every way of cutting s into three pieces, and one byte at a time. */
static void decode_every_chunking(const char *s, const char *const *want, size_t n_want)
{
        size_t len = strlen(s);
        struct collected c = {0};
        _cleanup_(tail_decoder_freep) struct tail_decoder *d = NULL;

        for (size_t a = 0; a <= len; a++)
                for (size_t b = a; b <= len; b += 1 + (len - b) / 7)
                        decode_split(s, a, b, want, n_want);
        assert_int_equal(tail_decoder_new(collect, &c, &d), 0);
        for (size_t i = 0; i < len; i++)
                assert_int_equal(tail_decoder_feed(d, s + i, 1), 0);
        assert_int_equal(tail_decoder_finish(d), 0);
        assert_int_equal(c.n, n_want);
        for (size_t i = 0; i < n_want; i++)
                assert_string_equal(c.data[i], want[i]);
        collected_done(&c);
}

static void test_ndjson(void **state)
{
        (void) state;
        decode_every_chunking(E("one") "\n" E("tw{o}") "\n" E("three \\\"q\\\"") "\n",
                              want3_decoded, 3);
        /* CRLF, blank lines, no final newline. */
        decode_every_chunking(E("one") "\r\n\r\n" E("tw{o}") "\r\n" E("three \\\"q\\\""),
                              want3_decoded, 3);
        (void) want3;
}

static void test_sse(void **state)
{
        (void) state;
        decode_every_chunking(
                ": connected\n\n"
                "event: log\ndata: " E(
                        "one") "\n\n"
                               "id: 2\ndata:" E("tw{o}") "\n\n"
                                                         "retry: 1000\n"
                                                         "data: " E("three \\\"q\\\"") "\n\n"
                                                                                       ": ping\n\n",
                want3_decoded, 3);
        /* CRLF lines, a value split over two data lines, and the last event without its
         * blank line (the stream closed). */
        decode_every_chunking("data: {\"source\":\"stdout\",\r\ndata: \"data\":\"one\"}\r\n\r\n"
                              "data: " E("tw{o}") "\r\n\r\n"
                                                  "data: " E("three \\\"q\\\""),
                              want3_decoded, 3);
}

static void test_concatenated(void **state)
{
        (void) state;
        decode_every_chunking(E("one") E("tw{o}") E("three \\\"q\\\""), want3_decoded, 3);
        decode_every_chunking(E("one") " " E("tw{o}") "\n  " E("three \\\"q\\\""), want3_decoded,
                              3);
}

static void test_wrappers(void **state)
{
        (void) state;
        /* A LogEntries object and an array of entries are taken too. */
        decode_every_chunking(
                "{\"entries\":[" E("one") "," E("tw{o}") "]}\n[" E("three \\\"q\\\"") "]",
                want3_decoded, 3);
        decode_every_chunking("data: {\"entries\":[]}\n\ndata:\n\n", NULL, 0);
}

static void test_refused(void **state)
{
        static const char *const bad_feed[] = {
                "hello world\n",
                "404 page not found\n",
                "<html>\n",
                E("one") "x",
                "{\"source\":\"stdout\"}\n",
                "[1]",
                "\"str\"\n",
                "{\"a\":1,}",
                "data: {nope\n\n",
                "data: " E("a") " trailing\n\n",
        };
        static const char *const bad_finish[] = {
                "{\"source\":\"stdout\",\"data\":",
                "data: {\"source\":\"stdout\",",
        };
        struct collected c = {0};

        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(bad_feed); i++) {
                _cleanup_(tail_decoder_freep) struct tail_decoder *d = NULL;
                assert_int_equal(tail_decoder_new(collect, &c, &d), 0);
                int r = tail_decoder_feed(d, bad_feed[i], strlen(bad_feed[i]));
                if (r == 0)
                        r = tail_decoder_finish(d);
                if (r != -EBADMSG)
                        fail_msg("accepted: %s", bad_feed[i]);
                collected_done(&c);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad_finish); i++) {
                _cleanup_(tail_decoder_freep) struct tail_decoder *d = NULL;
                assert_int_equal(tail_decoder_new(collect, &c, &d), 0);
                assert_int_equal(tail_decoder_feed(d, bad_finish[i], strlen(bad_finish[i])), 0);
                assert_int_equal(tail_decoder_finish(d), -EBADMSG);
                collected_done(&c);
        }
}

static void test_reset(void **state)
{
        struct collected c = {0};
        _cleanup_(tail_decoder_freep) struct tail_decoder *d = NULL;
        const char *half = "{\"source\":\"stdout\",\"da";
        const char *whole = E("one") "\n";

        (void) state;
        assert_int_equal(tail_decoder_new(collect, &c, &d), 0);
        assert_int_equal(tail_decoder_feed(d, half, strlen(half)), 0);
        tail_decoder_reset(d); /* the request was retried */
        assert_int_equal(tail_decoder_feed(d, whole, strlen(whole)), 0);
        assert_int_equal(tail_decoder_finish(d), 0);
        assert_int_equal(c.n, 1);
        assert_string_equal(c.data[0], "one");
        collected_done(&c);
}

/* ---- the seam rule ---- */

static struct log_entry entry(int64_t sec, uint32_t nsec, bool has_ts, const char *data)
{
        return (struct log_entry){.source = "stdout",
                                  .data = data,
                                  .data_len = strlen(data),
                                  .has_timestamp = has_ts,
                                  .ts_sec = sec,
                                  .ts_nsec = nsec};
}

#define T(s, d) entry(s, 0, true, d)

/* Runs one pass and returns a string of the lines admitted, "a,b,". */
static const char *pass(struct tail_seen *s, const struct log_entry *e, size_t n, char *buf,
                        size_t size)
{
        buf[0] = '\0';
        tail_seen_begin_pass(s);
        for (size_t i = 0; i < n; i++) {
                int r = tail_seen_admit(s, &e[i]);
                assert_true(r == 0 || r == 1);
                if (r == 1) {
                        strncat(buf, e[i].data, size - strlen(buf) - 1);
                        strncat(buf, ",", size - strlen(buf) - 1);
                }
        }
        return buf;
}

static void test_seam_replay(void **state)
{
        const struct log_entry log[] = {T(1, "a"), T(2, "b"), T(3, "c")};
        const struct log_entry tail[] = {T(1, "a"), T(2, "b"), T(3, "c"), T(4, "d"), T(5, "e")};
        _cleanup_(tail_seen_freep) struct tail_seen *s = NULL;
        char buf[128];

        (void) state;
        assert_int_equal(tail_seen_new(100, &s), 0);
        assert_string_equal(pass(s, log, 3, buf, sizeof(buf)), "a,b,c,");
        tail_seen_set_complete(s);
        /* The stream replays everything: only what is new is shown. */
        assert_string_equal(pass(s, tail, 5, buf, sizeof(buf)), "d,e,");
        /* A reconnect replays again: nothing twice. */
        assert_string_equal(pass(s, tail, 5, buf, sizeof(buf)), "");
}

static void test_seam_history(void **state)
{
        /* /log gave the last 2 of a longer log: the stream's older lines are history. */
        const struct log_entry log[] = {T(2, "b"), T(3, "c")};
        const struct log_entry tail[] = {T(1, "a"), T(2, "b"), T(3, "c"), T(4, "d")};
        _cleanup_(tail_seen_freep) struct tail_seen *s = NULL;
        char buf[128];

        (void) state;
        assert_int_equal(tail_seen_new(100, &s), 0);
        assert_string_equal(pass(s, log, 2, buf, sizeof(buf)), "b,c,");
        assert_string_equal(pass(s, tail, 4, buf, sizeof(buf)), "d,");
}

static void test_seam_from_now_and_late(void **state)
{
        const struct log_entry log[] = {T(1, "a"), T(3, "c")};
        /* A stream that starts after the snapshot; the first line is an stderr line stamped
         * before the snapshot's last one but not in it: it is shown, not dropped. */
        const struct log_entry tail[] = {T(2, "late"), T(4, "d")};
        _cleanup_(tail_seen_freep) struct tail_seen *s = NULL;
        char buf[128];

        (void) state;
        assert_int_equal(tail_seen_new(100, &s), 0);
        assert_string_equal(pass(s, log, 2, buf, sizeof(buf)), "a,c,");
        assert_string_equal(pass(s, tail, 2, buf, sizeof(buf)), "late,d,");
}

static void test_seam_repeated_lines(void **state)
{
        /* The job printed the same line three times in one nanosecond (or without time):
         * twice before the snapshot, once after. */
        const struct log_entry log[] = {T(1, "a"), entry(0, 0, false, ""), entry(0, 0, false, "")};
        const struct log_entry tail[] = {T(1, "a"), entry(0, 0, false, ""), entry(0, 0, false, ""),
                                         entry(0, 0, false, "")};
        _cleanup_(tail_seen_freep) struct tail_seen *s = NULL;
        char buf[128];

        (void) state;
        assert_int_equal(tail_seen_new(100, &s), 0);
        assert_string_equal(pass(s, log, 3, buf, sizeof(buf)), "a,,,");
        assert_string_equal(pass(s, tail, 4, buf, sizeof(buf)), ",");
}

static void test_seam_polls_and_eviction(void **state)
{
        /* Polling /log for the last 3 lines while the window remembers 4. */
        const struct log_entry p1[] = {T(1, "a"), T(2, "b"), T(3, "c")};
        const struct log_entry p2[] = {T(3, "c"), T(4, "d"), T(5, "e")};
        const struct log_entry p3[] = {T(5, "e"), T(6, "f"), T(7, "g")};
        const struct log_entry p4[] = {T(5, "e"), T(6, "f"), T(7, "g")};
        _cleanup_(tail_seen_freep) struct tail_seen *s = NULL;
        char buf[128];

        (void) state;
        assert_int_equal(tail_seen_new(4, &s), 0);
        assert_string_equal(pass(s, p1, 3, buf, sizeof(buf)), "a,b,c,");
        assert_string_equal(pass(s, p2, 3, buf, sizeof(buf)), "d,e,");
        assert_string_equal(pass(s, p3, 3, buf, sizeof(buf)), "f,g,");
        assert_string_equal(pass(s, p4, 3, buf, sizeof(buf)), "");
        /* Everything older than the window (d..g) is history now. */
        const struct log_entry old[] = {T(1, "a"), T(2, "b"), T(8, "h")};
        assert_string_equal(pass(s, old, 3, buf, sizeof(buf)), "h,");
}

static void test_seam_complete_window(void **state)
{
        /* The window holds the whole log: an older line not in it is a late one. */
        const struct log_entry log[] = {T(2, "b")};
        const struct log_entry tail[] = {T(1, "early"), T(2, "b")};
        _cleanup_(tail_seen_freep) struct tail_seen *s = NULL;
        char buf[128];

        (void) state;
        assert_int_equal(tail_seen_new(10, &s), 0);
        assert_string_equal(pass(s, log, 1, buf, sizeof(buf)), "b,");
        tail_seen_set_complete(s);
        assert_string_equal(pass(s, tail, 2, buf, sizeof(buf)), "early,b,");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_ndjson),
                cmocka_unit_test(test_sse),
                cmocka_unit_test(test_concatenated),
                cmocka_unit_test(test_wrappers),
                cmocka_unit_test(test_refused),
                cmocka_unit_test(test_reset),
                cmocka_unit_test(test_seam_replay),
                cmocka_unit_test(test_seam_history),
                cmocka_unit_test(test_seam_from_now_and_late),
                cmocka_unit_test(test_seam_repeated_lines),
                cmocka_unit_test(test_seam_polls_and_eviction),
                cmocka_unit_test(test_seam_complete_window),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

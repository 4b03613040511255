#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "grep.h"

static const struct grep_job_info info = {
        .content_guid = "0b8f3a5e-2f4d-4c47-9b0e-5c1f6e2a9d11",
        .content_name = "sales",
        .key = "k1",
        .start_time = "2026-09-28T14:03:11Z",
        .start_display = "T",
        .path = "/a/k1.log.gz",
};

/* Runs pattern over data (whole, or fed in pieces of `piece` bytes); returns the output. */
static char *run(const char *pattern, const struct grep_opts *o, const char *data, size_t len,
                 size_t piece, uint64_t *ret_count)
{
        struct matcher *m = NULL;
        struct matcher_scratch *s = NULL;
        struct grep_job *g = NULL;
        struct obuf out = {0};
        char err[256];
        char *ret;

        assert_int_equal(matcher_new(pattern, o, &m, err, sizeof(err)), 0);
        assert_int_equal(matcher_scratch_new(m, &s), 0);
        assert_int_equal(grep_job_new(m, s, o, &info, &out, &g), 0);
        if (piece == 0)
                assert_int_equal(grep_job_whole(g, data, len), 0);
        else
                for (size_t off = 0; off < len; off += piece)
                        assert_int_equal(
                                grep_job_feed(g, data + off, len - off < piece ? len - off : piece),
                                0);
        assert_int_equal(grep_job_finish(g), 0);
        if (ret_count)
                *ret_count = grep_job_count(g);
        obuf_put(&out, "", 1);
        ret = strdup(out.data);
        obuf_done(&out);
        grep_job_free(g);
        matcher_scratch_free(s);
        matcher_free(m);
        return ret;
}

static void check(const char *pattern, const struct grep_opts *o, const char *data,
                  const char *want)
{
        char *got = run(pattern, o, data, strlen(data), 0, NULL);
        assert_string_equal(got, want);
        free(got);
        /* Streaming, one byte at a time, says the same. */
        got = run(pattern, o, data, strlen(data), 1, NULL);
        assert_string_equal(got, want);
        free(got);
}

static void test_basic_and_line_numbers(void **state)
{
        struct grep_opts o = {0};

        (void) state;
        check("err", &o, "ok\nerr one\nfine\nerr two",
              "T sales k1:2:err one\nT sales k1:4:err two\n");
        check("^fine$", &o, "ok\nerr one\nfine\nerr two\n", "T sales k1:3:fine\n");
        check("nothing", &o, "a\nb\n", "");
        /* Several patterns (several -e), literal and not: any of them. */
        check("fine\ntw[o]", &o, "ok\nfine\nerr two\n",
              "T sales k1:2:fine\nT sales k1:3:err two\n");
        /* A match may not span lines: \s would match the newline. */
        check("one\\s+fine", &o, "err one\nfine\n", "");
        check("o[^x]*f", &o, "err one\nfine\nof\n", "T sales k1:3:of\n");
}

static void test_options(void **state)
{
        struct grep_opts o = {0};

        (void) state;
        o.ignore_case = true;
        check("ERROR", &o, "error\nok\n", "T sales k1:1:error\n");
        o = (struct grep_opts){.word = true};
        check("err", &o, "errors\nerr\nan err.\n_err\n",
              "T sales k1:2:err\nT sales k1:3:an err.\n");
        o = (struct grep_opts){.fixed = true};
        check("a.b(", &o, "axb(\na.b(\n", "T sales k1:2:a.b(\n");
        o = (struct grep_opts){.fixed = true, .word = true};
        check("a.b", &o, "xa.b\na.b y\n", "T sales k1:2:a.b y\n");
        o = (struct grep_opts){.invert = true};
        check("x", &o, "x\na\nx\nb", "T sales k1:2:a\nT sales k1:4:b\n");
        o = (struct grep_opts){.max_count = 2};
        check("x", &o, "x1\nx2\nx3\n", "T sales k1:1:x1\nT sales k1:2:x2\n");
        o = (struct grep_opts){.count = true};
        check("x", &o, "x1\nx2\ny\nx3 x\n", "T sales k1:3\n");
        check("zz", &o, "x1\n", "");
        o = (struct grep_opts){.list = true};
        check("x", &o, "a\nx1\nx2\n", "/a/k1.log.gz\n");
        o = (struct grep_opts){.color = true};
        check("b+", &o, "abbcb\n",
              "T \033[35msales k1\033[m\033[36m:\033[m\033[32m1\033[m\033[36m:\033[ma\033[01;31mbb"
              "\033[mc\033[01;31mb\033[m\n");
        /* GNU's \< and \> */
        o = (struct grep_opts){0};
        check("\\<in\\>", &o, "inside\nin it\n", "T sales k1:2:in it\n");
}

static void test_context(void **state)
{
        struct grep_opts o = {.before = 1, .after = 1};
        const char *data = "1\n2\nm3\n4\n5\n6\nm7\nm8\n9\n";

        (void) state;
        check("m", &o, data,
              "T sales k1-2-2\nT sales k1:3:m3\nT sales k1-4-4\n--\n"
              "T sales k1-6-6\nT sales k1:7:m7\nT sales k1:8:m8\nT sales k1-9-9\n");
        /* Context at the log's start and end stays inside it. */
        o = (struct grep_opts){.before = 3, .after = 3};
        check("m", &o, "m1\n2\n", "T sales k1:1:m1\nT sales k1-2-2\n");
        check("m", &o, "1\nm2", "T sales k1-1-1\nT sales k1:2:m2\n");
        /* -m stops matching, but the trailing context is still printed (GNU grep). */
        o = (struct grep_opts){.after = 2, .max_count = 1};
        check("m", &o, "m1\nm2\n3\n4\n", "T sales k1:1:m1\nT sales k1-2-m2\nT sales k1-3-3\n");
}

static void test_json(void **state)
{
        struct grep_opts o = {.json = true};

        (void) state;
        check("a", &o, "x\n\"a\"\t\\\n",
              "{\"type\":\"match\",\"content_guid\":\"0b8f3a5e-2f4d-4c47-9b0e-5c1f6e2a9d11\","
              "\"content_name\":\"sales\",\"key\":\"k1\",\"start_time\":\"2026-09-28T14:03:11Z\","
              "\"line_number\":2,\"line\":\"\\\"a\\\"\\t\\\\\"}\n");
        /* Invalid UTF-8: U+FFFD in line, the exact bytes in line_base64. */
        check("a", &o, "a\xff\n",
              "{\"type\":\"match\",\"content_guid\":\"0b8f3a5e-2f4d-4c47-9b0e-5c1f6e2a9d11\","
              "\"content_name\":\"sales\",\"key\":\"k1\",\"start_time\":\"2026-09-28T14:03:11Z\","
              "\"line_number\":1,\"line\":\"a\\ufffd\",\"line_base64\":\"Yf8=\"}\n");
        check("\xc3\xa9", &o, "caf\xc3\xa9\n",
              "{\"type\":\"match\",\"content_guid\":\"0b8f3a5e-2f4d-4c47-9b0e-5c1f6e2a9d11\","
              "\"content_name\":\"sales\",\"key\":\"k1\",\"start_time\":\"2026-09-28T14:03:11Z\","
              "\"line_number\":1,\"line\":\"caf\xc3\xa9\"}\n");
}

static void test_required_literal(void **state)
{
        static const struct {
                const char *pattern;
                const char *literal;
        } cases[] = {
                {"Error in library", "Error in library"},
                {"object '[a-z_]+' not found", "' not found"},
                {"abc?def", "def"},
                {"ab|cd", NULL},
                {"(?i)error", "error"}, /* ERE: a group holding "i", then "error" */
                {"x(abcdef)?y", NULL},
                {"\\d+ requests served", " requests served"},
                {"a\\.bcd", "a.bcd"},
        };
        struct grep_opts o = {0};

        (void) state;
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                struct matcher *m;
                char err[256];
                const char *lit;

                assert_int_equal(matcher_new(cases[i].pattern, &o, &m, err, sizeof(err)), 0);
                lit = matcher_required_literal(m);
                if (cases[i].literal)
                        assert_string_equal(lit, cases[i].literal);
                else
                        assert_null(lit);
                matcher_free(m);
        }
}

static void test_bad_pattern(void **state)
{
        struct grep_opts o = {0};
        struct matcher *m = NULL;
        char err[256];

        (void) state;
        assert_int_equal(matcher_new("a(b", &o, &m, err, sizeof(err)), -EINVAL);
        assert_string_equal(err, "Unmatched ( or \\(");
        /* A newline separates patterns: each must compile. */
        assert_int_equal(matcher_new("a\nb(", &o, &m, err, sizeof(err)), -EINVAL);
}

/* Megabytes of lines fed in odd pieces give what one whole buffer gives, context included,
 * across every window boundary. */
static void test_streaming_equals_whole(void **state)
{
        size_t cap = 3 * 1024 * 1024, len = 0;
        char *data = malloc(cap);
        struct grep_opts opts[] = {
                {0}, {.before = 2, .after = 3}, {.invert = true, .before = 1}, {.count = true}};
        unsigned n = 0;

        (void) state;
        while (len + 200 < cap) {
                len += (size_t) snprintf(
                        data + len, cap - len, "%u line %s padding %.*s\n", n,
                        n % 997 == 0 ? "HIT" : "ok", (int) (n % 150),
                        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                        "xxxxxxxxxxxxxxxx");
                n++;
        }
        for (size_t k = 0; k < sizeof(opts) / sizeof(opts[0]); k++) {
                const char *pat = opts[k].invert ? "line|HIT" : "HIT";
                uint64_t c1, c2;
                char *whole = run(pat, &opts[k], data, len, 0, &c1);
                char *fed = run(pat, &opts[k], data, len, 65537, &c2);

                assert_int_equal(c1, c2);
                assert_string_equal(whole, fed);
                free(whole);
                free(fed);
        }
        free(data);
}

/* The literal prefilter (SIMD over 16 starts at a time, then memmem for the tail) finds a
 * needle at every offset of haystacks of every length around those 16, and no near miss:
 * one byte changed at each position of the needle. */
static void test_literal_at_every_offset(void **state)
{
        static const char *needles[] = {"Q", "E#z", "Error in mutate", "abcdefghijklmnopq",
                                        "0123456789012345678901234567890123456789"};
        char hay[128], want[160];

        (void) state;
        for (size_t k = 0; k < sizeof(needles) / sizeof(needles[0]); k++) {
                const char *nd = needles[k];
                size_t len = strlen(nd);

                for (int fixed = 0; fixed <= 1; fixed++) {
                        struct grep_opts o = {.fixed = fixed != 0};
                        for (size_t n = len; n < 90; n++)
                                for (size_t at = 0; at + len <= n; at += n < 40 ? 1 : 7) {
                                        memset(hay, '.', n);
                                        memcpy(hay + at, nd, len);
                                        hay[n] = '\0';
                                        (void) snprintf(want, sizeof(want), "T sales k1:1:%s\n",
                                                        hay);
                                        /* Exactly n bytes: ASan sees a read past them. */
                                        char *h = malloc(n);
                                        memcpy(h, hay, n);
                                        char *got = run(nd, &o, h, n, 0, NULL);
                                        assert_string_equal(got, want);
                                        free(got);
                                        for (size_t miss = 0; miss < len; miss++) {
                                                h[at + miss] ^= 0x20;
                                                got = run(nd, &o, h, n, 0, NULL);
                                                assert_string_equal(got, "");
                                                free(got);
                                                h[at + miss] ^= 0x20;
                                        }
                                        free(h);
                                }
                }
        }
}

/* Line numbers past many short lines: newlines are counted 16 bytes at a time in byte-wide
 * counters that are summed every 255 steps; empty lines are the worst case for them. */
static void test_line_numbers_after_many_lines(void **state)
{
        static const size_t counts[] = {0, 15, 16, 17, 255 * 16 - 1, 255 * 16, 255 * 16 + 1, 10000};
        struct grep_opts o = {0};
        char want[64];

        (void) state;
        for (size_t k = 0; k < sizeof(counts) / sizeof(counts[0]); k++) {
                size_t n = counts[k];
                char *data = malloc(n + 16);
                memset(data, '\n', n);
                memcpy(data + n, "a HIT\nb\n", 9);
                (void) snprintf(want, sizeof(want), "T sales k1:%zu:a HIT\n", n + 1);
                char *got = run("HIT", &o, data, n + 9, 0, NULL);
                assert_string_equal(got, want);
                free(got);
                got = run("HIT", &o, data, n + 9, 4093, NULL);
                assert_string_equal(got, want);
                free(got);
                free(data);
        }
}

/* One line longer than the streaming window is searched whole. */
static void test_huge_line(void **state)
{
        size_t len = 5 * 1024 * 1024;
        char *data = malloc(len + 16);
        struct grep_opts o = {.count = true};
        uint64_t c;
        char *out;

        (void) state;
        memset(data, 'a', len);
        memcpy(data + len - 6, "NEEDLE", 6);
        memcpy(data + len, "\nx\n", 3);
        out = run("a{3}NEEDLE$", &o, data, len + 3, 100000, &c);
        assert_int_equal(c, 1);
        free(out);
        free(data);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_basic_and_line_numbers),
                cmocka_unit_test(test_options),
                cmocka_unit_test(test_context),
                cmocka_unit_test(test_json),
                cmocka_unit_test(test_required_literal),
                cmocka_unit_test(test_literal_at_every_offset),
                cmocka_unit_test(test_line_numbers_after_many_lines),
                cmocka_unit_test(test_bad_pattern),
                cmocka_unit_test(test_streaming_equals_whole),
                cmocka_unit_test(test_huge_line),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

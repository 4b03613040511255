/* The query planner (src/jobs/catalog_plan.c): the trigram queries Cox's method makes of ERE
 * trees, and that a line a pattern matches always satisfies its query. */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "catalog.h"
#include "catalog_plan.h"
#include "grep.h"

static void put(char *buf, size_t size, const char *s)
{
        size_t n = strlen(buf);

        (void) snprintf(buf + n, size - n, "%s", s);
}

/* q as text: a trigram is its three bytes, AND "(a b)", OR "(a|b)", ALL "*", NONE "0". */
static void render(const struct catalog_query *q, char *buf, size_t size)
{
        char t[4];

        switch (q->op) {
        case CATALOG_Q_ALL:
                put(buf, size, "*");
                return;
        case CATALOG_Q_NONE:
                put(buf, size, "0");
                return;
        case CATALOG_Q_TRI:
                t[0] = (char) (q->tri >> 16);
                t[1] = (char) (q->tri >> 8);
                t[2] = (char) q->tri;
                t[3] = '\0';
                put(buf, size, t);
                return;
        case CATALOG_Q_AND:
        case CATALOG_Q_OR:
                put(buf, size, "(");
                for (size_t i = 0; i < q->n_sub; i++) {
                        if (i)
                                put(buf, size, q->op == CATALOG_Q_AND ? " " : "|");
                        render(q->sub[i], buf, size);
                }
                put(buf, size, ")");
                return;
        }
}

static char *plan(const char *pattern, const struct grep_opts *o)
{
        struct catalog_query *q = catalog_plan(pattern, o, NULL);
        char *buf = calloc(1, 65536);

        assert_non_null(q);
        assert_non_null(buf);
        render(q, buf, 65536);
        catalog_query_free(q);
        return buf;
}

static void expect(const char *pattern, const struct grep_opts *o, const char *want)
{
        char *got = plan(pattern, o);
        bool same = strcmp(got, want) == 0;

        if (!same)
                print_error("%s: got %s, want %s\n", pattern, got, want);
        free(got);
        if (!getenv("PLAN_ALL"))
                assert_true(same);
}

static void test_queries(void **state)
{
        struct grep_opts o = {0}, oi = {.ignore_case = true}, ov = {.invert = true};

        (void) state;
        /* One pattern is an OR of one. */
        expect("hello", &o, "((hel ell llo))");
        expect("ab", &o, "(*)");
        expect("(foo|bar)baz", &o, "(((bar arb rba baz)|(foo oob oba baz)))");
        expect("(foo|bar)baz[0-9]+", &o,
               "((((bar arb rba baz)|(foo oob oba baz)) "
               "(az0|az1|az2|az3|az4|az5|az6|az7|az8|az9)))");
        expect("abc.*def", &o, "((abc def))");
        expect("x(abc)+y", &o, "((abc xab bcy))");
        expect("abc|de", &o, "(*)");
        expect("a?bcd", &o, "(bcd)");
        expect("^error: [a-z]+ failed$", &o, "((err rro ror or: r:   fa fai ail ile led))");
        expect("(a|b)(c|d)(e|f)", &o, "((ace|acf|ade|adf|bce|bcf|bde|bdf))");
        expect("\\<req-[0-9]{6}\\>", &o, "((req eq- (q-0|q-1|q-2|q-3|q-4|q-5|q-6|q-7|q-8|q-9)))");
        expect("(ab)\\1cd", &o, "(*)");
        expect(".*", &o, "(*)");
        /* -i: no trigram with k or s. */
        expect("kilo|mike", &oi, "(*)");
        expect("(Alpha|Bravo) Golf", &oi,
               "(((alp lph pha ha  a g  go gol olf)|(bra rav avo vo  o g  go gol olf)))");
        /* Several patterns are ORed; -v reads everything. */
        expect("hello\nworld", &o, "((hel ell llo)|(wor orl rld))");
        expect("hello", &ov, "*");
}

/* The trigrams of a line, as the index keys them. */
static bool holds(const struct catalog_query *q, const char *line)
{
        size_t len = strlen(line);

        switch (q->op) {
        case CATALOG_Q_ALL:
                return true;
        case CATALOG_Q_NONE:
                return false;
        case CATALOG_Q_TRI:
                for (size_t i = 0; i + 3 <= len; i++)
                        if (catalog_trigram((const unsigned char *) line + i) == q->tri)
                                return true;
                return false;
        case CATALOG_Q_AND:
                for (size_t i = 0; i < q->n_sub; i++)
                        if (!holds(q->sub[i], line))
                                return false;
                return true;
        case CATALOG_Q_OR:
                for (size_t i = 0; i < q->n_sub; i++)
                        if (holds(q->sub[i], line))
                                return true;
                return false;
        }
        return false;
}

static void test_matching_lines_hold(void **state)
{
        static const char *const cases[][2] = {
                {"(foo|bar)baz[0-9]+", "xx barbaz77 yy"},
                {"a(bc|de)*fgh", "afgh"},
                {"a(bc|de)*fgh", "abcdebcfgh"},
                {"(x|)yz(w|)q", "yzq"},
                {"(ab|cd){2,3}ef", "abcdcdef"},
                {"[A-C]bc[d-f]", "Abcf"},
                {"^(GET|POST) /api/[a-z]+", "POST /api/jobs"},
                {"(alpha|bravo|charlie|delta|echo|foxtrot|golf|hotel)ing", "foxtroting"},
                {"((a|b)(c|d)(e|f)(g|h))ijk", "bdfhijk"},
                {"x+yz", "xxxyz"},
                {"q(ab)?cd", "qcd"},
                {"\\bwor(l|m)d\\b", "a wormd b"},
        };
        struct grep_opts o = {0};

        (void) state;
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                struct catalog_query *q = catalog_plan(cases[i][0], &o, NULL);

                assert_non_null(q);
                if (!holds(q, cases[i][1]))
                        fail_msg("%s rules out \"%s\"", cases[i][0], cases[i][1]);
                catalog_query_free(q);
        }
}

/* Thousands of alternatives, and of patterns, plan quickly into an OR of each one's trigrams. */
static void test_large(void **state)
{
        struct grep_opts o = {0};
        size_t n = 5000, len = 0;
        char *alt = malloc(n * 16), *list = malloc(n * 16);
        struct catalog_query *q;

        (void) state;
        assert_non_null(alt);
        assert_non_null(list);
        for (size_t i = 0; i < n; i++)
                len += (size_t) sprintf(alt + len, "%sword%05zu", i ? "|" : "", i);
        memcpy(list, alt, len + 1);
        for (size_t i = 0; i < len; i++)
                if (list[i] == '|')
                        list[i] = '\n';
        q = catalog_plan(alt, &o, NULL);
        assert_non_null(q);
        assert_true(holds(q, "a word04321 b"));
        assert_false(holds(q, "a word b"));
        catalog_query_free(q);
        q = catalog_plan(list, &o, NULL);
        assert_non_null(q);
        assert_int_equal(q->n_sub, n);
        assert_true(holds(q, "a word04321 b"));
        catalog_query_free(q);
        free(alt);
        free(list);
}

/* -F takes the pattern literally; -i drops trigrams with k or s; UTF-8 brackets of ASCII. */
static void test_options(void **state)
{
        struct grep_opts of = {.fixed = true}, oi = {.ignore_case = true}, ou = {.utf8 = true},
                         ol = {.list_without = true};

        (void) state;
        expect("a.c(d", &of, "((a.c .c( c(d))");
        expect("Hotel|Lima", &oi, "(((hot ote tel)|(lim ima)))");
        expect("desk", &oi, "(*)");
        expect("[ab]cd", &ou, "((acd|bcd))");
        expect("[aé]cde", &ou, "(cde)");
        expect("x", &ol, "*");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_queries),
                cmocka_unit_test(test_matching_lines_hold),
                cmocka_unit_test(test_large),
                cmocka_unit_test(test_options),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}

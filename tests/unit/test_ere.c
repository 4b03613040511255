#include <errno.h>
#include <locale.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ere.h"

/* The PCRE2 text of pat in the C locale, or the refusal's message. */
static char *emit(const char *pat, unsigned flags)
{
        struct ere_emit em = {.utf8 = flags & ERE_UTF8, .icase = flags & ERE_ICASE};
        struct ere_error err;
        struct ere *e = NULL;
        char *out = NULL;
        size_t len = 0, cap = 0;
        int r = ere_parse(pat, strlen(pat), flags, &e, &err);

        if (r == -EINVAL)
                return strdup(err.message);
        assert_int_equal(r, 0);
        if (e->needs_regex && !(flags & ERE_REGEX)) {
                ere_free(e);
                return emit(pat, flags | ERE_REGEX);
        }
        assert_int_equal(ere_emit(&em, e, &out, &len, &cap), 0);
        ere_emit_done(&em);
        ere_free(e);
        return out;
}

static void check(const char *pat, unsigned flags, const char *want)
{
        char *got = emit(pat, flags);

        if (strcmp(got, want) != 0)
                fail_msg("%s: got \"%s\", want \"%s\"", pat, got, want);
        free(got);
}

static void test_leniency(void **state)
{
        (void) state;
        check("a)", 0, "a\\)"); /* a ')' without '(' */
        check(")", 0, "\\)");
        check("*a", 0, "a"); /* repeats nothing */
        check("+a", 0, "a");
        check("?a", 0, "a");
        check("a|*b", 0, "(?:a|b)");
        check("(*a)", 0, "(?:a)");
        check("a**", 0, "a*"); /* stacked, written flat: (a*)* is a* */
        check("(a?){2}+", 0, "a*");
        check("a?{2}{1,3}", 0, "a{0,6}");
        check("(a{2,})+", 0, "a{2,}");
        check("b(a{,0}){2}*", 0, "ba{0}"); /* nothing, however often */
        check("a+*", 0, "a*");
        check("a+?", 0, "(?:a+)?"); /* not lazy */
        check("^*", 0, "");         /* (^)* */
        check("x^*", 0, "x");
        check("^+x", 0, "^x");
        check("{1}", 0, ""); /* an interval repeating nothing */
        check("{1}a", 0, "a");
        check("a{1,2}{2}", 0, "(?:a{1,2}){2}");
        check("x{,2}", 0, "x{0,2}");
        check("a{,}", 0, "a*");
        check("a{1", 0, "a\\{1"); /* not an interval: literal */
        check("a{x}", 0, "a\\{x\\}");
        check("a{1,2", 0, "a\\{1\\,2");
        check("{", 0, "\\{");
        check("\\d", 0, "d");        /* not PCRE's \d */
        check("(?i)a", 0, "(?:i)a"); /* a group holding "i" */
        check("\\Qa", 0, "Qa");
        check("[\\d]", 0, "[\\x{5c}\\x{64}]"); /* a backslash in brackets is itself */
        check("[]a]", 0, "[\\x{5d}\\x{61}]");
        check("[^]a]", 0, "[^\\n\\x{5d}\\x{61}]");
        check("[a-]", 0, "[\\x{61}\\x{2d}]");
        check("[--/]", 0, "[\\x{2d}-\\x{2f}]");
        check("[[.-.]]", 0, "[\\x{2d}]"); /* a collating symbol of one character */
        check("[[=b=]]", 0, "[\\x{62}]"); /* an equivalence class */
        check("[[.a.]-c]", 0, "[\\x{61}-\\x{63}]");
        check("()", 0, "(?:)");
        check("a||b", 0, "(?:a||b)");
        check("(a)\\1", 0, "(a)\\g{1}");
        check("((a)|b)\\2", 0, "((?:(a)|b))\\g{2}");
        check("\\`a\\'", 0, "^a$");
}

static void test_regex_reading(void **state)
{
        (void) state;
        /* where grep matches with regcomp (here a back-reference makes it), a repetition after
         * an anchor is skipped, and an interval's '{' alone */
        check("(a)\\1^*", 0, "(a)\\g{1}^");
        check("(a)\\1|{1}b", 0, "(?:(a)\\g{1}|1\\}b)");
        /* in UTF-8 a word operator makes it: "\\<" then a literal "2}x" */
        {
                char *got = emit("\\<{2}x", ERE_UTF8);
                size_t n = strlen(got);
                assert_true(n > 4 && strcmp(got + n - 4, "2\\}x") == 0);
                assert_true(strncmp(got, "(?<![_", 6) == 0);
                free(got);
        }
}

static void test_refusals(void **state)
{
        static const struct {
                const char *pattern, *message;
        } cases[] = {
                {"(", "Unmatched ( or \\("},
                {"a(", "Unmatched ( or \\("},
                {"(*)", "Unmatched ( or \\("}, /* regcomp: a ')' after a skipped '*' */
                {"(^*)", "Unmatched ( or \\("},
                {"({)", "Unmatched ( or \\("},
                {"[a", "Unmatched [, [^, [:, [., or [="},
                {"[]", "Unmatched [, [^, [:, [., or [="},
                {"[[:alpha:]", "Unmatched [, [^, [:, [., or [="},
                {"[[:alpha]]", "Unmatched [, [^, [:, [., or [="},
                {"[[.]]", "Unmatched [, [^, [:, [., or [="},
                {"[z-a]", "Invalid range end"},
                {"a[1-3-5]c", "Invalid range end"},
                {"[[:alpha:]-z]", "Invalid range end"},
                {"[[:foo:]]", "Invalid character class name"},
                {"[[.ab.]]", "Invalid collation character"},
                {"[[=ab=]]", "Invalid collation character"},
                {"\\1", "Invalid back reference"},
                {"(a)\\2", "Invalid back reference"},
                {"(a\\1)", "Invalid back reference"},
                {"(a)|\\1", "Invalid back reference"},
                {"a\\", "Trailing backslash"},
                {"a{}", "Invalid content of \\{\\}"},
                {"a{2,1}", "Invalid content of \\{\\}"},
                {"a{1,2,3}", "Invalid content of \\{\\}"},
                {"a{32768}", "Regular expression too big"},
                {"[:alpha:]", "character class syntax is [[:space:]], not [:space:]"},
        };

        (void) state;
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
                check(cases[i].pattern, 0, cases[i].message);
        /* -i: regcomp checks ranges on the folded ends */
        check("[Z-b]", ERE_ICASE, "Invalid range end");
}

static void test_utf8(void **state)
{
        struct ere_error err;
        struct ere *e = NULL;

        (void) state;
        check("é", ERE_UTF8, "\\x{e9}");
        check("é*", ERE_UTF8, "\\x{e9}*"); /* one character repeated, not its last byte */
        check("é*", 0, "\\x{c3}\\x{a9}*");
        check("[é]", ERE_UTF8, "[\\x{e9}]");
        check("[a-é]", ERE_UTF8, "Invalid collation character");
        check("[[.é.]]", ERE_UTF8, "Invalid collation character");
        check("[[=é=]]", ERE_UTF8, "Invalid collation character");
        assert_int_equal(ere_parse("\xff", 1, ERE_UTF8, &e, &err), -EINVAL);
        assert_int_equal(ere_parse("\xff", 1, 0, &e, &err), 0);
        ere_free(e);
}

static void test_tree(void **state)
{
        struct ere_error err;
        struct ere *e = NULL;
        const struct ere_node *r;
        char *lit = NULL;
        size_t n = 0;

        (void) state;
        assert_int_equal(ere_parse("ab+(c|d){2,}x$", 14, 0, &e, &err), 0);
        r = e->root;
        assert_int_equal(r->kind, ERE_CONCAT);
        assert_int_equal(r->n_sub, 5);
        assert_int_equal(r->sub[0]->kind, ERE_LITERAL);
        assert_string_equal(r->sub[0]->text, "a");
        assert_int_equal(r->sub[1]->kind, ERE_REPEAT);
        assert_int_equal(r->sub[1]->min, 1);
        assert_int_equal(r->sub[1]->max, ERE_INF);
        assert_int_equal(r->sub[2]->kind, ERE_REPEAT);
        assert_int_equal(r->sub[2]->sub[0]->kind, ERE_GROUP);
        assert_int_equal(r->sub[2]->sub[0]->group, 1);
        assert_int_equal(r->sub[2]->sub[0]->sub[0]->kind, ERE_ALT);
        assert_int_equal(r->sub[3]->kind, ERE_LITERAL);
        assert_int_equal(r->sub[4]->kind, ERE_EOL);
        assert_int_equal(e->n_groups, 1);
        assert_false(e->has_backrefs);
        ere_free(e);

        assert_int_equal(ere_parse("Error in (library)", 18, 0, &e, &err), 0);
        assert_int_equal(ere_required_literal(e, &lit, &n), 0);
        assert_string_equal(lit, "Error in ");
        free(lit);
        ere_free(e);
        assert_int_equal(ere_parse("a|bcd", 5, 0, &e, &err), 0);
        assert_int_equal(ere_required_literal(e, &lit, &n), 0);
        assert_null(lit);
        ere_free(e);
        assert_int_equal(ere_parse("(a.b)*", 6, ERE_FIXED, &e, &err), 0);
        assert_int_equal(e->root->kind, ERE_LITERAL);
        assert_string_equal(e->root->text, "(a.b)*");
        ere_free(e);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_leniency), cmocka_unit_test(test_regex_reading),
                cmocka_unit_test(test_refusals), cmocka_unit_test(test_utf8),
                cmocka_unit_test(test_tree),
        };

        if (!setlocale(LC_CTYPE, "C.UTF-8"))
                (void) setlocale(LC_CTYPE, "C");
        return cmocka_run_group_tests(tests, NULL, NULL);
}

#define PCRE2_CODE_UNIT_WIDTH 8

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>
#include <wctype.h>

#include <pcre2.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "ere.h"
#include "grep.h"
#include "macro.h"
#include "output.h"
#include "util.h"

#define WINDOW     (256 * 1024) /* streaming: bytes searched at a time */
#define LIT_MIN    3            /* a shorter required literal does not pay for a prefilter */
#define DFA_WS     4096         /* ints of pcre2_dfa_match() workspace */
#define DFA_ENDS   128          /* match ends at one place that word_next() tries */
#define ENDS_LIMIT 200000       /* match limit of one longest_at() by its callout */
#define COLOR_MT   "\033[01;31m"
#define COLOR_FN   "\033[35m"
#define COLOR_LN   "\033[32m"
#define COLOR_SE   "\033[36m"
#define COLOR_END  "\033[m"

struct matcher {
        pcre2_code *code; /* NULL when literal_find alone decides */
        bool jit;
        char *literal; /* -F without -i/-w: the whole pattern; else a required literal or NULL */
        size_t literal_len;
        size_t rare1, rare2; /* offsets in literal of its two least common bytes (literal_find) */
        bool literal_only;   /* the literal is the whole pattern: literal_find decides */
        bool color;
        bool utf8;     /* compiled with PCRE2_UTF */
        bool backrefs; /* some \N: no leftmost-longest DFA matching for -o and colour */
        bool word;     /* -w by word_next(), not by look-arounds in the pattern */
        /* for pcre2_dfa_match(), which cannot take PCRE2_MATCH_INVALID_UTF: in UTF-8 mode
         * the pattern compiled without it (for lines that are valid UTF-8), else code */
        pcre2_code *dfa_code;
        /* "(?:pattern)(?C1)" anchored, with PCRE2's optimizations off: its callout sees
         * every place a match from one start can end (ends_longest()), where
         * pcre2_dfa_match() cannot go (back-references, lines that are not UTF-8) */
        pcre2_code *ends_code;
};

struct matcher_scratch {
        pcre2_match_data *md;
        pcre2_match_context *mc;
        pcre2_jit_stack *stack;
        int *dfa_ws;                  /* pcre2_dfa_match()'s workspace (-o, colour) */
        pcre2_match_data *dfa_md;     /* every match at one place */
        pcre2_match_context *ends_mc; /* ends_code's: the callout, a bounded match limit */
        pcre2_match_data *ends_md;
        size_t ends_max; /* the callout's: the longest end seen, or SIZE_MAX for none */
};

/* ---- the pattern -------------------------------------------------------------------- */

/* Appends s to *p (grown as needed, NUL-terminated). */
static int append(char **p, size_t *len, size_t *cap, const char *s, size_t n)
{
        return buf_append(p, len, cap, s, n, 64);
}

/* The patterns (newline-separated) parsed as grep reads them; all again with regcomp's
 * reading when grep would match one with it. Returns 0, -EINVAL (err filled) or -ENOMEM. */
static int parse_all(const char *pat, const struct grep_opts *o, struct ere ***ret, size_t *ret_n,
                     char *err, size_t errsz)
{
        unsigned flags = (o->utf8 ? ERE_UTF8 : 0) | (o->fixed ? ERE_FIXED : 0) |
                         (o->ignore_case ? ERE_ICASE : 0);
        struct ere **v = NULL;
        size_t n = 0;
        bool again = false;
        int r = 0;

        for (int pass = 0; pass < 2 && r >= 0; pass++) {
                for (const char *p = pat; r >= 0;) {
                        const char *nl = strchr(p, '\n');
                        size_t len = nl ? (size_t) (nl - p) : strlen(p);
                        struct ere_error ee;
                        struct ere **w = reallocarray(v, n + 1, sizeof(*v));

                        if (!w) {
                                r = -ENOMEM;
                                break;
                        }
                        v = w;
                        r = ere_parse(p, len, flags, &v[n], &ee);
                        if (r == -EINVAL)
                                (void) snprintf(err, errsz, "%s", ee.message);
                        if (r < 0)
                                break;
                        again |= v[n++]->needs_regex || (o->word && !o->line && o->utf8);
                        if (!nl)
                                break;
                        p = nl + 1;
                }
                if (r < 0 || !again || (flags & ERE_REGEX))
                        break;
                while (n > 0)
                        ere_free(v[--n]);
                flags |= ERE_REGEX;
        }
        if (r < 0) {
                while (n > 0)
                        ere_free(v[--n]);
                free(v);
                return r;
        }
        *ret = v;
        *ret_n = n;
        return 0;
}

/*
 * The PCRE2 source for the parsed patterns, any of which may match, written by ere_emit()
 * (its sets as subroutines when asked); -x and -w wrap them.
 */
static int translate(struct ere *const *v, size_t n, const struct grep_opts *o, bool subroutines,
                     bool word_wrap, char **ret)
{
        struct ere_emit em = {.utf8 = o->utf8, .icase = o->ignore_case, .subroutines = subroutines};
        char *out = NULL;
        size_t len = 0, cap = 0;
        int r = 0;

        if (o->line)
                r = append(&out, &len, &cap, "^(?:", 4);
        else if (word_wrap) {
                r = append(&out, &len, &cap, "(?<!", 4);
                if (r >= 0)
                        r = ere_emit_word_class(&em, &out, &len, &cap);
                if (r >= 0)
                        r = append(&out, &len, &cap, ")(?:", 4);
        }
        for (size_t i = 0; i < n && r >= 0; i++) {
                if (i)
                        r = append(&out, &len, &cap, "|", 1);
                if (r >= 0)
                        r = append(&out, &len, &cap, "(?:", 3);
                if (r >= 0)
                        r = ere_emit(&em, v[i], &out, &len, &cap);
                if (r >= 0)
                        r = append(&out, &len, &cap, ")", 1);
        }
        if (r >= 0 && o->line)
                r = append(&out, &len, &cap, ")$", 2);
        else if (r >= 0 && word_wrap) {
                r = append(&out, &len, &cap, ")(?!", 4);
                if (r >= 0)
                        r = ere_emit_word_class(&em, &out, &len, &cap);
                if (r >= 0)
                        r = append(&out, &len, &cap, ")", 1);
        }
        if (r >= 0)
                r = ere_emit_defines(&em, &out, &len, &cap);
        ere_emit_done(&em);
        if (r < 0) {
                free(out);
                return r;
        }
        *ret = out;
        return 0;
}

/*
 * How common a byte is in log text, roughly (higher: more common). Only the order matters:
 * literal_find() looks for the needle's two rarest bytes at once and checks the rest where
 * both are in place, so a needle of rare bytes sends it to memcmp() least often.
 */
static unsigned byte_rank(unsigned char c)
{
        if (c == ' ')
                return 255;
        if (c && strchr("etaoinsr", c))
                return 200;
        if (c >= 'a' && c <= 'z')
                return 150;
        if (c >= '0' && c <= '9')
                return 140;
        if (c && strchr(".:/-_,=()'\"", c))
                return 130;
        if (c >= 'A' && c <= 'Z')
                return 100;
        return 50;
}

static void pick_rare_bytes(struct matcher *m)
{
        const unsigned char *l = (const unsigned char *) m->literal;

        m->rare1 = m->rare2 = 0;
        for (size_t i = 1; i < m->literal_len; i++)
                if (byte_rank(l[i]) < byte_rank(l[m->rare1]))
                        m->rare1 = i;
        m->rare2 = m->rare1 == 0 && m->literal_len > 1 ? 1 : 0;
        for (size_t i = 0; i < m->literal_len; i++)
                if (i != m->rare1 && byte_rank(l[i]) < byte_rank(l[m->rare2]))
                        m->rare2 = i;
}

/* The first occurrence of the literal in h[0, n), or NULL: memmem, with SSE2 checking 16
 * starting points at a time for the two rare bytes where the CPU has it. */
static const char *literal_find(const struct matcher *m, const char *h, size_t n)
{
        size_t len = m->literal_len, k = 0;

        if (n < len)
                return NULL;
#ifdef __SSE2__
        const __m128i b1 = _mm_set1_epi8(m->literal[m->rare1]);
        const __m128i b2 = _mm_set1_epi8(m->literal[m->rare2]);

        /* Starts k..k+15 read at most h[k + 15 + len - 1], which is inside h. */
        for (; k + 16 <= n - len + 1; k += 16) {
                __m128i x = _mm_loadu_si128((const __m128i *) (const void *) (h + k + m->rare1));
                __m128i y = _mm_loadu_si128((const __m128i *) (const void *) (h + k + m->rare2));
                unsigned mask = (unsigned) _mm_movemask_epi8(
                        _mm_and_si128(_mm_cmpeq_epi8(x, b1), _mm_cmpeq_epi8(y, b2)));

                while (mask) {
                        unsigned bit = (unsigned) __builtin_ctz(mask);
                        if (memcmp(h + k + bit, m->literal, len) == 0)
                                return h + k + bit;
                        mask &= mask - 1;
                }
        }
#endif
        return memmem(h + k, n - k, m->literal, len);
}

int matcher_new(const char *pattern, const struct grep_opts *o, struct matcher **ret, char *err,
                size_t errsz)
{
        struct ere **v = NULL;
        size_t n = 0;
        char *src = NULL, *lit = NULL;
        size_t lit_len = 0;
        struct matcher *m;
        int errcode = 0, r;
        PCRE2_SIZE erroff;
        bool several = strchr(pattern, '\n') != NULL;
        uint32_t flags = PCRE2_MULTILINE;

        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->color = o->color;
        m->utf8 = o->utf8;
        r = parse_all(pattern, o, &v, &n, err, errsz);
        if (r < 0) {
                free(m);
                return r;
        }
        for (size_t i = 0; i < n; i++) {
                m->backrefs |= v[i]->has_backrefs;
                /* grep -w with its regex matcher: its own search for a match between
                 * non-word characters (word_next()); with its DFA, the pattern wrapped. In
                 * UTF-8 the wrapper's [^[:alnum:]_] is beyond the DFA: always regex. */
                m->word |= o->word && !o->line && (v[i]->needs_regex || o->utf8);
        }
        /* The required literal: -i matches other bytes than the pattern's. */
        if (!several && !o->ignore_case)
                r = ere_required_literal(v[0], &lit, &lit_len);
        if (r < 0)
                goto fail;
        if (o->fixed && !o->ignore_case && pattern[0] && !several && lit) {
                /* -F: the literal is the pattern; memmem alone decides without -w/-x */
                m->literal = lit;
                m->literal_len = lit_len;
                m->literal_only = !o->word && !o->line;
                pick_rare_bytes(m);
                if (m->literal_only && !o->color && !o->only)
                        goto done;
        } else if (lit && lit_len >= LIT_MIN && !o->fixed) {
                m->literal = lit;
                m->literal_len = lit_len;
                pick_rare_bytes(m);
        } else {
                free(lit);
        }
        if (o->ignore_case)
                flags |= PCRE2_CASELESS;
        /* PCRE2 anchors a leading ".*" at line starts, which a byte that is not UTF-8 (that
         * '.' does not match) would make wrong */
        if (o->utf8)
                flags |= PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | PCRE2_NO_DOTSTAR_ANCHOR;
        /* Sets are written in place (fastest) unless PCRE2 finds the pattern too large. */
        for (int subroutines = 0; subroutines < 2 && !m->code; subroutines++) {
                r = translate(v, n, o, subroutines, o->word && !m->word, &src);
                if (r < 0)
                        goto fail;
                m->code = pcre2_compile((PCRE2_SPTR) src, PCRE2_ZERO_TERMINATED, flags, &errcode,
                                        &erroff, NULL);
                if (m->code && o->utf8 && (o->only || o->color || m->word))
                        m->dfa_code = pcre2_compile((PCRE2_SPTR) src, PCRE2_ZERO_TERMINATED,
                                                    flags & ~PCRE2_MATCH_INVALID_UTF, &errcode,
                                                    &erroff, NULL);
                else
                        m->dfa_code = m->code;
                if (m->code && (o->only || o->color || m->word)) {
                        char *es = NULL;
                        size_t el = 0, ec = 0;
                        if (append(&es, &el, &ec, "(?:", 3) < 0 ||
                            append(&es, &el, &ec, src, strlen(src)) < 0 ||
                            append(&es, &el, &ec, ")(?C1)", 6) < 0) {
                                free(es);
                                free(src);
                                r = -ENOMEM;
                                goto fail;
                        }
                        m->ends_code = pcre2_compile(
                                (PCRE2_SPTR) es, PCRE2_ZERO_TERMINATED,
                                flags | PCRE2_ANCHORED | PCRE2_NO_AUTO_POSSESS |
                                        PCRE2_NO_START_OPTIMIZE | PCRE2_NO_DOTSTAR_ANCHOR,
                                &errcode, &erroff, NULL);
                        free(es);
                        if (m->ends_code)
                                (void) pcre2_jit_compile(m->ends_code, PCRE2_JIT_COMPLETE);
                }
                free(src);
                src = NULL;
                if (m->code && !m->dfa_code) {
                        r = -ENOMEM;
                        goto fail;
                }
                if (m->code || errcode != PCRE2_ERROR_PATTERN_TOO_LARGE)
                        break;
        }
        if (!m->code) {
                PCRE2_UCHAR msg[256];
                (void) pcre2_get_error_message(errcode, msg, sizeof(msg));
                /* what grep takes but PCRE2 cannot (a pattern too large, nested too deep) */
                (void) snprintf(err, errsz, "%s", (const char *) msg);
                r = -EINVAL;
                goto fail;
        }
        /* valgrind cannot follow JIT code (it reads past the subject with SIMD loads, on
         * purpose): CJA_GREP_NO_JIT=1 makes the interpreter match instead. */
        m->jit = !getenv("CJA_GREP_NO_JIT") && pcre2_jit_compile(m->code, PCRE2_JIT_COMPLETE) == 0;
done:
        for (size_t i = 0; i < n; i++)
                ere_free(v[i]);
        free(v);
        *ret = m;
        return 0;
fail:
        for (size_t i = 0; i < n; i++)
                ere_free(v[i]);
        free(v);
        matcher_free(m);
        return r;
}

void matcher_free(struct matcher *m)
{
        if (!m)
                return;
        if (m->dfa_code != m->code)
                pcre2_code_free(m->dfa_code);
        pcre2_code_free(m->ends_code);
        pcre2_code_free(m->code);
        free(m->literal);
        free(m);
}

const char *matcher_required_literal(const struct matcher *m)
{
        return m->literal;
}

/* ends_code's callout, where a match would end: keep the longest end, then fail, so that
 * PCRE2 backtracks into every other way to match. */
static int ends_callout(pcre2_callout_block *cb, void *data)
{
        struct matcher_scratch *s = data;

        if (s->ends_max == SIZE_MAX || cb->current_position > s->ends_max)
                s->ends_max = cb->current_position;
        return 1;
}

int matcher_scratch_new(const struct matcher *m, struct matcher_scratch **ret)
{
        struct matcher_scratch *s = calloc(1, sizeof(*s));

        if (!s)
                return -ENOMEM;
        if (m->code) {
                s->md = pcre2_match_data_create_from_pattern(m->code, NULL);
                s->mc = pcre2_match_context_create(NULL);
                if (!s->md || !s->mc) {
                        matcher_scratch_free(s);
                        return -ENOMEM;
                }
                if (m->jit) {
                        s->stack = pcre2_jit_stack_create(32 * 1024, 1024 * 1024, NULL);
                        if (!s->stack) {
                                matcher_scratch_free(s);
                                return -ENOMEM;
                        }
                        pcre2_jit_stack_assign(s->mc, NULL, s->stack);
                }
                if (m->ends_code) {
                        s->ends_mc = pcre2_match_context_create(NULL);
                        s->ends_md = pcre2_match_data_create_from_pattern(m->ends_code, NULL);
                        if (!s->ends_mc || !s->ends_md) {
                                matcher_scratch_free(s);
                                return -ENOMEM;
                        }
                        (void) pcre2_set_callout(s->ends_mc, ends_callout, s);
                        (void) pcre2_set_match_limit(s->ends_mc, ENDS_LIMIT);
                        if (s->stack)
                                pcre2_jit_stack_assign(s->ends_mc, NULL, s->stack);
                }
                s->dfa_ws = malloc(DFA_WS * sizeof(int));
                s->dfa_md = pcre2_match_data_create(DFA_ENDS, NULL);
                if (!s->dfa_ws || !s->dfa_md) {
                        matcher_scratch_free(s);
                        return -ENOMEM;
                }
        }
        *ret = s;
        return 0;
}

void matcher_scratch_free(struct matcher_scratch *s)
{
        if (!s)
                return;
        pcre2_match_data_free(s->md);
        pcre2_match_context_free(s->mc);
        pcre2_jit_stack_free(s->stack);
        free(s->dfa_ws);
        pcre2_match_data_free(s->dfa_md);
        pcre2_match_context_free(s->ends_mc);
        pcre2_match_data_free(s->ends_md);
        free(s);
}

/* One PCRE2 match in subject[0, len) from off: 1 with [*ms, *me), 0, or -E2BIG. */
static int pcre_at(const struct matcher *m, struct matcher_scratch *s, const char *subject,
                   size_t len, size_t off, size_t *ms, size_t *me)
{
        PCRE2_SIZE *ov;
        int rc;

        if (m->jit)
                rc = pcre2_jit_match(m->code, (PCRE2_SPTR) subject, len, off, 0, s->md, s->mc);
        else
                rc = pcre2_match(m->code, (PCRE2_SPTR) subject, len, off, 0, s->md, s->mc);
        if (rc == PCRE2_ERROR_NOMATCH)
                return 0;
        if (rc < 0)
                return -E2BIG;
        ov = pcre2_get_ovector_pointer(s->md);
        *ms = ov[0];
        *me = ov[1];
        return 1;
}

/*
 * The longest match anchored at start in subject[0, len), as regexec finds it (flags:
 * PCRE2_NOTEOL for grep -w's shorter tries): pcre2_dfa_match() where it can, else every
 * end that PCRE2's backtracking reaches (ends_code), else PCRE2's own match. 1 with *me,
 * 0 or -E2BIG.
 */
static int longest_at(const struct matcher *m, struct matcher_scratch *s, const char *subject,
                      size_t len, size_t start, uint32_t flags, size_t *me)
{
        size_t ms;
        int rc;

        if (!m->backrefs) {
                rc = pcre2_dfa_match(m->dfa_code, (PCRE2_SPTR) subject, len, start,
                                     PCRE2_ANCHORED | flags, s->md, s->mc, s->dfa_ws, DFA_WS);
                if (rc == PCRE2_ERROR_NOMATCH)
                        return 0;
                if (rc >= 0) {
                        *me = pcre2_get_ovector_pointer(s->md)[1];
                        return 1;
                }
        }
        if (m->ends_code) {
                s->ends_max = SIZE_MAX;
                rc = pcre2_match(m->ends_code, (PCRE2_SPTR) subject, len, start, flags, s->ends_md,
                                 s->ends_mc);
                if (rc == PCRE2_ERROR_NOMATCH) {
                        if (s->ends_max == SIZE_MAX)
                                return 0;
                        *me = s->ends_max;
                        return 1;
                }
                /* else the match limit: PCRE2's own match */
        }
        rc = pcre2_match(m->code, (PCRE2_SPTR) subject, len, start, PCRE2_ANCHORED | flags, s->md,
                         s->mc);
        if (rc == PCRE2_ERROR_NOMATCH)
                return 0;
        if (rc < 0)
                return -E2BIG;
        ms = pcre2_get_ovector_pointer(s->md)[0];
        *me = pcre2_get_ovector_pointer(s->md)[1];
        return ms == start ? 1 : 0;
}

/*
 * The leftmost-longest match in subject[0, len) from off, which grep -o and colour show
 * (POSIX's rule), and grep -w starts from: pcre2_dfa_match() finds every match at the
 * leftmost place a match starts, longest first. Where it cannot (back-references, a line
 * that is not UTF-8, too small a workspace), PCRE2's leftmost start, and there the longest
 * end by longest_at(). 1 with [*ms, *me), 0, or -E2BIG.
 */
static int match_longest(const struct matcher *m, struct matcher_scratch *s, const char *subject,
                         size_t len, size_t off, size_t *ms, size_t *me)
{
        int r;

        if (!m->backrefs) {
                int rc = pcre2_dfa_match(m->dfa_code, (PCRE2_SPTR) subject, len, off, 0, s->md,
                                         s->mc, s->dfa_ws, DFA_WS);
                if (rc == PCRE2_ERROR_NOMATCH)
                        return 0;
                if (rc >= 0) {
                        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(s->md);
                        *ms = ov[0];
                        *me = ov[1];
                        return 1;
                }
        }
        r = pcre_at(m, s, subject, len, off, ms, me);
        if (r > 0 && m->ends_code) {
                size_t e;
                int k = longest_at(m, s, subject, len, *ms, 0, &e);
                if (k < 0)
                        return k;
                if (k > 0 && e > *me)
                        *me = e;
        }
        return r;
}

/* The length of the character at s[0, n) (n > 0): 1 in byte mode or for an invalid byte. */
static size_t char_len(const struct matcher *m, const char *s, size_t n)
{
        const unsigned char *u = (const unsigned char *) s;
        size_t l = 1;

        if (!m->utf8 || u[0] < 0xc0)
                return 1;
        l = u[0] >= 0xf0 ? 4 : u[0] >= 0xe0 ? 3 : 2;
        if (l > n)
                return 1;
        for (size_t i = 1; i < l; i++)
                if ((u[i] & 0xc0) != 0x80)
                        return 1;
        return l;
}

static size_t line_start(const char *buf, size_t pos)
{
        const char *q;

        if (pos == 0)
                return 0;
        q = memrchr(buf, '\n', pos);
        return q ? (size_t) (q - buf) + 1 : 0;
}

static size_t line_end(const char *buf, size_t pos, size_t end)
{
        const char *q = memchr(buf + pos, '\n', end - pos);

        return q ? (size_t) (q - buf) : end;
}

static bool is_word_char(const struct matcher *m, const char *s, size_t n)
{
        const unsigned char *u = (const unsigned char *) s;
        wchar_t wc;
        mbstate_t st = {0};
        size_t k;

        if (!m->utf8 || u[0] < 0x80)
                return u[0] == '_' || isalnum(u[0]);
        k = mbrtowc(&wc, s, n, &st);
        return k != (size_t) -1 && k != (size_t) -2 && (wc == L'_' || iswalnum((wint_t) wc));
}

/* Whether the character before pos in line[0, len) is a word character. */
static bool word_before(const struct matcher *m, const char *line, size_t pos)
{
        size_t p = pos;

        if (pos == 0)
                return false;
        p--;
        while (m->utf8 && p > 0 && pos - p < 4 && ((unsigned char) line[p] & 0xc0) == 0x80)
                p--;
        if (char_len(m, line + p, pos - p) != pos - p)
                p = pos - 1;
        return is_word_char(m, line + p, pos - p);
}

/*
 * grep -w as grep does it with its regex matcher (EGexecute()): from the leftmost-longest
 * match, while a word character is on either side, the longest match from the same start
 * in the line cut one byte (here: one character) before its end, where '$' does not match;
 * when that is empty or none, the leftmost-longest match from the next character on. 1
 * with [*ms, *me) in line[0, len), 0, or -E2BIG.
 */
static int word_next(const struct matcher *m, struct matcher_scratch *s, const char *line,
                     size_t len, size_t off, size_t *ms, size_t *me)
{
        size_t start, end;
        int r = match_longest(m, s, line, len, off, &start, &end);

        while (r > 0) {
                bool shorter = false;

                if (!word_before(m, line, start) &&
                    !(end < len && is_word_char(m, line + end, len - end))) {
                        *ms = start;
                        *me = end;
                        return 1;
                }
                if (end > start) {
                        size_t cut = end - 1, e = 0;

                        while (m->utf8 && cut > start && end - cut < 4 &&
                               ((unsigned char) line[cut] & 0xc0) == 0x80)
                                cut--;
                        if (char_len(m, line + cut, end - cut) != end - cut)
                                cut = end - 1;
                        r = longest_at(m, s, line, cut, start, PCRE2_NOTEOL, &e);
                        if (r < 0)
                                return r;
                        if (r > 0 && e > start) {
                                end = e;
                                shorter = true;
                        }
                }
                if (!shorter) {
                        if (start >= len)
                                return 0;
                        r = match_longest(m, s, line, len,
                                          start + char_len(m, line + start, len - start), &start,
                                          &end);
                }
        }
        return r;
}

/* The next match in line[0, len) from off that grep shows (-o, colour): leftmost-longest,
 * and with -w one between non-word characters. */
static int next_match(const struct matcher *m, struct matcher_scratch *s, const char *line,
                      size_t len, size_t off, size_t *ms, size_t *me)
{
        if (m->word)
                return word_next(m, s, line, len, off, ms, me);
        return match_longest(m, s, line, len, off, ms, me);
}

/* Whether buf[ls, le), one line, holds a match: 1, 0 or -E2BIG. */
static int line_matches(const struct matcher *m, struct matcher_scratch *s, const char *buf,
                        size_t ls, size_t le)
{
        size_t ms, me;

        if (m->word)
                return word_next(m, s, buf + ls, le - ls, 0, &ms, &me);
        return pcre_at(m, s, buf + ls, le - ls, 0, &ms, &me);
}

int matcher_find_line(const struct matcher *m, struct matcher_scratch *s, const char *buf,
                      size_t from, size_t end, size_t *ret_ls, size_t *ret_le)
{
        size_t ms, me, ls = 0, le = 0;
        int r = 0;

        while (from < end) {
                if (m->literal) {
                        const char *p = literal_find(m, buf + from, end - from);
                        if (!p)
                                return 0;
                        ls = line_start(buf, (size_t) (p - buf));
                        if (ls < from)
                                ls = from;
                        le = line_end(buf, (size_t) (p - buf), end);
                        r = m->literal_only ? 1 : line_matches(m, s, buf, ls, le);
                        if (r != 0)
                                goto found;
                        from = le + 1;
                        continue;
                }
                r = pcre_at(m, s, buf + from, end - from, 0, &ms, &me);
                if (r <= 0)
                        return r;
                ms += from;
                me += from;
                /* an empty match after the last line's newline is on no line */
                if (ms == end && end > 0 && buf[end - 1] == '\n')
                        return 0;
                ls = line_start(buf, ms);
                if (ls < from)
                        ls = from;
                le = line_end(buf, ms, end);
                /* A match that ran past the line's end: does the line alone match? */
                r = me <= le && !m->word ? 1 : line_matches(m, s, buf, ls, le);
                if (r != 0)
                        goto found;
                from = le + 1;
        }
        return 0;
found:
        if (r > 0) {
                *ret_ls = ls;
                *ret_le = le;
        }
        return r;
}

/* ---- output --------------------------------------------------------------------------- */

static void obuf_reserve(struct obuf *b, size_t n)
{
        if (b->error)
                return;
        if (b->len + n > b->cap) {
                size_t cap = b->cap ? b->cap : 4096;
                char *p;

                while (cap < b->len + n)
                        cap *= 2;
                p = realloc(b->data, cap);
                if (!p) {
                        b->error = -ENOMEM;
                        return;
                }
                b->data = p;
                b->cap = cap;
        }
}

static void obuf_maybe_flush(struct obuf *b)
{
        if (b->flush && b->limit && b->len > b->limit && !b->error) {
                int r = b->flush(b, b->userdata);
                if (r < 0)
                        b->error = r;
        }
}

void obuf_put(struct obuf *b, const char *s, size_t n)
{
        obuf_reserve(b, n);
        if (b->error)
                return;
        memcpy(b->data + b->len, s, n);
        b->len += n;
}

void obuf_puts(struct obuf *b, const char *s)
{
        obuf_put(b, s, strlen(s));
}

void obuf_printf(struct obuf *b, const char *fmt, ...)
{
        va_list ap;
        char small[256];
        int n;

        va_start(ap, fmt);
        n = vsnprintf(small, sizeof(small), fmt, ap);
        va_end(ap);
        if (n < 0)
                return;
        if ((size_t) n < sizeof(small)) {
                obuf_put(b, small, (size_t) n);
                return;
        }
        obuf_reserve(b, (size_t) n + 1);
        if (b->error)
                return;
        va_start(ap, fmt);
        (void) vsnprintf(b->data + b->len, (size_t) n + 1, fmt, ap);
        va_end(ap);
        b->len += (size_t) n;
}

bool obuf_json_string(struct obuf *b, const char *str, size_t n)
{
        const unsigned char *s = (const unsigned char *) str;
        bool valid = true;
        size_t i = 0, plain = 0;

        obuf_put(b, "\"", 1);
        while (i < n) {
                unsigned char c = s[i];
                size_t l;

                if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
                        i++;
                        continue;
                }
                obuf_put(b, (const char *) s + plain, i - plain);
                if (c < 0x80) {
                        switch (c) {
                        case '"':
                                obuf_puts(b, "\\\"");
                                break;
                        case '\\':
                                obuf_puts(b, "\\\\");
                                break;
                        case '\n':
                                obuf_puts(b, "\\n");
                                break;
                        case '\r':
                                obuf_puts(b, "\\r");
                                break;
                        case '\t':
                                obuf_puts(b, "\\t");
                                break;
                        default:
                                obuf_printf(b, "\\u%04x", c);
                        }
                        i++;
                } else if ((l = utf8_valid_len(s + i, n - i)) > 0) {
                        obuf_put(b, (const char *) s + i, l);
                        i += l;
                } else {
                        obuf_puts(b, "\\ufffd");
                        valid = false;
                        i++;
                }
                plain = i;
        }
        obuf_put(b, (const char *) s + plain, i - plain);
        obuf_put(b, "\"", 1);
        return valid;
}

void obuf_base64(struct obuf *b, const unsigned char *s, size_t n)
{
        static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

        obuf_put(b, "\"", 1);
        for (size_t i = 0; i < n; i += 3) {
                uint32_t v = (uint32_t) s[i] << 16;
                char q[4];

                if (i + 1 < n)
                        v |= (uint32_t) s[i + 1] << 8;
                if (i + 2 < n)
                        v |= s[i + 2];
                q[0] = t[v >> 18 & 63];
                q[1] = t[v >> 12 & 63];
                q[2] = i + 1 < n ? t[v >> 6 & 63] : '=';
                q[3] = i + 2 < n ? t[v & 63] : '=';
                obuf_put(b, q, 4);
        }
        obuf_put(b, "\"", 1);
}

void obuf_done(struct obuf *b)
{
        free(b->data);
        *b = (struct obuf){0};
}

/* ---- one job ------------------------------------------------------------------------- */

struct grep_job {
        const struct matcher *m;
        struct matcher_scratch *s;
        const struct grep_opts *o;
        const struct grep_job_info *info;
        struct obuf *out;

        /* The streaming window: [0, win_len); lines before win_start were searched already. */
        char *win;
        size_t win_len, win_cap, win_start;
        uint64_t win_start_line; /* number of the line at win_start */

        /* Within the buffer being searched. */
        size_t cnt_pos;
        uint64_t cnt_line;
        size_t after_pos;
        unsigned after_left;

        uint64_t last_printed; /* 0: none yet */
        uint64_t count;
        bool stop;
        bool failed; /* reading the log failed: -L does not list it */
        bool need_lines;
        bool context;
};

int grep_job_new(const struct matcher *m, struct matcher_scratch *s, const struct grep_opts *o,
                 const struct grep_job_info *info, struct obuf *out, struct grep_job **ret)
{
        struct grep_job *g = calloc(1, sizeof(*g));

        if (!g)
                return -ENOMEM;
        *g = (struct grep_job){
                .m = m, .s = s, .o = o, .info = info, .out = out, .win_start_line = 1};
        g->need_lines = !o->count && !o->list && !o->list_without && !o->quiet;
        g->context = g->need_lines && (o->before > 0 || o->after > 0);
        *ret = g;
        return 0;
}

void grep_job_mark_failed(struct grep_job *g)
{
        g->failed = true;
}

void grep_job_free(struct grep_job *g)
{
        if (!g)
                return;
        free(g->win);
        free(g);
}

bool grep_job_satisfied(const struct grep_job *g)
{
        return g->stop && g->after_left == 0;
}

uint64_t grep_job_count(const struct grep_job *g)
{
        return g->count;
}

bool grep_job_printed(const struct grep_job *g)
{
        return g->last_printed > 0;
}

/* Log lines are short: one memchr() call per line costs more than looking at every byte. */
static uint64_t count_newlines(const char *p, size_t n)
{
        uint64_t c = 0;
        size_t i = 0;

#ifdef __SSE2__
        const __m128i nl = _mm_set1_epi8('\n'), zero = _mm_setzero_si128();

        while (n - i >= 16) {
                /* Each byte lane counts up to 255 newlines (cmpeq gives -1), then is summed. */
                size_t stop = i + (n - i < 255 * 16 ? (n - i) / 16 * 16 : 255 * 16);
                __m128i acc = zero;

                for (; i < stop; i += 16)
                        acc = _mm_sub_epi8(
                                acc,
                                _mm_cmpeq_epi8(
                                        _mm_loadu_si128((const __m128i *) (const void *) (p + i)),
                                        nl));
                acc = _mm_sad_epu8(acc, zero);
                c += (uint64_t) _mm_cvtsi128_si32(acc) +
                     (uint64_t) _mm_cvtsi128_si32(_mm_unpackhi_epi64(acc, acc));
        }
#endif
        for (; i < n; i++)
                c += p[i] == '\n';
        return c;
}

static uint64_t lineno_at(struct grep_job *g, const char *buf, size_t pos)
{
        g->cnt_line += count_newlines(buf + g->cnt_pos, pos - g->cnt_pos);
        g->cnt_pos = pos;
        return g->cnt_line;
}

static void json_head(struct grep_job *g, const char *type)
{
        struct obuf *b = g->out;
        const struct grep_job_info *i = g->info;

        obuf_printf(b, "{\"type\":\"%s\",\"content_guid\":", type);
        obuf_json_string(b, i->content_guid, strlen(i->content_guid));
        obuf_puts(b, ",\"content_name\":");
        if (i->content_name)
                obuf_json_string(b, i->content_name, strlen(i->content_name));
        else
                obuf_puts(b, "null");
        obuf_puts(b, ",\"key\":");
        obuf_json_string(b, i->key, strlen(i->key));
        obuf_puts(b, ",\"start_time\":");
        if (i->start_time)
                obuf_json_string(b, i->start_time, strlen(i->start_time));
        else
                obuf_puts(b, "null");
}

static void obuf_put_cb(void *ctx, const char *s, size_t n)
{
        obuf_put(ctx, s, n);
}

/* Log or server text: escaped to a terminal (output_escape(), as `log` does), else as is. */
static void put_text(struct grep_job *g, const char *s, size_t n)
{
        if (g->o->escape)
                output_escape(s, n, obuf_put_cb, g->out);
        else
                obuf_put(g->out, s, n);
}

static void text_head(struct grep_job *g, char sep)
{
        struct obuf *b = g->out;
        const struct grep_job_info *i = g->info;
        const char *name = i->content_name ? i->content_name : i->content_guid;

        obuf_printf(b, "%s ", i->start_display);
        if (g->o->color)
                obuf_puts(b, COLOR_FN);
        put_text(g, name, strlen(name));
        obuf_puts(b, " ");
        put_text(g, i->key, strlen(i->key));
        if (g->o->color)
                obuf_printf(b, COLOR_END COLOR_SE "%c" COLOR_END, sep);
        else
                obuf_put(b, &sep, 1);
}

/* The prefix of an output line: the job and the line number, unless -h. */
static void line_head(struct grep_job *g, uint64_t n, char sep)
{
        if (g->o->no_prefix)
                return;
        text_head(g, sep);
        if (g->o->color)
                obuf_printf(g->out, COLOR_LN "%llu" COLOR_END COLOR_SE "%c" COLOR_END,
                            (unsigned long long) n, sep);
        else
                obuf_printf(g->out, "%llu%c", (unsigned long long) n, sep);
}

/*
 * The next non-empty match [*ms, *me) at or after *off, and *off moved past it: 1, or 0 when
 * there is none. An empty match shows nothing (no colour, no -o line): it is stepped over by
 * one character.
 */
static int next_shown_match(struct grep_job *g, const char *line, size_t len, size_t *off,
                            size_t *ms, size_t *me)
{
        while (*off <= len) {
                if (next_match(g->m, g->s, line, len, *off, ms, me) <= 0)
                        return 0;
                if (*me > *ms) {
                        *off = *me;
                        return 1;
                }
                if (*ms >= len)
                        return 0;
                *off = *ms + char_len(g->m, line + *ms, len - *ms);
        }
        return 0;
}

/* The line with its matches in color (leftmost-longest, as grep). */
static void put_colored(struct grep_job *g, const char *line, size_t len)
{
        size_t off = 0, done = 0, ms, me;

        while (next_shown_match(g, line, len, &off, &ms, &me)) {
                put_text(g, line + done, ms - done);
                obuf_puts(g->out, COLOR_MT);
                put_text(g, line + ms, me - ms);
                obuf_puts(g->out, COLOR_END);
                done = me;
        }
        if (done < len)
                put_text(g, line + done, len - done);
}

/* -o: each non-empty match of the line on a line of its own. */
static void emit_only(struct grep_job *g, const char *line, size_t len, uint64_t n)
{
        size_t off = 0, ms, me;

        while (next_shown_match(g, line, len, &off, &ms, &me)) {
                if (g->o->json) {
                        json_head(g, "match");
                        obuf_printf(g->out,
                                    ",\"line_number\":%llu,\"line\":", (unsigned long long) n);
                        if (!obuf_json_string(g->out, line + ms, me - ms)) {
                                obuf_puts(g->out, ",\"line_base64\":");
                                obuf_base64(g->out, (const unsigned char *) line + ms, me - ms);
                        }
                        obuf_puts(g->out, "}\n");
                } else {
                        line_head(g, n, ':');
                        if (g->o->color)
                                obuf_puts(g->out, COLOR_MT);
                        put_text(g, line + ms, me - ms);
                        if (g->o->color)
                                obuf_puts(g->out, COLOR_END);
                        obuf_put(g->out, "\n", 1);
                }
        }
        g->last_printed = n;
        obuf_maybe_flush(g->out);
}

static void emit_line(struct grep_job *g, const char *line, size_t len, uint64_t n, bool match)
{
        struct obuf *b = g->out;

        if (g->o->only) {
                if (match && !g->o->invert && g->m->code)
                        emit_only(g, line, len, n);
                return;
        }
        /* Groups of context are separated by "--"; JSON readers see the gap in line_number. */
        if (g->context && !g->o->json && g->last_printed > 0 && n > g->last_printed + 1)
                obuf_puts(b, g->o->color ? COLOR_SE "--" COLOR_END "\n" : "--\n");
        if (g->o->json) {
                json_head(g, match ? "match" : "context");
                obuf_printf(b, ",\"line_number\":%llu,\"line\":", (unsigned long long) n);
                if (!obuf_json_string(b, line, len)) {
                        obuf_puts(b, ",\"line_base64\":");
                        obuf_base64(b, (const unsigned char *) line, len);
                }
                obuf_puts(b, "}\n");
        } else {
                line_head(g, n, match ? ':' : '-');
                if (g->o->color && match && !g->o->invert && g->m->code)
                        put_colored(g, line, len);
                else
                        put_text(g, line, len);
                obuf_put(b, "\n", 1);
        }
        g->last_printed = n;
        obuf_maybe_flush(b);
}

/* Emits pending after-context lines that start before limit. */
static void flush_after(struct grep_job *g, const char *buf, size_t limit, size_t end)
{
        while (g->after_left > 0 && g->after_pos < limit) {
                size_t le = line_end(buf, g->after_pos, end);
                uint64_t n = lineno_at(g, buf, g->after_pos);

                if (n > g->last_printed)
                        emit_line(g, buf + g->after_pos, le - g->after_pos, n, false);
                g->after_left--;
                g->after_pos = le < end ? le + 1 : end;
        }
}

/* A selected line [ls, le) of buf (which holds lines from 0). */
static void select_line(struct grep_job *g, const char *buf, size_t ls, size_t le, size_t end)
{
        uint64_t n;

        g->count++;
        if (g->o->list || g->o->list_without || g->o->quiet ||
            (g->o->max_count && g->count >= g->o->max_count))
                g->stop = true;
        if (!g->need_lines)
                return;
        flush_after(g, buf, ls, end);
        n = lineno_at(g, buf, ls);
        if (g->o->before > 0) {
                size_t p = ls;
                unsigned k = 0;

                while (k < g->o->before && p > 0 && n - k - 1 > g->last_printed) {
                        p = line_start(buf, p - 1);
                        k++;
                }
                for (; k > 0; k--) {
                        size_t e = line_end(buf, p, end);
                        emit_line(g, buf + p, e - p, n - k, false);
                        p = e + 1;
                }
        }
        emit_line(g, buf + ls, le - ls, n, true);
        g->after_left = g->o->after;
        g->after_pos = le < end ? le + 1 : end;
}

/*
 * Searches the complete lines buf[start, end): end is just after a '\n', or the end of the
 * log (final). Lines in [0, start) were searched before and serve as context only.
 */
static int search_lines(struct grep_job *g, const char *buf, size_t start, size_t end)
{
        size_t p = start;
        int r;

        g->cnt_pos = start;
        g->cnt_line = g->win_start_line;
        g->after_pos = start;
        while (p < end && !g->stop) {
                size_t ls = end, le = end;

                r = matcher_find_line(g->m, g->s, buf, p, end, &ls, &le);
                if (r < 0)
                        return r;
                if (g->o->invert) {
                        size_t stop_at = r > 0 ? ls : end;
                        while (p < stop_at && !g->stop) {
                                size_t e = line_end(buf, p, end);
                                select_line(g, buf, p, e, end);
                                p = e + 1;
                        }
                        if (r == 0 || g->stop)
                                break;
                        p = le + 1;
                        continue;
                }
                if (r == 0)
                        break;
                select_line(g, buf, ls, le, end);
                p = le + 1;
        }
        if (g->need_lines) {
                flush_after(g, buf, end, end);
                g->win_start_line = lineno_at(g, buf, end);
        }
        return g->out->error;
}

int grep_job_whole(struct grep_job *g, const char *data, size_t len)
{
        return search_lines(g, data, 0, len);
}

int grep_job_feed(struct grep_job *g, const char *data, size_t len)
{
        while (len > 0) {
                size_t take, keep, end;
                const char *nl;
                int r;

                if (grep_job_satisfied(g))
                        return 0;
                if (g->win_cap - g->win_len < WINDOW / 2 || !g->win) {
                        size_t cap = g->win_cap ? g->win_cap : WINDOW;
                        char *w;

                        while (cap - g->win_len < WINDOW / 2)
                                cap *= 2;
                        if (cap > GREP_MAX_LINE + WINDOW)
                                return -E2BIG;
                        w = realloc(g->win, cap);
                        if (!w)
                                return -ENOMEM;
                        g->win = w;
                        g->win_cap = cap;
                }
                take = g->win_cap - g->win_len;
                if (take > len)
                        take = len;
                /* Only the new bytes can hold a newline: what the window held past its last
                 * line is a line under way (scanning it again made a long line quadratic). */
                size_t fresh = g->win_len > g->win_start ? g->win_len : g->win_start;
                memcpy(g->win + g->win_len, data, take);
                data += take;
                len -= take;
                g->win_len += take;

                nl = memrchr(g->win + fresh, '\n', g->win_len - fresh);
                if (!nl)
                        continue; /* a long line: the window grows */
                end = (size_t) (nl - g->win) + 1;
                r = search_lines(g, g->win, g->win_start, end);
                if (r < 0)
                        return r;
                /* Keep the partial line, and the lines -B may still want. */
                keep = end;
                for (unsigned k = 0; k < g->o->before && keep > 0; k++)
                        keep = line_start(g->win, keep - 1);
                memmove(g->win, g->win + keep, g->win_len - keep);
                g->win_len -= keep;
                g->win_start = end - keep;
                if (g->win_cap > WINDOW * 2 && g->win_len < WINDOW / 2) {
                        char *w = realloc(g->win, WINDOW);
                        if (w) {
                                g->win = w;
                                g->win_cap = WINDOW;
                        }
                }
        }
        return 0;
}

int grep_job_jump(struct grep_job *g, uint64_t line)
{
        int r = 0;

        /* A line left open would be a caller's mistake: it is searched as it is. */
        if (g->win && g->win_len > g->win_start && !grep_job_satisfied(g))
                r = search_lines(g, g->win, g->win_start, g->win_len);
        g->win_len = g->win_start = 0;
        g->win_start_line = line;
        g->after_left = 0;
        return r < 0 ? r : g->out->error;
}

int grep_job_finish(struct grep_job *g)
{
        int r = 0;

        if (g->win && g->win_len > g->win_start && !grep_job_satisfied(g))
                r = search_lines(g, g->win, g->win_start, g->win_len);
        if (r < 0)
                return r;
        if (g->o->quiet)
                return g->out->error;
        if (g->o->count && g->count > 0) {
                if (g->o->json) {
                        json_head(g, "count");
                        obuf_printf(g->out, ",\"count\":%llu}\n", (unsigned long long) g->count);
                } else {
                        if (!g->o->no_prefix)
                                text_head(g, ':');
                        obuf_printf(g->out, "%llu\n", (unsigned long long) g->count);
                }
        } else if ((g->o->list && g->count > 0) ||
                   (g->o->list_without && g->count == 0 && !g->failed)) {
                if (g->o->json) {
                        json_head(g, "file");
                        obuf_puts(g->out, ",\"path\":");
                        obuf_json_string(g->out, g->info->path, strlen(g->info->path));
                        obuf_puts(g->out, "}\n");
                } else {
                        if (g->o->color)
                                obuf_puts(g->out, COLOR_FN);
                        put_text(g, g->info->path, strlen(g->info->path));
                        obuf_puts(g->out, g->o->color ? COLOR_END "\n" : "\n");
                }
        }
        return g->out->error;
}

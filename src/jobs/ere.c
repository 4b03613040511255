#include <ctype.h>
#include <errno.h>
#include <langinfo.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <wctype.h>

#include "ere.h"
#include "util.h"

/* glibc's regerror() texts, which grep prints. */
#define E_EBRACK   "Unmatched [, [^, [:, [., or [="
#define E_EPAREN   "Unmatched ( or \\("
#define E_ERANGE   "Invalid range end"
#define E_ECTYPE   "Invalid character class name"
#define E_ECOLLATE "Invalid collation character"
#define E_ESUBREG  "Invalid back reference"
#define E_EESCAPE  "Trailing backslash"
#define E_BADBR    "Invalid content of \\{\\}"
#define E_ESIZE    "Regular expression too big"
#define E_COLON    "character class syntax is [[:space:]], not [:space:]" /* dfa.c's */
#define E_UTF8     "the pattern is not valid UTF-8 (the locale's character set)"

#define BRACKET_NAME_MAX 32 /* glibc's BRACKET_NAME_BUF_SIZE */

static const char *const class_names[ERE_CLASS_COUNT] = {
        [ERE_CLASS_ALPHA] = "alpha", [ERE_CLASS_UPPER] = "upper",   [ERE_CLASS_LOWER] = "lower",
        [ERE_CLASS_DIGIT] = "digit", [ERE_CLASS_XDIGIT] = "xdigit", [ERE_CLASS_SPACE] = "space",
        [ERE_CLASS_PRINT] = "print", [ERE_CLASS_PUNCT] = "punct",   [ERE_CLASS_GRAPH] = "graph",
        [ERE_CLASS_CNTRL] = "cntrl", [ERE_CLASS_BLANK] = "blank",   [ERE_CLASS_ALNUM] = "alnum",
};

bool ere_locale_is_utf8(void)
{
        const char *cs = nl_langinfo(CODESET);

        return cs && (strcasecmp(cs, "UTF-8") == 0 || strcasecmp(cs, "UTF8") == 0);
}

/* ---- the tree ------------------------------------------------------------------------ */

static struct ere_node *node_new(enum ere_kind kind)
{
        struct ere_node *n = calloc(1, sizeof(*n));

        if (n)
                n->kind = kind;
        return n;
}

static void node_free(struct ere_node *n)
{
        if (!n)
                return;
        for (size_t i = 0; i < n->n_sub; i++)
                node_free(n->sub[i]);
        free(n->sub);
        free(n->text);
        if (n->set) {
                free(n->set->ranges);
                free(n->set);
        }
        free(n);
}

void ere_free(struct ere *e)
{
        if (!e)
                return;
        node_free(e->root);
        free(e);
}

static int node_add(struct ere_node *parent, struct ere_node *kid)
{
        struct ere_node **s = reallocarray(parent->sub, parent->n_sub + 1, sizeof(*s));

        if (!s)
                return -ENOMEM;
        s[parent->n_sub++] = kid;
        parent->sub = s;
        return 0;
}

static int set_add(struct ere_set *s, uint32_t lo, uint32_t hi)
{
        struct ere_range *r = reallocarray(s->ranges, s->n_ranges + 1, sizeof(*r));

        if (!r)
                return -ENOMEM;
        r[s->n_ranges++] = (struct ere_range){lo, hi};
        s->ranges = r;
        return 0;
}

/* ---- the parser ---------------------------------------------------------------------- */

struct parser {
        const unsigned char *start, *p, *end;
        bool utf8;
        bool icase;
        bool regex; /* ERE_REGEX */
        struct ere *e;
        uint32_t completed; /* groups closed so far that a \N may name (glibc's rule) */
        const char *error;  /* the first refusal */
        size_t error_at;
        const char *late_error; /* dfa.c's, reported only when regcomp accepts */
        bool nomem;
};

static void fail(struct parser *ps, const char *msg, const unsigned char *at)
{
        if (!ps->error) {
                ps->error = msg;
                ps->error_at = (size_t) (at - ps->start);
        }
}

/* Length of the UTF-8 sequence at p (1..4), and its code point; 0 when it is not valid. */
static size_t utf8_decode(const unsigned char *p, const unsigned char *end, uint32_t *cp)
{
        unsigned char c = p[0];
        size_t len;
        uint32_t v;

        if (c < 0x80) {
                *cp = c;
                return 1;
        }
        if (c >= 0xc2 && c <= 0xdf)
                len = 2, v = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
                len = 3, v = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
                len = 4, v = c & 0x07;
        else
                return 0;
        if ((size_t) (end - p) < len)
                return 0;
        for (size_t i = 1; i < len; i++) {
                if ((p[i] & 0xc0) != 0x80)
                        return 0;
                v = v << 6 | (p[i] & 0x3f);
        }
        if ((len == 3 && (v < 0x800 || (v >= 0xd800 && v <= 0xdfff))) ||
            (len == 4 && (v < 0x10000 || v > 0x10ffff)))
                return 0;
        *cp = v;
        return len;
}

/* The character at ps->p: its length in bytes and value. 0 (error set) when invalid. */
static size_t char_at(struct parser *ps, const unsigned char *p, uint32_t *cp)
{
        size_t n;

        if (!ps->utf8) {
                *cp = *p;
                return 1;
        }
        n = utf8_decode(p, ps->end, cp);
        if (n == 0)
                fail(ps, E_UTF8, p);
        return n;
}

static bool zero_width(const struct ere_node *n);

/* An anchor, or a repetition of one (of one...). */
static bool zero_width_chain(const struct ere_node *n)
{
        while (n->kind == ERE_REPEAT)
                n = n->sub[0];
        return zero_width(n);
}

static struct ere_node *literal_node(struct parser *ps, const unsigned char *p, size_t n)
{
        struct ere_node *l = node_new(ERE_LITERAL);

        if (!l || !(l->text = malloc(n + 1))) {
                free(l);
                ps->nomem = true;
                return NULL;
        }
        memcpy(l->text, p, n);
        l->text[n] = 0;
        l->len = n;
        return l;
}

static bool zero_width(const struct ere_node *n)
{
        switch (n->kind) {
        case ERE_BOL:
        case ERE_EOL:
        case ERE_WORD_START:
        case ERE_WORD_END:
        case ERE_WORD_EDGE:
        case ERE_NOT_EDGE:
                return true;
        default:
                return false;
        }
}

/* One number of an interval, as glibc's fetch_number(): digits up to ',' or '}' (*stop),
 * -1 when there are none, -2 when something else came first or the pattern ended. */
static long fetch_number(struct parser *ps, const unsigned char **q, char *stop)
{
        long num = -1;

        for (;;) {
                unsigned char c;

                if (*q >= ps->end) {
                        *stop = 0;
                        return -2;
                }
                c = **q;
                if (c == '}' || c == ',') {
                        *stop = (char) c;
                        (*q)++;
                        return num;
                }
                if (c == '\\' && *q + 1 < ps->end)
                        (*q)++;
                (*q)++;
                if (c < '0' || c > '9' || num == -2)
                        num = -2;
                else
                        num = num == -1 ? c - '0'
                                        : (num * 10 + (c - '0') > ERE_DUPMAX + 1
                                                   ? ERE_DUPMAX + 1
                                                   : num * 10 + (c - '0'));
        }
}

enum interval { IV_VALID, IV_LITERAL, IV_BADBR, IV_ESIZE };

/* Reads the interval whose '{' is at ps->p, as regcomp does with RE_INVALID_INTERVAL_ORD:
 * valid ({m}, {m,}, {,n}, {m,n}, {,}: *after past its '}'), a literal '{', or an error. */
static enum interval read_interval(struct parser *ps, int *min, int *max,
                                   const unsigned char **after)
{
        const unsigned char *q = ps->p + 1;
        char stop;
        long lo, hi;

        lo = fetch_number(ps, &q, &stop);
        if (lo == -1) {
                if (stop != ',')
                        return IV_BADBR; /* "{}" */
                lo = 0;
        }
        if (lo != -2)
                hi = stop == '}' ? lo : stop == ',' ? fetch_number(ps, &q, &stop) : -2;
        else
                hi = -2;
        if (lo == -2 || hi == -2)
                return IV_LITERAL;
        if ((hi != -1 && lo > hi) || stop != '}')
                return IV_BADBR;
        if ((hi == -1 ? lo : hi) > ERE_DUPMAX)
                return IV_ESIZE;
        *min = (int) lo;
        *max = hi == -1 ? ERE_INF : (int) hi;
        *after = q;
        return IV_VALID;
}

static int class_by_name(const char *name, size_t n)
{
        for (int i = 0; i < ERE_CLASS_COUNT; i++)
                if (strlen(class_names[i]) == n && memcmp(class_names[i], name, n) == 0)
                        return i;
        return -1;
}

/* One element of a bracket expression, as glibc's parse_bracket_element(). */
struct belem {
        enum { B_CHAR, B_COLL, B_EQUIV, B_CLASS } type;
        uint32_t ch;               /* B_CHAR; B_COLL/B_EQUIV when name is one character */
        const unsigned char *name; /* B_COLL, B_EQUIV, B_CLASS */
        size_t name_len;
        bool ascii; /* the character is one byte in the pattern */
};

/* Reads "[:name:]" ("[." "[=") whose '[' is at *q. Returns false (error set) when it does
 * not end. */
static bool read_bracket_symbol(struct parser *ps, const unsigned char **q, struct belem *el)
{
        unsigned char delim = (*q)[1];
        const unsigned char *s = *q + 2, *p = s;

        for (size_t i = 0;; i++, p++) {
                if (i >= BRACKET_NAME_MAX || p + 1 >= ps->end) {
                        fail(ps, E_EBRACK, *q);
                        return false;
                }
                if (*p == delim && p[1] == ']')
                        break;
        }
        el->type = delim == ':' ? B_CLASS : delim == '.' ? B_COLL : B_EQUIV;
        el->name = s;
        el->name_len = (size_t) (p - s);
        *q = p + 2;
        if (el->type != B_CLASS && el->name_len == 1) {
                el->ch = s[0];
                el->ascii = true;
        }
        return true;
}

/* A bracket element's character for a range end or a member: B_COLL/B_EQUIV of one byte
 * only (glibc: Invalid collation character otherwise). */
static bool elem_char(struct parser *ps, const struct belem *el, const unsigned char *at)
{
        if ((el->type == B_COLL || el->type == B_EQUIV) && el->name_len != 1) {
                fail(ps, E_ECOLLATE, at);
                return false;
        }
        return true;
}

static bool read_bracket_element(struct parser *ps, const unsigned char **q, struct belem *el,
                                 bool accept_hyphen)
{
        const unsigned char *p = *q;
        size_t n;

        *el = (struct belem){0};
        if (p[0] == '[' && p + 1 < ps->end && (p[1] == ':' || p[1] == '.' || p[1] == '='))
                return read_bracket_symbol(ps, q, el);
        if (p[0] == '-' && !accept_hyphen && !(p + 1 < ps->end && p[1] == ']')) {
                fail(ps, E_ERANGE, p);
                return false;
        }
        n = char_at(ps, p, &el->ch);
        if (n == 0)
                return false;
        el->type = B_CHAR;
        el->ascii = n == 1;
        *q = p + n;
        return true;
}

/* How regcomp -i folds a range's ends and the characters it tests against them: to upper
 * case ("[0-c]" is "[0-C]" folded, so it holds no '[', and "[_-a]" is an invalid range). */
static uint32_t regex_fold(const struct parser *ps, uint32_t c)
{
        if (ps->utf8)
                return (uint32_t) towupper((wint_t) c);
        return (uint32_t) toupper((int) c);
}

/* regcomp -i's range [lo, hi] (ASCII ends, folded): the characters whose folded form is in
 * it, which is not the range written ("[0-c]" holds no 'Z' in C, no '_' in UTF-8). */
static int add_folded_range(struct parser *ps, struct ere_set *s, uint32_t lo, uint32_t hi)
{
        uint32_t top = ps->utf8 ? 0x2000 : 0xff; /* past the last with an ASCII fold */

        lo = regex_fold(ps, lo);
        hi = regex_fold(ps, hi);
        for (uint32_t c = 0; c <= top; c++) {
                uint32_t f = regex_fold(ps, c);
                if (f >= lo && f <= hi && set_add(s, c, c) < 0)
                        return -ENOMEM;
        }
        return 0;
}

/* Parses the bracket expression whose '[' is at ps->p. */
static struct ere_node *parse_bracket(struct parser *ps)
{
        const unsigned char *q = ps->p + 1, *first;
        struct ere_node *n = node_new(ERE_SET);
        struct ere_set *s = calloc(1, sizeof(*s));
        bool first_round = true;
        /* dfa.c's "[:alpha:]" check: 1 first is ':', 2 last is ':', 4 another character,
         * 8 a class or symbol */
        unsigned colon = 0;

        if (!n || !s) {
                free(n);
                free(s);
                ps->nomem = true;
                return NULL;
        }
        n->set = s;
        if (q < ps->end && *q == '^') {
                s->negated = true;
                n->regex |= ps->utf8;
                q++;
        }
        first = q;
        if (q < ps->end && *q == ':')
                colon = 1;
        for (;;) {
                struct belem a, b;
                const unsigned char *at = q;
                uint32_t lo, hi;
                bool range = false;

                if (q >= ps->end) {
                        fail(ps, E_EBRACK, ps->p);
                        goto bad;
                }
                if (*q == ']' && q != first)
                        break;
                if (*q == ']') {
                        /* ']' first is a member */
                        a = (struct belem){.type = B_CHAR, .ch = ']', .ascii = true};
                        q++;
                } else if (!read_bracket_element(ps, &q, &a, first_round))
                        goto bad;
                first_round = false;
                if (q >= ps->end) {
                        fail(ps, E_EBRACK, ps->p);
                        goto bad;
                }
                if (a.type != B_CLASS && a.type != B_EQUIV && *q == '-') {
                        if (q + 1 >= ps->end) {
                                fail(ps, E_EBRACK, ps->p);
                                goto bad;
                        }
                        if (q[1] != ']') {
                                range = true;
                                q++;
                        }
                }
                if (range) {
                        const unsigned char *bat = q;

                        if (!read_bracket_element(ps, &q, &b, true))
                                goto bad;
                        if (b.type == B_CLASS || b.type == B_EQUIV) {
                                fail(ps, E_ERANGE, bat);
                                goto bad;
                        }
                        if (!elem_char(ps, &a, at) || !elem_char(ps, &b, bat))
                                goto bad;
                        /* In UTF-8, glibc finds no collation element for a character of
                         * more than one byte as a range end. */
                        if (ps->utf8 && (!a.ascii || !b.ascii)) {
                                fail(ps, E_ECOLLATE, at);
                                goto bad;
                        }
                        /* dfa.c takes ranges only in the C locale, or of two digits */
                        if (a.type != B_CHAR || b.type != B_CHAR ||
                            (ps->utf8 && !(isdigit((int) a.ch) && isdigit((int) b.ch))))
                                n->regex = true;
                        lo = a.ch;
                        hi = b.ch;
                        /* regcomp -i reads the pattern folded, "[Z-a]" included */
                        if (ps->icase && lo < 0x80 && hi < 0x80) {
                                lo = regex_fold(ps, lo);
                                hi = regex_fold(ps, hi);
                        }
                        if (lo > hi) {
                                fail(ps, E_ERANGE, at);
                                goto bad;
                        }
                        if (!ps->regex) {
                                lo = a.ch; /* grep's DFA takes the range as written */
                                hi = b.ch;
                        }
                        if (ps->regex && ps->icase) {
                                if (add_folded_range(ps, s, lo, hi) < 0)
                                        goto nomem;
                        } else if (set_add(s, lo, hi) < 0)
                                goto nomem;
                        colon = (colon & ~2u) | 4 | 8;
                } else if (a.type == B_CLASS) {
                        int c = class_by_name((const char *) a.name, a.name_len);
                        if (c < 0) {
                                fail(ps, E_ECTYPE, at);
                                goto bad;
                        }
                        s->classes |= 1u << c;
                        if (c != ERE_CLASS_DIGIT && c != ERE_CLASS_XDIGIT)
                                n->regex |= ps->utf8;
                        colon = (colon & ~2u) | 8;
                } else {
                        if (!elem_char(ps, &a, at))
                                goto bad;
                        if (a.type != B_CHAR && ps->utf8 && a.ch >= 0x80) {
                                fail(ps, E_ECOLLATE, at);
                                goto bad;
                        }
                        if (set_add(s, a.ch, a.ch) < 0)
                                goto nomem;
                        /* dfa.c hands a set with a multibyte character to regex (MBCSET), and
                         * with -i one of i or s, which fold to U+0131 and U+017F too */
                        if (a.type != B_CHAR ||
                            (ps->utf8 && (a.ch >= 0x80 || (ps->icase && a.ch && a.ch < 0x80 &&
                                                           strchr("iIsS", (int) a.ch)))))
                                n->regex = true;
                        if (a.type != B_CHAR)
                                colon = (colon & ~2u) | 8;
                        else
                                colon = (colon & ~2u) | (a.ch == ':' ? 2 : 4);
                }
        }
        if (colon == 7 && !ps->late_error)
                ps->late_error = E_COLON;
        ps->p = q + 1;
        return n;
nomem:
        ps->nomem = true;
bad:
        node_free(n);
        return NULL;
}

static struct ere_node *parse_alt(struct parser *ps, int depth);

static struct ere_node *class_set(struct parser *ps, enum ere_class c, bool word, bool negated)
{
        struct ere_node *n = node_new(ERE_SET);

        if (!n || !(n->set = calloc(1, sizeof(*n->set)))) {
                free(n);
                ps->nomem = true;
                return NULL;
        }
        n->set->negated = negated;
        n->set->classes = 1u << c;
        if (word && set_add(n->set, '_', '_') < 0) {
                node_free(n);
                ps->nomem = true;
                return NULL;
        }
        return n;
}

/* Joins runs of one-character literals into longer ones, in place. */
static int merge_literals(struct ere_node *b)
{
        size_t out = 0;

        for (size_t i = 0; i < b->n_sub; i++) {
                struct ere_node *k = b->sub[i];
                if (out > 0 && k->kind == ERE_LITERAL && b->sub[out - 1]->kind == ERE_LITERAL) {
                        struct ere_node *l = b->sub[out - 1];
                        char *t = realloc(l->text, l->len + k->len + 1);
                        if (!t)
                                return -ENOMEM;
                        memcpy(t + l->len, k->text, k->len + 1);
                        l->text = t;
                        l->len += k->len;
                        node_free(k);
                        continue;
                }
                b->sub[out++] = k;
        }
        b->n_sub = out;
        return 0;
}

/* One alternative: items up to '|', the ')' closing depth, or the end. */
static struct ere_node *parse_branch(struct parser *ps, int depth)
{
        struct ere_node *b = node_new(ERE_CONCAT), *item = NULL;
        /* regcomp's view: a repetition here repeats nothing (start of the alternative,
         * after an anchor or after such a repetition) and is skipped */
        bool skip = true;
        /* regcomp takes a ')' right after a skipped repetition as a literal */
        bool after_skipped = false;

        if (!b) {
                ps->nomem = true;
                return NULL;
        }
        while (ps->p < ps->end && !ps->error && !ps->nomem) {
                const unsigned char *at = ps->p;
                unsigned char c = *at;
                int min = 0, max = 0;
                bool dup = false, was_skipped = after_skipped;

                after_skipped = false;
                item = NULL;
                if (c == '|')
                        break;
                if (c == ')' && depth > 0 && !(was_skipped && ps->regex))
                        break;
                if (skip && ps->regex && (c == '*' || c == '+' || c == '?' || c == '{')) {
                        /* regcomp: skipped, an interval's '{' alone */
                        ps->p++;
                        after_skipped = true;
                        continue;
                }
                if (c == '*' || c == '+' || c == '?') {
                        dup = true;
                        min = c == '+';
                        max = c == '?' ? 1 : ERE_INF;
                        ps->p++;
                } else if (c == '{') {
                        const unsigned char *after = NULL;
                        enum interval iv = read_interval(ps, &min, &max, &after);

                        if (iv == IV_VALID) {
                                dup = true;
                                ps->p = after;
                        } else if (iv == IV_ESIZE) {
                                fail(ps, E_ESIZE, at);
                                break;
                        } else if (iv == IV_BADBR && !skip) {
                                fail(ps, E_BADBR, at);
                                break;
                        }
                }
                if (dup) {
                        struct ere_node *last = b->n_sub ? b->sub[b->n_sub - 1] : NULL;

                        if (skip) {
                                /* regcomp skips it; grep's matcher repeats the anchor
                                 * before it (so "^*" is empty), or nothing */
                                after_skipped = c != '{';
                                skip = c != '{';
                                if (!last || !zero_width_chain(last))
                                        continue;
                        } else if (!last) {
                                continue; /* after an interval that repeated nothing */
                        }
                        item = node_new(ERE_REPEAT);
                        if (!item || node_add(item, last) < 0) {
                                free(item);
                                ps->nomem = true;
                                break;
                        }
                        item->min = min;
                        item->max = max;
                        b->sub[b->n_sub - 1] = item;
                        continue;
                }
                /* a '{' that is not an interval: skipped by regcomp there, as above */
                if (c == '{' && skip)
                        after_skipped = true;
                skip = false;
                switch (c) {
                case '(': {
                        unsigned idx = ++ps->e->n_groups;
                        struct ere_node *kid;

                        ps->p++;
                        kid = parse_alt(ps, depth + 1);
                        if (!kid)
                                goto out;
                        if (ps->p >= ps->end || *ps->p != ')') {
                                node_free(kid);
                                fail(ps, E_EPAREN, at);
                                goto out;
                        }
                        ps->p++;
                        item = node_new(ERE_GROUP);
                        if (!item || node_add(item, kid) < 0) {
                                free(item);
                                node_free(kid);
                                ps->nomem = true;
                                goto out;
                        }
                        item->group = idx;
                        if (idx < 32)
                                ps->completed |= 1u << idx;
                        break;
                }
                case '^':
                case '$':
                        item = node_new(c == '^' ? ERE_BOL : ERE_EOL);
                        ps->p++;
                        skip = true;
                        break;
                case '.':
                        item = node_new(ERE_ANY);
                        ps->p++;
                        break;
                case '[':
                        item = parse_bracket(ps);
                        if (!item)
                                goto out;
                        break;
                case '\\': {
                        unsigned char d;
                        size_t n;
                        uint32_t cp;

                        if (at + 1 >= ps->end) {
                                fail(ps, E_EESCAPE, at);
                                goto out;
                        }
                        d = at[1];
                        ps->p += 2;
                        if (d >= '1' && d <= '9') {
                                if (!(ps->completed & (1u << (d - '0')))) {
                                        fail(ps, E_ESUBREG, at);
                                        goto out;
                                }
                                item = node_new(ERE_BACKREF);
                                if (item) {
                                        item->group = d - '0';
                                        item->regex = true;
                                }
                                ps->e->has_backrefs = true;
                                break;
                        }
                        switch (d) {
                        case '<':
                        case '>':
                        case 'b':
                        case 'B':
                        case '`':
                        case '\'':
                                item = node_new(d == '<'   ? ERE_WORD_START
                                                : d == '>' ? ERE_WORD_END
                                                : d == 'b' ? ERE_WORD_EDGE
                                                : d == 'B' ? ERE_NOT_EDGE
                                                : d == '`' ? ERE_BOL
                                                           : ERE_EOL);
                                if (item && d != '`' && d != '\'')
                                        item->regex = ps->utf8;
                                skip = true;
                                break;
                        case 'w':
                        case 'W':
                                item = class_set(ps, ERE_CLASS_ALNUM, true, d == 'W');
                                if (item)
                                        item->regex = ps->utf8;
                                break;
                        case 's':
                        case 'S':
                                item = class_set(ps, ERE_CLASS_SPACE, false, d == 'S');
                                if (item)
                                        item->regex = ps->utf8;
                                break;
                        default:
                                n = char_at(ps, at + 1, &cp);
                                if (n == 0)
                                        goto out;
                                item = literal_node(ps, at + 1, n);
                                ps->p = at + 1 + n;
                        }
                        break;
                }
                default: {
                        uint32_t cp;
                        size_t n = char_at(ps, at, &cp);

                        if (n == 0)
                                goto out;
                        item = literal_node(ps, at, n);
                        ps->p = at + n;
                }
                }
                if (!item) {
                        ps->nomem = true;
                        break;
                }
                if (node_add(b, item) < 0) {
                        node_free(item);
                        ps->nomem = true;
                        break;
                }
        }
out:
        if (ps->error || ps->nomem || merge_literals(b) < 0) {
                if (!ps->error)
                        ps->nomem = true;
                node_free(b);
                return NULL;
        }
        if (b->n_sub == 0) {
                b->kind = ERE_EMPTY;
        } else if (b->n_sub == 1) {
                struct ere_node *only = b->sub[0];
                free(b->sub);
                free(b);
                return only;
        }
        return b;
}

static struct ere_node *parse_alt(struct parser *ps, int depth)
{
        uint32_t initial = ps->completed, all = initial;
        struct ere_node *alt = node_new(ERE_ALT);

        if (!alt) {
                ps->nomem = true;
                return NULL;
        }
        for (;;) {
                struct ere_node *br;

                ps->completed = initial;
                br = parse_branch(ps, depth);
                if (!br || node_add(alt, br) < 0) {
                        if (br)
                                ps->nomem = true;
                        node_free(br);
                        node_free(alt);
                        return NULL;
                }
                all |= ps->completed;
                if (ps->p < ps->end && *ps->p == '|') {
                        ps->p++;
                        continue;
                }
                break;
        }
        ps->completed = all;
        if (alt->n_sub == 1) {
                struct ere_node *only = alt->sub[0];
                free(alt->sub);
                free(alt);
                return only;
        }
        return alt;
}

/* Whether grep's DFA would hand n to regex: a node of a kind it cannot match, unless a
 * repetition {0} (or {0,0}) above it took it out of the DFA's tokens. */
static bool tree_needs_regex(const struct ere_node *n)
{
        if (n->regex)
                return true;
        if (n->kind == ERE_REPEAT && n->max == 0)
                return false;
        for (size_t i = 0; i < n->n_sub; i++)
                if (tree_needs_regex(n->sub[i]))
                        return true;
        return false;
}

int ere_parse(const char *pat, size_t len, unsigned flags, struct ere **ret, struct ere_error *err)
{
        bool utf8 = flags & ERE_UTF8, fixed = flags & ERE_FIXED;
        struct parser ps = {.start = (const unsigned char *) pat,
                            .p = (const unsigned char *) pat,
                            .end = (const unsigned char *) pat + len,
                            .utf8 = utf8,
                            .icase = flags & ERE_ICASE,
                            .regex = flags & ERE_REGEX};
        struct ere *e = calloc(1, sizeof(*e));

        if (!e)
                return -ENOMEM;
        e->utf8 = utf8;
        ps.e = e;
        if (fixed) {
                for (size_t i = 0; utf8 && i < len;) {
                        uint32_t cp;
                        size_t n = utf8_decode(ps.p + i, ps.end, &cp);
                        if (n == 0) {
                                fail(&ps, E_UTF8, ps.p + i);
                                break;
                        }
                        i += n;
                }
                if (!ps.error)
                        e->root = len ? literal_node(&ps, ps.p, len) : node_new(ERE_EMPTY);
        } else {
                /* What grep refuses is regcomp's to say, what a pattern means its DFA's:
                 * where the two read a pattern differently ("(+)" is an unmatched '(' to
                 * regcomp), regcomp's reading decides first whether it is valid. */
                if (!(flags & ERE_REGEX)) {
                        struct ere *re = NULL;
                        int r = ere_parse(pat, len, flags | ERE_REGEX, &re, err);
                        ere_free(re);
                        if (r < 0) {
                                free(e);
                                return r;
                        }
                }
                e->root = parse_alt(&ps, 0);
                /* parse_alt stops at a ')' only inside a group */
                if (e->root && ps.p < ps.end && !ps.error)
                        fail(&ps, E_EPAREN, ps.p);
                if (!ps.error && ps.late_error)
                        fail(&ps, ps.late_error, ps.start);
        }
        if (ps.error) {
                err->message = ps.error;
                err->offset = ps.error_at;
                ere_free(e);
                return -EINVAL;
        }
        if (!e->root || ps.nomem) {
                ere_free(e);
                return -ENOMEM;
        }
        e->needs_regex = tree_needs_regex(e->root);
        *ret = e;
        return 0;
}

/* ---- PCRE2 source -------------------------------------------------------------------- */

struct out {
        char **buf;
        size_t *len, *cap;
        int r;
};

static void put(struct out *o, const char *s, size_t n)
{
        if (o->r >= 0)
                o->r = buf_append(o->buf, o->len, o->cap, s, n, 256);
}

static void put_cp(struct out *o, uint32_t c)
{
        char b[16];

        if (c < 0x80 && isalnum((int) c)) {
                b[0] = (char) c;
                put(o, b, 1);
        } else if (c < 0x80 && c > 0x20 && c < 0x7f) {
                b[0] = '\\';
                b[1] = (char) c;
                put(o, b, 2);
        } else {
                int n = snprintf(b, sizeof(b), "\\x{%x}", (unsigned) c);
                put(o, b, (size_t) n);
        }
}

static bool in_class(enum ere_class c, uint32_t ch, bool utf8)
{
        if (utf8) {
                wint_t w = (wint_t) ch;
                switch (c) {
                case ERE_CLASS_ALPHA:
                        return iswalpha(w);
                case ERE_CLASS_UPPER:
                        return iswupper(w);
                case ERE_CLASS_LOWER:
                        return iswlower(w);
                case ERE_CLASS_DIGIT:
                        return iswdigit(w);
                case ERE_CLASS_XDIGIT:
                        return iswxdigit(w);
                case ERE_CLASS_SPACE:
                        return iswspace(w);
                case ERE_CLASS_PRINT:
                        return iswprint(w);
                case ERE_CLASS_PUNCT:
                        return iswpunct(w);
                case ERE_CLASS_GRAPH:
                        return iswgraph(w);
                case ERE_CLASS_CNTRL:
                        return iswcntrl(w);
                case ERE_CLASS_BLANK:
                        return iswblank(w);
                case ERE_CLASS_ALNUM:
                default:
                        return iswalnum(w);
                }
        }
        switch (c) {
        case ERE_CLASS_ALPHA:
                return isalpha((int) ch);
        case ERE_CLASS_UPPER:
                return isupper((int) ch);
        case ERE_CLASS_LOWER:
                return islower((int) ch);
        case ERE_CLASS_DIGIT:
                return isdigit((int) ch);
        case ERE_CLASS_XDIGIT:
                return isxdigit((int) ch);
        case ERE_CLASS_SPACE:
                return isspace((int) ch);
        case ERE_CLASS_PRINT:
                return isprint((int) ch);
        case ERE_CLASS_PUNCT:
                return ispunct((int) ch);
        case ERE_CLASS_GRAPH:
                return isgraph((int) ch);
        case ERE_CLASS_CNTRL:
                return iscntrl((int) ch);
        case ERE_CLASS_BLANK:
                return isblank((int) ch);
        case ERE_CLASS_ALNUM:
        default:
                return isalnum((int) ch);
        }
}

static void put_range(struct out *o, uint32_t lo, uint32_t hi)
{
        char b[40];
        int n;

        if (lo == hi)
                n = snprintf(b, sizeof(b), "\\x{%x}", (unsigned) lo);
        else
                n = snprintf(b, sizeof(b), "\\x{%x}-\\x{%x}", (unsigned) lo, (unsigned) hi);
        put(o, b, (size_t) n);
}

/* The ranges of class c (ERE_CLASS_COUNT: the word characters), cached in em. */
static int class_body(struct ere_emit *em, int c, const char **ret, size_t *ret_len)
{
        if (!em->cls[c]) {
                size_t len = 0, cap = 0;
                struct out o = {.buf = &em->cls[c], .len = &len, .cap = &cap};
                uint32_t top = em->utf8 ? 0x10ffff : 0xff, lo = 0;
                bool open = false;

                if (c == ERE_CLASS_COUNT)
                        put(&o, "_", 1);
                for (uint32_t ch = 0; ch <= top + 1; ch++) {
                        bool in =
                                ch <= top && !(ch >= 0xd800 && ch <= 0xdfff) &&
                                in_class(c == ERE_CLASS_COUNT ? ERE_CLASS_ALNUM : c, ch, em->utf8);
                        if (in && !open) {
                                lo = ch;
                                open = true;
                        } else if (!in && open) {
                                put_range(&o, lo, ch - 1);
                                open = false;
                        }
                }
                if (o.r >= 0 && !em->cls[c])
                        o.r = buf_append(&em->cls[c], &len, &cap, "", 0, 16);
                if (o.r < 0)
                        return o.r;
                em->cls_len[c] = len;
        }
        *ret = em->cls[c];
        *ret_len = em->cls_len[c];
        return 0;
}

static void put_class(struct ere_emit *em, struct out *o, int c)
{
        const char *s;
        size_t n;

        if (o->r < 0)
                return;
        o->r = class_body(em, c, &s, &n);
        if (o->r >= 0)
                put(o, s, n);
}

#define SUBROUTINE_MIN 200 /* a set this long in PCRE2 source is called, with subroutines */

/* A set's PCRE2 text t[0, n): in place, or as a call of its definition. */
static void put_set_text(struct ere_emit *em, struct out *o, const char *t, size_t n)
{
        char call[32];
        size_t i;
        int k;

        if (!em->subroutines || n < SUBROUTINE_MIN) {
                put(o, t, n);
                return;
        }
        for (i = 0; i < em->n_defs; i++)
                if (strlen(em->defs[i]) == n && memcmp(em->defs[i], t, n) == 0)
                        break;
        if (i == em->n_defs) {
                char **d = reallocarray(em->defs, em->n_defs + 1, sizeof(*d));
                if (!d || !(d[em->n_defs] = strndup(t, n))) {
                        if (d)
                                em->defs = d;
                        o->r = -ENOMEM;
                        return;
                }
                em->defs = d;
                em->n_defs++;
        }
        k = snprintf(call, sizeof(call), "(?&cja%zu)", i);
        put(o, call, (size_t) k);
}

static void put_set(struct ere_emit *em, struct out *o, const struct ere_set *s)
{
        char *t = NULL;
        size_t len = 0, cap = 0;
        struct out so = {.buf = &t, .len = &len, .cap = &cap};

        put(&so, s->negated ? "[^\\n" : "[", s->negated ? 4 : 1);
        for (size_t i = 0; i < s->n_ranges; i++)
                put_range(&so, s->ranges[i].lo, s->ranges[i].hi);
        for (int c = 0; c < ERE_CLASS_COUNT; c++) {
                int k = c;
                if (!(s->classes & (1u << c)))
                        continue;
                /* grep -i: [[:upper:]] and [[:lower:]] are [[:alpha:]] */
                if (em->icase && (c == ERE_CLASS_UPPER || c == ERE_CLASS_LOWER))
                        k = ERE_CLASS_ALPHA;
                put_class(em, &so, k);
        }
        put(&so, "]", 1);
        if (so.r < 0)
                o->r = so.r;
        else
                put_set_text(em, o, t, len);
        free(t);
}

static void put_word_class(struct ere_emit *em, struct out *o, bool negated)
{
        char *t = NULL;
        size_t len = 0, cap = 0;
        struct out so = {.buf = &t, .len = &len, .cap = &cap};

        put(&so, negated ? "[^" : "[", negated ? 2 : 1);
        put_class(em, &so, ERE_CLASS_COUNT);
        put(&so, "]", 1);
        if (so.r < 0)
                o->r = so.r;
        else
                put_set_text(em, o, t, len);
        free(t);
}

static void look(struct ere_emit *em, struct out *o, bool behind, bool positive)
{
        put(o, behind ? (positive ? "(?<=" : "(?<!") : (positive ? "(?=" : "(?!"), behind ? 4 : 3);
        put_word_class(em, o, false);
        put(o, ")", 1);
}

/* \< \> \b \B: whether grep's word characters are on each side, by look-around. */
static void put_word_op(struct ere_emit *em, struct out *o, enum ere_kind k)
{
        switch (k) {
        case ERE_WORD_START:
                look(em, o, true, false);
                look(em, o, false, true);
                break;
        case ERE_WORD_END:
                look(em, o, true, true);
                look(em, o, false, false);
                break;
        case ERE_WORD_EDGE:
                put(o, "(?:", 3);
                look(em, o, true, false);
                look(em, o, false, true);
                put(o, "|", 1);
                look(em, o, true, true);
                look(em, o, false, false);
                put(o, ")", 1);
                break;
        default:
                put(o, "(?:", 3);
                look(em, o, true, true);
                look(em, o, false, true);
                put(o, "|", 1);
                look(em, o, true, false);
                look(em, o, false, false);
                put(o, ")", 1);
        }
}

static void put_utf8_text(struct ere_emit *em, struct out *o, const char *t, size_t n)
{
        const unsigned char *p = (const unsigned char *) t, *end = p + n;

        while (p < end) {
                uint32_t cp = *p;
                size_t k = em->utf8 ? utf8_decode(p, end, &cp) : 1;
                if (k == 0) { /* cannot happen: the parser checked */
                        cp = *p;
                        k = 1;
                }
                put_cp(o, cp);
                p += k;
        }
}

/* Whether n can only match the empty string without being a group (which a back-reference
 * may name): repeating it is repeating nothing. */
static bool plain_zero_width(const struct ere_node *n)
{
        switch (n->kind) {
        case ERE_EMPTY:
                return true;
        case ERE_REPEAT:
                return plain_zero_width(n->sub[0]);
        case ERE_CONCAT:
                for (size_t i = 0; i < n->n_sub; i++)
                        if (!plain_zero_width(n->sub[i]))
                                return false;
                return true;
        default:
                return zero_width(n);
        }
}

/*
 * A repetition n as one repetition of what is under a stack of them, where that means the
 * same: (x{0,d}){m,n} is x{0,d*n}, (x{k,}){m,} with m > 0 is x{k*m,}, (x+)* is x*. PCRE2's
 * backtracking would try every way to split a line between the stacked repetitions
 * ("\w?{2}{1,3}+" runs out of its match limit on a short line). Not with back-references,
 * which could name a group in between.
 */
static void flatten(const struct ere *e, const struct ere_node *n, int *min, int *max,
                    const struct ere_node **base)
{
        const struct ere_node *b2;
        int m2, x2;

        const struct ere_node *k = n->sub[0];

        *min = n->min;
        *max = n->max;
        *base = n->sub[0];
        if (e->has_backrefs)
                return;
        while (k->kind == ERE_GROUP) /* no back-reference: it captures nothing */
                k = k->sub[0];
        if (k->kind != ERE_REPEAT)
                return;
        flatten(e, k, &m2, &x2, &b2);
        if (m2 == 0) {
                if (*max != 0 && x2 != ERE_INF && *max != ERE_INF && (long) x2 * *max > 65535)
                        return;
                *max = *max == 0 || x2 == 0                 ? 0
                       : (x2 == ERE_INF || *max == ERE_INF) ? ERE_INF
                                                            : x2 * *max;
                *min = 0;
        } else if (x2 == ERE_INF && *min >= 1 && (long) m2 * *min <= 65535) {
                *min = m2 * *min;
                *max = ERE_INF;
        } else if (x2 == ERE_INF && m2 == 1 && *max == ERE_INF) {
                *min = 0;
        } else {
                return;
        }
        *base = b2;
}

static void emit_node(struct ere_emit *em, struct out *o, const struct ere *e,
                      const struct ere_node *n)
{
        char b[48];
        int k;

        switch (n->kind) {
        case ERE_EMPTY:
                break;
        case ERE_LITERAL:
                put_utf8_text(em, o, n->text, n->len);
                break;
        case ERE_ANY:
                put(o, ".", 1);
                break;
        case ERE_SET:
                put_set(em, o, n->set);
                break;
        case ERE_BOL:
                put(o, "^", 1);
                break;
        case ERE_EOL:
                put(o, "$", 1);
                break;
        case ERE_WORD_START:
        case ERE_WORD_END:
        case ERE_WORD_EDGE:
        case ERE_NOT_EDGE:
                put_word_op(em, o, n->kind);
                break;
        case ERE_CONCAT:
                for (size_t i = 0; i < n->n_sub; i++)
                        emit_node(em, o, e, n->sub[i]);
                break;
        case ERE_ALT:
                put(o, "(?:", 3);
                for (size_t i = 0; i < n->n_sub; i++) {
                        if (i)
                                put(o, "|", 1);
                        emit_node(em, o, e, n->sub[i]);
                }
                put(o, ")", 1);
                break;
        case ERE_GROUP:
                put(o, e->has_backrefs ? "(" : "(?:", e->has_backrefs ? 1 : 3);
                emit_node(em, o, e, n->sub[0]);
                put(o, ")", 1);
                break;
        case ERE_BACKREF:
                k = snprintf(b, sizeof(b), "\\g{%u}", em->group_base + n->group);
                put(o, b, (size_t) k);
                break;
        case ERE_REPEAT: {
                const struct ere_node *kid = n->sub[0];
                int min, max;
                bool atom;

                flatten(e, n, &min, &max, &kid);
                atom = kid->kind == ERE_ANY || kid->kind == ERE_SET || kid->kind == ERE_GROUP ||
                       kid->kind == ERE_BACKREF || kid->kind == ERE_ALT;

                if (plain_zero_width(kid)) {
                        /* grep: (^)* is empty, (^)+ is ^ */
                        if (min > 0)
                                emit_node(em, o, e, kid);
                        break;
                }
                if (kid->kind == ERE_LITERAL) {
                        uint32_t cp;
                        atom = !e->utf8 ? kid->len == 1
                                        : utf8_decode((const unsigned char *) kid->text,
                                                      (const unsigned char *) kid->text + kid->len,
                                                      &cp) == kid->len;
                }
                if (!atom)
                        put(o, "(?:", 3);
                emit_node(em, o, e, kid);
                if (!atom)
                        put(o, ")", 1);
                if (min == 0 && max == ERE_INF)
                        k = snprintf(b, sizeof(b), "*");
                else if (min == 1 && max == ERE_INF)
                        k = snprintf(b, sizeof(b), "+");
                else if (min == 0 && max == 1)
                        k = snprintf(b, sizeof(b), "?");
                else if (max == ERE_INF)
                        k = snprintf(b, sizeof(b), "{%d,}", min);
                else if (min == max)
                        k = snprintf(b, sizeof(b), "{%d}", min);
                else
                        k = snprintf(b, sizeof(b), "{%d,%d}", min, max);
                put(o, b, (size_t) k);
                break;
        }
        }
}

int ere_emit(struct ere_emit *em, const struct ere *e, char **buf, size_t *len, size_t *cap)
{
        struct out o = {.buf = buf, .len = len, .cap = cap};

        put(&o, "", 0);
        emit_node(em, &o, e, e->root);
        if (o.r >= 0 && e->has_backrefs)
                em->group_base += e->n_groups;
        return o.r < 0 ? o.r : 0;
}

int ere_emit_word_class(struct ere_emit *em, char **buf, size_t *len, size_t *cap)
{
        struct out o = {.buf = buf, .len = len, .cap = cap};

        put_word_class(em, &o, false);
        return o.r < 0 ? o.r : 0;
}

int ere_emit_defines(struct ere_emit *em, char **buf, size_t *len, size_t *cap)
{
        struct out o = {.buf = buf, .len = len, .cap = cap};
        char name[32];

        if (em->n_defs == 0)
                return 0;
        put(&o, "(?(DEFINE)", 10);
        for (size_t i = 0; i < em->n_defs; i++) {
                int k = snprintf(name, sizeof(name), "(?<cja%zu>", i);
                put(&o, name, (size_t) k);
                put(&o, em->defs[i], strlen(em->defs[i]));
                put(&o, ")", 1);
        }
        put(&o, ")", 1);
        return o.r < 0 ? o.r : 0;
}

void ere_emit_done(struct ere_emit *em)
{
        for (size_t i = 0; i < em->n_defs; i++)
                free(em->defs[i]);
        free(em->defs);
        em->defs = NULL;
        em->n_defs = 0;
        for (int i = 0; i <= ERE_CLASS_COUNT; i++) {
                free(em->cls[i]);
                em->cls[i] = NULL;
        }
}

/* ---- the required literal ------------------------------------------------------------ */

/* The literal text a node always matches as a whole, if it is one: a LITERAL, or a
 * repetition of one at least once (its text once, then the run ends). */
int ere_required_literal(const struct ere *e, char **ret, size_t *ret_len)
{
        const struct ere_node *r = e->root;
        const struct ere_node *const *items = (const struct ere_node *const *) &e->root;
        size_t n = 1, best_i = 0, best_len = 0;

        *ret = NULL;
        *ret_len = 0;
        if (r->kind == ERE_CONCAT) {
                items = (const struct ere_node *const *) r->sub;
                n = r->n_sub;
        }
        /* literals in a concatenation are merged, so each run is one node */
        for (size_t i = 0; i < n; i++) {
                const struct ere_node *k = items[i];
                if (k->kind == ERE_LITERAL && k->len > best_len) {
                        best_len = k->len;
                        best_i = i;
                }
        }
        if (best_len == 0)
                return 0;
        *ret = strndup(items[best_i]->text, best_len);
        if (!*ret)
                return -ENOMEM;
        *ret_len = best_len;
        return 0;
}

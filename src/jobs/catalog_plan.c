/* The search's query planner over the catalog's trigrams (catalog_plan.h). */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "catalog.h"
#include "catalog_plan.h"
#include "ere.h"
#include "grep.h"

static struct catalog_query *q_new(enum catalog_qop op)
{
        struct catalog_query *q = calloc(1, sizeof(*q));

        if (q)
                q->op = op;
        return q;
}

static int q_add(struct catalog_query *q, struct catalog_query *sub)
{
        struct catalog_query **n;

        if (!sub)
                return -ENOMEM;
        n = reallocarray(q->sub, q->n_sub + 1, sizeof(*n));
        if (!n) {
                catalog_query_free(sub);
                return -ENOMEM;
        }
        q->sub = n;
        q->sub[q->n_sub++] = sub;
        return 0;
}

static bool folds_beyond_ascii(unsigned char c)
{
        return c >= 0x80 || c == 'k' || c == 'K' || c == 's' || c == 'S';
}

struct catalog_query *catalog_plan_literal(const char *s, size_t len, bool icase)
{
        struct catalog_query *q;

        if (len < 3)
                return q_new(CATALOG_Q_ALL);
        q = q_new(CATALOG_Q_AND);
        if (!q)
                return NULL;
        for (size_t i = 0; i + 3 <= len; i++) {
                const unsigned char *p = (const unsigned char *) s + i;
                struct catalog_query *t;

                /* Under -i in a UTF-8 locale a character beyond ASCII has cases the index does
                 * not fold, and 'k' and 's' match the Kelvin sign and the long s: such a
                 * trigram is not required. */
                if (icase && (folds_beyond_ascii(p[0]) || folds_beyond_ascii(p[1]) ||
                              folds_beyond_ascii(p[2])))
                        continue;
                if (catalog_trigram(p) == UINT32_MAX)
                        continue;
                t = q_new(CATALOG_Q_TRI);
                if (!t || q_add(q, t) < 0) {
                        catalog_query_free(t);
                        catalog_query_free(q);
                        return NULL;
                }
                t->tri = catalog_trigram(p);
        }
        if (q->n_sub == 0)
                q->op = CATALOG_Q_ALL;
        return q;
}

/* ---- the ERE tree, read with Cox's method -------------------------------------------------
 *
 * For every node: whether it can match the empty string, and either the set of strings it
 * matches exactly, or sets its matches start and end with; and a query every match satisfies.
 * Inside the walker a NULL query means "all" (no condition), and running out of memory sets
 * p->oom, which makes the whole plan fail. Every step only weakens what is known (a set
 * becomes the AND of its strings' trigrams, ORed; a string is cut to its end next to a
 * boundary), so the query never rules out a match. Strings hold ASCII letters folded to lower
 * case, as the index keys them. */

#define MAX_EXACT     7   /* exact strings kept before they become trigrams */
#define MAX_EXACT_LEN 16  /* exact strings this long become trigrams */
#define MAX_SET       20  /* prefix/suffix strings kept */
#define MAX_CROSS     160 /* strings a cross product may make */
#define MAX_SET_CHARS 16  /* a bracket of up to this many characters is an exact set */

struct plan {
        bool icase;
        bool utf8;
        bool oom;
};

struct str {
        char *s;
        size_t len;
};

struct sset {
        struct str *v;
        size_t n;
};

struct info {
        bool can_empty;
        bool exact_ok; /* exact holds every string a match can be */
        struct sset exact, prefix, suffix;
        struct catalog_query *match; /* NULL: all */
};

static void q_drop(struct catalog_query *q)
{
        catalog_query_free(q);
}

static bool q_equal(const struct catalog_query *a, const struct catalog_query *b)
{
        if (a->op != b->op || a->n_sub != b->n_sub)
                return false;
        if (a->op == CATALOG_Q_TRI)
                return a->tri == b->tri;
        for (size_t i = 0; i < a->n_sub; i++)
                if (!q_equal(a->sub[i], b->sub[i]))
                        return false;
        return true;
}

/* Adds sub to q (an AND or OR), flattening sub of the same op, dropping a repeated child. */
static void q_merge(struct plan *p, struct catalog_query *q, struct catalog_query *sub)
{
        if (sub->op == q->op) {
                for (size_t i = 0; i < sub->n_sub; i++) {
                        q_merge(p, q, sub->sub[i]);
                        sub->sub[i] = NULL;
                }
                sub->n_sub = 0;
                q_drop(sub);
                return;
        }
        /* (Only among the first children: an alternation of thousands stays linear.) */
        for (size_t i = 0; i < q->n_sub && i < 64; i++)
                if (q_equal(q->sub[i], sub)) {
                        q_drop(sub);
                        return;
                }
        if (q_add(q, sub) < 0)
                p->oom = true;
}

/* a op b, consuming both; NULL is "all". */
static struct catalog_query *q_join(struct plan *p, enum catalog_qop op, struct catalog_query *a,
                                    struct catalog_query *b)
{
        struct catalog_query *q;

        if (!a || !b) {
                if (op == CATALOG_Q_AND)
                        return a ? a : b;
                q_drop(a);
                q_drop(b);
                return NULL;
        }
        if (a->op == op) {
                q_merge(p, a, b);
                return a;
        }
        q = q_new(op);
        if (!q) {
                p->oom = true;
                q_drop(a);
                q_drop(b);
                return NULL;
        }
        q_merge(p, q, a);
        q_merge(p, q, b);
        if (q->n_sub == 1) {
                a = q->sub[0];
                q->n_sub = 0;
                q_drop(q);
                return a;
        }
        return q;
}

/* The trigrams of s ANDed, NULL (all) when it has none the index can use. */
static struct catalog_query *q_string(struct plan *p, const struct str *s)
{
        struct catalog_query *q = catalog_plan_literal(s->s, s->len, p->icase);

        if (!q) {
                p->oom = true;
                return NULL;
        }
        if (q->op == CATALOG_Q_ALL) {
                q_drop(q);
                return NULL;
        }
        if (q->n_sub == 1) {
                struct catalog_query *t = q->sub[0];

                q->n_sub = 0;
                q_drop(q);
                return t;
        }
        return q;
}

/* Some string of s is in the match: the OR of the strings' queries. */
static struct catalog_query *q_set(struct plan *p, const struct sset *s)
{
        struct catalog_query *q = NULL;

        if (s->n == 0)
                return NULL;
        for (size_t i = 0; i < s->n; i++) {
                struct catalog_query *t = q_string(p, &s->v[i]);

                if (!t) {
                        q_drop(q);
                        return NULL;
                }
                q = i == 0 ? t : q_join(p, CATALOG_Q_OR, q, t);
                if (!q)
                        return NULL;
        }
        return q;
}

static void sset_free(struct sset *s)
{
        for (size_t i = 0; i < s->n; i++)
                free(s->v[i].s);
        free(s->v);
        *s = (struct sset){0};
}

static void sset_add(struct plan *p, struct sset *s, const char *a, size_t alen, const char *b,
                     size_t blen)
{
        struct str *v = reallocarray(s->v, s->n + 1, sizeof(*v));
        char *t;

        if (!v) {
                p->oom = true;
                return;
        }
        s->v = v;
        t = malloc(alen + blen + 1);
        if (!t) {
                p->oom = true;
                return;
        }
        if (alen)
                memcpy(t, a, alen);
        if (blen)
                memcpy(t + alen, b, blen);
        t[alen + blen] = '\0';
        for (size_t i = 0; i < alen + blen; i++)
                if (t[i] >= 'A' && t[i] <= 'Z')
                        t[i] = (char) (t[i] - 'A' + 'a');
        s->v[s->n++] = (struct str){t, alen + blen};
}

static void sset_union(struct plan *p, struct sset *s, const struct sset *t)
{
        for (size_t i = 0; i < t->n; i++)
                sset_add(p, s, t->v[i].s, t->v[i].len, NULL, 0);
}

static struct sset sset_cross(struct plan *p, const struct sset *a, const struct sset *b)
{
        struct sset s = {0};

        for (size_t i = 0; i < a->n; i++)
                for (size_t j = 0; j < b->n; j++)
                        sset_add(p, &s, a->v[i].s, a->v[i].len, b->v[j].s, b->v[j].len);
        return s;
}

static int str_cmp(const void *x, const void *y)
{
        const struct str *a = x, *b = y;
        int c = memcmp(a->s, b->s, a->len < b->len ? a->len : b->len);

        return c ? c : a->len < b->len ? -1 : a->len > b->len;
}

/* Sorts and removes duplicates; for a prefix (suffix) set also the strings that start (end)
 * with another of the set, which say nothing more. */
static void sset_clean(struct sset *s, int which)
{
        size_t w = 0;

        if (s->n > 1)
                qsort(s->v, s->n, sizeof(*s->v), str_cmp);
        for (size_t i = 0; i < s->n; i++) {
                bool drop = w > 0 && str_cmp(&s->v[w - 1], &s->v[i]) == 0;

                for (size_t k = 0; k < w && which != 0 && !drop; k++) {
                        const struct str *t = &s->v[k], *u = &s->v[i];

                        if (t->len <= u->len &&
                            memcmp(t->s, which < 0 ? u->s : u->s + u->len - t->len, t->len) == 0)
                                drop = true;
                }
                if (drop)
                        free(s->v[i].s);
                else
                        s->v[w++] = s->v[i];
        }
        s->n = w;
}

static size_t sset_min_len(const struct sset *s)
{
        size_t m = SIZE_MAX;

        for (size_t i = 0; i < s->n; i++)
                if (s->v[i].len < m)
                        m = s->v[i].len;
        return s->n ? m : 0;
}

static void info_free(struct info *x)
{
        sset_free(&x->exact);
        sset_free(&x->prefix);
        sset_free(&x->suffix);
        q_drop(x->match);
        *x = (struct info){0};
}

static void info_anything(struct plan *p, struct info *x, bool can_empty)
{
        *x = (struct info){.can_empty = can_empty};
        sset_add(p, &x->prefix, NULL, 0, NULL, 0);
        sset_add(p, &x->suffix, NULL, 0, NULL, 0);
}

static void info_exact(struct plan *p, struct info *x, const char *s, size_t len)
{
        *x = (struct info){.can_empty = len == 0, .exact_ok = true};
        sset_add(p, &x->exact, s, len, NULL, 0);
}

/* A prefix (which < 0) or suffix set goes into the query, and its strings are cut to the two
 * characters next to the boundary a concatenation looks across (fewer if still too many). */
static void simplify_set(struct plan *p, struct info *x, struct sset *s, int which)
{
        sset_clean(s, which);
        x->match = q_join(p, CATALOG_Q_AND, x->match, q_set(p, s));
        for (size_t keep = 2;; keep--) {
                for (size_t i = 0; i < s->n; i++) {
                        struct str *t = &s->v[i];

                        if (t->len > keep) {
                                if (which > 0)
                                        memmove(t->s, t->s + t->len - keep, keep);
                                t->len = keep;
                                t->s[keep] = '\0';
                        }
                }
                sset_clean(s, which);
                if (s->n <= MAX_SET || keep == 0)
                        break;
        }
}

/* The exact set goes into the query and becomes the prefix and suffix sets. */
static void collapse_exact(struct plan *p, struct info *x)
{
        if (!x->exact_ok)
                return;
        x->match = q_join(p, CATALOG_Q_AND, x->match, q_set(p, &x->exact));
        sset_free(&x->prefix);
        sset_free(&x->suffix);
        sset_union(p, &x->prefix, &x->exact);
        sset_union(p, &x->suffix, &x->exact);
        sset_free(&x->exact);
        x->exact_ok = false;
        simplify_set(p, x, &x->prefix, -1);
        simplify_set(p, x, &x->suffix, 1);
}

static void simplify(struct plan *p, struct info *x, bool force)
{
        if (x->exact_ok) {
                size_t m;

                sset_clean(&x->exact, 0);
                m = sset_min_len(&x->exact);
                if (x->exact.n > MAX_EXACT || m >= MAX_EXACT_LEN || (force && m >= 3))
                        collapse_exact(p, x);
        } else {
                simplify_set(p, x, &x->prefix, -1);
                simplify_set(p, x, &x->suffix, 1);
        }
}

/* x y into x (consuming y). */
static void info_concat(struct plan *p, struct info *x, struct info *y)
{
        /* An exact side crossed with many of the other's ends would make an OR of many long
         * strings: it becomes trigrams first, and the boundary is looked across below. */
        struct info xy = {.can_empty = x->can_empty && y->can_empty};

        if (x->exact_ok && (y->exact_ok ? x->exact.n * y->exact.n > MAX_EXACT * MAX_EXACT
                                        : x->exact.n * y->prefix.n > MAX_EXACT))
                collapse_exact(p, x);
        if (y->exact_ok && !x->exact_ok && x->suffix.n * y->exact.n > MAX_EXACT)
                collapse_exact(p, y);
        xy.match = q_join(p, CATALOG_Q_AND, x->match, y->match);
        x->match = y->match = NULL;
        if (x->exact_ok && y->exact_ok) {
                xy.exact_ok = true;
                xy.exact = sset_cross(p, &x->exact, &y->exact);
        } else {
                if (x->exact_ok) {
                        xy.prefix = sset_cross(p, &x->exact, &y->prefix);
                } else {
                        sset_union(p, &xy.prefix, &x->prefix);
                        if (x->can_empty)
                                sset_union(p, &xy.prefix, y->exact_ok ? &y->exact : &y->prefix);
                }
                if (y->exact_ok) {
                        xy.suffix = sset_cross(p, &x->suffix, &y->exact);
                } else {
                        sset_union(p, &xy.suffix, &y->suffix);
                        if (y->can_empty)
                                sset_union(p, &xy.suffix, x->exact_ok ? &x->exact : &x->suffix);
                }
                /* Trigrams across the boundary: some suffix of x followed by some prefix of y. */
                if (!x->exact_ok && !y->exact_ok && x->suffix.n * y->prefix.n <= MAX_CROSS) {
                        struct sset c = sset_cross(p, &x->suffix, &y->prefix);

                        xy.match = q_join(p, CATALOG_Q_AND, xy.match, q_set(p, &c));
                        sset_free(&c);
                }
        }
        info_free(x);
        info_free(y);
        *x = xy;
        simplify(p, x, false);
}

/* x | y into x (consuming y). */
static void info_alt(struct plan *p, struct info *x, struct info *y)
{
        struct info xy = {.can_empty = x->can_empty || y->can_empty};

        if (x->exact_ok && y->exact_ok) {
                xy.exact_ok = true;
                sset_union(p, &xy.exact, &x->exact);
                sset_union(p, &xy.exact, &y->exact);
        } else {
                struct info *v[2] = {x, y};

                for (int i = 0; i < 2; i++) {
                        if (v[i]->exact_ok) {
                                v[i]->match = q_join(p, CATALOG_Q_AND, v[i]->match,
                                                     q_set(p, &v[i]->exact));
                                sset_union(p, &xy.prefix, &v[i]->exact);
                                sset_union(p, &xy.suffix, &v[i]->exact);
                        } else {
                                sset_union(p, &xy.prefix, &v[i]->prefix);
                                sset_union(p, &xy.suffix, &v[i]->suffix);
                        }
                }
        }
        xy.match = q_join(p, CATALOG_Q_OR, x->match, y->match);
        x->match = y->match = NULL;
        info_free(x);
        info_free(y);
        *x = xy;
        simplify(p, x, false);
}

/* A bracket of a few characters (ASCII in UTF-8 mode, bytes otherwise) as its exact set. */
static bool set_exact(struct plan *p, struct info *x, const struct ere_set *s)
{
        uint32_t limit = p->utf8 ? 0x7f : 0xff;
        size_t n = 0;

        if (s->negated || s->classes != 0)
                return false;
        for (size_t i = 0; i < s->n_ranges; i++) {
                if (s->ranges[i].hi > limit || s->ranges[i].lo > s->ranges[i].hi)
                        return false;
                n += s->ranges[i].hi - s->ranges[i].lo + 1;
                if (n > MAX_SET_CHARS)
                        return false;
        }
        if (n == 0)
                return false;
        *x = (struct info){.exact_ok = true};
        for (size_t i = 0; i < s->n_ranges; i++)
                for (uint32_t c = s->ranges[i].lo; c <= s->ranges[i].hi; c++) {
                        char ch = (char) c;

                        sset_add(p, &x->exact, &ch, 1, NULL, 0);
                }
        return true;
}

static void analyze(struct plan *p, const struct ere_node *n, struct info *x)
{
        switch (n->kind) {
        case ERE_EMPTY:
        case ERE_BOL:
        case ERE_EOL:
        case ERE_WORD_START:
        case ERE_WORD_END:
        case ERE_WORD_EDGE:
        case ERE_NOT_EDGE:
                info_exact(p, x, NULL, 0);
                return;
        case ERE_LITERAL:
                info_exact(p, x, n->text, n->len);
                return;
        case ERE_ANY:
                info_anything(p, x, false);
                return;
        case ERE_SET:
                if (!set_exact(p, x, n->set))
                        info_anything(p, x, false);
                return;
        case ERE_BACKREF:
                info_anything(p, x, true);
                return;
        case ERE_GROUP:
                analyze(p, n->sub[0], x);
                return;
        case ERE_REPEAT:
                if (n->min == 0) {
                        info_anything(p, x, true);
                        return;
                }
                analyze(p, n->sub[0], x);
                /* At least one: its matches start and end as the child's do. */
                if (!(n->min == 1 && n->max == 1) && x->exact_ok) {
                        sset_free(&x->prefix);
                        sset_free(&x->suffix);
                        sset_union(p, &x->prefix, &x->exact);
                        sset_union(p, &x->suffix, &x->exact);
                        sset_free(&x->exact);
                        x->exact_ok = false;
                        simplify(p, x, false);
                }
                return;
        case ERE_CONCAT:
        case ERE_ALT:
                analyze(p, n->sub[0], x);
                for (size_t i = 1; i < n->n_sub; i++) {
                        struct info y;

                        analyze(p, n->sub[i], &y);
                        if (n->kind == ERE_CONCAT)
                                info_concat(p, x, &y);
                        else
                                info_alt(p, x, &y);
                }
                return;
        }
        info_anything(p, x, true);
}

/* The query every match of e satisfies: NULL with p->oom clear means "all". */
static struct catalog_query *plan_tree(struct plan *p, const struct ere *e)
{
        struct info x;
        struct catalog_query *q;

        analyze(p, e->root, &x);
        simplify(p, &x, true);
        if (x.exact_ok)
                x.match = q_join(p, CATALOG_Q_AND, x.match, q_set(p, &x.exact));
        q = x.match;
        x.match = NULL;
        info_free(&x);
        return q;
}

struct catalog_query *catalog_plan_ere(const struct ere *e, bool icase)
{
        struct plan p = {.icase = icase, .utf8 = e->utf8};
        struct catalog_query *q = plan_tree(&p, e);

        if (p.oom) {
                q_drop(q);
                return NULL;
        }
        return q ? q : q_new(CATALOG_Q_ALL);
}

/* ---- the patterns of a search --------------------------------------------------------- */

/* Each pattern parsed as the matcher parses it (grep.c's parse_all): all again with
 * regcomp's reading when the matcher would use it for one. v[i] NULL: not parsed. */
static int parse_patterns(const char *patterns, const struct grep_opts *o, struct ere **v, size_t n)
{
        unsigned flags = (o->utf8 ? ERE_UTF8 : 0) | (o->ignore_case ? ERE_ICASE : 0);

        for (int pass = 0; pass < 2; pass++) {
                bool again = o->word && !o->line && o->utf8;
                size_t i = 0;

                for (const char *p = patterns; i < n; i++) {
                        const char *nl = strchr(p, '\n');
                        size_t len = nl ? (size_t) (nl - p) : strlen(p);
                        struct ere_error ee;
                        int r = ere_parse(p, len, flags, &v[i], &ee);

                        if (r == -ENOMEM)
                                return r;
                        if (r < 0)
                                v[i] = NULL;
                        else
                                again |= v[i]->needs_regex;
                        if (nl)
                                p = nl + 1;
                }
                if (!again || (flags & ERE_REGEX))
                        break;
                for (i = 0; i < n; i++) {
                        ere_free(v[i]);
                        v[i] = NULL;
                }
                flags |= ERE_REGEX;
        }
        return 0;
}

struct catalog_query *catalog_plan(const char *patterns, const struct grep_opts *o,
                                   const struct matcher *m)
{
        struct catalog_query *q;
        struct ere **v = NULL;
        size_t n = 1, i = 0;

        (void) m;
        /* -v selects lines without the pattern, -L the jobs without it: every job counts. */
        if (o->invert || o->list_without)
                return q_new(CATALOG_Q_ALL);
        for (const char *s = patterns; (s = strchr(s, '\n')); s++)
                n++;
        if (!o->fixed) {
                v = calloc(n, sizeof(*v));
                if (!v || parse_patterns(patterns, o, v, n) < 0)
                        goto oom;
        }
        q = q_new(CATALOG_Q_OR);
        if (!q)
                goto oom;
        /* Several patterns: a line matches one of them. */
        for (const char *p = patterns; i < n; i++) {
                const char *nl = strchr(p, '\n');
                size_t len = nl ? (size_t) (nl - p) : strlen(p);
                struct catalog_query *sub;

                if (o->fixed)
                        sub = catalog_plan_literal(p, len, o->ignore_case);
                else if (v[i])
                        sub = catalog_plan_ere(v[i], o->ignore_case);
                else
                        sub = q_new(CATALOG_Q_ALL);
                if (q_add(q, sub) < 0) {
                        catalog_query_free(q);
                        goto oom;
                }
                if (nl)
                        p = nl + 1;
        }
        if (v)
                for (i = 0; i < n; i++)
                        ere_free(v[i]);
        free(v);
        return q;
oom:
        if (v)
                for (i = 0; i < n; i++)
                        ere_free(v[i]);
        free(v);
        return NULL;
}

struct catalog *catalog_plan_open(int rootfd, const char *patterns, const struct grep_opts *o,
                                  const struct matcher *m)
{
        const char *env = getenv("CJA_CATALOG");
        struct catalog *c = NULL;
        struct catalog_query *q;

        if (env && strcmp(env, "0") == 0)
                return NULL;
        if (catalog_open(rootfd, &c, NULL) < 0)
                return NULL;
        if (!patterns)
                return c;
        q = catalog_plan(patterns, o, m);
        if (!q || catalog_match(c, q) < 0) {
                /* Without a plan, the catalog still answers the job table. */
                catalog_query_free(q);
                return c;
        }
        catalog_query_free(q);
        return c;
}

void catalog_plan_notice(const char *prog, size_t uncovered)
{
        if (uncovered == 0)
                return;
        fprintf(stderr,
                "%s: the catalog does not cover %zu day folder%s (missing, changed since, or "
                "damaged): read from %s records; 'connect-jobs reindex' rebuilds it\n",
                prog, uncovered, uncovered == 1 ? "" : "s", uncovered == 1 ? "its" : "their");
}

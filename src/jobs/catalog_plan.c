/* The search's query planner over the catalog's trigrams (catalog_plan.h). */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "catalog.h"
#include "catalog_plan.h"
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

/* A pattern that means itself in grep -E (no operator, no escape). */
static bool plain(const char *s, size_t len)
{
        for (size_t i = 0; i < len; i++)
                if (strchr("\\.[]()*+?{}|^$", s[i]))
                        return false;
        return true;
}

struct catalog_query *catalog_plan(const char *patterns, const struct grep_opts *o,
                                   const struct matcher *m)
{
        struct catalog_query *q;
        const char *req = m ? matcher_required_literal(m) : NULL;
        bool several = strchr(patterns, '\n') != NULL;

        /* -v selects lines without the pattern, -L the jobs without it: every job counts. */
        if (o->invert || o->list_without)
                return q_new(CATALOG_Q_ALL);
        q = q_new(CATALOG_Q_OR);
        if (!q)
                return NULL;
        for (const char *p = patterns;;) {
                const char *nl = strchr(p, '\n');
                size_t len = nl ? (size_t) (nl - p) : strlen(p);
                struct catalog_query *sub;

                if (o->fixed || plain(p, len))
                        sub = catalog_plan_literal(p, len, o->ignore_case);
                else if (!several && req)
                        sub = catalog_plan_literal(req, strlen(req), o->ignore_case);
                else
                        sub = q_new(CATALOG_Q_ALL);
                if (q_add(q, sub) < 0) {
                        catalog_query_free(q);
                        return NULL;
                }
                if (!nl)
                        break;
                p = nl + 1;
        }
        return q;
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

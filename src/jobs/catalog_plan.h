#pragma once

#include <stdbool.h>
#include <stddef.h>

/*
 * The query planner of connect-jobs search: a search's patterns become an AND/OR of
 * case-folded trigrams (Russ Cox's "Regular Expression Matching with a Trigram Index"), which
 * the catalog (catalog.h) evaluates to the jobs that may hold a match. Only those are read;
 * every other job of a folder the catalog covers cannot match, so results are the same as a
 * full scan. A pattern with no usable literal plans to "all" (no pruning).
 *
 * -F patterns are literals; every other pattern is parsed as the matcher parses it (ere.h)
 * and its tree walked node by node, as Cox's method does (catalog_plan_ere). Several patterns
 * are ORed; -v and -L plan to "all".
 */

struct catalog;
struct catalog_query;
struct ere;
struct grep_opts;
struct matcher;

/* The query that every match of a literal (at least 3 bytes) must satisfy: the AND of its
 * trigrams; any other literal plans to "all". The building block for the ERE tree's walker
 * (Cox's exact/prefix/suffix sets end in such ANDs, combined with OR). NULL: -ENOMEM. */
struct catalog_query *catalog_plan_literal(const char *s, size_t len, bool icase);

/* The query every match of one parsed ERE satisfies, by Cox's method: for each node of the
 * tree whether it can match empty, the set of strings it matches exactly or sets its matches
 * start and end with, and an AND/OR of trigrams; sets that grow too large become trigrams.
 * Under icase only trigrams the index folds safely (no 'k', 's' or byte beyond ASCII) are
 * required. NULL: -ENOMEM. */
struct catalog_query *catalog_plan_ere(const struct ere *e, bool icase);

/* The query for newline-separated patterns searched with o (m: their matcher). NULL:
 * -ENOMEM. */
struct catalog_query *catalog_plan(const char *patterns, const struct grep_opts *o,
                                   const struct matcher *m);

/*
 * The catalog of the archive under rootfd for ls (patterns NULL) or search, its rows already
 * matched against the plan; NULL when there is none, it cannot be read, or CJA_CATALOG=0 in
 * the environment (then every folder is read from its records).
 */
struct catalog *catalog_plan_open(int rootfd, const char *patterns, const struct grep_opts *o,
                                  const struct matcher *m);

/*
 * After ls or search with a catalog: says on stderr, once, how many day folders it did not
 * cover (missing from it, changed since, or in a damaged file), which were read from their
 * records instead. The results are the same; it says that the catalog should be rebuilt.
 */
void catalog_plan_notice(const char *prog, size_t uncovered);

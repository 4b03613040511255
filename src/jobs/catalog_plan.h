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
 * Today's planner knows literals: -F patterns, patterns with no ERE operator, and the literal
 * the matcher requires of a single regex (grep.c's prefilter). The ERE tree (ere.h, issue 20)
 * is meant to be walked into such queries node by node, as Cox's method does.
 */

struct catalog;
struct catalog_query;
struct grep_opts;
struct matcher;

/* The query that every match of a literal (at least 3 bytes) must satisfy: the AND of its
 * trigrams; any other literal plans to "all". The building block for the ERE tree's walker
 * (Cox's exact/prefix/suffix sets end in such ANDs, combined with OR). NULL: -ENOMEM. */
struct catalog_query *catalog_plan_literal(const char *s, size_t len, bool icase);

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

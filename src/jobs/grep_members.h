#pragma once

#include <stddef.h>

#include "catalog.h"
#include "grep.h"

/*
 * Searches only the members of a log that the catalog says may hold a match (m[i].may, from
 * catalog_row_members()), on g: each such member from its first line start (a member that
 * starts inside a line leaves that line to the member it began in) to the end of the line it
 * ends in (read on into the members after it), with the line numbers the catalog keeps, so
 * the output is a full scan's. The members are decoded on up to threads threads. Returns 0,
 * -ESTALE when the file is not as the catalog says (nothing was fed: read it whole), or an
 * error of grep_job_feed() or of reading.
 */
int grep_members(struct grep_job *g, int dfd, const char *name, unsigned threads,
                 const struct catalog_member *m, size_t n, size_t *ret_decoded);

/* Whether grep_members() can search for o (not with context or -v). */
bool grep_members_usable(const struct grep_opts *o);

/* The members grep_members() would decode for m[0, n), in order: their indexes into ret (n of
 * room), *ret_n of them (the bytes a search reads of the log: what to fetch of one in S3).
 * -ENOMEM. */
int grep_members_needed(const struct catalog_member *m, size_t n, size_t *ret, size_t *ret_n);

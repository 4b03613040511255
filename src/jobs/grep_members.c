#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gzblock.h"
#include "grep_members.h"
#include "logreader.h"

/* What is fed of a member decoded. */
enum role {
        R_START, /* a region's first member: the lines from its first line start */
        R_FULL,  /* all of it (it follows the member before without a gap) */
        R_TAIL,  /* up to its first newline: the end of the line the member before ends in */
};

struct unit {
        size_t member;
        enum role role;
};

bool grep_members_usable(const struct grep_opts *o)
{
        return !o->invert && !o->list_without && o->before == 0 && o->after == 0;
}

/* Member k holds a newline (the last one: as far as we know, which is all we need). */
static bool has_newline(const struct catalog_member *m, size_t n, size_t k)
{
        return k + 1 >= n || m[k + 1].lines > m[k].lines;
}

/* The members grep_members() decodes, with what of each it feeds: units (n of room). */
static size_t plan(const struct catalog_member *m, size_t n, struct unit *units)
{
        size_t n_units = 0;
        bool open = false; /* the last unit's bytes end inside a line fed */

        for (size_t k = 0; k < n; k++) {
                enum role role;

                if (m[k].may)
                        role = open ? R_FULL : R_START;
                else if (open && m[k].midline)
                        role = R_TAIL;
                else {
                        open = false;
                        continue;
                }
                /* After it, a line fed goes on when the next member starts inside a line (for a
                 * tail: when it had no newline to end it). */
                if (role == R_TAIL)
                        open = !has_newline(m, n, k);
                else
                        open = k + 1 < n && m[k + 1].midline;
                units[n_units++] = (struct unit){k, role};
        }
        return n_units;
}

int grep_members_needed(const struct catalog_member *m, size_t n, size_t *ret, size_t *ret_n)
{
        struct unit *units = calloc(n ? n : 1, sizeof(*units));
        size_t k;

        if (!units)
                return -ENOMEM;
        k = plan(m, n, units);
        for (size_t u = 0; u < k; u++)
                ret[u] = units[u].member;
        *ret_n = k;
        free(units);
        return 0;
}

int grep_members(struct grep_job *g, int dfd, const char *name, unsigned threads,
                 const struct catalog_member *m, size_t n, size_t *ret_decoded)
{
        struct gzblock_member *list = NULL;
        struct unit *units = NULL;
        struct log_reader *rd = NULL;
        size_t n_units;
        bool skipping = false;
        int r;

        if (n == 0)
                return 0;
        list = calloc(n, sizeof(*list));
        units = calloc(n, sizeof(*units));
        if (!list || !units) {
                r = -ENOMEM;
                goto out;
        }
        n_units = plan(m, n, units);
        for (size_t u = 0; u < n_units; u++) {
                const struct catalog_member *mb = &m[units[u].member];
                list[u] = (struct gzblock_member){mb->offset, mb->size, mb->usize};
        }
        if (n_units == 0) {
                r = 0;
                goto out;
        }
        r = log_reader_open_members(dfd, name, threads, list, n_units,
                                    m[n - 1].offset + m[n - 1].size, &rd);
        if (r >= 0)
                *ret_decoded = n_units;
        for (size_t u = 0; u < n_units && r >= 0 && !grep_job_satisfied(g); u++) {
                const struct catalog_member *mb = &m[units[u].member];
                const char *data, *nl;
                size_t off = 0, end;
                ssize_t k = log_reader_next(rd, &data);

                if (k < 0) {
                        r = (int) k;
                        break;
                }
                if (k == 0) {
                        r = -EBADMSG; /* fewer members than listed */
                        break;
                }
                end = (size_t) k;
                if (units[u].role == R_START) {
                        /* The line at its first byte is number lines + 1; when that line began
                         * in a member before, the first line of this one is the next. */
                        r = grep_job_jump(g, mb->lines + 1 + (mb->midline ? 1 : 0));
                        if (r < 0)
                                break;
                        skipping = mb->midline;
                }
                if (skipping) {
                        nl = memchr(data, '\n', end);
                        if (!nl)
                                continue; /* no line starts here */
                        off = (size_t) (nl - data) + 1;
                        skipping = false;
                        if (units[u].role == R_TAIL)
                                continue; /* the line it ends is the one skipped */
                }
                if (units[u].role == R_TAIL) {
                        nl = memchr(data + off, '\n', end - off);
                        if (nl)
                                end = (size_t) (nl - data) + 1;
                }
                r = grep_job_feed(g, data + off, end - off);
        }
out:
        log_reader_free(rd);
        free(list);
        free(units);
        return r;
}

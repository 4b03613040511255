/* Is a job archived, and where: the record test and the walk of an item's dates (archive.h). */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive_internal.h"

static bool all_digits(const char *s, size_t len)
{
        if (strlen(s) != len)
                return false;
        for (size_t i = 0; i < len; i++)
                if (s[i] < '0' || s[i] > '9')
                        return false;
        return true;
}

bool archive_is_year_name(const char *s)
{
        return all_digits(s, 4);
}

bool archive_is_month_or_day_name(const char *s)
{
        return all_digits(s, 2);
}

int archive_list_dirs(struct archive *a, const char *path, bool (*pred)(const char *name),
                      char ***ret, size_t *ret_n)
{
        char **names = NULL;
        size_t n = 0, kept = 0;
        int r;

        r = store_list_dirs(a->store, path, &names, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                if (pred(names[i]))
                        names[kept++] = names[i];
                else
                        free(names[i]);
        }
        *ret = names;
        *ret_n = kept;
        return 0;
}

/*
 * Any failure to look (EIO, EACCES) answers "no": the job is fetched again and its commit
 * then fails loudly, rather than being skipped in silence.
 */
bool archive_job_is_archived(struct archive *a, const struct archive_loc *loc)
{
        char dir[REL_PATH_MAX], name[REL_PATH_MAX];

        if (!a || !loc_is_valid(loc) || format_dir(dir, sizeof(dir), loc) < 0 ||
            format_name(name, sizeof(name), loc, ARCHIVE_KIND_RECORD) < 0)
                return false;
        return store_has(a->store, dir, name) > 0;
}

int archive_loc_symlink(const struct archive *a, const struct archive_loc *loc, char *buf,
                        size_t size)
{
        char path[REL_PATH_MAX];

        if (!a || !buf || !loc_is_valid(loc) || format_dir(path, sizeof(path), loc) < 0)
                return -EINVAL;
        return store_find_symlink(a->store, path, buf, size);
}

/*
 * Looks for key's record under any date of guid, newest day first, without following
 * symlinks. For jobs whose date is not fixed by their own start time (see daemon.c), so that
 * a job archived under one date is not archived again under another. Costs a walk of the
 * item's day folders: meant for rare jobs, not for every job of every poll.
 */
int archive_find_job(struct archive *a, const char *guid, const char *key, struct archive_loc *ret)
{
        char **years = NULL, name[256], path[REL_PATH_MAX];
        size_t n_years = 0;
        int found = 0, r;

        if (!a || !path_component_is_safe(guid, strlen(guid)) ||
            !path_component_is_safe(key, strlen(key)) ||
            snprintf(name, sizeof(name), "%s.json", key) >= (int) sizeof(name))
                return -EINVAL;
        r = archive_list_dirs(a, guid, archive_is_year_name, &years, &n_years);
        if (r < 0)
                return r == -ENOENT ? 0 : r;
        for (size_t y = n_years; !found && y-- > 0;) {
                char **months = NULL;
                size_t n_months = 0;

                (void) snprintf(path, sizeof(path), "%s/%s", guid, years[y]);
                if (archive_list_dirs(a, path, archive_is_month_or_day_name, &months, &n_months) <
                    0)
                        continue;
                for (size_t m = n_months; !found && m-- > 0;) {
                        char **days = NULL;
                        size_t n_days = 0;

                        (void) snprintf(path, sizeof(path), "%s/%s/%s", guid, years[y], months[m]);
                        if (archive_list_dirs(a, path, archive_is_month_or_day_name, &days,
                                              &n_days) < 0)
                                continue;
                        for (size_t dd = n_days; !found && dd-- > 0;) {
                                struct ymd when;

                                (void) snprintf(path, sizeof(path), "%s/%s/%s/%s", guid, years[y],
                                                months[m], days[dd]);
                                if (store_has(a->store, path, name) > 0 &&
                                    ymd_parse(years[y], months[m], days[dd], &when) >= 0) {
                                        *ret = (struct archive_loc){
                                                .guid = guid,
                                                .year = when.year,
                                                .month = when.month,
                                                .day = when.day,
                                                .key = key,
                                        };
                                        found = 1;
                                }
                        }
                        store_names_free(days, n_days);
                }
                store_names_free(months, n_months);
        }
        store_names_free(years, n_years);
        return found;
}

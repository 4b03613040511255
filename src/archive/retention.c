/* Retention: whole day folders older than the cutoff go, oldest first (archive.h). */

#include <errno.h>
#include <stdio.h>

#include "archive_internal.h"

static bool is_guid_name(const char *s)
{
        return guid_is_valid(s);
}

/*
 * Walks guid/YYYY/MM/DD in ascending order and removes whole day folders dated before the
 * cutoff, then the month and year folders this leaves empty. Only names shaped like the
 * archive's own (a GUID, four digits, two digits) are considered, and every folder is reached
 * as the store reaches any (never through a symlink), so nothing outside the archive's layout
 * is touched. The record goes with its folder, so a pruned job is simply absent; the caller
 * must also stop fetching jobs older than the cutoff, or they would come back.
 */
int archive_prune(struct archive *a, int year, int month, int day, unsigned *ret_removed)
{
        char **guids = NULL, path[REL_PATH_MAX];
        size_t n_guids = 0;
        unsigned removed = 0;
        const struct ymd cutoff = {year, month, day};
        int r;

        r = archive_list_dirs(a, "", is_guid_name, &guids, &n_guids);
        if (r < 0)
                return r;
        for (size_t g = 0; g < n_guids; g++) {
                char **years = NULL;
                size_t n_years = 0;

                if (archive_list_dirs(a, guids[g], archive_is_year_name, &years, &n_years) < 0)
                        continue;
                for (size_t y = 0; y < n_years; y++) {
                        char **months = NULL;
                        size_t n_months = 0;
                        struct ymd when;

                        if (ymd_parse(years[y], NULL, NULL, &when) < 0 || when.year > year)
                                break;
                        (void) snprintf(path, sizeof(path), "%s/%s", guids[g], years[y]);
                        if (archive_list_dirs(a, path, archive_is_month_or_day_name, &months,
                                              &n_months) < 0)
                                continue;
                        for (size_t m = 0; m < n_months; m++) {
                                char **days = NULL;
                                size_t n_days = 0;

                                /* Day 0: the month is past only when all of it is. */
                                if (ymd_parse(years[y], months[m], NULL, &when) < 0 ||
                                    ymd_compare(&when, &cutoff) > 0)
                                        break;
                                (void) snprintf(path, sizeof(path), "%s/%s/%s", guids[g], years[y],
                                                months[m]);
                                if (archive_list_dirs(a, path, archive_is_month_or_day_name, &days,
                                                      &n_days) < 0)
                                        continue;
                                for (size_t dd = 0; dd < n_days; dd++) {
                                        if (ymd_parse(years[y], months[m], days[dd], &when) < 0 ||
                                            ymd_compare(&when, &cutoff) >= 0)
                                                break;
                                        (void) snprintf(path, sizeof(path), "%s/%s/%s/%s", guids[g],
                                                        years[y], months[m], days[dd]);
                                        int e = store_remove_dir(a->store, path,
                                                                 STORE_REMOVE_FILES);
                                        if (e < 0)
                                                keep_first_error(&r, e);
                                        else {
                                                removed++;
                                                archive_catalog_folder(a, path, true);
                                        }
                                }
                                store_names_free(days, n_days);
                                /* Fails harmlessly with ENOTEMPTY while days remain. */
                                (void) snprintf(path, sizeof(path), "%s/%s/%s", guids[g], years[y],
                                                months[m]);
                                (void) store_remove_dir(a->store, path, 0);
                        }
                        store_names_free(months, n_months);
                        (void) snprintf(path, sizeof(path), "%s/%s", guids[g], years[y]);
                        (void) store_remove_dir(a->store, path, 0);
                }
                store_names_free(years, n_years);
        }
        store_names_free(guids, n_guids);
        archive_catalog_flush(a);
        if (ret_removed)
                *ret_removed = removed;
        return r;
}

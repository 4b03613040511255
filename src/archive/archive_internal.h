#pragma once

/* What the archive's own files (archive.c, archive_file.c, lookup.c, retention.c) share; not
 * for anyone else. Everything here speaks to the store only through store.h. */

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "archive.h"
#include "catalog.h"
#include "store.h"
#include "util.h"

/*
 * Room for any relative path we build: a GUID and a key are at most 128 bytes each
 * (path_component_is_safe), so "guid/YYYY/MM/DD/.key.error.json.tmp" stays under 300.
 */
#define REL_PATH_MAX 512

struct archive {
        struct store *store; /* owned */
        struct gzpool *gz;
        /* The search catalog, when enabled (archive_catalog_enable; catalog_archive.c). */
        struct catalog_writer *cat;
        struct catalog_trigrams *trigrams;
        int cat_rootfd;
        unsigned cat_seal_jobs; /* the writer is opened at the first job (nothing before) */
        /* A store that is not the local folder holding the catalog (an object store): the
         * sealed files are copied to it under ".catalog/<cat_id>/" (catalog_archive.c). */
        bool cat_remote, cat_remote_listed, cat_remote_failing;
        char cat_id[17];
        char **cat_remote_names; /* what that folder holds, sorted */
        size_t cat_remote_n;
        int64_t cat_open_since; /* monotonic seconds: the open segment's oldest unsealed job */
        unsigned cat_seal_seconds;
};

/* A log on its way into its temporary: compressed by the gzip pool, then queued in a
 * batch. */
struct archive_file {
        struct archive *archive; /* borrowed; must outlive the file */
        struct gzjob *job;       /* until the pool has ended the stream */
        bool created;            /* the temporary exists and is ours to remove */
        bool finishing;          /* archive_file_finish() was called */
        bool finished;           /* the gzip stream is complete and the fd closed */
        int error;               /* the first failure, returned again by every later call */
        archive_finish_fn *done;
        void *userdata;
        char dir[REL_PATH_MAX];  /* its day folder, relative to the root */
        char name[REL_PATH_MAX]; /* its final name, "<key>.log.gz" */
        /* For the catalog: the log's trigrams per member, and its members. */
        struct catalog_tri tri;
        struct catalog_member *members;
        uint32_t n_members;
};

enum archive_kind {
        ARCHIVE_KIND_LOG,
        ARCHIVE_KIND_ERROR,
        ARCHIVE_KIND_RECORD,
};

static inline const char *archive_kind_suffix(enum archive_kind kind)
{
        static const char *const suffix[] = {
                [ARCHIVE_KIND_LOG] = ".log.gz",
                [ARCHIVE_KIND_ERROR] = ".error.json",
                [ARCHIVE_KIND_RECORD] = ".json",
        };
        return suffix[kind];
}

static inline bool loc_is_valid(const struct archive_loc *loc)
{
        return loc && loc->guid && loc->key &&
               path_component_is_safe(loc->guid, strlen(loc->guid)) &&
               path_component_is_safe(loc->key, strlen(loc->key)) && loc->year >= 1 &&
               loc->year <= 9999 && loc->month >= 1 && loc->month <= 12 && loc->day >= 1 &&
               loc->day <= 31;
}

/* "guid/YYYY/MM/DD", relative to the root. */
static inline int format_dir(char *buf, size_t size, const struct archive_loc *loc)
{
        int n = snprintf(buf, size, "%s/%04d/%02d/%02d", loc->guid, loc->year, loc->month,
                         loc->day);
        if (n < 0 || (size_t) n >= size)
                return -ENAMETOOLONG;
        return 0;
}

/* "<key><suffix>": a final name in the job's day folder. */
static inline int format_name(char *buf, size_t size, const struct archive_loc *loc,
                              enum archive_kind kind)
{
        int n = snprintf(buf, size, "%s%s", loc->key, archive_kind_suffix(kind));
        if (n < 0 || (size_t) n >= size)
                return -ENAMETOOLONG;
        return 0;
}

static inline void keep_first_error(int *r, int e)
{
        if (*r == 0 && e < 0)
                *r = e;
}

/* The layout's folder names: a GUID, a year (four digits), a month or a day (two). */
bool archive_is_year_name(const char *s);
bool archive_is_month_or_day_name(const char *s);
/* The subfolders of path that match pred, sorted (store_list_dirs, filtered). */
int archive_list_dirs(struct archive *a, const char *path, bool (*pred)(const char *name),
                      char ***ret, size_t *ret_n);

/* The catalog's side of the archive (catalog_archive.c); each is a no-op without it. */
void archive_catalog_close(struct archive *a);
void archive_catalog_file_open(struct archive_file *f);
void archive_catalog_file_finished(struct archive_file *f, const uint32_t *member_sizes, size_t n,
                                   uint64_t bytes_in);
void archive_catalog_file_free(struct archive_file *f);
/* After a batch's last sync: a committed job's row, then the state of each folder written. */
void archive_catalog_job(struct archive *a, const struct archive_loc *loc, const char *record_json,
                         const struct archive_file *log);
void archive_catalog_folder(struct archive *a, const char *path, bool removed);
void archive_catalog_flush(struct archive *a);

#pragma once

#include <stddef.h>

/*
 * connect-jobs over an archive in S3: with archive.s3 in the config (and no --archive DIR),
 * the archive commands read the bucket through a read-through mirror (s3_mirror.h) under
 * the user's cache, $XDG_CACHE_HOME/connect-jobs/s3/<id> (else ~/.cache/...), so that they
 * read the same layout with the same code as on disk.
 */

struct cli;
struct catalog;
struct cli_s3;
struct scan_filter;
struct scan_job;

/*
 * The bucket (once per process: kept in c, freed by cli_done()), or *ret NULL when the
 * archive is a local folder. Returns 0, or an exit status with the reason said: 78 when no
 * credentials are found, 1 when S3 refuses them, has no such bucket or cannot be reached, or
 * the cache cannot be made.
 */
int cli_s3_get(struct cli *c, struct cli_s3 **ret);
void cli_s3_free(struct cli_s3 *x);

/* The mirror's folder (for the readers), and the archive's name in messages and paths:
 * "s3://<bucket>[/<prefix>]". */
int cli_s3_rootfd(const struct cli_s3 *x);
const char *cli_s3_name(const struct cli_s3 *x);
/* The cache's folder (archived.h's dir), and a path in it as the archive's ("s3://..."),
 * malloc'd (NULL: out of memory). */
const char *cli_s3_cache_dir(const struct cli_s3 *x);
char *cli_s3_display_path(const struct cli_s3 *x, const char *cache_path);

/* ls and search: the bucket's search catalog is read at the first sync (unless CJA_CATALOG=0)
 * and answers the day folders it covers; cli_s3_catalog() is it (owned by x), or NULL. */
void cli_s3_use_catalog(struct cli_s3 *x);
struct catalog *cli_s3_catalog(const struct cli_s3 *x);

/* s3_mirror_sync() and s3_mirror_fetch_logs(), a failure said. Return 0 or -errno. The
 * fetches (these and cli_s3_fetch_parts()) may be called from several threads: one at a
 * time. */
int cli_s3_sync(struct cli_s3 *x, const struct scan_filter *f, const char *key);
int cli_s3_fetch_logs(struct cli_s3 *x, const struct scan_job *jobs, size_t n);
/* s3_mirror_fetch_parts(), then the logs whole of the parts that could not be fetched (their
 * result < 0; 1 when the log is whole in the cache, or was fetched whole now). */
struct s3_part;
int cli_s3_fetch_parts(struct cli_s3 *x, struct s3_part *parts, size_t n);
/* s3_mirror_part_open(): the folder (fd) and name of job's log fetched in part, or -ENOENT. */
int cli_s3_part_open(const struct cli_s3 *x, const struct scan_job *job, int *ret_dfd, char *name,
                     size_t size);
/* The cache's records of one job of content guid made the bucket's: when they are cached, one
 * listing of their day folder; else a listing of the item's folders. 0 or -errno, said. */
int cli_s3_sync_job(struct cli_s3 *x, const char *guid, const char *key);

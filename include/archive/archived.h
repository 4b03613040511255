#pragma once

#include <stdbool.h>

/*
 * A read-only view of the archive, for the operator's command. Nothing here creates, locks
 * or writes anything, so it runs beside the daemon with read access alone (the service
 * group). The layout is archive.h's: <dir>/<guid>/<YYYY>/<MM>/<DD>/<key>.json, the record
 * that says a job is archived.
 */

struct job;

/*
 * Whether job (its key and start date) of content guid is archived under dir: its record
 * exists as a regular file, reached without a symlink below dir. A guid or key that is not a safe
 * path component is never looked up (false). On true, *ret_path (if not NULL) gets the record's
 * path (malloc'd). Returns 1, 0, or -ENOMEM.
 */
int archived_job_record(const char *dir, const char *guid, const struct job *job, char **ret_path);

/*
 * The same by key alone, across every day folder of the item: finds a job filed under a
 * date other than its start time's (the record's "date_source"). One openat per day folder.
 * Returns 1 (with *ret_path when not NULL), 0, or -errno.
 */
int archived_find_key(const char *dir, const char *guid, const char *key, char **ret_path);

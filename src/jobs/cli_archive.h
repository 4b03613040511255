#pragma once

/*
 * connect-jobs show, log, error and download answered from the archive, without Connect
 * (it may have swept the job long ago) and without a key. Each answer says
 * "from the archive (<path>)" on stderr. The job is found by key across its item's day
 * folders, so one filed under another date than its start time's (the record's
 * "date_source") is found too.
 *
 * From the archive:
 *   - show prints the record's "job" as the live show prints Connect's (-o json: that
 *     object);
 *   - log prints the last N lines of the archived log file. The file is the raw log
 *     ("YYYY/MM/DD HH:MM:SS.nnnnnnnnn [stdout] text" lines, times in UTC), so each line is
 *     split into timestamp, source and data as well as that format allows: a line without a
 *     timestamp has none (null), one without a "[stdout]"/"[stderr]" marker is "stdout";
 *     -o json writes {"source", "timestamp", "data"} a line, like Connect's LogEntry;
 *   - error prints <key>.error.json (none: the job has no error record);
 *   - download writes the decompressed log, streamed in bounded memory.
 */

struct cli;
struct cli_content;
struct cli_archived;

/*
 * Looks job key of ct up in the archive. Returns 0 with *ret set (found) or NULL (not
 * there, or no archive folder configured: ask Connect), or an exit status: 4 when the job
 * is not archived and no Connect server is configured to ask.
 */
int cli_archive_find(struct cli *c, const struct cli_content *ct, const char *key,
                     struct cli_archived **ret);
void cli_archived_free(struct cli_archived *a);

int cli_archive_show(struct cli *c, const struct cli_content *ct, const struct cli_archived *a);
int cli_archive_log(struct cli *c, const struct cli_archived *a, unsigned lines);
int cli_archive_error(struct cli *c, const struct cli_archived *a);
/* out_file NULL: stdout; else written atomically as the live download does. */
int cli_archive_download(struct cli *c, const struct cli_archived *a, const char *out_file);

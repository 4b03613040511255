#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/*
 * What the operator's command prints: text for people (aligned columns, times in the local
 * zone or UTC, status in words, durations) and one-JSON-object-a-line for log entries.
 * Strings from the server are printed with control characters escaped, so a hostile log
 * line cannot drive the terminal. Nothing here talks to the network.
 */

struct job;
struct json_object;
struct kill_order;
struct log_entry;

/* "2024-11-25 23:17:42" in the local zone, or in UTC; with_zone appends " CET"/" UTC". */
const char *output_time(int64_t epoch, bool utc, bool with_zone, char *buf, size_t size);

/* "42s", "3m 05s", "2h 03m", "3d 04h"; "-" for a negative span. buf: 16 bytes suffice. */
const char *output_duration(int64_t seconds, char *buf, size_t size);

/*
 * The one escaper for text a terminal must not interpret: s (len bytes) through put, with
 * the C0 controls but tab, DEL, the C1 controls (U+0080..U+009F, and a byte 0x80..0x9f that
 * is not part of a UTF-8 character) as \xNN; everything else, UTF-8 and other bytes,
 * unchanged.
 */
typedef void (*output_put_fn)(void *ctx, const char *s, size_t n);
void output_escape(const char *s, size_t len, output_put_fn put, void *ctx);
/* Whether f is a terminal, where server and log text is escaped (asked once for stdout). */
bool output_escapes(FILE *f);
/* For tests: 1 every FILE escapes, 0 none does, -1 (the default) as isatty() says. */
void output_force_escapes(int on);
/* Server or log text to f: through output_escape() when f is a terminal, else the bytes as
 * received (a pipe or a file gets what the server sent). */
void output_sanitized(FILE *f, const char *s, size_t len);

/*
 * The jobs of a list, in the order given, as aligned columns with a header: KEY, STATUS,
 * STARTED, DURATION (to now for an active job), EXIT, TAG, HOST, and ARCHIVED when
 * archived is not NULL. now is epoch seconds.
 */
void output_job_table(FILE *f, const struct job *jobs, size_t n, const bool *archived, bool utc,
                      int64_t now);

/* One job, a field a line. name may be NULL; archived_path NULL with has_archive: "no". */
void output_job_detail(FILE *f, const struct job *j, const char *guid, const char *name,
                       bool has_archive, const char *archived_path, bool utc, int64_t now);

/* "2024-12-06 20:09:29.948 stderr text" */
void output_log_entry_text(FILE *f, const struct log_entry *e, bool utc);
/* The entry as one compact JSON object and a newline. */
void output_log_entry_json(FILE *f, const struct log_entry *e);

/* "kill order registered for job KEY: RESULT (order GUID)" */
void output_kill_order(FILE *f, const struct kill_order *k);

/* A LoggedError (code, summary, help_url), a field a line; other shapes as compact JSON. */
void output_error_record(FILE *f, struct json_object *error);

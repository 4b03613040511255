#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Connect's jobs API: URLs, the job list and error record JSON, the "due" rule, and the
 * <key>.json record. No I/O happens here.
 */

struct json_object;

enum job_status {
        JOB_ACTIVE = 0,
        JOB_FINISHED = 1, /* exited, not yet finalized: left for a later poll */
        JOB_FINALIZED = 2,
        JOB_SKIPPED = 3,
};

/*
 * Where a job's archive date comes from: its start time (the contract's rule, for every job
 * that has a usable one), else its end time, else its queued time, else the day the daemon
 * first saw it (which the caller supplies: the job then has year 0).
 */
enum job_date_source {
        JOB_DATE_START_TIME,
        JOB_DATE_END_TIME,
        JOB_DATE_QUEUED_TIME,
        JOB_DATE_FIRST_SEEN,
};

struct job {
        char *key;  /* NULL when the element had no usable key */
        int status; /* -1 when missing or not an integer */
        enum job_date_source date_source;
        int64_t date_epoch;   /* UTC epoch seconds of the time the date comes from; 0 first seen */
        int year, month, day; /* 0 for JOB_DATE_FIRST_SEEN until the caller sets them */
        /* NULL when the element is usable; else why it is refused (a static string). */
        const char *invalid;
        /*
         * The element exactly as served: private to connect.c (the record, the detail
         * accessors and connect_job_done() use it). Program code never touches it; only the
         * unit tests and the fuzzer read it, to compare with the JSON the server sent.
         */
        struct json_object *obj;
};

struct job_list {
        struct job *jobs;
        size_t n_jobs;
};

/*
 * Parses a whole job list body held in memory (a bare JSON array). Returns -EBADMSG when the
 * body is not JSON or not an array (the whole list is unusable); otherwise every element
 * becomes a struct job, with `invalid` set on elements that must be skipped (unsafe or
 * missing key, missing status, not an object). The daemon streams its lists instead
 * (connect_stream_*); this is the reference the stream is tested against.
 */
int connect_parse_job_list(const char *body, size_t len, struct job_list *ret);
void connect_job_list_done(struct job_list *l);
/* Frees what a struct job owns and zeroes it. */
void connect_job_done(struct job *j);

/*
 * A job list parsed as it arrives, so that memory does not grow with the list: the scanner
 * checks the array's own syntax (brackets, commas, whitespace) and cuts out each element,
 * which is parsed on its own with the same strictness as connect_parse_job_list() (strict
 * RFC 8259, UTF-8, no NaN/Infinity, depth) and handed to the callback with its raw bytes.
 * The callback borrows both; it returns 0 to go on or -errno to fail the stream.
 *
 * The list is valid only when connect_stream_finish() returns 0: a caller must not act on
 * the elements it was handed before then (an invalid body refuses the whole list).
 */
#define CONNECT_JOB_MAX (1024u * 1024u) /* one element's bytes; more fails with -EFBIG */
struct connect_stream;
typedef int connect_stream_fn(void *userdata, const char *elem, size_t len, const struct job *j);

int connect_stream_new(connect_stream_fn *fn, void *userdata, struct connect_stream **ret);
void connect_stream_free(struct connect_stream *s);
/* Starts again from the first byte (an HTTP retry). */
void connect_stream_reset(struct connect_stream *s);
/* Returns 0, -EBADMSG (not a JSON array, or an element is not JSON), -EFBIG (an element over
 * CONNECT_JOB_MAX), -ENOMEM, or the callback's error. Once failed, it keeps failing. */
int connect_stream_feed(struct connect_stream *s, const void *data, size_t len);
/* The body is complete: 0 when it was a whole JSON array, else as connect_stream_feed(). */
int connect_stream_finish(struct connect_stream *s);
/* Elements handed to the callback so far. */
size_t connect_stream_count(const struct connect_stream *s);

/*
 * The same stream for an array of anything else (content items): each element is parsed
 * as above and handed over as a json_object (NULL for a JSON null), borrowed for the call.
 */
typedef int connect_object_fn(void *userdata, struct json_object *elem);
int connect_stream_new_objects(connect_object_fn *fn, void *userdata, struct connect_stream **ret);

/* A whole JSON body with the same strictness (RFC 8259, UTF-8, depth, finite numbers):
 * 0 with *ret owned by the caller, -EBADMSG or -ENOMEM. */
int connect_parse_json(const char *body, size_t len, struct json_object **ret);

/*
 * Parses one element of a job list again from its raw bytes, as the stream did (the daemon
 * keeps due jobs in a spool file and reads them back when they start). Returns -EBADMSG when
 * it is not JSON, -ENOMEM; on success *ret is filled (possibly with `invalid` set) and owned
 * by the caller (connect_job_done).
 */
int connect_parse_element(const char *elem, size_t len, struct job *ret);

/*
 * Parses a single-job body (get_job) like one element of a list: -EBADMSG when it is not a
 * JSON object; `invalid` says when a field the archive needs is unusable (the job can still
 * be shown).
 */
int connect_parse_job(const char *body, size_t len, struct job *ret);

/* "start_time", "end_time", "queued_time" or "first_seen", as the record says. */
const char *connect_date_source_to_string(enum job_date_source s);

/* A job is due when it is finalized or skipped; decided by status alone. */
bool connect_job_is_due(const struct job *j);

/*
 * Job keys must be safe path components (contract) and, beyond that, must not start with
 * '.' (the temporaries' namespace) nor end in ".error" (key "a.error" would otherwise own
 * "a.error.json", the error record of key "a").
 */
bool connect_job_key_is_safe(const char *key, size_t len);

/* Parses an error endpoint 200 body: must be a JSON object. Returns -EBADMSG otherwise. */
int connect_parse_error(const char *body, size_t len, struct json_object **ret);
/* Frees what connect_parse_error() returned (NULL is fine). */
void connect_error_free(struct json_object *error);

/* "<server>/__api__/v1/content/<guid>/jobs[/<key>/<what>]" with the key percent-encoded. */
int connect_jobs_url(const char *server, const char *guid, char **ret);
int connect_job_url(const char *server, const char *guid, const char *key, const char *what,
                    char **ret);

/*
 * Extracts a readable message from a Connect error body ({"code":N,"error":"..."}) into buf,
 * escaped and capped; falls back to "HTTP <status>" when the body is not that shape.
 * list_server is the server URL when the request was the job list (else NULL): a 404
 * there without Connect's JSON error code means the jobs API is not at that URL, and the
 * message says so ("HTTP 404: no jobs API at <url>/__api__/v1: ...").
 */
const char *connect_error_message(long status, const char *body, size_t len,
                                  const char *list_server, char *buf, size_t size);

struct record_info {
        const char *content_guid;
        const char *content_name; /* NULL -> null */
        int64_t archived_at;      /* epoch seconds */
        bool has_log;             /* false -> "log_bytes": null, "log_sha256": null */
        uint64_t log_bytes;
        const char *log_sha256; /* hex */
        uint64_t log_gzip_bytes;
};

/* Builds the <key>.json record: job (as served), error (or null), the info fields, and
 * date_source (where the folder's date comes from). error may be NULL. Returns a malloc'd string
 * ending in a newline. */
int connect_build_record(const struct job *j, struct json_object *error,
                         const struct record_info *info, char **ret);

/* Serializes an error record for <key>.error.json (ends in a newline). */
int connect_format_error(struct json_object *error, char **ret);

/*
 * The operator's operations (connect-jobs): one job, its log entries, the kill order, and
 * Connect's error bodies. Strict about the shapes they rely on; unknown fields are ignored.
 */

/* Connect's own error codes (the "code" of an error body, not the HTTP status). */
#define CONNECT_CODE_NOT_FOUND      4
#define CONNECT_CODE_JOB_NOT_ACTIVE 163

/* What a person sees of a job. Strings are borrowed from j->obj (NULL when absent or not a
 * string); times and the exit code are set only when the job has them. */
struct job_detail {
        const char *id, *tag, *hostname, *pid, *bundle_id, *run_as, *cluster, *image;
        const char *error, *skip_reason;
        bool has_end_time;
        int64_t end_time;
        bool has_exit_code;
        int64_t exit_code;
};
void connect_job_detail(const struct job *j, struct job_detail *ret);

/* "active", "finished", "finalized", "skipped", or "unknown". */
const char *connect_job_status_to_string(int status);

/* One LogEntry. source and data are borrowed from obj, which the entry holds a reference to. */
struct log_entry {
        const char *source;
        const char *data;
        size_t data_len;
        bool has_timestamp; /* false for a null or absent timestamp */
        int64_t ts_sec;     /* UTC epoch seconds */
        uint32_t ts_nsec;   /* Connect sends nanoseconds */
        struct json_object *obj;
};

struct log_entries {
        struct log_entry *entries;
        size_t n_entries;
};

/*
 * Reads one LogEntry object: "source" and "data" strings, "timestamp" an RFC 3339 string or
 * null. Takes a new reference to obj on success; -EBADMSG for any other shape.
 */
int connect_log_entry_from_json(struct json_object *obj, struct log_entry *ret);
void connect_log_entry_done(struct log_entry *e);

/* Parses a /log body, {"entries": [LogEntry, ...]}: -EBADMSG unless every entry is one. */
int connect_parse_log_entries(const char *body, size_t len, struct log_entries *ret);
void connect_log_entries_done(struct log_entries *l);

/* A KillJobOrder (DELETE's answer): job_key is required; the strings borrow from obj. */
struct kill_order {
        const char *job_key, *result, *guid;
        struct json_object *obj;
};
int connect_parse_kill_order(const char *body, size_t len, struct kill_order *ret);
void connect_kill_order_done(struct kill_order *k);

/*
 * Connect's error body, {"code": N, "error": "...", "payload": ...}. -EBADMSG when the body
 * is not that shape: a plain-text "404 page not found" (an unknown route, i.e. an older
 * server), a proxy's HTML page. message is escaped and capped.
 */
struct connect_api_error {
        int64_t code;
        char message[160];
};
int connect_parse_api_error(const char *body, size_t len, struct connect_api_error *ret);

/* ".../jobs/<key>/log?maxLogLines=<max_lines>" */
int connect_job_log_url(const char *server, const char *guid, const char *key, unsigned max_lines,
                        char **ret);

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

struct job {
        char *key;          /* NULL when the element had no usable key */
        int status;         /* -1 when missing or not an integer */
        int64_t start_time; /* UTC epoch seconds */
        int year, month, day;
        /* NULL when the element is usable; else why it is refused (a static string). */
        const char *invalid;
        struct json_object *obj; /* the element exactly as served; a reference we own */
};

struct job_list {
        struct job *jobs;
        size_t n_jobs;
};

/*
 * Parses a job list body (a bare JSON array). Returns -EBADMSG when the body is not JSON
 * or not an array (the whole list is unusable); otherwise every element becomes a struct
 * job, with `invalid` set on elements that must be skipped (unsafe or missing key, missing
 * status or start time, not an object).
 */
int connect_parse_job_list(const char *body, size_t len, struct job_list *ret);
void connect_job_list_done(struct job_list *l);

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

/* Builds the <key>.json record: job (as served), error (or null), and the info fields.
 * error may be NULL. Returns a malloc'd string ending in a newline. */
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

/*
 * Parses a single-job body (get_job) like one element of a list: -EBADMSG when it is not a
 * JSON object; `invalid` says when a field the archive needs is unusable (the job can still
 * be shown). connect_job_done() releases it.
 */
int connect_parse_job(const char *body, size_t len, struct job *ret);
void connect_job_done(struct job *j);

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

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

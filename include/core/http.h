#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The HTTP engine: one libcurl multi handle shared by every request (so connections are
 * reused), our own FIFO queue capped at max_concurrent transfers, and the retry policy.
 * Only http.c includes <curl/curl.h>.
 */

struct http_engine;

/*
 * libcurl's process-wide setup and teardown (curl_global_init/cleanup): once each, from
 * main, before and after every engine and while no other thread runs. Returns 0 or -EIO.
 */
int http_global_init(void);
void http_global_cleanup(void);

struct http_options {
        const char *api_key; /* copied into the Authorization header; never logged */
        /*
         * Instead of api_key (which is then NULL): AWS Signature Version 4 on every request,
         * through libcurl (CURLOPT_AWS_SIGV4 with this provider string, "aws:amz:REGION:s3",
         * and CURLOPT_USERPWD "<access key id>:<secret>", copied and wiped on free). The
         * caller writes URLs in SigV4's canonical form and sends x-amz-content-sha256.
         */
        const char *aws_sigv4;
        const char *aws_userpwd;
        const char *ca_file; /* NULL for the system store */
        bool verify_tls;
        unsigned timeout_seconds; /* connect timeout, and the stall (low-speed) window */
        unsigned max_concurrent;
        unsigned max_attempts;      /* total tries for a retryable failure, >= 1 */
        uint64_t backoff_base_usec; /* first retry waits up to this (full jitter) */
        uint64_t backoff_cap_usec;  /* no wait exceeds this, except a server's Retry-After */
        bool verbose;               /* libcurl's debug output, with the key redacted */
};

/* What the owner of a request makes of its outcome; http_result_classify() decides. */
enum http_outcome {
        HTTP_OK,     /* 2xx */
        HTTP_GONE,   /* 404: the object does not exist (or no longer) */
        HTTP_AUTH,   /* 401/403: the key is wrong or lacks rights */
        HTTP_RETRY,  /* transient: 408, 429, 5xx, timeouts, resets, truncation */
        HTTP_FAILED, /* anything else; retrying would not help */
};

struct http_result {
        int curl_code;            /* CURLcode, 0 on a completed exchange */
        long status;              /* HTTP status, 0 when no response arrived */
        int sink_error;           /* -errno from the body sink, 0 if none */
        unsigned attempts;        /* tries made */
        int64_t retry_after_usec; /* from Retry-After, -1 when absent */
        char etag[128];           /* the response's ETag header as sent (quotes included), or "" */
        enum http_outcome outcome;
        char detail[256]; /* curl's error text or the server's error message, escaped */
        /* The whole body for requests without a sink (capped); the error body otherwise. */
        char *body;
        size_t body_len;
};

/*
 * Where a 2xx body goes. begin() is called once per attempt before the first byte (also for
 * an empty 2xx body), write() with each piece, abort() when an attempt that began fails
 * (truncated, reset, stalled) before a retry or the final report. Return -errno to fail.
 */
struct http_sink {
        int (*begin)(void *userdata);
        int (*write)(void *userdata, const void *data, size_t len);
        void (*abort)(void *userdata);
};

/* Called once per request, when it is done for good (success or final failure). The result
 * and its body are only valid during the call. */
typedef void http_done_fn(void *userdata, const struct http_result *res);

int http_engine_new(const struct http_options *opts, struct http_engine **ret);
void http_engine_free(struct http_engine *e);
/* New options for requests submitted from now on (a reload); transfers in flight finish
 * with the options they started with. */
int http_engine_reconfigure(struct http_engine *e, const struct http_options *opts);

/*
 * Queues a GET of url. sink NULL: the 2xx body is collected in memory (capped at
 * HTTP_BODY_MAX; more is a failure) and handed to done. The URL is copied.
 */
#define HTTP_BODY_MAX (64u * 1024u * 1024u)
int http_get(struct http_engine *e, const char *url, const struct http_sink *sink,
             http_done_fn *done, void *userdata);

/* What http_submit() can do beyond http_get(): the operator's command needs these. */
enum http_method {
        HTTP_METHOD_GET,
        HTTP_METHOD_DELETE,
        HTTP_METHOD_PUT,  /* with a body (below), always with its Content-Length */
        HTTP_METHOD_HEAD, /* no body comes back: done() sees the status and headers */
        HTTP_METHOD_POST, /* with a body (below), possibly empty */
};

struct http_call {
        const char *url; /* copied */
        enum http_method method;
        /*
         * A long-lived response (a log that is followed live): no stall timeout while the
         * stream is open (a quiet job is not a dead server), TCP keep-alive probes every
         * HTTP_STREAM_KEEPALIVE_SECONDS instead, and the sink's begin() is called as soon as
         * the 2xx headers are in rather than at the first byte.
         */
        bool stream;
        const struct http_sink *sink; /* NULL: collect the body as http_get() does */
        /* Extra request headers ("Name: value"), NULL-terminated; copied. */
        const char *const *headers;
        /*
         * The request body of PUT and POST, sent with a Content-Length (never chunked):
         * from memory (body, body_len; copied), or with body_is_fd the body_len bytes of
         * body_fd from body_offset, read with pread (so the fd's offset is not used, and a
         * retry reads them again); the fd is borrowed and must stay open until done().
         */
        const void *body;
        bool body_is_fd;
        int body_fd;
        uint64_t body_offset;
        uint64_t body_len;
};
#define HTTP_STREAM_KEEPALIVE_SECONDS 15

/* Queues call; like http_get() otherwise (same retries, same done callback). */
int http_submit(struct http_engine *e, const struct http_call *call, http_done_fn *done,
                void *userdata);

/*
 * Runs the engine for at most timeout_usec, waking early for transfers, due retries, or
 * when one of the n_fds extra_fds (at most 4) becomes readable. Completed requests call
 * their done callbacks from inside this function. Returns the number of requests completed,
 * or -errno.
 */
#define HTTP_EXTRA_FDS_MAX 4
int http_engine_run(struct http_engine *e, uint64_t timeout_usec, const int *extra_fds,
                    size_t n_fds);

/* Requests queued, waiting for a retry, or in flight. */
size_t http_engine_pending(const struct http_engine *e);

/* Cancels every request: sinks are aborted and done is called with HTTP_FAILED / ECANCELED. */
void http_engine_cancel_all(struct http_engine *e);

/* The retry policy, in one place. */
enum http_outcome http_result_classify(long status, int curl_code, int sink_error);
/* The wait before attempt number `attempt` (1 = first retry): full jitter, capped. */
uint64_t http_backoff_usec(const struct http_options *opts, unsigned attempt, uint64_t rnd);
/* Parses a Retry-After value (delta-seconds or HTTP-date); -1 if invalid. */
int64_t http_parse_retry_after(const char *value, int64_t now_epoch);

const char *http_outcome_to_string(enum http_outcome o);

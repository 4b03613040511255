#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"

/*
 * A blocking Connect client for the operator's command: the seven jobs operations on top of
 * the daemon's HTTP engine (same retries, same TLS settings, same redacted -v output).
 * Requests run one at a time from the caller's point of view, but a stream (/tail) keeps
 * flowing while the caller waits for another request. SIGINT and SIGTERM, blocked by the
 * caller and read from signal_fd, cancel everything and make the waits return -EINTR.
 */

struct config;
struct client;

struct client_reply {
        enum http_outcome outcome;
        long status;    /* 0 when no response arrived */
        int curl_code;  /* CURLcode, 0 on a completed exchange */
        int sink_error; /* -errno from the sink, 0 if none */
        /* The 2xx body of a request without a sink, or the start of an error body. */
        char *body;
        size_t body_len;
        bool has_api_error; /* the error body is Connect's {"code": N, "error": "..."} */
        int64_t api_code;
        char api_message[160]; /* escaped */
        char detail[256];      /* what went wrong, in words (curl's text or "HTTP 503") */
};
void client_reply_done(struct client_reply *r);

/* One request; the caller owns it, and it must stay put until done. */
struct client_call {
        bool done;
        struct client_reply reply;
        const struct http_sink *sink; /* called with sink_userdata */
        void *sink_userdata;
};

/* Settings come from c (server URL, key, TLS, timeout), which must outlive nothing: they
 * are copied. signal_fd may be -1. */
int client_new(const struct config *c, bool verbose, int signal_fd, struct client **ret);
void client_free(struct client *cl);
void client_freep(struct client **cl);

/* The signal that interrupted the client (SIGINT, SIGTERM), 0 if none. */
int client_interrupted(const struct client *cl);

/* Starts a request; the call's reply is filled when done. */
int client_start(struct client *cl, enum http_method method, const char *url, bool stream,
                 struct client_call *call);
/* Runs until call is done. Returns 0 (look at call->reply), -EINTR or -errno. */
int client_wait(struct client *cl, struct client_call *call);
/* Ends every request now: their calls are done, with HTTP_FAILED / -ECANCELED. */
void client_cancel(struct client *cl);
/* Runs the engine for at most timeout_usec. Returns 0, -EINTR or -errno. */
int client_run(struct client *cl, uint64_t timeout_usec);

/*
 * The operations, each to completion. Return 0 when an answer came (success or not: see
 * reply->outcome and reply->status), -EINTR or -errno. reply is filled on 0 and must be
 * released with client_reply_done().
 */
int client_get_jobs(struct client *cl, const char *guid, struct client_reply *reply);
/* Any GET (the content API): the body to sink as it comes, or collected when sink is NULL. */
int client_get(struct client *cl, const char *url, const struct http_sink *sink,
               void *sink_userdata, struct client_reply *reply);
/* The server URL the client talks to (no trailing '/'). */
const char *client_server(const struct client *cl);
int client_get_job(struct client *cl, const char *guid, const char *key,
                   struct client_reply *reply);
int client_job_logs(struct client *cl, const char *guid, const char *key, unsigned max_lines,
                    struct client_reply *reply);
int client_job_error(struct client *cl, const char *guid, const char *key,
                     struct client_reply *reply);
int client_kill_job(struct client *cl, const char *guid, const char *key,
                    struct client_reply *reply);
/* The whole log file into sink (memory stays flat). */
int client_job_download_log(struct client *cl, const char *guid, const char *key,
                            const struct http_sink *sink, void *sink_userdata,
                            struct client_reply *reply);
/* Starts following the log (a stream that closes when the job is finalized); wait for it
 * with client_wait() or client_run(). */
int client_job_tail_log_start(struct client *cl, const char *guid, const char *key,
                              struct client_call *call);

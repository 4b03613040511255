#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "client.h"
#include "config.h"
#include "connect.h"
#include "macro.h"
#include "util.h"

/* As the daemon: 4 tries, full-jitter backoff from 0.5 s up to 30 s (or Retry-After). */
#define CLIENT_MAX_ATTEMPTS 4
#define CLIENT_BACKOFF_BASE (500 * USEC_PER_MSEC)
#define CLIENT_BACKOFF_CAP  (30 * USEC_PER_SEC)
/* A stream, a /log and a job request at once, while following a log. */
#define CLIENT_MAX_CONCURRENT 4
/* How long one engine turn may sleep; signals wake it earlier. */
#define CLIENT_TURN_USEC (1 * USEC_PER_SEC)

struct client {
        struct http_engine *http;
        char *server;
        int signal_fd;
        int interrupted;
};

void client_reply_done(struct client_reply *r)
{
        free(r->body);
        *r = (struct client_reply){0};
}

int client_new(const struct config *c, bool verbose, int signal_fd, struct client **ret)
{
        struct http_options o = {
                .api_key = c->api_key,
                .ca_file = c->ca_file,
                .verify_tls = c->verify_tls,
                .timeout_seconds = c->timeout_seconds,
                .max_concurrent = CLIENT_MAX_CONCURRENT,
                .max_attempts = CLIENT_MAX_ATTEMPTS,
                .backoff_base_usec = CLIENT_BACKOFF_BASE,
                .backoff_cap_usec = CLIENT_BACKOFF_CAP,
                .verbose = verbose,
        };
        struct client *cl;
        int r;

        if (!c->server_url || !c->api_key)
                return -EINVAL;
        cl = calloc(1, sizeof(*cl));
        if (!cl)
                return -ENOMEM;
        cl->signal_fd = signal_fd;
        cl->server = strdup(c->server_url);
        if (!cl->server) {
                client_free(cl);
                return -ENOMEM;
        }
        r = http_engine_new(&o, &cl->http);
        if (r < 0) {
                client_free(cl);
                return r;
        }
        *ret = cl;
        return 0;
}

void client_free(struct client *cl)
{
        if (!cl)
                return;
        http_engine_free(cl->http); /* cancels what is still running */
        free(cl->server);
        free(cl);
}

void client_freep(struct client **cl)
{
        client_free(*cl);
}

int client_interrupted(const struct client *cl)
{
        return cl->interrupted;
}

static void on_done(void *userdata, const struct http_result *res)
{
        struct client_call *call = userdata;
        struct client_reply *r = &call->reply;
        struct connect_api_error err;

        *r = (struct client_reply){
                .outcome = res->outcome,
                .status = res->status,
                .curl_code = res->curl_code,
                .sink_error = res->sink_error,
                .api_code = -1,
        };
        (void) snprintf(r->detail, sizeof(r->detail), "%s", res->detail);
        if (res->body && res->body_len > 0) {
                r->body = malloc(res->body_len + 1);
                if (r->body) {
                        memcpy(r->body, res->body, res->body_len);
                        r->body[res->body_len] = '\0';
                        r->body_len = res->body_len;
                } else {
                        r->outcome = HTTP_FAILED;
                        r->sink_error = -ENOMEM;
                        (void) snprintf(r->detail, sizeof(r->detail), "out of memory");
                }
        }
        if ((res->status < 200 || res->status >= 300) && r->body &&
            connect_parse_api_error(r->body, r->body_len, &err) == 0) {
                r->has_api_error = true;
                r->api_code = err.code;
                (void) snprintf(r->api_message, sizeof(r->api_message), "%s", err.message);
        }
        call->done = true;
}

/* The engine hands the call to the sink; the caller's sink wants its own userdata. */
static int call_begin(void *userdata)
{
        struct client_call *call = userdata;

        return call->sink->begin ? call->sink->begin(call->sink_userdata) : 0;
}

static int call_write(void *userdata, const void *data, size_t len)
{
        struct client_call *call = userdata;

        return call->sink->write(call->sink_userdata, data, len);
}

static void call_abort(void *userdata)
{
        struct client_call *call = userdata;

        if (call->sink->abort)
                call->sink->abort(call->sink_userdata);
}

static const struct http_sink call_sink = {
        .begin = call_begin,
        .write = call_write,
        .abort = call_abort,
};

int client_start(struct client *cl, enum http_method method, const char *url, bool stream,
                 struct client_call *call)
{
        struct http_call hc = {
                .url = url,
                .method = method,
                .stream = stream,
                .sink = call->sink ? &call_sink : NULL,
        };

        if (cl->interrupted)
                return -EINTR;
        call->done = false;
        return http_submit(cl->http, &hc, on_done, call);
}

/* Reads pending signals; SIGINT/SIGTERM cancel every request. */
static int check_signals(struct client *cl)
{
        struct signalfd_siginfo si;

        if (cl->signal_fd < 0)
                return 0;
        while (read(cl->signal_fd, &si, sizeof(si)) == (ssize_t) sizeof(si))
                if (si.ssi_signo == SIGINT || si.ssi_signo == SIGTERM)
                        cl->interrupted = (int) si.ssi_signo;
        if (!cl->interrupted)
                return 0;
        http_engine_cancel_all(cl->http);
        return -EINTR;
}

void client_cancel(struct client *cl)
{
        http_engine_cancel_all(cl->http);
}

int client_run(struct client *cl, uint64_t timeout_usec)
{
        int r;

        if (cl->interrupted)
                return -EINTR;
        r = http_engine_run(cl->http, timeout_usec, &cl->signal_fd, cl->signal_fd >= 0 ? 1 : 0);
        if (r < 0)
                return r;
        return check_signals(cl);
}

int client_wait(struct client *cl, struct client_call *call)
{
        int r;

        while (!call->done) {
                r = client_run(cl, CLIENT_TURN_USEC);
                if (r < 0)
                        return r;
        }
        return 0;
}

/*
 * A 2xx body collected in memory up to a cap that fits what is asked for: the engine's own
 * collection holds up to HTTP_BODY_MAX and the reply then copied it, so a hostile 500 MB
 * answer to `show` cost twice 64 MiB before it was refused. Here the buffer is the reply's
 * (no copy), and one job is refused past CONNECT_JOB_MAX, as the daemon refuses it.
 */
struct collector {
        char *data;
        size_t len, cap, max;
};

static int collect_begin(void *userdata)
{
        struct collector *b = userdata;

        b->len = 0;
        return 0;
}

static int collect_write(void *userdata, const void *data, size_t len)
{
        struct collector *b = userdata;

        if (len > b->max - b->len)
                return -EFBIG;
        return buf_append(&b->data, &b->len, &b->cap, data, len, 4096);
}

static void collect_abort(void *userdata)
{
        struct collector *b = userdata;

        b->len = 0;
}

static const struct http_sink collect_sink = {
        .begin = collect_begin,
        .write = collect_write,
        .abort = collect_abort,
};

static int request(struct client *cl, enum http_method method, const char *url,
                   const struct http_sink *sink, void *sink_userdata, size_t max_body,
                   struct client_reply *reply)
{
        struct collector body = {.max = max_body};
        struct client_call call = {.sink = sink, .sink_userdata = sink_userdata};
        int r;

        if (!sink) {
                call.sink = &collect_sink;
                call.sink_userdata = &body;
        }
        r = client_start(cl, method, url, false, &call);
        if (r < 0)
                return r;
        r = client_wait(cl, &call);
        if (r < 0) {
                /* The call lives on this stack: it must not outlive the wait. */
                if (!call.done)
                        client_cancel(cl);
                client_reply_done(&call.reply);
                free(body.data);
                return r;
        }
        if (!sink) {
                if (call.reply.sink_error == -EFBIG)
                        (void) snprintf(call.reply.detail, sizeof(call.reply.detail),
                                        "the answer is larger than %zu MiB, refused",
                                        max_body / (1024u * 1024u));
                if (call.reply.outcome == HTTP_OK) {
                        /* An empty body is no body, as the engine's collection gave it. */
                        free(call.reply.body);
                        call.reply.body = body.len ? body.data : NULL;
                        call.reply.body_len = body.len;
                        if (!body.len)
                                free(body.data);
                        body.data = NULL;
                }
                free(body.data);
        }
        *reply = call.reply;
        return 0;
}

int client_get(struct client *cl, const char *url, const struct http_sink *sink,
               void *sink_userdata, struct client_reply *reply)
{
        return request(cl, HTTP_METHOD_GET, url, sink, sink_userdata, HTTP_BODY_MAX, reply);
}

const char *client_server(const struct client *cl)
{
        return cl->server;
}

int client_get_jobs(struct client *cl, const char *guid, struct client_reply *reply)
{
        _cleanup_free_ char *url = NULL;
        int r = connect_jobs_url(cl->server, guid, &url);

        return r < 0 ? r : request(cl, HTTP_METHOD_GET, url, NULL, NULL, HTTP_BODY_MAX, reply);
}

int client_get_job(struct client *cl, const char *guid, const char *key, struct client_reply *reply)
{
        _cleanup_free_ char *url = NULL;
        int r = connect_job_url(cl->server, guid, key, NULL, &url);

        return r < 0 ? r : request(cl, HTTP_METHOD_GET, url, NULL, NULL, CONNECT_JOB_MAX, reply);
}

int client_job_logs(struct client *cl, const char *guid, const char *key, unsigned max_lines,
                    struct client_reply *reply)
{
        _cleanup_free_ char *url = NULL;
        int r = connect_job_log_url(cl->server, guid, key, max_lines, &url);

        return r < 0 ? r : request(cl, HTTP_METHOD_GET, url, NULL, NULL, HTTP_BODY_MAX, reply);
}

int client_job_error(struct client *cl, const char *guid, const char *key,
                     struct client_reply *reply)
{
        _cleanup_free_ char *url = NULL;
        int r = connect_job_url(cl->server, guid, key, "error", &url);

        return r < 0 ? r : request(cl, HTTP_METHOD_GET, url, NULL, NULL, HTTP_BODY_MAX, reply);
}

int client_kill_job(struct client *cl, const char *guid, const char *key,
                    struct client_reply *reply)
{
        _cleanup_free_ char *url = NULL;
        int r = connect_job_url(cl->server, guid, key, NULL, &url);

        return r < 0 ? r : request(cl, HTTP_METHOD_DELETE, url, NULL, NULL, CONNECT_JOB_MAX, reply);
}

int client_job_download_log(struct client *cl, const char *guid, const char *key,
                            const struct http_sink *sink, void *sink_userdata,
                            struct client_reply *reply)
{
        _cleanup_free_ char *url = NULL;
        int r = connect_job_url(cl->server, guid, key, "download", &url);

        return r < 0 ? r : request(cl, HTTP_METHOD_GET, url, sink, sink_userdata, 0, reply);
}

int client_job_tail_log_start(struct client *cl, const char *guid, const char *key,
                              struct client_call *call)
{
        _cleanup_free_ char *url = NULL;
        int r = connect_job_url(cl->server, guid, key, "tail", &url);

        return r < 0 ? r : client_start(cl, HTTP_METHOD_GET, url, true, call);
}

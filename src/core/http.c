#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include <curl/curl.h>

#include "http.h"
#include "log.h"
#include "util.h"
#include "version.h"

/* Error bodies are kept only to explain a failure; more than this is dropped. */
#define ERROR_BODY_MAX (16u * 1024u)
/* A server may ask for a long pause, but not for one longer than this. */
#define RETRY_AFTER_MAX_USEC (600 * USEC_PER_SEC)

/* The request headers, shared by every request made under one set of options. A reload
 * swaps in a new set while requests made under the old one finish with it. */
struct http_headers {
        unsigned refs;
        struct curl_slist *list; /* holds the Authorization header: wiped on free */
};

struct http_request {
        struct http_engine *engine;
        struct http_headers *headers;
        struct http_request *next; /* in the wait queue or the retry list */
        char *url;
        struct http_sink sink;
        bool has_sink;
        http_done_fn *done;
        void *userdata;
        enum http_method method;
        bool stream;
        /* Its own header list (the engine's plus the call's extra headers), or NULL. */
        struct curl_slist *own_headers;
        /* The request body (PUT, POST): a copy in memory, or a region of a borrowed fd. */
        char *body_copy;
        bool up_is_fd;
        int up_fd;
        uint64_t up_offset, up_len;
        uint64_t up_pos; /* bytes of the body sent in this attempt */
        CURL *easy;
        unsigned attempts;
        uint64_t due_usec; /* when a delayed retry may start */

        /* Per attempt: */
        long status;
        bool began;
        int sink_error;
        int64_t retry_after_usec;
        char etag[128];
        char *body;
        size_t body_len, body_cap;
        char errbuf[CURL_ERROR_SIZE];
};

struct http_engine {
        struct http_options opts;
        CURLM *multi;
        struct http_headers *headers;
        struct http_request *queue_head, *queue_tail;
        struct http_request *delayed;
        struct http_request **running; /* running_cap slots, n_running used */
        size_t running_cap;
        size_t n_running, n_queued, n_delayed;
        char *ca_file;
        char *aws_sigv4;   /* the SigV4 provider string, or NULL */
        char *aws_userpwd; /* "<id>:<secret>", wiped on free */
        uint64_t rnd_state;
        bool cancelling;
};

int http_global_init(void)
{
        return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -EIO;
}

void http_global_cleanup(void)
{
        curl_global_cleanup();
}

const char *http_outcome_to_string(enum http_outcome o)
{
        switch (o) {
        case HTTP_OK:
                return "ok";
        case HTTP_GONE:
                return "gone";
        case HTTP_AUTH:
                return "unauthorized";
        case HTTP_RETRY:
                return "transient failure";
        case HTTP_FAILED:
                return "failed";
        }
        return "unknown";
}

/*
 * The retry policy. Anything that a second try could plausibly fix is HTTP_RETRY: the
 * server's "try later" statuses (408, 429, 5xx) and transport failures (refused, reset,
 * timed out, stalled, truncated). A failure of our own sink (disk full, bad permissions) or
 * an oversized body is not fixed by hammering the server again, so it is HTTP_FAILED and
 * the job waits for a later cycle.
 */
enum http_outcome http_result_classify(long status, int curl_code, int sink_error)
{
        if (sink_error < 0)
                return HTTP_FAILED;
        switch ((CURLcode) curl_code) {
        case CURLE_OK:
                break;
        case CURLE_COULDNT_RESOLVE_PROXY:
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_CONNECT:
        case CURLE_OPERATION_TIMEDOUT:
        case CURLE_PARTIAL_FILE:
        case CURLE_GOT_NOTHING:
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_HTTP2:
        case CURLE_HTTP2_STREAM:
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_BAD_CONTENT_ENCODING:
                return HTTP_RETRY;
        default:
                return HTTP_FAILED;
        }
        if (status >= 200 && status < 300)
                return HTTP_OK;
        if (status == 404 || status == 410)
                return HTTP_GONE;
        if (status == 401 || status == 403)
                return HTTP_AUTH;
        if (status == 408 || status == 429 || status >= 500)
                return HTTP_RETRY;
        return HTTP_FAILED;
}

uint64_t http_backoff_usec(const struct http_options *opts, unsigned attempt, uint64_t rnd)
{
        uint64_t ceiling = opts->backoff_base_usec;

        for (unsigned i = 1; i < attempt && ceiling < opts->backoff_cap_usec; i++)
                ceiling *= 2;
        if (ceiling > opts->backoff_cap_usec)
                ceiling = opts->backoff_cap_usec;
        /* Full jitter: uniform in [0, ceiling], so clients that failed together spread out. */
        return ceiling == 0 ? 0 : rnd % (ceiling + 1);
}

int64_t http_parse_retry_after(const char *value, int64_t now_epoch)
{
        const char *p = value;
        struct tm tm = {0};
        char *end;

        while (*p == ' ' || *p == '\t')
                p++;
        if (*p >= '0' && *p <= '9') {
                errno = 0;
                unsigned long long secs = strtoull(p, &end, 10);
                while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
                        end++;
                if (errno != 0 || *end != '\0' || secs > 86400)
                        return -1;
                return (int64_t) secs * (int64_t) USEC_PER_SEC;
        }
        /* IMF-fixdate, the only form servers may send: "Sun, 06 Nov 1994 08:49:37 GMT". */
        end = strptime(p, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        if (!end)
                return -1;
        while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
                end++;
        if (*end != '\0')
                return -1;
        int64_t when = (int64_t) timegm(&tm);
        if (when <= now_epoch)
                return 0;
        if (when - now_epoch > 86400)
                return -1;
        return (when - now_epoch) * (int64_t) USEC_PER_SEC;
}

/* Wipes a secret string and frees it. */
static void apikey_wipe_free(char *s)
{
        if (!s)
                return;
        explicit_bzero(s, strlen(s));
        free(s);
}

static uint64_t next_random(struct http_engine *e)
{
        /* xorshift64*: jitter needs spread, not secrecy. */
        uint64_t x = e->rnd_state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        e->rnd_state = x;
        return x * UINT64_C(2685821657736338717);
}

static void request_reset_attempt(struct http_request *req)
{
        req->status = 0;
        req->began = false;
        req->sink_error = 0;
        req->retry_after_usec = -1;
        req->etag[0] = '\0';
        req->up_pos = 0;
        req->body_len = 0;
        req->errbuf[0] = '\0';
}

static void slist_free_wiped(struct curl_slist *list)
{
        for (struct curl_slist *l = list; l; l = l->next)
                explicit_bzero(l->data, strlen(l->data));
        curl_slist_free_all(list);
}

static void headers_unref(struct http_headers *h)
{
        if (!h || --h->refs > 0)
                return;
        slist_free_wiped(h->list);
        free(h);
}

/* api_key NULL: requests signed with SigV4, which needs no header of ours. */
static int headers_new(const char *api_key, struct http_headers **ret)
{
        struct http_headers *h = calloc(1, sizeof(*h));
        struct curl_slist *l;
        char *auth;

        if (!h)
                return -ENOMEM;
        h->refs = 1;
        if (!api_key) {
                *ret = h;
                return 0;
        }
        if (asprintf(&auth, "Authorization: Key %s", api_key) < 0) {
                free(h);
                return -ENOMEM;
        }
        l = curl_slist_append(NULL, auth);
        explicit_bzero(auth, strlen(auth));
        free(auth);
        if (!l) {
                free(h);
                return -ENOMEM;
        }
        h->list = l;
        l = curl_slist_append(h->list, "Accept: application/json, text/plain, */*");
        if (!l) {
                headers_unref(h);
                return -ENOMEM;
        }
        *ret = h;
        return 0;
}

static void request_free(struct http_request *req)
{
        if (!req)
                return;
        if (req->easy)
                curl_easy_cleanup(req->easy);
        headers_unref(req->headers);
        slist_free_wiped(req->own_headers);
        free(req->body_copy);
        free(req->body);
        free(req->url);
        free(req);
}

static bool status_is_success(long status)
{
        return status >= 200 && status < 300;
}

static int body_append(struct http_request *req, const char *data, size_t len, size_t max)
{
        if (req->body_len + len > max)
                return -EFBIG;
        return buf_append(&req->body, &req->body_len, &req->body_cap, data, len, 4096);
}

static int sink_begin(struct http_request *req)
{
        int r = 0;

        if (req->began)
                return 0;
        if (req->sink.begin)
                r = req->sink.begin(req->userdata);
        if (r >= 0)
                req->began = true;
        return r;
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *userdata)
{
        struct http_request *req = userdata;
        size_t len = size * nmemb;
        int r;

        if (req->status == 0)
                (void) curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &req->status);

        if (!status_is_success(req->status)) {
                /* Keep the start of an error body for the report; drop the rest. */
                if (req->body_len < ERROR_BODY_MAX) {
                        size_t room = ERROR_BODY_MAX - req->body_len;
                        (void) body_append(req, data, len < room ? len : room, ERROR_BODY_MAX);
                }
                return len;
        }
        if (!req->has_sink) {
                r = body_append(req, data, len, HTTP_BODY_MAX);
        } else {
                r = sink_begin(req);
                if (r >= 0)
                        r = req->sink.write(req->userdata, data, len);
        }
        if (r < 0) {
                req->sink_error = r;
                return CURL_WRITEFUNC_ERROR;
        }
        return len;
}

/* For a stream: the blank line that ends a 2xx header block starts the sink at once. */
static int stream_headers_done(struct http_request *req, const char *buffer, size_t len)
{
        long status = 0;
        int r;

        if (!req->has_sink || !((len == 2 && buffer[0] == '\r' && buffer[1] == '\n') ||
                                (len == 1 && buffer[0] == '\n')))
                return 0;
        (void) curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &status);
        if (!status_is_success(status))
                return 0;
        req->status = status;
        r = sink_begin(req);
        if (r < 0)
                req->sink_error = r;
        return r;
}

static size_t on_header(char *buffer, size_t size, size_t nitems, void *userdata)
{
        struct http_request *req = userdata;
        size_t len = size * nitems;
        static const char name[] = "retry-after:";

        if (req->stream && stream_headers_done(req, buffer, len) < 0)
                return 0; /* aborts the transfer; sink_error says why */

        /* A new status line starts a new header block (after a 100 Continue, say). */
        if (len >= 5 && memcmp(buffer, "HTTP/", 5) == 0) {
                req->retry_after_usec = -1;
                req->status = 0;
                return len;
        }
        if (len > 5 && len < sizeof(req->etag) + 5 && strncasecmp(buffer, "etag:", 5) == 0) {
                size_t start = 5, end = len;
                while (start < end && (buffer[start] == ' ' || buffer[start] == '\t'))
                        start++;
                while (end > start && (buffer[end - 1] == '\r' || buffer[end - 1] == '\n' ||
                                       buffer[end - 1] == ' '))
                        end--;
                memcpy(req->etag, buffer + start, end - start);
                req->etag[end - start] = '\0';
                return len;
        }
        if (len > sizeof(name) - 1 && len < 256 &&
            strncasecmp(buffer, name, sizeof(name) - 1) == 0) {
                char value[256];
                memcpy(value, buffer + sizeof(name) - 1, len - (sizeof(name) - 1));
                value[len - (sizeof(name) - 1)] = '\0';
                req->retry_after_usec = http_parse_retry_after(
                        value, (int64_t) (now_usec(CLOCK_REALTIME) / USEC_PER_SEC));
        }
        return len;
}

/* libcurl's verbose output, with the Authorization header blanked out. */
static int on_debug(CURL *easy, curl_infotype type, char *data, size_t size, void *userdata)
{
        char line[512];
        size_t n;

        if (type != CURLINFO_TEXT && type != CURLINFO_HEADER_IN && type != CURLINFO_HEADER_OUT)
                return 0;
        const char *dir = type == CURLINFO_TEXT ? "*" : type == CURLINFO_HEADER_IN ? "<" : ">";
        while (size > 0) {
                const char *eol = memchr(data, '\n', size);
                n = eol ? (size_t) (eol - data) + 1 : size;
                size_t take = n;
                while (take > 0 && (data[take - 1] == '\n' || data[take - 1] == '\r'))
                        take--;
                if (take > 0) {
                        char raw[400];
                        size_t m = take < sizeof(raw) - 1 ? take : sizeof(raw) - 1;
                        memcpy(raw, data, m);
                        raw[m] = '\0';
                        if (strncasecmp(raw, "authorization:", 14) == 0)
                                (void) snprintf(raw, sizeof(raw), "Authorization: <redacted>");
                        log_printf(LOG_DEBUG, "curl %s %s", dir,
                                   log_escape(raw, line, sizeof(line)));
                }
                data += n;
                size -= n;
        }
        return 0;
}

/*
 * The operator's requests: DELETE, and streams. A stream has no stall timeout (a quiet job
 * is not a dead server); keep-alive probes find a dead peer instead.
 */
static size_t on_read(char *buffer, size_t size, size_t nitems, void *userdata)
{
        struct http_request *req = userdata;
        uint64_t left = req->up_len - req->up_pos;
        size_t want = size * nitems;

        if (want > left)
                want = (size_t) left;
        if (want == 0)
                return 0;
        if (!req->up_is_fd) {
                memcpy(buffer, req->body_copy + req->up_pos, want);
        } else {
                ssize_t n;
                do
                        n = pread(req->up_fd, buffer, want, (off_t) (req->up_offset + req->up_pos));
                while (n < 0 && errno == EINTR);
                if (n <= 0) {
                        /* A file that shrank under us, or EIO: nothing to retry for. */
                        req->sink_error = n < 0 ? -errno : -EIO;
                        return CURL_READFUNC_ABORT;
                }
                want = (size_t) n;
        }
        req->up_pos += want;
        return want;
}

/* libcurl rewinds the body when it must send it again (a redirect, a reused connection that
 * was closed under it). */
static int on_seek(void *userdata, curl_off_t offset, int origin)
{
        struct http_request *req = userdata;

        if (origin != SEEK_SET || offset < 0 || (uint64_t) offset > req->up_len)
                return CURL_SEEKFUNC_CANTSEEK;
        req->up_pos = (uint64_t) offset;
        return CURL_SEEKFUNC_OK;
}

static const char *method_name(enum http_method m)
{
        switch (m) {
        case HTTP_METHOD_GET:
                return "GET";
        case HTTP_METHOD_DELETE:
                return "DELETE";
        case HTTP_METHOD_PUT:
                return "PUT";
        case HTTP_METHOD_HEAD:
                return "HEAD";
        case HTTP_METHOD_POST:
                return "POST";
        }
        return "?";
}

/* The body of PUT and POST: always with a Content-Length (no chunked uploads). */
static int request_setup_body(struct http_request *req)
{
        CURL *c = req->easy;

        if (curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_READDATA, req) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, on_seek) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_SEEKDATA, req) != CURLE_OK)
                return -ENOMEM;
        if (req->method == HTTP_METHOD_PUT)
                return curl_easy_setopt(c, CURLOPT_UPLOAD, 1L) != CURLE_OK ||
                                       curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE,
                                                        (curl_off_t) req->up_len) != CURLE_OK
                               ? -ENOMEM
                               : 0;
        return curl_easy_setopt(c, CURLOPT_POST, 1L) != CURLE_OK ||
                               curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
                                                (curl_off_t) req->up_len) != CURLE_OK
                       ? -ENOMEM
                       : 0;
}

static int request_setup_call(struct http_request *req)
{
        CURL *c = req->easy;

        if (req->method == HTTP_METHOD_DELETE &&
            curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "DELETE") != CURLE_OK)
                return -ENOMEM;
        /* CURLOPT_NOBODY, not a custom "HEAD", which would wait for a body. */
        if (req->method == HTTP_METHOD_HEAD && curl_easy_setopt(c, CURLOPT_NOBODY, 1L) != CURLE_OK)
                return -ENOMEM;
        if ((req->method == HTTP_METHOD_PUT || req->method == HTTP_METHOD_POST) &&
            request_setup_body(req) < 0)
                return -ENOMEM;
        if (req->stream && (curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 0L) != CURLE_OK ||
                            curl_easy_setopt(c, CURLOPT_TCP_KEEPIDLE,
                                             (long) HTTP_STREAM_KEEPALIVE_SECONDS) != CURLE_OK ||
                            curl_easy_setopt(c, CURLOPT_TCP_KEEPINTVL,
                                             (long) HTTP_STREAM_KEEPALIVE_SECONDS) != CURLE_OK))
                return -ENOMEM;
        return 0;
}

static int request_setup_easy(struct http_engine *e, struct http_request *req)
{
        const struct http_options *o = &e->opts;
        CURL *c = curl_easy_init();

        if (!c)
                return -ENOMEM;
        req->easy = c;
        req->headers = e->headers;
        req->headers->refs++;
        if (req->own_headers) {
                /* The engine's headers go first, copied into the request's own list. */
                struct curl_slist *l = NULL;
                for (struct curl_slist *h = e->headers->list; h; h = h->next) {
                        struct curl_slist *n = curl_slist_append(l, h->data);
                        if (!n) {
                                slist_free_wiped(l);
                                return -ENOMEM;
                        }
                        l = n;
                }
                for (struct curl_slist *h = req->own_headers; h; h = h->next) {
                        struct curl_slist *n = curl_slist_append(l, h->data);
                        if (!n) {
                                slist_free_wiped(l);
                                return -ENOMEM;
                        }
                        l = n;
                }
                slist_free_wiped(req->own_headers);
                req->own_headers = l;
        }
        /* Every one of these is a plain setter that fails only on out-of-memory. */
        if (curl_easy_setopt(c, CURLOPT_URL, req->url) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_PRIVATE, req) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_HTTPHEADER,
                             req->own_headers ? req->own_headers : req->headers->list) !=
                    CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_USERAGENT, CJA_USER_AGENT) != CURLE_OK ||
            /* Job lists and content listings are JSON that compresses tenfold: ask for
             * gzip (libcurl decodes it before any sink or parser sees a byte). */
            curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, e->aws_sigv4 ? NULL : "gzip") !=
                    CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_WRITEDATA, req) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_HEADERDATA, req) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_ERRORBUFFER, req->errbuf) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long) o->timeout_seconds) != CURLE_OK ||
            /* The stall timeout: less than a byte a second for timeout_seconds. */
            curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long) o->timeout_seconds) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, o->verify_tls ? 1L : 0L) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, o->verify_tls ? 2L : 0L) != CURLE_OK)
                return -ENOMEM;
        /* CURLOPT_CAINFO copies the string, so a reload may free ours. */
        if (e->ca_file && curl_easy_setopt(c, CURLOPT_CAINFO, e->ca_file) != CURLE_OK)
                return -ENOMEM;
        /* libcurl signs the request as it sends it (the URL must already be canonical). */
        if (e->aws_sigv4 && (curl_easy_setopt(c, CURLOPT_AWS_SIGV4, e->aws_sigv4) != CURLE_OK ||
                             curl_easy_setopt(c, CURLOPT_USERPWD, e->aws_userpwd) != CURLE_OK))
                return -ENOMEM;
        if (request_setup_call(req) < 0)
                return -ENOMEM;
        if (o->verbose && (curl_easy_setopt(c, CURLOPT_DEBUGFUNCTION, on_debug) != CURLE_OK ||
                           curl_easy_setopt(c, CURLOPT_VERBOSE, 1L) != CURLE_OK))
                return -ENOMEM;
        return 0;
}

static int engine_apply(struct http_engine *e, const struct http_options *opts)
{
        struct http_headers *h;
        int r;

        if (!opts->api_key == !opts->aws_sigv4 || !opts->aws_sigv4 != !opts->aws_userpwd ||
            opts->max_concurrent == 0 || opts->max_attempts == 0)
                return -EINVAL;
        /* The slot array only grows: after a lower cap, older transfers still hold slots. */
        if (opts->max_concurrent > e->running_cap) {
                struct http_request **running =
                        realloc(e->running, opts->max_concurrent * sizeof(*running));
                if (!running)
                        return -ENOMEM;
                e->running = running;
                e->running_cap = opts->max_concurrent;
        }
        char *sigv4 = NULL, *userpwd = NULL;
        if (opts->aws_sigv4 &&
            (!(sigv4 = strdup(opts->aws_sigv4)) || !(userpwd = strdup(opts->aws_userpwd)))) {
                free(sigv4);
                return -ENOMEM;
        }
        r = headers_new(opts->api_key, &h);
        if (r < 0) {
                free(sigv4);
                apikey_wipe_free(userpwd);
                return r;
        }
        free(e->aws_sigv4);
        apikey_wipe_free(e->aws_userpwd);
        e->aws_sigv4 = sigv4;
        e->aws_userpwd = userpwd;
        headers_unref(e->headers);
        e->headers = h;
        e->opts = *opts;
        e->opts.api_key = NULL;                         /* the only copy lives in the header list */
        e->opts.aws_sigv4 = e->opts.aws_userpwd = NULL; /* ours are e->aws_* */
        e->opts.ca_file = NULL; /* requests copy what they need at submission */
        free(e->ca_file);
        e->ca_file = NULL;
        if (opts->ca_file && !(e->ca_file = strdup(opts->ca_file)))
                return -ENOMEM;
        (void) curl_multi_setopt(e->multi, CURLMOPT_MAXCONNECTS, (long) opts->max_concurrent);
        /* Said at start and at every reload, where the operator looks, not only by
         * --check-config. */
        if (!opts->verify_tls)
                log_printf(LOG_WARNING, "TLS certificates are not verified (verify_tls: false): "
                                        "anyone on the network path can pose as Connect and "
                                        "read the API key");
        return 0;
}

int http_engine_new(const struct http_options *opts, struct http_engine **ret)
{
        struct http_engine *e;
        int r;

        e = calloc(1, sizeof(*e));
        if (!e)
                return -ENOMEM;
        e->multi = curl_multi_init();
        if (!e->multi) {
                http_engine_free(e);
                return -ENOMEM;
        }
        r = engine_apply(e, opts);
        if (r < 0) {
                http_engine_free(e);
                return r;
        }
        if (getrandom(&e->rnd_state, sizeof(e->rnd_state), GRND_NONBLOCK) !=
            (ssize_t) sizeof(e->rnd_state))
                e->rnd_state = now_usec(CLOCK_MONOTONIC);
        e->rnd_state |= 1;
        *ret = e;
        return 0;
}

int http_engine_reconfigure(struct http_engine *e, const struct http_options *opts)
{
        /* Transfers in flight keep the options they started with; a lower concurrency
         * cap takes effect as they finish. */
        return engine_apply(e, opts);
}

static void finish_request(struct http_request *req, enum http_outcome outcome, int curl_code)
{
        struct http_result res = {
                .curl_code = curl_code,
                .status = req->status,
                .sink_error = req->sink_error,
                .attempts = req->attempts,
                .retry_after_usec = req->retry_after_usec,
                .outcome = outcome,
                .etag = "",
                .body = req->body,
                .body_len = req->body_len,
        };

        memcpy(res.etag, req->etag, sizeof(res.etag));
        if (req->sink_error == -EFBIG && !req->has_sink)
                (void) snprintf(res.detail, sizeof(res.detail),
                                "the response is larger than %u MiB, refused",
                                HTTP_BODY_MAX / (1024u * 1024u));
        else if (req->sink_error < 0)
                (void) snprintf(res.detail, sizeof(res.detail), "%s", strerror(-req->sink_error));
        else if (curl_code != CURLE_OK)
                (void) log_escape_text(req->errbuf[0] ? req->errbuf
                                                      : curl_easy_strerror((CURLcode) curl_code),
                                       res.detail, sizeof(res.detail));
        else
                (void) snprintf(res.detail, sizeof(res.detail), "HTTP %ld", req->status);
        req->done(req->userdata, &res);
        request_free(req);
}

static void queue_push(struct http_engine *e, struct http_request *req)
{
        req->next = NULL;
        if (e->queue_tail)
                e->queue_tail->next = req;
        else
                e->queue_head = req;
        e->queue_tail = req;
        e->n_queued++;
}

static struct http_request *queue_pop(struct http_engine *e)
{
        struct http_request *req = e->queue_head;

        if (req) {
                e->queue_head = req->next;
                if (!e->queue_head)
                        e->queue_tail = NULL;
                e->n_queued--;
                req->next = NULL;
        }
        return req;
}

int http_get(struct http_engine *e, const char *url, const struct http_sink *sink,
             http_done_fn *done, void *userdata)
{
        return http_submit(e, &(struct http_call){.url = url, .sink = sink}, done, userdata);
}

int http_submit(struct http_engine *e, const struct http_call *call, http_done_fn *done,
                void *userdata)
{
        const char *url = call->url;
        const struct http_sink *sink = call->sink;
        struct http_request *req;

        if (e->cancelling)
                return -ECANCELED;
        req = calloc(1, sizeof(*req));
        if (!req)
                return -ENOMEM;
        req->engine = e;
        req->done = done;
        req->userdata = userdata;
        req->method = call->method;
        req->stream = call->stream;
        if (sink) {
                req->sink = *sink;
                req->has_sink = true;
        }
        req->url = strdup(url);
        if (!req->url) {
                request_free(req);
                return -ENOMEM;
        }
        for (const char *const *h = call->headers; h && *h; h++) {
                struct curl_slist *l = curl_slist_append(req->own_headers, *h);
                if (!l) {
                        request_free(req);
                        return -ENOMEM;
                }
                req->own_headers = l;
        }
        if (call->method == HTTP_METHOD_PUT || call->method == HTTP_METHOD_POST) {
                req->up_len = call->body_len;
                req->up_is_fd = call->body_is_fd;
                req->up_fd = call->body_fd;
                req->up_offset = call->body_offset;
                if (!call->body_is_fd && call->body_len > 0) {
                        if (!call->body || call->body_len > SIZE_MAX) {
                                request_free(req);
                                return -EINVAL;
                        }
                        req->body_copy = malloc((size_t) call->body_len);
                        if (!req->body_copy) {
                                request_free(req);
                                return -ENOMEM;
                        }
                        memcpy(req->body_copy, call->body, (size_t) call->body_len);
                }
        }
        /* The easy handle is made when the transfer starts, with the options (and key) in
         * force then, so a long queue costs little memory and a reload reaches it. */
        request_reset_attempt(req);
        queue_push(e, req);
        return 0;
}

static void running_remove(struct http_engine *e, struct http_request *req)
{
        for (size_t i = 0; i < e->n_running; i++)
                if (e->running[i] == req) {
                        e->running[i] = e->running[--e->n_running];
                        return;
                }
}

/* Starts queued requests while there is a free slot. */
static void fill_slots(struct http_engine *e)
{
        while (e->n_running < e->opts.max_concurrent && e->queue_head) {
                struct http_request *req = queue_pop(e);
                req->attempts++;
                request_reset_attempt(req);
                if (!req->easy && request_setup_easy(e, req) < 0) {
                        (void) snprintf(req->errbuf, sizeof(req->errbuf), "out of memory");
                        finish_request(req, HTTP_FAILED, CURLE_OUT_OF_MEMORY);
                        continue;
                }
                CURLMcode mc = curl_multi_add_handle(e->multi, req->easy);
                if (mc != CURLM_OK) {
                        (void) snprintf(req->errbuf, sizeof(req->errbuf), "%s",
                                        curl_multi_strerror(mc));
                        finish_request(req, HTTP_FAILED, CURLE_OUT_OF_MEMORY);
                        continue;
                }
                e->running[e->n_running++] = req;
        }
}

static void promote_due(struct http_engine *e, uint64_t now)
{
        struct http_request **pp = &e->delayed;

        while (*pp) {
                struct http_request *req = *pp;
                if (req->due_usec <= now) {
                        *pp = req->next;
                        e->n_delayed--;
                        queue_push(e, req);
                } else {
                        pp = &req->next;
                }
        }
}

static uint64_t next_due(const struct http_engine *e)
{
        uint64_t due = UINT64_MAX;

        for (const struct http_request *req = e->delayed; req; req = req->next)
                if (req->due_usec < due)
                        due = req->due_usec;
        return due;
}

static void attempt_done(struct http_engine *e, struct http_request *req, CURLcode cc)
{
        enum http_outcome outcome;

        (void) curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &req->status);
        outcome = http_result_classify(req->status, (int) cc, req->sink_error);
        if (outcome == HTTP_OK && req->has_sink) {
                int r = sink_begin(req); /* an empty body still makes a file */
                if (r < 0) {
                        req->sink_error = r;
                        outcome = HTTP_FAILED;
                }
        }
        if (outcome != HTTP_OK && req->began) {
                if (req->sink.abort)
                        req->sink.abort(req->userdata);
                req->began = false;
        }
        if (outcome == HTTP_RETRY && req->attempts < e->opts.max_attempts && !e->cancelling) {
                uint64_t wait = http_backoff_usec(&e->opts, req->attempts, next_random(e));
                if (req->retry_after_usec >= 0) {
                        uint64_t ra = (uint64_t) req->retry_after_usec;
                        wait = ra > RETRY_AFTER_MAX_USEC ? RETRY_AFTER_MAX_USEC : ra;
                }
                char why[LOG_ESCAPE_MAX];
                log_printf(LOG_DEBUG, "%s %s: %s (%s), retry %u in %.1f s",
                           method_name(req->method), req->url,
                           req->errbuf[0] ? log_escape_text(req->errbuf, why, sizeof(why))
                                          : "HTTP error",
                           http_outcome_to_string(outcome), req->attempts,
                           (double) wait / (double) USEC_PER_SEC);
                req->due_usec = now_usec(CLOCK_MONOTONIC) + wait;
                req->next = e->delayed;
                e->delayed = req;
                e->n_delayed++;
                return;
        }
        finish_request(req, outcome, (int) cc);
}

int http_engine_run(struct http_engine *e, uint64_t timeout_usec, const int *extra_fds,
                    size_t n_fds)
{
        struct curl_waitfd wfds[HTTP_EXTRA_FDS_MAX];
        uint64_t now = now_usec(CLOCK_MONOTONIC);
        int still_running, completed = 0, n;
        CURLMsg *msg;
        CURLMcode mc;

        if (n_fds > HTTP_EXTRA_FDS_MAX)
                return -EINVAL;

        promote_due(e, now);
        fill_slots(e);

        uint64_t due = next_due(e);
        if (due != UINT64_MAX)
                timeout_usec =
                        due <= now ? 0 : (due - now < timeout_usec ? due - now : timeout_usec);
        long timeout_ms = (long) ((timeout_usec + USEC_PER_MSEC - 1) / USEC_PER_MSEC);
        if (timeout_ms > 3600 * 1000L)
                timeout_ms = 3600 * 1000L;

        for (size_t i = 0; i < n_fds; i++)
                wfds[i] = (struct curl_waitfd){.fd = extra_fds[i], .events = CURL_WAIT_POLLIN};
        mc = curl_multi_poll(e->multi, n_fds > 0 ? wfds : NULL, (unsigned) n_fds, (int) timeout_ms,
                             &n);
        if (mc != CURLM_OK && mc != CURLM_UNRECOVERABLE_POLL)
                return -EIO;
        mc = curl_multi_perform(e->multi, &still_running);
        if (mc != CURLM_OK)
                return -EIO;

        while ((msg = curl_multi_info_read(e->multi, &n))) {
                if (msg->msg != CURLMSG_DONE)
                        continue;
                struct http_request *req = NULL;
                (void) curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &req);
                CURLcode cc = msg->data.result;
                (void) curl_multi_remove_handle(e->multi, msg->easy_handle);
                running_remove(e, req);
                attempt_done(e, req, cc);
                completed++;
        }
        promote_due(e, now_usec(CLOCK_MONOTONIC));
        fill_slots(e);
        return completed;
}

size_t http_engine_pending(const struct http_engine *e)
{
        return e->n_running + e->n_queued + e->n_delayed;
}

void http_engine_cancel_all(struct http_engine *e)
{
        struct http_request *req;

        e->cancelling = true;
        while (e->n_running > 0) {
                req = e->running[--e->n_running];
                (void) curl_multi_remove_handle(e->multi, req->easy);
                if (req->began && req->sink.abort)
                        req->sink.abort(req->userdata);
                req->began = false;
                req->sink_error = -ECANCELED;
                finish_request(req, HTTP_FAILED, CURLE_ABORTED_BY_CALLBACK);
        }
        promote_due(e, UINT64_MAX);
        while ((req = queue_pop(e))) {
                req->sink_error = -ECANCELED;
                finish_request(req, HTTP_FAILED, CURLE_ABORTED_BY_CALLBACK);
        }
        e->cancelling = false;
}

void http_engine_free(struct http_engine *e)
{
        if (!e)
                return;
        http_engine_cancel_all(e);
        if (e->multi)
                curl_multi_cleanup(e->multi);
        headers_unref(e->headers);
        free(e->ca_file);
        free(e->aws_sigv4);
        apikey_wipe_free(e->aws_userpwd);
        free(e->running);
        free(e);
}

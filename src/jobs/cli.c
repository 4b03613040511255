#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "archive_scan.h"
#include "archived.h"
#include "cli.h"
#include "cli_s3.h"
#include "client.h"
#include "config.h"
#include "connect.h"
#include "log.h"
#include "macro.h"
#include "output.h"
#include "tail.h"
#include "util.h"

/* How often the /log fallback asks, and how long to wait before following a stream that
 * closed while the job was still running. */
#define POLL_INTERVAL_USEC   (2 * USEC_PER_SEC)
#define RECONNECT_DELAY_USEC (1 * USEC_PER_SEC)
/* tail asks /log for at least this many lines, to recognize them in the stream. */
#define TAIL_MIN_FETCH    1000u
#define TAIL_WINDOW_EXTRA 1024u

void(cli_say)(const char *fmt, ...)
{
        char line[1024];
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        (void) fprintf(stderr, "connect-jobs: %s\n", line);
}

void cli_init(struct cli *c)
{
        *c = (struct cli){.signal_fd = -1};
}

void cli_done(struct cli *c)
{
        client_free(c->client);
        c->client = NULL;
        cli_s3_free(c->s3);
        c->s3 = NULL;
        config_free(c->config);
        c->config = NULL;
        c->signal_fd = safe_close(c->signal_fd);
}

/* ---- Settings ---- */

int cli_load_settings(struct cli *c)
{
        struct config_error err = {{0}};
        const char *path = c->config_path ? c->config_path : CONFIG_DEFAULT_PATH;
        int r;

        r = config_load(path, &c->config, &err);
        if (r < 0) {
                /* Only a missing or unreadable default falls back to the environment: a
                 * config that is there but wrong is reported, never papered over. */
                if (c->config_path || !(r == -ENOENT || r == -EACCES || r == -ENOTDIR)) {
                        cli_say("%s", err.message);
                        return CLI_EXIT_CONFIG;
                }
                log_printf(LOG_DEBUG, "%s, using the environment", err.message);
                r = config_from_environment(c->server, &c->config, &err);
                if (r < 0) {
                        cli_say("%s", err.message);
                        return c->server ? CLI_EXIT_USAGE : CLI_EXIT_CONFIG;
                }
                c->from_environment = true;
        } else if (c->server) {
                r = config_set_server_url(c->config, c->server, "--server", &err);
                if (r < 0) {
                        cli_say("%s", err.message);
                        return CLI_EXIT_USAGE;
                }
        }
        if (c->archive) {
                char *dir = strdup(c->archive);
                if (!dir) {
                        cli_say("out of memory");
                        return CLI_EXIT_FAILURE;
                }
                free(c->config->archive_dir);
                c->config->archive_dir = dir;
        }
        return 0;
}

/* The one place this program looks the API key up: the daemon's order (apikey.c). */
static int lookup_api_key(struct config *config, struct config_error *err)
{
        return config_resolve_api_key(config, err);
}

int cli_connect(struct cli *c)
{
        struct config_error err = {{0}};
        sigset_t mask;
        int r;

        if (!c->config->server_url) {
                cli_say("no Connect server: give -c CONFIG or --server URL, or set "
                        "CONNECT_SERVER (no config at %s)",
                        CONFIG_DEFAULT_PATH);
                return CLI_EXIT_CONFIG;
        }
        r = lookup_api_key(c->config, &err);
        if (r == -EACCES && getenv("CONNECT_API_KEY")) {
                /* The service's key is root-only; an operator uses their own (and their
                 * name is then the one in Connect's audit log). */
                log_printf(LOG_DEBUG, "%s; using $CONNECT_API_KEY instead", err.message);
                free(c->config->api_key_file);
                c->config->api_key_file = NULL;
                free(c->config->api_key_env);
                c->config->api_key_env = NULL;
                r = lookup_api_key(c->config, &err);
        }
        if (r < 0) {
                cli_say("%s%s", err.message,
                        r == -EACCES ? " (set CONNECT_API_KEY to your own Connect key)" : "");
                return CLI_EXIT_CONFIG;
        }

        /* Ctrl-C and SIGTERM are read, not handled: blocked before libcurl can start a
         * resolver thread that would inherit them unblocked. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0 ||
            (c->signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
                cli_say("cannot set up signal handling: %m");
                return CLI_EXIT_FAILURE;
        }
        r = client_new(c->config, c->verbose, c->signal_fd, &c->client);
        if (r < 0) {
                errno = -r;
                cli_say("cannot start the HTTP client: %m");
                return CLI_EXIT_FAILURE;
        }
        return 0;
}

int cli_resolve_content(const struct cli *c, const char *arg, struct cli_content *ret)
{
        const struct config *cfg = c->config;
        char esc[LOG_ESCAPE_MAX], names[512] = "";
        size_t o = 0;

        for (size_t i = 0; i < cfg->n_content; i++)
                if (strcasecmp(cfg->content[i].guid, arg) == 0) {
                        *ret = (struct cli_content){cfg->content[i].guid, cfg->content[i].name};
                        return 0;
                }
        if (guid_is_valid(arg)) {
                *ret = (struct cli_content){arg, NULL};
                return 0;
        }
        for (size_t i = 0; i < cfg->n_content; i++)
                if (cfg->content[i].name && strcmp(cfg->content[i].name, arg) == 0) {
                        *ret = (struct cli_content){cfg->content[i].guid, cfg->content[i].name};
                        return 0;
                }
        for (size_t i = 0; i < cfg->n_content && o + 1 < sizeof(names); i++) {
                if (!cfg->content[i].name)
                        continue;
                int n = snprintf(names + o, sizeof(names) - o, "%s%s", o ? ", " : "",
                                 log_escape(cfg->content[i].name, esc, sizeof(esc)));
                if (n < 0)
                        break;
                o += (size_t) n;
        }
        cli_say("unknown content '%s': not a GUID, %s%s", log_escape(arg, esc, sizeof(esc)),
                o ? "and the known names are: " : "and the config names no content",
                o ? names : (c->from_environment ? " (no config was read)" : ""));
        return CLI_EXIT_USAGE;
}

/* ---- Answers ---- */

/* "content GUID (name)" or "job KEY of content GUID (name)", escaped. */
static const char *target(const struct cli_content *ct, const char *key, char *buf, size_t size)
{
        char k[LOG_ESCAPE_MAX], n[LOG_ESCAPE_MAX];

        (void) snprintf(buf, size, "%s%s%scontent %s%s%s%s", key ? "job " : "",
                        key ? log_escape(key, k, sizeof(k)) : "", key ? " of " : "", ct->guid,
                        ct->name ? " (" : "", ct->name ? log_escape(ct->name, n, sizeof(n)) : "",
                        ct->name ? ")" : "");
        return buf;
}

/* stdout is done: a reader that went away (| head) ends us quietly. */
static int finish_stdout(void)
{
        if (fflush(stdout) == 0 && !ferror(stdout))
                return CLI_EXIT_OK;
        if (errno == EPIPE)
                return CLI_EXIT_PIPE;
        cli_say("cannot write to stdout: %m");
        return CLI_EXIT_FAILURE;
}

/* Maps a failed request to words on stderr and an exit status (0 when it succeeded). */
int cli_check_reply(const struct cli *c, const struct client_reply *r, const char *what)
{
        char why[512];

        if (r->outcome == HTTP_OK)
                return 0;
        if (r->sink_error == -EPIPE)
                return CLI_EXIT_PIPE;
        if (r->has_api_error)
                (void) snprintf(why, sizeof(why), "HTTP %ld: %s (code %lld)", r->status,
                                r->api_message, (long long) r->api_code);
        else
                (void) snprintf(why, sizeof(why), "%s", r->detail);
        switch (r->outcome) {
        case HTTP_AUTH:
                cli_say("%s: Connect refused the API key (from %s): %s", what,
                        c->config->api_key_source ? c->config->api_key_source : "?", why);
                return CLI_EXIT_NOPERM;
        case HTTP_GONE:
                if (r->has_api_error) {
                        cli_say("%s: not found: %s", what, why);
                        return CLI_EXIT_NOT_FOUND;
                }
                cli_say("%s: HTTP %ld without a Connect error: %s has no such endpoint (is it "
                        "Connect 2022.10 or later?)",
                        what, r->status, c->config->server_url);
                return CLI_EXIT_FAILURE;
        case HTTP_RETRY:
                cli_say("%s: %s; gave up after retrying", what, why);
                return CLI_EXIT_FAILURE;
        default:
                cli_say("%s: %s", what, why);
                return CLI_EXIT_FAILURE;
        }
}

/* A client call that did not come back: Ctrl-C, or the engine itself failed. */
int cli_call_failed(int r, const char *what)
{
        if (r == -EINTR)
                return CLI_EXIT_INTERRUPTED;
        errno = -r;
        cli_say("%s: %m", what);
        return CLI_EXIT_FAILURE;
}

static int malformed(const char *what, const char *shape)
{
        cli_say("%s: Connect's answer is not %s", what, shape);
        return CLI_EXIT_FAILURE;
}

/* The server's JSON as received (with a final newline), escaped on a terminal. */
static void print_body(const struct client_reply *r)
{
        output_sanitized(stdout, r->body, r->body_len);
        if (r->body_len == 0 || r->body[r->body_len - 1] != '\n')
                (void) fputc('\n', stdout);
}

static int64_t now_epoch(void)
{
        return (int64_t) (now_usec(CLOCK_REALTIME) / USEC_PER_SEC);
}

/* ---- list, show ---- */

static int by_start_desc(const void *a, const void *b)
{
        const struct job *x = *(const struct job *const *) a, *y = *(const struct job *const *) b;

        if (x->date_epoch != y->date_epoch)
                return x->date_epoch < y->date_epoch ? 1 : -1;
        return x < y ? -1 : x > y; /* keeps the server's order among equals */
}

/*
 * The folder archived.h's lookups read for these jobs of content guid: the archive folder, or
 * with archive.s3 the cache, its records of the jobs' days brought up to date first (one
 * listing). NULL when it cannot say (S3 unreadable: said once; no archive at all).
 */
static const char *archive_for_jobs(struct cli *c, const char *guid, const struct job *jobs,
                                    size_t n)
{
        const char *guids[1] = {guid};
        struct scan_filter f = {.guids = guids, .n_guids = 1};
        struct cli_s3 *s3 = NULL;
        int64_t lo = INT64_MAX, hi = INT64_MIN;

        if (!c->config->s3 || c->archive)
                return c->config->archive_dir;
        if (cli_s3_get(c, &s3) != 0 || !s3)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                struct tm tm = {.tm_year = jobs[i].year - 1900,
                                .tm_mon = jobs[i].month - 1,
                                .tm_mday = jobs[i].day};
                int64_t t;
                if (jobs[i].invalid || jobs[i].year == 0)
                        continue;
                t = (int64_t) timegm(&tm);
                lo = t < lo ? t : lo;
                hi = t > hi ? t : hi;
        }
        if (lo > hi)
                return cli_s3_cache_dir(s3); /* no dated job: what the cache holds */
        f.has_since = f.has_until = true;
        f.since = lo;
        f.until = hi + 86400;
        return cli_s3_sync(s3, &f, NULL) == 0 ? cli_s3_cache_dir(s3) : NULL;
}

int cli_list(struct cli *c, const struct cli_content *ct)
{
        _cleanup_free_ struct job *sorted = NULL;
        _cleanup_free_ const struct job **order = NULL;
        _cleanup_free_ bool *archived = NULL;
        struct client_reply reply;
        struct job_list list = {0};
        const char *adir;
        char what[512];
        int r;

        (void) target(ct, NULL, what, sizeof(what));
        r = client_get_jobs(c->client, ct->guid, &reply);
        if (r < 0)
                return cli_call_failed(r, what);
        r = cli_check_reply(c, &reply, what);
        if (r == 0 && connect_parse_job_list(reply.body, reply.body_len, &list) < 0)
                r = malformed(what, "a JSON array of jobs");
        if (r != 0)
                goto out;
        if (c->json) {
                print_body(&reply);
                r = finish_stdout();
                goto out;
        }
        /* Newest first: the server's order is not documented. */
        order = calloc(list.n_jobs + 1, sizeof(*order));
        sorted = calloc(list.n_jobs + 1, sizeof(*sorted));
        archived = calloc(list.n_jobs + 1, sizeof(*archived));
        if (!order || !sorted || !archived) {
                cli_say("out of memory");
                r = CLI_EXIT_FAILURE;
                goto out;
        }
        for (size_t i = 0; i < list.n_jobs; i++)
                order[i] = &list.jobs[i];
        qsort(order, list.n_jobs, sizeof(*order), by_start_desc);
        adir = archive_for_jobs(c, ct->guid, list.jobs, list.n_jobs);
        for (size_t i = 0; i < list.n_jobs; i++) {
                sorted[i] = *order[i]; /* shallow: the list still owns every job */
                archived[i] = archived_job_record(adir, ct->guid, &sorted[i], NULL) > 0;
        }
        if (list.n_jobs == 0)
                (void) printf("no jobs\n");
        else
                output_job_table(stdout, sorted, list.n_jobs, adir ? archived : NULL, c->utc,
                                 now_epoch());
        r = finish_stdout();
out:
        connect_job_list_done(&list);
        client_reply_done(&reply);
        return r;
}

int cli_show(struct cli *c, const struct cli_content *ct, const char *key)
{
        _cleanup_free_ char *path = NULL;
        struct client_reply reply;
        struct job job = {0};
        char what[512];
        int r;

        (void) target(ct, key, what, sizeof(what));
        r = client_get_job(c->client, ct->guid, key, &reply);
        if (r < 0)
                return cli_call_failed(r, what);
        r = cli_check_reply(c, &reply, what);
        if (r == 0 && connect_parse_job(reply.body, reply.body_len, &job) < 0)
                r = malformed(what, "a JSON job object");
        if (r == 0) {
                if (c->json) {
                        print_body(&reply);
                } else {
                        const char *adir = archive_for_jobs(c, ct->guid, &job, 1);
                        if (archived_job_record(adir, ct->guid, &job, &path) == 0)
                                (void) archived_find_key(adir, ct->guid, key, &path);
                        if (path && c->s3) {
                                char *shown = cli_s3_display_path(c->s3, path);
                                free(path);
                                path = shown;
                        }
                        output_job_detail(stdout, &job, ct->guid, ct->name, adir != NULL, path,
                                          c->utc, now_epoch());
                }
                r = finish_stdout();
        }
        connect_job_done(&job);
        client_reply_done(&reply);
        return r;
}

/* ---- log, error, kill ---- */

static void print_entry(const struct cli *c, const struct log_entry *e)
{
        if (c->json)
                output_log_entry_json(stdout, e);
        else
                output_log_entry_text(stdout, e, c->utc);
}

int cli_log(struct cli *c, const struct cli_content *ct, const char *key, unsigned lines)
{
        struct client_reply reply;
        struct log_entries l = {0};
        char what[512];
        int r;

        (void) target(ct, key, what, sizeof(what));
        r = client_job_logs(c->client, ct->guid, key, lines, &reply);
        if (r < 0)
                return cli_call_failed(r, what);
        r = cli_check_reply(c, &reply, what);
        if (r == 0 && connect_parse_log_entries(reply.body, reply.body_len, &l) < 0)
                r = malformed(what, "LogEntries ({\"entries\": [...]})");
        if (r == 0) {
                for (size_t i = 0; i < l.n_entries; i++)
                        print_entry(c, &l.entries[i]);
                r = finish_stdout();
        }
        connect_log_entries_done(&l);
        client_reply_done(&reply);
        return r;
}

int cli_error(struct cli *c, const struct cli_content *ct, const char *key)
{
        struct json_object *error = NULL;
        struct client_reply reply;
        char what[512], esc[LOG_ESCAPE_MAX];
        int r;

        (void) target(ct, key, what, sizeof(what));
        r = client_job_error(c->client, ct->guid, key, &reply);
        if (r < 0)
                return cli_call_failed(r, what);
        r = cli_check_reply(c, &reply, what);
        if (r != 0)
                goto out;
        if (reply.status == 204 || reply.body_len == 0) {
                /* 204: the job has no error record. */
                if (c->json)
                        (void) printf("null\n");
                else
                        (void) printf("job %s has no error record\n",
                                      log_escape(key, esc, sizeof(esc)));
        } else if (connect_parse_error(reply.body, reply.body_len, &error) < 0) {
                r = malformed(what, "a JSON error record");
                goto out;
        } else if (c->json) {
                print_body(&reply);
        } else {
                output_error_record(stdout, error);
        }
        r = finish_stdout();
out:
        connect_error_free(error);
        client_reply_done(&reply);
        return r;
}

int cli_kill(struct cli *c, const struct cli_content *ct, const char *key)
{
        struct client_reply reply;
        struct kill_order order = {0};
        char what[512], esc[LOG_ESCAPE_MAX];
        int r;

        (void) target(ct, key, what, sizeof(what));
        r = client_kill_job(c->client, ct->guid, key, &reply);
        if (r < 0)
                return cli_call_failed(r, what);
        if (reply.status == 409 && reply.has_api_error &&
            reply.api_code == CONNECT_CODE_JOB_NOT_ACTIVE) {
                cli_say("job %s is not active; nothing to kill", log_escape(key, esc, sizeof(esc)));
                r = CLI_EXIT_FAILURE;
                goto out;
        }
        r = cli_check_reply(c, &reply, what);
        if (r == 0 && connect_parse_kill_order(reply.body, reply.body_len, &order) < 0)
                r = malformed(what, "a kill order");
        if (r == 0) {
                if (c->json)
                        print_body(&reply);
                else
                        output_kill_order(stdout, &order);
                r = finish_stdout();
        }
out:
        connect_kill_order_done(&order);
        client_reply_done(&reply);
        return r;
}

/* ---- download ---- */

/*
 * Where the log goes, as it arrives. A retried transfer starts the body over; the bytes
 * already written are skipped rather than written twice (a log only grows at its end), so
 * even stdout, which cannot be rewound, gets every byte exactly once.
 */
struct download {
        int fd;
        uint64_t written; /* over all attempts */
        uint64_t offset;  /* in the current attempt's body */
};

static int download_begin(void *userdata)
{
        struct download *d = userdata;

        d->offset = 0;
        return 0;
}

static int download_write(void *userdata, const void *data, size_t len)
{
        struct download *d = userdata;
        const char *p = data;
        uint64_t skip = d->written > d->offset ? d->written - d->offset : 0;
        int r;

        d->offset += len;
        if (skip >= len)
                return 0;
        r = write_all(d->fd, p + skip, len - (size_t) skip);
        if (r < 0)
                return r;
        d->written += len - skip;
        return 0;
}

static const struct http_sink download_sink = {
        .begin = download_begin,
        .write = download_write,
};

/* A temporary beside path, so the final rename never crosses filesystems. */
static int open_temporary(const char *path, char **ret_tmp)
{
        _cleanup_free_ char *d = strdup(path), *b = strdup(path);
        char *tmp;
        mode_t mask;
        int fd;

        if (!d || !b)
                return -ENOMEM;
        if (asprintf(&tmp, "%s/.%s.XXXXXX", dirname(d), basename(b)) < 0)
                return -ENOMEM;
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0) {
                int r = -errno;
                free(tmp);
                return r;
        }
        /* mkostemp makes 0600; the file gets what a plain create would. */
        mask = umask(0);
        (void) umask(mask);
        (void) fchmod(fd, 0666 & ~mask);
        *ret_tmp = tmp;
        return fd;
}

/* Makes the temporary durable, renames it into place, and makes the rename durable. */
static int commit_temporary(int fd, const char *tmp, const char *path)
{
        _cleanup_free_ char *d = strdup(path);
        int dfd;

        if (!d)
                return -ENOMEM;
        if (fsync(fd) < 0 || rename(tmp, path) < 0)
                return -errno;
        dfd = open(dirname(d), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return -errno;
        if (fsync(dfd) < 0) {
                int r = -errno;
                (void) safe_close(dfd);
                return r;
        }
        (void) safe_close(dfd);
        return 0;
}

int cli_download(struct cli *c, const struct cli_content *ct, const char *key, const char *out_file)
{
        _cleanup_free_ char *tmp = NULL;
        struct download d = {.fd = STDOUT_FILENO};
        struct client_reply reply;
        char what[512], esc[LOG_ESCAPE_MAX];
        int r;

        (void) target(ct, key, what, sizeof(what));
        if (out_file) {
                d.fd = open_temporary(out_file, &tmp);
                if (d.fd < 0) {
                        errno = -d.fd;
                        cli_say("cannot create a temporary file beside %s: %m",
                                log_escape(out_file, esc, sizeof(esc)));
                        return CLI_EXIT_FAILURE;
                }
        }
        r = client_job_download_log(c->client, ct->guid, key, &download_sink, &d, &reply);
        if (r < 0) {
                r = cli_call_failed(r, what);
                goto out;
        }
        if (reply.outcome != HTTP_OK && reply.sink_error < 0 && reply.sink_error != -EPIPE) {
                errno = -reply.sink_error;
                cli_say("%s: cannot write %s: %m", what,
                        out_file ? log_escape(out_file, esc, sizeof(esc)) : "to stdout");
                r = CLI_EXIT_FAILURE;
        } else {
                r = cli_check_reply(c, &reply, what);
        }
        if (r == 0 && out_file) {
                int k = commit_temporary(d.fd, tmp, out_file);
                if (k < 0) {
                        errno = -k;
                        cli_say("cannot write %s: %m", log_escape(out_file, esc, sizeof(esc)));
                        r = CLI_EXIT_FAILURE;
                } else {
                        free(tmp); /* in place now */
                        tmp = NULL;
                }
        }
        client_reply_done(&reply);
out:
        if (out_file)
                (void) safe_close(d.fd);
        if (tmp)
                (void) unlink(tmp);
        return r;
}

/* ---- tail ---- */

struct tail {
        struct cli *cli;
        const struct cli_content *ct;
        const char *key;
        char what[512];
        struct tail_decoder *decoder;
        struct tail_seen *seen;
        /* Entries of the stream that arrived before its seam with /log was made. */
        struct log_entry *pending;
        size_t n_pending, cap_pending;
        bool began;          /* the current request's stream has started */
        bool live;           /* its seam is made: entries go straight out */
        unsigned generation; /* stream starts so far (a retried request starts again) */
        bool shown_first;    /* the first /log answer was shown (only the last N of it) */
        unsigned lines, fetch;
};

static void tail_pending_clear(struct tail *t)
{
        for (size_t i = 0; i < t->n_pending; i++)
                connect_log_entry_done(&t->pending[i]);
        t->n_pending = 0;
}

/* Admits one line of the current pass and prints it when it is new. */
static int tail_admit(struct tail *t, const struct log_entry *e, bool show)
{
        int r = tail_seen_admit(t->seen, e);

        if (r > 0 && show)
                print_entry(t->cli, e);
        return r < 0 ? r : 0;
}

static int tail_on_entry(void *userdata, struct log_entry *e)
{
        struct tail *t = userdata;
        int r = 0;

        if (!t->live) {
                if (t->n_pending == t->cap_pending) {
                        size_t cap = t->cap_pending ? 2 * t->cap_pending : 64;
                        struct log_entry *p = reallocarray(t->pending, cap, sizeof(*p));
                        if (!p) {
                                connect_log_entry_done(e);
                                return -ENOMEM;
                        }
                        t->pending = p;
                        t->cap_pending = cap;
                }
                t->pending[t->n_pending++] = *e; /* takes it over */
                return 0;
        }
        r = tail_admit(t, e, true);
        connect_log_entry_done(e);
        if (r >= 0 && fflush(stdout) != 0)
                r = -errno;
        return r;
}

static int tail_begin(void *userdata)
{
        struct tail *t = userdata;

        /* A (new) stream from its start: it is seamed against /log again. */
        tail_decoder_reset(t->decoder);
        tail_pending_clear(t);
        t->live = false;
        t->began = true;
        t->generation++;
        return 0;
}

static int tail_write(void *userdata, const void *data, size_t len)
{
        struct tail *t = userdata;

        return tail_decoder_feed(t->decoder, data, len);
}

static const struct http_sink tail_sink = {
        .begin = tail_begin,
        .write = tail_write,
};

/* One pass over /log: the first shows only the last `lines` of it; later ones show what
 * is new. Returns 0 or an exit status. */
static int tail_log_pass(struct tail *t)
{
        struct client_reply reply;
        struct log_entries l = {0};
        int r;

        r = client_job_logs(t->cli->client, t->ct->guid, t->key, t->fetch, &reply);
        if (r < 0)
                return cli_call_failed(r, t->what);
        r = cli_check_reply(t->cli, &reply, t->what);
        if (r == 0 && connect_parse_log_entries(reply.body, reply.body_len, &l) < 0)
                r = malformed(t->what, "LogEntries ({\"entries\": [...]})");
        if (r == 0) {
                tail_seen_begin_pass(t->seen);
                for (size_t i = 0; i < l.n_entries && r == 0; i++)
                        r = tail_admit(t, &l.entries[i],
                                       t->shown_first || l.n_entries - i <= t->lines);
                if (r < 0) {
                        cli_say("out of memory");
                        r = CLI_EXIT_FAILURE;
                }
                if (!t->shown_first && l.n_entries < t->fetch)
                        tail_seen_set_complete(t->seen); /* /log gave the whole log */
                t->shown_first = true;
        }
        if (r == 0)
                r = finish_stdout();
        connect_log_entries_done(&l);
        client_reply_done(&reply);
        return r;
}

/* The stream's lines that arrived before the seam: a pass of their own. */
static int tail_go_live(struct tail *t)
{
        int r = 0;

        tail_seen_begin_pass(t->seen);
        for (size_t i = 0; i < t->n_pending && r == 0; i++)
                r = tail_admit(t, &t->pending[i], true);
        tail_pending_clear(t);
        t->live = true;
        return r < 0 ? CLI_EXIT_FAILURE : finish_stdout();
}

/* The job's status now, or -(exit status). */
static int tail_job_status(struct tail *t)
{
        struct client_reply reply;
        struct job job = {0};
        int r;

        r = client_get_job(t->cli->client, t->ct->guid, t->key, &reply);
        if (r < 0)
                return -cli_call_failed(r, t->what);
        r = cli_check_reply(t->cli, &reply, t->what);
        if (r == 0 && connect_parse_job(reply.body, reply.body_len, &job) < 0)
                r = malformed(t->what, "a JSON job object");
        /* A job without a usable status is taken as over: following it would never end. */
        int status = job.status < 0 ? 1000 : job.status;
        connect_job_done(&job);
        client_reply_done(&reply);
        return r != 0 ? -r : status;
}

static bool tail_job_is_over(int status)
{
        /* Connect closes /tail when the job is finalized; status 1 is on its way there. */
        return status != JOB_ACTIVE && status != JOB_FINISHED;
}

/* Sleeps on the engine, so that Ctrl-C still ends the wait. */
static int tail_sleep(struct tail *t, uint64_t usec)
{
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + usec;
        int r;

        for (uint64_t now; (now = now_usec(CLOCK_MONOTONIC)) < deadline;) {
                r = client_run(t->cli->client, deadline - now);
                if (r < 0)
                        return cli_call_failed(r, t->what);
        }
        return 0;
}

/* An older server without /tail: poll /log, with the same seam rule between polls. */
static int tail_poll(struct tail *t)
{
        int r, status;

        cli_say("%s has no /tail endpoint (HTTP 404 without a Connect error): polling /log "
                "every %u s instead",
                t->cli->config->server_url, (unsigned) (POLL_INTERVAL_USEC / USEC_PER_SEC));
        for (;;) {
                /* The status first: when it says "over", the /log after it is complete. */
                status = tail_job_status(t);
                if (status < 0)
                        return -status;
                r = tail_log_pass(t);
                if (r != 0)
                        return r;
                if (tail_job_is_over(status))
                        return CLI_EXIT_OK;
                r = tail_sleep(t, POLL_INTERVAL_USEC);
                if (r != 0)
                        return r;
        }
}

/* Follows one /tail request to its end. Returns 0 when the stream closed cleanly, 1 for
 * "no /tail here", or -(exit status). */
static int tail_follow(struct tail *t)
{
        struct client_call call = {.sink = &tail_sink, .sink_userdata = t};
        struct client_reply *reply = &call.reply;
        int r;

        t->began = false;
        t->live = false;
        r = client_job_tail_log_start(t->cli->client, t->ct->guid, t->key, &call);
        if (r < 0)
                return -cli_call_failed(r, t->what);
        for (;;) {
                if (t->began && !t->live) {
                        /* The stream is open: now the snapshot, then what the stream
                         * brought meanwhile. If the stream restarted while /log was asked,
                         * the seam is made again. */
                        unsigned generation = t->generation;
                        r = tail_log_pass(t);
                        if (r == 0 && generation == t->generation)
                                r = tail_go_live(t);
                        if (r != 0)
                                goto stop;
                        continue;
                }
                if (call.done)
                        break;
                r = client_run(t->cli->client, USEC_PER_SEC);
                if (r < 0) {
                        r = cli_call_failed(r, t->what);
                        goto stop;
                }
        }
        if (reply->outcome == HTTP_GONE && !reply->has_api_error) {
                client_reply_done(reply);
                return 1;
        }
        if (reply->sink_error == -EBADMSG) {
                r = malformed(t->what, "a stream of log entries");
        } else if (reply->sink_error == -EPIPE) {
                r = CLI_EXIT_PIPE;
        } else {
                r = cli_check_reply(t->cli, reply, t->what);
                if (r == 0 && tail_decoder_finish(t->decoder) < 0)
                        r = malformed(t->what, "a stream of log entries");
                if (r == 0)
                        r = finish_stdout();
        }
        client_reply_done(reply);
        return -r;
stop:
        /* The stream's call lives on this stack: end it before leaving. */
        if (!call.done)
                client_cancel(t->cli->client);
        client_reply_done(reply);
        return -r;
}

int cli_tail(struct cli *c, const struct cli_content *ct, const char *key, unsigned lines)
{
        _cleanup_(tail_decoder_freep) struct tail_decoder *decoder = NULL;
        _cleanup_(tail_seen_freep) struct tail_seen *seen = NULL;
        struct tail t = {.cli = c, .ct = ct, .key = key, .lines = lines};
        int r, status;

        (void) target(ct, key, t.what, sizeof(t.what));
        /* /log is asked for at least TAIL_MIN_FETCH lines, so that the stream's replay of
         * them (if it replays) is recognized even with -n 0. */
        t.fetch = lines > TAIL_MIN_FETCH ? lines : TAIL_MIN_FETCH;
        if (tail_decoder_new(tail_on_entry, &t, &decoder) < 0 ||
            tail_seen_new(t.fetch + TAIL_WINDOW_EXTRA, &seen) < 0) {
                cli_say("out of memory");
                return CLI_EXIT_FAILURE;
        }
        t.decoder = decoder;
        t.seen = seen;
        for (;;) {
                r = tail_follow(&t);
                if (r == 1) {
                        r = tail_poll(&t);
                        break;
                }
                if (r < 0) {
                        r = -r;
                        break;
                }
                /* The stream closed: at finalization, or a proxy gave up on it. */
                status = tail_job_status(&t);
                if (status < 0) {
                        r = -status;
                        break;
                }
                if (tail_job_is_over(status)) {
                        r = CLI_EXIT_OK;
                        break;
                }
                log_printf(LOG_DEBUG,
                           "the /tail stream closed while the job is %s; following "
                           "it again",
                           connect_job_status_to_string(status));
                r = tail_sleep(&t, RECONNECT_DELAY_USEC);
                if (r != 0)
                        break;
        }
        tail_pending_clear(&t);
        free(t.pending);
        return r;
}

/* ---- For the archive's answers (cli_archive.c) ---- */

int cli_finish_stdout(void)
{
        return finish_stdout();
}

int cli_file_open_temporary(const char *path, char **ret_tmp)
{
        return open_temporary(path, ret_tmp);
}

int cli_file_commit(int fd, const char *tmp, const char *path)
{
        return commit_temporary(fd, tmp, path);
}

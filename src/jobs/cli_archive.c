#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "archive_scan.h"
#include "cli.h"
#include "cli_archive.h"
#include "cli_s3.h"
#include "config.h"
#include "connect.h"
#include "grep.h"
#include "log.h"
#include "logreader.h"
#include "macro.h"
#include "output.h"
#include "util.h"

struct cli_archived {
        int dayfd;
        struct cli_s3 *s3; /* archive.s3: its log is fetched when it is read */
        char *dir;         /* "<archive>/<guid>/YYYY/MM/DD", for messages */
        struct scan_job job;
};

void cli_archived_free(struct cli_archived *a)
{
        if (!a)
                return;
        (void) safe_close(a->dayfd);
        free(a->dir);
        scan_job_done(&a->job);
        free(a);
}

static void find_warn(void *userdata, const char *path, int error, const char *what)
{
        const char *dir = userdata;

        errno = -error;
        log_printf(LOG_DEBUG, "%s/%s: %s: %m", dir, path, what);
}

int cli_archive_find(struct cli *c, const struct cli_content *ct, const char *key,
                     struct cli_archived **ret)
{
        const char *dir = c->config->archive_dir;
        _cleanup_close_ int rootfd = -1;
        struct cli_archived *a;
        struct cli_s3 *s3 = NULL;
        char esc[LOG_ESCAPE_MAX];
        int r = 0;

        *ret = NULL;
        if (path_component_is_safe(key, strlen(key)) && key[0] != '.') {
                r = cli_s3_get(c, &s3);
                if (r != 0 && !c->config->server_url)
                        return r;
                if (r != 0)
                        cli_say("asking Connect");
                r = 0;
        }
        if (s3) {
                /* The job's records in the bucket, fetched into the cache. */
                dir = cli_s3_name(s3);
                if (cli_s3_sync_job(s3, ct->guid, key) == 0)
                        rootfd = fcntl(cli_s3_rootfd(s3), F_DUPFD_CLOEXEC, 3);
                else if (c->config->server_url)
                        cli_say("asking Connect");
                else
                        return CLI_EXIT_FAILURE;
        } else if (dir && path_component_is_safe(key, strlen(key)) && key[0] != '.') {
                rootfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                /* No archive there is usual (a host without the service); one that cannot
                 * be read (not in the service group) is said, or the answer that follows
                 * (Connect's, or no key) would hide why the archive was not used. */
                if (rootfd < 0 && errno != ENOENT)
                        cli_say("cannot open the archive %s: %m%s", dir,
                                c->config->server_url ? "; asking Connect" : "");
                else if (rootfd < 0)
                        log_printf(LOG_DEBUG, "cannot open the archive %s: %m", dir);
        }
        if (rootfd >= 0) {
                a = calloc(1, sizeof(*a));
                if (!a) {
                        cli_say("out of memory");
                        return CLI_EXIT_FAILURE;
                }
                a->dayfd = -1;
                a->s3 = s3;
                r = scan_find_job(rootfd, ct->guid, key, find_warn, (void *) dir, &a->job);
                if (r > 0) {
                        a->dayfd = scan_job_open_dir(rootfd, &a->job);
                        if (a->dayfd < 0 ||
                            asprintf(&a->dir, "%s/%s/%04d/%02d/%02d", dir, a->job.guid, a->job.year,
                                     a->job.month, a->job.day) < 0)
                                r = a->dayfd < 0 ? a->dayfd : -ENOMEM;
                }
                if (r > 0) {
                        *ret = a;
                        return 0;
                }
                cli_archived_free(a);
                if (r < 0) {
                        errno = -r;
                        cli_say("cannot look in the archive %s: %m", dir);
                        return CLI_EXIT_FAILURE;
                }
        }
        if (!c->config->server_url) {
                cli_say("job %s of content %s is not in the archive%s%s%s, and no Connect server "
                        "is configured to ask",
                        log_escape(key, esc, sizeof(esc)), ct->guid, dir ? " (" : "",
                        dir ? dir : "", dir ? ")" : "");
                return CLI_EXIT_NOT_FOUND;
        }
        return 0;
}

static void say_from(const struct cli_archived *a, const char *suffix)
{
        cli_say("from the archive (%s/%s%s)", a->dir, a->job.key, suffix);
}

/* Reads <key><suffix> of the job's folder. Returns 0, -ENOENT, or an exit status > 0. */
static int read_part(const struct cli_archived *a, const char *suffix, char **ret, size_t *ret_len)
{
        char name[NAME_MAX + 1];
        int r;

        (void) snprintf(name, sizeof(name), "%s%s", a->job.key, suffix);
        r = scan_read_small(a->dayfd, name, ret, ret_len);
        if (r == -ENOENT)
                return r;
        if (r < 0) {
                errno = -r;
                cli_say("%s/%s: %m", a->dir, name);
                return CLI_EXIT_FAILURE;
        }
        return 0;
}

int cli_archive_show(struct cli *c, const struct cli_content *ct, const struct cli_archived *a)
{
        _cleanup_free_ char *data = NULL, *path = NULL;
        struct json_object *rec = NULL, *job_obj = NULL;
        struct job job = {0};
        const char *text;
        size_t len;
        int r;

        r = read_part(a, ".json", &data, &len);
        if (r != 0)
                return r < 0 ? CLI_EXIT_NOT_FOUND : r;
        rec = json_tokener_parse(data);
        if (!rec || !json_object_object_get_ex(rec, "job", &job_obj) ||
            !json_object_is_type(job_obj, json_type_object)) {
                cli_say("%s/%s.json: not an archive record (no \"job\" object)", a->dir,
                        a->job.key);
                json_object_put(rec);
                return CLI_EXIT_FAILURE;
        }
        text = json_object_to_json_string_ext(job_obj, JSON_C_TO_STRING_PLAIN |
                                                               JSON_C_TO_STRING_NOSLASHESCAPE);
        say_from(a, ".json");
        if (c->json) {
                output_sanitized(stdout, text, strlen(text));
                (void) fputc('\n', stdout);
        } else if (connect_parse_job(text, strlen(text), &job) == 0 &&
                   asprintf(&path, "%s/%s.json", a->dir, a->job.key) >= 0) {
                output_job_detail(stdout, &job, ct->guid, ct->name ? ct->name : a->job.record_name,
                                  true, path, c->utc, (int64_t) time(NULL));
        } else {
                cli_say("%s/%s.json: its \"job\" is not a job object", a->dir, a->job.key);
                r = CLI_EXIT_FAILURE;
        }
        connect_job_done(&job);
        json_object_put(rec);
        return r ? r : cli_finish_stdout();
}

int cli_archive_error(struct cli *c, const struct cli_archived *a)
{
        _cleanup_free_ char *data = NULL;
        struct json_object *error = NULL;
        char esc[LOG_ESCAPE_MAX];
        size_t len;
        int r;

        r = read_part(a, ".error.json", &data, &len);
        if (r > 0)
                return r;
        if (r == -ENOENT) {
                /* The error endpoint answered 204 when the job was archived. */
                say_from(a, ".json");
                if (c->json)
                        (void) printf("null\n");
                else
                        (void) printf("job %s has no error record\n",
                                      log_escape(a->job.key, esc, sizeof(esc)));
                return cli_finish_stdout();
        }
        say_from(a, ".error.json");
        if (c->json) {
                output_sanitized(stdout, data, len);
                if (len == 0 || data[len - 1] != '\n')
                        (void) fputc('\n', stdout);
        } else if (connect_parse_error(data, len, &error) == 0) {
                output_error_record(stdout, error);
                json_object_put(error);
        } else {
                cli_say("%s/%s.error.json: not a JSON error record", a->dir, a->job.key);
                return CLI_EXIT_FAILURE;
        }
        return cli_finish_stdout();
}

/* ---- The log file ---- */

/* A job archived as its record alone: Connect had no log file for it. */
static bool no_log(const struct cli_archived *a)
{
        if (a->job.log_bytes >= 0)
                return false;
        cli_say("job %s was archived without a log file (Connect had none): %s/%s.json", a->job.key,
                a->dir, a->job.key);
        return true;
}

static int open_log(const struct cli_archived *a, struct log_reader **ret)
{
        char name[NAME_MAX + 1];
        int r;

        if (a->s3 && cli_s3_fetch_logs(a->s3, &a->job, 1) < 0)
                return CLI_EXIT_FAILURE;
        (void) snprintf(name, sizeof(name), "%s.log.gz", a->job.key);
        r = log_reader_open(a->dayfd, name, scan_cpu_count(), ret);
        if (r < 0) {
                cli_say("%s/%s: %s", a->dir, name, log_reader_strerror(r));
                return CLI_EXIT_FAILURE;
        }
        return 0;
}

static int read_failed(const struct cli_archived *a, ssize_t r)
{
        cli_say("%s/%s.log.gz: %s", a->dir, a->job.key, log_reader_strerror((int) r));
        return CLI_EXIT_FAILURE;
}

int cli_archive_download(struct cli *c, const struct cli_archived *a, const char *out_file)
{
        _cleanup_free_ char *tmp = NULL;
        struct log_reader *rd = NULL;
        char esc[LOG_ESCAPE_MAX];
        int fd = STDOUT_FILENO, r;

        if (no_log(a))
                return CLI_EXIT_NOT_FOUND;
        r = open_log(a, &rd);
        if (r != 0)
                return r;
        if (out_file) {
                fd = cli_file_open_temporary(out_file, &tmp);
                if (fd < 0) {
                        errno = -fd;
                        cli_say("cannot create a temporary file beside %s: %m",
                                log_escape(out_file, esc, sizeof(esc)));
                        log_reader_free(rd);
                        return CLI_EXIT_FAILURE;
                }
        }
        say_from(a, ".log.gz");
        for (;;) {
                const char *data;
                ssize_t n = log_reader_next(rd, &data);
                if (n < 0) {
                        r = read_failed(a, n);
                        break;
                }
                if (n == 0)
                        break;
                r = write_all(fd, data, (size_t) n);
                if (r < 0)
                        break;
        }
        if (r < 0 && r == -EPIPE && !out_file) {
                r = CLI_EXIT_PIPE;
        } else if (r < 0) {
                errno = -r;
                cli_say("cannot write %s: %m",
                        out_file ? log_escape(out_file, esc, sizeof(esc)) : "to stdout");
                r = CLI_EXIT_FAILURE;
        }
        if (r == 0 && out_file) {
                r = cli_file_commit(fd, tmp, out_file);
                if (r < 0) {
                        errno = -r;
                        cli_say("cannot write %s: %m", log_escape(out_file, esc, sizeof(esc)));
                        r = CLI_EXIT_FAILURE;
                } else {
                        free(tmp); /* in place now */
                        tmp = NULL;
                }
        }
        if (out_file)
                (void) safe_close(fd);
        if (tmp)
                (void) unlink(tmp);
        log_reader_free(rd);
        return r;
}

/* The value of n decimal digits (already checked to be digits; s is not NUL-terminated). */
static int digits_value(const char *s, size_t n)
{
        int v = 0;

        for (size_t k = 0; k < n; k++)
                v = v * 10 + (s[k] - '0');
        return v;
}

/* "YYYY/MM/DD HH:MM:SS[.fraction] [[stdout]|[stderr]] text": Connect's line format. */
static void parse_line(const char *s, size_t n, struct log_entry *e)
{
        struct tm tm = {0};
        size_t i = 19;
        uint32_t nsec = 0;

        *e = (struct log_entry){.source = "stdout", .data = s, .data_len = n};
        if (n < 20 || s[4] != '/' || s[7] != '/' || s[10] != ' ' || s[13] != ':' || s[16] != ':')
                return;
        for (size_t k = 0; k < 19; k++)
                if (k != 4 && k != 7 && k != 10 && k != 13 && k != 16 && (s[k] < '0' || s[k] > '9'))
                        return;
        if (s[i] == '.') {
                size_t digits = 0;
                for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++, digits++)
                        if (digits < 9)
                                nsec = nsec * 10 + (uint32_t) (s[i] - '0');
                if (digits == 0)
                        return;
                for (; digits < 9; digits++)
                        nsec *= 10;
        }
        if (i >= n || s[i] != ' ')
                return;
        i++;
        tm.tm_year = digits_value(s, 4) - 1900;
        tm.tm_mon = digits_value(s + 5, 2) - 1;
        tm.tm_mday = digits_value(s + 8, 2);
        tm.tm_hour = digits_value(s + 11, 2);
        tm.tm_min = digits_value(s + 14, 2);
        tm.tm_sec = digits_value(s + 17, 2);
        e->has_timestamp = true;
        e->ts_sec = (int64_t) timegm(&tm);
        e->ts_nsec = nsec;
        if (n - i >= 8 &&
            (memcmp(s + i, "[stdout]", 8) == 0 || memcmp(s + i, "[stderr]", 8) == 0)) {
                e->source = memcmp(s + i + 4, "err", 3) == 0 ? "stderr" : "stdout";
                i += 8;
                if (i < n && s[i] == ' ')
                        i++;
        }
        e->data = s + i;
        e->data_len = n - i;
}

static void print_entry_json(struct obuf *b, const struct log_entry *e)
{
        b->len = 0;
        obuf_puts(b, "{\"source\":");
        obuf_json_string(b, e->source, strlen(e->source));
        if (e->has_timestamp) {
                char when[40];
                time_t t = (time_t) e->ts_sec;
                struct tm tm;

                if (gmtime_r(&t, &tm) && strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm))
                        obuf_printf(b, ",\"timestamp\":\"%s.%09uZ\"", when, (unsigned) e->ts_nsec);
                else
                        obuf_puts(b, ",\"timestamp\":null");
        } else {
                obuf_puts(b, ",\"timestamp\":null");
        }
        obuf_puts(b, ",\"data\":");
        obuf_json_string(b, e->data, e->data_len);
        obuf_puts(b, "}\n");
        if (!b->error)
                output_sanitized(stdout, b->data, b->len);
}

/* Walks the log's lines: counts them all, and prints those from number `from` (0-based). */
struct lines {
        struct cli *c;
        uint64_t n, from;
        bool print;
        struct obuf json;
        char *line; /* a line split across chunks */
        size_t len, cap;
        uint64_t cut; /* bytes of the line under way past LOG_SHOWN_MAX, not shown */
};

/* `log` shows at most this much of one line (a log of one endless line must not take the
 * memory); it says so on stderr. `download` gives the whole file. */
#define LOG_SHOWN_MAX (32u * 1024 * 1024)

static void line_done(struct lines *l, const char *s, size_t n)
{
        struct log_entry e;

        if (l->print && l->n >= l->from) {
                parse_line(s, n, &e);
                if (l->c->json)
                        print_entry_json(&l->json, &e);
                else
                        output_log_entry_text(stdout, &e, l->c->utc);
                if (l->cut > 0)
                        cli_say("warning: line %" PRIu64 " is longer than %u MiB: %" PRIu64
                                " bytes of it not shown (download gives the whole log)",
                                l->n + 1, LOG_SHOWN_MAX / (1024 * 1024), l->cut);
        }
        l->cut = 0;
        l->n++;
}

static int lines_feed(struct lines *l, const char *p, size_t n)
{
        if (l->print && ferror(stdout))
                return -EPIPE; /* | head went away, or the disk is full: stop reading */
        while (n > 0) {
                const char *nl = memchr(p, '\n', n);
                size_t k = nl ? (size_t) (nl - p) : n;

                if (nl && l->len == 0) {
                        line_done(l, p, k);
                } else if (!l->print && nl) {
                        l->len = 0;
                        line_done(l, NULL, 0);
                } else if (l->print) {
                        size_t room = LOG_SHOWN_MAX - l->len, keep = k < room ? k : room;
                        if (buf_append(&l->line, &l->len, &l->cap, p, keep, 256) < 0)
                                return -ENOMEM;
                        l->cut += k - keep;
                        if (nl) {
                                line_done(l, l->line, l->len);
                                l->len = 0;
                        }
                } else {
                        l->len = 1; /* counting: a line is under way */
                }
                if (!nl)
                        break;
                p += k + 1;
                n -= k + 1;
        }
        return 0;
}

static int lines_pass(const struct cli_archived *a, struct lines *l)
{
        struct log_reader *rd = NULL;
        int r;

        l->n = 0;
        l->len = 0;
        l->cut = 0;
        r = open_log(a, &rd);
        if (r != 0)
                return r;
        for (;;) {
                const char *data;
                ssize_t n = log_reader_next(rd, &data);
                if (n <= 0) {
                        r = n < 0 ? read_failed(a, n) : 0;
                        break;
                }
                r = lines_feed(l, data, (size_t) n);
                if (r < 0)
                        break;
        }
        log_reader_free(rd);
        if (r == -EPIPE)
                return cli_finish_stdout();
        if (r < 0) {
                cli_say("out of memory");
                return CLI_EXIT_FAILURE;
        }
        if (r == 0 && l->len > 0) /* a last line without its newline */
                line_done(l, l->line, l->print ? l->len : 0);
        return r;
}

int cli_archive_log(struct cli *c, const struct cli_archived *a, unsigned lines)
{
        struct lines l = {.c = c};
        int r;

        if (no_log(a))
                return CLI_EXIT_OK;
        /* Two passes in bounded memory: count the lines, then print the last `lines`. */
        r = lines_pass(a, &l);
        if (r == 0) {
                say_from(a, ".log.gz");
                l.from = l.n > lines ? l.n - lines : 0;
                l.print = true;
                r = lines_pass(a, &l);
        }
        free(l.line);
        obuf_done(&l.json);
        return r ? r : cli_finish_stdout();
}

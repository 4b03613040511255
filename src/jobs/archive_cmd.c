#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "archive_cmd.h"
#include "archive_scan.h"
#include "catalog.h"
#include "catalog_plan.h"
#include "grep_members.h"
#include "cli.h"
#include "cli_s3.h"
#include "s3_mirror.h"
#include "config.h"
#include "ere.h"
#include "grep.h"
#include "output.h"
#include "logreader.h"
#include "log.h"
#include "macro.h"
#include "util.h"

#define OUT_LIMIT   (128 * 1024) /* a job's output beyond this is written as soon as it may */
#define WINDOW_JOBS 32           /* finished-but-unprinted jobs per worker (see OUT_LIMIT) */
#define PENDING_MAX 4096         /* jobs scanned ahead of the printer, besides one date's */
#define MAX_THREADS 256

enum {
        OPT_CONTENT = 0x100,
        OPT_SINCE,
        OPT_UNTIL,
        OPT_FAILED,
        OPT_TAG,
        OPT_KEY,
        OPT_COLOR,
        OPT_UTC,
        OPT_HELP,
        OPT_ARCHIVE,
        OPT_CONFIG,
};

/* The archive and the config's content names, once the settings are read. */
struct archive_cmd_ctx {
        const char *archive_dir;              /* the archive root (may be a symlink) */
        const struct config_content *content; /* for names */
        size_t n_content;
        /* content by GUID, case-insensitively, each GUID once (its first item) */
        const struct config_content **by_guid;
        size_t n_by_guid;
        const char *prog; /* for messages */
};

/* What ls and search share: the filters, the output form, the archive. */
struct common {
        struct cli *cli;
        const struct archive_cmd_ctx *ctx;
        struct archive_cmd_ctx ctx_store;
        struct scan_filter f;
        const char **contents; /* --content as given: resolved once the config is read */
        size_t n_contents;
        const char **guids, **tags, **keys;
        bool json;
        bool utc;
        int64_t now;
        struct cli_s3 *s3; /* archive.s3: the bucket, read through its cache */
};

static void common_init(struct common *c, struct cli *cli)
{
        *c = (struct common){.cli = cli,
                             .ctx = &c->ctx_store,
                             .ctx_store.prog = "connect-jobs",
                             .json = cli->json,
                             .utc = cli->utc,
                             .now = (int64_t) time(NULL)};
}

static void common_done(struct common *c)
{
        free(c->ctx_store.by_guid);
        free(c->contents);
        free(c->guids);
        free(c->tags);
        free(c->keys);
}

static int push(const char ***list, size_t *n, const char *s)
{
        const char **p = reallocarray(*list, *n + 1, sizeof(*p));

        if (!p)
                return -ENOMEM;
        p[(*n)++] = s;
        *list = p;
        return 0;
}

static int compare_content(const void *x, const void *y)
{
        const struct config_content *const *a = x, *const *b = y;
        int r = strcasecmp((*a)->guid, (*b)->guid);

        if (r != 0)
                return r;
        /* The same GUID twice: the item listed first comes first. */
        return *a < *b ? -1 : *a > *b ? 1 : 0;
}

/* Indexes the config's content items by GUID for config_name(): a name is looked up for every
 * job shown, among thousands of items. A GUID listed twice names its jobs after its first item,
 * as it always has. */
static int content_index(struct archive_cmd_ctx *ctx)
{
        const struct config_content **idx;
        size_t n = 0;

        if (ctx->n_content == 0)
                return 0;
        idx = reallocarray(NULL, ctx->n_content, sizeof(*idx));
        if (!idx)
                return -ENOMEM;
        for (size_t i = 0; i < ctx->n_content; i++)
                idx[i] = &ctx->content[i];
        qsort(idx, ctx->n_content, sizeof(*idx), compare_content);
        for (size_t i = 0; i < ctx->n_content; i++)
                if (n == 0 || strcasecmp(idx[n - 1]->guid, idx[i]->guid) != 0)
                        idx[n++] = idx[i];
        ctx->by_guid = idx;
        ctx->n_by_guid = n;
        return 0;
}

static int compare_guid_content(const void *key, const void *elem)
{
        const struct config_content *const *c = elem;

        return strcasecmp(key, (*c)->guid);
}

static const char *config_name(const struct archive_cmd_ctx *ctx, const char *guid)
{
        const struct config_content *const *c;

        if (ctx->n_by_guid == 0)
                return NULL;
        c = bsearch(guid, ctx->by_guid, ctx->n_by_guid, sizeof(*ctx->by_guid),
                    compare_guid_content);
        return c ? (*c)->name : NULL;
}

/* The name shown for a job: the config's, else the one in its record, else NULL. */
static const char *job_name(const struct archive_cmd_ctx *ctx, const struct scan_job *j)
{
        const char *n = config_name(ctx, j->guid);

        return n ? n : j->record_name;
}

/*
 * Handles an option ls and search share. Returns 1 when handled, 0 when opt is not one of
 * them, or -EINVAL (bad value) / -ENOMEM, message printed.
 */
static int common_option(struct common *c, int opt, const char *arg)
{
        const char *prog = c->ctx->prog;
        int64_t t;
        bool is_day;

        switch (opt) {
        case OPT_CONTENT:
                return push(&c->contents, &c->n_contents, arg) < 0 ? -ENOMEM : 1;
        case OPT_ARCHIVE:
                c->cli->archive = arg;
                return 1;
        case OPT_CONFIG:
                c->cli->config_path = arg;
                return 1;
        case OPT_SINCE:
        case OPT_UNTIL:
                if (scan_parse_time(arg, c->now, &t, &is_day) < 0) {
                        fprintf(stderr,
                                "%s: --%s: \"%s\" is not YYYY-MM-DD, RFC 3339, today, yesterday "
                                "or -Nd/-Nh/-Nm\n",
                                prog, opt == OPT_SINCE ? "since" : "until", arg);
                        return -EINVAL;
                }
                if (opt == OPT_SINCE) {
                        c->f.has_since = true;
                        c->f.since = t;
                } else {
                        c->f.has_until = true;
                        c->f.until = is_day ? scan_next_local_midnight(t) : t + 1;
                }
                return 1;
        case OPT_FAILED:
                c->f.failed = true;
                return 1;
        case OPT_TAG:
                if (push(&c->tags, &c->f.n_tags, arg) < 0)
                        return -ENOMEM;
                c->f.tags = c->tags;
                return 1;
        case OPT_KEY:
                if (push(&c->keys, &c->f.n_keys, arg) < 0)
                        return -ENOMEM;
                c->f.keys = c->keys;
                return 1;
        case OPT_UTC:
                c->utc = true;
                return 1;
        case 'o':
                if (strcmp(arg, "json") == 0)
                        c->json = true;
                else if (strcmp(arg, "text") == 0)
                        c->json = false;
                else {
                        fprintf(stderr, "%s: -o: \"%s\" is not json or text\n", prog, arg);
                        return -EINVAL;
                }
                return 1;
        }
        return 0;
}

#define COMMON_LONG_OPTIONS                                                                        \
        {"content", required_argument, NULL, OPT_CONTENT},                                         \
                {"since", required_argument, NULL, OPT_SINCE},                                     \
                {"until", required_argument, NULL, OPT_UNTIL},                                     \
                {"failed", no_argument, NULL, OPT_FAILED},                                         \
                {"tag", required_argument, NULL, OPT_TAG},                                         \
                {"key", required_argument, NULL, OPT_KEY}, {"utc", no_argument, NULL, OPT_UTC},    \
                {"output", required_argument, NULL, 'o'},                                          \
                {"archive", required_argument, NULL, OPT_ARCHIVE},                                 \
                {"config", required_argument, NULL, OPT_CONFIG},                                   \
        {                                                                                          \
                "help", no_argument, NULL, OPT_HELP                                                \
        }

static void scan_warn_print(void *userdata, const char *path, int error, const char *what)
{
        const struct common *c = userdata;

        fprintf(stderr, "%s: %s/%s: %s: %s\n", c->ctx->prog, c->ctx->archive_dir, path, what,
                error == -EBADMSG ? "not valid JSON" : strerror(-error));
}

/* -s: the scan's warnings are counted (exit 2) but not printed. */
static void scan_warn_silent(void *userdata, const char *path, int error, const char *what)
{
}

/*
 * After the options: reads the settings (the config, or the environment) as every
 * connect-jobs command does, and turns the --content values into GUIDs. Returns 0 or an
 * exit status (message printed).
 */
static int common_settle(struct common *c)
{
        const struct config *cfg;
        int r;

        r = cli_load_settings(c->cli);
        if (r != 0)
                return r;
        cfg = c->cli->config;
        if (!cfg->archive_dir) {
                cli_say("no archive folder: give -c CONFIG or --archive DIR");
                return CLI_EXIT_CONFIG;
        }
        c->ctx_store.archive_dir = cfg->archive_dir;
        r = cli_s3_get(c->cli, &c->s3);
        if (r != 0)
                return r;
        if (c->s3) {
                c->ctx_store.archive_dir = cli_s3_name(c->s3); /* in messages and paths */
                cli_s3_use_catalog(c->s3);
        }
        c->ctx_store.content = cfg->content;
        c->ctx_store.n_content = cfg->n_content;
        if (content_index(&c->ctx_store) < 0) {
                cli_say("out of memory");
                return CLI_EXIT_FAILURE;
        }
        for (size_t i = 0; i < c->n_contents; i++) {
                struct cli_content ct;

                r = cli_resolve_content(c->cli, c->contents[i], &ct);
                if (r != 0)
                        return r;
                c->f.guids = NULL;
                if (push(&c->guids, &c->f.n_guids, ct.guid) < 0) {
                        cli_say("out of memory");
                        return CLI_EXIT_FAILURE;
                }
                c->f.guids = c->guids;
        }
        return 0;
}

/* The archive's root folder; in S3, its cache, brought up to date with the folders the
 * filters select first. */
static int open_root(const struct common *c)
{
        int fd;

        if (c->s3) {
                /* One --key: only that job's records are fetched (the others would not show). */
                if (cli_s3_sync(c->s3, &c->f, c->f.n_keys == 1 ? c->f.keys[0] : NULL) < 0)
                        return -1;
                fd = fcntl(cli_s3_rootfd(c->s3), F_DUPFD_CLOEXEC, 3);
                if (fd < 0)
                        cli_say("cannot open the cache of %s: %m", c->ctx->archive_dir);
                return fd;
        }
        fd = open(c->ctx->archive_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        if (fd < 0)
                cli_say("cannot open the archive %s: %m", c->ctx->archive_dir);
        return fd;
}

static void format_time(const struct common *c, int64_t t, char *buf, size_t size)
{
        time_t tt = (time_t) t;
        struct tm tm;

        if (c->utc ? !gmtime_r(&tt, &tm) : !localtime_r(&tt, &tm))
                (void) snprintf(buf, size, "?");
        else
                (void) strftime(buf, size, c->utc ? "%Y-%m-%d %H:%M:%SZ" : "%Y-%m-%d %H:%M:%S",
                                &tm);
}

/* ---- ls --------------------------------------------------------------------------------- */

static const char *status_word(int status)
{
        switch (status) {
        case 0:
                return "active";
        case 1:
                return "finished";
        case 2:
                return "finalized";
        case 3:
                return "skipped";
        default:
                return "-";
        }
}

static void human_size(int64_t n, char *buf, size_t size)
{
        static const char units[] = "KMGT";

        if (n < 0)
                (void) snprintf(buf, size, "-");
        else if (n < 1024)
                (void) snprintf(buf, size, "%lld", (long long) n);
        else {
                double v = (double) n;
                int u = -1;
                while (v >= 1024 && u < 3) {
                        v /= 1024;
                        u++;
                }
                (void) snprintf(buf, size, v < 10 ? "%.1f%c" : "%.0f%c", v, units[u]);
        }
}

/* s in a column width bytes wide, escaped on a terminal (output_sanitized()). */
static void put_column(FILE *f, const char *s, size_t len, size_t width)
{
        output_sanitized(f, s, len);
        for (; len < width; len++)
                fputc(' ', f);
        fputs("  ", f);
}

static int ls_json(const struct common *c, const struct scan_job *j)
{
        struct obuf b = {0};
        const char *name = job_name(c->ctx, j);
        char path[512];

        obuf_puts(&b, "{\"content_guid\":");
        obuf_json_string(&b, j->guid, strlen(j->guid));
        obuf_puts(&b, ",\"content_name\":");
        if (name)
                obuf_json_string(&b, name, strlen(name));
        else
                obuf_puts(&b, "null");
        obuf_puts(&b, ",\"key\":");
        obuf_json_string(&b, j->key, strlen(j->key));
        obuf_puts(&b, ",\"start_time\":");
        if (j->start_text)
                obuf_json_string(&b, j->start_text, strlen(j->start_text));
        else
                obuf_puts(&b, "null");
        obuf_puts(&b, ",\"tag\":");
        if (j->tag)
                obuf_json_string(&b, j->tag, strlen(j->tag));
        else
                obuf_puts(&b, "null");
        if (j->status >= 0)
                obuf_printf(&b, ",\"status\":%d", j->status);
        else
                obuf_puts(&b, ",\"status\":null");
        if (j->has_exit_code)
                obuf_printf(&b, ",\"exit_code\":%d", j->exit_code);
        else
                obuf_puts(&b, ",\"exit_code\":null");
        if (j->log_bytes >= 0)
                obuf_printf(&b, ",\"log_bytes\":%lld", (long long) j->log_bytes);
        else
                obuf_puts(&b, ",\"log_bytes\":null");
        obuf_printf(&b, ",\"has_error\":%s,\"error_summary\":", j->has_error ? "true" : "false");
        if (j->error_summary)
                obuf_json_string(&b, j->error_summary, strlen(j->error_summary));
        else
                obuf_puts(&b, "null");
        obuf_puts(&b, ",\"path\":");
        if (scan_job_path(j, ".json", path, sizeof(path))) {
                _cleanup_free_ char *full = NULL;
                if (asprintf(&full, "%s/%s", c->ctx->archive_dir, path) < 0)
                        b.error = -ENOMEM;
                else
                        obuf_json_string(&b, full, strlen(full));
        }
        obuf_puts(&b, "}\n");
        if (!b.error)
                output_sanitized(stdout, b.data, b.len);
        obuf_done(&b);
        return b.error;
}

/*
 * The table ls prints. Its columns are as wide as their widest cell, so no row can be
 * printed before every record is read; what is kept of a job is only what its row shows,
 * packed (struct row, then its key and its error summary, as archived) into chunks, with the
 * content name and the tag interned: about 60 bytes a job instead of the record's 300 (the
 * struct scan_job and its seven strings), which the scan frees a date at a time.
 */
#define ROW_CHUNK   (256 * 1024)
#define SUMMARY_MAX 120 /* bytes of an error summary shown; longer ones end in "..." */

struct row {
        int64_t start;
        int64_t log_bytes;
        int32_t exit_code;
        uint32_t name; /* interned: the content's name, or its GUID */
        uint32_t tag;  /* interned; UINT32_MAX: none */
        int16_t status;
        uint8_t has_exit_code, has_error;
        uint16_t key_len, summary_len; /* the bytes that follow the struct */
};

struct row_chunk {
        struct row_chunk *next;
        size_t used;
        char data[ROW_CHUNK];
};

struct strings {
        char **s; /* by id */
        size_t n, cap;
        uint32_t *slots; /* open addressing: id + 1, 0 free */
        size_t n_slots;
};

struct table {
        const struct common *c;
        struct row_chunk *first, *last;
        struct strings names, tags;
        size_t n;
        size_t wname, wkey, wtag;
        int status;
};

static void strings_done(struct strings *t)
{
        for (size_t i = 0; i < t->n; i++)
                free(t->s[i]);
        free(t->s);
        free(t->slots);
}

/* The id of s in t, added when new; -ENOMEM. */
static int64_t strings_intern(struct strings *t, const char *s)
{
        size_t len = strlen(s), mask;
        uint32_t *slot;

        if (2 * (t->n + 1) > t->n_slots) {
                size_t n_slots = t->n_slots ? 2 * t->n_slots : 64;
                uint32_t *slots = calloc(n_slots, sizeof(*slots));

                if (!slots)
                        return -ENOMEM;
                for (size_t i = 0; i < t->n; i++) {
                        size_t h = (size_t) hash64(t->s[i], strlen(t->s[i])) & (n_slots - 1);
                        while (slots[h])
                                h = (h + 1) & (n_slots - 1);
                        slots[h] = (uint32_t) i + 1;
                }
                free(t->slots);
                t->slots = slots;
                t->n_slots = n_slots;
        }
        mask = t->n_slots - 1;
        for (size_t h = (size_t) hash64(s, len) & mask;; h = (h + 1) & mask) {
                slot = &t->slots[h];
                if (!*slot)
                        break;
                if (strcmp(t->s[*slot - 1], s) == 0)
                        return *slot - 1;
        }
        if (t->n == t->cap) {
                size_t cap = t->cap ? 2 * t->cap : 16;
                char **v = reallocarray(t->s, cap, sizeof(*v));

                if (!v)
                        return -ENOMEM;
                t->s = v;
                t->cap = cap;
        }
        t->s[t->n] = strdup(s);
        if (!t->s[t->n])
                return -ENOMEM;
        *slot = (uint32_t) ++t->n;
        return (int64_t) t->n - 1;
}

/* The summary as the table keeps it: at most SUMMARY_MAX bytes (not cutting a UTF-8
 * character) then "...", the bytes as archived; table_print() escapes them on a terminal
 * through output_escape(), as every other column. */
static size_t sanitize_summary(const char *s, char *buf)
{
        size_t n = strlen(s);

        if (n <= SUMMARY_MAX) {
                memcpy(buf, s, n);
                return n;
        }
        n = SUMMARY_MAX;
        while (n > 0 && ((unsigned char) s[n] & 0xc0) == 0x80)
                n--;
        memcpy(buf, s, n);
        memcpy(buf + n, "...", 3);
        return n + 3;
}

static int table_add(struct table *t, const struct scan_job *j)
{
        const char *name = job_name(t->c->ctx, j);
        char summary[SUMMARY_MAX + 3];
        struct row row = {
                .start = j->start,
                .log_bytes = j->log_bytes,
                .exit_code = j->exit_code,
                .tag = UINT32_MAX,
                .status = (int16_t) (j->status >= -1 && j->status <= 3 ? j->status : -1),
                .has_exit_code = j->has_exit_code,
                .has_error = j->has_error,
        };
        size_t key_len = strlen(j->key), need, l;
        int64_t id;

        if (key_len > UINT16_MAX)
                return -EINVAL; /* a file name is at most 255 bytes */
        if (j->has_error)
                row.summary_len = (uint16_t) sanitize_summary(
                        j->error_summary ? j->error_summary : "(error)", summary);
        row.key_len = (uint16_t) key_len;
        id = strings_intern(&t->names, name ? name : j->guid);
        if (id < 0)
                return (int) id;
        row.name = (uint32_t) id;
        if (j->tag) {
                id = strings_intern(&t->tags, j->tag);
                if (id < 0)
                        return (int) id;
                row.tag = (uint32_t) id;
        }
        need = sizeof(row) + key_len + row.summary_len;
        if (!t->last || t->last->used + need > ROW_CHUNK) {
                struct row_chunk *ch = malloc(sizeof(*ch));

                if (!ch)
                        return -ENOMEM;
                ch->next = NULL;
                ch->used = 0;
                if (t->last)
                        t->last->next = ch;
                else
                        t->first = ch;
                t->last = ch;
        }
        char *p = t->last->data + t->last->used;
        memcpy(p, &row, sizeof(row));
        memcpy(p + sizeof(row), j->key, key_len);
        memcpy(p + sizeof(row) + key_len, summary, row.summary_len);
        t->last->used += need;
        t->n++;
        l = strlen(name ? name : j->guid);
        t->wname = l > t->wname ? l : t->wname;
        t->wkey = key_len > t->wkey ? key_len : t->wkey;
        l = j->tag ? strlen(j->tag) : 1;
        t->wtag = l > t->wtag ? l : t->wtag;
        return 0;
}

static void table_print(struct table *t)
{
        const struct common *c = t->c;

        if (t->n > 0)
                printf("%-*s  %-*s  %-*s  %-*s  %-9s  %4s  %6s  %s\n", c->utc ? 20 : 19, "START",
                       (int) t->wname, "CONTENT", (int) t->wkey, "KEY", (int) t->wtag, "TAG",
                       "STATUS", "EXIT", "LOG", "ERROR");
        for (const struct row_chunk *ch = t->first; ch; ch = ch->next)
                for (size_t off = 0; off < ch->used;) {
                        const char *p = ch->data + off;
                        char when[32], size[16], ec[16];
                        struct row row;

                        memcpy(&row, p, sizeof(row));
                        format_time(c, row.start, when, sizeof(when));
                        human_size(row.log_bytes, size, sizeof(size));
                        if (row.has_exit_code)
                                (void) snprintf(ec, sizeof(ec), "%d", row.exit_code);
                        else
                                (void) snprintf(ec, sizeof(ec), "-");
                        const char *name = t->names.s[row.name];
                        const char *tag = row.tag == UINT32_MAX ? "-" : t->tags.s[row.tag];

                        printf("%-*s  ", c->utc ? 20 : 19, when);
                        put_column(stdout, name, strlen(name), t->wname);
                        put_column(stdout, p + sizeof(row), row.key_len, t->wkey);
                        put_column(stdout, tag, strlen(tag), t->wtag);
                        printf("%-9s  %4s  %6s  ", status_word(row.status), ec, size);
                        output_sanitized(stdout, p + sizeof(row) + row.key_len, row.summary_len);
                        putchar('\n');
                        off += sizeof(row) + row.key_len + row.summary_len;
                }
}

static void table_done(struct table *t)
{
        while (t->first) {
                struct row_chunk *ch = t->first;
                t->first = ch->next;
                free(ch);
        }
        strings_done(&t->names);
        strings_done(&t->tags);
}

/* A date's jobs, as the scan hands them over: printed at once with -o json (one date's records
 * are all that is held), else kept as rows of the table. */
static int ls_batch(void *userdata, struct scan_job *jobs, size_t n, bool last)
{
        struct table *t = userdata;
        int r = 0;

        (void) last;
        for (size_t i = 0; i < n && r >= 0; i++) {
                if (t->c->json) {
                        if (ls_json(t->c, &jobs[i]) < 0)
                                t->status = 1;
                } else
                        r = table_add(t, &jobs[i]);
        }
        scan_jobs_free(jobs, n);
        return r;
}

int archive_cmd_ls(struct cli *cli, int argc, char **argv)
{
        static const struct option longopts[] = {
                COMMON_LONG_OPTIONS, {"reverse", no_argument, NULL, 'r'}, {NULL, 0, NULL, 0}};
        const struct archive_cmd_ctx *ctx;
        struct common c;
        _cleanup_close_ int rootfd = -1;
        struct catalog *cat = NULL;
        unsigned warnings = 0;
        size_t uncovered = 0;
        bool reverse = false;
        int opt, r;

        common_init(&c, cli);
        ctx = c.ctx;
        optind = 0;
        while ((opt = getopt_long(argc, argv, "+ro:", longopts, NULL)) != -1) {
                if (opt == 'r') {
                        reverse = true;
                        continue;
                }
                if (opt == OPT_HELP) {
                        printf("Usage: %s ls [FILTERS] [-r] [-o json] "
                               "[--utc]\n" ARCHIVE_CMD_FILTERS_HELP,
                               ctx->prog);
                        common_done(&c);
                        return 0;
                }
                r = common_option(&c, opt, optarg);
                if (r <= 0) {
                        if (r == 0)
                                fprintf(stderr, "Usage: %s ls [FILTERS] [-r] [-o json]\n",
                                        ctx->prog);
                        common_done(&c);
                        return 2;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "%s: ls takes no arguments (\"%s\")\n", ctx->prog, argv[optind]);
                common_done(&c);
                return 2;
        }
        r = common_settle(&c);
        if (r != 0) {
                common_done(&c);
                return r;
        }
        rootfd = open_root(&c);
        if (rootfd < 0) {
                common_done(&c);
                return 1;
        }
        /* the job table, where it covers (in S3: the bucket's, owned by the cache) */
        cat = c.s3 ? NULL : catalog_plan_open(rootfd, NULL, NULL, NULL);
        c.f.catalog = c.s3 ? cli_s3_catalog(c.s3) : cat;
        c.f.uncovered = &uncovered;
        struct table t = {.c = &c, .wname = 7, .wkey = 3, .wtag = 3};
        c.f.newest_first = reverse;
        r = archive_scan_dates(rootfd, &c.f, scan_warn_print, &c, ls_batch, &t, &warnings);
        if (r < 0) {
                fprintf(stderr, "%s: %s: %s\n", ctx->prog, ctx->archive_dir, strerror(-r));
                table_done(&t);
                catalog_free(cat);
                common_done(&c);
                return 1;
        }
        if (warnings > 0)
                t.status = 1;
        if (cat)
                catalog_plan_notice(ctx->prog, uncovered);
        if (!c.json)
                table_print(&t);
        if (fflush(stdout) != 0)
                t.status = 1;
        table_done(&t);
        catalog_free(cat);
        common_done(&c);
        return t.status;
}

struct slot {
        struct obuf out, err;
        bool done;
        bool started; /* some of its output was written already */
        bool printed; /* the job wrote a line (context separators) */
};

struct engine {
        const struct common *c;
        const struct grep_opts *o;
        const struct matcher *m;
        const struct catalog *cat; /* its rows' matches: a job it rules out is not read */
        int rootfd;
        pthread_t *th;
        unsigned started;
        unsigned busy; /* threads searching a job */

        pthread_mutex_t lock;
        pthread_cond_t cond;
        /* Job i (counted from the first the scan gave) is jobs[i - base]; the scan appends
         * (engine_push), and the jobs printed already are dropped to make room. */
        struct scan_job *jobs;
        size_t base, n, cap;
        bool scan_done; /* n is final */
        size_t next;    /* the next job to take */
        size_t turn;    /* the next job to print */
        size_t window;
        struct slot *slots;
        bool any_printed;
        bool any_selected;
        bool any_error;
        bool no_messages; /* -s */
        bool stop;        /* -q found a line: nothing more to do */
        int fatal;
        /* Jobs with a log the search came to, and those of them it read (the others the
         * catalog ruled out): CJA_CATALOG_STATS=1 prints them. */
        atomic_size_t jobs_seen, jobs_read;
        /* In S3: dates scanned, held until their logs are fetched (engine_push_s3). */
        struct ahead {
                struct scan_job *batch;
                size_t n;
        } * ahead;
        size_t n_ahead, cap_ahead, ahead_jobs;
        bool whole_logs; /* CJA_S3_PARTS=0: every log read is fetched whole (to compare) */
        /* The members of the jobs read that the catalog lists, and those of them decoded. */
        atomic_size_t members_seen, members_read;
};

struct flush_ctx {
        struct engine *e;
        size_t index;
};

/* Writes what slot i holds; called with the lock held, when i is the turn. */
static void write_slot(struct engine *e, struct slot *s)
{
        if (s->err.len) {
                fwrite(s->err.data, 1, s->err.len, stderr);
                s->err.len = 0;
        }
        if (s->out.len) {
                if (!s->started && e->any_printed && (e->o->before || e->o->after) && !e->o->json &&
                    !e->o->count && !e->o->list)
                        fputs(e->o->color ? "\033[36m--\033[m\n" : "--\n", stdout);
                /* text was escaped for a terminal as it was written (our colours are not);
                 * JSON only here */
                if (e->o->json)
                        output_sanitized(stdout, s->out.data, s->out.len);
                else
                        fwrite(s->out.data, 1, s->out.len, stdout);
                s->out.len = 0;
                s->started = true;
                e->any_printed = true;
        }
}

/* obuf's flush hook: a job whose output outgrows OUT_LIMIT waits for its turn, then writes. */
static int flush_when_turn(struct obuf *b, void *userdata)
{
        struct flush_ctx *fc = userdata;
        struct engine *e = fc->e;

        pthread_mutex_lock(&e->lock);
        while (e->turn != fc->index)
                pthread_cond_wait(&e->cond, &e->lock);
        write_slot(e, &e->slots[fc->index % e->window]);
        pthread_mutex_unlock(&e->lock);
        (void) b;
        return 0;
}

/* The catalog's members of j (malloc'd) and how many of them may match, when a search can
 * read only those (grep_members()); -ESTALE when it cannot (the catalog does not know them,
 * or the options need every line): read the log whole. */
static int job_members(const struct engine *e, const struct scan_job *j,
                       struct catalog_member **ret, size_t *ret_n, size_t *ret_may)
{
        size_t may = 0;

        if (!e->cat || j->catalog_row < 0 || !grep_members_usable(e->o) ||
            catalog_row_members(e->cat, (uint32_t) j->catalog_row, ret, ret_n) < 0)
                return -ESTALE;
        for (size_t k = 0; k < *ret_n; k++)
                may += (*ret)[k].may;
        *ret_may = may;
        return 0;
}

/* Searches the members of j that the catalog says may match: as grep_members(), -ESTALE
 * when the catalog does not know them (or all may match): read the log whole. */
static int search_members(struct engine *e, const struct scan_job *j, struct grep_job *g, int dfd,
                          const char *name, unsigned threads)
{
        struct catalog_member *m = NULL;
        size_t n = 0, may = 0, decoded = 0;
        int r;

        if (job_members(e, j, &m, &n, &may) < 0)
                return -ESTALE;
        atomic_fetch_add(&e->members_seen, n);
        if (may == n) {
                atomic_fetch_add(&e->members_read, n);
                free(m);
                return -ESTALE;
        }
        r = grep_members(g, dfd, name, threads, m, n, &decoded);
        atomic_fetch_add(&e->members_read, decoded);
        free(m);
        return r;
}

/* Searches job i, j, into its slot, decoding its members on decode_threads. Returns 1 when it
 * selected a line, 0, or -ENOMEM. */
static int search_one(struct engine *e, size_t i, const struct scan_job *j, unsigned decode_threads,
                      struct matcher_scratch *ms)
{
        struct slot *s = &e->slots[i % e->window];
        struct flush_ctx fc = {.e = e, .index = i};
        struct log_reader *rd = NULL;
        struct grep_job *g = NULL;
        char rel[512], when[32], name_buf[300];
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int dfd = -1, part_dfd = -1;
        char part_name[300];
        struct grep_job_info info;
        int r, selected = 0;

        s->out.flush = flush_when_turn;
        s->out.userdata = &fc;
        s->out.limit = OUT_LIMIT;
        if (j->log_bytes < 0)
                return 0; /* archived as its record alone: no log to search */
        atomic_fetch_add(&e->jobs_seen, 1);
        if (e->cat && j->catalog_row >= 0 &&
            !catalog_row_may_match(e->cat, (uint32_t) j->catalog_row))
                return 0; /* its trigrams cannot hold a match: it prints nothing */
        atomic_fetch_add(&e->jobs_read, 1);
        if (!scan_job_path(j, ".log.gz", rel, sizeof(rel)) ||
            asprintf(&path, "%s/%s", e->c->ctx->archive_dir, rel) < 0)
                return -ENOMEM;
        format_time(e->c, j->start, when, sizeof(when));
        info = (struct grep_job_info){.content_guid = j->guid,
                                      .content_name = job_name(e->c->ctx, j),
                                      .key = j->key,
                                      .start_time = j->start_text,
                                      .start_display = when,
                                      .path = path};
        dfd = scan_job_open_dir(e->rootfd, j);
        if (dfd < 0) {
                r = dfd;
                goto fail;
        }
        (void) snprintf(name_buf, sizeof(name_buf), "%s.log.gz", j->key);
        r = grep_job_new(e->m, ms, e->o, &info, &s->out, &g);
        if (r < 0)
                goto fail;
        /* Only the members that may hold a match, when the catalog knows them; in S3 from
         * the part of the log fetched (engine_push_s3), when it was. */
        if (e->c->s3)
                (void) cli_s3_part_open(e->c->s3, j, &part_dfd, part_name, sizeof(part_name));
        r = search_members(e, j, g, part_dfd >= 0 ? part_dfd : dfd,
                           part_dfd >= 0 ? part_name : name_buf, decode_threads);
        if (part_dfd >= 0 && r < 0 && r != -ENOMEM && s->out.len == 0 && !s->started &&
            grep_job_count(g) == 0) {
                /* The part is not what the catalog said: the log whole, as a full scan. */
                log_printf(LOG_DEBUG, "%s: its part: %s; fetching it whole", rel,
                           log_reader_strerror(r));
                grep_job_free(g);
                g = NULL;
                r = grep_job_new(e->m, ms, e->o, &info, &s->out, &g);
                if (r < 0)
                        goto fail;
                (void) cli_s3_fetch_logs(e->c->s3, j, 1);
                r = -ESTALE;
        }
        if (r != -ESTALE)
                goto done;
        r = log_reader_open(dfd, name_buf, decode_threads, &rd);
        if (r < 0)
                goto fail;
        for (;;) {
                const char *data;
                ssize_t k = log_reader_next(rd, &data);
                if (k <= 0) {
                        r = (int) k;
                        break;
                }
                r = grep_job_feed(g, data, (size_t) k);
                if (r < 0 || grep_job_satisfied(g))
                        break;
        }
done:
        /* What was found before an error still counts and is printed, as grep does. */
        {
                int k;
                if (r < 0)
                        grep_job_mark_failed(g);
                k = grep_job_finish(g);
                if (r >= 0)
                        r = k;
        }
        selected = grep_job_count(g) > 0;
fail:
        if (r < 0) {
                const char *why = r == -E2BIG ? "a line is too long, or the pattern too costly"
                                              : log_reader_strerror(r);
                obuf_printf(&s->err, "%s: %s: %s\n", e->c->ctx->prog, path ? path : rel, why);
                s->err.error = 0;
        }
        grep_job_free(g);
        log_reader_free(rd);
        return r == -ENOMEM ? r : selected;
}

static void *worker(void *arg)
{
        struct engine *e = arg;
        struct matcher_scratch *ms = NULL;

        if (matcher_scratch_new(e->m, &ms) < 0) {
                pthread_mutex_lock(&e->lock);
                e->fatal = -ENOMEM;
                pthread_cond_broadcast(&e->cond); /* engine_push() may be waiting */
                pthread_mutex_unlock(&e->lock);
                matcher_scratch_free(ms);
                return NULL;
        }
        for (;;) {
                struct scan_job job;
                unsigned decode = 1;
                size_t i;
                struct slot *s;
                int k;

                pthread_mutex_lock(&e->lock);
                while (!e->fatal && !e->stop &&
                       (e->next >= e->n ? !e->scan_done : e->next >= e->turn + e->window))
                        pthread_cond_wait(&e->cond, &e->lock);
                if (e->next >= e->n || e->fatal || e->stop) {
                        pthread_mutex_unlock(&e->lock);
                        break;
                }
                i = e->next++;
                job = e->jobs[i - e->base]; /* its strings stay until it is printed */
                /* Nothing else to take now (one big log found by --key, or the last job): its
                 * members are decoded on this thread and the ones that would only wait. */
                if (e->next == e->n)
                        decode = e->started - e->busy;
                e->busy++;
                pthread_mutex_unlock(&e->lock);

                k = search_one(e, i, &job, decode, ms);

                pthread_mutex_lock(&e->lock);
                e->busy--;
                if (k > 0) {
                        e->any_selected = true;
                        if (e->o->quiet)
                                e->stop = true;
                } else if (k < 0)
                        e->fatal = k;
                s = &e->slots[i % e->window];
                s->done = true;
                if (s->err.len)
                        e->any_error = true;
                if (e->no_messages)
                        s->err.len = 0;
                while (e->turn < e->n && e->slots[e->turn % e->window].done) {
                        struct slot *t = &e->slots[e->turn % e->window];
                        write_slot(e, t);
                        if (t->out.error || t->err.error)
                                e->fatal = -ENOMEM;
                        t->done = t->started = false;
                        e->turn++;
                }
                pthread_cond_broadcast(&e->cond);
                pthread_mutex_unlock(&e->lock);
        }
        matcher_scratch_free(ms);
        return NULL;
}

static int parse_count(const char *prog, const char *opt, const char *s, uint64_t max,
                       uint64_t *ret)
{
        char *end;
        unsigned long long v;

        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno || end == s || *end || s[0] == '-' || v > max) {
                fprintf(stderr, "%s: %s: \"%s\" is not a number (0..%llu)\n", prog, opt, s,
                        (unsigned long long) max);
                return -EINVAL;
        }
        *ret = v;
        return 0;
}

static void search_usage(const char *prog, FILE *f)
{
        fprintf(f,
                "Usage: %s search [FILTERS] [GREP OPTIONS] PATTERN\n" ARCHIVE_CMD_FILTERS_HELP
                "GREP OPTIONS: -E -F -i -w -x -v -l -L -c -o -q -s -h -H -m N -A N -B N -C N\n"
                "              -e PATTERN --color=auto|always|never\n"
                "OUTPUT:       -o json | -o text (the output form; any other -o is grep's\n"
                "              --only-matching) --utc -j THREADS\n",
                prog);
}

/*
 * search's -o is grep's --only-matching, except "-o json", "-o text", "-ojson" and "-otext",
 * the output form every connect-jobs command takes: those become "--output=...". Returns a
 * new argv (the strings are argv's or static), or NULL when out of memory.
 */
static char **search_argv(int argc, char **argv, int *ret_argc)
{
        /* options whose value is the next argument (short: the last letter of a cluster) */
        static const char short_arg[] = "mABCej";
        static const char *const long_arg[] = {
                "--content",        "--since",   "--until",  "--tag",       "--key",
                "--output",         "--archive", "--config", "--max-count", "--after-context",
                "--before-context", "--context", "--regexp", "--threads"};
        char **out = calloc((size_t) argc + 1, sizeof(*out));
        int n = 0;

        if (!out)
                return NULL;
        for (int i = 0; i < argc; i++) {
                const char *a = argv[i];
                bool value_next = false;

                if (i == 0 || a[0] != '-' || a[1] == 0) {
                        out[n++] = argv[i];
                        continue;
                }
                if (strcmp(a, "--") == 0) {
                        while (i < argc)
                                out[n++] = argv[i++];
                        break;
                }
                if (strcmp(a, "-o") == 0 && i + 1 < argc &&
                    (strcmp(argv[i + 1], "json") == 0 || strcmp(argv[i + 1], "text") == 0)) {
                        out[n++] =
                                strcmp(argv[++i], "json") == 0 ? "--output=json" : "--output=text";
                        continue;
                }
                if (strcmp(a, "-ojson") == 0 || strcmp(a, "-otext") == 0) {
                        out[n++] = a[2] == 'j' ? "--output=json" : "--output=text";
                        continue;
                }
                out[n++] = argv[i];
                if (a[1] == '-') {
                        for (size_t k = 0; k < sizeof(long_arg) / sizeof(long_arg[0]); k++)
                                if (strcmp(a, long_arg[k]) == 0)
                                        value_next = true;
                } else {
                        /* a cluster: the first letter taking a value takes the rest */
                        for (const char *c = a + 1; *c; c++)
                                if (strchr(short_arg, *c)) {
                                        value_next = c[1] == 0;
                                        break;
                                }
                }
                if (value_next && i + 1 < argc)
                        out[n++] = argv[++i];
        }
        *ret_argc = n;
        return out;
}

/* What search's command line asked for, beyond the grep options themselves. */
struct search_args {
        char *patterns; /* several -e, newline-separated; owned */
        const char *pattern;
        const char *color;
        unsigned threads;
        bool max_zero;    /* -m 0: grep reads nothing and exits 1 */
        bool no_messages; /* -s: no word about logs and records that cannot be read */
};

/*
 * Parses search's options into c, o and a. Returns true to go on; false to end with the exit
 * status in *ret_status (0 after --help; 2 after a usage error or a bad value, whose message
 * is already printed).
 */
static bool search_options(struct common *c, struct grep_opts *o, struct search_args *a, int argc,
                           char **argv, int *ret_status)
{
        static const struct option longopts[] = {COMMON_LONG_OPTIONS,
                                                 {"fixed-strings", no_argument, NULL, 'F'},
                                                 {"ignore-case", no_argument, NULL, 'i'},
                                                 {"word-regexp", no_argument, NULL, 'w'},
                                                 {"invert-match", no_argument, NULL, 'v'},
                                                 {"line-regexp", no_argument, NULL, 'x'},
                                                 {"extended-regexp", no_argument, NULL, 'E'},
                                                 {"files-without-match", no_argument, NULL, 'L'},
                                                 {"only-matching", no_argument, NULL, 'o'},
                                                 {"quiet", no_argument, NULL, 'q'},
                                                 {"silent", no_argument, NULL, 'q'},
                                                 {"no-messages", no_argument, NULL, 's'},
                                                 {"no-filename", no_argument, NULL, 'h'},
                                                 {"with-filename", no_argument, NULL, 'H'},
                                                 {"count", no_argument, NULL, 'c'},
                                                 {"files-with-matches", no_argument, NULL, 'l'},
                                                 {"max-count", required_argument, NULL, 'm'},
                                                 {"after-context", required_argument, NULL, 'A'},
                                                 {"before-context", required_argument, NULL, 'B'},
                                                 {"context", required_argument, NULL, 'C'},
                                                 {"regexp", required_argument, NULL, 'e'},
                                                 {"color", optional_argument, NULL, OPT_COLOR},
                                                 {"colour", optional_argument, NULL, OPT_COLOR},
                                                 {"threads", required_argument, NULL, 'j'},
                                                 {NULL, 0, NULL, 0}};
        const char *prog = c->ctx->prog;
        int opt, r;
        uint64_t v;

        optind = 0;
        while ((opt = getopt_long(argc, argv, "EFiwxvclLoqshHm:A:B:C:e:j:", longopts, NULL)) !=
               -1) {
                switch (opt) {
                case 'E':
                        o->fixed = false; /* the last of -E and -F wins, as in grep */
                        continue;
                case 'F':
                        o->fixed = true;
                        continue;
                case 'x':
                        o->line = true;
                        continue;
                case 'o':
                        if (optarg)
                                break; /* --output */
                        o->only = true;
                        continue;
                case 'q':
                        o->quiet = true;
                        continue;
                case 's':
                        a->no_messages = true;
                        continue;
                case 'h':
                        o->no_prefix = true;
                        continue;
                case 'H':
                        o->no_prefix = false;
                        continue;
                case 'L':
                        o->list_without = true;
                        o->list = false;
                        continue;
                case 'i':
                        o->ignore_case = true;
                        continue;
                case 'w':
                        o->word = true;
                        continue;
                case 'v':
                        o->invert = true;
                        continue;
                case 'c':
                        o->count = true;
                        continue;
                case 'l':
                        o->list = true;
                        o->list_without = false;
                        continue;
                case 'e':
                        /* Several -e: any of them (newline-separated, as grep). */
                        if (a->patterns) {
                                char *p = NULL;
                                if (asprintf(&p, "%s\n%s", a->patterns, optarg) < 0) {
                                        fprintf(stderr, "%s: %s\n", prog, strerror(ENOMEM));
                                        goto fail;
                                }
                                free(a->patterns);
                                a->patterns = p;
                        } else if (!(a->patterns = strdup(optarg))) {
                                fprintf(stderr, "%s: %s\n", prog, strerror(ENOMEM));
                                goto fail;
                        }
                        a->pattern = a->patterns;
                        continue;
                case OPT_COLOR:
                        a->color = optarg ? optarg : "auto";
                        if (strcmp(a->color, "auto") && strcmp(a->color, "always") &&
                            strcmp(a->color, "never")) {
                                fprintf(stderr,
                                        "%s: --color: \"%s\" is not auto, always or never\n", prog,
                                        a->color);
                                goto fail;
                        }
                        continue;
                case 'm':
                        if (parse_count(prog, "-m", optarg, UINT64_MAX / 2, &o->max_count) < 0)
                                goto fail;
                        a->max_zero = o->max_count == 0;
                        continue;
                case 'A':
                case 'B':
                case 'C':
                        if (parse_count(prog, (char[]){'-', (char) opt, 0}, optarg, 1000000, &v) <
                            0)
                                goto fail;
                        if (opt != 'B')
                                o->after = (unsigned) v;
                        if (opt != 'A')
                                o->before = (unsigned) v;
                        continue;
                case 'j':
                        if (parse_count(prog, "-j", optarg, MAX_THREADS, &v) < 0 || v == 0)
                                goto fail;
                        a->threads = (unsigned) v;
                        continue;
                case OPT_HELP:
                        search_usage(prog, stdout);
                        *ret_status = 0;
                        return false;
                }
                r = common_option(c, opt, optarg);
                if (r == 0) {
                        search_usage(prog, stderr);
                        goto fail;
                }
                if (r < 0)
                        goto fail;
        }
        if (!a->pattern && optind < argc)
                a->pattern = argv[optind++];
        if (!a->pattern || optind < argc) {
                search_usage(prog, stderr);
                goto fail;
        }
        return true;
fail:
        *ret_status = 2;
        return false;
}

/* Starts `threads` searching threads, which wait for engine_push() to bring jobs. */
static int engine_start(struct engine *e, unsigned threads)
{
        pthread_mutex_init(&e->lock, NULL);
        pthread_cond_init(&e->cond, NULL);
        e->window = (size_t) threads * WINDOW_JOBS;
        e->slots = calloc(e->window, sizeof(*e->slots));
        e->th = calloc(threads, sizeof(*e->th));
        if (!e->slots || !e->th)
                return -ENOMEM;
        for (; e->started < threads; e->started++)
                if (pthread_create(&e->th[e->started], NULL, worker, e) != 0)
                        break;
        return e->started > 0 ? 0 : -EAGAIN;
}

/* The scan's callback (scan_batch_fn): appends a date's jobs, sorted, for the threads; waits
 * while PENDING_MAX are ahead of the printer, so memory stays bounded on any archive. */
static int engine_push(void *userdata, struct scan_job *batch, size_t n, bool last)
{
        struct engine *e = userdata;
        int r;

        pthread_mutex_lock(&e->lock);
        while (e->n - e->turn > PENDING_MAX && !e->fatal && !e->stop)
                pthread_cond_wait(&e->cond, &e->lock);
        r = e->fatal ? e->fatal : e->stop ? -ECANCELED : 0;
        if (r == 0 && e->n - e->base + n > e->cap) {
                /* Jobs before the turn are printed: no thread looks at them any more. */
                size_t printed = e->turn - e->base, live = e->n - e->turn;

                for (size_t k = 0; k < printed; k++)
                        scan_job_done(&e->jobs[k]);
                if (live)
                        memmove(e->jobs, e->jobs + printed, live * sizeof(*e->jobs));
                e->base = e->turn;
                if (live + n > e->cap) {
                        size_t cap = 2 * e->cap > live + n ? 2 * e->cap : live + n + 256;
                        struct scan_job *jobs = reallocarray(e->jobs, cap, sizeof(*jobs));
                        if (jobs) {
                                e->jobs = jobs;
                                e->cap = cap;
                        } else {
                                r = e->fatal = -ENOMEM;
                        }
                }
        }
        if (r == 0) {
                if (n)
                        memcpy(e->jobs + (e->n - e->base), batch, n * sizeof(*batch));
                e->n += n;
                e->scan_done = last;
                pthread_cond_broadcast(&e->cond);
        }
        pthread_mutex_unlock(&e->lock);
        if (r < 0)
                scan_jobs_free(batch, n);
        else
                free(batch);
        return r;
}

/*
 * In S3: the logs of the dates scanned are fetched at once, S3_AHEAD_JOBS jobs' worth (a date
 * may hold one job: fetching date by date would be one GET at a time), before their jobs go to
 * the threads, which search the ones before meanwhile. A log that could not be fetched is
 * missing to its reader, which says so (exit 2), as a missing file on disk is.
 */
#define S3_AHEAD_JOBS 256

static void ahead_drop(struct engine *e)
{
        for (size_t i = 0; i < e->n_ahead; i++)
                scan_jobs_free(e->ahead[i].batch, e->ahead[i].n);
        free(e->ahead);
        e->ahead = NULL;
        e->n_ahead = e->cap_ahead = e->ahead_jobs = 0;
}

/*
 * What to fetch of j's log: 1 and *p, the byte ranges of the members its search reads
 * (grep_members_needed(); the catalog's offsets), when it reads only those; 0 when it reads
 * none (no member may match: nothing to fetch); -1 when it reads the log whole.
 */
static int job_part(const struct engine *e, const struct scan_job *j, struct s3_part *p)
{
        struct catalog_member *m = NULL;
        struct s3_range *ranges = NULL;
        size_t n = 0, may = 0, *idx = NULL, k = 0;
        int r = -1;

        if (j->log_bytes < 0)
                return 0;
        if (e->whole_logs || job_members(e, j, &m, &n, &may) < 0)
                return -1;
        if (may == n || n == 0)
                goto out;
        idx = calloc(n, sizeof(*idx));
        ranges = calloc(n, sizeof(*ranges));
        if (!idx || !ranges || grep_members_needed(m, n, idx, &k) < 0)
                goto out;
        for (size_t u = 0; u < k; u++)
                ranges[u] = (struct s3_range){m[idx[u]].offset, m[idx[u]].size};
        r = k > 0;
        if (r > 0) {
                *p = (struct s3_part){.job = j,
                                      .ranges = ranges,
                                      .n_ranges = k,
                                      .size = m[n - 1].offset + m[n - 1].size};
                ranges = NULL;
        }
out:
        free(ranges);
        free(idx);
        free(m);
        return r;
}

static int engine_push_s3(void *userdata, struct scan_job *batch, size_t n, bool last)
{
        struct engine *e = userdata;
        struct scan_job *want;
        struct s3_part *parts;
        size_t k = 0, n_parts = 0;
        bool stop;
        int r = 0;

        if (e->n_ahead == e->cap_ahead) {
                size_t cap = e->cap_ahead ? 2 * e->cap_ahead : 64;
                struct ahead *p = reallocarray(e->ahead, cap, sizeof(*p));
                if (!p) {
                        scan_jobs_free(batch, n);
                        return -ENOMEM;
                }
                e->ahead = p;
                e->cap_ahead = cap;
        }
        e->ahead[e->n_ahead++] = (struct ahead){batch, n};
        e->ahead_jobs += n;
        if (!last && e->ahead_jobs < S3_AHEAD_JOBS)
                return 0;
        pthread_mutex_lock(&e->lock);
        stop = e->stop || e->fatal;
        pthread_mutex_unlock(&e->lock);
        /* Not the logs the catalog rules out: the threads will not read them. */
        want = stop ? NULL : malloc(e->ahead_jobs * sizeof(*want) + 1);
        parts = stop ? NULL : calloc(e->ahead_jobs + 1, sizeof(*parts));
        for (size_t b = 0; want && parts && b < e->n_ahead; b++)
                for (size_t i = 0; i < e->ahead[b].n; i++) {
                        const struct scan_job *j = &e->ahead[b].batch[i];
                        int k2;
                        if (e->cat && j->catalog_row >= 0 &&
                            !catalog_row_may_match(e->cat, (uint32_t) j->catalog_row))
                                continue;
                        k2 = job_part(e, j, &parts[n_parts]);
                        if (k2 > 0)
                                n_parts++; /* only what its search reads of it */
                        else if (k2 < 0)
                                want[k++] = *j; /* shallow: the batch owns the strings */
                }
        if (parts && n_parts > 0)
                (void) cli_s3_fetch_parts(e->c->s3, parts, n_parts);
        if (want && k > 0)
                (void) cli_s3_fetch_logs(e->c->s3, want, k);
        for (size_t i = 0; i < n_parts; i++)
                free((void *) parts[i].ranges);
        free(parts);
        free(want);
        for (size_t b = 0; b < e->n_ahead; b++) {
                struct ahead *a = &e->ahead[b];
                if (r >= 0)
                        r = engine_push(userdata, a->batch, a->n, last && b + 1 == e->n_ahead);
                else
                        scan_jobs_free(a->batch, a->n);
        }
        e->n_ahead = e->ahead_jobs = 0;
        return r;
}

/* Lets the threads finish the jobs pushed (all of them, or those before a scan error); after
 * engine_start(), whatever it returned. */
static void engine_finish(struct engine *e)
{
        pthread_mutex_lock(&e->lock);
        e->scan_done = true;
        pthread_cond_broadcast(&e->cond);
        pthread_mutex_unlock(&e->lock);
        for (unsigned t = 0; t < e->started; t++)
                pthread_join(e->th[t], NULL);
        pthread_cond_destroy(&e->cond);
        pthread_mutex_destroy(&e->lock);
        for (size_t i = 0; e->slots && i < e->window; i++) {
                obuf_done(&e->slots[i].out);
                obuf_done(&e->slots[i].err);
        }
        free(e->slots);
        free(e->th);
        if (e->jobs)
                scan_jobs_free(e->jobs, e->n - e->base);
}

int archive_cmd_search(struct cli *cli, int argc, char **argv)
{
        const struct archive_cmd_ctx *ctx;
        struct common c;
        struct grep_opts o = {0};
        struct engine e = {.c = &c, .o = &o};
        struct search_args a = {.color = "auto", .threads = scan_cpu_count()};
        struct matcher *m = NULL;
        struct catalog *cat = NULL;
        _cleanup_close_ int rootfd = -1;
        unsigned warnings = 0;
        size_t uncovered = 0, ruled_out = 0;
        char err[300];
        char **sargv = NULL;
        int r, status = 2, sargc = 0;

        common_init(&c, cli);
        ctx = c.ctx;
        sargv = search_argv(argc, argv, &sargc);
        if (!sargv) {
                fprintf(stderr, "%s: %s\n", ctx->prog, strerror(ENOMEM));
                goto out;
        }
        if (!search_options(&c, &o, &a, sargc, sargv, &status))
                goto out;
        r = common_settle(&c);
        if (r != 0) {
                /* grep's convention: any error is 2, whatever its kind. */
                status = r == CLI_EXIT_CONFIG ? r : 2;
                goto out;
        }
        o.json = c.json;
        o.color = !o.json && !o.quiet &&
                  (strcmp(a.color, "always") == 0 ||
                   (strcmp(a.color, "auto") == 0 && isatty(STDOUT_FILENO)));
        o.escape = !o.json && isatty(STDOUT_FILENO);
        o.utf8 = ere_locale_is_utf8();
        e.no_messages = a.no_messages;
        if (a.max_zero) {
                status = 1;
                goto out;
        }
        r = matcher_new(a.pattern, &o, &m, err, sizeof(err));
        if (r < 0) {
                fprintf(stderr, "%s: %s\n", ctx->prog, r == -ENOMEM ? strerror(ENOMEM) : err);
                goto out;
        }
        rootfd = open_root(&c);
        if (rootfd < 0)
                goto out;
        if (c.s3) {
                /* The bucket's catalog (owned by the cache), planned as catalog_plan_open()
                 * does for a local one. */
                struct catalog *sc = cli_s3_catalog(c.s3);
                struct catalog_query *q = sc ? catalog_plan(a.pattern, &o, m) : NULL;
                if (q && catalog_match(sc, q) < 0)
                        sc = NULL; /* a half-evaluated match must not rule jobs out */
                catalog_query_free(q);
                c.f.catalog = sc;
                e.cat = sc;
                e.whole_logs = getenv("CJA_S3_PARTS") && strcmp(getenv("CJA_S3_PARTS"), "0") == 0;
        } else {
                cat = catalog_plan_open(rootfd, a.pattern, &o, m);
                c.f.catalog = cat;
                e.cat = cat;
        }
        c.f.uncovered = &uncovered;
        c.f.ruled_out = &ruled_out; /* they print nothing: not even copied */
        e.m = m;
        e.rootfd = rootfd;
        /* The search starts on the first date's jobs while the later dates are scanned. */
        r = engine_start(&e, a.threads);
        if (r < 0) {
                fprintf(stderr, "%s: %s\n", ctx->prog, strerror(-r));
                engine_finish(&e);
                goto out;
        }
        r = archive_scan_dates(rootfd, &c.f, a.no_messages ? scan_warn_silent : scan_warn_print, &c,
                               c.s3 ? engine_push_s3 : engine_push, &e, &warnings);
        ahead_drop(&e); /* what a scan error left unpushed */
        engine_finish(&e);
        if (getenv("CJA_CATALOG_STATS") && strcmp(getenv("CJA_CATALOG_STATS"), "1") == 0)
                fprintf(stderr, "%s: catalog: %zu of %zu jobs read, %zu of %zu members\n",
                        ctx->prog, atomic_load(&e.jobs_read), atomic_load(&e.jobs_seen) + ruled_out,
                        atomic_load(&e.members_read), atomic_load(&e.members_seen));
        if (cat && !a.no_messages)
                catalog_plan_notice(ctx->prog, uncovered);
        if (r < 0 && r != e.fatal && r != -ECANCELED) {
                fprintf(stderr, "%s: %s: %s\n", ctx->prog, ctx->archive_dir, strerror(-r));
                goto out;
        }
        if (fflush(stdout) != 0)
                e.any_error = true;
        if (e.fatal < 0) {
                fprintf(stderr, "%s: %s\n", ctx->prog, strerror(-e.fatal));
                e.any_error = true;
        }
        /* grep: 2 on any error, but -q with a line selected is a success whatever else */
        if (o.quiet && e.any_selected)
                status = 0;
        else
                status = e.any_error || warnings > 0 ? 2 : e.any_selected ? 0 : 1;
out:
        free(sargv);
        free(a.patterns);
        matcher_free(m);
        catalog_free(cat);
        common_done(&c);
        return status;
}

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "connect.h"
#include "output.h"
#include "util.h"

const char *output_time(int64_t epoch, bool utc, bool with_zone, char *buf, size_t size)
{
        time_t t = (time_t) epoch;
        struct tm tm;

        if (!(utc ? gmtime_r(&t, &tm) : localtime_r(&t, &tm)) ||
            strftime(buf, size,
                     with_zone ? (utc ? "%Y-%m-%d %H:%M:%S UTC" : "%Y-%m-%d %H:%M:%S %Z")
                               : "%Y-%m-%d %H:%M:%S",
                     &tm) == 0)
                (void) snprintf(buf, size, "?");
        return buf;
}

const char *output_duration(int64_t s, char *buf, size_t size)
{
        if (s < 0)
                (void) snprintf(buf, size, "-");
        else if (s < 60)
                (void) snprintf(buf, size, "%llds", (long long) s);
        else if (s < 3600)
                (void) snprintf(buf, size, "%lldm %02llds", (long long) (s / 60),
                                (long long) (s % 60));
        else if (s < 86400)
                (void) snprintf(buf, size, "%lldh %02lldm", (long long) (s / 3600),
                                (long long) (s % 3600 / 60));
        else
                (void) snprintf(buf, size, "%lldd %02lldh", (long long) (s / 86400),
                                (long long) (s % 86400 / 3600));
        return buf;
}

void output_escape(const char *str, size_t len, output_put_fn put, void *ctx)
{
        const unsigned char *s = (const unsigned char *) str;
        size_t start = 0, i = 0;

        while (i < len) {
                unsigned char c = s[i];
                size_t l = 1;
                char esc[16];
                int n;

                if (c >= 0x20 && c < 0x7f) {
                        i++;
                        continue;
                }
                if (c >= 0x80) {
                        l = utf8_valid_len(s + i, len - i);
                        /* text, but not the C1 controls U+0080..U+009F, nor a stray byte of
                         * that range (an 8-bit CSI to a terminal that is not UTF-8) */
                        if (l > 0 && !(l == 2 && c == 0xc2 && s[i + 1] < 0xa0)) {
                                i += l;
                                continue;
                        }
                        if (l == 0 && c >= 0xa0) {
                                i++;
                                continue;
                        }
                        if (l == 0)
                                l = 1;
                }
                if (i > start)
                        put(ctx, str + start, i - start);
                if (c == '\t')
                        put(ctx, "\t", 1);
                else if (l == 2) {
                        n = snprintf(esc, sizeof(esc), "\\x%02x\\x%02x", c, s[i + 1]);
                        put(ctx, esc, (size_t) n);
                } else {
                        n = snprintf(esc, sizeof(esc), "\\x%02x", c);
                        put(ctx, esc, (size_t) n);
                }
                i += l;
                start = i;
        }
        if (len > start)
                put(ctx, str + start, len - start);
}

static void put_file(void *ctx, const char *s, size_t n)
{
        (void) fwrite(s, 1, n, ctx);
}

static int forced = -1;

void output_force_escapes(int on)
{
        forced = on;
}

bool output_escapes(FILE *f)
{
        static int tty[3] = {-1, -1, -1}; /* stdin, stdout, stderr: asked once */
        int fd = fileno(f);

        if (forced >= 0)
                return forced;
        if (fd < 0)
                return false;
        if (fd > 2)
                return isatty(fd) == 1;
        if (tty[fd] < 0)
                tty[fd] = isatty(fd) == 1;
        return tty[fd] == 1;
}

void output_sanitized(FILE *f, const char *s, size_t len)
{
        if (output_escapes(f))
                output_escape(s, len, put_file, f);
        else
                (void) fwrite(s, 1, len, f);
}

struct cell {
        char *buf;
        size_t len, size;
};

static void put_cell(void *ctx, const char *s, size_t n)
{
        struct cell *c = ctx;

        if (n > c->size - 1 - c->len)
                n = c->size - 1 - c->len;
        memcpy(c->buf + c->len, s, n);
        c->len += n;
}

/* A server string for a column, escaped when f is a terminal, measured in bytes (good
 * enough: the values that vary in width are ASCII keys, tags and host names). */
static void sanitized_to(FILE *f, const char *s, char *buf, size_t size)
{
        struct cell c = {buf, 0, size};

        if (!s)
                s = "-";
        if (output_escapes(f))
                output_escape(s, strlen(s), put_cell, &c);
        else
                put_cell(&c, s, strlen(s));
        buf[c.len] = '\0';
}

enum column {
        COL_KEY,
        COL_STATUS,
        COL_STARTED,
        COL_DURATION,
        COL_EXIT,
        COL_TAG,
        COL_HOST,
        COL_ARCHIVED,
        COL_MAX,
};

#define CELL_MAX 72

/* A job's start time, when it has a usable one (its date may come from another time). */
static bool job_started(const struct job *j, int64_t *ret)
{
        *ret = j->date_epoch;
        return j->date_source == JOB_DATE_START_TIME;
}

static int64_t job_duration(const struct job *j, const struct job_detail *d, int64_t now)
{
        int64_t start;

        if (!job_started(j, &start))
                return -1;
        if (d->has_end_time)
                return d->end_time - start;
        if (j->status == JOB_ACTIVE)
                return now - start;
        return -1;
}

static void job_cells(FILE *f, const struct job *j, bool archived, bool utc, int64_t now,
                      char cells[COL_MAX][CELL_MAX])
{
        struct job_detail d;
        int64_t start;

        connect_job_detail(j, &d);
        sanitized_to(f, j->key, cells[COL_KEY], CELL_MAX);
        (void) snprintf(cells[COL_STATUS], CELL_MAX, "%s", connect_job_status_to_string(j->status));
        if (job_started(j, &start))
                (void) output_time(start, utc, false, cells[COL_STARTED], CELL_MAX);
        else
                (void) snprintf(cells[COL_STARTED], CELL_MAX, "-");
        (void) output_duration(job_duration(j, &d, now), cells[COL_DURATION], CELL_MAX);
        if (d.has_exit_code)
                (void) snprintf(cells[COL_EXIT], CELL_MAX, "%lld", (long long) d.exit_code);
        else
                (void) snprintf(cells[COL_EXIT], CELL_MAX, "-");
        sanitized_to(f, d.tag, cells[COL_TAG], CELL_MAX);
        sanitized_to(f, d.hostname, cells[COL_HOST], CELL_MAX);
        (void) snprintf(cells[COL_ARCHIVED], CELL_MAX, "%s", archived ? "yes" : "no");
}

static void print_row(FILE *f, char cells[COL_MAX][CELL_MAX], const size_t *width, size_t ncol)
{
        for (size_t c = 0; c < ncol; c++) {
                if (c + 1 == ncol)
                        (void) fprintf(f, "%s\n", cells[c]);
                else
                        (void) fprintf(f, "%-*s  ", (int) width[c], cells[c]);
        }
}

void output_job_table(FILE *f, const struct job *jobs, size_t n, const bool *archived, bool utc,
                      int64_t now)
{
        char head[COL_MAX][CELL_MAX] = {"KEY",  "STATUS", "STARTED", "DURATION",
                                        "EXIT", "TAG",    "HOST",    "ARCHIVED"};
        char cells[COL_MAX][CELL_MAX];
        size_t width[COL_MAX], ncol = archived ? COL_MAX : COL_MAX - 1;
        char zone[16];
        time_t t = (time_t) now;
        struct tm tm;

        /* The zone of the times, once, in the header. */
        if (utc)
                (void) snprintf(zone, sizeof(zone), "UTC");
        else if (!localtime_r(&t, &tm) || strftime(zone, sizeof(zone), "%Z", &tm) == 0)
                (void) snprintf(zone, sizeof(zone), "local");
        (void) snprintf(head[COL_STARTED], CELL_MAX, "STARTED (%s)", zone);
        for (size_t c = 0; c < COL_MAX; c++)
                width[c] = strlen(head[c]);
        for (size_t i = 0; i < n; i++) {
                job_cells(f, &jobs[i], archived && archived[i], utc, now, cells);
                for (size_t c = 0; c < COL_MAX; c++)
                        if (strlen(cells[c]) > width[c])
                                width[c] = strlen(cells[c]);
        }
        print_row(f, head, width, ncol);
        for (size_t i = 0; i < n; i++) {
                job_cells(f, &jobs[i], archived && archived[i], utc, now, cells);
                print_row(f, cells, width, ncol);
        }
}

static void field(FILE *f, const char *name, const char *value)
{
        (void) fprintf(f, "%-10s ", name);
        output_sanitized(f, value ? value : "-", strlen(value ? value : "-"));
        (void) fputc('\n', f);
}

void output_job_detail(FILE *f, const struct job *j, const char *guid, const char *name,
                       bool has_archive, const char *archived_path, bool utc, int64_t now)
{
        struct job_detail d;
        int64_t start;
        char buf[128];

        connect_job_detail(j, &d);
        (void) fprintf(f, "%-10s ", "job");
        output_sanitized(f, j->key ? j->key : "?", strlen(j->key ? j->key : "?"));
        if (d.id) {
                (void) fputs(" (id ", f);
                output_sanitized(f, d.id, strlen(d.id));
                (void) fputc(')', f);
        }
        (void) fputc('\n', f);
        (void) fprintf(f, "%-10s %s", "content", guid);
        if (name) {
                (void) fputs(" (", f);
                output_sanitized(f, name, strlen(name));
                (void) fputc(')', f);
        }
        (void) fputc('\n', f);
        field(f, "status", connect_job_status_to_string(j->status));
        field(f, "tag", d.tag);
        field(f, "started",
              job_started(j, &start) ? output_time(start, utc, true, buf, sizeof(buf)) : "-");
        field(f, "ended",
              d.has_end_time ? output_time(d.end_time, utc, true, buf, sizeof(buf)) : "-");
        field(f, "duration", output_duration(job_duration(j, &d, now), buf, sizeof(buf)));
        if (d.has_exit_code)
                (void) snprintf(buf, sizeof(buf), "%lld", (long long) d.exit_code);
        field(f, "exit code", d.has_exit_code ? buf : "-");
        field(f, "host", d.hostname);
        field(f, "pid", d.pid);
        field(f, "run as", d.run_as);
        field(f, "bundle", d.bundle_id);
        if (d.cluster)
                field(f, "cluster", d.cluster);
        if (d.image)
                field(f, "image", d.image);
        if (d.error)
                field(f, "error", d.error);
        if (d.skip_reason)
                field(f, "skipped", d.skip_reason);
        if (j->invalid)
                field(f, "note", j->invalid);
        if (has_archive)
                field(f, "archived", archived_path ? archived_path : "no");
}

void output_log_entry_text(FILE *f, const struct log_entry *e, bool utc)
{
        char when[64];

        if (e->has_timestamp) {
                (void) output_time(e->ts_sec, utc, false, when, sizeof(when));
                (void) fprintf(f, "%s.%03u ", when, (unsigned) (e->ts_nsec / 1000000));
        } else {
                (void) fprintf(f, "%-23s ", "-");
        }
        output_sanitized(f, e->source, strlen(e->source));
        (void) fputc(' ', f);
        output_sanitized(f, e->data, e->data_len);
        (void) fputc('\n', f);
}

void output_log_entry_json(FILE *f, const struct log_entry *e)
{
        (void) fprintf(f, "%s\n",
                       json_object_to_json_string_ext(
                               e->obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
}

void output_kill_order(FILE *f, const struct kill_order *k)
{
        (void) fputs("kill order registered for job ", f);
        output_sanitized(f, k->job_key, strlen(k->job_key));
        if (k->result) {
                (void) fputs(": ", f);
                output_sanitized(f, k->result, strlen(k->result));
        }
        if (k->guid) {
                (void) fputs(" (order ", f);
                output_sanitized(f, k->guid, strlen(k->guid));
                (void) fputc(')', f);
        }
        (void) fputc('\n', f);
}

void output_error_record(FILE *f, struct json_object *error)
{
        static const char *const names[][2] = {
                {"code", "code"}, {"summary", "summary"}, {"help_url", "help"}};
        struct json_object *v;
        bool any = false;

        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
                if (json_object_object_get_ex(error, names[i][0], &v) &&
                    json_object_is_type(v, json_type_string)) {
                        field(f, names[i][1], json_object_get_string(v));
                        any = true;
                }
        if (!any) {
                const char *s = json_object_to_json_string_ext(
                        error, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
                output_sanitized(f, s, strlen(s));
                (void) fputc('\n', f);
        }
}

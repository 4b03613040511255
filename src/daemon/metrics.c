#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "macro.h"
#include "metrics.h"
#include "util.h"

#define PREFIX "connect_job_archiver_"

/* Label values escape backslash, double quote and newline (the exposition format's rule). */
static void put_label(FILE *f, const char *value)
{
        for (const char *p = value; *p; p++) {
                if (*p == '\\')
                        fputs("\\\\", f);
                else if (*p == '"')
                        fputs("\\\"", f);
                else if (*p == '\n')
                        fputs("\\n", f);
                else
                        fputc(*p, f);
        }
}

static void put_header(FILE *f, const char *name, const char *type, const char *help)
{
        fprintf(f, "# HELP " PREFIX "%s %s\n# TYPE " PREFIX "%s %s\n", name, help, name, type);
}

static void put_item_labels(FILE *f, const struct metrics_item *it)
{
        fputs("{guid=\"", f);
        put_label(f, it->guid);
        fputs("\",name=\"", f);
        put_label(f, it->name ? it->name : "");
        fputs("\"}", f);
}

int metrics_format(const struct metrics *m, char **ret)
{
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);

        if (!f)
                return -ENOMEM;
        put_header(f, "jobs_archived_total", "counter", "Jobs archived since the service started.");
        fprintf(f, PREFIX "jobs_archived_total %" PRIu64 "\n", m->jobs_archived);
        put_header(f, "jobs_failed_total", "counter",
                   "Attempts to archive a job that failed (each is retried next cycle).");
        fprintf(f, PREFIX "jobs_failed_total %" PRIu64 "\n", m->jobs_failed);
        put_header(f, "list_failures_total", "counter", "Job list requests that failed.");
        fprintf(f, PREFIX "list_failures_total %" PRIu64 "\n", m->list_failures);
        put_header(f, "downloaded_bytes_total", "counter", "Uncompressed log bytes downloaded.");
        fprintf(f, PREFIX "downloaded_bytes_total %" PRIu64 "\n", m->bytes_downloaded);
        put_header(f, "written_bytes_total", "counter", "Compressed log bytes written.");
        fprintf(f, PREFIX "written_bytes_total %" PRIu64 "\n", m->bytes_written);
        put_header(f, "start_time_seconds", "gauge", "When the service started (Unix time).");
        fprintf(f, PREFIX "start_time_seconds %" PRId64 "\n", m->start_epoch);
        put_header(f, "connect_up", "gauge",
                   "1 when the last job list request reached Connect and was answered.");
        fprintf(f, PREFIX "connect_up %d\n", m->connect_up ? 1 : 0);
        put_header(f, "disk_paused", "gauge",
                   "1 while archiving is paused because free space is below min_free_mb.");
        fprintf(f, PREFIX "disk_paused %d\n", m->disk_paused ? 1 : 0);

        put_header(f, "jobs_stuck", "gauge",
                   "Jobs that failed five polls in a row or more (still retried every poll).");
        fprintf(f, PREFIX "jobs_stuck %zu\n", m->jobs_stuck);

        put_header(f, "content_items", "gauge",
                   "Content items watched, by why: listed in the config, or found by a discover "
                   "rule (an item can be both).");
        fprintf(f, PREFIX "content_items{source=\"config\"} %zu\n", m->items_configured);
        fprintf(f, PREFIX "content_items{source=\"discovered\"} %zu\n", m->items_discovered);
        if (m->discovery) {
                put_header(f, "content_listed", "gauge",
                           "Content items in Connect's last content listing that the key sees.");
                fprintf(f, PREFIX "content_listed %zu\n", m->content_listed);
                put_header(f, "discovery_failing", "gauge",
                           "1 while the content listing fails (the last known set is kept).");
                fprintf(f, PREFIX "discovery_failing %d\n", m->discovery_failing ? 1 : 0);
        }

        put_header(f, "last_success_timestamp_seconds", "gauge",
                   "When the item's job list was last fetched successfully (Unix time).");
        for (size_t i = 0; i < m->n_items; i++) {
                fputs(PREFIX "last_success_timestamp_seconds", f);
                put_item_labels(f, &m->items[i]);
                fprintf(f, " %" PRId64 "\n", m->items[i].last_success_epoch);
        }
        put_header(f, "poll_duration_seconds", "gauge",
                   "How long the item's last poll took, from its job list to its last job.");
        for (size_t i = 0; i < m->n_items; i++) {
                fputs(PREFIX "poll_duration_seconds", f);
                put_item_labels(f, &m->items[i]);
                fprintf(f, " %.3f\n", m->items[i].last_poll_seconds);
        }
        put_header(f, "item_failing", "gauge",
                   "1 when the item's last poll, or one of its jobs, failed.");
        for (size_t i = 0; i < m->n_items; i++) {
                fputs(PREFIX "item_failing", f);
                put_item_labels(f, &m->items[i]);
                fprintf(f, " %d\n", m->items[i].failing ? 1 : 0);
        }
        if (fclose(f) != 0 || !buf) {
                free(buf);
                return -ENOMEM;
        }
        *ret = buf;
        return 0;
}

int metrics_write(const char *path, const struct metrics *m)
{
        _cleanup_free_ char *text = NULL, *tmp = NULL;
        _cleanup_close_ int fd = -1;
        int r;

        r = metrics_format(m, &text);
        if (r < 0)
                return r;
        /* The collector reads only "*.prom", so the temporary's name hides it. */
        if (asprintf(&tmp, "%s.tmp", path) < 0) {
                tmp = NULL;
                return -ENOMEM;
        }
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0)
                return -errno;
        r = write_all(fd, text, strlen(text));
        if (r >= 0 && close(fd) < 0)
                r = -errno;
        fd = -1;
        if (r >= 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0)
                (void) unlink(tmp);
        return r;
}

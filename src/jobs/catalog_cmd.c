/* connect-jobs reindex: (re)builds the archive's search catalog (catalog.h). */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "archive.h"
#include "catalog.h"
#include "catalog_cmd.h"
#include "cli.h"
#include "config.h"
#include "macro.h"
#include "util.h"

struct progress {
        bool tty;
        uint64_t last;
};

static void on_progress(void *userdata, size_t done, size_t total, uint64_t bytes)
{
        struct progress *p = userdata;
        uint64_t now = now_usec(CLOCK_MONOTONIC);

        if (!p->tty || (now - p->last < 200 * USEC_PER_MSEC && done != total))
                return;
        p->last = now;
        fprintf(stderr, "\rindexing: %zu of %zu jobs, %.1f MB of logs", done, total,
                (double) bytes / 1e6);
        if (done == total)
                fputc('\n', stderr);
}

int catalog_cmd_reindex(struct cli *c)
{
        struct archive *a = NULL;
        struct progress p = {.tty = isatty(STDERR_FILENO)};
        _cleanup_close_ int rootfd = -1;
        struct catalog_stats st;
        pid_t holder = 0;
        size_t jobs = 0;
        int r;

        /* The settings are read (main.c). */
        if (!c->config->archive_dir) {
                cli_say("no archive folder: give -c CONFIG or --archive DIR");
                return CLI_EXIT_CONFIG;
        }
        /* The catalog has one writer, as the archive has: the service's lock. */
        r = archive_open(c->config->archive_dir, 1, 0, &a);
        if (r >= 0)
                r = archive_lock(a, &holder);
        if (r == -EBUSY) {
                cli_say("the archive %s is in use by connect-job-archiver (PID %ld), which keeps "
                        "its catalog itself; stop it to rebuild the catalog",
                        c->config->archive_dir, (long) holder);
                archive_free(a);
                return CLI_EXIT_FAILURE;
        }
        if (r < 0) {
                cli_say("cannot open the archive %s: %s", c->config->archive_dir, strerror(-r));
                archive_free(a);
                return CLI_EXIT_FAILURE;
        }
        rootfd = open(c->config->archive_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        r = rootfd < 0 ? -errno : catalog_reindex(rootfd, on_progress, &p, &jobs);
        if (r < 0) {
                cli_say("cannot build the catalog in %s/.catalog: %s", c->config->archive_dir,
                        strerror(-r));
                archive_free(a);
                return CLI_EXIT_FAILURE;
        }
        if (catalog_stats(rootfd, &st) == 0)
                fprintf(stderr, "catalog: %zu jobs, %llu files, %.1f MB\n", jobs,
                        (unsigned long long) st.files, (double) st.bytes / 1e6);
        archive_free(a);
        return 0;
}

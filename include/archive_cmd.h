#pragma once

#include <stddef.h>

#include "config.h"

/*
 * connect-jobs' archive commands: "ls" and "search" over the archive on disk. They need no
 * key and no server, only read access to the archive.
 */

struct archive_cmd_ctx {
        const char *archive_dir;              /* the archive root (may be a symlink) */
        const struct config_content *content; /* for names; NULL when no config was read */
        size_t n_content;
        const char *prog; /* for messages, e.g. "connect-jobs" */
};

#define ARCHIVE_CMD_FILTERS_HELP                                                                   \
        "FILTERS: --content CONTENT (repeatable) --since T --until T --failed --tag TAG "          \
        "--key KEY\n"                                                                              \
        "         T = YYYY-MM-DD | RFC 3339 | today | yesterday | -7d | -12h | -30m\n"             \
        "         (a date is a whole day in the local zone; --until includes it)\n"

/*
 * connect-jobs ls [FILTERS] [-r] [-o json] [--utc]: argv[0] is the command name. Prints
 * the archived jobs that pass the filters, oldest first. Returns the exit status: 0, 1 (a
 * record could not be read; the others were listed), 2 (usage), 4 (unknown content name).
 */
int archive_cmd_ls(const struct archive_cmd_ctx *ctx, int argc, char **argv);

/*
 * connect-jobs search [FILTERS] [GREP OPTIONS] PATTERN: returns grep's exit status: 0 a
 * line was selected, 1 none, 2 usage or any error (an unreadable, truncated or corrupt
 * .log.gz is reported with its path and the search goes on).
 */
int archive_cmd_search(const struct archive_cmd_ctx *ctx, int argc, char **argv);

#pragma once

#include <stddef.h>

/*
 * connect-jobs' archive commands: "ls" and "search" over the archive on disk. They need no
 * key and no server, only read access to the archive. Each parses its own argv (argv[0] is
 * the command name; search's -c is grep's count, not the config), then reads the settings
 * with cli_load_settings(): the archive folder from the config or --archive DIR, content
 * names through cli_resolve_content().
 */

struct cli;

#define ARCHIVE_CMD_FILTERS_HELP                                                                   \
        "FILTERS: --content CONTENT (repeatable) --since T --until T --failed --tag TAG "          \
        "--key KEY\n"                                                                              \
        "         T = YYYY-MM-DD | RFC 3339 | today | yesterday | -7d | -12h | -30m\n"             \
        "         (a date is a whole day in the local zone; --until includes it)\n"

/*
 * connect-jobs ls [FILTERS] [-r] [-o json] [--utc]: argv[0] is the command name. Prints
 * the archived jobs that pass the filters, oldest first. Returns the exit status: 0, 1 (a
 * record could not be read; the others were listed), 2 (usage, unknown content name), 78.
 */
int archive_cmd_ls(struct cli *c, int argc, char **argv);

/*
 * connect-jobs search [FILTERS] [GREP OPTIONS] PATTERN: returns grep's exit status: 0 a
 * line was selected, 1 none, 2 usage or any error (an unreadable, truncated or corrupt
 * .log.gz is reported with its path and the search goes on).
 */
int archive_cmd_search(struct cli *c, int argc, char **argv);

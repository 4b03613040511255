/* connect-jobs: options, the command table, dispatch, exit status; nothing else. */
#include <errno.h>
#include <getopt.h>
#include <locale.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "archive_cmd.h"
#include "catalog_cmd.h"
#include "cli.h"
#include "cli_archive.h"
#include "config.h"
#include "http.h"
#include "log.h"
#include "version.h"

/* What a command accepts and needs. */
enum {
        CMD_CONTENT = 1 << 0,       /* the first argument is CONTENT (a GUID or a name) */
        CMD_KEY = 1 << 1,           /* then a job KEY */
        CMD_CONNECT = 1 << 2,       /* asks Connect: needs the server and the key */
        CMD_LINES = 1 << 3,         /* takes -n N */
        CMD_OUTPUT_FILE = 1 << 4,   /* takes -O FILE */
        CMD_ARCHIVE_FIRST = 1 << 5, /* answered from the archive when the job is there; --live */
        CMD_OWN_ARGS = 1 << 6,      /* parses its own options (search's -c is grep's count) */
};

/* The parsed command line of one command. */
struct invocation {
        unsigned lines;
        const char *output_file;
        bool live;
        struct cli_archived *archived; /* CMD_ARCHIVE_FIRST: the job is in the archive */
        /* CMD_OWN_ARGS: the command's words, its name first; it reads the settings itself. */
        int argc;
        char **argv;
};

struct command {
        const char *name;
        const char *synopsis;
        const char *summary;
        unsigned flags;
        int (*run)(struct cli *c, const struct cli_content *ct, const char *key,
                   const struct invocation *inv);
};

static int run_list(struct cli *c, const struct cli_content *ct, const char *key,
                    const struct invocation *inv)
{
        return cli_list(c, ct);
}

static int run_show(struct cli *c, const struct cli_content *ct, const char *key,
                    const struct invocation *inv)
{
        return inv->archived ? cli_archive_show(c, ct, inv->archived) : cli_show(c, ct, key);
}

static int run_log(struct cli *c, const struct cli_content *ct, const char *key,
                   const struct invocation *inv)
{
        return inv->archived ? cli_archive_log(c, inv->archived, inv->lines)
                             : cli_log(c, ct, key, inv->lines);
}

static int run_tail(struct cli *c, const struct cli_content *ct, const char *key,
                    const struct invocation *inv)
{
        return cli_tail(c, ct, key, inv->lines);
}

static int run_download(struct cli *c, const struct cli_content *ct, const char *key,
                        const struct invocation *inv)
{
        return inv->archived ? cli_archive_download(c, inv->archived, inv->output_file)
                             : cli_download(c, ct, key, inv->output_file);
}

static int run_error(struct cli *c, const struct cli_content *ct, const char *key,
                     const struct invocation *inv)
{
        return inv->archived ? cli_archive_error(c, inv->archived) : cli_error(c, ct, key);
}

static int run_kill(struct cli *c, const struct cli_content *ct, const char *key,
                    const struct invocation *inv)
{
        return cli_kill(c, ct, key);
}

static int run_ls(struct cli *c, const struct cli_content *ct, const char *key,
                  const struct invocation *inv)
{
        return archive_cmd_ls(c, inv->argc, inv->argv);
}

static int run_search(struct cli *c, const struct cli_content *ct, const char *key,
                      const struct invocation *inv)
{
        return archive_cmd_search(c, inv->argc, inv->argv);
}

static int run_reindex(struct cli *c, const struct cli_content *ct, const char *key,
                       const struct invocation *inv)
{
        return catalog_cmd_reindex(c);
}

static int run_content(struct cli *c, const struct cli_content *ct, const char *key,
                       const struct invocation *inv)
{
        return cli_content(c);
}

#define JOB (CMD_CONTENT | CMD_KEY | CMD_CONNECT)

/* ls and search read the archive alone: no CMD_CONNECT, no key, no server. */
static const struct command commands[] = {
        {"list", "CONTENT", "the jobs Connect has for CONTENT, newest first",
         CMD_CONTENT | CMD_CONNECT, run_list},
        {"show", "CONTENT KEY", "one job", JOB | CMD_ARCHIVE_FIRST, run_show},
        {"log", "CONTENT KEY [-n N]", "its log entries (the last N, default 5000)",
         JOB | CMD_LINES | CMD_ARCHIVE_FIRST, run_log},
        {"tail", "CONTENT KEY [-n N]", "the last N lines, then follow until the job is finalized",
         JOB | CMD_LINES, run_tail},
        {"download", "CONTENT KEY [-O FILE]", "the whole log file, to stdout or FILE",
         JOB | CMD_OUTPUT_FILE | CMD_ARCHIVE_FIRST, run_download},
        {"error", "CONTENT KEY", "its error record", JOB | CMD_ARCHIVE_FIRST, run_error},
        {"kill", "CONTENT KEY", "register a kill order", JOB, run_kill},
        {"ls", "[FILTERS] [-r]", "archived jobs, oldest first", CMD_OWN_ARGS, run_ls},
        {"search", "[FILTERS] PATTERN", "search archived logs (regex; GREP OPTIONS below)",
         CMD_OWN_ARGS, run_search},
        {"reindex", "", "(re)build the archive's search catalog", 0, run_reindex},
        {"content", "", "the content the daemon watches (listed and discovered) and why",
         CMD_CONNECT, run_content},
};

static void help(FILE *f)
{
        fprintf(f, "Usage: connect-jobs [-c PATH] [--server URL] [--archive DIR] [-v] COMMAND "
                   "[OPTIONS] [ARGS]\n"
                   "Every Posit Connect jobs operation from the command line.\n\n");
        for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
                fprintf(f, "  %-8s %-22s %s\n", commands[i].name, commands[i].synopsis,
                        commands[i].summary);
        fprintf(f,
                "\nCONTENT is a GUID or a name from the config's content list; KEY is a job "
                "key.\n" ARCHIVE_CMD_FILTERS_HELP
                "GREP OPTIONS: -F -i -w -v -l -c -m N -A N -B N -C N --color=auto|always|never\n"
                "              -j THREADS (see connect-jobs search --help)\n\n"
                "  -c, --config PATH     the daemon's config (default " CONFIG_DEFAULT_PATH ");\n"
                "                        without it and without -c: $CONNECT_SERVER, "
                "$CONNECT_API_KEY\n"
                "      --server URL      the Connect server, instead of the config's\n"
                "      --archive DIR     the archive folder, instead of the config's (or its\n"
                "                        archive.s3: with it, the archive commands read the\n"
                "                        bucket through a cache under $XDG_CACHE_HOME)\n"
                "  -o, --output json     the server's JSON (log, tail: one entry a line)\n"
                "      --utc             times in UTC instead of the local zone\n"
                "  -n, --lines N         log, tail: how many lines (default 5000)\n"
                "  -O, --output-file F   download: write F atomically instead of stdout\n"
                "      --live            show, log, error, download: ask Connect, not the archive\n"
                "  -v, --verbose         debug output (the API key is never shown)\n"
                "  -V, --version, -h, --help\n\n"
                "Exit status: 0 success, 1 failure (kill: the job is not active), 2 usage,\n"
                "4 no such content or job, 77 the key was refused, 78 bad config, 130 Ctrl-C.\n");
}

enum {
        ARG_SERVER = 0x100,
        ARG_ARCHIVE,
        ARG_UTC,
        ARG_LIVE,
};

static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},
        {"server", required_argument, NULL, ARG_SERVER},
        {"archive", required_argument, NULL, ARG_ARCHIVE},
        {"output", required_argument, NULL, 'o'},
        {"utc", no_argument, NULL, ARG_UTC},
        {"verbose", no_argument, NULL, 'v'},
        {"lines", required_argument, NULL, 'n'},
        {"output-file", required_argument, NULL, 'O'},
        {"live", no_argument, NULL, ARG_LIVE},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
};

static int parse_lines(const char *s, unsigned *ret)
{
        char *end;

        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v > CLI_MAX_LINES)
                return -EINVAL;
        *ret = (unsigned) v;
        return 0;
}

/*
 * Parses options (the common ones anywhere, a command's own after its name) into c and inv.
 * cmd is NULL before the command name. Returns 1 to go on, 0 to exit successfully, or an
 * exit status.
 */
static int parse_options(int argc, char *argv[], const struct command *cmd, struct cli *c,
                         struct invocation *inv)
{
        /* "+": stop at the command name; after it, options and arguments may mix. */
        const char *shortopts = cmd ? "c:o:vn:O:Vh" : "+c:o:vVh";
        int opt;

        optind = 0; /* glibc: start over (the second pass parses the command's argv) */
        while ((opt = getopt_long(argc, argv, shortopts, options, NULL)) >= 0) {
                unsigned need = 0;

                switch (opt) {
                case 'c':
                        c->config_path = optarg;
                        break;
                case ARG_SERVER:
                        c->server = optarg;
                        break;
                case ARG_ARCHIVE:
                        c->archive = optarg;
                        break;
                case 'o':
                        if (strcmp(optarg, "json") != 0 && strcmp(optarg, "text") != 0) {
                                cli_say("-o takes json or text, not '%s'", optarg);
                                return CLI_EXIT_USAGE;
                        }
                        c->json = strcmp(optarg, "json") == 0;
                        break;
                case ARG_UTC:
                        c->utc = true;
                        break;
                case 'v':
                        c->verbose = true;
                        break;
                case 'n':
                        need = CMD_LINES;
                        if (cmd && (cmd->flags & need) && parse_lines(optarg, &inv->lines) < 0) {
                                cli_say("-n takes a number of lines from 0 to %u, not '%s'",
                                        CLI_MAX_LINES, optarg);
                                return CLI_EXIT_USAGE;
                        }
                        break;
                case 'O':
                        need = CMD_OUTPUT_FILE;
                        inv->output_file = optarg;
                        break;
                case ARG_LIVE:
                        need = CMD_ARCHIVE_FIRST;
                        inv->live = true;
                        break;
                case 'V':
                        printf("connect-jobs %s\n", CJA_VERSION);
                        return 0;
                case 'h':
                        help(stdout);
                        return 0;
                default:
                        return CLI_EXIT_USAGE; /* getopt said what */
                }
                if (need && (!cmd || !(cmd->flags & need))) {
                        cli_say("%s does not take %s", cmd ? cmd->name : "connect-jobs",
                                argv[optind - 1]);
                        return CLI_EXIT_USAGE;
                }
        }
        return 1;
}

int main(int argc, char *argv[])
{
        struct invocation inv = {.lines = CLI_DEFAULT_LINES};
        const struct command *cmd = NULL;
        struct cli_content ct = {0};
        const char *key = NULL;
        struct cli c;
        int r, first;

        /* The character type only: search matches characters in a UTF-8 locale; numbers
         * and times stay as they are. */
        (void) setlocale(LC_CTYPE, "");
        cli_init(&c);
        r = parse_options(argc, argv, NULL, &c, &inv);
        if (r != 1)
                return r;
        if (optind >= argc) {
                help(stderr);
                return CLI_EXIT_USAGE;
        }
        first = optind;
        for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
                if (strcmp(argv[first], commands[i].name) == 0)
                        cmd = &commands[i];
        if (!cmd) {
                cli_say("unknown command '%s' (see connect-jobs --help)", argv[first]);
                return CLI_EXIT_USAGE;
        }
        if (cmd->flags & CMD_OWN_ARGS) {
                /* -v before the command: the debug lines (an archive in S3 says what it
                 * asked and what its cache held). */
                log_set_target(LOG_TARGET_TERMINAL);
                if (c.verbose)
                        log_set_max_level(LOG_DEBUG);
                inv.argc = argc - first;
                inv.argv = argv + first;
                r = cmd->run(&c, NULL, NULL, &inv);
                cli_done(&c);
                return r;
        }
        r = parse_options(argc - first, argv + first, cmd, &c, &inv);
        if (r != 1)
                return r;
        /* getopt moved the arguments after the options, past the command name. */
        char **args = argv + first + optind;
        int n_args = argc - first - optind;
        int want = !!(cmd->flags & CMD_CONTENT) + !!(cmd->flags & CMD_KEY);
        if (n_args != want) {
                cli_say("usage: connect-jobs %s %s", cmd->name, cmd->synopsis);
                return CLI_EXIT_USAGE;
        }
        if ((cmd->flags & CMD_KEY) && args[1][0] == '\0') {
                cli_say("the job KEY is empty");
                return CLI_EXIT_USAGE;
        }
        key = (cmd->flags & CMD_KEY) ? args[1] : NULL;

        /* The process will hold the API key: no core dumps, no ptrace by other users. */
        (void) prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
        /* Its lines are for the person who typed the command, also in a file or a pipe:
         * "<7>"-style prefixes are for journald, which reads the daemon's stderr. */
        log_set_target(LOG_TARGET_TERMINAL);
        if (c.verbose)
                log_set_max_level(LOG_DEBUG);
        /* A closed connection or stdout must be an error return, never a signal. */
        (void) signal(SIGPIPE, SIG_IGN);
        if (http_global_init() < 0) {
                cli_say("cannot initialize libcurl");
                return CLI_EXIT_FAILURE;
        }
        r = cli_load_settings(&c);
        if (r == 0 && (cmd->flags & CMD_CONTENT))
                r = cli_resolve_content(&c, args[0], &ct);
        if (r == 0 && (cmd->flags & CMD_ARCHIVE_FIRST) && !inv.live)
                r = cli_archive_find(&c, &ct, key, &inv.archived);
        if (r == 0 && (cmd->flags & CMD_CONNECT) && !inv.archived)
                r = cli_connect(&c);
        if (r == 0)
                r = cmd->run(&c, &ct, key, &inv);
        cli_archived_free(inv.archived);
        cli_done(&c);
        http_global_cleanup();
        return r;
}

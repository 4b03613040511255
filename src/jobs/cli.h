#pragma once

#include <stdbool.h>

#include "macro.h"

/*
 * The operator's command, connect-jobs: settings (the daemon's config, or the environment),
 * content names, and one function per command. Each command prints its result on stdout
 * and its failure, in words, on stderr, and returns the exit status; only main() exits.
 */

struct client;
struct cli_s3;
struct config;

enum {
        CLI_EXIT_OK = 0,
        CLI_EXIT_FAILURE = 1,       /* a runtime failure; kill: the job is not active */
        CLI_EXIT_USAGE = 2,         /* bad usage, an unknown content name */
        CLI_EXIT_NOT_FOUND = 4,     /* Connect says the content or the job does not exist */
        CLI_EXIT_NOPERM = 77,       /* EX_NOPERM: Connect refused the key (401/403) */
        CLI_EXIT_CONFIG = 78,       /* EX_CONFIG: no usable config, server or key */
        CLI_EXIT_INTERRUPTED = 130, /* SIGINT (Ctrl-C) or SIGTERM */
        CLI_EXIT_PIPE = 141,        /* stdout was closed (| head): quietly, as SIGPIPE would */
};

/* "log" and "tail" show this many lines unless -n says otherwise (Connect's default). */
#define CLI_DEFAULT_LINES 5000u
#define CLI_MAX_LINES     1000000u

struct cli {
        /* From the command line. */
        const char *config_path; /* -c; NULL: the default path, or the environment */
        const char *server;      /* --server, overrides the config's */
        const char *archive;     /* --archive, overrides the config's */
        bool verbose;
        bool json; /* -o json */
        bool utc;  /* --utc */

        /* Filled by cli_load_settings() and cli_connect(). */
        struct config *config;
        bool from_environment; /* no config file was read */
        int signal_fd;
        struct client *client;
        struct cli_s3 *s3; /* archive.s3: the bucket, once opened (cli_s3.h) */
};

/* A content item named on the command line; the strings borrow from the config or argv. */
struct cli_content {
        const char *guid;
        const char *name; /* NULL when the config gives none */
};

void cli_init(struct cli *c);
void cli_done(struct cli *c);

/*
 * Reads the settings: -c PATH, else the default config, else (no -c and the default is
 * missing or unreadable) the environment: CONNECT_SERVER and the key lookup. Returns 0 or
 * an exit status (78; 2 for a bad --server).
 */
int cli_load_settings(struct cli *c);

/* Finds the key (the daemon's order; an operator who cannot read the service's key file
 * falls back to $CONNECT_API_KEY) and makes the client. Returns 0 or an exit status. */
int cli_connect(struct cli *c);

/* A GUID (the config's spelling and name when it lists it) or a configured name. Returns 0,
 * or 2 with the known names on stderr. */
int cli_resolve_content(const struct cli *c, const char *arg, struct cli_content *ret);

/* The commands that ask Connect. Each loads nothing itself: call cli_load_settings() and
 * cli_connect() first. */
int cli_list(struct cli *c, const struct cli_content *ct);
int cli_show(struct cli *c, const struct cli_content *ct, const char *key);
int cli_log(struct cli *c, const struct cli_content *ct, const char *key, unsigned lines);
int cli_tail(struct cli *c, const struct cli_content *ct, const char *key, unsigned lines);
/* out_file NULL: stdout. A file is written atomically (temporary, fsync, rename). */
int cli_download(struct cli *c, const struct cli_content *ct, const char *key,
                 const char *out_file);
int cli_error(struct cli *c, const struct cli_content *ct, const char *key);
int cli_kill(struct cli *c, const struct cli_content *ct, const char *key);

/* The watched content: what content: lists and what the discover rules select (cli_content.c). */
int cli_content(struct cli *c);

/* A failed request in words on stderr and its exit status (0 when it succeeded). */
struct client_reply;
int cli_check_reply(const struct cli *c, const struct client_reply *r, const char *what);
/* A call that did not come back: 130 for Ctrl-C, else 1 with the error. */
int cli_call_failed(int r, const char *what);

/* stdout is done: 0, 141 when its reader went away (| head), or 1 with a message. */
int cli_finish_stdout(void);
/* download -O FILE: a temporary beside path (fd, or -errno), then fsync and rename. */
int cli_file_open_temporary(const char *path, char **ret_tmp);
int cli_file_commit(int fd, const char *tmp, const char *path);

/* "connect-jobs: " + message + newline, on stderr. */
void cli_say(const char *fmt, ...) _printf_(1, 2);
#define cli_say(...) (__extension__ cli_say(__VA_ARGS__)) /* "%m": see log.h */

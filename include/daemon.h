#pragma once

#include <stdbool.h>
#include <stdint.h>

struct config;
struct daemon;

struct daemon_stats {
        uint64_t jobs_archived;
        uint64_t jobs_failed;  /* jobs that could not be archived (this run) */
        uint64_t items_failed; /* job lists that could not be fetched or parsed */
        uint64_t bytes_in;     /* uncompressed log bytes */
        uint64_t bytes_out;    /* gzip bytes written */
        uint64_t cycles;
};

/*
 * The daemon: one event loop (libcurl multi + signalfd) that --once and the long-running
 * service share. daemon_new() takes ownership of config (with its API key resolved).
 */
int daemon_new(struct config *config, bool verbose, struct daemon **ret);
void daemon_free(struct daemon *d);

/*
 * --once: one poll of every watched item; archives everything due. Returns 0 when all of it
 * was archived, 1 when something failed (the rest still archived), or -errno when the
 * archive could not even be opened.
 */
int daemon_run_once(struct daemon *d);

/* The service: polls forever until SIGTERM/SIGINT; SIGHUP reloads from config_path. */
int daemon_run_forever(struct daemon *d, const char *config_path);

const struct daemon_stats *daemon_get_stats(const struct daemon *d);

#pragma once

#include <stdbool.h>
#include <stdint.h>

struct config;
struct daemon;

/*
 * The daemon: one event loop (libcurl multi + signalfd) that --once and the long-running
 * service share. daemon_new() takes ownership of config (with its API key resolved).
 */
int daemon_new(struct config *config, bool verbose, struct daemon **ret);
void daemon_free(struct daemon *d);

/* What a --once run did. */
struct daemon_counts {
        size_t items; /* content items watched */
        uint64_t jobs_archived;
        uint64_t jobs_failed;  /* jobs that could not be archived (retried by the next run) */
        uint64_t lists_failed; /* job lists that could not be fetched or parsed */
        uint64_t bytes_in;     /* uncompressed log bytes */
        uint64_t bytes_out;    /* gzip bytes written */
        bool stopped;          /* a signal ended the run before everything was done */
        bool disk_low;         /* free space under min_free_mb: nothing was fetched */
};

/*
 * --once: one poll of every watched item; archives everything due. Returns 0 when the run
 * went through, with *ret_counts saying what it did (failed jobs and lists included; the rest
 * is still archived), or -errno when the archive could not even be opened or the loop failed
 * (-EBUSY: another process holds its lock; so for daemon_run_forever too).
 */
int daemon_run_once(struct daemon *d, struct daemon_counts *ret_counts);

/* The service: polls forever until SIGTERM/SIGINT; SIGHUP reloads from config_path. */
int daemon_run_forever(struct daemon *d, const char *config_path);

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

/*
 * --once: one poll of every watched item; archives everything due. Returns 0 when all of it
 * was archived, 1 when something failed (the rest still archived), or -errno when the
 * archive could not even be opened (-EBUSY: another process holds its lock; so for
 * daemon_run_forever too).
 */
int daemon_run_once(struct daemon *d);

/* The service: polls forever until SIGTERM/SIGINT; SIGHUP reloads from config_path. */
int daemon_run_forever(struct daemon *d, const char *config_path);

#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "macro.h"

/*
 * Health reports to systemd (sd_notify). Every call is a no-op when NOTIFY_SOCKET is unset,
 * so --once and foreground runs need no special casing.
 */

struct notify_watchdog {
        uint64_t interval_usec; /* half of WATCHDOG_USEC; 0 when the watchdog is off */
        uint64_t next_usec;     /* CLOCK_MONOTONIC deadline of the next ping */
};

/* Reads WATCHDOG_USEC (sd_watchdog_enabled) once. */
void notify_watchdog_init(struct notify_watchdog *w, uint64_t now);
/* Sends WATCHDOG=1 when due. Call only from a loop turn that made progress. */
void notify_watchdog_ping(struct notify_watchdog *w, uint64_t now);
/* The next moment the loop must wake up for the watchdog; UINT64_MAX when it is off. */
uint64_t notify_watchdog_deadline(const struct notify_watchdog *w);

void notify_ready(const char *status);
void notify_status(const char *status);
/* RELOADING=1 with MONOTONIC_USEC=, as systemd's Type=notify-reload expects. */
void notify_reloading(void);
void notify_stopping(void);

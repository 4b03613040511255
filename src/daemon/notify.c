#include <inttypes.h>
#include <stdio.h>
#include <time.h>

#include <systemd/sd-daemon.h>

#include "notify.h"
#include "util.h"

void notify_watchdog_init(struct notify_watchdog *w, uint64_t now)
{
        uint64_t usec = 0;

        *w = (struct notify_watchdog){0};
        /* 0 = not enabled for this process; > 0 = enabled; < 0 = invalid settings. */
        if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
                w->interval_usec = usec / 2;
                w->next_usec = now;
        }
}

void notify_watchdog_ping(struct notify_watchdog *w, uint64_t now)
{
        if (w->interval_usec == 0 || now < w->next_usec)
                return;
        (void) sd_notify(0, "WATCHDOG=1");
        w->next_usec = now + w->interval_usec;
}

uint64_t notify_watchdog_deadline(const struct notify_watchdog *w)
{
        return w->interval_usec == 0 ? UINT64_MAX : w->next_usec;
}

void notify_ready(const char *status)
{
        (void) sd_notifyf(0, "READY=1\nSTATUS=%s", status);
}

void notify_status(const char *status)
{
        (void) sd_notifyf(0, "STATUS=%s", status);
}

void notify_reloading(void)
{
        (void) sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%" PRIu64, now_usec(CLOCK_MONOTONIC));
}

void notify_stopping(void)
{
        (void) sd_notify(0, "STOPPING=1\nSTATUS=stopping");
}

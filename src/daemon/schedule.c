/*
 * When items poll, as pure functions of "now": they read the items and the clock value they
 * are given, and change nothing, so that tests/unit/test_schedule.c can drive them with any
 * clock. The loop (daemon_run_forever) acts on what they say.
 */

#include "internal.h"

/*
 * The first poll of item i of n: spread evenly over one interval from start so that a thousand
 * items do not all ask Connect in the same second; the first item goes at once.
 */
uint64_t schedule_first_poll(uint64_t start_usec, uint64_t interval_usec, size_t i, size_t n)
{
        return start_usec + interval_usec * i / n;
}

/*
 * The due scan: the index of the first item at or after from whose poll is due at now (its
 * last poll is over and its next_poll_usec has come), or n when none is. Idle items not due
 * yet bring *deadline_usec forward to their next poll; items still polling are skipped (they
 * get their next time when they end).
 */
size_t schedule_next_due(struct item *const *items, size_t n, size_t from, uint64_t now_usec,
                         uint64_t *deadline_usec)
{
        for (size_t i = from; i < n; i++) {
                const struct item *it = items[i];
                if (!it->polled)
                        continue;
                if (it->next_poll_usec <= now_usec)
                        return i;
                if (it->next_poll_usec < *deadline_usec)
                        *deadline_usec = it->next_poll_usec;
        }
        return n;
}

/* Doubling from the interval with each quiet poll, capped at max_usec (README "Operating
 * it": the worst delay before a finished job is archived is max_usec). */
uint64_t schedule_interval(uint64_t interval_usec, uint64_t max_usec, unsigned quiet)
{
        uint64_t wait = interval_usec;

        for (unsigned i = 0; i < quiet && wait < max_usec; i++)
                wait = wait > max_usec / 2 ? max_usec : wait * 2;
        return wait;
}

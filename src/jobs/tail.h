#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Following a job's log: the /tail stream's framing, and the rule that keeps a line from
 * being lost or shown twice where the /log answer and the /tail stream (or two polls of
 * /log) meet. No I/O happens here.
 */

struct log_entry;

/*
 * Called with every entry the stream brings, in order; takes ownership of e (release it
 * with connect_log_entry_done()). Return -errno to stop the stream.
 */
typedef int tail_entry_fn(void *userdata, struct log_entry *e);

/*
 * The framing of /tail is not documented, so the decoder takes all three that a server
 * could plausibly send, in any mix and any chunking: newline-delimited JSON, server-sent
 * events ("data: {...}" lines; an event ends at a blank line, several data lines are joined
 * with newlines; "event:", "id:", "retry:" and ": comment" lines are ignored), and JSON
 * objects back to back. A value is a LogEntry, a LogEntries object ({"entries": [...]}) or
 * an array of LogEntry. A frame larger than TAIL_FRAME_MAX is refused (-EBADMSG).
 */
#define TAIL_FRAME_MAX (16u * 1024u * 1024u)

struct tail_decoder;

int tail_decoder_new(tail_entry_fn *fn, void *userdata, struct tail_decoder **ret);
void tail_decoder_free(struct tail_decoder *d);
void tail_decoder_freep(struct tail_decoder **d);

/* Feeds bytes as they arrive. Returns 0, -EBADMSG (not one of the framings, or not a
 * LogEntry), -ENOMEM, or the callback's error. */
int tail_decoder_feed(struct tail_decoder *d, const void *data, size_t len);

/* The stream ended: an event still waiting for its blank line is delivered; a partial JSON
 * value is -EBADMSG. */
int tail_decoder_finish(struct tail_decoder *d);

/* Forgets a partial frame: the stream starts over (a retried request). */
void tail_decoder_reset(struct tail_decoder *d);

/*
 * The seam rule. A line is identified by its timestamp (to the nanosecond), its source and
 * its text; a line without a timestamp takes the one of the line before it in the same
 * pass. The window remembers the last `capacity` lines shown. A pass is one reading of the
 * log from some point on: the /log answer, one /tail request from its start, one poll of
 * /log. Within a pass:
 *   - a line that this pass has seen no more times than the window has shown it is a
 *     repeat (so a line really printed twice by the job is shown twice);
 *   - a line older than the oldest line in the window is history (already scrolled past,
 *     or before the N lines asked for), unless the window holds the log from its start;
 *   - the first line that is neither makes the pass "caught up": it and every later line
 *     of the pass are new (a stream never goes back in time), and are added to the window.
 */
struct tail_seen;

int tail_seen_new(size_t capacity, struct tail_seen **ret);
void tail_seen_free(struct tail_seen *s);
void tail_seen_freep(struct tail_seen **s);

/* A new pass starts. */
void tail_seen_begin_pass(struct tail_seen *s);

/* The window holds the log from its first line (the /log answer had fewer lines than asked
 * for); cleared again when the window has to forget a line. */
void tail_seen_set_complete(struct tail_seen *s);

/* Decides one line of the current pass: 1 new (now remembered as shown), 0 a repeat or
 * history, -ENOMEM. */
int tail_seen_admit(struct tail_seen *s, const struct log_entry *e);

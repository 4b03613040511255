#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <syslog.h>

#include "macro.h"

/*
 * One event a line, to one of three places, chosen from stderr at the first line (or by
 * log_open()):
 *   - the journal, when stderr is the journal's stream ($JOURNAL_STREAM names stderr's device
 *     and inode, as systemd sets it for StandardError=journal): a line with a log_context is
 *     a structured entry through sd_journal_sendv() with MESSAGE, PRIORITY,
 *     SYSLOG_IDENTIFIER and the context's fields (CONTENT_GUID, CONTENT_NAME, JOB_KEY), so
 *     "journalctl CONTENT_GUID=<guid>" finds one item's history; a line without one (or one
 *     the journal refuses) goes to the stream with its "<N>" prefix, which journald turns
 *     into the same MESSAGE, PRIORITY and SYSLOG_IDENTIFIER;
 *   - a terminal: plain text, "error: " / "warning: " / "debug: " before the message;
 *   - anything else (a file, a pipe, a stream without $JOURNAL_STREAM): sd-daemon priority
 *     prefixes, "<3>" ... "<7>".
 */

enum log_target {
        LOG_TARGET_PREFIX,   /* "<N>message" on stderr */
        LOG_TARGET_TERMINAL, /* "warning: message" on stderr */
        LOG_TARGET_JOURNAL,  /* sd_journal_sendv() */
};

/* What a line is about; each non-NULL member becomes a journal field. The caller escapes. */
struct log_context {
        const char *content_guid; /* CONTENT_GUID= */
        const char *content_name; /* CONTENT_NAME= */
        const char *job_key;      /* JOB_KEY= */
};

/* Chooses the target again from $JOURNAL_STREAM and stderr (after a dup2() onto stderr). */
void log_open(void);
enum log_target log_get_target(void);
/* For a command run by hand (connect-jobs): "warning: …" lines whatever stderr is. */
void log_set_target(enum log_target t);

void log_set_max_level(int prio);
int log_get_max_level(void);
bool log_enabled(int prio);

void log_printf(int prio, const char *fmt, ...) _printf_(2, 3);

/* As log_printf(), with the journal fields of ctx (which may be NULL). */
void log_context_printf(int prio, const struct log_context *ctx, const char *fmt, ...)
        _printf_(3, 4);

/* Logs with errno set to -r so that "%m" names the error; returns r (a negative errno). */
int log_errno(int prio, int r, const char *fmt, ...) _printf_(3, 4);

/*
 * "%m" (glibc: the text of errno) is how we name errors. GCC's -Wpedantic reports each one
 * as "ISO C does not support the '%m' gnu_printf format", and no flag turns off that check
 * alone; a call inside an __extension__ expression skips it and keeps every other format
 * check. So each printf-like function that takes "%m" gets a same-named macro like these
 * (a macro does not expand inside its own expansion; define the function as "(name)(...)").
 */
#define log_printf(...) (__extension__ log_printf(__VA_ARGS__))
#define log_errno(...)  (__extension__ log_errno(__VA_ARGS__))

/*
 * Copies a string that came from outside (server, config) into buf as a printable, quoted-safe
 * form: control characters, quotes, backslashes and non-ASCII bytes become \xNN escapes, and
 * the result is capped (ending in "..." when cut). A hostile value cannot forge a log line.
 * Returns buf.
 */
const char *log_escape(const char *s, char *buf, size_t size);

/*
 * The same for text a library wrote, such as curl's error messages: printable ASCII (quotes
 * included) and valid UTF-8 stay as written, so "Couldn't connect" reads as it should;
 * control characters (C0, DEL and C1), invalid UTF-8 and the backslash (so that every "\x"
 * is an escape) become \xNN. A hostile value still cannot forge a log line. Returns buf.
 */
const char *log_escape_text(const char *s, char *buf, size_t size);
#define LOG_ESCAPE_MAX 160

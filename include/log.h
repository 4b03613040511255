#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <syslog.h>

#include "macro.h"

/* Lines go to stderr with sd-daemon priority prefixes ("<3>" ... "<7>"), one event a line. */

void log_set_max_level(int prio);
int log_get_max_level(void);
bool log_enabled(int prio);

void log_printf(int prio, const char *fmt, ...) _printf_(2, 3);

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

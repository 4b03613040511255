#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

#include "log.h"

/* The functions themselves, not log.h's wrapper macros. */
#undef log_printf
#undef log_errno

#define JOURNAL_SOCKET "/run/systemd/journal/socket"

static int max_level = LOG_INFO;
static int target = -1; /* enum log_target, or -1 until the first line */

void log_set_max_level(int prio)
{
        max_level = prio;
}

int log_get_max_level(void)
{
        return max_level;
}

bool log_enabled(int prio)
{
        return prio <= max_level;
}

/*
 * True when $JOURNAL_STREAM is "<device>:<inode>" of what stderr is now (systemd's test) and
 * journald's socket is there: sd_journal_sendv() drops entries silently without it.
 */
static bool stderr_is_journal(void)
{
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;
        char *end;

        if (!e || !*e || fstat(STDERR_FILENO, &st) < 0)
                return false;
        errno = 0;
        dev = strtoull(e, &end, 10);
        if (errno != 0 || end == e || *end != ':')
                return false;
        e = end + 1;
        ino = strtoull(e, &end, 10);
        if (errno != 0 || end == e || *end != '\0')
                return false;
        if ((unsigned long long) st.st_dev != dev || (unsigned long long) st.st_ino != ino)
                return false;
        return access(JOURNAL_SOCKET, W_OK) == 0;
}

void log_open(void)
{
        int saved = errno;

        if (stderr_is_journal())
                target = LOG_TARGET_JOURNAL;
        else if (isatty(STDERR_FILENO))
                target = LOG_TARGET_TERMINAL;
        else
                target = LOG_TARGET_PREFIX;
        errno = saved;
}

void log_set_target(enum log_target t)
{
        target = (int) t;
}

enum log_target log_get_target(void)
{
        if (target < 0)
                log_open();
        return (enum log_target) target;
}

static const char *terminal_prefix(int prio)
{
        if (prio <= LOG_ERR)
                return "error: ";
        if (prio == LOG_WARNING)
                return "warning: ";
        if (prio == LOG_DEBUG)
                return "debug: ";
        return "";
}

/* One fputs per event keeps lines whole even if several processes share stderr. */
static void write_line(int prio, bool terminal, const char *msg)
{
        char line[2200];

        if (terminal)
                (void) snprintf(line, sizeof(line), "%s%s\n", terminal_prefix(prio), msg);
        else
                (void) snprintf(line, sizeof(line), "<%d>%s\n", prio & 7, msg);
        (void) fputs(line, stderr);
}

/* Returns < 0 when the journal did not take the entry (the caller writes it to stderr). */
static int journal_send(int prio, const struct log_context *ctx, const char *msg)
{
        char p[16], ident[64], guid[LOG_ESCAPE_MAX + 16], name[LOG_ESCAPE_MAX + 16],
                key[LOG_ESCAPE_MAX + 16], message[2100];
        struct iovec iov[6];
        size_t n = 0;

        (void) snprintf(p, sizeof(p), "PRIORITY=%d", prio & 7);
        (void) snprintf(ident, sizeof(ident), "SYSLOG_IDENTIFIER=%s",
                        program_invocation_short_name);
        (void) snprintf(message, sizeof(message), "MESSAGE=%s", msg);
        iov[n++] = (struct iovec){message, strlen(message)};
        iov[n++] = (struct iovec){p, strlen(p)};
        iov[n++] = (struct iovec){ident, strlen(ident)};
        if (ctx && ctx->content_guid) {
                (void) snprintf(guid, sizeof(guid), "CONTENT_GUID=%s", ctx->content_guid);
                iov[n++] = (struct iovec){guid, strlen(guid)};
        }
        if (ctx && ctx->content_name) {
                (void) snprintf(name, sizeof(name), "CONTENT_NAME=%s", ctx->content_name);
                iov[n++] = (struct iovec){name, strlen(name)};
        }
        if (ctx && ctx->job_key) {
                (void) snprintf(key, sizeof(key), "JOB_KEY=%s", ctx->job_key);
                iov[n++] = (struct iovec){key, strlen(key)};
        }
        return sd_journal_sendv(iov, (int) n);
}

_printf_(3, 0) static void log_vprintf(int prio, const struct log_context *ctx, const char *fmt,
                                       va_list ap)
{
        char msg[2048];
        enum log_target t = log_get_target();

        (void) vsnprintf(msg, sizeof(msg), fmt, ap);
        /*
         * A line without fields takes the stream, whose entries journald attributes to the
         * unit from the stream itself. A datagram is attributed by reading /proc/<pid>, which
         * fails once the sender has exited: the "config.yaml:7:5: ..." of a failed start,
         * logged just before exit 78, would vanish from "systemctl status".
         */
        if (t == LOG_TARGET_JOURNAL && ctx && journal_send(prio, ctx, msg) >= 0)
                return;
        write_line(prio, t == LOG_TARGET_TERMINAL, msg);
}

void log_printf(int prio, const char *fmt, ...)
{
        va_list ap;

        if (!log_enabled(prio))
                return;
        va_start(ap, fmt);
        log_vprintf(prio, NULL, fmt, ap);
        va_end(ap);
}

void log_context_printf(int prio, const struct log_context *ctx, const char *fmt, ...)
{
        va_list ap;

        if (!log_enabled(prio))
                return;
        va_start(ap, fmt);
        log_vprintf(prio, ctx, fmt, ap);
        va_end(ap);
}

int log_errno(int prio, int r, const char *fmt, ...)
{
        va_list ap;

        if (!log_enabled(prio))
                return r;
        errno = r < 0 ? -r : r;
        va_start(ap, fmt);
        log_vprintf(prio, NULL, fmt, ap);
        va_end(ap);
        return r;
}

/*
 * The length of the valid UTF-8 sequence at s (2 to 4 bytes) that is not a C1 control
 * (U+0080..U+009F, which some terminals obey), or 0. Overlong forms and surrogates are not
 * valid (RFC 3629).
 */
static size_t utf8_printable_len(const unsigned char *s)
{
        size_t n;
        unsigned char lo = 0x80, hi = 0xbf;

        if (s[0] >= 0xc2 && s[0] <= 0xdf)
                n = 2;
        else if (s[0] >= 0xe0 && s[0] <= 0xef)
                n = 3;
        else if (s[0] >= 0xf0 && s[0] <= 0xf4)
                n = 4;
        else
                return 0;
        if (s[0] == 0xe0)
                lo = 0xa0;
        else if (s[0] == 0xed)
                hi = 0x9f;
        else if (s[0] == 0xf0)
                lo = 0x90;
        else if (s[0] == 0xf4)
                hi = 0x8f;
        if (s[1] < lo || s[1] > hi)
                return 0;
        for (size_t i = 2; i < n; i++)
                if (s[i] < 0x80 || s[i] > 0xbf)
                        return 0;
        if (s[0] == 0xc2 && s[1] <= 0x9f)
                return 0;
        return n;
}

/*
 * Copies s into buf, escaping each byte that is not kept as \xNN and capping the result
 * (ending in "..." when cut). Strict keeps printable ASCII but quotes and backslashes; text
 * keeps printable ASCII but the backslash, and valid UTF-8 but C1 controls.
 */
static const char *escape(const char *s, char *buf, size_t size, bool text)
{
        static const char hex[] = "0123456789abcdef";
        const unsigned char *p = (const unsigned char *) s;
        size_t o = 0;

        if (size == 0)
                return buf;
        if (!s) {
                (void) snprintf(buf, size, "(null)");
                return buf;
        }
        while (*p) {
                unsigned char c = *p;
                size_t keep = 0;

                if (c >= 0x20 && c < 0x7f && c != '\\')
                        keep = text || (c != '"' && c != '\'') ? 1 : 0;
                else if (text && c >= 0x80)
                        keep = utf8_printable_len(p);

                if (o + (keep ? keep : 4) + 4 > size) {
                        if (size >= 4) {
                                o = o > size - 4 ? size - 4 : o;
                                memcpy(buf + o, "...", 3);
                                o += 3;
                        }
                        break;
                }
                if (keep) {
                        memcpy(buf + o, p, keep);
                        o += keep;
                        p += keep;
                } else {
                        buf[o++] = '\\';
                        buf[o++] = 'x';
                        buf[o++] = hex[c >> 4];
                        buf[o++] = hex[c & 15];
                        p++;
                }
        }
        buf[o] = '\0';
        return buf;
}

const char *log_escape(const char *s, char *buf, size_t size)
{
        return escape(s, buf, size, false);
}

const char *log_escape_text(const char *s, char *buf, size_t size)
{
        return escape(s, buf, size, true);
}

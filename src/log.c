#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

/* The functions themselves, not log.h's wrapper macros. */
#undef log_printf
#undef log_errno

static int max_level = LOG_INFO;

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

_printf_(2, 0) static void log_vprintf(int prio, const char *fmt, va_list ap)
{
        char line[2048];
        int n;

        n = snprintf(line, sizeof(line), "<%d>", prio & 7);
        (void) vsnprintf(line + n, sizeof(line) - (size_t) n - 1, fmt, ap);
        /* One fputs per event keeps lines whole even if several processes share stderr. */
        size_t len = strlen(line);
        line[len++] = '\n';
        line[len] = '\0';
        (void) fputs(line, stderr);
}

void log_printf(int prio, const char *fmt, ...)
{
        va_list ap;

        if (!log_enabled(prio))
                return;
        va_start(ap, fmt);
        log_vprintf(prio, fmt, ap);
        va_end(ap);
}

int log_errno(int prio, int r, const char *fmt, ...)
{
        va_list ap;

        if (!log_enabled(prio))
                return r;
        errno = r < 0 ? -r : r;
        va_start(ap, fmt);
        log_vprintf(prio, fmt, ap);
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

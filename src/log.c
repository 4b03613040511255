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

const char *log_escape(const char *s, char *buf, size_t size)
{
        static const char hex[] = "0123456789abcdef";
        size_t o = 0;

        if (size == 0)
                return buf;
        if (!s) {
                (void) snprintf(buf, size, "(null)");
                return buf;
        }
        for (; *s; s++) {
                unsigned char c = (unsigned char) *s;
                bool plain = c >= 0x20 && c < 0x7f && c != '\\' && c != '"' && c != '\'';

                if (o + (plain ? 1 : 4) + 4 > size) {
                        if (size >= 4) {
                                o = o > size - 4 ? size - 4 : o;
                                memcpy(buf + o, "...", 3);
                                o += 3;
                        }
                        break;
                }
                if (plain) {
                        buf[o++] = (char) c;
                } else {
                        buf[o++] = '\\';
                        buf[o++] = 'x';
                        buf[o++] = hex[c >> 4];
                        buf[o++] = hex[c & 15];
                }
        }
        buf[o] = '\0';
        return buf;
}

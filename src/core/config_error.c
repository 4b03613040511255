/* The configuration's error messages: see config_error.h. */

#include <errno.h>
#include <stdio.h>

#include "config_error.h"

int config_error_setv(struct config_error *e, const char *file, size_t line, size_t column, int r,
                      const char *fmt, va_list ap)
{
        int n;

        if (!e)
                return r;
        if (line > 0)
                n = snprintf(e->message, sizeof(e->message), "%s:%zu:%zu: ", file, line, column);
        else
                n = snprintf(e->message, sizeof(e->message), "%s: ", file);
        if (n < 0 || (size_t) n >= sizeof(e->message))
                return r;
        errno = r < 0 ? -r : r;
        (void) vsnprintf(e->message + n, sizeof(e->message) - (size_t) n, fmt, ap);
        return r;
}

/* The function itself, not the header's wrapper macro. */
#undef config_error_set
int config_error_set(struct config_error *e, const char *file, int r, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        r = config_error_setv(e, file, 0, 0, r, fmt, ap);
        va_end(ap);
        return r;
}

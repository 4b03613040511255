#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "macro.h"
#include "util.h"

int write_all(int fd, const void *buf, size_t len)
{
        const char *p = buf;

        while (len > 0) {
                ssize_t n = write(fd, p, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return -EIO;
                p += n;
                len -= (size_t) n;
        }
        return 0;
}

uint64_t now_usec(clockid_t clock)
{
        struct timespec ts;

        (void) clock_gettime(clock, &ts);
        return (uint64_t) ts.tv_sec * UINT64_C(1000000) + (uint64_t) ts.tv_nsec / 1000;
}

/* Reads exactly n decimal digits. */
static int digits(const char **p, int n, int *ret)
{
        int v = 0;

        for (int i = 0; i < n; i++) {
                if (!isdigit((unsigned char) (*p)[i]))
                        return -EINVAL;
                v = v * 10 + ((*p)[i] - '0');
        }
        *p += n;
        *ret = v;
        return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
        y -= m <= 2;
        int64_t era = (y >= 0 ? y : y - 399) / 400;
        int64_t yoe = y - era * 400;
        int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
        int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
        static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        return m == 2 && leap ? 29 : days[m - 1];
}

int rfc3339_parse(const char *s, int64_t *ret_epoch)
{
        int year, mon, day, hour, min, sec, oh = 0, om = 0, sign = 0;
        const char *p = s;

        if (!s)
                return -EINVAL;
        if (digits(&p, 4, &year) < 0 || *p++ != '-' || digits(&p, 2, &mon) < 0 || *p++ != '-' ||
            digits(&p, 2, &day) < 0)
                return -EINVAL;
        if (*p != 'T' && *p != 't' && *p != ' ')
                return -EINVAL;
        p++;
        if (digits(&p, 2, &hour) < 0 || *p++ != ':' || digits(&p, 2, &min) < 0 || *p++ != ':' ||
            digits(&p, 2, &sec) < 0)
                return -EINVAL;
        if (*p == '.') {
                p++;
                if (!isdigit((unsigned char) *p))
                        return -EINVAL;
                while (isdigit((unsigned char) *p))
                        p++;
        }
        if (*p == 'Z' || *p == 'z') {
                p++;
        } else if (*p == '+' || *p == '-') {
                sign = *p++ == '+' ? 1 : -1;
                if (digits(&p, 2, &oh) < 0 || *p++ != ':' || digits(&p, 2, &om) < 0)
                        return -EINVAL;
                if (oh > 23 || om > 59)
                        return -EINVAL;
        } else {
                return -EINVAL;
        }
        if (*p != '\0')
                return -EINVAL;
        /* Second 60 is a leap second; it folds into the next minute like timegm does. */
        if (mon < 1 || mon > 12 || day < 1 || day > days_in_month(year, mon) || hour > 23 ||
            min > 59 || sec > 60)
                return -EINVAL;

        int64_t t = days_from_civil(year, mon, day) * 86400 + hour * 3600 + min * 60 + sec;
        t -= (int64_t) sign * (oh * 3600 + om * 60);
        *ret_epoch = t;
        return 0;
}

const char *rfc3339_format_utc(int64_t epoch, char *buf, size_t size)
{
        time_t t = (time_t) epoch;
        struct tm tm;

        if (!gmtime_r(&t, &tm) || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                (void) snprintf(buf, size, "invalid");
        return buf;
}

bool path_component_is_safe(const char *s, size_t len)
{
        if (!s || len == 0 || len > 128)
                return false;
        if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
                return false;
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char) s[i];
                if (c == '/' || c < 0x20 || c == 0x7f)
                        return false;
        }
        return true;
}

bool guid_is_valid(const char *s)
{
        if (!s || strlen(s) != GUID_LEN)
                return false;
        for (size_t i = 0; i < GUID_LEN; i++) {
                if (i == 8 || i == 13 || i == 18 || i == 23) {
                        if (s[i] != '-')
                                return false;
                } else if (!isxdigit((unsigned char) s[i])) {
                        return false;
                }
        }
        return true;
}

/* Exactly width decimal digits and nothing after them, into *ret; -EINVAL otherwise. */
static int parse_digits(const char *s, size_t width, int *ret)
{
        int v = 0;

        if (!s) {
                *ret = 0;
                return 0;
        }
        for (size_t i = 0; i < width; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -EINVAL;
                v = v * 10 + (s[i] - '0');
        }
        if (s[width] != '\0')
                return -EINVAL;
        *ret = v;
        return 0;
}

int ymd_parse(const char *year, const char *month, const char *day, struct ymd *ret)
{
        struct ymd v;

        if (!year || parse_digits(year, 4, &v.year) < 0 || parse_digits(month, 2, &v.month) < 0 ||
            parse_digits(day, 2, &v.day) < 0)
                return -EINVAL;
        *ret = v;
        return 0;
}

int ymd_compare(const struct ymd *a, const struct ymd *b)
{
        if (a->year != b->year)
                return a->year < b->year ? -1 : 1;
        if (a->month != b->month)
                return a->month < b->month ? -1 : 1;
        if (a->day != b->day)
                return a->day < b->day ? -1 : 1;
        return 0;
}

int buf_append(char **buf, size_t *len, size_t *cap, const void *data, size_t n, size_t min_cap)
{
        if (n > SIZE_MAX / 4 || *len > SIZE_MAX / 4) /* so that doubling cannot overflow */
                return -ENOMEM;
        if (*len + n + 1 > *cap) {
                size_t c = *cap ? *cap : min_cap;
                while (c < *len + n + 1)
                        c *= 2;
                char *p = realloc(*buf, c);
                if (!p)
                        return -ENOMEM;
                *buf = p;
                *cap = c;
        }
        if (n)
                memcpy(*buf + *len, data, n);
        *len += n;
        (*buf)[*len] = '\0';
        return 0;
}

void hex_encode(const unsigned char *in, size_t len, char *out)
{
        static const char hex[] = "0123456789abcdef";

        for (size_t i = 0; i < len; i++) {
                out[2 * i] = hex[in[i] >> 4];
                out[2 * i + 1] = hex[in[i] & 15];
        }
        out[2 * len] = '\0';
}

int dir_open_at(int dfd, const char *name, DIR **ret)
{
        int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        DIR *d;

        if (fd < 0)
                return -errno;
        d = fdopendir(fd);
        if (!d) {
                int r = -errno;
                (void) safe_close(fd);
                return r;
        }
        *ret = d;
        return 0;
}

int file_open_at(int dfd, const char *name, struct stat *ret_st)
{
        struct stat st;
        /* O_NONBLOCK: opening a FIFO named like a log must not wait for a writer forever. It
         * changes nothing for the regular files that pass the test below. */
        int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0) {
                int r = -errno;
                (void) safe_close(fd);
                return r;
        }
        if (!S_ISREG(st.st_mode)) {
                (void) safe_close(fd);
                return -EISDIR;
        }
        if (ret_st)
                *ret_st = st;
        return fd;
}

uint64_t hash64(const void *data, size_t len)
{
        const unsigned char *p = data;
        uint64_t h = UINT64_C(14695981039346656037);

        for (size_t i = 0; i < len; i++) {
                h ^= p[i];
                h *= UINT64_C(1099511628211);
        }
        return h;
}

size_t utf8_valid_len(const unsigned char *s, size_t n)
{
        unsigned char c = s[0];
        size_t len;
        uint32_t cp;

        if (c < 0x80)
                return 1;
        if (c >= 0xc2 && c <= 0xdf)
                len = 2, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
                len = 3, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
                len = 4, cp = c & 0x07;
        else
                return 0;
        if (n < len)
                return 0;
        for (size_t i = 1; i < len; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                cp = cp << 6 | (s[i] & 0x3f);
        }
        if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
                return 0;
        return len;
}

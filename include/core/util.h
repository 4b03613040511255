#pragma once

#include <dirent.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

/* Writes all of buf, retrying short writes and EINTR. Returns 0 or -errno. */
int write_all(int fd, const void *buf, size_t len);

uint64_t now_usec(clockid_t clock);

/*
 * Parses an RFC 3339 date-time ("2024-11-25T22:26:14Z", "2006-01-02T15:04:05-07:00",
 * "2024-12-06T19:09:29.948016766Z"; 't'/'z' and a space separator are accepted too) into
 * seconds since the epoch in UTC. Fractional seconds are dropped. Returns 0 or -EINVAL.
 */
int rfc3339_parse(const char *s, int64_t *ret_epoch);

/* Formats epoch seconds as "YYYY-MM-DDTHH:MM:SSZ". buf must hold 21 bytes. */
const char *rfc3339_format_utc(int64_t epoch, char *buf, size_t size);

/*
 * True when s can be used as one path component: not empty, not "." or "..", at most
 * 128 bytes, and no '/', NUL (len is the true length), control character or DEL.
 */
bool path_component_is_safe(const char *s, size_t len);

/* The length of the character at s[0, n): 1 for ASCII, 2..4 for a valid UTF-8 sequence
 * (shortest form, no surrogates, at most U+10FFFF), 0 for anything else. */
size_t utf8_valid_len(const unsigned char *s, size_t n);

/* A 64-bit FNV-1a hash of len bytes (not for security: for telling lists apart). */
uint64_t hash64(const void *data, size_t len);

/* True for the 36-character UUID text form (8-4-4-4-12 hex digits, either case). */
/* The length of a GUID ("xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"). */
#define GUID_LEN 36

bool guid_is_valid(const char *s);

/* Opens folder name under dfd for readdir, without following a symlink. Returns 0 or -errno. */
int dir_open_at(int dfd, const char *name, DIR **ret);

/*
 * Opens name under dfd for reading, without following a symlink; anything but a regular file
 * is -EISDIR. ret_st (may be NULL) gets its fstat. Returns the fd or -errno.
 */
int file_open_at(int dfd, const char *name, struct stat *ret_st);

/* Lower-case hex of len bytes into out (2 * len + 1 bytes). */
void hex_encode(const unsigned char *in, size_t len, char *out);

/*
 * Appends n bytes to a growing buffer (*buf, *len bytes used of *cap) and keeps a NUL after
 * them; the capacity starts at min_cap and doubles. The caller bounds the total. Returns 0 or
 * -ENOMEM.
 */
int buf_append(char **buf, size_t *len, size_t *cap, const void *data, size_t n, size_t min_cap);

/* A UTC calendar day, as the archive's guid/YYYY/MM/DD folders name it; 0 for a part not given. */
struct ymd {
        int year, month, day;
};

/*
 * Parses the archive's folder names: year exactly four digits, month and day (either may be
 * NULL: 0) exactly two. Returns 0, or -EINVAL for any other shape (a sign, a space, more or
 * fewer digits). Ranges are not checked: "00" parses as 0.
 */
int ymd_parse(const char *year, const char *month, const char *day, struct ymd *ret);

/* Orders two days: < 0, 0 or > 0 as a is before, the same as, or after b. */
int ymd_compare(const struct ymd *a, const struct ymd *b);

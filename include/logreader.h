#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * Reads an archived .log.gz back as the log's bytes, for connect-jobs search. Any valid gzip
 * file is accepted: one member (what the daemon writes) or several (concatenated, BGZF-like,
 * or from other tools). Small files are decoded whole with libdeflate; larger ones are
 * streamed through zlib's inflate in bounded memory.
 *
 * Errors: -EBADMSG corrupt data (bad header, bad deflate data, CRC or length mismatch,
 * trailing garbage), -EPIPE truncated (the file ends inside a member, or is empty),
 * -ENOMEM, or -errno of open/read. log_reader_strerror() turns them into words.
 */

struct log_reader;
struct log_reader_cache;

/* Buffers and decoder state one thread reuses from file to file (one reader at a time). */
int log_reader_cache_new(struct log_reader_cache **ret);
void log_reader_cache_free(struct log_reader_cache *c);

/*
 * Opens name in folder dfd (not following a symlink). size_hint is the log's size from
 * the record (-1 when unknown); it only picks the strategy. cache may be NULL; otherwise
 * the reader borrows it until log_reader_free(). Returns 0 or -errno.
 */
int log_reader_open(int dfd, const char *name, int64_t size_hint, struct log_reader_cache *cache,
                    struct log_reader **ret);

/*
 * When the whole log was decoded into one buffer, points ret_data and ret_len at it (owned by
 * the reader, valid until log_reader_free) and returns true; log_reader_read() then returns 0.
 */
bool log_reader_whole(struct log_reader *r, const char **ret_data, size_t *ret_len);

/* Up to size bytes of the log into buf: > 0 bytes, 0 at the end, or a negative error. */
ssize_t log_reader_read(struct log_reader *r, void *buf, size_t size);

void log_reader_free(struct log_reader *r);

/* "corrupt gzip data", "truncated gzip file", or strerror's text. */
const char *log_reader_strerror(int error);

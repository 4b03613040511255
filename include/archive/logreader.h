#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * Reads an archived .log.gz back as the log's bytes, for connect-jobs search, log and
 * download, on top of gzblock.h's reader (one format, one reader): the archiver's blocked
 * members are decoded whole with libdeflate; files without them (archives written before
 * blocks, gzip files of other tools, one member or several) go through gzblock's zlib path.
 *
 * A blocked file of several members can be decoded on several threads: its members are
 * listed from their headers and decoded ahead of the reader, at most a few per thread, and
 * handed out in order. Memory stays bounded (about 2 x threads members).
 *
 * Errors: -EBADMSG anything that is not complete valid gzip (corrupt data, a bad CRC or
 * size, a file cut short, trailing garbage, an empty file), -ENOMEM, or -errno of
 * open/read. log_reader_strerror() turns them into words.
 */

struct log_reader;

/*
 * Opens name in folder dfd (not following a symlink). threads > 1 lets a blocked file of
 * several members be decoded on that many threads. Returns 0 or -errno.
 */
int log_reader_open(int dfd, const char *name, unsigned threads, struct log_reader **ret);

/*
 * Opens name to read only members[0, n) of it (a blocked file's members, as the catalog
 * lists them, in order; copied), each member's bytes in one call of log_reader_next, decoded
 * on up to threads threads. -ESTALE when the file is not as long as the last member's end
 * (it changed since the catalog listed it: read it whole), or -errno.
 */
struct gzblock_member;
int log_reader_open_members(int dfd, const char *name, unsigned threads,
                            const struct gzblock_member *members, size_t n, uint64_t file_size,
                            struct log_reader **ret);

/*
 * The next bytes of the log: *ret_buf points into the reader, valid until the next call.
 * Returns their length (> 0), 0 at the end, or a negative error (the same one again after).
 */
ssize_t log_reader_next(struct log_reader *r, const char **ret_buf);

void log_reader_free(struct log_reader *r);

/* "corrupt or truncated gzip data", or strerror's text. */
const char *log_reader_strerror(int error);

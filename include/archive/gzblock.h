#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * The blocked gzip format of the archive's .log.gz files, and its reader.
 *
 * A .log.gz is a sequence of complete gzip members (RFC 1952), each holding one block of at
 * most GZBLOCK_SIZE bytes of the log, in order; an empty log is one empty member. Any gzip
 * reader sees one file (gzip, zcat, zgrep, Python's gzip). Every member the archiver writes
 * has this 24-byte header, then raw deflate data, then the usual CRC-32 and ISIZE:
 *
 *   offset  size  value
 *        0     2  1f 8b       ID1 ID2
 *        2     1  08          CM: deflate
 *        3     1  04          FLG: FEXTRA only (no name, no comment, no header CRC)
 *        4     4  0           MTIME: none, so the same log gives the same bytes
 *        8     1  0           XFL
 *        9     1  03          OS: Unix (what zlib wrote before)
 *       10     2  12          XLEN (little-endian)
 *       12     2  'C' 'J'     SI1 SI2: this subfield (connect-job-archiver)
 *       14     2  8           LEN of the subfield's data
 *       16     4  MSIZE       the whole member's size in bytes, header and trailer included
 *       20     4  USIZE       the member's uncompressed size (equal to its ISIZE)
 *
 * MSIZE lets a reader find every member boundary without inflating (as BGZF's "BC" does), so
 * that whole members go to libdeflate, on as many threads as it likes. A member carrying the
 * subfield must have USIZE <= GZBLOCK_USIZE_MAX and MSIZE <= gzblock_bound(USIZE); other
 * subfields may come before or after it. Members without it (archives written before blocks,
 * or files from other tools) are read with zlib's streaming inflate.
 */

#define GZBLOCK_SIZE       (256 * 1024)  /* what the writer puts in a member */
#define GZBLOCK_USIZE_MAX  (1024 * 1024) /* what a reader accepts in one */
#define GZBLOCK_HEADER_LEN 24
#define GZBLOCK_SI1        'C'
#define GZBLOCK_SI2        'J'

struct libdeflate_compressor;

/* The libdeflate level used for compression_level (zlib's 1..9); see README.md. */
int gzblock_level(int zlib_level);
/* The largest member that gzblock_compress() can make of len bytes. */
size_t gzblock_bound(size_t len);
/*
 * Writes one member holding in[0..len) (len <= GZBLOCK_USIZE_MAX) into out, which has room
 * for gzblock_bound(len) bytes. Returns the member's size, or -EINVAL.
 */
ssize_t gzblock_compress(struct libdeflate_compressor *c, const void *in, size_t len, void *out,
                         size_t out_len);

/*
 * Reads any gzip file in order with bounded memory (about 2.2 MiB at most): members with the
 * subfield whole with libdeflate, others with zlib. The fd is borrowed and read with pread
 * from offset 0, so its file position does not matter and is left alone.
 */
struct gzblock_reader;

int gzblock_reader_new(int fd, struct gzblock_reader **ret);
void gzblock_reader_free(struct gzblock_reader *r);
/*
 * The next decompressed bytes: *ret_buf points into the reader and stays valid until the
 * next call. Returns their length (> 0), 0 at the end of the file, -EBADMSG for anything that
 * is not complete valid gzip (truncated, bad CRC or size, trailing garbage, an empty file), or
 * the -errno of a failed read. After an error every call returns the same error.
 */
ssize_t gzblock_read(struct gzblock_reader *r, const void **ret_buf);
/* Bytes of the file consumed so far (whole members and what zlib has taken). */
uint64_t gzblock_reader_offset(const struct gzblock_reader *r);

/* One member of a blocked file. */
struct gzblock_member {
        uint64_t offset; /* in the file */
        uint32_t size;   /* MSIZE */
        uint32_t usize;  /* uncompressed bytes */
};

/*
 * The members of a blocked file, found from their headers alone (one pread each), so that
 * they can be decoded on several threads with gzblock_decode(). Returns 0 with a malloc'ed
 * array (NULL when n is 0, which no file of ours is), -ENOTSUP when some member has no
 * subfield (read such a file with gzblock_reader), -EBADMSG when a header is broken or the
 * last member is cut short, or a read's -errno. Only headers are checked: gzblock_decode()
 * checks the data.
 */
int gzblock_list(int fd, struct gzblock_member **ret, size_t *ret_n);

/* A libdeflate decompressor and buffers for one thread. */
struct gzblock_decoder;

int gzblock_decoder_new(struct gzblock_decoder **ret);
void gzblock_decoder_free(struct gzblock_decoder *d);
/*
 * Reads member m from fd (pread) and decompresses it; *ret_buf stays valid until the next
 * call on d. Returns m->usize, -EBADMSG when the member is not what its header says (bad
 * CRC, size or data), or a read's -errno.
 */
ssize_t gzblock_decode(struct gzblock_decoder *d, int fd, const struct gzblock_member *m,
                       const void **ret_buf);

static inline void gzblock_reader_freep(struct gzblock_reader **r)
{
        gzblock_reader_free(*r);
}

static inline void gzblock_decoder_freep(struct gzblock_decoder **d)
{
        gzblock_decoder_free(*d);
}

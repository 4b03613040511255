#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libdeflate.h>
#include <zlib.h>

#include "gzblock.h"
#include "macro.h"

#define GZIP_TRAILER_LEN 8
#define GZIP_FHCRC       0x02
#define GZIP_FEXTRA      0x04
#define GZIP_FLG_ALL     0x1f /* FTEXT FHCRC FEXTRA FNAME FCOMMENT; the others are reserved */
#define OS_UNIX          3
#define CJ_DATA_LEN      8

/* What the zlib path reads and inflates at a time. */
#define STREAM_CHUNK (64 * 1024)
/* A file of another writer up to this size is decoded whole with libdeflate (see
 * read_foreign_whole()); its members up to this size of log. */
#define FOREIGN_WHOLE_IN  (1024 * 1024)
#define FOREIGN_WHOLE_OUT (4 * 1024 * 1024)

/*
 * compression_level keeps zlib's 1..9 scale. On the benchmark's 2,000 logs, libdeflate at the
 * same number, in 256 KiB members, makes smaller files than zlib with less CPU at every
 * level. At 6, 7 and 8 the level below is already 2.5-2.8 % smaller than zlib, and the same
 * number would cost 15 % (6) to 130 % (8) more CPU, so those take one lower. 9 stays 9, for
 * whoever asks for the smallest files. The table is in bench/README.md, "Level mapping".
 */
static const int level_map[10] = {0, 1, 2, 3, 4, 5, 5, 6, 7, 9};

int gzblock_level(int zlib_level)
{
        if (zlib_level < 1)
                zlib_level = 1;
        if (zlib_level > 9)
                zlib_level = 9;
        return level_map[zlib_level];
}

static void put_le16(unsigned char *p, uint32_t v)
{
        p[0] = (unsigned char) v;
        p[1] = (unsigned char) (v >> 8);
}

static void put_le32(unsigned char *p, uint32_t v)
{
        put_le16(p, v);
        put_le16(p + 2, v >> 16);
}

static uint32_t get_le16(const unsigned char *p)
{
        return (uint32_t) p[0] | (uint32_t) p[1] << 8;
}

static uint32_t get_le32(const unsigned char *p)
{
        return get_le16(p) | get_le16(p + 2) << 16;
}

size_t gzblock_bound(size_t len)
{
        return GZBLOCK_HEADER_LEN + libdeflate_deflate_compress_bound(NULL, len) + GZIP_TRAILER_LEN;
}

ssize_t gzblock_compress(struct libdeflate_compressor *c, const void *in, size_t len, void *out,
                         size_t out_len)
{
        unsigned char *o = out;
        size_t n;

        if (!c || (!in && len > 0) || !out || len > GZBLOCK_USIZE_MAX ||
            out_len < gzblock_bound(len))
                return -EINVAL;
        n = libdeflate_deflate_compress(c, in, len, o + GZBLOCK_HEADER_LEN,
                                        out_len - GZBLOCK_HEADER_LEN - GZIP_TRAILER_LEN);
        if (n == 0)
                return -EINVAL; /* cannot happen with the bound */
        n += GZBLOCK_HEADER_LEN + GZIP_TRAILER_LEN;

        memset(o, 0, GZBLOCK_HEADER_LEN);
        o[0] = 0x1f;
        o[1] = 0x8b;
        o[2] = 8;
        o[3] = GZIP_FEXTRA;
        o[9] = OS_UNIX;
        put_le16(o + 10, 4 + CJ_DATA_LEN);
        o[12] = GZBLOCK_SI1;
        o[13] = GZBLOCK_SI2;
        put_le16(o + 14, CJ_DATA_LEN);
        put_le32(o + 16, (uint32_t) n);
        put_le32(o + 20, (uint32_t) len);
        put_le32(o + n - 8, libdeflate_crc32(0, in, len));
        put_le32(o + n - 4, (uint32_t) len);
        return (ssize_t) n;
}

/* What a member's header says. */
struct header {
        bool blocked; /* it has our subfield; then: */
        uint32_t size;
        uint32_t usize;
};

/*
 * Parses the start of a member in b[0..avail). Returns 0 with h filled, -EAGAIN when it
 * needs *ret_need bytes to tell, or -EBADMSG when this is not the start of a gzip member.
 * Only members with FEXTRA can be blocked; for the others the checks beyond the magic are
 * zlib's.
 */
static int parse_header(const unsigned char *b, size_t avail, size_t *ret_need, struct header *h)
{
        size_t xlen, need = 12;

        *h = (struct header){0};
        if (avail >= 1 && b[0] != 0x1f)
                return -EBADMSG;
        if (avail >= 2 && b[1] != 0x8b)
                return -EBADMSG;
        if (avail >= 3 && b[2] != 8)
                return -EBADMSG;
        if (avail >= 4 && (b[3] & ~GZIP_FLG_ALL))
                return -EBADMSG;
        if (avail >= 4 && !(b[3] & GZIP_FEXTRA))
                return 0;
        if (avail < need) {
                *ret_need = need;
                return -EAGAIN;
        }
        xlen = get_le16(b + 10);
        need += xlen;
        if (avail < need) {
                *ret_need = need;
                return -EAGAIN;
        }
        for (size_t i = 12; i + 4 <= need;) {
                size_t len = get_le16(b + i + 2);
                if (i + 4 + len > need)
                        return -EBADMSG; /* a subfield longer than the extra field */
                if (b[i] == GZBLOCK_SI1 && b[i + 1] == GZBLOCK_SI2) {
                        if (len != CJ_DATA_LEN)
                                return -EBADMSG;
                        h->blocked = true;
                        h->size = get_le32(b + i + 4);
                        h->usize = get_le32(b + i + 8);
                }
                i += 4 + len;
        }
        if (!h->blocked)
                return 0;
        /* Beyond these, no member of ours: the header, two bytes of deflate at least, the
         * trailer; at most what gzblock_compress() can make, plus the foreign subfields. */
        if (h->usize > GZBLOCK_USIZE_MAX || h->size < need + 2 + GZIP_TRAILER_LEN ||
            h->size > gzblock_bound(h->usize) + xlen)
                return -EBADMSG;
        return 0;
}

/* Decompresses one whole member of ours into out (usize bytes). */
static int decode_member(struct libdeflate_decompressor *d, const unsigned char *in,
                         const struct header *h, unsigned char *out)
{
        size_t in_used = 0, out_used = 0;
        enum libdeflate_result res;

        res = libdeflate_gzip_decompress_ex(d, in, h->size, out, h->usize, &in_used, &out_used);
        /* libdeflate checks the CRC-32 and ISIZE; the sizes must also be what the header
         * says, or the next member would be looked for in the wrong place. */
        if (res != LIBDEFLATE_SUCCESS || in_used != h->size || out_used != h->usize)
                return -EBADMSG;
        return 0;
}

/* Makes *buf hold at least n bytes (keeping its contents). */
static int grow(unsigned char **buf, size_t *cap, size_t n)
{
        unsigned char *b;

        if (n <= *cap)
                return 0;
        b = realloc(*buf, n);
        if (!b)
                return -ENOMEM;
        *buf = b;
        *cap = n;
        return 0;
}

/* pread until len bytes or the end of the file. Returns the bytes read or -errno. */
static ssize_t pread_full(int fd, void *buf, size_t len, uint64_t off)
{
        size_t done = 0;

        while (done < len) {
                ssize_t n = pread(fd, (char *) buf + done, len - done, (off_t) (off + done));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        break;
                done += (size_t) n;
        }
        return (ssize_t) done;
}

struct gzblock_reader {
        int fd;
        int error;
        bool in_stream; /* zlib is inside a member */
        bool zs_ready;
        bool eof;          /* pread has met the end of the file */
        uint64_t file_off; /* where the next pread reads */
        unsigned char *in;
        size_t in_cap, in_start, in_end;
        unsigned char *out;
        size_t out_cap;
        struct libdeflate_decompressor *d;
        z_stream zs;
};

int gzblock_reader_new(int fd, struct gzblock_reader **ret)
{
        struct gzblock_reader *r;

        if (fd < 0 || !ret)
                return -EINVAL;
        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->fd = fd;
        *ret = r;
        return 0;
}

void gzblock_reader_free(struct gzblock_reader *r)
{
        if (!r)
                return;
        if (r->zs_ready)
                (void) inflateEnd(&r->zs);
        libdeflate_free_decompressor(r->d);
        free(r->in);
        free(r->out);
        free(r);
}

uint64_t gzblock_reader_offset(const struct gzblock_reader *r)
{
        return r->file_off - (r->in_end - r->in_start);
}

/* Makes at least need bytes available at r->in + r->in_start unless the file ends first.
 * Returns the bytes available or -errno. */
static ssize_t fill(struct gzblock_reader *r, size_t need)
{
        size_t avail = r->in_end - r->in_start;
        int e;

        if (avail >= need || r->eof)
                return (ssize_t) avail;
        if (r->in_start > 0) {
                memmove(r->in, r->in + r->in_start, avail);
                r->in_start = 0;
                r->in_end = avail;
        }
        /* Read ahead a little, so that small members and zlib's input come in few reads. */
        size_t want = need < STREAM_CHUNK ? STREAM_CHUNK : need;
        e = grow(&r->in, &r->in_cap, want);
        if (e < 0)
                return e;
        while (r->in_end < need && !r->eof) {
                ssize_t n =
                        pread_full(r->fd, r->in + r->in_end, r->in_cap - r->in_end, r->file_off);
                if (n < 0)
                        return n;
                if ((size_t) n < r->in_cap - r->in_end)
                        r->eof = true;
                r->in_end += (size_t) n;
                r->file_off += (uint64_t) n;
        }
        return (ssize_t) (r->in_end - r->in_start);
}

/* One member of ours, whole. Returns its usize or -errno. */
static ssize_t read_blocked(struct gzblock_reader *r, const struct header *h)
{
        ssize_t avail = fill(r, h->size);
        int e;

        if (avail < 0)
                return avail;
        if ((size_t) avail < h->size)
                return -EBADMSG; /* cut short */
        e = grow(&r->out, &r->out_cap, h->usize > 0 ? h->usize : 1);
        if (e < 0)
                return e;
        if (!r->d) {
                r->d = libdeflate_alloc_decompressor();
                if (!r->d)
                        return -ENOMEM;
        }
        e = decode_member(r->d, r->in + r->in_start, h, r->out);
        if (e < 0)
                return e;
        r->in_start += h->size;
        return h->usize;
}

/* Some of a member without our subfield, through zlib. Returns the bytes made (maybe 0, at
 * the member's end) or -errno. */
static ssize_t read_stream(struct gzblock_reader *r)
{
        int e;

        if (!r->in_stream) {
                int z = r->zs_ready ? inflateReset(&r->zs) : inflateInit2(&r->zs, 16 + MAX_WBITS);
                if (z != Z_OK)
                        return z == Z_MEM_ERROR ? -ENOMEM : -EIO;
                r->zs_ready = true;
                r->in_stream = true;
        }
        e = grow(&r->out, &r->out_cap, STREAM_CHUNK);
        if (e < 0)
                return e;
        for (;;) {
                ssize_t avail = fill(r, 1);
                if (avail < 0)
                        return avail;
                if (avail == 0)
                        return -EBADMSG; /* the file ends inside the member */
                r->zs.next_in = r->in + r->in_start;
                r->zs.avail_in = (uInt) avail;
                r->zs.next_out = r->out;
                r->zs.avail_out = (uInt) r->out_cap;
                int z = inflate(&r->zs, Z_NO_FLUSH);
                r->in_start += (size_t) avail - r->zs.avail_in;
                size_t made = r->out_cap - r->zs.avail_out;
                if (z == Z_STREAM_END) {
                        r->in_stream = false;
                        return (ssize_t) made;
                }
                if (z == Z_MEM_ERROR)
                        return -ENOMEM;
                if (z != Z_OK && z != Z_BUF_ERROR)
                        return -EBADMSG;
                if (made > 0)
                        return (ssize_t) made;
                /* Nothing out with room for it: inflate took all the input (next turn reads
                 * more), or it is stuck, which no valid stream does. */
                if (r->zs.avail_in > 0)
                        return -EBADMSG;
        }
}

/*
 * A member without our subfield, whole with libdeflate, when the rest of the file is in
 * memory (at most FOREIGN_WHOLE_IN) and the member decodes into at most FOREIGN_WHOLE_OUT:
 * the small one-member files of archives written before blocks then decode at libdeflate's
 * speed, not zlib's. Returns 1 with *ret_n, 0 to let zlib stream the member (too large, or
 * damaged: zlib then finds and reports the error), or -errno.
 */
static int read_foreign_whole(struct gzblock_reader *r, ssize_t *ret_n)
{
        ssize_t avail = fill(r, FOREIGN_WHOLE_IN);
        size_t cap, in_used = 0, out_used = 0;
        enum libdeflate_result res;
        int e;

        if (avail < 0)
                return (int) avail;
        /* FHCRC: libdeflate skips the header's CRC-16 where zlib checks it; zlib decides. */
        if (!r->eof || avail < 18 || (size_t) avail > FOREIGN_WHOLE_IN ||
            (r->in[r->in_start + 3] & GZIP_FHCRC))
                return 0;
        /* ISIZE of the file's last member: exact when the file is one member. */
        cap = get_le32(r->in + r->in_end - 4);
        if (cap < STREAM_CHUNK)
                cap = STREAM_CHUNK;
        if (!r->d) {
                r->d = libdeflate_alloc_decompressor();
                if (!r->d)
                        return -ENOMEM;
        }
        for (;; cap *= 2) {
                if (cap > FOREIGN_WHOLE_OUT)
                        return 0;
                e = grow(&r->out, &r->out_cap, cap);
                if (e < 0)
                        return e;
                res = libdeflate_gzip_decompress_ex(r->d, r->in + r->in_start, (size_t) avail,
                                                    r->out, cap, &in_used, &out_used);
                if (res == LIBDEFLATE_SUCCESS)
                        break;
                if (res != LIBDEFLATE_INSUFFICIENT_SPACE)
                        return 0;
        }
        r->in_start += in_used;
        *ret_n = (ssize_t) out_used;
        return 1;
}

static ssize_t read_next(struct gzblock_reader *r)
{
        for (;;) {
                ssize_t n = 0;
                if (r->in_stream) {
                        n = read_stream(r);
                } else {
                        struct header h;
                        size_t need = 0;
                        ssize_t avail = fill(r, 4);
                        if (avail < 0)
                                return avail;
                        if (avail == 0)
                                /* The end, between two members; a file with no member at
                                 * all is not gzip (gzip -t says so too). */
                                return r->file_off == 0 ? -EBADMSG : 0;
                        int e = parse_header(r->in + r->in_start, (size_t) avail, &need, &h);
                        while (e == -EAGAIN) {
                                avail = fill(r, need);
                                if (avail < 0)
                                        return avail;
                                if ((size_t) avail < need)
                                        return -EBADMSG;
                                e = parse_header(r->in + r->in_start, (size_t) avail, &need, &h);
                        }
                        if (e < 0)
                                return e;
                        if (h.blocked) {
                                n = read_blocked(r, &h);
                        } else {
                                e = read_foreign_whole(r, &n);
                                if (e < 0)
                                        return e;
                                if (e == 0)
                                        n = read_stream(r);
                        }
                }
                if (n != 0)
                        return n;
                /* An empty member, or the end of a zlib member: on to the next. */
        }
}

ssize_t gzblock_read(struct gzblock_reader *r, const void **ret_buf)
{
        ssize_t n;

        if (!r || !ret_buf)
                return -EINVAL;
        if (r->error < 0)
                return r->error;
        n = read_next(r);
        if (n < 0) {
                r->error = (int) n;
                return n;
        }
        *ret_buf = r->out;
        return n;
}

int gzblock_list(int fd, struct gzblock_member **ret, size_t *ret_n)
{
        _cleanup_free_ struct gzblock_member *m = NULL;
        _cleanup_free_ unsigned char *buf = NULL;
        size_t n = 0, cap = 0;
        uint64_t off = 0, size;
        struct stat st;

        if (fd < 0 || !ret || !ret_n)
                return -EINVAL;
        if (fstat(fd, &st) < 0)
                return -errno;
        size = (uint64_t) st.st_size;
        if (size == 0)
                return -EBADMSG;
        buf = malloc(12 + 65535);
        if (!buf)
                return -ENOMEM;
        while (off < size) {
                struct header h;
                size_t need = 12, got;
                ssize_t k = pread_full(fd, buf, need, off);
                if (k < 0)
                        return (int) k;
                got = (size_t) k;
                int e = parse_header(buf, got, &need, &h);
                if (e == -EAGAIN && got == 12) {
                        k = pread_full(fd, buf + 12, need - 12, off + 12);
                        if (k < 0)
                                return (int) k;
                        got += (size_t) k;
                        e = parse_header(buf, got, &need, &h);
                }
                if (e == -EAGAIN)
                        return -EBADMSG; /* the file ends inside a header */
                if (e < 0)
                        return e;
                if (!h.blocked)
                        return -ENOTSUP;
                if (h.size > size - off)
                        return -EBADMSG;
                if (n == cap) {
                        size_t c = cap ? cap * 2 : 64;
                        struct gzblock_member *t = reallocarray(m, c, sizeof(*m));
                        if (!t)
                                return -ENOMEM;
                        m = t;
                        cap = c;
                }
                m[n++] = (struct gzblock_member){.offset = off, .size = h.size, .usize = h.usize};
                off += h.size;
        }
        *ret = m;
        m = NULL;
        *ret_n = n;
        return 0;
}

struct gzblock_decoder {
        struct libdeflate_decompressor *d;
        unsigned char *in, *out;
        size_t in_cap, out_cap;
};

int gzblock_decoder_new(struct gzblock_decoder **ret)
{
        struct gzblock_decoder *d;

        if (!ret)
                return -EINVAL;
        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        d->d = libdeflate_alloc_decompressor();
        if (!d->d) {
                free(d);
                return -ENOMEM;
        }
        *ret = d;
        return 0;
}

void gzblock_decoder_free(struct gzblock_decoder *d)
{
        if (!d)
                return;
        libdeflate_free_decompressor(d->d);
        free(d->in);
        free(d->out);
        free(d);
}

ssize_t gzblock_decode(struct gzblock_decoder *d, int fd, const struct gzblock_member *m,
                       const void **ret_buf)
{
        struct header h;
        size_t need = 0;
        ssize_t k;
        int e;

        if (!d || fd < 0 || !m || !ret_buf || m->usize > GZBLOCK_USIZE_MAX ||
            m->size > gzblock_bound(m->usize) + 65535)
                return -EINVAL;
        e = grow(&d->in, &d->in_cap, m->size);
        if (e >= 0)
                e = grow(&d->out, &d->out_cap, m->usize > 0 ? m->usize : 1);
        if (e < 0)
                return e;
        k = pread_full(fd, d->in, m->size, m->offset);
        if (k < 0)
                return k;
        if ((size_t) k < m->size)
                return -EBADMSG;
        e = parse_header(d->in, m->size, &need, &h);
        if (e < 0)
                return -EBADMSG;
        if (!h.blocked || h.size != m->size || h.usize != m->usize)
                return -EBADMSG;
        e = decode_member(d->d, d->in, &h, d->out);
        if (e < 0)
                return e;
        *ret_buf = d->out;
        return m->usize;
}

/*
 * libFuzzer target for the .log.gz reader (gzblock.c): the input is a file, read whole with
 * gzblock_reader, listed with gzblock_list() and each member decoded with gzblock_decode().
 *
 * Invariants checked on every input (a violation aborts, which libFuzzer reports as a crash):
 *   - gzblock_read() returns > 0 with at most GZBLOCK_USIZE_MAX bytes, 0 at the end and then
 *     again 0, or -EBADMSG / -ENOMEM, and then the same error again;
 *   - when the reader reads the file to its end, zlib (one inflate per member, nothing left
 *     over) reads it too, to the same bytes, and the reader's offset is the file's size;
 *   - gzblock_list() returns 0, -ENOTSUP, -EBADMSG or -ENOMEM; on 0 the members tile the file
 *     from offset 0 to its end, and when every member decodes, their bytes are the reader's.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <zlib.h>

#include "gzblock.h"
#include "util.h"

#define CHECK(x)                                                                                   \
        do {                                                                                       \
                if (!(x)) {                                                                        \
                        fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #x);  \
                        abort();                                                                   \
                }                                                                                  \
        } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* zlib's reading: members one after the other, nothing after the last. Returns the bytes
 * (malloc'ed) or NULL when zlib refuses the file. */
static unsigned char *zlib_read(const uint8_t *data, size_t size, size_t *ret_len)
{
        unsigned char *out = NULL;
        size_t len = 0, off = 0;
        z_stream zs = {0};

        if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)
                abort();
        do {
                unsigned char buf[16384];
                int z;
                if (inflateReset(&zs) != Z_OK)
                        abort();
                zs.next_in = (unsigned char *) data + off;
                zs.avail_in = (uInt) (size - off);
                do {
                        zs.next_out = buf;
                        zs.avail_out = sizeof(buf);
                        z = inflate(&zs, Z_NO_FLUSH);
                        size_t n = sizeof(buf) - zs.avail_out;
                        if (n > 0) {
                                unsigned char *t = realloc(out, len + n);
                                CHECK(t);
                                out = t;
                                memcpy(out + len, buf, n);
                                len += n;
                        }
                } while (z == Z_OK);
                if (z != Z_STREAM_END) {
                        free(out);
                        inflateEnd(&zs);
                        return NULL;
                }
                off = size - zs.avail_in;
        } while (off < size);
        inflateEnd(&zs);
        *ret_len = len;
        return out ? out : malloc(1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct gzblock_reader *r = NULL;
        struct gzblock_member *m = NULL;
        unsigned char *all = NULL;
        size_t len = 0, n = 0;
        ssize_t k;
        int fd = memfd_create("fuzz", MFD_CLOEXEC);

        CHECK(fd >= 0);
        CHECK(write_all(fd, data, size) == 0);

        CHECK(gzblock_reader_new(fd, &r) == 0);
        for (;;) {
                const void *buf;
                k = gzblock_read(r, &buf);
                if (k <= 0)
                        break;
                CHECK((size_t) k <= GZBLOCK_USIZE_MAX);
                unsigned char *t = realloc(all, len + (size_t) k);
                CHECK(t);
                all = t;
                memcpy(all + len, buf, (size_t) k);
                len += (size_t) k;
        }
        CHECK(k == 0 || k == -EBADMSG || k == -ENOMEM);
        {
                const void *buf;
                CHECK(gzblock_read(r, &buf) == k);
        }
        if (k == 0) {
                size_t zlen = 0;
                unsigned char *z = zlib_read(data, size, &zlen);
                CHECK(z);
                CHECK(zlen == len && (len == 0 || memcmp(z, all, len) == 0));
                CHECK(gzblock_reader_offset(r) == size);
                free(z);
        }
        gzblock_reader_free(r);

        int e = gzblock_list(fd, &m, &n);
        CHECK(e == 0 || e == -ENOTSUP || e == -EBADMSG || e == -ENOMEM);
        if (e == 0) {
                struct gzblock_decoder *d = NULL;
                uint64_t off = 0, total = 0;
                bool all_ok = true;
                CHECK(n > 0);
                CHECK(gzblock_decoder_new(&d) == 0);
                for (size_t i = 0; i < n; i++) {
                        const void *buf;
                        CHECK(m[i].offset == off);
                        off += m[i].size;
                        k = gzblock_decode(d, fd, &m[i], &buf);
                        CHECK(k == (ssize_t) m[i].usize || k == -EBADMSG || k == -ENOMEM);
                        if (k < 0) {
                                all_ok = false;
                                continue;
                        }
                        if (all_ok && total + m[i].usize <= len)
                                CHECK(m[i].usize == 0 || memcmp(all + total, buf, m[i].usize) == 0);
                        total += m[i].usize;
                }
                CHECK(off == size);
                if (all_ok)
                        CHECK(total == len);
                gzblock_decoder_free(d);
                free(m);
        }
        free(all);
        close(fd);
        return 0;
}

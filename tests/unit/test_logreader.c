#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <zlib.h>

#include <libdeflate.h>

#include "gzblock.h"
#include "logreader.h"

struct fixture {
        char dir[64];
        int dfd;
};

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));

        strcpy(f->dir, "/tmp/test_logreader.XXXXXX");
        if (!mkdtemp(f->dir))
                return -1;
        f->dfd = open(f->dir, O_RDONLY | O_DIRECTORY);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        char cmd[128];

        close(f->dfd);
        snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
        if (system(cmd) != 0)
                return -1;
        free(f);
        return 0;
}

/* gzip of data as one member, appended to *buf. */
static void gzip_member(const char *data, size_t len, unsigned char **buf, size_t *blen)
{
        z_stream zs = {0};
        size_t cap = compressBound((uLong) len) + 64;

        *buf = realloc(*buf, *blen + cap);
        assert_int_equal(deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY),
                         Z_OK);
        zs.next_in = (unsigned char *) data;
        zs.avail_in = (uInt) len;
        zs.next_out = *buf + *blen;
        zs.avail_out = (uInt) cap;
        assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
        *blen += zs.total_out;
        deflateEnd(&zs);
}

static void put_file(struct fixture *f, const char *name, const void *data, size_t len)
{
        int fd = openat(f->dfd, name, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, data, len), (ssize_t) len);
        close(fd);
}

/* Reads name back whole with threads; returns the error (0) and the bytes in *ret. */
static int read_back(struct fixture *f, const char *name, unsigned threads, char **ret,
                     size_t *ret_len)
{
        struct log_reader *r = NULL;
        size_t cap = 1 << 20, len = 0;
        char *out = malloc(cap);
        int k;

        k = log_reader_open(f->dfd, name, threads, &r);
        if (k < 0) {
                free(out);
                *ret = NULL;
                *ret_len = 0;
                return k;
        }
        for (;;) {
                const char *data;
                ssize_t n = log_reader_next(r, &data);
                if (n < 0) {
                        k = (int) n;
                        assert_int_equal(log_reader_next(r, &data), n); /* it stays */
                        break;
                }
                if (n == 0)
                        break;
                while (cap - len < (size_t) n)
                        out = realloc(out, cap *= 2);
                memcpy(out + len, data, (size_t) n);
                len += (size_t) n;
        }
        log_reader_free(r);
        *ret = out;
        *ret_len = len;
        return k;
}

static char *make_text(size_t len)
{
        char *t = malloc(len);
        uint32_t x = 12345;

        for (size_t i = 0; i < len; i++) {
                x = x * 1103515245 + 12345;
                t[i] = (i % 80 == 79) ? '\n' : (char) ('a' + (x >> 16) % 26);
        }
        return t;
}

static void test_one_and_many_members(void **state)
{
        struct fixture *f = *state;
        char *text = make_text(300000), *out;
        unsigned char *gz = NULL;
        size_t gzlen = 0, len;

        /* One member (an archive from before blocks), with one thread or several. */
        gzip_member(text, 300000, &gz, &gzlen);
        put_file(f, "one.log.gz", gz, gzlen);
        assert_int_equal(read_back(f, "one.log.gz", 1, &out, &len), 0);
        assert_int_equal(len, 300000);
        assert_memory_equal(out, text, len);
        free(out);
        assert_int_equal(read_back(f, "one.log.gz", 4, &out, &len), 0);
        assert_int_equal(len, 300000);
        free(out);
        /* Three members, as `cat a.gz b.gz c.gz` or a BGZF-like writer makes. */
        gzlen = 0;
        gzip_member(text, 100000, &gz, &gzlen);
        gzip_member(text + 100000, 100000, &gz, &gzlen);
        gzip_member(text + 200000, 100000, &gz, &gzlen);
        put_file(f, "three.log.gz", gz, gzlen);
        assert_int_equal(read_back(f, "three.log.gz", 2, &out, &len), 0);
        assert_int_equal(len, 300000);
        assert_memory_equal(out, text, len);
        free(out);
        free(gz);
        free(text);
}

/* Large members of another tool: streamed through zlib, threads or not. */
static void test_large_streamed(void **state)
{
        struct fixture *f = *state;
        size_t n = 12 * 1024 * 1024, len;
        char *text = make_text(n), *out;
        unsigned char *gz = NULL;
        size_t gzlen = 0;

        gzip_member(text, n / 2, &gz, &gzlen);
        gzip_member(text + n / 2, n - n / 2, &gz, &gzlen);
        assert_true(gzlen > 1024 * 1024);
        put_file(f, "big.log.gz", gz, gzlen);
        assert_int_equal(read_back(f, "big.log.gz", 4, &out, &len), 0);
        assert_int_equal(len, n);
        assert_memory_equal(out, text, n);
        free(out);
        /* Truncated in the second member: what came before is still delivered. */
        put_file(f, "bigcut.log.gz", gz, gzlen - 1000);
        assert_int_equal(read_back(f, "bigcut.log.gz", 1, &out, &len), -EBADMSG);
        assert_true(len >= n / 2);
        assert_memory_equal(out, text, n / 2);
        free(out);
        free(gz);
        free(text);
}

static void test_damaged(void **state)
{
        struct fixture *f = *state;
        const char *text = "line one\nline two\n";
        unsigned char *gz = NULL;
        size_t gzlen = 0, len;
        char *out;

        gzip_member(text, strlen(text), &gz, &gzlen);
        put_file(f, "cut.log.gz", gz, gzlen - 5);
        assert_int_equal(read_back(f, "cut.log.gz", 1, &out, &len), -EBADMSG);
        free(out);
        put_file(f, "empty.log.gz", "", 0);
        assert_int_equal(read_back(f, "empty.log.gz", 1, &out, &len), -EBADMSG);
        free(out);
        put_file(f, "plain.log.gz", text, strlen(text));
        assert_int_equal(read_back(f, "plain.log.gz", 1, &out, &len), -EBADMSG);
        free(out);
        gz[gzlen - 6] ^= 0x55; /* the CRC */
        put_file(f, "crc.log.gz", gz, gzlen);
        assert_int_equal(read_back(f, "crc.log.gz", 1, &out, &len), -EBADMSG);
        free(out);
        gz[gzlen - 6] ^= 0x55;
        gz = realloc(gz, gzlen + 4);
        memcpy(gz + gzlen, "junk", 4);
        put_file(f, "trail.log.gz", gz, gzlen + 4);
        assert_int_equal(read_back(f, "trail.log.gz", 1, &out, &len), -EBADMSG);
        free(out);
        /* A header CRC (FHCRC) that is wrong: zlib refuses it, and so does the reader, even
         * for a small file that libdeflate (which skips that CRC) would otherwise decode. */
        {
                static const unsigned char fhcrc[] = {
                        0x1f, 0x8b, 8,    0x02, 0,    0, 0,    0,    0,    3,    0, 0, 0xcb, 0x48,
                        0xcd, 0xc9, 0xc9, 0xe7, 0x02, 0, 0x20, 0x30, 0x3a, 0x36, 6, 0, 0,    0};
                put_file(f, "fhcrc.log.gz", fhcrc, sizeof(fhcrc));
                assert_int_equal(read_back(f, "fhcrc.log.gz", 1, &out, &len), -EBADMSG);
                free(out);
        }
        assert_int_equal(read_back(f, "missing.log.gz", 1, &out, &len), -ENOENT);
        assert_string_equal(log_reader_strerror(-EBADMSG), "corrupt or truncated gzip data");
        free(gz);
}

/* The archiver's blocked file: whole members with libdeflate, in order on 1 thread or 4. */
static void test_blocked_parallel(void **state)
{
        struct fixture *f = *state;
        size_t n = 12 * 1024 * 1024 + 12345, gzlen = 0, len;
        char *text = make_text(n), *out;
        struct libdeflate_compressor *c = libdeflate_alloc_compressor(1);
        unsigned char *gz = malloc(gzblock_bound(GZBLOCK_SIZE) * (n / GZBLOCK_SIZE + 1));
        size_t off_middle = 0;

        for (size_t o = 0; o < n; o += GZBLOCK_SIZE) {
                size_t k = n - o < GZBLOCK_SIZE ? n - o : GZBLOCK_SIZE;
                ssize_t m = gzblock_compress(c, text + o, k, gz + gzlen, gzblock_bound(k));
                assert_true(m > 0);
                if (o == 20 * GZBLOCK_SIZE)
                        off_middle = gzlen;
                gzlen += (size_t) m;
        }
        put_file(f, "blocked.log.gz", gz, gzlen);
        for (unsigned t = 1; t <= 16; t *= 4) {
                assert_int_equal(read_back(f, "blocked.log.gz", t, &out, &len), 0);
                assert_int_equal(len, n);
                assert_memory_equal(out, text, n);
                free(out);
        }
        /* A member damaged in the middle: the 20 before it come, then the error, on any
         * number of threads; the reader stops its threads early when freed. */
        gz[off_middle + 100] ^= 0xff;
        put_file(f, "blocked-bad.log.gz", gz, gzlen);
        for (unsigned t = 1; t <= 16; t *= 4) {
                assert_int_equal(read_back(f, "blocked-bad.log.gz", t, &out, &len), -EBADMSG);
                assert_int_equal(len, 20 * GZBLOCK_SIZE);
                free(out);
        }
        {
                struct log_reader *r = NULL;
                const char *data;
                assert_int_equal(log_reader_open(f->dfd, "blocked.log.gz", 4, &r), 0);
                assert_true(log_reader_next(r, &data) > 0);
                log_reader_free(r);
        }
        libdeflate_free_compressor(c);
        free(gz);
        free(text);
}

static void test_symlink_refused(void **state)
{
        struct fixture *f = *state;
        char *out;
        size_t len;

        assert_int_equal(symlinkat("/etc/passwd", f->dfd, "link.log.gz"), 0);
        assert_int_equal(read_back(f, "link.log.gz", 1, &out, &len), -ELOOP);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_one_and_many_members, setup, teardown),
                cmocka_unit_test_setup_teardown(test_large_streamed, setup, teardown),
                cmocka_unit_test_setup_teardown(test_damaged, setup, teardown),
                cmocka_unit_test_setup_teardown(test_blocked_parallel, setup, teardown),
                cmocka_unit_test_setup_teardown(test_symlink_refused, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

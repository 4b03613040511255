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

/* Reads name back whole; returns the error (0) and the bytes in *ret. */
static int read_back(struct fixture *f, const char *name, int64_t hint, char **ret, size_t *ret_len)
{
        struct log_reader_cache *c = NULL;
        struct log_reader *r = NULL;
        size_t cap = 1 << 20, len = 0;
        char *out = malloc(cap);
        const char *whole;
        size_t wlen;
        int k;

        assert_int_equal(log_reader_cache_new(&c), 0);
        k = log_reader_open(f->dfd, name, hint, c, &r);
        if (k < 0) {
                log_reader_cache_free(c);
                free(out);
                return k;
        }
        if (log_reader_whole(r, &whole, &wlen)) {
                out = realloc(out, wlen + 1);
                memcpy(out, whole, wlen);
                len = wlen;
        } else
                for (;;) {
                        ssize_t n;
                        if (cap - len < 65536)
                                out = realloc(out, cap *= 2);
                        n = log_reader_read(r, out + len, cap - len);
                        if (n < 0) {
                                k = (int) n;
                                break;
                        }
                        if (n == 0)
                                break;
                        len += (size_t) n;
                }
        log_reader_free(r);
        log_reader_cache_free(c);
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

        /* One member, read whole (small) with and without the size hint. */
        gzip_member(text, 300000, &gz, &gzlen);
        put_file(f, "one.log.gz", gz, gzlen);
        assert_int_equal(read_back(f, "one.log.gz", 300000, &out, &len), 0);
        assert_int_equal(len, 300000);
        assert_memory_equal(out, text, len);
        free(out);
        assert_int_equal(read_back(f, "one.log.gz", -1, &out, &len), 0);
        assert_int_equal(len, 300000);
        free(out);
        /* Three members, as `cat a.gz b.gz c.gz` or a BGZF-like writer makes. */
        gzlen = 0;
        gzip_member(text, 100000, &gz, &gzlen);
        gzip_member(text + 100000, 100000, &gz, &gzlen);
        gzip_member(text + 200000, 100000, &gz, &gzlen);
        put_file(f, "three.log.gz", gz, gzlen);
        assert_int_equal(read_back(f, "three.log.gz", -1, &out, &len), 0);
        assert_int_equal(len, 300000);
        assert_memory_equal(out, text, len);
        free(out);
        free(gz);
        free(text);
}

/* Past the whole-buffer limits the file is streamed; several members too. */
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
        assert_int_equal(read_back(f, "big.log.gz", (int64_t) n, &out, &len), 0);
        assert_int_equal(len, n);
        assert_memory_equal(out, text, n);
        free(out);
        /* Truncated in the second member: what came before is still delivered. */
        put_file(f, "bigcut.log.gz", gz, gzlen - 1000);
        assert_int_equal(read_back(f, "bigcut.log.gz", (int64_t) n, &out, &len), -EPIPE);
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
        assert_int_equal(read_back(f, "cut.log.gz", -1, &out, &len), -EPIPE);
        free(out);
        put_file(f, "empty.log.gz", "", 0);
        assert_int_equal(read_back(f, "empty.log.gz", -1, &out, &len), -EPIPE);
        free(out);
        put_file(f, "plain.log.gz", text, strlen(text));
        assert_int_equal(read_back(f, "plain.log.gz", -1, &out, &len), -EBADMSG);
        free(out);
        gz[gzlen - 6] ^= 0x55; /* the CRC */
        put_file(f, "crc.log.gz", gz, gzlen);
        assert_int_equal(read_back(f, "crc.log.gz", -1, &out, &len), -EBADMSG);
        free(out);
        gz[gzlen - 6] ^= 0x55;
        gz = realloc(gz, gzlen + 4);
        memcpy(gz + gzlen, "junk", 4);
        put_file(f, "trail.log.gz", gz, gzlen + 4);
        assert_int_equal(read_back(f, "trail.log.gz", -1, &out, &len), -EBADMSG);
        free(out);
        assert_int_equal(read_back(f, "missing.log.gz", -1, &out, &len), -ENOENT);
        assert_string_equal(log_reader_strerror(-EPIPE), "truncated gzip file");
        assert_string_equal(log_reader_strerror(-EBADMSG), "corrupt gzip data");
        free(gz);
}

static void test_symlink_refused(void **state)
{
        struct fixture *f = *state;
        char *out;
        size_t len;

        assert_int_equal(symlinkat("/etc/passwd", f->dfd, "link.log.gz"), 0);
        assert_int_equal(read_back(f, "link.log.gz", -1, &out, &len), -ELOOP);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_one_and_many_members, setup, teardown),
                cmocka_unit_test_setup_teardown(test_large_streamed, setup, teardown),
                cmocka_unit_test_setup_teardown(test_damaged, setup, teardown),
                cmocka_unit_test_setup_teardown(test_symlink_refused, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

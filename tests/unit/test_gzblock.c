#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <libdeflate.h>
#include <openssl/evp.h>
#include <zlib.h>

#include "gzblock.h"
#include "testutil.h"
#include "gzpool.h"
#include "macro.h"
#include "util.h"

/*
 * The member format and its reader: what the pool writes is read back whole by our reader,
 * member by member, by zlib (gzread), by Python's gzip module and by gzip -t; the reader
 * takes legacy single-member files, members of other tools, and refuses anything broken
 * with -EBADMSG. The large case is 16 MiB here (64 members); the 1 GB log is the bench's.
 */

#define BIG_LEN (16u << 20)

struct fixture {
        char dir[256];
        char path[512];
};

static int setup(void **state)
{
        const char *tmp = getenv("TMPDIR");
        struct fixture *fx = calloc(1, sizeof(*fx));

        assert_non_null(fx);
        (void) snprintf(fx->dir, sizeof(fx->dir), "%s/test_gzblock.XXXXXX", tmp ? tmp : "/tmp");
        assert_non_null(mkdtemp(fx->dir));
        (void) snprintf(fx->path, sizeof(fx->path), "%s/f.log.gz", fx->dir);
        *state = fx;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *fx = *state;

        (void) unlink(fx->path);
        (void) rmdir(fx->dir);
        free(fx);
        return 0;
}

/* Log-like text: compressible, but not a repeated pattern. */
static unsigned char *make_log(size_t len, unsigned seed)
{
        static const char *words[] = {"INFO",    "listening", "on",      "port",  "GET",
                                      "/api/v1", "200",       "Warning", "in",    "library",
                                      "Error:",  "shiny",     "session", "ended", "\n"};
        unsigned char *d = malloc(len + 1);
        size_t i = 0;

        assert_non_null(d);
        srand(seed);
        while (i < len) {
                char w[64];
                int n = snprintf(w, sizeof(w), "%s %d ", words[rand() % 15], rand() % 1000);
                for (int k = 0; k < n && i < len; k++)
                        d[i++] = (unsigned char) w[k];
        }
        return d;
}

/* Writes data through a pool: in pieces of ever-changing sizes up to 16 KiB, or (whole) in
 * one call. */
static struct gzjob_result write_pool_as(const char *path, const unsigned char *data, size_t len,
                                         int level, int threads, bool whole)
{
        struct gzpool *p;
        struct gzjob *j;
        struct gz_done s = {0};
        size_t off = 0, step = whole ? len : 1;
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

        assert_true(fd >= 0);
        assert_int_equal(gzpool_new(level, threads, &p), 0);
        assert_int_equal(gzjob_new(p, fd, &j), 0);
        while (off < len) {
                size_t n = len - off < step ? len - off : step;
                assert_int_equal(gzjob_write(j, data + off, n), 0);
                off += n;
                step = step * 3 % 16411 + 1;
        }
        assert_int_equal(gzjob_finish(j, gz_done_record, &s), 0);
        while (gzpool_pending(p) > 0)
                (void) gzpool_wait(p);
        gzpool_free(p);
        assert_int_equal(s.calls, 1);
        assert_int_equal(s.r, 0);
        assert_int_equal(s.res.bytes_in, len);
        return s.res;
}

static struct gzjob_result write_pool(const char *path, const unsigned char *data, size_t len,
                                      int level, int threads)
{
        return write_pool_as(path, data, len, level, threads, false);
}

static void write_bytes(const char *path, const void *data, size_t len)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

        assert_true(fd >= 0);
        assert_int_equal(write_all(fd, data, len), 0);
        assert_int_equal(close(fd), 0);
}

static unsigned char *read_file(const char *path, size_t *ret_len)
{
        struct stat st;
        unsigned char *d;
        int fd = open(path, O_RDONLY | O_CLOEXEC);

        assert_true(fd >= 0);
        assert_int_equal(fstat(fd, &st), 0);
        d = malloc((size_t) st.st_size + 1);
        assert_non_null(d);
        assert_int_equal(read(fd, d, (size_t) st.st_size), st.st_size);
        close(fd);
        *ret_len = (size_t) st.st_size;
        return d;
}

static void assert_reads_back(const char *path, const unsigned char *data, size_t len)
{
        unsigned char *back = NULL;
        size_t back_len = 0;

        assert_int_equal(testutil_read_gz(path, &back, &back_len), 0);
        assert_int_equal(back_len, len);
        if (len > 0)
                assert_memory_equal(back, data, len);
        free(back);
}

/* zlib's own reader (which handles concatenated members). */
static void assert_zlib_reads_back(const char *path, const unsigned char *data, size_t len)
{
        gzFile g = gzopen(path, "rb");
        unsigned char *buf = malloc(len + 1);
        size_t got = 0;
        int n;

        assert_non_null(g);
        assert_non_null(buf);
        while ((n = gzread(g, buf + got, (unsigned) (len + 1 - got))) > 0)
                got += (size_t) n;
        assert_int_equal(n, 0);
        assert_int_equal(gzclose(g), Z_OK);
        assert_int_equal(got, len);
        if (len > 0)
                assert_memory_equal(buf, data, len);
        free(buf);
}

static void sha256_hex(const void *data, size_t len, char *hex)
{
        unsigned char md[32];
        unsigned md_len = 0;

        assert_int_equal(EVP_Digest(data, len, md, &md_len, EVP_sha256(), NULL), 1);
        hex_encode(md, 32, hex);
}

/* gzip -t and Python's gzip module, when they are there (they are on Debian 12). */
static void assert_tools_read_back(const char *path, const char *sha256)
{
        char cmd[1024];

        if (system("gzip --version >/dev/null 2>&1") != 0) {
                print_message("skipped: gzip -t (no gzip)\n");
        } else {
                (void) snprintf(cmd, sizeof(cmd), "gzip -t '%s'", path);
                assert_int_equal(system(cmd), 0);
        }
        if (system("python3 -c '' >/dev/null 2>&1") != 0) {
                print_message("skipped: Python's gzip (no python3)\n");
                return;
        }
        (void) snprintf(cmd, sizeof(cmd),
                        "python3 -c 'import gzip, hashlib, sys, zlib\n"
                        "d = gzip.open(sys.argv[1]).read()\n"
                        "raw = open(sys.argv[1], \"rb\").read()\n"
                        "z = b\"\"\n"
                        "while raw:\n"
                        "    o = zlib.decompressobj(31)\n"
                        "    z += o.decompress(raw)\n"
                        "    assert o.eof\n"
                        "    raw = o.unused_data\n"
                        "assert z == d\n"
                        "sys.exit(hashlib.sha256(d).hexdigest() != sys.argv[2])' '%s' %s",
                        path, sha256);
        assert_int_equal(system(cmd), 0);
}

/* The members of path: their count, and each but the last holds GZBLOCK_SIZE bytes. */
static void assert_members(const char *path, size_t len)
{
        _cleanup_(gzblock_decoder_freep) struct gzblock_decoder *d = NULL;
        struct gzblock_member *m = NULL;
        size_t n = 0, expect = len == 0 ? 1 : (len + GZBLOCK_SIZE - 1) / GZBLOCK_SIZE;
        uint64_t off = 0, total = 0;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        struct stat st;

        assert_true(fd >= 0);
        assert_int_equal(gzblock_list(fd, &m, &n), 0);
        assert_int_equal(n, expect);
        assert_int_equal(gzblock_decoder_new(&d), 0);
        for (size_t i = 0; i < n; i++) {
                const void *buf;
                assert_int_equal(m[i].offset, off);
                if (i + 1 < n)
                        assert_int_equal(m[i].usize, GZBLOCK_SIZE);
                else
                        assert_int_equal(m[i].usize, len - (n - 1) * (size_t) GZBLOCK_SIZE);
                assert_int_equal(gzblock_decode(d, fd, &m[i], &buf), m[i].usize);
                off += m[i].size;
                total += m[i].usize;
        }
        assert_int_equal(fstat(fd, &st), 0);
        assert_int_equal(off, st.st_size);
        assert_int_equal(total, len);
        free(m);
        close(fd);
}

static void check_written(struct fixture *fx, size_t len, int threads, bool whole)
{
        unsigned char *data = make_log(len, (unsigned) len);
        char sha[65];
        struct gzjob_result res = write_pool_as(fx->path, data, len, 6, threads, whole);
        struct stat st;

        sha256_hex(data, len, sha);
        assert_string_equal(res.sha256, sha);
        assert_int_equal(stat(fx->path, &st), 0);
        assert_int_equal(res.bytes_out, st.st_size);
        assert_members(fx->path, len);
        assert_reads_back(fx->path, data, len);
        assert_zlib_reads_back(fx->path, data, len);
        assert_tools_read_back(fx->path, sha);
        free(data);
}

static void check_boundary(struct fixture *fx, size_t len, int threads)
{
        check_written(fx, len, threads, false);
}

static void test_empty_log_is_one_empty_member(void **state)
{
        check_boundary(*state, 0, 2);
}

static void test_one_byte(void **state)
{
        check_boundary(*state, 1, 0);
}

static void test_exactly_one_block(void **state)
{
        check_boundary(*state, GZBLOCK_SIZE, 2);
        check_boundary(*state, GZBLOCK_SIZE, 0);
}

static void test_one_byte_over_one_block(void **state)
{
        check_boundary(*state, GZBLOCK_SIZE + 1, 2);
        check_boundary(*state, GZBLOCK_SIZE + 1, 0);
}

/* A log's first block starts at 16 KiB and doubles as it fills (gzpool.c): each size it
 * passes through, a byte short, exact and a byte over, with and without threads. */
static void test_first_block_grows(void **state)
{
        for (size_t cap = GZBLOCK_SIZE >> 4; cap < GZBLOCK_SIZE; cap *= 2)
                for (size_t len = cap - 1; len <= cap + 1; len++)
                        check_boundary(*state, len, len % 2 ? 2 : 0);
}

/* One write that spans the first block's growth and several blocks, with and without threads. */
static void test_one_write_many_blocks(void **state)
{
        const size_t lens[] = {20000, 200000, GZBLOCK_SIZE, 3 * GZBLOCK_SIZE + 999};

        for (size_t i = 0; i < ELEMENTSOF(lens); i++) {
                check_written(*state, lens[i], 0, true);
                check_written(*state, lens[i], 2, true);
        }
}

static void test_exactly_three_blocks(void **state)
{
        check_boundary(*state, 3 * GZBLOCK_SIZE, 3);
}

static void test_large_log_16mb(void **state)
{
        check_boundary(*state, BIG_LEN, 2);
}

/* Same bytes in, same file out, whatever the threads did. */
static void test_output_is_deterministic(void **state)
{
        struct fixture *fx = *state;
        size_t len = 5 * GZBLOCK_SIZE + 123, a_len, b_len;
        unsigned char *data = make_log(len, 5), *a, *b;

        (void) write_pool(fx->path, data, len, 6, 0);
        a = read_file(fx->path, &a_len);
        (void) write_pool(fx->path, data, len, 6, 4);
        b = read_file(fx->path, &b_len);
        assert_int_equal(a_len, b_len);
        assert_memory_equal(a, b, a_len);
        /* The header of gzblock.h, byte for byte. */
        assert_memory_equal(a, "\x1f\x8b\x08\x04\0\0\0\0\0\x03\x0c\0CJ\x08\0", 16);
        free(a);
        free(b);
        free(data);
}

/* A legacy archive: one zlib stream, as the archiver wrote before blocks. */
static void write_zlib(const char *path, const unsigned char *data, size_t len, bool append)
{
        z_stream zs = {0};
        size_t cap = deflateBound(&zs, (uLong) len) + 64;
        unsigned char *out = malloc(cap);
        int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC), 0600);

        assert_true(fd >= 0);
        assert_non_null(out);
        assert_int_equal(deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
        cap = deflateBound(&zs, (uLong) len);
        free(out);
        out = malloc(cap);
        zs.next_in = (unsigned char *) data;
        zs.avail_in = (uInt) len;
        zs.next_out = out;
        zs.avail_out = (uInt) cap;
        assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
        assert_int_equal(write_all(fd, out, cap - zs.avail_out), 0);
        assert_int_equal(deflateEnd(&zs), Z_OK);
        close(fd);
        free(out);
}

static void test_reads_legacy_single_member(void **state)
{
        struct fixture *fx = *state;
        size_t len = 3 * GZBLOCK_SIZE + 77;
        unsigned char *data = make_log(len, 11);
        struct gzblock_member *m = NULL;
        size_t n = 0;
        int fd;

        write_zlib(fx->path, data, len, false);
        assert_reads_back(fx->path, data, len);
        fd = open(fx->path, O_RDONLY | O_CLOEXEC);
        assert_int_equal(gzblock_list(fd, &m, &n), -ENOTSUP);
        close(fd);
        free(data);
}

/* cat a.gz b.gz c.gz: zlib, ours, zlib with an empty member, then a foreign FEXTRA member. */
static void test_reads_concatenated_members_of_any_kind(void **state)
{
        struct fixture *fx = *state;
        char other[600];
        size_t la = 100000, lb = 2 * GZBLOCK_SIZE + 9, lc = 5000, len = la + lb + lc;
        unsigned char *data = make_log(len, 3), *b;
        size_t b_len;

        write_zlib(fx->path, data, la, false);
        (void) snprintf(other, sizeof(other), "%s.b", fx->path);
        (void) write_pool(other, data + la, lb, 1, 2);
        b = read_file(other, &b_len);
        int fd = open(fx->path, O_WRONLY | O_APPEND | O_CLOEXEC);
        assert_int_equal(write_all(fd, b, b_len), 0);
        close(fd);
        write_zlib(fx->path, data, 0, true);

        /* A member with an extra field that is not ours (zlib's gzip header API). */
        gz_header h = {0};
        unsigned char extra[] = {'X', 'Y', 2, 0, 'h', 'i'};
        z_stream zs = {0};
        unsigned char out[8192];
        h.extra = extra;
        h.extra_len = sizeof(extra);
        h.os = 3;
        assert_int_equal(deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
        assert_int_equal(deflateSetHeader(&zs, &h), Z_OK);
        zs.next_in = data + la + lb;
        zs.avail_in = (uInt) lc;
        zs.next_out = out;
        zs.avail_out = sizeof(out);
        assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
        fd = open(fx->path, O_WRONLY | O_APPEND | O_CLOEXEC);
        assert_int_equal(write_all(fd, out, sizeof(out) - zs.avail_out), 0);
        close(fd);
        deflateEnd(&zs);

        assert_reads_back(fx->path, data, len);
        assert_zlib_reads_back(fx->path, data, len);
        (void) unlink(other);
        free(b);
        free(data);
}

/* Every cut of a file of ours, and of a legacy one, is refused: none reads as complete. */
static void test_truncated_is_ebadmsg(void **state)
{
        struct fixture *fx = *state;
        size_t len = 2 * GZBLOCK_SIZE + 1000, f_len, cuts = 0;
        unsigned char *data = make_log(len, 9), *f, *back;
        size_t back_len;

        for (int legacy = 0; legacy < 2; legacy++) {
                if (legacy)
                        write_zlib(fx->path, data, len, false);
                else
                        (void) write_pool(fx->path, data, len, 6, 2);
                f = read_file(fx->path, &f_len);
                /* Every byte of the first and last 40, and steps through the middle. */
                for (size_t cut = 0; cut < f_len; cut += (cut < 40 || cut > f_len - 40) ? 1 : 997) {
                        write_bytes(fx->path, f, cut);
                        assert_int_equal(testutil_read_gz(fx->path, &back, &back_len), -EBADMSG);
                        cuts++;
                }
                free(f);
        }
        assert_true(cuts > 200);
        free(data);
}

/* Flips one byte: of the trailer's CRC, of the data, of our subfield's sizes. */
static void check_corrupt(struct fixture *fx, bool legacy, size_t at_from_end, size_t at)
{
        size_t len = GZBLOCK_SIZE + 500, f_len, back_len;
        unsigned char *data = make_log(len, 21), *f, *back = NULL;

        if (legacy)
                write_zlib(fx->path, data, len, false);
        else
                (void) write_pool(fx->path, data, len, 6, 2);
        f = read_file(fx->path, &f_len);
        size_t pos = at_from_end ? f_len - at_from_end : at;
        f[pos] ^= 0x40;
        write_bytes(fx->path, f, f_len);
        assert_int_equal(testutil_read_gz(fx->path, &back, &back_len), -EBADMSG);
        free(back);
        free(f);
        free(data);
}

static void test_corrupt_is_ebadmsg(void **state)
{
        check_corrupt(*state, false, 8, 0);  /* the last member's CRC */
        check_corrupt(*state, false, 2, 0);  /* its ISIZE */
        check_corrupt(*state, false, 0, 16); /* the first MSIZE */
        check_corrupt(*state, false, 0, 21); /* the first USIZE */
        check_corrupt(*state, false, 0, 5000);
        check_corrupt(*state, true, 8, 0);
        check_corrupt(*state, true, 0, 5000);
}

static void test_garbage_empty_and_trailing_junk_are_ebadmsg(void **state)
{
        struct fixture *fx = *state;
        unsigned char *back = NULL, *f;
        size_t back_len, f_len;
        struct gzblock_member *m = NULL;
        size_t n;
        int fd;

        write_bytes(fx->path, "", 0);
        assert_int_equal(testutil_read_gz(fx->path, &back, &back_len), -EBADMSG);
        fd = open(fx->path, O_RDONLY | O_CLOEXEC);
        assert_int_equal(gzblock_list(fd, &m, &n), -EBADMSG);
        close(fd);

        write_bytes(fx->path, "not gzip at all\n", 16);
        assert_int_equal(testutil_read_gz(fx->path, &back, &back_len), -EBADMSG);

        unsigned char *data = make_log(1000, 1);
        (void) write_pool(fx->path, data, 1000, 6, 0);
        f = read_file(fx->path, &f_len);
        f = realloc(f, f_len + 4);
        memcpy(f + f_len, "\0\0\0\0", 4);
        write_bytes(fx->path, f, f_len + 4);
        assert_int_equal(testutil_read_gz(fx->path, &back, &back_len), -EBADMSG);
        fd = open(fx->path, O_RDONLY | O_CLOEXEC);
        assert_int_equal(gzblock_list(fd, &m, &n), -EBADMSG);
        close(fd);
        free(f);
        free(data);
}

/* A member whose header lies about its size is refused by gzblock_decode() too. */
static void test_decode_checks_the_member(void **state)
{
        struct fixture *fx = *state;
        _cleanup_(gzblock_decoder_freep) struct gzblock_decoder *d = NULL;
        struct gzblock_member *m = NULL;
        size_t len = 2 * GZBLOCK_SIZE, n = 0, f_len;
        unsigned char *data = make_log(len, 4), *f;
        const void *buf;
        int fd;

        (void) write_pool(fx->path, data, len, 6, 2);
        f = read_file(fx->path, &f_len);
        fd = open(fx->path, O_RDONLY | O_CLOEXEC);
        assert_int_equal(gzblock_list(fd, &m, &n), 0);
        close(fd);
        assert_int_equal(n, 2);
        f[m[1].offset + 100] ^= 1; /* in the second member's data */
        write_bytes(fx->path, f, f_len);
        fd = open(fx->path, O_RDONLY | O_CLOEXEC);
        assert_int_equal(gzblock_decoder_new(&d), 0);
        assert_int_equal(gzblock_decode(d, fd, &m[0], &buf), GZBLOCK_SIZE);
        assert_memory_equal(buf, data, GZBLOCK_SIZE);
        assert_int_equal(gzblock_decode(d, fd, &m[1], &buf), -EBADMSG);
        struct gzblock_member lie = m[0];
        lie.usize--;
        assert_int_equal(gzblock_decode(d, fd, &lie, &buf), -EBADMSG);
        close(fd);
        free(m);
        free(f);
        free(data);
}

/* libdeflate at the mapped level in members against zlib at the level asked for in one
 * stream: at most 2 % larger on this synthetic text (on the bench's logs, smaller at every
 * level: bench/README.md). */
static void test_level_mapping(void **state)
{
        size_t len = 4 << 20;
        unsigned char *data = make_log(len, 8);
        size_t cap = gzblock_bound(GZBLOCK_SIZE);
        unsigned char *out = malloc(cap), *zout = malloc(compressBound((uLong) len));

        (void) state;
        assert_int_equal(gzblock_level(0), gzblock_level(1));
        assert_int_equal(gzblock_level(6), 5);
        assert_int_equal(gzblock_level(42), gzblock_level(9));
        for (int level = 1; level <= 9; level += 4) {
                struct libdeflate_compressor *c = libdeflate_alloc_compressor(gzblock_level(level));
                size_t ours = 0;
                uLongf zlen = compressBound((uLong) len);
                assert_non_null(c);
                for (size_t off = 0; off < len; off += GZBLOCK_SIZE) {
                        ssize_t n = gzblock_compress(c, data + off, GZBLOCK_SIZE, out, cap);
                        assert_true(n > 0);
                        ours += (size_t) n;
                }
                assert_int_equal(compress2(zout, &zlen, data, (uLong) len, level), Z_OK);
                print_message(
                        "level %d: libdeflate %d in %u KiB members %zu bytes, zlib one stream "
                        "%lu bytes\n",
                        level, gzblock_level(level), GZBLOCK_SIZE / 1024, ours,
                        (unsigned long) zlen);
                assert_true(ours <= zlen + zlen / 50);
                assert_int_equal(gzblock_compress(c, data, GZBLOCK_USIZE_MAX + 1, out, cap),
                                 -EINVAL);
                assert_int_equal(gzblock_compress(c, data, GZBLOCK_SIZE, out, cap - 1), -EINVAL);
                libdeflate_free_compressor(c);
        }
        free(out);
        free(zout);
        free(data);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        const struct CMUnitTest tests[] = {
                T(test_empty_log_is_one_empty_member),
                T(test_one_byte),
                T(test_exactly_one_block),
                T(test_one_byte_over_one_block),
                T(test_first_block_grows),
                T(test_one_write_many_blocks),
                T(test_exactly_three_blocks),
                T(test_large_log_16mb),
                T(test_output_is_deterministic),
                T(test_reads_legacy_single_member),
                T(test_reads_concatenated_members_of_any_kind),
                T(test_truncated_is_ebadmsg),
                T(test_corrupt_is_ebadmsg),
                T(test_garbage_empty_and_trailing_junk_are_ebadmsg),
                T(test_decode_checks_the_member),
                T(test_level_mapping),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

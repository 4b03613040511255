#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <zlib.h>

#include "archive.h"
#include "paths.h"
#include "macro.h"
#include "util.h"
#include "testutil.h"

#define GUID  "38400000-8cf0-11bd-b23e-10b96e4ef00d"
#define GUID2 "0b8f3a5e-2f4d-4c47-9b0e-5c1f6e2a9d11"

struct fixture {
        char dir[256];  /* the mkdtemp folder */
        char root[512]; /* the archive root inside it */
        struct archive *a;
};

struct done_state {
        int calls;
        int r;
};

static void on_done(void *userdata, int r)
{
        struct done_state *s = userdata;

        s->calls++;
        s->r = r;
}

struct finish_state {
        int calls;
        int r;
        struct archive_log_info info;
};

static void on_finished(void *userdata, int r, const struct archive_log_info *info)
{
        struct finish_state *s = userdata;

        s->calls++;
        s->r = r;
        if (r == 0)
                s->info = *info;
        else
                assert_null(info);
}

/* Finishes f and waits for the compression threads; done must run exactly once. Returns its
 * r and fills what is asked for. */
static int finish_sync(struct archive *a, struct archive_file *f, uint64_t *ret_in,
                       uint64_t *ret_out, char sha[ARCHIVE_SHA256_HEX_LEN + 1])
{
        struct finish_state s = {0};
        int r;

        r = archive_file_finish(f, on_finished, &s);
        if (r < 0)
                return r;
        assert_int_equal(archive_pending(a), 1);
        (void) archive_wait(a);
        assert_int_equal(s.calls, 1);
        assert_int_equal(archive_pending(a), 0);
        if (s.r == 0) {
                if (ret_in)
                        *ret_in = s.info.bytes_in;
                if (ret_out)
                        *ret_out = s.info.bytes_out;
                if (sha)
                        memcpy(sha, s.info.sha256, ARCHIVE_SHA256_HEX_LEN + 1);
        }
        return s.r;
}

static int setup(void **state)
{
        struct fixture *fx = calloc(1, sizeof(*fx));
        const char *tmp = getenv("TMPDIR");

        assert_non_null(fx);
        (void) umask(022);
        (void) snprintf(fx->dir, sizeof(fx->dir), "%s/test_archive.XXXXXX", tmp ? tmp : "/tmp");
        assert_non_null(mkdtemp(fx->dir));
        (void) snprintf(fx->root, sizeof(fx->root), "%s/root", fx->dir);
        assert_int_equal(archive_open(fx->root, 6, 2, &fx->a), 0);
        *state = fx;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *fx = *state;

        archive_free(fx->a);
        rm_rf(fx->dir);
        free(fx);
        return 0;
}

/* A path under the archive root, for checking what is on disk. */
_printf_(3, 4) static const
        char *root_path(const struct fixture *fx, char *buf, const char *fmt, ...)
{
        char rel[2048];
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(rel, sizeof(rel), fmt, ap);
        va_end(ap);
        (void) snprintf(buf, PATH_MAX, "%s/%s", fx->root, rel);
        return buf;
}

static bool exists(const char *path)
{
        struct stat st;

        return lstat(path, &st) == 0;
}

static mode_t mode_of(const char *path)
{
        struct stat st;

        assert_int_equal(lstat(path, &st), 0);
        return st.st_mode & 07777;
}

static unsigned char *read_all(const char *path, size_t *ret_len)
{
        struct stat st;
        unsigned char *buf;
        int fd;

        fd = open(path, O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(fstat(fd, &st), 0);
        buf = malloc((size_t) st.st_size + 1);
        assert_non_null(buf);
        assert_int_equal(read(fd, buf, (size_t) st.st_size), st.st_size);
        buf[st.st_size] = '\0';
        (void) close(fd);
        *ret_len = (size_t) st.st_size;
        return buf;
}

static unsigned char *gunzip(const char *path, size_t *ret_len)
{
        size_t len = 0, allocated = 1 << 16;
        unsigned char *buf = malloc(allocated);
        gzFile gz;
        int n;

        assert_non_null(buf);
        gz = gzopen(path, "rb");
        assert_non_null(gz);
        for (;;) {
                if (allocated - len < (1 << 16)) {
                        allocated *= 2;
                        buf = realloc(buf, allocated);
                        assert_non_null(buf);
                }
                n = gzread(gz, buf + len, 1 << 16);
                assert_true(n >= 0);
                if (n == 0)
                        break;
                len += (size_t) n;
        }
        assert_int_equal(gzclose(gz), Z_OK);
        *ret_len = len;
        return buf;
}

static void sha256_hex(const void *data, size_t len, char out[ARCHIVE_SHA256_HEX_LEN + 1])
{
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned md_len = 0;

        assert_int_equal(EVP_Digest(data, len, md, &md_len, EVP_sha256(), NULL), 1);
        assert_int_equal(md_len, 32);
        hex_encode(md, md_len, out);
}

/* Counts ".*.tmp" entries anywhere under dir. */
static unsigned n_temporaries;
static int count_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        const char *name = path + ftw->base;
        size_t len = strlen(name);

        (void) st;
        (void) flag;
        if (name[0] == '.' && len > 4 && strcmp(name + len - 4, ".tmp") == 0)
                n_temporaries++;
        return 0;
}

static unsigned count_temporaries(const char *dir)
{
        n_temporaries = 0;
        assert_int_equal(nftw(dir, count_entry, 16, FTW_PHYS), 0);
        return n_temporaries;
}

/* xorshift64*: reproducible test data. */
static uint64_t next_random(uint64_t *s)
{
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        return *s * UINT64_C(2685821657736338717);
}

/* Log-like text with stretches of random binary, so both compressible and not. */
static unsigned char *make_data(size_t len, uint64_t seed)
{
        unsigned char *buf = malloc(len ? len : 1);
        uint64_t s = seed | 1;
        size_t i = 0;

        assert_non_null(buf);
        while (i < len) {
                uint64_t x = next_random(&s);
                if (x % 8 == 0) {
                        size_t n = x % 500;
                        for (size_t j = 0; j < n && i < len; j++)
                                buf[i++] = (unsigned char) (next_random(&s) >> 56);
                } else {
                        char line[128];
                        int n = snprintf(line, sizeof(line),
                                         "2024-11-25T22:26:%02u.%06uZ [rsession] step %llu done\n",
                                         (unsigned) (x % 60), (unsigned) (x % 1000000),
                                         (unsigned long long) (x >> 40));
                        for (int j = 0; j < n && i < len; j++)
                                buf[i++] = (unsigned char) line[j];
                }
        }
        return buf;
}

static struct archive_loc make_loc(const char *key, int year, int month, int day)
{
        return (struct archive_loc){
                .guid = GUID, .year = year, .month = month, .day = day, .key = key};
}

/*
 * Streams data into a new archive file in uneven chunks (sizes cycle through chunks[]) and
 * finishes it. Returns the finished file.
 */
static struct archive_file *stream(struct archive *a, const struct archive_loc *loc,
                                   const unsigned char *data, size_t len, const size_t *chunks,
                                   size_t n_chunks, uint64_t *ret_in, uint64_t *ret_out,
                                   char sha[ARCHIVE_SHA256_HEX_LEN + 1])
{
        struct archive_file *f = NULL;
        size_t off = 0, i = 0;
        uint64_t in = 0, out = 0;

        assert_int_equal(archive_file_open(a, loc, &f), 0);
        assert_non_null(f);
        while (off < len) {
                size_t n = n_chunks ? chunks[i++ % n_chunks] : len;
                if (n > len - off)
                        n = len - off;
                assert_int_equal(archive_file_write(f, data + off, n), 0);
                off += n;
        }
        assert_int_equal(finish_sync(a, f, &in, &out, sha), 0);
        if (ret_in)
                *ret_in = in;
        if (ret_out)
                *ret_out = out;
        return f;
}

/* Streams, commits the log alone with a trivial record, and checks the round trip. */
static void check_round_trip(struct fixture *fx, const char *key, const unsigned char *data,
                             size_t len, const size_t *chunks, size_t n_chunks)
{
        struct archive_loc loc = make_loc(key, 2024, 11, 25);
        char sha[ARCHIVE_SHA256_HEX_LEN + 1], expected[ARCHIVE_SHA256_HEX_LEN + 1];
        char path[PATH_MAX];
        struct archive_file *f;
        struct archive_batch *b;
        struct done_state done = {0};
        unsigned char *back;
        size_t back_len;
        uint64_t in, out;
        struct stat st;

        f = stream(fx->a, &loc, data, len, chunks, n_chunks, &in, &out, sha);
        sha256_hex(data, len, expected);
        assert_string_equal(sha, expected);
        assert_int_equal(in, len);

        b = archive_batch_new(fx->a);
        assert_non_null(b);
        assert_int_equal(archive_batch_add(b, &loc, f, NULL, "{}", on_done, &done), 0);
        assert_int_equal(archive_batch_commit(b), 1);
        assert_int_equal(done.calls, 1);
        assert_int_equal(done.r, 0);
        archive_batch_free(b);

        root_path(fx, path, "%s/2024/11/25/%s.log.gz", GUID, key);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal((uint64_t) st.st_size, out);
        back = gunzip(path, &back_len);
        assert_int_equal(back_len, len);
        assert_memory_equal(back, data, len);
        free(back);
}

static void test_open_creates_missing_root(void **state)
{
        struct fixture *fx = *state;
        struct archive *a = NULL;
        char path[PATH_MAX];

        (void) snprintf(path, sizeof(path), "%s/a/b//c/", fx->dir);
        assert_int_equal(archive_open(path, 1, 0, &a), 0);
        int fd = archive_tmpfile(a);
        assert_true(fd >= 0);
        close(fd);
        (void) snprintf(path, sizeof(path), "%s/a/b/c", fx->dir);
        assert_int_equal(mode_of(path), 0750 & ~022);
        archive_free(a);
        archive_free(NULL);
}

static void test_free_space(void **state)
{
        struct fixture *fx = *state;
        struct archive *a = NULL;
        struct statvfs st;
        uint64_t bytes = 0, want;

        assert_int_equal(archive_open(fx->root, 1, 0, &a), 0);
        assert_int_equal(archive_free_space(a, &bytes), 0);
        assert_int_equal(statvfs(fx->root, &st), 0);
        want = (uint64_t) st.f_bavail * st.f_frsize;
        /* Others write on this filesystem meanwhile: the same figure within 256 MiB. */
        assert_true(bytes + 256 * 1024 * 1024 >= want && want + 256 * 1024 * 1024 >= bytes);
        archive_free(a);
}

static void test_open_rejects_bad_arguments(void **state)
{
        struct fixture *fx = *state;
        struct archive *a = NULL;
        char path[PATH_MAX];
        int fd;

        assert_int_equal(archive_open(fx->root, 0, 1, &a), -EINVAL);
        assert_int_equal(archive_open(fx->root, 10, 1, &a), -EINVAL);
        assert_int_equal(archive_open(NULL, 6, 1, &a), -EINVAL);
        assert_int_equal(archive_open("", 6, 1, &a), -EINVAL);
        (void) snprintf(path, sizeof(path), "%s/file", fx->dir);
        fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        (void) close(fd);
        assert_int_equal(archive_open(path, 6, 1, &a), -ENOTDIR);
        assert_null(a);
}

static void test_open_rejects_read_only_root(void **state)
{
        struct fixture *fx = *state;
        struct archive *a = NULL;
        char path[PATH_MAX];

        if (geteuid() == 0)
                skip(); /* root passes every permission check */
        (void) snprintf(path, sizeof(path), "%s/ro", fx->dir);
        assert_int_equal(mkdir(path, 0500), 0);
        assert_int_equal(archive_open(path, 6, 1, &a), -EACCES);
}

static void test_stream_round_trip_uneven_chunks(void **state)
{
        static const size_t chunks[] = {1, 7, 4096, 3, 65536 + 13, 0, 100000, 2, 16384, 65535};
        size_t len = 3 * 1024 * 1024 + 17;
        unsigned char *data = make_data(len, 1);

        check_round_trip(*state, "uneven", data, len, chunks, ELEMENTSOF(chunks));
        free(data);
}

static void test_stream_empty_log(void **state)
{
        struct fixture *fx = *state;
        struct archive_loc loc = make_loc("empty", 2024, 1, 2);
        char sha[ARCHIVE_SHA256_HEX_LEN + 1], path[PATH_MAX];
        struct archive_file *f = NULL;
        uint64_t in = 1, out = 0;
        unsigned char *back;
        size_t back_len;

        assert_int_equal(archive_file_open(fx->a, &loc, &f), 0);
        assert_int_equal(archive_file_write(f, NULL, 0), 0);
        assert_int_equal(finish_sync(fx->a, f, &in, &out, sha), 0);
        assert_int_equal(in, 0);
        assert_true(out >= 20); /* a gzip header and trailer */
        assert_string_equal(sha,
                            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        root_path(fx, path, "%s/2024/01/02/.empty.log.gz.tmp", GUID);
        back = gunzip(path, &back_len);
        assert_int_equal(back_len, 0);
        free(back);
        archive_file_abort(f);
        assert_false(exists(path));

        check_round_trip(fx, "empty2", (const unsigned char *) "", 0, NULL, 0);
}

static void test_stream_binary_bytes(void **state)
{
        static const unsigned char invalid_utf8[] = {0xc0, 0x80, 0xff, 0xfe, 0xed, 0xa0, 0x80,
                                                     0xf8, 0x88, 0x80, 0x80, 0x80, 0x00, 0x00,
                                                     0x1b, '[',  '3',  '1',  'm',  '\r', '\n'};
        static const size_t chunks[] = {1, 2, 255, 256, 3};
        size_t len = 256 * 64 + sizeof(invalid_utf8) * 50;
        unsigned char *data = malloc(len);
        size_t i = 0;

        assert_non_null(data);
        for (int r = 0; r < 64; r++)
                for (int c = 0; c < 256; c++)
                        data[i++] = (unsigned char) (c ^ r);
        for (int r = 0; r < 50; r++) {
                memcpy(data + i, invalid_utf8, sizeof(invalid_utf8));
                i += sizeof(invalid_utf8);
        }
        assert_int_equal(i, len);
        check_round_trip(*state, "binary", data, len, chunks, ELEMENTSOF(chunks));
        free(data);
}

static double elapsed(const struct timespec *t0)
{
        struct timespec t1;

        (void) clock_gettime(CLOCK_MONOTONIC, &t1);
        return (double) (t1.tv_sec - t0->tv_sec) + (double) (t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static void test_stream_large_50mb(void **state)
{
        static const size_t chunks[] = {16384, 16384, 1000, 16384, 7};
        struct fixture *fx = *state;
        size_t len = 50u * 1024 * 1024;
        unsigned char *data = make_data(len, 50);
        struct timespec t0;

        (void) clock_gettime(CLOCK_MONOTONIC, &t0);
        check_round_trip(fx, "large", data, len, chunks, ELEMENTSOF(chunks));
        print_message("50 MB: stream, commit and read back in %.2f s\n", elapsed(&t0));
        free(data);
}

static void test_stream_levels_1_and_9(void **state)
{
        struct fixture *fx = *state;
        size_t len = 4 * 1024 * 1024;
        unsigned char *data = make_data(len, 9);
        char sha1[ARCHIVE_SHA256_HEX_LEN + 1], sha9[ARCHIVE_SHA256_HEX_LEN + 1];
        struct archive_loc loc = make_loc("level", 2024, 5, 6);
        struct archive *a1 = NULL, *a9 = NULL;
        struct archive_file *f1, *f9;
        uint64_t out1, out9;
        char path[PATH_MAX];
        unsigned char *back;
        size_t back_len;

        (void) snprintf(path, sizeof(path), "%s/level1", fx->dir);
        assert_int_equal(archive_open(path, 1, 1, &a1), 0);
        (void) snprintf(path, sizeof(path), "%s/level9", fx->dir);
        assert_int_equal(archive_open(path, 9, 1, &a9), 0);
        f1 = stream(a1, &loc, data, len, NULL, 0, NULL, &out1, sha1);
        f9 = stream(a9, &loc, data, len, NULL, 0, NULL, &out9, sha9);
        assert_string_equal(sha1, sha9);
        assert_true(out9 < out1);

        (void) snprintf(path, sizeof(path), "%s/level1/%s/2024/05/06/.level.log.gz.tmp", fx->dir,
                        GUID);
        back = gunzip(path, &back_len);
        assert_int_equal(back_len, len);
        assert_memory_equal(back, data, len);
        free(back);
        (void) snprintf(path, sizeof(path), "%s/level9/%s/2024/05/06/.level.log.gz.tmp", fx->dir,
                        GUID);
        back = gunzip(path, &back_len);
        assert_int_equal(back_len, len);
        assert_memory_equal(back, data, len);
        free(back);

        archive_file_abort(f1);
        archive_file_abort(f9);
        archive_free(a1);
        archive_free(a9);
        free(data);
}

static void test_stream_header_is_deterministic(void **state)
{
        static const size_t chunks[] = {333, 1};
        struct fixture *fx = *state;
        size_t len = 200000;
        unsigned char *data = make_data(len, 7);
        struct archive_loc la = make_loc("same-a", 2024, 2, 29);
        struct archive_loc lb = make_loc("same-b", 2024, 2, 29);
        char sha_a[ARCHIVE_SHA256_HEX_LEN + 1], sha_b[ARCHIVE_SHA256_HEX_LEN + 1];
        char pa[PATH_MAX], pb[PATH_MAX];
        struct archive_file *fa, *fb;
        unsigned char *ba, *bb;
        size_t na, nb;

        fa = stream(fx->a, &la, data, len, chunks, ELEMENTSOF(chunks), NULL, NULL, sha_a);
        /* A second later, so that a header carrying a time would differ. */
        (void) sleep(1);
        fb = stream(fx->a, &lb, data, len, NULL, 0, NULL, NULL, sha_b);
        root_path(fx, pa, "%s/2024/02/29/.same-a.log.gz.tmp", GUID);
        root_path(fx, pb, "%s/2024/02/29/.same-b.log.gz.tmp", GUID);
        ba = read_all(pa, &na);
        bb = read_all(pb, &nb);
        assert_int_equal(na, nb);
        assert_memory_equal(ba, bb, na);
        /* Magic, deflate, FEXTRA only (no name, no comment), mtime 0 (gzblock.h). */
        assert_true(na > 10);
        assert_memory_equal(ba, "\x1f\x8b\x08\x04\x00\x00\x00\x00", 8);
        free(ba);
        free(bb);
        archive_file_abort(fa);
        archive_file_abort(fb);
        free(data);
}

static void test_file_layout_and_modes(void **state)
{
        struct fixture *fx = *state;
        struct archive_loc loc = make_loc("k1", 2024, 3, 7);
        struct archive_file *f = NULL;
        char path[PATH_MAX];

        assert_int_equal(archive_file_open(fx->a, &loc, &f), 0);
        root_path(fx, path, "%s/2024/03/07/.k1.log.gz.tmp", GUID);
        assert_int_equal(mode_of(path), 0640);
        assert_int_equal(mode_of(root_path(fx, path, "%s", GUID)), 0750);
        assert_int_equal(mode_of(root_path(fx, path, "%s/2024", GUID)), 0750);
        assert_int_equal(mode_of(root_path(fx, path, "%s/2024/03", GUID)), 0750);
        assert_int_equal(mode_of(root_path(fx, path, "%s/2024/03/07", GUID)), 0750);
        archive_file_abort(f);
        assert_int_equal(count_temporaries(fx->root), 0);
}

static void test_file_second_open_of_same_job_fails(void **state)
{
        struct fixture *fx = *state;
        struct archive_loc loc = make_loc("twice", 2024, 3, 7);
        struct archive_file *f = NULL, *g = NULL;

        assert_int_equal(archive_file_open(fx->a, &loc, &f), 0);
        assert_int_equal(archive_file_open(fx->a, &loc, &g), -EEXIST);
        assert_null(g);
        /* The failed open must not have removed the first writer's temporary. */
        assert_int_equal(count_temporaries(fx->root), 1);
        archive_file_abort(f);
        assert_int_equal(archive_file_open(fx->a, &loc, &g), 0);
        archive_file_abort(g);
        assert_int_equal(count_temporaries(fx->root), 0);
}

static void test_file_abort_removes_temporary(void **state)
{
        struct fixture *fx = *state;
        struct archive_loc loc = make_loc("abort", 2023, 12, 31);
        struct archive_file *f = NULL;
        char sha[ARCHIVE_SHA256_HEX_LEN + 1];

        /* Half-written. */
        assert_int_equal(archive_file_open(fx->a, &loc, &f), 0);
        assert_int_equal(archive_file_write(f, "partial", 7), 0);
        assert_int_equal(count_temporaries(fx->root), 1);
        archive_file_abort(f);
        assert_int_equal(count_temporaries(fx->root), 0);

        /* Finished but never committed. */
        assert_int_equal(archive_file_open(fx->a, &loc, &f), 0);
        assert_int_equal(archive_file_write(f, "whole", 5), 0);
        assert_int_equal(finish_sync(fx->a, f, NULL, NULL, sha), 0);
        assert_int_equal(archive_file_write(f, "more", 4), -EINVAL);
        assert_int_equal(finish_sync(fx->a, f, NULL, NULL, sha), -EINVAL);
        archive_file_abort(f);
        assert_int_equal(count_temporaries(fx->root), 0);

        archive_file_abort(NULL);
}

static void test_unsafe_locations_are_refused(void **state)
{
        struct fixture *fx = *state;
        const struct archive_loc bad[] = {
                make_loc("..", 2024, 1, 1),
                make_loc(".", 2024, 1, 1),
                make_loc("a/b", 2024, 1, 1),
                make_loc("", 2024, 1, 1),
                make_loc("a\nb", 2024, 1, 1),
                make_loc("k", 2024, 13, 1),
                make_loc("k", 2024, 0, 1),
                make_loc("k", 2024, 1, 0),
                make_loc("k", 2024, 1, 32),
                make_loc("k", 10000, 1, 1),
                {.guid = "..", .year = 2024, .month = 1, .day = 1, .key = "k"},
                {.guid = NULL, .year = 2024, .month = 1, .day = 1, .key = "k"},
        };
        char long_key[130];
        struct archive_loc too_long;
        struct archive_file *f = NULL;
        struct archive_batch *b = archive_batch_new(fx->a);

        memset(long_key, 'k', sizeof(long_key) - 1);
        long_key[sizeof(long_key) - 1] = '\0';
        too_long = make_loc(long_key, 2024, 1, 1);
        assert_int_equal(archive_file_open(fx->a, &too_long, &f), -EINVAL);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                assert_int_equal(archive_file_open(fx->a, &bad[i], &f), -EINVAL);
                assert_null(f);
                assert_false(archive_job_is_archived(fx->a, &bad[i]));
                assert_int_equal(archive_batch_add(b, &bad[i], NULL, NULL, "{}", NULL, NULL),
                                 -EINVAL);
        }
        assert_int_equal(archive_batch_size(b), 0);
        archive_batch_free(b);
}

static void ignore_sigxfsz(void)
{
        struct sigaction sa = {.sa_handler = SIG_IGN};

        assert_int_equal(sigaction(SIGXFSZ, &sa, NULL), 0);
}

static void set_file_size_limit(rlim_t limit, struct rlimit *ret_old)
{
        struct rlimit rl;

        assert_int_equal(getrlimit(RLIMIT_FSIZE, ret_old), 0);
        rl = *ret_old;
        rl.rlim_cur = limit;
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &rl), 0);
}

static void test_file_write_error_is_errno(void **state)
{
        struct fixture *fx = *state;
        struct archive_loc loc = make_loc("efbig", 2024, 4, 4);
        struct archive_file *f = NULL;
        char sha[ARCHIVE_SHA256_HEX_LEN + 1];
        struct rlimit old;
        size_t len = 1024 * 1024;
        unsigned char *data = make_data(len, 3);
        uint64_t s = 5;
        int r = 0;

        /* Random bytes do not compress, so the output passes the limit quickly. */
        for (size_t i = 0; i < len; i++)
                data[i] = (unsigned char) (next_random(&s) >> 56);
        ignore_sigxfsz();
        assert_int_equal(archive_file_open(fx->a, &loc, &f), 0);
        set_file_size_limit(100000, &old);
        for (size_t off = 0; off < len && r == 0; off += 16384)
                r = archive_file_write(f, data + off, 16384);
        /* A write meets the error only once a thread has; otherwise the finish reports it.
         * The limit stays until the threads are done with the file. */
        if (r == 0)
                r = finish_sync(fx->a, f, NULL, NULL, sha);
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
        assert_int_equal(r, -EFBIG);
        /* The error sticks. */
        assert_int_equal(archive_file_write(f, "x", 1), -EFBIG);
        assert_int_equal(finish_sync(fx->a, f, NULL, NULL, sha), -EFBIG);
        archive_file_abort(f);
        assert_int_equal(count_temporaries(fx->root), 0);
        free(data);
}

/* Several logs written in turns, as concurrent downloads deliver them: each comes out whole
 * and in order, with its own hash. */
static void check_interleaved(struct fixture *fx, int threads)
{
        enum { N = 6 };
        const size_t len[N] = {0, 1, 70000, 300000, 1 << 20, 3 << 20};
        unsigned char *data[N];
        struct archive_file *f[N];
        struct archive_loc loc[N];
        struct finish_state fin[N] = {0};
        char key[N][16], expected[ARCHIVE_SHA256_HEX_LEN + 1], path[PATH_MAX];
        size_t off[N] = {0}, back_len;
        struct archive *a;
        bool more = true;

        assert_int_equal(archive_open(fx->root, 6, threads, &a), 0);
        assert_int_equal(archive_threads(a), (unsigned) threads);
        for (size_t i = 0; i < N; i++) {
                (void) snprintf(key[i], sizeof(key[i]), "inter%zu", i);
                loc[i] = make_loc(key[i], 2024, 8, 1);
                data[i] = make_data(len[i], (unsigned) i + 11);
                assert_int_equal(archive_file_open(a, &loc[i], &f[i]), 0);
        }
        while (more) {
                more = false;
                for (size_t i = 0; i < N; i++) {
                        size_t n = len[i] - off[i] < 16384 ? len[i] - off[i] : 16384;
                        if (n == 0)
                                continue;
                        assert_int_equal(archive_file_write(f[i], data[i] + off[i], n), 0);
                        off[i] += n;
                        more = true;
                }
        }
        for (size_t i = 0; i < N; i++)
                assert_int_equal(archive_file_finish(f[i], on_finished, &fin[i]), 0);
        while (archive_pending(a) > 0)
                (void) archive_wait(a);
        for (size_t i = 0; i < N; i++) {
                assert_int_equal(fin[i].calls, 1);
                assert_int_equal(fin[i].r, 0);
                assert_int_equal(fin[i].info.bytes_in, len[i]);
                sha256_hex(data[i], len[i], expected);
                assert_string_equal(fin[i].info.sha256, expected);
                root_path(fx, path, "%s/2024/08/01/.%s.log.gz.tmp", GUID, key[i]);
                unsigned char *back = gunzip(path, &back_len);
                assert_int_equal(back_len, len[i]);
                assert_memory_equal(back, data[i], len[i]);
                free(back);
                archive_file_abort(f[i]);
                free(data[i]);
        }
        assert_int_equal(count_temporaries(fx->root), 0);
        archive_free(a);
}

static void test_streams_interleaved_on_threads(void **state)
{
        check_interleaved(*state, 4);
}

static void test_streams_interleaved_without_threads(void **state)
{
        check_interleaved(*state, 0);
}

/*
 * Aborts at every stage: while chunks wait, while a thread compresses, after the finish but
 * before done ran. Nothing stays on disk, done never runs, and the pool goes on working.
 * More than the 2 MiB of chunks goes into one file first, so the writer has to wait for the
 * threads to hand chunks back.
 */
static void test_abort_while_compressing(void **state)
{
        struct fixture *fx = *state;
        struct archive_loc loc = make_loc("busy", 2024, 8, 2);
        struct finish_state fin = {0};
        size_t len = 8 << 20;
        unsigned char *data = make_data(len, 21);
        char sha[ARCHIVE_SHA256_HEX_LEN + 1], expected[ARCHIVE_SHA256_HEX_LEN + 1];
        struct archive_file *f;
        uint64_t in = 0;

        for (int round = 0; round < 3; round++) {
                assert_int_equal(archive_file_open(fx->a, &loc, &f), 0);
                for (size_t off = 0; off < len; off += 16384)
                        assert_int_equal(archive_file_write(f, data + off, 16384), 0);
                if (round == 1)
                        assert_int_equal(archive_file_finish(f, on_finished, &fin), 0);
                if (round == 2) {
                        assert_int_equal(archive_file_finish(f, on_finished, &fin), 0);
                        /* Wait without dispatching, until the result is waiting. */
                        struct pollfd pfd = {.fd = archive_event_fd(fx->a), .events = POLLIN};
                        assert_int_equal(poll(&pfd, 1, 30000), 1);
                        assert_int_equal(archive_pending(fx->a), 1);
                }
                archive_file_abort(f);
                assert_int_equal(archive_pending(fx->a), 0);
                assert_int_equal(count_temporaries(fx->root), 0);
        }
        (void) archive_wait(fx->a);
        assert_int_equal(fin.calls, 0);

        f = stream(fx->a, &loc, data, len, NULL, 0, &in, NULL, sha);
        sha256_hex(data, len, expected);
        assert_string_equal(sha, expected);
        assert_int_equal(in, len);
        archive_file_abort(f);
        free(data);
}

static void test_commit_writes_all_files(void **state)
{
        struct fixture *fx = *state;
        struct archive_loc loc = make_loc("job1", 2024, 11, 5);
        const char *log = "line one\nline two\n";
        const char *error = "{\"code\":1,\"message\":\"boom\"}";
        const char *record = "{\"job\":{\"key\":\"job1\"},\"error\":null}\n";
        char sha[ARCHIVE_SHA256_HEX_LEN + 1], path[PATH_MAX];
        struct done_state done = {0};
        struct archive_batch *b;
        struct archive_file *f;
        unsigned char *content;
        size_t len;

        assert_false(archive_job_is_archived(fx->a, &loc));
        f = stream(fx->a, &loc, (const unsigned char *) log, strlen(log), NULL, 0, NULL, NULL, sha);
        b = archive_batch_new(fx->a);
        assert_non_null(b);
        assert_int_equal(archive_batch_add(b, &loc, f, error, record, on_done, &done), 0);
        assert_int_equal(archive_batch_size(b), 1);
        assert_false(archive_job_is_archived(fx->a, &loc));
        assert_int_equal(done.calls, 0);

        assert_int_equal(archive_batch_commit(b), 1);
        assert_int_equal(done.calls, 1);
        assert_int_equal(done.r, 0);
        assert_int_equal(archive_batch_size(b), 0);
        assert_true(archive_job_is_archived(fx->a, &loc));
        assert_int_equal(count_temporaries(fx->root), 0);

        content = gunzip(root_path(fx, path, "%s/2024/11/05/job1.log.gz", GUID), &len);
        assert_int_equal(len, strlen(log));
        assert_memory_equal(content, log, len);
        free(content);
        assert_int_equal(mode_of(path), 0640);

        content = read_all(root_path(fx, path, "%s/2024/11/05/job1.error.json", GUID), &len);
        assert_string_equal((char *) content, error);
        free(content);
        assert_int_equal(mode_of(path), 0640);

        content = read_all(root_path(fx, path, "%s/2024/11/05/job1.json", GUID), &len);
        assert_string_equal((char *) content, record);
        free(content);
        assert_int_equal(mode_of(path), 0640);

        /* An empty commit is fine. */
        assert_int_equal(archive_batch_commit(b), 0);
        archive_batch_free(b);
}

static void test_commit_without_error_or_log(void **state)
{
        struct fixture *fx = *state;
        struct archive_loc l1 = make_loc("noerror", 2022, 6, 1);
        struct archive_loc l2 = make_loc("nolog", 2022, 7, 9);
        char sha[ARCHIVE_SHA256_HEX_LEN + 1], path[PATH_MAX];
        struct done_state d1 = {0}, d2 = {0};
        struct archive_batch *b = archive_batch_new(fx->a);
        struct archive_file *f;

        f = stream(fx->a, &l1, (const unsigned char *) "x", 1, NULL, 0, NULL, NULL, sha);
        assert_int_equal(archive_batch_add(b, &l1, f, NULL, "{\"a\":1}", on_done, &d1), 0);
        /* A job whose log was gone (404): record and error only; its folder does not exist yet. */
        assert_int_equal(archive_batch_add(b, &l2, NULL, "{\"e\":2}", "{\"a\":2}", on_done, &d2),
                         0);
        assert_int_equal(archive_batch_commit(b), 2);
        assert_int_equal(d1.r, 0);
        assert_int_equal(d2.r, 0);
        assert_int_equal(d1.calls + d2.calls, 2);

        assert_true(exists(root_path(fx, path, "%s/2022/06/01/noerror.log.gz", GUID)));
        assert_false(exists(root_path(fx, path, "%s/2022/06/01/noerror.error.json", GUID)));
        assert_true(exists(root_path(fx, path, "%s/2022/06/01/noerror.json", GUID)));
        assert_false(exists(root_path(fx, path, "%s/2022/07/09/nolog.log.gz", GUID)));
        assert_true(exists(root_path(fx, path, "%s/2022/07/09/nolog.error.json", GUID)));
        assert_true(exists(root_path(fx, path, "%s/2022/07/09/nolog.json", GUID)));
        assert_int_equal(count_temporaries(fx->root), 0);
        archive_batch_free(b);
}

/*
 * The record comes last: when it cannot be put in place (here its final name is a non-empty
 * folder, so renameat fails), the job's log and error file, already renamed, are taken back.
 * Another job in the same batch is unaffected.
 */
static void test_commit_record_rename_failure_rolls_back(void **state)
{
        struct fixture *fx = *state;
        struct archive_loc bad = make_loc("bad", 2024, 8, 8);
        struct archive_loc good = make_loc("good", 2024, 8, 8);
        char sha[ARCHIVE_SHA256_HEX_LEN + 1], path[PATH_MAX];
        struct done_state dbad = {0}, dgood = {0};
        struct archive_batch *b = archive_batch_new(fx->a);
        struct archive_file *fb, *fg;

        fb = stream(fx->a, &bad, (const unsigned char *) "bad log", 7, NULL, 0, NULL, NULL, sha);
        fg = stream(fx->a, &good, (const unsigned char *) "good log", 8, NULL, 0, NULL, NULL, sha);
        assert_int_equal(mkdir(root_path(fx, path, "%s/2024/08/08/bad.json", GUID), 0750), 0);
        assert_int_equal(mkdir(root_path(fx, path, "%s/2024/08/08/bad.json/x", GUID), 0750), 0);

        assert_int_equal(archive_batch_add(b, &bad, fb, "{}", "{\"bad\":1}", on_done, &dbad), 0);
        assert_int_equal(archive_batch_add(b, &good, fg, "{}", "{\"good\":1}", on_done, &dgood), 0);
        assert_int_equal(archive_batch_commit(b), 1);
        assert_int_equal(dbad.calls, 1);
        assert_true(dbad.r < 0);
        assert_int_equal(dgood.calls, 1);
        assert_int_equal(dgood.r, 0);

        assert_false(archive_job_is_archived(fx->a, &bad));
        assert_false(exists(root_path(fx, path, "%s/2024/08/08/bad.log.gz", GUID)));
        assert_false(exists(root_path(fx, path, "%s/2024/08/08/bad.error.json", GUID)));
        assert_true(exists(root_path(fx, path, "%s/2024/08/08/bad.json/x", GUID)));
        assert_true(archive_job_is_archived(fx->a, &good));
        assert_true(exists(root_path(fx, path, "%s/2024/08/08/good.log.gz", GUID)));
        assert_true(exists(root_path(fx, path, "%s/2024/08/08/good.error.json", GUID)));
        assert_int_equal(count_temporaries(fx->root), 0);
        archive_batch_free(b);
}

/* A record that cannot be written (EFBIG standing in for ENOSPC) fails only its own job. */
static void test_commit_record_write_failure_rolls_back(void **state)
{
        struct fixture *fx = *state;
        struct archive_loc big = make_loc("big", 2021, 1, 1);
        struct archive_loc small = make_loc("small", 2021, 1, 1);
        char sha[ARCHIVE_SHA256_HEX_LEN + 1], path[PATH_MAX];
        struct done_state dbig = {0}, dsmall = {0};
        struct archive_batch *b = archive_batch_new(fx->a);
        struct archive_file *fbig, *fsmall;
        char *record = malloc(20000);
        struct rlimit old;
        int r;

        assert_non_null(record);
        memset(record, ' ', 19999);
        record[19999] = '\0';
        fbig = stream(fx->a, &big, (const unsigned char *) "log", 3, NULL, 0, NULL, NULL, sha);
        fsmall = stream(fx->a, &small, (const unsigned char *) "log", 3, NULL, 0, NULL, NULL, sha);
        assert_int_equal(archive_batch_add(b, &big, fbig, "{}", record, on_done, &dbig), 0);
        assert_int_equal(archive_batch_add(b, &small, fsmall, "{}", "{}", on_done, &dsmall), 0);

        ignore_sigxfsz();
        set_file_size_limit(4096, &old);
        r = archive_batch_commit(b);
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
        assert_int_equal(r, 1);
        assert_int_equal(dbig.r, -EFBIG);
        assert_int_equal(dsmall.r, 0);
        assert_false(exists(root_path(fx, path, "%s/2021/01/01/big.log.gz", GUID)));
        assert_false(exists(root_path(fx, path, "%s/2021/01/01/big.error.json", GUID)));
        assert_false(exists(root_path(fx, path, "%s/2021/01/01/big.json", GUID)));
        assert_true(archive_job_is_archived(fx->a, &small));
        assert_int_equal(count_temporaries(fx->root), 0);
        archive_batch_free(b);
        free(record);
}

static void test_commit_error_write_failure_returns_errno(void **state)
{
        struct fixture *fx = *state;
        struct archive_loc loc = make_loc("errbig", 2021, 2, 2);
        char sha[ARCHIVE_SHA256_HEX_LEN + 1], path[PATH_MAX];
        struct done_state done = {0};
        struct archive_batch *b = archive_batch_new(fx->a);
        struct archive_file *f;
        char *error = malloc(20000);
        struct rlimit old;
        int r;

        assert_non_null(error);
        memset(error, 'e', 19999);
        error[19999] = '\0';
        f = stream(fx->a, &loc, (const unsigned char *) "log", 3, NULL, 0, NULL, NULL, sha);
        assert_int_equal(archive_batch_add(b, &loc, f, error, "{}", on_done, &done), 0);
        ignore_sigxfsz();
        set_file_size_limit(4096, &old);
        r = archive_batch_commit(b);
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
        /* No job made it, so the commit itself reports the error. */
        assert_int_equal(r, -EFBIG);
        assert_int_equal(done.calls, 1);
        assert_int_equal(done.r, -EFBIG);
        assert_false(exists(root_path(fx, path, "%s/2021/02/02/errbig.log.gz", GUID)));
        assert_false(archive_job_is_archived(fx->a, &loc));
        assert_int_equal(count_temporaries(fx->root), 0);
        archive_batch_free(b);
        free(error);
}

static void test_commit_many_jobs(void **state)
{
        struct fixture *fx = *state;
        struct archive_batch *b = archive_batch_new(fx->a);
        struct done_state done[60] = {{0}};
        char keys[60][16], sha[ARCHIVE_SHA256_HEX_LEN + 1];

        for (int i = 0; i < 60; i++) {
                struct archive_loc loc;
                struct archive_file *f = NULL;

                (void) snprintf(keys[i], sizeof(keys[i]), "job%02d", i);
                loc = make_loc(keys[i], 2024, 12, 1 + i % 3);
                if (i % 4 != 0)
                        f = stream(fx->a, &loc, (const unsigned char *) keys[i], strlen(keys[i]),
                                   NULL, 0, NULL, NULL, sha);
                assert_int_equal(
                        archive_batch_add(b, &loc, f, i % 2 ? "{}" : NULL, "{}", on_done, &done[i]),
                        0);
        }
        assert_int_equal(archive_batch_size(b), 60);
        assert_int_equal(archive_batch_commit(b), 60);
        for (int i = 0; i < 60; i++) {
                struct archive_loc loc = make_loc(keys[i], 2024, 12, 1 + i % 3);
                assert_int_equal(done[i].calls, 1);
                assert_int_equal(done[i].r, 0);
                assert_true(archive_job_is_archived(fx->a, &loc));
        }
        assert_int_equal(count_temporaries(fx->root), 0);
        archive_batch_free(b);
}

static void test_batch_add_refusals_consume_the_log(void **state)
{
        struct fixture *fx = *state;
        struct archive_loc loc = make_loc("dup", 2024, 9, 9);
        struct archive_loc other = make_loc("other", 2024, 9, 9);
        char sha[ARCHIVE_SHA256_HEX_LEN + 1];
        struct done_state done = {0};
        struct archive_batch *b = archive_batch_new(fx->a);
        struct archive_file *f = NULL;

        /* Not finished. */
        assert_int_equal(archive_file_open(fx->a, &loc, &f), 0);
        assert_int_equal(archive_batch_add(b, &loc, f, NULL, "{}", on_done, &done), -EINVAL);
        assert_int_equal(count_temporaries(fx->root), 0);
        /* Another job's file. */
        f = stream(fx->a, &other, (const unsigned char *) "x", 1, NULL, 0, NULL, NULL, sha);
        assert_int_equal(archive_batch_add(b, &loc, f, NULL, "{}", on_done, &done), -EINVAL);
        assert_int_equal(count_temporaries(fx->root), 0);
        /* No record. */
        f = stream(fx->a, &loc, (const unsigned char *) "x", 1, NULL, 0, NULL, NULL, sha);
        assert_int_equal(archive_batch_add(b, &loc, f, NULL, NULL, on_done, &done), -EINVAL);
        assert_int_equal(count_temporaries(fx->root), 0);
        /* The same job twice in one batch. */
        assert_int_equal(archive_batch_add(b, &loc, NULL, NULL, "{}", on_done, &done), 0);
        assert_int_equal(archive_batch_add(b, &loc, NULL, NULL, "{}", on_done, &done), -EEXIST);
        assert_int_equal(archive_batch_commit(b), 1);
        /* A job already archived is never rewritten. */
        f = stream(fx->a, &loc, (const unsigned char *) "x", 1, NULL, 0, NULL, NULL, sha);
        assert_int_equal(archive_batch_add(b, &loc, f, NULL, "{}", on_done, &done), -EEXIST);
        assert_int_equal(count_temporaries(fx->root), 0);
        assert_int_equal(done.calls, 1);
        archive_batch_free(b);
}

static void test_batch_free_cancels_queued_jobs(void **state)
{
        struct fixture *fx = *state;
        struct archive_loc l1 = make_loc("q1", 2024, 10, 10);
        struct archive_loc l2 = make_loc("q2", 2024, 10, 10);
        char sha[ARCHIVE_SHA256_HEX_LEN + 1], path[PATH_MAX];
        struct done_state d1 = {0}, d2 = {0};
        struct archive_batch *b = archive_batch_new(fx->a);
        struct archive_file *f;

        f = stream(fx->a, &l1, (const unsigned char *) "one", 3, NULL, 0, NULL, NULL, sha);
        assert_int_equal(archive_batch_add(b, &l1, f, "{}", "{}", on_done, &d1), 0);
        f = stream(fx->a, &l2, (const unsigned char *) "two", 3, NULL, 0, NULL, NULL, sha);
        assert_int_equal(archive_batch_add(b, &l2, f, NULL, "{}", on_done, &d2), 0);
        assert_int_equal(count_temporaries(fx->root), 2);

        archive_batch_free(b);
        assert_int_equal(d1.calls, 1);
        assert_int_equal(d1.r, -ECANCELED);
        assert_int_equal(d2.calls, 1);
        assert_int_equal(d2.r, -ECANCELED);
        assert_int_equal(count_temporaries(fx->root), 0);
        assert_false(exists(root_path(fx, path, "%s/2024/10/10/q1.log.gz", GUID)));
        assert_false(archive_job_is_archived(fx->a, &l1));
        archive_batch_free(NULL);
}

struct requeue {
        struct archive_batch *b;
        struct archive_loc next;
        int calls;
};

static void on_done_requeue(void *userdata, int r)
{
        struct requeue *q = userdata;

        assert_int_equal(r, 0);
        q->calls++;
        if (q->calls == 1)
                assert_int_equal(
                        archive_batch_add(q->b, &q->next, NULL, NULL, "{}", on_done_requeue, q), 0);
}

/* A done callback may queue the next job on the same batch. */
static void test_done_callback_may_queue(void **state)
{
        struct fixture *fx = *state;
        struct requeue q = {.b = archive_batch_new(fx->a), .next = make_loc("r2", 2024, 1, 1)};
        struct archive_loc first = make_loc("r1", 2024, 1, 1);

        assert_int_equal(archive_batch_add(q.b, &first, NULL, NULL, "{}", on_done_requeue, &q), 0);
        assert_int_equal(archive_batch_commit(q.b), 1);
        assert_int_equal(archive_batch_size(q.b), 1);
        assert_int_equal(archive_batch_commit(q.b), 1);
        assert_int_equal(q.calls, 2);
        assert_true(archive_job_is_archived(fx->a, &q.next));
        archive_batch_free(q.b);
}

static void touch(const char *path)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0640);

        assert_true(fd >= 0);
        (void) close(fd);
}

static void test_sweep_removes_only_temporaries(void **state)
{
        struct fixture *fx = *state;
        static const char *const dirs[] = {
                GUID, GUID "/2024", GUID "/2024/05", GUID "/2024/05/06", GUID "/2024/05/06/deep",
        };
        static const char *const removed[] = {
                ".top.log.gz.tmp",
                GUID "/.x.log.gz.tmp",
                GUID "/2024/.x.log.gz.tmp",
                GUID "/2024/05/.x.json.tmp",
                GUID "/2024/05/06/.x.log.gz.tmp",
                GUID "/2024/05/06/.y.error.json.tmp",
                GUID "/2024/05/06/..tmp",
        };
        static const char *const kept[] = {
                GUID "/2024/05/06/x.log.gz",
                GUID "/2024/05/06/x.tmp",
                GUID "/2024/05/06/.hidden",
                GUID "/2024/05/06/.tmp",
                GUID "/2024/05/06/deep/.beyond.log.gz.tmp",
        };
        char path[PATH_MAX], target[PATH_MAX], outside[1024];
        unsigned n = 99;

        for (size_t i = 0; i < ELEMENTSOF(dirs); i++)
                assert_int_equal(mkdir(root_path(fx, path, "%s", dirs[i]), 0750), 0);
        for (size_t i = 0; i < ELEMENTSOF(removed); i++)
                touch(root_path(fx, path, "%s", removed[i]));
        for (size_t i = 0; i < ELEMENTSOF(kept); i++)
                touch(root_path(fx, path, "%s", kept[i]));
        /* A folder named like a temporary is not a regular file. */
        assert_int_equal(mkdir(root_path(fx, path, "%s/2024/05/06/.d.tmp", GUID), 0750), 0);
        /* Symlinks are neither removed through nor followed. */
        (void) snprintf(outside, sizeof(outside), "%s/outside", fx->dir);
        assert_int_equal(mkdir(outside, 0750), 0);
        (void) snprintf(target, sizeof(target), "%s/.victim.tmp", outside);
        touch(target);
        assert_int_equal(symlink(target, root_path(fx, path, "%s/2024/.link.tmp", GUID)), 0);
        assert_int_equal(symlink(outside, root_path(fx, path, "%s/2024/linkdir", GUID)), 0);
        (void) snprintf(target, sizeof(target), "%s/.victim2.tmp", outside);
        touch(target);
        assert_int_equal(symlink(outside, root_path(fx, path, "%s", GUID2)), 0);

        /* Only under the lock: a live writer's temporaries are not to be taken. */
        assert_int_equal(archive_sweep_temporaries(fx->a, &n), -ENOLCK);
        assert_int_equal(n, 99);
        assert_true(exists(root_path(fx, path, "%s", removed[0])));
        assert_int_equal(archive_lock(fx->a, NULL), 0);
        assert_int_equal(archive_sweep_temporaries(fx->a, &n), 0);
        assert_int_equal(n, ELEMENTSOF(removed));
        for (size_t i = 0; i < ELEMENTSOF(removed); i++)
                assert_false(exists(root_path(fx, path, "%s", removed[i])));
        for (size_t i = 0; i < ELEMENTSOF(kept); i++)
                assert_true(exists(root_path(fx, path, "%s", kept[i])));
        assert_true(exists(root_path(fx, path, "%s/2024/05/06/.d.tmp", GUID)));
        assert_true(exists(root_path(fx, path, "%s/2024/.link.tmp", GUID)));
        assert_true(exists(target)); /* .victim2.tmp, beyond the symlink at GUID2 */
        (void) snprintf(target, sizeof(target), "%s/.victim.tmp", outside);
        assert_true(exists(target));
        assert_true(exists(root_path(fx, path, "%s", ARCHIVE_LOCK_NAME)));

        assert_int_equal(archive_sweep_temporaries(fx->a, &n), 0);
        assert_int_equal(n, 0);
}

/* What a crash leaves behind is swept, and the job can then be archived normally. */
static void test_sweep_after_interrupted_stream(void **state)
{
        struct fixture *fx = *state;
        struct archive_loc loc = make_loc("crashed", 2024, 6, 30);
        char sha[ARCHIVE_SHA256_HEX_LEN + 1], path[PATH_MAX];
        struct archive_batch *b = archive_batch_new(fx->a);
        struct archive_file *f = NULL;
        unsigned n = 0;

        /* A run killed mid-stream and mid-commit leaves temporaries; the next open of the job
         * refuses to share them. */
        assert_int_equal(archive_file_open(fx->a, &loc, &f), 0);
        archive_file_abort(f);
        touch(root_path(fx, path, "%s/2024/06/30/.crashed.log.gz.tmp", GUID));
        touch(root_path(fx, path, "%s/2024/06/30/.crashed.json.tmp", GUID));
        assert_int_equal(archive_file_open(fx->a, &loc, &f), -EEXIST);
        assert_int_equal(archive_lock(fx->a, NULL), 0);
        assert_int_equal(archive_sweep_temporaries(fx->a, &n), 0);
        assert_int_equal(n, 2);
        f = stream(fx->a, &loc, (const unsigned char *) "again", 5, NULL, 0, NULL, NULL, sha);
        assert_int_equal(archive_batch_add(b, &loc, f, NULL, "{}", NULL, NULL), 0);
        assert_int_equal(archive_batch_commit(b), 1);
        assert_true(archive_job_is_archived(fx->a, &loc));
        archive_batch_free(b);
}

static void test_job_is_archived_needs_a_regular_record(void **state)
{
        struct fixture *fx = *state;
        struct archive_loc loc = make_loc("odd", 2024, 2, 3);
        char path[PATH_MAX];

        assert_false(archive_job_is_archived(fx->a, &loc));
        assert_false(archive_job_is_archived(NULL, &loc));
        assert_int_equal(mkdir(root_path(fx, path, "%s", GUID), 0750), 0);
        assert_int_equal(mkdir(root_path(fx, path, "%s/2024", GUID), 0750), 0);
        assert_int_equal(mkdir(root_path(fx, path, "%s/2024/02", GUID), 0750), 0);
        assert_int_equal(mkdir(root_path(fx, path, "%s/2024/02/03", GUID), 0750), 0);
        assert_int_equal(mkdir(root_path(fx, path, "%s/2024/02/03/odd.json", GUID), 0750), 0);
        assert_false(archive_job_is_archived(fx->a, &loc));
        assert_int_equal(rmdir(path), 0);
        assert_int_equal(symlink("/etc/hostname", path), 0);
        assert_false(archive_job_is_archived(fx->a, &loc));
        assert_int_equal(unlink(path), 0);
        touch(path);
        assert_true(archive_job_is_archived(fx->a, &loc));
}

/* The answer follows the folder at its path, not the folder it looked in last time. */
static void test_job_is_archived_follows_swapped_folders(void **state)
{
        struct fixture *fx = *state;
        struct archive_loc loc = make_loc("swapped", 2024, 7, 8);
        struct archive_loc other = make_loc("other", 2024, 7, 8);
        struct archive_batch *b = archive_batch_new(fx->a);
        char day[PATH_MAX], old[PATH_MAX + 8];

        assert_int_equal(archive_batch_add(b, &loc, NULL, NULL, "{}", NULL, NULL), 0);
        assert_int_equal(archive_batch_commit(b), 1);
        archive_batch_free(b);
        assert_true(archive_job_is_archived(fx->a, &loc));
        assert_false(archive_job_is_archived(fx->a, &other));

        root_path(fx, day, "%s/2024/07/08", GUID);
        (void) snprintf(old, sizeof(old), "%s.old", day);
        assert_int_equal(rename(day, old), 0);
        assert_false(archive_job_is_archived(fx->a, &loc)); /* moved away */
        assert_int_equal(mkdir(day, 0750), 0);
        assert_false(archive_job_is_archived(fx->a, &loc)); /* an empty folder in its place */
        assert_int_equal(rmdir(day), 0);
        assert_int_equal(symlink(old, day), 0);
        assert_false(archive_job_is_archived(fx->a, &loc)); /* reached through a symlink */
        assert_int_equal(unlink(day), 0);
        assert_int_equal(rename(old, day), 0);
        assert_true(archive_job_is_archived(fx->a, &loc)); /* back */
        assert_int_equal(unlink(root_path(fx, old, "%s/2024/07/08/swapped.json", GUID)), 0);
        assert_false(archive_job_is_archived(fx->a, &loc));
}

/* --- One writer per archive --- */

static pid_t read_pid_file(const char *path)
{
        size_t len;
        unsigned char *buf = read_all(path, &len);
        long pid = strtol((char *) buf, NULL, 10);

        free(buf);
        return (pid_t) pid;
}

/* A second open of the archive (in this process, as the flock is per open file) is refused
 * and names the holder; it gets the lock once the first one is freed. */
static void test_lock_second_writer_is_refused(void **state)
{
        struct fixture *fx = *state;
        struct archive *b = NULL;
        char path[PATH_MAX];
        pid_t pid = 12345;
        unsigned n = 99;

        assert_int_equal(archive_lock(fx->a, &pid), 0);
        assert_int_equal(pid, 12345);                   /* untouched on success */
        assert_int_equal(archive_lock(fx->a, NULL), 0); /* already ours */
        root_path(fx, path, "%s", ARCHIVE_LOCK_NAME);
        assert_int_equal(mode_of(path), 0640);
        assert_int_equal(read_pid_file(path), getpid());

        assert_int_equal(archive_open(fx->root, 6, 0, &b), 0);
        assert_int_equal(archive_lock(b, &pid), -EBUSY);
        assert_int_equal(pid, getpid());
        assert_int_equal(archive_lock(b, NULL), -EBUSY);
        assert_int_equal(archive_sweep_temporaries(b, &n), -ENOLCK);

        archive_free(fx->a);
        fx->a = NULL;
        pid = 0;
        assert_int_equal(archive_lock(b, &pid), 0);
        assert_int_equal(pid, 0);
        assert_int_equal(archive_sweep_temporaries(b, &n), 0);
        fx->a = b;
}

/* The holder is another process (flock on its own open of the file, as another
 * connect-job-archiver does): refused with its PID; free again once it is gone, even though
 * it never unlocked (the kernel drops a dead process's locks). */
static void test_lock_names_another_process(void **state)
{
        struct fixture *fx = *state;
        int ready[2], quit[2], status;
        char path[PATH_MAX], c = 0;
        pid_t child, pid = 0;

        assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
        assert_int_equal(pipe2(quit, O_CLOEXEC), 0);
        root_path(fx, path, "%s", ARCHIVE_LOCK_NAME);
        child = fork();
        assert_true(child >= 0);
        if (child == 0) {
                /* Only system calls here: the parent has threads. */
                char buf[16];

                (void) close(ready[0]);
                (void) close(quit[1]); /* or its own copy would keep the pipe open */
                int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640), len;

                if (fd < 0 || flock(fd, LOCK_EX) < 0)
                        _exit(1);
                len = snprintf(buf, sizeof(buf), "%d\n", (int) getpid());
                if (write(fd, buf, (size_t) len) != len || write(ready[1], "x", 1) != 1)
                        _exit(1);
                (void) read(quit[0], &c, 1);
                _exit(0);
        }
        (void) close(ready[1]);
        (void) close(quit[0]);
        assert_int_equal(read(ready[0], &c, 1), 1);

        assert_int_equal(archive_lock(fx->a, &pid), -EBUSY);
        assert_int_equal(pid, child);

        /* The child dies without unlocking; its PID stays in the file until we take over. */
        (void) close(quit[1]);
        assert_int_equal(waitpid(child, &status, 0), child);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        assert_int_equal(archive_lock(fx->a, &pid), 0);
        assert_int_equal(read_pid_file(path), getpid());
        (void) close(ready[0]);
}

/* The lock file is never opened through a symlink (nor is anything but a regular file
 * locked), and retention and the sweep leave it alone. */
static void test_lock_file_is_no_symlink_and_stays(void **state)
{
        struct fixture *fx = *state;
        char path[PATH_MAX], target[PATH_MAX];
        unsigned n = 0;

        (void) snprintf(target, sizeof(target), "%s/elsewhere", fx->dir);
        root_path(fx, path, "%s", ARCHIVE_LOCK_NAME);
        assert_int_equal(symlink(target, path), 0);
        assert_int_equal(archive_lock(fx->a, NULL), -ELOOP);
        assert_false(exists(target));
        assert_int_equal(unlink(path), 0);
        assert_int_equal(mkfifo(path, 0640), 0);
        assert_int_equal(archive_lock(fx->a, NULL), -EBADF);
        assert_int_equal(unlink(path), 0);

        assert_int_equal(archive_lock(fx->a, NULL), 0);
        assert_int_equal(archive_sweep_temporaries(fx->a, &n), 0);
        assert_int_equal(archive_prune(fx->a, 9999, 12, 31, &n), 0);
        assert_true(exists(path));
        assert_int_equal(read_pid_file(path), getpid());
}

/* --- Rollback removes only what it created --- */

/* Stands in for another writer: a complete final file put in place behind our back. */
static void put_file(const char *path, const char *data)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);

        assert_true(fd >= 0);
        assert_int_equal(write(fd, data, strlen(data)), (ssize_t) strlen(data));
        (void) close(fd);
}

static void assert_file_is(const char *path, const char *data)
{
        size_t len;
        unsigned char *buf = read_all(path, &len);

        assert_int_equal(len, strlen(data));
        assert_memory_equal(buf, data, len);
        free(buf);
}

/*
 * Another writer (no lock between us) archives the same job while ours waits in the batch:
 * its .log.gz is in place when we commit. Ours fails with EEXIST without replacing or
 * removing any of its files; ours leave no trace.
 */
static void test_commit_never_replaces_another_writers_log(void **state)
{
        struct fixture *fx = *state;
        struct archive_loc loc = make_loc("twice", 2024, 9, 1);
        char sha[ARCHIVE_SHA256_HEX_LEN + 1], log[PATH_MAX], err[PATH_MAX], rec[PATH_MAX];
        struct archive_batch *b = archive_batch_new(fx->a);
        struct done_state done = {0};
        struct archive_file *f;

        f = stream(fx->a, &loc, (const unsigned char *) "ours", 4, NULL, 0, NULL, NULL, sha);
        assert_int_equal(
                archive_batch_add(b, &loc, f, "{\"ours\":1}", "{\"ours\":1}", on_done, &done), 0);
        put_file(root_path(fx, log, "%s/2024/09/01/twice.log.gz", GUID), "theirs");
        put_file(root_path(fx, err, "%s/2024/09/01/twice.error.json", GUID), "{\"theirs\":1}");
        put_file(root_path(fx, rec, "%s/2024/09/01/twice.json", GUID), "{\"theirs\":1}");
        assert_int_equal(archive_batch_commit(b), -EEXIST);
        assert_int_equal(done.calls, 1);
        assert_int_equal(done.r, -EEXIST);
        assert_file_is(log, "theirs");
        assert_file_is(err, "{\"theirs\":1}");
        assert_file_is(rec, "{\"theirs\":1}");
        assert_int_equal(count_temporaries(fx->root), 0);
        archive_batch_free(b);
}

/*
 * The other writer's record lands between our log's rename and our record's: our record
 * rename fails, and the rollback takes back our own log and error file (their names were
 * free, so they hold our files) but never the other writer's record.
 */
static void test_rollback_keeps_another_writers_record(void **state)
{
        struct fixture *fx = *state;
        struct archive_loc loc = make_loc("raced", 2024, 9, 2);
        char sha[ARCHIVE_SHA256_HEX_LEN + 1], path[PATH_MAX], rec[PATH_MAX];
        struct archive_batch *b = archive_batch_new(fx->a);
        struct done_state done = {0};
        struct archive_file *f;

        /* Their record arrives once ours is queued: our log and error renames (names still
         * free) succeed, our record's does not. */
        f = stream(fx->a, &loc, (const unsigned char *) "ours", 4, NULL, 0, NULL, NULL, sha);
        assert_int_equal(archive_batch_add(b, &loc, f, "{}", "{\"ours\":1}", on_done, &done), 0);
        put_file(root_path(fx, rec, "%s/2024/09/02/raced.json", GUID), "{\"theirs\":1}");
        assert_int_equal(archive_batch_commit(b), -EEXIST);
        assert_int_equal(done.r, -EEXIST);
        assert_file_is(rec, "{\"theirs\":1}");
        assert_false(exists(root_path(fx, path, "%s/2024/09/02/raced.log.gz", GUID)));
        assert_false(exists(root_path(fx, path, "%s/2024/09/02/raced.error.json", GUID)));
        assert_int_equal(count_temporaries(fx->root), 0);
        archive_batch_free(b);
}

/*
 * Under the lock, a log and error file without a record are what a writer killed between
 * its renames left: nobody's. The retry replaces them and the job is archived.
 */
static void test_commit_under_lock_replaces_a_dead_writers_orphans(void **state)
{
        struct fixture *fx = *state;
        struct archive_loc loc = make_loc("orphan", 2024, 9, 3);
        char sha[ARCHIVE_SHA256_HEX_LEN + 1], log[PATH_MAX], err[PATH_MAX];
        struct archive_batch *b = archive_batch_new(fx->a);
        struct done_state done = {0};
        struct archive_file *f;
        unsigned char *back;
        size_t len;

        assert_int_equal(archive_lock(fx->a, NULL), 0);
        f = stream(fx->a, &loc, (const unsigned char *) "fresh", 5, NULL, 0, NULL, NULL, sha);
        put_file(root_path(fx, log, "%s/2024/09/03/orphan.log.gz", GUID), "stale");
        put_file(root_path(fx, err, "%s/2024/09/03/orphan.error.json", GUID), "stale");
        assert_int_equal(archive_batch_add(b, &loc, f, "{\"e\":1}", "{}", on_done, &done), 0);
        assert_int_equal(archive_batch_commit(b), 1);
        assert_int_equal(done.r, 0);
        back = gunzip(log, &len);
        assert_int_equal(len, 5);
        assert_memory_equal(back, "fresh", 5);
        free(back);
        assert_file_is(err, "{\"e\":1}");
        assert_true(archive_job_is_archived(fx->a, &loc));
        archive_batch_free(b);
}

/* --- No symlink escapes --- */

/*
 * A symlink planted at one folder of a job's way (level 1: <guid>, 2: YYYY, 3: MM, 4: DD)
 * pointing at a folder outside the archive that holds the rest of the layout, so that
 * following it would "work". Returns the link's path relative to the root.
 */
static const char *plant_symlink(struct fixture *fx, int level, char *outside, char *rel,
                                 size_t size)
{
        static const char *const parts[] = {GUID, "2024", "05", "06"};
        char path[PATH_MAX], sub[PATH_MAX];
        size_t n = 0;

        (void) snprintf(outside, PATH_MAX, "%s/outside", fx->dir);
        assert_int_equal(mkdir(outside, 0750), 0);
        /* The real folders above the link, inside the archive. */
        rel[0] = '\0';
        for (int i = 0; i < level - 1; i++) {
                n += (size_t) snprintf(rel + n, size - n, "%s%s", i ? "/" : "", parts[i]);
                (void) mkdir(root_path(fx, path, "%s", rel), 0750);
        }
        /* The rest of the layout, beyond the link, outside. */
        (void) snprintf(sub, sizeof(sub), "%s", outside);
        for (int i = level; i < 4; i++) {
                size_t m = strlen(sub);
                (void) snprintf(sub + m, sizeof(sub) - m, "/%s", parts[i]);
                assert_int_equal(mkdir(sub, 0750), 0);
        }
        (void) snprintf(rel + n, size - n, "%s%s", level > 1 ? "/" : "", parts[level - 1]);
        assert_int_equal(symlink(outside, root_path(fx, path, "%s", rel)), 0);
        return rel;
}

/* Entries in dir, of any kind. */
static unsigned count_files(const char *dir)
{
        unsigned n = 0;
        DIR *d;
        struct dirent *de;

        d = opendir(dir);
        assert_non_null(d);
        while ((de = readdir(d)))
                n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
        (void) closedir(d);
        return n;
}

static void check_symlink_refused(struct fixture *fx, int level)
{
        struct archive_loc loc = make_loc("victim", 2024, 5, 6);
        char outside[PATH_MAX], rel[PATH_MAX], where[PATH_MAX], path[PATH_MAX + 16], day[PATH_MAX];
        struct archive_batch *b = archive_batch_new(fx->a);
        struct done_state done = {0};
        struct archive_file *f = NULL;

        plant_symlink(fx, level, outside, rel, sizeof(rel));
        /* Where the job's files would land through the link. */
        (void) snprintf(day, sizeof(day), "%s", outside);
        for (int i = level; i < 4; i++) {
                static const char *const parts[] = {GUID, "2024", "05", "06"};
                size_t m = strlen(day);
                (void) snprintf(day + m, sizeof(day) - m, "/%s", parts[i]);
        }

        /* The log, a record-only job, and the "archived" question all refuse the link. */
        assert_int_equal(archive_file_open(fx->a, &loc, &f), -ELOOP);
        assert_null(f);
        assert_int_equal(archive_batch_add(b, &loc, NULL, NULL, "{}", on_done, &done), -ELOOP);
        assert_int_equal(done.calls, 0);
        assert_int_equal(archive_batch_size(b), 0);
        (void) snprintf(path, sizeof(path), "%s/victim.json", day);
        put_file(path, "{}"); /* a record beyond the link does not count */
        assert_false(archive_job_is_archived(fx->a, &loc));
        assert_int_equal(unlink(path), 0);

        /* The message can name the link. */
        assert_int_equal(archive_loc_symlink(fx->a, &loc, where, sizeof(where)), 0);
        assert_string_equal(where, rel);

        /* The target is untouched: nothing written or created beyond the link. */
        assert_int_equal(count_files(day), 0);
        archive_batch_free(b);

        /* Once the link is gone, the same job goes through. */
        assert_int_equal(unlink(root_path(fx, path, "%s", rel)), 0);
        assert_int_equal(archive_loc_symlink(fx->a, &loc, where, sizeof(where)), -ENOENT);
        b = archive_batch_new(fx->a);
        assert_int_equal(archive_batch_add(b, &loc, NULL, NULL, "{}", on_done, &done), 0);
        assert_int_equal(archive_batch_commit(b), 1);
        assert_true(archive_job_is_archived(fx->a, &loc));
        assert_int_equal(count_files(day), 0);
        archive_batch_free(b);
}

static void test_symlink_at_guid_is_refused(void **state)
{
        check_symlink_refused(*state, 1);
}

static void test_symlink_at_year_is_refused(void **state)
{
        check_symlink_refused(*state, 2);
}

static void test_symlink_at_month_is_refused(void **state)
{
        check_symlink_refused(*state, 3);
}

static void test_symlink_at_day_is_refused(void **state)
{
        check_symlink_refused(*state, 4);
}

/* A file where a folder belongs is ENOTDIR, not a symlink; a dangling symlink is ELOOP. */
static void test_non_folders_on_the_way(void **state)
{
        struct fixture *fx = *state;
        struct archive_loc loc = make_loc("k", 2024, 5, 6);
        char path[PATH_MAX], where[PATH_MAX];
        struct archive_file *f = NULL;

        touch(root_path(fx, path, "%s", GUID));
        assert_int_equal(archive_file_open(fx->a, &loc, &f), -ENOTDIR);
        assert_int_equal(archive_loc_symlink(fx->a, &loc, where, sizeof(where)), -ENOENT);
        assert_int_equal(unlink(path), 0);
        assert_int_equal(symlink("/nonexistent/cja", path), 0);
        assert_int_equal(archive_file_open(fx->a, &loc, &f), -ELOOP);
        assert_false(exists("/nonexistent/cja"));
        assert_null(f);
}

static void test_dir_open_beneath(void **state)
{
        struct fixture *fx = *state;
        int root = open(fx->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC), fd;
        char path[PATH_MAX];

        assert_true(root >= 0);
        assert_int_equal(archive_dir_open_beneath(root, "a/b/c", false), -ENOENT);
        fd = archive_dir_open_beneath(root, "a/b/c", true);
        assert_true(fd >= 0);
        (void) close(fd);
        assert_int_equal(mode_of(root_path(fx, path, "a/b/c")), 0750 & ~022);
        fd = archive_dir_open_beneath(root, "a/b", false);
        assert_true(fd >= 0);
        (void) close(fd);
        static const char *const bad[] = {"", "/a", "a//b", "a/", "a/./b", "a/../a", "..", "."};
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(archive_dir_open_beneath(root, bad[i], true), -EINVAL);
        assert_int_equal(archive_dir_open_beneath(-1, "a", false), -EINVAL);
        assert_int_equal(symlink(".", root_path(fx, path, "a/self")), 0);
        assert_int_equal(archive_dir_open_beneath(root, "a/self/b", false), -ELOOP);
        assert_int_equal(archive_dir_open_beneath(root, "a/self", true), -ELOOP);
        (void) close(root);
}

/* The root itself may be a symlink (operators do that): jobs land in its target. */
static void test_root_may_be_a_symlink(void **state)
{
        struct fixture *fx = *state;
        struct archive_loc loc = make_loc("viaroot", 2024, 5, 6);
        char link[PATH_MAX], path[PATH_MAX];
        struct archive *a = NULL;
        struct archive_batch *b;

        (void) snprintf(link, sizeof(link), "%s/rootlink", fx->dir);
        assert_int_equal(symlink(fx->root, link), 0);
        archive_free(fx->a);
        fx->a = NULL;
        assert_int_equal(archive_open(link, 6, 0, &a), 0);
        assert_int_equal(archive_lock(a, NULL), 0);
        b = archive_batch_new(a);
        assert_int_equal(archive_batch_add(b, &loc, NULL, NULL, "{}", NULL, NULL), 0);
        assert_int_equal(archive_batch_commit(b), 1);
        archive_batch_free(b);
        assert_true(archive_job_is_archived(a, &loc));
        assert_true(exists(root_path(fx, path, "%s/2024/05/06/viaroot.json", GUID)));
        assert_true(exists(root_path(fx, path, "%s", ARCHIVE_LOCK_NAME)));
        fx->a = a;
}

/* Retention never removes anything through a symlink, at any level. */
static void test_prune_refuses_symlinks(void **state)
{
        struct fixture *fx = *state;

        for (int level = 1; level <= 4; level++) {
                char outside[PATH_MAX], rel[PATH_MAX], day[PATH_MAX], path[PATH_MAX + 16],
                        cmd[3 * PATH_MAX];
                static const char *const parts[] = {GUID, "2024", "05", "06"};
                unsigned removed = 99;

                plant_symlink(fx, level, outside, rel, sizeof(rel));
                (void) snprintf(day, sizeof(day), "%s", outside);
                for (int i = level; i < 4; i++) {
                        size_t m = strlen(day);
                        (void) snprintf(day + m, sizeof(day) - m, "/%s", parts[i]);
                }
                (void) snprintf(path, sizeof(path), "%s/old.json", day);
                put_file(path, "{}");
                assert_int_equal(archive_prune(fx->a, 2030, 1, 1, &removed), 0);
                assert_int_equal(removed, 0);
                assert_true(exists(path));
                assert_true(exists(root_path(fx, cmd, "%s", rel)));
                (void) snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s/%s'", outside, fx->root, GUID);
                assert_int_equal(system(cmd), 0);
        }
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
        const struct CMUnitTest tests[] = {
                T(test_open_creates_missing_root),
                T(test_free_space),
                T(test_open_rejects_bad_arguments),
                T(test_open_rejects_read_only_root),
                T(test_stream_round_trip_uneven_chunks),
                T(test_stream_empty_log),
                T(test_stream_binary_bytes),
                T(test_stream_large_50mb),
                T(test_stream_levels_1_and_9),
                T(test_stream_header_is_deterministic),
                T(test_file_layout_and_modes),
                T(test_file_second_open_of_same_job_fails),
                T(test_file_abort_removes_temporary),
                T(test_unsafe_locations_are_refused),
                T(test_file_write_error_is_errno),
                T(test_streams_interleaved_on_threads),
                T(test_streams_interleaved_without_threads),
                T(test_abort_while_compressing),
                T(test_commit_writes_all_files),
                T(test_commit_without_error_or_log),
                T(test_commit_record_rename_failure_rolls_back),
                T(test_commit_record_write_failure_rolls_back),
                T(test_commit_error_write_failure_returns_errno),
                T(test_commit_many_jobs),
                T(test_batch_add_refusals_consume_the_log),
                T(test_batch_free_cancels_queued_jobs),
                T(test_done_callback_may_queue),
                T(test_sweep_removes_only_temporaries),
                T(test_sweep_after_interrupted_stream),
                T(test_job_is_archived_needs_a_regular_record),
                T(test_job_is_archived_follows_swapped_folders),
                T(test_lock_second_writer_is_refused),
                T(test_lock_names_another_process),
                T(test_lock_file_is_no_symlink_and_stays),
                T(test_commit_never_replaces_another_writers_log),
                T(test_rollback_keeps_another_writers_record),
                T(test_commit_under_lock_replaces_a_dead_writers_orphans),
                T(test_symlink_at_guid_is_refused),
                T(test_symlink_at_year_is_refused),
                T(test_symlink_at_month_is_refused),
                T(test_symlink_at_day_is_refused),
                T(test_non_folders_on_the_way),
                T(test_dir_open_beneath),
                T(test_root_may_be_a_symlink),
                T(test_prune_refuses_symlinks),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}

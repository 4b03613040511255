#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
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

#include "config.h"
#include "gzblock.h"
#include "macro.h"
#include "testutil.h"

void clear_environment(void)
{
        (void) unsetenv("CONNECT_SERVER");
        (void) unsetenv("CONNECT_API_KEY");
        (void) unsetenv("CREDENTIALS_DIRECTORY");
        (void) unsetenv("CJA_TEST_KEY");
        (void) unsetenv("AWS_ACCESS_KEY_ID");
        (void) unsetenv("AWS_SECRET_ACCESS_KEY");
}

int tmpdir_setup(void **state)
{
        struct tmpdir *fx = calloc(1, sizeof(*fx));

        if (!fx)
                return -1;
        (void) snprintf(fx->dir, sizeof(fx->dir), "/tmp/cja-test-config-XXXXXX");
        if (!mkdtemp(fx->dir)) {
                free(fx);
                return -1;
        }
        clear_environment();
        *state = fx;
        return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        (void) st;
        (void) flag;
        (void) ftw;
        return remove(path);
}

void rm_rf(const char *dir)
{
        (void) nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int tmpdir_teardown(void **state)
{
        struct tmpdir *fx = *state;

        rm_rf(fx->dir);
        clear_environment();
        free(fx);
        return 0;
}

char *read_fixture(const char *name, size_t *ret_len)
{
        char path[512];
        FILE *f;
        char *buf;
        long n;

        (void) snprintf(path, sizeof(path), "%s/%s", CJA_FIXTURES, name);
        f = fopen(path, "rb");
        assert_non_null(f);
        assert_int_equal(fseek(f, 0, SEEK_END), 0);
        n = ftell(f);
        assert_true(n >= 0);
        rewind(f);
        buf = malloc((size_t) n + 1);
        assert_non_null(buf);
        assert_int_equal(fread(buf, 1, (size_t) n, f), (size_t) n);
        buf[n] = '\0';
        fclose(f);
        *ret_len = (size_t) n;
        return buf;
}

struct config *parse_ok(const char *yaml)
{
        struct config_error err = {{0}};
        struct config *c = NULL;
        int r;

        r = config_parse("config.yaml", yaml, strlen(yaml), &c, &err);
        if (r < 0)
                fail_msg("unexpected rejection (%d): %s", r, err.message);
        assert_non_null(c);
        return c;
}

char *write_file(const char *dir, const char *name, const char *data, size_t len, mode_t mode)
{
        char *path = NULL;
        int fd;

        assert_true(asprintf(&path, "%s/%s", dir, name) > 0);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, data, len), (ssize_t) len);
        assert_int_equal(fchmod(fd, mode), 0);
        assert_int_equal(close(fd), 0);
        return path;
}

char *write_text(const char *dir, const char *name, const char *text, mode_t mode)
{
        return write_file(dir, name, text, strlen(text), mode);
}

int testutil_read_gz(const char *path, unsigned char **ret, size_t *ret_len)
{
        _cleanup_(gzblock_reader_freep) struct gzblock_reader *r = NULL;
        unsigned char *all = NULL;
        size_t len = 0;
        ssize_t n;
        int fd = open(path, O_RDONLY | O_CLOEXEC);

        assert_true(fd >= 0);
        assert_int_equal(gzblock_reader_new(fd, &r), 0);
        for (;;) {
                const void *buf;
                n = gzblock_read(r, &buf);
                if (n <= 0)
                        break;
                assert_true((size_t) n <= GZBLOCK_USIZE_MAX);
                all = realloc(all, len + (size_t) n);
                assert_non_null(all);
                memcpy(all + len, buf, (size_t) n);
                len += (size_t) n;
        }
        if (n == 0) {
                const void *buf;
                assert_int_equal(gzblock_read(r, &buf), 0); /* the end stays the end */
                struct stat st;
                assert_int_equal(fstat(fd, &st), 0);
                assert_int_equal(gzblock_reader_offset(r), st.st_size);
        }
        close(fd);
        if (n < 0) {
                free(all);
                return (int) n;
        }
        *ret = all;
        *ret_len = len;
        return 0;
}

void gz_done_record(void *userdata, int r, const struct gzjob_result *res)
{
        struct gz_done *s = userdata;

        s->calls++;
        s->r = r;
        if (r == 0)
                s->res = *res;
        if (s->self)
                gzjob_abort(s->self); /* must be a no-op: the pool frees it after this */
}

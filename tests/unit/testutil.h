#pragma once

/*
 * Helpers the unit tests share (tests/unit/testutil.c, linked into every unit test). They
 * assert with cmocka, so they are for test code only.
 */

#include <stddef.h>
#include <sys/types.h>

#include "gzpool.h"

struct config;

/* What a gzjob's done reported, for gz_done_record. */
struct gz_done {
        int calls;
        int r;
        struct gzjob_result res;
        struct gzjob *self; /* when set, done aborts it: a no-op from its own done */
};
/* A gzjob_done_fn filling the struct gz_done at userdata. */
void gz_done_record(void *userdata, int r, const struct gzjob_result *res);

/* A mkdtemp folder under /tmp for one test, removed with all it holds by tmpdir_teardown. */
struct tmpdir {
        char dir[64];
};
/* cmocka setup/teardown: *state is a struct tmpdir; both clear the environment too. */
int tmpdir_setup(void **state);
int tmpdir_teardown(void **state);

/* Unsets the variables config.c and apikey.c read, so each test starts without them. */
void clear_environment(void);

/* Removes dir and everything below it, without following symlinks. */
void rm_rf(const char *dir);

/* Reads tests/fixtures/<name> whole (NUL-terminated; free it). */
char *read_fixture(const char *name, size_t *ret_len);

/* Parses yaml as "config.yaml" and asserts that it is accepted (config_free it). */
struct config *parse_ok(const char *yaml);

/* Writes dir/name with exactly mode and returns the path (free it). */
char *write_file(const char *dir, const char *name, const char *data, size_t len, mode_t mode);
char *write_text(const char *dir, const char *name, const char *text, mode_t mode);

/*
 * Reads path whole with gzblock's reader (any gzip file), asserting that the end stays the
 * end and that the reader consumed the whole file. Returns 0 and the bytes (free them), or
 * the reader's error.
 */
int testutil_read_gz(const char *path, unsigned char **ret, size_t *ret_len);

/* The store interface's promises (store.h, P1-P5), on the local store. */

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

#include "macro.h"
#include "store.h"
#include "testutil.h"

#define DAY "g/2024/03/15"

struct fixture {
        struct tmpdir t;
        struct store *s;
};

static int setup(void **state)
{
        struct fixture *fx = calloc(1, sizeof(*fx));

        assert_non_null(fx);
        (void) snprintf(fx->t.dir, sizeof(fx->t.dir), "/tmp/cja-test-store-XXXXXX");
        assert_non_null(mkdtemp(fx->t.dir));
        assert_int_equal(store_local_open(fx->t.dir, &fx->s), 0);
        *state = fx;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *fx = *state;

        store_free(fx->s);
        rm_rf(fx->t.dir);
        free(fx);
        return 0;
}

static bool exists(struct fixture *fx, const char *rel)
{
        char path[512];
        struct stat st;

        (void) snprintf(path, sizeof(path), "%s/%s", fx->t.dir, rel);
        return lstat(path, &st) == 0;
}

static char *slurp(struct fixture *fx, const char *rel)
{
        char path[512], *buf = calloc(1, 4096);
        int fd;

        assert_non_null(buf);
        (void) snprintf(path, sizeof(path), "%s/%s", fx->t.dir, rel);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_true(read(fd, buf, 4095) >= 0);
        close(fd);
        return buf;
}

static struct store_dir *day(struct fixture *fx)
{
        struct store_dir *d = NULL;

        assert_int_equal(store_dir_open(fx->s, DAY, STORE_CREATE, &d), 0);
        return d;
}

static void put(struct store_dir *d, const char *name, const char *text)
{
        assert_int_equal(store_put_tmp(d, name, text, strlen(text)), 0);
}

static void test_kind(void **state)
{
        struct fixture *fx = *state;

        assert_string_equal(fx->s->ops->kind, "local");
}

/* P1: a temporary is not under its final name, nor seen by has(), list_dirs() or list_files(). */
static void test_temporary_is_invisible(void **state)
{
        struct fixture *fx = *state;
        struct store_dir *d = day(fx);
        char **names = NULL;
        size_t n = 0;
        int fd = -1;

        assert_int_equal(store_tmp_create(d, "k.json", &fd), 0);
        assert_int_equal(write(fd, "{}", 2), 2);
        close(fd);
        assert_false(exists(fx, DAY "/k.json"));
        assert_int_equal(store_has(fx->s, DAY, "k.json"), 0);
        assert_int_equal(store_list_dirs(fx->s, DAY, &names, &n), 0);
        assert_int_equal(n, 0);
        store_names_free(names, n);
        assert_int_equal(store_list_files(fx->s, DAY, &names, &n), 0);
        assert_int_equal(n, 0);
        store_names_free(names, n);

        /* Exclusive: a second temporary of the same name is refused, the first stays. */
        assert_int_equal(store_tmp_create(d, "k.json", &fd), -EEXIST);

        assert_int_equal(store_publish(d, "k.json", 0), 0);
        assert_int_equal(store_has(fx->s, DAY, "k.json"), 1);
        /* Final names only, sorted; folders are list_dirs()' business. */
        put(d, "a.log.gz", "x");
        assert_int_equal(store_publish(d, "a.log.gz", 0), 0);
        put(d, "z.json", "x");
        assert_int_equal(store_list_files(fx->s, DAY, &names, &n), 0);
        assert_int_equal(n, 2);
        assert_string_equal(names[0], "a.log.gz");
        assert_string_equal(names[1], "k.json");
        store_names_free(names, n);
        assert_int_equal(store_tmp_remove(d, "z.json"), 0);
        assert_int_equal(store_list_files(fx->s, "g/2024/03", &names, &n), 0);
        assert_int_equal(n, 0);
        store_names_free(names, n);
        assert_int_equal(store_list_files(fx->s, "g/2024/03/16", &names, &n), -ENOENT);
        char *text = slurp(fx, DAY "/k.json");
        assert_string_equal(text, "{}");
        free(text);
        /* The temporary is gone once published: publishing again has nothing to publish. */
        assert_int_equal(store_publish(d, "k.json", 0), -ENOENT);
        store_dir_close(d);
}

/* P2: publish never replaces, unless asked to (and then atomically). */
static void test_publish_never_replaces(void **state)
{
        struct fixture *fx = *state;
        struct store_dir *d = day(fx);
        char *text;

        put(d, "k.json", "first");
        assert_int_equal(store_publish(d, "k.json", 0), 0);
        put(d, "k.json", "second");
        assert_int_equal(store_publish(d, "k.json", 0), -EEXIST);
        text = slurp(fx, DAY "/k.json");
        assert_string_equal(text, "first");
        free(text);
        /* The loser's temporary is left for its owner to remove. */
        assert_int_equal(store_tmp_remove(d, "k.json"), 0);
        assert_int_equal(store_tmp_remove(d, "k.json"), -ENOENT);

        put(d, "k.log.gz", "orphan");
        assert_int_equal(store_publish(d, "k.log.gz", 0), 0);
        put(d, "k.log.gz", "retry");
        assert_int_equal(store_publish(d, "k.log.gz", STORE_REPLACE), 0);
        text = slurp(fx, DAY "/k.log.gz");
        assert_string_equal(text, "retry");
        free(text);
        store_dir_close(d);
}

/* P3: sync answers for every folder; folders on one file system share the outcome. */
static void test_sync(void **state)
{
        struct fixture *fx = *state;
        struct store_dir *d = day(fx), *e = NULL, *dirs[2];
        int results[2] = {-1, -1};

        assert_int_equal(store_dir_open(fx->s, "g/2024/03/16", STORE_CREATE, &e), 0);
        put(d, "a.json", "a");
        put(e, "b.json", "b");
        dirs[0] = d;
        dirs[1] = e;
        assert_int_equal(store_sync(fx->s, dirs, 2, results), 0);
        assert_int_equal(results[0], 0);
        assert_int_equal(results[1], 0);
        assert_int_equal(store_sync(fx->s, dirs, 0, results), 0);
        store_dir_close(d);
        store_dir_close(e);
}

/* P4: no folder is reached through a symlink, for writing or for looking. */
static void test_symlinks_refused(void **state)
{
        struct fixture *fx = *state;
        struct store_dir *d = day(fx), *e = NULL;
        char path[512], target[512], where[256];
        char **names = NULL;
        size_t n = 0;

        put(d, "k.json", "{}");
        assert_int_equal(store_publish(d, "k.json", 0), 0);
        store_dir_close(d);
        (void) snprintf(target, sizeof(target), "%s/g/2024", fx->t.dir);
        (void) snprintf(path, sizeof(path), "%s/h", fx->t.dir);
        assert_int_equal(mkdir(path, 0750), 0);
        (void) snprintf(path, sizeof(path), "%s/h/2024", fx->t.dir);
        assert_int_equal(symlink(target, path), 0);

        assert_int_equal(store_dir_open(fx->s, "h/2024/03/15", 0, &e), -ELOOP);
        assert_int_equal(store_dir_open(fx->s, "h/2024/03/15", STORE_CREATE, &e), -ELOOP);
        assert_int_equal(store_has(fx->s, "h/2024/03/15", "k.json"), 0);
        assert_int_equal(store_list_dirs(fx->s, "h/2024", &names, &n), -ELOOP);
        assert_int_equal(store_remove_dir(fx->s, "h/2024/03/15", STORE_REMOVE_FILES), -ELOOP);
        assert_int_equal(store_find_symlink(fx->s, "h/2024/03/15", where, sizeof(where)), 0);
        assert_string_equal(where, "h/2024");
        assert_int_equal(store_find_symlink(fx->s, DAY, where, sizeof(where)), -ENOENT);
        /* Nothing was removed through it. */
        assert_true(exists(fx, DAY "/k.json"));
        /* Malformed paths are refused, not resolved. */
        assert_int_equal(store_dir_open(fx->s, "g/../g", 0, &e), -EINVAL);
        assert_int_equal(store_dir_open(fx->s, "/g", 0, &e), -EINVAL);
}

/* P5 and the lock: the sweep removes temporaries only, and only under the lock. */
static void test_sweep_removes_leftovers_only(void **state)
{
        struct fixture *fx = *state;
        struct store_dir *d = day(fx);
        struct store *other = NULL;
        unsigned removed = 0;
        pid_t pid = 0;
        int fd = -1;

        put(d, "k.json", "{}");
        assert_int_equal(store_publish(d, "k.json", 0), 0);
        put(d, "k.log.gz", "left by a writer that died");
        assert_int_equal(store_tmp_create(d, "j.error.json", &fd), 0);
        close(fd);
        store_dir_close(d);

        assert_false(store_locked(fx->s));
        assert_int_equal(store_sweep(fx->s, &removed), -ENOLCK);
        assert_int_equal(store_lock(fx->s, NULL), 0);
        assert_true(store_locked(fx->s));
        assert_int_equal(store_lock(fx->s, NULL), 0); /* already ours */

        /* One writer: a second store on the same root is refused and told who holds it. */
        assert_int_equal(store_local_open(fx->t.dir, &other), 0);
        assert_int_equal(store_lock(other, &pid), -EBUSY);
        assert_int_equal(pid, getpid());
        assert_false(store_locked(other));
        store_free(other);

        assert_int_equal(store_sweep(fx->s, &removed), 0);
        assert_int_equal(removed, 2);
        assert_true(exists(fx, DAY "/k.json"));
        assert_false(exists(fx, DAY "/.k.log.gz.tmp"));
        assert_false(exists(fx, DAY "/.j.error.json.tmp"));
        assert_true(exists(fx, ".lock"));
        assert_int_equal(store_sweep(fx->s, &removed), 0);
        assert_int_equal(removed, 0);
}

/* list_dirs returns what exists, sorted; remove and remove_dir take only what they name. */
static void test_list_and_remove(void **state)
{
        struct fixture *fx = *state;
        struct store_dir *d = day(fx), *e = NULL;
        char **names = NULL;
        size_t n = 0;

        assert_int_equal(store_dir_open(fx->s, "g/2024/01/02", STORE_CREATE, &e), 0);
        store_dir_close(e);
        assert_int_equal(store_dir_open(fx->s, "g/2023/12/31", STORE_CREATE, &e), 0);
        store_dir_close(e);
        put(d, "k.json", "{}");
        assert_int_equal(store_publish(d, "k.json", 0), 0);
        put(d, "k.log.gz", "log");
        assert_int_equal(store_publish(d, "k.log.gz", 0), 0);

        assert_int_equal(store_list_dirs(fx->s, "", &names, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(names[0], "g");
        store_names_free(names, n);
        assert_int_equal(store_list_dirs(fx->s, "g", &names, &n), 0);
        assert_int_equal(n, 2);
        assert_string_equal(names[0], "2023");
        assert_string_equal(names[1], "2024");
        store_names_free(names, n);
        assert_int_equal(store_list_dirs(fx->s, "g/2024", &names, &n), 0);
        assert_int_equal(n, 2);
        assert_string_equal(names[0], "01");
        assert_string_equal(names[1], "03");
        store_names_free(names, n);
        /* Files are not folders. */
        assert_int_equal(store_list_dirs(fx->s, DAY, &names, &n), 0);
        assert_int_equal(n, 0);
        store_names_free(names, n);
        assert_int_equal(store_list_dirs(fx->s, "nope", &names, &n), -ENOENT);

        assert_int_equal(store_remove(d, "k.log.gz"), 0);
        assert_int_equal(store_remove(d, "k.log.gz"), -ENOENT);
        assert_true(exists(fx, DAY "/k.json"));
        assert_int_equal(store_has(fx->s, DAY, "k.json"), 1);
        store_dir_close(d);

        assert_int_equal(store_remove_dir(fx->s, "g/2024/03", 0), -ENOTEMPTY);
        assert_int_equal(store_remove_dir(fx->s, DAY, 0), -ENOTEMPTY);
        assert_int_equal(store_remove_dir(fx->s, DAY, STORE_REMOVE_FILES), 0);
        assert_false(exists(fx, DAY));
        assert_int_equal(store_has(fx->s, DAY, "k.json"), 0);
        assert_int_equal(store_remove_dir(fx->s, "g/2024/03", 0), 0);
        assert_true(exists(fx, "g/2024/01/02"));
        assert_int_equal(store_remove_dir(fx->s, "", 0), -EINVAL);
}

/* has() keeps the last folder: a folder swapped under it is noticed. */
static void test_has_follows_the_folder(void **state)
{
        struct fixture *fx = *state;
        struct store_dir *d = day(fx);
        char from[512], to[512];

        put(d, "k.json", "{}");
        assert_int_equal(store_publish(d, "k.json", 0), 0);
        store_dir_close(d);
        assert_int_equal(store_has(fx->s, DAY, "k.json"), 1);
        assert_int_equal(store_has(fx->s, DAY, "other.json"), 0);
        (void) snprintf(from, sizeof(from), "%s/" DAY, fx->t.dir);
        (void) snprintf(to, sizeof(to), "%s/g/2024/03/14", fx->t.dir);
        assert_int_equal(rename(from, to), 0);
        assert_int_equal(store_has(fx->s, DAY, "k.json"), 0);
        assert_int_equal(store_has(fx->s, "g/2024/03/14", "k.json"), 1);
}

static void test_scratch_and_space(void **state)
{
        struct fixture *fx = *state;
        uint64_t bytes = 0;
        int fd;

        fd = store_scratch_fd(fx->s);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, "x", 1), 1);
        close(fd);
        assert_int_equal(store_free_space(fx->s, &bytes), 0);
        assert_true(bytes > 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_kind, setup, teardown),
                cmocka_unit_test_setup_teardown(test_temporary_is_invisible, setup, teardown),
                cmocka_unit_test_setup_teardown(test_publish_never_replaces, setup, teardown),
                cmocka_unit_test_setup_teardown(test_sync, setup, teardown),
                cmocka_unit_test_setup_teardown(test_symlinks_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_sweep_removes_leftovers_only, setup, teardown),
                cmocka_unit_test_setup_teardown(test_list_and_remove, setup, teardown),
                cmocka_unit_test_setup_teardown(test_has_follows_the_folder, setup, teardown),
                cmocka_unit_test_setup_teardown(test_scratch_and_space, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}

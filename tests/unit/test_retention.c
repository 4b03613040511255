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

#include "archive.h"
#include "macro.h"

#define G1 "38400000-8cf0-11bd-b23e-10b96e4ef00d"
#define G2 "0b8f3a5e-2f4d-4c47-9b0e-5c1f6e2a9d11"

static char root[64];

static void touch(const char *rel)
{
        char path[256], dir[320];

        (void) snprintf(path, sizeof(path), "%s/%s", root, rel);
        (void) snprintf(dir, sizeof(dir), "mkdir -p \"$(dirname '%s')\"", path);
        assert_int_equal(system(dir), 0);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0640);
        assert_true(fd >= 0);
        close(fd);
}

static bool exists(const char *rel)
{
        char path[256];

        (void) snprintf(path, sizeof(path), "%s/%s", root, rel);
        return access(path, F_OK) == 0;
}

static void test_prune(void **state)
{
        struct archive *a = NULL;
        unsigned removed = 0;
        char cmd[128];

        (void) state;
        (void) snprintf(root, sizeof(root), "/tmp/cja-retention-XXXXXX");
        assert_non_null(mkdtemp(root));
        touch(G1 "/2023/12/31/old1.json");
        touch(G1 "/2023/12/31/old1.log.gz");
        touch(G1 "/2024/02/28/old2.json");
        touch(G1 "/2024/03/14/old3.json");
        touch(G1 "/2024/03/15/keep1.json"); /* the cutoff day itself stays */
        touch(G1 "/2024/04/01/keep2.json");
        touch(G2 "/2024/03/01/old4.json");
        touch(G2 "/2025/01/01/keep3.json");
        /* Not the archive's shapes: left alone whatever their dates. */
        touch("not-a-guid/2000/01/01/x.json");
        touch(G1 "/notes/2000.txt");
        touch(G1 "/1999/xx/01/x.json");
        assert_int_equal(archive_open(root, 6, 0, &a), 0);

        assert_int_equal(archive_prune(a, 2024, 3, 15, &removed), 0);
        assert_int_equal(removed, 4);
        assert_false(exists(G1 "/2023"));    /* empty year folder removed too */
        assert_false(exists(G1 "/2024/02")); /* and the empty month */
        assert_false(exists(G1 "/2024/03/14"));
        assert_true(exists(G1 "/2024/03/15/keep1.json"));
        assert_true(exists(G1 "/2024/04/01/keep2.json"));
        assert_false(exists(G2 "/2024"));
        assert_true(exists(G2 "/2025/01/01/keep3.json"));
        assert_true(exists("not-a-guid/2000/01/01/x.json"));
        assert_true(exists(G1 "/notes/2000.txt"));
        assert_true(exists(G1 "/1999/xx/01/x.json"));

        /* Idempotent. */
        assert_int_equal(archive_prune(a, 2024, 3, 15, &removed), 0);
        assert_int_equal(removed, 0);
        archive_free(a);
        (void) snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
        assert_int_equal(system(cmd), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_prune),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

#include <errno.h>
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
#include "metrics.h"

static const struct metrics_item items[] = {
        {.guid = "38400000-8cf0-11bd-b23e-10b96e4ef00d",
         .name = "sales \"east\"\\\nboard",
         .last_success_epoch = 1700000000,
         .last_poll_seconds = 0.25,
         .failing = false},
        {.guid = "0b8f3a5e-2f4d-4c47-9b0e-5c1f6e2a9d11", .name = NULL, .failing = true},
};

static const struct metrics sample = {
        .jobs_archived = 4210,
        .jobs_failed = 3,
        .list_failures = 1,
        .bytes_downloaded = 1200000000,
        .bytes_written = 240000000,
        .start_epoch = 1699990000,
        .connect_up = true,
        .disk_paused = false,
        .items = items,
        .n_items = 2,
};

static void test_format(void **state)
{
        _cleanup_free_ char *text = NULL;

        (void) state;
        assert_int_equal(metrics_format(&sample, &text), 0);
        assert_non_null(strstr(text, "\nconnect_job_archiver_jobs_archived_total 4210\n"));
        assert_non_null(strstr(text, "\nconnect_job_archiver_jobs_failed_total 3\n"));
        assert_non_null(strstr(text, "\nconnect_job_archiver_downloaded_bytes_total 1200000000\n"));
        assert_non_null(strstr(text, "\nconnect_job_archiver_written_bytes_total 240000000\n"));
        assert_non_null(strstr(text, "\nconnect_job_archiver_connect_up 1\n"));
        assert_non_null(strstr(text, "\nconnect_job_archiver_disk_paused 0\n"));
        /* Label values escape quote, backslash and newline. */
        assert_non_null(strstr(text, "connect_job_archiver_last_success_timestamp_seconds{guid=\""
                                     "38400000-8cf0-11bd-b23e-10b96e4ef00d\",name=\"sales "
                                     "\\\"east\\\"\\\\\\nboard\"} 1700000000\n"));
        assert_non_null(strstr(text, "connect_job_archiver_item_failing{guid=\"0b8f3a5e-2f4d-4c47-"
                                     "9b0e-5c1f6e2a9d11\",name=\"\"} 1\n"));
        assert_non_null(strstr(text, "# TYPE connect_job_archiver_jobs_archived_total counter\n"));

        /* Every line is a comment or "name[{labels}] value": no raw newline leaks a line. */
        char *save = NULL;
        for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                if (line[0] == '#')
                        continue;
                assert_true(strncmp(line, "connect_job_archiver_", 21) == 0);
                assert_non_null(strrchr(line, ' '));
        }
}

static void test_write_atomic(void **state)
{
        char dir[] = "/tmp/cja-metrics-XXXXXX", path[64], tmp[80];
        struct stat st;
        FILE *f;
        char buf[64];

        (void) state;
        assert_non_null(mkdtemp(dir));
        (void) snprintf(path, sizeof(path), "%s/x.prom", dir);
        (void) snprintf(tmp, sizeof(tmp), "%s.tmp", path);
        assert_int_equal(metrics_write(path, &sample), 0);
        assert_int_equal(stat(path, &st), 0);
        assert_true(st.st_size > 500);
        assert_int_equal(access(tmp, F_OK), -1);
        f = fopen(path, "r");
        assert_non_null(f);
        assert_non_null(fgets(buf, sizeof(buf), f));
        assert_true(strncmp(buf, "# HELP ", 7) == 0);
        fclose(f);
        /* A folder that does not exist is an error, not a crash. */
        assert_int_equal(metrics_write("/nonexistent-dir/x.prom", &sample), -ENOENT);
        assert_int_equal(unlink(path), 0);
        assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_format),
                cmocka_unit_test(test_write_atomic),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

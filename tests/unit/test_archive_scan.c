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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "archive_scan.h"

#define G1 "0b8f3a5e-2f4d-4c47-9b0e-5c1f6e2a9d11"
#define G2 "38400000-8cf0-11bd-b23e-10b96e4ef00d"

struct fixture {
        char dir[64];
        int rootfd;
};

static void put(struct fixture *f, const char *rel, const char *text)
{
        char path[512], *slash;
        FILE *fp;

        snprintf(path, sizeof(path), "%s/%s", f->dir, rel);
        for (slash = strchr(path + strlen(f->dir) + 1, '/'); slash;
             slash = strchr(slash + 1, '/')) {
                *slash = '\0';
                (void) mkdir(path, 0755);
                *slash = '/';
        }
        fp = fopen(path, "w");
        assert_non_null(fp);
        fputs(text, fp);
        fclose(fp);
}

/* A record as the daemon writes it (the fields the scan reads). */
static void put_job(struct fixture *f, const char *guid, const char *start, const char *key,
                    const char *tag, const char *exit_code, const char *error)
{
        char rel[256], text[1024];

        snprintf(rel, sizeof(rel), "%s/%.4s/%.2s/%.2s/%s.json", guid, start, start + 5, start + 8,
                 key);
        snprintf(text, sizeof(text),
                 "{\n  \"job\": {\"key\": \"%s\", \"start_time\": \"%s\", \"tag\": \"%s\", "
                 "\"status\": 2, \"exit_code\": %s},\n  \"error\": %s,\n  \"content_guid\": "
                 "\"%s\",\n  \"content_name\": null,\n  \"log_bytes\": 10\n}\n",
                 key, start, tag, exit_code, error, guid);
        put(f, rel, text);
}

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));

        strcpy(f->dir, "/tmp/test_archive_scan.XXXXXX");
        if (!mkdtemp(f->dir))
                return -1;
        put_job(f, G1, "2026-09-27T23:59:59Z", "a1", "run_app", "0", "null");
        put_job(f, G1, "2026-09-28T00:00:00Z", "a2", "run_app", "1", "null");
        put_job(f, G1, "2026-09-28T12:00:00Z", "a3", "build_report", "0",
                "{\"code\": \"E1\", \"summary\": \"Error in library(shiny)\"}");
        put_job(f, G2, "2026-09-28T12:00:00Z", "b1", "run_app", "null", "null");
        put_job(f, G2, "2026-09-29T00:00:01Z", "b2", "run_api", "0", "null");
        /* What the scan must not take for jobs. */
        put(f, G2 "/2026/09/29/.b3.json.tmp", "{");
        put(f, G2 "/2026/09/29/b2.error.json", "{}");
        put(f, G2 "/2026/09/29/b2.log.gz", "");
        put(f, G2 "/2026/09/29/.lock", "");
        put(f, "not-a-guid/2026/09/29/x.json", "{}");
        put(f, G2 "/2026/13/01/x.json", "{}");
        put(f, G2 "/2026/09/29/broken.json", "{ nope");
        f->rootfd = open(f->dir, O_RDONLY | O_DIRECTORY);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        char cmd[128];

        close(f->rootfd);
        snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
        if (system(cmd) != 0)
                return -1;
        free(f);
        return 0;
}

static unsigned warnings_seen;
static void count_warn(void *userdata, const char *path, int error, const char *what)
{
        (void) userdata;
        (void) error;
        (void) what;
        assert_string_equal(path, G2 "/2026/09/29/broken.json");
        warnings_seen++;
}

/* Scans with f and returns the keys in order, space-separated. */
static char *keys(struct fixture *fx, const struct scan_filter *f)
{
        struct scan_job *jobs;
        size_t n;
        unsigned w;
        static char out[512];

        warnings_seen = 0;
        assert_int_equal(archive_scan(fx->rootfd, f, count_warn, NULL, &jobs, &n, &w), 0);
        assert_int_equal(w, warnings_seen);
        out[0] = '\0';
        for (size_t i = 0; i < n; i++) {
                strcat(out, i ? " " : "");
                strcat(out, jobs[i].key);
        }
        scan_jobs_free(jobs, n);
        return out;
}

static void test_all_in_order(void **state)
{
        struct fixture *fx = *state;
        struct scan_filter f = {0};
        struct scan_job *jobs;
        size_t n;

        /* By start time, then key: a3 and b1 start together. */
        assert_string_equal(keys(fx, &f), "a1 a2 a3 b1 b2");
        assert_int_equal(warnings_seen, 1);
        assert_int_equal(archive_scan(fx->rootfd, &f, NULL, NULL, &jobs, &n, NULL), 0);
        assert_int_equal(n, 5);
        assert_string_equal(jobs[2].error_summary, "Error in library(shiny)");
        assert_true(jobs[2].has_error);
        assert_false(jobs[3].has_exit_code);
        assert_int_equal(jobs[1].exit_code, 1);
        assert_string_equal(jobs[4].tag, "run_api");
        assert_int_equal(jobs[4].log_bytes, 10);
        scan_jobs_free(jobs, n);
}

static void test_filters(void **state)
{
        struct fixture *fx = *state;
        const char *g[] = {"0B8F3A5E-2F4D-4C47-9B0E-5C1F6E2A9D11"}; /* any case */
        const char *tags[] = {"run_app"}, *ks[] = {"b2", "a1"};
        struct scan_filter f = {.guids = g, .n_guids = 1};

        assert_string_equal(keys(fx, &f), "a1 a2 a3");
        f = (struct scan_filter){.failed = true};
        assert_string_equal(keys(fx, &f), "a2 a3");
        f = (struct scan_filter){.tags = tags, .n_tags = 1};
        assert_string_equal(keys(fx, &f), "a1 a2 b1");
        f = (struct scan_filter){.keys = ks, .n_keys = 2};
        assert_string_equal(keys(fx, &f), "a1 b2");
        f = (struct scan_filter){
                .tags = tags, .n_tags = 1, .failed = true, .guids = g, .n_guids = 1};
        assert_string_equal(keys(fx, &f), "a2");
}

/* Midnight UTC: the folder date prunes, the record's time decides on the boundary days. */
static void test_time_edges(void **state)
{
        struct fixture *fx = *state;
        struct scan_filter f = {.has_since = true, .has_until = true};

        f.since = 1790553600; /* 2026-09-28T00:00:00Z */
        f.until = f.since + 86400;
        assert_string_equal(keys(fx, &f), "a2 a3 b1");
        f.since += 1; /* 00:00:01: a2 at 00:00:00 is out */
        assert_string_equal(keys(fx, &f), "a3 b1");
        f.since = 1790553599; /* 2026-09-27T23:59:59Z: a1 is in, from the day before */
        f.until = 1790553600;
        assert_string_equal(keys(fx, &f), "a1");
        f = (struct scan_filter){.has_since = true, .since = 1790640001}; /* 09-29 00:00:01 */
        assert_string_equal(keys(fx, &f), "b2");
        f.since++;
        assert_string_equal(keys(fx, &f), "");
}

static void test_symlinks_not_followed(void **state)
{
        struct fixture *fx = *state;
        char link[128], target[128], cmd[300];
        struct scan_filter f = {0};
        int fd;

        /* A content folder that is a symlink (to a copy of a real one) is not entered... */
        snprintf(target, sizeof(target), "%s-other", fx->dir);
        snprintf(cmd, sizeof(cmd), "cp -r %s/" G1 " %s", fx->dir, target);
        assert_int_equal(system(cmd), 0);
        snprintf(link, sizeof(link), "%s/11111111-2222-3333-4444-555555555555", fx->dir);
        assert_int_equal(symlink(target, link), 0);
        assert_string_equal(keys(fx, &f), "a1 a2 a3 b1 b2");
        /* ... but the root itself may be a symlink. */
        unlink(link);
        snprintf(link, sizeof(link), "%s-link", fx->dir);
        assert_int_equal(symlink(fx->dir, link), 0);
        fd = open(link, O_RDONLY | O_DIRECTORY);
        assert_true(fd >= 0);
        {
                struct scan_job *jobs;
                size_t n;
                assert_int_equal(archive_scan(fd, &f, NULL, NULL, &jobs, &n, NULL), 0);
                assert_int_equal(n, 5);
                scan_jobs_free(jobs, n);
        }
        close(fd);
        unlink(link);
        snprintf(cmd, sizeof(cmd), "rm -rf %s", target);
        assert_int_equal(system(cmd), 0);
}

struct dates {
        int day[8];
        size_t n[8], batches, jobs;
};

static int count_batch(void *userdata, struct scan_job *jobs, size_t n, bool last)
{
        struct dates *d = userdata;

        (void) last;
        for (size_t i = 0; i < n; i++)
                assert_int_equal(jobs[i].day, jobs[0].day);
        if (n > 0 && d->batches < 8) {
                d->day[d->batches] = jobs[0].day;
                d->n[d->batches++] = n;
        }
        d->jobs += n;
        scan_jobs_free(jobs, n);
        return 0;
}

/* Enough content folders to be walked on every CPU: the same days and jobs, in the same
 * order, as one thread walking them. */
static void test_many_folders(void **state)
{
        struct fixture *fx = *state;
        struct scan_filter f = {0};
        struct dates d = {0};
        char want[1024] = "";
        unsigned w = 0;

        for (int i = 0; i < 40; i++) {
                char guid[40], start[32], key[8];

                snprintf(guid, sizeof(guid), "%08x-0000-4000-8000-00000000000%c", 40 - i,
                         i % 2 ? 'A' : 'b');
                snprintf(key, sizeof(key), "m%02d", i);
                snprintf(start, sizeof(start), "2026-09-27T10:%02d:00Z", i);
                put_job(fx, guid, start, key, "run_app", "0", "null");
                snprintf(start, sizeof(start), "2026-09-29T10:%02d:00Z", i);
                put_job(fx, guid, start, key, "run_app", "0", "null");
        }
        for (int i = 0; i < 40; i++)
                snprintf(want + strlen(want), sizeof(want) - strlen(want), "m%02d ", i);
        strcat(want, "a1 a2 a3 b1 b2");
        for (int i = 0; i < 40; i++)
                snprintf(want + strlen(want), sizeof(want) - strlen(want), " m%02d", i);
        assert_string_equal(keys(fx, &f), want);

        assert_int_equal(archive_scan_dates(fx->rootfd, &f, NULL, NULL, count_batch, &d, &w), 0);
        assert_int_equal(w, 1);
        assert_int_equal(d.jobs, 85);
        assert_int_equal(d.batches, 3);
        assert_int_equal(d.day[0], 27);
        assert_int_equal(d.n[0], 41);
        assert_int_equal(d.day[1], 28);
        assert_int_equal(d.n[1], 3);
        assert_int_equal(d.day[2], 29);
        assert_int_equal(d.n[2], 41);
}

static void test_parse_time(void **state)
{
        int64_t now = 1790596800; /* 2026-09-28T12:00:00Z */
        int64_t t;
        bool day;

        (void) state;
        setenv("TZ", "America/Los_Angeles", 1); /* UTC-7 in September */
        tzset();
        assert_int_equal(scan_parse_time("2026-09-28", now, &t, &day), 0);
        assert_true(day);
        assert_int_equal(t, 1790553600 + 7 * 3600);
        assert_int_equal(scan_next_local_midnight(t), t + 86400);
        assert_int_equal(scan_parse_time("today", now, &t, &day), 0);
        assert_int_equal(t, 1790553600 + 7 * 3600); /* 05:00 PDT on the 28th */
        assert_int_equal(scan_parse_time("yesterday", now, &t, &day), 0);
        assert_int_equal(t, 1790553600 + 7 * 3600 - 86400);
        assert_int_equal(scan_parse_time("-7d", now, &t, &day), 0);
        assert_false(day);
        assert_int_equal(t, now - 7 * 86400);
        assert_int_equal(scan_parse_time("-12h", now, &t, &day), 0);
        assert_int_equal(t, now - 12 * 3600);
        assert_int_equal(scan_parse_time("-30m", now, &t, &day), 0);
        assert_int_equal(t, now - 1800);
        assert_int_equal(scan_parse_time("2026-09-28T00:00:00Z", now, &t, &day), 0);
        assert_int_equal(t, 1790553600);
        assert_int_equal(scan_parse_time("2026-09-27T17:00:00-07:00", now, &t, &day), 0);
        assert_int_equal(t, 1790553600);
        setenv("TZ", "UTC", 1);
        tzset();
        assert_int_equal(scan_parse_time("2026-09-28", now, &t, &day), 0);
        assert_int_equal(t, 1790553600);
        assert_int_equal(scan_parse_time("2026-9-28", now, &t, &day), -EINVAL);
        assert_int_equal(scan_parse_time("-7w", now, &t, &day), -EINVAL);
        assert_int_equal(scan_parse_time("-d", now, &t, &day), -EINVAL);
        assert_int_equal(scan_parse_time("tomorrow", now, &t, &day), -EINVAL);
        assert_int_equal(scan_parse_time("2026-13-01", now, &t, &day), -EINVAL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_all_in_order, setup, teardown),
                cmocka_unit_test_setup_teardown(test_filters, setup, teardown),
                cmocka_unit_test_setup_teardown(test_time_edges, setup, teardown),
                cmocka_unit_test_setup_teardown(test_symlinks_not_followed, setup, teardown),
                cmocka_unit_test_setup_teardown(test_many_folders, setup, teardown),
                cmocka_unit_test(test_parse_time),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

/* The search catalog's format (src/archive/catalog*.c): round trips through the open segment,
 * sealing and merging, the torn tail, and corruption at every offset detected. */

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

#include "catalog.h"
#include "macro.h"
#include "testutil.h"

#define G1  "38400000-8cf0-11bd-b23e-10b96e4ef00d"
#define DAY G1 "/2026/09/01"

/* Job i's log: a line that names it, and a shared one. */
static void job_log(unsigned i, char *buf, size_t size)
{
        (void) snprintf(buf, size, "2026/09/01 10:00:00 Start\nrequest id Q%05uZ done\nEnd\n", i);
}

static void make_day(const char *root, unsigned n)
{
        char cmd[512];

        (void) snprintf(cmd, sizeof(cmd), "mkdir -p '%s/%s'", root, DAY);
        assert_int_equal(system(cmd), 0);
        for (unsigned i = 0; i < n; i++) {
                char name[64], rec[512], dir[300];
                (void) snprintf(dir, sizeof(dir), "%s/%s", root, DAY);
                (void) snprintf(name, sizeof(name), "k%04u.json", i);
                (void) snprintf(rec, sizeof(rec),
                                "{\"job\":{\"key\":\"k%04u\",\"tag\":\"run_app\",\"status\":2,"
                                "\"exit_code\":%d,\"start_time\":\"2026-09-01T10:%02u:00Z\"},"
                                "\"error\":null,\"content_name\":\"app\",\"log_bytes\":40,"
                                "\"log_gzip_bytes\":60}",
                                i, i % 3 == 0 ? 1 : 0, i % 60);
                free(write_text(dir, name, rec, 0640));
        }
}

static int open_root(const char *root)
{
        int fd = open(root, O_RDONLY | O_DIRECTORY);
        assert_true(fd >= 0);
        return fd;
}

/* Writes n jobs of DAY through a writer sealing every seal_jobs (0: never, flush only). */
/* The log size each job's member says it has: 100 KiB, so that sealing makes units of two jobs
 * (2k and 2k + 1 when segments start at even jobs), unless a test says otherwise. */
static uint32_t job_usize = 100u << 10;

static void write_jobs(const char *root, unsigned from, unsigned to, unsigned seal_jobs, bool seal)
{
        struct catalog_writer *w;
        struct catalog_trigrams *t;
        int rootfd = open_root(root);

        make_day(root, to);
        assert_int_equal(catalog_trigrams_new(&t), 0);
        assert_int_equal(catalog_writer_open(rootfd, seal_jobs ? seal_jobs : 1000000, &w), 0);
        for (unsigned i = from; i < to; i++) {
                char log[128], rec[512], key[16], *strings = NULL;
                struct catalog_tri tri = {0};
                struct catalog_member m = {.offset = 0, .size = 60, .usize = job_usize};
                struct catalog_row row;

                job_log(i, log, sizeof(log));
                (void) snprintf(key, sizeof(key), "k%04u", i);
                (void) snprintf(rec, sizeof(rec),
                                "{\"job\":{\"key\":\"k%04u\",\"tag\":\"run_app\",\"status\":2,"
                                "\"exit_code\":%d,\"start_time\":\"2026-09-01T10:%02u:00Z\"},"
                                "\"error\":null,\"content_name\":\"app\",\"log_bytes\":40,"
                                "\"log_gzip_bytes\":60}",
                                i, i % 3 == 0 ? 1 : 0, i % 60);
                assert_int_equal(catalog_row_from_record(DAY, key, 2026, 9, 1, rec, strlen(rec),
                                                         &row, &strings),
                                 0);
                assert_int_equal(catalog_trigrams_member(t, log, strlen(log), &tri), 0);
                row.n_members = 1;
                row.members = &m;
                assert_int_equal(catalog_writer_add(w, &row, &tri), 0);
                catalog_tri_done(&tri);
                free(strings);
                if (i + 1 == to)
                        assert_int_equal(catalog_writer_folder(w, DAY), 0);
                assert_int_equal(catalog_writer_flush(w), 0);
        }
        if (seal)
                assert_int_equal(catalog_writer_seal(w), 0);
        catalog_writer_free(w);
        catalog_trigrams_free(t);
        close(rootfd);
}

static struct catalog_query *q_tri(const char *s)
{
        struct catalog_query *q = calloc(1, sizeof(*q));
        q->op = CATALOG_Q_TRI;
        q->tri = catalog_trigram((const unsigned char *) s);
        return q;
}

/* A query for the literal s (at least 3 bytes): AND of its trigrams. */
static struct catalog_query *q_lit(const char *s)
{
        struct catalog_query *q = calloc(1, sizeof(*q));
        size_t n = strlen(s) - 2;

        q->op = CATALOG_Q_AND;
        q->sub = calloc(n, sizeof(*q->sub));
        for (size_t i = 0; i < n; i++)
                q->sub[q->n_sub++] = q_tri(s + i);
        return q;
}

static int64_t day_mtime(const char *root)
{
        char path[300];
        struct stat st;

        (void) snprintf(path, sizeof(path), "%s/%s", root, DAY);
        assert_int_equal(stat(path, &st), 0);
        return (int64_t) st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
}

/* The catalog's rows of DAY (malloc'ed), or NULL when it does not cover the folder. */
static uint32_t *rows_of(const struct catalog *c, int64_t mtime_ns, size_t *k)
{
        uint32_t *buf = NULL;
        size_t cap = 0;
        int r = catalog_folder_rows(c, DAY, mtime_ns, &buf, &cap, k);

        assert_true(r >= 0);
        if (r == 0) {
                free(buf);
                return NULL;
        }
        return buf ? buf : calloc(1, sizeof(*buf));
}

/* The catalog answers DAY with n rows, and the literal of job `want` only there. */
static void check(const char *root, unsigned n, int want)
{
        struct catalog *c;
        unsigned damaged = 9;
        int rootfd = open_root(root);
        uint32_t *rows;
        size_t k = 0;
        char lit[16];

        assert_int_equal(catalog_open(rootfd, &c, &damaged), 0);
        assert_int_equal(damaged, 0);
        rows = rows_of(c, day_mtime(root), &k);
        assert_non_null(rows);
        assert_int_equal(k, n);
        assert_null(rows_of(c, day_mtime(root) + 1, &k));
        (void) snprintf(lit, sizeof(lit), "q%05uz", want >= 0 ? (unsigned) want : 99999u);
        struct catalog_query *q = q_lit(lit);
        assert_int_equal(catalog_match(c, q), 0);
        for (size_t i = 0; i < n; i++) {
                struct catalog_row row;
                catalog_row_get(c, rows[i], &row);
                char key[16];
                (void) snprintf(key, sizeof(key), "k%04d", want);
                char partner[16];
                (void) snprintf(partner, sizeof(partner), "k%04d", want ^ 1);
                /* The job itself, and at most the other job of its unit when sealed. */
                if (strcmp(row.key, key) == 0)
                        assert_true(catalog_row_may_match(c, rows[i]));
                else if (want < 0 || strcmp(row.key, partner) != 0)
                        assert_false(catalog_row_may_match(c, rows[i]));
                assert_string_equal(row.tag, "run_app");
                assert_string_equal(row.name, "app");
                assert_int_equal(row.status, 2);
                assert_true(row.has_exit_code);
                assert_int_equal(row.log_bytes, 40);
        }
        catalog_query_free(q);
        free(rows);
        catalog_free(c);
        close(rootfd);
}

static size_t varint(const unsigned char *p, const unsigned char *end, uint64_t *ret)
{
        uint64_t v = 0;

        for (size_t i = 0; i < 10 && p + i < end; i++) {
                v |= (uint64_t) (p[i] & 0x7f) << (7 * i);
                if (!(p[i] & 0x80)) {
                        *ret = v;
                        return i + 1;
                }
        }
        return 0;
}

/* The number of trigrams in member m's list of tri, and whether tri_s (3 bytes) is one. */
static size_t member_list(const struct catalog_tri *tri, uint32_t m, const char *tri_s, bool *has)
{
        const unsigned char *p = tri->data, *end = tri->data + tri->len;
        uint32_t want = tri_s ? catalog_trigram((const unsigned char *) tri_s) : UINT32_MAX;
        uint64_t count = 0, d = 0, v;

        *has = false;
        for (uint32_t k = 0; k <= m; k++) {
                size_t n = varint(p, end, &count);
                assert_true(n > 0);
                p += n;
                v = 0;
                for (uint64_t i = 0; i < count; i++) {
                        n = varint(p, end, &d);
                        assert_true(n > 0);
                        p += n;
                        v += d;
                        if (k == m && v == want)
                                *has = true;
                }
        }
        return (size_t) count;
}

static void test_trigrams(void **state)
{
        struct catalog_trigrams *t;
        struct catalog_tri tri = {0};
        bool has;

        (void) state;
        assert_int_equal(catalog_trigrams_new(&t), 0);
        assert_int_equal(catalog_trigrams_member(t, "AbCd\nabcd", 9, &tri), 0);
        assert_int_equal(catalog_tri_finish(&tri), 0);
        /* abc, bcd (folded, once each); none across the newline. */
        assert_int_equal(tri.n_members, 1);
        assert_int_equal(tri.data[0], 2);
        assert_int_equal(catalog_trigram((const unsigned char *) "a\nb"), UINT32_MAX);
        assert_int_equal(catalog_trigram((const unsigned char *) "ABC"),
                         catalog_trigram((const unsigned char *) "abc"));
        catalog_tri_done(&tri);

        /* A member's trigrams are its lines', whole: "ab|cdef\nxyz|w\n" as three members. The
         * first holds abc..def (its line runs on into the second), the second xyz and yzw (the
         * third only ends its line), the third none (no line starts in it). */
        assert_int_equal(catalog_trigrams_member(t, "ab", 2, &tri), 0);
        assert_int_equal(catalog_trigrams_member(t, "cdef\nxyz", 8, &tri), 0);
        assert_int_equal(catalog_trigrams_member(t, "w\n", 2, &tri), 0);
        assert_int_equal(catalog_tri_finish(&tri), 0);
        assert_int_equal(tri.n_members, 3);
        assert_int_equal(tri.n_written, 3);
        assert_int_equal(member_list(&tri, 0, "bcd", &has), 4);
        assert_true(has);
        assert_int_equal(member_list(&tri, 0, "cde", &has), 4);
        assert_true(has);
        assert_int_equal(member_list(&tri, 1, "yzw", &has), 2);
        assert_true(has);
        assert_int_equal(member_list(&tri, 2, NULL, &has), 0);
        /* Leads: newlines before << 1 | starts inside a line. */
        assert_int_equal(tri.lead[0], 0);
        assert_int_equal(tri.lead[1], 0 << 1 | 1);
        assert_int_equal(tri.lead[2], 1 << 1 | 1);
        catalog_tri_done(&tri);

        /* A line over three members: "abc|def|g\nh". */
        assert_int_equal(catalog_trigrams_member(t, "abc", 3, &tri), 0);
        assert_int_equal(catalog_trigrams_member(t, "def", 3, &tri), 0);
        assert_int_equal(tri.n_written, 0);
        assert_int_equal(catalog_trigrams_member(t, "g\nh", 3, &tri), 0);
        assert_int_equal(tri.n_written, 2);
        assert_int_equal(catalog_tri_finish(&tri), 0);
        assert_int_equal(tri.n_written, 3);
        assert_int_equal(member_list(&tri, 0, "efg", &has), 5);
        assert_true(has);
        assert_int_equal(member_list(&tri, 1, NULL, &has), 0);
        assert_int_equal(member_list(&tri, 2, NULL, &has), 0);
        assert_int_equal(tri.lead[2], 0 << 1 | 1);
        catalog_tri_done(&tri);
        catalog_trigrams_free(t);
}

static void test_segment_round_trip(void **state)
{
        struct tmpdir *td = *state;

        write_jobs(td->dir, 0, 20, 0, false);
        check(td->dir, 20, 7);
        check(td->dir, 20, -1);
}

static void test_seal_and_merge(void **state)
{
        struct tmpdir *td = *state;
        struct catalog_stats st;
        int rootfd;

        /* A seal every 2 jobs: 10 sealed segments, 8 of them merged into one level-1 file. */
        write_jobs(td->dir, 0, 20, 2, false);
        check(td->dir, 20, 13);
        rootfd = open_root(td->dir);
        assert_int_equal(catalog_stats(rootfd, &st), 0);
        assert_int_equal(st.jobs, 20);
        assert_true(st.files <= 4);
        assert_int_equal(catalog_verify(rootfd, NULL), 0);
        close(rootfd);
}

static void test_torn_tail(void **state)
{
        struct tmpdir *td = *state;
        char path[256];
        struct stat st;
        struct catalog *c;
        int rootfd;
        size_t k;

        write_jobs(td->dir, 0, 5, 0, false);
        (void) snprintf(path, sizeof(path), "%s/.catalog/open", td->dir);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(truncate(path, st.st_size - 3), 0);
        /* The last record (the folder's state) is gone: the folder is not covered. */
        rootfd = open_root(td->dir);
        assert_int_equal(catalog_open(rootfd, &c, NULL), 0);
        assert_null(rows_of(c, day_mtime(td->dir), &k));
        catalog_free(c);
        assert_int_equal(catalog_verify(rootfd, NULL), -EBADMSG);
        close(rootfd);
        /* The next writer cuts it off and the next batch's state covers the folder again. */
        write_jobs(td->dir, 5, 8, 0, false);
        check(td->dir, 8, 6);
        rootfd = open_root(td->dir);
        assert_int_equal(catalog_verify(rootfd, NULL), 0);
        close(rootfd);
}

static void flip_everywhere(const char *root, const char *name)
{
        char path[256];
        unsigned char *data;
        size_t len;
        int rootfd = open_root(root);

        (void) snprintf(path, sizeof(path), "%s/.catalog/%s", root, name);
        {
                FILE *f = fopen(path, "rb");
                assert_non_null(f);
                fseek(f, 0, SEEK_END);
                len = (size_t) ftell(f);
                fseek(f, 0, SEEK_SET);
                data = malloc(len);
                assert_int_equal(fread(data, 1, len, f), len);
                fclose(f);
        }
        for (size_t off = 0; off < len; off++) {
                unsigned damaged = 0;
                int fd = open(path, O_WRONLY);
                unsigned char b = data[off] ^ 0x20;

                assert_true(fd >= 0);
                assert_int_equal(pwrite(fd, &b, 1, (off_t) off), 1);
                close(fd);
                assert_int_equal(catalog_verify(rootfd, &damaged), -EBADMSG);
                assert_int_equal(damaged, 1);
                /* And a reader never trusts a row it cannot check. */
                {
                        struct catalog *c;
                        size_t k = 0;
                        uint32_t *rows;

                        assert_int_equal(catalog_open(rootfd, &c, NULL), 0);
                        rows = rows_of(c, day_mtime(root), &k);
                        if (rows) {
                                struct catalog_query *q = q_lit("q00003z");
                                assert_int_equal(catalog_match(c, q), 0);
                                for (size_t i = 0; i < k; i++) {
                                        struct catalog_row row;
                                        catalog_row_get(c, rows[i], &row);
                                        if (strcmp(row.key, "k0003") == 0)
                                                assert_true(catalog_row_may_match(c, rows[i]));
                                }
                                catalog_query_free(q);
                        }
                        free(rows);
                        catalog_free(c);
                }
                fd = open(path, O_WRONLY);
                assert_int_equal(pwrite(fd, &data[off], 1, (off_t) off), 1);
                close(fd);
        }
        free(data);
        assert_int_equal(catalog_verify(rootfd, NULL), 0);
        close(rootfd);
}

static void test_corruption_sealed(void **state)
{
        struct tmpdir *td = *state;

        write_jobs(td->dir, 0, 6, 0, true);
        check(td->dir, 6, 3);
        flip_everywhere(td->dir, "L0-1-1.cat");
}

/* Small jobs share a unit: a match in one makes every job of the unit a candidate (each then
 * read), an absent literal none; the members of a candidate row say they may match. */
static void test_units_small_jobs(void **state)
{
        struct tmpdir *td = *state;
        struct catalog *c;
        struct catalog_query *q;
        uint32_t *rows;
        size_t k = 0, may = 0;
        int rootfd;

        job_usize = 40;
        write_jobs(td->dir, 0, 6, 0, true);
        rootfd = open_root(td->dir);
        assert_int_equal(catalog_open(rootfd, &c, NULL), 0);
        rows = rows_of(c, day_mtime(td->dir), &k);
        assert_non_null(rows);
        assert_int_equal(k, 6);
        q = q_lit("q00003z");
        assert_int_equal(catalog_match(c, q), 0);
        for (size_t i = 0; i < k; i++) {
                struct catalog_member *m = NULL;
                size_t n = 0;

                may += catalog_row_may_match(c, rows[i]);
                assert_int_equal(catalog_row_members(c, rows[i], &m, &n), 0);
                assert_int_equal(n, 1);
                assert_true(m[0].may);
                free(m);
        }
        assert_int_equal(may, 6); /* one unit */
        catalog_query_free(q);
        q = q_lit("q99999z");
        assert_int_equal(catalog_match(c, q), 0);
        for (size_t i = 0; i < k; i++)
                assert_false(catalog_row_may_match(c, rows[i]));
        catalog_query_free(q);
        free(rows);
        catalog_free(c);
        close(rootfd);
        job_usize = 100u << 10;
}

static void test_corruption_segment(void **state)
{
        struct tmpdir *td = *state;

        write_jobs(td->dir, 0, 4, 0, false);
        flip_everywhere(td->dir, "open");
}

/* One job in folder (made with its record) through w, its state recorded. */
static void add_folder_job(const char *root, struct catalog_writer *w, const char *folder,
                           const char *key)
{
        char dir[300], name[64], rec[256], *strings = NULL, cmd[400];
        struct catalog_member m = {.offset = 0, .size = 60, .usize = 40};
        struct catalog_row row;

        (void) snprintf(dir, sizeof(dir), "%s/%s", root, folder);
        (void) snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", dir);
        assert_int_equal(system(cmd), 0);
        (void) snprintf(name, sizeof(name), "%s.json", key);
        (void) snprintf(rec, sizeof(rec),
                        "{\"job\":{\"key\":\"%s\",\"status\":2,\"start_time\":"
                        "\"2026-09-01T10:00:00Z\"},\"error\":null,\"log_bytes\":40}",
                        key);
        free(write_text(dir, name, rec, 0640));
        assert_int_equal(
                catalog_row_from_record(folder, key, 2026, 9, 1, rec, strlen(rec), &row, &strings),
                0);
        row.n_members = 1;
        row.members = &m;
        assert_int_equal(catalog_writer_add(w, &row, NULL), 0);
        free(strings);
        assert_int_equal(catalog_writer_folder(w, folder), 0);
        assert_int_equal(catalog_writer_flush(w), 0);
}

/* The key of the one row the catalog has of folder (as it is on disk now), or NULL. */
static const char *only_key(const char *root, const struct catalog *c, const char *folder)
{
        char path[300];
        struct stat st;
        uint32_t *rows = NULL;
        size_t cap = 0, n = 0;
        struct catalog_row row;
        int r;

        (void) snprintf(path, sizeof(path), "%s/%s", root, folder);
        assert_int_equal(stat(path, &st), 0);
        r = catalog_folder_rows(c, folder,
                                (int64_t) st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec,
                                &rows, &cap, &n);
        assert_true(r >= 0);
        if (r == 0) {
                free(rows);
                return NULL;
        }
        assert_int_equal(n, 1);
        catalog_row_get(c, rows[0], &row);
        free(rows);
        return row.key;
}

/* Folders are told apart by their exact names: two content folders whose GUIDs differ in case
 * only are two folders, in sealed files and in the open segment; a path that is not
 * "<name>/YYYY/MM/DD" (no scan asks for one) is never answered. */
static void test_folder_names(void **state)
{
        const struct tmpdir *td = *state;
        static const char *upper = "38400000-8CF0-11BD-B23E-10B96E4EF00D/2026/09/01";
        static const char *odd = G1 "/2026/9/01";
        struct catalog_writer *w;
        struct catalog *c;
        int rootfd = open_root(td->dir);

        assert_int_equal(catalog_writer_open(rootfd, 1000000, &w), 0);
        add_folder_job(td->dir, w, DAY, "lower");
        add_folder_job(td->dir, w, odd, "odd");
        assert_int_equal(catalog_writer_seal(w), 0);
        add_folder_job(td->dir, w, upper, "upper");
        catalog_writer_free(w);
        assert_int_equal(catalog_open(rootfd, &c, NULL), 0);
        assert_string_equal(only_key(td->dir, c, DAY), "lower");
        assert_string_equal(only_key(td->dir, c, upper), "upper");
        assert_null(only_key(td->dir, c, odd));
        catalog_free(c);
        close(rootfd);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_trigrams),
                cmocka_unit_test_setup_teardown(test_segment_round_trip, tmpdir_setup,
                                                tmpdir_teardown),
                cmocka_unit_test_setup_teardown(test_seal_and_merge, tmpdir_setup, tmpdir_teardown),
                cmocka_unit_test_setup_teardown(test_units_small_jobs, tmpdir_setup,
                                                tmpdir_teardown),
                cmocka_unit_test_setup_teardown(test_torn_tail, tmpdir_setup, tmpdir_teardown),
                cmocka_unit_test_setup_teardown(test_folder_names, tmpdir_setup, tmpdir_teardown),
                cmocka_unit_test_setup_teardown(test_corruption_sealed, tmpdir_setup,
                                                tmpdir_teardown),
                cmocka_unit_test_setup_teardown(test_corruption_segment, tmpdir_setup,
                                                tmpdir_teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "archive.h"
#include "paths.h"
#include "archive_scan.h"
#include "catalog.h"
#include "macro.h"
#include "util.h"

#define RECORD_MAX (1024 * 1024) /* a record is a few KB; anything larger is not ours */

static bool all_digits(const char *s, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (!isdigit((unsigned char) s[i]))
                        return false;
        return s[n] == '\0';
}

static int parse_uint(const char *s, size_t n, int *ret)
{
        int v = 0;

        if (!all_digits(s, n))
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                v = v * 10 + (s[i] - '0');
        *ret = v;
        return 0;
}

static int64_t utc_midnight(int y, int m, int d)
{
        struct tm tm = {.tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d};

        return (int64_t) timegm(&tm);
}

static int64_t local_midnight(int y, int m, int d)
{
        struct tm tm = {.tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d, .tm_isdst = -1};

        return (int64_t) mktime(&tm);
}

int64_t scan_next_local_midnight(int64_t t)
{
        time_t tt = (time_t) t;
        struct tm tm;

        if (!localtime_r(&tt, &tm))
                return t + 86400;
        return local_midnight(tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday + 1);
}

int scan_parse_time(const char *s, int64_t now, int64_t *ret, bool *ret_is_day)
{
        size_t n = strlen(s);
        int y, m, d;

        *ret_is_day = false;
        if (strcmp(s, "today") == 0 || strcmp(s, "yesterday") == 0) {
                time_t tt = (time_t) now;
                struct tm tm;

                if (!localtime_r(&tt, &tm))
                        return -EINVAL;
                *ret = local_midnight(tm.tm_year + 1900, tm.tm_mon + 1,
                                      tm.tm_mday - (s[0] == 'y' ? 1 : 0));
                *ret_is_day = true;
                return 0;
        }
        if (n >= 3 && s[0] == '-') {
                static const struct {
                        char unit;
                        int64_t seconds;
                } units[] = {{'d', 86400}, {'h', 3600}, {'m', 60}, {'s', 1}};
                char *end;
                long long v;

                if (!isdigit((unsigned char) s[1]))
                        return -EINVAL;
                errno = 0;
                v = strtoll(s + 1, &end, 10);
                if (errno != 0 || v < 0 || v > 100LL * 366 * 86400 || end != s + n - 1)
                        return -EINVAL;
                for (size_t i = 0; i < ELEMENTSOF(units); i++)
                        if (*end == units[i].unit) {
                                *ret = now - (int64_t) v * units[i].seconds;
                                return 0;
                        }
                return -EINVAL;
        }
        if (n == 10 && s[4] == '-' && s[7] == '-') {
                char buf[11];

                memcpy(buf, s, 11);
                buf[4] = buf[7] = '\0';
                if (parse_uint(buf, 4, &y) < 0 || parse_uint(buf + 5, 2, &m) < 0 ||
                    parse_uint(buf + 8, 2, &d) < 0 || m < 1 || m > 12 || d < 1 || d > 31)
                        return -EINVAL;
                *ret = local_midnight(y, m, d);
                *ret_is_day = true;
                return 0;
        }
        return rfc3339_parse(s, ret);
}

/* One day folder to read: "<guid>/YYYY/MM/DD" with the names as found on disk. */
struct day {
        const char *guid; /* its content folder's name, shared by all its days (scan.guids) */
        int64_t mtime_ns;
        /* The names are these numbers, zero-padded (walk_numbered() takes no other). */
        uint16_t year;
        uint8_t month, day;
        /* With a catalog: mtime_ns is the folder's mtime when it was listed (fstatat from its
         * month folder, not following a symlink), so that a folder the catalog covers is
         * answered without being opened. */
        bool has_mtime;
};

/* What one reader thread found. */
struct found {
        struct scan_job *jobs;
        size_t n, cap;
        uint32_t *rows; /* a day folder's catalog rows */
        size_t cap_rows;
};

struct scan {
        const struct scan_filter *f;
        int rootfd;
        scan_warn_fn *warn;
        void *userdata;
        pthread_mutex_t warn_lock;
        unsigned warnings;

        char **guids; /* the content folders to walk, as listed in the root */
        size_t n_guids;
        atomic_size_t next_guid; /* the next content folder to walk */

        struct day *days;
        size_t n_days;
        atomic_size_t next; /* the next day folder to read, up to end */
        size_t end;
        atomic_int error; /* first -ENOMEM from a walker or reader thread */
};

/* What one walker thread found: the day folders of the content folders it took. */
struct walker {
        struct scan *s;
        struct day *days;
        size_t n_days, cap_days;
        pthread_t thread;
};

static void scan_warn(struct scan *s, const char *path, int error, const char *what)
{
        pthread_mutex_lock(&s->warn_lock);
        s->warnings++;
        if (s->warn)
                s->warn(s->userdata, path, error, what);
        pthread_mutex_unlock(&s->warn_lock);
}

static bool day_in_range(const struct scan_filter *f, int y, int m, int d)
{
        int64_t start = utc_midnight(y, m, d);

        if (f->has_since && start + 86400 <= f->since)
                return false;
        if (f->has_until && start >= f->until)
                return false;
        return true;
}

static bool guid_wanted(const struct scan_filter *f, const char *name)
{
        if (!f->guids)
                return true;
        for (size_t i = 0; i < f->n_guids; i++)
                if (strcasecmp(f->guids[i], name) == 0)
                        return true;
        return false;
}

static bool in_list(const char *const *list, size_t n, const char *s)
{
        if (!list)
                return true;
        if (!s)
                return false;
        for (size_t i = 0; i < n; i++)
                if (strcmp(list[i], s) == 0)
                        return true;
        return false;
}

static void closedirp(DIR **d)
{
        if (*d)
                (void) closedir(*d);
}

/* True when the entry may be a folder (symlinks are not followed, so they are not). */
static bool maybe_dir(const struct dirent *de)
{
        return de->d_type == DT_DIR || de->d_type == DT_UNKNOWN;
}

static int add_day(struct walker *w, const char *guid, int y, int m, int d)
{
        struct day *day;

        if (w->n_days == w->cap_days) {
                size_t cap = w->cap_days ? w->cap_days * 2 : 256;
                struct day *n = reallocarray(w->days, cap, sizeof(*n));

                if (!n)
                        return -ENOMEM;
                w->days = n;
                w->cap_days = cap;
        }
        day = &w->days[w->n_days++];
        *day = (struct day){
                .guid = guid, .year = (uint16_t) y, .month = (uint8_t) m, .day = (uint8_t) d};
        return 0;
}

/* Lists the sub-folders of dfd/name whose names are n digits, as numbers, unsorted. */
typedef int walk_fn(struct walker *w, int fd, const char *guid, int y, int m, const char *name,
                    int value);

static int walk_numbered(struct walker *w, int dfd, const char *name, size_t digits,
                         const char *guid, int y, int m, walk_fn *fn, const char *where)
{
        _cleanup_(closedirp) DIR *dir = NULL;
        int r;

        r = dir_open_at(dfd, name, &dir);
        if (r < 0) {
                scan_warn(w->s, where, r, "cannot open folder");
                return 0;
        }
        for (;;) {
                struct dirent *de;
                int v;

                errno = 0;
                de = readdir(dir);
                if (!de)
                        break;
                if (!maybe_dir(de) || parse_uint(de->d_name, digits, &v) < 0)
                        continue;
                r = fn(w, dirfd(dir), guid, y, m, de->d_name, v);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int on_day(struct walker *w, int fd, const char *guid, int y, int m, const char *name, int v)
{
        const struct scan_filter *f = w->s->f;
        struct stat st;
        int r;

        if (v < 1 || v > 31 || !day_in_range(f, y, m, v))
                return 0;
        r = add_day(w, guid, y, m, v);
        if (r >= 0 && f->catalog && !f->keys && fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISDIR(st.st_mode)) {
                struct day *day = &w->days[w->n_days - 1];

                day->has_mtime = true;
                day->mtime_ns = (int64_t) st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
        }
        return r;
}

static int on_month(struct walker *w, int fd, const char *guid, int y, int m, const char *name,
                    int v)
{
        const struct scan_filter *f = w->s->f;
        char where[128];

        if (v < 1 || v > 12)
                return 0;
        /* Whole month out of range: skip without opening it. */
        if (f->has_since && utc_midnight(y, v + 1, 1) <= f->since)
                return 0;
        if (f->has_until && utc_midnight(y, v, 1) >= f->until)
                return 0;
        (void) snprintf(where, sizeof(where), "%.40s/%04d/%.2s", guid, y, name);
        return walk_numbered(w, fd, name, 2, guid, y, v, on_day, where);
}

static int on_year(struct walker *w, int fd, const char *guid, int y, int m, const char *name,
                   int v)
{
        const struct scan_filter *f = w->s->f;
        char where[128];

        if (f->has_since && utc_midnight(v + 1, 1, 1) <= f->since)
                return 0;
        if (f->has_until && utc_midnight(v, 1, 1) >= f->until)
                return 0;
        (void) snprintf(where, sizeof(where), "%.40s/%.4s", guid, name);
        return walk_numbered(w, fd, name, 2, guid, v, 0, on_month, where);
}

static char *dup_string(struct json_object *o, const char *field)
{
        struct json_object *v;

        if (!o || !json_object_object_get_ex(o, field, &v) ||
            !json_object_is_type(v, json_type_string))
                return NULL;
        return strdup(json_object_get_string(v));
}

static bool get_int(struct json_object *o, const char *field, int64_t *ret)
{
        struct json_object *v;

        if (!o || !json_object_object_get_ex(o, field, &v) ||
            !json_object_is_type(v, json_type_int))
                return false;
        *ret = json_object_get_int64(v);
        return true;
}

int scan_read_small(int dfd, const char *name, char **ret, size_t *ret_len)
{
        _cleanup_close_ int fd = file_open_at(dfd, name, NULL);
        char buf[8192], *data = NULL;
        size_t len = 0, cap = 0;

        if (fd < 0)
                return fd;
        for (;;) {
                ssize_t n = read(fd, buf, sizeof(buf));
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        free(data);
                        return -errno;
                }
                if (n == 0)
                        break;
                if (len + (size_t) n + 1 > cap) {
                        size_t ncap = (len + (size_t) n + 1) * 2;
                        char *p;

                        if (ncap > RECORD_MAX) {
                                free(data);
                                return -EFBIG;
                        }
                        p = realloc(data, ncap);
                        if (!p) {
                                free(data);
                                return -ENOMEM;
                        }
                        data = p;
                        cap = ncap;
                }
                memcpy(data + len, buf, (size_t) n);
                len += (size_t) n;
        }
        if (!data)
                return -ENODATA;
        data[len] = '\0';
        *ret = data;
        *ret_len = len;
        return 0;
}

static int found_push(struct found *fd, struct scan_job **ret)
{
        if (fd->n == fd->cap) {
                size_t cap = fd->cap ? fd->cap * 2 : 64;
                struct scan_job *n = reallocarray(fd->jobs, cap, sizeof(*n));

                if (!n)
                        return -ENOMEM;
                fd->jobs = n;
                fd->cap = cap;
        }
        *ret = &fd->jobs[fd->n];
        return 0;
}

static bool job_passes(const struct scan_filter *f, const struct scan_job *j)
{
        return (!f->has_since || j->start >= f->since) && (!f->has_until || j->start < f->until) &&
               (!f->failed || j->has_error || (j->has_exit_code && j->exit_code != 0)) &&
               in_list(f->tags, f->n_tags, j->tag);
}

/*
 * Reads and filters the record <key>.json in day folder dayfd; appends it when it passes.
 * A missing record is silently skipped when missing_ok (a key looked up by name).
 */
static int read_record(struct scan *s, const struct day *day, int dayfd, const char *name,
                       size_t key_len, bool missing_ok, struct json_tokener *tok, struct found *out)
{
        const struct scan_filter *f = s->f;
        _cleanup_free_ char *data = NULL;
        char path[512];
        struct json_object *rec, *job = NULL, *err = NULL;
        struct scan_job *j;
        int64_t v;
        size_t len;
        int r;

        (void) snprintf(path, sizeof(path), "%s/%04d/%02d/%02d/%s", day->guid, day->year,
                        day->month, day->day, name);
        r = scan_read_small(dayfd, name, &data, &len);
        if (r == -ENOMEM)
                return r;
        if (r == -ENOENT && missing_ok)
                return 0;
        if (r < 0) {
                scan_warn(s, path, r, "cannot read record");
                return 0;
        }
        json_tokener_reset(tok);
        rec = json_tokener_parse_ex(tok, data, (int) len);
        if (!rec || !json_object_is_type(rec, json_type_object)) {
                json_object_put(rec);
                scan_warn(s, path, -EBADMSG, "not a JSON object");
                return 0;
        }
        if (found_push(out, &j) < 0) {
                json_object_put(rec);
                return -ENOMEM;
        }
        (void) json_object_object_get_ex(rec, "job", &job);
        if (job && !json_object_is_type(job, json_type_object))
                job = NULL;
        (void) json_object_object_get_ex(rec, "error", &err);
        if (err && !json_object_is_type(err, json_type_object))
                err = NULL;

        *j = (struct scan_job){.year = day->year,
                               .month = day->month,
                               .day = day->day,
                               .status = -1,
                               .log_bytes = -1,
                               .has_error = err != NULL,
                               .catalog_row = -1};
        j->guid = strdup(day->guid);
        j->key = strndup(name, key_len);
        j->start_text = dup_string(job, "start_time");
        if (!j->start_text || rfc3339_parse(j->start_text, &j->start) < 0)
                j->start = utc_midnight(day->year, day->month, day->day);
        j->tag = dup_string(job, "tag");
        j->record_name = dup_string(rec, "content_name");
        j->error_summary = dup_string(err, "summary");
        if (get_int(job, "status", &v))
                j->status = (int) v;
        if (get_int(job, "exit_code", &v)) {
                j->has_exit_code = true;
                j->exit_code = (int) v;
        }
        if (get_int(rec, "log_bytes", &v) && v >= 0)
                j->log_bytes = v;
        json_object_put(rec);
        if (!j->guid || !j->key) {
                scan_job_done(j);
                return -ENOMEM;
        }
        if (job_passes(f, j))
                out->n++;
        else
                scan_job_done(j);
        return 0;
}

static char *dup_or_null(const char *s, bool *failed)
{
        char *d;

        if (!s)
                return NULL;
        d = strdup(s);
        if (!d)
                *failed = true;
        return d;
}

/* The folder from the catalog, when it covers the folder as it is now: 1, 0 (it does not:
 * read the records), or -ENOMEM. */
static int read_day_catalog(struct scan *s, const struct day *day, int dayfd, const char *path,
                            struct found *out)
{
        const struct catalog *c = s->f->catalog;
        struct stat st;
        int64_t mtime_ns;
        size_t n = 0;
        bool filters = s->f->has_since || s->f->has_until || s->f->failed || s->f->tags;
        int r;

        if (dayfd >= 0) {
                if (fstat(dayfd, &st) < 0)
                        return 0;
                mtime_ns = (int64_t) st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
        } else if (day->has_mtime) {
                mtime_ns = day->mtime_ns;
        } else {
                return 0;
        }
        r = catalog_folder_rows(c, path, mtime_ns, &out->rows, &out->cap_rows, &n);
        if (r <= 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                const uint32_t *rows = out->rows;
                struct catalog_row row;
                struct scan_job *j;
                bool failed = false;

                /* Without filters on the row, a row the search rules out is not even read
                 * (its page of the catalog is not touched). */
                if (s->f->ruled_out && !filters && !catalog_row_may_match(c, rows[i])) {
                        (void) __atomic_fetch_add(s->f->ruled_out, 1, __ATOMIC_RELAXED);
                        continue;
                }
                catalog_row_get(c, rows[i], &row);
                /* The filters first, on the row itself: only the jobs that pass are copied,
                 * and of those a search leaves out the ones whose log cannot match. */
                {
                        const struct scan_job peek = {.start = row.start,
                                                      .has_exit_code = row.has_exit_code,
                                                      .exit_code = row.exit_code,
                                                      .has_error = row.has_error,
                                                      .tag = (char *) row.tag};
                        if (!job_passes(s->f, &peek))
                                continue;
                        if (s->f->ruled_out && row.log_bytes >= 0 &&
                            !catalog_row_may_match(c, rows[i])) {
                                (void) __atomic_fetch_add(s->f->ruled_out, 1, __ATOMIC_RELAXED);
                                continue;
                        }
                }
                if (found_push(out, &j) < 0)
                        return -ENOMEM;
                *j = (struct scan_job){.year = day->year,
                                       .month = day->month,
                                       .day = day->day,
                                       .start = row.start,
                                       .status = row.status,
                                       .has_exit_code = row.has_exit_code,
                                       .exit_code = row.exit_code,
                                       .has_error = row.has_error,
                                       .log_bytes = row.log_bytes >= 0 ? row.log_bytes : -1,
                                       .catalog_row = rows[i]};
                j->guid = dup_or_null(day->guid, &failed);
                j->key = dup_or_null(row.key, &failed);
                j->tag = dup_or_null(row.tag, &failed);
                j->start_text = dup_or_null(row.start_text, &failed);
                j->record_name = dup_or_null(row.name, &failed);
                j->error_summary = dup_or_null(row.error_summary, &failed);
                if (failed) {
                        scan_job_done(j);
                        return -ENOMEM;
                }
                out->n++;
        }
        return 1;
}

static int read_day(struct scan *s, const struct day *day, struct json_tokener *tok,
                    struct found *out)
{
        _cleanup_(closedirp) DIR *dir = NULL;
        char path[256];
        int fd, r;

        (void) snprintf(path, sizeof(path), "%s/%04d/%02d/%02d", day->guid, day->year, day->month,
                        day->day);
        /* Covered as it was listed: answered without opening it. */
        if (s->f->catalog && !s->f->keys && day->has_mtime) {
                r = read_day_catalog(s, day, -1, path, out);
                if (r != 0)
                        return r < 0 ? r : 0;
        }
        fd = archive_dir_open_beneath(s->rootfd, path, false);
        if (fd >= 0) {
                dir = fdopendir(fd);
                if (!dir)
                        (void) safe_close(fd);
        }
        if (!dir) {
                r = fd < 0 ? fd : -errno;
                scan_warn(s, path, r, "cannot open folder");
                return 0;
        }
        if (s->f->catalog && !s->f->keys) {
                r = read_day_catalog(s, day, dirfd(dir), path, out);
                if (r != 0)
                        return r < 0 ? r : 0;
                if (s->f->uncovered)
                        (void) __atomic_fetch_add(s->f->uncovered, 1, __ATOMIC_RELAXED);
        }
        if (s->f->keys) {
                /* Named keys: look each up, no listing (finding one job by key is cheap). */
                for (size_t i = 0; i < s->f->n_keys; i++) {
                        const char *key = s->f->keys[i];
                        size_t len = strlen(key);
                        char name[NAME_MAX + 1];

                        if (!path_component_is_safe(key, len) || key[0] == '.' ||
                            len + 5 >= sizeof(name))
                                continue;
                        (void) snprintf(name, sizeof(name), "%s.json", key);
                        r = read_record(s, day, dirfd(dir), name, len, true, tok, out);
                        if (r < 0)
                                return r;
                }
                return 0;
        }
        for (;;) {
                struct dirent *de;
                size_t len;

                errno = 0;
                de = readdir(dir);
                if (!de)
                        break;
                if (de->d_name[0] == '.')
                        continue; /* temporaries, the lock file, "." and ".." */
                if (de->d_type != DT_REG && de->d_type != DT_UNKNOWN)
                        continue;
                len = strlen(de->d_name);
                if (len <= 5 || strcmp(de->d_name + len - 5, ".json") != 0)
                        continue;
                if (len > 11 && strcmp(de->d_name + len - 11, ".error.json") == 0)
                        continue;
                r = read_record(s, day, dirfd(dir), de->d_name, len - 5, false, tok, out);
                if (r < 0)
                        return r;
        }
        return 0;
}

struct reader {
        struct scan *s;
        struct found out;
        pthread_t thread;
};

static void *reader_thread(void *arg)
{
        struct reader *rd = arg;
        struct scan *s = rd->s;
        struct json_tokener *tok = json_tokener_new();

        if (!tok) {
                atomic_store(&s->error, -ENOMEM);
                return NULL;
        }
        for (;;) {
                size_t i = atomic_fetch_add(&s->next, 1);
                if (i >= s->end || atomic_load(&s->error) < 0)
                        break;
                if (read_day(s, &s->days[i], tok, &rd->out) < 0)
                        atomic_store(&s->error, -ENOMEM);
        }
        json_tokener_free(tok);
        return NULL;
}

unsigned scan_cpu_count(void)
{
        cpu_set_t set;
        int n;

        if (sched_getaffinity(0, sizeof(set), &set) < 0)
                return 1;
        n = CPU_COUNT(&set);
        return n > 0 ? (unsigned) n : 1;
}

static int compare_jobs(const void *x, const void *y)
{
        const struct scan_job *a = x, *b = y;
        int r;

        if (a->start != b->start)
                return a->start < b->start ? -1 : 1;
        r = strcmp(a->key, b->key);
        return r ? r : strcmp(a->guid, b->guid);
}

static int compare_jobs_newest_first(const void *x, const void *y)
{
        return compare_jobs(y, x);
}

void scan_job_done(struct scan_job *j)
{
        free(j->guid);
        free(j->record_name);
        free(j->key);
        free(j->tag);
        free(j->start_text);
        free(j->error_summary);
}

void scan_jobs_free(struct scan_job *jobs, size_t n)
{
        for (size_t i = 0; i < n; i++)
                scan_job_done(&jobs[i]);
        free(jobs);
}

int scan_job_open_dir(int rootfd, const struct scan_job *j)
{
        char path[256];

        (void) snprintf(path, sizeof(path), "%s/%04d/%02d/%02d", j->guid, j->year, j->month,
                        j->day);
        return archive_dir_open_beneath(rootfd, path, false);
}

char *scan_job_path(const struct scan_job *j, const char *suffix, char *buf, size_t size)
{
        int n = snprintf(buf, size, "%s/%04d/%02d/%02d/%s%s", j->guid, j->year, j->month, j->day,
                         j->key, suffix);
        return n < 0 || (size_t) n >= size ? NULL : buf;
}

static int date_compare(const struct day *a, const struct day *b)
{
        struct ymd x = {a->year, a->month, a->day}, y = {b->year, b->month, b->day};

        return ymd_compare(&x, &y);
}

static int compare_days(const void *x, const void *y)
{
        const struct day *a = x, *b = y;
        int r = date_compare(a, b);

        return r ? r : strcmp(a->guid, b->guid);
}

/* Lists the root's content folders to walk into s->guids, the names their days share. */
static int list_root(struct scan *s)
{
        _cleanup_(closedirp) DIR *root = NULL;
        size_t cap = 0;
        int r;

        r = dir_open_at(s->rootfd, ".", &root);
        if (r < 0)
                return r;
        for (;;) {
                struct dirent *de;

                errno = 0;
                de = readdir(root);
                if (!de)
                        return -errno;
                if (!maybe_dir(de) || !guid_is_valid(de->d_name) || !guid_wanted(s->f, de->d_name))
                        continue;
                if (s->n_guids == cap) {
                        size_t ncap = cap ? cap * 2 : 256;
                        char **n = reallocarray(s->guids, ncap, sizeof(*n));

                        if (!n)
                                return -ENOMEM;
                        s->guids = n;
                        cap = ncap;
                }
                s->guids[s->n_guids] = strdup(de->d_name);
                if (!s->guids[s->n_guids])
                        return -ENOMEM;
                s->n_guids++;
        }
}

static void *walker_thread(void *arg)
{
        struct walker *w = arg;
        struct scan *s = w->s;

        for (;;) {
                size_t i = atomic_fetch_add(&s->next_guid, 1);
                if (i >= s->n_guids || atomic_load(&s->error) < 0)
                        break;
                if (walk_numbered(w, s->rootfd, s->guids[i], 4, s->guids[i], 0, 0, on_year,
                                  s->guids[i]) < 0)
                        atomic_store(&s->error, -ENOMEM);
        }
        return NULL;
}

/* Finds the day folders of the content folders in s->guids on n_walkers threads (the caller's
 * among them) and puts them, sorted, in s->days. */
static int walk_days(struct scan *s, unsigned n_walkers)
{
        struct walker *walkers;
        unsigned started = 1;
        size_t total = 0;
        int r;

        if (s->n_guids < 16)
                n_walkers = 1; /* a thread costs more than it saves on a few folders */
        walkers = calloc(n_walkers, sizeof(*walkers));
        if (!walkers)
                return -ENOMEM;
        for (unsigned t = 0; t < n_walkers; t++)
                walkers[t].s = s;
        for (unsigned t = 1; t < n_walkers; t++) {
                if (pthread_create(&walkers[t].thread, NULL, walker_thread, &walkers[t]) != 0)
                        break;
                started++;
        }
        walker_thread(&walkers[0]);
        for (unsigned t = 1; t < started; t++)
                pthread_join(walkers[t].thread, NULL);
        r = atomic_load(&s->error);
        for (unsigned t = 0; t < n_walkers; t++)
                total += walkers[t].n_days;
        /* The first walker's days grown to hold the others' (each freed once copied). */
        if (r >= 0 && total > 0) {
                s->days = reallocarray(walkers[0].days, total, sizeof(*s->days));
                if (!s->days)
                        r = -ENOMEM;
                else {
                        s->n_days = walkers[0].n_days;
                        walkers[0].days = NULL;
                        walkers[0].n_days = 0;
                }
        }
        for (unsigned t = 0; t < n_walkers; t++) {
                if (r >= 0 && walkers[t].n_days) {
                        memcpy(s->days + s->n_days, walkers[t].days,
                               walkers[t].n_days * sizeof(*s->days));
                        s->n_days += walkers[t].n_days;
                }
                free(walkers[t].days);
        }
        free(walkers);
        if (r >= 0 && s->n_days > 1)
                qsort(s->days, s->n_days, sizeof(*s->days), compare_days);
        return r;
}

/* Reads the day folders [from, to) on n_readers threads (the caller's among them) and hands
 * their jobs, sorted, to fn. */
static int read_date(struct scan *s, struct reader *readers, unsigned n_readers, size_t from,
                     size_t to, bool last, scan_batch_fn *fn, void *fn_userdata)
{
        struct scan_job *batch;
        unsigned started = 1;
        size_t total = 0;
        int r;

        if (to - from < 16)
                n_readers = 1; /* a thread costs more than it saves on a few folders */
        atomic_store(&s->next, from);
        s->end = to;
        for (unsigned t = 1; t < n_readers; t++) {
                if (pthread_create(&readers[t].thread, NULL, reader_thread, &readers[t]) != 0)
                        break;
                started++;
        }
        reader_thread(&readers[0]);
        for (unsigned t = 1; t < started; t++)
                pthread_join(readers[t].thread, NULL);
        r = atomic_load(&s->error);
        if (r < 0)
                return r;
        for (unsigned t = 0; t < n_readers; t++)
                total += readers[t].out.n;
        batch = calloc(total ? total : 1, sizeof(*batch));
        if (!batch)
                return -ENOMEM;
        total = 0;
        for (unsigned t = 0; t < n_readers; t++) {
                if (readers[t].out.n)
                        memcpy(batch + total, readers[t].out.jobs,
                               readers[t].out.n * sizeof(*batch));
                total += readers[t].out.n;
                readers[t].out.n = 0;
        }
        qsort(batch, total, sizeof(*batch),
              s->f->newest_first ? compare_jobs_newest_first : compare_jobs);
        return fn(fn_userdata, batch, total, last);
}

int archive_scan_dates(int rootfd, const struct scan_filter *f, scan_warn_fn *warn, void *userdata,
                       scan_batch_fn *fn, void *fn_userdata, unsigned *ret_warnings)
{
        struct scan s = {.f = f, .rootfd = rootfd, .warn = warn, .userdata = userdata};
        struct reader *readers = NULL;
        unsigned n_readers = 0;
        int r = 0;

        pthread_mutex_init(&s.warn_lock, NULL);
        /* The folders are walked and their records read on every CPU: 100,000 day folders,
         * or 8,000 records, are mostly system calls (and parsing). */
        n_readers = scan_cpu_count();
        if (n_readers > 64)
                n_readers = 64;
        r = list_root(&s);
        if (r < 0)
                goto out;
        r = walk_days(&s, n_readers);
        if (r < 0)
                goto out;

        readers = calloc(n_readers, sizeof(*readers));
        if (!readers) {
                r = -ENOMEM;
                goto out;
        }
        for (unsigned t = 0; t < n_readers; t++)
                readers[t].s = &s;
        if (s.n_days == 0)
                r = fn(fn_userdata, NULL, 0, true);
        /* A date's folders are [from, to); newest first, the dates are taken from the end. */
        for (size_t done = 0, from, to; done < s.n_days && r >= 0; done += to - from) {
                if (f->newest_first) {
                        to = s.n_days - done;
                        for (from = to - 1;
                             from > 0 && date_compare(&s.days[from - 1], &s.days[to - 1]) == 0;
                             from--)
                                ;
                } else {
                        from = done;
                        for (to = from + 1;
                             to < s.n_days && date_compare(&s.days[from], &s.days[to]) == 0; to++)
                                ;
                }
                r = read_date(&s, readers, n_readers, from, to, done + (to - from) == s.n_days, fn,
                              fn_userdata);
        }
        if (r >= 0 && ret_warnings)
                *ret_warnings = s.warnings;
out:
        for (unsigned t = 0; readers && t < n_readers; t++) {
                scan_jobs_free(readers[t].out.jobs, readers[t].out.n);
                free(readers[t].out.rows);
        }
        free(readers);
        free(s.days);
        for (size_t i = 0; i < s.n_guids; i++)
                free(s.guids[i]);
        free(s.guids);
        pthread_mutex_destroy(&s.warn_lock);
        return r < 0 ? r : 0;
}

struct collect {
        struct scan_job *jobs;
        size_t n, cap;
};

static int collect_batch(void *userdata, struct scan_job *batch, size_t n, bool last)
{
        struct collect *c = userdata;

        (void) last;
        if (c->n + n + 1 > c->cap) {
                size_t cap = 2 * c->cap > c->n + n + 1 ? 2 * c->cap : c->n + n + 256;
                struct scan_job *jobs = reallocarray(c->jobs, cap, sizeof(*jobs));
                if (!jobs) {
                        scan_jobs_free(batch, n);
                        return -ENOMEM;
                }
                c->jobs = jobs;
                c->cap = cap;
        }
        if (n)
                memcpy(c->jobs + c->n, batch, n * sizeof(*batch));
        c->n += n;
        free(batch);
        return 0;
}

int archive_scan(int rootfd, const struct scan_filter *f, scan_warn_fn *warn, void *userdata,
                 struct scan_job **ret, size_t *ret_n, unsigned *ret_warnings)
{
        struct collect c = {0};
        int r;

        r = archive_scan_dates(rootfd, f, warn, userdata, collect_batch, &c, ret_warnings);
        if (r < 0) {
                scan_jobs_free(c.jobs, c.n);
                return r;
        }
        /* (The final call always comes, so c.jobs is allocated.) Dates in order, jobs of a date in
         * order: only a job filed under a date other than its start's (see the record's
         * date_source) can be out of place. */
        qsort(c.jobs, c.n, sizeof(*c.jobs),
              f->newest_first ? compare_jobs_newest_first : compare_jobs);
        *ret = c.jobs;
        *ret_n = c.n;
        return 0;
}

int scan_find_job(int rootfd, const char *guid, const char *key, scan_warn_fn *warn, void *userdata,
                  struct scan_job *ret)
{
        const char *guids[1] = {guid}, *keys[1] = {key};
        struct scan_filter f = {.guids = guids, .n_guids = 1, .keys = keys, .n_keys = 1};
        struct scan_job *jobs = NULL;
        size_t n = 0;
        int r;

        r = archive_scan(rootfd, &f, warn, userdata, &jobs, &n, NULL);
        if (r < 0)
                return r;
        if (n == 0) {
                free(jobs);
                return 0;
        }
        *ret = jobs[0]; /* the oldest, should a key be there twice */
        jobs[0] = (struct scan_job){0};
        scan_jobs_free(jobs, n);
        return 1;
}

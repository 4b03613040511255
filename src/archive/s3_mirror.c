/*
 * The read-through mirror of an archive in S3 (s3_mirror.h). The bucket is the truth for
 * what exists; the mirror holds copies of immutable objects, checked by their listed size.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "archive_scan.h"
#include "catalog.h"
#include "log.h"
#include "macro.h"
#include "s3_mirror.h"
#include "s3_read.h"
#include "store.h"
#include "util.h"

#define FETCH_BATCH    64   /* open temporaries (fds) per round of GETs */
#define STALE_TMP_SECS 3600 /* a temporary this old belongs to a command that died */
#define REL_MAX        512

static int remove_tree(int dfd, const char *name);

struct s3_mirror {
        struct store *s3;
        int rootfd;
        /* Logs the listings named: "guid/YYYY/MM/DD/<key>.log.gz" and their sizes, sorted. */
        struct s3_object *logs;
        size_t n_logs, cap_logs;
        bool logs_sorted;
        /* The catalog's sealed files, copied into .catalog/<writer>/ (s3_mirror_use_catalog()). */
        bool use_catalog, cat_synced;
        struct catalog *cat;
        /* The command's folder of logs fetched in part (.part.<pid>.<random>), "" until made. */
        char part[64];
        struct s3_mirror_stats stats;
};

static void keep_first(int *r, int e)
{
        if (*r == 0 && e < 0)
                *r = e;
}

static int mkdir_p_at(int dfd, const char *path, mode_t mode)
{
        char buf[REL_MAX];

        if (snprintf(buf, sizeof(buf), "%s", path) >= (int) sizeof(buf))
                return -ENAMETOOLONG;
        for (char *p = buf;; p++) {
                if (*p == '/' || *p == '\0') {
                        char c = *p;
                        *p = '\0';
                        if (*buf && mkdirat(dfd, buf, mode) < 0 && errno != EEXIST)
                                return -errno;
                        *p = c;
                        if (!c)
                                break;
                }
        }
        return 0;
}

int s3_mirror_open(struct store *s3, const char *dir, struct s3_mirror **ret)
{
        struct s3_mirror *m;
        int r;

        if (!s3 || !dir || !*dir)
                return -EINVAL;
        r = mkdir_p_at(AT_FDCWD, dir, 0700);
        if (r < 0)
                return r;
        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->s3 = s3;
        m->rootfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (m->rootfd < 0) {
                r = -errno;
                free(m);
                return r;
        }
        *ret = m;
        return 0;
}

void s3_mirror_free(struct s3_mirror *m)
{
        if (!m)
                return;
        if (m->part[0])
                (void) remove_tree(m->rootfd, m->part);
        (void) safe_close(m->rootfd);
        catalog_free(m->cat);
        s3_objects_free(m->logs, m->n_logs);
        free(m);
}

int s3_mirror_rootfd(const struct s3_mirror *m)
{
        return m->rootfd;
}

void s3_mirror_stats(const struct s3_mirror *m, struct s3_mirror_stats *ret)
{
        *ret = m->stats;
}

void s3_mirror_use_catalog(struct s3_mirror *m, bool on)
{
        m->use_catalog = on;
}

struct catalog *s3_mirror_catalog(const struct s3_mirror *m)
{
        return m->cat;
}

/* ---- Names ---- */

enum kind { KIND_NONE, KIND_RECORD, KIND_ERROR, KIND_LOG };

static bool ends_with(const char *s, size_t len, const char *suffix)
{
        size_t n = strlen(suffix);

        return len > n && memcmp(s + len - n, suffix, n) == 0;
}

/* The kind of a file name of a day folder, and the length of its job key. */
static enum kind name_kind(const char *name, size_t *key_len)
{
        size_t len = strlen(name);

        if (name[0] == '.' || !path_component_is_safe(name, len))
                return KIND_NONE;
        if (ends_with(name, len, ".error.json")) {
                *key_len = len - 11;
                return KIND_ERROR;
        }
        if (ends_with(name, len, ".json")) {
                *key_len = len - 5;
                return KIND_RECORD;
        }
        if (ends_with(name, len, ".log.gz")) {
                *key_len = len - 7;
                return KIND_LOG;
        }
        return KIND_NONE;
}

/* "YYYY/MM/DD/<file>" of the archive's layout: *file points at <file>. */
static bool is_day_path(const char *s, const char **file)
{
        static const char shape[] = "dddd/dd/dd/";

        for (size_t i = 0; i < sizeof(shape) - 1; i++)
                if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != shape[i])
                        return false;
        if (!s[11] || strchr(s + 11, '/'))
                return false;
        *file = s + 11;
        return true;
}

static void utc_day(int64_t t, char *buf, size_t size)
{
        time_t tt = (time_t) t;
        struct tm tm;

        if (!gmtime_r(&tt, &tm))
                tm = (struct tm){.tm_year = 70, .tm_mday = 1};
        (void) snprintf(buf, size, "%04d/%02d/%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}

static int compare_objects(const void *x, const void *y)
{
        return strcmp(((const struct s3_object *) x)->name, ((const struct s3_object *) y)->name);
}

static const struct s3_object *find_object(const struct s3_object *o, size_t n, const char *name)
{
        const struct s3_object key = {.name = (char *) name};

        return n ? bsearch(&key, o, n, sizeof(*o), compare_objects) : NULL;
}

/* ---- Fetching into the mirror ---- */

struct fetch {
        char rel[REL_MAX]; /* "guid/YYYY/MM/DD/<file>" */
        uint64_t size;
        bool log;
};

/* GETs the objects of todo (at most FETCH_BATCH) into temporaries beside their mirror names,
 * then renames each that arrived whole. results[i]: 0 or -errno. */
static int fetch_batch(struct s3_mirror *m, const struct fetch *todo, size_t n, int *results)
{
        struct s3_get gets[FETCH_BATCH];
        char tmps[FETCH_BATCH][REL_MAX + 32];
        char dirs[FETCH_BATCH][REL_MAX];
        int first = 0;

        for (size_t i = 0; i < n; i++) {
                const char *slash = strrchr(todo[i].rel, '/');
                size_t dl = (size_t) (slash - todo[i].rel);
                int r;

                memcpy(dirs[i], todo[i].rel, dl);
                dirs[i][dl] = '\0';
                (void) snprintf(tmps[i], sizeof(tmps[i]), "%s/.%s.%ld.tmp", dirs[i], slash + 1,
                                (long) getpid());
                gets[i] = (struct s3_get){.path = dirs[i], .name = slash + 1, .fd = -1};
                r = mkdir_p_at(m->rootfd, dirs[i], 0700);
                if (r >= 0) {
                        (void) unlinkat(m->rootfd, tmps[i], 0); /* ours, from a killed run */
                        gets[i].fd =
                                openat(m->rootfd, tmps[i],
                                       O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
                        r = gets[i].fd < 0 ? -errno : 0;
                }
                results[i] = r;
        }
        /* Only the ones with a temporary go out. */
        struct s3_get out[FETCH_BATCH];
        size_t idx[FETCH_BATCH], k = 0;
        for (size_t i = 0; i < n; i++)
                if (results[i] == 0) {
                        idx[k] = i;
                        out[k++] = gets[i];
                }
        (void) s3_get_many(m->s3, out, k);
        for (size_t j = 0; j < k; j++) {
                size_t i = idx[j];
                int r = out[j].result;
                if (r == 0 && out[j].len != todo[i].size)
                        r = -EPROTO; /* not the object the listing named */
                if (r == 0 && renameat(m->rootfd, tmps[i], m->rootfd, todo[i].rel) < 0)
                        r = -errno;
                if (r < 0)
                        (void) unlinkat(m->rootfd, tmps[i], 0);
                (void) close(out[j].fd);
                results[i] = r;
                if (r == 0 && todo[i].log) {
                        m->stats.logs_fetched++;
                        m->stats.logs_bytes += todo[i].size;
                } else if (r == 0) {
                        m->stats.fetched++;
                        m->stats.fetched_bytes += todo[i].size;
                }
        }
        for (size_t i = 0; i < n; i++) {
                if (results[i] < 0)
                        log_printf(LOG_DEBUG, "s3 mirror: %s: %s", todo[i].rel,
                                   strerror(-results[i]));
                /* Gone between the listing and the GET: as if it had not been listed. */
                if (results[i] != -ENOENT)
                        keep_first(&first, results[i]);
        }
        return first;
}

static int fetch_all(struct s3_mirror *m, const struct fetch *todo, size_t n, int *results)
{
        int first = 0;

        for (size_t i = 0; i < n; i += FETCH_BATCH) {
                size_t k = n - i < FETCH_BATCH ? n - i : FETCH_BATCH;
                int local[FETCH_BATCH];
                keep_first(&first, fetch_batch(m, todo + i, k, results ? results + i : local));
        }
        return first;
}

/* Whether rel is in the mirror as a regular file of size bytes. */
static bool mirrored(const struct s3_mirror *m, const char *rel, uint64_t size)
{
        struct stat st;

        return fstatat(m->rootfd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
               (uint64_t) st.st_size == size;
}

static int push_fetch(struct fetch **todo, size_t *n, size_t *cap, const char *rel, uint64_t size,
                      bool log)
{
        if (*n == *cap) {
                size_t nc = *cap ? 2 * *cap : 64;
                struct fetch *p = reallocarray(*todo, nc, sizeof(*p));
                if (!p)
                        return -ENOMEM;
                *todo = p;
                *cap = nc;
        }
        if (snprintf((*todo)[*n].rel, REL_MAX, "%s", rel) >= REL_MAX)
                return -ENAMETOOLONG;
        (*todo)[*n].size = size;
        (*todo)[*n].log = log;
        (*n)++;
        return 0;
}

/* ---- Removing what the bucket no longer has ---- */

static int remove_tree(int dfd, const char *name)
{
        DIR *d;
        struct dirent *de;
        int r = dir_open_at(dfd, name, &d), first = 0;

        if (r == -ENOTDIR || r == -ELOOP)
                return unlinkat(dfd, name, 0) < 0 ? -errno : 0;
        if (r < 0)
                return r == -ENOENT ? 0 : r;
        while ((de = readdir(d))) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                if (unlinkat(dirfd(d), de->d_name, 0) < 0 && (errno == EISDIR || errno == EPERM))
                        keep_first(&first, remove_tree(dirfd(d), de->d_name));
        }
        closedir(d);
        if (unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
                keep_first(&first, -errno);
        return first;
}

static bool stale_tmp(int dfd, const char *name)
{
        struct stat st;
        size_t len = strlen(name);

        return name[0] == '.' && ends_with(name, len, ".tmp") &&
               fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
               time(NULL) - st.st_mtime > STALE_TMP_SECS;
}

/*
 * Walks the mirror's day folders of guid within [after, until] ("YYYY/MM/DD", NULL: open) and
 * removes each file that the listing objs (names "YYYY/MM/DD/<file>", sorted) does not name,
 * then the folders left empty.
 */
static void remove_gone(struct s3_mirror *m, const char *guid, const char *after, const char *until,
                        const struct s3_object *objs, size_t n)
{
        DIR *dy, *dm, *dd;
        struct dirent *ey, *em, *ed;

        if (dir_open_at(m->rootfd, guid, &dy) < 0)
                return;
        while ((ey = readdir(dy))) {
                if (ey->d_name[0] == '.' || dir_open_at(dirfd(dy), ey->d_name, &dm) < 0)
                        continue;
                while ((em = readdir(dm))) {
                        char day[REL_MAX];
                        if (em->d_name[0] == '.' || dir_open_at(dirfd(dm), em->d_name, &dd) < 0)
                                continue;
                        while ((ed = readdir(dd))) {
                                char rel[REL_MAX];
                                if (strcmp(ed->d_name, ".") == 0 || strcmp(ed->d_name, "..") == 0)
                                        continue;
                                if (snprintf(day, sizeof(day), "%.8s/%.8s/%.8s", ey->d_name,
                                             em->d_name, ed->d_name) != 10)
                                        continue; /* not YYYY/MM/DD */
                                if ((after && strcmp(day, after) < 0) ||
                                    (until && strcmp(day, until) > 0))
                                        continue;
                                /* day is a folder here: its files */
                                DIR *df;
                                struct dirent *ef;
                                if (dir_open_at(dirfd(dd), ed->d_name, &df) < 0)
                                        continue;
                                while ((ef = readdir(df))) {
                                        const char *f = ef->d_name;
                                        if (f[0] == '.') {
                                                if (stale_tmp(dirfd(df), f))
                                                        (void) unlinkat(dirfd(df), f, 0);
                                                continue;
                                        }
                                        if (snprintf(rel, sizeof(rel), "%s/%s", day, f) >=
                                                    (int) sizeof(rel) ||
                                            find_object(objs, n, rel))
                                                continue;
                                        if (unlinkat(dirfd(df), f, 0) == 0)
                                                m->stats.removed++;
                                        else if (errno == EISDIR)
                                                (void) remove_tree(dirfd(df), f);
                                }
                                closedir(df);
                                (void) unlinkat(dirfd(dd), ed->d_name, AT_REMOVEDIR);
                        }
                        closedir(dd);
                        (void) unlinkat(dirfd(dm), em->d_name, AT_REMOVEDIR);
                }
                closedir(dm);
                (void) unlinkat(dirfd(dy), ey->d_name, AT_REMOVEDIR);
        }
        closedir(dy);
        (void) unlinkat(m->rootfd, guid, AT_REMOVEDIR); /* when empty */
}

/* ---- Sync ---- */

static bool guid_wanted(const struct scan_filter *f, const char *name)
{
        if (!f || !f->guids)
                return true;
        for (size_t i = 0; i < f->n_guids; i++)
                if (strcasecmp(f->guids[i], name) == 0)
                        return true;
        return false;
}

static int add_log(struct s3_mirror *m, const char *rel, uint64_t size)
{
        if (m->n_logs == m->cap_logs) {
                size_t nc = m->cap_logs ? 2 * m->cap_logs : 64;
                struct s3_object *p = reallocarray(m->logs, nc, sizeof(*p));
                if (!p)
                        return -ENOMEM;
                m->logs = p;
                m->cap_logs = nc;
        }
        if (!(m->logs[m->n_logs].name = strdup(rel)))
                return -ENOMEM;
        m->logs[m->n_logs++].size = size;
        m->logs_sorted = false;
        return 0;
}

static int compare_strp(const void *x, const void *y)
{
        return strcmp(*(const char *const *) x, *(const char *const *) y);
}

/*
 * Whether the catalog covers the day folder guid/day, whose objects are objs[from..to): its
 * rows are exactly the records listed. Then the folder's records need not be fetched: the
 * folder is made (empty) for the scan to visit, which answers it from the catalog.
 */
static int covered(struct s3_mirror *m, const char *guid, const struct s3_object *objs, size_t from,
                   size_t to)
{
        const char **keys;
        char folder[REL_MAX], *strings = NULL;
        size_t nk = 0, len = 0, cap = 0, *offs;
        int r = 0;

        if (!m->cat)
                return 0;
        keys = calloc(to - from + 1, sizeof(*keys));
        offs = calloc(to - from + 1, sizeof(*offs));
        if (!keys || !offs) {
                free(keys);
                free(offs);
                return -ENOMEM;
        }
        for (size_t i = from; i < to && r >= 0; i++) {
                const char *file;
                size_t kl;
                if (!is_day_path(objs[i].name, &file) || name_kind(file, &kl) != KIND_RECORD)
                        continue;
                offs[nk++] = len;
                r = buf_append(&strings, &len, &cap, file, kl + 1, 256);
                if (r >= 0)
                        strings[len - 1] = '\0';
        }
        for (size_t i = 0; r >= 0 && i < nk; i++)
                keys[i] = strings + offs[i];
        if (r >= 0 && nk > 1)
                qsort(keys, nk, sizeof(*keys), compare_strp);
        if (r >= 0 && snprintf(folder, sizeof(folder), "%s/%.10s", guid, objs[from].name) <
                              (int) sizeof(folder))
                r = catalog_cover_folder(m->cat, folder, keys, nk);
        if (r > 0 && mkdir_p_at(m->rootfd, folder, 0700) < 0)
                r = 0;
        free(strings);
        free(keys);
        free(offs);
        return r;
}

static int sync_guid(struct s3_mirror *m, const char *guid, const char *after, const char *until,
                     const char *key)
{
        struct s3_object *objs = NULL;
        struct fetch *todo = NULL;
        size_t n = 0, n_todo = 0, cap_todo = 0, key_len = key ? strlen(key) : 0;
        size_t day_end = 0;
        bool day_covered = false;
        int r;

        r = s3_list_objects(m->s3, guid, after, until, &objs, &n);
        if (r < 0)
                return r;
        m->stats.listed += n;
        if (n > 1)
                qsort(objs, n, sizeof(*objs), compare_objects);
        /* First, as it removes the folders it leaves empty: a covered one is made below. */
        remove_gone(m, guid, after, until, objs, n);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                const char *file;
                char rel[REL_MAX];
                size_t kl;
                enum kind k;

                if (!is_day_path(objs[i].name, &file) || (k = name_kind(file, &kl)) == KIND_NONE)
                        continue;
                if (snprintf(rel, sizeof(rel), "%s/%s", guid, objs[i].name) >= (int) sizeof(rel))
                        continue;
                if (k == KIND_LOG) {
                        r = add_log(m, rel, objs[i].size);
                        continue;
                }
                if (key && (kl != key_len || memcmp(file, key, kl) != 0))
                        continue;
                if (!key && i >= day_end) {
                        /* A new day folder: its objects are objs[i..day_end). */
                        for (day_end = i + 1;
                             day_end < n && strncmp(objs[day_end].name, objs[i].name, 11) == 0;
                             day_end++)
                                ;
                        r = covered(m, guid, objs, i, day_end);
                        day_covered = r > 0;
                        if (r < 0)
                                break;
                        if (day_covered)
                                m->stats.covered++;
                }
                if (day_covered)
                        continue;
                if (mirrored(m, rel, objs[i].size)) {
                        m->stats.cached++;
                        continue;
                }
                r = push_fetch(&todo, &n_todo, &cap_todo, rel, objs[i].size, false);
        }
        if (r >= 0)
                r = fetch_all(m, todo, n_todo, NULL);
        free(todo);
        s3_objects_free(objs, n);
        return r;
}

/*
 * The catalog's sealed files: the bucket's .catalog/<writer>/ copied into the mirror's (new
 * ones fetched, those merged away removed), then read, once per mirror. Any failure only
 * leaves the catalog out (the records are read instead).
 */
static void sync_catalog(struct s3_mirror *m)
{
        char **ids = NULL;
        size_t n_ids = 0, n_fds = 0;
        int *fds = NULL, r;

        m->cat_synced = true;
        r = store_list_dirs(m->s3, CATALOG_DIR, &ids, &n_ids);
        if (r < 0 || n_ids == 0) {
                store_names_free(ids, n_ids);
                (void) remove_tree(m->rootfd, CATALOG_DIR);
                return;
        }
        fds = calloc(n_ids, sizeof(*fds));
        for (size_t i = 0; fds && i < n_ids; i++) {
                char dir[REL_MAX];
                struct s3_object *objs = NULL;
                struct fetch *todo = NULL;
                size_t n = 0, n_todo = 0, cap_todo = 0;
                DIR *d;
                struct dirent *de;

                if (!path_component_is_safe(ids[i], strlen(ids[i])) || ids[i][0] == '.' ||
                    snprintf(dir, sizeof(dir), "%s/%s", CATALOG_DIR, ids[i]) >= (int) sizeof(dir))
                        continue;
                r = s3_list_objects(m->s3, dir, NULL, NULL, &objs, &n);
                if (r < 0)
                        break;
                m->stats.listed += n;
                if (n > 1)
                        qsort(objs, n, sizeof(*objs), compare_objects);
                for (size_t k = 0; r >= 0 && k < n; k++) {
                        char rel[REL_MAX];
                        if (objs[k].name[0] == '.' || strchr(objs[k].name, '/') ||
                            snprintf(rel, sizeof(rel), "%s/%s", dir, objs[k].name) >=
                                    (int) sizeof(rel))
                                continue;
                        if (mirrored(m, rel, objs[k].size))
                                m->stats.cached++;
                        else
                                r = push_fetch(&todo, &n_todo, &cap_todo, rel, objs[k].size, false);
                }
                if (r >= 0)
                        r = fetch_all(m, todo, n_todo, NULL);
                free(todo);
                /* Files merged away in the bucket leave the mirror too. */
                if (r >= 0 && dir_open_at(m->rootfd, dir, &d) == 0) {
                        while ((de = readdir(d)))
                                if (de->d_name[0] != '.' && !find_object(objs, n, de->d_name) &&
                                    unlinkat(dirfd(d), de->d_name, 0) == 0)
                                        m->stats.removed++;
                        closedir(d);
                }
                s3_objects_free(objs, n);
                if (r < 0)
                        break;
                int fd = openat(m->rootfd, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (fd >= 0)
                        fds[n_fds++] = fd;
        }
        /* Writers whose folder the bucket no longer has (a catalog removed by hand). */
        DIR *cd;
        if (r >= 0 && dir_open_at(m->rootfd, CATALOG_DIR, &cd) == 0) {
                struct dirent *de;
                while ((de = readdir(cd))) {
                        bool listed = false;
                        if (de->d_name[0] == '.')
                                continue;
                        for (size_t i = 0; i < n_ids && !listed; i++)
                                listed = strcmp(ids[i], de->d_name) == 0;
                        if (!listed)
                                (void) remove_tree(dirfd(cd), de->d_name);
                }
                closedir(cd);
        }
        if (r >= 0 && fds) {
                unsigned damaged = 0;
                if (catalog_open_dirs(fds, n_fds, &m->cat, &damaged) < 0)
                        m->cat = NULL;
                else if (damaged > 0)
                        log_printf(LOG_DEBUG, "s3 mirror: %u damaged catalog files left out",
                                   damaged);
        } else {
                log_printf(LOG_DEBUG, "s3 mirror: the catalog is left out: %s",
                           strerror(r < 0 ? -r : ENOMEM));
        }
        for (size_t i = 0; i < n_fds; i++)
                (void) close(fds[i]);
        free(fds);
        store_names_free(ids, n_ids);
}

int s3_mirror_sync(struct s3_mirror *m, const struct scan_filter *f, const char *key)
{
        char after[48], until[48];
        char **names = NULL;
        size_t n = 0;
        DIR *d;
        struct dirent *de;
        int r;

        r = store_list_dirs(m->s3, "", &names, &n);
        if (r < 0)
                return r == -EACCES ? -EKEYREJECTED : r;
        m->stats.listed += n;
        if (m->use_catalog && !key && !m->cat_synced)
                sync_catalog(m);
        /* Content folders the bucket no longer has. */
        if (dir_open_at(m->rootfd, ".", &d) == 0) {
                while ((de = readdir(d))) {
                        bool listed = false;
                        if (de->d_name[0] == '.' || !guid_wanted(f, de->d_name))
                                continue;
                        for (size_t i = 0; i < n && !listed; i++)
                                listed = strcmp(names[i], de->d_name) == 0;
                        if (!listed && remove_tree(m->rootfd, de->d_name) == 0)
                                m->stats.removed++;
                }
                closedir(d);
        }
        if (f && f->has_since)
                utc_day(f->since, after, sizeof(after));
        if (f && f->has_until)
                utc_day(f->until - 1, until, sizeof(until));
        for (size_t i = 0; r >= 0 && i < n; i++) {
                /* Content folders only, as archive_scan() reads them. */
                if (!guid_is_valid(names[i]) || !guid_wanted(f, names[i]))
                        continue;
                r = sync_guid(m, names[i], f && f->has_since ? after : NULL,
                              f && f->has_until ? until : NULL, key);
        }
        store_names_free(names, n);
        return r;
}

static void sort_logs(struct s3_mirror *m)
{
        if (!m->logs_sorted && m->n_logs > 1) {
                qsort(m->logs, m->n_logs, sizeof(*m->logs), compare_objects);
                m->logs_sorted = true;
        }
}

int s3_mirror_fetch_logs(struct s3_mirror *m, const struct scan_job *jobs, size_t n, int *results)
{
        struct fetch *todo = NULL;
        size_t n_todo = 0, cap_todo = 0, *which = NULL;
        int *res = NULL, r = 0;

        sort_logs(m);
        which = calloc(n ? n : 1, sizeof(*which));
        if (!which)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                const struct s3_object *o;
                char rel[REL_MAX];

                if (results)
                        results[i] = 0;
                if (jobs[i].log_bytes < 0 || !scan_job_path(&jobs[i], ".log.gz", rel, sizeof(rel)))
                        continue;
                o = find_object(m->logs, m->n_logs, rel);
                if (!o) {
                        /* A record without its log object: the reader says so, as on disk. */
                        if (results)
                                results[i] = -ENOENT;
                        continue;
                }
                if (mirrored(m, rel, o->size)) {
                        m->stats.cached++;
                        /* Used now: the last to go when the cap trims. */
                        (void) utimensat(m->rootfd, rel, NULL, AT_SYMLINK_NOFOLLOW);
                        continue;
                }
                which[n_todo] = i;
                r = push_fetch(&todo, &n_todo, &cap_todo, rel, o->size, true);
                if (r < 0)
                        break;
        }
        if (r >= 0 && n_todo > 0) {
                res = calloc(n_todo, sizeof(*res));
                r = res ? fetch_all(m, todo, n_todo, res) : -ENOMEM;
                for (size_t k = 0; res && results && k < n_todo; k++)
                        results[which[k]] = res[k];
        }
        free(res);
        free(which);
        free(todo);
        return r;
}

/* ---- Logs in part ---- */

/* Makes the command's folder (random: a cache may be shared across pid namespaces), and
 * removes those of commands that died (an hour old: it is touched at each round). */
static int make_part_dir(struct s3_mirror *m)
{
        DIR *d;
        struct dirent *de;
        struct stat st;

        if (m->part[0]) {
                (void) utimensat(m->rootfd, m->part, NULL, AT_SYMLINK_NOFOLLOW);
                return 0;
        }
        if (dir_open_at(m->rootfd, ".", &d) == 0) {
                while ((de = readdir(d)))
                        if (strncmp(de->d_name, ".part.", 6) == 0 &&
                            fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                            time(NULL) - st.st_mtime > STALE_TMP_SECS)
                                (void) remove_tree(dirfd(d), de->d_name);
                closedir(d);
        }
        for (int tries = 0; tries < 16; tries++) {
                uint32_t rnd;
                char name[sizeof(m->part)];
                if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
                        return -errno;
                (void) snprintf(name, sizeof(name), ".part.%ld.%08" PRIx32, (long) getpid(), rnd);
                if (mkdirat(m->rootfd, name, 0700) == 0) {
                        memcpy(m->part, name, sizeof(name));
                        return 0;
                }
                if (errno != EEXIST)
                        return -errno;
        }
        return -EEXIST;
}

static int push_get(struct s3_get **gets, size_t **owner, size_t *n, size_t *cap,
                    const struct s3_get *g, size_t who)
{
        if (*n == *cap) {
                size_t nc = *cap ? 2 * *cap : 64;
                struct s3_get *p = reallocarray(*gets, nc, sizeof(*p));
                size_t *o;
                if (!p)
                        return -ENOMEM;
                *gets = p;
                o = reallocarray(*owner, nc, sizeof(*o));
                if (!o)
                        return -ENOMEM;
                *owner = o;
                *cap = nc;
        }
        (*gets)[*n] = *g;
        (*owner)[(*n)++] = who;
        return 0;
}

/* One round of at most FETCH_BATCH parts (an fd each), their GETs all at once. */
static int fetch_parts_batch(struct s3_mirror *m, struct s3_part *parts, size_t n)
{
        char rels[FETCH_BATCH][REL_MAX], locals[FETCH_BATCH][REL_MAX + 64];
        const char *names[FETCH_BATCH];
        int fds[FETCH_BATCH];
        struct s3_get *gets = NULL;
        size_t *owner = NULL, n_gets = 0, cap = 0;
        int r = 0;

        for (size_t i = 0; i < n; i++) {
                struct s3_part *p = &parts[i];
                const struct s3_object *o;
                char *slash;

                fds[i] = -1;
                p->result = -EINVAL;
                if (p->job->log_bytes < 0 ||
                    !scan_job_path(p->job, ".log.gz", rels[i], sizeof(rels[i])) ||
                    snprintf(locals[i], sizeof(locals[i]), "%s/%s", m->part, rels[i]) >=
                            (int) sizeof(locals[i]))
                        continue;
                o = find_object(m->logs, m->n_logs, rels[i]);
                if (!o) {
                        p->result = -ENOENT;
                        continue;
                }
                if (mirrored(m, rels[i], o->size)) {
                        m->stats.cached++;
                        (void) utimensat(m->rootfd, rels[i], NULL, AT_SYMLINK_NOFOLLOW);
                        p->result = 1;
                        continue;
                }
                p->result = -ESTALE;
                if (o->size != p->size)
                        continue;
                for (size_t k = 0; k < p->n_ranges; k++)
                        if (p->ranges[k].length == 0 || p->ranges[k].offset > p->size ||
                            p->ranges[k].length > p->size - p->ranges[k].offset ||
                            (k > 0 && p->ranges[k].offset <
                                              p->ranges[k - 1].offset + p->ranges[k - 1].length))
                                goto next;
                slash = strrchr(locals[i], '/');
                *slash = '\0';
                p->result = mkdir_p_at(m->rootfd, locals[i], 0700);
                *slash = '/';
                if (p->result < 0)
                        continue;
                fds[i] = openat(m->rootfd, locals[i],
                                O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
                if (fds[i] < 0 || ftruncate(fds[i], (off_t) p->size) < 0) {
                        p->result = -errno;
                        continue;
                }
                /* The object's path and name: rels[i] split at its last '/'. */
                slash = strrchr(rels[i], '/');
                *slash = '\0';
                names[i] = slash + 1;
                p->result = 0;
                for (size_t k = 0; k < p->n_ranges && r >= 0; k++) {
                        const struct s3_range *g = &p->ranges[k];
                        struct s3_get *last = n_gets ? &gets[n_gets - 1] : NULL;
                        if (last && owner[n_gets - 1] == i &&
                            last->offset + last->length == g->offset) {
                                last->length += g->length; /* adjacent: one GET */
                                continue;
                        }
                        r = push_get(&gets, &owner, &n_gets, &cap,
                                     &(struct s3_get){.path = rels[i],
                                                      .name = names[i],
                                                      .offset = g->offset,
                                                      .length = g->length,
                                                      .fd = fds[i],
                                                      .at_offset = true},
                                     i);
                }
        next:;
        }
        if (r >= 0)
                (void) s3_get_many(m->s3, gets, n_gets);
        for (size_t k = 0; k < n_gets; k++) {
                struct s3_part *p = &parts[owner[k]];
                int e = r < 0 ? r : gets[k].result;
                if (e == 0 && gets[k].len != gets[k].length)
                        e = -EPROTO;
                keep_first(&p->result, e);
                m->stats.part_gets += e == 0;
                m->stats.part_bytes += e == 0 ? gets[k].len : 0;
        }
        for (size_t i = 0; i < n; i++) {
                if (fds[i] < 0)
                        continue;
                (void) close(fds[i]);
                keep_first(&parts[i].result, r); /* not all its GETs went out */
                if (parts[i].result < 0) {
                        log_printf(LOG_DEBUG, "s3 mirror: part of %s: %s", locals[i],
                                   strerror(-parts[i].result));
                        (void) unlinkat(m->rootfd, locals[i], 0);
                } else
                        m->stats.parts++;
        }
        free(gets);
        free(owner);
        return r;
}

int s3_mirror_fetch_parts(struct s3_mirror *m, struct s3_part *parts, size_t n)
{
        int r = n ? make_part_dir(m) : 0, first = 0;

        sort_logs(m);
        for (size_t i = 0; i < n; i += FETCH_BATCH) {
                size_t k = n - i < FETCH_BATCH ? n - i : FETCH_BATCH;
                if (r < 0) {
                        for (size_t j = 0; j < k; j++)
                                parts[i + j].result = r;
                        continue;
                }
                keep_first(&first, fetch_parts_batch(m, parts + i, k));
        }
        return first;
}

int s3_mirror_part_open(const struct s3_mirror *m, const struct scan_job *job, int *ret_dfd,
                        char *name, size_t size)
{
        char rel[REL_MAX], local[REL_MAX + 64];
        struct stat st;
        char *slash;
        int fd;

        if (!m->part[0])
                return -ENOENT;
        if (!scan_job_path(job, ".log.gz", rel, sizeof(rel)) ||
            snprintf(local, sizeof(local), "%s/%s", m->part, rel) >= (int) sizeof(local))
                return -ENAMETOOLONG;
        slash = strrchr(local, '/');
        if (snprintf(name, size, "%s", slash + 1) >= (int) size)
                return -ENAMETOOLONG;
        *slash = '\0';
        fd = openat(m->rootfd, local, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode)) {
                (void) close(fd);
                return -ENOENT;
        }
        *ret_dfd = fd;
        return 0;
}

/* ---- The cap on logs ---- */

struct cached_log {
        char rel[REL_MAX];
        uint64_t size;
        struct timespec used;
};

static int compare_used(const void *x, const void *y)
{
        const struct cached_log *a = x, *b = y;

        if (a->used.tv_sec != b->used.tv_sec)
                return a->used.tv_sec < b->used.tv_sec ? -1 : 1;
        if (a->used.tv_nsec != b->used.tv_nsec)
                return a->used.tv_nsec < b->used.tv_nsec ? -1 : 1;
        return strcmp(a->rel, b->rel);
}

/* Collects the .log.gz files of the day folders below rel ("guid", depth 1). */
static int collect_logs(int rootfd, const char *rel, int depth, struct cached_log **v, size_t *n,
                        size_t *cap, uint64_t *total)
{
        DIR *d;
        struct dirent *de;
        int r = dir_open_at(rootfd, rel, &d);

        if (r < 0)
                return r == -ENOENT || r == -ENOTDIR ? 0 : r;
        while (r >= 0 && (de = readdir(d))) {
                char sub[REL_MAX];
                size_t kl;
                struct stat st;

                if (de->d_name[0] == '.' ||
                    snprintf(sub, sizeof(sub), "%s/%s", rel, de->d_name) >= (int) sizeof(sub))
                        continue;
                if (depth < 4) {
                        r = collect_logs(rootfd, sub, depth + 1, v, n, cap, total);
                        continue;
                }
                if (name_kind(de->d_name, &kl) != KIND_LOG ||
                    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
                    !S_ISREG(st.st_mode))
                        continue;
                if (*n == *cap) {
                        size_t nc = *cap ? 2 * *cap : 256;
                        struct cached_log *p = reallocarray(*v, nc, sizeof(*p));
                        if (!p) {
                                r = -ENOMEM;
                                break;
                        }
                        *v = p;
                        *cap = nc;
                }
                memcpy((*v)[*n].rel, sub, strlen(sub) + 1);
                (*v)[*n].size = (uint64_t) st.st_size;
                (*v)[*n].used = st.st_mtim;
                *total += (uint64_t) st.st_size;
                (*n)++;
        }
        closedir(d);
        return r;
}

int s3_mirror_trim_logs(struct s3_mirror *m, uint64_t max_bytes)
{
        struct cached_log *v = NULL;
        size_t n = 0, cap = 0;
        uint64_t total = 0;
        DIR *d;
        struct dirent *de;
        int r = dir_open_at(m->rootfd, ".", &d);

        if (r < 0)
                return r;
        while (r >= 0 && (de = readdir(d)))
                if (de->d_name[0] != '.')
                        r = collect_logs(m->rootfd, de->d_name, 1, &v, &n, &cap, &total);
        closedir(d);
        if (r >= 0 && total > max_bytes) {
                qsort(v, n, sizeof(*v), compare_used);
                for (size_t i = 0; i < n && total > max_bytes; i++) {
                        if (unlinkat(m->rootfd, v[i].rel, 0) < 0)
                                continue;
                        total -= v[i].size;
                        m->stats.trimmed++;
                        m->stats.trimmed_bytes += v[i].size;
                }
        }
        free(v);
        return r;
}

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#if __has_include(<linux/openat2.h>) /* Linux 5.6's headers */
#include <linux/openat2.h>
#define HAVE_OPENAT2 1
#endif
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "archive.h"
#include "gzpool.h"
#include "macro.h"
#include "util.h"

/*
 * Room for any relative path we build: a GUID and a key are at most 128 bytes each
 * (path_component_is_safe), so "guid/YYYY/MM/DD/.key.error.json.tmp" stays under 300.
 */
#define REL_PATH_MAX 512

/* guid/YYYY/MM/DD: the sweep looks no deeper than the day folders. */
#define SWEEP_MAX_DEPTH 4

struct archive {
        int root_fd;
        dev_t root_dev;
        int lock_fd; /* <root>/.lock while we hold the writer lock, else -1 */
        /* The day folder of the last "archived" answer, opened beneath the root: consecutive
         * jobs of a list mostly share one (archive_job_is_archived). */
        int day_fd;
        dev_t day_dev;
        ino_t day_ino;
        char day_path[REL_PATH_MAX];
        struct gzpool *gz;
};

/* A log on its way into ".<key>.log.gz.tmp": compressed by the gzip pool, then queued in a
 * batch. */
struct archive_file {
        struct archive *archive; /* borrowed; must outlive the file */
        struct gzjob *job;       /* until the pool has ended the stream */
        bool created;            /* the temporary exists under tmp_path and is ours to remove */
        bool finishing;          /* archive_file_finish() was called */
        bool finished;           /* the gzip stream is complete and the fd closed */
        int error;               /* the first failure, returned again by every later call */
        archive_finish_fn *done;
        void *userdata;
        char tmp_path[REL_PATH_MAX]; /* relative to the root */
};

/* The temporary's name in its day folder. */
static const char *tmp_name(const struct archive_file *f)
{
        return strrchr(f->tmp_path, '/') + 1;
}

enum archive_kind {
        ARCHIVE_KIND_LOG,
        ARCHIVE_KIND_ERROR,
        ARCHIVE_KIND_RECORD,
};

static const char *const kind_suffix[] = {
        [ARCHIVE_KIND_LOG] = ".log.gz",
        [ARCHIVE_KIND_ERROR] = ".error.json",
        [ARCHIVE_KIND_RECORD] = ".json",
};

/* One queued job. loc points at the entry's own copies of the GUID and key. */
struct batch_entry {
        struct archive_loc loc;
        char *guid;
        char *key;
        struct archive_file *log;
        char *error_json;
        char *record_json;
        archive_commit_fn *done;
        void *userdata;
        int r;      /* 0 while the entry is on track, -errno once it failed */
        size_t dir; /* its day folder: an index into the batch's dirs */
        /* What exists on disk for this entry, so that a failure can undo exactly that: only
         * names this entry created itself (see archive_batch_commit). */
        bool error_tmp, record_tmp;
        bool log_final, error_final, record_final;
};

/* A day folder of a batch, opened once beneath the root without symlinks; every file of
 * its entries is written, renamed and removed relative to this fd, never by path. */
struct batch_dir {
        char *path; /* "guid/YYYY/MM/DD" */
        int fd;
        dev_t dev; /* its filesystem, for syncfs */
};

struct archive_batch {
        struct archive *archive;
        struct batch_entry *entries;
        size_t n_entries, n_allocated;
        struct batch_dir *dirs;
        size_t n_dirs, n_dirs_allocated;
};

static bool loc_is_valid(const struct archive_loc *loc)
{
        return loc && loc->guid && loc->key &&
               path_component_is_safe(loc->guid, strlen(loc->guid)) &&
               path_component_is_safe(loc->key, strlen(loc->key)) && loc->year >= 1 &&
               loc->year <= 9999 && loc->month >= 1 && loc->month <= 12 && loc->day >= 1 &&
               loc->day <= 31;
}

static bool loc_equal(const struct archive_loc *x, const struct archive_loc *y)
{
        return x->year == y->year && x->month == y->month && x->day == y->day &&
               strcmp(x->guid, y->guid) == 0 && strcmp(x->key, y->key) == 0;
}

/* "guid/YYYY/MM/DD", relative to the root. */
static int format_dir(char *buf, size_t size, const struct archive_loc *loc)
{
        int n = snprintf(buf, size, "%s/%04d/%02d/%02d", loc->guid, loc->year, loc->month,
                         loc->day);
        if (n < 0 || (size_t) n >= size)
                return -ENAMETOOLONG;
        return 0;
}

/* "guid/YYYY/MM/DD/<key><suffix>", or its temporary ".<key><suffix>.tmp". */
static int format_path(char *buf, size_t size, const struct archive_loc *loc,
                       enum archive_kind kind, bool tmp)
{
        int n = snprintf(buf, size, "%s/%04d/%02d/%02d/%s%s%s%s", loc->guid, loc->year, loc->month,
                         loc->day, tmp ? "." : "", loc->key, kind_suffix[kind], tmp ? ".tmp" : "");
        if (n < 0 || (size_t) n >= size)
                return -ENAMETOOLONG;
        return 0;
}

/* "<key><suffix>" or ".<key><suffix>.tmp": a name in the job's day folder. */
static int format_name(char *buf, size_t size, const struct archive_loc *loc,
                       enum archive_kind kind, bool tmp)
{
        int n = snprintf(buf, size, "%s%s%s%s", tmp ? "." : "", loc->key, kind_suffix[kind],
                         tmp ? ".tmp" : "");
        if (n < 0 || (size_t) n >= size)
                return -ENAMETOOLONG;
        return 0;
}

/* After ELOOP or ENOTDIR from an O_NOFOLLOW|O_DIRECTORY open of name: which was it? */
static int not_a_folder(int dfd, const char *name, int e)
{
        struct stat st;

        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) >= 0 && S_ISLNK(st.st_mode))
                return -ELOOP;
        return e == ELOOP ? -ENOTDIR : -e;
}

/* Whether path is one or more plain names joined by single '/': none empty, ".", ".." or
 * longer than NAME_MAX, no leading or trailing '/'. */
static bool path_is_plain(const char *path)
{
        for (const char *p = path;;) {
                size_t len = strcspn(p, "/");

                if (len == 0 || len > NAME_MAX || (len == 1 && p[0] == '.') ||
                    (len == 2 && p[0] == '.' && p[1] == '.'))
                        return false;
                p += len;
                if (*p == '\0')
                        return true;
                p++;
        }
}

/*
 * The whole walk in one call, on kernels with openat2 (Linux 5.6): RESOLVE_BENEATH and
 * RESOLVE_NO_SYMLINKS refuse whatever the walk below refuses, so only its success is
 * taken. Any error (ENOENT before creating, ELOOP or ENOTDIR to be named precisely, ENOSYS
 * on an older kernel, EPERM from a seccomp filter that does not know the call) is left to
 * the walk. Saves six system calls of seven for a day folder: the daemon opens one for
 * every job it archives, and a search one for every job it reads. (One difference, and not
 * an escape: a folder on the way that grants search but not read permission is crossed
 * here, as any path lookup crosses it, where the walk's open of it gets EACCES.)
 */
static int open_beneath_fast(int dir_fd, const char *path)
{
#if defined(HAVE_OPENAT2) && defined(SYS_openat2)
        static atomic_bool unavailable;
        struct open_how how = {
                .flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC,
                .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS,
        };
        long fd;

        if (atomic_load_explicit(&unavailable, memory_order_relaxed))
                return -ENOSYS;
        fd = syscall(SYS_openat2, dir_fd, path, &how, sizeof(how));
        if (fd >= 0)
                return (int) fd;
        if (errno == ENOSYS || errno == EPERM)
                atomic_store_explicit(&unavailable, true, memory_order_relaxed);
        return -errno;
#else
        (void) dir_fd;
        (void) path;
        return -ENOSYS;
#endif
}

/*
 * One component at a time: openat(O_NOFOLLOW|O_DIRECTORY) refuses a symlink in the last
 * component, and every earlier component is already an fd, so nothing on the way can be
 * one. mkdirat never follows a symlink in its last component either: a symlink there gives
 * EEXIST, and the open after it then refuses the symlink.
 */
int archive_dir_open_beneath(int dir_fd, const char *path, bool create)
{
        char name[NAME_MAX + 1];
        int fd = -1;

        if (dir_fd < 0 || !path || !path_is_plain(path))
                return -EINVAL;
        fd = open_beneath_fast(dir_fd, path);
        if (fd >= 0)
                return fd;
        fd = -1;
        for (const char *p = path;;) {
                size_t len = strcspn(p, "/");
                int parent = fd >= 0 ? fd : dir_fd, next;

                memcpy(name, p, len);
                name[len] = '\0';
                next = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (next < 0 && errno == ENOENT && create) {
                        if (mkdirat(parent, name, 0750) < 0 && errno != EEXIST) {
                                int r = -errno;
                                (void) safe_close(fd);
                                return r;
                        }
                        next = openat(parent, name,
                                      O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                }
                if (next < 0) {
                        int r = errno == ELOOP || errno == ENOTDIR
                                        ? not_a_folder(parent, name, errno)
                                        : -errno;
                        (void) safe_close(fd);
                        return r;
                }
                (void) safe_close(fd);
                fd = next;
                p += len;
                if (*p == '\0')
                        return fd;
                p++;
        }
}

bool archive_file_beneath(int root_fd, const char *dir, const char *name, int *ret_dir_fd)
{
        char path[2 * REL_PATH_MAX];
        struct stat st;
        int fd, n;

        n = snprintf(path, sizeof(path), "%s/%s", dir, name);
        if (n < 0 || (size_t) n >= sizeof(path) ||
            fstatat(root_fd, path, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
                return false;
        fd = archive_dir_open_beneath(root_fd, dir, false);
        if (fd < 0)
                return false;
        if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode)) {
                (void) safe_close(fd);
                return false;
        }
        if (ret_dir_fd)
                *ret_dir_fd = fd;
        else
                (void) safe_close(fd);
        return true;
}

/* The day folder "guid/YYYY/MM/DD" of loc beneath the root, created when asked. */
static int day_open(const struct archive *a, const struct archive_loc *loc, bool create)
{
        char path[REL_PATH_MAX];
        int r;

        r = format_dir(path, sizeof(path), loc);
        if (r < 0)
                return r;
        return archive_dir_open_beneath(a->root_fd, path, create);
}

/* mkdir -p for the root itself, which may be absolute or relative to the working folder. */
static int mkdir_parents(const char *dir)
{
        _cleanup_free_ char *path = strdup(dir);

        if (!path)
                return -ENOMEM;
        for (char *p = path + 1;; p++) {
                char c = *p;

                if (c != '/' && c != '\0')
                        continue;
                if (p[-1] != '/') {
                        *p = '\0';
                        if (mkdir(path, 0750) < 0 && errno != EEXIST)
                                return -errno;
                        *p = c;
                }
                if (c == '\0')
                        return 0;
        }
}

/*
 * Opens the root once; every later path is relative to this fd. Returns -EINVAL for a level
 * outside 1..9, the errno of mkdir/open/faccessat (EACCES, EROFS, ENOTDIR, ...), or of
 * starting the compression threads.
 */
int archive_open(const char *dir, int compression_level, int threads, struct archive **ret)
{
        _cleanup_close_ int fd = -1;
        struct archive *a;
        struct stat st;
        int r;

        if (!dir || !*dir || !ret || compression_level < 1 || compression_level > 9)
                return -EINVAL;
        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT) {
                r = mkdir_parents(dir);
                if (r < 0)
                        return r;
                fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        }
        if (fd < 0)
                return -errno;
        /* EROFS or EACCES here is better than the same error on the first job. */
        if (faccessat(fd, ".", W_OK | X_OK, AT_EACCESS) < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;

        a = calloc(1, sizeof(*a));
        if (!a)
                return -ENOMEM;
        r = gzpool_new(compression_level, threads, &a->gz);
        if (r < 0) {
                free(a);
                return r;
        }
        a->root_fd = fd;
        fd = -1;
        a->root_dev = st.st_dev;
        a->lock_fd = -1;
        a->day_fd = -1;
        *ret = a;
        return 0;
}

void archive_free(struct archive *a)
{
        if (!a)
                return;
        gzpool_free(a->gz);
        (void) safe_close(a->lock_fd);
        (void) safe_close(a->day_fd);
        (void) safe_close(a->root_fd);
        free(a);
}

/* The PID a lock holder wrote, or 0. The holder writes it just after taking the lock, so
 * an empty file gets a few more looks (100 ms at most, only on this failure path). */
static pid_t lock_holder(int fd)
{
        for (int i = 0; i < 20; i++) {
                char buf[32], *end;
                ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
                long pid;

                if (n < 0)
                        return 0;
                if (n > 0) {
                        buf[n] = '\0';
                        errno = 0;
                        pid = strtol(buf, &end, 10);
                        if (errno != 0 || end == buf || (*end != '\n' && *end != '\0') ||
                            pid <= 0 || pid > INT_MAX)
                                return 0;
                        return (pid_t) pid;
                }
                (void) nanosleep(&(struct timespec){.tv_nsec = 5 * 1000 * 1000}, NULL);
        }
        return 0;
}

/* Writes our PID into the lock file we hold (fd), through a second, short-lived open: the
 * lock's own fd is read-only. Returns 0 or -errno. */
static int lock_write_pid(const struct archive *a, int fd)
{
        _cleanup_close_ int wfd = -1;
        struct stat st, wst;
        char buf[32];
        int n;

        wfd = openat(a->root_fd, ARCHIVE_LOCK_NAME, O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (wfd < 0)
                return -errno;
        if (fstat(fd, &st) < 0 || fstat(wfd, &wst) < 0)
                return -errno;
        /* Renamed or replaced since we locked it: that file is not ours to write. */
        if (st.st_dev != wst.st_dev || st.st_ino != wst.st_ino)
                return -ESTALE;
        n = snprintf(buf, sizeof(buf), "%ld\n", (long) getpid());
        if (n < 0 || (size_t) n >= sizeof(buf))
                return -EINVAL;
        if (ftruncate(wfd, 0) < 0)
                return -errno;
        return write_all(wfd, buf, (size_t) n);
}

/*
 * flock() and not fcntl() locks: a flock belongs to the open file description, so it is not
 * lost when some other code of this process opens and closes the same file, and it is never
 * inherited past exec (O_CLOEXEC). The file is never removed: unlinking a lock file races
 * with a process that opened it just before (both would then "hold" a lock, on different
 * inodes). A stale PID left in it by a dead holder is overwritten by the next one.
 *
 * The lock is held on a read-only fd (flock needs no write access): a file kept open for
 * writing would make "mount -o remount,ro" of the archive's filesystem fail with EBUSY.
 */
int archive_lock(struct archive *a, pid_t *reterr_pid)
{
        _cleanup_close_ int fd = -1;
        struct stat st, root;
        int r;

        if (!a)
                return -EINVAL;
        if (a->lock_fd >= 0)
                return 0;
        /* O_NONBLOCK: a FIFO planted under the name must not hang the open. */
        fd = openat(a->root_fd, ARCHIVE_LOCK_NAME,
                    O_RDONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0640);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADF;
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
                if (errno != EWOULDBLOCK)
                        return -errno;
                if (reterr_pid)
                        *reterr_pid = lock_holder(fd);
                return -EBUSY;
        }
        /* root running --once by hand must not leave a lock file the service user cannot
         * open: it belongs to whoever owns the archive. */
        if (geteuid() == 0 && fstat(a->root_fd, &root) >= 0 &&
            (st.st_uid != root.st_uid || st.st_gid != root.st_gid))
                (void) fchown(fd, root.st_uid, root.st_gid);
        r = lock_write_pid(a, fd);
        if (r < 0)
                return r;
        a->lock_fd = fd;
        fd = -1;
        return 0;
}

unsigned archive_threads(const struct archive *a)
{
        return a ? gzpool_threads(a->gz) : 0;
}

int archive_event_fd(const struct archive *a)
{
        return a ? gzpool_fd(a->gz) : -EBADF;
}

size_t archive_dispatch(struct archive *a)
{
        return gzpool_dispatch(a->gz);
}

size_t archive_wait(struct archive *a)
{
        return gzpool_wait(a->gz);
}

size_t archive_pending(const struct archive *a)
{
        return gzpool_pending(a->gz);
}

int archive_tmpfile(const struct archive *a)
{
        int fd;

        if (!a)
                return -EBADF;
        fd = openat(a->root_fd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        return fd >= 0 ? fd : -errno;
}

int archive_free_space(const struct archive *a, uint64_t *ret_bytes)
{
        struct statvfs st;

        if (fstatvfs(a->root_fd, &st) < 0)
                return -errno;
        *ret_bytes = (uint64_t) st.f_bavail * st.f_frsize;
        return 0;
}

/* ".<something>.tmp"; the shortest is "..tmp". A bare ".tmp" is not ours. */
static bool name_is_temporary(const char *name)
{
        size_t len = strlen(name);

        return len >= strlen("..tmp") && name[0] == '.' &&
               strcmp(name + len - strlen(".tmp"), ".tmp") == 0;
}

static void keep_first_error(int *r, int e)
{
        if (*r == 0 && e < 0)
                *r = e;
}

/*
 * Removes temporaries in the folder dfd (which it takes over and closes) and, up to
 * SWEEP_MAX_DEPTH, in its subfolders. Symlinks are never followed: subfolders are opened with
 * O_NOFOLLOW and only regular files are removed. Keeps going after an error and returns the
 * first one.
 */
static int sweep_dir(int dfd, unsigned depth, unsigned *removed)
{
        DIR *d;
        int r = 0;

        d = fdopendir(dfd);
        if (!d) {
                r = -errno;
                (void) safe_close(dfd);
                return r;
        }
        for (;;) {
                struct dirent *de;
                unsigned char type;
                struct stat st;

                errno = 0;
                de = readdir(d);
                if (!de) {
                        keep_first_error(&r, -errno);
                        break;
                }
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                type = de->d_type;
                if (type == DT_UNKNOWN) {
                        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                                if (errno != ENOENT)
                                        keep_first_error(&r, -errno);
                                continue;
                        }
                        type = IFTODT(st.st_mode);
                }
                if (type == DT_REG && name_is_temporary(de->d_name)) {
                        if (unlinkat(dirfd(d), de->d_name, 0) >= 0)
                                (*removed)++;
                        else if (errno != ENOENT)
                                keep_first_error(&r, -errno);
                } else if (type == DT_DIR && depth < SWEEP_MAX_DEPTH) {
                        int sub = openat(dirfd(d), de->d_name,
                                         O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        if (sub < 0) {
                                /* ELOOP or ENOTDIR: it was swapped for something else. */
                                if (errno != ENOENT && errno != ELOOP && errno != ENOTDIR)
                                        keep_first_error(&r, -errno);
                                continue;
                        }
                        keep_first_error(&r, sweep_dir(sub, depth + 1, removed));
                }
        }
        (void) closedir(d);
        return r;
}

/*
 * Only for start-up, and only under the lock: it would also remove the temporaries of files
 * being written, by this process or by any other writer. The lock makes sure there is no
 * other; what it finds are leftovers of writers that died. Goes on after an error (a folder
 * it cannot read) and returns the first one.
 */
int archive_sweep_temporaries(struct archive *a, unsigned *ret_removed)
{
        unsigned removed = 0;
        int fd, r;

        if (!a)
                return -EINVAL;
        if (a->lock_fd < 0)
                return -ENOLCK;
        /* A new open file description, so that readdir does not share the root fd's offset. */
        fd = openat(a->root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        r = sweep_dir(fd, 0, &removed);
        if (r < 0)
                return r;
        if (ret_removed)
                *ret_removed = removed;
        return 0;
}

/*
 * This runs for every listed job on every poll, so it is cheap: one fstatat answers "no" for a
 * job of a new day; a "yes" is confirmed in the day folder opened beneath the root without
 * symlinks (archive_dir_open_beneath), and that folder is kept for the next question. For a
 * job of the same day, two fstatat answer: the path still names that very folder (same
 * device and inode, not a symlink), and the record is a regular file in it.
 */
bool archive_job_is_archived(struct archive *a, const struct archive_loc *loc)
{
        char dir[REL_PATH_MAX], name[REL_PATH_MAX];
        struct stat st;
        int fd;

        /* Any failure to look (EIO, EACCES) answers "no": the job is fetched again and its
         * commit then fails loudly, rather than being skipped in silence. */
        if (!a || !loc_is_valid(loc) || format_dir(dir, sizeof(dir), loc) < 0 ||
            format_name(name, sizeof(name), loc, ARCHIVE_KIND_RECORD, false) < 0)
                return false;
        if (a->day_fd >= 0 && strcmp(a->day_path, dir) == 0 &&
            fstatat(a->root_fd, dir, &st, AT_SYMLINK_NOFOLLOW) >= 0 && st.st_dev == a->day_dev &&
            st.st_ino == a->day_ino)
                return fstatat(a->day_fd, name, &st, AT_SYMLINK_NOFOLLOW) >= 0 &&
                       S_ISREG(st.st_mode);

        if (!archive_file_beneath(a->root_fd, dir, name, &fd))
                return false;
        if (fstat(fd, &st) < 0) {
                (void) safe_close(fd);
                return false;
        }
        (void) safe_close(a->day_fd);
        a->day_fd = fd;
        a->day_dev = st.st_dev;
        a->day_ino = st.st_ino;
        memcpy(a->day_path, dir, sizeof(dir));
        return true;
}

int archive_loc_symlink(const struct archive *a, const struct archive_loc *loc, char *buf,
                        size_t size)
{
        char path[REL_PATH_MAX];
        struct stat st;

        if (!a || !buf || !loc_is_valid(loc) || format_dir(path, sizeof(path), loc) < 0)
                return -EINVAL;
        for (char *p = path;; p++) {
                char c = *p;
                int r;

                if (c != '/' && c != '\0')
                        continue;
                *p = '\0';
                r = fstatat(a->root_fd, path, &st, AT_SYMLINK_NOFOLLOW);
                if (r >= 0 && S_ISLNK(st.st_mode)) {
                        int n = snprintf(buf, size, "%s", path);
                        return n < 0 || (size_t) n >= size ? -ENAMETOOLONG : 0;
                }
                if (r < 0 || c == '\0')
                        return -ENOENT;
                *p = c;
        }
}

/*
 * Creates the day folder and the temporary. Returns -EINVAL for an unsafe location, -EEXIST
 * when the job's temporary already exists (a second writer, or a leftover not yet swept),
 * -ELOOP when a folder on the way is a symlink, -ENOTDIR when it is something else that is
 * not a folder. The archive must outlive the file.
 */
int archive_file_open(struct archive *a, const struct archive_loc *loc, struct archive_file **ret)
{
        struct archive_file *f;
        int dfd, fd, r;

        if (!a || !ret || !loc_is_valid(loc))
                return -EINVAL;
        f = calloc(1, sizeof(*f));
        if (!f)
                return -ENOMEM;
        f->archive = a;

        r = format_path(f->tmp_path, sizeof(f->tmp_path), loc, ARCHIVE_KIND_LOG, true);
        if (r < 0)
                goto fail;
        dfd = day_open(a, loc, true);
        if (dfd < 0) {
                r = dfd;
                goto fail;
        }

        /*
         * O_EXCL: two writers on one temporary would interleave their bytes into a file that
         * then gets a valid-looking record, so a second open of the same job fails with EEXIST
         * instead. Leftovers of an earlier run are swept at start; an aborted file removes its
         * own temporary.
         */
        fd = openat(dfd, tmp_name(f), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
        dfd = safe_close(dfd);
        if (fd < 0) {
                r = -errno;
                goto fail;
        }
        f->created = true;
        r = gzjob_new(a->gz, fd, &f->job);
        if (r < 0)
                goto fail;
        *ret = f;
        return 0;
fail:
        archive_file_abort(f);
        return r;
}

int archive_file_write(struct archive_file *f, const void *buf, size_t len)
{
        int r;

        if (!f || (!buf && len > 0))
                return -EINVAL;
        if (f->error < 0)
                return f->error;
        if (f->finishing)
                return -EINVAL;
        r = gzjob_write(f->job, buf, len);
        if (r < 0)
                f->error = r;
        return r;
}

_Static_assert(ARCHIVE_SHA256_HEX_LEN == GZPOOL_SHA256_HEX_LEN, "one SHA-256 hex length");

static void file_finished(void *userdata, int r, const struct gzjob_result *res)
{
        struct archive_file *f = userdata;
        struct archive_log_info info;

        f->job = NULL; /* the pool frees it when this returns */
        if (r < 0) {
                f->error = r;
                f->done(f->userdata, r, NULL);
                return;
        }
        f->finished = true;
        info.bytes_in = res->bytes_in;
        info.bytes_out = res->bytes_out;
        memcpy(info.sha256, res->sha256, sizeof(info.sha256));
        /* done may abort (free) f: nothing of f is used after it. */
        f->done(f->userdata, 0, &info);
}

int archive_file_finish(struct archive_file *f, archive_finish_fn *done, void *userdata)
{
        int r;

        if (!f || !done)
                return -EINVAL;
        if (f->error < 0)
                return f->error;
        if (f->finishing)
                return -EINVAL;
        f->done = done;
        f->userdata = userdata;
        r = gzjob_finish(f->job, file_finished, f);
        if (r < 0)
                return r;
        f->finishing = true;
        return 0;
}

/* Must not be called on a file handed to archive_batch_add(): the batch owns it. */
void archive_file_abort(struct archive_file *f)
{
        if (!f)
                return;
        /* Closes the fd first (waiting for a thread busy with it), so that unlinking the
         * temporary gives its space back at once: on a full disk, other jobs wait for it. */
        gzjob_abort(f->job);
        if (f->created) {
                /* The folder is looked up again (rare: a failure path), never through a
                 * symlink; the name in it is ours, created with O_EXCL. */
                char dir[REL_PATH_MAX];
                int dfd;

                memcpy(dir, f->tmp_path, sizeof(dir));
                *strrchr(dir, '/') = '\0';
                dfd = archive_dir_open_beneath(f->archive->root_fd, dir, false);
                if (dfd >= 0) {
                        (void) unlinkat(dfd, tmp_name(f), 0);
                        (void) safe_close(dfd);
                }
        }
        free(f);
}

struct archive_batch *archive_batch_new(struct archive *a)
{
        struct archive_batch *b;

        if (!a)
                return NULL;
        b = calloc(1, sizeof(*b));
        if (!b)
                return NULL;
        b->archive = a;
        return b;
}

static void entry_free(struct batch_entry *e)
{
        archive_file_abort(e->log);
        e->log = NULL;
        free(e->guid);
        free(e->key);
        free(e->error_json);
        free(e->record_json);
}

static void dirs_free(struct batch_dir *dirs, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                (void) safe_close(dirs[i].fd);
                free(dirs[i].path);
        }
        free(dirs);
}

/* The batch's index of loc's day folder: opened (and created) beneath the root without
 * following symlinks the first time a job of the batch lives there. */
static int batch_dir_get(struct archive_batch *b, const struct archive_loc *loc, size_t *ret)
{
        char path[REL_PATH_MAX];
        struct batch_dir d;
        struct stat st;
        int r;

        r = format_dir(path, sizeof(path), loc);
        if (r < 0)
                return r;
        for (size_t i = 0; i < b->n_dirs; i++)
                if (strcmp(b->dirs[i].path, path) == 0) {
                        *ret = i;
                        return 0;
                }
        if (b->n_dirs == b->n_dirs_allocated) {
                size_t n = b->n_dirs_allocated ? 2 * b->n_dirs_allocated : 8;
                struct batch_dir *dirs = reallocarray(b->dirs, n, sizeof(*dirs));
                if (!dirs)
                        return -ENOMEM;
                b->dirs = dirs;
                b->n_dirs_allocated = n;
        }
        d.fd = archive_dir_open_beneath(b->archive->root_fd, path, true);
        if (d.fd < 0)
                return d.fd;
        if (fstat(d.fd, &st) < 0) {
                r = -errno;
                (void) safe_close(d.fd);
                return r;
        }
        d.dev = st.st_dev;
        d.path = strdup(path);
        if (!d.path) {
                (void) safe_close(d.fd);
                return -ENOMEM;
        }
        b->dirs[b->n_dirs] = d;
        *ret = b->n_dirs++;
        return 0;
}

/*
 * Takes ownership of log even when it fails (the log is then aborted), and done is called only
 * when it succeeds. Returns -EINVAL for an unsafe location, a missing record or a log that is
 * unfinished or another job's, -EEXIST when the job is already archived or already queued,
 * -ELOOP when a folder on the way is a symlink, or the errno of creating its folder.
 */
int archive_batch_add(struct archive_batch *b, const struct archive_loc *loc,
                      struct archive_file *log, const char *error_json, const char *record_json,
                      archive_commit_fn *done, void *userdata)
{
        struct batch_entry e = {0};
        char path[REL_PATH_MAX];
        int r;

        /* The log is ours from here on, whatever happens: on failure it is aborted. */
        e.log = log;
        if (!b || !record_json || !loc_is_valid(loc)) {
                r = -EINVAL;
                goto fail;
        }
        if (log) {
                /* The file must be finished and belong to this job, or we would rename the
                 * wrong temporary (or a half-written one) into place. */
                r = format_path(path, sizeof(path), loc, ARCHIVE_KIND_LOG, true);
                if (r < 0)
                        goto fail;
                if (!log->finished || log->archive != b->archive ||
                    strcmp(path, log->tmp_path) != 0) {
                        r = -EINVAL;
                        goto fail;
                }
        }
        /* A job is written once: never replace the files of an archived job, and never let two
         * entries of one batch share temporaries. */
        for (size_t i = 0; i < b->n_entries; i++)
                if (loc_equal(&b->entries[i].loc, loc)) {
                        r = -EEXIST;
                        goto fail;
                }
        if (archive_job_is_archived(b->archive, loc)) {
                r = -EEXIST;
                goto fail;
        }
        /* A job without a log has not created its folder yet. */
        r = batch_dir_get(b, loc, &e.dir);
        if (r < 0)
                goto fail;

        if (b->n_entries == b->n_allocated) {
                size_t n = b->n_allocated ? 2 * b->n_allocated : 16;
                struct batch_entry *entries = reallocarray(b->entries, n, sizeof(*entries));
                if (!entries) {
                        r = -ENOMEM;
                        goto fail;
                }
                b->entries = entries;
                b->n_allocated = n;
        }
        e.guid = strdup(loc->guid);
        e.key = strdup(loc->key);
        e.record_json = strdup(record_json);
        e.error_json = error_json ? strdup(error_json) : NULL;
        if (!e.guid || !e.key || !e.record_json || (error_json && !e.error_json)) {
                r = -ENOMEM;
                goto fail;
        }
        e.loc = *loc;
        e.loc.guid = e.guid;
        e.loc.key = e.key;
        e.done = done;
        e.userdata = userdata;
        b->entries[b->n_entries++] = e;
        return 0;
fail:
        entry_free(&e);
        return r;
}

size_t archive_batch_size(const struct archive_batch *b)
{
        return b ? b->n_entries : 0;
}

/*
 * Writes a whole small file as a new name (O_EXCL: a temporary of the same name, which only
 * another writer could have made, is refused with EEXIST and left alone); on failure nothing
 * of it is left behind.
 */
static int write_file_at(int dfd, const char *name, const char *data)
{
        int fd, r;

        fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
        if (fd < 0)
                return -errno;
        r = write_all(fd, data, strlen(data));
        if (close(fd) < 0 && r == 0)
                r = -errno;
        if (r < 0)
                (void) unlinkat(dfd, name, 0);
        return r;
}

static int entry_write(struct archive_batch *b, struct batch_entry *e, enum archive_kind kind,
                       const char *data)
{
        char name[REL_PATH_MAX];
        int r;

        r = format_name(name, sizeof(name), &e->loc, kind, true);
        if (r < 0)
                return r;
        return write_file_at(b->dirs[e->dir].fd, name, data);
}

/*
 * rename() that never replaces: EEXIST when `to` exists. renameat2(RENAME_NOREPLACE) on the
 * local filesystems (ext4, XFS, btrfs, tmpfs, ...); where the filesystem does not take the
 * flag (NFS, some FUSE: EINVAL), link() then unlink() gives the same guarantee.
 */
static int rename_noreplace(int dfd, const char *from, const char *to)
{
        if (renameat2(dfd, from, dfd, to, RENAME_NOREPLACE) >= 0)
                return 0;
        if (errno != EINVAL && errno != ENOSYS)
                return -errno;
        if (linkat(dfd, from, dfd, to, 0) < 0)
                return -errno;
        (void) unlinkat(dfd, from, 0);
        return 0;
}

static int entry_rename(struct archive_batch *b, struct batch_entry *e, enum archive_kind kind)
{
        char from[REL_PATH_MAX], to[REL_PATH_MAX];
        int dfd = b->dirs[e->dir].fd, r;

        r = format_name(from, sizeof(from), &e->loc, kind, true);
        if (r < 0)
                return r;
        r = format_name(to, sizeof(to), &e->loc, kind, false);
        if (r < 0)
                return r;
        r = rename_noreplace(dfd, from, to);
        /* A log or error file without its record (checked at archive_batch_add) is what a
         * writer killed between steps c and f left. Under the lock that writer is dead, so
         * the file is nobody's: replace it, atomically, and it is ours from then on. Without
         * the lock it may be a live writer's, about to get its record: leave it (EEXIST). */
        if (r == -EEXIST && kind != ARCHIVE_KIND_RECORD && b->archive->lock_fd >= 0)
                r = renameat(dfd, from, dfd, to) < 0 ? -errno : 0;
        return r;
}

static void entry_unlink(struct archive_batch *b, struct batch_entry *e, enum archive_kind kind,
                         bool tmp)
{
        char name[REL_PATH_MAX];

        if (format_name(name, sizeof(name), &e->loc, kind, tmp) >= 0)
                (void) unlinkat(b->dirs[e->dir].fd, name, 0);
}

/*
 * Undoes a failed entry: its temporaries go, and so does anything it already renamed into
 * place. The record goes first, so the job stops counting as archived before its parts vanish.
 * These unlinks are not synced: if one is lost in a crash, what remains is a complete file
 * without a record (harmless, replaced by the retry's rename) or a complete record that was
 * durable anyway.
 *
 * Only names this entry created are removed, never one by name alone: each flag is set only
 * after our own O_EXCL create or our own no-replace rename made that name, and no writer ever
 * replaces a name another made (rename_noreplace; the one exception, a dead writer's orphan
 * under the lock, makes the name ours). So the name still holds our file when we unlink it,
 * and a second writer's final files, which made the failing rename fail with EEXIST, stay.
 */
static void entry_rollback(struct archive_batch *b, struct batch_entry *e)
{
        if (e->record_final)
                entry_unlink(b, e, ARCHIVE_KIND_RECORD, false);
        if (e->record_tmp)
                entry_unlink(b, e, ARCHIVE_KIND_RECORD, true);
        if (e->error_final)
                entry_unlink(b, e, ARCHIVE_KIND_ERROR, false);
        if (e->error_tmp)
                entry_unlink(b, e, ARCHIVE_KIND_ERROR, true);
        if (e->log_final)
                entry_unlink(b, e, ARCHIVE_KIND_LOG, false);
        e->record_final = e->record_tmp = e->error_final = e->error_tmp = e->log_final = false;
        /* Removes the log's temporary if it was never renamed. */
        archive_file_abort(e->log);
        e->log = NULL;
}

static void fail_dev(struct archive_batch *b, struct batch_entry *entries, size_t from, size_t n,
                     dev_t dev, int r)
{
        for (size_t i = from; i < n; i++)
                if (entries[i].r == 0 && b->dirs[entries[i].dir].dev == dev)
                        entries[i].r = r;
}

/*
 * Makes everything written so far durable for each entry still on track: one syncfs of the
 * root's filesystem, plus one per other filesystem a day folder lives on (a mount inside the
 * archive). A failure fails every entry on that filesystem.
 */
static void batch_sync(struct archive_batch *b, struct batch_entry *entries, size_t n)
{
        struct archive *a = b->archive;
        bool on_root = false;

        for (size_t i = 0; i < n; i++)
                if (entries[i].r == 0 && b->dirs[entries[i].dir].dev == a->root_dev)
                        on_root = true;
        if (on_root && syncfs(a->root_fd) < 0)
                fail_dev(b, entries, 0, n, a->root_dev, -errno);

        for (size_t i = 0; i < n; i++) {
                struct batch_entry *e = &entries[i];
                dev_t dev = b->dirs[e->dir].dev;
                bool synced = false;

                if (e->r < 0 || dev == a->root_dev)
                        continue;
                /* An earlier entry on track with the same device means it was synced (all
                 * entries of a device share the outcome). */
                for (size_t j = 0; j < i && !synced; j++)
                        synced = entries[j].r == 0 && b->dirs[entries[j].dir].dev == dev;
                if (synced)
                        continue;
                if (syncfs(b->dirs[e->dir].fd) < 0)
                        fail_dev(b, entries, i, n, dev, -errno);
        }
}

/*
 * Why this order is crash-safe.
 *
 * The guarantee: a name without the leading '.' and trailing ".tmp" only ever appears through
 * renameat() of a temporary whose bytes a completed syncfs() has already made durable, and a
 * <key>.json only appears after the renames of its job's .log.gz and .error.json are durable.
 * renameat() within one folder is atomic, also across power loss on a journaling filesystem:
 * after a crash the final name is either absent or names the complete, synced file.
 *
 *   a. write .<key>.error.json.tmp             (the log's temporary was written while streaming)
 *   b. syncfs                                  temporaries' data and new folders are durable
 *   c. rename log and error temporaries into place
 *   d. write .<key>.json.tmp
 *   e. syncfs                                  records' data and the renames of c are durable
 *   f. rename the records into place           the job now counts as archived
 *   g. syncfs                                  the renames of f are durable; only now done(0)
 *
 * kill -9 at any syscall: every completed call stays in effect (the page cache survives), so
 * the folder holds only whole files plus temporaries; the sweep at start removes the latter.
 * A job killed between c and f has its log and error under final names but no record, so it
 * is not archived: it is fetched again and the retry's renames replace those files atomically
 * (only under the writer lock; see entry_rename).
 *
 * Power loss: before b completes, only temporaries can be damaged. Between b and e, each rename
 * of c is either lost or names durable data. Between e and g, each record rename is either lost
 * (the job is fetched again) or names a durable record whose log and error renames were made
 * durable at e, before the record's rename was even issued; so no filesystem reordering can
 * show a record without its files.
 *
 * syncfs() instead of fsync() per file and folder: N jobs cost 3 syncs instead of about 3N
 * fsyncs of files plus fsyncs of folders. Since Linux 5.8 syncfs reports writeback errors of
 * the filesystem since the previous syncfs on the same open file, so a failed write of any of
 * our temporaries surfaces here; an error of another program's file on the same filesystem
 * fails the batch as well, which only costs a retry. The costs: syncfs also flushes other
 * programs' dirty data on that filesystem, and it covers one filesystem only, so a day folder
 * on another mount gets a syncfs of its own (batch_sync).
 *
 * Failures: an entry that fails at any step is rolled back (entry_rollback): its temporaries
 * and whatever it already renamed into place are removed, so nothing is left under a final
 * name, as archive.h promises. Leaving an already-renamed .log.gz would also be safe (without
 * a record the job is not archived and a retry replaces the file), but it would leave orphans
 * for operators' find/zgrep. A failed syncfs at g fails its entries too: their records are
 * complete, but we cannot promise they survive a crash, and removing them only costs a fetch.
 *
 * Other writers: the lock (archive_lock) keeps a second daemon or --once out, and the sweep
 * runs only under it. Should two writers meet anyway (the lock is advisory, and means little
 * on a filesystem shared by two hosts), no file of one is ever lost to the other: temporaries
 * are created with O_EXCL, final names only appear through no-replace renames (EEXIST fails
 * the later job, which finds the job archived at its next poll), and a rollback removes only
 * names its own entry made (entry_rollback). Without that, a rollback unlinking a final name
 * could delete the other writer's .log.gz just before that writer's record made the job
 * count as archived: a record without its log, never fetched again.
 *
 * Folders: every file is opened, renamed and removed relative to an fd of its day folder
 * (struct batch_dir), which was opened beneath the root one component at a time without
 * following symlinks, so nothing is ever written outside the archive through a planted
 * symlink, and a folder swapped after the open only makes the job fail (ENOENT) and retry.
 */
int archive_batch_commit(struct archive_batch *b)
{
        struct archive_batch this;
        struct batch_entry *entries;
        size_t n;
        int committed = 0, first_error = 0, r;

        if (!b)
                return -EINVAL;
        /* Take the entries and their folders out first, so a done callback may queue jobs for
         * the next commit. */
        this = *b;
        entries = this.entries;
        n = this.n_entries;
        b->entries = NULL;
        b->n_entries = b->n_allocated = 0;
        b->dirs = NULL;
        b->n_dirs = b->n_dirs_allocated = 0;

        /* a. Error records to temporaries. */
        for (size_t i = 0; i < n; i++) {
                struct batch_entry *e = &entries[i];

                if (!e->error_json)
                        continue;
                r = entry_write(&this, e, ARCHIVE_KIND_ERROR, e->error_json);
                if (r < 0)
                        e->r = r;
                else
                        e->error_tmp = true;
        }

        /* b. */
        batch_sync(&this, entries, n);

        /* c. Logs and error records into place. */
        for (size_t i = 0; i < n; i++) {
                struct batch_entry *e = &entries[i];

                if (e->r < 0)
                        continue;
                if (e->log) {
                        r = entry_rename(&this, e, ARCHIVE_KIND_LOG);
                        if (r < 0) {
                                e->r = r;
                                continue;
                        }
                        e->log->created = false;
                        e->log_final = true;
                }
                if (e->error_tmp) {
                        r = entry_rename(&this, e, ARCHIVE_KIND_ERROR);
                        if (r < 0) {
                                e->r = r;
                                continue;
                        }
                        e->error_tmp = false;
                        e->error_final = true;
                }
        }

        /* d. Job records to temporaries. */
        for (size_t i = 0; i < n; i++) {
                struct batch_entry *e = &entries[i];

                if (e->r < 0)
                        continue;
                r = entry_write(&this, e, ARCHIVE_KIND_RECORD, e->record_json);
                if (r < 0)
                        e->r = r;
                else
                        e->record_tmp = true;
        }

        /* e. */
        batch_sync(&this, entries, n);

        /* f. Job records into place. */
        for (size_t i = 0; i < n; i++) {
                struct batch_entry *e = &entries[i];

                if (e->r < 0)
                        continue;
                r = entry_rename(&this, e, ARCHIVE_KIND_RECORD);
                if (r < 0) {
                        e->r = r;
                        continue;
                }
                e->record_tmp = false;
                e->record_final = true;
        }

        /* g. */
        batch_sync(&this, entries, n);

        /* The disk is in its final state before any caller hears about it. */
        for (size_t i = 0; i < n; i++) {
                struct batch_entry *e = &entries[i];

                if (e->r < 0) {
                        entry_rollback(&this, e);
                        keep_first_error(&first_error, e->r);
                } else {
                        committed++;
                }
        }
        for (size_t i = 0; i < n; i++)
                if (entries[i].done)
                        entries[i].done(entries[i].userdata, entries[i].r);
        for (size_t i = 0; i < n; i++)
                entry_free(&entries[i]);
        free(entries);
        dirs_free(this.dirs, this.n_dirs);

        return committed > 0 || n == 0 ? committed : first_error;
}

void archive_batch_free(struct archive_batch *b)
{
        struct batch_entry *entries;
        size_t n;

        if (!b)
                return;
        entries = b->entries;
        n = b->n_entries;
        b->entries = NULL;
        b->n_entries = b->n_allocated = 0;

        /* Only the logs' temporaries exist before a commit; they go before anyone is told. */
        for (size_t i = 0; i < n; i++) {
                archive_file_abort(entries[i].log);
                entries[i].log = NULL;
        }
        for (size_t i = 0; i < n; i++)
                if (entries[i].done)
                        entries[i].done(entries[i].userdata, -ECANCELED);
        for (size_t i = 0; i < n; i++)
                entry_free(&entries[i]);
        free(entries);
        dirs_free(b->dirs, b->n_dirs);
        free(b);
}

static int compare_names(const void *x, const void *y)
{
        return strcmp(*(char *const *) x, *(char *const *) y);
}

/* Names in folder dfd that may be sub-folders (d_type) and match pred, sorted. */
static int list_dirs_sorted(int dfd, bool (*pred)(const char *name), char ***ret, size_t *ret_n)
{
        char **names = NULL;
        size_t n = 0, allocated = 0;
        DIR *d = NULL;
        int r;

        /* "." gives a new open file description, so readdir does not move dfd's offset. */
        r = dir_open_at(dfd, ".", &d);
        if (r < 0)
                return r;
        for (;;) {
                struct dirent *de;

                errno = 0;
                de = readdir(d);
                if (!de) {
                        r = -errno;
                        break;
                }
                if (!pred(de->d_name) || (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN))
                        continue;
                if (n + 1 >= allocated) {
                        size_t na = allocated ? allocated * 2 : 16;
                        char **p = realloc(names, na * sizeof(*p));
                        if (!p) {
                                r = -ENOMEM;
                                break;
                        }
                        names = p;
                        allocated = na;
                }
                names[n] = strdup(de->d_name);
                if (!names[n]) {
                        r = -ENOMEM;
                        break;
                }
                n++;
        }
        (void) closedir(d);
        if (r < 0) {
                for (size_t i = 0; i < n; i++)
                        free(names[i]);
                free(names);
                return r;
        }
        if (n > 1)
                qsort(names, n, sizeof(*names), compare_names);
        *ret = names;
        *ret_n = n;
        return 0;
}

static void names_free(char **names, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        free(names);
}

static bool all_digits(const char *s, size_t len)
{
        if (strlen(s) != len)
                return false;
        for (size_t i = 0; i < len; i++)
                if (s[i] < '0' || s[i] > '9')
                        return false;
        return true;
}

static bool is_guid_name(const char *s)
{
        return guid_is_valid(s);
}

static bool is_year_name(const char *s)
{
        return all_digits(s, 4);
}

static bool is_month_or_day_name(const char *s)
{
        return all_digits(s, 2);
}

/* Removes the regular files of folder `name` under dfd, then the folder. */
static int remove_day_folder(int dfd, const char *name)
{
        DIR *d = NULL;
        int r;

        r = dir_open_at(dfd, name, &d);
        if (r < 0)
                return r;
        for (;;) {
                struct dirent *de;

                errno = 0;
                de = readdir(d);
                if (!de) {
                        keep_first_error(&r, -errno);
                        break;
                }
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                if (unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT)
                        keep_first_error(&r, -errno);
        }
        (void) closedir(d);
        if (r == 0 && unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
                r = -errno;
        return r;
}

/* Folder `name` under dfd, opened without following symlinks. */
static int open_subdir(int dfd, const char *name)
{
        int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        return fd < 0 ? -errno : fd;
}

/*
 * Retention. Walks guid/YYYY/MM/DD in ascending order and removes whole day folders dated
 * before the cutoff, then the month and year folders this leaves empty. Only names shaped
 * like the archive's own (a GUID, four digits, two digits) are considered, and symlinks are
 * never followed, so nothing outside the archive's layout is touched. The record goes with
 * its folder, so a pruned job is simply absent; the caller must also stop fetching jobs
 * older than the cutoff, or they would come back.
 */
int archive_prune(struct archive *a, int year, int month, int day, unsigned *ret_removed)
{
        char **guids = NULL;
        size_t n_guids = 0;
        unsigned removed = 0;
        const struct ymd cutoff = {year, month, day};
        int r;

        r = list_dirs_sorted(a->root_fd, is_guid_name, &guids, &n_guids);
        if (r < 0)
                return r;
        for (size_t g = 0; g < n_guids; g++) {
                _cleanup_close_ int gfd = open_subdir(a->root_fd, guids[g]);
                char **years = NULL;
                size_t n_years = 0;

                if (gfd < 0 || list_dirs_sorted(gfd, is_year_name, &years, &n_years) < 0)
                        continue;
                for (size_t y = 0; y < n_years; y++) {
                        _cleanup_close_ int yfd = -1;
                        char **months = NULL;
                        size_t n_months = 0;
                        struct ymd when;

                        if (ymd_parse(years[y], NULL, NULL, &when) < 0 || when.year > year)
                                break;
                        yfd = open_subdir(gfd, years[y]);
                        if (yfd < 0 ||
                            list_dirs_sorted(yfd, is_month_or_day_name, &months, &n_months) < 0)
                                continue;
                        for (size_t m = 0; m < n_months; m++) {
                                _cleanup_close_ int mfd = -1;
                                char **days = NULL;
                                size_t n_days = 0;

                                /* Day 0: the month is past only when all of it is. */
                                if (ymd_parse(years[y], months[m], NULL, &when) < 0 ||
                                    ymd_compare(&when, &cutoff) > 0)
                                        break;
                                mfd = open_subdir(yfd, months[m]);
                                if (mfd < 0 ||
                                    list_dirs_sorted(mfd, is_month_or_day_name, &days, &n_days) < 0)
                                        continue;
                                for (size_t dd = 0; dd < n_days; dd++) {
                                        if (ymd_parse(years[y], months[m], days[dd], &when) < 0 ||
                                            ymd_compare(&when, &cutoff) >= 0)
                                                break;
                                        int e = remove_day_folder(mfd, days[dd]);
                                        if (e < 0)
                                                keep_first_error(&r, e);
                                        else
                                                removed++;
                                }
                                names_free(days, n_days);
                                /* Fails harmlessly with ENOTEMPTY while days remain. */
                                (void) unlinkat(yfd, months[m], AT_REMOVEDIR);
                        }
                        names_free(months, n_months);
                        (void) unlinkat(gfd, years[y], AT_REMOVEDIR);
                }
                names_free(years, n_years);
        }
        names_free(guids, n_guids);
        if (ret_removed)
                *ret_removed = removed;
        return r;
}

/*
 * Looks for key's record under any date of guid, newest day first, without following
 * symlinks. For jobs whose date is not fixed by their own start time (see daemon.c), so that
 * a job archived under one date is not archived again under another. Costs a walk of the
 * item's day folders: meant for rare jobs, not for every job of every poll.
 */
int archive_find_job(struct archive *a, const char *guid, const char *key, struct archive_loc *ret)
{
        char **years = NULL, name[256];
        size_t n_years = 0;
        int found = 0;

        if (!a || !path_component_is_safe(guid, strlen(guid)) ||
            !path_component_is_safe(key, strlen(key)) ||
            snprintf(name, sizeof(name), "%s.json", key) >= (int) sizeof(name))
                return -EINVAL;
        _cleanup_close_ int gfd = open_subdir(a->root_fd, guid);
        if (gfd < 0)
                return gfd == -ENOENT ? 0 : gfd;
        int r = list_dirs_sorted(gfd, is_year_name, &years, &n_years);
        if (r < 0)
                return r;
        for (size_t y = n_years; !found && y-- > 0;) {
                _cleanup_close_ int yfd = open_subdir(gfd, years[y]);
                char **months = NULL;
                size_t n_months = 0;

                if (yfd < 0 || list_dirs_sorted(yfd, is_month_or_day_name, &months, &n_months) < 0)
                        continue;
                for (size_t m = n_months; !found && m-- > 0;) {
                        _cleanup_close_ int mfd = open_subdir(yfd, months[m]);
                        char **days = NULL;
                        size_t n_days = 0;

                        if (mfd < 0 ||
                            list_dirs_sorted(mfd, is_month_or_day_name, &days, &n_days) < 0)
                                continue;
                        for (size_t dd = n_days; !found && dd-- > 0;) {
                                _cleanup_close_ int dfd = open_subdir(mfd, days[dd]);
                                struct stat st;
                                struct ymd when;

                                if (dfd >= 0 && fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                                    S_ISREG(st.st_mode) &&
                                    ymd_parse(years[y], months[m], days[dd], &when) >= 0) {
                                        *ret = (struct archive_loc){
                                                .guid = guid,
                                                .year = when.year,
                                                .month = when.month,
                                                .day = when.day,
                                                .key = key,
                                        };
                                        found = 1;
                                }
                        }
                        names_free(days, n_days);
                }
                names_free(months, n_months);
        }
        names_free(years, n_years);
        return found;
}

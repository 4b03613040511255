/*
 * The local file system as the archive's store (store.h): folders are fds opened beneath the
 * root without symlinks (paths.c), a temporary is ".<name>.tmp" beside its final name,
 * publish is a no-replace rename in one folder, sync is syncfs, the lock is flock on
 * <root>/.lock.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "archive.h"
#include "macro.h"
#include "paths.h"
#include "store.h"
#include "util.h"

/* Room for any relative path the archive builds: "guid/YYYY/MM/DD" with a GUID of at most
 * 128 bytes (path_component_is_safe), and a name of NAME_MAX. */
#define LOCAL_PATH_MAX 512

/* guid/YYYY/MM/DD: the sweep looks no deeper than the day folders. */
#define SWEEP_MAX_DEPTH 4

struct local_store {
        struct store base;
        int root_fd;
        dev_t root_dev;
        int lock_fd; /* <root>/.lock while we hold the writer lock, else -1 */
        /* The day folder of the last "has" answer, opened beneath the root: consecutive
         * jobs of a list mostly share one (local_has). */
        int day_fd;
        dev_t day_dev;
        ino_t day_ino;
        char day_path[LOCAL_PATH_MAX];
};

/* A folder beneath the root; every file in it is created, renamed and removed relative to
 * this fd, never by path. */
struct local_dir {
        struct store_dir base;
        int fd;
        dev_t dev; /* its file system, for syncfs */
};

static struct local_store *local_of(struct store *s)
{
        return (struct local_store *) s;
}

static const struct local_store *local_of_const(const struct store *s)
{
        return (const struct local_store *) s;
}

static struct local_dir *dir_of(struct store_dir *d)
{
        return (struct local_dir *) d;
}

static void keep_first_error(int *r, int e)
{
        if (*r == 0 && e < 0)
                *r = e;
}

/* ".<name>.tmp": the temporary of a final name, in the same folder (so the rename never
 * crosses file systems). */
static int tmp_name(char *buf, size_t size, const char *name)
{
        int n = snprintf(buf, size, ".%s.tmp", name);

        if (n < 0 || (size_t) n >= size)
                return -ENAMETOOLONG;
        return 0;
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

static void local_free(struct store *s)
{
        struct local_store *l = local_of(s);

        (void) safe_close(l->lock_fd);
        (void) safe_close(l->day_fd);
        (void) safe_close(l->root_fd);
        free(l);
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
static int lock_write_pid(const struct local_store *l, int fd)
{
        _cleanup_close_ int wfd = -1;
        struct stat st, wst;
        char buf[32];
        int n;

        wfd = openat(l->root_fd, ARCHIVE_LOCK_NAME, O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
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
static int local_lock(struct store *s, pid_t *reterr_pid)
{
        struct local_store *l = local_of(s);
        _cleanup_close_ int fd = -1;
        struct stat st, root;
        int r;

        if (l->lock_fd >= 0)
                return 0;
        /* O_NONBLOCK: a FIFO planted under the name must not hang the open. */
        fd = openat(l->root_fd, ARCHIVE_LOCK_NAME,
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
        if (geteuid() == 0 && fstat(l->root_fd, &root) >= 0 &&
            (st.st_uid != root.st_uid || st.st_gid != root.st_gid))
                (void) fchown(fd, root.st_uid, root.st_gid);
        r = lock_write_pid(l, fd);
        if (r < 0)
                return r;
        l->lock_fd = fd;
        fd = -1;
        return 0;
}

static bool local_locked(const struct store *s)
{
        return local_of_const(s)->lock_fd >= 0;
}

static int local_scratch_fd(struct store *s)
{
        int fd = openat(local_of(s)->root_fd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

        return fd >= 0 ? fd : -errno;
}

static int local_free_space(struct store *s, uint64_t *ret_bytes)
{
        struct statvfs st;

        if (fstatvfs(local_of(s)->root_fd, &st) < 0)
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
static int local_sweep(struct store *s, unsigned *ret_removed)
{
        struct local_store *l = local_of(s);
        unsigned removed = 0;
        int fd, r;

        if (l->lock_fd < 0)
                return -ENOLCK;
        /* A new open file description, so that readdir does not share the root fd's offset. */
        fd = openat(l->root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        r = sweep_dir(fd, 0, &removed);
        if (r < 0)
                return r;
        if (ret_removed)
                *ret_removed = removed;
        return 0;
}

/* The folder path beneath the root as an fd: the root itself (a new open file description)
 * for "", else archive_dir_open_beneath. */
static int open_path(const struct local_store *l, const char *path, bool create)
{
        int fd;

        if (!path || !*path) {
                fd = openat(l->root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                return fd >= 0 ? fd : -errno;
        }
        return archive_dir_open_beneath(l->root_fd, path, create);
}

static int local_dir_open(struct store *s, const char *path, unsigned flags, struct store_dir **ret)
{
        struct local_dir *d;
        struct stat st;
        int fd, r;

        fd = open_path(local_of(s), path, flags & STORE_CREATE);
        if (fd < 0)
                return fd;
        if (fstat(fd, &st) < 0) {
                r = -errno;
                (void) safe_close(fd);
                return r;
        }
        d = calloc(1, sizeof(*d));
        if (!d) {
                (void) safe_close(fd);
                return -ENOMEM;
        }
        d->base.store = s;
        d->fd = fd;
        d->dev = st.st_dev;
        *ret = &d->base;
        return 0;
}

static void local_dir_close(struct store_dir *d)
{
        (void) safe_close(dir_of(d)->fd);
        free(d);
}

/*
 * O_EXCL: two writers on one temporary would interleave their bytes into a file that then
 * gets a valid-looking record, so a second create of the same temporary fails with EEXIST
 * instead. Leftovers of an earlier run are swept at start; a failed job removes its own.
 */
static int local_tmp_create(struct store_dir *d, const char *name, int *ret_fd)
{
        char tmp[NAME_MAX + 1];
        int fd, r;

        r = tmp_name(tmp, sizeof(tmp), name);
        if (r < 0)
                return r;
        fd = openat(dir_of(d)->fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
        if (fd < 0)
                return -errno;
        *ret_fd = fd;
        return 0;
}

int store_local_tmp_open(struct store_dir *d, const char *name)
{
        char tmp[NAME_MAX + 1];
        int fd, r;

        r = tmp_name(tmp, sizeof(tmp), name);
        if (r < 0)
                return r;
        fd = openat(dir_of(d)->fd, tmp, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        return fd >= 0 ? fd : -errno;
}

static int local_tmp_remove(struct store_dir *d, const char *name)
{
        char tmp[NAME_MAX + 1];
        int r;

        r = tmp_name(tmp, sizeof(tmp), name);
        if (r < 0)
                return r;
        return unlinkat(dir_of(d)->fd, tmp, 0) < 0 ? -errno : 0;
}

/*
 * rename() that never replaces: EEXIST when `to` exists. renameat2(RENAME_NOREPLACE) on the
 * local filesystems (ext4, XFS, btrfs, tmpfs, ...); where the filesystem does not take the
 * flag (NFS, some FUSE: EINVAL), link() then unlink() gives the same guarantee. Within one
 * folder, both are atomic, also across power loss on a journaling file system (P2).
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

static int local_publish(struct store_dir *d, const char *name, unsigned flags)
{
        char tmp[NAME_MAX + 1];
        int dfd = dir_of(d)->fd, r;

        r = tmp_name(tmp, sizeof(tmp), name);
        if (r < 0)
                return r;
        if (flags & STORE_REPLACE)
                return renameat(dfd, tmp, dfd, name) < 0 ? -errno : 0;
        return rename_noreplace(dfd, tmp, name);
}

/*
 * One syncfs of the root's filesystem, plus one per other filesystem a folder lives on (a
 * mount inside the archive); all folders of a file system share its outcome. The root's is
 * synced through the root fd, opened at start: since Linux 5.8 syncfs reports the writeback
 * errors of the file system since the previous syncfs on the same open file, so a failed
 * write of a temporary made before the folder was opened still surfaces.
 */
static int local_sync(struct store *s, struct store_dir *const *dirs, size_t n, int *results)
{
        struct local_store *l = local_of(s);
        int first = 0;

        for (size_t i = 0; i < n; i++) {
                dev_t dev = dir_of(dirs[i])->dev;
                bool done = false;

                /* An earlier folder on the same device was synced: share its outcome. */
                for (size_t j = 0; j < i && !done; j++)
                        if (dir_of(dirs[j])->dev == dev) {
                                results[i] = results[j];
                                done = true;
                        }
                if (done)
                        continue;
                if (syncfs(dev == l->root_dev ? l->root_fd : dir_of(dirs[i])->fd) < 0)
                        results[i] = -errno;
                else
                        results[i] = 0;
                keep_first_error(&first, results[i]);
        }
        return first;
}

static int local_remove(struct store_dir *d, const char *name)
{
        return unlinkat(dir_of(d)->fd, name, 0) < 0 ? -errno : 0;
}

/*
 * This runs for every listed job on every poll, so it is cheap: one fstatat answers "no" for a
 * job of a new day; a "yes" is confirmed in the day folder opened beneath the root without
 * symlinks (archive_dir_open_beneath), and that folder is kept for the next question. For a
 * job of the same day, two fstatat answer: the path still names that very folder (same
 * device and inode, not a symlink), and the record is a regular file in it.
 */
static int local_has(struct store *s, const char *path, const char *name)
{
        struct local_store *l = local_of(s);
        struct stat st;
        int fd;

        if (!path || strlen(path) >= sizeof(l->day_path))
                return -EINVAL;
        if (l->day_fd >= 0 && strcmp(l->day_path, path) == 0 &&
            fstatat(l->root_fd, path, &st, AT_SYMLINK_NOFOLLOW) >= 0 && st.st_dev == l->day_dev &&
            st.st_ino == l->day_ino)
                return fstatat(l->day_fd, name, &st, AT_SYMLINK_NOFOLLOW) >= 0 &&
                       S_ISREG(st.st_mode);

        if (!archive_file_beneath(l->root_fd, path, name, &fd))
                return 0;
        if (fstat(fd, &st) < 0) {
                (void) safe_close(fd);
                return 0;
        }
        (void) safe_close(l->day_fd);
        l->day_fd = fd;
        l->day_dev = st.st_dev;
        l->day_ino = st.st_ino;
        snprintf(l->day_path, sizeof(l->day_path), "%s", path);
        return 1;
}

static int compare_names(const void *x, const void *y)
{
        return strcmp(*(char *const *) x, *(char *const *) y);
}

/* Names in the folder that may be sub-folders (d_type), or with files its final names (regular
 * files not starting with '.': temporaries are ".<name>.tmp"), sorted. */
static int list_names(struct store *s, const char *path, bool files, char ***ret, size_t *ret_n)
{
        char **names = NULL;
        size_t n = 0, allocated = 0;
        DIR *d = NULL;
        int fd, r;

        fd = open_path(local_of(s), path, false);
        if (fd < 0)
                return fd;
        d = fdopendir(fd);
        if (!d) {
                r = -errno;
                (void) safe_close(fd);
                return r;
        }
        for (;;) {
                struct dirent *de;

                errno = 0;
                de = readdir(d);
                if (!de) {
                        r = -errno;
                        break;
                }
                if (files ? de->d_name[0] == '.' ||
                                    (de->d_type != DT_REG && de->d_type != DT_UNKNOWN)
                          : strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
                                    (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN))
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
                store_names_free(names, n);
                return r;
        }
        if (n > 1)
                qsort(names, n, sizeof(*names), compare_names);
        *ret = names;
        *ret_n = n;
        return 0;
}

static int local_list_dirs(struct store *s, const char *path, char ***ret, size_t *ret_n)
{
        return list_names(s, path, false, ret, ret_n);
}

static int local_list_files(struct store *s, const char *path, char ***ret, size_t *ret_n)
{
        return list_names(s, path, true, ret, ret_n);
}

/* Removes the regular files of folder `name` under dfd (never through a symlink), then the
 * folder. */
static int remove_folder_files(int dfd, const char *name)
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
        return r;
}

static int local_remove_dir(struct store *s, const char *path, unsigned flags)
{
        char parent[LOCAL_PATH_MAX];
        const char *slash, *name;
        _cleanup_close_ int pfd = -1;
        int r;

        if (!path || !archive_path_is_plain(path) || strlen(path) >= sizeof(parent))
                return -EINVAL;
        slash = strrchr(path, '/');
        if (slash) {
                memcpy(parent, path, (size_t) (slash - path));
                parent[slash - path] = '\0';
                name = slash + 1;
        } else {
                parent[0] = '\0';
                name = path;
        }
        pfd = open_path(local_of(s), parent, false);
        if (pfd < 0)
                return pfd;
        if (flags & STORE_REMOVE_FILES) {
                r = remove_folder_files(pfd, name);
                if (r < 0)
                        return r;
        }
        if (unlinkat(pfd, name, AT_REMOVEDIR) < 0)
                return errno == ENOENT && (flags & STORE_REMOVE_FILES) ? 0 : -errno;
        return 0;
}

static int local_find_symlink(struct store *s, const char *dir, char *buf, size_t size)
{
        char path[LOCAL_PATH_MAX];
        struct stat st;
        int n;

        n = snprintf(path, sizeof(path), "%s", dir);
        if (n < 0 || (size_t) n >= sizeof(path))
                return -EINVAL;
        for (char *p = path;; p++) {
                char c = *p;
                int r;

                if (c != '/' && c != '\0')
                        continue;
                *p = '\0';
                r = fstatat(local_of(s)->root_fd, path, &st, AT_SYMLINK_NOFOLLOW);
                if (r >= 0 && S_ISLNK(st.st_mode)) {
                        n = snprintf(buf, size, "%s", path);
                        return n < 0 || (size_t) n >= size ? -ENAMETOOLONG : 0;
                }
                if (r < 0 || c == '\0')
                        return -ENOENT;
                *p = c;
        }
}

static const struct store_ops local_ops = {
        .kind = "local",
        .free = local_free,
        .lock = local_lock,
        .locked = local_locked,
        .sweep = local_sweep,
        .dir_open = local_dir_open,
        .dir_close = local_dir_close,
        .tmp_create = local_tmp_create,
        .tmp_remove = local_tmp_remove,
        .publish = local_publish,
        .sync = local_sync,
        .remove = local_remove,
        .has = local_has,
        .list_dirs = local_list_dirs,
        .list_files = local_list_files,
        .remove_dir = local_remove_dir,
        .find_symlink = local_find_symlink,
        .scratch_fd = local_scratch_fd,
        .free_space = local_free_space,
};

/*
 * Opens the root once; every later path is relative to this fd. Returns the errno of
 * mkdir/open/faccessat (EACCES, EROFS, ENOTDIR, ...).
 */
int store_local_open(const char *dir, struct store **ret)
{
        _cleanup_close_ int fd = -1;
        struct local_store *l;
        struct stat st;
        int r;

        if (!dir || !*dir || !ret)
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

        l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        l->base.ops = &local_ops;
        l->root_fd = fd;
        fd = -1;
        l->root_dev = st.st_dev;
        l->lock_fd = -1;
        l->day_fd = -1;
        *ret = &l->base;
        return 0;
}

/* Safe paths beneath a folder fd, never through a symlink (paths.h). */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#if __has_include(<linux/openat2.h>) /* Linux 5.6's headers */
#include <linux/openat2.h>
#define HAVE_OPENAT2 1
#endif
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "macro.h"
#include "paths.h"

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
bool archive_path_is_plain(const char *path)
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

        if (dir_fd < 0 || !path || !archive_path_is_plain(path))
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
        char path[1024];
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

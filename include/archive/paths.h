#pragma once

#include <stdbool.h>

/*
 * Safe paths on the local file system: folders beneath a folder fd, opened without ever
 * following a symlink. The local store (store_local.c) writes through these, and the
 * readers of a local archive (archive_scan.c, archived.c) read through them.
 */

/*
 * Opens the folder `path` ("a/b/c": relative, components separated by single '/', none of
 * them empty, "." or "..") beneath dir_fd, one component at a time with O_NOFOLLOW, so no
 * symlink is ever followed and the result is always inside dir_fd's tree. With create,
 * missing components are made (0750). For readers as well as writers: e.g. a day folder
 * "<guid>/YYYY/MM/DD" beneath the archive root. Returns an O_RDONLY|O_DIRECTORY|O_CLOEXEC
 * fd, or -ELOOP when a component is a symlink, -ENOTDIR when it is another non-folder,
 * -ENOENT when missing (and not create), -EINVAL for a malformed path, or another -errno.
 */
int archive_dir_open_beneath(int dir_fd, const char *path, bool create);

/*
 * Whether `dir`/`name` beneath root_fd is a regular file reached without a symlink (dir as
 * for archive_dir_open_beneath). A missing file answers in one fstatat; one that is there is
 * confirmed in dir opened beneath root_fd, whose fd goes to *ret_dir_fd when it is not NULL
 * (the caller closes it). Any failure to look answers false.
 */
bool archive_file_beneath(int root_fd, const char *dir, const char *name, int *ret_dir_fd);

/* Whether path is one or more plain names joined by single '/': none empty, ".", ".." or
 * longer than NAME_MAX, no leading or trailing '/'. */
bool archive_path_is_plain(const char *path);

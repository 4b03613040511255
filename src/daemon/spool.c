/* The spool of an item's job list (spool_open says what it is and where it lives). */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "util.h"

void spool_close(struct item *it)
{
        if (it->spool_fd >= 0) {
                it->spool_fd = safe_close(it->spool_fd);
                it->d->n_spooling--;
        }
        free(it->spool_buf);
        it->spool_buf = NULL;
        it->spool_buf_len = 0;
        it->spool_size = it->spool_read = 0;
        it->n_pending = 0;
}

/*
 * The spool: the raw bytes of the elements a list leaves to act on, in an unlinked file, so
 * that a list of any length costs a few bytes of memory. It lives in $TMPDIR, else /var/tmp
 * (the unit's PrivateTmp= gives the service its own, on disk, where /tmp may be memory); if
 * neither takes a file, in the archive folder. O_TMPFILE leaves nothing behind even after
 * kill -9; without it the file is unlinked as soon as it is made.
 */
static int spool_open(struct daemon *d)
{
        const char *dir = getenv("TMPDIR");
        char path[PATH_MAX];
        int fd;

        if (!dir || dir[0] != '/')
                dir = "/var/tmp";
        fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (fd >= 0)
                return fd;
        if (snprintf(path, sizeof(path), "%s/.connect-job-archiver-XXXXXX", dir) <
            (int) sizeof(path)) {
                fd = mkostemp(path, O_CLOEXEC);
                if (fd >= 0) {
                        (void) unlink(path);
                        return fd;
                }
        }
        return archive_tmpfile(d->archive);
}

int spool_flush(struct item *it)
{
        int r;

        if (it->spool_buf_len == 0)
                return 0;
        r = write_all(it->spool_fd, it->spool_buf, it->spool_buf_len);
        it->spool_buf_len = 0;
        return r;
}

/* Appends one element's record to the spool (opening it, and its buffer, at the first). */
int spool_add(struct item *it, const char *elem, size_t len)
{
        uint32_t n = (uint32_t) len; /* len <= CONNECT_JOB_MAX */
        int r;

        if (it->spool_fd < 0) {
                r = spool_open(it->d);
                if (r < 0)
                        return r;
                it->spool_fd = r;
                it->d->n_spooling++;
        }
        if (!it->spool_buf) {
                it->spool_buf = malloc(SPOOL_BUFFER);
                if (!it->spool_buf)
                        return -ENOMEM;
        }
        if (it->spool_buf_len + sizeof(n) + len > SPOOL_BUFFER) {
                r = spool_flush(it);
                if (r < 0)
                        return r;
        }
        if (sizeof(n) + len > SPOOL_BUFFER) {
                r = write_all(it->spool_fd, &n, sizeof(n));
                if (r >= 0)
                        r = write_all(it->spool_fd, elem, len);
                if (r < 0)
                        return r;
        } else {
                memcpy(it->spool_buf + it->spool_buf_len, &n, sizeof(n));
                memcpy(it->spool_buf + it->spool_buf_len + sizeof(n), elem, len);
                it->spool_buf_len += sizeof(n) + len;
        }
        it->spool_size += sizeof(n) + len;
        it->n_pending++;
        return 0;
}

/* Forgets what is spooled (the file stays open for the next attempt, emptied). */
int spool_reset(struct item *it)
{
        it->spool_buf_len = 0;
        it->spool_size = it->spool_read = 0;
        it->n_pending = 0;
        if (it->spool_fd >= 0 && ftruncate(it->spool_fd, 0) < 0)
                return -errno;
        return 0;
}

/* Reads the next record of it's spool into a new buffer. */
int spool_next(struct item *it, char **ret, size_t *ret_len)
{
        uint32_t n;
        ssize_t k;
        char *buf;

        k = pread(it->spool_fd, &n, sizeof(n), (off_t) it->spool_read);
        if (k != (ssize_t) sizeof(n))
                return k < 0 ? -errno : -EIO;
        if (n == 0 || n > CONNECT_JOB_MAX || it->spool_read + sizeof(n) + n > it->spool_size)
                return -EIO;
        buf = malloc(n);
        if (!buf)
                return -ENOMEM;
        k = pread(it->spool_fd, buf, n, (off_t) (it->spool_read + sizeof(n)));
        if (k != (ssize_t) n) {
                int r = k < 0 ? -errno : -EIO;
                free(buf);
                return r;
        }
        it->spool_read += sizeof(n) + n;
        it->n_pending--;
        *ret = buf;
        *ret_len = n;
        return 0;
}

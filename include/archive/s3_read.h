#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Reading an archive in S3 (store_s3.c): the S3 store's own engine, signing, retries and
 * concurrency cap, for connect-jobs (s3_mirror.h) and whatever else reads objects (the
 * catalog's member reads). The store may be a reader (store_s3_open() without staging_dir)
 * or the daemon's. Paths are the archive's ("guid/YYYY/MM/DD", "" the root); an object is
 * "[<prefix>/]<path>/<name>". Every function returns 0 or -errno: -ENOENT (404),
 * -EKEYREJECTED (401/403), -EIO (unreachable or failing after the retries), -EPROTO (any other
 * answer), -ENOMEM.
 */

struct store;

struct s3_object {
        char *name;    /* beneath the listed path ("2024/11/26/<key>.json") */
        uint64_t size; /* bytes */
};

/*
 * ListObjectsV2 of every object beneath path (no delimiter), page after page, in key order.
 * after (NULL: from the first): only names greater than it (S3's start-after); until (NULL:
 * to the last): the listing stops at the first name whose first strlen(until) bytes are
 * greater than until, so "2024/11/30" keeps everything in that folder. Free with
 * s3_objects_free().
 */
int s3_list_objects(struct store *s, const char *path, const char *after, const char *until,
                    struct s3_object **ret, size_t *ret_n);
void s3_objects_free(struct s3_object *o, size_t n);

/* One GET: the object path/name (whole, or with length > 0 the bytes [offset, offset+length),
 * a Range request answered 206) into fd, written from its offset 0 (truncated first, and again
 * before a retry), or with at_offset (and length > 0) written at offset, in place, the file
 * left as it is otherwise (a retry writes the same bytes again: several ranges may go into
 * one fd at once), or with fd < 0 into buf (malloc'd, len bytes, NUL-terminated; at most 64
 * MiB). result is its outcome. */
struct s3_get {
        const char *path, *name;
        uint64_t offset, length;
        int fd;
        bool at_offset;
        char *buf; /* out, the caller's to free */
        size_t len;
        int result; /* out */
};

/* The gets, all at once under the store's concurrency cap. Returns 0 when every one
 * succeeded, else the first error by index (each has its own result). */
int s3_get_many(struct store *s, struct s3_get *gets, size_t n);

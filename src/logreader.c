#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libdeflate.h>
#include <zlib.h>

#include "logreader.h"
#include "macro.h"
#include "util.h"

/* Whole-buffer decoding is used up to these sizes; beyond, memory would grow with the log. */
#define WHOLE_MAX_IN  (1024 * 1024)
#define WHOLE_MAX_OUT (4 * 1024 * 1024)
#define STREAM_IN     (64 * 1024)

struct log_reader_cache {
        struct libdeflate_decompressor *d;
        unsigned char *in;
        size_t in_cap;
        char *out;
        size_t out_cap;
        bool in_use;
};

struct log_reader {
        struct log_reader_cache *cache; /* borrowed, or owned when own_cache */
        bool own_cache;
        int fd;
        /* The compressed file when it was read whole (small files), else NULL. */
        unsigned char *in;
        size_t in_len;
        /* The whole decoded log, when libdeflate managed. */
        char *out;
        size_t out_len;
        bool whole;

        /* Streaming. */
        z_stream zs;
        bool zs_init;
        bool in_member; /* inside a member: the file must not end here */
        bool eof;       /* no more input from the file */
        bool done;
        bool any_member;
        unsigned char *buf; /* STREAM_IN bytes, when reading from fd */
        int error;
};

const char *log_reader_strerror(int error)
{
        if (error == -EBADMSG)
                return "corrupt gzip data";
        if (error == -EPIPE)
                return "truncated gzip file";
        return strerror(-error);
}

int log_reader_cache_new(struct log_reader_cache **ret)
{
        struct log_reader_cache *c = calloc(1, sizeof(*c));

        if (!c)
                return -ENOMEM;
        c->d = libdeflate_alloc_decompressor();
        if (!c->d) {
                free(c);
                return -ENOMEM;
        }
        *ret = c;
        return 0;
}

void log_reader_cache_free(struct log_reader_cache *c)
{
        if (!c)
                return;
        libdeflate_free_decompressor(c->d);
        free(c->in);
        free(c->out);
        free(c);
}

static int grow(void *pp, size_t *cap, size_t need)
{
        void *p;

        if (*cap >= need)
                return 0;
        p = realloc(*(void **) pp, need);
        if (!p)
                return -ENOMEM;
        *(void **) pp = p;
        *cap = need;
        return 0;
}

static int read_whole(int fd, size_t size, struct log_reader_cache *c, size_t *ret_len)
{
        size_t len = 0;

        if (grow(&c->in, &c->in_cap, size ? size : 1) < 0)
                return -ENOMEM;
        while (len < size) {
                ssize_t n = read(fd, c->in + len, size - len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                len += (size_t) n;
        }
        *ret_len = len;
        return 0;
}

/* libdeflate over every member of r->in into one buffer; false when it does not fit or fails
 * (the streaming path then decides, and reports errors precisely). */
static bool try_whole(struct log_reader *r, int64_t size_hint)
{
        struct log_reader_cache *c = r->cache;
        size_t cap, in_off = 0, out_len = 0;

        if (r->in_len < 18)
                return false;
        if (size_hint >= 0)
                cap = (size_t) size_hint;
        else {
                /* ISIZE of the last member: exact for one member. */
                const unsigned char *t = r->in + r->in_len - 4;
                cap = (size_t) t[0] | (size_t) t[1] << 8 | (size_t) t[2] << 16 |
                      (size_t) t[3] << 24;
        }
        if (cap > WHOLE_MAX_OUT)
                return false;
        if (grow(&c->out, &c->out_cap, cap + 1) < 0)
                return false;
        r->out = c->out;
        while (in_off < r->in_len) {
                size_t used_in = 0, got = 0;
                enum libdeflate_result res = libdeflate_gzip_decompress_ex(
                        c->d, r->in + in_off, r->in_len - in_off, r->out + out_len, cap - out_len,
                        &used_in, &got);
                if (res != LIBDEFLATE_SUCCESS) {
                        r->out = NULL;
                        return false;
                }
                in_off += used_in;
                out_len += got;
        }
        r->out_len = out_len;
        r->whole = true;
        return true;
}

int log_reader_open(int dfd, const char *name, int64_t size_hint, struct log_reader_cache *cache,
                    struct log_reader **ret)
{
        _cleanup_close_ int fd = -1;
        struct log_reader *r;
        struct stat st;
        int k;

        fd = file_open_at(dfd, name, &st);
        if (fd < 0)
                return fd;
        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->fd = -1;
        if (!cache || cache->in_use) {
                k = log_reader_cache_new(&cache);
                if (k < 0) {
                        free(r);
                        return k;
                }
                r->own_cache = true;
        }
        r->cache = cache;
        cache->in_use = true;
        if (st.st_size <= WHOLE_MAX_IN) {
                k = read_whole(fd, (size_t) st.st_size, cache, &r->in_len);
                if (k < 0) {
                        log_reader_free(r);
                        return k;
                }
                r->in = cache->in;
                if (try_whole(r, size_hint)) {
                        *ret = r;
                        return 0;
                }
        } else {
                posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
                if (grow(&cache->in, &cache->in_cap, STREAM_IN) < 0) {
                        log_reader_free(r);
                        return -ENOMEM;
                }
                r->buf = cache->in;
                r->fd = fd;
                fd = -1;
        }
        if (inflateInit2(&r->zs, 16 + MAX_WBITS) != Z_OK) {
                log_reader_free(r);
                return -ENOMEM;
        }
        r->zs_init = true;
        if (r->in) {
                r->zs.next_in = r->in;
                r->zs.avail_in = (uInt) r->in_len;
                r->eof = true;
        }
        *ret = r;
        return 0;
}

bool log_reader_whole(struct log_reader *r, const char **ret_data, size_t *ret_len)
{
        if (!r->whole)
                return false;
        *ret_data = r->out;
        *ret_len = r->out_len;
        return true;
}

static int fill(struct log_reader *r)
{
        for (;;) {
                ssize_t n = read(r->fd, r->buf, STREAM_IN);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        r->eof = true;
                r->zs.next_in = r->buf;
                r->zs.avail_in = (uInt) n;
                return 0;
        }
}

ssize_t log_reader_read(struct log_reader *r, void *buf, size_t size)
{
        int k;

        if (r->whole || r->done)
                return 0;
        if (r->error)
                return r->error;
        r->zs.next_out = buf;
        r->zs.avail_out = (uInt) (size > UINT32_MAX ? UINT32_MAX : size);
        while (r->zs.avail_out > 0) {
                if (r->zs.avail_in == 0 && !r->eof) {
                        k = fill(r);
                        if (k < 0)
                                return r->error = k;
                }
                if (r->zs.avail_in == 0 && r->eof) {
                        /* The end of the file: fine between members, not inside one. */
                        if (r->in_member || !r->any_member)
                                r->error = -EPIPE;
                        else
                                r->done = true;
                        break;
                }
                if (!r->in_member) {
                        /* A new member starts here: it must look like gzip. */
                        if (r->zs.avail_in >= 1 && r->zs.next_in[0] != 0x1f) {
                                r->error = -EBADMSG;
                                break;
                        }
                        r->in_member = true;
                        r->any_member = true;
                }
                k = inflate(&r->zs, Z_NO_FLUSH);
                if (k == Z_STREAM_END) {
                        r->in_member = false;
                        if (inflateReset(&r->zs) != Z_OK) {
                                r->error = -EBADMSG;
                                break;
                        }
                        continue;
                }
                if (k == Z_BUF_ERROR && r->zs.avail_in == 0)
                        continue; /* needs input */
                if (k != Z_OK) {
                        r->error = k == Z_MEM_ERROR ? -ENOMEM : -EBADMSG;
                        break;
                }
        }
        {
                size_t got = (size - r->zs.avail_out);
                if (got > 0)
                        return (ssize_t) got;
        }
        return r->error ? r->error : 0;
}

void log_reader_free(struct log_reader *r)
{
        if (!r)
                return;
        if (r->zs_init)
                (void) inflateEnd(&r->zs);
        (void) safe_close(r->fd);
        if (r->own_cache)
                log_reader_cache_free(r->cache);
        else if (r->cache)
                r->cache->in_use = false;
        free(r);
}

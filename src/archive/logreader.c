#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gzblock.h"
#include "logreader.h"
#include "macro.h"
#include "util.h"

/* Several threads only for a file of at least this many members (1 MiB of log). */
#define PARALLEL_MIN_MEMBERS 4
#define SLOTS_PER_THREAD     2
#define MAX_THREADS          64

enum slot_state { SLOT_FREE, SLOT_BUSY, SLOT_READY };

/* One member decoded ahead, with the decoder whose buffer holds it. */
struct slot {
        enum slot_state state;
        size_t index; /* the member it holds or is decoding */
        ssize_t result;
        const void *buf;
        struct gzblock_decoder *d;
};

struct parallel {
        struct gzblock_member *members;
        size_t n;
        struct slot *slots;
        size_t n_slots;
        pthread_t *threads;
        unsigned n_threads;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        size_t claim; /* the next member a thread takes */
        size_t pos;   /* the next member handed out */
        bool held;    /* the slot of member pos - 1 is still the caller's */
        bool stop;
};

struct log_reader {
        int fd;
        int error;
        struct gzblock_reader *seq;  /* one member after the other, or */
        struct parallel *par;        /* members decoded ahead on threads, or */
        struct gzblock_decoder *dec; /* the members of list decoded here, in turn */
        struct gzblock_member *list;
        size_t n_list, pos;
};

const char *log_reader_strerror(int error)
{
        if (error == -EBADMSG)
                return "corrupt or truncated gzip data";
        return strerror(-error);
}

static void *decode_thread(void *arg)
{
        struct log_reader *r = arg;
        struct parallel *p = r->par;

        pthread_mutex_lock(&p->lock);
        for (;;) {
                struct slot *s;
                size_t i;

                while (!p->stop && p->claim < p->n &&
                       p->slots[p->claim % p->n_slots].state != SLOT_FREE)
                        pthread_cond_wait(&p->cond, &p->lock);
                if (p->stop || p->claim >= p->n)
                        break;
                i = p->claim++;
                s = &p->slots[i % p->n_slots];
                s->state = SLOT_BUSY;
                s->index = i;
                pthread_mutex_unlock(&p->lock);

                s->result = gzblock_decode(s->d, r->fd, &p->members[i], &s->buf);

                pthread_mutex_lock(&p->lock);
                s->state = SLOT_READY;
                pthread_cond_broadcast(&p->cond);
        }
        pthread_mutex_unlock(&p->lock);
        return NULL;
}

static void parallel_free(struct parallel *p)
{
        if (!p)
                return;
        if (p->threads) {
                pthread_mutex_lock(&p->lock);
                p->stop = true;
                pthread_cond_broadcast(&p->cond);
                pthread_mutex_unlock(&p->lock);
                for (unsigned t = 0; t < p->n_threads; t++)
                        pthread_join(p->threads[t], NULL);
        }
        pthread_cond_destroy(&p->cond);
        pthread_mutex_destroy(&p->lock);
        for (size_t i = 0; p->slots && i < p->n_slots; i++)
                gzblock_decoder_free(p->slots[i].d);
        free(p->slots);
        free(p->threads);
        free(p->members);
        free(p);
}

/*
 * Lists a blocked file's members and starts the threads that decode them. Returns 1 when
 * the file is read in parallel, 0 when it is not worth it or not blocked (read it in
 * order), or -ENOMEM.
 */
static int parallel_run(struct log_reader *r, unsigned threads, struct gzblock_member *members,
                        size_t n);

static int parallel_start(struct log_reader *r, unsigned threads)
{
        struct gzblock_member *members = NULL;
        size_t n = 0;

        if (gzblock_list(r->fd, &members, &n) < 0 || n < PARALLEL_MIN_MEMBERS) {
                /* Not ours, or damaged: the reader in order finds and names the error. */
                free(members);
                return 0;
        }
        return parallel_run(r, threads, members, n);
}

/* Decodes members[0, n) (taken over) on threads. Returns 1, or -ENOMEM. */
static int parallel_run(struct log_reader *r, unsigned threads, struct gzblock_member *members,
                        size_t n)
{
        struct parallel *p;

        if (threads > MAX_THREADS)
                threads = MAX_THREADS;
        if (threads > n)
                threads = (unsigned) n;
        p = calloc(1, sizeof(*p));
        if (!p) {
                free(members);
                return -ENOMEM;
        }
        p->members = members;
        p->n = n;
        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->cond, NULL);
        r->par = p;
        p->n_slots = (size_t) threads * SLOTS_PER_THREAD;
        p->slots = calloc(p->n_slots, sizeof(*p->slots));
        p->threads = calloc(threads, sizeof(*p->threads));
        if (!p->slots || !p->threads)
                return -ENOMEM;
        for (size_t i = 0; i < p->n_slots; i++)
                if (gzblock_decoder_new(&p->slots[i].d) < 0)
                        return -ENOMEM;
        for (unsigned t = 0; t < threads; t++) {
                if (pthread_create(&p->threads[t], NULL, decode_thread, r) != 0)
                        break;
                p->n_threads++;
        }
        return p->n_threads > 0 ? 1 : -ENOMEM;
}

static ssize_t parallel_next(struct parallel *p, const void **ret_buf)
{
        struct slot *s;
        ssize_t n;

        pthread_mutex_lock(&p->lock);
        if (p->held) {
                p->slots[(p->pos - 1) % p->n_slots].state = SLOT_FREE;
                p->held = false;
                pthread_cond_broadcast(&p->cond);
        }
        if (p->pos >= p->n) {
                pthread_mutex_unlock(&p->lock);
                return 0;
        }
        s = &p->slots[p->pos % p->n_slots];
        while (!(s->state == SLOT_READY && s->index == p->pos))
                pthread_cond_wait(&p->cond, &p->lock);
        n = s->result;
        *ret_buf = s->buf;
        p->pos++;
        p->held = true;
        pthread_mutex_unlock(&p->lock);
        return n;
}

/* A reader of the log name under dfd, opened (not through a symlink) and stat'ed into *st. */
static int reader_new(int dfd, const char *name, struct stat *st, struct log_reader **ret)
{
        struct log_reader *r = calloc(1, sizeof(*r));
        int fd;

        if (!r)
                return -ENOMEM;
        fd = file_open_at(dfd, name, st);
        if (fd < 0) {
                free(r);
                return fd;
        }
        r->fd = fd;
        *ret = r;
        return 0;
}

int log_reader_open(int dfd, const char *name, unsigned threads, struct log_reader **ret)
{
        struct log_reader *r;
        struct stat st;
        int k;

        k = reader_new(dfd, name, &st, &r);
        if (k < 0)
                return k;
        /* Only a file that can hold several members is listed (one pread per member). */
        k = 0;
        if (threads > 1 && st.st_size > (off_t) (PARALLEL_MIN_MEMBERS * GZBLOCK_SIZE / 8))
                k = parallel_start(r, threads);
        if (k == 0) {
                parallel_free(r->par);
                r->par = NULL;
                k = gzblock_reader_new(r->fd, &r->seq);
        }
        if (k < 0) {
                log_reader_free(r);
                return k;
        }
        *ret = r;
        return 0;
}

ssize_t log_reader_next(struct log_reader *r, const char **ret_buf)
{
        const void *buf = NULL;
        ssize_t n;

        if (r->error < 0)
                return r->error;
        if (r->par)
                n = parallel_next(r->par, &buf);
        else if (r->dec)
                n = r->pos < r->n_list ? gzblock_decode(r->dec, r->fd, &r->list[r->pos++], &buf)
                                       : 0;
        else
                n = gzblock_read(r->seq, &buf);
        if (n < 0)
                r->error = (int) n;
        *ret_buf = buf;
        return n;
}

void log_reader_free(struct log_reader *r)
{
        if (!r)
                return;
        parallel_free(r->par);
        gzblock_reader_free(r->seq);
        gzblock_decoder_free(r->dec);
        free(r->list);
        (void) safe_close(r->fd);
        free(r);
}

int log_reader_open_members(int dfd, const char *name, unsigned threads,
                            const struct gzblock_member *members, size_t n, uint64_t file_size,
                            struct log_reader **ret)
{
        struct gzblock_member *list;
        struct log_reader *r;
        struct stat st;
        int k;

        k = reader_new(dfd, name, &st, &r);
        if (k < 0)
                return k;
        if ((uint64_t) st.st_size != file_size) {
                log_reader_free(r);
                return -ESTALE;
        }
        list = malloc((n ? n : 1) * sizeof(*list));
        if (!list) {
                log_reader_free(r);
                return -ENOMEM;
        }
        if (n)
                memcpy(list, members, n * sizeof(*list));
        if (threads > 1 && n > 1) {
                k = parallel_run(r, threads, list, n);
        } else {
                r->list = list;
                r->n_list = n;
                k = gzblock_decoder_new(&r->dec);
        }
        if (k < 0) {
                log_reader_free(r);
                return k;
        }
        *ret = r;
        return 0;
}

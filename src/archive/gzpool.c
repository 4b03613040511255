#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <libdeflate.h>
#include <openssl/evp.h>

#include "gzblock.h"
#include "gzpool.h"
#include "macro.h"
#include "util.h"

/*
 * How it works. The owner copies a log's bytes into blocks of GZBLOCK_SIZE, hashing them
 * on the way (SHA-256 has to see the bytes in order, and with SHA-NI it costs under 1 ms a
 * MB), and hands each full block to the pool's queue with its number in the log. Any worker
 * takes any block, of any log, and compresses it whole with libdeflate into one gzip member
 * (gzblock.h). The members of one log must reach its file in order, so after compressing a
 * worker looks at the log: if its block is the next to write and no one is writing, it
 * writes it, then every block parked behind it that is now next; otherwise it copies its
 * member into the block and parks it, sorted by number, for the thread that writes the one
 * before. One thread at most writes a log at a time, so writes never interleave.
 *
 * Memory is bounded in bytes: BLOCKS_PER_THREAD full blocks (about 256 KiB each) per thread.
 * A log starts in a 16 KiB block (the smallest of BLOCK_CLASSES) that doubles as it fills,
 * so a download of a 10 KB log holds 16 KiB, not 256: with eight downloads open at once,
 * full-size blocks took the whole budget before any reached a worker, and the owner waited
 * for a block every time a download began (the 2,000-job benchmark on tmpfs: 1.33 s against
 * 1.07-1.14 s now; bench/README.md). Only the first block of a log grows; once one is
 * handed over, the next starts full-size. When the budget is spent, the owner waits in
 * gzjob_write() for a block to come back, which throttles the downloads to the speed of
 * compression; free blocks of other sizes are released first to make room. Each open log
 * may hold one block more than the budget (see block_get), as each used to hold one chunk.
 */
#define BLOCKS_PER_THREAD 4
#define BLOCK_CLASSES     5 /* capacities GZBLOCK_SIZE >> 4 (16 KiB) .. GZBLOCK_SIZE */
#define SHA256_LEN        32

struct block {
        struct block *next; /* in the queue, a job's parked list, or the free list */
        struct gzjob *job;
        uint64_t seq;
        size_t len;   /* bytes of log; once parked, bytes of its member */
        unsigned cls; /* capacity block_cap(cls) of log, gzblock_bound() of that of member */
        unsigned char data[];
};

/* Where a job is. OPEN: from gzjob_new to the end of its last write (and the close of its
 * fd). DONE: in the done list. DISPATCHED: its done is running, and it is freed after. */
enum job_state {
        JOB_OPEN,
        JOB_DONE,
        JOB_DISPATCHED,
};

struct gzjob {
        struct gzpool *pool;
        struct gzjob *next; /* in the done list */
        enum job_state state;
        /* The owner's alone: */
        struct block *fill;
        EVP_MD_CTX *md;
        gzjob_done_fn *done;
        void *userdata;
        gzjob_block_fn *block_fn; /* sees each block's bytes before it is handed over */
        void *block_userdata;
        uint64_t next_seq; /* the number of the next block handed over */
        /* Under the lock: */
        bool finish_requested;
        atomic_bool aborted; /* also peeked at by a writer between two blocks */
        bool held;           /* a thread is writing its blocks or closing its fd */
        unsigned n_out;      /* blocks handed over, not yet written or dropped */
        uint64_t next_write; /* the number of the next block to write */
        struct block *parked;
        int error;
        /* fd and result.bytes_out belong to the thread that holds the job; the rest of
         * result is the owner's, set before finish_requested. */
        int fd;
        struct gzjob_result result;
        uint32_t *member_sizes; /* of the members written, in order (the writer's) */
        size_t n_members, cap_members;
};

struct worker {
        struct gzpool *pool;
        pthread_t thread;
        struct libdeflate_compressor *c;
        unsigned char *out; /* gzblock_bound(GZBLOCK_SIZE) */
};

struct gzpool {
        pthread_mutex_t lock;
        pthread_cond_t work;  /* a block was queued, or stop */
        pthread_cond_t space; /* a block came back */
        pthread_cond_t idle;  /* a job let go of its last block, or was let go by a thread */
        unsigned n_threads;
        struct worker *workers;
        struct worker inline_worker; /* the owner's, with no threads */
        bool stop;
        int event_fd;
        struct block *queue, **queue_tail;
        struct gzjob *done, **done_tail;
        size_t n_busy;      /* blocks handed over and not back, plus jobs held */
        size_t n_finishing; /* finished by the owner, done not yet called */
        struct block *free_blocks[BLOCK_CLASSES];
        size_t bytes;       /* of blocks allocated, free or not */
        size_t bytes_max;   /* kept allocated */
        unsigned n_working; /* blocks out of the owner's hands */
        size_t out_len;     /* gzblock_bound(GZBLOCK_SIZE): what a worker holds */
};

static size_t block_cap(unsigned cls)
{
        return (size_t) GZBLOCK_SIZE >> (BLOCK_CLASSES - 1 - cls);
}

/* What a block of class cls takes, with room for its member once compressed. */
static size_t block_size(unsigned cls)
{
        return sizeof(struct block) + gzblock_bound(block_cap(cls));
}

static void wake_owner(struct gzpool *p)
{
        uint64_t one = 1;

        /* EAGAIN means the counter is already non-zero: the owner is woken anyway. */
        (void) !write(p->event_fd, &one, sizeof(one));
}

/* Gives a block back. Called with the lock held. */
static void block_put_locked(struct gzpool *p, struct block *b, bool working)
{
        if (!b)
                return;
        if (working)
                p->n_working--;
        if (p->bytes > p->bytes_max) {
                /* Allocated past the bound (see block_get): not kept. */
                p->bytes -= block_size(b->cls);
                free(b);
        } else {
                b->next = p->free_blocks[b->cls];
                p->free_blocks[b->cls] = b;
        }
        pthread_cond_broadcast(&p->space);
}

/* A block of j's that will not be written is dropped. Lock held. */
static void block_drop_locked(struct gzjob *j, struct block *b)
{
        struct gzpool *p = j->pool;

        block_put_locked(p, b, true);
        j->n_out--;
        p->n_busy--;
}

static void job_drop_parked_locked(struct gzjob *j)
{
        while (j->parked) {
                struct block *b = j->parked;
                j->parked = b->next;
                block_drop_locked(j, b);
        }
}

/*
 * Ends j when the owner has finished it and its last block is written: closes the fd (on NFS
 * and some FUSE filesystems close() is where a failed write shows up) without the lock, and
 * puts j in the done list. Called with the lock held, by whoever let go of j last.
 */
static void job_maybe_end_locked(struct gzjob *j)
{
        struct gzpool *p = j->pool;
        int fd;

        if (j->n_out > 0 || j->held) {
                return;
        }
        pthread_cond_broadcast(&p->idle);
        if (!j->finish_requested || j->aborted || j->state != JOB_OPEN)
                return;
        j->held = true;
        p->n_busy++;
        fd = j->fd;
        j->fd = -1;
        pthread_mutex_unlock(&p->lock);
        int r = close(fd) < 0 ? -errno : 0;
        pthread_mutex_lock(&p->lock);
        j->held = false;
        p->n_busy--;
        pthread_cond_broadcast(&p->idle);
        if (j->aborted)
                return; /* the owner, waiting in gzjob_abort(), frees it */
        if (j->error == 0)
                j->error = r;
        j->state = JOB_DONE;
        *p->done_tail = j;
        p->done_tail = &j->next;
        wake_owner(p);
}

/* Parks a compressed block of j, keeping the list sorted by number. Lock held. */
static void job_park_locked(struct gzjob *j, struct block *b)
{
        struct block **pp = &j->parked;

        while (*pp && (*pp)->seq < b->seq)
                pp = &(*pp)->next;
        b->next = *pp;
        *pp = b;
}

/*
 * Writes j's member in out (block b's) and then every parked block that is next, as the
 * job's one writer. Called with the lock held and j->held set; lets the lock go while it
 * writes.
 */
static void job_write_locked(struct gzjob *j, struct block *b, const unsigned char *out, size_t len)
{
        struct gzpool *p = j->pool;

        for (;;) {
                pthread_mutex_unlock(&p->lock);
                int r = write_all(j->fd, out, len);
                /* The output is worthless from the first error on. On a full disk, give its
                 * space back now rather than when the owner gets round to aborting the job:
                 * other jobs' files are waiting for it. */
                if (r < 0)
                        (void) !ftruncate(j->fd, 0);
                pthread_mutex_lock(&p->lock);
                if (r < 0 && j->error == 0)
                        j->error = r;
                if (r == 0) {
                        j->result.bytes_out += len;
                        if (j->n_members == j->cap_members) {
                                size_t cap = j->cap_members ? 2 * j->cap_members : 4;
                                uint32_t *m = reallocarray(j->member_sizes, cap, sizeof(*m));
                                if (m) {
                                        j->member_sizes = m;
                                        j->cap_members = cap;
                                }
                        }
                        /* Without room the sizes are incomplete, and the result says none. */
                        if (j->n_members < j->cap_members)
                                j->member_sizes[j->n_members] = (uint32_t) len;
                        j->n_members++;
                }
                j->next_write++;
                block_drop_locked(j, b);
                if (j->error < 0 || j->aborted) {
                        job_drop_parked_locked(j);
                        return;
                }
                b = j->parked;
                if (!b || b->seq != j->next_write)
                        return;
                j->parked = b->next;
                out = b->data;
                len = b->len;
        }
}

/*
 * Compresses block b with w's compressor and writes it or parks it. Called with the lock
 * held (let go meanwhile) and b counted in its job's n_out.
 */
static void block_work_locked(struct worker *w, struct block *b)
{
        struct gzpool *p = w->pool;
        struct gzjob *j = b->job;
        ssize_t n = -ECANCELED;

        if (j->error == 0 && !j->aborted) {
                pthread_mutex_unlock(&p->lock);
                n = gzblock_compress(w->c, b->data, b->len, w->out, p->out_len);
                pthread_mutex_lock(&p->lock);
                if (n < 0 && j->error == 0)
                        j->error = -EIO;
        }
        if (n < 0 || j->error < 0 || j->aborted) {
                block_drop_locked(j, b);
        } else if (j->held || b->seq != j->next_write) {
                memcpy(b->data, w->out, (size_t) n);
                b->len = (size_t) n;
                job_park_locked(j, b);
                return; /* the writer of the block before takes it */
        } else {
                j->held = true;
                job_write_locked(j, b, w->out, (size_t) n);
                j->held = false;
        }
        job_maybe_end_locked(j);
}

static void *worker_main(void *userdata)
{
        struct worker *w = userdata;
        struct gzpool *p = w->pool;

        pthread_mutex_lock(&p->lock);
        for (;;) {
                while (!p->queue && !p->stop)
                        pthread_cond_wait(&p->work, &p->lock);
                struct block *b = p->queue;
                if (!b)
                        break; /* stopping, and nothing left to do */
                p->queue = b->next;
                if (!p->queue)
                        p->queue_tail = &p->queue;
                b->next = NULL;
                block_work_locked(w, b);
        }
        pthread_mutex_unlock(&p->lock);
        return NULL;
}

static void worker_done(struct worker *w)
{
        libdeflate_free_compressor(w->c);
        free(w->out);
}

static int worker_init(struct gzpool *p, struct worker *w, int level)
{
        w->pool = p;
        w->c = libdeflate_alloc_compressor(gzblock_level(level));
        w->out = malloc(p->out_len);
        if (!w->c || !w->out) {
                worker_done(w);
                return -ENOMEM;
        }
        return 0;
}

/* The CPUs this process may run on (taskset, cpusets), at least 1. */
static unsigned usable_cpus(void)
{
        cpu_set_t set;

        if (sched_getaffinity(0, sizeof(set), &set) < 0)
                return 1;
        int n = CPU_COUNT(&set);
        return n > 0 ? (unsigned) n : 1;
}

static int start_threads(struct gzpool *p, unsigned n, int level)
{
        sigset_t all, old;
        int r = 0;

        if (n == 0)
                return worker_init(p, &p->inline_worker, level);
        p->workers = calloc(n, sizeof(*p->workers));
        if (!p->workers)
                return -ENOMEM;
        /* Signals belong to the owner's signalfd: a worker must never take one. */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        for (; p->n_threads < n; p->n_threads++) {
                struct worker *w = &p->workers[p->n_threads];
                r = worker_init(p, w, level);
                if (r < 0)
                        break;
                r = -pthread_create(&w->thread, NULL, worker_main, w);
                if (r < 0) {
                        worker_done(w);
                        break;
                }
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        return r;
}

int gzpool_new(int level, int threads, struct gzpool **ret)
{
        struct gzpool *p;
        int r;

        if (!ret || level < 1 || level > 9)
                return -EINVAL;
        if (threads < 0) {
                /* On one CPU a thread only adds hand-overs: measured, it costs about 3 % more
                 * CPU for nothing (bench/README.md). */
                unsigned cpus = usable_cpus();
                threads = cpus > 1 ? (int) cpus : 0;
        }
        if (threads > GZPOOL_THREADS_MAX)
                threads = GZPOOL_THREADS_MAX;

        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->work, NULL);
        pthread_cond_init(&p->space, NULL);
        pthread_cond_init(&p->idle, NULL);
        p->queue_tail = &p->queue;
        p->done_tail = &p->done;
        p->out_len = gzblock_bound(GZBLOCK_SIZE);
        p->bytes_max = BLOCKS_PER_THREAD * (threads > 0 ? (size_t) threads : 1) *
                       block_size(BLOCK_CLASSES - 1);
        p->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (p->event_fd < 0) {
                r = -errno;
                gzpool_free(p);
                return r;
        }
        r = start_threads(p, (unsigned) threads, level);
        if (r < 0) {
                gzpool_free(p);
                return r;
        }
        *ret = p;
        return 0;
}

static void job_free(struct gzjob *j)
{
        EVP_MD_CTX_free(j->md);
        free(j->member_sizes);
        free(j);
}

void gzpool_free(struct gzpool *p)
{
        if (!p)
                return;
        pthread_mutex_lock(&p->lock);
        p->stop = true;
        pthread_cond_broadcast(&p->work);
        pthread_mutex_unlock(&p->lock);
        for (unsigned i = 0; i < p->n_threads; i++) {
                pthread_join(p->workers[i].thread, NULL);
                worker_done(&p->workers[i]);
        }
        free(p->workers);
        worker_done(&p->inline_worker);

        while (p->done) {
                struct gzjob *j = p->done;
                p->done = j->next;
                job_free(j); /* its fd was closed and its blocks came back before */
        }
        for (unsigned cls = 0; cls < BLOCK_CLASSES; cls++)
                while (p->free_blocks[cls]) {
                        struct block *b = p->free_blocks[cls];
                        p->free_blocks[cls] = b->next;
                        free(b);
                }
        (void) safe_close(p->event_fd);
        pthread_cond_destroy(&p->idle);
        pthread_cond_destroy(&p->space);
        pthread_cond_destroy(&p->work);
        pthread_mutex_destroy(&p->lock);
        free(p);
}

unsigned gzpool_threads(const struct gzpool *p)
{
        return p ? p->n_threads : 0;
}

int gzpool_fd(const struct gzpool *p)
{
        return p ? p->event_fd : -EBADF;
}

size_t gzpool_pending(const struct gzpool *p)
{
        /* Changed only by the owner (finish, dispatch, abort), so the owner reads it freely. */
        return p->n_finishing;
}

size_t gzpool_dispatch(struct gzpool *p)
{
        uint64_t counter;
        size_t n = 0;

        (void) !read(p->event_fd, &counter, sizeof(counter));
        /* One at a time: a done may abort another job that is still in the list. */
        for (;;) {
                pthread_mutex_lock(&p->lock);
                struct gzjob *j = p->done;
                if (j) {
                        p->done = j->next;
                        if (!p->done)
                                p->done_tail = &p->done;
                        p->n_finishing--;
                        j->state = JOB_DISPATCHED;
                }
                pthread_mutex_unlock(&p->lock);
                if (!j)
                        return n;
                if (j->n_members <= j->cap_members) {
                        j->result.member_sizes = j->member_sizes;
                        j->result.n_members = j->n_members;
                }
                j->done(j->userdata, j->error, j->error == 0 ? &j->result : NULL);
                job_free(j);
                n++;
        }
}

size_t gzpool_wait(struct gzpool *p)
{
        pthread_mutex_lock(&p->lock);
        while (p->n_busy > 0)
                pthread_cond_wait(&p->idle, &p->lock);
        pthread_mutex_unlock(&p->lock);
        return gzpool_dispatch(p);
}

int gzjob_new(struct gzpool *p, int fd, struct gzjob **ret)
{
        struct gzjob *j;

        if (!p || fd < 0 || !ret) {
                (void) safe_close(fd);
                return -EINVAL;
        }
        j = calloc(1, sizeof(*j));
        if (!j) {
                (void) safe_close(fd);
                return -ENOMEM;
        }
        j->pool = p;
        j->fd = fd;
        j->md = EVP_MD_CTX_new();
        if (!j->md || EVP_DigestInit_ex(j->md, EVP_sha256(), NULL) != 1) {
                (void) safe_close(fd);
                job_free(j);
                return -ENOMEM;
        }
        *ret = j;
        return 0;
}

/*
 * Hands j's fill block to the workers (or, with no threads, compresses and writes it right
 * here). Lock held. Returns the job's error.
 */
static int job_submit_locked(struct gzjob *j)
{
        struct gzpool *p = j->pool;
        struct block *b = j->fill;

        j->fill = NULL;
        if (j->error < 0) {
                block_put_locked(p, b, false);
                return j->error;
        }
        b->job = j;
        b->seq = j->next_seq++;
        b->next = NULL;
        j->n_out++;
        p->n_busy++;
        p->n_working++;
        if (p->n_threads == 0) {
                /* In order by construction: each block is written before the next comes. */
                block_work_locked(&p->inline_worker, b);
                return j->error;
        }
        *p->queue_tail = b;
        p->queue_tail = &b->next;
        pthread_cond_signal(&p->work);
        return j->error;
}

/* Frees one free block of a class other than cls, if any. Lock held. */
static bool block_release_other_locked(struct gzpool *p, unsigned cls)
{
        for (unsigned c = BLOCK_CLASSES; c-- > 0;) {
                struct block *b = p->free_blocks[c];
                if (c == cls || !b)
                        continue;
                p->free_blocks[c] = b->next;
                p->bytes -= block_size(c);
                free(b);
                return true;
        }
        return false;
}

/*
 * A free block of class cls for the owner. When the budget is spent on blocks out of the
 * owner's hands, waits for a worker to hand one back, which throttles the downloads to the
 * speed of compression. If none is on its way back (the budget is all in blocks being
 * filled, with more logs open than it holds), it allocates past it rather than wait forever.
 */
static int block_get(struct gzpool *p, unsigned cls, struct block **ret)
{
        size_t size = block_size(cls);
        struct block *b;

        pthread_mutex_lock(&p->lock);
        for (;;) {
                b = p->free_blocks[cls];
                if (b) {
                        p->free_blocks[cls] = b->next;
                        break;
                }
                while (p->bytes + size > p->bytes_max && block_release_other_locked(p, cls))
                        ;
                if (p->bytes + size <= p->bytes_max || p->n_working == 0) {
                        p->bytes += size;
                        pthread_mutex_unlock(&p->lock);
                        b = malloc(size);
                        pthread_mutex_lock(&p->lock);
                        if (!b)
                                p->bytes -= size;
                        break;
                }
                pthread_cond_wait(&p->space, &p->lock);
        }
        pthread_mutex_unlock(&p->lock);
        if (!b)
                return -ENOMEM;
        b->next = NULL;
        b->len = 0;
        b->cls = cls;
        *ret = b;
        return 0;
}

/*
 * Makes room in j's fill block: a first block, small for a log's first bytes and full-size
 * after; or the full first block moved into one twice its size.
 */
static int job_fill_room(struct gzjob *j)
{
        struct gzpool *p = j->pool;
        struct block *old = j->fill, *b;
        int r;

        if (!old)
                return block_get(p, j->next_seq == 0 ? 0 : BLOCK_CLASSES - 1, &j->fill);
        r = block_get(p, old->cls + 1, &b);
        if (r < 0)
                return r;
        memcpy(b->data, old->data, old->len);
        b->len = old->len;
        j->fill = b;
        pthread_mutex_lock(&p->lock);
        block_put_locked(p, old, false);
        pthread_mutex_unlock(&p->lock);
        return 0;
}

int gzjob_write(struct gzjob *j, const void *buf, size_t len)
{
        const unsigned char *src = buf;
        int r;

        if (!j || (!buf && len > 0) || j->finish_requested)
                return -EINVAL;
        while (len > 0) {
                if (!j->fill || j->fill->len == block_cap(j->fill->cls)) {
                        r = job_fill_room(j);
                        if (r < 0)
                                return r;
                }
                size_t n = block_cap(j->fill->cls) - j->fill->len;
                if (n > len)
                        n = len;
                if (EVP_DigestUpdate(j->md, src, n) != 1)
                        return -EIO;
                memcpy(j->fill->data + j->fill->len, src, n);
                j->fill->len += n;
                j->result.bytes_in += n;
                src += n;
                len -= n;
                if (j->fill->len == GZBLOCK_SIZE) {
                        if (j->block_fn)
                                j->block_fn(j->block_userdata, j->fill->data, j->fill->len);
                        pthread_mutex_lock(&j->pool->lock);
                        r = job_submit_locked(j);
                        pthread_mutex_unlock(&j->pool->lock);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

void gzjob_on_block(struct gzjob *j, gzjob_block_fn *fn, void *userdata)
{
        j->block_fn = fn;
        j->block_userdata = userdata;
}

int gzjob_finish(struct gzjob *j, gzjob_done_fn *done, void *userdata)
{
        unsigned char digest[EVP_MAX_MD_SIZE];
        unsigned digest_len = 0;
        struct gzpool *p;
        int r = 0;

        if (!j || !done || j->finish_requested)
                return -EINVAL;
        p = j->pool;
        if (EVP_DigestFinal_ex(j->md, digest, &digest_len) != 1 || digest_len != SHA256_LEN)
                r = -EIO;
        else
                hex_encode(digest, SHA256_LEN, j->result.sha256);
        /* An empty log is one empty member: a file of no bytes is not gzip. */
        if (r == 0 && !j->fill && j->next_seq == 0)
                r = block_get(p, 0, &j->fill);
        if (r == 0 && j->block_fn && j->fill && (j->fill->len > 0 || j->next_seq == 0))
                j->block_fn(j->block_userdata, j->fill->data, j->fill->len);

        pthread_mutex_lock(&p->lock);
        if (r < 0 && j->error == 0)
                j->error = r;
        if (j->fill && (j->fill->len > 0 || j->next_seq == 0))
                (void) job_submit_locked(j);
        block_put_locked(p, j->fill, false);
        j->fill = NULL;
        j->done = done;
        j->userdata = userdata;
        j->finish_requested = true;
        p->n_finishing++;
        job_maybe_end_locked(j);
        pthread_mutex_unlock(&p->lock);
        return 0;
}

/* Removes j's blocks from the queue. Lock held. */
static void queue_remove_job_locked(struct gzpool *p, struct gzjob *j)
{
        struct block **pp = &p->queue;

        p->queue_tail = &p->queue;
        while (*pp) {
                struct block *b = *pp;
                if (b->job == j) {
                        *pp = b->next;
                        block_drop_locked(j, b);
                } else {
                        pp = &b->next;
                        p->queue_tail = pp;
                }
        }
}

/* Removes j from the done list. Lock held. */
static void done_unlink_locked(struct gzpool *p, struct gzjob *j)
{
        for (struct gzjob **pp = &p->done; *pp; pp = &(*pp)->next) {
                if (*pp != j)
                        continue;
                *pp = j->next;
                if (!*pp)
                        p->done_tail = pp;
                return;
        }
}

void gzjob_abort(struct gzjob *j)
{
        struct gzpool *p;
        int fd;

        if (!j)
                return;
        p = j->pool;
        pthread_mutex_lock(&p->lock);
        if (j->state == JOB_DISPATCHED) {
                /* Called from its own done: it is freed when done returns. */
                pthread_mutex_unlock(&p->lock);
                return;
        }
        if (j->finish_requested)
                p->n_finishing--;
        atomic_store(&j->aborted, true);
        if (j->state == JOB_DONE)
                done_unlink_locked(p, j);
        queue_remove_job_locked(p, j);
        job_drop_parked_locked(j);
        /*
         * Wait for the workers compressing its blocks and the one writing them, which stop
         * after the block at hand: the caller is about to unlink the file, and its space must
         * come back with that. On a full disk, other jobs' files wait for exactly that space.
         */
        while (j->n_out > 0 || j->held)
                pthread_cond_wait(&p->idle, &p->lock);
        pthread_cond_broadcast(&p->idle); /* for gzpool_wait(), if n_busy got to 0 here */
        block_put_locked(p, j->fill, false);
        j->fill = NULL;
        fd = j->fd;
        j->fd = -1;
        pthread_mutex_unlock(&p->lock);
        (void) safe_close(fd);
        job_free(j);
}

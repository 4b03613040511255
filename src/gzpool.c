#include <errno.h>
#include <assert.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <openssl/evp.h>
#define ZLIB_CONST
#include <zlib.h>

#include "gzpool.h"
#include "macro.h"
#include "util.h"

/*
 * Sizes. A chunk is what a worker takes in one go (curl hands us at most 16 KiB at a time,
 * so a chunk gathers several); CHUNKS_MAX bounds the chunks to 2 MiB, except that each job
 * being filled may hold one more (see chunk_get).
 */
#define CHUNK_SIZE      (64 * 1024)
#define CHUNKS_MAX      32
#define OUT_BUFFER_SIZE (64 * 1024)
#define SHA256_LEN      32

/*
 * The state of one gzip+SHA-256 stream: about 330 KiB at level 6 with the output buffer.
 * A job holds one only from its first chunk to its end. Finished streams are reset and kept
 * for the next job instead of freed: allocating and freeing that much per job made glibc
 * grow and trim the heap each time, and the page faults that followed cost more system time
 * than the compression's I/O.
 */
struct stream {
        struct stream *next; /* in the pool's free list */
        z_stream zs;         /* zlib keeps a pointer to it: a stream never moves */
        EVP_MD_CTX *md;
        unsigned char out[OUT_BUFFER_SIZE];
};

/* Streams kept for reuse; more than this many at once are freed when done. */
#define STREAMS_KEPT_MAX 16

struct chunk {
        struct chunk *next;
        size_t len;
        unsigned char data[CHUNK_SIZE];
};

/*
 * Where a job is. IDLE: only the owner knows it (it may be filling a chunk). QUEUED: in the
 * ready queue with work to do. BUSY: a worker has it. DONE: in the done list, waiting for
 * gzpool_dispatch(). DISPATCHED: its done is running, and it is freed when done returns.
 * The owner may abort in any state before DISPATCHED and always frees the job itself; for a
 * BUSY job it first waits for the worker to let go, which it does after the chunk at hand.
 */
enum job_state {
        JOB_IDLE,
        JOB_QUEUED,
        JOB_BUSY,
        JOB_DONE,
        JOB_DISPATCHED,
};

struct gzjob {
        struct gzpool *pool;
        struct gzjob *next; /* in the ready queue or the done list */
        enum job_state state;
        int fd;
        /* Set by the owner, under the lock; a busy worker also peeks at aborted between
         * chunks, without the lock, to cut its turn short. */
        bool finish_requested;
        atomic_bool aborted;
        gzjob_done_fn *done;
        void *userdata;
        /* The chunk the owner is filling: the owner's alone. */
        struct chunk *fill;
        /* Chunks handed over and not yet taken by a worker (under the lock). */
        struct chunk *head, **tail;
        /* Written by the worker holding the job; read by others only under the lock after
         * it let go. */
        struct stream *s;
        int error;
        struct gzjob_result result;
};

struct gzpool {
        pthread_mutex_t lock;
        pthread_cond_t work;  /* a job became ready, or stop */
        pthread_cond_t space; /* a chunk came back */
        pthread_cond_t idle;  /* a job stopped being QUEUED or BUSY */
        int level;
        unsigned n_threads;
        pthread_t *threads;
        bool stop;
        int event_fd;
        struct gzjob *ready, **ready_tail;
        struct gzjob *done, **done_tail;
        size_t n_active;    /* jobs QUEUED or BUSY */
        size_t n_finishing; /* finished by the owner, done not yet called */
        struct chunk *free_chunks;
        unsigned n_chunks;  /* allocated, free or not */
        unsigned n_working; /* handed over and not yet back */
        struct stream *free_streams;
        unsigned n_free_streams;
};

static void stream_free(struct stream *s)
{
        if (!s)
                return;
        (void) deflateEnd(&s->zs);
        EVP_MD_CTX_free(s->md);
        free(s);
}

static int stream_new(int level, struct stream **ret)
{
        struct stream *s = calloc(1, sizeof(*s));

        if (!s)
                return -ENOMEM;
        /* windowBits 15 + 16: a gzip wrapper whose header has no name and mtime 0. */
        int z = deflateInit2(&s->zs, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
        if (z != Z_OK) {
                free(s);
                return z == Z_MEM_ERROR ? -ENOMEM : -EIO;
        }
        s->md = EVP_MD_CTX_new();
        if (!s->md) {
                stream_free(s);
                return -ENOMEM;
        }
        *ret = s;
        return 0;
}

/* Called with the lock held. */
static void stream_put_locked(struct gzpool *p, struct stream *s)
{
        if (!s)
                return;
        if (p->n_free_streams >= STREAMS_KEPT_MAX || deflateReset(&s->zs) != Z_OK) {
                stream_free(s);
                return;
        }
        s->next = p->free_streams;
        p->free_streams = s;
        p->n_free_streams++;
}

/* A stream ready for a new job, from the free list or new. Takes the lock itself. */
static int stream_get(struct gzpool *p, struct stream **ret)
{
        struct stream *s;
        int r;

        pthread_mutex_lock(&p->lock);
        s = p->free_streams;
        if (s) {
                p->free_streams = s->next;
                p->n_free_streams--;
        }
        pthread_mutex_unlock(&p->lock);
        if (!s) {
                r = stream_new(p->level, &s);
                if (r < 0)
                        return r;
        }
        if (EVP_DigestInit_ex(s->md, EVP_sha256(), NULL) != 1) {
                stream_free(s);
                return -EIO;
        }
        s->next = NULL;
        s->zs.next_out = s->out;
        s->zs.avail_out = OUT_BUFFER_SIZE;
        *ret = s;
        return 0;
}

/* Returns a list of chunks to the free list. Called with the lock held. */
static void chunks_put_locked(struct gzpool *p, struct chunk *c, bool working)
{
        bool any = false;

        while (c) {
                struct chunk *next = c->next;
                if (p->n_chunks > CHUNKS_MAX) {
                        /* One allocated past the bound (see chunk_get): not kept. */
                        free(c);
                        p->n_chunks--;
                } else {
                        c->next = p->free_chunks;
                        p->free_chunks = c;
                }
                if (working)
                        p->n_working--;
                any = true;
                c = next;
        }
        if (any)
                pthread_cond_broadcast(&p->space);
}

/*
 * Frees a job that no worker holds and no list links to. Called with the lock held. Returns
 * its fd, if still open, for the caller to close once the lock is let go: on NFS a close
 * flushes and may take long, and no one else should wait for that.
 */
static int job_free_locked(struct gzjob *j)
{
        struct gzpool *p = j->pool;
        int fd = j->fd;

        chunks_put_locked(p, j->fill, false);
        chunks_put_locked(p, j->head, true);
        stream_put_locked(p, j->s);
        free(j);
        return fd;
}

static void wake_owner(struct gzpool *p)
{
        uint64_t one = 1;

        /* EAGAIN means the counter is already non-zero: the owner is woken anyway. */
        (void) !write(p->event_fd, &one, sizeof(one));
}

/* Writes out what deflate has put into the output buffer and empties it. */
static int drain_output(struct gzjob *j)
{
        size_t n = OUT_BUFFER_SIZE - j->s->zs.avail_out;
        int r;

        if (n > 0) {
                r = write_all(j->fd, j->s->out, n);
                if (r < 0)
                        return r;
                j->result.bytes_out += n;
        }
        j->s->zs.next_out = j->s->out;
        j->s->zs.avail_out = OUT_BUFFER_SIZE;
        return 0;
}

static int compress_chunk(struct gzjob *j, const struct chunk *c)
{
        int r;

        if (EVP_DigestUpdate(j->s->md, c->data, c->len) != 1)
                return -EIO;
        j->result.bytes_in += c->len;
        j->s->zs.next_in = c->data;
        j->s->zs.avail_in = (uInt) c->len;
        while (j->s->zs.avail_in > 0) {
                int z = deflate(&j->s->zs, Z_NO_FLUSH);
                if (z != Z_OK && z != Z_BUF_ERROR)
                        return -EIO;
                /* deflate stops when the input is used up or the output is full. */
                if (j->s->zs.avail_out == 0) {
                        r = drain_output(j);
                        if (r < 0)
                                return r;
                } else if (j->s->zs.avail_in > 0) {
                        return -EIO;
                }
        }
        return 0;
}

static int compress_end(struct gzjob *j)
{
        unsigned char digest[EVP_MAX_MD_SIZE];
        unsigned digest_len = 0;
        int r;

        j->s->zs.next_in = NULL;
        j->s->zs.avail_in = 0;
        for (;;) {
                int z = deflate(&j->s->zs, Z_FINISH);
                if (z != Z_OK && z != Z_STREAM_END)
                        return -EIO;
                /* With Z_FINISH, Z_OK means "more output pending", so the buffer is full. */
                if (z == Z_OK && j->s->zs.avail_out != 0)
                        return -EIO;
                r = drain_output(j);
                if (r < 0)
                        return r;
                if (z == Z_STREAM_END)
                        break;
        }
        if (EVP_DigestFinal_ex(j->s->md, digest, &digest_len) != 1 || digest_len != SHA256_LEN)
                return -EIO;
        hex_encode(digest, SHA256_LEN, j->result.sha256);
        return 0;
}

/* Compresses the chunks a worker took and, at the end, ends the stream. Returns the job's
 * error. */
static int job_compress(struct gzjob *j, const struct chunk *chunks, bool end, int error)
{
        int error_before = error;

        for (const struct chunk *c = chunks; c && error == 0; c = c->next) {
                /* The owner gave up on it and waits for this turn to end. */
                if (atomic_load_explicit(&j->aborted, memory_order_relaxed))
                        return -ECANCELED;
                if (!j->s)
                        error = stream_get(j->pool, &j->s);
                if (error == 0)
                        error = compress_chunk(j, c);
        }
        if (end && error == 0 && !j->s)
                error = stream_get(j->pool, &j->s); /* an empty file */
        if (end && error == 0)
                error = compress_end(j);
        /* The output is worthless from the first error on. On a full disk, give its space
         * back now rather than when the owner gets round to aborting the job: other jobs'
         * files are waiting for it. */
        if (error < 0 && error_before == 0)
                (void) !ftruncate(j->fd, 0);
        return error;
}

/*
 * One turn of a worker on a job: compresses the chunks it took and, when the owner has
 * finished the job, ends the stream and closes the fd. Runs without the lock. Returns the
 * job's error.
 */
static int job_work(struct gzjob *j, const struct chunk *chunks, bool end, int error)
{
        error = job_compress(j, chunks, end, error);
        if (end) {
                /* On NFS and some FUSE filesystems close() is where a failed write shows up. */
                if (close(j->fd) < 0 && error == 0)
                        error = -errno;
                j->fd = -1;
        }
        return error;
}

/* A job stopped being QUEUED or BUSY. */
static void job_inactive_locked(struct gzpool *p)
{
        p->n_active--;
        pthread_cond_broadcast(&p->idle);
}

/*
 * One turn on a job taken off the ready queue (QUEUED, counted in n_active): compresses the
 * chunks it has and, when the owner has finished it, ends it. Called with the lock held; it
 * is let go during the work. Returns true when more work came in meanwhile: the job is then
 * still QUEUED and active, and the caller puts it back in the queue.
 */
static bool job_turn_locked(struct gzpool *p, struct gzjob *j)
{
        /* Take what is there. finish_requested is only set after the last chunk was handed
         * over, so when it is set, these are all the chunks there will be. */
        struct chunk *chunks = j->head;
        bool end = j->finish_requested;
        j->head = NULL;
        j->tail = &j->head;
        j->state = JOB_BUSY;
        int error = j->error;
        pthread_mutex_unlock(&p->lock);

        error = job_work(j, chunks, end, error);

        pthread_mutex_lock(&p->lock);
        chunks_put_locked(p, chunks, true);
        j->error = error;
        if (j->aborted) {
                j->state = JOB_IDLE; /* the owner, waiting in gzjob_abort(), frees it */
        } else if (end) {
                stream_put_locked(p, j->s);
                j->s = NULL;
                j->state = JOB_DONE;
                *p->done_tail = j;
                p->done_tail = &j->next;
                wake_owner(p);
        } else if (j->head || j->finish_requested) {
                j->state = JOB_QUEUED;
                return true;
        } else {
                j->state = JOB_IDLE;
        }
        job_inactive_locked(p);
        return false;
}

static void *worker_main(void *userdata)
{
        struct gzpool *p = userdata;

        pthread_mutex_lock(&p->lock);
        for (;;) {
                while (!p->ready && !p->stop)
                        pthread_cond_wait(&p->work, &p->lock);
                struct gzjob *j = p->ready;
                if (!j)
                        break; /* stopping, and nothing left to do */
                p->ready = j->next;
                if (!p->ready)
                        p->ready_tail = &p->ready;
                j->next = NULL;
                /* More came in meanwhile: back to the end of the queue, so that one long log
                 * cannot keep a worker from the others. */
                if (job_turn_locked(p, j)) {
                        *p->ready_tail = j;
                        p->ready_tail = &j->next;
                }
        }
        pthread_mutex_unlock(&p->lock);
        return NULL;
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

static int start_threads(struct gzpool *p, unsigned n)
{
        sigset_t all, old;
        int r = 0;

        if (n == 0)
                return 0;
        p->threads = calloc(n, sizeof(*p->threads));
        if (!p->threads)
                return -ENOMEM;
        /* Signals belong to the owner's signalfd: a worker must never take one. */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        for (; p->n_threads < n; p->n_threads++) {
                r = -pthread_create(&p->threads[p->n_threads], NULL, worker_main, p);
                if (r < 0)
                        break;
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
        p->level = level;
        p->ready_tail = &p->ready;
        p->done_tail = &p->done;
        p->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (p->event_fd < 0) {
                r = -errno;
                gzpool_free(p);
                return r;
        }
        r = start_threads(p, (unsigned) threads);
        if (r < 0) {
                gzpool_free(p);
                return r;
        }
        *ret = p;
        return 0;
}

void gzpool_free(struct gzpool *p)
{
        if (!p)
                return;
        pthread_mutex_lock(&p->lock);
        p->stop = true;
        pthread_cond_broadcast(&p->work);
        pthread_mutex_unlock(&p->lock);
        for (unsigned i = 0; i < p->n_threads; i++)
                pthread_join(p->threads[i], NULL);
        free(p->threads);

        while (p->done) {
                struct gzjob *j = p->done;
                p->done = j->next;
                (void) safe_close(job_free_locked(j));
        }
        while (p->free_chunks) {
                struct chunk *c = p->free_chunks;
                p->free_chunks = c->next;
                free(c);
        }
        while (p->free_streams) {
                struct stream *s = p->free_streams;
                p->free_streams = s->next;
                stream_free(s);
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
                j->done(j->userdata, j->error, j->error == 0 ? &j->result : NULL);
                free(j); /* its fd, stream and chunks went back when the worker ended it */
                n++;
        }
}

size_t gzpool_wait(struct gzpool *p)
{
        pthread_mutex_lock(&p->lock);
        while (p->n_active > 0)
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
        j->tail = &j->head;
        *ret = j;
        return 0;
}

/* Puts j in the ready queue unless it is there or a worker has it. Lock held. */
static void job_schedule_locked(struct gzjob *j)
{
        struct gzpool *p = j->pool;

        if (j->state != JOB_IDLE)
                return; /* the worker that has it looks again before letting go */
        j->state = JOB_QUEUED;
        p->n_active++;
        if (p->n_threads == 0) {
                /* No threads: the work is done right here, and nothing else can come in
                 * meanwhile, so one turn is all there is. */
                bool more = job_turn_locked(p, j);
                assert(!more);
                (void) more;
                return;
        }
        *p->ready_tail = j;
        p->ready_tail = &j->next;
        pthread_cond_signal(&p->work);
}

/* Hands the chunk being filled to the workers. Returns the job's error, if it has one. */
static int job_submit(struct gzjob *j)
{
        struct gzpool *p = j->pool;
        int r;

        pthread_mutex_lock(&p->lock);
        if (j->error == 0 && j->fill) {
                *j->tail = j->fill;
                j->tail = &j->fill->next;
                p->n_working++;
                j->fill = NULL;
                job_schedule_locked(j);
        }
        r = j->error; /* without threads, the work just done may have failed */
        pthread_mutex_unlock(&p->lock);
        return r;
}

/*
 * A free chunk for the owner. When all CHUNKS_MAX are taken, waits for a worker to hand one
 * back, which throttles the downloads to the speed of compression. If none is on its way
 * back (all are being filled, with more jobs open than chunks), it allocates one more
 * rather than wait forever.
 */
static int chunk_get(struct gzpool *p, struct chunk **ret)
{
        struct chunk *c;

        pthread_mutex_lock(&p->lock);
        while (!p->free_chunks && p->n_chunks >= CHUNKS_MAX && p->n_working > 0)
                pthread_cond_wait(&p->space, &p->lock);
        c = p->free_chunks;
        if (c) {
                p->free_chunks = c->next;
        } else {
                p->n_chunks++;
                pthread_mutex_unlock(&p->lock);
                c = malloc(sizeof(*c));
                pthread_mutex_lock(&p->lock);
                if (!c)
                        p->n_chunks--;
        }
        pthread_mutex_unlock(&p->lock);
        if (!c)
                return -ENOMEM;
        c->next = NULL;
        c->len = 0;
        *ret = c;
        return 0;
}

int gzjob_write(struct gzjob *j, const void *buf, size_t len)
{
        const unsigned char *src = buf;
        int r;

        if (!j || (!buf && len > 0) || j->finish_requested)
                return -EINVAL;
        while (len > 0) {
                if (!j->fill) {
                        r = chunk_get(j->pool, &j->fill);
                        if (r < 0)
                                return r;
                }
                size_t n = CHUNK_SIZE - j->fill->len;
                if (n > len)
                        n = len;
                memcpy(j->fill->data + j->fill->len, src, n);
                j->fill->len += n;
                src += n;
                len -= n;
                if (j->fill->len == CHUNK_SIZE) {
                        r = job_submit(j);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

int gzjob_finish(struct gzjob *j, gzjob_done_fn *done, void *userdata)
{
        struct gzpool *p;

        if (!j || !done || j->finish_requested)
                return -EINVAL;
        p = j->pool;
        pthread_mutex_lock(&p->lock);
        if (j->fill && j->fill->len > 0 && j->error == 0) {
                *j->tail = j->fill;
                j->tail = &j->fill->next;
                p->n_working++;
        } else {
                chunks_put_locked(p, j->fill, false);
        }
        j->fill = NULL;
        j->done = done;
        j->userdata = userdata;
        j->finish_requested = true;
        p->n_finishing++;
        job_schedule_locked(j);
        pthread_mutex_unlock(&p->lock);
        return 0;
}

/* Removes j from a list of jobs (the ready queue or the done list). Lock held. */
static void list_unlink_locked(struct gzjob **head, struct gzjob ***tail, struct gzjob *j)
{
        for (struct gzjob **pp = head; *pp; pp = &(*pp)->next) {
                if (*pp != j)
                        continue;
                *pp = j->next;
                if (!*pp)
                        *tail = pp;
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
        switch (j->state) {
        case JOB_QUEUED:
                list_unlink_locked(&p->ready, &p->ready_tail, j);
                job_inactive_locked(p);
                break;
        case JOB_BUSY:
                /*
                 * Wait for the worker, which stops after the chunk at hand: the caller is
                 * about to unlink the file, and its space must come back with that. On a full
                 * disk, other jobs' files wait for exactly that space.
                 */
                atomic_store(&j->aborted, true);
                while (j->state == JOB_BUSY)
                        pthread_cond_wait(&p->idle, &p->lock);
                break;
        case JOB_DONE:
                list_unlink_locked(&p->done, &p->done_tail, j);
                break;
        default:
                break;
        }
        fd = job_free_locked(j);
        pthread_mutex_unlock(&p->lock);
        (void) safe_close(fd);
}

#pragma once

#include <stddef.h>
#include <stdint.h>

/*
 * Blocked gzip (gzblock.h) + SHA-256 on worker threads, so that the event loop only moves
 * bytes, and one large log uses every core.
 *
 * The owner (one thread, the event loop) opens a job per file, writes the bytes as they
 * arrive and finishes it. The owner hashes the bytes as it copies them into blocks of
 * GZBLOCK_SIZE; each full block goes to a pool of worker threads, any of which compresses it
 * with libdeflate into one gzip member. The members of one job are written to its fd in
 * order, by one thread at a time; blocks compressed ahead of their turn wait, parked. Blocks
 * come from a bounded set (a few per thread): when all are in use, a write waits for a thread
 * to hand one back, which throttles the downloads instead of growing memory. With no
 * threads, the same work is done by the owner inside gzjob_write() and gzjob_finish().
 *
 * A finished job's result is delivered on the owner's thread by gzpool_dispatch(), which the
 * owner calls when gzpool_fd() is readable. Every gzjob_* and gzpool_* function is for the
 * owner's thread only; the pool's own threads never call back into the owner.
 */

#define GZPOOL_SHA256_HEX_LEN 64
/* More threads than this would take CPU from the Connect server we run next to. */
#define GZPOOL_THREADS_MAX 4

struct gzpool;
struct gzjob;

struct gzjob_result {
        uint64_t bytes_in;  /* uncompressed bytes written */
        uint64_t bytes_out; /* gzip bytes written to the fd */
        char sha256[GZPOOL_SHA256_HEX_LEN + 1];
        const uint32_t *member_sizes; /* each member's size in order; NULL when unknown */
        size_t n_members;
};

/* r is 0, or the job's first error as -errno (a failed write(2) or close(2), or -EIO from
 * libdeflate or OpenSSL). res is only valid during the call. */
typedef void gzjob_done_fn(void *userdata, int r, const struct gzjob_result *res);

/*
 * level: 1..9. threads: 0 does the work on the owner's thread; < 0 picks one thread per CPU
 * this process may run on (none on one CPU), at most GZPOOL_THREADS_MAX. The threads block
 * every signal.
 */
int gzpool_new(int level, int threads, struct gzpool **ret);
/* Lets the workers finish the work queued, joins them and frees everything. Results not
 * yet dispatched are dropped without calling their done. Every job must be finished or
 * aborted before. NULL is a no-op. */
void gzpool_free(struct gzpool *p);
unsigned gzpool_threads(const struct gzpool *p);
/* Readable when results are waiting for gzpool_dispatch(). */
int gzpool_fd(const struct gzpool *p);
/* Calls done for every finished job, in the order they finished. Returns how many. */
size_t gzpool_dispatch(struct gzpool *p);
/* Waits until no job has work queued or running, then dispatches. */
size_t gzpool_wait(struct gzpool *p);
/* Jobs finished by the owner whose done has not been called yet. */
size_t gzpool_pending(const struct gzpool *p);

/* A job writing a blocked gzip file (gzblock.h; an empty log is one empty member) to fd,
 * which it takes over and closes. On failure fd is closed too. */
int gzjob_new(struct gzpool *p, int fd, struct gzjob **ret);
/*
 * Queues bytes (hashing them). Returns 0, -EINVAL after gzjob_finish(), -ENOMEM, or the
 * job's first error once a worker has met it (it is reported again by done).
 */
int gzjob_write(struct gzjob *j, const void *buf, size_t len);
/* Calls fn on the owner's thread with each block's bytes (a member's worth of the log, the
 * last one possibly shorter, an empty log's one empty block) before it is compressed. */
typedef void gzjob_block_fn(void *userdata, const void *data, size_t len);
void gzjob_on_block(struct gzjob *j, gzjob_block_fn *fn, void *userdata);
/*
 * No more bytes: queues the last block, closes the fd once every block is written and, from
 * gzpool_dispatch(), calls done once with the outcome. The job then belongs to the pool and
 * is freed when done returns: no gzjob_* call may use it after that. Returns -EINVAL when
 * already finished (before done ran), and then done is never called.
 */
int gzjob_finish(struct gzjob *j, gzjob_done_fn *done, void *userdata);
/*
 * Drops the job at any point before its done has run: queued blocks are discarded, and done
 * is never called. Workers busy with its blocks stop after the block at hand, and this waits
 * for them, so the fd is closed when it returns. From inside the job's own done it does
 * nothing. NULL is a no-op.
 */
void gzjob_abort(struct gzjob *j);

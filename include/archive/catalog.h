#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The search catalog: a job table and a trigram index beside the jobs, in <root>/.catalog/,
 * written by the daemon as jobs are archived and by `connect-jobs reindex`, read by `ls` and
 * `search`. It is never the truth (the records are): a reader uses it only for the day
 * folders whose state it knows (the folder's mtime, recorded after the batch that last wrote
 * there was durable) and reads the records of every other folder, so results never differ.
 *
 *   <root>/.catalog/open               the open segment: a header, then checksummed records
 *                                      appended after each batch commit (a torn tail is
 *                                      ignored, and cut off by the next writer)
 *   <root>/.catalog/L<l>-<first>-<last>.cat   sealed files: segments first..last, merged to
 *                                      level l (a level-0 file is one segment)
 *   <root>/.catalog/.<name>.tmp        a file being written (temp + fsync + rename)
 *
 * Trigrams are three bytes of the log with ASCII letters folded to lower case, never holding
 * a newline (a match never spans lines), collected per 256 KiB member. A sealed file (format
 * version 3, little-endian) holds a header, sections (strings, folders, jobs, members, units:
 * runs of consecutive members, small jobs grouped up to 256 KiB of log, the sorted trigram
 * dictionary, the posting lists: unit numbers delta-coded as varints, or a bitmap of the
 * file's units when that is smaller) and a footer with each section's offset,
 * length and CRC-32; every posting list has its own CRC-32 in the dictionary, checked when it
 * is read. Layouts: src/archive/catalog.c.
 */

#define CATALOG_DIR     ".catalog"
#define CATALOG_VERSION 3

/* A job that has more trigram data than this is not indexed (a search always reads it). */
#define CATALOG_JOB_TRI_MAX (4u << 20)

/* ---- trigrams, collected while a log is streamed ------------------------------------- */

/*
 * The trigrams of one job's log so far: per member, a varint count then varint deltas. A
 * member's trigrams are those of the lines that start in it, whole: a line that runs on into
 * the next member (or several) is completed from them, and a member that starts inside a line
 * leaves that line to the member it started in. So a member is searched from its first line
 * start to the end of the line it ends in, and a match, which never spans lines, has all its
 * trigrams in the member its line starts in. A member's list is written once the line it ends
 * in is complete: catalog_tri_finish() completes the last.
 */
struct catalog_tri {
        unsigned char *data;
        size_t len, cap;
        uint32_t n_members;
        bool overflow; /* more than CATALOG_JOB_TRI_MAX: the job is not indexed */
        /* Per member: the newlines before it << 1 | 1 when it starts inside a line. */
        uint64_t *lead;
        size_t lead_cap;
        uint64_t lines; /* newlines so far */
        bool in_line;   /* the bytes so far do not end with a newline */
        uint32_t carry; /* the last two bytes (folded), for trigrams across members */
        unsigned run;   /* bytes since the last newline, up to 2 */
        uint32_t *pend; /* trigrams of the member waiting for its last line's end */
        size_t pend_n, pend_cap;
        bool pending;       /* member n_written has its list in pend */
        uint32_t n_written; /* members whose list is in data */
};

/* One collector per thread that feeds blocks (2 MiB of bitmap, clean between calls). */
struct catalog_trigrams;

int catalog_trigrams_new(struct catalog_trigrams **ret);
void catalog_trigrams_free(struct catalog_trigrams *t);
/* Adds the trigrams of one member's bytes to out (the members in order). -ENOMEM. */
int catalog_trigrams_member(struct catalog_trigrams *t, const void *data, size_t len,
                            struct catalog_tri *out);
/* The log's end: writes the list of the member still waiting. -ENOMEM. */
int catalog_tri_finish(struct catalog_tri *out);
void catalog_tri_done(struct catalog_tri *t);

/* The folded trigram of three bytes, as the index keys it (0xffffffff: holds a newline). */
uint32_t catalog_trigram(const unsigned char *p);

/* ---- a job's row -------------------------------------------------------------------- */

struct catalog_member {
        uint64_t offset;
        uint32_t size, usize;
        uint64_t lines; /* newlines of the log before the member (indexed rows) */
        bool midline;   /* it starts inside a line that began in a member before */
        bool may;       /* catalog_row_members(): a line starting in it may match */
};

struct catalog_row {
        const char *folder; /* "guid/YYYY/MM/DD" */
        const char *key;
        const char *tag;        /* NULL: none */
        const char *start_text; /* job.start_time as written, NULL: none */
        const char *name;       /* content_name, NULL: none */
        const char *error_summary;
        int64_t start; /* epoch seconds, the folder's midnight when the record has none */
        int64_t log_bytes, gz_bytes; /* -1: no log */
        int status;                  /* -1: none */
        int exit_code;
        bool has_exit_code, has_error;
        bool indexed; /* its trigrams are in the catalog */
        uint32_t n_members;
        const struct catalog_member *members;
};

/*
 * The row of a job from its record (the <key>.json text), as archive_scan reads it.
 * Strings point into *strings (malloc'ed, free it after use). -EBADMSG, -ENOMEM.
 */
int catalog_row_from_record(const char *folder, const char *key, int year, int month, int day,
                            const char *record_json, size_t len, struct catalog_row *ret,
                            char **strings);

/* ---- the writer (the daemon, under the archive's lock; reindex) ---------------------- */

struct catalog_writer;

/*
 * Opens (creating) <root>/.catalog for writing: the open segment is read, a torn tail cut
 * off, leftovers of an interrupted seal or merge removed. seal_jobs: jobs in a segment before
 * it is sealed (0: the default, 4096). -errno.
 */
int catalog_writer_open(int rootfd, unsigned seal_jobs, struct catalog_writer **ret);
void catalog_writer_free(struct catalog_writer *w);
/* Appends a job's row (and trigrams; NULL or !indexed: not indexed). Buffered until flush. */
int catalog_writer_add(struct catalog_writer *w, const struct catalog_row *row,
                       const struct catalog_tri *tri);
/* Records the current state (mtime) of a day folder: its jobs are all in the catalog. */
int catalog_writer_folder(struct catalog_writer *w, const char *folder);
/* Records that a day folder was removed (retention). */
int catalog_writer_folder_removed(struct catalog_writer *w, const char *folder);
/* Writes the buffered records to the open segment and fdatasyncs it; seals the segment when
 * it holds seal_jobs jobs, and merges sealed files in tiers. -errno. */
int catalog_writer_flush(struct catalog_writer *w);
/* Seals the open segment now (reindex at its end), then merges. */
int catalog_writer_seal(struct catalog_writer *w);
/* Appends without fdatasync (a rebuild, which a crash only makes start again). */
void catalog_writer_nosync(struct catalog_writer *w);
/* How many jobs the open segment holds. */
size_t catalog_writer_open_jobs(const struct catalog_writer *w);

/* ---- the reader ------------------------------------------------------------------------ */

struct catalog;

/*
 * Reads the catalog under rootfd: 0 and *ret, -ENOENT when there is none. A damaged file is
 * left out (*ret_damaged counts them), so its folders are read from their records.
 */
int catalog_open(int rootfd, struct catalog **ret, unsigned *ret_damaged);
void catalog_free(struct catalog *c);
/*
 * A catalog of the sealed files copied from an object store (s3_mirror.c): one folder each
 * writer (an HA pair's archivers have their own), no open segment. An object store has no
 * folder mtimes, so no folder is covered until catalog_cover_folder() says so.
 */
int catalog_open_dirs(const int *dfds, size_t n_dirs, struct catalog **ret, unsigned *ret_damaged);
/*
 * Covers folder (catalog_folder_rows() answers it, whatever its mtime) when its rows are
 * exactly the jobs keys names (sorted bytewise; a listing's records): 1, 0 (not covered), or
 * -ENOMEM.
 */
int catalog_cover_folder(struct catalog *c, const char *folder, const char *const *keys, size_t n);

/* The catalog's rows of a folder whose mtime is mtime_ns, when it covers the folder as it is
 * now: 1, the row ids (for catalog_row_get()) in *buf (grown as needed; the caller frees it)
 * and *ret_n; 0 when it does not; -ENOMEM. Thread-safe. */
int catalog_folder_rows(const struct catalog *c, const char *folder, int64_t mtime_ns,
                        uint32_t **buf, size_t *cap, size_t *ret_n);
void catalog_row_get(const struct catalog *c, uint32_t i, struct catalog_row *ret);
size_t catalog_n_rows(const struct catalog *c);

/* ---- queries ------------------------------------------------------------------------- */

/*
 * A query over trigrams, as the planner (src/jobs/catalog_plan.c) makes it: ALL (no
 * pruning), NONE, one trigram, or AND/OR of sub-queries.
 */
enum catalog_qop {
        CATALOG_Q_ALL,
        CATALOG_Q_NONE,
        CATALOG_Q_TRI,
        CATALOG_Q_AND,
        CATALOG_Q_OR,
};

struct catalog_query {
        enum catalog_qop op;
        uint32_t tri;
        struct catalog_query **sub;
        size_t n_sub;
};

void catalog_query_free(struct catalog_query *q);

/*
 * Evaluates q for every row: afterwards catalog_row_may_match(i) says whether row i may hold
 * a match (true for rows without trigrams, and for every row of a file whose lists are
 * damaged). -ENOMEM.
 */
int catalog_match(struct catalog *c, const struct catalog_query *q);
bool catalog_row_may_match(const struct catalog *c, uint32_t i);
/*
 * The members of indexed row i (malloc'ed, *ret_n of them) with their places in the log and,
 * after catalog_match(), whether a line starting in each may match (before: all may); a
 * search then decodes only those (and the members their last lines run on into). Returns 0,
 * -ENOENT for a row that is not indexed (read it whole), -EBADMSG, -ENOMEM. Thread-safe.
 */
int catalog_row_members(const struct catalog *c, uint32_t i, struct catalog_member **ret,
                        size_t *ret_n);

/* Checks every byte of every file (every posting list too): 0, or -EBADMSG with the number of
 * damaged files in *ret_damaged. For tests and reindex. */
int catalog_verify(int rootfd, unsigned *ret_damaged);

/* Sizes, for reindex and the benchmark. */
struct catalog_stats {
        uint64_t files, bytes, jobs, members, units, trigrams, postings;
};
int catalog_stats(int rootfd, struct catalog_stats *ret);

/* ---- rebuilding --------------------------------------------------------------------------- */

/* Progress of catalog_reindex(): jobs done of total, log bytes read. */
typedef void catalog_progress_fn(void *userdata, size_t done, size_t total, uint64_t bytes);

/*
 * Builds the catalog of the archive under rootfd from its records and logs, in place of any
 * catalog there (moved to .catalog.old first, removed at the end). The caller holds the
 * archive's writer lock. *ret_jobs counts the jobs indexed. A record or log that cannot be
 * read leaves its folder to the records (its jobs are still found by ls and search).
 */
int catalog_reindex(int rootfd, catalog_progress_fn *progress, void *userdata, size_t *ret_jobs);

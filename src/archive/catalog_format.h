#pragma once

/* What catalog.c, catalog_write.c and catalog_read.c share: the byte layouts. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "catalog.h"

/*
 * Open segment ("open"):
 *   header  32 bytes: "CJCATSEG", u32 version, u32 0, u64 segment id, u32 CRC-32 of the 24
 *           bytes before, u32 0
 *   records u32 length, u32 CRC-32 (of the length's 4 bytes and the payload), payload:
 *     'J' a job: strings folder key tag start_text name error_summary (each a varint of
 *         length + 1, 0 for none, then the bytes and a NUL), zigzag varints start log_bytes
 *         gz_bytes status exit_code, a flags byte (CAT_F_*), varint n_members, per member
 *         varints offset size usize lead (the newlines before it << 1 | 1 when it starts
 *         inside a line; 0 when not indexed), then when indexed varint length and the trigram
 *         data (per member: varint count, varint deltas of the sorted trigrams, the first
 *         from 0; a member's trigrams are those of the lines starting in it: catalog.h)
 *     'D' a folder's state: string folder, zigzag mtime_ns, varint jobs (the catalog's jobs
 *         of that folder, all told)
 *     'R' a folder removed (retention): string folder
 *
 * Sealed file ("L<level>-<first>-<last>.cat"):
 *   header  32 bytes: "CJCATIDX", u32 version, u32 level, u64 first, u64 last
 *   sections, back to back (every byte under a CRC): strings (NUL-terminated, referenced by offset;
 * CAT_NONE for none), folders (CAT_FOLDER_SIZE each, sorted by path), jobs (CAT_JOB_SIZE each),
 *           members (CAT_MEMBER_SIZE each: u64 offset, u32 size, u32 usize, u64 lead as in
 *           the segment; numbered across the file),
 *           units (u32 each: a unit's first member; the first 0, increasing, each below the
 *           members' number; a unit runs on to the next one's first member),
 *           postings, dictionary (CAT_DICT_SIZE each, sorted by trigram)
 *   footer  CAT_FOOTER_SIZE bytes at the end: per section u64 offset, u64 length, u32 CRC-32;
 *           u64 jobs, members, folders, trigrams; u32 CRC-32 of the header and the footer
 *           before it; "CJCATEND"
 * A posting list is (CAT_P_BITMAP in its entry) a bitmap of the file's units, or else its
 * unit numbers as gaps (the first from -1) Rice-coded with the parameter k in the entry's
 * flags (bits 8-15): a varint count n, then per gap g, g - 1 >> k as that many 1 bits and a
 * 0, then the k low bits of g - 1 (bits from the lowest of each byte up; the last byte's
 * unused bits 0), whichever is smaller (k chosen as the smallest of a few). A unit is consecutive
 * members, CAT_UNIT_BYTES of log or one member (sealing groups the small jobs of a segment; a
 * merge keeps its inputs' units): a trigram is in a unit's list when any of its members has
 * it, so every member of a candidate unit may match, and a search decodes them all.
 */

#define CAT_SEG_MAGIC   "CJCATSEG"
#define CAT_IDX_MAGIC   "CJCATIDX"
#define CAT_END_MAGIC   "CJCATEND"
#define CAT_HEADER_SIZE 32
#define CAT_NONE        UINT32_MAX

enum {
        CAT_F_EXIT = 1 << 0,
        CAT_F_ERROR = 1 << 1,
        CAT_F_INDEXED = 1 << 2,
        CAT_F_REMOVED = 1 << 3, /* a folder */
        CAT_P_BITMAP = 1 << 0,  /* a posting list */
};

enum {
        CAT_S_STRINGS,
        CAT_S_FOLDERS,
        CAT_S_JOBS,
        CAT_S_MEMBERS,
        CAT_S_POSTINGS,
        CAT_S_DICT,
        CAT_S_UNITS,
        CAT_N_SECTIONS,
};

/* folder: u32 path, u32 flags, i64 mtime_ns, u32 jobs, u32 0 */
#define CAT_FOLDER_SIZE 24
/* job: u32 folder (index), u32 key, tag, start_text, name, error (strings), i64 start,
 * log_bytes, gz_bytes, i32 status, exit_code, u32 flags, first_member, n_members, u32 0 */
#define CAT_JOB_SIZE 72
/* member: u64 offset, u32 size, u32 usize, u64 lead */
#define CAT_MEMBER_SIZE 24
/* dict: u32 trigram, u32 flags, u64 offset (in postings), u32 length, u32 CRC-32 */
#define CAT_DICT_SIZE   24
#define CAT_FOOTER_SIZE (CAT_N_SECTIONS * 20 + 32 + 4 + 8)
/* Sealing starts a unit at a member that would take the unit's log past this. */
#define CAT_UNIT_BYTES (256u << 10)

static inline void cat_put16(unsigned char *p, uint16_t v)
{
        p[0] = (unsigned char) v;
        p[1] = (unsigned char) (v >> 8);
}

static inline void cat_put32(unsigned char *p, uint32_t v)
{
        for (int i = 0; i < 4; i++)
                p[i] = (unsigned char) (v >> (8 * i));
}

static inline void cat_put64(unsigned char *p, uint64_t v)
{
        for (int i = 0; i < 8; i++)
                p[i] = (unsigned char) (v >> (8 * i));
}

static inline uint32_t cat_get32(const unsigned char *p)
{
        return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 |
               (uint32_t) p[3] << 24;
}

static inline uint64_t cat_get64(const unsigned char *p)
{
        return (uint64_t) cat_get32(p) | (uint64_t) cat_get32(p + 4) << 32;
}

static inline uint64_t cat_zigzag(int64_t v)
{
        return ((uint64_t) v << 1) ^ (uint64_t) (v >> 63);
}

static inline int64_t cat_unzigzag(uint64_t v)
{
        return (int64_t) (v >> 1) ^ -(int64_t) (v & 1);
}

/* A varint at p (at most end): its length, or 0 when it runs past end or past 10 bytes. */
static inline size_t cat_varint_get(const unsigned char *p, const unsigned char *end, uint64_t *ret)
{
        uint64_t v = 0;

        for (size_t i = 0; i < 10 && p + i < end; i++) {
                v |= (uint64_t) (p[i] & 0x7f) << (7 * i);
                if (!(p[i] & 0x80)) {
                        *ret = v;
                        return i + 1;
                }
        }
        return 0;
}

static inline size_t cat_varint_put(unsigned char *p, uint64_t v)
{
        size_t n = 0;

        while (v >= 0x80) {
                p[n++] = (unsigned char) (v | 0x80);
                v >>= 7;
        }
        p[n++] = (unsigned char) v;
        return n;
}

/* pread until len bytes or the end of the file: the bytes read, or -errno. */
ssize_t cat_pread(int fd, void *buf, size_t len, uint64_t off);

/* A growable byte buffer. */
struct cat_buf {
        unsigned char *data;
        size_t len, cap;
        bool failed;
};

bool cat_buf_reserve(struct cat_buf *b, size_t n);
void cat_buf_put(struct cat_buf *b, const void *data, size_t n);
void cat_buf_varint(struct cat_buf *b, uint64_t v);
void cat_buf_string(struct cat_buf *b, const char *s);
void cat_buf_done(struct cat_buf *b);

uint32_t cat_crc32(uint32_t crc, const void *data, size_t len);

/* A reader over a record's payload. */
struct cat_cursor {
        const unsigned char *p, *end;
        bool bad;
};

uint64_t cat_cursor_varint(struct cat_cursor *c);
/* A string of the record: NULL for none (or when bad). It points into the payload. */
const char *cat_cursor_string(struct cat_cursor *c);

/* A segment's 'J' record decoded (pointers into the payload). */
struct cat_seg_job {
        struct catalog_row row;
        const unsigned char *members; /* varints, n_members triples */
        size_t members_len;
        const unsigned char *tri; /* NULL when not indexed */
        size_t tri_len;
};

/* A member's lead (catalog_member's lines and midline) coded and decoded. */
static inline uint64_t cat_lead(const struct catalog_member *m)
{
        return m->lines << 1 | (uint64_t) m->midline;
}

static inline void cat_set_lead(struct catalog_member *m, uint64_t lead)
{
        m->lines = lead >> 1;
        m->midline = lead & 1;
}

int cat_seg_job_parse(const unsigned char *payload, size_t len, struct cat_seg_job *ret);

/* Reads the segment file fd: calls fn for each good record in order; stops at the first bad
 * one. *ret_good_end: the offset after the last good record; *ret_id: the segment's id.
 * Returns 0, -EBADMSG for a bad header, or -errno. The payloads are in *ret_data (free). */
typedef int cat_record_fn(void *userdata, unsigned char type, const unsigned char *payload,
                          size_t len);
int cat_seg_read(int fd, uint64_t *ret_id, uint64_t *ret_good_end, bool *ret_torn,
                 unsigned char **ret_data, cat_record_fn *fn, void *userdata);
/* As cat_seg_read, a record at a time (in a buffer of one record's size, valid during the
 * call), with the payload's offset in the file: the writer's, so that neither opening a
 * segment nor sealing it holds the segment in memory. */
typedef int cat_record_at_fn(void *userdata, unsigned char type, const unsigned char *payload,
                             size_t len, uint64_t offset);
int cat_seg_stream(int fd, uint64_t *ret_id, uint64_t *ret_good_end, bool *ret_torn,
                   cat_record_at_fn *fn, void *userdata);

/* Parses "L<level>-<first>-<last>.cat". */
bool cat_sealed_name(const char *name, unsigned *level, uint64_t *first, uint64_t *last);

/* A sealed file of the catalog folder, as its name says. */
struct cat_file_ref {
        char name[64];
        unsigned level;
        uint64_t first, last;
};
/*
 * The sealed files of the catalog folder dfd, oldest first (by first id): the one rule that
 * the reader and the writer share. A file whose range lies inside another's was merged into
 * it (the merge died before removing it): it is left out, and with writer set removed, with
 * the temporaries a dead writer left. *ret_max_last (may be NULL): the highest last id of
 * any file, merged ones included. Returns 0 or -errno; free *ret.
 */
int cat_list_sealed(int dfd, bool writer, struct cat_file_ref **ret, size_t *ret_n,
                    uint64_t *ret_max_last);

/* A sealed file, mapped and checked (all but the posting lists, checked when read). */
struct cat_sealed {
        unsigned char *map;
        size_t size;
        unsigned level;
        uint64_t first, last;
        uint64_t off[CAT_N_SECTIONS], len[CAT_N_SECTIONS];
        uint64_t n_jobs, n_members, n_folders, n_tri, n_units;
};

/* The first member of unit u of a sealed file, and the one after its last. */
static inline uint64_t cat_sealed_unit_first(const struct cat_sealed *s, uint64_t u)
{
        return u >= s->n_units ? s->n_members : cat_get32(s->map + s->off[CAT_S_UNITS] + 4 * u);
}

/* Mapped and checked: the pages the checks read are given back (read again when touched), so
 * that a reader of a catalog of hundreds of MB holds only what it uses. */
int cat_sealed_open(int dfd, const char *name, struct cat_sealed *ret);
/* Gives the whole pages of [p, p + len) of a file's read-only mapping back. */
void cat_drop_pages(const void *p, size_t len);
void cat_sealed_close(struct cat_sealed *s);
/* A string of the file (NULL for CAT_NONE or one out of bounds). */
const char *cat_sealed_string(const struct cat_sealed *s, uint32_t off);
/* Decodes the posting list of dictionary entry i into the bitmap bits (n_units bits), OR'ed
 * in. -EBADMSG when its CRC or coding is wrong. */
int cat_sealed_postings_or(const struct cat_sealed *s, uint64_t i, uint64_t *bits);
/* The dictionary entry of tri, or -1. */
int64_t cat_sealed_find(const struct cat_sealed *s, uint32_t tri);

/* Writing a sealed file: rows, folders and the posting lists, given in trigram order. */
struct cat_sealed_writer;

struct cat_folder_state {
        const char *path;
        int64_t mtime_ns;
        uint32_t jobs;
        bool removed;
};

int cat_sealed_writer_new(int dfd, unsigned level, uint64_t first, uint64_t last,
                          struct cat_sealed_writer **ret);
/* The rows in order (their members numbered from 0 in that order), then the folders (any
 * order; sorted here). */
int cat_sealed_writer_job(struct cat_sealed_writer *w, const struct catalog_row *row,
                          const struct catalog_member *members);
int cat_sealed_writer_folder(struct cat_sealed_writer *w, const struct cat_folder_state *f);
/* A unit starts at member first (numbered as the jobs are given; increasing): before the
 * lists. Member 0 always starts one; a unit at or past the last member is dropped. */
int cat_sealed_writer_unit_at(struct cat_sealed_writer *w, uint32_t first);
/* After every job and folder: the trigrams in increasing order, each with its sorted unit
 * numbers. */
int cat_sealed_writer_list(struct cat_sealed_writer *w, uint32_t tri, const uint32_t *members,
                           size_t n);
/* Writes, fsyncs and renames it into place (and fsyncs the folder). */
int cat_sealed_writer_commit(struct cat_sealed_writer *w);
void cat_sealed_writer_free(struct cat_sealed_writer *w);

/* Row j of a sealed file (strings point into the map; no members array). */
void cat_sealed_row(const struct cat_sealed *s, uint64_t j, struct catalog_row *ret,
                    uint32_t *ret_first_member);
/* Member k of a sealed file (numbered across it). */
void cat_sealed_member(const struct cat_sealed *s, uint64_t k, struct catalog_member *ret);
/* Folder i of a sealed file. */
void cat_sealed_folder(const struct cat_sealed *s, uint64_t i, struct cat_folder_state *ret);
/* Appends the unit numbers of dictionary entry i to *buf. -EBADMSG, -ENOMEM. */
int cat_sealed_list(const struct cat_sealed *s, uint64_t i, uint32_t **buf, size_t *n, size_t *cap);
/* The records of day folder dfd that a scan reads ("<key>.json", not ".error.json", not
 * hidden): their number, or -errno. */
int cat_count_records(int dfd);

#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The matcher and the per-job line machinery of connect-jobs search.
 *
 * PATTERN means what it means to GNU grep -E (ere.h parses it as grep does, leniency and
 * refusals included, and writes the PCRE2 pattern that selects the same lines), or to grep -F
 * with fixed. In a UTF-8 locale (utf8) it is matched on characters: PCRE2_UTF with
 * PCRE2_MATCH_INVALID_UTF, so '.', brackets and -i work on characters and a byte that is not
 * UTF-8 matches nothing but is searched past; otherwise on bytes. Classes, \w and -w's word
 * characters are the C library's for the locale. -o and --color show leftmost-longest
 * matches (as grep) except with back-references, where PCRE2's leftmost-first is shown.
 * -F takes PATTERN literally (memmem when it can). A newline in PATTERN separates patterns,
 * any of which may match (several -e). CJA_GREP_NO_JIT=1 in the environment turns the JIT
 * off (for valgrind, which cannot follow JIT code).
 *
 * Whole decompressed buffers are searched at once; line boundaries are found only around
 * matches, and a match that would span lines is checked again on its first line alone.
 */

struct grep_opts {
        bool fixed;         /* -F */
        bool ignore_case;   /* -i */
        bool word;          /* -w */
        bool line;          /* -x (wins over -w, as in grep) */
        bool invert;        /* -v */
        bool count;         /* -c */
        bool list;          /* -l */
        bool list_without;  /* -L */
        bool only;          /* -o */
        bool quiet;         /* -q: nothing is written */
        bool no_prefix;     /* -h: no job, no line number */
        bool utf8;          /* the locale is UTF-8: match characters */
        bool escape;        /* to a terminal: log text's control characters escaped */
        uint64_t max_count; /* -m N; 0 = no limit */
        unsigned before, after;
        bool color;
        bool json;
};

struct matcher;
struct matcher_scratch;

/* Compiles pattern for o. On failure fills err (grep's message for a refused pattern) and
 * returns -EINVAL, or -ENOMEM. The matcher is read-only afterwards and shared by threads. */
int matcher_new(const char *pattern, const struct grep_opts *o, struct matcher **ret, char *err,
                size_t errsz);
void matcher_free(struct matcher *m);
/* The literal every match must contain, or NULL (exposed for the tests). */
const char *matcher_required_literal(const struct matcher *m);

/* Per-thread match state. */
int matcher_scratch_new(const struct matcher *m, struct matcher_scratch **ret);
void matcher_scratch_free(struct matcher_scratch *s);

/*
 * Finds the first line in buf[from, end) (from at a line start) that holds a match and sets
 * [*ret_ls, *ret_le) to it, without its '\n'. Returns 1, 0 (none), or -E2BIG when PCRE2 hit a
 * resource limit.
 */
int matcher_find_line(const struct matcher *m, struct matcher_scratch *s, const char *buf,
                      size_t from, size_t end, size_t *ret_ls, size_t *ret_le);

/* A growable output buffer; flush (optional) is called when it holds more than limit bytes. */
struct obuf {
        char *data;
        size_t len, cap;
        size_t limit;
        int (*flush)(struct obuf *b, void *userdata);
        void *userdata;
        int error; /* first -ENOMEM or flush error; later writes are dropped */
};
void obuf_put(struct obuf *b, const char *s, size_t n);
void obuf_puts(struct obuf *b, const char *s);
void obuf_printf(struct obuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* s as a JSON string (quotes included); invalid UTF-8 becomes U+FFFD. Returns false when
 * s was not valid UTF-8. */
bool obuf_json_string(struct obuf *b, const char *s, size_t n);
void obuf_base64(struct obuf *b, const unsigned char *s, size_t n);
void obuf_done(struct obuf *b);

/* What a hit says about its job. */
struct grep_job_info {
        const char *content_guid;
        const char *content_name; /* NULL: JSON null, and the GUID in text */
        const char *key;
        const char *start_time;    /* as in the record (JSON), may be NULL */
        const char *start_display; /* for people: "2026-09-28 14:03:11" */
        const char *path;          /* the .log.gz, for -l */
};

/* Searching one job's log: feed it bytes in order, then finish. */
struct grep_job;

int grep_job_new(const struct matcher *m, struct matcher_scratch *s, const struct grep_opts *o,
                 const struct grep_job_info *info, struct obuf *out, struct grep_job **ret);
/* Searches data as the whole log, without copying it. Call once, instead of feed. */
int grep_job_whole(struct grep_job *g, const char *data, size_t len);
/* The next bytes of the log. Returns 0, -ENOMEM, -E2BIG (a line over the limit, or PCRE2). */
int grep_job_feed(struct grep_job *g, const char *data, size_t len);
/*
 * The next bytes fed start the log's line number line, after a gap (lines the catalog says
 * cannot match, not read). What was fed before must end with a whole line. Not with context
 * (-A, -B, -C: the lines around a match may be in the gap) nor -v. Returns as feed.
 */
int grep_job_jump(struct grep_job *g, uint64_t line);
/* The end of the log: searches what is left and writes -c / -l lines. Returns as feed. */
int grep_job_finish(struct grep_job *g);
/* True when more input cannot change the output (-l found, -m reached): stop reading. */
bool grep_job_satisfied(const struct grep_job *g);
/* Selected lines so far (matching, or not matching with -v), capped by -m. */
uint64_t grep_job_count(const struct grep_job *g);
/* True once the job wrote a line (for the "--" between jobs' context groups). */
bool grep_job_printed(const struct grep_job *g);
/* Reading the log failed: it is not listed by -L whatever was found. */
void grep_job_mark_failed(struct grep_job *g);
void grep_job_free(struct grep_job *g);

/* Longest line the streaming path holds in memory: a longer one is an error that names the
 * log (exit 2, the rest of that log unsearched), so that a log of one endless line cannot
 * hold the search's memory (README "Failure modes"). */
#define GREP_MAX_LINE (32u * 1024 * 1024)

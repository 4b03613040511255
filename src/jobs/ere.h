#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * POSIX extended regular expressions as GNU grep -E reads them, parsed into a syntax tree,
 * and that tree written out as the PCRE2 pattern that selects the same lines.
 *
 * The parser follows GNU grep: its matcher (gnulib's dfa.c) decides what a pattern means,
 * and glibc's regcomp, which grep runs on every pattern too, decides what is refused, with
 * its messages ("Unmatched ( or \\(", "Invalid range end", ...). So the leniency is grep's:
 * a ')' without '(' is a literal, a '*', '+', '?' or interval at the start of an expression
 * (after '(', '|' or nothing) repeats nothing and is ignored, one after an anchor repeats the
 * anchor, a '{' that does not start a valid interval is a literal, repetitions stack
 * ("a+?" is "(a+)?", "a{1,2}{2}" is "(a{1,2}){2}"), "{,n}" is "{0,n}", a backslash before a
 * character that is not an operator is that character ("\d" is "d"), and inside brackets a
 * backslash is itself. Nothing of PCRE's own syntax ("(?i)", "\Q", lazy quantifiers) means
 * anything but its ERE reading.
 *
 * Characters: in UTF-8 mode the pattern is read as UTF-8 (it must be valid) and sets hold
 * code points; otherwise every byte is a character.
 */

enum ere_kind {
        ERE_EMPTY,      /* matches the empty string: "()", an empty alternative */
        ERE_LITERAL,    /* text[0, len): one or more characters, in the pattern's encoding */
        ERE_ANY,        /* '.': any character but newline (in UTF-8 mode a valid one) */
        ERE_SET,        /* a bracket expression, or \w \W \s \S */
        ERE_BOL,        /* '^', "\`" */
        ERE_EOL,        /* '$', "\'" */
        ERE_WORD_START, /* "\<" */
        ERE_WORD_END,   /* "\>" */
        ERE_WORD_EDGE,  /* "\b" */
        ERE_NOT_EDGE,   /* "\B" */
        ERE_CONCAT,     /* sub[0] sub[1] ... in order */
        ERE_ALT,        /* sub[0] | sub[1] | ... */
        ERE_GROUP,      /* ( sub[0] ), capturing group number `group` (from 1) */
        ERE_REPEAT,     /* sub[0] from min to max times (max ERE_INF: no limit) */
        ERE_BACKREF,    /* \N: what group `group` matched */
};

/* The character classes of [[:name:]], as the C library's locale defines them. */
enum ere_class {
        ERE_CLASS_ALPHA,
        ERE_CLASS_UPPER,
        ERE_CLASS_LOWER,
        ERE_CLASS_DIGIT,
        ERE_CLASS_XDIGIT,
        ERE_CLASS_SPACE,
        ERE_CLASS_PRINT,
        ERE_CLASS_PUNCT,
        ERE_CLASS_GRAPH,
        ERE_CLASS_CNTRL,
        ERE_CLASS_BLANK,
        ERE_CLASS_ALNUM,
        ERE_CLASS_COUNT
};

#define ERE_INF    (-1)
#define ERE_DUPMAX 32767 /* RE_DUP_MAX: a larger count is "Regular expression too big" */

/* A closed range of characters: code points in UTF-8 mode, else bytes. lo == hi for one. */
struct ere_range {
        uint32_t lo, hi;
};

/* A bracket expression: the characters in ranges or in a class, or (negated) all others but
 * newline. \w is [_[:alnum:]], \s [[:space:]]; \W and \S their negations. Collating symbols
 * and equivalence classes of one character ([[.-.]], [[=a=]]) are that character. */
struct ere_set {
        bool negated;
        uint32_t classes; /* 1u << enum ere_class */
        struct ere_range *ranges;
        size_t n_ranges;
};

/*
 * A node of the tree. Every kind uses only its own fields; sub holds the children of
 * CONCAT and ALT (n_sub >= 2) and the one child of GROUP and REPEAT (n_sub == 1), so a
 * walker can descend through sub alone. A LITERAL is never empty.
 */
struct ere_node {
        enum ere_kind kind;
        struct ere_node **sub;
        size_t n_sub;
        char *text; /* LITERAL */
        size_t len;
        struct ere_set *set; /* SET */
        int min, max;        /* REPEAT */
        unsigned group;      /* GROUP, BACKREF */
        bool regex;          /* grep's DFA cannot match this node: see ere->needs_regex */
};

/* One parsed pattern. */
struct ere {
        struct ere_node *root;
        unsigned n_groups; /* capturing groups, numbered 1..n_groups */
        bool has_backrefs; /* some \N: capturing groups must be emitted */
        bool utf8;         /* parsed in UTF-8 mode */
        /* grep would match this pattern with glibc's regex, not its DFA: a back-reference,
         * [[.x.]] or [[=x=]], and in UTF-8 a word operator, \w \W \s \S, a negated
         * bracket or a class other than digit and xdigit in one */
        bool needs_regex;
};

/* What a refused pattern gets: grep's message, and the offset in the pattern near which
 * the parser stopped. */
struct ere_error {
        const char *message;
        size_t offset;
};

#define ERE_UTF8  1u /* the locale is UTF-8 */
#define ERE_FIXED 2u /* take the pattern literally (grep -F) */
#define ERE_ICASE 4u /* grep -i: regcomp checks ranges on lowercased ends */
/* What a repetition that repeats nothing means: grep's DFA matcher repeats the anchor before
 * it ("x^*" is "x"), while regcomp skips it, and skips only the '{' of an interval ("{1}a" is
 * "1}a"). grep matches with regcomp's reading when its DFA cannot take the pattern: then
 * ere->needs_regex is set and the caller parses again with ERE_REGEX. */
#define ERE_REGEX 8u

/*
 * Parses pat[0, len) (one pattern: a newline in it is an ordinary character; grep's
 * newline-separated lists are split by the caller), as flags say.
 * Returns 0 and *ret (free with ere_free), -EINVAL with err filled, or -ENOMEM.
 */
int ere_parse(const char *pat, size_t len, unsigned flags, struct ere **ret, struct ere_error *err);
void ere_free(struct ere *e);

/*
 * Writing the tree as PCRE2 source. The caller keeps one context for the patterns of one
 * search (it caches the classes' ranges, which in UTF-8 mode are read from the locale by
 * walking every code point) and frees it with ere_emit_done().
 *
 * The PCRE2 pattern must be compiled with PCRE2_MULTILINE, with PCRE2_UTF and
 * PCRE2_MATCH_INVALID_UTF in UTF-8 mode, and with PCRE2_CASELESS for -i (for which
 * [[:upper:]] and [[:lower:]] become [[:alpha:]], as in grep). No other PCRE2 option
 * changes what it means: classes, \w and word boundaries are written as explicit ranges.
 */
struct ere_emit {
        bool utf8;
        bool icase;
        unsigned group_base; /* capturing groups written before this pattern */
        /* Large sets (the locale's classes in UTF-8 run to hundreds of ranges) written once,
         * in a DEFINE group that ere_emit_defines() appends, and called as subroutines: for
         * a pattern PCRE2 finds too large with every set written in place. */
        bool subroutines;
        char **defs;
        size_t n_defs;
        char *cls[ERE_CLASS_COUNT + 1]; /* cached class bodies; [COUNT] is the word set */
        size_t cls_len[ERE_CLASS_COUNT + 1];
};

/* Appends e's PCRE2 source to *buf (grown as needed, NUL-terminated) and adds the groups it
 * captured to em->group_base. Returns 0 or -ENOMEM. */
int ere_emit(struct ere_emit *em, const struct ere *e, char **buf, size_t *len, size_t *cap);
/* Appends a PCRE2 item matching one of grep's word characters, [_[:alnum:]] in the locale
 * (for -w). Returns 0 or -ENOMEM. */
int ere_emit_word_class(struct ere_emit *em, char **buf, size_t *len, size_t *cap);
/* With subroutines: appends the "(?(DEFINE)...)" group the sets written so far call (at the
 * end of the whole pattern: its groups come after every other). Returns 0 or -ENOMEM. */
int ere_emit_defines(struct ere_emit *em, char **buf, size_t *len, size_t *cap);
void ere_emit_done(struct ere_emit *em);

/*
 * The longest string every match of e must contain, as bytes of the pattern's encoding, or
 * NULL with *ret_len 0 (none known). Conservative: it only looks along the top-level
 * concatenation. Returns 0 or -ENOMEM.
 */
int ere_required_literal(const struct ere *e, char **ret, size_t *ret_len);

/* Whether the current locale's character set is UTF-8 (nl_langinfo(CODESET)). */
bool ere_locale_is_utf8(void);

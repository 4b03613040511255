#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

#include "apikey.h"
#include "config.h"
#include "log.h"
#include "macro.h"
#include "util.h"

/* A config is a page of YAML; anything this big is a mistake (or /dev/zero). */
#define CONFIG_FILE_MAX (1024 * 1024)

/*
 * How a value is checked and stored. Numbers are checked against the row's bounds and stored
 * in a field of the C type the name says; strings are copied to the heap.
 */
enum value_type {
        TYPE_URL,      /* http:// or https:// URL; trailing '/' stripped */
        TYPE_PATH,     /* non-empty file name without control characters */
        TYPE_ENV_NAME, /* [A-Za-z_][A-Za-z0-9_]* */
        TYPE_BOOL,     /* bool */
        TYPE_INT,      /* int */
        TYPE_UINT,     /* unsigned */
        TYPE_U64,      /* uint64_t */
        TYPE_CONTENT,  /* the content sequence, read by the state machine itself */
        TYPE_EXCLUDE,  /* discover.exclude: a sequence of GUIDs, read by the state machine */
        TYPE_RULES,    /* discover.rules: a sequence of rule mappings, likewise */
        TYPE_S3,       /* archive.s3: a mapping of the "archive.s3" rows below */
        TYPE_BUCKET,   /* an S3 bucket name: 3..63 of a-z 0-9 . -, alphanumeric at both ends */
        TYPE_PREFIX,   /* an object name prefix: "a/b", no empty, "." or ".." component */
        TYPE_REGION,   /* an AWS region name: a-z 0-9 - */
};

#define POLL_MAX_INTERVAL_DEFAULT 600

/* One row per config key, in the spirit of redis' static_configs[]. */
struct key_spec {
        const char *section; /* "server", "archive", "poll", or NULL for a top-level key */
        const char *name;
        enum value_type type;
        bool required;
        uint64_t min, max; /* numbers only */
        uint64_t def;      /* numbers and booleans only; strings default to NULL */
        size_t offset;     /* of the field in struct config */
        size_t size;       /* of that field, checked against the type when storing */
};

#define KEY(sec, nm, type, req, lo, hi, def, field)                                                \
        {                                                                                          \
                sec, nm, type, req, lo, hi, def, offsetof(struct config, field),                   \
                        sizeof(((struct config *) 0)->field)                                       \
        }

static const struct key_spec keys[] = {
        KEY("server", "url", TYPE_URL, true, 0, 0, 0, server_url),
        KEY("server", "api_key_file", TYPE_PATH, false, 0, 0, 0, api_key_file),
        KEY("server", "api_key_env", TYPE_ENV_NAME, false, 0, 0, 0, api_key_env),
        KEY("server", "ca_file", TYPE_PATH, false, 0, 0, 0, ca_file),
        KEY("server", "verify_tls", TYPE_BOOL, false, 0, 1, true, verify_tls),
        KEY("server", "timeout_seconds", TYPE_UINT, false, 1, 3600, 30, timeout_seconds),
        KEY("server", "max_concurrent_requests", TYPE_UINT, false, 1, 256, 8,
            max_concurrent_requests),
        KEY("archive", "directory", TYPE_PATH, true, 0, 0, 0, archive_dir),
        KEY("archive", "compression_level", TYPE_INT, false, 1, 9, 6, compression_level),
        KEY("archive", "retention_days", TYPE_UINT, false, 0, 36500, 0, retention_days),
        KEY("archive", "min_free_mb", TYPE_U64, false, 0, 1048576, 100, min_free_mb),
        KEY("archive", "s3", TYPE_S3, false, 0, 0, 0, s3),
        KEY("archive.s3", "endpoint", TYPE_URL, true, 0, 0, 0, s3_endpoint),
        KEY("archive.s3", "bucket", TYPE_BUCKET, true, 0, 0, 0, s3_bucket),
        KEY("archive.s3", "prefix", TYPE_PREFIX, false, 0, 0, 0, s3_prefix),
        KEY("archive.s3", "region", TYPE_REGION, false, 0, 0, 0, s3_region),
        KEY("archive.s3", "access_key_id_file", TYPE_PATH, false, 0, 0, 0, s3_access_key_id_file),
        KEY("archive.s3", "secret_access_key_file", TYPE_PATH, false, 0, 0, 0,
            s3_secret_access_key_file),
        KEY("poll", "interval_seconds", TYPE_UINT, false, 1, 86400, 60, poll_interval_seconds),
        KEY("poll", "max_interval_seconds", TYPE_UINT, false, 1, 86400, POLL_MAX_INTERVAL_DEFAULT,
            poll_max_interval_seconds),
        KEY("discover", "refresh_seconds", TYPE_UINT, false, 1, 86400, 600,
            discover_refresh_seconds),
        KEY("discover", "exclude", TYPE_EXCLUDE, false, 0, 0, 0, exclude),
        KEY("discover", "rules", TYPE_RULES, false, 0, 0, 0, rules),
        KEY(NULL, "metrics_file", TYPE_PATH, false, 0, 0, 0, metrics_file),
        KEY(NULL, "content", TYPE_CONTENT, true, 0, 0, 0, content),
};

/* The top-level keys whose value is a mapping of the keys[] rows that name them. */
static const char *const sections[] = {"server", "archive", "poll", "discover", "archive.s3"};
#define SECTION_ARCHIVE  1
#define SECTION_DISCOVER 3
/* A mapping inside archive: (the value of its key "s3"), not a top-level section. */
#define SECTION_S3     4
#define N_TOP_SECTIONS 4

/* The keys of a discovery rule. */
enum rule_key {
        RULE_ALL,
        RULE_TAG,
        RULE_OWNER,
        RULE_TYPE,
        RULE_KEY_MAX,
};
static const char *const rule_keys[RULE_KEY_MAX] = {"all", "tag", "owner", "type"};

/* The keys of a content item written as a mapping. */
enum item_key {
        ITEM_GUID,
        ITEM_NAME,
        ITEM_KEY_MAX,
};
static const char *const item_keys[ITEM_KEY_MAX] = {"guid", "name"};

/*
 * The parser's position. Every event moves it; the comment says what may come next.
 * Nesting is shallow and fixed (top level, section or content list, content item), so a
 * handful of states replaces a stack.
 */
enum state {
        STATE_STREAM,        /* STREAM-START */
        STATE_DOCUMENT,      /* DOCUMENT-START, or STREAM-END for an empty file */
        STATE_ROOT,          /* the top-level mapping */
        STATE_TOP_KEY,       /* a top-level key, or the end of the top-level mapping */
        STATE_TOP_VALUE,     /* the value of p->section or p->key */
        STATE_SECTION_KEY,   /* a key of section p->section, or the end of the section */
        STATE_SECTION_VALUE, /* the scalar value of p->key */
        STATE_S3_VALUE,      /* the value of archive.s3: a mapping, or null */
        STATE_CONTENT_ITEM,  /* a bare GUID, an item mapping, or the end of the content list */
        STATE_ITEM_KEY,      /* "guid" or "name", or the end of the item */
        STATE_ITEM_VALUE,    /* the scalar value of p->item_key */
        STATE_EXCLUDE_ITEM,  /* a GUID of discover.exclude, or the end of the sequence */
        STATE_RULE_ITEM,     /* a rule mapping of discover.rules, or the end of the sequence */
        STATE_RULE_KEY,      /* all, tag, owner or type, or the end of the rule */
        STATE_RULE_VALUE,    /* the scalar value of p->rule_key */
        STATE_DOCUMENT_END,  /* DOCUMENT-END */
        STATE_STREAM_END,    /* STREAM-END; a second DOCUMENT-START is refused */
        STATE_DONE,
};

struct parser_state {
        const char *name; /* the file name used in messages */
        const char *data; /* the whole document, to place reader errors */
        size_t len;
        struct config *c;
        struct config_error *reterr;

        enum state state;
        int section;                /* index into sections[], -1 at the top level */
        const struct key_spec *key; /* the key whose value comes next */
        enum item_key item_key;
        enum rule_key rule_key;

        /* 1-based line of each key's first occurrence, 0 when not seen (for duplicates). */
        size_t key_line[ELEMENTSOF(keys)];
        yaml_mark_t key_mark[ELEMENTSOF(keys)]; /* where each key is, for checks after parsing */
        size_t section_line[ELEMENTSOF(sections)];
        yaml_mark_t section_mark[ELEMENTSOF(sections)];
        size_t item_line[ITEM_KEY_MAX];
        yaml_mark_t item_mark;    /* where the current item mapping starts */
        yaml_mark_t content_mark; /* where the content sequence starts */
        bool content_empty;       /* "content:" given with no item (allowed with discover) */
        size_t rule_line[RULE_KEY_MAX];
        yaml_mark_t rule_mark; /* where the current rule mapping starts */
        size_t n_rules_alloc, n_exclude_alloc;
        size_t *exclude_line; /* 1-based line of each excluded GUID, parallel to c->exclude */

        /* 1-based line of each content item's GUID, parallel to c->content. */
        size_t *guid_line;
        size_t n_alloc;
        /* The GUIDs so far, case-folded, for finding a duplicate: index + 1 per slot, 0 free. */
        size_t *guid_slots;
        size_t n_guid_slots, n_guids;
};

/* Writes "file:line:col: message" (or "file: message" when m is NULL) into e; returns r. */
static int set_errorv(struct config_error *e, const char *file, const yaml_mark_t *m, int r,
                      const char *fmt, va_list ap) _printf_(5, 0);
static int set_errorv(struct config_error *e, const char *file, const yaml_mark_t *m, int r,
                      const char *fmt, va_list ap)
{
        return config_error_setv(e, file, m ? m->line + 1 : 0, m ? m->column + 1 : 0, r, fmt, ap);
}

static int set_error(struct config_error *e, const char *file, const yaml_mark_t *m, int r,
                     const char *fmt, ...) _printf_(5, 6);
static int set_error(struct config_error *e, const char *file, const yaml_mark_t *m, int r,
                     const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        r = set_errorv(e, file, m, r, fmt, ap);
        va_end(ap);
        return r;
}
#define set_error(...) (__extension__ set_error(__VA_ARGS__)) /* "%m": see log.h */

/* Rejects the config at mark m (NULL: no place) with -EINVAL. */
static int parse_error(struct parser_state *p, const yaml_mark_t *m, const char *fmt, ...)
        _printf_(3, 4);
static int parse_error(struct parser_state *p, const yaml_mark_t *m, const char *fmt, ...)
{
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = set_errorv(p->reterr, p->name, m, -EINVAL, fmt, ap);
        va_end(ap);
        return r;
}

static int parse_oom(struct parser_state *p)
{
        return set_error(p->reterr, p->name, NULL, -ENOMEM, "out of memory");
}

static const char *key_full_name(const struct key_spec *k, char *buf, size_t size)
{
        if (k->section)
                (void) snprintf(buf, size, "%s.%s", k->section, k->name);
        else
                (void) snprintf(buf, size, "%s", k->name);
        return buf;
}

static const char *scalar_value(const yaml_event_t *e)
{
        return (const char *) e->data.scalar.value;
}

/*
 * A plain empty, "~" or "null" scalar is YAML's null. We read it as "not set", so
 * "metrics_file:" or an empty "poll:" section keeps the default. Quoted, it is a string.
 */
static bool scalar_is_null(const yaml_event_t *e)
{
        static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};

        if (e->type != YAML_SCALAR_EVENT || e->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
                return false;
        for (size_t i = 0; i < ELEMENTSOF(nulls); i++)
                if (strcmp(scalar_value(e), nulls[i]) == 0)
                        return true;
        return false;
}

/* Describes a node for "got ..." in messages; scalars are quoted and escaped. */
static const char *describe(const yaml_event_t *e, char *buf, size_t size)
{
        char esc[LOG_ESCAPE_MAX];

        switch (e->type) {
        case YAML_SCALAR_EVENT:
                if (scalar_is_null(e))
                        (void) snprintf(buf, size, "nothing");
                else
                        (void) snprintf(buf, size, "\"%s\"",
                                        log_escape(scalar_value(e), esc, sizeof(esc)));
                break;
        case YAML_MAPPING_START_EVENT:
                (void) snprintf(buf, size, "a mapping");
                break;
        case YAML_SEQUENCE_START_EVENT:
                (void) snprintf(buf, size, "a sequence");
                break;
        default:
                (void) snprintf(buf, size, "an unexpected YAML event");
                break;
        }
        return buf;
}

static const char *type_expectation(enum value_type t)
{
        switch (t) {
        case TYPE_URL:
                return "a URL";
        case TYPE_PATH:
                return "a file name";
        case TYPE_ENV_NAME:
                return "an environment variable name";
        case TYPE_BOOL:
                return "true or false";
        case TYPE_INT:
        case TYPE_UINT:
        case TYPE_U64:
                return "an integer";
        case TYPE_CONTENT:
        case TYPE_EXCLUDE:
                return "a sequence of content GUIDs";
        case TYPE_RULES:
                return "a sequence of rules";
        case TYPE_S3:
                return "a mapping";
        case TYPE_BUCKET:
                return "a bucket name";
        case TYPE_PREFIX:
                return "an object name prefix";
        case TYPE_REGION:
                return "a region name";
        }
        return "a value";
}

/* Appends ", word" (or "word" first) to buf, silently stopping when it is full. */
static void append_word(char *buf, size_t size, const char *word)
{
        size_t n = strlen(buf);

        if (n + 1 < size)
                (void) snprintf(buf + n, size - n, "%s%s", n ? ", " : "", word);
}

/* Lists the keys allowed in a section (or at the top level for section < 0) into buf. */
static const char *allowed_keys(int section, char *buf, size_t size)
{
        buf[0] = '\0';
        if (section < 0)
                for (size_t i = 0; i < N_TOP_SECTIONS; i++)
                        append_word(buf, size, sections[i]);
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                const char *s = keys[i].section;
                if (section < 0 ? !s : s && strcmp(s, sections[section]) == 0)
                        append_word(buf, size, keys[i].name);
        }
        return buf;
}

static const struct key_spec *find_key(const char *section, const char *name)
{
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                const struct key_spec *k = &keys[i];
                if ((!section) != (!k->section))
                        continue;
                if (section && strcmp(section, k->section) != 0)
                        continue;
                if (strcmp(name, k->name) == 0)
                        return k;
        }
        return NULL;
}

static int find_section(const char *name)
{
        for (size_t i = 0; i < N_TOP_SECTIONS; i++)
                if (strcmp(name, sections[i]) == 0)
                        return (int) i;
        return -1;
}

/*
 * A key in the wrong place ("url" at the top level, "interval_seconds" under archive) is a
 * common slip; name the place where it belongs.
 */
static void did_you_mean(const char *section, const char *name, char *buf, size_t size)
{
        char full[64];

        buf[0] = '\0';
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                const struct key_spec *k = &keys[i];
                if (strcmp(name, k->name) != 0 ||
                    (section && k->section && strcmp(section, k->section) == 0))
                        continue;
                (void) snprintf(buf, size, "; did you mean %s?",
                                key_full_name(k, full, sizeof(full)));
                return;
        }
        if (section && find_section(name) >= 0)
                (void) snprintf(buf, size, "; %s is a top-level section", name);
}

static int unknown_key(struct parser_state *p, const yaml_event_t *e)
{
        const char *section = p->section >= 0 ? sections[p->section] : NULL;
        char esc[LOG_ESCAPE_MAX], allowed[256], hint[96];

        (void) allowed_keys(p->section, allowed, sizeof(allowed));
        did_you_mean(section, scalar_value(e), hint, sizeof(hint));
        if (section)
                return parse_error(p, &e->start_mark, "unknown key \"%s\" in %s; allowed: %s%s",
                                   log_escape(scalar_value(e), esc, sizeof(esc)), section, allowed,
                                   hint);
        return parse_error(p, &e->start_mark, "unknown top-level key \"%s\"; allowed: %s%s",
                           log_escape(scalar_value(e), esc, sizeof(esc)), allowed, hint);
}

static bool has_prefix_ci(const char *s, const char *prefix)
{
        return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

static bool has_control_chars(const char *s)
{
        for (; *s; s++)
                if ((unsigned char) *s < 0x20 || *s == 0x7f)
                        return true;
        return false;
}

/*
 * True when the URL carries credentials ("https://user:password@host/"): an '@' between
 * "://" (or the start) and the first '/', '?' or '#'. Such a URL is refused without being
 * quoted, so that the password reaches no message. Connect takes the API key, not these.
 */
static bool url_has_credentials(const char *url)
{
        const char *authority = strstr(url, "://");

        authority = authority ? authority + 3 : url;
        return memchr(authority, '@', strcspn(authority, "/?#")) != NULL;
}

#define URL_CREDENTIALS_REFUSED                                                                    \
        "credentials in the URL (user:password@) are refused and not shown; the API key goes "     \
        "in server.api_key_file"

/* True when a path segment of the URL is "__api__", which we append ourselves. */
static bool url_has_api_segment(const char *url)
{
        static const char api[] = "/__api__";
        const char *path = strstr(url, "://");

        path = path ? strchr(path + 3, '/') : NULL;
        for (const char *s = path; s && (s = strstr(s, api)); s += sizeof(api) - 1)
                if (s[sizeof(api) - 1] == '\0' || s[sizeof(api) - 1] == '/')
                        return true;
        return false;
}

/*
 * Checks a server URL (after url_has_credentials()). Returns NULL when it is usable, or what
 * is wrong, phrased to follow the quoted URL ("... has no host").
 */
static const char *url_problem(const char *url)
{
        const char *host;

        if (!has_prefix_ci(url, "http://") && !has_prefix_ci(url, "https://"))
                return "is not an http:// or https:// URL";
        for (const char *s = url; *s; s++)
                if ((unsigned char) *s <= 0x20 || *s == 0x7f)
                        return "contains whitespace or control characters";
        host = strstr(url, "://") + 3;
        if (*host == '\0' || *host == '/')
                return "has no host";
        /* The API paths are appended to the URL, which a query or fragment would swallow. */
        if (strpbrk(url, "?#"))
                return "must not have a query or fragment";
        /* "<url>/__api__/v1/..." is built from it: "https://host/__api__" would double it. */
        if (url_has_api_segment(url))
                return "contains /__api__: give the server's URL without /__api__";
        return NULL;
}

/* Copies a checked URL without its trailing slashes: "<url>/__api__" is built from it. */
static char *url_dup_stripped(const char *url)
{
        size_t len = strlen(url);

        /* url_problem() guarantees a host, so this never eats into "://". */
        while (len > 0 && url[len - 1] == '/')
                len--;
        return strndup(url, len);
}

static bool env_name_is_valid(const char *s)
{
        if (!(isalpha((unsigned char) *s) || *s == '_'))
                return false;
        for (s++; *s; s++)
                if (!(isalnum((unsigned char) *s) || *s == '_'))
                        return false;
        return true;
}

/*
 * YAML 1.1 spellings of booleans, compared case-insensitively, because operators write
 * "yes" and "on" and libyaml leaves the interpretation to us.
 */
static int parse_bool(const char *s, bool *ret)
{
        static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no",
                                                                               "off"};

        for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
                if (strcasecmp(s, yes[i]) == 0) {
                        *ret = true;
                        return 0;
                }
                if (strcasecmp(s, no[i]) == 0) {
                        *ret = false;
                        return 0;
                }
        }
        return -EINVAL;
}

/*
 * Parses a decimal integer: digits only, an optional '-' (always out of range for us, but
 * worth a range message rather than a type message), no '+', no leading zeros (YAML 1.1
 * reads "010" as octal 8, so it is ambiguous), no 0x, '_' or exponent. Returns 0, -EINVAL
 * (not an integer), -EDOM (leading zeros) or -ERANGE (negative or more than 64 bits).
 */
static int parse_decimal(const char *s, uint64_t *ret)
{
        const char *d = s;
        bool negative = false, overflow = false;
        uint64_t v = 0;

        if (*d == '-') {
                negative = true;
                d++;
        }
        if (!isdigit((unsigned char) *d))
                return -EINVAL;
        for (const char *q = d; *q; q++) {
                unsigned digit;

                if (!isdigit((unsigned char) *q))
                        return -EINVAL;
                digit = (unsigned) (*q - '0');
                if (v > (UINT64_MAX - digit) / 10)
                        overflow = true;
                else
                        v = v * 10 + digit;
        }
        if (d[0] == '0' && d[1] != '\0')
                return -EDOM;
        if (overflow || (negative && v != 0))
                return -ERANGE;
        *ret = v;
        return 0;
}

static int store_string(struct parser_state *p, const struct key_spec *k, char *value)
{
        char **field = (char **) (void *) ((char *) p->c + k->offset);

        if (!value)
                return parse_oom(p);
        free(*field);
        *field = value;
        return 0;
}

/* Booleans count as numbers here: they have a default and a fixed-size field. */
static bool type_is_number(enum value_type t)
{
        return t == TYPE_BOOL || t == TYPE_INT || t == TYPE_UINT || t == TYPE_U64;
}

static int store_number(const struct key_spec *k, struct config *c, uint64_t v)
{
        void *field = (char *) c + k->offset;

        switch (k->type) {
        case TYPE_BOOL:
                if (k->size != sizeof(bool))
                        return -EINVAL;
                *(bool *) field = v != 0;
                return 0;
        case TYPE_INT:
                if (k->size != sizeof(int) || v > INT_MAX)
                        return -EINVAL;
                *(int *) field = (int) v;
                return 0;
        case TYPE_UINT:
                if (k->size != sizeof(unsigned) || v > UINT_MAX)
                        return -EINVAL;
                *(unsigned *) field = (unsigned) v;
                return 0;
        case TYPE_U64:
                if (k->size != sizeof(uint64_t))
                        return -EINVAL;
                *(uint64_t *) field = v;
                return 0;
        default:
                return -EINVAL;
        }
}

/*
 * S3's bucket naming rules (the strict, DNS-compatible ones that AWS enforces for new
 * buckets): 3 to 63 characters, lower-case letters, digits, '.' and '-', a letter or digit at
 * both ends, no "..", and not shaped like an IP address.
 */
static const char *bucket_problem(const char *v)
{
        size_t len = strlen(v);
        bool all_digits_dots = true;

        if (len < 3 || len > 63)
                return "is not a bucket name (3 to 63 characters)";
        for (size_t i = 0; i < len; i++) {
                char ch = v[i];
                if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' ||
                      ch == '-'))
                        return "is not a bucket name (lower-case letters, digits, '.' and '-')";
                if (ch != '.' && !(ch >= '0' && ch <= '9'))
                        all_digits_dots = false;
        }
        if (!isalnum((unsigned char) v[0]) || !isalnum((unsigned char) v[len - 1]))
                return "is not a bucket name (it must begin and end with a letter or digit)";
        if (strstr(v, ".."))
                return "is not a bucket name (\"..\" inside)";
        if (all_digits_dots)
                return "is not a bucket name (it looks like an IP address)";
        return NULL;
}

/*
 * archive.s3.prefix: object names begin "<prefix>/". Written with or without a trailing '/';
 * stored without. Its components are checked as the archive's own path components are
 * (no empty one, no "." or "..", no control characters), so that "<prefix>/<guid>/..."
 * keys stay plain paths for every S3 client.
 */
static int store_prefix(struct parser_state *p, const struct key_spec *k, const yaml_event_t *e)
{
        const yaml_mark_t *m = &e->start_mark;
        const char *v = scalar_value(e);
        char full[64], esc[LOG_ESCAPE_MAX];
        size_t len = strlen(v);

        (void) key_full_name(k, full, sizeof(full));
        while (len > 0 && v[len - 1] == '/')
                len--;
        if (len == 0)
                return parse_error(p, m, "%s: must not be empty (leave it out for none)", full);
        if (len > 512)
                return parse_error(p, m, "%s: longer than 512 bytes", full);
        if (has_control_chars(v))
                return parse_error(p, m, "%s: \"%s\" contains control characters", full,
                                   log_escape(v, esc, sizeof(esc)));
        for (size_t i = 0; i < len;) {
                size_t n = strcspn(v + i, "/");
                if (n > len - i)
                        n = len - i;
                if (n == 0 || (n == 1 && v[i] == '.') || (n == 2 && v[i] == '.' && v[i + 1] == '.'))
                        return parse_error(p, m,
                                           "%s: \"%s\" has an empty, \".\" or \"..\" component",
                                           full, log_escape(v, esc, sizeof(esc)));
                i += n + 1;
        }
        return store_string(p, k, strndup(v, len));
}

/* Checks the scalar value of key k against its row and stores it in p->c. */
static int store_value(struct parser_state *p, const struct key_spec *k, const yaml_event_t *e)
{
        const yaml_mark_t *m = &e->start_mark;
        const char *v = scalar_value(e);
        char full[64], esc[LOG_ESCAPE_MAX], got[LOG_ESCAPE_MAX + 8];
        const char *problem;
        uint64_t n;
        bool b;
        int r;

        (void) key_full_name(k, full, sizeof(full));
        if (e->type != YAML_SCALAR_EVENT)
                return parse_error(p, m, "%s: expected %s, got %s", full, type_expectation(k->type),
                                   describe(e, got, sizeof(got)));
        /* A null value leaves the default, so a required key stays missing. */
        if (scalar_is_null(e))
                return 0;

        switch (k->type) {
        case TYPE_URL:
                if (url_has_credentials(v))
                        return parse_error(p, m, "%s: " URL_CREDENTIALS_REFUSED, full);
                problem = url_problem(v);
                if (problem)
                        return parse_error(p, m, "%s: \"%s\" %s", full,
                                           log_escape(v, esc, sizeof(esc)), problem);
                return store_string(p, k, url_dup_stripped(v));
        case TYPE_PATH:
                if (*v == '\0')
                        return parse_error(p, m, "%s: must not be empty", full);
                if (has_control_chars(v))
                        return parse_error(p, m, "%s: \"%s\" contains control characters", full,
                                           log_escape(v, esc, sizeof(esc)));
                return store_string(p, k, strdup(v));
        case TYPE_ENV_NAME:
                if (!env_name_is_valid(v))
                        return parse_error(p, m, "%s: \"%s\" is not an environment variable name",
                                           full, log_escape(v, esc, sizeof(esc)));
                return store_string(p, k, strdup(v));
        case TYPE_BOOL:
                if (parse_bool(v, &b) < 0)
                        return parse_error(p, m, "%s: expected true or false, got %s", full,
                                           describe(e, got, sizeof(got)));
                r = store_number(k, p->c, b);
                if (r < 0)
                        return parse_error(p, m, "%s: internal error: no field of that type", full);
                return 0;
        case TYPE_INT:
        case TYPE_UINT:
        case TYPE_U64:
                r = parse_decimal(v, &n);
                if (r == -EINVAL)
                        return parse_error(p, m, "%s: expected an integer, got %s", full,
                                           describe(e, got, sizeof(got)));
                if (r == -EDOM)
                        return parse_error(p, m,
                                           "%s: expected a decimal integer without leading "
                                           "zeros, got %s",
                                           full, describe(e, got, sizeof(got)));
                if (r == -ERANGE || n < k->min || n > k->max)
                        return parse_error(p, m,
                                           "%s: %s is out of range (%" PRIu64 "..%" PRIu64 ")",
                                           full, log_escape(v, esc, sizeof(esc)), k->min, k->max);
                r = store_number(k, p->c, n);
                if (r < 0)
                        return parse_error(p, m, "%s: internal error: no field of that type", full);
                return 0;
        case TYPE_BUCKET:
                problem = bucket_problem(v);
                if (problem)
                        return parse_error(p, m, "%s: \"%s\" %s", full,
                                           log_escape(v, esc, sizeof(esc)), problem);
                return store_string(p, k, strdup(v));
        case TYPE_PREFIX:
                return store_prefix(p, k, e);
        case TYPE_REGION:
                if (*v == '\0' || strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(v))
                        return parse_error(p, m,
                                           "%s: \"%s\" is not a region name (lower-case "
                                           "letters, digits and '-', like us-east-1)",
                                           full, log_escape(v, esc, sizeof(esc)));
                return store_string(p, k, strdup(v));
        case TYPE_CONTENT:
        case TYPE_EXCLUDE:
        case TYPE_RULES:
        case TYPE_S3:
                break;
        }
        return parse_error(p, m, "%s: unexpected value", full);
}

/* Appends an empty content item (and its line slot); the caller fills it in. */
static int content_append(struct parser_state *p)
{
        struct config *c = p->c;

        if (c->n_content == p->n_alloc) {
                size_t n = p->n_alloc ? p->n_alloc * 2 : 8;
                struct config_content *items = reallocarray(c->content, n, sizeof(*items));
                if (!items)
                        return parse_oom(p);
                c->content = items;
                size_t *lines = reallocarray(p->guid_line, n, sizeof(*lines));
                if (!lines)
                        return parse_oom(p);
                p->guid_line = lines;
                p->n_alloc = n;
        }
        c->content[c->n_content] = (struct config_content){NULL, NULL};
        p->guid_line[c->n_content] = 0;
        c->n_content++;
        return 0;
}

/*
 * Checks the GUID scalar of the last content item and stores it. GUIDs are compared without
 * regard to case, as Connect does, so one item cannot be archived twice under two spellings.
 */
static uint64_t guid_hash(const char *g)
{
        char folded[GUID_LEN];

        for (size_t i = 0; i < GUID_LEN; i++)
                folded[i] = (char) tolower((unsigned char) g[i]);
        return hash64(folded, GUID_LEN);
}

/* The slot of GUID g (valid) among the items' GUIDs: holding its item's index + 1, or 0 when
 * it is not there yet (the table has room for one more). NULL: out of memory. */
static size_t *guid_slot(struct parser_state *p, const char *g)
{
        const struct config *c = p->c;
        size_t i, mask;

        if (2 * (p->n_guids + 1) > p->n_guid_slots) {
                size_t n = p->n_guid_slots ? 2 * p->n_guid_slots : 64;
                size_t *t = calloc(n, sizeof(*t));

                if (!t)
                        return NULL;
                for (size_t k = 0; k < p->n_guid_slots; k++) {
                        size_t x = p->guid_slots[k];
                        if (!x)
                                continue;
                        for (i = guid_hash(c->content[x - 1].guid) & (n - 1); t[i];
                             i = (i + 1) & (n - 1))
                                ;
                        t[i] = x;
                }
                free(p->guid_slots);
                p->guid_slots = t;
                p->n_guid_slots = n;
        }
        mask = p->n_guid_slots - 1;
        for (i = guid_hash(g) & mask; p->guid_slots[i]; i = (i + 1) & mask)
                if (strcasecmp(c->content[p->guid_slots[i] - 1].guid, g) == 0)
                        break;
        return &p->guid_slots[i];
}

static int content_set_guid(struct parser_state *p, const yaml_event_t *e)
{
        struct config *c = p->c;
        struct config_content *item = &c->content[c->n_content - 1];
        const char *v = scalar_value(e);
        char esc[LOG_ESCAPE_MAX], got[LOG_ESCAPE_MAX + 8];
        size_t *slot;

        if (e->type != YAML_SCALAR_EVENT)
                return parse_error(p, &e->start_mark, "content item guid: expected a GUID, got %s",
                                   describe(e, got, sizeof(got)));
        if (!guid_is_valid(v))
                return parse_error(p, &e->start_mark, "\"%s\" is not a content GUID",
                                   log_escape(v, esc, sizeof(esc)));
        slot = guid_slot(p, v);
        if (!slot)
                return parse_oom(p);
        if (*slot)
                return parse_error(p, &e->start_mark,
                                   "duplicate content GUID %s (first at line %zu)", v,
                                   p->guid_line[*slot - 1]);
        item->guid = strdup(v);
        if (!item->guid)
                return parse_oom(p);
        *slot = c->n_content;
        p->n_guids++;
        p->guid_line[c->n_content - 1] = e->start_mark.line + 1;
        return 0;
}

static int content_set_name(struct parser_state *p, const yaml_event_t *e)
{
        struct config_content *item = &p->c->content[p->c->n_content - 1];
        const char *v = scalar_value(e);
        char esc[LOG_ESCAPE_MAX], got[LOG_ESCAPE_MAX + 8];

        if (e->type != YAML_SCALAR_EVENT)
                return parse_error(p, &e->start_mark,
                                   "content item name: expected a string, got %s",
                                   describe(e, got, sizeof(got)));
        if (scalar_is_null(e))
                return 0;
        if (*v == '\0')
                return parse_error(p, &e->start_mark, "content item name: must not be empty");
        /* The name ends up in log lines, systemctl status and metric labels. */
        if (has_control_chars(v))
                return parse_error(p, &e->start_mark,
                                   "content item name: \"%s\" contains control characters",
                                   log_escape(v, esc, sizeof(esc)));
        item->name = strdup(v);
        if (!item->name)
                return parse_oom(p);
        return 0;
}

/*
 * Checks what every event may not carry: aliases, anchors and tags (we build no node graph
 * to resolve them against, and silently ignoring them would read a different config than
 * the operator wrote), and NUL characters from "\0" escapes, which C strings cannot hold.
 */
static int check_event(struct parser_state *p, const yaml_event_t *e)
{
        const yaml_char_t *anchor = NULL, *tag = NULL;
        char esc[LOG_ESCAPE_MAX];

        switch (e->type) {
        case YAML_ALIAS_EVENT:
                return parse_error(
                        p, &e->start_mark, "YAML aliases (*%s) are not supported",
                        log_escape((const char *) e->data.alias.anchor, esc, sizeof(esc)));
        case YAML_SCALAR_EVENT:
                anchor = e->data.scalar.anchor;
                tag = e->data.scalar.tag;
                if (strlen(scalar_value(e)) != e->data.scalar.length)
                        return parse_error(p, &e->start_mark,
                                           "NUL characters are not allowed in values");
                break;
        case YAML_SEQUENCE_START_EVENT:
                anchor = e->data.sequence_start.anchor;
                tag = e->data.sequence_start.tag;
                break;
        case YAML_MAPPING_START_EVENT:
                anchor = e->data.mapping_start.anchor;
                tag = e->data.mapping_start.tag;
                break;
        default:
                break;
        }
        if (anchor)
                return parse_error(p, &e->start_mark, "YAML anchors (&%s) are not supported",
                                   log_escape((const char *) anchor, esc, sizeof(esc)));
        if (tag)
                return parse_error(p, &e->start_mark, "YAML tags (%s) are not supported",
                                   log_escape((const char *) tag, esc, sizeof(esc)));
        return 0;
}

/* A mapping key must be a scalar; "? [a, b]: c" is valid YAML but never a config key. */
static int expect_scalar_key(struct parser_state *p, const yaml_event_t *e)
{
        char got[LOG_ESCAPE_MAX + 8];

        if (e->type == YAML_SCALAR_EVENT)
                return 0;
        return parse_error(p, &e->start_mark, "expected a key, got %s",
                           describe(e, got, sizeof(got)));
}

static int duplicate_key(struct parser_state *p, const yaml_event_t *e, const char *what,
                         size_t first_line)
{
        return parse_error(p, &e->start_mark, "duplicate key %s (first at line %zu)", what,
                           first_line);
}

static int on_top_key(struct parser_state *p, const yaml_event_t *e)
{
        const struct key_spec *k;
        char full[64];
        int r, s;

        if (e->type == YAML_MAPPING_END_EVENT) {
                p->state = STATE_DOCUMENT_END;
                return 0;
        }
        r = expect_scalar_key(p, e);
        if (r < 0)
                return r;
        s = find_section(scalar_value(e));
        if (s >= 0) {
                if (p->section_line[s])
                        return duplicate_key(p, e, sections[s], p->section_line[s]);
                p->section_line[s] = e->start_mark.line + 1;
                p->section_mark[s] = e->start_mark;
                p->section = s;
                if (s == SECTION_DISCOVER)
                        p->c->discover = true;
                p->key = NULL;
                p->state = STATE_TOP_VALUE;
                return 0;
        }
        k = find_key(NULL, scalar_value(e));
        if (!k)
                return unknown_key(p, e);
        if (p->key_line[k - keys])
                return duplicate_key(p, e, key_full_name(k, full, sizeof(full)),
                                     p->key_line[k - keys]);
        p->key_line[k - keys] = e->start_mark.line + 1;
        p->key_mark[k - keys] = e->start_mark;
        p->key = k;
        p->state = STATE_TOP_VALUE;
        return 0;
}

static int on_top_value(struct parser_state *p, const yaml_event_t *e)
{
        char got[LOG_ESCAPE_MAX + 8];
        int r;

        if (p->section >= 0) {
                if (e->type == YAML_MAPPING_START_EVENT) {
                        p->state = STATE_SECTION_KEY;
                        return 0;
                }
                if (scalar_is_null(e)) {
                        /* "poll:" with every key commented out: all defaults. */
                        p->section = -1;
                        p->state = STATE_TOP_KEY;
                        return 0;
                }
                return parse_error(p, &e->start_mark, "%s: expected a mapping, got %s",
                                   sections[p->section], describe(e, got, sizeof(got)));
        }
        if (p->key->type == TYPE_CONTENT) {
                if (e->type == YAML_SEQUENCE_START_EVENT) {
                        p->content_mark = e->start_mark;
                        p->state = STATE_CONTENT_ITEM;
                        return 0;
                }
                if (scalar_is_null(e)) {
                        /* Allowed with discover: (checked in finish()). */
                        p->content_mark = e->start_mark;
                        p->content_empty = true;
                        p->state = STATE_TOP_KEY;
                        return 0;
                }
                return parse_error(p, &e->start_mark,
                                   "content: expected a sequence of content GUIDs, got %s",
                                   describe(e, got, sizeof(got)));
        }
        r = store_value(p, p->key, e);
        if (r < 0)
                return r;
        p->state = STATE_TOP_KEY;
        return 0;
}

static int on_section_key(struct parser_state *p, const yaml_event_t *e)
{
        const struct key_spec *k;
        char full[64];
        int r;

        if (e->type == YAML_MAPPING_END_EVENT) {
                /* The end of archive.s3 goes back to the rest of archive:. */
                p->section = p->section == SECTION_S3 ? SECTION_ARCHIVE : -1;
                p->state = p->section < 0 ? STATE_TOP_KEY : STATE_SECTION_KEY;
                return 0;
        }
        r = expect_scalar_key(p, e);
        if (r < 0)
                return r;
        k = find_key(sections[p->section], scalar_value(e));
        if (!k)
                return unknown_key(p, e);
        if (p->key_line[k - keys])
                return duplicate_key(p, e, key_full_name(k, full, sizeof(full)),
                                     p->key_line[k - keys]);
        p->key_line[k - keys] = e->start_mark.line + 1;
        p->key_mark[k - keys] = e->start_mark;
        p->key = k;
        p->state = k->type == TYPE_S3 ? STATE_S3_VALUE : STATE_SECTION_VALUE;
        return 0;
}

static int on_content_item(struct parser_state *p, const yaml_event_t *e)
{
        char got[LOG_ESCAPE_MAX + 8];
        int r;

        switch (e->type) {
        case YAML_SEQUENCE_END_EVENT:
                p->content_empty = p->c->n_content == 0; /* see finish() */
                p->state = STATE_TOP_KEY;
                return 0;
        case YAML_SCALAR_EVENT:
                r = content_append(p);
                if (r < 0)
                        return r;
                return content_set_guid(p, e);
        case YAML_MAPPING_START_EVENT:
                r = content_append(p);
                if (r < 0)
                        return r;
                memset(p->item_line, 0, sizeof(p->item_line));
                p->item_mark = e->start_mark;
                p->state = STATE_ITEM_KEY;
                return 0;
        default:
                return parse_error(p, &e->start_mark,
                                   "content item: expected a GUID or a mapping with guid and "
                                   "name, got %s",
                                   describe(e, got, sizeof(got)));
        }
}

/*
 * A key of a small fixed mapping (a content item, a discover rule): its index in names[],
 * or a parse error for a key that is not a scalar, not one of them, or seen before (lines[]
 * holds each key's first line, 0 when not seen).
 */
static int mapping_key(struct parser_state *p, const yaml_event_t *e, const char *const *names,
                       size_t n, size_t *lines, const char *what)
{
        char esc[LOG_ESCAPE_MAX], allowed[128] = "";
        int r;

        r = expect_scalar_key(p, e);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                if (strcmp(scalar_value(e), names[i]) != 0)
                        continue;
                if (lines[i])
                        return parse_error(p, &e->start_mark,
                                           "duplicate key %s in %s (first at line %zu)", names[i],
                                           what, lines[i]);
                lines[i] = e->start_mark.line + 1;
                return (int) i;
        }
        for (size_t i = 0; i < n; i++)
                append_word(allowed, sizeof(allowed), names[i]);
        return parse_error(p, &e->start_mark, "unknown key \"%s\" in %s; allowed: %s",
                           log_escape(scalar_value(e), esc, sizeof(esc)), what, allowed);
}

static int on_item_key(struct parser_state *p, const yaml_event_t *e)
{
        int r;

        if (e->type == YAML_MAPPING_END_EVENT) {
                if (!p->c->content[p->c->n_content - 1].guid)
                        return parse_error(p, &p->item_mark, "content item has no guid");
                p->state = STATE_CONTENT_ITEM;
                return 0;
        }
        r = mapping_key(p, e, item_keys, ITEM_KEY_MAX, p->item_line, "a content item");
        if (r < 0)
                return r;
        p->item_key = (enum item_key) r;
        p->state = STATE_ITEM_VALUE;
        return 0;
}

/* ---- discover: exclude and rules ---- */

static int exclude_add(struct parser_state *p, const yaml_event_t *e)
{
        struct config *c = p->c;
        const char *v = scalar_value(e);
        char esc[LOG_ESCAPE_MAX], got[LOG_ESCAPE_MAX + 8];

        if (e->type != YAML_SCALAR_EVENT || scalar_is_null(e))
                return parse_error(p, &e->start_mark, "discover.exclude: expected a GUID, got %s",
                                   describe(e, got, sizeof(got)));
        if (!guid_is_valid(v))
                return parse_error(p, &e->start_mark,
                                   "discover.exclude: \"%s\" is not a content GUID",
                                   log_escape(v, esc, sizeof(esc)));
        for (size_t i = 0; i < c->n_exclude; i++)
                if (strcasecmp(c->exclude[i], v) == 0)
                        return parse_error(p, &e->start_mark,
                                           "discover.exclude: duplicate GUID %s (first at line "
                                           "%zu)",
                                           v, p->exclude_line[i]);
        if (c->n_exclude == p->n_exclude_alloc) {
                size_t n = p->n_exclude_alloc ? p->n_exclude_alloc * 2 : 8;
                char **guids = reallocarray(c->exclude, n, sizeof(*guids));
                if (!guids)
                        return parse_oom(p);
                c->exclude = guids;
                size_t *lines = reallocarray(p->exclude_line, n, sizeof(*lines));
                if (!lines)
                        return parse_oom(p);
                p->exclude_line = lines;
                p->n_exclude_alloc = n;
        }
        c->exclude[c->n_exclude] = strdup(v);
        if (!c->exclude[c->n_exclude])
                return parse_oom(p);
        p->exclude_line[c->n_exclude++] = e->start_mark.line + 1;
        return 0;
}

static int rule_append(struct parser_state *p, const yaml_event_t *e)
{
        struct config *c = p->c;

        if (c->n_rules == p->n_rules_alloc) {
                size_t n = p->n_rules_alloc ? p->n_rules_alloc * 2 : 4;
                struct config_rule *rules = reallocarray(c->rules, n, sizeof(*rules));
                if (!rules)
                        return parse_oom(p);
                c->rules = rules;
                p->n_rules_alloc = n;
        }
        c->rules[c->n_rules++] = (struct config_rule){.line = e->start_mark.line + 1};
        memset(p->rule_line, 0, sizeof(p->rule_line));
        p->rule_mark = e->start_mark;
        return 0;
}

/* A tag path: names separated by '/', none empty ("Finance/Reports", not "/x" or "a//b"). */
static bool tag_path_is_valid(const char *v)
{
        size_t n = strlen(v);

        return n > 0 && v[0] != '/' && v[n - 1] != '/' && !strstr(v, "//");
}

static int rule_set(struct parser_state *p, const yaml_event_t *e)
{
        struct config_rule *rule = &p->c->rules[p->c->n_rules - 1];
        const char *key = rule_keys[p->rule_key], *v = scalar_value(e);
        char esc[LOG_ESCAPE_MAX], got[LOG_ESCAPE_MAX + 8];
        char **field;
        bool b;

        if (e->type != YAML_SCALAR_EVENT || scalar_is_null(e))
                return parse_error(p, &e->start_mark, "discover rule %s: expected %s, got %s", key,
                                   p->rule_key == RULE_ALL ? "true" : "a string",
                                   describe(e, got, sizeof(got)));
        if (p->rule_key == RULE_ALL) {
                if (parse_bool(v, &b) < 0 || !b)
                        return parse_error(p, &e->start_mark,
                                           "discover rule all: expected true (a rule that "
                                           "selects nothing is not a rule), got %s",
                                           describe(e, got, sizeof(got)));
                rule->all = true;
                return 0;
        }
        if (*v == '\0')
                return parse_error(p, &e->start_mark, "discover rule %s: must not be empty", key);
        if (has_control_chars(v))
                return parse_error(p, &e->start_mark,
                                   "discover rule %s: \"%s\" contains control characters", key,
                                   log_escape(v, esc, sizeof(esc)));
        if (p->rule_key == RULE_TAG && !tag_path_is_valid(v))
                return parse_error(p, &e->start_mark,
                                   "discover rule tag: \"%s\" is not a tag path (tag names "
                                   "from the top, separated by '/', e.g. Finance/Reports)",
                                   log_escape(v, esc, sizeof(esc)));
        field = p->rule_key == RULE_TAG     ? &rule->tag
                : p->rule_key == RULE_OWNER ? &rule->owner
                                            : &rule->type;
        *field = strdup(v);
        return *field ? 0 : parse_oom(p);
}

static int on_rule_key(struct parser_state *p, const yaml_event_t *e)
{
        int r;

        if (e->type == YAML_MAPPING_END_EVENT) {
                const struct config_rule *rule = &p->c->rules[p->c->n_rules - 1];
                if (!rule->all && !rule->tag && !rule->owner && !rule->type)
                        return parse_error(p, &p->rule_mark,
                                           "discover rule: empty; give all, tag, owner or type");
                p->state = STATE_RULE_ITEM;
                return 0;
        }
        r = mapping_key(p, e, rule_keys, RULE_KEY_MAX, p->rule_line, "a discover rule");
        if (r < 0)
                return r;
        p->rule_key = (enum rule_key) r;
        p->state = STATE_RULE_VALUE;
        return 0;
}

/* The value of a section key: a scalar, or the sequence that starts exclude or rules. */
static int on_section_value(struct parser_state *p, const yaml_event_t *e)
{
        char full[64], got[LOG_ESCAPE_MAX + 8];
        int r;

        if (p->key->type == TYPE_EXCLUDE || p->key->type == TYPE_RULES) {
                if (e->type == YAML_SEQUENCE_START_EVENT) {
                        p->state =
                                p->key->type == TYPE_EXCLUDE ? STATE_EXCLUDE_ITEM : STATE_RULE_ITEM;
                        return 0;
                }
                if (scalar_is_null(e) && p->key->type == TYPE_EXCLUDE) {
                        p->state = STATE_SECTION_KEY;
                        return 0;
                }
                return parse_error(p, &e->start_mark, "%s: expected %s, got %s",
                                   key_full_name(p->key, full, sizeof(full)),
                                   type_expectation(p->key->type), describe(e, got, sizeof(got)));
        }
        r = store_value(p, p->key, e);
        if (r < 0)
                return r;
        p->state = STATE_SECTION_KEY;
        return 0;
}

/* Moves the state machine by one event; see enum state. */
static int on_event(struct parser_state *p, const yaml_event_t *e)
{
        char got[LOG_ESCAPE_MAX + 8];
        int r;

        r = check_event(p, e);
        if (r < 0)
                return r;

        switch (p->state) {
        case STATE_STREAM:
                if (e->type != YAML_STREAM_START_EVENT)
                        break;
                p->state = STATE_DOCUMENT;
                return 0;
        case STATE_DOCUMENT:
                if (e->type == YAML_STREAM_END_EVENT)
                        return set_error(p->reterr, p->name, NULL, -EINVAL,
                                         "the configuration is empty");
                if (e->type != YAML_DOCUMENT_START_EVENT)
                        break;
                p->state = STATE_ROOT;
                return 0;
        case STATE_ROOT:
                if (e->type == YAML_MAPPING_START_EVENT) {
                        p->state = STATE_TOP_KEY;
                        return 0;
                }
                if (scalar_is_null(e))
                        return set_error(p->reterr, p->name, NULL, -EINVAL,
                                         "the configuration is empty");
                return parse_error(p, &e->start_mark, "the top level must be a mapping, got %s",
                                   describe(e, got, sizeof(got)));
        case STATE_TOP_KEY:
                return on_top_key(p, e);
        case STATE_TOP_VALUE:
                return on_top_value(p, e);
        case STATE_SECTION_KEY:
                return on_section_key(p, e);
        case STATE_SECTION_VALUE:
                return on_section_value(p, e);
        case STATE_S3_VALUE:
                if (e->type == YAML_MAPPING_START_EVENT) {
                        p->c->s3 = true;
                        p->section_line[SECTION_S3] = e->start_mark.line + 1;
                        p->section_mark[SECTION_S3] = p->key_mark[p->key - keys];
                        p->section = SECTION_S3;
                        p->state = STATE_SECTION_KEY;
                        return 0;
                }
                if (scalar_is_null(e)) {
                        /* "s3:" with every key commented out: no object store. */
                        p->state = STATE_SECTION_KEY;
                        return 0;
                }
                return parse_error(p, &e->start_mark, "archive.s3: expected a mapping, got %s",
                                   describe(e, got, sizeof(got)));
        case STATE_EXCLUDE_ITEM:
                if (e->type == YAML_SEQUENCE_END_EVENT) {
                        p->state = STATE_SECTION_KEY;
                        return 0;
                }
                return exclude_add(p, e);
        case STATE_RULE_ITEM:
                if (e->type == YAML_SEQUENCE_END_EVENT) {
                        p->state = STATE_SECTION_KEY;
                        return 0;
                }
                if (e->type != YAML_MAPPING_START_EVENT)
                        return parse_error(p, &e->start_mark,
                                           "discover.rules: each rule is a mapping of all, tag, "
                                           "owner or type, got %s",
                                           describe(e, got, sizeof(got)));
                r = rule_append(p, e);
                if (r < 0)
                        return r;
                p->state = STATE_RULE_KEY;
                return 0;
        case STATE_RULE_KEY:
                return on_rule_key(p, e);
        case STATE_RULE_VALUE:
                r = rule_set(p, e);
                if (r < 0)
                        return r;
                p->state = STATE_RULE_KEY;
                return 0;
        case STATE_CONTENT_ITEM:
                return on_content_item(p, e);
        case STATE_ITEM_KEY:
                return on_item_key(p, e);
        case STATE_ITEM_VALUE:
                r = p->item_key == ITEM_GUID ? content_set_guid(p, e) : content_set_name(p, e);
                if (r < 0)
                        return r;
                p->state = STATE_ITEM_KEY;
                return 0;
        case STATE_DOCUMENT_END:
                if (e->type != YAML_DOCUMENT_END_EVENT)
                        break;
                p->state = STATE_STREAM_END;
                return 0;
        case STATE_STREAM_END:
                if (e->type == YAML_DOCUMENT_START_EVENT)
                        return parse_error(p, &e->start_mark,
                                           "only one YAML document is allowed in the file");
                if (e->type != YAML_STREAM_END_EVENT)
                        break;
                p->state = STATE_DONE;
                return 0;
        case STATE_DONE:
                break;
        }
        /* libyaml's grammar makes every other combination impossible. */
        return parse_error(p, &e->start_mark, "unexpected YAML event %d", (int) e->type);
}

/*
 * Turns a libyaml failure into a message. Scanner and parser errors carry a mark; reader
 * errors (bad UTF-8, control characters) carry only a byte offset, which we turn into a
 * line and column the same way libyaml counts them (columns in characters).
 */
static int yaml_problem(struct parser_state *p, const yaml_parser_t *parser)
{
        yaml_mark_t m = parser->problem_mark;
        const char *problem = parser->problem ? parser->problem : "invalid YAML";

        if (parser->error == YAML_MEMORY_ERROR)
                return parse_oom(p);
        if (parser->error == YAML_READER_ERROR) {
                m = (yaml_mark_t){0};
                for (size_t i = 0; i < parser->problem_offset && i < p->len; i++) {
                        unsigned char ch = (unsigned char) p->data[i];
                        if (ch == '\n') {
                                m.line++;
                                m.column = 0;
                        } else if ((ch & 0xc0) != 0x80) {
                                m.column++;
                        }
                }
                if (parser->problem_value >= 0)
                        return parse_error(p, &m, "%s (byte 0x%02x)", problem,
                                           (unsigned) parser->problem_value & 0xffu);
                return parse_error(p, &m, "%s", problem);
        }
        if (parser->context)
                return parse_error(p, &m, "%s (%s at line %zu, column %zu)", problem,
                                   parser->context, parser->context_mark.line + 1,
                                   parser->context_mark.column + 1);
        return parse_error(p, &m, "%s", problem);
}

/*
 * A ca_file that cannot be used fails every request of every cycle, so it is refused at
 * load, with the place of the key, where the operator looks. The file is opened without
 * blocking (a FIFO) and not read: curl needs a readable regular file, and what is in it
 * is for TLS to judge.
 */
static int check_ca_file(struct parser_state *p)
{
        const yaml_mark_t *m = &p->key_mark[find_key("server", "ca_file") - keys];
        const char *path = p->c->ca_file;
        _cleanup_close_ int fd = -1;
        char esc[LOG_ESCAPE_MAX];
        struct stat st;

        (void) log_escape(path, esc, sizeof(esc));
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0 || fstat(fd, &st) < 0) {
                (void) set_error(p->reterr, p->name, m, -errno,
                                 "server.ca_file: cannot read %s: %m", esc);
                return -EINVAL;
        }
        if (!S_ISREG(st.st_mode))
                return parse_error(p, m, "server.ca_file: %s is not a regular file", esc);
        if (st.st_size == 0)
                return parse_error(p, m, "server.ca_file: %s is empty", esc);
        return 0;
}

/*
 * archive.s3.endpoint is the service's root: "http(s)://host[:port]", no path (the bucket
 * goes in the path, path-style, which every S3-compatible store takes). The region defaults
 * to us-east-1, which is also what an S3-compatible store that ignores regions accepts.
 */
static int check_s3(struct parser_state *p)
{
        const struct key_spec *k = find_key("archive.s3", "endpoint");
        struct config *c = p->c;
        const char *path = strstr(c->s3_endpoint, "://");
        char esc[LOG_ESCAPE_MAX];

        path = path ? strpbrk(path + 3, "/?#") : NULL;
        if (path)
                return parse_error(p, &p->key_mark[k - keys],
                                   "archive.s3.endpoint: \"%s\" has a path; give only "
                                   "http(s)://host[:port] (the bucket is archive.s3.bucket)",
                                   log_escape(c->s3_endpoint, esc, sizeof(esc)));
        if (!c->s3_region && !(c->s3_region = strdup("us-east-1")))
                return parse_oom(p);
        return 0;
}

/* After the whole document: required keys, the $CONNECT_SERVER fallback, the CA file. */
static int finish(struct parser_state *p)
{
        struct config *c = p->c;
        char full[64], esc[LOG_ESCAPE_MAX];

        if (!c->server_url) {
                const char *env = getenv("CONNECT_SERVER");
                if (env && *env) {
                        if (url_has_credentials(env))
                                return set_error(p->reterr, p->name, NULL, -EINVAL,
                                                 "$CONNECT_SERVER: " URL_CREDENTIALS_REFUSED);
                        const char *problem = url_problem(env);
                        if (problem)
                                return set_error(p->reterr, p->name, NULL, -EINVAL,
                                                 "$CONNECT_SERVER: \"%s\" %s",
                                                 log_escape(env, esc, sizeof(esc)), problem);
                        c->server_url = url_dup_stripped(env);
                        if (!c->server_url)
                                return parse_oom(p);
                }
        }
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                const struct key_spec *k = &keys[i];
                const char *hint = k->offset == offsetof(struct config, server_url)
                                           ? " (or set $CONNECT_SERVER)"
                                           : "";
                bool missing;
                int s;

                if (!k->required)
                        continue;
                if (k->section && strcmp(k->section, "archive.s3") == 0 && !c->s3)
                        continue;
                if (k->type == TYPE_CONTENT) {
                        if (c->discover)
                                continue; /* discovery may be the only source */
                        if (p->content_empty)
                                return parse_error(
                                        p, &p->content_mark,
                                        "content: at least one content GUID is required (or a "
                                        "discover: section)");
                        missing = c->n_content == 0;
                } else {
                        missing = !*(char **) (void *) ((char *) c + k->offset);
                }
                if (!missing)
                        continue;
                /* Point at the section the key belongs in when there is one. */
                s = -1;
                for (size_t j = 0; k->section && j < ELEMENTSOF(sections); j++)
                        if (strcmp(k->section, sections[j]) == 0)
                                s = (int) j;
                (void) key_full_name(k, full, sizeof(full));
                if (s >= 0 && p->section_line[s])
                        return parse_error(p, &p->section_mark[s], "%s is required%s", full, hint);
                return set_error(p->reterr, p->name, NULL, -EINVAL, "%s is required%s", full, hint);
        }
        if (c->discover && c->n_rules == 0)
                return parse_error(p, &p->section_mark[SECTION_DISCOVER],
                                   "discover.rules: at least one rule is required");
        const struct key_spec *max = find_key("poll", "max_interval_seconds");
        if (p->key_line[max - keys]) {
                if (c->poll_max_interval_seconds < c->poll_interval_seconds)
                        return parse_error(p, &p->key_mark[max - keys],
                                           "poll.max_interval_seconds: %u is less than "
                                           "poll.interval_seconds (%u)",
                                           c->poll_max_interval_seconds, c->poll_interval_seconds);
        } else if (c->poll_max_interval_seconds < c->poll_interval_seconds) {
                c->poll_max_interval_seconds = c->poll_interval_seconds;
        }
        if (c->s3) {
                int r = check_s3(p);
                if (r < 0)
                        return r;
        }
        if (c->ca_file)
                return check_ca_file(p);
        return 0;
}

static struct config *config_new(const char *name)
{
        struct config *c = calloc(1, sizeof(*c));

        if (!c)
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                if (type_is_number(keys[i].type))
                        (void) store_number(&keys[i], c, keys[i].def);
        c->path = strdup(name);
        if (!c->path) {
                free(c);
                return NULL;
        }
        return c;
}

/*
 * Parses one YAML document from memory into a new config. *ret is set only on success;
 * reterr only on failure. Never prints.
 */
int config_parse(const char *name, const char *data, size_t len, struct config **ret,
                 struct config_error *reterr)
{
        struct parser_state p = {
                .name = name ? name : "(config)",
                .data = data ? data : "",
                .len = data ? len : 0,
                .reterr = reterr,
                .state = STATE_STREAM,
                .section = -1,
        };
        yaml_parser_t parser;
        int r;

        p.c = config_new(p.name);
        if (!p.c)
                return parse_oom(&p);
        if (!yaml_parser_initialize(&parser)) {
                config_free(p.c);
                return parse_oom(&p);
        }
        yaml_parser_set_input_string(&parser, (const unsigned char *) p.data, p.len);

        while (p.state != STATE_DONE) {
                yaml_event_t event;

                if (!yaml_parser_parse(&parser, &event)) {
                        r = yaml_problem(&p, &parser);
                        goto out;
                }
                r = on_event(&p, &event);
                /* Everything needed was copied out of the event by now. */
                yaml_event_delete(&event);
                if (r < 0)
                        goto out;
        }
        r = finish(&p);
out:
        yaml_parser_delete(&parser);
        free(p.guid_line);
        free(p.guid_slots);
        free(p.exclude_line);
        if (r < 0) {
                config_free(p.c);
                return r;
        }
        *ret = p.c;
        return 0;
}

/*
 * Reads the file at path (at most CONFIG_FILE_MAX bytes) and parses it with the path as
 * the name in messages.
 */
int config_load(const char *path, struct config **ret, struct config_error *reterr)
{
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *data = NULL;
        size_t len = 0, alloc = 0;
        struct stat st;

        /* O_NONBLOCK: a FIFO opens at once, without waiting for a writer, and is refused
         * below like a device (/dev/zero, a terminal): a config is a file, read whole. */
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return set_error(reterr, path, NULL, -errno, "cannot open the config file: %m");
        if (fstat(fd, &st) < 0)
                return set_error(reterr, path, NULL, -errno, "cannot stat the config file: %m");
        if (S_ISDIR(st.st_mode))
                return set_error(reterr, path, NULL, -EISDIR, "cannot read the config file: %m");
        if (!S_ISREG(st.st_mode))
                return set_error(reterr, path, NULL, -EINVAL,
                                 "the config file is not a regular file (%s)",
                                 S_ISFIFO(st.st_mode)   ? "a FIFO"
                                 : S_ISCHR(st.st_mode)  ? "a character device"
                                 : S_ISBLK(st.st_mode)  ? "a block device"
                                 : S_ISSOCK(st.st_mode) ? "a socket"
                                                        : "not a file");
        if (st.st_size > CONFIG_FILE_MAX)
                return set_error(reterr, path, NULL, -EFBIG,
                                 "the config file is larger than %d bytes", CONFIG_FILE_MAX);

        for (;;) {
                ssize_t n;

                if (len == alloc) {
                        size_t want = alloc ? alloc * 2 : 16384;
                        char *bigger;

                        if (alloc > CONFIG_FILE_MAX)
                                return set_error(reterr, path, NULL, -EFBIG,
                                                 "the config file is larger than %d bytes",
                                                 CONFIG_FILE_MAX);
                        bigger = realloc(data, want);
                        if (!bigger)
                                return set_error(reterr, path, NULL, -ENOMEM, "out of memory");
                        data = bigger;
                        alloc = want;
                }
                n = read(fd, data + len, alloc - len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return set_error(reterr, path, NULL, -errno,
                                         "cannot read the config file: %m");
                }
                if (n == 0)
                        break;
                len += (size_t) n;
        }
        if (len > CONFIG_FILE_MAX)
                return set_error(reterr, path, NULL, -EFBIG,
                                 "the config file is larger than %d bytes", CONFIG_FILE_MAX);
        return config_parse(path, data, len, ret, reterr);
}

/* The key lookup lives in apikey.c; this fills c->api_key and c->api_key_source from it. */
int config_resolve_api_key(struct config *c, struct config_error *reterr)
{
        const struct apikey_sources src = {
                .file = c->api_key_file,
                .env = c->api_key_env,
                .origin = c->path,
        };
        char *key, *source;
        int r;

        r = apikey_resolve(&src, &key, &source, reterr);
        if (r < 0)
                return r;
        apikey_free(c->api_key);
        free(c->api_key_source);
        c->api_key = key;
        c->api_key_source = source;
        return 0;
}

int config_resolve_s3_credentials(struct config *c, struct config_error *reterr)
{
        const struct s3cred_sources src = {
                .access_key_id_file = c->s3_access_key_id_file,
                .secret_access_key_file = c->s3_secret_access_key_file,
                .origin = c->path,
        };
        char *id, *secret, *source;
        int r;

        if (!c->s3)
                return 0;
        r = s3_credentials_resolve(&src, &id, &secret, &source, reterr);
        if (r < 0)
                return r;
        apikey_free(c->s3_access_key_id);
        apikey_free(c->s3_secret_access_key);
        free(c->s3_credentials_source);
        c->s3_access_key_id = id;
        c->s3_secret_access_key = secret;
        c->s3_credentials_source = source;
        return 0;
}

/* Frees c and everything it owns, wiping the API key first. Accepts NULL and half-built. */
void config_free(struct config *c)
{
        if (!c)
                return;
        free(c->path);
        free(c->server_url);
        free(c->api_key_file);
        free(c->api_key_env);
        free(c->ca_file);
        free(c->archive_dir);
        free(c->metrics_file);
        free(c->s3_endpoint);
        free(c->s3_bucket);
        free(c->s3_prefix);
        free(c->s3_region);
        free(c->s3_access_key_id_file);
        free(c->s3_secret_access_key_file);
        apikey_free(c->s3_access_key_id);
        apikey_free(c->s3_secret_access_key);
        free(c->s3_credentials_source);
        for (size_t i = 0; i < c->n_content; i++) {
                free(c->content[i].guid);
                free(c->content[i].name);
        }
        free(c->content);
        for (size_t i = 0; i < c->n_rules; i++) {
                free(c->rules[i].tag);
                free(c->rules[i].owner);
                free(c->rules[i].type);
        }
        free(c->rules);
        for (size_t i = 0; i < c->n_exclude; i++)
                free(c->exclude[i]);
        free(c->exclude);
        apikey_free(c->api_key);
        free(c->api_key_source);
        free(c);
}

void config_freep(struct config **c)
{
        config_free(*c);
        *c = NULL;
}

/* ---- For the operator's command (connect-jobs): settings without a config file ---- */

int config_set_server_url(struct config *c, const char *url, const char *origin,
                          struct config_error *reterr)
{
        const char *problem = url_problem(url);
        char esc[LOG_ESCAPE_MAX];
        char *copy;

        if (problem)
                return set_error(reterr, origin, NULL, -EINVAL, "\"%s\" %s",
                                 log_escape(url, esc, sizeof(esc)), problem);
        copy = url_dup_stripped(url);
        if (!copy)
                return set_error(reterr, origin, NULL, -ENOMEM, "out of memory");
        free(c->server_url);
        c->server_url = copy;
        return 0;
}

int config_from_environment(const char *server_url, struct config **ret,
                            struct config_error *reterr)
{
        const char *url = server_url ? server_url : getenv("CONNECT_SERVER");
        struct config *c;
        int r;

        c = config_new("(environment)");
        if (!c)
                return set_error(reterr, "(environment)", NULL, -ENOMEM, "out of memory");
        if (url && *url) {
                r = config_set_server_url(c, url, server_url ? "--server" : "$CONNECT_SERVER",
                                          reterr);
                if (r < 0) {
                        config_free(c);
                        return r;
                }
        }
        *ret = c;
        return 0;
}

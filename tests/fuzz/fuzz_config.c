/*
 * libFuzzer target for config_parse(): the YAML config parser and its validation table.
 *
 * Invariants checked on every input (a violation aborts, which libFuzzer reports as a crash):
 *   - the result is 0, -EINVAL or -ENOMEM; *ret is set only on success, reterr only on failure;
 *   - a message is "fuzz.yaml: ..." or "fuzz.yaml:LINE:COL: ..." with a place inside the
 *     input, has text after the prefix, and holds no control character (file text is escaped);
 *   - an accepted config has every required key, every number within its bounds, at least one
 *     content item with a valid GUID (unique without regard to case), and strings without
 *     control characters; the API key is not resolved yet.
 */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "util.h"

#define NAME "fuzz.yaml"

/* Neither assert() (gone under NDEBUG) nor a message: the stack trace says which check. */
#define CHECK(x)                                                                                   \
        do {                                                                                       \
                if (!(x))                                                                          \
                        abort();                                                                   \
        } while (0)

/* A pointer config_parse() must leave alone on failure. */
#define UNTOUCHED ((struct config *) (uintptr_t) 0x5a5a)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        (void) argc;
        (void) argv;
        /* A missing server.url would otherwise be filled from the environment. */
        (void) unsetenv("CONNECT_SERVER");
        return 0;
}

static bool has_control_chars(const char *s)
{
        for (; *s; s++)
                if ((unsigned char) *s < 0x20 || *s == 0x7f)
                        return true;
        return false;
}

/*
 * The most lines libyaml can count in the input: it breaks lines at LF, CR, NEL, LS and PS,
 * and at the end of a stream without a final line break it moves to the next line itself
 * (so "a:\nb" can fail at line 3). UTF-16 input (libyaml honours a BOM) is bounded by its
 * length instead.
 */
static size_t max_lines(const uint8_t *data, size_t size)
{
        size_t n = 2;

        if (size >= 2 &&
            ((data[0] == 0xff && data[1] == 0xfe) || (data[0] == 0xfe && data[1] == 0xff)))
                return size + 2;
        for (size_t i = 0; i < size; i++) {
                if (data[i] == '\n' || data[i] == '\r')
                        n++;
                else if (i + 1 < size && data[i] == 0xc2 && data[i + 1] == 0x85)
                        n++;
                else if (i + 2 < size && data[i] == 0xe2 && data[i + 1] == 0x80 &&
                         (data[i + 2] == 0xa8 || data[i + 2] == 0xa9))
                        n++;
        }
        return n;
}

static void check_error(const struct config_error *e, const uint8_t *data, size_t size)
{
        const char *m = e->message, *rest;
        size_t len = strnlen(m, sizeof(e->message));

        CHECK(len < sizeof(e->message));
        CHECK(!has_control_chars(m));
        CHECK(strncmp(m, NAME ":", strlen(NAME ":")) == 0);
        rest = m + strlen(NAME ":");
        if (isdigit((unsigned char) *rest)) {
                char *end;
                unsigned long line = strtoul(rest, &end, 10);
                CHECK(*end == ':');
                CHECK(isdigit((unsigned char) end[1]));
                unsigned long col = strtoul(end + 1, &end, 10);
                CHECK(*end == ':');
                CHECK(line >= 1 && line <= max_lines(data, size));
                CHECK(col >= 1 && col <= size + 1);
                rest = end + 1;
        }
        CHECK(*rest == ' ');
        /* A message cut at 512 bytes may end right after the prefix only if the name is huge. */
        CHECK(rest[1] != '\0');
}

static bool url_is_clean(const char *u)
{
        size_t len = strlen(u);

        if (strncasecmp(u, "http://", 7) != 0 && strncasecmp(u, "https://", 8) != 0)
                return false;
        if (len == 0 || u[len - 1] == '/' || strpbrk(u, "?#"))
                return false;
        for (const char *s = u; *s; s++)
                if ((unsigned char) *s <= 0x20 || *s == 0x7f)
                        return false;
        /* A host follows "://". */
        const char *host = strstr(u, "://") + 3;
        return *host != '\0' && *host != '/';
}

static bool path_is_clean(const char *p)
{
        return !p || (*p != '\0' && !has_control_chars(p));
}

static bool env_name_is_clean(const char *s)
{
        if (!s)
                return true;
        if (!(isalpha((unsigned char) *s) || *s == '_'))
                return false;
        for (s++; *s; s++)
                if (!(isalnum((unsigned char) *s) || *s == '_'))
                        return false;
        return true;
}

static void check_config(const struct config *c)
{
        CHECK(c->path && strcmp(c->path, NAME) == 0);
        CHECK(c->server_url && url_is_clean(c->server_url));
        CHECK(path_is_clean(c->api_key_file));
        CHECK(env_name_is_clean(c->api_key_env));
        CHECK(path_is_clean(c->ca_file));
        CHECK(c->timeout_seconds >= 1 && c->timeout_seconds <= 3600);
        CHECK(c->max_concurrent_requests >= 1 && c->max_concurrent_requests <= 256);
        CHECK(c->archive_dir && path_is_clean(c->archive_dir));
        CHECK(c->compression_level >= 1 && c->compression_level <= 9);
        CHECK(c->retention_days <= 36500);
        CHECK(c->min_free_mb <= 1048576);
        CHECK(c->poll_interval_seconds >= 1 && c->poll_interval_seconds <= 86400);
        CHECK(path_is_clean(c->metrics_file));
        CHECK(c->n_content >= 1 && c->content);
        for (size_t i = 0; i < c->n_content; i++) {
                const struct config_content *it = &c->content[i];
                CHECK(guid_is_valid(it->guid));
                CHECK(path_is_clean(it->name));
                for (size_t j = 0; j < i; j++)
                        CHECK(strcasecmp(c->content[j].guid, it->guid) != 0);
        }
        CHECK(!c->api_key && !c->api_key_source);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct config *c = UNTOUCHED;
        struct config_error e;
        int r;

        memset(&e, 0x5a, sizeof(e));
        e.message[sizeof(e.message) - 1] = '\0';
        r = config_parse(NAME, (const char *) data, size, &c, &e);
        if (r < 0) {
                CHECK(r == -EINVAL || r == -ENOMEM);
                CHECK(c == UNTOUCHED);
                check_error(&e, data, size);
                return 0;
        }
        CHECK(r == 0);
        CHECK(c && c != UNTOUCHED);
        /* reterr is filled only on failure. */
        CHECK((unsigned char) e.message[0] == 0x5a);
        check_config(c);
        config_free(c);
        return 0;
}

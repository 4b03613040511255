#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "testutil.h"

/* The name config_parse() puts in messages. */
#define NAME "config.yaml"

/* Three lines of a valid config: lines 1-2 server, 3-4 archive, 5-6 content. */
#define SERVER  "server:\n  url: https://connect.example.com\n"
#define ARCHIVE "archive:\n  directory: /var/lib/cja\n"
#define CONTENT "content:\n  - 38400000-8cf0-11bd-b23e-10b96e4ef00d\n"
#define MINIMAL SERVER ARCHIVE CONTENT

#define GUID1 "38400000-8cf0-11bd-b23e-10b96e4ef00d"
#define GUID2 "0b8f3a5e-2f4d-4c47-9b0e-5c1f6e2a9d11"

/* A pointer config_parse() must leave alone on failure ("ret_ is set only on success"). */
#define UNTOUCHED ((struct config *) (uintptr_t) 0x5a5a)

/* Asserts that yaml is refused with -EINVAL and exactly the message want. */
static void assert_rejected(const char *yaml, const char *want)
{
        struct config_error err = {{0}};
        struct config *c = UNTOUCHED;
        int r;

        r = config_parse(NAME, yaml, strlen(yaml), &c, &err);
        if (r != -EINVAL)
                fail_msg("expected -EINVAL for:\n%s\ngot %d (%s)", yaml, r, err.message);
        assert_ptr_equal(c, UNTOUCHED);
        assert_string_equal(err.message, want);
        /* One line, whatever the input: nothing can forge a second log line. */
        assert_null(strchr(err.message, '\n'));
}

/* Parses MINIMAL plus extra server keys (written after url, so from line 3 on). */
static struct config *parse_with_server(const char *extra)
{
        char *yaml = NULL;
        struct config *c;

        assert_true(asprintf(&yaml, "%s%s%s%s", SERVER, extra, ARCHIVE, CONTENT) > 0);
        c = parse_ok(yaml);
        free(yaml);
        return c;
}

/* ---------------------------------------------------------------------------------- */
/* Values and defaults */

static void test_config_minimal_gets_defaults(void **state)
{
        struct config *c;

        (void) state;
        c = parse_ok(MINIMAL);
        assert_string_equal(c->path, NAME);
        assert_string_equal(c->server_url, "https://connect.example.com");
        assert_null(c->api_key_file);
        assert_null(c->api_key_env);
        assert_null(c->ca_file);
        assert_true(c->verify_tls);
        assert_int_equal(c->timeout_seconds, 30);
        assert_int_equal(c->max_concurrent_requests, 8);
        assert_string_equal(c->archive_dir, "/var/lib/cja");
        assert_int_equal(c->compression_level, 6);
        assert_int_equal(c->retention_days, 0);
        assert_int_equal(c->min_free_mb, 100);
        assert_int_equal(c->poll_interval_seconds, 60);
        assert_null(c->metrics_file);
        assert_int_equal(c->n_content, 1);
        assert_string_equal(c->content[0].guid, GUID1);
        assert_null(c->content[0].name);
        assert_null(c->api_key);
        assert_null(c->api_key_source);
        config_free(c);
}

static void test_config_reads_every_key(void **state)
{
        struct tmpdir *fx = *state;
        struct config *c;
        char *ca, *yaml = NULL;

        /* The CA file must exist (it is checked at load). */
        ca = write_text(fx->dir, "internal-ca.pem", "-----BEGIN CERTIFICATE-----\n", 0644);
        assert_true(asprintf(&yaml,
                             "# every key, none at its default\n"
                             "server:\n"
                             "  url: http://connect.internal:3939\n"
                             "  api_key_file: /etc/cja/api-key\n"
                             "  api_key_env: MY_CONNECT_KEY\n"
                             "  ca_file: %s\n"
                             "  verify_tls: false\n"
                             "  timeout_seconds: 5\n"
                             "  max_concurrent_requests: 32\n"
                             "archive:\n"
                             "  directory: /srv/archive\n"
                             "  compression_level: 9\n"
                             "  retention_days: 365\n"
                             "  min_free_mb: 2048\n"
                             "poll:\n"
                             "  interval_seconds: 300\n"
                             "metrics_file: /var/lib/prometheus/cja.prom\n"
                             "content:\n"
                             "  - " GUID1 "\n",
                             ca) > 0);
        c = parse_ok(yaml);
        assert_string_equal(c->server_url, "http://connect.internal:3939");
        assert_string_equal(c->api_key_file, "/etc/cja/api-key");
        assert_string_equal(c->api_key_env, "MY_CONNECT_KEY");
        assert_string_equal(c->ca_file, ca);
        assert_false(c->verify_tls);
        assert_int_equal(c->timeout_seconds, 5);
        assert_int_equal(c->max_concurrent_requests, 32);
        assert_string_equal(c->archive_dir, "/srv/archive");
        assert_int_equal(c->compression_level, 9);
        assert_int_equal(c->retention_days, 365);
        assert_int_equal(c->min_free_mb, 2048);
        assert_int_equal(c->poll_interval_seconds, 300);
        assert_string_equal(c->metrics_file, "/var/lib/prometheus/cja.prom");
        config_free(c);
        free(yaml);
        free(ca);
}

static void test_config_content_both_forms(void **state)
{
        struct config *c;

        (void) state;
        c = parse_ok(SERVER ARCHIVE "content:\n"
                                    "  - " GUID1 "\n"
                                    "  - guid: " GUID2 "\n"
                                    "    name: sales-dashboard\n"
                                    "  - guid: 'AAAAAAAA-8CF0-11BD-B23E-10B96E4EF00D'\n"
                                    "  - {name: \"weekly report\", guid: "
                                    "bbbbbbbb-8cf0-11bd-b23e-10b96e4ef00d}\n"
                                    "  - \"cccccccc-8cf0-11bd-b23e-10b96e4ef00d\"\n");
        assert_int_equal(c->n_content, 5);
        assert_string_equal(c->content[0].guid, GUID1);
        assert_null(c->content[0].name);
        assert_string_equal(c->content[1].guid, GUID2);
        assert_string_equal(c->content[1].name, "sales-dashboard");
        /* The GUID is kept as written. */
        assert_string_equal(c->content[2].guid, "AAAAAAAA-8CF0-11BD-B23E-10B96E4EF00D");
        assert_null(c->content[2].name);
        assert_string_equal(c->content[3].guid, "bbbbbbbb-8cf0-11bd-b23e-10b96e4ef00d");
        assert_string_equal(c->content[3].name, "weekly report");
        assert_string_equal(c->content[4].guid, "cccccccc-8cf0-11bd-b23e-10b96e4ef00d");
        config_free(c);
}

static void test_config_flow_style(void **state)
{
        struct config *c;

        (void) state;
        c = parse_ok("{server: {url: 'https://c.example.com'}, archive: {directory: /a},\n"
                     " content: [" GUID1 ", {guid: " GUID2 "}]}\n");
        assert_string_equal(c->server_url, "https://c.example.com");
        assert_string_equal(c->archive_dir, "/a");
        assert_int_equal(c->n_content, 2);
        config_free(c);
}

static void test_config_null_values_keep_defaults(void **state)
{
        struct config *c;

        (void) state;
        c = parse_ok("server:\n"
                     "  url: https://connect.example.com\n"
                     "  ca_file: ~\n"
                     "  api_key_env: null\n"
                     "  timeout_seconds:\n"
                     "  verify_tls: NULL\n"
                     "poll:\n"
                     "archive:\n"
                     "  directory: /d\n"
                     "metrics_file:\n"
                     "content:\n"
                     "  - guid: " GUID1 "\n"
                     "    name: ~\n");
        assert_null(c->ca_file);
        assert_null(c->api_key_env);
        assert_int_equal(c->timeout_seconds, 30);
        assert_true(c->verify_tls);
        assert_int_equal(c->poll_interval_seconds, 60);
        assert_null(c->metrics_file);
        assert_null(c->content[0].name);
        config_free(c);
}

static void test_config_quoted_numbers_and_booleans_are_read(void **state)
{
        struct config *c;

        (void) state;
        c = parse_with_server("  timeout_seconds: \"45\"\n  verify_tls: 'false'\n");
        assert_int_equal(c->timeout_seconds, 45);
        assert_false(c->verify_tls);
        config_free(c);
}

static void test_config_booleans(void **state)
{
        static const struct {
                const char *text;
                bool value;
        } cases[] = {
                {"true", true},   {"True", true},   {"TRUE", true}, {"yes", true},
                {"Yes", true},    {"on", true},     {"ON", true},   {"false", false},
                {"False", false}, {"FALSE", false}, {"no", false},  {"NO", false},
                {"off", false},   {"Off", false},
        };

        (void) state;
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                char *extra = NULL;
                struct config *c;

                assert_true(asprintf(&extra, "  verify_tls: %s\n", cases[i].text) > 0);
                c = parse_with_server(extra);
                assert_int_equal(c->verify_tls, cases[i].value);
                config_free(c);
                free(extra);
        }
}

static void test_config_rejects_bad_boolean(void **state)
{
        (void) state;
        assert_rejected(SERVER "  verify_tls: maybe\n" ARCHIVE CONTENT,
                        NAME ":3:15: server.verify_tls: expected true or false, got \"maybe\"");
        assert_rejected(SERVER "  verify_tls: 1\n" ARCHIVE CONTENT,
                        NAME ":3:15: server.verify_tls: expected true or false, got \"1\"");
}

static void test_config_bounds_are_inclusive(void **state)
{
        struct config *c;

        (void) state;
        c = parse_ok("server:\n"
                     "  url: https://connect.example.com\n"
                     "  timeout_seconds: 1\n"
                     "  max_concurrent_requests: 1\n"
                     "archive:\n"
                     "  directory: /d\n"
                     "  compression_level: 1\n"
                     "  retention_days: 0\n"
                     "  min_free_mb: 0\n"
                     "poll:\n"
                     "  interval_seconds: 1\n" CONTENT);
        assert_int_equal(c->timeout_seconds, 1);
        assert_int_equal(c->max_concurrent_requests, 1);
        assert_int_equal(c->compression_level, 1);
        assert_int_equal(c->retention_days, 0);
        assert_int_equal(c->min_free_mb, 0);
        assert_int_equal(c->poll_interval_seconds, 1);
        config_free(c);

        c = parse_ok("server:\n"
                     "  url: https://connect.example.com\n"
                     "  timeout_seconds: 3600\n"
                     "  max_concurrent_requests: 256\n"
                     "archive:\n"
                     "  directory: /d\n"
                     "  compression_level: 9\n"
                     "  retention_days: 36500\n"
                     "  min_free_mb: 1048576\n"
                     "poll:\n"
                     "  interval_seconds: 86400\n" CONTENT);
        assert_int_equal(c->timeout_seconds, 3600);
        assert_int_equal(c->max_concurrent_requests, 256);
        assert_int_equal(c->compression_level, 9);
        assert_int_equal(c->retention_days, 36500);
        assert_int_equal(c->min_free_mb, 1048576);
        assert_int_equal(c->poll_interval_seconds, 86400);
        config_free(c);
}

/* ---------------------------------------------------------------------------------- */
/* server.url and $CONNECT_SERVER */

static void test_config_url_trailing_slashes_stripped(void **state)
{
        struct config *c;

        (void) state;
        c = parse_ok("server:\n  url: https://connect.example.com///\n" ARCHIVE CONTENT);
        assert_string_equal(c->server_url, "https://connect.example.com");
        config_free(c);
        c = parse_ok("server:\n  url: HTTP://h:3939/rsconnect/\n" ARCHIVE CONTENT);
        assert_string_equal(c->server_url, "HTTP://h:3939/rsconnect");
        config_free(c);
}

static void test_config_rejects_bad_url(void **state)
{
        (void) state;
        assert_rejected("server:\n  url: ftp://connect.example.com\n" ARCHIVE CONTENT,
                        NAME ":2:8: server.url: \"ftp://connect.example.com\" is not an http:// "
                             "or https:// URL");
        assert_rejected("server:\n  url: connect.example.com\n" ARCHIVE CONTENT,
                        NAME ":2:8: server.url: \"connect.example.com\" is not an http:// or "
                             "https:// URL");
        assert_rejected("server:\n  url: https://\n" ARCHIVE CONTENT,
                        NAME ":2:8: server.url: \"https://\" has no host");
        assert_rejected("server:\n  url: https:///path\n" ARCHIVE CONTENT,
                        NAME ":2:8: server.url: \"https:///path\" has no host");
        assert_rejected("server:\n  url: \"https://a b\"\n" ARCHIVE CONTENT,
                        NAME ":2:8: server.url: \"https://a b\" contains whitespace or control "
                             "characters");
        assert_rejected("server:\n  url: https://h/?x=1\n" ARCHIVE CONTENT,
                        NAME ":2:8: server.url: \"https://h/?x=1\" must not have a query or "
                             "fragment");
        assert_rejected("server:\n  url: [https://h]\n" ARCHIVE CONTENT,
                        NAME ":2:8: server.url: expected a URL, got a sequence");
}

static void test_config_url_from_connect_server(void **state)
{
        struct config *c;

        (void) state;
        assert_int_equal(setenv("CONNECT_SERVER", "http://env.example.com:3939/", 1), 0);
        c = parse_ok(ARCHIVE CONTENT);
        assert_string_equal(c->server_url, "http://env.example.com:3939");
        config_free(c);
        /* A server section without url falls back too. */
        c = parse_ok("server:\n  timeout_seconds: 5\n" ARCHIVE CONTENT);
        assert_string_equal(c->server_url, "http://env.example.com:3939");
        config_free(c);
        /* null is "not set". */
        c = parse_ok("server:\n  url: ~\n" ARCHIVE CONTENT);
        assert_string_equal(c->server_url, "http://env.example.com:3939");
        config_free(c);
}

static void test_config_url_in_file_beats_connect_server(void **state)
{
        struct config *c;

        (void) state;
        assert_int_equal(setenv("CONNECT_SERVER", "http://env.example.com", 1), 0);
        c = parse_ok(MINIMAL);
        assert_string_equal(c->server_url, "https://connect.example.com");
        config_free(c);
}

static void test_config_rejects_bad_connect_server(void **state)
{
        (void) state;
        assert_int_equal(setenv("CONNECT_SERVER", "connect.example.com\n<3>forged", 1), 0);
        assert_rejected(ARCHIVE CONTENT, NAME ": $CONNECT_SERVER: \"connect.example.com\\x0a<3>"
                                              "forged\" is not an http:// or https:// URL");
}

/* Credentials in the URL are refused, and the message shows neither them nor the URL. */
static void test_config_rejects_url_with_credentials(void **state)
{
        static const char *const urls[] = {
                "https://archiver:hunter2@connect.example.com",
                "https://archiver@connect.example.com/",
                "http://archiver:hunter2@10.0.0.1:3939/rsconnect",
                "https://:hunter2@connect.example.com",
        };

        (void) state;
        for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
                char *yaml = NULL;

                assert_true(asprintf(&yaml, "server:\n  url: %s\n" ARCHIVE CONTENT, urls[i]) > 0);
                assert_rejected(yaml, NAME ":2:8: server.url: credentials in the URL "
                                           "(user:password@) are refused and not shown; the API "
                                           "key goes in server.api_key_file");
                free(yaml);
        }
        /* Even where the URL is otherwise wrong, nothing of it is quoted. */
        assert_rejected("server:\n  url: ftp://u:hunter2@h\n" ARCHIVE CONTENT,
                        NAME ":2:8: server.url: credentials in the URL (user:password@) are "
                             "refused and not shown; the API key goes in server.api_key_file");
}

static void test_config_url_with_at_in_path_is_fine(void **state)
{
        struct config *c;

        (void) state;
        c = parse_ok("server:\n  url: https://connect.example.com/team@x\n" ARCHIVE CONTENT);
        assert_string_equal(c->server_url, "https://connect.example.com/team@x");
        config_free(c);
}

static void test_config_rejects_connect_server_with_credentials(void **state)
{
        struct config_error err = {{0}};
        struct config *c = NULL;

        (void) state;
        assert_int_equal(setenv("CONNECT_SERVER", "https://me:hunter2@connect.example.com", 1), 0);
        assert_rejected(ARCHIVE CONTENT, NAME ": $CONNECT_SERVER: credentials in the URL "
                                              "(user:password@) are refused and not shown; the "
                                              "API key goes in server.api_key_file");
        assert_int_equal(config_parse(NAME, ARCHIVE CONTENT, strlen(ARCHIVE CONTENT), &c, &err),
                         -EINVAL);
        assert_null(strstr(err.message, "hunter2"));
}

static void test_config_rejects_url_with_api_path(void **state)
{
        static const struct {
                const char *url, *message;
        } cases[] = {
                {"https://connect.example.com/__api__",
                 NAME ":2:8: server.url: \"https://connect.example.com/__api__\" contains "
                      "/__api__: give the server's URL without /__api__"},
                {"https://connect.example.com/__api__/",
                 NAME ":2:8: server.url: \"https://connect.example.com/__api__/\" contains "
                      "/__api__: give the server's URL without /__api__"},
                {"https://h/rsconnect/__api__",
                 NAME ":2:8: server.url: \"https://h/rsconnect/__api__\" contains /__api__: give "
                      "the server's URL without /__api__"},
                {"https://h/__api__/v1",
                 NAME ":2:8: server.url: \"https://h/__api__/v1\" contains /__api__: give the "
                      "server's URL without /__api__"},
        };
        struct config *c;

        (void) state;
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                char *yaml = NULL;

                assert_true(asprintf(&yaml, "server:\n  url: %s\n" ARCHIVE CONTENT, cases[i].url) >
                            0);
                assert_rejected(yaml, cases[i].message);
                free(yaml);
        }
        /* The same from the environment. */
        assert_int_equal(setenv("CONNECT_SERVER", "https://h/__api__", 1), 0);
        assert_rejected(ARCHIVE CONTENT, NAME ": $CONNECT_SERVER: \"https://h/__api__\" contains "
                                              "/__api__: give the server's URL without /__api__");
        /* Only a whole segment counts. */
        c = parse_ok("server:\n  url: https://h/__api__x/y__api__\n" ARCHIVE CONTENT);
        assert_string_equal(c->server_url, "https://h/__api__x/y__api__");
        config_free(c);
}

/* ---------------------------------------------------------------------------------- */
/* server.ca_file is checked at load */

/* Parses MINIMAL with server.ca_file (line 3, column 3) set to path. */
static int parse_with_ca_file(const char *path, struct config_error *err)
{
        struct config *c = UNTOUCHED;
        char *yaml = NULL;
        int r;

        assert_true(asprintf(&yaml, SERVER "  ca_file: \"%s\"\n" ARCHIVE CONTENT, path) > 0);
        r = config_parse(NAME, yaml, strlen(yaml), &c, err);
        if (r >= 0)
                config_free(c);
        else
                assert_ptr_equal(c, UNTOUCHED);
        free(yaml);
        return r;
}

static void test_config_ca_file_missing_is_refused(void **state)
{
        struct tmpdir *fx = *state;
        struct config_error err = {{0}};
        char *path = NULL, *want = NULL;

        assert_true(asprintf(&path, "%s/no-such-ca.pem", fx->dir) > 0);
        assert_int_equal(parse_with_ca_file(path, &err), -EINVAL);
        assert_true(asprintf(&want,
                             NAME ":3:3: server.ca_file: cannot read %s: No such file or directory",
                             path) > 0);
        assert_string_equal(err.message, want);
        free(want);
        free(path);
}

static void test_config_ca_file_not_a_file_or_empty_is_refused(void **state)
{
        struct tmpdir *fx = *state;
        struct config_error err = {{0}};
        char *path, *want = NULL;

        assert_int_equal(parse_with_ca_file(fx->dir, &err), -EINVAL);
        assert_true(asprintf(&want, NAME ":3:3: server.ca_file: %s is not a regular file",
                             fx->dir) > 0);
        assert_string_equal(err.message, want);
        free(want);

        path = write_text(fx->dir, "empty.pem", "", 0644);
        assert_int_equal(parse_with_ca_file(path, &err), -EINVAL);
        assert_true(asprintf(&want, NAME ":3:3: server.ca_file: %s is empty", path) > 0);
        assert_string_equal(err.message, want);
        free(want);

        /* A FIFO is refused without blocking on it. */
        free(path);
        assert_true(asprintf(&path, "%s/ca.fifo", fx->dir) > 0);
        assert_int_equal(mkfifo(path, 0644), 0);
        assert_int_equal(parse_with_ca_file(path, &err), -EINVAL);
        assert_true(asprintf(&want, NAME ":3:3: server.ca_file: %s is not a regular file", path) >
                    0);
        assert_string_equal(err.message, want);
        free(want);
        free(path);
}

static void test_config_ca_file_unreadable_is_refused(void **state)
{
        struct tmpdir *fx = *state;
        struct config_error err = {{0}};
        char *path, *want = NULL;

        if (geteuid() == 0)
                skip(); /* root reads a mode-000 file anyway */
        path = write_text(fx->dir, "ca.pem", "-----BEGIN CERTIFICATE-----\n", 0000);
        assert_int_equal(parse_with_ca_file(path, &err), -EINVAL);
        assert_true(asprintf(&want, NAME ":3:3: server.ca_file: cannot read %s: Permission denied",
                             path) > 0);
        assert_string_equal(err.message, want);
        free(want);
        free(path);
}

static void test_config_ca_file_readable_is_taken(void **state)
{
        struct tmpdir *fx = *state;
        struct config_error err = {{0}};
        char *path;

        path = write_text(fx->dir, "ca.pem", "-----BEGIN CERTIFICATE-----\n", 0644);
        assert_int_equal(parse_with_ca_file(path, &err), 0);
        free(path);
}

static void test_config_rejects_missing_url(void **state)
{
        (void) state;
        assert_rejected(ARCHIVE CONTENT, NAME ": server.url is required (or set $CONNECT_SERVER)");
        /* With a server section, the message points at it. */
        assert_rejected(ARCHIVE "server:\n  timeout_seconds: 5\n" CONTENT,
                        NAME ":3:1: server.url is required (or set $CONNECT_SERVER)");
        /* An empty $CONNECT_SERVER is not set. */
        assert_int_equal(setenv("CONNECT_SERVER", "", 1), 0);
        assert_rejected(ARCHIVE CONTENT, NAME ": server.url is required (or set $CONNECT_SERVER)");
}

/* ---------------------------------------------------------------------------------- */
/* Required keys */

static void test_config_rejects_missing_archive_directory(void **state)
{
        (void) state;
        assert_rejected(SERVER CONTENT, NAME ": archive.directory is required");
        assert_rejected(SERVER "archive:\n  compression_level: 3\n" CONTENT,
                        NAME ":3:1: archive.directory is required");
}

static void test_config_rejects_missing_content(void **state)
{
        (void) state;
        assert_rejected(SERVER ARCHIVE, NAME ": content is required");
}

static void test_config_rejects_empty_content(void **state)
{
        (void) state;
        assert_rejected(
                SERVER ARCHIVE "content: []\n", NAME
                ":5:10: content: at least one content GUID is required (or a discover: section)");
        assert_rejected(
                SERVER ARCHIVE "content:\n", NAME
                ":5:9: content: at least one content GUID is required (or a discover: section)");
        assert_rejected(
                SERVER ARCHIVE "content: ~\npoll: {}\n", NAME
                ":5:10: content: at least one content GUID is required (or a discover: section)");
}

/* ---------------------------------------------------------------------------------- */
/* Unknown keys, wrong types, ranges */

static void test_config_rejects_unknown_key_in_section(void **state)
{
        (void) state;
        assert_rejected(SERVER "  timeot_seconds: 5\n" ARCHIVE CONTENT,
                        NAME ":3:3: unknown key \"timeot_seconds\" in server; allowed: url, "
                             "api_key_file, api_key_env, ca_file, verify_tls, timeout_seconds, "
                             "max_concurrent_requests");
        assert_rejected(SERVER ARCHIVE "  colour: blue\n" CONTENT,
                        NAME ":5:3: unknown key \"colour\" in archive; allowed: directory, "
                             "compression_level, retention_days, min_free_mb, s3");
        assert_rejected(SERVER ARCHIVE CONTENT "poll:\n  interval: 5\n",
                        NAME ":8:3: unknown key \"interval\" in poll; allowed: interval_seconds, "
                             "max_interval_seconds");
}

static void test_config_rejects_unknown_top_level_key(void **state)
{
        (void) state;
        assert_rejected(MINIMAL "colour: blue\n",
                        NAME ":7:1: unknown top-level key \"colour\"; allowed: server, archive, "
                             "poll, discover, metrics_file, content");
}

static void test_config_unknown_key_hints_its_place(void **state)
{
        (void) state;
        assert_rejected("url: https://connect.example.com\n" ARCHIVE CONTENT,
                        NAME ":1:1: unknown top-level key \"url\"; allowed: server, archive, "
                             "poll, discover, metrics_file, content; did you mean server.url?");
        assert_rejected(SERVER ARCHIVE "  interval_seconds: 5\n" CONTENT,
                        NAME ":5:3: unknown key \"interval_seconds\" in archive; allowed: "
                             "directory, compression_level, retention_days, min_free_mb, s3; did "
                             "you mean poll.interval_seconds?");
        assert_rejected(SERVER "  metrics_file: /m\n" ARCHIVE CONTENT,
                        NAME ":3:3: unknown key \"metrics_file\" in server; allowed: url, "
                             "api_key_file, api_key_env, ca_file, verify_tls, timeout_seconds, "
                             "max_concurrent_requests; did you mean metrics_file?");
        assert_rejected("server:\n  url: https://connect.example.com\n  poll:\n    "
                        "interval_seconds: 5\n" ARCHIVE CONTENT,
                        NAME ":3:3: unknown key \"poll\" in server; allowed: url, api_key_file, "
                             "api_key_env, ca_file, verify_tls, timeout_seconds, "
                             "max_concurrent_requests; poll is a top-level section");
}

static void test_config_rejects_unknown_key_in_content_item(void **state)
{
        (void) state;
        assert_rejected(SERVER ARCHIVE "content:\n  - guid: " GUID1 "\n    nmae: x\n",
                        NAME ":7:5: unknown key \"nmae\" in a content item; allowed: guid, name");
}

static void test_config_rejects_non_integer(void **state)
{
        static const char *const bad[] = {"abc", "1.5", "0x10",   "+5",  "1_000",
                                          "30s", "1e3", "\" 5\"", ".inf"};

        (void) state;
        assert_rejected(SERVER "  timeout_seconds: abc\n" ARCHIVE CONTENT,
                        NAME ":3:20: server.timeout_seconds: expected an integer, got \"abc\"");
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                struct config_error err = {{0}};
                struct config *c = UNTOUCHED;
                char *yaml = NULL;

                assert_true(asprintf(&yaml, MINIMAL "poll:\n  interval_seconds: %s\n", bad[i]) > 0);
                assert_int_equal(config_parse(NAME, yaml, strlen(yaml), &c, &err), -EINVAL);
                assert_ptr_equal(c, UNTOUCHED);
                assert_non_null(strstr(err.message, NAME ":8:21: poll.interval_seconds: expected "
                                                         "an integer, got \""));
                free(yaml);
        }
}

static void test_config_rejects_leading_zeros(void **state)
{
        (void) state;
        /* YAML 1.1 reads 010 as octal 8: refuse rather than guess. */
        assert_rejected(SERVER ARCHIVE "  retention_days: 010\n" CONTENT,
                        NAME ":5:19: archive.retention_days: expected a decimal integer without "
                             "leading zeros, got \"010\"");
}

static void test_config_rejects_out_of_range(void **state)
{
        (void) state;
        assert_rejected(SERVER "  timeout_seconds: 0\n" ARCHIVE CONTENT,
                        NAME ":3:20: server.timeout_seconds: 0 is out of range (1..3600)");
        assert_rejected(SERVER "  timeout_seconds: 3601\n" ARCHIVE CONTENT,
                        NAME ":3:20: server.timeout_seconds: 3601 is out of range (1..3600)");
        assert_rejected(SERVER "  max_concurrent_requests: 257\n" ARCHIVE CONTENT,
                        NAME ":3:28: server.max_concurrent_requests: 257 is out of range "
                             "(1..256)");
        assert_rejected(SERVER ARCHIVE "  compression_level: 10\n" CONTENT,
                        NAME ":5:22: archive.compression_level: 10 is out of range (1..9)");
        assert_rejected(SERVER ARCHIVE "  compression_level: 0\n" CONTENT,
                        NAME ":5:22: archive.compression_level: 0 is out of range (1..9)");
        assert_rejected(SERVER ARCHIVE "  retention_days: 36501\n" CONTENT,
                        NAME ":5:19: archive.retention_days: 36501 is out of range (0..36500)");
        assert_rejected(SERVER ARCHIVE "  min_free_mb: 1048577\n" CONTENT,
                        NAME ":5:16: archive.min_free_mb: 1048577 is out of range (0..1048576)");
        assert_rejected(MINIMAL "poll:\n  interval_seconds: 0\n",
                        NAME ":8:21: poll.interval_seconds: 0 is out of range (1..86400)");
        assert_rejected(MINIMAL "poll:\n  interval_seconds: 86401\n",
                        NAME ":8:21: poll.interval_seconds: 86401 is out of range (1..86400)");
}

static void test_config_rejects_negative_numbers(void **state)
{
        (void) state;
        assert_rejected(SERVER ARCHIVE "  retention_days: -1\n" CONTENT,
                        NAME ":5:19: archive.retention_days: -1 is out of range (0..36500)");
        assert_rejected(SERVER "  timeout_seconds: -30\n" ARCHIVE CONTENT,
                        NAME ":3:20: server.timeout_seconds: -30 is out of range (1..3600)");
}

static void test_config_rejects_overflow(void **state)
{
        (void) state;
        /* 2^64 and far beyond: no wrap-around into the valid range. */
        assert_rejected(SERVER ARCHIVE "  min_free_mb: 18446744073709551616\n" CONTENT,
                        NAME ":5:16: archive.min_free_mb: 18446744073709551616 is out of range "
                             "(0..1048576)");
        assert_rejected(SERVER "  timeout_seconds: 4294967326\n" ARCHIVE CONTENT,
                        NAME ":3:20: server.timeout_seconds: 4294967326 is out of range "
                             "(1..3600)");
        assert_rejected(SERVER "  timeout_seconds: 99999999999999999999999999\n" ARCHIVE CONTENT,
                        NAME ":3:20: server.timeout_seconds: 99999999999999999999999999 is out "
                             "of range (1..3600)");
}

static void test_config_rejects_wrong_node_kind(void **state)
{
        (void) state;
        assert_rejected("server: https://connect.example.com\n" ARCHIVE CONTENT,
                        NAME ":1:9: server: expected a mapping, got "
                             "\"https://connect.example.com\"");
        assert_rejected(SERVER "archive:\n  - /d\n" CONTENT,
                        NAME ":4:3: archive: expected a mapping, got a sequence");
        assert_rejected(SERVER "  timeout_seconds: [1]\n" ARCHIVE CONTENT,
                        NAME ":3:20: server.timeout_seconds: expected an integer, got a "
                             "sequence");
        assert_rejected(SERVER "  verify_tls: {a: b}\n" ARCHIVE CONTENT,
                        NAME ":3:15: server.verify_tls: expected true or false, got a mapping");
        assert_rejected(MINIMAL "metrics_file: [a, b]\n",
                        NAME ":7:15: metrics_file: expected a file name, got a sequence");
        assert_rejected(SERVER ARCHIVE "content: " GUID1 "\n", NAME
                        ":5:10: content: expected a sequence of content GUIDs, got \"" GUID1 "\"");
        assert_rejected(SERVER ARCHIVE "content:\n  guid: " GUID1 "\n",
                        NAME ":6:3: content: expected a sequence of content GUIDs, got a "
                             "mapping");
        assert_rejected(SERVER ARCHIVE "content:\n  - [" GUID1 "]\n",
                        NAME ":6:5: content item: expected a GUID or a mapping with guid and "
                             "name, got a sequence");
        assert_rejected(SERVER ARCHIVE "content:\n  - guid: [" GUID1 "]\n",
                        NAME ":6:11: content item guid: expected a GUID, got a sequence");
        assert_rejected(SERVER ARCHIVE "content:\n  - guid: " GUID1 "\n    name: {a: b}\n",
                        NAME ":7:11: content item name: expected a string, got a mapping");
}

static void test_config_rejects_non_scalar_key(void **state)
{
        (void) state;
        assert_rejected("? [a, b]\n: c\n", NAME ":1:3: expected a key, got a sequence");
        assert_rejected("server:\n  ? {a: b}\n  : c\n", NAME ":2:5: expected a key, got a mapping");
}

static void test_config_rejects_bad_strings(void **state)
{
        (void) state;
        assert_rejected(SERVER "archive:\n  directory: \"\"\n" CONTENT,
                        NAME ":4:14: archive.directory: must not be empty");
        assert_rejected(SERVER "archive:\n  directory: \"/var/\\tlib\"\n" CONTENT,
                        NAME ":4:14: archive.directory: \"/var/\\x09lib\" contains control "
                             "characters");
        assert_rejected(SERVER "  api_key_env: 1KEY\n" ARCHIVE CONTENT,
                        NAME ":3:16: server.api_key_env: \"1KEY\" is not an environment variable "
                             "name");
        assert_rejected(SERVER "  api_key_env: MY-KEY\n" ARCHIVE CONTENT,
                        NAME ":3:16: server.api_key_env: \"MY-KEY\" is not an environment "
                             "variable name");
        assert_rejected(SERVER ARCHIVE "content:\n  - guid: " GUID1 "\n    name: \"\"\n",
                        NAME ":7:11: content item name: must not be empty");
        assert_rejected(SERVER ARCHIVE "content:\n  - guid: " GUID1 "\n    name: \"a\\nb\"\n",
                        NAME ":7:11: content item name: \"a\\x0ab\" contains control characters");
}

static void test_config_rejects_nul_character(void **state)
{
        (void) state;
        assert_rejected("server:\n  url: \"https://a\\0.example.com\"\n" ARCHIVE CONTENT,
                        NAME ":2:8: NUL characters are not allowed in values");
}

/* ---------------------------------------------------------------------------------- */
/* Duplicates */

static void test_config_rejects_duplicate_key(void **state)
{
        (void) state;
        assert_rejected(SERVER "  url: https://other.example.com\n" ARCHIVE CONTENT,
                        NAME ":3:3: duplicate key server.url (first at line 2)");
        assert_rejected(SERVER ARCHIVE "  min_free_mb: 1\n  min_free_mb: 2\n" CONTENT,
                        NAME ":6:3: duplicate key archive.min_free_mb (first at line 5)");
        assert_rejected(MINIMAL "metrics_file: /a\nmetrics_file: /b\n",
                        NAME ":8:1: duplicate key metrics_file (first at line 7)");
        assert_rejected(MINIMAL CONTENT, NAME ":7:1: duplicate key content (first at line 5)");
}

static void test_config_rejects_duplicate_section(void **state)
{
        (void) state;
        /* Two server sections would otherwise silently merge or override. */
        assert_rejected(MINIMAL "server:\n  timeout_seconds: 5\n",
                        NAME ":7:1: duplicate key server (first at line 1)");
        /* Even a null one. */
        assert_rejected("poll:\n" MINIMAL "poll:\n",
                        NAME ":8:1: duplicate key poll (first at line 1)");
}

static void test_config_rejects_duplicate_key_in_content_item(void **state)
{
        (void) state;
        assert_rejected(SERVER ARCHIVE "content:\n  - guid: " GUID1 "\n    guid: " GUID2 "\n",
                        NAME ":7:5: duplicate key guid in a content item (first at line 6)");
        assert_rejected(SERVER ARCHIVE "content:\n  - name: a\n    guid: " GUID1 "\n    name: b\n",
                        NAME ":8:5: duplicate key name in a content item (first at line 6)");
}

static void test_config_rejects_duplicate_guid(void **state)
{
        (void) state;
        /* Case does not make a GUID different. */
        assert_rejected(MINIMAL "  - 38400000-8CF0-11BD-B23E-10B96E4EF00D\n",
                        NAME ":7:5: duplicate content GUID 38400000-8CF0-11BD-B23E-10B96E4EF00D "
                             "(first at line 6)");
        /* Nor does the form of the item. */
        assert_rejected(MINIMAL "  - guid: " GUID2 "\n    name: a\n  - name: b\n    guid: " GUID1
                                "\n",
                        NAME ":10:11: duplicate content GUID " GUID1 " (first at line 6)");
}

/* ---------------------------------------------------------------------------------- */
/* Content items */

static void test_config_rejects_invalid_guid(void **state)
{
        (void) state;
        assert_rejected(MINIMAL "  - not-a-guid\n",
                        NAME ":7:5: \"not-a-guid\" is not a content GUID");
        assert_rejected(SERVER ARCHIVE "content:\n  - guid: 38400000-8cf0-11bd-b23e-10b96e4ef00\n",
                        NAME ":6:11: \"38400000-8cf0-11bd-b23e-10b96e4ef00\" is not a content "
                             "GUID");
        /* Path tricks are not GUIDs either, and are escaped in the message. */
        assert_rejected(SERVER ARCHIVE "content:\n  - \"../../etc/passwd\\e[2J\"\n",
                        NAME ":6:5: \"../../etc/passwd\\x1b[2J\" is not a content GUID");
        assert_rejected(SERVER ARCHIVE "content:\n  -\n", NAME ":6:4: \"\" is not a content GUID");
}

static void test_config_rejects_content_item_without_guid(void **state)
{
        (void) state;
        assert_rejected(MINIMAL "  - name: orphan\n", NAME ":7:5: content item has no guid");
        assert_rejected(MINIMAL "  - {}\n", NAME ":7:5: content item has no guid");
}

/* ---------------------------------------------------------------------------------- */
/* YAML-level problems */

static void test_config_rejects_malformed_yaml(void **state)
{
        (void) state;
        /* A key without its colon inside a mapping. */
        assert_rejected("server:\n  url: https://connect.example.com\n  timeout_seconds\n" ARCHIVE,
                        NAME ":4:1: could not find expected ':' (while scanning a simple key at "
                             "line 3, column 3)");
        /* An unclosed quote. */
        assert_rejected("server:\n  url: \"https://connect.example.com\n" ARCHIVE CONTENT,
                        NAME ":7:1: found unexpected end of stream (while scanning a quoted "
                             "scalar at line 2, column 8)");
        /* A key indented less than its siblings. */
        assert_rejected("server:\n  url: https://connect.example.com\n archive: {}\n",
                        NAME ":3:2: did not find expected key (while parsing a block mapping at "
                             "line 1, column 1)");
        /* A sequence entry inside a mapping. */
        assert_rejected("server:\n  url: https://connect.example.com\n  - a\n",
                        NAME ":3:3: did not find expected key (while parsing a block mapping at "
                             "line 2, column 3)");
        /* A tab where indentation is expected. */
        assert_rejected("server:\n\turl: https://connect.example.com\n",
                        NAME ":2:1: found character that cannot start any token (while "
                             "scanning for the next token at line 2, column 1)");
}

static void test_config_rejects_invalid_utf8(void **state)
{
        (void) state;
        /* A reader error has no mark in libyaml; the place is computed from the offset. */
        assert_rejected("server:\n  url: https://h\xff\n",
                        NAME ":2:17: invalid leading UTF-8 octet (byte 0xff)");
        assert_rejected("# caf\xc3\xa9\nserver:\n  url: \x01\n",
                        NAME ":3:8: control characters are not allowed (byte 0x01)");
}

static void test_config_rejects_anchors_and_aliases(void **state)
{
        (void) state;
        assert_rejected(SERVER "archive: &a\n  directory: /d\npoll: *a\n" CONTENT,
                        NAME ":3:10: YAML anchors (&a) are not supported");
        assert_rejected(SERVER ARCHIVE "poll:\n  interval_seconds: *n\n" CONTENT,
                        NAME ":6:21: YAML aliases (*n) are not supported");
        /* A merge key is no key of ours: it is refused before its alias is even read. */
        assert_rejected(SERVER ARCHIVE "poll:\n  <<: *defaults\n" CONTENT,
                        NAME ":6:3: unknown key \"<<\" in poll; allowed: interval_seconds, "
                             "max_interval_seconds");
}

static void test_config_rejects_tags(void **state)
{
        (void) state;
        assert_rejected(SERVER ARCHIVE "poll:\n  interval_seconds: !!int 5\n" CONTENT,
                        NAME ":6:21: YAML tags (tag:yaml.org,2002:int) are not supported");
        assert_rejected("server: !custom\n  url: https://connect.example.com\n" ARCHIVE CONTENT,
                        NAME ":1:9: YAML tags (!custom) are not supported");
}

static void test_config_rejects_multiple_documents(void **state)
{
        (void) state;
        assert_rejected(MINIMAL "---\n" MINIMAL,
                        NAME ":7:1: only one YAML document is allowed in the file");
        assert_rejected("---\n" MINIMAL "...\n---\n",
                        NAME ":9:1: only one YAML document is allowed in the file");
}

static void test_config_accepts_explicit_document_markers(void **state)
{
        struct config *c;

        (void) state;
        c = parse_ok("%YAML 1.1\n---\n" MINIMAL "...\n");
        assert_int_equal(c->n_content, 1);
        config_free(c);
}

static void test_config_rejects_empty_file(void **state)
{
        (void) state;
        assert_rejected("", NAME ": the configuration is empty");
        assert_rejected("# nothing but a comment\n\n", NAME ": the configuration is empty");
        assert_rejected("---\n", NAME ": the configuration is empty");
        assert_rejected("~\n", NAME ": the configuration is empty");
}

static void test_config_rejects_non_mapping_top_level(void **state)
{
        (void) state;
        assert_rejected("- " GUID1 "\n",
                        NAME ":1:1: the top level must be a mapping, got a sequence");
        assert_rejected("hello\n", NAME ":1:1: the top level must be a mapping, got \"hello\"");
}

static void test_config_messages_escape_file_text(void **state)
{
        (void) state;
        /* A hostile key or value must not be able to start a new (forged) log line. */
        assert_rejected(SERVER "  \"x\\n<3>forged\\e[31m\": 1\n" ARCHIVE CONTENT,
                        NAME ":3:3: unknown key \"x\\x0a<3>forged\\x1b[31m\" in server; allowed: "
                             "url, api_key_file, api_key_env, ca_file, verify_tls, "
                             "timeout_seconds, max_concurrent_requests");
        assert_rejected(SERVER "  verify_tls: \"yes\\r\\n<2>oops\\\"\"\n" ARCHIVE CONTENT,
                        NAME ":3:15: server.verify_tls: expected true or false, got "
                             "\"yes\\x0d\\x0a<2>oops\\x22\"");
}

static void test_config_parse_keeps_ret_and_error_untouched(void **state)
{
        struct config_error err;
        struct config *c = NULL;

        (void) state;
        memset(&err, 'x', sizeof(err));
        err.message[sizeof(err.message) - 1] = '\0';
        assert_int_equal(config_parse(NAME, MINIMAL, strlen(MINIMAL), &c, &err), 0);
        assert_non_null(c);
        /* reterr is only written on failure. */
        assert_int_equal(err.message[0], 'x');
        config_freep(&c);
        assert_null(c);
        /* config_free(NULL) and a freep on NULL are no-ops. */
        config_free(NULL);
        config_freep(&c);
}

static void test_config_parse_without_nul_terminator(void **state)
{
        struct config_error err = {{0}};
        struct config *c = NULL;
        char *copy;
        size_t len = strlen(MINIMAL);

        (void) state;
        /* The document is given by length; the byte after it must not be read. */
        copy = malloc(len);
        assert_non_null(copy);
        memcpy(copy, MINIMAL, len);
        assert_int_equal(config_parse(NAME, copy, len, &c, &err), 0);
        assert_int_equal(c->n_content, 1);
        config_free(c);
        free(copy);
}

/* ---------------------------------------------------------------------------------- */
/* config_load */

static void test_config_load_missing_file(void **state)
{
        struct tmpdir *fx = *state;
        struct config_error err = {{0}};
        struct config *c = UNTOUCHED;
        char *path = NULL, *want = NULL;

        assert_true(asprintf(&path, "%s/missing.yaml", fx->dir) > 0);
        assert_int_equal(config_load(path, &c, &err), -ENOENT);
        assert_ptr_equal(c, UNTOUCHED);
        assert_true(asprintf(&want, "%s: cannot open the config file: No such file or directory",
                             path) > 0);
        assert_string_equal(err.message, want);
        free(want);
        free(path);
}

static void test_config_load_directory(void **state)
{
        struct tmpdir *fx = *state;
        struct config_error err = {{0}};
        struct config *c = UNTOUCHED;
        char *want = NULL;

        assert_int_equal(config_load(fx->dir, &c, &err), -EISDIR);
        assert_ptr_equal(c, UNTOUCHED);
        assert_true(asprintf(&want, "%s: cannot read the config file: Is a directory", fx->dir) >
                    0);
        assert_string_equal(err.message, want);
        free(want);
}

static void test_config_load_reads_file_and_names_it(void **state)
{
        struct tmpdir *fx = *state;
        struct config_error err = {{0}};
        struct config *c = NULL;
        char *good, *bad, *want = NULL;

        good = write_text(fx->dir, "good.yaml", MINIMAL, 0644);
        assert_int_equal(config_load(good, &c, &err), 0);
        assert_string_equal(c->path, good);
        assert_int_equal(c->n_content, 1);
        config_free(c);

        bad = write_text(fx->dir, "bad.yaml", MINIMAL "  - not-a-guid\n", 0644);
        c = UNTOUCHED;
        assert_int_equal(config_load(bad, &c, &err), -EINVAL);
        assert_ptr_equal(c, UNTOUCHED);
        assert_true(asprintf(&want, "%s:7:5: \"not-a-guid\" is not a content GUID", bad) > 0);
        assert_string_equal(err.message, want);
        free(want);
        free(good);
        free(bad);
}

static void test_config_load_refuses_huge_file(void **state)
{
        struct tmpdir *fx = *state;
        struct config_error err = {{0}};
        struct config *c = UNTOUCHED;
        size_t len = 1024 * 1024 + 1;
        char *data, *path, *want = NULL;

        data = malloc(len);
        assert_non_null(data);
        memset(data, '#', len);
        path = write_file(fx->dir, "huge.yaml", data, len, 0644);
        assert_int_equal(config_load(path, &c, &err), -EFBIG);
        assert_ptr_equal(c, UNTOUCHED);
        assert_true(asprintf(&want, "%s: the config file is larger than 1048576 bytes", path) > 0);
        assert_string_equal(err.message, want);
        free(want);
        free(path);
        free(data);
}

static void test_config_example_config_parses(void **state)
{
        struct config_error err = {{0}};
        struct config *c = NULL;
        int r;

        (void) state;
        r = config_load(CJA_FIXTURES "/../../etc/config.yaml", &c, &err);
        if (r < 0)
                fail_msg("etc/config.yaml: %s", err.message);
        assert_string_equal(c->server_url, "https://connect.example.com");
        assert_null(c->api_key_file); /* the key comes as the unit's credential */
        assert_string_equal(c->archive_dir, "/var/lib/connect-job-archiver");
        assert_true(c->verify_tls);
        assert_int_equal(c->timeout_seconds, 30);
        assert_int_equal(c->max_concurrent_requests, 8);
        assert_int_equal(c->compression_level, 6);
        assert_int_equal(c->retention_days, 0);
        assert_int_equal(c->min_free_mb, 100);
        assert_int_equal(c->poll_interval_seconds, 60);
        assert_int_equal(c->n_content, 2);
        assert_string_equal(c->content[0].guid, GUID1);
        assert_null(c->content[0].name);
        assert_string_equal(c->content[1].guid, GUID2);
        assert_string_equal(c->content[1].name, "sales-dashboard");
        config_free(c);
}

/* ---------------------------------------------------------------------------------- */
/* discover: and poll.max_interval_seconds */

#define DISCOVER_ALL "discover:\n  rules:\n    - all: true\n"

static void test_config_discover_full(void **state)
{
        struct config *c;

        (void) state;
        c = parse_ok(SERVER ARCHIVE "discover:\n"
                                    "  refresh_seconds: 120\n"
                                    "  exclude:\n"
                                    "    - " GUID2 "\n"
                                    "  rules:\n"
                                    "    - all: true\n"
                                    "    - tag: Finance/Reports\n"
                                    "      type: shiny\n"
                                    "    - owner: alice\n");
        assert_true(c->discover);
        assert_int_equal(c->discover_refresh_seconds, 120);
        assert_int_equal(c->n_content, 0);
        assert_int_equal(c->n_exclude, 1);
        assert_string_equal(c->exclude[0], GUID2);
        assert_int_equal(c->n_rules, 3);
        assert_true(c->rules[0].all);
        assert_null(c->rules[0].tag);
        assert_int_equal(c->rules[0].line, 10);
        assert_false(c->rules[1].all);
        assert_string_equal(c->rules[1].tag, "Finance/Reports");
        assert_string_equal(c->rules[1].type, "shiny");
        assert_null(c->rules[1].owner);
        assert_string_equal(c->rules[2].owner, "alice");
        assert_int_equal(c->rules[2].line, 13);
        config_free(c);
}

static void test_config_discover_defaults_and_content(void **state)
{
        struct config *c;

        (void) state;
        c = parse_ok(MINIMAL DISCOVER_ALL);
        assert_true(c->discover);
        assert_int_equal(c->discover_refresh_seconds, 600);
        assert_int_equal(c->n_content, 1);
        assert_int_equal(c->n_exclude, 0);
        config_free(c);
        /* content may be empty or absent with discover. */
        c = parse_ok(SERVER ARCHIVE "content: []\n" DISCOVER_ALL);
        assert_int_equal(c->n_content, 0);
        config_free(c);
        c = parse_ok(SERVER ARCHIVE "content:\n" DISCOVER_ALL);
        assert_int_equal(c->n_content, 0);
        config_free(c);
        c = parse_ok(MINIMAL);
        assert_false(c->discover);
        assert_int_equal(c->n_rules, 0);
        config_free(c);
}

static void test_config_discover_rejects_bad_rules(void **state)
{
        (void) state;
        assert_rejected(SERVER ARCHIVE "discover:\n  refresh_seconds: 60\n",
                        NAME ":5:1: discover.rules: at least one rule is required");
        assert_rejected(SERVER ARCHIVE "discover:\n  rules: []\n",
                        NAME ":5:1: discover.rules: at least one rule is required");
        assert_rejected(SERVER ARCHIVE "discover:\n  rules: all\n",
                        NAME ":6:10: discover.rules: expected a sequence of rules, got \"all\"");
        assert_rejected(SERVER ARCHIVE "discover:\n  rules:\n    - all\n",
                        NAME ":7:7: discover.rules: each rule is a mapping of all, tag, owner or "
                             "type, got \"all\"");
        assert_rejected(SERVER ARCHIVE "discover:\n  rules:\n    - {}\n",
                        NAME ":7:7: discover rule: empty; give all, tag, owner or type");
        assert_rejected(SERVER ARCHIVE "discover:\n  rules:\n    - all: false\n",
                        NAME ":7:12: discover rule all: expected true (a rule that selects "
                             "nothing is not a rule), got \"false\"");
        assert_rejected(SERVER ARCHIVE "discover:\n  rules:\n    - colour: red\n",
                        NAME ":7:7: unknown key \"colour\" in a discover rule; allowed: all, tag, "
                             "owner, type");
        assert_rejected(SERVER ARCHIVE "discover:\n  rules:\n    - owner: a\n      owner: b\n",
                        NAME ":8:7: duplicate key owner in a discover rule (first at line 7)");
        assert_rejected(SERVER ARCHIVE "discover:\n  rules:\n    - tag: /Finance\n",
                        NAME ":7:12: discover rule tag: \"/Finance\" is not a tag path (tag "
                             "names from the top, separated by '/', e.g. Finance/Reports)");
        assert_rejected(SERVER ARCHIVE "discover:\n  rules:\n    - tag: a//b\n",
                        NAME ":7:12: discover rule tag: \"a//b\" is not a tag path (tag "
                             "names from the top, separated by '/', e.g. Finance/Reports)");
        assert_rejected(SERVER ARCHIVE "discover:\n  rules:\n    - type: \"\"\n",
                        NAME ":7:13: discover rule type: must not be empty");
        assert_rejected(SERVER ARCHIVE "discover:\n  rules:\n    - owner: [a]\n",
                        NAME ":7:14: discover rule owner: expected a string, got a sequence");
        assert_rejected(SERVER ARCHIVE "discover:\n  refresh_seconds: 0\n  rules:\n    - all: "
                                       "true\n",
                        NAME ":6:20: discover.refresh_seconds: 0 is out of range (1..86400)");
        assert_rejected(SERVER ARCHIVE DISCOVER_ALL "  sort: name\n",
                        NAME ":8:3: unknown key \"sort\" in discover; allowed: refresh_seconds, "
                             "exclude, rules");
}

static void test_config_discover_rejects_bad_exclude(void **state)
{
        (void) state;
        assert_rejected(SERVER ARCHIVE DISCOVER_ALL "  exclude:\n    - nope\n",
                        NAME ":9:7: discover.exclude: \"nope\" is not a content GUID");
        assert_rejected(SERVER ARCHIVE DISCOVER_ALL "  exclude:\n    - " GUID1 "\n    - " GUID1
                                                    "\n",
                        NAME ":10:7: discover.exclude: duplicate GUID " GUID1 " (first at line 9)");
        assert_rejected(SERVER ARCHIVE DISCOVER_ALL "  exclude:\n    - {guid: x}\n",
                        NAME ":9:7: discover.exclude: expected a GUID, got a mapping");
        assert_rejected(SERVER ARCHIVE DISCOVER_ALL "  exclude: " GUID1 "\n",
                        NAME ":8:12: discover.exclude: expected a sequence of content GUIDs, got "
                             "\"" GUID1 "\"");
}

static void test_config_max_interval(void **state)
{
        struct config *c;

        (void) state;
        c = parse_ok(MINIMAL);
        assert_int_equal(c->poll_max_interval_seconds, 600);
        config_free(c);
        /* Unset, the ceiling is never below the interval. */
        c = parse_ok(MINIMAL "poll:\n  interval_seconds: 900\n");
        assert_int_equal(c->poll_max_interval_seconds, 900);
        config_free(c);
        c = parse_ok(MINIMAL "poll:\n  interval_seconds: 10\n  max_interval_seconds: 10\n");
        assert_int_equal(c->poll_max_interval_seconds, 10);
        config_free(c);
        assert_rejected(MINIMAL "poll:\n  interval_seconds: 60\n  max_interval_seconds: 30\n",
                        NAME ":9:3: poll.max_interval_seconds: 30 is less than "
                             "poll.interval_seconds (60)");
}

/* ---------------------------------------------------------------------------------- */
/* archive.s3 */

#define S3_ARCHIVE                                                                                 \
        "archive:\n  directory: /var/lib/cja\n  s3:\n    endpoint: http://127.0.0.1:7480/\n"       \
        "    bucket: connect-logs\n"

static void test_config_s3_full_and_defaults(void **state)
{
        struct config *c;

        (void) state;
        c = parse_ok(MINIMAL);
        assert_false(c->s3);
        assert_null(c->s3_endpoint);
        config_free(c);

        c = parse_ok(SERVER S3_ARCHIVE CONTENT);
        assert_true(c->s3);
        assert_string_equal(c->s3_endpoint, "http://127.0.0.1:7480");
        assert_string_equal(c->s3_bucket, "connect-logs");
        assert_null(c->s3_prefix);
        assert_string_equal(c->s3_region, "us-east-1");
        assert_string_equal(c->archive_dir, "/var/lib/cja");
        config_free(c);

        /* Keys of archive: after the s3 mapping are archive's again. */
        c = parse_ok(SERVER S3_ARCHIVE "    prefix: prod/connect-a/\n    region: eu-west-3\n"
                                       "    access_key_id_file: /etc/cja/id\n"
                                       "    secret_access_key_file: /etc/cja/secret\n"
                                       "  retention_days: 30\n" CONTENT);
        assert_string_equal(c->s3_prefix, "prod/connect-a");
        assert_string_equal(c->s3_region, "eu-west-3");
        assert_string_equal(c->s3_access_key_id_file, "/etc/cja/id");
        assert_string_equal(c->s3_secret_access_key_file, "/etc/cja/secret");
        assert_int_equal(c->retention_days, 30);
        config_free(c);

        /* "s3:" with everything commented out: no object store. */
        c = parse_ok(SERVER "archive:\n  s3:\n  directory: /x\n" CONTENT);
        assert_false(c->s3);
        config_free(c);
}

static void test_config_s3_rejects_bad_values(void **state)
{
        (void) state;
        assert_rejected(SERVER "archive:\n  directory: /x\n  s3:\n    bucket: logs\n" CONTENT,
                        NAME ":5:3: archive.s3.endpoint is required");
        assert_rejected(SERVER "archive:\n  directory: /x\n  s3:\n    endpoint: http://h\n" CONTENT,
                        NAME ":5:3: archive.s3.bucket is required");
        assert_rejected(SERVER "archive:\n  directory: /x\n  s3: yes\n" CONTENT,
                        NAME ":5:7: archive.s3: expected a mapping, got \"yes\"");
        assert_rejected(SERVER S3_ARCHIVE "    colour: red\n" CONTENT,
                        NAME ":8:5: unknown key \"colour\" in archive.s3; allowed: endpoint, "
                             "bucket, prefix, region, access_key_id_file, "
                             "secret_access_key_file");
        assert_rejected(SERVER S3_ARCHIVE "    bucket: again\n" CONTENT,
                        NAME ":8:5: duplicate key archive.s3.bucket (first at line 7)");
        assert_rejected(SERVER "archive:\n  directory: /x\n  s3:\n    endpoint: ftp://h\n"
                               "    bucket: logs\n" CONTENT,
                        NAME ":6:15: archive.s3.endpoint: \"ftp://h\" is not an http:// or "
                             "https:// URL");
        assert_rejected(SERVER "archive:\n  directory: /x\n  s3:\n    endpoint: https://h/b\n"
                               "    bucket: logs\n" CONTENT,
                        NAME ":6:5: archive.s3.endpoint: \"https://h/b\" has a path; give only "
                             "http(s)://host[:port] (the bucket is archive.s3.bucket)");
        assert_rejected(SERVER "archive:\n  directory: /x\n  s3:\n    endpoint: https://k:s@h\n"
                               "    bucket: logs\n" CONTENT,
                        NAME ":6:15: archive.s3.endpoint: credentials in the URL "
                             "(user:password@) are refused and not shown; the API key goes in "
                             "server.api_key_file");
        assert_rejected(SERVER "archive:\n  directory: /x\n  s3:\n    endpoint: http://h\n"
                               "    bucket: Logs\n" CONTENT,
                        NAME ":7:13: archive.s3.bucket: \"Logs\" is not a bucket name (lower-case "
                             "letters, digits, '.' and '-')");
        assert_rejected(SERVER "archive:\n  directory: /x\n  s3:\n    endpoint: http://h\n"
                               "    bucket: b1\n" CONTENT,
                        NAME ":7:13: archive.s3.bucket: \"b1\" is not a bucket name (3 to 63 "
                             "characters)");
        assert_rejected(SERVER "archive:\n  directory: /x\n  s3:\n    endpoint: http://h\n"
                               "    bucket: -logs\n" CONTENT,
                        NAME ":7:13: archive.s3.bucket: \"-logs\" is not a bucket name (it must "
                             "begin and end with a letter or digit)");
        assert_rejected(SERVER "archive:\n  directory: /x\n  s3:\n    endpoint: http://h\n"
                               "    bucket: 10.0.0.1\n" CONTENT,
                        NAME ":7:13: archive.s3.bucket: \"10.0.0.1\" is not a bucket name (it "
                             "looks like an IP address)");
        assert_rejected(SERVER S3_ARCHIVE "    prefix: a//b\n" CONTENT,
                        NAME ":8:13: archive.s3.prefix: \"a//b\" has an empty, \".\" or \"..\" "
                             "component");
        assert_rejected(SERVER S3_ARCHIVE "    prefix: /abs\n" CONTENT,
                        NAME ":8:13: archive.s3.prefix: \"/abs\" has an empty, \".\" or \"..\" "
                             "component");
        assert_rejected(SERVER S3_ARCHIVE "    prefix: a/../b\n" CONTENT,
                        NAME ":8:13: archive.s3.prefix: \"a/../b\" has an empty, \".\" or \"..\" "
                             "component");
        assert_rejected(SERVER S3_ARCHIVE "    prefix: /\n" CONTENT,
                        NAME ":8:13: archive.s3.prefix: must not be empty (leave it out for "
                             "none)");
        assert_rejected(SERVER S3_ARCHIVE "    region: US_EAST\n" CONTENT,
                        NAME ":8:13: archive.s3.region: \"US_EAST\" is not a region name "
                             "(lower-case letters, digits and '-', like us-east-1)");
        /* The mapping belongs under archive:, nowhere else. */
        assert_rejected(MINIMAL "s3:\n  bucket: x\n",
                        NAME ":7:1: unknown top-level key \"s3\"; allowed: server, archive, "
                             "poll, discover, metrics_file, content; did you mean archive.s3?");
        assert_rejected(MINIMAL "archive.s3:\n  bucket: x\n",
                        NAME ":7:1: unknown top-level key \"archive.s3\"; allowed: server, "
                             "archive, poll, discover, metrics_file, content");
}

#define T(name) cmocka_unit_test_setup_teardown(name, tmpdir_setup, tmpdir_teardown)

int main(void)
{
        const struct CMUnitTest tests[] = {
                T(test_config_minimal_gets_defaults),
                T(test_config_discover_full),
                T(test_config_discover_defaults_and_content),
                T(test_config_discover_rejects_bad_rules),
                T(test_config_discover_rejects_bad_exclude),
                T(test_config_max_interval),
                T(test_config_s3_full_and_defaults),
                T(test_config_s3_rejects_bad_values),
                T(test_config_reads_every_key),
                T(test_config_content_both_forms),
                T(test_config_flow_style),
                T(test_config_null_values_keep_defaults),
                T(test_config_quoted_numbers_and_booleans_are_read),
                T(test_config_booleans),
                T(test_config_rejects_bad_boolean),
                T(test_config_bounds_are_inclusive),
                T(test_config_url_trailing_slashes_stripped),
                T(test_config_rejects_bad_url),
                T(test_config_url_from_connect_server),
                T(test_config_url_in_file_beats_connect_server),
                T(test_config_rejects_url_with_credentials),
                T(test_config_url_with_at_in_path_is_fine),
                T(test_config_rejects_connect_server_with_credentials),
                T(test_config_rejects_url_with_api_path),
                T(test_config_ca_file_missing_is_refused),
                T(test_config_ca_file_not_a_file_or_empty_is_refused),
                T(test_config_ca_file_unreadable_is_refused),
                T(test_config_ca_file_readable_is_taken),
                T(test_config_rejects_bad_connect_server),
                T(test_config_rejects_missing_url),
                T(test_config_rejects_missing_archive_directory),
                T(test_config_rejects_missing_content),
                T(test_config_rejects_empty_content),
                T(test_config_rejects_unknown_key_in_section),
                T(test_config_rejects_unknown_top_level_key),
                T(test_config_unknown_key_hints_its_place),
                T(test_config_rejects_unknown_key_in_content_item),
                T(test_config_rejects_non_integer),
                T(test_config_rejects_leading_zeros),
                T(test_config_rejects_out_of_range),
                T(test_config_rejects_negative_numbers),
                T(test_config_rejects_overflow),
                T(test_config_rejects_wrong_node_kind),
                T(test_config_rejects_non_scalar_key),
                T(test_config_rejects_bad_strings),
                T(test_config_rejects_nul_character),
                T(test_config_rejects_duplicate_key),
                T(test_config_rejects_duplicate_section),
                T(test_config_rejects_duplicate_key_in_content_item),
                T(test_config_rejects_duplicate_guid),
                T(test_config_rejects_invalid_guid),
                T(test_config_rejects_content_item_without_guid),
                T(test_config_rejects_malformed_yaml),
                T(test_config_rejects_invalid_utf8),
                T(test_config_rejects_anchors_and_aliases),
                T(test_config_rejects_tags),
                T(test_config_rejects_multiple_documents),
                T(test_config_accepts_explicit_document_markers),
                T(test_config_rejects_empty_file),
                T(test_config_rejects_non_mapping_top_level),
                T(test_config_messages_escape_file_text),
                T(test_config_parse_keeps_ret_and_error_untouched),
                T(test_config_parse_without_nul_terminator),
                T(test_config_load_missing_file),
                T(test_config_load_directory),
                T(test_config_load_reads_file_and_names_it),
                T(test_config_load_refuses_huge_file),
                T(test_config_example_config_parses),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

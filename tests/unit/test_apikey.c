/*
 * The API key lookup (apikey.c), through config_resolve_api_key() as the daemon calls it
 * (these tests moved here from test_config.c with the code) and through apikey_resolve()
 * as a program without a config calls it.
 */
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

#include "apikey.h"
#include "config.h"
#include "testutil.h"

/* The name config_parse() puts in messages. */
#define NAME "config.yaml"

/* Three lines of a valid config: lines 1-2 server, 3-4 archive, 5-6 content. */
#define SERVER  "server:\n  url: https://connect.example.com\n"
#define ARCHIVE "archive:\n  directory: /var/lib/cja\n"
#define CONTENT "content:\n  - 38400000-8cf0-11bd-b23e-10b96e4ef00d\n"
#define MINIMAL SERVER ARCHIVE CONTENT

/* A key that must never show up in a message. */
#define SECRET "s3cr3t-KEY-0123456789abcdefABCDEF"

/* Resolves the key and asserts success with the given key and source. */
static void assert_key(struct config *c, const char *key, const char *source)
{
        struct config_error err = {{0}};
        int r;

        r = config_resolve_api_key(c, &err);
        if (r < 0)
                fail_msg("unexpected key failure (%d): %s", r, err.message);
        assert_string_equal(c->api_key, key);
        assert_string_equal(c->api_key_source, source);
}

/* Resolves the key and asserts failure r with exactly the message want (never the key). */
static void assert_key_error(struct config *c, int want_r, const char *want)
{
        struct config_error err = {{0}};
        int r;

        r = config_resolve_api_key(c, &err);
        assert_int_equal(r, want_r);
        assert_string_equal(err.message, want);
        assert_null(strstr(err.message, SECRET));
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
/* API key */

static struct config *config_with_key_file(const char *path)
{
        struct config *c = parse_ok(MINIMAL);

        if (path) {
                c->api_key_file = strdup(path);
                assert_non_null(c->api_key_file);
        }
        return c;
}

/* A key file with this text and mode gives SECRET, from "file <path>". */
static void assert_key_file_gives_secret(struct tmpdir *fx, const char *text, mode_t mode)
{
        struct config *c;
        char *path, *source = NULL;

        path = write_text(fx->dir, "api-key", text, mode);
        c = config_with_key_file(path);
        assert_true(asprintf(&source, "file %s", path) > 0);
        assert_key(c, SECRET, source);
        config_free(c);
        free(source);
        free(path);
}

static void test_config_key_from_file_is_stripped(void **state)
{
        assert_key_file_gives_secret(*state, " \t" SECRET " \r\n\n", 0600);
}

static void test_config_key_file_group_readable_is_fine(void **state)
{
        /* Group access is how operators share a key with the service's group. */
        assert_key_file_gives_secret(*state, SECRET "\n", 0640);
}

static void test_config_key_file_readable_by_others_is_refused(void **state)
{
        struct tmpdir *fx = *state;
        struct config *c;
        char *path, *want = NULL;

        path = write_text(fx->dir, "api-key", SECRET "\n", 0644);
        c = config_with_key_file(path);
        /* Not even a key from the environment papers over it. */
        assert_int_equal(setenv("CONNECT_API_KEY", "other", 1), 0);
        assert_true(asprintf(&want,
                             NAME ": api key file %s is readable by others (mode 0644); chmod "
                                  "600 it",
                             path) > 0);
        assert_key_error(c, -EPERM, want);
        assert_null(c->api_key);
        free(want);

        assert_int_equal(chmod(path, 0602), 0);
        assert_true(asprintf(&want,
                             NAME ": api key file %s is writable by others (mode 0602); chmod "
                                  "600 it",
                             path) > 0);
        assert_key_error(c, -EPERM, want);
        free(want);

        assert_int_equal(chmod(path, 0601), 0);
        assert_true(asprintf(&want,
                             NAME ": api key file %s is accessible by others (mode 0601); chmod "
                                  "600 it",
                             path) > 0);
        assert_key_error(c, -EPERM, want);
        free(want);

        assert_int_equal(chmod(path, 0600), 0);
        assert_int_equal(config_resolve_api_key(c, NULL), 0);
        assert_string_equal(c->api_key, SECRET);
        config_free(c);
        free(path);
}

static void test_config_key_file_missing_is_an_error(void **state)
{
        struct tmpdir *fx = *state;
        struct config *c;
        char *path = NULL, *want = NULL;

        assert_true(asprintf(&path, "%s/no-such-key", fx->dir) > 0);
        c = config_with_key_file(path);
        /* A configured file that is not there must not fall through to another source. */
        assert_int_equal(setenv("CONNECT_API_KEY", SECRET, 1), 0);
        assert_true(asprintf(&want, NAME ": cannot open api key file %s: No such file or directory",
                             path) > 0);
        assert_key_error(c, -ENOENT, want);
        assert_null(c->api_key);
        config_free(c);
        free(want);
        free(path);
}

static void test_config_key_file_empty_is_an_error(void **state)
{
        struct tmpdir *fx = *state;
        struct config *c;
        char *path, *want = NULL;

        path = write_text(fx->dir, "api-key", " \n\n", 0600);
        c = config_with_key_file(path);
        assert_int_equal(setenv("CONNECT_API_KEY", SECRET, 1), 0);
        assert_true(asprintf(&want, NAME ": api key file %s is empty", path) > 0);
        assert_key_error(c, -ENOKEY, want);
        config_free(c);
        free(want);
        free(path);
}

static void test_config_key_file_too_large(void **state)
{
        struct tmpdir *fx = *state;
        struct config *c;
        char big[4097], *path, *want = NULL;

        memset(big, 'k', sizeof(big));
        path = write_file(fx->dir, "api-key", big, sizeof(big), 0600);
        c = config_with_key_file(path);
        assert_true(asprintf(&want, NAME ": api key file %s is larger than 4096 bytes", path) > 0);
        assert_key_error(c, -EFBIG, want);
        config_free(c);
        free(want);
        free(path);

        /* Exactly 4096 bytes is fine. */
        path = write_file(fx->dir, "api-key", big, sizeof(big) - 1, 0600);
        c = config_with_key_file(path);
        assert_int_equal(config_resolve_api_key(c, NULL), 0);
        assert_int_equal(strlen(c->api_key), 4096);
        config_free(c);
        free(path);
}

static void test_config_key_file_not_regular(void **state)
{
        struct tmpdir *fx = *state;
        struct config *c;
        char *want = NULL;

        assert_int_equal(chmod(fx->dir, 0700), 0);
        c = config_with_key_file(fx->dir);
        assert_true(asprintf(&want, NAME ": api key file %s is not a regular file", fx->dir) > 0);
        assert_key_error(c, -EINVAL, want);
        config_free(c);
        free(want);
}

static void test_config_key_from_named_variable(void **state)
{
        struct config *c;

        (void) state;
        c = parse_with_server("  api_key_env: CJA_TEST_KEY\n");
        assert_int_equal(setenv("CJA_TEST_KEY", "\n" SECRET "\n", 1), 0);
        assert_int_equal(setenv("CONNECT_API_KEY", "loses", 1), 0);
        assert_key(c, SECRET, "environment variable $CJA_TEST_KEY");
        config_free(c);
}

static void test_config_key_named_variable_unset_falls_through(void **state)
{
        struct config *c;

        (void) state;
        c = parse_with_server("  api_key_env: CJA_TEST_KEY\n");
        assert_int_equal(setenv("CONNECT_API_KEY", SECRET, 1), 0);
        assert_key(c, SECRET, "environment variable $CONNECT_API_KEY");
        /* Set but empty (or blank) counts as unset. */
        assert_int_equal(setenv("CJA_TEST_KEY", " \n", 1), 0);
        assert_key(c, SECRET, "environment variable $CONNECT_API_KEY");
        config_free(c);
}

static void test_config_key_from_systemd_credential(void **state)
{
        struct tmpdir *fx = *state;
        struct config *c;
        char *path;

        path = write_text(fx->dir, "api-key", SECRET "\n", 0400);
        assert_int_equal(setenv("CREDENTIALS_DIRECTORY", fx->dir, 1), 0);
        assert_int_equal(setenv("CONNECT_API_KEY", "loses", 1), 0);
        c = parse_ok(MINIMAL);
        assert_key(c, SECRET, "systemd credential api-key");
        config_free(c);
        free(path);
}

static void test_config_key_credential_readable_by_others_is_refused(void **state)
{
        struct tmpdir *fx = *state;
        struct config *c;
        char *path, *want = NULL;

        path = write_text(fx->dir, "api-key", SECRET "\n", 0604);
        assert_int_equal(setenv("CREDENTIALS_DIRECTORY", fx->dir, 1), 0);
        c = parse_ok(MINIMAL);
        assert_true(asprintf(&want,
                             NAME ": api key file %s is readable by others (mode 0604); chmod "
                                  "600 it",
                             path) > 0);
        assert_key_error(c, -EPERM, want);
        config_free(c);
        free(want);
        free(path);
}

static void test_config_key_credential_missing_falls_through(void **state)
{
        struct tmpdir *fx = *state;
        struct config *c;

        /* A credentials directory without api-key (another credential only). */
        assert_int_equal(setenv("CREDENTIALS_DIRECTORY", fx->dir, 1), 0);
        assert_int_equal(setenv("CONNECT_API_KEY", SECRET, 1), 0);
        c = parse_ok(MINIMAL);
        assert_key(c, SECRET, "environment variable $CONNECT_API_KEY");
        config_free(c);
}

static void test_config_key_from_connect_api_key(void **state)
{
        struct config *c;

        (void) state;
        assert_int_equal(setenv("CONNECT_API_KEY", "  " SECRET "\t\n", 1), 0);
        c = parse_ok(MINIMAL);
        assert_key(c, SECRET, "environment variable $CONNECT_API_KEY");
        config_free(c);
}

static void test_config_key_not_found(void **state)
{
        struct config *c;

        (void) state;
        c = parse_ok(MINIMAL);
        assert_key_error(c, -ENOKEY,
                         NAME ": no API key found: set server.api_key_file or server.api_key_env, "
                              "add LoadCredential=api-key:... to the unit, or set "
                              "$CONNECT_API_KEY");
        assert_null(c->api_key);
        assert_null(c->api_key_source);
        /* An empty $CONNECT_API_KEY is no key. */
        assert_int_equal(setenv("CONNECT_API_KEY", "", 1), 0);
        assert_key_error(c, -ENOKEY,
                         NAME ": no API key found: set server.api_key_file or server.api_key_env, "
                              "add LoadCredential=api-key:... to the unit, or set "
                              "$CONNECT_API_KEY");
        config_free(c);

        /* With api_key_env configured, the message says that variable was empty. */
        c = parse_with_server("  api_key_env: CJA_TEST_KEY\n");
        assert_key_error(c, -ENOKEY,
                         NAME ": no API key found ($CJA_TEST_KEY is unset or empty): set "
                              "server.api_key_file or server.api_key_env, add "
                              "LoadCredential=api-key:... to the unit, or set $CONNECT_API_KEY");
        config_free(c);
}

static void test_config_key_precedence(void **state)
{
        struct tmpdir *fx = *state;
        struct config *c;
        char *file, *credential, *source = NULL;

        file = write_text(fx->dir, "key-file", "from-file\n", 0600);
        credential = write_text(fx->dir, "api-key", "from-credential\n", 0400);
        assert_int_equal(setenv("CJA_TEST_KEY", "from-named-variable", 1), 0);
        assert_int_equal(setenv("CREDENTIALS_DIRECTORY", fx->dir, 1), 0);
        assert_int_equal(setenv("CONNECT_API_KEY", "from-connect-api-key", 1), 0);

        c = parse_with_server("  api_key_env: CJA_TEST_KEY\n");
        c->api_key_file = strdup(file);
        assert_non_null(c->api_key_file);
        /* 1: api_key_file. */
        assert_true(asprintf(&source, "file %s", file) > 0);
        assert_key(c, "from-file", source);
        free(source);
        /* 2: the variable named by api_key_env (and the old key is replaced, not leaked). */
        free(c->api_key_file);
        c->api_key_file = NULL;
        assert_key(c, "from-named-variable", "environment variable $CJA_TEST_KEY");
        /* 3: $CREDENTIALS_DIRECTORY/api-key. */
        assert_int_equal(unsetenv("CJA_TEST_KEY"), 0);
        assert_key(c, "from-credential", "systemd credential api-key");
        /* 4: $CONNECT_API_KEY. */
        assert_int_equal(unlink(credential), 0);
        assert_key(c, "from-connect-api-key", "environment variable $CONNECT_API_KEY");
        config_free(c);
        free(credential);
        free(file);
}

static void test_config_key_with_inner_whitespace_is_refused(void **state)
{
        struct tmpdir *fx = *state;
        struct config *c;
        char *path, *want = NULL;

        /* It would break (or inject into) the Authorization header. */
        path = write_text(fx->dir, "api-key", SECRET " " SECRET "\n", 0600);
        c = config_with_key_file(path);
        assert_true(asprintf(&want,
                             NAME ": the API key from file %s contains whitespace, control or "
                                  "non-ASCII characters",
                             path) > 0);
        assert_key_error(c, -EINVAL, want);
        assert_null(c->api_key);
        config_free(c);
        free(want);
        free(path);
}

static void test_config_key_with_control_characters_is_refused(void **state)
{
        static const char *const bad[] = {
                SECRET "\r\nX-Injected: 1",
                SECRET "\x01",
                SECRET "\x7f",
                SECRET "\xc3\xa9",
        };

        (void) state;
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                struct config *c = parse_ok(MINIMAL);

                assert_int_equal(setenv("CONNECT_API_KEY", bad[i], 1), 0);
                assert_key_error(c, -EINVAL,
                                 NAME ": the API key from environment variable $CONNECT_API_KEY "
                                      "contains whitespace, control or non-ASCII characters");
                config_free(c);
        }
}

/* ---------------------------------------------------------------------------------- */
/* apikey_resolve() on its own, as connect-jobs calls it without a config */

#define UNTOUCHED_STR ((char *) (uintptr_t) 0x5a5a)

static void test_apikey_resolve_without_config(void **state)
{
        const struct apikey_sources none = {0};
        struct config_error err = {{0}};
        char *key = UNTOUCHED_STR, *source = UNTOUCHED_STR;

        (void) state;
        assert_int_equal(apikey_resolve(&none, &key, &source, &err), -ENOKEY);
        assert_ptr_equal(key, UNTOUCHED_STR);
        assert_ptr_equal(source, UNTOUCHED_STR);
        assert_string_equal(err.message,
                            "api key: no API key found: set server.api_key_file or "
                            "server.api_key_env, add LoadCredential=api-key:... to the unit, or "
                            "set $CONNECT_API_KEY");

        assert_int_equal(setenv("CONNECT_API_KEY", " " SECRET "\n", 1), 0);
        assert_int_equal(apikey_resolve(&none, &key, &source, NULL), 0);
        assert_string_equal(key, SECRET);
        assert_string_equal(source, "environment variable $CONNECT_API_KEY");
        apikey_free(key);
        free(source);
        apikey_free(NULL);
}

static void test_apikey_failure_leaves_outputs_untouched(void **state)
{
        struct tmpdir *fx = *state;
        struct config_error err = {{0}};
        char *key = UNTOUCHED_STR, *source = UNTOUCHED_STR, *path, *want = NULL;
        struct apikey_sources src = {.origin = "cli.yaml"};

        path = write_text(fx->dir, "api-key", SECRET "\n", 0644);
        src.file = path;
        assert_int_equal(apikey_resolve(&src, &key, &source, &err), -EPERM);
        assert_ptr_equal(key, UNTOUCHED_STR);
        assert_ptr_equal(source, UNTOUCHED_STR);
        assert_true(asprintf(&want,
                             "cli.yaml: api key file %s is readable by others (mode 0644); "
                             "chmod 600 it",
                             path) > 0);
        assert_string_equal(err.message, want);
        assert_null(strstr(err.message, SECRET));
        free(want);
        free(path);
}

/* ---------------------------------------------------------------------------------- */
/* S3 credentials (archive.s3) */

#define S3_ID     "AKIAS3IDFORTESTS0001"
#define S3_SECRET "s3-Secret/Access+Key-0123456789abcdefABCD"

static struct config *s3_config(const char *id_file, const char *secret_file)
{
        struct config *c = parse_ok(SERVER "archive:\n  directory: /x\n  s3:\n    endpoint: "
                                           "http://127.0.0.1:1\n    bucket: logs\n" CONTENT);
        if (id_file)
                assert_non_null(c->s3_access_key_id_file = strdup(id_file));
        if (secret_file)
                assert_non_null(c->s3_secret_access_key_file = strdup(secret_file));
        return c;
}

static void assert_s3_ok(struct config *c, const char *source)
{
        struct config_error err = {{0}};
        int r = config_resolve_s3_credentials(c, &err);

        if (r < 0)
                fail_msg("unexpected failure (%d): %s", r, err.message);
        assert_string_equal(c->s3_access_key_id, S3_ID);
        assert_string_equal(c->s3_secret_access_key, S3_SECRET);
        assert_string_equal(c->s3_credentials_source, source);
}

static void assert_s3_error(struct config *c, int want_r, const char *want)
{
        struct config_error err = {{0}};

        assert_int_equal(config_resolve_s3_credentials(c, &err), want_r);
        assert_string_equal(err.message, want);
        assert_null(strstr(err.message, S3_SECRET));
        assert_null(strstr(err.message, S3_ID));
        assert_null(c->s3_access_key_id);
        assert_null(c->s3_secret_access_key);
}

static void test_s3_credentials_order(void **state)
{
        struct tmpdir *fx = *state;
        char *id, *secret, *want = NULL;
        struct config *c;

        /* Without archive.s3 nothing is looked up. */
        c = parse_ok(MINIMAL);
        assert_int_equal(config_resolve_s3_credentials(c, &(struct config_error){{0}}), 0);
        assert_null(c->s3_access_key_id);
        config_free(c);

        /* The environment, last. */
        assert_int_equal(setenv("AWS_ACCESS_KEY_ID", S3_ID, 1), 0);
        assert_int_equal(setenv("AWS_SECRET_ACCESS_KEY", " " S3_SECRET "\n", 1), 0);
        c = s3_config(NULL, NULL);
        assert_s3_ok(c, "environment variables $AWS_ACCESS_KEY_ID and $AWS_SECRET_ACCESS_KEY");
        config_free(c);

        /* systemd credentials beat it. */
        assert_int_equal(setenv("AWS_ACCESS_KEY_ID", "LOSES", 1), 0);
        free(write_text(fx->dir, "s3-access-key-id", S3_ID "\n", 0600));
        free(write_text(fx->dir, "s3-secret-access-key", S3_SECRET "\n", 0600));
        assert_int_equal(setenv("CREDENTIALS_DIRECTORY", fx->dir, 1), 0);
        c = s3_config(NULL, NULL);
        assert_s3_ok(c, "systemd credentials s3-access-key-id and s3-secret-access-key");
        config_free(c);

        /* The files beat both. */
        id = write_text(fx->dir, "id", "\n" S3_ID "\n", 0600);
        secret = write_text(fx->dir, "secret", S3_SECRET, 0640);
        c = s3_config(id, secret);
        assert_true(asprintf(&want, "files %s and %s", id, secret) > 0);
        assert_s3_ok(c, want);
        config_free(c);
        free(want);
        free(id);
        free(secret);
}

static void test_s3_credentials_errors(void **state)
{
        struct tmpdir *fx = *state;
        char *id, *secret, *want = NULL;
        struct config *c;

        c = s3_config(NULL, NULL);
        assert_s3_error(c, -ENOKEY,
                        NAME ": no S3 credentials found: set archive.s3.access_key_id_file and "
                             "secret_access_key_file, add LoadCredential=s3-access-key-id:... and "
                             "s3-secret-access-key:... to the unit, or set $AWS_ACCESS_KEY_ID and "
                             "$AWS_SECRET_ACCESS_KEY");
        config_free(c);

        /* Half a pair is a mistake to report, not a reason to look further. */
        assert_int_equal(setenv("AWS_ACCESS_KEY_ID", S3_ID, 1), 0);
        c = s3_config(NULL, NULL);
        assert_s3_error(c, -ENOKEY,
                        NAME ": environment: found the S3 access key id but not the secret "
                             "access key");
        config_free(c);
        assert_int_equal(setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET, 1), 0);
        free(write_text(fx->dir, "s3-secret-access-key", S3_SECRET "\n", 0600));
        assert_int_equal(setenv("CREDENTIALS_DIRECTORY", fx->dir, 1), 0);
        c = s3_config(NULL, NULL);
        assert_s3_error(c, -ENOKEY,
                        NAME ": systemd credentials: found the S3 secret access key but not the "
                             "access key id");
        config_free(c);

        id = write_text(fx->dir, "id", S3_ID, 0600);
        c = s3_config(id, NULL);
        assert_s3_error(c, -EINVAL,
                        NAME ": archive.s3: set both access_key_id_file and "
                             "secret_access_key_file, or neither");
        config_free(c);

        secret = write_text(fx->dir, "secret", S3_SECRET, 0604);
        c = s3_config(id, secret);
        assert_true(asprintf(&want,
                             NAME ": S3 secret access key file %s is readable by others (mode "
                                  "0604); chmod 600 it",
                             secret) > 0);
        assert_s3_error(c, -EPERM, want);
        config_free(c);
        free(want);
        free(secret);

        secret = write_text(fx->dir, "secret2", "", 0600);
        c = s3_config(id, secret);
        assert_true(asprintf(&want, NAME ": S3 secret access key file %s is empty", secret) > 0);
        assert_s3_error(c, -ENOKEY, want);
        config_free(c);
        free(want);
        free(secret);
        free(id);

        id = write_text(fx->dir, "id2", "AKIA:X", 0600);
        secret = write_text(fx->dir, "secret3", S3_SECRET, 0600);
        c = s3_config(id, secret);
        assert_true(asprintf(&want, NAME ": the S3 access key id from file %s contains a colon",
                             id) > 0);
        assert_s3_error(c, -EINVAL, want);
        config_free(c);
        free(want);
        free(secret);
        free(id);

        id = write_text(fx->dir, "id3", S3_ID, 0600);
        secret = write_text(fx->dir, "secret4", "a b" S3_SECRET, 0600);
        c = s3_config(id, secret);
        assert_true(asprintf(&want,
                             NAME ": the S3 secret access key from file %s contains whitespace, "
                                  "control or non-ASCII characters",
                             secret) > 0);
        assert_s3_error(c, -EINVAL, want);
        config_free(c);
        free(want);
        free(secret);
        free(id);
}

#define T(name) cmocka_unit_test_setup_teardown(name, tmpdir_setup, tmpdir_teardown)

int main(void)
{
        const struct CMUnitTest tests[] = {
                T(test_config_key_from_file_is_stripped),
                T(test_config_key_file_group_readable_is_fine),
                T(test_config_key_file_readable_by_others_is_refused),
                T(test_config_key_file_missing_is_an_error),
                T(test_config_key_file_empty_is_an_error),
                T(test_config_key_file_too_large),
                T(test_config_key_file_not_regular),
                T(test_config_key_from_named_variable),
                T(test_config_key_named_variable_unset_falls_through),
                T(test_config_key_from_systemd_credential),
                T(test_config_key_credential_readable_by_others_is_refused),
                T(test_config_key_credential_missing_falls_through),
                T(test_config_key_from_connect_api_key),
                T(test_config_key_not_found),
                T(test_config_key_precedence),
                T(test_config_key_with_inner_whitespace_is_refused),
                T(test_config_key_with_control_characters_is_refused),
                T(test_apikey_resolve_without_config),
                T(test_apikey_failure_leaves_outputs_untouched),
                T(test_s3_credentials_order),
                T(test_s3_credentials_errors),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apikey.h"
#include "config_error.h"
#include "log.h"
#include "macro.h"

/* API keys are 32 characters; the cap only keeps a wrong file from being slurped. */
#define API_KEY_MAX 4096

/* What a lookup has found so far; the key is wiped whenever it is dropped. */
struct found {
        const char *origin;
        const char *what;     /* "api key" in messages: "cannot open <what> file ..." */
        const char *key_what; /* "the API key" in "<key_what> from <source> contains ..." */
        char *key;
        char *source;
};

static bool is_key_space(char ch)
{
        return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f';
}

/*
 * Strips surrounding whitespace from a candidate key and, when anything is left, checks it
 * and makes it f->key. The key goes into an HTTP header, so whitespace, control characters
 * or non-ASCII bytes inside it are refused; the message names the source, never the key.
 * Returns 1 when the key was taken, 0 when it was empty (the caller moves on to the next
 * source), or -errno.
 */
static int take_key(struct found *f, const char *raw, size_t len, const char *source,
                    struct config_error *reterr)
{
        char *key, *src;

        while (len > 0 && is_key_space(raw[0])) {
                raw++;
                len--;
        }
        while (len > 0 && is_key_space(raw[len - 1]))
                len--;
        if (len == 0)
                return 0;
        for (size_t i = 0; i < len; i++) {
                unsigned char ch = (unsigned char) raw[i];
                if (ch <= 0x20 || ch >= 0x7f)
                        return config_error_set(reterr, f->origin, -EINVAL,
                                                "%s from %s contains whitespace, "
                                                "control or non-ASCII characters",
                                                f->key_what, source);
        }
        /* raw is not NUL-terminated: no strndup(), which may read up to a NUL. */
        key = malloc(len + 1);
        if (key) {
                memcpy(key, raw, len);
                key[len] = '\0';
        }
        src = strdup(source);
        if (!key || !src) {
                apikey_free(key);
                free(src);
                return config_error_set(reterr, f->origin, -ENOMEM, "out of memory");
        }
        f->key = key;
        f->source = src;
        return 1;
}

/*
 * Reads a key file, refusing one that "others" may access, as ssh and OpenBSD's
 * check_file_secrecy() do: a readable key has leaked already, a writable one can be swapped.
 * With optional (the systemd credential), a missing or empty file is "not found" (0);
 * otherwise it is an error, because a configured file that is not there is a mistake to
 * report rather than to paper over with the next source. Returns 1, 0 or -errno.
 */
static int key_from_file(struct found *f, const char *path, bool optional, const char *source,
                         struct config_error *reterr)
{
        char buf[API_KEY_MAX + 1], esc[LOG_ESCAPE_MAX];
        struct stat st;
        size_t len = 0;
        int fd, r;

        (void) log_escape(path, esc, sizeof(esc));
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                if (errno == ENOENT && optional)
                        return 0;
                return config_error_set(reterr, f->origin, -errno, "cannot open %s file %s: %m",
                                        f->what, esc);
        }
        if (fstat(fd, &st) < 0) {
                r = config_error_set(reterr, f->origin, -errno, "cannot stat %s file %s: %m",
                                     f->what, esc);
                goto out;
        }
        if (!S_ISREG(st.st_mode)) {
                r = config_error_set(reterr, f->origin, -EINVAL, "%s file %s is not a regular file",
                                     f->what, esc);
                goto out;
        }
        if (st.st_mode & 0007) {
                const char *how = st.st_mode & S_IROTH   ? "readable"
                                  : st.st_mode & S_IWOTH ? "writable"
                                                         : "accessible";
                r = config_error_set(reterr, f->origin, -EPERM,
                                     "%s file %s is %s by others (mode %04o); chmod 600 it",
                                     f->what, esc, how, (unsigned) (st.st_mode & 07777));
                goto out;
        }
        for (;;) {
                ssize_t n = read(fd, buf + len, sizeof(buf) - len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        r = config_error_set(reterr, f->origin, -errno,
                                             "cannot read %s file %s: %m", f->what, esc);
                        goto out;
                }
                if (n == 0)
                        break;
                len += (size_t) n;
                if (len == sizeof(buf)) {
                        r = config_error_set(reterr, f->origin, -EFBIG,
                                             "%s file %s is larger than %d bytes", f->what, esc,
                                             API_KEY_MAX);
                        goto out;
                }
        }
        r = take_key(f, buf, len, source, reterr);
        if (r == 0 && !optional)
                r = config_error_set(reterr, f->origin, -ENOKEY, "%s file %s is empty", f->what,
                                     esc);
out:
        explicit_bzero(buf, sizeof(buf));
        (void) safe_close(fd);
        return r;
}

static int key_from_env(struct found *f, const char *variable, struct config_error *reterr)
{
        char source[128];
        const char *v = getenv(variable);

        if (!v)
                return 0;
        (void) snprintf(source, sizeof(source), "environment variable $%s", variable);
        return take_key(f, v, strlen(v), source, reterr);
}

/*
 * Tries the sources in the documented order; see apikey.h. An unset or empty variable
 * named by src->env falls through to the next source, since the same config may be run
 * both under systemd (credential) and by hand (environment). Returns 1 (found), 0 or -errno.
 */
static int lookup(const struct apikey_sources *src, struct found *f, struct config_error *reterr)
{
        const char *creds;
        char esc[LOG_ESCAPE_MAX], source[LOG_ESCAPE_MAX + 16], unset[128] = "";
        int r;

        if (src->file) {
                (void) snprintf(source, sizeof(source), "file %s",
                                log_escape(src->file, esc, sizeof(esc)));
                return key_from_file(f, src->file, false, source, reterr);
        }
        if (src->env) {
                r = key_from_env(f, src->env, reterr);
                if (r != 0)
                        return r;
                (void) snprintf(unset, sizeof(unset), " ($%s is unset or empty)", src->env);
        }
        creds = getenv("CREDENTIALS_DIRECTORY");
        if (creds && *creds) {
                _cleanup_free_ char *path = NULL;

                if (asprintf(&path, "%s/api-key", creds) < 0)
                        return config_error_set(reterr, f->origin, -ENOMEM, "out of memory");
                r = key_from_file(f, path, true, "systemd credential api-key", reterr);
                if (r != 0)
                        return r;
        }
        r = key_from_env(f, "CONNECT_API_KEY", reterr);
        if (r != 0)
                return r;
        return config_error_set(reterr, f->origin, -ENOKEY,
                                "no API key found%s: set server.api_key_file or "
                                "server.api_key_env, add LoadCredential=api-key:... to the "
                                "unit, or set $CONNECT_API_KEY",
                                unset);
}

int apikey_resolve(const struct apikey_sources *src, char **ret_key, char **ret_source,
                   struct config_error *reterr)
{
        struct found f = {
                .origin = src->origin ? src->origin : "api key",
                .what = "api key",
                .key_what = "the API key",
        };
        int r;

        r = lookup(src, &f, reterr);
        if (r < 0)
                return r;
        /* lookup() reports "not found" itself, so 0 cannot reach here; be safe anyway. */
        if (!f.key)
                return config_error_set(reterr, f.origin, -ENOKEY, "no API key found");
        *ret_key = f.key;
        *ret_source = f.source;
        return 0;
}

void apikey_free(char *key)
{
        if (!key)
                return;
        explicit_bzero(key, strlen(key));
        free(key);
}

/* One half of the S3 pair from one source; f's what/key_what say which half. */
static void s3_found_init(struct found *f, const char *origin, bool secret)
{
        *f = (struct found){
                .origin = origin,
                .what = secret ? "S3 secret access key" : "S3 access key id",
                .key_what = secret ? "the S3 secret access key" : "the S3 access key id",
        };
}

static void found_drop(struct found *f)
{
        apikey_free(f->key);
        free(f->source);
        f->key = f->source = NULL;
}

/* Both halves found (1), neither (0), one only (an error naming the missing one). */
static int s3_pair(struct found *id, struct found *secret, int rid, int rsecret, const char *where,
                   struct config_error *reterr)
{
        if (rid < 0 || rsecret < 0)
                return rid < 0 ? rid : rsecret;
        if (rid > 0 && rsecret > 0)
                return 1;
        if (rid == 0 && rsecret == 0)
                return 0;
        found_drop(id);
        found_drop(secret);
        return config_error_set(reterr, id->origin, -ENOKEY, "%s: found the S3 %s but not the %s",
                                where, rid > 0 ? "access key id" : "secret access key",
                                rid > 0 ? "secret access key" : "access key id");
}

static int s3_lookup(const struct s3cred_sources *src, struct found *id, struct found *secret,
                     char *source, size_t size, struct config_error *reterr)
{
        char esc[LOG_ESCAPE_MAX], s1[LOG_ESCAPE_MAX + 16], s2[LOG_ESCAPE_MAX + 16];
        const char *creds;
        int r1, r2, r;

        if (src->access_key_id_file || src->secret_access_key_file) {
                if (!src->access_key_id_file || !src->secret_access_key_file)
                        return config_error_set(reterr, id->origin, -EINVAL,
                                                "archive.s3: set both access_key_id_file and "
                                                "secret_access_key_file, or neither");
                (void) snprintf(s1, sizeof(s1), "file %s",
                                log_escape(src->access_key_id_file, esc, sizeof(esc)));
                (void) snprintf(s2, sizeof(s2), "file %s",
                                log_escape(src->secret_access_key_file, esc, sizeof(esc)));
                r1 = key_from_file(id, src->access_key_id_file, false, s1, reterr);
                if (r1 < 0)
                        return r1;
                r2 = key_from_file(secret, src->secret_access_key_file, false, s2, reterr);
                if (r2 < 0)
                        return r2;
                (void) snprintf(source, size, "files %s and %s", src->access_key_id_file,
                                src->secret_access_key_file);
                return 1;
        }
        creds = getenv("CREDENTIALS_DIRECTORY");
        if (creds && *creds) {
                _cleanup_free_ char *p1 = NULL, *p2 = NULL;

                if (asprintf(&p1, "%s/s3-access-key-id", creds) < 0 ||
                    asprintf(&p2, "%s/s3-secret-access-key", creds) < 0)
                        return config_error_set(reterr, id->origin, -ENOMEM, "out of memory");
                r1 = key_from_file(id, p1, true, "systemd credential s3-access-key-id", reterr);
                r2 = r1 < 0 ? 0
                            : key_from_file(secret, p2, true,
                                            "systemd credential s3-secret-access-key", reterr);
                r = s3_pair(id, secret, r1, r2, "systemd credentials", reterr);
                if (r != 0) {
                        (void) snprintf(source, size,
                                        "systemd credentials s3-access-key-id and "
                                        "s3-secret-access-key");
                        return r;
                }
        }
        r1 = key_from_env(id, "AWS_ACCESS_KEY_ID", reterr);
        r2 = r1 < 0 ? 0 : key_from_env(secret, "AWS_SECRET_ACCESS_KEY", reterr);
        r = s3_pair(id, secret, r1, r2, "environment", reterr);
        if (r != 0) {
                (void) snprintf(source, size,
                                "environment variables $AWS_ACCESS_KEY_ID and "
                                "$AWS_SECRET_ACCESS_KEY");
                return r;
        }
        return config_error_set(
                reterr, id->origin, -ENOKEY,
                "no S3 credentials found: set archive.s3.access_key_id_file "
                "and secret_access_key_file, add LoadCredential=s3-access-key-id:... "
                "and s3-secret-access-key:... to the unit, or set "
                "$AWS_ACCESS_KEY_ID and $AWS_SECRET_ACCESS_KEY");
}

int s3_credentials_resolve(const struct s3cred_sources *src, char **ret_id, char **ret_secret,
                           char **ret_source, struct config_error *reterr)
{
        const char *origin = src->origin ? src->origin : "archive.s3";
        struct found id, secret;
        char source[2 * LOG_ESCAPE_MAX + 64];
        char *s;
        int r;

        s3_found_init(&id, origin, false);
        s3_found_init(&secret, origin, true);
        r = s3_lookup(src, &id, &secret, source, sizeof(source), reterr);
        if (r >= 0 && (!id.key || !secret.key))
                r = config_error_set(reterr, origin, -ENOKEY, "no S3 credentials found");
        /* The id goes into "id:secret" (CURLOPT_USERPWD): a colon in it would move the split. */
        if (r >= 0 && strchr(id.key, ':'))
                r = config_error_set(reterr, origin, -EINVAL,
                                     "the S3 access key id from %s contains a colon", id.source);
        if (r >= 0 && !(s = strdup(source)))
                r = config_error_set(reterr, origin, -ENOMEM, "out of memory");
        if (r < 0) {
                found_drop(&id);
                found_drop(&secret);
                return r;
        }
        free(id.source);
        free(secret.source);
        *ret_id = id.key;
        *ret_secret = secret.key;
        *ret_source = s;
        return 0;
}

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
                                                "the API key from %s contains whitespace, "
                                                "control or non-ASCII characters",
                                                source);
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
                return config_error_set(reterr, f->origin, -errno,
                                        "cannot open api key file %s: %m", esc);
        }
        if (fstat(fd, &st) < 0) {
                r = config_error_set(reterr, f->origin, -errno, "cannot stat api key file %s: %m",
                                     esc);
                goto out;
        }
        if (!S_ISREG(st.st_mode)) {
                r = config_error_set(reterr, f->origin, -EINVAL,
                                     "api key file %s is not a regular file", esc);
                goto out;
        }
        if (st.st_mode & 0007) {
                const char *how = st.st_mode & S_IROTH   ? "readable"
                                  : st.st_mode & S_IWOTH ? "writable"
                                                         : "accessible";
                r = config_error_set(reterr, f->origin, -EPERM,
                                     "api key file %s is %s by others (mode %04o); chmod 600 it",
                                     esc, how, (unsigned) (st.st_mode & 07777));
                goto out;
        }
        for (;;) {
                ssize_t n = read(fd, buf + len, sizeof(buf) - len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        r = config_error_set(reterr, f->origin, -errno,
                                             "cannot read api key file %s: %m", esc);
                        goto out;
                }
                if (n == 0)
                        break;
                len += (size_t) n;
                if (len == sizeof(buf)) {
                        r = config_error_set(reterr, f->origin, -EFBIG,
                                             "api key file %s is larger than %d bytes", esc,
                                             API_KEY_MAX);
                        goto out;
                }
        }
        r = take_key(f, buf, len, source, reterr);
        if (r == 0 && !optional)
                r = config_error_set(reterr, f->origin, -ENOKEY, "api key file %s is empty", esc);
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
        struct found f = {.origin = src->origin ? src->origin : "api key"};
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

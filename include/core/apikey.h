#pragma once

/*
 * The Connect API key: where it may come from, which files are trusted to hold it, and its
 * one heap copy. Both programs (the daemon and connect-jobs) look it up the same way.
 */

struct config_error;

/* What the operator configured; every field may be NULL. */
struct apikey_sources {
        const char *file;   /* server.api_key_file: must exist and hold a key when set */
        const char *env;    /* server.api_key_env: a variable to read; unset falls through */
        const char *origin; /* messages start "<origin>: " (the config file); NULL: "api key" */
};

/*
 * Finds the API key, first found wins: src->file; the variable named by src->env;
 * $CREDENTIALS_DIRECTORY/api-key (systemd LoadCredential=api-key:...); $CONNECT_API_KEY.
 * Surrounding whitespace is stripped; whitespace, control or non-ASCII characters inside
 * are refused (the key goes into an HTTP header). A key file that "others" may read or
 * write is refused. An empty key counts as not found, except from src->file, where a
 * missing or empty file is an error rather than a reason to try the next source.
 *
 * On success *ret_key owns the key (free it with apikey_free()) and *ret_source says where
 * it came from ("file /etc/...", "environment variable $CONNECT_API_KEY", "systemd
 * credential api-key"). On failure neither is touched and reterr says why, never with the
 * key. Returns 0, -ENOKEY (nothing found), -EPERM (file mode), -EINVAL (bad characters,
 * not a regular file), -EFBIG, -ENOMEM or the -errno of open/read.
 */
int apikey_resolve(const struct apikey_sources *src, char **ret_key, char **ret_source,
                   struct config_error *reterr);

/* Wipes the key (explicit_bzero) and frees it. Accepts NULL. */
void apikey_free(char *key);

/* The S3 credentials (archive.s3): what the operator configured; every field may be NULL. */
struct s3cred_sources {
        const char *access_key_id_file;     /* archive.s3.access_key_id_file */
        const char *secret_access_key_file; /* archive.s3.secret_access_key_file */
        const char *origin;                 /* as in struct apikey_sources */
};

/*
 * Finds the S3 access key id and secret access key, first found wins, always as a pair: the
 * two files (both must be set, exist and hold a value; mode checked as for the API key);
 * $CREDENTIALS_DIRECTORY/s3-access-key-id and s3-secret-access-key (systemd
 * LoadCredential=); $AWS_ACCESS_KEY_ID and $AWS_SECRET_ACCESS_KEY. Half a pair at a
 * source is an error, not a reason to try the next one. Whitespace is stripped as for the
 * API key. On success the caller owns *ret_id and *ret_secret (apikey_free() each) and
 * *ret_source (free()). Returns 0, -ENOKEY (nothing found) or another -errno; reterr never
 * holds either value.
 */
int s3_credentials_resolve(const struct s3cred_sources *src, char **ret_id, char **ret_secret,
                           char **ret_source, struct config_error *reterr);

#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config_error.h"
#include "macro.h"

#define CONFIG_DEFAULT_PATH "/etc/connect-job-archiver/config.yaml"

struct config_content {
        char *guid; /* validated UUID text, as written in the config */
        char *name; /* optional label, NULL when absent */
};

/* One rule of discover.rules: it selects an item when every key it has holds. */
struct config_rule {
        bool all;    /* "all: true": every item (alone, or ANDed with the other keys) */
        char *tag;   /* a path of tag names from the top ("Finance/Reports"), or NULL */
        char *owner; /* the owner's username, or NULL */
        char *type;  /* Connect's app_mode, or NULL */
        size_t line; /* 1-based line of the rule in the file, for messages */
};

struct config {
        char *path; /* the file this config was read from */

        /* server: */
        char *server_url;                 /* no trailing '/'; from the file or $CONNECT_SERVER */
        char *api_key_file;               /* NULL when not set */
        char *api_key_env;                /* NULL when not set */
        char *ca_file;                    /* NULL when not set */
        bool verify_tls;                  /* default true */
        unsigned timeout_seconds;         /* 1..3600, default 30 */
        unsigned max_concurrent_requests; /* 1..256, default 8 */

        /* archive: */
        char *archive_dir;       /* required */
        int compression_level;   /* 1..9, default 6 */
        unsigned retention_days; /* 0..36500, default 0 = keep forever */
        uint64_t min_free_mb;    /* 0..1048576, default 100 */

        /* archive.s3: (optional) the archive in an S3-compatible object store; archive_dir
         * then holds only local state (the lock, staged uploads). */
        bool s3;                         /* the section is there */
        char *s3_endpoint;               /* "http(s)://host[:port]", no trailing '/' */
        char *s3_bucket;                 /* a valid bucket name */
        char *s3_prefix;                 /* NULL, or "a/b" (no leading or trailing '/') */
        char *s3_region;                 /* default "us-east-1" */
        char *s3_access_key_id_file;     /* NULL when not set */
        char *s3_secret_access_key_file; /* NULL when not set */

        /* poll: */
        unsigned poll_interval_seconds;     /* 1..86400, default 60 */
        unsigned poll_max_interval_seconds; /* quiet items back off to this; >= interval */

        /* discover: (optional) */
        bool discover;                     /* the section is there: watch what Connect lists */
        unsigned discover_refresh_seconds; /* 1..86400, default 600 */
        struct config_rule *rules;         /* at least one when discover is set */
        size_t n_rules;
        char **exclude; /* GUIDs never watched; unique (case-insensitive) */
        size_t n_exclude;

        char *metrics_file; /* NULL when not set */

        struct config_content *content; /* GUIDs unique (case-insensitive); at least one
                                           unless discover is set */
        size_t n_content;

        /* Filled by config_resolve_api_key(); wiped by config_free(). */
        char *api_key;
        char *api_key_source; /* where it came from, e.g. "file /etc/...", "$CONNECT_API_KEY" */

        /* Filled by config_resolve_s3_credentials(); wiped by config_free(). */
        char *s3_access_key_id;
        char *s3_secret_access_key;
        char *s3_credentials_source;
};

/*
 * Reads and validates the YAML config at path. On success *ret owns a new config with
 * defaults applied and the API key NOT yet resolved. On failure returns -EINVAL (invalid),
 * -ENOENT/-EACCES/... (unreadable) or -ENOMEM and fills reterr. Never prints, never exits.
 */
int config_load(const char *path, struct config **ret, struct config_error *reterr);

/* Same as config_load() on an in-memory document; name is used in messages as the file. */
int config_parse(const char *name, const char *data, size_t len, struct config **ret,
                 struct config_error *reterr);

/*
 * Looks up the API key from c's api_key_file and api_key_env with apikey_resolve() (see
 * apikey.h for the order and the rules) and makes it c->api_key, wiping any earlier key.
 * Messages start with c->path. Returns 0 or apikey_resolve()'s error, with reterr set and
 * c unchanged. The key never appears in reterr.
 */
int config_resolve_api_key(struct config *c, struct config_error *reterr);

/*
 * With archive.s3, looks up the S3 credentials with s3_credentials_resolve() (apikey.h: the
 * two files, then the systemd credentials, then $AWS_ACCESS_KEY_ID/$AWS_SECRET_ACCESS_KEY)
 * into c, wiping earlier ones. Without archive.s3 it does nothing. Returns 0 or -errno with
 * reterr set; neither secret ever appears in reterr.
 */
int config_resolve_s3_credentials(struct config *c, struct config_error *reterr);

void config_free(struct config *c);
void config_freep(struct config **c);

/*
 * For the operator's command when there is no config file: the settings the environment
 * gives, like the Posit SDKs. server_url is the given one, else $CONNECT_SERVER (checked as
 * the config's server.url), else NULL; every other setting has its default, and there is no
 * archive directory and no content list. The key is resolved later by
 * config_resolve_api_key() ($CREDENTIALS_DIRECTORY/api-key, then $CONNECT_API_KEY).
 * Returns 0, -EINVAL with reterr set (a bad URL), or -ENOMEM.
 */
int config_from_environment(const char *server_url, struct config **ret,
                            struct config_error *reterr);

/* Replaces c->server_url with url, checked as server.url is; origin names it in the error
 * ("--server"). Returns 0, -EINVAL with reterr set, or -ENOMEM. */
int config_set_server_url(struct config *c, const char *url, const char *origin,
                          struct config_error *reterr);

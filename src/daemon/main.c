#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>

#include "config.h"
#include "content.h"
#include "daemon.h"
#include "http.h"
#include "log.h"
#include "store.h"
#include "version.h"

#define EXIT_USAGE  2
#define EXIT_CONFIG 78 /* EX_CONFIG */
/* The service found its archive locked by another writer: the unit must not restart it
 * (RestartPreventExitStatus=), since the other one is still there. --once exits 1. */
#define EXIT_ARCHIVE_IN_USE 75 /* EX_TEMPFAIL */

static const char *arg_config = CONFIG_DEFAULT_PATH;
static bool arg_once;
static bool arg_check_config;
static bool arg_verbose;

static void help(FILE *f)
{
        fprintf(f, "Usage: connect-job-archiver [OPTIONS]\n"
                   "Archive Posit Connect job logs and error records into gzip files.\n\n"
                   "  -c, --config PATH   config file (default " CONFIG_DEFAULT_PATH ")\n"
                   "      --once          poll every content item once, archive what is due, exit\n"
                   "      --check-config  validate the config and the API key, print a summary\n"
                   "  -v, --verbose       debug logging\n"
                   "  -V, --version       print the version\n"
                   "  -h, --help          print this help\n\n"
                   "Without --once or --check-config it runs as a service (systemd Type=notify).\n"
                   "Exit status: 0 success, 1 runtime failure, 2 usage, 78 invalid config,\n"
                   "75 the service's archive is in use by another process.\n");
}

/* Prints what --check-config shows: every setting, where the key came from, never the key. */
static void print_summary(const struct config *c, FILE *f)
{
        fprintf(f, "config file:        %s\n", c->path ? c->path : "(none)");
        fprintf(f, "server url:         %s\n", c->server_url ? c->server_url : "(none)");
        if (c->api_key_source)
                fprintf(f, "api key:            from %s (not shown)\n", c->api_key_source);
        else
                fprintf(f, "api key:            not resolved\n");
        if (!c->verify_tls)
                fprintf(f, "tls:                certificates NOT verified (verify_tls: false)\n");
        else if (c->ca_file)
                fprintf(f, "tls:                verified against %s\n", c->ca_file);
        else
                fprintf(f, "tls:                verified against the system CA store\n");
        fprintf(f, "timeout:            %u s\n", c->timeout_seconds);
        fprintf(f, "max concurrent:     %u requests\n", c->max_concurrent_requests);
        if (c->s3) {
                fprintf(f, "archive:            s3 %s, bucket %s, %s%s%s, region %s\n",
                        c->s3_endpoint, c->s3_bucket, c->s3_prefix ? "prefix " : "no prefix",
                        c->s3_prefix ? c->s3_prefix : "", c->s3_prefix ? "/" : "", c->s3_region);
                if (c->s3_credentials_source)
                        fprintf(f, "s3 credentials:     from %s (not shown)\n",
                                c->s3_credentials_source);
                fprintf(f, "local state:        %s (lock, staging)\n",
                        c->archive_dir ? c->archive_dir : "(none)");
        } else {
                fprintf(f, "archive directory:  %s\n", c->archive_dir ? c->archive_dir : "(none)");
        }
        fprintf(f, "compression level:  %d\n", c->compression_level);
        if (c->retention_days)
                fprintf(f, "retention:          %u days\n", c->retention_days);
        else
                fprintf(f, "retention:          keep forever\n");
        fprintf(f, "min free space:     %" PRIu64 " MB\n", c->min_free_mb);
        fprintf(f, "poll interval:      %u s (quiet items back off to %u s)\n",
                c->poll_interval_seconds, c->poll_max_interval_seconds);
        fprintf(f, "metrics file:       %s\n", c->metrics_file ? c->metrics_file : "(none)");
        fprintf(f, "content:            %zu item%s\n", c->n_content, c->n_content == 1 ? "" : "s");
        for (size_t i = 0; i < c->n_content; i++)
                fprintf(f, "  %s  %s\n", c->content[i].guid ? c->content[i].guid : "(none)",
                        c->content[i].name ? c->content[i].name : "(no name, Connect's)");
        if (!c->discover) {
                fprintf(f, "discover:           off (only the content above)\n");
                return;
        }
        fprintf(f, "discover:           every %u s, %zu rule%s, %zu excluded\n",
                c->discover_refresh_seconds, c->n_rules, c->n_rules == 1 ? "" : "s", c->n_exclude);
        for (size_t i = 0; i < c->n_rules; i++) {
                char rule[512];
                fprintf(f, "  rule %zu (line %zu): %s\n", i + 1, c->rules[i].line,
                        content_rule_describe(&c->rules[i], rule, sizeof(rule)));
        }
        for (size_t i = 0; i < c->n_exclude; i++)
                fprintf(f, "  exclude %s\n", c->exclude[i]);
}

/*
 * --check-config with archive.s3: asks the bucket once (store_s3_open's probe), so wrong
 * credentials or a missing bucket are found before the service starts. Unreachable is only
 * a warning (the network may come later); refused credentials and no bucket fail (78).
 */
static int check_s3(const struct config *c)
{
        struct store_s3_options o;
        struct store *s = NULL;
        char why[512];
        int r;

        store_s3_options_from_config(c, &o);
        o.max_concurrent = 1;
        if (http_global_init() < 0)
                return 0;
        r = store_s3_open(&o, &s, why, sizeof(why));
        store_free(s);
        http_global_cleanup();
        if (r == -EKEYREJECTED || r == -ENOMEDIUM) {
                log_printf(LOG_ERR, "%s", why);
                return r;
        }
        if (r < 0)
                log_printf(LOG_WARNING, "%s", why);
        else
                printf("s3:                 bucket reachable, credentials accepted\n");
        return 0;
}

/* Returns 1 to go on, 0 to exit successfully, or an exit status (> 1) for bad usage. */
static int parse_argv(int argc, char *argv[])
{
        enum { ARG_ONCE = 0x100, ARG_CHECK_CONFIG };
        static const struct option options[] = {
                {"config", required_argument, NULL, 'c'},
                {"once", no_argument, NULL, ARG_ONCE},
                {"check-config", no_argument, NULL, ARG_CHECK_CONFIG},
                {"verbose", no_argument, NULL, 'v'},
                {"version", no_argument, NULL, 'V'},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        int c;

        while ((c = getopt_long(argc, argv, "c:vVh", options, NULL)) >= 0) {
                switch (c) {
                case 'c':
                        arg_config = optarg;
                        break;
                case ARG_ONCE:
                        arg_once = true;
                        break;
                case ARG_CHECK_CONFIG:
                        arg_check_config = true;
                        break;
                case 'v':
                        arg_verbose = true;
                        break;
                case 'V':
                        printf("connect-job-archiver %s\n", CJA_VERSION);
                        return 0;
                case 'h':
                        help(stdout);
                        return 0;
                default:
                        help(stderr);
                        return EXIT_USAGE;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "connect-job-archiver: unexpected argument '%s'\n", argv[optind]);
                return EXIT_USAGE;
        }
        if (arg_once && arg_check_config) {
                fprintf(stderr,
                        "connect-job-archiver: --once and --check-config exclude each other\n");
                return EXIT_USAGE;
        }
        return 1;
}

int main(int argc, char *argv[])
{
        struct config_error err = {{0}};
        struct config *config = NULL;
        struct daemon *d = NULL;
        struct daemon_counts counts = {0};
        int r;

        r = parse_argv(argc, argv);
        if (r != 1)
                return r;
        /* The process will hold the API key: no core dumps, no ptrace by other users. */
        (void) prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
        if (arg_verbose)
                log_set_max_level(LOG_DEBUG);

        r = config_load(arg_config, &config, &err);
        if (r >= 0)
                r = config_resolve_api_key(config, &err);
        if (r >= 0)
                r = config_resolve_s3_credentials(config, &err);
        if (r < 0) {
                log_printf(LOG_ERR, "%s", err.message);
                config_free(config);
                return EXIT_CONFIG;
        }
        if (arg_check_config) {
                print_summary(config, stdout);
                r = config->s3 ? check_s3(config) : 0;
                config_free(config);
                return r < 0 ? EXIT_CONFIG : EXIT_SUCCESS;
        }

        /* A closed connection must be an error return, never a signal. */
        (void) signal(SIGPIPE, SIG_IGN);
        /* Past RLIMIT_FSIZE a write fails with EFBIG, which is reported and retried like a
         * full disk; SIGXFSZ's default would kill the daemon instead. */
        (void) signal(SIGXFSZ, SIG_IGN);
        if (http_global_init() < 0) {
                log_printf(LOG_ERR, "cannot initialize libcurl");
                config_free(config);
                return EXIT_FAILURE;
        }
        r = daemon_new(config, arg_verbose, &d);
        if (r < 0) {
                (void) log_errno(LOG_ERR, r, "cannot start: %m");
                config_free(config);
                http_global_cleanup();
                return EXIT_FAILURE;
        }
        if (arg_once)
                r = daemon_run_once(d, &counts);
        else
                r = daemon_run_forever(d, arg_config);
        daemon_free(d);
        http_global_cleanup();
        if (r == -EBUSY && !arg_once)
                return EXIT_ARCHIVE_IN_USE;
        /* S3 refused the credentials or has no such bucket: a restart would not help. */
        if (r == -EKEYREJECTED || r == -ENOMEDIUM)
                return EXIT_CONFIG;
        if (r < 0)
                return EXIT_FAILURE;
        /* --once: 1 unless everything due was archived. */
        if (counts.stopped || counts.disk_low || counts.jobs_failed > 0 || counts.lists_failed > 0)
                return EXIT_FAILURE;
        return EXIT_SUCCESS;
}

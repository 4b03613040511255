/*
 * s3-read-ops: the read operations of include/archive/s3_read.h from the command line, for
 * tests/s3/test_s3_read.py, which checks them against what boto3 reads of the same bucket.
 *
 *   s3-read-ops ENDPOINT BUCKET PREFIX list PATH [AFTER [UNTIL]]    "name size" lines
 *   s3-read-ops ENDPOINT BUCKET PREFIX get PATH NAME [OFFSET LENGTH] the bytes, to stdout
 *   s3-read-ops ENDPOINT BUCKET PREFIX getfd PATH NAME FILE [OFFSET LENGTH]
 *   s3-read-ops ENDPOINT BUCKET PREFIX many PATH NAME...            "name result length" lines
 *   s3-read-ops ENDPOINT BUCKET PREFIX at PATH NAME FILE SIZE OFFSET LENGTH...
 *                                FILE made SIZE bytes (a hole), the ranges GET into it at once
 *
 * PREFIX "-" is none; AFTER/UNTIL "-" are none. Credentials from AWS_ACCESS_KEY_ID and
 * AWS_SECRET_ACCESS_KEY. Exit 0, or 1 with the error on stderr.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http.h"
#include "s3_read.h"
#include "store.h"

static const char *opt(const char *s)
{
        return strcmp(s, "-") == 0 ? NULL : s;
}

int main(int argc, char *argv[])
{
        struct store_s3_options o = {.region = "us-east-1", .max_concurrent = 8};
        struct store *s = NULL;
        char why[512];
        int r = -EINVAL;

        if (argc < 6) {
                fprintf(stderr, "usage: s3-read-ops ENDPOINT BUCKET PREFIX COMMAND ARGS\n");
                return 2;
        }
        o.endpoint = argv[1];
        o.bucket = argv[2];
        o.prefix = opt(argv[3]);
        o.access_key_id = getenv("AWS_ACCESS_KEY_ID");
        o.secret_access_key = getenv("AWS_SECRET_ACCESS_KEY");
        if (http_global_init() < 0)
                return 1;
        r = store_s3_open(&o, &s, why, sizeof(why));
        if (r < 0) {
                fprintf(stderr, "s3-read-ops: %s\n", why);
                http_global_cleanup();
                return 1;
        }
        const char *cmd = argv[4], *path = argv[5];
        if (strcmp(cmd, "list") == 0) {
                struct s3_object *objs = NULL;
                size_t n = 0;
                r = s3_list_objects(s, path, argc > 6 ? opt(argv[6]) : NULL,
                                    argc > 7 ? opt(argv[7]) : NULL, &objs, &n);
                for (size_t i = 0; r >= 0 && i < n; i++)
                        printf("%s %" PRIu64 "\n", objs[i].name, objs[i].size);
                s3_objects_free(objs, n);
        } else if ((strcmp(cmd, "get") == 0 && argc >= 7) ||
                   (strcmp(cmd, "getfd") == 0 && argc >= 8)) {
                bool to_fd = cmd[3] == 'f';
                int a = to_fd ? 8 : 7;
                struct s3_get g = {.path = path, .name = argv[6], .fd = -1};
                if (argc >= a + 2) {
                        g.offset = strtoull(argv[a], NULL, 10);
                        g.length = strtoull(argv[a + 1], NULL, 10);
                }
                if (to_fd)
                        g.fd = open(argv[7], O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
                r = to_fd && g.fd < 0 ? -errno : s3_get_many(s, &g, 1);
                if (r >= 0 && !to_fd && fwrite(g.buf, 1, g.len, stdout) != g.len)
                        r = -EIO;
                if (g.fd >= 0)
                        (void) close(g.fd);
                free(g.buf);
        } else if (strcmp(cmd, "at") == 0 && argc >= 11 && (argc - 9) % 2 == 0) {
                size_t n = (size_t) (argc - 9) / 2;
                struct s3_get *g = calloc(n, sizeof(*g));
                int fd = open(argv[7], O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
                r = !g ? -ENOMEM : fd < 0 ? -errno : 0;
                if (r >= 0 && ftruncate(fd, (off_t) strtoull(argv[8], NULL, 10)) < 0)
                        r = -errno;
                for (size_t i = 0; r >= 0 && i < n; i++)
                        g[i] = (struct s3_get){.path = path,
                                               .name = argv[6],
                                               .offset = strtoull(argv[9 + 2 * i], NULL, 10),
                                               .length = strtoull(argv[10 + 2 * i], NULL, 10),
                                               .fd = fd,
                                               .at_offset = true};
                if (r >= 0)
                        r = s3_get_many(s, g, n);
                for (size_t i = 0; r >= 0 && i < n; i++)
                        if (g[i].len != g[i].length)
                                r = -EPROTO;
                if (fd >= 0)
                        (void) close(fd);
                free(g);
        } else if (strcmp(cmd, "many") == 0 && argc >= 7) {
                size_t n = (size_t) (argc - 6);
                struct s3_get *g = calloc(n, sizeof(*g));
                r = g ? 0 : -ENOMEM;
                for (size_t i = 0; g && i < n; i++)
                        g[i] = (struct s3_get){.path = path, .name = argv[6 + i], .fd = -1};
                if (g)
                        (void) s3_get_many(s, g, n);
                for (size_t i = 0; g && i < n; i++) {
                        printf("%s %d %zu\n", g[i].name, g[i].result, g[i].len);
                        free(g[i].buf);
                }
                free(g);
        } else {
                fprintf(stderr, "s3-read-ops: unknown command or missing arguments\n");
                r = -EINVAL;
        }
        if (r < 0)
                fprintf(stderr, "s3-read-ops: %s\n", strerror(-r));
        store_free(s);
        http_global_cleanup();
        return r < 0 ? 1 : 0;
}

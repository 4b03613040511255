/*
 * A stand-in for connect-jobs' archive commands until its command table exists:
 *
 *   cja-search [-c CONFIG] [--archive DIR] ls|search [ARGS...]
 *
 * The config gives the archive folder and the content names.
 */
#include <stdio.h>
#include <string.h>

#include "archive_cmd.h"
#include "config.h"

int main(int argc, char **argv)
{
        struct config *cfg = NULL;
        struct config_error cerr;
        struct archive_cmd_ctx ctx = {.prog = "cja-search"};
        int i = 1, r;

        while (i + 1 < argc && argv[i][0] == '-') {
                if (strcmp(argv[i], "-c") == 0) {
                        if (config_load(argv[i + 1], &cfg, &cerr) < 0) {
                                fprintf(stderr, "cja-search: %s\n", cerr.message);
                                return 78;
                        }
                        ctx.archive_dir = cfg->archive_dir;
                        ctx.content = cfg->content;
                        ctx.n_content = cfg->n_content;
                } else if (strcmp(argv[i], "--archive") == 0)
                        ctx.archive_dir = argv[i + 1];
                else
                        break;
                i += 2;
        }
        if (i >= argc || !ctx.archive_dir) {
                fprintf(stderr, "usage: cja-search [-c CONFIG] [--archive DIR] ls|search ...\n");
                config_free(cfg);
                return 2;
        }
        if (strcmp(argv[i], "ls") == 0)
                r = archive_cmd_ls(&ctx, argc - i, argv + i);
        else if (strcmp(argv[i], "search") == 0)
                r = archive_cmd_search(&ctx, argc - i, argv + i);
        else {
                fprintf(stderr, "cja-search: unknown command \"%s\"\n", argv[i]);
                r = 2;
        }
        config_free(cfg);
        return r;
}

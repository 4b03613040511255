/*
 * Compresses files the way the archiver does (each file on its own) and prints the total
 * size and the CPU time, for one compressor, level and block size. bench/compress.sh builds
 * it and makes the level and block-size tables of bench/README.md with it.
 *
 *   compress_levels zlib LEVEL LISTFILE          one gzip stream per file (the archiver
 *                                                before blocks: deflateInit2(15 + 16))
 *   compress_levels blocked LEVEL BLOCK LISTFILE gzblock members of BLOCK bytes, libdeflate
 *                                                at gzblock_level(LEVEL) (the archiver now)
 *
 * LISTFILE names one file per line; they are all read into memory first, so only the
 * compression is timed (CPU time of this one thread, best of 3 passes).
 * Output: "<in bytes> <out bytes> <cpu seconds>".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libdeflate.h>
#include <zlib.h>

#include "gzblock.h"

struct file {
        unsigned char *data;
        size_t len;
};

static double cpu_now(void)
{
        struct timespec t;

        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
        return (double) t.tv_sec + (double) t.tv_nsec / 1e9;
}

static size_t zlib_size(const unsigned char *in, size_t len, int level, unsigned char *out,
                        size_t cap)
{
        z_stream zs = {0};
        size_t total = 0;
        int z;

        if (deflateInit2(&zs, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
                abort();
        zs.next_in = (unsigned char *) in;
        zs.avail_in = (uInt) len;
        do {
                zs.next_out = out;
                zs.avail_out = (uInt) cap;
                z = deflate(&zs, Z_FINISH);
                total += cap - zs.avail_out;
        } while (z == Z_OK);
        if (z != Z_STREAM_END)
                abort();
        deflateEnd(&zs);
        return total;
}

int main(int argc, char **argv)
{
        int blocked = argc == 5 && strcmp(argv[1], "blocked") == 0;
        if (!blocked && !(argc == 4 && strcmp(argv[1], "zlib") == 0)) {
                fprintf(stderr, "usage: %s zlib LEVEL LIST | blocked LEVEL BLOCK LIST\n", argv[0]);
                return 2;
        }
        int level = atoi(argv[2]);
        size_t block = blocked ? strtoul(argv[3], NULL, 0) : 0;
        FILE *list = fopen(argv[blocked ? 4 : 3], "r");
        struct file *files = NULL;
        size_t n = 0, in = 0, out_total = 0;
        char path[4096];

        if (!list || (blocked && (block == 0 || block > GZBLOCK_USIZE_MAX)))
                return 2;
        while (fgets(path, sizeof(path), list)) {
                path[strcspn(path, "\n")] = 0;
                FILE *f = fopen(path, "rb");
                if (!f)
                        return 1;
                fseek(f, 0, SEEK_END);
                long len = ftell(f);
                rewind(f);
                files = realloc(files, (n + 1) * sizeof(*files));
                files[n].len = (size_t) len;
                files[n].data = malloc((size_t) len + 1);
                if (fread(files[n].data, 1, (size_t) len, f) != (size_t) len)
                        return 1;
                fclose(f);
                in += (size_t) len;
                n++;
        }
        fclose(list);

        size_t cap = gzblock_bound(GZBLOCK_USIZE_MAX);
        unsigned char *out = malloc(cap);
        struct libdeflate_compressor *c =
                blocked ? libdeflate_alloc_compressor(gzblock_level(level)) : NULL;
        double best = 1e30;
        for (int pass = 0; pass < 3; pass++) {
                double t0 = cpu_now();
                out_total = 0;
                for (size_t i = 0; i < n; i++) {
                        if (!blocked) {
                                out_total +=
                                        zlib_size(files[i].data, files[i].len, level, out, cap);
                                continue;
                        }
                        size_t off = 0;
                        do {
                                size_t len =
                                        files[i].len - off < block ? files[i].len - off : block;
                                ssize_t m = gzblock_compress(c, files[i].data + off, len, out, cap);
                                if (m < 0)
                                        abort();
                                out_total += (size_t) m;
                                off += len;
                        } while (off < files[i].len);
                }
                double t = cpu_now() - t0;
                if (t < best)
                        best = t;
        }
        printf("%zu %zu %.3f\n", in, out_total, best);
        return 0;
}

/* What every store shares (store.h): helpers written once on top of the operations. */

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "store.h"
#include "util.h"

void store_names_free(char **names, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        free(names);
}

int store_put_tmp(struct store_dir *d, const char *name, const void *data, size_t len)
{
        int fd, r;

        r = store_tmp_create(d, name, &fd);
        if (r < 0)
                return r;
        r = write_all(fd, data, len);
        if (close(fd) < 0 && r == 0)
                r = -errno;
        if (r < 0)
                (void) store_tmp_remove(d, name);
        return r;
}

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "archived.h"
#include "connect.h"
#include "util.h"

int archived_job_record(const char *dir, const char *guid, const struct job *job, char **ret_path)
{
        struct stat st;
        char *path;

        if (!dir || !job->key || job->invalid || !path_component_is_safe(guid, strlen(guid)) ||
            !connect_job_key_is_safe(job->key, strlen(job->key)))
                return 0;
        if (asprintf(&path, "%s/%s/%04d/%02d/%02d/%s.json", dir, guid, job->year, job->month,
                     job->day, job->key) < 0)
                return -ENOMEM;
        /* stat, not open: no atime update, nothing held. */
        if (stat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
                free(path);
                return 0;
        }
        if (ret_path)
                *ret_path = path;
        else
                free(path);
        return 1;
}

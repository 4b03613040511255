#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "archive.h"
#include "paths.h"
#include "archive_scan.h"
#include "archived.h"
#include "connect.h"
#include "macro.h"
#include "util.h"

int archived_job_record(const char *dir, const char *guid, const struct job *job, char **ret_path)
{
        _cleanup_close_ int rootfd = -1;
        char day[256], name[300];
        struct stat st;
        char *path;

        if (!dir || !job->key || job->invalid || !path_component_is_safe(guid, strlen(guid)) ||
            !connect_job_key_is_safe(job->key, strlen(job->key)))
                return 0;
        (void) snprintf(day, sizeof(day), "%s/%04d/%02d/%02d", guid, job->year, job->month,
                        job->day);
        (void) snprintf(name, sizeof(name), "%s.json", job->key);
        if (asprintf(&path, "%s/%s/%s", dir, day, name) < 0)
                return -ENOMEM;
        /* list asks this of every job: a missing record answers "no" in one stat, without
         * opening the root; one that is there gets the daemon's test, where a symlink on the
         * way makes it "no". stat, not open: no atime update, nothing held. */
        if (stat(path, &st) < 0 || (rootfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
            !archive_file_beneath(rootfd, day, name, NULL)) {
                free(path);
                return 0;
        }
        if (ret_path)
                *ret_path = path;
        else
                free(path);
        return 1;
}

int archived_find_key(const char *dir, const char *guid, const char *key, char **ret_path)
{
        _cleanup_close_ int rootfd = -1;
        struct scan_job j;
        char rel[512];
        int r;

        if (!dir || !connect_job_key_is_safe(key, strlen(key)))
                return 0;
        rootfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (rootfd < 0)
                return 0;
        r = scan_find_job(rootfd, guid, key, NULL, NULL, &j);
        if (r <= 0)
                return r;
        if (ret_path && (!scan_job_path(&j, ".json", rel, sizeof(rel)) ||
                         asprintf(ret_path, "%s/%s", dir, rel) < 0))
                r = -ENOMEM;
        scan_job_done(&j);
        return r;
}

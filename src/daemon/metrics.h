#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The Prometheus text file for node_exporter's textfile collector: written to a temporary
 * beside it and renamed, so the collector never reads half a file.
 */

struct metrics_item {
        const char *guid;
        const char *name;           /* NULL: none */
        int64_t last_success_epoch; /* 0: never */
        double last_poll_seconds;   /* how long its last poll took, list to last job */
        bool failing;
};

struct metrics {
        uint64_t jobs_archived;
        uint64_t jobs_failed;
        uint64_t list_failures;
        uint64_t bytes_downloaded;
        uint64_t bytes_written;
        int64_t start_epoch;
        bool connect_up;
        bool disk_paused;
        size_t jobs_stuck; /* jobs that failed STUCK_AFTER_FAILURES polls in a row or more */
        /* Items watched: listed in content:, selected by discover rules (both: counted in
         * each), and the items the last content listing held (0: no discovery). */
        size_t items_configured, items_discovered, content_listed;
        bool discovery;         /* discover: is configured */
        bool discovery_failing; /* the last content listing failed */
        const struct metrics_item *items;
        size_t n_items;
};

/* Formats the metrics into a malloc'd string (exposed for tests). */
int metrics_format(const struct metrics *m, char **ret);

/* Writes path atomically. Returns 0 or -errno. */
int metrics_write(const char *path, const struct metrics *m);

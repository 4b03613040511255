#pragma once

struct cli;

/* connect-jobs reindex: builds the archive's search catalog from its records and logs.
 * Returns the exit status: 0, 1 (the archive is in use or could not be indexed), 78. */
int catalog_cmd_reindex(struct cli *c);

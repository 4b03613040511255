#pragma once

/*
 * Whether two parsed jobs are the same, their whole JSON object included: what the unit
 * tests and the fuzzer check of the streaming list parser against the whole-buffer one.
 */

#include <stdbool.h>
#include <string.h>

#include <json-c/json.h>

#include "connect.h"

static inline bool job_equal(const struct job *a, const struct job *b)
{
        if ((a->invalid == NULL) != (b->invalid == NULL) ||
            (a->invalid && strcmp(a->invalid, b->invalid) != 0))
                return false;
        if ((a->key == NULL) != (b->key == NULL) || (a->key && strcmp(a->key, b->key) != 0))
                return false;
        return a->status == b->status && a->date_source == b->date_source &&
               a->date_epoch == b->date_epoch && a->year == b->year && a->month == b->month &&
               a->day == b->day && json_object_equal(a->obj, b->obj);
}

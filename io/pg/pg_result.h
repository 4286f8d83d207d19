/* pg_result.h: a statement's result as io/pg hands it upward: an opaque
 * handle, its shape, and its values converted to C types. */
#ifndef ACTIO_IO_PG_RESULT_H
#define ACTIO_IO_PG_RESULT_H

#include <stddef.h>
#include <stdint.h>

#include "io/pg/pg_types.h"

/* Read only once made: any thread may read it. NULL reads as an empty
 * result (no rows, no columns, tag ""); a value at a NULL result or out of
 * range is ACTIO_EINVAL. */
typedef struct actio__pg_result actio__pg_result;

/* NULL accepted. */
void actio__pg_result_free(actio__pg_result *r);
/* A result with no rows, as a command gives: what a request answered
 * without the server returns. NULL when out of memory. */
actio__pg_result *actio__pg_result_empty(void);

size_t actio__pg_result_rows(const actio__pg_result *r);
int actio__pg_result_columns(const actio__pg_result *r);
/* The name and type OID of col, or NULL / 0 when out of range. */
const char *actio__pg_result_column_name(const actio__pg_result *r, int col);
uint32_t actio__pg_result_column_type(const actio__pg_result *r, int col);
/* The number of the column called `name`, or -1. */
int actio__pg_result_column_index(const actio__pg_result *r, const char *name);
/* The command tag ("SELECT 3") and the rows it counts. */
const char *actio__pg_result_command_tag(const actio__pg_result *r);
uint64_t actio__pg_result_affected(const actio__pg_result *r);

/* The value at (row, col), borrowed from the result (read it with
 * pg_types.h): 0, or ACTIO_EINVAL (out of range, NULL r or out). */
int actio__pg_value(const actio__pg_result *r, size_t row, int col, actio__pg_val *out);

#endif

/* pg_result.h: a statement's result as io/pg hands it upward: an opaque
 * handle, its shape, and its values converted to C types. */
#ifndef ACTIO_IO_PG_RESULT_H
#define ACTIO_IO_PG_RESULT_H

#include <stddef.h>
#include <stdint.h>

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

/*
 * The value at (row, col), read from text and binary results alike: 0,
 * ACTIO_EINVAL (out of range, or out NULL), ACTIO_ENULL (SQL NULL; *out
 * untouched) or ACTIO_ETYPE (it does not convert). is_null: 1, 0 or
 * ACTIO_EINVAL. text is borrowed from the result; bytea is decoded into
 * *data (malloc'd, the caller's) or fails with ACTIO_ENOMEM.
 */
int actio__pg_value_is_null(const actio__pg_result *r, size_t row, int col);
int actio__pg_value_text(const actio__pg_result *r, size_t row, int col,
                         const char **out);
int actio__pg_value_int64(const actio__pg_result *r, size_t row, int col,
                          int64_t *out);
int actio__pg_value_int32(const actio__pg_result *r, size_t row, int col,
                          int32_t *out);
int actio__pg_value_double(const actio__pg_result *r, size_t row, int col,
                           double *out);
int actio__pg_value_bool(const actio__pg_result *r, size_t row, int col, int *out);
int actio__pg_value_bytea(const actio__pg_result *r, size_t row, int col,
                          void **data, size_t *len);

#endif

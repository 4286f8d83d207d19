/* db_result.c: the public reading of a query's result, each a call into
 * io/pg's accessors: an actio_db_result is io/pg's result. */
#include "actio.h"
#include "io/pg/pg_result.h"

#define RES(r) ((const actio__pg_result *)(const void *)(r))

void actio_db_result_free(actio_db_result *r) {
  actio__pg_result_free((actio__pg_result *)(void *)r);
}

size_t actio_db_rows(const actio_db_result *r) { return actio__pg_result_rows(RES(r)); }

int actio_db_columns(const actio_db_result *r) {
  return actio__pg_result_columns(RES(r));
}

const char *actio_db_column_name(const actio_db_result *r, int col) {
  return actio__pg_result_column_name(RES(r), col);
}

uint32_t actio_db_column_type(const actio_db_result *r, int col) {
  return actio__pg_result_column_type(RES(r), col);
}

int actio_db_column_index(const actio_db_result *r, const char *name) {
  return actio__pg_result_column_index(RES(r), name);
}

const char *actio_db_command_tag(const actio_db_result *r) {
  return actio__pg_result_command_tag(RES(r));
}

uint64_t actio_db_affected(const actio_db_result *r) {
  return actio__pg_result_affected(RES(r));
}

int actio_db_is_null(const actio_db_result *r, size_t row, int col) {
  return actio__pg_value_is_null(RES(r), row, col);
}

int actio_db_text(const actio_db_result *r, size_t row, int col, const char **out) {
  return actio__pg_value_text(RES(r), row, col, out);
}

int actio_db_int64(const actio_db_result *r, size_t row, int col, int64_t *out) {
  return actio__pg_value_int64(RES(r), row, col, out);
}

int actio_db_int32(const actio_db_result *r, size_t row, int col, int32_t *out) {
  return actio__pg_value_int32(RES(r), row, col, out);
}

int actio_db_double(const actio_db_result *r, size_t row, int col, double *out) {
  return actio__pg_value_double(RES(r), row, col, out);
}

int actio_db_bool(const actio_db_result *r, size_t row, int col, int *out) {
  return actio__pg_value_bool(RES(r), row, col, out);
}

int actio_db_bytea(const actio_db_result *r, size_t row, int col, void **data,
                   size_t *len) {
  return actio__pg_value_bytea(RES(r), row, col, data, len);
}

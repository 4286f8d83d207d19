/* pg_result.c: reading a result: its shape and its values as C types. The
 * result is libpq's PGresult itself, so reading costs no copy. */
#include "io/pg/pg_result.h"

#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "actio/error.h"
#include "io/pg/pg_private.h"

#define RES(r) actio__pg_res(r)

void actio__pg_result_free(actio__pg_result *r) { PQclear(RES(r)); }

actio__pg_result *actio__pg_result_empty(void) {
  return actio__pg_wrap(PQmakeEmptyPGresult(NULL, PGRES_COMMAND_OK));
}

size_t actio__pg_result_rows(const actio__pg_result *r) {
  return r ? (size_t)PQntuples(RES(r)) : 0;
}

int actio__pg_result_columns(const actio__pg_result *r) {
  return r ? PQnfields(RES(r)) : 0;
}

const char *actio__pg_result_column_name(const actio__pg_result *r, int col) {
  return r && col >= 0 && col < PQnfields(RES(r)) ? PQfname(RES(r), col) : NULL;
}

uint32_t actio__pg_result_column_type(const actio__pg_result *r, int col) {
  return r && col >= 0 && col < PQnfields(RES(r)) ? PQftype(RES(r), col) : 0;
}

int actio__pg_result_column_index(const actio__pg_result *r, const char *name) {
  return r && name ? PQfnumber(RES(r), name) : -1;
}

const char *actio__pg_result_command_tag(const actio__pg_result *r) {
  return r ? PQcmdStatus(RES(r)) : "";
}

uint64_t actio__pg_result_affected(const actio__pg_result *r) {
  const char *n = r ? PQcmdTuples(RES(r)) : "";
  return *n ? strtoull(n, NULL, 10) : 0;
}

int actio__pg_value(const actio__pg_result *r, size_t row, int col, actio__pg_val *out) {
  const PGresult *res = RES(r);
  if (r == NULL || out == NULL || col < 0 || col >= PQnfields(res) ||
      row >= (size_t)PQntuples(res))
    return ACTIO_EINVAL;
  /* libpq gives a text value's length too, and ends every value with a
   * NUL. Only an empty value may be a NULL: one call fewer for the rest
   * (a getter runs once per value, a result of 100 rows reads 200). */
  int len = PQgetlength(res, (int)row, col);
  int null = len == 0 && PQgetisnull(res, (int)row, col);
  *out = (actio__pg_val){.type = PQftype(res, col),
                         .binary = PQfformat(res, col) == 1,
                         .data = null ? NULL : PQgetvalue(res, (int)row, col),
                         .len = (size_t)len};
  return 0;
}

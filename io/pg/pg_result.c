/* pg_result.c: reading a result: its shape and its values as C types. The
 * result is libpq's PGresult itself, so reading costs no copy. */
#include "io/pg/pg_result.h"

#include <limits.h>
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

/* The value at (row, col): 0 and *v, *len, *binary; or an error. Reading
 * every cell of a result is the common case: few libpq calls each. */
static int cell(const actio__pg_result *r, size_t row, int col, const char **v,
                int *len, int *binary) {
  if (r == NULL || col < 0 || col >= PQnfields(RES(r)) ||
      row >= (size_t)PQntuples(RES(r)))
    return ACTIO_EINVAL;
  if (PQgetisnull(RES(r), (int)row, col))
    return ACTIO_ENULL;
  *v = PQgetvalue(RES(r), (int)row, col);
  *binary = PQfformat(RES(r), col) == 1;
  *len = *binary ? PQgetlength(RES(r), (int)row, col) : 0; /* text: NUL-ended */
  return 0;
}

int actio__pg_value_is_null(const actio__pg_result *r, size_t row, int col) {
  const char *v;
  int len, bin;
  int rc = cell(r, row, col, &v, &len, &bin);
  return rc == ACTIO_ENULL ? 1 : rc;
}

int actio__pg_value_text(const actio__pg_result *r, size_t row, int col,
                         const char **out) {
  const char *v;
  int len, bin;
  int rc = out ? cell(r, row, col, &v, &len, &bin) : ACTIO_EINVAL;
  if (rc == 0)
    *out = v;
  return rc;
}

/* A big-endian integer of `len` bytes. */
static int64_t be(const char *v, int len) {
  uint64_t x = 0;
  for (int i = 0; i < len; i++)
    x = x << 8 | (unsigned char)v[i];
  if (len < 8 && (x >> (len * 8 - 1)) & 1) /* sign-extend */
    x |= ~(uint64_t)0 << (len * 8);
  return (int64_t)x;
}

/* Any integer column (int2, int4, int8; text or binary) as int64. */
static int integer(const actio__pg_result *r, size_t row, int col, int64_t *out) {
  const char *v;
  int len, bin;
  int rc = cell(r, row, col, &v, &len, &bin);
  if (rc != 0)
    return rc;
  if (bin) {
    if (len != 2 && len != 4 && len != 8)
      return ACTIO_ETYPE;
    *out = be(v, len);
    return 0;
  }
  /* Decimal text, as PostgreSQL prints integers: [-]digits. */
  const char *p = v;
  int neg = *p == '-';
  p += neg || *p == '+';
  if (*p == '\0')
    return ACTIO_ETYPE;
  uint64_t x = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
  for (; *p != '\0'; p++) {
    unsigned d = (unsigned)(*p - '0');
    if (d > 9 || x > (limit - d) / 10)
      return ACTIO_ETYPE; /* not a digit, or out of range */
    x = x * 10 + d;
  }
  *out = neg ? (int64_t)(0 - x) : (int64_t)x;
  return 0;
}

int actio__pg_value_int64(const actio__pg_result *r, size_t row, int col,
                          int64_t *out) {
  int64_t x;
  int rc = out ? integer(r, row, col, &x) : ACTIO_EINVAL;
  if (rc == 0)
    *out = x;
  return rc;
}

int actio__pg_value_int32(const actio__pg_result *r, size_t row, int col,
                          int32_t *out) {
  int64_t x;
  int rc = out ? integer(r, row, col, &x) : ACTIO_EINVAL;
  if (rc == 0 && (x < INT32_MIN || x > INT32_MAX))
    rc = ACTIO_ETYPE;
  if (rc == 0)
    *out = (int32_t)x;
  return rc;
}

int actio__pg_value_double(const actio__pg_result *r, size_t row, int col,
                           double *out) {
  const char *v;
  int len, bin;
  int rc = out ? cell(r, row, col, &v, &len, &bin) : ACTIO_EINVAL;
  if (rc != 0)
    return rc;
  if (bin) { /* float4 or float8, IEEE big-endian */
    if (len == 8) {
      int64_t x = be(v, 8);
      double d;
      memcpy(&d, &x, sizeof d);
      *out = d;
    } else if (len == 4) {
      int32_t x = (int32_t)be(v, 4);
      float f;
      memcpy(&f, &x, sizeof f);
      *out = f;
    } else {
      return ACTIO_ETYPE;
    }
    return 0;
  }
  char *end;
  double d = strtod(v, &end); /* also reads "NaN", "Infinity", "-Infinity" */
  if (end == v || *end != '\0')
    return ACTIO_ETYPE;
  *out = d;
  return 0;
}

int actio__pg_value_bool(const actio__pg_result *r, size_t row, int col, int *out) {
  const char *v;
  int len, bin;
  int rc = out ? cell(r, row, col, &v, &len, &bin) : ACTIO_EINVAL;
  if (rc != 0)
    return rc;
  if (bin ? len != 1 : ((*v != 't' && *v != 'f') || v[1] != '\0'))
    return ACTIO_ETYPE;
  *out = bin ? *v != 0 : *v == 't';
  return 0;
}

static int hexval(int c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

int actio__pg_value_bytea(const actio__pg_result *r, size_t row, int col,
                          void **data, size_t *len) {
  const char *v;
  int n, bin;
  int rc = data && len ? cell(r, row, col, &v, &n, &bin) : ACTIO_EINVAL;
  if (rc != 0)
    return rc;
  size_t out_len = bin ? (size_t)n : 0;
  if (!bin) { /* the hex format: \x0a1b... */
    n = (int)strlen(v);
    if (n < 2 || v[0] != '\\' || v[1] != 'x' || n % 2 != 0)
      return ACTIO_ETYPE;
    out_len = (size_t)(n - 2) / 2;
  }
  unsigned char *buf = malloc(out_len ? out_len : 1);
  if (buf == NULL)
    return ACTIO_ENOMEM;
  if (bin) {
    memcpy(buf, v, out_len);
  } else {
    for (size_t i = 0; i < out_len; i++) {
      int hi = hexval(v[2 + 2 * i]), lo = hexval(v[3 + 2 * i]);
      if (hi < 0 || lo < 0) {
        free(buf);
        return ACTIO_ETYPE;
      }
      buf[i] = (unsigned char)(hi << 4 | lo);
    }
  }
  *data = buf;
  *len = out_len;
  return 0;
}

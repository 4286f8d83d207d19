/* db_result.c: the public reading of a query's result, each a call into
 * io/pg's accessors: an actio_db_result is io/pg's result, its values read
 * by io/pg/pg_types.h. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

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

int actio_db_result_column(const actio_db_result *r, const char *name) {
  int col = actio__pg_result_column_index(RES(r), name);
  return col >= 0 ? col : ACTIO_ECOLUMN;
}

const char *actio_db_command_tag(const actio_db_result *r) {
  return actio__pg_result_command_tag(RES(r));
}

uint64_t actio_db_affected(const actio_db_result *r) {
  return actio__pg_result_affected(RES(r));
}

int actio_db_is_null(const actio_db_result *r, size_t row, int col) {
  actio__pg_val v;
  int rc = actio__pg_value(RES(r), row, col, &v);
  return rc != 0 ? rc : v.data == NULL;
}

/* ---- one value ---- */

static actio__pg_val val(const actio_db_value *v) {
  return (actio__pg_val){.type = v->type, .binary = v->binary, .data = v->data,
                         .len = v->len};
}

/* An integer of a type no wider than [lo, hi]. */
static int int_in(const actio__pg_val *v, int64_t lo, int64_t hi, int64_t *out) {
  int rc = actio__pg_get_int(v, out);
  return rc == 0 && (*out < lo || *out > hi) ? ACTIO_ERANGE : rc;
}

/* Each getter twice: for (row, col) of a result and for one value, both
 * reading an actio__pg_val with `read`, whose rc it returns. */
#define GETTERS(name, T, read)                                                      \
  static int get_##name(const actio__pg_val *v, T out) { read; }                    \
  int actio_db_##name(const actio_db_result *r, size_t row, int col, T out) {       \
    actio__pg_val v;                                                                \
    int rc = out ? actio__pg_value(RES(r), row, col, &v) : ACTIO_EINVAL;            \
    return rc != 0 ? rc : get_##name(&v, out);                                      \
  }                                                                                 \
  int actio_db_value_##name(const actio_db_value *value, T out) {                   \
    if (value == NULL || out == NULL)                                               \
      return ACTIO_EINVAL;                                                          \
    actio__pg_val v = val(value);                                                   \
    return get_##name(&v, out);                                                     \
  }

#define NARROW(T, lo, hi)                                                           \
  int64_t x;                                                                        \
  int rc = int_in(v, lo, hi, &x);                                                   \
  if (rc == 0)                                                                      \
    *out = (T)x;                                                                    \
  return rc

GETTERS(int16, int16_t *, NARROW(int16_t, INT16_MIN, INT16_MAX))
GETTERS(int32, int32_t *, NARROW(int32_t, INT32_MIN, INT32_MAX))
GETTERS(int64, int64_t *, return actio__pg_get_int(v, out))
GETTERS(double, double *, return actio__pg_get_float(v, out))
GETTERS(bool, int *, return actio__pg_get_bool(v, out))
GETTERS(text, const char **, size_t n; return actio__pg_get_text(v, out, &n))
GETTERS(json, const char **, size_t n; return actio__pg_get_json(v, out, &n))
GETTERS(numeric, char **, return actio__pg_get_numeric(v, out))
GETTERS(uuid, uint8_t *, return actio__pg_get_uuid(v, out))
GETTERS(date, int32_t *, return actio__pg_get_date(v, out))
GETTERS(timestamp, int64_t *, return actio__pg_get_timestamp(v, out))

/* The struct's name is taken: the getter is actio_db_interval_get. */
static int get_interval(const actio__pg_val *v, actio_db_interval *out) {
  actio__pg_interval iv;
  int rc = actio__pg_get_interval(v, &iv);
  if (rc == 0)
    *out = (actio_db_interval){.months = iv.months, .days = iv.days, .usec = iv.usec};
  return rc;
}

int actio_db_interval_get(const actio_db_result *r, size_t row, int col,
                          actio_db_interval *out) {
  actio__pg_val v;
  int rc = out ? actio__pg_value(RES(r), row, col, &v) : ACTIO_EINVAL;
  return rc != 0 ? rc : get_interval(&v, out);
}

int actio_db_value_interval(const actio_db_value *value, actio_db_interval *out) {
  if (value == NULL || out == NULL)
    return ACTIO_EINVAL;
  actio__pg_val v = val(value);
  return get_interval(&v, out);
}

int actio_db_bytea(const actio_db_result *r, size_t row, int col, void **data,
                   size_t *len) {
  actio__pg_val v;
  int rc = data && len ? actio__pg_value(RES(r), row, col, &v) : ACTIO_EINVAL;
  return rc != 0 ? rc : actio__pg_get_bytea(&v, data, len);
}

int actio_db_value_bytea(const actio_db_value *value, void **data, size_t *len) {
  if (value == NULL || data == NULL || len == NULL)
    return ACTIO_EINVAL;
  actio__pg_val v = val(value);
  return actio__pg_get_bytea(&v, data, len);
}

/* ---- arrays ---- */

int actio_db_array_get(const actio_db_result *r, size_t row, int col,
                       actio_db_array **out) {
  actio__pg_val v;
  size_t n;
  int32_t lbound;
  int rc = out ? actio__pg_value(RES(r), row, col, &v) : ACTIO_EINVAL;
  if (rc == 0)
    rc = actio__pg_get_array(&v, &n, &lbound, NULL);
  if (rc != 0)
    return rc;
  /* One block: the header, the values, then each element's bytes with a
   * NUL, so that it outlives the result and text reads as a C string.
   * The elements' bytes and their length words fit in the array's. */
  size_t size = sizeof(actio_db_array) + n * sizeof(actio_db_value) + v.len;
  actio_db_array *a = malloc(size);
  actio__pg_val *el = malloc(n ? n * sizeof *el : 1);
  if (a == NULL || el == NULL) {
    free(a);
    free(el);
    return ACTIO_ENOMEM;
  }
  actio__pg_get_array(&v, &n, &lbound, el);
  a->elem_type = actio__pg_array_elem(v.type);
  a->lbound = lbound;
  a->count = n;
  a->elems = (actio_db_value *)(void *)(a + 1);
  char *p = (char *)(a->elems + n);
  for (size_t i = 0; i < n; i++) {
    a->elems[i] = (actio_db_value){.type = el[i].type, .binary = 1, .len = el[i].len};
    if (el[i].data != NULL) {
      a->elems[i].data = memcpy(p, el[i].data, el[i].len);
      p[el[i].len] = '\0';
      p += el[i].len + 1;
    }
  }
  free(el);
  *out = a;
  return 0;
}

void actio_db_array_free(actio_db_array *a) { free(a); }

/* db_param.c: typed parameters (actio_db_param) checked at the call and
 * written in PostgreSQL's binary format (io/pg/pg_types.h) as the binary
 * values, lengths, formats and types a request copies. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "actors/db/db_internal.h"
#include "io/pg/pg_types.h"

/* The type OIDs of the public header are the server's, as io/pg's. */
_Static_assert((int)ACTIO_DB_INT8 == (int)ACTIO__PG_INT8 &&
                   (int)ACTIO_DB_NUMERIC == (int)ACTIO__PG_NUMERIC &&
                   (int)ACTIO_DB_JSONB == (int)ACTIO__PG_JSONB &&
                   (int)ACTIO_DB_UUID == (int)ACTIO__PG_UUID,
               "type OIDs");

/* One scalar's binary form into buf (cap bytes, 0 to size it): its length,
 * or ACTIO_EINVAL (no value), ACTIO_ETYPE, ACTIO_ERANGE. */
static long put_scalar(const actio_db_param *p, char *buf, size_t cap) {
  switch (p->type) {
  case ACTIO_DB_INT2: case ACTIO_DB_INT4: case ACTIO_DB_INT8:
    return actio__pg_put_int(p->type, p->v.i, buf, cap);
  case ACTIO_DB_FLOAT4: case ACTIO_DB_FLOAT8:
    return actio__pg_put_float(p->type, p->v.f, buf, cap);
  case ACTIO_DB_BOOL:
    return actio__pg_put_bool(p->v.b, buf, cap);
  case ACTIO_DB_TEXT: case ACTIO_DB_VARCHAR: case ACTIO_DB_JSON: case ACTIO_DB_JSONB:
    if (p->v.s == NULL)
      return ACTIO_EINVAL;
    return actio__pg_put_bytes(p->type, p->v.s, strlen(p->v.s), buf, cap);
  case ACTIO_DB_BYTEA:
    if (p->v.bytes.data == NULL && p->v.bytes.len > 0)
      return ACTIO_EINVAL;
    return actio__pg_put_bytes(p->type, p->v.bytes.data, p->v.bytes.len, buf, cap);
  case ACTIO_DB_NUMERIC:
    return p->v.s ? actio__pg_put_numeric(p->v.s, buf, cap) : ACTIO_EINVAL;
  case ACTIO_DB_UUID:
    return actio__pg_put_uuid(p->v.uuid, buf, cap);
  case ACTIO_DB_DATE:
    return actio__pg_put_date(p->v.date, buf, cap);
  case ACTIO_DB_TIMESTAMP: case ACTIO_DB_TIMESTAMPTZ:
    return actio__pg_put_timestamp(p->v.ts, buf, cap);
  case ACTIO_DB_INTERVAL: {
    actio__pg_interval iv = {.months = p->v.interval.months, .days = p->v.interval.days,
                             .usec = p->v.interval.usec};
    return actio__pg_put_interval(&iv, buf, cap);
  }
  default:
    return ACTIO_EINVAL;
  }
}

/* A value's binary form (NULL: none, 0 bytes), as put_scalar; arrays
 * hold scalars of their element type. Sizing, then writing, walk the same
 * way, so a value that sized writes. */
static long put(const actio_db_param *p, char *buf, size_t cap) {
  if (p->null)
    return 0;
  uint32_t elem = actio__pg_array_elem(p->type);
  if (elem == 0)
    return put_scalar(p, buf, cap);
  size_t n = p->v.array.count;
  if (n > 0 && p->v.array.elems == NULL)
    return ACTIO_EINVAL;
  int has_null = 0;
  for (size_t i = 0; i < n; i++)
    has_null |= p->v.array.elems[i].null != 0;
  long head = actio__pg_put_array_head(elem, n, has_null, buf, cap);
  if (head < 0)
    return head;
  size_t at = (size_t)head;
  for (size_t i = 0; i < n; i++) {
    const actio_db_param *e = &p->v.array.elems[i];
    if (e->type != elem)
      return ACTIO_EINVAL;
    size_t room = cap >= at + 4 ? cap - at - 4 : 0;
    long len = e->null ? -1 : put_scalar(e, room ? buf + at + 4 : NULL, room);
    if (!e->null && len < 0)
      return len;
    if (cap >= at + 4)
      actio__pg_put_elem_len((int32_t)len, buf + at);
    at += 4 + (size_t)(len < 0 ? 0 : len);
    if (at > INT32_MAX)
      return ACTIO_ERANGE;
  }
  return (long)at;
}

int actio__db_typed_check(const actio_db_param *p, int n) {
  for (int i = 0; i < n; i++) {
    long len = put(&p[i], NULL, 0);
    if (len < 0)
      return (int)len;
  }
  return 0;
}

void *actio__db_typed_encode(const actio_db_request *in, actio_db_request *q) {
  size_t n = (size_t)in->nparams, bytes = 0;
  for (size_t i = 0; i < n; i++)
    bytes += (size_t)put(&in->typed[i], NULL, 0); /* checked at the call */
  /* The values' pointers, then lengths, formats and types, then bytes. */
  char *mem = malloc(n * (sizeof(char *) + 2 * sizeof(int) + sizeof(uint32_t)) + bytes + 1);
  if (mem == NULL)
    return NULL;
  const char **vals = (const char **)(void *)mem;
  int *lens = (int *)(void *)(vals + n), *fmts = lens + n;
  uint32_t *types = (uint32_t *)(void *)(fmts + n);
  char *p = (char *)(types + n);
  for (size_t i = 0; i < n; i++) {
    const actio_db_param *t = &in->typed[i];
    long len = put(t, p, bytes);
    vals[i] = t->null ? NULL : p;
    lens[i] = (int)len;
    fmts[i] = 1;
    types[i] = t->type;
    p += len;
    bytes -= (size_t)len;
  }
  *q = *in;
  q->typed = NULL;
  q->params = vals;
  q->lengths = lens;
  q->formats = fmts;
  q->types = types;
  return mem;
}

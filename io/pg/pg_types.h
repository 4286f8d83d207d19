/* pg_types.h: PostgreSQL's values on the wire, both ways: a value of a
 * result read as a C type (checked against its type OID, every length
 * bounded by the value's own), and C values written in the binary format
 * of parameters. Pure functions of their buffers: no libpq, no futures. */
#ifndef ACTIO_IO_PG_TYPES_H
#define ACTIO_IO_PG_TYPES_H

#include <stddef.h>
#include <stdint.h>

/* The type OIDs read and written here (pg_type.dat). */
enum {
  ACTIO__PG_BOOL = 16,
  ACTIO__PG_BYTEA = 17,
  ACTIO__PG_NAME = 19,
  ACTIO__PG_INT8 = 20,
  ACTIO__PG_INT2 = 21,
  ACTIO__PG_INT4 = 23,
  ACTIO__PG_TEXT = 25,
  ACTIO__PG_JSON = 114,
  ACTIO__PG_XML = 142,
  ACTIO__PG_FLOAT4 = 700,
  ACTIO__PG_FLOAT8 = 701,
  ACTIO__PG_UNKNOWN = 705,
  ACTIO__PG_BPCHAR = 1042,
  ACTIO__PG_VARCHAR = 1043,
  ACTIO__PG_DATE = 1082,
  ACTIO__PG_TIMESTAMP = 1114,
  ACTIO__PG_TIMESTAMPTZ = 1184,
  ACTIO__PG_INTERVAL = 1186,
  ACTIO__PG_NUMERIC = 1700,
  ACTIO__PG_UUID = 2950,
  ACTIO__PG_JSONB = 3802,
};

/* One value: its column's (or array's element) type, its format and its
 * bytes. data NULL: SQL NULL. A text value is NUL-ended at data[len]; a
 * binary one may hold zero bytes and is read within len only. */
typedef struct actio__pg_val {
  uint32_t type;
  int binary;
  const char *data;
  size_t len;
} actio__pg_val;

/* Microseconds between 1970-01-01 and 2000-01-01 (PostgreSQL's epoch), and
 * days. */
#define ACTIO__PG_EPOCH_USEC INT64_C(946684800000000)
#define ACTIO__PG_EPOCH_DAYS 10957

typedef struct actio__pg_interval {
  int32_t months, days;
  int64_t usec;
} actio__pg_interval;

/*
 * Readers: 0, ACTIO_ENULL (SQL NULL; *out untouched), ACTIO_ETYPE (a type
 * the reader does not take, or bytes not of that type), ACTIO_ERANGE (a
 * value of the type that the C type cannot hold), ACTIO_ENOMEM (the
 * readers that allocate). Integers take int2, int4 and int8; floats
 * float4 and float8; text any type in text format, and in binary text,
 * varchar, bpchar, name, xml, unknown, json and jsonb (past its version
 * byte); json json and jsonb only. numeric is its exact decimal text
 * ("NaN", "Infinity", "-Infinity" too; malloc'd). date is days since
 * 1970-01-01, timestamp and timestamptz microseconds since 1970-01-01
 * 00:00 (UTC for timestamptz; as written for timestamp), their infinities
 * INT32_MAX / INT32_MIN and INT64_MAX / INT64_MIN. date, timestamp,
 * timestamptz and interval are binary only.
 */
int actio__pg_get_int(const actio__pg_val *v, int64_t *out);
int actio__pg_get_float(const actio__pg_val *v, double *out);
int actio__pg_get_bool(const actio__pg_val *v, int *out);
int actio__pg_get_text(const actio__pg_val *v, const char **out, size_t *len);
int actio__pg_get_json(const actio__pg_val *v, const char **out, size_t *len);
int actio__pg_get_bytea(const actio__pg_val *v, void **data, size_t *len);
int actio__pg_get_uuid(const actio__pg_val *v, uint8_t out[16]);
int actio__pg_get_numeric(const actio__pg_val *v, char **out);
int actio__pg_get_date(const actio__pg_val *v, int32_t *out);
int actio__pg_get_timestamp(const actio__pg_val *v, int64_t *out);
int actio__pg_get_interval(const actio__pg_val *v, actio__pg_interval *out);

/* The element type of array type `type` (one of the types above), or 0. */
uint32_t actio__pg_array_elem(uint32_t type);
/* The array type whose elements are `elem`, or 0. */
uint32_t actio__pg_array_of(uint32_t elem);

/*
 * A one-dimensional binary array: its element count and lower bound
 * (1 for an empty one), and, when elems is not NULL, its elements in
 * elems[0..count) (binary, of the element type; borrowed from v->data).
 * Call it with elems NULL to size the array. 0, ACTIO_ENULL, ACTIO_ETYPE
 * (not an array type above, text format, more than one dimension, another
 * element type, a length past the bytes).
 */
int actio__pg_get_array(const actio__pg_val *v, size_t *count, int32_t *lbound,
                        actio__pg_val *elems);

/*
 * Writers: the binary form of a value of `type` into buf (cap bytes; NULL
 * with cap 0 to size it). Each returns the length it needs, or
 * ACTIO_ETYPE (a type it does not write, numeric text that is no number),
 * ACTIO_ERANGE (an integer past its type's range, a time before the
 * earliest PostgreSQL keeps). Past cap nothing is written but the length
 * is returned.
 */
long actio__pg_put_int(uint32_t type, int64_t x, char *buf, size_t cap);
long actio__pg_put_float(uint32_t type, double x, char *buf, size_t cap);
long actio__pg_put_bool(int x, char *buf, size_t cap);
/* text, varchar, bpchar, name, xml, json, bytea: the bytes; jsonb: its
 * version byte then the text. */
long actio__pg_put_bytes(uint32_t type, const void *data, size_t len, char *buf,
                         size_t cap);
long actio__pg_put_uuid(const uint8_t uuid[16], char *buf, size_t cap);
/* [+-]digits[.digits][e[+-]digits], NaN, Infinity, -Infinity. */
long actio__pg_put_numeric(const char *text, char *buf, size_t cap);
long actio__pg_put_date(int32_t days, char *buf, size_t cap);
long actio__pg_put_timestamp(int64_t usec, char *buf, size_t cap);
long actio__pg_put_interval(const actio__pg_interval *iv, char *buf, size_t cap);

/* An array's header (20 bytes; 12 for an empty one, lower bound 1): the
 * elements follow, each a 4-byte length (-1: NULL) and its bytes, written
 * with actio__pg_put_elem_len. */
long actio__pg_put_array_head(uint32_t elem, size_t count, int has_null, char *buf,
                              size_t cap);
void actio__pg_put_elem_len(int32_t len, char *buf);

#endif

/* test_db_types.c: typed values both ways: typed parameters sent in
 * binary and read back with the typed getters from binary and text
 * results, edge values and NULLs of every type, wrong types, columns by
 * name, against a real PostgreSQL started for the suite
 * (tests/pg_server.sh); and io/pg's readers on truncated and corrupt
 * buffers. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "actio.h"
#include "db_test.h"
#include "io/pg/pg_types.h"
#include "pg_server.h"

/* Sends sql with n typed values, results binary or not; waits for
 * success. The caller unrefs *f. */
static const actio_db_result *typed(const char *sql, const actio_db_param *p, int n,
                                    int binary, actio_future **f) {
  actio_db_request q = {.sql = sql, .nparams = n, .typed = p, .binary_results = binary};
  ck_assert_int_eq(actio_db_send(db, &q, f), 0);
  return expect(*f, 0);
}

/* 1 if every column of row 0 of sql (over its typed values) is true. */
static void all_true(const char *sql, const actio_db_param *p, int n) {
  actio_future *f;
  const actio_db_result *r = typed(sql, p, n, 0, &f);
  for (int c = 0; c < actio_db_columns(r); c++) {
    int b = 0;
    ck_assert_int_eq(actio_db_bool(r, 0, c, &b), 0);
    if (!b)
      ck_abort_msg("column %d of %s is false", c, sql);
  }
  actio_future_unref(f);
}

/* Microseconds since 1970 of a UTC wall-clock time. */
static int64_t utc_usec(int y, int mo, int d, int h, int mi, int s, int us) {
  struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h,
                  .tm_min = mi, .tm_sec = s};
  return (int64_t)timegm(&tm) * 1000000 + us;
}

/* ---- round trips ---- */

START_TEST(test_integers) {
  actio_db_param p[] = {
      {.type = ACTIO_DB_INT2, .v.i = INT16_MIN}, {.type = ACTIO_DB_INT2, .v.i = INT16_MAX},
      {.type = ACTIO_DB_INT4, .v.i = INT32_MIN}, {.type = ACTIO_DB_INT4, .v.i = INT32_MAX},
      {.type = ACTIO_DB_INT8, .v.i = INT64_MIN}, {.type = ACTIO_DB_INT8, .v.i = INT64_MAX},
      {.type = ACTIO_DB_INT4, .null = 1},
  };
  /* The server read them as sent. */
  all_true("SELECT $1 = '-32768'::int2, $2 = 32767::int2, $3 = -2147483648, $4 = 2147483647, "
           "$5 = -9223372036854775808, $6 = 9223372036854775807, $7 IS NULL",
           p, 7);
  for (int binary = 0; binary <= 1; binary++) {
    actio_future *f;
    const actio_db_result *r = typed("SELECT $1, $2, $3, $4, $5, $6, $7", p, 7, binary, &f);
    int16_t i16 = 5;
    int32_t i32 = 5;
    int64_t i64 = 5;
    for (int c = 0; c < 6; c++) {
      ck_assert_int_eq(actio_db_int64(r, 0, c, &i64), 0); /* any narrower type */
      ck_assert(i64 == p[c].v.i);
    }
    ck_assert_int_eq(actio_db_int16(r, 0, 0, &i16), 0);
    ck_assert_int_eq(i16, INT16_MIN);
    ck_assert_int_eq(actio_db_int32(r, 0, 1, &i32), 0);
    ck_assert_int_eq(i32, INT16_MAX);
    ck_assert_int_eq(actio_db_int32(r, 0, 2, &i32), 0);
    ck_assert_int_eq(i32, INT32_MIN);
    /* Wider than the C type: out of range, whatever the format. */
    ck_assert_int_eq(actio_db_int16(r, 0, 3, &i16), ACTIO_ERANGE);
    ck_assert_int_eq(actio_db_int32(r, 0, 5, &i32), ACTIO_ERANGE);
    ck_assert_int_eq(actio_db_int32(r, 0, 4, &i32), ACTIO_ERANGE);
    /* NULL: a code of its own, the output untouched. */
    i16 = 5, i32 = 5, i64 = 5;
    ck_assert_int_eq(actio_db_int16(r, 0, 6, &i16), ACTIO_ENULL);
    ck_assert_int_eq(actio_db_int32(r, 0, 6, &i32), ACTIO_ENULL);
    ck_assert_int_eq(actio_db_int64(r, 0, 6, &i64), ACTIO_ENULL);
    ck_assert(i16 == 5 && i32 == 5 && i64 == 5);
    ck_assert_int_eq(actio_db_int64(r, 0, 7, &i64), ACTIO_EINVAL);
    ck_assert_int_eq(actio_db_int64(r, 0, 0, NULL), ACTIO_EINVAL);
    actio_future_unref(f);
  }
  /* An int8 that fits is read by int32. */
  actio_db_param small = {.type = ACTIO_DB_INT8, .v.i = -7};
  actio_future *f;
  int32_t i32;
  ck_assert_int_eq(actio_db_int32(typed("SELECT $1", &small, 1, 1, &f), 0, 0, &i32), 0);
  ck_assert_int_eq(i32, -7);
  actio_future_unref(f);
}
END_TEST

START_TEST(test_floats) {
  actio_db_param p[] = {
      {.type = ACTIO_DB_FLOAT8, .v.f = NAN},      {.type = ACTIO_DB_FLOAT8, .v.f = INFINITY},
      {.type = ACTIO_DB_FLOAT8, .v.f = -INFINITY}, {.type = ACTIO_DB_FLOAT8, .v.f = DBL_MAX},
      {.type = ACTIO_DB_FLOAT8, .v.f = -0.0},     {.type = ACTIO_DB_FLOAT4, .v.f = 1.5},
      {.type = ACTIO_DB_FLOAT4, .v.f = -INFINITY}, {.type = ACTIO_DB_FLOAT8, .v.f = 0.1},
      {.type = ACTIO_DB_FLOAT8, .null = 1},
  };
  all_true("SELECT $1 = 'NaN'::float8, $2 = 'Infinity'::float8, $3 = '-Infinity'::float8, "
           "$4 = 1.7976931348623157e308::float8, $5 = 0, $6 = 1.5::float4, "
           "$7 = '-Infinity'::float4, $8 = 0.1::float8, $9 IS NULL",
           p, 9);
  for (int binary = 0; binary <= 1; binary++) {
    actio_future *f;
    const actio_db_result *r =
        typed("SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9", p, 9, binary, &f);
    double d;
    ck_assert_int_eq(actio_db_double(r, 0, 0, &d), 0);
    ck_assert(isnan(d));
    for (int c = 1; c < 8; c++) {
      ck_assert_int_eq(actio_db_double(r, 0, c, &d), 0);
      ck_assert(d == p[c].v.f); /* 0.1 exactly: the server prints it shortest-exact */
    }
    ck_assert_int_eq(actio_db_double(r, 0, 4, &d), 0);
    ck_assert(signbit(d));
    d = 5;
    ck_assert_int_eq(actio_db_double(r, 0, 8, &d), ACTIO_ENULL);
    ck_assert(d == 5);
    actio_future_unref(f);
  }
}
END_TEST

START_TEST(test_numeric) {
  static const char *in[] = {
      "123456789012345678901234567890.123456789012345678901234567890",
      "-0.000001", "NaN", "0", "0.00", "1e-5", "12345678", "10000", "-1.5",
      "Infinity", "-Infinity", "1.23e10", "0.0001000", "99999999999999999999.9999",
  };
  static const char *want[] = {
      "123456789012345678901234567890.123456789012345678901234567890",
      "-0.000001", "NaN", "0", "0.00", "0.00001", "12345678", "10000", "-1.5",
      "Infinity", "-Infinity", "12300000000", "0.0001000", "99999999999999999999.9999",
  };
  size_t n = sizeof in / sizeof *in;
  actio_db_param p[15];
  for (size_t i = 0; i < n; i++)
    p[i] = (actio_db_param){.type = ACTIO_DB_NUMERIC, .v.s = in[i]};
  p[n] = (actio_db_param){.type = ACTIO_DB_NUMERIC, .null = 1};
  char sql[512] = "SELECT ";
  for (size_t i = 0; i <= n; i++)
    snprintf(sql + strlen(sql), sizeof sql - strlen(sql), "%s$%zu", i ? ", " : "", i + 1);
  for (int binary = 0; binary <= 1; binary++) {
    actio_future *f;
    const actio_db_result *r = typed(sql, p, (int)n + 1, binary, &f);
    for (size_t i = 0; i < n; i++) {
      char *s = NULL;
      ck_assert_int_eq(actio_db_numeric(r, 0, (int)i, &s), 0);
      ck_assert_str_eq(s, want[i]);
      free(s);
    }
    char *s = (char *)"untouched";
    ck_assert_int_eq(actio_db_numeric(r, 0, (int)n, &s), ACTIO_ENULL);
    ck_assert_str_eq(s, "untouched");
    actio_future_unref(f);
  }
  /* What the server computes, read in binary, as its own text says. */
  actio_db_request q = {.sql = "SELECT x, x::text FROM (VALUES (1::numeric / 3), (2::numeric ^ 200), "
                               "(-123.4500), (0.000000000000000000001)) v(x)",
                        .binary_results = 1};
  actio_future *f;
  ck_assert_int_eq(actio_db_send(db, &q, &f), 0);
  const actio_db_result *r = expect(f, 0);
  for (size_t row = 0; row < 4; row++) {
    char *s;
    const char *t;
    ck_assert_int_eq(actio_db_numeric(r, row, 0, &s), 0);
    ck_assert_int_eq(actio_db_text(r, row, 1, &t), 0);
    ck_assert_str_eq(s, t);
    free(s);
  }
  actio_future_unref(f);
}
END_TEST

START_TEST(test_bool_text_bytes_uuid_json) {
  static const uint8_t id[16] = {0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8,
                                 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38, 0x0a, 0x11};
  actio_db_param p[] = {
      {.type = ACTIO_DB_BOOL, .v.b = 1},
      {.type = ACTIO_DB_BOOL, .v.b = 0},
      {.type = ACTIO_DB_TEXT, .v.s = "héllo, wörld"},
      {.type = ACTIO_DB_TEXT, .v.s = ""},
      {.type = ACTIO_DB_VARCHAR, .v.s = "v"},
      {.type = ACTIO_DB_BYTEA, .v.bytes = {"\0a\0\xff\0", 5}},
      {.type = ACTIO_DB_BYTEA, .v.bytes = {NULL, 0}},
      {.type = ACTIO_DB_UUID, .v.uuid = {0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb,
                                         0x6d, 0x6b, 0xb9, 0xbd, 0x38, 0x0a, 0x11}},
      {.type = ACTIO_DB_JSON, .v.s = "{\"a\": [1, 2]}"},
      {.type = ACTIO_DB_JSONB, .v.s = "{\"b\": null, \"a\": 1}"},
      {.type = ACTIO_DB_TEXT, .null = 1},
  };
  all_true("SELECT $1, NOT $2, $3 = 'héllo, wörld', $4 = '', $5 = 'v'::varchar, "
           "$6 = '\\x006100ff00'::bytea, $7 = ''::bytea, "
           "$8 = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, $9::text = '{\"a\": [1, 2]}', "
           "$10 = '{\"a\": 1, \"b\": null}'::jsonb, $11 IS NULL",
           p, 11);
  for (int binary = 0; binary <= 1; binary++) {
    actio_future *f;
    const actio_db_result *r =
        typed("SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11", p, 11, binary, &f);
    int b;
    ck_assert_int_eq(actio_db_bool(r, 0, 0, &b), 0);
    ck_assert_int_eq(b, 1);
    ck_assert_int_eq(actio_db_bool(r, 0, 1, &b), 0);
    ck_assert_int_eq(b, 0);
    const char *t;
    ck_assert_int_eq(actio_db_text(r, 0, 2, &t), 0);
    ck_assert_str_eq(t, "héllo, wörld");
    ck_assert_int_eq(actio_db_text(r, 0, 3, &t), 0);
    ck_assert_str_eq(t, "");
    ck_assert_int_eq(actio_db_text(r, 0, 4, &t), 0);
    ck_assert_str_eq(t, "v");
    void *raw;
    size_t len;
    ck_assert_int_eq(actio_db_bytea(r, 0, 5, &raw, &len), 0);
    ck_assert_uint_eq(len, 5);
    ck_assert_mem_eq(raw, "\0a\0\xff\0", 5);
    free(raw);
    ck_assert_int_eq(actio_db_bytea(r, 0, 6, &raw, &len), 0);
    ck_assert_uint_eq(len, 0);
    free(raw);
    uint8_t u[16];
    ck_assert_int_eq(actio_db_uuid(r, 0, 7, u), 0);
    ck_assert_mem_eq(u, id, 16);
    ck_assert_int_eq(actio_db_json(r, 0, 8, &t), 0);
    ck_assert_str_eq(t, "{\"a\": [1, 2]}");
    ck_assert_int_eq(actio_db_json(r, 0, 9, &t), 0);
    ck_assert_str_eq(t, "{\"a\": 1, \"b\": null}"); /* jsonb's own order */
    ck_assert_int_eq(actio_db_text(r, 0, 9, &t), 0);
    ck_assert_str_eq(t, "{\"a\": 1, \"b\": null}");
    t = "untouched";
    ck_assert_int_eq(actio_db_text(r, 0, 10, &t), ACTIO_ENULL);
    ck_assert_int_eq(actio_db_json(r, 0, 10, &t), ACTIO_ENULL);
    ck_assert_int_eq(actio_db_bytea(r, 0, 10, &raw, &len), ACTIO_ENULL);
    ck_assert_str_eq(t, "untouched");
    actio_future_unref(f);
  }
}
END_TEST

START_TEST(test_times) {
  int64_t t1 = utc_usec(2024, 1, 2, 3, 4, 5, 123456), before = utc_usec(1969, 7, 20, 20, 17, 40, 1);
  actio_db_param p[] = {
      {.type = ACTIO_DB_DATE, .v.date = 0},
      {.type = ACTIO_DB_DATE, .v.date = 19724}, /* 2024-01-02 */
      {.type = ACTIO_DB_DATE, .v.date = ACTIO_DB_DATE_INFINITY},
      {.type = ACTIO_DB_DATE, .v.date = ACTIO_DB_DATE_NINFINITY},
      {.type = ACTIO_DB_TIMESTAMPTZ, .v.ts = t1},
      {.type = ACTIO_DB_TIMESTAMPTZ, .v.ts = ACTIO_DB_TIME_INFINITY},
      {.type = ACTIO_DB_TIMESTAMPTZ, .v.ts = ACTIO_DB_TIME_NINFINITY},
      {.type = ACTIO_DB_TIMESTAMP, .v.ts = t1},
      {.type = ACTIO_DB_TIMESTAMP, .v.ts = before},
      {.type = ACTIO_DB_TIMESTAMP, .v.ts = ACTIO_DB_TIME_INFINITY},
      {.type = ACTIO_DB_INTERVAL, .v.interval = {.months = 14, .days = 3, .usec = 4000005}},
      {.type = ACTIO_DB_INTERVAL, .v.interval = {.months = -1, .days = -2, .usec = -3}},
      {.type = ACTIO_DB_TIMESTAMPTZ, .null = 1},
  };
  all_true("SELECT $1 = '1970-01-01'::date, $2 = '2024-01-02'::date, $3 = 'infinity'::date, "
           "$4 = '-infinity'::date, $5 = '2024-01-02 05:04:05.123456+02'::timestamptz, "
           "$6 = 'infinity'::timestamptz, $7 = '-infinity'::timestamptz, "
           "$8 = '2024-01-02 03:04:05.123456'::timestamp, "
           "$9 = '1969-07-20 20:17:40.000001'::timestamp, $10 = 'infinity'::timestamp, "
           "$11::text = '1 year 2 mons 3 days 00:00:04.000005', "
           "$12::text = '-1 mons -2 days -00:00:00.000003', $13 IS NULL",
           p, 13);
  actio_future *f;
  const actio_db_result *r =
      typed("SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13", p, 13, 1, &f);
  for (int c = 0; c < 4; c++) {
    int32_t d;
    ck_assert_int_eq(actio_db_date(r, 0, c, &d), 0);
    ck_assert_int_eq(d, p[c].v.date);
  }
  for (int c = 4; c < 10; c++) {
    int64_t ts;
    ck_assert_int_eq(actio_db_timestamp(r, 0, c, &ts), 0);
    ck_assert(ts == p[c].v.ts);
  }
  for (int c = 10; c < 12; c++) {
    actio_db_interval iv;
    ck_assert_int_eq(actio_db_interval_get(r, 0, c, &iv), 0);
    ck_assert(iv.months == p[c].v.interval.months && iv.days == p[c].v.interval.days &&
              iv.usec == p[c].v.interval.usec);
  }
  int64_t ts = 5;
  ck_assert_int_eq(actio_db_timestamp(r, 0, 12, &ts), ACTIO_ENULL);
  ck_assert(ts == 5);
  actio_future_unref(f);
  /* Temporal values in a text result: not read (binary only). */
  r = typed("SELECT $1, $5, $11", p, 13, 0, &f);
  int32_t d;
  actio_db_interval iv;
  ck_assert_int_eq(actio_db_date(r, 0, 0, &d), ACTIO_ETYPE);
  ck_assert_int_eq(actio_db_timestamp(r, 0, 1, &ts), ACTIO_ETYPE);
  ck_assert_int_eq(actio_db_interval_get(r, 0, 2, &iv), ACTIO_ETYPE);
  actio_future_unref(f);
  /* Out of what the C value holds: the server's last timestamp. */
  actio_db_request q = {.sql = "SELECT '294276-12-31 23:59:59'::timestamp", .binary_results = 1};
  ck_assert_int_eq(actio_db_send(db, &q, &f), 0);
  ck_assert_int_eq(actio_db_timestamp(expect(f, 0), 0, 0, &ts), ACTIO_ERANGE);
  actio_future_unref(f);
}
END_TEST

/* Handed to actio_db_transaction: a timestamptz read under another
 * session time zone. */
static int in_kolkata(actio_db_txn *t, void *arg, actio_future **out) {
  const actio_db_param *p = arg;
  actio_future *f;
  int rc = actio_db_txn_query(t, "SET LOCAL TimeZone = 'Asia/Kolkata'", 0, NULL, &f);
  if (rc != 0)
    return rc;
  actio_future_unref(f);
  actio_db_request q = {.sql = "SELECT $1, $1::text", .nparams = 1, .typed = p,
                        .binary_results = 1};
  return actio_db_txn_send(t, &q, out);
}

START_TEST(test_timestamptz_is_utc_on_the_wire) {
  actio_db_param p = {.type = ACTIO_DB_TIMESTAMPTZ, .v.ts = utc_usec(2024, 1, 2, 3, 4, 5, 0)};
  actio_future *f;
  ck_assert_int_eq(actio_db_transaction(db, NULL, 0, in_kolkata, &p, &f), 0);
  const actio_db_result *r = expect(f, 0);
  int64_t ts;
  const char *t;
  ck_assert_int_eq(actio_db_timestamp(r, 0, 0, &ts), 0);
  ck_assert(ts == p.v.ts);
  ck_assert_int_eq(actio_db_text(r, 0, 1, &t), 0);
  ck_assert_str_eq(t, "2024-01-02 08:34:05+05:30");
  actio_future_unref(f);
}
END_TEST

START_TEST(test_arrays) {
  actio_db_param ints[] = {{.type = ACTIO_DB_INT4, .v.i = 1}, {.type = ACTIO_DB_INT4, .null = 1},
                           {.type = ACTIO_DB_INT4, .v.i = INT32_MIN}};
  actio_db_param texts[] = {{.type = ACTIO_DB_TEXT, .v.s = "a"},
                            {.type = ACTIO_DB_TEXT, .v.s = ""},
                            {.type = ACTIO_DB_TEXT, .null = 1}};
  actio_db_param bytes[] = {{.type = ACTIO_DB_BYTEA, .v.bytes = {"\0\1\0", 3}}};
  actio_db_param nums[] = {{.type = ACTIO_DB_NUMERIC, .v.s = "3.14159265358979323846"},
                           {.type = ACTIO_DB_NUMERIC, .v.s = "NaN"}};
  actio_db_param times[] = {{.type = ACTIO_DB_TIMESTAMPTZ, .v.ts = ACTIO_DB_TIME_NINFINITY},
                            {.type = ACTIO_DB_TIMESTAMPTZ, .v.ts = 0}};
  actio_db_param ids[] = {{.type = ACTIO_DB_UUID, .v.uuid = {1, 2, 3}}};
  actio_db_param docs[] = {{.type = ACTIO_DB_JSONB, .v.s = "[1]"}, {.type = ACTIO_DB_JSONB, .null = 1}};
  actio_db_param p[] = {
      {.type = ACTIO_DB_INT4_ARRAY, .v.array = {ints, 3}},
      {.type = ACTIO_DB_INT8_ARRAY, .v.array = {NULL, 0}},
      {.type = ACTIO_DB_TEXT_ARRAY, .v.array = {texts, 3}},
      {.type = ACTIO_DB_BYTEA_ARRAY, .v.array = {bytes, 1}},
      {.type = ACTIO_DB_NUMERIC_ARRAY, .v.array = {nums, 2}},
      {.type = ACTIO_DB_TIMESTAMPTZ_ARRAY, .v.array = {times, 2}},
      {.type = ACTIO_DB_UUID_ARRAY, .v.array = {ids, 1}},
      {.type = ACTIO_DB_JSONB_ARRAY, .v.array = {docs, 2}},
      {.type = ACTIO_DB_INT4_ARRAY, .null = 1},
  };
  all_true("SELECT $1 = ARRAY[1, NULL, -2147483648], $2 = '{}'::int8[], "
           "$3 = ARRAY['a', '', NULL], $4 = ARRAY['\\x000100'::bytea], "
           "$5::text = '{3.14159265358979323846,NaN}', "
           "$6 = ARRAY['-infinity', '1970-01-01 00:00:00+00']::timestamptz[], "
           "$7 = ARRAY['01020300-0000-0000-0000-000000000000'::uuid], "
           "$8 = ARRAY['[1]'::jsonb, NULL], $9 IS NULL",
           p, 9);
  actio_future *f;
  const actio_db_result *r =
      typed("SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, '[0:2]={7,8,9}'::int2[], "
            "'{{1,2},{3,4}}'::int[], ARRAY['x']::text[]",
            p, 9, 1, &f);
  actio_db_array *a;
  int32_t i32;
  ck_assert_int_eq(actio_db_array_get(r, 0, 0, &a), 0);
  ck_assert(a->count == 3 && a->lbound == 1 && a->elem_type == ACTIO_DB_INT4);
  ck_assert_int_eq(actio_db_value_int32(&a->elems[0], &i32), 0);
  ck_assert_int_eq(i32, 1);
  ck_assert_int_eq(actio_db_value_int32(&a->elems[1], &i32), ACTIO_ENULL);
  ck_assert_int_eq(actio_db_value_int32(&a->elems[2], &i32), 0);
  ck_assert_int_eq(i32, INT32_MIN);
  ck_assert_int_eq(actio_db_value_text(&a->elems[0], &(const char *){NULL}), ACTIO_ETYPE);
  actio_db_array_free(a);
  ck_assert_int_eq(actio_db_array_get(r, 0, 1, &a), 0);
  ck_assert(a->count == 0 && a->elem_type == ACTIO_DB_INT8);
  actio_db_array_free(a);
  ck_assert_int_eq(actio_db_array_get(r, 0, 2, &a), 0);
  const char *t;
  ck_assert_int_eq(actio_db_value_text(&a->elems[0], &t), 0);
  ck_assert_str_eq(t, "a");
  ck_assert_int_eq(actio_db_value_text(&a->elems[1], &t), 0);
  ck_assert_str_eq(t, "");
  ck_assert_int_eq(actio_db_value_text(&a->elems[2], &t), ACTIO_ENULL);
  actio_db_array_free(a);
  ck_assert_int_eq(actio_db_array_get(r, 0, 3, &a), 0);
  void *raw;
  size_t len;
  ck_assert_int_eq(actio_db_value_bytea(&a->elems[0], &raw, &len), 0);
  ck_assert(len == 3 && memcmp(raw, "\0\1\0", 3) == 0);
  free(raw);
  actio_db_array_free(a);
  ck_assert_int_eq(actio_db_array_get(r, 0, 4, &a), 0);
  char *s;
  ck_assert_int_eq(actio_db_value_numeric(&a->elems[0], &s), 0);
  ck_assert_str_eq(s, "3.14159265358979323846");
  free(s);
  ck_assert_int_eq(actio_db_value_numeric(&a->elems[1], &s), 0);
  ck_assert_str_eq(s, "NaN");
  free(s);
  actio_db_array_free(a);
  ck_assert_int_eq(actio_db_array_get(r, 0, 5, &a), 0);
  int64_t ts;
  ck_assert_int_eq(actio_db_value_timestamp(&a->elems[0], &ts), 0);
  ck_assert(ts == ACTIO_DB_TIME_NINFINITY);
  ck_assert_int_eq(actio_db_value_timestamp(&a->elems[1], &ts), 0);
  ck_assert(ts == 0);
  actio_db_array_free(a);
  ck_assert_int_eq(actio_db_array_get(r, 0, 6, &a), 0);
  uint8_t u[16];
  ck_assert_int_eq(actio_db_value_uuid(&a->elems[0], u), 0);
  ck_assert_mem_eq(u, ids[0].v.uuid, 16);
  actio_db_array_free(a);
  ck_assert_int_eq(actio_db_array_get(r, 0, 7, &a), 0);
  ck_assert_int_eq(actio_db_value_json(&a->elems[0], &t), 0);
  ck_assert_str_eq(t, "[1]");
  ck_assert_int_eq(actio_db_value_json(&a->elems[1], &t), ACTIO_ENULL);
  actio_db_array_free(a);
  a = (actio_db_array *)&(int){0};
  actio_db_array *untouched = a;
  ck_assert_int_eq(actio_db_array_get(r, 0, 8, &a), ACTIO_ENULL);
  ck_assert_ptr_eq(a, untouched);
  /* A lower bound of its own; two dimensions are refused. */
  ck_assert_int_eq(actio_db_array_get(r, 0, 9, &a), 0);
  int16_t i16;
  ck_assert(a->count == 3 && a->lbound == 0 && a->elem_type == ACTIO_DB_INT2);
  ck_assert_int_eq(actio_db_value_int16(&a->elems[2], &i16), 0);
  ck_assert_int_eq(i16, 9);
  actio_db_array_free(a);
  ck_assert_int_eq(actio_db_array_get(r, 0, 10, &a), ACTIO_ETYPE);
  /* The array outlives its result. */
  ck_assert_int_eq(actio_db_array_get(r, 0, 11, &a), 0);
  actio_future_unref(f);
  ck_assert_int_eq(actio_db_value_text(&a->elems[0], &t), 0);
  ck_assert_str_eq(t, "x");
  actio_db_array_free(a);
  actio_db_array_free(NULL);
  /* Arrays in a text result are not read. */
  r = typed("SELECT $1", p, 1, 0, &f);
  ck_assert_int_eq(actio_db_array_get(r, 0, 0, &a), ACTIO_ETYPE);
  actio_future_unref(f);
  /* The other element getters, on arrays the server builds. */
  r = typed("SELECT ARRAY[9223372036854775807, NULL]::int8[], ARRAY[-1.5, 'NaN']::float8[], "
            "ARRAY[true, false]::bool[], ARRAY['1970-01-02', 'infinity']::date[], "
            "ARRAY['1 mon 2 days 3 us']::interval[]",
            NULL, 0, 1, &f);
  int64_t i64;
  ck_assert_int_eq(actio_db_array_get(r, 0, 0, &a), 0);
  ck_assert_int_eq(actio_db_value_int64(&a->elems[0], &i64), 0);
  ck_assert(i64 == INT64_MAX);
  ck_assert_int_eq(actio_db_value_int64(&a->elems[1], &i64), ACTIO_ENULL);
  actio_db_array_free(a);
  double d;
  ck_assert_int_eq(actio_db_array_get(r, 0, 1, &a), 0);
  ck_assert_int_eq(actio_db_value_double(&a->elems[0], &d), 0);
  ck_assert(d == -1.5);
  ck_assert_int_eq(actio_db_value_double(&a->elems[1], &d), 0);
  ck_assert(isnan(d));
  actio_db_array_free(a);
  int b = -1;
  ck_assert_int_eq(actio_db_array_get(r, 0, 2, &a), 0);
  ck_assert_int_eq(actio_db_value_bool(&a->elems[0], &b), 0);
  ck_assert_int_eq(b, 1);
  ck_assert_int_eq(actio_db_value_bool(&a->elems[1], &b), 0);
  ck_assert_int_eq(b, 0);
  ck_assert_int_eq(actio_db_value_int64(&a->elems[0], &i64), ACTIO_ETYPE);
  actio_db_array_free(a);
  int32_t day;
  ck_assert_int_eq(actio_db_array_get(r, 0, 3, &a), 0);
  ck_assert_int_eq(actio_db_value_date(&a->elems[0], &day), 0);
  ck_assert_int_eq(day, 1);
  ck_assert_int_eq(actio_db_value_date(&a->elems[1], &day), 0);
  ck_assert(day == ACTIO_DB_DATE_INFINITY);
  actio_db_array_free(a);
  actio_db_interval iv;
  ck_assert_int_eq(actio_db_array_get(r, 0, 4, &a), 0);
  ck_assert_int_eq(actio_db_value_interval(&a->elems[0], &iv), 0);
  ck_assert(iv.months == 1 && iv.days == 2 && iv.usec == 3);
  actio_db_array_free(a);
  actio_future_unref(f);
}
END_TEST

/* ---- bad input ---- */

START_TEST(test_wrong_types) {
  actio_future *f;
  for (int binary = 0; binary <= 1; binary++) {
    actio_db_request q = {.sql = "SELECT '5'::text, 5, true, 1.5::float8, 2.5::numeric, "
                                 "'\\x01'::bytea, '{}'::json, 70000, NULL::int",
                          .binary_results = binary};
    ck_assert_int_eq(actio_db_send(db, &q, &f), 0);
    const actio_db_result *r = expect(f, 0);
    int64_t i64 = 3;
    int16_t i16 = 3;
    int b = 3;
    double d = 3;
    char *s = NULL;
    const char *t = NULL;
    void *raw = NULL;
    size_t len = 3;
    uint8_t u[16] = {0};
    ck_assert_int_eq(actio_db_int64(r, 0, 0, &i64), ACTIO_ETYPE); /* text "5" */
    ck_assert_int_eq(actio_db_int64(r, 0, 2, &i64), ACTIO_ETYPE);
    ck_assert_int_eq(actio_db_int64(r, 0, 3, &i64), ACTIO_ETYPE);
    ck_assert_int_eq(actio_db_int64(r, 0, 4, &i64), ACTIO_ETYPE);
    ck_assert_int_eq(actio_db_bool(r, 0, 1, &b), ACTIO_ETYPE);
    ck_assert_int_eq(actio_db_double(r, 0, 1, &d), ACTIO_ETYPE); /* int, not float */
    ck_assert_int_eq(actio_db_double(r, 0, 4, &d), ACTIO_ETYPE);
    ck_assert_int_eq(actio_db_numeric(r, 0, 3, &s), ACTIO_ETYPE);
    ck_assert_int_eq(actio_db_bytea(r, 0, 0, &raw, &len), ACTIO_ETYPE);
    ck_assert_int_eq(actio_db_json(r, 0, 0, &t), ACTIO_ETYPE);
    ck_assert_int_eq(actio_db_uuid(r, 0, 0, u), ACTIO_ETYPE);
    ck_assert_int_eq(actio_db_array_get(r, 0, 1, &(actio_db_array *){NULL}), ACTIO_ETYPE);
    ck_assert_int_eq(actio_db_int16(r, 0, 7, &i16), ACTIO_ERANGE);
    /* Nothing written on a refusal. */
    ck_assert(i64 == 3 && i16 == 3 && b == 3 && d == 3 && s == NULL && t == NULL &&
              raw == NULL && len == 3 && u[0] == 0);
    if (binary) { /* bytes only text reads in binary */
      ck_assert_int_eq(actio_db_text(r, 0, 1, &t), ACTIO_ETYPE);
      ck_assert_int_eq(actio_db_text(r, 0, 5, &t), ACTIO_ETYPE);
      ck_assert_int_eq(actio_db_text(r, 0, 6, &t), 0);
      ck_assert_str_eq(t, "{}");
    } else { /* any column, as the server printed it */
      ck_assert_int_eq(actio_db_text(r, 0, 4, &t), 0);
      ck_assert_str_eq(t, "2.5");
    }
    /* A NULL is NULL to every getter, whatever it reads. */
    ck_assert_int_eq(actio_db_bool(r, 0, 8, &b), ACTIO_ENULL);
    ck_assert_int_eq(actio_db_numeric(r, 0, 8, &s), ACTIO_ENULL);
    ck_assert_int_eq(actio_db_double(r, 0, 8, &d), ACTIO_ENULL);
    actio_future_unref(f);
  }
}
END_TEST

START_TEST(test_columns_by_name) {
  actio_future *f;
  ck_assert_int_eq(actio_db_query(db, "SELECT 1 AS a, 2 AS \"Mixed\", 3 AS b", 0, NULL, &f), 0);
  const actio_db_result *r = expect(f, 0);
  ck_assert_int_eq(actio_db_result_column(r, "a"), 0);
  ck_assert_int_eq(actio_db_result_column(r, "B"), 2); /* folded, as in SQL */
  ck_assert_int_eq(actio_db_result_column(r, "\"Mixed\""), 1);
  ck_assert_int_eq(actio_db_result_column(r, "mixed"), ACTIO_ECOLUMN);
  ck_assert_int_eq(actio_db_result_column(r, "nope"), ACTIO_ECOLUMN);
  ck_assert_int_eq(actio_db_result_column(r, NULL), ACTIO_ECOLUMN);
  ck_assert_int_eq(actio_db_result_column(NULL, "a"), ACTIO_ECOLUMN);
  int32_t v;
  ck_assert_int_eq(actio_db_int32(r, 0, actio_db_result_column(r, "b"), &v), 0);
  ck_assert_int_eq(v, 3);
  ck_assert_int_eq(actio_db_int32(r, 0, actio_db_result_column(r, "zz"), &v), ACTIO_EINVAL);
  ck_assert_str_eq(actio_err_name(ACTIO_ECOLUMN), "ECOLUMN");
  actio_future_unref(f);
}
END_TEST

START_TEST(test_bad_typed_params) {
  actio_future *f = NULL;
  actio_db_param p;
  actio_db_request q = {.sql = "SELECT $1", .nparams = 1, .typed = &p};
#define REFUSED(code, ...)                                                          \
  do {                                                                              \
    p = (actio_db_param){__VA_ARGS__};                                              \
    ck_assert_int_eq(actio_db_send(db, &q, &f), code);                              \
    ck_assert_ptr_null(f);                                                          \
  } while (0)
  REFUSED(ACTIO_ERANGE, .type = ACTIO_DB_INT2, .v.i = 32768);
  REFUSED(ACTIO_ERANGE, .type = ACTIO_DB_INT4, .v.i = (int64_t)INT32_MIN - 1);
  REFUSED(ACTIO_ETYPE, .type = ACTIO_DB_NUMERIC, .v.s = "12x");
  REFUSED(ACTIO_ETYPE, .type = ACTIO_DB_NUMERIC, .v.s = ".");
  REFUSED(ACTIO_EINVAL, .type = ACTIO_DB_NUMERIC, .v.s = NULL);
  REFUSED(ACTIO_EINVAL, .type = ACTIO_DB_TEXT, .v.s = NULL);
  REFUSED(ACTIO_EINVAL, .type = 0);
  REFUSED(ACTIO_EINVAL, .type = 600 /* point */);
  REFUSED(ACTIO_ERANGE, .type = ACTIO_DB_TIMESTAMP, .v.ts = INT64_MIN + 1);
  actio_db_param wrong[] = {{.type = ACTIO_DB_INT8, .v.i = 1}};
  REFUSED(ACTIO_EINVAL, .type = ACTIO_DB_INT4_ARRAY, .v.array = {wrong, 1});
  REFUSED(ACTIO_EINVAL, .type = ACTIO_DB_INT4_ARRAY, .v.array = {NULL, 2});
  actio_db_param big[] = {{.type = ACTIO_DB_INT2, .v.i = 1 << 16}};
  REFUSED(ACTIO_ERANGE, .type = ACTIO_DB_INT2_ARRAY, .v.array = {big, 1});
#undef REFUSED
  /* A NULL's value is not read. */
  p = (actio_db_param){.type = ACTIO_DB_TEXT, .null = 1};
  ck_assert_int_eq(actio_db_send(db, &q, &f), 0);
  ck_assert_int_eq(actio_db_is_null(expect(f, 0), 0, 0), 1);
  actio_future_unref(f);
  /* Typed values alone: not with text ones, types or formats. */
  const char *text[] = {"1"};
  q.params = text;
  ck_assert_int_eq(actio_db_send(db, &q, &f), ACTIO_EINVAL);
  q.params = NULL;
  uint32_t types[] = {ACTIO_DB_INT4};
  q.types = types;
  ck_assert_int_eq(actio_db_send(db, &q, &f), ACTIO_EINVAL);
  q.types = NULL;
  /* A batch takes text values only. */
  ck_assert_int_eq(actio_db_batch(db, &q, 1, &f), ACTIO_EINVAL);
  /* In a transaction and a stream, the same check at the call. */
  p = (actio_db_param){.type = ACTIO_DB_INT2, .v.i = -40000};
  ck_assert_int_eq(actio_db_stream(db, &q, 0, NULL, NULL, &f), ACTIO_EINVAL); /* no fn */
  actio_future *tf;
  ck_assert_int_eq(actio_db_begin(db, NULL, &tf), 0);
  expect(tf, 0);
  actio_db_txn *t = actio_future_value(tf);
  ck_assert_int_eq(actio_db_txn_send(t, &q, &f), ACTIO_ERANGE);
  ck_assert_int_eq(actio_db_rollback(t, &f), 0);
  expect(f, 0);
  actio_future_unref(f);
  actio_future_unref(tf);
}
END_TEST

/* ---- io/pg's readers and writers on their own ---- */

/* Every reader of pg_types.h on v: none may read past v->len (ASan sees
 * it, v->data being a block of exactly that size). */
static void read_all(const actio__pg_val *v) {
  int64_t i;
  double d;
  int b;
  const char *t;
  size_t n;
  void *raw = NULL;
  uint8_t u[16];
  char *s = NULL;
  int32_t day;
  actio__pg_interval iv;
  int32_t lb;
  actio__pg_get_int(v, &i);
  actio__pg_get_float(v, &d);
  actio__pg_get_bool(v, &b);
  actio__pg_get_text(v, &t, &n);
  actio__pg_get_json(v, &t, &n);
  if (actio__pg_get_bytea(v, &raw, &n) == 0)
    free(raw);
  actio__pg_get_uuid(v, u);
  if (actio__pg_get_numeric(v, &s) == 0)
    free(s);
  actio__pg_get_date(v, &day);
  actio__pg_get_timestamp(v, &i);
  actio__pg_get_interval(v, &iv);
  if (actio__pg_get_array(v, &n, &lb, NULL) == 0) {
    actio__pg_val *el = malloc((n ? n : 1) * sizeof *el);
    ck_assert_int_eq(actio__pg_get_array(v, &n, &lb, el), 0);
    for (size_t k = 0; k < n; k++)
      read_all(&el[k]);
    free(el);
  }
}

/* buf (len bytes) of type `type` read whole and cut at every length: the
 * whole reads as `whole_rc` by `reader`, each cut as ACTIO_ETYPE. */
typedef int (*reader_fn)(const actio__pg_val *v);

static void cut_everywhere(uint32_t type, const char *buf, size_t len, reader_fn reader) {
  for (size_t cut = 0; cut <= len; cut++) {
    char *copy = malloc(cut ? cut : 1);
    memcpy(copy, buf, cut);
    actio__pg_val v = {.type = type, .binary = 1, .data = copy, .len = cut};
    int rc = reader(&v);
    if (cut == len)
      ck_assert_int_eq(rc, 0);
    else
      ck_assert_msg(rc == ACTIO_ETYPE, "type %u cut at %zu of %zu: %d", type, cut, len, rc);
    read_all(&v);
    free(copy);
  }
}

static int read_int(const actio__pg_val *v) { return actio__pg_get_int(v, &(int64_t){0}); }
static int read_float(const actio__pg_val *v) { return actio__pg_get_float(v, &(double){0}); }
static int read_uuid(const actio__pg_val *v) { return actio__pg_get_uuid(v, (uint8_t[16]){0}); }
static int read_date(const actio__pg_val *v) { return actio__pg_get_date(v, &(int32_t){0}); }
static int read_ts(const actio__pg_val *v) { return actio__pg_get_timestamp(v, &(int64_t){0}); }
static int read_interval(const actio__pg_val *v) {
  return actio__pg_get_interval(v, &(actio__pg_interval){0});
}
static int read_numeric(const actio__pg_val *v) {
  char *s = NULL;
  int rc = actio__pg_get_numeric(v, &s);
  free(s);
  return rc;
}
static int read_array(const actio__pg_val *v) {
  size_t n;
  int32_t lb;
  return actio__pg_get_array(v, &n, &lb, NULL);
}
static int read_jsonb(const actio__pg_val *v) {
  return actio__pg_get_json(v, &(const char *){NULL}, &(size_t){0});
}

START_TEST(test_readers_on_cut_buffers) {
  char buf[256];
  long n = actio__pg_put_int(ACTIO__PG_INT8, -2, buf, sizeof buf);
  cut_everywhere(ACTIO__PG_INT8, buf, (size_t)n, read_int);
  n = actio__pg_put_int(ACTIO__PG_INT2, 7, buf, sizeof buf);
  cut_everywhere(ACTIO__PG_INT2, buf, (size_t)n, read_int);
  n = actio__pg_put_float(ACTIO__PG_FLOAT8, 0.5, buf, sizeof buf);
  cut_everywhere(ACTIO__PG_FLOAT8, buf, (size_t)n, read_float);
  n = actio__pg_put_uuid((const uint8_t *)"0123456789abcdef", buf, sizeof buf);
  cut_everywhere(ACTIO__PG_UUID, buf, (size_t)n, read_uuid);
  n = actio__pg_put_date(12345, buf, sizeof buf);
  cut_everywhere(ACTIO__PG_DATE, buf, (size_t)n, read_date);
  n = actio__pg_put_timestamp(-12345, buf, sizeof buf);
  cut_everywhere(ACTIO__PG_TIMESTAMPTZ, buf, (size_t)n, read_ts);
  n = actio__pg_put_interval(&(actio__pg_interval){1, 2, 3}, buf, sizeof buf);
  cut_everywhere(ACTIO__PG_INTERVAL, buf, (size_t)n, read_interval);
  n = actio__pg_put_numeric("-12345678.000000001", buf, sizeof buf);
  cut_everywhere(ACTIO__PG_NUMERIC, buf, (size_t)n, read_numeric);
  n = actio__pg_put_bytes(ACTIO__PG_JSONB, "{}", 2, buf, sizeof buf);
  cut_everywhere(ACTIO__PG_JSONB, buf, 1, read_jsonb); /* the version byte alone: "" */
  /* int4[] {5, NULL, 6} */
  long at = actio__pg_put_array_head(ACTIO__PG_INT4, 3, 1, buf, sizeof buf);
  actio__pg_put_elem_len(4, buf + at);
  at += 4 + actio__pg_put_int(ACTIO__PG_INT4, 5, buf + at + 4, 4);
  actio__pg_put_elem_len(-1, buf + at);
  at += 4;
  actio__pg_put_elem_len(4, buf + at);
  at += 4 + actio__pg_put_int(ACTIO__PG_INT4, 6, buf + at + 4, 4);
  cut_everywhere(1007, buf, (size_t)at, read_array);
  /* An array's element whose length runs past the end; a negative count;
   * two dimensions; another element type; bytes left over. */
  char bad[64];
  memcpy(bad, buf, (size_t)at);
  actio__pg_put_elem_len(1 << 30, bad + 20);
  ck_assert_int_eq(read_array(&(actio__pg_val){1007, 1, bad, (size_t)at}), ACTIO_ETYPE);
  memcpy(bad, buf, (size_t)at);
  actio__pg_put_elem_len(-5, bad + 12);
  ck_assert_int_eq(read_array(&(actio__pg_val){1007, 1, bad, (size_t)at}), ACTIO_ETYPE);
  memcpy(bad, buf, (size_t)at);
  actio__pg_put_elem_len(2, bad);
  ck_assert_int_eq(read_array(&(actio__pg_val){1007, 1, bad, (size_t)at}), ACTIO_ETYPE);
  ck_assert_int_eq(read_array(&(actio__pg_val){1016, 1, buf, (size_t)at}), ACTIO_ETYPE);
  ck_assert_int_eq(read_array(&(actio__pg_val){1007, 1, buf, (size_t)at + 1}), ACTIO_ETYPE);
  /* numeric: a digit past 9999, a sign that is none, a scale too large. */
  n = actio__pg_put_numeric("1.5", buf, sizeof buf);
  memcpy(bad, buf, (size_t)n);
  bad[8] = 0x27, bad[9] = 0x10; /* 10000 */
  ck_assert_int_eq(read_numeric(&(actio__pg_val){ACTIO__PG_NUMERIC, 1, bad, (size_t)n}),
                   ACTIO_ETYPE);
  memcpy(bad, buf, (size_t)n);
  bad[4] = 0x12;
  ck_assert_int_eq(read_numeric(&(actio__pg_val){ACTIO__PG_NUMERIC, 1, bad, (size_t)n}),
                   ACTIO_ETYPE);
  memcpy(bad, buf, (size_t)n);
  bad[6] = 0x40;
  ck_assert_int_eq(read_numeric(&(actio__pg_val){ACTIO__PG_NUMERIC, 1, bad, (size_t)n}),
                   ACTIO_ETYPE);
  /* jsonb of another version; text that is no integer, float or uuid. */
  ck_assert_int_eq(read_jsonb(&(actio__pg_val){ACTIO__PG_JSONB, 1, "\2{}", 3}), ACTIO_ETYPE);
  ck_assert_int_eq(read_int(&(actio__pg_val){ACTIO__PG_INT8, 0, "12a", 3}), ACTIO_ETYPE);
  ck_assert_int_eq(read_int(&(actio__pg_val){ACTIO__PG_INT8, 0, "-", 1}), ACTIO_ETYPE);
  ck_assert_int_eq(read_int(&(actio__pg_val){ACTIO__PG_INT8, 0, "9223372036854775808", 19}),
                   ACTIO_ERANGE);
  ck_assert_int_eq(read_float(&(actio__pg_val){ACTIO__PG_FLOAT8, 0, "1.5x", 4}), ACTIO_ETYPE);
  ck_assert_int_eq(read_uuid(&(actio__pg_val){ACTIO__PG_UUID, 0,
                                              "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1g", 36}),
                   ACTIO_ETYPE);
  /* A text bytea in either case of hex. */
  void *raw;
  size_t len;
  ck_assert_int_eq(actio__pg_get_bytea(&(actio__pg_val){ACTIO__PG_BYTEA, 0, "\\xAbcD", 6},
                                       &raw, &len), 0);
  ck_assert(len == 2 && memcmp(raw, "\xab\xcd", 2) == 0);
  free(raw);
  ck_assert_int_eq(actio__pg_get_bytea(&(actio__pg_val){ACTIO__PG_BYTEA, 0, "\\xzz", 4},
                                       &raw, &len), ACTIO_ETYPE);
}
END_TEST

START_TEST(test_numeric_writer_and_reader_agree) {
  static const char *cases[][2] = {
      {"0", "0"}, {"-0", "0"}, {"007", "7"}, {"1.", "1"}, {".5", "0.5"},
      {"1e4", "10000"}, {"1E-4", "0.0001"}, {"-1.5e+2", "-150"}, {"12345.6789", "12345.6789"},
      {"0.00012345", "0.00012345"}, {"100000000", "100000000"}, {"9999.9999", "9999.9999"},
      {"nan", "NaN"}, {"+Infinity", "Infinity"}, {"-inf", "-Infinity"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char buf[128];
    long n = actio__pg_put_numeric(cases[i][0], NULL, 0);
    ck_assert_int_gt(n, 0);
    ck_assert_int_eq(actio__pg_put_numeric(cases[i][0], buf, sizeof buf), n);
    char *s;
    ck_assert_int_eq(
        actio__pg_get_numeric(&(actio__pg_val){ACTIO__PG_NUMERIC, 1, buf, (size_t)n}, &s), 0);
    ck_assert_msg(strcmp(s, cases[i][1]) == 0, "%s read back as %s", cases[i][0], s);
    free(s);
  }
  /* Forms the server never sends, read as it would print their value: a
   * leading zero digit, a negative zero. */
  char *s;
  ck_assert_int_eq(actio__pg_get_numeric(&(actio__pg_val){ACTIO__PG_NUMERIC, 1,
                                                          "\0\2\0\1\0\0\0\0\0\0\0\5", 12},
                                         &s), 0);
  ck_assert_str_eq(s, "5");
  free(s);
  ck_assert_int_eq(actio__pg_get_numeric(&(actio__pg_val){ACTIO__PG_NUMERIC, 1,
                                                          "\0\0\0\0\x40\0\0\2", 8},
                                         &s), 0);
  ck_assert_str_eq(s, "0.00");
  free(s);
  ck_assert_int_eq(actio__pg_put_numeric("", NULL, 0), ACTIO_ETYPE);
  ck_assert_int_eq(actio__pg_put_numeric("1e", NULL, 0), ACTIO_ETYPE);
  ck_assert_int_eq(actio__pg_put_numeric("1e999999", NULL, 0), ACTIO_ERANGE);
  ck_assert_int_eq(actio__pg_put_numeric("1 ", NULL, 0), ACTIO_ETYPE);
}
END_TEST

static Suite *db_types_suite(void) {
  Suite *s = suite_create("db_types");
  TCase *tc = tcase_with_timeout("values", 120);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_integers);
  tcase_add_test(tc, test_floats);
  tcase_add_test(tc, test_numeric);
  tcase_add_test(tc, test_bool_text_bytes_uuid_json);
  tcase_add_test(tc, test_times);
  tcase_add_test(tc, test_timestamptz_is_utc_on_the_wire);
  tcase_add_test(tc, test_arrays);
  tcase_add_test(tc, test_wrong_types);
  tcase_add_test(tc, test_columns_by_name);
  tcase_add_test(tc, test_bad_typed_params);
  suite_add_tcase(s, tc);
  tc = tcase_with_timeout("decoders", 30);
  tcase_add_test(tc, test_readers_on_cut_buffers);
  tcase_add_test(tc, test_numeric_writer_and_reader_agree);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return run_db_suite("test_db_types", db_types_suite()); }

/* pg_values.c: fuzzes the readers of PostgreSQL values (io/pg/pg_types.c:
 * integers, floats, booleans, bytea and text, in the text and the binary
 * format, each refusing a column of a type it does not read) over a
 * result libpq makes from the input (io/pg/pg_result.c), each against a
 * reader written here from the formats' definitions; and the one-line form of the
 * server's error texts (io/pg/pg_error.c), masked as a log needs it,
 * against a form written here.
 *
 * Input: up to 8 cells of one row, each a flags byte (1: binary; 2: SQL
 * NULL; the rest picks the column's type), a length byte, then that many
 * bytes of value. */
#include <math.h>
#include <string.h>

#include "actio/error.h"
#include "fuzz.h"
#include "io/pg/pg_error.h"
#include "io/pg/pg_private.h"
#include "io/pg/pg_result.h"
#include "io/pg/pg_types.h"

#define MAX_COLS 8

typedef struct cell {
  const char *v; /* NULL: SQL NULL */
  int len, binary;
  uint32_t type;
} cell;

/* An error's text as pg_error.h promises it, for a log: "SQLSTATE: " (when
 * state is not NULL) and the text, all from its first double quote to its
 * last as "***" and no detail or hint; on one line (newlines, carriage
 * returns and tabs as spaces), cut to the buffer, no trailing blank. */
static void ref_masked(const char *state, const char *text, char *out, size_t cap) {
  char *all = malloc((state ? strlen(state) : 0) + (text ? strlen(text) : 0) + 32);
  FUZZ_CHECK(all != NULL, "out of memory");
  if (text == NULL || *text == '\0')
    text = "unknown error";
  size_t n = 0;
  for (const char *p = state; p != NULL && *p; p++)
    all[n++] = *p;
  if (state != NULL)
    all[n++] = ':', all[n++] = ' ';
  int quotes = 0;
  for (const char *p = text; *p; p++)
    quotes += *p == '"';
  for (int seen = 0; *text; text++) {
    if (*text == '"' && ++seen == 1) {
      memcpy(all + n, "\"***\"", 5);
      n += 5;
    }
    if (seen == 0 || (quotes > 1 && seen == quotes && *text != '"'))
      all[n++] = *text;
  }
  all[n] = '\0';
  snprintf(out, cap, "%s", all);
  free(all);
  for (char *p = out; *p; p++)
    if (*p == '\n' || *p == '\r' || *p == '\t')
      *p = ' ';
  for (n = strlen(out); n > 0 && out[n - 1] == ' ';)
    out[--n] = '\0';
}

/* A big-endian two's complement integer of 2, 4 or 8 bytes. */
static int64_t be_int(const char *v, int len) {
  uint64_t x = 0;
  for (int i = 0; i < len; i++)
    x = x << 8 | (unsigned char)v[i];
  if (len == 2)
    return (int16_t)(uint16_t)x;
  if (len == 4)
    return (int32_t)(uint32_t)x;
  return (int64_t)x;
}

/* An integer column (int2, int4, int8) as PostgreSQL sends one: binary
 * of the type's width, or an optional sign, then digits, in range.
 * Returns 0, ACTIO_ETYPE or ACTIO_ERANGE. */
static int ref_integer(const cell *c, int64_t *out) {
  int width = c->type == 21 ? 2 : c->type == 23 ? 4 : c->type == 20 ? 8 : 0;
  if (width == 0)
    return ACTIO_ETYPE;
  if (c->binary) {
    if (c->len != width)
      return ACTIO_ETYPE;
    *out = be_int(c->v, c->len);
    return 0;
  }
  const char *p = c->v;
  int neg = *p == '-';
  if (*p == '-' || *p == '+')
    p++;
  if (*p == '\0')
    return ACTIO_ETYPE;
  __int128 x = 0, limit = neg ? (__int128)INT64_MAX + 1 : INT64_MAX;
  for (; *p; p++) {
    if (*p < '0' || *p > '9')
      return ACTIO_ETYPE;
    x = x * 10 + (*p - '0');
    if (x > limit)
      return ACTIO_ERANGE;
  }
  *out = (int64_t)(neg ? -x : x);
  return 0;
}

/* A float as PostgreSQL prints one (float4out, float8out): NaN, Infinity,
 * -Infinity, or [-]digits[.digits][e[+-]digits]. */
static int pg_float_text(const char *s) {
  if (strcmp(s, "NaN") == 0 || strcmp(s, "Infinity") == 0 || strcmp(s, "-Infinity") == 0)
    return 1;
  const char *p = s + (*s == '-');
  size_t digits = strspn(p, "0123456789");
  if (digits == 0)
    return 0;
  p += digits;
  if (*p == '.') {
    size_t frac = strspn(p + 1, "0123456789");
    if (frac == 0)
      return 0;
    p += 1 + frac;
  }
  if (*p == 'e') {
    p++;
    p += *p == '+' || *p == '-';
    size_t exp = strspn(p, "0123456789");
    if (exp == 0)
      return 0;
    p += exp;
  }
  return *p == '\0';
}

static int hex(char c) {
  return c >= '0' && c <= '9' ? c - '0'
         : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                : -1;
}

/* bytea: the bytes themselves (binary) or "\x" and two hex digits a byte. */
static int ref_bytea(const cell *c, unsigned char *out, size_t *len) {
  if (c->type != 17)
    return ACTIO_ETYPE;
  if (c->binary) {
    memcpy(out, c->v, (size_t)c->len);
    *len = (size_t)c->len;
    return 0;
  }
  size_t n = strlen(c->v);
  if (n < 2 || c->v[0] != '\\' || c->v[1] != 'x' || n % 2 != 0)
    return ACTIO_ETYPE;
  for (size_t i = 2; i < n; i += 2) {
    int hi = hex(c->v[i]), lo = hex(c->v[i + 1]);
    if (hi < 0 || lo < 0)
      return ACTIO_ETYPE;
    out[(i - 2) / 2] = (unsigned char)(hi << 4 | lo);
  }
  *len = (n - 2) / 2;
  return 0;
}

/* The readers of the other types: a value of the wrong type or length is
 * ACTIO_ETYPE; numeric text read back from binary writes and reads back
 * the same; an array's elements lie within its bytes. */
static void check_wide(const cell *c, const actio__pg_val *v) {
  char *num = NULL;
  int rn = actio__pg_get_numeric(v, &num);
  FUZZ_CHECK(c->type == 1700 || rn == ACTIO_ETYPE, "numeric of type %u: %d", c->type, rn);
  if (rn == 0 && c->binary) {
    long n = actio__pg_put_numeric(num, NULL, 0);
    FUZZ_CHECK(n > 0, "\"%s\" does not write: %ld", num, n);
    char *buf = malloc((size_t)n), *again = NULL;
    FUZZ_CHECK(buf != NULL && actio__pg_put_numeric(num, buf, (size_t)n) == n, "written");
    actio__pg_val w = {1700, 1, buf, (size_t)n};
    FUZZ_CHECK(actio__pg_get_numeric(&w, &again) == 0 && strcmp(again, num) == 0,
               "\"%s\" read back as \"%s\"", num, again ? again : "");
    free(again);
    free(buf);
  }
  free(num);
  uint8_t u[16];
  int ru = actio__pg_get_uuid(v, u);
  FUZZ_CHECK(ru == ACTIO_ETYPE || (c->type == 2950 && (!c->binary || c->len == 16)),
             "uuid: %d", ru);
  int32_t day;
  int64_t ts;
  actio__pg_interval iv;
  int rd = actio__pg_get_date(v, &day), rt = actio__pg_get_timestamp(v, &ts),
      ri = actio__pg_get_interval(v, &iv);
  FUZZ_CHECK(c->type == 1082 && c->binary && c->len == 4 ? rd == 0 || rd == ACTIO_ERANGE
                                                         : rd == ACTIO_ETYPE,
             "date: %d", rd);
  FUZZ_CHECK(c->type == 1184 && c->binary && c->len == 8 ? rt == 0 || rt == ACTIO_ERANGE
                                                         : rt == ACTIO_ETYPE,
             "timestamp: %d", rt);
  FUZZ_CHECK(ri == (c->type == 1186 && c->binary && c->len == 16 ? 0 : ACTIO_ETYPE),
             "interval: %d", ri);
  size_t n;
  int32_t lb;
  int ra = actio__pg_get_array(v, &n, &lb, NULL);
  FUZZ_CHECK(ra == ACTIO_ETYPE || ((c->type == 1007 || c->type == 1009) && c->binary),
             "array: %d", ra);
  if (ra == 0) {
    actio__pg_val *el = malloc((n ? n : 1) * sizeof *el);
    FUZZ_CHECK(el != NULL && actio__pg_get_array(v, &n, &lb, el) == 0, "elements");
    for (size_t i = 0; i < n; i++) {
      FUZZ_CHECK(el[i].data == NULL ||
                     (el[i].data >= c->v && el[i].data + el[i].len <= c->v + c->len),
                 "element %zu out of the value", i);
      int64_t x;
      if (el[i].data != NULL && c->type == 1007)
        FUZZ_CHECK(actio__pg_get_int(&el[i], &x) == (el[i].len == 4 ? 0 : ACTIO_ETYPE),
                   "int4 element of %zu bytes", el[i].len);
    }
    free(el);
  }
}

static void check_cell(const actio__pg_result *r, int col, const cell *c) {
  actio__pg_val v;
  FUZZ_CHECK(actio__pg_value(r, 0, col, &v) == 0 && v.type == c->type &&
                 v.binary == c->binary && (v.data == NULL) == (c->v == NULL),
             "the value");
  const char *text = NULL;
  size_t ntext = 0;
  int64_t i64 = 0;
  double d = 0;
  int b = 0;
  void *bytes = NULL;
  size_t nbytes = 0;
  int rt = actio__pg_get_text(&v, &text, &ntext);
  int r64 = actio__pg_get_int(&v, &i64);
  int rd = actio__pg_get_float(&v, &d);
  int rb = actio__pg_get_bool(&v, &b);
  int ry = actio__pg_get_bytea(&v, &bytes, &nbytes);
  if (c->v == NULL) {
    FUZZ_CHECK(rt == ACTIO_ENULL && r64 == ACTIO_ENULL && rd == ACTIO_ENULL &&
                   rb == ACTIO_ENULL && ry == ACTIO_ENULL,
               "a NULL read as a value");
    return;
  }
  /* Text reads any column of a text result, and text alone in binary. */
  if (!c->binary || c->type == 25)
    FUZZ_CHECK(rt == 0 && ntext == (size_t)c->len && memcmp(text, c->v, (size_t)c->len) == 0 &&
                   text[c->len] == '\0',
               "text: %d", rt);
  else if (c->type == 3802 && c->len >= 1 && c->v[0] == 1) /* jsonb, version 1 */
    FUZZ_CHECK(rt == 0 && text == c->v + 1 && ntext == (size_t)c->len - 1, "jsonb: %d", rt);
  else
    FUZZ_CHECK(rt == ACTIO_ETYPE, "text of type %u in binary: %d", c->type, rt);

  int64_t want = 0;
  int rw = ref_integer(c, &want);
  FUZZ_CHECK(r64 == rw && (rw != 0 || i64 == want), "int64: %d %lld, expected %d %lld",
             r64, (long long)i64, rw, (long long)want);

  int is_float = c->type == 700 || c->type == 701;
  if (!is_float) {
    FUZZ_CHECK(rd == ACTIO_ETYPE, "float of type %u: %d", c->type, rd);
  } else if (c->binary) {
    if (c->len == (c->type == 701 ? 8 : 4)) {
      double want_d;
      if (c->len == 8) {
        int64_t bits = be_int(c->v, 8);
        memcpy(&want_d, &bits, sizeof want_d);
      } else {
        int32_t bits = (int32_t)be_int(c->v, 4);
        float f;
        memcpy(&f, &bits, sizeof f);
        want_d = f;
      }
      FUZZ_CHECK(rd == 0 && (d == want_d || (isnan(d) && isnan(want_d))), "float: %d %g", rd, d);
    } else {
      FUZZ_CHECK(rd == ACTIO_ETYPE, "float of %d bytes: %d", c->len, rd);
    }
  } else {
    if (pg_float_text(c->v) && c->len < 64)
      FUZZ_CHECK(rd == 0, "\"%s\": %d, a float as the server prints one", c->v, rd);
    if (rd == 0) { /* whatever else it reads is all a number */
      char *end;
      double want_d = strtod(c->v, &end);
      FUZZ_CHECK(*c->v != '\0' && *end == '\0' && (d == want_d || (isnan(d) && isnan(want_d))),
                 "\"%s\": %g", c->v, d);
    }
  }
  if (c->type != 16) {
    FUZZ_CHECK(rb == ACTIO_ETYPE, "bool of type %u: %d", c->type, rb);
  } else if (c->binary) {
    FUZZ_CHECK(rb == (c->len == 1 ? 0 : ACTIO_ETYPE) && (rb != 0 || b == (c->v[0] != 0)),
               "bool: %d %d", rb, b);
  } else {
    int tf = (c->v[0] == 't' || c->v[0] == 'f') && c->v[1] == '\0';
    FUZZ_CHECK(rb == (tf ? 0 : ACTIO_ETYPE) && (rb != 0 || b == (c->v[0] == 't')),
               "bool \"%s\": %d %d", c->v, rb, b);
  }

  unsigned char want_bytes[256];
  size_t want_n = 0;
  int ryw = ref_bytea(c, want_bytes, &want_n);
  FUZZ_CHECK(ry == ryw, "bytea: %d, expected %d", ry, ryw);
  if (ry == 0)
    FUZZ_CHECK(nbytes == want_n && (want_n == 0 || memcmp(bytes, want_bytes, want_n) == 0),
               "bytea: %zu bytes, expected %zu", nbytes, want_n);
  free(bytes);
  check_wide(c, &v);

  /* The text as a server's message, on one line in a buffer of some size. */
  char line[64];
  size_t cap = (size_t)c->len % sizeof line + 1;
  actio__pg_one_line(c->v, line, cap);
  size_t n = strlen(line);
  FUZZ_CHECK(n < cap, "past the buffer");
  FUZZ_CHECK(strpbrk(line, "\n\r\t") == NULL && (n == 0 || line[n - 1] != ' '),
             "\"%s\": not one trimmed line", line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const uint32_t types[] = {16 /* bool */, 17 /* bytea */, 20 /* int8 */,
                                   21 /* int2 */, 23 /* int4 */, 25 /* text */,
                                   700 /* float4 */, 701 /* float8 */,
                                   1700 /* numeric */, 2950 /* uuid */, 1082 /* date */,
                                   1184 /* timestamptz */, 1186 /* interval */,
                                   1007 /* int4[] */, 1009 /* text[] */, 3802 /* jsonb */};
  fuzz_in in = {data, size};
  PGresAttDesc att[MAX_COLS];
  cell cells[MAX_COLS];
  char names[MAX_COLS][4];
  int ncols = 0;
  while (in.n > 0 && ncols < MAX_COLS) {
    uint8_t flags = fuzz_byte(&in);
    size_t len = fuzz_byte(&in);
    if (len > in.n)
      len = in.n;
    snprintf(names[ncols], sizeof names[ncols], "c%d", ncols);
    att[ncols] = (PGresAttDesc){.name = names[ncols], .format = flags & 1,
                                .typid = types[(flags >> 2) % 16], .typlen = -1,
                                .atttypmod = -1};
    /* A text value ends at its first NUL, as the server's never holds one. */
    size_t vlen = flags & 1 ? len : strnlen((const char *)in.p, len);
    cells[ncols] = (cell){flags & 2 ? NULL : (const char *)in.p, (int)vlen, flags & 1,
                          types[(flags >> 2) % 16]};
    in.p += len;
    in.n -= len;
    ncols++;
  }
  PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
  FUZZ_CHECK(res != NULL && PQsetResultAttrs(res, ncols, att), "a result");
  for (int i = 0; i < ncols; i++)
    FUZZ_CHECK(PQsetvalue(res, 0, i, (char *)cells[i].v, cells[i].v ? cells[i].len : -1),
               "a value");
  /* From here on the cells are libpq's copies, NUL-terminated. */
  for (int i = 0; i < ncols; i++)
    if (cells[i].v != NULL)
      cells[i].v = PQgetvalue(res, 0, i);

  const actio__pg_result *r = actio__pg_wrap(res);
  FUZZ_CHECK(actio__pg_result_rows(r) == (ncols > 0) && actio__pg_result_columns(r) == ncols,
             "shape");
  for (int i = 0; i < ncols; i++)
    check_cell(r, i, &cells[i]);
  actio__pg_val x;
  FUZZ_CHECK(actio__pg_value(r, 1, 0, &x) == ACTIO_EINVAL &&
                 actio__pg_value(r, 0, -1, &x) == ACTIO_EINVAL &&
                 actio__pg_value(r, 0, ncols, &x) == ACTIO_EINVAL &&
                 actio__pg_value(NULL, 0, 0, &x) == ACTIO_EINVAL,
             "a cell out of range");

  /* An error made of the first cells' texts. */
  const char *t[3] = {NULL, NULL, NULL};
  for (int i = 0, k = 0; i < ncols && k < 3; i++)
    if (!cells[i].binary && cells[i].v != NULL)
      t[k++] = cells[i].v;
  actio__pg_error e = {.sqlstate = t[0] && strlen(t[0]) == 5 ? t[0] : NULL,
                       .message = t[1], .detail = t[2], .hint = t[0], .full = t[0]};
  char msg[300], want[300];
  actio__pg_error_format(&e, msg, sizeof msg);
  size_t n = strlen(msg);
  FUZZ_CHECK(strpbrk(msg, "\n\r\t") == NULL && (n == 0 || msg[n - 1] != ' '),
             "\"%s\": not one trimmed line", msg);
  ref_masked(e.message ? (e.sqlstate ? e.sqlstate : "?????") : NULL,
             e.message ? e.message : e.full, want, sizeof want);
  FUZZ_CHECK(strcmp(msg, want) == 0, "\"%s\", expected \"%s\"", msg, want);
  PQclear(res);
  return 0;
}

/* pg_values.c: fuzzes the decoders of PostgreSQL values (io/pg/pg_result.c:
 * integers, floats, booleans, bytea and text, in the text and the binary
 * format) over a result libpq makes from the input, each against a decoder
 * written here from the formats' definitions; and the one-line form of the
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

#define MAX_COLS 8

typedef struct cell {
  const char *v; /* NULL: SQL NULL */
  int len, binary;
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

/* An integer as PostgreSQL prints one: an optional sign, then digits, in
 * range. Returns 0 or ACTIO_ETYPE. */
static int ref_integer(const cell *c, int64_t *out) {
  if (c->binary) {
    if (c->len != 2 && c->len != 4 && c->len != 8)
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
  __int128 x = 0;
  for (; *p; p++) {
    if (*p < '0' || *p > '9')
      return ACTIO_ETYPE;
    x = x * 10 + (*p - '0');
    if (x > (__int128)INT64_MAX + 1)
      return ACTIO_ETYPE;
  }
  x = neg ? -x : x;
  if (x > INT64_MAX)
    return ACTIO_ETYPE;
  *out = (int64_t)x;
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

static void check_cell(const actio__pg_result *r, int col, const cell *c) {
  FUZZ_CHECK(actio__pg_value_is_null(r, 0, col) == (c->v == NULL), "is_null");
  const char *text = NULL;
  int64_t i64 = 0;
  int32_t i32 = 0;
  double d = 0;
  int b = 0;
  void *bytes = NULL;
  size_t nbytes = 0;
  int rt = actio__pg_value_text(r, 0, col, &text);
  int r64 = actio__pg_value_int64(r, 0, col, &i64);
  int r32 = actio__pg_value_int32(r, 0, col, &i32);
  int rd = actio__pg_value_double(r, 0, col, &d);
  int rb = actio__pg_value_bool(r, 0, col, &b);
  int ry = actio__pg_value_bytea(r, 0, col, &bytes, &nbytes);
  if (c->v == NULL) {
    FUZZ_CHECK(rt == ACTIO_ENULL && r64 == ACTIO_ENULL && r32 == ACTIO_ENULL &&
                   rd == ACTIO_ENULL && rb == ACTIO_ENULL && ry == ACTIO_ENULL,
               "a NULL read as a value");
    return;
  }
  FUZZ_CHECK(rt == 0 && memcmp(text, c->v, (size_t)c->len) == 0 && text[c->len] == '\0',
             "text: %d", rt);

  int64_t want = 0;
  int rw = ref_integer(c, &want);
  FUZZ_CHECK(r64 == rw && (rw != 0 || i64 == want), "int64: %d %lld, expected %d %lld",
             r64, (long long)i64, rw, (long long)want);
  int rw32 = rw == 0 && (want < INT32_MIN || want > INT32_MAX) ? ACTIO_ETYPE : rw;
  FUZZ_CHECK(r32 == rw32 && (rw32 != 0 || i32 == want), "int32: %d %d", r32, (int)i32);

  if (c->binary) {
    if (c->len == 8 || c->len == 4) {
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
    FUZZ_CHECK(rb == (c->len == 1 ? 0 : ACTIO_ETYPE) && (rb != 0 || b == (c->v[0] != 0)),
               "bool: %d %d", rb, b);
  } else {
    if (pg_float_text(c->v))
      FUZZ_CHECK(rd == 0, "\"%s\": %d, a float as the server prints one", c->v, rd);
    if (rd == 0) { /* whatever else it reads is all a number */
      char *end;
      double want_d = strtod(c->v, &end);
      FUZZ_CHECK(*c->v != '\0' && *end == '\0' && (d == want_d || (isnan(d) && isnan(want_d))),
                 "\"%s\": %g", c->v, d);
    }
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
                                   700 /* float4 */, 701 /* float8 */};
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
                                .typid = types[(flags >> 2) % 8], .typlen = -1,
                                .atttypmod = -1};
    cells[ncols] = (cell){flags & 2 ? NULL : (const char *)in.p, (int)len, flags & 1};
    in.p += len;
    in.n -= len;
    ncols++;
  }
  PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
  FUZZ_CHECK(res != NULL && PQsetResultAttrs(res, ncols, att), "a result");
  for (int i = 0; i < ncols; i++)
    FUZZ_CHECK(PQsetvalue(res, 0, i, (char *)cells[i].v, cells[i].v ? cells[i].len : -1),
               "a value");
  /* From here on the cells are libpq's copies, NUL-terminated; a text value
   * ends at its first NUL, as the server's never holds one. */
  for (int i = 0; i < ncols; i++) {
    if (cells[i].v == NULL)
      continue;
    cells[i].v = PQgetvalue(res, 0, i);
    if (!cells[i].binary)
      cells[i].len = (int)strlen(cells[i].v);
  }

  const actio__pg_result *r = actio__pg_wrap(res);
  FUZZ_CHECK(actio__pg_result_rows(r) == (ncols > 0) && actio__pg_result_columns(r) == ncols,
             "shape");
  for (int i = 0; i < ncols; i++)
    check_cell(r, i, &cells[i]);
  int64_t x;
  FUZZ_CHECK(actio__pg_value_int64(r, 1, 0, &x) == ACTIO_EINVAL &&
                 actio__pg_value_int64(r, 0, -1, &x) == ACTIO_EINVAL &&
                 actio__pg_value_int64(r, 0, ncols, &x) == ACTIO_EINVAL &&
                 actio__pg_value_int64(NULL, 0, 0, &x) == ACTIO_EINVAL,
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

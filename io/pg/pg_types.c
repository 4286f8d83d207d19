/* pg_types.c: PostgreSQL's text and binary formats of the common types,
 * read into C values and written from them (the server's *_send and
 * *_recv functions are the reference), every read bounded by the value's
 * length. */
#include "io/pg/pg_types.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "actio/error.h"

/* ---- reading ---- */

/* A big-endian two's complement integer of n (1..8) bytes. */
static int64_t be(const char *v, size_t n) {
  uint64_t x = 0;
  for (size_t i = 0; i < n; i++)
    x = x << 8 | (unsigned char)v[i];
  if (n < 8 && (x >> (n * 8 - 1)) & 1) /* sign-extend */
    x |= ~(uint64_t)0 << (n * 8);
  return (int64_t)x;
}

/* 0 for a value of type a or b, ACTIO_ENULL or ACTIO_ETYPE. */
static int of_either(const actio__pg_val *v, uint32_t a, uint32_t b) {
  return v->data == NULL ? ACTIO_ENULL : v->type == a || v->type == b ? 0 : ACTIO_ETYPE;
}

static int of_type(const actio__pg_val *v, uint32_t type) { return of_either(v, type, type); }

/* 0 for a binary value of `type` and exactly len bytes. */
static int fixed(const actio__pg_val *v, uint32_t type, size_t len) {
  int rc = of_type(v, type);
  return rc != 0 ? rc : v->binary && v->len == len ? 0 : ACTIO_ETYPE;
}

static size_t int_width(uint32_t type) {
  return type == ACTIO__PG_INT2 ? 2 : type == ACTIO__PG_INT4 ? 4 : type == ACTIO__PG_INT8 ? 8 : 0;
}

int actio__pg_get_int(const actio__pg_val *v, int64_t *out) {
  size_t w = int_width(v->type);
  if (v->data == NULL)
    return ACTIO_ENULL;
  if (w == 0)
    return ACTIO_ETYPE;
  if (v->binary) {
    if (v->len != w)
      return ACTIO_ETYPE;
    *out = be(v->data, w);
    return 0;
  }
  /* Decimal text, as PostgreSQL prints integers: [-]digits. */
  const char *p = v->data, *end = v->data + v->len;
  int neg = p < end && *p == '-';
  p += p < end && (*p == '-' || *p == '+');
  if (p == end)
    return ACTIO_ETYPE;
  uint64_t x = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
  /* Up to 18 digits stay below 10^18: no overflow to test (a division a
   * digit, for every integer a result holds). */
  int checked = end - p > 18;
  for (; p < end; p++) {
    unsigned d = (unsigned)(*p - '0');
    if (d > 9)
      return ACTIO_ETYPE;
    if (checked && x > (limit - d) / 10)
      return ACTIO_ERANGE;
    x = x * 10 + d;
  }
  *out = neg ? (int64_t)(0 - x) : (int64_t)x;
  return 0;
}

int actio__pg_get_float(const actio__pg_val *v, double *out) {
  int rc = of_either(v, ACTIO__PG_FLOAT4, ACTIO__PG_FLOAT8);
  if (rc != 0)
    return rc;
  if (v->binary) { /* IEEE 754, big-endian */
    if (v->len != (v->type == ACTIO__PG_FLOAT8 ? 8u : 4u))
      return ACTIO_ETYPE;
    if (v->len == 8) {
      int64_t x = be(v->data, 8);
      memcpy(out, &x, sizeof *out);
    } else {
      int32_t x = (int32_t)be(v->data, 4);
      float f;
      memcpy(&f, &x, sizeof f);
      *out = f;
    }
    return 0;
  }
  /* strtod needs its NUL: a copy, as the server's longest float is 25
   * characters; it also reads "NaN", "Infinity" and "-Infinity". */
  char buf[64], *end;
  if (v->len == 0 || v->len >= sizeof buf)
    return ACTIO_ETYPE;
  memcpy(buf, v->data, v->len);
  buf[v->len] = '\0';
  double d = strtod(buf, &end);
  if (*end != '\0')
    return ACTIO_ETYPE;
  *out = d;
  return 0;
}

int actio__pg_get_bool(const actio__pg_val *v, int *out) {
  int rc = of_type(v, ACTIO__PG_BOOL);
  if (rc != 0)
    return rc;
  if (v->len != 1 || (!v->binary && *v->data != 't' && *v->data != 'f'))
    return ACTIO_ETYPE;
  *out = v->binary ? *v->data != 0 : *v->data == 't';
  return 0;
}

/* A jsonb in binary: version 1, then the text. */
static int jsonb_text(const actio__pg_val *v, const char **out, size_t *len) {
  if (v->len < 1 || v->data[0] != 1)
    return ACTIO_ETYPE;
  *out = v->data + 1;
  *len = v->len - 1;
  return 0;
}

int actio__pg_get_text(const actio__pg_val *v, const char **out, size_t *len) {
  if (v->data == NULL)
    return ACTIO_ENULL;
  if (v->binary) {
    switch (v->type) {
    case ACTIO__PG_JSONB:
      return jsonb_text(v, out, len);
    case ACTIO__PG_TEXT: case ACTIO__PG_VARCHAR: case ACTIO__PG_BPCHAR:
    case ACTIO__PG_NAME: case ACTIO__PG_XML: case ACTIO__PG_UNKNOWN:
    case ACTIO__PG_JSON:
      break;
    default:
      return ACTIO_ETYPE;
    }
  }
  *out = v->data;
  *len = v->len;
  return 0;
}

int actio__pg_get_json(const actio__pg_val *v, const char **out, size_t *len) {
  int rc = of_either(v, ACTIO__PG_JSON, ACTIO__PG_JSONB);
  return rc != 0 ? rc : actio__pg_get_text(v, out, len);
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

/* n bytes from 2n hex digits; 0 or ACTIO_ETYPE. */
static int unhex(const char *s, size_t n, unsigned char *out) {
  for (size_t i = 0; i < n; i++) {
    int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return ACTIO_ETYPE;
    out[i] = (unsigned char)(hi << 4 | lo);
  }
  return 0;
}

int actio__pg_get_bytea(const actio__pg_val *v, void **data, size_t *len) {
  int rc = of_type(v, ACTIO__PG_BYTEA);
  if (rc != 0)
    return rc;
  size_t n = v->len;
  if (!v->binary) { /* the hex format: \x0a1b... */
    if (v->len < 2 || v->data[0] != '\\' || v->data[1] != 'x' || v->len % 2 != 0)
      return ACTIO_ETYPE;
    n = (v->len - 2) / 2;
  }
  unsigned char *buf = malloc(n ? n : 1);
  if (buf == NULL)
    return ACTIO_ENOMEM;
  if (v->binary) {
    memcpy(buf, v->data, n);
  } else if (unhex(v->data + 2, n, buf) != 0) {
    free(buf);
    return ACTIO_ETYPE;
  }
  *data = buf;
  *len = n;
  return 0;
}

int actio__pg_get_uuid(const actio__pg_val *v, uint8_t out[16]) {
  int rc = of_type(v, ACTIO__PG_UUID);
  if (rc != 0)
    return rc;
  if (v->binary) {
    if (v->len != 16)
      return ACTIO_ETYPE;
    memcpy(out, v->data, 16);
    return 0;
  }
  /* As uuid_out prints it: 8-4-4-4-12 hex digits. */
  static const unsigned char group[] = {4, 2, 2, 2, 6};
  uint8_t u[16];
  const char *p = v->data;
  if (v->len != 36)
    return ACTIO_ETYPE;
  for (size_t g = 0, k = 0; g < sizeof group; g++) {
    if (g > 0 && *p++ != '-')
      return ACTIO_ETYPE;
    if (unhex(p, group[g], u + k) != 0)
      return ACTIO_ETYPE;
    p += 2 * group[g];
    k += group[g];
  }
  memcpy(out, u, 16);
  return 0;
}

/* numeric's binary sign words. */
enum { NUM_POS = 0x0000, NUM_NEG = 0x4000, NUM_NAN = 0xC000, NUM_PINF = 0xD000,
       NUM_NINF = 0xF000, NUM_DSCALE_MAX = 0x3FFF };

/* A malloc'd copy of n bytes and a NUL. */
static char *dup(const char *s, size_t n) {
  char *c = malloc(n + 1);
  if (c != NULL) {
    memcpy(c, s, n);
    c[n] = '\0';
  }
  return c;
}

int actio__pg_get_numeric(const actio__pg_val *v, char **out) {
  int rc = of_type(v, ACTIO__PG_NUMERIC);
  if (rc != 0)
    return rc;
  if (!v->binary) { /* the server's text is exact already */
    char *s = dup(v->data, v->len);
    if (s == NULL)
      return ACTIO_ENOMEM;
    *out = s;
    return 0;
  }
  /* ndigits, weight, sign, dscale (2 bytes each), then ndigits base-10000
   * digits, the first of weight `weight` (numeric_send). */
  if (v->len < 8)
    return ACTIO_ETYPE;
  const char *d = v->data;
  int ndigits = (int)be(d, 2), weight = (int)be(d + 2, 2);
  unsigned sign = (unsigned)be(d + 4, 2) & 0xFFFF, dscale = (unsigned)be(d + 6, 2) & 0xFFFF;
  if (ndigits < 0 || v->len != 8 + 2 * (size_t)ndigits || dscale > NUM_DSCALE_MAX)
    return ACTIO_ETYPE;
  const char *special = sign == NUM_NAN ? "NaN" : sign == NUM_PINF ? "Infinity"
                      : sign == NUM_NINF ? "-Infinity" : NULL;
  if (special == NULL && sign != NUM_POS && sign != NUM_NEG)
    return ACTIO_ETYPE;
  for (int i = 0; i < ndigits; i++)
    if ((unsigned)be(d + 8 + 2 * i, 2) > 9999)
      return ACTIO_ETYPE;
  if (special != NULL) {
    *out = dup(special, strlen(special));
    return *out ? 0 : ACTIO_ENOMEM;
  }
  /* As get_str_from_var: the integer part's base digits (at least "0"),
   * then dscale decimal digits. */
  size_t cap = 1 + (weight >= 0 ? 4 * ((size_t)weight + 1) : 1) + 1 + dscale + 4 + 1;
  char *s = malloc(cap), *p = s;
  if (s == NULL)
    return ACTIO_ENOMEM;
  if (sign == NUM_NEG)
    *p++ = '-';
  if (weight < 0) {
    *p++ = '0';
  } else { /* no leading zeros, though a first digit of 0 were sent */
    for (int i = 0, started = 0; i <= weight; i++) {
      int dig = i < ndigits ? (int)be(d + 8 + 2 * i, 2) : 0;
      for (int div = 1000; div > 0; div /= 10) {
        int c = dig / div % 10;
        if (started || c != 0 || (i == weight && div == 1)) {
          *p++ = (char)('0' + c);
          started = 1;
        }
      }
    }
  }
  if (dscale > 0) {
    *p++ = '.';
    char *frac = p;
    for (int i = weight + 1; p - frac < (long)dscale; i++) {
      int dig = i >= 0 && i < ndigits ? (int)be(d + 8 + 2 * i, 2) : 0;
      for (int div = 1000; div > 0; div /= 10)
        *p++ = (char)('0' + dig / div % 10);
    }
    p = frac + dscale;
  }
  *p = '\0';
  if (s[0] == '-' && strspn(s + 1, "0.") == (size_t)(p - s - 1))
    memmove(s, s + 1, (size_t)(p - s)); /* the server never sends -0: it reads as 0 */
  *out = s;
  return 0;
}

int actio__pg_get_date(const actio__pg_val *v, int32_t *out) {
  int rc = fixed(v, ACTIO__PG_DATE, 4);
  if (rc != 0)
    return rc;
  int64_t x = be(v->data, 4);
  if (x != INT32_MAX && x != INT32_MIN) { /* not infinity */
    x += ACTIO__PG_EPOCH_DAYS;
    if (x >= INT32_MAX)
      return ACTIO_ERANGE;
  }
  *out = (int32_t)x;
  return 0;
}

int actio__pg_get_timestamp(const actio__pg_val *v, int64_t *out) {
  int rc = of_either(v, ACTIO__PG_TIMESTAMP, ACTIO__PG_TIMESTAMPTZ);
  if (rc != 0)
    return rc;
  if (!v->binary || v->len != 8)
    return ACTIO_ETYPE;
  int64_t x = be(v->data, 8);
  if (x != INT64_MAX && x != INT64_MIN) { /* not infinity */
    if (x >= INT64_MAX - ACTIO__PG_EPOCH_USEC)
      return ACTIO_ERANGE; /* past the year 294246 */
    x += ACTIO__PG_EPOCH_USEC;
  }
  *out = x;
  return 0;
}

int actio__pg_get_interval(const actio__pg_val *v, actio__pg_interval *out) {
  int rc = fixed(v, ACTIO__PG_INTERVAL, 16);
  if (rc != 0)
    return rc;
  /* interval_send: microseconds, days, months */
  *out = (actio__pg_interval){.usec = be(v->data, 8), .days = (int32_t)be(v->data + 8, 4),
                              .months = (int32_t)be(v->data + 12, 4)};
  return 0;
}

/* Array types and their elements. */
static const uint32_t arrays[][2] = {
    {1000, ACTIO__PG_BOOL},      {1001, ACTIO__PG_BYTEA},     {1003, ACTIO__PG_NAME},
    {1005, ACTIO__PG_INT2},      {1007, ACTIO__PG_INT4},      {1009, ACTIO__PG_TEXT},
    {1014, ACTIO__PG_BPCHAR},    {1015, ACTIO__PG_VARCHAR},   {1016, ACTIO__PG_INT8},
    {1021, ACTIO__PG_FLOAT4},    {1022, ACTIO__PG_FLOAT8},    {199, ACTIO__PG_JSON},
    {143, ACTIO__PG_XML},        {1115, ACTIO__PG_TIMESTAMP}, {1182, ACTIO__PG_DATE},
    {1185, ACTIO__PG_TIMESTAMPTZ}, {1187, ACTIO__PG_INTERVAL}, {1231, ACTIO__PG_NUMERIC},
    {2951, ACTIO__PG_UUID},      {3807, ACTIO__PG_JSONB},
};

uint32_t actio__pg_array_elem(uint32_t type) {
  for (size_t i = 0; i < sizeof arrays / sizeof *arrays; i++)
    if (arrays[i][0] == type)
      return arrays[i][1];
  return 0;
}

uint32_t actio__pg_array_of(uint32_t elem) {
  for (size_t i = 0; i < sizeof arrays / sizeof *arrays; i++)
    if (arrays[i][1] == elem)
      return arrays[i][0];
  return 0;
}

int actio__pg_get_array(const actio__pg_val *v, size_t *count, int32_t *lbound,
                        actio__pg_val *elems) {
  if (v->data == NULL)
    return ACTIO_ENULL;
  uint32_t elem = actio__pg_array_elem(v->type);
  /* array_send: ndim, has-null flag, element type, (size, lower bound)
   * per dimension, then each element's length (-1: NULL) and bytes. */
  if (elem == 0 || !v->binary || v->len < 12)
    return ACTIO_ETYPE;
  const char *p = v->data, *end = v->data + v->len;
  int64_t ndim = be(p, 4), flags = be(p + 4, 4);
  if ((ndim != 0 && ndim != 1) || (flags != 0 && flags != 1) ||
      (uint32_t)be(p + 8, 4) != elem)
    return ACTIO_ETYPE;
  p += 12;
  int64_t n = 0, lb = 1;
  if (ndim == 1) {
    if (end - p < 8)
      return ACTIO_ETYPE;
    n = be(p, 4);
    lb = be(p + 4, 4);
    p += 8;
    if (n < 0)
      return ACTIO_ETYPE;
  }
  for (int64_t i = 0; i < n; i++) {
    if (end - p < 4)
      return ACTIO_ETYPE;
    int64_t len = be(p, 4);
    p += 4;
    if (len < -1 || (len > 0 && len > end - p))
      return ACTIO_ETYPE;
    if (elems != NULL)
      elems[i] = (actio__pg_val){.type = elem, .binary = 1,
                                 .data = len < 0 ? NULL : p,
                                 .len = len < 0 ? 0 : (size_t)len};
    p += len < 0 ? 0 : len;
  }
  if (p != end)
    return ACTIO_ETYPE;
  *count = (size_t)n;
  *lbound = (int32_t)lb;
  return 0;
}

/* ---- writing ---- */

/* x as n big-endian bytes at buf when they fit in cap; returns n. */
static long put_be(uint64_t x, size_t n, char *buf, size_t cap) {
  if (n <= cap)
    for (size_t i = 0; i < n; i++)
      buf[i] = (char)(x >> (8 * (n - 1 - i)));
  return (long)n;
}

long actio__pg_put_int(uint32_t type, int64_t x, char *buf, size_t cap) {
  size_t w = int_width(type);
  if (w == 0)
    return ACTIO_ETYPE;
  if (w < 8 && (x < -(INT64_C(1) << (8 * w - 1)) || x >= INT64_C(1) << (8 * w - 1)))
    return ACTIO_ERANGE;
  return put_be((uint64_t)x, w, buf, cap);
}

long actio__pg_put_float(uint32_t type, double x, char *buf, size_t cap) {
  if (type == ACTIO__PG_FLOAT8) {
    uint64_t bits;
    memcpy(&bits, &x, sizeof bits);
    return put_be(bits, 8, buf, cap);
  }
  if (type != ACTIO__PG_FLOAT4)
    return ACTIO_ETYPE;
  float f = (float)x;
  uint32_t bits;
  memcpy(&bits, &f, sizeof bits);
  return put_be(bits, 4, buf, cap);
}

long actio__pg_put_bool(int x, char *buf, size_t cap) { return put_be(x != 0, 1, buf, cap); }

long actio__pg_put_bytes(uint32_t type, const void *data, size_t len, char *buf,
                         size_t cap) {
  size_t head = type == ACTIO__PG_JSONB;
  switch (type) {
  case ACTIO__PG_TEXT: case ACTIO__PG_VARCHAR: case ACTIO__PG_BPCHAR: case ACTIO__PG_NAME:
  case ACTIO__PG_XML: case ACTIO__PG_JSON: case ACTIO__PG_JSONB: case ACTIO__PG_BYTEA:
    break;
  default:
    return ACTIO_ETYPE;
  }
  if (len > (size_t)INT32_MAX - head)
    return ACTIO_ERANGE;
  if (head + len <= cap) {
    if (head)
      buf[0] = 1; /* jsonb's version */
    if (len > 0)
      memcpy(buf + head, data, len);
  }
  return (long)(head + len);
}

long actio__pg_put_uuid(const uint8_t uuid[16], char *buf, size_t cap) {
  if (cap >= 16)
    memcpy(buf, uuid, 16);
  return 16;
}

/* Floor division, for the base-10000 place of a decimal power. */
static long floor_div(long a, long b) { return a / b - (a % b != 0 && (a < 0) != (b < 0)); }

static int ieq(const char *a, const char *b) {
  for (; *a && *b; a++, b++)
    if ((*a | 0x20) != (*b | 0x20))
      return 0;
  return *a == *b;
}

/* numeric's 8-byte header; returns 8. */
static long num_head(long ndigits, long weight, unsigned sign, long dscale, char *buf,
                     size_t cap) {
  if (cap >= 8) {
    put_be((uint64_t)ndigits, 2, buf, 2);
    put_be((uint64_t)(uint16_t)(int16_t)weight, 2, buf + 2, 2);
    put_be(sign, 2, buf + 4, 2);
    put_be((uint64_t)dscale, 2, buf + 6, 2);
  }
  return 8;
}

long actio__pg_put_numeric(const char *text, char *buf, size_t cap) {
  const char *p = text;
  int neg = *p == '-';
  p += *p == '-' || *p == '+';
  unsigned sign = neg ? NUM_NEG : NUM_POS;
  if (ieq(text, "NaN"))
    sign = NUM_NAN;
  else if (ieq(p, "Infinity") || ieq(p, "inf"))
    sign = neg ? NUM_NINF : NUM_PINF;
  if (sign != NUM_POS && sign != NUM_NEG)
    return num_head(0, 0, sign, 0, buf, cap);
  /* The digits without the point; where the point was; the exponent. */
  const char *digits = p;
  size_t nint = strspn(p, "0123456789"), nfrac = 0;
  p += nint;
  const char *frac = NULL;
  if (*p == '.') {
    frac = ++p;
    nfrac = strspn(p, "0123456789");
    p += nfrac;
  }
  if (nint + nfrac == 0)
    return ACTIO_ETYPE;
  long exp = 0;
  if (*p == 'e' || *p == 'E') {
    p++;
    int eneg = *p == '-';
    p += *p == '-' || *p == '+';
    if (strspn(p, "0123456789") == 0)
      return ACTIO_ETYPE;
    for (; *p >= '0' && *p <= '9'; p++)
      if ((exp = exp * 10 + (*p - '0')) > 100000)
        return ACTIO_ERANGE;
    exp = eneg ? -exp : exp;
  }
  if (*p != '\0')
    return ACTIO_ETYPE;
  long dscale = (long)nfrac - exp;
  if (dscale < 0)
    dscale = 0;
  if (dscale > NUM_DSCALE_MAX)
    return ACTIO_ERANGE;
  /* Digit i of the number (integer digits then fraction ones) is of power
   * dweight - i: first and last non-zero digits. */
  size_t n = nint + nfrac, first = n, last = 0;
#define DIGIT(i) ((i) < nint ? digits[i] : frac[(i) - nint])
  for (size_t i = 0; i < n; i++)
    if (DIGIT(i) != '0') {
      if (first == n)
        first = i;
      last = i;
    }
  long dweight = (long)nint - 1 + exp;
  if (first == n) /* zero */
    return num_head(0, 0, NUM_POS, dscale, buf, cap);
  long top = dweight - (long)first, bottom = dweight - (long)last; /* powers of ten */
  long weight = floor_div(top, 4), lowest = floor_div(bottom, 4);
  long ndigits = weight - lowest + 1;
  if (weight > INT16_MAX || weight < INT16_MIN || ndigits > INT16_MAX)
    return ACTIO_ERANGE;
  long need = 8 + 2 * ndigits;
  if ((size_t)need > cap)
    return need;
  memset(buf, 0, (size_t)need);
  num_head(ndigits, weight, sign, dscale, buf, cap);
  for (size_t i = first; i <= last; i++) {
    long power = dweight - (long)i, k = weight - floor_div(power, 4);
    static const int scale[] = {1, 10, 100, 1000};
    char *at = buf + 8 + 2 * k;
    int dig = (int)be(at, 2) + (DIGIT(i) - '0') * scale[power - 4 * floor_div(power, 4)];
    put_be((uint64_t)dig, 2, at, 2);
  }
#undef DIGIT
  return need;
}

long actio__pg_put_date(int32_t days, char *buf, size_t cap) {
  int64_t x = days;
  if (days != INT32_MAX && days != INT32_MIN) {
    x -= ACTIO__PG_EPOCH_DAYS;
    if (x <= INT32_MIN)
      return ACTIO_ERANGE;
  }
  return put_be((uint64_t)x, 4, buf, cap);
}

long actio__pg_put_timestamp(int64_t usec, char *buf, size_t cap) {
  int64_t x = usec;
  if (usec != INT64_MAX && usec != INT64_MIN) {
    if (usec <= INT64_MIN + ACTIO__PG_EPOCH_USEC)
      return ACTIO_ERANGE;
    x -= ACTIO__PG_EPOCH_USEC;
  }
  return put_be((uint64_t)x, 8, buf, cap);
}

long actio__pg_put_interval(const actio__pg_interval *iv, char *buf, size_t cap) {
  if (cap >= 16) {
    put_be((uint64_t)iv->usec, 8, buf, 8);
    put_be((uint64_t)(uint32_t)iv->days, 4, buf + 8, 4);
    put_be((uint64_t)(uint32_t)iv->months, 4, buf + 12, 4);
  }
  return 16;
}

long actio__pg_put_array_head(uint32_t elem, size_t count, int has_null, char *buf,
                              size_t cap) {
  if (count > INT32_MAX)
    return ACTIO_ERANGE;
  size_t n = count > 0 ? 20 : 12;
  if (n <= cap) {
    put_be(count > 0, 4, buf, 4);
    put_be(has_null != 0, 4, buf + 4, 4);
    put_be(elem, 4, buf + 8, 4);
    if (count > 0) {
      put_be(count, 4, buf + 12, 4);
      put_be(1, 4, buf + 16, 4);
    }
  }
  return (long)n;
}

void actio__pg_put_elem_len(int32_t len, char *buf) {
  put_be((uint64_t)(uint32_t)len, 4, buf, 4);
}

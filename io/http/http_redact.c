/* http_redact.c: a URL made fit for a message or a log: its password and
 * its secret-looking parameters masked (see http_redact.h). Written over
 * (bytes, length) with no allocation, so that any input is safe. */
#include "io/http/http_redact.h"

#include <stdint.h>
#include <string.h>

#define NONE SIZE_MAX

static const char *const builtin[] = {
    "token", "key", "apikey", "password", "passwd", "pwd", "passphrase",
    "secret", "signature", "sig", "credential", "credentials", "auth",
    "authorization", "session", "sessionid", "jwt", NULL};

/* The text being written: n counts all of it, out holds what fits. */
typedef struct sink {
  char *out;
  size_t cap, n;
} sink;

static void put_raw(sink *s, const char *p, size_t len) {
  for (size_t i = 0; i < len; i++, s->n++)
    if (s->n + 1 < s->cap)
      s->out[s->n] = p[i];
}

/* Writes p, control bytes as %XX. */
static void put(sink *s, const char *p, size_t len) {
  static const char hex[] = "0123456789ABCDEF";
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)p[i];
    if (c < 0x20 || c == 0x7f) {
      char e[3] = {'%', hex[c >> 4], hex[c & 15]};
      put_raw(s, e, 3);
    } else {
      put_raw(s, p + i, 1);
    }
  }
}

static int is_lower(unsigned char c) { return c >= 'a' && c <= 'z'; }
static int is_upper(unsigned char c) { return c >= 'A' && c <= 'Z'; }
static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static unsigned char lower(unsigned char c) { return is_upper(c) ? c + 32 : c; }

static int hexval(unsigned char c) {
  return is_digit(c) ? c - '0' : lower(c) >= 'a' && lower(c) <= 'f' ? lower(c) - 'a' + 10 : -1;
}

/* The first index in [from, to) holding one of `set`, or `to`. */
static size_t span_to(const char *u, size_t from, size_t to, const char *set) {
  while (from < to && (u[from] == '\0' || strchr(set, u[from]) == NULL))
    from++;
  return from;
}

/* The first or last index in [from, to) holding c, or NONE. */
static size_t first_of(const char *u, size_t from, size_t to, char c) {
  for (size_t i = from; i < to; i++)
    if (u[i] == c)
      return i;
  return NONE;
}

static size_t last_of(const char *u, size_t from, size_t to, char c) {
  for (size_t i = to; i > from; i--)
    if (u[i - 1] == c)
      return i - 1;
  return NONE;
}

/* 1 if the decoded name d (dn bytes) is one of names or ends with one
 * after a separator or a change from lower to upper case. */
static int matches(const unsigned char *d, size_t dn, const char *const *names) {
  for (; *names != NULL; names++) {
    size_t m = strlen(*names), k;
    if (m == 0 || m > dn)
      continue;
    for (k = 0; k < m && lower(d[dn - m + k]) == lower((unsigned char)(*names)[k]); k++)
      ;
    if (k < m)
      continue;
    if (m == dn)
      return 1;
    unsigned char prev = d[dn - m - 1];
    if (prev == '-' || prev == '_' || prev == '.' || (is_lower(prev) && is_upper(d[dn - m])))
      return 1;
  }
  return 0;
}

/* 1 if the parameter name p (n bytes, percent-encoded) is a secret's. */
static int secret_name(const char *p, size_t n, const char *const *extra) {
  unsigned char d[256];
  size_t dn = 0;
  for (size_t i = 0; i < n; i++) {
    if (dn == sizeof d)
      return 1; /* too long to judge: masked */
    unsigned char c = (unsigned char)p[i];
    if (c == '%' && i + 2 < n && hexval((unsigned char)p[i + 1]) >= 0 &&
        hexval((unsigned char)p[i + 2]) >= 0) {
      c = (unsigned char)(hexval((unsigned char)p[i + 1]) * 16 + hexval((unsigned char)p[i + 2]));
      i += 2;
    }
    d[dn++] = c;
  }
  return matches(d, dn, builtin) || (extra != NULL && matches(d, dn, extra));
}

/* The ':' before a port in the authority [from, to) (not one inside an IPv6
 * literal's brackets), or NONE. */
static size_t port_colon(const char *u, size_t from, size_t to) {
  int bracket = 0;
  for (size_t i = from; i < to; i++) {
    if (u[i] == '[')
      bracket = 1;
    else if (u[i] == ']')
      bracket = 0;
    else if (u[i] == ':' && !bracket)
      return i;
  }
  return NONE;
}

/* Writes the authority [a, e), its userinfo (to its last '@') masked. */
static void put_authority(sink *s, const char *u, size_t a, size_t e) {
  size_t at = last_of(u, a, e, '@');
  if (at != NONE) {
    size_t colon = first_of(u, a, at, ':');
    if (colon != NONE)
      put(s, u + a, colon + 1 - a);
    put(s, "***", 3);
    a = at;
  }
  put(s, u + a, e - a);
}

/* Writes a parameter [p, end) that is no secret's; a URL in its value
 * ("?next=http://user:pw@host/") gets its userinfo masked. */
static void put_param(sink *s, const char *u, size_t p, size_t end) {
  size_t k = p;
  while (k + 3 <= end && memcmp(u + k, "://", 3) != 0)
    k++;
  if (k + 3 > end) {
    put(s, u + p, end - p);
    return;
  }
  size_t a = k + 3;
  while (a < end && u[a] == '/')
    a++;
  put(s, u + p, a - p);
  size_t e = span_to(u, a, end, "/?#");
  put_authority(s, u, a, e);
  put(s, u + e, end - e);
}

size_t actio__http_redact(const char *url, size_t len, const char *const *extra,
                          char *out, size_t cap) {
  sink s = {out, cap, 0};
  const unsigned char *b = (const unsigned char *)url;
  /* The scheme, when "scheme:/" starts the URL (as libcurl reads it: its
   * first character may be a digit, '+', '-' or '.' too, and an unknown
   * scheme's URL is still quoted in its error), and the slashes: the
   * authority follows. */
  size_t i = 0, j = 0;
  while (j < len && (is_lower(lower(b[j])) || is_digit(b[j]) || b[j] == '+' ||
                     b[j] == '-' || b[j] == '.'))
    j++;
  if (j > 0 && j + 1 < len && url[j] == ':' && url[j + 1] == '/')
    i = j + 1;
  while (i < len && url[i] == '/')
    i++;
  put(&s, url, i);

  /* The authority, to the first '/', '?' or '#'; its userinfo, to its
   * last '@'. */
  size_t a = i, e = span_to(url, a, len, "/?#"), at;
  if (last_of(url, a, e, '@') == NONE) {
    /* No '@' there, but a "port" that is no number and an '@' further on:
     * a password holding '/', '?' or '#' cut the authority short. */
    size_t colon = port_colon(url, a, e), k = colon;
    if (colon != NONE)
      for (k = colon + 1; k < e && is_digit(b[k]); k++)
        ;
    if (colon != NONE && k < e && (at = last_of(url, e, len, '@')) != NONE)
      e = span_to(url, at, len, "/?#");
  }
  put_authority(&s, url, a, e);

  /* The path, then the query's and the fragment's parameters. */
  size_t p = span_to(url, e, len, "?#");
  put(&s, url + e, p - e);
  int fragment = 0;
  while (p < len) { /* url[p] is a separator */
    fragment |= url[p] == '#';
    put(&s, url + p, 1);
    p++;
    size_t end = span_to(url, p, len, fragment ? "&;?" : "&;?#");
    size_t eq = first_of(url, p, end, '=');
    if (eq != NONE && secret_name(url + p, eq - p, extra)) {
      put(&s, url + p, eq + 1 - p);
      put(&s, "***", 3);
      /* The value runs to the next '&': a ';' or '?' in it ends nothing
       * for a server that splits at '&' alone (libcurl's reading). */
      end = span_to(url, eq, len, fragment ? "&" : "&#");
    } else {
      put_param(&s, url, p, end);
    }
    p = end;
  }

  if (cap > 0) {
    size_t end = s.n < cap ? s.n : cap - 1;
    out[end] = '\0';
    if (s.n >= cap && cap > 3)
      memcpy(out + cap - 4, "...", 3);
  }
  return s.n;
}

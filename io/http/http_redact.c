/* http_redact.c: a URL made fit for a message or a log: its password and
 * its secret-looking parameters masked (see http_redact.h). Written over
 * (bytes, length) with no allocation, so that any input is safe. */
#include "io/http/http_redact.h"

#include <stdint.h>
#include <string.h>

#define NONE SIZE_MAX

/* The built-in secret names and where each may sit in a longer name
 * (http_redact.h): anywhere, at the end, or at the end as a word of its
 * own (after a byte that is no letter or digit, a lower-to-upper case
 * change, or one of key_qualifiers). */
enum { ANYWHERE, AT_END, AS_WORD };
static const struct {
  const char *name;
  int where;
} builtin[] = {
    {"password", ANYWHERE},  {"passwd", ANYWHERE},      {"passphrase", ANYWHERE},
    {"secret", ANYWHERE},    {"credential", ANYWHERE},  {"token", AT_END},
    {"apikey", AT_END},      {"pwd", AT_END},           {"signature", AT_END},
    {"sig", AT_END},         {"auth", AT_END},          {"authorization", AT_END},
    {"session", AT_END},     {"sessionid", AT_END},     {"sessid", AT_END},
    {"jwt", AT_END},         {"key", AS_WORD},
};

/* What makes "...key" a secret's without a separator: "accesskey". */
static const char *const key_qualifiers[] = {
    "access", "private", "signing", "client", "master", "shared", "encryption", "auth", "api",
    NULL};

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

/* NUL-terminates what was written, "..." at the end of a cut text; returns
 * the whole text's length. */
static size_t sink_end(sink *s) {
  if (s->cap > 0) {
    size_t end = s->n < s->cap ? s->n : s->cap - 1;
    s->out[end] = '\0';
    if (s->n >= s->cap && s->cap > 3)
      memcpy(s->out + s->cap - 4, "...", 3);
  }
  return s->n;
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

/* 1 if d (n bytes) ends with w (m bytes) without case. */
static int ends_with(const unsigned char *d, size_t n, const char *w, size_t m) {
  if (m > n)
    return 0;
  for (size_t k = 0; k < m; k++)
    if (lower(d[n - m + k]) != lower((unsigned char)w[k]))
      return 0;
  return 1;
}

/* 1 if w (m bytes) is in d (n bytes) without case. */
static int contains(const unsigned char *d, size_t n, const char *w, size_t m) {
  for (size_t end = m; end <= n; end++)
    if (ends_with(d, end, w, m))
      return 1;
  return 0;
}

static int is_alnum(unsigned char c) { return is_lower(lower(c)) || is_digit(c); }

/* 1 if w (m bytes) ends d (n bytes) as a word: all of d, or after a byte
 * that is no letter or digit, or after a lower-to-upper case change
 * ("apiKey"). */
static int ends_as_word(const unsigned char *d, size_t n, const char *w, size_t m) {
  if (!ends_with(d, n, w, m))
    return 0;
  if (m == n)
    return 1;
  unsigned char prev = d[n - m - 1];
  return !is_alnum(prev) || (is_lower(prev) && is_upper(d[n - m]));
}

/* 1 if the segment d (n bytes, decoded) is a secret's name. */
static int secret_segment(const unsigned char *d, size_t n, const char *const *extra) {
  for (size_t i = 0; i < sizeof builtin / sizeof *builtin; i++) {
    const char *w = builtin[i].name;
    size_t m = strlen(w);
    if (builtin[i].where == ANYWHERE) {
      if (contains(d, n, w, m))
        return 1;
      continue;
    }
    /* A plural too: "tokens", "api_keys". */
    size_t dn = n > 0 && lower(d[n - 1]) == 's' && ends_with(d, n - 1, w, m) ? n - 1 : n;
    if (builtin[i].where == AT_END ? ends_with(d, dn, w, m) : ends_as_word(d, dn, w, m))
      return 1;
    if (builtin[i].where == AS_WORD && ends_with(d, dn, w, m))
      for (const char *const *q = key_qualifiers; *q != NULL; q++)
        if (ends_with(d, dn - m, *q, strlen(*q)))
          return 1;
  }
  for (; extra != NULL && *extra != NULL; extra++)
    if (**extra != '\0' && ends_as_word(d, n, *extra, strlen(*extra)))
      return 1;
  return 0;
}

/* 1 if the parameter name p (n bytes, percent-encoded) is a secret's: the
 * name before any '[', or a key between brackets ("user[password]",
 * "token[]"), tabs and line breaks left out (a browser drops them). It is
 * judged both decoded and as written: a reader of the text may take
 * "s%77%7auth" for a name ending in "auth" as well as for "swzuth". */
static int secret_name(const char *p, size_t n, const char *const *extra) {
  for (int decode = 1; decode >= 0; decode--) {
    unsigned char d[256];
    size_t dn = 0;
    for (size_t i = 0; i < n; i++) {
      if (dn == sizeof d)
        return 1; /* too long to judge: masked */
      unsigned char c = (unsigned char)p[i];
      if (decode && c == '%' && i + 2 < n && hexval((unsigned char)p[i + 1]) >= 0 &&
          hexval((unsigned char)p[i + 2]) >= 0) {
        c = (unsigned char)(hexval((unsigned char)p[i + 1]) * 16 +
                            hexval((unsigned char)p[i + 2]));
        i += 2;
      }
      if (c != '\t' && c != '\n' && c != '\r')
        d[dn++] = c;
    }
    for (size_t s = 0, e; s <= dn; s = e + 1) {
      for (e = s; e < dn && d[e] != '[' && d[e] != ']'; e++)
        ;
      if (e > s && secret_segment(d + s, e - s, extra))
        return 1;
    }
  }
  return 0;
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

/* The first ':' in [from, to) outside an IPv6 literal ("[...]", closed
 * before `to`), or NONE. */
static size_t bare_colon(const char *u, size_t from, size_t to) {
  int unclosed = 0; /* a '[' found no ']': none after it will */
  for (size_t i = from; i < to; i++) {
    size_t close = u[i] == '[' && !unclosed ? first_of(u, i, to, ']') : NONE;
    if (close != NONE)
      i = close;
    else if (u[i] == '[')
      unclosed = 1;
    else if (u[i] == ':')
      return i;
  }
  return NONE;
}

/* Writes the authority [a, e), its userinfo (to its last '@') masked. */
static void put_authority(sink *s, const char *u, size_t a, size_t e) {
  size_t at = last_of(u, a, e, '@');
  if (at != NONE) {
    /* The user name is shown, but not one holding '[': that may be an IPv6
     * host's ("[::1]:8080/a@b"), whose first ':' is no user's end. */
    size_t colon = first_of(u, a, at, ':');
    if (colon != NONE && first_of(u, a, colon, '[') == NONE)
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
  /* Spaces and control bytes before the URL: libcurl rejects it, and its
   * message quotes it whole, so the URL is read past them. */
  size_t s0 = 0;
  while (s0 < len && (b[s0] <= 0x20 || b[s0] == 0x7f))
    s0++;
  /* The scheme, when "scheme:/" starts the URL (as libcurl reads it: its
   * first character may be a digit, '+', '-' or '.' too, and an unknown
   * scheme's URL is still quoted in its error); else a "://" before any
   * '/', '@', '?' or '#' ("<http://u:pw@h/>", a scheme holding a space):
   * the authority follows the slashes. */
  size_t i = s0, j = s0, q = span_to(url, s0, len, "?#");
  while (j < len && (is_lower(lower(b[j])) || is_digit(b[j]) || b[j] == '+' ||
                     b[j] == '-' || b[j] == '.'))
    j++;
  if (j > s0 && j + 1 < len && url[j] == ':' && url[j + 1] == '/') {
    i = j + 1;
  } else {
    for (size_t k = s0; k + 3 <= q && url[k] != '/' && url[k] != '@'; k++)
      if (memcmp(url + k, "://", 3) == 0) {
        i = k + 1;
        break;
      }
  }
  while (i < len && url[i] == '/')
    i++;
  put(&s, url, i);

  /* The authority, to the first '/', '?' or '#'; its userinfo, to its
   * last '@'. */
  size_t a = i, e = span_to(url, a, len, "/?#"), at;
  q = span_to(url, a, len, "?#");
  /* An '@' past the first '/' but before any '?' or '#', with a ':' before
   * it (not one of an IPv6 literal's): a password holding '/'
   * ("admin:2024/pw@host", which libcurl reads as a port and a path),
   * unless the '@' starts a path segment ("/users/@me"). The userinfo runs
   * to the last such '@'. */
  size_t colon = bare_colon(url, a, q);
  at = NONE;
  for (size_t k = q; colon != NONE && k > e && k - 1 > colon && at == NONE; k--)
    if (url[k - 1] == '@' && url[k - 2] != '/')
      at = k - 1;
  if (at != NONE) {
    e = span_to(url, at, len, "/?#");
  } else if (last_of(url, a, e, '@') == NONE) {
    /* No '@' there, but a "port" that is no number and an '@' further on:
     * a password holding '?' or '#' cut the authority short. */
    colon = port_colon(url, a, e);
    size_t k = colon;
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

  return sink_end(&s);
}

/* 1 if the n bytes at p are w (NUL-terminated), without case. */
static int is_word(const char *p, size_t n, const char *w) {
  return strlen(w) == n && ends_with((const unsigned char *)p, n, w, n);
}

size_t actio__http_redact_header(const char *line, size_t len, const char *const *extra,
                                 char *out, size_t cap) {
  sink s = {out, cap, 0};
  while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == '\n'))
    len--;
  size_t colon = first_of(line, 0, len, ':'), sp = first_of(line, 0, len, ' ');
  size_t from = NONE, to = len; /* a URL in the line, masked as one */
  int secret = 0;
  if (colon == NONE || (sp != NONE && sp < colon)) {
    /* "GET /a?token=x HTTP/1.1", "HTTP/1.1 200 OK": the target is a URL */
    if (sp != NONE && !(len >= 5 && memcmp(line, "HTTP/", 5) == 0)) {
      from = sp + 1;
      size_t sp2 = last_of(line, from, len, ' ');
      to = sp2 != NONE ? sp2 : len;
    }
  } else {
    size_t v = colon + 1;
    while (v < len && (line[v] == ' ' || line[v] == '\t'))
      v++;
    if (is_word(line, colon, "cookie") || is_word(line, colon, "set-cookie") ||
        secret_name(line, colon, extra)) {
      secret = 1;
      /* "Authorization: Basic ***": the scheme is no secret */
      size_t w = v;
      while (w < len && (is_lower(lower((unsigned char)line[w])) || line[w] == '-'))
        w++;
      if ((is_word(line, colon, "authorization") ||
           is_word(line, colon, "proxy-authorization")) && w < len && line[w] == ' ')
        from = w + 1;
      else
        from = v;
    } else if (is_word(line, colon, "location") || is_word(line, colon, "referer") ||
               is_word(line, colon, "content-location")) {
      from = v;
    }
  }
  if (from == NONE) {
    put(&s, line, len);
  } else {
    put(&s, line, from);
    if (secret) {
      put(&s, "***", 3);
    } else {
      size_t at = s.n < cap ? s.n : cap;
      s.n += actio__http_redact(line + from, to - from, extra, out ? out + at : NULL,
                                cap - at);
      put(&s, line + to, len - to);
    }
  }
  return sink_end(&s);
}

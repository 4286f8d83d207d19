/* http_redact.c: fuzzes the masking of URLs for messages and logs
 * (actio__http_redact, behind actio_http_redact_url and every HTTP error
 * text) with libcurl's own URL parser as the judge: whatever libcurl would
 * send as the password, and the value of a query parameter whose name is a
 * secret's, must not be in the text. The text must also be one line, end
 * within its buffer, and report its whole length.
 *
 * Input: a flags byte (the output buffer's size, and whether the session
 * adds the name "custom"), then the URL, in which each "$S" is replaced by
 * a secret of its own made from a hash of the input, so that no fixed text
 * (the names the fuzzer learns, the masks) can contain one by chance. A
 * secret is judged only where libcurl finds it in masked places alone, in
 * one of the readings a person may make of the URL (must_mask). */
#include <curl/curl.h>
#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "io/http/http_redact.h"

/* The names masked whatever surrounds them (http_redact.h). The judge
 * knows these whole, as a key between brackets ("user[password]",
 * "token[]"), after '_', '-' or '.', and at the end of a longer name when
 * they have 4 letters or more ("accesstoken"): a part of what the
 * redaction promises, written apart from it. */
static const char *const secret_names[] = {
    "token", "key", "apikey", "password", "passwd", "pwd", "passphrase", "secret",
    "signature", "sig", "credential", "credentials", "auth", "authorization",
    "session", "sessionid", "sessid", "jwt", NULL};

#define MAX_SECRETS 16

static int ends_with(const char *s, size_t n, const char *w) {
  size_t m = strlen(w);
  return m <= n && strncasecmp(s + n - m, w, m) == 0;
}

/* The part s (n bytes) of a name. */
static int secret_part(const char *s, size_t n, int custom) {
  static const char *const extra[] = {"custom", NULL};
  for (int k = 0; k < 2; k++)
    for (const char *const *w = k == 0 ? secret_names : extra; *w != NULL; w++) {
      size_t m = strlen(*w);
      if (!(k == 0 || custom) || !ends_with(s, n, *w))
        continue;
      if (n == m || (k == 0 && m >= 4) || strchr("_-.", s[n - m - 1]) != NULL)
        return 1;
    }
  return 0;
}

/* A name (after its last ';' or '?': the redaction splits there too). */
static int secret_name(const char *name, int custom) {
  for (const char *c = name; *c != '\0'; c++)
    if (*c == ';' || *c == '?')
      name = c + 1;
  for (const char *p = name;; p++) {
    size_t n = strcspn(p, "[]");
    if (n > 0 && secret_part(p, n, custom))
      return 1;
    p += n;
    if (*p == '\0')
      return 0;
  }
}

/* As libcurl reads the URL: 1 when `secret` is in its password or in the
 * value of a query parameter named as a secret's, and nowhere else (not in
 * the host, the path, another parameter, ...); else 0. */
static int only_where_masked(const char *url, const char *secret, int custom) {
  CURLU *u = curl_url();
  FUZZ_CHECK(u != NULL, "out of memory");
  int masked = 0, elsewhere = 0;
  if (curl_url_set(u, CURLUPART_URL, url, CURLU_GUESS_SCHEME | CURLU_NON_SUPPORT_SCHEME) ==
      CURLUE_OK) {
    static const CURLUPart others[] = {CURLUPART_SCHEME, CURLUPART_USER, CURLUPART_OPTIONS,
                                       CURLUPART_HOST, CURLUPART_ZONEID, CURLUPART_PORT,
                                       CURLUPART_PATH, CURLUPART_FRAGMENT};
    char *part = NULL;
    for (size_t i = 0; i < sizeof others / sizeof *others; i++, part = NULL) {
      if (curl_url_get(u, others[i], &part, 0) == CURLUE_OK && strstr(part, secret))
        elsewhere = 1;
      curl_free(part);
    }
    if (curl_url_get(u, CURLUPART_PASSWORD, &part, 0) == CURLUE_OK && strstr(part, secret))
      masked = 1;
    curl_free(part);
    part = NULL;
    if (curl_url_get(u, CURLUPART_QUERY, &part, 0) == CURLUE_OK) {
      for (char *save = NULL, *p = strtok_r(part, "&", &save); p != NULL;
           p = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(p, '=');
        if (eq != NULL)
          *eq = '\0';
        int in_value = eq != NULL && strstr(eq + 1, secret) != NULL;
        if (strstr(p, secret) != NULL || (in_value && !secret_name(p, custom)))
          elsewhere = 1;
        else if (in_value)
          masked = 1;
      }
    }
    curl_free(part);
  }
  curl_url_cleanup(u);
  return masked && !elsewhere;
}

/* The first ':' in bytes [from, to) of t outside a "[...]" closed before
 * `to`, or `to`. */
static size_t bare_colon(const char *t, size_t from, size_t to) {
  for (size_t i = from; i < to; i++) {
    const char *close = t[i] == '[' ? memchr(t + i, ']', to - i) : NULL;
    if (close != NULL)
      i = (size_t)(close - t);
    else if (t[i] == ':')
      return i;
  }
  return to;
}

/* "http://" + t[a, at) with '/', '?' and '#' percent-encoded + t[at, ...):
 * the reading of t in which all before its '@' at `at` is a userinfo. */
static int judged_as_userinfo(const char *t, size_t a, size_t at, const char *secret,
                              int custom) {
  size_t n = strlen(t);
  char *r = malloc(7 + 3 * n + 1), *w = r;
  FUZZ_CHECK(r != NULL, "out of memory");
  w += sprintf(w, "http://");
  for (size_t i = a; i < at; i++)
    w += strchr("/?#", t[i]) != NULL ? sprintf(w, "%%%02X", (unsigned char)t[i])
                                     : sprintf(w, "%c", t[i]);
  strcpy(w, t + at);
  int yes = only_where_masked(r, secret, custom);
  free(r);
  return yes;
}

/* 1 when `secret` must not be shown: libcurl finds it only where the
 * redaction masks in one of the readings a person may make of the URL:
 *  - as libcurl reads it;
 *  - as a browser does (WHATWG): spaces and control bytes around it left
 *    out, tabs and line breaks in it too; libcurl rejects the URL as it is
 *    and quotes it whole;
 *  - from after a "scheme:/" that starts it, or after a "://" before any
 *    '/', '@', '?' or '#': "<http://u:pw@h/>";
 *  - with all before an '@' as the userinfo: the last '@' before any '?'
 *    or '#' after a ':' (not an IPv6 literal's) that starts no path
 *    segment ("admin:2024/pw@host"), or the last '@' at all when the port
 *    is no number ("u:pa?ss@host"). */
static int must_mask(const char *url, const char *secret, int custom) {
  if (only_where_masked(url, secret, custom))
    return 1;
  size_t n = strlen(url), b = 0, e = n, m = 0;
  while (b < n && (unsigned char)url[b] <= 0x20)
    b++;
  while (e > b && (unsigned char)url[e - 1] <= 0x20)
    e--;
  char *t = malloc(e - b + 1);
  FUZZ_CHECK(t != NULL, "out of memory");
  for (size_t i = b; i < e; i++)
    if (url[i] != '\t' && url[i] != '\n' && url[i] != '\r')
      t[m++] = url[i];
  t[m] = '\0';
  int yes = strcmp(t, url) != 0 && only_where_masked(t, secret, custom);
  /* The authority's start: after "scheme:/" and its slashes, or after a
   * "://" before any '/', '@', '?' or '#'. */
  size_t q = strcspn(t, "?#"), s = strspn(t, "abcdefghijklmnopqrstuvwxyz"
                                              "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-."),
         a = 0;
  if (s > 0 && t[s] == ':' && t[s + 1] == '/') {
    a = s + 1;
  } else {
    char *sep = strstr(t, "://");
    if (sep != NULL && (size_t)(sep - t) + 3 <= q && strcspn(t, "/@") >= (size_t)(sep - t))
      a = (size_t)(sep - t) + 1;
  }
  while (t[a] == '/')
    a++;
  if (!yes && a > 0)
    yes = judged_as_userinfo(t, a, a, secret, custom);
  size_t at = q, colon = bare_colon(t, a, q);
  while (at > colon + 1 && !(t[at - 1] == '@' && t[at - 2] != '/'))
    at--;
  if (!yes && at > colon + 1)
    yes = judged_as_userinfo(t, a, at - 1, secret, custom);
  /* No '@' in the authority, a "port" that is no number (its ':' outside
   * "[...]"), then an '@' anywhere. */
  size_t h = a + strcspn(t + a, "/?#"), c = a;
  for (int bracket = 0; c < h && (t[c] != ':' || bracket); c++)
    bracket = t[c] == '[' ? 1 : t[c] == ']' ? 0 : bracket;
  const char *last = strrchr(t + a, '@');
  if (!yes && c < h && strspn(t + c + 1, "0123456789") < h - c - 1 && last != NULL &&
      (size_t)(last - t) >= h && memchr(t + a, '@', h - a) == NULL)
    yes = judged_as_userinfo(t, a, (size_t)(last - t), secret, custom);
  free(t);
  return yes;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_in in = {data, size};
  uint8_t flags = fuzz_byte(&in);
  char secrets[MAX_SECRETS][24];
  uint64_t h = fuzz_hash(data, size);
  for (int k = 0; k < MAX_SECRETS; k++) /* 17 bytes each: none starts another */
    snprintf(secrets[k], sizeof secrets[k], "s%015llx%x", (unsigned long long)(h >> 4), k);
  int nsecrets;
  size_t len;
  char *url = fuzz_fill(in, "$S", secrets, MAX_SECRETS, &len, &nsecrets);
  if (nsecrets > MAX_SECRETS)
    nsecrets = MAX_SECRETS;
  static const char *const extra[] = {"custom", NULL};
  int custom = flags & 1;
  size_t cap = (flags >> 1) == 127 ? 0 : (size_t)(flags >> 1) * 8 + 1; /* 0, 1 .. 1009 */

  char out[1024];
  memset(out, 'x', sizeof out);
  size_t whole = actio__http_redact(url, len, custom ? extra : NULL, out, cap);
  if (cap == 0) {
    FUZZ_CHECK(out[0] == 'x', "wrote into an empty buffer");
  } else {
    size_t n = strnlen(out, cap);
    FUZZ_CHECK(n < cap, "not NUL-terminated within %zu bytes", cap);
    FUZZ_CHECK(n == (whole < cap ? whole : cap - 1), "%zu bytes written of %zu (cap %zu)",
               n, whole, cap);
    for (size_t i = 0; i < n; i++)
      FUZZ_CHECK((unsigned char)out[i] >= 0x20 && out[i] != 0x7f, "a control byte at %zu", i);
    if (whole >= cap && cap > 3)
      FUZZ_CHECK(memcmp(out + cap - 4, "...", 3) == 0, "a cut text without \"...\"");
    /* The whole text, and with enough room, the judge's verdict. */
    size_t fcap = len * 6 + 64; /* a byte is at most "%XX", a mask "***" */
    char *full = malloc(fcap);
    FUZZ_CHECK(full != NULL, "out of memory");
    size_t all = actio__http_redact(url, len, custom ? extra : NULL, full, fcap);
    FUZZ_CHECK(all == whole && all < fcap, "lengths %zu and %zu (room %zu)", all, whole, fcap);
    /* libcurl reads a C string: the judge passes over URLs holding a NUL. */
    for (int k = 0; k < nsecrets && memchr(url, '\0', len) == NULL; k++)
      if (strstr(full, secrets[k]) != NULL && must_mask(url, secrets[k], custom))
        FUZZ_CHECK(0, "secret %d is in \"%s\"", k, full);
    free(full);
  }
  free(url);
  return 0;
}

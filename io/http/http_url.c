/* http_url.c: URLs with query parameters and form bodies, built from
 * names and values on libcurl's URL parser, so that no caller pastes
 * strings into a URL. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "io/http/http_io.h"

static int text_put(actio__http_text *t, const char *s, size_t n, int encode) {
  /* At worst three bytes a byte, and the NUL. */
  size_t need = t->len + (encode ? 3 * n : n) + 1;
  if (need > t->cap) {
    size_t cap = t->cap ? t->cap : 64;
    while (cap < need)
      cap *= 2;
    char *p = realloc(t->s, cap);
    if (p == NULL)
      return ACTIO_ENOMEM;
    t->s = p;
    t->cap = cap;
  }
  static const char hex[] = "0123456789ABCDEF";
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (!encode || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
        (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~') {
      t->s[t->len++] = (char)c;
    } else {
      t->s[t->len++] = '%';
      t->s[t->len++] = hex[c >> 4];
      t->s[t->len++] = hex[c & 15];
    }
  }
  t->s[t->len] = '\0';
  return 0;
}

int actio__http_text_param(actio__http_text *t, const char *name,
                           const char *value) {
  size_t was = t->len;
  int rc = 0;
  if (t->len > 0)
    rc = text_put(t, "&", 1, 0);
  if (rc == 0)
    rc = text_put(t, name, strlen(name), 1);
  if (rc == 0)
    rc = text_put(t, "=", 1, 0);
  if (rc == 0)
    rc = text_put(t, value, strlen(value), 1);
  if (rc != 0 && t->s != NULL) {
    t->len = was;
    t->s[was] = '\0';
  }
  return rc;
}

int actio__http_url_join(const char *base, const char *query, char **out) {
  /* libcurl's parser judges the base; the URL is then put together here,
   * the base as given (libcurl would rewrite it: "%3D" as "%3d"). */
  CURLU *u = curl_url();
  if (u == NULL)
    return ACTIO_ENOMEM;
  char *scheme = NULL;
  int rc = 0;
  CURLUcode uc = curl_url_set(u, CURLUPART_URL, base, 0);
  if (uc == CURLUE_OUT_OF_MEMORY)
    rc = ACTIO_ENOMEM;
  else if (uc == CURLUE_UNSUPPORTED_SCHEME)
    rc = ACTIO_ESCHEME;
  else if (uc != CURLUE_OK || curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK)
    rc = ACTIO_EURL;
  else if (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0)
    rc = ACTIO_ESCHEME;
  curl_free(scheme);
  curl_url_cleanup(u);
  if (rc != 0)
    return rc;
  size_t lb = strcspn(base, "#"), lq = query ? strlen(query) : 0;
  const char *q = memchr(base, '?', lb), *sep = "";
  if (lq > 0 && q == NULL)
    sep = "?";
  else if (lq > 0 && base[lb - 1] != '?' && base[lb - 1] != '&')
    sep = "&";
  size_t len = lb + strlen(sep) + lq + strlen(base + lb) + 1;
  char *s = malloc(len);
  if (s == NULL)
    return ACTIO_ENOMEM;
  snprintf(s, len, "%.*s%s%s%s", (int)lb, base, sep, lq ? query : "", base + lb);
  *out = s;
  return 0;
}

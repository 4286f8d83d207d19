/* http_result.c: a transfer's result: the body buffer, the header block of
 * the last response, and the lookup in it (see http_result.h). */
#include "io/http/http_result.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int grow(char **buf, size_t *cap, size_t need) {
  if (need <= *cap)
    return 0;
  size_t c = *cap ? *cap : 1024;
  if (c < need && *cap == 0)
    c = need; /* a first allocation takes exactly what is asked */
  while (c < need)
    c *= 2;
  char *n = realloc(*buf, c);
  if (n == NULL)
    return -1;
  *buf = n;
  *cap = c;
  return 0;
}

int actio__http_result_reserve(actio__http_result *r, size_t need) {
  return grow(&r->body, &r->body_cap, need);
}

int actio__http_result_header_line(actio__http_result *r, const char *line,
                                   size_t len) {
  if (memchr(line, '\0', len) != NULL)
    return 0; /* the block could not tell where it ends (libcurl refuses it too) */
  if (len >= 5 && memcmp(line, "HTTP/", 5) == 0) {
    r->hdr_len = 0;
    r->nhdr = 0;
    return 0;
  }
  const char *colon = memchr(line, ':', len);
  if (colon == NULL)
    return 0; /* the blank line ending the block, or junk */
  size_t nlen = (size_t)(colon - line);
  const char *v = colon + 1, *end = line + len;
  while (v < end && (*v == ' ' || *v == '\t'))
    v++;
  while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' ||
                     end[-1] == '\t')) /* white space is space or tab (RFC 9110) */
    end--;
  size_t vlen = (size_t)(end - v);
  if (grow(&r->hdr, &r->hdr_cap, r->hdr_len + nlen + vlen + 2) != 0)
    return -1;
  memcpy(r->hdr + r->hdr_len, line, nlen);
  r->hdr[r->hdr_len + nlen] = '\0';
  memcpy(r->hdr + r->hdr_len + nlen + 1, v, vlen);
  r->hdr[r->hdr_len + nlen + 1 + vlen] = '\0';
  r->hdr_len += nlen + vlen + 2;
  r->nhdr++;
  return 0;
}

const char *actio__http_result_header(const actio__http_result *r,
                                      const char *name, size_t i) {
  const char *p = r->hdr;
  for (size_t k = 0; k < r->nhdr; k++) {
    const char *v = p + strlen(p) + 1;
    if (strcasecmp(p, name) == 0 && i-- == 0)
      return v;
    p = v + strlen(v) + 1;
  }
  return NULL;
}

void actio__http_result_cleanup(actio__http_result *r) {
  if (r == NULL)
    return;
  free(r->body);
  free(r->hdr);
  free(r->url);
  memset(r, 0, sizeof *r);
}

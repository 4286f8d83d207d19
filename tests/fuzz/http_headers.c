/* http_headers.c: fuzzes the collection of a response's header lines, as
 * libcurl hands them over (actio__http_result_header_line), and the public
 * lookup over the block they make (actio_http_header, _count, _nth), against
 * a model kept here: the headers of the last response, each name compared
 * without case, each value without the white space around it.
 *
 * Input: the header lines, each ending at "\n" (included, as libcurl gives
 * them); a status line ("HTTP/...") starts a new response. The lookup is
 * asked for the first names kept (as sent, and in the other case), for the
 * last line's bytes up to ":", and for names that nothing matches. */
#include <ctype.h>
#include <string.h>

#include "actio/http.h"
#include "actors/http/http_internal.h"
#include "fuzz.h"
#include "io/http/http_result.h"

#define MAX_HEADERS 512

typedef struct span {
  const char *p;
  size_t n;
} span;

typedef struct model {
  span name[MAX_HEADERS], value[MAX_HEADERS];
  size_t n;
} model;

static int is_ows(char c) { return c == ' ' || c == '\t'; }

/* What a header line means: a status line starts over, a "name: value"
 * line adds a header, anything else (the blank line) is skipped. */
static void model_line(model *m, const char *line, size_t len) {
  if (memchr(line, '\0', len) != NULL)
    return; /* a NUL would end a name or value early: such a line is dropped */
  if (len >= 5 && memcmp(line, "HTTP/", 5) == 0) {
    m->n = 0;
    return;
  }
  const char *colon = memchr(line, ':', len);
  if (colon == NULL || m->n == MAX_HEADERS)
    return;
  const char *v = colon + 1, *end = line + len;
  while (v < end && is_ows(*v))
    v++;
  while (end > v && (is_ows(end[-1]) || end[-1] == '\r' || end[-1] == '\n'))
    end--;
  m->name[m->n] = (span){line, (size_t)(colon - line)};
  m->value[m->n] = (span){v, (size_t)(end - v)};
  m->n++;
}

static int same_name(span a, const char *b) {
  if (strlen(b) != a.n)
    return 0;
  for (size_t i = 0; i < a.n; i++)
    if (tolower((unsigned char)a.p[i]) != tolower((unsigned char)b[i]))
      return 0;
  return 1;
}

/* Every value of `name`, in order, then NULL; and the count. */
static void check_lookup(const model *m, const actio_http_response *r,
                         const char *name) {
  size_t k = 0;
  for (size_t i = 0; i < m->n; i++) {
    if (!same_name(m->name[i], name))
      continue;
    const char *v = actio_http_header_nth(r, name, k);
    FUZZ_CHECK(v != NULL, "\"%s\" #%zu: NULL, expected header %zu", name, k, i);
    FUZZ_CHECK(strlen(v) == m->value[i].n && memcmp(v, m->value[i].p, m->value[i].n) == 0,
               "\"%s\" #%zu: \"%s\", expected header %zu's value", name, k, v, i);
    if (k == 0)
      FUZZ_CHECK(actio_http_header(r, name) == v, "\"%s\": not its first value", name);
    k++;
  }
  FUZZ_CHECK(actio_http_header_nth(r, name, k) == NULL, "\"%s\" #%zu: a value past the last",
             name, k);
  FUZZ_CHECK(actio_http_header_count(r, name) == k, "\"%s\": count %zu, expected %zu",
             name, actio_http_header_count(r, name), k);
  if (k == 0)
    FUZZ_CHECK(actio_http_header(r, name) == NULL, "\"%s\": a value, expected none", name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static model m; /* large: not on the stack */
  m.n = 0;
  actio__http_result res = {0};
  fuzz_in in = {data, size};
  span last = {NULL, 0};
  while (in.n > 0) {
    const uint8_t *line = in.p;
    fuzz_until(&in, '\n');
    size_t len = (size_t)(in.p - line); /* with its "\n", when it has one */
    FUZZ_CHECK(actio__http_result_header_line(&res, (const char *)line, len) == 0,
               "out of memory");
    model_line(&m, (const char *)line, len);
    last = (span){(const char *)line, len};
  }

  actio_http_response *r = actio__http_response_adopt(&res);
  FUZZ_CHECK(r != NULL, "out of memory");
  /* The first names only: each check walks the block once per value, and
   * any header can come first. */
  for (size_t i = 0; i < m.n && i < 8; i++) {
    char *name = fuzz_str((fuzz_in){(const uint8_t *)m.name[i].p, m.name[i].n});
    check_lookup(&m, r, name);
    for (char *c = name; *c; c++) /* the same name in the other case */
      *c = (char)(islower((unsigned char)*c) ? toupper((unsigned char)*c)
                                             : tolower((unsigned char)*c));
    check_lookup(&m, r, name);
    free(name);
  }
  const char *colon = last.p ? memchr(last.p, ':', last.n) : NULL;
  char *tail = fuzz_str((fuzz_in){(const uint8_t *)last.p,
                                  colon ? (size_t)(colon - last.p) : last.n});
  check_lookup(&m, r, tail);
  free(tail);
  check_lookup(&m, r, "");
  check_lookup(&m, r, "x-not-sent-by-anyone");
  actio_http_response_free(r);
  return 0;
}

/* http_response.c: the response a request's future holds (io's result
 * behind the public fields), and the public calls that read it. */
#include <stdlib.h>
#include <string.h>

#include "actio/error.h"
#include "actio/http.h"
#include "actors/http/http_internal.h"

typedef struct http_response {
  actio_http_response pub; /* first: the pointer handed out is to this */
  actio__http_result io;   /* owns what pub points to */
} http_response;

actio_http_response *actio__http_response_adopt(actio__http_result *from) {
  http_response *r = malloc(sizeof *r);
  if (r == NULL)
    return NULL;
  r->io = *from;
  memset(from, 0, sizeof *from);
  const actio__http_result *io = &r->io;
  r->pub = (actio_http_response){
      .status = io->status,
      .url = io->url,
      .http_version = io->http_version,
      .body = io->body,
      .body_len = io->body_len,
      .dns_ms = io->dns_ms,
      .connect_ms = io->connect_ms,
      .tls_ms = io->tls_ms,
      .first_byte_ms = io->first_byte_ms,
      .total_ms = io->total_ms,
      .redirects = io->redirects,
      .new_connections = io->new_connections,
      .attempts = 1,
  };
  return &r->pub;
}

actio_http_response *actio__http_response_take(actio__http_xfer *x) {
  actio__http_result io;
  actio__http_xfer_take(x, &io);
  actio_http_response *r = actio__http_response_adopt(&io);
  if (r == NULL)
    actio__http_result_cleanup(&io);
  return r;
}

void actio_http_response_free(actio_http_response *pub) {
  http_response *r = (http_response *)pub;
  if (r == NULL)
    return;
  actio__http_result_cleanup(&r->io);
  free(r);
}

void actio__http_response_free(void *r) { actio_http_response_free(r); }

const char *actio_http_header_nth(const actio_http_response *pub,
                                  const char *name, size_t i) {
  const http_response *r = (const http_response *)pub;
  if (r == NULL || name == NULL)
    return NULL;
  return actio__http_result_header(&r->io, name, i);
}

const char *actio_http_header(const actio_http_response *r, const char *name) {
  return actio_http_header_nth(r, name, 0);
}

size_t actio_http_header_count(const actio_http_response *r, const char *name) {
  size_t n = 0;
  while (actio_http_header_nth(r, name, n) != NULL)
    n++;
  return n;
}

int actio_http_raise_for_status(const actio_http_response *r) {
  return r != NULL && r->status >= 400 ? ACTIO_EHTTP : 0;
}

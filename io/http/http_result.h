/* http_result.h: what a transfer brings back: the final response's status,
 * timings, body and header block, with the lookup that reads the block. */
#ifndef ACTIO_IO_HTTP_RESULT_H
#define ACTIO_IO_HTTP_RESULT_H

#include <stddef.h>

/*
 * A transfer fills it as bytes arrive and hands it over whole when it
 * ends well (actio__http_xfer_take): whoever holds it owns the storage and
 * frees it with actio__http_result_cleanup. Not thread-safe; once complete
 * it is only read, from any thread.
 */
typedef struct actio__http_result {
  long status;           /* of the last response: 200, 404, ... */
  char *url;             /* the effective URL, after redirects */
  int http_version;      /* 10, 11, 20, 30, or 0 when unknown */
  char *body;            /* NUL-terminated (not counted in body_len); empty
                            when it went to a sink or a file, and body_len
                            then counts what went there */
  size_t body_len;
  double dns_ms, connect_ms, tls_ms, first_byte_ms, total_ms; /* from start */
  int redirects;         /* redirects followed */
  int new_connections;   /* connections opened for it (0: one was reused) */
  /* The storage behind the fields above; io/http's own. */
  size_t body_cap;
  char *hdr;             /* "name\0value\0" per header of the last response */
  size_t hdr_len, hdr_cap, nhdr;
} actio__http_result;

/* The i-th value (0: the first) of header `name`, compared without case,
 * or NULL. Repeats are kept in the order they came. */
const char *actio__http_result_header(const actio__http_result *r,
                                      const char *name, size_t i);

/* Frees the storage and zeroes r. NULL accepted. */
void actio__http_result_cleanup(actio__http_result *r);

/* ---- for the transfers that fill it (http_io.c) ---- */

/* Makes room for `need` body bytes. Returns 0, or -1 out of memory. */
int actio__http_result_reserve(actio__http_result *r, size_t need);

/* Takes one header line as libcurl hands it over: a status line starts the
 * block again (a redirect, a 100 Continue), the blank line that ends a
 * block is skipped, and so is a line with a NUL byte. Returns 0, or -1 out
 * of memory. */
int actio__http_result_header_line(actio__http_result *r, const char *line,
                                   size_t len);

#endif

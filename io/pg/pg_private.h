/* pg_private.h: what io/pg's files share about libpq; included by io/pg
 * alone, so that libpq's types never leave it. */
#ifndef ACTIO_IO_PG_PRIVATE_H
#define ACTIO_IO_PG_PRIVATE_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "io/pg/pg_conn.h"
#include "io/pg/pg_result.h"

/* Parameter types travel upward as uint32_t: the same integer as an Oid. */
_Static_assert(sizeof(Oid) == sizeof(uint32_t) && (Oid)-1 > 0,
               "an Oid is an unsigned 32-bit integer");

/* An actio__pg_result is libpq's PGresult itself: no copy on the way up. */
static inline PGresult *actio__pg_res(const actio__pg_result *r) {
  return (PGresult *)(void *)r;
}
static inline actio__pg_result *actio__pg_wrap(PGresult *r) {
  return (actio__pg_result *)(void *)r;
}

/* libpq's handle of c (the cancel keys live in it). */
PGconn *actio__pg_conn_libpq(const actio__pg_conn *c);

/* Copies `in` into buf on one line (no newline or carriage return, no tab,
 * no trailing blank); "unknown error" for NULL or "". */
void actio__pg_one_line(const char *in, char *buf, size_t len);

/* actio__pg_one_line of head (may be NULL) and `in`, with all from the
 * first double quote of `in` to its last written as "***" (from an
 * unpaired one: to the end): a server's text quotes values there. */
void actio__pg_masked_line(const char *head, const char *in, char *buf, size_t len);

#endif

/* pg_error.h: what the server said about a failed statement, read from its
 * result in one place, and the error code io/pg gives that failure. */
#ifndef ACTIO_IO_PG_ERROR_H
#define ACTIO_IO_PG_ERROR_H

#include <stddef.h>

#include "io/pg/pg_result.h"

/* The fields of an error result, borrowed from it (valid while it lives).
 * Any field may be NULL when the server (or libpq) did not give it. */
typedef struct actio__pg_error {
  const char *sqlstate; /* NULL: libpq made the error up (no server) */
  const char *severity; /* "ERROR", "FATAL", never translated */
  const char *message;  /* the primary message */
  const char *detail;
  const char *hint;
  const char *full;     /* libpq's whole text, for when message is NULL */
} actio__pg_error;

/* Reads the error fields of `res`: the only place io/pg reads them. */
void actio__pg_error_read(const actio__pg_result *res, actio__pg_error *out);

/* Writes "SQLSTATE: message" into buf, on one line, for a message that
 * may be stored or logged: the message with all from its first double
 * quote to its last as "***" (where the server quotes values: a
 * parameter's, a literal's), and neither the detail nor the hint (a key's
 * value, a failing row). libpq's whole text, masked alike, when there is
 * no primary message. The fields stay whole for actio_db_error_get. */
void actio__pg_error_format(const actio__pg_error *e, char *buf, size_t len);

/* ACTIO_ERETRY for SQLSTATE 40001 (serialization failure) and 40P01
 * (deadlock), ACTIO_ECONN when libpq made the error up (no SQLSTATE), else
 * ACTIO_ESQL. */
int actio__pg_error_code(const actio__pg_error *e);

/* 1 when e's SQLSTATE is `state`. */
int actio__pg_error_is(const actio__pg_error *e, const char *state);

#endif

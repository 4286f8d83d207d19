/* pg_cancel.c: cancel requests over libpq's PGcancel (see pg_cancel.h). */
#include "io/pg/pg_cancel.h"

#include <libpq-fe.h>

#include "actio/error.h"
#include "io/pg/pg_private.h"

/* The handle is libpq's PGcancel itself. */
actio__pg_cancel *actio__pg_cancel_new(const actio__pg_conn *c) {
  return (actio__pg_cancel *)(void *)PQgetCancel(actio__pg_conn_libpq(c));
}

int actio__pg_cancel_send(actio__pg_cancel *k, char *err, size_t errlen) {
  return PQcancel((PGcancel *)(void *)k, err, (int)errlen) ? 0 : ACTIO_ECONN;
}

void actio__pg_cancel_free(actio__pg_cancel *k) {
  PQfreeCancel((PGcancel *)(void *)k);
}

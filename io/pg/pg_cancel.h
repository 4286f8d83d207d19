/* pg_cancel.h: asking the server to cancel what a connection runs now,
 * from a thread that may block (the request opens a connection of its
 * own). */
#ifndef ACTIO_IO_PG_CANCEL_H
#define ACTIO_IO_PG_CANCEL_H

#include <stddef.h>

#include "io/pg/pg_conn.h"

typedef struct actio__pg_cancel actio__pg_cancel;

/* A cancel handle for c's server session, made on c's thread; it does not
 * refer to c afterwards, so it may outlive it. NULL when out of memory or
 * c has no session yet. */
actio__pg_cancel *actio__pg_cancel_new(const actio__pg_conn *c);

/* Sends the cancel request and waits for the server to take it (blocks).
 * Returns 0, or ACTIO_ECONN with a message in err: the statement then
 * ends on its own. Any thread, one at a time per handle. */
int actio__pg_cancel_send(actio__pg_cancel *k, char *err, size_t errlen);

/* NULL accepted. */
void actio__pg_cancel_free(actio__pg_cancel *k);

#endif

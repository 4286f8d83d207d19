/* db_cursor.c: a cursor for callers that page: DECLARE ... NO SCROLL
 * CURSOR inside a transaction, then FETCH FORWARD n at a time, made of the
 * transaction's own queries (which run in the order sent). */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/db/db_internal.h"

struct actio_db_cursor {
  actio_db_txn *t; /* borrowed: the caller holds it */
  char name[32];
};

/* Names differ within a process, so within any transaction. */
static _Atomic unsigned long next_cursor;

int actio_db_cursor_open(actio_db_txn *t, const actio_db_request *req,
                         actio_db_cursor **cur, actio_future **out) {
  if (t == NULL || cur == NULL || out == NULL || (req != NULL && req->stmt != NULL))
    return ACTIO_EINVAL;
  int rc = actio__db_request_check(req);
  if (rc != 0)
    return rc;
  actio_db_cursor *c = calloc(1, sizeof *c);
  if (c == NULL)
    return ACTIO_ENOMEM;
  c->t = t;
  /* Relaxed: a name, nothing else is published with it. */
  snprintf(c->name, sizeof c->name, "actio_cursor_%lu",
           atomic_fetch_add_explicit(&next_cursor, 1, memory_order_relaxed));
  char *sql;
  if (asprintf(&sql, "DECLARE %s NO SCROLL CURSOR FOR %s", c->name, req->sql) < 0) {
    free(c);
    return ACTIO_ENOMEM;
  }
  actio_db_request q = *req;
  q.sql = sql;
  q.no_cache = 1; /* a DECLARE per cursor: not worth a prepared statement */
  rc = actio_db_txn_send(t, &q, out);
  free(sql);
  if (rc != 0) {
    free(c);
    return rc;
  }
  *cur = c;
  return 0;
}

int actio_db_cursor_fetch(actio_db_cursor *cur, size_t n, actio_future **out) {
  if (cur == NULL || out == NULL || n == 0 || n > 1000000000)
    return ACTIO_EINVAL;
  char sql[80];
  snprintf(sql, sizeof sql, "FETCH FORWARD %zu FROM %s", n, cur->name);
  return actio_db_txn_query(cur->t, sql, 0, NULL, out);
}

int actio_db_cursor_close(actio_db_cursor *cur, actio_future **out) {
  if (cur == NULL || out == NULL)
    return ACTIO_EINVAL;
  char sql[64];
  snprintf(sql, sizeof sql, "CLOSE %s", cur->name);
  return actio_db_txn_query(cur->t, sql, 0, NULL, out);
}

void actio_db_cursor_free(actio_db_cursor *cur) { free(cur); }

/* pg_conn.h: one PostgreSQL connection driven without blocking: connect,
 * queries pipelined each up to its own sync point, a statement cache, the
 * simple protocol for scripts, COPY. Knows nothing of futures or actors. */
#ifndef ACTIO_IO_PG_CONN_H
#define ACTIO_IO_PG_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

typedef struct actio__pg_conn actio__pg_conn;

/* A unit (one query, one script, one COPY) ended, on the connection's
 * thread. rc is 0 with the result (the callee owns it), ACTIO_ESQL or
 * ACTIO_ERETRY with the server's error result (lent for the call: read its
 * fields, do not free it), or ACTIO_ECONN with res NULL and libpq's
 * message. A COPY calls this with the PGRES_COPY_IN or
 * PGRES_COPY_OUT result first (the unit goes on: see copy_done), then again
 * at its end. */
typedef void (*actio__pg_done_fn)(void *ctx, void *unit, int rc, PGresult *res,
                                  const char *msg);

/* One statement with parameters (the arrays are borrowed for the call). */
typedef struct actio__pg_query {
  const char *sql;
  int nparams;
  const Oid *types;
  const char *const *values;
  const int *lengths, *formats;
  int binary_results;
  int cache;          /* 1: prepare it once, keep it (LRU) */
} actio__pg_query;

/* Starts connecting to `dsn`, with a statement cache of `cache_size`
 * entries (0: none). Returns 0; ACTIO_ENOMEM; or ACTIO_ECONN/ACTIO_EDSN with
 * a message in err (never the password). */
int actio__pg_conn_start(actio__pg_conn **out, const char *dsn,
                         unsigned cache_size, char *err, size_t errlen);

/* Advances connecting: ACTIO_EPENDING while in progress (poll for
 * actio__pg_conn_events), 0 once ready (in pipeline mode), or
 * ACTIO_ECONN/ACTIO_EAUTH with a message in err. */
int actio__pg_conn_connect(actio__pg_conn *c, char *err, size_t errlen);

/* Fails every unit still in flight with ACTIO_ECONN and `msg`, then frees.
 * NULL accepted. */
void actio__pg_conn_destroy(actio__pg_conn *c, actio__pg_done_fn done,
                            void *ctx, const char *msg);

int actio__pg_conn_fd(const actio__pg_conn *c);
/* The poll events the connection waits for (POLLIN, POLLOUT). */
short actio__pg_conn_events(const actio__pg_conn *c);
/* Units sent and not yet ended. */
size_t actio__pg_conn_inflight(const actio__pg_conn *c);
/* The unit at the head: the one the server works on now; NULL if none. */
void *actio__pg_conn_head(const actio__pg_conn *c);
/* libpq's handle, for what this file does not wrap (transaction status,
 * notifications, COPY data, cancel keys). */
PGconn *actio__pg_conn_pg(const actio__pg_conn *c);

/* Sends a query as one pipelined unit (`unit` comes back through done;
 * NULL: an internal unit whose outcome nobody wants). 0 or ACTIO_ECONN. */
int actio__pg_conn_send(actio__pg_conn *c, const actio__pg_query *q, void *unit);

/* Leaves pipeline mode (nothing may be in flight) and sends `sql` with the
 * simple protocol (scripts, COPY, LISTEN); pipeline mode comes back once
 * this unit ends. With `copy`, a COPY's data phase is handed to the caller
 * (see done); without, a COPY fails the unit with ACTIO_EINVAL, as it does
 * in actio__pg_conn_send. 0, ACTIO_ESTATE or ACTIO_ECONN. */
int actio__pg_conn_send_simple(actio__pg_conn *c, const char *sql, int copy,
                               void *unit);

/* A COPY unit at the head is done with its data (PQputCopyEnd sent, or
 * PQgetCopyData returned -1): its final result comes next. */
void actio__pg_conn_copy_done(actio__pg_conn *c);
/* Holds back what the next units write (TCP_CORK: no segment, no wake-up
 * of the server per unit) until actio__pg_conn_uncork sends it all in one
 * go. Nothing happens on a Unix socket. uncork: 0 or ACTIO_ECONN. */
void actio__pg_conn_cork(actio__pg_conn *c);
int actio__pg_conn_uncork(actio__pg_conn *c);
/* 1 while libpq holds output the socket has not taken yet. */
int actio__pg_conn_output_pending(const actio__pg_conn *c);
/* 1 while the head unit is in its COPY data phase. */
int actio__pg_conn_in_copy(const actio__pg_conn *c);

/* Reads what arrived and ends the units whose results are complete.
 * Returns 0, or ACTIO_ECONN once the connection is broken (units are then
 * still in flight: destroy the connection). */
int actio__pg_conn_input(actio__pg_conn *c, actio__pg_done_fn done, void *ctx);
/* Sends what libpq buffered. 0 or ACTIO_ECONN. */
int actio__pg_conn_flush(actio__pg_conn *c);

/* The error code for a failed result: ACTIO_ERETRY for SQLSTATE 40001 and
 * 40P01, ACTIO_ECONN for an error libpq made up (no SQLSTATE), else
 * ACTIO_ESQL. */
int actio__pg_result_code(const PGresult *res);
/* Writes "SQLSTATE: message" (detail and hint after) into buf. */
void actio__pg_result_message(const PGresult *res, char *buf, size_t len);
/* libpq's last error, trimmed to one line, never quoting the DSN. */
void actio__pg_conn_message(const actio__pg_conn *c, char *buf, size_t len);

#endif

/* pg_conn.h: one PostgreSQL connection driven without blocking: connect,
 * queries pipelined each up to its own sync point, a statement cache, the
 * simple protocol for scripts, COPY. Knows nothing of futures or actors. */
#ifndef ACTIO_IO_PG_CONN_H
#define ACTIO_IO_PG_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "io/pg/pg_error.h"
#include "io/pg/pg_result.h"

typedef struct actio__pg_conn actio__pg_conn;

/* What `done` is told first when a COPY unit enters its data phase (the
 * unit goes on: see actio__pg_conn_copy_done). */
enum { ACTIO__PG_COPY_IN = 1, ACTIO__PG_COPY_OUT = 2 };

/*
 * A unit (one query, one script, one COPY) ended, on the connection's
 * thread. rc is 0 with the result (the callee owns it); or negative with
 * msg, one line, lent for the call: ACTIO_ESQL and ACTIO_ERETRY come with
 * err, the server's error (lent for the call), every other code (ACTIO_ECONN,
 * ACTIO_EINVAL, ACTIO_ENOMEM) with err NULL. A COPY unit calls it first with
 * ACTIO__PG_COPY_IN or ACTIO__PG_COPY_OUT (res and err NULL), then again at
 * its end.
 */
typedef void (*actio__pg_done_fn)(void *ctx, void *unit, int rc,
                                  actio__pg_result *res,
                                  const actio__pg_error *err, const char *msg);

/* One statement with parameters (the arrays are borrowed for the call). */
typedef struct actio__pg_query {
  const char *sql;
  int nparams;        /* 0 to 65535 (the protocol's limit) */
  const uint32_t *types; /* OIDs; NULL or 0: the server infers */
  const char *const *values;
  const int *lengths, *formats;
  int binary_results;
  int cache;          /* 1: prepare it once, keep it (LRU) */
  const char *name;   /* a statement of the caller's to run by this name
                         instead (the cache is not used) */
  int prepare;        /* with name: prepare it (sql, types) first, in the
                         same unit */
  int *parsed;        /* with prepare, or NULL: set to 1 once that Parse
                         succeeded (the caller's until the unit is done) */
} actio__pg_query;

/* 0 if libpq parses `dsn` (key=value or URI), else ACTIO_EDSN. Its
 * complaint is dropped: it may quote the password. */
int actio__pg_dsn_check(const char *dsn);

/* Starts connecting to `dsn`, with a statement cache of `cache_size`
 * entries (0: none). Returns 0, or ACTIO_ENOMEM, ACTIO_ECONN or ACTIO_EDSN
 * with a message in err (never the password). */
int actio__pg_conn_start(actio__pg_conn **out, const char *dsn,
                         unsigned cache_size, char *err, size_t errlen);

/* A notice of the server's (NOTICE, WARNING, ...) or libpq's (sqlstate
 * NULL), its fields lent for the call. */
typedef void (*actio__pg_notice_fn)(void *arg, const actio__pg_error *n);
/* Hands c's notices to fn (NULL: drops them, as from the start), on the
 * thread that drives c, from within connect, input and flush. */
void actio__pg_conn_on_notice(actio__pg_conn *c, actio__pg_notice_fn fn, void *arg);

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
/* 1 while the session is outside any transaction block (what a pooled
 * connection must be between uses), units pipelined behind running or
 * not. */
int actio__pg_conn_txn_idle(const actio__pg_conn *c);

/* The server process serving c, and the server's version (PQserverVersion). */
int actio__pg_conn_backend_pid(const actio__pg_conn *c);
int actio__pg_conn_server_version(const actio__pg_conn *c);
/* Forgets every cached statement without a DEALLOCATE: the server dropped
 * them (DISCARD ALL). Nothing may be in flight. */
void actio__pg_conn_forget_statements(actio__pg_conn *c);

/* Sends a query as one pipelined unit (`unit` comes back through done;
 * NULL: an internal unit whose outcome nobody wants). 0 or ACTIO_ECONN. */
int actio__pg_conn_send(actio__pg_conn *c, const actio__pg_query *q, void *unit);

/* Prepares `sql` as `name` (nparams, types as in actio__pg_query) and
 * has the server describe it, as one pipelined unit: its result (done)
 * tells the parameters' types and the columns. parse 0: `name` exists on
 * this session already, only described. *parsed (the caller's, until the
 * unit is done) is set to 1 once the Parse succeeded, never back to 0:
 * then the statement exists on the server even if the unit fails (its
 * Describe cancelled, say). 0, ENOMEM or ECONN. */
int actio__pg_conn_send_describe(actio__pg_conn *c, const char *name, const char *sql,
                                 int nparams, const uint32_t *types, int parse,
                                 void *unit, int *parsed);
/* A described statement's parameters: their count and type OIDs. */
int actio__pg_described_params(const actio__pg_result *r);
uint32_t actio__pg_described_param_type(const actio__pg_result *r, int i);

/* Statement i of a batch: fills *q (what it points to stays valid until
 * the send returns). */
typedef void (*actio__pg_batch_get_fn)(void *unit, size_t i, actio__pg_query *q);
/* Statement i of a batch ended: res is its result (the callee's); or, res
 * NULL, it is the statement that failed (the error comes with done). */
typedef void (*actio__pg_batch_each_fn)(void *unit, size_t i, actio__pg_result *res);

/* Sends n > 0 statements (get tells each) as one pipelined unit with one
 * Sync at its end: the server runs them as one implicit transaction, all
 * or nothing. Their results go to each as they come; done ends the unit
 * (res: an empty result). The first statement is prepared and cached when
 * it asks for it, and used by the later ones with the same sql pointer and
 * count; the others are sent unnamed. 0, ACTIO_ENOMEM or ACTIO_ECONN. */
int actio__pg_conn_send_batch(actio__pg_conn *c, size_t n,
                              actio__pg_batch_get_fn get,
                              actio__pg_batch_each_fn each, void *unit);

/* Leaves pipeline mode (nothing may be in flight) and sends q unnamed in
 * single-row mode (libpq 17: chunks of `chunk` rows): its rows are read
 * with actio__pg_conn_stream_get, and its end (the tag, or the error) comes
 * through done. 0, ACTIO_ESTATE, ACTIO_ENOMEM or ACTIO_ECONN. */
int actio__pg_conn_send_stream(actio__pg_conn *c, const actio__pg_query *q,
                               size_t chunk, void *unit);
/* The next rows of the stream at the head: their number (> 0) with *rows
 * (a result; free it), 0 when none has arrived yet, ACTIO_EEOF once they
 * are over (the unit ends in the next actio__pg_conn_input). */
int actio__pg_conn_stream_get(actio__pg_conn *c, actio__pg_result **rows);
/* 1 while the head unit is a stream with rows still to read. */
int actio__pg_conn_in_rows(const actio__pg_conn *c);

/* Leaves pipeline mode (nothing may be in flight) and sends `sql` with the
 * simple protocol (scripts, COPY, LISTEN); pipeline mode comes back once
 * this unit ends. With `copy`, a COPY's data phase is handed to the caller
 * (see done); without, a COPY fails the unit with ACTIO_EINVAL, as it does
 * in actio__pg_conn_send. 0, ACTIO_ESTATE or ACTIO_ECONN. */
int actio__pg_conn_send_simple(actio__pg_conn *c, const char *sql, int copy,
                               void *unit);

/* The data of a COPY FROM STDIN at the head: put queues `len` bytes, end
 * queues its end (error NULL: commit the rows; else abort with that
 * reason). Each returns 0 once libpq took it, ACTIO_EAGAIN when libpq's
 * buffer is full (flush, then try again), or ACTIO_ECONN. */
int actio__pg_conn_copy_put(actio__pg_conn *c, const void *data, size_t len);
int actio__pg_conn_copy_end(actio__pg_conn *c, const char *error);
/* The next row of a COPY TO STDOUT at the head: its length (> 0) with *row
 * (free it with actio__pg_copy_row_free), 0 when it has not arrived yet,
 * ACTIO_EEOF once the rows are over (the unit's result comes next), or
 * ACTIO_ECONN. */
int actio__pg_conn_copy_get(actio__pg_conn *c, char **row);
void actio__pg_copy_row_free(char *row);
/* A COPY unit at the head is done with its data (its end was sent, or
 * copy_get said ACTIO_EEOF): its final result comes next. */
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

/* A notification (NOTIFY) that reached a listening connection. */
typedef struct actio__pg_notification {
  const char *channel;
  const char *payload; /* "" when none */
  int pid;             /* the notifying backend */
} actio__pg_notification;

/* Hands fn every notification read so far, oldest first (valid during the
 * call), and forgets them. */
void actio__pg_conn_notifications(actio__pg_conn *c,
                                  void (*fn)(void *arg,
                                             const actio__pg_notification *n),
                                  void *arg);
/* libpq's last error, trimmed to one line, never quoting the DSN; once
 * connected, with what the server quoted masked (actio__pg_masked_line). */
void actio__pg_conn_message(const actio__pg_conn *c, char *buf, size_t len);

#endif

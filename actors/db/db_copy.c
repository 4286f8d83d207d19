/* db_copy.c: COPY FROM STDIN (the caller's writes fed to the server as
 * libpq takes them) and COPY TO STDOUT (rows handed to a consumer that may
 * ask to wait), on a connection of their own or a transaction's. */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "actors/core/actor_internal.h"
#include "actors/db/db_internal.h"

static void copy_user_drop(void *p);

/* ---- the worker's side ---- */

/* The consumer of rows nobody wants any more. */
static int drain_rows(void *arg, const void *data, size_t len, actio_future **ready) {
  (void)arg, (void)data, (void)len, (void)ready;
  return 0;
}

static void copy_unpin(conn *c) {
  actio_db_copy *cp = c->copy;
  if (cp == NULL)
    return;
  /* Its rows ended, so no consumer holds them back any more. */
  ACTIO__ASSERT(cp->c == c && cp->ready == NULL);
  c->copy = NULL;
  cp->c = NULL;
  while (cp->q_head != NULL) { /* writes after the end */
    db_req *r = cp->q_head;
    actio__db_q_unlink(&cp->q_head, &cp->q_tail, r);
    actio__db_req_fail(r, ACTIO_ESTATE, "COPY is over");
  }
  actio__db_copy_unref(cp);
  actio__db_conn_release(c);
}

/* The COPY's connection is ready for data (in) or has rows (out). */
void actio__db_copy_started(db_worker *w, db_req *r, int out) {
  actio_db_copy *cp = r->copy;
  conn *c = r->c;
  (void)w;
  ACTIO__ASSERT(!cp->started && cp->c == c);
  cp->started = 1;
  cp->out = out;
  if (out != (r->row_fn != NULL)) { /* COPY TO for copy_in, or the reverse */
    cp->wrong = 1;
    if (out) {
      r->row_fn = drain_rows;
    } else {
      actio__pg_conn_copy_end(c->pc, "COPY in the wrong direction");
      actio__pg_conn_copy_done(c->pc);
      actio__pg_conn_flush(c->pc);
    }
    return;
  }
  if (out)
    return; /* COPY TO answers at the end, with the row count */
  actio__db_publish(r, &cp->state, &cp->refs, cp, copy_user_drop);
  /* Let go of the future: freeing it is how a caller abandons the COPY. */
  actio_future_unref(r->reply);
  r->reply = NULL;
}

void actio__db_copy_ended(db_worker *w, db_req *r, int rc, actio__pg_result *res,
                          const actio__pg_error *err, const char *msg) {
  actio_db_copy *cp = r->copy;
  conn *c = r->c;
  (void)w;
  if (c != NULL && c->state != C_EMPTY)
    copy_unpin(c);
  if (cp->wrong || (rc == 0 && !cp->started)) {
    if (rc == 0)
      actio__pg_result_free(res);
    actio__db_req_fail(r, ACTIO_EINVAL,
                       cp->wrong ? "COPY: TO STDOUT needs actio_db_copy_out, "
                                   "FROM STDIN actio_db_copy_in"
                                 : "COPY: not a COPY statement");
    return;
  }
  db_req *end = cp->end; /* COPY FROM: the end's future gets the outcome */
  cp->end = NULL;
  if (end != NULL && cp->started && !cp->out) {
    actio__db_req_end(end, rc, res, err, msg);
    actio__db_req_free(r); /* its future already holds the COPY */
    return;
  }
  if (end != NULL)
    actio__db_req_fail(end, rc ? rc : ACTIO_ECONN, msg);
  if (cp->started && !cp->out) { /* lost before its end was asked */
    if (rc == 0)
      actio__pg_result_free(res);
    actio__db_req_free(r);
    return;
  }
  /* COPY TO's outcome, or a COPY that failed to start. */
  actio__db_req_end(r, rc, res, err, msg);
}

/* Feeds the COPY on c its queued writes and end, as far as libpq takes. */
void actio__db_copy_pump_in(db_worker *w, conn *c) {
  actio_db_copy *cp = c->copy;
  while (cp->q_head != NULL && cp->end == NULL && actio__pg_conn_in_copy(c->pc)) {
    /* Backpressure: libpq would buffer without bound, so a write is taken
     * (and its future completed) only once the last one left for the
     * socket. */
    if (actio__pg_conn_output_pending(c->pc))
      return;
    db_req *r = cp->q_head;
    int rc = r->kind == K_CWRITE
                 ? actio__pg_conn_copy_put(c->pc, r->data, r->len)
                 : actio__pg_conn_copy_end(c->pc, r->kind == K_CDROP
                                                      ? "COPY abandoned by the client"
                                                      : r->data);
    if (rc == ACTIO_EAGAIN) { /* libpq's buffer is full: wait until it drains */
      actio__pg_conn_flush(c->pc);
      return;
    }
    actio__db_q_unlink(&cp->q_head, &cp->q_tail, r);
    if (rc < 0) {
      actio__db_q_push(&cp->q_head, &cp->q_tail, r); /* fails with the connection */
      actio__db_conn_broken(w, c);
      return;
    }
    if (actio__pg_conn_flush(c->pc) != 0) {
      actio__db_q_push(&cp->q_head, &cp->q_tail, r);
      actio__db_conn_broken(w, c);
      return;
    }
    if (r->kind == K_CWRITE) {
      actio__db_req_end(r, 0, NULL, NULL, NULL);
      continue;
    }
    actio__pg_conn_copy_done(c->pc);
    cp->end = r; /* answered with the COPY's result */
  }
}

/* Hands COPY TO rows to the consumer until it asks to wait. */
void actio__db_copy_pump_out(db_worker *w, conn *c) {
  actio_db_copy *cp = c->copy;
  db_req *r = cp->start;
  while (cp->ready == NULL && actio__pg_conn_in_copy(c->pc)) {
    char *row = NULL;
    int n = actio__pg_conn_copy_get(c->pc, &row);
    if (n == 0)
      return; /* more to read first */
    if (n == ACTIO_EEOF) {
      actio__pg_conn_copy_done(c->pc); /* the result comes next */
      return;
    }
    if (n < 0) {
      actio__db_conn_broken(w, c);
      return;
    }
    actio_future *ready = NULL;
    int rc = r->row_fn(r->row_arg, row, (size_t)n, &ready);
    actio__pg_copy_row_free(row);
    if (rc < 0) { /* the consumer gave up: cancel it on the server */
      actio_future_unref(ready);
      actio_future_fail(r->reply, rc, "COPY TO: row consumer failed: %s",
                        actio_strerror(rc));
      atomic_store_explicit(&r->cancel, 1, memory_order_relaxed);
      if (c->cancel == NULL && !r->cancel_sent)
        actio__db_cancel_on_server(w, c, r);
      r->row_fn = drain_rows; /* the rest goes unread */
      continue;
    }
    if (ready != NULL) {
      cp->ready = ready;
      if (!actio_future_is_done(ready)) {
        /* No memory for the ring: the wait looks at ready anyway. */
        actio__bell_ring_on(w->bell, ready);
        return;
      }
      actio__db_copy_resume(w, c); /* done already: failed, it fails the COPY */
    }
  }
}

void actio__db_copy_resume(db_worker *w, conn *c) {
  actio_db_copy *cp = c->copy;
  int st = actio_future_status(cp->ready);
  actio__bell_forget(w->bell, &cp->ready);
  if (st != 0 && cp->start != NULL) { /* the consumer failed */
    cp->start->row_fn = drain_rows;
    actio_future_fail(cp->start->reply, st, "COPY TO: consumer failed: %s",
                      actio_strerror(st));
    atomic_store_explicit(&cp->start->cancel, 1, memory_order_relaxed);
  }
}

/* ---- the API ---- */

static int copy_begin(actio_actor *db, actio_db_txn *t, const char *sql,
                      actio_db_row_fn fn, void *arg, actio_future **out);

/* Under a pin on db: the state it reads stays. */
static int copy_start(actio_actor *db, actio_db_txn *t, const char *sql,
                      actio_db_row_fn fn, void *arg, actio_future **out) {
  if (db == NULL)
    return ACTIO_EINVAL;
  actio__actor_pin(db);
  int rc = copy_begin(db, t, sql, fn, arg, out);
  actio__actor_unpin(db);
  return rc;
}

static int copy_begin(actio_actor *db, actio_db_txn *t, const char *sql,
                      actio_db_row_fn fn, void *arg, actio_future **out) {
  db_state *st = actio__db_state(db);
  if (st == NULL || sql == NULL || out == NULL || (t != NULL && t->st != st))
    return ACTIO_EINVAL; /* ... or a transaction of another database actor */
  if (t != NULL && atomic_load_explicit(&t->state, memory_order_acquire) != T_OPEN)
    return ACTIO_ESTATE;
  actio_db_copy *cp = calloc(1, sizeof *cp);
  if (cp == NULL)
    return ACTIO_ENOMEM;
  atomic_init(&cp->refs, 1); /* the request's */
  cp->st = st;
  actio_db_request q = {.sql = sql};
  db_req *r = actio__db_req_new(K_COPY, &q, NULL, 0);
  if (r == NULL) {
    free(cp);
    return ACTIO_ENOMEM;
  }
  actio__actor_ref(st->self); /* st stays while the COPY does */
  r->copy = cp;
  r->row_fn = fn;
  r->row_arg = arg;
  cp->start = r;
  if (t != NULL) {
    cp->txn = t;
    actio__db_ref(&t->refs);
    cp->bell = t->bell;
    actio__bell_ref(t->bell);
    r->txn = t;
    actio__db_ref(&t->refs);
    return actio__db_submit_bound(st, t->bell, r, 0, out);
  }
  return actio__db_submit(db, st, r, 0, out);
}

int actio_db_copy_in(actio_actor *db, actio_db_txn *t, const char *sql,
                     actio_future **out) {
  return copy_start(db, t, sql, NULL, NULL, out);
}

int actio_db_copy_out(actio_actor *db, actio_db_txn *t, const char *sql,
                      actio_db_row_fn fn, void *arg, actio_future **out) {
  return fn ? copy_start(db, t, sql, fn, arg, out) : ACTIO_EINVAL;
}

static int copy_op(actio_db_copy *cp, enum kind kind, const void *data, size_t len,
                   actio_future **out) {
  if (cp == NULL || (out == NULL && kind != K_CDROP) || (data == NULL && len > 0) ||
      len > INT32_MAX)
    return ACTIO_EINVAL;
  if (atomic_load_explicit(&cp->state, memory_order_acquire) != T_OPEN)
    return ACTIO_ESTATE;
  if (kind != K_CWRITE) {
    int open = T_OPEN;
    if (!atomic_compare_exchange_strong_explicit(&cp->state, &open, T_DONE,
                                                 memory_order_acq_rel,
                                                 memory_order_acquire))
      return ACTIO_ESTATE;
  }
  db_req *r = actio__db_req_new(kind, NULL, data, len);
  if (r == NULL)
    return ACTIO_ENOMEM;
  r->copy = cp;
  actio__db_ref(&cp->refs);
  return actio__db_submit_bound(cp->st, cp->bell, r, 0, out);
}

int actio_db_copy_write(actio_db_copy *c, const void *data, size_t len,
                        actio_future **out) {
  return copy_op(c, K_CWRITE, data, len, out);
}

int actio_db_copy_end(actio_db_copy *c, const char *error, actio_future **out) {
  return copy_op(c, K_CEND, error, error ? strlen(error) : 0, out);
}

static void copy_user_drop(void *p) {
  actio_db_copy *cp = p;
  copy_op(cp, K_CDROP, NULL, 0, NULL); /* aborts it unless it ended */
  actio__db_copy_unref(cp);
}

void actio_db_copy_free(actio_db_copy *c) {
  if (c != NULL)
    copy_user_drop(c);
}

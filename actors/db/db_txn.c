/* db_txn.c: transactions and sessions: BEGIN (or a session's acquire)
 * pins a connection of one worker, whose inbox then takes the queries,
 * savepoints and end, in the order sent; a transaction its caller drops
 * is rolled back, a session reset. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/core/actor_internal.h"
#include "actors/db/db_internal.h"

static void txn_user_drop(void *p);

/* The worker's side. */

static void txn_unpin(db_worker *w, conn *c) {
  actio_db_txn *t = c->txn;
  if (t == NULL)
    return;
  ACTIO__ASSERT(t->c == c);
  c->txn = NULL;
  t->c = NULL;
  actio__db_txn_unref(t);
  /* Lost: closed whatever the hook says (broken, its reset failed, or
   * left inside a transaction: a dead connection's status is unknown). */
  int lost = c->doomed || !actio__pg_conn_txn_idle(c->pc);
  if (actio__db_conn_give_back(w, c, lost) != 0)
    c->doomed = 1;
  actio__db_conn_release(c);
}

/* A session's reset (DISCARD ALL) ended: its prepared statements are gone,
 * its on_connect_sql runs again; if it failed, the connection closes. */
static void session_reset(db_worker *w, conn *c, int rc) {
  if (rc != 0) {
    c->doomed = 1;
    return;
  }
  actio__pg_conn_forget_statements(c->pc);
  /* A new session as far as prepared statements go: theirs are gone. */
  c->serial = atomic_fetch_add_explicit(&w->st->serials, 1, memory_order_relaxed) + 1;
  if (w->st->o.on_connect_sql != NULL)
    c->init = INIT_WANTED; /* not usable until it ran */
}

void actio__db_txn_ended(db_worker *w, db_req *r, int rc, actio__pg_result *res,
                         const actio__pg_error *err, const char *msg) {
  conn *c = r->c;
  int reset = r->kind != K_BEGIN && r->txn->session;
  if (r->kind == K_BEGIN && rc == 0) {
    actio_db_txn *t = r->txn;
    actio__pg_result_free(res);
    actio__db_publish(r, &t->state, &t->refs, t, txn_user_drop);
    actio__db_req_free(r);
    return;
  }
  if (c != NULL && c->state != C_EMPTY) {
    if (reset)
      session_reset(w, c, rc);
    txn_unpin(w, c);
  }
  if (reset && rc == 0) {
    actio__pg_result_free(res);
    res = NULL; /* a release's value */
  }
  if (r->kind != K_BEGIN && rc == 0 && r->commit &&
      strcmp(actio__pg_result_command_tag(res), "ROLLBACK") == 0) { /* it had failed */
    static const actio__pg_error rolled_back = {
        .sqlstate = "25P02", .severity = "ERROR",
        .message = "the transaction had failed and was rolled back"};
    actio__pg_result_free(res);
    res = NULL;
    rc = ACTIO_ESQL;
    err = &rolled_back;
    msg = "25P02: COMMIT of a failed transaction: it was rolled back";
  }
  actio__db_req_end(r, rc, res, err, msg);
}

/* ---- the API ---- */

static const char *begin_sql(const actio_db_txn_opts *o) {
  static const char *const sql[3][2][2] = {
      {{"BEGIN ISOLATION LEVEL READ COMMITTED", "BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY"},
       {"BEGIN ISOLATION LEVEL READ COMMITTED", "BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY"}},
      {{"BEGIN ISOLATION LEVEL REPEATABLE READ", "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"},
       {"BEGIN ISOLATION LEVEL REPEATABLE READ", "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"}},
      {{"BEGIN ISOLATION LEVEL SERIALIZABLE", "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY"},
       {"BEGIN ISOLATION LEVEL SERIALIZABLE", "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE"}},
  };
  return sql[o->isolation][o->deferrable != 0][o->read_only != 0];
}

int actio__db_begin_check(actio_actor *db, const actio_db_txn_opts *o) {
  if (actio__db_state(db) == NULL ||
      (o != NULL && (unsigned)o->isolation > ACTIO_DB_SERIALIZABLE))
    return ACTIO_EINVAL;
  return 0;
}

static int begin(actio_actor *db, const actio_db_txn_opts *opts, int session,
                 actio_future **out);

/* Under a pin on db: the state it reads stays. */
int actio_db_begin(actio_actor *db, const actio_db_txn_opts *opts, actio_future **out) {
  if (db == NULL)
    return ACTIO_EINVAL;
  actio__actor_pin(db);
  int rc = begin(db, opts, 0, out);
  actio__actor_unpin(db);
  return rc;
}

int actio_db_acquire(actio_actor *db, actio_future **out) {
  if (db == NULL)
    return ACTIO_EINVAL;
  actio__actor_pin(db);
  int rc = begin(db, NULL, 1, out);
  actio__actor_unpin(db);
  return rc;
}

/* A BEGIN, or a session's acquire (its SQL never sent: only its label). */
static int begin(actio_actor *db, const actio_db_txn_opts *opts, int session,
                 actio_future **out) {
  db_state *st = actio__db_state(db);
  actio_db_txn_opts o = opts ? *opts : (actio_db_txn_opts){0};
  if (out == NULL || actio__db_begin_check(db, &o) != 0)
    return ACTIO_EINVAL;
  actio_db_txn *t = calloc(1, session ? sizeof(actio_db_session) : sizeof *t);
  if (t == NULL)
    return ACTIO_ENOMEM;
  atomic_init(&t->refs, 1); /* the BEGIN request's */
  t->st = st;
  t->session = session;
  actio_db_request q = {.sql = session ? "acquire a session" : begin_sql(&o)};
  db_req *r = actio__db_req_new(K_BEGIN, &q, NULL, 0);
  if (r == NULL) {
    free(t);
    return ACTIO_ENOMEM;
  }
  r->nocache = 1; /* not worth a prepared statement */
  r->txn = t;
  actio__actor_ref(st->self); /* st stays while the transaction does */
  return actio__db_submit(db, st, r, 0, out);
}

/* The worker pins the transaction before publishing it, so t->bell is set
 * by the time a caller holds it. */
static int txn_req(actio_db_txn *t, enum kind kind, const actio_db_request *q,
                   int cacheable, actio_future **out) {
  if (t == NULL || out == NULL)
    return ACTIO_EINVAL;
  int rc = actio__db_request_check(q);
  if (rc != 0)
    return rc;
  if (atomic_load_explicit(&t->state, memory_order_acquire) != T_OPEN)
    return ACTIO_ESTATE;
  db_req *r = actio__db_req_new(kind, q, NULL, 0);
  if (r == NULL)
    return ACTIO_ENOMEM;
  r->nocache = !cacheable || q->no_cache;
  r->txn = t;
  actio__db_ref(&t->refs);
  return actio__db_submit_bound(t->st, t->bell, r, q->timeout_ms, out);
}

int actio_db_txn_send(actio_db_txn *t, const actio_db_request *req, actio_future **out) {
  return txn_req(t, K_TQUERY, req, 1, out);
}

int actio_db_txn_query(actio_db_txn *t, const char *sql, int nparams,
                       const char *const *params, actio_future **out) {
  actio_db_request q = {.sql = sql, .nparams = nparams, .params = params};
  return txn_req(t, K_TQUERY, &q, 1, out);
}

/* Ends t: commit, rollback, or (out NULL) the drop of a forgotten one. */
static int txn_end(actio_db_txn *t, int commit, actio_future **out) {
  int open = T_OPEN;
  if (t == NULL)
    return ACTIO_EINVAL;
  if (!atomic_compare_exchange_strong_explicit(&t->state, &open, T_DONE,
                                               memory_order_acq_rel,
                                               memory_order_acquire))
    return ACTIO_ESTATE;
  actio_db_request q = {.sql = t->session ? "DISCARD ALL" : commit ? "COMMIT" : "ROLLBACK"};
  db_req *r = actio__db_req_new(out ? K_END : K_TDROP, &q, NULL, 0);
  if (r == NULL)
    return ACTIO_ENOMEM;
  r->commit = commit;
  r->nocache = 1;
  r->txn = t;
  actio__db_ref(&t->refs);
  return actio__db_submit_bound(t->st, t->bell, r, 0, out);
}

int actio_db_commit(actio_db_txn *t, actio_future **out) {
  return out ? txn_end(t, 1, out) : ACTIO_EINVAL;
}

int actio_db_rollback(actio_db_txn *t, actio_future **out) {
  return out ? txn_end(t, 0, out) : ACTIO_EINVAL;
}

static void txn_user_drop(void *p) {
  actio_db_txn *t = p;
  txn_end(t, 0, NULL); /* rolls back unless it ended */
  actio__db_txn_unref(t);
}

void actio_db_txn_free(actio_db_txn *t) {
  if (t != NULL)
    txn_user_drop(t);
}

/* ---- sessions: a transaction's path, without BEGIN ---- */

int actio_db_session_send(actio_db_session *s, const actio_db_request *req,
                          actio_future **out) {
  return txn_req(s ? &s->t : NULL, K_TQUERY, req, 1, out);
}

int actio_db_session_query(actio_db_session *s, const char *sql, int nparams,
                           const char *const *params, actio_future **out) {
  actio_db_request q = {.sql = sql, .nparams = nparams, .params = params};
  return actio_db_session_send(s, &q, out);
}

int actio_db_session_release(actio_db_session *s, actio_future **out) {
  return out ? txn_end(s ? &s->t : NULL, 0, out) : ACTIO_EINVAL;
}

void actio_db_session_free(actio_db_session *s) {
  if (s != NULL)
    txn_user_drop(&s->t);
}

/* ---- savepoints ---- */

static int savepoint(actio_db_txn *t, const char *verb, const char *name,
                     actio_future **out) {
  if (name == NULL || *name == '\0' || strlen(name) > 63)
    return ACTIO_EINVAL;
  char q[140], sql[180];
  actio__db_quote_ident(q, sizeof q, name);
  snprintf(sql, sizeof sql, "%s %s", verb, q);
  actio_db_request req = {.sql = sql};
  return txn_req(t, K_TQUERY, &req, 0, out);
}

int actio_db_savepoint(actio_db_txn *t, const char *name, actio_future **out) {
  return savepoint(t, "SAVEPOINT", name, out);
}

int actio_db_rollback_to(actio_db_txn *t, const char *name, actio_future **out) {
  return savepoint(t, "ROLLBACK TO SAVEPOINT", name, out);
}

int actio_db_release(actio_db_txn *t, const char *name, actio_future **out) {
  return savepoint(t, "RELEASE SAVEPOINT", name, out);
}

/* db_prepare.c: prepared statements the caller names: prepared and
 * described once on a pooled connection, then on each other connection
 * at its first use there (db_pool.c's send_unit), and DEALLOCATEd by each
 * connection that has one once it is destroyed (the graveyard, reaped by
 * every worker when free to). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/core/actor_internal.h"
#include "actors/db/db_internal.h"

/* ---- the worker's side ---- */

/* Copies what the server described into s. 0 or ACTIO_ENOMEM. */
static int describe(actio_db_stmt *s, const actio__pg_result *res) {
  int np = actio__pg_described_params(res), nc = actio__pg_result_columns(res);
  uint32_t *pt = np > 0 ? malloc(sizeof *pt * (size_t)np) : NULL;
  uint32_t *ct = nc > 0 ? malloc(sizeof *ct * (size_t)nc) : NULL;
  char **cn = nc > 0 ? calloc((size_t)nc, sizeof *cn) : NULL;
  int ok = (np == 0 || pt != NULL) && (nc == 0 || (ct != NULL && cn != NULL));
  for (int i = 0; ok && i < np; i++)
    pt[i] = actio__pg_described_param_type(res, i);
  for (int i = 0; ok && i < nc; i++) {
    ct[i] = actio__pg_result_column_type(res, i);
    ok = (cn[i] = strdup(actio__pg_result_column_name(res, i))) != NULL;
  }
  if (!ok) {
    for (int i = 0; cn != NULL && i < nc; i++)
      free(cn[i]);
    free(cn);
    free(ct);
    free(pt);
    return ACTIO_ENOMEM;
  }
  free(s->ptypes); /* the caller's, now the server's */
  s->ptypes = pt;
  s->nparams = np;
  s->ctypes = ct;
  s->cnames = cn;
  s->ncols = nc;
  return 0;
}

static void stmt_user_drop(void *s) { actio_db_stmt_destroy(s); }

void actio__db_prepare_ended(db_worker *w, db_req *r, int rc, actio__pg_result *res,
                             const actio__pg_error *err, const char *msg) {
  db_prepare_head *h = actio__db_req_ext(r);
  actio_db_stmt *s = h->stmt;
  (void)w;
  if (rc == 0) {
    rc = describe(s, res);
    actio__pg_result_free(res);
    res = NULL;
    msg = actio_strerror(rc);
  }
  if (rc != 0 && h->parsed) {
    /* Prepared on the server all the same (its Describe cancelled, or no
     * memory to copy the description): its connection DEALLOCATEs it, as
     * for a destroyed statement. */
    h->stmt = NULL;
    actio_db_stmt_destroy(s);
  }
  if (rc != 0) { /* never prepared, or handed to the graveyard */
    actio__db_req_end(r, rc, NULL, err, msg);
    return;
  }
  h->stmt = NULL; /* the caller's now */
  actio_future_clear_cancel(r->reply);
  if (actio_future_resolve(r->reply, s, stmt_user_drop) != 0)
    actio_db_stmt_destroy(s); /* cancelled meanwhile */
  actio__db_req_free(r);
}

/* 1 if c may be sent a DEALLOCATE now: in pipeline mode, pooled (a
 * transaction's failure would refuse it), not about to close, with no
 * cancel request on its way (landing late, it would fail the DEALLOCATE,
 * whose error nobody reads, and leave the statement on the session). */
static int can_deallocate(const conn *c) {
  return c->init == INIT_NONE && !c->simple && c->txn == NULL && c->copy == NULL &&
         c->cancel == NULL && !c->doomed;
}

/* This worker's part for s: DEALLOCATE on its connections that prepared
 * it. 1 once done, 0 if one of them is busy (try again later). */
static int reap_one(db_worker *w, actio_db_stmt *s) {
  int done = 1;
  for (unsigned i = 0; i < w->nconns; i++) {
    conn *c = &w->conns[i];
    if (c->state != C_READY || s->on[c->slot] != c->serial)
      continue; /* never prepared there, or that session is over */
    if (!can_deallocate(c)) {
      done = 0;
      continue;
    }
    char sql[48];
    snprintf(sql, sizeof sql, "DEALLOCATE %s", s->name); /* our own name */
    actio__pg_query q = {.sql = sql};
    if (actio__pg_conn_send(c->pc, &q, NULL) != 0)
      c->doomed = 1; /* broken: its statements go with it */
    s->on[c->slot] = 0;
  }
  return done;
}

/* Walks the graveyard under st->gmu: w's part of each statement (its
 * DEALLOCATEs; gone: none, it stops), and frees those all are done with. */
static void grave_walk(db_worker *w, int gone) {
  db_state *st = w->st;
  actio_db_stmt *freed = NULL;
  pthread_mutex_lock(&st->gmu);
  if (gone)
    st->stopped[w->index] = 1; /* its connections close: nothing to drop */
  for (actio_db_stmt **pp = &st->grave, *s; (s = *pp) != NULL;) {
    if (!s->gdone[w->index]) {
      if (gone || reap_one(w, s)) {
        s->gdone[w->index] = 1;
        s->gleft--;
      } else {
        w->grave_left = 1;
      }
    }
    if (s->gleft == 0) {
      *pp = s->gnext;
      s->gnext = freed;
      freed = s;
    } else {
      pp = &s->gnext;
    }
  }
  pthread_mutex_unlock(&st->gmu);
  for (actio_db_stmt *s; (s = freed) != NULL;) {
    freed = s->gnext;
    actio__db_stmt_unref(s); /* the graveyard's reference */
  }
}

void actio__db_stmt_reap(db_worker *w) {
  /* Acquire: the destroyed statements are seen with the gen that counts
   * them. */
  unsigned gen = atomic_load_explicit(&w->st->grave_gen, memory_order_acquire);
  if (gen == w->grave_gen && !w->grave_left)
    return; /* the usual case, at every wait */
  w->grave_gen = gen;
  w->grave_left = 0;
  grave_walk(w, 0);
}

void actio__db_stmt_reaper_gone(db_worker *w) { grave_walk(w, 1); }

unsigned actio__db_graves(actio_actor *db) {
  db_state *st = actio__db_state(db);
  unsigned n = 0;
  if (st == NULL)
    return 0;
  pthread_mutex_lock(&st->gmu);
  for (const actio_db_stmt *s = st->grave; s != NULL; s = s->gnext)
    n++;
  pthread_mutex_unlock(&st->gmu);
  return n;
}

/* ---- the API ---- */

/* Under a pin on db. */
static int prepare(actio_actor *db, const char *sql, int nparams, const uint32_t *types,
                   actio_future **out) {
  db_state *st = actio__db_state(db);
  if (st == NULL || sql == NULL || out == NULL || nparams < 0 || nparams > 65535)
    return ACTIO_EINVAL;
  actio_db_stmt *s = calloc(1, sizeof *s);
  if (s == NULL)
    return ACTIO_ENOMEM;
  s->sql = strdup(sql);
  s->on = calloc(st->o.max_connections, sizeof *s->on);
  s->gdone = calloc(st->o.workers, 1);
  if (types != NULL && nparams > 0 &&
      (s->ptypes = malloc(sizeof *s->ptypes * (size_t)nparams)) != NULL)
    memcpy(s->ptypes, types, sizeof *s->ptypes * (size_t)nparams);
  actio_db_request q = {.sql = sql};
  db_req *r = actio__db_req_new_ext(K_PREPARE, &q, sizeof(db_prepare_head));
  if (s->sql == NULL || s->on == NULL || s->gdone == NULL || r == NULL ||
      (types != NULL && nparams > 0 && s->ptypes == NULL)) {
    free(r);
    free(s->sql);
    free(s->on);
    free(s->gdone);
    free(s->ptypes);
    free(s);
    return ACTIO_ENOMEM;
  }
  atomic_init(&s->refs, 1); /* the request's, then the caller's */
  s->st = st;
  s->nparams = nparams;
  /* Relaxed: a unique number is all it needs. */
  unsigned long long n =
      atomic_fetch_add_explicit(&st->stmt_names, 1, memory_order_relaxed) + 1;
  snprintf(s->name, sizeof s->name, "actio_s%llu", n);
  actio__actor_ref(st->self); /* st stays while the statement does */
  ((db_prepare_head *)actio__db_req_ext(r))->stmt = s;
  r->nocache = 1;
  return actio__db_submit(db, st, r, 0, out);
}

int actio_db_prepare(actio_actor *db, const char *sql, int nparams, const uint32_t *types,
                     actio_future **out) {
  if (db == NULL)
    return ACTIO_EINVAL;
  actio__actor_pin(db);
  int rc = prepare(db, sql, nparams, types, out);
  actio__actor_unpin(db);
  return rc;
}

void actio_db_stmt_destroy(actio_db_stmt *s) {
  if (s == NULL)
    return;
  db_state *st = s->st;
  /* Release: a worker that sees it dead prepares it nowhere again. */
  int was = atomic_exchange_explicit(&s->dead, 1, memory_order_release);
  /* Destroyed twice while it lives: a caller's bug, stopped as a future
   * released twice is; a release build lets the first stand. */
  ACTIO__ASSERT(!was);
  if (was)
    return;
  pthread_mutex_lock(&st->gmu);
  unsigned left = 0;
  for (unsigned i = 0; i < st->o.workers; i++) {
    s->gdone[i] = st->stopped[i];
    left += !st->stopped[i];
  }
  s->gleft = left;
  if (left > 0) { /* the caller's reference becomes the graveyard's */
    s->gnext = st->grave;
    st->grave = s;
    /* Release: the workers that see the new gen see it in the list. */
    atomic_fetch_add_explicit(&st->grave_gen, 1, memory_order_release);
  }
  pthread_mutex_unlock(&st->gmu);
  if (left == 0)
    actio__db_stmt_unref(s);
}

int actio_db_stmt_params(const actio_db_stmt *s) { return s ? s->nparams : 0; }

uint32_t actio_db_stmt_param_type(const actio_db_stmt *s, int i) {
  return s && s->ptypes && i >= 0 && i < s->nparams ? s->ptypes[i] : 0;
}

int actio_db_stmt_columns(const actio_db_stmt *s) { return s ? s->ncols : 0; }

const char *actio_db_stmt_column_name(const actio_db_stmt *s, int col) {
  return s && col >= 0 && col < s->ncols ? s->cnames[col] : NULL;
}

uint32_t actio_db_stmt_column_type(const actio_db_stmt *s, int col) {
  return s && col >= 0 && col < s->ncols ? s->ctypes[col] : 0;
}

const char *actio_db_stmt_name(const actio_db_stmt *s) { return s ? s->name : NULL; }

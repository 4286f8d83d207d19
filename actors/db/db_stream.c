/* db_stream.c: a query's rows streamed to a consumer in batches (libpq's
 * single-row mode; chunked mode with libpq 17), on a connection taken out
 * of the pipeline for the time, with the consumer's backpressure future
 * holding the rows back in the server's socket. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "actors/core/actor_internal.h"
#include "actors/core/future_internal.h"
#include "actors/db/db_internal.h"

enum { DEFAULT_BATCH = 256, MAX_BATCH = 65536 };

/* A stream's ext, first in its request's block. */
typedef struct stream_ext {
  db_stream_head h;    /* h.chunk: rows per call */
  actio_db_stream_fn fn;
  void *arg;
  actio_future *ready; /* the consumer's backpressure, or NULL */
  int parked;          /* rows stop until ready completes */
  int gone;            /* the consumer failed or the stream was cancelled:
                          the rest of the rows are dropped */
  int fail_rc;         /* the consumer's ready failed with it: give up */
  size_t nres, nrows;  /* gathered for the next call */
  actio__pg_result *res[]; /* cap */
} stream_ext;

struct actio_db_rowset {
  actio__pg_result *const *res;
  size_t nres, nrows;
};

/* ---- the worker's side ---- */

static void drop_rows(stream_ext *s) {
  for (size_t i = 0; i < s->nres; i++)
    actio__pg_result_free(s->res[i]);
  s->nres = s->nrows = 0;
}

/* The consumer is gone (rc < 0: it failed with rc; 0: the stream was
 * cancelled): the query is cancelled on the server and its rows read and
 * dropped, so the connection comes back clean. */
static void give_up(db_worker *w, conn *c, db_req *r, int rc) {
  stream_ext *s = actio__db_req_ext(r);
  s->gone = 1;
  s->parked = 0;
  actio__bell_forget(w->bell, &s->ready);
  drop_rows(s);
  if (rc < 0)
    actio_future_fail(r->reply, rc, "stream: the row consumer failed: %s",
                      actio_strerror(rc));
  atomic_store_explicit(&r->cancel, 1, memory_order_relaxed); /* ours alone */
  if (c->cancel == NULL && !r->cancel_sent)
    actio__db_cancel_on_server(w, c, r);
}

/* Hands the rows gathered to the consumer. */
static void deliver(db_worker *w, conn *c, db_req *r) {
  stream_ext *s = actio__db_req_ext(r);
  actio_db_rowset v = {s->res, s->nres, s->nrows};
  actio_future *ready = NULL;
  int rc = s->fn(s->arg, &v, &ready);
  drop_rows(s);
  if (rc < 0) {
    actio_future_unref(ready);
    give_up(w, c, r, rc);
    return;
  }
  if (ready == NULL)
    return;
  if (actio_future_is_done(ready)) {
    int st = actio_future_status(ready);
    actio_future_unref(ready);
    if (st != 0)
      give_up(w, c, r, st);
    return;
  }
  s->ready = ready;
  s->parked = 1;
  /* Wakes this worker when ready completes; without memory for that, the
   * wait still looks at ready each time round. */
  actio__bell_ring_on(w->bell, ready);
}

void actio__db_stream_pump(db_worker *w, conn *c) {
  db_req *r = c->stream;
  stream_ext *s = actio__db_req_ext(r);
  if (!s->gone && (s->fail_rc != 0 || atomic_load_explicit(&r->cancel, memory_order_acquire)))
    give_up(w, c, r, s->fail_rc);
  while (!s->parked) {
    actio__pg_result *res = NULL;
    int n = actio__pg_conn_stream_get(c->pc, &res);
    if (n > 0) {
      if (s->gone) {
        actio__pg_result_free(res);
        continue;
      }
      s->res[s->nres++] = res;
      s->nrows += (size_t)n;
      if (s->nres == s->h.chunk || s->nrows >= s->h.chunk)
        deliver(w, c, r);
      continue;
    }
    /* Nothing more for now, or the end: what came goes over now. */
    if (s->nres > 0)
      deliver(w, c, r);
    return;
  }
}

int actio__db_stream_waiting(conn *c) {
  if (c->stream == NULL)
    return 0;
  stream_ext *s = actio__db_req_ext(c->stream);
  return s->parked && !actio_future_is_done(s->ready) &&
         !atomic_load_explicit(&c->stream->cancel, memory_order_acquire);
}

int actio__db_stream_resume(db_worker *w, conn *c) {
  stream_ext *s = actio__db_req_ext(c->stream);
  if (!s->parked || actio__db_stream_waiting(c))
    return 0;
  if (actio_future_is_done(s->ready))
    s->fail_rc = actio_future_status(s->ready); /* failed: give up */
  actio__bell_forget(w->bell, &s->ready);
  s->parked = 0;
  return 1;
}

void actio__db_stream_ended(db_worker *w, db_req *r, int rc, actio__pg_result *res,
                            const actio__pg_error *err, const char *msg) {
  stream_ext *s = actio__db_req_ext(r);
  conn *c = r->c;
  drop_rows(s); /* the connection was lost with rows gathered */
  actio__bell_forget(w->bell, &s->ready);
  if (c != NULL) {
    c->stream = NULL;
    if (c->state != C_EMPTY)
      actio__db_conn_release(c);
  }
  actio__db_req_end(r, rc, res, err, msg);
}

/* ---- the caller's future ---- */

/* A stream's caller holds a future of its own, not the request's: the
 * request's is held by the worker, the actor's metrics and its deadlines
 * until it completes, so no count on it tells that the caller dropped
 * it. The caller's, which nobody else holds, follows the request's
 * (forward); its cancel, or its last reference dropped, cancels the
 * request's, which ends the query on the server. */
typedef struct stream_link {
  pthread_mutex_t mu;
  int refs;           /* the caller's future's and forward's (under mu) */
  actio_future *req;  /* the request's, until forward ran (which holds it) */
  actio_future *user; /* the caller's, a plain pointer until it is freed */
} stream_link;

static void link_unref(stream_link *l) {
  pthread_mutex_lock(&l->mu);
  int last = --l->refs == 0;
  pthread_mutex_unlock(&l->mu);
  if (last) {
    pthread_mutex_destroy(&l->mu);
    free(l);
  }
}

/* Cancels the request's future unless it completed. */
static void link_cancel(stream_link *l) {
  pthread_mutex_lock(&l->mu);
  actio_future *f = l->req;
  if (f != NULL)
    actio_future_ref(f); /* alive: forward has not run */
  pthread_mutex_unlock(&l->mu);
  if (f != NULL) {
    actio_future_cancel(f);
    actio_future_unref(f);
  }
}

static void user_cancelled(void *l) { link_cancel(l); }

/* The caller's future's last reference is gone (its on_free hook). */
static void user_gone(void *arg) {
  stream_link *l = arg;
  pthread_mutex_lock(&l->mu);
  l->user = NULL;
  pthread_mutex_unlock(&l->mu);
  link_cancel(l);
  link_unref(l);
}

/* The request's future completed: so does the caller's, if it is still
 * there (a reference taken under the lock its free hook takes). */
static void forward(actio_future *req, void *arg) {
  stream_link *l = arg;
  pthread_mutex_lock(&l->mu);
  l->req = NULL;
  actio_future *u = l->user;
  if (u != NULL && !actio__future_try_ref(u))
    u = NULL; /* being freed: its hook waits for the lock */
  pthread_mutex_unlock(&l->mu);
  if (u != NULL) {
    actio__db_forward(u, req);
    actio_future_unref(u);
  }
  link_unref(l);
}

/* Makes the caller's future following req (a reference this takes over).
 * 0, or ACTIO_ENOMEM with req cancelled. */
static int follow(actio_future *req, actio_future **out) {
  stream_link *l = calloc(1, sizeof *l);
  actio_future *u = NULL;
  if (l == NULL || actio_future_create(&u) != 0 ||
      actio__future_on_free(u, user_gone, l) != 0) {
    actio_future_unref(u); /* no hook yet */
    free(l);
    actio_future_cancel(req);
    actio_future_unref(req);
    return ACTIO_ENOMEM;
  }
  pthread_mutex_init(&l->mu, NULL);
  l->refs = 2;
  l->req = req;
  l->user = u;
  actio_future_on_cancel(u, user_cancelled, l); /* a new future: 0 */
  if (actio_future_on_done(req, forward, l) != 0) {
    pthread_mutex_lock(&l->mu);
    l->req = NULL;
    l->refs--; /* forward's */
    pthread_mutex_unlock(&l->mu);
    actio_future_cancel(req);
    actio_future_unref(req);
    actio_future_unref(u); /* its hook drops the last reference */
    return ACTIO_ENOMEM;
  }
  actio_future_unref(req); /* the request, its metrics and forward hold it */
  *out = u;
  return 0;
}

/* ---- the API ---- */

/* Under a pin on db. */
static int stream(actio_actor *db, const actio_db_request *req, size_t batch_rows,
                  actio_db_stream_fn fn, void *arg, actio_future **out) {
  db_state *st = actio__db_state(db);
  if (st == NULL || out == NULL || fn == NULL || batch_rows > MAX_BATCH)
    return ACTIO_EINVAL;
  int rc = actio__db_request_check(req);
  if (rc != 0)
    return rc;
  size_t cap = batch_rows ? batch_rows : DEFAULT_BATCH;
  db_req *r = actio__db_req_new_ext(K_STREAM, req,
                                    sizeof(stream_ext) + cap * sizeof(actio__pg_result *));
  if (r == NULL)
    return ACTIO_ENOMEM;
  stream_ext *s = actio__db_req_ext(r);
  s->fn = fn;
  s->arg = arg;
  s->h.chunk = cap;
  actio_future *f;
  rc = actio__db_submit(db, st, r, req->timeout_ms, &f);
  return rc != 0 ? rc : follow(f, out);
}

int actio_db_stream(actio_actor *db, const actio_db_request *req, size_t batch_rows,
                    actio_db_stream_fn fn, void *arg, actio_future **out) {
  if (db == NULL)
    return ACTIO_EINVAL;
  actio__actor_pin(db);
  int rc = stream(db, req, batch_rows, fn, arg, out);
  actio__actor_unpin(db);
  return rc;
}

size_t actio_db_rowset_count(const actio_db_rowset *rows) {
  return rows ? rows->nrows : 0;
}

const actio_db_result *actio_db_rowset_at(const actio_db_rowset *rows, size_t i,
                                        size_t *row) {
  if (rows == NULL || row == NULL || i >= rows->nrows)
    return NULL;
  if (rows->nres == rows->nrows) { /* single-row mode: one result a row */
    *row = 0;
    return (const actio_db_result *)(const void *)rows->res[i];
  }
  for (size_t k = 0; k < rows->nres; k++) { /* chunks */
    size_t n = actio__pg_result_rows(rows->res[k]);
    if (i < n) {
      *row = i;
      return (const actio_db_result *)(const void *)rows->res[k];
    }
    i -= n;
  }
  return NULL;
}

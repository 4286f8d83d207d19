/* db_pool.c: a worker's share of the pool: opening and closing its
 * connections, placing requests on them (pipelined, or one at a time for
 * the exclusive ones), and the cancel requests sent to the server from a
 * thread of their own. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/core/actor_internal.h"
#include "actors/db/db_internal.h"
#include "base/clock.h"
#include "base/debug.h"
#include "base/park.h"

/* ---- the canceller thread ---- */

void actio__db_job_unref(cancel_job *j) {
  if (j == NULL || !actio__db_unref(&j->refs))
    return;
  actio__pg_cancel_free(j->pc);
  actio__bell_unref(j->bell);
  free(j);
}

/* Runs before each cancel request is sent (actio__db_set_cancel_hook). */
static _Atomic(actio__db_cancel_hook_fn) cancel_hook;

void actio__db_set_cancel_hook(actio__db_cancel_hook_fn fn) {
  /* Release: the canceller that calls it sees what the test set up. */
  atomic_store_explicit(&cancel_hook, fn, memory_order_release);
}

/* The canceller: a thread and its queue of cancel requests, owned by the
 * pool and by the thread; whichever lets go last frees it. The pool lets go
 * at its end, after waiting up to its connect timeout for the queue to be
 * sent: PQcancel has no timeout of its own, and a server unreachable now
 * would otherwise hold the pool's end for as long as the kernel tries to
 * connect (minutes), a cancel after another. */
struct actio__db_canceller {
  pthread_mutex_t mu; /* guards all below */
  pthread_cond_t cv;  /* a job or the stop, for the thread; its end, for stop */
  cancel_job *jobs;
  int stop;           /* the pool let go: end once the queue is empty */
  int ended;          /* the thread sent its last request */
  int owners;         /* the pool and the thread */
};

/* Canceller threads alive, for tests (actio__db_cancellers). Relaxed: a
 * count, nothing published with it. */
static _Atomic unsigned cancellers;

unsigned actio__db_cancellers(void) {
  return atomic_load_explicit(&cancellers, memory_order_relaxed);
}

static void canceller_let_go(actio__db_canceller *k) {
  int last = --k->owners == 0;
  pthread_mutex_unlock(&k->mu);
  if (!last)
    return;
  pthread_mutex_destroy(&k->mu);
  pthread_cond_destroy(&k->cv);
  free(k);
}

static void *canceller_main(void *arg) {
  actio__db_canceller *k = arg;
  actio__thread_name("db-cancel", -1);
  pthread_mutex_lock(&k->mu);
  for (;;) {
    while (k->jobs == NULL && !k->stop)
      pthread_cond_wait(&k->cv, &k->mu);
    if (k->jobs == NULL)
      break;
    cancel_job *j = k->jobs;
    k->jobs = j->next;
    pthread_mutex_unlock(&k->mu);
    char err[256];
    /* Acquire: pairs with actio__db_set_cancel_hook's release. */
    actio__db_cancel_hook_fn hook = atomic_load_explicit(&cancel_hook, memory_order_acquire);
    if (hook != NULL)
      hook();
    /* Failing is fine: the query ends anyway. */
    actio__pg_cancel_send(j->pc, err, sizeof err);
    atomic_store_explicit(&j->done, 1, memory_order_release);
    actio__bell_ring(j->bell);
    actio__db_job_unref(j);
    pthread_mutex_lock(&k->mu);
  }
  k->ended = 1;
  pthread_cond_broadcast(&k->cv);
  canceller_let_go(k);
  atomic_fetch_sub_explicit(&cancellers, 1, memory_order_relaxed);
  return NULL;
}

uint64_t actio__db_held(actio_actor *db) {
  db_state *st = actio__db_state(db);
  /* Relaxed: a count, nothing published with it. */
  return st != NULL ? atomic_load_explicit(&st->held, memory_order_relaxed) : 0;
}

/* Starts the canceller thread, detached: it may outlive the pool. */
int actio__db_canceller_start(db_state *st) {
  actio__db_canceller *k = calloc(1, sizeof *k);
  if (k == NULL)
    return ACTIO_ENOMEM;
  pthread_mutex_init(&k->mu, NULL);
  actio__cond_init(&k->cv);
  k->owners = 2;
  atomic_fetch_add_explicit(&cancellers, 1, memory_order_relaxed);
  pthread_t t;
  pthread_attr_t attr;
  int rc = -pthread_attr_init(&attr);
  if (rc == 0) {
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    rc = -pthread_create(&t, &attr, canceller_main, k);
    pthread_attr_destroy(&attr);
  }
  if (rc != 0) {
    atomic_fetch_sub_explicit(&cancellers, 1, memory_order_relaxed);
    pthread_mutex_destroy(&k->mu);
    pthread_cond_destroy(&k->cv);
    free(k);
    return rc;
  }
  st->canceller = k;
  return 0;
}

void actio__db_canceller_stop(db_state *st) {
  actio__db_canceller *k = st->canceller;
  int64_t until = actio__now_ns() + (int64_t)st->o.connect_timeout_ms * ACTIO__NS_PER_MS;
  pthread_mutex_lock(&k->mu);
  k->stop = 1;
  pthread_cond_broadcast(&k->cv);
  while (!k->ended && actio__cond_wait_until(&k->cv, &k->mu, until) != ETIMEDOUT)
    ;
  canceller_let_go(k);
}

/* Hands j to the canceller thread, which sends it and rings j's bell. */
static void cancel_queue(db_state *st, cancel_job *j) {
  j->sends++;
  atomic_fetch_add_explicit(&st->cancels, 1, memory_order_relaxed);
  actio__db_canceller *k = st->canceller;
  pthread_mutex_lock(&k->mu);
  j->next = k->jobs;
  k->jobs = j;
  pthread_cond_broadcast(&k->cv);
  pthread_mutex_unlock(&k->mu);
}

/* Asks the server to cancel what c runs now: r, the head unit. */
void actio__db_cancel_on_server(db_worker *w, conn *c, db_req *r) {
  ACTIO__ASSERT(c->cancel == NULL); /* one at a time per connection */
  cancel_job *j = calloc(1, sizeof *j);
  if (j == NULL || (j->pc = actio__pg_cancel_new(c->pc)) == NULL) {
    free(j);
    return; /* the query still ends; only later */
  }
  atomic_init(&j->refs, 2);
  j->bell = w->bell;
  actio__bell_ref(w->bell);
  c->cancel = j;
  c->cancel_for = r;
  r->cancel_sent = 1;
  /* Should r be over before the request lands, it lands on one of these;
   * nothing new goes on c until it did. */
  for (db_req *s = w->sent; s != NULL; s = s->next)
    if (s->c == c && s != r)
      s->stray = 1;
  cancel_queue(w->st, j);
}

int64_t actio__db_cancel_again(db_worker *w, conn *c, int64_t now) {
  cancel_job *j = c->cancel;
  ACTIO__ASSERT(j != NULL && c->cancel_for != NULL);
  if (j->again_ns == 0) { /* just delivered */
    j->again_ns = now + actio__backoff_ms(DB_CANCEL_AGAIN_FIRST_MS, DB_CANCEL_AGAIN_LAST_MS,
                                          j->sends) * ACTIO__NS_PER_MS;
    return j->again_ns;
  }
  if (now < j->again_ns)
    return j->again_ns;
  j->again_ns = 0;
  /* Relaxed: only this worker reads it, and the canceller's store of 1
   * comes after it takes the job from the queue, under the queue's lock. */
  atomic_store_explicit(&j->done, 0, memory_order_relaxed);
  actio__db_ref(&j->refs); /* the canceller's */
  cancel_queue(w->st, j);
  return INT64_MAX;
}

/* The unit at c's head cancelled by its caller, with no request out for
 * it yet: asks the server now. */
void actio__db_cancel_head(db_worker *w, conn *c) {
  db_req *h = c->state == C_READY ? actio__pg_conn_head(c->pc) : NULL;
  /* Acquire: pairs with on_cancel's release. */
  if (h != NULL && c->cancel == NULL && !h->cancel_sent &&
      atomic_load_explicit(&h->cancel, memory_order_acquire))
    actio__db_cancel_on_server(w, c, h);
}

/* ---- connections ---- */

int64_t actio__db_retry_at(const db_state *st, int fails) {
  ACTIO__ASSERT(fails > 0);
  int64_t at = actio__deadline_ns(actio__backoff_ms(
      st->o.reconnect_min_ms, st->o.reconnect_max_ms, (unsigned)fails));
  return at < 0 ? INT64_MAX : at; /* a pause beyond any clock: never */
}

/* A pool hook's result: 0, or its negative return; 0 without one. */
static int call_hook(db_worker *w, int (*hook)(void *, const actio_db_conn_info *),
                     const actio_db_conn_info *info) {
  if (hook == NULL)
    return 0;
  int rc = hook(w->st->o.hook_arg, info);
  return rc < 0 ? rc : 0;
}

static int usable(const conn *c) {
  return c->state == C_READY && c->txn == NULL && c->copy == NULL &&
         !c->simple && c->cancel == NULL && !c->doomed && c->init == INIT_NONE;
}

/* Closes c: its units and bound requests fail with rc and msg. */
void actio__db_conn_close(db_worker *w, conn *c, int rc, const char *msg) {
  if (c->state == C_EMPTY)
    return;
  ACTIO__ASSERT(c->pc != NULL);
  if (c->state == C_READY && rc != 0)
    atomic_fetch_add_explicit(&w->st->failures, 1, memory_order_relaxed);
  actio__db_conn_give_back(w, c, 1);
  actio__pg_conn *pc = c->pc;
  c->pc = NULL;
  c->state = C_EMPTY;
  if (c != &w->lc)
    w->at_min = 0; /* the next dispatch counts again */
  actio__pg_conn_destroy(pc, w->st->on_unit, w, msg); /* fails the units */
  while (c->q_head != NULL) {
    db_req *r = c->q_head;
    actio__db_q_unlink(&c->q_head, &c->q_tail, r);
    actio__db_req_fail(r, rc ? rc : ACTIO_ECONN, msg);
  }
  if (c->copy != NULL) {
    actio_db_copy *cp = c->copy;
    c->copy = NULL;
    cp->c = NULL;
    actio__bell_forget(w->bell, &cp->ready);
    while (cp->q_head != NULL) {
      db_req *r = cp->q_head;
      actio__db_q_unlink(&cp->q_head, &cp->q_tail, r);
      actio__db_req_fail(r, ACTIO_ECONN, msg);
    }
    actio__db_copy_unref(cp);
  }
  if (c->txn != NULL) {
    c->txn->c = NULL; /* its later requests fail */
    actio__db_txn_unref(c->txn);
    c->txn = NULL;
  }
  actio__db_job_unref(c->cancel);
  c->cancel = NULL;
  c->cancel_for = NULL;
  c->simple = c->doomed = c->init = c->fail_rc = 0;
  free(c->fail_msg);
  c->fail_msg = NULL;
  if (c == &w->lc && rc != 0 && !w->stopping) { /* restore LISTEN later */
    w->lost = 1;
    w->lretry_ns = actio__db_retry_at(w->st, ++w->lfails);
  }
}

/* A pooled connection's notice, to the caller's on_notice. */
static void notice(void *arg, const actio__pg_error *e) {
  const actio_db_opts *o = arg;
  actio_db_notice n = {
      .severity = e->severity ? e->severity : "",
      .sqlstate = e->sqlstate ? e->sqlstate : "",
      .message = e->message ? e->message : e->full ? e->full : "",
      .detail = e->detail,
      .hint = e->hint,
  };
  o->on_notice(o->notice_arg, &n);
}

static void conn_open(db_worker *w, conn *c) {
  ACTIO__ASSERT(c->state == C_EMPTY && c->txn == NULL && c->copy == NULL);
  char err[256];
  const actio_db_opts *o = &w->st->o;
  int rc = actio__pg_conn_start(&c->pc, o->dsn,
                                o->no_statement_cache ? 0 : o->statement_cache,
                                err, sizeof err);
  c->since_ns = actio__now_ns();
  /* Relaxed: a unique number is all it needs. */
  c->serial = atomic_fetch_add_explicit(&w->st->serials, 1, memory_order_relaxed) + 1;
  if (rc == 0) {
    if (o->on_notice != NULL)
      actio__pg_conn_on_notice(c->pc, notice, (void *)o);
    c->state = C_CONNECTING;
    return;
  }
  actio__db_connect_failed(w, c, rc, err);
}

unsigned actio__db_count_ready(const db_worker *w) {
  unsigned n = 0;
  for (unsigned i = 0; i < w->nconns; i++)
    n += w->conns[i].state == C_READY;
  return n;
}

/* A connect failed: back off; with no connection left to serve them, the
 * waiting requests fail now rather than at their acquire timeout. */
void actio__db_connect_failed(db_worker *w, conn *c, int rc, const char *err) {
  char msg[512];
  snprintf(msg, sizeof msg, "connecting to PostgreSQL: %s", err);
  actio__db_conn_close(w, c, rc, msg);
  atomic_fetch_add_explicit(&w->st->failures, 1, memory_order_relaxed);
  w->fails++;
  w->retry_ns = actio__db_retry_at(w->st, w->fails);
  if (actio__db_count_ready(w) > 0)
    return;
  if (w->down_since_ns == 0)
    w->down_since_ns = actio__now_ns();
  for (unsigned i = 0; i < w->nconns; i++)
    if (w->conns[i].state == C_CONNECTING)
      return; /* another attempt may still succeed */
  while (w->pend_head != NULL) {
    db_req *r = w->pend_head;
    actio__db_pend_unlink(w, r);
    actio__db_req_fail(r, rc, msg);
  }
}

/* ---- sending ---- */

/* Sends r on c as a pipelined unit. 0; ACTIO_ENOMEM: r was not sent, c
 * is fine; or ACTIO_ECONN: c is broken. */
static int send_unit(db_worker *w, conn *c, db_req *r) {
  int rc;
  if (r->kind == K_SCRIPT || r->kind == K_COPY) {
    rc = actio__pg_conn_send_simple(c->pc, r->sql, r->kind == K_COPY, r);
  } else if (r->kind == K_BATCH) {
    const db_batch_head *b = actio__db_req_ext(r);
    rc = actio__pg_conn_send_batch(c->pc, b->n, actio__db_batch_get,
                                   actio__db_batch_each, r);
  } else if (r->kind == K_PREPARE) {
    db_prepare_head *h = actio__db_req_ext(r);
    actio_db_stmt *ps = h->stmt;
    /* Sent again after a stray cancel that met its Describe: its Parse
     * went through on this session, which would refuse another (42P05). */
    rc = actio__pg_conn_send_describe(c->pc, ps->name, ps->sql, ps->nparams, ps->ptypes,
                                      ps->on[c->slot] != c->serial, r, &h->parsed);
    if (rc == 0)
      ps->on[c->slot] = c->serial;
  } else {
    db_params *m = r->more;
    actio_db_stmt *ps = m ? m->stmt : NULL;
    actio__pg_query q = {
        .sql = r->sql,
        .nparams = r->nparams,
        .types = m ? m->types : NULL,
        .values = r->values,
        .lengths = m ? m->lengths : NULL,
        .formats = m ? m->formats : NULL,
        .binary_results = r->binary_results,
        .cache = !r->nocache && !w->st->o.no_statement_cache,
    };
    /* A prepared statement runs by its name, prepared on this session at
     * its first use here; once destroyed (or in a stream, which runs
     * unnamed) it runs as plain SQL, never prepared again. */
    if (m != NULL) /* this send's, not a send before a retry's */
      m->parse = m->parsed = 0;
    if (ps != NULL && r->kind != K_STREAM &&
        !atomic_load_explicit(&ps->dead, memory_order_acquire)) {
      q.name = ps->name;
      q.prepare = m->parse = ps->on[c->slot] != c->serial;
      q.parsed = &m->parsed;
      q.cache = 0;
    }
    rc = r->kind == K_STREAM
             ? actio__pg_conn_send_stream(
                   c->pc, &q, ((const db_stream_head *)actio__db_req_ext(r))->chunk, r)
             : actio__pg_conn_send(c->pc, &q, r);
    if (rc == 0 && q.prepare)
      ps->on[c->slot] = c->serial;
  }
  if (rc != 0)
    return rc;
  r->c = c;
  actio__request_begin(w->self, r->reply);
  if (r->kind == K_SCRIPT || r->kind == K_COPY || r->kind == K_STREAM)
    c->simple = 1;
  if (r->kind == K_STREAM)
    c->stream = r;
  actio__db_sent_add(w, r);
  return 0;
}

/* Why a request failed that send_unit could not send for want of memory. */
static const char unsent[] = "sending the query: out of memory";

void actio__db_conn_broken(db_worker *w, conn *c) {
  char msg[300], err[256];
  actio__pg_conn_message(c->pc, err, sizeof err);
  snprintf(msg, sizeof msg, "PostgreSQL connection lost: %s", err);
  actio__db_conn_close(w, c, ACTIO_ECONN, msg);
}

/* Sends what is bound to c (a transaction's queries) while it can. */
void actio__db_conn_pump(db_worker *w, conn *c) {
  /* The caller may have cancelled the unit at the head before it sent
   * what waits here, both taken in one wake-up (before reap_cancelled
   * saw the cancel): the request goes out first, and what waits, once it
   * was delivered. Sent before, it could take the request's second
   * signal (PostgreSQL before 17 signals the backend, then its process
   * group). */
  if (c->q_head != NULL)
    actio__db_cancel_head(w, c);
  while (c->q_head != NULL && c->state == C_READY && !c->simple && !c->doomed) {
    if (c->cancel != NULL) { /* again once it is over (timers) */
      /* Relaxed: a count for tests. */
      atomic_fetch_add_explicit(&w->st->held, 1, memory_order_relaxed);
      return;
    }
    db_req *r = c->q_head;
    int reset = (r->kind == K_END || r->kind == K_TDROP) && r->txn->session;
    /* The simple protocol waits for the pipeline to empty; so does a
     * session's reset, to see whether it is left inside a transaction. */
    if ((r->kind == K_COPY || reset) && actio__pg_conn_inflight(c->pc) > 0)
      return;
    if (reset && !actio__pg_conn_txn_idle(c->pc)) {
      /* Rolled back first: DISCARD ALL cannot run inside a transaction.
       * Should this fail, so does the DISCARD, and the connection closes. */
      actio__pg_query rollback = {.sql = "ROLLBACK"};
      if (actio__pg_conn_send(c->pc, &rollback, NULL) != 0) {
        actio__db_conn_broken(w, c);
        return;
      }
    }
    actio__db_q_unlink(&c->q_head, &c->q_tail, r);
    if (r->kind == K_COPY) {
      ACTIO__ASSERT(c->copy == NULL && r->copy->c == NULL);
      c->copy = r->copy;
      actio__db_ref(&r->copy->refs);
      r->copy->c = c;
    }
    int rc = send_unit(w, c, r);
    if (rc != 0) {
      if (r->kind == K_COPY) {
        actio__db_copy_unref(c->copy);
        c->copy = NULL;
        r->copy->c = NULL;
      }
      if (rc == ACTIO_ENOMEM) { /* r alone fails */
        actio__db_req_fail(r, rc, unsent);
        continue;
      }
      actio__db_q_push(&c->q_head, &c->q_tail, r); /* failed with the rest */
      actio__db_conn_broken(w, c);
      return;
    }
  }
}

/* Places pending requests on connections, opening more as needed. */
void actio__db_dispatch(db_worker *w) {
  db_state *st = w->st;
  unsigned depth = st->o.pipeline_depth;
  unsigned unplaced = 0;
  for (db_req *r = w->pend_head, *next; r != NULL; r = next) {
    next = r->next;
    /* A batch is one pipelined unit like a query; the others leave the
     * pipeline. */
    int exclusive = r->kind != K_QUERY && r->kind != K_BATCH && r->kind != K_PREPARE;
    conn *best = NULL;
    size_t best_n = 0;
    for (unsigned i = 0; i < w->nconns; i++) {
      conn *c = &w->conns[i];
      if (!usable(c))
        continue;
      size_t n = actio__pg_conn_inflight(c->pc);
      if (best == NULL || n < best_n) {
        best = c;
        best_n = n;
        if (n == 0)
          break; /* none is less busy */
      }
    }
    if (best == NULL || (exclusive ? best_n > 0 : best_n >= depth)) {
      unplaced++;
      continue;
    }
    if (best_n > 0)
      unplaced++; /* pipelined for now; a connection more would help */
    actio__db_pend_unlink(w, r);
    ACTIO__ASSERT(best->txn == NULL && best->copy == NULL); /* usable */
    if (r->kind == K_BEGIN) {
      ACTIO__ASSERT(r->txn->c == NULL);
      best->txn = r->txn;
      actio__db_ref(&r->txn->refs);
      r->txn->c = best;
      if (r->txn->bell == NULL) { /* where its requests will go */
        r->txn->bell = w->bell;
        actio__bell_ref(w->bell);
      }
      actio_db_conn_info info = {
          .backend_pid = actio__pg_conn_backend_pid(best->pc),
          .server_version = actio__pg_conn_server_version(best->pc),
      };
      int hrc = call_hook(w, st->o.on_acquire, &info);
      if (hrc == 0)
        best->held = info;
      if (hrc != 0 || r->txn->session) {
        /* Nothing to send: a session has its connection now, and one the
         * hook refused is closed. It ends as a BEGIN would. */
        r->c = best;
        best->doomed = hrc != 0;
        actio__db_sent_add(w, r);
        st->on_unit(w, r, hrc < 0 ? hrc : 0, NULL, NULL,
                    "the pool's on_acquire hook refused the connection");
        if (best->doomed && actio__pg_conn_inflight(best->pc) == 0)
          actio__db_conn_close(w, best, 0, "refused by on_acquire");
        continue;
      }
    } else if (r->kind == K_COPY) {
      ACTIO__ASSERT(r->copy->c == NULL);
      best->copy = r->copy;
      actio__db_ref(&r->copy->refs);
      r->copy->c = best;
      if (r->copy->bell == NULL) {
        r->copy->bell = w->bell;
        actio__bell_ref(w->bell);
      }
    }
    /* From the second unit on, hold the segments back: the server gets
     * the batch at once, and wakes once. */
    if (best->round++ == 1)
      actio__pg_conn_cork(best->pc);
    int rc = send_unit(w, best, r);
    if (rc != 0) {
      if (r->kind == K_BEGIN) {
        r->txn->c = NULL;
        actio__db_txn_unref(best->txn);
        best->txn = NULL;
      } else if (r->kind == K_COPY) {
        r->copy->c = NULL;
        actio__db_copy_unref(best->copy);
        best->copy = NULL;
      }
      if (rc == ACTIO_ENOMEM) { /* r alone fails */
        actio__db_req_fail(r, rc, unsent);
        continue;
      }
      actio__db_pend_push(w, r); /* for another connection */
      actio__db_conn_broken(w, best);
    }
  }
  for (unsigned i = 0; i < w->nconns; i++) {
    conn *c = &w->conns[i];
    if (c->round > 1 && c->state == C_READY && actio__pg_conn_uncork(c->pc) != 0)
      actio__db_conn_broken(w, c);
    c->round = 0;
  }
  /* Open connections: up to min, and one per request left waiting. */
  if (unplaced == 0 && w->at_min)
    return; /* the usual case, at every wait: no clock read, no walk */
  int64_t now = actio__now_ns();
  if (now < w->retry_ns)
    return;
  unsigned open = 0, connecting = 0;
  for (unsigned i = 0; i < w->nconns; i++) {
    open += w->conns[i].state != C_EMPTY;
    /* one running its on_connect_sql will serve soon, as one connecting */
    connecting += w->conns[i].state == C_CONNECTING || w->conns[i].init != INIT_NONE;
  }
  w->at_min = open >= w->min;
  unsigned want = (w->used || !st->o.lazy) ? w->min : 0;
  if (unplaced > connecting && open + unplaced - connecting > want)
    want = open + unplaced - connecting;
  for (unsigned i = 0; i < w->nconns && open < want; i++)
    if (w->conns[i].state == C_EMPTY) {
      conn_open(w, &w->conns[i]);
      if (w->conns[i].state == C_EMPTY)
        break; /* backing off */
      open++;
    }
}

/* A transaction's or COPY's connection is free again: back to the pool,
 * unless the session is left inside a transaction (then it is closed). */
void actio__db_conn_release(conn *c) {
  if (c->txn == NULL && c->copy == NULL && !actio__pg_conn_txn_idle(c->pc))
    c->doomed = 1;
  c->idle_ns = actio__now_ns();
}

/* ---- hooks and on_connect_sql ---- */

int actio__db_conn_give_back(db_worker *w, conn *c, int lost) {
  if (c->held.backend_pid == 0)
    return 0;
  actio_db_conn_info info = c->held;
  info.lost = lost;
  memset(&c->held, 0, sizeof c->held);
  int rc = call_hook(w, w->st->o.on_release, &info);
  return lost ? 0 : rc;
}

/* c serves requests from now on: connects failing in a row are over. */
static void conn_up(db_worker *w) {
  w->fails = 0;
  w->down_since_ns = 0;
  atomic_fetch_add_explicit(&w->st->connects, 1, memory_order_relaxed);
}

/* c's initialisation failed (rc, "what: msg"): closed once the callbacks
 * are over (this may run inside one), then counted as a failed connect
 * when fresh, which backs off. */
static void init_failed(conn *c, int fresh, int rc, const char *what, const char *msg) {
  c->doomed = 1;
  if (!fresh)
    return;
  c->fail_rc = rc;
  if (asprintf(&c->fail_msg, "%s failed: %s", what, msg) < 0)
    c->fail_msg = NULL;
}

/* On a new connection: its on_connect hook, then it is up. */
static void conn_connected(db_worker *w, conn *c, const actio__pg_result *init) {
  const actio_db_opts *o = &w->st->o;
  if (o->on_connect != NULL) {
    actio_db_conn_info info = {
        .backend_pid = actio__pg_conn_backend_pid(c->pc),
        .server_version = actio__pg_conn_server_version(c->pc),
    };
    int rc = o->on_connect(o->hook_arg, &info, (const actio_db_result *)(const void *)init);
    if (rc < 0) {
      init_failed(c, 1, rc, "the pool's on_connect hook", actio_strerror(rc));
      return;
    }
  }
  conn_up(w);
}

void actio__db_conn_init(db_worker *w, conn *c, int fresh) {
  const char *sql = w->st->o.on_connect_sql;
  /* A reset is sent with no cancel request on its way, and none is sent
   * for it. */
  ACTIO__ASSERT(c->cancel == NULL);
  c->init = INIT_NONE;
  if (sql == NULL) {
    if (fresh)
      conn_connected(w, c, NULL);
    if (c->doomed) /* not inside a callback here */
      actio__db_conn_doom_close(w, c);
    return;
  }
  actio_db_request q = {.sql = sql};
  db_req *r = actio__db_req_new(K_INIT, &q, NULL, 0);
  int rc = r == NULL ? ACTIO_ENOMEM : actio__pg_conn_send_simple(c->pc, r->sql, 0, r);
  if (rc != 0) {
    if (r != NULL)
      actio__db_req_free(r);
    init_failed(c, fresh, rc, "sending the on-connect SQL", actio_strerror(rc));
    actio__db_conn_doom_close(w, c);
    return;
  }
  r->w = w;
  r->c = c;
  r->commit = fresh != 0;
  c->init = INIT_RUNNING;
  c->simple = 1;
  actio__db_sent_add(w, r);
}

void actio__db_init_ended(db_worker *w, db_req *r, int rc, actio__pg_result *res,
                          const actio__pg_error *err, const char *msg) {
  conn *c = r->c;
  (void)err;
  if (c != NULL && c->state == C_READY) {
    c->init = INIT_NONE;
    if (rc != 0)
      init_failed(c, r->commit, rc, "the on-connect SQL", msg);
    else if (r->commit)
      conn_connected(w, c, res);
  }
  if (rc == 0)
    actio__pg_result_free(res);
  actio__db_req_free(r);
}

void actio__db_conn_doom_close(db_worker *w, conn *c) {
  if (c->fail_msg != NULL || c->fail_rc != 0) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", c->fail_msg ? c->fail_msg : actio_strerror(c->fail_rc));
    actio__db_connect_failed(w, c, c->fail_rc, msg);
    return;
  }
  actio__db_conn_close(w, c, 0, "connection closed");
}

/* ---- counters ---- */

/* What one connection could take now; can_open: an empty one may be
 * opened. */
static size_t conn_room(const conn *c, size_t depth, int can_open) {
  if (c->state == C_EMPTY ? can_open
                          : c->state == C_CONNECTING || c->init != INIT_NONE)
    return depth;
  if (!usable(c))
    return 0;
  size_t n = actio__pg_conn_inflight(c->pc);
  return n < depth ? depth - n : 0;
}

/* No clock read while connects succeed (this runs at every wait). */
static int can_open(const db_worker *w) {
  return w->fails == 0 || actio__now_ns() >= w->retry_ns;
}


/* Stores this worker's share of a sum in its own slot when it changed. */
static void publish(_Atomic unsigned *slot, unsigned now, unsigned *was) {
  if (now == *was)
    return;
  /* Relaxed: a statistic, read summed over the workers' slots. */
  atomic_store_explicit(slot, now, memory_order_relaxed);
  *was = now;
}

void actio__db_publish_stats(db_worker *w) {
  unsigned open = 0, idle = 0, connecting = 0;
  size_t depth = w->st->o.pipeline_depth, room = 0;
  int open_ok = can_open(w);
  /* One walk for the counters and the room: this runs at every wait. */
  for (unsigned i = 0; i < w->nconns; i++) {
    conn *c = &w->conns[i];
    open += c->state == C_READY;
    connecting += c->state == C_CONNECTING;
    idle += c->state == C_READY && c->txn == NULL && c->copy == NULL &&
            actio__pg_conn_inflight(c->pc) == 0;
    room += conn_room(c, depth, open_ok);
  }
  w->conn_room = room;
  ACTIO__ASSERT(idle <= open && open + connecting <= w->nconns);
  db_pub *p = w->pub;
  publish(&p->open, open, &w->pub_open);
  publish(&p->idle, idle, &w->pub_idle);
  publish(&p->connecting, connecting, &w->pub_connecting);
  /* A hint for db_full, stale at worst; stored only when it flips, so
   * that the others' reads of it seldom miss. */
  int has_room = !w->stopping && actio__db_room(w) > 0;
  if (w->st->o.workers > 1 && has_room != w->pub_room) {
    atomic_store_explicit(&p->room, has_room, memory_order_relaxed);
    w->pub_room = has_room;
  }
}

/* db_actor.c: the database actor. Each worker owns a share of the pool's
 * connections (io/pg_conn.c) and drives them all from one poll; requests
 * arrive through the actor's mailbox, and those bound to one connection (a
 * transaction's, a COPY's, the listener's) through the worker's own inbox. */
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "actio.h"
#include "actors/core/actor_internal.h"
#include "actors/core/bell.h"
#include "actors/core/deadline.h"
#include "actors/core/future_internal.h"
#include "base/clock.h"
#include "io/pg/pg_cancel.h"
#include "io/pg/pg_conn.h"
#include "io/pg/pg_error.h"
#include "io/pg/pg_result.h"

typedef struct db_worker db_worker;
typedef struct conn conn;
typedef struct db_req db_req;

/* A worker's bell (actors/core/bell.h) rings its eventfd; its inbox holds
 * the requests bound to the worker's connections. Transactions, COPYs and
 * cancel jobs hold references: it outlives the worker. */
typedef actio__bell bell;

/* A cancel request for the server, run by the canceller thread because
 * sending it blocks. */
typedef struct cancel_job {
  _Atomic unsigned refs; /* the connection's and the canceller's */
  _Atomic int done;
  actio__pg_cancel *pc;
  bell *bell;
  struct cancel_job *next;
} cancel_job;

typedef struct db_state {
  actio_db_opts o; /* defaults filled in; o.dsn is ours */
  actio_runtime *rt;
  actio_actor *self; /* set once spawned, before any request */
  _Atomic unsigned next_worker; /* hands out the pool's shares */
  _Atomic size_t *rooms;        /* per worker: requests it could start now */
  bell *listener;               /* worker 0's, whose connection LISTENs
                                   (its bell: a reference) */
  pthread_t canceller;
  pthread_mutex_t cmu;
  pthread_cond_t ccv;
  cancel_job *jobs;
  int cstop;
  _Atomic unsigned open, idle, connecting;
  _Atomic uint64_t connects, failures, queries, cancels;
} db_state;

enum kind {
  K_QUERY, K_SCRIPT, K_BEGIN, K_TQUERY, K_END, K_TDROP,
  K_COPY, K_CWRITE, K_CEND, K_CDROP, K_LISTEN, K_UNLISTEN, K_RELISTEN,
};

struct db_req {
  enum kind kind;
  actio_future *reply; /* NULL for the internal ones */
  db_worker *w;        /* the worker that took it */
  actio__bell_link link; /* in a worker's inbox */
  db_req *prev, *next; /* in the worker's pending or sent list, a
                          connection's queue or a COPY's */
  conn *c;             /* sent on */
  _Atomic int cancel;
  int cancel_sent, retried, nocache, commit;
  int64_t queued_ns;
  actio_db_txn *txn;
  actio_db_copy *copy;
  actio__pg_query q;
  actio_db_row_fn row_fn; /* COPY TO */
  actio_db_notify_fn nfn; /* LISTEN */
  void *arg;
  const char *data;       /* COPY data, or the abort reason */
  size_t len;
  char bytes[];
};

enum { C_EMPTY, C_CONNECTING, C_READY };

struct conn {
  actio__pg_conn *pc;
  int state;
  int64_t since_ns;  /* connecting since, or ready since */
  int64_t idle_ns;   /* idle since */
  actio_db_txn *txn; /* pinned to it (a reference) */
  actio_db_copy *copy; /* a COPY runs on it (a reference) */
  db_req *q_head, *q_tail; /* bound requests not sent yet */
  cancel_job *cancel; /* out for the unit at the head */
  db_req *cancel_for;
  int simple;        /* a script or COPY unit runs */
  unsigned round;    /* units sent in this dispatch */
  int doomed;        /* close once callbacks are over */
};

struct actio_db_txn {
  _Atomic unsigned refs;
  db_state *st;
  _Atomic int state; /* T_OPEN until commit, rollback or drop */
  bell *bell;        /* its worker's, set before the txn is published */
  conn *c;           /* worker-only; NULL once lost */
};
enum { T_NEW, T_OPEN, T_DONE };

struct actio_db_copy {
  _Atomic unsigned refs;
  db_state *st;
  _Atomic int state; /* T_OPEN until end or drop */
  bell *bell;
  conn *c;           /* worker-only; NULL once lost or over */
  actio_db_txn *txn; /* a reference, or NULL */
  db_req *start;     /* the COPY's unit */
  db_req *end;       /* the CEND being answered */
  db_req *q_head, *q_tail; /* writes and the end, in order */
  actio_future *ready; /* COPY TO: the consumer's backpressure */
  int started;       /* the server took the COPY */
  int wrong;         /* ... in the other direction: it is aborted */
  int out;           /* COPY TO */
};

typedef struct sub {
  char *channel;
  actio_db_notify_fn fn;
  void *arg;
  struct sub *next;
} sub;

struct db_worker {
  db_state *st;
  actio_actor *self;
  bell *bell;
  int efd;             /* the bell's wake-up, in the worker's poll */
  conn *conns;
  unsigned nconns, min;
  int used;            /* a request came: lazy pools fill up from now */
  db_req *pend_head, *pend_tail;
  db_req *sent;
  int fails;           /* connects failed in a row */
  int64_t down_since_ns; /* since then no connect succeeded (0: up) */
  int64_t retry_ns;    /* no connect before this */
  int stopping;
  /* LISTEN: its own connection, outside the pool */
  conn lc;
  sub *subs;
  db_req *lq_head, *lq_tail;
  int lfails, lost;
  int64_t lretry_ns;
  struct pollfd *pfds;
  unsigned pub_open, pub_idle, pub_connecting;
  pthread_t thread;    /* the worker's own */
  unsigned index;      /* in st->rooms */
  int self_woken;      /* a message it sent itself waits in the mailbox */
};

static const actio_behavior db_behavior;

/* ---- lists ---- */

static void q_push(db_req **h, db_req **t, db_req *r) {
  r->next = NULL;
  r->prev = *t;
  if (*t)
    (*t)->next = r;
  else
    *h = r;
  *t = r;
}

static void q_unlink(db_req **h, db_req **t, db_req *r) {
  if (r->prev)
    r->prev->next = r->next;
  else
    *h = r->next;
  if (r->next)
    r->next->prev = r->prev;
  else if (t)
    *t = r->prev;
  r->prev = r->next = NULL;
}

static void sent_add(db_worker *w, db_req *r) {
  r->prev = NULL;
  r->next = w->sent;
  if (w->sent)
    w->sent->prev = r;
  w->sent = r;
}

/* ---- the worker's wake-up ---- */

static void efd_write(int efd) {
  uint64_t one = 1;
  ssize_t n = write(efd, &one, sizeof one);
  (void)n; /* a full counter still wakes the poll */
}

/* The bell's wake function: under the bell's lock, so never once the
 * worker closed it (and its eventfd with it). */
static void bell_wake(void *worker) { efd_write(((db_worker *)worker)->efd); }

/* The request an inbox link is embedded in. */
static db_req *req_of(actio__bell_link *l) {
  return (db_req *)(void *)((char *)l - offsetof(db_req, link));
}

/* ---- transactions and copies: reference counts ---- */

static void txn_unref(actio_db_txn *t) {
  if (t == NULL ||
      atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1)
    return;
  actio__bell_unref(t->bell);
  free(t);
}

static void copy_unref(actio_db_copy *cp) {
  if (cp == NULL ||
      atomic_fetch_sub_explicit(&cp->refs, 1, memory_order_acq_rel) != 1)
    return;
  actio__bell_unref(cp->bell);
  txn_unref(cp->txn);
  free(cp);
}

static void ref(_Atomic unsigned *refs) {
  atomic_fetch_add_explicit(refs, 1, memory_order_relaxed);
}

/* ---- requests ---- */

static void req_free(db_req *r) {
  if (r->kind == K_LISTEN && r->arg != NULL) { /* a subscription never made */
    sub *s = r->arg;
    free(s->channel);
    free(s);
  }
  actio_future_unref(r->reply);
  txn_unref(r->txn);
  copy_unref(r->copy);
  free(r);
}

/* Copies sql, the parameters and data into one block behind the request. */
static db_req *req_new(enum kind kind, const actio_db_request *in,
                       const void *data, size_t len) {
  size_t lsql = in && in->sql ? strlen(in->sql) + 1 : 0;
  int n = in ? in->nparams : 0;
  size_t vals = 0;
  for (int i = 0; i < n; i++)
    if (in->params[i] != NULL)
      vals += in->formats && in->formats[i] ? (size_t)in->lengths[i]
                                            : strlen(in->params[i]) + 1;
  size_t arrays = (size_t)n * (sizeof(char *) + 2 * sizeof(int) + sizeof(uint32_t));
  db_req *r = malloc(sizeof *r + arrays + lsql + vals + len + 1);
  if (r == NULL)
    return NULL;
  memset(r, 0, sizeof *r);
  r->kind = kind;
  r->queued_ns = actio__now_ns();
  char **v = (char **)(void *)r->bytes;
  int *lens = (int *)(void *)(v + n);
  int *fmts = lens + n;
  uint32_t *types = (uint32_t *)(void *)(fmts + n);
  char *p = (char *)(types + n);
  if (lsql) {
    r->q.sql = memcpy(p, in->sql, lsql);
    p += lsql;
  }
  for (int i = 0; i < n; i++) {
    int bin = in->formats && in->formats[i];
    fmts[i] = bin;
    types[i] = in->types ? in->types[i] : 0;
    lens[i] = 0;
    v[i] = NULL;
    if (in->params[i] != NULL) {
      size_t l = bin ? (size_t)in->lengths[i] : strlen(in->params[i]) + 1;
      v[i] = memcpy(p, in->params[i], l);
      lens[i] = bin ? in->lengths[i] : 0;
      p += l;
    }
  }
  if (in) {
    r->q.nparams = n;
    r->q.values = (const char *const *)v;
    r->q.lengths = lens;
    r->q.formats = fmts;
    r->q.types = in->types ? types : NULL;
    r->q.binary_results = in->binary_results;
  }
  if (data != NULL) {
    r->data = memcpy(p, data, len);
    p[len] = '\0';
    r->len = len;
  }
  return r;
}

/* A request's future, with its deadline: `timeout_ms` or the pool's. */
static int req_future(db_state *st, db_req *r, long timeout_ms) {
  int rc = actio_future_create(&r->reply);
  if (rc != 0)
    return rc;
  long t = timeout_ms > 0 ? timeout_ms : st->o.query_timeout_ms;
  if (t > 0 && (rc = actio_future_set_deadline(st->rt, r->reply, t)) != 0) {
    actio_future_unref(r->reply);
    r->reply = NULL;
    return rc;
  }
  return 0;
}

/* The server's error, copied so that it outlives its result. */
typedef struct db_err {
  actio_db_error e;
  char buf[];
} db_err;

static void db_err_free(void *p) { free(p); }

static db_err *err_copy(const actio__pg_error *pe) {
  const char *f[5] = {pe->sqlstate, pe->severity, pe->message, pe->detail,
                      pe->hint};
  size_t total = 0;
  for (int i = 0; i < 5; i++)
    total += f[i] ? strlen(f[i]) + 1 : 0;
  db_err *e = malloc(sizeof *e + total);
  if (e == NULL)
    return NULL;
  const char **dst[5] = {&e->e.sqlstate, &e->e.severity, &e->e.message,
                         &e->e.detail, &e->e.hint};
  char *p = e->buf;
  for (int i = 0; i < 5; i++) {
    *dst[i] = NULL;
    if (f[i]) {
      size_t l = strlen(f[i]) + 1;
      *dst[i] = memcpy(p, f[i], l);
      p += l;
    }
  }
  if (e->e.sqlstate == NULL)
    e->e.sqlstate = "";
  if (e->e.message == NULL)
    e->e.message = "";
  return e;
}

const actio_db_error *actio_db_error_get(const actio_future *f) {
  if (f == NULL || !actio_future_is_done(f))
    return NULL;
  db_err *e = actio__future_aux(f, db_err_free);
  return e ? &e->e : NULL;
}

static void result_free(void *p) { actio__pg_result_free(p); }

/* The consumer of rows nobody wants any more. */
static int drain_rows(void *arg, const void *data, size_t len, actio_future **ready) {
  (void)arg, (void)data, (void)len, (void)ready;
  return 0;
}

/* Completes r's future (if any) and frees r: with res (given) when rc is
 * 0, else failed with rc and msg, carrying err (lent: the server's error,
 * read back with actio_db_error_get) when there is one. */
static void req_end(db_req *r, int rc, actio__pg_result *res,
                    const actio__pg_error *err, const char *msg) {
  db_err *e;
  if (r->reply == NULL) {
    if (rc == 0)
      actio__pg_result_free(res);
  } else {
    actio_future_clear_cancel(r->reply); /* no hook runs after this */
    if (rc == 0) {
      if (actio_future_resolve(r->reply, res, result_free) != 0)
        actio__pg_result_free(res);
    } else if (err != NULL && (e = err_copy(err)) != NULL) {
      if (actio__future_fail_aux(r->reply, rc, msg, e, db_err_free) != 0)
        free(e);
    } else { /* no server error, or no memory to copy it: the text alone */
      actio_future_fail(r->reply, rc, "%s", msg && *msg ? msg : actio_strerror(rc));
    }
  }
  req_free(r);
}

/* req_end for a failure without the server's error. */
static void req_fail(db_req *r, int rc, const char *msg) {
  req_end(r, rc, NULL, NULL, msg);
}

/* ---- the canceller thread ---- */

static void job_unref(cancel_job *j) {
  if (j == NULL ||
      atomic_fetch_sub_explicit(&j->refs, 1, memory_order_acq_rel) != 1)
    return;
  actio__pg_cancel_free(j->pc);
  actio__bell_unref(j->bell);
  free(j);
}

static void *canceller_main(void *arg) {
  db_state *st = arg;
  pthread_mutex_lock(&st->cmu);
  for (;;) {
    while (st->jobs == NULL && !st->cstop)
      pthread_cond_wait(&st->ccv, &st->cmu);
    if (st->jobs == NULL)
      break;
    cancel_job *j = st->jobs;
    st->jobs = j->next;
    pthread_mutex_unlock(&st->cmu);
    char err[256];
    /* Failing is fine: the query ends anyway. */
    actio__pg_cancel_send(j->pc, err, sizeof err);
    atomic_store_explicit(&j->done, 1, memory_order_release);
    actio__bell_ring(j->bell);
    job_unref(j);
    pthread_mutex_lock(&st->cmu);
  }
  pthread_mutex_unlock(&st->cmu);
  return NULL;
}

/* Asks the server to cancel what c runs now: r, the head unit. */
static void cancel_on_server(db_worker *w, conn *c, db_req *r) {
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
  atomic_fetch_add_explicit(&w->st->cancels, 1, memory_order_relaxed);
  pthread_mutex_lock(&w->st->cmu);
  j->next = w->st->jobs;
  w->st->jobs = j;
  pthread_cond_signal(&w->st->ccv);
  pthread_mutex_unlock(&w->st->cmu);
}

/* ---- connections ---- */

static int64_t backoff_ms(const db_state *st, int fails) {
  return actio__backoff_ms(st->o.reconnect_min_ms, st->o.reconnect_max_ms,
                           (unsigned)fails);
}

static void on_unit(void *ctx, void *unit, int rc, actio__pg_result *res,
                    const actio__pg_error *err, const char *msg);

static int usable(const conn *c) {
  return c->state == C_READY && c->txn == NULL && c->copy == NULL &&
         !c->simple && c->cancel == NULL && !c->doomed;
}

/* Closes c: its units and bound requests fail with rc and msg. */
static void conn_close(db_worker *w, conn *c, int rc, const char *msg) {
  if (c->state == C_EMPTY)
    return;
  if (c->state == C_READY && rc != 0)
    atomic_fetch_add_explicit(&w->st->failures, 1, memory_order_relaxed);
  actio__pg_conn *pc = c->pc;
  c->pc = NULL;
  c->state = C_EMPTY;
  actio__pg_conn_destroy(pc, on_unit, w, msg); /* fails the units */
  while (c->q_head != NULL) {
    db_req *r = c->q_head;
    q_unlink(&c->q_head, &c->q_tail, r);
    req_fail(r, rc ? rc : ACTIO_ECONN, msg);
  }
  if (c->copy != NULL) {
    actio_db_copy *cp = c->copy;
    c->copy = NULL;
    cp->c = NULL;
    actio_future_unref(cp->ready);
    cp->ready = NULL;
    while (cp->q_head != NULL) {
      db_req *r = cp->q_head;
      q_unlink(&cp->q_head, &cp->q_tail, r);
      req_fail(r, ACTIO_ECONN, msg);
    }
    copy_unref(cp);
  }
  if (c->txn != NULL) {
    c->txn->c = NULL; /* its later requests fail */
    txn_unref(c->txn);
    c->txn = NULL;
  }
  job_unref(c->cancel);
  c->cancel = NULL;
  c->cancel_for = NULL;
  c->simple = c->doomed = 0;
  if (c == &w->lc && rc != 0 && !w->stopping) { /* restore LISTEN later */
    w->lost = 1;
    w->lretry_ns = actio__now_ns() + (int64_t)backoff_ms(w->st, ++w->lfails) * 1000000;
  }
}

static void conn_open(db_worker *w, conn *c) {
  char err[256];
  int rc = actio__pg_conn_start(&c->pc, w->st->o.dsn,
                                w->st->o.no_statement_cache ? 0 : w->st->o.statement_cache,
                                err, sizeof err);
  c->since_ns = actio__now_ns();
  if (rc == 0) {
    c->state = C_CONNECTING;
    return;
  }
  c->pc = NULL;
  w->fails++;
  w->retry_ns = c->since_ns + (int64_t)backoff_ms(w->st, w->fails) * 1000000;
}

static unsigned count_ready(const db_worker *w) {
  unsigned n = 0;
  for (unsigned i = 0; i < w->nconns; i++)
    n += w->conns[i].state == C_READY;
  return n;
}

/* A connect failed: back off; with no connection left to serve them, the
 * waiting requests fail now rather than at their acquire timeout. */
static void connect_failed(db_worker *w, conn *c, int rc, const char *err) {
  char msg[512];
  snprintf(msg, sizeof msg, "connecting to PostgreSQL: %s", err);
  conn_close(w, c, rc, msg);
  atomic_fetch_add_explicit(&w->st->failures, 1, memory_order_relaxed);
  w->fails++;
  w->retry_ns = actio__now_ns() + (int64_t)backoff_ms(w->st, w->fails) * 1000000;
  if (count_ready(w) > 0)
    return;
  if (w->down_since_ns == 0)
    w->down_since_ns = actio__now_ns();
  for (unsigned i = 0; i < w->nconns; i++)
    if (w->conns[i].state == C_CONNECTING)
      return; /* another attempt may still succeed */
  while (w->pend_head != NULL) {
    db_req *r = w->pend_head;
    q_unlink(&w->pend_head, &w->pend_tail, r);
    req_fail(r, rc, msg);
  }
}

/* ---- sending ---- */

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

/* Sends r on c as a pipelined unit. 0, or ACTIO_ECONN (c is broken). */
static int send_unit(db_worker *w, conn *c, db_req *r) {
  actio__pg_query q = r->q;
  q.cache = !r->nocache && !w->st->o.no_statement_cache;
  int rc = r->kind == K_SCRIPT || r->kind == K_COPY
               ? actio__pg_conn_send_simple(c->pc, r->q.sql, r->kind == K_COPY, r)
               : actio__pg_conn_send(c->pc, &q, r);
  if (rc != 0)
    return rc;
  r->c = c;
  if (r->kind == K_SCRIPT || r->kind == K_COPY)
    c->simple = 1;
  sent_add(w, r);
  return 0;
}

static void conn_broken(db_worker *w, conn *c) {
  char msg[300], err[256];
  actio__pg_conn_message(c->pc, err, sizeof err);
  snprintf(msg, sizeof msg, "PostgreSQL connection lost: %s", err);
  conn_close(w, c, ACTIO_ECONN, msg);
}

/* Sends what is bound to c (a transaction's queries) while it can. */
static void conn_pump(db_worker *w, conn *c) {
  while (c->q_head != NULL && c->state == C_READY && !c->simple && !c->doomed) {
    db_req *r = c->q_head;
    if ((r->kind == K_COPY) && actio__pg_conn_inflight(c->pc) > 0)
      return; /* the simple protocol waits for the pipeline to empty */
    q_unlink(&c->q_head, &c->q_tail, r);
    if (r->kind == K_COPY) {
      c->copy = r->copy;
      ref(&r->copy->refs);
      r->copy->c = c;
    }
    if (send_unit(w, c, r) != 0) {
      q_push(&c->q_head, &c->q_tail, r); /* failed with the rest */
      if (r->kind == K_COPY) {
        copy_unref(c->copy);
        c->copy = NULL;
        r->copy->c = NULL;
      }
      conn_broken(w, c);
      return;
    }
  }
}

/* Places pending requests on connections, opening more as needed. */
static void dispatch(db_worker *w) {
  db_state *st = w->st;
  unsigned depth = st->o.pipeline_depth;
  unsigned unplaced = 0;
  for (db_req *r = w->pend_head, *next; r != NULL; r = next) {
    next = r->next;
    int exclusive = r->kind != K_QUERY;
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
      }
    }
    if (best == NULL || (exclusive ? best_n > 0 : best_n >= depth)) {
      unplaced++;
      continue;
    }
    if (best_n > 0)
      unplaced++; /* pipelined for now; a connection more would help */
    q_unlink(&w->pend_head, &w->pend_tail, r);
    if (r->kind == K_BEGIN) {
      best->txn = r->txn;
      ref(&r->txn->refs);
      r->txn->c = best;
      if (r->txn->bell == NULL) { /* where its requests will go */
        r->txn->bell = w->bell;
        actio__bell_ref(w->bell);
      }
    } else if (r->kind == K_COPY) {
      best->copy = r->copy;
      ref(&r->copy->refs);
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
    if (send_unit(w, best, r) != 0) {
      q_push(&w->pend_head, &w->pend_tail, r); /* for another connection */
      if (r->kind == K_BEGIN) {
        r->txn->c = NULL;
        txn_unref(best->txn);
        best->txn = NULL;
      } else if (r->kind == K_COPY) {
        r->copy->c = NULL;
        copy_unref(best->copy);
        best->copy = NULL;
      }
      conn_broken(w, best);
    }
  }
  for (unsigned i = 0; i < w->nconns; i++) {
    conn *c = &w->conns[i];
    if (c->round > 1 && c->state == C_READY && actio__pg_conn_uncork(c->pc) != 0)
      conn_broken(w, c);
    c->round = 0;
  }
  /* Open connections: up to min, and one per request left waiting. */
  int64_t now = actio__now_ns();
  if (now < w->retry_ns)
    return;
  unsigned open = 0, connecting = 0;
  for (unsigned i = 0; i < w->nconns; i++) {
    open += w->conns[i].state != C_EMPTY;
    connecting += w->conns[i].state == C_CONNECTING;
  }
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

/* ---- results ---- */

/* A transaction's or COPY's connection is free again: back to the pool,
 * unless the session is left inside a transaction (then it is closed). */
static void conn_release(conn *c) {
  if (c->txn == NULL && c->copy == NULL && !actio__pg_conn_txn_idle(c->pc))
    c->doomed = 1;
  c->idle_ns = actio__now_ns();
}

static void txn_unpin(conn *c) {
  actio_db_txn *t = c->txn;
  if (t == NULL)
    return;
  c->txn = NULL;
  t->c = NULL;
  txn_unref(t);
  conn_release(c);
}

static void copy_unpin(conn *c) {
  actio_db_copy *cp = c->copy;
  if (cp == NULL)
    return;
  c->copy = NULL;
  cp->c = NULL;
  while (cp->q_head != NULL) { /* writes after the end */
    db_req *r = cp->q_head;
    q_unlink(&cp->q_head, &cp->q_tail, r);
    req_fail(r, ACTIO_ESTATE, "COPY is over");
  }
  copy_unref(cp);
  conn_release(c);
}

static void txn_user_drop(void *p);

/* LISTEN is in effect: the subscription counts only if its caller still
 * waits (a cancelled one may have freed its argument). */
static void listen_done(db_worker *w, db_req *r, actio__pg_result *res) {
  actio_future_clear_cancel(r->reply);
  if (actio_future_resolve(r->reply, res, result_free) == 0) {
    sub *s = r->arg;
    s->next = w->subs;
    w->subs = s;
    r->arg = NULL;
  } else {
    actio__pg_result_free(res);
  }
  req_free(r);
}
static void copy_user_drop(void *p);

/* The COPY's connection is ready for data (in) or has rows (out). */
static void copy_started(db_worker *w, db_req *r, int out) {
  actio_db_copy *cp = r->copy;
  conn *c = r->c;
  (void)w;
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
  atomic_store_explicit(&cp->state, T_OPEN, memory_order_relaxed);
  ref(&cp->refs); /* the caller's, through the future */
  actio_future_clear_cancel(r->reply);
  if (actio_future_resolve(r->reply, cp, copy_user_drop) != 0)
    copy_user_drop(cp); /* cancelled meanwhile: abort it */
  /* Let go of the future: freeing it is how a caller abandons the COPY. */
  actio_future_unref(r->reply);
  r->reply = NULL;
}

static void on_unit(void *ctx, void *unit, int rc, actio__pg_result *res,
                    const actio__pg_error *err, const char *msg) {
  db_worker *w = ctx;
  db_req *r = unit;
  conn *c = r->c;
  if (rc == ACTIO__PG_COPY_IN || rc == ACTIO__PG_COPY_OUT) {
    copy_started(w, r, rc == ACTIO__PG_COPY_OUT);
    return; /* the unit goes on */
  }
  q_unlink(&w->sent, NULL, r);
  if (c != NULL && c->cancel_for == r)
    c->cancel_for = NULL;
  atomic_fetch_add_explicit(&w->st->queries, 1, memory_order_relaxed);
  if (rc == ACTIO_ECONN && w->stopping)
    rc = ACTIO_ECANCELED, msg = "database actor stopped";
  /* Cancelled by a request meant for the query ahead of it: send again. */
  if (rc == ACTIO_ESQL && r->kind == K_QUERY && !r->retried && c != NULL &&
      c->cancel != NULL && !atomic_load_explicit(&r->cancel, memory_order_acquire)) {
    if (err != NULL && actio__pg_error_is(err, "57014")) {
      r->retried = 1;
      r->c = NULL;
      r->prev = NULL;
      r->next = w->pend_head;
      if (w->pend_head)
        w->pend_head->prev = r;
      else
        w->pend_tail = r;
      w->pend_head = r;
      return;
    }
  }
  if (c != NULL && r->kind != K_QUERY && c->state != C_EMPTY)
    c->simple = 0;
  if (rc == 0 && r->kind == K_QUERY && c != NULL &&
      (strcmp(actio__pg_result_command_tag(res), "BEGIN") == 0 ||
       strcmp(actio__pg_result_command_tag(res), "START TRANSACTION") == 0)) {
    /* A transaction block on a shared connection would swallow the
     * queries pipelined behind it: close the connection (the server rolls
     * back; those queries fail with ACTIO_ECONN). */
    actio__pg_result_free(res);
    c->doomed = 1;
    req_fail(r, ACTIO_EINVAL, "BEGIN on a pooled connection: use actio_db_begin");
    return;
  }
  switch (r->kind) {
  case K_BEGIN:
    if (rc == 0) {
      actio_db_txn *t = r->txn;
      actio__pg_result_free(res);
      atomic_store_explicit(&t->state, T_OPEN, memory_order_relaxed);
      ref(&t->refs); /* the caller's, through the future */
      actio_future_clear_cancel(r->reply);
      if (actio_future_resolve(r->reply, t, txn_user_drop) != 0)
        txn_user_drop(t); /* cancelled meanwhile: roll back */
      req_free(r);
      return;
    }
    if (c != NULL && c->state != C_EMPTY)
      txn_unpin(c);
    break;
  case K_END:
  case K_TDROP:
    if (c != NULL && c->state != C_EMPTY)
      txn_unpin(c);
    if (rc == 0 && r->commit &&
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
    break;
  case K_SCRIPT:
    if (c != NULL && c->state != C_EMPTY)
      conn_release(c);
    break;
  case K_COPY: {
    actio_db_copy *cp = r->copy;
    if (c != NULL && c->state != C_EMPTY)
      copy_unpin(c);
    if (cp->wrong || (rc == 0 && !cp->started)) {
      if (rc == 0)
        actio__pg_result_free(res);
      req_fail(r, ACTIO_EINVAL,
               cp->wrong ? "COPY: TO STDOUT needs actio_db_copy_out, FROM STDIN "
                           "actio_db_copy_in"
                         : "COPY: not a COPY statement");
      return;
    }
    db_req *end = cp->end; /* COPY FROM: the end's future gets the outcome */
    cp->end = NULL;
    if (end != NULL && cp->started && !cp->out) {
      req_end(end, rc, res, err, msg);
      req_free(r); /* its future already holds the COPY */
      return;
    }
    if (end != NULL)
      req_fail(end, rc ? rc : ACTIO_ECONN, msg);
    if (cp->started && !cp->out) { /* lost before its end was asked */
      if (rc == 0)
        actio__pg_result_free(res);
      req_free(r);
      return;
    }
    break; /* COPY TO's outcome, or a COPY that failed to start */
  }
  case K_RELISTEN: /* the listener is back: say what may have been missed */
    if (rc == 0)
      for (sub *s = w->subs; s != NULL; s = s->next) {
        actio_db_notification n = {s->channel, "", 0, 1};
        s->fn(s->arg, &n);
      }
    w->lost = rc != 0;
    if (rc == 0)
      actio__pg_result_free(res);
    req_free(r);
    return;
  default:
    break;
  }
  if (c != NULL && c->txn == NULL && c->copy == NULL && c->state == C_READY &&
      actio__pg_conn_inflight(c->pc) == 0)
    c->idle_ns = actio__now_ns();
  if (r->kind == K_LISTEN && rc == 0) {
    listen_done(w, r, res);
    return;
  }
  req_end(r, rc, res, err, msg);
}

/* ---- COPY data ---- */

/* Feeds the COPY on c its queued writes and end, as far as libpq takes. */
static void copy_pump_in(db_worker *w, conn *c) {
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
    q_unlink(&cp->q_head, &cp->q_tail, r);
    if (rc < 0) {
      q_push(&cp->q_head, &cp->q_tail, r); /* fails with the connection */
      conn_broken(w, c);
      return;
    }
    if (actio__pg_conn_flush(c->pc) != 0) {
      q_push(&cp->q_head, &cp->q_tail, r);
      conn_broken(w, c);
      return;
    }
    if (r->kind == K_CWRITE) {
      req_end(r, 0, NULL, NULL, NULL);
      continue;
    }
    actio__pg_conn_copy_done(c->pc);
    cp->end = r; /* answered with the COPY's result */
  }
}

/* Hands COPY TO rows to the consumer until it asks to wait. */
static void copy_pump_out(db_worker *w, conn *c) {
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
      conn_broken(w, c);
      return;
    }
    actio_future *ready = NULL;
    int rc = r->row_fn(r->arg, row, (size_t)n, &ready);
    actio__pg_copy_row_free(row);
    if (rc < 0) { /* the consumer gave up: cancel it on the server */
      actio_future_unref(ready);
      actio_future_fail(r->reply, rc, "COPY TO: row consumer failed: %s",
                        actio_strerror(rc));
      atomic_store_explicit(&r->cancel, 1, memory_order_relaxed);
      if (c->cancel == NULL && !r->cancel_sent)
        cancel_on_server(w, c, r);
      r->row_fn = drain_rows; /* the rest goes unread */
      continue;
    }
    if (ready != NULL && !actio_future_is_done(ready)) {
      cp->ready = ready;
      /* No memory for the ring: the wait looks at ready anyway. */
      actio__bell_ring_on(w->bell, ready);
      return;
    }
    actio_future_unref(ready);
  }
}


/* ---- the listener ---- */

static void quote_ident(char *out, size_t len, const char *id) {
  size_t j = 0;
  out[j++] = '"';
  for (const char *p = id; *p && j + 3 < len; p++) {
    if (*p == '"')
      out[j++] = '"';
    out[j++] = *p;
  }
  out[j++] = '"';
  out[j] = '\0';
}

/* A notification to every subscriber of its channel. */
static void deliver(void *arg, const actio__pg_notification *n) {
  db_worker *w = arg;
  for (sub *s = w->subs; s != NULL; s = s->next)
    if (strcmp(s->channel, n->channel) == 0) {
      actio_db_notification note = {n->channel, n->payload, n->pid, 0};
      s->fn(s->arg, &note);
    }
}

/* The listener could not connect: it backs off; with nothing to restore,
 * the requests waiting for it fail now. */
static void listener_failed(db_worker *w, int rc, const char *err) {
  char msg[512];
  snprintf(msg, sizeof msg, "connecting to PostgreSQL: %s", err);
  int lost = w->lost;
  conn_close(w, &w->lc, rc, msg);
  w->lost = lost;
  w->lretry_ns = actio__now_ns() + (int64_t)backoff_ms(w->st, ++w->lfails) * 1000000;
  if (w->subs != NULL)
    return;
  while (w->lq_head != NULL) {
    db_req *r = w->lq_head;
    q_unlink(&w->lq_head, &w->lq_tail, r);
    req_fail(r, rc, msg);
  }
}

/* Sends the listener its next LISTEN or UNLISTEN, or restores them. */
static void listener_pump(db_worker *w) {
  conn *c = &w->lc;
  int64_t now = actio__now_ns();
  if (c->state == C_EMPTY && (w->subs != NULL || w->lq_head != NULL) &&
      now >= w->lretry_ns) {
    char err[256];
    if (actio__pg_conn_start(&c->pc, w->st->o.dsn, 0, err, sizeof err) == 0) {
      c->state = C_CONNECTING;
      c->since_ns = now;
    } else {
      w->lretry_ns = now + (int64_t)backoff_ms(w->st, ++w->lfails) * 1000000;
    }
    return;
  }
  if (c->state != C_READY || actio__pg_conn_inflight(c->pc) > 0)
    return;
  if (w->lost && w->subs != NULL) { /* restore every channel at once */
    size_t len = 1;
    for (sub *s = w->subs; s != NULL; s = s->next)
      len += 2 * strlen(s->channel) + 12;
    db_req *r = calloc(1, sizeof *r + len);
    if (r == NULL)
      return;
    r->kind = K_RELISTEN;
    char *p = r->bytes;
    for (sub *s = w->subs; s != NULL; s = s->next) {
      char q[140];
      quote_ident(q, sizeof q, s->channel);
      p += sprintf(p, "LISTEN %s;", q);
    }
    r->q.sql = r->bytes;
    r->nocache = 1;
    if (actio__pg_conn_send_simple(c->pc, r->q.sql, 0, r) != 0) {
      free(r);
      conn_broken(w, c);
      return;
    }
    r->c = c;
    sent_add(w, r);
    w->lost = 0;
    return;
  }
  while (w->lq_head != NULL) {
    db_req *r = w->lq_head;
    q_unlink(&w->lq_head, &w->lq_tail, r);
    sub *same = NULL;
    for (sub *s = w->subs; s != NULL; s = s->next)
      if (strcmp(s->channel, (const char *)r->data) == 0)
        same = s;
    if (r->kind == K_UNLISTEN) {
      int others = 0;
      for (sub **pp = &w->subs; *pp != NULL;) {
        sub *s = *pp;
        if (strcmp(s->channel, r->data) == 0 && s->fn == r->nfn && s->arg == r->arg &&
            r->nfn != NULL) {
          *pp = s->next;
          free(s->channel);
          free(s);
          r->nfn = NULL; /* one subscription removed */
          continue;
        }
        others += strcmp(s->channel, r->data) == 0;
        pp = &s->next;
      }
      if (r->nfn != NULL) {
        req_fail(r, ACTIO_EINVAL, "UNLISTEN: no such subscription");
        continue;
      }
      if (others > 0) {
        req_end(r, 0, actio__pg_result_empty(), NULL, NULL);
        continue;
      }
    } else if (same != NULL) { /* the channel is listened to already */
      listen_done(w, r, actio__pg_result_empty());
      continue;
    }
    char q[140];
    quote_ident(q, sizeof q, r->data);
    char sql[160];
    snprintf(sql, sizeof sql, "%s %s", r->kind == K_LISTEN ? "LISTEN" : "UNLISTEN", q);
    r->q.sql = sql;
    r->nocache = 1;
    if (actio__pg_conn_send_simple(c->pc, sql, 0, r) != 0) {
      q_push(&w->lq_head, &w->lq_tail, r);
      conn_broken(w, c);
      return;
    }
    r->q.sql = NULL; /* sql was copied by libpq */
    r->c = c;
    sent_add(w, r);
    return;
  }
}

/* ---- the worker ---- */

static void service(db_worker *w, conn *c, short revents) {
  if (c->state == C_CONNECTING) {
    char err[256];
    int rc = actio__pg_conn_connect(c->pc, err, sizeof err);
    if (rc == ACTIO_EPENDING)
      return;
    if (rc != 0) {
      if (c == &w->lc) {
        listener_failed(w, rc, err);
        return;
      }
      connect_failed(w, c, rc, err);
      return;
    }
    c->state = C_READY;
    c->since_ns = c->idle_ns = actio__now_ns();
    if (c == &w->lc) {
      w->lfails = 0;
    } else {
      w->fails = 0;
      w->down_since_ns = 0;
      atomic_fetch_add_explicit(&w->st->connects, 1, memory_order_relaxed);
    }
    return;
  }
  if (c->state != C_READY)
    return;
  if ((revents & POLLOUT) && actio__pg_conn_flush(c->pc) != 0) {
    conn_broken(w, c);
    return;
  }
  if (c->copy != NULL && !c->copy->out)
    copy_pump_in(w, c);
  if (c->state != C_READY)
    return;
  if (actio__pg_conn_input(c->pc, on_unit, w) != 0) {
    conn_broken(w, c);
    return;
  }
  if (c->copy != NULL && !c->copy->out)
    copy_pump_in(w, c); /* the server may have just said it is ready */
  if (c->state != C_READY)
    return;
  if (c->copy != NULL && c->copy->out && actio__pg_conn_in_copy(c->pc)) {
    copy_pump_out(w, c);
    if (c->state == C_READY && !actio__pg_conn_in_copy(c->pc) &&
        actio__pg_conn_input(c->pc, on_unit, w) != 0) {
      conn_broken(w, c);
      return;
    }
  }
  if (c == &w->lc)
    actio__pg_conn_notifications(c->pc, deliver, w);
  if (c->doomed) {
    conn_close(w, c, 0, "connection closed");
    return;
  }
  conn_pump(w, c);
}

static void on_cancel(void *arg) {
  db_req *r = arg;
  atomic_store_explicit(&r->cancel, 1, memory_order_release);
  actio__bell_ring(r->w->bell);
}

/* The requests from the inbox: bound to a connection of this worker. */
static void take_inbox(db_worker *w) {
  for (actio__bell_link *l = actio__bell_take(w->bell), *next; l != NULL; l = next) {
    next = l->next;
    db_req *r = req_of(l);
    r->w = w;
    w->used = 1;
    if (r->kind == K_END && actio_future_is_done(r->reply) && r->commit) {
      r->commit = 0; /* a commit cancelled before it left: roll back */
      r->q.sql = "ROLLBACK";
    }
    /* Never withdrawn: COPY data (the stream stays whole) and the end of a
     * transaction (its connection must not stay inside it). */
    int keep = r->kind == K_CWRITE || r->kind == K_CEND || r->kind == K_CDROP ||
               r->kind == K_END || r->kind == K_TDROP;
    if (!keep && actio_future_is_done(r->reply)) {
      req_free(r); /* cancelled before it got here */
      continue;
    }
    if (!keep && actio_future_on_cancel(r->reply, on_cancel, r) == ACTIO_ECANCELED) {
      req_fail(r, ACTIO_ECANCELED, "cancelled");
      continue;
    }
    if (r->kind == K_LISTEN || r->kind == K_UNLISTEN) {
      q_push(&w->lq_head, &w->lq_tail, r); /* we hold the listener */
      continue;
    }
    if (r->kind == K_CWRITE || r->kind == K_CEND || r->kind == K_CDROP) {
      actio_db_copy *cp = r->copy;
      if (cp->c == NULL) {
        req_end(r, r->kind == K_CDROP ? 0 : ACTIO_ECONN, NULL, NULL,
                "COPY: its connection was lost");
        continue;
      }
      q_push(&cp->q_head, &cp->q_tail, r);
      /* Not copy_pump_in alone: once the end is sent, the server's answer
       * may already sit in libpq's buffer, and the socket stay quiet. */
      service(w, cp->c, POLLIN);
      continue;
    }
    conn *c = r->txn->c;
    if (c == NULL) {
      req_fail(r, ACTIO_ECONN, "the transaction's connection was lost");
      continue;
    }
    q_push(&c->q_head, &c->q_tail, r);
    conn_pump(w, c);
  }
}

/* Cancelled requests: those not sent are dropped, those running are
 * cancelled on the server (one at a time per connection). */
static void reap_cancelled(db_worker *w) {
  db_req **heads[2][2] = {{&w->pend_head, &w->pend_tail}, {&w->lq_head, &w->lq_tail}};
  for (int q = 0; q < 2; q++)
    for (db_req *r = *heads[q][0], *next; r != NULL; r = next) {
      next = r->next;
      if (atomic_load_explicit(&r->cancel, memory_order_acquire)) {
        q_unlink(heads[q][0], heads[q][1], r);
        req_fail(r, ACTIO_ECANCELED, "cancelled");
      }
    }
  for (unsigned i = 0; i <= w->nconns; i++) {
    conn *c = i < w->nconns ? &w->conns[i] : &w->lc;
    if (c->state != C_READY)
      continue;
    for (db_req *r = c->q_head, *next; r != NULL; r = next) {
      next = r->next; /* ends of transactions never have the flag */
      if (atomic_load_explicit(&r->cancel, memory_order_acquire)) {
        q_unlink(&c->q_head, &c->q_tail, r);
        req_fail(r, ACTIO_ECANCELED, "cancelled");
      }
    }
    db_req *h = actio__pg_conn_head(c->pc);
    if (h != NULL && c->cancel == NULL && !h->cancel_sent &&
        atomic_load_explicit(&h->cancel, memory_order_acquire))
      cancel_on_server(w, c, h);
  }
}

/* Timers: acquire timeouts, connect timeouts, pings, lifetimes, and the
 * end of cancel jobs. Returns the milliseconds until the next one. */
static int timers(db_worker *w) {
  db_state *st = w->st;
  int64_t now = actio__now_ns(), next = now + 1000000000;
  int64_t acquire = (int64_t)st->o.acquire_timeout_ms * 1000000;
  for (db_req *r = w->pend_head, *nx; r != NULL; r = nx) {
    nx = r->next;
    if (r->queued_ns + acquire <= now) {
      q_unlink(&w->pend_head, &w->pend_tail, r);
      char m[96];
      snprintf(m, sizeof m, "no database connection free within %ld ms",
               st->o.acquire_timeout_ms);
      req_fail(r, ACTIO_ETIMEDOUT, m);
    } else if (r->queued_ns + acquire < next) {
      next = r->queued_ns + acquire;
    }
  }
  int64_t connect = (int64_t)st->o.connect_timeout_ms * 1000000;
  for (unsigned i = 0; i <= w->nconns; i++) {
    conn *c = i < w->nconns ? &w->conns[i] : &w->lc;
    if (c->state == C_CONNECTING) {
      if (c->since_ns + connect <= now) {
        if (c == &w->lc)
          listener_failed(w, ACTIO_ECONN, "connect timed out");
        else
          connect_failed(w, c, ACTIO_ECONN, "connect timed out");
      } else if (c->since_ns + connect < next) {
        next = c->since_ns + connect;
      }
      continue;
    }
    if (c->state != C_READY)
      continue;
    if (c->cancel != NULL && c->cancel_for == NULL &&
        atomic_load_explicit(&c->cancel->done, memory_order_acquire)) {
      job_unref(c->cancel); /* delivered, and its target is over */
      c->cancel = NULL;
    }
    if (c == &w->lc || c->txn != NULL || c->copy != NULL ||
        actio__pg_conn_inflight(c->pc) > 0)
      continue;
    if (st->o.max_lifetime_ms > 0) {
      int64_t end = c->since_ns + (int64_t)st->o.max_lifetime_ms * 1000000;
      if (end <= now) {
        conn_close(w, c, 0, "connection past its lifetime");
        continue;
      }
      if (end < next)
        next = end;
    }
    if (st->o.health_check_ms > 0) {
      int64_t due = c->idle_ns + (int64_t)st->o.health_check_ms * 1000000;
      if (due <= now) {
        actio__pg_query ping = {.sql = "SELECT 1"};
        c->idle_ns = now;
        if (actio__pg_conn_send(c->pc, &ping, NULL) != 0)
          conn_broken(w, c);
        continue;
      }
      if (due < next)
        next = due;
    }
  }
  /* Down past the retry budget, with work or a minimum to keep: the pool
   * cannot do its job; its supervisor decides what follows. */
  if (w->pend_head == NULL && count_ready(w) >= w->min)
    w->down_since_ns = 0; /* nothing asks for a connection: the clock stops */
  if (st->o.retry_budget_ms > 0 && w->down_since_ns != 0 &&
      (w->pend_head != NULL || count_ready(w) < w->min)) {
    int64_t end = w->down_since_ns + (int64_t)st->o.retry_budget_ms * 1000000;
    if (end <= now) {
      char why[128];
      snprintf(why, sizeof why, "no PostgreSQL connection for %ld ms",
               st->o.retry_budget_ms);
      actio_actor_fail(w->self, ACTIO_ECONN, why);
    } else if (end < next) {
      next = end;
    }
  }
  if (w->retry_ns > now && w->retry_ns < next &&
      (w->pend_head != NULL || count_ready(w) < w->min))
    next = w->retry_ns;
  if (w->lretry_ns > now && w->lretry_ns < next && w->lc.state == C_EMPTY &&
      (w->subs != NULL || w->lq_head != NULL))
    next = w->lretry_ns;
  int64_t ms = (next - now + 999999) / 1000000;
  return ms < 0 ? 0 : (int)ms;
}

/* Requests it could start now, on open connections or ones it may open,
 * less those already waiting. */
static size_t room(db_worker *w) {
  size_t depth = w->st->o.pipeline_depth, n = 0;
  /* No clock read while connects succeed (this runs at every pop). */
  int can_open = w->fails == 0 || actio__now_ns() >= w->retry_ns;
  for (unsigned i = 0; i < w->nconns; i++) {
    conn *c = &w->conns[i];
    if (c->state == C_EMPTY ? can_open : c->state == C_CONNECTING)
      n += depth;
    else if (usable(c) && actio__pg_conn_inflight(c->pc) < depth)
      n += depth - actio__pg_conn_inflight(c->pc);
  }
  for (db_req *r = w->pend_head; r != NULL && n > 0; r = r->next)
    n--;
  return n;
}

static void publish_stats(db_worker *w) {
  unsigned open = 0, idle = 0, connecting = 0;
  for (unsigned i = 0; i < w->nconns; i++) {
    conn *c = &w->conns[i];
    open += c->state == C_READY;
    connecting += c->state == C_CONNECTING;
    idle += c->state == C_READY && c->txn == NULL && c->copy == NULL &&
            actio__pg_conn_inflight(c->pc) == 0;
  }
  db_state *st = w->st;
  /* Shared counters, touched only when this worker's share changed: this
   * runs at every wait. */
  if (open != w->pub_open)
    atomic_fetch_add_explicit(&st->open, open - w->pub_open, memory_order_relaxed);
  if (idle != w->pub_idle)
    atomic_fetch_add_explicit(&st->idle, idle - w->pub_idle, memory_order_relaxed);
  if (connecting != w->pub_connecting)
    atomic_fetch_add_explicit(&st->connecting, connecting - w->pub_connecting,
                              memory_order_relaxed);
  w->pub_open = open;
  w->pub_idle = idle;
  w->pub_connecting = connecting;
  if (st->o.workers > 1 && !w->stopping) /* a hint for db_full: stale at worst */
    atomic_store_explicit(&st->rooms[w->index], room(w), memory_order_relaxed);
}

static void db_wait(actio_actor *self, void *worker) {
  db_worker *w = worker;
  (void)self;
  /* What it sent itself before this call, the loop took already; only
   * what callbacks send from here on may wait in the mailbox. */
  w->self_woken = 0;
  int timeout = timers(w); /* first: it frees connections from cancels */
  dispatch(w);
  listener_pump(w);
  nfds_t n = 0;
  conn *map[w->nconns + 1];
  w->pfds[n++] = (struct pollfd){.fd = w->efd, .events = POLLIN};
  for (unsigned i = 0; i <= w->nconns; i++) {
    conn *c = i < w->nconns ? &w->conns[i] : &w->lc;
    if (c->state == C_EMPTY)
      continue;
    short ev = actio__pg_conn_events(c->pc);
    if (c->copy != NULL && c->copy->ready != NULL)
      ev &= (short)~POLLIN; /* the consumer asked to wait */
    map[n - 1] = c;
    w->pfds[n++] = (struct pollfd){.fd = actio__pg_conn_fd(c->pc), .events = ev};
  }
  if (w->self_woken)
    timeout = 0; /* its mailbox has work: only look at the sockets */
  if (poll(w->pfds, n, timeout) < 0)
    return; /* EINTR: the loop calls again */
  if (w->pfds[0].revents & POLLIN) {
    uint64_t v;
    ssize_t rd = read(w->efd, &v, sizeof v);
    (void)rd;
  }
  int rang = actio__bell_rang(w->bell);
  for (nfds_t i = 1; i < n; i++) {
    conn *c = map[i - 1];
    if (c->copy != NULL && c->copy->ready != NULL && actio_future_is_done(c->copy->ready)) {
      int st = actio_future_status(c->copy->ready);
      actio_future_unref(c->copy->ready);
      c->copy->ready = NULL;
      if (st != 0 && c->copy->start != NULL) { /* the consumer failed */
        c->copy->start->row_fn = drain_rows;
        actio_future_fail(c->copy->start->reply, st, "COPY TO: consumer failed: %s",
                          actio_strerror(st));
        atomic_store_explicit(&c->copy->start->cancel, 1, memory_order_relaxed);
      }
      service(w, c, POLLIN); /* rows or the end may be buffered already */
    }
    if (w->pfds[i].revents != 0)
      service(w, c, w->pfds[i].revents);
  }
  if (rang) {
    take_inbox(w);
  }
  reap_cancelled(w);
  publish_stats(w);
}

static void db_wake(actio_actor *self, void *worker) {
  db_worker *w = worker;
  (void)self;
  /* A callback on this very worker sent it a message (a closed loop of
   * queries does so at every completion): no need for a system call, the
   * worker looks at its mailbox as soon as this wait returns. */
  if (pthread_equal(pthread_self(), w->thread)) {
    w->self_woken = 1;
    return;
  }
  /* Not a ring: nothing waits in the inbox, the mailbox has the message. */
  efd_write(w->efd);
}

/* Work accepted and not done: a draining stop waits for it. Not an open
 * transaction or a COPY FROM waiting for its caller, who may never come. */
static int db_busy(actio_actor *self, void *worker) {
  db_worker *w = worker;
  (void)self;
  if (w->pend_head != NULL || w->lq_head != NULL)
    return 1;
  if (actio__bell_has_mail(w->bell))
    return 1;
  for (unsigned i = 0; i < w->nconns; i++) {
    conn *c = &w->conns[i];
    if (c->state != C_READY)
      continue;
    int waits_for_caller = c->copy != NULL && c->copy->started && !c->copy->out &&
                           c->copy->q_head == NULL && c->copy->end == NULL;
    if (!waits_for_caller && (c->q_head != NULL || actio__pg_conn_inflight(c->pc) > 0))
      return 1;
  }
  return 0;
}

static int db_handle(actio_actor *self, void *worker, void *msg, actio_future *unused) {
  db_worker *w = worker;
  db_req *r = msg;
  (void)self;
  (void)unused;
  if (actio_future_is_done(r->reply)) {
    req_free(r); /* cancelled or past its deadline while queued */
    return 0;
  }
  r->w = w;
  w->used = 1;
  if (actio_future_on_cancel(r->reply, on_cancel, r) == ACTIO_ECANCELED) {
    req_fail(r, ACTIO_ECANCELED, "cancelled");
    return 0;
  }
  q_push(&w->pend_head, &w->pend_tail, r);
  return 0;
}

static int db_init(actio_actor *self, void **worker) {
  db_state *st = actio_actor_state(self);
  db_worker *w = calloc(1, sizeof *w);
  if (w == NULL)
    return ACTIO_ENOMEM;
  unsigned nw = st->o.workers, i = atomic_fetch_add_explicit(&st->next_worker, 1,
                                                             memory_order_relaxed);
  /* This worker's share of the pool: an even split, the first ones taking
   * the remainder. */
  w->index = i;
  w->nconns = st->o.max_connections / nw + (i < st->o.max_connections % nw);
  w->min = st->o.min_connections / nw + (i < st->o.min_connections % nw);
  if (w->nconns == 0)
    w->nconns = 1;
  int rc = ACTIO_ENOMEM;
  w->conns = calloc(w->nconns, sizeof *w->conns);
  w->pfds = calloc(w->nconns + 2, sizeof *w->pfds);
  if (w->conns == NULL || w->pfds == NULL)
    goto fail_alloc;
  w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (w->efd < 0) {
    rc = -errno;
    goto fail_alloc;
  }
  if ((rc = actio__bell_create(&w->bell, bell_wake, w)) != 0)
    goto fail_efd;
  w->st = st;
  w->self = self;
  w->thread = pthread_self(); /* worker_init runs on the worker */
  if (i == 0) { /* the listener: before spawn returns, so before any call */
    st->listener = w->bell;
    actio__bell_ref(w->bell);
  }
  if (!st->o.lazy)
    dispatch(w); /* starts connecting */
  *worker = w;
  return 0;
fail_efd:
  close(w->efd);
fail_alloc:
  free(w->conns);
  free(w->pfds);
  free(w);
  return rc;
}

/* close's visitor: gathers what was left in the inbox, in order. */
static void collect(actio__bell_link *l, void *arg) {
  db_req ***tail = arg;
  db_req *r = req_of(l);
  r->next = NULL;
  **tail = r;
  *tail = &r->next;
}

static void db_stop(actio_actor *self, void *worker) {
  db_worker *w = worker;
  (void)self;
  w->stopping = 1;
  if (w->st->o.workers > 1) /* no more room here for anyone to count on */
    atomic_store_explicit(&w->st->rooms[w->index], 0, memory_order_relaxed);
  /* Later pushes are refused; what got in before the close is ended
   * outside the bell's lock (a future's callbacks may push again). */
  db_req *left = NULL, **tail = &left;
  actio__bell_close(w->bell, collect, &tail);
  while (left != NULL) {
    db_req *r = left;
    left = r->next;
    req_fail(r, ACTIO_ECANCELED, "database actor stopped");
  }
  while (w->pend_head != NULL) {
    db_req *r = w->pend_head;
    q_unlink(&w->pend_head, &w->pend_tail, r);
    req_fail(r, ACTIO_ECANCELED, "database actor stopped");
  }
  while (w->lq_head != NULL) {
    db_req *r = w->lq_head;
    q_unlink(&w->lq_head, &w->lq_tail, r);
    req_fail(r, ACTIO_ECANCELED, "database actor stopped");
  }
  for (unsigned i = 0; i <= w->nconns; i++) {
    conn *c = i < w->nconns ? &w->conns[i] : &w->lc;
    conn_close(w, c, ACTIO_ECANCELED, "database actor stopped");
  }
  for (sub *s = w->subs, *next; s != NULL; s = next) {
    next = s->next;
    free(s->channel);
    free(s);
  }
  publish_stats(w);
  actio__bell_unref(w->bell);
  close(w->efd); /* after the close: no ring writes to it any more */
  free(w->conns);
  free(w->pfds);
  free(w);
}

static void db_drop(actio_actor *self, void *msg) {
  db_req *r = msg;
  (void)self;
  actio_future_fail(r->reply, ACTIO_ECANCELED, "database actor stopped");
  req_free(r);
}

/* No room here while another worker has some: take no more from the
 * mailbox, so that one does. With no room anywhere every worker takes
 * them, and they wait (and time out) in its queue. */
static int db_full(actio_actor *self, void *worker) {
  (void)self;
  db_worker *w = worker;
  if (w->st->o.workers < 2 || room(w) > 0)
    return 0;
  for (unsigned i = 0; i < w->st->o.workers; i++)
    if (i != w->index &&
        atomic_load_explicit(&w->st->rooms[i], memory_order_relaxed) > 0)
      return 1;
  return 0;
}

static const actio_behavior db_behavior = {
    .worker_init = db_init,
    .handle = db_handle,
    .worker_stop = db_stop,
    .drop = db_drop,
    .wait = db_wait,
    .wake = db_wake,
    .busy = db_busy,
    .full = db_full,
};

/* ---- spawning ---- */

static void state_free(void *p) {
  db_state *st = p;
  pthread_mutex_lock(&st->cmu);
  st->cstop = 1;
  pthread_cond_signal(&st->ccv);
  pthread_mutex_unlock(&st->cmu);
  pthread_join(st->canceller, NULL);
  actio__bell_unref(st->listener);
  pthread_mutex_destroy(&st->cmu);
  pthread_cond_destroy(&st->ccv);
  free(st->rooms);
  free((char *)st->o.dsn);
  free(st);
}

int actio_db_spawn(actio_runtime *rt, const actio_db_opts *opts, actio_actor **out) {
  if (rt == NULL || out == NULL || opts == NULL || opts->dsn == NULL)
    return ACTIO_EINVAL;
  if (actio__pg_dsn_check(opts->dsn) != 0)
    return ACTIO_EDSN;
  db_state *st = calloc(1, sizeof *st);
  if (st == NULL)
    return ACTIO_ENOMEM;
  actio_db_opts o = *opts;
  o.dsn = strdup(opts->dsn);
  if (o.dsn == NULL) {
    free(st);
    return ACTIO_ENOMEM;
  }
  o.max_connections = o.max_connections ? o.max_connections : 10;
  /* Two threads by default: a client's share of the kernel's loopback and
   * wake-up work is then done on two cores (pgbench's -j 2). */
  o.workers = o.workers ? o.workers : o.max_connections >= 2 ? 2 : 1;
  if (o.min_connections == 0 && !o.lazy)
    o.min_connections = 1;
  if (o.min_connections > o.max_connections)
    o.min_connections = o.max_connections;
  if (o.max_connections < o.workers)
    o.max_connections = o.workers;
  o.pipeline_depth = o.pipeline_depth ? o.pipeline_depth : 32;
  o.statement_cache = o.statement_cache ? o.statement_cache : 256;
  o.connect_timeout_ms = o.connect_timeout_ms > 0 ? o.connect_timeout_ms : 10000;
  o.acquire_timeout_ms = o.acquire_timeout_ms > 0 ? o.acquire_timeout_ms : 30000;
  o.health_check_ms = o.health_check_ms ? o.health_check_ms : 30000;
  o.max_lifetime_ms = o.max_lifetime_ms ? o.max_lifetime_ms : 3600000;
  o.reconnect_min_ms = o.reconnect_min_ms > 0 ? o.reconnect_min_ms : 100;
  o.reconnect_max_ms = o.reconnect_max_ms > 0 ? o.reconnect_max_ms : 10000;
  if (o.reconnect_max_ms < o.reconnect_min_ms)
    o.reconnect_max_ms = o.reconnect_min_ms;
  st->o = o;
  st->rt = rt;
  st->rooms = calloc(o.workers, sizeof *st->rooms);
  if (st->rooms == NULL) {
    free((char *)o.dsn);
    free(st);
    return ACTIO_ENOMEM;
  }
  pthread_mutex_init(&st->cmu, NULL);
  pthread_cond_init(&st->ccv, NULL);
  int rc = -pthread_create(&st->canceller, NULL, canceller_main, st);
  if (rc != 0) {
    pthread_mutex_destroy(&st->cmu);
    pthread_cond_destroy(&st->ccv);
    free(st->rooms);
    free((char *)o.dsn);
    free(st);
    return rc;
  }
  actio_actor_opts ao = {
      .name = "db",
      .workers = o.workers,
      .capacity = o.capacity ? o.capacity : 4096,
      .state = st,
      .state_free = state_free,
  };
  rc = actio_actor_spawn(rt, &db_behavior, &ao, out);
  if (rc == 0)
    st->self = *out;
  return rc;
}

/* ---- the API ---- */

static db_state *state_of(actio_actor *db) {
  return db != NULL && actio_actor_behavior(db) == &db_behavior
             ? actio_actor_state(db)
             : NULL;
}

static int valid(const actio_db_request *q) {
  if (q == NULL || q->sql == NULL || q->nparams < 0 ||
      (q->nparams > 0 && q->params == NULL))
    return 0;
  for (int i = 0; i < q->nparams; i++)
    if (q->formats && q->formats[i] && q->params[i] != NULL &&
        (q->lengths == NULL || q->lengths[i] < 0))
      return 0;
  return 1;
}

/* Sends r through the mailbox; on success *out is the caller's future. */
static int submit(actio_actor *db, db_state *st, db_req *r, long timeout_ms,
                  actio_future **out) {
  int rc = req_future(st, r, timeout_ms);
  /* A worker sending to its own actor (from a future's callback) must not
   * wait for room it alone could make. */
  if (rc == 0)
    rc = actio__request(db, r, r->reply,
                        st->o.fail_when_full || actio_actor_self() == db ? 0 : -1, out);
  if (rc != 0)
    req_free(r);
  return rc;
}

/* Sends r to the inbox of the worker it is bound to (a transaction's or a
 * COPY's connection, the listener); on success *out is the caller's
 * future. Without out, r gets no future (the drop of a forgotten
 * transaction or COPY). */
static int submit_bound(db_state *st, bell *b, db_req *r, long timeout_ms,
                        actio_future **out) {
  int rc = out ? req_future(st, r, timeout_ms) : 0;
  if (rc == 0)
    rc = actio__request_bound(st->self, b, &r->link, r->reply, out);
  if (rc != 0)
    req_free(r);
  return rc;
}

int actio_db_send(actio_actor *db, const actio_db_request *req, actio_future **out) {
  db_state *st = state_of(db);
  if (st == NULL || out == NULL || !valid(req))
    return ACTIO_EINVAL;
  db_req *r = req_new(K_QUERY, req, NULL, 0);
  if (r == NULL)
    return ACTIO_ENOMEM;
  r->nocache = req->no_cache;
  return submit(db, st, r, req->timeout_ms, out);
}

int actio_db_query(actio_actor *db, const char *sql, int nparams,
                   const char *const *params, actio_future **out) {
  actio_db_request q = {.sql = sql, .nparams = nparams, .params = params};
  return actio_db_send(db, &q, out);
}

int actio_db_script(actio_actor *db, const char *sql, actio_future **out) {
  db_state *st = state_of(db);
  if (st == NULL || out == NULL || sql == NULL)
    return ACTIO_EINVAL;
  actio_db_request q = {.sql = sql};
  db_req *r = req_new(K_SCRIPT, &q, NULL, 0);
  if (r == NULL)
    return ACTIO_ENOMEM;
  return submit(db, st, r, 0, out);
}

/* ---- transactions ---- */

int actio_db_begin(actio_actor *db, const actio_db_txn_opts *opts, actio_future **out) {
  db_state *st = state_of(db);
  actio_db_txn_opts o = opts ? *opts : (actio_db_txn_opts){0};
  if (st == NULL || out == NULL || (unsigned)o.isolation > ACTIO_DB_SERIALIZABLE)
    return ACTIO_EINVAL;
  actio_db_txn *t = calloc(1, sizeof *t);
  if (t == NULL)
    return ACTIO_ENOMEM;
  atomic_init(&t->refs, 1); /* the BEGIN request's */
  t->st = st;
  actio_db_request q = {.sql = begin_sql(&o)};
  db_req *r = req_new(K_BEGIN, &q, NULL, 0);
  if (r == NULL) {
    free(t);
    return ACTIO_ENOMEM;
  }
  r->nocache = 1; /* not worth a prepared statement */
  r->txn = t;
  return submit(db, st, r, 0, out);
}

/* The worker pins the transaction before publishing it, so t->bell is set
 * by the time a caller holds it. */
static int txn_req(actio_db_txn *t, enum kind kind, const actio_db_request *q,
                   int cacheable, actio_future **out) {
  if (t == NULL || out == NULL || !valid(q))
    return ACTIO_EINVAL;
  if (atomic_load_explicit(&t->state, memory_order_acquire) != T_OPEN)
    return ACTIO_ESTATE;
  db_req *r = req_new(kind, q, NULL, 0);
  if (r == NULL)
    return ACTIO_ENOMEM;
  r->nocache = !cacheable || q->no_cache;
  r->txn = t;
  ref(&t->refs);
  return submit_bound(t->st, t->bell, r, q->timeout_ms, out);
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
  actio_db_request q = {.sql = commit ? "COMMIT" : "ROLLBACK"};
  db_req *r = req_new(out ? K_END : K_TDROP, &q, NULL, 0);
  if (r == NULL)
    return ACTIO_ENOMEM;
  r->commit = commit;
  r->nocache = 1;
  r->txn = t;
  ref(&t->refs);
  return submit_bound(t->st, t->bell, r, 0, out);
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
  txn_unref(t);
}

void actio_db_txn_free(actio_db_txn *t) {
  if (t != NULL)
    txn_user_drop(t);
}

static int savepoint(actio_db_txn *t, const char *verb, const char *name,
                     actio_future **out) {
  if (name == NULL || *name == '\0' || strlen(name) > 63)
    return ACTIO_EINVAL;
  char q[140], sql[180];
  quote_ident(q, sizeof q, name);
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

/* ---- COPY ---- */

static int copy_start(actio_actor *db, actio_db_txn *t, const char *sql,
                      actio_db_row_fn fn, void *arg, actio_future **out) {
  db_state *st = state_of(db);
  if (st == NULL || sql == NULL || out == NULL)
    return ACTIO_EINVAL;
  if (t != NULL && atomic_load_explicit(&t->state, memory_order_acquire) != T_OPEN)
    return ACTIO_ESTATE;
  actio_db_copy *cp = calloc(1, sizeof *cp);
  if (cp == NULL)
    return ACTIO_ENOMEM;
  atomic_init(&cp->refs, 1); /* the request's */
  cp->st = st;
  actio_db_request q = {.sql = sql};
  db_req *r = req_new(K_COPY, &q, NULL, 0);
  if (r == NULL) {
    free(cp);
    return ACTIO_ENOMEM;
  }
  r->copy = cp;
  r->row_fn = fn;
  r->arg = arg;
  cp->start = r;
  if (t != NULL) {
    cp->txn = t;
    ref(&t->refs);
    cp->bell = t->bell;
    actio__bell_ref(t->bell);
    r->txn = t;
    ref(&t->refs);
    return submit_bound(st, t->bell, r, 0, out);
  }
  return submit(db, st, r, 0, out);
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
  db_req *r = req_new(kind, NULL, data, len);
  if (r == NULL)
    return ACTIO_ENOMEM;
  r->copy = cp;
  ref(&cp->refs);
  return submit_bound(cp->st, cp->bell, r, 0, out);
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
  copy_unref(cp);
}

void actio_db_copy_free(actio_db_copy *c) {
  if (c != NULL)
    copy_user_drop(c);
}

/* ---- LISTEN ---- */

void actio_db_notification_free(actio_db_notification *n) { free(n); }

/* Tells a copy of n to the actor `arg`; a full mailbox drops it. */
static void notify_actor(void *arg, const actio_db_notification *n) {
  size_t lc = strlen(n->channel) + 1, lp = strlen(n->payload) + 1;
  actio_db_notification *copy = malloc(sizeof *copy + lc + lp);
  if (copy == NULL)
    return;
  char *p = (char *)(copy + 1);
  copy->channel = memcpy(p, n->channel, lc);
  copy->payload = memcpy(p + lc, n->payload, lp);
  copy->pid = n->pid;
  copy->missed = n->missed;
  if (actio_tell(arg, copy, 0) != 0)
    free(copy);
}

static int listen_req(actio_actor *db, enum kind kind, const char *channel,
                      actio_db_notify_fn fn, void *arg, actio_future **out) {
  db_state *st = state_of(db);
  if (st == NULL || out == NULL || channel == NULL || *channel == '\0' ||
      strlen(channel) > 63 || (fn == NULL && arg == NULL))
    return ACTIO_EINVAL;
  db_req *r = req_new(kind, NULL, channel, strlen(channel));
  if (r == NULL)
    return ACTIO_ENOMEM;
  r->nfn = fn ? fn : notify_actor;
  r->arg = arg;
  if (kind == K_LISTEN) {
    sub *s = calloc(1, sizeof *s);
    if (s == NULL || (s->channel = strdup(channel)) == NULL) {
      free(s);
      free(r);
      return ACTIO_ENOMEM;
    }
    s->fn = r->nfn;
    s->arg = arg;
    r->arg = s;
  }
  /* Straight to the worker whose connection listens. */
  return submit_bound(st, st->listener, r, 0, out);
}

int actio_db_listen(actio_actor *db, const char *channel, actio_db_notify_fn fn,
                    void *arg, actio_future **out) {
  return listen_req(db, K_LISTEN, channel, fn, arg, out);
}

int actio_db_unlisten(actio_actor *db, const char *channel, actio_db_notify_fn fn,
                      void *arg, actio_future **out) {
  return listen_req(db, K_UNLISTEN, channel, fn, arg, out);
}

/* ---- stats ---- */

void actio_db_stats_get(actio_actor *db, actio_db_stats *out) {
  db_state *st = state_of(db);
  if (out == NULL)
    return;
  memset(out, 0, sizeof *out);
  if (st == NULL)
    return;
  out->connections = atomic_load_explicit(&st->open, memory_order_relaxed);
  out->idle = atomic_load_explicit(&st->idle, memory_order_relaxed);
  out->connecting = atomic_load_explicit(&st->connecting, memory_order_relaxed);
  out->connects = atomic_load_explicit(&st->connects, memory_order_relaxed);
  out->failures = atomic_load_explicit(&st->failures, memory_order_relaxed);
  out->queries = atomic_load_explicit(&st->queries, memory_order_relaxed);
  out->cancels = atomic_load_explicit(&st->cancels, memory_order_relaxed);
}

int actio_db_child(actio_runtime *rt, void *opts, actio_actor **out) {
  return actio_db_spawn(rt, opts, out);
}

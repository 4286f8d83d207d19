/* db_internal.h: what the database actor's files share: its types (the
 * pool's state, a worker, a connection, a request, a transaction, a COPY)
 * and the functions one file calls in another. */
#ifndef ACTIO_ACTORS_DB_INTERNAL_H
#define ACTIO_ACTORS_DB_INTERNAL_H

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "actio.h"
#include "actors/core/bell.h"
#include "base/debug.h"
#include "io/pg/pg_cancel.h"
#include "io/pg/pg_conn.h"
#include "io/pg/pg_error.h"
#include "io/pg/pg_result.h"

/*
 * Each worker owns a share of the pool's connections (io/pg) and drives
 * them all from one poll. Requests reach it through the actor's mailbox
 * (queries, scripts, BEGIN, a COPY of its own) or, when they are bound to
 * one of its connections (a transaction's, a COPY's, the listener's),
 * through its bell's inbox. Everything a worker owns is touched by that
 * worker alone, except what says otherwise.
 *
 * The files, and who calls whom. On the worker's side: db_worker.c (the
 * loop, its poll and timers, where each unit's end is dispatched) calls
 * the worker halves of db_txn.c, db_copy.c, db_listen.c, db_batch.c and
 * db_stream.c, which call db_pool.c (the connections), which calls
 * db_batch.c's statement source and db_req.c (requests). On the
 * callers' side: the public functions in db_api.c, db_txn.c, db_copy.c and
 * db_listen.c check their arguments, then make and send a request with
 * db_req.c. No call goes back up (the call_graph test holds it): a
 * connection that closes (db_pool.c) ends its units through the state's
 * on_unit, which spawn sets to db_worker.c's actio__db_on_unit; and
 * db_req.c knows a database actor by its drop function, which is its own.
 */

typedef struct db_worker db_worker;
typedef struct conn conn;
typedef struct db_req db_req;
typedef struct sub sub;
typedef struct actio__db_canceller actio__db_canceller;

/* A cancel request for the server, run by the canceller thread because
 * sending it blocks. */
typedef struct cancel_job {
  _Atomic unsigned refs; /* the connection's and the canceller's */
  _Atomic int done;      /* sent (release; acquired by the worker) */
  actio__pg_cancel *pc;
  actio__bell *bell;     /* rung once sent (a reference) */
  struct cancel_job *next;
  /* The worker's: sent this many times; when to send it again should its
   * unit still run (0: not delivered yet, or queued again). */
  unsigned sends;
  int64_t again_ns;
} cancel_job;

/* A cancel request delivered while its unit still runs goes again after a
 * pause that doubles, from the first to the last (jittered down to half):
 * the server may have dropped it (actio__db_cancel_again). */
enum { DB_CANCEL_AGAIN_FIRST_MS = 1000, DB_CANCEL_AGAIN_LAST_MS = 10000 };

/* What a worker tells the other workers and actio_db_stats_get, written
 * by that worker alone (relaxed stores, never a read-modify-write) and
 * read summed over the workers: a query's end or a wait moves no cache
 * line another worker writes. Its count of units ended, stored at each
 * end, has a line of its own; the rest changes at most once a wait. */
typedef struct db_pub {
  _Alignas(64) _Atomic uint64_t queries;
  _Alignas(64) _Atomic unsigned open, idle, connecting;
  _Atomic int room; /* it could start a request now: db_full's hint */
} db_pub;

/* The pool: shared by its workers, read by callers. */
typedef struct db_state {
  actio_db_opts o; /* defaults filled in; o.dsn is ours */
  actio_runtime *rt;
  actio_actor *self; /* set once spawned, before any request */
  actio__pg_done_fn on_unit; /* how a unit ends: actio__db_on_unit */
  _Atomic unsigned next_worker; /* hands out the pool's shares */
  db_pub *pub;                  /* one per worker (aligned_alloc) */
  actio__bell *listener;        /* worker 0's bell: LISTEN goes there (a
                                   reference, set before spawn returns) */
  actio__db_canceller *canceller; /* the pool's share of it */
  _Atomic uint64_t serials;     /* the last connection serial given */
  _Atomic uint64_t stmt_names;  /* the last prepared statement's number */
  pthread_mutex_t gmu;          /* guards grave and stopped */
  actio_db_stmt *grave;         /* destroyed statements to DEALLOCATE */
  unsigned char *stopped;       /* per worker: stopped, never reaps again */
  _Atomic unsigned grave_gen;   /* bumped at each destroy (release) */
  _Atomic uint64_t connects, failures, cancels; /* rare: shared */
  _Atomic uint64_t held;        /* a transaction's send held back for a
                                   cancel request on its way (tests:
                                   actio__db_held) */
} db_state;

enum kind {
  K_QUERY,   /* mailbox: a pooled query */
  K_SCRIPT,  /* mailbox: a script, on a connection of its own for the time */
  K_BEGIN,   /* mailbox: pins a connection to a transaction */
  K_TQUERY,  /* bound: a query (or savepoint) inside a transaction */
  K_END,     /* bound: COMMIT or ROLLBACK */
  K_TDROP,   /* bound: the ROLLBACK of a transaction its caller dropped */
  K_COPY,    /* mailbox, or bound inside a transaction: starts a COPY */
  K_CWRITE,  /* bound: COPY data */
  K_CEND,    /* bound: the end of a COPY FROM STDIN */
  K_CDROP,   /* bound: the abort of a COPY its caller dropped */
  K_LISTEN,  /* bound to the listener */
  K_UNLISTEN,
  K_RELISTEN, /* the listener's own: restores every channel after a loss */
  K_BATCH,   /* mailbox: statements before one Sync (db_batch.c) */
  K_STREAM,  /* mailbox: a query whose rows go to a consumer (db_stream.c) */
  K_INIT,    /* the pool's own: on_connect_sql on a connection; commit set
                when the connection is new (on_connect runs after it) */
  K_PREPARE, /* mailbox: prepares and describes a statement (db_prepare.c) */
};

/* What a query says of its parameters beyond their values; made only when
 * it says something: NULL stands for all text, types inferred. */
typedef struct db_params {
  const uint32_t *types;        /* OIDs, or NULL: the server infers */
  const int *lengths, *formats; /* NULL: every value is text */
  actio_db_stmt *stmt;          /* a prepared statement (a reference), or
                                   NULL */
  int parse, parsed;            /* stmt's Parse went with its last send;
                                   ... and succeeded */
} db_params;

/* Requests wait in lists by the thousand, each behind its future: what a
 * queued query costs is mostly this header (see actio__db_req_new), so
 * fields that only some kinds use share a union. */
/* How many times a pooled unit hit by another's cancel request is sent
 * again before it fails with it. */
enum { DB_RESENDS = 3 };

struct db_req {
  /* A request bound to a connection waits in its worker's inbox, then
   * joins the worker's lists: take_inbox takes the whole inbox at once
   * (and bell_close hands over what is left), each request out of it
   * before it joins a list, so one pair of links serves both. */
  union {
    actio__bell_link link; /* in a worker's inbox */
    struct {
      db_req *prev, *next; /* in the worker's pending or sent list, a
                              connection's queue or a COPY's */
    };
  };
  actio_future *reply; /* NULL for the internal ones */
  db_worker *w;        /* the worker that took it */
  conn *c;             /* sent on */
  int64_t queued_ns;
  actio_db_txn *txn;   /* a reference, or NULL */
  actio_db_copy *copy; /* a reference, or NULL */
  const char *sql;     /* NULL for COPY data, LISTEN and UNLISTEN */
  _Atomic int cancel;  /* set by its cancel hook (release) */
  uint8_t kind;        /* an enum kind */
  /* One memory location: written by the caller before it sends, then by
   * the worker alone. stray: in flight behind the unit a cancel request
   * was sent for, so that request may land on it; resent: how many times
   * such a request did (DB_RESENDS at most). */
  unsigned cancel_sent : 1, stray : 1, nocache : 1, commit : 1, resent : 2;
  union { /* by kind */
    struct { /* K_QUERY, K_BEGIN, K_TQUERY, K_END, K_TDROP, K_BATCH (all
              * the rows' values), K_STREAM */
      int nparams, binary_results; /* as the caller gave them */
      const char *const *values; /* NULL with no parameters */
      db_params *more;           /* NULL: all text, types inferred */
    };
    struct { /* K_COPY */
      actio_db_row_fn row_fn; /* COPY TO */
      void *row_arg;
    };
    struct { /* K_CWRITE, K_CEND */
      const char *data; /* the data, or the abort reason (NULL: none) */
      size_t len;
    };
    struct { /* K_LISTEN, K_UNLISTEN */
      const char *channel;
      actio_db_notify_fn nfn;
      void *arg; /* LISTEN: the subscription it makes (sub *) */
    };
  };
  char bytes[];
};

/* A connection's states: EMPTY -> CONNECTING -> READY -> EMPTY. */
enum { C_EMPTY, C_CONNECTING, C_READY };

struct conn {
  actio__pg_conn *pc;
  int state;
  int64_t since_ns;  /* connecting since, or ready since */
  int64_t idle_ns;   /* idle since */
  actio_db_txn *txn; /* pinned to it (a reference) */
  actio_db_copy *copy; /* a COPY runs on it (a reference) */
  db_req *q_head, *q_tail; /* bound requests not sent yet */
  cancel_job *cancel; /* out for the unit at the head: nothing new is sent
                         on c until it was delivered and that unit is
                         over (else it may land on what was sent) */
  db_req *cancel_for;
  int simple;        /* a script, COPY or stream unit runs */
  db_req *stream;    /* the stream it runs, or NULL */
  unsigned round;    /* units sent in this dispatch */
  int doomed;        /* close once callbacks are over */
  actio_db_conn_info held; /* taken for a transaction or session,
                        on_acquire accepting: on_release is owed, once,
                        with what on_acquire was told (libpq forgets it
                        once the connection is lost). backend_pid 0: not
                        owed */
  int init;          /* INIT_*: its on_connect_sql */
  unsigned slot;     /* its index among the pool's connections */
  uint64_t serial;   /* this session's number in the pool, new at each
                        connect and reset: what a statement's `on` holds */
  int fail_rc;       /* doomed by a failed initialisation: a failed connect */
  char *fail_msg;    /* ... with this message (malloc'd, or NULL) */
};

/* A connection's on_connect_sql: none to run, running, to run again (after
 * a session's reset, once the callbacks are over). */
enum { INIT_NONE, INIT_RUNNING, INIT_WANTED };

/* A transaction's and a COPY's states: T_NEW until the server took it,
 * T_OPEN while the caller may use it, T_DONE once ended or dropped. */
enum { T_NEW, T_OPEN, T_DONE };

struct actio_db_txn {
  _Atomic unsigned refs;
  db_state *st;
  _Atomic int state;
  actio__bell *bell; /* its worker's, set before the txn is published */
  conn *c;           /* worker-only; NULL once lost */
  int session;       /* 1: a session (actio_db_acquire): no BEGIN, and its
                        end resets the connection; set before it is sent */
};

/* A session is a transaction without its BEGIN: the same path. */
struct actio_db_session {
  actio_db_txn t;
};

struct actio_db_copy {
  _Atomic unsigned refs;
  db_state *st;
  _Atomic int state;
  actio__bell *bell;
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

/* A prepared statement (db_prepare.c). Once described it is read only,
 * but for `on`, each slot of which only its connection's worker touches. */
struct actio_db_stmt {
  _Atomic unsigned refs; /* its caller's, each request's, the graveyard's */
  _Atomic int dead;      /* destroyed: no more prepares (release) */
  db_state *st;          /* its actor is referenced while it lives */
  char name[32];         /* "actio_s<n>" on the server */
  char *sql;
  int nparams, ncols;
  uint32_t *ptypes, *ctypes;
  char **cnames;
  uint64_t *on;          /* per connection slot: the serial of the session
                            that prepared it, 0 for none */
  unsigned char *gdone;  /* in the graveyard: per worker, done with it */
  unsigned gleft;        /* ... workers not done yet */
  actio_db_stmt *gnext;
};

/* A LISTEN subscription, on the listener's worker. */
struct sub {
  char *channel;
  actio_db_notify_fn fn;
  void *arg;
  sub *next;
};

struct db_worker {
  db_state *st;
  actio_actor *self;
  actio__bell *bell;
  int efd;             /* the bell's wake-up, in the worker's poll */
  conn *conns;
  unsigned nconns, min;
  int used;            /* a request came: lazy pools fill up from now */
  int at_min;          /* min connections open or opening, as last counted
                        * (cleared when one closes) */
  db_req *pend_head, *pend_tail; /* waiting for a connection */
  size_t npend;        /* their number (actio__db_pend_*) */
  size_t conn_room;    /* what the connections could take, as of the end of
                        * the last wait (connections change only inside it) */
  db_req *sent;        /* sent, not ended */
  int fails;           /* connects failed in a row */
  int64_t down_since_ns; /* since then no connect succeeded (0: up) */
  int64_t retry_ns;    /* no connect before this */
  int stopping;
  /* LISTEN: its own connection, outside the pool (worker 0 only) */
  conn lc;
  sub *subs;
  db_req *lq_head, *lq_tail;
  int lfails, lost;
  int64_t lretry_ns;
  struct pollfd *pfds;
  db_pub *pub;         /* its own, in st->pub */
  unsigned pub_open, pub_idle, pub_connecting; /* as last stored there */
  int pub_room;
  uint64_t queries;    /* units ended here */
  int64_t now_ns;      /* the clock as the last wait read it: when a
                        * connection that goes idle meanwhile went idle */
  pthread_t thread;    /* the worker's own */
  unsigned index;      /* in st->pub */
  unsigned grave_gen;  /* st->grave_gen as last reaped */
  int grave_left;      /* a statement in the graveyard waits for one of its
                          connections to be free */
  int self_woken;      /* a message it sent itself waits in the mailbox */
  int queued;          /* a request joined pending since the last dispatch
                        * (a callback's, taken at once: actio__request_self) */
};

/* ---- lists of requests (worker-only) ---- */

static inline void actio__db_q_push(db_req **h, db_req **t, db_req *r) {
  ACTIO__ASSERT(r->prev == NULL && r->next == NULL); /* in no other list */
  r->next = NULL;
  r->prev = *t;
  if (*t)
    (*t)->next = r;
  else
    *h = r;
  *t = r;
}

/* t may be NULL for a list without a tail (the sent list). */
static inline void actio__db_q_unlink(db_req **h, db_req **t, db_req *r) {
  ACTIO__ASSERT(r->prev != NULL ? r->prev->next == r : *h == r); /* in this list */
  ACTIO__ASSERT(r->next != NULL ? r->next->prev == r : t == NULL || *t == r);
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

/* The pending list, counted: actio__db_room subtracts it at every pop. */
static inline void actio__db_pend_push(db_worker *w, db_req *r) {
  actio__db_q_push(&w->pend_head, &w->pend_tail, r);
  w->npend++;
}

/* Ahead of the others (a query sent again after a stray cancel). */
static inline void actio__db_pend_push_front(db_worker *w, db_req *r) {
  ACTIO__ASSERT(r->prev == NULL);
  r->next = w->pend_head;
  if (w->pend_head)
    w->pend_head->prev = r;
  else
    w->pend_tail = r;
  w->pend_head = r;
  w->npend++;
}

static inline void actio__db_pend_unlink(db_worker *w, db_req *r) {
  ACTIO__ASSERT(w->npend > 0);
  actio__db_q_unlink(&w->pend_head, &w->pend_tail, r);
  w->npend--;
}

/* Requests it could start now, on open connections or ones it may open,
 * less those already waiting. */
static inline size_t actio__db_room(const db_worker *w) {
  return w->conn_room > w->npend ? w->conn_room - w->npend : 0;
}

/* actio__request_self's test: this worker, not stopping, can start one
 * more request now. */
static inline int actio__db_has_room(void *worker) {
  const db_worker *w = worker;
  return !w->stopping && actio__db_room(w) > 0;
}

static inline void actio__db_sent_add(db_worker *w, db_req *r) {
  ACTIO__ASSERT(r->prev == NULL && r->next == NULL);
  r->prev = NULL;
  r->next = w->sent;
  if (w->sent)
    w->sent->prev = r;
  w->sent = r;
}

/* ---- db_req.c: requests ---- */

/* A reference more to a transaction or COPY, made from one held. */
static inline void actio__db_ref(_Atomic unsigned *refs) {
  /* Relaxed: a new reference is made from one already held. */
  unsigned before = atomic_fetch_add_explicit(refs, 1, memory_order_relaxed);
  ACTIO__ASSERT(before > 0);
  (void)before;
}

/* Hands a new transaction or COPY (state T_NEW, references refs) to its
 * caller as r's value: open from now on, with a reference the caller's,
 * dropped by `drop` if the future was cancelled meanwhile (a rollback, an
 * abort). */
static inline void actio__db_publish(db_req *r, _Atomic int *state,
                                     _Atomic unsigned *refs, void *obj,
                                     actio_free_fn drop) {
  /* Relaxed: the future's completion publishes obj with its state. */
  int was = atomic_exchange_explicit(state, T_OPEN, memory_order_relaxed);
  ACTIO__ASSERT(was == T_NEW); /* nobody else has it yet */
  (void)was;
  actio__db_ref(refs);
  actio_future_clear_cancel(r->reply);
  if (actio_future_resolve(r->reply, obj, drop) != 0)
    drop(obj);
}

/* Drops a reference; 1 if it was the last. */
static inline int actio__db_unref(_Atomic unsigned *refs) {
  /* Acq_rel: the last owner sees every other owner's writes before it
   * frees. */
  unsigned before = atomic_fetch_sub_explicit(refs, 1, memory_order_acq_rel);
  ACTIO__ASSERT(before > 0); /* never below zero */
  return before == 1;
}
/* Drop a reference; the last frees. NULL accepted. */
void actio__db_txn_unref(actio_db_txn *t);
void actio__db_copy_unref(actio_db_copy *cp);

/* A request of `kind`, with copies of in's SQL and parameters and of
 * `data` in one block behind it (in and data may be NULL). NULL when out
 * of memory. */
db_req *actio__db_req_new(enum kind kind, const actio_db_request *in,
                          const void *data, size_t len);
/* The same with `ext` bytes (zeroed) first in the block, for what a kind
 * keeps beside its parameters (a batch's, a stream's): actio__db_req_ext. */
db_req *actio__db_req_new_ext(enum kind kind, const actio_db_request *in,
                              size_t ext);
static inline void *actio__db_req_ext(db_req *r) { return r->bytes; }
/* Drops a reference to a prepared statement; the last frees it. NULL
 * accepted. */
void actio__db_stmt_unref(actio_db_stmt *s);
/* Frees r and drops what it holds; its future is not completed. */
void actio__db_req_free(db_req *r);
/* What r is, for its messages: its statement (whitespace runs as one
 * space, comments dropped, string literals as '***': a password in ALTER
 * ROLE cannot be a parameter; a dollar-quoted literal or one holding a
 * backslash hides the rest; cut after 80 characters), never its
 * parameters; or its kind ("COPY data", "LISTEN <channel>"). */
void actio__db_req_label(const db_req *r, char *out, size_t cap);
/* Completes r's future (if any) and frees r: with res (given) when rc is
 * 0, else failed with rc and "<label>: <msg>", carrying err (lent: the
 * server's error, read back with actio_db_error_get) when there is one. */
void actio__db_req_end(db_req *r, int rc, actio__pg_result *res,
                       const actio__pg_error *err, const char *msg);
/* actio__db_req_end for a failure without the server's error. */
void actio__db_req_fail(db_req *r, int rc, const char *msg);
/* The free function of a future whose value is a result. */
void actio__db_result_free(void *res);
/* Completes `to` as `from` (done) completed, with the server's error (and
 * a batch's index) when there is one. 0 or ACTIO_EALREADY. */
int actio__db_forward(actio_future *to, actio_future *from);

/* Writes id as a quoted SQL identifier ("a""b"); len >= 2 * strlen(id) + 3
 * keeps it whole. */
void actio__db_quote_ident(char *out, size_t len, const char *id);

/* For tests. actio__db_set_idle_poll_ms: the longest a worker's poll sleeps
 * with no timer due, 1000 ms by default; -1: until woken, so that a lost
 * wake-up hangs a test instead of costing it a second. Any thread; for
 * the waits that start after it. actio__db_rooms: how many of db's
 * workers publish room (db_full's hint), as last published. */
void actio__db_set_idle_poll_ms(int ms);
unsigned actio__db_rooms(actio_actor *db);

/* For tests. actio__db_set_cancel_hook: fn (NULL: none) runs on the
 * canceller thread before each cancel request it sends, so that a test can
 * hold one on its way. Any thread. actio__db_graves: how many destroyed
 * statements of db's wait for a DEALLOCATE on some connection. */
typedef void (*actio__db_cancel_hook_fn)(void);
void actio__db_set_cancel_hook(actio__db_cancel_hook_fn fn);
/* For tests: the canceller threads alive, the process's (one a pool, and
 * those that outlive theirs, a request still on its way). Any thread. */
unsigned actio__db_cancellers(void);
unsigned actio__db_graves(actio_actor *db);
/* For tests: how many times db held a transaction's or session's send back
 * because a cancel request was on its way to its connection. Any thread. */
uint64_t actio__db_held(actio_actor *db);

/* db's state if it is a database actor, else NULL. */
db_state *actio__db_state(actio_actor *db);
/* 0 if q is a request the server may be sent: SQL, 0 to 65535 parameters,
 * a length for each binary one, typed ones that write (alone); else
 * ACTIO_EINVAL, or ACTIO_ERANGE / ACTIO_ETYPE for a typed value. Checked
 * at the call. actio__db_request_valid: 1 if it is. */
int actio__db_request_check(const actio_db_request *q);
int actio__db_request_valid(const actio_db_request *q);

/* db_param.c: 0 if the n typed values write (actio__db_request_check's
 * codes); in's typed values written as binary ones in *q (a copy of in),
 * in a block the caller frees once q is copied, or NULL (no memory). */
int actio__db_typed_check(const actio_db_param *p, int n);
void *actio__db_typed_encode(const actio_db_request *in, actio_db_request *q);
/* Gives r its future (deadline: timeout_ms, or the pool's query timeout)
 * and sends it through the actor's mailbox (actio__request). On success
 * *out is the caller's future; on failure r is freed. */
int actio__db_submit(actio_actor *db, db_state *st, db_req *r, long timeout_ms,
                     actio_future **out);
/* The same to the inbox of the worker whose bell is b
 * (actio__request_bound); out NULL: r gets no future. */
int actio__db_submit_bound(db_state *st, actio__bell *b, db_req *r,
                           long timeout_ms, actio_future **out);

/* ---- db_pool.c: the connections (worker-only unless said) ---- */

/* Starts the thread that sends cancel requests (0, ACTIO_ENOMEM or a
 * negated errno), and lets go of it: stop waits up to the pool's connect
 * timeout for the requests queued to be sent, then leaves any that hang to
 * the thread, which ends on its own. Spawn and the state's free. */
int actio__db_canceller_start(db_state *st);
void actio__db_canceller_stop(db_state *st);
void actio__db_job_unref(cancel_job *j); /* any thread; NULL accepted */
/* Asks the server to cancel r, the unit c runs now. */
void actio__db_cancel_on_server(db_worker *w, conn *c, db_req *r);
/* Asks the server to cancel the unit at c's head if its caller cancelled
 * it and no request is out for it yet. */
void actio__db_cancel_head(db_worker *w, conn *c);
/* c->cancel was delivered and its unit, c->cancel_for, still runs: sends
 * it again once its pause is over. Returns when the worker must look
 * again (INT64_MAX: once it is delivered, which rings). */
int64_t actio__db_cancel_again(db_worker *w, conn *c, int64_t now);

/* When the next connect may be tried after `fails` failures in a row
 * (absolute, CLOCK_MONOTONIC): the pool's backoff from now. */
int64_t actio__db_retry_at(const db_state *st, int fails);

/* Closes c: its units and bound requests fail with rc and msg (rc 0: a
 * close of our own, ACTIO_ECONN for what was bound). */
void actio__db_conn_close(db_worker *w, conn *c, int rc, const char *msg);
/* Closes c as lost, with libpq's message. */
void actio__db_conn_broken(db_worker *w, conn *c);
/* A connect failed: back off; with no connection left to serve them, the
 * waiting requests fail now rather than at their acquire timeout. */
void actio__db_connect_failed(db_worker *w, conn *c, int rc, const char *err);
unsigned actio__db_count_ready(const db_worker *w);
/* Sends what is bound to c (a transaction's queries) while it can. */
void actio__db_conn_pump(db_worker *w, conn *c);
/* Places pending requests on connections, opening more as needed. */
void actio__db_dispatch(db_worker *w);
/* A transaction's or COPY's connection is free again: back to the pool,
 * unless the session is left inside a transaction (then it is closed). */
void actio__db_conn_release(conn *c);
/* Runs the pool's on_connect_sql on c (fresh: a new connection, whose
 * on_connect follows, and which counts as connected only then); without
 * it, a fresh connection is ready at once. */
void actio__db_conn_init(db_worker *w, conn *c, int fresh);
/* c's on_connect_sql ended (as on_unit). */
void actio__db_init_ended(db_worker *w, db_req *r, int rc, actio__pg_result *res,
                          const actio__pg_error *err, const char *msg);
/* Closes c, doomed once its callbacks are over: as a failed connect if its
 * initialisation failed. */
void actio__db_conn_doom_close(db_worker *w, conn *c);
/* Calls on_release for c if it is owed (c->held), telling it whether c is
 * lost; returns the hook's result, 0 if lost or not owed. */
int actio__db_conn_give_back(db_worker *w, conn *c, int lost);
/* Requests it could start now, less those already waiting: from the
 * connections as the last actio__db_publish_stats saw them. */

/* Publishes the worker's share of the pool's counters and its room. */
void actio__db_publish_stats(db_worker *w);

/* ---- db_txn.c, db_copy.c, db_listen.c ---- */

/* 0 if a transaction may begin on db with o (NULL: the defaults), else
 * ACTIO_EINVAL: what actio_db_begin and actio_db_transaction check at the
 * call. Any thread. */
int actio__db_begin_check(actio_actor *db, const actio_db_txn_opts *o);

/* The worker's side. */

/* A BEGIN, COMMIT, ROLLBACK or drop's ROLLBACK ended (as on_unit). */
void actio__db_txn_ended(db_worker *w, db_req *r, int rc, actio__pg_result *res,
                         const actio__pg_error *err, const char *msg);

/* The server took the COPY r: ready for data (out 0) or sending rows. */
void actio__db_copy_started(db_worker *w, db_req *r, int out);
/* A COPY's unit ended (as on_unit). */
void actio__db_copy_ended(db_worker *w, db_req *r, int rc, actio__pg_result *res,
                          const actio__pg_error *err, const char *msg);
/* Feeds the COPY FROM on c its queued writes and end; hands the rows of a
 * COPY TO on c to its consumer until it asks to wait. */
void actio__db_copy_pump_in(db_worker *w, conn *c);
void actio__db_copy_pump_out(db_worker *w, conn *c);
/* The consumer's backpressure future on c's COPY TO completed. */
void actio__db_copy_resume(db_worker *w, conn *c);

/* A LISTEN, UNLISTEN or the listener's restore ended (as on_unit). */
void actio__db_listen_ended(db_worker *w, db_req *r, int rc, actio__pg_result *res,
                            const actio__pg_error *err, const char *msg);
/* A notification to every subscriber of its channel (arg: the worker). */
void actio__db_listen_deliver(void *arg, const actio__pg_notification *n);
/* The listener could not connect: it backs off; with nothing to restore,
 * the requests waiting for it fail now. */
void actio__db_listener_failed(db_worker *w, int rc, const char *err);
/* Connects the listener when needed, sends its next LISTEN or UNLISTEN,
 * or restores them all after a loss. */
void actio__db_listener_pump(db_worker *w);

/* ---- db_batch.c, db_stream.c ---- */

/* What a batch's ext opens with (the rest is db_batch.c's): db_pool.c
 * reads the count, db_req.c the index that failed. */
typedef struct db_batch_head {
  size_t n;    /* statements, or an executemany's rows */
  long failed; /* the one that failed, or -1 */
} db_batch_head;

/* What a stream's ext opens with: db_pool.c reads its rows per call. */
typedef struct db_stream_head {
  size_t chunk;
} db_stream_head;

/* A batch's statements as io/pg asks for them, and their results. */
void actio__db_batch_get(void *unit, size_t i, actio__pg_query *q);
void actio__db_batch_each(void *unit, size_t i, actio__pg_result *res);
/* A batch ended (as on_unit). */
void actio__db_batch_ended(db_worker *w, db_req *r, int rc, actio__pg_result *res,
                           const actio__pg_error *err, const char *msg);
/* The rows of the stream on c, handed to its consumer until it asks to
 * wait. */
void actio__db_stream_pump(db_worker *w, conn *c);
/* 1 if the stream on c waits for its consumer's ready future, which has
 * not completed and was not cancelled. */
int actio__db_stream_waiting(conn *c);
/* 1 if the stream on c had stopped for its consumer and may go on now
 * (its ready future completed, or the stream was cancelled). */
int actio__db_stream_resume(db_worker *w, conn *c);
/* A stream ended (as on_unit). */
void actio__db_stream_ended(db_worker *w, db_req *r, int rc, actio__pg_result *res,
                            const actio__pg_error *err, const char *msg);

/* ---- db_prepare.c ---- */

/* What a K_PREPARE's ext holds: the statement it describes (a reference). */
typedef struct db_prepare_head {
  actio_db_stmt *stmt;
  int parsed; /* its Parse succeeded: the server has the statement */
} db_prepare_head;

/* A prepare ended (as on_unit). */
void actio__db_prepare_ended(db_worker *w, db_req *r, int rc, actio__pg_result *res,
                             const actio__pg_error *err, const char *msg);
/* DEALLOCATEs the destroyed statements this worker's connections hold,
 * on those free to take it now. Cheap when nothing was destroyed. */
void actio__db_stmt_reap(db_worker *w);
/* The worker stops: it never reaps again (under st->gmu). */
void actio__db_stmt_reaper_gone(db_worker *w);

/* ---- db_worker.c ---- */

extern const actio_behavior actio__db_behavior;
/* The behavior's drop: fails and frees a request never handled. A
 * database actor is one whose messages it drops (actio__db_state). */
void actio__db_drop(actio_actor *self, void *msg);
/* io/pg's done callback for every unit (ctx: the worker). */
void actio__db_on_unit(void *ctx, void *unit, int rc, actio__pg_result *res,
                       const actio__pg_error *err, const char *msg);

#endif

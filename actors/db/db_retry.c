/* db_retry.c: actio_db_transaction: a function run inside a transaction,
 * again from BEGIN when the server reports a serialization failure or a
 * deadlock. Built on the public API (begin, fn, commit, each step a future
 * whose completion starts the next), with BEGIN's checks made at the call. */
#include <pthread.h>
#include <stdlib.h>

#include "actio.h"
#include "actors/core/actor_internal.h"
#include "actors/core/future_internal.h"
#include "actors/db/db_internal.h"

typedef struct retry {
  actio_actor *db;       /* referenced: a child's address is not freed under
                            a retry that outlives its stop for good */
  actio_db_txn_opts opts;
  int left;              /* retries left */
  actio_db_txn_fn fn;
  void *arg;
  actio_future *out;     /* the caller's */
  pthread_mutex_t mu;    /* guards step against the cancel hook */
  actio_future *step;    /* the step running now */
  actio_future *begun;   /* BEGIN's future: holds the transaction */
  actio_future *body;    /* fn's future, whose value out borrows */
  actio_future *commit;  /* COMMIT's future */
} retry;

static void start(retry *r);

/* The last word: frees everything. out completed already. */
static void finish(retry *r) {
  actio_future_clear_cancel(r->out);
  actio_future_unref(r->begun); /* rolls back a transaction still open */
  actio_future_unref(r->body);
  actio_future_unref(r->commit);
  actio_future_unref(r->out);
  actio__actor_unref(r->db);
  pthread_mutex_destroy(&r->mu);
  free(r);
}

static void fail(retry *r, int code, const char *msg) {
  actio_future_fail(r->out, code, "%s", msg);
  finish(r);
}

/* Runs `next` once `f` completes, as the step a cancel reaches. */
static void then(retry *r, actio_future *f, actio_done_fn next) {
  pthread_mutex_lock(&r->mu);
  r->step = f;
  pthread_mutex_unlock(&r->mu);
  if (actio_future_on_done(f, next, r) != 0) {
    actio_future_cancel(f);
    fail(r, ACTIO_ENOMEM, "transaction: out of memory");
  }
}

/* f failed: again from BEGIN if it may be retried, else fail out like it. */
static void failed(retry *r, actio_future *f) {
  if (actio_future_status(f) == ACTIO_ERETRY && r->left > 0 &&
      !actio_future_is_done(r->out)) {
    r->left--;
    actio_future_unref(r->begun); /* rolls the failed attempt back */
    actio_future_unref(r->body);
    actio_future_unref(r->commit);
    r->begun = r->body = r->commit = NULL;
    start(r);
    return;
  }
  actio__future_adopt(r->out, f);
  finish(r);
}

static void committed(actio_future *f, void *arg) {
  retry *r = arg;
  if (actio_future_status(f) != 0) {
    failed(r, f);
  } else {
    actio__future_adopt(r->out, r->body); /* fn's value, borrowed */
    finish(r);
  }
}

static void body_done(actio_future *f, void *arg) {
  retry *r = arg;
  if (actio_future_status(f) != 0) {
    failed(r, f);
    return;
  }
  if (actio_future_is_done(r->out)) { /* cancelled meanwhile */
    finish(r);
    return;
  }
  int rc = actio_db_commit(actio_future_value(r->begun), &r->commit);
  if (rc != 0) {
    r->commit = NULL;
    fail(r, rc, "transaction: COMMIT could not be sent");
    return;
  }
  then(r, r->commit, committed);
}

static void begun(actio_future *f, void *arg) {
  retry *r = arg;
  if (actio_future_status(f) != 0) {
    failed(r, f);
    return;
  }
  if (actio_future_is_done(r->out)) {
    finish(r);
    return;
  }
  actio_future *body = NULL;
  int rc = r->fn(actio_future_value(f), r->arg, &body);
  if (rc < 0 || body == NULL) {
    actio_future_unref(body);
    fail(r, rc < 0 ? rc : ACTIO_EINVAL, "transaction: its function failed");
    return;
  }
  r->body = body;
  then(r, body, body_done);
}

static void start(retry *r) {
  int rc = actio_db_begin(r->db, &r->opts, &r->begun);
  if (rc != 0) {
    r->begun = NULL;
    fail(r, rc, "transaction: BEGIN could not be sent");
    return;
  }
  then(r, r->begun, begun);
}

/* Cancelling out cancels the step in flight; its callback then finishes. */
static void on_cancel(void *arg) {
  retry *r = arg;
  pthread_mutex_lock(&r->mu);
  actio_future *step = r->step;
  if (step != NULL)
    actio_future_ref(step);
  pthread_mutex_unlock(&r->mu);
  if (step != NULL) {
    actio_future_cancel(step);
    actio_future_unref(step);
  }
}

int actio_db_transaction(actio_actor *db, const actio_db_txn_opts *opts, int retries,
                         actio_db_txn_fn fn, void *arg, actio_future **out) {
  if (fn == NULL || out == NULL || retries < 0 ||
      actio__db_begin_check(db, opts) != 0)
    return ACTIO_EINVAL;
  retry *r = calloc(1, sizeof *r);
  if (r == NULL)
    return ACTIO_ENOMEM;
  int rc = actio_future_create(&r->out);
  if (rc != 0) {
    free(r);
    return rc;
  }
  r->db = db;
  actio__actor_ref(db);
  r->opts = opts ? *opts : (actio_db_txn_opts){0};
  r->left = retries;
  r->fn = fn;
  r->arg = arg;
  pthread_mutex_init(&r->mu, NULL);
  actio_future_on_cancel(r->out, on_cancel, r);
  actio_future_ref(r->out); /* the chain's, dropped by finish */
  *out = r->out;
  start(r);
  return 0;
}

/* fanout.c: a supervisor's fan-out (actio_sup_fanout): calls sent to its
 * children as asks and gathered into one future under one deadline; a call
 * lost to a child's failure is sent again by the supervisor's worker once
 * it has restarted the child, if it is idempotent, or fails with
 * ACTIO_ERESTARTED. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "actio.h"
#include "actors/core/actor_impl.h"
#include "actors/core/actor_internal.h"
#include "actors/core/future_internal.h"
#include "base/clock.h"

typedef struct fan fan;

/* The longest pause before a resend tries a full mailbox again. */
enum { PAUSE_MAX_MS = 64 };

/* One call. One thing at a time works on it (its activity): the send from
 * the caller, an ask in flight, a resend queued in the supervisor, or a
 * pause for room. Each holds a reference to the fan-out, and hands it to
 * the next or drops it once the call is complete. */
typedef struct call {
  actio__sup_job job;  /* a resend queued in the supervisor: first */
  fan *fo;
  actio_future *f;     /* the call's future (fo's reference) */
  actio_actor *to;     /* its child's address (fo holds it) */
  void *msg;
  size_t index;
  int idempotent;
  int64_t pause_ms;    /* the last pause for room; its activity's own */
  /* Guarded by fo->mu (the cancel hook reads them): the ask in flight and
   * the instance that took it (a reference), else NULL. */
  actio_future *ask;
  actio_actor *inst;
} call;

struct fan {
  _Atomic size_t refs;  /* the caller's while it sends, and each activity's */
  pthread_mutex_t mu;
  actio_runtime *rt;
  actio_actor *sup;     /* the supervisor's instance, referenced */
  int64_t deadline_ns;  /* -1: none */
  actio_actor **to;     /* the children's addresses, each referenced */
  size_t nto, n;
  actio_future **fs;    /* the calls' futures, in order, for the gather */
  call calls[];
};

static void fan_unref(fan *fo) {
  /* acq_rel: every activity's last touch happens before the free. */
  if (atomic_fetch_sub_explicit(&fo->refs, 1, memory_order_acq_rel) != 1)
    return;
  for (size_t i = 0; i < fo->n; i++)
    if (fo->fs[i] != NULL) {
      /* A hook running on another thread is waited for: it reads fo. */
      actio_future_clear_cancel(fo->fs[i]);
      actio_future_unref(fo->fs[i]);
    }
  for (size_t k = 0; k < fo->nto; k++)
    actio__actor_unref(fo->to[k]);
  if (fo->sup != NULL)
    actio__actor_unref(fo->sup);
  pthread_mutex_destroy(&fo->mu);
  free(fo->to);
  free(fo->fs);
  free(fo);
}

/* The call's cancel hook (its future cancelled: by the caller, the
 * gather's policy or deadline): the ask in flight is cancelled; whatever
 * else works on the call finds its future done. Touches nothing of the
 * call once it cancels the ask, whose completion may free it all. */
static void call_cancel(void *arg) {
  call *c = arg;
  pthread_mutex_lock(&c->fo->mu);
  actio_future *ask = c->ask;
  if (ask != NULL)
    actio_future_ref(ask);
  pthread_mutex_unlock(&c->fo->mu);
  if (ask != NULL) {
    actio_future_cancel(ask);
    actio_future_unref(ask);
  }
}

static const char *sup_name(const call *c) { return actio__sup_name(c->fo->sup); }

static void ask_done(actio_future *ask, void *arg);

/* Sends the call as an ask, waiting up to timeout_ms; on success the
 * activity is the ask's. Returns 0 or the send's error (nothing sent). */
static int call_send(call *c, int64_t timeout_ms) {
  fan *fo = c->fo;
  actio_future *ask;
  actio_actor *inst;
  int rc = actio__ask_at(c->to, c->msg, timeout_ms, &ask, &inst);
  if (rc != 0)
    return rc;
  pthread_mutex_lock(&fo->mu);
  c->ask = ask;
  c->inst = inst;
  pthread_mutex_unlock(&fo->mu);
  if (!actio__future_pending(c->f)) /* cancelled before the hook could see it */
    actio_future_cancel(ask);
  if (actio_future_on_done(ask, ask_done, c) != 0) {
    pthread_mutex_lock(&fo->mu);
    c->ask = NULL;
    c->inst = NULL;
    pthread_mutex_unlock(&fo->mu);
    actio_future_cancel(ask);
    actio_future_unref(ask);
    actio__actor_unref(inst);
    return ACTIO_ENOMEM;
  }
  return 0;
}

/* Queues the call's resend in the supervisor: 0 (the activity is the
 * job's), or ACTIO_ECLOSED, the call then failed. */
static int resend_queue(call *c) {
  int rc = actio__sup_defer(c->fo->sup, &c->job);
  if (rc != 0)
    actio_future_fail(c->f, rc, "supervisor %s stopped: call %zu to child %s lost", sup_name(c),
                      c->index, c->to->name);
  return rc;
}

static void pause_done(actio_future *sleep, void *arg) {
  call *c = arg;
  fan *fo = c->fo;
  actio_future_unref(sleep);
  if (resend_queue(c) != 0)
    fan_unref(fo);
}

/* The child's mailbox is full: tries again after a pause (1 ms, doubling
 * up to PAUSE_MAX_MS), from the supervisor's worker, which must not wait.
 * 0 (the activity is the pause's) or the error of the sleep. */
static int pause_for_room(call *c) {
  c->pause_ms = c->pause_ms == 0 ? 1 : c->pause_ms * 2;
  if (c->pause_ms > PAUSE_MAX_MS)
    c->pause_ms = PAUSE_MAX_MS;
  actio_future *sleep;
  int rc = actio_sleep(c->fo->rt, c->pause_ms, &sleep);
  if (rc == 0 && actio_future_on_done(sleep, pause_done, c) != 0) {
    actio_future_cancel(sleep);
    actio_future_unref(sleep);
    rc = ACTIO_ENOMEM;
  }
  return rc;
}

/* The resend, on the supervisor's worker: the failures noted before it
 * are handled, so the child is restarted, or will not be. */
static void resend_run(actio__sup_job *job, int rc) {
  call *c = (call *)job;
  fan *fo = c->fo;
  if (rc != 0) {
    actio_future_fail(c->f, rc, "supervisor %s stopped: call %zu to child %s lost", sup_name(c),
                      c->index, c->to->name);
  } else if (!actio__future_pending(c->f)) {
    /* cancelled, or the deadline passed: nothing more to do */
  } else if (fo->deadline_ns >= 0 && actio__now_ns() >= fo->deadline_ns) {
    actio_future_fail(c->f, ACTIO_ETIMEDOUT, "supervisor %s: deadline passed before call %zu "
                      "was sent again to child %s", sup_name(c), c->index, c->to->name);
  } else if ((rc = call_send(c, 0)) == 0 || (rc == ACTIO_EFULL && pause_for_room(c) == 0)) {
    return; /* the ask's, or the pause's */
  } else {
    actio_future_fail(c->f, rc, "supervisor %s: call %zu not sent again to child %s: %s",
                      sup_name(c), c->index, c->to->name, actio_strerror(rc));
  }
  fan_unref(fo);
}

/* The ask ended. A failure on an instance that failed is the call lost to
 * that failure: sent again if idempotent, else failed with
 * ACTIO_ERESTARTED. Runs on the completing thread, often the failing
 * instance's own, which must not send to its restarting address: the
 * supervisor's worker sends again, after the restart. */
static void ask_done(actio_future *ask, void *arg) {
  call *c = arg;
  fan *fo = c->fo;
  pthread_mutex_lock(&fo->mu);
  actio_actor *inst = c->inst;
  c->ask = NULL;
  c->inst = NULL;
  pthread_mutex_unlock(&fo->mu);
  int st = actio_future_status(ask), kept = 0;
  /* The handler's ACTIO_EFATAL fails the instance before its reply. */
  int lost = st != 0 && actio_actor_failed(inst);
  if (!actio__future_pending(c->f)) {
    /* cancelled, or the deadline passed: the ask's outcome reaches nobody */
  } else if (!lost) {
    actio__future_adopt(c->f, ask);
  } else if (!c->idempotent) {
    actio_future_fail(c->f, ACTIO_ERESTARTED,
                      "supervisor %s: child %s restarted while call %zu was in flight: %s",
                      sup_name(c), c->to->name, c->index, actio_future_errmsg(ask));
  } else {
    kept = resend_queue(c) == 0;
  }
  actio__actor_unref(inst);
  actio_future_unref(ask); /* the send's reference */
  if (!kept)
    fan_unref(fo);
}

int actio_sup_fanout(actio_actor *sup, const char *const *children, size_t nchildren,
                     const actio_sup_call *calls, size_t n,
                     const actio_sup_fanout_opts *opts, actio_future **out) {
  actio_sup_fanout_opts o = opts != NULL ? *opts : (actio_sup_fanout_opts){0};
  if (sup == NULL || children == NULL || nchildren == 0 || calls == NULL || n == 0 ||
      out == NULL ||
      (o.policy != ACTIO_GATHER_FAIL_FAST && o.policy != ACTIO_GATHER_SETTLE_ALL) ||
      (o.spread != ACTIO_SPREAD_ROUND_ROBIN && o.spread != ACTIO_SPREAD_BY_INDEX))
    return ACTIO_EINVAL;
  for (size_t k = 0; k < nchildren; k++)
    if (children[k] == NULL)
      return ACTIO_EINVAL;
  for (size_t i = 0; o.spread == ACTIO_SPREAD_BY_INDEX && i < n; i++)
    if (calls[i].to >= nchildren)
      return ACTIO_EINVAL;
  if (n > (SIZE_MAX - sizeof(fan)) / sizeof(call))
    return ACTIO_ENOMEM;
  fan *fo = calloc(1, sizeof *fo + n * sizeof(call));
  if (fo == NULL)
    return ACTIO_ENOMEM;
  atomic_init(&fo->refs, 1); /* the caller's, until every call is sent */
  pthread_mutex_init(&fo->mu, NULL);
  fo->deadline_ns = -1;
  fo->to = calloc(nchildren, sizeof *fo->to);
  fo->fs = calloc(n, sizeof *fo->fs);
  int rc = fo->to == NULL || fo->fs == NULL ? ACTIO_ENOMEM : 0;
  if (rc == 0)
    fo->nto = nchildren, fo->n = n;
  if (rc == 0 && (rc = actio__sup_ref(sup, &fo->sup)) == 0)
    fo->rt = actio_actor_runtime(fo->sup);
  for (size_t k = 0; rc == 0 && k < nchildren; k++)
    rc = actio__sup_child_ref(fo->sup, children[k], &fo->to[k]);
  for (size_t i = 0; rc == 0 && i < n; i++) {
    call *c = &fo->calls[i];
    c->job.run = resend_run;
    c->fo = fo;
    c->to = fo->to[o.spread == ACTIO_SPREAD_BY_INDEX ? calls[i].to : i % nchildren];
    c->msg = calls[i].msg;
    c->index = i;
    c->idempotent = calls[i].idempotent != 0;
    if ((rc = actio_future_create(&fo->fs[i])) == 0) {
      c->f = fo->fs[i];
      (void)actio_future_on_cancel(c->f, call_cancel, c); /* not shared yet */
    }
  }
  actio_future *g = NULL;
  if (rc == 0)
    rc = actio_gather(fo->fs, n, o.policy, &g);
  if (rc == 0 && o.timeout_ms > 0) {
    fo->deadline_ns = actio__deadline_ns(o.timeout_ms);
    if ((rc = actio_future_set_deadline(fo->rt, g, o.timeout_ms)) != 0) {
      actio_future_cancel(g); /* its calls, none sent */
      actio_future_unref(g);
    }
  }
  if (rc != 0) {
    fan_unref(fo);
    return rc;
  }
  for (size_t i = 0; i < n; i++) {
    call *c = &fo->calls[i];
    if (!actio__future_pending(c->f))
      continue; /* the gather failed fast, was cancelled or timed out */
    int64_t wait_ms = fo->deadline_ns < 0 ? -1 : actio__ms_until(fo->deadline_ns);
    atomic_fetch_add_explicit(&fo->refs, 1, memory_order_relaxed); /* from the caller's */
    rc = wait_ms == 0 ? ACTIO_ETIMEDOUT : call_send(c, wait_ms);
    if (rc != 0) {
      actio_future_fail(c->f, rc, "supervisor %s: call %zu not sent to child %s: %s",
                        sup_name(c), i, c->to->name, actio_strerror(rc));
      fan_unref(fo);
    }
  }
  fan_unref(fo);
  *out = g;
  return 0;
}

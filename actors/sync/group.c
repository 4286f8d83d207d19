/* group.c: a task group: a list of pending futures under a mutex, and one
 * future for the whole, completed outside the lock. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "actio/error.h"
#include "actio/sync.h"
#include "actors/core/future_internal.h"
#include "actors/sync/waiters.h"
#include "base/debug.h"

/* A pending member. Linked while the group may still cancel it; whoever
 * unlinks it under the lock (its completion, or a close taking it to
 * cancel) takes it off the list, but only the member's callback frees it. */
typedef struct member {
  actio__link link; /* first: the list's links are the member's */
  actio_future *f; /* a reference, until the callback ran */
  actio_group *g;
  int linked;
} member;

_Static_assert(sizeof(member) <= 40, "a member fits a 48-byte heap block");

/* What to do with the group's future once the lock is let go. */
enum settle { S_NONE, S_RESOLVE, S_FAIL, S_CANCEL };

struct actio_group {
  pthread_mutex_t mu;
  /* The owner, the group's future until it completed (its done callback
   * drops it, after the cancel hook), and one per member whose callback has
   * not run yet. */
  _Atomic size_t refs;
  actio_gather_policy policy;
  actio_future *out;
  /* Under mu: */
  actio__list members;
  size_t pending;
  int waited; /* actio_group_wait was called: completes when pending is 0 */
  int closed; /* no more members: completed, failed or closed */
};

static void group_unref(actio_group *g) {
  /* Acq_rel: every member's writes before the free. */
  if (atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) != 1)
    return;
  ACTIO__ASSERT(g->members.head == NULL && g->pending == 0);
  pthread_mutex_destroy(&g->mu);
  actio_future_unref(g->out);
  free(g);
}

static void unlink_member(actio_group *g, member *m) {
  actio__list_unlink(&g->members, &m->link);
  m->linked = 0;
}

/* Under mu: the group completes when it is waited for and empty. */
static enum settle settle_if_empty(actio_group *g) {
  if (g->closed || !g->waited || g->pending != 0)
    return S_NONE;
  g->closed = 1;
  return S_RESOLVE;
}

/* Cancels the members still linked, one at a time outside the lock (a
 * cancel runs callbacks, which take it). Only after closed is set: the
 * list then only shrinks. */
static void cancel_members(actio_group *g) {
  for (;;) {
    pthread_mutex_lock(&g->mu);
    member *m = (member *)g->members.head;
    actio_future *f = NULL;
    if (m != NULL) {
      unlink_member(g, m);
      f = m->f;
      actio_future_ref(f); /* the member's callback may free m and drop its own */
    }
    pthread_mutex_unlock(&g->mu);
    if (f == NULL)
      return;
    actio_future_cancel(f);
    actio_future_unref(f);
  }
}

static void settle(actio_group *g, enum settle s, actio_future *failed) {
  if (s == S_RESOLVE) {
    actio_future_resolve(g->out, NULL, NULL);
  } else if (s == S_FAIL) {
    /* Cancel the others before the failure is seen: a waiter that sees it
     * finds every member completed. */
    cancel_members(g);
    actio__future_adopt(g->out, failed);
  }
}

static void member_done(actio_future *f, void *arg) {
  member *m = arg;
  actio_group *g = m->g;
  int st = actio_future_status(f);
  enum settle s = S_NONE;
  pthread_mutex_lock(&g->mu);
  if (m->linked)
    unlink_member(g, m);
  g->pending--;
  if (!g->closed && g->policy == ACTIO_GATHER_FAIL_FAST && st != 0 &&
      st != ACTIO_ECANCELED) {
    g->closed = 1;
    s = S_FAIL;
  } else {
    s = settle_if_empty(g);
  }
  pthread_mutex_unlock(&g->mu);
  settle(g, s, f);
  free(m);
  actio_future_unref(f);
  group_unref(g);
}

static void group_cancelled(void *arg) { actio_group_close(arg); }

static void out_done(actio_future *f, void *arg) {
  (void)f;
  group_unref(arg);
}

int actio_group_create(actio_group **out, actio_gather_policy policy) {
  if (out == NULL ||
      (policy != ACTIO_GATHER_FAIL_FAST && policy != ACTIO_GATHER_SETTLE_ALL))
    return ACTIO_EINVAL;
  actio_group *g = calloc(1, sizeof *g);
  if (g == NULL)
    return ACTIO_ENOMEM;
  if (actio_future_create(&g->out) != 0) {
    free(g);
    return ACTIO_ENOMEM;
  }
  pthread_mutex_init(&g->mu, NULL);
  g->policy = policy;
  atomic_init(&g->refs, 2);
  /* A fresh future's inline callback slot is free: this cannot fail. */
  actio_future_on_done(g->out, out_done, g);
  actio_future_on_cancel(g->out, group_cancelled, g);
  *out = g;
  return 0;
}

int actio_group_add(actio_group *g, actio_future *f) {
  if (g == NULL || f == NULL)
    return ACTIO_EINVAL;
  member *m = calloc(1, sizeof *m);
  if (m == NULL)
    return ACTIO_ENOMEM;
  actio_future_ref(f);
  m->f = f;
  m->g = g;
  pthread_mutex_lock(&g->mu);
  if (g->closed) {
    pthread_mutex_unlock(&g->mu);
    actio_future_unref(f);
    free(m);
    return ACTIO_ECLOSED;
  }
  actio__list_push(&g->members, &m->link);
  m->linked = 1;
  g->pending++;
  /* Relaxed: the owner's reference keeps refs above zero here. */
  atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
  pthread_mutex_unlock(&g->mu);
  if (actio_future_on_done(f, member_done, m) == 0)
    return 0;
  /* Out of memory for the callback: take the member back. A close may
   * have cancelled it meanwhile; the caller's future is theirs either way. */
  pthread_mutex_lock(&g->mu);
  if (m->linked)
    unlink_member(g, m);
  g->pending--;
  enum settle s = settle_if_empty(g);
  pthread_mutex_unlock(&g->mu);
  settle(g, s, NULL);
  free(m);
  actio_future_unref(f);
  group_unref(g);
  return ACTIO_ENOMEM;
}

int actio_group_wait(actio_group *g, actio_future **out) {
  if (g == NULL || out == NULL)
    return ACTIO_EINVAL;
  pthread_mutex_lock(&g->mu);
  g->waited = 1;
  enum settle s = settle_if_empty(g);
  pthread_mutex_unlock(&g->mu);
  settle(g, s, NULL);
  actio_future_ref(g->out);
  *out = g->out;
  return 0;
}

size_t actio_group_pending(const actio_group *g) {
  if (g == NULL)
    return 0;
  actio_group *mg = (actio_group *)g;
  pthread_mutex_lock(&mg->mu);
  size_t n = mg->pending;
  pthread_mutex_unlock(&mg->mu);
  return n;
}

void actio_group_close(actio_group *g) {
  if (g == NULL)
    return;
  pthread_mutex_lock(&g->mu);
  int was_open = !g->closed;
  g->closed = 1;
  pthread_mutex_unlock(&g->mu);
  cancel_members(g);
  /* From the hook (the future's own cancel) this is refused: it is being
   * cancelled already. */
  if (was_open)
    actio__future_abort(g->out, ACTIO_ECANCELED, "the task group was closed");
}

void actio_group_destroy(actio_group *g) {
  if (g == NULL)
    return;
  actio_group_close(g);
  group_unref(g);
}

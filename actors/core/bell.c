/* bell.c: a worker's bell: rings, an inbox, and a close that leaves both
 * harmless (see bell.h). */
#include "actors/core/bell.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "actio/error.h"
#include "actors/core/future_internal.h"
#include "base/debug.h"

struct actio__bell {
  _Atomic unsigned refs;
  _Atomic unsigned rings;  /* since the worker last looked */
  pthread_mutex_t mu;      /* guards everything below */
  actio__bell_wake_fn wake;
  void *target;
  int closed;
  actio__bell_link *head, *tail;
};

int actio__bell_create(actio__bell **out, actio__bell_wake_fn wake, void *target) {
  actio__bell *b = calloc(1, sizeof *b);
  if (b == NULL)
    return ACTIO_ENOMEM;
  atomic_init(&b->refs, 1);
  atomic_init(&b->rings, 0);
  pthread_mutex_init(&b->mu, NULL);
  b->wake = wake;
  b->target = target;
  *out = b;
  return 0;
}

void actio__bell_ref(actio__bell *b) {
  /* Relaxed: a new reference is made from one already held. */
  unsigned before = atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
  ACTIO__ASSERT(before > 0);
  (void)before;
}

void actio__bell_unref(actio__bell *b) {
  if (b == NULL)
    return;
  /* Acq_rel: the last owner sees every other owner's writes before freeing. */
  unsigned before = atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel);
  ACTIO__ASSERT(before > 0);
  if (before != 1)
    return;
  ACTIO__ASSERT(b->head == NULL);
  pthread_mutex_destroy(&b->mu);
  free(b);
}

void actio__bell_ring(actio__bell *b) {
  /* Release: what the ringer did before (flagged a cancel, completed a
   * future) is seen by the worker that reads the count (acquire). */
  atomic_fetch_add_explicit(&b->rings, 1, memory_order_release);
  pthread_mutex_lock(&b->mu);
  if (!b->closed && b->wake != NULL)
    b->wake(b->target);
  pthread_mutex_unlock(&b->mu);
}

int actio__bell_rang(actio__bell *b) {
  return atomic_exchange_explicit(&b->rings, 0, memory_order_acquire) != 0;
}

/* Relaxed: a count for tests, read once the registrations settled. */
static _Atomic long rings_pending;

static void ring_done(actio_future *f, void *arg) {
  (void)f;
  atomic_fetch_sub_explicit(&rings_pending, 1, memory_order_relaxed);
  actio__bell_ring(arg);
  actio__bell_unref(arg);
}

int actio__bell_ring_on(actio__bell *b, actio_future *f) {
  actio__bell_ref(b);
  atomic_fetch_add_explicit(&rings_pending, 1, memory_order_relaxed);
  int rc = actio_future_on_done(f, ring_done, b);
  if (rc != 0) {
    atomic_fetch_sub_explicit(&rings_pending, 1, memory_order_relaxed);
    actio__bell_unref(b);
  }
  return rc;
}

void actio__bell_ring_off(actio__bell *b, actio_future *f) {
  if (f != NULL && actio__future_off_done(f, ring_done, b)) {
    atomic_fetch_sub_explicit(&rings_pending, 1, memory_order_relaxed);
    actio__bell_unref(b);
  }
}

void actio__bell_forget(actio__bell *b, actio_future **f) {
  actio__bell_ring_off(b, *f);
  actio_future_unref(*f);
  *f = NULL;
}

long actio__bell_rings_pending(void) {
  return atomic_load_explicit(&rings_pending, memory_order_relaxed);
}

int actio__bell_push(actio__bell *b, actio__bell_link *l, int ring) {
  pthread_mutex_lock(&b->mu);
  int closed = b->closed;
  if (!closed) {
    l->next = NULL;
    l->prev = b->tail;
    if (b->tail != NULL)
      b->tail->next = l;
    else
      b->head = l;
    b->tail = l;
  }
  pthread_mutex_unlock(&b->mu);
  if (closed)
    return ACTIO_ECLOSED;
  if (ring)
    actio__bell_ring(b);
  return 0;
}

actio__bell_link *actio__bell_take(actio__bell *b) {
  pthread_mutex_lock(&b->mu);
  actio__bell_link *l = b->head;
  b->head = b->tail = NULL;
  pthread_mutex_unlock(&b->mu);
  return l;
}

int actio__bell_has_mail(actio__bell *b) {
  pthread_mutex_lock(&b->mu);
  int mail = b->head != NULL;
  pthread_mutex_unlock(&b->mu);
  return mail;
}

static void unlink_locked(actio__bell *b, actio__bell_link *l) {
  if (l->prev != NULL)
    l->prev->next = l->next;
  else
    b->head = l->next;
  if (l->next != NULL)
    l->next->prev = l->prev;
  else
    b->tail = l->prev;
  l->prev = l->next = NULL;
}

int actio__bell_withdraw(actio__bell *b, actio__bell_link *l,
                         void (*fn)(void *arg), void *arg) {
  pthread_mutex_lock(&b->mu);
  int open = !b->closed;
  if (open) {
    ACTIO__ASSERT(l->prev != NULL || b->head == l);
    unlink_locked(b, l);
    fn(arg);
  }
  pthread_mutex_unlock(&b->mu);
  return open;
}

void actio__bell_close(actio__bell *b, void (*each)(actio__bell_link *l, void *arg),
                       void *arg) {
  pthread_mutex_lock(&b->mu);
  b->closed = 1;
  actio__bell_link *l = b->head;
  b->head = b->tail = NULL;
  while (l != NULL) {
    actio__bell_link *next = l->next;
    l->prev = l->next = NULL;
    if (each != NULL)
      each(l, arg);
    l = next;
  }
  pthread_mutex_unlock(&b->mu);
}

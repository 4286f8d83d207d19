/* sync.c: the awaitable lock, semaphore and event: a count (or a flag) and
 * a FIFO of waiters under one mutex; a release hands its permit straight
 * to the first waiter still waiting, so none can jump the queue. */
#include <stdio.h>
#include <stdlib.h>

#include "actio/error.h"
#include "actio/sync.h"
#include "actors/sync/waiters.h"

#define GONE_MSG "the %s was destroyed"

/* ---- the semaphore; a lock is one of at most one permit ---- */

struct actio_sem {
  actio__sync s; /* first: the waiters' hooks hold it */
  size_t count, max;
  actio__waitq waiters;
};

struct actio_lock {
  struct actio_sem sem;
};

static int sem_make(struct actio_sem **out, size_t size, size_t count) {
  struct actio_sem *s = actio__sync_new(size);
  if (s == NULL)
    return ACTIO_ENOMEM;
  s->count = s->max = count;
  *out = s;
  return 0;
}

/* A fresh future for an acquire or a wait, resolved at once when `ready`
 * (called under the lock) says so, else queued. */
static int wait_for(actio__sync *s, actio__waitq *q, int (*ready)(actio__sync *s),
                    actio_future **out) {
  actio_future *f;
  int rc = actio_future_create(&f);
  if (rc != 0)
    return rc;
  pthread_mutex_lock(&s->mu);
  int now = ready(s);
  if (!now)
    rc = actio__waiter_add(s, q, f, NULL);
  pthread_mutex_unlock(&s->mu);
  if (rc != 0) {
    actio_future_unref(f);
    return rc;
  }
  if (now)
    actio_future_resolve(f, NULL, NULL);
  *out = f;
  return 0;
}

/* Under the lock: takes a permit if one is free. Waiters wait only while
 * none is, so a free permit means nobody is ahead. */
static int sem_take(actio__sync *s) {
  struct actio_sem *sem = (struct actio_sem *)s;
  if (sem->count == 0)
    return 0;
  sem->count--;
  return 1;
}

static int sem_release(struct actio_sem *s) {
  pthread_mutex_lock(&s->s.mu);
  actio__waiter *w = actio__waiter_claim(&s->waiters);
  int rc = 0;
  if (w == NULL) {
    if (s->count == s->max)
      rc = ACTIO_ESTATE;
    else
      s->count++;
  }
  pthread_mutex_unlock(&s->s.mu);
  if (w != NULL)
    actio__waiter_settle(w, 0, NULL, NULL, NULL, 0);
  return rc;
}

/* Fails the waiters left, then drops the handle's reference. */
static void close_waiters(actio__sync *s, actio__waitq *q, const char *what) {
  char msg[64];
  snprintf(msg, sizeof msg, GONE_MSG, what);
  pthread_mutex_lock(&s->mu);
  actio__waiter *all = actio__waiter_claim_all(q);
  pthread_mutex_unlock(&s->mu);
  actio__waiter_settle(all, ACTIO_ECANCELED, NULL, NULL, msg, 1);
  actio__sync_unref(s);
}

int actio_sem_create(actio_sem **out, size_t permits) {
  if (out == NULL || permits == 0)
    return ACTIO_EINVAL;
  return sem_make(out, sizeof(struct actio_sem), permits);
}

int actio_sem_acquire(actio_sem *s, actio_future **out) {
  if (s == NULL || out == NULL)
    return ACTIO_EINVAL;
  return wait_for(&s->s, &s->waiters, sem_take, out);
}

int actio_sem_release(actio_sem *s) {
  return s == NULL ? ACTIO_EINVAL : sem_release(s);
}

void actio_sem_destroy(actio_sem *s) {
  if (s != NULL)
    close_waiters(&s->s, &s->waiters, "semaphore");
}

int actio_lock_create(actio_lock **out) {
  if (out == NULL)
    return ACTIO_EINVAL;
  return sem_make((struct actio_sem **)out, sizeof(struct actio_lock), 1);
}

int actio_lock_acquire(actio_lock *l, actio_future **out) {
  return actio_sem_acquire(l ? &l->sem : NULL, out);
}

int actio_lock_release(actio_lock *l) {
  return actio_sem_release(l ? &l->sem : NULL);
}

void actio_lock_destroy(actio_lock *l) {
  if (l != NULL)
    close_waiters(&l->sem.s, &l->sem.waiters, "lock");
}

/* ---- the event ---- */

struct actio_event {
  actio__sync s;
  size_t set; /* a word for actio__sync_read */
  actio__waitq waiters;
};

int actio_event_create(actio_event **out) {
  if (out == NULL)
    return ACTIO_EINVAL;
  *out = actio__sync_new(sizeof(actio_event));
  return *out != NULL ? 0 : ACTIO_ENOMEM;
}

static int event_is_set(actio__sync *s) { return ((actio_event *)s)->set != 0; }

int actio_event_wait(actio_event *e, actio_future **out) {
  if (e == NULL || out == NULL)
    return ACTIO_EINVAL;
  return wait_for(&e->s, &e->waiters, event_is_set, out);
}

void actio_event_set(actio_event *e) {
  if (e == NULL)
    return;
  pthread_mutex_lock(&e->s.mu);
  e->set = 1;
  actio__waiter *all = actio__waiter_claim_all(&e->waiters);
  pthread_mutex_unlock(&e->s.mu);
  actio__waiter_settle(all, 0, NULL, NULL, NULL, 1);
}

void actio_event_clear(actio_event *e) {
  if (e == NULL)
    return;
  pthread_mutex_lock(&e->s.mu);
  e->set = 0;
  pthread_mutex_unlock(&e->s.mu);
}

int actio_event_is_set(const actio_event *e) {
  return e != NULL && actio__sync_read(&e->s, &e->set) != 0;
}

void actio_event_destroy(actio_event *e) {
  if (e != NULL)
    close_waiters(&e->s, &e->waiters, "event");
}

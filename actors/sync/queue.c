/* queue.c: the awaitable bounded queue: a ring of items and three FIFOs of
 * waiters (getters wait only while the ring is empty, putters only while it
 * is full, joiners while an item accepted is not yet marked done), under one
 * mutex; futures are completed once it is let go. */
#include <stdint.h>
#include <stdlib.h>

#include "actio/error.h"
#include "actio/sync.h"
#include "actors/sync/waiters.h"

#define CLOSED_MSG "the queue was closed"
#define GONE_MSG "the queue was destroyed"

struct actio_queue {
  actio__sync s; /* first: the waiters' hooks hold it */
  actio_free_fn item_free;
  /* Under s.mu: */
  int closed;
  size_t cap, head, len;
  size_t undone; /* items got and not yet marked done */
  actio__waitq getters, putters, joiners;
  void *ring[];
};

int actio_queue_create(actio_queue **out, size_t capacity, actio_free_fn item_free) {
  if (out == NULL || capacity == 0 ||
      capacity > (SIZE_MAX - sizeof(actio_queue)) / sizeof(void *))
    return ACTIO_EINVAL;
  actio_queue *q = actio__sync_new(sizeof *q + capacity * sizeof(void *));
  if (q == NULL)
    return ACTIO_ENOMEM;
  q->cap = capacity;
  q->item_free = item_free;
  *out = q;
  return 0;
}

static void ring_push(actio_queue *q, void *item) {
  q->ring[(q->head + q->len++) % q->cap] = item;
}

static void *ring_pop(actio_queue *q) {
  void *item = q->ring[q->head];
  q->head = (q->head + 1) % q->cap;
  q->len--;
  return item;
}

/* Under s.mu: puts `item` in if the queue is open and has room. Getters
 * wait only on an empty ring: the item goes to the first one still waiting
 * (*getter, to be given it once the lock is let go), else into the ring.
 * Returns 0, ACTIO_ECLOSED or ACTIO_EFULL. */
static int offer(actio_queue *q, void *item, actio__waiter **getter) {
  *getter = NULL;
  if (q->closed)
    return ACTIO_ECLOSED;
  if (q->len == q->cap)
    return ACTIO_EFULL;
  if (q->len == 0)
    *getter = actio__waiter_claim(&q->getters);
  if (*getter != NULL)
    q->undone++; /* got at once */
  else
    ring_push(q, item);
  return 0;
}

/* Under s.mu: takes the front item if there is one; the room it leaves lets
 * the first putter still waiting bring its item in (*putter, to be told
 * once the lock is let go). Returns 0, ACTIO_ECLOSED (closed and drained)
 * or ACTIO_EAGAIN (empty). */
static int take(actio_queue *q, void **item, actio__waiter **putter) {
  *putter = NULL;
  if (q->len == 0)
    return q->closed ? ACTIO_ECLOSED : ACTIO_EAGAIN;
  *item = ring_pop(q);
  q->undone++;
  *putter = actio__waiter_claim(&q->putters);
  if (*putter != NULL)
    ring_push(q, (*putter)->as.wait.item);
  return 0;
}

/* After offer or take, the lock let go: completes the waiter they claimed
 * (a getter gets `item`; a putter hears its item is in). */
static void hand_over(actio__waiter *w, void *item, actio_free_fn item_free) {
  if (w != NULL)
    actio__waiter_settle(w, 0, item, item_free, NULL, 0);
}

/* A fresh future for a put, a get or a join; the lock taken once it is
 * made. */
static int begin_op(actio_queue *q, actio_future **out, actio_future **f) {
  if (q == NULL || out == NULL)
    return ACTIO_EINVAL;
  int rc = actio_future_create(f);
  if (rc == 0)
    pthread_mutex_lock(&q->s.mu);
  return rc;
}

/* Queues f as a waiter, or fails: the lock is let go either way. */
static int wait_op(actio_queue *q, actio__waitq *wq, actio_future *f, void *item,
                   actio_future **out) {
  int rc = actio__waiter_add(&q->s, wq, f, item);
  pthread_mutex_unlock(&q->s.mu);
  if (rc != 0) {
    actio_future_unref(f);
    return rc;
  }
  *out = f;
  return 0;
}

int actio_queue_put(actio_queue *q, void *item, actio_future **out) {
  actio_future *f;
  int rc = begin_op(q, out, &f);
  if (rc != 0)
    return rc;
  actio__waiter *getter;
  rc = offer(q, item, &getter);
  if (rc == ACTIO_EFULL)
    return wait_op(q, &q->putters, f, item, out);
  pthread_mutex_unlock(&q->s.mu);
  hand_over(getter, item, q->item_free);
  if (rc == 0)
    actio_future_resolve(f, NULL, NULL);
  else
    actio_future_fail(f, rc, CLOSED_MSG);
  *out = f;
  return 0;
}

int actio_queue_put_nowait(actio_queue *q, void *item) {
  if (q == NULL)
    return ACTIO_EINVAL;
  actio__waiter *getter;
  pthread_mutex_lock(&q->s.mu);
  int rc = offer(q, item, &getter);
  pthread_mutex_unlock(&q->s.mu);
  hand_over(getter, item, q->item_free);
  return rc;
}

int actio_queue_get(actio_queue *q, actio_future **out) {
  actio_future *f;
  int rc = begin_op(q, out, &f);
  if (rc != 0)
    return rc;
  void *item;
  actio__waiter *putter;
  rc = take(q, &item, &putter);
  if (rc == ACTIO_EAGAIN)
    return wait_op(q, &q->getters, f, NULL, out);
  actio_free_fn item_free = q->item_free; /* the putter's callbacks may end q */
  pthread_mutex_unlock(&q->s.mu);
  if (rc == 0)
    actio_future_resolve(f, item, item_free);
  else
    actio_future_fail(f, rc, CLOSED_MSG);
  hand_over(putter, NULL, NULL);
  *out = f;
  return 0;
}

int actio_queue_get_nowait(actio_queue *q, void **item) {
  if (q == NULL || item == NULL)
    return ACTIO_EINVAL;
  actio__waiter *putter;
  *item = NULL;
  pthread_mutex_lock(&q->s.mu);
  int rc = take(q, item, &putter);
  pthread_mutex_unlock(&q->s.mu);
  hand_over(putter, NULL, NULL);
  return rc;
}

int actio_queue_task_done(actio_queue *q) {
  if (q == NULL)
    return ACTIO_EINVAL;
  pthread_mutex_lock(&q->s.mu);
  if (q->undone == 0) {
    pthread_mutex_unlock(&q->s.mu);
    return ACTIO_ESTATE;
  }
  q->undone--;
  actio__waiter *joiners =
      q->len + q->undone == 0 ? actio__waiter_claim_all(&q->joiners) : NULL;
  pthread_mutex_unlock(&q->s.mu);
  actio__waiter_settle(joiners, 0, NULL, NULL, NULL, 1);
  return 0;
}

int actio_queue_join(actio_queue *q, actio_future **out) {
  actio_future *f;
  int rc = begin_op(q, out, &f);
  if (rc != 0)
    return rc;
  if (q->len + q->undone != 0)
    return wait_op(q, &q->joiners, f, NULL, out);
  pthread_mutex_unlock(&q->s.mu);
  actio_future_resolve(f, NULL, NULL);
  *out = f;
  return 0;
}

size_t actio_queue_len(const actio_queue *q) {
  return q != NULL ? actio__sync_read(&q->s, &q->len) : 0;
}

void actio_queue_close(actio_queue *q) {
  if (q == NULL)
    return;
  pthread_mutex_lock(&q->s.mu);
  q->closed = 1;
  /* Putters waiting never got in; getters wait only on an empty ring, so
   * every one left would wait for ever. Joiners still wait for what was
   * accepted to be got and done. */
  actio__waiter *putters = actio__waiter_claim_all(&q->putters);
  actio__waiter *getters = actio__waiter_claim_all(&q->getters);
  pthread_mutex_unlock(&q->s.mu);
  actio__waiter_settle(putters, ACTIO_ECLOSED, NULL, NULL, CLOSED_MSG, 1);
  actio__waiter_settle(getters, ACTIO_ECLOSED, NULL, NULL, CLOSED_MSG, 1);
}

void actio_queue_destroy(actio_queue *q) {
  if (q == NULL)
    return;
  actio_queue_close(q);
  pthread_mutex_lock(&q->s.mu);
  /* Nothing can be marked done any more: joins would wait for ever. */
  actio__waiter *joiners = actio__waiter_claim_all(&q->joiners);
  while (q->len > 0) {
    void *item = ring_pop(q);
    if (q->item_free != NULL)
      q->item_free(item);
  }
  pthread_mutex_unlock(&q->s.mu);
  actio__waiter_settle(joiners, ACTIO_ECANCELED, NULL, NULL, GONE_MSG, 1);
  actio__sync_unref(&q->s);
}

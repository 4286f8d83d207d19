/* queue.c: the awaitable bounded queue: a ring of items and two FIFOs of
 * waiters (getters wait only while the ring is empty, putters only while it
 * is full), under one mutex; futures are completed once it is let go. */
#include <stdint.h>
#include <stdlib.h>

#include "actio/error.h"
#include "actio/sync.h"
#include "actors/sync/waiters.h"

#define CLOSED_MSG "the queue was closed"

struct actio_queue {
  actio__sync s; /* first: the waiters' hooks hold it */
  actio_free_fn item_free;
  /* Under s.mu: */
  int closed;
  size_t cap, head, len;
  actio__waitq getters, putters;
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

/* A fresh future for a put or a get; the lock taken once it is made. */
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
  if (q->closed) {
    pthread_mutex_unlock(&q->s.mu);
    actio_future_fail(f, ACTIO_ECLOSED, CLOSED_MSG);
  } else if (q->len < q->cap) {
    /* Getters wait only on an empty ring: hand the item to the first one
     * still waiting, else it goes into the ring. */
    actio__waiter *g = q->len == 0 ? actio__waiter_claim(&q->getters) : NULL;
    if (g == NULL)
      ring_push(q, item);
    pthread_mutex_unlock(&q->s.mu);
    if (g != NULL)
      actio__waiter_settle(g, 0, item, q->item_free, NULL, 0);
    actio_future_resolve(f, NULL, NULL);
  } else {
    return wait_op(q, &q->putters, f, item, out);
  }
  *out = f;
  return 0;
}

int actio_queue_get(actio_queue *q, actio_future **out) {
  actio_future *f;
  int rc = begin_op(q, out, &f);
  if (rc != 0)
    return rc;
  if (q->len > 0) {
    void *item = ring_pop(q);
    /* Room now: the first putter still waiting brings its item in. */
    actio__waiter *p = actio__waiter_claim(&q->putters);
    if (p != NULL)
      ring_push(q, p->item);
    pthread_mutex_unlock(&q->s.mu);
    if (p != NULL)
      actio__waiter_settle(p, 0, NULL, NULL, NULL, 0);
    actio_future_resolve(f, item, q->item_free);
  } else if (q->closed) {
    pthread_mutex_unlock(&q->s.mu);
    actio_future_fail(f, ACTIO_ECLOSED, CLOSED_MSG);
  } else {
    return wait_op(q, &q->getters, f, NULL, out);
  }
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
   * every one left would wait for ever. */
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
  while (q->len > 0) {
    void *item = ring_pop(q);
    if (q->item_free != NULL)
      q->item_free(item);
  }
  pthread_mutex_unlock(&q->s.mu);
  actio__sync_unref(&q->s);
}

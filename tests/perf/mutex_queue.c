/* mutex_queue.c: a bounded ring guarded by one pthread mutex, with not_empty
 * and not_full condition variables; the mailbox benchmark's baseline. */
#include "mutex_queue.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "actio/error.h"

struct bench_mq {
  pthread_mutex_t mu; /* guards every field below */
  pthread_cond_t not_empty;
  pthread_cond_t not_full;
  bench_mq_msg *ring;
  size_t cap;
  size_t head;  /* index of the oldest message */
  size_t count; /* messages inside */
  int closed;
};

int bench_mq_create(bench_mq **out, size_t capacity) {
  if (out == NULL || capacity == 0 || capacity > SIZE_MAX / sizeof(bench_mq_msg))
    return ACTIO_EINVAL;
  bench_mq *q = calloc(1, sizeof *q);
  if (q == NULL)
    return ACTIO_ENOMEM;
  q->ring = malloc(capacity * sizeof *q->ring);
  if (q->ring == NULL)
    goto fail_ring;
  if (pthread_mutex_init(&q->mu, NULL) != 0)
    goto fail_mu;
  if (pthread_cond_init(&q->not_empty, NULL) != 0)
    goto fail_not_empty;
  if (pthread_cond_init(&q->not_full, NULL) != 0)
    goto fail_not_full;
  q->cap = capacity;
  *out = q;
  return 0;

fail_not_full:
  pthread_cond_destroy(&q->not_empty);
fail_not_empty:
  pthread_mutex_destroy(&q->mu);
fail_mu:
  free(q->ring);
fail_ring:
  free(q);
  return ACTIO_ENOMEM;
}

void bench_mq_destroy(bench_mq *q) {
  if (q == NULL)
    return;
  pthread_cond_destroy(&q->not_full);
  pthread_cond_destroy(&q->not_empty);
  pthread_mutex_destroy(&q->mu);
  free(q->ring);
  free(q);
}

int bench_mq_push(bench_mq *q, const bench_mq_msg *msg) {
  pthread_mutex_lock(&q->mu);
  while (q->count == q->cap && !q->closed)
    pthread_cond_wait(&q->not_full, &q->mu);
  if (q->closed) {
    pthread_mutex_unlock(&q->mu);
    return ACTIO_ECLOSED;
  }
  size_t tail = q->head + q->count;
  if (tail >= q->cap)
    tail -= q->cap;
  q->ring[tail] = *msg;
  q->count++;
  pthread_cond_signal(&q->not_empty);
  pthread_mutex_unlock(&q->mu);
  return 0;
}

int bench_mq_pop(bench_mq *q, bench_mq_msg *out) {
  pthread_mutex_lock(&q->mu);
  while (q->count == 0 && !q->closed)
    pthread_cond_wait(&q->not_empty, &q->mu);
  if (q->count == 0) { /* closed and drained */
    pthread_mutex_unlock(&q->mu);
    return ACTIO_ECLOSED;
  }
  *out = q->ring[q->head];
  if (++q->head == q->cap)
    q->head = 0;
  q->count--;
  pthread_cond_signal(&q->not_full);
  pthread_mutex_unlock(&q->mu);
  return 0;
}

void bench_mq_close(bench_mq *q) {
  pthread_mutex_lock(&q->mu);
  q->closed = 1;
  pthread_cond_broadcast(&q->not_empty);
  pthread_cond_broadcast(&q->not_full);
  pthread_mutex_unlock(&q->mu);
}

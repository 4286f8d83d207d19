/* mutex_queue.h: the baseline for the mailbox benchmark: a bounded ring of
 * two-word messages behind one mutex and two condition variables. */
#ifndef ACTIO_PERF_MUTEX_QUEUE_H
#define ACTIO_PERF_MUTEX_QUEUE_H

#include <stddef.h>

/*
 * The textbook blocking queue, kept deliberately plain (no spinning, no
 * waiter counts) so that it measures what the lock-free mailbox is meant to
 * beat. Every call may come from any thread.
 */
typedef struct bench_mq bench_mq;

/* Same shape as actio__mbox_msg, so both queues move the same bytes. */
typedef struct bench_mq_msg {
  void *a;
  void *b;
} bench_mq_msg;

/* Creates a queue holding `capacity` messages (> 0). Returns 0,
 * ACTIO_EINVAL or ACTIO_ENOMEM. */
int bench_mq_create(bench_mq **out, size_t capacity);

/* Frees the queue; messages still inside are not freed. Call only once no
 * other thread uses it. NULL is accepted. */
void bench_mq_destroy(bench_mq *q);

/* Pushes `msg`, sleeping while the queue is full. Returns 0, or ACTIO_ECLOSED
 * if the queue is (or becomes, while waiting) closed; the message then stays
 * the caller's. */
int bench_mq_push(bench_mq *q, const bench_mq_msg *msg);

/* Pops the oldest message into *out, sleeping while the queue is empty.
 * Returns 0, or ACTIO_ECLOSED once closed and drained. */
int bench_mq_pop(bench_mq *q, bench_mq_msg *out);

/* Refuses later pushes and wakes every sleeper; messages already inside stay
 * poppable. Idempotent. */
void bench_mq_close(bench_mq *q);

#endif

/* test_mailbox.c: the lock-free mailbox: order, full and empty, timeouts,
 * close, wake hook, an 8-producer 4-consumer stress of 1,000,000,
 * bursts that need every consumer woken, pushes landing while woken
 * consumers are on their way, and pushes landing at a poll's end. */
#include <ck_pr.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>

#include "actio.h"
#include "base/clock.h"
#include "base/park.h"
#include "mailbox/mailbox.h"
#include "test_util.h"

static actio__mbox_msg msg(uintptr_t a) {
  return (actio__mbox_msg){(void *)a, (void *)(a * 2)};
}

START_TEST(create_rejects_bad_arguments) {
  actio__mbox *mb = NULL;
  ck_assert_int_eq(actio__mbox_create(NULL, 8), ACTIO_EINVAL);
  ck_assert_int_eq(actio__mbox_create(&mb, 0), ACTIO_EINVAL);
  ck_assert_int_eq(actio__mbox_create(&mb, SIZE_MAX), ACTIO_EINVAL);
  ck_assert_int_eq(actio__mbox_create(&mb, 5), 0);
  ck_assert_uint_eq(actio__mbox_capacity(mb), 8);
  actio__mbox_msg m[1];
  size_t n = 1;
  ck_assert_int_eq(actio__mbox_pop_many(mb, m, 0, &n, 0), ACTIO_EINVAL);
  ck_assert_uint_eq(n, 0);
  actio__mbox_destroy(mb);
  actio__mbox_destroy(NULL);
}
END_TEST

START_TEST(fifo_full_and_empty) {
  actio__mbox *mb;
  ck_assert_int_eq(actio__mbox_create(&mb, 4), 0);
  for (uintptr_t i = 1; i <= 4; i++) {
    actio__mbox_msg m = msg(i);
    ck_assert_int_eq(actio__mbox_push(mb, &m, 0), 0);
  }
  actio__mbox_msg m = msg(5);
  ck_assert_int_eq(actio__mbox_push(mb, &m, 0), ACTIO_EFULL);
  ck_assert_uint_eq(actio__mbox_depth(mb), 4);
  for (uintptr_t i = 1; i <= 4; i++) {
    ck_assert_int_eq(actio__mbox_pop(mb, &m, 0), 0);
    ck_assert_ptr_eq(m.a, (void *)i);
    ck_assert_ptr_eq(m.b, (void *)(i * 2));
  }
  ck_assert_int_eq(actio__mbox_pop(mb, &m, 0), ACTIO_EAGAIN);
  ck_assert_uint_eq(actio__mbox_depth(mb), 0);
  actio__mbox_destroy(mb);
}
END_TEST

START_TEST(timeouts_expire) {
  actio__mbox *mb;
  ck_assert_int_eq(actio__mbox_create(&mb, 2), 0);
  actio__mbox_msg m = msg(1);
  int64_t t0 = actio__now_ns();
  ck_assert_int_eq(actio__mbox_pop(mb, &m, 30), ACTIO_ETIMEDOUT);
  ck_assert_int_ge(actio__now_ns() - t0, 30 * 1000000);
  ck_assert_int_eq(actio__mbox_push(mb, &m, 0), 0);
  ck_assert_int_eq(actio__mbox_push(mb, &m, 0), 0);
  t0 = actio__now_ns();
  ck_assert_int_eq(actio__mbox_push(mb, &m, 30), ACTIO_ETIMEDOUT);
  ck_assert_int_ge(actio__now_ns() - t0, 30 * 1000000);
  actio__mbox_destroy(mb);
}
END_TEST

typedef struct {
  actio__mbox *mb;
  int rc;
  actio__mbox_msg m;
  _Atomic int tid; /* the thread, once it is about to block */
} blocked_arg;

static void *blocked_push(void *p) {
  blocked_arg *a = p;
  announce_block(&a->tid);
  a->rc = actio__mbox_push(a->mb, &a->m, -1);
  return NULL;
}

static void *blocked_pop(void *p) {
  blocked_arg *a = p;
  announce_block(&a->tid);
  a->rc = actio__mbox_pop(a->mb, &a->m, -1);
  return NULL;
}

START_TEST(blocked_sender_gets_room) {
  actio__mbox *mb;
  ck_assert_int_eq(actio__mbox_create(&mb, 2), 0);
  actio__mbox_msg m = msg(1);
  actio__mbox_push(mb, &m, 0);
  actio__mbox_push(mb, &m, 0);
  blocked_arg a = {mb, 1, msg(3), 0};
  pthread_t t;
  start_threads(&t, 1, blocked_push, &a, 0);
  await_blocked(&a.tid); /* asleep on the full mailbox */
  ck_assert_int_eq(actio__mbox_pop(mb, &m, 0), 0);
  join_threads(&t, 1);
  ck_assert_int_eq(a.rc, 0);
  ck_assert_int_eq(actio__mbox_pop(mb, &m, 0), 0);
  ck_assert_int_eq(actio__mbox_pop(mb, &m, 0), 0);
  ck_assert_ptr_eq(m.a, (void *)3);
  actio__mbox_destroy(mb);
}
END_TEST

START_TEST(sleeping_consumer_wakes_on_push) {
  actio__mbox *mb;
  ck_assert_int_eq(actio__mbox_create(&mb, 2), 0);
  blocked_arg a = {mb, 1, msg(0), 0};
  pthread_t t;
  start_threads(&t, 1, blocked_pop, &a, 0);
  await_blocked(&a.tid); /* asleep on the empty mailbox */
  actio__mbox_msg m = msg(7);
  ck_assert_int_eq(actio__mbox_push(mb, &m, 0), 0);
  join_threads(&t, 1);
  ck_assert_int_eq(a.rc, 0);
  ck_assert_ptr_eq(a.m.a, (void *)7);
  actio__mbox_destroy(mb);
}
END_TEST

START_TEST(close_refuses_new_and_keeps_accepted) {
  actio__mbox *mb;
  ck_assert_int_eq(actio__mbox_create(&mb, 4), 0);
  actio__mbox_msg m = msg(1);
  ck_assert_int_eq(actio__mbox_push(mb, &m, 0), 0);
  m = msg(2);
  ck_assert_int_eq(actio__mbox_push(mb, &m, 0), 0);
  ck_assert(!actio__mbox_is_closed(mb));
  actio__mbox_close(mb);
  actio__mbox_close(mb); /* idempotent */
  ck_assert(actio__mbox_is_closed(mb));
  ck_assert_int_eq(actio__mbox_push(mb, &m, -1), ACTIO_ECLOSED);
  ck_assert_int_eq(actio__mbox_pop(mb, &m, -1), 0);
  ck_assert_ptr_eq(m.a, (void *)1);
  ck_assert_int_eq(actio__mbox_pop(mb, &m, -1), 0);
  ck_assert_ptr_eq(m.a, (void *)2);
  ck_assert_int_eq(actio__mbox_pop(mb, &m, -1), ACTIO_ECLOSED);
  actio__mbox_destroy(mb);
}
END_TEST

START_TEST(close_wakes_blocked_threads) {
  actio__mbox *full, *empty;
  ck_assert_int_eq(actio__mbox_create(&full, 2), 0);
  ck_assert_int_eq(actio__mbox_create(&empty, 2), 0);
  actio__mbox_msg m = msg(1);
  actio__mbox_push(full, &m, 0);
  actio__mbox_push(full, &m, 0);
  blocked_arg a[2] = {{full, 1, msg(9), 0}, {empty, 1, msg(0), 0}};
  pthread_t t[2];
  ck_assert_int_eq(pthread_create(&t[0], NULL, blocked_push, &a[0]), 0);
  ck_assert_int_eq(pthread_create(&t[1], NULL, blocked_pop, &a[1]), 0);
  await_blocked(&a[0].tid);
  await_blocked(&a[1].tid);
  actio__mbox_close(full);
  actio__mbox_close(empty);
  join_threads(t, 2);
  ck_assert_int_eq(a[0].rc, ACTIO_ECLOSED);
  ck_assert_int_eq(a[1].rc, ACTIO_ECLOSED);
  actio__mbox_destroy(full);
  actio__mbox_destroy(empty);
}
END_TEST

static void count_wake(void *arg) { ck_pr_inc_uint(arg); }

START_TEST(wake_hook_runs_per_accepted_push) {
  actio__mbox *mb;
  unsigned woken = 0;
  ck_assert_int_eq(actio__mbox_create(&mb, 2), 0);
  actio__mbox_set_wake(mb, count_wake, &woken);
  actio__mbox_msg m = msg(1);
  actio__mbox_push(mb, &m, 0);
  actio__mbox_push(mb, &m, 0);
  ck_assert_int_eq(actio__mbox_push(mb, &m, 0), ACTIO_EFULL);
  ck_assert_uint_eq(woken, 2);
  actio__mbox_destroy(mb);
}
END_TEST

/* ---- stress: 8 producers, 4 consumers, 1,000,000 messages ---- */

enum { PRODUCERS = 8, CONSUMERS = 4, PER_PRODUCER = 125000 };

typedef struct {
  actio__mbox *mb;
  int id;
  uint64_t pushed;
  int close_after; /* producer 0 closes the mailbox after this many (0: never) */
} producer;

typedef struct {
  actio__mbox *mb;
  uint8_t *seen; /* PRODUCERS * PER_PRODUCER counters */
  uint64_t popped;
  int in_order; /* each producer's messages reach a consumer in order */
} consumer;

static void *produce(void *p) {
  producer *pr = p;
  for (uintptr_t i = 0; i < PER_PRODUCER; i++) {
    if (pr->close_after && pr->id == 0 && i == (uintptr_t)pr->close_after)
      actio__mbox_close(pr->mb);
    actio__mbox_msg m = {(void *)(uintptr_t)pr->id, (void *)i};
    int rc = actio__mbox_push(pr->mb, &m, -1);
    if (rc == ACTIO_ECLOSED)
      break;
    ck_assert_int_eq(rc, 0);
    pr->pushed++;
  }
  return NULL;
}

static void *consume(void *p) {
  consumer *c = p;
  intptr_t last[PRODUCERS];
  for (int i = 0; i < PRODUCERS; i++)
    last[i] = -1;
  c->in_order = 1;
  actio__mbox_msg m;
  int rc;
  while ((rc = actio__mbox_pop(c->mb, &m, -1)) == 0) {
    uintptr_t id = (uintptr_t)m.a, seq = (uintptr_t)m.b;
    /* Different slots per message: no two consumers write one byte. */
    c->seen[id * PER_PRODUCER + seq]++;
    if ((intptr_t)seq <= last[id])
      c->in_order = 0;
    last[id] = (intptr_t)seq;
    c->popped++;
  }
  ck_assert_int_eq(rc, ACTIO_ECLOSED);
  return NULL;
}

static void run_stress(size_t capacity, int close_after) {
  actio__mbox *mb;
  ck_assert_int_eq(actio__mbox_create(&mb, capacity), 0);
  uint8_t *seen = calloc(PRODUCERS * PER_PRODUCER, 1);
  producer pr[PRODUCERS];
  consumer co[CONSUMERS];
  pthread_t pt[PRODUCERS], ct[CONSUMERS];
  for (int i = 0; i < PRODUCERS; i++)
    pr[i] = (producer){mb, i, 0, close_after};
  for (int i = 0; i < CONSUMERS; i++)
    co[i] = (consumer){mb, seen, 0, 0};
  start_threads(ct, CONSUMERS, consume, co, sizeof co[0]);
  start_threads(pt, PRODUCERS, produce, pr, sizeof pr[0]);
  join_threads(pt, PRODUCERS);
  actio__mbox_close(mb);
  join_threads(ct, CONSUMERS);

  uint64_t pushed = 0, popped = 0;
  for (int i = 0; i < PRODUCERS; i++)
    pushed += pr[i].pushed;
  for (int i = 0; i < CONSUMERS; i++) {
    popped += co[i].popped;
    ck_assert(co[i].in_order);
  }
  ck_assert_uint_eq(pushed, popped);
  if (!close_after)
    ck_assert_uint_eq(popped, (uint64_t)PRODUCERS * PER_PRODUCER);
  /* Exactly once: every accepted message seen once, nothing else seen. */
  for (int p = 0; p < PRODUCERS; p++)
    for (uint64_t i = 0; i < PER_PRODUCER; i++)
      ck_assert_uint_eq(seen[p * PER_PRODUCER + i], i < pr[p].pushed ? 1 : 0);
  free(seen);
  actio__mbox_destroy(mb);
}

START_TEST(stress_8_producers_4_consumers) { run_stress(1024, 0); }
END_TEST

START_TEST(stress_small_mailbox_blocks_producers) { run_stress(16, 0); }
END_TEST

START_TEST(stress_close_midway_loses_nothing) { run_stress(256, PER_PRODUCER / 3); }
END_TEST

/* Bursts of k messages to 8 consumers, where each consumer holds its
 * message until all k are taken: a burst completes only if k consumers
 * are woken at once. Only a few consumers poll (the rest park at once),
 * and pushes made while one polls wake nobody, so the poller that takes
 * a message must pass the wake on: a lost one hangs the test. */
enum { BURST_CONSUMERS = 8, BURST_ROUNDS = 3000 };

typedef struct {
  actio__mbox *mb;
  _Atomic uint64_t target; /* taken once the current burst is all taken */
  _Atomic uint64_t taken;
} burst;

static void *burst_consume(void *p) {
  burst *b = p;
  actio__mbox_msg m;
  while (actio__mbox_pop(b->mb, &m, -1) == 0) {
    /* Before counting itself: the burst's end cannot move on until it has. */
    uint64_t end = atomic_load_explicit(&b->target, memory_order_acquire);
    atomic_fetch_add_explicit(&b->taken, 1, memory_order_acq_rel);
    while (atomic_load_explicit(&b->taken, memory_order_acquire) < end)
      sched_yield(); /* the others of the burst are on their way */
  }
  return NULL;
}

START_TEST(bursts_reach_as_many_consumers_as_messages) {
  burst b = {0};
  ck_assert_int_eq(actio__mbox_create(&b.mb, 64), 0);
  pthread_t t[BURST_CONSUMERS];
  for (int i = 0; i < BURST_CONSUMERS; i++)
    ck_assert_int_eq(pthread_create(&t[i], NULL, burst_consume, &b), 0);
  uint64_t end = 0;
  for (int r = 0; r < BURST_ROUNDS; r++) {
    /* 1 to 8, in an order that mixes short and long bursts. */
    uint64_t k = 1 + (uint64_t)(r * 5) % BURST_CONSUMERS;
    end += k;
    atomic_store_explicit(&b.target, end, memory_order_release);
    for (uint64_t i = 0; i < k; i++) {
      actio__mbox_msg m = msg(i + 1);
      ck_assert_int_eq(actio__mbox_push(b.mb, &m, -1), 0);
    }
    while (atomic_load_explicit(&b.taken, memory_order_acquire) < end)
      sched_yield();
  }
  actio__mbox_close(b.mb);
  for (int i = 0; i < BURST_CONSUMERS; i++)
    ck_assert_int_eq(pthread_join(t[i], NULL), 0);
  ck_assert_uint_eq(atomic_load(&b.taken), end);
  ck_assert_uint_eq(actio__mbox_depth(b.mb), 0);
  actio__mbox_destroy(b.mb);
}
END_TEST

/* One consumer, one message at a time, each pushed a different while after
 * the last was taken, so that pushes land all over the consumer's poll,
 * its end included: a push that counts the poller before it publishes, or
 * a poller that stops polling without looking once more, leaves the
 * message with the consumer asleep, and the test hangs. */
enum { EDGE_ROUNDS = 20000, EDGE_PAUSES = 8192 };

typedef struct {
  actio__mbox *mb;
  _Atomic uint64_t taken;
} edge;

static void *edge_consume(void *p) {
  edge *e = p;
  actio__mbox_msg m;
  while (actio__mbox_pop(e->mb, &m, -1) == 0)
    atomic_fetch_add_explicit(&e->taken, 1, memory_order_release);
  return NULL;
}

START_TEST(pushes_as_a_poller_gives_up_still_wake_it) {
  edge e = {0};
  ck_assert_int_eq(actio__mbox_create(&e.mb, 8), 0);
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, edge_consume, &e), 0);
  for (uint64_t r = 0; r < EDGE_ROUNDS; r++) {
    actio__mbox_msg m = msg(r + 1);
    ck_assert_int_eq(actio__mbox_push(e.mb, &m, -1), 0);
    while (atomic_load_explicit(&e.taken, memory_order_acquire) <= r)
      sched_yield();
    /* Not a wait for anything: only where in the poll the next push lands
     * (spread by a multiplicative hash of the round). */
    for (uint64_t i = (r * 2654435761u) % EDGE_PAUSES; i > 0; i--)
      ck_pr_stall();
  }
  actio__mbox_close(e.mb);
  ck_assert_int_eq(pthread_join(t, NULL), 0);
  ck_assert_uint_eq(atomic_load(&e.taken), EDGE_ROUNDS);
  actio__mbox_destroy(e.mb);
}
END_TEST

/* The count of consumers woken and not yet back: a signal counts the
 * waiter it takes off the list in, its wait's return (or a cancel that
 * passes the wake on) counts it out. A push skips the wake while as many
 * are on their way as there are messages, so a count that stays up loses
 * wake-ups, and one that drops early wakes too many. */
START_TEST(a_signalled_waiter_counts_as_waking_until_it_returns) {
  actio__event ev;
  actio__event_init(&ev);
  actio__waiter w1, w2;
  ck_assert_uint_eq(actio__event_waking(&ev), 0);
  actio__event_signal(&ev); /* nobody parked: nobody counted */
  ck_assert_uint_eq(actio__event_waking(&ev), 0);
  actio__event_prepare(&ev, &w1);
  actio__event_signal(&ev);
  ck_assert_uint_eq(actio__event_waking(&ev), 1);
  ck_assert_int_eq(actio__event_has_waiters(&ev), 0);
  ck_assert_int_eq(actio__event_wait(&ev, &w1, -1), 0); /* woken: at once */
  ck_assert_uint_eq(actio__event_waking(&ev), 0);
  /* A woken waiter that cancels passes the wake on, still counted once. */
  actio__event_prepare(&ev, &w1);
  actio__event_prepare(&ev, &w2);
  actio__event_signal(&ev); /* takes w2, the last parked */
  ck_assert_uint_eq(actio__event_waking(&ev), 1);
  actio__event_cancel(&ev, &w2);
  ck_assert_uint_eq(actio__event_waking(&ev), 1); /* w1 now */
  ck_assert_int_eq(actio__event_has_waiters(&ev), 0);
  ck_assert_int_eq(actio__event_wait(&ev, &w1, 0), 0); /* woken beats the deadline */
  ck_assert_uint_eq(actio__event_waking(&ev), 0);
  /* A cancel that no signal reached counts nothing; a timeout neither. */
  actio__event_prepare(&ev, &w1);
  actio__event_cancel(&ev, &w1);
  actio__event_prepare(&ev, &w1);
  ck_assert_int_eq(actio__event_wait(&ev, &w1, 0), ACTIO_ETIMEDOUT);
  ck_assert_uint_eq(actio__event_waking(&ev), 0);
  ck_assert_int_eq(actio__event_has_waiters(&ev), 0);
  /* A broadcast counts every sleeper it takes. */
  actio__event_prepare(&ev, &w1);
  actio__event_prepare(&ev, &w2);
  actio__event_broadcast(&ev);
  ck_assert_uint_eq(actio__event_waking(&ev), 2);
  ck_assert_int_eq(actio__event_wait(&ev, &w1, -1), 0);
  ck_assert_int_eq(actio__event_wait(&ev, &w2, -1), 0);
  ck_assert_uint_eq(actio__event_waking(&ev), 0);
  actio__event_destroy(&ev);
}
END_TEST

/* Consumers that park at once (no polling) and take one message at a
 * time, and producers pushing bursts of 1 to 5 at once, each waiting for
 * its burst to be taken: pushes land while consumers woken for earlier
 * ones are on their way, and those skip the wake (one of those takes the
 * message, or wakes for it after its own). A consumer that returns to
 * the mailbox takes a message a woken one was meant for, which then finds
 * the ring empty, or the head cell still being published by a producer
 * that looks after it. A lost wake-up hangs the test. */
enum { ONWAY_CONSUMERS = 4, ONWAY_PRODUCERS = 3, ONWAY_ROUNDS = 4000 };

typedef struct {
  actio__mbox *mb;
  _Atomic uint64_t taken[ONWAY_PRODUCERS];
} onway;

typedef struct {
  onway *o;
  uintptr_t id;
} onway_producer;

static void *onway_consume(void *p) {
  onway *o = p;
  actio__mbox_msg m;
  while (actio__mbox_pop(o->mb, &m, -1) == 0)
    atomic_fetch_add_explicit(&o->taken[(uintptr_t)m.a - 1], 1, memory_order_release);
  return NULL;
}

static void *onway_produce(void *p) {
  onway_producer *pr = p;
  uint64_t end = 0;
  for (uint64_t r = 0; r < ONWAY_ROUNDS; r++) {
    uint64_t k = 1 + (r * 2654435761u + pr->id) % 5;
    for (uint64_t i = 0; i < k; i++) {
      actio__mbox_msg m = msg(pr->id + 1);
      ck_assert_int_eq(actio__mbox_push(pr->o->mb, &m, -1), 0);
    }
    end += k;
    while (atomic_load_explicit(&pr->o->taken[pr->id], memory_order_acquire) < end)
      sched_yield();
  }
  return NULL;
}

START_TEST(pushes_while_woken_consumers_are_on_their_way) {
  onway o = {0};
  ck_assert_int_eq(actio__mbox_create(&o.mb, 64), 0);
  actio__mbox_set_spin(o.mb, 0); /* every empty pop parks */
  pthread_t c[ONWAY_CONSUMERS], p[ONWAY_PRODUCERS];
  onway_producer pr[ONWAY_PRODUCERS];
  for (int i = 0; i < ONWAY_CONSUMERS; i++)
    ck_assert_int_eq(pthread_create(&c[i], NULL, onway_consume, &o), 0);
  for (int i = 0; i < ONWAY_PRODUCERS; i++) {
    pr[i] = (onway_producer){&o, (uintptr_t)i};
    ck_assert_int_eq(pthread_create(&p[i], NULL, onway_produce, &pr[i]), 0);
  }
  for (int i = 0; i < ONWAY_PRODUCERS; i++)
    ck_assert_int_eq(pthread_join(p[i], NULL), 0);
  actio__mbox_close(o.mb);
  for (int i = 0; i < ONWAY_CONSUMERS; i++)
    ck_assert_int_eq(pthread_join(c[i], NULL), 0);
  ck_assert_uint_eq(actio__mbox_depth(o.mb), 0);
  actio__mbox_destroy(o.mb);
}
END_TEST

int main(void) {
  Suite *s = suite_create("mailbox");
  TCase *tc = tcase_with_timeout("basics", 30);
  tcase_add_test(tc, create_rejects_bad_arguments);
  tcase_add_test(tc, fifo_full_and_empty);
  tcase_add_test(tc, timeouts_expire);
  tcase_add_test(tc, blocked_sender_gets_room);
  tcase_add_test(tc, sleeping_consumer_wakes_on_push);
  tcase_add_test(tc, close_refuses_new_and_keeps_accepted);
  tcase_add_test(tc, close_wakes_blocked_threads);
  tcase_add_test(tc, wake_hook_runs_per_accepted_push);
  tcase_add_test(tc, a_signalled_waiter_counts_as_waking_until_it_returns);
  suite_add_tcase(s, tc);
  TCase *st = tcase_with_timeout("stress", 600);
  tcase_add_test(st, stress_8_producers_4_consumers);
  tcase_add_test(st, stress_small_mailbox_blocks_producers);
  tcase_add_test(st, stress_close_midway_loses_nothing);
  suite_add_tcase(s, st);
  TCase *bu = tcase_with_timeout("bursts", 300);
  tcase_add_test(bu, bursts_reach_as_many_consumers_as_messages);
  tcase_add_test(bu, pushes_while_woken_consumers_are_on_their_way);
  suite_add_tcase(s, bu);
  TCase *ed = tcase_with_timeout("poll-edge", 300);
  tcase_add_test(ed, pushes_as_a_poller_gives_up_still_wake_it);
  suite_add_tcase(s, ed);
  return run_suite(s);
}

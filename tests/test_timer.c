/* test_timer.c: sleep futures, delayed and periodic sends, their cancels
 * and races, on the runtime's one timer thread. Tests wait for states (a
 * future, a counter); none asserts that a timer fired on time. What a test
 * needs "later" is a sleep that fires after it: the timer fires ticks in
 * order, so a sleep due after a timer's tick has fired only once that
 * tick's timers have. */
#include <check.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "actio.h"
#include "actors/core/deadline.h"
#include "actors/core/runtime.h"
#include "base/asan.h"
#include "base/clock.h"
#include "test_util.h"

/* ---- a counting actor: handled and dropped messages ---- */

typedef struct tally {
  _Atomic int handled, dropped;
  _Atomic long sum;        /* of the handled messages' values */
  actio_timer *self_timer; /* a periodic send that the handler cancels */
  int cancel_at;           /* ... at this count (0: never) */
  _Atomic int cancel_rc;
  test_gate *gate;         /* the first message waits here, if set */
} tally;

static int tally_handle(actio_actor *self, void *worker, void *msg, actio_future *reply) {
  tally *t = actio_actor_state(self);
  (void)worker;
  (void)reply;
  if (t->gate != NULL && atomic_load(&t->handled) == 0)
    gate_hold(t->gate);
  atomic_fetch_add(&t->sum, (long)(intptr_t)msg);
  int n = atomic_fetch_add(&t->handled, 1) + 1;
  if (t->cancel_at != 0 && n == t->cancel_at)
    atomic_store(&t->cancel_rc, actio_timer_cancel(t->self_timer));
  return 0;
}

static void tally_drop(actio_actor *self, void *msg) {
  tally *t = actio_actor_state(self);
  (void)msg;
  atomic_fetch_add(&t->dropped, 1);
}

static const actio_behavior tally_behavior = {.handle = tally_handle, .drop = tally_drop};

static actio_actor *spawn_tally(actio_runtime *rt, tally *t, unsigned workers,
                                size_t capacity) {
  actio_actor *a;
  actio_actor_opts o = {.name = "tally", .state = t, .workers = workers,
                        .capacity = capacity};
  ck_assert_int_eq(actio_actor_spawn(rt, &tally_behavior, &o, &a), 0);
  return a;
}

/* A new runtime (*rt) with a tally actor. */
static actio_actor *start_tally(actio_runtime **rt, tally *t, unsigned workers,
                                size_t capacity) {
  ck_assert_int_eq(actio_runtime_create(rt, NULL), 0);
  return spawn_tally(*rt, t, workers, capacity);
}

static void wait_count(_Atomic int *c, int want) {
  while (atomic_load(c) < want)
    usleep(200);
}

/* Waits until the timer has fired every tick up to ms from now. */
static void pass_ms(actio_runtime *rt, int64_t ms) {
  actio_future *f;
  ck_assert_int_eq(actio_sleep(rt, ms, &f), 0);
  ck_assert_int_eq(actio_future_wait(f, -1), 0);
  actio_future_unref(f);
}

/* Holds the timer's thread in a callback until the gate opens: what comes
 * due meanwhile waits, in a known state. */
static void hold_on_timer(actio_future *f, void *arg) {
  (void)f;
  gate_hold(arg);
}

static actio_future *hold_timer(actio_runtime *rt, test_gate *g) {
  actio_future *f;
  ck_assert_int_eq(actio_future_create(&f), 0);
  ck_assert_int_eq(actio_future_on_done(f, hold_on_timer, g), 0);
  ck_assert_int_eq(actio_future_set_deadline(rt, f, 0), 0); /* fires on the timer */
  gate_wait_held(g);
  return f;
}

static void *make_tick(void *arg);

/* ---- sleeps ---- */

typedef struct order {
  _Atomic int next, done;
  int seen[16];
} order;

typedef struct order_item {
  order *o;
  int index;
} order_item;

static void record(actio_future *f, void *arg) {
  order_item *it = arg;
  (void)f;
  it->o->seen[atomic_fetch_add(&it->o->next, 1)] = it->index;
  atomic_fetch_add(&it->o->done, 1);
}

START_TEST(sleeps_fire_in_the_order_they_are_due) {
  /* Armed shortest first, so each is due after the one before whatever the
   * machine's pace; the longer ones start on higher levels of the wheel
   * and come down. */
  static const int64_t delays[] = {0, 1, 2, 5, 30, 64, 70, 200, 300};
  enum { N = sizeof delays / sizeof delays[0] };
  actio_runtime *rt;
  ck_assert_int_eq(actio_runtime_create(&rt, NULL), 0);
  order o = {0};
  order_item items[N];
  actio_future *fs[N];
  for (int i = 0; i < N; i++) {
    items[i] = (order_item){&o, i};
    ck_assert_int_eq(actio_sleep(rt, delays[i], &fs[i]), 0);
    ck_assert_int_eq(actio_future_on_done(fs[i], record, &items[i]), 0);
  }
  for (int i = 0; i < N; i++) {
    ck_assert_int_eq(actio_future_wait(fs[i], -1), 0);
    ck_assert_ptr_null(actio_future_value(fs[i]));
  }
  wait_count(&o.done, N); /* callbacks run after a waiter may see the future done */
  for (int i = 0; i < N; i++)
    ck_assert_int_eq(o.seen[i], i);
  for (int i = 0; i < N; i++)
    actio_future_unref(fs[i]);
  actio_runtime_destroy(rt);
}
END_TEST

START_TEST(a_cancelled_sleep_ends_at_once) {
  actio_runtime *rt;
  ck_assert_int_eq(actio_runtime_create(&rt, NULL), 0);
  actio_future *f, *forever;
  ck_assert_int_eq(actio_sleep(rt, 3600 * 1000, &f), 0);
  ck_assert_int_eq(actio_sleep(rt, INT64_MAX, &forever), 0); /* beyond the wheel */
  ck_assert_int_eq(actio_future_cancel(f), 0);
  ck_assert_int_eq(actio_future_wait(f, -1), ACTIO_ECANCELED);
  ck_assert_int_eq(actio_future_cancel(f), ACTIO_EALREADY);
  actio_future_unref(f);
  /* A sleep whose future nobody holds any more still ends with the runtime. */
  actio_future_unref(forever);
  actio_runtime_destroy(rt);
}
END_TEST

START_TEST(bad_arguments_are_refused) {
  tally t = {0};
  actio_runtime *rt;
  actio_actor *a = start_tally(&rt, &t, 0, 0);
  actio_future *f = NULL;
  actio_timer *tm = NULL;
  ck_assert_int_eq(actio_sleep(NULL, 1, &f), ACTIO_EINVAL);
  ck_assert_int_eq(actio_sleep(rt, -1, &f), ACTIO_EINVAL);
  ck_assert_int_eq(actio_sleep(rt, 1, NULL), ACTIO_EINVAL);
  ck_assert_int_eq(actio_send_after(NULL, NULL, 1, &tm), ACTIO_EINVAL);
  ck_assert_int_eq(actio_send_after(a, NULL, -1, &tm), ACTIO_EINVAL);
  ck_assert_int_eq(actio_send_every(NULL, 1, make_tick, NULL, &tm), ACTIO_EINVAL);
  ck_assert_int_eq(actio_send_every(a, 1, NULL, NULL, &tm), ACTIO_EINVAL);
  ck_assert_int_eq(actio_send_every(a, 0, make_tick, NULL, &tm), ACTIO_EINVAL);
  ck_assert_int_eq(actio_send_every(a, -5, make_tick, NULL, &tm), ACTIO_EINVAL);
  ck_assert_int_eq(actio_send_every(a, (int64_t)UINT32_MAX + 1, make_tick, NULL, &tm),
                   ACTIO_EINVAL);
  ck_assert_ptr_null(f);
  ck_assert_ptr_null(tm);
  ck_assert_int_eq(actio_timer_cancel(NULL), ACTIO_EINVAL);
  actio_timer_release(NULL);
  actio_runtime_destroy(rt);
  ck_assert_int_eq(atomic_load(&t.dropped), 0);
}
END_TEST

/* ---- delayed sends ---- */

START_TEST(a_delayed_send_is_delivered_once) {
  tally t = {0};
  actio_runtime *rt;
  actio_actor *a = start_tally(&rt, &t, 0, 0);
  actio_timer *tm;
  ck_assert_int_eq(actio_send_after(a, (void *)(intptr_t)7, 5, &tm), 0);
  ck_assert_int_eq(actio_send_after(a, (void *)(intptr_t)8, 0, NULL), 0); /* no handle */
  wait_count(&t.handled, 2);
  ck_assert_int_eq(atomic_load(&t.sum), 15);
  ck_assert_int_eq(actio_timer_cancel(tm), ACTIO_EALREADY); /* delivered */
  actio_timer_release(tm);
  actio_runtime_destroy(rt);
  ck_assert_int_eq(atomic_load(&t.handled), 2);
  ck_assert_int_eq(atomic_load(&t.dropped), 0);
}
END_TEST

START_TEST(a_cancelled_send_is_dropped_never_delivered) {
  tally t = {0};
  actio_runtime *rt;
  actio_actor *a = start_tally(&rt, &t, 0, 0);
  actio_timer *tm, *soon;
  ck_assert_int_eq(actio_send_after(a, (void *)1, 3600 * 1000, &tm), 0);
  ck_assert_int_eq(actio_send_after(a, (void *)2, 1, &soon), 0);
  ck_assert_int_eq(actio_timer_cancel(tm), 0);
  ck_assert_int_eq(atomic_load(&t.dropped), 1); /* before cancel returned */
  ck_assert_int_eq(actio_timer_cancel(tm), ACTIO_EALREADY);
  actio_timer_release(tm);
  /* Released pending, the other goes on and is delivered. */
  actio_timer_release(soon);
  wait_count(&t.handled, 1);
  ck_assert_int_eq(atomic_load(&t.sum), 2);
  actio_runtime_destroy(rt);
  ck_assert_int_eq(atomic_load(&t.dropped), 1);
}
END_TEST

START_TEST(a_send_due_while_its_actor_stopped_is_a_dead_letter) {
  tally t = {0};
  actio_runtime *rt;
  actio_actor *a = start_tally(&rt, &t, 0, 0);
  test_gate g = TEST_GATE_INIT;
  actio_future *held = hold_timer(rt, &g);
  actio_timer *tm;
  ck_assert_int_eq(actio_send_after(a, (void *)1, 0, &tm), 0); /* due, the timer held */
  ck_assert_int_eq(actio_actor_stop(a, ACTIO_STOP_DRAIN), 0);
  gate_open(&g);
  wait_count(&t.dropped, 1);
  ck_assert_uint_eq(actio_runtime_dead_letters(rt), 1);
  ck_assert_int_eq(actio_timer_cancel(tm), ACTIO_EALREADY);
  actio_timer_release(tm);
  /* A stopped actor refuses at the call: the message stays the caller's. */
  ck_assert_int_eq(actio_send_after(a, (void *)1, 0, &tm), ACTIO_ECLOSED);
  ck_assert_int_eq(actio_send_every(a, 1, make_tick, NULL, &tm), ACTIO_ECLOSED);
  actio_future_unref(held);
  actio_runtime_destroy(rt);
  ck_assert_int_eq(atomic_load(&t.handled), 0);
  ck_assert_int_eq(atomic_load(&t.dropped), 1);
}
END_TEST

START_TEST(a_full_mailbox_delays_a_send_and_loses_nothing) {
  actio_runtime *rt;
  ck_assert_int_eq(actio_runtime_create(&rt, NULL), 0);
  test_gate g = TEST_GATE_INIT;
  tally t = {.gate = &g};
  actio_actor *a = spawn_tally(rt, &t, 1, 2); /* a thread of its own, 2 cells */
  ck_assert_int_eq(actio_tell(a, (void *)1, -1), 0);
  gate_wait_held(&g); /* the worker holds the first message */
  ck_assert_int_eq(actio_tell(a, (void *)1, -1), 0);
  ck_assert_int_eq(actio_tell(a, (void *)1, -1), 0); /* full */
  ck_assert_int_eq(actio_send_after(a, (void *)10, 0, NULL), 0);
  pass_ms(rt, 3); /* its tick has come, and found no room; tried again since */
  ck_assert_int_eq(atomic_load(&t.handled), 0);
  gate_open(&g);
  wait_count(&t.handled, 4);
  ck_assert_int_eq(atomic_load(&t.sum), 13);
  actio_runtime_destroy(rt);
  ck_assert_int_eq(atomic_load(&t.dropped), 0);
}
END_TEST

/* How many fires a send kept out for `ms` ms can have made: at 0, then
 * after pauses of 1, 2, 4 ... ACTIO__SEND_BACKOFF_MS ms (never earlier). */
static uint64_t fires_within(int64_t ms) {
  uint64_t n = 0;
  for (int64_t at = 0, pause = 1; at <= ms; n++) {
    at += pause;
    if (pause < ACTIO__SEND_BACKOFF_MS)
      pause *= 2;
  }
  return n;
}

START_TEST(a_send_kept_out_by_a_full_mailbox_backs_off) {
  actio_runtime *rt;
  ck_assert_int_eq(actio_runtime_create(&rt, NULL), 0);
  test_gate g = TEST_GATE_INIT;
  tally t = {.gate = &g};
  actio_actor *a = spawn_tally(rt, &t, 1, 2);
  ck_assert_int_eq(actio_tell(a, (void *)1, -1), 0);
  gate_wait_held(&g);
  ck_assert_int_eq(actio_tell(a, (void *)1, -1), 0);
  ck_assert_int_eq(actio_tell(a, (void *)1, -1), 0); /* full */
  uint64_t before = actio__timer_retries(rt->timer);
  int64_t t0 = actio__now_ns();
  ck_assert_int_eq(actio_send_after(a, (void *)10, 0, NULL), 0);
  pass_ms(rt, 300);
  uint64_t tries = actio__timer_retries(rt->timer) - before;
  int64_t kept_ms = (actio__now_ns() - t0) / 1000000 + 1;
  /* Tried, and again after a pause, not at every tick: 14 fires in 300 ms
   * where a retry per tick made 300. A late timer only makes fewer. */
  ck_assert_uint_ge(tries, 2);
  ck_assert_uint_le(tries, fires_within(kept_ms));
  ck_assert_uint_lt(tries, (uint64_t)kept_ms / 8);
  ck_assert_int_eq(atomic_load(&t.handled), 0);
  gate_open(&g);
  wait_count(&t.handled, 4); /* room: delivered within a pause */
  ck_assert_int_eq(atomic_load(&t.sum), 13);
  actio_runtime_destroy(rt);
  ck_assert_int_eq(atomic_load(&t.dropped), 0);
}
END_TEST

/* ---- periodic sends ---- */

typedef struct ticker {
  _Atomic int made;
  actio_timer *self; /* cancelled from inside make at cancel_at */
  int cancel_at;
  _Atomic int cancel_rc;
} ticker;

static void *make_tick(void *arg) {
  ticker *k = arg;
  int n = atomic_fetch_add(&k->made, 1) + 1;
  if (k->cancel_at != 0 && n == k->cancel_at)
    atomic_store(&k->cancel_rc, actio_timer_cancel(k->self));
  return (void *)(intptr_t)1;
}

/* A runtime, a tally actor and a ticker, for the periodic sends. */
typedef struct periodic {
  actio_runtime *rt;
  tally t;
  actio_actor *a;
  ticker k;
  actio_timer *tm;
} periodic;

/* Starts x's runtime and actor, and a send of x->k's ticks every period
 * (its handle in *handle: x->tm, or where a canceller reads it). */
static void periodic_start(periodic *x, int64_t period, actio_timer **handle) {
  x->a = start_tally(&x->rt, &x->t, 0, 0);
  ck_assert_int_eq(actio_send_every(x->a, period, make_tick, &x->k, handle), 0);
}

/* A periodic send that stopped makes no tick in five more periods (the
 * timer fires ticks in order), every tick made is handled or dropped, and
 * a later cancel is too late. Ends the runtime. */
static void check_stopped(actio_runtime *rt, tally *t, ticker *k, actio_timer *tm,
                          int64_t period) {
  int made = atomic_load(&k->made);
  pass_ms(rt, 5 * period);
  ck_assert_int_eq(atomic_load(&k->made), made);
  while (atomic_load(&t->handled) + atomic_load(&t->dropped) < made)
    usleep(200);
  ck_assert_int_eq(actio_timer_cancel(tm), ACTIO_EALREADY);
  actio_timer_release(tm);
  actio_runtime_destroy(rt);
  ck_assert_int_eq(atomic_load(&t->handled) + atomic_load(&t->dropped), made);
}

START_TEST(a_periodic_send_cancelled_by_its_handler_stops_for_good) {
  periodic x = {.t = {.cancel_at = 3, .cancel_rc = 1}};
  periodic_start(&x, 1, &x.t.self_timer);
  while (atomic_load(&x.t.cancel_rc) == 1)
    usleep(200);
  ck_assert_int_eq(atomic_load(&x.t.cancel_rc), 0);
  check_stopped(x.rt, &x.t, &x.k, x.t.self_timer, 1);
  ck_assert_int_eq(atomic_load(&x.t.dropped), 0);
}
END_TEST

START_TEST(a_periodic_send_cancelled_from_another_thread_stops_for_good) {
  periodic x = {0};
  periodic_start(&x, 2, &x.tm);
  wait_count(&x.t.handled, 3);
  ck_assert_int_eq(actio_timer_cancel(x.tm), 0); /* make runs no more, from now on */
  check_stopped(x.rt, &x.t, &x.k, x.tm, 2);
  ck_assert_int_eq(atomic_load(&x.t.dropped), 0);
}
END_TEST

START_TEST(a_periodic_send_cancelled_from_its_make_stops_after_that_tick) {
  periodic x = {.k = {.cancel_at = 2, .cancel_rc = 1}};
  periodic_start(&x, 1, &x.k.self);
  wait_count(&x.t.handled, 2); /* the tick that cancelled is sent */
  ck_assert_int_eq(atomic_load(&x.k.cancel_rc), 0);
  check_stopped(x.rt, &x.t, &x.k, x.k.self, 1);
  ck_assert_int_eq(atomic_load(&x.k.made), 2);
  ck_assert_int_eq(atomic_load(&x.t.handled), 2);
}
END_TEST

START_TEST(a_periodic_send_ends_when_its_actor_stops) {
  periodic x = {0};
  periodic_start(&x, 1, &x.tm);
  wait_count(&x.t.handled, 1);
  ck_assert_int_eq(actio_actor_stop(x.a, ACTIO_STOP_DRAIN), 0);
  while (actio_runtime_dead_letters(x.rt) == 0)
    usleep(200);
  ck_assert_int_eq(actio_timer_cancel(x.tm), ACTIO_EALREADY); /* ended by itself */
  ck_assert_int_eq(atomic_load(&x.t.dropped), 1); /* the refused tick */
  ck_assert_uint_eq(actio_runtime_dead_letters(x.rt), 1);
  check_stopped(x.rt, &x.t, &x.k, x.tm, 1);
}
END_TEST

/* A cancel from another thread, announced, then blocked in the call. */
typedef struct canceller {
  actio_timer *tm;
  _Atomic int blocked; /* its thread id, once it calls (announce_block) */
  int rc;
} canceller;

static void *cancel_thread(void *arg) {
  canceller *c = arg;
  announce_block(&c->blocked);
  c->rc = actio_timer_cancel(c->tm);
  return NULL;
}

/* make holds the timer's thread at the gate on its second tick. */
typedef struct held_ticks {
  _Atomic int made;
  test_gate gate;
} held_ticks;

static void *make_held(void *arg) {
  held_ticks *h = arg;
  if (atomic_fetch_add(&h->made, 1) + 1 == 2)
    gate_hold(&h->gate);
  return NULL;
}

START_TEST(a_cancel_waits_for_the_tick_being_made) {
  tally t = {0};
  actio_runtime *rt;
  actio_actor *a = start_tally(&rt, &t, 0, 0);
  held_ticks h = {.gate = TEST_GATE_INIT};
  canceller c = {0};
  ck_assert_int_eq(actio_send_every(a, 1, make_held, &h, &c.tm), 0);
  gate_wait_held(&h.gate);
  pthread_t th;
  ck_assert_int_eq(pthread_create(&th, NULL, cancel_thread, &c), 0);
  await_blocked(&c.blocked); /* it waits for the tick in progress */
  gate_open(&h.gate);
  ck_assert_int_eq(pthread_join(th, NULL), 0);
  ck_assert_int_eq(c.rc, 0);
  ck_assert_int_eq(atomic_load(&h.made), 2); /* after a 0, make runs no more */
  pass_ms(rt, 5);
  ck_assert_int_eq(atomic_load(&h.made), 2);
  wait_count(&t.handled, 2); /* the tick being made when cancelled is sent */
  actio_timer_release(c.tm);
  actio_runtime_destroy(rt);
  ck_assert_int_eq(atomic_load(&t.dropped), 0);
}
END_TEST

/* The dead-letter hook runs on the timer's thread, inside the fire of the
 * send refused: its own cancel there is too late, and it holds the fire. */
typedef struct late_hook {
  canceller *c;
  int rc; /* the hook's own cancel */
  test_gate gate;
} late_hook;

static void cancel_and_hold(void *arg, actio_actor *to, void *msg) {
  late_hook *h = arg;
  (void)to;
  (void)msg;
  h->rc = actio_timer_cancel(h->c->tm);
  gate_hold(&h->gate);
}

START_TEST(a_cancel_racing_a_refused_send_is_too_late) {
  canceller c = {0};
  late_hook h = {.c = &c, .rc = 1, .gate = TEST_GATE_INIT};
  actio_runtime *rt;
  actio_runtime_opts o = {.dead_letter = cancel_and_hold, .dead_letter_arg = &h};
  ck_assert_int_eq(actio_runtime_create(&rt, &o), 0);
  tally t = {0};
  actio_actor *a = spawn_tally(rt, &t, 0, 0);
  test_gate g = TEST_GATE_INIT;
  actio_future *held = hold_timer(rt, &g);
  ck_assert_int_eq(actio_send_after(a, (void *)1, 0, &c.tm), 0);
  ck_assert_int_eq(actio_actor_stop(a, ACTIO_STOP_DRAIN), 0);
  gate_open(&g); /* the send fires, is refused, and the hook holds it */
  gate_wait_held(&h.gate);
  ck_assert_int_eq(h.rc, ACTIO_EALREADY);
  pthread_t th;
  ck_assert_int_eq(pthread_create(&th, NULL, cancel_thread, &c), 0);
  await_blocked(&c.blocked);
  gate_open(&h.gate);
  ck_assert_int_eq(pthread_join(th, NULL), 0);
  ck_assert_int_eq(c.rc, ACTIO_EALREADY); /* refused, so over: dropped once */
  ck_assert_int_eq(atomic_load(&t.dropped), 1);
  actio_timer_release(c.tm);
  actio_future_unref(held);
  actio_runtime_destroy(rt);
  ck_assert_int_eq(atomic_load(&t.handled), 0);
  ck_assert_int_eq(atomic_load(&t.dropped), 1);
}
END_TEST

/* A supervised child: sends to its address reach the instance running. */
static int tally_child(actio_runtime *rt, void *arg, actio_actor **out) {
  actio_actor_opts o = {.name = "tally", .state = arg};
  return actio_actor_spawn(rt, &tally_behavior, &o, out);
}

START_TEST(sends_to_a_supervised_childs_address) {
  actio_runtime *rt;
  ck_assert_int_eq(actio_runtime_create(&rt, NULL), 0);
  tally t = {0};
  actio_child_spec kid = {.name = "tally", .start = tally_child, .arg = &t};
  actio_actor *sup;
  ck_assert_int_eq(actio_sup_spawn(rt, &(actio_sup_opts){0}, &kid, 1, &sup), 0);
  actio_actor *addr = actio_sup_lookup(sup, "tally");
  ck_assert_ptr_nonnull(addr);
  actio_timer *later;
  ck_assert_int_eq(actio_send_after(addr, (void *)3, 0, NULL), 0);
  ck_assert_int_eq(actio_send_after(addr, (void *)1, 3600 * 1000, &later), 0);
  wait_count(&t.handled, 1);
  ck_assert_int_eq(atomic_load(&t.sum), 3);
  ck_assert_int_eq(actio_runtime_stop(rt, ACTIO_STOP_DRAIN), 0);
  ck_assert_int_eq(atomic_load(&t.dropped), 1); /* dropped by the instance's drop */
  actio_timer_release(later);
  actio_runtime_destroy(rt);
}
END_TEST

/* ---- a runtime's stop ---- */

static void stop_ends_timers(actio_stop_mode mode) {
  tally t = {0};
  actio_runtime *rt;
  actio_actor *a = start_tally(&rt, &t, 0, 0);
  ticker k = {0};
  actio_future *f;
  actio_timer *once, *every;
  ck_assert_int_eq(actio_sleep(rt, 3600 * 1000, &f), 0);
  ck_assert_int_eq(actio_send_after(a, (void *)1, 3600 * 1000, &once), 0);
  ck_assert_int_eq(actio_send_after(a, (void *)1, 3600 * 1000, NULL), 0);
  ck_assert_int_eq(actio_send_every(a, 3600 * 1000, make_tick, &k, &every), 0);
  ck_assert_int_eq(actio_runtime_stop(rt, mode), 0);
  ck_assert_int_eq(actio_future_status(f), ACTIO_ECANCELED);
  ck_assert_int_eq(atomic_load(&t.dropped), 2); /* the two delayed messages */
  ck_assert_int_eq(atomic_load(&k.made), 0);
  ck_assert_int_eq(actio_timer_cancel(once), ACTIO_EALREADY);
  ck_assert_int_eq(actio_timer_cancel(every), ACTIO_EALREADY);
  /* A timer on a stopped runtime is refused. */
  actio_future *late = NULL;
  actio_timer *tm = NULL;
  ck_assert_int_eq(actio_sleep(rt, 1, &late), ACTIO_ECLOSED);
  ck_assert_int_eq(actio_send_after(a, (void *)1, 1, &tm), ACTIO_ECLOSED);
  ck_assert_int_eq(actio_send_every(a, 1, make_tick, &k, &tm), ACTIO_ECLOSED);
  ck_assert_ptr_null(late);
  ck_assert_ptr_null(tm);
  actio_timer_release(once);
  actio_timer_release(every);
  actio_future_unref(f);
  actio_runtime_destroy(rt);
  ck_assert_int_eq(atomic_load(&t.handled), 0);
  ck_assert_int_eq(atomic_load(&t.dropped), 2);
}

START_TEST(a_draining_stop_ends_sleeps_and_drops_sends) { stop_ends_timers(ACTIO_STOP_DRAIN); }
END_TEST

START_TEST(a_stop_now_ends_sleeps_and_drops_sends) { stop_ends_timers(ACTIO_STOP_NOW); }
END_TEST

static void *stop_runtime(void *rt) {
  ck_assert_int_eq(actio_runtime_stop(rt, ACTIO_STOP_DRAIN), 0);
  return NULL;
}

START_TEST(a_send_due_during_a_stop_is_dropped) {
  /* Due while the stop runs (the timer held until it began): dropped, not
   * a dead letter. */
  tally t = {0};
  actio_runtime *rt;
  actio_actor *a = start_tally(&rt, &t, 0, 0);
  test_gate g = TEST_GATE_INIT;
  actio_future *held = hold_timer(rt, &g);
  int armed = 0;
  ck_assert_int_eq(actio_send_after(a, (void *)1, 0, NULL), 0);
  armed++;
  pthread_t stopper;
  ck_assert_int_eq(pthread_create(&stopper, NULL, stop_runtime, rt), 0);
  int rc;
  while ((rc = actio_send_after(a, (void *)1, 0, NULL)) == 0) /* until the stop began */
    armed++;
  ck_assert_int_eq(rc, ACTIO_ECLOSED);
  gate_open(&g);
  ck_assert_int_eq(pthread_join(stopper, NULL), 0);
  ck_assert_int_eq(atomic_load(&t.dropped), armed);
  ck_assert_int_eq(atomic_load(&t.handled), 0);
  ck_assert_uint_eq(actio_runtime_dead_letters(rt), 0);
  actio_future_unref(held);
  actio_runtime_destroy(rt);
}
END_TEST

/* ---- many timers ---- */

START_TEST(many_timers_armed_and_cancelled_leave_nothing) {
  enum { N = 100000 };
  tally t = {0};
  actio_runtime *rt;
  actio_actor *a = start_tally(&rt, &t, 0, 0);
  actio_timer **tms = malloc(N * sizeof *tms);
  actio_future **fs = malloc(N * sizeof *fs);
  ck_assert_ptr_nonnull(tms);
  ck_assert_ptr_nonnull(fs);
  /* Spread over the upper levels of the wheel, and beyond it (2^36 ms). */
  for (int i = 0; i < N; i++) {
    int64_t delay = (int64_t)3600000 << (i % 16);
    ck_assert_int_eq(actio_send_after(a, (void *)1, delay, &tms[i]), 0);
    ck_assert_int_eq(actio_sleep(rt, delay, &fs[i]), 0);
  }
  for (int i = 0; i < N; i++) {
    ck_assert_int_eq(actio_timer_cancel(tms[i]), 0);
    actio_timer_release(tms[i]);
    ck_assert_int_eq(actio_future_cancel(fs[i]), 0);
    actio_future_unref(fs[i]);
  }
  ck_assert_int_eq(atomic_load(&t.dropped), N);
  /* As many again, left for the runtime's stop. */
  for (int i = 0; i < N; i++) {
    ck_assert_int_eq(actio_send_after(a, (void *)1, 60000 + i, NULL), 0);
    ck_assert_int_eq(actio_sleep(rt, 60000 + i, &fs[i]), 0);
  }
  actio_runtime_destroy(rt);
  for (int i = 0; i < N; i++) {
    ck_assert_int_eq(actio_future_status(fs[i]), ACTIO_ECANCELED);
    actio_future_unref(fs[i]);
  }
  ck_assert_int_eq(atomic_load(&t.dropped), 2 * N);
  ck_assert_int_eq(atomic_load(&t.handled), 0);
  free(tms);
  free(fs);
}
END_TEST

/* A block given back to the timer's slabs is poisoned under ASan until it
 * is handed out again, so a send used after its release is reported. */
START_TEST(a_released_block_is_poisoned_until_handed_out_again) {
  static const actio__send_ops no_sends = {0};
  actio__timer *t;
  ck_assert_int_eq(actio__timer_create(&t, &no_sends), 0);
  void *b = actio__tblock_new(t), *kept = actio__tblock_new(t);
  ck_assert_ptr_nonnull(b);
  ck_assert_ptr_nonnull(kept);
  actio__tblock_free(t, &b, 1);
#ifdef ACTIO__ASAN
  ck_assert(__asan_address_is_poisoned(b)); /* the slab's link too */
  ck_assert(__asan_address_is_poisoned((char *)b + ACTIO__TBLOCK - 1));
  ck_assert_ptr_null(__asan_region_is_poisoned(kept, ACTIO__TBLOCK));
#endif
  void *again = actio__tblock_new(t);
  ck_assert_ptr_eq(again, b); /* the slab's free list first */
#ifdef ACTIO__ASAN
  ck_assert_ptr_null(__asan_region_is_poisoned(again, ACTIO__TBLOCK));
#endif
  void *both[] = {again, kept};
  actio__tblock_free(t, both, 2);
  actio__timer_destroy(t);
}
END_TEST

START_TEST(many_timers_fire_each_once) {
  enum { N = 20000 };
  tally t = {0};
  actio_runtime *rt;
  actio_actor *a = start_tally(&rt, &t, 0, 1u << 15);
  for (int i = 0; i < N; i++)
    ck_assert_int_eq(actio_send_after(a, (void *)1, i % 70, NULL), 0);
  wait_count(&t.handled, N);
  actio_runtime_destroy(rt);
  ck_assert_int_eq(atomic_load(&t.handled), N);
  ck_assert_int_eq(atomic_load(&t.dropped), 0);
}
END_TEST

/* ---- races ---- */

typedef struct racer {
  actio_runtime *rt;
  actio_actor *a;
  int n;
  int cancelled, late; /* cancels that returned 0, ACTIO_EALREADY */
} racer;

/* Arms and cancels at once, so that cancels meet fires: each message is
 * delivered exactly when its cancel said too late, dropped otherwise. */
static void *arm_and_cancel(void *arg) {
  racer *r = arg;
  for (int i = 0; i < r->n; i++) {
    actio_timer *tm;
    ck_assert_int_eq(actio_send_after(r->a, (void *)1, i % 3, &tm), 0);
    if (i % 2)
      sched_yield();
    int rc = actio_timer_cancel(tm);
    ck_assert(rc == 0 || rc == ACTIO_EALREADY);
    if (rc == 0)
      r->cancelled++;
    else
      r->late++;
    actio_timer_release(tm);
    actio_future *f;
    ck_assert_int_eq(actio_sleep(r->rt, i % 2, &f), 0);
    if (i % 3 == 0)
      actio_future_cancel(f);
    int st = actio_future_wait(f, -1);
    ck_assert(st == 0 || st == ACTIO_ECANCELED);
    actio_future_unref(f);
  }
  return NULL;
}

/* Starts a runtime with a tally actor of `capacity` cells, runs fn on T
 * threads at once, each with its racer (n rounds), waits for them, and
 * returns the runtime. */
enum { T = 4 };
static actio_runtime *race(racer *rs, tally *t, size_t capacity, int n,
                           void *(*fn)(void *)) {
  actio_runtime *rt;
  actio_actor *a = start_tally(&rt, t, 0, capacity);
  pthread_t th[T];
  for (int i = 0; i < T; i++)
    rs[i] = (racer){.rt = rt, .a = a, .n = n};
  start_threads(th, T, fn, rs, sizeof rs[0]);
  join_threads(th, T);
  return rt;
}

/* Waits for `handled` messages, stops the runtime, and checks that these
 * were all, and that `dropped` were dropped. */
static void end_race(actio_runtime *rt, tally *t, int handled, int dropped) {
  wait_count(&t->handled, handled);
  actio_runtime_destroy(rt);
  ck_assert_int_eq(atomic_load(&t->handled), handled);
  ck_assert_int_eq(atomic_load(&t->dropped), dropped);
}

START_TEST(arm_cancel_and_fire_race_from_many_threads) {
  enum { N = 2000 };
  tally t = {0};
  racer rs[T];
  actio_runtime *rt = race(rs, &t, 1u << 14, N, arm_and_cancel);
  int cancelled = 0, late = 0;
  for (int i = 0; i < T; i++) {
    cancelled += rs[i].cancelled;
    late += rs[i].late;
  }
  ck_assert_int_eq(cancelled + late, T * N);
  ck_assert_int_eq(atomic_load(&t.dropped), cancelled);
  end_race(rt, &t, late, cancelled);
}
END_TEST

/* Arms sends without handles (the timer frees each into its pool once
 * delivered) and sleeps, while the others do the same: the pool's blocks
 * and slabs go back and forth between the arming threads and the timer's. */
static void *arm_many(void *arg) {
  racer *r = arg;
  for (int i = 0; i < r->n; i++) {
    ck_assert_int_eq(actio_send_after(r->a, (void *)1, i % 4, NULL), 0);
    if (i % 64 == 0)
      pass_ms(r->rt, i % 3);
  }
  return NULL;
}

START_TEST(sends_and_sleeps_from_many_threads_share_the_timers_pool) {
  enum { N = 20000 };
  tally t = {0};
  racer rs[T];
  end_race(race(rs, &t, 1u << 16, N, arm_many), &t, T * N, 0);
}
END_TEST

int main(void) {
  Suite *s = suite_create("timer");
  TCase *tc = tcase_with_timeout("timers", 300);
  tcase_add_test(tc, sleeps_fire_in_the_order_they_are_due);
  tcase_add_test(tc, a_cancelled_sleep_ends_at_once);
  tcase_add_test(tc, bad_arguments_are_refused);
  tcase_add_test(tc, a_delayed_send_is_delivered_once);
  tcase_add_test(tc, a_cancelled_send_is_dropped_never_delivered);
  tcase_add_test(tc, a_send_due_while_its_actor_stopped_is_a_dead_letter);
  tcase_add_test(tc, a_full_mailbox_delays_a_send_and_loses_nothing);
  tcase_add_test(tc, a_send_kept_out_by_a_full_mailbox_backs_off);
  tcase_add_test(tc, a_periodic_send_cancelled_by_its_handler_stops_for_good);
  tcase_add_test(tc, a_periodic_send_cancelled_from_another_thread_stops_for_good);
  tcase_add_test(tc, a_periodic_send_cancelled_from_its_make_stops_after_that_tick);
  tcase_add_test(tc, a_periodic_send_ends_when_its_actor_stops);
  tcase_add_test(tc, a_cancel_waits_for_the_tick_being_made);
  tcase_add_test(tc, a_cancel_racing_a_refused_send_is_too_late);
  tcase_add_test(tc, sends_to_a_supervised_childs_address);
  tcase_add_test(tc, a_draining_stop_ends_sleeps_and_drops_sends);
  tcase_add_test(tc, a_stop_now_ends_sleeps_and_drops_sends);
  tcase_add_test(tc, a_send_due_during_a_stop_is_dropped);
  tcase_add_test(tc, a_released_block_is_poisoned_until_handed_out_again);
  tcase_add_test(tc, many_timers_armed_and_cancelled_leave_nothing);
  tcase_add_test(tc, many_timers_fire_each_once);
  tcase_add_test(tc, arm_cancel_and_fire_race_from_many_threads);
  tcase_add_test(tc, sends_and_sleeps_from_many_threads_share_the_timers_pool);
  suite_add_tcase(s, tc);
  return run_suite(s);
}

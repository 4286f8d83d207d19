/* test_future.c: futures: completion exactly once, values and errors,
 * callbacks, waiting, cancellation, then-chains, catch and finally, and
 * deadlines. */
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "actio.h"
#include "actors/core/future_internal.h"
#include "base/asan.h"
#include "test_util.h"

static _Atomic int freed;
static void count_free(void *p) {
  atomic_fetch_add(&freed, 1);
  free(p);
}

static int *boxed(int v) {
  int *p = malloc(sizeof *p);
  *p = v;
  return p;
}

START_TEST(resolve_once_and_free_with_future) {
  atomic_store(&freed, 0);
  actio_future *f;
  ck_assert_int_eq(actio_future_create(&f), 0);
  ck_assert_int_eq(actio_future_status(f), ACTIO_EPENDING);
  ck_assert_ptr_null(actio_future_value(f));
  ck_assert_int_eq(actio_future_resolve(f, boxed(42), count_free), 0);
  int *second = boxed(7);
  ck_assert_int_eq(actio_future_resolve(f, second, count_free), ACTIO_EALREADY);
  free(second); /* refused: still ours */
  ck_assert_int_eq(actio_future_fail(f, ACTIO_EINVAL, NULL), ACTIO_EALREADY);
  ck_assert_int_eq(actio_future_cancel(f), ACTIO_EALREADY);
  ck_assert(actio_future_is_done(f));
  ck_assert_int_eq(actio_future_status(f), 0);
  ck_assert_int_eq(*(int *)actio_future_value(f), 42);
  ck_assert_ptr_null(actio_future_errmsg(f));
  actio_future_ref(f);
  actio_future_unref(f);
  ck_assert_int_eq(atomic_load(&freed), 0);
  actio_future_unref(f);
  ck_assert_int_eq(atomic_load(&freed), 1);
  actio_future_unref(NULL);
}
END_TEST

START_TEST(take_moves_ownership) {
  atomic_store(&freed, 0);
  actio_future *f;
  ck_assert_int_eq(actio_future_resolved(&f, boxed(5), count_free), 0);
  int *v = actio_future_take(f);
  ck_assert_int_eq(*v, 5);
  ck_assert_ptr_null(actio_future_take(f));
  ck_assert_ptr_null(actio_future_value(f));
  actio_future_unref(f);
  ck_assert_int_eq(atomic_load(&freed), 0);
  free(v);
}
END_TEST

START_TEST(fail_carries_code_and_message) {
  actio_future *f, *g;
  ck_assert_int_eq(actio_future_create(&f), 0);
  ck_assert_int_eq(actio_future_fail(f, 5, "positive"), ACTIO_EINVAL);
  ck_assert_int_eq(actio_future_fail(f, -ENOENT, "open %s", "/nope"), 0);
  ck_assert_int_eq(actio_future_wait(f, -1), -ENOENT);
  ck_assert_str_eq(actio_future_errmsg(f), "open /nope");
  ck_assert_ptr_null(actio_future_value(f));
  ck_assert_int_eq(actio_future_failed(&g, ACTIO_ETIMEDOUT, NULL), 0);
  ck_assert_str_eq(actio_future_errmsg(g), "timed out");
  actio_future_unref(f);
  actio_future_unref(g);
}
END_TEST

/* Each callback logs its tag and the value it saw: 10 * tag + value. */
typedef struct {
  int n, entries[8];
} order_log;

typedef struct {
  order_log *log;
  int tag;
} order_tag;

static void record_order(actio_future *f, void *arg) {
  order_tag *t = arg;
  int v = actio_future_status(f) == 0 ? *(int *)actio_future_value(f) : -1;
  t->log->entries[t->log->n++] = 10 * t->tag + v;
}

START_TEST(callbacks_run_once_in_order_before_and_after) {
  order_log log = {0};
  order_tag tags[4] = {{&log, 1}, {&log, 2}, {&log, 3}, {&log, 4}};
  actio_future *f;
  ck_assert_int_eq(actio_future_create(&f), 0);
  /* The first takes the future's own slot, the others its list. */
  for (int i = 0; i < 3; i++)
    ck_assert_int_eq(actio_future_on_done(f, record_order, &tags[i]), 0);
  ck_assert_int_eq(log.n, 0);
  ck_assert_int_eq(actio_future_resolve(f, boxed(3), free), 0);
  ck_assert_int_eq(log.n, 3);
  ck_assert_int_eq(actio_future_on_done(f, record_order, &tags[3]), 0); /* runs now */
  ck_assert_int_eq(log.n, 4);
  for (int i = 0; i < 4; i++) /* once each, in registration order, all seeing 3 */
    ck_assert_int_eq(log.entries[i], 10 * (i + 1) + 3);
  actio_future_unref(f);
}
END_TEST

static void tally(actio_future *f, void *arg) {
  (void)f;
  atomic_fetch_add_explicit((_Atomic int *)arg, 1, memory_order_relaxed);
}

static void count_gone(void *arg) { (*(int *)arg)++; }

/* A withdrawn callback never runs and holds the future no more: dropped
 * pending, it is freed; whether in the slot or the list. */
START_TEST(withdrawn_callbacks_never_run) {
  _Atomic int calls[4] = {0};
  for (int slot = 0; slot < 2; slot++) {
    actio_future *f;
    ck_assert_int_eq(actio_future_create(&f), 0);
    int gone = 0;
    ck_assert_int_eq(actio__future_on_free(f, count_gone, &gone), 0);
    for (int i = 0; i < 4; i++)
      ck_assert_int_eq(actio_future_on_done(f, tally, &calls[i]), 0);
    /* slot 0: the slot's and a list's withdrawn; 1: list records only */
    ck_assert_int_eq(actio__future_off_done(f, tally, &calls[2]), 1);
    ck_assert_int_eq(actio__future_off_done(f, tally, &calls[2]), 0); /* gone */
    ck_assert_int_eq(actio__future_off_done(f, tally, &calls[slot]), 1);
    ck_assert_int_eq(actio__future_off_done(f, tally, &gone), 0); /* never there */
    if (slot == 1) {
      ck_assert_int_eq(actio_future_resolve(f, NULL, NULL), 0);
      ck_assert_int_eq(actio__future_off_done(f, tally, &calls[3]), 0); /* ran */
      ck_assert_int_eq(atomic_load(&calls[0]), 1);
      ck_assert_int_eq(atomic_load(&calls[3]), 1);
    } else {
      ck_assert_int_eq(actio__future_off_done(f, tally, &calls[1]), 1);
      ck_assert_int_eq(actio__future_off_done(f, tally, &calls[3]), 1);
    }
    actio_future_unref(f);
    ck_assert_int_eq(gone, 1);
  }
  ck_assert_int_eq(atomic_load(&calls[1]), 0);
  ck_assert_int_eq(atomic_load(&calls[2]), 0);
}
END_TEST

typedef struct {
  actio_future *f;
  _Atomic int go;
} withdraw_race;

static void *complete_when_told(void *arg) {
  withdraw_race *r = arg;
  while (!atomic_load_explicit(&r->go, memory_order_acquire))
    sched_yield();
  actio_future_resolve(r->f, NULL, NULL);
  return NULL;
}

/* A withdrawal racing the completion: the callback runs, or is withdrawn,
 * exactly once (slot and list alike), and the future is freed. */
START_TEST(withdrawal_racing_completion_is_exact) {
  for (int i = 0; i < 2000; i++) {
    _Atomic int calls[2] = {0};
    withdraw_race r = {0};
    ck_assert_int_eq(actio_future_create(&r.f), 0);
    int gone = 0;
    ck_assert_int_eq(actio__future_on_free(r.f, count_gone, &gone), 0);
    ck_assert_int_eq(actio_future_on_done(r.f, tally, &calls[0]), 0);
    ck_assert_int_eq(actio_future_on_done(r.f, tally, &calls[1]), 0);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, complete_when_told, &r), 0);
    atomic_store_explicit(&r.go, 1, memory_order_release);
    int off1 = actio__future_off_done(r.f, tally, &calls[1]);
    int off0 = actio__future_off_done(r.f, tally, &calls[0]);
    pthread_join(t, NULL);
    ck_assert_int_eq(atomic_load(&calls[0]) + off0, 1);
    ck_assert_int_eq(atomic_load(&calls[1]) + off1, 1);
    actio_future_unref(r.f);
    ck_assert_int_eq(gone, 1);
  }
}
END_TEST

typedef struct {
  actio_future *f;
  _Atomic int waiter; /* the waiting thread, once it is about to wait */
} late_resolver;

/* Resolves f once the waiter sleeps on it. */
static void *resolve_later(void *p) {
  late_resolver *r = p;
  await_blocked(&r->waiter);
  actio_future_resolve(r->f, boxed(11), free);
  return NULL;
}

START_TEST(wait_times_out_then_sees_completion) {
  actio_future *f;
  ck_assert_int_eq(actio_future_create(&f), 0);
  ck_assert_int_eq(actio_future_wait(f, 0), ACTIO_EPENDING);
  ck_assert_int_eq(actio_future_wait(f, 10), ACTIO_EPENDING);
  late_resolver r = {.f = f};
  pthread_t t;
  start_threads(&t, 1, resolve_later, &r, 0);
  announce_block(&r.waiter);
  ck_assert_int_eq(actio_future_wait(f, -1), 0);
  ck_assert_int_eq(*(int *)actio_future_value(f), 11);
  join_threads(&t, 1);
  actio_future_unref(f);
}
END_TEST

static void set_flag(void *arg) { atomic_store((_Atomic int *)arg, 1); }

/* resolve_later's, dropping its own reference in the same step. */
static void *resolve_unref_later(void *p) {
  late_resolver *r = p;
  await_blocked(&r->waiter);
  ck_assert_int_eq(actio_future_resolve_unref(r->f, boxed(12), free), 0);
  return NULL;
}

static void count_run(actio_future *f, void *arg) {
  ck_assert_int_eq(actio_future_status(f), 0);
  (*(int *)arg)++;
}

/* The completion drops the caller's reference: the last one frees the
 * future and its value; with other holders (a callback, another
 * reference, a waiter) they see it complete first; on ACTIO_EALREADY the
 * reference goes too and the value stays the caller's. */
START_TEST(resolve_unref_completes_and_drops_the_reference) {
  atomic_store(&freed, 0);
  actio_future *f;
  ck_assert_int_eq(actio_future_create(&f), 0);
  ck_assert_int_eq(actio_future_resolve_unref(f, boxed(1), count_free), 0);
  ck_assert_int_eq(atomic_load(&freed), 1);

  int runs = 0;
  for (int callbacks = 1; callbacks <= 2; callbacks++) { /* inline, then a record too */
    ck_assert_int_eq(actio_future_create(&f), 0);
    for (int i = 0; i < callbacks; i++)
      ck_assert_int_eq(actio_future_on_done(f, count_run, &runs), 0);
    actio_future_ref(f);
    ck_assert_int_eq(actio_future_resolve_unref(f, boxed(2), count_free), 0);
    ck_assert_int_eq(*(int *)actio_future_value(f), 2);
    ck_assert_int_eq(atomic_load(&freed), callbacks);
    actio_future_unref(f);
    ck_assert_int_eq(atomic_load(&freed), callbacks + 1);
  }
  ck_assert_int_eq(runs, 3);

  ck_assert_int_eq(actio_future_resolved(&f, boxed(3), count_free), 0);
  actio_future_ref(f);
  int *refused = boxed(4);
  ck_assert_int_eq(actio_future_resolve_unref(f, refused, count_free), ACTIO_EALREADY);
  free(refused);
  ck_assert_int_eq(atomic_load(&freed), 3);
  actio_future_unref(f);
  ck_assert_int_eq(atomic_load(&freed), 4);
  ck_assert_int_eq(actio_future_resolve_unref(NULL, NULL, NULL), ACTIO_EINVAL);

  /* A thread asleep in wait, holding its own reference. */
  ck_assert_int_eq(actio_future_create(&f), 0);
  actio_future_ref(f);
  late_resolver r = {.f = f};
  pthread_t t;
  start_threads(&t, 1, resolve_unref_later, &r, 0);
  announce_block(&r.waiter);
  ck_assert_int_eq(actio_future_wait(f, -1), 0);
  ck_assert_int_eq(*(int *)actio_future_value(f), 12);
  join_threads(&t, 1);
  actio_future_unref(f);
}
END_TEST

START_TEST(cancel_reaches_the_operation) {
  _Atomic int hooked = 0;
  actio_future *f;
  ck_assert_int_eq(actio_future_create(&f), 0);
  ck_assert_int_eq(actio_future_on_cancel(f, set_flag, &hooked), 0);
  ck_assert_int_eq(actio_future_on_cancel(f, set_flag, &hooked), ACTIO_ESTATE);
  ck_assert_int_eq(actio_future_cancel(f), 0);
  ck_assert_int_eq(atomic_load(&hooked), 1);
  ck_assert_int_eq(actio_future_status(f), ACTIO_ECANCELED);
  ck_assert_int_eq(actio_future_cancel(f), ACTIO_EALREADY);
  /* The operation's own completion now loses. */
  ck_assert_int_eq(actio_future_resolve(f, NULL, NULL), ACTIO_EALREADY);
  actio_future_unref(f);

  /* A hook registered after the cancel learns it at once. */
  ck_assert_int_eq(actio_future_create(&f), 0);
  actio_future_cancel(f);
  ck_assert_int_eq(actio_future_on_cancel(f, set_flag, &hooked), ACTIO_ECANCELED);
  actio_future_unref(f);

  /* A cleared hook never runs. */
  atomic_store(&hooked, 0);
  ck_assert_int_eq(actio_future_create(&f), 0);
  ck_assert_int_eq(actio_future_on_cancel(f, set_flag, &hooked), 0);
  actio_future_clear_cancel(f);
  actio_future_cancel(f);
  ck_assert_int_eq(atomic_load(&hooked), 0);
  actio_future_unref(f);
}
END_TEST

/* A hook that cancels another future, whose callback clears the hook (as
 * a retried transaction does when its step is cancelled): the clearing,
 * inside the hook, does not wait for the hook to return. */
static void cancel_arg(void *arg) { actio_future_cancel(arg); }

static void clear_hook_of(actio_future *f, void *arg) {
  (void)f;
  actio_future_clear_cancel(arg);
}

START_TEST(a_hook_clears_itself_through_a_callback) {
  actio_future *outer, *inner;
  ck_assert_int_eq(actio_future_create(&outer), 0);
  ck_assert_int_eq(actio_future_create(&inner), 0);
  ck_assert_int_eq(actio_future_on_done(inner, clear_hook_of, outer), 0);
  ck_assert_int_eq(actio_future_on_cancel(outer, cancel_arg, inner), 0);
  ck_assert_int_eq(actio_future_cancel(outer), 0);
  ck_assert_int_eq(actio_future_status(inner), ACTIO_ECANCELED);
  ck_assert_int_eq(actio_future_status(outer), ACTIO_ECANCELED);
  actio_future_unref(inner);
  actio_future_unref(outer);
}
END_TEST

static void never(void *arg) { (void)arg; }
static void never_done(actio_future *f, void *arg) { (void)f, (void)arg; }

START_TEST(bad_arguments_are_refused) {
  actio_future *f = NULL;
  ck_assert_int_eq(actio_future_create(NULL), ACTIO_EINVAL);
  ck_assert_int_eq(actio_future_failed(&f, 5, "not an error"), ACTIO_EINVAL);
  ck_assert_ptr_null(f);
  ck_assert_int_eq(actio_future_resolve(NULL, NULL, NULL), ACTIO_EINVAL);
  ck_assert_int_eq(actio_future_fail(NULL, ACTIO_EINVAL, NULL), ACTIO_EINVAL);
  ck_assert_int_eq(actio_future_cancel(NULL), ACTIO_EINVAL);
  ck_assert_int_eq(actio_future_on_cancel(NULL, never, NULL), ACTIO_EINVAL);
  ck_assert_int_eq(actio_future_on_done(NULL, never_done, NULL), ACTIO_EINVAL);
  ck_assert_int_eq(actio_future_wait(NULL, 0), ACTIO_EINVAL);
  ck_assert_int_eq(actio_future_create(&f), 0);
  ck_assert_int_eq(actio_future_on_cancel(f, NULL, NULL), ACTIO_EINVAL);
  ck_assert_int_eq(actio_future_on_done(f, NULL, NULL), ACTIO_EINVAL);
  ck_assert_int_eq(actio_future_on_cancel(f, never, NULL), 0);
  ck_assert_int_eq(actio_future_on_cancel(f, never, NULL), ACTIO_ESTATE); /* one hook */
  actio_future_clear_cancel(f);
  actio_future_unref(f);
}
END_TEST

/* ---- cancel racing complete, across threads ---- */

enum { RACES = 20000 };

typedef struct {
  actio_future **fs;
  int resolver;
  int wins;
} racer;

static _Atomic int callbacks_run;
static void count_cb(actio_future *f, void *arg) {
  (void)f;
  (void)arg;
  atomic_fetch_add(&callbacks_run, 1);
}

static void *race(void *p) {
  racer *r = p;
  for (int i = 0; i < RACES; i++) {
    int *v = r->resolver ? boxed(i) : NULL;
    int rc = r->resolver ? actio_future_resolve(r->fs[i], v, free)
                         : actio_future_cancel(r->fs[i]);
    if (rc == 0) {
      r->wins++;
    } else {
      ck_assert_int_eq(rc, ACTIO_EALREADY);
      free(v); /* refused: still ours */
    }
  }
  return NULL;
}

START_TEST(cancel_races_complete_exactly_once) {
  actio_future **fs = malloc(RACES * sizeof *fs);
  atomic_store(&callbacks_run, 0);
  for (int i = 0; i < RACES; i++) {
    ck_assert_int_eq(actio_future_create(&fs[i]), 0);
    actio_future_on_done(fs[i], count_cb, NULL);
  }
  racer r[2] = {{fs, 1, 0}, {fs, 0, 0}};
  pthread_t t[2];
  start_threads(t, 2, race, r, sizeof r[0]);
  join_threads(t, 2);
  ck_assert_int_eq(r[0].wins + r[1].wins, RACES);
  ck_assert_int_eq(atomic_load(&callbacks_run), RACES);
  int cancelled = 0;
  for (int i = 0; i < RACES; i++) {
    int st = actio_future_status(fs[i]);
    ck_assert(st == 0 || st == ACTIO_ECANCELED);
    if (st == 0)
      ck_assert_int_eq(*(int *)actio_future_value(fs[i]), i);
    cancelled += st == ACTIO_ECANCELED;
    actio_future_unref(fs[i]);
  }
  ck_assert_int_eq(cancelled, r[1].wins);
  free(fs);
}
END_TEST

/* ---- then ---- */

typedef struct {
  int add;
  int calls;
} step_arg;

static int add_step(actio_future *prev, void *arg, actio_future **next) {
  step_arg *s = arg;
  s->calls++;
  return actio_future_resolved(next, boxed(*(int *)actio_future_value(prev) + s->add),
                               free);
}

static int failing_step(actio_future *prev, void *arg, actio_future **next) {
  (void)prev;
  (void)arg;
  (void)next;
  return -EIO;
}

START_TEST(a_chains_value_is_taken_from_its_step) {
  /* The chain's value lives in its last step's future: taking it from the
   * chain takes it from there, once. */
  actio_future *src, *a;
  step_arg s1 = {10, 0};
  ck_assert_int_eq(actio_future_resolved(&src, boxed(1), free), 0);
  ck_assert_int_eq(actio_future_then(src, add_step, &s1, &a), 0);
  ck_assert_int_eq(actio_future_wait(a, -1), 0);
  int *v = actio_future_take(a);
  ck_assert_ptr_nonnull(v);
  ck_assert_int_eq(*v, 11);
  ck_assert_ptr_null(actio_future_value(a));
  ck_assert_ptr_null(actio_future_take(a));
  free(v);
  actio_future_unref(src);
  actio_future_unref(a);
}
END_TEST

START_TEST(then_chains_values_and_failures) {
  actio_future *src, *a, *b;
  step_arg s1 = {10, 0}, s2 = {100, 0};
  ck_assert_int_eq(actio_future_create(&src), 0);
  ck_assert_int_eq(actio_future_then(src, add_step, &s1, &a), 0);
  ck_assert_int_eq(actio_future_then(a, add_step, &s2, &b), 0);
  ck_assert_int_eq(actio_future_wait(b, 0), ACTIO_EPENDING);
  actio_future_resolve(src, boxed(1), free);
  ck_assert_int_eq(actio_future_wait(b, -1), 0);
  ck_assert_int_eq(*(int *)actio_future_value(b), 111);
  ck_assert_int_eq(s1.calls + s2.calls, 2);
  actio_future_unref(src);
  actio_future_unref(a);
  actio_future_unref(b);

  /* An error skips the steps and arrives at the end unchanged. */
  ck_assert_int_eq(actio_future_create(&src), 0);
  ck_assert_int_eq(actio_future_then(src, add_step, &s1, &a), 0);
  actio_future_fail(src, -ENOENT, "gone");
  ck_assert_int_eq(actio_future_wait(a, -1), -ENOENT);
  ck_assert_str_eq(actio_future_errmsg(a), "gone");
  ck_assert_int_eq(s1.calls, 1);
  actio_future_unref(src);
  actio_future_unref(a);

  /* A step that fails fails the chain with its code. */
  ck_assert_int_eq(actio_future_resolved(&src, boxed(1), free), 0);
  ck_assert_int_eq(actio_future_then(src, failing_step, NULL, &a), 0);
  ck_assert_int_eq(actio_future_wait(a, -1), -EIO);
  actio_future_unref(src);
  actio_future_unref(a);
}
END_TEST

static int pending_step(actio_future *prev, void *arg, actio_future **next) {
  (void)prev;
  actio_future_create(next);
  actio_future_ref(*next);
  *(actio_future **)arg = *next;
  return 0;
}

START_TEST(cancelling_a_chain_cancels_the_running_step) {
  actio_future *src, *out, *step = NULL;
  ck_assert_int_eq(actio_future_create(&src), 0);
  ck_assert_int_eq(actio_future_then(src, pending_step, &step, &out), 0);
  actio_future_resolve(src, NULL, NULL);
  ck_assert_ptr_nonnull(step);
  ck_assert_int_eq(actio_future_cancel(out), 0);
  ck_assert_int_eq(actio_future_status(step), ACTIO_ECANCELED);
  ck_assert_int_eq(actio_future_status(out), ACTIO_ECANCELED);
  actio_future_unref(step);
  actio_future_unref(src);
  actio_future_unref(out);
}
END_TEST

/* ---- deadlines ---- */

/* ---- catch and finally ---- */

/* What a catch or finally step saw, and what it does: 0 leaves next NULL,
 * 1 recovers with a value, 2 with a pending future (kept in `made`), 3
 * fails. */
typedef struct {
  int calls, seen, how;
  actio_future *made;
} handler;

static int handle_step(actio_future *prev, void *arg, actio_future **next) {
  handler *h = arg;
  h->calls++;
  h->seen = actio_future_status(prev);
  switch (h->how) {
  case 1:
    return actio_future_resolved(next, boxed(7), free);
  case 2:
    ck_assert_int_eq(actio_future_create(next), 0);
    actio_future_ref(*next);
    h->made = *next;
    return 0;
  case 3:
    return -EIO;
  default:
    return 0;
  }
}

/* A catch (or with `finally` set, a finally) over `src` with handler h. */
static actio_future *step_over(int finally, actio_future *src, handler *h) {
  actio_future *out = NULL;
  ck_assert_int_eq((finally ? actio_future_finally : actio_future_catch)(src, handle_step, h,
                                                                         &out), 0);
  return out;
}

/* One case: the step over src (let go of here) with handler `how` ends with
 * `status`, an error message holding `msg` (unless NULL) or, for a value,
 * the int `value`. Returns what the handler saw, or 1 if it did not run. */
static int check_step(int finally, actio_future *src, int how, int status, const char *msg,
                      int value) {
  handler h = {0, 1, how, NULL};
  actio_future *out = step_over(finally, src, &h);
  ck_assert_int_eq(actio_future_wait(out, -1), status);
  if (msg != NULL)
    ck_assert_ptr_nonnull(strstr(actio_future_errmsg(out), msg));
  if (status == 0)
    ck_assert_int_eq(*(int *)actio_future_value(out), value);
  ck_assert_int_le(h.calls, 1);
  actio_future_unref(src);
  actio_future_unref(out);
  return h.seen;
}

static actio_future *failed_with(int code, const char *msg) {
  actio_future *f;
  ck_assert_int_eq(actio_future_failed(&f, code, "%s", msg), 0);
  return f;
}

static actio_future *resolved_int(int v) {
  actio_future *f;
  ck_assert_int_eq(actio_future_resolved(&f, boxed(v), free), 0);
  return f;
}

static actio_future *cancelled(void) {
  actio_future *f;
  ck_assert_int_eq(actio_future_create(&f), 0);
  actio_future_cancel(f);
  return f;
}

START_TEST(catch_recovers_with_a_value_or_a_future) {
  /* A value goes past the handler; a failure is recovered with a value; a
   * deadline's timeout is a failure like the others; a handler that leaves
   * next NULL lets the failure through; one that fails fails the catch; a
   * cancellation is not caught. */
  ck_assert_int_eq(check_step(0, resolved_int(5), 1, 0, NULL, 5), 1);
  ck_assert_int_eq(check_step(0, failed_with(-ENOENT, "gone"), 1, 0, NULL, 7), -ENOENT);
  ck_assert_int_eq(check_step(0, failed_with(ACTIO_ETIMEDOUT, "late"), 1, 0, NULL, 7),
                   ACTIO_ETIMEDOUT);
  check_step(0, failed_with(-ENOENT, "open x"), 0, -ENOENT, "open x", 0);
  check_step(0, failed_with(-ENOENT, "gone"), 3, -EIO, "catch: step failed", 0);
  ck_assert_int_eq(check_step(0, cancelled(), 1, ACTIO_ECANCELED, NULL, 0), 1);

  /* A recovery by a future: the catch completes as it does, and a
   * then-step goes on from it. */
  actio_future *src, *out, *more;
  handler h = {0, 0, 2, NULL};
  step_arg s1 = {10, 0};
  ck_assert_int_eq(actio_future_create(&src), 0);
  out = step_over(0, src, &h);
  ck_assert_int_eq(actio_future_then(out, add_step, &s1, &more), 0);
  actio_future_fail(src, -ENOENT, "gone");
  ck_assert_int_eq(actio_future_wait(more, 0), ACTIO_EPENDING);
  actio_future_resolve(h.made, boxed(9), free);
  ck_assert_int_eq(actio_future_wait(more, -1), 0);
  ck_assert_int_eq(*(int *)actio_future_value(more), 19);
  ck_assert_int_eq(*(int *)actio_future_value(out), 9);
  actio_future_unref(h.made);
  actio_future_unref(src);
  actio_future_unref(out);
  actio_future_unref(more);
}
END_TEST

START_TEST(finally_runs_whatever_the_outcome_and_passes_it_on) {
  /* A value, a failure and a cancellation pass through, after the cleanup
   * ran on each; a cleanup that fails replaces the outcome. */
  ck_assert_int_eq(check_step(1, resolved_int(5), 0, 0, NULL, 5), 0);
  ck_assert_int_eq(check_step(1, failed_with(-ENOENT, "gone"), 0, -ENOENT, "gone", 0), -ENOENT);
  ck_assert_int_eq(check_step(1, cancelled(), 0, ACTIO_ECANCELED, NULL, 0), ACTIO_ECANCELED);
  check_step(1, failed_with(-ENOENT, "gone"), 3, -EIO, "finally: step failed", 0);

  /* A cleanup future is waited for, then the first outcome goes on... */
  for (int fails = 0; fails < 2; fails++) {
    actio_future *src = resolved_int(5);
    handler h = {0, 0, 2, NULL};
    actio_future *out = step_over(1, src, &h);
    ck_assert_int_eq(actio_future_wait(out, 0), ACTIO_EPENDING);
    if (!fails) {
      actio_future_resolve(h.made, boxed(1), free);
      ck_assert_int_eq(actio_future_wait(out, -1), 0);
      ck_assert_int_eq(*(int *)actio_future_value(out), 5);
    } else { /* ... unless it fails: its error replaces the outcome */
      actio_future_fail(h.made, -EPIPE, "cleanup broke");
      ck_assert_int_eq(actio_future_wait(out, -1), -EPIPE);
      ck_assert_str_eq(actio_future_errmsg(out), "cleanup broke");
    }
    actio_future_unref(h.made);
    actio_future_unref(src);
    actio_future_unref(out);
  }
}
END_TEST

START_TEST(cancelling_catch_or_finally_cancels_the_running_step) {
  actio_future *src, *out;
  /* The first step running: cancelled; a catch does not run on it. */
  handler h = {0, 0, 1, NULL};
  ck_assert_int_eq(actio_future_create(&src), 0);
  out = step_over(0, src, &h);
  ck_assert_int_eq(actio_future_cancel(out), 0);
  ck_assert_int_eq(actio_future_status(src), ACTIO_ECANCELED);
  ck_assert_int_eq(actio_future_status(out), ACTIO_ECANCELED);
  ck_assert_int_eq(h.calls, 0);
  actio_future_unref(src);
  actio_future_unref(out);

  /* A finally's first step cancelled: the cleanup still runs, and is left
   * to finish. */
  h = (handler){0, 0, 2, NULL};
  ck_assert_int_eq(actio_future_create(&src), 0);
  out = step_over(1, src, &h);
  ck_assert_int_eq(actio_future_cancel(out), 0);
  ck_assert_int_eq(actio_future_status(src), ACTIO_ECANCELED);
  ck_assert_int_eq(h.calls, 1);
  ck_assert_int_eq(h.seen, ACTIO_ECANCELED);
  ck_assert_int_eq(actio_future_status(h.made), ACTIO_EPENDING);
  ck_assert_int_eq(actio_future_status(out), ACTIO_ECANCELED);
  ck_assert_int_eq(actio_future_resolve(h.made, NULL, NULL), 0);
  actio_future_unref(h.made);
  actio_future_unref(src);
  actio_future_unref(out);

  /* The second step running (a recovery, a cleanup): cancelled. */
  for (int finally = 0; finally < 2; finally++) {
    h = (handler){0, 0, 2, NULL};
    src = finally ? resolved_int(1) : failed_with(-ENOENT, "gone");
    out = step_over(finally, src, &h);
    ck_assert_int_eq(actio_future_cancel(out), 0);
    ck_assert_int_eq(actio_future_status(h.made), ACTIO_ECANCELED);
    ck_assert_int_eq(actio_future_status(out), ACTIO_ECANCELED);
    actio_future_unref(h.made);
    actio_future_unref(out);
    ck_assert_int_eq(actio_future_catch(NULL, handle_step, NULL, &out), ACTIO_EINVAL);
    ck_assert_int_eq(actio_future_finally(src, NULL, NULL, &out), ACTIO_EINVAL);
    actio_future_unref(src);
  }
}
END_TEST

START_TEST(deadline_fails_a_pending_future) {
  actio_runtime *rt;
  _Atomic int hooked = 0;
  ck_assert_int_eq(actio_runtime_create(&rt, NULL), 0);
  actio_future *slow, *fast;
  ck_assert_int_eq(actio_future_create(&slow), 0);
  ck_assert_int_eq(actio_future_create(&fast), 0);
  ck_assert_int_eq(actio_future_remaining_ms(slow), -1);
  ck_assert_int_eq(actio_future_on_cancel(slow, set_flag, &hooked), 0);
  ck_assert_int_eq(actio_future_set_deadline(rt, slow, 30), 0);
  ck_assert_int_eq(actio_future_set_deadline(rt, fast, 60000), 0);
  ck_assert_int_eq(actio_future_set_deadline(rt, NULL, 10), ACTIO_EINVAL);
  int64_t left = actio_future_remaining_ms(fast);
  ck_assert(left > 0 && left <= 60000);
  ck_assert_int_eq(actio_future_resolve(fast, NULL, NULL), 0);
  ck_assert_int_eq(actio_future_wait(slow, -1), ACTIO_ETIMEDOUT);
  ck_assert_int_eq(atomic_load(&hooked), 1);
  ck_assert_int_eq(actio_future_remaining_ms(slow), 0);
  ck_assert_int_eq(actio_future_status(fast), 0);
  actio_future_unref(slow);
  actio_future_unref(fast);
  actio_runtime_destroy(rt);
}
END_TEST

START_TEST(the_earliest_deadline_fires_among_many) {
  /* Deadlines set latest first (each new one goes to the top of the
   * timer's heap), some completed from the middle of it, then one due at
   * once: it fires, however the heap was reshaped; then the rest complete
   * in a scattered order (each from the top or the middle). */
  enum { N = 100 };
  actio_runtime *rt;
  ck_assert_int_eq(actio_runtime_create(&rt, NULL), 0);
  actio_future *fs[N], *soon;
  for (int i = 0; i < N; i++) {
    ck_assert_int_eq(actio_future_create(&fs[i]), 0);
    ck_assert_int_eq(actio_future_set_deadline(rt, fs[i], 3600000 - i * 1000), 0);
  }
  for (int i = 0; i < N; i += 3)
    ck_assert_int_eq(actio_future_resolve(fs[i], NULL, NULL), 0);
  ck_assert_int_eq(actio_future_create(&soon), 0);
  ck_assert_int_eq(actio_future_set_deadline(rt, soon, 1), 0);
  ck_assert_int_eq(actio_future_wait(soon, -1), ACTIO_ETIMEDOUT);
  for (int k = 0; k < N; k++) {
    int i = (k * 37) % N;
    if (i % 3 != 0)
      ck_assert_int_eq(actio_future_resolve(fs[i], NULL, NULL), 0);
  }
  for (int i = 0; i < N; i++) {
    ck_assert_int_eq(actio_future_status(fs[i]), 0);
    actio_future_unref(fs[i]);
  }
  actio_future_unref(soon);
  actio_runtime_destroy(rt);
}
END_TEST

START_TEST(huge_timeouts_mean_no_limit) {
  /* Regression: INT64_MAX ms overflowed into a deadline in the past. */
  actio_runtime *rt;
  actio_future *f;
  ck_assert_int_eq(actio_runtime_create(&rt, NULL), 0);
  ck_assert_int_eq(actio_future_create(&f), 0);
  ck_assert_int_eq(actio_future_set_deadline(rt, f, INT64_MAX), 0);
  late_resolver r = {.f = f};
  pthread_t t;
  start_threads(&t, 1, resolve_later, &r, 0);
  announce_block(&r.waiter);
  ck_assert_int_eq(actio_future_wait(f, INT64_MAX), 0);
  join_threads(&t, 1);
  actio_future_unref(f);
  actio_runtime_destroy(rt);
}
END_TEST

START_TEST(runtime_destroy_cancels_futures_still_waiting) {
  actio_runtime *rt;
  ck_assert_int_eq(actio_runtime_create(&rt, NULL), 0);
  actio_future *f;
  ck_assert_int_eq(actio_future_create(&f), 0);
  ck_assert_int_eq(actio_future_set_deadline(rt, f, 3600 * 1000), 0);
  actio_runtime_destroy(rt);
  ck_assert_int_eq(actio_future_status(f), ACTIO_ECANCELED);
  actio_future_unref(f);
}
END_TEST

/* One thread fails the first step while another cancels a catch and a
 * finally over it: each completes once, the finally's cleanup runs every
 * time, and the catch's handler at most once (never once cancelled). */
typedef struct {
  actio_future *src, *c, *f;
  _Atomic int caught, cleaned;
} cf_item;

static int count_catch(actio_future *prev, void *arg, actio_future **next) {
  (void)prev;
  atomic_fetch_add(&((cf_item *)arg)->caught, 1);
  return actio_future_resolved(next, NULL, NULL);
}

static int count_finally(actio_future *prev, void *arg, actio_future **next) {
  (void)prev;
  (void)next;
  atomic_fetch_add(&((cf_item *)arg)->cleaned, 1);
  return 0;
}

typedef struct {
  cf_item *items;
  int failer;
} cf_racer;

static void *cf_race(void *p) {
  cf_racer *r = p;
  for (int i = 0; i < RACES; i++) {
    cf_item *it = &r->items[i];
    if (r->failer) {
      actio_future_fail(it->src, -EIO, NULL);
    } else {
      actio_future_cancel(it->c);
      actio_future_cancel(it->f);
    }
  }
  return NULL;
}

START_TEST(catch_and_finally_race_cancels_exactly_once) {
  cf_item *items = calloc(RACES, sizeof *items);
  for (int i = 0; i < RACES; i++) {
    ck_assert_int_eq(actio_future_create(&items[i].src), 0);
    ck_assert_int_eq(actio_future_catch(items[i].src, count_catch, &items[i], &items[i].c), 0);
    ck_assert_int_eq(actio_future_finally(items[i].src, count_finally, &items[i], &items[i].f), 0);
  }
  cf_racer r[2] = {{items, 1}, {items, 0}};
  pthread_t t[2];
  start_threads(t, 2, cf_race, r, sizeof r[0]);
  join_threads(t, 2);
  for (int i = 0; i < RACES; i++) {
    cf_item *it = &items[i];
    int src = actio_future_wait(it->src, -1), c = actio_future_wait(it->c, -1);
    ck_assert(src == -EIO || src == ACTIO_ECANCELED);
    ck_assert_int_eq(atomic_load(&it->cleaned), 1);
    ck_assert_int_le(atomic_load(&it->caught), 1);
    if (atomic_load(&it->caught) == 0)
      ck_assert_int_eq(c, ACTIO_ECANCELED);
    else
      ck_assert(src == -EIO && (c == 0 || c == ACTIO_ECANCELED));
    int f = actio_future_wait(it->f, -1);
    ck_assert(f == src || f == ACTIO_ECANCELED);
    actio_future_unref(it->src);
    actio_future_unref(it->c);
    actio_future_unref(it->f);
  }
  free(items);
}
END_TEST

/* Futures made on one thread and freed on another, a batch at a time, as a
 * loop's completions are: the freer's blocks go back to the maker through
 * the recycler's depot (TSan watches the hand-offs). */
enum { HAND_BATCH = 1000, HAND_ROUNDS = 300 };

typedef struct handing {
  actio_future *fs[HAND_BATCH];
  int rounds;
  pthread_barrier_t made, freed;
} handing;

static void *free_batches(void *p) {
  handing *h = p;
  for (int r = 0; r < h->rounds; r++) {
    pthread_barrier_wait(&h->made);
    for (int i = 0; i < HAND_BATCH; i++)
      actio_future_unref(h->fs[i]);
    pthread_barrier_wait(&h->freed);
  }
  return NULL;
}

/* Runs `rounds` rounds of HAND_BATCH futures, each made here and
 * prepared by `prepare`, then handed to a thread running `other` (the
 * same rounds); returns how much the heap grew meanwhile (mallinfo2; 0
 * under the sanitizers). */
static long hand_batches(int rounds, void (*prepare)(actio_future *),
                         void *(*other)(void *)) {
  handing *h = malloc(sizeof *h);
  h->rounds = rounds;
  pthread_barrier_init(&h->made, NULL, 2);
  pthread_barrier_init(&h->freed, NULL, 2);
  pthread_t t;
  long before = (long)mallinfo2().uordblks;
  start_threads(&t, 1, other, h, sizeof *h);
  for (int r = 0; r < rounds; r++) {
    for (int i = 0; i < HAND_BATCH; i++) {
      ck_assert_int_eq(actio_future_create(&h->fs[i]), 0);
      prepare(h->fs[i]);
    }
    pthread_barrier_wait(&h->made);
    pthread_barrier_wait(&h->freed);
  }
  join_threads(&t, 1);
  long grew = (long)mallinfo2().uordblks - before;
  pthread_barrier_destroy(&h->made);
  pthread_barrier_destroy(&h->freed);
  free(h);
  return grew;
}

static void resolve_now(actio_future *f) {
  ck_assert_int_eq(actio_future_resolve(f, NULL, NULL), 0);
}

/* ... and what the recycler keeps stays within what was live at once (a
 * round's 1,000 futures, give or take a batch a thread; the freer's are
 * freed as it exits), under 128 KiB of 96-byte blocks, where 300,000
 * futures went through (under the sanitizers, mallinfo2 reads 0). */
START_TEST(futures_freed_on_another_thread_come_back_within_a_bound) {
  ck_assert_int_le(hand_batches(HAND_ROUNDS, resolve_now, free_batches), 128 * 1024);
}
END_TEST

/* Callback records behind the inline slot go the same way: registered on
 * one thread, freed by the thread that completes the future, which runs
 * them. Every callback runs once, and what the recycler keeps of futures
 * and records stays within what was live at once, where 120,000 records
 * went through. */
enum { RECORD_ROUNDS = 60 };
static _Atomic long calls;

static void count_call(actio_future *f, void *arg) {
  (void)f;
  (void)arg;
  atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed);
}

static void three_callbacks(actio_future *f) {
  for (int k = 0; k < 3; k++) /* the inline slot, then two records */
    ck_assert_int_eq(actio_future_on_done(f, count_call, NULL), 0);
}

static void *resolve_batches(void *p) {
  handing *h = p;
  for (int r = 0; r < h->rounds; r++) {
    pthread_barrier_wait(&h->made);
    for (int i = 0; i < HAND_BATCH; i++) {
      actio_future_resolve(h->fs[i], NULL, NULL);
      actio_future_unref(h->fs[i]);
    }
    pthread_barrier_wait(&h->freed);
  }
  return NULL;
}

START_TEST(callback_records_freed_on_another_thread_come_back_within_a_bound) {
  ck_assert_int_le(hand_batches(RECORD_ROUNDS, three_callbacks, resolve_batches), 192 * 1024);
  ck_assert_int_eq(atomic_load(&calls), 3L * RECORD_ROUNDS * HAND_BATCH);
}
END_TEST

/* Four threads each make futures for the next one to free, while it frees
 * the previous one's: pushes onto the recycler's depot and takes of its
 * whole stack overlap (TSan watches them), and every block comes back
 * whole, made anew (its value the one just resolved, nothing left of its
 * last life). */
enum { RING_THREADS = 4, RING_CHUNK = 200, RING_ROUNDS = 100 };

typedef struct ring_hand {
  _Atomic(actio_future *) fs[RING_THREADS][RING_CHUNK];
} ring_hand;

typedef struct ring_member {
  ring_hand *h;
  int me;
} ring_member;

static void *ring_make_and_free(void *p) {
  ring_member *m = p;
  int prev = (m->me + RING_THREADS - 1) % RING_THREADS;
  for (int r = 0; r < RING_ROUNDS; r++) {
    for (int i = 0; i < RING_CHUNK; i++) {
      actio_future *f;
      ck_assert_int_eq(actio_future_create(&f), 0);
      ck_assert(!actio_future_is_done(f));
      ck_assert_ptr_null(actio_future_errmsg(f));
      ck_assert_int_eq(actio_future_resolve(f, (void *)(uintptr_t)(i + 1), NULL), 0);
      /* Waits while the next thread has not freed the last round's. */
      actio_future *none = NULL;
      while (!atomic_compare_exchange_weak_explicit(&m->h->fs[m->me][i], &none, f,
                                                    memory_order_release,
                                                    memory_order_relaxed)) {
        none = NULL;
        sched_yield();
      }
    }
    for (int i = 0; i < RING_CHUNK; i++) {
      actio_future *f;
      while ((f = atomic_exchange_explicit(&m->h->fs[prev][i], NULL,
                                           memory_order_acquire)) == NULL)
        sched_yield();
      ck_assert_ptr_eq(actio_future_value(f), (void *)(uintptr_t)(i + 1));
      actio_future_unref(f);
    }
  }
  return NULL;
}

START_TEST(recycled_futures_pass_around_a_ring_of_threads) {
  ring_hand *h = calloc(1, sizeof *h);
  ring_member m[RING_THREADS];
  for (int i = 0; i < RING_THREADS; i++)
    m[i] = (ring_member){h, i};
  pthread_t t[RING_THREADS];
  start_threads(t, RING_THREADS, ring_make_and_free, m, sizeof m[0]);
  join_threads(t, RING_THREADS);
  for (int k = 0; k < RING_THREADS; k++)
    for (int i = 0; i < RING_CHUNK; i++)
      ck_assert_ptr_null(atomic_load(&h->fs[k][i]));
  free(h);
}
END_TEST

/* With no thread-specific key left in the process, the recycler cannot
 * have a thread's blocks freed at its exit: it keeps none then, and the
 * heap does not grow with the threads that come and go (it kept them and
 * lost them at each exit; LeakSanitizer sees the same under ASan). Run in
 * its own process (Check's fork mode), where the recycler has made no key
 * yet; sharing one with other tests, it checks only that nothing leaks. */
enum { KEYLESS_THREADS = 100, KEYLESS_FUTURES = 3 * 64 + 17 };

static void *make_and_free(void *unused) {
  (void)unused;
  for (int i = 0; i < KEYLESS_FUTURES; i++) {
    actio_future *f;
    ck_assert_int_eq(actio_future_create(&f), 0);
    actio_future_unref(f);
  }
  return NULL;
}

START_TEST(a_process_without_keys_left_keeps_no_blocks) {
  int nkeys;
  pthread_key_t *keys = keys_use_up(&nkeys);
  pthread_t t;
  start_threads(&t, 1, make_and_free, &nkeys, sizeof nkeys); /* the heap's own first use */
  join_threads(&t, 1);
  long before = (long)mallinfo2().uordblks;
  for (int i = 0; i < KEYLESS_THREADS; i++) {
    start_threads(&t, 1, make_and_free, &nkeys, sizeof nkeys);
    join_threads(&t, 1);
  }
  long grew = (long)mallinfo2().uordblks - before; /* 0 under the sanitizers */
  ck_assert_int_le(grew, 2048); /* 9,600 B before, keeping blocks it lost */
  keys_return(keys, nkeys);
}
END_TEST

/* Every build, the sanitizers' too, runs the recycler; under ASan a block
 * it keeps is poisoned, so a use of a released future is still reported. */
START_TEST(a_released_future_is_recycled_and_poisoned_meanwhile) {
  actio_future *f, *g;
  ck_assert_int_eq(actio_future_create(&f), 0);
  ck_assert_int_eq(actio_future_resolve(f, boxed(1), free), 0);
  actio_future_unref(f);
#ifdef ACTIO__ASAN
  ck_assert(__asan_address_is_poisoned(f)); /* its state word */
  ck_assert(__asan_address_is_poisoned((char *)f + 63));
#endif
  ck_assert_int_eq(actio_future_create(&g), 0);
  ck_assert_ptr_eq(g, f); /* this thread's list gives back its last block */
#ifdef ACTIO__ASAN
  ck_assert_ptr_null(__asan_region_is_poisoned(g, 64));
#endif
  ck_assert_int_eq(actio_future_status(g), ACTIO_EPENDING);
  actio_future_unref(g);
}
END_TEST

int main(void) {
  Suite *s = suite_create("future");
  TCase *tc = tcase_with_timeout("basics", 30);
  tcase_add_test(tc, resolve_once_and_free_with_future);
  tcase_add_test(tc, resolve_unref_completes_and_drops_the_reference);
  tcase_add_test(tc, take_moves_ownership);
  tcase_add_test(tc, withdrawn_callbacks_never_run);
  tcase_add_test(tc, withdrawal_racing_completion_is_exact);
  tcase_add_test(tc, fail_carries_code_and_message);
  tcase_add_test(tc, bad_arguments_are_refused);
  tcase_add_test(tc, callbacks_run_once_in_order_before_and_after);
  tcase_add_test(tc, wait_times_out_then_sees_completion);
  tcase_add_test(tc, cancel_reaches_the_operation);
  tcase_add_test(tc, a_hook_clears_itself_through_a_callback);
  tcase_add_test(tc, then_chains_values_and_failures);
  tcase_add_test(tc, a_chains_value_is_taken_from_its_step);
  tcase_add_test(tc, cancelling_a_chain_cancels_the_running_step);
  tcase_add_test(tc, catch_recovers_with_a_value_or_a_future);
  tcase_add_test(tc, finally_runs_whatever_the_outcome_and_passes_it_on);
  tcase_add_test(tc, cancelling_catch_or_finally_cancels_the_running_step);
  tcase_add_test(tc, deadline_fails_a_pending_future);
  tcase_add_test(tc, runtime_destroy_cancels_futures_still_waiting);
  tcase_add_test(tc, huge_timeouts_mean_no_limit);
  tcase_add_test(tc, the_earliest_deadline_fires_among_many);
  suite_add_tcase(s, tc);
  TCase *st = tcase_with_timeout("stress", 300);
  tcase_add_test(st, cancel_races_complete_exactly_once);
  tcase_add_test(st, catch_and_finally_race_cancels_exactly_once);
  tcase_add_test(st, futures_freed_on_another_thread_come_back_within_a_bound);
  tcase_add_test(st, recycled_futures_pass_around_a_ring_of_threads);
  suite_add_tcase(s, st);
  TCase *rc = tcase_with_timeout("records", 120);
  tcase_add_test(rc, callback_records_freed_on_another_thread_come_back_within_a_bound);
  tcase_add_test(rc, a_process_without_keys_left_keeps_no_blocks);
  tcase_add_test(rc, a_released_future_is_recycled_and_poisoned_meanwhile);
  suite_add_tcase(s, rc);
  return run_suite(s);
}

/* test_gather.c: gather (fail-fast, settle-all), any, as-completed and the
 * bounded map, including a gather of 100,000 futures completed by 4 threads. */
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "actio.h"
#include "test_util.h"

START_TEST(gather_keeps_order_and_waits_for_all) {
  actio_future **fs = make_futures(3), *g;
  ck_assert_int_eq(actio_gather(fs, 3, ACTIO_GATHER_FAIL_FAST, &g), 0);
  actio_future_resolve(fs[2], (void *)30, NULL);
  actio_future_resolve(fs[0], (void *)10, NULL);
  ck_assert_int_eq(actio_future_wait(g, 0), ACTIO_EPENDING);
  actio_future_resolve(fs[1], (void *)20, NULL);
  ck_assert_int_eq(actio_future_wait(g, -1), 0);
  ck_assert_uint_eq(actio_gather_count(g), 3);
  for (uintptr_t i = 0; i < 3; i++)
    ck_assert_ptr_eq(actio_future_value(actio_gather_item(g, i)), (void *)(10 * (i + 1)));
  ck_assert_ptr_null(actio_gather_item(g, 3));
  unref_futures(fs, 3);
  actio_future_unref(g); /* the gather's own references go with it */
}
END_TEST

START_TEST(gather_rejects_bad_input) {
  actio_future **fs = make_futures(2), *g;
  actio_future *holes[2] = {fs[0], NULL};
  ck_assert_int_eq(actio_gather(NULL, 2, ACTIO_GATHER_FAIL_FAST, &g), ACTIO_EINVAL);
  ck_assert_int_eq(actio_gather(holes, 2, ACTIO_GATHER_FAIL_FAST, &g), ACTIO_EINVAL);
  ck_assert_int_eq(actio_gather(fs, 2, (actio_gather_policy)7, &g), ACTIO_EINVAL);
  ck_assert_int_eq(actio_gather(fs, 2, ACTIO_GATHER_FAIL_FAST, NULL), ACTIO_EINVAL);
  ck_assert_int_eq(actio_any(fs, 0, &g), ACTIO_EINVAL);
  /* An empty gather resolves at once. */
  ck_assert_int_eq(actio_gather(NULL, 0, ACTIO_GATHER_SETTLE_ALL, &g), 0);
  ck_assert_int_eq(actio_future_wait(g, 0), 0);
  actio_future_unref(g);
  unref_futures(fs, 2);
}
END_TEST

START_TEST(fail_fast_cancels_the_siblings) {
  actio_future **fs = make_futures(3), *g;
  ck_assert_int_eq(actio_gather(fs, 3, ACTIO_GATHER_FAIL_FAST, &g), 0);
  actio_future_resolve(fs[0], NULL, NULL);
  actio_future_fail(fs[1], -ECONNREFUSED, "connect 127.0.0.1:1");
  ck_assert_int_eq(actio_future_wait(g, -1), -ECONNREFUSED);
  ck_assert_str_eq(actio_future_errmsg(g), "connect 127.0.0.1:1");
  ck_assert_int_eq(actio_future_status(fs[2]), ACTIO_ECANCELED);
  ck_assert_int_eq(actio_future_status(fs[0]), 0);
  unref_futures(fs, 3);
  actio_future_unref(g);
}
END_TEST

START_TEST(settle_all_keeps_each_outcome) {
  actio_future **fs = make_futures(3), *g;
  ck_assert_int_eq(actio_gather(fs, 3, ACTIO_GATHER_SETTLE_ALL, &g), 0);
  actio_future_fail(fs[1], -EIO, NULL);
  actio_future_cancel(fs[2]);
  ck_assert_int_eq(actio_future_wait(g, 0), ACTIO_EPENDING);
  actio_future_resolve(fs[0], (void *)1, NULL);
  ck_assert_int_eq(actio_future_wait(g, -1), 0);
  ck_assert_int_eq(actio_future_status(actio_gather_item(g, 0)), 0);
  ck_assert_int_eq(actio_future_status(actio_gather_item(g, 1)), -EIO);
  ck_assert_int_eq(actio_future_status(actio_gather_item(g, 2)), ACTIO_ECANCELED);
  unref_futures(fs, 3);
  actio_future_unref(g);
}
END_TEST

START_TEST(cancelling_a_gather_cancels_its_items) {
  actio_future **fs = make_futures(2), *g;
  ck_assert_int_eq(actio_gather(fs, 2, ACTIO_GATHER_SETTLE_ALL, &g), 0);
  ck_assert_int_eq(actio_future_cancel(g), 0);
  ck_assert_int_eq(actio_future_status(fs[0]), ACTIO_ECANCELED);
  ck_assert_int_eq(actio_future_status(fs[1]), ACTIO_ECANCELED);
  unref_futures(fs, 2);
  actio_future_unref(g);
}
END_TEST

START_TEST(any_takes_the_first_success) {
  actio_future **fs = make_futures(3), *a;
  ck_assert_int_eq(actio_any(fs, 3, &a), 0);
  actio_future_fail(fs[0], -EIO, NULL);
  ck_assert_int_eq(actio_future_wait(a, 0), ACTIO_EPENDING);
  int *v = malloc(sizeof *v);
  *v = 99;
  actio_future_resolve(fs[2], v, free);
  ck_assert_int_eq(actio_future_wait(a, -1), 0);
  ck_assert_int_eq(*(int *)actio_future_value(a), 99);
  ck_assert_uint_eq(actio_any_index(a), 2);
  ck_assert_int_eq(actio_future_status(fs[1]), ACTIO_ECANCELED);
  unref_futures(fs, 3);
  actio_future_unref(a); /* frees the value with the winner */
}
END_TEST

START_TEST(any_fails_when_all_fail) {
  actio_future **fs = make_futures(2), *a;
  ck_assert_int_eq(actio_any(fs, 2, &a), 0);
  actio_future_fail(fs[0], -EIO, "first");
  actio_future_fail(fs[1], -ENOENT, "second");
  ck_assert_int_eq(actio_future_wait(a, -1), ACTIO_EALLFAILED);
  ck_assert_ptr_nonnull(strstr(actio_future_errmsg(a), "second"));
  ck_assert_uint_eq(actio_any_index(a), SIZE_MAX);
  unref_futures(fs, 2);
  actio_future_unref(a);
}
END_TEST

START_TEST(as_completed_yields_in_completion_order) {
  actio_future **fs = make_futures(4);
  actio_as_completed *ac;
  size_t idx;
  ck_assert_int_eq(actio_as_completed_create(&ac, fs, 4), 0);
  ck_assert_int_eq(actio_as_completed_next(ac, 0, &idx), ACTIO_EPENDING);
  size_t order[4] = {2, 0, 3, 1};
  for (int i = 0; i < 4; i++)
    actio_future_resolve(fs[order[i]], NULL, NULL);
  for (int i = 0; i < 4; i++) {
    ck_assert_int_eq(actio_as_completed_next(ac, -1, &idx), 0);
    ck_assert_uint_eq(idx, order[i]);
  }
  ck_assert_int_eq(actio_as_completed_next(ac, -1, &idx), ACTIO_EEOF);
  actio_as_completed_destroy(ac);
  unref_futures(fs, 4);
}
END_TEST

START_TEST(as_completed_outlived_by_its_items) {
  /* Destroyed with one completion taken, one completed but never taken and
   * one still pending: the pending one completes later, untouched, and the
   * iterator goes with the last of its items (no leak, no use after free
   * under ASan and valgrind). */
  actio_future **fs = make_futures(3);
  actio_as_completed *ac;
  size_t idx;
  ck_assert_int_eq(actio_as_completed_create(&ac, fs, 3), 0);
  ck_assert_int_eq(actio_future_resolve(fs[1], (void *)2, NULL), 0);
  ck_assert_int_eq(actio_as_completed_next(ac, -1, &idx), 0);
  ck_assert_uint_eq(idx, 1);
  ck_assert_int_eq(actio_future_resolve(fs[0], (void *)1, NULL), 0);
  actio_as_completed_destroy(ac);
  ck_assert_int_eq(actio_future_resolve(fs[2], (void *)3, NULL), 0);
  for (uintptr_t i = 0; i < 3; i++) {
    ck_assert_int_eq(actio_future_status(fs[i]), 0);
    ck_assert_ptr_eq(actio_future_value(fs[i]), (void *)(i + 1));
  }
  unref_futures(fs, 3);
}
END_TEST

/* ---- map ---- */

typedef struct {
  actio_future **started; /* the futures the map started, by index */
  _Atomic int inflight, peak;
  int fail_at; /* index whose start fails, or -1 */
} map_ctx;

static int start_item(size_t i, void *arg, actio_future **out) {
  map_ctx *c = arg;
  if ((int)i == c->fail_at)
    return -EPERM;
  int now = atomic_fetch_add(&c->inflight, 1) + 1;
  int peak = atomic_load(&c->peak);
  while (now > peak && !atomic_compare_exchange_weak(&c->peak, &peak, now)) {
  }
  actio_future_create(out);
  actio_future_ref(*out);
  c->started[i] = *out;
  return 0;
}

/* Completes the started items still pending, oldest first (each completion
 * may start more); returns how many items are complete. */
static size_t drain(map_ctx *c, size_t n) {
  size_t done = 0;
  for (size_t i = 0; i < n; i++) {
    if (c->started[i] == NULL)
      continue;
    if (!actio_future_is_done(c->started[i])) {
      atomic_fetch_sub(&c->inflight, 1);
      actio_future_resolve(c->started[i], (void *)(uintptr_t)(i * 3), NULL);
    }
    done++;
  }
  return done;
}

START_TEST(map_bounds_the_window_and_keeps_order) {
  enum { N = 50, LIMIT = 4 };
  map_ctx c = {calloc(N, sizeof(actio_future *)), 0, 0, -1};
  actio_future *m;
  ck_assert_int_eq(actio_map(N, LIMIT, start_item, &c, ACTIO_GATHER_FAIL_FAST, &m), 0);
  ck_assert_int_eq(atomic_load(&c.inflight), LIMIT);
  size_t done = 0;
  while (done < N) /* each pass completes what is in flight, which starts more */
    done = drain(&c, N);
  ck_assert_int_eq(actio_future_wait(m, -1), 0);
  ck_assert_int_eq(atomic_load(&c.peak), LIMIT); /* full, never over */
  for (uintptr_t i = 0; i < N; i++)
    ck_assert_ptr_eq(actio_future_value(actio_gather_item(m, i)), (void *)(i * 3));
  for (size_t i = 0; i < N; i++)
    actio_future_unref(c.started[i]);
  free(c.started);
  actio_future_unref(m);
}
END_TEST

START_TEST(map_fail_fast_stops_starting) {
  enum { N = 20 };
  map_ctx c = {calloc(N, sizeof(actio_future *)), 0, 0, 3};
  actio_future *m;
  ck_assert_int_eq(actio_map(N, 5, start_item, &c, ACTIO_GATHER_FAIL_FAST, &m), 0);
  /* Item 3 failed to start: the map fails, items 0..2 were cancelled, and
   * nothing after it started. */
  ck_assert_int_eq(actio_future_wait(m, -1), -EPERM);
  for (size_t i = 0; i < 3; i++) {
    ck_assert_int_eq(actio_future_status(c.started[i]), ACTIO_ECANCELED);
    ck_assert_ptr_eq(actio_gather_item(m, i), c.started[i]);
    actio_future_unref(c.started[i]);
  }
  ck_assert_int_eq(actio_future_status(actio_gather_item(m, 3)), -EPERM);
  for (size_t i = 3; i < N; i++)
    ck_assert_ptr_null(c.started[i]);
  for (size_t i = 4; i < N; i++)
    ck_assert_ptr_null(actio_gather_item(m, i));
  free(c.started);
  actio_future_unref(m);
}
END_TEST

typedef struct {
  int calls[4];
} fail_first_ctx;

static int fail_first(size_t i, void *arg, actio_future **out) {
  fail_first_ctx *c = arg;
  c->calls[i]++;
  return i == 0 ? actio_future_failed(out, -EIO, "item 0") : actio_future_create(out);
}

START_TEST(map_fail_fast_starts_nothing_after_a_failure) {
  /* Regression: the next item used to start before the failure was seen. */
  fail_first_ctx c = {{0}};
  actio_future *m;
  ck_assert_int_eq(actio_map(4, 1, fail_first, &c, ACTIO_GATHER_FAIL_FAST, &m), 0);
  ck_assert_int_eq(actio_future_wait(m, -1), -EIO);
  ck_assert_int_eq(c.calls[0], 1);
  ck_assert_int_eq(c.calls[1] + c.calls[2] + c.calls[3], 0);
  actio_future_unref(m);
}
END_TEST

static int identity_step(actio_future *prev, void *arg, actio_future **next) {
  (void)prev;
  (void)arg;
  *next = NULL;
  return 0;
}

START_TEST(gather_accessors_refuse_other_futures) {
  actio_future *f, *t;
  ck_assert_int_eq(actio_future_create(&f), 0);
  ck_assert_int_eq(actio_future_then(f, identity_step, NULL, &t), 0);
  ck_assert_uint_eq(actio_gather_count(f), 0);
  ck_assert_uint_eq(actio_gather_count(t), 0); /* a then-future is no group */
  ck_assert_ptr_null(actio_gather_item(t, 0));
  ck_assert_uint_eq(actio_any_index(t), SIZE_MAX);
  actio_future_resolve(f, NULL, NULL);
  ck_assert_int_eq(actio_future_wait(t, -1), 0);
  actio_future_unref(f);
  actio_future_unref(t);
}
END_TEST

START_TEST(map_settle_all_runs_everything) {
  enum { N = 10 };
  map_ctx c = {calloc(N, sizeof(actio_future *)), 0, 0, 6};
  actio_future *m;
  ck_assert_int_eq(actio_map(N, 3, start_item, &c, ACTIO_GATHER_SETTLE_ALL, &m), 0);
  size_t done = 0;
  while (done < N - 1)
    done = drain(&c, N);
  ck_assert_int_eq(actio_future_wait(m, -1), 0);
  for (uintptr_t i = 0; i < N; i++) { /* one failure, every other item ran */
    actio_future *it = actio_gather_item(m, i);
    ck_assert_int_eq(actio_future_status(it), i == 6 ? -EPERM : 0);
    if (i != 6)
      ck_assert_ptr_eq(actio_future_value(it), (void *)(i * 3));
  }
  for (size_t i = 0; i < N; i++)
    actio_future_unref(c.started[i]);
  free(c.started);
  actio_future_unref(m);
}
END_TEST

/* ---- stress: 100,000 futures completed from 4 threads ---- */

enum { BIG = 100000, COMPLETERS = 4 };

typedef struct {
  actio_future **fs;
  int id;
} completer;

static void *complete_share(void *p) {
  completer *c = p;
  for (size_t i = (size_t)c->id; i < BIG; i += COMPLETERS)
    ck_assert_int_eq(actio_future_resolve(c->fs[i], (void *)(uintptr_t)(i + 1), NULL), 0);
  return NULL;
}

START_TEST(gather_100k_completed_from_4_threads) {
  actio_future **fs = make_futures(BIG), *g;
  ck_assert_int_eq(actio_gather(fs, BIG, ACTIO_GATHER_FAIL_FAST, &g), 0);
  completer c[COMPLETERS];
  pthread_t t[COMPLETERS];
  for (int i = 0; i < COMPLETERS; i++)
    c[i] = (completer){fs, i};
  start_threads(t, COMPLETERS, complete_share, c, sizeof c[0]);
  ck_assert_int_eq(actio_future_wait(g, -1), 0);
  join_threads(t, COMPLETERS);
  uint64_t sum = 0;
  for (size_t i = 0; i < BIG; i++)
    sum += (uintptr_t)actio_future_value(actio_gather_item(g, i));
  ck_assert_uint_eq(sum, (uint64_t)BIG * (BIG + 1) / 2);
  unref_futures(fs, BIG);
  actio_future_unref(g);
}
END_TEST

static int start_none(size_t i, void *arg, actio_future **out) {
  (void)i, (void)arg, (void)out;
  return ACTIO_EINVAL;
}

START_TEST(combinators_reject_bad_input) {
  actio_future **fs = make_futures(2), *g = NULL;
  actio_future *holes[2] = {fs[0], NULL};
  ck_assert_int_eq(actio_any(holes, 2, &g), ACTIO_EINVAL);
  ck_assert_int_eq(actio_map(2, 0, start_none, NULL, (actio_gather_policy)7, &g), ACTIO_EINVAL);
  ck_assert_int_eq(actio_map(2, 0, NULL, NULL, ACTIO_GATHER_FAIL_FAST, &g), ACTIO_EINVAL);
  ck_assert_int_eq(actio_map_within(NULL, 2, 0, 100, start_none, NULL, ACTIO_GATHER_FAIL_FAST, &g),
                   ACTIO_EINVAL);
  ck_assert_int_eq(actio_future_then(NULL, NULL, NULL, &g), ACTIO_EINVAL);
  ck_assert_ptr_null(g);
  actio_as_completed *ac = NULL;
  ck_assert_int_eq(actio_as_completed_create(NULL, fs, 2), ACTIO_EINVAL);
  ck_assert_int_eq(actio_as_completed_create(&ac, NULL, 2), ACTIO_EINVAL);
  ck_assert_int_eq(actio_as_completed_create(&ac, holes, 2), ACTIO_EINVAL);
  ck_assert_ptr_null(ac);
  size_t i;
  ck_assert_int_eq(actio_as_completed_next(NULL, 0, &i), ACTIO_EINVAL);
  /* Not a combinator's future: no items, no winner. */
  ck_assert_uint_eq(actio_gather_count(fs[0]), 0);
  ck_assert_uint_eq(actio_gather_count(NULL), 0);
  ck_assert_ptr_null(actio_gather_item(NULL, 0));
  ck_assert_uint_eq(actio_any_index(fs[0]), SIZE_MAX);
  ck_assert_int_eq(actio_gather(fs, 2, ACTIO_GATHER_SETTLE_ALL, &g), 0);
  ck_assert_uint_eq(actio_any_index(g), SIZE_MAX); /* a gather is no any */
  actio_future_cancel(g); /* and its items with it */
  actio_future_unref(g);
  unref_futures(fs, 2);
}
END_TEST

int main(void) {
  Suite *s = suite_create("gather");
  TCase *tc = tcase_with_timeout("combinators", 30);
  tcase_add_test(tc, gather_keeps_order_and_waits_for_all);
  tcase_add_test(tc, gather_rejects_bad_input);
  tcase_add_test(tc, combinators_reject_bad_input);
  tcase_add_test(tc, fail_fast_cancels_the_siblings);
  tcase_add_test(tc, settle_all_keeps_each_outcome);
  tcase_add_test(tc, cancelling_a_gather_cancels_its_items);
  tcase_add_test(tc, any_takes_the_first_success);
  tcase_add_test(tc, any_fails_when_all_fail);
  tcase_add_test(tc, as_completed_yields_in_completion_order);
  tcase_add_test(tc, as_completed_outlived_by_its_items);
  tcase_add_test(tc, map_bounds_the_window_and_keeps_order);
  tcase_add_test(tc, map_fail_fast_stops_starting);
  tcase_add_test(tc, map_settle_all_runs_everything);
  tcase_add_test(tc, map_fail_fast_starts_nothing_after_a_failure);
  tcase_add_test(tc, gather_accessors_refuse_other_futures);
  suite_add_tcase(s, tc);
  TCase *st = tcase_with_timeout("stress", 300);
  tcase_add_test(st, gather_100k_completed_from_4_threads);
  suite_add_tcase(s, st);
  return run_suite(s);
}

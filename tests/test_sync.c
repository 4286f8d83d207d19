/* test_sync.c: the structures of actio/sync.h: task groups that grow while
 * they run (fail-fast, settle-all, close), each with a stress of several
 * threads. */
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "actio.h"
#include "test_util.h"

static actio_future *pending_future(void) {
  actio_future *f;
  ck_assert_int_eq(actio_future_create(&f), 0);
  return f;
}

/* n pending futures, each added to g. */
static actio_future **add_pending(actio_group *g, size_t n) {
  actio_future **fs = make_futures(n);
  for (size_t i = 0; i < n; i++)
    ck_assert_int_eq(actio_group_add(g, fs[i]), 0);
  return fs;
}

/* ---- task groups ---- */

START_TEST(a_group_waits_for_members_added_while_it_runs) {
  actio_group *g;
  actio_future *all, *late = pending_future(), *done;
  ck_assert_int_eq(actio_group_create(&g, ACTIO_GATHER_FAIL_FAST), 0);
  actio_future **fs = add_pending(g, 3);
  ck_assert_int_eq(actio_group_wait(g, &all), 0);
  ck_assert_uint_eq(actio_group_pending(g), 3);
  actio_future_resolve(fs[0], NULL, NULL);
  ck_assert_int_eq(actio_group_add(g, late), 0); /* while it runs */
  ck_assert_int_eq(actio_future_resolved(&done, NULL, NULL), 0);
  ck_assert_int_eq(actio_group_add(g, done), 0); /* done already: counts at once */
  actio_future_resolve(fs[1], NULL, NULL);
  actio_future_resolve(fs[2], NULL, NULL);
  ck_assert_uint_eq(actio_group_pending(g), 1);
  ck_assert_int_eq(actio_future_wait(all, 0), ACTIO_EPENDING);
  actio_future_resolve(late, NULL, NULL);
  ck_assert_int_eq(actio_future_wait(all, -1), 0);
  ck_assert_uint_eq(actio_group_pending(g), 0);
  /* Completed: no more members, and a close changes nothing. */
  ck_assert_int_eq(actio_group_add(g, done), ACTIO_ECLOSED);
  actio_group_close(g);
  ck_assert_int_eq(actio_future_status(all), 0);
  actio_group_destroy(g);
  actio_future_unref(all);
  actio_future_unref(late);
  actio_future_unref(done);
  unref_futures(fs, 3);

  /* An empty group is complete once waited for; a second wait gives the
   * same future. */
  actio_future *again;
  ck_assert_int_eq(actio_group_create(&g, ACTIO_GATHER_SETTLE_ALL), 0);
  ck_assert_int_eq(actio_group_wait(g, &all), 0);
  ck_assert_int_eq(actio_group_wait(g, &again), 0);
  ck_assert_ptr_eq(all, again);
  ck_assert_int_eq(actio_future_status(all), 0);
  actio_group_destroy(g);
  actio_future_unref(all);
  actio_future_unref(again);
}
END_TEST

START_TEST(fail_fast_cancels_the_rest_and_fails_the_group) {
  actio_group *g;
  actio_future *all, *extra = pending_future();
  ck_assert_int_eq(actio_group_create(&g, ACTIO_GATHER_FAIL_FAST), 0);
  actio_future **fs = add_pending(g, 4);
  /* A member cancelled by someone else only leaves. */
  actio_future_cancel(fs[0]);
  ck_assert_uint_eq(actio_group_pending(g), 3);
  ck_assert_int_eq(actio_group_wait(g, &all), 0);
  ck_assert_int_eq(actio_future_status(all), ACTIO_EPENDING);
  /* The first failure, before or after the wait, fails the group. */
  actio_future_fail(fs[2], -EIO, "disk on fire");
  ck_assert_int_eq(actio_future_status(all), -EIO);
  ck_assert_str_eq(actio_future_errmsg(all), "disk on fire");
  ck_assert_int_eq(actio_future_status(fs[1]), ACTIO_ECANCELED);
  ck_assert_int_eq(actio_future_status(fs[3]), ACTIO_ECANCELED);
  ck_assert_uint_eq(actio_group_pending(g), 0);
  ck_assert_int_eq(actio_group_add(g, extra), ACTIO_ECLOSED);
  ck_assert_int_eq(actio_future_status(extra), ACTIO_EPENDING); /* left alone */
  actio_group_destroy(g);
  actio_future_unref(all);
  actio_future_unref(extra);
  unref_futures(fs, 4);
}
END_TEST

START_TEST(settle_all_lets_every_member_end) {
  actio_group *g;
  actio_future *all;
  ck_assert_int_eq(actio_group_create(&g, ACTIO_GATHER_SETTLE_ALL), 0);
  actio_future **fs = add_pending(g, 3);
  ck_assert_int_eq(actio_group_wait(g, &all), 0);
  actio_future_fail(fs[1], -EIO, NULL);
  ck_assert_int_eq(actio_future_status(fs[0]), ACTIO_EPENDING);
  actio_future_resolve(fs[0], (void *)1, NULL);
  ck_assert_int_eq(actio_future_wait(all, 0), ACTIO_EPENDING);
  actio_future_resolve(fs[2], (void *)3, NULL);
  ck_assert_int_eq(actio_future_wait(all, -1), 0);
  ck_assert_int_eq(actio_future_status(fs[1]), -EIO);
  ck_assert_ptr_eq(actio_future_value(fs[2]), (void *)3);
  actio_group_destroy(g);
  actio_future_unref(all);
  unref_futures(fs, 3);
}
END_TEST

START_TEST(closing_a_group_cancels_what_is_pending) {
  /* By close, by destroy, and by cancelling the group's future. */
  for (int how = 0; how < 3; how++) {
    actio_group *g;
    actio_future *all, *late = pending_future();
    ck_assert_int_eq(actio_group_create(&g, ACTIO_GATHER_SETTLE_ALL), 0);
    actio_future **fs = add_pending(g, 3);
    actio_future_resolve(fs[0], NULL, NULL);
    ck_assert_int_eq(actio_group_wait(g, &all), 0);
    if (how == 0)
      actio_group_close(g);
    else if (how == 1)
      actio_group_destroy(g);
    else
      ck_assert_int_eq(actio_future_cancel(all), 0);
    ck_assert_int_eq(actio_future_status(fs[0]), 0);
    ck_assert_int_eq(actio_future_status(fs[1]), ACTIO_ECANCELED);
    ck_assert_int_eq(actio_future_status(fs[2]), ACTIO_ECANCELED);
    ck_assert_int_eq(actio_future_status(all), ACTIO_ECANCELED);
    if (how != 1) {
      ck_assert_int_eq(actio_group_add(g, late), ACTIO_ECLOSED);
      actio_group_close(g); /* idempotent */
      actio_group_destroy(g);
    }
    actio_future_unref(all);
    actio_future_unref(late);
    unref_futures(fs, 3);
  }
  actio_group_destroy(NULL);
}
END_TEST

START_TEST(group_bad_arguments_are_refused) {
  actio_group *g;
  actio_future *f;
  ck_assert_int_eq(actio_group_create(NULL, ACTIO_GATHER_FAIL_FAST), ACTIO_EINVAL);
  ck_assert_int_eq(actio_group_create(&g, (actio_gather_policy)7), ACTIO_EINVAL);
  ck_assert_int_eq(actio_group_create(&g, ACTIO_GATHER_FAIL_FAST), 0);
  ck_assert_int_eq(actio_group_add(g, NULL), ACTIO_EINVAL);
  ck_assert_int_eq(actio_group_add(NULL, NULL), ACTIO_EINVAL);
  ck_assert_int_eq(actio_group_wait(g, NULL), ACTIO_EINVAL);
  ck_assert_int_eq(actio_group_wait(NULL, &f), ACTIO_EINVAL);
  actio_group_destroy(g);
}
END_TEST

/* A long-lived group holds only what is pending: 100,000 members come and
 * go, and none stays. */
START_TEST(a_group_lets_go_of_completed_members) {
  actio_group *g;
  ck_assert_int_eq(actio_group_create(&g, ACTIO_GATHER_FAIL_FAST), 0);
  for (int i = 0; i < 100000; i++) {
    actio_future *f = pending_future();
    ck_assert_int_eq(actio_group_add(g, f), 0);
    actio_future_resolve(f, NULL, NULL);
    actio_future_unref(f);
  }
  ck_assert_uint_eq(actio_group_pending(g), 0);
  actio_group_destroy(g);
}
END_TEST

/* Threads add members while others complete them, and one closes or fails
 * the group midway: every member completes exactly once (resolved, failed
 * or cancelled), the group's future once, and adds after it are refused. */
enum { ADDERS = 3, PER_ADDER = 20000 };

typedef struct {
  actio_group *g;
  actio_future **fs; /* PER_ADDER slots, filled as they are added */
  _Atomic size_t added;
  _Atomic int refused;
} adder;

static void *add_members(void *p) {
  adder *a = p;
  for (size_t i = 0; i < PER_ADDER; i++) {
    actio_future *f = pending_future();
    int rc = actio_group_add(a->g, f);
    if (rc == ACTIO_ECLOSED) {
      atomic_fetch_add(&a->refused, 1);
      actio_future_cancel(f); /* never added: ours to end */
    } else {
      ck_assert_int_eq(rc, 0);
    }
    a->fs[i] = f;
    atomic_store_explicit(&a->added, i + 1, memory_order_release);
  }
  return NULL;
}

typedef struct {
  adder *adders;
  int fail; /* fail one member (fail-fast) rather than close */
} finisher;

static void *complete_members(void *p) {
  finisher *fin = p;
  size_t seen[ADDERS] = {0}, total = 0;
  int ended = 0;
  for (;;) {
    int all = 1;
    size_t before = total;
    for (int k = 0; k < ADDERS; k++) {
      adder *a = &fin->adders[k];
      size_t n = atomic_load_explicit(&a->added, memory_order_acquire);
      for (; seen[k] < n; seen[k]++, total++)
        actio_future_resolve(a->fs[seen[k]], NULL, NULL);
      all &= n == PER_ADDER;
    }
    if (!ended && total >= PER_ADDER) { /* midway: a third of the adds seen */
      ended = 1;
      if (fin->fail) {
        actio_future *bad;
        ck_assert_int_eq(actio_future_failed(&bad, -EIO, NULL), 0);
        ck_assert_int_eq(actio_group_add(fin->adders[0].g, bad), 0);
        actio_future_unref(bad);
      } else {
        actio_group_close(fin->adders[0].g);
      }
    }
    if (all && ended)
      return NULL;
    if (total == before)
      sched_yield();
  }
}

START_TEST(groups_grow_and_end_across_threads) {
  for (int fail = 0; fail < 2; fail++) {
    actio_group *g;
    actio_future *all;
    ck_assert_int_eq(actio_group_create(&g, ACTIO_GATHER_FAIL_FAST), 0);
    /* A member completed by nobody keeps the group from completing before
     * the close or the failure. */
    actio_future *anchor = pending_future();
    ck_assert_int_eq(actio_group_add(g, anchor), 0);
    ck_assert_int_eq(actio_group_wait(g, &all), 0);
    adder adders[ADDERS];
    for (int k = 0; k < ADDERS; k++) {
      adders[k] = (adder){.g = g, .fs = malloc(PER_ADDER * sizeof(actio_future *))};
      atomic_init(&adders[k].added, 0);
      atomic_init(&adders[k].refused, 0);
    }
    finisher fin = {adders, fail};
    pthread_t t[ADDERS + 1];
    start_threads(t, ADDERS, add_members, adders, sizeof adders[0]);
    ck_assert_int_eq(pthread_create(&t[ADDERS], NULL, complete_members, &fin), 0);
    join_threads(t, ADDERS + 1);
    int st = actio_future_wait(all, -1);
    ck_assert_int_eq(st, fail ? -EIO : ACTIO_ECANCELED);
    ck_assert_uint_eq(actio_group_pending(g), 0);
    ck_assert_int_eq(actio_future_status(anchor), ACTIO_ECANCELED);
    actio_future_unref(anchor);
    for (int k = 0; k < ADDERS; k++) {
      for (size_t i = 0; i < PER_ADDER; i++) {
        int s = actio_future_status(adders[k].fs[i]);
        ck_assert(s == 0 || s == ACTIO_ECANCELED);
        actio_future_unref(adders[k].fs[i]);
      }
      free(adders[k].fs);
    }
    actio_future *late = pending_future();
    ck_assert_int_eq(actio_group_add(g, late), ACTIO_ECLOSED);
    actio_future_unref(late);
    actio_group_destroy(g);
    actio_future_unref(all);
  }
}
END_TEST

int main(void) {
  Suite *s = suite_create("sync");
  TCase *tc = tcase_with_timeout("group", 60);
  tcase_add_test(tc, a_group_waits_for_members_added_while_it_runs);
  tcase_add_test(tc, fail_fast_cancels_the_rest_and_fails_the_group);
  tcase_add_test(tc, settle_all_lets_every_member_end);
  tcase_add_test(tc, closing_a_group_cancels_what_is_pending);
  tcase_add_test(tc, group_bad_arguments_are_refused);
  tcase_add_test(tc, a_group_lets_go_of_completed_members);
  suite_add_tcase(s, tc);
  TCase *st = tcase_with_timeout("stress", 300);
  tcase_add_test(st, groups_grow_and_end_across_threads);
  suite_add_tcase(s, st);
  return run_suite(s);
}

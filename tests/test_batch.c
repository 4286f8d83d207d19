/* test_batch.c: the batcher: sent at once while the downstream is idle and
 * collected while it is busy (smart batching), by count, by time and by
 * flush, per-item outcomes, cancellation before and after the send,
 * backpressure at the bound, batches done at once without stack growth,
 * destroy with items pending, a burst's items in one batch (sent before
 * a wait inside it), and two producers under stress. */
#include "actors/core/burst.h"
#include "test_util.h"

#define FOREVER_MS 3600000 /* a max_wait that never comes in a test */

static actio_runtime *rt;

static void setup(void) { ck_assert_int_eq(actio_runtime_create(&rt, NULL), 0); }
static void teardown(void) {
  actio_runtime_destroy(rt);
  rt = NULL;
}

/* Items are ints from this pool; item_free counts them back. */
static atomic_size_t freed;
static void item_free(void *item) {
  (void)item;
  atomic_fetch_add_explicit(&freed, 1, memory_order_relaxed);
}
static int items[4096];

/* A batch function that records each batch and answers with a future the
 * test completes (or, with `now`, already resolved). */
typedef struct rec {
  pthread_mutex_t mu;
  size_t nbatches;
  size_t sizes[64];
  int first[64][16];     /* the items of each batch (up to 16) */
  actio_future *fut[64]; /* the batches' futures (the test's references) */
  actio_batch *batch[64];
  int now;               /* answer at once */
  int now_after_first;   /* answer at once but for the first batch */
  int fail_rc;           /* return this from the function */
} rec;

static int record(actio_batch *batch, void *arg, actio_future **out) {
  rec *r = arg;
  pthread_mutex_lock(&r->mu);
  size_t k = r->nbatches++;
  ck_assert_uint_lt(k, 64);
  r->sizes[k] = actio_batch_count(batch);
  for (size_t i = 0; i < r->sizes[k] && i < 16; i++)
    r->first[k][i] = *(int *)actio_batch_item(batch, i);
  r->batch[k] = batch;
  pthread_mutex_unlock(&r->mu);
  if (r->fail_rc)
    return r->fail_rc;
  if (r->now || (r->now_after_first && k > 0))
    return actio_future_resolved(out, NULL, NULL);
  ck_assert_int_eq(actio_future_create(out), 0);
  actio_future_ref(*out);
  r->fut[k] = *out;
  return 0;
}

static size_t batches(rec *r) {
  pthread_mutex_lock(&r->mu);
  size_t n = r->nbatches;
  pthread_mutex_unlock(&r->mu);
  return n;
}

/* Items sent in batches first.. (a slow machine may see a timer split
 * what a test adds in a row, so tests of time count items, not batches). */
static size_t items_sent(rec *r, size_t first) {
  pthread_mutex_lock(&r->mu);
  size_t n = 0;
  for (size_t k = first; k < r->nbatches; k++)
    n += r->sizes[k];
  pthread_mutex_unlock(&r->mu);
  return n;
}

static void rec_done(rec *r) {
  for (size_t i = 0; i < r->nbatches; i++)
    actio_future_unref(r->fut[i]);
}

static actio_future *add(actio_batcher *b, int i, actio_batch_mode mode) {
  actio_future *f = NULL;
  items[i] = i;
  ck_assert_int_eq(actio_batcher_add(b, &items[i], mode, &f), 0);
  return f;
}

/* Items 0..n-1 resolved already (futures dropped), every item freed and
 * none pending; then b and r go. */
static void all_resolved_then_destroy(actio_batcher *b, rec *r, actio_future **f, int n) {
  for (int i = 0; i < n; i++) {
    ck_assert_int_eq(actio_future_wait(f[i], 0), 0);
    actio_future_unref(f[i]);
  }
  ck_assert_uint_eq(actio_batcher_pending(b), 0);
  ck_assert_uint_eq(atomic_load(&freed), (size_t)n);
  actio_batcher_destroy(b);
  rec_done(r);
}

START_TEST(a_batch_goes_when_full) {
  rec r = {.mu = PTHREAD_MUTEX_INITIALIZER};
  actio_batcher *b;
  atomic_store(&freed, 0);
  actio_batcher_opts o = {.max_items = 4, .max_wait_ms = FOREVER_MS, .item_free = item_free, .eager = ACTIO_BATCH_TIMED};
  ck_assert_int_eq(actio_batcher_create(rt, &o, record, &r, &b), 0);
  actio_future *f[8];
  for (int i = 0; i < 3; i++)
    f[i] = add(b, i, ACTIO_BATCH_NOWAIT);
  ck_assert_uint_eq(batches(&r), 0); /* 3 of 4: nothing sent */
  f[3] = add(b, 3, ACTIO_BATCH_NOWAIT);
  ck_assert_uint_eq(batches(&r), 1); /* the 4th sent them, on this thread */
  ck_assert_uint_eq(r.sizes[0], 4);
  for (int i = 0; i < 4; i++) {
    ck_assert_int_eq(r.first[0][i], i); /* in order */
    ck_assert_int_eq(actio_future_status(f[i]), ACTIO_EPENDING);
  }
  ck_assert_uint_eq(actio_batcher_pending(b), 4);
  ck_assert_int_eq(actio_future_resolve(r.fut[0], NULL, NULL), 0);
  all_resolved_then_destroy(b, &r, f, 4);
}
END_TEST

START_TEST(a_batch_goes_when_its_time_is_up) {
  rec r = {.mu = PTHREAD_MUTEX_INITIALIZER, .now = 1};
  actio_batcher *b;
  actio_batcher_opts o = {.max_items = 100, .max_wait_ms = 5, .eager = ACTIO_BATCH_TIMED};
  ck_assert_int_eq(actio_batcher_create(rt, &o, record, &r, &b), 0);
  for (int round = 0; round < 3; round++) {
    actio_future *f[3];
    for (int i = 0; i < 3; i++)
      f[i] = add(b, i, ACTIO_BATCH_NOWAIT);
    for (int i = 0; i < 3; i++) { /* the timer sends them: wait for that */
      ck_assert_int_eq(actio_future_wait(f[i], -1), 0);
      actio_future_unref(f[i]);
    }
    /* All sent, far from max_items: by the timer. */
    ck_assert_uint_eq(items_sent(&r, 0), 3 * ((size_t)round + 1));
  }
  actio_batcher_destroy(b);
}
END_TEST

START_TEST(a_flush_sends_what_is_there) {
  rec r = {.mu = PTHREAD_MUTEX_INITIALIZER, .now = 1};
  actio_batcher *b;
  actio_batcher_opts o = {.max_items = 100, .max_wait_ms = FOREVER_MS, .eager = ACTIO_BATCH_TIMED};
  ck_assert_int_eq(actio_batcher_create(rt, &o, record, &r, &b), 0);
  ck_assert_int_eq(actio_batcher_flush(b), 0); /* empty: nothing */
  ck_assert_uint_eq(batches(&r), 0);
  actio_future *f = add(b, 0, ACTIO_BATCH_NOWAIT);
  ck_assert_int_eq(actio_batcher_flush(b), 0);
  ck_assert_int_eq(actio_future_wait(f, 0), 0);
  ck_assert_uint_eq(batches(&r), 1);
  actio_future_unref(f);
  actio_batcher_destroy(b);
}
END_TEST

static void free_str(void *p) { free(p); }

static int per_item(actio_batch *batch, void *arg, actio_future **out) {
  (void)arg;
  for (size_t i = 0; i < actio_batch_count(batch); i++) {
    int v = *(int *)actio_batch_item(batch, i);
    if (v % 3 == 1)
      ck_assert_int_eq(actio_batch_fail_item(batch, i, ACTIO_ESQL, "row %d: bad", v), 0);
    else if (v % 3 == 2)
      ck_assert_int_eq(actio_batch_resolve_item(batch, i, strdup("two"), free_str), 0);
  }
  ck_assert_int_eq(actio_batch_fail_item(batch, 99, ACTIO_ESQL, NULL), ACTIO_EINVAL);
  ck_assert_int_eq(actio_batch_fail_item(batch, 0, 0, NULL), ACTIO_EINVAL);
  return actio_future_resolved(out, NULL, NULL);
}

START_TEST(each_item_takes_its_own_outcome) {
  actio_batcher *b;
  actio_batcher_opts o = {.max_items = 6, .max_wait_ms = FOREVER_MS};
  ck_assert_int_eq(actio_batcher_create(rt, &o, per_item, NULL, &b), 0);
  actio_future *f[6];
  for (int i = 0; i < 6; i++)
    f[i] = add(b, i, ACTIO_BATCH_NOWAIT);
  for (int i = 0; i < 6; i++) {
    int st = actio_future_wait(f[i], -1);
    if (i % 3 == 0) {
      ck_assert_int_eq(st, 0);
      ck_assert_ptr_null(actio_future_value(f[i]));
    } else if (i % 3 == 1) {
      ck_assert_int_eq(st, ACTIO_ESQL);
      char want[32];
      snprintf(want, sizeof want, "row %d: bad", i);
      ck_assert_str_eq(actio_future_errmsg(f[i]), want);
    } else {
      ck_assert_int_eq(st, 0);
      ck_assert_str_eq(actio_future_value(f[i]), "two");
    }
    actio_future_unref(f[i]);
  }
  actio_batcher_destroy(b);
}
END_TEST

START_TEST(a_failed_batch_fails_its_items) {
  rec r = {.mu = PTHREAD_MUTEX_INITIALIZER};
  actio_batcher *b;
  actio_batcher_opts o = {.max_items = 2, .max_wait_ms = FOREVER_MS, .eager = ACTIO_BATCH_TIMED};
  ck_assert_int_eq(actio_batcher_create(rt, &o, record, &r, &b), 0);
  actio_future *f[4];
  for (int i = 0; i < 2; i++)
    f[i] = add(b, i, ACTIO_BATCH_NOWAIT);
  ck_assert_int_eq(actio_future_fail(r.fut[0], ACTIO_ECONN, "server gone"), 0);
  for (int i = 0; i < 2; i++) {
    ck_assert_int_eq(actio_future_wait(f[i], 0), ACTIO_ECONN);
    ck_assert_str_eq(actio_future_errmsg(f[i]), "server gone");
    actio_future_unref(f[i]);
  }
  r.fail_rc = ACTIO_ENOMEM; /* the function itself fails */
  for (int i = 2; i < 4; i++)
    f[i] = add(b, i, ACTIO_BATCH_NOWAIT);
  for (int i = 2; i < 4; i++) {
    ck_assert_int_eq(actio_future_wait(f[i], 0), ACTIO_ENOMEM);
    actio_future_unref(f[i]);
  }
  ck_assert_uint_eq(actio_batcher_pending(b), 0);
  actio_batcher_destroy(b);
  rec_done(&r);
}
END_TEST

START_TEST(a_cancelled_item_is_left_out_or_dropped) {
  rec r = {.mu = PTHREAD_MUTEX_INITIALIZER};
  actio_batcher *b;
  atomic_store(&freed, 0);
  actio_batcher_opts o = {.max_items = 10, .max_wait_ms = FOREVER_MS, .item_free = item_free, .eager = ACTIO_BATCH_TIMED};
  ck_assert_int_eq(actio_batcher_create(rt, &o, record, &r, &b), 0);
  actio_future *f[5];
  for (int i = 0; i < 3; i++)
    f[i] = add(b, i, ACTIO_BATCH_NOWAIT);
  /* Before the send: left out, freed, its room given back. */
  ck_assert_int_eq(actio_future_cancel(f[1]), 0);
  ck_assert_int_eq(actio_future_status(f[1]), ACTIO_ECANCELED);
  ck_assert_uint_eq(atomic_load(&freed), 1);
  ck_assert_uint_eq(actio_batcher_pending(b), 2);
  ck_assert_int_eq(actio_batcher_flush(b), 0);
  ck_assert_uint_eq(batches(&r), 1);
  ck_assert_uint_eq(r.sizes[0], 2);
  ck_assert_int_eq(r.first[0][0], 0);
  ck_assert_int_eq(r.first[0][1], 2);
  /* After the send: done at once, the batch's outcome dropped; the item
   * stays the batch's until it is over. */
  ck_assert_int_eq(actio_future_cancel(f[2]), 0);
  ck_assert_int_eq(actio_future_status(f[2]), ACTIO_ECANCELED);
  ck_assert_uint_eq(atomic_load(&freed), 1);
  ck_assert_int_eq(actio_future_resolve(r.fut[0], NULL, NULL), 0);
  ck_assert_int_eq(actio_future_wait(f[0], 0), 0);
  ck_assert_int_eq(actio_future_status(f[2]), ACTIO_ECANCELED);
  ck_assert_uint_eq(atomic_load(&freed), 3);
  /* A deadline is a cancel: an item past it is left out too. */
  f[3] = add(b, 3, ACTIO_BATCH_NOWAIT);
  ck_assert_int_eq(actio_future_set_deadline(rt, f[3], 1), 0);
  ck_assert_int_eq(actio_future_wait(f[3], -1), ACTIO_ETIMEDOUT);
  ck_assert_uint_eq(actio_batcher_pending(b), 0);
  ck_assert_uint_eq(atomic_load(&freed), 4);
  for (int i = 0; i < 4; i++)
    actio_future_unref(f[i]);
  actio_batcher_destroy(b);
  ck_assert_uint_eq(batches(&r), 1); /* nothing left to send */
  rec_done(&r);
}
END_TEST

/* A map over an item's future: the batcher composes like any future. */
static int then_double(actio_future *prev, void *arg, actio_future **next) {
  (void)prev;
  (void)next;
  int *v = arg;
  *v *= 2;
  return 0;
}

START_TEST(a_full_batcher_refuses_or_makes_the_caller_wait) {
  rec r = {.mu = PTHREAD_MUTEX_INITIALIZER};
  actio_batcher *b;
  atomic_store(&freed, 0);
  actio_batcher_opts o = {.max_items = 2, .capacity = 4, .max_wait_ms = FOREVER_MS,
                          .item_free = item_free, .eager = ACTIO_BATCH_TIMED};
  ck_assert_int_eq(actio_batcher_create(rt, &o, record, &r, &b), 0);
  actio_future *f[8], *g;
  for (int i = 0; i < 4; i++)
    f[i] = add(b, i, ACTIO_BATCH_NOWAIT);
  ck_assert_uint_eq(batches(&r), 2);
  ck_assert_uint_eq(actio_batcher_pending(b), 4);
  items[4] = 4;
  ck_assert_int_eq(actio_batcher_add(b, &items[4], ACTIO_BATCH_NOWAIT, &g), ACTIO_EFULL);
  ck_assert_uint_eq(atomic_load(&freed), 0); /* refused: still the caller's */
  /* Waiting for room, by the caller's deadline. */
  f[4] = add(b, 4, ACTIO_BATCH_WAIT);
  ck_assert_int_eq(actio_future_set_deadline(rt, f[4], 1), 0);
  ck_assert_int_eq(actio_future_wait(f[4], -1), ACTIO_ETIMEDOUT);
  ck_assert_uint_eq(atomic_load(&freed), 1);
  /* Waiting, then let in as room comes, in order. */
  f[5] = add(b, 5, ACTIO_BATCH_WAIT);
  f[6] = add(b, 6, ACTIO_BATCH_WAIT);
  int v = 21;
  ck_assert_int_eq(actio_future_then(f[5], then_double, &v, &g), 0);
  ck_assert_int_eq(actio_future_status(f[5]), ACTIO_EPENDING);
  ck_assert_int_eq(actio_future_resolve(r.fut[0], NULL, NULL), 0);
  ck_assert_uint_eq(batches(&r), 3); /* 5 and 6 came in and filled a batch */
  ck_assert_int_eq(r.first[2][0], 5);
  ck_assert_int_eq(r.first[2][1], 6);
  ck_assert_uint_eq(actio_batcher_pending(b), 4);
  ck_assert_int_eq(actio_future_resolve(r.fut[1], NULL, NULL), 0);
  ck_assert_int_eq(actio_future_resolve(r.fut[2], NULL, NULL), 0);
  ck_assert_int_eq(actio_future_wait(g, 0), 0);
  ck_assert_int_eq(v, 42);
  actio_future_unref(g);
  for (int i = 0; i < 7; i++) {
    ck_assert_int_eq(actio_future_wait(f[i], 0), i == 4 ? ACTIO_ETIMEDOUT : 0);
    actio_future_unref(f[i]);
  }
  ck_assert_uint_eq(atomic_load(&freed), 7);
  actio_batcher_destroy(b);
  rec_done(&r);
}
END_TEST

START_TEST(adds_waiting_for_room_are_bounded) {
  rec r = {.mu = PTHREAD_MUTEX_INITIALIZER};
  actio_batcher *b;
  atomic_store(&freed, 0);
  actio_batcher_opts o = {.max_items = 2, .capacity = 2, .max_waiting = 2,
                          .max_wait_ms = FOREVER_MS, .item_free = item_free,
                          .eager = ACTIO_BATCH_TIMED};
  ck_assert_int_eq(actio_batcher_create(rt, &o, record, &r, &b), 0);
  actio_future *f[5], *g;
  f[0] = add(b, 0, ACTIO_BATCH_NOWAIT);
  f[1] = add(b, 1, ACTIO_BATCH_NOWAIT); /* a full batch: sent, in flight */
  ck_assert_uint_eq(batches(&r), 1);
  f[2] = add(b, 2, ACTIO_BATCH_WAIT);
  f[3] = add(b, 3, ACTIO_BATCH_WAIT);
  /* max_waiting adds wait already: the next one is refused, not queued. */
  items[4] = 4;
  ck_assert_int_eq(actio_batcher_add(b, &items[4], ACTIO_BATCH_WAIT, &g), ACTIO_EFULL);
  ck_assert_uint_eq(atomic_load(&freed), 0); /* refused: still the caller's */
  /* One that stops waiting makes room for another. */
  actio_future_cancel(f[2]);
  ck_assert_int_eq(actio_future_wait(f[2], 0), ACTIO_ECANCELED);
  f[4] = add(b, 4, ACTIO_BATCH_WAIT);
  ck_assert_int_eq(actio_future_resolve(r.fut[0], NULL, NULL), 0);
  ck_assert_uint_eq(batches(&r), 2); /* 3 and 4 came in and filled a batch */
  ck_assert_int_eq(r.first[1][0], 3);
  ck_assert_int_eq(r.first[1][1], 4);
  ck_assert_int_eq(actio_future_resolve(r.fut[1], NULL, NULL), 0);
  for (int i = 0; i < 5; i++) {
    ck_assert_int_eq(actio_future_wait(f[i], 0), i == 2 ? ACTIO_ECANCELED : 0);
    actio_future_unref(f[i]);
  }
  ck_assert_uint_eq(atomic_load(&freed), 5);
  actio_batcher_destroy(b);
  rec_done(&r);
}
END_TEST

static atomic_int ends[64];
static void count_end(actio_future *f, void *arg) {
  (void)f;
  atomic_fetch_add_explicit(&ends[(int *)arg - items], 1, memory_order_relaxed);
}

START_TEST(destroy_cancels_each_item_once) {
  rec r = {.mu = PTHREAD_MUTEX_INITIALIZER};
  actio_batcher *b;
  atomic_store(&freed, 0);
  actio_batcher_opts o = {.max_items = 2, .capacity = 5, .max_wait_ms = FOREVER_MS,
                          .item_free = item_free, .eager = ACTIO_BATCH_TIMED};
  ck_assert_int_eq(actio_batcher_create(rt, &o, record, &r, &b), 0);
  actio_future *f[8];
  for (int i = 0; i < 8; i++) {
    atomic_store(&ends[i], 0);
    f[i] = add(b, i, i < 5 ? ACTIO_BATCH_NOWAIT : ACTIO_BATCH_WAIT);
    ck_assert_int_eq(actio_future_on_done(f[i], count_end, &items[i]), 0);
    if (i == 6) /* 2 and 3 end: 5 comes in and fills a batch with 4; 6 in */
      ck_assert_int_eq(actio_future_resolve(r.fut[1], NULL, NULL), 0);
  }
  /* In flight: 0 1, 4 5; formed, not sent: 6; waiting for room: 7. */
  ck_assert_uint_eq(batches(&r), 3);
  ck_assert_int_eq(r.first[2][0], 4);
  ck_assert_int_eq(r.first[2][1], 5);
  ck_assert_uint_eq(actio_batcher_pending(b), 5);
  actio_batcher_destroy(b);
  for (int i = 0; i < 8; i++) {
    ck_assert_int_eq(atomic_load(&ends[i]), 1);
    ck_assert_int_eq(actio_future_status(f[i]), i == 2 || i == 3 ? 0 : ACTIO_ECANCELED);
    actio_future_unref(f[i]);
  }
  ck_assert_int_eq(actio_future_status(r.fut[0]), ACTIO_ECANCELED); /* told */
  ck_assert_int_eq(actio_future_status(r.fut[2]), ACTIO_ECANCELED);
  ck_assert_uint_eq(batches(&r), 3);
  ck_assert_uint_eq(atomic_load(&freed), 8);
  rec_done(&r);
}
END_TEST

START_TEST(an_idle_batcher_sends_at_once_a_busy_one_collects) {
  rec r = {.mu = PTHREAD_MUTEX_INITIALIZER};
  actio_batcher *b;
  atomic_store(&freed, 0);
  actio_batcher_opts o = {.max_items = 4, .max_wait_ms = FOREVER_MS, .item_free = item_free};
  ck_assert_int_eq(actio_batcher_create(rt, &o, record, &r, &b), 0); /* eager: the default */
  actio_future *f[12];
  f[0] = add(b, 0, ACTIO_BATCH_NOWAIT);
  ck_assert_uint_eq(batches(&r), 1); /* nothing in flight: sent alone, at once */
  ck_assert_uint_eq(r.sizes[0], 1);
  for (int i = 1; i < 4; i++)
    f[i] = add(b, i, ACTIO_BATCH_NOWAIT);
  ck_assert_uint_eq(batches(&r), 1); /* one in flight: 1-3 collect */
  ck_assert_int_eq(actio_future_resolve(r.fut[0], NULL, NULL), 0);
  ck_assert_uint_eq(batches(&r), 2); /* its end sent what collected */
  ck_assert_uint_eq(r.sizes[1], 3);
  for (int i = 0; i < 3; i++)
    ck_assert_int_eq(r.first[1][i], i + 1);
  ck_assert_int_eq(actio_future_wait(f[0], 0), 0);
  /* Busy, max_items still bounds a batch: 4-7 fill one, which goes. */
  for (int i = 4; i < 9; i++)
    f[i] = add(b, i, ACTIO_BATCH_NOWAIT);
  ck_assert_uint_eq(batches(&r), 3);
  ck_assert_uint_eq(r.sizes[2], 4);
  ck_assert_int_eq(r.first[2][0], 4);
  ck_assert_int_eq(actio_future_resolve(r.fut[2], NULL, NULL), 0);
  ck_assert_uint_eq(batches(&r), 3); /* batch 2 still in flight: 8 waits */
  ck_assert_int_eq(actio_future_resolve(r.fut[1], NULL, NULL), 0);
  ck_assert_uint_eq(batches(&r), 4);
  ck_assert_uint_eq(r.sizes[3], 1);
  ck_assert_int_eq(r.first[3][0], 8);
  ck_assert_int_eq(actio_future_resolve(r.fut[3], NULL, NULL), 0);
  all_resolved_then_destroy(b, &r, f, 9);
}
END_TEST

START_TEST(eager_sets_how_many_batches_fly_before_items_collect) {
  rec r = {.mu = PTHREAD_MUTEX_INITIALIZER};
  actio_batcher *b;
  actio_batcher_opts o = {.max_items = 8, .max_wait_ms = FOREVER_MS, .eager = 3};
  ck_assert_int_eq(actio_batcher_create(rt, &o, record, &r, &b), 0);
  actio_future *f[6];
  for (int i = 0; i < 6; i++)
    f[i] = add(b, i, ACTIO_BATCH_NOWAIT);
  ck_assert_uint_eq(batches(&r), 3); /* 0, 1 and 2 alone; 3-5 collect */
  for (size_t k = 0; k < 3; k++)
    ck_assert_uint_eq(r.sizes[k], 1);
  ck_assert_int_eq(actio_future_resolve(r.fut[1], NULL, NULL), 0);
  ck_assert_uint_eq(batches(&r), 4);
  ck_assert_uint_eq(r.sizes[3], 3);
  ck_assert_int_eq(r.first[3][0], 3);
  ck_assert_int_eq(r.first[3][2], 5);
  /* A flush sends whatever is there, in flight or not: here nothing. */
  ck_assert_int_eq(actio_batcher_flush(b), 0);
  ck_assert_uint_eq(batches(&r), 4);
  for (size_t k = 0; k < 4; k++)
    if (k != 1)
      ck_assert_int_eq(actio_future_resolve(r.fut[k], NULL, NULL), 0);
  for (int i = 0; i < 6; i++) {
    ck_assert_int_eq(actio_future_wait(f[i], 0), 0);
    actio_future_unref(f[i]);
  }
  actio_batcher_destroy(b);
  rec_done(&r);
}
END_TEST

/* Items added inside a burst of completions (actors/core/burst.h: a file
 * group's) go as one batch at its end, not the first alone; outside a
 * burst, or with a batch in flight, the rules stay as they were. */
START_TEST(a_burst_goes_as_one_batch) {
  rec r = {.mu = PTHREAD_MUTEX_INITIALIZER};
  actio_batcher *b;
  atomic_store(&freed, 0);
  actio_batcher_opts o = {.max_items = 4, .max_wait_ms = FOREVER_MS, .item_free = item_free};
  ck_assert_int_eq(actio_batcher_create(rt, &o, record, &r, &b), 0);
  actio_future *f[10];
  actio__burst_begin();
  actio__burst_begin(); /* nested: the outermost end sends */
  for (int i = 0; i < 3; i++)
    f[i] = add(b, i, ACTIO_BATCH_NOWAIT);
  actio__burst_end();
  ck_assert_uint_eq(batches(&r), 0); /* idle, but held to the burst's end */
  actio__burst_end();
  ck_assert_uint_eq(batches(&r), 1);
  ck_assert_uint_eq(r.sizes[0], 3);
  /* A burst of more than max_items: full batches go at once, the rest at
   * its end (behind the one in flight, so it collects: eager 1). */
  actio__burst_begin();
  for (int i = 3; i < 9; i++)
    f[i] = add(b, i, ACTIO_BATCH_NOWAIT);
  ck_assert_uint_eq(batches(&r), 2);
  ck_assert_uint_eq(r.sizes[1], 4);
  actio__burst_end();
  ck_assert_uint_eq(batches(&r), 2);
  ck_assert_int_eq(actio_future_resolve(r.fut[0], NULL, NULL), 0);
  ck_assert_int_eq(actio_future_resolve(r.fut[1], NULL, NULL), 0);
  ck_assert_uint_eq(batches(&r), 3); /* 7 and 8 */
  ck_assert_uint_eq(r.sizes[2], 2);
  ck_assert_int_eq(actio_future_resolve(r.fut[2], NULL, NULL), 0);
  f[9] = add(b, 9, ACTIO_BATCH_NOWAIT); /* no burst: at once, alone */
  ck_assert_uint_eq(batches(&r), 4);
  ck_assert_uint_eq(r.sizes[3], 1);
  ck_assert_int_eq(actio_future_resolve(r.fut[3], NULL, NULL), 0);
  all_resolved_then_destroy(b, &r, f, 10);
  /* Destroyed inside the burst that holds its batch: the items are
   * cancelled, and the burst's end has nothing left to run. */
  rec r2 = {.mu = PTHREAD_MUTEX_INITIALIZER};
  ck_assert_int_eq(actio_batcher_create(rt, &o, record, &r2, &b), 0);
  actio__burst_begin();
  actio_future *g = add(b, 0, ACTIO_BATCH_NOWAIT);
  actio_batcher_destroy(b);
  actio__burst_end();
  ck_assert_int_eq(actio_future_wait(g, 0), ACTIO_ECANCELED);
  actio_future_unref(g);
  ck_assert_uint_eq(batches(&r2), 0);
}
END_TEST

/* A thread that blocks inside a burst first sends what the burst holds:
 * a completion in a file group's burst that waits for its own row's batch
 * would otherwise wait for the burst's end, which waits for it. */
START_TEST(a_wait_inside_a_burst_sends_what_it_holds) {
  rec r = {.mu = PTHREAD_MUTEX_INITIALIZER, .now = 1};
  actio_batcher *b;
  atomic_store(&freed, 0);
  actio_batcher_opts o = {.max_items = 4, .max_wait_ms = FOREVER_MS, .item_free = item_free};
  ck_assert_int_eq(actio_batcher_create(rt, &o, record, &r, &b), 0);
  actio_future *f[3];
  actio__burst_begin();
  f[0] = add(b, 0, ACTIO_BATCH_NOWAIT);
  f[1] = add(b, 1, ACTIO_BATCH_NOWAIT);
  ck_assert_int_eq(actio_future_wait(f[0], 0), ACTIO_EPENDING); /* a poll sends nothing */
  ck_assert_uint_eq(batches(&r), 0);
  /* Resolved at once once sent (`now`); it hung before. The bound only
   * turns a hang into a failure. */
  ck_assert_int_eq(actio_future_wait(f[0], 60000), 0);
  ck_assert_uint_eq(batches(&r), 1);
  ck_assert_uint_eq(r.sizes[0], 2);
  /* The burst stays open: what comes next is held to its end again. */
  f[2] = add(b, 2, ACTIO_BATCH_NOWAIT);
  ck_assert_uint_eq(batches(&r), 1);
  actio__burst_end();
  ck_assert_uint_eq(batches(&r), 2);
  all_resolved_then_destroy(b, &r, f, 3);
}
END_TEST

/* An actor whose handler waits for the future in its state (a test's
 * stand-in for a consumer that cannot go on until a batch is sent). */
typedef struct gate {
  actio_future *g;
  atomic_int started;
} gate;
static int wait_gate(actio_actor *self, void *worker, void *msg, actio_future *reply) {
  (void)worker, (void)msg, (void)reply;
  gate *gt = actio_actor_state(self);
  atomic_store(&gt->started, 1);
  return actio_future_wait(gt->g, -1) == 0 ? 0 : ACTIO_EFATAL;
}

/* A send that waits for room inside a burst first sends what the burst
 * holds: here the mailbox drains only once the batch has gone. */
START_TEST(a_send_waiting_inside_a_burst_sends_what_it_holds) {
  rec r = {.mu = PTHREAD_MUTEX_INITIALIZER, .now = 1};
  actio_batcher *b;
  atomic_store(&freed, 0);
  actio_batcher_opts o = {.max_items = 4, .max_wait_ms = FOREVER_MS, .item_free = item_free};
  ck_assert_int_eq(actio_batcher_create(rt, &o, record, &r, &b), 0);
  static const actio_behavior waiting = {.handle = wait_gate};
  gate gt = {0};
  actio_actor *a;
  ck_assert_int_eq(actio_actor_spawn(rt, &waiting,
                                     &(actio_actor_opts){.state = &gt, .workers = 1, .capacity = 2},
                                     &a), 0);
  actio__burst_begin();
  actio_future *f[1];
  f[0] = gt.g = add(b, 0, ACTIO_BATCH_NOWAIT);
  ck_assert_int_eq(actio_tell(a, NULL, 0), 0);
  while (!atomic_load(&gt.started)) /* the worker waits on the batch */
    sched_yield();
  int sent = 0;
  while (actio_tell(a, NULL, 0) == 0) /* then the mailbox fills */
    sent++;
  ck_assert_int_ge(sent, 1);
  ck_assert_uint_eq(batches(&r), 0);
  ck_assert_int_eq(actio_tell(a, NULL, -1), 0); /* hung before */
  ck_assert_uint_eq(batches(&r), 1);
  actio__burst_end();
  ck_assert_int_eq(actio_actor_stop(a, ACTIO_STOP_DRAIN), 0);
  all_resolved_then_destroy(b, &r, f, 1);
}
END_TEST

static void *destroy_on_a_thread(void *b) {
  actio_batcher_destroy(b);
  return NULL;
}

typedef struct adder {
  actio_batcher *b;
  actio_future *f;
} adder;

static void *add_on_a_thread(void *arg) {
  adder *ad = arg;
  ad->f = add(ad->b, 1, ACTIO_BATCH_NOWAIT);
  return NULL;
}

/* The batch a burst holds, reached from another thread (no burst there):
 * an add there sends it at once, the burst's end then finding nothing to
 * send; a destroy there waits for the burst's end (its hook is not on that
 * thread's list) once it cancelled the items; racing it, the end may send
 * the batch first, which the destroy then cancels. */
START_TEST(a_burst_s_batcher_from_another_thread) {
  rec r = {.mu = PTHREAD_MUTEX_INITIALIZER};
  actio_batcher *b;
  atomic_store(&freed, 0);
  actio_batcher_opts o = {.max_items = 4, .max_wait_ms = FOREVER_MS, .item_free = item_free};
  ck_assert_int_eq(actio_batcher_create(rt, &o, record, &r, &b), 0);
  actio__burst_begin();
  actio_future *f[2];
  f[0] = add(b, 0, ACTIO_BATCH_NOWAIT);
  adder ad = {.b = b};
  pthread_t th;
  ck_assert_int_eq(pthread_create(&th, NULL, add_on_a_thread, &ad), 0);
  ck_assert_int_eq(pthread_join(th, NULL), 0);
  f[1] = ad.f;
  ck_assert_uint_eq(batches(&r), 1); /* both, sent by the other thread */
  ck_assert_uint_eq(r.sizes[0], 2);
  actio__burst_end();
  ck_assert_uint_eq(batches(&r), 1);
  ck_assert_int_eq(actio_future_resolve(r.fut[0], NULL, NULL), 0);
  all_resolved_then_destroy(b, &r, f, 2);
  for (int round = 0; round < 200; round++) {
    rec r2 = {.mu = PTHREAD_MUTEX_INITIALIZER};
    ck_assert_int_eq(actio_batcher_create(rt, &o, record, &r2, &b), 0);
    actio__burst_begin();
    actio_future *g = add(b, 0, ACTIO_BATCH_NOWAIT);
    ck_assert_int_eq(pthread_create(&th, NULL, destroy_on_a_thread, b), 0);
    /* The destroy is past its cancels: it waits. (Polled: a blocking wait
     * would send what the burst holds first.) */
    while (round % 2 == 0 && actio_future_wait(g, 0) == ACTIO_EPENDING)
      sched_yield();
    actio__burst_end();
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_int_eq(actio_future_wait(g, 0), ACTIO_ECANCELED);
    actio_future_unref(g);
    /* Racing, the burst's end may send it first (the destroy cancels it). */
    ck_assert_uint_le(batches(&r2), round % 2);
    rec_done(&r2);
  }
}
END_TEST

START_TEST(max_wait_bounds_a_batch_behind_a_busy_one) {
  rec r = {.mu = PTHREAD_MUTEX_INITIALIZER, .now_after_first = 1};
  actio_batcher *b;
  actio_batcher_opts o = {.max_items = 100, .max_wait_ms = 1};
  ck_assert_int_eq(actio_batcher_create(rt, &o, record, &r, &b), 0);
  actio_future *f[3];
  for (int i = 0; i < 3; i++)
    f[i] = add(b, i, ACTIO_BATCH_NOWAIT);
  for (int i = 1; i < 3; i++) /* the timer sends them: wait for that */
    ck_assert_int_eq(actio_future_wait(f[i], -1), 0);
  ck_assert_int_eq(actio_future_status(f[0]), ACTIO_EPENDING);
  ck_assert_uint_eq(r.sizes[0], 1);
  ck_assert_uint_eq(items_sent(&r, 1), 2); /* not full, batch 0 in flight: by time */
  ck_assert_int_eq(actio_future_resolve(r.fut[0], NULL, NULL), 0);
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(actio_future_wait(f[i], 0), 0);
    actio_future_unref(f[i]);
  }
  actio_batcher_destroy(b);
  actio_future_unref(r.fut[0]);
}
END_TEST

/* ---- batches done at once: a loop, not a recursion ---- */

enum { DEEP = 4000 };

typedef struct flat {
  actio_future *held;     /* the first batch's future */
  size_t calls;
  uintptr_t lo, hi;       /* the function's frames, lowest and highest */
} flat;

/* Holds the first batch; answers the others at once, noting its frame. */
static int flat_fn(actio_batch *batch, void *arg, actio_future **out) {
  flat *s = arg;
  ck_assert_uint_eq(actio_batch_count(batch), 1);
  uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
  if (s->calls++ == 0) {
    ck_assert_int_eq(actio_future_create(out), 0);
    actio_future_ref(*out);
    s->held = *out;
    return 0;
  }
  s->lo = s->lo == 0 || sp < s->lo ? sp : s->lo;
  s->hi = sp > s->hi ? sp : s->hi;
  return actio_future_resolved(out, NULL, NULL);
}

START_TEST(batches_done_at_once_leave_the_stack_flat) {
  /* One item a batch and room for one: when the first batch ends, each of
   * the DEEP items waiting gets in, is sent and ends at once, letting the
   * next in. Sent from within the previous send, that would be DEEP
   * frames deep. Both policies. */
  int policies[] = {0, ACTIO_BATCH_TIMED};
  for (size_t p = 0; p < 2; p++) {
    flat s = {0};
    actio_batcher *b;
    atomic_store(&freed, 0);
    actio_batcher_opts o = {.max_items = 1, .capacity = 1, .max_waiting = DEEP,
                            .max_wait_ms = FOREVER_MS, .item_free = item_free,
                            .eager = policies[p]};
    ck_assert_int_eq(actio_batcher_create(rt, &o, flat_fn, &s, &b), 0);
    actio_future **f = malloc(DEEP * sizeof *f);
    for (int i = 0; i < DEEP; i++)
      f[i] = add(b, i, ACTIO_BATCH_WAIT);
    ck_assert_uint_eq(s.calls, 1); /* the rest wait for room */
    ck_assert_int_eq(actio_future_resolve(s.held, NULL, NULL), 0);
    ck_assert_uint_eq(s.calls, DEEP); /* all sent on this thread, in the resolve */
    ck_assert_uint_lt(s.hi - s.lo, 4096);
    for (int i = 0; i < DEEP; i++) {
      ck_assert_int_eq(actio_future_wait(f[i], 0), 0);
      actio_future_unref(f[i]);
    }
    free(f);
    ck_assert_uint_eq(atomic_load(&freed), DEEP);
    actio_batcher_destroy(b);
    actio_future_unref(s.held);
  }
}
END_TEST

START_TEST(bad_arguments_are_refused) {
  actio_batcher *b = NULL;
  actio_future *f = NULL;
  rec r = {.mu = PTHREAD_MUTEX_INITIALIZER};
  ck_assert_int_eq(actio_batcher_create(NULL, NULL, record, &r, &b), ACTIO_EINVAL);
  ck_assert_int_eq(actio_batcher_create(rt, NULL, NULL, &r, &b), ACTIO_EINVAL);
  ck_assert_int_eq(actio_batcher_create(rt, &(actio_batcher_opts){.max_wait_ms = -1}, record,
                                        &r, &b), ACTIO_EINVAL);
  ck_assert_int_eq(actio_batcher_create(rt, &(actio_batcher_opts){.max_items = 8, .capacity = 4},
                                        record, &r, &b), ACTIO_EINVAL);
  ck_assert_int_eq(actio_batcher_create(rt, &(actio_batcher_opts){.eager = -2}, record, &r, &b),
                   ACTIO_EINVAL);
  ck_assert_int_eq(actio_batcher_create(rt, NULL, record, &r, &b), 0);
  ck_assert_int_eq(actio_batcher_add(b, NULL, ACTIO_BATCH_NOWAIT, &f), ACTIO_EINVAL);
  ck_assert_int_eq(actio_batcher_add(b, &items[0], 7, &f), ACTIO_EINVAL);
  ck_assert_int_eq(actio_batcher_add(b, &items[0], ACTIO_BATCH_NOWAIT, NULL), ACTIO_EINVAL);
  ck_assert_int_eq(actio_batcher_flush(NULL), ACTIO_EINVAL);
  ck_assert_ptr_null(f);
  actio_batcher_destroy(b);
  actio_batcher_destroy(NULL);
  ck_assert_uint_eq(batches(&r), 0);
}
END_TEST

/* ---- two producers under stress ---- */

enum { PER_PRODUCER = 2000 };
static int sitems[2 * PER_PRODUCER];
static atomic_int sends[2 * PER_PRODUCER];

/* Answers at once, after a sleep on the timer, or failed; fails every
 * 7th item on its own. */
static int stress_fn(actio_batch *batch, void *arg, actio_future **out) {
  (void)arg;
  size_t n = actio_batch_count(batch);
  int first = *(int *)actio_batch_item(batch, 0);
  for (size_t i = 0; i < n; i++) {
    int v = *(int *)actio_batch_item(batch, i);
    atomic_fetch_add_explicit(&sends[v], 1, memory_order_relaxed);
    if (v % 7 == 0)
      actio_batch_fail_item(batch, i, ACTIO_ESQL, "item %d", v);
  }
  switch (first % 3) {
  case 0: return actio_future_resolved(out, NULL, NULL);
  case 1: return actio_sleep(rt, first % 2, out);
  default: return actio_future_failed(out, ACTIO_ECONN, "batch of %d", first);
  }
}

static void stress_free(void *item) {
  (void)item;
  atomic_fetch_add_explicit(&freed, 1, memory_order_relaxed);
}

typedef struct producer {
  actio_batcher *b;
  int base;
} producer;

static void *produce(void *arg) {
  producer *p = arg;
  actio_future **fs = malloc(PER_PRODUCER * sizeof *fs);
  for (int i = 0; i < PER_PRODUCER; i++) {
    int v = p->base + i;
    sitems[v] = v;
    ck_assert_int_eq(actio_batcher_add(p->b, &sitems[v], ACTIO_BATCH_WAIT, &fs[i]), 0);
    if (v % 11 == 0)
      actio_future_cancel(fs[i]);
  }
  for (int i = 0; i < PER_PRODUCER; i++) {
    int v = p->base + i, st = actio_future_wait(fs[i], -1);
    int sent = atomic_load_explicit(&sends[v], memory_order_relaxed);
    ck_assert_int_le(sent, 1);
    if (st == ACTIO_ECANCELED)
      ck_assert_int_eq(v % 11, 0);
    else if (v % 7 == 0)
      ck_assert_int_eq(st, ACTIO_ESQL);
    else
      ck_assert(st == 0 || st == ACTIO_ECONN);
    if (st != ACTIO_ECANCELED)
      ck_assert_int_eq(sent, 1);
    actio_future_unref(fs[i]);
  }
  free(fs);
  return NULL;
}

static const int stress_eager[] = {ACTIO_BATCH_TIMED, 0, 3};

START_TEST(two_producers_each_item_ends_once) {
  actio_batcher *b;
  atomic_store(&freed, 0);
  for (int i = 0; i < 2 * PER_PRODUCER; i++)
    atomic_store(&sends[i], 0);
  actio_batcher_opts o = {.max_items = 16, .capacity = 48, .max_waiting = 2 * PER_PRODUCER,
                          .max_wait_ms = 1, .item_free = stress_free,
                          .eager = stress_eager[_i]};
  ck_assert_int_eq(actio_batcher_create(rt, &o, stress_fn, NULL, &b), 0);
  producer p[2] = {{b, 0}, {b, PER_PRODUCER}};
  pthread_t t[2];
  start_threads(t, 2, produce, p, sizeof p[0]);
  join_threads(t, 2);
  ck_assert_uint_eq(actio_batcher_pending(b), 0);
  actio_batcher_destroy(b);
  ck_assert_uint_eq(atomic_load(&freed), 2 * PER_PRODUCER);
}
END_TEST

int main(void) {
  Suite *s = suite_create("batch");
  TCase *tc = tcase_with_timeout("batcher", 120);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, a_batch_goes_when_full);
  tcase_add_test(tc, a_batch_goes_when_its_time_is_up);
  tcase_add_test(tc, a_flush_sends_what_is_there);
  tcase_add_test(tc, each_item_takes_its_own_outcome);
  tcase_add_test(tc, a_failed_batch_fails_its_items);
  tcase_add_test(tc, a_cancelled_item_is_left_out_or_dropped);
  tcase_add_test(tc, a_full_batcher_refuses_or_makes_the_caller_wait);
  tcase_add_test(tc, adds_waiting_for_room_are_bounded);
  tcase_add_test(tc, destroy_cancels_each_item_once);
  tcase_add_test(tc, an_idle_batcher_sends_at_once_a_busy_one_collects);
  tcase_add_test(tc, eager_sets_how_many_batches_fly_before_items_collect);
  tcase_add_test(tc, a_burst_goes_as_one_batch);
  tcase_add_test(tc, a_burst_s_batcher_from_another_thread);
  tcase_add_test(tc, a_wait_inside_a_burst_sends_what_it_holds);
  tcase_add_test(tc, a_send_waiting_inside_a_burst_sends_what_it_holds);
  tcase_add_test(tc, max_wait_bounds_a_batch_behind_a_busy_one);
  tcase_add_test(tc, batches_done_at_once_leave_the_stack_flat);
  tcase_add_test(tc, bad_arguments_are_refused);
  tcase_add_loop_test(tc, two_producers_each_item_ends_once, 0, 3);
  suite_add_tcase(s, tc);
  return run_suite(s);
}

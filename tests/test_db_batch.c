/* test_db_batch.c: the database actor's batches (executemany, a batch of
 * different statements: all or nothing), streamed rows and cursors,
 * against a real PostgreSQL started for the suite (tests/pg_server.sh). */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "actio.h"
#include "db_test.h"
#include "pg_server.h"


/* Sanitizers make millions of rows take minutes: they stream fewer. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif


/* Waits until a query like pattern is in state `state` on the server, or
 * (wait_event non-NULL) waits on that event. */
static void await_server(actio_actor *a, const char *pattern, const char *wait_event) {
  const char *p[] = {pattern, wait_event ? wait_event : "%"};
  for (;;) {
    actio_future *f;
    ck_assert_int_eq(actio_db_query(a, "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                                       "AND query LIKE $1 AND coalesce(wait_event, '') LIKE $2 "
                                       "AND pid <> pg_backend_pid()",
                                    2, p, &f), 0);
    int64_t n = 0;
    ck_assert_int_eq(actio_db_int64(expect(f, 0), 0, 0, &n), 0);
    actio_future_unref(f);
    if (n > 0)
      return;
    sched_yield();
  }
}

/* The peak resident set of this process, in kB (VmHWM). */
static long peak_rss_kb(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = -1;
  while (f != NULL && fgets(line, sizeof line, f) != NULL)
    if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
      break;
  if (f != NULL)
    fclose(f);
  return kb;
}

/* Row-major values (id, v) for n rows, ids from `first`; id `dup_at` row
 * repeats row 0's id. Freed with free_rows. */
static char **make_rows(size_t n, long first, long dup_at) {
  char **v = malloc(n * 2 * sizeof *v);
  for (size_t i = 0; i < n; i++) {
    long id = (long)i == dup_at ? first : first + (long)i;
    ck_assert_int_ge(asprintf(&v[2 * i], "%ld", id), 0);
    ck_assert_int_ge(asprintf(&v[2 * i + 1], "value %zu", i), 0);
  }
  return v;
}

static void free_rows(char **v, size_t n) {
  for (size_t i = 0; i < 2 * n; i++)
    free(v[i]);
  free(v);
}

/* ---- executemany ---- */

START_TEST(test_executemany_all_or_nothing) {
  run(db, "DROP TABLE IF EXISTS many_t");
  run(db, "CREATE TABLE many_t (id int PRIMARY KEY, v text)");
  /* Row 37 repeats row 0's key: nothing of the 100 rows stays. */
  char **v = make_rows(100, 1, 37);
  actio_future *f;
  ck_assert_int_eq(actio_db_executemany(db, "INSERT INTO many_t VALUES ($1, $2)", 2, 100,
                                        (const char *const *)v, &f), 0);
  expect(f, ACTIO_ESQL);
  ck_assert_int_eq(actio_db_batch_index(f), 37);
  ck_assert_ptr_nonnull(strstr(actio_future_errmsg(f), "row 37: 23505"));
  ck_assert_str_eq(actio_db_error_get(f)->sqlstate, "23505");
  actio_future_unref(f);
  free_rows(v, 100);
  ck_assert_int_eq(scalar(db, "SELECT count(*) FROM many_t"), 0);
  /* 10,000 rows in one unit: each row affects one, all stay. */
  v = make_rows(10000, 1, -1);
  ck_assert_int_eq(actio_db_executemany(db, "INSERT INTO many_t VALUES ($1, $2)", 2, 10000,
                                        (const char *const *)v, &f), 0);
  expect(f, 0);
  const actio_db_batch_result *b = actio_future_value(f);
  ck_assert_uint_eq(actio_db_batch_count(b), 10000);
  ck_assert_uint_eq(actio_db_batch_affected(b), 10000);
  ck_assert_uint_eq(actio_db_batch_affected_at(b, 9999), 1);
  ck_assert_uint_eq(actio_db_batch_affected_at(b, 10000), 0);
  ck_assert_ptr_null(actio_db_batch_result_at(b, 0)); /* executemany keeps counts */
  ck_assert_int_eq(actio_db_batch_index(f), -1);
  actio_future_unref(f);
  free_rows(v, 10000);
  ck_assert_int_eq(scalar(db, "SELECT count(*) FROM many_t"), 10000);
  ck_assert_int_eq(scalar(db, "SELECT count(DISTINCT v) FROM many_t"), 10000);
  /* The last row failing: still nothing (the new ids 20001.. do not stay). */
  v = make_rows(50, 20001, 49);
  free(v[98]);
  v[98] = strdup("1"); /* row 49's id collides with a row already there */
  ck_assert_int_eq(actio_db_executemany(db, "INSERT INTO many_t VALUES ($1, $2)", 2, 50,
                                        (const char *const *)v, &f), 0);
  expect(f, ACTIO_ESQL);
  ck_assert_int_eq(actio_db_batch_index(f), 49);
  actio_future_unref(f);
  free_rows(v, 50);
  ck_assert_int_eq(scalar(db, "SELECT count(*) FROM many_t WHERE id > 20000"), 0);
  run(db, "DROP TABLE many_t");
}
END_TEST

typedef struct rowgen {
  char ids[64][16];
  const char *vals[64][2];
} rowgen;

static const char *const *gen_row(void *arg, size_t i) {
  rowgen *g = arg;
  if (i >= 64)
    return NULL;
  snprintf(g->ids[i], sizeof g->ids[i], "%zu", i + 1);
  g->vals[i][0] = g->ids[i];
  g->vals[i][1] = i % 2 ? NULL : "even"; /* NULL is SQL NULL */
  return g->vals[i];
}

START_TEST(test_executemany_fn_and_bad_input) {
  run(db, "DROP TABLE IF EXISTS many_fn");
  run(db, "CREATE TABLE many_fn (id int PRIMARY KEY, v text)");
  rowgen g;
  actio_future *f = NULL;
  ck_assert_int_eq(actio_db_executemany_fn(db, "INSERT INTO many_fn VALUES ($1, $2)", 2, 64,
                                           gen_row, &g, &f), 0);
  expect(f, 0);
  ck_assert_uint_eq(actio_db_batch_affected(actio_future_value(f)), 64);
  actio_future_unref(f);
  ck_assert_int_eq(scalar(db, "SELECT count(*) FROM many_fn WHERE v IS NULL"), 32);
  /* Bad input: refused at the call, no future made. */
  const char *one[] = {"1"};
  f = NULL;
  ck_assert_int_eq(actio_db_executemany(db, "SELECT $1", 1, 0, one, &f), ACTIO_EINVAL);
  ck_assert_int_eq(actio_db_executemany(db, NULL, 1, 1, one, &f), ACTIO_EINVAL);
  ck_assert_int_eq(actio_db_executemany(db, "SELECT $1", -1, 1, one, &f), ACTIO_EINVAL);
  ck_assert_int_eq(actio_db_executemany(db, "SELECT $1", 1, 1, NULL, &f), ACTIO_EINVAL);
  ck_assert_int_eq(actio_db_executemany(db, "SELECT $1", 1, 1, one, NULL), ACTIO_EINVAL);
  ck_assert_int_eq(actio_db_executemany(NULL, "SELECT $1", 1, 1, one, &f), ACTIO_EINVAL);
  ck_assert_int_eq(actio_db_executemany(db, " /* c */ commit", 0, 1, NULL, &f), ACTIO_EINVAL);
  ck_assert_int_eq(actio_db_executemany(db, "BEGIN", 0, 1, NULL, &f), ACTIO_EINVAL);
  ck_assert_int_eq(actio_db_executemany_fn(db, "SELECT $1", 1, 65, gen_row, &g, &f),
                   ACTIO_EINVAL); /* row 64 refused by the generator */
  ck_assert_int_eq(actio_db_executemany_fn(db, "SELECT $1", 1, 1, NULL, &g, &f), ACTIO_EINVAL);
  actio_actor *files;
  ck_assert_int_eq(actio_file_spawn(rt, NULL, &files), 0);
  ck_assert_int_eq(actio_db_executemany(files, "SELECT $1", 1, 1, one, &f), ACTIO_EINVAL);
  ck_assert_ptr_null(f);
  /* A statement that fails to parse: its error, no row's index. */
  ck_assert_int_eq(actio_db_executemany(db, "INSERT INTO no_such_table VALUES ($1)", 1, 1,
                                        one, &f), 0);
  expect(f, ACTIO_ESQL);
  ck_assert_str_eq(actio_db_error_get(f)->sqlstate, "42P01");
  actio_future_unref(f);
  run(db, "DROP TABLE many_fn");
}
END_TEST

/* ---- batches of different statements ---- */

/* Units pipelined behind a batch on its connection leave the session busy,
 * not in a transaction block: the batch succeeds (it read as an open
 * transaction, and the connection was closed under the others). */
START_TEST(test_executemany_pipelined_behind_each_other) {
  actio_actor *one = spawn((actio_db_opts){.max_connections = 1, .workers = 1});
  run(one, "DROP TABLE IF EXISTS many_pipe");
  run(one, "CREATE TABLE many_pipe (id int PRIMARY KEY, v text)");
  enum { UNITS = 40, ROWS = 20 };
  actio_future *f[UNITS];
  for (int u = 0; u < UNITS; u++) {
    char **v = make_rows(ROWS, 1 + u * ROWS, -1);
    ck_assert_int_eq(actio_db_executemany(one, "INSERT INTO many_pipe VALUES ($1, $2)", 2, ROWS,
                                          (const char *const *)v, &f[u]), 0);
    free_rows(v, ROWS);
  }
  for (int u = 0; u < UNITS; u++) {
    expect(f[u], 0);
    actio_future_unref(f[u]);
  }
  ck_assert_int_eq(scalar(one, "SELECT count(*) FROM many_pipe"), UNITS * ROWS);
  run(one, "DROP TABLE many_pipe");
}
END_TEST

START_TEST(test_batch_mixed) {
  run(db, "DROP TABLE IF EXISTS mixed_t");
  run(db, "CREATE TABLE mixed_t (id int PRIMARY KEY, v text)");
  const char *a[] = {"1", "one"}, *b[] = {"2", "two"}, *up[] = {"uno", "1"};
  actio_db_request q[] = {
      {.sql = "INSERT INTO mixed_t VALUES ($1, $2)", .nparams = 2, .params = a},
      {.sql = "INSERT INTO mixed_t VALUES ($1, $2)", .nparams = 2, .params = b},
      {.sql = "UPDATE mixed_t SET v = $1 WHERE id = $2::int", .nparams = 2, .params = up},
      {.sql = "SELECT id, v FROM mixed_t ORDER BY id"},
  };
  actio_future *f;
  ck_assert_int_eq(actio_db_batch(db, q, 4, &f), 0);
  expect(f, 0);
  const actio_db_batch_result *r = actio_future_value(f);
  ck_assert_uint_eq(actio_db_batch_count(r), 4);
  ck_assert_uint_eq(actio_db_batch_affected_at(r, 2), 1);
  const actio_db_result *sel = actio_db_batch_result_at(r, 3);
  ck_assert_uint_eq(actio_db_rows(sel), 2); /* it sees the batch's own rows */
  const char *t;
  ck_assert_int_eq(actio_db_text(sel, 0, 1, &t), 0);
  ck_assert_str_eq(t, "uno");
  ck_assert_str_eq(actio_db_command_tag(actio_db_batch_result_at(r, 0)), "INSERT 0 1");
  actio_future_unref(f);
  /* Statement 2 fails (division by zero): 0 and 1 are undone. */
  const char *c[] = {"3", "three"};
  actio_db_request bad[] = {
      {.sql = "INSERT INTO mixed_t VALUES ($1, $2)", .nparams = 2, .params = c},
      {.sql = "DELETE FROM mixed_t WHERE id = 1"},
      {.sql = "SELECT 1 / 0"},
      {.sql = "DELETE FROM mixed_t"},
  };
  ck_assert_int_eq(actio_db_batch(db, bad, 4, &f), 0);
  expect(f, ACTIO_ESQL);
  ck_assert_int_eq(actio_db_batch_index(f), 2);
  ck_assert_ptr_nonnull(strstr(actio_future_errmsg(f), "SELECT 1 / 0: statement 2: 22012"));
  actio_future_unref(f);
  ck_assert_int_eq(scalar(db, "SELECT count(*) FROM mixed_t"), 2);
  ck_assert_int_eq(scalar(db, "SELECT count(*) FROM mixed_t WHERE id = 3"), 0);
  /* Bad input. */
  f = NULL;
  actio_db_request txn[] = {{.sql = "SELECT 1"}, {.sql = "ROLLBACK"}};
  ck_assert_int_eq(actio_db_batch(db, txn, 2, &f), ACTIO_EINVAL);
  ck_assert_int_eq(actio_db_batch(db, q, 0, &f), ACTIO_EINVAL);
  ck_assert_int_eq(actio_db_batch(db, NULL, 1, &f), ACTIO_EINVAL);
  const uint32_t types[] = {23, 25};
  actio_db_request typed[] = {{.sql = "SELECT $1, $2", .nparams = 2, .params = a, .types = types}};
  ck_assert_int_eq(actio_db_batch(db, typed, 1, &f), ACTIO_EINVAL);
  actio_db_request nosql[] = {{.sql = NULL}};
  ck_assert_int_eq(actio_db_batch(db, nosql, 1, &f), ACTIO_EINVAL);
  ck_assert_ptr_null(f);
  run(db, "DROP TABLE mixed_t");
}
END_TEST

START_TEST(test_batch_cancelled_mid_way) {
  actio_actor *one = spawn((actio_db_opts){.max_connections = 1, .workers = 1});
  actio_actor *probe = spawn((actio_db_opts){.max_connections = 1, .workers = 1});
  run(one, "DROP TABLE IF EXISTS cancel_t");
  run(one, "CREATE TABLE cancel_t (id int)");
  actio_db_request q[] = {
      {.sql = "INSERT INTO cancel_t VALUES (1)"},
      {.sql = "SELECT pg_sleep(60), 'batch_cancel_mark'"},
      {.sql = "INSERT INTO cancel_t VALUES (2)"},
  };
  actio_future *f, *behind;
  ck_assert_int_eq(actio_db_batch(one, q, 3, &f), 0);
  ck_assert_int_eq(actio_db_query(one, "SELECT 7", 0, NULL, &behind), 0);
  await_server(probe, "%batch_cancel_mark%", NULL);
  ck_assert_int_eq(actio_future_cancel(f), 0);
  expect(f, ACTIO_ECANCELED);
  actio_future_unref(f);
  /* The query pipelined behind it runs (it may be hit by the cancel and
   * sent again), on the same connection. */
  ck_assert_int_eq(actio_db_int64(expect(behind, 0), 0, 0, &(int64_t){0}), 0);
  actio_future_unref(behind);
  ck_assert_int_eq(scalar(one, "SELECT count(*) FROM cancel_t"), 0);
  actio_db_stats s;
  actio_db_stats_get(one, &s);
  ck_assert_uint_ge(s.cancels, 1);
  ck_assert_uint_eq(s.connects, 1);
  /* A deadline ends a batch the same way. */
  ck_assert_int_eq(actio_db_batch(one, q, 3, &f), 0);
  ck_assert_int_eq(actio_future_set_deadline(rt, f, 50), 0);
  expect(f, ACTIO_ETIMEDOUT);
  actio_future_unref(f);
  ck_assert_int_eq(scalar(one, "SELECT count(*) FROM cancel_t"), 0);
  run(one, "DROP TABLE cancel_t");
}
END_TEST

/* ---- streams ---- */

typedef struct counter {
  _Atomic uint64_t rows, calls;
  int64_t sum_g;  /* the worker's alone */
  uint64_t give_up_at; /* fail once past this many rows (0: never) */
  uint64_t park_every; /* ask to wait every this many rows (0: never) */
  uint64_t next_park;
  actio_future *_Atomic parked; /* the ready future handed over, for the test */
} counter;

static int count_rows(void *arg, const actio_db_rowset *rows, actio_future **ready) {
  counter *c = arg;
  size_t n = actio_db_rowset_count(rows);
  ck_assert_uint_gt(n, 0);
  for (size_t i = 0; i < n; i++) {
    size_t row;
    const actio_db_result *r = actio_db_rowset_at(rows, i, &row);
    int64_t g;
    ck_assert_int_eq(actio_db_int64(r, row, 0, &g), 0);
    c->sum_g += g;
  }
  ck_assert_ptr_null(actio_db_rowset_at(rows, n, &(size_t){0}));
  uint64_t total = atomic_fetch_add_explicit(&c->rows, n, memory_order_relaxed) + n;
  atomic_fetch_add_explicit(&c->calls, 1, memory_order_release);
  if (c->give_up_at && total >= c->give_up_at)
    return ACTIO_EINVAL;
  if (c->park_every && total >= c->next_park) {
    c->next_park = total + c->park_every;
    actio_future *f;
    ck_assert_int_eq(actio_future_create(&f), 0);
    actio_future_ref(f); /* one for the stream, one for the test */
    *ready = f;
    atomic_store_explicit(&c->parked, f, memory_order_release);
  }
  return 0;
}

START_TEST(test_stream_many_rows_bounded) {
  /* 3 million rows: kept whole, at about 60 bytes a row, over 180 MB,
   * almost three times the bound below; few enough to stream within the
   * case's limit on a busy machine (10 million once took over 300 s at a
   * load of 16-25). */
  const int64_t n = SANITIZED ? 200000 : 3000000;
  char sql[128];
  snprintf(sql, sizeof sql, "SELECT g, md5(g::text) FROM generate_series(1, %lld) g",
           (long long)n);
  counter c = {0};
  actio_future *f;
  long before = peak_rss_kb();
  actio_db_request q = {.sql = sql};
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  ck_assert_int_eq(actio_db_stream(db, &q, 0, count_rows, &c, &f), 0);
  const actio_db_result *end = expect(f, 0);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  long after = peak_rss_kb();
  ck_assert_uint_eq(atomic_load(&c.rows), (uint64_t)n);
  ck_assert_int_eq(c.sum_g, n * (n + 1) / 2);
  ck_assert_uint_eq(actio_db_affected(end), (uint64_t)n);
  ck_assert_uint_eq(actio_db_rows(end), 0);
  actio_future_unref(f);
  fprintf(stderr, "test_stream_many_rows_bounded: %lld rows in %llu calls, %.1f s, peak RSS "
                  "%ld kB (%+ld kB over the stream)\n",
          (long long)n, (unsigned long long)atomic_load(&c.calls),
          (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9, after,
          after - before);
  /* ASan's quarantine keeps freed blocks (256 MB): the bound holds only
   * in a build without sanitizers. */
  if (!SANITIZED)
    ck_assert_int_lt(after - before, 64 * 1024); /* the whole would be > 180 MB */
  /* The connection is back in the pool. */
  ck_assert_int_eq(scalar(db, "SELECT 41 + 1"), 42);
}
END_TEST

/* a's queries ran on one connection, never lost, and at least `cancels`
 * cancel requests went to the server. */
static void expect_cancelled_on_one_connection(actio_actor *a, uint64_t cancels) {
  actio_db_stats s;
  actio_db_stats_get(a, &s);
  ck_assert_uint_eq(s.connects, 1);
  ck_assert_uint_eq(s.failures, 0);
  ck_assert_uint_ge(s.cancels, cancels);
}

START_TEST(test_stream_consumer_error_cancels) {
  actio_actor *one = spawn((actio_db_opts){.max_connections = 1, .workers = 1});
  counter c = {.give_up_at = 1000};
  actio_future *f;
  /* Without the cancel on the server this runs for minutes. */
  actio_db_request q = {.sql = "SELECT generate_series(1, 1000000000) AS g"};
  ck_assert_int_eq(actio_db_stream(one, &q, 100, count_rows, &c, &f), 0);
  expect(f, ACTIO_EINVAL);
  ck_assert_ptr_nonnull(strstr(actio_future_errmsg(f), "consumer failed"));
  actio_future_unref(f);
  ck_assert_uint_ge(atomic_load(&c.rows), 1000);
  /* The same connection serves the next queries. */
  ck_assert_int_eq(scalar(one, "SELECT 5"), 5);
  run(one, "SELECT 6");
  expect_cancelled_on_one_connection(one, 1);
  /* A stream of a statement that fails, and of one without rows. */
  actio_db_request bad = {.sql = "SELECT 1 / 0"};
  ck_assert_int_eq(actio_db_stream(one, &bad, 0, count_rows, &c, &f), 0);
  expect(f, ACTIO_ESQL);
  actio_future_unref(f);
  actio_db_request none = {.sql = "SELECT 1 WHERE false"};
  ck_assert_int_eq(actio_db_stream(one, &none, 0, count_rows, &c, &f), 0);
  ck_assert_uint_eq(actio_db_affected(expect(f, 0)), 0);
  actio_future_unref(f);
  /* Bad input. */
  f = NULL;
  ck_assert_int_eq(actio_db_stream(one, &q, 0, NULL, &c, &f), ACTIO_EINVAL);
  ck_assert_int_eq(actio_db_stream(one, &q, 65537, count_rows, &c, &f), ACTIO_EINVAL);
  ck_assert_int_eq(actio_db_stream(one, NULL, 0, count_rows, &c, &f), ACTIO_EINVAL);
  ck_assert_int_eq(actio_db_stream(one, &q, 0, count_rows, &c, NULL), ACTIO_EINVAL);
  ck_assert_ptr_null(f);
  ck_assert_uint_eq(actio_db_rowset_count(NULL), 0);
}
END_TEST

/* Waits for the consumer to hand over a ready future; takes it. */
static actio_future *await_parked(counter *c) {
  actio_future *f;
  while ((f = atomic_exchange_explicit(&c->parked, NULL, memory_order_acq_rel)) == NULL)
    sched_yield();
  return f;
}

/* A chain's step that ends it with the previous step's value. */
static int pass(actio_future *prev, void *arg, actio_future **next) {
  (void)prev;
  (void)arg;
  *next = NULL;
  return 0;
}

START_TEST(test_stream_freed_future_ends_query) {
  actio_actor *one = spawn((actio_db_opts){.max_connections = 1, .workers = 1});
  /* Without the cancel on the server each runs for minutes. */
  actio_db_request q = {.sql = "SELECT generate_series(1, 1000000000) AS g"};
  /* Freed while its consumer waits (the stream parked). */
  counter c = {.park_every = 1000, .next_park = 1000};
  actio_future *f;
  ck_assert_int_eq(actio_db_stream(one, &q, 100, count_rows, &c, &f), 0);
  actio_future *ready = await_parked(&c);
  actio_future_unref(f);
  /* The one connection serves the next query once the stream ended. */
  ck_assert_int_eq(scalar(one, "SELECT 5"), 5);
  /* Completed by whoever made it, as always: nobody waits on it now. */
  ck_assert_int_eq(actio_future_resolve(ready, NULL, NULL), 0);
  actio_future_unref(ready);
  /* Freed while rows flow. */
  counter d = {0};
  ck_assert_int_eq(actio_db_stream(one, &q, 100, count_rows, &d, &f), 0);
  while (atomic_load_explicit(&d.rows, memory_order_relaxed) < 1000)
    sched_yield();
  actio_future_unref(f);
  ck_assert_int_eq(scalar(one, "SELECT 6"), 6);
  expect_cancelled_on_one_connection(one, 2);
  /* Kept through a callback: the stream runs on and its outcome arrives. */
  actio_db_request small = {.sql = "SELECT generate_series(1, 5000) AS g"};
  counter e = {0};
  actio_future *done;
  ck_assert_int_eq(actio_db_stream(one, &small, 0, count_rows, &e, &f), 0);
  ck_assert_int_eq(actio_future_then(f, pass, NULL, &done), 0);
  actio_future_unref(f);
  ck_assert_int_eq(actio_future_wait(done, -1), 0);
  actio_future_unref(done);
  ck_assert_uint_eq(atomic_load(&e.rows), 5000);
}
END_TEST

START_TEST(test_stream_backpressure) {
  actio_actor *probe = spawn((actio_db_opts){.max_connections = 1, .workers = 1});
  const uint64_t n = SANITIZED ? 300000 : 2000000, every = n / 10;
  char sql[160];
  snprintf(sql, sizeof sql,
           "SELECT generate_series(1, %llu) AS g, repeat('x', 200) AS backpressure_mark",
           (unsigned long long)n);
  counter c = {.park_every = every, .next_park = every};
  actio_future *f;
  actio_db_request q = {.sql = sql};
  long before = peak_rss_kb();
  ck_assert_int_eq(actio_db_stream(db, &q, 0, count_rows, &c, &f), 0);
  for (int round = 0; round < 4; round++) {
    actio_future *ready = await_parked(&c);
    uint64_t calls = atomic_load_explicit(&c.calls, memory_order_acquire);
    /* The server stops, blocked writing to a full socket: nothing more
     * reaches the consumer while it waits. */
    await_server(probe, "%backpressure_mark%", "ClientWrite");
    ck_assert_uint_eq(atomic_load_explicit(&c.calls, memory_order_acquire), calls);
    ck_assert_int_lt(atomic_load(&c.rows), n);
    ck_assert_int_eq(actio_future_resolve(ready, NULL, NULL), 0);
    actio_future_unref(ready);
  }
  /* The fifth wait: the test fails it, which fails the stream and cancels
   * the query. */
  actio_future *ready = await_parked(&c);
  ck_assert_int_eq(actio_future_fail(ready, -EIO, "consumer's disk full"), 0);
  actio_future_unref(ready);
  expect(f, -EIO);
  actio_future_unref(f);
  long after = peak_rss_kb();
  if (!SANITIZED)
    ck_assert_int_lt(after - before, 64 * 1024); /* the rows are > 400 MB */
  /* A stream cancelled while its consumer waits. */
  c = (counter){.park_every = 1, .next_park = 1};
  ck_assert_int_eq(actio_db_stream(db, &q, 0, count_rows, &c, &f), 0);
  ready = await_parked(&c);
  ck_assert_int_eq(actio_future_cancel(f), 0);
  expect(f, ACTIO_ECANCELED);
  actio_future_unref(f);
  actio_future_cancel(ready); /* a future never completed holds its callbacks */
  actio_future_unref(ready);
  ck_assert_int_eq(scalar(db, "SELECT 8"), 8);
}
END_TEST

/* ---- cursors ---- */

START_TEST(test_cursor_paging) {
  actio_future *tf, *f, *df;
  ck_assert_int_eq(actio_db_begin(db, NULL, &tf), 0);
  expect(tf, 0);
  actio_db_txn *t = actio_future_value(tf);
  actio_db_cursor *cur;
  const char *lim[] = {"1000"};
  actio_db_request q = {.sql = "SELECT g FROM generate_series(1, $1::int) g", .nparams = 1,
                        .params = lim};
  ck_assert_int_eq(actio_db_cursor_open(t, &q, &cur, &df), 0);
  size_t pages[] = {300, 300, 300, 100, 0};
  int64_t next = 1;
  for (int i = 0; i < 5; i++) {
    ck_assert_int_eq(actio_db_cursor_fetch(cur, 300, &f), 0);
    const actio_db_result *r = expect(f, 0);
    ck_assert_uint_eq(actio_db_rows(r), pages[i]);
    for (size_t k = 0; k < actio_db_rows(r); k++) {
      int64_t g;
      ck_assert_int_eq(actio_db_int64(r, k, 0, &g), 0);
      ck_assert_int_eq(g, next++);
    }
    actio_future_unref(f);
  }
  expect(df, 0);
  actio_future_unref(df);
  ck_assert_int_eq(actio_db_cursor_close(cur, &f), 0);
  expect(f, 0);
  actio_future_unref(f);
  /* Closed: a fetch fails, and the transaction with it. */
  ck_assert_int_eq(actio_db_cursor_fetch(cur, 1, &f), 0);
  ck_assert_str_eq(actio_db_error_get((expect(f, ACTIO_ESQL), f))->sqlstate, "34000");
  actio_future_unref(f);
  ck_assert_int_eq(actio_db_cursor_fetch(cur, 0, &f), ACTIO_EINVAL);
  ck_assert_int_eq(actio_db_cursor_fetch(NULL, 1, &f), ACTIO_EINVAL);
  ck_assert_int_eq(actio_db_cursor_open(t, NULL, &cur, &f), ACTIO_EINVAL);
  actio_db_cursor_free(cur);
  actio_db_cursor_free(NULL);
  ck_assert_int_eq(actio_db_rollback(t, &f), 0);
  expect(f, 0);
  actio_future_unref(f);
  actio_future_unref(tf);
}
END_TEST

static Suite *db_batch_suite(void) {
  Suite *s = suite_create("db_batch");
  TCase *tc = tcase_with_timeout("batches", 120);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_executemany_all_or_nothing);
  tcase_add_test(tc, test_executemany_fn_and_bad_input);
  tcase_add_test(tc, test_executemany_pipelined_behind_each_other);
  tcase_add_test(tc, test_batch_mixed);
  tcase_add_test(tc, test_batch_cancelled_mid_way);
  suite_add_tcase(s, tc);
  tc = tcase_with_timeout("stream_3m", 300);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_stream_many_rows_bounded);
  suite_add_tcase(s, tc);
  tc = tcase_with_timeout("streams", 120);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_stream_consumer_error_cancels);
  tcase_add_test(tc, test_stream_backpressure);
  tcase_add_test(tc, test_stream_freed_future_ends_query);
  tcase_add_test(tc, test_cursor_paging);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return run_db_suite("test_db_batch", db_batch_suite()); }

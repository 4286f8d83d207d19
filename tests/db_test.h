/* db_test.h: the assert helpers the database suites share. */
#ifndef ACTIO_TEST_DB_TEST_H
#define ACTIO_TEST_DB_TEST_H

#include "pg_server.h"
#include "test_util.h"

/* The suite's server (its folder and DSN), runtime and pooled actor. */
static char pg_dir[256], dsn[512];
static actio_runtime *rt;
static actio_actor *db;

static inline int pg_cmd(const char *verb) { return pg_server(PG_SERVER_SH, verb, pg_dir); }

/* A database actor in rt; o.dsn NULL: the suite's server. */
static inline actio_actor *spawn(actio_db_opts o) {
  actio_actor *a;
  if (o.dsn == NULL)
    o.dsn = dsn;
  ck_assert_int_eq(actio_db_spawn(rt, &o, &a), 0);
  return a;
}

/* The fixture of every case: a runtime and a pool with the defaults. */
static inline void setup(void) {
  ck_assert_int_eq(actio_runtime_create(&rt, NULL), 0);
  db = spawn((actio_db_opts){0});
}

static inline void teardown(void) { actio_runtime_destroy(rt); }

/* Waits for f and checks its status; returns its result (f keeps it). */
static inline const actio_db_result *expect(actio_future *f, int status) {
  int st = actio_future_wait(f, -1);
  if (st != status)
    ck_abort_msg("status %s (%s), expected %s", actio_err_name(st),
                 actio_future_errmsg(f) ? actio_future_errmsg(f) : "",
                 actio_err_name(status));
  return actio_future_value(f);
}

/* Runs sql on a (without parameters) and checks it succeeds. */
static inline void run(actio_actor *a, const char *sql) {
  actio_future *f;
  ck_assert_int_eq(actio_db_query(a, sql, 0, NULL, &f), 0);
  expect(f, 0);
  actio_future_unref(f);
}

/* The int64 in the first cell of sql's result. */
static inline int64_t scalar(actio_actor *a, const char *sql) {
  actio_future *f;
  int64_t v = -1;
  ck_assert_int_eq(actio_db_query(a, sql, 0, NULL, &f), 0);
  ck_assert_int_eq(actio_db_int64(expect(f, 0), 0, 0, &v), 0);
  actio_future_unref(f);
  return v;
}

/* Waits until `a` has n connections open and idle. */
static inline void await_idle(actio_actor *a, unsigned n) {
  actio_db_stats s;
  for (actio_db_stats_get(a, &s); s.idle < n; actio_db_stats_get(a, &s))
    usleep(1000); /* paces the polling */
}

/* A suite's main: starts the suite's server (its DSN in dsn), runs s,
 * stops and removes the server. */
static inline int run_db_suite(const char *name, Suite *s) {
  snprintf(pg_dir, sizeof pg_dir, "/tmp/actio-test-pg-XXXXXX");
  char path[300];
  if (mkdtemp(pg_dir) == NULL || pg_cmd("start") != 0 ||
      (snprintf(path, sizeof path, "%s/env", pg_dir),
       env_get(path, "PG_DSN", dsn, sizeof dsn)) != 0) {
    fprintf(stderr, "%s: could not start PostgreSQL (%s)\n", name, pg_dir);
    return EXIT_FAILURE;
  }
  int rc = run_suite(s);
  pg_cmd("stop");
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", pg_dir);
  if (system(cmd) != 0)
    fprintf(stderr, "%s: could not remove %s\n", name, pg_dir);
  return rc;
}

#endif

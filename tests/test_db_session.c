/* test_db_session.c: the database actor's session connections, pool hooks
 * and prepared statements, against a real PostgreSQL started for the
 * suite (tests/pg_server.sh). */
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "actio.h"
#include "actors/db/db_internal.h"
#include "db_test.h"
#include "pg_server.h"

/* Takes a session of a (waits for it). */
static actio_db_session *acquire(actio_actor *a, actio_future **f) {
  ck_assert_int_eq(actio_db_acquire(a, f), 0);
  expect(*f, 0);
  actio_db_session *s = actio_future_value(*f);
  ck_assert_ptr_nonnull(s);
  return s;
}

/* Runs sql on session s and checks its status; the future is the caller's. */
static actio_future *s_run(actio_db_session *s, const char *sql, int status) {
  actio_future *f;
  ck_assert_int_eq(actio_db_session_query(s, sql, 0, NULL, &f), 0);
  expect(f, status);
  return f;
}

/* The int64 in the first cell of sql's result on session s. */
static int64_t s_scalar(actio_db_session *s, const char *sql) {
  actio_future *f = s_run(s, sql, 0);
  int64_t v = -1;
  ck_assert_int_eq(actio_db_int64(actio_future_value(f), 0, 0, &v), 0);
  actio_future_unref(f);
  return v;
}

static void release(actio_db_session *s, int status) {
  actio_future *f;
  ck_assert_int_eq(actio_db_session_release(s, &f), 0);
  expect(f, status);
  actio_future_unref(f);
}

/* The text of the first cell of sql's result on a, copied into out. */
static void text_of(actio_actor *a, const char *sql, char *out, size_t cap) {
  actio_future *f;
  const char *v = NULL;
  ck_assert_int_eq(actio_db_query(a, sql, 0, NULL, &f), 0);
  ck_assert_int_eq(actio_db_text(expect(f, 0), 0, 0, &v), 0);
  snprintf(out, cap, "%s", v);
  actio_future_unref(f);
}

START_TEST(test_session_temp_table) {
  /* One connection: the pool's queries after the release reach the very
   * connection the session had. */
  actio_actor *one = spawn((actio_db_opts){.max_connections = 1});
  actio_future *sf;
  actio_db_session *s = acquire(one, &sf);
  int64_t pid = s_scalar(s, "SELECT pg_backend_pid()");
  actio_future_unref(s_run(s, "CREATE TEMP TABLE sess_tmp (x int)", 0));
  actio_future_unref(s_run(s, "INSERT INTO sess_tmp VALUES (1), (2)", 0));
  ck_assert_int_eq(s_scalar(s, "SELECT count(*) FROM sess_tmp"), 2);
  ck_assert_int_eq(s_scalar(s, "SELECT pg_backend_pid()"), pid);
  /* Settings and prepared statements of the session's own. */
  actio_future_unref(s_run(s, "SET application_name = 'sess_test'", 0));
  actio_future_unref(s_run(s, "PREPARE sess_p AS SELECT 42", 0));
  ck_assert_int_eq(s_scalar(s, "EXECUTE sess_p"), 42);
  release(s, 0);
  /* Released: further use is refused at the call. */
  actio_future *f;
  ck_assert_int_eq(actio_db_session_query(s, "SELECT 1", 0, NULL, &f), ACTIO_ESTATE);
  ck_assert_int_eq(actio_db_session_release(s, &f), ACTIO_ESTATE);
  actio_future_unref(sf);
  ck_assert_int_eq(scalar(one, "SELECT pg_backend_pid()"), pid);
  ck_assert_int_eq(scalar(one, "SELECT (to_regclass('pg_temp.sess_tmp') IS NULL)::int"), 1);
  ck_assert_int_eq(scalar(one, "SELECT count(*) FROM pg_prepared_statements "
                               "WHERE name = 'sess_p'"), 0);
  char name[64];
  text_of(one, "SHOW application_name", name, sizeof name);
  ck_assert_str_eq(name, "actio");
  /* The pool's cached statements were dropped by DISCARD ALL too: those
   * used before run again. */
  ck_assert_int_eq(scalar(one, "SELECT pg_backend_pid()"), pid);
}
END_TEST

START_TEST(test_session_advisory_lock) {
  actio_actor *two = spawn((actio_db_opts){.max_connections = 2, .workers = 1});
  actio_future *sf;
  actio_db_session *s = acquire(two, &sf);
  actio_future_unref(s_run(s, "SELECT pg_advisory_lock(4242)", 0));
  const char *held = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                     "AND objid = 4242 AND granted";
  ck_assert_int_eq(scalar(two, held), 1); /* seen from the other connection */
  ck_assert_int_eq(s_scalar(s, "SELECT pg_try_advisory_lock(4242)::int"), 1);
  /* The session's end releases it: the reset is done when this resolves. */
  release(s, 0);
  actio_future_unref(sf);
  ck_assert_int_eq(scalar(two, held), 0);
}
END_TEST

START_TEST(test_session_released_in_transaction) {
  actio_actor *one = spawn((actio_db_opts){.max_connections = 1});
  run(one, "CREATE TABLE IF NOT EXISTS sess_rb (x int)");
  run(one, "TRUNCATE sess_rb");
  int64_t pid = scalar(one, "SELECT pg_backend_pid()");
  /* Inside an open transaction. */
  actio_future *sf;
  actio_db_session *s = acquire(one, &sf);
  actio_future_unref(s_run(s, "BEGIN", 0));
  actio_future_unref(s_run(s, "INSERT INTO sess_rb VALUES (1)", 0));
  release(s, 0);
  actio_future_unref(sf);
  ck_assert_int_eq(scalar(one, "SELECT count(*) FROM sess_rb"), 0);
  ck_assert_int_eq(scalar(one, "SELECT pg_backend_pid()"), pid); /* kept */
  /* Inside a failed one. */
  s = acquire(one, &sf);
  actio_future_unref(s_run(s, "BEGIN", 0));
  actio_future_unref(s_run(s, "INSERT INTO sess_rb VALUES (2)", 0));
  actio_future_unref(s_run(s, "SELECT 1/0", ACTIO_ESQL));
  release(s, 0);
  actio_future_unref(sf);
  ck_assert_int_eq(scalar(one, "SELECT count(*) FROM sess_rb"), 0);
  ck_assert_int_eq(scalar(one, "SELECT pg_backend_pid()"), pid);
  /* Dropped without a release, inside a transaction: the same, with
   * nobody waiting; the pool's next query waits for the connection. */
  s = acquire(one, &sf);
  actio_future_unref(s_run(s, "BEGIN", 0));
  actio_future_unref(s_run(s, "INSERT INTO sess_rb VALUES (3)", 0));
  actio_future_unref(sf); /* frees the session */
  ck_assert_int_eq(scalar(one, "SELECT count(*) FROM sess_rb"), 0);
  /* Taken out of its future and freed. */
  ck_assert_int_eq(actio_db_acquire(one, &sf), 0);
  expect(sf, 0);
  s = actio_future_take(sf);
  actio_future_unref(sf);
  actio_future_unref(s_run(s, "BEGIN", 0));
  actio_future_unref(s_run(s, "INSERT INTO sess_rb VALUES (4)", 0));
  actio_db_session_free(s);
  ck_assert_int_eq(scalar(one, "SELECT count(*) FROM sess_rb"), 0);
  run(one, "DROP TABLE sess_rb");
}
END_TEST

START_TEST(test_session_bounded) {
  actio_actor *one = spawn((actio_db_opts){.max_connections = 1, .acquire_timeout_ms = 200});
  actio_future *sf, *f, *g;
  await_idle(one, 1); /* its opening would count against the 200 ms */
  actio_db_session *s = acquire(one, &sf);
  /* The only connection is out: another acquire waits, then times out. */
  ck_assert_int_eq(actio_db_acquire(one, &f), 0);
  expect(f, ACTIO_ETIMEDOUT);
  ck_assert_ptr_nonnull(strstr(actio_future_errmsg(f), "acquire_timeout_ms"));
  actio_future_unref(f);
  /* One waiting gets it once the session is released. */
  actio_actor *slow = spawn((actio_db_opts){.max_connections = 1});
  actio_future *sf2;
  actio_db_session *s2 = acquire(slow, &sf2);
  ck_assert_int_eq(actio_db_acquire(slow, &g), 0);
  ck_assert_int_eq(actio_db_session_query(s2, "SELECT 1", 0, NULL, &f), 0);
  expect(f, 0);
  actio_future_unref(f);
  ck_assert(!actio_future_is_done(g)); /* it cannot have the connection */
  release(s2, 0);
  actio_future_unref(sf2);
  expect(g, 0);
  actio_future_unref(g); /* its session is released in turn */
  release(s, 0);
  actio_future_unref(sf);
  /* Bad input. */
  ck_assert_int_eq(actio_db_acquire(NULL, &f), ACTIO_EINVAL);
  ck_assert_int_eq(actio_db_acquire(one, NULL), ACTIO_EINVAL);
  ck_assert_int_eq(actio_db_session_query(NULL, "SELECT 1", 0, NULL, &f), ACTIO_EINVAL);
  ck_assert_int_eq(actio_db_session_release(NULL, &f), ACTIO_EINVAL);
  actio_db_session_free(NULL);
}
END_TEST

/* ---- hooks ---- */

typedef struct hooks {
  _Atomic int connects, acquires, releases;
  _Atomic int lost;           /* releases told the connection was lost */
  _Atomic int refuse_acquire, refuse_connect;
  _Atomic int64_t init_value; /* on_connect's init result, first cell */
  _Atomic int pid;            /* the last connection's, at on_connect */
} hooks;

static int on_connect(void *arg, const actio_db_conn_info *c, const actio_db_result *init) {
  hooks *h = arg;
  int64_t v = -1;
  if (init != NULL && actio_db_rows(init) > 0)
    actio_db_int64(init, 0, 0, &v);
  atomic_store(&h->init_value, v);
  atomic_store(&h->pid, c->backend_pid);
  ck_assert_int_ge(c->server_version, 100000);
  atomic_fetch_add(&h->connects, 1);
  return atomic_load(&h->refuse_connect) ? ACTIO_ESTATE : 0;
}

static int on_acquire(void *arg, const actio_db_conn_info *c) {
  hooks *h = arg;
  ck_assert_int_gt(c->backend_pid, 0);
  atomic_fetch_add(&h->acquires, 1);
  return atomic_load(&h->refuse_acquire) ? ACTIO_EAUTH : 0;
}

static int on_release(void *arg, const actio_db_conn_info *c) {
  hooks *h = arg;
  ck_assert_int_gt(c->backend_pid, 0);
  if (c->lost)
    atomic_fetch_add(&h->lost, 1);
  atomic_fetch_add(&h->releases, 1);
  return 0;
}

START_TEST(test_on_connect_sql) {
  run(db, "CREATE SCHEMA IF NOT EXISTS sess_schema");
  hooks h = {0};
  actio_actor *a = spawn((actio_db_opts){
      .max_connections = 1,
      .on_connect_sql = "SET search_path TO sess_schema, public; "
                        "SELECT oid::int8 FROM pg_type WHERE typname = 'int4'",
      .on_connect = on_connect,
      .on_acquire = on_acquire,
      .on_release = on_release,
      .hook_arg = &h});
  char path[128];
  text_of(a, "SHOW search_path", path, sizeof path);
  ck_assert_str_eq(path, "sess_schema, public");
  ck_assert_int_eq(atomic_load(&h.connects), 1);
  ck_assert_int_eq(atomic_load(&h.init_value), 23); /* int4's OID */
  ck_assert_int_eq(scalar(a, "SELECT pg_backend_pid()"), atomic_load(&h.pid));
  /* A session's reset undoes its SET; on_connect_sql runs again. */
  actio_future *sf;
  actio_db_session *s = acquire(a, &sf);
  ck_assert_int_eq(atomic_load(&h.acquires), 1);
  actio_future_unref(s_run(s, "SET search_path TO public", 0));
  release(s, 0);
  actio_future_unref(sf);
  ck_assert_int_eq(atomic_load(&h.releases), 1);
  text_of(a, "SHOW search_path", path, sizeof path);
  ck_assert_str_eq(path, "sess_schema, public");
  ck_assert_int_eq(atomic_load(&h.connects), 1); /* on_connect: once */
  /* Transactions call the hooks too. */
  actio_future *tf, *f;
  ck_assert_int_eq(actio_db_begin(a, NULL, &tf), 0);
  expect(tf, 0);
  ck_assert_int_eq(actio_db_commit(actio_future_value(tf), &f), 0);
  expect(f, 0);
  actio_future_unref(f);
  actio_future_unref(tf);
  ck_assert_int_eq(atomic_load(&h.acquires), 2);
  ck_assert_int_eq(atomic_load(&h.releases), 2);
  /* on_acquire refuses: the acquire and the BEGIN fail with its code, and
   * the connection is replaced. */
  int pid = atomic_load(&h.pid);
  atomic_store(&h.refuse_acquire, 1);
  ck_assert_int_eq(actio_db_acquire(a, &f), 0);
  expect(f, ACTIO_EAUTH);
  ck_assert_ptr_nonnull(strstr(actio_future_errmsg(f), "on_acquire"));
  actio_future_unref(f);
  ck_assert_int_eq(actio_db_begin(a, NULL, &f), 0);
  expect(f, ACTIO_EAUTH);
  actio_future_unref(f);
  atomic_store(&h.refuse_acquire, 0);
  ck_assert_int_ne(scalar(a, "SELECT pg_backend_pid()"), pid);
  ck_assert_int_ge(atomic_load(&h.connects), 2);
  run(db, "DROP SCHEMA sess_schema");
}
END_TEST

START_TEST(test_on_release_of_a_lost_connection) {
  /* The server drops a session's connection while it is held: on_release
   * is still called, once, told it was lost, by the time the session's
   * release completes; a transaction's likewise. */
  hooks h = {0};
  actio_actor *a = spawn((actio_db_opts){.max_connections = 1,
                                         .on_connect = on_connect,
                                         .on_acquire = on_acquire,
                                         .on_release = on_release,
                                         .hook_arg = &h});
  actio_future *sf, *f;
  actio_db_session *s = acquire(a, &sf);
  char pid[16];
  snprintf(pid, sizeof pid, "%" PRId64, s_scalar(s, "SELECT pg_backend_pid()"));
  ck_assert_int_eq(actio_db_query(db, "SELECT pg_terminate_backend($1::int)", 1,
                                  (const char *const[]){pid}, &f), 0);
  expect(f, 0);
  actio_future_unref(f);
  ck_assert_int_eq(actio_db_session_release(s, &f), 0);
  actio_future_wait(f, -1); /* fails or not, as the pool saw the loss */
  actio_future_unref(f);
  actio_future_unref(sf);
  ck_assert_int_eq(atomic_load(&h.acquires), 1);
  ck_assert_int_eq(atomic_load(&h.releases), 1);
  ck_assert_int_eq(atomic_load(&h.lost), 1);
  /* A transaction's connection lost: the same, by its rollback's end. */
  ck_assert_int_eq(actio_db_begin(a, NULL, &sf), 0);
  expect(sf, 0);
  actio_db_txn *t = actio_future_value(sf);
  ck_assert_int_eq(actio_db_txn_query(t, "SELECT pg_backend_pid()::text", 0, NULL, &f), 0);
  const char *v;
  ck_assert_int_eq(actio_db_text(expect(f, 0), 0, 0, &v), 0);
  snprintf(pid, sizeof pid, "%s", v);
  actio_future_unref(f);
  ck_assert_int_eq(actio_db_query(db, "SELECT pg_terminate_backend($1::int)", 1,
                                  (const char *const[]){pid}, &f), 0);
  expect(f, 0);
  actio_future_unref(f);
  ck_assert_int_eq(actio_db_rollback(t, &f), 0);
  actio_future_wait(f, -1);
  actio_future_unref(f);
  actio_future_unref(sf);
  ck_assert_int_eq(atomic_load(&h.acquires), 2);
  ck_assert_int_eq(atomic_load(&h.releases), 2);
  ck_assert_int_eq(atomic_load(&h.lost), 2);
  /* A session given back whole: lost 0. */
  s = acquire(a, &sf);
  release(s, 0);
  actio_future_unref(sf);
  ck_assert_int_eq(atomic_load(&h.acquires), 3);
  ck_assert_int_eq(atomic_load(&h.releases), 3);
  ck_assert_int_eq(atomic_load(&h.lost), 2);
}
END_TEST

START_TEST(test_hook_failure) {
  /* The on-connect SQL fails: the queries fail with its error, clearly,
   * and no connection counts as made. */
  actio_actor *a = spawn((actio_db_opts){.max_connections = 1,
                                         .on_connect_sql = "SELECT 1/0",
                                         .reconnect_min_ms = 50});
  actio_future *f;
  ck_assert_int_eq(actio_db_query(a, "SELECT 1", 0, NULL, &f), 0);
  expect(f, ACTIO_ESQL);
  ck_assert_ptr_nonnull(strstr(actio_future_errmsg(f), "on-connect SQL failed"));
  ck_assert_ptr_nonnull(strstr(actio_future_errmsg(f), "22012"));
  actio_future_unref(f);
  actio_db_stats st;
  actio_db_stats_get(a, &st);
  ck_assert_uint_eq(st.connects, 0);
  ck_assert_uint_ge(st.failures, 1);
  /* The on_connect callback refuses: the same, with its code. */
  hooks h = {0};
  atomic_store(&h.refuse_connect, 1);
  actio_actor *b = spawn((actio_db_opts){.max_connections = 1,
                                         .on_connect = on_connect,
                                         .hook_arg = &h});
  ck_assert_int_eq(actio_db_query(b, "SELECT 1", 0, NULL, &f), 0);
  expect(f, ACTIO_ESTATE);
  ck_assert_ptr_nonnull(strstr(actio_future_errmsg(f), "on_connect"));
  actio_future_unref(f);
  /* Once it accepts, the pool connects again (after its backoff). */
  atomic_store(&h.refuse_connect, 0);
  for (;;) {
    ck_assert_int_eq(actio_db_query(b, "SELECT 1", 0, NULL, &f), 0);
    int rc = actio_future_wait(f, -1);
    actio_future_unref(f);
    if (rc == 0)
      break;
    ck_assert_int_eq(rc, ACTIO_ESTATE);
  }
  actio_db_stats_get(b, &st);
  ck_assert_uint_eq(st.connects, 1);
}
END_TEST

/* ---- prepared statements ---- */

/* Prepares sql on a and waits; the statement is the future's. */
static actio_db_stmt *prepare(actio_actor *a, const char *sql, int n, const uint32_t *types,
                              actio_future **f) {
  ck_assert_int_eq(actio_db_prepare(a, sql, n, types, f), 0);
  expect(*f, 0);
  actio_db_stmt *s = actio_future_value(*f);
  ck_assert_ptr_nonnull(s);
  return s;
}

/* Sends q on a (on session ss when given); the int64 of its first cell. */
static int64_t int64_of(actio_actor *a, actio_db_session *ss, const actio_db_request *q) {
  actio_future *f;
  if (ss != NULL)
    ck_assert_int_eq(actio_db_session_send(ss, q, &f), 0);
  else
    ck_assert_int_eq(actio_db_send(a, q, &f), 0);
  int64_t v = -1;
  ck_assert_int_eq(actio_db_int64(expect(f, 0), 0, 0, &v), 0);
  actio_future_unref(f);
  return v;
}

/* Runs s with values p on a (a session's when ss is given); its int64. */
static int64_t run_stmt(actio_actor *a, actio_db_session *ss, const actio_db_stmt *s, int n,
                        const char *const *p) {
  return int64_of(a, ss, &(actio_db_request){.stmt = s, .nparams = n, .params = p});
}

/* How many statements called name the connection that runs this has. */
static int64_t prepared_here(actio_actor *a, actio_db_session *ss, const char *name) {
  const char *p[] = {name};
  return int64_of(a, ss,
                  &(actio_db_request){
                      .sql = "SELECT count(*) FROM pg_prepared_statements WHERE name = $1",
                      .nparams = 1, .params = p, .no_cache = 1});
}

START_TEST(test_prepare_describe_run_destroy) {
  actio_actor *one = spawn((actio_db_opts){.max_connections = 1});
  actio_future *pf;
  actio_db_stmt *s = prepare(one, "SELECT $1::int4 + $2 AS sum, 'x'::text AS label, $2 AS two",
                             2, (const uint32_t[]){0, 20}, &pf);
  /* Described by the server: its types where the caller left them out. */
  ck_assert_int_eq(actio_db_stmt_params(s), 2);
  ck_assert_uint_eq(actio_db_stmt_param_type(s, 0), 23); /* int4 */
  ck_assert_uint_eq(actio_db_stmt_param_type(s, 1), 20); /* int8, as given */
  ck_assert_uint_eq(actio_db_stmt_param_type(s, 2), 0);
  ck_assert_int_eq(actio_db_stmt_columns(s), 3);
  ck_assert_str_eq(actio_db_stmt_column_name(s, 0), "sum");
  ck_assert_uint_eq(actio_db_stmt_column_type(s, 0), 20);
  ck_assert_str_eq(actio_db_stmt_column_name(s, 1), "label");
  ck_assert_uint_eq(actio_db_stmt_column_type(s, 1), 25); /* text */
  ck_assert_ptr_null(actio_db_stmt_column_name(s, 3));
  ck_assert_ptr_null(actio_db_stmt_column_name(s, -1));
  /* Its name, copied: the statement's own goes with it when destroyed. */
  char name[64];
  snprintf(name, sizeof name, "%s", actio_db_stmt_name(s));
  ck_assert_ptr_nonnull(strstr(name, "actio_s"));
  /* Run, pooled, many times: prepared once on the connection. */
  for (int i = 0; i < 20; i++) {
    char a[16];
    snprintf(a, sizeof a, "%d", i);
    ck_assert_int_eq(run_stmt(one, NULL, s, 2, (const char *const[]){a, "3"}), i + 3);
  }
  ck_assert_int_eq(prepared_here(one, NULL, name), 1);
  /* Bad input: a clear refusal at the call. */
  actio_future *f;
  actio_db_request q = {.stmt = s, .nparams = 1, .params = (const char *const[]){"1"}};
  ck_assert_int_eq(actio_db_send(one, &q, &f), ACTIO_EINVAL); /* one value, two wanted */
  q = (actio_db_request){.stmt = s, .sql = "SELECT 1", .nparams = 2,
                         .params = (const char *const[]){"1", "2"}};
  ck_assert_int_eq(actio_db_send(one, &q, &f), ACTIO_EINVAL); /* sql and stmt */
  ck_assert_int_eq(actio_db_batch(one, &q, 1, &f), ACTIO_EINVAL);
  ck_assert_int_eq(actio_db_prepare(one, NULL, 0, NULL, &f), ACTIO_EINVAL);
  ck_assert_int_eq(actio_db_prepare(one, "SELECT 1", -1, NULL, &f), ACTIO_EINVAL);
  ck_assert_int_eq(actio_db_prepare(one, "SELECT 1", 0, NULL, NULL), ACTIO_EINVAL);
  ck_assert_int_eq(actio_db_prepare(NULL, "SELECT 1", 0, NULL, &f), ACTIO_EINVAL);
  ck_assert_int_eq(actio_db_stmt_params(NULL), 0);
  ck_assert_ptr_null(actio_db_stmt_name(NULL));
  /* The server's refusal fails the future. */
  ck_assert_int_eq(actio_db_prepare(one, "SELECT * FROM no_such_table", 0, NULL, &f), 0);
  expect(f, ACTIO_ESQL);
  ck_assert_str_eq(actio_db_error_get(f)->sqlstate, "42P01");
  actio_future_unref(f);
  /* Destroyed: each connection that has it drops it, lazily (the worker
   * reaps at its next turn, which the queries below make). */
  s = actio_future_take(pf);
  actio_future_unref(pf);
  actio_db_stmt_destroy(s);
  while (prepared_here(one, NULL, name) != 0)
    ;
  actio_db_stmt_destroy(NULL);
}
END_TEST

/* A statement destroyed twice: Debug and sanitizer builds abort at the
 * second call, release builds ignore it. A query that uses the statement,
 * blocked on an advisory lock, keeps it alive through both calls. */
START_TEST(test_prepare_destroyed_twice) {
  actio_actor *two = spawn((actio_db_opts){.max_connections = 2, .workers = 1});
  actio_future *pf, *sf, *qf;
  actio_db_stmt *s = prepare(two, "SELECT length(pg_advisory_lock($1::int8)::text)", 1, NULL, &pf);
  actio_db_session *ss = acquire(two, &sf);
  actio_future_unref(s_run(ss, "SELECT pg_advisory_lock(4343)", 0));
  actio_db_request q = {.stmt = s, .nparams = 1, .params = (const char *const[]){"4343"}};
  ck_assert_int_eq(actio_db_send(two, &q, &qf), 0);
  const char *waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                        "AND objid = 4343 AND NOT granted";
  while (s_scalar(ss, waiting) != 1) /* the query waits for the lock */
    ;
  s = actio_future_take(pf);
  actio_future_unref(pf);
  actio_db_stmt_destroy(s);
  actio_db_stmt_destroy(s); /* aborts in a Debug or sanitizer build */
  release(ss, 0);
  actio_future_unref(sf);
  expect(qf, 0);
  actio_future_unref(qf);
}
END_TEST

START_TEST(test_prepare_on_every_connection) {
  actio_actor *two = spawn((actio_db_opts){.max_connections = 2, .workers = 1});
  actio_future *pf, *af, *bf;
  actio_db_stmt *s = prepare(two, "SELECT $1::int8 * 2", 1, NULL, &pf);
  const char *name = actio_db_stmt_name(s);
  /* Two sessions hold both connections: it is prepared on each at its
   * first use there. */
  actio_db_session *a = acquire(two, &af), *b = acquire(two, &bf);
  ck_assert_int_eq(run_stmt(two, a, s, 1, (const char *const[]){"21"}), 42);
  ck_assert_int_eq(run_stmt(two, b, s, 1, (const char *const[]){"5"}), 10);
  ck_assert_int_eq(prepared_here(two, a, name), 1);
  ck_assert_int_eq(prepared_here(two, b, name), 1);
  /* A DISCARD ALL of the caller's own drops it: prepared again at once. */
  actio_future_unref(s_run(a, "DISCARD ALL", 0));
  ck_assert_int_eq(prepared_here(two, a, name), 0);
  actio_db_request q = {.stmt = s, .nparams = 1, .params = (const char *const[]){"1"}};
  actio_future *f;
  ck_assert_int_eq(actio_db_session_send(a, &q, &f), 0);
  expect(f, ACTIO_ESQL); /* the session lost it: 26000, once */
  ck_assert_str_eq(actio_db_error_get(f)->sqlstate, "26000");
  actio_future_unref(f);
  ck_assert_int_eq(run_stmt(two, a, s, 1, (const char *const[]){"2"}), 4);
  /* The sessions' resets drop it too: prepared again when used. */
  release(a, 0);
  release(b, 0);
  actio_future_unref(af);
  actio_future_unref(bf);
  ck_assert_int_eq(run_stmt(two, NULL, s, 1, (const char *const[]){"8"}), 16);
  /* Freed with its future: destroyed. */
  actio_future_unref(pf);
}
END_TEST

/* The statements actio_db_prepare named on a's connection (a pool of
 * one), once those destroyed are deallocated: polled, as the workers reap
 * destroyed statements when free to (bounded in queries, not in time). */
static int64_t ours_settled(actio_actor *a, int64_t want) {
  int64_t n = -1;
  for (int i = 0; i < 1000 && n != want; i++)
    n = int64_of(a, NULL,
                 &(actio_db_request){.sql = "SELECT count(*) FROM pg_prepared_statements "
                                            "WHERE name LIKE 'actio\\_s%'",
                                     .no_cache = 1});
  return n;
}

/* Waits until backend pid waits for a lock. */
static void await_lock_wait(int64_t pid) {
  char p[24];
  snprintf(p, sizeof p, "%" PRId64, pid);
  int64_t waiting = 0;
  while (waiting == 0)
    waiting = int64_of(db, NULL,
                       &(actio_db_request){
                           .sql = "SELECT count(*) FROM pg_stat_activity "
                                  "WHERE pid = $1::int AND wait_event_type = 'Lock'",
                           .nparams = 1, .params = (const char *const[]){p}});
}

START_TEST(test_prepare_cancelled_leaves_nothing) {
  /* A prepare cancelled once its Parse was sent leaves no statement on
   * the connection: cancelled in its Parse (blocked on a lock), or behind
   * a query in the pipeline (its Parse done after the cancel). */
  run(db, "CREATE TABLE IF NOT EXISTS prep_lock (x int)");
  actio_actor *one = spawn((actio_db_opts){.max_connections = 1});
  int64_t pid = scalar(one, "SELECT pg_backend_pid()");
  ck_assert_int_eq(ours_settled(one, 0), 0);
  for (int behind = 0; behind < 2; behind++) {
    actio_future *lf, *qf = NULL, *pf;
    actio_db_session *lock = acquire(db, &lf);
    actio_future_unref(s_run(lock, "BEGIN", 0));
    actio_future_unref(s_run(lock, "LOCK TABLE prep_lock IN ACCESS EXCLUSIVE MODE", 0));
    if (behind)
      ck_assert_int_eq(actio_db_query(one, "SELECT count(*) FROM prep_lock", 0, NULL, &qf), 0);
    ck_assert_int_eq(actio_db_prepare(one, behind ? "SELECT $1::int" : "SELECT * FROM prep_lock",
                                      0, NULL, &pf), 0);
    await_lock_wait(pid);
    ck_assert_int_eq(actio_future_cancel(pf), 0);
    ck_assert_int_eq(actio_future_wait(pf, -1), ACTIO_ECANCELED);
    release(lock, 0); /* rolled back: the lock is free */
    actio_future_unref(lf);
    if (qf != NULL) {
      expect(qf, 0);
      actio_future_unref(qf);
    }
    actio_future_unref(pf);
    ck_assert_int_eq(ours_settled(one, 0), 0);
    ck_assert_int_eq(scalar(one, "SELECT pg_backend_pid()"), pid); /* the same session */
  }
  run(db, "DROP TABLE prep_lock");
}
END_TEST

START_TEST(test_prepare_first_use_cancelled_in_its_parse) {
  /* A statement's first use on a connection, cancelled in its Parse
   * (blocked on a lock): the statement never came to be there, so its
   * next use there prepares it again. */
  run(db, "CREATE TABLE IF NOT EXISTS prep_lock (x int)");
  actio_actor *two = spawn((actio_db_opts){.max_connections = 2, .workers = 1});
  actio_future *sf, *pf, *lf, *qf;
  actio_db_session *ss = acquire(two, &sf); /* one connection, held */
  int64_t pid = int64_of(two, ss, &(actio_db_request){.sql = "SELECT pg_backend_pid()"});
  actio_db_stmt *s = prepare(two, "SELECT count(*) FROM prep_lock", 0, NULL, &pf); /* the other */
  actio_db_session *lock = acquire(db, &lf);
  actio_future_unref(s_run(lock, "BEGIN", 0));
  actio_future_unref(s_run(lock, "LOCK TABLE prep_lock IN ACCESS EXCLUSIVE MODE", 0));
  ck_assert_int_eq(actio_db_session_send(ss, &(actio_db_request){.stmt = s}, &qf), 0);
  await_lock_wait(pid);
  ck_assert_int_eq(actio_future_cancel(qf), 0);
  ck_assert_int_eq(actio_future_wait(qf, -1), ACTIO_ECANCELED);
  actio_future_unref(qf);
  /* Its Parse over (cancelled on the server) once the session answers. */
  ck_assert_int_eq(int64_of(two, ss, &(actio_db_request){.sql = "SELECT 1"}), 1);
  release(lock, 0);
  actio_future_unref(lf);
  ck_assert_int_eq(int64_of(two, ss, &(actio_db_request){.stmt = s}), 0);
  ck_assert_int_eq(int64_of(two, ss, &(actio_db_request){.stmt = s}), 0);
  release(ss, 0);
  actio_future_unref(sf);
  actio_future_unref(pf);
  run(db, "DROP TABLE prep_lock");
}
END_TEST

/* The canceller's hook (actio__db_set_cancel_hook): each cancel request
 * waits at this gate until the test opens it. */
static test_gate cancels = TEST_GATE_INIT;

static void hold_cancel(void) { gate_hold(&cancels); }

START_TEST(test_prepare_destroyed_while_a_cancel_is_on_its_way) {
  /* A statement destroyed while a cancel request is on its way to its
   * connection is DEALLOCATEd there once the request was delivered, not
   * before: landing late, the cancel would fail the DEALLOCATE (whose error
   * nobody reads) and leave the statement on the session (what failed
   * test_prepare_cancelled_leaves_nothing once under load). */
  run(db, "CREATE TABLE IF NOT EXISTS prep_lock (x int)");
  actio_actor *two = spawn((actio_db_opts){.max_connections = 2, .workers = 1});
  int64_t pid = scalar(two, "SELECT pg_backend_pid()"); /* its one connection */
  actio_future *pf, *lf, *qf;
  prepare(two, "SELECT $1::int", 0, NULL, &pf); /* there */
  actio_db_session *lock = acquire(db, &lf);
  actio_future_unref(s_run(lock, "BEGIN", 0));
  actio_future_unref(s_run(lock, "LOCK TABLE prep_lock IN ACCESS EXCLUSIVE MODE", 0));
  ck_assert_int_eq(actio_db_query(two, "SELECT count(*) FROM prep_lock", 0, NULL, &qf), 0);
  await_lock_wait(pid);
  actio__db_set_cancel_hook(hold_cancel);
  ck_assert_int_eq(actio_future_cancel(qf), 0);
  gate_wait_held(&cancels); /* its cancel request held on its way */
  actio_future_unref(pf); /* the statement destroyed */
  /* Queries on the other connection (opened for them: the first is busy
   * until its cancel is over): the worker walked its graveyard since. */
  ck_assert_int_eq(scalar(two, "SELECT 1"), 1);
  ck_assert_int_eq(scalar(two, "SELECT 2"), 2);
  ck_assert_uint_eq(actio__db_graves(two), 1); /* no DEALLOCATE yet */
  gate_open(&cancels);
  release(lock, 0);
  actio_future_unref(lf);
  ck_assert_int_eq(actio_future_wait(qf, -1), ACTIO_ECANCELED);
  actio_future_unref(qf);
  /* Then it goes, once the request was delivered and the query is over. */
  while (actio__db_graves(two) > 0)
    usleep(1000); /* paces the polling */
  ck_assert_int_eq(ours_settled(two, 0), 0);
  actio__db_set_cancel_hook(NULL);
  run(db, "DROP TABLE prep_lock");
}
END_TEST

/* Holds the next cancel requests at the gate, closed again. */
static void hold_cancels(void) {
  pthread_mutex_lock(&cancels.mu);
  cancels.entered = cancels.open = 0;
  pthread_mutex_unlock(&cancels.mu);
  actio__db_set_cancel_hook(hold_cancel);
}

/* 1 if backend pid's state is like `state` (pg_stat_activity). */
static int backend_in(int64_t pid, const char *state) {
  char p[24];
  snprintf(p, sizeof p, "%" PRId64, pid);
  return int64_of(db, NULL,
                  &(actio_db_request){.sql = "SELECT count(*) FROM pg_stat_activity "
                                             "WHERE pid = $1::int AND state LIKE $2",
                                      .nparams = 2, .params = (const char *const[]){p, state},
                                      .no_cache = 1}) == 1;
}

/* 1 if backend pid runs no statement any more (idle, or idle in a
 * transaction). */
static int backend_idle(int64_t pid) { return backend_in(pid, "idle%"); }

/* 1 while backend pid runs a statement. */
static int backend_active(int64_t pid) { return backend_in(pid, "active"); }

START_TEST(test_a_hung_cancel_request_holds_no_pool_end) {
  /* libpq's PQcancel has no timeout: to a server unreachable now, it hangs
   * for as long as the kernel tries to connect. Held at the gate here, it
   * must not hold the pool's end (its runtime's destroy) beyond the pool's
   * connect timeout: its thread keeps it, and ends once it is sent. */
  actio_runtime *rt2;
  ck_assert_int_eq(actio_runtime_create(&rt2, NULL), 0);
  actio_actor *a;
  actio_db_opts o = {.dsn = dsn, .max_connections = 1, .connect_timeout_ms = 200};
  ck_assert_int_eq(actio_db_spawn(rt2, &o, &a), 0);
  int64_t pid = scalar(a, "SELECT pg_backend_pid()");
  unsigned before = actio__db_cancellers();
  hold_cancels();
  actio_future *qf;
  ck_assert_int_eq(actio_db_query(a, "SELECT pg_sleep(600)", 0, NULL, &qf), 0);
  while (!backend_active(pid))
    usleep(1000); /* paces the polling */
  ck_assert_int_eq(actio_future_cancel(qf), 0);
  gate_wait_held(&cancels);
  ck_assert_int_eq(actio_future_wait(qf, -1), ACTIO_ECANCELED);
  actio_future_unref(qf);
  actio_runtime_destroy(rt2); /* returns though the request is held */
  ck_assert_uint_eq(actio__db_cancellers(), before); /* its thread, alive */
  gate_open(&cancels);
  while (actio__db_cancellers() == before)
    usleep(1000);
  /* The request went: the sleep ended on the server (else it would run
   * past the case's timeout). */
  while (backend_active(pid))
    usleep(1000);
  actio__db_set_cancel_hook(NULL);
}
END_TEST

/* The backend that waits for advisory lock `key`, or 0 for none. */
static int64_t advisory_waiter(int key) {
  char k[16];
  snprintf(k, sizeof k, "%d", key);
  return int64_of(db, NULL,
                  &(actio_db_request){
                      .sql = "SELECT coalesce(max(pid), 0) FROM pg_locks WHERE "
                             "locktype = 'advisory' AND objid = $1::int AND NOT granted",
                      .nparams = 1, .params = (const char *const[]){k}, .no_cache = 1});
}


/* The session `lock` holds advisory locks 1 and 2. */
static actio_db_session *lock_both(actio_future **lf) {
  actio_db_session *lock = acquire(db, lf);
  actio_future_unref(s_run(lock, "SELECT pg_advisory_lock(1), pg_advisory_lock(2)", 0));
  return lock;
}

/* Cancels af, a query that waits for advisory lock 1 (held by `lock`),
 * with its cancel request held on its way, and lets the query take the
 * lock: it ends on the server before the request lands. */
static void cancel_late(actio_future *af, actio_db_session *lock) {
  hold_cancels();
  ck_assert_int_eq(actio_future_cancel(af), 0);
  gate_wait_held(&cancels);
  actio_future_unref(s_run(lock, "SELECT pg_advisory_unlock(1)", 0));
}

/* af ended cancelled; lock's session and its future (lf) go. */
static void cancelled_late(actio_future *af, actio_db_session *lock, actio_future *lf) {
  ck_assert_int_eq(actio_future_wait(af, -1), ACTIO_ECANCELED);
  actio_future_unref(af);
  release(lock, 0); /* its advisory locks with it */
  actio_future_unref(lf);
  actio__db_set_cancel_hook(NULL);
}

/* A transaction on a, and its backend's pid. */
static actio_db_txn *begin_pid(actio_actor *a, actio_future **tf, int64_t *pid) {
  actio_future *f;
  ck_assert_int_eq(actio_db_begin(a, NULL, tf), 0);
  actio_db_txn *t = (actio_db_txn *)expect(*tf, 0);
  ck_assert_int_eq(actio_db_txn_query(t, "SELECT pg_backend_pid()", 0, NULL, &f), 0);
  ck_assert_int_eq(actio_db_int64(expect(f, 0), 0, 0, pid), 0);
  actio_future_unref(f);
  return t;
}

/* Waits for f and checks that it succeeded with the int64 want. */
static void expect_int64(actio_future *f, int64_t want) {
  int64_t v = -1;
  ck_assert_int_eq(actio_db_int64(expect(f, 0), 0, 0, &v), 0);
  ck_assert_int_eq(v, want);
}

START_TEST(test_txn_query_after_a_late_cancel) {
  /* A transaction's query A cancelled by its caller, but over on the
   * server before the cancel request reached it: the transaction's next
   * query B is sent once that request was delivered (the server, idle,
   * drops it), never while it is on its way, where it would land on B and
   * fail it (57014) although nobody cancelled B. */
  actio_actor *one = spawn((actio_db_opts){.max_connections = 1, .workers = 1});
  actio_future *lf, *tf, *af, *bf, *f;
  actio_db_session *lock = lock_both(&lf);
  int64_t pid;
  actio_db_txn *t = begin_pid(one, &tf, &pid);
  ck_assert_int_eq(actio_db_txn_query(t, "SELECT pg_advisory_xact_lock(1)", 0, NULL, &af), 0);
  await_lock_wait(pid);
  cancel_late(af, lock);
  while (!backend_idle(pid))
    usleep(1000); /* paces the polling: A is over on the server */
  ck_assert_int_eq(actio_db_txn_query(t, "SELECT 7 FROM pg_advisory_xact_lock(2)", 0, NULL,
                                      &bf), 0);
  /* B held back, or (the bug) on the server already, waiting for lock 2. */
  while (actio__db_held(one) == 0 && advisory_waiter(2) != pid)
    usleep(1000); /* paces the polling */
  gate_open(&cancels);
  if (actio__db_held(one) > 0)
    await_lock_wait(pid); /* sent once the request was delivered */
  else
    actio_future_wait(bf, -1); /* sent before: the request lands on it */
  actio_future_unref(s_run(lock, "SELECT pg_advisory_unlock(2)", 0));
  expect_int64(bf, 7);
  ck_assert_int_eq(actio_db_commit(t, &f), 0);
  expect(f, 0);
  actio_future_unref(f);
  actio_future_unref(bf);
  actio_future_unref(tf);
  cancelled_late(af, lock, lf);
}
END_TEST

START_TEST(test_session_query_sent_right_after_a_cancel) {
  /* A session's query A cancelled by its caller, who sends B at once: the
   * worker may take B in the wake-up that brought A's cancel. B still goes
   * out only once A's cancel request was delivered: sent behind A before
   * the request, B could take its second signal (PostgreSQL before 17
   * signals the backend, then its process group) and fail with a 57014
   * nobody asked for (test_prepare_first_use_cancelled_in_its_parse did,
   * once in about 40 runs). */
  actio_actor *one = spawn((actio_db_opts){.max_connections = 1, .workers = 1});
  actio_future *lf, *sf, *af, *bf;
  actio_db_session *lock = lock_both(&lf);
  actio_db_session *ss = acquire(one, &sf);
  int64_t pid = s_scalar(ss, "SELECT pg_backend_pid()");
  ck_assert_int_eq(actio_db_session_query(ss, "SELECT pg_advisory_lock(1)", 0, NULL, &af), 0);
  await_lock_wait(pid);
  hold_cancels();
  ck_assert_int_eq(actio_future_cancel(af), 0);
  ck_assert_int_eq(
      actio_db_session_query(ss, "SELECT 7 FROM pg_advisory_lock(2)", 0, NULL, &bf), 0);
  gate_wait_held(&cancels); /* A's request on its way */
  actio_future_unref(s_run(lock, "SELECT pg_advisory_unlock(1)", 0)); /* A ends */
  /* B held back, or (the bug) on the server, waiting for lock 2 behind A. */
  while (actio__db_held(one) == 0 && advisory_waiter(2) != pid)
    usleep(1000); /* paces the polling */
  ck_assert_uint_gt(actio__db_held(one), 0);
  gate_open(&cancels);
  await_lock_wait(pid); /* B sent once the request was delivered */
  actio_future_unref(s_run(lock, "SELECT pg_advisory_unlock(2)", 0));
  expect_int64(bf, 7);
  actio_future_unref(bf);
  release(ss, 0);
  actio_future_unref(sf);
  cancelled_late(af, lock, lf);
}
END_TEST

START_TEST(test_txn_query_behind_a_late_cancel) {
  /* B was sent behind A before A's cancel: the request, landing once A is
   * over, cancels B, which cannot be sent again (its transaction failed).
   * Its message says whose cancel it was, and the COMMIT that the
   * transaction was rolled back. */
  actio_actor *two = spawn((actio_db_opts){.max_connections = 2, .workers = 1});
  actio_future *lf, *tf, *uf, *af, *bf, *f;
  actio_db_session *lock = lock_both(&lf);
  int64_t pid, upid;
  actio_db_txn *t = begin_pid(two, &tf, &pid);
  actio_db_txn *u = begin_pid(two, &uf, &upid); /* on the other connection */
  ck_assert_int_eq(actio_db_txn_query(t, "SELECT pg_advisory_xact_lock(1)", 0, NULL, &af), 0);
  await_lock_wait(pid);
  ck_assert_int_eq(actio_db_txn_query(t, "SELECT 7 FROM pg_advisory_xact_lock(2)", 0, NULL,
                                      &bf), 0);
  /* The worker takes its inbox in order: once u's query is answered, B
   * was sent. */
  ck_assert_int_eq(actio_db_txn_query(u, "SELECT 1", 0, NULL, &f), 0);
  expect(f, 0);
  actio_future_unref(f);
  cancel_late(af, lock);
  while (advisory_waiter(2) != pid)
    usleep(1000); /* paces the polling: A is over, B runs */
  gate_open(&cancels);
  ck_assert_int_eq(actio_future_wait(bf, -1), ACTIO_ESQL);
  ck_assert_str_eq(actio_db_error_get(bf)->sqlstate, "57014");
  ck_assert_ptr_nonnull(strstr(actio_future_errmsg(bf), "cancel request of a query ahead of it"));
  ck_assert_int_eq(actio_db_commit(t, &f), 0);
  expect(f, ACTIO_ESQL);
  ck_assert_str_eq(actio_db_error_get(f)->sqlstate, "25P02");
  actio_future_unref(f);
  ck_assert_int_eq(actio_db_commit(u, &f), 0);
  expect(f, 0);
  actio_future_unref(f);
  actio_future_unref(bf);
  actio_future_unref(tf);
  actio_future_unref(uf);
  cancelled_late(af, lock, lf);
}
END_TEST

/* When backend pid started its statement, as text in buf. */
static void run_started(int64_t pid, char *buf, size_t size) {
  char p[24];
  snprintf(p, sizeof p, "%" PRId64, pid);
  actio_future *f;
  const char *v = NULL;
  ck_assert_int_eq(actio_db_send(db,
                                 &(actio_db_request){
                                     .sql = "SELECT query_start::text FROM pg_stat_activity "
                                            "WHERE pid = $1::int",
                                     .nparams = 1, .params = (const char *const[]){p},
                                     .no_cache = 1},
                                 &f),
                   0);
  ck_assert_int_eq(actio_db_text(expect(f, 0), 0, 0, &v), 0);
  snprintf(buf, size, "%s", v);
  actio_future_unref(f);
}

/* Waits until the statement backend pid started at `started` no longer
 * waits for a lock. */
static void run_over(int64_t pid, const char *started) {
  char p[24];
  snprintf(p, sizeof p, "%" PRId64, pid);
  while (int64_of(db, NULL,
                  &(actio_db_request){
                      .sql = "SELECT count(*) FROM pg_stat_activity WHERE pid = $1::int "
                             "AND query_start::text = $2 AND wait_event_type = 'Lock'",
                      .nparams = 2, .params = (const char *const[]){p, started},
                      .no_cache = 1}) > 0)
    usleep(1000); /* paces the polling */
}

/* A pool of two connections, one open (its backend's pid in *pid); *lock
 * holds advisory locks 1 and 2, and query A (*af) waits there for lock 1. */
static actio_actor *pool_waiting(int64_t *pid, actio_db_session **lock, actio_future **lf,
                                 actio_future **af) {
  actio_actor *two = spawn((actio_db_opts){.max_connections = 2, .workers = 1});
  *pid = scalar(two, "SELECT pg_backend_pid()");
  *lock = lock_both(lf);
  ck_assert_int_eq(actio_db_query(two, "SELECT pg_advisory_xact_lock(1)", 0, NULL, af), 0);
  await_lock_wait(*pid);
  return two;
}

START_TEST(test_pooled_query_after_a_late_cancel) {
  /* The same on a pooled connection: the query after A, sent while A's
   * cancel request is on its way, goes to another connection (opened for
   * it), never to A's. */
  actio_future *lf, *af, *cf;
  int64_t pid;
  actio_db_session *lock;
  actio_actor *two = pool_waiting(&pid, &lock, &lf, &af);
  cancel_late(af, lock);
  while (!backend_idle(pid))
    usleep(1000); /* paces the polling: A is over on the server */
  ck_assert_int_eq(actio_db_query(two, "SELECT pg_backend_pid() FROM pg_advisory_xact_lock(2)",
                                  0, NULL, &cf), 0);
  int64_t waiter;
  while ((waiter = advisory_waiter(2)) == 0)
    usleep(1000); /* paces the polling */
  ck_assert_int_ne(waiter, pid);
  gate_open(&cancels);
  actio_future_unref(s_run(lock, "SELECT pg_advisory_unlock(2)", 0));
  expect_int64(cf, waiter);
  actio_future_unref(cf);
  cancelled_late(af, lock, lf);
}
END_TEST

/* Query B, waiting for advisory lock 2, pipelined on the one open
 * connection of pool two behind A. */
static actio_future *query_behind(actio_actor *two) {
  actio_future *bf;
  ck_assert_int_eq(actio_db_query(two, "SELECT 7 FROM pg_advisory_xact_lock(2)", 0, NULL, &bf),
                   0);
  /* B is on A's connection once the pool opens a second one: the
   * dispatch that pipelined it asked for one more. */
  actio_db_stats s;
  for (actio_db_stats_get(two, &s); s.connections + s.connecting < 2; actio_db_stats_get(two, &s))
    usleep(1000); /* paces the polling */
  return bf;
}

START_TEST(test_pooled_query_behind_a_late_cancel) {
  /* A pooled query B pipelined behind A, whose cancel request lands on B
   * once A is over: B is sent again and succeeds, however late its error
   * comes back. */
  actio_future *lf, *af, *bf;
  int64_t pid;
  actio_db_session *lock;
  bf = query_behind(pool_waiting(&pid, &lock, &lf, &af));
  cancel_late(af, lock);
  while (advisory_waiter(2) != pid)
    usleep(1000); /* paces the polling: A is over, B runs */
  char started[64];
  run_started(pid, started, sizeof started);
  gate_open(&cancels);
  run_over(pid, started); /* that run of B cancelled by A's request */
  actio_future_unref(s_run(lock, "SELECT pg_advisory_unlock(2)", 0));
  expect_int64(bf, 7);
  actio_future_unref(bf);
  cancelled_late(af, lock, lf);
}
END_TEST

static Suite *db_session_suite(void) {
  Suite *s = suite_create("db_session");
  TCase *tc = tcase_with_timeout("sessions", 120);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_session_temp_table);
  tcase_add_test(tc, test_session_advisory_lock);
  tcase_add_test(tc, test_session_released_in_transaction);
  tcase_add_test(tc, test_session_bounded);
  suite_add_tcase(s, tc);
  tc = tcase_with_timeout("hooks", 120);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_on_connect_sql);
  tcase_add_test(tc, test_hook_failure);
  tcase_add_test(tc, test_on_release_of_a_lost_connection);
  suite_add_tcase(s, tc);
  tc = tcase_with_timeout("prepared", 120);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_prepare_describe_run_destroy);
  tcase_add_test(tc, test_prepare_on_every_connection);
  tcase_add_test(tc, test_prepare_cancelled_leaves_nothing);
  tcase_add_test(tc, test_a_hung_cancel_request_holds_no_pool_end);
  tcase_add_test(tc, test_prepare_destroyed_while_a_cancel_is_on_its_way);
  tcase_add_test(tc, test_prepare_first_use_cancelled_in_its_parse);
  tcase_add_test(tc, test_txn_query_after_a_late_cancel);
  tcase_add_test(tc, test_txn_query_behind_a_late_cancel);
  tcase_add_test(tc, test_session_query_sent_right_after_a_cancel);
  tcase_add_test(tc, test_pooled_query_after_a_late_cancel);
  tcase_add_test(tc, test_pooled_query_behind_a_late_cancel);
#ifdef ACTIO_DEBUG
  tcase_add_test_raise_signal(tc, test_prepare_destroyed_twice, SIGABRT);
#else
  tcase_add_test(tc, test_prepare_destroyed_twice);
#endif
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return run_db_suite("test_db_session", db_session_suite()); }

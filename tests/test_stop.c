/* test_stop.c: stopping a whole runtime (actio_runtime_stop) with requests
 * queued and running against stalled servers (the fixture's /delay, a
 * PostgreSQL query behind a held lock), and a supervised child's address,
 * which survives restarts. */
#include <pthread.h>
#include <signal.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "actio.h"
#include "fixture/fixture_spawn.h"
#include "pg_server.h"
#include "test_util.h"

static char fixture[128], pg_dir[256], dsn[1024];
static pid_t fixture_pid;

/* ---- the servers, started once by main ---- */

static int read_dsn(void) {
  char path[300];
  snprintf(path, sizeof path, "%s/env", pg_dir);
  return env_get(path, "PG_DSN", dsn, sizeof dsn);
}

/* ---- futures watched for completing exactly once ---- */

typedef struct watched {
  actio_future *f;
  _Atomic int calls; /* completions seen */
  _Atomic int status;
} watched;

static void on_watched(actio_future *f, void *arg) {
  watched *w = arg;
  atomic_store_explicit(&w->status, actio_future_status(f), memory_order_relaxed);
  atomic_fetch_add_explicit(&w->calls, 1, memory_order_release);
}

static void watch(watched *w, actio_future *f) {
  w->f = f;
  ck_assert_int_eq(actio_future_on_done(f, on_watched, w), 0);
}

/* Waits until w's future completed and its callback ran; returns the
 * status it saw. */
static int settle(watched *w) {
  int st = actio_future_wait(w->f, -1);
  /* A waiter may see the completion before the callbacks have run. */
  while (atomic_load_explicit(&w->calls, memory_order_acquire) == 0)
    sched_yield();
  ck_assert_int_eq(atomic_load_explicit(&w->status, memory_order_relaxed), st);
  return st;
}

/* Every future completed with `status`. */
static void expect_all(watched *w, int n, int status) {
  for (int i = 0; i < n; i++)
    ck_assert_int_eq(settle(&w[i]), status);
}

/* Once nothing can complete them any more (their runtime destroyed): each
 * completed exactly once. Frees them. */
static void once_each(watched *w, int n) {
  for (int i = 0; i < n; i++) {
    ck_assert_int_eq(atomic_load_explicit(&w[i].calls, memory_order_acquire), 1);
    actio_future_unref(w[i].f);
  }
}

/* ---- the runtime-wide stop-now ---- */

static int64_t scalar(actio_actor *db, const char *sql) {
  actio_future *f;
  ck_assert_int_eq(actio_db_query(db, sql, 0, NULL, &f), 0);
  int st = actio_future_wait(f, -1);
  if (st != 0)
    ck_abort_msg("%s: %s", sql, actio_future_errmsg(f));
  int64_t v = 0;
  if (actio_db_rows(actio_future_value(f)) > 0)
    ck_assert_int_eq(actio_db_int64(actio_future_value(f), 0, 0, &v), 0);
  actio_future_unref(f);
  return v;
}

static actio_db_txn *txn_begin(actio_actor *db, actio_future **tf) {
  ck_assert_int_eq(actio_db_begin(db, NULL, tf), 0);
  ck_assert_int_eq(actio_future_wait(*tf, -1), 0);
  return actio_future_value(*tf);
}

static void txn_exec(actio_db_txn *t, const char *sql) {
  actio_future *f;
  ck_assert_int_eq(actio_db_txn_query(t, sql, 0, NULL, &f), 0);
  ck_assert_int_eq(actio_future_wait(f, -1), 0);
  actio_future_unref(f);
}

enum { N_HTTP = 6, N_DB = 5, HTTP_SLOTS = 2, DB_CONNS = 2 };

START_TEST(test_stop_now_stalled) {
  /* A runtime of its own holds the lock the queries wait behind. */
  actio_runtime *obs_rt;
  actio_actor *obs;
  ck_assert_int_eq(actio_runtime_create(&obs_rt, NULL), 0);
  ck_assert_int_eq(actio_db_spawn(obs_rt, &(actio_db_opts){.dsn = dsn}, &obs), 0);
  scalar(obs, "CREATE TABLE IF NOT EXISTS gate (x int)");
  actio_future *tf;
  actio_db_txn *gate = txn_begin(obs, &tf);
  txn_exec(gate, "LOCK TABLE gate IN ACCESS EXCLUSIVE MODE");

  actio_runtime *rt;
  ck_assert_int_eq(actio_runtime_create(&rt, NULL), 0);
  const long hour = 3600L * 1000;
  actio_http_opts ho = {.workers = 1, .max_connections = HTTP_SLOTS, .timeout_ms = hour,
                        .connect_timeout_ms = hour};
  actio_db_opts dbo = {.dsn = dsn, .workers = 1, .max_connections = DB_CONNS,
                       .min_connections = DB_CONNS, .pipeline_depth = 1,
                       .acquire_timeout_ms = hour};
  actio_child_spec kids[] = {{.name = "http", .start = actio_http_child, .arg = &ho},
                             {.name = "db", .start = actio_db_child, .arg = &dbo}};
  actio_actor *sup;
  ck_assert_int_eq(actio_sup_spawn(rt, NULL, kids, 2, &sup), 0);
  actio_actor *http = actio_sup_lookup(sup, "http"), *db = actio_sup_lookup(sup, "db");

  watched w[N_HTTP + N_DB + 1];
  memset(w, 0, sizeof w);
  char u[256];
  snprintf(u, sizeof u, "%s/delay/%ld", fixture, hour);
  actio_future *f;
  for (int i = 0; i < N_HTTP; i++) {
    ck_assert_int_eq(actio_http_get(http, u, &f), 0);
    watch(&w[i], f);
  }
  for (int i = 0; i < N_DB; i++) {
    ck_assert_int_eq(actio_db_query(db, "SELECT count(*) FROM gate /* stopnow */", 0, NULL, &f), 0);
    watch(&w[N_HTTP + i], f);
  }
  ck_assert_int_eq(actio_future_create(&f), 0);
  ck_assert_int_eq(actio_future_set_deadline(rt, f, hour), 0);
  watch(&w[N_HTTP + N_DB], f);

  /* Running: the HTTP worker took what its slots carry, the rest waits in
   * the mailbox; the server holds DB_CONNS queries behind the lock, the
   * rest wait for a connection. */
  actio_actor_stats hs;
  for (actio_actor_stats_get(http, &hs); hs.depth != N_HTTP - HTTP_SLOTS;
       actio_actor_stats_get(http, &hs))
    sched_yield();
  while (scalar(obs, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                     "'Lock' AND query LIKE '%stop' || 'now%'") < DB_CONNS)
    sched_yield();
  for (int i = 0; i < N_HTTP + N_DB + 1; i++)
    ck_assert_int_eq(atomic_load_explicit(&w[i].calls, memory_order_acquire), 0);

  ck_assert_int_eq(actio_runtime_stop(rt, ACTIO_STOP_NOW), 0);
  /* It returned while the servers still stall: the lock is held (the gate
   * transaction goes on), the fixture's delay has an hour to run. */
  ck_assert_int_eq(scalar(obs, "SELECT count(*) FROM pg_locks WHERE mode = "
                               "'AccessExclusiveLock' AND granted AND relation = "
                               "'gate'::regclass"), 1);
  expect_all(w, N_HTTP + N_DB + 1, ACTIO_ECANCELED);

  /* Stopped: everything refuses, and a second stop is a no-op. */
  ck_assert_int_eq(actio_http_get(http, u, &f), ACTIO_ECLOSED);
  ck_assert_int_eq(actio_db_query(db, "SELECT 1", 0, NULL, &f), ACTIO_ECLOSED);
  ck_assert_int_eq(actio_future_create(&f), 0);
  ck_assert_int_eq(actio_future_set_deadline(rt, f, 10), ACTIO_ECLOSED);
  actio_future_unref(f);
  actio_actor *late;
  ck_assert_int_eq(actio_http_spawn(rt, NULL, &late), ACTIO_ECLOSED);
  ck_assert_int_eq(actio_runtime_stop(rt, ACTIO_STOP_DRAIN), 0);
  actio_runtime_destroy(rt);
  once_each(w, N_HTTP + N_DB + 1);

  actio_future *cf;
  ck_assert_int_eq(actio_db_commit(gate, &cf), 0);
  ck_assert_int_eq(actio_future_wait(cf, -1), 0);
  actio_future_unref(cf);
  actio_future_unref(tf);
  actio_runtime_destroy(obs_rt);
}
END_TEST

/* A drain waiting for a stalled transfer on another thread, then a
 * stop-now: the drain gives up waiting, and both calls return. */
static void *drain_thread(void *rt) {
  ck_assert_int_eq(actio_runtime_stop(rt, ACTIO_STOP_DRAIN), 0);
  return NULL;
}

START_TEST(test_stop_now_hurries_drain) {
  actio_runtime *rt;
  actio_actor *http;
  ck_assert_int_eq(actio_runtime_create(&rt, NULL), 0);
  ck_assert_int_eq(actio_http_spawn(rt, &(actio_http_opts){.workers = 1}, &http), 0);
  char u[256];
  snprintf(u, sizeof u, "%s/delay/3600000", fixture);
  watched w[1] = {0};
  actio_future *f;
  ck_assert_int_eq(actio_http_get(http, u, &f), 0);
  watch(&w[0], f);
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, drain_thread, rt), 0);
  /* The drain has begun once the mailbox refuses. */
  while (actio_http_get(http, u, &f) == 0) {
    actio_future_cancel(f);
    actio_future_unref(f);
    sched_yield();
  }
  ck_assert_int_eq(atomic_load_explicit(&w[0].calls, memory_order_acquire), 0);
  ck_assert_int_eq(actio_runtime_stop(rt, ACTIO_STOP_NOW), 0);
  ck_assert_int_eq(pthread_join(t, NULL), 0);
  expect_all(w, 1, ACTIO_ECANCELED);
  actio_runtime_destroy(rt);
  once_each(w, 1);
}
END_TEST

/* ---- a plain actor: drain, stop's refusals ---- */

static int count_handle(actio_actor *self, void *worker, void *msg, actio_future *reply) {
  (void)worker;
  if (msg == (void *)1) /* stop the runtime from its own worker */
    return actio_future_resolve(reply, (void *)(intptr_t)actio_runtime_stop(
                                           actio_actor_runtime(self), ACTIO_STOP_NOW),
                                NULL);
  return actio_future_resolve(reply, msg, NULL);
}

static const actio_behavior counter = {.handle = count_handle};

START_TEST(test_stop_drain_and_refusals) {
  actio_runtime *rt;
  actio_actor *a;
  ck_assert_int_eq(actio_runtime_create(&rt, NULL), 0);
  ck_assert_int_eq(actio_actor_spawn(rt, &counter, &(actio_actor_opts){.workers = 1}, &a), 0);
  ck_assert_int_eq(actio_runtime_stop(NULL, ACTIO_STOP_NOW), ACTIO_EINVAL);
  ck_assert_int_eq(actio_runtime_stop(rt, (actio_stop_mode)7), ACTIO_EINVAL);
  actio_future *f;
  ck_assert_int_eq(actio_ask(a, (void *)1, -1, &f), 0);
  ck_assert_int_eq(actio_future_wait(f, -1), 0);
  ck_assert_int_eq((int)(intptr_t)actio_future_value(f), ACTIO_ESTATE);
  actio_future_unref(f);
  /* A drain handles every message accepted before it. */
  watched w[100];
  memset(w, 0, sizeof w);
  for (int i = 0; i < 100; i++) {
    ck_assert_int_eq(actio_ask(a, (void *)(intptr_t)(i + 2), -1, &f), 0);
    watch(&w[i], f);
  }
  ck_assert_int_eq(actio_runtime_stop(rt, ACTIO_STOP_DRAIN), 0);
  for (int i = 0; i < 100; i++) {
    ck_assert(actio_future_is_done(w[i].f)); /* before the stop returned */
    ck_assert_int_eq(settle(&w[i]), 0);
    ck_assert_int_eq((int)(intptr_t)actio_future_value(w[i].f), i + 2);
  }
  ck_assert_int_eq(actio_tell(a, (void *)2, -1), ACTIO_ECLOSED);
  actio_runtime_destroy(rt);
  once_each(w, 100);
}
END_TEST

/* ---- a supervised child's address ---- */

enum { PING = 1, FAIL = 2 };
static _Atomic int generation; /* instances started */

typedef struct incarnation {
  int gen;
} incarnation;

/* Answers with its incarnation's number; FAIL also fails it. */
static int inc_handle(actio_actor *self, void *worker, void *msg, actio_future *reply) {
  (void)worker;
  incarnation *st = actio_actor_state(self);
  if (msg == (void *)FAIL)
    actio_actor_fail(self, ACTIO_EFATAL, "asked to fail");
  return reply ? actio_future_resolve(reply, (void *)(intptr_t)st->gen, NULL) : 0;
}

static const actio_behavior inc_behavior = {.handle = inc_handle};

typedef struct inc_arg {
  unsigned workers;
  pthread_mutex_t mu; /* a start waits while `hold` */
  pthread_cond_t cv;
  int hold, holding;
  int refuse;         /* once released, the start fails */
} inc_arg;

static int inc_start(actio_runtime *rt, void *arg, actio_actor **out) {
  inc_arg *x = arg;
  pthread_mutex_lock(&x->mu);
  x->holding = x->hold;
  pthread_cond_broadcast(&x->cv);
  while (x->hold)
    pthread_cond_wait(&x->cv, &x->mu);
  x->holding = 0;
  int refuse = x->refuse;
  pthread_mutex_unlock(&x->mu);
  if (refuse)
    return ACTIO_ENOMEM;
  incarnation *st = malloc(sizeof *st);
  if (st == NULL)
    return ACTIO_ENOMEM;
  st->gen = atomic_fetch_add_explicit(&generation, 1, memory_order_relaxed) + 1;
  actio_actor_opts o = {.name = "inc", .workers = x->workers, .state = st,
                        .state_free = free};
  return actio_actor_spawn(rt, &inc_behavior, &o, out);
}

/* x for a child of `workers` workers (0: scheduled), then a supervisor in
 * rt of that one child, "w", restarted at most max_restarts times, 1 ms
 * apart. Returns the child's address; inc_done(x) after the runtime. */
static actio_actor *supervise_inc(actio_runtime *rt, inc_arg *x, unsigned workers,
                                  unsigned max_restarts, actio_actor **sup) {
  *x = (inc_arg){.workers = workers};
  pthread_mutex_init(&x->mu, NULL);
  pthread_cond_init(&x->cv, NULL);
  actio_child_spec kids[] = {{.name = "w", .start = inc_start, .arg = x}};
  actio_sup_opts so = {.max_restarts = max_restarts, .backoff_ms = 1, .backoff_max_ms = 1};
  ck_assert_int_eq(actio_sup_spawn(rt, &so, kids, 1, sup), 0);
  actio_actor *addr = actio_sup_lookup(*sup, "w");
  ck_assert_ptr_nonnull(addr);
  return addr;
}

static void inc_done(inc_arg *x) {
  pthread_cond_destroy(&x->cv);
  pthread_mutex_destroy(&x->mu);
}

/* Fails the child through addr and returns once its supervisor's restart
 * waits in the start (the old instance stopped); `refuse`: that start will
 * fail. */
static void hold_restart(inc_arg *x, actio_actor *addr, int refuse) {
  pthread_mutex_lock(&x->mu);
  x->hold = 1;
  x->refuse = refuse;
  pthread_mutex_unlock(&x->mu);
  ck_assert_int_eq(actio_tell(addr, (void *)FAIL, -1), 0);
  pthread_mutex_lock(&x->mu);
  while (!x->holding)
    pthread_cond_wait(&x->cv, &x->mu);
  pthread_mutex_unlock(&x->mu);
}

static void release_restart(inc_arg *x) {
  pthread_mutex_lock(&x->mu);
  x->hold = 0;
  pthread_cond_broadcast(&x->cv);
  pthread_mutex_unlock(&x->mu);
}

/* The generation of the instance that answers. An ask taken by an
 * instance that failed (the senders' last message fails it) is cancelled
 * when its stop is a stop-now: the next ask reaches its successor. */
static int ask_gen(actio_actor *a) {
  for (;;) {
    actio_future *f;
    ck_assert_int_eq(actio_ask(a, (void *)PING, -1, &f), 0);
    int st = actio_future_wait(f, -1);
    int gen = (int)(intptr_t)actio_future_value(f);
    actio_future_unref(f);
    if (st != ACTIO_ECANCELED) {
      ck_assert_int_eq(st, 0);
      return gen;
    }
  }
}

enum { SENDERS = 4, ASKS = 2000, FAIL_EVERY = 50 };

typedef struct sender {
  actio_actor *to;
  int id;
  watched *w;      /* ASKS of them */
  int accepted, refused;
} sender;

static void *send_many(void *arg) {
  sender *s = arg;
  for (int i = 0; i < ASKS; i++) {
    void *msg = s->id == 0 && i % FAIL_EVERY == FAIL_EVERY - 1 ? (void *)FAIL : (void *)PING;
    actio_future *f;
    int rc = actio_ask(s->to, msg, -1, &f);
    if (rc == 0) {
      watch(&s->w[s->accepted++], f);
    } else {
      s->refused++;
    }
  }
  return NULL;
}

static void address_survives(unsigned workers, actio_stop_mode stop) {
  actio_runtime *rt;
  ck_assert_int_eq(actio_runtime_create(&rt, NULL), 0);
  inc_arg x = {.workers = workers};
  pthread_mutex_init(&x.mu, NULL);
  pthread_cond_init(&x.cv, NULL);
  actio_child_spec kids[] = {{.name = "w", .start = inc_start, .arg = &x, .stop = stop}};
  actio_sup_opts so = {.max_restarts = 10000, .period_ms = 60000, .backoff_ms = 1,
                       .backoff_max_ms = 1};
  actio_actor *sup;
  ck_assert_int_eq(actio_sup_spawn(rt, &so, kids, 1, &sup), 0);
  actio_actor *addr = actio_sup_lookup(sup, "w");
  ck_assert_ptr_nonnull(addr);

  /* Several threads ask through the address while every 50th ask fails
   * the instance: each accepted ask completes once, with a value or
   * (stopped now) cancelled; none is refused, since each waits out the
   * restarts. */
  sender s[SENDERS];
  pthread_t t[SENDERS];
  for (int i = 0; i < SENDERS; i++) {
    s[i] = (sender){.to = addr, .id = i, .w = calloc(ASKS, sizeof(watched))};
    ck_assert_ptr_nonnull(s[i].w);
  }
  start_threads(t, SENDERS, send_many, s, sizeof s[0]);
  join_threads(t, SENDERS);
  int values = 0, cancelled = 0, accepted = 0;
  for (int i = 0; i < SENDERS; i++) {
    ck_assert_int_eq(s[i].refused, 0);
    accepted += s[i].accepted;
    for (int k = 0; k < s[i].accepted; k++) {
      int st = settle(&s[i].w[k]);
      if (st == 0)
        values++;
      else if (st == ACTIO_ECANCELED && stop == ACTIO_STOP_NOW)
        cancelled++;
      else
        ck_abort_msg("ask completed with %s", actio_err_name(st));
    }
  }
  ck_assert_int_eq(accepted, SENDERS * ASKS);
  ck_assert_int_eq(values + cancelled, accepted);
  /* A restart is counted once its new instance runs, which may be after
   * the old one drained the last ask: wait for it. */
  actio_sup_stats ss;
  for (actio_sup_stats_get(sup, &ss); ss.restarts < 1; actio_sup_stats_get(sup, &ss))
    sched_yield();
  ck_assert_int_eq(ss.gave_up, 0);

  /* After a restart, the same address reaches the new instance. The
   * supervisor's next start is held, to catch the address mid-restart. */
  int before = ask_gen(addr);
  hold_restart(&x, addr, 0);
  /* Mid-restart: no time to wait is refused at once, a short wait times
   * out, a patient send waits for the new instance. */
  ck_assert_int_eq(actio_tell(addr, (void *)PING, 0), ACTIO_EAGAIN);
  actio_future *f;
  ck_assert_int_eq(actio_ask(addr, (void *)PING, 1, &f), ACTIO_ETIMEDOUT);
  ck_assert_int_eq(actio_runtime_dead_letters(rt), 0);
  release_restart(&x);
  int after = ask_gen(addr);
  ck_assert_int_gt(after, before);
  ck_assert_int_eq(after, atomic_load_explicit(&generation, memory_order_relaxed));
  ck_assert_ptr_eq(actio_sup_lookup(sup, "w"), addr);

  /* Stopped for good with its supervisor: sends fail as dead letters. */
  ck_assert_int_eq(actio_actor_stop(sup, ACTIO_STOP_DRAIN), 0);
  ck_assert_int_eq(actio_tell(addr, (void *)PING, -1), ACTIO_ECLOSED);
  ck_assert_uint_eq(actio_runtime_dead_letters(rt), 1);
  ck_assert_ptr_null(actio_sup_lookup(sup, "w"));
  actio_runtime_destroy(rt);
  for (int i = 0; i < SENDERS; i++) {
    once_each(s[i].w, s[i].accepted);
    free(s[i].w);
  }
  pthread_cond_destroy(&x.cv);
  pthread_mutex_destroy(&x.mu);
}

static void *ask_thread(void *arg) {
  actio_future *f = NULL;
  int rc = actio_ask(arg, (void *)PING, -1, &f);
  actio_future_unref(f);
  return (void *)(intptr_t)rc;
}

/* A restart that fails until the supervisor gives up: a send waiting for
 * it (or coming after) is refused with ACTIO_ECLOSED, not left waiting. */
START_TEST(test_address_gives_up) {
  actio_runtime *rt;
  ck_assert_int_eq(actio_runtime_create(&rt, NULL), 0);
  inc_arg x;
  actio_actor *sup, *addr = supervise_inc(rt, &x, 0, 1, &sup);
  hold_restart(&x, addr, 1);
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, ask_thread, addr), 0);
  release_restart(&x);
  void *rc;
  ck_assert_int_eq(pthread_join(t, &rc), 0);
  ck_assert_int_eq((int)(intptr_t)rc, ACTIO_ECLOSED);
  ck_assert_int_eq(actio_actor_stop(sup, ACTIO_STOP_DRAIN), 0);
  actio_sup_stats ss;
  actio_sup_stats_get(sup, &ss);
  ck_assert_int_eq(ss.gave_up, 1);
  ck_assert_ptr_null(actio_sup_lookup(sup, "w"));
  actio_runtime_destroy(rt);
  inc_done(&x);
}
END_TEST

START_TEST(test_address_scheduled_now) { address_survives(0, ACTIO_STOP_NOW); }
END_TEST

START_TEST(test_address_workers_drain) { address_survives(2, ACTIO_STOP_DRAIN); }
END_TEST

/* ---- sends that a restart waits for ---- */

enum { SELF_SEND = 3 };
static _Atomic int self_send_rc = 1; /* 1: not sent yet */

/* SELF_SEND fails the instance, waits until its supervisor has closed its
 * mailbox (a send to itself is refused), then sends to its own address,
 * whose restart waits for this very handler to return. */
static int selfish_handle(actio_actor *self, void *worker, void *msg, actio_future *reply) {
  (void)worker;
  (void)reply;
  if (msg != (void *)SELF_SEND)
    return 0;
  actio_actor *addr = *(actio_actor **)actio_actor_state(self);
  actio_actor_fail(self, ACTIO_EFATAL, "asked to fail");
  while (actio_tell(self, (void *)PING, 0) != ACTIO_ECLOSED)
    sched_yield(); /* accepted (drained later) or full: not closed yet */
  atomic_store_explicit(&self_send_rc, actio_tell(addr, (void *)PING, -1),
                        memory_order_release);
  return 0;
}

static const actio_behavior selfish_behavior = {.handle = selfish_handle};

static int selfish_start(actio_runtime *rt, void *arg, actio_actor **out) {
  actio_actor_opts o = {.name = "selfish", .workers = 1, .state = arg};
  return actio_actor_spawn(rt, &selfish_behavior, &o, out);
}

/* A child that sends to its own address while it is being stopped for a
 * restart is refused (ACTIO_EAGAIN) rather than waiting for a restart that
 * waits for it; the restart then completes. */
START_TEST(test_address_self_send_in_stop) {
  actio_runtime *rt;
  ck_assert_int_eq(actio_runtime_create(&rt, NULL), 0);
  actio_actor *addr = NULL;
  actio_child_spec kids[] = {{.name = "s", .start = selfish_start, .arg = &addr}};
  actio_sup_opts so = {.max_restarts = 10, .backoff_ms = 1, .backoff_max_ms = 1};
  actio_actor *sup;
  ck_assert_int_eq(actio_sup_spawn(rt, &so, kids, 1, &sup), 0);
  addr = actio_sup_lookup(sup, "s");
  ck_assert_ptr_nonnull(addr);
  ck_assert_int_eq(actio_tell(addr, (void *)SELF_SEND, -1), 0);
  actio_sup_stats ss;
  do { /* the restart completes: it waited for the handler, not forever */
    sched_yield();
    actio_sup_stats_get(sup, &ss);
  } while (ss.restarts < 1 || atomic_load_explicit(&self_send_rc, memory_order_acquire) == 1);
  ck_assert_int_eq(atomic_load_explicit(&self_send_rc, memory_order_acquire), ACTIO_EAGAIN);
  ck_assert_int_eq(actio_actor_stop(sup, ACTIO_STOP_DRAIN), 0);
  actio_runtime_destroy(rt);
}
END_TEST

enum { GO = 4 };
static _Atomic int sched_send_rc = 1, sched_wait_rc, sched_first_rc = 1;

/* On the runtime's only scheduler thread: queues a message for the child
 * behind the address (it cannot run: this thread is the only one), so that
 * its restart needs this thread for the child's last run; fails the child,
 * waits until it is closed, then sends to the address with no limit. (An
 * idle child would stop without a run, and its restart could finish before
 * the first send here, which would then go to the new instance.) */
static int sender_handle(actio_actor *self, void *worker, void *msg, actio_future *reply) {
  (void)worker;
  (void)reply;
  if (msg != (void *)GO)
    return 0;
  actio_actor *addr = *(actio_actor **)actio_actor_state(self);
  atomic_store_explicit(&sched_first_rc, actio_tell(addr, (void *)PING, 0),
                        memory_order_relaxed);
  actio_actor_fail(addr, ACTIO_EFATAL, "failed by its sender");
  int rc;
  while ((rc = actio_tell(addr, (void *)PING, 0)) == 0 || rc == ACTIO_EFULL)
    ; /* queued there (a last run is owed), or full: not closed yet */
  /* Closed for the restart, which waits for that last run. */
  atomic_store_explicit(&sched_wait_rc, rc, memory_order_relaxed);
  atomic_store_explicit(&sched_send_rc, actio_tell(addr, (void *)PING, -1),
                        memory_order_release);
  return 0;
}

static const actio_behavior sender_behavior = {.handle = sender_handle};

/* A scheduled actor sending to a scheduled child's address while the child
 * restarts, with one scheduler thread: the send runs the child's last run
 * in its place instead of holding the thread the restart waits for. */
START_TEST(test_address_scheduled_sender) {
  actio_runtime *rt;
  actio_runtime_opts ro = {.threads = 1};
  ck_assert_int_eq(actio_runtime_create(&rt, &ro), 0);
  inc_arg x;
  actio_actor *sup, *snd, *addr = supervise_inc(rt, &x, 0, 10, &sup);
  int before = ask_gen(addr);
  actio_actor_opts o = {.name = "sender", .state = &addr};
  ck_assert_int_eq(actio_actor_spawn(rt, &sender_behavior, &o, &snd), 0);
  ck_assert_int_eq(actio_tell(snd, (void *)GO, -1), 0);
  while (atomic_load_explicit(&sched_send_rc, memory_order_acquire) == 1)
    sched_yield();
  ck_assert_int_eq(atomic_load_explicit(&sched_first_rc, memory_order_relaxed), 0);
  ck_assert_int_eq(atomic_load_explicit(&sched_wait_rc, memory_order_relaxed), ACTIO_EAGAIN);
  ck_assert_int_eq(atomic_load_explicit(&sched_send_rc, memory_order_acquire), 0);
  ck_assert_int_gt(ask_gen(addr), before);
  ck_assert_int_eq(actio_actor_stop(snd, ACTIO_STOP_DRAIN), 0);
  ck_assert_int_eq(actio_actor_stop(sup, ACTIO_STOP_DRAIN), 0);
  actio_runtime_destroy(rt);
  inc_done(&x);
}
END_TEST

static void *runtime_stop_now_thread(void *rt) {
  return (void *)(intptr_t)actio_runtime_stop(rt, ACTIO_STOP_NOW);
}

/* A runtime-wide stop-now releases a send waiting for a restart that will
 * never come (ACTIO_ECLOSED), before that restart's start returns. */
START_TEST(test_address_stop_now_releases) {
  actio_runtime *rt;
  ck_assert_int_eq(actio_runtime_create(&rt, NULL), 0);
  inc_arg x;
  actio_actor *sup, *addr = supervise_inc(rt, &x, 1, 10, &sup);
  hold_restart(&x, addr, 0);
  pthread_t asker, stopper;
  ck_assert_int_eq(pthread_create(&asker, NULL, ask_thread, addr), 0);
  ck_assert_int_eq(pthread_create(&stopper, NULL, runtime_stop_now_thread, rt), 0);
  void *rc;
  ck_assert_int_eq(pthread_join(asker, &rc), 0); /* with the start still held */
  ck_assert_int_eq((int)(intptr_t)rc, ACTIO_ECLOSED);
  release_restart(&x);
  ck_assert_int_eq(pthread_join(stopper, &rc), 0);
  ck_assert_int_eq((int)(intptr_t)rc, 0);
  actio_runtime_destroy(rt);
  inc_done(&x);
}
END_TEST

static int lookup_start(actio_runtime *rt, void *arg, actio_actor **out) {
  (void)rt;
  *out = actio_sup_lookup(arg, "w"); /* another supervisor's child */
  return 0;
}

/* A start that gives an address (someone's child already) is refused. */
START_TEST(test_address_as_child_refused) {
  actio_runtime *rt;
  ck_assert_int_eq(actio_runtime_create(&rt, NULL), 0);
  inc_arg x;
  actio_actor *sup, *other, *addr = supervise_inc(rt, &x, 1, 10, &sup);
  actio_sup_opts so = {0};
  actio_child_spec borrowed[] = {{.name = "b", .start = lookup_start, .arg = sup}};
  ck_assert_int_eq(actio_sup_spawn(rt, &so, borrowed, 1, &other), ACTIO_EINVAL);
  ck_assert_int_gt(ask_gen(addr), 0); /* untouched */
  actio_runtime_destroy(rt);
  inc_done(&x);
}
END_TEST

static Suite *stop_suite(void) {
  Suite *s = suite_create("stop");
  TCase *tc = tcase_with_timeout("runtime", 240);
  tcase_add_test(tc, test_stop_now_stalled);
  tcase_add_test(tc, test_stop_now_hurries_drain);
  tcase_add_test(tc, test_stop_drain_and_refusals);
  suite_add_tcase(s, tc);
  tc = tcase_with_timeout("address", 240);
  tcase_add_test(tc, test_address_scheduled_now);
  tcase_add_test(tc, test_address_workers_drain);
  tcase_add_test(tc, test_address_gives_up);
  tcase_add_test(tc, test_address_self_send_in_stop);
  tcase_add_test(tc, test_address_scheduled_sender);
  tcase_add_test(tc, test_address_stop_now_releases);
  tcase_add_test(tc, test_address_as_child_refused);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  snprintf(pg_dir, sizeof pg_dir, "/tmp/actio-test-stop-XXXXXX");
  if (fixture_spawn(FIXTURE_SERVER, &fixture_pid, fixture, sizeof fixture) != 0 ||
      mkdtemp(pg_dir) == NULL || pg_server(PG_SERVER_SH, "start", pg_dir) != 0 ||
      read_dsn() != 0) {
    fprintf(stderr, "test_stop: could not start the servers (%s)\n", pg_dir);
    return EXIT_FAILURE;
  }
  int rc = run_suite(stop_suite());
  pg_server(PG_SERVER_SH, "stop", pg_dir);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", pg_dir);
  if (system(cmd) != 0)
    fprintf(stderr, "test_stop: could not remove %s\n", pg_dir);
  kill(fixture_pid, SIGTERM);
  waitpid(fixture_pid, NULL, 0);
  return rc;
}

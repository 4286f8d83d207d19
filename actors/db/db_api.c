/* db_api.c: the database actor's public face: spawning its pool, queries
 * and scripts through the mailbox, and the pool's counters. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "actors/core/actor_internal.h"
#include "actors/db/db_internal.h"

/* ---- spawning ---- */

static void state_free(void *p) {
  db_state *st = p;
  actio__db_canceller_stop(st);
  ACTIO__ASSERT(st->grave == NULL); /* each stopped worker let go of it */
  pthread_mutex_destroy(&st->gmu);
  free(st->stopped);
  actio__bell_unref(st->listener);
  free(st->pub);
  free((char *)st->o.on_connect_sql);
  free((char *)st->o.dsn);
  free(st);
}

int actio_db_spawn(actio_runtime *rt, const actio_db_opts *opts, actio_actor **out) {
  if (rt == NULL || out == NULL || opts == NULL || opts->dsn == NULL)
    return ACTIO_EINVAL;
  if (actio__pg_dsn_check(opts->dsn) != 0)
    return ACTIO_EDSN;
  db_state *st = calloc(1, sizeof *st);
  if (st == NULL)
    return ACTIO_ENOMEM;
  actio_db_opts o = *opts;
  o.dsn = strdup(opts->dsn);
  o.on_connect_sql = opts->on_connect_sql ? strdup(opts->on_connect_sql) : NULL;
  if (o.dsn == NULL || (opts->on_connect_sql != NULL && o.on_connect_sql == NULL)) {
    free((char *)o.dsn);
    free((char *)o.on_connect_sql);
    free(st);
    return ACTIO_ENOMEM;
  }
  o.max_connections = o.max_connections ? o.max_connections : 10;
  /* Two threads by default: a client's share of the kernel's loopback and
   * wake-up work is then done on two cores (pgbench's -j 2). */
  o.workers = o.workers ? o.workers : o.max_connections >= 2 ? 2 : 1;
  if (o.min_connections == 0 && !o.lazy)
    o.min_connections = 1;
  if (o.min_connections > o.max_connections)
    o.min_connections = o.max_connections;
  if (o.max_connections < o.workers)
    o.max_connections = o.workers;
  o.pipeline_depth = o.pipeline_depth ? o.pipeline_depth : 32;
  o.statement_cache = o.statement_cache ? o.statement_cache : 256;
  o.connect_timeout_ms = o.connect_timeout_ms > 0 ? o.connect_timeout_ms : 10000;
  o.acquire_timeout_ms = o.acquire_timeout_ms > 0 ? o.acquire_timeout_ms : 30000;
  o.health_check_ms = o.health_check_ms ? o.health_check_ms : 30000;
  o.max_lifetime_ms = o.max_lifetime_ms ? o.max_lifetime_ms : 3600000;
  o.reconnect_min_ms = o.reconnect_min_ms > 0 ? o.reconnect_min_ms : 100;
  o.reconnect_max_ms = o.reconnect_max_ms > 0 ? o.reconnect_max_ms : 10000;
  if (o.reconnect_max_ms < o.reconnect_min_ms)
    o.reconnect_max_ms = o.reconnect_min_ms;
  st->o = o;
  st->rt = rt;
  st->on_unit = actio__db_on_unit;
  st->pub = aligned_alloc(_Alignof(db_pub), o.workers * sizeof *st->pub);
  if (st->pub != NULL)
    memset(st->pub, 0, o.workers * sizeof *st->pub);
  st->stopped = calloc(o.workers, 1);
  int rc = st->pub == NULL || st->stopped == NULL ? ACTIO_ENOMEM
                                                  : actio__db_canceller_start(st);
  if (rc != 0) {
    free(st->stopped);
    free(st->pub);
    free((char *)o.on_connect_sql);
    free((char *)o.dsn);
    free(st);
    return rc;
  }
  pthread_mutex_init(&st->gmu, NULL);
  actio_actor_opts ao = {
      .name = "db",
      .workers = o.workers,
      .capacity = o.capacity ? o.capacity : 4096,
      .state = st,
      .state_free = state_free,
  };
  rc = actio_actor_spawn(rt, &actio__db_behavior, &ao, out);
  if (rc == 0)
    st->self = *out;
  return rc;
}

int actio_db_child(actio_runtime *rt, void *opts, actio_actor **out) {
  return actio_db_spawn(rt, opts, out);
}

/* ---- queries ---- */

/* Each call through db holds a pin on it (actio__actor_pin): the state it
 * reads is a supervised child's instance's, which may be replaced and
 * freed meanwhile otherwise. */
static int db_send(actio_actor *db, const actio_db_request *req, actio_future **out) {
  db_state *st = actio__db_state(db);
  if (st == NULL || out == NULL)
    return ACTIO_EINVAL;
  int rc = actio__db_request_check(req);
  if (rc != 0)
    return rc;
  db_req *r = actio__db_req_new(K_QUERY, req, NULL, 0);
  if (r == NULL)
    return ACTIO_ENOMEM;
  r->nocache = req->no_cache != 0;
  return actio__db_submit(db, st, r, req->timeout_ms, out);
}

int actio_db_send(actio_actor *db, const actio_db_request *req, actio_future **out) {
  if (db == NULL)
    return ACTIO_EINVAL;
  actio__actor_pin(db);
  int rc = db_send(db, req, out);
  actio__actor_unpin(db);
  return rc;
}

int actio_db_query(actio_actor *db, const char *sql, int nparams,
                   const char *const *params, actio_future **out) {
  actio_db_request q = {.sql = sql, .nparams = nparams, .params = params};
  return actio_db_send(db, &q, out);
}

static int db_script(actio_actor *db, const char *sql, actio_future **out) {
  db_state *st = actio__db_state(db);
  if (st == NULL || out == NULL || sql == NULL)
    return ACTIO_EINVAL;
  actio_db_request q = {.sql = sql};
  db_req *r = actio__db_req_new(K_SCRIPT, &q, NULL, 0);
  if (r == NULL)
    return ACTIO_ENOMEM;
  return actio__db_submit(db, st, r, 0, out);
}

int actio_db_script(actio_actor *db, const char *sql, actio_future **out) {
  if (db == NULL)
    return ACTIO_EINVAL;
  actio__actor_pin(db);
  int rc = db_script(db, sql, out);
  actio__actor_unpin(db);
  return rc;
}

/* ---- stats ---- */

void actio_db_stats_get(actio_actor *db, actio_db_stats *out) {
  if (out == NULL)
    return;
  memset(out, 0, sizeof *out);
  if (db == NULL)
    return;
  actio__actor_pin(db);
  db_state *st = actio__db_state(db);
  if (st == NULL) {
    actio__actor_unpin(db);
    return;
  }
  /* Relaxed: counters, each worker's share read one by one. */
  for (unsigned i = 0; i < st->o.workers; i++) {
    const db_pub *p = &st->pub[i];
    out->connections += atomic_load_explicit(&p->open, memory_order_relaxed);
    out->idle += atomic_load_explicit(&p->idle, memory_order_relaxed);
    out->connecting += atomic_load_explicit(&p->connecting, memory_order_relaxed);
    out->queries += atomic_load_explicit(&p->queries, memory_order_relaxed);
  }
  out->connects = atomic_load_explicit(&st->connects, memory_order_relaxed);
  out->failures = atomic_load_explicit(&st->failures, memory_order_relaxed);
  out->cancels = atomic_load_explicit(&st->cancels, memory_order_relaxed);
  actio__actor_unpin(db);
}

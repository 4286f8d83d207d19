/* nats_api.c: the NATS connection's actor: spawn it (connect, the reply
 * inbox), hear of cnats's connection events, stop it, read its
 * counters. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actio.h"
#include "actio/supervisor.h"
#include "actors/core/actor_internal.h"
#include "actors/nats/nats_internal.h"

enum { N_STRINGS = 10 };

/* The state before the actor runs: the settings, copied. */
typedef struct nats_boot {
  actio__nats_state st; /* first: actio_actor_state points at both */
  actio__nats_conf conf;
  char *strings[N_STRINGS];
  char url_shown[256];  /* the URL, secrets masked */
  char *errbuf;         /* the spawner's */
  size_t errbuf_size;
} nats_boot;

/* nats_serve.c finds a connection's state as its actor's. */
_Static_assert(offsetof(nats_boot, st) == 0, "the state first");

/* Connection instances allocated (actio__nats_instances). Relaxed: a
 * count only. */
static _Atomic long instances;

long actio__nats_instances(void) {
  return atomic_load_explicit(&instances, memory_order_relaxed);
}

static void state_free(void *p) {
  nats_boot *b = p;
  atomic_fetch_sub_explicit(&instances, 1, memory_order_relaxed);
  actio__nats_state *st = &b->st;
  /* Closed before JetStream's context goes (the actor's stop did it
   * unless it never ran): no ack comes in after, and an ack cnats was
   * handing over meanwhile frees the context at its end. */
  actio__nats_close(st->conn);
  actio__nats_js_destroy(st->js);
  actio__nats_destroy(st->conn);
  free(st->buckets);
  free(st->heap);
  pthread_cond_destroy(&st->cv);
  pthread_mutex_destroy(&st->mu);
  pthread_mutex_destroy(&st->alarm_mu);
  pthread_mutex_destroy(&st->svc_mu);
  for (int i = 0; i < N_STRINGS; i++)
    free(b->strings[i]);
  free(b);
}

static const char *keep(nats_boot *b, int i, const char *s, int *ok) {
  if (s == NULL)
    return NULL;
  b->strings[i] = strdup(s);
  if (b->strings[i] == NULL)
    *ok = 0;
  return b->strings[i];
}

/* cnats's connection events, on its thread. */
static void on_event(void *arg, actio__nats_event ev) {
  nats_boot *b = arg;
  actio__nats_state *st = &b->st;
  char why[320];
  pthread_mutex_lock(&st->mu);
  int closed = st->closed;
  actio_actor *self = st->self;
  if (ev == ACTIO__NATS_DISCONNECTED)
    st->down = 1;
  else if (ev == ACTIO__NATS_RECONNECTED)
    st->down = 0;
  pthread_mutex_unlock(&st->mu);
  if (closed || self == NULL)
    return; /* our own close, or the connect */
  switch (ev) {
  case ACTIO__NATS_DISCONNECTED:
    atomic_fetch_add_explicit(&st->disconnects, 1, memory_order_relaxed); /* statistics */
    snprintf(why, sizeof why, "NATS connection to %s lost; reconnecting", b->url_shown);
    if (st->disconnect == ACTIO_NATS_FAIL)
      actio__nats_pending_fail_all(st, ACTIO_ENATS, "the NATS connection was lost");
    actio__actor_notice(self, ACTIO_SUP_CHILD_DISCONNECTED, ACTIO_ENATS, why);
    break;
  case ACTIO__NATS_RECONNECTED:
    atomic_fetch_add_explicit(&st->reconnects, 1, memory_order_relaxed); /* statistics */
    snprintf(why, sizeof why, "NATS connection to %s back", b->url_shown);
    actio__actor_notice(self, ACTIO_SUP_CHILD_RECONNECTED, 0, why);
    break;
  case ACTIO__NATS_CLOSED:
    snprintf(why, sizeof why, "NATS connection to %s closed: reconnects ran out",
             b->url_shown);
    actio__nats_pending_fail_all(st, ACTIO_ENATS, "the NATS connection closed");
    actio_actor_fail(self, ACTIO_ENATS, why);
    break;
  }
}

/* Connects, on the spawning thread (a scheduled actor's one init). */
static int nats_init(actio_actor *self, void **worker) {
  nats_boot *b = actio_actor_state(self);
  actio__nats_state *st = &b->st;
  *worker = NULL;
  char err[512];
  int rc = actio__nats_connect(&b->conf, &st->conn, err, sizeof err);
  if (rc == 0) {
    st->max_payload = actio__nats_max_payload(st->conn);
    rc = actio__nats_pending_start(st);
    if (rc != 0)
      snprintf(err, sizeof err, "NATS %s: the reply inbox: %s", b->url_shown,
               actio_strerror(rc));
    else if ((rc = actio__nats_js_create(st->conn, actio__nats_js_on_ack, st, &st->js)) != 0)
      snprintf(err, sizeof err, "NATS %s: JetStream: %s", b->url_shown, actio_strerror(rc));
  }
  if (rc != 0) {
    if (b->errbuf != NULL && b->errbuf_size > 0)
      snprintf(b->errbuf, b->errbuf_size, "%s", err);
    actio__nats_pending_stop(st);
    actio__nats_close(st->conn);
    return rc;
  }
  pthread_mutex_lock(&st->mu);
  st->self = self; /* events count from here on */
  pthread_mutex_unlock(&st->mu);
  return 0;
}

/* The one message a connection takes is its own alarm (nats_ask.c). */
static int nats_handle(actio_actor *self, void *worker, void *msg, actio_future *reply) {
  (void)worker;
  (void)reply;
  if (msg != &actio__nats_alarm_msg)
    return ACTIO_EINVAL; /* use its calls */
  actio__nats_pending_expire(&((nats_boot *)actio_actor_state(self))->st);
  return 0;
}

/* The actor stops: its services, then its requests, then the connection,
 * then the publishes whose acks can no longer come. */
static void nats_stop(actio_actor *self, void *worker) {
  (void)worker;
  actio__nats_state *st = &((nats_boot *)actio_actor_state(self))->st;
  actio__nats_services_stop(st);
  actio__nats_pending_stop(st);
  actio__nats_close(st->conn);
  actio__nats_js_fail_pending(st->js);
}

const actio_behavior actio__nats_behavior = {
    .worker_init = nats_init,
    .handle = nats_handle,
    .worker_stop = nats_stop,
};

int actio__nats_state_of(actio_actor *nats, actio__nats_state **out) {
  if (actio_actor_behavior(nats) != &actio__nats_behavior)
    return ACTIO_EINVAL;
  *out = &((nats_boot *)actio_actor_state(nats))->st;
  return 0;
}

int actio_nats_spawn(actio_runtime *rt, const actio_nats_opts *opts, actio_actor **out) {
  if (rt == NULL || opts == NULL || opts->url == NULL || out == NULL ||
      opts->max_reconnect < -1 || opts->connect_timeout_ms < 0 || opts->timeout_ms < 0 ||
      opts->reconnect_wait_ms < 0 || (opts->nkey_seed_file != NULL) != (opts->nkey_public != NULL) ||
      (opts->client_cert != NULL) != (opts->client_key != NULL))
    return ACTIO_EINVAL;
  nats_boot *b = calloc(1, sizeof *b);
  if (b == NULL)
    return ACTIO_ENOMEM;
  atomic_fetch_add_explicit(&instances, 1, memory_order_relaxed);
  actio__nats_state *st = &b->st;
  pthread_cond_init(&st->cv, NULL);
  pthread_mutex_init(&st->mu, NULL);
  pthread_mutex_init(&st->alarm_mu, NULL);
  st->alarm_due = INT64_MAX;
  pthread_mutex_init(&st->svc_mu, NULL);
  st->rt = rt;
  st->timeout_ms = opts->timeout_ms ? opts->timeout_ms : 10000;
  st->max_pending = opts->max_pending ? opts->max_pending : 4096;
  st->disconnect = opts->disconnect;
  atomic_init(&st->next_token, 1);
  b->errbuf = opts->errbuf;
  b->errbuf_size = opts->errbuf_size;
  int ok = 1;
  b->conf = (actio__nats_conf){
      .url = keep(b, 0, opts->url, &ok),
      .name = keep(b, 1, opts->name ? opts->name : "actio", &ok),
      .user = keep(b, 2, opts->user, &ok),
      .password = keep(b, 3, opts->password, &ok),
      .token = keep(b, 4, opts->token, &ok),
      .nkey_public = keep(b, 5, opts->nkey_public, &ok),
      .nkey_seed_file = keep(b, 6, opts->nkey_seed_file, &ok),
      .ca_file = keep(b, 7, opts->ca_file, &ok),
      .cert_file = keep(b, 8, opts->client_cert, &ok),
      .key_file = keep(b, 9, opts->client_key, &ok),
      .tls = opts->tls || strncmp(opts->url, "tls://", 6) == 0,
      .tls_skip_verify = opts->tls_skip_verify,
      .connect_timeout_ms = opts->connect_timeout_ms ? opts->connect_timeout_ms : 2000,
      .max_reconnect = opts->max_reconnect ? opts->max_reconnect : 60,
      .reconnect_wait_ms = opts->reconnect_wait_ms ? opts->reconnect_wait_ms : 500,
      .on_event = on_event,
      .event_arg = b,
  };
  actio__nats_redact_url(opts->url, b->url_shown, sizeof b->url_shown);
  if (!ok) {
    state_free(b);
    return ACTIO_ENOMEM;
  }
  actio_actor_opts ao = {
      .name = "nats",
      .state = b,
      .state_free = state_free,
  };
  return actio_actor_spawn(rt, &actio__nats_behavior, &ao, out);
}

int actio_nats_ask(actio_actor *nats, const actio_nats_request *req, actio_future **out) {
  if (nats == NULL || req == NULL || out == NULL || req->subject == NULL)
    return ACTIO_EINVAL;
  actio__actor_pin(nats);
  actio__nats_state *st;
  int rc = actio__nats_state_of(nats, &st);
  if (rc == 0)
    rc = actio__nats_ask(st, req, out);
  actio__actor_unpin(nats);
  return rc;
}

int actio_nats_serve(actio_actor *nats, const char *subject, actio_actor *actor,
                     const actio_nats_serve_opts *opts, actio_nats_service **out) {
  if (nats == NULL || subject == NULL || actor == NULL || out == NULL)
    return ACTIO_EINVAL;
  actio_actor *inst = actio__actor_pin(nats);
  actio__nats_state *st;
  int rc = actio__nats_state_of(nats, &st);
  if (rc == 0)
    rc = actio__nats_serve(st, inst, actio__is_address(nats) ? nats : NULL, subject, actor,
                           opts, out);
  actio__actor_unpin(nats);
  return rc;
}

/* Pins `nats` and finds its state, JetStream's context made: 0, or an
 * error with nothing pinned. */
static int js_pinned(actio_actor *nats, actio__nats_state **st) {
  actio__actor_pin(nats);
  int rc = actio__nats_state_of(nats, st);
  if (rc == 0 && (*st)->js == NULL)
    rc = ACTIO_ECLOSED;
  if (rc != 0)
    actio__actor_unpin(nats);
  return rc;
}

int actio_nats_stream_ensure(actio_actor *nats, const actio_nats_stream_opts *opts,
                             char *errbuf, size_t errbuf_size) {
  if (nats == NULL || opts == NULL)
    return ACTIO_EINVAL;
  actio__nats_state *st;
  int rc = js_pinned(nats, &st);
  if (rc != 0)
    return rc;
  rc = actio__nats_stream_ensure(st, opts, errbuf, errbuf_size);
  actio__actor_unpin(nats);
  return rc;
}

int actio_nats_stream_info_get(actio_actor *nats, const char *name, actio_nats_stream_info *out) {
  if (nats == NULL || out == NULL || !actio__nats_stream_name_valid(name))
    return ACTIO_EINVAL;
  actio__nats_state *st;
  int rc = js_pinned(nats, &st);
  if (rc != 0)
    return rc;
  rc = actio__nats_stream_info(st, name, out);
  actio__actor_unpin(nats);
  return rc;
}

int actio_nats_stream_delete(actio_actor *nats, const char *name) {
  if (nats == NULL || !actio__nats_stream_name_valid(name))
    return ACTIO_EINVAL;
  actio__nats_state *st;
  int rc = js_pinned(nats, &st);
  if (rc != 0)
    return rc;
  rc = actio__nats_stream_delete(st, name);
  actio__actor_unpin(nats);
  return rc;
}

int actio_nats_job_publish(actio_actor *nats, const actio_nats_job *job, actio_future **out) {
  if (nats == NULL || job == NULL || out == NULL || job->subject == NULL)
    return ACTIO_EINVAL;
  actio__nats_state *st;
  int rc = js_pinned(nats, &st);
  if (rc != 0)
    return rc;
  rc = actio__nats_job_publish(st, job, out);
  actio__actor_unpin(nats);
  return rc;
}

int actio_nats_child(actio_runtime *rt, void *opts, actio_actor **out) {
  return actio_nats_spawn(rt, opts, out);
}

void actio_nats_stats_get(actio_actor *nats, actio_nats_stats *out) {
  memset(out, 0, sizeof *out);
  if (nats == NULL)
    return;
  actio__actor_pin(nats);
  actio__nats_state *st;
  if (actio__nats_state_of(nats, &st) == 0) {
    pthread_mutex_lock(&st->mu);
    out->pending = st->n;
    out->connected = st->conn != NULL && !st->closed && !st->down;
    pthread_mutex_unlock(&st->mu);
    /* Relaxed: counters read as a snapshot. */
    out->sent = atomic_load_explicit(&st->sent, memory_order_relaxed);
    out->replies = atomic_load_explicit(&st->replies_n, memory_order_relaxed);
    out->retries = atomic_load_explicit(&st->retries, memory_order_relaxed);
    out->timeouts = atomic_load_explicit(&st->timeouts, memory_order_relaxed);
    out->no_responders = atomic_load_explicit(&st->no_responders, memory_order_relaxed);
    out->late_replies = atomic_load_explicit(&st->late, memory_order_relaxed);
    out->served = atomic_load_explicit(&st->served, memory_order_relaxed);
    out->served_errors = atomic_load_explicit(&st->served_errors, memory_order_relaxed);
    out->disconnects = atomic_load_explicit(&st->disconnects, memory_order_relaxed);
    out->reconnects = atomic_load_explicit(&st->reconnects, memory_order_relaxed);
  }
  actio__actor_unpin(nats);
}

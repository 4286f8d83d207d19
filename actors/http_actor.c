/* http_actor.c: the HTTP actor: socket workers, each driving one libcurl
 * multi loop (io/http_io.c); requests in through the mailbox, futures out. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actio.h"
#include "io/http_io.h"

typedef struct http_state {
  actio__http_conf conf;
  actio__http_share *share;
  char *strings[5]; /* copies behind conf's strings */
  int fail_when_full;
} http_state;

typedef struct http_req http_req;

typedef struct http_worker {
  actio__http_loop *loop;
  http_req *running;          /* started requests: this thread only */
  _Atomic unsigned cancels;   /* cancel hooks fired since the last look */
} http_worker;

struct http_req {
  actio_future *reply; /* the request's reference */
  actio_http_request req;
  actio__http_xfer *x;
  http_worker *w;
  _Atomic int cancel;
  http_req *prev, *next;
  char bytes[]; /* url, method, headers and body copies */
};

static const actio_behavior http_behavior;

static void req_free(http_req *r) {
  actio_future_unref(r->reply);
  free(r);
}

static void unlink_req(http_worker *w, http_req *r) {
  if (r->prev != NULL)
    r->prev->next = r->next;
  else
    w->running = r->next;
  if (r->next != NULL)
    r->next->prev = r->prev;
}

/* A transfer ended, on its worker's thread. */
static void on_done(actio__http_xfer *x, int rc, const char *msg, void *arg) {
  http_req *r = arg;
  /* After this no cancel hook runs, and none is running. */
  actio_future_clear_cancel(r->reply);
  if (rc == 0) {
    actio_http_response *resp = actio__http_xfer_take(x);
    if (actio_future_resolve(r->reply, resp, actio__http_response_free) != 0)
      actio__http_response_free(resp);
  } else {
    actio_future_fail(r->reply, rc, "%s", msg);
  }
  actio__http_xfer_free(x);
  unlink_req(r->w, r);
  req_free(r);
}

/* On the cancelling thread: flag the request, wake its worker. */
static void on_cancel(void *arg) {
  http_req *r = arg;
  atomic_store_explicit(&r->cancel, 1, memory_order_release);
  atomic_fetch_add_explicit(&r->w->cancels, 1, memory_order_release);
  actio__http_loop_wakeup(r->w->loop);
}

static int http_init(actio_actor *self, void **worker) {
  http_state *st = actio_actor_state(self);
  http_worker *w = calloc(1, sizeof *w);
  if (w == NULL)
    return ACTIO_ENOMEM;
  int rc = actio__http_loop_create(&w->loop, &st->conf, st->share);
  if (rc != 0) {
    free(w);
    return rc;
  }
  *worker = w;
  return 0;
}

static void http_stop(actio_actor *self, void *worker) {
  http_worker *w = worker;
  (void)self;
  actio__http_loop_destroy(w->loop); /* what still runs ends cancelled */
  free(w);
}

static int http_handle(actio_actor *self, void *worker, void *msg,
                       actio_future *unused) {
  http_worker *w = worker;
  http_req *r = msg;
  (void)self;
  (void)unused;
  if (actio_future_is_done(r->reply)) { /* cancelled or past its deadline */
    req_free(r);
    return 0;
  }
  int64_t left = actio_future_remaining_ms(r->reply);
  int rc = actio__http_xfer_create(&r->x, w->loop, &r->req,
                                   left < 0 ? -1 : (long)left, on_done, r);
  if (rc == 0 && (rc = actio__http_loop_add(w->loop, r->x)) != 0)
    actio__http_xfer_free(r->x);
  if (rc != 0) {
    actio_future_fail(r->reply, rc, "%s %s: %s",
                      r->req.method ? r->req.method : "GET", r->req.url,
                      actio_strerror(rc));
    req_free(r);
    return 0;
  }
  r->w = w;
  r->next = w->running;
  if (w->running != NULL)
    w->running->prev = r;
  w->running = r;
  if (actio_future_on_cancel(r->reply, on_cancel, r) == ACTIO_ECANCELED)
    actio__http_loop_cancel(w->loop, r->x); /* cancelled meanwhile */
  return 0;
}

static void http_wait(actio_actor *self, void *worker) {
  http_worker *w = worker;
  (void)self;
  actio__http_loop_wait(w->loop, 1000);
  if (atomic_exchange_explicit(&w->cancels, 0, memory_order_acquire) == 0)
    return;
  for (http_req *r = w->running, *next; r != NULL; r = next) {
    next = r->next; /* cancelling frees r */
    if (atomic_load_explicit(&r->cancel, memory_order_acquire))
      actio__http_loop_cancel(w->loop, r->x);
  }
}

static void http_wake(actio_actor *self, void *worker) {
  (void)self;
  actio__http_loop_wakeup(((http_worker *)worker)->loop);
}

static int http_busy(actio_actor *self, void *worker) {
  (void)self;
  return actio__http_loop_count(((http_worker *)worker)->loop) > 0;
}

/* Accepted but never started: the actor stopped at once. */
static void http_drop(actio_actor *self, void *msg) {
  http_req *r = msg;
  (void)self;
  actio_future_fail(r->reply, ACTIO_ECANCELED, "%s %s: HTTP actor stopped",
                    r->req.method ? r->req.method : "GET", r->req.url);
  req_free(r);
}

static const actio_behavior http_behavior = {
    .worker_init = http_init,
    .handle = http_handle,
    .worker_stop = http_stop,
    .drop = http_drop,
    .wait = http_wait,
    .wake = http_wake,
    .busy = http_busy,
};

static void http_state_free(void *p) {
  http_state *st = p;
  actio__http_share_destroy(st->share);
  for (size_t i = 0; i < sizeof st->strings / sizeof *st->strings; i++)
    free(st->strings[i]);
  free(st);
}

static const char *keep(http_state *st, int i, const char *s, int *ok) {
  if (s == NULL)
    return NULL;
  st->strings[i] = strdup(s);
  if (st->strings[i] == NULL)
    *ok = 0;
  return st->strings[i];
}

int actio_http_spawn(actio_runtime *rt, const actio_http_opts *opts,
                     actio_actor **out) {
  actio_http_opts o = opts ? *opts : (actio_http_opts){0};
  if (rt == NULL || out == NULL)
    return ACTIO_EINVAL;
  int rc = actio__http_global_init();
  if (rc != 0)
    return rc;
  http_state *st = calloc(1, sizeof *st);
  if (st == NULL)
    return ACTIO_ENOMEM;
  int ok = 1;
  char ua[64];
  snprintf(ua, sizeof ua, "actio/%d.%d.%d", ACTIO_VERSION_MAJOR,
           ACTIO_VERSION_MINOR, ACTIO_VERSION_PATCH);
  st->conf = (actio__http_conf){
      .max_connections = o.max_connections > 0 ? o.max_connections : 64,
      .max_host_connections = o.max_host_connections,
      .connect_timeout_ms = o.connect_timeout_ms > 0 ? o.connect_timeout_ms : 10000,
      .timeout_ms = o.timeout_ms > 0 ? o.timeout_ms : 300000,
      .idle_timeout_ms = o.idle_timeout_ms,
      .max_redirects = o.max_redirects ? o.max_redirects : 10,
      .max_body = o.max_body ? o.max_body : (size_t)64 << 20,
      .ca_file = keep(st, 0, o.ca_file, &ok),
      .ca_path = keep(st, 1, o.ca_path, &ok),
      .client_cert = keep(st, 2, o.client_cert, &ok),
      .client_key = keep(st, 3, o.client_key, &ok),
      .user_agent = keep(st, 4, o.user_agent ? o.user_agent : ua, &ok),
  };
  st->fail_when_full = o.fail_when_full;
  rc = ok ? actio__http_share_create(&st->share) : ACTIO_ENOMEM;
  if (rc != 0) {
    http_state_free(st);
    return rc;
  }
  actio_actor_opts ao = {
      .name = "http",
      .workers = o.workers ? o.workers : 2,
      .capacity = o.capacity ? o.capacity : 4096,
      .state = st,
      .state_free = http_state_free,
  };
  return actio_actor_spawn(rt, &http_behavior, &ao, out);
}

/* Copies what the caller lent into one block behind the request. */
static http_req *req_copy(const actio_http_request *in) {
  size_t n = 0, nh = 0;
  size_t lu = strlen(in->url) + 1, lm = in->method ? strlen(in->method) + 1 : 0;
  for (const char *const *h = in->headers; h != NULL && *h != NULL; h++, nh++)
    n += strlen(*h) + 1;
  size_t body = in->body ? in->body_len : 0;
  size_t total = sizeof(http_req) + (nh + 1) * sizeof(char *) + lu + lm + n + body;
  http_req *r = malloc(total);
  if (r == NULL)
    return NULL;
  memset(r, 0, sizeof *r);
  r->req = *in;
  char **hv = (char **)(void *)r->bytes;
  char *p = (char *)(hv + nh + 1);
  for (size_t i = 0; i < nh; i++) {
    size_t l = strlen(in->headers[i]) + 1;
    hv[i] = memcpy(p, in->headers[i], l);
    p += l;
  }
  hv[nh] = NULL;
  r->req.headers = nh ? (const char *const *)hv : NULL;
  r->req.url = memcpy(p, in->url, lu);
  p += lu;
  if (lm) {
    r->req.method = memcpy(p, in->method, lm);
    p += lm;
  }
  if (body) {
    r->req.body = memcpy(p, in->body, body);
  } else if (in->body != NULL) {
    r->req.body = p; /* an empty body, still a body */
  }
  return r;
}

int actio_http_send(actio_actor *http, const actio_http_request *req,
                    actio_future **out) {
  if (http == NULL || req == NULL || out == NULL || req->url == NULL ||
      actio_actor_behavior(http) != &http_behavior ||
      (req->body == NULL && req->body_len > 0))
    return ACTIO_EINVAL;
  http_state *st = actio_actor_state(http);
  http_req *r = req_copy(req);
  if (r == NULL)
    return ACTIO_ENOMEM;
  int rc = actio_future_create(&r->reply);
  if (rc != 0) {
    free(r);
    return rc;
  }
  actio_future *f = r->reply;
  actio_future_ref(f);
  rc = actio_tell(http, r, st->fail_when_full ? 0 : -1);
  if (rc != 0) {
    actio_future_unref(f);
    req_free(r);
    return rc;
  }
  *out = f;
  return 0;
}

int actio_http_get(actio_actor *http, const char *url, actio_future **out) {
  actio_http_request req = {.url = url};
  return actio_http_send(http, &req, out);
}

/* http_actor.c: the HTTP actor: socket workers, each driving one libcurl
 * multi loop (io/http_io.c); requests in through the mailbox, futures out. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actio.h"
#include "actors/core/actor_internal.h"
#include "io/http/http_io.h"
#include "base/clock.h"

typedef struct http_state {
  actio__http_conf conf;
  actio__http_share *share;
  char *strings[5]; /* copies behind conf's strings */
  int fail_when_full;
} http_state;

typedef struct http_req http_req;

/* How other threads get a worker's attention: cancel hooks and the futures
 * a body consumer asked to wait for ring it. It outlives the worker (each
 * pending wait holds a reference), and once the worker is gone a ring only
 * finds loop == NULL. */
typedef struct doorbell {
  _Atomic unsigned refs;
  _Atomic unsigned rings; /* since the worker last looked */
  pthread_mutex_t mu;     /* guards loop against the worker leaving */
  actio__http_loop *loop;
} doorbell;

typedef struct http_worker {
  actio__http_loop *loop;
  doorbell *bell;
  http_req *running; /* started or waiting to retry: this thread only */
  size_t waiting;    /* of them, waiting to retry */
  size_t paused;     /* of them, paused by their body consumer */
} http_worker;

struct http_req {
  actio_future *reply; /* the request's reference */
  actio_http_request req;
  actio__http_xfer *x; /* NULL unless a transfer runs */
  http_worker *w;
  _Atomic int cancel;
  int retry_wait;      /* waiting for its next attempt (counted in waiting) */
  int attempts;
  int64_t due_ns;      /* when waiting: the next attempt */
  actio_future *ready; /* the body consumer's, while paused */
  int fail_code;       /* the consumer's future failed with this */
  http_req *prev, *next;
  char bytes[]; /* url, method, headers and body copies */
};

static const actio_behavior http_behavior;

static void bell_unref(doorbell *b) {
  if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1)
    return;
  pthread_mutex_destroy(&b->mu);
  free(b);
}

static void bell_ring(doorbell *b) {
  atomic_fetch_add_explicit(&b->rings, 1, memory_order_release);
  pthread_mutex_lock(&b->mu);
  if (b->loop != NULL)
    actio__http_loop_wakeup(b->loop);
  pthread_mutex_unlock(&b->mu);
}

/* A consumer's future completed: wake the worker, which looks itself. */
static void bell_ready(actio_future *f, void *arg) {
  (void)f;
  bell_ring(arg);
  bell_unref(arg);
}

static void req_free(http_req *r) {
  actio_future_unref(r->ready);
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
  if (r->retry_wait)
    w->waiting--;
  if (r->ready != NULL)
    w->paused--;
}

static const char *method_of(const http_req *r) {
  return r->req.method ? r->req.method : "GET";
}

/* Ends a request on its worker: completes the future unless it already is. */
static void end_req(http_req *r, int rc, actio_http_response *resp,
                    const char *msg) {
  actio_future_clear_cancel(r->reply); /* no hook runs after this */
  if (rc == 0) {
    resp->attempts = r->attempts;
    if (actio_future_resolve(r->reply, resp, actio__http_response_free) != 0)
      actio__http_response_free(resp);
  } else {
    actio_future_fail(r->reply, rc, "%s", msg);
  }
  unlink_req(r->w, r);
  req_free(r);
}

static int idempotent(const char *m) {
  static const char *const ok[] = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"};
  for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
    if (strcmp(m, ok[i]) == 0)
      return 1;
  return 0;
}

/* Milliseconds to wait before the next attempt, or -1: do not retry. */
static long retry_delay(http_req *r, int rc, actio__http_xfer *x) {
  long status = actio__http_xfer_status(x);
  int transient = rc == -ECONNREFUSED || rc == -ECONNRESET ||
                  rc == ACTIO_ECONNTIMEOUT || rc == ACTIO_EPARTIAL ||
                  (rc == 0 && (status == 429 || status == 502 ||
                               status == 503 || status == 504));
  if (!transient || r->attempts > r->req.retries || r->req.on_chunk != NULL ||
      (!r->req.retry_any_method && !idempotent(method_of(r))) ||
      actio_future_is_done(r->reply))
    return -1;
  long base = r->req.retry_backoff_ms > 0 ? r->req.retry_backoff_ms : 200;
  long delay = (long)actio__backoff_ms(base, 86400000, (unsigned)r->attempts);
  long after = actio__http_xfer_retry_after_ms(x);
  if (after > delay)
    delay = after < 86400000 ? after : 86400000; /* at most a day */
  int64_t left = actio_future_remaining_ms(r->reply);
  return left >= 0 && delay >= left ? -1 : delay;
}


/* A transfer ended, on its worker's thread. */
static void on_done(actio__http_xfer *x, int rc, const char *msg, void *arg) {
  http_req *r = arg;
  http_worker *w = r->w;
  if (r->fail_code != 0) { /* the body consumer's future failed */
    char m[512];
    snprintf(m, sizeof m, "%s %s: body consumer failed: %s", method_of(r),
             r->req.url, actio_strerror(r->fail_code));
    actio__http_xfer_free(x);
    r->x = NULL;
    end_req(r, r->fail_code, NULL, m);
    return;
  }
  long delay = retry_delay(r, rc, x);
  if (delay >= 0) {
    actio__http_xfer_free(x);
    r->x = NULL;
    r->due_ns = actio__now_ns() + delay * 1000000;
    r->retry_wait = 1;
    w->waiting++;
    return;
  }
  char m[512];
  if (rc == 0 && (rc = actio__http_xfer_commit(x)) != 0) {
    snprintf(m, sizeof m, "%s %s: saving to %s: %s", method_of(r), r->req.url,
             r->req.save_to, actio_strerror(rc));
    msg = m;
  }
  actio_http_response *resp = rc == 0 ? actio__http_xfer_take(x) : NULL;
  actio__http_xfer_free(x);
  r->x = NULL;
  end_req(r, rc, resp, msg);
}

/* On the cancelling thread: flag the request, ring its worker. */
static void on_cancel(void *arg) {
  http_req *r = arg;
  atomic_store_explicit(&r->cancel, 1, memory_order_release);
  bell_ring(r->w->bell);
}

/* The body consumer, wrapped: a future it returns pauses the transfer. */
static int sink_chunk(void *arg, const void *data, size_t len) {
  http_req *r = arg;
  actio_future *ready = NULL;
  int rc = r->req.on_chunk(r->req.chunk_arg, data, len, &ready);
  if (rc < 0 || ready == NULL) {
    actio_future_unref(ready);
    return rc < 0 ? rc : 0;
  }
  if (actio_future_is_done(ready)) {
    int st = actio_future_status(ready);
    actio_future_unref(ready);
    return st;
  }
  r->ready = ready;
  r->w->paused++;
  atomic_fetch_add_explicit(&r->w->bell->refs, 1, memory_order_relaxed);
  if (actio_future_on_done(ready, bell_ready, r->w->bell) != 0)
    bell_unref(r->w->bell); /* the worker polls paused ones anyway */
  return 1;
}

/* Starts the next attempt of r (none runs). */
static void start_attempt(http_worker *w, http_req *r) {
  int64_t left = actio_future_remaining_ms(r->reply);
  if (left == 0) { /* its deadline passed while it queued or waited */
    char m[512];
    snprintf(m, sizeof m, "%s %s: deadline passed", method_of(r), r->req.url);
    end_req(r, ACTIO_ETIMEDOUT, NULL, m);
    return;
  }
  r->attempts++;
  int rc = actio__http_xfer_create(&r->x, w->loop, &r->req,
                                   left < 0 ? -1 : (long)left,
                                   r->req.on_chunk ? sink_chunk : NULL, on_done, r);
  if (rc == 0 && (rc = actio__http_loop_add(w->loop, r->x)) != 0) {
    actio__http_xfer_free(r->x);
    r->x = NULL;
  }
  if (rc != 0) {
    char m[512];
    snprintf(m, sizeof m, "%s %s: %s", method_of(r), r->req.url, actio_strerror(rc));
    r->x = NULL;
    end_req(r, rc, NULL, m);
  }
}

static int http_init(actio_actor *self, void **worker) {
  http_state *st = actio_actor_state(self);
  http_worker *w = calloc(1, sizeof *w);
  doorbell *b = calloc(1, sizeof *b);
  int rc = w && b ? actio__http_loop_create(&w->loop, &st->conf, st->share)
                  : ACTIO_ENOMEM;
  if (rc != 0) {
    free(w);
    free(b);
    return rc;
  }
  atomic_init(&b->refs, 1);
  pthread_mutex_init(&b->mu, NULL);
  b->loop = w->loop;
  w->bell = b;
  *worker = w;
  return 0;
}

static void http_stop(actio_actor *self, void *worker) {
  http_worker *w = worker;
  (void)self;
  pthread_mutex_lock(&w->bell->mu);
  w->bell->loop = NULL; /* rings from now on find nobody */
  pthread_mutex_unlock(&w->bell->mu);
  actio__http_loop_destroy(w->loop); /* what still runs ends cancelled */
  while (w->running != NULL) /* what waits to retry, too */
    end_req(w->running, ACTIO_ECANCELED, NULL, "HTTP actor stopped");
  bell_unref(w->bell);
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
  r->w = w;
  r->next = w->running;
  if (w->running != NULL)
    w->running->prev = r;
  w->running = r;
  if (actio_future_on_cancel(r->reply, on_cancel, r) == ACTIO_ECANCELED) {
    end_req(r, ACTIO_ECANCELED, NULL, "cancelled");
    return 0;
  }
  start_attempt(w, r); /* may end r at once */
  return 0;
}

static void http_wait(actio_actor *self, void *worker) {
  http_worker *w = worker;
  (void)self;
  int max_ms = w->paused > 0 ? 50 : 1000; /* paused: also poll, in case */
  int64_t now = actio__now_ns();
  if (w->waiting > 0)
    for (http_req *r = w->running; r != NULL; r = r->next)
      if (r->retry_wait) {
        int64_t ms = (r->due_ns - now) / 1000000 + 1;
        if (ms < max_ms)
          max_ms = ms < 0 ? 0 : (int)ms;
      }
  actio__http_loop_wait(w->loop, max_ms);
  int rang = atomic_exchange_explicit(&w->bell->rings, 0, memory_order_acquire) != 0;
  if (!rang && w->waiting == 0 && w->paused == 0)
    return;
  now = actio__now_ns();
  for (http_req *r = w->running, *next; r != NULL; r = next) {
    next = r->next; /* ending frees r */
    if (atomic_load_explicit(&r->cancel, memory_order_acquire)) {
      if (r->x != NULL)
        actio__http_loop_cancel(w->loop, r->x);
      else
        end_req(r, ACTIO_ECANCELED, NULL, "cancelled");
    } else if (r->ready != NULL && actio_future_is_done(r->ready)) {
      int st = actio_future_status(r->ready);
      actio_future_unref(r->ready);
      r->ready = NULL;
      w->paused--;
      if (st == 0)
        st = actio__http_xfer_resume(r->x); /* delivers the held chunk */
      if (st != 0) {
        r->fail_code = st;
        actio__http_loop_cancel(w->loop, r->x);
      }
    } else if (r->retry_wait && r->due_ns <= now) {
      r->retry_wait = 0;
      w->waiting--;
      start_attempt(w, r);
    }
  }
}

static void http_wake(actio_actor *self, void *worker) {
  (void)self;
  actio__http_loop_wakeup(((http_worker *)worker)->loop);
}

static int http_busy(actio_actor *self, void *worker) {
  (void)self;
  return ((http_worker *)worker)->running != NULL;
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
  size_t ls = in->save_to ? strlen(in->save_to) + 1 : 0;
  size_t total = sizeof(http_req) + (nh + 1) * sizeof(char *) + lu + lm + n + ls + body;
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
  if (ls) {
    r->req.save_to = memcpy(p, in->save_to, ls);
    p += ls;
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
  rc = actio__request(http, r, r->reply, st->fail_when_full ? 0 : -1, out);
  if (rc != 0)
    req_free(r);
  return rc;
}

int actio_http_get(actio_actor *http, const char *url, actio_future **out) {
  actio_http_request req = {.url = url};
  return actio_http_send(http, &req, out);
}

int actio_http_child(actio_runtime *rt, void *opts, actio_actor **out) {
  return actio_http_spawn(rt, opts, out);
}

/* http_worker.c: the HTTP actor's workers: each drives one libcurl loop
 * (io/http), starts the calls it takes from the mailbox, retries them, and
 * handles cancellation and a body consumer's backpressure. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actio.h"
#include "actors/core/actor_internal.h"
#include "actors/http/http_internal.h"
#include "base/clock.h"

void actio__http_call_free(actio__http_call *r) {
  actio_future_unref(r->ready);
  actio_future_unref(r->reply);
  free(r);
}

static void unlink_req(actio__http_worker *w, actio__http_call *r) {
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

/* Ends a request on its worker: completes the future unless it already is. */
static void end_req(actio__http_call *r, int rc, actio_http_response *resp,
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
  actio__http_call_free(r);
}

static int idempotent(const char *m) {
  static const char *const ok[] = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"};
  for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
    if (strcmp(m, ok[i]) == 0)
      return 1;
  return 0;
}

/* Milliseconds to wait before the next attempt, or -1: do not retry. */
static long retry_delay(actio__http_call *r, int rc, actio__http_xfer *x) {
  long status = actio__http_xfer_status(x);
  int transient = rc == -ECONNREFUSED || rc == -ECONNRESET ||
                  rc == ACTIO_ECONNTIMEOUT || rc == ACTIO_EPARTIAL ||
                  (rc == 0 && (status == 429 || status == 502 ||
                               status == 503 || status == 504));
  if (!transient || r->attempts > r->retries || r->on_chunk != NULL ||
      (!r->retry_any_method && !idempotent(r->io.method)) ||
      actio_future_is_done(r->reply))
    return -1;
  long base = r->retry_backoff_ms > 0 ? r->retry_backoff_ms : 200;
  long delay = (long)actio__backoff_ms(base, 86400000, (unsigned)r->attempts);
  long after = actio__http_xfer_retry_after_ms(x);
  if (after > delay)
    delay = after < 86400000 ? after : 86400000; /* at most a day */
  int64_t left = actio_future_remaining_ms(r->reply);
  return left >= 0 && delay >= left ? -1 : delay;
}


/* A transfer ended, on its worker's thread. */
static void on_done(actio__http_xfer *x, int rc, const char *msg, void *arg) {
  actio__http_call *r = arg;
  actio__http_worker *w = r->w;
  if (r->fail_code != 0) { /* the body consumer's future failed */
    char m[512];
    snprintf(m, sizeof m, "%s %s: body consumer failed: %s", r->io.method,
             r->io.url, actio_strerror(r->fail_code));
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
  actio_http_response *resp = NULL;
  if (rc == 0 && (resp = actio__http_response_take(x)) == NULL) {
    rc = ACTIO_ENOMEM;
    snprintf(m, sizeof m, "%s %s: out of memory", r->io.method, r->io.url);
    msg = m;
  }
  if (rc == 0 && (rc = actio__http_xfer_commit(x)) != 0) {
    snprintf(m, sizeof m, "%s %s: saving to %s: %s", r->io.method, r->io.url,
             r->io.save_to, actio_strerror(rc));
    msg = m;
    actio__http_response_free(resp);
    resp = NULL;
  }
  actio__http_xfer_free(x);
  r->x = NULL;
  end_req(r, rc, resp, msg);
}

/* On the cancelling thread: flag the request, ring its worker. */
static void on_cancel(void *arg) {
  actio__http_call *r = arg;
  atomic_store_explicit(&r->cancel, 1, memory_order_release);
  actio__bell_ring(r->w->bell);
}

/* The body consumer, wrapped: a future it returns pauses the transfer. */
static int sink_chunk(void *arg, const void *data, size_t len) {
  actio__http_call *r = arg;
  actio_future *ready = NULL;
  int rc = r->on_chunk(r->chunk_arg, data, len, &ready);
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
  /* Out of memory no ring comes, but the worker polls paused calls too. */
  (void)actio__bell_ring_on(r->w->bell, ready);
  return 1;
}

/* Starts the next attempt of r (none runs). */
static void start_attempt(actio__http_worker *w, actio__http_call *r) {
  int64_t left = actio_future_remaining_ms(r->reply);
  if (left == 0) { /* its deadline passed while it queued or waited */
    char m[512];
    snprintf(m, sizeof m, "%s %s: deadline passed", r->io.method, r->io.url);
    end_req(r, ACTIO_ETIMEDOUT, NULL, m);
    return;
  }
  r->attempts++;
  int rc = actio__http_xfer_create(&r->x, w->loop, &r->io,
                                   left < 0 ? -1 : (long)left, on_done, r);
  if (rc == 0 && (rc = actio__http_loop_add(w->loop, r->x)) != 0) {
    actio__http_xfer_free(r->x);
    r->x = NULL;
  }
  if (rc != 0) {
    char m[512];
    snprintf(m, sizeof m, "%s %s: %s", r->io.method, r->io.url, actio_strerror(rc));
    r->x = NULL;
    end_req(r, rc, NULL, m);
  }
}

static void wake_loop(void *loop) { actio__http_loop_wakeup(loop); }

static int http_init(actio_actor *self, void **worker) {
  actio__http_state *st = actio_actor_state(self);
  actio__http_worker *w = calloc(1, sizeof *w);
  if (w == NULL)
    return ACTIO_ENOMEM;
  int rc = actio__http_loop_create(&w->loop, &st->conf, st->share);
  if (rc != 0)
    goto fail_loop;
  rc = actio__bell_create(&w->bell, wake_loop, w->loop);
  if (rc != 0)
    goto fail_bell;
  *worker = w;
  return 0;
fail_bell:
  actio__http_loop_destroy(w->loop);
fail_loop:
  free(w);
  return rc;
}

static void http_stop(actio_actor *self, void *worker) {
  actio__http_worker *w = worker;
  (void)self;
  /* From here a ring wakes nobody: the loop it would wake goes next. The
   * bell itself lives on while a consumer's future still holds it. */
  actio__bell_close(w->bell, NULL, NULL);
  actio__http_loop_destroy(w->loop); /* what still runs ends cancelled */
  while (w->running != NULL) /* what waits to retry, too */
    end_req(w->running, ACTIO_ECANCELED, NULL, "HTTP actor stopped");
  actio__bell_unref(w->bell);
  free(w);
}

static int http_handle(actio_actor *self, void *worker, void *msg,
                       actio_future *unused) {
  actio__http_worker *w = worker;
  actio__http_call *r = msg;
  (void)self;
  (void)unused;
  if (actio_future_is_done(r->reply)) { /* cancelled or past its deadline */
    actio__http_call_free(r);
    return 0;
  }
  r->w = w;
  if (r->on_chunk != NULL) { /* the consumer, behind io's plain sink */
    r->io.sink = sink_chunk;
    r->io.sink_arg = r;
  }
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
  actio__http_worker *w = worker;
  (void)self;
  int max_ms = w->paused > 0 ? 50 : 1000; /* paused: also poll, in case */
  int64_t now = actio__now_ns();
  if (w->waiting > 0)
    for (actio__http_call *r = w->running; r != NULL; r = r->next)
      if (r->retry_wait) {
        int64_t ms = (r->due_ns - now) / 1000000 + 1;
        if (ms < max_ms)
          max_ms = ms < 0 ? 0 : (int)ms;
      }
  actio__http_loop_wait(w->loop, max_ms);
  int rang = actio__bell_rang(w->bell);
  if (!rang && w->waiting == 0 && w->paused == 0)
    return;
  now = actio__now_ns();
  for (actio__http_call *r = w->running, *next; r != NULL; r = next) {
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
  actio__http_loop_wakeup(((actio__http_worker *)worker)->loop);
}

static int http_busy(actio_actor *self, void *worker) {
  (void)self;
  return ((actio__http_worker *)worker)->running != NULL;
}

/* Accepted but never started: the actor stopped at once. */
static void http_drop(actio_actor *self, void *msg) {
  actio__http_call *r = msg;
  (void)self;
  actio_future_fail(r->reply, ACTIO_ECANCELED, "%s %s: HTTP actor stopped",
                    r->io.method, r->io.url);
  actio__http_call_free(r);
}

const actio_behavior actio__http_behavior = {
    .worker_init = http_init,
    .handle = http_handle,
    .worker_stop = http_stop,
    .drop = http_drop,
    .wait = http_wait,
    .wake = http_wake,
    .busy = http_busy,
};


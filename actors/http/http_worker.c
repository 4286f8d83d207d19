/* http_worker.c: the HTTP actor's workers: each drives one libcurl loop
 * (io/http), starts the calls it takes from the mailbox, retries them, and
 * handles cancellation and a body consumer's backpressure. */
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actio.h"
#include "actors/core/actor_internal.h"
#include "actors/core/future_internal.h"
#include "actors/http/http_internal.h"
#include "base/clock.h"
#include "base/debug.h"

#define DAY_MS 86400000L /* the longest a retry waits */

/* ---- a call on its worker ---- */

void actio__http_call_free(actio__http_call *c) {
  /* A transfer still running would write into the freed call; a file
   * being saved is ended before the future completes (end_call). */
  ACTIO__ASSERT(c->x == NULL && c->save == NULL);
  if (c->head != NULL && !actio_future_is_done(c->head)) {
    /* No headers came: the head ends as the request did. */
    int st = actio_future_is_done(c->reply) ? actio_future_status(c->reply) : ACTIO_ECANCELED;
    const char *msg = actio_future_is_done(c->reply) ? actio_future_errmsg(c->reply) : NULL;
    actio_future_fail(c->head, st != 0 ? st : ACTIO_ENOMEM, "%s",
                      msg ? msg : actio_strerror(st != 0 ? st : ACTIO_ENOMEM));
  }
  actio_future_unref(c->head);
  if (c->w != NULL) { /* a consumer's future paused it: the ring goes too */
    actio__bell_forget(c->w->bell, &c->ready);
    actio__bell_forget(c->w->bell, &c->up_ready);
  }
  ACTIO__ASSERT(c->ready == NULL && c->up_ready == NULL);
  actio_future_unref(c->reply);
  free(c);
}

static void link_call(actio__http_worker *w, actio__http_call *c) {
  w->calls++;
  c->prev = NULL;
  c->next = w->running;
  if (w->running != NULL)
    w->running->prev = c;
  w->running = c;
}

static void unlink_call(actio__http_worker *w, actio__http_call *c) {
  ACTIO__ASSERT(c->prev != NULL ? c->prev->next == c : w->running == c);
  ACTIO__ASSERT(c->next == NULL || c->next->prev == c);
  if (c->prev != NULL)
    c->prev->next = c->next;
  else
    w->running = c->next;
  if (c->next != NULL)
    c->next->prev = c->prev;
  c->prev = c->next = NULL;
  ACTIO__ASSERT(w->calls > 0);
  w->calls--;
  if (c->retry_wait) {
    ACTIO__ASSERT(w->waiting > 0);
    w->waiting--;
  }
  if (c->ready != NULL) {
    ACTIO__ASSERT(w->paused > 0);
    w->paused--;
  }
  if (c->up_ready != NULL) {
    ACTIO__ASSERT(w->paused > 0);
    w->paused--;
  }
}

/* 1 when the worker's counters agree with its calls. Asserted only, so
 * compiled out of release builds ("unused" there: it walks every call). */
__attribute__((unused)) static int counts_agree(const actio__http_worker *w) {
  size_t calls = 0, waiting = 0, paused = 0;
  for (const actio__http_call *c = w->running; c != NULL; c = c->next) {
    calls++;
    waiting += c->retry_wait != 0;
    paused += (c->ready != NULL) + (c->up_ready != NULL);
  }
  return calls == w->calls && waiting == w->waiting && paused == w->paused;
}

/* A message about c in m: "METHOD URL: ..." (the URL's secrets masked). */
__attribute__((format(printf, 5, 6))) static const char *
call_msg(const actio__http_conf *conf, const actio__http_call *c, char *m,
         size_t cap, const char *fmt, ...) {
  size_t n = actio__http_head(conf, c->io.method, c->io.url, m, cap / 2);
  n += (size_t)snprintf(m + n, cap - n, ": ");
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(m + n, cap - n, fmt, ap);
  va_end(ap);
  return m;
}

/* Ends a call on its worker: completes the future unless it already is. */
static void end_call(actio__http_call *c, int rc, actio_http_response *resp,
                     const char *msg) {
  ACTIO__ASSERT(c->x == NULL && (rc == 0) == (resp != NULL));
  actio__fio_atomic_abort(c->save); /* whoever sees the end sees it gone */
  c->save = NULL;
  actio_future_clear_cancel(c->reply); /* no hook runs after this */
  if (rc == 0) {
    resp->attempts = c->attempts;
    if (actio_future_resolve(c->reply, resp, actio__http_response_free) != 0)
      actio__http_response_free(resp);
  } else {
    actio_future_fail(c->reply, rc, "%s", msg);
  }
  unlink_call(c->w, c);
  actio__http_call_free(c);
}

/* ---- attempts and retries ---- */

static int idempotent(const char *m) {
  static const char *const ok[] = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"};
  for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
    if (strcmp(m, ok[i]) == 0)
      return 1;
  return 0;
}

/* 1 when an attempt that ended with rc and status may be retried, its
 * deadline aside. */
static int retryable(const actio__http_call *c, int rc, long status) {
  int transient = rc == -ECONNREFUSED || rc == -ECONNRESET ||
                  rc == ACTIO_ECONNTIMEOUT || rc == ACTIO_EPARTIAL ||
                  (rc == 0 && (status == 429 || status == 502 ||
                               status == 503 || status == 504));
  return transient && c->attempts <= c->retries && c->on_chunk == NULL && c->upload == NULL &&
         (c->retry_any_method || idempotent(c->io.method));
}

/* Milliseconds to wait before the next attempt, or -1: do not retry. */
static long retry_delay(actio__http_call *c, int rc, actio__http_xfer *x) {
  if (!retryable(c, rc, actio__http_xfer_status(x)) || actio_future_is_done(c->reply))
    return -1;
  long base = c->retry_backoff_ms > 0 ? c->retry_backoff_ms : 200;
  long delay = (long)actio__backoff_ms(base, DAY_MS, (unsigned)c->attempts);
  long after = actio__http_xfer_retry_after_ms(x);
  if (after > delay)
    delay = after < DAY_MS ? after : DAY_MS;
  int64_t left = actio_future_remaining_ms(c->reply);
  return left >= 0 && delay >= left ? -1 : delay;
}

/* save_to's sink: the body goes to the file that will replace it. */
static int save_chunk(void *arg, const void *data, size_t len) {
  actio__http_call *c = arg;
  int rc = actio__fio_write_fd(actio__fio_atomic_fd(c->save), data, len, -1);
  if (rc < 0)
    c->fail_code = rc; /* on_done says it was the file */
  return rc;
}

/* Completes c's head future with the status and headers x has. Out of
 * memory it stays pending: actio__http_call_free fails it. */
static void tell_head(actio__http_call *c, actio__http_xfer *x) {
  actio__http_result r;
  if (actio__http_xfer_head(x, &r) != 0)
    return;
  actio_http_response *resp = actio__http_response_adopt(&r);
  if (resp == NULL) {
    actio__http_result_cleanup(&r);
    return;
  }
  resp->attempts = c->attempts;
  if (actio_future_resolve(c->head, resp, actio__http_response_free) != 0)
    actio__http_response_free(resp);
}

void actio__http_head_ready(void *arg, actio__http_xfer *x) {
  actio__http_call *c = arg;
  /* A 503 that will be retried is no final response. */
  if (!actio_future_is_done(c->head) && !retryable(c, 0, actio__http_xfer_status_now(x)))
    tell_head(c, x);
}

_Static_assert(ACTIO__HTTP_TRACE_END == (int)ACTIO_HTTP_TRACE_END &&
                   ACTIO__HTTP_TRACE_DNS == (int)ACTIO_HTTP_TRACE_DNS,
               "io's trace events are the public ones");

void actio__http_trace_relay(void *arg, void *xarg, const actio__http_trace *t) {
  const actio__http_state *st = arg;
  const actio__http_call *c = xarg;
  actio_http_trace pub = {
      .event = (actio_http_trace_event)t->event,
      .tag = c->io.more != NULL ? c->io.more->tag : NULL,
      .method = c->io.method,
      .url = c->io.url,
      .attempt = c->attempts,
      .ms = t->ms,
      .reused = t->reused,
      .status = t->status,
      .rc = t->rc,
  };
  st->trace(st->trace_arg, &pub);
}

/* A transfer ended, on its worker's thread. */
static void on_done(actio__http_xfer *x, int rc, const char *msg, void *arg) {
  actio__http_call *c = arg;
  actio__http_worker *w = c->w;
  ACTIO__ASSERT(c->x == x && !c->retry_wait);
  char m[1024];
  if (c->fail_code != 0) { /* the body consumer's future, or the file, failed */
    if (c->fail_upload)
      call_msg(w->conf, c, m, sizeof m, "upload callback's future failed: %s",
               actio_strerror(c->fail_code));
    else if (c->io.sink == save_chunk)
      call_msg(w->conf, c, m, sizeof m, "saving to %s: %s", c->save_to,
               actio_strerror(c->fail_code));
    else
      call_msg(w->conf, c, m, sizeof m, "body consumer failed: %s",
               actio_strerror(c->fail_code));
    actio__http_xfer_free(x);
    c->x = NULL;
    end_call(c, c->fail_code, NULL, m);
    return;
  }
  long delay = retry_delay(c, rc, x);
  if (delay >= 0) {
    actio__http_xfer_free(x);
    c->x = NULL;
    actio__fio_atomic_abort(c->save); /* the next attempt starts afresh */
    c->save = NULL;
    c->due_ns = actio__now_ns() + delay * ACTIO__NS_PER_MS;
    c->retry_wait = 1;
    w->waiting++;
    return;
  }
  actio_http_response *resp = NULL;
  if (rc == ACTIO_ECANCELED && w->stopping) {
    msg = call_msg(w->conf, c, m, sizeof m, "HTTP actor stopped");
  } else if (rc != 0 && c->attempts > 1) {
    snprintf(m, sizeof m, "%s (after %d attempts)", msg, c->attempts);
    msg = m;
  }
  if (rc == 0 && c->head != NULL && !actio_future_is_done(c->head))
    tell_head(c, x); /* no body came: the headers are told now */
  if (rc == 0 && (resp = actio__http_response_take(x)) == NULL) {
    rc = ACTIO_ENOMEM;
    msg = call_msg(w->conf, c, m, sizeof m, "out of memory");
  }
  if (rc == 0 && c->save != NULL) {
    rc = actio__fio_atomic_commit(c->save, 0, NULL, NULL);
    c->save = NULL;
    if (rc != 0) {
      msg = call_msg(w->conf, c, m, sizeof m, "saving to %s: %s", c->save_to,
                     actio_strerror(rc));
      actio__http_response_free(resp);
      resp = NULL;
    }
  }
  actio__http_xfer_free(x);
  c->x = NULL;
  end_call(c, rc, resp, msg);
}

/* Starts the next attempt of c (none runs). */
static void start_attempt(actio__http_worker *w, actio__http_call *c) {
  ACTIO__ASSERT(c->x == NULL && !c->retry_wait);
  int64_t left = actio_future_remaining_ms(c->reply);
  char m[1024];
  if (left == 0) { /* its deadline passed while it queued or waited */
    if (c->attempts == 0)
      call_msg(w->conf, c, m, sizeof m, "deadline passed before it started");
    else
      call_msg(w->conf, c, m, sizeof m, "deadline passed before attempt %d of %d",
               c->attempts + 1, c->retries + 1);
    end_call(c, ACTIO_ETIMEDOUT, NULL, m);
    return;
  }
  c->attempts++;
  if (c->io.sink == save_chunk) { /* each attempt writes a file of its own */
    static const actio__root cwd = {AT_FDCWD, 0};
    int rc = actio__fio_atomic_open(&cwd, c->save_to, 0666, &c->save);
    if (rc != 0) {
      end_call(c, rc, NULL, call_msg(w->conf, c, m, sizeof m, "saving to %s: %s",
                                     c->save_to, actio_strerror(rc)));
      return;
    }
  }
  char why[512] = "";
  int rc = actio__http_xfer_create(&c->x, w->loop, &c->io, left < 0 ? -1 : (long)left,
                                   on_done, c, why, sizeof why);
  if (rc == 0 && (rc = actio__http_loop_add(w->loop, c->x)) != 0)
    actio__http_xfer_free(c->x);
  if (rc != 0) {
    call_msg(w->conf, c, m, sizeof m, "%s", why[0] ? why : actio_strerror(rc));
    c->x = NULL;
    end_call(c, rc, NULL, m);
  }
}

/* ---- other threads: cancellation and backpressure ---- */

/* On the cancelling thread: flag the call, ring its worker. */
static void on_cancel(void *arg) {
  actio__http_call *c = arg;
  /* The cancel's (or the deadline's) message names the request too. */
  char head[512];
  actio__http_head(c->w->conf, c->io.method, c->io.url, head, sizeof head);
  actio__future_reword(c->reply, head);
  /* Release: pairs with the worker's acquire load after the ring. */
  atomic_store_explicit(&c->cancel, 1, memory_order_release);
  actio__bell_ring(c->w->bell);
}

/* The body consumer behind io's sink: a future it returns pauses the
 * transfer until it completes (the bell rings then). */
static int sink_chunk(void *arg, const void *data, size_t len) {
  actio__http_call *c = arg;
  /* io hands no chunk to a transfer paused for a consumer. */
  ACTIO__ASSERT(c->ready == NULL);
  actio_future *ready = NULL;
  int rc = c->on_chunk(c->chunk_arg, data, len, &ready);
  if (rc < 0 || ready == NULL) {
    actio_future_unref(ready);
    return rc < 0 ? rc : 0;
  }
  if (actio_future_is_done(ready)) {
    int st = actio_future_status(ready);
    actio_future_unref(ready);
    return st;
  }
  c->ready = ready;
  c->w->paused++;
  /* Out of memory no ring comes, but the worker polls paused calls too. */
  (void)actio__bell_ring_on(c->w->bell, ready);
  return 1;
}

int actio__http_upload_source(void *arg, char *buf, size_t cap, size_t *len) {
  actio__http_call *c = arg;
  /* io asks no paused source. */
  ACTIO__ASSERT(c->up_ready == NULL);
  for (;;) {
    actio_future *ready = NULL;
    *len = 0;
    int rc = c->upload(c->upload_arg, buf, cap, len, &ready);
    if (rc >= 0 && (*len > cap || (ready != NULL && *len > 0)))
      rc = ACTIO_EINVAL; /* what was written cannot be sent */
    if (rc < 0 || ready == NULL) {
      actio_future_unref(ready);
      return rc < 0 ? rc : 0;
    }
    if (!actio_future_is_done(ready)) {
      c->up_ready = ready;
      c->w->paused++;
      (void)actio__bell_ring_on(c->w->bell, ready); /* polled without it */
      return 1;
    }
    int st = actio_future_status(ready); /* ready at once: ask again */
    actio_future_unref(ready);
    if (st != 0)
      return st;
  }
}

/* ---- the behavior ---- */

static void wake_loop(void *loop) { actio__http_loop_wakeup(loop); }

static int http_init(actio_actor *self, void **worker) {
  actio__http_state *st = actio_actor_state(self);
  actio__http_worker *w = calloc(1, sizeof *w);
  if (w == NULL)
    return ACTIO_ENOMEM;
  w->conf = &st->conf;
  w->thread = pthread_self(); /* worker_init runs on the worker */
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
  w->stopping = 1;
  actio__http_loop_destroy(w->loop); /* what still runs ends cancelled */
  char m[1024];
  while (w->running != NULL) /* what waits to retry, too */
    end_call(w->running, ACTIO_ECANCELED, NULL,
             call_msg(w->conf, w->running, m, sizeof m, "HTTP actor stopped"));
  ACTIO__ASSERT(w->waiting == 0 && w->paused == 0);
  actio__bell_unref(w->bell);
  free(w);
}

static int http_handle(actio_actor *self, void *worker, void *msg,
                       actio_future *unused) {
  actio__http_worker *w = worker;
  actio__http_call *c = msg;
  (void)unused;
  if (actio_future_is_done(c->reply)) { /* cancelled or past its deadline */
    actio__http_call_free(c);
    return 0;
  }
  c->w = w;
  if (c->on_chunk != NULL) { /* the consumer, behind io's plain sink */
    c->io.sink = sink_chunk;
    c->io.sink_arg = c;
  } else if (c->save_to != NULL) {
    c->io.sink = save_chunk;
    c->io.sink_arg = c;
  }
  link_call(w, c);
  actio__request_begin(self, c->reply);
  if (actio_future_on_cancel(c->reply, on_cancel, c) == ACTIO_ECANCELED) {
    end_call(c, ACTIO_ECANCELED, NULL, "cancelled");
    return 0;
  }
  start_attempt(w, c); /* may end c at once */
  return 0;
}

/* Relaxed: a setting, read at each wait; -1 is INT_MAX for the poll. */
static _Atomic int idle_poll_ms = 1000;

void actio__http_set_idle_poll_ms(int ms) {
  atomic_store_explicit(&idle_poll_ms, ms < 0 ? INT_MAX : ms, memory_order_relaxed);
}

static void http_wait(actio_actor *self, void *worker) {
  actio__http_worker *w = worker;
  ACTIO__ASSERT(counts_agree(w));
  int idle = atomic_load_explicit(&idle_poll_ms, memory_order_relaxed);
  int max_ms = w->paused > 0 ? 50 : idle; /* paused: also poll, in case */
  int64_t now = actio__now_ns();
  if (w->waiting > 0)
    for (actio__http_call *c = w->running; c != NULL; c = c->next)
      if (c->retry_wait) {
        int64_t ms = actio__ns_to_ms_ceil(c->due_ns - now);
        if (ms < max_ms)
          max_ms = (int)ms;
      }
  /* The poll comes first and the run after it, so no transfer ends and no
   * callback sends between the look at the mailbox and the sleep: what a
   * completion's callback sends (a closed loop of requests does at every
   * completion) the worker pops as this returns. Nor may it sleep when a
   * call of a worker that entered full ended since (not advertised, so no
   * sender wakes it): actio__wait_may_sleep advertises it, or says the
   * mailbox has work, and then the poll only looks. What the worker
   * started since its last run the loop's timer runs now (libcurl's
   * timeout is 0 then: the poll does not sleep). */
  actio__http_loop_poll(w->loop, actio__wait_may_sleep(self) ? max_ms : 0);
  actio__http_loop_run(w->loop);
  int rang = actio__bell_rang(w->bell);
  if (!rang && w->waiting == 0 && w->paused == 0)
    return;
  now = actio__now_ns();
  for (actio__http_call *c = w->running, *next; c != NULL; c = next) {
    next = c->next; /* ending frees c */
    /* Acquire: pairs with on_cancel's release. */
    if (atomic_load_explicit(&c->cancel, memory_order_acquire)) {
      if (c->x != NULL)
        actio__http_loop_cancel(w->loop, c->x);
      else
        end_call(c, ACTIO_ECANCELED, NULL, "cancelled");
    } else if (c->ready != NULL && actio_future_is_done(c->ready)) {
      ACTIO__ASSERT(c->x != NULL && w->paused > 0);
      int st = actio_future_status(c->ready);
      actio_future_unref(c->ready);
      c->ready = NULL;
      w->paused--;
      if (st == 0)
        st = actio__http_xfer_resume(c->x); /* delivers the held chunk */
      if (st != 0) {
        c->fail_code = st;
        actio__http_loop_cancel(w->loop, c->x);
      }
    } else if (c->up_ready != NULL && actio_future_is_done(c->up_ready)) {
      ACTIO__ASSERT(c->x != NULL && w->paused > 0);
      int st = actio_future_status(c->up_ready);
      actio_future_unref(c->up_ready);
      c->up_ready = NULL;
      w->paused--;
      if (st != 0) { /* the future failed: so does the request */
        c->fail_code = st;
        c->fail_upload = 1;
        actio__http_loop_cancel(w->loop, c->x);
      } else if (actio__http_xfer_resume_upload(c->x) != 0) {
        actio__http_loop_cancel(w->loop, c->x); /* ends with the source's error */
      }
    } else if (c->retry_wait && c->due_ns <= now) {
      ACTIO__ASSERT(c->x == NULL && w->waiting > 0);
      c->retry_wait = 0;
      w->waiting--;
      start_attempt(w, c);
    }
  }
}

static void http_wake(actio_actor *self, void *worker) {
  actio__http_worker *w = worker;
  (void)self;
  /* On its own thread (a callback sent it a message) nothing is due: it
   * is not asleep, and it pops the message before it waits again. */
  if (!pthread_equal(pthread_self(), w->thread))
    actio__http_loop_wakeup(w->loop);
}

static int http_busy(actio_actor *self, void *worker) {
  (void)self;
  return ((actio__http_worker *)worker)->running != NULL;
}

/* Every transfer slot taken: what else was sent waits in the mailbox (its
 * bound, EFULL and the depth then mean what they say), not in libcurl,
 * which would hold a transfer's buffers for each and scan its lists on
 * every removal. A call waiting to retry holds no slot. */
static int http_full(actio_actor *self, void *worker) {
  const actio__http_state *st = actio_actor_state(self);
  const actio__http_worker *w = worker;
  return w->calls - w->waiting >= (size_t)st->conf.max_connections;
}

/* Accepted but never started: the actor stopped at once. */
static void http_drop(actio_actor *self, void *msg) {
  actio__http_call *c = msg;
  const actio__http_state *st = actio_actor_state(self);
  char m[1024];
  actio_future_fail(c->reply, ACTIO_ECANCELED, "%s",
                    call_msg(&st->conf, c, m, sizeof m, "HTTP actor stopped"));
  actio__http_call_free(c);
}

const actio_behavior actio__http_behavior = {
    .worker_init = http_init,
    .handle = http_handle,
    .worker_stop = http_stop,
    .drop = http_drop,
    .wait = http_wait,
    .wake = http_wake,
    .busy = http_busy,
    .full = http_full,
};

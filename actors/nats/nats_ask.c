/* nats_ask.c: remote requests: the shared reply inbox (one subscription
 * per connection, a token per request), the bounded pending table, and its
 * alarm, a delayed send of the runtime's timer to the connection's actor,
 * whose handler ends attempts that timed out and starts retries. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actio.h"
#include "actors/core/actor_internal.h"
#include "actors/core/deadline.h"
#include "actors/nats/nats_internal.h"
#include "base/clock.h"
#include "base/debug.h"

enum { P_ATTEMPT = 0, P_WAIT = 1 }; /* waiting for a reply, or to retry */

/* One pending request: one block, its subject (and, with retries, its
 * headers and data) behind it. Its fields are guarded by st->mu from its
 * insertion on, but for the constants set before. */
struct actio__nats_pend {
  actio__nats_pend *hnext;    /* its bucket's chain */
  actio_future *f;            /* the request's reference */
  actio__nats_state *st;
  uint64_t token;
  int64_t due_ns;             /* the attempt's end, or the next one's start */
  uint32_t heap;              /* its index in st->heap */
  uint8_t state;              /* P_ATTEMPT or P_WAIT */
  uint8_t in;                 /* in the table */
  uint16_t attempts;
  int32_t retries;            /* left */
  int32_t timeout_ms, backoff_ms;
  /* Who frees it: whoever takes it out of the table, and the alarm's
   * handler while it sends a retry outside the lock (p stays in the table
   * meanwhile, for its reply may come first). Acq_rel: the last one frees,
   * after the other's reads. */
  _Atomic uint32_t refs;
  actio_nats_decode_reply_fn decode;
  void *decode_arg;
  const char *const *headers; /* retries: the copies behind subject */
  const void *data;
  size_t len;
  char subject[];
};

size_t actio__nats_pend_size(size_t subject_len) {
  return sizeof(actio__nats_pend) + subject_len + 1;
}

static void count(_Atomic uint64_t *c) {
  atomic_fetch_add_explicit(c, 1, memory_order_relaxed); /* statistics */
}

/* ---- the table, under st->mu ---- */

static int before(const actio__nats_pend *a, const actio__nats_pend *b) {
  return a->due_ns < b->due_ns;
}

static void heap_set(actio__nats_state *st, size_t i, actio__nats_pend *p) {
  st->heap[i] = p;
  p->heap = (uint32_t)i;
}

static void sift_up(actio__nats_state *st, size_t i) {
  actio__nats_pend *p = st->heap[i];
  while (i > 0 && before(p, st->heap[(i - 1) / 2])) {
    heap_set(st, i, st->heap[(i - 1) / 2]);
    i = (i - 1) / 2;
  }
  heap_set(st, i, p);
}

static void sift_down(actio__nats_state *st, size_t i) {
  actio__nats_pend *p = st->heap[i];
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= st->n)
      break;
    if (c + 1 < st->n && before(st->heap[c + 1], st->heap[c]))
      c++;
    if (!before(st->heap[c], p))
      break;
    heap_set(st, i, st->heap[c]);
    i = c;
  }
  heap_set(st, i, p);
}

/* p's due time changed: back in its place. */
static void reschedule(actio__nats_state *st, actio__nats_pend *p, int64_t due) {
  int later = due > p->due_ns;
  p->due_ns = due;
  if (later)
    sift_down(st, p->heap);
  else
    sift_up(st, p->heap);
}

static void insert(actio__nats_state *st, actio__nats_pend *p) {
  actio__nats_pend **b = &st->buckets[p->token & st->mask];
  p->hnext = *b;
  *b = p;
  p->in = 1;
  heap_set(st, st->n++, p);
  sift_up(st, p->heap);
}

static void unlink_pend(actio__nats_state *st, actio__nats_pend *p) {
  ACTIO__ASSERT(p->in);
  actio__nats_pend **b = &st->buckets[p->token & st->mask];
  while (*b != p)
    b = &(*b)->hnext;
  *b = p->hnext;
  size_t i = p->heap;
  actio__nats_pend *last = st->heap[--st->n];
  if (i < st->n) {
    heap_set(st, i, last);
    sift_down(st, i);
    sift_up(st, last->heap);
  }
  p->in = 0;
}

static actio__nats_pend *find(actio__nats_state *st, uint64_t token) {
  actio__nats_pend *p = st->buckets[token & st->mask];
  while (p != NULL && p->token != token)
    p = p->hnext;
  return p;
}

/* ---- the alarm ---- */

char actio__nats_alarm_msg;

/* Arms the alarm for the table's first due time, unless one armed rings
 * as early. Not under mu. */
static void alarm_update(actio__nats_state *st) {
  pthread_mutex_lock(&st->alarm_mu);
  pthread_mutex_lock(&st->mu);
  int64_t due = st->closed || st->n == 0 ? INT64_MAX : st->heap[0]->due_ns;
  pthread_mutex_unlock(&st->mu);
  if (due < st->alarm_due) {
    if (st->alarm != NULL) {
      (void)actio_timer_cancel(st->alarm);
      actio_timer_release(st->alarm);
      st->alarm = NULL;
    }
    int64_t wait = due - actio__now_ns();
    wait = wait > 0 ? (wait + ACTIO__NS_PER_MS - 1) / ACTIO__NS_PER_MS : 0;
    /* Fails only as the actor stops (its stop fails what is pending) or
     * out of memory (the next update tries again). */
    if (actio_send_after(st->self, &actio__nats_alarm_msg, wait, &st->alarm) == 0)
      st->alarm_due = due;
    else
      st->alarm = NULL;
  }
  pthread_mutex_unlock(&st->alarm_mu);
}

/* The alarm rang (or will: a handler running meanwhile does its work):
 * none is armed any more. */
static void alarm_clear(actio__nats_state *st) {
  pthread_mutex_lock(&st->alarm_mu);
  if (st->alarm != NULL) {
    (void)actio_timer_cancel(st->alarm);
    actio_timer_release(st->alarm);
    st->alarm = NULL;
  }
  st->alarm_due = INT64_MAX;
  pthread_mutex_unlock(&st->alarm_mu);
}

/* ---- ending a request: whoever unlinked it ---- */

static void pend_free(actio__nats_pend *p) {
  if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1)
    return;
  actio_future_unref(p->f);
  free(p);
}

/* Its cancel hook no longer runs: p is the caller's alone. */
static void pend_claim(actio__nats_pend *p) { actio_future_clear_cancel(p->f); }

static void pend_fail(actio__nats_pend *p, int code, const char *fmt, const char *what) {
  pend_claim(p);
  (void)actio_future_fail(p->f, code, fmt, p->subject, what);
  pend_free(p);
}

/* Takes p out of the table, if it is still in: 1 if this call did (p is
 * then the caller's to end), 0 if someone else took it first. */
static int take_out(actio__nats_state *st, actio__nats_pend *p) {
  pthread_mutex_lock(&st->mu);
  int mine = p->in;
  if (mine)
    unlink_pend(st, p);
  pthread_mutex_unlock(&st->mu);
  return mine;
}

/* A cancel or a deadline: out of the table at once, unless whoever took
 * it out first completes it. The canceller holds a reference to the
 * future. */
static void on_cancel(void *arg) {
  actio__nats_pend *p = arg;
  if (take_out(p->st, p))
    pend_free(p);
}

/* The retry of p may start, due `pause` ms from now: it has retries left,
 * and the pause ends before the future's deadline. */
static int may_retry(const actio__nats_pend *p, int64_t pause) {
  int64_t left = actio_future_remaining_ms(p->f);
  return p->retries > 0 && (left < 0 || left > pause);
}

/* Schedules p's next attempt; under mu. */
static void retry_later(actio__nats_state *st, actio__nats_pend *p, int64_t now) {
  int64_t pause = actio__backoff_ms(p->backoff_ms, 5000, p->attempts);
  p->state = P_WAIT;
  p->retries--;
  reschedule(st, p, now + pause * ACTIO__NS_PER_MS);
}

static int64_t retry_pause(const actio__nats_pend *p) {
  /* The upper bound of actio__backoff_ms's jitter: may_retry is sure. */
  int64_t pause = p->backoff_ms;
  for (unsigned k = 1; k < p->attempts && pause < 5000; k++)
    pause *= 2;
  return pause < 5000 ? pause : 5000;
}

/* ---- replies ---- */

static void complete(actio__nats_state *st, actio__nats_pend *p, actio__nats_msg *rx) {
  pend_claim(p);
  count(&st->replies_n); /* before: whoever sees the future done sees it */
  const char *text = NULL;
  int code = actio__nats_msg_error(rx, &text);
  if (code != 0) {
    (void)actio_future_fail(p->f, code, "%s", text != NULL ? text : actio_strerror(code));
    actio__nats_msg_free(rx);
  } else if (p->decode != NULL) {
    actio_nats_msg view;
    actio__nats_msg_view(&view, rx);
    void *value = NULL;
    actio_free_fn free_fn = NULL;
    int rc = p->decode(p->decode_arg, &view, &value, &free_fn);
    actio__nats_msg_free(rx);
    if (rc < 0)
      (void)actio_future_fail(p->f, rc, "decoding the reply from %s failed: %s", p->subject,
                              actio_strerror(rc));
    else if (actio_future_resolve(p->f, value, free_fn) != 0 && free_fn != NULL)
      free_fn(value);
  } else {
    actio_nats_msg *m = actio__nats_msg_wrap(rx);
    if (m == NULL) {
      actio__nats_msg_free(rx);
      (void)actio_future_fail(p->f, ACTIO_ENOMEM, "reply from %s: out of memory", p->subject);
    } else if (actio_future_resolve(p->f, m, actio_nats_msg_free_fn) != 0) {
      actio_nats_msg_free(m);
    }
  }
  pend_free(p);
}

/* Every reply, on the inbox subscription's cnats thread. */
static void on_reply(void *arg, actio__nats_msg *rx) {
  actio__nats_state *st = arg;
  const char *subject = actio__nats_msg_subject(rx);
  uint64_t token = 0;
  if (strlen(subject) > st->inbox_len)
    token = strtoull(subject + st->inbox_len, NULL, 16);
  int nr = actio__nats_msg_no_responders(rx), first = 0;
  pthread_mutex_lock(&st->mu);
  actio__nats_pend *p = find(st, token);
  if (p != NULL && nr) {
    count(&st->no_responders);
    if (may_retry(p, retry_pause(p))) {
      retry_later(st, p, actio__now_ns());
      first = p->heap == 0;
      p = NULL;
      nr = 2; /* handled */
    }
  }
  if (p != NULL)
    unlink_pend(st, p);
  pthread_mutex_unlock(&st->mu);
  if (first)
    alarm_update(st); /* the retry is due before the alarm */
  if (p == NULL) {
    if (nr != 2)
      count(&st->late); /* its request ended: cancelled, timed out */
    actio__nats_msg_free(rx);
  } else if (nr) {
    actio__nats_msg_free(rx);
    pend_fail(p, ACTIO_ENORESPONDERS, "no responders on %s%s", "");
  } else {
    complete(st, p, rx);
  }
}

/* ---- the alarm's handler: attempts that time out, retries that are due ---- */

void actio__nats_pending_expire(actio__nats_state *st) {
  alarm_clear(st);
  pthread_mutex_lock(&st->mu);
  for (;;) {
    int64_t now = actio__now_ns();
    if (st->closed || st->n == 0 || st->heap[0]->due_ns > now)
      break;
    actio__nats_pend *p = st->heap[0];
    if (p->state == P_ATTEMPT) {
      count(&st->timeouts);
      if (may_retry(p, retry_pause(p))) {
        retry_later(st, p, now);
        continue;
      }
      unlink_pend(st, p);
      pthread_mutex_unlock(&st->mu);
      char what[64];
      snprintf(what, sizeof what, " within %" PRId32 " ms (%u attempt%s)", p->timeout_ms,
               (unsigned)p->attempts, p->attempts > 1 ? "s" : "");
      pend_fail(p, ACTIO_ETIMEDOUT, "no reply from %s%s", what);
      pthread_mutex_lock(&st->mu);
      continue;
    }
    /* A retry: its attempt begins before it is sent, outside the lock (no
     * lock is held across a call into cnats), so that a reply quicker
     * than the publish's return finds it waiting. p stays in the table
     * meanwhile, and this thread's reference keeps it. */
    p->state = P_ATTEMPT;
    p->attempts++;
    reschedule(st, p, now + (int64_t)p->timeout_ms * ACTIO__NS_PER_MS);
    atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed); /* the table's is held */
    count(&st->retries); /* before: a reply may complete it first */
    count(&st->sent);
    pthread_mutex_unlock(&st->mu);
    char reply[96];
    snprintf(reply, sizeof reply, "%s%" PRIx64, st->inbox, p->token);
    int rc = actio__nats_publish(st->conn, p->subject, reply, p->headers, p->data, p->len);
    if (rc != 0) {
      atomic_fetch_sub_explicit(&st->retries, 1, memory_order_relaxed); /* statistics */
      atomic_fetch_sub_explicit(&st->sent, 1, memory_order_relaxed);
      if (take_out(st, p))
        pend_fail(p, rc, "sending to %s again failed: %s", actio_strerror(rc));
    }
    pend_free(p); /* this thread's reference */
    pthread_mutex_lock(&st->mu);
  }
  pthread_mutex_unlock(&st->mu);
  alarm_update(st);
}

/* ---- starting and stopping ---- */

static void replies_done(void *arg) {
  actio__nats_state *st = arg;
  pthread_mutex_lock(&st->mu);
  st->replies_over = 1;
  pthread_cond_broadcast(&st->cv);
  pthread_mutex_unlock(&st->mu);
}

int actio__nats_pending_start(actio__nats_state *st) {
  size_t b = 1;
  while (b < st->max_pending)
    b *= 2;
  st->buckets = calloc(b, sizeof *st->buckets);
  st->heap = calloc(st->max_pending, sizeof *st->heap);
  if (st->buckets == NULL || st->heap == NULL)
    return ACTIO_ENOMEM;
  st->mask = b - 1;
  int rc = actio__nats_inbox(st->inbox, sizeof st->inbox - 1);
  if (rc != 0)
    return rc;
  st->inbox_len = strlen(st->inbox);
  st->inbox[st->inbox_len++] = '.';
  st->inbox[st->inbox_len] = '\0';
  char wild[sizeof st->inbox + 1];
  snprintf(wild, sizeof wild, "%s*", st->inbox);
  return actio__nats_subscribe(st->conn, wild, NULL, on_reply, replies_done, st,
                               &st->replies);
}

/* Takes every request out of the table, into a list by hnext. Under mu. */
static actio__nats_pend *take_all(actio__nats_state *st) {
  actio__nats_pend *list = NULL;
  while (st->n > 0) {
    actio__nats_pend *p = st->heap[st->n - 1];
    unlink_pend(st, p);
    p->hnext = list;
    list = p;
  }
  return list;
}

static void fail_list(actio__nats_pend *p, int code, const char *why) {
  while (p != NULL) {
    actio__nats_pend *next = p->hnext;
    pend_fail(p, code, "request to %s: %s", why);
    p = next;
  }
}

void actio__nats_pending_fail_all(actio__nats_state *st, int code, const char *why) {
  pthread_mutex_lock(&st->mu);
  actio__nats_pend *list = take_all(st);
  pthread_mutex_unlock(&st->mu);
  fail_list(list, code, why);
}

void actio__nats_pending_stop(actio__nats_state *st) {
  pthread_mutex_lock(&st->mu);
  st->closed = 1; /* no alarm is armed from now on */
  pthread_mutex_unlock(&st->mu);
  alarm_clear(st);
  if (st->replies != NULL) {
    actio__nats_unsubscribe(st->replies);
    st->replies = NULL;
    pthread_mutex_lock(&st->mu);
    while (!st->replies_over)
      pthread_cond_wait(&st->cv, &st->mu);
    pthread_mutex_unlock(&st->mu);
  }
  actio__nats_pending_fail_all(st, ACTIO_ECLOSED, "the NATS connection's actor stopped");
}

/* ---- asking ---- */

size_t actio__nats_headers_size(const char *const *h, size_t *n) {
  size_t bytes = 12; /* "NATS/1.0\r\n" and the blank line */
  *n = 0;
  if (h == NULL)
    return bytes;
  for (; h[*n] != NULL; (*n)++) {
    for (const char *c = h[*n]; *c; c++)
      if ((unsigned char)*c < 0x20 || *c == 0x7f ||
          (*n % 2 == 0 && (*c == ':' || *c == ' ')))
        return 0;
    if (*n % 2 == 0 && *h[*n] == '\0')
      return 0;
    bytes += strlen(h[*n]) + 2; /* ": " or "\r\n" */
  }
  return *n % 2 == 0 ? bytes : 0;
}

/* One block: the request, its subject, and with retries copies of its
 * headers and data. */
static actio__nats_pend *pend_new(const actio_nats_request *req, size_t nh) {
  size_t ls = strlen(req->subject) + 1, copy = 0;
  if (req->retries > 0) {
    copy = (nh + 1) * sizeof(char *) + req->len;
    for (size_t i = 0; i < nh; i++)
      copy += strlen(req->headers[i]) + 1;
  }
  actio__nats_pend *p = malloc(sizeof *p + ls + copy + sizeof(char *));
  if (p == NULL)
    return NULL;
  memset(p, 0, sizeof *p);
  memcpy(p->subject, req->subject, ls);
  p->data = req->data;
  p->len = req->len;
  p->headers = nh ? req->headers : NULL;
  if (req->retries > 0) {
    /* Past the subject, aligned for the pointers. */
    size_t off = (sizeof *p + ls + sizeof(char *) - 1) / sizeof(char *) * sizeof(char *);
    char **hv = (char **)(void *)((char *)p + off);
    char *q = (char *)(hv + nh + 1);
    for (size_t i = 0; i < nh; i++) {
      size_t l = strlen(req->headers[i]) + 1;
      hv[i] = memcpy(q, req->headers[i], l);
      q += l;
    }
    hv[nh] = NULL;
    p->headers = nh ? (const char *const *)hv : NULL;
    p->data = req->len ? memcpy(q, req->data, req->len) : NULL;
  }
  return p;
}

int actio__nats_ask(actio__nats_state *st, const actio_nats_request *req,
                    actio_future **out) {
  size_t nh;
  size_t hbytes = actio__nats_headers_size(req->headers, &nh);
  if (hbytes == 0 || (req->data == NULL && req->len > 0) || req->retries < 0 ||
      req->timeout_ms < 0 || req->retry_backoff_ms < 0)
    return ACTIO_EINVAL;
  if (!actio__nats_subject_valid(req->subject, 0))
    return ACTIO_ESUBJECT;
  if ((int64_t)(req->len + (nh ? hbytes : 0)) > st->max_payload)
    return ACTIO_EPAYLOAD;
  actio__nats_pend *p = pend_new(req, nh);
  if (p == NULL)
    return ACTIO_ENOMEM;
  long timeout = req->timeout_ms ? req->timeout_ms : st->timeout_ms;
  p->st = st;
  atomic_init(&p->refs, 1);
  p->timeout_ms = timeout < INT32_MAX ? (int32_t)timeout : INT32_MAX;
  p->backoff_ms = req->retry_backoff_ms ? (int32_t)req->retry_backoff_ms : 50;
  p->retries = req->retries;
  p->attempts = 1;
  p->decode = req->decode;
  p->decode_arg = req->decode_arg;
  p->token = atomic_fetch_add_explicit(&st->next_token, 1, memory_order_relaxed);
  int rc = actio_future_create(&p->f);
  if (rc == 0)
    rc = actio__deadline_inherit(st->rt, p->f);
  if (rc != 0) {
    actio_future_unref(p->f);
    free(p);
    return rc;
  }
  actio_future *f = p->f;
  uint64_t token = p->token;
  actio_future_ref(f); /* the caller's; p holds the table's */
  if (actio_future_on_cancel(f, on_cancel, p) != 0) {
    /* Cancelled already (an inherited deadline that passed): the caller
     * sees it so. */
    pend_free(p);
    actio__actor_track(st->self, f);
    *out = f;
    return 0;
  }
  p->due_ns = actio__now_ns() + (int64_t)p->timeout_ms * ACTIO__NS_PER_MS;
  pthread_mutex_lock(&st->mu);
  rc = st->closed                                        ? ACTIO_ECLOSED
       : st->down && st->disconnect == ACTIO_NATS_FAIL ? ACTIO_ENATS
       : st->n == st->max_pending                        ? ACTIO_EFULL
                                                         : 0;
  int first = 0;
  if (rc == 0) {
    insert(st, p);
    first = p->heap == 0;
  }
  pthread_mutex_unlock(&st->mu);
  if (rc != 0) {
    pend_claim(p);
    pend_free(p);
    actio_future_unref(f);
    return rc;
  }
  if (first)
    alarm_update(st); /* due before the alarm, if one is armed */
  char reply[96];
  snprintf(reply, sizeof reply, "%s%" PRIx64, st->inbox, token);
  /* p may end from here on (a reply, a cancel, a timeout): only its token
   * finds it again. */
  rc = actio__nats_publish(st->conn, req->subject, reply, nh ? req->headers : NULL, req->data,
                           req->len);
  if (rc != 0) {
    pthread_mutex_lock(&st->mu);
    p = find(st, token);
    if (p != NULL)
      unlink_pend(st, p);
    pthread_mutex_unlock(&st->mu);
    if (p != NULL) { /* nothing else saw it: as if never made */
      pend_claim(p);
      pend_free(p);
      actio_future_unref(f);
      return rc;
    }
    /* Ended already (cancelled, timed out): the caller sees it so. */
  } else {
    count(&st->sent);
  }
  actio__actor_track(st->self, f);
  actio__request_begin(st->self, f);
  *out = f;
  return 0;
}

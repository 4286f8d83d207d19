/* batch.c: the batcher (groupedWithin with smart batching): items
 * collected under one mutex into the batch being formed, sent at once while
 * fewer than `eager` batches are in flight, else by count, by the runtime's
 * timer, by a flush or when a batch in flight ends; a FIFO of items waiting
 * for room; batches sent one at a time by whichever thread found none
 * being sent (a loop, so that batches completed at once never recurse);
 * futures completed and user functions called only once the lock is let
 * go. */
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actio/batch.h"
#include "actio/error.h"
#include "actio/timer.h"
#include "actors/core/burst.h"
#include "actors/sync/waiters.h"
#include "base/debug.h"

#define GONE_MSG "the batcher was destroyed"

enum { E_WAITING, E_QUEUED, E_SENT, E_GONE };

/* One item. Its future's cancel hook reads it under the batcher's lock;
 * whoever takes it out of the batcher (the hook, a batch's end, destroy)
 * frees it. */
typedef struct entry {
  actio__link link; /* in the FIFO of items waiting for room */
  actio_future *f;  /* the batcher's reference */
  void *item;
  actio_batcher *b;
  int state;        /* under b->mu */
} entry;

struct actio_batch {
  actio_batcher *b;
  actio_future *f;  /* the batch's future, once the function gave it */
  actio__link link; /* in b->flying */
  int cancelled;    /* destroy cancelled f (under b->mu) */
  actio_batch *next; /* in b->ready */
  size_t n;
  entry *e[];
};

struct actio_batcher {
  pthread_mutex_t mu;
  pthread_cond_t idle; /* busy fell to 0: destroy waits for it */
  actio_runtime *rt;
  actio_batch_fn fn;
  void *arg;
  actio_batcher_opts o;
  size_t eager;        /* send at once below this many in flight (0: never) */
  /* Under mu: */
  actio_batch *form;   /* the batch being formed, NULL when none */
  actio__list waiting; /* entries waiting for room */
  size_t nwaiting;     /* their count, at most o.max_waiting */
  actio__list flying;  /* batches taken and not over, sent or ready */
  size_t nflying;      /* their count */
  actio_batch *ready, **ready_tail; /* taken, their function not yet called */
  size_t accepted;     /* items queued or sent, not yet completed */
  size_t busy;         /* batches, timer arms and callbacks, cancel hooks,
                        * the sending thread still to touch the batcher */
  actio_future *timer; /* the armed wait for the formed batch */
  int arming, closed;
  int sending;         /* a thread is calling the batch functions */
  int deferred;        /* hook queued: a burst's end sends the formed batch */
  actio__burst_hook hook; /* (busy taken while queued) */
};

/* What a call under the lock leaves to do once it is let go. */
typedef struct todo {
  int send;           /* send the ready batches (b->sending and busy taken) */
  int arm;            /* arm the timer (busy taken) */
  actio_future *stop; /* a timer to cancel (the batcher's reference) */
  actio__list refused; /* entries no batch could be made for: they fail */
} todo;

static void entry_free(actio_batcher *b, entry *e) {
  if (b->o.item_free != NULL)
    b->o.item_free(e->item);
  actio_future_unref(e->f);
  free(e);
}

/* Under mu: the formed batch is queued to be sent (busy taken for it; the
 * caller becomes the sending thread if there is none) and the timer meant
 * for it is to be stopped. */
static void take_form(actio_batcher *b, todo *t) {
  actio_batch *batch = b->form;
  if (batch == NULL || batch->n == 0)
    return;
  b->form = NULL;
  for (size_t i = 0; i < batch->n; i++)
    batch->e[i]->state = E_SENT;
  actio__list_push(&b->flying, &batch->link);
  b->nflying++;
  b->busy++;
  batch->next = NULL;
  *b->ready_tail = batch;
  b->ready_tail = &batch->next;
  if (!b->sending) {
    b->sending = 1;
    b->busy++;
    t->send = 1;
  }
  if (b->timer != NULL) {
    t->stop = b->timer;
    b->timer = NULL;
  }
}

/* Under mu, after the formed batch changed: it goes now if fewer than
 * `eager` batches are in flight (the downstream is idle: waiting would only
 * add latency), else its timer is armed if it has none. On a thread inside
 * a burst of completions (actors/core/burst.h: a file group's, say) "now"
 * is the burst's end: the items the burst brings go as one batch, not the
 * first alone and the rest one batch later. */
static void schedule(actio_batcher *b, todo *t) {
  if (b->closed || b->form == NULL || b->form->n == 0)
    return;
  if (b->nflying < b->eager) {
    if (!actio__burst_active())
      take_form(b, t);
    else if (!b->deferred && actio__burst_defer(&b->hook)) {
      b->deferred = 1;
      b->busy++;
    }
  } else if (b->timer == NULL && !b->arming && !t->arm) {
    b->arming = 1;
    b->busy++;
    t->arm = 1;
  }
}

/* Under mu: puts e in the formed batch, which goes if that filled it.
 * Returns 0 or ACTIO_ENOMEM. */
static int enqueue(actio_batcher *b, entry *e, todo *t) {
  if (b->form == NULL) {
    b->form = calloc(1, sizeof *b->form + b->o.max_items * sizeof(entry *));
    if (b->form == NULL)
      return ACTIO_ENOMEM;
    b->form->b = b;
  }
  e->state = E_QUEUED;
  b->form->e[b->form->n++] = e;
  b->accepted++;
  if (b->form->n == b->o.max_items)
    take_form(b, t);
  return 0;
}

/* Under mu: lets the items waiting for room in, in order, while there is.
 * One that finds no memory for a batch fails (ACTIO_ENOMEM): left waiting,
 * it might never be let in, nothing else coming to try again. */
static void admit(actio_batcher *b, todo *t) {
  while (!b->closed && b->accepted < b->o.capacity && b->waiting.head != NULL) {
    entry *e = (entry *)b->waiting.head;
    actio__list_unlink(&b->waiting, &e->link);
    b->nwaiting--;
    if (enqueue(b, e, t) != 0) {
      e->state = E_GONE;
      actio__list_push(&t->refused, &e->link);
    }
  }
}

static void fire(actio_future *timer, void *arg);
static void run(actio_batcher *b, todo *t);

/* The end of the burst that deferred the formed batch: it goes now (or
 * waits, as schedule says, if a batch went meanwhile). */
static void burst_over(actio__burst_hook *h) {
  actio_batcher *b = (actio_batcher *)(void *)((char *)h - offsetof(actio_batcher, hook));
  todo t = {0};
  pthread_mutex_lock(&b->mu);
  b->deferred = 0;
  schedule(b, &t);
  b->busy--;
  pthread_cond_broadcast(&b->idle);
  pthread_mutex_unlock(&b->mu);
  run(b, &t);
}

/* Outside mu: arms the timer of the formed batch (busy taken by enqueue,
 * kept for the timer's callback). A timer that cannot be armed sends the
 * batch at once rather than never. */
static void arm(actio_batcher *b) {
  actio_future *timer = NULL;
  todo t = {0};
  int rc = actio_sleep(b->rt, b->o.max_wait_ms, &timer);
  pthread_mutex_lock(&b->mu);
  b->arming = 0;
  if (rc == 0 && !b->closed) {
    b->timer = timer;
    actio_future_ref(timer); /* the callback's, until on_done has it */
    pthread_mutex_unlock(&b->mu);
    if (actio_future_on_done(timer, fire, b) == 0) {
      actio_future_unref(timer);
      return;
    }
    actio_future_unref(timer);
    pthread_mutex_lock(&b->mu);
    if (b->timer == timer)
      b->timer = NULL;
    else
      timer = NULL; /* a flush took it: it stops it */
  }
  if (!b->closed)
    take_form(b, &t);
  b->busy--;
  pthread_cond_broadcast(&b->idle);
  pthread_mutex_unlock(&b->mu);
  if (timer != NULL) {
    actio_future_cancel(timer);
    actio_future_unref(timer);
  }
  run(b, &t);
}

/* The timer's callback: time is up for the batch being formed (unless a
 * flush took it, and stopped this timer, first). */
static void fire(actio_future *timer, void *arg) {
  actio_batcher *b = arg;
  todo t = {0};
  pthread_mutex_lock(&b->mu);
  if (b->timer == timer) {
    b->timer = NULL;
    t.stop = timer; /* done already: only its reference to drop */
    if (actio_future_status(timer) == 0 && !b->closed)
      take_form(b, &t);
  }
  b->busy--;
  pthread_cond_broadcast(&b->idle);
  pthread_mutex_unlock(&b->mu);
  run(b, &t);
}

/* Outside mu: a batch is over with its future's outcome (status, msg), or
 * the function's error: each item not completed by the function takes it,
 * the room goes to the items waiting, and what collected meanwhile goes
 * now if that leaves fewer than `eager` in flight. */
static void batch_over(actio_batch *batch, int status, const char *msg) {
  actio_batcher *b = batch->b;
  todo t = {0};
  pthread_mutex_lock(&b->mu);
  actio__list_unlink(&b->flying, &batch->link);
  ACTIO__ASSERT(b->nflying > 0 && b->accepted >= batch->n);
  b->nflying--;
  b->accepted -= batch->n;
  admit(b, &t);
  schedule(b, &t);
  pthread_mutex_unlock(&b->mu);
  run(b, &t);
  for (size_t i = 0; i < batch->n; i++) {
    entry *e = batch->e[i];
    actio_future_clear_cancel(e->f); /* a hook running finds it sent */
    if (status == 0)
      actio_future_resolve(e->f, NULL, NULL);
    else
      actio_future_fail(e->f, status, "%s", msg != NULL ? msg : actio_strerror(status));
    entry_free(b, e);
  }
  actio_future_unref(batch->f);
  free(batch);
  pthread_mutex_lock(&b->mu);
  b->busy--;
  pthread_cond_broadcast(&b->idle);
  pthread_mutex_unlock(&b->mu);
}

static void batch_done(actio_future *f, void *arg) {
  batch_over(arg, actio_future_status(f), actio_future_errmsg(f));
}

/* Outside mu: calls the batch function; the batch is over once its future
 * is (or at once, on the function's error). A batch whose future is done
 * already ends here, on this thread: the batches that frees are queued,
 * not sent from within, so that the stack stays flat. */
static void send(actio_batch *batch) {
  actio_batcher *b = batch->b;
  actio_future *f = NULL;
  int closed;
  pthread_mutex_lock(&b->mu);
  closed = b->closed;
  pthread_mutex_unlock(&b->mu);
  if (closed) { /* taken before destroy: cancelled without a call */
    batch_over(batch, ACTIO_ECANCELED, GONE_MSG);
    return;
  }
  int rc = b->fn(batch, b->arg, &f);
  if (rc == 0 && f == NULL)
    rc = ACTIO_EINVAL;
  if (rc != 0) {
    batch_over(batch, rc, "the batch function failed");
    return;
  }
  pthread_mutex_lock(&b->mu);
  batch->f = f;
  closed = b->closed;
  pthread_mutex_unlock(&b->mu);
  if (closed)
    actio_future_cancel(f);
  if (actio_future_on_done(f, batch_done, batch) != 0) {
    actio_future_cancel(f);
    actio_future_wait(f, -1);
    batch_over(batch, ACTIO_ENOMEM, NULL);
  }
}

/* Outside mu, on the sending thread: sends the ready batches, in order,
 * until none is left (those the sends themselves make ready included). */
static void send_ready(actio_batcher *b) {
  pthread_mutex_lock(&b->mu);
  ACTIO__ASSERT(b->sending);
  actio_batch *batch;
  while ((batch = b->ready) != NULL) {
    if ((b->ready = batch->next) == NULL)
      b->ready_tail = &b->ready;
    pthread_mutex_unlock(&b->mu);
    send(batch);
    pthread_mutex_lock(&b->mu);
  }
  b->sending = 0;
  b->busy--;
  pthread_cond_broadcast(&b->idle);
  pthread_mutex_unlock(&b->mu);
}

/* Outside mu: what a call under it left to do (its caller holds busy
 * while there are entries refused). */
static void run(actio_batcher *b, todo *t) {
  for (actio__link *l; (l = t->refused.head) != NULL;) {
    actio__list_unlink(&t->refused, l);
    entry *e = (entry *)l;
    actio_future_clear_cancel(e->f);
    actio_future_fail(e->f, ACTIO_ENOMEM, "no memory for the item's batch");
    entry_free(b, e);
  }
  if (t->stop != NULL) {
    actio_future_cancel(t->stop);
    actio_future_unref(t->stop);
  }
  if (t->arm)
    arm(b);
  if (t->send)
    send_ready(b);
}

/* An item's cancel hook: an item not yet sent leaves the batcher (its room
 * to the next waiting); a sent one's outcome will find its future done. */
static void item_cancelled(void *arg) {
  entry *e = arg;
  actio_batcher *b = e->b;
  todo t = {0};
  pthread_mutex_lock(&b->mu);
  int state = e->state;
  if (state == E_WAITING) {
    actio__list_unlink(&b->waiting, &e->link);
    b->nwaiting--;
  } else if (state == E_QUEUED) {
    actio_batch *form = b->form;
    size_t i = 0;
    while (form->e[i] != e)
      i++;
    memmove(&form->e[i], &form->e[i + 1], (form->n - i - 1) * sizeof(entry *));
    form->n--;
    b->accepted--;
    admit(b, &t);
    schedule(b, &t);
  }
  if (state == E_WAITING || state == E_QUEUED) {
    e->state = E_GONE;
    b->busy++;
  }
  pthread_mutex_unlock(&b->mu);
  if (state != E_WAITING && state != E_QUEUED)
    return;
  run(b, &t);
  entry_free(b, e); /* the canceller holds its own reference */
  pthread_mutex_lock(&b->mu);
  b->busy--;
  pthread_cond_broadcast(&b->idle);
  pthread_mutex_unlock(&b->mu);
}

int actio_batcher_create(actio_runtime *rt, const actio_batcher_opts *opts,
                         actio_batch_fn fn, void *arg, actio_batcher **out) {
  actio_batcher_opts o = opts != NULL ? *opts : (actio_batcher_opts){0};
  if (o.max_items == 0)
    o.max_items = 64;
  if (o.max_wait_ms == 0)
    o.max_wait_ms = 10;
  if (o.eager == 0)
    o.eager = 1;
  if (o.capacity == 0)
    o.capacity = o.max_items <= SIZE_MAX / 4 ? 4 * o.max_items : o.max_items;
  if (o.max_waiting == 0)
    o.max_waiting = o.capacity;
  if (rt == NULL || fn == NULL || out == NULL || o.max_wait_ms < 0 || o.eager < ACTIO_BATCH_TIMED ||
      o.capacity < o.max_items || o.max_items > (SIZE_MAX - sizeof(actio_batch)) / sizeof(entry *))
    return ACTIO_EINVAL;
  actio_batcher *b = calloc(1, sizeof *b);
  if (b == NULL)
    return ACTIO_ENOMEM;
  pthread_mutex_init(&b->mu, NULL);
  pthread_cond_init(&b->idle, NULL);
  b->rt = rt;
  b->fn = fn;
  b->arg = arg;
  b->o = o;
  b->eager = o.eager > 0 ? (size_t)o.eager : 0;
  b->ready_tail = &b->ready;
  b->hook.fn = burst_over;
  *out = b;
  return 0;
}

int actio_batcher_add(actio_batcher *b, void *item, actio_batch_mode mode,
                      actio_future **out) {
  if (b == NULL || item == NULL || out == NULL ||
      (mode != ACTIO_BATCH_NOWAIT && mode != ACTIO_BATCH_WAIT))
    return ACTIO_EINVAL;
  entry *e = calloc(1, sizeof *e);
  if (e == NULL)
    return ACTIO_ENOMEM;
  int rc = actio_future_create(&e->f);
  if (rc != 0) {
    free(e);
    return rc;
  }
  e->item = item;
  e->b = b;
  e->state = E_GONE;
  actio_future_on_cancel(e->f, item_cancelled, e); /* a new future: 0 */
  actio_future *f = e->f; /* e may be sent and freed once the lock is let go */
  actio_future_ref(f);     /* the caller's */
  todo t = {0};
  pthread_mutex_lock(&b->mu);
  if (b->closed)
    rc = ACTIO_ECLOSED;
  else if (b->accepted < b->o.capacity && b->waiting.head == NULL) {
    if ((rc = enqueue(b, e, &t)) == 0)
      schedule(b, &t);
  } else if (mode == ACTIO_BATCH_NOWAIT || b->nwaiting >= b->o.max_waiting)
    rc = ACTIO_EFULL;
  else {
    e->state = E_WAITING;
    actio__list_push(&b->waiting, &e->link);
    b->nwaiting++;
  }
  pthread_mutex_unlock(&b->mu);
  if (rc != 0) {
    actio_future_clear_cancel(e->f);
    actio_future_unref(e->f);
    actio_future_unref(e->f);
    free(e);
    return rc;
  }
  *out = f;
  run(b, &t);
  return 0;
}

int actio_batcher_flush(actio_batcher *b) {
  if (b == NULL)
    return ACTIO_EINVAL;
  todo t = {0};
  pthread_mutex_lock(&b->mu);
  if (!b->closed)
    take_form(b, &t);
  pthread_mutex_unlock(&b->mu);
  run(b, &t);
  return 0;
}

size_t actio_batcher_pending(actio_batcher *b) {
  if (b == NULL)
    return 0;
  pthread_mutex_lock(&b->mu);
  size_t n = b->accepted;
  pthread_mutex_unlock(&b->mu);
  return n;
}

void actio_batcher_destroy(actio_batcher *b) {
  if (b == NULL)
    return;
  actio__list left = {0}; /* entries queued or waiting, taken out */
  pthread_mutex_lock(&b->mu);
  b->closed = 1;
  /* Deferred by this thread's burst (destroyed from a completion inside
   * it): withdrawn, or the wait for busy below would never end. Another
   * thread's runs at its burst's end, which destroy waits for. */
  if (b->deferred && actio__burst_withdraw(&b->hook)) {
    b->deferred = 0;
    b->busy--;
  }
  actio_future *timer = b->timer;
  b->timer = NULL;
  for (actio__link *l; (l = b->waiting.head) != NULL;) {
    actio__list_unlink(&b->waiting, l);
    b->nwaiting--;
    ((entry *)l)->state = E_GONE;
    actio__list_push(&left, l);
  }
  for (size_t i = 0; b->form != NULL && i < b->form->n; i++) {
    b->form->e[i]->state = E_GONE;
    actio__list_push(&left, &b->form->e[i]->link);
  }
  if (b->form != NULL)
    b->accepted -= b->form->n;
  free(b->form);
  b->form = NULL;
  pthread_mutex_unlock(&b->mu);
  if (timer != NULL) {
    actio_future_cancel(timer);
    actio_future_unref(timer);
  }
  for (actio__link *l; (l = left.head) != NULL;) {
    actio__list_unlink(&left, l);
    entry *e = (entry *)l;
    actio_future_clear_cancel(e->f);
    actio_future_fail(e->f, ACTIO_ECANCELED, GONE_MSG);
    entry_free(b, e);
  }
  /* The batches in flight, cancelled one at a time outside the lock (their
   * outcome takes it); none missed for want of memory. */
  for (actio_future *f;;) {
    pthread_mutex_lock(&b->mu);
    f = NULL;
    for (actio__link *l = b->flying.head; l != NULL && f == NULL; l = l->next) {
      actio_batch *batch = (actio_batch *)((char *)l - offsetof(actio_batch, link));
      if (batch->f != NULL && !batch->cancelled) { /* else send cancels it once it has it */
        batch->cancelled = 1;
        actio_future_ref(f = batch->f);
      }
    }
    pthread_mutex_unlock(&b->mu);
    if (f == NULL)
      break;
    actio_future_cancel(f);
    actio_future_unref(f);
  }
  pthread_mutex_lock(&b->mu);
  while (b->busy > 0)
    pthread_cond_wait(&b->idle, &b->mu);
  pthread_mutex_unlock(&b->mu);
  pthread_cond_destroy(&b->idle);
  pthread_mutex_destroy(&b->mu);
  free(b);
}

size_t actio_batch_count(const actio_batch *batch) {
  return batch != NULL ? batch->n : 0;
}

void *actio_batch_item(const actio_batch *batch, size_t i) {
  return batch != NULL && i < batch->n ? batch->e[i]->item : NULL;
}

int actio_batch_resolve_item(actio_batch *batch, size_t i, void *value,
                             actio_free_fn free_fn) {
  if (batch == NULL || i >= batch->n)
    return ACTIO_EINVAL;
  return actio_future_resolve(batch->e[i]->f, value, free_fn);
}

int actio_batch_fail_item(actio_batch *batch, size_t i, int code, const char *fmt, ...) {
  if (batch == NULL || i >= batch->n || code >= 0)
    return ACTIO_EINVAL;
  char msg[512];
  if (fmt != NULL) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
  }
  return actio_future_fail(batch->e[i]->f, code, "%s", fmt != NULL ? msg : actio_strerror(code));
}

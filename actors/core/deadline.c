/* deadline.c: deadlines (see deadline.h). One thread sleeps on a condition
 * variable until the earliest deadline; a future that completes first leaves
 * the heap at once. Not a hot path, so a mutex guards the heap. */
#include "actors/core/deadline.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "actio/error.h"
#include "actors/core/future_internal.h"
#include "actors/core/runtime.h"
#include "base/clock.h"
#include "base/debug.h"
#include "base/park.h"

#define NOT_QUEUED SIZE_MAX

typedef struct entry {
  int64_t at;
  actio_future *f; /* a reference, owned by whoever takes the entry out */
  size_t idx;      /* position in the heap, or NOT_QUEUED */
  actio__timer *t;
  char msg[];      /* the failure's message */
} entry;

struct actio__timer {
  pthread_mutex_t mu;
  pthread_cond_t cv; /* CLOCK_MONOTONIC */
  entry **heap;
  size_t len, cap;
  int stopping;      /* guarded by mu: new deadlines are refused */
  int joined;        /* the stopper's own */
  pthread_t thread;
};

/* The timer whose thread this is, if any. */
static _Thread_local const actio__timer *on_timer;

int actio__timer_current(const actio__timer *t) { return on_timer == t; }

static int earlier(entry *a, entry *b) { return a->at < b->at; }

static void heap_set(actio__timer *t, size_t i, entry *e) {
  t->heap[i] = e;
  e->idx = i;
}

static void sift_up(actio__timer *t, size_t i) {
  entry *e = t->heap[i];
  while (i > 0 && earlier(e, t->heap[(i - 1) / 2])) {
    heap_set(t, i, t->heap[(i - 1) / 2]);
    i = (i - 1) / 2;
  }
  heap_set(t, i, e);
}

static void sift_down(actio__timer *t, size_t i) {
  entry *e = t->heap[i];
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= t->len)
      break;
    if (c + 1 < t->len && earlier(t->heap[c + 1], t->heap[c]))
      c++;
    if (!earlier(t->heap[c], e))
      break;
    heap_set(t, i, t->heap[c]);
    i = c;
  }
  heap_set(t, i, e);
}

static void heap_remove(actio__timer *t, entry *e) {
  size_t i = e->idx;
  ACTIO__ASSERT(i < t->len && t->heap[i] == e);
  e->idx = NOT_QUEUED;
  t->len--;
  if (i == t->len)
    return;
  heap_set(t, i, t->heap[t->len]);
  sift_down(t, i);
  sift_up(t, t->heap[i]->idx);
}

static void *timer_main(void *arg) {
  actio__timer *t = arg;
  on_timer = t;
  pthread_mutex_lock(&t->mu);
  while (!t->stopping) {
    if (t->len == 0) {
      pthread_cond_wait(&t->cv, &t->mu);
      continue;
    }
    entry *e = t->heap[0];
    int64_t now = actio__now_ns();
    if (e->at > now) {
      actio__cond_wait_until(&t->cv, &t->mu, e->at);
      continue;
    }
    heap_remove(t, e);
    actio_future *f = e->f; /* ours now; the entry is freed by on_done */
    pthread_mutex_unlock(&t->mu);
    /* e->msg is read only by the abort's winner: until it finishes f,
     * entry_done cannot run. */
    actio__future_abort(f, ACTIO_ETIMEDOUT, e->msg);
    actio_future_unref(f);
    pthread_mutex_lock(&t->mu);
  }
  pthread_mutex_unlock(&t->mu);
  return NULL;
}

/* Runs once per entry, whoever completed the future. */
static void entry_done(actio_future *f, void *arg) {
  entry *e = arg;
  actio__timer *t = e->t;
  int queued;
  (void)f;
  pthread_mutex_lock(&t->mu);
  queued = e->idx != NOT_QUEUED;
  if (queued)
    heap_remove(t, e);
  pthread_mutex_unlock(&t->mu);
  if (queued)
    actio_future_unref(e->f);
  free(e);
}

int actio__timer_create(actio__timer **out) {
  actio__timer *t = calloc(1, sizeof *t);
  if (t == NULL)
    return ACTIO_ENOMEM;
  actio__cond_init(&t->cv);
  pthread_mutex_init(&t->mu, NULL);
  int rc = pthread_create(&t->thread, NULL, timer_main, t);
  if (rc != 0) {
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    free(t);
    return -rc;
  }
  *out = t;
  return 0;
}

void actio__timer_stop(actio__timer *t) {
  if (t->joined)
    return;
  pthread_mutex_lock(&t->mu);
  t->stopping = 1;
  pthread_cond_signal(&t->cv);
  pthread_mutex_unlock(&t->mu);
  pthread_join(t->thread, NULL);
  t->joined = 1;
  /* Cancel what still waits; each cancel runs entry_done, which empties the
   * heap one entry at a time. Nothing joins it any more (stopping). */
  for (;;) {
    pthread_mutex_lock(&t->mu);
    actio_future *f = NULL;
    if (t->len > 0) {
      f = t->heap[0]->f;
      actio_future_ref(f);
    }
    pthread_mutex_unlock(&t->mu);
    if (f == NULL)
      break;
    if (actio_future_cancel(f) != 0)
      sched_yield(); /* being completed elsewhere: its entry_done is coming */
    actio_future_unref(f);
  }
}

void actio__timer_destroy(actio__timer *t) {
  if (t == NULL)
    return;
  actio__timer_stop(t);
  free(t->heap);
  pthread_cond_destroy(&t->cv);
  pthread_mutex_destroy(&t->mu);
  free(t);
}

int actio__deadline_at(actio__timer *t, actio_future *f, int64_t deadline_ns,
                       const char *msg) {
  /* First, so that a deadline that fires finds it set. */
  if (actio__future_set_deadline_ns(f, deadline_ns) != 0)
    return ACTIO_ENOMEM;
  size_t len = strlen(msg) + 1;
  entry *e = malloc(sizeof *e + len);
  if (e == NULL)
    return ACTIO_ENOMEM;
  *e = (entry){.at = deadline_ns, .f = f, .idx = NOT_QUEUED, .t = t};
  memcpy(e->msg, msg, len);
  actio_future_ref(f);
  pthread_mutex_lock(&t->mu);
  if (t->stopping) { /* the runtime stopped: nothing would fire it */
    pthread_mutex_unlock(&t->mu);
    actio_future_unref(f);
    free(e);
    return ACTIO_ECLOSED;
  }
  if (t->len == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 64;
    entry **h = realloc(t->heap, cap * sizeof *h);
    if (h == NULL) {
      pthread_mutex_unlock(&t->mu);
      actio_future_unref(f);
      free(e);
      return ACTIO_ENOMEM;
    }
    t->heap = h;
    t->cap = cap;
  }
  heap_set(t, t->len++, e);
  sift_up(t, t->len - 1);
  if (t->heap[0] == e)
    pthread_cond_signal(&t->cv);
  pthread_mutex_unlock(&t->mu);
  /* If f is already complete this runs now and takes the entry back out. */
  if (actio_future_on_done(f, entry_done, e) != 0) {
    pthread_mutex_lock(&t->mu);
    int queued = e->idx != NOT_QUEUED;
    if (queued)
      heap_remove(t, e);
    pthread_mutex_unlock(&t->mu);
    if (queued) /* else the timer fired and owns the reference */
      actio_future_unref(f);
    free(e); /* the timer thread never touches an entry it took out */
    return ACTIO_ENOMEM;
  }
  return 0;
}

int actio__deadline_after(actio_runtime *rt, actio_future *f, int64_t timeout_ms,
                          const char *msg) {
  if (rt == NULL || f == NULL || timeout_ms < 0)
    return ACTIO_EINVAL;
  int64_t deadline = actio__deadline_ns(timeout_ms);
  if (deadline < 0)
    return 0; /* beyond any clock: never fires */
  char m[64];
  if (msg == NULL) {
    snprintf(m, sizeof m, "deadline of %" PRId64 " ms passed", timeout_ms);
    msg = m;
  }
  return actio__deadline_at(rt->timer, f, deadline, msg);
}

int actio_future_set_deadline(actio_runtime *rt, actio_future *f,
                              int64_t timeout_ms) {
  return actio__deadline_after(rt, f, timeout_ms, NULL);
}

static _Thread_local int64_t group_deadline_ns = -1;

int64_t actio__group_enter(int64_t deadline_ns) {
  int64_t outer = group_deadline_ns;
  group_deadline_ns = deadline_ns;
  return outer;
}

void actio__group_leave(int64_t outer) { group_deadline_ns = outer; }

int actio__deadline_inherit(actio_runtime *rt, actio_future *f) {
  if (group_deadline_ns < 0)
    return 0;
  return actio__deadline_at(rt->timer, f, group_deadline_ns, ACTIO__GROUP_DEADLINE_MSG);
}

/* waiters.c: the FIFO of futures waiting on a queue, a lock, a semaphore or
 * an event, and the structures' shared lock and references. */
#include <stdlib.h>
#include <string.h>

#include "actio/error.h"
#include "actors/core/future_internal.h"
#include "actors/sync/waiters.h"
#include "base/debug.h"

void *actio__sync_new(size_t size) {
  actio__sync *s = calloc(1, size);
  if (s == NULL)
    return NULL;
  pthread_mutex_init(&s->mu, NULL); /* the default mutex needs nothing */
  atomic_init(&s->refs, 1);
  return s;
}

void actio__sync_unref(actio__sync *s) {
  /* Acq_rel: every waiter's writes before the free. */
  if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
    return;
  pthread_mutex_destroy(&s->mu);
  free(s);
}

size_t actio__sync_read(const actio__sync *s, const size_t *word) {
  pthread_mutex_t *mu = (pthread_mutex_t *)&s->mu;
  pthread_mutex_lock(mu);
  size_t v = *word;
  pthread_mutex_unlock(mu);
  return v;
}

static void unlink_waiter(actio__waiter *w) {
  actio__list_unlink(w->as.wait.q, &w->link);
  w->as.wait.linked = 0;
}

static void waiter_free(actio__waiter *w) {
  actio__sync *s = w->s;
  actio_future_unref(w->f);
  free(w);
  actio__sync_unref(s); /* may free the structure */
}

/* The waiter's cancel hook (a cancel or a deadline won its future): it
 * leaves the list if a hand-off has not taken it off already; either way
 * the hand-off, whose claim failed, left it to us. What a putter brought
 * stays its caller's. */
static void waiter_cancelled(void *arg) {
  actio__waiter *w = arg;
  pthread_mutex_lock(&w->s->mu);
  if (w->as.wait.linked)
    unlink_waiter(w);
  pthread_mutex_unlock(&w->s->mu);
  waiter_free(w);
}

_Static_assert(sizeof(actio__waiter) <= 56, "a waiter fits a 64-byte heap block");

int actio__waiter_add(actio__sync *s, actio__waitq *q, actio_future *f, void *item) {
  actio__waiter *w = calloc(1, sizeof *w);
  if (w == NULL)
    return ACTIO_ENOMEM;
  actio_future_ref(f);
  w->f = f;
  w->as.wait.item = item;
  w->s = s;
  w->as.wait.q = q;
  /* The future is not shared yet: no cancel can come before the hook. */
  int rc = actio_future_on_cancel(f, waiter_cancelled, w);
  ACTIO__ASSERT(rc == 0);
  (void)rc;
  /* Relaxed: the handle's reference (the caller's) keeps refs above zero. */
  atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
  actio__list_push(q, &w->link);
  w->as.wait.linked = 1;
  return 0;
}

actio__waiter *actio__waiter_claim(actio__waitq *q) {
  actio__waiter *w;
  while ((w = (actio__waiter *)q->head) != NULL) {
    unlink_waiter(w);
    if (actio__future_claim(w->f))
      return w;
    /* A cancel won: its hook, running or about to, frees the waiter. */
  }
  return NULL;
}

actio__waiter *actio__waiter_claim_all(actio__waitq *q) {
  actio__link *all = NULL, **end = &all;
  actio__waiter *w;
  while ((w = actio__waiter_claim(q)) != NULL) {
    *end = &w->link; /* off the list: its links are free to chain */
    end = &w->link.next;
  }
  return (actio__waiter *)all;
}

/* The claimed waiters this thread has yet to settle, oldest first, and
 * whether a settle is running on it (the one that will). */
static _Thread_local struct {
  actio__waiter *head, *tail;
  int running;
} turns;

void actio__waiter_settle(actio__waiter *w, int code, void *value,
                          actio_free_fn free_fn, const char *msg, int all) {
  while (w != NULL) {
    actio__waiter *next = all ? (actio__waiter *)w->link.next : NULL;
    w->as.out.code = code;
    if (code == 0) {
      w->as.out.value = value;
      w->as.out.u.free_fn = free_fn;
    } else { /* without memory for it, the message is the code's text */
      w->as.out.u.msg = msg != NULL ? strdup(msg) : NULL;
    }
    w->link.next = NULL;
    if (turns.head == NULL)
      turns.head = w;
    else
      turns.tail->link.next = &w->link;
    turns.tail = w;
    w = next;
  }
  if (turns.running)
    return; /* inside a callback of the settle below, further up this stack */
  turns.running = 1;
  while ((w = turns.head) != NULL) {
    turns.head = (actio__waiter *)w->link.next;
    if (w->as.out.code == 0)
      actio__future_settle(w->f, 0, w->as.out.value, w->as.out.u.free_fn, NULL);
    else
      actio__future_settle(w->f, w->as.out.code, NULL, NULL, w->as.out.u.msg);
    waiter_free(w);
  }
  turns.running = 0;
}

/* waiters.h: the futures waiting on a structure of actors/sync (a queue's
 * getters and putters, a lock's, a semaphore's or an event's waiters): a
 * FIFO under the structure's mutex. A waiter that is cancelled, or whose
 * deadline passes, leaves the list at once through its future's cancel
 * hook; a hand-off claims a waiter's future before giving it anything, so a
 * waiter whose cancel came first is skipped and nothing it would have
 * received is lost. */
#ifndef ACTIO_ACTORS_SYNC_WAITERS_H
#define ACTIO_ACTORS_SYNC_WAITERS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include "actio/future.h"

/* An intrusive doubly linked list (a group's members, a structure's
 * waiters), under its owner's lock. */
typedef struct actio__link {
  struct actio__link *prev, *next;
} actio__link;

typedef struct actio__list {
  actio__link *head, *tail;
} actio__list;

static inline void actio__list_push(actio__list *l, actio__link *n) {
  n->next = NULL;
  n->prev = l->tail;
  *(l->tail ? &l->tail->next : &l->head) = n;
  l->tail = n;
}

static inline void actio__list_unlink(actio__list *l, actio__link *n) {
  *(n->prev ? &n->prev->next : &l->head) = n->next;
  *(n->next ? &n->next->prev : &l->tail) = n->prev;
  n->prev = n->next = NULL;
}

/* What every structure starts with: its lock, and its references (the
 * handle's, and one per waiter whose hook may still run, since the hook
 * takes the lock). The last one frees the structure. */
typedef struct actio__sync {
  pthread_mutex_t mu;
  _Atomic size_t refs;
} actio__sync;

typedef struct actio__waiter {
  actio__link link;  /* first: the list's links are the waiter's; once
                      * claimed, link.next chains a claim_all's, then the
                      * settles waiting for their turn (waiters.c) */
  actio_future *f;   /* a reference */
  actio__sync *s;
  union {
    struct {         /* until claimed, under s->mu */
      void *item;    /* what a queue's putter brings */
      actio__list *q;
      int linked;
    } wait;
    struct {         /* once claimed: what it is settled with */
      int code;
      void *value;
      union {
        actio_free_fn free_fn; /* code 0 */
        char *msg;             /* else: a copy, or NULL */
      } u;
    } out;
  } as;
} actio__waiter;

typedef actio__list actio__waitq;

/* A zeroed structure of `size` bytes that starts with an actio__sync: its
 * lock made, the handle's reference taken. NULL when out of memory. */
void *actio__sync_new(size_t size);
/* Drops a reference; the last frees the structure (the lock destroyed). */
void actio__sync_unref(actio__sync *s);
/* A word of the structure `s` starts, read under its lock. */
size_t actio__sync_read(const actio__sync *s, const size_t *word);

/* Under s->mu: queues `f` (a fresh future, not yet shared) as a waiter
 * bringing `item`. Returns 0 or ACTIO_ENOMEM. */
int actio__waiter_add(actio__sync *s, actio__waitq *q, actio_future *f, void *item);

/* Under s->mu: takes the first waiter whose future could be claimed (a
 * commit point: no cancel can take it from now on), or NULL when none is
 * left. The caller settles its future once the lock is let go
 * (actio__waiter_settle). */
actio__waiter *actio__waiter_claim(actio__waitq *q);

/* Under s->mu: claims every waiter left, chained through link.next. */
actio__waiter *actio__waiter_claim_all(actio__waitq *q);

/* Outside the lock: completes a claimed waiter's future (a value with its
 * free function for code 0, else an error with msg, copied) and frees the
 * waiter. Every waiter of a chain from claim_all when `all` is set. Called
 * from a callback of another settle on this thread (a holder's callback
 * releasing the lock to the next), it only queues the waiter: that outer
 * settle completes it once the callback has returned, so a chain of
 * hand-offs made from callbacks runs in a loop, not one frame deeper per
 * waiter. Either way the waiter is settled before the outermost settle on
 * this thread returns. */
void actio__waiter_settle(actio__waiter *w, int code, void *value,
                          actio_free_fn free_fn, const char *msg, int all);

#endif

/* bell.h: how other threads reach a worker that may have left: a ring that
 * wakes it, and an inbox of items bound to it (a transaction's queries, a
 * parked stream). Both find nobody once the bell is closed. */
#ifndef ACTIO_ACTORS_CORE_BELL_H
#define ACTIO_ACTORS_CORE_BELL_H

#include "actio/future.h"

/*
 * A bell is reference counted and outlives its worker: whatever may ring it
 * later (a cancel hook, a paused transfer's consumer, a transaction handle)
 * holds a reference. The worker closes it when it leaves; from then on a
 * ring wakes nobody and a push is refused with ACTIO_ECLOSED. Every call is
 * thread-safe unless it says "worker".
 */
typedef struct actio__bell actio__bell;

/* Inbox items embed a link. */
typedef struct actio__bell_link {
  struct actio__bell_link *prev, *next;
} actio__bell_link;

/* Gets the worker's attention (the HTTP loop's wakeup, an eventfd write). Runs
 * under the bell's lock, so it never runs once close returned. */
typedef void (*actio__bell_wake_fn)(void *target);

/* A bell for `target`, woken with `wake` (NULL: rings are only counted).
 * The caller holds the one reference. Returns 0 or ACTIO_ENOMEM. */
int actio__bell_create(actio__bell **out, actio__bell_wake_fn wake, void *target);
void actio__bell_ref(actio__bell *b);
/* Drops a reference; the last frees the bell. NULL accepted. */
void actio__bell_unref(actio__bell *b);

/* Counts a ring and wakes the worker if it is still there. */
void actio__bell_ring(actio__bell *b);
/* Worker: 1 if the bell rang since the last call (and resets the count). */
int actio__bell_rang(actio__bell *b);
/* Rings once `f` completes (holding a reference until then, and f holding
 * itself). Returns 0, or ACTIO_ENOMEM (no ring will come: the worker must
 * poll f itself). */
int actio__bell_ring_on(actio__bell *b, actio_future *f);
/* Withdraws ring_on's registration on `f` if it has not rung: the bell's
 * and f's references it held go (a consumer that drops f uncompleted
 * would keep both for ever). Call it, holding a reference on f, when the
 * worker stops waiting for f. */
void actio__bell_ring_off(actio__bell *b, actio_future *f);
/* ring_off, then drops the worker's reference on *f and clears it (NULL
 * accepted). */
void actio__bell_forget(actio__bell *b, actio_future **f);
/* Live ring_on registrations in the process (for tests). */
long actio__bell_rings_pending(void);

/* Appends `l` to the inbox, then rings if `ring`. Returns 0, or
 * ACTIO_ECLOSED once the bell is closed (l stays the caller's). */
int actio__bell_push(actio__bell *b, actio__bell_link *l, int ring);
/* Worker: takes the whole inbox, oldest first (a NULL-terminated list
 * through `next`). */
actio__bell_link *actio__bell_take(actio__bell *b);
/* 1 while the inbox holds something. */
int actio__bell_has_mail(actio__bell *b);

/* Takes `l` back out of the inbox and runs fn(arg) under the bell's lock,
 * where the worker's owner cannot be freed. Returns 1 if l was in the inbox
 * (fn ran), 0 if the bell closed first (then l belongs to close's visitor,
 * which has run). */
int actio__bell_withdraw(actio__bell *b, actio__bell_link *l,
                         void (*fn)(void *arg), void *arg);

/* The worker leaves: from now on rings wake nobody and pushes are refused.
 * `each` (may be NULL) is called under the lock with every item left in the
 * inbox, oldest first; the inbox is empty afterwards. Idempotent. */
void actio__bell_close(actio__bell *b, void (*each)(actio__bell_link *l, void *arg),
                       void *arg);

#endif

/* future_internal.h: what the rest of actors/ may do with a future beyond
 * the public API. */
#ifndef ACTIO_FUTURE_INTERNAL_H
#define ACTIO_FUTURE_INTERNAL_H

#include "actio/future.h"

/* Attaches an object freed with the future (a combinator's state). Call
 * before `f` is shared. Returns 0 or ACTIO_ENOMEM (aux stays the caller's). */
int actio__future_attach(actio_future *f, void *aux, actio_free_fn aux_free);
/* The attached object if it was attached with `aux_free` (its type tag),
 * else NULL. */
void *actio__future_aux(const actio_future *f, actio_free_fn aux_free);

/* Fails `f` with code and msg (copied), attaching `aux` (its details, read
 * back with actio__future_aux once `f` is done). `f` must have no attached
 * object. Returns 0, or ACTIO_EALREADY (aux stays the caller's). */
int actio__future_fail_aux(actio_future *f, int code, const char *msg,
                           void *aux, actio_free_fn aux_free);

/* Runs fn(arg) once f's last reference is dropped, on that thread, before
 * anything of f is freed: how one who keeps f only by a plain pointer
 * (never a reference) learns that f is going. One per future; call before
 * `f` is shared. Returns 0 or ACTIO_ENOMEM. */
int actio__future_on_free(actio_future *f, actio_free_fn fn, void *arg);
/* Takes a reference unless f's count reached zero already: 1 if taken. f
 * must still be whole, which holds until its on_free hook returned, so
 * the two must be serialised by the caller (a lock both take). */
int actio__future_try_ref(actio_future *f);
/* 1 when the caller's reference is f's only one: nobody else holds f, nor
 * can take it unless the caller hands f on. Acquire: what the others did
 * before dropping theirs is seen. */
int actio__future_sole_ref(const actio_future *f);
/* Withdraws the callback fn(f, arg) that actio_future_on_done registered,
 * if it has not run: it will not, and the reference it held is dropped.
 * Returns 1 if withdrawn, 0 if it ran, runs now, or was never registered.
 * The caller holds a reference of its own on f. Thread-safe; one
 * withdrawal per registration. */
int actio__future_off_done(actio_future *f, actio_done_fn fn, void *arg);

/* 1 while nobody has started completing `f` (not even a cancel whose hook
 * is running). */
int actio__future_pending(const actio_future *f);

/* Completes `f` with code (ACTIO_ECANCELED, ACTIO_ETIMEDOUT, ...) and runs its
 * cancel hook, as actio_future_cancel does. Returns 0 or ACTIO_EALREADY. */
int actio__future_abort(actio_future *f, int code, const char *msg);

/* From inside f's cancel hook only: puts head before the message the
 * cancel (or the deadline) gave, "head: message", so that it names the
 * operation. Returns 0 or ACTIO_ENOMEM (the message stays as it was). */
int actio__future_reword(actio_future *f, const char *head);

/* Completes `f` as `src` completed: an error is copied; a value is borrowed
 * (f keeps a reference to src). Returns 0 or ACTIO_EALREADY. */
int actio__future_adopt(actio_future *f, actio_future *src);

/* A commit point: claims the right to complete `f`, so that a cancel from
 * now on fails with ACTIO_EALREADY. Returns 1 if claimed, 0 if `f` is
 * already complete. A claimed future must then be settled exactly once. */
int actio__future_claim(actio_future *f);
void actio__future_settle(actio_future *f, int code, void *value,
                          actio_free_fn free_fn, char *msg);

/* The word its actor's metrics keep for `f` (when it was sent, whether it
 * began running, whether it ended: see metrics.c); 0 in a new future. */
_Atomic int64_t *actio__future_track(actio_future *f);

/* A future is on one completion queue at a time (cq.c), from its
 * registration until its event is drained or dropped, which calls this
 * (on the draining thread; one store when the registration had the inline
 * slot). Costs no memory: a flag in the state word, or the inline slot. */
void actio__future_queue_drained(actio_future *f);

/* A completion queue as a future sees it (cq.c embeds one): what to call
 * once a future registered on it completes, handed the queue's own
 * reference to the future. */
typedef struct actio__future_queue {
  void (*deliver)(actio_future *f, struct actio__future_queue *q, uint64_t tag);
} actio__future_queue;

/* Marks f as on the completion queue `q` and registers its delivery: once
 * f completes (at once if it has), q->deliver(f, q, tag) runs on the
 * completing thread. When the inline callback slot is free that is the
 * only cost (no record, no callback reference). Returns 0, ACTIO_EEXIST
 * (marked already), or ACTIO_ENOMEM; on error nothing is done. */
int actio__future_on_done_queued(actio_future *f, actio__future_queue *q, uint64_t tag);

/* Sets the absolute deadline read by actio_future_remaining_ms. */
int actio__future_set_deadline_ns(actio_future *f, int64_t deadline_ns);

#endif

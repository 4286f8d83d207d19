/* actor_internal.h: what the I/O actors and the supervisor may do with an
 * actor beyond the public API. */
#ifndef ACTIO_ACTOR_INTERNAL_H
#define ACTIO_ACTOR_INTERNAL_H

#include "actio/actor.h"

/* Sends `msg`, an I/O request whose future `reply` it holds: reply gets the
 * deadline of an actio_map_within group starting on this thread, the send
 * waits up to timeout_ms for room (see actio_tell), and the request is
 * timed. On success *out is the caller's own reference to reply; on failure
 * msg and reply are still the caller's. */
int actio__request(actio_actor *a, void *msg, actio_future *reply,
                   int64_t timeout_ms, actio_future **out);

/* Counts `f` as a request of `a` in flight, timed from now to its
 * completion (the actor's metrics). Call once `f` is sure to complete: after
 * the send succeeded. */
void actio__actor_track(actio_actor *a, actio_future *f);

/* Gives f the deadline of the actio_map_within group being started on this
 * thread, if any. Call right after making a request's future, before it is
 * queued. */
void actio__inherit_deadline(actio_runtime *rt, actio_future *f);

/* The pause before attempt k (1, 2, ...) of something that keeps failing:
 * base_ms doubled k-1 times, at most max_ms, then anywhere in its upper
 * half (jitter, so that many clients do not retry in step). */
int64_t actio__backoff_ms(int64_t base_ms, int64_t max_ms, unsigned k);

/* actio_tell for the library's own messages: refused by a stopped actor,
 * it is no dead letter (neither counted nor shown to the user's hook). */
int actio__tell_quiet(actio_actor *a, void *msg, int64_t timeout_ms);

/* Called once, by actio_actor_fail, on the failing thread. */
typedef void (*actio__fail_fn)(void *arg, actio_actor *a, int code,
                               const char *why);

/* Sets who hears of `a`'s failure (its supervisor). Call before the actor
 * is shared. If `a` already failed, fn runs at once. */
void actio__actor_set_monitor(actio_actor *a, actio__fail_fn fn, void *arg);

/* Marks `a` as stopped by its supervisor: the runtime's destroy leaves it
 * to it, so that a tree stops in its own order. */
void actio__actor_set_owned(actio_actor *a);

#endif

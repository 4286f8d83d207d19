/* actor_internal.h: what the I/O actors and the supervisor may do with an
 * actor beyond the public API. */
#ifndef ACTIO_ACTOR_INTERNAL_H
#define ACTIO_ACTOR_INTERNAL_H

#include "actio/actor.h"
#include "actors/core/bell.h"

/*
 * The one path of every I/O request, whose future `reply` the request
 * holds: reply gets the deadline of the actio_map_within group being
 * started on this thread, the caller gets its own reference, the request is
 * queued, and it is timed in the actor's metrics. On success *out is the
 * caller's reference to reply; on failure msg and reply are still the
 * caller's. reply may be NULL (an internal request nobody waits for), and
 * out with it.
 *
 * actio__request queues msg in the actor's mailbox, waiting up to
 * timeout_ms for room (see actio_tell); actio__request_bound queues it in
 * the inbox of the worker it is bound to (a transaction's connection), by
 * its embedded `link`, and fails with ACTIO_ECLOSED once that worker left.
 */
int actio__request(actio_actor *a, void *msg, actio_future *reply,
                   int64_t timeout_ms, actio_future **out);
int actio__request_bound(actio_actor *a, actio__bell *bell,
                         actio__bell_link *link, actio_future *reply,
                         actio_future **out);

/* Counts `f` as a request of `a` in flight, timed from now to its
 * completion (the actor's metrics). Call once `f` is sure to complete: after
 * the send succeeded. */
void actio__actor_track(actio_actor *a, actio_future *f);

/* Marks the request `f` of `a` (NULL: none) running: a worker started its
 * work (a transfer, a query on a connection, a file operation). Until
 * then it counts as waiting, in the metrics. Any thread; idempotent. */
void actio__request_begin(actio_actor *a, actio_future *f);

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

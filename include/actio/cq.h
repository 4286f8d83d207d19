/** @file actio/cq.h
 * A completion queue: futures delivered to someone else's event loop
 * (epoll, libuv, GLib, a game loop) through one file descriptor. */
#ifndef ACTIO_CQ_H
#define ACTIO_CQ_H

#include <stddef.h>
#include <stdint.h>

#include "actio/future.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup cq Completion queue
 * Futures registered with a tag; once one completes, the queue holds
 * (tag, future) and its file descriptor becomes readable. The loop that
 * watches the descriptor drains what is ready, without blocking, and handles
 * each completion on its own thread:
 *
 * @code
 * actio_cq_add(cq, f, 42);                 // any thread, any time
 * // the loop: epoll/poll/uv_poll_t/g_unix_fd_add on actio_cq_fd(cq)
 * actio_cq_event ev[64];
 * int n = actio_cq_drain(cq, ev, 64);
 * for (int i = 0; i < n; i++) {
 *   handle(ev[i].tag, ev[i].future);       // complete: status, value, errmsg
 *   actio_future_unref(ev[i].future);
 * }
 * @endcode
 *
 * Memory: a queue keeps about 4 KiB of its own, up to 64 KiB of segments
 * its drains gave back (for the next registrations, rather than the heap),
 * and a 48-byte block for each live thread that registered on it and has
 * not registered on four other queues since (a thread's block goes when it
 * exits or moves on; one left by a destroyed queue, when its thread does).
 * A registration costs a
 * 16-byte slot, paid for in advance (a 504-byte block per 31
 * registrations, reused by the queue for its events), and a 16-byte record
 * and a 24-byte callback record (32-byte blocks each) when the future's
 * inline callback slot is taken already, as it is for every request to an
 * actor (its timing): about 17 to 81 bytes per registered future, the
 * slot's share returned once drained.
 * @{ */

/** A completion queue (opaque). Registration is thread-safe; draining
 * too (see actio_cq_drain); create and destroy are not. */
typedef struct actio_cq actio_cq;

/** One completion taken from the queue. */
typedef struct actio_cq_event {
  /** The tag given to actio_cq_add. */
  uint64_t tag;
  /** The future, complete: its status, value and message are final. A
   * reference that is now the caller's: drop it with actio_future_unref. */
  actio_future *future;
} actio_cq_event;

/** Makes an empty queue with its descriptor (an eventfd, non-blocking,
 * close-on-exec). *out is the caller's, freed by actio_cq_destroy. Returns 0,
 * ACTIO_EINVAL (out is NULL), ACTIO_ENOMEM, or the negated errno of
 * eventfd(2) (ACTIO_EMFILE is -EMFILE, ...). Any thread. */
int actio_cq_create(actio_cq **out);

/** Frees the queue and releases every reference it holds: those of the
 * completed futures not drained yet are dropped now. A future registered and
 * still pending is not cancelled (cancel it first if that is what you want):
 * it keeps itself alive until it completes, as any future with a done
 * callback does, and its callback then finds the queue gone and frees its
 * node; the runtime completes every request of its actors when it stops.
 * Call it once no other thread adds to or drains this queue; futures
 * completing on other threads meanwhile are fine. The descriptor is closed
 * before this returns, even while registrations are pending: take it out of
 * your loop first. NULL is accepted. */
void actio_cq_destroy(actio_cq *cq);

/** The descriptor to watch for reading (POLLIN, EPOLLIN, UV_READABLE,
 * G_IO_IN), level-triggered: it is readable while completions wait to be
 * drained, and reset by the actio_cq_drain that empties the queue. Rarely it
 * is readable with nothing to drain (a completion racing a drain): the next
 * drain returns 0 and resets it. Owned by the queue: do not read, write or
 * close it. Returns the descriptor, or ACTIO_EINVAL for NULL. Any thread. */
int actio_cq_fd(const actio_cq *cq);

/** Registers `f` under `tag`: once `f` completes (at once if it is complete
 * already), (tag, f) waits in the queue and its descriptor becomes readable.
 * The queue takes its own reference to `f`, which the drain hands to the
 * caller; the caller's own reference stays the caller's. Futures that one
 * thread completes in turn are drained in that order; completions of
 * different threads may be drained in any order, even when one thread
 * waited for the other (each thread's completions wait apart). A future is
 * on one queue at a time: registering it again (on this queue or another)
 * before its event is drained returns ACTIO_EEXIST; once drained it may be
 * registered again. Returns 0, ACTIO_EINVAL (a NULL argument), ACTIO_EEXIST
 * or ACTIO_ENOMEM; on error nothing is registered. Any thread. */
int actio_cq_add(actio_cq *cq, actio_future *f, uint64_t tag);

/** Takes up to `max` completions into out[0..n-1] and returns n, without
 * blocking: 0 when none is ready. Each event's future reference is now the
 * caller's. When fewer than `max` are returned the queue was found empty
 * and its descriptor reset; when `max` are returned more may wait and it stays
 * readable. Any thread: drains from several threads at once are serialised
 * (each waits for the other's short drain), and each completion goes to
 * exactly one of them. Returns n (at most INT_MAX), or ACTIO_EINVAL (cq NULL,
 * or out NULL with max > 0). */
int actio_cq_drain(actio_cq *cq, actio_cq_event *out, size_t max);

/** @} */

#ifdef __cplusplus
}
#endif
#endif /* ACTIO_CQ_H */

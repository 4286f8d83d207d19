/** @file actio/batch.h
 * The batcher: items grouped by count or by time into one call (Akka
 * Streams' groupedWithin), each item's future completing with its own
 * outcome. */
#ifndef ACTIO_BATCH_H
#define ACTIO_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "actio/actor.h"
#include "actio/future.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup batch Batching
 * Items handed in batches to one call each of the user's batch function,
 * which returns the batch's future. By default a batch goes as soon as it
 * has an item while no batch is in flight, and items collect only while
 * one is (smart batching, the natural group commit of databases): an idle
 * downstream gets each item at once, a busy one gets everything that came
 * meanwhile in one call. max_items and max_wait_ms (since a batch's first
 * item; the runtime's timer, no thread of its own) bound a batch in every
 * case; opts.eager sets how many batches may be in flight before items
 * wait, or turns waiting on for every batch (groupedWithin). Each item's
 * future completes with its own outcome: the one the batch function gave
 * it (actio_batch_resolve_item, actio_batch_fail_item), else the batch's
 * (its error, or a NULL value).
 * @{ */

/** A batcher (thread-safe: every function below may be called from any
 * thread, the batch function's and item callbacks included, but destroy). */
typedef struct actio_batcher actio_batcher;

/** One batch handed to the batch function: valid until the batch's future
 * completes (or the function returns an error). */
typedef struct actio_batch actio_batch;

/** Makes the call for a batch: start the work and set *out to its future
 * (a reference the batcher takes; it may be done already), or return a
 * negative code (every item of the batch fails with it). Called for one
 * batch at a time, in the order the batches were formed, never from within
 * itself: on the thread that made a batch ready (an add, the timer's
 * thread, a flush, the end of a batch in flight) unless another is calling
 * it already, which then calls it for this batch too. Items added by the
 * callbacks of a file group's completions form their batch at the group's
 * end, on its thread, or earlier if one of those callbacks blocks (a
 * future's wait, a send waiting for room: the batch goes first, as it may
 * be what the callback waits for); so the function must not take a lock
 * that such a callback holds while it waits. Keep it short (send, do not
 * wait). */
typedef int (*actio_batch_fn)(actio_batch *batch, void *arg, actio_future **out);

/** A batcher's settings; zero values mean the defaults. */
typedef struct actio_batcher_opts {
  size_t max_items;    /**< a batch is sent once this many are in (64) */
  int64_t max_wait_ms; /**< or this long after its first item came (10) */
  size_t capacity;     /**< items accepted and not yet completed, at most
                            (4 * max_items; at least max_items) */
  size_t max_waiting;  /**< ACTIO_BATCH_WAIT adds waiting for room, at most
                            (capacity); beyond, ACTIO_EFULL. Each holds its
                            item, a 48-byte record and its future */
  actio_free_fn item_free; /**< frees an item once the batcher is done with
                                it (left out, or its batch over); NULL:
                                items stay the caller's */
  int eager; /**< smart batching: while fewer than this many batches are
                  in flight (handed to the function and not over), a batch
                  goes as soon as it has an item; at or above it, items
                  collect until a batch ends (then what collected goes at
                  once), max_items or max_wait_ms. 0: the default, 1 (one
                  call at a time, the others' items waiting for it);
                  ACTIO_BATCH_TIMED: every batch waits for max_items,
                  max_wait_ms or a flush */
} actio_batcher_opts;

/** opts.eager: no batch goes before max_items, max_wait_ms or a flush. */
#define ACTIO_BATCH_TIMED (-1)

/** What actio_batcher_add does when the batcher is at its capacity. */
typedef enum actio_batch_mode {
  ACTIO_BATCH_NOWAIT = 0, /**< refuse: ACTIO_EFULL, no future */
  ACTIO_BATCH_WAIT = 1,   /**< give a future that waits for room (in FIFO
                               order, max_waiting of them at most), then
                               for the item's outcome */
} actio_batch_mode;

/** Makes a batcher on rt's timer calling fn(batch, arg, &f) per batch.
 * *out is the caller's (actio_batcher_destroy). Returns 0, ACTIO_EINVAL
 * (rt, fn or out NULL, max_wait_ms < 0, capacity below max_items, eager
 * below ACTIO_BATCH_TIMED) or ACTIO_ENOMEM. Any thread. */
int actio_batcher_create(actio_runtime *rt, const actio_batcher_opts *opts,
                         actio_batch_fn fn, void *arg, actio_batcher **out);

/** Adds `item` (non-NULL; the batcher's from now on, freed by item_free)
 * and sets *out to its future (the caller's reference), which completes
 * once, with the item's outcome. Cancelling it (or its deadline) before its
 * batch is sent leaves the item out (ACTIO_ECANCELED, item freed); after,
 * the item's outcome is dropped. In ACTIO_BATCH_WAIT mode a full batcher
 * gives a future waiting for room: bound the wait with
 * actio_future_set_deadline (let in with no memory for its batch, it fails
 * with ACTIO_ENOMEM). Returns 0; ACTIO_EFULL (full, and NOWAIT or
 * max_waiting adds waiting already),
 * ACTIO_EINVAL, ACTIO_ENOMEM or ACTIO_ECLOSED (being destroyed): then the
 * item stays the caller's and no future is made. Any thread. */
int actio_batcher_add(actio_batcher *b, void *item, actio_batch_mode mode,
                      actio_future **out);

/** Sends the items collected so far without waiting for max_items,
 * max_wait_ms or a batch in flight (the end of a stream). Returns 0 or
 * ACTIO_EINVAL. Any thread. */
int actio_batcher_flush(actio_batcher *b);

/** Items accepted and not yet completed (waiting for room not counted).
 * Any thread. */
size_t actio_batcher_pending(actio_batcher *b);

/** Ends the batcher: items waiting for room or collected and not yet sent
 * are cancelled (their futures fail with ACTIO_ECANCELED, their items
 * freed), batches in flight are cancelled (their items fail with the
 * batch's outcome, ACTIO_ECANCELED unless the batch beat the cancel), and
 * this returns once every batch is over. Not from a batch function or an
 * item's callback. NULL accepted. */
void actio_batcher_destroy(actio_batcher *b);

/** Items of a batch, in the order they were added, and item i. @{ */
size_t actio_batch_count(const actio_batch *batch);
void *actio_batch_item(const actio_batch *batch, size_t i);
/** @} */

/** Completes item i of the batch now with `value` (freed by free_fn) or an
 * error (code < 0, printf-style message, NULL fmt: actio_strerror). Its
 * future no longer takes the batch's outcome. Returns 0, ACTIO_EINVAL (i
 * out of range, code not negative) or ACTIO_EALREADY (completed already,
 * typically cancelled: value stays the caller's). Any thread, until the
 * batch's future completes. @{ */
int actio_batch_resolve_item(actio_batch *batch, size_t i, void *value,
                             actio_free_fn free_fn);
int actio_batch_fail_item(actio_batch *batch, size_t i, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/** @} */

/** @} */

#ifdef __cplusplus
}
#endif
#endif /* ACTIO_BATCH_H */

/** @file actio/future.h
 * Futures (one-shot results shared between threads) and the combinators that
 * compose them: then, catch, finally, gather, any, as-completed, map. */
#ifndef ACTIO_FUTURE_H
#define ACTIO_FUTURE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup futures Futures and combinators
 * One-shot results shared between threads (actio_future), and the
 * combinators that compose them: then, catch, finally, gather, any,
 * as-completed, map.
 * @{ */

/**
 * A future completes exactly once: with a value, with an error (a negative
 * ACTIO_* code and a message) or cancelled (ACTIO_ECANCELED). It is
 * reference counted; every function here is thread-safe. A future made by
 * actio_future_create starts with one reference, the caller's.
 *
 * A value is owned by the future and freed with it by the free function given
 * at resolve time, unless the holder takes it with actio_future_take.
 * Complete, cancel and wait only while holding a reference.
 */
typedef struct actio_future actio_future;

/** Frees a future's value (given with the value when it is resolved). */
typedef void (*actio_free_fn)(void *value);
/** Called once `f` completes (see actio_future_on_done). */
typedef void (*actio_done_fn)(actio_future *f, void *arg);
/** An operation's cancel hook (see actio_future_on_cancel). */
typedef void (*actio_cancel_fn)(void *arg);

/** Makes a pending future. Returns 0 or ACTIO_EINVAL/ACTIO_ENOMEM. */
int actio_future_create(actio_future **out);

/** Makes a future already resolved with `value`. Returns 0 or
 * ACTIO_EINVAL/ACTIO_ENOMEM; on failure `value` stays the caller's. */
int actio_future_resolved(actio_future **out, void *value, actio_free_fn free_fn);

/** Makes a future already failed with `code` (< 0) and a printf-style
 * message (fmt may be NULL). Returns 0, ACTIO_EINVAL (code not negative) or
 * ACTIO_ENOMEM. */
int actio_future_failed(actio_future **out, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/** Takes one more reference; the caller must hold one already. */
void actio_future_ref(actio_future *f);

/** Drops a reference; the last one frees the future and its value. A pending
 * future stays alive while its producer or a callback holds a reference.
 * NULL is accepted. */
void actio_future_unref(actio_future *f);

/* ---- the producer's side ---- */

/** Completes `f` with `value`, freed later by `free_fn` (may be NULL).
 * Returns 0, or ACTIO_EALREADY if `f` was already completed (typically
 * cancelled), in which case `value` stays the caller's. Callbacks run on the
 * calling thread before this returns. */
int actio_future_resolve(actio_future *f, void *value, actio_free_fn free_fn);

/** actio_future_resolve(f, value, free_fn), then actio_future_unref(f), in
 * one step: a producer done with `f` once it is complete (say, registered
 * on an actio_cq) drops its reference with the completion's own
 * read-modify-write. The caller's reference is gone either way: on
 * ACTIO_EALREADY (`value` stays the caller's) as on success. Any thread. */
int actio_future_resolve_unref(actio_future *f, void *value, actio_free_fn free_fn);

/** Completes `f` with error `code` (< 0; else ACTIO_EINVAL is returned) and a
 * printf-style message (fmt may be NULL: the message is then
 * actio_strerror(code)). Returns 0 or ACTIO_EALREADY. */
int actio_future_fail(actio_future *f, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/** Registers the operation's cancel hook: if `f` is later cancelled or its
 * deadline passes, fn(arg) runs once, on the cancelling thread, just before
 * `f` is seen complete. Keep it short (flag the operation, wake its worker)
 * and do not wait on `f` in it.
 * One hook per future. Returns 0; ACTIO_ECANCELED if `f` was already
 * cancelled (abort the operation now); ACTIO_ESTATE if a hook is set
 * already. */
int actio_future_on_cancel(actio_future *f, actio_cancel_fn fn, void *arg);

/** Unregisters the hook; if it is running on another thread, waits for it to
 * return. After this, `arg` may be freed. Called from inside the hook (say,
 * by a callback of a future the hook cancelled), it returns at once: the
 * hook must then not touch `arg` once that call returns. */
void actio_future_clear_cancel(actio_future *f);

/* ---- the consumer's side ---- */

/** Cancels `f`: it completes with ACTIO_ECANCELED and the operation's cancel
 * hook runs. Returns 0, or ACTIO_EALREADY if it had already completed or
 * its completion had begun (a queue handing it an item, say): its status
 * may read ACTIO_EPENDING a moment longer, and actio_future_wait returns
 * its outcome. */
int actio_future_cancel(actio_future *f);

/** Runs fn(f, arg) once `f` completes: on the completing thread, or at once on
 * this one if it is complete already. The future keeps itself alive until fn
 * has run. fn must not block. Returns 0 or ACTIO_ENOMEM (fn will not run). */
int actio_future_on_done(actio_future *f, actio_done_fn fn, void *arg);

/** Blocks until `f` completes or timeout_ms passes (< 0: no limit; 0: poll).
 * Returns the future's status (0, or its error code), or ACTIO_EPENDING if
 * the time ran out first. For threads that are not actor workers. Called
 * from a callback of a file group's completions, it first sends the
 * batches those callbacks formed (actio_batch_fn), which would otherwise
 * wait for the callbacks to return. */
int actio_future_wait(actio_future *f, int64_t timeout_ms);

/** 1 once completed, else 0. */
int actio_future_is_done(const actio_future *f);

/** 0 if resolved, the error code if failed or cancelled, ACTIO_EPENDING while
 * pending. */
int actio_future_status(const actio_future *f);

/** The value (borrowed; valid while you hold a reference), or NULL when `f`
 * is not resolved or the value was taken. */
void *actio_future_value(const actio_future *f);

/** Takes the value out: the caller frees it; the future will not. NULL when
 * not resolved or already taken. */
void *actio_future_take(actio_future *f);

/** The error message of a failed or cancelled future (borrowed), else NULL. */
const char *actio_future_errmsg(const actio_future *f);

/** The absolute deadline set by actio_future_set_deadline, as milliseconds
 * left from now (0 once passed), or -1 when there is none. I/O actors use it
 * to bound a transfer or a query. */
int64_t actio_future_remaining_ms(const actio_future *f);

/* ---- combinators ---- */

/** Next step of a chain: called with the previous step once it resolved.
 * Return 0 and set *next to the future of the next step (a reference the
 * chain takes over), or to NULL to finish with the previous step's value;
 * or return a negative code to fail the chain. */
typedef int (*actio_then_fn)(actio_future *prev, void *arg, actio_future **next);

/** *out follows `f` through `fn`: if `f` fails or is cancelled, *out fails
 * the same way and fn is not called; otherwise *out completes as the future
 * fn returns, borrowing its value. Cancelling *out cancels whichever step is
 * running. fn runs on the thread that completed `f`, or on this one if `f`
 * is complete already. The chain takes its own reference to `f`; *out is
 * the caller's. Returns 0 or ACTIO_EINVAL/ACTIO_ENOMEM. */
int actio_future_then(actio_future *f, actio_then_fn fn, void *arg,
                      actio_future **out);

/** *out follows `f` through the error continuation `fn`, as try/except: if
 * `f` resolves, *out resolves with its value (borrowed) and fn is not
 * called; if `f` fails, fn(f, arg, &next) runs and may recover by setting
 * next to a future (a reference the chain takes over: actio_future_resolved
 * for a plain value, or any operation's future, say a retry), which *out
 * then completes as; leaving next NULL lets the failure through unchanged,
 * and a negative return fails *out with that code. A deadline's
 * ACTIO_ETIMEDOUT is a failure like any other, but a cancellation
 * (ACTIO_ECANCELED) passes through without calling fn, as asyncio's
 * `except Exception` lets CancelledError through: act on one with
 * actio_future_finally. Cancelling *out cancels whichever step is running.
 * Threads, references and returns as actio_future_then. */
int actio_future_catch(actio_future *f, actio_then_fn fn, void *arg,
                       actio_future **out);

/** *out follows `f` and runs `fn` whatever the outcome, as try/finally:
 * fn(f, arg, &next) runs once `f` has resolved, failed or been cancelled
 * (also when *out was cancelled first), and may set next to a cleanup's
 * future (a reference the chain takes over) to wait for. *out then completes
 * as `f` did (a value borrowed from it), unless the cleanup fails or fn
 * returns a negative code: that error replaces the outcome, as an exception
 * raised in Python's finally does. Cancelling *out cancels whichever step is
 * running; a cleanup begun after *out was cancelled is left to run, its
 * outcome reaching nobody. Threads, references and returns as
 * actio_future_then. */
int actio_future_finally(actio_future *f, actio_then_fn fn, void *arg,
                         actio_future **out);

/** What a group of futures does when an item fails. */
typedef enum actio_gather_policy {
  /** The first error cancels the others and fails the gather with it. */
  ACTIO_GATHER_FAIL_FAST = 0,
  /** Wait for all; the gather resolves and each item holds its own outcome
   * (Python's return_exceptions=True). */
  ACTIO_GATHER_SETTLE_ALL = 1,
} actio_gather_policy;

/** *out completes once the n futures have (see the policy); it holds its own
 * references to them, in order, readable with actio_gather_item. Its value
 * is NULL. Cancelling *out cancels the items. n may be 0. *out is the
 * caller's reference. Returns 0, ACTIO_EINVAL (a NULL item) or
 * ACTIO_ENOMEM. */
int actio_gather(actio_future *const *fs, size_t n, actio_gather_policy policy,
                 actio_future **out);

/** The number of items of a gather, any or map future, and item i (borrowed;
 * NULL for a map item never started). @{ */
size_t actio_gather_count(const actio_future *g);
actio_future *actio_gather_item(const actio_future *g, size_t i);
/** @} */

/** *out resolves with the first item that resolves (its value, borrowed from
 * that item: do not take it from the item while *out is in use;
 * actio_any_index tells which) and cancels the rest; if every item fails,
 * *out fails with ACTIO_EALLFAILED and the text of the last failure.
 * *out is the caller's reference. Returns 0, ACTIO_EINVAL (n is 0, a NULL
 * item) or ACTIO_ENOMEM. */
int actio_any(actio_future *const *fs, size_t n, actio_future **out);

/** The index of the item an any-future took its value from, or SIZE_MAX. */
size_t actio_any_index(const actio_future *g);

/** Starts item i: set *out to a new future (a reference the map takes) and
 * return 0, or return a negative code (the item fails with it). */
typedef int (*actio_map_fn)(size_t i, void *arg, actio_future **out);

/** Runs fn over 0..n-1 with at most `limit` items in flight (0: no limit) and
 * gathers them under `policy` into *out (items by actio_gather_item). Under
 * fail-fast the first error stops new starts and cancels those in flight.
 * fn runs on the calling thread and on threads that complete items. *out is
 * the caller's reference. Returns 0, ACTIO_EINVAL or ACTIO_ENOMEM. */
int actio_map(size_t n, size_t limit, actio_map_fn fn, void *arg,
              actio_gather_policy policy, actio_future **out);

/** The items of `fs` in completion order. */
typedef struct actio_as_completed actio_as_completed;

/** Watches the n futures (holding references). Returns 0 or ACTIO_ENOMEM. */
int actio_as_completed_create(actio_as_completed **out, actio_future *const *fs,
                              size_t n);

/** Waits up to timeout_ms (< 0: no limit) for the next completed item and
 * stores its index. Returns 0, ACTIO_EPENDING on timeout, or ACTIO_EEOF once
 * every item has been returned. One consumer thread at a time. */
int actio_as_completed_next(actio_as_completed *ac, int64_t timeout_ms,
                            size_t *index);

/** Frees the iterator (items still pending are left running). NULL is
 * accepted. */
void actio_as_completed_destroy(actio_as_completed *ac);

/** @} */

#ifdef __cplusplus
}
#endif
#endif /* ACTIO_FUTURE_H */

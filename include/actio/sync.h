/** @file actio/sync.h
 * Structures built on futures for any threads and actors to share: task
 * groups that grow while they run, bounded queues, locks, events and
 * semaphores. */
#ifndef ACTIO_SYNC_H
#define ACTIO_SYNC_H

#include <stddef.h>

#include "actio/future.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup sync Task groups
 * A task group (asyncio's TaskGroup, libdill's bundle): futures added at
 * any time, waited for as one future.
 * @{ */

/**
 * A task group: a set of futures that grows while it runs. Every function
 * here is thread-safe. The group holds a reference to each member until
 * the member completes, then lets go of it: a pending member costs a
 * 40-byte record (a 48-byte heap block), plus a 32-byte block for its
 * callback when the future's inline callback slot is taken already (an
 * I/O request's is, by its metrics); a completed one costs nothing.
 */
typedef struct actio_group actio_group;

/** Makes an empty, open group. Under ACTIO_GATHER_FAIL_FAST the first
 * member that fails (with any code but ACTIO_ECANCELED: a member cancelled
 * by someone else just leaves, as in asyncio's TaskGroup) cancels the
 * others and fails the group with its error; under ACTIO_GATHER_SETTLE_ALL
 * every member runs to its end and the group resolves (with NULL; each
 * member keeps its own outcome). *out is the caller's, freed with
 * actio_group_destroy. Returns 0, ACTIO_EINVAL (a NULL out, an unknown
 * policy) or ACTIO_ENOMEM. Any thread. */
int actio_group_create(actio_group **out, actio_gather_policy policy);

/** Adds `f` to the group, which takes its own reference (the caller keeps
 * theirs). Any thread, at any time until the group completes or is closed;
 * a member may add others (add the follow-up before the member that starts
 * it completes, say the output of a then-chain rather than its first step,
 * or the group may complete in between). A future completed already is
 * accepted and counts at once. Returns 0, ACTIO_EINVAL (a NULL argument),
 * ACTIO_ECLOSED (the group completed, failed or was closed: `f` is left
 * alone) or ACTIO_ENOMEM. */
int actio_group_add(actio_group *g, actio_future *f);

/** The group's future, a reference of the caller's: from the first call on,
 * it resolves as soon as no member is pending (at once for an empty group),
 * and after that the group takes no more members. It fails sooner under
 * fail-fast, and is cancelled by actio_group_close; cancelling it closes the
 * group. Returns 0 or ACTIO_EINVAL. Any thread. */
int actio_group_wait(actio_group *g, actio_future **out);

/** The number of members not yet completed (0 for NULL). Any thread. */
size_t actio_group_pending(const actio_group *g);

/** Closes the group: later adds fail with ACTIO_ECLOSED, the members still
 * pending are cancelled (they see ACTIO_ECANCELED), and so is the group's
 * future if it had not completed. Idempotent; NULL is accepted; any
 * thread. */
void actio_group_close(actio_group *g);

/** Closes the group (see actio_group_close) and lets go of the handle; the
 * group's future, where someone holds it, stays valid. NULL is accepted. */
void actio_group_destroy(actio_group *g);

/** @} */

/** @defgroup queues Queues, locks, events and semaphores
 * Awaitable structures shared by any threads and actors (asyncio.Queue,
 * Lock, Event, Semaphore): each call that may wait returns a future, which
 * can be cancelled or given a deadline (actio_future_set_deadline) like any
 * other. Waiters are served first come, first served; one that is
 * cancelled, or whose deadline passes, leaves its place at once, and
 * nothing handed out (an item, a permit, a release) is lost or given twice:
 * a hand-off claims a waiter's future before giving it anything. A waiter
 * costs its future and a 56-byte record (a 64-byte block) while it waits.
 * A cancel that comes too late (ACTIO_EALREADY) leaves the waiter its
 * outcome, which it has or is about to have: wait for it. A hand-off made
 * from a callback of another (a holder's callback releasing the lock to
 * the next) completes once that callback has returned, so a chain of them
 * runs in a loop; do not wait in such a callback for the future it handed
 * something to. Every function here is thread-safe, except that destroy
 * must be the handle's last call.
 * @{ */

/** A bounded FIFO queue of pointers (asyncio.Queue with shutdown): puts and
 * gets that wait (futures) or not (_nowait), and task_done and join to wait
 * until every item accepted has been dealt with. */
typedef struct actio_queue actio_queue;

/** Makes an empty queue of `capacity` items (at least 1); `item_free`
 * (may be NULL) frees an item that nobody took: one left in the queue at
 * destroy, or one a get resolved with, freed with that future unless taken
 * with actio_future_take. *out is the caller's. Returns 0, ACTIO_EINVAL (a
 * NULL out, capacity 0 or absurd) or ACTIO_ENOMEM. */
int actio_queue_create(actio_queue **out, size_t capacity, actio_free_fn item_free);

/** Puts `item` at the back. *out (the caller's reference) resolves (with
 * NULL) once the item is in the queue: at once if there is room, else when
 * a get makes some; from then the item is the queue's. It fails with
 * ACTIO_ECLOSED after actio_queue_close (also one waiting for room then),
 * and may be cancelled or time out while it waits: if *out does not
 * resolve, the item stays the caller's. Returns 0, ACTIO_EINVAL or
 * ACTIO_ENOMEM (then no future, the item the caller's). Any thread. */
int actio_queue_put(actio_queue *q, void *item, actio_future **out);

/** Puts `item` at the back if there is room now, without waiting (asyncio's
 * put_nowait): on 0 the item is the queue's. Returns 0, ACTIO_EFULL (the
 * queue is full), ACTIO_ECLOSED (after actio_queue_close) or ACTIO_EINVAL
 * (q NULL); on error the item stays the caller's. Any thread. */
int actio_queue_put_nowait(actio_queue *q, void *item);

/** Takes the item at the front. *out (the caller's reference) resolves with
 * it (freed with the future by the queue's item_free, unless taken with
 * actio_future_take): at once if one is there, else when a put brings one.
 * Once the queue is closed and what it had accepted has been taken, gets
 * fail with ACTIO_ECLOSED ("the queue was closed"), those waiting then
 * too. A get cancelled or timed out takes nothing; one whose cancel came
 * too late (ACTIO_EALREADY) resolves with its item: wait for it. A chain
 * over *out (then, any, ...) cancelled as the item is handed drops the
 * item with the future (item_free); take it in an actio_future_finally's
 * step if it must not be lost. Returns 0, ACTIO_EINVAL or ACTIO_ENOMEM.
 * Any thread. */
int actio_queue_get(actio_queue *q, actio_future **out);

/** Takes the item at the front if there is one now, without waiting
 * (asyncio's get_nowait): on 0, *item is the caller's (item_free is not
 * applied to it). Returns 0, ACTIO_EAGAIN (the queue is empty: nothing to
 * take now), ACTIO_ECLOSED (closed, and what it had accepted has been
 * taken) or ACTIO_EINVAL (a NULL argument); *item is NULL on error. Any
 * thread. */
int actio_queue_get_nowait(actio_queue *q, void **item);

/** Says that an item got from the queue (by a get that resolved or a
 * get_nowait that returned 0) has been dealt with (asyncio's task_done):
 * once every item accepted has been got and marked so, joins resolve.
 * Returns 0, ACTIO_EINVAL (q NULL) or ACTIO_ESTATE when called more times
 * than items were got (nothing changes then). Any thread. */
int actio_queue_task_done(actio_queue *q);

/** *out (the caller's reference) resolves (with NULL) once no item is
 * unfinished: every item accepted (in the queue, or got) has been marked
 * with actio_queue_task_done. At once when none is; else when the last
 * task_done comes. A close does not end it (the items accepted can still be
 * got after a close); actio_queue_destroy cancels a join still pending
 * (ACTIO_ECANCELED, "the queue was destroyed"). It may be cancelled or
 * given a deadline. Returns 0, ACTIO_EINVAL or ACTIO_ENOMEM. Any thread. */
int actio_queue_join(actio_queue *q, actio_future **out);

/** The number of items in the queue (0 for NULL). Any thread. */
size_t actio_queue_len(const actio_queue *q);

/** Closes the queue: puts fail with ACTIO_ECLOSED from now on (those
 * waiting for room too, their items left to their callers); gets take what
 * is left, then fail with ACTIO_ECLOSED; joins still wait for what was
 * accepted to be got and marked done. Idempotent; NULL is accepted; any
 * thread. */
void actio_queue_close(actio_queue *q);

/** Closes the queue, frees the items still in it with item_free, cancels
 * the joins still pending, and lets go of the handle. NULL is accepted. */
void actio_queue_destroy(actio_queue *q);

/** A lock (asyncio.Lock): one holder at a time, the others waiting in
 * turn. It is not tied to a thread: whoever holds it may release it from
 * any thread. */
typedef struct actio_lock actio_lock;

/** Makes an unlocked lock; *out is the caller's. Returns 0, ACTIO_EINVAL or
 * ACTIO_ENOMEM. */
int actio_lock_create(actio_lock **out);

/** *out (the caller's reference) resolves once the lock is the caller's:
 * at once if it is free and nobody waits, else in turn. A cancelled or
 * timed-out acquire gets nothing and keeps nobody waiting; once *out has
 * resolved, the lock is held until actio_lock_release, even if a cancel
 * comes after (it returns ACTIO_EALREADY). A chain over *out (then, any, a
 * gather, a group) that is cancelled as the lock is granted drops the
 * grant, and the lock stays held: release it from an actio_future_finally
 * over *out when *out resolved (the finally's step runs whatever the
 * outcome), or bound the wait with a deadline on *out itself. Returns 0,
 * ACTIO_EINVAL or ACTIO_ENOMEM. Any thread. */
int actio_lock_acquire(actio_lock *l, actio_future **out);

/** Releases the lock: the first acquire still waiting gets it, else it is
 * free. Returns 0, ACTIO_EINVAL, or ACTIO_ESTATE if it was not held. Any
 * thread. */
int actio_lock_release(actio_lock *l);

/** Frees the lock; acquires still waiting are cancelled (ACTIO_ECANCELED).
 * NULL is accepted. */
void actio_lock_destroy(actio_lock *l);

/** A semaphore (asyncio.BoundedSemaphore): a number of permits. */
typedef struct actio_sem actio_sem;

/** Makes a semaphore with `permits` free permits (at least 1), which is
 * also the most it may hold. *out is the caller's. Returns 0, ACTIO_EINVAL
 * or ACTIO_ENOMEM. */
int actio_sem_create(actio_sem **out, size_t permits);

/** *out (the caller's reference) resolves once a permit is the caller's,
 * as actio_lock_acquire does for the lock (and a chain over it is used the
 * same way). Returns 0, ACTIO_EINVAL or ACTIO_ENOMEM. Any thread. */
int actio_sem_acquire(actio_sem *s, actio_future **out);

/** Gives a permit back: to the first acquire still waiting, else to the
 * semaphore. Returns 0, ACTIO_EINVAL, or ACTIO_ESTATE if every permit is
 * free already. Any thread. */
int actio_sem_release(actio_sem *s);

/** Frees the semaphore; acquires still waiting are cancelled
 * (ACTIO_ECANCELED). NULL is accepted. */
void actio_sem_destroy(actio_sem *s);

/** An event (asyncio.Event): a flag that waiters wait to see set. */
typedef struct actio_event actio_event;

/** Makes an event, not set; *out is the caller's. Returns 0, ACTIO_EINVAL
 * or ACTIO_ENOMEM. */
int actio_event_create(actio_event **out);

/** *out (the caller's reference) resolves once the event is set: at once
 * if it is. Returns 0, ACTIO_EINVAL or ACTIO_ENOMEM. Any thread. */
int actio_event_wait(actio_event *e, actio_future **out);

/** Sets the event: every wait pending resolves, and later ones at once
 * until actio_event_clear. NULL is accepted. Any thread. */
void actio_event_set(actio_event *e);

/** Clears the event: waits from now on wait for the next set. NULL is
 * accepted. Any thread. */
void actio_event_clear(actio_event *e);

/** 1 if the event is set, else 0 (also for NULL). Any thread. */
int actio_event_is_set(const actio_event *e);

/** Frees the event; waits still pending are cancelled (ACTIO_ECANCELED).
 * NULL is accepted. */
void actio_event_destroy(actio_event *e);

/** @} */

#ifdef __cplusplus
}
#endif
#endif /* ACTIO_SYNC_H */

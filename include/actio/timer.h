/** @file actio/timer.h
 * Time: sleep futures, and delayed and periodic sends to an actor, all on
 * the runtime's one timer thread (no thread per timer). */
#ifndef ACTIO_TIMER_H
#define ACTIO_TIMER_H

#include <stdint.h>

#include "actio/actor.h"
#include "actio/future.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup timers Time
 * Sleep futures, and delayed and periodic sends to an actor. They share the
 * runtime's timer thread and its timing wheel of 1 ms ticks: arming and
 * cancelling take O(1) whatever the number pending, and a timer fires at
 * its time or later (a tick, and the machine's load, later), never before.
 *
 * What a pending timer costs: a delayed send 48 bytes (a block of the
 * timer's pool, the figure `actio-bench timers` measures); a periodic send
 * 64 bytes (an 80-byte heap block); a sleep a 48-byte block of the pool and
 * its future (a 96-byte heap block), 144 bytes in all.
 * @{ */

/** A delayed or periodic send (actio_send_after, actio_send_every): a
 * handle to cancel it. The caller owns the handle until
 * actio_timer_release, which must come before actio_runtime_destroy. */
typedef struct actio_timer actio_timer;

/** Makes the message of one tick of a periodic send, on the runtime's
 * timer thread (keep it short; do not block). What it returns is sent as
 * actio_tell would send it. */
typedef void *(*actio_tick_fn)(void *arg);

/** *out resolves (value NULL) once ms milliseconds have passed: asyncio's
 * sleep. Cancelling it ends the sleep at once (ACTIO_ECANCELED) and frees
 * its timer; a runtime stop cancels it too. *out is the caller's reference.
 * Returns 0, ACTIO_EINVAL (rt or out NULL, ms < 0), ACTIO_ENOMEM, or
 * ACTIO_ECLOSED once rt stopped. Any thread. */
int actio_sleep(actio_runtime *rt, int64_t ms, actio_future **out);

/**
 * Sends msg to `a` delay_ms milliseconds from now, as actio_tell would.
 * The message is delivered once or never:
 * - delivered: handled by the actor (or freed by its behavior's drop if it
 *   stops before handling it, as for any tell);
 * - refused at its time because `a` has stopped: counted as a dead letter
 *   (and shown to actio_runtime_opts.dead_letter on the timer's thread),
 *   then freed by the behavior's drop;
 * - cancelled (actio_timer_cancel returned 0) or dropped by a runtime stop:
 *   freed by the behavior's drop, never handled.
 * A full mailbox at its time is tried again after a pause that doubles
 * from 1 ms to 32 ms while it stays full: delivered late, never lost. With
 * out NULL there is no handle (it cannot be cancelled); else *out is the
 * caller's (actio_timer_release), set before the send is armed (a handler
 * may read it from shared state), and left as it was on failure. On success
 * msg is the actor's; on failure still the caller's. Returns 0,
 * ACTIO_EINVAL (a NULL, delay_ms < 0), ACTIO_ENOMEM, or ACTIO_ECLOSED (`a`
 * or the runtime stopped). Any thread.
 */
int actio_send_after(actio_actor *a, void *msg, int64_t delay_ms, actio_timer **out);

/** Sends make(arg) to `a` every period_ms milliseconds, the first one
 * period_ms from now, until actio_timer_cancel, the actor stops (the tick
 * it refuses is a dead letter, and the send ends) or the runtime stops.
 * Each tick's message is delivered as one of actio_send_after, and a tick
 * late (a full mailbox, a loaded machine) delays the ones after it, which
 * come a period after it, never in a burst. `arg` stays the caller's: free
 * it once the send has ended (after actio_timer_cancel returns; make no
 * longer runs). With out NULL it cannot be cancelled. Returns 0,
 * ACTIO_EINVAL (a or make NULL, period_ms < 1 or > UINT32_MAX),
 * ACTIO_ENOMEM, or ACTIO_ECLOSED. Any thread. */
int actio_send_every(actio_actor *a, int64_t period_ms, actio_tick_fn make, void *arg,
                     actio_timer **out);

/**
 * Stops the send for good. Returns 0 if this call stopped it: a delayed
 * send's message will never be delivered and has been freed by the
 * behavior's drop; a periodic send makes and sends no more ticks. Returns
 * ACTIO_EALREADY if it was over already: a delayed send delivered (or
 * refused as a dead letter), a periodic send ended, or cancelled before.
 * A cancel racing with the fire thus has one outcome or the other, never
 * both. A fire in progress is waited for (so after a 0, make is not
 * running); from the timer's own thread (inside make or a dead-letter
 * hook) it is not: a periodic send then stops after that tick, and a
 * delayed one is delivered (ACTIO_EALREADY). Messages a periodic send
 * delivered before stay in the mailbox. ACTIO_EINVAL for NULL. Any thread,
 * an actor's handler included, while the handle is held.
 */
int actio_timer_cancel(actio_timer *t);

/** Releases the handle: a timer still pending goes on (and frees itself
 * when it ends); cancel first to stop it. Call once per handle, before
 * actio_runtime_destroy. NULL accepted. Any thread. */
void actio_timer_release(actio_timer *t);

/** @} */

#ifdef __cplusplus
}
#endif
#endif /* ACTIO_TIMER_H */

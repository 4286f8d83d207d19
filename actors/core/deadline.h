/* deadline.h: the runtime's timer, in one place: one thread and a
 * hierarchical timing wheel of 1 ms ticks, on which run a future's deadline
 * (it fails with ACTIO_ETIMEDOUT), the deadline an actio_map_within group
 * hands to the requests started inside it, sleep futures (actio_sleep) and
 * delayed and periodic sends to actors (their firing is the runtime's, given
 * as actio__send_ops). */
#ifndef ACTIO_ACTORS_CORE_DEADLINE_H
#define ACTIO_ACTORS_CORE_DEADLINE_H

#include <stddef.h>
#include <stdint.h>

#include "actio/actor.h"
#include "actio/timer.h"

typedef struct actio__timer actio__timer;

/* The first fields of every timer of the wheel, whatever its kind: 32
 * bytes. Owned by its maker; the fields below are the timer's, under its
 * lock, from the arming on (tries: the timer thread's, while it fires it). */
typedef struct actio__tnode {
  struct actio__tnode *next, *prev; /* its slot's list (prev NULL: the first) */
  int64_t expire;                   /* the tick it is due at (ms from the timer's start) */
  uint32_t period;                  /* periodic sends: ms between two; else 0 */
  unsigned slot : 10;               /* while queued: level * 64 + index */
  unsigned tries : 6;               /* a send: fires in a row that found no room */
  uint8_t kind;                     /* ACTIO__TK_* */
  uint8_t state;                    /* flags of deadline.c */
} actio__tnode;

_Static_assert(sizeof(actio__tnode) == 32, "a timer's node is 32 bytes");

/* The size of a block of actio__tblock_new: a delayed send or a sleep. */
#define ACTIO__TBLOCK 48

enum { ACTIO__TK_DEADLINE = 1, ACTIO__TK_SLEEP = 2, ACTIO__TK_SEND = 3 };

/* What a send's fire returns when it will not fire again: its message was
 * delivered (or, refused by a stopped actor, dropped as a dead letter). */
#define ACTIO__SEND_DONE INT64_C(-1)
/* ... when it could not deliver now (the mailbox full, a restart under
 * way): the timer tries again after a pause that doubles with each such
 * fire in a row, from 1 ms up to ACTIO__SEND_BACKOFF_MS, so a send that
 * waits long for room costs a fire per 32 ms, not one per tick. Any value
 * >= 0 is the tick to fire again at (a periodic send's next). */
#define ACTIO__SEND_RETRY INT64_C(-2)
#define ACTIO__SEND_BACKOFF_MS 32

/* The runtime's part of a send (kind ACTIO__TK_SEND), called on the timer's
 * thread (fire) or on the thread that ends it (drop, release): fire
 * delivers it at tick `now`; drop frees the message it still holds, if
 * any, because it will never fire again (cancelled, the runtime stopping);
 * release frees the k sends of ns, once each ended and its handle is gone. */
typedef struct actio__send_ops {
  int64_t (*fire)(actio__tnode *n, int64_t now);
  void (*drop)(actio__tnode *n);
  void (*release)(actio__tnode **ns, size_t k);
} actio__send_ops;

/* Starts the timer thread; sends fire through ops (borrowed: it must
 * outlive the timer). Returns 0, ACTIO_ENOMEM or a negated errno. */
int actio__timer_create(actio__timer **out, const actio__send_ops *ops);
/* Joins the thread, then cancels the futures still waiting (ACTIO_ECANCELED:
 * deadlines and sleeps) and drops the sends still pending; from then on
 * new timers are refused with ACTIO_ECLOSED. Idempotent. */
void actio__timer_stop(actio__timer *t);
/* Stops it if need be, then frees. */
void actio__timer_destroy(actio__timer *t);
/* A block of ACTIO__TBLOCK bytes for a timer, from the timer's slabs: a
 * pending delayed send or sleep costs its 48 bytes (a heap block would be
 * 64), and taking one is a list pop under the timer's lock. NULL when out
 * of memory. Any thread, until the timer is destroyed. */
void *actio__tblock_new(actio__timer *t);
/* Gives k blocks back, under one lock; a slab left empty is freed unless
 * it is the only one with room. Any thread. */
void actio__tblock_free(actio__timer *t, void **blocks, size_t k);

/* Fires of sends that found no room, and were tried again later: for the
 * tests. Any thread. */
uint64_t actio__timer_retries(actio__timer *t);

/* 1 on the timer's own thread (where timers fire, and the callbacks of the
 * futures they complete run). */
int actio__timer_current(const actio__timer *t);

/* Arms the send n (its kind, period and own fields set, state 0) to fire
 * delay_ms from now (ticks are whole ms; never early). held: a handle holds
 * it too (actio__send_release ends that); else the timer releases n
 * (ops->release) once it ends. Returns 0 or ACTIO_ECLOSED (the timer stopped; n is still
 * the caller's). Any thread. */
int actio__send_arm(actio__timer *t, actio__tnode *n, int64_t delay_ms, int held);
/* Makes a delayed send and arms it in one hold of the timer's lock: a
 * block of the pool, set to the `size` bytes (at most ACTIO__TBLOCK) at
 * `init` (its node's kind set, as for actio__send_arm), due delay_ms from
 * now. With out, *out is set to the block before it can fire, and the
 * handle holds it (held); else the timer releases it once it ends. Returns
 * 0, ACTIO_ENOMEM or ACTIO_ECLOSED (the timer stopped), *out untouched on
 * failure. Any thread. */
int actio__send_arm_new(actio__timer *t, const void *init, size_t size, int64_t delay_ms,
                        actio_timer **out);
/* Stops the send n for good: 0 if this call stopped it (a one-shot will
 * never deliver: its message is dropped, through ops->drop, before this
 * returns), ACTIO_EALREADY if it was over already (delivered, refused,
 * cancelled, the timer stopped) or another cancel is stopping it. A fire in
 * progress on the timer's thread is waited for, except from that thread
 * (a periodic send is then stopped once that fire ends, a one-shot is
 * delivered: ACTIO_EALREADY). Any thread, while the handle is held. */
int actio__send_cancel(actio__timer *t, actio__tnode *n);
/* Gives up the handle's hold on n: released (ops->release) now if it
 * ended, else by the timer once it ends. Any thread, once per handle. */
void actio__send_release(actio__timer *t, actio__tnode *n);

/* Fails `f` with ACTIO_ETIMEDOUT and msg (copied) at deadline_ns (absolute,
 * CLOCK_MONOTONIC) unless it completes first; actio_future_remaining_ms
 * reads it. Returns 0, ACTIO_ENOMEM, or ACTIO_ECLOSED once the timer
 * stopped. Any thread. */
int actio__deadline_at(actio__timer *t, actio_future *f, int64_t deadline_ns,
                       const char *msg);

/* actio_future_set_deadline with the failure's message: msg (copied), or
 * for NULL "deadline of <timeout_ms> ms passed". Same returns. */
int actio__deadline_after(actio_runtime *rt, actio_future *f, int64_t timeout_ms,
                          const char *msg);

/* The message of a deadline that a group hands down. */
#define ACTIO__GROUP_DEADLINE_MSG "the group's deadline passed"

/* While a group starts an item on this thread, its absolute deadline (else
 * -1). enter returns the outer group's, which leave restores: items may
 * start groups of their own. */
int64_t actio__group_enter(int64_t deadline_ns);
void actio__group_leave(int64_t outer);

/* Gives f the deadline of the group being started on this thread, if any.
 * Call right after making a request's future, before it is queued. Returns
 * as actio__deadline_at. */
int actio__deadline_inherit(actio_runtime *rt, actio_future *f);

#endif

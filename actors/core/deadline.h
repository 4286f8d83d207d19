/* deadline.h: deadlines, in one place: the runtime's timer thread (a
 * min-heap of futures that fail with ACTIO_ETIMEDOUT when their time comes),
 * a future's deadline, and the deadline an actio_map_within group hands to
 * the requests started inside it. */
#ifndef ACTIO_ACTORS_CORE_DEADLINE_H
#define ACTIO_ACTORS_CORE_DEADLINE_H

#include <stdint.h>

#include "actio/actor.h"

typedef struct actio__timer actio__timer;

/* Starts the timer thread. Returns 0, ACTIO_ENOMEM or a negated errno. */
int actio__timer_create(actio__timer **out);
/* Joins the thread and cancels the futures still waiting (ACTIO_ECANCELED);
 * from then on new deadlines are refused with ACTIO_ECLOSED. Idempotent. */
void actio__timer_stop(actio__timer *t);
/* Stops it if need be, then frees. */
void actio__timer_destroy(actio__timer *t);
/* 1 on the timer's own thread (where deadlines fire, and the callbacks of
 * the futures they fail run). */
int actio__timer_current(const actio__timer *t);

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

/* timer.h: the runtime's deadline thread: a min-heap of futures that fail
 * with ACTIO_ETIMEDOUT when their time comes. */
#ifndef ACTIO_TIMER_H
#define ACTIO_TIMER_H

#include <stdint.h>

#include "actio/future.h"

typedef struct actio__timer actio__timer;

int actio__timer_create(actio__timer **out);
/* Cancels the futures still waiting, joins the thread, frees. */
void actio__timer_destroy(actio__timer *t);
/* Fails `f` with ACTIO_ETIMEDOUT at deadline_ns unless it completes first. */
int actio__timer_add(actio__timer *t, actio_future *f, int64_t deadline_ns);

#endif

/* cq_internal.h: what tests ask a completion queue that its API does not
 * say. */
#ifndef ACTIO_CQ_INTERNAL_H
#define ACTIO_CQ_INTERNAL_H

#include <stddef.h>

#include "actio/cq.h"

/* How many threads hold a record on cq now (see cq.c): at most the live
 * threads that registered on it lately. Any thread; a snapshot. */
size_t actio__cq_regs(actio_cq *cq);

#endif

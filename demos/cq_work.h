/* cq_work.h: what the three completion-queue demos share (cq_work.c): the
 * pages and queries they start, each registered on one actio_cq, and what
 * they print as each completes. Each demo only wires the queue's descriptor
 * and a timer of its own into its loop: demos/cq_epoll.c, cq_uv.c,
 * cq_glib.c. */
#ifndef ACTIO_DEMO_CQ_WORK_H
#define ACTIO_DEMO_CQ_WORK_H

#include <actio.h>

/* The loop's own timer: a tick every TICK_MS, and the demo ends once every
 * result is in and the loop has ticked at least MIN_TICKS times. */
enum { TICK_MS = 50, MIN_TICKS = 3 };

typedef struct cq_work {
  actio_runtime *rt;
  actio_actor *http, *db;
  actio_cq *cq;
  int pages, queries; /* started */
  int in_flight;      /* started, not drained yet */
  int ticks;
} cq_work;

/* Parses `DSN URL...`, starts the runtime, the HTTP and database actors and
 * the queue, then a GET of each URL and a few queries, each registered on
 * the queue. Returns 0, or 1 after printing why. */
int cq_work_start(cq_work *w, int argc, char **argv);

/* The loop's side when the queue's descriptor is readable: drains every
 * completion waiting and prints each. */
void cq_work_drain(cq_work *w);

/* The loop's own timer fired: prints the tick. */
void cq_work_tick(cq_work *w);

/* 1 once every result is in and the loop ticked MIN_TICKS times. */
int cq_work_finished(const cq_work *w);

/* Prints the summary and frees everything. Returns the exit status. */
int cq_work_end(cq_work *w);

#endif

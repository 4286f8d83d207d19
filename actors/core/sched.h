/* sched.h: the runtime's scheduler: a few threads (one per core by default)
 * that run many tasks (scheduled actors), each on one thread at a time. */
#ifndef ACTIO_ACTORS_CORE_SCHED_H
#define ACTIO_ACTORS_CORE_SCHED_H

#include <stdint.h>

/*
 * A task is idle or queued (in a run queue, or running). Waking an idle task
 * queues it; waking a queued one does nothing, so a task is in one queue at
 * most and runs on one thread at a time. A task woken on a scheduler thread
 * goes to that thread's next slot and runs there as soon as the current task
 * returns: an actor that sends to another hands its thread over, as Pony and
 * Go's runnext do, with no other thread woken. Tasks woken elsewhere go to a
 * shared queue, and one parked thread is woken unless one is already looking
 * for work (Go's spinning rule: at most half the threads look at once).
 */
typedef struct actio__sched actio__sched;
typedef struct actio__task actio__task;

/* Runs a batch of t's work on a scheduler thread. Returns 1 if t has more
 * (it goes to the back of the shared queue), 0 if it ran out, -1 once it
 * called actio__task_done: the scheduler then touches t no more (its
 * owner may free it as soon as it learns the task is done). */
typedef int (*actio__task_run_fn)(actio__task *t);
/* 1 while t has work waiting (read after it went idle: a wake may have been
 * missed). */
typedef int (*actio__task_pending_fn)(actio__task *t);

struct actio__task {
  actio__task_run_fn run;
  actio__task_pending_fn pending;
  _Atomic uint32_t state; /* idle, queued, looking, notified or done */
  actio__task *next;      /* in the shared queue */
};

/* Makes an idle task (not started until woken). */
void actio__task_init(actio__task *t, actio__task_run_fn run,
                      actio__task_pending_fn pending);

/* Starts `threads` scheduler threads (0: one per core). Returns 0,
 * ACTIO_ENOMEM or a negated errno from pthread_create. */
int actio__sched_create(actio__sched **out, unsigned threads);
/* Stops and joins the threads. Every task must be done or idle for good.
 * Idempotent; NULL accepted. */
void actio__sched_stop(actio__sched *s);
/* Stops it if need be, then frees. NULL accepted. */
void actio__sched_destroy(actio__sched *s);

/* Queues t unless it is queued already (any thread). */
void actio__sched_wake(actio__sched *s, actio__task *t);
/* As actio__sched_wake, except that an idle task is not queued but given
 * to the caller: returns 1 then, and the caller must either run it
 * (actio__sched_run) or queue it (actio__sched_queue); 0 when t was
 * queued, running or done already (a thread that looks for work was told,
 * as by a wake). Any thread. */
int actio__sched_claim(actio__task *t);
/* Queues a task claimed by actio__sched_claim, as a wake would have. */
void actio__sched_queue(actio__sched *s, actio__task *t);
/* Runs a task claimed by actio__sched_claim once on the calling thread (any
 * thread: the caller is the one to know its run needs no scheduler
 * thread), then requeues it, lets it go idle, or leaves it done, as a
 * scheduler thread would. */
void actio__sched_run(actio__sched *s, actio__task *t);
/* Marks t done: it is never queued again. Call from its own run. */
void actio__task_done(actio__task *t);

/* The scheduler whose thread this is, or NULL. */
actio__sched *actio__sched_current(void);
/* On one of s's threads, while the running task waits for something only
 * other tasks can bring (room in a full mailbox, another actor's stop):
 * runs one queued task in its place. Returns 1 if it ran one, 0 if none was
 * queued. */
int actio__sched_help(actio__sched *s);

#endif

/* park.h: where threads sleep: events for sleeping producers and consumers
 * (no lost wake-ups, no wasted ones), and futex waits on one word. */
#ifndef ACTIO_BASE_PARK_H
#define ACTIO_BASE_PARK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

/*
 * An event: threads park on it until signalled. A parked thread sits in a
 * list with its own futex word, so a signal wakes exactly one thread that is
 * really asleep and takes it off the list: a burst of signals costs one
 * system call per sleeper, not one per signal (glibc's condition variables
 * work the same way). The list has a mutex; only parking and waking take it,
 * never a signal that finds nobody parked.
 *
 * A waiter: prepare (it is now counted), re-check its condition, then either
 * cancel (the condition came true) or wait. A signaller: publish the change
 * with an atomic read-modify-write (ck_pr_fas, ck_pr_cas, ...), then signal.
 */
typedef struct actio__waiter {
  uint32_t woken; /* futex word: set to 1 by the waker, its last touch */
  struct actio__waiter *prev, *next;
} actio__waiter;

typedef struct actio__event {
  uint32_t parked; /* threads on the list; read without the lock */
  /* Threads taken off the list by a signal that have not yet returned
   * from their wait (nor passed the wake on): each will look again. */
  uint32_t waking;
  pthread_mutex_t mu;
  actio__waiter *top; /* most recently parked first: it is the warmest */
} actio__event;

void actio__event_init(actio__event *ev);
void actio__event_destroy(actio__event *ev);
void actio__event_prepare(actio__event *ev, actio__waiter *w);
/* Leave without sleeping; a wake already aimed at us is passed on. */
void actio__event_cancel(actio__event *ev, actio__waiter *w);
/* Sleeps until signalled or until `deadline_ns` (CLOCK_MONOTONIC, absolute;
 * negative = none). Returns 0 when signalled, else ACTIO_ETIMEDOUT. Either
 * way `w` is off the list and may be reused. A signalled waiter is counted
 * out of actio__event_waking before this returns (then a full fence): its
 * caller's next look at its condition comes after. */
int actio__event_wait(actio__event *ev, actio__waiter *w, int64_t deadline_ns);
/* Call after publishing, by an atomic read-modify-write, the change a waiter
 * looks for. */
void actio__event_signal(actio__event *ev);
/* 1 while some thread is parked (or about to park) on ev: whether a signal
 * could wake anyone. Call after publishing, as signal. */
int actio__event_has_waiters(actio__event *ev);
/* Threads signalled and not yet back from actio__event_wait: each will
 * look at the condition again. A signaller that sees as many on their way
 * as there is work for them need wake nobody more. Call after publishing,
 * as signal. */
unsigned actio__event_waking(actio__event *ev);
void actio__event_broadcast(actio__event *ev);

/* A condition variable whose waits end at absolute CLOCK_MONOTONIC
 * deadlines, for the sleepers that wait under a mutex (the timer, a
 * supervisor's pause, a send waiting out a restart). wait_until returns
 * ETIMEDOUT once deadline_ns passed (< 0: none), else 0 (re-check). */
void actio__cond_init(pthread_cond_t *cv);
int actio__cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t deadline_ns);

/* Polling before parking: up to `polls` tries, the first half pausing the
 * core, the rest yielding it (a sender sharing the core gets to run). The
 * yields end early once they took ACTIO__SPIN_BUDGET_NS of wall time: on a
 * core shared with busier threads one yield can give it away for a whole
 * time slice, and a thread that keeps yielding only holds back the one that
 * would make progress. Then it parks, and is woken. */
typedef struct actio__spin {
  unsigned i, polls;
  int64_t since_ns; /* the first yield's start */
} actio__spin;
#define ACTIO__SPIN_INIT(polls) {0, (polls), 0}
enum { ACTIO__SPIN_BUDGET_NS = 200000 };
/* Pauses once. Returns 0 when the poll phase is over: park. */
int actio__spin_once(actio__spin *s);

/* Threads polling one queue for work before they park, counted so that
 * only a few poll at once (Go's spinning rule): a polling thread holds a
 * core that busy threads may need, and with more runnable threads than
 * cores every yield is a context switch. A thread polls only if fewer than
 * `cap` others do (actio__spin_cap: half the cores); the others park at
 * once. Work published while one polls wakes nobody: the poller takes it,
 * and if it was the last poller and work is left, it wakes a sleeper.
 *
 * A producer: publish with an atomic read-modify-write, then
 * actio__spinners_count; 0: signal a sleeper. A poller that gives up:
 * actio__spinners_leave, then prepare to park and look again. One of the
 * two sees the other, so no wake-up is lost. */
typedef struct actio__spinners {
  _Atomic uint32_t n;
} actio__spinners;
/* Half the cores online, at least 1 (read once). */
unsigned actio__spin_cap(void);
/* Counts the caller in as a poller unless `cap` poll already. Returns 1
 * when it is counted (it must call actio__spinners_leave), else 0: park. */
int actio__spinners_enter(actio__spinners *s, unsigned cap);
/* Counts a poller out. */
void actio__spinners_leave(actio__spinners *s);
/* Pollers now (after the caller's publishing atomic: see above). */
unsigned actio__spinners_count(actio__spinners *s);

/* Futex helpers on a 32-bit word, for other one-word sleepers (futures). */
int actio__futex_wait(uint32_t *word, uint32_t expected, int64_t deadline_ns);
void actio__futex_wake(uint32_t *word, int all);

#endif

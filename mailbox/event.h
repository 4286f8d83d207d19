/* event.h: a futex event count (sleep until signalled, no lost wake-ups)
 * and the ThreadSanitizer annotations for hand-offs through Concurrency Kit. */
#ifndef ACTIO_MAILBOX_EVENT_H
#define ACTIO_MAILBOX_EVENT_H

#include <stdint.h>

/* CK's loads and stores are plain volatile accesses and its fences are inline
 * assembly, invisible to TSan. Code that hands data from one thread to another
 * through CK says so: RELEASE before publishing, ACQUIRE after taking. */
#if defined(__SANITIZE_THREAD__)
#define ACTIO__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ACTIO__TSAN 1
#endif
#endif
#ifdef ACTIO__TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define ACTIO__TSAN_RELEASE(p) __tsan_release((void *)(p))
#define ACTIO__TSAN_ACQUIRE(p) __tsan_acquire((void *)(p))
#else
#define ACTIO__TSAN_RELEASE(p) ((void)0)
#define ACTIO__TSAN_ACQUIRE(p) ((void)0)
#endif

/*
 * An event count. A waiter announces itself (prepare), re-checks its
 * condition, then sleeps unless a signal came in between (wait). A signaller
 * publishes its change first, then signals; it makes a system call only when
 * someone is waiting. Signal wakes one waiter, broadcast all of them.
 */
typedef struct actio__event {
  uint32_t seq;     /* bumped by every signal that found a waiter; futex word */
  uint32_t waiters; /* threads between prepare and the end of wait */
} actio__event;

/* Returns the ticket to pass to wait or cancel. */
uint32_t actio__event_prepare(actio__event *ev);
/* The condition came true after prepare: do not sleep. */
void actio__event_cancel(actio__event *ev);
/* Sleeps until a signal after `ticket` or until `deadline_ns` (CLOCK_MONOTONIC,
 * absolute; negative = no deadline). Returns 0, or ACTIO_ETIMEDOUT. Spurious
 * wake-ups happen: the caller re-checks its condition. */
int actio__event_wait(actio__event *ev, uint32_t ticket, int64_t deadline_ns);
/* Call after publishing the change a waiter looks for. */
void actio__event_signal(actio__event *ev);
void actio__event_broadcast(actio__event *ev);

/* Futex helpers on a 32-bit word, for other one-word sleepers (futures). */
int actio__futex_wait(uint32_t *word, uint32_t expected, int64_t deadline_ns);
void actio__futex_wake(uint32_t *word, int all);

/* CLOCK_MONOTONIC in nanoseconds; and the absolute deadline `timeout_ms` from
 * now (-1 for timeout_ms < 0, meaning none). */
int64_t actio__now_ns(void);
int64_t actio__deadline_ns(int64_t timeout_ms);

#endif

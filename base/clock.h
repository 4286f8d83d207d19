/* clock.h: the monotonic clock, deadlines, unit conversions and the one
 * backoff every retry loop uses. */
#ifndef ACTIO_BASE_CLOCK_H
#define ACTIO_BASE_CLOCK_H

#include <stdint.h>

#define ACTIO__NS_PER_MS INT64_C(1000000)
#define ACTIO__NS_PER_S INT64_C(1000000000)

/* CLOCK_MONOTONIC in nanoseconds. Any thread. */
int64_t actio__now_ns(void);

/* The absolute deadline `timeout_ms` from now, or -1 (none) for
 * timeout_ms < 0 or a time beyond any clock. */
int64_t actio__deadline_ns(int64_t timeout_ms);

/* Nanoseconds as milliseconds, rounded up (a wait never ends early);
 * 0 for ns <= 0. */
int64_t actio__ns_to_ms_ceil(int64_t ns);

/* Milliseconds left until the absolute deadline (rounded up, 0 once
 * passed), or -1 when deadline_ns < 0 (none). */
int64_t actio__ms_until(int64_t deadline_ns);

/* The pause before attempt k (1, 2, ...) of something that keeps failing:
 * base_ms doubled k-1 times, at most max_ms, then anywhere in its upper
 * half (jitter, so that many clients do not retry in step). Any thread. */
int64_t actio__backoff_ms(int64_t base_ms, int64_t max_ms, unsigned k);

#endif

/* clock.c: the monotonic clock, deadlines and backoff (see clock.h). */
#include "base/clock.h"

#include <stdlib.h>
#include <time.h>

#include "base/debug.h"

int64_t actio__now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * ACTIO__NS_PER_S + ts.tv_nsec;
}

int64_t actio__deadline_ns(int64_t timeout_ms) {
  if (timeout_ms < 0)
    return -1;
  int64_t now = actio__now_ns();
  if (timeout_ms > (INT64_MAX - now) / ACTIO__NS_PER_MS)
    return -1; /* beyond any clock: no deadline */
  return now + timeout_ms * ACTIO__NS_PER_MS;
}

int64_t actio__ns_to_ms_ceil(int64_t ns) {
  return ns > 0 ? (ns + ACTIO__NS_PER_MS - 1) / ACTIO__NS_PER_MS : 0;
}

int64_t actio__ms_until(int64_t deadline_ns) {
  if (deadline_ns < 0)
    return -1;
  return actio__ns_to_ms_ceil(deadline_ns - actio__now_ns());
}

int64_t actio__backoff_ms(int64_t base_ms, int64_t max_ms, unsigned k) {
  ACTIO__ASSERT(k >= 1);
  int64_t ms = base_ms > 0 ? base_ms : 1;
  for (unsigned j = 1; j < k && ms < max_ms; j++)
    ms *= 2;
  if (ms > max_ms)
    ms = max_ms;
  return ms / 2 + (int64_t)((unsigned long)random() % (unsigned long)(ms / 2 + 1));
}

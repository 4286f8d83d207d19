/* metrics.c: an actor's counters and request latencies (a histogram within
 * 1/8), read without stopping it. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "actors/core/actor_impl.h"
#include "actors/core/future_internal.h"
#include "actors/core/runtime.h"
#include "base/clock.h"

/* ---- the shares ---- */

static pthread_once_t shares_once = PTHREAD_ONCE_INIT;
static unsigned shares;

static void count_shares(void) {
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  shares = 1;
  while (shares < 8 && (long)shares < cpus)
    shares *= 2;
}

unsigned actio__meter_shares(void) {
  pthread_once(&shares_once, count_shares);
  return shares;
}

_Thread_local unsigned actio__thread_no;

unsigned actio__thread_no_new(void) {
  static _Atomic unsigned next;
  /* Relaxed: only distinct numbers matter. */
  actio__thread_no = atomic_fetch_add_explicit(&next, 1, memory_order_relaxed) + 1;
  return actio__thread_no;
}

actio__meter *actio__meters_new(void) {
  size_t size = sizeof(actio__meter) * actio__meter_shares();
  actio__meter *m = aligned_alloc(_Alignof(actio__meter), size);
  if (m != NULL)
    memset(m, 0, size);
  return m;
}

/* The sum of a counter over a's shares. Relaxed: a snapshot. */
#define SUM(a, field)                                                              \
  __extension__({                                                                  \
    uint64_t sum_ = 0;                                                             \
    for (unsigned i_ = 0; i_ < (a)->meter_shares; i_++)                            \
      sum_ += (uint64_t)atomic_load_explicit(&(a)->meters[i_].field, memory_order_relaxed); \
    sum_;                                                                          \
  })

void actio_actor_stats_get(const actio_actor *a, actio_actor_stats *out) {
  actio_actor *m = actio__pin(a);
  out->accepted = SUM(m, accepted);
  out->handled = SUM(m, handled);
  out->failed = SUM(m, failed);
  out->dropped = SUM(m, dropped);
  out->depth = actio__mbox_depth(m->mb);
  actio__unpin(a);
}

static unsigned hist_index(uint64_t us) {
  if (us < 8)
    return (unsigned)us;
  unsigned e = 63u - (unsigned)__builtin_clzll(us); /* 3.. */
  if (e > 40)
    return HIST_BUCKETS - 1;
  return (e - 2) * 8 + (unsigned)((us >> (e - 3)) & 7);
}

/* The middle of bucket i, in microseconds. */
static double hist_value(unsigned i) {
  if (i < 8)
    return i;
  unsigned e = i / 8 + 2, sub = i % 8;
  double lo = (double)((8u + sub) * (1ull << (e - 3)));
  return lo + (double)(1ull << (e - 3)) / 2;
}

/* A request's track word: the time it was sent, in nanoseconds with the
 * two low bits cleared, or'ed with these. Each transition is one atomic
 * read-modify-write of the word, so whichever of begin and end comes
 * second sees the other: `running` counts a request from its begin to its
 * end, once, whatever their order. Relaxed: the word alone decides. */
enum { TRACK_BEGUN = 1, TRACK_ENDED = 2, TRACK_BITS = 3 };

/* Marks f ended; returns when it was sent. */
static int64_t track_end(actio_actor *a, actio_future *f) {
  int64_t old = atomic_fetch_or_explicit(actio__future_track(f), TRACK_ENDED,
                                         memory_order_relaxed);
  if (old & TRACK_BEGUN)
    atomic_fetch_sub_explicit(&actio__meter_mine(a)->running, 1, memory_order_relaxed);
  return old & ~(int64_t)TRACK_BITS;
}

void actio__request_begin(actio_actor *a, actio_future *f) {
  if (f == NULL)
    return;
  int64_t old = atomic_fetch_or_explicit(actio__future_track(f), TRACK_BEGUN,
                                         memory_order_relaxed);
  if (!(old & TRACK_BITS))
    atomic_fetch_add_explicit(&actio__meter_mine(a)->running, 1, memory_order_relaxed);
}

/* A request's end: timed, and its reference to the actor dropped. */
static void tracked(actio_future *f, void *arg) {
  actio_actor *a = arg;
  int64_t ns = actio__now_ns() - track_end(a, f);
  uint64_t us = ns > 0 ? (uint64_t)ns / 1000 : 0;
  actio__meter *me = actio__meter_mine(a);
  /* Relaxed everywhere: statistics, read as a snapshot. */
  atomic_fetch_add_explicit(&me->hist[hist_index(us)], 1, memory_order_relaxed);
  uint64_t max = atomic_load_explicit(&me->max_us, memory_order_relaxed);
  while (us > max && !atomic_compare_exchange_weak_explicit(
                         &me->max_us, &max, us, memory_order_relaxed,
                         memory_order_relaxed))
    ;
  actio__count(actio_future_status(f) == 0 ? &me->completed : &me->errors);
  actio__actor_unref(a);
}

void actio__actor_track(actio_actor *a, actio_future *f) {
  /* An add, not a store: its worker may have begun it already. */
  atomic_fetch_add_explicit(actio__future_track(f),
                            actio__now_ns() & ~(int64_t)TRACK_BITS,
                            memory_order_relaxed);
  actio__meter *me = actio__meter_mine(a);
  actio__count(&me->started);
  actio__actor_ref(a); /* until f completes */
  if (actio_future_on_done(f, tracked, a) != 0) {
    (void)track_end(a, f);
    actio__count(&me->errors); /* out of memory: counted, not timed */
    actio__actor_unref(a);
  }
}

static void metrics_of(actio_actor *m, actio_actor_metrics *out);

void actio_actor_metrics_get(const actio_actor *a, actio_actor_metrics *out) {
  metrics_of(actio__pin(a), out);
  actio__unpin(a);
}

static void metrics_of(actio_actor *m, actio_actor_metrics *out) {
  memset(out, 0, sizeof *out);
  actio_actor_stats_get(m, &out->stats);
  uint64_t completed = SUM(m, completed);
  uint64_t errors = SUM(m, errors);
  uint64_t started = SUM(m, started);
  out->completed = completed;
  out->errors = errors;
  out->in_flight = started > completed + errors ? started - completed - errors : 0;
  int64_t running = (int64_t)SUM(m, running); /* a share's may be below 0 */
  out->running = running < 0 ? 0 : (uint64_t)running;
  if (out->running > out->in_flight) /* the counters are read one by one */
    out->running = out->in_flight;
  out->waiting = out->in_flight - out->running;
  uint64_t max_us = 0, h[HIST_BUCKETS] = {0}, total = 0;
  for (unsigned s = 0; s < m->meter_shares; s++) {
    uint64_t mx = atomic_load_explicit(&m->meters[s].max_us, memory_order_relaxed);
    max_us = mx > max_us ? mx : max_us;
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
      h[i] += atomic_load_explicit(&m->meters[s].hist[i], memory_order_relaxed);
  }
  out->max_ms = (double)max_us / 1000;
  for (unsigned i = 0; i < HIST_BUCKETS; i++)
    total += h[i];
  double *p[3] = {&out->p50_ms, &out->p90_ms, &out->p99_ms};
  const double q[3] = {0.50, 0.90, 0.99};
  uint64_t seen = 0;
  unsigned k = 0;
  for (unsigned i = 0; i < HIST_BUCKETS && k < 3 && total > 0; i++) {
    seen += h[i];
    while (k < 3 && (double)seen >= q[k] * (double)total)
      *p[k++] = hist_value(i) / 1000;
  }
  pthread_mutex_lock(&m->fail_mu);
  out->failed = m->is_failed;
  pthread_mutex_unlock(&m->fail_mu);
}

void actio_runtime_metrics_print(actio_runtime *rt, FILE *f) {
  fprintf(f, "%-16s %8s %8s %8s %10s %8s %9s %9s %9s\n", "actor", "depth",
          "waiting", "running", "completed", "errors", "p50 ms", "p99 ms", "max ms");
  /* A snapshot of the list, each actor held by a reference (a replaced
   * instance may be freed meanwhile), read after the lock. */
  pthread_mutex_lock(&rt->mu);
  size_t n = 0;
  for (actio_actor *a = rt->actors; a != NULL; a = a->prev)
    n++;
  actio_actor **list = malloc((n ? n : 1) * sizeof *list);
  n = 0;
  for (actio_actor *a = rt->actors; list != NULL && a != NULL; a = a->prev) {
    actio__actor_ref(a);
    list[n++] = a;
  }
  pthread_mutex_unlock(&rt->mu);
  while (n-- > 0) { /* oldest first; stopped ones (replaced) and addresses left out */
    actio_actor *a = list[n];
    if (a->addr != NULL || actio__mbox_is_closed(a->mb)) {
      actio__actor_unref(a);
      continue;
    }
    actio_actor_metrics m;
    actio_actor_metrics_get(a, &m);
    fprintf(f, "%-16s %8zu %8" PRIu64 " %8" PRIu64 " %10" PRIu64 " %8" PRIu64
               " %9.3f %9.3f %9.3f%s\n",
            a->name, m.stats.depth, m.waiting, m.running, m.completed, m.errors,
            m.p50_ms, m.p99_ms, m.max_ms, m.failed ? "  FAILED" : "");
    actio__actor_unref(a);
  }
  free(list);
}


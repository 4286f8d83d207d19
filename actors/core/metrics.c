/* metrics.c: an actor's counters and request latencies (a histogram within
 * 1/8), read without stopping it. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/core/actor_impl.h"
#include "actors/core/future_internal.h"
#include "actors/core/runtime.h"
#include "base/clock.h"

void actio_actor_stats_get(const actio_actor *a, actio_actor_stats *out) {
  actio_actor *m = actio__pin(a);
  out->accepted = atomic_load_explicit(&m->accepted, memory_order_relaxed);
  out->handled = atomic_load_explicit(&m->handled, memory_order_relaxed);
  out->failed = atomic_load_explicit(&m->failed, memory_order_relaxed);
  out->dropped = atomic_load_explicit(&m->dropped, memory_order_relaxed);
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
    atomic_fetch_sub_explicit(&a->running, 1, memory_order_relaxed);
  return old & ~(int64_t)TRACK_BITS;
}

void actio__request_begin(actio_actor *a, actio_future *f) {
  if (f == NULL)
    return;
  int64_t old = atomic_fetch_or_explicit(actio__future_track(f), TRACK_BEGUN,
                                         memory_order_relaxed);
  if (!(old & TRACK_BITS))
    atomic_fetch_add_explicit(&a->running, 1, memory_order_relaxed);
}

/* A request's end: timed, and its reference to the actor dropped. */
static void tracked(actio_future *f, void *arg) {
  actio_actor *a = arg;
  int64_t ns = actio__now_ns() - track_end(a, f);
  uint64_t us = ns > 0 ? (uint64_t)ns / 1000 : 0;
  /* Relaxed everywhere: statistics, read as a snapshot. */
  atomic_fetch_add_explicit(&a->hist[hist_index(us)], 1, memory_order_relaxed);
  uint64_t max = atomic_load_explicit(&a->max_us, memory_order_relaxed);
  while (us > max && !atomic_compare_exchange_weak_explicit(
                         &a->max_us, &max, us, memory_order_relaxed,
                         memory_order_relaxed))
    ;
  actio__count(actio_future_status(f) == 0 ? &a->completed : &a->errors);
  actio__actor_unref(a);
}

void actio__actor_track(actio_actor *a, actio_future *f) {
  /* An add, not a store: its worker may have begun it already. */
  atomic_fetch_add_explicit(actio__future_track(f),
                            actio__now_ns() & ~(int64_t)TRACK_BITS,
                            memory_order_relaxed);
  actio__count(&a->started);
  actio__actor_ref(a); /* until f completes */
  if (actio_future_on_done(f, tracked, a) != 0) {
    (void)track_end(a, f);
    actio__count(&a->errors); /* out of memory: counted, not timed */
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
  uint64_t completed = atomic_load_explicit(&m->completed, memory_order_relaxed);
  uint64_t errors = atomic_load_explicit(&m->errors, memory_order_relaxed);
  uint64_t started = atomic_load_explicit(&m->started, memory_order_relaxed);
  out->completed = completed;
  out->errors = errors;
  out->in_flight = started > completed + errors ? started - completed - errors : 0;
  int64_t running = atomic_load_explicit(&m->running, memory_order_relaxed);
  out->running = running < 0 ? 0 : (uint64_t)running;
  if (out->running > out->in_flight) /* the counters are read one by one */
    out->running = out->in_flight;
  out->waiting = out->in_flight - out->running;
  out->max_ms = (double)atomic_load_explicit(&m->max_us, memory_order_relaxed) / 1000;
  uint64_t h[HIST_BUCKETS], total = 0;
  for (unsigned i = 0; i < HIST_BUCKETS; i++)
    total += h[i] = atomic_load_explicit(&m->hist[i], memory_order_relaxed);
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


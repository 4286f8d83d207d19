/* actor.c: the runtime and the actor core: spawn a behavior with its mailbox
 * and worker pool, tell and ask, stop, and counters. */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actio/actor.h"
#include "actio/error.h"
#include "actors/core/actor_internal.h"
#include "actors/core/bell.h"
#include "actors/core/deadline.h"
#include "actors/core/future_internal.h"
#include "actors/core/runtime.h"
#include "base/clock.h"
#include "base/debug.h"
#include "mailbox/mailbox.h"

/* Latency histogram, in microseconds: exact below 8, then 8 buckets per
 * power of two (within 1/8), up to 2^40 us. */
enum { HIST_BUCKETS = 8 + 38 * 8 };

typedef struct worker {
  actio_actor *actor;
  pthread_t thread;
  void *ctx;
  int started;          /* thread created */
  _Atomic int waiting;  /* socket workers: in wait(), wake() may be due */
  pthread_mutex_t wake_mu; /* socket workers: wake() versus leaving */
  int live;             /* init done, worker_stop not yet: ctx is valid */
} worker;

struct actio_actor {
  actio_runtime *rt;
  const actio_behavior *b;
  void *state;
  char *name;
  actio__mbox *mb;
  worker *workers;
  unsigned nworkers;
  _Atomic int abort;   /* stop-now: cancel instead of handling */
  pthread_mutex_t stop_mu; /* serialises stop; guards `stopped` */
  int stopped;
  /* start-up: workers report their init result */
  pthread_mutex_t init_mu;
  pthread_cond_t init_cv;
  unsigned init_done;
  int init_rc;
  void (*state_free)(void *state);
  /* The counters, on lines of their own: the senders' apart from the
   * workers', or every message would move a line between the two sides
   * (an extra cache miss per message in pingpong). */
  char pad0[64];
  _Atomic uint64_t accepted; /* by senders */
  _Atomic uint64_t started;  /* requests timed by actio__actor_track */
  char pad1[64];
  _Atomic uint64_t handled, failed, dropped; /* by workers */
  _Atomic uint64_t completed, errors, max_us; /* by completers */
  _Atomic uint64_t hist[HIST_BUCKETS];
  char pad2[64];
  /* failure: actio_actor_fail */
  pthread_mutex_t fail_mu; /* guards the five below */
  int is_failed;
  int fail_code;
  char *fail_why;
  actio__fail_fn monitor;
  void *monitor_arg;
  _Atomic int owned; /* a supervisor stops it (actio__actor_set_owned) */
  actio_actor *prev; /* spawn order, newest first */
};


/* ---- runtime ---- */

int actio_runtime_create(actio_runtime **out, const actio_runtime_opts *opts) {
  if (out == NULL)
    return ACTIO_EINVAL;
  actio_runtime *rt = calloc(1, sizeof *rt);
  if (rt == NULL)
    return ACTIO_ENOMEM;
  if (opts != NULL)
    rt->opts = *opts;
  int rc = actio__timer_create(&rt->timer);
  if (rc != 0) {
    free(rt);
    return rc;
  }
  pthread_mutex_init(&rt->mu, NULL);
  *out = rt;
  return 0;
}

static void actor_free(actio_actor *a) {
  /* Stopped: every message accepted was handled or dropped. */
  ACTIO__ASSERT(a->mb == NULL || actio__mbox_depth(a->mb) == 0);
  if (a->state_free != NULL)
    a->state_free(a->state);
  for (unsigned i = 0; a->workers != NULL && i < a->nworkers; i++)
    pthread_mutex_destroy(&a->workers[i].wake_mu);
  actio__mbox_destroy(a->mb);
  pthread_mutex_destroy(&a->stop_mu);
  pthread_mutex_destroy(&a->fail_mu);
  free(a->fail_why);
  pthread_mutex_destroy(&a->init_mu);
  pthread_cond_destroy(&a->init_cv);
  free(a->workers);
  free(a->name);
  free(a);
}

void actio_runtime_destroy(actio_runtime *rt) {
  if (rt == NULL)
    return;
  pthread_mutex_lock(&rt->mu);
  rt->closing = 1;
  actio_actor *a = rt->actors;
  rt->actors = NULL;
  pthread_mutex_unlock(&rt->mu);
  /* Stop all first, newest first (reverse start order), then free: an
   * older actor draining may still tell a newer one, which must refuse with
   * ACTIO_ECLOSED rather than be freed memory. A supervisor's children go
   * with it, in its own order (a restarted child is newer than its elder
   * siblings, yet must stop after them); then whatever is left. */
  for (actio_actor *it = a; it != NULL; it = it->prev)
    if (atomic_load_explicit(&it->owned, memory_order_acquire) == 0)
      actio_actor_stop(it, ACTIO_STOP_DRAIN);
  for (actio_actor *it = a; it != NULL; it = it->prev)
    actio_actor_stop(it, ACTIO_STOP_DRAIN);
  /* The timer next: a future it cancels may still run callbacks into an
   * actor (its metrics), which must not be freed yet. */
  actio__timer_destroy(rt->timer);
  while (a != NULL) {
    actio_actor *prev = a->prev;
    actor_free(a);
    a = prev;
  }
  pthread_mutex_destroy(&rt->mu);
  free(rt);
}

uint64_t actio_runtime_dead_letters(const actio_runtime *rt) {
  return atomic_load_explicit(&((actio_runtime *)rt)->dead_letters,
                              memory_order_relaxed);
}

/* ---- workers ---- */

static void count(_Atomic uint64_t *c) {
  atomic_fetch_add_explicit(c, 1, memory_order_relaxed); /* a statistic */
}

/* A message that will never be handled: free it, cancel its asker. */
static void discard(actio_actor *a, actio__mbox_msg *m, const char *why) {
  actio_future *reply = m->b;
  if (a->b->drop != NULL)
    a->b->drop(a, m->a);
  if (reply != NULL) {
    char msg[256];
    snprintf(msg, sizeof msg, "actor %s: %s", a->name, why);
    actio__future_abort(reply, ACTIO_ECANCELED, msg); /* runs its hook */
    actio_future_unref(reply);
  }
  count(&a->dropped);
}

static void deliver(actio_actor *a, worker *w, actio__mbox_msg *m) {
  actio_future *reply = m->b;
  if (reply != NULL && actio_future_is_done(reply)) {
    discard(a, m, "asker cancelled before the message was handled");
    return;
  }
  int rc = a->b->handle(a, w->ctx, m->a, reply);
  if (rc < 0) {
    count(&a->failed);
    if (rc == ACTIO_EFATAL)
      actio_actor_fail(a, rc, "handler reported a fatal error");
    if (reply != NULL)
      actio_future_fail(reply, rc, "actor %s: handler failed: %s", a->name,
                        actio_strerror(rc));
  } else {
    count(&a->handled);
  }
  actio_future_unref(reply);
}

static void report_init(actio_actor *a, int rc) {
  pthread_mutex_lock(&a->init_mu);
  if (rc < 0 && a->init_rc == 0)
    a->init_rc = rc;
  a->init_done++;
  pthread_cond_broadcast(&a->init_cv);
  pthread_mutex_unlock(&a->init_mu);
}

/* The actor this thread works for, if any, and its worker. */
static _Thread_local actio_actor *current_actor;
static _Thread_local struct worker *current_worker;

actio_actor *actio_actor_self(void) { return current_actor; }

/* Handles one popped message, or cancels it when stopping now. */
static void take(actio_actor *a, worker *w, actio__mbox_msg *m) {
  if (atomic_load_explicit(&a->abort, memory_order_acquire))
    discard(a, m, "stopped before the message was handled");
  else
    deliver(a, w, m);
}

/* The loop of a worker that sleeps on its mailbox. */
static void mailbox_loop(actio_actor *a, worker *w) {
  for (;;) {
    actio__mbox_msg m;
    int rc = actio__mbox_pop(a->mb, &m, -1);
    if (rc == ACTIO_ECLOSED)
      return; /* closed and drained */
    if (rc == 0)
      take(a, w, &m);
  }
}

static int claim_waiting(worker *w) {
  int expect = 1;
  return atomic_load_explicit(&w->waiting, memory_order_seq_cst) &&
         atomic_compare_exchange_strong_explicit(&w->waiting, &expect, 0,
                                                 memory_order_acq_rel,
                                                 memory_order_relaxed);
}

/* Calls wake() for w unless it is leaving: its context may be gone then. */
static void wake_worker(actio_actor *a, worker *w) {
  pthread_mutex_lock(&w->wake_mu);
  if (w->live)
    a->b->wake(a, w->ctx);
  pthread_mutex_unlock(&w->wake_mu);
}

/* Wakes one waiting worker other than `except` (may be NULL), if any. */
static void wake_another(actio_actor *a, worker *except) {
  for (unsigned i = 0; i < a->nworkers; i++)
    if (&a->workers[i] != except && claim_waiting(&a->workers[i])) {
      wake_worker(a, &a->workers[i]);
      return;
    }
}

/* The loop of a worker that sleeps in its own I/O wait: it takes what the
 * mailbox holds (a batch at a time, so its transfers keep moving), then
 * waits, advertising that a sender should wake it. */
static void socket_loop(actio_actor *a, worker *w) {
  const actio_behavior *b = a->b;
  for (;;) {
    int closed = 0;
    /* Once closed, full no longer counts: the others may be gone, and
     * what was accepted must be taken by someone. */
    int (*full)(actio_actor *, void *) = actio__mbox_is_closed(a->mb) ? NULL : b->full;
    for (int i = 0; i < 256 && !(full && full(a, w->ctx)); i++) {
      actio__mbox_msg m;
      int rc = actio__mbox_pop(a->mb, &m, 0);
      if (rc == ACTIO_ECLOSED)
        closed = 1;
      if (rc != 0)
        break;
      take(a, w, &m);
    }
    if (closed && (atomic_load_explicit(&a->abort, memory_order_acquire) ||
                   !b->busy(a, w->ctx)))
      return;
    /* A full worker waits on its own I/O without advertising: senders wake
     * one with room. Else a seq_cst store, then the depth check: pairs
     * with the sender, which publishes its message (an atomic swap) before
     * it looks for waiting workers; one of the two sees the other. */
    int room = !(full && full(a, w->ctx));
    if (room) {
      atomic_store_explicit(&w->waiting, 1, memory_order_seq_cst);
      /* Store-load: CK's depth read below is a plain load, and a seq_cst
       * store alone does not order it on every architecture. */
      atomic_thread_fence(memory_order_seq_cst);
    } else if (actio__mbox_depth(a->mb) > 0) {
      /* Full, with messages left (perhaps our own callbacks' sends, which
       * woke nobody): pass the wake-up on to a worker with room. */
      wake_another(a, w);
    }
    if ((!room || actio__mbox_depth(a->mb) == 0) && !closed)
      b->wait(a, w->ctx);
    atomic_store_explicit(&w->waiting, 0, memory_order_relaxed);
    if (closed) /* draining: wait for the work in flight, but not forever */
      b->wait(a, w->ctx);
  }
}


/* The mailbox's wake hook for socket workers: wakes one that waits. A
 * worker sending to its own actor (a completion's callback starting the
 * next request) takes the message itself, without a hop to another thread:
 * in its wait, it is woken (the behavior knows it costs nothing); outside
 * it, it will see the message before it waits again; unless it is full,
 * and then another worker is woken. */
static void wake_one(void *arg) {
  actio_actor *a = arg;
  worker *me = current_worker;
  if (me != NULL && me->actor == a) {
    if (claim_waiting(me)) {
      wake_worker(a, me);
      return;
    }
    if (!(a->b->full && a->b->full(a, me->ctx)))
      return; /* it has room: it pops before it waits again */
  }
  wake_another(a, NULL);
}

static void set_live(worker *w, int live) {
  pthread_mutex_lock(&w->wake_mu);
  w->live = live;
  pthread_mutex_unlock(&w->wake_mu);
}

static void *worker_main(void *arg) {
  worker *w = arg;
  actio_actor *a = w->actor;
  current_actor = a;
  int rc = a->b->worker_init ? a->b->worker_init(a, &w->ctx) : 0;
  if (rc == 0) {
    set_live(w, 1);
    current_worker = w; /* its context exists from now on */
  }
  report_init(a, rc);
  if (rc < 0)
    return NULL;
  if (a->b->wait != NULL)
    socket_loop(a, w);
  else
    mailbox_loop(a, w);
  set_live(w, 0);
  if (a->b->worker_stop != NULL)
    a->b->worker_stop(a, w->ctx);
  return NULL;
}

/* ---- actors ---- */

/* After close: socket workers do not sleep on the mailbox, so tell them. */
static void wake_all(actio_actor *a) {
  if (a->b->wake != NULL)
    for (unsigned i = 0; i < a->nworkers; i++)
      if (a->workers[i].started)
        wake_worker(a, &a->workers[i]);
}

static void join_workers(actio_actor *a) {
  for (unsigned i = 0; i < a->nworkers; i++)
    if (a->workers[i].started)
      pthread_join(a->workers[i].thread, NULL);
}

int actio_actor_spawn(actio_runtime *rt, const actio_behavior *b,
                      const actio_actor_opts *opts, actio_actor **out) {
  actio_actor_opts o = opts ? *opts : (actio_actor_opts){0};
  int sockets = b != NULL && (b->wait != NULL || b->wake != NULL || b->busy != NULL);
  if (rt == NULL || b == NULL || b->handle == NULL || out == NULL ||
      (sockets && (b->wait == NULL || b->wake == NULL || b->busy == NULL))) {
    if (o.state_free != NULL)
      o.state_free(o.state);
    return ACTIO_EINVAL;
  }
  if (o.workers == 0)
    o.workers = 1;
  if (o.capacity == 0)
    o.capacity = 1024;
  if (o.spin == 0)
    o.spin = 256;

  int rc = ACTIO_ENOMEM;
  actio_actor *a = calloc(1, sizeof *a);
  if (a == NULL) {
    if (o.state_free != NULL)
      o.state_free(o.state);
    return ACTIO_ENOMEM;
  }
  a->rt = rt;
  a->b = b;
  a->state = o.state;
  a->state_free = o.state_free;
  a->nworkers = o.workers;
  pthread_mutex_init(&a->stop_mu, NULL);
  pthread_mutex_init(&a->fail_mu, NULL);
  pthread_mutex_init(&a->init_mu, NULL);
  pthread_cond_init(&a->init_cv, NULL);
  a->name = strdup(o.name ? o.name : "actor");
  a->workers = calloc(o.workers, sizeof *a->workers);
  if (a->name == NULL || a->workers == NULL)
    goto fail_alloc;
  for (unsigned i = 0; i < o.workers; i++)
    pthread_mutex_init(&a->workers[i].wake_mu, NULL);
  rc = actio__mbox_create(&a->mb, o.capacity);
  if (rc != 0)
    goto fail_alloc;
  actio__mbox_set_spin(a->mb, o.spin);
  if (sockets)
    actio__mbox_set_wake(a->mb, wake_one, a);

  unsigned created = 0;
  for (; created < o.workers; created++) {
    worker *w = &a->workers[created];
    w->actor = a;
    int e = pthread_create(&w->thread, NULL, worker_main, w);
    if (e != 0) {
      rc = -e;
      break;
    }
    w->started = 1;
  }
  pthread_mutex_lock(&a->init_mu);
  while (a->init_done < created)
    pthread_cond_wait(&a->init_cv, &a->init_mu);
  if (created == o.workers)
    rc = a->init_rc;
  pthread_mutex_unlock(&a->init_mu);
  if (rc != 0)
    goto fail_workers;

  pthread_mutex_lock(&rt->mu);
  if (rt->closing) {
    pthread_mutex_unlock(&rt->mu);
    rc = ACTIO_ECLOSED;
    goto fail_workers;
  }
  a->prev = rt->actors;
  rt->actors = a;
  pthread_mutex_unlock(&rt->mu);
  *out = a;
  return 0;

fail_workers:
  /* Workers whose init succeeded sit in pop (or wait): closing lets them
   * run their worker_stop and leave. */
  actio__mbox_close(a->mb);
  wake_all(a);
  join_workers(a);
fail_alloc:
  actor_free(a);
  return rc;
}

void *actio_actor_state(const actio_actor *a) { return a->state; }
const char *actio_actor_name(const actio_actor *a) { return a->name; }
actio_runtime *actio_actor_runtime(const actio_actor *a) { return a->rt; }
const actio_behavior *actio_actor_behavior(const actio_actor *a) { return a->b; }

/* Pushes a message; refused by a stopped actor, it is a dead letter unless
 * it is the library's own (dead 0). */
static int send(actio_actor *a, void *msg, actio_future *reply,
                int64_t timeout_ms, int dead) {
  actio__mbox_msg m = {msg, reply};
  int rc = actio__mbox_push(a->mb, &m, timeout_ms);
  if (rc == 0) {
    count(&a->accepted);
  } else if (rc == ACTIO_ECLOSED && dead) {
    count(&a->rt->dead_letters);
    if (a->rt->opts.dead_letter != NULL)
      a->rt->opts.dead_letter(a->rt->opts.dead_letter_arg, a, msg);
  }
  return rc;
}

int actio__tell_quiet(actio_actor *a, void *msg, int64_t timeout_ms) {
  return send(a, msg, NULL, timeout_ms, 0);
}

/* The one path of every I/O request (see actor_internal.h): to the mailbox
 * (bell NULL) or to the inbox of the worker it is bound to. */
static int request(actio_actor *a, void *msg, actio__bell *bell,
                   actio__bell_link *link, actio_future *reply,
                   int64_t timeout_ms, actio_future **out) {
  ACTIO__ASSERT((reply == NULL) == (out == NULL));
  if (reply != NULL) {
    int rc = actio__deadline_inherit(a->rt, reply);
    if (rc != 0)
      return rc;
    actio_future_ref(reply); /* the caller's; msg holds the other */
  }
  int rc = bell != NULL ? actio__bell_push(bell, link, 1)
                        : send(a, msg, NULL, timeout_ms, 1);
  if (rc != 0) {
    actio_future_unref(reply);
    return rc;
  }
  if (reply != NULL) {
    actio__actor_track(a, reply);
    *out = reply;
  }
  return 0;
}

int actio__request(actio_actor *a, void *msg, actio_future *reply,
                   int64_t timeout_ms, actio_future **out) {
  return request(a, msg, NULL, NULL, reply, timeout_ms, out);
}

int actio__request_bound(actio_actor *a, actio__bell *bell,
                         actio__bell_link *link, actio_future *reply,
                         actio_future **out) {
  return request(a, NULL, bell, link, reply, 0, out);
}

int actio_tell(actio_actor *a, void *msg, int64_t timeout_ms) {
  if (a == NULL)
    return ACTIO_EINVAL;
  return send(a, msg, NULL, timeout_ms, 1);
}

int actio_ask(actio_actor *a, void *msg, int64_t timeout_ms, actio_future **out) {
  if (a == NULL || out == NULL)
    return ACTIO_EINVAL;
  actio_future *f;
  int rc = actio_future_create(&f);
  if (rc != 0)
    return rc;
  actio_future_ref(f); /* the message's reference, dropped by the worker */
  rc = send(a, msg, f, timeout_ms, 1);
  if (rc != 0) {
    actio_future_unref(f);
    actio_future_unref(f);
    return rc;
  }
  actio__actor_track(a, f);
  *out = f;
  return 0;
}

int actio_actor_stop(actio_actor *a, actio_stop_mode mode) {
  if (a == NULL)
    return ACTIO_EINVAL;
  pthread_t self = pthread_self();
  for (unsigned i = 0; i < a->nworkers; i++)
    if (a->workers[i].started && pthread_equal(a->workers[i].thread, self))
      return ACTIO_ESTATE;
  pthread_mutex_lock(&a->stop_mu);
  if (!a->stopped) {
    if (mode == ACTIO_STOP_NOW)
      atomic_store_explicit(&a->abort, 1, memory_order_release);
    actio__mbox_close(a->mb);
    wake_all(a);
    join_workers(a);
    a->stopped = 1;
  }
  pthread_mutex_unlock(&a->stop_mu);
  return 0;
}

void actio_actor_stats_get(const actio_actor *a, actio_actor_stats *out) {
  actio_actor *m = (actio_actor *)a;
  out->accepted = atomic_load_explicit(&m->accepted, memory_order_relaxed);
  out->handled = atomic_load_explicit(&m->handled, memory_order_relaxed);
  out->failed = atomic_load_explicit(&m->failed, memory_order_relaxed);
  out->dropped = atomic_load_explicit(&m->dropped, memory_order_relaxed);
  out->depth = actio__mbox_depth(a->mb);
}

/* ---- metrics ---- */

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

static void tracked(actio_future *f, void *arg) {
  actio_actor *a = arg;
  int64_t ns = actio__now_ns() - actio__future_track_ns(f);
  uint64_t us = ns > 0 ? (uint64_t)ns / 1000 : 0;
  /* Relaxed everywhere: statistics, read as a snapshot. */
  atomic_fetch_add_explicit(&a->hist[hist_index(us)], 1, memory_order_relaxed);
  uint64_t max = atomic_load_explicit(&a->max_us, memory_order_relaxed);
  while (us > max && !atomic_compare_exchange_weak_explicit(
                         &a->max_us, &max, us, memory_order_relaxed,
                         memory_order_relaxed))
    ;
  count(actio_future_status(f) == 0 ? &a->completed : &a->errors);
}

void actio__actor_track(actio_actor *a, actio_future *f) {
  actio__future_set_track_ns(f, actio__now_ns());
  count(&a->started);
  if (actio_future_on_done(f, tracked, a) != 0)
    count(&a->errors); /* out of memory: counted, not timed */
}

void actio_actor_metrics_get(const actio_actor *a, actio_actor_metrics *out) {
  actio_actor *m = (actio_actor *)a;
  memset(out, 0, sizeof *out);
  actio_actor_stats_get(a, &out->stats);
  uint64_t completed = atomic_load_explicit(&m->completed, memory_order_relaxed);
  uint64_t errors = atomic_load_explicit(&m->errors, memory_order_relaxed);
  uint64_t started = atomic_load_explicit(&m->started, memory_order_relaxed);
  out->completed = completed;
  out->errors = errors;
  out->in_flight = started > completed + errors ? started - completed - errors : 0;
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
  fprintf(f, "%-16s %8s %9s %10s %8s %9s %9s %9s\n", "actor", "depth",
          "in-flight", "completed", "errors", "p50 ms", "p99 ms", "max ms");
  /* Actors are freed only with the runtime: a snapshot of the list is safe
   * to read after the lock. */
  pthread_mutex_lock(&rt->mu);
  size_t n = 0;
  for (actio_actor *a = rt->actors; a != NULL; a = a->prev)
    n++;
  actio_actor **list = malloc((n ? n : 1) * sizeof *list);
  n = 0;
  for (actio_actor *a = rt->actors; list != NULL && a != NULL; a = a->prev)
    list[n++] = a;
  pthread_mutex_unlock(&rt->mu);
  while (n-- > 0) { /* oldest first; stopped ones (replaced) left out */
    actio_actor *a = list[n];
    if (actio__mbox_is_closed(a->mb))
      continue;
    actio_actor_metrics m;
    actio_actor_metrics_get(a, &m);
    fprintf(f, "%-16s %8zu %9" PRIu64 " %10" PRIu64 " %8" PRIu64
               " %9.3f %9.3f %9.3f%s\n",
            a->name, m.stats.depth, m.in_flight, m.completed, m.errors,
            m.p50_ms, m.p99_ms, m.max_ms, m.failed ? "  FAILED" : "");
  }
  free(list);
}

/* ---- failure ---- */

void actio_actor_fail(actio_actor *a, int code, const char *why) {
  if (a == NULL)
    return;
  pthread_mutex_lock(&a->fail_mu);
  if (a->is_failed) {
    pthread_mutex_unlock(&a->fail_mu);
    return;
  }
  a->is_failed = 1;
  a->fail_code = code;
  a->fail_why = strdup(why ? why : actio_strerror(code));
  actio__fail_fn fn = a->monitor;
  void *arg = a->monitor_arg;
  pthread_mutex_unlock(&a->fail_mu);
  if (fn != NULL)
    fn(arg, a, code, why ? why : actio_strerror(code));
}

int actio_actor_failed(const actio_actor *a) {
  actio_actor *m = (actio_actor *)a;
  pthread_mutex_lock(&m->fail_mu);
  int failed = m->is_failed;
  pthread_mutex_unlock(&m->fail_mu);
  return failed;
}

void actio__actor_set_monitor(actio_actor *a, actio__fail_fn fn, void *arg) {
  pthread_mutex_lock(&a->fail_mu);
  a->monitor = fn;
  a->monitor_arg = arg;
  int failed = a->is_failed, code = a->fail_code;
  pthread_mutex_unlock(&a->fail_mu);
  if (failed && fn != NULL) /* fail_why is written once, before is_failed */
    fn(arg, a, code, a->fail_why ? a->fail_why : actio_strerror(code));
}

void actio__actor_set_owned(actio_actor *a) {
  atomic_store_explicit(&a->owned, 1, memory_order_release);
}

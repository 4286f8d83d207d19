/* actor.c: the runtime and the actor core: spawn a behavior with its mailbox
 * and worker pool, tell and ask, stop, and counters. */
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actio/actor.h"
#include "actio/error.h"
#include "actio/supervisor.h"
#include "actio/timer.h"
#include "actors/core/actor_impl.h"
#include "actors/core/actor_internal.h"
#include "actors/core/bell.h"
#include "actors/core/burst.h"
#include "actors/core/deadline.h"
#include "actors/core/future_internal.h"
#include "actors/core/runtime.h"
#include "base/clock.h"
#include "base/debug.h"
#include "base/park.h"
#include "mailbox/mailbox.h"

/* ---- runtime ---- */

static const actio__send_ops send_ops;

int actio_runtime_create(actio_runtime **out, const actio_runtime_opts *opts) {
  if (out == NULL)
    return ACTIO_EINVAL;
  actio_runtime *rt = calloc(1, sizeof *rt);
  if (rt == NULL)
    return ACTIO_ENOMEM;
  if (opts != NULL)
    rt->opts = *opts;
  int rc = actio__timer_create(&rt->timer, &send_ops);
  if (rc != 0) {
    free(rt);
    return rc;
  }
  pthread_mutex_init(&rt->mu, NULL);
  pthread_mutex_init(&rt->stop_mu, NULL);
  pthread_mutex_init(&rt->reg_mu, NULL);
  *out = rt;
  return 0;
}

/* An actor's allocation and locks, shared by instances and addresses. NULL:
 * out of memory. */
static actio_actor *actor_alloc(actio_runtime *rt, const char *name) {
  actio__meter *meters = actio__meters_new();
  actio_actor *a = meters != NULL ? calloc(1, sizeof *a) : NULL;
  if (a == NULL) {
    free(meters);
    return NULL;
  }
  a->meters = meters;
  a->meter_shares = actio__meter_shares();
  a->rt = rt;
  pthread_mutex_init(&a->stop_mu, NULL);
  pthread_mutex_init(&a->fail_mu, NULL);
  pthread_mutex_init(&a->init_mu, NULL);
  pthread_cond_init(&a->init_cv, NULL);
  pthread_mutex_init(&a->fin_mu, NULL);
  actio__cond_init(&a->fin_cv); /* actio__actor_pause waits on it */
  atomic_init(&a->refs, 1); /* the runtime's list's */
  a->name = strdup(name);
  return a;
}

/* Puts a at the head of rt's list (newest first). Under rt->mu. */
static void list_push(actio_runtime *rt, actio_actor *a) {
  a->prev = rt->actors;
  a->next = NULL;
  if (rt->actors != NULL)
    rt->actors->next = a;
  rt->actors = a;
}


static void wake_all(actio_actor *a);
static void set_abort(actio_actor *a);

/* Closes a's mailbox. A stop-now may close it while another thread's stop
 * does (hurrying a drain): CK's flag store is a plain store to TSan, so the
 * closers take fin_mu. */
static void close_mailbox(actio_actor *a) {
  pthread_mutex_lock(&a->fin_mu);
  actio__mbox_close(a->mb);
  pthread_mutex_unlock(&a->fin_mu);
}

/* Stop-now, before any actor is joined: every mailbox closes at once (no
 * message is accepted anywhere, no failure reaches a supervisor), what was
 * accepted is cancelled, and socket workers leave their transfers. Also
 * what makes a stop in progress on another thread (draining a stalled
 * server) give up waiting. The list only grows and is freed with the
 * runtime, so it is walked after the lock. */
static void abort_all(actio_actor *list) {
  for (actio_actor *a = list; a != NULL; a = a->prev) {
    if (a->addr != NULL) { /* no restart comes: its waiting senders give up */
      actio__address_move(a, NULL, 0);
      continue;
    }
    set_abort(a);
    close_mailbox(a);
    wake_all(a);
  }
}

static _Thread_local actio_actor *current_actor;

int actio_runtime_stop(actio_runtime *rt, actio_stop_mode mode) {
  if (rt == NULL || (mode != ACTIO_STOP_DRAIN && mode != ACTIO_STOP_NOW))
    return ACTIO_EINVAL;
  pthread_mutex_lock(&rt->mu);
  actio__sched *sched = rt->sched;
  /* Its own threads would wait for themselves. */
  if ((current_actor != NULL && current_actor->rt == rt) ||
      (sched != NULL && actio__sched_current() == sched) ||
      actio__timer_current(rt->timer)) {
    pthread_mutex_unlock(&rt->mu);
    return ACTIO_ESTATE;
  }
  rt->closing = 1;
  /* Relaxed: a flag the timer's thread polls; it orders nothing. */
  atomic_store_explicit(&rt->timers_off, 1, memory_order_relaxed);
  actio_actor *list = rt->actors;
  pthread_mutex_unlock(&rt->mu);
  if (mode == ACTIO_STOP_NOW)
    abort_all(list);
  pthread_mutex_lock(&rt->stop_mu);
  if (!rt->stopped) {
    /* Newest first (reverse start order): an older actor draining may still
     * send to a newer one, which must refuse with ACTIO_ECLOSED rather than
     * be gone. A supervisor's children go with it, in its own order (a
     * restarted child is newer than its elder siblings, yet must stop after
     * them); then whatever is left. No supervisor restarts anything from
     * here on: spawns are refused (closing), and it knows. */
    for (actio_actor *it = list; it != NULL; it = it->prev)
      if (it->addr == NULL && atomic_load_explicit(&it->owned, memory_order_acquire) == 0)
        actio_actor_stop(it, mode);
    for (actio_actor *it = list; it != NULL; it = it->prev)
      if (it->addr == NULL)
        actio_actor_stop(it, mode);
    /* Every scheduled actor has finished: its threads find nothing to run.
     * (No spawn makes the scheduler any more: closing.) */
    pthread_mutex_lock(&rt->mu);
    sched = rt->sched;
    pthread_mutex_unlock(&rt->mu);
    actio__sched_stop(sched);
    /* Then the timer, cancelling the futures that still wait for their
     * deadline: one may still run callbacks into an actor (its metrics). */
    actio__timer_stop(rt->timer);
    rt->stopped = 1;
  }
  pthread_mutex_unlock(&rt->stop_mu);
  return 0;
}

void actio_runtime_destroy(actio_runtime *rt) {
  if (rt == NULL)
    return;
  actio_runtime_stop(rt, ACTIO_STOP_DRAIN); /* nothing, if stopped already */
  actio__sched_destroy(rt->sched);
  actio__timer_destroy(rt->timer);
  for (actio_actor *a = rt->actors; a != NULL;) {
    actio_actor *prev = a->prev;
    actio__actor_free(a);
    a = prev;
  }
  actio__names_free(rt);
  pthread_mutex_destroy(&rt->reg_mu);
  pthread_mutex_destroy(&rt->stop_mu);
  pthread_mutex_destroy(&rt->mu);
  free(rt);
}

int actio__runtime_closing(actio_runtime *rt) {
  pthread_mutex_lock(&rt->mu);
  int closing = rt->closing;
  pthread_mutex_unlock(&rt->mu);
  return closing;
}

uint64_t actio_runtime_dead_letters(const actio_runtime *rt) {
  return atomic_load_explicit(&((actio_runtime *)rt)->dead_letters,
                              memory_order_relaxed);
}

/* ---- workers ---- */

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
  actio__count(&actio__meter_mine(a)->dropped);
}

static void deliver(actio_actor *a, void *ctx, actio__mbox_msg *m) {
  actio_future *reply = m->b;
  if (reply != NULL && actio_future_is_done(reply)) {
    discard(a, m, "asker cancelled before the message was handled");
    return;
  }
  actio__request_begin(a, reply);
  int rc = a->b->handle(a, ctx, m->a, reply);
  if (rc < 0) {
    actio__count(&actio__meter_mine(a)->failed);
    if (rc == ACTIO_EFATAL)
      actio_actor_fail(a, rc, "handler reported a fatal error");
    if (reply != NULL)
      actio_future_fail(reply, rc, "actor %s: handler failed: %s", a->name,
                        actio_strerror(rc));
  } else {
    actio__count(&actio__meter_mine(a)->handled);
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

/* The actor this thread works for, if any (declared above), and its
 * worker. */
static _Thread_local struct worker *current_worker;

actio_actor *actio_actor_self(void) { return current_actor; }

int actio__actor_is_self(const actio_actor *a) {
  return current_actor != NULL && current_actor == actio__instance(a);
}

/* Handles one popped message, or cancels it when stopping now. */
static void take(actio_actor *a, void *ctx, actio__mbox_msg *m) {
  if (atomic_load_explicit(&a->abort, memory_order_acquire))
    discard(a, m, "stopped before the message was handled");
  else
    deliver(a, ctx, m);
}

/* Messages a consumer takes at once when it is its mailbox's only one. */
enum { TAKE_BATCH = 16 };

/* The loop of a worker that sleeps on its mailbox. An actor's only worker
 * takes the run of messages ready at once (one claim on the mailbox for
 * them all); several take one each, so that none holds messages another
 * idle worker could handle. */
static void mailbox_loop(actio_actor *a, worker *w) {
  size_t max = a->nworkers == 1 ? TAKE_BATCH : 1;
  for (;;) {
    actio__mbox_msg m[TAKE_BATCH];
    size_t n = 0;
    int rc = actio__mbox_pop_many(a->mb, m, max, &n, -1);
    if (rc == ACTIO_ECLOSED)
      return; /* closed and drained */
    for (size_t i = 0; i < n; i++)
      take(a, w->ctx, &m[i]);
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

/* Advertises that w waits (a sender should wake it), then says whether
 * the mailbox is empty, so that it may sleep: a seq_cst store, then the
 * depth check, pairs with the sender, which publishes its message (an
 * atomic swap) before it looks for waiting workers; one of the two sees
 * the other. */
static int advertise(actio_actor *a, worker *w) {
  atomic_store_explicit(&w->waiting, 1, memory_order_seq_cst);
  /* Store-load: CK's depth read below is a plain load, and a seq_cst
   * store alone does not order it on every architecture. */
  atomic_thread_fence(memory_order_seq_cst);
  return actio__mbox_depth(a->mb) == 0;
}

/* The full() a worker of `a` heeds now: none once stopping now, when it
 * discards what waits, full or not. */
static int (*full_now(actio_actor *a))(actio_actor *, void *) {
  return atomic_load_explicit(&a->abort, memory_order_acquire) ? NULL : a->b->full;
}

/* The loop of a worker that sleeps in its own I/O wait: it takes what the
 * mailbox holds (a batch at a time, so its transfers keep moving), then
 * waits, advertising that a sender should wake it. */
static void socket_loop(actio_actor *a, worker *w) {
  const actio_behavior *b = a->b;
  for (;;) {
    int closed = 0;
    /* A stop-now discards what waits, full or not. A draining stop keeps
     * the bound: a worker leaves only once the mailbox is empty and its
     * own work done, so a full one still has the others' backlog to take
     * as its work ends. */
    int (*full)(actio_actor *, void *) = full_now(a);
    for (int i = 0; i < 256 && !(full && full(a, w->ctx)); i++) {
      actio__mbox_msg m;
      int rc = actio__mbox_pop(a->mb, &m, 0);
      if (rc == ACTIO_ECLOSED)
        closed = 1;
      if (rc != 0)
        break;
      take(a, w->ctx, &m);
    }
    if (closed && (atomic_load_explicit(&a->abort, memory_order_acquire) ||
                   !b->busy(a, w->ctx)))
      return;
    /* A full worker waits on its own I/O without advertising: senders wake
     * one with room. Should the wait free a slot before it sleeps, it
     * advertises then (actio__wait_may_sleep). */
    int room = !(full && full(a, w->ctx)), empty = 0;
    if (room)
      empty = advertise(a, w);
    else if (actio__mbox_depth(a->mb) > 0)
      /* Full, with messages left (perhaps our own callbacks' sends, which
       * woke nobody): pass the wake-up on to a worker with room. */
      wake_another(a, w);
    if ((!room || empty) && !closed)
      b->wait(a, w->ctx);
    if (closed) /* draining: wait for the work in flight, but not forever */
      b->wait(a, w->ctx);
    atomic_store_explicit(&w->waiting, 0, memory_order_relaxed);
  }
}

int actio__wait_may_sleep(actio_actor *a) {
  worker *w = current_worker;
  ACTIO__ASSERT(w != NULL && w->actor == a && a->b->wait != NULL);
  /* Advertised: a send wakes it. (Not any more, as a sender cleared it:
   * its wake() is due, and the poll returns at once.) */
  if (atomic_load_explicit(&w->waiting, memory_order_relaxed))
    return 1;
  int (*full)(actio_actor *, void *) = full_now(a);
  if (full != NULL && full(a, w->ctx))
    return 1; /* still full: its own I/O frees a slot and ends the wait */
  /* Entered full, and a slot freed since (a timer, a cancel, a request
   * ended before the sleep): no sender would wake it now. */
  return advertise(a, w);
}


/* The mailbox's wake hook for socket workers: wakes one that waits. A
 * worker sending to its own actor (a completion's callback starting the
 * next request) takes the message itself, without a hop to another thread:
 * it is always woken, in its wait or not (the behavior knows that on its
 * own thread this is a note, no system call), because the callback may run
 * inside its wait, before the wait would sleep; it pops as soon as that
 * returns. If it is full as well, another worker is woken: the slot the
 * callback's completion frees may not be free yet. */
static void wake_one(void *arg) {
  actio_actor *a = arg;
  worker *me = current_worker;
  if (me != NULL && me->actor == a) {
    (void)claim_waiting(me); /* nobody else need wake it now */
    /* live is written on this thread only: no lock needed to read it. */
    if (me->live)
      a->b->wake(a, me->ctx);
    if (!(a->b->full && a->b->full(a, me->ctx)))
      return;
  }
  wake_another(a, me);
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
  actio__thread_name(a->name, (int)(w - a->workers));
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

/* ---- scheduled actors ---- */

/* Messages a scheduled actor handles before the others get their turn. */
enum { RUN_BATCH = 64 };

static actio_actor *of_task(actio__task *t) {
  return (actio_actor *)(void *)((char *)t - offsetof(actio_actor, task));
}

/* A batch of a scheduled actor's messages, on a scheduler thread. */
static int scheduled_run(actio__task *t) {
  actio_actor *a = of_task(t);
  actio_actor *outer = current_actor; /* a helping thread runs us nested */
  current_actor = a;
  int more = 0;
  for (unsigned i = 0;;) {
    if (i >= RUN_BATCH) {
      more = 1;
      break;
    }
    actio__mbox_msg m[TAKE_BATCH];
    size_t n = 0;
    size_t want = RUN_BATCH - i < TAKE_BATCH ? RUN_BATCH - i : TAKE_BATCH;
    int rc = actio__mbox_pop_many(a->mb, m, want, &n, 0);
    if (rc == 0) {
      for (size_t j = 0; j < n; j++)
        take(a, a->ctx, &m[j]);
      i += (unsigned)n;
      continue;
    }
    if (rc == ACTIO_ECLOSED) { /* stopped and drained: this was the last run */
      actio__task_done(t);
      current_actor = outer;
      /* The last touch of a: its stopper may free it once it sees this. */
      pthread_mutex_lock(&a->fin_mu);
      a->finished = 1;
      pthread_cond_broadcast(&a->fin_cv);
      pthread_mutex_unlock(&a->fin_mu);
      return -1;
    }
    break;
  }
  current_actor = outer;
  return more;
}

static int scheduled_pending(actio__task *t) {
  return actio__mbox_ready(of_task(t)->mb);
}

/* The mailbox's hook after every accepted message: queues the actor. */
static void scheduled_wake(void *arg) {
  actio_actor *a = arg;
  actio__sched_wake(a->rt->sched, &a->task);
}

/* Waits for a stopped scheduled actor's last run. A scheduler thread runs
 * the others meanwhile: the actor may be queued behind them, or on this
 * very thread. */
static void wait_finished(actio_actor *a) {
  actio__sched *s = a->rt->sched;
  int helper = actio__sched_current() == s;
  pthread_mutex_lock(&a->fin_mu);
  while (!a->finished) {
    if (!helper) {
      pthread_cond_wait(&a->fin_cv, &a->fin_mu);
      continue;
    }
    pthread_mutex_unlock(&a->fin_mu);
    if (!actio__sched_help(s))
      sched_yield(); /* it runs on another scheduler thread: not for long */
    pthread_mutex_lock(&a->fin_mu);
  }
  pthread_mutex_unlock(&a->fin_mu);
}

/* After its mailbox closed, gives a scheduled actor its last run. An idle
 * actor with nothing left to handle has it here, on the stopper's thread:
 * the run only sees the mailbox closed and marks the task done, and a
 * scheduler thread woken for that would cost the stopper two thread hops
 * (a supervisor's restart, five hops, then takes three). With messages
 * left, or queued or running already, it has it on a scheduler thread,
 * where its handlers run. */
static void last_run(actio_actor *a) {
  actio__sched *s = a->rt->sched;
  if (!actio__sched_claim(&a->task))
    return; /* queued or running: that run or the next sees the close */
  /* The claim read the IDLE that the task's last run stored (seq_cst)
   * after its pops, and the close just made on this thread set the
   * mailbox's end for good, so the depth read here is exact. */
  if (actio__mbox_depth(a->mb) == 0)
    actio__sched_run(s, &a->task);
  else
    actio__sched_queue(s, &a->task);
}

/* Starts a scheduled actor: the scheduler (made once per runtime), its task
 * and its behavior's context, made here on the spawning thread. */
static int scheduled_start(actio_actor *a) {
  actio_runtime *rt = a->rt;
  int rc = 0;
  pthread_mutex_lock(&rt->mu);
  if (rt->closing) /* its scheduler may be stopped already */
    rc = ACTIO_ECLOSED;
  else if (rt->sched == NULL)
    rc = actio__sched_create(&rt->sched, rt->opts.threads);
  pthread_mutex_unlock(&rt->mu);
  if (rc != 0)
    return rc;
  actio__task_init(&a->task, scheduled_run, scheduled_pending);
  actio__mbox_set_wake(a->mb, scheduled_wake, a);
  if (a->b->worker_init != NULL) {
    actio_actor *outer = current_actor;
    current_actor = a;
    rc = a->b->worker_init(a, &a->ctx);
    current_actor = outer;
  }
  a->ctx_live = rc == 0;
  return rc;
}

static void scheduled_stop_ctx(actio_actor *a) {
  if (a->ctx_live && a->b->worker_stop != NULL)
    a->b->worker_stop(a, a->ctx);
  a->ctx_live = 0;
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
  if (o.workers == 0 && sockets)
    o.workers = 1; /* socket workers wait in their own loops */
  if (o.capacity == 0)
    o.capacity = 1024;
  if (o.spin == 0)
    o.spin = 256;

  int rc = ACTIO_ENOMEM;
  actio_actor *a = actor_alloc(rt, o.name ? o.name : "actor");
  if (a == NULL) {
    if (o.state_free != NULL)
      o.state_free(o.state);
    return ACTIO_ENOMEM;
  }
  a->b = b;
  a->state = o.state;
  a->state_free = o.state_free;
  a->nworkers = o.workers;
  a->workers = calloc(o.workers ? o.workers : 1, sizeof *a->workers);
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
  if (o.workers == 0 && (rc = scheduled_start(a)) != 0)
    goto fail_workers;

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
  list_push(rt, a);
  pthread_mutex_unlock(&rt->mu);
  *out = a;
  return 0;

fail_workers:
  /* Workers whose init succeeded sit in pop (or wait): closing lets them
   * run their worker_stop and leave. A scheduled actor never ran. */
  actio__mbox_close(a->mb);
  wake_all(a);
  join_workers(a);
  scheduled_stop_ctx(a);
fail_alloc:
  actio__actor_free(a);
  return rc;
}

/* On an address, what its instance holds is read under a pin; what it
 * points at lives as long as that instance. */
void *actio_actor_state(const actio_actor *a) {
  void *state = actio__pin(a)->state;
  actio__unpin(a);
  return state;
}

const char *actio_actor_name(const actio_actor *a) {
  const char *name = actio__pin(a)->name;
  actio__unpin(a);
  return name;
}

actio_runtime *actio_actor_runtime(const actio_actor *a) { return a->rt; }

const actio_behavior *actio_actor_behavior(const actio_actor *a) {
  const actio_behavior *b = actio__pin(a)->b;
  actio__unpin(a);
  return b;
}

/* Pushes m. A scheduled actor drains only on scheduler threads, so a
 * scheduler thread that waits for its room runs queued actors meanwhile
 * rather than sleep through the time it could make room itself. */
static int push(actio_actor *a, actio__mbox_msg *m, int64_t timeout_ms) {
  int rc = actio__mbox_push(a->mb, m, 0);
  if (rc != ACTIO_EFULL || timeout_ms == 0)
    return rc;
  /* About to wait: what would drain the mailbox may be in this thread's
   * burst. */
  actio__burst_flush();
  actio__sched *s = a->nworkers == 0 ? actio__sched_current() : NULL;
  if (s == NULL || s != a->rt->sched)
    return actio__mbox_push(a->mb, m, timeout_ms);
  int64_t deadline = actio__deadline_ns(timeout_ms);
  for (;;) {
    if ((rc = actio__mbox_push(a->mb, m, 0)) != ACTIO_EFULL)
      return rc;
    if (deadline >= 0 && actio__now_ns() >= deadline)
      return ACTIO_ETIMEDOUT;
    if (!actio__sched_help(s)) {
      actio__burst_flush(); /* what the actors it ran held */
      rc = actio__mbox_push(a->mb, m, 1); /* it drains elsewhere: wait a little */
      if (rc != ACTIO_ETIMEDOUT)
        return rc;
    }
  }
}

/* How long a send waiting for a restart on an actor's own thread sleeps
 * at a time (see send_moved). */
#define MOVE_SLICE_NS (10 * ACTIO__NS_PER_MS)

/* A send to an address whose instance *to refused it (stopped): while its
 * supervisor restarts it, waits until `deadline` (-1: none; timeout_ms 0:
 * no wait) for the next instance, and sends there. 0 with *to the instance
 * that took m, else ACTIO_ECLOSED (stopped for good), ACTIO_EAGAIN
 * (restarting, and no time to wait, or the sender's own actor is
 * stopping), ACTIO_ETIMEDOUT, or the push's error. Only the slow path
 * takes the address's lock.
 *
 * An actor's own thread must not sleep through the restart: the restart
 * may be waiting for that very thread (a one-for-all supervisor draining
 * the sender's actor, a child sending to its own address, the last run of
 * a scheduled child that only this scheduler thread can give). So it
 * waits in slices: between them a scheduler thread runs queued actors, as
 * push does, and any actor's thread gives up once its own mailbox is
 * closed, its actor stopping. */
static int send_moved(actio_actor *a, actio_actor **to, actio__mbox_msg *m,
                      int64_t timeout_ms, int64_t deadline) {
  actio__addr *ad = a->addr;
  actio_actor *me = current_actor;
  actio__sched *s = me != NULL ? actio__sched_current() : NULL;
  for (;;) {
    int rc = 0;
    actio_actor *cur;
    pthread_mutex_lock(&ad->mu);
    /* Relaxed: cur changes only under the lock. */
    while ((cur = atomic_load_explicit(&ad->cur, memory_order_relaxed)) == *to &&
           rc == 0) {
      int64_t now = actio__now_ns(), until = deadline;
      if (!ad->moving)
        rc = ACTIO_ECLOSED;
      else if (timeout_ms == 0 || (me != NULL && actio__mbox_is_closed(me->mb)))
        rc = ACTIO_EAGAIN;
      else if (deadline >= 0 && now >= deadline)
        rc = ACTIO_ETIMEDOUT;
      if (rc != 0 || me == NULL) {
        if (rc == 0)
          actio__cond_wait_until(&ad->cv, &ad->mu, until);
        continue;
      }
      if (s != NULL) { /* run what is queued here, the restart's part too */
        pthread_mutex_unlock(&ad->mu);
        int ran = actio__sched_help(s);
        pthread_mutex_lock(&ad->mu);
        if (ran)
          continue;
      }
      if (until < 0 || until > now + MOVE_SLICE_NS)
        until = now + MOVE_SLICE_NS;
      actio__cond_wait_until(&ad->cv, &ad->mu, until);
    }
    pthread_mutex_unlock(&ad->mu);
    if (rc != 0)
      return rc;
    *to = cur;
    rc = push(cur, m, deadline < 0 ? -1 : timeout_ms == 0 ? 0 : actio__ms_until(deadline));
    if (rc == ACTIO_EFULL && timeout_ms != 0)
      rc = ACTIO_ETIMEDOUT; /* the time went on the restart */
    if (rc != ACTIO_ECLOSED)
      return rc;
  }
}

/* Pushes a message to a, or to the instance an address stands for; refused
 * by a stopped actor, it is a dead letter unless it is the library's own
 * (dead 0). On success `track` (may be NULL) is timed as a request of the
 * instance that took it, while that instance is pinned, and *took (unless
 * NULL) is that instance, referenced. */
static int send(actio_actor *a, void *msg, actio_future *reply,
                int64_t timeout_ms, int dead, actio_future *track,
                actio_actor **took) {
  actio__mbox_msg m = {msg, reply};
  actio_actor *t = actio__pin(a);
  /* One deadline for the whole send: time spent waiting for room in an
   * instance that then stopped counts against the wait for the next. */
  int64_t deadline = a->addr != NULL ? actio__deadline_ns(timeout_ms) : -1;
  int rc = push(t, &m, timeout_ms);
  if (rc == ACTIO_ECLOSED && a->addr != NULL)
    rc = send_moved(a, &t, &m, timeout_ms, deadline);
  if (rc == 0) {
    actio__count(&actio__meter_mine(t)->accepted);
    if (track != NULL)
      actio__actor_track(t, track);
    if (took != NULL) {
      actio__actor_ref(t);
      *took = t;
    }
  }
  /* Still pinned: an address stopped for good may be freed by the last
   * call out, and the hook is shown it. */
  if (rc == ACTIO_ECLOSED && dead) {
    actio__count(&a->rt->dead_letters);
    if (a->rt->opts.dead_letter != NULL)
      a->rt->opts.dead_letter(a->rt->opts.dead_letter_arg, a, msg);
  }
  actio__unpin(a);
  return rc;
}

int actio__tell_quiet(actio_actor *a, void *msg, int64_t timeout_ms) {
  return send(a, msg, NULL, timeout_ms, 0, NULL, NULL);
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
  int rc;
  if (bell != NULL) {
    /* a is an instance: what binds the request to its worker holds it */
    rc = actio__bell_push(bell, link, 1);
    if (rc == 0 && reply != NULL)
      actio__actor_track(a, reply);
  } else {
    rc = send(a, msg, NULL, timeout_ms, 1, reply, NULL);
  }
  if (rc != 0) {
    actio_future_unref(reply);
    return rc;
  }
  if (reply != NULL)
    *out = reply;
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

int actio__request_self(actio_actor *a, void *msg, actio_future *reply,
                        actio_future **out, int (*room)(void *worker)) {
  worker *me = current_worker;
  /* me->actor is this thread's instance: alive while its worker runs. A
   * closed mailbox (a stop under way) takes nothing new; neither does
   * this path. */
  actio_actor *t = me != NULL ? me->actor : NULL;
  if (t == NULL || t != actio__instance(a) || !me->live ||
      atomic_load_explicit(&t->abort, memory_order_acquire) ||
      actio__mbox_is_closed(t->mb) || !room(me->ctx))
    return ACTIO_EAGAIN;
  int rc = actio__deadline_inherit(t->rt, reply);
  if (rc != 0)
    return rc;
  actio_future_ref(reply); /* the caller's; msg holds the other */
  actio__count(&actio__meter_mine(t)->accepted);
  actio__actor_track(t, reply);
  actio__mbox_msg m = {msg, NULL}; /* as request() queues it: msg holds reply */
  deliver(t, me->ctx, &m);
  *out = reply;
  return 0;
}

int actio_tell(actio_actor *a, void *msg, int64_t timeout_ms) {
  if (a == NULL)
    return ACTIO_EINVAL;
  return send(a, msg, NULL, timeout_ms, 1, NULL, NULL);
}

int actio_ask(actio_actor *a, void *msg, int64_t timeout_ms, actio_future **out) {
  return actio__ask_at(a, msg, timeout_ms, out, NULL);
}

int actio__ask_at(actio_actor *a, void *msg, int64_t timeout_ms, actio_future **out,
                  actio_actor **took) {
  if (a == NULL || out == NULL)
    return ACTIO_EINVAL;
  actio_future *f;
  int rc = actio_future_create(&f);
  if (rc != 0)
    return rc;
  actio_future_ref(f); /* the message's reference, dropped by the worker */
  rc = send(a, msg, f, timeout_ms, 1, f, took);
  if (rc != 0) {
    actio_future_unref(f);
    actio_future_unref(f);
    return rc;
  }
  *out = f;
  return 0;
}

/* Stop-now's flag, and the end of an actio__actor_pause. */
static void set_abort(actio_actor *a) {
  atomic_store_explicit(&a->abort, 1, memory_order_release);
  pthread_mutex_lock(&a->fin_mu);
  pthread_cond_broadcast(&a->fin_cv);
  pthread_mutex_unlock(&a->fin_mu);
}

static int stop_instance(actio_actor *a, actio_stop_mode mode);

int actio_actor_stop(actio_actor *a, actio_stop_mode mode) {
  if (a == NULL)
    return ACTIO_EINVAL;
  int rc = stop_instance(actio__pin(a), mode);
  actio__unpin(a);
  return rc;
}

static int stop_instance(actio_actor *a, actio_stop_mode mode) {
  pthread_t self = pthread_self();
  for (unsigned i = 0; i < a->nworkers; i++)
    if (a->workers[i].started && pthread_equal(a->workers[i].thread, self))
      return ACTIO_ESTATE;
  if (a->nworkers == 0 && current_actor == a)
    return ACTIO_ESTATE; /* its own handler, on a scheduler thread */
  int first = 0;
  pthread_mutex_lock(&a->stop_mu);
  if (!a->stopped) {
    if (mode == ACTIO_STOP_NOW)
      set_abort(a);
    close_mailbox(a);
    if (a->nworkers == 0) {
      last_run(a);
      wait_finished(a);
      scheduled_stop_ctx(a);
    }
    wake_all(a);
    join_workers(a);
    a->stopped = 1;
    first = 1;
  }
  pthread_mutex_unlock(&a->stop_mu);
  if (first) { /* its names go, its monitors hear of it */
    actio__names_release(a);
    actio__watchers_fire(a);
  }
  return 0;
}

int actio__actor_stopping_now(const actio_actor *a) {
  int now = atomic_load_explicit(&actio__pin(a)->abort, memory_order_acquire);
  actio__unpin(a);
  return now;
}

int actio__actor_pause(actio_actor *a, int64_t ms) {
  int64_t deadline = actio__deadline_ns(ms);
  pthread_mutex_lock(&a->fin_mu);
  int now;
  while (!(now = atomic_load_explicit(&a->abort, memory_order_acquire)) &&
         actio__cond_wait_until(&a->fin_cv, &a->fin_mu, deadline) != ETIMEDOUT)
    ;
  pthread_mutex_unlock(&a->fin_mu);
  return now ? ACTIO_ECANCELED : 0;
}

/* ---- addresses ---- */

int actio__address_create(actio_actor *first, const char *name, actio_actor **out) {
  actio_actor *inst = actio__instance(first);
  actio_runtime *rt = inst->rt;
  actio_actor *a = actor_alloc(rt, name);
  actio__addr *ad = calloc(1, sizeof *ad);
  if (a == NULL || a->name == NULL || ad == NULL) {
    free(ad);
    if (a != NULL)
      actio__actor_free(a);
    return ACTIO_ENOMEM;
  }
  pthread_mutex_init(&ad->mu, NULL);
  actio__cond_init(&ad->cv);
  atomic_init(&ad->cur, inst);
  a->addr = ad;
  /* In the runtime's list, to be freed with it; there is nothing to stop. */
  pthread_mutex_lock(&rt->mu);
  list_push(rt, a);
  pthread_mutex_unlock(&rt->mu);
  *out = a;
  return 0;
}

int actio__is_address(const actio_actor *a) { return a->addr != NULL; }

void actio__address_move(actio_actor *addr, actio_actor *to, int moving) {
  actio__addr *ad = addr->addr;
  pthread_mutex_lock(&ad->mu);
  /* seq_cst: the instance's making before its sends (release), and the
   * store before a retirer's look at the users (see actio__pin). */
  if (to != NULL)
    atomic_store_explicit(&ad->cur, actio__instance(to), memory_order_seq_cst);
  ad->moving = moving;
  pthread_cond_broadcast(&ad->cv);
  pthread_mutex_unlock(&ad->mu);
  if (to == NULL && !moving) /* settled for good: its names go */
    actio__names_release(addr);
}

/* ---- failure ---- */

static void fail_instance(actio_actor *a, int code, const char *why);

void actio_actor_fail(actio_actor *a, int code, const char *why) {
  if (a == NULL)
    return;
  fail_instance(actio__pin(a), code, why);
  actio__unpin(a);
}

static void fail_instance(actio_actor *a, int code, const char *why) {
  pthread_mutex_lock(&a->fail_mu);
  if (a->is_failed) {
    pthread_mutex_unlock(&a->fail_mu);
    return;
  }
  a->is_failed = 1;
  a->fail_code = code;
  a->fail_why = strdup(why ? why : actio_strerror(code));
  /* Under the lock: once actio__actor_set_monitor(a, NULL, NULL) returns,
   * no call of the old hook is in flight, so its argument may be freed. */
  if (a->monitor != NULL)
    a->monitor(a->monitor_arg, a, ACTIO_SUP_CHILD_FAILED, code,
               why ? why : actio_strerror(code));
  pthread_mutex_unlock(&a->fail_mu);
}

void actio__actor_notice(actio_actor *a, int kind, int code, const char *why) {
  actio_actor *m = actio__pin(a);
  pthread_mutex_lock(&m->fail_mu);
  if (m->monitor != NULL && !m->is_failed)
    m->monitor(m->monitor_arg, m, kind, code, why ? why : actio_strerror(code));
  pthread_mutex_unlock(&m->fail_mu);
  actio__unpin(a);
}

int actio_actor_failed(const actio_actor *a) {
  actio_actor *m = actio__pin(a);
  pthread_mutex_lock(&m->fail_mu);
  int failed = m->is_failed;
  pthread_mutex_unlock(&m->fail_mu);
  actio__unpin(a);
  return failed;
}

void actio__actor_set_monitor(actio_actor *a, actio__fail_fn fn, void *arg) {
  ACTIO__ASSERT(a->addr == NULL);
  pthread_mutex_lock(&a->fail_mu);
  a->monitor = fn;
  a->monitor_arg = arg;
  if (a->is_failed && fn != NULL)
    fn(arg, a, ACTIO_SUP_CHILD_FAILED, a->fail_code,
       a->fail_why ? a->fail_why : actio_strerror(a->fail_code));
  pthread_mutex_unlock(&a->fail_mu);
}

int actio__actor_monitor_call(actio_actor *a, actio__fail_fn hook,
                              int (*fn)(void *hook_arg, void *arg), void *arg) {
  ACTIO__ASSERT(a->addr == NULL);
  pthread_mutex_lock(&a->fail_mu);
  int rc = a->monitor == hook ? fn(a->monitor_arg, arg) : ACTIO_EINVAL;
  pthread_mutex_unlock(&a->fail_mu);
  return rc;
}

void actio__actor_set_owned(actio_actor *a) {
  ACTIO__ASSERT(a->addr == NULL);
  atomic_store_explicit(&a->owned, 1, memory_order_release);
}

/* ---- delayed and periodic sends (the timer fires them: deadline.c) ---- */

/* A delayed send: 48 bytes, a block of the timer's pool while it waits. */
struct actio_timer {
  actio__tnode n;
  actio_actor *a; /* as given, referenced (actio__actor_ref) until n is
                     released: an address reaches its instance at each fire */
  void *msg;      /* the message not delivered yet, or NO_MSG */
};

_Static_assert(sizeof(struct actio_timer) <= ACTIO__TBLOCK, "a send fits a block");

/* A periodic send: 64 bytes, from the heap. */
typedef struct every_timer {
  struct actio_timer base;
  actio_tick_fn make;
  void *arg;
} every_timer;

/* Nothing held: any pointer, NULL included, may be a message. */
static const char no_msg;
#define NO_MSG ((void *)&no_msg)

/* Frees a message that will never be delivered, with the behavior's drop. */
static void timer_drop_msg(actio_timer *tm) {
  void *msg = tm->msg;
  if (msg == NO_MSG)
    return;
  tm->msg = NO_MSG;
  actio_actor *to = actio__pin(tm->a);
  if (to->b->drop != NULL)
    to->b->drop(to, msg);
  actio__unpin(tm->a);
}

static void timer_drop(actio__tnode *n) { timer_drop_msg((actio_timer *)n); }

/* Frees k ended sends: the periodic ones to the heap, the delayed ones to
 * the timer's pool in one go; one release of each actor per run of sends
 * to it. */
static void timer_release(actio__tnode **ns, size_t k) {
  if (k == 0)
    return;
  actio__timer *t = ((actio_timer *)ns[0])->a->rt->timer;
  void *blocks[64];
  size_t nblocks = 0;
  actio_actor *a = NULL;
  uint32_t refs = 0;
  for (size_t i = 0; i < k; i++) {
    actio_timer *tm = (actio_timer *)ns[i];
    if (tm->a != a) {
      actio__actor_unref_n(a, refs);
      a = tm->a;
      refs = 0;
    }
    refs++;
    if (ns[i]->period != 0) {
      free(ns[i]);
    } else {
      blocks[nblocks++] = ns[i];
      if (nblocks == sizeof blocks / sizeof *blocks) {
        actio__tblock_free(t, blocks, nblocks);
        nblocks = 0;
      }
    }
  }
  actio__tblock_free(t, blocks, nblocks);
  actio__actor_unref_n(a, refs);
}

static int64_t timer_fire(actio__tnode *n, int64_t now) {
  actio_timer *tm = (actio_timer *)n;
  actio_actor *a = tm->a;
  /* Relaxed: see actio_runtime_stop. A stop drops what comes due. */
  if (atomic_load_explicit(&a->rt->timers_off, memory_order_relaxed)) {
    timer_drop_msg(tm);
    return ACTIO__SEND_DONE;
  }
  if (tm->msg == NO_MSG) { /* a periodic send's new tick */
    every_timer *ev = (every_timer *)tm;
    tm->msg = ev->make(ev->arg);
  }
  int rc = send(a, tm->msg, NULL, 0, 1, NULL, NULL);
  if (rc == ACTIO_ECLOSED) { /* a dead letter, counted and shown by send */
    timer_drop_msg(tm);
    return ACTIO__SEND_DONE;
  }
  if (rc != 0) /* full, or a restart under way: tried again after a pause */
    return ACTIO__SEND_RETRY;
  tm->msg = NO_MSG;
  if (n->period == 0)
    return ACTIO__SEND_DONE;
  int64_t due = n->expire + n->period;
  return due > now ? due : now + 1;
}

static const actio__send_ops send_ops = {.fire = timer_fire, .drop = timer_drop,
                                         .release = timer_release};

/* Whether sends to `a` are refused now: the runtime stopping, or a
 * stopped actor (an address's instance may be replaced: its fire finds
 * out). Relaxed: a stop's flag, ordered by nothing else. */
static int timers_refused(const actio_actor *a) {
  return atomic_load_explicit(&a->rt->timers_off, memory_order_relaxed) ||
         (a->addr == NULL && actio__mbox_is_closed(a->mb));
}

int actio_send_after(actio_actor *a, void *msg, int64_t delay_ms, actio_timer **out) {
  if (a == NULL || delay_ms < 0)
    return ACTIO_EINVAL;
  if (timers_refused(a))
    return ACTIO_ECLOSED;
  const actio_timer init = {.n = {.kind = ACTIO__TK_SEND}, .a = a, .msg = msg};
  actio__actor_ref(a); /* a replaced instance stays until the send ends */
  /* The handle is set before the send can fire: a handler may read it. */
  int rc = actio__send_arm_new(a->rt->timer, &init, sizeof init, delay_ms, out);
  if (rc != 0)
    actio__actor_unref(a);
  return rc;
}

int actio_send_every(actio_actor *a, int64_t period_ms, actio_tick_fn make, void *arg,
                     actio_timer **out) {
  if (a == NULL || make == NULL || period_ms < 1 || period_ms > UINT32_MAX)
    return ACTIO_EINVAL;
  if (timers_refused(a))
    return ACTIO_ECLOSED;
  every_timer *ev = malloc(sizeof *ev);
  if (ev == NULL)
    return ACTIO_ENOMEM;
  *ev = (every_timer){.base = {.n = {.kind = ACTIO__TK_SEND, .period = (uint32_t)period_ms},
                               .a = a, .msg = NO_MSG},
                      .make = make, .arg = arg};
  /* The handle is set before the arming: the first fire may read it (a
   * make function or a handler that cancels). */
  actio_timer *before = NULL;
  if (out != NULL) {
    before = *out;
    *out = &ev->base;
  }
  actio__actor_ref(a); /* a replaced instance stays until the send ends */
  int rc = actio__send_arm(a->rt->timer, &ev->base.n, period_ms, out != NULL);
  if (rc != 0) {
    if (out != NULL)
      *out = before;
    free(ev);
    actio__actor_unref(a);
  }
  return rc;
}

int actio_timer_cancel(actio_timer *t) {
  if (t == NULL)
    return ACTIO_EINVAL;
  return actio__send_cancel(t->a->rt->timer, &t->n);
}

void actio_timer_release(actio_timer *t) {
  if (t != NULL)
    actio__send_release(t->a->rt->timer, &t->n);
}

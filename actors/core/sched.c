/* sched.c: the scheduler's threads, its shared queue, the next slot that
 * hands a thread from a sender to the actor it woke, and parking (see
 * sched.h). */
#include "actors/core/sched.h"

#include <ck_pr.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "actio/error.h"
#include "base/debug.h"
#include "base/park.h"

/* A task's states. LOOKING: its thread, done with a run, looks for work
 * that came meanwhile; NOTIFIED: a sender saw LOOKING and says some did.
 * Only that thread leaves either, so nothing else runs the task, nor frees
 * its actor, while the thread still reads it. */
enum { T_IDLE = 0, T_QUEUED = 1, T_DONE = 2, T_LOOKING = 3, T_NOTIFIED = 4 };

/* Polls of the shared queue before a thread with nothing to run parks:
 * about the time a short handler elsewhere takes to send it something. */
enum { SPIN_POLLS = 128 };

typedef struct sched_thread {
  actio__sched *s;
  pthread_t thread;
  actio__task *next; /* this thread's own: run after the current task */
} sched_thread;

struct actio__sched {
  pthread_mutex_t mu;       /* guards head and tail */
  actio__task *head, *tail; /* the shared queue */
  _Atomic uint32_t queued;  /* its length, read without the lock */
  actio__spinners polling;  /* threads polling for work, not parked */
  unsigned max_polling;     /* how many may: half the cores or threads */
  _Atomic int stopping;
  actio__event idle;        /* threads park here */
  unsigned nthreads, started;
  int joined;               /* the stopper's own */
  sched_thread *threads;
};

static _Thread_local sched_thread *me;

void actio__task_init(actio__task *t, actio__task_run_fn run,
                      actio__task_pending_fn pending) {
  t->run = run;
  t->pending = pending;
  atomic_init(&t->state, T_IDLE);
  t->next = NULL;
}

actio__sched *actio__sched_current(void) { return me != NULL ? me->s : NULL; }

/* Appends t to the shared queue and wakes a parked thread unless one is
 * looking for work already. */
static void push_shared(actio__sched *s, actio__task *t) {
  pthread_mutex_lock(&s->mu);
  t->next = NULL;
  if (s->tail != NULL)
    s->tail->next = t;
  else
    s->head = t;
  s->tail = t;
  /* Seq_cst: the count before the spinners' count is read; pairs with a
   * spinner that stops spinning and then reads the count. Under the lock,
   * so that a pop never counts down what was not counted up. */
  atomic_fetch_add_explicit(&s->queued, 1, memory_order_seq_cst);
  pthread_mutex_unlock(&s->mu);
  if (actio__spinners_count(&s->polling) == 0)
    actio__event_signal(&s->idle);
}

static actio__task *pop_shared(actio__sched *s) {
  if (atomic_load_explicit(&s->queued, memory_order_acquire) == 0)
    return NULL;
  pthread_mutex_lock(&s->mu);
  actio__task *t = s->head;
  if (t != NULL) {
    s->head = t->next;
    if (s->head == NULL)
      s->tail = NULL;
    t->next = NULL;
    atomic_fetch_sub_explicit(&s->queued, 1, memory_order_relaxed);
  }
  pthread_mutex_unlock(&s->mu);
  return t;
}

/* Wakes t (see actio__sched_wake); 1 if it was idle and is now the
 * caller's, queued in name only (QUEUED, in no queue). */
static int wake_claim(actio__task *t) {
  /* Seq_cst (load and CAS): the sender published its message with an
   * atomic swap before looking; a task going idle stores LOOKING, fences,
   * then looks for work. One of the two sees the other: a sender that sees
   * LOOKING tells the looking thread, which may have missed the message. */
  uint32_t st = atomic_load_explicit(&t->state, memory_order_seq_cst);
  for (;;) {
    if (st == T_LOOKING) {
      if (atomic_compare_exchange_strong_explicit(&t->state, &st, T_NOTIFIED,
                                                  memory_order_seq_cst,
                                                  memory_order_seq_cst))
        return 0;
    } else if (st != T_IDLE) {
      return 0; /* queued (it will look), told already, or done */
    } else if (atomic_compare_exchange_strong_explicit(&t->state, &st, T_QUEUED,
                                                       memory_order_seq_cst,
                                                       memory_order_seq_cst)) {
      return 1;
    }
  }
}

void actio__sched_wake(actio__sched *s, actio__task *t) {
  if (wake_claim(t))
    actio__sched_queue(s, t);
}

int actio__sched_claim(actio__task *t) { return wake_claim(t); }

void actio__sched_queue(actio__sched *s, actio__task *t) {
  if (me != NULL && me->s == s) {
    /* The sender's thread runs t next; a task displaced from the slot goes
     * where other threads can take it. */
    if (me->next != NULL)
      push_shared(s, me->next);
    me->next = t;
  } else {
    push_shared(s, t);
  }
}

void actio__task_done(actio__task *t) {
  atomic_store_explicit(&t->state, T_DONE, memory_order_release);
}

/* Runs t once, then requeues it, lets it go idle, or leaves it done. */
static void run_task(actio__sched *s, actio__task *t) {
  ACTIO__ASSERT(atomic_load_explicit(&t->state, memory_order_relaxed) == T_QUEUED);
  int more = t->run(t);
  if (more < 0) /* done: t may be freed by now */
    return;
  if (more) {
    push_shared(s, t); /* to the back: the others get their turn */
    return;
  }
  atomic_store_explicit(&t->state, T_LOOKING, memory_order_seq_cst);
  /* Store-load: LOOKING before the look at its mailbox (see wake). While
   * it looks, t is this thread's alone: its actor's stop cannot have its
   * last run, so its stopper cannot free it (a supervised child's retired
   * instance: reading it after going IDLE read freed memory). */
  atomic_thread_fence(memory_order_seq_cst);
  uint32_t looking = T_LOOKING;
  if (!t->pending(t) &&
      atomic_compare_exchange_strong_explicit(&t->state, &looking, T_IDLE,
                                              memory_order_seq_cst,
                                              memory_order_relaxed))
    return; /* idle: from here on another may wake, run and free it */
  /* A send raced the idling (seen, or told): requeue it, at the back. */
  atomic_store_explicit(&t->state, T_QUEUED, memory_order_release);
  push_shared(s, t);
}

void actio__sched_run(actio__sched *s, actio__task *t) { run_task(s, t); }

/* After a thread took work from the shared queue: pushes made while
 * others polled woke nobody, so if work is left and none polls now, it
 * wakes one more thread. A burst thus spreads over the threads one wake-up
 * at a time (Go's wakep after a spinning thread finds work). */
static void pass_on(actio__sched *s) {
  if (atomic_load_explicit(&s->queued, memory_order_seq_cst) > 0 &&
      actio__spinners_count(&s->polling) == 0)
    actio__event_signal(&s->idle);
}

/* Polls for work, then parks. Returns a task, or NULL (look again). */
static actio__task *find_work(sched_thread *th) {
  actio__sched *s = th->s;
  /* Only a few threads poll; the others park at once, leaving the cores
   * to the threads with work (Go's rule: at most half of them). */
  if (actio__spinners_enter(&s->polling, s->max_polling)) {
    actio__spin spin = ACTIO__SPIN_INIT(SPIN_POLLS);
    do {
      actio__task *t = pop_shared(s);
      if (t != NULL) {
        actio__spinners_leave(&s->polling);
        pass_on(s);
        return t;
      }
      if (atomic_load_explicit(&s->stopping, memory_order_acquire))
        break;
    } while (actio__spin_once(&spin));
    actio__spinners_leave(&s->polling);
  }
  actio__waiter w;
  actio__event_prepare(&s->idle, &w);
  if (atomic_load_explicit(&s->queued, memory_order_seq_cst) > 0 ||
      atomic_load_explicit(&s->stopping, memory_order_acquire))
    actio__event_cancel(&s->idle, &w);
  else
    actio__event_wait(&s->idle, &w, -1);
  /* Woken for work (or it came before the sleep): take it, and pass the
   * wake on as a poller would. */
  actio__task *t = pop_shared(s);
  if (t != NULL)
    pass_on(s);
  return t;
}

static void *thread_main(void *arg) {
  sched_thread *th = arg;
  actio__sched *s = th->s;
  me = th;
  actio__thread_name("actio-sched", (int)(th - s->threads));
  for (;;) {
    actio__task *t = th->next;
    th->next = NULL;
    if (t == NULL)
      t = pop_shared(s);
    if (t == NULL)
      t = find_work(th);
    if (t != NULL) {
      run_task(s, t);
      continue;
    }
    if (atomic_load_explicit(&s->stopping, memory_order_acquire) &&
        atomic_load_explicit(&s->queued, memory_order_acquire) == 0)
      break;
  }
  me = NULL;
  return NULL;
}

int actio__sched_help(actio__sched *s) {
  if (me == NULL || me->s != s)
    return 0;
  actio__task *t = me->next;
  me->next = NULL;
  if (t == NULL)
    t = pop_shared(s);
  if (t == NULL)
    return 0;
  run_task(s, t);
  return 1;
}

int actio__sched_create(actio__sched **out, unsigned threads) {
  if (threads == 0) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    threads = n > 0 ? (unsigned)n : 1;
  }
  actio__sched *s = calloc(1, sizeof *s);
  sched_thread *ths = calloc(threads, sizeof *ths);
  if (s == NULL || ths == NULL) {
    free(s);
    free(ths);
    return ACTIO_ENOMEM;
  }
  pthread_mutex_init(&s->mu, NULL);
  actio__event_init(&s->idle);
  s->threads = ths;
  s->nthreads = threads;
  s->max_polling = threads / 2 < actio__spin_cap() ? threads / 2 : actio__spin_cap();
  if (s->max_polling == 0)
    s->max_polling = 1;
  int rc = 0;
  for (; s->started < threads; s->started++) {
    ths[s->started].s = s;
    int e = pthread_create(&ths[s->started].thread, NULL, thread_main,
                           &ths[s->started]);
    if (e != 0) {
      rc = -e;
      break;
    }
  }
  if (rc != 0) {
    actio__sched_destroy(s);
    return rc;
  }
  *out = s;
  return 0;
}

void actio__sched_stop(actio__sched *s) {
  if (s == NULL || s->joined)
    return;
  atomic_store_explicit(&s->stopping, 1, memory_order_seq_cst);
  actio__event_broadcast(&s->idle);
  for (unsigned i = 0; i < s->started; i++)
    pthread_join(s->threads[i].thread, NULL);
  s->joined = 1;
}

void actio__sched_destroy(actio__sched *s) {
  if (s == NULL)
    return;
  actio__sched_stop(s);
  ACTIO__ASSERT(s->head == NULL);
  actio__event_destroy(&s->idle);
  pthread_mutex_destroy(&s->mu);
  free(s->threads);
  free(s);
}

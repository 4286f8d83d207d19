/* park.c: futex-based events and waits (see park.h). */
#include "base/park.h"

#include <ck_pr.h>
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdint.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "actio/error.h"
#include "base/clock.h"
#include "base/tsan.h"

int actio__futex_wait(uint32_t *word, uint32_t expected, int64_t deadline_ns) {
  struct timespec ts, *tsp = NULL;
  if (deadline_ns >= 0) {
    ts.tv_sec = deadline_ns / 1000000000;
    ts.tv_nsec = deadline_ns % 1000000000;
    tsp = &ts;
  }
  /* WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline, so a wait
   * restarted after a spurious wake-up does not stretch the timeout. */
  long r = syscall(SYS_futex, word, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG,
                   expected, tsp, NULL, FUTEX_BITSET_MATCH_ANY);
  if (r == -1 && errno == ETIMEDOUT)
    return ACTIO_ETIMEDOUT;
  return 0; /* woken, value changed (EAGAIN) or interrupted: caller re-checks */
}

void actio__futex_wake(uint32_t *word, int all) {
  syscall(SYS_futex, word, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, all ? INT_MAX : 1,
          NULL, NULL, 0);
}

void actio__cond_init(pthread_cond_t *cv) {
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(cv, &ca);
  pthread_condattr_destroy(&ca);
}

int actio__cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t deadline_ns) {
  if (deadline_ns < 0)
    return pthread_cond_wait(cv, mu);
  struct timespec ts = {(time_t)(deadline_ns / 1000000000), (long)(deadline_ns % 1000000000)};
  return pthread_cond_timedwait(cv, mu, &ts);
}

void actio__event_init(actio__event *ev) {
  ev->parked = 0;
  ev->waking = 0;
  ev->top = NULL;
  pthread_mutex_init(&ev->mu, NULL);
}

void actio__event_destroy(actio__event *ev) { pthread_mutex_destroy(&ev->mu); }

static void unlink_waiter(actio__event *ev, actio__waiter *w) {
  if (w->prev != NULL)
    w->prev->next = w->next;
  else
    ev->top = w->next;
  if (w->next != NULL)
    w->next->prev = w->prev;
  w->prev = w->next = NULL;
  ck_pr_dec_32(&ev->parked);
}

void actio__event_prepare(actio__event *ev, actio__waiter *w) {
  /* Atomic, as every access to the word: the previous waker stored to it
   * after its release of `w`, so nothing else orders the two for TSan. */
  ck_pr_store_32(&w->woken, 0);
  w->prev = NULL;
  pthread_mutex_lock(&ev->mu);
  w->next = ev->top;
  if (ev->top != NULL)
    ev->top->prev = w;
  ev->top = w;
  ck_pr_inc_32(&ev->parked);
  pthread_mutex_unlock(&ev->mu);
  /* Store-load: a signaller must see us parked before we re-check the
   * condition, or it could skip us while we miss its change. Pairs with the
   * fence in wake(). */
  ck_pr_fence_memory();
}

/* Seen woken == 1: the waker is done with `w` (acquire, pairs with the
 * release in wake()). */
static void woken_by_waker(actio__waiter *w) {
  /* An acquire load of the word, not a fence: TSan does not model fences,
   * and without this edge it took the waker's store for a race with
   * whatever reused the waiter's stack slot next (the mailbox's polling
   * state). */
  (void)__atomic_load_n(&w->woken, __ATOMIC_ACQUIRE);
}

/* A waiter back from a wake counts itself out of `waking`. Atomic-load
 * fence: the count before its caller's next look at the condition
 * (store-load; free on x86), which pairs with a signaller that publishes
 * and then reads the count: one of the two sees the other. */
static void woken_back(actio__event *ev) {
  ck_pr_dec_32(&ev->waking);
  ck_pr_fence_atomic_load();
}

/* Takes `w` off the list if no waker did. Returns 1 if a waker did: its wake
 * is ours (wait until it has finished writing to `w`). */
static int leave(actio__event *ev, actio__waiter *w) {
  int taken;
  pthread_mutex_lock(&ev->mu);
  taken = ck_pr_load_32(&w->woken) == 0 && (w->prev != NULL || ev->top == w);
  if (taken)
    unlink_waiter(ev, w);
  pthread_mutex_unlock(&ev->mu);
  if (taken)
    return 0;
  while (ck_pr_load_32(&w->woken) == 0)
    ck_pr_stall(); /* the waker is between unlinking us and its last store */
  woken_by_waker(w);
  return 1;
}

void actio__event_cancel(actio__event *ev, actio__waiter *w) {
  if (leave(ev, w)) {
    /* The wake was meant for a message we took some other way: hand it to
     * another sleeper (counted out first, so the count never shows us as
     * still coming). */
    woken_back(ev);
    actio__event_signal(ev);
  }
}

int actio__event_wait(actio__event *ev, actio__waiter *w, int64_t deadline_ns) {
  while (ck_pr_load_32(&w->woken) == 0) {
    if (actio__futex_wait(&w->woken, 0, deadline_ns) == ACTIO_ETIMEDOUT) {
      if (!leave(ev, w))
        return ACTIO_ETIMEDOUT;
      woken_back(ev);
      return 0;
    }
  }
  woken_by_waker(w);
  woken_back(ev);
  return 0;
}

int actio__event_has_waiters(actio__event *ev) {
  ck_pr_fence_atomic_load(); /* as in wake(): after the caller's atomic */
  return ck_pr_load_32(&ev->parked) != 0;
}

unsigned actio__event_waking(actio__event *ev) {
  ck_pr_fence_atomic_load(); /* as in wake(): after the caller's atomic */
  return ck_pr_load_32(&ev->waking);
}

static void wake(actio__event *ev, int all) {
  /* Atomic-load: the caller published its change with an atomic
   * read-modify-write, which must be visible before we look for sleepers
   * (pairs with the fence in prepare). Free on x86, where atomics are full
   * barriers. */
  ck_pr_fence_atomic_load();
  if (ck_pr_load_32(&ev->parked) == 0)
    return;
  actio__waiter *list = NULL;
  pthread_mutex_lock(&ev->mu);
  do {
    actio__waiter *w = ev->top;
    if (w == NULL)
      break;
    unlink_waiter(ev, w);
    /* Counted in before its wake, so never out before it was in. */
    ck_pr_inc_32(&ev->waking);
    w->next = list;
    list = w;
  } while (all);
  pthread_mutex_unlock(&ev->mu);
  while (list != NULL) {
    actio__waiter *w = list;
    list = w->next;
    /* After this store the waiter may return and reuse its memory: it is our
     * last touch of `w` (release: our reads and writes of it come first). A
     * futex wake on a stale address is harmless. */
    __atomic_store_n(&w->woken, 1, __ATOMIC_RELEASE);
    actio__futex_wake(&w->woken, 0);
  }
}

void actio__event_signal(actio__event *ev) { wake(ev, 0); }
void actio__event_broadcast(actio__event *ev) { wake(ev, 1); }

int actio__spin_once(actio__spin *s) {
  if (s->i >= s->polls)
    return 0;
  if (s->i++ < s->polls / 2) {
    ck_pr_stall();
    return 1;
  }
  int64_t now = actio__now_ns();
  if (s->since_ns == 0)
    s->since_ns = now;
  else if (now - s->since_ns > ACTIO__SPIN_BUDGET_NS)
    return 0; /* the core is contended: yielding more only delays others */
  sched_yield();
  return 1;
}

unsigned actio__spin_cap(void) {
  static _Atomic unsigned cap; /* 0 until read: racing readers agree */
  unsigned c = atomic_load_explicit(&cap, memory_order_relaxed);
  if (c == 0) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    c = n >= 4 ? (unsigned)(n / 2) : 1;
    atomic_store_explicit(&cap, c, memory_order_relaxed);
  }
  return c;
}

int actio__spinners_enter(actio__spinners *s, unsigned cap) {
  uint32_t n = atomic_load_explicit(&s->n, memory_order_relaxed);
  do {
    if (n >= cap)
      return 0;
    /* Seq_cst: counted before the polls (pairs with a producer that
     * publishes, then counts the pollers). */
  } while (!atomic_compare_exchange_weak_explicit(&s->n, &n, n + 1, memory_order_seq_cst,
                                                  memory_order_relaxed));
  return 1;
}

void actio__spinners_leave(actio__spinners *s) {
  /* Seq_cst: counted out before the caller's last look for work, which a
   * producer that saw it polling must have published by then. */
  atomic_fetch_sub_explicit(&s->n, 1, memory_order_seq_cst);
}

unsigned actio__spinners_count(actio__spinners *s) {
  /* Atomic-load, as in wake(): the caller's publishing atomic before this
   * load (store-load; free on x86, where atomics are full barriers). */
  ck_pr_fence_atomic_load();
  return atomic_load_explicit(&s->n, memory_order_seq_cst);
}

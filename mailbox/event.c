/* event.c: futex-based event count (see event.h). */
#include "event.h"

#include <ck_pr.h>
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "actio/error.h"

int64_t actio__now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t actio__deadline_ns(int64_t timeout_ms) {
  if (timeout_ms < 0)
    return -1;
  return actio__now_ns() + timeout_ms * 1000000;
}

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

uint32_t actio__event_prepare(actio__event *ev) {
  ck_pr_inc_32(&ev->waiters);
  /* Store-load: the signaller must see us counted before we re-check the
   * condition, or it might skip the wake while we miss its change. */
  ck_pr_fence_atomic_load();
  return ck_pr_load_32(&ev->seq);
}

void actio__event_cancel(actio__event *ev) { ck_pr_dec_32(&ev->waiters); }

int actio__event_wait(actio__event *ev, uint32_t ticket, int64_t deadline_ns) {
  int rc = actio__futex_wait(&ev->seq, ticket, deadline_ns);
  ck_pr_dec_32(&ev->waiters);
  return rc;
}

static void event_wake(actio__event *ev, int all) {
  /* Store-load: the caller's publication must be visible before we read the
   * waiter count (pairs with the fence in prepare). */
  ck_pr_fence_store_load();
  if (ck_pr_load_32(&ev->waiters) == 0)
    return;
  ck_pr_inc_32(&ev->seq);
  actio__futex_wake(&ev->seq, all);
}

void actio__event_signal(actio__event *ev) { event_wake(ev, 0); }
void actio__event_broadcast(actio__event *ev) { event_wake(ev, 1); }

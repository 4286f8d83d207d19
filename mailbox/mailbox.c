/* mailbox.c: bounded lock-free MPMC queue (Vyukov's cell-sequence ring on
 * ck_pr) with event counts for sleeping consumers and producers. */
#include "mailbox/mailbox.h"

#include <ck_md.h>
#include <ck_pr.h>
#include <stdlib.h>

#include "actio/error.h"
#include "base/clock.h"
#include "base/debug.h"
#include "base/park.h"
#include "base/tsan.h"

/* The top bit of the enqueue position marks the mailbox closed, so that
 * closing and reserving a position are ordered by the same CAS word. */
#define MBOX_CLOSED (UINT64_C(1) << 63)

typedef struct cell {
  uint64_t seq; /* == pos: free for the push at pos; == pos + 1: holds it */
  actio__mbox_msg msg;
  char pad[CK_MD_CACHELINE - sizeof(uint64_t) - sizeof(actio__mbox_msg)];
} cell;

struct actio__mbox {
  uint64_t enq; /* next push position | MBOX_CLOSED */
  char pad0[CK_MD_CACHELINE - sizeof(uint64_t)];
  uint64_t deq; /* next pop position */
  char pad1[CK_MD_CACHELINE - sizeof(uint64_t)];
  actio__event not_empty; /* consumers sleep here */
  /* Consumers polling the empty ring: a push wakes a sleeper only when
   * none polls. Beside the sleepers' count, which each push reads too. */
  actio__spinners polling;
  char pad2[CK_MD_CACHELINE - (sizeof(actio__event) + sizeof(actio__spinners)) % CK_MD_CACHELINE];
  actio__event not_full; /* blocked producers sleep here */
  char pad3[CK_MD_CACHELINE - sizeof(actio__event) % CK_MD_CACHELINE];
  uint64_t mask;
  /* Set (before MBOX_CLOSED) by close: an empty poll reads this read-mostly
   * flag, not the producers' enq line, which it would otherwise steal from
   * the next push (a cache miss per hand-off on each side). */
  uint32_t closing;
  unsigned spin;
  actio__mbox_wake_fn wake;
  void *wake_arg;
  cell *cells;
};

int actio__mbox_create(actio__mbox **out, size_t capacity) {
  if (out == NULL || capacity == 0 || capacity > (SIZE_MAX >> 2))
    return ACTIO_EINVAL;
  size_t cap = 2;
  while (cap < capacity)
    cap <<= 1;
  if (cap > SIZE_MAX / sizeof(cell))
    return ACTIO_EINVAL;
  /* C11: the size must be a multiple of the alignment. */
  size_t size = (sizeof(actio__mbox) + CK_MD_CACHELINE - 1) & ~(size_t)(CK_MD_CACHELINE - 1);
  actio__mbox *mb = aligned_alloc(CK_MD_CACHELINE, size);
  if (mb == NULL)
    return ACTIO_ENOMEM;
  *mb = (actio__mbox){.mask = cap - 1, .spin = 256};
  mb->cells = aligned_alloc(CK_MD_CACHELINE, cap * sizeof(cell));
  if (mb->cells == NULL) {
    free(mb);
    return ACTIO_ENOMEM;
  }
  actio__event_init(&mb->not_empty);
  actio__event_init(&mb->not_full);
  for (size_t i = 0; i < cap; i++)
    mb->cells[i].seq = i;
  *out = mb;
  return 0;
}

void actio__mbox_destroy(actio__mbox *mb) {
  if (mb == NULL)
    return;
  actio__event_destroy(&mb->not_empty);
  actio__event_destroy(&mb->not_full);
  free(mb->cells);
  free(mb);
}

void actio__mbox_set_wake(actio__mbox *mb, actio__mbox_wake_fn fn, void *arg) {
  mb->wake = fn;
  mb->wake_arg = arg;
}

void actio__mbox_set_spin(actio__mbox *mb, unsigned spins) { mb->spin = spins; }

static int try_push(actio__mbox *mb, const actio__mbox_msg *msg) {
  uint64_t pos = ck_pr_load_64(&mb->enq);
  cell *c;
  for (;;) {
    if (pos & MBOX_CLOSED)
      return ACTIO_ECLOSED;
    c = &mb->cells[pos & mb->mask];
    int64_t dif = (int64_t)(ck_pr_load_64(&c->seq) - pos);
    if (dif == 0) {
      /* On failure the CAS reloads pos (it may now carry MBOX_CLOSED). */
      if (ck_pr_cas_64_value(&mb->enq, pos, pos + 1, &pos))
        break;
    } else if (dif < 0) {
      return ACTIO_EFULL; /* the cell still holds the previous lap's message */
    } else {
      pos = ck_pr_load_64(&mb->enq); /* another producer took pos */
    }
  }
  /* The position is ours: its cell waits for exactly this push. */
  ACTIO__ASSERT(ck_pr_load_64(&c->seq) == (pos & ~MBOX_CLOSED));
  ACTIO__TSAN_ACQUIRE(c); /* the last consumer of this cell is done with it */
  c->msg = *msg;
  ACTIO__TSAN_RELEASE(c);
  /* Store-store: the message must be visible before the sequence says so.
   * Publishing with an atomic swap also orders it before the load of the
   * parked count in actio__event_signal (store-load), without a separate
   * full fence. */
  ck_pr_fence_store_atomic();
  ck_pr_fas_64(&c->seq, pos + 1);
  return 0;
}

static int try_pop(actio__mbox *mb, actio__mbox_msg *out) {
  uint64_t pos = ck_pr_load_64(&mb->deq);
  cell *c;
  for (;;) {
    c = &mb->cells[pos & mb->mask];
    int64_t dif = (int64_t)(ck_pr_load_64(&c->seq) - (pos + 1));
    if (dif == 0) {
      if (ck_pr_cas_64_value(&mb->deq, pos, pos + 1, &pos))
        break;
    } else if (dif < 0) {
      /* Nothing published at pos. Closed and drained only when no position
       * was reserved past pos: a reserved one is a message in flight. */
      if (ck_pr_load_32(&mb->closing) == 0)
        return ACTIO_EAGAIN;
      uint64_t e = ck_pr_load_64(&mb->enq);
      if ((e & MBOX_CLOSED) && (e & ~MBOX_CLOSED) == pos)
        return ACTIO_ECLOSED;
      return ACTIO_EAGAIN;
    } else {
      pos = ck_pr_load_64(&mb->deq); /* another consumer took pos */
    }
  }
  /* Load-load: read the message only after seeing its sequence. */
  ck_pr_fence_load();
  ACTIO__ASSERT(ck_pr_load_64(&c->seq) == pos + 1); /* published, and ours */
  ACTIO__TSAN_ACQUIRE(c);
  *out = c->msg;
  ACTIO__TSAN_RELEASE(c);
  /* Load-store: finish reading before handing the cell to the next lap; the
   * swap, as in try_push, also orders it before the signal's load. */
  ck_pr_fence_load_atomic();
  ck_pr_fas_64(&c->seq, pos + mb->mask + 1);
  return 0;
}

/* The depth at or below which a parked producer is woken: three quarters
 * of the capacity. */
static uint64_t room_mark(const actio__mbox *mb) {
  return mb->mask + 1 - ((mb->mask + 1) >> 2);
}

/* Shared sleep loop: retries `attempt` until it stops answering `busy`, the
 * deadline passes, or (for the caller) something else comes back. */
typedef int (*attempt_fn)(actio__mbox *, void *);

static int push_attempt(actio__mbox *mb, void *m) { return try_push(mb, m); }
static int pop_attempt(actio__mbox *mb, void *m) { return try_pop(mb, m); }

static int sleep_until(actio__mbox *mb, actio__event *ev, attempt_fn attempt,
                       void *m, int busy, int64_t timeout_ms) {
  int64_t deadline = actio__deadline_ns(timeout_ms);
  actio__waiter w;
  for (;;) {
    actio__event_prepare(ev, &w);
    int rc = attempt(mb, m);
    if (rc != busy) {
      actio__event_cancel(ev, &w);
      return rc;
    }
    if (actio__event_wait(ev, &w, deadline) == ACTIO_ETIMEDOUT) {
      rc = attempt(mb, m);
      return rc == busy ? ACTIO_ETIMEDOUT : rc;
    }
  }
}

/* After publishing (or taking) a message: whether a sleeping consumer
 * must be woken for what is left. Not while one polls: it takes it. Not
 * while the consumers already woken and not yet back are as many as the
 * messages inside: each takes one, or finds the ring empty, after it
 * counted itself out (actio__event_wait), and then wakes for what is left
 * as here; one that finds the head cell still being published leaves it
 * to that cell's producer, whose look comes after its publishing, so after
 * the consumer's count out (the waking count is read after our publishing
 * atomic, and counted out before the consumer's look: one of the two sees
 * the other). Waking one more for each push while the first woken had not
 * yet run woke consumers that found nothing and parked again. */
static int need_wake(actio__mbox *mb) {
  if (actio__spinners_count(&mb->polling) != 0)
    return 0;
  unsigned waking = actio__event_waking(&mb->not_empty);
  return waking == 0 || actio__mbox_depth(mb) > waking;
}

int actio__mbox_push(actio__mbox *mb, const actio__mbox_msg *msg,
                     int64_t timeout_ms) {
  int rc = try_push(mb, msg);
  if (rc == ACTIO_EFULL && timeout_ms != 0)
    rc = sleep_until(mb, &mb->not_full, push_attempt, (void *)msg, ACTIO_EFULL,
                     timeout_ms);
  if (rc == 0) {
    /* A polling consumer takes it, or wakes a sleeper once it stops
     * polling (actio__mbox_pop); a consumer already woken and on its way
     * takes it too (see need_wake). */
    if (need_wake(mb))
      actio__event_signal(&mb->not_empty);
    if (mb->wake != NULL)
      mb->wake(mb->wake_arg);
  }
  return rc;
}

/* What a pop that returned rc owes the sleepers. */
static int after_pop(actio__mbox *mb, int rc) {
  if (rc == 0) {
    /* Producers parked on a full ring are woken only once a quarter of it
     * is free, so that each one woken pushes a batch: waking one per pop
     * made every push of an oversubscribed producer park and wake again
     * (0.63 parks per message at 16 producers / 2 consumers on 2 cores,
     * 0.006 with this). */
    if (actio__event_has_waiters(&mb->not_full) &&
        actio__mbox_depth(mb) <= room_mark(mb))
      actio__event_signal(&mb->not_full);
    /* A consumer woken for a later message may have found an earlier cell
     * still being published and parked again, and pushes made while a
     * consumer polled woke nobody: pass the wake on while messages remain,
     * so none waits behind a busy consumer, unless one polls or enough
     * are on their way (need_wake). */
    if (actio__event_has_waiters(&mb->not_empty) && actio__mbox_depth(mb) > 0 &&
        need_wake(mb))
      actio__event_signal(&mb->not_empty);
  }
  /* After close, consumers parked on a cell still in flight need to see the
   * end too: wake them all whenever one takes the last messages. (The
   * sleepers' count first: the closed flag sits on the producers' line.) */
  if ((rc == 0 || rc == ACTIO_ECLOSED) &&
      actio__event_has_waiters(&mb->not_empty) && actio__mbox_is_closed(mb))
    actio__event_broadcast(&mb->not_empty);
  return rc;
}

int actio__mbox_pop(actio__mbox *mb, actio__mbox_msg *out, int64_t timeout_ms) {
  int rc = try_pop(mb, out);
  if (rc == ACTIO_EAGAIN && timeout_ms != 0) {
    /* Poll before parking, yielding the core part of the time, so a
     * sender that shares it gets to run (with spinning alone, two actors
     * on one core would hand off only through futex wake-ups). Only a few
     * consumers poll at once; the rest park at once: 32 file workers
     * polling in turn made sched_yield 8.5% of the pipeline's CPU. */
    if (actio__spinners_enter(&mb->polling, actio__spin_cap())) {
      actio__spin spin = ACTIO__SPIN_INIT(mb->spin);
      while (rc == ACTIO_EAGAIN && actio__spin_once(&spin))
        rc = try_pop(mb, out);
      /* Counted out before sleep_until's last look; pushes meanwhile
       * woke nobody, so after_pop passes a wake on if messages remain. */
      actio__spinners_leave(&mb->polling);
    }
    if (rc == ACTIO_EAGAIN)
      rc = sleep_until(mb, &mb->not_empty, pop_attempt, out, ACTIO_EAGAIN,
                       timeout_ms);
  }
  return after_pop(mb, rc);
}

/* Claims the run of published messages at the head, up to max, with one
 * CAS (a consumer draining a busy mailbox moves the consumers' counter once
 * per run, not once per message). */
static int try_pop_many(actio__mbox *mb, actio__mbox_msg *out, size_t max,
                        size_t *n) {
  uint64_t pos = ck_pr_load_64(&mb->deq);
  size_t k;
  for (;;) {
    k = 0;
    while (k < max &&
           ck_pr_load_64(&mb->cells[(pos + k) & mb->mask].seq) == pos + k + 1)
      k++;
    if (k == 0) { /* empty, closed, or another consumer moved on */
      int rc = try_pop(mb, out);
      *n = rc == 0;
      return rc;
    }
    /* Published cells stay so until consumed: if deq is still pos, all k
     * are ours. On failure the CAS reloads pos. */
    if (ck_pr_cas_64_value(&mb->deq, pos, pos + k, &pos))
      break;
  }
  ck_pr_fence_load(); /* load-load: the messages after their sequences */
  for (size_t i = 0; i < k; i++) {
    cell *c = &mb->cells[(pos + i) & mb->mask];
    ACTIO__ASSERT(ck_pr_load_64(&c->seq) == pos + i + 1);
    ACTIO__TSAN_ACQUIRE(c);
    out[i] = c->msg;
    ACTIO__TSAN_RELEASE(c);
  }
  /* Load-store: the reads before handing the cells to the next lap; the
   * last swap also orders the releases before the signals' loads. */
  ck_pr_fence_load_store();
  for (size_t i = 0; i + 1 < k; i++)
    ck_pr_store_64(&mb->cells[(pos + i) & mb->mask].seq, pos + i + mb->mask + 1);
  ck_pr_fas_64(&mb->cells[(pos + k - 1) & mb->mask].seq, pos + k - 1 + mb->mask + 1);
  *n = k;
  return 0;
}

int actio__mbox_pop_many(actio__mbox *mb, actio__mbox_msg *out, size_t max,
                         size_t *n, int64_t timeout_ms) {
  *n = 0;
  if (max == 0)
    return ACTIO_EINVAL;
  int rc = try_pop_many(mb, out, max, n);
  if (rc == ACTIO_EAGAIN && timeout_ms != 0) {
    rc = actio__mbox_pop(mb, out, timeout_ms); /* waits, and signals */
    *n = rc == 0;
    return rc;
  }
  return after_pop(mb, rc);
}

void actio__mbox_close(actio__mbox *mb) {
  ck_pr_store_32(&mb->closing, 1);
  ck_pr_or_64(&mb->enq, MBOX_CLOSED); /* also orders the flag before it */
  actio__event_broadcast(&mb->not_empty);
  actio__event_broadcast(&mb->not_full);
}

int actio__mbox_ready(const actio__mbox *mb) {
  actio__mbox *m = (actio__mbox *)mb;
  uint64_t pos = ck_pr_load_64(&m->deq);
  return ck_pr_load_64(&m->cells[pos & m->mask].seq) == pos + 1 ||
         ck_pr_load_32(&m->closing) != 0;
}

int actio__mbox_is_closed(const actio__mbox *mb) {
  /* The read-mostly flag, not enq: a sender that looks before it sends (a
   * timer being armed) would take the producers' line from the last push. */
  return ck_pr_load_32(&((actio__mbox *)mb)->closing) != 0;
}

size_t actio__mbox_depth(const actio__mbox *mb) {
  actio__mbox *m = (actio__mbox *)mb;
  uint64_t d = ck_pr_load_64(&m->deq);
  uint64_t e = ck_pr_load_64(&m->enq) & ~MBOX_CLOSED;
  return e > d ? (size_t)(e - d) : 0;
}

size_t actio__mbox_capacity(const actio__mbox *mb) {
  return (size_t)mb->mask + 1;
}

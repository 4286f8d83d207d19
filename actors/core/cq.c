/* cq.c: the completion queue: a completing thread appends (tag, future) to
 * its own lane, an array in segments; the loop that watches the eventfd
 * reads the lanes' arrays in batches, and the eventfd is written only when
 * the last drain found the queue empty. */
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "actio/cq.h"
#include "actio/error.h"
#include "actors/core/cq_internal.h"
#include "actors/core/future_internal.h"
#include "base/debug.h"

/*
 * Each thread completes into one lane (its shard), so that two completing
 * threads do not take a line from each other per completion, and one
 * thread's completions stay in their order. A lane is a list of segments,
 * arrays of slots filled in turn under the lane's lock; the drain reads
 * them in turn, a whole batch before it touches any of their futures
 * (which it prefetches meanwhile), rather than chasing one node per event.
 * The lock is a word that only threads sharing a shard contend for.
 *
 * No event may be lost for want of memory once its registration was
 * accepted: a registration buys its slot in advance. Each registering
 * thread counts, in its own record on the queue (cq_reg), the slots it has
 * paid for (`credit`) and the registrations it made (`adds`), written by
 * it alone: a registration takes no lock and no read-modify-write of the
 * queue's. When its credit runs out, the registration pays for a segment
 * on the queue's spares: it claims one the drain gave back (`surplus`), or
 * pushes a new one. A lane whose tail is full takes a spare. Every lane
 * starts with a segment of its own (its partly filled tail), so the spares
 * paid for, one per SEG_SLOTS slots of credit, always cover the segments
 * the completions need.
 *
 * The spares are a stack: the registrations and the drain push with a
 * CAS; a completion pops with a CAS, one at a time (`popping`), so no
 * segment can leave the stack and come back while a pop holds its top (no
 * ABA): a segment goes round from the spares to a lane, to the drain and
 * back, without malloc, free or a lock shared by the producers.
 *
 * A thread holds records on the last REG_CACHE queues it registered on
 * only: one it evicts from its cache, and all of them when it exits (a
 * pthread key's destructor), go back to their queues, which keep their
 * counts (`retired_adds`) and their credit (`pool`, taken by the next
 * registration that runs out), and are freed. So a queue holds a record
 * per live thread that registered on it lately, never one per thread that
 * ever did. A queue destroyed while threads hold records on it leaves
 * them to those threads (orphaned), which free them.
 *
 * The wake-up: `armed` is 1 while the last drain found the queue empty and
 * reset the eventfd. A completion publishes its slot and reads `armed`
 * under its lane's lock; a drain that found nothing resets the eventfd,
 * sets `armed`, then takes and drops each lane's lock in turn before it
 * looks at the slots again. Each completion's hold of the lock comes
 * before that handshake, and the drain sees its slot, or after it, and the
 * completion sees `armed` set, takes it (an exchange: one writer per
 * reset) and writes the eventfd, after the reset. So the completions pay
 * no fence: the drain that goes to sleep pays LANES lock round trips.
 */
#define LANES 8
#define SEG_SLOTS 31

typedef struct cq_slot {
  /* NULL until published; then the queue's reference, until drained. */
  _Atomic(actio_future *) f;
  uint64_t tag; /* written before f is published */
} cq_slot;

/* 504 bytes. */
typedef struct cq_seg {
  /* The lane's next segment, published with its first slot filled. */
  _Atomic(struct cq_seg *) next;
  cq_slot slot[SEG_SLOTS];
} cq_seg;

/* A lane's producing side, on its own line. Under `busy`: all of it. */
typedef struct cq_lane {
  _Alignas(64) _Atomic int busy;
  int closed;       /* destroyed: a completion frees its own event */
  unsigned tail_n;  /* slots of `tail` filled */
  cq_seg *tail;
} cq_lane;

/* A registering thread's counts on one queue (40 bytes). The counts are
 * written by that thread alone, and read by destroy once no one adds, or
 * by the thread when it hands the record back: relaxed atomics, plain
 * moves on x86. */
typedef struct cq_reg {
  /* Under regs_mu: the queue's list, and the queue (NULL once destroyed:
   * the thread frees the record). */
  struct cq_reg *next, **pprev;
  struct actio_cq *cq;
  _Atomic unsigned credit; /* slots paid for and not yet used */
  _Atomic uint64_t adds;   /* registrations made */
} cq_reg;

/* A lane's draining side: where the next event is. Under drain_mu. */
typedef struct cq_head {
  cq_seg *seg;
  unsigned n;
} cq_head;

/* The queue's life, as a per-CPU reference of Linux: until destroy,
 * REFS_BIAS + 1 for the handle, less the registrations ended (drained, or
 * released); destroy, once no one adds, trades the bias for the sum of the
 * threads' `adds`, so the count reaches 0 when the last registration is
 * over, and the one that takes it there frees the queue. */
#define REFS_BIAS (UINT64_C(1) << 62)

struct actio_cq {
  /* Read only, once made: what futures call (its first member), the fd,
   * and which queue this is (a thread's cache of its records asks). */
  actio__future_queue hook;
  int fd;
  uint64_t gen;
  cq_lane lanes[LANES];
  /* Written by the drain that finds the queue empty, and by the completion
   * that rings after it: once per wake-up. */
  _Alignas(64) _Atomic int armed;
  _Atomic uint64_t refs;
  /* Spare segments, linked through `next`: paid for by one registration in
   * SEG_SLOTS, popped by the completion that fills a lane's tail, given
   * back by the drain once past them. `surplus`: how many of them no
   * registration paid for (given back, at most SPARE_MAX; only the drain
   * adds to it). */
  _Alignas(64) _Atomic(cq_seg *) spares;
  _Atomic int popping; /* a completion pops: 1 */
  _Atomic unsigned surplus;
  /* Credit handed back by records that went: paid for, not yet used. */
  _Atomic unsigned pool;
  /* Under regs_mu: the records threads hold, and the registrations of
   * those that went back. */
  cq_reg *regs;
  uint64_t retired_adds;
  /* The drains' own line. */
  _Alignas(64) pthread_mutex_t drain_mu; /* serialises drains; guards the rest */
  unsigned next_lane; /* where the last drain stopped, for fairness */
  cq_head heads[LANES];
};

/* A lane's lock, and the spares' pop flag. */
static void spin_lock(_Atomic int *w) {
  /* Acquire: the previous holder's writes. */
  while (atomic_exchange_explicit(w, 1, memory_order_acquire))
    /* Relaxed: only a hint to try again. Held for a few stores (or, once
     * per wake-up, a write to the eventfd): yield to a preempted holder. */
    while (atomic_load_explicit(w, memory_order_relaxed))
      sched_yield();
}

static void spin_unlock(_Atomic int *w) {
  /* Release: our writes before the next holder's. */
  atomic_store_explicit(w, 0, memory_order_release);
}

static void lane_lock(cq_lane *l) { spin_lock(&l->busy); }
static void lane_unlock(cq_lane *l) { spin_unlock(&l->busy); }

static cq_seg *seg_new(void) { return calloc(1, sizeof(cq_seg)); }

/* Segments the drain gives back to the spares rather than to free: 64 KiB
 * a queue at most, 3,968 events' worth, which covers the producers'
 * bursts ahead of a loop that sleeps. */
#define SPARE_MAX 128

/* Any thread: the registrations (a new segment) and the drain (one given
 * back, zeroed). */
static void spare_push(actio_cq *cq, cq_seg *s) {
  cq_seg *top = atomic_load_explicit(&cq->spares, memory_order_relaxed);
  do
    atomic_store_explicit(&s->next, top, memory_order_relaxed);
  /* Release: the segment's zeroed slots and its link, for the pop. */
  while (!atomic_compare_exchange_weak_explicit(&cq->spares, &top, s, memory_order_release,
                                                memory_order_relaxed));
}

/* A completion that filled its lane's tail: a spare, paid for by a
 * registration (never NULL). Pops are serialised, so the top read here
 * stays on the stack until our CAS (pushes only move it down): `next` is
 * still its own. */
static cq_seg *spare_pop(actio_cq *cq) {
  spin_lock(&cq->popping);
  /* Acquire, here and on failure: the segment its pusher zeroed. */
  cq_seg *top = atomic_load_explicit(&cq->spares, memory_order_acquire);
  for (;;) {
    ACTIO__ASSERT(top != NULL); /* paid for by the registration */
    cq_seg *next = atomic_load_explicit(&top->next, memory_order_relaxed);
    if (atomic_compare_exchange_weak_explicit(&cq->spares, &top, next, memory_order_acquire,
                                              memory_order_acquire))
      break;
  }
  spin_unlock(&cq->popping);
  return top;
}

/* A registration out of credit: 1 if it claimed a segment the drain gave
 * back, which then pays for its next SEG_SLOTS events. */
static int spare_claim(actio_cq *cq) {
  unsigned n = atomic_load_explicit(&cq->surplus, memory_order_relaxed);
  /* Acquire: the drain's push, before its addition, so that the completion
   * that pops after this registration finds the segment on the stack. */
  while (n > 0)
    if (atomic_compare_exchange_weak_explicit(&cq->surplus, &n, n - 1, memory_order_acquire,
                                              memory_order_relaxed))
      return 1;
  return 0;
}

/* The drain is past s, which no completion touches again: back to the
 * spares, or to the heap when enough wait there. Under drain_mu. */
static void seg_done(actio_cq *cq, cq_seg *s) {
  /* Relaxed: only the drain adds to it. */
  if (atomic_load_explicit(&cq->surplus, memory_order_relaxed) >= SPARE_MAX) {
    free(s);
    return;
  }
  memset(s, 0, sizeof *s);
  spare_push(cq, s);
  /* Release: the push before, for the registration that claims it. */
  atomic_fetch_add_explicit(&cq->surplus, 1, memory_order_release);
}

static void deliver(actio_future *f, actio__future_queue *q, uint64_t tag);

int actio_cq_create(actio_cq **out) {
  if (out == NULL)
    return ACTIO_EINVAL;
  *out = NULL;
  actio_cq *cq = aligned_alloc(_Alignof(actio_cq), sizeof *cq); /* its lines apart */
  if (cq == NULL)
    return ACTIO_ENOMEM;
  memset(cq, 0, sizeof *cq);
  int i, rc = ACTIO_ENOMEM;
  for (i = 0; i < LANES; i++) {
    if ((cq->lanes[i].tail = seg_new()) == NULL)
      goto fail_segs;
    cq->heads[i].seg = cq->lanes[i].tail;
    atomic_init(&cq->lanes[i].busy, 0);
  }
  cq->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (cq->fd < 0) {
    rc = -errno;
    goto fail_segs;
  }
  cq->hook.deliver = deliver;
  static _Atomic uint64_t gens;
  /* Relaxed: only distinct. */
  cq->gen = atomic_fetch_add_explicit(&gens, 1, memory_order_relaxed) + 1;
  atomic_init(&cq->armed, 1); /* empty, and the descriptor not readable */
  atomic_init(&cq->refs, REFS_BIAS + 1);
  atomic_init(&cq->spares, NULL);
  atomic_init(&cq->popping, 0);
  atomic_init(&cq->surplus, 0);
  pthread_mutex_init(&cq->drain_mu, NULL);
  *out = cq;
  return 0;
fail_segs:
  while (i-- > 0)
    free(cq->lanes[i].tail);
  free(cq);
  return rc;
}

int actio_cq_fd(const actio_cq *cq) { return cq != NULL ? cq->fd : ACTIO_EINVAL; }

/* This thread's lane. */
static unsigned shard(void) {
  static _Atomic unsigned next;
  static _Thread_local unsigned mine; /* 1 + the lane; 0: none yet */
  if (mine == 0)
    /* Relaxed: any spread will do. */
    mine = 1 + atomic_fetch_add_explicit(&next, 1, memory_order_relaxed) % LANES;
  return mine - 1;
}

static void cq_unref(actio_cq *cq, uint64_t k) {
  /* Release: our writes before the free; acquire on the last drop: the
   * freer sees everyone's. */
  uint64_t before = atomic_fetch_sub_explicit(&cq->refs, k, memory_order_acq_rel);
  ACTIO__ASSERT(before >= k);
  if (before != k)
    return;
  ACTIO__ASSERT(atomic_load_explicit(&cq->spares, memory_order_relaxed) == NULL &&
                cq->regs == NULL);
  pthread_mutex_destroy(&cq->drain_mu);
  free(cq);
}

static void ring(int fd) {
  uint64_t one = 1;
  /* Only EAGAIN can fail it (a counter near 2^64): readable already. */
  ssize_t w = write(fd, &one, sizeof one);
  (void)w;
}

/* Ends an event that will never be drained: its future is released. */
static void release(actio_future *f) {
  actio__future_queue_drained(f);
  actio_future_unref(f);
}

/* The delivery (future_internal.h), on the completing thread, or in
 * actio_cq_add's for a future complete already; f's reference is the
 * queue's now. The registration's count of the queue keeps it until the
 * event is published; the lane's lock, which destroy takes before it closes
 * the eventfd, keeps the descriptor until the ring. */
static void deliver(actio_future *f, actio__future_queue *q, uint64_t tag) {
  actio_cq *cq = (actio_cq *)(void *)q; /* its first member */
  cq_lane *l = &cq->lanes[shard()];
  lane_lock(l);
  if (l->closed) { /* destroyed: the registration ends here */
    lane_unlock(l);
    release(f);
    cq_unref(cq, 1);
    return;
  }
  cq_slot *s;
  if (l->tail_n < SEG_SLOTS) {
    s = &l->tail->slot[l->tail_n++];
    s->tag = tag;
    /* Release: the tag, and the future's result, for the drain. */
    atomic_store_explicit(&s->f, f, memory_order_release);
  } else {
    cq_seg *n = spare_pop(cq);
    atomic_store_explicit(&n->next, NULL, memory_order_relaxed);
    n->slot[0].tag = tag;
    /* Relaxed: the segment is ours until published below. */
    atomic_store_explicit(&n->slot[0].f, f, memory_order_relaxed);
    /* Release: the segment and its slot. The drain frees the old segment
     * once it sees this: we touch it no more. */
    atomic_store_explicit(&l->tail->next, n, memory_order_release);
    l->tail = n;
    l->tail_n = 1;
  }
  /* Relaxed: the lock orders it after a drain's handshake (see the top);
   * the exchange only when the drain is waiting. Acquire: a write after
   * the drain's reset. */
  if (atomic_load_explicit(&cq->armed, memory_order_relaxed) &&
      atomic_exchange_explicit(&cq->armed, 0, memory_order_acq_rel))
    ring(cq->fd);
  lane_unlock(l);
}

/* Every queue's records: their lists, their queues, and the counts of the
 * records that went back. Taken once per thread and queue (and when the
 * thread's cache loses the queue), at the thread's exit, and by destroy:
 * never by a registration that finds its record cached. */
static pthread_mutex_t regs_mu = PTHREAD_MUTEX_INITIALIZER;

/* A thread's last few queues and its records on them: a queue is known by
 * its address and its generation, so a queue made where a destroyed one
 * was is not taken for it. */
#define REG_CACHE 4
typedef struct reg_cached {
  const actio_cq *cq;
  uint64_t gen;
  cq_reg *reg;
} reg_cached;
static _Thread_local reg_cached cache[REG_CACHE];
static _Thread_local unsigned victim;
static _Thread_local int held; /* the exit key is set for this thread */
static pthread_key_t exit_key; /* only for its destructor */
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;
static int exit_key_made; /* pthread_key_create succeeded (set in the once) */

/* Hands r back to its queue, which keeps its counts, and frees it; a
 * record whose queue is gone is only freed. */
static void reg_put(cq_reg *r) {
  pthread_mutex_lock(&regs_mu);
  actio_cq *cq = r->cq;
  if (cq != NULL) {
    if ((*r->pprev = r->next) != NULL)
      r->next->pprev = r->pprev;
    /* Relaxed: our own counts. */
    cq->retired_adds += atomic_load_explicit(&r->adds, memory_order_relaxed);
    unsigned credit = atomic_load_explicit(&r->credit, memory_order_relaxed);
    /* Release: the spares this credit paid for (pushed, or claimed, by
     * this thread) before the registration that takes it. */
    if (credit > 0)
      atomic_fetch_add_explicit(&cq->pool, credit, memory_order_release);
  }
  pthread_mutex_unlock(&regs_mu);
  free(r);
}

/* The thread exits: its records go back. */
static void reg_exit(void *unused) {
  (void)unused;
  held = 0; /* the key is cleared before its destructor runs */
  for (int i = 0; i < REG_CACHE; i++)
    if (cache[i].reg != NULL) {
      reg_put(cache[i].reg);
      cache[i] = (reg_cached){0};
    }
}

static void exit_key_make(void) { exit_key_made = pthread_key_create(&exit_key, reg_exit) == 0; }

/* This thread's record on cq, made on its first registration there (or
 * since its cache lost the queue). *kept is 0 when the thread cannot keep
 * it (no exit hook: no key left in the process): the caller hands it back
 * with reg_put after its registration. NULL when out of memory. */
static cq_reg *reg_of(actio_cq *cq, int *kept) {
  *kept = 1;
  for (int i = 0; i < REG_CACHE; i++)
    if (cache[i].cq == cq && cache[i].gen == cq->gen)
      return cache[i].reg;
  cq_reg *r = malloc(sizeof *r);
  if (r == NULL)
    return NULL;
  atomic_init(&r->credit, 0);
  atomic_init(&r->adds, 0);
  r->cq = cq;
  pthread_mutex_lock(&regs_mu);
  if ((r->next = cq->regs) != NULL)
    r->next->pprev = &r->next;
  r->pprev = &cq->regs;
  cq->regs = r;
  pthread_mutex_unlock(&regs_mu);
  if (!held) { /* once a thread, or again once its exit hook ran */
    pthread_once(&exit_once, exit_key_make);
    /* Non-NULL: reg_exit runs. */
    held = exit_key_made && pthread_setspecific(exit_key, cache) == 0;
    if (!held) {
      *kept = 0;
      return r;
    }
  }
  int i = 0;
  while (i < REG_CACHE && cache[i].reg != NULL)
    i++;
  if (i == REG_CACHE) {
    i = (int)(victim++ % REG_CACHE);
    reg_put(cache[i].reg);
  }
  cache[i] = (reg_cached){cq, cq->gen, r};
  return r;
}

size_t actio__cq_regs(actio_cq *cq) {
  size_t n = 0;
  pthread_mutex_lock(&regs_mu);
  for (cq_reg *r = cq->regs; r != NULL; r = r->next)
    n++;
  pthread_mutex_unlock(&regs_mu);
  return n;
}

int actio_cq_add(actio_cq *cq, actio_future *f, uint64_t tag) {
  if (cq == NULL || f == NULL)
    return ACTIO_EINVAL;
  int kept;
  cq_reg *r = reg_of(cq, &kept);
  if (r == NULL)
    return ACTIO_ENOMEM;
  /* Relaxed, here and below: this thread's own counts (see cq_reg). */
  unsigned credit = atomic_load_explicit(&r->credit, memory_order_relaxed);
  /* Relaxed look: the exchange only when records that went left credit.
   * Acquire: the spares it paid for (see reg_put). */
  if (credit == 0 && atomic_load_explicit(&cq->pool, memory_order_relaxed) != 0)
    credit = atomic_exchange_explicit(&cq->pool, 0, memory_order_acquire);
  if (credit == 0) {
    /* Pay for the next SEG_SLOTS events with a spare segment: one given
     * back, or a new one. */
    if (!spare_claim(cq)) {
      cq_seg *s = seg_new();
      if (s == NULL) {
        if (!kept)
          reg_put(r);
        return ACTIO_ENOMEM;
      }
      spare_push(cq, s);
    }
    credit = SEG_SLOTS;
  }
  uint64_t adds = atomic_load_explicit(&r->adds, memory_order_relaxed);
  atomic_store_explicit(&r->credit, credit - 1, memory_order_relaxed);
  /* Before the registration, whose delivery may end it at once: the
   * drain's count of ended registrations never passes the sum destroy
   * reads, which it reads only once no one adds. */
  atomic_store_explicit(&r->adds, adds + 1, memory_order_relaxed);
  int rc = actio__future_on_done_queued(f, &cq->hook, tag);
  if (rc != 0) {
    atomic_store_explicit(&r->adds, adds, memory_order_relaxed);
    atomic_store_explicit(&r->credit, credit, memory_order_relaxed);
  }
  if (!kept)
    reg_put(r);
  return rc;
}

/* Takes up to `max` events of lane i into out, without touching their
 * futures (prefetched meanwhile). Returns how many. Under drain_mu. */
static size_t take_lane(actio_cq *cq, unsigned i, actio_cq_event *out, size_t max) {
  cq_head *h = &cq->heads[i];
  size_t n = 0;
  while (n < max) {
    if (h->n == SEG_SLOTS) {
      /* Acquire: its contents. */
      cq_seg *next = atomic_load_explicit(&h->seg->next, memory_order_acquire);
      if (next == NULL)
        break;
      seg_done(cq, h->seg);
      h->seg = next;
      h->n = 0;
    }
    cq_slot *s = &h->seg->slot[h->n];
    /* Acquire: the tag, and the future's result. */
    actio_future *f = atomic_load_explicit(&s->f, memory_order_acquire);
    if (f == NULL)
      break;
    /* Both of its lines (88 bytes, 16-byte aligned): the drained mark
     * reads the state and writes the inline slot, at its end. */
    __builtin_prefetch(f, 1);
    __builtin_prefetch((const char *)f + 80, 1);
    out[n].tag = s->tag;
    out[n].future = f;
    h->n++;
    n++;
  }
  return n;
}

/* Takes up to `max` events, lane after lane from where the last drain
 * stopped. Under drain_mu. */
static size_t take(actio_cq *cq, actio_cq_event *out, size_t max) {
  size_t n = 0;
  unsigned i = cq->next_lane;
  for (unsigned k = 0; k < LANES && n < max; k++, i = (i + 1) % LANES)
    n += take_lane(cq, i, out + n, max - n);
  /* A full batch may have stopped inside a lane: start there next time. */
  cq->next_lane = n == max ? (i + LANES - 1) % LANES : i;
  for (size_t j = 0; j < n; j++)
    actio__future_queue_drained(out[j].future);
  return n;
}

int actio_cq_drain(actio_cq *cq, actio_cq_event *out, size_t max) {
  if (cq == NULL || (out == NULL && max > 0))
    return ACTIO_EINVAL;
  if (max > INT_MAX)
    max = INT_MAX;
  pthread_mutex_lock(&cq->drain_mu);
  size_t n = take(cq, out, max);
  if (n < max) {
    /* Found empty: reset the descriptor, arm, and look again, so that a
     * completion published after the look rings anew (see the top). */
    uint64_t count;
    ssize_t r = read(cq->fd, &count, sizeof count); /* EAGAIN: not rung */
    (void)r;
    /* Release: the reset before, for the completion that takes `armed`. */
    atomic_store_explicit(&cq->armed, 1, memory_order_release);
    for (unsigned i = 0; i < LANES; i++) { /* the handshake (see the top) */
      lane_lock(&cq->lanes[i]);
      lane_unlock(&cq->lanes[i]);
    }
    n += take(cq, out + n, max - n);
    /* Full after the reset: more may wait, whose completions saw `armed`
     * clear and did not ring: keep the descriptor readable. Acq_rel, as
     * every exchange of `armed`: one writer per reset. */
    if (n == max && atomic_exchange_explicit(&cq->armed, 0, memory_order_acq_rel))
      ring(cq->fd);
  }
  pthread_mutex_unlock(&cq->drain_mu);
  /* The drained registrations end, at once; never the last reference: the
   * caller holds the handle's. */
  if (n > 0)
    cq_unref(cq, n);
  return (int)n;
}

/* Releases the events of lane i not drained and frees its segments.
 * Returns how many events. Once the lane is closed, by destroy alone. */
static uint64_t release_lane(actio_cq *cq, unsigned i) {
  uint64_t k = 0;
  cq_seg *s = cq->heads[i].seg;
  for (unsigned n = cq->heads[i].n; s != NULL; n = 0) {
    for (; n < SEG_SLOTS; n++) {
      actio_future *f = atomic_load_explicit(&s->slot[n].f, memory_order_relaxed);
      if (f == NULL)
        break;
      release(f);
      k++;
    }
    cq_seg *next = atomic_load_explicit(&s->next, memory_order_relaxed);
    free(s);
    s = next;
  }
  cq->heads[i].seg = NULL;
  return k;
}

void actio_cq_destroy(actio_cq *cq) {
  if (cq == NULL)
    return;
  uint64_t k = 0, made = 0;
  pthread_mutex_lock(&cq->drain_mu);
  for (unsigned i = 0; i < LANES; i++) {
    /* The lock: no completion is inside the lane (nor ringing) now, and
     * every one after this finds it closed, drops its own event and never
     * writes the eventfd or touches the segments. */
    cq_lane *l = &cq->lanes[i];
    lane_lock(l);
    l->closed = 1;
    l->tail = NULL;
    lane_unlock(l);
  }
  pthread_mutex_unlock(&cq->drain_mu);
  /* No one adds any more: the records' counts are final. The threads
   * holding them free them (this one at once). */
  pthread_mutex_lock(&regs_mu);
  made += cq->retired_adds;
  for (cq_reg *r = cq->regs; r != NULL; r = r->next) {
    made += atomic_load_explicit(&r->adds, memory_order_relaxed);
    r->cq = NULL;
  }
  cq->regs = NULL;
  pthread_mutex_unlock(&regs_mu);
  for (int i = 0; i < REG_CACHE; i++)
    if (cache[i].cq == cq && cache[i].gen == cq->gen) {
      free(cache[i].reg);
      cache[i] = (reg_cached){0};
    }
  /* Outside every lock: a future's last reference may run code that
   * completes another future of this queue, whose delivery takes its
   * lane's lock (and finds it closed). The bias is still held, so those
   * deliveries never take the count to zero. */
  for (unsigned i = 0; i < LANES; i++)
    k += release_lane(cq, i);
  for (cq_seg *s = atomic_exchange_explicit(&cq->spares, NULL, memory_order_acquire), *next;
       s != NULL; s = next) {
    next = atomic_load_explicit(&s->next, memory_order_relaxed);
    free(s);
  }
  close(cq->fd);
  /* The bias becomes the registrations made, of which those still pending
   * end as their deliveries find their lanes closed. Acq_rel on the trade,
   * as on every change of the count. */
  atomic_fetch_add_explicit(&cq->refs, made - REFS_BIAS, memory_order_acq_rel);
  cq_unref(cq, k + 1);
}

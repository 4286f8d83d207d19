/* cq.c: the completion queue: futures' done callbacks push (tag, future)
 * onto a lock-free stack and ring an eventfd on its empty-to-nonempty
 * transition; the loop that watches the eventfd drains in batches. */
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
#include "actors/core/future_internal.h"
#include "base/debug.h"
#include "base/recycle.h"

/* 24 bytes (a 32-byte heap block). Until its future completes, `link` holds
 * the queue (the done callback's way to it); then the next older node. */
typedef struct cq_node {
  union {
    actio_cq *cq;
    struct cq_node *next;
  } link;
  actio_future *f; /* the queue's reference, until drained */
  uint64_t tag;
} cq_node;

/* Nodes are made on the registering threads and freed on the loop's. */
static actio__recycler nodes = ACTIO__RECYCLER(sizeof(cq_node), ACTIO__RECYCLE_CQ_NODE);

/* Marks the stack of a destroyed queue: a callback that finds it frees its
 * own node, and nothing is pushed after destroy took the stack. */
static cq_node cq_closed_sentinel;
#define CQ_CLOSED (&cq_closed_sentinel)

/* Registering threads count their registrations apart, each on the line of
 * its shard, so two of them do not take a line from each other per add. */
#define SHARDS 8
/* What `refs` holds until destroy trades it for the registrations made. */
#define REFS_BIAS (UINT64_C(1) << 62)
/* A ringing callback's count, in the high bits of refs (above any number of
 * registrations pending): destroy waits for them to be gone before it
 * closes the eventfd, while registrations still pending (never to write
 * it: they find CQ_CLOSED) keep only the memory. */
#define CQ_RINGING ((uint64_t)1 << 40)

struct actio_cq {
  /* Completed, newest first: pushed by done callbacks (a CAS), taken whole
   * by the drain (an exchange); CQ_CLOSED once destroyed. Its own line:
   * completing threads hammer it. */
  _Alignas(64) _Atomic(cq_node *) done;
  /* Registrations made, per shard of the registering threads. */
  struct {
    _Alignas(64) _Atomic uint64_t n;
  } adds[SHARDS];
  /* The queue's life, as a per-CPU reference of Linux: until destroy,
   * REFS_BIAS + 1 for the handle + CQ_RINGING per callback between its
   * push onto an empty stack and its write of the eventfd, less the
   * registrations ended (drained, or released); destroy, once no one adds,
   * trades the bias for the sum of `adds`, so the count reaches 0 when the
   * last registration and callback are over, and the one that takes it
   * there frees the queue. A completion that finds the stack nonempty
   * touches nothing of the queue after its push. */
  _Alignas(64) _Atomic uint64_t refs;
  int fd;
  /* The drains' own line. */
  _Alignas(64) pthread_mutex_t drain_mu; /* serialises drains; guards `ready` */
  cq_node *ready;                        /* taken from `done`, oldest first */
};

int actio_cq_create(actio_cq **out) {
  if (out == NULL)
    return ACTIO_EINVAL;
  *out = NULL;
  actio_cq *cq = aligned_alloc(_Alignof(actio_cq), sizeof *cq); /* its lines apart */
  if (cq == NULL)
    return ACTIO_ENOMEM;
  memset(cq, 0, sizeof *cq);
  cq->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (cq->fd < 0) {
    int rc = -errno;
    free(cq);
    return rc;
  }
  atomic_init(&cq->done, NULL);
  for (int i = 0; i < SHARDS; i++)
    atomic_init(&cq->adds[i].n, 0);
  atomic_init(&cq->refs, REFS_BIAS + 1);
  pthread_mutex_init(&cq->drain_mu, NULL);
  *out = cq;
  return 0;
}

int actio_cq_fd(const actio_cq *cq) { return cq != NULL ? cq->fd : ACTIO_EINVAL; }

/* Drops the events of a list never drained: their futures are released.
 * Returns how many. */
static uint64_t release_nodes(cq_node *n) {
  uint64_t k = 0;
  for (; n != NULL; k++) {
    cq_node *next = n->link.next;
    actio__future_queue_unmark(n->f);
    actio_future_unref(n->f);
    actio__recycle_free(&nodes, n);
    n = next;
  }
  return k;
}

/* This thread's shard of the registration counts. */
static unsigned shard(void) {
  static _Atomic unsigned next;
  static _Thread_local unsigned mine; /* 1 + the shard; 0: none yet */
  if (mine == 0)
    /* Relaxed: any spread will do. */
    mine = 1 + atomic_fetch_add_explicit(&next, 1, memory_order_relaxed) % SHARDS;
  return mine - 1;
}

static void cq_unref(actio_cq *cq, uint64_t k) {
  /* Release: our pushes and writes before the free; acquire on the last
   * drop: the freer sees everyone's. */
  uint64_t before = atomic_fetch_sub_explicit(&cq->refs, k, memory_order_acq_rel);
  ACTIO__ASSERT(before >= k);
  if (before != k)
    return;
  ACTIO__ASSERT(atomic_load_explicit(&cq->done, memory_order_relaxed) == CQ_CLOSED);
  ACTIO__ASSERT(cq->ready == NULL);
  pthread_mutex_destroy(&cq->drain_mu);
  free(cq);
}

static void ring(int fd) {
  uint64_t one = 1;
  /* Only EAGAIN can fail it (a counter near 2^64): readable already. */
  ssize_t w = write(fd, &one, sizeof one);
  (void)w;
}

/* The done callback, on the completing thread (or in actio_cq_add's, for a
 * future complete already). Its registration's reference keeps the queue
 * until the push; one taken before a push onto an empty stack keeps it
 * until the eventfd is written. */
static void on_complete(actio_future *f, void *arg) {
  cq_node *n = arg;
  actio_cq *cq = n->link.cq;
  ACTIO__ASSERT(n->f == f);
  (void)f;
  uint64_t ringing = 0;
  cq_node *head = atomic_load_explicit(&cq->done, memory_order_relaxed);
  for (;;) {
    if (head == CQ_CLOSED) { /* destroyed: the registration ends here */
      n->link.next = NULL;
      cq_unref(cq, release_nodes(n) + ringing);
      return;
    }
    if (head == NULL && !ringing) {
      /* Relaxed: our registration's reference is held, so the queue is
       * there; the release of the CAS below publishes the count to a
       * destroy whose exchange reads from it. */
      atomic_fetch_add_explicit(&cq->refs, CQ_RINGING, memory_order_relaxed);
      ringing = CQ_RINGING;
    }
    n->link.next = head;
    /* Release: the node's fields before it is reachable. Acquire: when we
     * replace the NULL a drain's exchange left, we read from that exchange
     * (release), so its reset of the eventfd happened before our write
     * below: that write is never the one a reset swallows while our node
     * waits. Relaxed on failure: only `head` is read, and the loop comes
     * back through here. */
    if (atomic_compare_exchange_weak_explicit(&cq->done, &head, n, memory_order_acq_rel,
                                              memory_order_relaxed))
      break;
  }
  if (head == NULL)
    ring(cq->fd); /* empty to nonempty: the only write */
  if (ringing)
    cq_unref(cq, ringing);
}

int actio_cq_add(actio_cq *cq, actio_future *f, uint64_t tag) {
  if (cq == NULL || f == NULL)
    return ACTIO_EINVAL;
  cq_node *n = actio__recycle_new(&nodes);
  if (n == NULL)
    return ACTIO_ENOMEM;
  n->link.cq = cq;
  n->f = f;
  n->tag = tag;
  /* Before the registration, whose callback may end it at once. Relaxed:
   * destroy reads the sum only once no one adds (the caller's ordering). */
  _Atomic uint64_t *adds = &cq->adds[shard()].n;
  atomic_fetch_add_explicit(adds, 1, memory_order_relaxed);
  int rc = actio__future_on_done_queued(f, on_complete, n);
  if (rc != 0) {
    atomic_fetch_sub_explicit(adds, 1, memory_order_relaxed);
    actio__recycle_free(&nodes, n);
  }
  return rc;
}

/* Moves the completed stack, newest first, to `ready`, oldest first. Under
 * drain_mu with `ready` empty. Returns 0 when there was nothing. */
static int take_done(actio_cq *cq) {
  /* Acquire: the nodes' fields; release: a callback that pushes onto the
   * NULL left here reads from this exchange, so our eventfd reset before it
   * happens before that callback's write (see on_complete). */
  cq_node *n = atomic_exchange_explicit(&cq->done, NULL, memory_order_acq_rel);
  ACTIO__ASSERT(n != CQ_CLOSED); /* a drain racing destroy */
  if (n == NULL)
    return 0;
  cq_node *rev = NULL;
  while (n != NULL) {
    /* The walk waits for each node; meanwhile its future (the drain's
     * unmark, the caller's status and unref) comes in. */
    __builtin_prefetch(n->f, 1);
    cq_node *next = n->link.next;
    n->link.next = rev;
    rev = n;
    n = next;
  }
  cq->ready = rev;
  return 1;
}

int actio_cq_drain(actio_cq *cq, actio_cq_event *out, size_t max) {
  if (cq == NULL || (out == NULL && max > 0))
    return ACTIO_EINVAL;
  if (max > INT_MAX)
    max = INT_MAX;
  pthread_mutex_lock(&cq->drain_mu);
  size_t n = 0;
  int reset = 0;
  for (;;) {
    while (n < max && cq->ready != NULL) {
      cq_node *e = cq->ready;
      cq->ready = e->link.next;
      out[n].tag = e->tag;
      out[n].future = e->f;
      actio__future_queue_unmark(e->f);
      actio__recycle_free(&nodes, e);
      n++;
    }
    if (n == max)
      break;
    /* Room left and nothing taken: reset the eventfd before looking again,
     * so a completion pushed after the look rings it anew. Relaxed: the
     * exchange in take_done is what orders. */
    if (atomic_load_explicit(&cq->done, memory_order_relaxed) == NULL) {
      if (reset)
        break;
      uint64_t count;
      ssize_t r = read(cq->fd, &count, sizeof count); /* EAGAIN: not rung */
      (void)r;
      reset = 1;
    }
    if (!take_done(cq))
      break;
  }
  /* Reset, then more taken than `max`: events remain, so ring again. */
  if (reset && cq->ready != NULL)
    ring(cq->fd);
  pthread_mutex_unlock(&cq->drain_mu);
  /* The drained registrations end, at once; never the last reference: the
   * caller holds the handle's. */
  if (n > 0)
    cq_unref(cq, n);
  return (int)n;
}

void actio_cq_destroy(actio_cq *cq) {
  if (cq == NULL)
    return;
  pthread_mutex_lock(&cq->drain_mu);
  uint64_t k = release_nodes(cq->ready);
  cq->ready = NULL;
  pthread_mutex_unlock(&cq->drain_mu);
  /* Acq_rel: the pushed nodes' fields, and the count of every callback
   * whose push came before; every callback after this finds CQ_CLOSED,
   * frees its own node and never writes the eventfd. */
  k += release_nodes(atomic_exchange_explicit(&cq->done, CQ_CLOSED, memory_order_acq_rel));
  /* No one adds any more: the bias becomes the registrations made, of
   * which those still pending end as their callbacks find CQ_CLOSED.
   * Relaxed reads: the caller ordered the adds before this. Acq_rel on the
   * trade, as on every change of the count. */
  uint64_t made = 0;
  for (int i = 0; i < SHARDS; i++)
    made += atomic_load_explicit(&cq->adds[i].n, memory_order_relaxed);
  atomic_fetch_add_explicit(&cq->refs, made - REFS_BIAS, memory_order_acq_rel);
  /* Now below CQ_RINGING once no callback rings (registrations pending and
   * the handle count less). Acquire: the writes of those that pushed onto
   * an empty stack before the exchange are done (each is one system call
   * away); the eventfd can go now, while pending registrations keep only
   * the memory. */
  while (atomic_load_explicit(&cq->refs, memory_order_acquire) >= CQ_RINGING)
    sched_yield();
  close(cq->fd);
  cq_unref(cq, k + 1);
}

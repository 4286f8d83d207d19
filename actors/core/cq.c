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

/* Marks the stack of a destroyed queue: a callback that finds it frees its
 * own node, and nothing is pushed after destroy took the stack. */
static cq_node cq_closed_sentinel;
#define CQ_CLOSED (&cq_closed_sentinel)

/* A ringing callback's count, in the high bits of refs: destroy waits for
 * them to be gone before it closes the eventfd, while registrations still
 * pending (never to write it: they find CQ_CLOSED) keep only the memory. */
#define CQ_RINGING ((uint64_t)1 << 40)

struct actio_cq {
  /* Completed, newest first: pushed by done callbacks (a CAS), taken whole
   * by the drain (an exchange); CQ_CLOSED once destroyed. Its own line:
   * completing threads hammer it. */
  _Alignas(64) _Atomic(cq_node *) done;
  /* 1 for the handle, 1 per registration until its event is drained or
   * released, and CQ_RINGING per callback between its push onto an empty
   * stack and its write of the eventfd: the last one frees the queue. A
   * completion that finds the stack nonempty touches neither this nor
   * anything else of the queue after its push. */
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
  atomic_init(&cq->refs, 1);
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
    free(n);
    n = next;
  }
  return k;
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
  cq_node *n = malloc(sizeof *n);
  if (n == NULL)
    return ACTIO_ENOMEM;
  int rc = actio__future_queue_mark(f);
  if (rc != 0) {
    free(n);
    return rc;
  }
  n->link.cq = cq;
  n->f = f;
  n->tag = tag;
  actio_future_ref(f);
  /* Relaxed: the caller holds the handle's reference, so nothing to order. */
  atomic_fetch_add_explicit(&cq->refs, 1, memory_order_relaxed);
  rc = actio_future_on_done(f, on_complete, n);
  if (rc != 0) {
    atomic_fetch_sub_explicit(&cq->refs, 1, memory_order_relaxed); /* never 0: ours */
    actio_future_unref(f);
    actio__future_queue_unmark(f);
    free(n);
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
      free(e);
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
  /* The drained registrations' references, at once; never the last: the
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
  /* Acquire: the writes of those that pushed onto an empty stack before
   * the exchange are done (each is one system call away); the eventfd can
   * go now, while pending registrations keep only the memory. */
  while (atomic_load_explicit(&cq->refs, memory_order_acquire) >= CQ_RINGING)
    sched_yield();
  close(cq->fd);
  cq_unref(cq, k + 1);
}

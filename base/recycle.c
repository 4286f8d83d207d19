/* recycle.c: blocks handed back through per-thread lists and a depot of
 * batches (see recycle.h). */
#include "base/recycle.h"

#include <pthread.h>
#include <stdlib.h>

#include "base/asan.h"
#include "base/debug.h"

/* This thread's free blocks of each kind: a list linked through each
 * block's first link, and whole batches taken from the depot. */
typedef struct kept {
  void *list;
  unsigned n;
  unsigned dry;  /* makes left before the depot is looked at again */
  void *batches; /* linked through their first block's second link */
  size_t size;   /* of a block, once it keeps one */
} kept;
static _Thread_local kept mine[ACTIO__RECYCLE_KINDS];
static _Thread_local int held; /* the key is set for this thread */
static pthread_key_t exit_key; /* only for its destructor */
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;
static int exit_key_made; /* pthread_key_create succeeded (set in the once) */

/* A kept block's two links: 0, the next block of its list; 1, in a
 * batch's first block, the next batch. At the block's start; under ASan
 * at its end, unpoisoned while the rest is poisoned (base/asan.h), so
 * that a use after release (of a future's state word first) is reported:
 * LeakSanitizer follows no pointer in poisoned memory, and would take
 * every block behind a list's first for a leak. */
#ifdef ACTIO__ASAN
#define LINKS_AT(size) ((size) - 2 * sizeof(void *))
#else
#define LINKS_AT(size) ((void)(size), (size_t)0)
#endif
static void **link_of(size_t size, void *b, int i) {
  return (void **)(void *)((char *)b + LINKS_AT(size)) + i;
}

static void free_list(size_t size, void *b) {
  while (b != NULL) {
    void *next = *link_of(size, b, 0);
    free(b);
    b = next;
  }
}

/* The thread exits: its blocks go back to the heap. */
static void kept_exit(void *unused) {
  (void)unused;
  held = 0; /* the key is cleared before its destructor runs */
  for (int k = 0; k < ACTIO__RECYCLE_KINDS; k++) {
    size_t size = mine[k].size;
    free_list(size, mine[k].list);
    for (void *b = mine[k].batches, *next; b != NULL; b = next) {
      next = *link_of(size, b, 1);
      free_list(size, b);
    }
    mine[k] = (kept){0};
  }
}

static void exit_key_make(void) { exit_key_made = pthread_key_create(&exit_key, kept_exit) == 0; }

/* This thread holds blocks now: have them freed when it exits (a block
 * freed by a later destructor sets the key again, and is freed too).
 * Returns 0, or -1 when no exit hook can be set (no key left in the
 * process, no memory for the thread's slot): the thread keeps nothing. */
static int hold(void) {
  if (held)
    return 0; /* once a thread: a list that empties and fills again at every
                 block would pay a once and a setspecific each time */
  pthread_once(&exit_once, exit_key_make);
  if (!exit_key_made || pthread_setspecific(exit_key, mine) != 0) /* non-NULL: kept_exit runs */
    return -1;
  held = 1;
  return 0;
}

/* Takes the depot's whole stack into k's batches, if it holds any: 1 if
 * it did. The exchange takes all, so no batch is popped under another
 * thread's feet (no ABA: a push's CAS only compares the top). */
static int take_depot(actio__recycler *r, kept *k) {
  /* A relaxed look first: the line is taken only when it holds a batch.
   * Acquire: the batches' links, written before the CASes that pushed
   * them (each a release, in one release sequence of RMWs). */
  void *top;
  if (atomic_load_explicit(&r->depot, memory_order_relaxed) == NULL ||
      (top = atomic_exchange_explicit(&r->depot, NULL, memory_order_acquire)) == NULL)
    return 0;
  unsigned n = 1;
  void *last = top;
  for (; *link_of(r->size, last, 1) != NULL; last = *link_of(r->size, last, 1))
    n++;
  /* Relaxed: a count only, for the bound; taken after the batches were,
   * so it never reads fewer than the depot holds. */
  atomic_fetch_sub_explicit(&r->batches, n, memory_order_relaxed);
  *link_of(r->size, last, 1) = k->batches;
  k->batches = top;
  k->size = r->size;
  if (hold() != 0) { /* kept, they would leak at the thread's exit */
    k->batches = *link_of(r->size, last, 1);
    *link_of(r->size, last, 1) = NULL;
    for (void *b = top, *next; b != NULL; b = next) {
      next = *link_of(r->size, b, 1);
      free_list(r->size, b);
    }
    return 0;
  }
  return 1;
}

void *actio__recycle_new(actio__recycler *r) {
  kept *k = &mine[r->kind];
  if (k->list == NULL) {
    /* A depot found empty is looked at again a batch of makes later: a
     * thread that makes faster than others free pays one look per batch. */
    if (k->batches == NULL && (k->dry > 0 || !take_depot(r, k))) {
      k->dry = k->dry > 0 ? k->dry - 1 : ACTIO__RECYCLE_BATCH;
      return malloc(r->size);
    }
    k->list = k->batches;
    k->batches = *link_of(r->size, k->list, 1);
    k->n = ACTIO__RECYCLE_BATCH;
  }
  void *b = k->list;
  k->list = *link_of(r->size, b, 0);
  k->n--;
  ACTIO__ASAN_UNPOISON(b, LINKS_AT(r->size));
  return b;
}

void actio__recycle_free(actio__recycler *r, void *block) {
  if (block == NULL)
    return;
  ACTIO__ASSERT(r->size >= 2 * sizeof(void *) && r->size % sizeof(void *) == 0);
  kept *k = &mine[r->kind];
  if (k->n == ACTIO__RECYCLE_BATCH) {
    /* Relaxed: a count only. Concurrent pushers may each pass the check:
     * the bound is passed by at most one batch each. */
    if (atomic_load_explicit(&r->batches, memory_order_relaxed) < ACTIO__RECYCLE_DEPOT) {
      atomic_fetch_add_explicit(&r->batches, 1, memory_order_relaxed);
      void *top = atomic_load_explicit(&r->depot, memory_order_relaxed);
      do
        *link_of(r->size, k->list, 1) = top;
      /* Release: the batch's links before it is reachable. Relaxed on
       * failure: nothing read but the top. */
      while (!atomic_compare_exchange_weak_explicit(&r->depot, &top, k->list,
                                                    memory_order_release,
                                                    memory_order_relaxed));
    } else {
      free_list(r->size, k->list);
    }
    k->list = NULL;
    k->n = 0;
  }
  if (k->list == NULL && hold() != 0) {
    free(block);
    return;
  }
  k->size = r->size;
  ACTIO__ASAN_POISON(block, LINKS_AT(r->size));
  *link_of(r->size, block, 0) = k->list;
  k->list = block;
  k->n++;
}

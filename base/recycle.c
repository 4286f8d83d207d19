/* recycle.c: blocks handed back through per-thread lists and a depot of
 * batches (see recycle.h). */
#include "base/recycle.h"

#include <pthread.h>
#include <stdlib.h>

#include "base/debug.h"

#if defined(__SANITIZE_ADDRESS__)
#define RECYCLE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RECYCLE 0
#endif
#endif
#ifndef RECYCLE
#define RECYCLE 1
#endif

/* This thread's free blocks of each kind: a list linked through each
 * block's first word, and whole batches taken from the depot. */
typedef struct kept {
  void *list;
  unsigned n;
  unsigned dry;  /* makes left before the depot is looked at again */
  void *batches; /* linked through their first block's second word */
} kept;
static _Thread_local kept mine[ACTIO__RECYCLE_KINDS];
static _Thread_local int held; /* the key is set for this thread */
static pthread_key_t exit_key; /* only for its destructor */
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;
static int exit_key_made; /* pthread_key_create succeeded (set in the once) */

/* A batch's next batch: its first block's second word. */
static void **next_batch(void *b) { return &((void **)b)[1]; }

static void free_list(void *b) {
  while (b != NULL) {
    void *next = *(void **)b;
    free(b);
    b = next;
  }
}

/* The thread exits: its blocks go back to the heap. */
static void kept_exit(void *unused) {
  (void)unused;
  held = 0; /* the key is cleared before its destructor runs */
  for (int k = 0; k < ACTIO__RECYCLE_KINDS; k++) {
    free_list(mine[k].list);
    for (void *b = mine[k].batches, *next; b != NULL; b = next) {
      next = *next_batch(b);
      free_list(b);
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
  for (; *next_batch(last) != NULL; last = *next_batch(last))
    n++;
  /* Relaxed: a count only, for the bound; taken after the batches were,
   * so it never reads fewer than the depot holds. */
  atomic_fetch_sub_explicit(&r->batches, n, memory_order_relaxed);
  *next_batch(last) = k->batches;
  k->batches = top;
  if (hold() != 0) { /* kept, they would leak at the thread's exit */
    k->batches = *next_batch(last);
    *next_batch(last) = NULL;
    for (void *b = top, *next; b != NULL; b = next) {
      next = *next_batch(b);
      free_list(b);
    }
    return 0;
  }
  return 1;
}

void *actio__recycle_new(actio__recycler *r) {
  if (!RECYCLE)
    return malloc(r->size);
  kept *k = &mine[r->kind];
  if (k->list == NULL) {
    /* A depot found empty is looked at again a batch of makes later: a
     * thread that makes faster than others free pays one look per batch. */
    if (k->batches == NULL && (k->dry > 0 || !take_depot(r, k))) {
      k->dry = k->dry > 0 ? k->dry - 1 : ACTIO__RECYCLE_BATCH;
      return malloc(r->size);
    }
    k->list = k->batches;
    k->batches = *next_batch(k->list);
    k->n = ACTIO__RECYCLE_BATCH;
  }
  void *b = k->list;
  k->list = *(void **)b;
  k->n--;
  return b;
}

void actio__recycle_free(actio__recycler *r, void *block) {
  if (!RECYCLE || block == NULL) {
    free(block);
    return;
  }
  ACTIO__ASSERT(r->size >= 2 * sizeof(void *));
  kept *k = &mine[r->kind];
  if (k->n == ACTIO__RECYCLE_BATCH) {
    /* Relaxed: a count only. Concurrent pushers may each pass the check:
     * the bound is passed by at most one batch each. */
    if (atomic_load_explicit(&r->batches, memory_order_relaxed) < ACTIO__RECYCLE_DEPOT) {
      atomic_fetch_add_explicit(&r->batches, 1, memory_order_relaxed);
      void *top = atomic_load_explicit(&r->depot, memory_order_relaxed);
      do
        *next_batch(k->list) = top;
      /* Release: the batch's links before it is reachable. Relaxed on
       * failure: nothing read but the top. */
      while (!atomic_compare_exchange_weak_explicit(&r->depot, &top, k->list,
                                                    memory_order_release,
                                                    memory_order_relaxed));
    } else {
      free_list(k->list);
    }
    k->list = NULL;
    k->n = 0;
  }
  if (k->list == NULL && hold() != 0) {
    free(block);
    return;
  }
  *(void **)block = k->list;
  k->list = block;
  k->n++;
}

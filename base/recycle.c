/* recycle.c: blocks handed back through per-thread lists and a depot of
 * batches (see recycle.h). */
#include "base/recycle.h"

#include <pthread.h>
#include <stdlib.h>

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
 * block's first word. */
typedef struct kept {
  void *list;
  unsigned n;
  unsigned dry; /* makes left before the depot is looked at again */
} kept;
static _Thread_local kept mine[ACTIO__RECYCLE_KINDS];
static pthread_key_t exit_key; /* only for its destructor */
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;

static void free_list(void *b) {
  while (b != NULL) {
    void *next = *(void **)b;
    free(b);
    b = next;
  }
}

/* The thread exits: its lists go back to the heap. */
static void kept_exit(void *unused) {
  (void)unused;
  for (int k = 0; k < ACTIO__RECYCLE_KINDS; k++) {
    free_list(mine[k].list);
    mine[k] = (kept){0};
  }
}

static void exit_key_make(void) { (void)pthread_key_create(&exit_key, kept_exit); }

/* This thread holds blocks now: have them freed when it exits (a block
 * freed by a later destructor sets the key again, and is freed too). */
static void hold(void) {
  pthread_once(&exit_once, exit_key_make);
  (void)pthread_setspecific(exit_key, mine); /* non-NULL: kept_exit runs */
}

void *actio__recycle_new(actio__recycler *r) {
  if (!RECYCLE)
    return malloc(r->size);
  kept *k = &mine[r->kind];
  /* A depot found empty is looked at again a batch of makes later: a
   * thread that makes faster than others free pays one look per batch. */
  if (k->list == NULL && k->dry > 0) {
    k->dry--;
    return malloc(r->size);
  }
  for (int i = 0; k->list == NULL && i < ACTIO__RECYCLE_SLOTS; i++) {
    /* A relaxed look first: a slot's line is taken only when it holds a
     * batch. Acquire: the batch's links, written before its CAS. */
    if (atomic_load_explicit(&r->depot[i], memory_order_relaxed) != NULL &&
        (k->list = atomic_exchange_explicit(&r->depot[i], NULL, memory_order_acquire)) != NULL) {
      k->n = ACTIO__RECYCLE_BATCH;
      hold();
    }
  }
  void *b = k->list;
  if (b == NULL) {
    k->dry = ACTIO__RECYCLE_BATCH;
    return malloc(r->size);
  }
  k->list = *(void **)b;
  k->n--;
  return b;
}

void actio__recycle_free(actio__recycler *r, void *block) {
  if (!RECYCLE || block == NULL) {
    free(block);
    return;
  }
  kept *k = &mine[r->kind];
  if (k->n == ACTIO__RECYCLE_BATCH) {
    int placed = 0;
    for (int i = 0; !placed && i < ACTIO__RECYCLE_SLOTS; i++) {
      void *none = NULL;
      /* Release: the batch's links before it is reachable. Relaxed on
       * failure: nothing read. */
      placed = atomic_load_explicit(&r->depot[i], memory_order_relaxed) == NULL &&
               atomic_compare_exchange_strong_explicit(&r->depot[i], &none, k->list,
                                                       memory_order_release,
                                                       memory_order_relaxed);
    }
    if (!placed)
      free_list(k->list);
    k->list = NULL;
    k->n = 0;
  }
  if (k->list == NULL)
    hold();
  *(void **)block = k->list;
  k->list = block;
  k->n++;
}

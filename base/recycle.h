/* recycle.h: blocks of one size that the threads freeing them hand back to
 * the threads making them, without a free and a refill each. */
#ifndef ACTIO_BASE_RECYCLE_H
#define ACTIO_BASE_RECYCLE_H

#include <stdatomic.h>
#include <stddef.h>

/*
 * A block made on one thread and freed on another (a future completed for
 * an event loop, or answered by an actor) costs glibc's malloc a free
 * into the maker's arena and a refill from it on the maker's side: a few
 * hundred instructions and two arena locks per block, where a block freed
 * and made on one thread costs a few dozen. Here a freed block goes onto
 * the freeing thread's own list; once that holds ACTIO__RECYCLE_BATCH, the
 * list is pushed whole onto the recycler's depot, a stack of batches (one
 * CAS), or goes back to the heap if the depot holds ACTIO__RECYCLE_DEPOT
 * batches already. A thread with an empty list uses a batch it took
 * earlier, or else takes the depot's whole stack (one exchange), before it
 * calls malloc. So the depot keeps at most its bound (give or take one
 * batch per thread pushing at that moment), and each thread its list and
 * the last stack it took, up to the bound again, until it makes blocks
 * once more: a thread that took a full stack and went idle keeps it while
 * the others fill the depot anew, so the blocks kept may pass the most
 * that were live at once. A thread's blocks are freed when it exits.
 * Under AddressSanitizer a kept block is poisoned (but for the two words
 * that link it, at its end), so that a use after its release is reported
 * as a use after free would be.
 */
#define ACTIO__RECYCLE_BATCH 64
#define ACTIO__RECYCLE_DEPOT 1024

/* The recyclers, one per kind of block: a thread keeps a list of each. */
enum {
  ACTIO__RECYCLE_FUTURE,
  ACTIO__RECYCLE_CALLBACK,
  ACTIO__RECYCLE_FUTURE_EXT,
  ACTIO__RECYCLE_CHAIN,
  ACTIO__RECYCLE_KINDS
};

typedef struct actio__recycler {
  size_t size; /* of a block: at least two pointers */
  unsigned kind;
  /* The depot, on a line of its own: the top batch, a list through the
   * blocks' first links, the next batch in its first block's second link
   * (recycle.c); and about how many batches it holds (at least as many). */
  _Alignas(64) _Atomic(void *) depot;
  _Atomic unsigned batches;
} actio__recycler;

/* A static recycler of blocks of `size` bytes, of kind `kind`. */
#define ACTIO__RECYCLER(sz, k) {.size = (sz), .kind = (k)}

/* A block of r->size bytes (not zeroed), or NULL when out of memory. Any
 * thread. */
void *actio__recycle_new(actio__recycler *r);
/* Takes back a block of actio__recycle_new (NULL: nothing). Any thread. */
void actio__recycle_free(actio__recycler *r, void *block);

#endif

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
 * list goes whole into an empty slot of the recycler's depot (one CAS), or
 * back to the heap if every slot is full; a thread with an empty list
 * takes a slot's whole list (one exchange) before it calls malloc. So at
 * most ACTIO__RECYCLE_SLOTS batches wait in a depot and one in each
 * thread's list, which is freed when the thread exits. Under
 * AddressSanitizer blocks go straight to malloc and free, so that a use
 * after free is still caught.
 */
#define ACTIO__RECYCLE_BATCH 64
#define ACTIO__RECYCLE_SLOTS 16

/* The recyclers, one per kind of block: a thread keeps a list of each. */
enum { ACTIO__RECYCLE_FUTURE, ACTIO__RECYCLE_KINDS };

typedef struct actio__recycler {
  size_t size; /* of a block: at least a pointer */
  unsigned kind;
  _Atomic(void *) depot[ACTIO__RECYCLE_SLOTS]; /* batches, each a list */
} actio__recycler;

/* A static recycler of blocks of `size` bytes, of kind `kind`. */
#define ACTIO__RECYCLER(sz, k) {.size = (sz), .kind = (k)}

/* A block of r->size bytes (not zeroed), or NULL when out of memory. Any
 * thread. */
void *actio__recycle_new(actio__recycler *r);
/* Takes back a block of actio__recycle_new (NULL: nothing). Any thread. */
void actio__recycle_free(actio__recycler *r, void *block);

#endif

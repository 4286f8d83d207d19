/* asan.h: AddressSanitizer annotations for memory a pool keeps for reuse. */
#ifndef ACTIO_BASE_ASAN_H
#define ACTIO_BASE_ASAN_H

/* A block a pool keeps (a recycler's, a timer slab's) is still allocated
 * as far as ASan knows: a use after its release would go unseen. The pool
 * poisons it when it takes it back and unpoisons it when it hands it out,
 * so that ASan reports such a use as it would a use after free. Both cost
 * nothing outside ASan builds. */
#if defined(__SANITIZE_ADDRESS__)
#define ACTIO__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ACTIO__ASAN 1
#endif
#endif
#ifdef ACTIO__ASAN
#include <sanitizer/asan_interface.h>
#define ACTIO__ASAN_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define ACTIO__ASAN_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define ACTIO__ASAN_POISON(p, n) ((void)(p), (void)(n))
#define ACTIO__ASAN_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* The pool's own link in a poisoned block: the poison is lifted only
 * while the pool reads or writes it. */
static inline void *actio__asan_get(void **w) {
  ACTIO__ASAN_UNPOISON(w, sizeof *w);
  void *v = *w;
  ACTIO__ASAN_POISON(w, sizeof *w);
  return v;
}

static inline void actio__asan_set(void **w, void *v) {
  ACTIO__ASAN_UNPOISON(w, sizeof *w);
  *w = v;
  ACTIO__ASAN_POISON(w, sizeof *w);
}

#endif

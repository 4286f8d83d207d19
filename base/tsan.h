/* tsan.h: ThreadSanitizer annotations for hand-offs it cannot see. */
#ifndef ACTIO_BASE_TSAN_H
#define ACTIO_BASE_TSAN_H

/* CK's loads and stores are plain volatile accesses and its fences are inline
 * assembly, invisible to TSan. Code that hands data from one thread to another
 * through CK says so: RELEASE before publishing, ACQUIRE after taking. Both
 * cost nothing outside TSan builds. */
#if defined(__SANITIZE_THREAD__)
#define ACTIO__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ACTIO__TSAN 1
#endif
#endif
#ifdef ACTIO__TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define ACTIO__TSAN_RELEASE(p) __tsan_release((void *)(p))
#define ACTIO__TSAN_ACQUIRE(p) __tsan_acquire((void *)(p))
#else
#define ACTIO__TSAN_RELEASE(p) ((void)(p))
#define ACTIO__TSAN_ACQUIRE(p) ((void)(p))
#endif

/* TSan builds take CK's builtins port (CMakeLists.txt), where a load or a
 * store is a plain volatile access and a fetch-and-store a CAS loop that
 * starts with one: TSan would see a race on every CK variable. Here they
 * are the atomic accesses CK means them to be, so that no suppression is
 * needed and every race TSan reports is on a plain access of ours. Loads and
 * stores are relaxed, as CK promises no order (its fences do, and TSan does
 * not model fences: hand-offs behind them are annotated as above); the
 * exchange is sequentially consistent, as the port's __sync builtins are. */
#ifdef ACTIO__TSAN
#include <ck_pr.h>
#undef ck_pr_load_32
#undef ck_pr_load_64
#undef ck_pr_store_32
#undef ck_pr_store_64
#define ck_pr_load_32(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define ck_pr_load_64(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define ck_pr_store_32(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define ck_pr_store_64(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define ck_pr_fas_64(p, v) __atomic_exchange_n((p), (v), __ATOMIC_SEQ_CST)
#endif

#endif

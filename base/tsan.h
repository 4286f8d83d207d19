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

#endif

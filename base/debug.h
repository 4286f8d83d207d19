/* debug.h: invariants stated as assertions (curl's DEBUGASSERT): checked in
 * Debug and sanitizer builds, free in release builds; and names for the
 * threads actio starts, as top -H, gdb and perf show them. */
#ifndef ACTIO_BASE_DEBUG_H
#define ACTIO_BASE_DEBUG_H

/* ACTIO_DEBUG is defined by the build for CMAKE_BUILD_TYPE=Debug and for
 * every sanitizer build (see CMakeLists.txt). A failed assertion prints the
 * condition and where it broke, then aborts: a broken invariant must stop
 * the process before it corrupts state silently. */
#ifdef ACTIO_DEBUG
void actio__assert_fail(const char *cond, const char *file, int line,
                        const char *func) __attribute__((noreturn));
#define ACTIO__ASSERT(cond)                                                   \
  ((cond) ? (void)0 : actio__assert_fail(#cond, __FILE__, __LINE__, __func__))
#else
#define ACTIO__ASSERT(cond) ((void)sizeof(cond))
#endif

/* Names the calling thread "<what>-<i>" (i < 0: "<what>"), what cut to
 * fit the 15 bytes Linux keeps. Best effort: nothing fails for it. */
void actio__thread_name(const char *what, int i);

#endif

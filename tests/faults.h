/* faults.h: fault injection for test_faults: the n-th call of a kind fails
 * while armed (tests/faults.c, linked in place of the library's calls). */
#ifndef ACTIO_TEST_FAULTS_H
#define ACTIO_TEST_FAULTS_H

/* FAULTS_SANITIZER in a sanitizer build, FAULTS_ASAN under ASan. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define FAULTS_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define FAULTS_SANITIZER 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define FAULTS_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FAULTS_ASAN 1
#endif
#endif

/* What fails: allocations (malloc and its kin, and the libcurl and libpq
 * constructors, which return NULL only without memory) with ENOMEM, thread
 * creation with EAGAIN, eventfd creation with EMFILE, fsync, syncfs and
 * sync_file_range (counted as one kind) with EIO (a disk that failed to
 * write). */
typedef enum fault_kind {
  FAULT_ALLOC, FAULT_THREAD, FAULT_EVENTFD, FAULT_FSYNC, FAULT_KINDS
} fault_kind;

/* Counts the calls of `kind` from now on, failing the n-th (none if n is 0).
 * Any thread; one armed kind at a time. */
void fault_arm(fault_kind kind, long n);

/* Stops counting; returns how many calls of the armed kind were made. */
long fault_disarm(void);

/* 1 once the armed fault has been injected. Any thread. */
int fault_injected(void);

#endif

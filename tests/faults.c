/* faults.c: the stand-ins test_faults links in place of the library's own
 * calls (CMake renames them in a copy of libactio.a with objcopy, so that
 * neither libcurl's nor libpq's nor the test's calls are counted). While
 * armed, the n-th call of the armed kind fails as it would for real. */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "faults.h"

/* Under a sanitizer FAULTS_TRACE=1 prints where each fault is injected. */
#ifdef FAULTS_SANITIZER
#include <sanitizer/common_interface_defs.h>
#endif

/* The armed kind (-1: none), the calls counted and the one that fails.
 * Relaxed throughout but for the kind: arming publishes the target with
 * it (release), and a call that sees the kind sees the target (acquire). */
static _Atomic int armed = -1;
static _Atomic long calls, target;
static _Atomic int injected;

void fault_arm(fault_kind kind, long n) {
  atomic_store_explicit(&calls, 0, memory_order_relaxed);
  atomic_store_explicit(&target, n, memory_order_relaxed);
  atomic_store_explicit(&injected, 0, memory_order_relaxed);
  atomic_store_explicit(&armed, (int)kind, memory_order_release);
}

long fault_disarm(void) {
  atomic_store_explicit(&armed, -1, memory_order_relaxed);
  return atomic_load_explicit(&calls, memory_order_relaxed);
}

int fault_injected(void) {
  /* Acquire: pairs with the release below, so a caller that sees a call
   * fail because of the fault also sees it counted as injected. */
  return atomic_load_explicit(&injected, memory_order_acquire);
}

/* 1 if this call of `kind` is the one to fail. */
static int fail_now(fault_kind kind) {
  if (atomic_load_explicit(&armed, memory_order_acquire) != (int)kind)
    return 0;
  long n = atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed) + 1;
  if (n != atomic_load_explicit(&target, memory_order_relaxed))
    return 0;
  atomic_store_explicit(&injected, 1, memory_order_release);
#ifdef FAULTS_SANITIZER
  if (getenv("FAULTS_TRACE") != NULL)
    __sanitizer_print_stack_trace();
#endif
  return 1;
}

#define FAIL_ALLOC(ret)          \
  do {                           \
    if (fail_now(FAULT_ALLOC)) { \
      errno = ENOMEM;            \
      return ret;                \
    }                            \
  } while (0)

/* Prototypes: no header declares the stand-ins. */
void *fault_malloc(size_t n);
void *fault_calloc(size_t n, size_t size);
void *fault_realloc(void *p, size_t n);
void *fault_aligned_alloc(size_t align, size_t n);
char *fault_strdup(const char *s);
char *fault_strndup(const char *s, size_t n);
int fault_vasprintf(char **out, const char *fmt, va_list ap);
int fault_asprintf(char **out, const char *fmt, ...);
int fault_pthread_create(pthread_t *t, const pthread_attr_t *attr,
                         void *(*fn)(void *), void *arg);
int fault_eventfd(unsigned int initval, int flags);
int fault_fsync(int fd);
int fault_syncfs(int fd);
int fault_sync_file_range(int fd, off_t offset, off_t nbytes, unsigned int flags);
CURL *fault_curl_easy_init(void);
CURLM *fault_curl_multi_init(void);
CURLSH *fault_curl_share_init(void);
struct curl_slist *fault_curl_slist_append(struct curl_slist *l, const char *s);
PGconn *fault_PQconnectStartParams(const char *const *keys,
                                   const char *const *values, int expand);
PGcancel *fault_PQgetCancel(PGconn *c);
PGresult *fault_PQmakeEmptyPGresult(PGconn *c, ExecStatusType status);

void *fault_malloc(size_t n) {
  FAIL_ALLOC(NULL);
  return malloc(n);
}

void *fault_calloc(size_t n, size_t size) {
  FAIL_ALLOC(NULL);
  return calloc(n, size);
}

void *fault_realloc(void *p, size_t n) {
  FAIL_ALLOC(NULL);
  return realloc(p, n);
}

void *fault_aligned_alloc(size_t align, size_t n) {
  FAIL_ALLOC(NULL);
  return aligned_alloc(align, n);
}

char *fault_strdup(const char *s) {
  FAIL_ALLOC(NULL);
  return strdup(s);
}

char *fault_strndup(const char *s, size_t n) {
  FAIL_ALLOC(NULL);
  return strndup(s, n);
}

int fault_vasprintf(char **out, const char *fmt, va_list ap) {
  FAIL_ALLOC(-1);
  return vasprintf(out, fmt, ap);
}

int fault_asprintf(char **out, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = fault_vasprintf(out, fmt, ap);
  va_end(ap);
  return rc;
}

CURL *fault_curl_easy_init(void) {
  FAIL_ALLOC(NULL);
  return curl_easy_init();
}

CURLM *fault_curl_multi_init(void) {
  FAIL_ALLOC(NULL);
  return curl_multi_init();
}

CURLSH *fault_curl_share_init(void) {
  FAIL_ALLOC(NULL);
  return curl_share_init();
}

struct curl_slist *fault_curl_slist_append(struct curl_slist *l, const char *s) {
  FAIL_ALLOC(NULL);
  return curl_slist_append(l, s);
}

PGconn *fault_PQconnectStartParams(const char *const *keys,
                                   const char *const *values, int expand) {
  FAIL_ALLOC(NULL);
  return PQconnectStartParams(keys, values, expand);
}

PGcancel *fault_PQgetCancel(PGconn *c) {
  FAIL_ALLOC(NULL);
  return PQgetCancel(c);
}

PGresult *fault_PQmakeEmptyPGresult(PGconn *c, ExecStatusType status) {
  FAIL_ALLOC(NULL);
  return PQmakeEmptyPGresult(c, status);
}

int fault_pthread_create(pthread_t *t, const pthread_attr_t *attr,
                         void *(*fn)(void *), void *arg) {
  if (fail_now(FAULT_THREAD))
    return EAGAIN;
  return pthread_create(t, attr, fn, arg);
}

int fault_eventfd(unsigned int initval, int flags) {
  if (fail_now(FAULT_EVENTFD)) {
    errno = EMFILE;
    return -1;
  }
  return eventfd(initval, flags);
}

int fault_fsync(int fd) {
  if (fail_now(FAULT_FSYNC)) {
    errno = EIO;
    return -1;
  }
  return fsync(fd);
}

int fault_syncfs(int fd) {
  if (fail_now(FAULT_FSYNC)) {
    errno = EIO;
    return -1;
  }
  return syncfs(fd);
}

int fault_sync_file_range(int fd, off_t offset, off_t nbytes, unsigned int flags) {
  if (fail_now(FAULT_FSYNC)) {
    errno = EIO;
    return -1;
  }
  return sync_file_range(fd, offset, nbytes, flags);
}

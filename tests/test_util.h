/* test_util.h: small helpers shared by the Check suites. */
#ifndef ACTIO_TEST_UTIL_H
#define ACTIO_TEST_UTIL_H

#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "actio.h"

/* Sanitizers slow stress tests down many times over: timeouts are generous
 * and per test case, never Check's 4-second default. */
static inline TCase *tcase_with_timeout(const char *name, double seconds) {
  TCase *tc = tcase_create(name);
  tcase_set_timeout(tc, seconds);
  return tc;
}

/* Runs the suite; returns the process exit status. */
static inline int run_suite(Suite *s) {
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* n pending futures (the caller's references), in a malloc'd array. */
static inline actio_future **make_futures(size_t n) {
  actio_future **fs = malloc(n * sizeof *fs);
  for (size_t i = 0; i < n; i++)
    ck_assert_int_eq(actio_future_create(&fs[i]), 0);
  return fs;
}

/* Drops the n references and frees the array. */
static inline void unref_futures(actio_future **fs, size_t n) {
  for (size_t i = 0; i < n; i++)
    actio_future_unref(fs[i]);
  free(fs);
}

/* Starts n threads running fn(args + i * size). */
static inline void start_threads(pthread_t *t, int n, void *(*fn)(void *),
                                 void *args, size_t size) {
  for (int i = 0; i < n; i++)
    ck_assert_int_eq(pthread_create(&t[i], NULL, fn, (char *)args + i * size), 0);
}

static inline void join_threads(pthread_t *t, int n) {
  for (int i = 0; i < n; i++)
    ck_assert_int_eq(pthread_join(t[i], NULL), 0);
}

/* Takes every pthread key the process has left (a test of what a thread
 * does without an exit hook); *n of them. Give them back with keys_return. */
static inline pthread_key_t *keys_use_up(int *n) {
  enum { MAX_KEYS = 4096 };
  pthread_key_t *keys = malloc(MAX_KEYS * sizeof *keys);
  ck_assert_ptr_nonnull(keys);
  *n = 0;
  while (*n < MAX_KEYS && pthread_key_create(&keys[*n], NULL) == 0)
    (*n)++;
  ck_assert_int_lt(*n, MAX_KEYS); /* the process's keys ran out */
  return keys;
}

static inline void keys_return(pthread_key_t *keys, int n) {
  for (int i = 0; i < n; i++)
    pthread_key_delete(keys[i]);
  free(keys);
}

/* A thread about to block (on a full mailbox, an empty one, a future) says
 * so with announce_block(&slot) right before the call; another waits with
 * await_blocked(&slot) until it sleeps in a futex wait, in the kernel: the
 * state a test of a wake-up needs, reached without assuming any time. The
 * sleep between looks only paces the polling. */
static inline void announce_block(_Atomic int *slot) {
  atomic_store_explicit(slot, (int)syscall(SYS_gettid), memory_order_release);
}

static inline void await_blocked(_Atomic int *slot) {
  int tid;
  while ((tid = atomic_load_explicit(slot, memory_order_acquire)) == 0)
    usleep(1000);
  char path[64], wchan[128];
  snprintf(path, sizeof path, "/proc/self/task/%d/wchan", tid);
  for (;;) {
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(wchan, 1, sizeof wchan - 1, f);
    fclose(f);
    wchan[n] = '\0';
    if (strstr(wchan, "futex") != NULL)
      return;
    usleep(1000);
  }
}

/* What actio_runtime_metrics_print prints for rt (free it). */
static inline char *metrics_text(actio_runtime *rt) {
  char *text = NULL;
  size_t len = 0;
  FILE *out = open_memstream(&text, &len);
  ck_assert_ptr_nonnull(out);
  actio_runtime_metrics_print(rt, out);
  fclose(out);
  return text;
}

/* A gate that a callback running on an actor's worker waits at until the
 * test opens it: the worker is held, so what is sent meanwhile waits in the
 * mailbox (or the worker's inbox) in a known state. */
typedef struct test_gate {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int entered, open;
} test_gate;

#define TEST_GATE_INIT {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0}

/* In the callback: says it entered, then waits for the gate to open. */
static inline void gate_hold(test_gate *g) {
  pthread_mutex_lock(&g->mu);
  g->entered = 1;
  pthread_cond_broadcast(&g->cv);
  while (!g->open)
    pthread_cond_wait(&g->cv, &g->mu);
  pthread_mutex_unlock(&g->mu);
}

/* In the test: waits until the callback holds the worker. */
static inline void gate_wait_held(test_gate *g) {
  pthread_mutex_lock(&g->mu);
  while (!g->entered)
    pthread_cond_wait(&g->cv, &g->mu);
  pthread_mutex_unlock(&g->mu);
}

static inline void gate_open(test_gate *g) {
  pthread_mutex_lock(&g->mu);
  g->open = 1;
  pthread_cond_broadcast(&g->cv);
  pthread_mutex_unlock(&g->mu);
}

/* Sends with send(arg, &f) until a send fails (an actor's stop closed its
 * mailbox); keeps the first `cap` futures in fs (*n of them) and counts the
 * others, let go at once, in *extra. Returns the failure. */
static inline int send_until_refused(int (*send)(void *arg, actio_future **f), void *arg,
                                     actio_future **fs, int cap, int *n, int *extra) {
  actio_future *f;
  int rc;
  while ((rc = send(arg, &f)) == 0) {
    if (*n < cap) {
      fs[(*n)++] = f;
    } else {
      (*extra)++;
      actio_future_unref(f);
    }
  }
  return rc;
}

static inline void *stop_now_thread(void *actor) {
  actio_actor_stop(actor, ACTIO_STOP_NOW);
  return NULL;
}

#endif

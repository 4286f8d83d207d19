/* test_util.h: small helpers shared by the Check suites. */
#ifndef ACTIO_TEST_UTIL_H
#define ACTIO_TEST_UTIL_H

#include <check.h>
#include <pthread.h>
#include <stdlib.h>

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

#endif

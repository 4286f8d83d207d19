/* debug.c: where a broken invariant stops the process, and thread names
 * (see debug.h). */
#include "base/debug.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef ACTIO_DEBUG
void actio__assert_fail(const char *cond, const char *file, int line,
                        const char *func) {
  fprintf(stderr, "actio: invariant broken: %s (%s:%d, %s)\n", cond, file,
          line, func);
  abort();
}
#endif

void actio__thread_name(const char *what, int i) {
#ifdef __linux__
  char num[16] = "", name[16];
  if (i >= 0)
    snprintf(num, sizeof num, "-%d", i);
  size_t n = strlen(num), room = sizeof name - 1 - n, w = strlen(what);
  if (w > room)
    w = room;
  memcpy(name, what, w);
  memcpy(name + w, num, n + 1);
  (void)pthread_setname_np(pthread_self(), name);
#else
  (void)what;
  (void)i;
#endif
}

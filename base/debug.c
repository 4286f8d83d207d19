/* debug.c: where a broken invariant stops the process (see debug.h). */
#include "base/debug.h"

#include <stdio.h>
#include <stdlib.h>

#ifdef ACTIO_DEBUG
void actio__assert_fail(const char *cond, const char *file, int line,
                        const char *func) {
  fprintf(stderr, "actio: invariant broken: %s (%s:%d, %s)\n", cond, file,
          line, func);
  abort();
}
#endif

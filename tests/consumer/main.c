/* main.c: the smallest program against an installed actio: one future. */
#include <actio.h>
#include <stdio.h>

int main(void) {
  actio_future *f;
  if (actio_future_resolved(&f, "installed", NULL) != 0)
    return 1;
  int ok = actio_future_wait(f, -1) == 0;
  printf("actio %d.%d.%d: %s\n", ACTIO_VERSION_MAJOR, ACTIO_VERSION_MINOR,
         ACTIO_VERSION_PATCH, (const char *)actio_future_value(f));
  actio_future_unref(f);
  return ok ? 0 : 1;
}

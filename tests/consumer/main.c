/* main.c: a program built against an installed actio: it reads a file
 * through a file actor, prints its size and FNV-1a checksum, and writes a
 * copy atomically. Exit status 1 on any failure.
 *   consumer IN OUT */
#include <actio.h>
#include <stdint.h>
#include <stdio.h>

/* Waits for f; on failure prints why. Returns its status. */
static int await(actio_future *f, const char *what) {
  int st = actio_future_wait(f, -1);
  if (st != 0)
    fprintf(stderr, "%s: %s\n", what, actio_future_errmsg(f));
  return st;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s IN OUT\n", argv[0]);
    return 2;
  }
  actio_runtime *rt = NULL;
  actio_actor *files;
  actio_future *rd, *wr;
  int rc = actio_runtime_create(&rt, NULL);
  if (rc == 0 && (rc = actio_file_spawn(rt, NULL, &files)) == 0 &&
      (rc = actio_file_read(files, argv[1], &rd)) == 0) {
    if ((rc = await(rd, "read")) == 0) {
      const actio_buf *b = actio_future_value(rd);
      uint64_t h = 0xcbf29ce484222325u; /* FNV-1a, 64 bits */
      for (size_t i = 0; i < b->len; i++)
        h = (h ^ (unsigned char)b->data[i]) * 0x100000001b3u;
      printf("actio %d.%d.%d: %s: %zu bytes, fnv1a64 %016llx\n", ACTIO_VERSION_MAJOR,
             ACTIO_VERSION_MINOR, ACTIO_VERSION_PATCH, argv[1], b->len, (unsigned long long)h);
      if ((rc = actio_file_write(files, argv[2], b->data, b->len, ACTIO_WRITE_ATOMIC, &wr)) == 0) {
        rc = await(wr, "write");
        actio_future_unref(wr);
      }
    }
    actio_future_unref(rd);
  }
  if (rc != 0)
    fprintf(stderr, "consumer: %s\n", actio_strerror(rc));
  actio_runtime_destroy(rt);
  return rc == 0 ? 0 : 1;
}

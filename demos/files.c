/* files.c: write a file, read it back, iterate its lines, and write many
 * files at once: what aiofiles does for Python, with futures.
 *   actio-demo-files [folder]   (default: a new folder under /tmp, removed
 *                                at the end) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <actio.h>

/* Called on a file worker with batches of complete lines. */
static int print_line(void *arg, const actio_line *lines, size_t n) {
  int *number = arg;
  for (size_t i = 0; i < n; i++)
    printf("  line %d: %.*s\n", ++*number, (int)lines[i].len, lines[i].data);
  return 0;
}

static int check(int rc, const char *what) {
  if (rc != 0)
    fprintf(stderr, "%s: %s\n", what, actio_strerror(rc));
  return rc;
}

/* Waits for f and reports its error, if any. Returns its status. */
static int await(actio_future *f, const char *what) {
  int st = actio_future_wait(f, -1);
  if (st != 0)
    fprintf(stderr, "%s failed: %s\n", what, actio_future_errmsg(f));
  return st;
}

/* rm -r for a flat folder: list it, unlink every file at once, then the
 * folder. Returns 0 or the first failure's status. */
static int remove_folder(actio_actor *files, const char *dir) {
  actio_future *f, *all;
  int st = actio_file_list(files, dir, &f);
  if (st != 0)
    return st;
  if ((st = await(f, "list")) != 0) {
    actio_future_unref(f);
    return st;
  }
  char **names = actio_future_value(f), path[4200];
  size_t n = 0, started = 0;
  while (names[n])
    n++;
  actio_future **rms = calloc(n + 1, sizeof *rms);
  for (; rms && started < n; started++) {
    snprintf(path, sizeof path, "%s/%s", dir, names[started]);
    if ((st = actio_file_unlink(files, path, &rms[started])) != 0)
      break;
  }
  if (rms && st == 0 && (st = actio_gather(rms, started, ACTIO_GATHER_FAIL_FAST, &all)) == 0) {
    st = await(all, "unlink");
    actio_future_unref(all);
  }
  for (size_t i = 0; rms && i < started; i++)
    actio_future_unref(rms[i]);
  free(rms);
  actio_future_unref(f);
  if (st == 0 && (st = actio_file_unlink(files, dir, &f)) == 0) { /* empty now */
    if ((st = await(f, "remove the folder")) == 0)
      printf("removed %s and the %zu files in it\n", dir, n);
    actio_future_unref(f);
  }
  return st;
}

int main(int argc, char **argv) {
  char tmpl[] = "/tmp/actio-demo-XXXXXX";
  const char *dir = argc > 1 ? argv[1] : mkdtemp(tmpl);
  char path[4096];
  actio_runtime *rt;
  actio_actor *files;
  actio_future *f;
  if (dir == NULL || check(actio_runtime_create(&rt, NULL), "runtime") ||
      check(actio_file_spawn(rt, NULL, &files), "file actor"))
    return 1;

  /* async with aiofiles.open(path, "w") as f: await f.write(text) */
  snprintf(path, sizeof path, "%s/hello.txt", dir);
  const char *text = "Hello from actio!\nA second line.\r\nAnd a last one";
  if (check(actio_file_write(files, path, text, strlen(text), ACTIO_WRITE_ATOMIC, &f), "write") ||
      await(f, "write"))
    return 1;
  actio_future_unref(f);
  printf("wrote %s\n", path);

  /* content = await f.read() */
  if (check(actio_file_read(files, path, &f), "read") || await(f, "read"))
    return 1;
  actio_buf *buf = actio_future_value(f);
  printf("read %zu bytes back\n", buf->len);
  actio_future_unref(f);

  /* async for line in f: print(line) */
  int number = 0;
  if (check(actio_file_lines(files, path, print_line, &number, &f), "lines") ||
      await(f, "lines"))
    return 1;
  printf("%llu lines\n", (unsigned long long)*(uint64_t *)actio_future_value(f));
  actio_future_unref(f);

  /* await asyncio.gather(*(write(i) for i in range(100))) */
  enum { N = 100 };
  actio_future *writes[N], *all;
  for (int i = 0; i < N; i++) {
    char name[4200], body[64];
    snprintf(name, sizeof name, "%s/note-%03d.txt", dir, i);
    int len = snprintf(body, sizeof body, "note %d\n", i);
    if (check(actio_file_write(files, name, body, (size_t)len, 0, &writes[i]), "write"))
      return 1;
  }
  if (check(actio_gather(writes, N, ACTIO_GATHER_FAIL_FAST, &all), "gather") ||
      await(all, "gather"))
    return 1;
  printf("wrote %d files concurrently into %s\n", N, dir);
  for (int i = 0; i < N; i++)
    actio_future_unref(writes[i]);
  actio_future_unref(all);

  /* A missing file is an error with the operation and the path in it. */
  snprintf(path, sizeof path, "%s/missing.txt", dir);
  if (actio_file_read(files, path, &f) == 0) {
    actio_future_wait(f, -1);
    printf("as expected: %s (%s)\n", actio_future_errmsg(f),
           actio_err_name(actio_future_status(f)));
    actio_future_unref(f);
  }

  if (argc < 2) /* a folder made here is removed */
    remove_folder(files, dir);
  actio_runtime_destroy(rt);
  return 0;
}

/* files.c: write a file, read it back, iterate its lines, and write many
 * files at once: what aiofiles does for Python, with futures. Each step
 * checks what it got; the exit status is 1 if any step went wrong.
 *   actio-demo-files [folder]   (default: a new folder under /tmp, removed
 *                                at the end) */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <actio.h>

static const char *const want_lines[] = {"Hello from actio!", "A second line.", "And a last one"};
enum { LINES = sizeof want_lines / sizeof *want_lines };

/* The lines seen so far, and how many differed from want_lines. */
typedef struct {
  int number, wrong;
} line_check;

/* Called on a file worker with batches of complete lines. */
static int print_line(void *arg, const actio_line *lines, size_t n) {
  line_check *c = arg;
  for (size_t i = 0; i < n; i++) {
    int k = c->number++;
    printf("  line %d: %.*s\n", k + 1, (int)lines[i].len, lines[i].data);
    c->wrong += k >= LINES || lines[i].len != strlen(want_lines[k]) ||
                memcmp(lines[i].data, want_lines[k], lines[i].len) != 0;
  }
  return 0;
}

/* Reports what went wrong; returns 1 (the exit status). */
static int wrong(const char *what) {
  fprintf(stderr, "wrong: %s\n", what);
  return 1;
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
  if (buf->len != strlen(text) || memcmp(buf->data, text, buf->len) != 0)
    return wrong("the bytes read back are not the ones written");
  actio_future_unref(f);

  /* async for line in f: print(line) */
  line_check lines = {0, 0};
  if (check(actio_file_lines(files, path, print_line, &lines, &f), "lines") ||
      await(f, "lines"))
    return 1;
  uint64_t count = *(uint64_t *)actio_future_value(f);
  printf("%llu lines\n", (unsigned long long)count);
  actio_future_unref(f);
  if (count != LINES || lines.number != LINES || lines.wrong != 0)
    return wrong("the lines are not the three written");

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

  /* ... and read them back, all at once too. */
  actio_future *reads[N];
  for (int i = 0; i < N; i++) {
    snprintf(path, sizeof path, "%s/note-%03d.txt", dir, i);
    if (check(actio_file_read(files, path, &reads[i]), "read"))
      return 1;
  }
  if (check(actio_gather(reads, N, ACTIO_GATHER_FAIL_FAST, &all), "gather") ||
      await(all, "gather"))
    return 1;
  int same = 0;
  for (int i = 0; i < N; i++) {
    char body[64];
    snprintf(body, sizeof body, "note %d\n", i);
    same += strcmp(((actio_buf *)actio_future_value(reads[i]))->data, body) == 0;
    actio_future_unref(reads[i]);
  }
  actio_future_unref(all);
  printf("read them back: %d of %d as written\n", same, N);
  if (same != N)
    return wrong("files read back differ from what was written");

  /* A missing file is an error with the operation and the path in it. */
  snprintf(path, sizeof path, "%s/missing.txt", dir);
  if (check(actio_file_read(files, path, &f), "read"))
    return 1;
  int st = actio_future_wait(f, -1);
  const char *msg = actio_future_errmsg(f);
  if (st != -ENOENT || msg == NULL || strstr(msg, path) == NULL)
    return wrong("reading a missing file did not fail with ENOENT and its path");
  printf("as expected: %s (%s)\n", msg, actio_err_name(st));
  actio_future_unref(f);

  if (argc < 2 && remove_folder(files, dir) != 0) /* a folder made here is removed */
    return 1;
  actio_runtime_destroy(rt);
  return 0;
}

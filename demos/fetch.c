/* fetch.c: fetch one page, then many pages at once, as aiohttp with
 * asyncio.gather would; then the same under a concurrency limit.
 *   actio-demo-fetch URL...      (the first URL is fetched alone first) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <actio.h>

/* One line per outcome: status, size, time, or the error. */
static void report(actio_future *f) {
  int st = actio_future_status(f);
  if (st == 0) {
    const actio_http_response *r = actio_future_value(f);
    printf("  %3ld  %8zu bytes  %7.1f ms  %s\n", r->status, r->body_len, r->total_ms, r->url);
  } else {
    printf("  ERR  %s: %s\n", actio_err_name(st), actio_future_errmsg(f));
  }
}

/* For actio_map: start item i, a GET of the i-th URL. */
static int fetch_item(size_t i, void *arg, actio_future **out) {
  void **ctx = arg; /* {http actor, URLs} */
  return actio_http_get(ctx[0], ((char **)ctx[1])[i], out);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s URL...\n", argv[0]);
    return 2;
  }
  actio_runtime *rt;
  actio_actor *http;
  actio_http_opts opts = {.timeout_ms = 10000}; /* aiohttp's ClientSession(timeout=...) */
  if (actio_runtime_create(&rt, NULL) != 0 || actio_http_spawn(rt, &opts, &http) != 0)
    return 1;

  /* async with session.get(url) as r: text = await r.text() */
  actio_future *f;
  if (actio_http_get(http, argv[1], &f) != 0)
    return 1;
  printf("one page:\n");
  if (actio_future_wait(f, -1) == 0) {
    const actio_http_response *r = actio_future_value(f);
    const char *type = actio_http_header(r, "content-type");
    size_t first = strcspn(r->body, "\n"); /* the body is NUL-terminated */
    printf("  %ld %s, %zu bytes, HTTP/%d.%d; first line: %.*s\n", r->status,
           type ? type : "(no content-type)", r->body_len, r->http_version / 10,
           r->http_version % 10, (int)(first < 60 ? first : 60), r->body);
  } else {
    report(f);
  }
  actio_future_unref(f);

  /* results = await asyncio.gather(*(get(u) for u in urls), return_exceptions=True)
   * Settle-all: one bad URL does not stop the others; each item keeps its
   * own outcome. */
  size_t n = (size_t)argc - 1;
  actio_future **fs = calloc(n, sizeof *fs), *all;
  if (!fs)
    return 1;
  for (size_t i = 0; i < n; i++)
    if (actio_http_get(http, argv[i + 1], &fs[i]) != 0)
      return 1;
  if (actio_gather(fs, n, ACTIO_GATHER_SETTLE_ALL, &all) != 0 || actio_future_wait(all, -1) != 0)
    return 1;
  printf("%zu pages at once (gather):\n", n);
  for (size_t i = 0; i < n; i++) {
    report(fs[i]);
    actio_future_unref(fs[i]);
  }
  actio_future_unref(all);
  free(fs);

  /* sem = asyncio.Semaphore(2); the same pages, at most two in flight. */
  void *ctx[2] = {http, argv + 1};
  if (actio_map(n, 2, fetch_item, ctx, ACTIO_GATHER_SETTLE_ALL, &all) != 0 ||
      actio_future_wait(all, -1) != 0)
    return 1;
  size_t ok = 0;
  for (size_t i = 0; i < n; i++) {
    actio_future *item = actio_gather_item(all, i);
    ok += actio_future_status(item) == 0 &&
          actio_http_raise_for_status(actio_future_value(item)) == 0;
  }
  printf("%zu pages, two at a time (map): %zu ok, %zu failed or 4xx/5xx\n", n, ok, n - ok);
  actio_future_unref(all);
  actio_runtime_destroy(rt);
  return 0;
}

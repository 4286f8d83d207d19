/* http.c: fetch many pages at once and report each, as aiohttp with
 * asyncio.gather(..., return_exceptions=True) would.
 *   actio-demo-http URL...   */
#include <stdio.h>
#include <stdlib.h>

#include <actio.h>

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s URL...\n", argv[0]);
    return 2;
  }
  actio_runtime *rt;
  actio_actor *http;
  actio_http_opts opts = {.timeout_ms = 10000};
  if (actio_runtime_create(&rt, NULL) != 0 || actio_http_spawn(rt, &opts, &http) != 0)
    return 1;
  size_t n = (size_t)argc - 1;
  actio_future **fs = calloc(n, sizeof *fs), *all;
  for (size_t i = 0; i < n; i++)
    if (actio_http_get(http, argv[i + 1], &fs[i]) != 0)
      return 1;
  /* Settle-all: one bad URL does not stop the others. */
  if (actio_gather(fs, n, ACTIO_GATHER_SETTLE_ALL, &all) != 0 ||
      actio_future_wait(all, -1) != 0)
    return 1;
  int failed = 0;
  for (size_t i = 0; i < n; i++) {
    if (actio_future_status(fs[i]) == 0) {
      actio_http_response *r = actio_future_value(fs[i]);
      printf("%3ld  %8zu bytes  %7.1f ms  HTTP/%d.%d  %s\n", r->status, r->body_len,
             r->total_ms, r->http_version / 10, r->http_version % 10, r->url);
    } else {
      failed++;
      printf("ERR  %s: %s\n", actio_err_name(actio_future_status(fs[i])),
             actio_future_errmsg(fs[i]));
    }
    actio_future_unref(fs[i]);
  }
  actio_future_unref(all);
  free(fs);
  actio_runtime_destroy(rt);
  printf("%zu fetched, %d failed\n", n - (size_t)failed, failed);
  return 0;
}

/* http_request.c: fuzzes what actio_http_send checks and copies of a
 * request (its method, URL, headers and body) against the contract: bad
 * input is ACTIO_EINVAL (no URL, not an HTTP actor, a method that is not an
 * RFC 9110 token, body_len without a body, a header with CR or LF in it)
 * and makes no future; anything
 * else is copied and offered to the actor. The actor here is stopped, so
 * an accepted request is refused with ACTIO_ECLOSED and none reaches the
 * network; the copy is made and freed all the same.
 *
 * Input: a flags byte (1: method NULL, the default GET; 2: URL NULL; 4: body
 * NULL; 8: sent to an actor that is not an HTTP one), a body_len byte, then
 * the method, the URL and headers, separated by NUL bytes; the body is the
 * input itself. */
#include <string.h>

#include "actio.h"
#include "fuzz.h"

static actio_runtime *rt;
static actio_actor *http, *other;

static int handle(actio_actor *self, void *worker, void *msg, actio_future *reply) {
  (void)self, (void)worker, (void)msg, (void)reply;
  return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  static const actio_behavior plain = {.handle = handle};
  FUZZ_CHECK(actio_runtime_create(&rt, &(actio_runtime_opts){.threads = 1}) == 0, "runtime");
  FUZZ_CHECK(actio_http_spawn(rt, NULL, &http) == 0, "http actor");
  FUZZ_CHECK(actio_actor_spawn(rt, &plain, NULL, &other) == 0, "plain actor");
  FUZZ_CHECK(actio_actor_stop(http, ACTIO_STOP_NOW) == 0, "stop");
  FUZZ_CHECK(actio_actor_stop(other, ACTIO_STOP_NOW) == 0, "stop");
  return 0;
}

/* RFC 9110's token: one or more tchar. */
static int is_token(const char *m) {
  if (*m == '\0')
    return 0;
  for (; *m; m++) {
    unsigned char c = (unsigned char)*m;
    int alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (!alnum && strchr("!#$%&'*+-.^_`|~", c) == NULL)
      return 0;
  }
  return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_in in = {data, size};
  uint8_t flags = fuzz_byte(&in);
  size_t body_len = fuzz_byte(&in);
  char *method = fuzz_str(fuzz_until(&in, 0));
  char *url = fuzz_str(fuzz_until(&in, 0));
  char *headers[9];
  size_t nh = 0;
  while (in.n > 0 && nh < 8)
    headers[nh++] = fuzz_str(fuzz_until(&in, 0));
  headers[nh] = NULL;

  actio_http_request req = {
      .method = flags & 1 ? NULL : method,
      .url = flags & 2 ? NULL : url,
      .headers = nh ? (const char *const *)headers : NULL,
      .body = flags & 4 ? NULL : data,
      .body_len = body_len <= size ? body_len : size,
  };
  actio_actor *to = flags & 8 ? other : http;
  int crlf = 0;
  for (size_t i = 0; i < nh; i++)
    crlf |= strpbrk(headers[i], "\r\n") != NULL;
  int bad = to != http || req.url == NULL || (req.body == NULL && req.body_len > 0) ||
            !is_token(req.method ? req.method : "GET") || crlf;
  actio_future *f = (actio_future *)&flags; /* must stay as it is */
  int rc = actio_http_send(to, &req, &f);
  FUZZ_CHECK(rc == (bad ? ACTIO_EINVAL : ACTIO_ECLOSED), "%s, expected %s",
             actio_err_name(rc), bad ? "EINVAL" : "ECLOSED");
  FUZZ_CHECK(f == (actio_future *)&flags, "a future made by a refused send");
  if (req.url != NULL) {
    rc = actio_http_get(to, url, &f);
    FUZZ_CHECK(rc == (to != http ? ACTIO_EINVAL : ACTIO_ECLOSED), "GET: %s",
               actio_err_name(rc));
    FUZZ_CHECK(f == (actio_future *)&flags, "a future made by a refused GET");
  }

  for (size_t i = 0; i < nh; i++)
    free(headers[i]);
  free(method);
  free(url);
  return 0;
}

/* curl_loop.c: the bare libcurl multi loop (see curl_loop.h): what an HTTP
 * client costs without actors, mailboxes or futures. Same transfer options
 * as the actor where they matter (keep-alive, HTTP/2 over TLS, no signals,
 * the same request headers), and the same work on the body: kept in memory,
 * then freed. */
#include "curl_loop.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A body kept in memory, as the actor keeps it (and frees it after): the
 * loop pays for the same bytes, so the difference is the actor's. */
typedef struct body {
  char *data;
  size_t len, cap;
} body;

static size_t keep_body(char *data, size_t size, size_t n, void *arg) {
  body *b = arg;
  size_t len = size * n;
  if (b->len + len + 1 > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 1024;
    while (cap < b->len + len + 1)
      cap *= 2;
    char *d = realloc(b->data, cap);
    if (d == NULL)
      return 0;
    b->data = d;
    b->cap = cap;
  }
  memcpy(b->data + b->len, data, len);
  b->len += len;
  return len;
}

/* Sizes the body from Content-Length, as the actor does. */
static size_t size_body(char *line, size_t size, size_t n, void *arg) {
  body *b = arg;
  size_t len = size * n;
  if (len > 15 && strncasecmp(line, "Content-Length:", 15) == 0 && b->cap == 0) {
    size_t cl = (size_t)strtoull(line + 15, NULL, 10);
    if (cl > 0 && (b->data = malloc(cl + 1)) != NULL)
      b->cap = cl + 1;
  }
  return len;
}

static CURL *make(const char *url, const char *proxy, body *b) {
  CURL *e = curl_easy_init();
  if (e == NULL)
    return NULL;
  curl_easy_setopt(e, CURLOPT_URL, url);
  if (proxy != NULL)
    curl_easy_setopt(e, CURLOPT_PROXY, proxy);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, keep_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, b);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, size_body);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, b);
  curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)b);
  /* The actor's request headers: a User-Agent, and Accept-Encoding for the
   * decoders libcurl has. Each costs libcurl a formatted header line per
   * request, which is HTTP work, not actor overhead. */
  curl_easy_setopt(e, CURLOPT_USERAGENT, "libcurl-multi");
  curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 64L * 1024); /* as the actor */
  return e;
}

int bench_curl_loop(const char *url, const char *proxy, uint64_t n, uint64_t c,
                    uint64_t *ok, uint64_t *bytes) {
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    return -1;
  CURLM *m = curl_multi_init();
  if (m == NULL)
    return -1;
  curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)c);
  uint64_t started = 0, done = 0;
  *ok = *bytes = 0;
  body *bodies = calloc(c, sizeof *bodies);
  if (bodies == NULL)
    return -1;
  for (; started < c && started < n; started++) {
    CURL *e = make(url, proxy, &bodies[started]);
    if (e == NULL)
      break;
    curl_multi_add_handle(m, e);
  }
  while (done < started) {
    int running;
    curl_multi_perform(m, &running);
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(m, &left)) != NULL) {
      if (msg->msg != CURLMSG_DONE)
        continue;
      CURL *e = msg->easy_handle;
      long status = 0;
      body *b = NULL;
      curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
      curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&b);
      *ok += msg->data.result == CURLE_OK && status == 200;
      *bytes += b->len;
      free(b->data);
      *b = (body){0};
      done++;
      curl_multi_remove_handle(m, e);
      if (started < n) { /* reuse the handle: the connection stays alive */
        curl_multi_add_handle(m, e);
        started++;
      } else {
        curl_easy_cleanup(e);
      }
    }
    if (done < started)
      curl_multi_poll(m, NULL, 0, 1000, NULL);
  }
  curl_multi_cleanup(m);
  free(bodies);
  return 0;
}

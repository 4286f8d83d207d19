/* curl_loop.c: the bare libcurl multi loop (see curl_loop.h): what an HTTP
 * client costs without actors, mailboxes or futures. Same transfer options
 * as the actor where they matter (keep-alive, HTTP/2 over TLS, no signals). */
#include "curl_loop.h"

#include <curl/curl.h>
#include <stdlib.h>

static size_t count_body(char *data, size_t size, size_t n, void *arg) {
  (void)data;
  *(uint64_t *)arg += size * n;
  return size * n;
}

static CURL *make(const char *url, uint64_t *bytes) {
  CURL *e = curl_easy_init();
  if (e == NULL)
    return NULL;
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, count_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, bytes);
  curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
  return e;
}

int bench_curl_loop(const char *url, uint64_t n, uint64_t c, uint64_t *ok,
                    uint64_t *bytes) {
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    return -1;
  CURLM *m = curl_multi_init();
  if (m == NULL)
    return -1;
  curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)c);
  uint64_t started = 0, done = 0;
  *ok = *bytes = 0;
  for (; started < c && started < n; started++) {
    CURL *e = make(url, bytes);
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
      curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
      *ok += msg->data.result == CURLE_OK && status == 200;
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
  return 0;
}

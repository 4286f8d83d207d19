/* curl_loop.h: the bare libcurl multi loop: the floor under the HTTP
 * actor's overhead. */
#ifndef BENCH_CURL_LOOP_H
#define BENCH_CURL_LOOP_H

#include <stdint.h>

/* GETs url n times from one thread and one multi handle, c transfers at a
 * time, through the http proxy proxy unless it is NULL, and counts 200
 * responses into *ok and body bytes into *bytes. Returns 0, or -1 if libcurl
 * could not be set up. */
int bench_curl_loop(const char *url, const char *proxy, uint64_t n, uint64_t c,
                    uint64_t *ok, uint64_t *bytes);

#endif

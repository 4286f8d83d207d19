/* http_io.h: libcurl's multi interface for one worker thread: transfers in,
 * completions out through a callback. Knows nothing of futures or actors. */
#ifndef ACTIO_IO_HTTP_IO_H
#define ACTIO_IO_HTTP_IO_H

#include <stddef.h>

#include "actio/http.h"

/* Session-wide settings (the strings are borrowed for the loop's life). */
typedef struct actio__http_conf {
  long max_connections, max_host_connections;
  long connect_timeout_ms, timeout_ms, idle_timeout_ms;
  int max_redirects;
  size_t max_body;
  const char *ca_file, *ca_path, *client_cert, *client_key, *user_agent;
} actio__http_conf;

typedef struct actio__http_loop actio__http_loop;
typedef struct actio__http_xfer actio__http_xfer;

/* Runs once per transfer, on the loop's thread, when it ends: rc is 0 (the
 * response is ready, take it with actio__http_xfer_take) or an ACTIO_*
 * code, with a message naming the method and URL. The transfer is out of
 * the loop by then; free it with actio__http_xfer_free. */
typedef void (*actio__http_done_fn)(actio__http_xfer *x, int rc,
                                    const char *msg, void *arg);

/* libcurl's global set-up, once per process, before any thread uses it. */
int actio__http_global_init(void);

/* The caches every loop of a session shares: DNS and TLS sessions (not
 * connections: libcurl's shared connection cache has known races). */
typedef struct actio__http_share actio__http_share;
int actio__http_share_create(actio__http_share **out);
void actio__http_share_destroy(actio__http_share *s);

int actio__http_loop_create(actio__http_loop **out, const actio__http_conf *conf,
                            actio__http_share *share);
/* Ends every transfer still in the loop with ACTIO_ECANCELED, then frees. */
void actio__http_loop_destroy(actio__http_loop *l);

/* One round: runs transfers, waits up to max_ms for sockets, timers or a
 * wakeup, runs them again and reports what ended. */
void actio__http_loop_wait(actio__http_loop *l, int max_ms);
/* Makes a wait return now. Any thread. */
void actio__http_loop_wakeup(actio__http_loop *l);

/* Takes body chunks instead of memory: returns 0 (taken), 1 (taken, but
 * pause the transfer before the next chunk until actio__http_xfer_resume)
 * or a negative code (fails the transfer with it). */
typedef int (*actio__http_sink_fn)(void *arg, const void *data, size_t len);

/* Makes a transfer for `req` (the body is borrowed until done runs; the
 * rest is copied; req->on_chunk is ignored: pass `sink` instead, may be
 * NULL). timeout_ms caps the request's total time (< 0: none beyond the
 * settings). Returns 0, ACTIO_ENOMEM, ACTIO_EINVAL, or a negated errno when
 * req->save_to cannot be created. */
int actio__http_xfer_create(actio__http_xfer **out, actio__http_loop *l,
                            const actio_http_request *req, long timeout_ms,
                            actio__http_sink_fn sink, actio__http_done_fn done,
                            void *arg);
/* Unpauses a transfer its sink paused (on the loop's thread); the chunk
 * libcurl held goes to the sink now. Returns 0, or the sink's error (the
 * caller then cancels the transfer). */
int actio__http_xfer_resume(actio__http_xfer *x);
/* After done reported 0: puts a save_to file in place (the caller decided no
 * retry follows). Returns 0 or a negated errno. */
int actio__http_xfer_commit(actio__http_xfer *x);
/* After done: the status and Retry-After (ms, 0 if none) of the last
 * response, 0 if there was none. */
long actio__http_xfer_status(const actio__http_xfer *x);
long actio__http_xfer_retry_after_ms(const actio__http_xfer *x);
/* Starts it. On failure it was not started (call free). */
int actio__http_loop_add(actio__http_loop *l, actio__http_xfer *x);
/* Stops a running transfer now; done runs with ACTIO_ECANCELED. */
void actio__http_loop_cancel(actio__http_loop *l, actio__http_xfer *x);
/* Takes the response out of a transfer whose done reported 0; free it with
 * actio__http_response_free. */
actio_http_response *actio__http_xfer_take(actio__http_xfer *x);
void actio__http_response_free(void *r);
void actio__http_xfer_free(actio__http_xfer *x);

#endif

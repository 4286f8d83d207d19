/* http_internal.h: what the HTTP actor's files share: its session state, a
 * worker, and a call of actio_http_send as it travels to a worker. */
#ifndef ACTIO_ACTORS_HTTP_INTERNAL_H
#define ACTIO_ACTORS_HTTP_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "actio/http.h"
#include "actors/core/bell.h"
#include "io/file/file_io.h"
#include "io/http/http_io.h"

/* The actor's state, shared by its workers (read-only once spawned). */
typedef struct actio__http_state {
  actio__http_conf conf;
  actio__http_share *share;
  char *strings[9]; /* copies behind conf's strings */
  char **secret_params; /* behind conf.secret_params: one block */
  int fail_when_full;
  actio_http_trace_fn trace;  /* the caller's hook behind conf.trace */
  void *trace_arg;
} actio__http_state;

typedef struct actio__http_call actio__http_call;

/* One worker thread: its libcurl loop and the calls it runs. */
typedef struct actio__http_worker {
  const actio__http_conf *conf; /* the session's settings */
  actio__http_loop *loop;
  actio__bell *bell;         /* rung by cancel hooks and by the futures a
                                body consumer asked to wait for */
  actio__http_call *running; /* started or waiting to retry: this thread only */
  size_t calls;              /* of them, all */
  size_t waiting;            /* of them, waiting to retry */
  size_t paused;             /* of them, paused by their body consumer */
  int stopping;              /* its transfers end cancelled: the actor stops */
  pthread_t thread;          /* the worker's own */
} actio__http_worker;

/* The longest a worker's poll sleeps when nothing is due: 1000 ms by
 * default, a safety net that a lost wake-up turns into a stall of up to a
 * second. -1: no limit, for tests in which a lost wake-up must hang. Any
 * thread; later waits use it. */
void actio__http_set_idle_poll_ms(int ms);

/* One actio_http_send: the mailbox message, then the worker's record of it
 * across its attempts. One allocation, the caller's strings and body copied
 * behind it. */
struct actio__http_call {
  actio_future *reply; /* the call's reference */
  actio__http_req io;  /* what each attempt's transfer is given */
  int retries, retry_any_method;
  long retry_backoff_ms;
  actio_http_chunk_fn on_chunk; /* the caller's consumer, behind io.sink */
  void *chunk_arg;
  const char *save_to; /* or the file the body replaces, behind io.sink */
  actio__fio_atomic *save; /* save_to's content, while an attempt runs */
  actio__http_xfer *x; /* NULL unless a transfer runs */
  actio__http_worker *w; /* set when a worker takes it */
  _Atomic int cancel;  /* set by the cancel hook (any thread), then a ring */
  int retry_wait;      /* waiting for its next attempt (counted in waiting) */
  int attempts;
  int64_t due_ns;      /* when waiting: the next attempt */
  actio_future *ready; /* the body consumer's, while paused (counted in
                          paused) */
  actio_future *head;  /* actio_http_send_head's, or NULL (a reference) */
  actio_http_upload_fn upload; /* the caller's body source, behind
                                  io.more's source */
  void *upload_arg;
  actio_future *up_ready; /* upload's, while it pauses the upload (counted
                             in paused) */
  int fail_code;       /* the consumer's or upload's future, or save_to's
                          file, failed with this */
  int fail_upload;     /* it was upload's */
  actio__http_call *prev, *next; /* in the worker's running list */
  char bytes[]; /* url, method, headers and body copies */
};

/* http_worker.c: what the actor's workers do. */
extern const actio_behavior actio__http_behavior;

/* Frees a call no transfer runs for, and its references: one whose send
 * failed, one dropped unstarted, one that ended. */
void actio__http_call_free(actio__http_call *c);

/* conf.trace: tells the caller's hook (arg: the state; xarg: the call). */
void actio__http_trace_relay(void *arg, void *xarg, const actio__http_trace *t);

/* io's on_head for a call with a head future (arg: the call). */
void actio__http_head_ready(void *arg, actio__http_xfer *x);

/* The caller's upload callback as io's source (arg: the call). */
int actio__http_upload_source(void *arg, char *buf, size_t cap, size_t *len);

/* http_response.c: the value of a call's future. */

/* The response of a transfer whose done reported 0: io's result moves in
 * behind the public fields, which point into it (the body, URL and headers
 * are not copied). NULL when out of memory (the result is freed). */
actio_http_response *actio__http_response_take(actio__http_xfer *x);
/* The same from a result already taken: *io moves in and is zeroed; NULL
 * when out of memory (*io stays the caller's). */
actio_http_response *actio__http_response_adopt(actio__http_result *io);
/* actio_http_response_free as a future's free function. */
void actio__http_response_free(void *r);

#endif

/* nats_js.h: cnats's JetStream behind io's own types: streams, publishing
 * with acknowledgements, durable pull consumers, fetching and acking jobs.
 * No jsCtx or natsSubscription leaves io/nats. */
#ifndef ACTIO_IO_NATS_JS_H
#define ACTIO_IO_NATS_JS_H

#include <stddef.h>
#include <stdint.h>

#include "io/nats/nats_io.h"

typedef struct actio__nats_js actio__nats_js;
typedef struct actio__nats_pull actio__nats_pull;

/* An asynchronous publish waiting for the stream's ack: the caller's
 * storage (embedded in its own record), lent to io from a successful
 * actio__nats_js_publish until the ack function is called with it. */
typedef struct actio__nats_js_pend {
  void *m;                           /* io's: the message sent */
  struct actio__nats_js_pend *next;  /* io's: its bucket */
} actio__nats_js_pend;

/* The outcome of a publish: rc 0 (stored at stream sequence seq;
 * duplicate 1 when the id was seen within the window: stored once, at
 * seq), ACTIO_ENOSTREAM (no stream captures the subject), ACTIO_ETIMEDOUT
 * (no ack within its timeout), ACTIO_EJETSTREAM (the stream refused it;
 * text says why, borrowed for the call), ACTIO_ECLOSED (the connection
 * closed first). Runs on cnats's ack thread, or on the closing one. */
typedef void (*actio__nats_js_ack_fn)(void *arg, actio__nats_js_pend *p, int rc,
                                      uint64_t seq, int duplicate, const char *text);

/* A JetStream context on connection c, acks going to fn(arg, ...). No
 * round trip. Returns 0 or ACTIO_ENOMEM. */
int actio__nats_js_create(actio__nats_conn *c, actio__nats_js_ack_fn fn, void *arg,
                          actio__nats_js **out);
/* Once the connection is closed: every publish still waiting whose ack
 * can no longer come gets its ack function called with ACTIO_ECLOSED, on
 * the calling thread; one whose ack cnats is already handing over gets
 * its own outcome from cnats's thread, maybe after this returns. */
void actio__nats_js_fail_pending(actio__nats_js *js);
/* Lets go of it once its connection is closed (as
 * actio__nats_js_fail_pending first): freed now, or by the last ack call
 * under way or to come, which may be this one's caller's. Not while a
 * publish is made on it. NULL accepted. */
void actio__nats_js_destroy(actio__nats_js *js);

/* Tests: when not NULL, called on cnats's thread at the start of every
 * ack call, before anything of the context is read (a pause there is an
 * ack running late). */
typedef void (*actio__nats_js_hook_fn)(void);
extern _Atomic(actio__nats_js_hook_fn) actio__nats_js_ack_hook;

/* Publishes data (len bytes) to subject with headers (key, value, ...,
 * NULL; NULL: none) and message id `id` (NULL: none), the stream's ack
 * awaited up to timeout_ms. Returns 0 (the ack function follows, once,
 * with p), ACTIO_EPAYLOAD, ACTIO_ENATS, ACTIO_ENOMEM (no call follows).
 * Any thread. */
int actio__nats_js_publish(actio__nats_js *js, actio__nats_js_pend *p, const char *subject,
                           const char *id, const char *const *headers, const void *data,
                           size_t len, int64_t timeout_ms);

/* A stream's settings (strings borrowed for the call). */
typedef struct actio__nats_stream_conf {
  const char *name;
  const char **subjects;
  int nsubjects;
  int replicas;
  int memory;           /* 1: memory storage */
  int limits;           /* 1: retention by limits, not work queue */
  int64_t max_msgs;     /* -1: none */
  int64_t max_bytes;    /* -1: none */
  int64_t duplicate_window_ms;
  int64_t timeout_ms;   /* the API round trip */
} actio__nats_stream_conf;

/* Makes the stream, or finds it there (its settings left as they are).
 * Blocking: a round trip or two. Returns 0, ACTIO_EJETSTREAM (refused, or
 * JetStream off; err says why), ACTIO_ETIMEDOUT, ACTIO_ENATS,
 * ACTIO_ENOMEM. */
int actio__nats_js_stream_ensure(actio__nats_js *js, const actio__nats_stream_conf *conf,
                                 char *err, size_t errlen);
/* The stream's counts now. ACTIO_ENOSTREAM when there is none. */
int actio__nats_js_stream_info(actio__nats_js *js, const char *name, int64_t timeout_ms,
                               uint64_t *msgs, uint64_t *bytes, uint64_t *first_seq,
                               uint64_t *last_seq, int64_t *consumers);
/* Deletes the stream. ACTIO_ENOSTREAM when there is none. */
int actio__nats_js_stream_delete(actio__nats_js *js, const char *name, int64_t timeout_ms);

/* A durable pull consumer's settings (strings borrowed for the call). */
typedef struct actio__nats_consumer_conf {
  const char *stream;
  const char *durable;
  const char *filter;   /* NULL: the stream's every subject */
  int64_t ack_wait_ms;
  int64_t max_ack_pending;
  int64_t timeout_ms;   /* the API round trips */
} actio__nats_consumer_conf;

/* Makes the durable consumer (explicit acks, no limit of the server's on
 * deliveries) unless it is there, and subscribes to pull from it (looked
 * up again while a cluster has not yet made it everywhere, within the
 * timeout): its end never deletes the consumer. Blocking. Returns 0, ACTIO_ENOSTREAM,
 * ACTIO_EJETSTREAM (err says why), ACTIO_ETIMEDOUT, ACTIO_ENATS,
 * ACTIO_ENOMEM. */
int actio__nats_js_pull_create(actio__nats_js *js, const actio__nats_consumer_conf *conf,
                               actio__nats_pull **out, char *err, size_t errlen);
/* Ends the subscription (a round trip with cnats before 3.5: see
 * actio__nats_sub_end). Not while a fetch runs on it; before its
 * connection is destroyed. NULL accepted. */
void actio__nats_js_pull_destroy(actio__nats_pull *p);

/* A fetched job: its message (the caller's: actio__nats_msg_free), how
 * many times it was delivered, its stream sequence. */
typedef struct actio__nats_job_rx {
  actio__nats_msg *m;
  uint64_t deliveries;
  uint64_t seq;
} actio__nats_job_rx;

/* Pulls up to `batch` jobs into out, waiting up to wait_ms for the first.
 * *n is how many (0 on a timeout). Blocking; one fetch at a time per
 * pull. Returns 0, ACTIO_ENATS (the connection lost or closed),
 * ACTIO_EJETSTREAM, ACTIO_ENOMEM. */
int actio__nats_js_fetch(actio__nats_pull *p, actio__nats_job_rx *out, int batch,
                         int64_t wait_ms, int *n);

/* How a job ends, or keeps its lease. */
typedef enum actio__nats_ack_kind {
  ACTIO__NATS_ACK = 0,       /* done: the stream drops it */
  ACTIO__NATS_NAK = 1,       /* failed: deliver it again after delay_ms */
  ACTIO__NATS_PROGRESS = 2,  /* still working: the ack wait starts again */
  ACTIO__NATS_TERM = 3,      /* never again */
} actio__nats_ack_kind;

/* Sends the ack for job message m over connection c (not m's
 * subscription: it may be gone). Returns 0 or ACTIO_ENATS. Any thread. */
int actio__nats_js_ack(actio__nats_conn *c, actio__nats_msg *m, actio__nats_ack_kind kind,
                       int64_t delay_ms);

/* m's headers as key, first value, ..., NULL into kv (borrowed from m;
 * at most max_pairs pairs, so kv holds 2 * max_pairs + 1). Returns the
 * pairs. */
int actio__nats_msg_headers(actio__nats_msg *m, const char **kv, int max_pairs);

#endif

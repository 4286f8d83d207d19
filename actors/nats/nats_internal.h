/* nats_internal.h: what the NATS actor's files share: the connection's
 * state, a pending remote request, a message, a service. */
#ifndef ACTIO_ACTORS_NATS_INTERNAL_H
#define ACTIO_ACTORS_NATS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "actio/nats.h"
#include "actio/timer.h"
#include "io/nats/nats_io.h"
#include "io/nats/nats_js.h"

typedef struct actio__nats_pend actio__nats_pend;

/* The connection actor's state (actio_actor_state): the connection, the
 * reply inbox, the pending table and its alarm, the services. */
typedef struct actio__nats_state {
  actio__nats_conn *conn;
  actio_actor *self;        /* the instance */
  actio_runtime *rt;
  int64_t max_payload;
  long timeout_ms;          /* an attempt's default */
  actio_nats_disconnect_policy disconnect;
  char inbox[64];           /* "_INBOX.<unique>." */
  size_t inbox_len;
  actio__nats_sub *replies; /* inbox.*: every reply */

  /* The pending table: guarded by mu. A request is in it from its send to
   * its end; whoever takes it out completes its future. Buckets by token
   * (tokens are sequential: no collisions before max_pending), and a
   * min-heap by due time for the alarm. */
  pthread_mutex_t mu;
  pthread_cond_t cv;        /* the inbox subscription's end */
  actio__nats_pend **buckets;
  size_t mask;
  actio__nats_pend **heap;
  size_t n, max_pending;
  int closed;               /* stopping: nothing is taken in any more */
  int replies_over;         /* the inbox subscription's last call is done */
  int down;                 /* disconnected (ACTIO_NATS_FAIL refuses) */
  pthread_mutex_t svc_mu;   /* guards the two below, apart from the table */
  struct svc_bind *services; /* the services' subscriptions on this connection */
  int services_closed;      /* stopping: no service is taken in any more */
  /* The alarm: one delayed send of the runtime's timer to this actor,
   * due when the heap's first request is (or before); its handler ends
   * the attempts that timed out and starts the retries that are due. No
   * thread of its own. Guarded by alarm_mu, taken before mu, never under
   * it. */
  pthread_mutex_t alarm_mu;
  actio_timer *alarm;       /* the handle of the one armed, or NULL */
  int64_t alarm_due;        /* its due time (ns); INT64_MAX: none */
  _Atomic uint64_t next_token; /* relaxed: only unique */

  /* JetStream: the context (its acks on cnats's thread), and the
   * publishes waiting for their ack, bounded by max_pending apart from
   * the requests (relaxed: only a count). */
  actio__nats_js *js;
  _Atomic size_t js_pending;

  /* Counters, relaxed: statistics read as a snapshot. */
  _Atomic uint64_t sent, replies_n, retries, timeouts, no_responders, late,
      served, served_errors, disconnects, reconnects;
} actio__nats_state;

/* A message as the public API shows it: received (rx, parts borrowed from
 * it) or built (parts owned, headers key, value, ..., NULL). */
struct actio_nats_msg {
  actio__nats_msg *rx;
  uint64_t deliveries;  /* a job's: its deliveries and stream sequence */
  uint64_t seq;
  const void *data;
  size_t len;
  char **headers; /* built: n pairs and a NULL, each string its own */
  size_t nh;      /* strings in headers */
};

extern const actio_behavior actio__nats_behavior;

/* 0 and the state of connection `nats` (pinned by the caller), or
 * ACTIO_EINVAL when it is none. */
int actio__nats_state_of(actio_actor *nats, actio__nats_state **out);

/* How many connection instances are allocated now, in the process (made,
 * and not yet freed by their last reference): for tests of what holds
 * them. Any thread; a snapshot. */
long actio__nats_instances(void);

/* actio_nats_ask and actio_nats_serve on the state of the connection
 * (pinned by the caller; inst its instance; via the supervised child's
 * address it was reached through, or NULL), their arguments not NULL. */
int actio__nats_ask(actio__nats_state *st, const actio_nats_request *req,
                    actio_future **out);
int actio__nats_serve(actio__nats_state *st, actio_actor *inst, actio_actor *via,
                      const char *subject, actio_actor *actor,
                      const actio_nats_serve_opts *opts, actio_nats_service **out);

/* nats_ask.c: the reply inbox, the pending table and its alarm. */
/* Subscribes the inbox. 0 or an error. */
int actio__nats_pending_start(actio__nats_state *st);
/* Ends the inbox and the alarm, and fails what is pending with
 * ACTIO_ECLOSED. */
void actio__nats_pending_stop(actio__nats_state *st);
/* The alarm's message, and its handling (on the actor's worker): attempts
 * that timed out end or are retried, retries that are due are sent. */
extern char actio__nats_alarm_msg;
void actio__nats_pending_expire(actio__nats_state *st);
/* The connection dropped under ACTIO_NATS_FAIL: fails what is pending. */
void actio__nats_pending_fail_all(actio__nats_state *st, int code, const char *why);
/* The memory a pending request costs beside its future, for a subject of
 * subject_len bytes and no retries. */
size_t actio__nats_pend_size(size_t subject_len);

/* The bytes headers (key, value, ..., NULL) take on the wire, or 0 when
 * they are bad: not pairs, not printable, a key with ':' or a space (*n
 * their strings). */
size_t actio__nats_headers_size(const char *const *h, size_t *n);

/* nats_jobs.c: a JetStream publish waiting for its ack; done runs once
 * with its outcome (as actio__nats_js_ack_fn's), on cnats's ack thread or
 * the closing one. */
typedef struct actio__nats_jspub actio__nats_jspub;
struct actio__nats_jspub {
  actio__nats_js_pend pend; /* first: io hands it back */
  void (*done)(actio__nats_jspub *p, int rc, uint64_t seq, const char *text);
};
/* The public JetStream calls on the state of the connection (pinned by
 * the caller, its JetStream context made), their pointers not NULL. */
int actio__nats_stream_ensure(actio__nats_state *st, const actio_nats_stream_opts *opts,
                              char *errbuf, size_t errbuf_size);
int actio__nats_stream_info(actio__nats_state *st, const char *name,
                            actio_nats_stream_info *out);
int actio__nats_stream_delete(actio__nats_state *st, const char *name);
int actio__nats_job_publish(actio__nats_state *st, const actio_nats_job *job,
                            actio_future **out);
/* 1 when s is fit for a stream's name: printable, no spaces, '.', '*',
 * '>', '/' or '\\'. */
int actio__nats_stream_name_valid(const char *s);
/* The connection's ack function (actio__nats_js_create's). */
void actio__nats_js_on_ack(void *arg, actio__nats_js_pend *p, int rc, uint64_t seq,
                           int duplicate, const char *text);

/* nats_serve.c: ends every service (connection stopping). */
void actio__nats_services_stop(actio__nats_state *st);

/* nats_msg.c: a received message as the public type; NULL when out of
 * memory (rx is then still the caller's). */
actio_nats_msg *actio__nats_msg_wrap(actio__nats_msg *rx);
/* The same, in place: m's parts from rx. */
void actio__nats_msg_view(actio_nats_msg *m, actio__nats_msg *rx);

#endif

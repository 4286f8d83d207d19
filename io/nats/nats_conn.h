/* nats_conn.h: a connection's insides, shared by io/nats's files only
 * (the core calls and JetStream's). */
#ifndef ACTIO_IO_NATS_CONN_H
#define ACTIO_IO_NATS_CONN_H

#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>

#include "io/nats/nats_io.h"

struct actio__nats_conn {
  natsConnection *nc;
  actio__nats_event_fn on_event;
  void *event_arg;
  pthread_mutex_t mu; /* guards closed_seen */
  pthread_cond_t cv;
  int closed_seen;    /* cnats's closed callback ran: no event follows */
  int closing;        /* actio__nats_close began (its thread only) */
  int64_t flush_ms;   /* a subscription's round trip: the connect timeout */
  /* The NKey seed's file, or NULL: read again at each signature (and once
   * before the connect, to refuse a bad file), so no seed stays in memory. */
  char *seed_file;
  /* Signatures cnats would not have sent (actio__nats_sign_nonce's
   * EAGAIN), counted by the connecting thread; relaxed: read by it too. */
  _Atomic unsigned unsendable_sigs;
};

/* Ends a subscription on c: unsubscribes, then, with cnats before 3.5 and
 * c connected, waits for a round trip before dropping the handle. Those
 * cnats look a message's subscription up, let go of the lock that keeps it
 * and use it after (nats.c #637): a message read as the unsubscribe runs
 * could reach a subscription freed meanwhile. The reader handles the
 * round trip's PONG after any such message, and the handle keeps the
 * subscription alive until then. Not on cnats's reader thread. */
void actio__nats_sub_end(actio__nats_conn *c, natsSubscription *sub);

/* cnats's status as an actio code. */
int actio__nats_code_of(natsStatus s);

#endif

/* nats_conn.h: a connection's insides, shared by io/nats's files only
 * (the core calls and JetStream's). */
#ifndef ACTIO_IO_NATS_CONN_H
#define ACTIO_IO_NATS_CONN_H

#include <nats/nats.h>
#include <pthread.h>

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
};

/* cnats's status as an actio code. */
int actio__nats_code_of(natsStatus s);

#endif

/* nats_loop.c: the bare cnats request loop (see nats_loop.h): what a
 * request/reply client costs without actors, futures or a pending table,
 * and the echo responders both sides ask. Same work on each reply as the
 * actor's caller does: its bytes checked against the request's. */
#include "nats_loop.h"

#include <inttypes.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct loop {
  natsConnection *nc;
  const char *subject;
  char inbox[64];         /* "_INBOX.<unique>." */
  size_t inbox_len;
  uint64_t n;
  _Atomic uint64_t next, done, ok;
  pthread_mutex_t mu;
  pthread_cond_t cv;
} loop;

/* One request over (answered or not sent); the last wakes the caller. */
static void finish(loop *l) {
  if (atomic_fetch_add(&l->done, 1) + 1 == l->n) {
    pthread_mutex_lock(&l->mu);
    pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
  }
}

/* Sends request i: its 16 bytes are its number, its reply-to its token. */
static void send_one(loop *l, uint64_t i) {
  char reply[96], data[17];
  snprintf(reply, sizeof reply, "%s%" PRIx64, l->inbox, i);
  snprintf(data, sizeof data, "%016" PRIx64, i);
  if (natsConnection_PublishRequest(l->nc, l->subject, reply, data, 16) != NATS_OK)
    finish(l); /* counted, not ok */
}

static void on_reply(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *arg) {
  (void)nc;
  (void)sub;
  loop *l = arg;
  uint64_t token = strtoull(natsMsg_GetSubject(m) + l->inbox_len, NULL, 16);
  char want[17];
  snprintf(want, sizeof want, "%016" PRIx64, token);
  if (natsMsg_GetDataLength(m) == 16 && memcmp(natsMsg_GetData(m), want, 16) == 0)
    atomic_fetch_add(&l->ok, 1);
  natsMsg_Destroy(m);
  uint64_t i = atomic_fetch_add(&l->next, 1);
  if (i < l->n)
    send_one(l, i);
  finish(l);
}

int bench_nats_loop(const char *url, const char *subject, uint64_t n, uint64_t c,
                    uint64_t *ok) {
  loop l = {.subject = subject, .n = n};
  pthread_mutex_init(&l.mu, NULL);
  pthread_cond_init(&l.cv, NULL);
  natsInbox *inbox = NULL;
  natsSubscription *sub = NULL;
  char wild[80];
  if (natsConnection_ConnectTo(&l.nc, url) != NATS_OK || natsInbox_Create(&inbox) != NATS_OK)
    return -1;
  l.inbox_len = (size_t)snprintf(l.inbox, sizeof l.inbox, "%s.", inbox);
  natsInbox_Destroy(inbox);
  snprintf(wild, sizeof wild, "%s*", l.inbox);
  if (natsConnection_Subscribe(&sub, l.nc, wild, on_reply, &l) != NATS_OK ||
      natsSubscription_SetPendingLimits(sub, -1, -1) != NATS_OK ||
      natsConnection_Flush(l.nc) != NATS_OK)
    return -1;
  uint64_t first = c < n ? c : n;
  atomic_store(&l.next, first);
  for (uint64_t i = 0; i < first; i++)
    send_one(&l, i);
  pthread_mutex_lock(&l.mu);
  while (atomic_load(&l.done) < n)
    pthread_cond_wait(&l.cv, &l.mu);
  pthread_mutex_unlock(&l.mu);
  natsSubscription_Unsubscribe(sub);
  natsSubscription_Destroy(sub);
  natsConnection_Destroy(l.nc);
  *ok = atomic_load(&l.ok);
  return 0;
}

typedef struct responders {
  unsigned r;
  natsConnection *nc[16];
  natsSubscription *sub[16];
} responders;

static void echo(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *arg) {
  (void)sub;
  (void)arg;
  natsConnection_Publish(nc, natsMsg_GetReply(m), natsMsg_GetData(m), natsMsg_GetDataLength(m));
  natsMsg_Destroy(m);
}

void *bench_nats_responders_start(const char *url, const char *subject,
                                  const char *queue, unsigned r) {
  responders *h = calloc(1, sizeof *h);
  if (h == NULL || r > 16)
    return free(h), NULL;
  for (h->r = 0; h->r < r; h->r++) {
    unsigned i = h->r;
    if (natsConnection_ConnectTo(&h->nc[i], url) != NATS_OK ||
        natsConnection_QueueSubscribe(&h->sub[i], h->nc[i], subject, queue, echo, NULL) !=
            NATS_OK ||
        natsSubscription_SetPendingLimits(h->sub[i], -1, -1) != NATS_OK ||
        natsConnection_Flush(h->nc[i]) != NATS_OK) {
      natsConnection_Destroy(h->nc[i]);
      bench_nats_responders_stop(h);
      return NULL;
    }
  }
  return h;
}

void bench_nats_responders_stop(void *arg) {
  responders *h = arg;
  for (unsigned i = 0; h != NULL && i < h->r; i++) {
    natsSubscription_Unsubscribe(h->sub[i]);
    natsSubscription_Destroy(h->sub[i]);
    natsConnection_Destroy(h->nc[i]);
  }
  free(h);
}

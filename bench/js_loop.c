/* js_loop.c: the bare cnats JetStream loop (see js_loop.h): what a work
 * queue costs without actors, futures or workers: cnats's async publish
 * and one pull consumer acking each job it checks, on the calling thread. */
#include "js_loop.h"

#include <inttypes.h>
#include <nats/nats.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static _Atomic uint64_t publish_errors;

static void on_pub_err(jsCtx *js, jsPubAckErr *pae, void *arg) {
  (void)js;
  (void)pae;
  (void)arg;
  atomic_fetch_add(&publish_errors, 1);
}

/* A job's bytes: its number, 16 hex digits. */
static int check(natsMsg *m) {
  const char *d = natsMsg_GetData(m);
  if (natsMsg_GetDataLength(m) != 16)
    return 0;
  for (int i = 0; i < 16; i++)
    if (!((d[i] >= '0' && d[i] <= '9') || (d[i] >= 'a' && d[i] <= 'f')))
      return 0;
  return 1;
}

int bench_js_loop(const char *url, uint64_t n, int replicas, int batch, int64_t max_pending,
                  double *publish_s, double *process_s, uint64_t *ok) {
  natsConnection *nc = NULL;
  jsCtx *js = NULL;
  natsSubscription *sub = NULL;
  int rc = -1;
  *ok = 0;
  if (natsConnection_ConnectTo(&nc, url) != NATS_OK)
    goto out;
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.PublishAsync.MaxPending = max_pending;
  jo.PublishAsync.ErrHandler = on_pub_err;
  if (natsConnection_JetStream(&js, nc, &jo) != NATS_OK)
    goto out;
  (void)js_DeleteStream(js, BENCH_JS_STREAM, NULL, NULL);
  jsStreamConfig sc;
  jsStreamConfig_Init(&sc);
  const char *subjects[] = {BENCH_JS_SUBJECT};
  sc.Name = BENCH_JS_STREAM;
  sc.Subjects = subjects;
  sc.SubjectsLen = 1;
  sc.Retention = js_WorkQueuePolicy;
  sc.Storage = js_FileStorage;
  sc.Replicas = replicas;
  sc.MaxMsgs = 1000000;
  sc.MaxBytes = INT64_C(1) << 30;
  sc.Discard = js_DiscardNew;
  sc.Duplicates = INT64_C(120000) * 1000000;
  if (js_AddStream(NULL, js, &sc, NULL, NULL) != NATS_OK)
    goto out;

  double t0 = now_s();
  char data[17], id[32];
  for (uint64_t i = 0; i < n; i++) {
    snprintf(data, sizeof data, "%016" PRIx64, i);
    snprintf(id, sizeof id, "job-%" PRIu64, i);
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MsgId = id;
    natsStatus s;
    while ((s = js_PublishAsync(js, BENCH_JS_SUBJECT, data, 16, &po)) == NATS_TIMEOUT) {
      /* stalled past MaxPending: cnats waited its StallWait; again */
    }
    if (s != NATS_OK)
      goto out;
  }
  jsPubOptions done;
  jsPubOptions_Init(&done);
  done.MaxWait = 60000;
  if (js_PublishAsyncComplete(js, &done) != NATS_OK)
    goto out;
  *publish_s = now_s() - t0;

  /* From here on as actio's worker does: the consumer made, the pull
   * subscription bound to it, then the jobs. */
  t0 = now_s();
  jsConsumerConfig cc;
  jsConsumerConfig_Init(&cc);
  cc.Durable = BENCH_JS_CONSUMER;
  cc.AckPolicy = js_AckExplicit;
  cc.AckWait = INT64_C(30000) * 1000000;
  cc.MaxDeliver = -1;
  cc.MaxAckPending = -1;
  if (js_AddConsumer(NULL, js, BENCH_JS_STREAM, &cc, NULL, NULL) != NATS_OK)
    goto out;
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = BENCH_JS_STREAM;
  so.Consumer = BENCH_JS_CONSUMER;
  if (js_PullSubscribe(&sub, js, BENCH_JS_SUBJECT, BENCH_JS_CONSUMER, NULL, &so, NULL) !=
      NATS_OK)
    goto out;
  natsSubscription_SetPendingLimits(sub, -1, -1);
  uint64_t got = 0;
  while (got < n) {
    natsMsgList list;
    natsStatus s = natsSubscription_Fetch(&list, sub, batch, 500, NULL);
    if (s == NATS_TIMEOUT)
      continue;
    if (s != NATS_OK)
      goto out;
    for (int i = 0; i < list.Count; i++) {
      if (check(list.Msgs[i]) && natsMsg_Ack(list.Msgs[i], NULL) == NATS_OK)
        (*ok)++;
      got++;
    }
    natsMsgList_Destroy(&list);
  }
  *process_s = now_s() - t0;
  rc = atomic_load(&publish_errors) == 0 ? 0 : -1;
out:
  natsSubscription_Destroy(sub);
  if (js != NULL)
    (void)js_DeleteStream(js, BENCH_JS_STREAM, NULL, NULL);
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
  return rc;
}

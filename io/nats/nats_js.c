/* nats_js.c: cnats's JetStream calls: streams, publishes and their acks,
 * durable pull consumers, fetches and job acks. */
#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actio/error.h"
#include "io/nats/nats_conn.h"
#include "io/nats/nats_js.h"

/* Publishes waiting for their ack, found by the message cnats hands back:
 * chained in buckets by its address. */
#define PEND_BUCKETS 1024

/* cnats calls the ack handler on a subscription's thread that neither
 * natsConnection_Close nor jsCtx_Destroy joins: a handler cnats committed
 * to (its message out of cnats's pending map) may run after both. So the
 * publishes whose handler is to come stay in the buckets, counted, and
 * the context is freed by the last of its destroy and its handler calls. */
struct actio__nats_js {
  actio__nats_conn *c;
  jsCtx *js;
  actio__nats_js_ack_fn fn;
  void *arg;
  pthread_mutex_t mu; /* guards the buckets and the three below */
  size_t pending;     /* publishes in the buckets */
  int in_ack;         /* handler calls past their entry */
  int destroyed;      /* its owner let go: the last handler call frees it */
  int leaked;         /* never freed: cnats's pending list was out of reach */
  /* Messages taken back from cnats at the close, freed with the context:
   * a publish under way may still read its message (cnats 3.4's
   * natsConn_publish reads its subject after it is in the pending map). */
  natsMsg **taken;
  int ntaken;
  actio__nats_js_pend *buckets[PEND_BUCKETS];
};

_Atomic(actio__nats_js_hook_fn) actio__nats_js_ack_hook;

struct actio__nats_pull {
  actio__nats_conn *c; /* outlives the pull (nats_js.h) */
  natsSubscription *sub;
};

static natsMsg *raw(const actio__nats_msg *m) { return (natsMsg *)(void *)m; }

static size_t bucket_of(const void *m) {
  uintptr_t h = (uintptr_t)m;
  h ^= h >> 17;
  return (size_t)(h >> 4) & (PEND_BUCKETS - 1);
}

/* Takes the publish of message m out of the table, under mu: NULL when
 * it is not there (failed at the close, or never put). */
static actio__nats_js_pend *pend_take_locked(actio__nats_js *js, const void *m) {
  actio__nats_js_pend **pp = &js->buckets[bucket_of(m)];
  while (*pp != NULL && (*pp)->m != m)
    pp = &(*pp)->next;
  actio__nats_js_pend *p = *pp;
  if (p != NULL) {
    *pp = p->next;
    js->pending--;
  }
  return p;
}

static actio__nats_js_pend *pend_take(actio__nats_js *js, const void *m) {
  pthread_mutex_lock(&js->mu);
  actio__nats_js_pend *p = pend_take_locked(js, m);
  pthread_mutex_unlock(&js->mu);
  return p;
}

static void js_free(actio__nats_js *js) {
  for (int i = 0; i < js->ntaken; i++)
    natsMsg_Destroy(js->taken[i]);
  free(js->taken);
  pthread_mutex_destroy(&js->mu);
  free(js);
}

/* 1 when nothing can reach js any more: destroyed, no handler call under
 * way or to come. Under mu. */
static int unreached(const actio__nats_js *js) {
  return js->destroyed && js->in_ack == 0 && js->pending == 0 && !js->leaked;
}

/* A JetStream API failure as an actio code, with the server's text. */
static int js_code(natsStatus s, jsErrCode jerr, char *err, size_t errlen, const char *what) {
  const char *why = nats_GetLastError(NULL);
  if (err != NULL && errlen > 0)
    snprintf(err, errlen, "%s: %s", what, why != NULL && *why ? why : natsStatus_GetText(s));
  if (jerr == JSStreamNotFoundErr || s == NATS_NOT_FOUND)
    return ACTIO_ENOSTREAM;
  if (s == NATS_TIMEOUT)
    return ACTIO_ETIMEDOUT;
  if (s == NATS_NO_RESPONDERS || jerr != 0 || s == NATS_ERR)
    return ACTIO_EJETSTREAM; /* no JetStream, or it refused */
  int rc = actio__nats_code_of(s);
  return rc == ACTIO_EINVAL ? ACTIO_EJETSTREAM : rc;
}

/* Each publish's ack (or its timeout), on cnats's ack thread. The call
 * may destroy the context (the last reference to its owner dropped by
 * fn): counted in in_ack meanwhile, it frees it at its end then. */
static void on_ack(jsCtx *jctx, natsMsg *m, jsPubAck *pa, jsPubAckErr *pae, void *closure) {
  (void)jctx;
  /* Acquire: pairs with the test's release store of its hook. */
  actio__nats_js_hook_fn hook = atomic_load_explicit(&actio__nats_js_ack_hook, memory_order_acquire);
  if (hook != NULL)
    hook();
  actio__nats_js *js = closure;
  pthread_mutex_lock(&js->mu);
  actio__nats_js_pend *p = pend_take_locked(js, m);
  js->in_ack++;
  actio__nats_js_ack_fn fn = js->fn;
  void *arg = js->arg;
  pthread_mutex_unlock(&js->mu);
  natsMsg_Destroy(m);
  if (p != NULL && pa != NULL) {
    fn(arg, p, 0, pa->Sequence, pa->Duplicate, NULL);
  } else if (p != NULL) {
    int rc = ACTIO_ENATS;
    const char *text = pae != NULL ? pae->ErrText : NULL;
    if (pae != NULL && pae->Err == NATS_NO_RESPONDERS)
      rc = ACTIO_ENOSTREAM;
    else if (pae != NULL && pae->Err == NATS_TIMEOUT)
      rc = ACTIO_ETIMEDOUT;
    else if (pae != NULL && pae->ErrCode != 0)
      rc = ACTIO_EJETSTREAM;
    fn(arg, p, rc, 0, 0, text);
  }
  pthread_mutex_lock(&js->mu);
  js->in_ack--;
  int last = unreached(js);
  pthread_mutex_unlock(&js->mu);
  if (last)
    js_free(js);
}

int actio__nats_js_create(actio__nats_conn *c, actio__nats_js_ack_fn fn, void *arg,
                          actio__nats_js **out) {
  actio__nats_js *js = calloc(1, sizeof *js);
  if (js == NULL)
    return ACTIO_ENOMEM;
  js->c = c;
  js->fn = fn;
  js->arg = arg;
  pthread_mutex_init(&js->mu, NULL);
  jsOptions o;
  jsOptions_Init(&o);
  o.PublishAsync.AckHandler = on_ack;
  o.PublishAsync.AckHandlerClosure = js;
  o.PublishAsync.MaxPending = 0; /* bounded above, which refuses rather than stalls */
  natsStatus s = natsConnection_JetStream(&js->js, c->nc, &o);
  if (s != NATS_OK) {
    pthread_mutex_destroy(&js->mu);
    free(js);
    return actio__nats_code_of(s);
  }
  *out = js;
  return 0;
}

void actio__nats_js_fail_pending(actio__nats_js *js) {
  if (js == NULL)
    return;
  /* Out of cnats's pending map, a message's handler will never run: its
   * publish ends here. One taken out by cnats's ack thread first keeps its
   * publish in the table, for the handler on its way (the stream stored
   * it: its own outcome, not ECLOSED). */
  natsMsgList list = {0};
  /* cnats 3.4 reads its pending map without looking whether there is one
   * (made by the first publish): asked for only once the wait for none
   * pending times out, which there is one for. */
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = 1;
  natsStatus s = js_PublishAsyncComplete(js->js, &po);
  if (s == NATS_TIMEOUT)
    s = js_PublishAsyncGetPendingList(&list, js->js);
  if (s == NATS_NO_MEMORY) {
    /* Which handlers are still to come is unknown: every publish ends
     * here, and the context is never freed (a late handler may read it). */
    pthread_mutex_lock(&js->mu);
    js->leaked = 1;
    pthread_mutex_unlock(&js->mu);
    for (size_t b = 0; b < PEND_BUCKETS; b++) {
      for (;;) {
        pthread_mutex_lock(&js->mu);
        actio__nats_js_pend *p = js->buckets[b];
        if (p != NULL) {
          js->buckets[b] = p->next;
          js->pending--;
        }
        pthread_mutex_unlock(&js->mu);
        if (p == NULL)
          break;
        js->fn(js->arg, p, ACTIO_ECLOSED, 0, 0, "the NATS connection closed");
      }
    }
    return;
  }
  for (int i = 0; i < list.Count; i++) {
    actio__nats_js_pend *p = pend_take(js, list.Msgs[i]);
    if (p != NULL)
      js->fn(js->arg, p, ACTIO_ECLOSED, 0, 0, "the NATS connection closed");
  }
  if (list.Count == 0)
    return;
  pthread_mutex_lock(&js->mu);
  natsMsg **all = realloc(js->taken, (size_t)(js->ntaken + list.Count) * sizeof *all);
  if (all != NULL) {
    memcpy(all + js->ntaken, list.Msgs, (size_t)list.Count * sizeof *all);
    js->taken = all;
    js->ntaken += list.Count;
  } /* else left unfreed: out of memory, and a publish may read them */
  pthread_mutex_unlock(&js->mu);
  free(list.Msgs);
}

void actio__nats_js_destroy(actio__nats_js *js) {
  if (js == NULL)
    return;
  actio__nats_js_fail_pending(js);
  jsCtx_Destroy(js->js);
  pthread_mutex_lock(&js->mu);
  js->destroyed = 1;
  int last = unreached(js);
  pthread_mutex_unlock(&js->mu);
  if (last)
    js_free(js);
}

int actio__nats_js_publish(actio__nats_js *js, actio__nats_js_pend *p, const char *subject,
                           const char *id, const char *const *headers, const void *data,
                           size_t len, int64_t timeout_ms) {
  if (len > INT32_MAX)
    return ACTIO_EPAYLOAD;
  natsMsg *m = NULL;
  natsStatus s = natsMsg_Create(&m, subject, NULL, data, (int)len);
  for (size_t i = 0; s == NATS_OK && headers != NULL && headers[i] != NULL && headers[i + 1] != NULL;
       i += 2)
    s = natsMsgHeader_Add(m, headers[i], headers[i + 1]);
  if (s != NATS_OK) {
    natsMsg_Destroy(m);
    return actio__nats_code_of(s);
  }
  /* In the table before it is sent: its ack may come before the call
   * returns. */
  p->m = m;
  size_t b = bucket_of(m);
  pthread_mutex_lock(&js->mu);
  p->next = js->buckets[b];
  js->buckets[b] = p;
  js->pending++;
  pthread_mutex_unlock(&js->mu);
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MsgId = id;
  po.MaxWait = timeout_ms;
  natsMsg *send = m;
  s = js_PublishMsgAsync(js->js, &send, &po);
  if (s == NATS_OK)
    return 0;
  /* Not sent: the message is ours again, and no ack follows. Out of the
   * table before it is freed: its address may be the next message's. */
  actio__nats_js_pend *mine = pend_take(js, m);
  natsMsg_Destroy(send);
  if (mine == NULL)
    return 0; /* taken by the close meanwhile: its call is made */
  int rc = actio__nats_code_of(s);
  return rc == ACTIO_EPAYLOAD || rc == ACTIO_ENOMEM ? rc : ACTIO_ENATS;
}

int actio__nats_js_stream_ensure(actio__nats_js *js, const actio__nats_stream_conf *conf,
                                 char *err, size_t errlen) {
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = conf->name;
  cfg.Subjects = conf->subjects;
  cfg.SubjectsLen = conf->nsubjects;
  cfg.Retention = conf->limits ? js_LimitsPolicy : js_WorkQueuePolicy;
  cfg.Storage = conf->memory ? js_MemoryStorage : js_FileStorage;
  cfg.Replicas = conf->replicas;
  cfg.MaxMsgs = conf->max_msgs;
  cfg.MaxBytes = conf->max_bytes;
  cfg.Discard = js_DiscardNew; /* full: a publish fails, nothing queued is dropped */
  cfg.Duplicates = conf->duplicate_window_ms * INT64_C(1000000);
  jsOptions o;
  jsOptions_Init(&o);
  o.Wait = conf->timeout_ms;
  jsStreamInfo *si = NULL;
  jsErrCode jerr = 0;
  natsStatus s = js_AddStream(&si, js->js, &cfg, &o, &jerr);
  jsStreamInfo_Destroy(si);
  si = NULL;
  if (s != NATS_OK && jerr == JSStreamNameExistErr) {
    jerr = 0;
    s = js_GetStreamInfo(&si, js->js, conf->name, &o, &jerr);
    jsStreamInfo_Destroy(si);
  }
  if (s == NATS_OK)
    return 0;
  return js_code(s, jerr, err, errlen, conf->name);
}

int actio__nats_js_stream_info(actio__nats_js *js, const char *name, int64_t timeout_ms,
                               uint64_t *msgs, uint64_t *bytes, uint64_t *first_seq,
                               uint64_t *last_seq, int64_t *consumers) {
  jsOptions o;
  jsOptions_Init(&o);
  o.Wait = timeout_ms;
  jsStreamInfo *si = NULL;
  jsErrCode jerr = 0;
  natsStatus s = js_GetStreamInfo(&si, js->js, name, &o, &jerr);
  if (s != NATS_OK)
    return js_code(s, jerr, NULL, 0, name);
  *msgs = si->State.Msgs;
  *bytes = si->State.Bytes;
  *first_seq = si->State.FirstSeq;
  *last_seq = si->State.LastSeq;
  *consumers = si->State.Consumers;
  jsStreamInfo_Destroy(si);
  return 0;
}

int actio__nats_js_stream_delete(actio__nats_js *js, const char *name, int64_t timeout_ms) {
  jsOptions o;
  jsOptions_Init(&o);
  o.Wait = timeout_ms;
  jsErrCode jerr = 0;
  natsStatus s = js_DeleteStream(js->js, name, &o, &jerr);
  return s == NATS_OK ? 0 : js_code(s, jerr, NULL, 0, name);
}

int actio__nats_js_pull_create(actio__nats_js *js, const actio__nats_consumer_conf *conf,
                               actio__nats_pull **out, char *err, size_t errlen) {
  actio__nats_pull *p = calloc(1, sizeof *p);
  if (p == NULL)
    return ACTIO_ENOMEM;
  jsOptions o;
  jsOptions_Init(&o);
  o.Wait = conf->timeout_ms;
  jsConsumerConfig cc;
  jsConsumerConfig_Init(&cc);
  cc.Durable = conf->durable;
  cc.AckPolicy = js_AckExplicit;
  cc.AckWait = conf->ack_wait_ms * INT64_C(1000000);
  cc.MaxDeliver = -1; /* the workers dead-letter: the server never strands a job */
  cc.MaxAckPending = conf->max_ack_pending;
  cc.FilterSubject = conf->filter;
  jsConsumerInfo *ci = NULL;
  jsErrCode jerr = 0;
  /* Made here, not by the subscribe: cnats deletes a consumer it made
   * itself when the subscription ends, and others share this one. */
  natsStatus s = js_AddConsumer(&ci, js->js, conf->stream, &cc, &o, &jerr);
  jsConsumerInfo_Destroy(ci);
  if (s != NATS_OK && (jerr == JSConsumerNameExistErr || jerr == JSConsumerExistingActiveErr)) {
    s = NATS_OK;
    jerr = 0;
  }
  if (s == NATS_OK) {
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = conf->stream;
    so.Consumer = conf->durable; /* bound to it: never made, never deleted */
    /* In a cluster, a consumer another worker is making may be "there"
     * for the add and not yet for the lookup: looked up again, within
     * the round trip's timeout. */
    int64_t until = nats_Now() + conf->timeout_ms;
    while ((s = js_PullSubscribe(&p->sub, js->js, conf->filter, conf->durable, &o, &so,
                                 &jerr)) == NATS_NOT_FOUND &&
           nats_Now() < until)
      nats_Sleep(50);
  }
  if (s != NATS_OK) {
    free(p);
    return js_code(s, jerr, err, errlen, conf->durable);
  }
  p->c = js->c;
  natsSubscription_SetPendingLimits(p->sub, -1, -1); /* bounded by the batches asked for */
  *out = p;
  return 0;
}

void actio__nats_js_pull_destroy(actio__nats_pull *p) {
  if (p == NULL)
    return;
  actio__nats_sub_end(p->c, p->sub);
  free(p);
}

int actio__nats_js_fetch(actio__nats_pull *p, actio__nats_job_rx *out, int batch,
                         int64_t wait_ms, int *n) {
  *n = 0;
  natsMsgList list = {0};
  jsErrCode jerr = 0;
  natsStatus s = natsSubscription_Fetch(&list, p->sub, batch, wait_ms, &jerr);
  if (s == NATS_TIMEOUT)
    return 0;
  if (s != NATS_OK)
    return s == NATS_NO_MEMORY ? ACTIO_ENOMEM : jerr != 0 ? ACTIO_EJETSTREAM : ACTIO_ENATS;
  for (int i = 0; i < list.Count; i++) {
    natsMsg *m = list.Msgs[i];
    jsMsgMetaData *meta = NULL;
    /* The metadata needs m's subscription: read now, while it is here. */
    if (natsMsg_GetMetaData(&meta, m) != NATS_OK) {
      natsMsg_Destroy(m); /* not a job: nothing to ack */
      continue;
    }
    out[*n] = (actio__nats_job_rx){
        .m = (actio__nats_msg *)(void *)m,
        .deliveries = meta->NumDelivered,
        .seq = meta->Sequence.Stream,
    };
    (*n)++;
    jsMsgMetaData_Destroy(meta);
  }
  free(list.Msgs); /* the messages are out's now */
  return 0;
}

int actio__nats_js_ack(actio__nats_conn *c, actio__nats_msg *m, actio__nats_ack_kind kind,
                       int64_t delay_ms) {
  const char *to = natsMsg_GetReply(raw(m));
  if (to == NULL || *to == '\0')
    return ACTIO_EINVAL;
  char body[64];
  switch (kind) {
  case ACTIO__NATS_ACK:
    snprintf(body, sizeof body, "+ACK");
    break;
  case ACTIO__NATS_NAK:
    if (delay_ms > 0)
      snprintf(body, sizeof body, "-NAK {\"delay\":%lld}", (long long)delay_ms * 1000000LL);
    else
      snprintf(body, sizeof body, "-NAK");
    break;
  case ACTIO__NATS_PROGRESS:
    snprintf(body, sizeof body, "+WPI");
    break;
  case ACTIO__NATS_TERM:
    snprintf(body, sizeof body, "+TERM");
    break;
  }
  natsStatus s = natsConnection_PublishString(c->nc, to, body);
  return s == NATS_OK ? 0 : ACTIO_ENATS;
}

int actio__nats_msg_headers(actio__nats_msg *m, const char **kv, int max_pairs) {
  const char **keys = NULL;
  int count = 0, n = 0;
  if (natsMsgHeader_Keys(raw(m), &keys, &count) == NATS_OK) {
    for (int i = 0; i < count && n < max_pairs; i++) {
      const char *v = NULL;
      if (natsMsgHeader_Get(raw(m), keys[i], &v) != NATS_OK || v == NULL)
        continue;
      kv[2 * n] = keys[i];
      kv[2 * n + 1] = v;
      n++;
    }
    free((void *)keys);
  }
  kv[2 * n] = NULL;
  return n;
}

/* nats_serve.c: a local actor served on a subject: each request is an ask
 * of the actor, whose outcome (a value encoded, or an error in headers)
 * goes back to the requester's inbox. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "actio.h"
#include "actors/core/actor_internal.h"
#include "actors/nats/nats_internal.h"

struct actio_nats_service {
  actio__nats_state *st;
  actio_actor *conn;          /* the connection's instance, held (a reference) */
  actio_actor *target;
  actio_nats_serve_opts o;
  actio__nats_sub *sub;
  /* References: the handle, the subscription until its last call, each
   * request taken until it is answered. Acq_rel: the last one frees. */
  _Atomic int refs;
  pthread_mutex_t mu;         /* guards over */
  pthread_cond_t cv;
  int over;                   /* the subscription's last call is done */
  int ended;                  /* unsubscribed; guarded by st->svc_mu */
  struct actio_nats_service *prev, *next; /* st->services, under st->svc_mu */
  char strings[];             /* the queue group's name */
};

/* A request taken: its message, as the actor sees it without decode. */
typedef struct svc_req {
  actio_nats_service *s;
  actio_nats_msg msg;
  void *local;                /* what the actor was sent */
} svc_req;

static void svc_unref(actio_nats_service *s) {
  if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
    return;
  actio__actor_unref(s->conn);
  pthread_cond_destroy(&s->cv);
  pthread_mutex_destroy(&s->mu);
  free(s);
}

static void req_end(svc_req *r) {
  actio_nats_service *s = r->s;
  actio__nats_msg_free(r->msg.rx);
  free(r);
  svc_unref(s);
}

/* Sends the reply for request r: the future's value, or its error. */
static void answer(svc_req *r, actio_future *f) {
  actio_nats_service *s = r->s;
  actio__nats_state *st = s->st;
  const char *to = actio__nats_msg_reply(r->msg.rx);
  int code = actio_future_status(f);
  const char *text = code != 0 ? actio_future_errmsg(f) : NULL;
  actio_nats_msg *out = NULL;
  if (code == 0) {
    void *value = actio_future_value(f);
    if (s->o.encode != NULL) {
      code = s->o.encode(s->o.codec_arg, value, &out);
      if (code < 0) {
        text = "encoding the reply failed";
        out = NULL;
      }
    } else {
      out = value; /* the future's: borrowed */
    }
  }
  if (code < 0) /* before the reply: whoever has it sees the count */
    atomic_fetch_add_explicit(&st->served_errors, 1, memory_order_relaxed); /* statistics */
  if (to != NULL) {
    if (code < 0)
      (void)actio__nats_publish_error(st->conn, to, code, text);
    else
      (void)actio__nats_publish(st->conn, to, NULL,
                                out != NULL ? (const char *const *)out->headers : NULL,
                                out != NULL ? out->data : NULL, out != NULL ? out->len : 0);
  }
  if (s->o.encode != NULL)
    actio_nats_msg_free(out);
}

static void on_answered(actio_future *f, void *arg) {
  svc_req *r = arg;
  answer(r, f);
  req_end(r);
}

/* Answers r with an error at once: the actor never saw it. */
static void refuse(svc_req *r, int code, const char *text) {
  actio_future *f = NULL;
  if (actio_future_failed(&f, code, "%s", text) == 0)
    answer(r, f);
  actio_future_unref(f);
  req_end(r);
}

/* Each request, on the subscription's cnats thread. */
static void on_request(void *arg, actio__nats_msg *rx) {
  actio_nats_service *s = arg;
  svc_req *r = malloc(sizeof *r);
  if (r == NULL) {
    actio__nats_msg_free(rx); /* the requester times out */
    return;
  }
  atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed); /* s is held already */
  atomic_fetch_add_explicit(&s->st->served, 1, memory_order_relaxed); /* statistics */
  r->s = s;
  actio__nats_msg_view(&r->msg, rx);
  r->local = &r->msg;
  if (s->o.decode != NULL) {
    int rc = s->o.decode(s->o.codec_arg, &r->msg, &r->local);
    if (rc < 0) {
      refuse(r, rc, "decoding the request failed");
      return;
    }
  }
  actio_future *f;
  int rc = actio_ask(s->target, r->local, 0, &f);
  if (rc != 0) {
    const actio_behavior *b = actio_actor_behavior(s->target);
    if (s->o.decode != NULL && b->drop != NULL)
      b->drop(s->target, r->local);
    refuse(r, rc, rc == ACTIO_EFULL ? "the served actor's mailbox is full"
                                    : "the served actor refused the request");
    return;
  }
  if (actio_future_on_done(f, on_answered, r) != 0) {
    /* Out of memory: the requester times out; r stays with the actor
     * until its future completes unseen, so it is not freed. */
    (void)actio_future_cancel(f);
  }
  actio_future_unref(f);
}

static void on_over(void *arg) {
  actio_nats_service *s = arg;
  pthread_mutex_lock(&s->mu);
  s->over = 1;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  svc_unref(s); /* the subscription's */
}

int actio__nats_serve(actio__nats_state *st, actio_actor *inst, const char *subject,
                      actio_actor *actor, const actio_nats_serve_opts *opts,
                      actio_nats_service **out) {
  actio_nats_serve_opts o = opts != NULL ? *opts : (actio_nats_serve_opts){0};
  if (!actio__nats_subject_valid(subject, 1))
    return ACTIO_ESUBJECT;
  if (o.queue != NULL && !actio__nats_subject_valid(o.queue, 0))
    return ACTIO_EINVAL;
  size_t lq = o.queue != NULL ? strlen(o.queue) + 1 : 0;
  actio_nats_service *s = calloc(1, sizeof *s + lq);
  if (s == NULL)
    return ACTIO_ENOMEM;
  s->st = st;
  s->conn = inst;
  actio__actor_ref(inst);
  s->target = actor;
  s->o = o;
  if (lq)
    s->o.queue = memcpy(s->strings, o.queue, lq);
  atomic_init(&s->refs, 2); /* the handle and the subscription */
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  pthread_mutex_lock(&st->svc_mu);
  int rc = st->services_closed ? ACTIO_ECLOSED : 0;
  if (rc == 0) {
    s->next = st->services;
    if (s->next != NULL)
      s->next->prev = s;
    st->services = s;
    /* Subscribed under the services' lock (a round trip; the table's
     * stays free): a stop that begins meanwhile finds it whole. */
    rc = actio__nats_subscribe(st->conn, subject, s->o.queue, on_request, on_over, s, &s->sub);
    if (rc != 0) {
      st->services = s->next;
      if (s->next != NULL)
        s->next->prev = NULL;
    }
  }
  pthread_mutex_unlock(&st->svc_mu);
  if (rc != 0) {
    atomic_store_explicit(&s->refs, 1, memory_order_relaxed); /* no subscription */
    svc_unref(s);
    return rc;
  }
  *out = s;
  return 0;
}

/* Unsubscribes s (once) and waits until its last call is done. */
static void svc_end(actio_nats_service *s) {
  actio__nats_state *st = s->st;
  pthread_mutex_lock(&st->svc_mu);
  int mine = !s->ended;
  if (mine) {
    s->ended = 1;
    if (s->prev != NULL)
      s->prev->next = s->next;
    else
      st->services = s->next;
    if (s->next != NULL)
      s->next->prev = s->prev;
  }
  pthread_mutex_unlock(&st->svc_mu);
  if (mine)
    actio__nats_unsubscribe(s->sub);
  pthread_mutex_lock(&s->mu);
  while (!s->over)
    pthread_cond_wait(&s->cv, &s->mu);
  pthread_mutex_unlock(&s->mu);
}

void actio_nats_unserve(actio_nats_service *s) {
  if (s == NULL)
    return;
  svc_end(s);
  svc_unref(s);
}

void actio__nats_services_stop(actio__nats_state *st) {
  for (;;) {
    pthread_mutex_lock(&st->svc_mu);
    st->services_closed = 1; /* serve refuses from now on */
    actio_nats_service *s = st->services;
    if (s != NULL)
      atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed); /* listed: alive */
    pthread_mutex_unlock(&st->svc_mu);
    if (s == NULL)
      return;
    svc_end(s);
    svc_unref(s);
  }
}

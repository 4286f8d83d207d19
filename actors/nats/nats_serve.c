/* nats_serve.c: a local actor served on a subject: each request is an ask
 * of the actor, whose outcome (a value encoded, or an error in headers)
 * goes back to the requester's inbox. Served through a supervised child's
 * address, the subject is served again by the instance that replaces one
 * stopped. */
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "actio.h"
#include "actors/core/actor_internal.h"
#include "actors/nats/nats_internal.h"

typedef struct svc_bind svc_bind;

/* The user's handle: what is served and how, bound to one instance of the
 * connection at a time. */
struct actio_nats_service {
  actio_actor *via;           /* the address served through (held), or NULL */
  const actio_behavior *conn_behavior; /* a connection's (as nats_api.c's) */
  actio_actor *target;
  actio_nats_serve_opts o;
  const char *subject;        /* in strings */
  pthread_mutex_t mu;         /* guards the three below; held across a bind */
  svc_bind *cur;              /* the binding now, or NULL */
  int ended;                  /* unserved */
  int queued;                 /* its job is queued on the supervisor */
  actio__sup_job job;         /* serves it again after a restart */
  /* References: the user's, each binding's, the job while queued.
   * Acq_rel: the last one frees. */
  _Atomic int refs;
  char strings[];             /* the subject, the queue group's name */
};

/* A service's subscription on one instance of the connection. */
struct svc_bind {
  actio_nats_service *h;
  actio__nats_state *st;
  actio_actor *conn;          /* the connection's instance, held (a reference) */
  actio__nats_sub *sub;
  /* References: h->cur's, the subscription until its last call, each
   * request taken until it is answered. Acq_rel: the last one frees. */
  _Atomic int refs;
  pthread_mutex_t mu;         /* guards over */
  pthread_cond_t cv;
  int over;                   /* the subscription's last call is done */
  int ended;                  /* unsubscribed; guarded by st->svc_mu */
  svc_bind *prev, *next;      /* st->services, under st->svc_mu */
};

/* A request taken: its message, as the actor sees it without decode. */
typedef struct svc_req {
  svc_bind *b;
  actio_nats_msg msg;
  void *local;                /* what the actor was sent */
} svc_req;

static void svc_unref(actio_nats_service *h) {
  if (atomic_fetch_sub_explicit(&h->refs, 1, memory_order_acq_rel) != 1)
    return;
  if (h->via != NULL)
    actio__actor_unref(h->via);
  pthread_mutex_destroy(&h->mu);
  free(h);
}

static void bind_unref(svc_bind *b) {
  if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1)
    return;
  actio__actor_unref(b->conn);
  pthread_cond_destroy(&b->cv);
  pthread_mutex_destroy(&b->mu);
  svc_unref(b->h);
  free(b);
}

static void req_end(svc_req *r) {
  svc_bind *b = r->b;
  actio__nats_msg_free(r->msg.rx);
  free(r);
  bind_unref(b);
}

/* Sends the reply for request r: the future's value, or its error. */
static void answer(svc_req *r, actio_future *f) {
  actio_nats_service *h = r->b->h;
  actio__nats_state *st = r->b->st;
  const char *to = actio__nats_msg_reply(r->msg.rx);
  int code = actio_future_status(f);
  const char *text = code != 0 ? actio_future_errmsg(f) : NULL;
  actio_nats_msg *out = NULL;
  if (code == 0) {
    void *value = actio_future_value(f);
    if (h->o.encode != NULL) {
      code = h->o.encode(h->o.codec_arg, value, &out);
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
  if (h->o.encode != NULL)
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
  svc_bind *b = arg;
  actio_nats_service *h = b->h;
  svc_req *r = malloc(sizeof *r);
  if (r == NULL) {
    actio__nats_msg_free(rx); /* the requester times out */
    return;
  }
  atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed); /* b is held already */
  atomic_fetch_add_explicit(&b->st->served, 1, memory_order_relaxed); /* statistics */
  r->b = b;
  actio__nats_msg_view(&r->msg, rx);
  r->local = &r->msg;
  if (h->o.decode != NULL) {
    int rc = h->o.decode(h->o.codec_arg, &r->msg, &r->local);
    if (rc < 0) {
      refuse(r, rc, "decoding the request failed");
      return;
    }
  }
  actio_future *f;
  int rc = actio_ask(h->target, r->local, 0, &f);
  if (rc != 0) {
    const actio_behavior *beh = actio_actor_behavior(h->target);
    if (h->o.decode != NULL && beh->drop != NULL)
      beh->drop(h->target, r->local);
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
  svc_bind *b = arg;
  pthread_mutex_lock(&b->mu);
  b->over = 1;
  pthread_cond_broadcast(&b->cv);
  pthread_mutex_unlock(&b->mu);
  bind_unref(b); /* the subscription's */
}

/* Subscribes h on the connection whose state is st (inst its instance),
 * as h->cur. Under h->mu. 0 or an error. */
static int bind(actio_nats_service *h, actio__nats_state *st, actio_actor *inst) {
  svc_bind *b = calloc(1, sizeof *b);
  if (b == NULL)
    return ACTIO_ENOMEM;
  b->h = h;
  b->st = st;
  b->conn = inst;
  actio__actor_ref(inst);
  atomic_fetch_add_explicit(&h->refs, 1, memory_order_relaxed); /* the caller holds h */
  atomic_init(&b->refs, 2); /* h->cur's and the subscription's */
  pthread_mutex_init(&b->mu, NULL);
  pthread_cond_init(&b->cv, NULL);
  pthread_mutex_lock(&st->svc_mu);
  int rc = st->services_closed ? ACTIO_ECLOSED : 0;
  if (rc == 0) {
    b->next = st->services;
    if (b->next != NULL)
      b->next->prev = b;
    st->services = b;
    /* Subscribed under the services' lock (a round trip; the table's
     * stays free): a stop that begins meanwhile finds it whole. */
    rc = actio__nats_subscribe(st->conn, h->subject, h->o.queue, on_request, on_over, b,
                               &b->sub);
    if (rc != 0) {
      st->services = b->next;
      if (b->next != NULL)
        b->next->prev = NULL;
    }
  }
  pthread_mutex_unlock(&st->svc_mu);
  if (rc != 0) {
    atomic_store_explicit(&b->refs, 1, memory_order_relaxed); /* no subscription */
    bind_unref(b);
    return rc;
  }
  h->cur = b;
  return 0;
}

int actio__nats_serve(actio__nats_state *st, actio_actor *inst, actio_actor *via,
                      const char *subject, actio_actor *actor,
                      const actio_nats_serve_opts *opts, actio_nats_service **out) {
  actio_nats_serve_opts o = opts != NULL ? *opts : (actio_nats_serve_opts){0};
  if (!actio__nats_subject_valid(subject, 1))
    return ACTIO_ESUBJECT;
  if (o.queue != NULL && !actio__nats_subject_valid(o.queue, 0))
    return ACTIO_EINVAL;
  size_t ls = strlen(subject) + 1, lq = o.queue != NULL ? strlen(o.queue) + 1 : 0;
  actio_nats_service *h = calloc(1, sizeof *h + ls + lq);
  if (h == NULL)
    return ACTIO_ENOMEM;
  h->via = via;
  h->conn_behavior = actio_actor_behavior(inst);
  if (via != NULL)
    actio__actor_ref(via);
  h->target = actor;
  h->o = o;
  h->subject = memcpy(h->strings, subject, ls);
  if (lq)
    h->o.queue = memcpy(h->strings + ls, o.queue, lq);
  atomic_init(&h->refs, 1); /* the user's */
  pthread_mutex_init(&h->mu, NULL);
  pthread_mutex_lock(&h->mu);
  int rc = bind(h, st, inst);
  pthread_mutex_unlock(&h->mu);
  if (rc != 0) {
    svc_unref(h);
    return rc;
  }
  *out = h;
  return 0;
}

/* Unsubscribes b (once) and waits until its last call is done. */
static void bind_end(svc_bind *b) {
  actio__nats_state *st = b->st;
  pthread_mutex_lock(&st->svc_mu);
  int mine = !b->ended;
  if (mine) {
    b->ended = 1;
    if (b->prev != NULL)
      b->prev->next = b->next;
    else
      st->services = b->next;
    if (b->next != NULL)
      b->next->prev = b->prev;
  }
  pthread_mutex_unlock(&st->svc_mu);
  if (mine)
    actio__nats_unsubscribe(b->sub);
  pthread_mutex_lock(&b->mu);
  while (!b->over)
    pthread_cond_wait(&b->cv, &b->mu);
  pthread_mutex_unlock(&b->mu);
}

void actio_nats_unserve(actio_nats_service *h) {
  if (h == NULL)
    return;
  pthread_mutex_lock(&h->mu);
  h->ended = 1; /* a job queued binds it no more */
  svc_bind *b = h->cur;
  h->cur = NULL;
  pthread_mutex_unlock(&h->mu);
  if (b != NULL) {
    bind_end(b);
    bind_unref(b);
  }
  svc_unref(h);
}

/* The job, on the supervisor's worker once the restart is done: h is
 * served by the instance its address reaches now. Through an instance
 * stopped for good, none: it stays unbound until unserved. */
static void serve_again(actio__sup_job *job, int rc) {
  actio_nats_service *h =
      (actio_nats_service *)(void *)((char *)job - offsetof(actio_nats_service, job));
  pthread_mutex_lock(&h->mu);
  h->queued = 0;
  svc_bind *old = h->cur;
  if (!h->ended) {
    h->cur = NULL;
    if (rc == 0) {
      /* A connection's state is its actor's (nats_api.c): the supervisor
       * starts each instance of a child alike. */
      actio_actor *inst = actio__actor_pin(h->via);
      if (actio_actor_behavior(inst) == h->conn_behavior)
        (void)bind(h, actio_actor_state(inst), inst);
      actio__actor_unpin(h->via);
    }
  } else {
    old = NULL; /* unserve took it */
  }
  pthread_mutex_unlock(&h->mu);
  if (old != NULL)
    bind_unref(old); /* ended by its connection's stop */
  svc_unref(h); /* the job's */
}

/* After the connection's stop ended b: a service through an address is
 * served again once the supervisor has restarted the connection. */
static void queue_again(actio__nats_state *st, svc_bind *b) {
  actio_nats_service *h = b->h;
  if (h->via == NULL)
    return;
  pthread_mutex_lock(&h->mu);
  int go = !h->ended && !h->queued && h->cur == b;
  if (go) {
    h->queued = 1;
    h->job.run = serve_again;
    atomic_fetch_add_explicit(&h->refs, 1, memory_order_relaxed); /* the job's; h is held */
    if (actio__sup_defer_child(st->self, &h->job) != 0) {
      h->queued = 0; /* no supervisor, or it stops: not run */
      atomic_fetch_sub_explicit(&h->refs, 1, memory_order_relaxed); /* not the last */
    }
  }
  pthread_mutex_unlock(&h->mu);
}

void actio__nats_services_stop(actio__nats_state *st) {
  for (;;) {
    pthread_mutex_lock(&st->svc_mu);
    st->services_closed = 1; /* serve refuses from now on */
    svc_bind *b = st->services;
    if (b != NULL)
      atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed); /* listed: alive */
    pthread_mutex_unlock(&st->svc_mu);
    if (b == NULL)
      return;
    bind_end(b);
    queue_again(st, b);
    bind_unref(b);
  }
}

/* nats_worker.c: a JetStream worker: pulls jobs in batches from a durable
 * consumer on a thread of its own, asks a local actor to do each, and
 * acks, NAKs, keeps the lease of, or dead-letters each as its future
 * ends. Made through a supervised connection's address, it moves to the
 * instance a restart puts there. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "actio.h"
#include "actors/core/actor_internal.h"
#include "actors/nats/nats_internal.h"
#include "base/clock.h"
#include "base/debug.h"

/* A job taken, from its fetch to its end. */
typedef struct wjob {
  actio__nats_jspub pub;      /* first: its dead-letter publish */
  actio_nats_worker *w;
  actio_nats_msg msg;         /* the job, as the actor sees it */
  actio_actor *inst;          /* the instance it came through, held: its
                                 message is that connection's */
  actio_actor *pub_inst;      /* its dead letter's instance, held, or NULL */
  void *local;                /* what the actor was sent */
  actio_future *f;            /* the ask's, held while in the actor */
  int64_t progress_ns;        /* its next in-progress ack; 0: none (not in
                                 the actor) */
  struct wjob *prev, *next;   /* w->jobs, under w->mu */
} wjob;

struct actio_nats_worker {
  /* The connection's instance pulled from now, held, its state and pull:
   * changed by the fetch thread only, under mu (others read them there). */
  actio__nats_state *st;
  actio_actor *conn;
  actio__nats_pull *pull;
  actio_actor *via;           /* the address made through (held), or NULL */
  actio__nats_consumer_conf cc; /* for a pull on a new instance */
  char *consumer, *filter;
  actio_actor *actor;
  actio__nats_job_rx *rx;     /* the fetch thread's batch (batch slots) */
  int batch, max_in_flight, max_deliveries;
  int64_t nak_delay_ms, progress_ms, job_timeout_ms, fetch_wait_ms;
  actio_nats_decode_fn decode;
  void *decode_arg;
  char *stream, *dead_letter;
  pthread_t thread;
  int thread_started;
  pthread_mutex_t mu;         /* guards what follows */
  pthread_cond_t cv;          /* room, a stop, the last job's end */
  int stopping;               /* no more pulls */
  int abandoned;              /* destroyed without a stop: no acks */
  int stopped;                /* drained */
  wjob *jobs;                 /* taken, not ended */
  size_t in_flight;
  /* Counters, relaxed: statistics read as a snapshot. */
  _Atomic uint64_t fetched, redelivered, acked, naked, dead, progress;
};

static void count(_Atomic uint64_t *c) {
  atomic_fetch_add_explicit(c, 1, memory_order_relaxed); /* statistics */
}

/* The job's end: freed, and its room given back. Out of the list first,
 * so that a destroy's walk never reads it; w is not touched once the
 * lock is released: the last end lets a destroy free it. */
static void job_free(wjob *j) {
  actio_nats_worker *w = j->w;
  pthread_mutex_lock(&w->mu);
  if (j->prev != NULL)
    j->prev->next = j->next;
  else
    w->jobs = j->next;
  if (j->next != NULL)
    j->next->prev = j->prev;
  w->in_flight--;
  /* The pull waits for a batch's room, a stop or destroy for none in
   * flight: woken once at each, not at every end. */
  if (w->in_flight == 0 || w->in_flight + (size_t)w->batch == (size_t)w->max_in_flight)
    pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
  actio_future_unref(j->f);
  actio__nats_msg_free(j->msg.rx);
  actio__actor_unref(j->inst); /* maybe the last: an old instance goes */
  if (j->pub_inst != NULL)
    actio__actor_unref(j->pub_inst);
  free(j);
}

/* The state jobs ack through now (the fetch thread may move it), its
 * instance held in *held, for the caller to drop with actio__actor_unref:
 * the fetch thread drops its own hold when it moves. */
static actio__nats_state *current(actio_nats_worker *w, actio_actor **held) {
  pthread_mutex_lock(&w->mu);
  actio__nats_state *st = w->st;
  *held = w->conn;
  actio__actor_ref(w->conn);
  pthread_mutex_unlock(&w->mu);
  return st;
}

/* Acks j (ACK, NAK after delay_ms, or TERM) through the current instance. */
static void ack(wjob *j, actio__nats_ack_kind kind, int64_t delay_ms) {
  actio_actor *held;
  actio__nats_state *st = current(j->w, &held);
  (void)actio__nats_js_ack(st->conn, j->msg.rx, kind, delay_ms);
  actio__actor_unref(held);
}

static int abandoned(actio_nats_worker *w) {
  pthread_mutex_lock(&w->mu);
  int a = w->abandoned;
  pthread_mutex_unlock(&w->mu);
  return a;
}

static void nak(wjob *j) {
  actio_nats_worker *w = j->w;
  int64_t delay = actio__backoff_ms(w->nak_delay_ms, 60000, (unsigned)j->msg.deliveries);
  ack(j, ACTIO__NATS_NAK, delay);
  count(&w->naked);
}

/* The dead-letter publish's outcome: stored there, the job is terminated;
 * not stored, it is NAKed, to come back and try again. */
static void dead_lettered(actio__nats_jspub *p, int rc, uint64_t seq, const char *text) {
  (void)seq;
  (void)text;
  wjob *j = (wjob *)(void *)p;
  actio_nats_worker *w = j->w;
  if (!abandoned(w)) {
    if (rc == 0) {
      ack(j, ACTIO__NATS_TERM, 0);
      count(&w->dead);
    } else {
      nak(j);
    }
  }
  job_free(j);
}

/* Sends j to the dead-letter subject (code and text: its last failure),
 * or terminates it when there is none. */
static void dead_letter(wjob *j, int code, const char *text) {
  actio_nats_worker *w = j->w;
  if (w->dead_letter == NULL) {
    ack(j, ACTIO__NATS_TERM, 0);
    count(&w->dead);
    job_free(j);
    return;
  }
  enum { ORIGINAL = 16 };
  const char *kv[2 * ORIGINAL + 9];
  int n = actio__nats_msg_headers(j->msg.rx, kv, ORIGINAL);
  char deliveries[24], err[16], line[256], id[320];
  snprintf(deliveries, sizeof deliveries, "%" PRIu64, j->msg.deliveries);
  snprintf(err, sizeof err, "%d", code);
  snprintf(line, sizeof line, "%s", text != NULL ? text : actio_strerror(code));
  for (char *c = line; *c; c++)
    if ((unsigned char)*c < 0x20 || *c == 0x7f)
      *c = ' '; /* one header line */
  const char *extra[] = {"Actio-Job-Subject", actio__nats_msg_subject(j->msg.rx),
                         "Actio-Job-Deliveries", deliveries, "Actio-Error", err,
                         "Actio-Message", line};
  int k = 2 * n;
  for (size_t i = 0; i < sizeof extra / sizeof *extra; i++)
    kv[k++] = extra[i];
  kv[k] = NULL;
  /* Its own id, once per stream sequence: a dead letter sent again (its
   * ack lost) is stored once. The original's Nats-Msg-Id goes along as a
   * plain header would not: the stream would take it for a duplicate. */
  for (int i = 0; i < 2 * n; i += 2)
    if (strcasecmp(kv[i], "Nats-Msg-Id") == 0)
      kv[i] = "Actio-Job-Id";
  snprintf(id, sizeof id, "dead.%s.%" PRIu64, w->stream, j->msg.seq);
  j->pub.done = dead_lettered;
  /* Held until the job is freed: its publish waits on that connection. */
  actio__nats_state *st = current(w, &j->pub_inst);
  int rc = actio__nats_js_publish(st->js, &j->pub.pend, w->dead_letter, id, kv, j->msg.data,
                                  j->msg.len, st->timeout_ms);
  if (rc != 0) {
    nak(j);
    job_free(j);
  }
}

/* A job's outcome: the actor's, or a refusal before it. */
static void job_end(wjob *j, int code, const char *text) {
  actio_nats_worker *w = j->w;
  pthread_mutex_lock(&w->mu);
  j->progress_ns = 0; /* its lease is no longer kept */
  int gone = w->abandoned;
  pthread_mutex_unlock(&w->mu);
  if (gone) {
    job_free(j); /* a crash, as the server sees it: delivered again later */
  } else if (code == 0) {
    ack(j, ACTIO__NATS_ACK, 0);
    count(&w->acked);
    job_free(j);
  } else if (j->msg.deliveries >= (uint64_t)w->max_deliveries) {
    dead_letter(j, code, text);
  } else {
    nak(j);
    job_free(j);
  }
}

static void on_done(actio_future *f, void *arg) {
  job_end(arg, actio_future_status(f), actio_future_errmsg(f));
}

/* Hands one fetched job to the actor. On the fetch thread. */
static void job_start(actio_nats_worker *w, const actio__nats_job_rx *rx) {
  wjob *j = calloc(1, sizeof *j);
  if (j == NULL) {
    (void)actio__nats_js_ack(w->st->conn, rx->m, ACTIO__NATS_NAK, w->nak_delay_ms);
    actio__nats_msg_free(rx->m);
    return;
  }
  j->w = w;
  j->inst = w->conn; /* moved by this thread alone */
  actio__actor_ref(j->inst);
  actio__nats_msg_view(&j->msg, rx->m);
  j->msg.deliveries = rx->deliveries;
  j->msg.seq = rx->seq;
  count(&w->fetched);
  if (rx->deliveries > 1)
    count(&w->redelivered);
  pthread_mutex_lock(&w->mu);
  j->next = w->jobs;
  if (j->next != NULL)
    j->next->prev = j;
  w->jobs = j;
  w->in_flight++;
  pthread_mutex_unlock(&w->mu);
  if (rx->deliveries > (uint64_t)w->max_deliveries) {
    char why[96];
    snprintf(why, sizeof why, "delivered %" PRIu64 " times, past max_deliveries %d",
             rx->deliveries, w->max_deliveries);
    dead_letter(j, ACTIO_ETIMEDOUT, why); /* its workers never ended it */
    return;
  }
  j->local = &j->msg;
  if (w->decode != NULL) {
    int rc = w->decode(w->decode_arg, &j->msg, &j->local);
    if (rc < 0) {
      job_end(j, rc, "decoding the job failed");
      return;
    }
  }
  actio_future *f;
  int rc = actio_ask(w->actor, j->local, w->progress_ms, &f);
  if (rc != 0) {
    const actio_behavior *b = actio_actor_behavior(w->actor);
    if (w->decode != NULL && b->drop != NULL)
      b->drop(w->actor, j->local);
    job_end(j, rc, rc == ACTIO_ECLOSED ? "the worker's actor stopped"
                                       : "the worker's actor had no room");
    return;
  }
  if (w->job_timeout_ms > 0)
    (void)actio_future_set_deadline(actio_actor_runtime(w->actor), f, w->job_timeout_ms);
  pthread_mutex_lock(&w->mu);
  j->f = f; /* the ask's reference, now the job's */
  j->progress_ns = actio__now_ns() + w->progress_ms * ACTIO__NS_PER_MS;
  pthread_mutex_unlock(&w->mu);
  if (actio_future_on_done(f, on_done, j) != 0) {
    /* Out of memory: no call will come; the job ends here, cancelled (a
     * handler does not read a job once its future is complete). */
    (void)actio_future_cancel(f);
    job_end(j, ACTIO_ENOMEM, "no memory to follow the job");
  }
}

/* Sends the in-progress acks that are due and returns the time of the
 * next one (or `until`, if sooner). Under w->mu. */
static int64_t keep_leases(actio_nats_worker *w, int64_t now, int64_t until) {
  for (wjob *j = w->jobs; j != NULL; j = j->next) {
    if (j->progress_ns == 0)
      continue;
    if (j->progress_ns <= now) {
      (void)actio__nats_js_ack(w->st->conn, j->msg.rx, ACTIO__NATS_PROGRESS, 0);
      count(&w->progress);
      j->progress_ns = now + w->progress_ms * ACTIO__NS_PER_MS;
    }
    if (j->progress_ns < until)
      until = j->progress_ns;
  }
  return until;
}

static void wait_until(actio_nats_worker *w, int64_t until_ns) {
  struct timespec ts = {(time_t)(until_ns / ACTIO__NS_PER_S), (long)(until_ns % ACTIO__NS_PER_S)};
  (void)pthread_cond_timedwait(&w->cv, &w->mu, &ts);
}

/* After a failed pull, through an address: if a supervisor's restart put
 * another instance of the connection there, pull from it from now on (a
 * new subscription to the same durable consumer). 1 if it moved. On the
 * fetch thread. */
static int follow(actio_nats_worker *w) {
  if (w->via == NULL)
    return 0;
  actio_actor *inst = actio__actor_pin(w->via);
  int other = inst != w->conn && actio_actor_behavior(inst) == &actio__nats_behavior;
  if (other)
    actio__actor_ref(inst); /* held past the pin: the subscribe blocks */
  actio__actor_unpin(w->via);
  if (!other)
    return 0;
  actio__nats_state *st;
  actio__nats_pull *pull = NULL;
  if (actio__nats_state_of(inst, &st) == 0 && st->js != NULL) {
    pthread_mutex_lock(&st->mu);
    int closed = st->closed;
    pthread_mutex_unlock(&st->mu);
    w->cc.timeout_ms = st->timeout_ms;
    char err[256];
    if (closed || actio__nats_js_pull_create(st->js, &w->cc, &pull, err, sizeof err) != 0)
      pull = NULL; /* not ready yet, or stopping: tried again after the next failure */
  }
  if (pull == NULL) {
    actio__actor_unref(inst);
    return 0;
  }
  actio__nats_pull *was = w->pull;
  actio_actor *prev = w->conn;
  pthread_mutex_lock(&w->mu);
  w->conn = inst;
  w->st = st;
  w->pull = pull;
  pthread_mutex_unlock(&w->mu);
  actio__nats_js_pull_destroy(was);
  /* The jobs taken there, and acks under way through it, hold it still:
   * the last of them lets it go. */
  actio__actor_unref(prev);
  return 1;
}

static void *fetch_main(void *arg) {
  actio_nats_worker *w = arg;
  actio__nats_job_rx *rx = w->rx;
  unsigned failures = 0;
  actio__thread_name("nats-fetch", -1);
  pthread_mutex_lock(&w->mu);
  while (!w->stopping) {
    int64_t now = actio__now_ns();
    int64_t until = keep_leases(w, now, now + w->fetch_wait_ms * ACTIO__NS_PER_MS);
    size_t room = (size_t)w->max_in_flight - w->in_flight;
    if (room < (size_t)w->batch) {
      /* The actor's backpressure reaches the pull: the next one waits for
       * a whole batch's room (a pull per job ended would be a round trip
       * per job). */
      wait_until(w, until);
      continue;
    }
    pthread_mutex_unlock(&w->mu);
    int want = w->batch, n = 0;
    int64_t wait_ms = actio__ns_to_ms_ceil(until - now);
    int rc = actio__nats_js_fetch(w->pull, rx, want, wait_ms > 0 ? wait_ms : 1, &n);
    for (int i = 0; i < n; i++)
      job_start(w, &rx[i]);
    pthread_mutex_lock(&w->mu);
    if (rc != 0 && !w->stopping) {
      pthread_mutex_unlock(&w->mu);
      int moved = follow(w);
      pthread_mutex_lock(&w->mu);
      /* The connection is down, say: try again after a pause that a stop
       * cuts short. */
      int64_t pause = actio__backoff_ms(50, 2000, ++failures);
      if (moved)
        failures = 0;
      else
        wait_until(w, actio__now_ns() + pause * ACTIO__NS_PER_MS);
    } else if (rc == 0) {
      failures = 0;
    }
  }
  pthread_mutex_unlock(&w->mu);
  return NULL;
}

static void worker_free(actio_nats_worker *w) {
  actio__nats_js_pull_destroy(w->pull);
  actio__actor_unref(w->conn);
  if (w->via != NULL)
    actio__actor_unref(w->via);
  free(w->consumer);
  free(w->filter);
  pthread_cond_destroy(&w->cv);
  pthread_mutex_destroy(&w->mu);
  free(w->stream);
  free(w->dead_letter);
  free(w->rx);
  free(w);
}

int actio_nats_worker_create(actio_actor *nats, actio_actor *actor,
                             const actio_nats_worker_opts *opts, actio_nats_worker **out,
                             char *errbuf, size_t errbuf_size) {
  if (nats == NULL || actor == NULL || opts == NULL || out == NULL || opts->stream == NULL ||
      opts->consumer == NULL || opts->batch < 0 || opts->max_in_flight < 0 ||
      opts->max_deliveries < 0 || opts->ack_wait_ms < 0 || opts->nak_delay_ms < 0 ||
      opts->progress_ms < 0 || opts->job_timeout_ms < 0 || opts->fetch_wait_ms < 0 ||
      *opts->stream == '\0' || *opts->consumer == '\0' ||
      strpbrk(opts->consumer, ". *>\t\r\n") != NULL)
    return ACTIO_EINVAL;
  if ((opts->subject != NULL && !actio__nats_subject_valid(opts->subject, 1)) ||
      (opts->dead_letter != NULL && !actio__nats_subject_valid(opts->dead_letter, 0)))
    return ACTIO_ESUBJECT;
  actio_nats_worker *w = calloc(1, sizeof *w);
  if (w == NULL)
    return ACTIO_ENOMEM;
  w->actor = actor;
  w->batch = opts->batch ? opts->batch : 32;
  w->max_in_flight = opts->max_in_flight ? opts->max_in_flight : 2 * w->batch;
  if (w->batch > w->max_in_flight)
    w->batch = w->max_in_flight;
  w->max_deliveries = opts->max_deliveries ? opts->max_deliveries : 5;
  int64_t ack_wait = opts->ack_wait_ms ? opts->ack_wait_ms : 30000;
  w->nak_delay_ms = opts->nak_delay_ms ? opts->nak_delay_ms : 1000;
  w->progress_ms = opts->progress_ms ? opts->progress_ms : ack_wait / 3;
  if (w->progress_ms < 1)
    w->progress_ms = 1;
  w->job_timeout_ms = opts->job_timeout_ms;
  w->fetch_wait_ms = opts->fetch_wait_ms ? opts->fetch_wait_ms : 500;
  w->decode = opts->decode;
  w->decode_arg = opts->decode_arg;
  w->stream = strdup(opts->stream);
  w->consumer = strdup(opts->consumer);
  w->filter = opts->subject != NULL ? strdup(opts->subject) : NULL;
  w->dead_letter = opts->dead_letter != NULL ? strdup(opts->dead_letter) : NULL;
  /* Here, not on the thread: a worker that cannot hold a batch fails to
   * start rather than starting and never pulling. */
  w->rx = calloc((size_t)w->batch, sizeof *w->rx);
  pthread_mutex_init(&w->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* waits against actio__now_ns */
  pthread_cond_init(&w->cv, &ca);
  pthread_condattr_destroy(&ca);
  w->conn = actio__actor_pin(nats);
  actio__actor_ref(w->conn);
  if (actio__is_address(nats)) {
    w->via = nats;
    actio__actor_ref(nats);
  }
  int rc = w->stream == NULL || w->consumer == NULL || w->rx == NULL ||
                   (opts->subject != NULL && w->filter == NULL) ||
                   (opts->dead_letter != NULL && w->dead_letter == NULL)
               ? ACTIO_ENOMEM
               : actio__nats_state_of(nats, &w->st);
  if (rc == 0 && w->st->js == NULL)
    rc = ACTIO_ECLOSED;
  if (rc == 0) {
    pthread_mutex_lock(&w->st->mu);
    rc = w->st->closed ? ACTIO_ECLOSED : 0;
    pthread_mutex_unlock(&w->st->mu);
  }
  char err[256] = "";
  if (rc == 0) {
    w->cc = (actio__nats_consumer_conf){
        .stream = w->stream,
        .durable = w->consumer,
        .filter = w->filter,
        .ack_wait_ms = ack_wait,
        .max_ack_pending = -1, /* the workers bound themselves */
        .timeout_ms = w->st->timeout_ms,
    };
    rc = actio__nats_js_pull_create(w->st->js, &w->cc, &w->pull, err, sizeof err);
  }
  actio__actor_unpin(nats);
  if (rc == 0) {
    rc = -pthread_create(&w->thread, NULL, fetch_main, w);
    w->thread_started = rc == 0;
  }
  if (rc != 0) {
    if (errbuf != NULL && errbuf_size > 0)
      snprintf(errbuf, errbuf_size, "worker on %s/%s: %s", opts->stream, opts->consumer,
               *err ? err : actio_strerror(rc));
    worker_free(w);
    return rc;
  }
  *out = w;
  return 0;
}

/* Ends the pulls: the fetch thread's last batch is handed out first. */
static void end_pulls(actio_nats_worker *w, int abandon) {
  pthread_mutex_lock(&w->mu);
  w->stopping = 1;
  if (abandon)
    w->abandoned = 1;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
  if (w->thread_started)
    pthread_join(w->thread, NULL);
  w->thread_started = 0;
}

static void wait_drained(actio_nats_worker *w) {
  pthread_mutex_lock(&w->mu);
  while (w->in_flight > 0)
    pthread_cond_wait(&w->cv, &w->mu);
  w->stopped = 1;
  pthread_mutex_unlock(&w->mu);
}

int actio_nats_worker_stop(actio_nats_worker *w) {
  if (w == NULL)
    return ACTIO_EINVAL;
  end_pulls(w, 0);
  wait_drained(w);
  return 0;
}

void actio_nats_worker_destroy(actio_nats_worker *w) {
  if (w == NULL)
    return;
  pthread_mutex_lock(&w->mu);
  int stopped = w->stopped;
  pthread_mutex_unlock(&w->mu);
  if (!stopped) {
    end_pulls(w, 1);
    /* Cancel the jobs in the actor, one at a time (each end unlinks its
     * job under the lock, so the list is walked afresh). */
    for (;;) {
      actio_future *f = NULL;
      pthread_mutex_lock(&w->mu);
      for (wjob *j = w->jobs; j != NULL && f == NULL; j = j->next)
        if (j->f != NULL && !actio_future_is_done(j->f)) {
          f = j->f;
          actio_future_ref(f);
        }
      pthread_mutex_unlock(&w->mu);
      if (f == NULL)
        break;
      (void)actio_future_cancel(f);
      actio_future_unref(f);
    }
    wait_drained(w);
  }
  worker_free(w);
}

void actio_nats_worker_stats_get(actio_nats_worker *w, actio_nats_worker_stats *out) {
  memset(out, 0, sizeof *out);
  if (w == NULL)
    return;
  pthread_mutex_lock(&w->mu);
  out->in_flight = w->in_flight;
  pthread_mutex_unlock(&w->mu);
  /* Relaxed: counters read as a snapshot. */
  out->fetched = atomic_load_explicit(&w->fetched, memory_order_relaxed);
  out->redelivered = atomic_load_explicit(&w->redelivered, memory_order_relaxed);
  out->acked = atomic_load_explicit(&w->acked, memory_order_relaxed);
  out->naked = atomic_load_explicit(&w->naked, memory_order_relaxed);
  out->dead = atomic_load_explicit(&w->dead, memory_order_relaxed);
  out->progress = atomic_load_explicit(&w->progress, memory_order_relaxed);
}

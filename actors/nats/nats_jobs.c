/* nats_jobs.c: JetStream on a NATS connection: work-queue streams, and jobs
 * published with a future the stream's ack completes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actio.h"
#include "actors/core/actor_internal.h"
#include "actors/core/deadline.h"
#include "actors/nats/nats_internal.h"

/* A job published, waiting for its ack. */
typedef struct job_pub {
  actio__nats_jspub base;   /* first */
  actio__nats_state *st;
  actio_future *f;          /* the publish's reference */
  char subject[];
} job_pub;

void actio__nats_js_on_ack(void *arg, actio__nats_js_pend *p, int rc, uint64_t seq,
                           int duplicate, const char *text) {
  (void)arg;
  (void)duplicate; /* stored once all the same: a success */
  actio__nats_jspub *jp = (actio__nats_jspub *)(void *)p;
  jp->done(jp, rc, seq, text);
}

static void pub_done(actio__nats_jspub *base, int rc, uint64_t seq, const char *text) {
  job_pub *jp = (job_pub *)(void *)base;
  /* Relaxed: only a count, and a bound. */
  atomic_fetch_sub_explicit(&jp->st->js_pending, 1, memory_order_relaxed);
  if (rc == 0)
    (void)actio_future_resolve(jp->f, (void *)(uintptr_t)seq, NULL);
  else if (rc == ACTIO_ENOSTREAM)
    (void)actio_future_fail(jp->f, rc, "job to %s: no JetStream stream keeps the subject",
                            jp->subject);
  else
    (void)actio_future_fail(jp->f, rc, "job to %s: %s", jp->subject,
                            text != NULL ? text : actio_strerror(rc));
  actio_future_unref(jp->f);
  free(jp);
}

static int is_closed(actio__nats_state *st) {
  pthread_mutex_lock(&st->mu);
  int closed = st->closed;
  pthread_mutex_unlock(&st->mu);
  return closed;
}

/* A stream's name: printable, no spaces, '.', '*' or '>'. */
int actio__nats_stream_name_valid(const char *s) {
  if (s == NULL || *s == '\0' || strlen(s) > 255)
    return 0;
  for (; *s; s++)
    if ((unsigned char)*s <= ' ' || *s == 0x7f || *s == '.' || *s == '*' || *s == '>' ||
        *s == '/' || *s == '\\')
      return 0;
  return 1;
}

int actio__nats_stream_ensure(actio__nats_state *st, const actio_nats_stream_opts *opts,
                              char *errbuf, size_t errbuf_size) {
  if (opts == NULL || !actio__nats_stream_name_valid(opts->name) || opts->subjects == NULL ||
      opts->replicas < 0 || opts->replicas > 5 || opts->max_msgs < 0 || opts->max_bytes < 0 ||
      opts->duplicate_window_ms < 0 || opts->timeout_ms < 0)
    return ACTIO_EINVAL;
  char *list = strdup(opts->subjects);
  if (list == NULL)
    return ACTIO_ENOMEM;
  const char *subjects[64];
  int n = 0, rc = 0;
  for (char *save = NULL, *t = strtok_r(list, ",", &save); t != NULL;
       t = strtok_r(NULL, ",", &save)) {
    while (*t == ' ')
      t++;
    if (n == 64 || !actio__nats_subject_valid(t, 1)) {
      rc = ACTIO_ESUBJECT;
      break;
    }
    subjects[n++] = t;
  }
  if (rc == 0 && n == 0)
    rc = ACTIO_ESUBJECT;
  if (rc != 0) {
    free(list);
    return rc;
  }
  actio__nats_stream_conf conf = {
      .name = opts->name,
      .subjects = subjects,
      .nsubjects = n,
      .replicas = opts->replicas ? opts->replicas : 1,
      .memory = opts->memory,
      .limits = opts->limits,
      .max_msgs = opts->max_msgs ? opts->max_msgs : 1000000,
      .max_bytes = opts->max_bytes ? opts->max_bytes : INT64_C(1) << 30,
      .duplicate_window_ms = opts->duplicate_window_ms ? opts->duplicate_window_ms : 120000,
      .timeout_ms = opts->timeout_ms ? opts->timeout_ms : st->timeout_ms,
  };
  char err[256] = "";
  rc = is_closed(st) ? ACTIO_ECLOSED : actio__nats_js_stream_ensure(st->js, &conf, err, sizeof err);
  if (rc != 0 && errbuf != NULL && errbuf_size > 0)
    snprintf(errbuf, errbuf_size, "stream %s: %s", opts->name,
             *err ? err : actio_strerror(rc));
  free(list);
  return rc;
}

int actio__nats_stream_info(actio__nats_state *st, const char *name,
                            actio_nats_stream_info *out) {
  memset(out, 0, sizeof *out);
  return is_closed(st) ? ACTIO_ECLOSED
                       : actio__nats_js_stream_info(st->js, name, st->timeout_ms, &out->msgs,
                                                    &out->bytes, &out->first_seq,
                                                    &out->last_seq, &out->consumers);
}

int actio__nats_stream_delete(actio__nats_state *st, const char *name) {
  return is_closed(st) ? ACTIO_ECLOSED : actio__nats_js_stream_delete(st->js, name, st->timeout_ms);
}

/* Checks a job, and makes its record and future; 0 or an error. */
static int pub_new(actio__nats_state *st, const actio_nats_job *job, job_pub **out) {
  size_t nh;
  size_t hbytes = actio__nats_headers_size(job->headers, &nh);
  if (hbytes == 0 || (job->data == NULL && job->len > 0) || job->timeout_ms < 0 ||
      (job->id != NULL && (*job->id == '\0' || strpbrk(job->id, "\r\n") != NULL)))
    return ACTIO_EINVAL;
  if (!actio__nats_subject_valid(job->subject, 0))
    return ACTIO_ESUBJECT;
  size_t idb = job->id != NULL ? strlen(job->id) + 16 : 0; /* "Nats-Msg-Id: " */
  if ((int64_t)(job->len + hbytes + idb) > st->max_payload)
    return ACTIO_EPAYLOAD;
  size_t ls = strlen(job->subject) + 1;
  job_pub *jp = malloc(sizeof *jp + ls);
  if (jp == NULL)
    return ACTIO_ENOMEM;
  jp->base.done = pub_done;
  jp->st = st;
  memcpy(jp->subject, job->subject, ls);
  int rc = actio_future_create(&jp->f);
  if (rc == 0)
    rc = actio__deadline_inherit(st->rt, jp->f);
  if (rc != 0) {
    actio_future_unref(jp->f);
    free(jp);
    return rc;
  }
  *out = jp;
  return 0;
}

int actio__nats_job_publish(actio__nats_state *st, const actio_nats_job *job,
                            actio_future **out) {
  job_pub *jp = NULL;
  int rc = pub_new(st, job, &jp);
  if (rc == 0 && is_closed(st))
    rc = ACTIO_ECLOSED;
  /* Relaxed: only a count, and a bound. */
  if (rc == 0 &&
      atomic_fetch_add_explicit(&st->js_pending, 1, memory_order_relaxed) >= st->max_pending) {
    atomic_fetch_sub_explicit(&st->js_pending, 1, memory_order_relaxed);
    rc = ACTIO_EFULL;
  }
  actio_future *f = jp != NULL ? jp->f : NULL;
  if (rc == 0) {
    actio_future_ref(f); /* the caller's; jp holds the ack's */
    long timeout = job->timeout_ms ? job->timeout_ms : st->timeout_ms;
    rc = actio__nats_js_publish(st->js, &jp->base.pend, job->subject, job->id, job->headers,
                                job->data, job->len, timeout);
    if (rc != 0) {
      atomic_fetch_sub_explicit(&st->js_pending, 1, memory_order_relaxed);
      actio_future_unref(f);
    }
  }
  if (rc != 0) {
    if (jp != NULL) {
      actio_future_unref(jp->f);
      free(jp);
    }
    return rc;
  }
  /* jp may be gone already (acked): f is the caller's. */
  actio__actor_track(st->self, f);
  actio__request_begin(st->self, f);
  *out = f;
  return 0;
}

uint64_t actio_nats_msg_deliveries(const actio_nats_msg *m) {
  return m != NULL ? m->deliveries : 0;
}

uint64_t actio_nats_msg_sequence(const actio_nats_msg *m) { return m != NULL ? m->seq : 0; }

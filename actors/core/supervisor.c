/* supervisor.c: supervision trees. A supervisor is an actor with one
 * worker; children's failures are noted in the supervisor itself (from the
 * failing thread, through actio_actor_fail's monitor hook) and its worker,
 * woken by a token in its mailbox, restarts them, one failure at a time. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actio.h"
#include "actio/supervisor.h"
#include "actors/core/actor_internal.h"
#include "base/clock.h"

typedef struct sup sup;

/* A failure's text as the supervisor keeps it: inline, so that noting a
 * failure needs no memory and cannot fail (longer texts are cut). */
enum { WHY_MAX = 256 };

typedef struct child {
  sup *s;                /* the monitor hook's way back */
  actio_child_spec spec; /* name points at our copy */
  actio_actor *cur;      /* the instance; guarded by sup.mu (actio_sup_lookup
                            reads it) */
  actio_actor *addr;     /* the address senders keep, made at the first
                            start; guarded as cur */
  int dead;              /* a temporary child that failed */
  /* A failure noted, not yet handled (guarded by sup.mu): the instance
   * that failed (NULL: none), its code and text, and the next child with
   * one. A child has at most one: only its running instance's counts. */
  actio_actor *failed;
  int code;
  char why[WHY_MAX];
  struct child *next_failed;
  int queued;            /* in the failed list (guarded by sup.mu) */
} child;

/* A child started or stopped at run time (actio_sup_start_child,
 * actio_sup_stop_child), queued for the worker as failures are. */
typedef struct sup_req {
  actio__sup_job job;    /* first: its run is request_run */
  sup *s;
  actio_child_spec spec; /* start: name points at `name` */
  int stop;              /* 1: stop the child named `name`, or at addr */
  actio_actor *addr;
  actio_future *reply;   /* the request's reference; NULL for a notice */
  int notice;            /* an actio_sup_event_kind: a notice of child
                            `name` for the monitor, text `why` */
  int code;
  const char *why;       /* behind name */
  char name[];
} sup_req;

/* Work queued for the worker, oldest first (guarded by sup.mu). */
typedef struct job_queue {
  actio__sup_job *head, *tail;
} job_queue;

struct sup {
  actio_runtime *rt;
  actio_actor *self;
  actio_sup_opts o;      /* defaults filled in; name is ours */
  pthread_mutex_t mu;    /* guards the children's cur, addr, dead, their
                            failures and the fields down to woken */
  child **children;      /* each its own allocation: hooks point at it;
                            changed by the worker only, under mu */
  size_t n, cap;
  child *failed_head, *failed_tail; /* failures noted, oldest first */
  job_queue reqs;        /* requests: run before the failures noted */
  job_queue jobs;        /* deferred work: run after them */
  int closed;            /* the worker left: requests are refused */
  int woken;             /* a wake token is on its way, or failures wait
                            behind messages the worker will handle */
  int64_t *times;        /* restarts within the period, oldest first */
  unsigned ntimes;
  int stopped;           /* children stopped for good (gave up, stopping) */
  _Atomic uint64_t failures, restarts;
  _Atomic int gave_up;
};

static const actio_behavior sup_behavior;

/* Wakes the worker to handle the failures noted. */
static char wake_token;

static void monitor(sup *s, actio_sup_event_kind kind, size_t i, int code,
                    const char *reason) {
  if (s->o.monitor == NULL)
    return;
  actio_sup_event ev = {kind, s->o.name, s->children[i]->spec.name, code, reason,
                        s->ntimes};
  s->o.monitor(s->o.monitor_arg, &ev);
}

/* Under mu, with something queued for the worker: 1 if the caller is to
 * send the wake token (none is on its way). */
static int must_wake(sup *s) {
  int wake = !s->woken;
  s->woken = 1;
  return wake;
}


/* Queues j in q and wakes the worker; 0, or ACTIO_ECLOSED once the worker
 * left, or when c (unless NULL) no longer runs instance a (j is not
 * queued). Any thread; never waits. */
static int enqueue(sup *s, job_queue *q, actio__sup_job *j, const child *c,
                   const actio_actor *a) {
  pthread_mutex_lock(&s->mu);
  int closed = s->closed || (c != NULL && c->cur != a), wake = 0;
  if (!closed) {
    j->next = NULL;
    if (q->tail != NULL)
      q->tail->next = j;
    else
      q->head = j;
    q->tail = j;
    wake = must_wake(s);
  }
  pthread_mutex_unlock(&s->mu);
  /* As for a failure: refused for want of room, the worker takes the
   * work before the next message; refused as closed, it is stopping and
   * its worker_stop runs the work with ACTIO_ECLOSED. */
  if (wake)
    (void)actio__tell_quiet(s->self, &wake_token, 0);
  return closed ? ACTIO_ECLOSED : 0;
}

static void request_run(actio__sup_job *j, int rc);

/* A notice of child c's instance a (a connection lost or back): queued
 * for the worker, which tells the monitor. Without memory for it, or with
 * no monitor, it is only dropped: notices are for people. */
static void child_notice(sup *s, child *c, actio_actor *a, int kind, int code,
                         const char *why) {
  if (s->o.monitor == NULL)
    return;
  size_t ln = strlen(c->spec.name) + 1, lw = strlen(why) + 1;
  sup_req *r = calloc(1, sizeof *r + ln + lw);
  if (r == NULL)
    return;
  memcpy(r->name, c->spec.name, ln);
  r->why = memcpy(r->name + ln, why, lw);
  r->notice = kind;
  r->code = code;
  r->s = s;
  r->job.run = request_run;
  if (enqueue(s, &s->reqs, &r->job, c, a) != 0)
    free(r);
}

/* A child instance failed, on whatever thread noticed (under the
 * instance's failure lock): note it in the child, then wake the worker.
 * Nothing here can fail, so no failure is lost: at most one wake token is
 * on its way, sent without waiting (the worker itself may be the failing
 * thread, a child failing as it starts). A token refused for want of room
 * is not needed: the worker notes failures before every message it
 * handles, and one waits. Refused as closed, the supervisor is stopping:
 * nothing to restart. */
static void on_child_fail(void *arg, actio_actor *a, int kind, int code,
                          const char *why) {
  child *c = arg;
  sup *s = c->s;
  int wake = 0;
  if (kind != ACTIO_SUP_CHILD_FAILED) {
    child_notice(s, c, a, kind, code, why);
    return;
  }
  pthread_mutex_lock(&s->mu);
  if (c->cur == a) {
    if (!c->queued) { /* else queued already, perhaps for an older instance */
      c->queued = 1;
      c->next_failed = NULL;
      if (s->failed_tail != NULL)
        s->failed_tail->next_failed = c;
      else
        s->failed_head = c;
      s->failed_tail = c;
    }
    c->failed = a;
    c->code = code;
    snprintf(c->why, sizeof c->why, "%s", why);
    wake = must_wake(s);
  }
  pthread_mutex_unlock(&s->mu);
  if (wake)
    (void)actio__tell_quiet(s->self, &wake_token, 0);
}

/* Takes the oldest work queued in q; NULL when there is none. */
static actio__sup_job *dequeue(sup *s, job_queue *q) {
  pthread_mutex_lock(&s->mu);
  actio__sup_job *j = q->head;
  if (j != NULL && (q->head = j->next) == NULL)
    q->tail = NULL;
  pthread_mutex_unlock(&s->mu);
  return j;
}

/* Takes the oldest failure noted, into *c (its child), *inst, *code and
 * why; 0 when there is none. */
static int next_failure(sup *s, child **c, actio_actor **inst, int *code,
                        char why[WHY_MAX]) {
  pthread_mutex_lock(&s->mu);
  child *f = s->failed_head;
  if (f != NULL) {
    s->failed_head = f->next_failed;
    if (s->failed_head == NULL)
      s->failed_tail = NULL;
    *c = f;
    *inst = f->failed;
    *code = f->code;
    memcpy(why, f->why, WHY_MAX);
    f->failed = NULL;
    f->queued = 0;
  }
  pthread_mutex_unlock(&s->mu);
  return f != NULL;
}

static size_t index_of(const sup *s, const child *c) {
  size_t i = 0;
  while (s->children[i] != c)
    i++;
  return i;
}

/* Starts a new instance of child i, which its address then reaches. 0 or
 * the start's error. */
static int child_start(sup *s, size_t i) {
  child *c = s->children[i];
  actio_actor *a = NULL, *addr = c->addr;
  int rc = c->spec.start(s->rt, c->spec.arg, &a);
  /* An address is some supervisor's child already: this one can neither
   * own it nor hear of its failures. */
  if (rc == 0 && (a == NULL || actio__is_address(a)))
    rc = ACTIO_EINVAL;
  if (rc == 0 && addr == NULL && (rc = actio__address_create(a, c->spec.name, &addr)) != 0)
    actio_actor_stop(a, ACTIO_STOP_NOW);
  if (rc != 0)
    return rc;
  pthread_mutex_lock(&s->mu);
  actio_actor *old = c->cur; /* stopped by now */
  c->cur = a;
  c->addr = addr;
  c->dead = 0;
  c->failed = NULL; /* a failure still noted was an older instance's */
  pthread_mutex_unlock(&s->mu);
  actio__actor_set_owned(a);
  actio__actor_set_monitor(a, on_child_fail, c);
  actio__address_move(addr, a, 0);
  if (old != NULL) { /* freed once nothing reaches it */
    actio__actor_set_monitor(old, NULL, NULL);
    actio__address_retire(addr, old);
  }
  return 0;
}

/* Stops child i's instance: as its spec says, or now if the supervisor is
 * being stopped now. */
static void child_stop(sup *s, size_t i) {
  child *c = s->children[i];
  pthread_mutex_lock(&s->mu);
  actio_actor *a = c->cur;
  pthread_mutex_unlock(&s->mu);
  if (a != NULL)
    actio_actor_stop(a, actio__actor_stopping_now(s->self) ? ACTIO_STOP_NOW
                                                           : c->spec.stop);
}

/* Child i is not restarted (any more): its address stays on the stopped
 * instance, where sends fail with ACTIO_ECLOSED, and lookups find none. */
static void child_settle(sup *s, size_t i, int dead) {
  child *c = s->children[i];
  pthread_mutex_lock(&s->mu);
  actio_actor *addr = c->addr, *last = c->cur;
  c->cur = NULL;
  c->dead |= dead;
  pthread_mutex_unlock(&s->mu);
  if (last != NULL) /* its record may go with the supervisor */
    actio__actor_set_monitor(last, NULL, NULL);
  if (addr != NULL)
    actio__address_move(addr, NULL, 0);
}

/* The child named `name`, or whose address is addr (name NULL); its index
 * in *i. On the worker, or under mu. */
static child *find_child(const sup *s, const char *name, const actio_actor *addr,
                         size_t *i) {
  for (*i = 0; *i < s->n; (*i)++) {
    child *c = s->children[*i];
    if (name != NULL ? strcmp(c->spec.name, name) == 0 : c->addr == addr)
      return c;
  }
  return NULL;
}

/* Child i leaves the supervisor: its record is freed. Its address stays
 * on its last instance (stopped: sends fail with ACTIO_ECLOSED), whose
 * hook child_settle cleared, until the address is released. On the
 * worker. */
static void child_remove(sup *s, size_t i) {
  child *c = s->children[i];
  pthread_mutex_lock(&s->mu);
  if (c->queued) { /* a failure noted: out of the list */
    child **p = &s->failed_head, *prev = NULL;
    while (*p != c)
      prev = *p, p = &(*p)->next_failed;
    *p = c->next_failed;
    if (s->failed_tail == c)
      s->failed_tail = prev;
  }
  memmove(&s->children[i], &s->children[i + 1], (s->n - i - 1) * sizeof *s->children);
  s->n--;
  pthread_mutex_unlock(&s->mu);
  free((char *)c->spec.name);
  free(c);
}

/* Stops every child, newest first, for good: none is running after. */
static void stop_all(sup *s) {
  if (s->stopped)
    return;
  s->stopped = 1;
  for (size_t i = s->n; i-- > 0;) {
    child_stop(s, i);
    child_settle(s, i, 0);
  }
}

/* The first message: the children, started by the worker (so that no
 * restart runs while they start). */
static char start_token;

static int start_children(sup *s) {
  for (size_t i = 0; i < s->n; i++) {
    int rc = child_start(s, i);
    if (rc != 0) {
      for (size_t j = i; j-- > 0;) /* undone, newest first */
        child_stop(s, j);
      s->stopped = 1;
      return rc;
    }
  }
  return 0;
}

/* The pause before the k-th restart in the period. */
static int64_t backoff(const sup *s, unsigned k) {
  return s->o.backoff_ms < 0 ? 0 : actio__backoff_ms(s->o.backoff_ms, s->o.backoff_max_ms, k);
}

/* Counts a restart now; 0 if within the intensity, else -1. */
static int intensity(sup *s) {
  int64_t now = actio__now_ns(), period = s->o.period_ms * 1000000;
  unsigned keep = 0;
  for (unsigned j = 0; j < s->ntimes; j++)
    if (now - s->times[j] < period)
      s->times[keep++] = s->times[j];
  s->ntimes = keep;
  if (s->ntimes >= s->o.max_restarts)
    return -1;
  s->times[s->ntimes++] = now;
  return 0;
}

static void give_up(sup *s, size_t i, int code, const char *reason) {
  atomic_store_explicit(&s->gave_up, 1, memory_order_relaxed); /* a statistic */
  stop_all(s);
  monitor(s, ACTIO_SUP_GAVE_UP, i, code, reason);
  char why[512];
  snprintf(why, sizeof why,
           "supervisor %s gave up: %s failed more than %u times in %lld ms: %s",
           s->o.name, s->children[i]->spec.name, s->o.max_restarts,
           (long long)s->o.period_ms, reason);
  actio_actor_fail(s->self, ACTIO_EINTENSITY, why);
}

/* Starts child i again; a start that fails is its next failure, and is
 * retried after the pause, within the intensity. 0, or -1: gave up, or no
 * restart can succeed any more (the runtime is stopping, or the supervisor
 * is stopped now). */
static int restart(sup *s, size_t i) {
  for (;;) {
    int rc = child_start(s, i);
    if (rc == 0) {
      atomic_fetch_add_explicit(&s->restarts, 1, memory_order_relaxed);
      monitor(s, ACTIO_SUP_CHILD_RESTARTED, i, 0, "");
      return 0;
    }
    char why[256];
    snprintf(why, sizeof why, "restart failed: %s", actio_strerror(rc));
    atomic_fetch_add_explicit(&s->failures, 1, memory_order_relaxed);
    monitor(s, ACTIO_SUP_CHILD_FAILED, i, rc, why);
    if (actio__runtime_closing(s->rt))
      return -1;
    if (intensity(s) != 0) {
      give_up(s, i, rc, why);
      return -1;
    }
    if (actio__actor_pause(s->self, backoff(s, s->ntimes)) != 0)
      return -1;
  }
}

/* Handles the failure of instance `inst` of child c, noted with code and
 * why. */
static void child_failed(sup *s, child *c, actio_actor *inst, int code,
                         const char *why) {
  pthread_mutex_lock(&s->mu);
  int current = c->cur == inst;
  pthread_mutex_unlock(&s->mu);
  if (s->stopped || !current) /* stopping, or already replaced */
    return;
  size_t index = index_of(s, c);
  atomic_fetch_add_explicit(&s->failures, 1, memory_order_relaxed);
  monitor(s, ACTIO_SUP_CHILD_FAILED, index, code, why);
  if (c->spec.temporary) {
    child_stop(s, index);
    child_settle(s, index, 1);
    return;
  }
  /* The runtime is stopping: no spawn would succeed, and the failed child
   * runs on until stop_all stops it. */
  if (actio__runtime_closing(s->rt))
    return;
  if (intensity(s) != 0) {
    give_up(s, index, code, why);
    return;
  }
  if (actio__actor_pause(s->self, backoff(s, s->ntimes)) != 0)
    return; /* stopped now: stop_all follows */
  size_t first = index, last = index;
  if (s->o.strategy == ACTIO_ONE_FOR_ALL)
    first = 0, last = s->n - 1;
  else if (s->o.strategy == ACTIO_REST_FOR_ONE)
    last = s->n - 1;
  for (size_t i = last + 1; i-- > first;) {
    pthread_mutex_lock(&s->mu);
    child *ci = s->children[i];
    actio_actor *addr = ci->dead || ci->spec.temporary ? NULL : ci->addr;
    pthread_mutex_unlock(&s->mu);
    if (addr != NULL) /* its senders wait for the next instance */
      actio__address_move(addr, NULL, 1);
    child_stop(s, i); /* a dead one has no instance */
  }
  for (size_t i = first; i <= last; i++) {
    if (s->children[i]->spec.temporary && i != index)
      child_settle(s, i, 1); /* stopped with the others, never restarted */
    pthread_mutex_lock(&s->mu);
    int dead = s->children[i]->dead;
    pthread_mutex_unlock(&s->mu);
    if (!dead && restart(s, i) != 0) {
      /* Gave up, or cannot restart: it and those after it stay down, and
       * their senders are told. */
      for (size_t j = i; j <= last; j++)
        child_settle(s, j, 0);
      break;
    }
  }
}

/* Room for one child more; 0 or ACTIO_ENOMEM. Under mu: lookups read the
 * array. */
static int grow(sup *s) {
  int rc = 0;
  pthread_mutex_lock(&s->mu);
  if (s->n == s->cap) {
    size_t cap = s->cap * 2 + 4;
    child **grown = realloc(s->children, cap * sizeof *grown);
    if (grown != NULL) {
      s->children = grown;
      s->cap = cap;
    } else {
      rc = ACTIO_ENOMEM;
    }
  }
  pthread_mutex_unlock(&s->mu);
  return rc;
}

/* Starts a child at run time, after the others. */
static void child_add(sup *s, sup_req *r) {
  size_t i;
  if (s->stopped) {
    actio_future_fail(r->reply, ACTIO_ECLOSED, "supervisor %s: stopped, or gave up",
                      s->o.name);
    return;
  }
  if (find_child(s, r->spec.name, NULL, &i) != NULL) {
    actio_future_fail(r->reply, ACTIO_EEXIST, "supervisor %s: a child is named %s already",
                      s->o.name, r->spec.name);
    return;
  }
  child *c = calloc(1, sizeof *c);
  if (c == NULL || (c->spec = r->spec, c->spec.name = strdup(r->spec.name)) == NULL ||
      grow(s) != 0) {
    if (c != NULL)
      free((char *)c->spec.name);
    free(c);
    actio_future_fail(r->reply, ACTIO_ENOMEM, "supervisor %s: no memory for child %s",
                      s->o.name, r->spec.name);
    return;
  }
  c->s = s;
  pthread_mutex_lock(&s->mu);
  s->children[s->n++] = c;
  pthread_mutex_unlock(&s->mu);
  int rc = child_start(s, s->n - 1);
  if (rc != 0) {
    child_remove(s, s->n - 1);
    actio_future_fail(r->reply, rc, "supervisor %s: child %s did not start: %s",
                      s->o.name, r->spec.name, actio_strerror(rc));
    return;
  }
  actio_future_resolve(r->reply, c->addr, NULL);
}

/* Stops a child for good and removes it. */
static void child_drop(sup *s, sup_req *r) {
  size_t i;
  child *c = find_child(s, r->addr != NULL ? NULL : r->name, r->addr, &i);
  if (c == NULL) {
    if (r->addr != NULL)
      actio_future_fail(r->reply, ACTIO_ENONAME, "supervisor %s: no such child",
                        s->o.name);
    else
      actio_future_fail(r->reply, ACTIO_ENONAME, "supervisor %s: no child named %s",
                        s->o.name, r->name);
    return;
  }
  actio_actor *addr = c->addr; /* NULL: it never started */
  child_stop(s, i);
  child_settle(s, i, 0);
  child_remove(s, i);
  if (addr != NULL) /* nothing finds it now: freed once nothing holds it */
    actio__address_release(addr);
  actio_future_resolve(r->reply, NULL, NULL);
}

/* A request's run: on the worker, or as it stops (rc ACTIO_ECLOSED). */
static void request_run(actio__sup_job *j, int rc) {
  sup_req *r = (sup_req *)j;
  sup *s = r->s;
  size_t i;
  if (r->notice) { /* dropped as the supervisor stops: nobody waits for it */
    if (rc == 0 && find_child(s, r->name, NULL, &i) != NULL)
      monitor(s, (actio_sup_event_kind)r->notice, i, r->code, r->why);
    free(r);
    return;
  }
  /* Stopping now, its children go now too. */
  if (rc != 0 || actio__actor_stopping_now(s->self))
    actio_future_fail(r->reply, ACTIO_ECLOSED, "supervisor %s stopped", s->o.name);
  else if (r->stop)
    child_drop(s, r);
  else
    child_add(s, r);
  actio_future_unref(r->reply);
  free(r);
}

/* Runs the requests, handles the failures noted, then runs the jobs
 * deferred (each after the restarts the failures before it called for),
 * until none is left; then the next one wakes the worker again. */
static void drain(sup *s) {
  for (;;) {
    actio__sup_job *j = dequeue(s, &s->reqs);
    child *c;
    actio_actor *inst;
    int code;
    char why[WHY_MAX];
    if (j != NULL) {
      j->run(j, 0);
    } else if (next_failure(s, &c, &inst, &code, why)) {
      child_failed(s, c, inst, code, why);
    } else if ((j = dequeue(s, &s->jobs)) != NULL) {
      j->run(j, 0);
    } else {
      pthread_mutex_lock(&s->mu);
      int idle = s->reqs.head == NULL && s->failed_head == NULL && s->jobs.head == NULL;
      if (idle)
        s->woken = 0;
      pthread_mutex_unlock(&s->mu);
      if (idle)
        return;
    }
  }
}

static int sup_handle(actio_actor *self, void *worker, void *msg,
                      actio_future *reply) {
  sup *s = actio_actor_state(self);
  (void)worker;
  int rc = 0;
  if (msg == &start_token) {
    rc = start_children(s);
    if (rc == 0)
      actio_future_resolve(reply, NULL, NULL);
    else
      actio_future_fail(reply, rc, "supervisor %s: a child did not start: %s",
                        s->o.name, actio_strerror(rc));
    rc = 0;
  } else if (msg != &wake_token) {
    rc = ACTIO_EINVAL; /* not a supervisor's message */
  }
  drain(s); /* whatever the message */
  return rc;
}

/* The supervisor stops: its children first, newest first. */
static void sup_worker_stop(actio_actor *self, void *worker) {
  (void)worker;
  sup *s = actio_actor_state(self);
  stop_all(s);
  /* Requests and jobs left, and any sent from now on, are refused. */
  pthread_mutex_lock(&s->mu);
  s->closed = 1;
  job_queue left[2] = {s->reqs, s->jobs};
  s->reqs.head = s->reqs.tail = s->jobs.head = s->jobs.tail = NULL;
  pthread_mutex_unlock(&s->mu);
  for (int q = 0; q < 2; q++)
    for (actio__sup_job *j = left[q].head, *next; j != NULL; j = next) {
      next = j->next; /* j may be gone once run */
      j->run(j, ACTIO_ECLOSED);
    }
}

static const actio_behavior sup_behavior = {
    .handle = sup_handle,
    .worker_stop = sup_worker_stop,
};

static void sup_free(void *p) {
  sup *s = p;
  for (size_t i = 0; s->children != NULL && i < s->n; i++) {
    if (s->children[i] != NULL)
      free((char *)s->children[i]->spec.name);
    free(s->children[i]);
  }
  free(s->children);
  free(s->times);
  free((char *)s->o.name);
  pthread_mutex_destroy(&s->mu);
  free(s);
}

int actio_sup_spawn(actio_runtime *rt, const actio_sup_opts *opts,
                    const actio_child_spec *children, size_t n,
                    actio_actor **out) {
  if (rt == NULL || out == NULL || (n > 0 && children == NULL))
    return ACTIO_EINVAL;
  for (size_t i = 0; i < n; i++) {
    if (children[i].start == NULL || children[i].name == NULL)
      return ACTIO_EINVAL;
    for (size_t j = 0; j < i; j++)
      if (strcmp(children[i].name, children[j].name) == 0)
        return ACTIO_EINVAL;
  }
  sup *s = calloc(1, sizeof *s);
  if (s == NULL)
    return ACTIO_ENOMEM;
  pthread_mutex_init(&s->mu, NULL);
  s->rt = rt;
  s->o = opts ? *opts : (actio_sup_opts){0};
  s->o.name = strdup(s->o.name ? s->o.name : "supervisor");
  s->o.max_restarts = s->o.max_restarts ? s->o.max_restarts : 3;
  s->o.period_ms = s->o.period_ms > 0 ? s->o.period_ms : 5000;
  s->o.backoff_ms = s->o.backoff_ms != 0 ? s->o.backoff_ms : 10;
  s->o.backoff_max_ms = s->o.backoff_max_ms > 0 ? s->o.backoff_max_ms : 1000;
  if (s->o.backoff_max_ms < s->o.backoff_ms)
    s->o.backoff_max_ms = s->o.backoff_ms;
  s->n = s->cap = n;
  s->children = calloc(n ? n : 1, sizeof *s->children);
  s->times = calloc(s->o.max_restarts, sizeof *s->times);
  int ok = s->o.name != NULL && s->children != NULL && s->times != NULL;
  for (size_t i = 0; ok && i < n; i++) {
    child *c = s->children[i] = calloc(1, sizeof *c);
    if ((ok = c != NULL)) {
      c->s = s;
      c->spec = children[i];
      ok = (c->spec.name = strdup(children[i].name)) != NULL;
    }
  }
  if (!ok) {
    sup_free(s);
    return ACTIO_ENOMEM;
  }
  actio_actor_opts ao = {.name = s->o.name, .workers = 1, .capacity = 256,
                         .state = s, .state_free = sup_free};
  int rc = actio_actor_spawn(rt, &sup_behavior, &ao, &s->self);
  if (rc != 0)
    return rc; /* the spawn freed s */
  actio_future *started;
  rc = actio_ask(s->self, &start_token, -1, &started);
  if (rc == 0) {
    rc = actio_future_wait(started, -1);
    actio_future_unref(started);
  }
  if (rc != 0) {
    actio_actor_stop(s->self, ACTIO_STOP_NOW);
    return rc; /* s is freed with the runtime, as every actor */
  }
  *out = s->self;
  return 0;
}

int actio_sup_child(actio_runtime *rt, void *def, actio_actor **out) {
  actio_sup_def *d = def;
  return d ? actio_sup_spawn(rt, &d->opts, d->children, d->n, out) : ACTIO_EINVAL;
}

static sup *sup_of(actio_actor *a) {
  return a != NULL && actio_actor_behavior(a) == &sup_behavior ? actio_actor_state(a)
                                                               : NULL;
}

/* The address of child `name` if it runs, else NULL. Under mu. */
static actio_actor *running_addr(const sup *s, const char *name) {
  for (size_t i = 0; i < s->n; i++)
    if (strcmp(s->children[i]->spec.name, name) == 0 && s->children[i]->cur != NULL)
      return s->children[i]->addr;
  return NULL;
}

actio_actor *actio_sup_lookup(actio_actor *a, const char *name) {
  sup *s = sup_of(a);
  if (s == NULL || name == NULL)
    return NULL;
  pthread_mutex_lock(&s->mu);
  actio_actor *found = running_addr(s, name);
  pthread_mutex_unlock(&s->mu);
  return found;
}

void actio_sup_stats_get(actio_actor *a, actio_sup_stats *out) {
  sup *s = sup_of(a);
  memset(out, 0, sizeof *out);
  if (s == NULL)
    return;
  out->failures = atomic_load_explicit(&s->failures, memory_order_relaxed);
  out->restarts = atomic_load_explicit(&s->restarts, memory_order_relaxed);
  out->gave_up = atomic_load_explicit(&s->gave_up, memory_order_relaxed);
}

/* Queues r for the worker and wakes it; on success *out is the caller's
 * reference to r's future. */
static int request_send(actio_actor *a, sup_req *r, actio_future **out) {
  sup *s = sup_of(a);
  int rc = actio_future_create(&r->reply);
  if (rc != 0) {
    free(r);
    return rc;
  }
  actio_future *f = r->reply;
  actio_future_ref(f); /* the caller's: r is the worker's once queued */
  r->s = s;
  r->job.run = request_run;
  if ((rc = enqueue(s, &s->reqs, &r->job, NULL, NULL)) != 0) {
    actio_future_unref(f);
    actio_future_unref(f);
    free(r);
    return rc;
  }
  *out = f;
  return 0;
}

int actio__sup_defer(actio_actor *inst, actio__sup_job *job) {
  sup *s = actio_actor_state(inst);
  return enqueue(s, &s->jobs, job, NULL, NULL);
}

static int defer_to_parent(void *c, void *job) {
  sup *s = ((child *)c)->s;
  return enqueue(s, &s->jobs, job, NULL, NULL);
}

int actio__sup_defer_child(actio_actor *a, actio__sup_job *job) {
  return actio__actor_monitor_call(a, on_child_fail, defer_to_parent, job);
}

int actio__sup_ref(actio_actor *a, actio_actor **inst) {
  if (a == NULL)
    return ACTIO_EINVAL;
  actio_actor *i = actio__actor_pin(a);
  int rc = actio_actor_behavior(i) == &sup_behavior ? 0 : ACTIO_EINVAL;
  if (rc == 0) {
    actio__actor_ref(i);
    *inst = i;
  }
  actio__actor_unpin(a);
  return rc;
}

int actio__sup_child_ref(actio_actor *inst, const char *name, actio_actor **addr) {
  sup *s = actio_actor_state(inst);
  pthread_mutex_lock(&s->mu); /* the worker releases an address after it */
  actio_actor *found = running_addr(s, name);
  if (found != NULL)
    actio__actor_ref(found);
  pthread_mutex_unlock(&s->mu);
  *addr = found;
  return found != NULL ? 0 : ACTIO_ENONAME;
}

const char *actio__sup_name(const actio_actor *inst) {
  return ((const sup *)actio_actor_state(inst))->o.name;
}

/* A request naming `name` (copied behind it). */
static sup_req *request_new(const char *name) {
  size_t len = name != NULL ? strlen(name) + 1 : 1;
  sup_req *r = calloc(1, sizeof *r + len);
  if (r != NULL && name != NULL)
    memcpy(r->name, name, len);
  return r;
}

int actio_sup_start_child(actio_actor *sup_actor, const actio_child_spec *spec,
                          actio_future **out) {
  if (sup_of(sup_actor) == NULL || spec == NULL || spec->name == NULL ||
      spec->start == NULL || out == NULL)
    return ACTIO_EINVAL;
  sup_req *r = request_new(spec->name);
  if (r == NULL)
    return ACTIO_ENOMEM;
  r->spec = *spec;
  r->spec.name = r->name;
  return request_send(sup_actor, r, out);
}

int actio_sup_stop_child(actio_actor *sup_actor, const char *name, actio_future **out) {
  if (sup_of(sup_actor) == NULL || name == NULL || out == NULL)
    return ACTIO_EINVAL;
  sup_req *r = request_new(name);
  if (r == NULL)
    return ACTIO_ENOMEM;
  r->stop = 1;
  return request_send(sup_actor, r, out);
}

int actio_sup_stop_child_at(actio_actor *sup_actor, actio_actor *child_addr,
                            actio_future **out) {
  if (sup_of(sup_actor) == NULL || child_addr == NULL || out == NULL)
    return ACTIO_EINVAL;
  sup_req *r = request_new(NULL);
  if (r == NULL)
    return ACTIO_ENOMEM;
  r->stop = 1;
  r->addr = child_addr;
  return request_send(sup_actor, r, out);
}

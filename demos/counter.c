/* counter.c: an actor of your own: a behavior with state, told and asked,
 * that fails and is restarted by its supervisor with fresh state.
 * Each result is checked; the exit status is 1 if one is wrong.
 *   actio-demo-counter */
#include <stdio.h>
#include <stdlib.h>

#include <actio.h>

/* A message: heap-allocated by the sender, owned by the actor once sent. */
typedef enum { ADD, GET, CRASH } counter_op;
typedef struct counter_msg {
  counter_op op;
  long n;
} counter_msg;

/* The actor's state. A scheduled actor (the default) has one context and
 * handles one message at a time, so the handler needs no lock. */
typedef struct counter {
  long total;
} counter;

static int counter_init(actio_actor *self, void **worker) {
  (void)self;
  counter *c = calloc(1, sizeof *c);
  if (c == NULL)
    return ACTIO_ENOMEM;
  *worker = c;
  return 0;
}

static void counter_stop(actio_actor *self, void *worker) {
  (void)self;
  free(worker);
}

/* reply is NULL for a tell, the asker's future for an ask. */
static int counter_handle(actio_actor *self, void *worker, void *msg, actio_future *reply) {
  (void)self;
  counter *c = worker;
  counter_msg m = *(counter_msg *)msg;
  free(msg);
  switch (m.op) {
  case ADD:
    c->total += m.n;
    return reply != NULL ? actio_future_resolve(reply, NULL, NULL) : 0;
  case GET: {
    if (reply == NULL)
      return ACTIO_EINVAL;
    long *v = malloc(sizeof *v);
    if (v == NULL)
      return ACTIO_ENOMEM;
    *v = c->total;
    return actio_future_resolve(reply, v, free); /* the future frees it */
  }
  case CRASH:
    return ACTIO_EFATAL; /* fails the asker and the actor: a restart */
  }
  return ACTIO_EINVAL;
}

/* A message accepted but never handled (stopped at once, asker cancelled). */
static void counter_drop(actio_actor *self, void *msg) {
  (void)self;
  free(msg);
}

static const actio_behavior counter_behavior = {
    .worker_init = counter_init,
    .handle = counter_handle,
    .worker_stop = counter_stop,
    .drop = counter_drop,
};

/* The supervisor calls this for the first instance and for each restart. */
static int start_counter(actio_runtime *rt, void *arg, actio_actor **out) {
  (void)arg;
  return actio_actor_spawn(rt, &counter_behavior, &(actio_actor_opts){.name = "counter"},
                           out);
}

/* Heard on the supervisor's worker: a restart sets the event main waits on. */
static void on_sup_event(void *arg, const actio_sup_event *ev) {
  if (ev->kind == ACTIO_SUP_CHILD_RESTARTED)
    actio_event_set(arg);
}

/* Sends one message: asked when out is not NULL, else told. */
static int counter_send(actio_actor *a, counter_op op, long n, actio_future **out) {
  counter_msg *m = malloc(sizeof *m);
  if (m == NULL)
    return ACTIO_ENOMEM;
  *m = (counter_msg){.op = op, .n = n};
  int rc = out != NULL ? actio_ask(a, m, -1, out) : actio_tell(a, m, -1);
  if (rc != 0)
    free(m); /* a refused message stays the sender's */
  return rc;
}

/* Asks for the total; *total is set, or an error returned. */
static int counter_get(actio_actor *a, long *total) {
  actio_future *f;
  int rc = counter_send(a, GET, 0, &f);
  if (rc != 0)
    return rc;
  rc = actio_future_wait(f, -1);
  if (rc == 0)
    *total = *(long *)actio_future_value(f);
  actio_future_unref(f);
  return rc;
}

/* Reports what went wrong, and the error if rc is one; returns 1 (the exit
 * status). */
static int wrong(const char *what, int rc) {
  fprintf(stderr, "wrong: %s%s%s\n", what, rc != 0 ? ": " : "",
          rc != 0 ? actio_strerror(rc) : "");
  return 1;
}

int main(void) {
  actio_runtime *rt;
  actio_event *restarted;
  actio_actor *sup;
  int rc = actio_runtime_create(&rt, NULL);
  if (rc != 0)
    return wrong("runtime", rc);
  if ((rc = actio_event_create(&restarted)) != 0)
    return wrong("event", rc);
  actio_child_spec child = {.name = "counter", .start = start_counter};
  actio_sup_opts so = {.name = "sup", .monitor = on_sup_event, .monitor_arg = restarted};
  if ((rc = actio_sup_spawn(rt, &so, &child, 1, &sup)) != 0)
    return wrong("supervisor", rc);
  /* Its address: the same handle whichever instance runs. */
  actio_actor *c = actio_sup_lookup(sup, "counter");

  /* One sender's messages are handled in the order sent. */
  long total = 0;
  for (long i = 1; i <= 100; i++)
    if ((rc = counter_send(c, ADD, i, NULL)) != 0)
      return wrong("tell", rc);
  if ((rc = counter_get(c, &total)) != 0)
    return wrong("ask", rc);
  printf("told 1..100, asked: %ld\n", total);
  if (total != 5050)
    return wrong("the total", 0);

  /* A handler's ACTIO_EFATAL fails the asker and the actor; the supervisor
   * then replaces the instance behind the address, and its monitor sets
   * `restarted`. Messages sent before that may still reach the old one. */
  actio_future *crash, *back;
  if ((rc = actio_event_wait(restarted, &back)) != 0 ||
      (rc = counter_send(c, CRASH, 0, &crash)) != 0)
    return wrong("crash", rc);
  rc = actio_future_wait(crash, -1);
  printf("asked to crash: %s (%s)\n", actio_err_name(rc), actio_future_errmsg(crash));
  actio_future_unref(crash);
  if (rc != ACTIO_EFATAL)
    return wrong("the crash's code", rc);
  if ((rc = actio_future_wait(back, -1)) != 0)
    return wrong("the restart", rc);
  actio_future_unref(back);

  if ((rc = counter_send(c, ADD, 42, NULL)) != 0 || (rc = counter_get(c, &total)) != 0)
    return wrong("after the restart", rc);
  printf("restarted with fresh state, told 42, asked: %ld\n", total);
  if (total != 42)
    return wrong("the total after the restart", 0);

  actio_sup_stats st;
  actio_sup_stats_get(sup, &st);
  printf("supervisor %s: %llu failure, %llu restart\n", actio_actor_name(sup),
         (unsigned long long)st.failures, (unsigned long long)st.restarts);
  if (st.failures != 1 || st.restarts != 1)
    return wrong("the supervisor's counters", 0);
  actio_runtime_destroy(rt); /* stops the supervisor, then the counter */
  actio_event_destroy(restarted);
  return 0;
}

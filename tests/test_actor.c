/* test_actor.c: custom actors: spawn, tell and ask, worker pools, stop
 * (drain and now), dead letters, full mailboxes, and stop order. */
#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "actio.h"
#include "actors/core/actor_internal.h"
#include "test_util.h"

/* A counter actor: messages are (uintptr_t) amounts; replies carry the sum so
 * far. Workers count their inits and stops. */
typedef struct {
  _Atomic uint64_t sum;
  _Atomic int inits, stops, handled, dropped;
  int fail_init_at; /* worker init number that fails, or 0 */
  _Atomic int *order; /* stop order log for the runtime test */
  int id;
  actio_future *entered, *gate; /* if set: each message resolves entered,
                                   then waits for gate */
} counter;

static int counter_init(actio_actor *self, void **worker) {
  counter *c = actio_actor_state(self);
  int n = atomic_fetch_add(&c->inits, 1) + 1;
  *worker = (void *)(uintptr_t)n;
  return n == c->fail_init_at ? -EMFILE : 0;
}

static void counter_stop(actio_actor *self, void *worker) {
  counter *c = actio_actor_state(self);
  ck_assert_ptr_nonnull(worker);
  atomic_fetch_add(&c->stops, 1);
  if (c->order != NULL) {
    int pos = atomic_fetch_add(&c->order[0], 1);
    c->order[1 + pos] = c->id;
  }
}

static int counter_handle(actio_actor *self, void *worker, void *msg,
                          actio_future *reply) {
  counter *c = actio_actor_state(self);
  (void)worker;
  ck_assert_ptr_eq(actio_actor_self(), self); /* the actor this worker runs */
  if (c->gate != NULL) {
    actio_future_resolve(c->entered, NULL, NULL);
    actio_future_wait(c->gate, -1);
  }
  if ((uintptr_t)msg == 13)
    return -EDOM; /* an unlucky number fails */
  uint64_t s = atomic_fetch_add(&c->sum, (uintptr_t)msg) + (uintptr_t)msg;
  atomic_fetch_add(&c->handled, 1);
  if (reply != NULL)
    actio_future_resolve(reply, (void *)(uintptr_t)s, NULL);
  return 0;
}

static void counter_drop(actio_actor *self, void *msg) {
  counter *c = actio_actor_state(self);
  (void)msg;
  atomic_fetch_add(&c->dropped, 1);
}

static const actio_behavior counter_behavior = {
    .worker_init = counter_init,
    .handle = counter_handle,
    .worker_stop = counter_stop,
    .drop = counter_drop,
};

static actio_actor *spawn(actio_runtime *rt, counter *c, unsigned workers,
                          size_t capacity) {
  actio_actor *a;
  actio_actor_opts o = {.name = "counter", .workers = workers,
                        .capacity = capacity, .state = c};
  ck_assert_int_eq(actio_actor_spawn(rt, &counter_behavior, &o, &a), 0);
  return a;
}

/* How many of this process's threads are named name (/proc/self/task). */
static int threads_named(const char *name) {
  DIR *d = opendir("/proc/self/task");
  ck_assert_ptr_nonnull(d);
  int n = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    char path[300], comm[32] = "";
    snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
    FILE *f = e->d_name[0] != '.' ? fopen(path, "r") : NULL;
    if (f == NULL)
      continue;
    if (fgets(comm, sizeof comm, f) != NULL)
      comm[strcspn(comm, "\n")] = '\0';
    fclose(f);
    n += strcmp(comm, name) == 0;
  }
  closedir(d);
  return n;
}

START_TEST(tell_and_ask_reach_the_handler) {
  actio_runtime *rt;
  counter c = {0};
  ck_assert_int_eq(actio_runtime_create(&rt, NULL), 0);
  actio_actor *a = spawn(rt, &c, 3, 64);
  ck_assert_str_eq(actio_actor_name(a), "counter");
  ck_assert_ptr_eq(actio_actor_runtime(a), rt);
  ck_assert_ptr_null(actio_actor_self()); /* no actor's worker here */
  ck_assert_int_eq(atomic_load(&c.inits), 3);
  /* Its workers carry its name, as top -H and gdb show them. */
  ck_assert_int_eq(threads_named("counter-0"), 1);
  ck_assert_int_eq(threads_named("counter-2"), 1);
  ck_assert_int_eq(threads_named("counter-3"), 0);
  for (uintptr_t i = 1; i <= 10; i++)
    ck_assert_int_eq(actio_tell(a, (void *)i, -1), 0);
  actio_future *f;
  ck_assert_int_eq(actio_ask(a, (void *)100, -1, &f), 0);
  ck_assert_int_eq(actio_future_wait(f, -1), 0);
  ck_assert_uint_ge((uintptr_t)actio_future_value(f), 100);
  actio_future_unref(f);
  ck_assert_int_eq(actio_actor_stop(a, ACTIO_STOP_DRAIN), 0);
  ck_assert_uint_eq(atomic_load(&c.sum), 155);
  ck_assert_int_eq(atomic_load(&c.stops), 3);
  actio_actor_stats st;
  actio_actor_stats_get(a, &st);
  ck_assert_uint_eq(st.accepted, 11);
  ck_assert_uint_eq(st.handled, 11);
  ck_assert_uint_eq(st.depth, 0);
  actio_runtime_destroy(rt);
}
END_TEST

typedef struct {
  actio_actor *a;
  int n, fails;
} asker;

/* Asks n times, one at a time; every 10th asks for 13, which fails. */
static void *ask_n(void *p) {
  asker *k = p;
  for (int i = 0; i < k->n; i++) {
    actio_future *f;
    uintptr_t v = i % 10 == 9 ? 13 : 1;
    ck_assert_int_eq(actio_ask(k->a, (void *)v, -1, &f), 0);
    int st = actio_future_wait(f, -1);
    ck_assert_int_eq(st, v == 13 ? -EDOM : 0);
    k->fails += st != 0;
    actio_future_unref(f);
  }
  return NULL;
}

/* Six threads ask an actor of three workers: each thread counts in a
 * share of the counters (more threads than shares here: some share one),
 * and the getters' sums are every message, once. */
START_TEST(counters_from_many_threads_sum_up) {
  actio_runtime *rt;
  counter c = {0};
  ck_assert_int_eq(actio_runtime_create(&rt, NULL), 0);
  actio_actor *a = spawn(rt, &c, 3, 64);
  enum { THREADS = 6, EACH = 2000 };
  asker k[THREADS];
  for (int i = 0; i < THREADS; i++)
    k[i] = (asker){a, EACH, 0};
  pthread_t t[THREADS];
  start_threads(t, THREADS, ask_n, k, sizeof *k);
  join_threads(t, THREADS);
  int fails = 0;
  for (int i = 0; i < THREADS; i++)
    fails += k[i].fails;
  ck_assert_int_eq(fails, THREADS * EACH / 10);
  /* A wait may return before its future's callbacks ran, the timing's
   * among them, and before its handler returned: polled until every end
   * is counted. */
  actio_actor_metrics m;
  for (actio_actor_metrics_get(a, &m); m.completed + m.errors < THREADS * EACH ||
                                       m.stats.handled + m.stats.failed < THREADS * EACH;
       actio_actor_metrics_get(a, &m))
    sched_yield();
  ck_assert_uint_eq(m.stats.accepted, THREADS * EACH);
  ck_assert_uint_eq(m.stats.handled, THREADS * EACH - fails);
  ck_assert_uint_eq(m.stats.failed, fails);
  ck_assert_uint_eq(m.stats.dropped, 0);
  ck_assert_uint_eq(m.completed, THREADS * EACH - fails);
  ck_assert_uint_eq(m.errors, fails);
  ck_assert_uint_eq(m.in_flight, 0);
  ck_assert_uint_eq(m.running, 0);
  ck_assert_uint_eq(m.waiting, 0);
  ck_assert(m.max_ms >= m.p99_ms && m.p99_ms >= m.p50_ms);
  actio_runtime_destroy(rt);
}
END_TEST

START_TEST(spawn_rejects_bad_input_and_failed_init) {
  actio_runtime *rt;
  counter c = {.fail_init_at = 2};
  actio_actor *a;
  actio_behavior no_handler = {0};
  ck_assert_int_eq(actio_runtime_create(&rt, NULL), 0);
  ck_assert_int_eq(actio_actor_spawn(NULL, &counter_behavior, NULL, &a), ACTIO_EINVAL);
  ck_assert_int_eq(actio_actor_spawn(rt, &no_handler, NULL, &a), ACTIO_EINVAL);
  actio_actor_opts o = {.workers = 3, .state = &c};
  ck_assert_int_eq(actio_actor_spawn(rt, &counter_behavior, &o, &a), -EMFILE);
  /* The two workers whose init succeeded were stopped again. */
  ck_assert_int_eq(atomic_load(&c.inits), 3);
  ck_assert_int_eq(atomic_load(&c.stops), 2);
  ck_assert_int_eq(actio_tell(NULL, NULL, 0), ACTIO_EINVAL);
  actio_runtime_destroy(rt);
}
END_TEST

START_TEST(handler_error_fails_the_reply) {
  actio_runtime *rt;
  counter c = {0};
  ck_assert_int_eq(actio_runtime_create(&rt, NULL), 0);
  actio_actor *a = spawn(rt, &c, 1, 8);
  actio_future *f;
  ck_assert_int_eq(actio_ask(a, (void *)13, -1, &f), 0);
  ck_assert_int_eq(actio_future_wait(f, -1), -EDOM);
  ck_assert_ptr_nonnull(strstr(actio_future_errmsg(f), "counter"));
  actio_future_unref(f);
  actio_actor_stop(a, ACTIO_STOP_DRAIN);
  actio_actor_stats st;
  actio_actor_stats_get(a, &st);
  ck_assert_uint_eq(st.failed, 1);
  actio_runtime_destroy(rt);
}
END_TEST

typedef struct {
  actio_future *gate;
  _Atomic int sender; /* the sender's thread, once it is about to wait */
} room_opener;

/* Opens the gate once the sender sleeps, waiting for room. */
static void *open_gate_when_blocked(void *p) {
  room_opener *o = p;
  await_blocked(&o->sender);
  actio_future_resolve(o->gate, NULL, NULL);
  return NULL;
}

START_TEST(full_mailbox_fails_or_waits) {
  actio_runtime *rt;
  counter c = {0};
  ck_assert_int_eq(actio_future_create(&c.entered), 0);
  ck_assert_int_eq(actio_future_create(&c.gate), 0);
  ck_assert_int_eq(actio_runtime_create(&rt, NULL), 0);
  actio_actor *a = spawn(rt, &c, 1, 2);
  /* The worker holds the first message at the gate; two fill the mailbox. */
  ck_assert_int_eq(actio_tell(a, (void *)1, 0), 0);
  ck_assert_int_eq(actio_future_wait(c.entered, -1), 0);
  ck_assert_int_eq(actio_tell(a, (void *)1, 0), 0);
  ck_assert_int_eq(actio_tell(a, (void *)1, 0), 0);
  ck_assert_int_eq(actio_tell(a, (void *)1, 0), ACTIO_EFULL);
  ck_assert_int_eq(actio_tell(a, (void *)1, 20), ACTIO_ETIMEDOUT);
  room_opener ro = {.gate = c.gate};
  pthread_t t;
  start_threads(&t, 1, open_gate_when_blocked, &ro, 0);
  announce_block(&ro.sender);
  ck_assert_int_eq(actio_tell(a, (void *)1, -1), 0); /* waits for room */
  join_threads(&t, 1);
  actio_actor_stop(a, ACTIO_STOP_DRAIN);
  ck_assert_int_eq(atomic_load(&c.handled), 4);
  ck_assert_int_eq(atomic_load(&c.dropped), 0);
  actio_runtime_destroy(rt);
  actio_future_unref(c.entered);
  actio_future_unref(c.gate);
}
END_TEST

typedef struct {
  actio_actor *a;
  actio_future *gate;
  int told; /* tells accepted before the close */
} opener;

/* Opens the gate once the actor refuses messages, i.e. once stop has begun. */
static void *open_gate_when_closed(void *p) {
  opener *o = p;
  int rc;
  while ((rc = actio_tell(o->a, (void *)1, 0)) != ACTIO_ECLOSED) {
    o->told += rc == 0;
    usleep(1000); /* paces the probes */
  }
  actio_future_resolve(o->gate, NULL, NULL);
  return NULL;
}

START_TEST(stop_now_cancels_what_waits) {
  enum { N = 200 };
  actio_runtime *rt;
  counter c = {0};
  ck_assert_int_eq(actio_future_create(&c.entered), 0);
  ck_assert_int_eq(actio_future_create(&c.gate), 0);
  ck_assert_int_eq(actio_runtime_create(&rt, NULL), 0);
  actio_actor *a = spawn(rt, &c, 2, 256);
  actio_future *fs[N];
  for (uintptr_t i = 0; i < N; i++)
    ck_assert_int_eq(actio_ask(a, (void *)1, -1, &fs[i]), 0);
  ck_assert_int_eq(actio_future_wait(c.entered, -1), 0);
  opener o = {a, c.gate, 0};
  pthread_t t;
  start_threads(&t, 1, open_gate_when_closed, &o, 0);
  ck_assert_int_eq(actio_actor_stop(a, ACTIO_STOP_NOW), 0);
  join_threads(&t, 1);
  ck_assert_int_eq(actio_actor_stop(a, ACTIO_STOP_NOW), 0); /* idempotent */
  /* Every accepted request completed exactly once: handled or cancelled. */
  int ok = 0, cancelled = 0;
  for (int i = 0; i < N; i++) {
    int st = actio_future_wait(fs[i], 0);
    ck_assert(st == 0 || st == ACTIO_ECANCELED);
    ok += st == 0;
    cancelled += st == ACTIO_ECANCELED;
    actio_future_unref(fs[i]);
  }
  ck_assert_int_eq(ok + cancelled, N);
  /* What the workers held at the gate (one at least: it resolved entered;
   * at most one per worker) was handled; the rest, the opener's tells
   * included, was dropped. */
  ck_assert_int_ge(ok, 1);
  ck_assert_int_le(ok, 2);
  ck_assert_int_eq(atomic_load(&c.handled), ok);
  ck_assert_int_eq(atomic_load(&c.dropped), N + o.told - ok);
  actio_actor_stats st;
  actio_actor_stats_get(a, &st);
  ck_assert_uint_eq(st.accepted, (uint64_t)(N + o.told));
  ck_assert_uint_eq(st.handled + st.dropped, st.accepted);
  /* After the stop, sends are dead letters. */
  uint64_t dead = actio_runtime_dead_letters(rt);
  actio_future *late = NULL;
  ck_assert_int_eq(actio_tell(a, (void *)1, 0), ACTIO_ECLOSED);
  ck_assert_int_eq(actio_ask(a, (void *)1, 0, &late), ACTIO_ECLOSED);
  ck_assert_ptr_null(late);
  ck_assert_uint_eq(actio_runtime_dead_letters(rt), dead + 2);
  actio_runtime_destroy(rt);
  actio_future_unref(c.entered);
  actio_future_unref(c.gate);
}
END_TEST

START_TEST(cancelled_ask_is_dropped_unhandled) {
  actio_runtime *rt;
  counter c = {0};
  ck_assert_int_eq(actio_future_create(&c.entered), 0);
  ck_assert_int_eq(actio_future_create(&c.gate), 0);
  ck_assert_int_eq(actio_runtime_create(&rt, NULL), 0);
  actio_actor *a = spawn(rt, &c, 1, 8);
  actio_future *busy, *f;
  ck_assert_int_eq(actio_ask(a, (void *)1, -1, &busy), 0);
  ck_assert_int_eq(actio_future_wait(c.entered, -1), 0); /* worker is busy */
  ck_assert_int_eq(actio_ask(a, (void *)5, -1, &f), 0);
  ck_assert_int_eq(actio_future_cancel(f), 0);
  actio_future_resolve(c.gate, NULL, NULL);
  ck_assert_int_eq(actio_future_wait(busy, -1), 0);
  actio_actor_stop(a, ACTIO_STOP_DRAIN);
  ck_assert_int_eq(actio_future_status(f), ACTIO_ECANCELED);
  ck_assert_uint_eq(atomic_load(&c.sum), 1);
  ck_assert_int_eq(atomic_load(&c.dropped), 1);
  actio_future_unref(busy);
  actio_future_unref(f);
  actio_runtime_destroy(rt);
  actio_future_unref(c.entered);
  actio_future_unref(c.gate);
}
END_TEST

/* An actor that tries to stop itself from its own worker. */
static int self_stopper(actio_actor *self, void *worker, void *msg,
                        actio_future *reply) {
  (void)worker;
  (void)msg;
  actio_future_resolve(reply, (void *)(intptr_t)actio_actor_stop(self, ACTIO_STOP_DRAIN), NULL);
  return 0;
}

/* An actor (scheduled, or with workers of its own) asked to stop itself. */
static void stop_refused_on_own_thread(unsigned workers) {
  actio_runtime *rt;
  actio_behavior b = {.handle = self_stopper};
  actio_actor *a;
  actio_future *f;
  ck_assert_int_eq(actio_runtime_create(&rt, NULL), 0);
  ck_assert_int_eq(actio_actor_spawn(rt, &b, &(actio_actor_opts){.workers = workers}, &a), 0);
  ck_assert_int_eq(actio_ask(a, NULL, -1, &f), 0);
  ck_assert_int_eq(actio_future_wait(f, -1), 0);
  ck_assert_int_eq((intptr_t)actio_future_value(f), ACTIO_ESTATE);
  actio_future_unref(f);
  actio_runtime_destroy(rt);
}

START_TEST(stop_from_own_worker_is_refused) { stop_refused_on_own_thread(0); }
END_TEST

START_TEST(stop_from_own_thread_is_refused) {
  stop_refused_on_own_thread(1); /* a thread of its own */
}
END_TEST

static void free_flag(void *state) { *(int *)state = 1; }

START_TEST(bad_arguments_are_refused) {
  actio_future *f = NULL;
  ck_assert_int_eq(actio_runtime_create(NULL, NULL), ACTIO_EINVAL);
  actio_runtime_destroy(NULL);
  ck_assert_int_eq(actio_ask(NULL, NULL, 0, &f), ACTIO_EINVAL);
  ck_assert_ptr_null(f);
  ck_assert_int_eq(actio_actor_stop(NULL, ACTIO_STOP_NOW), ACTIO_EINVAL);
  actio_actor_fail(NULL, ACTIO_EFATAL, "nobody");
  /* A spawn that fails still frees the state it was given. */
  int freed = 0;
  actio_actor *a;
  actio_actor_opts o = {.state = &freed, .state_free = free_flag};
  ck_assert_int_eq(actio_actor_spawn(NULL, &counter_behavior, &o, &a), ACTIO_EINVAL);
  ck_assert_int_eq(freed, 1);
}
END_TEST

/* Counts its messages and checks they come in order (each is its number). */
typedef struct in_order {
  _Atomic uintptr_t next;
  _Atomic int wrong;
} in_order;

static int count_in_order(actio_actor *self, void *worker, void *msg, actio_future *reply) {
  in_order *o = actio_actor_state(self);
  (void)worker, (void)reply;
  uintptr_t n = atomic_load(&o->next);
  if ((uintptr_t)msg != n)
    atomic_fetch_add(&o->wrong, 1);
  atomic_store(&o->next, n + 1);
  return 0;
}

/* Tells its message's count of numbered messages to the actor in its state. */
static int burst(actio_actor *self, void *worker, void *msg, actio_future *reply) {
  (void)worker, (void)reply;
  for (uintptr_t i = 0; i < (uintptr_t)msg; i++)
    if (actio_tell(actio_actor_state(self), (void *)i, -1) != 0)
      return ACTIO_EFATAL;
  return 0;
}

START_TEST(a_scheduled_actor_with_a_long_queue_takes_turns) {
  /* A handler tells 1000 messages to another scheduled actor: it runs on
   * that thread once the handler returns, with all of them waiting, so it
   * takes them in batches, going to the back of the queue between them. */
  actio_runtime *rt;
  ck_assert_int_eq(actio_runtime_create(&rt, &(actio_runtime_opts){.threads = 1}), 0);
  static const actio_behavior counting = {.handle = count_in_order}, bursting = {.handle = burst};
  in_order o = {0};
  actio_actor *receiver, *sender;
  ck_assert_int_eq(actio_actor_spawn(rt, &counting, &(actio_actor_opts){.state = &o,
                                                                         .capacity = 1024},
                                     &receiver), 0);
  ck_assert_int_eq(actio_actor_spawn(rt, &bursting, &(actio_actor_opts){.state = receiver},
                                     &sender), 0);
  ck_assert_int_eq(actio_tell(sender, (void *)1000, -1), 0);
  ck_assert_int_eq(actio_actor_stop(sender, ACTIO_STOP_DRAIN), 0);
  ck_assert_int_eq(actio_actor_stop(receiver, ACTIO_STOP_DRAIN), 0);
  ck_assert_uint_eq(atomic_load(&o.next), 1000);
  ck_assert_int_eq(atomic_load(&o.wrong), 0);
  actio_runtime_destroy(rt);
}
END_TEST

START_TEST(runtime_destroy_stops_in_reverse_order_and_drains) {
  actio_runtime *rt;
  _Atomic int order[4] = {0};
  counter c[3] = {{.order = order, .id = 1}, {.order = order, .id = 2},
                  {.order = order, .id = 3}};
  ck_assert_int_eq(actio_future_create(&c[2].entered), 0);
  ck_assert_int_eq(actio_future_create(&c[2].gate), 0);
  ck_assert_int_eq(actio_runtime_create(&rt, NULL), 0);
  spawn(rt, &c[0], 1, 8);
  spawn(rt, &c[1], 1, 8);
  actio_actor *last = spawn(rt, &c[2], 1, 512);
  for (int i = 0; i < 300; i++)
    ck_assert_int_eq(actio_tell(last, (void *)1, -1), 0);
  /* The last actor holds its first message until its stop has begun, so
   * the destroy finds the other 299 still queued. */
  ck_assert_int_eq(actio_future_wait(c[2].entered, -1), 0);
  opener o = {last, c[2].gate, 0};
  pthread_t t;
  start_threads(&t, 1, open_gate_when_closed, &o, 0);
  actio_runtime_destroy(rt);
  join_threads(&t, 1);
  ck_assert_int_eq(atomic_load(&order[0]), 3);
  ck_assert_int_eq(order[1], 3);
  ck_assert_int_eq(order[2], 2);
  ck_assert_int_eq(order[3], 1);
  /* Drained, not dropped: the opener's tells accepted before the close too. */
  ck_assert_int_eq(atomic_load(&c[2].handled), 300 + o.told);
  ck_assert_int_eq(atomic_load(&c[2].dropped), 0);
  actio_future_unref(c[2].entered);
  actio_future_unref(c[2].gate);
}
END_TEST

/* ---- ping-pong: actors telling each other ---- */

typedef struct {
  actio_actor *peer;
  actio_future *done; /* A only */
  uintptr_t rounds;
} pp_state;

static int pp_handle(actio_actor *self, void *worker, void *msg,
                     actio_future *reply) {
  pp_state *s = actio_actor_state(self);
  (void)worker;
  uintptr_t n = (uintptr_t)msg;
  if (reply != NULL) { /* the start message */
    actio_future_ref(reply);
    s->done = reply;
    n = 0;
  } else if (s->done != NULL && n == s->rounds) {
    actio_future_resolve(s->done, (void *)n, NULL);
    actio_future_unref(s->done);
    return 0;
  }
  return actio_tell(s->peer, (void *)(n + (s->done != NULL ? 0 : 1)), -1);
}

START_TEST(ping_pong_between_two_actors) {
  actio_runtime *rt;
  pp_state sa = {.rounds = 20000}, sb = {0};
  actio_behavior b = {.handle = pp_handle};
  actio_actor *a, *bb;
  ck_assert_int_eq(actio_runtime_create(&rt, NULL), 0);
  actio_actor_opts oa = {.name = "ping", .state = &sa};
  actio_actor_opts ob = {.name = "pong", .state = &sb};
  ck_assert_int_eq(actio_actor_spawn(rt, &b, &oa, &a), 0);
  ck_assert_int_eq(actio_actor_spawn(rt, &b, &ob, &bb), 0);
  sa.peer = bb;
  sb.peer = a;
  actio_future *f;
  ck_assert_int_eq(actio_ask(a, NULL, -1, &f), 0);
  ck_assert_int_eq(actio_future_wait(f, -1), 0);
  ck_assert_uint_eq((uintptr_t)actio_future_value(f), 20000);
  actio_future_unref(f);
  actio_runtime_destroy(rt);
}
END_TEST

/* ---- stop while senders race the close ---- */

typedef struct {
  actio_actor *a;
  _Atomic int *go;
  int sent;
} racer;

static void *tell_until_closed(void *p) {
  racer *r = p;
  while (!atomic_load(r->go))
    ;
  while (actio_tell(r->a, (void *)1, -1) == 0)
    r->sent++;
  return NULL;
}

START_TEST(stop_with_many_workers_and_senders_never_hangs) {
  /* Regression: a message still being published when the mailbox closed
   * left the other parked workers asleep, and the stop hung. */
  enum { ROUNDS = 100, SENDERS = 8 };
  for (int round = 0; round < ROUNDS; round++) {
    actio_runtime *rt;
    counter c = {0};
    ck_assert_int_eq(actio_runtime_create(&rt, NULL), 0);
    actio_actor *a = spawn(rt, &c, 4, 64);
    _Atomic int go = 0;
    racer r[SENDERS];
    pthread_t t[SENDERS];
    for (int i = 0; i < SENDERS; i++)
      r[i] = (racer){a, &go, 0};
    start_threads(t, SENDERS, tell_until_closed, r, sizeof r[0]);
    atomic_store(&go, 1);
    /* Stop once the senders are under way: more accepted than the mailbox
     * holds, so the workers are taking messages while senders send. */
    actio_actor_stats st;
    for (actio_actor_stats_get(a, &st); st.accepted < 256; actio_actor_stats_get(a, &st))
      sched_yield();
    ck_assert_int_eq(actio_actor_stop(a, ACTIO_STOP_DRAIN), 0);
    join_threads(t, SENDERS);
    int sent = 0;
    for (int i = 0; i < SENDERS; i++)
      sent += r[i].sent;
    ck_assert_int_eq(atomic_load(&c.handled), sent); /* drained: all handled */
    actio_runtime_destroy(rt);
  }
}
END_TEST

/* An older actor that tells a newer one while it drains at destroy. Each
 * message waits at the gate, then is forwarded. */
typedef struct {
  actio_actor *to;
  actio_future *gate;
  _Atomic int forwarded, refused;
} forwarder;

static int forward(actio_actor *self, void *worker, void *msg, actio_future *reply) {
  forwarder *f = actio_actor_state(self);
  (void)worker;
  (void)reply;
  actio_future_wait(f->gate, -1);
  int rc = actio_tell(f->to, msg, -1);
  if (rc == 0)
    atomic_fetch_add(&f->forwarded, 1);
  else if (rc == ACTIO_ECLOSED)
    atomic_fetch_add(&f->refused, 1);
  return rc == 0 || rc == ACTIO_ECLOSED ? 0 : rc;
}

START_TEST(destroy_while_an_older_actor_tells_a_newer_one) {
  actio_runtime *rt;
  actio_actor *older;
  counter c = {0};
  forwarder fw = {0};
  ck_assert_int_eq(actio_future_create(&fw.gate), 0);
  actio_behavior fwd = {.handle = forward};
  ck_assert_int_eq(actio_runtime_create(&rt, NULL), 0);
  ck_assert_int_eq(actio_actor_spawn(rt, &fwd, &(actio_actor_opts){.state = &fw}, &older), 0);
  fw.to = spawn(rt, &c, 1, 8);
  for (int i = 0; i < 50; i++)
    ck_assert_int_eq(actio_tell(older, (void *)1, -1), 0);
  /* The older one forwards nothing until the newer one has closed. */
  opener o = {fw.to, fw.gate, 0};
  pthread_t t;
  start_threads(&t, 1, open_gate_when_closed, &o, 0);
  actio_runtime_destroy(rt); /* newer stops first; older's tells then fail */
  join_threads(&t, 1);
  ck_assert_int_eq(atomic_load(&fw.forwarded), 0);
  ck_assert_int_eq(atomic_load(&fw.refused), 50); /* drained, every one refused */
  ck_assert_int_eq(atomic_load(&c.handled), o.told);
  actio_future_unref(fw.gate);
}
END_TEST

START_TEST(absurd_mailbox_capacity_is_refused) {
  actio_runtime *rt;
  actio_actor *a;
  counter c = {0};
  ck_assert_int_eq(actio_runtime_create(&rt, NULL), 0);
  actio_actor_opts o = {.capacity = SIZE_MAX >> 2, .state = &c};
  ck_assert_int_eq(actio_actor_spawn(rt, &counter_behavior, &o, &a), ACTIO_EINVAL);
  actio_runtime_destroy(rt);
}
END_TEST

/* ---- socket workers: wait on an eventfd, complete work in wait() ---- */

#include <poll.h>
#include <sys/eventfd.h>

typedef struct {
  int efd;
  actio_future *held[256]; /* replies completed on the next wait */
  int nheld;
  int waits;
} sock_worker;

typedef struct {
  _Atomic int wakes, cancelled;
  _Atomic int asleep; /* workers idle in wait(), with nothing held */
} sock_state;

static int sock_init(actio_actor *self, void **worker) {
  (void)self;
  sock_worker *w = calloc(1, sizeof *w);
  w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  *worker = w;
  return w->efd >= 0 ? 0 : -errno;
}

static int sock_handle(actio_actor *self, void *worker, void *msg, actio_future *reply) {
  sock_worker *w = worker;
  (void)self;
  (void)msg;
  ck_assert_int_lt(w->nheld, 256);
  actio_future_ref(reply); /* completed later, from wait() */
  w->held[w->nheld++] = reply;
  return 0;
}

static void sock_wait(actio_actor *self, void *worker) {
  sock_worker *w = worker;
  sock_state *st = actio_actor_state(self);
  struct pollfd p = {w->efd, POLLIN, 0};
  /* Idle, it sleeps until woken: a missed wake-up hangs the test. */
  int idle = w->nheld == 0;
  if (idle)
    atomic_fetch_add(&st->asleep, 1);
  poll(&p, 1, idle ? -1 : 1);
  if (idle)
    atomic_fetch_sub(&st->asleep, 1);
  uint64_t v;
  if (read(w->efd, &v, sizeof v) < 0 && errno != EAGAIN)
    ck_abort_msg("eventfd read");
  w->waits++;
  for (int i = 0; i < w->nheld; i++) {
    actio_future_resolve(w->held[i], (void *)(uintptr_t)w->waits, NULL);
    actio_future_unref(w->held[i]);
  }
  w->nheld = 0;
}

static void sock_wake(actio_actor *self, void *worker) {
  sock_worker *w = worker;
  sock_state *st = actio_actor_state(self);
  uint64_t one = 1;
  atomic_fetch_add(&st->wakes, 1);
  ck_assert_int_eq(write(w->efd, &one, sizeof one), sizeof one);
}

static int sock_busy(actio_actor *self, void *worker) {
  (void)self;
  return ((sock_worker *)worker)->nheld > 0;
}

static void sock_stop(actio_actor *self, void *worker) {
  sock_worker *w = worker;
  sock_state *st = actio_actor_state(self);
  for (int i = 0; i < w->nheld; i++) { /* stop-now: end what is in flight */
    if (actio_future_cancel(w->held[i]) == 0)
      atomic_fetch_add(&st->cancelled, 1);
    actio_future_unref(w->held[i]);
  }
  close(w->efd);
  free(w);
}

static const actio_behavior sock_behavior = {
    .worker_init = sock_init, .handle = sock_handle, .worker_stop = sock_stop,
    .wait = sock_wait, .wake = sock_wake, .busy = sock_busy,
};

START_TEST(socket_workers_are_woken_by_messages) {
  actio_runtime *rt;
  actio_actor *a;
  sock_state st = {0};
  ck_assert_int_eq(actio_runtime_create(&rt, NULL), 0);
  actio_actor_opts o = {.workers = 2, .state = &st};
  ck_assert_int_eq(actio_actor_spawn(rt, &sock_behavior, &o, &a), 0);
  /* Half a behavior is refused. */
  actio_behavior half = {.handle = sock_handle, .wait = sock_wait};
  actio_actor *bad;
  ck_assert_int_eq(actio_actor_spawn(rt, &half, NULL, &bad), ACTIO_EINVAL);
  for (int round = 0; round < 200; round++) {
    actio_future *f;
    ck_assert_int_eq(actio_ask(a, NULL, -1, &f), 0);
    ck_assert_int_eq(actio_future_wait(f, -1), 0);
    actio_future_unref(f);
    if (round % 50 == 0) /* now and then both workers fall asleep first */
      while (atomic_load(&st.asleep) < 2)
        sched_yield();
  }
  /* A message that found both asleep woke one of them. */
  ck_assert_int_gt(atomic_load(&st.wakes), 0);
  actio_runtime_destroy(rt);
}
END_TEST

START_TEST(socket_workers_drain_or_cancel_on_stop) {
  for (int mode = 0; mode < 2; mode++) {
    actio_runtime *rt;
    actio_actor *a;
    sock_state st = {0};
    ck_assert_int_eq(actio_runtime_create(&rt, NULL), 0);
    actio_actor_opts o = {.workers = 1, .state = &st};
    ck_assert_int_eq(actio_actor_spawn(rt, &sock_behavior, &o, &a), 0);
    actio_future *fs[100];
    for (int i = 0; i < 100; i++)
      ck_assert_int_eq(actio_ask(a, NULL, -1, &fs[i]), 0);
    ck_assert_int_eq(actio_actor_stop(a, mode ? ACTIO_STOP_NOW : ACTIO_STOP_DRAIN), 0);
    int ok = 0, cancelled = 0;
    for (int i = 0; i < 100; i++) {
      int rc = actio_future_wait(fs[i], 0); /* all complete once stopped */
      ck_assert(rc == 0 || rc == ACTIO_ECANCELED);
      ok += rc == 0;
      cancelled += rc == ACTIO_ECANCELED;
      actio_future_unref(fs[i]);
    }
    ck_assert_int_eq(ok + cancelled, 100);
    actio_actor_stats as;
    actio_actor_stats_get(a, &as);
    ck_assert_uint_eq(as.accepted, 100);
    if (mode == 0) { /* drained: everything in flight finished */
      ck_assert_int_eq(ok, 100);
      ck_assert_int_eq(atomic_load(&st.cancelled), 0);
    }
    /* Now: what the worker held was cancelled by its stop, what it had not
     * taken was dropped; what its waits completed stays done. */
    ck_assert_uint_eq(as.handled, (uint64_t)ok + (uint64_t)atomic_load(&st.cancelled));
    ck_assert_uint_eq(as.dropped, (uint64_t)(cancelled - atomic_load(&st.cancelled)));
    actio_runtime_destroy(rt);
  }
}
END_TEST


/* ---- scheduled actors (no workers of their own) ---- */

/* A ring of actors passing tokens: each handler checks that it runs alone
 * (one message at a time per actor), then passes the token on. */
typedef struct ring_node {
  struct ring_node *next;
  actio_actor *self;
  _Atomic int inside;     /* handlers running now: never more than one */
  _Atomic int overlaps;   /* times one found another running */
  _Atomic uint64_t seen;
  actio_future *done;     /* resolved when the last token finishes */
  _Atomic int *tokens_left;
} ring_node;

static int ring_handle(actio_actor *self, void *worker, void *msg,
                       actio_future *reply) {
  ring_node *n = actio_actor_state(self);
  (void)worker;
  (void)reply;
  if (atomic_fetch_add(&n->inside, 1) != 0)
    atomic_fetch_add(&n->overlaps, 1);
  atomic_fetch_add(&n->seen, 1);
  uintptr_t hops = (uintptr_t)msg;
  int rc = 0;
  if (hops == 0) {
    if (atomic_fetch_sub(n->tokens_left, 1) == 1)
      actio_future_resolve(n->done, NULL, NULL);
  } else {
    rc = actio_tell(n->next->self, (void *)(hops - 1), -1);
  }
  atomic_fetch_sub(&n->inside, 1);
  return rc;
}

START_TEST(scheduled_actors_run_one_message_at_a_time) {
  enum { NODES = 16, TOKENS = 8, HOPS = 2000 };
  for (unsigned threads = 1; threads <= 3; threads++) {
    actio_runtime *rt;
    ck_assert_int_eq(actio_runtime_create(&rt, &(actio_runtime_opts){.threads = threads}), 0);
    static ring_node nodes[NODES];
    memset(nodes, 0, sizeof nodes);
    _Atomic int left = TOKENS;
    actio_future *done;
    ck_assert_int_eq(actio_future_create(&done), 0);
    actio_behavior b = {.handle = ring_handle};
    for (int i = 0; i < NODES; i++) {
      nodes[i].next = &nodes[(i + 1) % NODES];
      nodes[i].done = done;
      nodes[i].tokens_left = &left;
      ck_assert_int_eq(actio_actor_spawn(rt, &b, &(actio_actor_opts){.state = &nodes[i], .capacity = 8},
                                         &nodes[i].self), 0);
    }
    for (int t = 0; t < TOKENS; t++)
      ck_assert_int_eq(actio_tell(nodes[t * 2].self, (void *)(uintptr_t)HOPS, -1), 0);
    ck_assert_int_eq(actio_future_wait(done, -1), 0);
    uint64_t total = 0;
    for (int i = 0; i < NODES; i++) {
      ck_assert_int_eq(atomic_load(&nodes[i].overlaps), 0);
      total += atomic_load(&nodes[i].seen);
    }
    ck_assert_uint_eq(total, (uint64_t)TOKENS * (HOPS + 1));
    actio_runtime_destroy(rt); /* the handler that resolved done has returned */
    actio_future_unref(done);
  }
}
END_TEST

/* A scheduled sender fills a scheduled actor's small mailbox from its
 * handler, on the one scheduler thread there is: waiting for room runs the
 * receiver meanwhile instead of hanging. The sender also stops a third
 * scheduled actor from its handler, which drains it the same way. */
typedef struct {
  actio_actor *to, *victim;
  int sends;
} filler;

static int filler_handle(actio_actor *self, void *worker, void *msg,
                         actio_future *reply) {
  filler *f = actio_actor_state(self);
  (void)worker;
  (void)msg;
  for (int i = 0; i < f->sends; i++) {
    int rc = actio_tell(f->to, (void *)1, -1);
    if (rc != 0)
      return rc;
  }
  int rc = actio_actor_stop(f->victim, ACTIO_STOP_DRAIN);
  return rc != 0 ? rc : actio_future_resolve(reply, NULL, NULL);
}

START_TEST(scheduled_handler_waits_for_room_and_stops_another) {
  actio_runtime *rt;
  ck_assert_int_eq(actio_runtime_create(&rt, &(actio_runtime_opts){.threads = 1}), 0);
  counter sink = {0}, victim = {0};
  actio_actor *to = spawn(rt, &sink, 0, 2);
  actio_actor *vict = spawn(rt, &victim, 0, 64);
  ck_assert_int_eq(atomic_load(&sink.inits), 1); /* one context, made at spawn */
  for (int i = 0; i < 20; i++)
    ck_assert_int_eq(actio_tell(vict, (void *)2, -1), 0);
  filler fs = {.to = to, .victim = vict, .sends = 50};
  actio_behavior b = {.handle = filler_handle};
  actio_actor *a;
  ck_assert_int_eq(actio_actor_spawn(rt, &b, &(actio_actor_opts){.state = &fs}, &a), 0);
  actio_future *f;
  ck_assert_int_eq(actio_ask(a, NULL, -1, &f), 0);
  ck_assert_int_eq(actio_future_wait(f, -1), 0);
  actio_future_unref(f);
  /* The victim drained before its stop returned, and ran its stop once. */
  ck_assert_int_eq(atomic_load(&victim.handled), 20);
  ck_assert_int_eq(atomic_load(&victim.stops), 1);
  ck_assert_int_eq(actio_tell(vict, (void *)2, 0), ACTIO_ECLOSED);
  ck_assert_int_eq(actio_actor_stop(to, ACTIO_STOP_DRAIN), 0);
  ck_assert_int_eq(atomic_load(&sink.handled), 50);
  ck_assert_int_eq(atomic_load(&sink.stops), 1);
  actio_runtime_destroy(rt);
}
END_TEST

/* Bursts of k tells to k of 4 scheduled actors on 4 threads, from outside
 * the scheduler, where each handler holds its thread until all k run: a
 * burst completes only if k threads are woken at once. Only a few threads
 * poll (the rest park at once), and tells made while one polls wake
 * nobody, so each thread that takes one must pass the wake on: a lost one
 * hangs the test. (Handlers must not block; these wait only for each
 * other, to show that every thread was woken.) */
enum { SPREAD_ACTORS = 4, SPREAD_ROUNDS = 1000 };

typedef struct {
  _Atomic uint64_t target; /* taken once the current burst is all taken */
  _Atomic uint64_t taken;
} spread;

static int spread_handle(actio_actor *self, void *worker, void *msg, actio_future *reply) {
  spread *sp = actio_actor_state(self);
  (void)worker;
  (void)msg;
  (void)reply;
  /* Before counting itself: the burst's end cannot move on until it has. */
  uint64_t end = atomic_load_explicit(&sp->target, memory_order_acquire);
  atomic_fetch_add_explicit(&sp->taken, 1, memory_order_acq_rel);
  while (atomic_load_explicit(&sp->taken, memory_order_acquire) < end)
    sched_yield(); /* the others of the burst are on their way */
  return 0;
}

START_TEST(bursts_from_outside_wake_as_many_threads_as_they_need) {
  actio_runtime *rt;
  ck_assert_int_eq(actio_runtime_create(&rt, &(actio_runtime_opts){.threads = SPREAD_ACTORS}), 0);
  spread sp = {0};
  actio_behavior b = {.handle = spread_handle};
  actio_actor *a[SPREAD_ACTORS];
  for (int i = 0; i < SPREAD_ACTORS; i++)
    ck_assert_int_eq(actio_actor_spawn(rt, &b, &(actio_actor_opts){.state = &sp}, &a[i]), 0);
  uint64_t end = 0;
  for (int r = 0; r < SPREAD_ROUNDS; r++) {
    int k = 1 + (r * 3) % SPREAD_ACTORS; /* 1 to 4, mixed */
    end += (uint64_t)k;
    atomic_store_explicit(&sp.target, end, memory_order_release);
    for (int i = 0; i < k; i++)
      ck_assert_int_eq(actio_tell(a[(r + i) % SPREAD_ACTORS], NULL, -1), 0);
    while (atomic_load_explicit(&sp.taken, memory_order_acquire) < end)
      sched_yield();
  }
  actio_runtime_destroy(rt);
  ck_assert_uint_eq(atomic_load(&sp.taken), end);
}
END_TEST

/* ---- names and monitors ---- */

START_TEST(names_stand_for_actors_until_they_stop) {
  actio_runtime *rt;
  ck_assert_int_eq(actio_runtime_create(&rt, NULL), 0);
  counter ca = {0}, cb = {0};
  actio_actor *a = spawn(rt, &ca, 0, 16), *b = spawn(rt, &cb, 1, 16);
  ck_assert_int_eq(actio_register(a, "alpha"), 0);
  ck_assert_ptr_eq(actio_whereis(rt, "alpha"), a);
  ck_assert_int_eq(actio_register(b, "alpha"), ACTIO_EEXIST); /* taken */
  ck_assert_int_eq(actio_register(a, "also-a"), 0);            /* several */
  ck_assert_int_eq(actio_unregister(rt, "alpha"), 0);
  ck_assert_ptr_null(actio_whereis(rt, "alpha"));
  ck_assert_int_eq(actio_unregister(rt, "alpha"), ACTIO_ENONAME);
  ck_assert_int_eq(actio_register(b, "alpha"), 0);             /* free again */
  ck_assert_int_eq(actio_register(b, "beta"), 0);
  ck_assert_ptr_eq(actio_whereis(rt, "beta"), b);
  /* A stop releases its names, and refuses new ones. */
  ck_assert_int_eq(actio_actor_stop(b, ACTIO_STOP_DRAIN), 0);
  ck_assert_ptr_null(actio_whereis(rt, "alpha"));
  ck_assert_ptr_null(actio_whereis(rt, "beta"));
  ck_assert_int_eq(actio_register(b, "gamma"), ACTIO_ECLOSED);
  ck_assert_ptr_eq(actio_whereis(rt, "also-a"), a);
  /* Bad input. */
  ck_assert_int_eq(actio_register(NULL, "x"), ACTIO_EINVAL);
  ck_assert_int_eq(actio_register(a, NULL), ACTIO_EINVAL);
  ck_assert_int_eq(actio_register(a, ""), ACTIO_EINVAL);
  ck_assert_ptr_null(actio_whereis(NULL, "also-a"));
  ck_assert_ptr_null(actio_whereis(rt, NULL));
  ck_assert_int_eq(actio_unregister(NULL, "also-a"), ACTIO_EINVAL);
  ck_assert_int_eq(actio_unregister(rt, NULL), ACTIO_EINVAL);
  actio_runtime_destroy(rt); /* frees "also-a" with it */
}
END_TEST

/* Registers and unregisters one name, racing the others. */
typedef struct name_racer {
  actio_actor *a;
  actio_runtime *rt;
  int won;
} name_racer;

static void *race_name(void *p) {
  name_racer *r = p;
  for (int i = 0; i < 2000; i++) {
    int rc = actio_register(r->a, "contested");
    ck_assert(rc == 0 || rc == ACTIO_EEXIST);
    if (rc == 0) {
      r->won++;
      ck_assert_ptr_eq(actio_whereis(r->rt, "contested"), r->a); /* ours till we let go */
      ck_assert_int_eq(actio_unregister(r->rt, "contested"), 0);
    }
  }
  return NULL;
}

START_TEST(a_contested_name_has_one_owner_at_a_time) {
  enum { N = 4 };
  actio_runtime *rt;
  ck_assert_int_eq(actio_runtime_create(&rt, NULL), 0);
  counter c[N] = {0};
  name_racer r[N];
  pthread_t t[N];
  for (int i = 0; i < N; i++)
    r[i] = (name_racer){.a = spawn(rt, &c[i], 0, 16), .rt = rt};
  start_threads(t, N, race_name, r, sizeof r[0]);
  join_threads(t, N);
  int won = 0;
  for (int i = 0; i < N; i++)
    won += r[i].won;
  ck_assert_int_gt(won, 0);
  ck_assert_ptr_null(actio_whereis(rt, "contested"));
  actio_runtime_destroy(rt);
}
END_TEST

START_TEST(a_monitor_hears_of_a_stop_and_its_reason) {
  actio_runtime *rt;
  ck_assert_int_eq(actio_runtime_create(&rt, NULL), 0);
  counter ca = {0}, cb = {0}, cc = {0};
  actio_actor *a = spawn(rt, &ca, 0, 16), *b = spawn(rt, &cb, 1, 16),
              *c = spawn(rt, &cc, 0, 16);
  actio_future *fa, *fb, *fb2, *fc1, *fc2, *late;
  /* A normal stop resolves it. */
  ck_assert_int_eq(actio_monitor(a, &fa), 0);
  ck_assert_int_eq(actio_future_wait(fa, 0), ACTIO_EPENDING);
  ck_assert_int_eq(actio_actor_stop(a, ACTIO_STOP_DRAIN), 0);
  ck_assert_int_eq(actio_future_wait(fa, -1), 0);
  ck_assert_ptr_null(actio_future_value(fa));
  /* Stopped already: at once. */
  ck_assert_int_eq(actio_monitor(a, &late), 0);
  ck_assert_int_eq(actio_future_wait(late, 0), 0);
  actio_future_unref(late);
  /* A failure is the reason, heard once the actor stops. */
  ck_assert_int_eq(actio_monitor(b, &fb), 0);
  actio_actor_fail(b, ACTIO_EFATAL, "state broken");
  ck_assert_int_eq(actio_future_wait(fb, 0), ACTIO_EPENDING);
  ck_assert_int_eq(actio_monitor(b, &fb2), 0);
  ck_assert_int_eq(actio_actor_stop(b, ACTIO_STOP_NOW), 0);
  ck_assert_int_eq(actio_future_wait(fb, -1), ACTIO_EFATAL);
  ck_assert_ptr_nonnull(strstr(actio_future_errmsg(fb), "state broken"));
  ck_assert_int_eq(actio_future_wait(fb2, -1), ACTIO_EFATAL);
  ck_assert_int_eq(actio_monitor(b, &late), 0);
  ck_assert_int_eq(actio_future_wait(late, 0), ACTIO_EFATAL);
  ck_assert_ptr_nonnull(strstr(actio_future_errmsg(late), "state broken"));
  actio_future_unref(late);
  /* Cancelled, it watches no more; the others still hear; a failure
   * with a code that is no error reads as ACTIO_EFATAL. */
  ck_assert_int_eq(actio_monitor(c, &fc1), 0);
  ck_assert_int_eq(actio_monitor(c, &fc2), 0);
  ck_assert_int_eq(actio_future_cancel(fc1), 0);
  actio_actor_fail(c, 7, NULL);
  ck_assert_int_eq(actio_actor_stop(c, ACTIO_STOP_DRAIN), 0);
  ck_assert_int_eq(actio_future_wait(fc1, -1), ACTIO_ECANCELED);
  ck_assert_int_eq(actio_future_wait(fc2, -1), ACTIO_EFATAL);
  /* Bad input. */
  ck_assert_int_eq(actio_monitor(NULL, &late), ACTIO_EINVAL);
  ck_assert_int_eq(actio_monitor(c, NULL), ACTIO_EINVAL);
  actio_future *all[] = {fa, fb, fb2, fc1, fc2};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    actio_future_unref(all[i]);
  actio_runtime_destroy(rt);
}
END_TEST

static void note_status(actio_future *f, void *arg) {
  atomic_store((_Atomic int *)arg, actio_future_status(f) == 0 ? 1 : -1);
}

START_TEST(monitors_dropped_without_a_cancel_leave_the_list) {
  /* A caller that drops its monitor's future without cancelling it can
   * never see it end: the list lets it go, so a long-lived actor watched
   * again and again keeps only the monitors someone still holds. */
  actio_runtime *rt;
  ck_assert_int_eq(actio_runtime_create(&rt, NULL), 0);
  counter c = {0};
  actio_actor *a = spawn(rt, &c, 0, 16);
  actio_future *kept, *noted;
  _Atomic int heard = 0;
  ck_assert_int_eq(actio_monitor(a, &kept), 0);
  /* Held by its callback alone once the caller lets go: still watching. */
  ck_assert_int_eq(actio_monitor(a, &noted), 0);
  ck_assert_int_eq(actio_future_on_done(noted, note_status, &heard), 0);
  actio_future_unref(noted);
  for (int i = 0; i < 100000; i++) {
    actio_future *f;
    ck_assert_int_eq(actio_monitor(a, &f), 0);
    actio_future_unref(f);
  }
  /* Two held, the rest swept whenever the list reached 16 (else 100,002). */
  ck_assert_uint_le(actio__watchers_count(a), 16);
  ck_assert_uint_ge(actio__watchers_count(a), 2);
  ck_assert_int_eq(actio_actor_stop(a, ACTIO_STOP_DRAIN), 0);
  ck_assert_int_eq(actio_future_wait(kept, -1), 0);
  ck_assert_int_eq(atomic_load(&heard), 1);
  ck_assert_uint_eq(actio__watchers_count(a), 0);
  actio_future_unref(kept);
  actio_runtime_destroy(rt);
}
END_TEST

/* Monitors an actor again and again, cancelling every other one. */
typedef struct watcher {
  actio_actor *a;
  actio_future *fs[200];
} watcher;

static void *watch_many(void *p) {
  watcher *w = p;
  for (int i = 0; i < 200; i++) {
    ck_assert_int_eq(actio_monitor(w->a, &w->fs[i]), 0);
    if (i % 2)
      actio_future_cancel(w->fs[i]);
  }
  return NULL;
}

START_TEST(monitors_race_a_stop_and_end_once) {
  enum { N = 3 };
  actio_runtime *rt;
  ck_assert_int_eq(actio_runtime_create(&rt, NULL), 0);
  counter c = {0};
  actio_actor *a = spawn(rt, &c, 1, 16);
  watcher w[N];
  pthread_t t[N];
  for (int i = 0; i < N; i++)
    w[i].a = a;
  start_threads(t, N, watch_many, w, sizeof w[0]);
  ck_assert_int_eq(actio_actor_stop(a, ACTIO_STOP_DRAIN), 0);
  join_threads(t, N);
  for (int i = 0; i < N; i++)
    for (int j = 0; j < 200; j++) {
      int rc = actio_future_wait(w[i].fs[j], -1);
      /* Kept ones resolve; cancelled ones were cancelled, or the stop won. */
      ck_assert(rc == 0 || (j % 2 && rc == ACTIO_ECANCELED));
      actio_future_unref(w[i].fs[j]);
    }
  actio_runtime_destroy(rt);
}
END_TEST

/* Monitors dropped uncancelled (swept), cancelled, or left to a callback,
 * from several threads at once, while the actor stops: every callback runs
 * once, and nothing a sweep frees is touched again (ASan, TSan). */
typedef struct dropper {
  actio_actor *a;
  _Atomic int *started;
  _Atomic int heard;
  int noted;
} dropper;

static void note_once(actio_future *f, void *arg) {
  (void)f;
  atomic_fetch_add_explicit((_Atomic int *)arg, 1, memory_order_relaxed);
}

static void *drop_many(void *p) {
  dropper *d = p;
  for (int i = 0; i < 3000; i++) {
    actio_future *f;
    ck_assert_int_eq(actio_monitor(d->a, &f), 0);
    if (i % 3 == 1)
      actio_future_cancel(f);
    else if (i % 3 == 2) {
      ck_assert_int_eq(actio_future_on_done(f, note_once, &d->heard), 0);
      d->noted++;
    }
    actio_future_unref(f);
    if (i == 100)
      atomic_fetch_add_explicit(d->started, 1, memory_order_release);
  }
  return NULL;
}

START_TEST(monitors_swept_while_others_cancel_and_a_stop_ends_them) {
  enum { N = 3 };
  actio_runtime *rt;
  ck_assert_int_eq(actio_runtime_create(&rt, NULL), 0);
  counter c[2] = {{0}};
  for (unsigned workers = 0; workers < 2; workers++) { /* scheduled, a thread */
    actio_actor *a = spawn(rt, &c[workers], workers, 16);
    _Atomic int started = 0;
    dropper d[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++)
      d[i] = (dropper){.a = a, .started = &started};
    start_threads(t, N, drop_many, d, sizeof d[0]);
    while (atomic_load_explicit(&started, memory_order_acquire) < N) /* all sweeping */
      sched_yield();
    ck_assert_int_eq(actio_actor_stop(a, ACTIO_STOP_DRAIN), 0);
    join_threads(t, N);
    ck_assert_uint_eq(actio__watchers_count(a), 0);
    for (int i = 0; i < N; i++) /* a stopped actor's monitors report at once */
      ck_assert_int_eq(atomic_load(&d[i].heard), d[i].noted);
  }
  actio_runtime_destroy(rt);
}
END_TEST

int main(void) {
  Suite *s = suite_create("actor");
  TCase *tc = tcase_with_timeout("actors", 120);
  tcase_add_test(tc, tell_and_ask_reach_the_handler);
  tcase_add_test(tc, counters_from_many_threads_sum_up);
  tcase_add_test(tc, spawn_rejects_bad_input_and_failed_init);
  tcase_add_test(tc, bad_arguments_are_refused);
  tcase_add_test(tc, stop_from_own_thread_is_refused);
  tcase_add_test(tc, a_scheduled_actor_with_a_long_queue_takes_turns);
  tcase_add_test(tc, handler_error_fails_the_reply);
  tcase_add_test(tc, full_mailbox_fails_or_waits);
  tcase_add_test(tc, stop_now_cancels_what_waits);
  tcase_add_test(tc, cancelled_ask_is_dropped_unhandled);
  tcase_add_test(tc, stop_from_own_worker_is_refused);
  tcase_add_test(tc, runtime_destroy_stops_in_reverse_order_and_drains);
  tcase_add_test(tc, ping_pong_between_two_actors);
  tcase_add_test(tc, destroy_while_an_older_actor_tells_a_newer_one);
  tcase_add_test(tc, absurd_mailbox_capacity_is_refused);
  tcase_add_test(tc, socket_workers_are_woken_by_messages);
  tcase_add_test(tc, socket_workers_drain_or_cancel_on_stop);
  tcase_add_test(tc, scheduled_actors_run_one_message_at_a_time);
  tcase_add_test(tc, scheduled_handler_waits_for_room_and_stops_another);
  suite_add_tcase(s, tc);
  tcase_add_test(tc, names_stand_for_actors_until_they_stop);
  tcase_add_test(tc, a_monitor_hears_of_a_stop_and_its_reason);
  tcase_add_test(tc, monitors_dropped_without_a_cancel_leave_the_list);
  TCase *st = tcase_with_timeout("stress", 600);
  tcase_add_test(st, a_contested_name_has_one_owner_at_a_time);
  tcase_add_test(st, monitors_race_a_stop_and_end_once);
  tcase_add_test(st, stop_with_many_workers_and_senders_never_hangs);
  suite_add_tcase(s, st);
  TCase *bu = tcase_with_timeout("bursts", 300);
  tcase_add_test(bu, bursts_from_outside_wake_as_many_threads_as_they_need);
  suite_add_tcase(s, bu);
  TCase *sw = tcase_with_timeout("sweep", 300);
  tcase_add_test(sw, monitors_swept_while_others_cancel_and_a_stop_ends_them);
  suite_add_tcase(s, sw);
  return run_suite(s);
}

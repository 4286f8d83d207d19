/* test_cq.c: the completion queue: events arrive once, in order, through a
 * descriptor that is readable exactly while they wait; bad input, twice
 * registered, cancellation, a registration while the completion is busy,
 * destroy with registrations left, the registering threads' records
 * bounded by the threads alive, and a stress of many completing
 * threads against one draining loop. */
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <unistd.h>

#include "actio.h"
#include "actors/core/cq_internal.h"
#include "test_util.h"

/* 1 if the queue's descriptor is readable now (no waiting). */
static int readable(const actio_cq *cq) {
  struct pollfd p = {.fd = actio_cq_fd(cq), .events = POLLIN};
  int r = poll(&p, 1, 0);
  ck_assert_int_ge(r, 0);
  return r == 1 && (p.revents & POLLIN);
}

/* Drains with room for `max` and expects exactly one event, tagged `tag`;
 * returns its future's status (the reference dropped). */
static int drain_one(actio_cq *cq, size_t max, uint64_t tag) {
  actio_cq_event ev[4];
  ck_assert_uint_le(max, 4);
  ck_assert_int_eq(actio_cq_drain(cq, ev, max), 1);
  ck_assert_uint_eq(ev[0].tag, tag);
  int st = actio_future_status(ev[0].future);
  actio_future_unref(ev[0].future);
  return st;
}

static actio_future *pending(void) {
  actio_future *f;
  ck_assert_int_eq(actio_future_create(&f), 0);
  return f;
}

START_TEST(a_completion_arrives_through_the_fd) {
  actio_cq *cq;
  ck_assert_int_eq(actio_cq_create(&cq), 0);
  ck_assert_int_ge(actio_cq_fd(cq), 0);
  actio_cq_event ev[4];
  ck_assert_int_eq(actio_cq_drain(cq, ev, 4), 0);
  ck_assert(!readable(cq));

  actio_future *f = pending();
  ck_assert_int_eq(actio_cq_add(cq, f, 42), 0);
  ck_assert(!readable(cq)); /* registered, not complete */
  ck_assert_int_eq(actio_cq_drain(cq, ev, 4), 0);
  ck_assert_int_eq(actio_future_resolve(f, (void *)7, NULL), 0);
  ck_assert(readable(cq));
  ck_assert_int_eq(actio_cq_drain(cq, ev, 4), 1);
  ck_assert(!readable(cq)); /* emptied: reset */
  ck_assert_uint_eq(ev[0].tag, 42);
  ck_assert_ptr_eq(ev[0].future, f);
  ck_assert_int_eq(actio_future_status(ev[0].future), 0);
  ck_assert_ptr_eq(actio_future_value(ev[0].future), (void *)7);
  actio_future_unref(ev[0].future); /* the queue's reference, now ours */
  actio_future_unref(f);
  ck_assert_int_eq(actio_cq_drain(cq, ev, 4), 0);
  actio_cq_destroy(cq);
}
END_TEST

START_TEST(bad_arguments_are_refused) {
  actio_cq *cq;
  actio_cq_event ev[1];
  actio_future *f = pending();
  ck_assert_int_eq(actio_cq_create(NULL), ACTIO_EINVAL);
  ck_assert_int_eq(actio_cq_create(&cq), 0);
  ck_assert_int_eq(actio_cq_fd(NULL), ACTIO_EINVAL);
  ck_assert_int_eq(actio_cq_add(NULL, f, 1), ACTIO_EINVAL);
  ck_assert_int_eq(actio_cq_add(cq, NULL, 1), ACTIO_EINVAL);
  ck_assert_int_eq(actio_cq_drain(NULL, ev, 1), ACTIO_EINVAL);
  ck_assert_int_eq(actio_cq_drain(cq, NULL, 1), ACTIO_EINVAL);
  ck_assert_int_eq(actio_cq_drain(cq, NULL, 0), 0);
  /* Refused adds registered nothing: f completes and nothing arrives. */
  actio_future_resolve(f, NULL, NULL);
  ck_assert(!readable(cq));
  ck_assert_int_eq(actio_cq_drain(cq, ev, 1), 0);
  actio_future_unref(f);
  actio_cq_destroy(cq);
  actio_cq_destroy(NULL);
}
END_TEST

START_TEST(complete_futures_arrive_at_once_in_order) {
  actio_cq *cq;
  ck_assert_int_eq(actio_cq_create(&cq), 0);
  actio_future *ok, *failed, *cancelled = pending();
  ck_assert_int_eq(actio_future_resolved(&ok, (void *)1, NULL), 0);
  ck_assert_int_eq(actio_future_failed(&failed, ACTIO_ETIMEDOUT, "late by %d", 3), 0);
  actio_future_cancel(cancelled);
  ck_assert_int_eq(actio_cq_add(cq, ok, 10), 0);
  ck_assert(readable(cq));
  ck_assert_int_eq(actio_cq_add(cq, failed, 11), 0);
  ck_assert_int_eq(actio_cq_add(cq, cancelled, 12), 0);
  actio_future_unref(ok); /* the queue's reference keeps them */
  actio_future_unref(failed);
  actio_future_unref(cancelled);
  actio_cq_event ev[8];
  ck_assert_int_eq(actio_cq_drain(cq, ev, 8), 3);
  ck_assert(!readable(cq));
  ck_assert_uint_eq(ev[0].tag, 10);
  ck_assert_ptr_eq(actio_future_value(ev[0].future), (void *)1);
  ck_assert_uint_eq(ev[1].tag, 11);
  ck_assert_int_eq(actio_future_status(ev[1].future), ACTIO_ETIMEDOUT);
  ck_assert_str_eq(actio_future_errmsg(ev[1].future), "late by 3");
  ck_assert_uint_eq(ev[2].tag, 12);
  ck_assert_int_eq(actio_future_status(ev[2].future), ACTIO_ECANCELED);
  for (int i = 0; i < 3; i++)
    actio_future_unref(ev[i].future);
  actio_cq_destroy(cq);
}
END_TEST

/* Completed in turn by one thread: drained in that order, in batches no
 * larger than asked, the fd readable until the last batch. */
START_TEST(tags_arrive_in_completion_order_in_bounded_batches) {
  enum { N = 100, BATCH = 7 };
  actio_cq *cq;
  ck_assert_int_eq(actio_cq_create(&cq), 0);
  actio_future *fs[N];
  for (int i = 0; i < N; i++) {
    fs[i] = pending();
    /* registered in reverse: the completions decide the order */
    ck_assert_int_eq(actio_cq_add(cq, fs[i], (uint64_t)(N - 1 - i)), 0);
  }
  for (int i = N - 1; i >= 0; i--) {
    ck_assert_int_eq(actio_future_resolve(fs[i], NULL, NULL), 0);
    actio_future_unref(fs[i]);
  }
  actio_cq_event ev[BATCH];
  uint64_t next = 0;
  int n;
  while ((n = actio_cq_drain(cq, ev, BATCH)) == BATCH) {
    ck_assert(readable(cq)); /* more wait */
    for (int i = 0; i < n; i++) {
      ck_assert_uint_eq(ev[i].tag, next++);
      actio_future_unref(ev[i].future);
    }
  }
  for (int i = 0; i < n; i++) {
    ck_assert_uint_eq(ev[i].tag, next++);
    actio_future_unref(ev[i].future);
  }
  ck_assert_uint_eq(next, N);
  ck_assert(!readable(cq));
  /* A batch taken whole after the reset, left over by a small max: the fd
   * is rung again for what stays. */
  actio_future *a = pending(), *b = pending();
  ck_assert_int_eq(actio_cq_add(cq, a, 1), 0);
  ck_assert_int_eq(actio_cq_add(cq, b, 2), 0);
  actio_future_resolve(a, NULL, NULL);
  actio_future_resolve(b, NULL, NULL);
  ck_assert_int_eq(drain_one(cq, 1, 1), 0);
  ck_assert(readable(cq));
  ck_assert_int_eq(drain_one(cq, 1, 2), 0);
  ck_assert(readable(cq)); /* max reached: the reset waits for the next drain */
  ck_assert_int_eq(actio_cq_drain(cq, ev, 1), 0);
  ck_assert(!readable(cq));
  actio_future_unref(a);
  actio_future_unref(b);
  actio_cq_destroy(cq);
}
END_TEST

static void count_done(actio_future *f, void *arg) {
  (void)f;
  atomic_fetch_add((_Atomic int *)arg, 1);
}

START_TEST(a_future_is_on_one_queue_until_drained) {
  actio_cq *cq, *other;
  ck_assert_int_eq(actio_cq_create(&cq), 0);
  ck_assert_int_eq(actio_cq_create(&other), 0);
  actio_future *f = pending();
  ck_assert_int_eq(actio_cq_add(cq, f, 1), 0);
  ck_assert_int_eq(actio_cq_add(cq, f, 2), ACTIO_EEXIST);
  ck_assert_int_eq(actio_cq_add(other, f, 3), ACTIO_EEXIST);
  ck_assert_str_eq(actio_err_name(ACTIO_EEXIST), "EEXIST");
  actio_future_resolve(f, NULL, NULL);
  ck_assert_int_eq(actio_cq_add(cq, f, 4), ACTIO_EEXIST); /* complete, not drained */
  ck_assert_int_eq(drain_one(cq, 4, 1), 0); /* once, under its first tag */
  ck_assert(!readable(other));
  /* Drained: it may go again, and arrives at once; again queued until
   * drained, as often as it goes. */
  for (uint64_t tag = 5; tag < 8; tag++) {
    ck_assert_int_eq(actio_cq_add(other, f, tag), 0);
    ck_assert_int_eq(actio_cq_add(cq, f, 9), ACTIO_EEXIST);
    ck_assert_int_eq(drain_one(other, 4, tag), 0);
  }
  actio_future_unref(f);
  /* Complete before its first registration, and with its inline slot
   * taken by a callback: the same. */
  for (int slot_taken = 0; slot_taken < 2; slot_taken++) {
    _Atomic int runs = 0;
    ck_assert_int_eq(actio_future_resolved(&f, NULL, NULL), 0);
    if (slot_taken)
      ck_assert_int_eq(actio_future_on_done(f, count_done, &runs), 0);
    for (uint64_t tag = 1; tag < 3; tag++) {
      ck_assert_int_eq(actio_cq_add(cq, f, tag), 0);
      ck_assert_int_eq(actio_cq_add(other, f, 9), ACTIO_EEXIST);
      ck_assert_int_eq(drain_one(cq, 4, tag), 0);
    }
    ck_assert_int_eq(runs, slot_taken);
    actio_future_unref(f);
  }
  actio_cq_destroy(cq);
  actio_cq_destroy(other);
}
END_TEST

/* Two threads register a drained future again at once: one of them wins,
 * the other gets ACTIO_EEXIST, and its event arrives once. */
typedef struct readd {
  actio_cq *cq;
  actio_future *f;
  _Atomic int *go;
  int rc;
} readd;

static void *readd_it(void *p) {
  readd *r = p;
  while (!atomic_load(r->go))
    sched_yield();
  r->rc = actio_cq_add(r->cq, r->f, 1);
  return NULL;
}

START_TEST(a_drained_future_registered_again_from_two_threads_goes_once) {
  actio_cq *cq;
  ck_assert_int_eq(actio_cq_create(&cq), 0);
  actio_future *f = pending();
  ck_assert_int_eq(actio_cq_add(cq, f, 1), 0);
  actio_future_resolve(f, NULL, NULL);
  ck_assert_int_eq(drain_one(cq, 4, 1), 0);
  for (int round = 0; round < 200; round++) {
    _Atomic int go = 0;
    readd r[2] = {{cq, f, &go, 1}, {cq, f, &go, 1}};
    pthread_t t[2];
    start_threads(t, 2, readd_it, r, sizeof r[0]);
    atomic_store(&go, 1);
    join_threads(t, 2);
    ck_assert_int_eq(r[0].rc + r[1].rc, ACTIO_EEXIST);
    ck_assert(r[0].rc == 0 || r[1].rc == 0);
    ck_assert_int_eq(drain_one(cq, 4, 1), 0);
    actio_cq_event ev[4];
    ck_assert_int_eq(actio_cq_drain(cq, ev, 4), 0);
  }
  actio_future_unref(f);
  actio_cq_destroy(cq);
}
END_TEST

/* An actor that holds its message at a gate, so an ask stays pending. */
static int held(actio_actor *self, void *worker, void *msg, actio_future *reply) {
  (void)self, (void)worker;
  gate_hold(msg);
  /* cancelled meanwhile: the reply refuses the value */
  ck_assert_int_eq(actio_future_resolve(reply, NULL, NULL), ACTIO_EALREADY);
  return 0;
}

START_TEST(a_cancelled_request_arrives_cancelled) {
  actio_runtime *rt;
  actio_actor *a;
  static const actio_behavior b = {.handle = held};
  ck_assert_int_eq(actio_runtime_create(&rt, NULL), 0);
  ck_assert_int_eq(actio_actor_spawn(rt, &b, &(actio_actor_opts){.workers = 1}, &a), 0);
  actio_cq *cq;
  ck_assert_int_eq(actio_cq_create(&cq), 0);
  test_gate gate = TEST_GATE_INIT;
  actio_future *f;
  ck_assert_int_eq(actio_ask(a, &gate, -1, &f), 0);
  ck_assert_int_eq(actio_cq_add(cq, f, 9), 0); /* its inline callback slot is the actor's */
  gate_wait_held(&gate);
  ck_assert(!readable(cq));
  ck_assert_int_eq(actio_future_cancel(f), 0);
  actio_future_unref(f);
  ck_assert(readable(cq));
  ck_assert_int_eq(drain_one(cq, 2, 9), ACTIO_ECANCELED);
  gate_open(&gate);
  actio_cq_destroy(cq);
  actio_runtime_destroy(rt);
}
END_TEST

/* A registration made while the completion is between its win and its
 * publication (a cancel whose hook is running): on another thread, with
 * the inline slot free (the completion finds the slot claimed and waits
 * for its queue) or taken (a record); and from inside the hook, on the
 * completing thread. Each arrives once, cancelled. */
typedef struct busy_reg {
  actio_cq *cq;
  actio_future *f;
  int from_hook;      /* the hook registers (tag 5) */
  _Atomic int in_hook;
  _Atomic int added;  /* the other thread's registration returned */
} busy_reg;

static void register_in_hook(void *arg) {
  busy_reg *b = arg;
  atomic_store(&b->in_hook, 1);
  if (b->from_hook)
    ck_assert_int_eq(actio_cq_add(b->cq, b->f, 5), 0);
  while (!b->from_hook && !atomic_load(&b->added))
    sched_yield();
}

static void *cancel_it(void *p) {
  busy_reg *b = p;
  ck_assert_int_eq(actio_future_cancel(b->f), 0);
  return NULL;
}

START_TEST(a_registration_while_the_completion_is_busy_arrives_once) {
  for (int round = 0; round < 3; round++) {
    busy_reg b = {.from_hook = round == 2};
    ck_assert_int_eq(actio_cq_create(&b.cq), 0);
    b.f = pending();
    _Atomic int callbacks = 0;
    if (round == 1) /* the inline slot is the callback's: a record */
      ck_assert_int_eq(actio_future_on_done(b.f, count_done, &callbacks), 0);
    ck_assert_int_eq(actio_future_on_cancel(b.f, register_in_hook, &b), 0);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, cancel_it, &b), 0);
    if (!b.from_hook) {
      while (!atomic_load(&b.in_hook))
        sched_yield();
      ck_assert(!actio_future_is_done(b.f));
      ck_assert_int_eq(actio_cq_add(b.cq, b.f, 4), 0);
      atomic_store(&b.added, 1);
    }
    join_threads(&t, 1);
    ck_assert(readable(b.cq));
    ck_assert_int_eq(drain_one(b.cq, 4, b.from_hook ? 5 : 4), ACTIO_ECANCELED);
    ck_assert(!readable(b.cq));
    ck_assert_int_eq(atomic_load(&callbacks), round == 1);
    actio_future_unref(b.f);
    actio_cq_destroy(b.cq);
  }
}
END_TEST

/* Destroyed with futures pending and completed-not-drained: every
 * reference goes (ASan's leak check), nothing is cancelled, the descriptor
 * is closed at once (it stayed open until the last pending future
 * completed), and the futures may be registered again once free of the
 * queue. */
START_TEST(destroy_releases_what_it_holds) {
  actio_cq *cq, *next;
  ck_assert_int_eq(actio_cq_create(&cq), 0);
  ck_assert_int_eq(actio_cq_create(&next), 0);
  actio_future *waiting[3], *done[3];
  for (int i = 0; i < 3; i++) {
    waiting[i] = pending();
    ck_assert_int_eq(actio_cq_add(cq, waiting[i], (uint64_t)i), 0);
  }
  /* Completed: one drained, one left in the drain's batch (max was 1), one
   * still on the stack. */
  for (int i = 0; i < 2; i++) {
    ck_assert_int_eq(actio_future_resolved(&done[i], NULL, NULL), 0);
    ck_assert_int_eq(actio_cq_add(cq, done[i], (uint64_t)(10 + i)), 0);
  }
  ck_assert_int_eq(drain_one(cq, 1, 10), 0);
  ck_assert_int_eq(actio_future_resolved(&done[2], NULL, NULL), 0);
  ck_assert_int_eq(actio_cq_add(cq, done[2], 12), 0);
  int fd = actio_cq_fd(cq);
  actio_cq_destroy(cq);
  ck_assert_int_eq(fcntl(fd, F_GETFD), -1);
  ck_assert_int_eq(errno, EBADF);

  for (int i = 0; i < 3; i++)
    ck_assert_int_eq(actio_future_status(waiting[i]), ACTIO_EPENDING);
  actio_cq_event ev[4];
  for (int i = 0; i < 3; i++) /* released: free to go elsewhere */
    ck_assert_int_eq(actio_cq_add(next, done[i], (uint64_t)i), 0);
  /* Completing now: their callbacks find the queue gone and free the
   * nodes; the futures are free to go elsewhere too. */
  actio_future_resolve(waiting[0], NULL, NULL);
  actio_future_cancel(waiting[1]);
  ck_assert_int_eq(actio_cq_add(next, waiting[0], 3), 0);
  ck_assert_int_eq(actio_cq_add(next, waiting[2], 4), ACTIO_EEXIST); /* still pending there */
  actio_future_resolve(waiting[2], NULL, NULL);
  ck_assert_int_eq(actio_cq_drain(next, ev, 4), 4);
  for (int i = 0; i < 4; i++) {
    ck_assert_uint_eq(ev[i].tag, (uint64_t)i);
    actio_future_unref(ev[i].future);
  }
  for (int i = 0; i < 3; i++) {
    actio_future_unref(waiting[i]);
    actio_future_unref(done[i]);
  }
  /* Destroyed with a completed future the loop never drained. */
  actio_future *last;
  ck_assert_int_eq(actio_future_resolved(&last, NULL, NULL), 0);
  ck_assert_int_eq(actio_cq_add(next, last, 5), 0);
  actio_future_unref(last);
  actio_cq_destroy(next);
}
END_TEST

/* Dropping the value of an event that destroy releases completes another
 * future registered on the same queue, on the destroying thread: its
 * delivery finds its lane closed and drops it (no lock still held by
 * destroy to wait on forever). */
static void complete_it(void *f) { actio_future_resolve(f, NULL, NULL); }

START_TEST(destroy_survives_a_release_that_completes_another) {
  actio_cq *cq;
  ck_assert_int_eq(actio_cq_create(&cq), 0);
  actio_future *later = pending(), *first = pending();
  ck_assert_int_eq(actio_cq_add(cq, later, 2), 0);
  ck_assert_int_eq(actio_cq_add(cq, first, 1), 0);
  ck_assert_int_eq(actio_future_resolve(first, later, complete_it), 0);
  actio_future_unref(first); /* the queue's reference is the last */
  actio_cq_destroy(cq);
  ck_assert_int_eq(actio_future_status(later), 0);
  actio_future_unref(later);
}
END_TEST

/* A descriptor limit reached: create fails with the system's error and
 * leaves nothing. */
/* A registering thread keeps its counts on each queue in a record it
 * looks up once (a cache of four): one thread registers on five queues in
 * turn, then on queues made where destroyed ones were. Each event arrives
 * on its own queue; each queue is freed (the leak check). */
START_TEST(a_thread_registers_on_many_queues_in_turn) {
  enum { QUEUES = 5, EACH = 100 };
  for (int round = 0; round < 3; round++) {
    actio_cq *cq[QUEUES];
    for (int q = 0; q < QUEUES; q++)
      ck_assert_int_eq(actio_cq_create(&cq[q]), 0);
    for (int i = 0; i < EACH; i++)
      for (int q = 0; q < QUEUES; q++) {
        actio_future *f = pending();
        ck_assert_int_eq(actio_cq_add(cq[q], f, (uint64_t)(q * EACH + i)), 0);
        ck_assert_int_eq(actio_future_resolve(f, NULL, NULL), 0);
        actio_future_unref(f);
      }
    for (int q = 0; q < QUEUES; q++) {
      actio_cq_event ev[EACH + 1];
      ck_assert_int_eq(actio_cq_drain(cq[q], ev, EACH + 1), EACH);
      for (int i = 0; i < EACH; i++) {
        ck_assert_uint_eq(ev[i].tag, (uint64_t)(q * EACH + i));
        actio_future_unref(ev[i].future);
      }
      actio_cq_destroy(cq[q]);
    }
  }
}
END_TEST

/* A thread registering `n` resolved futures tagged from `tag` on `cq`,
 * then waiting at `hold` (when not NULL) before it exits. */
typedef struct reg_job {
  actio_cq *cq;
  uint64_t tag;
  int n;
  pthread_barrier_t *hold;
} reg_job;

static void *register_and_exit(void *arg) {
  reg_job *j = arg;
  for (int i = 0; i < j->n; i++) {
    actio_future *f = pending();
    ck_assert_int_eq(actio_cq_add(j->cq, f, j->tag + (uint64_t)i), 0);
    ck_assert_int_eq(actio_future_resolve(f, NULL, NULL), 0);
    actio_future_unref(f);
  }
  if (j->hold != NULL) {
    pthread_barrier_wait(j->hold); /* registered */
    pthread_barrier_wait(j->hold); /* may exit */
  }
  return NULL;
}

/* Drains exactly `n` events tagged 0..n-1, each once. */
static void drain_tags(actio_cq *cq, int n) {
  char *seen = calloc((size_t)n, 1);
  actio_cq_event ev[64];
  int got = 0;
  while (got < n) {
    int k = actio_cq_drain(cq, ev, 64);
    ck_assert_int_ge(k, 0);
    for (int i = 0; i < k; i++) {
      ck_assert_uint_lt(ev[i].tag, (uint64_t)n);
      ck_assert_int_eq(seen[ev[i].tag]++, 0);
      actio_future_unref(ev[i].future);
    }
    got += k;
  }
  ck_assert_int_eq(actio_cq_drain(cq, ev, 64), 0);
  free(seen);
}

/* A queue holds a record for each live thread that registered on it: 64
 * threads alive at once hold 64; once they exit it holds none (it kept
 * all 64 before, and one more per thread whose stack was new). Then
 * 10,000 short-lived threads, 8 at a time, leave none behind either, and
 * every event arrives once: the credit the records handed back pays for
 * the later threads' slots. */
START_TEST(a_queue_keeps_no_record_of_threads_gone) {
  enum { ALIVE = 64, THREADS = 10000, WAVE = 8 };
  actio_cq *cq;
  ck_assert_int_eq(actio_cq_create(&cq), 0);
  pthread_barrier_t hold;
  ck_assert_int_eq(pthread_barrier_init(&hold, NULL, ALIVE + 1), 0);
  pthread_t t[ALIVE];
  reg_job jobs[ALIVE];
  for (int i = 0; i < ALIVE; i++)
    jobs[i] = (reg_job){cq, (uint64_t)i, 1, &hold};
  start_threads(t, ALIVE, register_and_exit, jobs, sizeof jobs[0]);
  pthread_barrier_wait(&hold);
  ck_assert_uint_eq(actio__cq_regs(cq), ALIVE);
  pthread_barrier_wait(&hold);
  join_threads(t, ALIVE);
  pthread_barrier_destroy(&hold);
  ck_assert_uint_eq(actio__cq_regs(cq), 0);
  drain_tags(cq, ALIVE);
  for (int done = 0; done < THREADS; done += WAVE) {
    for (int i = 0; i < WAVE; i++)
      jobs[i] = (reg_job){cq, (uint64_t)(done + i), 1, NULL};
    start_threads(t, WAVE, register_and_exit, jobs, sizeof jobs[0]);
    join_threads(t, WAVE);
    ck_assert_uint_eq(actio__cq_regs(cq), 0);
  }
  drain_tags(cq, THREADS);
  actio_cq_destroy(cq);
}
END_TEST

/* Bursts of pending registrations, each completed and drained whole: the
 * drain gives the first burst's segments back (more than it keeps), the
 * second burst's registrations pay with them; every event arrives once, in
 * order (ASan: no segment leaks or is used after its free). */
START_TEST(bursts_reuse_the_segments_drained) {
  enum { BURST = 10000 };
  actio_cq *cq;
  ck_assert_int_eq(actio_cq_create(&cq), 0);
  actio_future **fs = malloc(BURST * sizeof *fs);
  actio_cq_event ev[64];
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < BURST; i++) {
      fs[i] = pending();
      ck_assert_int_eq(actio_cq_add(cq, fs[i], (uint64_t)i), 0);
    }
    for (int i = 0; i < BURST; i++) {
      ck_assert_int_eq(actio_future_resolve(fs[i], NULL, NULL), 0);
      actio_future_unref(fs[i]);
    }
    uint64_t next = 0;
    int n;
    while ((n = actio_cq_drain(cq, ev, 64)) > 0)
      for (int i = 0; i < n; i++) {
        ck_assert_uint_eq(ev[i].tag, next++);
        actio_future_unref(ev[i].future);
      }
    ck_assert_int_eq(n, 0);
    ck_assert_uint_eq(next, BURST);
  }
  free(fs);
  actio_cq_destroy(cq);
}
END_TEST

/* A thread holds records on its last four queues only: registering on a
 * fifth hands back its record on the first. */
static void *five_queues(void *arg) {
  actio_cq **cq = arg;
  for (int q = 0; q < 5; q++) {
    reg_job j = {cq[q], (uint64_t)q, 1, NULL};
    register_and_exit(&j);
  }
  ck_assert_uint_eq(actio__cq_regs(cq[0]), 0);
  for (int q = 1; q < 5; q++)
    ck_assert_uint_eq(actio__cq_regs(cq[q]), 1);
  return NULL;
}

START_TEST(a_thread_keeps_records_on_its_last_four_queues) {
  actio_cq *cq[5];
  for (int q = 0; q < 5; q++)
    ck_assert_int_eq(actio_cq_create(&cq[q]), 0);
  pthread_t t;
  start_threads(&t, 1, five_queues, cq, 0);
  join_threads(&t, 1);
  for (int q = 0; q < 5; q++) {
    ck_assert_uint_eq(actio__cq_regs(cq[q]), 0);
    ck_assert_int_eq(drain_one(cq[q], 2, (uint64_t)q), 0);
    actio_cq_destroy(cq[q]);
  }
}
END_TEST

/* A queue destroyed while a thread still holds its record there: the
 * thread frees the record when it exits (ASan's leak check), and a queue
 * made meanwhile, maybe at the same address, gets a record of its own. */
START_TEST(a_record_outlives_its_destroyed_queue_until_its_thread_exits) {
  actio_cq *cq;
  ck_assert_int_eq(actio_cq_create(&cq), 0);
  pthread_barrier_t hold;
  ck_assert_int_eq(pthread_barrier_init(&hold, NULL, 2), 0);
  reg_job j = {cq, 0, 3, &hold};
  pthread_t t;
  start_threads(&t, 1, register_and_exit, &j, 0);
  pthread_barrier_wait(&hold);
  ck_assert_uint_eq(actio__cq_regs(cq), 1);
  drain_tags(cq, 3);
  actio_cq_destroy(cq);
  ck_assert_int_eq(actio_cq_create(&cq), 0);
  ck_assert_uint_eq(actio__cq_regs(cq), 0);
  pthread_barrier_wait(&hold);
  join_threads(&t, 1);
  pthread_barrier_destroy(&hold);
  ck_assert_uint_eq(actio__cq_regs(cq), 0);
  actio_cq_destroy(cq);
}
END_TEST

/* No key left in the process for the threads' exit hook: a registering
 * thread hands its record back after each registration, and nothing is
 * left behind (ASan's leak check). */
START_TEST(a_process_without_keys_left_keeps_no_records) {
  int nkeys;
  pthread_key_t *keys = keys_use_up(&nkeys);
  actio_cq *cq;
  ck_assert_int_eq(actio_cq_create(&cq), 0);
  for (int i = 0; i < 4; i++) {
    reg_job j = {cq, (uint64_t)(40 * i), 40, NULL};
    pthread_t t;
    start_threads(&t, 1, register_and_exit, &j, 0);
    join_threads(&t, 1);
    ck_assert_uint_eq(actio__cq_regs(cq), 0);
  }
  drain_tags(cq, 160);
  actio_cq_destroy(cq);
  keys_return(keys, nkeys);
}
END_TEST

START_TEST(create_reports_the_system_error) {
  struct rlimit old, low;
  ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
  int fds[2];
  ck_assert_int_eq(pipe(fds), 0); /* the highest descriptors in use are these */
  low = old;
  low.rlim_cur = (rlim_t)(fds[1] > fds[0] ? fds[1] : fds[0]) + 1;
  ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
  actio_cq *cq = (actio_cq *)&low;
  int rc = actio_cq_create(&cq);
  ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
  close(fds[0]);
  close(fds[1]);
  ck_assert_int_eq(rc, -EMFILE);
  ck_assert_ptr_null(cq);
}
END_TEST

/* ---- stress: many completing threads, one draining loop ---- */

enum { PRODUCERS = 6, PER_PRODUCER = 20000, SHARED = 4000 };

typedef struct producer {
  actio_cq *cq;
  int id;
  actio_future **shared; /* registered by the loop's thread, completed here */
  size_t nshared;
} producer;

static uint64_t tag_of(int producer_id, uint64_t seq) { return (uint64_t)producer_id << 32 | seq; }

/* Each future made, registered and completed here, in turn; every other
 * one also completes one of the futures the loop's thread registered. */
static void *produce(void *p) {
  producer *pr = p;
  size_t k = 0;
  for (uint64_t i = 0; i < PER_PRODUCER; i++) {
    actio_future *f;
    ck_assert_int_eq(actio_future_create(&f), 0);
    ck_assert_int_eq(actio_cq_add(pr->cq, f, tag_of(pr->id, i)), 0);
    if (i % 3 == 0)
      actio_future_cancel(f);
    else if (i % 3 == 1)
      actio_future_resolve(f, (void *)(uintptr_t)(i + 1), NULL);
    if (i % 3 == 2) /* the reference dropped with the completion */
      ck_assert_int_eq(actio_future_resolve_unref(f, (void *)(uintptr_t)(i + 1), NULL), 0);
    else
      actio_future_unref(f);
    if (i % 2 == 0 && k < pr->nshared)
      actio_future_resolve(pr->shared[k++], NULL, NULL);
  }
  while (k < pr->nshared)
    actio_future_resolve(pr->shared[k++], NULL, NULL);
  return NULL;
}

#define STOP_TAG UINT64_MAX

typedef struct drainer {
  actio_cq *cq;
  _Atomic int *stops;          /* STOP_TAG events taken, over all drainers */
  _Atomic long *taken;         /* other events taken, over all drainers */
  uint64_t next[PRODUCERS];    /* per producer: the next sequence expected */
  unsigned char *seen_shared;  /* SHARED entries */
  int check_order;
  long got;
} drainer;

static void take(drainer *d, const actio_cq_event *e) {
  int id = (int)(e->tag >> 32);
  uint64_t seq = e->tag & 0xffffffffu;
  if (id == PRODUCERS) { /* a shared one */
    ck_assert_uint_lt(seq, SHARED);
    ck_assert(!d->seen_shared[seq]);
    d->seen_shared[seq] = 1;
    ck_assert_int_eq(actio_future_status(e->future), 0);
  } else {
    ck_assert_int_lt(id, PRODUCERS);
    if (d->check_order) /* one thread completed them in turn */
      ck_assert_uint_eq(seq, d->next[id]);
    ck_assert_uint_ge(seq, d->next[id]); /* serialised drains: in order */
    d->next[id] = seq + 1;
    if (seq % 3 == 0)
      ck_assert_int_eq(actio_future_status(e->future), ACTIO_ECANCELED);
    else
      ck_assert_ptr_eq(actio_future_value(e->future), (void *)(uintptr_t)(seq + 1));
  }
  actio_future_unref(e->future);
  d->got++;
  atomic_fetch_add(d->taken, 1);
}

/* The loop: sleep in poll until the fd is readable, drain a small batch,
 * until a STOP_TAG event. A lost wake-up would leave it asleep for good
 * (the test's timeout). */
static void *drain_loop(void *p) {
  drainer *d = p;
  actio_cq_event ev[16];
  for (int stop = 0; !stop;) {
    struct pollfd pfd = {.fd = actio_cq_fd(d->cq), .events = POLLIN};
    ck_assert_int_ge(poll(&pfd, 1, -1), 0);
    int n = actio_cq_drain(d->cq, ev, 16);
    ck_assert_int_ge(n, 0);
    ck_assert_int_le(n, 16);
    for (int i = 0; i < n; i++) {
      if (ev[i].tag != STOP_TAG) {
        take(d, &ev[i]);
        continue;
      }
      actio_future_unref(ev[i].future);
      atomic_fetch_add(d->stops, 1);
      stop = 1;
    }
  }
  return NULL;
}

static void stress(int drainers) {
  actio_cq *cq;
  ck_assert_int_eq(actio_cq_create(&cq), 0);
  actio_future **shared = malloc(SHARED * sizeof *shared);
  for (int i = 0; i < SHARED; i++) {
    shared[i] = pending();
    ck_assert_int_eq(actio_cq_add(cq, shared[i], tag_of(PRODUCERS, (uint64_t)i)), 0);
  }
  _Atomic int stops = 0;
  _Atomic long taken = 0;
  drainer d[2];
  unsigned char *seen = calloc(SHARED, 1);
  for (int i = 0; i < drainers; i++)
    d[i] = (drainer){.cq = cq, .stops = &stops, .taken = &taken, .seen_shared = seen,
                     .check_order = drainers == 1};
  producer pr[PRODUCERS];
  for (int i = 0; i < PRODUCERS; i++)
    pr[i] = (producer){.cq = cq, .id = i, .shared = shared + i * (SHARED / PRODUCERS),
                       .nshared = i == PRODUCERS - 1 ? SHARED - i * (SHARED / PRODUCERS)
                                                     : SHARED / PRODUCERS};
  pthread_t dt[2], pt[PRODUCERS];
  start_threads(dt, drainers, drain_loop, d, sizeof d[0]);
  start_threads(pt, PRODUCERS, produce, pr, sizeof pr[0]);
  join_threads(pt, PRODUCERS);
  /* Every event taken through the wake-ups alone (a lost one leaves the
   * loops asleep: the test's timeout); completions of different threads
   * may come in any order, so the stop events come only after. */
  while (atomic_load(&taken) < PRODUCERS * PER_PRODUCER + SHARED)
    usleep(1000);
  /* One stop event per drainer, the next once one has been taken: each
   * drainer leaves on the one it takes, and the fd wakes the others. */
  for (int i = 0; i < drainers; i++) {
    actio_future *stop;
    ck_assert_int_eq(actio_future_resolved(&stop, NULL, NULL), 0);
    ck_assert_int_eq(actio_cq_add(cq, stop, STOP_TAG), 0);
    actio_future_unref(stop);
    while (atomic_load(&stops) <= i)
      usleep(1000);
  }
  join_threads(dt, drainers);
  long got = 0;
  for (int i = 0; i < drainers; i++)
    got += d[i].got;
  ck_assert_int_eq(got, PRODUCERS * PER_PRODUCER + SHARED);
  for (int i = 0; i < SHARED; i++) {
    ck_assert(seen[i]);
    actio_future_unref(shared[i]);
  }
  for (int p = 0; p < PRODUCERS && drainers == 1; p++)
    ck_assert_uint_eq(d[0].next[p], PER_PRODUCER);
  /* Everything drained and every completion's write done: reset. */
  actio_cq_event ev[4];
  ck_assert_int_eq(actio_cq_drain(cq, ev, 4), 0);
  ck_assert(!readable(cq));
  free(seen);
  free(shared);
  actio_cq_destroy(cq);
}

/* Destroyed while other threads complete its futures, which they
 * registered themselves (each thread's registrations are counted apart):
 * each completion either lands before the destroy (released by it) or
 * finds the queue gone (frees its own node), and the queue is freed by
 * whichever ends last; nothing leaks (ASan) or races (TSan). */
enum { RACED = 4000, RACERS = 4 };

typedef struct racer {
  actio_cq *cq;
  actio_future **fs;
  _Atomic int *registered, *completed;
} racer;

static void *complete_share(void *p) {
  racer *r = p;
  for (int i = 0; i < RACED / RACERS; i++)
    ck_assert_int_eq(actio_cq_add(r->cq, r->fs[i], (uint64_t)i), 0);
  atomic_fetch_add(r->registered, 1);
  for (int i = 0; i < RACED / RACERS; i++) {
    actio_future_resolve(r->fs[i], NULL, NULL);
    atomic_fetch_add(r->completed, 1);
  }
  return NULL;
}

START_TEST(destroy_while_futures_complete_elsewhere) {
  actio_cq *cq;
  ck_assert_int_eq(actio_cq_create(&cq), 0);
  actio_future **fs = malloc(RACED * sizeof *fs);
  for (int i = 0; i < RACED; i++)
    fs[i] = pending();
  _Atomic int registered = 0, completed = 0;
  racer r[RACERS];
  for (int i = 0; i < RACERS; i++)
    r[i] = (racer){.cq = cq, .fs = fs + i * (RACED / RACERS), .registered = &registered,
                   .completed = &completed};
  pthread_t t[RACERS];
  start_threads(t, RACERS, complete_share, r, sizeof r[0]);
  actio_cq_event ev[64];
  /* Destroy once nobody adds (its contract), some drained, some not. */
  while (atomic_load(&registered) < RACERS || atomic_load(&completed) < RACED / 4)
    for (int k = actio_cq_drain(cq, ev, 64), i = 0; i < k; i++)
      actio_future_unref(ev[i].future);
  actio_cq_destroy(cq);
  join_threads(t, RACERS);
  for (int i = 0; i < RACED; i++) {
    ck_assert_int_eq(actio_future_status(fs[i]), 0);
    actio_future_unref(fs[i]);
  }
  free(fs);
}
END_TEST

/* One thread registers futures while another completes them, the two
 * racing on each one (a registration whose slot the completion finds
 * claimed but not yet written waits for it); every third future has a
 * callback in its inline slot already, so its registration is a record.
 * Each arrives once, with its tag and its value, wherever the race went. */
enum { RACING = 20000 };

typedef struct reg_race {
  actio_cq *cq;
  actio_future **fs;
  _Atomic int *go;
} reg_race;

static void *register_all(void *p) {
  reg_race *r = p;
  while (!atomic_load(r->go))
    sched_yield();
  for (int i = 0; i < RACING; i++)
    ck_assert_int_eq(actio_cq_add(r->cq, r->fs[i], (uint64_t)i), 0);
  return NULL;
}

static void *complete_all(void *p) {
  reg_race *r = p;
  while (!atomic_load(r->go))
    sched_yield();
  for (int i = 0; i < RACING; i++)
    ck_assert_int_eq(actio_future_resolve(r->fs[i], (void *)(uintptr_t)(i + 1), NULL), 0);
  return NULL;
}

START_TEST(registrations_race_completions) {
  actio_cq *cq;
  ck_assert_int_eq(actio_cq_create(&cq), 0);
  actio_future **fs = malloc(RACING * sizeof *fs);
  _Atomic int callbacks = 0, go = 0;
  for (int i = 0; i < RACING; i++) {
    fs[i] = pending();
    if (i % 3 == 0)
      ck_assert_int_eq(actio_future_on_done(fs[i], count_done, &callbacks), 0);
  }
  reg_race r = {cq, fs, &go};
  pthread_t t[2];
  ck_assert_int_eq(pthread_create(&t[0], NULL, register_all, &r), 0);
  ck_assert_int_eq(pthread_create(&t[1], NULL, complete_all, &r), 0);
  atomic_store(&go, 1);
  unsigned char *seen = calloc(RACING, 1);
  actio_cq_event ev[64];
  for (int got = 0; got < RACING;) {
    struct pollfd pfd = {.fd = actio_cq_fd(cq), .events = POLLIN};
    ck_assert_int_ge(poll(&pfd, 1, -1), 0);
    int n = actio_cq_drain(cq, ev, 64);
    for (int i = 0; i < n; i++) {
      uint64_t tag = ev[i].tag;
      ck_assert_uint_lt(tag, RACING);
      ck_assert(!seen[tag]);
      seen[tag] = 1;
      ck_assert_ptr_eq(ev[i].future, fs[tag]);
      ck_assert_ptr_eq(actio_future_value(ev[i].future), (void *)(uintptr_t)(tag + 1));
      actio_future_unref(ev[i].future);
    }
    got += n;
  }
  join_threads(t, 2);
  ck_assert_int_eq(atomic_load(&callbacks), (RACING + 2) / 3);
  ck_assert_int_eq(actio_cq_drain(cq, ev, 64), 0);
  for (int i = 0; i < RACING; i++)
    actio_future_unref(fs[i]);
  free(seen);
  free(fs);
  actio_cq_destroy(cq);
}
END_TEST

START_TEST(many_completing_threads_one_loop_lose_no_wakeup) { stress(1); }
END_TEST

START_TEST(two_draining_threads_take_each_event_once) { stress(2); }
END_TEST

int main(void) {
  Suite *s = suite_create("cq");
  TCase *tc = tcase_with_timeout("cq", 60);
  tcase_add_test(tc, a_completion_arrives_through_the_fd);
  tcase_add_test(tc, bad_arguments_are_refused);
  tcase_add_test(tc, complete_futures_arrive_at_once_in_order);
  tcase_add_test(tc, tags_arrive_in_completion_order_in_bounded_batches);
  tcase_add_test(tc, a_future_is_on_one_queue_until_drained);
  tcase_add_test(tc, a_cancelled_request_arrives_cancelled);
  tcase_add_test(tc, destroy_releases_what_it_holds);
  tcase_add_test(tc, destroy_survives_a_release_that_completes_another);
  tcase_add_test(tc, a_registration_while_the_completion_is_busy_arrives_once);
  tcase_add_test(tc, a_thread_registers_on_many_queues_in_turn);
  tcase_add_test(tc, bursts_reuse_the_segments_drained);
  tcase_add_test(tc, create_reports_the_system_error);
  tcase_add_test(tc, a_thread_keeps_records_on_its_last_four_queues);
  tcase_add_test(tc, a_record_outlives_its_destroyed_queue_until_its_thread_exits);
  tcase_add_test(tc, a_process_without_keys_left_keeps_no_records);
  suite_add_tcase(s, tc);
  TCase *st = tcase_with_timeout("stress", 600);
  tcase_add_test(st, many_completing_threads_one_loop_lose_no_wakeup);
  tcase_add_test(st, two_draining_threads_take_each_event_once);
  tcase_add_test(st, destroy_while_futures_complete_elsewhere);
  tcase_add_test(st, registrations_race_completions);
  tcase_add_test(st, a_queue_keeps_no_record_of_threads_gone);
  tcase_add_test(st, a_drained_future_registered_again_from_two_threads_goes_once);
  suite_add_tcase(s, st);
  return run_suite(s);
}

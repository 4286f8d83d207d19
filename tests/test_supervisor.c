/* test_supervisor.c: supervision trees (each restart strategy, the restart
 * intensity, nesting, temporary children, stop order), dead letters,
 * metrics, a group deadline, and a database pool giving up. */
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "actio.h"
#include "actors/core/actor_internal.h"
#include "test_util.h"

static actio_runtime *rt;

static void setup(void) { ck_assert_int_eq(actio_runtime_create(&rt, NULL), 0); }
static void teardown(void) { actio_runtime_destroy(rt); }

/* ---- a log of what happened, in order ---- */

typedef struct logbook {
  pthread_mutex_t mu;
  char text[4096];
  int events;
  int want;          /* resolve `reached` once events >= want */
  actio_future *reached;
} logbook;

static logbook book;

static void book_reset(void) {
  actio_future_unref(book.reached);
  memset(&book, 0, sizeof book);
  pthread_mutex_init(&book.mu, NULL);
}

static void book_add(const char *what, int event) {
  pthread_mutex_lock(&book.mu);
  size_t len = strlen(book.text);
  snprintf(book.text + len, sizeof book.text - len, "%s%s", len ? " " : "", what);
  actio_future *done = NULL;
  if (event && ++book.events >= book.want && book.reached != NULL) {
    done = book.reached;
    book.reached = NULL;
  }
  pthread_mutex_unlock(&book.mu);
  if (done != NULL) {
    actio_future_resolve(done, NULL, NULL);
    actio_future_unref(done);
  }
}

/* Waits until the monitor has seen `n` events in all, then returns the
 * log and clears it. */
static void book_wait(int n, char *out, size_t len) {
  actio_future *f;
  ck_assert_int_eq(actio_future_create(&f), 0);
  pthread_mutex_lock(&book.mu);
  int already = book.events >= n;
  if (!already) {
    book.want = n;
    actio_future_ref(f);
    book.reached = f;
  }
  pthread_mutex_unlock(&book.mu);
  if (!already)
    ck_assert_int_eq(actio_future_wait(f, -1), 0);
  actio_future_unref(f);
  pthread_mutex_lock(&book.mu);
  snprintf(out, len, "%s", book.text);
  book.text[0] = '\0';
  pthread_mutex_unlock(&book.mu);
}

static void on_event(void *arg, const actio_sup_event *ev) {
  (void)arg;
  char buf[128];
  const char *kind = ev->kind == ACTIO_SUP_CHILD_FAILED      ? "failed"
                     : ev->kind == ACTIO_SUP_CHILD_RESTARTED ? "restarted"
                                                             : "gave-up";
  snprintf(buf, sizeof buf, "%s:%s", kind, ev->child);
  book_add(buf, 1);
}

/* ---- a child: crashes on demand, logs its start and stop ---- */

enum { CRASH = 1, PING = 2 };

static int child_handle(actio_actor *self, void *worker, void *msg,
                        actio_future *reply) {
  (void)worker;
  if ((uintptr_t)msg == CRASH)
    return ACTIO_EFATAL;
  /* The instance whose worker runs this: self, never the address. */
  return reply ? actio_future_resolve(reply, actio_actor_self() == self ? self : NULL, NULL)
               : 0;
}

static void child_stop(actio_actor *self, void *worker) {
  (void)worker;
  char buf[64];
  snprintf(buf, sizeof buf, "stop:%s", actio_actor_name(self));
  book_add(buf, 0);
}

static const actio_behavior child_behavior = {.handle = child_handle,
                                              .worker_stop = child_stop};

static int child_start(actio_runtime *r, void *arg, actio_actor **out) {
  char buf[64];
  snprintf(buf, sizeof buf, "start:%s", (const char *)arg);
  book_add(buf, 0);
  return actio_actor_spawn(r, &child_behavior, &(actio_actor_opts){.name = arg}, out);
}

static const actio_child_spec abc[] = {
    {.name = "a", .start = child_start, .arg = "a"},
    {.name = "b", .start = child_start, .arg = "b"},
    {.name = "c", .start = child_start, .arg = "c"},
};

/* The restart intensity's period in these tests: an hour, so that every
 * failure a test causes falls within one period however slowly it runs. */
enum { PERIOD_MS = 3600 * 1000 };

static actio_actor *start_sup(actio_sup_strategy strategy, unsigned max_restarts) {
  book_reset();
  actio_sup_opts o = {.name = "top", .strategy = strategy, .max_restarts = max_restarts,
                      .period_ms = PERIOD_MS, .backoff_ms = 1, .backoff_max_ms = 5,
                      .monitor = on_event};
  actio_actor *sup;
  ck_assert_int_eq(actio_sup_spawn(rt, &o, abc, 3, &sup), 0);
  char log[4096];
  book_wait(0, log, sizeof log);
  ck_assert_str_eq(log, "start:a start:b start:c"); /* in order */
  return sup;
}

static void crash(actio_actor *sup, const char *name) {
  ck_assert_int_eq(actio_tell(actio_sup_lookup(sup, name), (void *)CRASH, -1), 0);
}

/* The child answers a ping: it runs. Returns the instance that answered
 * (a child's address reaches whichever runs now). */
static actio_actor *alive(actio_actor *a) {
  actio_future *f;
  ck_assert_int_eq(actio_ask(a, (void *)PING, -1, &f), 0);
  ck_assert_int_eq(actio_future_wait(f, -1), 0);
  actio_actor *inst = actio_future_value(f);
  ck_assert_ptr_nonnull(inst);
  ck_assert_ptr_null(actio_actor_self()); /* no actor's thread here */
  actio_future_unref(f);
  return inst;
}

START_TEST(test_one_for_one) {
  actio_actor *sup = start_sup(ACTIO_ONE_FOR_ONE, 3);
  actio_actor *a = actio_sup_lookup(sup, "a"), *b = actio_sup_lookup(sup, "b"),
              *c = actio_sup_lookup(sup, "c");
  actio_actor *a1 = alive(a), *b1 = alive(b), *c1 = alive(c);
  crash(sup, "b");
  char log[4096];
  book_wait(2, log, sizeof log);
  ck_assert_str_eq(log, "failed:b stop:b start:b restarted:b");
  /* The addresses stay; b's alone reaches a new instance. */
  ck_assert_ptr_eq(actio_sup_lookup(sup, "a"), a);
  ck_assert_ptr_eq(actio_sup_lookup(sup, "b"), b);
  ck_assert_ptr_eq(actio_sup_lookup(sup, "c"), c);
  ck_assert_ptr_eq(alive(a), a1);
  ck_assert_ptr_ne(alive(b), b1);
  ck_assert_ptr_eq(alive(c), c1);
  /* The old instance was freed once replaced (b1 is compared, never
   * used): only the address lasts. */
  actio_sup_stats st;
  actio_sup_stats_get(sup, &st);
  ck_assert_uint_eq(st.failures, 1);
  ck_assert_uint_eq(st.restarts, 1);
  ck_assert_int_eq(st.gave_up, 0);
}
END_TEST

START_TEST(test_one_for_all) {
  actio_actor *sup = start_sup(ACTIO_ONE_FOR_ALL, 3);
  actio_actor *a = actio_sup_lookup(sup, "a");
  actio_actor *a1 = alive(a);
  crash(sup, "b");
  char log[4096];
  book_wait(4, log, sizeof log);
  /* Stopped newest first, started in order. */
  ck_assert_str_eq(log, "failed:b stop:c stop:b stop:a start:a restarted:a start:b "
                        "restarted:b start:c restarted:c");
  ck_assert_ptr_eq(actio_sup_lookup(sup, "a"), a);
  ck_assert_ptr_ne(alive(a), a1);
  alive(actio_sup_lookup(sup, "c"));
}
END_TEST

START_TEST(test_rest_for_one) {
  actio_actor *sup = start_sup(ACTIO_REST_FOR_ONE, 3);
  actio_actor *a1 = alive(actio_sup_lookup(sup, "a"));
  actio_actor *c1 = alive(actio_sup_lookup(sup, "c"));
  crash(sup, "b");
  char log[4096];
  book_wait(3, log, sizeof log);
  ck_assert_str_eq(log, "failed:b stop:c stop:b start:b restarted:b start:c restarted:c");
  ck_assert_ptr_eq(alive(actio_sup_lookup(sup, "a")), a1);
  ck_assert_ptr_ne(alive(actio_sup_lookup(sup, "c")), c1);
}
END_TEST

START_TEST(test_intensity) {
  actio_actor *sup = start_sup(ACTIO_ONE_FOR_ONE, 2);
  actio_actor *a = actio_sup_lookup(sup, "a");
  char log[4096];
  for (int i = 1; i <= 2; i++) {
    crash(sup, "c");
    book_wait(2 * i, log, sizeof log);
    ck_assert_str_eq(log, "failed:c stop:c start:c restarted:c");
  }
  crash(sup, "c"); /* the third within the period: too many */
  book_wait(6, log, sizeof log);
  ck_assert_str_eq(log, "failed:c stop:c stop:b stop:a gave-up:c");
  actio_sup_stats st;
  actio_sup_stats_get(sup, &st);
  ck_assert_uint_eq(st.restarts, 2);
  ck_assert_uint_eq(st.failures, 3);
  ck_assert_int_eq(st.gave_up, 1);
  /* It fails itself right after telling its monitor: stopping it waits for
   * its worker to be done with that. */
  ck_assert_int_eq(actio_actor_stop(sup, ACTIO_STOP_DRAIN), 0);
  ck_assert_int_eq(actio_actor_failed(sup), 1);
  ck_assert_int_eq(actio_tell(a, (void *)PING, 0), ACTIO_ECLOSED);
  ck_assert_ptr_null(actio_sup_lookup(sup, "a")); /* nothing runs */
}
END_TEST

START_TEST(test_nested) {
  book_reset();
  actio_sup_def inner = {.opts = {.name = "inner", .max_restarts = 1, .backoff_ms = 1,
                                  .period_ms = PERIOD_MS, .monitor = on_event},
                         .children = abc, .n = 1};
  actio_child_spec outer_children[] = {
      {.name = "inner", .start = actio_sup_child, .arg = &inner}};
  actio_sup_opts o = {.name = "outer", .backoff_ms = 1, .monitor = on_event};
  actio_actor *outer;
  ck_assert_int_eq(actio_sup_spawn(rt, &o, outer_children, 1, &outer), 0);
  actio_actor *in = actio_sup_lookup(outer, "inner");
  ck_assert_ptr_nonnull(in);
  actio_actor *a = actio_sup_lookup(in, "a");
  char log[4096];
  ck_assert_int_eq(actio_tell(actio_sup_lookup(in, "a"), (void *)CRASH, -1), 0);
  book_wait(2, log, sizeof log); /* the inner one restarts a */
  ck_assert_int_eq(actio_tell(actio_sup_lookup(in, "a"), (void *)CRASH, -1), 0);
  /* The inner one gives up; the outer one restarts it, and with it a. */
  book_wait(6, log, sizeof log);
  ck_assert_str_eq(log, "failed:a stop:a gave-up:a failed:inner start:a restarted:inner");
  /* The same address reaches the new inner supervisor, whose child is new
   * (an address of its own). */
  ck_assert_ptr_eq(actio_sup_lookup(outer, "inner"), in);
  ck_assert_ptr_ne(actio_sup_lookup(in, "a"), a);
  alive(actio_sup_lookup(in, "a"));
  ck_assert_int_eq(actio_tell(a, (void *)PING, 0), ACTIO_ECLOSED); /* the old one's */
}
END_TEST

/* a, c, and b between them temporary. */
static const actio_child_spec a_temporary_b_c[] = {
    {.name = "a", .start = child_start, .arg = "a"},
    {.name = "b", .start = child_start, .arg = "b", .temporary = 1},
    {.name = "c", .start = child_start, .arg = "c"},
};

START_TEST(test_temporary_and_stop_order) {
  book_reset();
  actio_actor *sup;
  ck_assert_int_eq(actio_sup_spawn(rt, &(actio_sup_opts){.monitor = on_event}, a_temporary_b_c, 3,
                                   &sup), 0);
  char log[4096];
  crash(sup, "b");
  book_wait(1, log, sizeof log);
  /* Stopping the supervisor drains its mailbox (the failure) first. */
  ck_assert_int_eq(actio_actor_stop(sup, ACTIO_STOP_DRAIN), 0);
  char rest[4096], all[8192];
  book_wait(1, rest, sizeof rest);
  snprintf(all, sizeof all, "%s%s%s", log, *log && *rest ? " " : "", rest);
  ck_assert_str_eq(all, "start:a start:b start:c failed:b stop:b stop:c stop:a");
  ck_assert_ptr_null(actio_sup_lookup(sup, "b")); /* not restarted */
  /* Bad specs. */
  actio_child_spec twice[] = {{.name = "x", .start = child_start, .arg = "x"},
                              {.name = "x", .start = child_start, .arg = "x"}};
  ck_assert_int_eq(actio_sup_spawn(rt, NULL, twice, 2, &sup), ACTIO_EINVAL);
  actio_child_spec none[] = {{.name = "x"}};
  ck_assert_int_eq(actio_sup_spawn(rt, NULL, none, 1, &sup), ACTIO_EINVAL);
}
END_TEST

static int fail_start(actio_runtime *r, void *arg, actio_actor **out) {
  (void)r, (void)arg, (void)out;
  return ACTIO_ENOMEM;
}

START_TEST(test_start_failure) {
  book_reset();
  actio_child_spec kids[] = {{.name = "a", .start = child_start, .arg = "a"},
                             {.name = "b", .start = child_start, .arg = "b"},
                             {.name = "bad", .start = fail_start}};
  actio_actor *sup = NULL;
  ck_assert_int_eq(actio_sup_spawn(rt, NULL, kids, 3, &sup), ACTIO_ENOMEM);
  ck_assert_ptr_null(sup);
  char log[4096];
  book_wait(0, log, sizeof log);
  ck_assert_str_eq(log, "start:a start:b stop:b stop:a"); /* undone, newest first */
}
END_TEST

/* Starts a supervisor of kids, crashes its child a, and puts in log what
 * happened until the monitor heard `events` events. */
static actio_actor *crash_a(const actio_sup_opts *o, const actio_child_spec *kids, size_t n,
                            int events, char *log, size_t len) {
  book_reset();
  actio_actor *sup;
  ck_assert_int_eq(actio_sup_spawn(rt, o, kids, n, &sup), 0);
  book_wait(0, log, len); /* the starts */
  crash(sup, "a");
  book_wait(events, log, len);
  return sup;
}

START_TEST(test_temporary_with_one_for_all) {
  /* A temporary child is stopped with the others and never started again,
   * even when another child's failure restarts them all. */
  actio_sup_opts o = {.strategy = ACTIO_ONE_FOR_ALL, .backoff_ms = 1, .monitor = on_event};
  char log[4096];
  actio_actor *sup = crash_a(&o, a_temporary_b_c, 3, 3, log, sizeof log);
  ck_assert_str_eq(log, "failed:a stop:c stop:b stop:a start:a restarted:a start:c restarted:c");
  ck_assert_ptr_null(actio_sup_lookup(sup, "b"));
  alive(actio_sup_lookup(sup, "a"));
  alive(actio_sup_lookup(sup, "c"));
  /* The metrics list what runs: one line for a and c, none for b. */
  char *text = metrics_text(rt);
  int lines[3] = {0};
  for (size_t i = 0; text[i] != '\0'; i++)
    if (text[i] == '\n' && text[i + 1] >= 'a' && text[i + 1] <= 'c' && text[i + 2] == ' ')
      lines[text[i + 1] - 'a']++;
  free(text);
  ck_assert_int_eq(lines[0], 1);
  ck_assert_int_eq(lines[1], 0);
  ck_assert_int_eq(lines[2], 1);
}
END_TEST

/* Starts once; every later start fails. */
static _Atomic int starts;
static int start_once(actio_runtime *r, void *arg, actio_actor **out) {
  if (atomic_fetch_add(&starts, 1) > 0)
    return -EPROTO;
  return child_start(r, arg, out);
}

START_TEST(test_restart_that_fails) {
  /* A restart that fails is the child's next failure: with one restart
   * allowed, the supervisor then gives up. */
  atomic_store(&starts, 0);
  actio_child_spec kids[] = {{.name = "a", .start = start_once, .arg = "a"}};
  actio_sup_opts o = {.max_restarts = 1, .backoff_ms = 1, .monitor = on_event};
  char log[4096];
  actio_actor *sup = crash_a(&o, kids, 1, 3, log, sizeof log);
  ck_assert_str_eq(log, "failed:a stop:a failed:a gave-up:a");
  actio_sup_stats st;
  actio_sup_stats_get(sup, &st);
  ck_assert_int_eq(st.gave_up, 1);
  ck_assert_uint_eq(st.restarts, 0);
  ck_assert_int_eq(atomic_load(&starts), 2);
}
END_TEST

/* Starts a child that has failed already, the first time only. */
static _Atomic int broken_starts;
static int start_broken(actio_runtime *r, void *arg, actio_actor **out) {
  int rc = child_start(r, arg, out);
  if (rc == 0 && atomic_fetch_sub(&broken_starts, 1) > 0)
    actio_actor_fail(*out, ACTIO_EFATAL, "broken at birth");
  return rc;
}

START_TEST(test_child_failed_as_it_started) {
  /* A failure before the supervisor watched the child is heard all the
   * same, as soon as it does. */
  book_reset();
  atomic_store(&broken_starts, 1);
  actio_child_spec kids[] = {{.name = "a", .start = start_broken, .arg = "a"}};
  actio_sup_opts o = {.backoff_ms = 1, .monitor = on_event};
  actio_actor *sup;
  ck_assert_int_eq(actio_sup_spawn(rt, &o, kids, 1, &sup), 0);
  char log[4096];
  book_wait(2, log, sizeof log);
  ck_assert_str_eq(log, "start:a failed:a stop:a start:a restarted:a");
  alive(actio_sup_lookup(sup, "a"));
}
END_TEST

/* The first event holds the supervisor's worker at this gate. */
static test_gate held_gate = TEST_GATE_INIT;
static _Atomic int held_once;


static void on_event_held(void *arg, const actio_sup_event *ev) {
  on_event(arg, ev);
  if (atomic_exchange(&held_once, 1) == 0)
    gate_hold(&held_gate);
}

/* A supervisor of a, b and c whose first event holds its worker. */
static actio_actor *start_held_sup(void) {
  book_reset();
  held_gate.entered = held_gate.open = 0;
  atomic_store(&held_once, 0);
  actio_sup_opts o = {.name = "top", .period_ms = PERIOD_MS, .backoff_ms = 1,
                      .monitor = on_event_held};
  actio_actor *sup;
  ck_assert_int_eq(actio_sup_spawn(rt, &o, abc, 3, &sup), 0);
  return sup;
}

START_TEST(test_failure_with_mailbox_full) {
  /* A failure noted while the supervisor's mailbox is full is not lost:
   * the supervisor handles it once it gets to its mailbox again. */
  actio_actor *sup = start_held_sup();
  actio_actor *b = actio_sup_lookup(sup, "b");
  crash(sup, "a");
  gate_wait_held(&held_gate); /* the worker is in the monitor, hearing of a */
  static char junk;
  int sent = 0, rc;
  while ((rc = actio_tell(sup, &junk, 0)) == 0)
    sent++;
  ck_assert_int_eq(rc, ACTIO_EFULL);
  ck_assert_int_gt(sent, 0);
  crash(sup, "b");
  while (!actio_actor_failed(b)) /* noted (the monitor hook has returned) */
    usleep(1000);
  gate_open(&held_gate);
  char log[4096];
  book_wait(4, log, sizeof log);
  ck_assert_str_eq(log, "start:a start:b start:c failed:a stop:a start:a restarted:a "
                        "failed:b stop:b start:b restarted:b");
  alive(b);
  actio_sup_stats st;
  actio_sup_stats_get(sup, &st);
  ck_assert_uint_eq(st.failures, 2);
  ck_assert_uint_eq(st.restarts, 2);
  /* What is not a supervisor's message is refused, and counted so. */
  ck_assert_int_eq(actio_actor_stop(sup, ACTIO_STOP_DRAIN), 0);
  actio_actor_stats as;
  actio_actor_stats_get(sup, &as);
  ck_assert_uint_eq(as.failed, (uint64_t)sent);
}
END_TEST

/* ---- children started and stopped at run time ---- */

/* Starts child `name` at run time; returns its address (or the failure's
 * code through *rc, NULL then). */
static actio_actor *start_child(actio_actor *sup, const char *name,
                                actio_child_start_fn fn, int *rc) {
  actio_child_spec spec = {.name = name, .start = fn, .arg = (void *)name};
  actio_future *f;
  ck_assert_int_eq(actio_sup_start_child(sup, &spec, &f), 0);
  *rc = actio_future_wait(f, -1);
  actio_actor *addr = *rc == 0 ? actio_future_value(f) : NULL;
  actio_future_unref(f);
  return addr;
}

/* Stops a child by name, or by address when name is NULL; returns the
 * outcome. */
static int stop_child(actio_actor *sup, const char *name, actio_actor *addr) {
  actio_future *f;
  ck_assert_int_eq(name ? actio_sup_stop_child(sup, name, &f)
                        : actio_sup_stop_child_at(sup, addr, &f), 0);
  int rc = actio_future_wait(f, -1);
  actio_future_unref(f);
  return rc;
}

START_TEST(test_dynamic_children) {
  actio_actor *sup = start_sup(ACTIO_ONE_FOR_ONE, 3);
  int rc;
  actio_actor *t1 = start_child(sup, "t1", child_start, &rc);
  ck_assert_int_eq(rc, 0);
  ck_assert_ptr_eq(actio_sup_lookup(sup, "t1"), t1);
  actio_actor *i1 = alive(t1);
  /* A name taken, by a child started at run time or at spawn. */
  ck_assert_ptr_null(start_child(sup, "t1", child_start, &rc));
  ck_assert_int_eq(rc, ACTIO_EEXIST);
  ck_assert_ptr_null(start_child(sup, "a", child_start, &rc));
  ck_assert_int_eq(rc, ACTIO_EEXIST);
  /* The supervisor's policy applies: it is restarted. */
  crash(sup, "t1");
  char log[4096];
  book_wait(2, log, sizeof log);
  ck_assert_str_eq(log, "start:t1 failed:t1 stop:t1 start:t1 restarted:t1");
  ck_assert_ptr_eq(actio_sup_lookup(sup, "t1"), t1);
  ck_assert_ptr_ne(alive(t1), i1);
  /* Stopped by name: gone, its address refuses (to whoever still holds
   * it, as a delayed send does: a reference), its name is free. */
  actio__actor_ref(t1);
  ck_assert_int_eq(stop_child(sup, "t1", NULL), 0);
  ck_assert_ptr_null(actio_sup_lookup(sup, "t1"));
  ck_assert_int_eq(actio_tell(t1, (void *)PING, 0), ACTIO_ECLOSED);
  actio_actor *t1b = start_child(sup, "t1", child_start, &rc);
  ck_assert_int_eq(rc, 0);
  ck_assert_ptr_ne(t1b, t1);
  alive(t1b);
  /* Stopped by address; a child given at spawn too. */
  ck_assert_int_eq(stop_child(sup, NULL, t1b), 0);
  ck_assert_ptr_null(actio_sup_lookup(sup, "t1"));
  ck_assert_int_eq(stop_child(sup, "b", NULL), 0);
  ck_assert_ptr_null(actio_sup_lookup(sup, "b"));
  book_wait(2, log, sizeof log); /* no event since: what was logged */
  ck_assert_str_eq(log, "stop:t1 start:t1 stop:t1 stop:b");
  /* No such child. */
  ck_assert_int_eq(stop_child(sup, "b", NULL), ACTIO_ENONAME);
  ck_assert_int_eq(stop_child(sup, NULL, t1), ACTIO_ENONAME);
  actio__actor_unref(t1); /* freed now */
  /* A start that fails leaves the name free. */
  ck_assert_ptr_null(start_child(sup, "bad", fail_start, &rc));
  ck_assert_int_eq(rc, ACTIO_ENOMEM);
  ck_assert_ptr_null(actio_sup_lookup(sup, "bad"));
  /* Many at once: one per tenant; the others still restart as before. */
  char names[64][8];
  for (int i = 0; i < 64; i++) {
    snprintf(names[i], sizeof names[i], "n%d", i);
    ck_assert_ptr_nonnull(start_child(sup, names[i], child_start, &rc));
  }
  for (int i = 0; i < 64; i += 2)
    ck_assert_int_eq(stop_child(sup, names[i], NULL), 0);
  for (int i = 1; i < 64; i += 2)
    alive(actio_sup_lookup(sup, names[i]));
  crash(sup, "c");
  book_wait(4, log, sizeof log);
  alive(actio_sup_lookup(sup, "c"));
  actio_sup_stats st;
  actio_sup_stats_get(sup, &st);
  ck_assert_uint_eq(st.restarts, 2);
  /* Stopped: its calls refuse. */
  ck_assert_int_eq(actio_actor_stop(sup, ACTIO_STOP_DRAIN), 0);
  actio_child_spec spec = {.name = "late", .start = child_start, .arg = "late"};
  actio_future *f;
  ck_assert_int_eq(actio_sup_start_child(sup, &spec, &f), ACTIO_ECLOSED);
  ck_assert_int_eq(actio_sup_stop_child(sup, "a", &f), ACTIO_ECLOSED);
}
END_TEST

START_TEST(test_names_and_monitors_of_children) {
  /* A child's address keeps its name across restarts, and loses it when
   * the child is stopped for good; a monitor watches the instance running
   * now, so a restart ends it with the failure. */
  actio_actor *sup = start_sup(ACTIO_ONE_FOR_ONE, 3);
  actio_actor *a = actio_sup_lookup(sup, "a");
  ck_assert_int_eq(actio_register(a, "alpha"), 0);
  actio_future *first, *second;
  ck_assert_int_eq(actio_monitor(a, &first), 0);
  crash(sup, "a");
  ck_assert_int_eq(actio_future_wait(first, -1), ACTIO_EFATAL);
  ck_assert_ptr_nonnull(strstr(actio_future_errmsg(first), "fatal"));
  char log[4096];
  book_wait(2, log, sizeof log); /* restarted */
  ck_assert_ptr_eq(actio_whereis(rt, "alpha"), a);
  ck_assert_int_eq(actio_monitor(a, &second), 0); /* the new instance */
  ck_assert_int_eq(actio_future_wait(second, 0), ACTIO_EPENDING);
  actio__actor_ref(a); /* held past its stop for good, to try it */
  ck_assert_int_eq(stop_child(sup, "a", NULL), 0);
  ck_assert_int_eq(actio_future_wait(second, -1), 0); /* a stop, no failure */
  ck_assert_ptr_null(actio_whereis(rt, "alpha"));
  ck_assert_int_eq(actio_register(a, "alpha"), ACTIO_ECLOSED);
  actio__actor_unref(a);
  actio_future_unref(first);
  actio_future_unref(second);
}
END_TEST

START_TEST(test_dynamic_child_arguments) {
  actio_actor *sup = start_sup(ACTIO_ONE_FOR_ONE, 3);
  actio_actor *a = actio_sup_lookup(sup, "a");
  actio_child_spec ok = {.name = "x", .start = child_start, .arg = "x"};
  actio_child_spec no_start = {.name = "x"}, no_name = {.start = child_start};
  actio_future *f = NULL;
  ck_assert_int_eq(actio_sup_start_child(NULL, &ok, &f), ACTIO_EINVAL);
  ck_assert_int_eq(actio_sup_start_child(a, &ok, &f), ACTIO_EINVAL); /* not one */
  ck_assert_int_eq(actio_sup_start_child(sup, NULL, &f), ACTIO_EINVAL);
  ck_assert_int_eq(actio_sup_start_child(sup, &no_start, &f), ACTIO_EINVAL);
  ck_assert_int_eq(actio_sup_start_child(sup, &no_name, &f), ACTIO_EINVAL);
  ck_assert_int_eq(actio_sup_start_child(sup, &ok, NULL), ACTIO_EINVAL);
  ck_assert_int_eq(actio_sup_stop_child(a, "a", &f), ACTIO_EINVAL);
  ck_assert_int_eq(actio_sup_stop_child(sup, NULL, &f), ACTIO_EINVAL);
  ck_assert_int_eq(actio_sup_stop_child(sup, "a", NULL), ACTIO_EINVAL);
  ck_assert_int_eq(actio_sup_stop_child_at(NULL, a, &f), ACTIO_EINVAL);
  ck_assert_int_eq(actio_sup_stop_child_at(sup, NULL, &f), ACTIO_EINVAL);
  ck_assert_int_eq(actio_sup_stop_child_at(sup, a, NULL), ACTIO_EINVAL);
  ck_assert_ptr_null(f); /* no call made one */
}
END_TEST

static void *stop_sup_now(void *sup) {
  ck_assert_int_eq(actio_actor_stop(sup, ACTIO_STOP_NOW), 0);
  return NULL;
}

START_TEST(test_dynamic_child_when_stopping) {
  /* A request waiting while the supervisor is stopped now fails, once,
   * with ACTIO_ECLOSED: its worker is held in its monitor meanwhile. */
  actio_actor *sup = start_held_sup();
  crash(sup, "a");
  gate_wait_held(&held_gate);
  actio_child_spec spec = {.name = "late", .start = child_start, .arg = "late"};
  actio_future *started, *stopped;
  ck_assert_int_eq(actio_sup_start_child(sup, &spec, &started), 0);
  ck_assert_int_eq(actio_sup_stop_child(sup, "b", &stopped), 0);
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, stop_sup_now, sup), 0);
  while (!actio__actor_stopping_now(sup)) /* the stop began */
    usleep(1000);
  gate_open(&held_gate);
  ck_assert_int_eq(pthread_join(t, NULL), 0);
  ck_assert_int_eq(actio_future_wait(started, -1), ACTIO_ECLOSED);
  ck_assert_int_eq(actio_future_wait(stopped, -1), ACTIO_ECLOSED);
  actio_future_unref(started);
  actio_future_unref(stopped);
  ck_assert_ptr_null(actio_sup_lookup(sup, "late"));
}
END_TEST

/* ---- fan-outs through a supervisor ---- */

enum { FAN_N = 10000, FAN_CRASH = 5000 };

/* A call of a fan-out: lent to the children, who count what they handle. */
typedef struct fan_req {
  int id;
} fan_req;

static fan_req fan_reqs[FAN_N];
static actio_sup_call fan_calls[FAN_N];
static _Atomic int fan_handled[FAN_N];   /* handler runs, per call */
static _Atomic int fan_dropped[FAN_N];   /* taken from a mailbox unhandled */
static _Atomic int fan_completed[FAN_N]; /* completions of its future */
static _Atomic int fan_crash_at;         /* the call that fails its child, once */
static _Atomic int fan_hold_at;          /* the call held at fan_gate */
static test_gate fan_gate;
static _Atomic int fan_ended;            /* completions seen, in all */
static actio_future *fan_all_ended;      /* resolved once all are seen */
static int fan_expected;

static int fan_handle(actio_actor *self, void *worker, void *msg, actio_future *reply) {
  (void)worker;
  fan_req *r = msg;
  if (r->id == atomic_load(&fan_hold_at))
    gate_hold(&fan_gate);
  atomic_fetch_add(&fan_handled[r->id], 1);
  int crash = r->id;
  if (atomic_compare_exchange_strong(&fan_crash_at, &crash, -1))
    return ACTIO_EFATAL; /* this instance fails with the call in flight */
  /* The child that answered: its name, its state (static). */
  return actio_future_resolve(reply, actio_actor_state(self), NULL);
}

static void fan_drop(actio_actor *self, void *msg) {
  (void)self;
  atomic_fetch_add(&fan_dropped[((fan_req *)msg)->id], 1); /* lent: not freed */
}

static const actio_behavior fan_behavior = {.handle = fan_handle, .drop = fan_drop};

static int fan_start(actio_runtime *r, void *arg, actio_actor **out) {
  actio_actor_opts o = {.name = arg, .workers = 1, .capacity = 256, .state = arg};
  return actio_actor_spawn(r, &fan_behavior, &o, out);
}

/* A supervisor of fan-out children a, b and c (stopped now when they
 * fail: what waits in the mailbox is cancelled, in flight), restarted with
 * no pause, or after backoff_ms; the counters reset for n calls, odd ones
 * idempotent. */
static actio_actor *fan_sup(int64_t backoff_ms, int n) {
  static const actio_child_spec kids[] = {
      {.name = "a", .start = fan_start, .arg = "a", .stop = ACTIO_STOP_NOW},
      {.name = "b", .start = fan_start, .arg = "b", .stop = ACTIO_STOP_NOW},
      {.name = "c", .start = fan_start, .arg = "c", .stop = ACTIO_STOP_NOW},
  };
  actio_sup_opts o = {.name = "fan", .max_restarts = 100, .period_ms = PERIOD_MS,
                      .backoff_ms = backoff_ms, .backoff_max_ms = backoff_ms};
  actio_actor *sup;
  ck_assert_int_eq(actio_sup_spawn(rt, &o, kids, 3, &sup), 0);
  for (int i = 0; i < n; i++) {
    fan_reqs[i].id = i;
    fan_calls[i] = (actio_sup_call){.msg = &fan_reqs[i], .idempotent = i % 2};
    atomic_store(&fan_handled[i], 0);
    atomic_store(&fan_dropped[i], 0);
    atomic_store(&fan_completed[i], 0);
  }
  atomic_store(&fan_crash_at, -1);
  atomic_store(&fan_hold_at, -1);
  fan_gate = (test_gate)TEST_GATE_INIT;
  atomic_store(&fan_ended, 0);
  fan_expected = n;
  return sup;
}

static void fan_count(actio_future *f, void *arg) {
  (void)f;
  atomic_fetch_add(&fan_completed[(fan_req *)arg - fan_reqs], 1);
  if (atomic_fetch_add(&fan_ended, 1) + 1 == fan_expected)
    actio_future_resolve(fan_all_ended, NULL, NULL);
}

/* Counts each call's completions, then waits until every call's are in
 * (the gather may complete before the last call's later callbacks ran). */
static void fan_wait_all(actio_future *g, int n) {
  ck_assert_uint_eq(actio_gather_count(g), (size_t)n);
  ck_assert_int_eq(actio_future_create(&fan_all_ended), 0);
  for (int i = 0; i < n; i++)
    ck_assert_int_eq(actio_future_on_done(actio_gather_item(g, i), fan_count, &fan_reqs[i]), 0);
  ck_assert_int_eq(actio_future_wait(fan_all_ended, -1), 0);
  actio_future_unref(fan_all_ended);
  for (int i = 0; i < n; i++)
    ck_assert_int_eq(atomic_load(&fan_completed[i]), 1); /* none twice, none missing */
}

START_TEST(test_fanout_child_killed_mid_way) {
  /* 10,000 calls to one child, which fails at call 5000 and is restarted
   * (stopped now: what waits in its mailbox is cancelled). Every call ends
   * exactly once: the idempotent ones all succeed (sent again to the new
   * instance when lost), the others succeed, or fail with
   * ACTIO_ERESTARTED if the failure took them; no call is handled twice,
   * a call cancelled in the old mailbox was never handled there. */
  actio_actor *sup = fan_sup(-1, FAN_N);
  atomic_store(&fan_crash_at, FAN_CRASH); /* even: not idempotent */
  const char *w[] = {"a"};
  actio_sup_fanout_opts o = {.policy = ACTIO_GATHER_SETTLE_ALL};
  actio_future *g = NULL;
  ck_assert_int_eq(actio_sup_fanout(sup, w, 1, fan_calls, FAN_N, &o, &g), 0);
  ck_assert_int_eq(actio_future_wait(g, -1), 0);
  fan_wait_all(g, FAN_N);
  int restarted = 0, resent = 0;
  for (int i = 0; i < FAN_N; i++) {
    actio_future *f = actio_gather_item(g, i);
    int st = actio_future_status(f), handled = atomic_load(&fan_handled[i]),
        dropped = atomic_load(&fan_dropped[i]);
    if (i % 2 == 1 || st == 0) {
      ck_assert_int_eq(st, 0);
      ck_assert_str_eq(actio_future_value(f), "a");
      ck_assert_int_eq(handled, 1);
      ck_assert_int_le(dropped, 1); /* one restart: sent again once at most */
      resent += dropped;
      if (i % 2 == 0)
        ck_assert_int_eq(dropped, 0); /* one dropped would have failed */
    } else {
      ck_assert_int_eq(st, ACTIO_ERESTARTED);
      ck_assert_ptr_nonnull(strstr(actio_future_errmsg(f), "child a restarted while call"));
      /* failed it, or cancelled unhandled */
      ck_assert_int_eq(handled, i == FAN_CRASH);
      ck_assert_int_eq(dropped, i != FAN_CRASH);
      restarted++;
    }
  }
  ck_assert_int_eq(actio_future_status(actio_gather_item(g, FAN_CRASH)), ACTIO_ERESTARTED);
  ck_assert_str_eq(actio_future_errmsg(actio_gather_item(g, FAN_CRASH)),
                   "supervisor fan: child a restarted while call 5000 was in flight: actor a: "
                   "handler failed: the actor failed and must be restarted");
  actio_sup_stats st;
  actio_sup_stats_get(sup, &st);
  ck_assert_uint_eq(st.restarts, 1);
  printf("fan-out of %d: %d failed with ACTIO_ERESTARTED, %d idempotent ones sent again\n",
         FAN_N, restarted, resent);
  actio_future_unref(g);
}
END_TEST

START_TEST(test_fanout_deadline_during_restart) {
  /* Call 0 fails its child, whose restart waits an hour: the idempotent
   * call waits for it, until the fan-out's deadline fails the fan-out and
   * cancels it. The others, handled by the failed instance meanwhile,
   * succeed. */
  enum { N = 10 };
  actio_actor *sup = fan_sup(3600 * 1000, N);
  fan_calls[0].idempotent = 1;
  atomic_store(&fan_crash_at, 0);
  const char *w[] = {"b"};
  actio_sup_fanout_opts o = {.timeout_ms = 200};
  actio_future *g = NULL;
  ck_assert_int_eq(actio_sup_fanout(sup, w, 1, fan_calls, N, &o, &g), 0);
  ck_assert_int_eq(actio_future_wait(g, -1), ACTIO_ETIMEDOUT);
  fan_wait_all(g, N);
  ck_assert_int_eq(actio_future_status(actio_gather_item(g, 0)), ACTIO_ECANCELED);
  for (int i = 1; i < N; i++)
    ck_assert_int_eq(actio_future_status(actio_gather_item(g, i)), 0);
  for (int i = 0; i < N; i++)
    ck_assert_int_eq(atomic_load(&fan_handled[i]), 1);
  /* Stopped now: the pause ends, and the resend still queued is let go. */
  ck_assert_int_eq(actio_actor_stop(sup, ACTIO_STOP_NOW), 0);
  actio_sup_stats st;
  actio_sup_stats_get(sup, &st);
  ck_assert_uint_eq(st.restarts, 0);
  actio_future_unref(g);
}
END_TEST

START_TEST(test_fanout_cancelled) {
  /* Cancelled while its child holds call 0: every call is cancelled, once;
   * call 0's reply comes too late, and the others are never handled. */
  enum { N = 100 };
  actio_actor *sup = fan_sup(-1, N);
  atomic_store(&fan_hold_at, 0);
  const char *w[] = {"c"};
  actio_future *g = NULL;
  ck_assert_int_eq(actio_sup_fanout(sup, w, 1, fan_calls, N, NULL, &g), 0);
  gate_wait_held(&fan_gate);
  ck_assert_int_eq(actio_future_cancel(g), 0);
  gate_open(&fan_gate);
  ck_assert_int_eq(actio_future_wait(g, -1), ACTIO_ECANCELED);
  fan_wait_all(g, N);
  for (int i = 0; i < N; i++)
    ck_assert_int_eq(actio_future_status(actio_gather_item(g, i)), ACTIO_ECANCELED);
  ck_assert_int_eq(stop_child(sup, "c", NULL), 0); /* drained: all taken */
  ck_assert_int_eq(atomic_load(&fan_handled[0]), 1);
  for (int i = 1; i < N; i++) {
    ck_assert_int_eq(atomic_load(&fan_handled[i]), 0);
    ck_assert_int_eq(atomic_load(&fan_dropped[i]), 1);
  }
  actio_future_unref(g);
}
END_TEST

START_TEST(test_fanout_spread) {
  /* Round robin over a, b, c; then each call to the child it names; a
   * failure that is no restart fails a fail-fast fan-out with its error. */
  enum { N = 30 };
  actio_actor *sup = fan_sup(-1, N);
  const char *abc_names[] = {"a", "b", "c"};
  actio_future *g = NULL;
  ck_assert_int_eq(actio_sup_fanout(sup, abc_names, 3, fan_calls, N, NULL, &g), 0);
  ck_assert_int_eq(actio_future_wait(g, -1), 0);
  for (int i = 0; i < N; i++)
    ck_assert_str_eq(actio_future_value(actio_gather_item(g, i)), abc_names[i % 3]);
  actio_future_unref(g);
  for (int i = 0; i < N; i++)
    fan_calls[i].to = (size_t)(i * 7 % 3);
  actio_sup_fanout_opts by = {.spread = ACTIO_SPREAD_BY_INDEX};
  ck_assert_int_eq(actio_sup_fanout(sup, abc_names, 3, fan_calls, N, &by, &g), 0);
  ck_assert_int_eq(actio_future_wait(g, -1), 0);
  for (int i = 0; i < N; i++)
    ck_assert_str_eq(actio_future_value(actio_gather_item(g, i)), abc_names[i * 7 % 3]);
  actio_future_unref(g);
  for (int i = 0; i < N; i++)
    ck_assert_int_eq(atomic_load(&fan_handled[i]), 2);
  /* Through the supervisor's own address, as another's child. */
  actio_sup_def def = {.opts = {.name = "inner"},
                       .children = (actio_child_spec[]){{.name = "x", .start = fan_start,
                                                         .arg = "x"}},
                       .n = 1};
  actio_child_spec inner = {.name = "inner", .start = actio_sup_child, .arg = &def};
  actio_future *f;
  ck_assert_int_eq(actio_sup_start_child(sup, &inner, &f), 0);
  ck_assert_int_eq(actio_future_wait(f, -1), 0);
  actio_actor *inner_addr = actio_future_value(f);
  const char *x[] = {"x"};
  ck_assert_int_eq(actio_sup_fanout(inner_addr, x, 1, fan_calls, 3, NULL, &g), 0);
  ck_assert_int_eq(actio_future_wait(g, -1), 0);
  ck_assert_str_eq(actio_future_value(actio_gather_item(g, 2)), "x");
  actio_future_unref(g);
  actio_future_unref(f);
}
END_TEST

START_TEST(test_fanout_arguments) {
  actio_actor *sup = fan_sup(-1, 4);
  actio_actor *a = actio_sup_lookup(sup, "a");
  const char *one[] = {"a"}, *unknown[] = {"a", "nobody"}, *null_name[] = {NULL};
  actio_sup_fanout_opts bad_policy = {.policy = (actio_gather_policy)7},
                        bad_spread = {.spread = (actio_sup_spread)7},
                        by = {.spread = ACTIO_SPREAD_BY_INDEX};
  actio_future *g = NULL;
  ck_assert_int_eq(actio_sup_fanout(sup, one, 1, fan_calls, 0, NULL, &g), ACTIO_EINVAL);
  ck_assert_int_eq(actio_sup_fanout(sup, one, 1, NULL, 4, NULL, &g), ACTIO_EINVAL);
  ck_assert_int_eq(actio_sup_fanout(sup, unknown, 2, fan_calls, 4, NULL, &g), ACTIO_ENONAME);
  ck_assert_int_eq(actio_sup_fanout(sup, NULL, 1, fan_calls, 4, NULL, &g), ACTIO_EINVAL);
  ck_assert_int_eq(actio_sup_fanout(sup, one, 0, fan_calls, 4, NULL, &g), ACTIO_EINVAL);
  ck_assert_int_eq(actio_sup_fanout(sup, null_name, 1, fan_calls, 4, NULL, &g), ACTIO_EINVAL);
  ck_assert_int_eq(actio_sup_fanout(NULL, one, 1, fan_calls, 4, NULL, &g), ACTIO_EINVAL);
  ck_assert_int_eq(actio_sup_fanout(a, one, 1, fan_calls, 4, NULL, &g), ACTIO_EINVAL);
  ck_assert_int_eq(actio_sup_fanout(sup, one, 1, fan_calls, 4, NULL, NULL), ACTIO_EINVAL);
  ck_assert_int_eq(actio_sup_fanout(sup, one, 1, fan_calls, 4, &bad_policy, &g), ACTIO_EINVAL);
  ck_assert_int_eq(actio_sup_fanout(sup, one, 1, fan_calls, 4, &bad_spread, &g), ACTIO_EINVAL);
  fan_calls[3].to = 1; /* one child named: index 1 is out of range */
  ck_assert_int_eq(actio_sup_fanout(sup, one, 1, fan_calls, 4, &by, &g), ACTIO_EINVAL);
  ck_assert_ptr_null(g); /* no call made one */
  for (int i = 0; i < 4; i++)
    ck_assert_int_eq(atomic_load(&fan_handled[i]), 0); /* nor sent anything */
  /* A child stopped for good is no name to send to. */
  ck_assert_int_eq(stop_child(sup, "a", NULL), 0);
  ck_assert_int_eq(actio_sup_fanout(sup, one, 1, fan_calls, 4, NULL, &g), ACTIO_ENONAME);
  ck_assert_ptr_null(g);
  ck_assert_str_eq(actio_strerror(ACTIO_ERESTARTED),
                   "the child restarted while the request was in flight");
}
END_TEST

/* ---- a child restarted again and again ---- */

/* Sanitizers: fewer restarts (each costs many times more), and ASan keeps
 * freed memory in quarantine, so RSS says nothing of what was freed. */
#if defined(__SANITIZE_ADDRESS__)
#define ASAN_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ASAN_BUILD 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define TSAN_BUILD 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TSAN_BUILD 1
#endif
#endif
#if defined(ASAN_BUILD) || defined(TSAN_BUILD)
enum { CHURN_RESTARTS = 10000 };
#else
enum { CHURN_RESTARTS = 100000 };
#endif
/* Children churned at once (see test_restarts_free_old_instances). */
enum { CHURN_KIDS = 50 };

static _Atomic uint64_t churn_freed; /* instances freed (their state_free) */
static sem_t churn_restarted;

static void churn_state_free(void *state) {
  (void)state;
  atomic_fetch_add(&churn_freed, 1);
}

static const actio_behavior churn_behavior = {.handle = child_handle};

static int churn_start(actio_runtime *r, void *arg, actio_actor **out) {
  (void)arg;
  actio_actor_opts o = {.name = "churn", .capacity = 16, .state_free = churn_state_free};
  return actio_actor_spawn(r, &churn_behavior, &o, out);
}

static void churn_event(void *arg, const actio_sup_event *ev) {
  (void)arg;
  if (ev->kind == ACTIO_SUP_CHILD_RESTARTED)
    sem_post(&churn_restarted);
}

/* Resident memory, in kB. */
static long rss_kb(void) {
  long pages = 0, resident = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  ck_assert_ptr_nonnull(f);
  ck_assert_int_eq(fscanf(f, "%ld %ld", &pages, &resident), 2);
  fclose(f);
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Prints the growth of resident memory since `before` (taken after `warm`
 * of the CHURN_RESTARTS) and holds it under 16 MB of allocator noise;
 * not under ASan, whose quarantine keeps what was freed. */
static void rss_check(const char *what, const char *rounds, int warm, long before) {
  long after = rss_kb();
  printf("%s: %d %s, RSS %ld kB after %d, %ld kB after all (%+ld kB)\n", what,
         CHURN_RESTARTS, rounds, before, warm, after, after - before);
#ifndef ASAN_BUILD
  ck_assert_int_le(after - before, 16 * 1024);
#endif
}

/* A supervisor of `kids` children, "churn" alone or "churn0".."churn<kids-1>",
 * restarted with no pause, and an intensity no churn reaches (1000 in
 * 1 ms); the counters reset. */
static actio_actor *churn_sup_of(int kids) {
  ck_assert_int_eq(sem_init(&churn_restarted, 0, 0), 0);
  atomic_store(&churn_freed, 0);
  actio_child_spec kid[CHURN_KIDS];
  char names[CHURN_KIDS][16];
  ck_assert_int_le(kids, CHURN_KIDS);
  for (int k = 0; k < kids; k++) {
    snprintf(names[k], sizeof names[k], kids == 1 ? "churn" : "churn%d", k);
    kid[k] = (actio_child_spec){.name = names[k], .start = churn_start};
  }
  actio_sup_opts o = {.name = "churner", .max_restarts = 1000, .period_ms = 1,
                      .backoff_ms = -1, .monitor = churn_event};
  actio_actor *sup;
  ck_assert_int_eq(actio_sup_spawn(rt, &o, kid, (size_t)kids, &sup), 0);
  return sup;
}

static actio_actor *churn_sup(void) { return churn_sup_of(1); }

/* Waits for n restarts reported. */
static void churn_wait(int n) {
  for (int k = 0; k < n; k++)
    while (sem_wait(&churn_restarted) != 0)
      ; /* EINTR */
}

START_TEST(test_restarts_free_old_instances) {
  /* Children restarted CHURN_RESTARTS times in all: each replaced instance
   * is freed by the time its restart is reported (nothing else reaches
   * it), so memory stays flat after a warm-up. CHURN_KIDS children crash
   * at once each round, so that their restarts share the thread hand-offs
   * (a crash, the supervisor's worker, the report: each a wake-up that
   * waits its turn on a busy core) that one restart at a time pays for
   * each; the supervisor still restarts them one by one. */
  actio_actor *sup = churn_sup_of(CHURN_KIDS);
  actio_actor *addr[CHURN_KIDS];
  for (int k = 0; k < CHURN_KIDS; k++) {
    char name[16];
    snprintf(name, sizeof name, "churn%d", k);
    ck_assert_ptr_nonnull(addr[k] = actio_sup_lookup(sup, name));
  }
  int rounds = CHURN_RESTARTS / CHURN_KIDS, warm = rounds / 10;
  long before = 0;
  for (int i = 1; i <= rounds; i++) {
    for (int k = 0; k < CHURN_KIDS; k++)
      ck_assert_int_eq(actio_tell(addr[k], (void *)CRASH, -1), 0);
    churn_wait(CHURN_KIDS);
    ck_assert_uint_eq(atomic_load(&churn_freed), (uint64_t)i * CHURN_KIDS);
    if (i == warm)
      before = rss_kb();
  }
  /* Kept instances would cost over 4 kB each: 360 MB here (36 MB under
   * the sanitizers) after the warm-up, against a bound of 16 MB. */
  rss_check("supervisor churn", "restarts", warm * CHURN_KIDS, before);
  for (int k = 0; k < CHURN_KIDS; k++)
    alive(addr[k]);
  actio_sup_stats st;
  actio_sup_stats_get(sup, &st);
  ck_assert_uint_eq(st.restarts, CHURN_RESTARTS);
  sem_destroy(&churn_restarted);
}
END_TEST

START_TEST(test_stops_free_children) {
  /* Children started and stopped for good CHURN_RESTARTS times in all:
   * their addresses and last instances are freed by the time their stops
   * are reported (nothing else holds them), so memory stays flat after a
   * warm-up. CHURN_KIDS at a time, as above: started together, then
   * stopped together, by name or by address. */
  actio_actor *sup = churn_sup_of(0);
  int rounds = CHURN_RESTARTS / CHURN_KIDS, warm = rounds / 10;
  long before = 0;
  for (int i = 1; i <= rounds; i++) {
    char names[CHURN_KIDS][16];
    actio_future *f[CHURN_KIDS];
    actio_actor *addr[CHURN_KIDS];
    for (int k = 0; k < CHURN_KIDS; k++) {
      snprintf(names[k], sizeof names[k], "tenant%d", k);
      actio_child_spec spec = {.name = names[k], .start = churn_start};
      ck_assert_int_eq(actio_sup_start_child(sup, &spec, &f[k]), 0);
    }
    for (int k = 0; k < CHURN_KIDS; k++) {
      ck_assert_int_eq(actio_future_wait(f[k], -1), 0);
      ck_assert_ptr_nonnull(addr[k] = actio_future_value(f[k]));
      actio_future_unref(f[k]);
    }
    if (i % 20 == 1)
      alive(addr[i % CHURN_KIDS]); /* now and then, with a request timed in its metrics */
    for (int k = 0; k < CHURN_KIDS; k++)
      ck_assert_int_eq((k + i) % 2 ? actio_sup_stop_child(sup, names[k], &f[k])
                                   : actio_sup_stop_child_at(sup, addr[k], &f[k]),
                       0);
    for (int k = 0; k < CHURN_KIDS; k++) {
      ck_assert_int_eq(actio_future_wait(f[k], -1), 0);
      actio_future_unref(f[k]);
    }
    ck_assert_uint_eq(atomic_load(&churn_freed), (uint64_t)i * CHURN_KIDS);
    if (i == warm)
      before = rss_kb();
  }
  /* A kept address and instance would cost over 3 kB a child: 270 MB here
   * (27 MB under the sanitizers) after the warm-up. */
  rss_check("supervisor start/stop", "children", warm * CHURN_KIDS, before);
  ck_assert_ptr_null(actio_sup_lookup(sup, "tenant0"));
  actio_sup_stats st;
  actio_sup_stats_get(sup, &st);
  ck_assert_uint_eq(st.restarts, 0);
  sem_destroy(&churn_restarted);
}
END_TEST

/* Asks the churning child PINGs until told to stop; counts them. */
typedef struct churn_sender {
  actio_actor *addr;
  _Atomic int *stop;
  int asked, answered;
} churn_sender;

static void *churn_send(void *arg) {
  churn_sender *cs = arg;
  while (!atomic_load(cs->stop)) {
    actio_future *f;
    ck_assert_int_eq(actio_ask(cs->addr, (void *)PING, -1, &f), 0);
    cs->asked++;
    /* Drained by the instance that took it, or answered by a new one. */
    if (actio_future_wait(f, -1) == 0 && actio_future_value(f) != NULL)
      cs->answered++;
    actio_future_unref(f);
  }
  return NULL;
}

START_TEST(test_restarts_under_sends) {
  /* Senders ask through the address while the child is restarted again
   * and again: every ask is accepted and answered, and every replaced
   * instance is freed once the senders are done (the pins and the
   * requests' references held it meanwhile). */
  enum { THREADS = 3, RESTARTS = CHURN_RESTARTS / 100 };
  actio_actor *sup = churn_sup();
  _Atomic int stop = 0;
  churn_sender cs[THREADS];
  pthread_t t[THREADS];
  for (int i = 0; i < THREADS; i++)
    cs[i] = (churn_sender){.addr = actio_sup_lookup(sup, "churn"), .stop = &stop};
  start_threads(t, THREADS, churn_send, cs, sizeof cs[0]);
  for (int i = 0; i < RESTARTS; i++) {
    ck_assert_int_eq(actio_tell(cs[0].addr, (void *)CRASH, -1), 0);
    churn_wait(1);
  }
  atomic_store(&stop, 1);
  join_threads(t, THREADS);
  for (int i = 0; i < THREADS; i++)
    ck_assert_int_eq(cs[i].answered, cs[i].asked);
  /* A waiter may see its answer before the answering thread has run the
   * future's callbacks, the one that drops the request's reference. */
  while (atomic_load(&churn_freed) < RESTARTS)
    usleep(1000);
  ck_assert_uint_eq(atomic_load(&churn_freed), RESTARTS);
  sem_destroy(&churn_restarted);
}
END_TEST

/* A child that holds its first message at blocked_gate, with room for
 * two more in its mailbox; freed instances counted in churn_freed. */
static test_gate blocked_gate;

static int blocked_handle(actio_actor *self, void *worker, void *msg, actio_future *reply) {
  (void)self, (void)worker, (void)msg, (void)reply;
  gate_hold(&blocked_gate);
  return 0;
}

static const actio_behavior blocked_behavior = {.handle = blocked_handle};

static int blocked_start(actio_runtime *r, void *arg, actio_actor **out) {
  (void)arg;
  actio_actor_opts o = {.name = "blocked", .workers = 1, .capacity = 2,
                        .state_free = churn_state_free};
  return actio_actor_spawn(r, &blocked_behavior, &o, out);
}

typedef struct blocked_sender {
  actio_actor *addr;
  _Atomic int slot; /* announce_block's */
} blocked_sender;

static void *tell_blocked(void *arg) {
  /* Waits for room, its call through the address in progress while the
   * child is stopped for good: refused once the mailbox is closed, or
   * accepted just before (the stop sets its flag first, and the handler
   * let go makes room) and dropped by the stop. */
  blocked_sender *b = arg;
  announce_block(&b->slot);
  int rc = actio_tell(b->addr, (void *)PING, -1);
  ck_assert(rc == ACTIO_ECLOSED || rc == 0);
  return NULL;
}

START_TEST(test_stop_with_calls_in_progress) {
  /* Senders wait for room in the mailbox of a child stopped for good (they
   * called before the stop resolved): each is refused, and the address
   * and its instance are freed by whichever leaves last, the supervisor
   * or a sender, once all are out. */
  enum { THREADS = 3 };
  for (int round = 0; round < 20; round++) {
    actio_actor *sup = churn_sup();
    blocked_gate = (test_gate)TEST_GATE_INIT;
    actio_child_spec spec = {.name = "blocked", .start = blocked_start,
                             .stop = ACTIO_STOP_NOW};
    actio_future *f;
    ck_assert_int_eq(actio_sup_start_child(sup, &spec, &f), 0);
    ck_assert_int_eq(actio_future_wait(f, -1), 0);
    actio_actor *addr = actio_future_value(f);
    actio_future_unref(f);
    ck_assert_int_eq(actio_tell(addr, (void *)PING, -1), 0);
    gate_wait_held(&blocked_gate);
    int rc;
    while ((rc = actio_tell(addr, (void *)PING, 0)) == 0) /* fills the mailbox */
      ;
    ck_assert_int_eq(rc, ACTIO_EFULL);
    pthread_t t[THREADS];
    blocked_sender b[THREADS];
    for (int i = 0; i < THREADS; i++) {
      b[i].addr = addr;
      atomic_init(&b[i].slot, 0);
      ck_assert_int_eq(pthread_create(&t[i], NULL, tell_blocked, &b[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) /* their calls began before the stop */
      await_blocked(&b[i].slot);
    ck_assert_int_eq(actio_sup_stop_child_at(sup, addr, &f), 0);
    while (!actio__actor_stopping_now(addr)) /* the stop began: held by the gate */
      sched_yield();
    gate_open(&blocked_gate);
    ck_assert_int_eq(actio_future_wait(f, -1), 0);
    actio_future_unref(f);
    join_threads(t, THREADS);
    ck_assert_uint_eq(atomic_load(&churn_freed), 1); /* with its address */
    ck_assert_int_eq(actio_actor_stop(sup, ACTIO_STOP_DRAIN), 0);
    sem_destroy(&churn_restarted);
  }
}
END_TEST

START_TEST(test_stop_with_delayed_send) {
  /* A delayed send holds the address of a child stopped for good: it and
   * the child's last instance stay until the send ends (cancelled here),
   * then go. */
  actio_actor *sup = churn_sup();
  int rc;
  actio_actor *addr = start_child(sup, "later", churn_start, &rc);
  ck_assert_int_eq(rc, 0);
  actio_timer *tm;
  ck_assert_int_eq(actio_send_after(addr, (void *)PING, 3600 * 1000, &tm), 0);
  ck_assert_int_eq(stop_child(sup, "later", NULL), 0);
  ck_assert_uint_eq(atomic_load(&churn_freed), 0); /* held by the send */
  ck_assert_int_eq(actio_timer_cancel(tm), 0);
  actio_timer_release(tm);
  while (atomic_load(&churn_freed) < 1) /* the timer lets go on its thread */
    sched_yield();
  ck_assert_uint_eq(atomic_load(&churn_freed), 1);
  sem_destroy(&churn_restarted);
}
END_TEST

START_TEST(test_spawn_arguments) {
  /* Every spawn refuses what it cannot start, and makes nothing. */
  actio_actor *a = NULL;
  ck_assert_int_eq(actio_sup_spawn(rt, NULL, NULL, 2, &a), ACTIO_EINVAL);
  ck_assert_int_eq(actio_sup_spawn(NULL, NULL, NULL, 0, &a), ACTIO_EINVAL);
  ck_assert_int_eq(actio_sup_child(rt, NULL, &a), ACTIO_EINVAL);
  ck_assert_int_eq(actio_file_spawn(NULL, NULL, &a), ACTIO_EINVAL);
  ck_assert_int_eq(actio_http_spawn(NULL, NULL, &a), ACTIO_EINVAL);
  actio_db_opts o = {.dsn = "host=127.0.0.1"};
  ck_assert_int_eq(actio_db_spawn(NULL, &o, &a), ACTIO_EINVAL);
  ck_assert_int_eq(actio_db_spawn(rt, &o, NULL), ACTIO_EINVAL);
  ck_assert_ptr_null(a);
  /* Questions asked of what is not a supervisor, or of no name. */
  book_reset();
  actio_actor *sup;
  ck_assert_int_eq(actio_sup_spawn(rt, NULL, abc, 3, &sup), 0);
  ck_assert_ptr_null(actio_sup_lookup(sup, NULL));
  ck_assert_ptr_null(actio_sup_lookup(actio_sup_lookup(sup, "a"), "a"));
  actio_sup_stats st = {.failures = 9};
  actio_sup_stats_get(actio_sup_lookup(sup, "a"), &st);
  ck_assert_uint_eq(st.failures, 0);
}
END_TEST

/* ---- dead letters ---- */

static _Atomic int dead_seen;
static void on_dead(void *arg, actio_actor *to, void *msg) {
  (void)arg;
  (void)to;
  if ((uintptr_t)msg == PING)
    atomic_fetch_add(&dead_seen, 1);
}

START_TEST(test_dead_letters) {
  actio_runtime *r;
  actio_runtime_opts o = {.dead_letter = on_dead};
  ck_assert_int_eq(actio_runtime_create(&r, &o), 0);
  actio_actor *a;
  book_reset(); /* before its worker can log */
  ck_assert_int_eq(actio_actor_spawn(r, &child_behavior, &(actio_actor_opts){.name = "d"}, &a), 0);
  ck_assert_int_eq(actio_actor_stop(a, ACTIO_STOP_DRAIN), 0);
  actio_future *f = NULL;
  ck_assert_int_eq(actio_tell(a, (void *)PING, 0), ACTIO_ECLOSED);
  ck_assert_int_eq(actio_ask(a, (void *)PING, 0, &f), ACTIO_ECLOSED);
  ck_assert_ptr_null(f);
  ck_assert_int_eq(atomic_load(&dead_seen), 2);
  ck_assert_uint_eq(actio_runtime_dead_letters(r), 2);
  actio_runtime_destroy(r);
}
END_TEST

/* ---- metrics ---- */

static void signal_done(actio_future *f, void *arg) {
  (void)f;
  actio_future_resolve(arg, NULL, NULL);
  actio_future_unref(arg);
}

/* Waits until f's callbacks registered so far have run (the actor's
 * metrics are counted in one, after f is seen complete). */
static int settled(actio_future *f) {
  actio_future *s;
  ck_assert_int_eq(actio_future_create(&s), 0);
  actio_future_ref(s);
  ck_assert_int_eq(actio_future_on_done(f, signal_done, s), 0);
  ck_assert_int_eq(actio_future_wait(s, -1), 0);
  actio_future_unref(s);
  return actio_future_status(f);
}

START_TEST(test_metrics) {
  actio_actor *a;
  book_reset();
  ck_assert_int_eq(actio_actor_spawn(rt, &child_behavior, &(actio_actor_opts){.name = "m", .workers = 2}, &a), 0);
  actio_future *f[200];
  for (int i = 0; i < 200; i++)
    ck_assert_int_eq(actio_ask(a, (void *)(uintptr_t)(i % 50 == 0 ? 99 : PING), -1, &f[i]), 0);
  for (int i = 0; i < 200; i++) {
    ck_assert_int_eq(settled(f[i]), 0);
    actio_future_unref(f[i]);
  }
  /* A handler's return is counted after it completed its reply: wait for
   * the count, not for a time. */
  actio_actor_metrics m;
  for (actio_actor_metrics_get(a, &m); m.stats.handled < 200; actio_actor_metrics_get(a, &m))
    sched_yield();
  ck_assert_uint_eq(m.completed, 200);
  ck_assert_uint_eq(m.errors, 0);
  ck_assert_uint_eq(m.in_flight, 0);
  ck_assert_uint_eq(m.running, 0);
  ck_assert_uint_eq(m.waiting, 0);
  ck_assert_uint_eq(m.stats.handled, 200);
  ck_assert(m.p50_ms <= m.p90_ms && m.p90_ms <= m.p99_ms);
  ck_assert(m.p99_ms <= m.max_ms * 1.125 + 0.001);
  ck_assert_int_eq(m.failed, 0);
  /* A handler's fatal error shows as failed. */
  ck_assert_int_eq(actio_ask(a, (void *)CRASH, -1, &f[0]), 0);
  ck_assert_int_eq(settled(f[0]), ACTIO_EFATAL);
  actio_future_unref(f[0]);
  actio_actor_metrics_get(a, &m);
  ck_assert_uint_eq(m.errors, 1);
  ck_assert_int_eq(m.failed, 1);
  char *text = metrics_text(rt);
  ck_assert_ptr_nonnull(strstr(text, "completed"));
  ck_assert_ptr_nonnull(strstr(text, "\nm "));
  ck_assert_ptr_nonnull(strstr(text, "FAILED"));
  free(text);
}
END_TEST

/* ---- a group deadline ---- */

static int never(size_t i, void *arg, actio_future **out) {
  (void)i;
  if (arg != NULL)
    atomic_fetch_add((_Atomic int *)arg, 1);
  return actio_future_create(out); /* never completed by anyone */
}

START_TEST(test_map_within) {
  actio_future *g;
  _Atomic int calls = 0;
  ck_assert_int_eq(actio_map_within(rt, 10, 4, 50, never, &calls,
                                    ACTIO_GATHER_SETTLE_ALL, &g), 0);
  ck_assert_int_eq(actio_future_wait(g, -1), ACTIO_ETIMEDOUT);
  /* What started was bounded too, and cancelled; the rest never started.
   * How many started before the 50 ms ran out depends on the machine: at
   * most the window, and an item tried after the deadline (failed at once,
   * without a call) ends the starting. */
  size_t tried = 0, stored;
  do { /* an item whose start was under way when the map failed lands */
    stored = 0;
    for (size_t i = 0; i < 10; i++)
      stored += actio_gather_item(g, i) != NULL;
  } while (stored < (size_t)atomic_load(&calls));
  while (tried < 10 && actio_gather_item(g, tried) != NULL)
    tried++;
  ck_assert_uint_eq(tried, stored); /* no gap, and nothing more comes */
  ck_assert_int_le(atomic_load(&calls), 4);
  ck_assert_uint_le(tried, (size_t)atomic_load(&calls) + 1);
  for (size_t i = 0; i < 10; i++) {
    actio_future *it = actio_gather_item(g, i);
    if (i >= tried) {
      ck_assert_ptr_null(it);
      continue;
    }
    int st = actio_future_wait(it, -1);
    ck_assert(st == ACTIO_ECANCELED || st == ACTIO_ETIMEDOUT);
  }
  actio_future_unref(g);
  /* No time at all: nothing starts, and the group fails as timed out (not
   * "settled" with every item failed) whoever notices first. */
  for (int k = 0; k < 50; k++) {
    ck_assert_int_eq(actio_map_within(rt, 5, 0, 0, never, NULL, ACTIO_GATHER_SETTLE_ALL, &g), 0);
    ck_assert_int_eq(actio_future_wait(g, -1), ACTIO_ETIMEDOUT);
    actio_future_unref(g);
  }
  ck_assert_int_eq(actio_map_within(NULL, 1, 1, 10, never, NULL, ACTIO_GATHER_SETTLE_ALL, &g),
                   ACTIO_EINVAL);
}
END_TEST

/* ---- a database pool that lost its server for good ---- */

START_TEST(test_db_gives_up) {
  book_reset();
  actio_db_opts db = {.dsn = "host=127.0.0.1 port=1 dbname=x user=x",
                      .retry_budget_ms = 100, .reconnect_min_ms = 10,
                      .reconnect_max_ms = 20};
  actio_child_spec kids[] = {{.name = "db", .start = actio_db_child, .arg = &db}};
  actio_sup_opts o = {.name = "s", .max_restarts = 1, .period_ms = PERIOD_MS,
                      .backoff_ms = 1, .monitor = on_event};
  actio_actor *sup;
  ck_assert_int_eq(actio_sup_spawn(rt, &o, kids, 1, &sup), 0);
  char log[4096];
  book_wait(4, log, sizeof log);
  ck_assert_str_eq(log, "failed:db restarted:db failed:db gave-up:db");
  ck_assert_int_eq(actio_actor_stop(sup, ACTIO_STOP_DRAIN), 0); /* see intensity */
  ck_assert_int_eq(actio_actor_failed(sup), 1);
}
END_TEST

static Suite *sup_suite(void) {
  Suite *s = suite_create("supervisor");
  TCase *tc = tcase_with_timeout("strategies", 60);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_one_for_one);
  tcase_add_test(tc, test_one_for_all);
  tcase_add_test(tc, test_rest_for_one);
  tcase_add_test(tc, test_intensity);
  tcase_add_test(tc, test_nested);
  tcase_add_test(tc, test_temporary_and_stop_order);
  tcase_add_test(tc, test_temporary_with_one_for_all);
  tcase_add_test(tc, test_restart_that_fails);
  tcase_add_test(tc, test_child_failed_as_it_started);
  tcase_add_test(tc, test_failure_with_mailbox_full);
  tcase_add_test(tc, test_dynamic_children);
  tcase_add_test(tc, test_dynamic_child_arguments);
  tcase_add_test(tc, test_names_and_monitors_of_children);
  tcase_add_test(tc, test_dynamic_child_when_stopping);
  tcase_add_test(tc, test_spawn_arguments);
  tcase_add_test(tc, test_start_failure);
  suite_add_tcase(s, tc);
  tc = tcase_with_timeout("runtime", 60);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_dead_letters);
  tcase_add_test(tc, test_metrics);
  tcase_add_test(tc, test_map_within);
  tcase_add_test(tc, test_db_gives_up);
  suite_add_tcase(s, tc);
  tc = tcase_with_timeout("fanout", 300);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_fanout_child_killed_mid_way);
  tcase_add_test(tc, test_fanout_deadline_during_restart);
  tcase_add_test(tc, test_fanout_cancelled);
  tcase_add_test(tc, test_fanout_spread);
  tcase_add_test(tc, test_fanout_arguments);
  suite_add_tcase(s, tc);
  tc = tcase_with_timeout("churn", 600);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_restarts_free_old_instances);
  tcase_add_test(tc, test_restarts_under_sends);
  tcase_add_test(tc, test_stops_free_children);
  tcase_add_test(tc, test_stop_with_calls_in_progress);
  tcase_add_test(tc, test_stop_with_delayed_send);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return run_suite(sup_suite()); }

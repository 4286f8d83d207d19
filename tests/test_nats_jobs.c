/* test_nats_jobs.c: JetStream work queues (actio/nats.h: streams, jobs,
 * workers) against a real 3-node nats-server cluster started by
 * tests/nats_server.sh, its stores under the build directory. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>

#include "actors/core/actor_internal.h"
#include "actors/nats/nats_internal.h"
#include "nats_server.h"
#include "pg_server.h"
#include "test_util.h"

static char servers_dir[512];
static char js_urls[512], js_url[3][128];

static actio_runtime *rt;
static atomic_int stream_no; /* each test's streams are its own */

static void setup(void) { ck_assert_int_eq(actio_runtime_create(&rt, NULL), 0); }
static void teardown(void) { actio_runtime_destroy(rt); }

static actio_actor *connect_to(const char *url) {
  actio_actor *c;
  char err[256] = "";
  actio_nats_opts o = {.url = url, .errbuf = err, .errbuf_size = sizeof err,
                       .max_reconnect = -1, .reconnect_wait_ms = 100};
  int rc = actio_nats_spawn(rt, &o, &c);
  ck_assert_msg(rc == 0, "connect: %s: %s", actio_err_name(rc), err);
  return c;
}

/* A stream made for one test: "T<n>" on "t<n>.>"; replicas r; the cluster
 * may still be electing its JetStream leader: tried until it is there. */
static int make_stream(actio_actor *c, char *name, size_t len, int replicas, int limits,
                       const char *subjects) {
  int n = atomic_fetch_add(&stream_no, 1);
  snprintf(name, len, "T%d_%d", n, (int)getpid());
  char subj[64];
  snprintf(subj, sizeof subj, "t%d_%d.>", n, (int)getpid());
  actio_nats_stream_opts o = {.name = name, .subjects = subjects ? subjects : subj,
                              .replicas = replicas, .limits = limits};
  char err[256] = "";
  int rc;
  int64_t tries = 0;
  while ((rc = actio_nats_stream_ensure(c, &o, err, sizeof err)) != 0) {
    ck_assert_msg(rc == ACTIO_EJETSTREAM || rc == ACTIO_ETIMEDOUT, "stream %s: %s: %s", name,
                  actio_err_name(rc), err);
    ck_assert_msg(++tries < 1200, "stream %s never made: %s", name, err);
    nanosleep(&(struct timespec){0, 100000000}, NULL);
  }
  return n;
}

static uint64_t stream_msgs(actio_actor *c, const char *name) {
  actio_nats_stream_info info;
  int rc = actio_nats_stream_info_get(c, name, &info);
  return rc == 0 ? info.msgs : UINT64_MAX;
}

/* ---- the worker's actor ---- */

#define MAX_IDS 2048

/* Does jobs: each job's data is its id (a number). Fails a job while its
 * deliveries are at most fail_until, always when its id is `poison`;
 * holds the replies while hold is set. Counts per id. */
typedef struct jobber {
  int fail_until;
  int poison;                /* -1: none */
  atomic_int hold;
  pthread_mutex_t mu;
  actio_future *held[256];
  atomic_int nheld;
  atomic_int handled, succeeded;
  atomic_uint_fast64_t max_deliveries_seen;
} jobber;

static atomic_int seen[MAX_IDS], done_count[MAX_IDS];
static atomic_int done_total;
/* Each id's stream sequence when first done; ids done again at that same
 * sequence (delivered again) or at another (stored twice). */
static _Atomic uint64_t seq_of[MAX_IDS];
static atomic_int again_same_seq, again_other_seq;

static void counts_reset(void) {
  for (int i = 0; i < MAX_IDS; i++) {
    atomic_store(&seen[i], 0);
    atomic_store(&done_count[i], 0);
    atomic_store(&seq_of[i], 0);
  }
  atomic_store(&done_total, 0);
  atomic_store(&again_same_seq, 0);
  atomic_store(&again_other_seq, 0);
}

static int job_id(const actio_nats_msg *m) {
  size_t len;
  const char *data = actio_nats_msg_data(m, &len);
  char buf[16];
  ck_assert_uint_lt(len, sizeof buf);
  memcpy(buf, data, len);
  buf[len] = '\0';
  return atoi(buf);
}

static int do_job(actio_actor *self, void *worker, void *msg, actio_future *reply) {
  (void)worker;
  jobber *j = actio_actor_state(self);
  actio_nats_msg *m = msg;
  int id = job_id(m);
  uint64_t d = actio_nats_msg_deliveries(m);
  ck_assert_uint_ge(d, 1);
  ck_assert_uint_gt(actio_nats_msg_sequence(m), 0);
  uint64_t prev = atomic_load(&j->max_deliveries_seen);
  while (d > prev && !atomic_compare_exchange_weak(&j->max_deliveries_seen, &prev, d)) {
  }
  atomic_fetch_add(&seen[id % MAX_IDS], 1);
  atomic_fetch_add(&j->handled, 1);
  if (id == j->poison || (int)d <= j->fail_until)
    return actio_future_fail(reply, -ERANGE, "job %d failed at delivery %d", id, (int)d), 0;
  pthread_mutex_lock(&j->mu);
  int hold = atomic_load(&j->hold);
  if (hold) {
    actio_future_ref(reply);
    j->held[atomic_fetch_add(&j->nheld, 1)] = reply;
  }
  pthread_mutex_unlock(&j->mu);
  if (hold)
    return 0;
  uint64_t first = 0, seq = actio_nats_msg_sequence(m);
  if (!atomic_compare_exchange_strong(&seq_of[id % MAX_IDS], &first, seq))
    atomic_fetch_add(first == seq ? &again_same_seq : &again_other_seq, 1);
  atomic_fetch_add(&done_count[id % MAX_IDS], 1);
  atomic_fetch_add(&j->succeeded, 1);
  atomic_fetch_add(&done_total, 1);
  actio_future_resolve(reply, NULL, NULL);
  return 0;
}

static const actio_behavior jobber_behavior = {.handle = do_job};

static actio_actor *spawn_jobber(jobber *j, const char *name) {
  memset(j, 0, sizeof *j);
  j->poison = -1;
  pthread_mutex_init(&j->mu, NULL);
  actio_actor *a;
  actio_actor_opts o = {.name = name, .state = j};
  ck_assert_int_eq(actio_actor_spawn(rt, &jobber_behavior, &o, &a), 0);
  return a;
}

/* Resolves (done: counted) or drops the replies j held. */
static void release_held(jobber *j, int complete) {
  pthread_mutex_lock(&j->mu);
  atomic_store(&j->hold, 0);
  int n = atomic_exchange(&j->nheld, 0);
  pthread_mutex_unlock(&j->mu);
  for (int i = 0; i < n; i++) {
    if (complete && actio_future_resolve(j->held[i], NULL, NULL) == 0) {
      atomic_fetch_add(&j->succeeded, 1);
      atomic_fetch_add(&done_total, 1);
    }
    actio_future_unref(j->held[i]);
  }
}

static actio_nats_worker *start_worker(actio_actor *c, actio_actor *a,
                                       const actio_nats_worker_opts *o) {
  actio_nats_worker *w;
  char err[256] = "";
  int rc;
  /* A busy cluster may take longer than a round trip's timeout to make
   * the consumer: tried again (it may be made already: then taken). */
  for (int tries = 0; (rc = actio_nats_worker_create(c, a, o, &w, err, sizeof err)) != 0;
       tries++) {
    ck_assert_msg((rc == ACTIO_ETIMEDOUT || rc == ACTIO_EJETSTREAM) && tries < 12,
                  "worker: %s: %s", actio_err_name(rc), err);
  }
  return w;
}

/* Publishes jobs first..first+n-1 on subject prefix `subj` (ids as data
 * and as message ids), each again with the same id until it is stored. */
static void publish_jobs(actio_actor *c, const char *subj, int first, int n) {
  actio_future **fs = calloc((size_t)n, sizeof *fs);
  char subject[96], data[16], id[96];
  int last = 0;
  for (int pass = 0;; pass++) {
    /* A stream leader lost is elected again within seconds; meanwhile
     * publishes find no responders: try again after a pause, for two
     * minutes at most. */
    ck_assert_msg(pass < 1200, "publishing never went through: %s", actio_err_name(last));
    if (pass > 0)
      nanosleep(&(struct timespec){0, 100000000}, NULL);
    int failed = 0;
    for (int i = 0; i < n; i++) {
      if (fs[i] != NULL && actio_future_status(fs[i]) == 0)
        continue;
      actio_future_unref(fs[i]);
      snprintf(subject, sizeof subject, "%s.%d", subj, (first + i) % 7);
      snprintf(data, sizeof data, "%d", first + i);
      snprintf(id, sizeof id, "%s-%d", subj, first + i);
      actio_nats_job job = {.subject = subject, .data = data, .len = strlen(data), .id = id,
                            .timeout_ms = 5000};
      int rc;
      while ((rc = actio_nats_job_publish(c, &job, &fs[i])) == ACTIO_EFULL)
        actio_future_wait(fs[i > 0 ? i - 1 : 0], -1);
      ck_assert_msg(rc == 0, "publish %d: %s", first + i, actio_err_name(rc));
    }
    for (int i = 0; i < n; i++) {
      int rc = actio_future_wait(fs[i], -1);
      if (rc != 0) {
        ck_assert_msg(rc == ACTIO_ETIMEDOUT || rc == ACTIO_ENATS || rc == ACTIO_EJETSTREAM ||
                          rc == ACTIO_ENOSTREAM,
                      "publish %d: %s: %s", first + i, actio_err_name(rc),
                      actio_future_errmsg(fs[i]));
        last = rc;
        failed++;
      }
    }
    if (failed == 0)
      break;
  }
  for (int i = 0; i < n; i++)
    actio_future_unref(fs[i]);
  free(fs);
}

static void subject_of(int n, char *out, size_t len) {
  snprintf(out, len, "t%d_%d", n, (int)getpid());
}

/* A test's opening: counts reset, a connection to the cluster, a stream
 * of its own (name, its subjects' prefix subj) with n jobs in it. */
static actio_actor *open_queue(char *name, char *subj, size_t len, int n) {
  counts_reset();
  actio_actor *c = connect_to(js_urls);
  subject_of(make_stream(c, name, len, 1, 0, NULL), subj, len);
  publish_jobs(c, subj, 0, n);
  return c;
}

/* ---- the tests ---- */

START_TEST(jobs_published_and_done_exactly_once) {
  counts_reset();
  actio_actor *pc = connect_to(js_urls), *c1 = connect_to(js_url[0]), *c2 = connect_to(js_url[1]);
  char name[64], subj[64];
  subject_of(make_stream(pc, name, sizeof name, 1, 0, NULL), subj, sizeof subj);
  enum { N = 500 };
  publish_jobs(pc, subj, 0, N);
  ck_assert_uint_eq(stream_msgs(pc, name), N);
  /* Published again with the same id: stored once, at the same place. */
  char subject[160], id[160];
  snprintf(subject, sizeof subject, "%s.0", subj);
  snprintf(id, sizeof id, "%s-%d", subj, 0);
  actio_nats_job again = {.subject = subject, .data = "0", .len = 1, .id = id};
  actio_future *f;
  ck_assert_int_eq(actio_nats_job_publish(pc, &again, &f), 0);
  ck_assert_int_eq(actio_future_wait(f, -1), 0);
  ck_assert_uint_eq((uintptr_t)actio_future_value(f), 1);
  actio_future_unref(f);
  ck_assert_uint_eq(stream_msgs(pc, name), N);

  jobber j1, j2;
  actio_actor *a1 = spawn_jobber(&j1, "jobber1"), *a2 = spawn_jobber(&j2, "jobber2");
  actio_nats_worker_opts o = {.stream = name, .consumer = "workers", .batch = 16};
  actio_nats_worker *w1 = start_worker(c1, a1, &o), *w2 = start_worker(c2, a2, &o);
  WAIT_FOR(atomic_load(&done_total) == N);
  for (int i = 0; i < N; i++)
    ck_assert_msg(atomic_load(&done_count[i]) == 1, "job %d done %d times", i,
                  atomic_load(&done_count[i]));
  WAIT_FOR(stream_msgs(pc, name) == 0); /* every ack reached the stream */
  ck_assert_int_eq(actio_nats_worker_stop(w1), 0);
  ck_assert_int_eq(actio_nats_worker_stop(w2), 0);
  actio_nats_worker_stats s1, s2;
  actio_nats_worker_stats_get(w1, &s1);
  actio_nats_worker_stats_get(w2, &s2);
  ck_assert_uint_eq(s1.acked + s2.acked, N);
  ck_assert_uint_eq(s1.fetched + s2.fetched, N);
  ck_assert_uint_eq(s1.redelivered + s2.redelivered, 0);
  ck_assert_uint_eq(s1.in_flight + s2.in_flight, 0);
  actio_nats_worker_destroy(w1);
  actio_nats_worker_destroy(w2);
  ck_assert_int_eq(actio_nats_stream_delete(pc, name), 0);
}
END_TEST

START_TEST(a_failed_job_is_naked_and_done_again) {
  enum { N = 50 };
  char name[64], subj[64];
  actio_actor *c = open_queue(name, subj, sizeof name, N);
  jobber j;
  actio_actor *a = spawn_jobber(&j, "flaky");
  j.fail_until = 1; /* each job's first delivery fails */
  actio_nats_worker_opts o = {.stream = name, .consumer = "w", .batch = 8, .nak_delay_ms = 5};
  actio_nats_worker *w = start_worker(c, a, &o);
  WAIT_FOR(atomic_load(&done_total) == N);
  for (int i = 0; i < N; i++) {
    ck_assert_int_eq(atomic_load(&done_count[i]), 1);
    ck_assert_int_eq(atomic_load(&seen[i]), 2);
  }
  ck_assert_int_eq(actio_nats_worker_stop(w), 0);
  actio_nats_worker_stats s;
  actio_nats_worker_stats_get(w, &s);
  ck_assert_uint_eq(s.naked, N);
  ck_assert_uint_eq(s.redelivered, N);
  ck_assert_uint_eq(s.acked, N);
  ck_assert_uint_eq(s.dead, 0);
  ck_assert_uint_eq(atomic_load(&j.max_deliveries_seen), 2);
  WAIT_FOR(stream_msgs(c, name) == 0);
  actio_nats_worker_destroy(w);
  ck_assert_int_eq(actio_nats_stream_delete(c, name), 0);
}
END_TEST

/* The dead letters' reader: checks what a dead letter carries. */
static atomic_int dead_read;
static int read_dead(actio_actor *self, void *worker, void *msg, actio_future *reply) {
  (void)self;
  (void)worker;
  actio_nats_msg *m = msg;
  ck_assert_int_eq(job_id(m), 7);
  ck_assert_str_eq(actio_nats_msg_header(m, "Actio-Job-Deliveries"), "3");
  ck_assert_int_eq(atoi(actio_nats_msg_header(m, "Actio-Error")), -ERANGE);
  ck_assert_ptr_nonnull(strstr(actio_nats_msg_header(m, "Actio-Message"), "failed at delivery 3"));
  ck_assert_ptr_nonnull(actio_nats_msg_header(m, "Actio-Job-Subject"));
  ck_assert_ptr_nonnull(strstr(actio_nats_msg_header(m, "Actio-Job-Id"), "-7"));
  ck_assert_str_eq(actio_nats_msg_header(m, "Trace"), "abc");
  atomic_fetch_add(&dead_read, 1);
  actio_future_resolve(reply, NULL, NULL);
  return 0;
}
static const actio_behavior dead_reader = {.handle = read_dead};

START_TEST(past_max_deliveries_a_job_goes_to_the_dead_letters) {
  counts_reset();
  atomic_store(&dead_read, 0);
  actio_actor *c = connect_to(js_urls);
  char name[64], subj[64], dname[64], dsubj[96];
  subject_of(make_stream(c, name, sizeof name, 1, 0, NULL), subj, sizeof subj);
  snprintf(dsubj, sizeof dsubj, "dead.%s", name);
  make_stream(c, dname, sizeof dname, 1, 1, dsubj);
  publish_jobs(c, subj, 0, 5);
  char subject[160], id[160];
  snprintf(subject, sizeof subject, "%s.x", subj);
  snprintf(id, sizeof id, "%s-7", subj);
  const char *h[] = {"Trace", "abc", NULL};
  actio_nats_job poison = {.subject = subject, .data = "7", .len = 1, .id = id, .headers = h};
  actio_future *f;
  ck_assert_int_eq(actio_nats_job_publish(c, &poison, &f), 0);
  ck_assert_int_eq(actio_future_wait(f, -1), 0);
  actio_future_unref(f);

  jobber j;
  actio_actor *a = spawn_jobber(&j, "poisoned");
  j.poison = 7;
  actio_nats_worker_opts o = {.stream = name, .consumer = "w", .max_deliveries = 3,
                              .nak_delay_ms = 5, .dead_letter = dsubj};
  actio_nats_worker *w = start_worker(c, a, &o);
  actio_nats_worker_stats s;
  WAIT_FOR((actio_nats_worker_stats_get(w, &s), s.dead == 1 && s.acked == 5));
  ck_assert_int_eq(atomic_load(&seen[7]), 3); /* asked 3 times, no more */
  ck_assert_uint_eq(s.naked, 2);
  WAIT_FOR(stream_msgs(c, name) == 0);
  ck_assert_uint_eq(stream_msgs(c, dname), 1);
  /* The dead letter, read back by a worker of its own. */
  actio_actor *r;
  actio_actor_opts ro = {.name = "dead-reader"};
  ck_assert_int_eq(actio_actor_spawn(rt, &dead_reader, &ro, &r), 0);
  actio_nats_worker_opts dro = {.stream = dname, .consumer = "reader"};
  actio_nats_worker *dw = start_worker(c, r, &dro);
  WAIT_FOR(atomic_load(&dead_read) == 1);
  ck_assert_int_eq(actio_nats_worker_stop(dw), 0);
  actio_nats_worker_destroy(dw);
  ck_assert_int_eq(actio_nats_worker_stop(w), 0);
  actio_nats_worker_destroy(w);
  ck_assert_int_eq(actio_nats_stream_delete(c, name), 0);
  ck_assert_int_eq(actio_nats_stream_delete(c, dname), 0);
}
END_TEST

START_TEST(a_worker_that_crashes_before_its_ack_the_job_is_done_elsewhere) {
  counts_reset();
  actio_actor *c1 = connect_to(js_url[0]), *c2 = connect_to(js_url[2]);
  char name[64], subj[64];
  subject_of(make_stream(c1, name, sizeof name, 1, 0, NULL), subj, sizeof subj);
  enum { N = 3 };
  publish_jobs(c1, subj, 0, N);
  jobber j1, j2;
  actio_actor *a1 = spawn_jobber(&j1, "crashing"), *a2 = spawn_jobber(&j2, "survivor");
  atomic_store(&j1.hold, 1);
  actio_nats_worker_opts o = {.stream = name, .consumer = "w", .ack_wait_ms = 1000};
  actio_nats_worker *w1 = start_worker(c1, a1, &o);
  WAIT_FOR(atomic_load(&j1.nheld) == N);
  actio_nats_worker_destroy(w1); /* the crash: no ack, no NAK */
  ck_assert_int_eq(atomic_load(&done_total), 0);
  actio_nats_worker *w2 = start_worker(c2, a2, &o);
  WAIT_FOR(atomic_load(&done_total) == N);
  for (int i = 0; i < N; i++)
    ck_assert_int_eq(atomic_load(&done_count[i]), 1);
  ck_assert_uint_eq(atomic_load(&j2.max_deliveries_seen), 2);
  release_held(&j1, 1); /* too late: the crashed worker's futures are cancelled */
  ck_assert_int_eq(atomic_load(&j1.succeeded), 0);
  ck_assert_int_eq(actio_nats_worker_stop(w2), 0);
  actio_nats_worker_stats s;
  actio_nats_worker_stats_get(w2, &s);
  ck_assert_uint_eq(s.redelivered, N);
  ck_assert_uint_eq(s.acked, N);
  WAIT_FOR(stream_msgs(c1, name) == 0);
  actio_nats_worker_destroy(w2);
  ck_assert_int_eq(actio_nats_stream_delete(c1, name), 0);
}
END_TEST

/* Stops w on a thread of its own: it returns once the jobs are drained. */
static void *stop_worker(void *arg) {
  actio_nats_worker_stop(arg);
  return NULL;
}

START_TEST(a_long_job_keeps_its_lease_and_a_stop_drains) {
  enum { N = 4 };
  char name[64], subj[64];
  actio_actor *c = open_queue(name, subj, sizeof name, N);
  jobber j, j2;
  actio_actor *a = spawn_jobber(&j, "slow"), *a2 = spawn_jobber(&j2, "idle");
  atomic_store(&j.hold, 1);
  actio_nats_worker_opts o = {.stream = name, .consumer = "w", .ack_wait_ms = 600,
                              .progress_ms = 100, .max_in_flight = N};
  actio_nats_worker *w = start_worker(c, a, &o);
  WAIT_FOR(atomic_load(&j.nheld) == N);
  /* A second worker on the queue gets nothing while the leases are kept,
   * for longer than several ack waits (the in-progress acks count it). */
  actio_nats_worker *w2 = start_worker(c, a2, &o);
  actio_nats_worker_stats s;
  WAIT_FOR((actio_nats_worker_stats_get(w, &s), s.progress >= 4 * N * 6));
  actio_nats_worker_stats s2;
  actio_nats_worker_stats_get(w2, &s2);
  ck_assert_uint_eq(s2.fetched, 0);
  ck_assert_uint_eq(s.fetched, N);
  /* The stop waits for the jobs in the actor, then acks them. */
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, stop_worker, w), 0);
  release_held(&j, 1);
  pthread_join(t, NULL);
  actio_nats_worker_stats_get(w, &s);
  ck_assert_uint_eq(s.acked, N);
  ck_assert_uint_eq(s.in_flight, 0);
  ck_assert_uint_eq(s.redelivered, 0);
  WAIT_FOR(stream_msgs(c, name) == 0);
  actio_nats_worker_stats_get(w2, &s2);
  ck_assert_uint_eq(s2.fetched, 0);
  actio_nats_worker_destroy(w);
  actio_nats_worker_destroy(w2);
  ck_assert_int_eq(actio_nats_stream_delete(c, name), 0);
}
END_TEST

START_TEST(bad_input_and_missing_streams) {
  actio_actor *c = connect_to(js_urls);
  actio_future *f;
  actio_nats_job job = {.subject = "no.stream.here", .data = "x", .len = 1};
  ck_assert_int_eq(actio_nats_job_publish(c, &job, &f), 0);
  ck_assert_int_eq(actio_future_wait(f, -1), ACTIO_ENOSTREAM);
  ck_assert_ptr_nonnull(strstr(actio_future_errmsg(f), "no.stream.here"));
  actio_future_unref(f);
  job.subject = "bad subject";
  ck_assert_int_eq(actio_nats_job_publish(c, &job, &f), ACTIO_ESUBJECT);
  job.subject = "a.*";
  ck_assert_int_eq(actio_nats_job_publish(c, &job, &f), ACTIO_ESUBJECT);
  job.subject = "a.b";
  job.id = "two\nlines";
  ck_assert_int_eq(actio_nats_job_publish(c, &job, &f), ACTIO_EINVAL);
  job.id = NULL;
  static char big[2 * 1024 * 1024];
  job.data = big;
  job.len = sizeof big;
  ck_assert_int_eq(actio_nats_job_publish(c, &job, &f), ACTIO_EPAYLOAD);
  ck_assert_int_eq(actio_nats_job_publish(c, NULL, &f), ACTIO_EINVAL);

  actio_nats_stream_opts so = {.name = "has.dot", .subjects = "x.>"};
  ck_assert_int_eq(actio_nats_stream_ensure(c, &so, NULL, 0), ACTIO_EINVAL);
  so.name = "OK";
  so.subjects = "x..y";
  ck_assert_int_eq(actio_nats_stream_ensure(c, &so, NULL, 0), ACTIO_ESUBJECT);
  so.subjects = "x.>";
  so.replicas = 9;
  ck_assert_int_eq(actio_nats_stream_ensure(c, &so, NULL, 0), ACTIO_EINVAL);
  actio_nats_stream_info info;
  ck_assert_int_eq(actio_nats_stream_info_get(c, "NOSUCH", &info), ACTIO_ENOSTREAM);
  ck_assert_int_eq(actio_nats_stream_delete(c, "NOSUCH"), ACTIO_ENOSTREAM);

  jobber j;
  actio_actor *a = spawn_jobber(&j, "unused");
  actio_nats_worker *w;
  char err[256] = "";
  actio_nats_worker_opts o = {.stream = "NOSUCH", .consumer = "w"};
  ck_assert_int_eq(actio_nats_worker_create(c, a, &o, &w, err, sizeof err), ACTIO_ENOSTREAM);
  ck_assert_ptr_nonnull(strstr(err, "NOSUCH"));
  o.consumer = "a.b";
  ck_assert_int_eq(actio_nats_worker_create(c, a, &o, &w, NULL, 0), ACTIO_EINVAL);
  o.consumer = "w";
  o.dead_letter = "x.*";
  ck_assert_int_eq(actio_nats_worker_create(c, a, &o, &w, NULL, 0), ACTIO_ESUBJECT);
  ck_assert_int_eq(actio_nats_worker_create(c, NULL, &o, &w, NULL, 0), ACTIO_EINVAL);
  actio_nats_worker_destroy(NULL);
  actio_nats_worker_stats s;
  actio_nats_worker_stats_get(NULL, &s);
  ck_assert_uint_eq(s.fetched, 0);

  /* A stopped connection refuses, and fails what waits for an ack. */
  ck_assert_int_eq(actio_actor_stop(c, ACTIO_STOP_DRAIN), 0);
  ck_assert_int_eq(actio_nats_job_publish(c, &(actio_nats_job){.subject = "a.b"}, &f),
                   ACTIO_ECLOSED);
}
END_TEST

/* How many of the ids 0..n-1 are done. */
static int ids_done(int n) {
  int k = 0;
  for (int i = 0; i < n; i++)
    k += atomic_load(&done_count[i]) > 0;
  return k;
}

/* Node n of the cluster: killed (SIGKILL), or started again. */
static void node(const char *verb, int n) {
  char arg[16];
  snprintf(arg, sizeof arg, "%d", n);
  ck_assert_int_eq(nats_server_sh(verb, servers_dir, arg), 0);
}

START_TEST(replicas_3_and_a_server_killed_mid_run_lose_no_job) {
  counts_reset();
  actio_actor *pc = connect_to(js_urls), *c1 = connect_to(js_urls), *c2 = connect_to(js_urls);
  char name[64], subj[64];
  subject_of(make_stream(pc, name, sizeof name, 3, 0, NULL), subj, sizeof subj);
  enum { N = 600 };
  publish_jobs(pc, subj, 0, N / 2);
  jobber j1, j2;
  actio_actor *a1 = spawn_jobber(&j1, "r3-1"), *a2 = spawn_jobber(&j2, "r3-2");
  actio_nats_worker_opts o = {.stream = name, .consumer = "w", .batch = 8,
                              .ack_wait_ms = 2000, .nak_delay_ms = 10, .max_deliveries = 100};
  actio_nats_worker *w1 = start_worker(c1, a1, &o), *w2 = start_worker(c2, a2, &o);
  WAIT_FOR(atomic_load(&done_total) >= N / 6);
  node("kill-node", 1); /* mid-run: a third of the jobs done, half published */
  publish_jobs(pc, subj, N / 2, N / 2);
  WAIT_FOR(ids_done(N) == N);
  WAIT_FOR(stream_msgs(pc, name) == 0);
  actio_nats_worker_stats s1, s2;
  actio_nats_worker_stats_get(w1, &s1);
  actio_nats_worker_stats_get(w2, &s2);
  int extra = 0;
  for (int i = 0; i < N; i++)
    extra += atomic_load(&done_count[i]) - 1;
  /* At least once: a job is done again when the server delivers it again
   * (an ack lost with the node), or when it was stored twice (a publish
   * retried across the stream leader's change: the new leader knows the
   * ids of the jobs it still keeps, not of those acked). */
  fprintf(stderr,
          "replicas 3, a node killed: %d jobs, none lost; done again: %d (%d delivered "
          "again, %d stored twice); %" PRIu64 " deliveries counted as redeliveries\n",
          N, extra, atomic_load(&again_same_seq), atomic_load(&again_other_seq),
          s1.redelivered + s2.redelivered);
  ck_assert_int_eq(extra, atomic_load(&again_same_seq) + atomic_load(&again_other_seq));
  ck_assert_uint_ge(s1.acked + s2.acked, N);
  ck_assert_int_eq(actio_nats_worker_stop(w1), 0);
  ck_assert_int_eq(actio_nats_worker_stop(w2), 0);
  actio_nats_worker_destroy(w1);
  actio_nats_worker_destroy(w2);
  node("restart-node", 1);
  int rc;
  WAIT_FOR((rc = actio_nats_stream_delete(pc, name)) == 0 || rc == ACTIO_ENOSTREAM);
}
END_TEST

/* Ids first..first+n-1 done exactly once each (once all are done); `when`
 * names the step in a failure. */
static void done_once(int first, int n, const char *when) {
  for (int64_t waited = 0; atomic_load(&done_total) < first + n; waited++) {
    ck_assert_msg(waited < 120000, "%s: %d of %d jobs done", when,
                  atomic_load(&done_total) - first, n);
    nanosleep(&(struct timespec){0, 1000000}, NULL);
  }
  for (int i = first; i < first + n; i++)
    ck_assert_msg(atomic_load(&done_count[i]) == 1, "%s: job %d done %d times", when, i,
                  atomic_load(&done_count[i]));
  ck_assert_int_eq(atomic_load(&done_total), first + n);
}

START_TEST(a_worker_follows_its_server_and_its_connection_restarted) {
  counts_reset();
  actio_actor *pc = connect_to(js_urls);
  char name[64], subj[64];
  subject_of(make_stream(pc, name, sizeof name, 1, 0, NULL), subj, sizeof subj);
  /* The worker's connection: node 1 alone, supervised (restarted as often
   * as this test fails it). */
  actio_nats_opts no = {.url = js_url[0], .max_reconnect = -1, .reconnect_wait_ms = 100};
  actio_actor *sup, *c = supervised_nats(rt, &no, 1000, &sup);
  jobber j;
  actio_actor *a = spawn_jobber(&j, "follower");
  actio_nats_worker_opts o = {.stream = name, .consumer = "w", .batch = 8};
  actio_nats_worker *w = start_worker(c, a, &o);
  enum { N = 60 };
  publish_jobs(pc, subj, 0, N);
  done_once(0, N, "first jobs");
  WAIT_FOR(stream_msgs(pc, name) == 0); /* every ack reached the stream */
  /* Its server restarts: cnats reconnects, and the worker pulls again. */
  node("kill-node", 1);
  node("restart-node", 1);
  actio_nats_stats ns;
  WAIT_FOR((actio_nats_stats_get(c, &ns), ns.reconnects >= 1));
  publish_jobs(pc, subj, N, N);
  done_once(N, N, "after its server restarted");
  WAIT_FOR(stream_msgs(pc, name) == 0);
  /* Its connection fails, and the supervisor starts another: the worker
   * pulls through that one. */
  long instances = actio__nats_instances();
  actio_actor_fail(c, ACTIO_ENATS, "test: the connection killed");
  actio_sup_stats ss;
  WAIT_FOR((actio_sup_stats_get(sup, &ss), ss.restarts == 1));
  publish_jobs(pc, subj, 2 * N, N);
  done_once(2 * N, N, "after its connection restarted");
  WAIT_FOR(stream_msgs(pc, name) == 0);
  /* And again, 8 times, a job done through each new instance: the worker
   * lets each old one go once the jobs taken there ended, and the
   * instances allocated come back to what they were (it used to keep one
   * more per restart). */
  enum { RESTARTS = 8 };
  for (int i = 1; i < RESTARTS; i++) {
    actio_actor_fail(c, ACTIO_ENATS, "test: the connection killed");
    WAIT_FOR((actio_sup_stats_get(sup, &ss), ss.restarts == (uint64_t)i + 1));
    publish_jobs(pc, subj, 3 * N + i - 1, 1);
    done_once(3 * N + i - 1, 1, "after another restart");
    WAIT_FOR(stream_msgs(pc, name) == 0);
  }
  WAIT_FOR(actio__nats_instances() <= instances);
  ck_assert_int_eq(actio_nats_worker_stop(w), 0);
  actio_nats_worker_stats s;
  actio_nats_worker_stats_get(w, &s);
  /* Each taken once (a job the server sent as a pull expired comes again
   * after ack_wait: counted as redelivered, taken and done once). */
  ck_assert_uint_eq(s.acked, 3 * N + RESTARTS - 1);
  ck_assert_uint_eq(s.fetched, 3 * N + RESTARTS - 1);
  actio_nats_worker_destroy(w);
  int rc;
  WAIT_FOR((rc = actio_nats_stream_delete(pc, name)) == 0 || rc == ACTIO_ENOSTREAM);
}
END_TEST

/* ---- a connection's end with acks under way ---- */

/* The first ack call waits at its start, on cnats's thread, until the
 * test lets it go: an ack running late. */
static pthread_mutex_t hold_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hold_cv = PTHREAD_COND_INITIALIZER;
static int acks_entered, acks_go;

static void hold_first_ack(void) {
  pthread_mutex_lock(&hold_mu);
  if (acks_entered++ == 0)
    while (!acks_go)
      pthread_cond_wait(&hold_cv, &hold_mu);
  pthread_mutex_unlock(&hold_mu);
}

static int held_acks(void) {
  pthread_mutex_lock(&hold_mu);
  int n = acks_entered;
  pthread_mutex_unlock(&hold_mu);
  return n;
}

static void let_acks_go(void) {
  pthread_mutex_lock(&hold_mu);
  acks_go = 1;
  pthread_cond_broadcast(&hold_cv);
  pthread_mutex_unlock(&hold_mu);
}

/* A test's stream (name, its subjects' prefix subj; limits: kept), seen
 * through plain connection *pc, and a supervised connection to the
 * cluster that the test fails: its address, *sup its supervisor. */
static actio_actor *supervised_queue(char *name, char *subj, size_t len, int limits,
                                     actio_actor **pc, actio_actor **sup) {
  static actio_nats_opts no = {.max_reconnect = -1, .reconnect_wait_ms = 100};
  no.url = js_urls;
  *pc = connect_to(js_urls);
  subject_of(make_stream(*pc, name, len, 1, limits, NULL), subj, len);
  return supervised_nats(rt, &no, 1000, sup);
}

START_TEST(an_ack_running_late_outlives_its_connection) {
  char name[64], subj[64], subject[96];
  actio_actor *pc, *sup, *c = supervised_queue(name, subj, sizeof name, 0, &pc, &sup);
  long instances = actio__nats_instances();
  publish_jobs(c, subj, 0, 1); /* the stream answers this connection */
  acks_entered = acks_go = 0;
  /* Release: the hook's state above is set before an ack can see it. */
  atomic_store_explicit(&actio__nats_js_ack_hook, hold_first_ack, memory_order_release);
  snprintf(subject, sizeof subject, "%s.late", subj);
  actio_nats_job job = {.subject = subject, .data = "late", .len = 4};
  actio_future *f;
  ck_assert_int_eq(actio_nats_job_publish(c, &job, &f), 0);
  WAIT_FOR(held_acks() == 1); /* stored: cnats is handing its ack over */
  /* The connection's instance fails and its supervisor starts another;
   * the old one's stop (waited for here) closes it with the ack still
   * on its way. */
  actio_actor *old = actio__actor_pin(c);
  actio__actor_ref(old);
  actio__actor_unpin(c);
  actio_actor_fail(c, ACTIO_ENATS, "test: the connection killed");
  actio_sup_stats ss;
  WAIT_FOR((actio_sup_stats_get(sup, &ss), ss.restarts == 1));
  ck_assert_int_eq(actio_actor_stop(old, ACTIO_STOP_NOW), 0);
  actio__actor_unref(old);
  /* The stop used to fail the job (ECLOSED) and let the instance be
   * freed, JetStream's context with it, before the ack read it. */
  WAIT_FOR(!actio_future_is_done(f) || actio__nats_instances() <= instances);
  let_acks_go();
  ck_assert_int_eq(actio_future_wait(f, -1), 0); /* the stream's own ack, once */
  ck_assert_uint_gt((uintptr_t)actio_future_value(f), 0);
  actio_future_unref(f);
  WAIT_FOR(actio__nats_instances() <= instances);
  atomic_store_explicit(&actio__nats_js_ack_hook, NULL, memory_order_release);
  ck_assert_uint_eq(stream_msgs(pc, name), 2);
  int rc;
  WAIT_FOR((rc = actio_nats_stream_delete(pc, name)) == 0 || rc == ACTIO_ENOSTREAM);
}
END_TEST

START_TEST(jobs_in_flight_at_a_connection_s_end_complete_once) {
  char name[64], subj[64], subject[96];
  actio_actor *pc, *sup, *c = supervised_queue(name, subj, sizeof name, 1, &pc, &sup);
  long instances = actio__nats_instances();
  enum { ROUNDS = 20, N = 64 };
  actio_future *fs[N];
  int stored = 0;
  for (int r = 1; r <= ROUNDS; r++) {
    int n = 0;
    for (int i = 0; i < N; i++) {
      snprintf(subject, sizeof subject, "%s.%d", subj, i % 7);
      actio_nats_job job = {.subject = subject, .data = "x", .len = 1};
      int rc = actio_nats_job_publish(c, &job, &fs[n]);
      ck_assert_msg(rc == 0 || rc == ACTIO_ECLOSED || rc == ACTIO_ENATS, "publish: %s",
                    actio_err_name(rc)); /* refused, or not sent: the connection ends */
      n += rc == 0;
      if (i == N / 2) /* the rest sent while it ends */
        actio_actor_fail(c, ACTIO_ENATS, "test: the connection killed");
    }
    actio_sup_stats ss;
    WAIT_FOR((actio_sup_stats_get(sup, &ss), ss.restarts == (uint64_t)r));
    for (int i = 0; i < n; i++) {
      int rc = actio_future_wait(fs[i], -1);
      ck_assert_msg(rc == 0 || rc == ACTIO_ECLOSED || rc == ACTIO_ENATS, "job: %s: %s",
                    actio_err_name(rc), actio_future_errmsg(fs[i]));
      stored += rc == 0;
      actio_future_unref(fs[i]);
    }
  }
  /* Each old instance goes once its last job ended. */
  WAIT_FOR(actio__nats_instances() <= instances);
  ck_assert_int_gt(stored, 0);
  /* A job told stored is in the stream (limits: kept); one failed may be
   * there too (its ack lost with the connection). */
  ck_assert_uint_ge(stream_msgs(pc, name), (uint64_t)stored);
  int rc;
  WAIT_FOR((rc = actio_nats_stream_delete(pc, name)) == 0 || rc == ACTIO_ENOSTREAM);
}
END_TEST

/* ---- the servers ---- */

static int start_servers(void) {
  snprintf(servers_dir, sizeof servers_dir, "%s/nats-jobs-XXXXXX", NATS_JOBS_DIR);
  if (mkdir(NATS_JOBS_DIR, 0700) != 0 && errno != EEXIST)
    return -1;
  if (mkdtemp(servers_dir) == NULL)
    return -1;
  char env[600], key[16];
  if (nats_server_sh("cluster", servers_dir, NULL) != 0)
    return -1;
  snprintf(env, sizeof env, "%s/cluster.env", servers_dir);
  if (env_get(env, "NATS_JS_URLS", js_urls, sizeof js_urls) != 0)
    return -1;
  for (int i = 0; i < 3; i++) {
    snprintf(key, sizeof key, "NATS_JS_URL%d", i + 1);
    if (env_get(env, key, js_url[i], sizeof js_url[i]) != 0)
      return -1;
  }
  return 0;
}

static void stop_servers(void) { nats_servers_stop(servers_dir, "test_nats_jobs"); }

int main(void) {
  if (start_servers() != 0) {
    fprintf(stderr, "test_nats_jobs: the NATS cluster did not start\n");
    stop_servers();
    return EXIT_FAILURE;
  }
  Suite *s = suite_create("nats_jobs");
  TCase *tc = tcase_with_timeout("jobs", 300);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, jobs_published_and_done_exactly_once);
  tcase_add_test(tc, a_failed_job_is_naked_and_done_again);
  tcase_add_test(tc, past_max_deliveries_a_job_goes_to_the_dead_letters);
  tcase_add_test(tc, a_worker_that_crashes_before_its_ack_the_job_is_done_elsewhere);
  tcase_add_test(tc, a_long_job_keeps_its_lease_and_a_stop_drains);
  tcase_add_test(tc, bad_input_and_missing_streams);
  tcase_add_test(tc, replicas_3_and_a_server_killed_mid_run_lose_no_job);
  suite_add_tcase(s, tc);
  tc = tcase_with_timeout("restarts", 300); /* CK_RUN_CASE=restarts runs it alone */
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, a_worker_follows_its_server_and_its_connection_restarted);
  suite_add_tcase(s, tc);
  tc = tcase_with_timeout("ends", 300); /* CK_RUN_CASE=ends */
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, an_ack_running_late_outlives_its_connection);
  tcase_add_test(tc, jobs_in_flight_at_a_connection_s_end_complete_once);
  suite_add_tcase(s, tc);
  int rc = run_suite(s);
  stop_servers();
  return rc;
}

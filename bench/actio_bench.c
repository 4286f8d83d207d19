/* actio_bench.c: actio-bench: gather, pingpong, completion queue, timers,
 * file, HTTP and database workloads through the public API, one JSON line
 * per run. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#include <sched.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "actio.h"
#include "curl_loop.h"
#include "js_loop.h"
#include "nats_loop.h"

static const char usage_text[] =
    "usage: actio-bench WORKLOAD [flags]\n"
    "  gather   [--n N] [--fanout F] [--threads T]\n"
    "           N futures in rounds of F: create, actio_gather, resolve, wait\n"
    "           (defaults: N 1000000, F 1000, T 1; each thread does N/T)\n"
    "  pingpong [--n N] [--spin S] [--impl actio|threads]\n"
    "           N round trips of a counter between two actors (threads: two\n"
    "           bare threads handing it over through one word, the limit)\n"
    "           (defaults: N 1000000, S 256 polls before a worker sleeps)\n"
    "  file_write_small [--dir D] [--files N] [--size B] [--concurrency C]\n"
    "           [--workers W] [--durable group|fsync]\n"
    "           mkdir -p D, then N files D/f0000000... of B bytes, C in flight\n"
    "           (defaults: D /tmp/bench-files, N 10000, B 4096, C 64); durable:\n"
    "           each through actio_file_write_durable (group), or atomic and\n"
    "           fsynced on its own (ACTIO_WRITE_ATOMIC)\n"
    "  file_read_small  [--dir D] [--files N] [--concurrency C] [--workers W]\n"
    "           reads those N files back whole, C in flight\n"
    "  file_read_lines  --path P [--workers W]\n"
    "           counts the lines of P (per_sec: lines per second)\n"
    "  file_read_large  --path P [--chunk K] [--workers W]\n"
    "           streams P in chunks of K bytes, counting them (default K 128 KiB, the library's;\n"
    "           n and per_sec count bytes, ok is 1 for the file)\n"
    "  http_get --url U [--requests N] [--concurrency C] [--workers W]\n"
    "           [--impl actio|curl] [--proxy P] [--retries R]\n"
    "           N GETs of U, C in flight (defaults: N 20000, C 64); curl: the\n"
    "           bare libcurl multi loop on one thread, the actor's floor; P: an\n"
    "           http proxy every request goes through; R (actio only): each\n"
    "           request's retries (a dropped connection, a 503...; default 0,\n"
    "           backoff 1 ms). bytes: the\n"
    "           bodies' decoded size (a gzipped body counts what it decodes to)\n"
    "  http_post --url U [--requests N] [--concurrency C] [--workers W] [--size B]\n"
    "           N POSTs of a B-byte body to U, C in flight (defaults: N 20000, C 64,\n"
    "           B 64 KiB)\n"
    "  db_point --dsn DSN [--queries N] [--concurrency C] [--workers W]\n"
    "           [--pipeline [--connections K]]\n"
    "           N queries SELECT $1::int, each with its own integer and each\n"
    "           result checked, C in flight (defaults: N 50000, C 8). Without\n"
    "           --pipeline: min(C, 64) connections, one query on each at a time\n"
    "           (as pgbench); with it: K connections (default 8), queries\n"
    "           pipelined on them, up to max(64, C/K) on each\n"
    "  db_rows  the same flags; SELECT g, md5(g::text) FROM\n"
    "           generate_series($1::int, $1::int + 99) g, every value of the\n"
    "           100 rows read and checked\n";
/* Two strings: one would be longer than C99 compilers must take. */
static const char usage_text2[] =
    "  db_executemany --dsn DSN [--rows N] [--batch B] [--concurrency C] [--workers W]\n"
    "           N rows (id int, v text) inserted into a fresh table in executemany\n"
    "           batches of B, C batches in flight on C connections (defaults: N\n"
    "           1000000, B 50, C 8; per_sec: rows)\n"
    "  db_stream --dsn DSN [--rows N] [--batch B] [--workers W]\n"
    "           SELECT g, md5(g::text) FROM generate_series(1, N) g streamed B rows\n"
    "           a call, every value read and checked (defaults: N 10000000, B 256)\n"
    "  cq       [--n N] [--producers P] [--batch B]\n"
    "           N completions through a completion queue's descriptor to an\n"
    "           epoll loop: P threads each make, register and complete futures;\n"
    "           the loop drains up to B at a time (defaults: N 1000000, P 2, B 256)\n"
    "  pending  [--n N] [--dsn DSN | --http]\n"
    "           memory per pending request, from the growth of the resident\n"
    "           set: N asks a scheduled actor keeps pending (pending_ask), or\n"
    "           with a DSN N queries queued behind a busy connection\n"
    "           (pending_query); bytes_per is the figure (default N 100000).\n"
    "           --http: N GETs queued behind one stalled transfer\n"
    "           (pending_http), then a stop-now of them timed (stop_ms), and\n"
    "           of a quarter as many (stop_http): a stop costs the queue\n"
    "           One kind per run: memory freed by one would serve the other\n"
    "  timers   [--n N]\n"
    "           N delayed sends (actio_send_after, 0-7 ms) to a scheduled actor\n"
    "           that counts them, timed from the first armed to the last\n"
    "           handled (timers); then, from the growth of the resident set,\n"
    "           the bytes of a pending delayed send (pending_timer: bytes_per)\n"
    "           and of a pending sleep, its future included (sleep_bytes_per).\n"
    "           Measured first, on a fresh heap (default N 1000000)\n"
    "  remote_ask --nats URL [--requests N] [--concurrency C] [--impl actio|cnats]\n"
    "           N 16-byte asks, C in flight, of 2 queue-group echo responders\n"
    "           (bare cnats, here), replies checked (N 100000, C 64); cnats:\n"
    "           the bare loop on one connection and a shared inbox\n"
    "  nats_echo --nats URL   those responders alone, until stdin ends\n"
    "  jobs     --nats URL [--jobs N] [--batch B] [--replicas R] [--concurrency C]\n"
    "           [--impl actio|cnats]: a work-queue stream (R copies) made anew,\n"
    "           N 16-byte jobs published with ids, C acks awaited at most, then\n"
    "           one worker pulls B at a time, checks and acks each (N 100000,\n"
    "           B 32, R 1, C 4096); cnats: the bare async publish and pull\n"
    "           consumer (bench/js_loop.c); per_sec: jobs over both phases\n"
    "  W: the actor's worker threads (default: the library's)\n"
    "The mailbox workload drives an internal queue: actio-bench-mailbox\n"
    "(tests/perf) measures it.\n"
    "Prints one JSON line per run. Exit status: 0 ok, 1 errors, 2 bad usage.\n";

static double now_sec(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sum of 0..n-1 modulo 2^64; halving the even factor first keeps it exact
 * wherever the true sum fits, and both sides of the check wrap alike. */
static uint64_t sum_below(uint64_t n) {
  if (n == 0)
    return 0;
  return n % 2 == 0 ? (n / 2) * (n - 1) : n * ((n - 1) / 2);
}

/* One line in the format of docs/benchmarks.md; `extra` is either empty
 * or starts with ", ". per_sec is `counted` per second: ok, except where a
 * workload rates something else (bytes of one large file) and says so. */
static void emit_rate(const char *impl, const char *workload, uint64_t n,
                      uint64_t concurrency, uint64_t ok, uint64_t errors,
                      double seconds, uint64_t counted, const char *extra) {
  double per_sec = seconds > 0 ? (double)counted / seconds : 0.0;
  printf("{\"impl\": \"%s\", \"workload\": \"%s\", \"n\": %" PRIu64
         ", \"concurrency\": %" PRIu64 ", \"ok\": %" PRIu64
         ", \"errors\": %" PRIu64 ", \"seconds\": %.6f, \"per_sec\": %.1f%s}\n",
         impl, workload, n, concurrency, ok, errors, seconds, per_sec, extra);
  fflush(stdout);
}

static void emit(const char *impl, const char *workload, uint64_t n,
                 uint64_t concurrency, uint64_t ok, uint64_t errors,
                 double seconds, const char *extra) {
  emit_rate(impl, workload, n, concurrency, ok, errors, seconds, ok, extra);
}

/* A thread that cannot start leaves the others waiting on a barrier or a
 * queue that nothing will feed: give up on the whole run. */
static void start_thread(pthread_t *t, void *(*fn)(void *), void *arg) {
  int e = pthread_create(t, NULL, fn, arg);
  if (e != 0) {
    fprintf(stderr, "actio-bench: pthread_create: %s\n", strerror(e));
    exit(1);
  }
}

/* ---- gather ---- */

typedef struct gather_job {
  uint64_t first;  /* value of this thread's first future */
  uint64_t count;  /* futures this thread completes */
  uint64_t fanout;
  uint64_t ok, errors, checksum;
  pthread_t thread;
} gather_job;

static void *gather_run(void *arg) {
  gather_job *j = arg;
  actio_future **fs = malloc(j->fanout * sizeof *fs);
  if (fs == NULL) {
    j->errors = j->count;
    return NULL;
  }
  uint64_t done = 0;
  while (done < j->count) {
    size_t k = (size_t)(j->count - done < j->fanout ? j->count - done : j->fanout);
    uint64_t base = j->first + done;
    actio_future *g = NULL;
    size_t made = 0;
    int rc = 0;
    for (; made < k; made++)
      if ((rc = actio_future_create(&fs[made])) != 0)
        break;
    if (rc == 0)
      rc = actio_gather(fs, k, ACTIO_GATHER_FAIL_FAST, &g);
    if (rc == 0) {
      /* Resolving after the gather is made is the asyncio order too: the
       * gather's callbacks run here, and the last one completes it. */
      for (size_t i = 0; i < k; i++)
        (void)actio_future_resolve(fs[i], (void *)(uintptr_t)(base + i), NULL);
      (void)actio_future_wait(g, -1);
      for (size_t i = 0; i < k; i++) {
        actio_future *it = actio_gather_item(g, i);
        if (it != NULL && actio_future_status(it) == 0) {
          j->checksum += (uintptr_t)actio_future_value(it);
          j->ok++;
        } else {
          j->errors++;
        }
      }
    } else {
      fprintf(stderr, "actio-bench: gather: %s\n", actio_strerror(rc));
    }
    actio_future_unref(g);
    for (size_t i = 0; i < made; i++)
      actio_future_unref(fs[i]);
    done += k;
    if (rc != 0) { /* out of memory: the rest would fail the same way */
      j->errors += j->count - j->ok - j->errors;
      break;
    }
  }
  free(fs);
  return NULL;
}

static int run_gather(uint64_t n, uint64_t fanout, uint64_t threads) {
  gather_job *jobs = calloc((size_t)threads, sizeof *jobs);
  if (jobs == NULL) {
    fprintf(stderr, "actio-bench: out of memory\n");
    return 1;
  }
  uint64_t first = 0;
  for (uint64_t t = 0; t < threads; t++) {
    jobs[t].first = first;
    jobs[t].count = n / threads + (t < n % threads ? 1 : 0);
    jobs[t].fanout = fanout;
    first += jobs[t].count;
  }
  double t0 = now_sec();
  if (threads == 1) {
    gather_run(&jobs[0]); /* no thread hop, as the single-loop peer */
  } else {
    for (uint64_t t = 0; t < threads; t++)
      start_thread(&jobs[t].thread, gather_run, &jobs[t]);
    for (uint64_t t = 0; t < threads; t++)
      pthread_join(jobs[t].thread, NULL);
  }
  double secs = now_sec() - t0;

  uint64_t ok = 0, errors = 0, checksum = 0;
  for (uint64_t t = 0; t < threads; t++) {
    ok += jobs[t].ok;
    errors += jobs[t].errors;
    checksum += jobs[t].checksum;
  }
  free(jobs);
  int checksum_ok = errors == 0 && checksum == sum_below(n);
  char extra[160];
  snprintf(extra, sizeof extra,
           ", \"threads\": %" PRIu64 ", \"checksum\": %" PRIu64
           ", \"checksum_ok\": %s",
           threads, checksum, checksum_ok ? "true" : "false");
  emit("actio", "gather", n, fanout, ok, errors, secs, extra);
  return errors > 0 || !checksum_ok;
}

/* ---- handoff: the limit for pingpong ---- */

/* The CPU's spin-wait hint, as the mailbox's polling consumer gives it;
 * here without Concurrency Kit, which is the library's business. */
static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
  __asm__ __volatile__("yield" ::: "memory");
#endif
}

/* Two bare threads pass a counter back and forth through one word, polling
 * as a mailbox consumer does (pause, then yield the core), never sleeping:
 * no queue, no allocation, no actor. What pingpong cannot beat. */
typedef struct handoff {
  _Atomic uint64_t word; /* even: ping's turn; odd: pong's */
  uint64_t n;
} handoff;

static void wait_turn(handoff *h, uint64_t parity, uint64_t *seen) {
  for (unsigned i = 0;; i++) {
    uint64_t w = atomic_load_explicit(&h->word, memory_order_acquire);
    if ((w & 1) == parity) {
      *seen = w;
      return;
    }
    if (i < 128)
      cpu_relax();
    else
      sched_yield();
  }
}

static void *handoff_pong(void *arg) {
  handoff *h = arg;
  uint64_t w = 0;
  while (w < 2 * h->n) {
    wait_turn(h, 1, &w);
    atomic_store_explicit(&h->word, w + 1, memory_order_release);
    w++;
  }
  return NULL;
}

static int run_handoff(uint64_t n) {
  handoff h = {.n = n};
  pthread_t t;
  start_thread(&t, handoff_pong, &h);
  double t0 = now_sec();
  uint64_t w = 0;
  for (uint64_t i = 0; i < n; i++) {
    wait_turn(&h, 0, &w);
    atomic_store_explicit(&h.word, w + 1, memory_order_release);
  }
  wait_turn(&h, 0, &w);
  double secs = now_sec() - t0;
  pthread_join(t, NULL);
  uint64_t ok = w == 2 * n ? n : 0;
  emit("threads", "pingpong", n, 1, ok, n - ok, secs, ", \"limit\": \"bare handoff\"");
  return ok != n;
}

/* ---- pingpong ---- */

/* Counters stay below N, so the all-ones pointer can never be one. */
#define PINGPONG_START ((void *)UINTPTR_MAX)

typedef struct pingpong {
  actio_actor *ping, *pong; /* set before the start message is sent */
  uint64_t n;               /* round trips wanted */
  /* The asker's future, referenced by ping's handler for the start message
   * (it is only borrowed for that call) and completed N round trips later.
   * Written once by ping's worker; main drops the reference after stopping
   * both actors, so neither handler has to on any path. */
  actio_future *reply;
} pingpong;

/* Ping receives the start message, then every counter pong sends back; the
 * counter it receives is the number of round trips completed. */
static int ping_handle(actio_actor *self, void *worker, void *msg,
                       actio_future *reply) {
  (void)worker;
  pingpong *pp = actio_actor_state(self);
  uint64_t done;
  if (msg == PINGPONG_START) {
    if (reply == NULL || pp->reply != NULL)
      return ACTIO_EINVAL; /* a told start, or a second one */
    actio_future_ref(reply);
    pp->reply = reply;
    done = 0;
  } else {
    done = (uintptr_t)msg;
  }
  if (done == pp->n) {
    actio_future_resolve(pp->reply, (void *)(uintptr_t)done, NULL);
    return 0;
  }
  int rc = actio_tell(pp->pong, (void *)(uintptr_t)done, -1);
  if (rc != 0)
    actio_future_fail(pp->reply, rc, "ping: tell pong: %s", actio_strerror(rc));
  return 0;
}

static int pong_handle(actio_actor *self, void *worker, void *msg,
                       actio_future *reply) {
  (void)worker;
  (void)reply;
  pingpong *pp = actio_actor_state(self);
  int rc = actio_tell(pp->ping, (void *)((uintptr_t)msg + 1), -1);
  /* pp->reply was stored before ping told us anything; the mailbox hand-off
   * orders that store before this read. */
  if (rc != 0)
    actio_future_fail(pp->reply, rc, "pong: tell ping: %s", actio_strerror(rc));
  return 0;
}

static const actio_behavior ping_behavior = {.handle = ping_handle};
static const actio_behavior pong_behavior = {.handle = pong_handle};

static int run_pingpong(uint64_t n, uint64_t spin) {
  actio_runtime *rt;
  int rc = actio_runtime_create(&rt, NULL);
  if (rc != 0) {
    fprintf(stderr, "actio-bench: runtime: %s\n", actio_strerror(rc));
    return 1;
  }
  pingpong pp = {.n = n};
  /* Scheduled actors (the default): the runtime's threads, one per core. */
  actio_actor_opts o = {.name = "ping", .state = &pp, .spin = (unsigned)spin};
  rc = actio_actor_spawn(rt, &ping_behavior, &o, &pp.ping);
  if (rc == 0) {
    o.name = "pong";
    rc = actio_actor_spawn(rt, &pong_behavior, &o, &pp.pong);
  }
  if (rc != 0) {
    fprintf(stderr, "actio-bench: spawn: %s\n", actio_strerror(rc));
    actio_runtime_destroy(rt);
    return 1;
  }

  actio_future *f = NULL;
  double t0 = now_sec();
  rc = actio_ask(pp.ping, PINGPONG_START, -1, &f);
  if (rc == 0)
    rc = actio_future_wait(f, -1);
  double secs = now_sec() - t0;
  uint64_t got = rc == 0 ? (uintptr_t)actio_future_value(f) : 0;
  if (rc != 0)
    fprintf(stderr, "actio-bench: pingpong: %s: %s\n", actio_strerror(rc),
            f != NULL && actio_future_errmsg(f) ? actio_future_errmsg(f) : "");

  actio_actor_stop(pp.ping, ACTIO_STOP_DRAIN);
  actio_actor_stop(pp.pong, ACTIO_STOP_DRAIN);
  /* Counted only after: a worker bumps `handled` once its handler returns,
   * which is after the reply that woke us. Handles live until the runtime. */
  actio_actor_stats sa, sb;
  actio_actor_stats_get(pp.ping, &sa);
  actio_actor_stats_get(pp.pong, &sb);
  actio_future_unref(pp.reply); /* both workers are joined: nobody else uses it */
  actio_future_unref(f);
  actio_runtime_destroy(rt);

  uint64_t ok = rc == 0 && got == n ? n : 0;
  char extra[160];
  snprintf(extra, sizeof extra,
           ", \"checksum\": %" PRIu64 ", \"handled\": %" PRIu64
           ", \"spin\": %" PRIu64,
           got, sa.handled + sb.handled, spin);
  emit("actio", "pingpong", n, 1, ok, n - ok, secs, extra);
  return ok != n;
}

/* ---- files ---- */

/* A runtime with one file actor; workers 0 keeps the library's default.
 * Setup stays outside the timed part, as the peers' interpreter start does. */
static int files_start(uint64_t workers, actio_runtime **rt, actio_actor **files) {
  int rc = actio_runtime_create(rt, NULL);
  if (rc != 0) {
    fprintf(stderr, "actio-bench: runtime: %s\n", actio_strerror(rc));
    return 1;
  }
  actio_file_opts o = {.workers = (unsigned)workers};
  rc = actio_file_spawn(*rt, &o, files);
  if (rc != 0) {
    fprintf(stderr, "actio-bench: file actor: %s\n", actio_strerror(rc));
    actio_runtime_destroy(*rt);
    return 1;
  }
  return 0;
}

/* Prints a failed future once per run: one line says why the rest failed. */
static void report_failure(const char *what, actio_future *f, int *reported) {
  if (*reported)
    return;
  *reported = 1;
  const char *msg = f != NULL ? actio_future_errmsg(f) : "never started";
  fprintf(stderr, "actio-bench: %s: %s\n", what,
          msg != NULL ? msg : actio_strerror(actio_future_status(f)));
}

/* Appends `, "workers": W` when the flag was given. */
static void extra_workers(char *extra, size_t cap, uint64_t workers) {
  size_t len = strlen(extra);
  if (workers != 0 && len < cap)
    snprintf(extra + len, cap - len, ", \"workers\": %" PRIu64, workers);
}

typedef struct small_job {
  actio_actor *files;
  const char *dir;
  const char *payload; /* what every file gets; NULL when reading */
  size_t size;
  const char *durable;  /* NULL, "group" or "fsync" */
  _Atomic uint64_t bytes_read;
} small_job;

/* Like the peer, a reader drops each buffer as soon as it arrives: count
 * it and free it on the completing worker. */
static void consume_read(actio_future *f, void *arg) {
  small_job *j = arg;
  actio_buf *b = actio_future_take(f);
  if (b == NULL)
    return;
  atomic_fetch_add_explicit(&j->bytes_read, b->len, memory_order_relaxed);
  free(b->data);
  free(b);
}

/* Starts item i of actio_map: on the main thread at first, then on the file
 * workers whose completions free a slot. Only bytes_read changes meanwhile. */
static int small_start(size_t i, void *arg, actio_future **out) {
  small_job *j = arg;
  char path[4096];
  int len = snprintf(path, sizeof path, "%s/f%07zu", j->dir, i); /* the peer's names */
  if (len < 0 || (size_t)len >= sizeof path)
    return -ENAMETOOLONG;
  if (j->payload != NULL && j->durable != NULL && strcmp(j->durable, "group") == 0)
    return actio_file_write_durable(j->files, path, j->payload, j->size, out);
  if (j->payload != NULL)
    return actio_file_write(j->files, path, j->payload, j->size,
                            j->durable != NULL ? ACTIO_WRITE_ATOMIC : ACTIO_WRITE_TRUNC,
                            out);
  int rc = actio_file_read(j->files, path, out);
  if (rc == 0 && actio_future_on_done(*out, consume_read, arg) != 0)
    return ACTIO_ENOMEM;
  return rc;
}

static int run_small(int writing, const char *dir, uint64_t n, uint64_t size,
                     uint64_t concurrency, uint64_t workers, const char *durable) {
  char *payload = NULL;
  if (writing) {
    /* The peer's shape: 63 x's and a newline per 64 bytes, then x's. */
    payload = malloc(size > 0 ? (size_t)size : 1);
    if (payload == NULL) {
      fprintf(stderr, "actio-bench: out of memory\n");
      return 1;
    }
    for (uint64_t i = 0; i < size; i++)
      payload[i] = i % 64 == 63 && i < size / 64 * 64 ? '\n' : 'x';
  }
  actio_runtime *rt;
  actio_actor *files;
  if (files_start(workers, &rt, &files) != 0) {
    free(payload);
    return 1;
  }
  small_job job = {.files = files, .dir = dir, .payload = payload,
                   .size = (size_t)size, .durable = durable};
  const char *workload = writing ? "file_write_small" : "file_read_small";
  uint64_t ok = 0, errors = 0, bytes = 0;
  int reported = 0;

  double t0 = now_sec();
  actio_future *f = NULL;
  int rc = 0;
  if (writing) { /* the peer's os.makedirs is inside its timing too */
    rc = actio_file_mkdir(files, dir, 0777, &f);
    if (rc == 0)
      rc = actio_future_wait(f, -1);
    if (rc != 0)
      report_failure("mkdir", f, &reported);
    actio_future_unref(f);
    f = NULL;
  }
  if (rc == 0) {
    /* Settle-all, as the peer's gather of try/except tasks: every file is
     * counted on its own. */
    rc = actio_map((size_t)n, (size_t)concurrency, small_start, &job,
                   ACTIO_GATHER_SETTLE_ALL, &f);
    if (rc == 0)
      rc = actio_future_wait(f, -1);
    if (rc != 0)
      report_failure(workload, f, &reported);
  }
  for (uint64_t i = 0; f != NULL && i < n; i++) {
    actio_future *it = actio_gather_item(f, (size_t)i);
    if (it != NULL && actio_future_status(it) == 0) {
      ok++;
      bytes += writing ? size : 0;
    } else {
      report_failure(workload, it, &reported);
    }
  }
  actio_future_unref(f);
  double secs = now_sec() - t0;
  if (!writing)
    bytes = atomic_load_explicit(&job.bytes_read, memory_order_relaxed);

  actio_runtime_destroy(rt);
  free(payload);
  errors = n - ok;
  char extra[200];
  snprintf(extra, sizeof extra, ", \"bytes\": %" PRIu64, bytes);
  if (writing) {
    size_t len = strlen(extra);
    snprintf(extra + len, sizeof extra - len, ", \"size\": %" PRIu64, size);
  }
  if (durable != NULL) {
    size_t len = strlen(extra);
    snprintf(extra + len, sizeof extra - len, ", \"durable\": \"%s\"", durable);
  }
  extra_workers(extra, sizeof extra, workers);
  emit("actio", workload, n, concurrency, ok, errors, secs, extra);
  return errors > 0;
}

typedef struct line_count {
  uint64_t lines, bytes;
} line_count;

/* On one file worker, batch after batch; main reads the sums after the
 * future completes, which orders these writes before that read. */
static int count_lines(void *arg, const actio_line *lines, size_t n) {
  line_count *c = arg;
  c->lines += n;
  for (size_t i = 0; i < n; i++)
    c->bytes += lines[i].len + 1; /* the "\n"; a "\r\n" counts as one */
  return 0;
}

static int run_lines(const char *path, uint64_t workers) {
  actio_runtime *rt;
  actio_actor *files;
  if (files_start(workers, &rt, &files) != 0)
    return 1;
  line_count c = {0, 0};
  actio_future *f = NULL;
  int reported = 0;
  double t0 = now_sec();
  int rc = actio_file_lines(files, path, count_lines, &c, &f);
  if (rc == 0)
    rc = actio_future_wait(f, -1);
  double secs = now_sec() - t0;
  uint64_t got = 0;
  if (rc == 0)
    got = *(const uint64_t *)actio_future_value(f);
  else
    report_failure("file_read_lines", f, &reported);
  actio_future_unref(f);
  actio_runtime_destroy(rt);

  int count_ok = rc == 0 && got == c.lines;
  char extra[200];
  snprintf(extra, sizeof extra,
           ", \"bytes\": %" PRIu64 ", \"lines_seen\": %" PRIu64
           ", \"count_ok\": %s",
           c.bytes, c.lines, count_ok ? "true" : "false");
  extra_workers(extra, sizeof extra, workers);
  emit("actio", "file_read_lines", got, 1, got, rc == 0 ? 0 : 1, secs, extra);
  return !count_ok;
}

/* Counts, as `cat > /dev/null` does no more than hand the bytes on. */
static int count_chunk(void *arg, const void *data, size_t len,
                       actio_future **ready) {
  (void)data;
  (void)ready; /* never backpressure: the next chunk comes at once */
  *(uint64_t *)arg += len;
  return 0;
}

static int run_large(const char *path, uint64_t chunk, uint64_t workers) {
  actio_runtime *rt;
  actio_actor *files;
  if (files_start(workers, &rt, &files) != 0)
    return 1;
  uint64_t seen = 0;
  actio_future *f = NULL;
  int reported = 0;
  double t0 = now_sec();
  int rc = actio_file_stream(files, path, (size_t)chunk, count_chunk, &seen, &f);
  if (rc == 0)
    rc = actio_future_wait(f, -1);
  double secs = now_sec() - t0;
  uint64_t bytes = 0;
  if (rc == 0)
    bytes = *(const uint64_t *)actio_future_value(f);
  else
    report_failure("file_read_large", f, &reported);
  actio_future_unref(f);
  actio_runtime_destroy(rt);

  int count_ok = rc == 0 && bytes == seen;
  char extra[240];
  snprintf(extra, sizeof extra,
           ", \"bytes\": %" PRIu64 ", \"chunk\": %" PRIu64
           ", \"per_sec_counts\": \"bytes\", \"count_ok\": %s",
           bytes, chunk, count_ok ? "true" : "false");
  extra_workers(extra, sizeof extra, workers);
  /* One file is the operation; its rate is bytes per second, and n says
   * how many bytes were asked of it. */
  emit_rate("actio", "file_read_large", bytes, 1, rc == 0 ? 1 : 0,
            rc == 0 ? 0 : 1, secs, rc == 0 ? bytes : 0, extra);
  return !count_ok;
}

/* ---- http_get and http_post ---- */

typedef struct http_job {
  actio_actor *http;
  const char *url;
  const void *body; /* http_post's, or NULL */
  size_t body_len;
  int retries;
  _Atomic uint64_t ok, bytes;
} http_job;

/* Counts each response and frees it as it arrives, as the peer does. */
static void consume_response(actio_future *f, void *arg) {
  http_job *j = arg;
  actio_http_response *r = actio_future_take(f);
  if (r != NULL && r->status == 200) {
    atomic_fetch_add_explicit(&j->ok, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&j->bytes, r->body_len, memory_order_relaxed);
  }
  actio_http_response_free(r);
}

static int http_start(size_t i, void *arg, actio_future **out) {
  http_job *j = arg;
  (void)i;
  actio_http_request req = {.url = j->url, .body = j->body, .body_len = j->body_len,
                            .method = j->body ? "POST" : NULL, .retries = j->retries,
                            .retry_backoff_ms = 1};
  int rc = actio_http_send(j->http, &req, out);
  if (rc == 0 && actio_future_on_done(*out, consume_response, j) != 0)
    return ACTIO_ENOMEM;
  return rc;
}

/* A closed loop: n operations, c in flight, each started as one ends. A
 * future is dropped as soon as it completes, as a long-running client
 * would: keeping every one alive (as actio_map does, to gather them) would
 * make the benchmark measure the allocator's fragmentation. Callbacks that
 * run while this thread starts an item only add a credit, so a chain of
 * operations that complete at once unrolls into a loop, not a recursion. */
typedef struct closed {
  const char *workload;
  actio_map_fn start;
  void *arg;
  uint64_t n;
  _Atomic uint64_t next, done, credits;
  _Atomic int reported;
  _Atomic int active; /* callbacks still touching this (it lives on a stack) */
  actio_future *all; /* resolved once the n have completed */
} closed;

static _Thread_local int in_pump;

static void closed_pump(closed *l);

static void closed_finish(closed *l, actio_future *f) {
  if (f != NULL && actio_future_status(f) != 0 &&
      atomic_exchange(&l->reported, 1) == 0) {
    int shown = 0;
    report_failure(l->workload, f, &shown);
  }
  if (atomic_fetch_add(&l->done, 1) + 1 == l->n)
    actio_future_resolve(l->all, NULL, NULL);
}

static void closed_done(actio_future *f, void *arg) {
  closed *l = arg;
  atomic_fetch_add(&l->active, 1);
  closed_finish(l, f);
  actio_future_unref(f); /* the start's reference; on_done holds its own */
  atomic_fetch_add(&l->credits, 1);
  closed_pump(l);
  atomic_fetch_sub(&l->active, 1); /* the last touch */
}

static void closed_pump(closed *l) {
  if (in_pump)
    return; /* the loop below, further up this stack, takes the credit */
  in_pump = 1;
  for (;;) {
    uint64_t cr = atomic_load(&l->credits);
    if (cr == 0)
      break;
    if (!atomic_compare_exchange_weak(&l->credits, &cr, cr - 1))
      continue;
    uint64_t i = atomic_fetch_add(&l->next, 1);
    if (i >= l->n)
      break;
    actio_future *f = NULL;
    if (l->start((size_t)i, l->arg, &f) != 0 || f == NULL ||
        actio_future_on_done(f, closed_done, l) != 0) {
      closed_finish(l, NULL); /* never started: an error */
      actio_future_unref(f);
      atomic_fetch_add(&l->credits, 1);
    }
  }
  in_pump = 0;
}

static double closed_loop(const char *workload, uint64_t n, uint64_t c,
                          actio_map_fn start, void *arg) {
  closed l = {.workload = workload, .start = start, .arg = arg, .n = n};
  if (actio_future_create(&l.all) != 0)
    return 0;
  if (n == 0)
    actio_future_resolve(l.all, NULL, NULL);
  atomic_store(&l.credits, c < n ? c : n);
  double t0 = now_sec();
  closed_pump(&l);
  actio_future_wait(l.all, -1);
  double secs = now_sec() - t0;
  while (atomic_load(&l.active) != 0)
    sched_yield(); /* a callback is still on its way out */
  actio_future_unref(l.all);
  return secs;
}

/* http_get, or with post > 0 http_post: n requests, c in flight. */
static int run_http(const char *url, uint64_t n, uint64_t c, uint64_t workers, int bare,
                    size_t post, const char *proxy, int retries) {
  const char *workload = post ? "http_post" : "http_get";
  uint64_t ok = 0, bytes = 0;
  double secs;
  if (bare && retries > 0) {
    fprintf(stderr, "actio-bench: --retries is for --impl actio\n");
    return 2;
  }
  if (bare) {
    double t0 = now_sec();
    if (bench_curl_loop(url, proxy, n, c, &ok, &bytes) != 0) {
      fprintf(stderr, "actio-bench: libcurl set-up failed\n");
      return 1;
    }
    secs = now_sec() - t0;
  } else {
    actio_runtime *rt;
    http_job job = {.url = url, .body_len = post, .retries = retries};
    char *body = post ? malloc(post) : NULL;
    if (post && body == NULL)
      return 1;
    for (size_t i = 0; i < post; i++)
      body[i] = (char)('a' + i % 26);
    job.body = body;
    actio_http_proxy px = {.url = proxy};
    actio_http_opts o = {.workers = (unsigned)workers, .max_connections = (long)c,
                         .proxy = proxy ? &px : NULL};
    int rc = actio_runtime_create(&rt, NULL);
    if (rc == 0)
      rc = actio_http_spawn(rt, &o, &job.http);
    if (rc != 0) {
      fprintf(stderr, "actio-bench: HTTP actor: %s\n", actio_strerror(rc));
      return 1;
    }
    /* Responses are freed as they come (consume_response). */
    secs = closed_loop(workload, n, c, http_start, &job);
    actio_runtime_destroy(rt);
    free(body);
    ok = atomic_load(&job.ok);
    bytes = atomic_load(&job.bytes);
  }
  char extra[160];
  if (post)
    snprintf(extra, sizeof extra, ", \"size\": %zu", post);
  else
    snprintf(extra, sizeof extra, ", \"bytes\": %" PRIu64, bytes);
  extra_workers(extra, sizeof extra, bare ? 0 : workers);
  emit(bare ? "libcurl-multi" : "actio", workload, n, c, ok, n - ok, secs, extra);
  return ok != n;
}

/* ---- remote_ask ---- */

#define REMOTE_SUBJECT "bench.echo"

typedef struct remote_job {
  actio_actor *nats;
  _Atomic uint64_t ok;
} remote_job;

/* The reply must echo the request's 16 bytes (its number). */
static int remote_check(void *arg, const actio_nats_msg *reply, void **value,
                        actio_free_fn *free_fn) {
  char want[17];
  snprintf(want, sizeof want, "%016" PRIx64, (uint64_t)(uintptr_t)arg);
  size_t len;
  const void *d = actio_nats_msg_data(reply, &len);
  *value = NULL;
  *free_fn = NULL;
  return len == 16 && memcmp(d, want, 16) == 0 ? 0 : ACTIO_ETYPE;
}

static int remote_start(size_t i, void *arg, actio_future **out) {
  remote_job *job = arg;
  char data[17];
  snprintf(data, sizeof data, "%016" PRIx64, (uint64_t)i);
  actio_nats_request req = {.subject = REMOTE_SUBJECT, .data = data, .len = 16,
                            .decode = remote_check, .decode_arg = (void *)(uintptr_t)i};
  return actio_nats_ask(job->nats, &req, out);
}

static void remote_counted(actio_future *f, void *arg) {
  if (actio_future_status(f) == 0)
    atomic_fetch_add(&((remote_job *)arg)->ok, 1);
}

static int remote_start_counted(size_t i, void *arg, actio_future **out) {
  int rc = remote_start(i, arg, out);
  if (rc == 0 && actio_future_on_done(*out, remote_counted, arg) != 0)
    rc = ACTIO_ENOMEM; /* never: the first callback lives in the future */
  return rc;
}

/* ---- jobs ---- */

typedef struct jobs_bench {
  actio_actor *nats;
  uint64_t n;
  _Atomic uint64_t done, ok;
  actio_future *all;       /* resolved once the n are done */
} jobs_bench;

/* Waits for the oldest publish in the ring and frees its slot; 1 when it
 * failed. */
static uint64_t jobs_wait_oldest(actio_future **ring, uint64_t c, uint64_t *oldest) {
  actio_future **f = &ring[*oldest % c];
  uint64_t failed = *f != NULL && actio_future_wait(*f, -1) != 0;
  actio_future_unref(*f);
  *f = NULL;
  (*oldest)++;
  return failed;
}

/* Publishes the n jobs from this thread, as the bare loop does: with c
 * acks awaited, it waits for the oldest. Returns the publishes that
 * failed. */
static uint64_t jobs_publish(jobs_bench *b, uint64_t n, uint64_t c) {
  actio_future **ring = calloc(c, sizeof *ring);
  uint64_t failed = 0, oldest = 0;
  char data[17], id[32];
  for (uint64_t i = 0; i < n; i++) {
    if (i - oldest == c)
      failed += jobs_wait_oldest(ring, c, &oldest);
    snprintf(data, sizeof data, "%016" PRIx64, i);
    snprintf(id, sizeof id, "job-%" PRIu64, i);
    actio_nats_job job = {.subject = BENCH_JS_SUBJECT, .data = data, .len = 16, .id = id};
    int rc;
    while ((rc = actio_nats_job_publish(b->nats, &job, &ring[i % c])) == ACTIO_EFULL &&
           oldest < i)
      failed += jobs_wait_oldest(ring, c, &oldest);
    if (rc != 0) {
      ring[i % c] = NULL;
      failed++;
    }
  }
  while (oldest < n)
    failed += jobs_wait_oldest(ring, c, &oldest);
  free(ring);
  return failed;
}

/* The worker's actor: checks a job's 16 hex digits, and is done. */
static int jobs_handle(actio_actor *self, void *worker, void *msg, actio_future *reply) {
  (void)worker;
  jobs_bench *b = actio_actor_state(self);
  size_t len;
  const char *d = actio_nats_msg_data(msg, &len);
  int good = len == 16;
  for (size_t i = 0; good && i < 16; i++)
    good = (d[i] >= '0' && d[i] <= '9') || (d[i] >= 'a' && d[i] <= 'f');
  if (good)
    atomic_fetch_add(&b->ok, 1);
  actio_future_resolve(reply, NULL, NULL);
  if (atomic_fetch_add(&b->done, 1) + 1 == b->n)
    actio_future_resolve(b->all, NULL, NULL);
  return 0;
}

static const actio_behavior jobs_behavior = {.handle = jobs_handle};

/* actio's side: the stream made anew, n jobs published (c acks awaited at
 * most), then one worker and its actor do them. */
static int jobs_actio(const char *url, uint64_t n, int replicas, int batch, uint64_t c,
                      double *publish_s, double *process_s, uint64_t *ok) {
  actio_runtime *rt;
  jobs_bench b = {.n = n};
  char err[256] = "";
  actio_nats_opts o = {.url = url, .max_pending = (size_t)c, .errbuf = err,
                       .errbuf_size = sizeof err};
  int rc = actio_runtime_create(&rt, NULL);
  if (rc == 0)
    rc = actio_nats_spawn(rt, &o, &b.nats);
  if (rc != 0) {
    fprintf(stderr, "actio-bench: NATS connection: %s %s\n", actio_strerror(rc), err);
    return 1;
  }
  (void)actio_nats_stream_delete(b.nats, BENCH_JS_STREAM);
  actio_nats_stream_opts so = {.name = BENCH_JS_STREAM, .subjects = BENCH_JS_SUBJECT,
                               .replicas = replicas};
  rc = actio_nats_stream_ensure(b.nats, &so, err, sizeof err);
  actio_nats_worker *w = NULL;
  actio_actor *a = NULL;
  if (rc == 0) {
    double t0 = now_sec();
    if (jobs_publish(&b, n, c) != 0) {
      snprintf(err, sizeof err, "publishes failed");
      rc = ACTIO_EJETSTREAM;
    }
    *publish_s = now_sec() - t0;
    actio_actor_opts ao = {.name = "jobs", .state = &b};
    rc = actio_future_create(&b.all);
    if (rc == 0)
      rc = actio_actor_spawn(rt, &jobs_behavior, &ao, &a);
  }
  if (rc == 0) {
    double t0 = now_sec();
    actio_nats_worker_opts wo = {.stream = BENCH_JS_STREAM, .consumer = BENCH_JS_CONSUMER,
                                 .batch = batch};
    rc = actio_nats_worker_create(b.nats, a, &wo, &w, err, sizeof err);
    if (rc == 0) {
      actio_future_wait(b.all, -1);
      *process_s = now_sec() - t0;
      actio_nats_worker_stop(w);
      actio_nats_worker_destroy(w);
    }
  }
  if (rc != 0)
    fprintf(stderr, "actio-bench: jobs: %s %s\n", actio_strerror(rc), err);
  (void)actio_nats_stream_delete(b.nats, BENCH_JS_STREAM);
  actio_future_unref(b.all);
  actio_runtime_destroy(rt);
  *ok = atomic_load(&b.ok);
  return rc != 0;
}

static int run_jobs(const char *url, uint64_t n, uint64_t replicas, uint64_t batch, uint64_t c,
                    int bare) {
  double publish_s = 0, process_s = 0;
  uint64_t ok = 0;
  int failed;
  if (bare) {
    failed = bench_js_loop(url, n, (int)replicas, (int)batch, (int64_t)c, &publish_s,
                           &process_s, &ok) != 0;
    if (failed)
      fprintf(stderr, "actio-bench: cnats JetStream set-up or publish failed\n");
  } else {
    failed = jobs_actio(url, n, (int)replicas, (int)batch, c, &publish_s, &process_s, &ok);
  }
  if (failed)
    return 1;
  char extra[192];
  snprintf(extra, sizeof extra,
           ", \"replicas\": %" PRIu64 ", \"batch\": %" PRIu64
           ", \"publish_per_sec\": %.1f, \"process_per_sec\": %.1f",
           replicas, batch, publish_s > 0 ? (double)n / publish_s : 0.0,
           process_s > 0 ? (double)n / process_s : 0.0);
  emit(bare ? "cnats" : "actio", "jobs", n, c, ok, n - ok, publish_s + process_s, extra);
  return ok != n;
}

/* The responders alone, for bench/peers/natsjs_ask.mjs. */
static int run_nats_echo(const char *url) {
  void *resp = bench_nats_responders_start(url, REMOTE_SUBJECT, "bench", 2);
  if (resp == NULL) {
    fprintf(stderr, "actio-bench: the responders could not connect to %s\n", url);
    return 1;
  }
  printf("ready\n");
  fflush(stdout);
  char buf[256];
  while (fread(buf, 1, sizeof buf, stdin) > 0)
    ;
  bench_nats_responders_stop(resp);
  return 0;
}

static int run_remote_ask(const char *url, uint64_t n, uint64_t c, int bare) {
  void *resp = bench_nats_responders_start(url, REMOTE_SUBJECT, "bench", 2);
  if (resp == NULL) {
    fprintf(stderr, "actio-bench: the responders could not connect to %s\n", url);
    return 1;
  }
  uint64_t ok = 0;
  double secs;
  if (bare) {
    double t0 = now_sec();
    if (bench_nats_loop(url, REMOTE_SUBJECT, n, c, &ok) != 0) {
      fprintf(stderr, "actio-bench: cnats set-up failed\n");
      bench_nats_responders_stop(resp);
      return 1;
    }
    secs = now_sec() - t0;
  } else {
    actio_runtime *rt;
    remote_job job = {0};
    char err[256] = "";
    actio_nats_opts o = {.url = url, .max_pending = (size_t)c, .errbuf = err,
                         .errbuf_size = sizeof err};
    int rc = actio_runtime_create(&rt, NULL);
    if (rc == 0)
      rc = actio_nats_spawn(rt, &o, &job.nats);
    if (rc != 0) {
      fprintf(stderr, "actio-bench: NATS connection: %s %s\n", actio_strerror(rc), err);
      bench_nats_responders_stop(resp);
      return 1;
    }
    secs = closed_loop("remote_ask", n, c, remote_start_counted, &job);
    actio_runtime_destroy(rt);
    ok = atomic_load(&job.ok);
  }
  bench_nats_responders_stop(resp);
  emit(bare ? "cnats" : "actio", "remote_ask", n, c, ok, n - ok, secs, ", \"responders\": 2");
  return ok != n;
}

/* ---- db_point, db_rows ---- */

#define DB_ROWS 100 /* per db_rows result: generate_series($1, $1 + 99) */

static const char db_point_sql[] = "SELECT $1::int";
static const char db_rows_sql[] =
    "SELECT g, md5(g::text) FROM generate_series($1::int, $1::int + 99) g";

typedef struct db_query db_query;

typedef struct db_job {
  actio_actor *db;
  int rows;           /* 0: db_point; else db_rows */
  db_query *queries;  /* one per item, so each check knows what was sent */
  _Atomic uint64_t ok, mismatches, rows_read, bytes;
  _Atomic int shown;  /* the first mismatch was printed */
} db_job;

struct db_query {
  db_job *job;
  int32_t sent;
};

/* Varies over +-1e6 (negative numbers too), and leaves room for + 99. */
static int32_t db_value(size_t i) {
  return (int32_t)(i % 2000000) - 1000000;
}

static void db_mismatch(db_job *j, const db_query *q, const char *what) {
  atomic_fetch_add_explicit(&j->mismatches, 1, memory_order_relaxed);
  if (atomic_exchange_explicit(&j->shown, 1, memory_order_relaxed) == 0)
    fprintf(stderr, "actio-bench: %s: sent %" PRId32 ": %s\n",
            j->rows ? "db_rows" : "db_point", q->sent, what);
}

/* Reads every value as a user would (g as an integer, md5 as text) and
 * checks them against what was sent. Returns NULL if all match, else what
 * did not. */
static const char *db_check_rows(const actio_db_result *r, int32_t sent,
                                 uint64_t *bytes) {
  if (actio_db_rows(r) != DB_ROWS || actio_db_columns(r) != 2)
    return "not 100 rows of 2 columns";
  for (size_t row = 0; row < DB_ROWS; row++) {
    int32_t g;
    const char *md5;
    if (actio_db_int32(r, row, 0, &g) != 0 || g != sent + (int32_t)row)
      return "g is not $1 + row";
    if (actio_db_text(r, row, 1, &md5) != 0 || strlen(md5) != 32)
      return "md5 is not 32 characters";
    *bytes += 32;
  }
  return NULL;
}

/* On the database worker that completed the query: checks the result and
 * frees it, as the peer drops each one. A failed query is counted by its
 * absence (and printed by closed_loop). */
static void db_consume(actio_future *f, void *arg) {
  db_query *q = arg;
  db_job *j = q->job;
  actio_db_result *r = actio_future_take(f);
  if (r == NULL)
    return;
  int32_t got = 0;
  uint64_t bytes = 0;
  const char *why = NULL;
  char what[96];
  if (j->rows) {
    why = db_check_rows(r, q->sent, &bytes);
  } else if (actio_db_rows(r) != 1 || actio_db_columns(r) != 1 ||
             actio_db_int32(r, 0, 0, &got) != 0 || got != q->sent) {
    snprintf(what, sizeof what, "%zu rows, %d columns, first value %" PRId32,
             actio_db_rows(r), actio_db_columns(r), got);
    why = what;
  }
  if (why != NULL) {
    db_mismatch(j, q, why);
  } else {
    atomic_fetch_add_explicit(&j->ok, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&j->rows_read, j->rows ? DB_ROWS : 1,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&j->bytes, bytes, memory_order_relaxed);
  }
  actio_db_result_free(r);
}

static int db_start(size_t i, void *arg, actio_future **out) {
  db_job *j = arg;
  db_query *q = &j->queries[i];
  char text[16];
  snprintf(text, sizeof text, "%" PRId32, q->sent);
  const char *params[1] = {text}; /* copied by the actor */
  int rc = actio_db_query(j->db, j->rows ? db_rows_sql : db_point_sql, 1,
                          params, out);
  if (rc == 0 && actio_future_on_done(*out, db_consume, q) != 0)
    return ACTIO_ENOMEM;
  return rc;
}

/* Waits (outside the timing, as asyncpg's create_pool and pgbench's
 * connection time are) until the pool has opened `want` connections.
 * Returns 0, or -1 after 10 s. */
static int db_wait_connected(actio_actor *db, unsigned want) {
  double until = now_sec() + 10.0;
  for (;;) {
    actio_db_stats st;
    actio_db_stats_get(db, &st);
    if (st.connections >= want)
      return 0;
    if (now_sec() > until) {
      fprintf(stderr, "actio-bench: %u of %u connections open after 10 s"
                      " (%" PRIu64 " connect failures)\n",
              st.connections, want, st.failures);
      return -1;
    }
    struct timespec ms = {0, 1000000};
    nanosleep(&ms, NULL);
  }
}

static int run_db(int rows, const char *dsn, uint64_t n, uint64_t c,
                  uint64_t workers, int pipeline, uint64_t connections) {
  /* Without pipelining, one connection per query in flight, as pgbench's
   * clients and asyncpg's pool; with it, K connections carry them all. */
  unsigned conns, depth;
  if (pipeline) {
    conns = (unsigned)connections;
    uint64_t per = (c + connections - 1) / connections;
    depth = per > 64 ? (unsigned)per : 64;
  } else {
    conns = c < 64 ? (unsigned)c : 64;
    depth = 1;
  }
  db_job job = {.rows = rows};
  job.queries = malloc((size_t)n * sizeof *job.queries);
  if (job.queries == NULL) {
    fprintf(stderr, "actio-bench: out of memory\n");
    return 1;
  }
  for (uint64_t i = 0; i < n; i++)
    job.queries[i] = (db_query){.job = &job, .sent = db_value((size_t)i)};
  actio_runtime *rt;
  actio_db_opts o = {.dsn = dsn, .workers = (unsigned)workers,
                     .min_connections = conns, .max_connections = conns,
                     .pipeline_depth = depth};
  int rc = actio_runtime_create(&rt, NULL);
  if (rc == 0 && (rc = actio_db_spawn(rt, &o, &job.db)) != 0)
    actio_runtime_destroy(rt);
  if (rc != 0) {
    fprintf(stderr, "actio-bench: database actor: %s\n", actio_strerror(rc));
    free(job.queries);
    return 1;
  }
  const char *workload = rows ? "db_rows" : "db_point";
  double secs = 0;
  if (db_wait_connected(job.db, conns) == 0)
    secs = closed_loop(workload, n, c, db_start, &job);
  actio_runtime_destroy(rt);
  free(job.queries);

  uint64_t ok = atomic_load(&job.ok);
  char extra[240];
  snprintf(extra, sizeof extra,
           ", \"pipeline\": %s, \"connections\": %u, \"pipeline_depth\": %u"
           ", \"mismatches\": %" PRIu64 ", \"rows\": %" PRIu64,
           pipeline ? "true" : "false", conns, depth,
           atomic_load(&job.mismatches), atomic_load(&job.rows_read));
  if (rows) {
    size_t len = strlen(extra);
    snprintf(extra + len, sizeof extra - len, ", \"bytes\": %" PRIu64,
             atomic_load(&job.bytes));
  }
  extra_workers(extra, sizeof extra, workers);
  emit("actio", workload, n, c, ok, n - ok, secs, extra);
  return ok != n;
}

/* ---- memory per pending request ---- */

/* The resident set, in bytes. */
static long rss_bytes(void) {
  long pages = 0, resident = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f != NULL) {
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
      resident = 0;
    fclose(f);
  }
  return resident * sysconf(_SC_PAGESIZE);
}

/* Makes every page of p resident (a plain memset of calloc'd memory may be
 * optimised away, and its pages would then count as the requests'). */
static void touch(void *p, size_t len) {
  volatile char *c = p;
  for (size_t i = 0; i < len; i += 4096)
    c[i] = 0;
  if (len > 0)
    c[len - 1] = 0;
}

/* An actor that keeps every ask pending: its handler keeps the reply. */
typedef struct keeper {
  actio_future **held;
  uint64_t n; /* only the actor's one thread at a time writes it */
} keeper;

static int keep_handle(actio_actor *self, void *worker, void *msg,
                       actio_future *reply) {
  keeper *k = actio_actor_state(self);
  (void)worker;
  (void)msg;
  actio_future_ref(reply);
  k->held[k->n++] = reply;
  return 0;
}

static const actio_behavior keeper_behavior = {.handle = keep_handle};

/* Waits until `a` has taken every message it accepted. */
static void wait_taken(actio_actor *a, uint64_t want, int db) {
  for (;;) {
    actio_actor_stats st;
    actio_actor_stats_get(a, &st);
    if ((db ? st.accepted : st.handled) >= want && st.depth == 0)
      return;
    sched_yield();
  }
}

static void emit_pending(const char *workload, uint64_t n, long grew,
                         double secs) {
  char extra[96];
  snprintf(extra, sizeof extra, ", \"bytes_per\": %.1f, \"rss_growth\": %ld",
           (double)grew / (double)n, grew);
  emit("actio", workload, n, n, n, 0, secs, extra);
}

/* n GETs to a listener that never answers, behind one transfer slot: the
 * first runs (stalled), the rest wait in the mailbox. Emits `workload`
 * with the resident growth (when measure) and how long a stop-now of them
 * all took. */
static int pending_http(actio_runtime *rt, const char *workload, uint64_t n,
                        actio_future **fs, int measure) {
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t sl = sizeof sa;
  if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sl) != 0 || listen(lfd, 16) != 0 ||
      getsockname(lfd, (struct sockaddr *)&sa, &sl) != 0) {
    perror("actio-bench: stalled listener");
    return 1;
  }
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/stalled", ntohs(sa.sin_port));
  size_t cap = 1;
  while (cap < n)
    cap <<= 1;
  actio_actor *h;
  actio_http_opts o = {.workers = 1, .max_connections = 1, .capacity = cap};
  int rc = actio_http_spawn(rt, &o, &h);
  actio_future *first = NULL;
  if (rc == 0 && (rc = actio_http_get(h, url, &first)) == 0)
    wait_taken(h, 1, 0); /* the transfer runs (its buffers are not the queue's) */
  long before = rss_bytes();
  double t0 = now_sec();
  for (uint64_t i = 0; i < n && rc == 0; i++)
    rc = actio_http_get(h, url, &fs[i]);
  double secs = now_sec() - t0;
  long grew = rss_bytes() - before;
  if (rc != 0) {
    fprintf(stderr, "actio-bench: pending GETs: %s\n", actio_strerror(rc));
    close(lfd);
    return 1;
  }
  double s0 = now_sec();
  actio_actor_stop(h, ACTIO_STOP_NOW);
  double stop = now_sec() - s0;
  uint64_t cancelled = 0;
  for (uint64_t i = 0; i < n; i++) {
    cancelled += actio_future_wait(fs[i], -1) == ACTIO_ECANCELED;
    actio_future_unref(fs[i]);
  }
  cancelled += actio_future_wait(first, -1) == ACTIO_ECANCELED;
  actio_future_unref(first);
  close(lfd);
  char extra[160];
  int len = snprintf(extra, sizeof extra, ", \"stop_ms\": %.1f", stop * 1000);
  if (measure)
    snprintf(extra + len, sizeof extra - (size_t)len,
             ", \"bytes_per\": %.1f, \"rss_growth\": %ld", (double)grew / (double)n, grew);
  emit("actio", workload, n, n, cancelled - 1, n + 1 - cancelled, secs, extra);
  return cancelled != n + 1;
}

static int run_pending(uint64_t n, const char *dsn, int http) {
  actio_runtime *rt;
  if (actio_runtime_create(&rt, NULL) != 0)
    return 1;
  /* The bookkeeping of the benchmark itself is made (and touched) before
   * the first reading. */
  actio_future **fs = calloc(n, sizeof *fs);
  keeper k = {.held = calloc(n, sizeof *k.held)};
  if (fs == NULL || k.held == NULL) {
    fprintf(stderr, "actio-bench: out of memory\n");
    return 1;
  }
  touch(fs, n * sizeof *fs);
  touch(k.held, n * sizeof *k.held);
  actio_actor *a;
  int rc = actio_actor_spawn(rt, &keeper_behavior,
                             &(actio_actor_opts){.name = "keeper", .state = &k}, &a);
  int errors = rc != 0;
  if (rc == 0 && http) {
    /* Measured first, on a fresh heap; then a quarter as many, timed. */
    errors += pending_http(rt, "pending_http", n, fs, 1);
    errors += pending_http(rt, "stop_http", n / 4 ? n / 4 : 1, fs, 0);
  } else if (rc == 0 && dsn == NULL) {
    long before = rss_bytes();
    double t0 = now_sec();
    for (uint64_t i = 0; i < n && rc == 0; i++)
      rc = actio_ask(a, NULL, -1, &fs[i]);
    wait_taken(a, n, 0);
    double secs = now_sec() - t0;
    emit_pending("pending_ask", n, rss_bytes() - before, secs);
    actio_actor_stop(a, ACTIO_STOP_DRAIN);
    for (uint64_t i = 0; i < k.n; i++) {
      actio_future_resolve(k.held[i], NULL, NULL);
      actio_future_unref(k.held[i]);
    }
    for (uint64_t i = 0; i < n; i++)
      actio_future_unref(fs[i]);
    errors += rc != 0;
  }
  if (dsn != NULL && rc == 0) {
    /* One connection, one query at a time: a long sleep holds it, and the
     * rest queue in the actor behind it. */
    actio_actor *db;
    actio_db_opts o = {.dsn = dsn, .workers = 1, .max_connections = 1,
                       .pipeline_depth = 1, .acquire_timeout_ms = 600000};
    rc = actio_db_spawn(rt, &o, &db);
    actio_future *sleep = NULL;
    if (rc == 0)
      rc = actio_db_query(db, "SELECT pg_sleep(600)", 0, NULL, &sleep);
    /* The sleep runs on the server before the first reading: what opening
     * the connection takes (libpq's buffers, its libraries) is not the
     * queries', and came in during the reading one time in five. */
    for (actio_db_stats s; rc == 0 && !actio_future_is_done(sleep); sched_yield()) {
      actio_db_stats_get(db, &s);
      if (s.connections > 0 && s.idle == 0)
        break;
    }
    if (rc == 0) {
      const char *const params[] = {"42"};
      long before = rss_bytes();
      double t0 = now_sec();
      for (uint64_t i = 0; i < n && rc == 0; i++)
        rc = actio_db_query(db, "SELECT $1::int", 1, params, &fs[i]);
      wait_taken(db, n + 1, 1);
      double secs = now_sec() - t0;
      emit_pending("pending_query", n, rss_bytes() - before, secs);
      for (uint64_t i = 0; i < n; i++) {
        actio_future_cancel(fs[i]);
        actio_future_unref(fs[i]);
      }
      actio_future_cancel(sleep);
    }
    actio_future_unref(sleep);
    errors += rc != 0;
    if (rc != 0)
      fprintf(stderr, "actio-bench: pending queries: %s\n", actio_strerror(rc));
  }
  actio_runtime_destroy(rt);
  free(fs);
  free(k.held);
  return errors != 0;
}

/* ---- cq: completions delivered to an epoll loop ---- */

typedef struct cq_producer {
  actio_cq *cq;
  uint64_t first, count;
  _Atomic int *go;
  uint64_t errors;
  pthread_t thread;
} cq_producer;

/* Each completion whole: a future made, registered with its tag, completed
 * here (not on the loop's thread), our reference dropped (with the
 * completion's own read-modify-write). */
static void *cq_produce(void *arg) {
  cq_producer *p = arg;
  while (!atomic_load_explicit(p->go, memory_order_acquire))
    sched_yield();
  for (uint64_t i = p->first; i < p->first + p->count; i++) {
    actio_future *f;
    if (actio_future_create(&f) != 0) {
      p->errors++;
      continue;
    }
    if (actio_cq_add(p->cq, f, i) != 0) {
      p->errors++;
      actio_future_unref(f);
    } else if (actio_future_resolve_unref(f, NULL, NULL) != 0) {
      p->errors++;
    }
  }
  return NULL;
}

/* P threads complete N futures between them; one epoll loop, on this
 * thread, sleeps on the queue's descriptor and drains in batches of up to
 * `batch`, checking each event and dropping its future. The sum of the tags
 * guards against a run that lost or repeated one. */
static int run_cq(uint64_t n, uint64_t producers, uint64_t batch) {
  actio_cq *cq;
  int rc = actio_cq_create(&cq);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event want = {.events = EPOLLIN};
  actio_cq_event *ev = malloc(batch * sizeof *ev);
  cq_producer *ps = calloc(producers, sizeof *ps);
  if (rc != 0 || ep < 0 || ev == NULL || ps == NULL ||
      epoll_ctl(ep, EPOLL_CTL_ADD, actio_cq_fd(cq), &want) != 0) {
    fprintf(stderr, "actio-bench: cq setup: %s\n", rc ? actio_strerror(rc) : strerror(errno));
    return 1;
  }
  _Atomic int go = 0;
  for (uint64_t i = 0; i < producers; i++) {
    ps[i] = (cq_producer){.cq = cq, .first = n / producers * i, .go = &go,
                          .count = i + 1 < producers ? n / producers : n - n / producers * i};
    start_thread(&ps[i].thread, cq_produce, &ps[i]);
  }
  uint64_t got = 0, ok = 0, errors = 0, sum = 0, wakeups = 0;
  double t0 = now_sec();
  atomic_store_explicit(&go, 1, memory_order_release);
  while (got < n) {
    struct epoll_event e;
    if (epoll_wait(ep, &e, 1, -1) != 1)
      continue; /* EINTR */
    wakeups++;
    int k;
    do {
      k = actio_cq_drain(cq, ev, batch);
      for (int i = 0; i < k; i++) {
        if (actio_future_status(ev[i].future) == 0)
          ok++;
        sum += ev[i].tag;
        actio_future_unref(ev[i].future);
      }
      got += (uint64_t)(k > 0 ? k : 0);
    } while ((uint64_t)k == batch);
  }
  double secs = now_sec() - t0;
  for (uint64_t i = 0; i < producers; i++) {
    pthread_join(ps[i].thread, NULL);
    errors += ps[i].errors;
  }
  if (sum != sum_below(n))
    errors++;
  char extra[160];
  snprintf(extra, sizeof extra,
           ", \"producers\": %" PRIu64 ", \"batch\": %" PRIu64 ", \"wakeups\": %" PRIu64
           ", \"checksum_ok\": %s",
           producers, batch, wakeups, sum == sum_below(n) ? "true" : "false");
  emit("actio", "cq", n, producers, ok, errors + (n - ok), secs, extra);
  close(ep);
  actio_cq_destroy(cq);
  free(ev);
  free(ps);
  return errors != 0 || ok != n;
}

/* ---- timers ---- */

/* Counts what it handles; the test of the run is that all came. */
typedef struct timer_count {
  _Atomic uint64_t n;
} timer_count;

static int count_handle(actio_actor *self, void *worker, void *msg,
                        actio_future *reply) {
  timer_count *c = actio_actor_state(self);
  (void)worker;
  (void)msg;
  (void)reply;
  /* Relaxed: one actor at a time writes it; the reader only waits for n. */
  atomic_fetch_add_explicit(&c->n, 1, memory_order_relaxed);
  return 0;
}

static const actio_behavior count_behavior = {.handle = count_handle};

static int run_timers(uint64_t n) {
  actio_runtime *rt;
  if (actio_runtime_create(&rt, NULL) != 0)
    return 1;
  timer_count c = {0};
  actio_actor *a;
  int rc = actio_actor_spawn(rt, &count_behavior,
                             &(actio_actor_opts){.name = "count", .state = &c,
                                                 .capacity = 1u << 16}, &a);
  /* Pending first, on a fresh heap: n delayed sends due in an hour, then
   * n sleeps beside them (none freed before the other is measured). */
  actio_future **fs = calloc(n, sizeof *fs);
  if (fs == NULL) {
    fprintf(stderr, "actio-bench: out of memory\n");
    return 1;
  }
  touch(fs, n * sizeof *fs);
  long before = rss_bytes();
  double t0 = now_sec();
  for (uint64_t i = 0; i < n && rc == 0; i++)
    rc = actio_send_after(a, NULL, 3600 * 1000, NULL);
  double secs = now_sec() - t0;
  long grew = rss_bytes() - before;
  before = rss_bytes();
  for (uint64_t i = 0; i < n && rc == 0; i++)
    rc = actio_sleep(rt, 3600 * 1000, &fs[i]);
  long sleep_grew = rss_bytes() - before;
  if (rc == 0) {
    char extra[160];
    snprintf(extra, sizeof extra,
             ", \"bytes_per\": %.1f, \"rss_growth\": %ld, \"sleep_bytes_per\": %.1f",
             (double)grew / (double)n, grew, (double)sleep_grew / (double)n);
    emit("actio", "pending_timer", n, n, n, 0, secs, extra);
  }
  /* A stop ends them: the sleeps cancelled, the sends dropped. */
  actio_runtime_stop(rt, ACTIO_STOP_NOW);
  uint64_t cancelled = 0;
  for (uint64_t i = 0; i < n && fs[i] != NULL; i++) {
    cancelled += actio_future_status(fs[i]) == ACTIO_ECANCELED;
    actio_future_unref(fs[i]);
  }
  free(fs);
  actio_runtime_destroy(rt);
  if (rc != 0 || cancelled != n) {
    fprintf(stderr, "actio-bench: pending timers: %s\n",
            rc != 0 ? actio_strerror(rc) : "a sleep not cancelled by the stop");
    return 1;
  }

  /* The rate: armed from this thread, fired by the timer's, handled by a
   * scheduler thread. */
  if (actio_runtime_create(&rt, NULL) != 0)
    return 1;
  rc = actio_actor_spawn(rt, &count_behavior,
                         &(actio_actor_opts){.name = "count", .state = &c,
                                             .capacity = 1u << 16}, &a);
  t0 = now_sec();
  uint64_t armed = 0;
  for (; armed < n && rc == 0; armed++)
    rc = actio_send_after(a, NULL, (int64_t)(armed % 8), NULL);
  if (rc != 0)
    armed--;
  /* Relaxed: a count; the actor's stop below orders the final reading. */
  while (atomic_load_explicit(&c.n, memory_order_relaxed) < armed)
    sched_yield();
  secs = now_sec() - t0;
  actio_runtime_destroy(rt);
  uint64_t got = atomic_load_explicit(&c.n, memory_order_relaxed);
  emit("actio", "timers", n, n, got, n - got, secs, "");
  if (rc != 0)
    fprintf(stderr, "actio-bench: timers: %s\n", actio_strerror(rc));
  return rc != 0 || got != n;
}

/* ---- db_executemany, db_stream ---- */

typedef struct many_job {
  actio_actor *db;
  const char **values; /* 2 per row: id and v */
  uint64_t batch;
  _Atomic uint64_t ok_rows;
} many_job;

/* On the worker: a batch counts once it inserted all of its rows. */
static void many_consume(actio_future *f, void *arg) {
  many_job *j = arg;
  const actio_db_batch_result *b = actio_future_value(f);
  if (b != NULL && actio_db_batch_affected(b) == j->batch)
    atomic_fetch_add_explicit(&j->ok_rows, j->batch, memory_order_relaxed);
}

static int many_start(size_t i, void *arg, actio_future **out) {
  many_job *j = arg;
  int rc = actio_db_executemany(j->db, "INSERT INTO actio_bench_many VALUES ($1, $2)", 2,
                                j->batch, j->values + i * j->batch * 2, out);
  if (rc == 0 && actio_future_on_done(*out, many_consume, j) != 0)
    return ACTIO_ENOMEM;
  return rc;
}

/* The pool for a database workload: `conns` connections, opened before
 * the clock starts. NULL on failure (said). */
static actio_actor *db_pool_for(actio_runtime **rt, const char *dsn, unsigned conns,
                                uint64_t workers, unsigned depth) {
  actio_actor *db = NULL;
  actio_db_opts o = {.dsn = dsn, .workers = (unsigned)workers, .min_connections = conns,
                     .max_connections = conns, .pipeline_depth = depth};
  int rc = actio_runtime_create(rt, NULL);
  if (rc == 0 && (rc = actio_db_spawn(*rt, &o, &db)) != 0)
    actio_runtime_destroy(*rt);
  if (rc != 0) {
    fprintf(stderr, "actio-bench: database actor: %s\n", actio_strerror(rc));
    return NULL;
  }
  if (db_wait_connected(db, conns) != 0) {
    actio_runtime_destroy(*rt);
    return NULL;
  }
  return db;
}

/* Runs sql on db and waits; 0 or -1 (said). */
static int db_exec(actio_actor *db, const char *sql) {
  actio_future *f;
  int rc = actio_db_script(db, sql, &f);
  if (rc == 0 && (rc = actio_future_wait(f, -1)) != 0)
    fprintf(stderr, "actio-bench: %s: %s\n", sql, actio_future_errmsg(f));
  actio_future_unref(f);
  return rc == 0 ? 0 : -1;
}

/* N rows (id int, v text) inserted into a fresh table in executemany
 * batches of B, C batches in flight on C connections, one batch on each at
 * a time: pgbench -c C running B INSERTs in one pipeline with one sync. */
static int run_db_many(const char *dsn, uint64_t n, uint64_t batch, uint64_t c,
                       uint64_t workers) {
  unsigned conns = c < 64 ? (unsigned)c : 64;
  uint64_t batches = n / batch;
  n = batches * batch;
  many_job job = {.batch = batch};
  job.values = malloc((size_t)n * 2 * sizeof *job.values);
  char *text = malloc((size_t)n * 24);
  if (job.values == NULL || text == NULL) {
    fprintf(stderr, "actio-bench: out of memory\n");
    return 1;
  }
  for (uint64_t i = 0; i < n; i++) { /* made before the clock, as the peers' */
    char *id = text + i * 24, *v = id + 10;
    snprintf(id, 10, "%" PRIu64, i % 1000000000);
    snprintf(v, 14, "v%" PRIu64, i % 1000000000000);
    job.values[2 * i] = id;
    job.values[2 * i + 1] = v;
  }
  actio_runtime *rt;
  job.db = db_pool_for(&rt, dsn, conns, workers, 1);
  double secs = 0;
  if (job.db != NULL &&
      db_exec(job.db, "DROP TABLE IF EXISTS actio_bench_many;"
                      "CREATE TABLE actio_bench_many (id int, v text)") == 0)
    secs = closed_loop("db_executemany", batches, c, many_start, &job);
  if (job.db != NULL)
    actio_runtime_destroy(rt);
  free(job.values);
  free(text);
  uint64_t ok = atomic_load(&job.ok_rows);
  char extra[160];
  snprintf(extra, sizeof extra, ", \"batch\": %" PRIu64 ", \"connections\": %u", batch, conns);
  extra_workers(extra, sizeof extra, workers);
  emit("actio", "db_executemany", n, c, ok, n - ok, secs, extra);
  return ok != n;
}

typedef struct stream_job {
  uint64_t rows, bad;
  int64_t next; /* the g expected next */
} stream_job;

/* On the worker: every value read and checked, as the peers do. */
static int stream_rows(void *arg, const actio_db_rowset *rows, actio_future **ready) {
  stream_job *j = arg;
  (void)ready;
  size_t n = actio_db_rowset_count(rows);
  for (size_t i = 0; i < n; i++) {
    size_t row;
    const actio_db_result *r = actio_db_rowset_at(rows, i, &row);
    int32_t g = 0;
    const char *md5 = NULL;
    if (actio_db_int32(r, row, 0, &g) != 0 || g != j->next ||
        actio_db_text(r, row, 1, &md5) != 0 || strlen(md5) != 32)
      j->bad++;
    j->next++;
  }
  j->rows += n;
  return 0;
}

/* SELECT g, md5(g::text) FROM generate_series(1, N) g through a stream
 * in batches of B rows (per_sec: rows). */
static int run_db_stream(const char *dsn, uint64_t n, uint64_t batch, uint64_t workers) {
  actio_runtime *rt;
  actio_actor *db = db_pool_for(&rt, dsn, 1, workers, 1);
  if (db == NULL)
    return 1;
  char sql[96];
  snprintf(sql, sizeof sql, "SELECT g, md5(g::text) FROM generate_series(1, %" PRIu64 ") g", n);
  stream_job job = {.next = 1};
  actio_future *f;
  double t0 = now_sec();
  int rc = actio_db_stream(db, &(actio_db_request){.sql = sql}, batch, stream_rows, &job, &f);
  if (rc == 0) {
    rc = actio_future_wait(f, -1);
    if (rc != 0)
      fprintf(stderr, "actio-bench: db_stream: %s\n", actio_future_errmsg(f));
    actio_future_unref(f);
  }
  double secs = now_sec() - t0;
  actio_runtime_destroy(rt);
  uint64_t ok = rc == 0 ? job.rows - job.bad : 0;
  char extra[160];
  snprintf(extra, sizeof extra, ", \"batch\": %" PRIu64 ", \"rows\": %" PRIu64, batch, job.rows);
  extra_workers(extra, sizeof extra, workers);
  emit("actio", "db_stream", n, 1, ok, n - ok, secs, extra);
  return ok != n;
}

/* ---- command line ---- */

enum {
  W_GATHER = 1, W_PINGPONG = 2, W_WRITE_SMALL = 8,
  W_READ_SMALL = 16, W_READ_LINES = 32, W_READ_LARGE = 64, W_HTTP_GET = 128,
  W_DB_POINT = 256, W_DB_ROWS = 512, W_PENDING = 1024, W_CQ = 2048, W_TIMERS = 4096,
  W_REMOTE = 8192, W_ECHO = 16384, W_DB_MANY = 32768, W_DB_STREAM = 65536,
  W_JOBS = 262144,
  W_HTTP_POST = 131072, W_HTTP = W_HTTP_GET | W_HTTP_POST,
  W_SMALL = W_WRITE_SMALL | W_READ_SMALL,
  W_DB = W_DB_POINT | W_DB_ROWS,
  W_FILES = W_SMALL | W_READ_LINES | W_READ_LARGE,
};

typedef struct settings {
  uint64_t n, fanout, threads, spin;
  uint64_t files, size, concurrency, workers, chunk, requests;
  uint64_t queries, connections, producers, batch, retries, replicas;
  int use_baseline, pipeline, http;
  const char *dir, *path, *url, *dsn, *nats, *durable, *proxy;
} settings;

typedef struct flag {
  const char *name;
  unsigned workloads; /* the W_* that accept it */
  size_t offset;      /* of its uint64_t in settings */
  uint64_t min, max;
} flag;

/* Bounds keep thread counts and allocations sane and keep every counter
 * below UINTPTR_MAX, which pingpong reserves for its start message. */
static const flag flags[] = {
    {"--n", W_GATHER | W_PINGPONG | W_PENDING | W_CQ | W_TIMERS, offsetof(settings, n), 1,
     UINT64_C(1) << 40},
    {"--fanout", W_GATHER, offsetof(settings, fanout), 1, 1u << 24},
    {"--threads", W_GATHER, offsetof(settings, threads), 1, 1024},
    {"--producers", W_CQ, offsetof(settings, producers), 1, 1024},
    {"--batch", W_CQ | W_DB_MANY | W_DB_STREAM | W_JOBS, offsetof(settings, batch), 1, 1u << 20},
    {"--jobs", W_JOBS, offsetof(settings, n), 1, 1000000},
    {"--replicas", W_JOBS, offsetof(settings, replicas), 1, 5},
    {"--rows", W_DB_MANY | W_DB_STREAM, offsetof(settings, n), 1, UINT64_C(1) << 40},
    {"--spin", W_PINGPONG, offsetof(settings, spin), 1, 1u << 24},
    {"--files", W_SMALL, offsetof(settings, files), 1, 100000000},
    {"--size", W_WRITE_SMALL | W_HTTP_POST, offsetof(settings, size), 0, 1u << 30},
    {"--concurrency", W_SMALL | W_HTTP | W_DB | W_REMOTE | W_DB_MANY | W_JOBS, offsetof(settings, concurrency), 1,
     1u << 20},
    {"--requests", W_HTTP | W_REMOTE, offsetof(settings, requests), 1, UINT64_C(1) << 40},
    {"--queries", W_DB, offsetof(settings, queries), 1, UINT64_C(1) << 32},
    {"--connections", W_DB, offsetof(settings, connections), 1, 1024},
    {"--workers", W_FILES | W_HTTP | W_DB | W_DB_MANY | W_DB_STREAM, offsetof(settings, workers), 1, 1024},
    {"--chunk", W_READ_LARGE, offsetof(settings, chunk), 1, 1u << 30},
    {"--retries", W_HTTP_GET, offsetof(settings, retries), 0, 10},
};

/* Flags that take a string: a path, a URL, a DSN. */
typedef struct str_flag {
  const char *name;
  unsigned workloads;
  size_t offset; /* of its const char * in settings */
} str_flag;

static const str_flag str_flags[] = {
    {"--dir", W_SMALL, offsetof(settings, dir)},
    {"--path", W_READ_LINES | W_READ_LARGE, offsetof(settings, path)},
    {"--url", W_HTTP, offsetof(settings, url)},
    {"--proxy", W_HTTP, offsetof(settings, proxy)},
    {"--dsn", W_DB | W_PENDING | W_DB_MANY | W_DB_STREAM, offsetof(settings, dsn)},
    {"--nats", W_REMOTE | W_ECHO | W_JOBS, offsetof(settings, nats)},
    {"--durable", W_WRITE_SMALL, offsetof(settings, durable)},
};

static int parse_u64(const char *s, uint64_t *out) {
  if (s == NULL || *s < '0' || *s > '9')
    return -1; /* strtoull would take "-1" or " 1" */
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno != 0 || *end != '\0')
    return -1;
  *out = (uint64_t)v;
  return 0;
}

static int bad_usage(const char *why, const char *what) {
  fprintf(stderr, "actio-bench: %s%s%s\n%s%s", why, what ? ": " : "",
          what ? what : "", usage_text, usage_text2);
  return 2;
}

int main(int argc, char **argv) {
  if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
    fputs(usage_text, stdout);
    fputs(usage_text2, stdout);
    return 0;
  }
  if (argc < 2)
    return bad_usage("no workload given", NULL);
  const char *workload = argv[1];
  unsigned w;
  settings s = {.fanout = 1000, .threads = 1, .spin = 256, .files = 10000, .size = 4096,
                .concurrency = 64, .chunk = 128u << 10,
                .dir = "/tmp/bench-files"}; /* the peer's default folder */
  if (strcmp(workload, "gather") == 0) {
    w = W_GATHER;
    s.n = 1000000;
  } else if (strcmp(workload, "pingpong") == 0) {
    w = W_PINGPONG;
    s.n = 1000000;
  } else if (strcmp(workload, "file_write_small") == 0) {
    w = W_WRITE_SMALL;
  } else if (strcmp(workload, "file_read_small") == 0) {
    w = W_READ_SMALL;
  } else if (strcmp(workload, "file_read_lines") == 0) {
    w = W_READ_LINES;
  } else if (strcmp(workload, "file_read_large") == 0) {
    w = W_READ_LARGE;
  } else if (strcmp(workload, "http_get") == 0) {
    w = W_HTTP_GET;
    s.requests = 20000;
  } else if (strcmp(workload, "http_post") == 0) {
    w = W_HTTP_POST;
    s.requests = 20000;
    s.size = 64u << 10;
  } else if (strcmp(workload, "remote_ask") == 0) {
    w = W_REMOTE;
    s.requests = 100000;
  } else if (strcmp(workload, "jobs") == 0) {
    w = W_JOBS;
    s.n = 100000;
    s.batch = 32;
    s.replicas = 1;
    s.concurrency = 4096; /* publishes awaiting their ack */
  } else if (strcmp(workload, "nats_echo") == 0) {
    w = W_ECHO;
  } else if (strcmp(workload, "cq") == 0) {
    w = W_CQ;
    s.n = 1000000;
    s.producers = 2; /* the peer's threads */
    s.batch = 256;
  } else if (strcmp(workload, "pending") == 0) {
    w = W_PENDING;
    s.n = 100000;
  } else if (strcmp(workload, "timers") == 0) {
    w = W_TIMERS;
    s.n = 1000000;
  } else if (strcmp(workload, "db_point") == 0 || strcmp(workload, "db_rows") == 0) {
    w = workload[3] == 'p' ? W_DB_POINT : W_DB_ROWS;
    s.queries = 50000;
    s.concurrency = 8; /* the peer's and pgbench's -c 8 */
  } else if (strcmp(workload, "db_executemany") == 0) {
    w = W_DB_MANY;
    s.n = 1000000;
    s.batch = 50;
    s.concurrency = 8; /* pgbench -c 8 */
  } else if (strcmp(workload, "db_stream") == 0) {
    w = W_DB_STREAM;
    s.n = 10000000;
    s.batch = 256;
  } else {
    return bad_usage("unknown workload", workload);
  }

  for (int i = 2; i < argc; i += 2) {
    const char *name = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(name, "--pipeline") == 0 && (w & W_DB)) {
      s.pipeline = 1;
      i--; /* a switch: no value follows */
      continue;
    }
    if (strcmp(name, "--http") == 0 && w == W_PENDING) {
      s.http = 1;
      i--;
      continue;
    }
    if (strcmp(name, "--impl") == 0 &&
        (w == W_HTTP_GET || w == W_PINGPONG || w == W_REMOTE || w == W_JOBS)) {
      /* The other side of each comparison: the bare libcurl multi loop
       * (the actor's floor), the bare two-thread hand-off (pingpong's
       * limit) or the bare cnats request loop. */
      const char *other = w == W_HTTP_GET                   ? "curl"
                          : w == W_REMOTE || w == W_JOBS ? "cnats"
                                                         : "threads";
      if (value != NULL && strcmp(value, "actio") == 0)
        s.use_baseline = 0;
      else if (value != NULL && strcmp(value, other) == 0)
        s.use_baseline = 1;
      else
        return bad_usage("--impl takes actio or", other);
      continue;
    }
    const str_flag *sf = NULL;
    for (size_t k = 0; k < sizeof str_flags / sizeof str_flags[0]; k++)
      if (strcmp(name, str_flags[k].name) == 0 && (str_flags[k].workloads & w))
        sf = &str_flags[k];
    if (sf != NULL) {
      if (value == NULL || *value == '\0')
        return bad_usage("missing value for", name);
      *(const char **)((char *)&s + sf->offset) = value;
      continue;
    }
    const flag *f = NULL;
    for (size_t k = 0; k < sizeof flags / sizeof flags[0]; k++)
      if (strcmp(name, flags[k].name) == 0 && (flags[k].workloads & w))
        f = &flags[k];
    if (f == NULL)
      return bad_usage("unknown flag for this workload", name);
    uint64_t v;
    if (value == NULL || parse_u64(value, &v) != 0 || v < f->min || v > f->max) {
      fprintf(stderr, "actio-bench: %s takes an integer from %" PRIu64
                      " to %" PRIu64 "\n", name, f->min, f->max);
      return bad_usage("bad value", value ? value : "(missing)");
    }
    *(uint64_t *)((char *)&s + f->offset) = v;
  }

  if (s.durable != NULL && strcmp(s.durable, "group") != 0 && strcmp(s.durable, "fsync") != 0)
    return bad_usage("--durable takes group or fsync, not", s.durable);
  if ((w & (W_READ_LINES | W_READ_LARGE)) && s.path == NULL)
    return bad_usage("--path is required for", workload);
  if (w == W_HTTP_POST && s.size == 0)
    return bad_usage("--size must be 1 or more for", workload);
  if ((w & W_HTTP) && s.url == NULL)
    return bad_usage("--url is required for", workload);
  if ((w == W_REMOTE || w == W_ECHO || w == W_JOBS) && s.nats == NULL)
    return bad_usage("--nats is required for", workload);
  if (w == W_JOBS)
    return run_jobs(s.nats, s.n, s.replicas, s.batch, s.concurrency, s.use_baseline);
  if (w == W_REMOTE)
    return run_remote_ask(s.nats, s.requests, s.concurrency, s.use_baseline);
  if (w == W_ECHO)
    return run_nats_echo(s.nats);
  if (w == W_PENDING)
    return run_pending(s.n, s.dsn, s.http);
  if (w == W_TIMERS)
    return run_timers(s.n);
  if ((w & (W_DB | W_DB_MANY | W_DB_STREAM)) && s.dsn == NULL)
    return bad_usage("--dsn is required for", workload);
  if (w == W_DB_MANY)
    return run_db_many(s.dsn, s.n, s.batch, s.concurrency, s.workers);
  if (w == W_DB_STREAM)
    return s.batch > 65536 ? bad_usage("--batch is at most 65536 for", workload)
                           : run_db_stream(s.dsn, s.n, s.batch, s.workers);
  if (s.connections != 0 && !s.pipeline)
    return bad_usage("--connections goes with --pipeline (without it, one "
                     "connection per query in flight)", NULL);
  if (s.connections == 0)
    s.connections = 8; /* pgbench -c 8 */

  switch (w) {
  case W_GATHER:
    return run_gather(s.n, s.fanout, s.threads);
  case W_CQ:
    return run_cq(s.n, s.producers, s.batch);
  case W_PINGPONG:
    return s.use_baseline ? run_handoff(s.n) : run_pingpong(s.n, s.spin);
  case W_WRITE_SMALL:
  case W_READ_SMALL:
    return run_small(w == W_WRITE_SMALL, s.dir, s.files, s.size, s.concurrency,
                     s.workers, s.durable);
  case W_READ_LINES:
    return run_lines(s.path, s.workers);
  case W_READ_LARGE:
    return run_large(s.path, s.chunk, s.workers);
  case W_HTTP_GET:
    return run_http(s.url, s.requests, s.concurrency, s.workers, s.use_baseline, 0, s.proxy,
                    (int)s.retries);
  case W_HTTP_POST:
    return run_http(s.url, s.requests, s.concurrency, s.workers, 0, (size_t)s.size, s.proxy, 0);
  default: /* W_DB_POINT, W_DB_ROWS */
    return run_db(w == W_DB_ROWS, s.dsn, s.queries, s.concurrency, s.workers,
                  s.pipeline, s.connections);
  }
}

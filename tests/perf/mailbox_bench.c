/* mailbox_bench.c: actio-bench-mailbox, the white-box mailbox benchmark:
 * producers and consumers through the internal lock-free mailbox or a
 * mutex-and-condvar queue, one JSON line per run (the format of bench/). */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "actio.h"
#include "mailbox/mailbox.h"
#include "mutex_queue.h"

/* It drives mailbox/ directly, which no user can: that is why it lives
 * beside the white-box tests and not in bench/, which uses only actio.h. */
static const char usage_text[] =
    "usage: actio-bench-mailbox [mailbox] [--n N] [--producers P] [--consumers C]\n"
    "                           [--impl actio|mutex] [--capacity K] [--spin S]\n"
    "  N messages from P producer threads to C consumer threads through one\n"
    "  lock-free mailbox (actio) or one mutex-and-condvar queue (mutex)\n"
    "  (defaults: N 2000000, P 2, C 2, actio, K 1024, S 256 polls before a\n"
    "  consumer sleeps). Prints one JSON line, workload \"mailbox\", impl\n"
    "  \"actio\" or \"mutex_queue\". Exit status: 0 ok, 1 errors, 2 bad usage.\n";

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

/* The line actio-bench prints (docs/benchmarks.md); `extra` is empty or
 * starts with ", ". */
static void emit(const char *impl, const char *workload, uint64_t n,
                 uint64_t concurrency, uint64_t ok, uint64_t errors,
                 double seconds, const char *extra) {
  double per_sec = seconds > 0 ? (double)ok / seconds : 0.0;
  printf("{\"impl\": \"%s\", \"workload\": \"%s\", \"n\": %" PRIu64
         ", \"concurrency\": %" PRIu64 ", \"ok\": %" PRIu64
         ", \"errors\": %" PRIu64 ", \"seconds\": %.6f, \"per_sec\": %.1f%s}\n",
         impl, workload, n, concurrency, ok, errors, seconds, per_sec, extra);
  fflush(stdout);
}

/* A thread that cannot start leaves the others waiting on a barrier that
 * nothing will complete: give up on the whole run. */
static void start_thread(pthread_t *t, void *(*fn)(void *), void *arg) {
  int e = pthread_create(t, NULL, fn, arg);
  if (e != 0) {
    fprintf(stderr, "actio-bench-mailbox: pthread_create: %s\n", strerror(e));
    exit(1);
  }
}

/* ---- mailbox ---- */

typedef struct mbox_bench {
  int use_baseline;
  actio__mbox *mb;
  bench_mq *mq;
  uint64_t producers, consumers;
  pthread_barrier_t start; /* every thread and main: start together */
} mbox_bench;

typedef struct producer {
  mbox_bench *b;
  uint64_t id, first, count;
  uint64_t refused;
  pthread_t thread;
} producer;

typedef struct consumer {
  mbox_bench *b;
  uint64_t popped, sum;
  uint64_t disorder; /* a producer's messages seen out of its order */
  pthread_t thread;
} consumer;

/* Both queues sit behind the same branch, so neither pays more dispatch. */
static int q_push(mbox_bench *b, void *a, void *tag) {
  if (b->use_baseline) {
    bench_mq_msg m = {a, tag};
    return bench_mq_push(b->mq, &m);
  }
  actio__mbox_msg m = {a, tag};
  return actio__mbox_push(b->mb, &m, -1);
}

/* Pops into out[] and sets *n. A lone consumer takes the run of messages
 * ready at the head at once, as an actor's only worker does; several take
 * one each, as an actor's workers do, so that none holds another's. */
enum { BATCH = 32 };
static int q_pop(mbox_bench *b, actio__mbox_msg *out, size_t *n) {
  if (b->use_baseline) {
    bench_mq_msg m;
    int rc = bench_mq_pop(b->mq, &m);
    out[0] = (actio__mbox_msg){m.a, m.b};
    *n = rc == 0;
    return rc;
  }
  return actio__mbox_pop_many(b->mb, out, b->consumers == 1 ? BATCH : 1, n, -1);
}

static void *producer_run(void *arg) {
  producer *p = arg;
  pthread_barrier_wait(&p->b->start);
  for (uint64_t i = 0; i < p->count; i++)
    if (q_push(p->b, (void *)(uintptr_t)(p->first + i), (void *)(uintptr_t)p->id) != 0)
      p->refused++;
  return NULL;
}

static void *consumer_run(void *arg) {
  consumer *c = arg;
  mbox_bench *b = c->b;
  /* Positions in a FIFO are taken in push order per producer and in pop
   * order per consumer, so each consumer must see every producer's values
   * rising: a cheap check that the queue neither reorders nor tears. */
  uint64_t *next = calloc((size_t)b->producers, sizeof *next);
  if (next == NULL) {
    fprintf(stderr, "actio-bench-mailbox: out of memory\n");
    exit(1);
  }
  pthread_barrier_wait(&b->start);
  for (;;) {
    actio__mbox_msg got[BATCH];
    size_t n = 0;
    int rc = q_pop(b, got, &n);
    if (rc == ACTIO_ECLOSED)
      break; /* closed and drained */
    if (rc != 0)
      continue;
    for (size_t i = 0; i < n; i++) {
      uint64_t v = (uintptr_t)got[i].a, id = (uintptr_t)got[i].b;
      c->popped++;
      c->sum += v;
      if (id >= b->producers || v < next[id])
        c->disorder++;
      else
        next[id] = v + 1;
    }
  }
  free(next);
  return NULL;
}

static int run_mailbox(uint64_t n, uint64_t producers, uint64_t consumers,
                       int use_baseline, uint64_t capacity, uint64_t spin) {
  mbox_bench b = {.use_baseline = use_baseline, .producers = producers,
                  .consumers = consumers};
  int rc = use_baseline ? bench_mq_create(&b.mq, (size_t)capacity)
                     : actio__mbox_create(&b.mb, (size_t)capacity);
  if (rc != 0) {
    fprintf(stderr, "actio-bench-mailbox: queue: %s\n", actio_strerror(rc));
    return 1;
  }
  if (!use_baseline)
    actio__mbox_set_spin(b.mb, (unsigned)spin);
  producer *ps = calloc((size_t)producers, sizeof *ps);
  consumer *cs = calloc((size_t)consumers, sizeof *cs);
  if (ps == NULL || cs == NULL) {
    fprintf(stderr, "actio-bench-mailbox: out of memory\n");
    return 1;
  }
  pthread_barrier_init(&b.start, NULL, (unsigned)(producers + consumers + 1));
  for (uint64_t i = 0; i < consumers; i++) {
    cs[i].b = &b;
    start_thread(&cs[i].thread, consumer_run, &cs[i]);
  }
  uint64_t first = 0;
  for (uint64_t i = 0; i < producers; i++) {
    ps[i] = (producer){.b = &b, .id = i, .first = first,
                       .count = n / producers + (i < n % producers ? 1 : 0)};
    first += ps[i].count;
    start_thread(&ps[i].thread, producer_run, &ps[i]);
  }

  pthread_barrier_wait(&b.start);
  double t0 = now_sec();
  for (uint64_t i = 0; i < producers; i++)
    pthread_join(ps[i].thread, NULL);
  /* Every push has returned: closing now loses nothing, and the consumers
   * leave once they have drained the rest. */
  if (use_baseline)
    bench_mq_close(b.mq);
  else
    actio__mbox_close(b.mb);
  for (uint64_t i = 0; i < consumers; i++)
    pthread_join(cs[i].thread, NULL);
  double secs = now_sec() - t0;

  uint64_t popped = 0, sum = 0, disorder = 0, refused = 0;
  for (uint64_t i = 0; i < consumers; i++) {
    popped += cs[i].popped;
    sum += cs[i].sum;
    disorder += cs[i].disorder;
  }
  for (uint64_t i = 0; i < producers; i++)
    refused += ps[i].refused;
  pthread_barrier_destroy(&b.start);
  free(ps);
  free(cs);
  bench_mq_destroy(b.mq);
  actio__mbox_destroy(b.mb);

  uint64_t ok = popped < n ? popped : n;
  uint64_t errors = n - ok;
  int checksum_ok = sum == sum_below(n);
  char extra[320];
  snprintf(extra, sizeof extra,
           ", \"producers\": %" PRIu64 ", \"consumers\": %" PRIu64
           ", \"capacity\": %" PRIu64 ", \"popped\": %" PRIu64
           ", \"refused\": %" PRIu64 ", \"order_errors\": %" PRIu64
           ", \"checksum\": %" PRIu64 ", \"checksum_ok\": %s",
           producers, consumers, capacity, popped, refused, disorder, sum,
           checksum_ok ? "true" : "false");
  if (!use_baseline) {
    size_t len = strlen(extra);
    snprintf(extra + len, sizeof extra - len, ", \"spin\": %" PRIu64, spin);
  }
  emit(use_baseline ? "mutex_queue" : "actio", "mailbox", n, producers + consumers,
       ok, errors, secs, extra);
  return errors > 0 || popped != n || disorder > 0 || refused > 0 || !checksum_ok;
}

/* ---- command line ---- */

static int bad_usage(const char *why, const char *what) {
  fprintf(stderr, "actio-bench-mailbox: %s%s%s\n%s", why, what ? ": " : "",
          what ? what : "", usage_text);
  return 2;
}

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

int main(int argc, char **argv) {
  uint64_t n = 2000000, producers = 2, consumers = 2, capacity = 1024, spin = 256;
  int use_baseline = 0;
  /* Bounds keep thread counts and allocations sane. */
  const struct {
    const char *name;
    uint64_t *value;
    uint64_t min, max;
  } flags[] = {
      {"--n", &n, 1, UINT64_C(1) << 40},
      {"--producers", &producers, 1, 1024},
      {"--consumers", &consumers, 1, 1024},
      {"--capacity", &capacity, 2, 1u << 24},
      {"--spin", &spin, 1, 1u << 24},
  };
  int i = 1;
  if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
    fputs(usage_text, stdout);
    return 0;
  }
  /* The workload's name is optional: the command line of actio-bench's
   * former mailbox workload still works. */
  if (argc >= 2 && strcmp(argv[1], "mailbox") == 0)
    i = 2;
  for (; i < argc; i += 2) {
    const char *name = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(name, "--impl") == 0) {
      if (value != NULL && strcmp(value, "actio") == 0)
        use_baseline = 0;
      else if (value != NULL && (strcmp(value, "mutex") == 0 ||
                                 strcmp(value, "mutex_queue") == 0))
        use_baseline = 1;
      else
        return bad_usage("--impl takes actio or mutex", value);
      continue;
    }
    size_t k = 0;
    while (k < sizeof flags / sizeof flags[0] && strcmp(name, flags[k].name) != 0)
      k++;
    if (k == sizeof flags / sizeof flags[0])
      return bad_usage("unknown flag", name);
    uint64_t v;
    if (value == NULL || parse_u64(value, &v) != 0 || v < flags[k].min ||
        v > flags[k].max) {
      fprintf(stderr, "actio-bench-mailbox: %s takes an integer from %" PRIu64
                      " to %" PRIu64 "\n", name, flags[k].min, flags[k].max);
      return bad_usage("bad value", value ? value : "(missing)");
    }
    *flags[k].value = v;
  }
  return run_mailbox(n, producers, consumers, use_baseline, capacity, spin);
}

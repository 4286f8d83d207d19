/* actors.c: a custom actor with a pool of workers, asked many times at once
 * and gathered, then a bounded map: asyncio.gather and a Semaphore in C.
 * Each result is checked; the exit status is 1 if one is wrong.
 *   actio-demo-actors */
#include <stdint.h>
#include <stdio.h>

#include <actio.h>

/* The behavior: square the number in the message and reply with it. */
static int square(actio_actor *self, void *worker, void *msg, actio_future *reply) {
  (void)self;
  (void)worker;
  uintptr_t n = (uintptr_t)msg;
  return actio_future_resolve(reply, (void *)(n * n), NULL);
}

static const actio_behavior squarer = {.handle = square};

/* For actio_map: ask the actor about item i. */
static int ask_square(size_t i, void *arg, actio_future **out) {
  return actio_ask(arg, (void *)(uintptr_t)i, -1, out);
}

/* Reports what went wrong; returns 1 (the exit status). */
static int wrong(const char *what) {
  fprintf(stderr, "wrong: %s\n", what);
  return 1;
}

int main(void) {
  actio_runtime *rt;
  actio_actor *a;
  actio_actor_opts opts = {.name = "squarer", .workers = 4};
  if (actio_runtime_create(&rt, NULL) != 0 ||
      actio_actor_spawn(rt, &squarer, &opts, &a) != 0)
    return 1;

  /* results = await asyncio.gather(*(ask(i) for i in range(1000))) */
  enum { N = 1000 };
  actio_future *asks[N], *all;
  for (uintptr_t i = 0; i < N; i++)
    if (actio_ask(a, (void *)i, -1, &asks[i]) != 0)
      return 1;
  if (actio_gather(asks, N, ACTIO_GATHER_FAIL_FAST, &all) != 0 ||
      actio_future_wait(all, -1) != 0)
    return 1;
  uint64_t sum = 0;
  int misplaced = 0;
  for (size_t i = 0; i < N; i++) {
    uintptr_t v = (uintptr_t)actio_future_value(actio_gather_item(all, i));
    sum += v;
    misplaced += v != i * i; /* each answer in its asker's place */
    actio_future_unref(asks[i]);
  }
  actio_future_unref(all);
  printf("sum of squares below %d: %llu\n", N, (unsigned long long)sum);
  if (misplaced != 0 || sum != (uint64_t)(N - 1) * N * (2 * N - 1) / 6)
    return wrong("the gathered squares");

  /* The same with at most 16 in flight. */
  actio_future *m;
  if (actio_map(N, 16, ask_square, a, ACTIO_GATHER_FAIL_FAST, &m) != 0 ||
      actio_future_wait(m, -1) != 0)
    return 1;
  printf("map, 16 at a time: item 999 -> %llu\n",
         (unsigned long long)(uintptr_t)actio_future_value(actio_gather_item(m, 999)));
  for (uintptr_t i = 0; i < N; i++)
    if ((uintptr_t)actio_future_value(actio_gather_item(m, i)) != i * i)
      return wrong("the mapped squares");
  actio_future_unref(m);

  actio_actor_stats st;
  actio_actor_stop(a, ACTIO_STOP_DRAIN); /* counters are final once stopped */
  actio_actor_stats_get(a, &st);
  printf("actor %s: %llu handled, %llu failed\n", actio_actor_name(a),
         (unsigned long long)st.handled, (unsigned long long)st.failed);
  if (st.handled != 2 * N || st.failed != 0)
    return wrong("the actor's counters: two asks per number, none failed");
  actio_runtime_destroy(rt);
  return 0;
}

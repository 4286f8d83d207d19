/* actor_impl.h: the actor's fields, shared by the actor core (actor.c) and
 * its metrics (metrics.c) within actors/core. */
#ifndef ACTIO_ACTORS_CORE_ACTOR_IMPL_H
#define ACTIO_ACTORS_CORE_ACTOR_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "actio/actor.h"
#include "actors/core/actor_internal.h"
#include "actors/core/sched.h"
#include "mailbox/mailbox.h"

/* Latency histogram, in microseconds: exact below 8, then 8 buckets per
 * power of two (within 1/8), up to 2^40 us. */
enum { HIST_BUCKETS = 8 + 38 * 8 };

/* A share of an actor's counters and latencies (metrics.c): each thread
 * counts in the share its index picks (actio__meter_mine), on lines no
 * other share uses, and the getters sum them; so a message's sender, its
 * worker and its completer write no line that another thread writes at
 * every message too, unless more threads than shares do. Relaxed
 * read-modify-writes: two threads may share a share. */
typedef struct actio__meter {
  _Alignas(64) _Atomic uint64_t accepted, started; /* by senders */
  _Atomic uint64_t handled, failed, dropped;       /* by workers */
  _Atomic uint64_t completed, errors, max_us;      /* by completers */
  _Atomic int64_t running; /* begun less ended here: the sum is what runs */
  _Atomic uint64_t hist[HIST_BUCKETS];
} actio__meter;

typedef struct worker {
  actio_actor *actor;
  pthread_t thread;
  void *ctx;
  int started;          /* thread created */
  _Atomic int waiting;  /* socket workers: in wait(), wake() may be due */
  pthread_mutex_t wake_mu; /* socket workers: wake() versus leaving */
  int live;             /* init done, worker_stop not yet: ctx is valid */
} worker;

/* A supervised child's address (actio__address_create): the handle its
 * senders keep, which reaches whichever instance runs now. */
typedef struct actio__addr {
  /* The instance sends go to: stored (release) under mu by the supervisor,
   * read (acquire) by every send without the lock. Never NULL. */
  _Atomic(actio_actor *) cur;
  pthread_mutex_t mu; /* guards moving and retired; writers of cur hold it */
  pthread_cond_t cv;  /* a change of cur or moving */
  int moving;         /* a restart runs: cur is stopping or stopped */
  /* Calls in progress through the address (actio__pin), in the low bits
   * (ACTIO__ADDR_COUNT), and two flags: ACTIO__ADDR_RETIRED while retired
   * is not empty, ACTIO__ADDR_DEAD once the last reference is gone. One
   * word, so that whoever changes it learns all three at once and need
   * not touch the address again (lifetime.c). The flags are set and
   * cleared under mu. */
  _Atomic uint64_t users;
  /* Instances it reached before, stopped, waiting for the count to be seen
   * at zero (linked by retired_next); guarded by mu. */
  struct actio_actor *retired;
  /* Released (actio__address_release): its last instance, stopped, which
   * cur still reaches; freed with the address. */
  struct actio_actor *last;
} actio__addr;

/* An address's users word (see actio__addr). */
#define ACTIO__ADDR_COUNT ((UINT64_C(1) << 62) - 1)
#define ACTIO__ADDR_RETIRED (UINT64_C(1) << 62)
#define ACTIO__ADDR_DEAD (UINT64_C(1) << 63)

struct actio_actor {
  actio_runtime *rt;
  const actio_behavior *b;
  void *state;
  char *name;
  actio__mbox *mb;         /* NULL for an address */
  actio__addr *addr;       /* an address's: set before it is shared, else NULL */
  worker *workers;
  unsigned nworkers;       /* 0: scheduled on the runtime's threads */
  /* A scheduled actor: its task, its behavior's one context, and the end
   * of its run once stopped. */
  actio__task task;
  void *ctx;
  int ctx_live;            /* worker_init succeeded, worker_stop not yet */
  pthread_mutex_t fin_mu;  /* guards finished */
  pthread_cond_t fin_cv;
  int finished;            /* closed, drained, never to run again */
  _Atomic int abort;   /* stop-now: cancel instead of handling */
  pthread_mutex_t stop_mu; /* serialises stop; guards `stopped` */
  int stopped;
  /* start-up: workers report their init result */
  pthread_mutex_t init_mu;
  pthread_cond_t init_cv;
  unsigned init_done;
  int init_rc;
  void (*state_free)(void *state);
  /* The counters: actio__meter_shares shares (aligned_alloc), each on
   * lines of its own. */
  actio__meter *meters;
  unsigned meter_shares;   /* actio__meter_shares() */
  /* References, on a line of their own: the runtime's list (until a
   * supervisor retires the instance), and each request timed in the
   * metrics (until its future completes), each transaction or COPY of a
   * database actor: the actor is freed at zero (actio__actor_unref), or
   * with the runtime. */
  char pad0[64];
  _Atomic uint32_t refs;
  char pad1[64];
  /* failure: actio_actor_fail */
  pthread_mutex_t fail_mu; /* guards the nine below */
  int is_failed;
  int fail_code;
  char *fail_why;
  actio__fail_fn monitor;
  void *monitor_arg;
  struct actio__watch *watchers; /* actio_monitor's, until it ends */
  size_t nwatchers;              /* on that list */
  size_t watch_sweep;            /* at this many, the next monitor sweeps */
  int ended;                     /* stopped: monitors report at once */
  _Atomic int owned; /* a supervisor stops it (actio__actor_set_owner) */
  actio_actor *prev; /* spawn order, newest first; guarded by rt->mu */
  actio_actor *next; /* the one spawned after it; guarded as prev */
  actio_actor *retired_next; /* in its address's retired list */
  int names;    /* registered names; guarded by rt->reg_mu */
  int unnamed;  /* stopped: names refused; guarded as names */
};


/* The instance `a` stands for: itself, or an address's current one. A send
 * pays one acquire load for it on an address, nothing more on an instance
 * (mb and addr share a line the send reads anyway). Without a pin
 * (actio__pin), only to compare: an address's instance may be freed once
 * replaced. */
static inline actio_actor *actio__instance(const actio_actor *a) {
  return a->addr == NULL ? (actio_actor *)a
                         : atomic_load_explicit(&a->addr->cur, memory_order_acquire);
}

/* The instance `a` stands for, as actio__instance, and no instance that
 * `a` reaches from now until actio__unpin(a) is freed meanwhile: a call in
 * progress through an address. Nests. Any thread. */
static inline actio_actor *actio__pin(const actio_actor *a) {
  if (a->addr == NULL)
    return (actio_actor *)a;
  /* seq_cst, both: the count before the load of cur, paired with the
   * retirer's store of cur before its read of the count (its fetch_or of
   * ACTIO__ADDR_RETIRED: a store-load pair on each side): either the
   * retirer sees this call, or this call sees the instance that replaced
   * the retired one. */
  atomic_fetch_add_explicit(&a->addr->users, 1, memory_order_seq_cst);
  return atomic_load_explicit(&a->addr->cur, memory_order_seq_cst);
}

/* Ends actio__pin(a); the last call out frees what was retired meanwhile. */
void actio__unpin(const actio_actor *a);

/* Frees everything of a stopped actor (lifetime.c): its state (state_free),
 * its mailbox, an address's retired instances. */
void actio__actor_free(actio_actor *a);

/* A statistic: relaxed. */
static inline void actio__count(_Atomic uint64_t *c) {
  atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

/* How many shares an actor's counters have: a power of two, the CPUs
 * online rounded up, at most 8 (metrics.c). */
unsigned actio__meter_shares(void);
/* The calling thread's number, from 1; 0 until its first count. */
extern _Thread_local unsigned actio__thread_no;
/* Gives the calling thread its number (metrics.c). */
unsigned actio__thread_no_new(void);
/* The share of a's counters the calling thread counts in. */
static inline actio__meter *actio__meter_mine(const actio_actor *a) {
  unsigned no = actio__thread_no;
  if (__builtin_expect(no == 0, 0))
    no = actio__thread_no_new();
  return &a->meters[no & (a->meter_shares - 1)];
}
/* Zeroed shares for a new actor, or NULL without memory; free() frees them. */
actio__meter *actio__meters_new(void);

#endif

/* deadline.c: the runtime's timer (see deadline.h): one thread over a
 * hierarchical timing wheel (six levels of 64 slots, 1 ms ticks), so that
 * arming and cancelling are O(1) whatever the number pending, and firing
 * costs O(1) per timer plus one move per level it goes down. One mutex
 * guards the wheel; the thread fires timers in batches outside it. */
#include "actors/core/deadline.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actio/error.h"
#include "actio/timer.h"
#include "actors/core/future_internal.h"
#include "actors/core/runtime.h"
#include "base/asan.h"
#include "base/clock.h"
#include "base/debug.h"
#include "base/park.h"

/* Level L holds the timers due 64^L to 64^(L+1) ticks after the wheel's
 * position, in the slot of their L-th base-64 digit; a slot's timers move
 * down a level ("cascade") when the position reaches that slot. Six levels
 * reach 2^36 ms (2.2 years); a timer later than that waits in the top
 * level and is filed again each time its slot comes round. */
#define BITS 6
#define SLOTS 64
#define LEVELS 6
#define SPAN (INT64_C(1) << (BITS * LEVELS))
/* Timers taken out of the wheel per lock hold, fired outside it. */
#define BATCH 256

/* A timer's state flags, under the timer's lock. */
enum {
  TS_QUEUED = 1,    /* in a slot */
  TS_FIRING = 2,    /* out of the wheel, held by a thread that fires or ends it */
  TS_ENDED = 4,     /* a send that will never fire again */
  TS_RELEASED = 8,  /* a send whose handle is gone (or never was) */
  TS_CANCEL = 16,   /* a send's cancel came during its fire */
  TS_CANCELLED = 32 /* ... and ended it */
};

/* A future's deadline: the failure's message behind it. */
typedef struct dl_entry {
  actio__tnode n;
  actio__timer *t;
  actio_future *f; /* a reference, owned by whoever takes the entry out */
  char msg[];
} dl_entry;

/* A sleep: a block of the pool, beside its future. */
typedef struct sleep_entry {
  actio__tnode n;
  actio__timer *t;
  actio_future *f; /* a reference, owned by whoever takes the entry out */
} sleep_entry;

_Static_assert(sizeof(sleep_entry) <= ACTIO__TBLOCK, "a sleep fits a block");

struct actio__timer {
  pthread_mutex_t mu;
  pthread_cond_t cv;      /* the thread's sleep; CLOCK_MONOTONIC */
  pthread_cond_t done_cv; /* a send stopped firing: cancels wait for it */
  actio__tnode *slot[LEVELS * SLOTS];
  uint64_t bits[LEVELS];  /* the slots that hold timers, per level */
  int64_t base_ns;        /* tick 0 */
  int64_t cur;            /* the next tick to fire: all due before it were taken */
  int64_t entered;        /* the last tick whose cascades ran */
  int64_t wake_at;        /* the tick the thread sleeps until; -1: awake */
  size_t queued;          /* timers in the wheel */
  unsigned waiters;       /* cancels waiting on done_cv */
  int stopping;           /* new timers are refused */
  int joined;             /* the stopper's own */
  uint64_t retries;       /* fires of sends that found no room */
  struct slab *room;      /* the pool's slabs with a block to give, a list */
  const actio__send_ops *ops;
  pthread_t thread;
};

/* ---- the pool of blocks (under mu: a send is made and armed in one hold) ---- */

/* A slab: SLAB bytes at an address aligned to SLAB, so a block finds its
 * slab by masking. Its blocks are handed out fresh, in address order (the
 * pages are touched only as they are used), then from its free list. */
#define SLAB (256 * 1024)
typedef struct slab {
  struct slab *prev, *next; /* in t->room while it has a block to give */
  void *free;               /* blocks given back, each holding the next */
  uint32_t used;            /* blocks handed out */
  uint32_t fresh;           /* blocks never handed out: from this index on */
} slab;
/* The first block, after the header (16-byte aligned, as malloc's). */
#define SLAB_HEAD ((sizeof(slab) + 15) & ~(size_t)15)
#define SLAB_BLOCKS ((SLAB - SLAB_HEAD) / ACTIO__TBLOCK)

static slab *slab_of(void *block) {
  return (slab *)((uintptr_t)block & ~(uintptr_t)(SLAB - 1));
}

static void room_push(actio__timer *t, slab *s) {
  s->prev = NULL;
  s->next = t->room;
  if (s->next != NULL)
    s->next->prev = s;
  t->room = s;
}

static void room_unlink(actio__timer *t, slab *s) {
  if (s->prev != NULL)
    s->prev->next = s->next;
  else
    t->room = s->next;
  if (s->next != NULL)
    s->next->prev = s->prev;
}

/* A block, or NULL when out of memory. Under mu. */
static void *block_new(actio__timer *t) {
  slab *s = t->room;
  if (s == NULL) {
    s = aligned_alloc(SLAB, SLAB);
    if (s == NULL)
      return NULL;
    *s = (slab){0};
    room_push(t, s);
  }
  void *b = s->free;
  if (b != NULL)
    s->free = actio__asan_get(b);
  else
    b = (char *)s + SLAB_HEAD + (size_t)s->fresh++ * ACTIO__TBLOCK;
  s->used++;
  if (s->free == NULL && s->fresh == SLAB_BLOCKS)
    room_unlink(t, s); /* full */
  ACTIO__ASAN_UNPOISON(b, ACTIO__TBLOCK);
  return b;
}

void *actio__tblock_new(actio__timer *t) {
  pthread_mutex_lock(&t->mu);
  void *b = block_new(t);
  pthread_mutex_unlock(&t->mu);
  return b;
}

void actio__tblock_free(actio__timer *t, void **blocks, size_t k) {
  slab *empty[16];
  size_t nempty = 0;
  if (k == 0)
    return;
  pthread_mutex_lock(&t->mu);
  for (size_t i = 0; i < k; i++) {
    slab *s = slab_of(blocks[i]);
    ACTIO__ASSERT(s->used > 0);
    if (s->free == NULL && s->fresh == SLAB_BLOCKS)
      room_push(t, s); /* was full */
    /* Poisoned while free (base/asan.h): a send used after its release is
     * reported. */
    ACTIO__ASAN_POISON(blocks[i], ACTIO__TBLOCK);
    actio__asan_set(blocks[i], s->free);
    s->free = blocks[i];
    /* Empty and not the only slab with room: its memory goes back. */
    if (--s->used == 0 && (s->prev != NULL || s->next != NULL)) {
      room_unlink(t, s);
      if (nempty == sizeof empty / sizeof *empty) {
        pthread_mutex_unlock(&t->mu);
        for (size_t j = 0; j < nempty; j++)
          free(empty[j]);
        nempty = 0;
        pthread_mutex_lock(&t->mu);
      }
      empty[nempty++] = s;
    }
  }
  pthread_mutex_unlock(&t->mu);
  for (size_t j = 0; j < nempty; j++)
    free(empty[j]);
}

/* The timer whose thread this is, if any. */
static _Thread_local const actio__timer *on_timer;

int actio__timer_current(const actio__timer *t) { return on_timer == t; }

/* ---- the wheel (under mu) ---- */

/* The tick at or after ns: a timer is never due before its time. */
static int64_t tick_at(const actio__timer *t, int64_t ns) {
  int64_t d = ns - t->base_ns;
  return d <= 0 ? 0 : d / ACTIO__NS_PER_MS + (d % ACTIO__NS_PER_MS != 0);
}

/* The tick that has fully passed by now. */
static int64_t tick_now(const actio__timer *t) {
  return (actio__now_ns() - t->base_ns) / ACTIO__NS_PER_MS;
}

static void wheel_insert(actio__timer *t, actio__tnode *n) {
  int64_t e = n->expire < t->cur ? t->cur : n->expire;
  if (e - t->cur >= SPAN)
    e = t->cur + SPAN - 1; /* beyond the wheel: filed again at its cascade */
  uint64_t delta = (uint64_t)(e - t->cur);
  unsigned level = 0;
  while (level < LEVELS - 1 && delta >= UINT64_C(1) << (BITS * (level + 1)))
    level++;
  unsigned idx = (unsigned)((uint64_t)e >> (BITS * level)) & (SLOTS - 1);
  unsigned s = level * SLOTS + idx;
  n->slot = (uint16_t)s;
  n->prev = NULL;
  n->next = t->slot[s];
  if (n->next != NULL)
    n->next->prev = n;
  t->slot[s] = n;
  t->bits[level] |= UINT64_C(1) << idx;
  n->state |= TS_QUEUED;
  t->queued++;
  /* The thread sleeps past it: wake it to sleep less (once: -1 until it
   * has looked again). */
  if (e < t->wake_at) {
    t->wake_at = -1;
    pthread_cond_signal(&t->cv);
  }
}

static void wheel_unlink(actio__timer *t, actio__tnode *n) {
  ACTIO__ASSERT(n->state & TS_QUEUED);
  unsigned s = n->slot;
  if (n->prev != NULL)
    n->prev->next = n->next;
  else
    t->slot[s] = n->next;
  if (n->next != NULL)
    n->next->prev = n->prev;
  if (t->slot[s] == NULL)
    t->bits[s / SLOTS] &= ~(UINT64_C(1) << (s % SLOTS));
  n->state &= (uint8_t)~TS_QUEUED;
  t->queued--;
}

static uint64_t rotr(uint64_t x, unsigned r) {
  r &= 63;
  return r == 0 ? x : (x >> r) | (x << (64 - r));
}

/* The first tick from cur on at which something happens: a level-0 slot is
 * due, or a higher slot cascades. INT64_MAX when the wheel is empty. */
static int64_t next_event(const actio__timer *t) {
  int64_t best = INT64_MAX;
  if (t->bits[0] != 0)
    best = t->cur + __builtin_ctzll(rotr(t->bits[0], (unsigned)(t->cur & (SLOTS - 1))));
  for (unsigned l = 1; l < LEVELS; l++) {
    if (t->bits[l] == 0)
      continue;
    unsigned shift = BITS * l;
    /* The first whole unit of this level from cur on, then its first slot
     * that holds timers: the next cascade of that slot. */
    int64_t u = (t->cur + (INT64_C(1) << shift) - 1) >> shift;
    int64_t at = (u + __builtin_ctzll(rotr(t->bits[l], (unsigned)(u & (SLOTS - 1))))) << shift;
    if (at < best)
      best = at;
  }
  return best;
}

/* Entering tick cur: the slots whose turn it is move down a level. */
static void cascade(actio__timer *t) {
  for (unsigned l = 1; l < LEVELS; l++) {
    unsigned shift = BITS * l;
    if (t->cur & ((INT64_C(1) << shift) - 1))
      break;
    unsigned idx = (unsigned)(t->cur >> shift) & (SLOTS - 1);
    actio__tnode *n = t->slot[l * SLOTS + idx];
    t->slot[l * SLOTS + idx] = NULL;
    t->bits[l] &= ~(UINT64_C(1) << idx);
    while (n != NULL) {
      actio__tnode *next = n->next;
      n->state &= (uint8_t)~TS_QUEUED;
      t->queued--;
      wheel_insert(t, n); /* due before the next turn of this slot: lower */
      n = next;
    }
  }
}

/* A timer taken out of the wheel, read under the lock: once it is
 * released, a deadline's entry may be freed by its future's completion. */
typedef struct taken {
  actio__tnode *n;
  actio_future *f; /* a deadline's or a sleep's */
  int kind;
} taken;

/* Takes the timers of slot s out of the wheel, marked FIRING, into out[k]
 * on, until out holds BATCH. Returns how many out holds. */
static size_t take_slot(actio__timer *t, unsigned s, taken *out, size_t k) {
  actio__tnode *n;
  while (k < BATCH && (n = t->slot[s]) != NULL) {
    wheel_unlink(t, n);
    n->state |= TS_FIRING;
    out[k].f = n->kind == ACTIO__TK_DEADLINE ? ((dl_entry *)n)->f
               : n->kind == ACTIO__TK_SLEEP  ? ((sleep_entry *)n)->f
                                             : NULL;
    out[k].kind = n->kind;
    out[k++].n = n;
  }
  return k;
}

/* Takes up to BATCH timers due by tick `now` out of the wheel, marked
 * FIRING, into out. Returns how many. */
static size_t take_due(actio__timer *t, int64_t now, taken *out) {
  size_t k = 0;
  while (k < BATCH) {
    if (t->entered != t->cur) {
      int64_t ev = next_event(t);
      if (ev > now) { /* nothing more is due: skip the empty ticks */
        if (now + 1 > t->cur)
          t->cur = now + 1;
        break;
      }
      t->cur = ev;
      cascade(t);
      t->entered = ev;
    }
    unsigned s = (unsigned)(t->cur & (SLOTS - 1));
    k = take_slot(t, s, out, k);
    if (t->slot[s] != NULL)
      break; /* the batch is full; this tick goes on next time */
    t->cur++;
  }
  return k;
}

/* Takes up to BATCH timers of any time out of the wheel (the stop). */
static size_t take_any(actio__timer *t, taken *out) {
  size_t k = 0;
  for (unsigned s = 0; s < LEVELS * SLOTS && k < BATCH; s++)
    k = take_slot(t, s, out, k);
  return k;
}

/* A send leaves FIRING for good (under mu): 1 if it is to be freed. */
static int send_end(actio__timer *t, actio__tnode *n, uint8_t how) {
  n->state = (uint8_t)((n->state & ~TS_FIRING) | TS_ENDED | how);
  if (t->waiters > 0)
    pthread_cond_broadcast(&t->done_cv);
  return (n->state & TS_RELEASED) != 0;
}

/* Ends the sends of ns (FIRING, taken by this thread) whose message must
 * be dropped: outside the lock, then under it. */
static void sends_drop(actio__timer *t, actio__tnode **ns, size_t k) {
  for (size_t i = 0; i < k; i++)
    t->ops->drop(ns[i]);
  size_t nfree = 0;
  pthread_mutex_lock(&t->mu);
  for (size_t i = 0; i < k; i++) {
    uint8_t how = (ns[i]->state & TS_CANCEL) ? TS_CANCELLED : 0;
    if (send_end(t, ns[i], how))
      ns[nfree++] = ns[i];
  }
  pthread_mutex_unlock(&t->mu);
  if (nfree > 0)
    t->ops->release(ns, nfree);
}

/* Completes the futures of the deadlines and sleeps taken, with `code`
 * (ACTIO_ETIMEDOUT when due: a sleep then resolves; ACTIO_ECANCELED at a
 * stop), and puts the sends in `sends`. Returns how many sends. */
static size_t complete_futures(actio__timer *t, const taken *ts, size_t k, int code,
                               actio__tnode **sends) {
  void *slept[BATCH];
  size_t nsends = 0, nslept = 0;
  for (size_t i = 0; i < k; i++) {
    actio__tnode *n = ts[i].n;
    if (ts[i].kind == ACTIO__TK_SEND) {
      sends[nsends++] = n;
      continue;
    }
    actio_future *f = ts[i].f;
    if (ts[i].kind == ACTIO__TK_DEADLINE) {
      /* The entry is freed by entry_done, which cannot run before f is
       * complete, and its message is read only by the winner. */
      actio__future_abort(f, code, code == ACTIO_ETIMEDOUT ? ((dl_entry *)n)->msg : NULL);
    } else {
      /* A cancel's hook running now finds the sleep taken (it waits for
       * it); later cancels run no hook. */
      actio_future_clear_cancel(f);
      if (code == ACTIO_ETIMEDOUT)
        actio_future_resolve(f, NULL, NULL);
      else
        actio_future_cancel(f);
      slept[nslept++] = n;
    }
    actio_future_unref(f);
  }
  if (nslept > 0)
    actio__tblock_free(t, slept, nslept);
  return nsends;
}

static void *timer_main(void *arg) {
  actio__timer *t = arg;
  taken ts[BATCH];
  actio__tnode *ns[BATCH];
  int64_t next[BATCH];
  on_timer = t;
  actio__thread_name("actio-timer", -1);
  pthread_mutex_lock(&t->mu);
  while (!t->stopping) {
    int64_t now = tick_now(t);
    size_t k = take_due(t, now, ts);
    if (k == 0) {
      int64_t ev = next_event(t);
      t->wake_at = ev;
      int64_t at = -1; /* nothing pending, or beyond any clock: until signalled */
      if (ev != INT64_MAX && ev < (INT64_MAX - t->base_ns) / ACTIO__NS_PER_MS)
        at = t->base_ns + ev * ACTIO__NS_PER_MS;
      actio__cond_wait_until(&t->cv, &t->mu, at);
      t->wake_at = -1;
      continue;
    }
    pthread_mutex_unlock(&t->mu);
    size_t sends = complete_futures(t, ts, k, ACTIO_ETIMEDOUT, ns);
    for (size_t i = 0; i < sends; i++)
      next[i] = t->ops->fire(ns[i], now);
    /* Sends fired again go back in; those that are over are ended; those
     * stopped meanwhile have their message dropped. */
    size_t ndrop = 0, nfree = 0;
    actio__tnode *drops[BATCH];
    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < sends; i++) {
      actio__tnode *n = ns[i];
      if (next[i] == ACTIO__SEND_DONE) {
        if (send_end(t, n, 0))
          ns[nfree++] = n;
      } else if ((n->state & TS_CANCEL) || t->stopping) {
        drops[ndrop++] = n;
      } else {
        /* Nobody waits for it: a cancel would have set TS_CANCEL. */
        n->state &= (uint8_t)~TS_FIRING;
        if (next[i] == ACTIO__SEND_RETRY) {
          /* 1, 2, 4 ... ms after each fire in a row that found no room. */
          int64_t pause = INT64_C(1) << n->tries;
          n->expire = now + pause;
          if (pause < ACTIO__SEND_BACKOFF_MS)
            n->tries++;
          t->retries++;
        } else {
          n->tries = 0;
          n->expire = next[i];
        }
        wheel_insert(t, n);
      }
    }
    if (ndrop > 0) {
      pthread_mutex_unlock(&t->mu);
      sends_drop(t, drops, ndrop);
      pthread_mutex_lock(&t->mu);
    }
    if (nfree > 0) {
      pthread_mutex_unlock(&t->mu);
      t->ops->release(ns, nfree);
      pthread_mutex_lock(&t->mu);
    }
  }
  pthread_mutex_unlock(&t->mu);
  return NULL;
}

int actio__timer_create(actio__timer **out, const actio__send_ops *ops) {
  actio__timer *t = calloc(1, sizeof *t);
  if (t == NULL)
    return ACTIO_ENOMEM;
  t->ops = ops;
  t->base_ns = actio__now_ns();
  t->entered = -1;
  t->wake_at = -1;
  actio__cond_init(&t->cv);
  pthread_cond_init(&t->done_cv, NULL);
  pthread_mutex_init(&t->mu, NULL);
  int rc = pthread_create(&t->thread, NULL, timer_main, t);
  if (rc != 0) {
    pthread_cond_destroy(&t->cv);
    pthread_cond_destroy(&t->done_cv);
    pthread_mutex_destroy(&t->mu);
    free(t);
    return -rc;
  }
  *out = t;
  return 0;
}

void actio__timer_stop(actio__timer *t) {
  if (t->joined)
    return;
  pthread_mutex_lock(&t->mu);
  t->stopping = 1;
  pthread_cond_signal(&t->cv);
  pthread_mutex_unlock(&t->mu);
  pthread_join(t->thread, NULL);
  t->joined = 1;
  /* Cancel what still waits, a batch at a time; nothing joins the wheel
   * any more (stopping). */
  taken ts[BATCH];
  actio__tnode *ns[BATCH];
  for (;;) {
    pthread_mutex_lock(&t->mu);
    size_t k = take_any(t, ts);
    pthread_mutex_unlock(&t->mu);
    if (k == 0)
      break;
    size_t sends = complete_futures(t, ts, k, ACTIO_ECANCELED, ns);
    sends_drop(t, ns, sends);
  }
}

void actio__timer_destroy(actio__timer *t) {
  if (t == NULL)
    return;
  actio__timer_stop(t);
  ACTIO__ASSERT(t->queued == 0);
  /* Every block came back (a send's handle is released before the
   * runtime is destroyed), so only slabs with room are left. */
  while (t->room != NULL) {
    slab *s = t->room;
    ACTIO__ASSERT(s->used == 0);
    t->room = s->next;
    free(s);
  }
  pthread_cond_destroy(&t->cv);
  pthread_cond_destroy(&t->done_cv);
  pthread_mutex_destroy(&t->mu);
  free(t);
}

/* Files n, due at tick `expire`. Returns 0 or ACTIO_ECLOSED. */
static int arm(actio__timer *t, actio__tnode *n, int64_t expire) {
  pthread_mutex_lock(&t->mu);
  if (t->stopping) { /* the runtime stopped: nothing would fire it */
    pthread_mutex_unlock(&t->mu);
    return ACTIO_ECLOSED;
  }
  n->expire = expire;
  wheel_insert(t, n);
  pthread_mutex_unlock(&t->mu);
  return 0;
}

/* The tick delay_ms (>= 0) from now, saturated. */
static int64_t tick_after(const actio__timer *t, int64_t delay_ms) {
  int64_t now = tick_at(t, actio__now_ns());
  return delay_ms > INT64_MAX - now ? INT64_MAX : now + delay_ms;
}

/* ---- sends (the runtime fires them through ops) ---- */

int actio__send_arm(actio__timer *t, actio__tnode *n, int64_t delay_ms, int held) {
  ACTIO__ASSERT(n->kind == ACTIO__TK_SEND && delay_ms >= 0);
  n->state = held ? 0 : TS_RELEASED;
  return arm(t, n, tick_after(t, delay_ms));
}

int actio__send_arm_new(actio__timer *t, const void *init, size_t size, int64_t delay_ms,
                        actio_timer **out) {
  ACTIO__ASSERT(size <= ACTIO__TBLOCK && ((const actio__tnode *)init)->kind == ACTIO__TK_SEND);
  int64_t expire = tick_after(t, delay_ms); /* the clock outside the lock */
  pthread_mutex_lock(&t->mu);
  actio__tnode *n = t->stopping ? NULL : block_new(t);
  if (n == NULL) {
    int rc = t->stopping ? ACTIO_ECLOSED : ACTIO_ENOMEM;
    pthread_mutex_unlock(&t->mu);
    return rc;
  }
  memcpy(n, init, size);
  n->state = out != NULL ? 0 : TS_RELEASED;
  if (out != NULL)
    *out = (actio_timer *)n; /* before anything can fire it */
  n->expire = expire;
  wheel_insert(t, n);
  pthread_mutex_unlock(&t->mu);
  return 0;
}

int actio__send_cancel(actio__timer *t, actio__tnode *n) {
  int rc;
  pthread_mutex_lock(&t->mu);
  if (n->state & (TS_ENDED | TS_CANCEL)) {
    rc = ACTIO_EALREADY;
  } else if (n->state & TS_QUEUED) {
    wheel_unlink(t, n);
    n->state |= TS_FIRING | TS_CANCEL;
    pthread_mutex_unlock(&t->mu);
    sends_drop(t, &n, 1);
    return 0;
  } else if (actio__timer_current(t)) {
    /* Its own fire is running on this thread (a make function, a dead
     * letter hook): a periodic send stops after it, a one-shot delivers. */
    rc = n->period != 0 ? 0 : ACTIO_EALREADY;
    if (rc == 0)
      n->state |= TS_CANCEL;
  } else {
    n->state |= TS_CANCEL;
    t->waiters++;
    while (n->state & TS_FIRING)
      pthread_cond_wait(&t->done_cv, &t->mu);
    t->waiters--;
    /* A fire that saw TS_CANCEL dropped its message, not filed it again. */
    rc = (n->state & TS_CANCELLED) ? 0 : ACTIO_EALREADY;
  }
  pthread_mutex_unlock(&t->mu);
  return rc;
}

void actio__send_release(actio__timer *t, actio__tnode *n) {
  pthread_mutex_lock(&t->mu);
  ACTIO__ASSERT(!(n->state & TS_RELEASED));
  n->state |= TS_RELEASED;
  int ended = (n->state & TS_ENDED) != 0;
  pthread_mutex_unlock(&t->mu);
  if (ended)
    t->ops->release(&n, 1);
}

uint64_t actio__timer_retries(actio__timer *t) {
  pthread_mutex_lock(&t->mu);
  uint64_t r = t->retries;
  pthread_mutex_unlock(&t->mu);
  return r;
}

/* ---- sleeps ---- */

/* The sleep's cancel hook: a sleep still in the wheel leaves it; one taken
 * by the thread (or the stop) is theirs to free. */
static void sleep_cancelled(void *arg) {
  sleep_entry *e = arg;
  actio__timer *t = e->t;
  pthread_mutex_lock(&t->mu);
  int queued = (e->n.state & TS_QUEUED) != 0;
  if (queued)
    wheel_unlink(t, &e->n);
  pthread_mutex_unlock(&t->mu);
  if (queued) {
    actio_future_unref(e->f); /* the canceller holds its own */
    void *b = e;
    actio__tblock_free(t, &b, 1);
  }
}

int actio_sleep(actio_runtime *rt, int64_t ms, actio_future **out) {
  if (rt == NULL || ms < 0 || out == NULL)
    return ACTIO_EINVAL;
  actio__timer *t = rt->timer;
  void *b = actio__tblock_new(t);
  sleep_entry *e = b;
  actio_future *f;
  if (e == NULL || actio_future_create(&f) != 0) {
    if (b != NULL)
      actio__tblock_free(t, &b, 1);
    return ACTIO_ENOMEM;
  }
  *e = (sleep_entry){.n = {.kind = ACTIO__TK_SLEEP}, .t = t, .f = f};
  actio_future_ref(f); /* the timer's */
  actio_future_on_cancel(f, sleep_cancelled, e); /* a new future: 0 */
  int rc = arm(t, &e->n, tick_after(t, ms));
  if (rc != 0) {
    actio_future_clear_cancel(f);
    actio_future_unref(f);
    actio_future_unref(f);
    actio__tblock_free(t, &b, 1);
    return rc;
  }
  *out = f;
  return 0;
}

/* ---- deadlines ---- */

/* Runs once per entry, whoever completed the future. */
static void entry_done(actio_future *f, void *arg) {
  dl_entry *e = arg;
  actio__timer *t = e->t;
  (void)f;
  pthread_mutex_lock(&t->mu);
  int queued = (e->n.state & TS_QUEUED) != 0;
  if (queued)
    wheel_unlink(t, &e->n);
  pthread_mutex_unlock(&t->mu);
  if (queued) /* else whoever took it out owns the reference */
    actio_future_unref(e->f);
  free(e);
}

int actio__deadline_at(actio__timer *t, actio_future *f, int64_t deadline_ns,
                       const char *msg) {
  /* First, so that a deadline that fires finds it set. */
  if (actio__future_set_deadline_ns(f, deadline_ns) != 0)
    return ACTIO_ENOMEM;
  size_t len = strlen(msg) + 1;
  dl_entry *e = malloc(sizeof *e + len);
  if (e == NULL)
    return ACTIO_ENOMEM;
  *e = (dl_entry){.n = {.kind = ACTIO__TK_DEADLINE}, .t = t, .f = f};
  memcpy(e->msg, msg, len);
  actio_future_ref(f);
  int rc = arm(t, &e->n, tick_at(t, deadline_ns));
  if (rc != 0) {
    actio_future_unref(f);
    free(e);
    return rc;
  }
  /* If f is already complete this runs now and takes the entry back out. */
  if (actio_future_on_done(f, entry_done, e) != 0) {
    pthread_mutex_lock(&t->mu);
    int queued = (e->n.state & TS_QUEUED) != 0;
    if (queued)
      wheel_unlink(t, &e->n);
    pthread_mutex_unlock(&t->mu);
    if (queued) /* else the timer fired and owns the reference */
      actio_future_unref(f);
    free(e); /* the timer thread never touches an entry it took out */
    return ACTIO_ENOMEM;
  }
  return 0;
}

int actio__deadline_after(actio_runtime *rt, actio_future *f, int64_t timeout_ms,
                          const char *msg) {
  if (rt == NULL || f == NULL || timeout_ms < 0)
    return ACTIO_EINVAL;
  int64_t deadline = actio__deadline_ns(timeout_ms);
  if (deadline < 0)
    return 0; /* beyond any clock: never fires */
  char m[64];
  if (msg == NULL) {
    snprintf(m, sizeof m, "deadline of %" PRId64 " ms passed", timeout_ms);
    msg = m;
  }
  return actio__deadline_at(rt->timer, f, deadline, msg);
}

int actio_future_set_deadline(actio_runtime *rt, actio_future *f,
                              int64_t timeout_ms) {
  return actio__deadline_after(rt, f, timeout_ms, NULL);
}

static _Thread_local int64_t group_deadline_ns = -1;

int64_t actio__group_enter(int64_t deadline_ns) {
  int64_t outer = group_deadline_ns;
  group_deadline_ns = deadline_ns;
  return outer;
}

void actio__group_leave(int64_t outer) { group_deadline_ns = outer; }

int actio__deadline_inherit(actio_runtime *rt, actio_future *f) {
  if (group_deadline_ns < 0)
    return 0;
  return actio__deadline_at(rt->timer, f, group_deadline_ns, ACTIO__GROUP_DEADLINE_MSG);
}

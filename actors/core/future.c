/* future.c: the future itself: completion exactly once, callbacks, waiting,
 * cancellation hooks. Lock-free; waiting sleeps on a futex. */
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actio/error.h"
#include "actors/core/burst.h"
#include "actors/core/future_internal.h"
#include "base/clock.h"
#include "base/debug.h"
#include "base/park.h"
#include "base/recycle.h"

/* word: the state in its low 32 bits, the reference count in its high 32
 * (REF each), so that a registration flags the state and takes its
 * reference in one read-modify-write. The state: the phase in the low
 * bits, plus flags: a thread sleeps on the futex (the low half); the
 * inline callback slot is taken; the future is on a completion queue
 * through a callback record (cq.c); the inline slot holds a completion
 * queue's registration (on its queue until drained: see cb_inline); a
 * callback record was (or is being) pushed onto `cbs`. BUSY is the winner
 * of the completion race writing the result. */
enum { F_PENDING = 0, F_BUSY = 1, F_DONE = 2, F_PHASE = 3, F_WAITERS = 4,
       F_CB0 = 8, F_CB0_READY = 16, F_QUEUED = 32, F_CB0_CQ = 64, F_CBS = 128 };
#define REF (UINT64_C(1) << 32)
#define REFS(w) ((uint32_t)((w) >> 32))
/* hook: the cancel hook's life. INSTALLING guards the two fields while
 * on_cancel writes them. */
enum { H_NONE, H_INSTALLING, H_SET, H_FIRING, H_SPENT };

/* A record stays in its future's list until the future is freed:
 * actio__future_off_done may walk the list while the completion runs it. */
typedef struct cb {
  _Atomic(actio_done_fn) fn; /* NULL once withdrawn or taken to run */
  void *arg;
  /* Older, until the completion turns the list round (newer): relaxed,
   * as a walker may read it meanwhile (see off_done). */
  _Atomic(struct cb *) next;
} cb;

/* In an inline slot of F_CB0_CQ: its registration's event was drained. */
static actio__future_queue cq_drained_sentinel;
#define CQ_DRAINED (&cq_drained_sentinel)

/* Marks the callback list closed (its head's low bit): the future
 * completed and ran it. */
#define CB_CLOSED ((uintptr_t)1)
#define CB_HEAD(v) ((cb *)((v) & ~CB_CLOSED))

/* What few futures need, made on first need: an error's message, an
 * adopted value's future, a combinator's state or an error's details, a
 * deadline. */
typedef struct future_ext {
  char *errmsg;
  actio_future *src;           /* the future an adopted value lives in */
  void *aux;
  actio_free_fn aux_free;
  actio_free_fn gone_fn;       /* actio__future_on_free's hook, or NULL */
  void *gone_arg;
  _Atomic int64_t deadline_ns; /* -1: none */
} future_ext;

/* The first callback, inside the future: no allocation for the common
 * single one (an actor's timing, a gather's item); or, under F_CB0_CQ, a
 * completion queue's registration, delivered without a callback's
 * reference of its own, and published by its queue's pointer (NULL until
 * then) rather than by F_CB0_READY: one read-modify-write fewer. Once
 * its event is drained, the drain stores CQ_DRAINED there (a store where
 * clearing a flag of the word was a read-modify-write), and the future may
 * be registered again. */
typedef union cb_inline {
  struct {
    actio_done_fn fn;
    void *arg;
  } cb;
  struct {
    _Atomic(actio__future_queue *) q;
    uint64_t tag;
  } cq;
} cb_inline;

/* 88 bytes (a 96-byte heap block): a pending ask costs that, its message
 * aside. What the thread that takes a completed future reads, and frees it
 * with, comes first: 32 bytes, in one line but for one block in four (heap
 * blocks are 16-byte aligned), so a future completed on one thread and
 * taken on another crosses one line back and forth, not two. */
struct actio_future {
  _Atomic uint64_t word;     /* the state and the references (above) */
  int status;                /* written by the winner, read after F_DONE */
  _Atomic uint32_t hook;
  _Atomic(void *) value;     /* NULL once taken */
  _Atomic(future_ext *) ext; /* NULL until needed */
  _Atomic uintptr_t cbs;     /* LIFO of further callbacks, | CB_CLOSED */
  actio_free_fn value_free;
  actio_cancel_fn cancel_fn;
  void *cancel_arg;
  _Atomic int64_t track;     /* its actor's timing of it (metrics.c) */
  cb_inline cb0;             /* claimed by F_CB0, published by F_CB0_READY or cq.q */
};

_Static_assert(sizeof(actio_future) <= 88, "a future fits a 96-byte block");

/* The state half of the word, which waiters sleep on (a futex is 32 bits). */
static uint32_t *futex_word(actio_future *f) {
  return (uint32_t *)(void *)&f->word + (__BYTE_ORDER__ == __ORDER_BIG_ENDIAN__);
}

/* Extensions go where their futures go: a chain's future (combinators.c)
 * and one with a deadline or an error text has one, made by the thread
 * that makes the future and freed by the one that frees it. */
static actio__recycler exts = ACTIO__RECYCLER(sizeof(future_ext), ACTIO__RECYCLE_FUTURE_EXT);

/* f's extension, made if it has none yet (any thread). NULL when out of
 * memory. */
static future_ext *ext_get(actio_future *f) {
  /* Acquire: a made extension is seen with its fields. */
  future_ext *e = atomic_load_explicit(&f->ext, memory_order_acquire);
  if (e != NULL)
    return e;
  future_ext *n = actio__recycle_new(&exts);
  if (n == NULL)
    return NULL;
  n->errmsg = NULL;
  n->src = NULL;
  n->aux = NULL;
  n->aux_free = NULL;
  n->gone_fn = NULL;
  n->gone_arg = NULL;
  atomic_init(&n->deadline_ns, -1);
  /* Acq_rel: publish ours, or see the winner's. */
  if (atomic_compare_exchange_strong_explicit(&f->ext, &e, n, memory_order_acq_rel,
                                              memory_order_acquire))
    return n;
  actio__recycle_free(&exts, n);
  return e;
}

static future_ext *ext_peek(const actio_future *f) {
  return atomic_load_explicit(&((actio_future *)f)->ext, memory_order_acquire);
}

/* Futures are often made on one thread and freed on another (completed for
 * an event loop, answered by an actor): their blocks go back through a
 * recycler rather than a remote free each. */
static actio__recycler futures = ACTIO__RECYCLER(sizeof(actio_future), ACTIO__RECYCLE_FUTURE);
/* So do the callback records behind the inline slot: made by the
 * registrant, freed by whichever thread completes the future. */
static actio__recycler callbacks = ACTIO__RECYCLER(sizeof(cb), ACTIO__RECYCLE_CALLBACK);

static actio_future *future_new(void) {
  actio_future *f = actio__recycle_new(&futures);
  if (f == NULL)
    return NULL;
  memset(f, 0, sizeof *f);
  atomic_init(&f->word, REF);
  return f;
}

int actio_future_create(actio_future **out) {
  if (out == NULL)
    return ACTIO_EINVAL;
  *out = future_new();
  return *out ? 0 : ACTIO_ENOMEM;
}

void actio_future_ref(actio_future *f) {
  /* Relaxed: the caller already holds a reference, so nothing to order. */
  uint64_t before = atomic_fetch_add_explicit(&f->word, REF, memory_order_relaxed);
  ACTIO__ASSERT(REFS(before) > 0 && REFS(before) < UINT32_MAX);
  (void)before;
}

static void future_free(actio_future *f) {
  future_ext *g = atomic_load_explicit(&f->ext, memory_order_relaxed);
  if (g != NULL && g->gone_fn != NULL)
    g->gone_fn(g->gone_arg); /* first: a try_ref racing it still finds f whole */
  void *v = atomic_load_explicit(&f->value, memory_order_relaxed);
  if (v != NULL && f->value_free != NULL)
    f->value_free(v);
  future_ext *e = atomic_load_explicit(&f->ext, memory_order_relaxed);
  if (e != NULL) {
    free(e->errmsg);
    actio_future_unref(e->src);
    if (e->aux_free != NULL)
      e->aux_free(e->aux);
    actio__recycle_free(&exts, e);
  }
  /* Each registered callback holds a reference until it has run or was
   * withdrawn: what is left in the list was withdrawn. */
  cb *c = CB_HEAD(atomic_load_explicit(&f->cbs, memory_order_relaxed));
  while (c != NULL) {
    cb *next = atomic_load_explicit(&c->next, memory_order_relaxed);
    ACTIO__ASSERT(atomic_load_explicit(&c->fn, memory_order_relaxed) == NULL);
    actio__recycle_free(&callbacks, c);
    c = next;
  }
  actio__recycle_free(&futures, f);
}

int actio__future_try_ref(actio_future *f) {
  uint64_t w = atomic_load_explicit(&f->word, memory_order_relaxed);
  /* Relaxed, as a ref: a count seen above zero by the exchange means the
   * last drop has not happened, and now cannot until ours. */
  while (REFS(w) != 0)
    if (atomic_compare_exchange_weak_explicit(&f->word, &w, w + REF, memory_order_relaxed,
                                              memory_order_relaxed))
      return 1;
  return 0;
}

int actio__future_sole_ref(const actio_future *f) {
  return REFS(atomic_load_explicit(&((actio_future *)f)->word, memory_order_acquire)) == 1;
}

int actio__future_on_free(actio_future *f, actio_free_fn fn, void *arg) {
  future_ext *e = ext_get(f);
  if (e == NULL)
    return ACTIO_ENOMEM;
  ACTIO__ASSERT(e->gone_fn == NULL);
  e->gone_fn = fn;
  e->gone_arg = arg;
  return 0;
}

void actio_future_unref(actio_future *f) {
  if (f == NULL)
    return;
  /* Release: our writes to the future happen before its destruction;
   * acquire on the last drop: the destroyer sees everyone's writes. */
  uint64_t before = atomic_fetch_sub_explicit(&f->word, REF, memory_order_acq_rel);
  ACTIO__ASSERT(REFS(before) > 0); /* a reference dropped twice */
  if (REFS(before) == 1)
    future_free(f);
}

/* The completion race: exactly one caller moves PENDING to BUSY. */
static int begin(actio_future *f) {
  uint64_t s = atomic_load_explicit(&f->word, memory_order_relaxed);
  while ((s & F_PHASE) == F_PENDING) {
    /* Acquire: the result is written only after winning. */
    if (atomic_compare_exchange_weak_explicit(&f->word, &s,
                                              (s & ~(uint64_t)F_PHASE) | F_BUSY,
                                              memory_order_acquire,
                                              memory_order_relaxed))
      return 1;
  }
  return 0;
}

/* `old`: the state just before DONE. The inline callback runs here if its
 * registrant published it in time; else the registrant sees DONE when it
 * publishes, and runs it itself. A queue's registration claimed before
 * DONE is delivered here, once its registrant has written it. */
static void run_callbacks(actio_future *f, uint64_t old) {
  if (old & F_CB0_CQ) {
    actio__future_queue *q;
    /* Acquire: the tag, written before. NULL: the registrant is between
     * its CAS and this store (two stores): let it finish. */
    while ((q = atomic_load_explicit(&f->cb0.cq.q, memory_order_acquire)) == NULL)
      sched_yield();
    /* The queue takes over the registration's reference. */
    q->deliver(f, q, f->cb0.cq.tag);
  } else if (old & F_CB0_READY) {
    f->cb0.cb.fn(f, f->cb0.cb.arg);
    actio_future_unref(f); /* the reference on_done took */
  }
  /* No record was pushed before DONE: a registrant after it saw DONE in
   * its F_CBS and runs its callback itself. */
  if (!(old & F_CBS))
    return;
  /* Acq_rel: registrants' nodes are visible to us; a later registrant that
   * sees CB_CLOSED also sees the result published before. The records
   * stay listed (freed with f): a withdrawal may be walking them. */
  cb *c = CB_HEAD(atomic_fetch_or_explicit(&f->cbs, CB_CLOSED, memory_order_acq_rel));
  cb *rev = NULL; /* run in registration order */
  while (c != NULL) {
    cb *next = atomic_load_explicit(&c->next, memory_order_relaxed);
    atomic_store_explicit(&c->next, rev, memory_order_relaxed);
    rev = c;
    c = next;
  }
  /* The list now starts at the oldest: for the future's free, and
   * walkers (release: the turned `next`s before the new head). */
  atomic_store_explicit(&f->cbs, (uintptr_t)rev | CB_CLOSED, memory_order_release);
  for (; rev != NULL; rev = atomic_load_explicit(&rev->next, memory_order_relaxed)) {
    /* Relaxed: the record's fields were published by the list's acq_rel;
     * the exchange against off_done's decides who owns the reference. */
    actio_done_fn fn = atomic_exchange_explicit(&rev->fn, NULL, memory_order_relaxed);
    if (fn != NULL) { /* else withdrawn: off_done dropped its reference */
      fn(f, rev->arg);
      actio_future_unref(f); /* the reference on_done took */
    }
  }
}

/* Publishes the result written by the BUSY winner. The caller holds a
 * reference, so f outlives the callbacks run here. */
static void finish(actio_future *f) {
  /* Release: the result (status, value, errmsg) before DONE. BUSY + 1 is
   * DONE, the flags kept. */
  uint64_t old = atomic_fetch_add_explicit(&f->word, F_DONE - F_BUSY,
                                           memory_order_acq_rel);
  ACTIO__ASSERT((old & F_PHASE) == F_BUSY); /* only the race's winner finishes */
  if (old & F_WAITERS)
    actio__futex_wake(futex_word(f), 1 /* all */);
  run_callbacks(f, old);
}

/* finish, dropping the caller's reference with DONE unless a thread
 * sleeps on the future (the wake would touch it after the drop) or
 * callback records are listed (the completion walks them past the run
 * of one whose reference may be the last, and a withdrawn one holds
 * none). Past the drop, what runs holds a reference of its own (the
 * inline callback's, the queue's), and the drop that was the last frees
 * the future, nothing else holding one. */
static void finish_unref(actio_future *f) {
  uint64_t old = atomic_load_explicit(&f->word, memory_order_relaxed), want;
  do
    want = old + (F_DONE - F_BUSY) - (old & (F_WAITERS | F_CBS) ? 0 : REF);
  /* Release: the result before DONE, and our writes before the free;
   * acquire: the last drop sees everyone's. */
  while (!atomic_compare_exchange_weak_explicit(&f->word, &old, want, memory_order_acq_rel,
                                                memory_order_relaxed));
  ACTIO__ASSERT((old & F_PHASE) == F_BUSY && REFS(old) > 0);
  if (old & (F_WAITERS | F_CBS)) {
    if (old & F_WAITERS)
      actio__futex_wake(futex_word(f), 1 /* all */);
    run_callbacks(f, old);
    actio_future_unref(f);
    return;
  }
  if (REFS(old) == 1) {
    ACTIO__ASSERT(!(old & (F_CB0_READY | F_CB0_CQ))); /* each holds one */
    future_free(f);
    return;
  }
  run_callbacks(f, old);
}

/* The cancel hooks this thread runs now, innermost first: a hook whose
 * cancel completes another future may reach, through that future's
 * callbacks, the clearing of its own hook, which must not wait for itself. */
typedef struct firing {
  const actio_future *f;
  const struct firing *outer;
} firing;
static _Thread_local const firing *hooks_here;

static int fires_here(const actio_future *f) {
  for (const firing *h = hooks_here; h != NULL; h = h->outer)
    if (h->f == f)
      return 1;
  return 0;
}

static void fire_hook(actio_future *f) {
  uint32_t h = atomic_load_explicit(&f->hook, memory_order_acquire);
  for (;;) {
    if (h == H_NONE) {
      if (atomic_compare_exchange_weak_explicit(&f->hook, &h, H_SPENT,
                                                memory_order_acq_rel,
                                                memory_order_acquire))
        return;
    } else if (h == H_SET) {
      if (atomic_compare_exchange_weak_explicit(&f->hook, &h, H_FIRING,
                                                memory_order_acq_rel,
                                                memory_order_acquire)) {
        firing me = {f, hooks_here};
        hooks_here = &me;
        f->cancel_fn(f->cancel_arg);
        hooks_here = me.outer;
        /* Release: the hook's effects before clear_cancel may free arg. */
        atomic_store_explicit(&f->hook, H_SPENT, memory_order_release);
        return;
      }
    } else if (h == H_INSTALLING) {
      sched_yield(); /* on_cancel is between two stores: let it finish */
      h = atomic_load_explicit(&f->hook, memory_order_acquire);
    } else {
      return;
    }
  }
}

static char *vformat(const char *fmt, va_list ap) {
  char *s = NULL;
  if (fmt == NULL || vasprintf(&s, fmt, ap) < 0)
    return NULL;
  return s;
}

/* The BUSY winner's value. */
static void set_value(actio_future *f, void *value, actio_free_fn free_fn) {
  f->status = 0;
  f->value_free = free_fn;
  atomic_store_explicit(&f->value, value, memory_order_relaxed);
}

int actio_future_resolve(actio_future *f, void *value, actio_free_fn free_fn) {
  if (f == NULL)
    return ACTIO_EINVAL;
  if (!begin(f))
    return ACTIO_EALREADY;
  set_value(f, value, free_fn);
  finish(f);
  return 0;
}

int actio_future_resolve_unref(actio_future *f, void *value, actio_free_fn free_fn) {
  if (f == NULL)
    return ACTIO_EINVAL;
  if (!begin(f)) {
    actio_future_unref(f);
    return ACTIO_EALREADY;
  }
  set_value(f, value, free_fn);
  finish_unref(f);
  return 0;
}

/* Keeps msg (taken) as f's error message; without memory for it, the
 * message is the code's text. Call as the completion's winner. */
static void set_errmsg(actio_future *f, char *msg) {
  if (msg == NULL)
    return;
  future_ext *e = ext_get(f);
  if (e != NULL)
    e->errmsg = msg;
  else
    free(msg);
}

static int fail_with(actio_future *f, int code, char *msg) {
  if (!begin(f)) {
    free(msg);
    return ACTIO_EALREADY;
  }
  f->status = code;
  set_errmsg(f, msg);
  finish(f);
  return 0;
}

int actio__future_fail_aux(actio_future *f, int code, const char *msg,
                           void *aux, actio_free_fn aux_free) {
  ACTIO__ASSERT(ext_peek(f) == NULL || ext_peek(f)->aux_free == NULL);
  future_ext *e = ext_get(f);
  if (!begin(f))
    return ACTIO_EALREADY;
  f->status = code;
  set_errmsg(f, msg ? strdup(msg) : NULL);
  if (e != NULL) {
    e->aux = aux;
    e->aux_free = aux_free;
  } else if (aux_free != NULL) {
    aux_free(aux); /* no memory for the details: the failure goes without */
  }
  finish(f); /* publishes aux with the result */
  return 0;
}

int actio_future_fail(actio_future *f, int code, const char *fmt, ...) {
  if (f == NULL || code >= 0)
    return ACTIO_EINVAL;
  va_list ap;
  va_start(ap, fmt);
  char *msg = vformat(fmt, ap);
  va_end(ap);
  return fail_with(f, code, msg);
}

int actio_future_resolved(actio_future **out, void *value, actio_free_fn free_fn) {
  int rc = actio_future_create(out);
  if (rc == 0)
    actio_future_resolve(*out, value, free_fn);
  return rc;
}

int actio_future_failed(actio_future **out, int code, const char *fmt, ...) {
  if (code >= 0)
    return ACTIO_EINVAL;
  int rc = actio_future_create(out);
  if (rc != 0)
    return rc;
  va_list ap;
  va_start(ap, fmt);
  fail_with(*out, code, vformat(fmt, ap));
  va_end(ap);
  return 0;
}

int actio__future_abort(actio_future *f, int code, const char *msg) {
  if (!begin(f))
    return ACTIO_EALREADY;
  f->status = code;
  set_errmsg(f, msg ? strdup(msg) : NULL);
  /* The operation hears of it before anyone can see the future complete. */
  fire_hook(f);
  finish(f);
  return 0;
}

int actio__future_reword(actio_future *f, const char *head) {
  /* Only the completion's winner runs the hook: the message is ours to
   * change until finish publishes it. */
  ACTIO__ASSERT((atomic_load_explicit(&f->word, memory_order_relaxed) & F_PHASE) == F_BUSY &&
                atomic_load_explicit(&f->hook, memory_order_relaxed) == H_FIRING);
  future_ext *e = ext_get(f);
  char *m = NULL;
  if (e == NULL ||
      asprintf(&m, "%s: %s", head, e->errmsg ? e->errmsg : actio_strerror(f->status)) < 0)
    return ACTIO_ENOMEM;
  free(e->errmsg);
  e->errmsg = m;
  return 0;
}

int actio_future_cancel(actio_future *f) {
  if (f == NULL)
    return ACTIO_EINVAL;
  return actio__future_abort(f, ACTIO_ECANCELED, NULL);
}

int actio__future_adopt(actio_future *f, actio_future *src) {
  ACTIO__ASSERT(actio_future_is_done(src));
  future_ext *e = src->status == 0 ? ext_get(f) : NULL;
  if (src->status == 0 && e == NULL)
    return fail_with(f, ACTIO_ENOMEM, NULL); /* no room to hold src */
  if (!begin(f))
    return ACTIO_EALREADY;
  f->status = src->status;
  if (src->status == 0) {
    actio_future_ref(src);
    e->src = src;
    atomic_store_explicit(&f->value,
                          atomic_load_explicit(&src->value, memory_order_relaxed),
                          memory_order_relaxed);
  } else {
    future_ext *se = ext_peek(src);
    if (se != NULL && se->errmsg != NULL)
      set_errmsg(f, strdup(se->errmsg));
  }
  finish(f);
  return 0;
}

int actio__future_claim(actio_future *f) { return begin(f); }

void actio__future_settle(actio_future *f, int code, void *value,
                          actio_free_fn free_fn, char *msg) {
  ACTIO__ASSERT((atomic_load_explicit(&f->word, memory_order_relaxed) & F_PHASE) == F_BUSY);
  f->status = code;
  if (code == 0) {
    f->value_free = free_fn;
    atomic_store_explicit(&f->value, value, memory_order_relaxed);
  }
  set_errmsg(f, msg);
  finish(f);
}

int actio_future_on_cancel(actio_future *f, actio_cancel_fn fn, void *arg) {
  if (f == NULL || fn == NULL)
    return ACTIO_EINVAL;
  uint32_t h = H_NONE;
  if (!atomic_compare_exchange_strong_explicit(&f->hook, &h, H_INSTALLING,
                                               memory_order_acquire,
                                               memory_order_acquire))
    return h == H_SPENT || h == H_FIRING ? ACTIO_ECANCELED : ACTIO_ESTATE;
  f->cancel_fn = fn;
  f->cancel_arg = arg;
  /* Release: fn and arg before the hook is seen as set. */
  atomic_store_explicit(&f->hook, H_SET, memory_order_release);
  return 0;
}

void actio_future_clear_cancel(actio_future *f) {
  uint32_t h = atomic_load_explicit(&f->hook, memory_order_acquire);
  for (;;) {
    if (h == H_SET) {
      if (atomic_compare_exchange_weak_explicit(&f->hook, &h, H_NONE,
                                                memory_order_acq_rel,
                                                memory_order_acquire))
        return;
    } else if (h == H_FIRING && fires_here(f)) {
      return; /* called from inside the hook: it returns after this */
    } else if (h == H_FIRING || h == H_INSTALLING) {
      sched_yield(); /* the hook is short: wait for it to return */
      h = atomic_load_explicit(&f->hook, memory_order_acquire);
    } else {
      return;
    }
  }
}

int actio_future_on_done(actio_future *f, actio_done_fn fn, void *arg) {
  if (f == NULL || fn == NULL)
    return ACTIO_EINVAL;
  /* Relaxed claim: the slot is ours alone once claimed. */
  if (!(atomic_load_explicit(&f->word, memory_order_relaxed) & F_CB0) &&
      !(atomic_fetch_or_explicit(&f->word, F_CB0, memory_order_relaxed) & F_CB0)) {
    f->cb0.cb.fn = fn;
    f->cb0.cb.arg = arg;
    /* READY (clear until now: only the slot's claimant sets it) with the
     * callback's reference, in one add. Acq_rel: the slot's contents
     * before READY (for the completer); seeing DONE here means seeing the
     * result. Completion and this are read-modify-writes of one word:
     * exactly one of us runs fn. */
    uint64_t old = atomic_fetch_add_explicit(&f->word, REF + F_CB0_READY,
                                            memory_order_acq_rel);
    if ((old & F_PHASE) == F_DONE) {
      fn(f, arg);
      actio_future_unref(f);
    }
    return 0;
  }
  cb *c = actio__recycle_new(&callbacks);
  if (c == NULL)
    return ACTIO_ENOMEM;
  atomic_init(&c->fn, fn);
  c->arg = arg;
  /* F_CBS with the callback's reference, in one CAS. Acq_rel: seeing DONE
   * means seeing the result; otherwise the completion, after this on the
   * same word, sees F_CBS and closes the list, so the push below either
   * lands before that or finds it closed. */
  uint64_t s = atomic_load_explicit(&f->word, memory_order_relaxed);
  while (!atomic_compare_exchange_weak_explicit(&f->word, &s, (s | F_CBS) + REF,
                                                memory_order_acq_rel, memory_order_relaxed))
    ;
  if ((s & F_PHASE) == F_DONE) {
    actio__recycle_free(&callbacks, c);
    fn(f, arg);
    actio_future_unref(f);
    return 0;
  }
  uintptr_t head = atomic_load_explicit(&f->cbs, memory_order_acquire);
  do {
    if (head & CB_CLOSED) {
      actio__recycle_free(&callbacks, c);
      fn(f, arg);
      actio_future_unref(f);
      return 0;
    }
    atomic_store_explicit(&c->next, CB_HEAD(head), memory_order_relaxed);
    /* Release: the node before it is reachable; acquire on failure: seeing
     * CB_CLOSED means seeing the result. */
  } while (!atomic_compare_exchange_weak_explicit(&f->cbs, &head, (uintptr_t)c,
                                                  memory_order_acq_rel,
                                                  memory_order_acquire));
  return 0;
}

int actio__future_off_done(actio_future *f, actio_done_fn fn, void *arg) {
  /* The inline slot: its contents stay put while F_CB0 is held, and one
   * CAS on the word frees it and drops the reference, against finish's
   * read-modify-write of the same word: exactly one of us takes it.
   * Acquire: the slot's contents, published with F_CB0_READY (by another
   * thread, maybe), read again after a failed CAS; the CAS publishes
   * nothing (a new claimant writes the slot only after seeing F_CB0
   * clear). */
  uint64_t w = atomic_load_explicit(&f->word, memory_order_acquire);
  while ((w & F_PHASE) != F_DONE && (w & F_CB0_READY) && !(w & F_CB0_CQ) &&
         f->cb0.cb.fn == fn && f->cb0.cb.arg == arg) {
    ACTIO__ASSERT(REFS(w) > 1); /* the caller's and the callback's */
    if (atomic_compare_exchange_weak_explicit(
            &f->word, &w, (w & ~(uint64_t)(F_CB0 | F_CB0_READY)) - REF,
            memory_order_acquire, memory_order_acquire))
      return 1;
  }
  if ((w & F_PHASE) == F_DONE || !(w & F_CBS))
    return 0;
  /* A record: disarmed in place (the future's free frees it); whoever
   * exchanges fn away first, this or the completion, owns the reference.
   * The records stay while the caller's reference keeps f. A completion
   * turning the list round meanwhile (newest first, each `next` once) may
   * send this walk back towards the head, which it then reaches: it ends,
   * and what it missed, the completion runs. Acquire: the records pushed
   * before are whole. */
  for (cb *c = CB_HEAD(atomic_load_explicit(&f->cbs, memory_order_acquire)); c != NULL;
       c = atomic_load_explicit(&c->next, memory_order_relaxed)) {
    actio_done_fn mine = fn;
    if (c->arg == arg &&
        atomic_compare_exchange_strong_explicit(&c->fn, &mine, NULL, memory_order_relaxed,
                                                memory_order_relaxed)) {
      actio_future_unref(f); /* never the last: the caller holds one */
      return 1;
    }
  }
  return 0;
}

/* A registration behind a taken inline slot: a callback record whose
 * argument holds the queue and the tag. */
typedef struct cq_rec {
  actio__future_queue *q;
  uint64_t tag;
} cq_rec;

static void cq_rec_deliver(actio_future *f, void *arg) {
  cq_rec r = *(cq_rec *)arg;
  free(arg);
  r.q->deliver(f, r.q, r.tag); /* the queue's own reference */
}

/* A registration on a future whose inline slot held a queue's registration
 * before: the slot is taken again if that one's event was drained. The
 * future is complete then (drained means delivered): delivered at once. */
static int requeue(actio_future *f, actio__future_queue *q, uint64_t tag) {
  actio__future_queue *was = CQ_DRAINED;
  /* Acquire: the drain's reads of the future before ours. Relaxed on
   * failure: queued still. */
  if (!atomic_compare_exchange_strong_explicit(&f->cb0.cq.q, &was, q, memory_order_acquire,
                                               memory_order_relaxed))
    return ACTIO_EEXIST;
  /* The queue's reference, which the delivery takes over. Acquire: its
   * result, for the delivery. */
  uint64_t s = atomic_fetch_add_explicit(&f->word, REF, memory_order_acquire);
  ACTIO__ASSERT((s & F_PHASE) == F_DONE && REFS(s) > 0 && REFS(s) < UINT32_MAX);
  (void)s;
  q->deliver(f, q, tag);
  return 0;
}

int actio__future_on_done_queued(actio_future *f, actio__future_queue *q, uint64_t tag) {
  /* One CAS takes the queue's reference and claims the inline slot if it
   * is free (which marks the future queued), or else marks it queued
   * (F_QUEUED). Acquire: seeing DONE means seeing the result (for the
   * delivery below); otherwise relaxed would do, as for the mark and the
   * claim of on_done, and a reference taken by one who holds one. */
  uint64_t s = atomic_load_explicit(&f->word, memory_order_relaxed);
  uint64_t want;
  do {
    if (s & F_QUEUED)
      return ACTIO_EEXIST;
    if (s & F_CB0_CQ)
      return requeue(f, q, tag);
    ACTIO__ASSERT(REFS(s) > 0 && REFS(s) < UINT32_MAX);
    want = (s & F_CB0 ? s | F_QUEUED : s | F_CB0 | F_CB0_CQ) + REF;
  } while (!atomic_compare_exchange_weak_explicit(&f->word, &s, want, memory_order_acquire,
                                                  memory_order_relaxed));
  if (s & F_CB0) { /* the slot is taken: a callback record */
    cq_rec *r = malloc(sizeof *r);
    int rc = ACTIO_ENOMEM;
    if (r != NULL) {
      *r = (cq_rec){q, tag};
      /* The queue's reference, besides the callback's. */
      rc = actio_future_on_done(f, cq_rec_deliver, r);
      if (rc != 0)
        free(r);
    }
    if (rc != 0) {
      actio__future_queue_drained(f);
      actio_future_unref(f); /* never the last: the caller holds one */
    }
    return rc;
  }
  /* The queue's reference, which the delivery takes over, came with the
   * CAS. Complete before it: the completion, done with its callbacks, will
   * not look at the slot: deliver now (the slot's pointer stays NULL, as
   * for an event not drained yet). Else the completion, after the CAS on
   * the same word, sees F_CB0_CQ and delivers once q is set. */
  if ((s & F_PHASE) == F_DONE) {
    q->deliver(f, q, tag);
    return 0;
  }
  f->cb0.cq.tag = tag;
  /* Release: the tag, for the completion that reads q. */
  atomic_store_explicit(&f->cb0.cq.q, q, memory_order_release);
  return 0;
}

int actio_future_is_done(const actio_future *f) {
  return (atomic_load_explicit(&((actio_future *)f)->word,
                               memory_order_acquire) & F_PHASE) == F_DONE;
}

int actio_future_status(const actio_future *f) {
  if (!actio_future_is_done(f))
    return ACTIO_EPENDING;
  return f->status;
}

int actio_future_wait(actio_future *f, int64_t timeout_ms) {
  if (f == NULL)
    return ACTIO_EINVAL;
  int64_t deadline = actio__deadline_ns(timeout_ms);
  uint64_t s = atomic_load_explicit(&f->word, memory_order_acquire);
  if ((s & F_PHASE) != F_DONE && timeout_ms != 0) {
    actio__burst_flush(); /* f may wait for what this thread's burst holds */
    s = atomic_load_explicit(&f->word, memory_order_acquire);
  }
  while ((s & F_PHASE) != F_DONE) {
    if (timeout_ms == 0)
      return ACTIO_EPENDING;
    if (!(s & F_WAITERS) &&
        !atomic_compare_exchange_weak_explicit(&f->word, &s, s | F_WAITERS,
                                               memory_order_acquire,
                                               memory_order_acquire))
      continue;
    s |= F_WAITERS;
    /* The kernel compares the state half only: a reference taken or
     * dropped meanwhile does not wake us. */
    if (actio__futex_wait(futex_word(f), (uint32_t)s, deadline) == ACTIO_ETIMEDOUT &&
        !actio_future_is_done(f))
      return ACTIO_EPENDING;
    s = atomic_load_explicit(&f->word, memory_order_acquire);
  }
  return f->status;
}

void *actio_future_value(const actio_future *f) {
  if (actio_future_status(f) != 0)
    return NULL;
  return atomic_load_explicit(&((actio_future *)f)->value, memory_order_acquire);
}

void *actio_future_take(actio_future *f) {
  if (actio_future_status(f) != 0)
    return NULL;
  future_ext *e = ext_peek(f);
  if (e != NULL && e->src != NULL) {
    atomic_store_explicit(&f->value, NULL, memory_order_relaxed);
    return actio_future_take(e->src);
  }
  return atomic_exchange_explicit(&f->value, NULL, memory_order_acq_rel);
}

const char *actio_future_errmsg(const actio_future *f) {
  int st = actio_future_status(f);
  if (st == 0 || st == ACTIO_EPENDING)
    return NULL;
  future_ext *e = ext_peek(f);
  return e != NULL && e->errmsg != NULL ? e->errmsg : actio_strerror(st);
}

int64_t actio_future_remaining_ms(const actio_future *f) {
  future_ext *e = ext_peek(f);
  int64_t d = e != NULL ? atomic_load_explicit(&e->deadline_ns, memory_order_relaxed)
                        : -1;
  if (d < 0)
    return -1;
  return actio__ms_until(d);
}

int actio__future_set_deadline_ns(actio_future *f, int64_t deadline_ns) {
  future_ext *e = ext_get(f);
  if (e == NULL)
    return ACTIO_ENOMEM;
  atomic_store_explicit(&e->deadline_ns, deadline_ns, memory_order_relaxed);
  return 0;
}


_Atomic int64_t *actio__future_track(actio_future *f) { return &f->track; }

int actio__future_attach(actio_future *f, void *aux, actio_free_fn aux_free) {
  future_ext *e = ext_get(f);
  if (e == NULL)
    return ACTIO_ENOMEM;
  ACTIO__ASSERT(e->aux_free == NULL);
  e->aux = aux;
  e->aux_free = aux_free;
  return 0;
}

void *actio__future_aux(const actio_future *f, actio_free_fn aux_free) {
  future_ext *e = ext_peek(f);
  return e != NULL && e->aux_free == aux_free ? e->aux : NULL;
}

void actio__future_queue_drained(actio_future *f) {
  /* Relaxed: the registration that set these happened before its event. */
  uint64_t w = atomic_load_explicit(&f->word, memory_order_relaxed);
  if (w & F_QUEUED) {
    /* Relaxed: the flag orders nothing; it only makes one of two adds
     * lose. */
    atomic_fetch_and_explicit(&f->word, ~(uint64_t)F_QUEUED, memory_order_relaxed);
    return;
  }
  ACTIO__ASSERT(w & F_CB0_CQ);
  ACTIO__ASSERT(atomic_load_explicit(&f->cb0.cq.q, memory_order_relaxed) != CQ_DRAINED);
  /* Release: our reads of the future before a new registration's. No one
   * else writes the slot now: the completion is done with it (it
   * delivered), and a registration fails while it is not CQ_DRAINED. */
  atomic_store_explicit(&f->cb0.cq.q, CQ_DRAINED, memory_order_release);
}

int actio__future_pending(const actio_future *f) {
  return (atomic_load_explicit(&((actio_future *)f)->word,
                               memory_order_acquire) & F_PHASE) == F_PENDING;
}

/* combinators.c: then, catch, finally, gather, any, map and as-completed,
 * built only on the future's public operations plus attach/adopt/abort. */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "actio/actor.h"
#include "actio/error.h"
#include "actors/core/deadline.h"
#include "actors/core/future_internal.h"
#include "actors/core/runtime.h"
#include "base/clock.h"
#include "base/recycle.h"
#include "mailbox/mailbox.h"

/* ---- then, catch, finally: a chain of two steps ---- */

/* When the continuation runs: then on a value, catch on a failure that is
 * not a cancellation, finally on any outcome. */
enum chain_kind { C_THEN, C_CATCH, C_FINALLY };

static const char *const chain_names[] = {"then", "catch", "finally"};

typedef struct chain {
  actio_future *out;           /* a reference held while the chain runs */
  _Atomic(actio_future *) step; /* the running step's reference, or NULL */
  actio_future *prev;          /* finally: the outcome passed on once the
                                * cleanup succeeds (a reference) */
  enum chain_kind kind;
  actio_then_fn fn;
  void *arg;
} chain;

/* A chain is made by the thread that chains and freed with its future by
 * whichever thread lets go of that last: recycled as futures are. */
static actio__recycler chains = ACTIO__RECYCLER(sizeof(chain), ACTIO__RECYCLE_CHAIN);

static void chain_free(void *c) { actio__recycle_free(&chains, c); }

/* Takes the step's reference: whoever swaps it out owns it. */
static actio_future *chain_take_step(chain *c) {
  return atomic_exchange_explicit(&c->step, NULL, memory_order_acq_rel);
}

static void chain_cancel(void *arg) {
  actio_future *s = chain_take_step(arg);
  if (s != NULL) {
    actio_future_cancel(s);
    actio_future_unref(s);
  }
}

/* Lets go of what the chain holds; out's last reference frees the chain. */
static void chain_release(chain *c) {
  actio_future *prev = c->prev, *out = c->out;
  c->prev = NULL;
  c->out = NULL;
  actio_future_unref(prev);
  actio_future_unref(out); /* may free the chain with out */
}

static void chain_end(chain *c, actio_future *done) {
  actio__future_adopt(c->out, done);
  chain_release(c);
}

static void chain_next_done(actio_future *next, void *arg) {
  chain *c = arg;
  actio_future_unref(chain_take_step(c));
  /* A finally's cleanup that succeeded passes the first outcome on. */
  chain_end(c, c->prev != NULL && actio_future_status(next) == 0 ? c->prev : next);
}

static int chain_runs(const chain *c, int status) {
  switch (c->kind) {
  case C_THEN:
    return status == 0;
  case C_CATCH:
    return status != 0 && status != ACTIO_ECANCELED;
  default:
    return 1;
  }
}

static void chain_prev_done(actio_future *prev, void *arg) {
  chain *c = arg;
  actio_future_unref(chain_take_step(c));
  /* out cancelled already: only a finally still runs its step. */
  int over = !actio__future_pending(c->out);
  if (!chain_runs(c, actio_future_status(prev)) || (over && c->kind != C_FINALLY)) {
    chain_end(c, prev);
    return;
  }
  actio_future *next = NULL;
  int rc = c->fn(prev, c->arg, &next);
  if (rc < 0) {
    actio_future_unref(next);
    actio_future_fail(c->out, rc, "%s: step failed: %s", chain_names[c->kind],
                      actio_strerror(rc));
    chain_end(c, prev);
    return;
  }
  if (next == NULL || over) { /* a cleanup begun after the cancel runs on */
    actio_future_unref(next);
    chain_end(c, prev);
    return;
  }
  if (c->kind == C_FINALLY) {
    actio_future_ref(prev);
    c->prev = prev; /* read by chain_next_done, ordered by on_done below */
  }
  actio_future_ref(next);
  /* Acq_rel on the step, which the cancel hook swaps too: either the hook
   * finds this step, or we see that out's completion has begun (the hook
   * runs while out is busy, before it is done) and cancel it ourselves. */
  atomic_exchange_explicit(&c->step, next, memory_order_acq_rel);
  if (!actio__future_pending(c->out))
    chain_cancel(c);
  if (actio_future_on_done(next, chain_next_done, c) != 0) {
    chain_cancel(c); /* its outcome would reach nobody */
    actio_future_fail(c->out, ACTIO_ENOMEM, NULL);
    chain_release(c);
  }
  actio_future_unref(next);
}

static int chain_start(enum chain_kind kind, actio_future *f, actio_then_fn fn,
                       void *arg, actio_future **out) {
  if (f == NULL || fn == NULL || out == NULL)
    return ACTIO_EINVAL;
  chain *c = actio__recycle_new(&chains);
  if (c == NULL)
    return ACTIO_ENOMEM;
  memset(c, 0, sizeof *c);
  int rc = actio_future_create(&c->out);
  if (rc != 0) {
    chain_free(c);
    return rc;
  }
  c->kind = kind;
  c->fn = fn;
  c->arg = arg;
  if (actio__future_attach(c->out, c, chain_free) != 0) {
    actio_future_unref(c->out);
    chain_free(c);
    return ACTIO_ENOMEM;
  }
  actio_future_on_cancel(c->out, chain_cancel, c);
  actio_future_ref(c->out); /* the chain's own; the caller gets the first */
  actio_future_ref(f);
  atomic_init(&c->step, f);
  actio_future *result = c->out; /* the callback may run, and end, at once */
  actio_future_ref(result);
  if (actio_future_on_done(f, chain_prev_done, c) != 0) {
    actio_future_unref(chain_take_step(c));
    actio_future_unref(result);
    actio_future_unref(result);
    actio_future_unref(result);
    return ACTIO_ENOMEM;
  }
  *out = result;
  actio_future_unref(result); /* the caller's is the one taken at create */
  return 0;
}

int actio_future_then(actio_future *f, actio_then_fn fn, void *arg,
                      actio_future **out) {
  return chain_start(C_THEN, f, fn, arg, out);
}

int actio_future_catch(actio_future *f, actio_then_fn fn, void *arg,
                       actio_future **out) {
  return chain_start(C_CATCH, f, fn, arg, out);
}

int actio_future_finally(actio_future *f, actio_then_fn fn, void *arg,
                         actio_future **out) {
  return chain_start(C_FINALLY, f, fn, arg, out);
}

/* ---- gather, any, map: a group of items behind one future ---- */

enum group_kind { G_GATHER, G_ANY, G_MAP };

typedef struct group {
  enum group_kind kind;
  actio_gather_policy policy;
  actio_future *out;       /* a reference held while items are pending */
  _Atomic size_t pending;  /* items not yet completed, +1 while starting */
  _Atomic size_t winner;   /* any: the index that won, else SIZE_MAX */
  _Atomic(actio_future *) last_fail; /* any: the latest failed item */
  _Atomic int stopped;     /* map: no more starts */
  _Atomic size_t next;     /* map: next index to start */
  _Atomic size_t inflight; /* map: started, not completed */
  _Atomic size_t pumping;  /* map: trampoline requests */
  size_t limit;
  actio_map_fn fn;
  void *arg;
  actio_runtime *rt;       /* map within a deadline: the runtime's timer */
  int64_t deadline_ns;     /* ... and the group's deadline, else -1 */
  size_t n;
  _Atomic(actio_future *) items[]; /* each a reference, or NULL */
} group;

static void group_free(void *p) {
  group *g = p;
  for (size_t i = 0; i < g->n; i++)
    actio_future_unref(atomic_load_explicit(&g->items[i], memory_order_acquire));
  free(g);
}

static void group_cancel_items(group *g, size_t skip) {
  /* Store-load against map_start_one: `stopped` (set by our callers) must
   * be visible before we read the items, as the starter's item must be
   * before it reads `stopped`; one of the two then cancels it. */
  atomic_thread_fence(memory_order_seq_cst);
  for (size_t i = 0; i < g->n; i++) {
    actio_future *it = atomic_load_explicit(&g->items[i], memory_order_acquire);
    if (i != skip && it != NULL)
      actio_future_cancel(it);
  }
}

static void group_cancel(void *arg) {
  group *g = arg;
  atomic_store_explicit(&g->stopped, 1, memory_order_release);
  group_cancel_items(g, SIZE_MAX);
}

/* One item (or the starter) is finished with the group. */
static void group_release(group *g) {
  if (atomic_fetch_sub_explicit(&g->pending, 1, memory_order_acq_rel) != 1)
    return;
  actio_future *out = g->out;
  if (g->kind == G_ANY &&
      atomic_load_explicit(&g->winner, memory_order_acquire) == SIZE_MAX) {
    /* Every item has completed by now; the group holds them all. None
     * failed either: the group failed first (out of memory at its start). */
    actio_future *last = atomic_load_explicit(&g->last_fail, memory_order_acquire);
    if (last != NULL)
      actio_future_fail(out, ACTIO_EALLFAILED,
                        "any: all %zu futures failed; the last: %s", g->n,
                        actio_future_errmsg(last));
  } else if (g->kind != G_ANY) {
    actio_future_resolve(out, NULL, NULL);
  }
  actio_future_unref(out); /* may free the group */
}

static group *group_new(enum group_kind kind, size_t n, actio_gather_policy p) {
  if (n > (SIZE_MAX - sizeof(group)) / sizeof(actio_future *))
    return NULL;
  group *g = calloc(1, sizeof *g + n * sizeof(actio_future *));
  if (g == NULL)
    return NULL;
  g->kind = kind;
  g->policy = p;
  g->n = n;
  atomic_init(&g->winner, SIZE_MAX);
  if (actio_future_create(&g->out) != 0) {
    free(g);
    return NULL;
  }
  if (actio__future_attach(g->out, g, group_free) != 0) {
    actio_future_unref(g->out);
    free(g);
    return NULL;
  }
  actio_future_on_cancel(g->out, group_cancel, g);
  actio_future_ref(g->out); /* the group's own, dropped by the last release */
  return g;
}

/* Applies one item's outcome to the group (the policy part). */
static void item_outcome(group *g, actio_future *it) {
  int st = actio_future_status(it);
  if (g->kind == G_ANY) {
    if (st == 0) {
      /* Find our index: items are few for any(); the winner records it. */
      for (size_t i = 0; i < g->n; i++) {
        size_t none = SIZE_MAX;
        if (atomic_load_explicit(&g->items[i], memory_order_acquire) == it &&
            atomic_compare_exchange_strong_explicit(&g->winner, &none, i,
                                                    memory_order_acq_rel,
                                                    memory_order_acquire)) {
          actio__future_adopt(g->out, it);
          group_cancel_items(g, i);
          break;
        }
      }
    } else {
      atomic_store_explicit(&g->last_fail, it, memory_order_release);
    }
  } else if (st != 0 && g->policy == ACTIO_GATHER_FAIL_FAST) {
    if (actio__future_adopt(g->out, it) == 0) {
      atomic_store_explicit(&g->stopped, 1, memory_order_release);
      group_cancel_items(g, SIZE_MAX);
    }
  }
}

static void item_done(actio_future *it, void *arg) {
  item_outcome(arg, it);
  group_release(arg);
}

static int group_start(group *g, actio_future *const *fs, actio_future **out) {
  atomic_init(&g->pending, g->n + 1);
  *out = g->out;
  for (size_t i = 0; i < g->n; i++) {
    actio_future_ref(fs[i]);
    atomic_init(&g->items[i], fs[i]);
  }
  for (size_t i = 0; i < g->n; i++) {
    if (actio_future_on_done(fs[i], item_done, g) != 0) {
      /* Out of memory mid-way: fail the group, count the rest as done. */
      actio_future_fail(g->out, ACTIO_ENOMEM, NULL);
      group_cancel_items(g, SIZE_MAX);
      for (size_t j = i; j < g->n; j++)
        group_release(g);
      break;
    }
  }
  group_release(g);
  return 0;
}

int actio_gather(actio_future *const *fs, size_t n, actio_gather_policy policy,
                 actio_future **out) {
  if (out == NULL || (n > 0 && fs == NULL) ||
      (policy != ACTIO_GATHER_FAIL_FAST && policy != ACTIO_GATHER_SETTLE_ALL))
    return ACTIO_EINVAL;
  for (size_t i = 0; i < n; i++)
    if (fs[i] == NULL)
      return ACTIO_EINVAL;
  group *g = group_new(G_GATHER, n, policy);
  if (g == NULL)
    return ACTIO_ENOMEM;
  return group_start(g, fs, out);
}

int actio_any(actio_future *const *fs, size_t n, actio_future **out) {
  if (out == NULL || n == 0 || fs == NULL)
    return ACTIO_EINVAL;
  for (size_t i = 0; i < n; i++)
    if (fs[i] == NULL)
      return ACTIO_EINVAL;
  group *g = group_new(G_ANY, n, ACTIO_GATHER_SETTLE_ALL);
  if (g == NULL)
    return ACTIO_ENOMEM;
  return group_start(g, fs, out);
}

static group *group_of(const actio_future *f) {
  return (group *)actio__future_aux(f, group_free);
}

size_t actio_gather_count(const actio_future *g) {
  return g && group_of(g) ? group_of(g)->n : 0;
}

actio_future *actio_gather_item(const actio_future *g, size_t i) {
  group *gr = g ? group_of(g) : NULL;
  if (gr == NULL || i >= gr->n)
    return NULL;
  return atomic_load_explicit(&gr->items[i], memory_order_acquire);
}

size_t actio_any_index(const actio_future *g) {
  group *gr = g ? group_of(g) : NULL;
  if (gr == NULL || gr->kind != G_ANY)
    return SIZE_MAX;
  return atomic_load_explicit(&gr->winner, memory_order_acquire);
}

/* ---- map: a bounded window over a gather ---- */

static void map_pump(group *g);

static void map_item_done(actio_future *it, void *arg) {
  group *g = arg;
  atomic_fetch_sub_explicit(&g->inflight, 1, memory_order_acq_rel);
  /* A failure stops the map before anything new starts; then start the
   * next items before letting go, so pending cannot touch zero while there
   * is work left. */
  item_outcome(g, it);
  map_pump(g);
  group_release(g);
}

/* Fails the map and stops it: nothing new starts, what runs is cancelled. */
static void map_fail(group *g, int code) {
  actio_future_fail(g->out, code, NULL);
  atomic_store_explicit(&g->stopped, 1, memory_order_release);
  group_cancel_items(g, SIZE_MAX);
}

static void map_start_one(group *g, size_t i) {
  actio_future *f = NULL;
  int late = g->deadline_ns >= 0 && actio__ms_until(g->deadline_ns) == 0;
  if (late) /* nothing starts after this one, which fails */
    atomic_store_explicit(&g->stopped, 1, memory_order_release);
  /* The group's time left becomes the item's own deadline: the I/O actors
   * take it while fn sends (so a transfer's or a query's own limit is set
   * from it); any other item gets it once fn returns. */
  int64_t outer = actio__group_enter(g->deadline_ns);
  int rc = late ? ACTIO_ETIMEDOUT : g->fn(i, g->arg, &f);
  actio__group_leave(outer);
  if (rc == 0 && f != NULL && g->deadline_ns >= 0 && actio_future_remaining_ms(f) < 0)
    actio__deadline_at(g->rt->timer, f, g->deadline_ns, ACTIO__GROUP_DEADLINE_MSG);
  if (rc < 0 || f == NULL) {
    actio_future_unref(f);
    actio_future_failed(&f, rc < 0 ? rc : ACTIO_EINVAL,
                        "map: item %zu did not start: %s", i,
                        actio_strerror(rc < 0 ? rc : ACTIO_EINVAL));
    if (f == NULL) { /* no memory even for the failure */
      atomic_fetch_sub_explicit(&g->inflight, 1, memory_order_acq_rel);
      map_fail(g, ACTIO_ENOMEM);
      group_release(g);
      return;
    }
  }
  atomic_store_explicit(&g->items[i], f, memory_order_release);
  /* The timer thread may not have fired yet: fail the map here, once the
   * item is in place, so whoever sees the map done sees its items. */
  if (late)
    actio__future_abort(g->out, ACTIO_ETIMEDOUT, ACTIO__GROUP_DEADLINE_MSG);
  /* Store-load: pairs with the fence in group_cancel_items. */
  atomic_thread_fence(memory_order_seq_cst);
  if (atomic_load_explicit(&g->stopped, memory_order_acquire))
    actio_future_cancel(f);
  if (actio_future_on_done(f, map_item_done, g) != 0) {
    atomic_fetch_sub_explicit(&g->inflight, 1, memory_order_acq_rel);
    map_fail(g, ACTIO_ENOMEM);
    group_release(g);
  }
}

/* A trampoline: only one thread starts items at a time; others leave a
 * request and go, so completions that arrive synchronously never recurse. */
static void map_pump(group *g) {
  if (atomic_fetch_add_explicit(&g->pumping, 1, memory_order_acq_rel) != 0)
    return;
  do {
    for (;;) {
      /* Done (its deadline passed, or it was cancelled, and the hook that
       * stops it may still be on its way): nothing more starts. */
      if (atomic_load_explicit(&g->stopped, memory_order_acquire) ||
          actio_future_is_done(g->out))
        break;
      size_t fl = atomic_load_explicit(&g->inflight, memory_order_acquire);
      if (g->limit != 0 && fl >= g->limit)
        break;
      size_t i = atomic_load_explicit(&g->next, memory_order_relaxed);
      if (i >= g->n)
        break;
      /* Only the pumping thread moves next, so plain increments suffice. */
      atomic_store_explicit(&g->next, i + 1, memory_order_relaxed);
      atomic_fetch_add_explicit(&g->inflight, 1, memory_order_acq_rel);
      atomic_fetch_add_explicit(&g->pending, 1, memory_order_acq_rel);
      map_start_one(g, i);
    }
  } while (atomic_fetch_sub_explicit(&g->pumping, 1, memory_order_acq_rel) != 1);
}

static int map_start(actio_runtime *rt, int64_t timeout_ms, size_t n,
                     size_t limit, actio_map_fn fn, void *arg,
                     actio_gather_policy policy, actio_future **out) {
  if (out == NULL || fn == NULL ||
      (policy != ACTIO_GATHER_FAIL_FAST && policy != ACTIO_GATHER_SETTLE_ALL))
    return ACTIO_EINVAL;
  group *g = group_new(G_MAP, n, policy);
  if (g == NULL)
    return ACTIO_ENOMEM;
  g->fn = fn;
  g->arg = arg;
  g->limit = limit;
  g->rt = rt;
  g->deadline_ns = rt != NULL ? actio__deadline_ns(timeout_ms) : -1;
  if (g->deadline_ns >= 0) {
    int rc = actio__deadline_at(rt->timer, g->out, g->deadline_ns, ACTIO__GROUP_DEADLINE_MSG);
    if (rc != 0) {
      actio_future_unref(g->out); /* the group's reference */
      actio_future_unref(g->out); /* the caller's: frees the group */
      return rc;
    }
  }
  atomic_init(&g->pending, 1); /* the starter's hold */
  *out = g->out;
  map_pump(g);
  group_release(g);
  return 0;
}

int actio_map(size_t n, size_t limit, actio_map_fn fn, void *arg,
              actio_gather_policy policy, actio_future **out) {
  return map_start(NULL, -1, n, limit, fn, arg, policy, out);
}

int actio_map_within(actio_runtime *rt, size_t n, size_t limit,
                     int64_t timeout_ms, actio_map_fn fn, void *arg,
                     actio_gather_policy policy, actio_future **out) {
  if (rt == NULL && timeout_ms >= 0)
    return ACTIO_EINVAL;
  return map_start(timeout_ms >= 0 ? rt : NULL, timeout_ms, n, limit, fn, arg,
                   policy, out);
}

/* ---- as-completed: completions feed a mailbox of indices ---- */

typedef struct ac_slot {
  actio_as_completed *ac;
  size_t i;
} ac_slot;

struct actio_as_completed {
  actio__mbox *mb;
  _Atomic size_t refs; /* the owner + one per item not yet completed */
  size_t n, returned;
  struct ac_slot *slots; /* per-item callback arguments */
  actio_future **items;
};

static void ac_unref(actio_as_completed *ac) {
  if (atomic_fetch_sub_explicit(&ac->refs, 1, memory_order_acq_rel) != 1)
    return;
  for (size_t i = 0; i < ac->n; i++)
    actio_future_unref(ac->items[i]);
  actio__mbox_destroy(ac->mb);
  free(ac->slots);
  free(ac->items);
  free(ac);
}

static void ac_item_done(actio_future *it, void *arg) {
  ac_slot *r = arg;
  actio_as_completed *ac = r->ac;
  (void)it;
  /* The mailbox holds n, so this never waits; index + 1 keeps NULL out. */
  actio__mbox_msg m = {(void *)(uintptr_t)(r->i + 1), NULL};
  actio__mbox_push(ac->mb, &m, -1);
  ac_unref(ac);
}

int actio_as_completed_create(actio_as_completed **out, actio_future *const *fs,
                              size_t n) {
  if (out == NULL || (n > 0 && fs == NULL))
    return ACTIO_EINVAL;
  for (size_t i = 0; i < n; i++)
    if (fs[i] == NULL)
      return ACTIO_EINVAL;
  actio_as_completed *ac = calloc(1, sizeof *ac);
  if (ac == NULL)
    return ACTIO_ENOMEM;
  ac->n = n;
  ac->items = calloc(n ? n : 1, sizeof *ac->items);
  ac->slots = calloc(n ? n : 1, sizeof *ac->slots);
  if (ac->items == NULL || ac->slots == NULL ||
      actio__mbox_create(&ac->mb, n ? n : 1) != 0)
    goto fail;
  atomic_init(&ac->refs, 1 + n);
  for (size_t i = 0; i < n; i++) {
    actio_future_ref(fs[i]);
    ac->items[i] = fs[i];
  }
  for (size_t i = 0; i < n; i++) {
    ac->slots[i] = (ac_slot){ac, i};
    if (actio_future_on_done(fs[i], ac_item_done, &ac->slots[i]) != 0) {
      /* Items already watched keep the iterator alive until they complete;
       * the rest, and the caller's share, are given back now. */
      for (size_t j = i; j < n; j++) {
        actio_future_unref(ac->items[j]);
        ac->items[j] = NULL;
        ac_unref(ac);
      }
      ac_unref(ac);
      return ACTIO_ENOMEM;
    }
  }
  *out = ac;
  return 0;
fail:
  actio__mbox_destroy(ac->mb);
  free(ac->slots);
  free(ac->items);
  free(ac);
  return ACTIO_ENOMEM;
}

int actio_as_completed_next(actio_as_completed *ac, int64_t timeout_ms,
                            size_t *index) {
  if (ac == NULL || index == NULL)
    return ACTIO_EINVAL;
  if (ac->returned == ac->n)
    return ACTIO_EEOF;
  actio__mbox_msg m;
  int rc = actio__mbox_pop(ac->mb, &m, timeout_ms);
  if (rc == ACTIO_ETIMEDOUT || rc == ACTIO_EAGAIN)
    return ACTIO_EPENDING;
  if (rc != 0)
    return rc;
  ac->returned++;
  *index = (size_t)(uintptr_t)m.a - 1;
  return 0;
}

void actio_as_completed_destroy(actio_as_completed *ac) {
  if (ac != NULL)
    ac_unref(ac);
}

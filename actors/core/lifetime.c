/* lifetime.c: when an actor is freed: its references, the pins of calls
 * through a supervised child's address, and the instances an address
 * retired, freed once nothing reaches them (docs/architecture.md,
 * "Freeing a replaced instance"). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "actors/core/actor_impl.h"
#include "actors/core/actor_internal.h"
#include "actors/core/runtime.h"
#include "base/debug.h"
#include "mailbox/mailbox.h"

void actio__actor_free(actio_actor *a) {
  /* Stopped: every message accepted was handled or dropped. */
  ACTIO__ASSERT(a->mb == NULL || actio__mbox_depth(a->mb) == 0);
  if (a->state_free != NULL)
    a->state_free(a->state);
  for (unsigned i = 0; a->workers != NULL && i < a->nworkers; i++)
    pthread_mutex_destroy(&a->workers[i].wake_mu);
  actio__mbox_destroy(a->mb);
  if (a->addr != NULL) { /* what waits to be freed goes with it */
    for (actio_actor *r = a->addr->retired, *next; r != NULL; r = next) {
      next = r->retired_next;
      actio__actor_unref(r);
    }
    actio__actor_unref(a->addr->last); /* a released address's */
    pthread_mutex_destroy(&a->addr->mu);
    pthread_cond_destroy(&a->addr->cv);
    free(a->addr);
  }
  pthread_mutex_destroy(&a->stop_mu);
  pthread_mutex_destroy(&a->fail_mu);
  free(a->fail_why);
  pthread_mutex_destroy(&a->init_mu);
  pthread_cond_destroy(&a->init_cv);
  pthread_mutex_destroy(&a->fin_mu);
  pthread_cond_destroy(&a->fin_cv);
  free(a->workers);
  free(a->name);
  free(a->meters);
  free(a);
}

void actio__actor_ref(actio_actor *a) {
  /* Relaxed: a reference is made from one held already. */
  atomic_fetch_add_explicit(&a->refs, 1, memory_order_relaxed);
}

static void address_final(actio_actor *a);

void actio__actor_unref(actio_actor *a) { actio__actor_unref_n(a, 1); }

void actio__actor_unref_n(actio_actor *a, uint32_t k) {
  if (a == NULL || k == 0)
    return;
  /* acq_rel: every holder's last use of the actor happens before the free. */
  uint32_t before = atomic_fetch_sub_explicit(&a->refs, k, memory_order_acq_rel);
  ACTIO__ASSERT(before >= k);
  if (before != k)
    return;
  if (a->addr != NULL)
    address_final(a); /* calls in progress through it may not hold one */
  else
    actio__actor_free(a);
}

/* Frees the instances retired from ad if `mine` calls are in progress
 * through it, the caller's own (0 or 1, the caller's done with what it
 * reached): each was replaced before it was retired, so a call that began
 * since cannot reach it, and one that began before is counted. */
static void reclaim(actio__addr *ad, uint64_t mine) {
  actio_actor *list = NULL;
  pthread_mutex_lock(&ad->mu);
  /* seq_cst: a pin's add before its load of cur (see actio__pin). */
  if ((atomic_load_explicit(&ad->users, memory_order_seq_cst) & ACTIO__ADDR_COUNT) == mine) {
    list = ad->retired;
    ad->retired = NULL;
    atomic_fetch_and_explicit(&ad->users, ~ACTIO__ADDR_RETIRED, memory_order_seq_cst);
  }
  pthread_mutex_unlock(&ad->mu);
  while (list != NULL) {
    actio_actor *next = list->retired_next;
    actio__actor_unref(list); /* the list's reference */
    list = next;
  }
}

void actio__unpin(const actio_actor *a) {
  if (a->addr == NULL)
    return;
  actio__addr *ad = a->addr;
  /* seq_cst throughout: the count and the flags are one word, changed by
   * read-modify-writes in one total order with the retirer's and the
   * last reference's. The last call out reclaims what was retired before
   * it leaves (it could not look at the address after). */
  uint64_t w = atomic_load_explicit(&ad->users, memory_order_seq_cst);
  for (;;) {
    if ((w & ACTIO__ADDR_COUNT) == 1 && (w & ACTIO__ADDR_RETIRED) != 0) {
      reclaim(ad, 1);
      w = atomic_load_explicit(&ad->users, memory_order_seq_cst);
    } else if (atomic_compare_exchange_weak_explicit(&ad->users, &w, w - 1,
                                                     memory_order_seq_cst,
                                                     memory_order_seq_cst)) {
      break;
    }
  }
  if ((w & ACTIO__ADDR_COUNT) == 1 && (w & ACTIO__ADDR_DEAD) != 0)
    actio__actor_free((actio_actor *)a); /* the last call out of a released address */
}

/* The last reference to address `a` is gone: it is freed now if no call
 * is in progress through it, else by the last call out (actio__unpin).
 * Nothing touches `a` after the flag but the one that frees it. */
static void address_final(actio_actor *a) {
  /* seq_cst: in the word's one order (see actio__unpin). */
  uint64_t w = atomic_fetch_or_explicit(&a->addr->users, ACTIO__ADDR_DEAD, memory_order_seq_cst);
  if ((w & ACTIO__ADDR_COUNT) == 0)
    actio__actor_free(a);
}

actio_actor *actio__actor_pin(const actio_actor *a) { return actio__pin(a); }
void actio__actor_unpin(const actio_actor *a) { actio__unpin(a); }

/* Takes a, and b unless NULL, off the runtime's list; 0 while the runtime
 * stops (its stop walks the list: they are left to destroy). */
static int list_leave(actio_runtime *rt, actio_actor *a, actio_actor *b) {
  pthread_mutex_lock(&rt->mu);
  int closing = rt->closing;
  for (int i = 0; !closing && i < 2; i++) {
    actio_actor *x = i == 0 ? a : b;
    if (x == NULL)
      continue;
    if (x->next != NULL)
      x->next->prev = x->prev;
    else
      rt->actors = x->prev;
    if (x->prev != NULL)
      x->prev->next = x->next;
  }
  pthread_mutex_unlock(&rt->mu);
  return !closing;
}

void actio__address_retire(actio_actor *addr, actio_actor *old) {
  actio__addr *ad = addr->addr;
  ACTIO__ASSERT(old->addr == NULL && old->stopped &&
                atomic_load_explicit(&ad->cur, memory_order_relaxed) != old);
  if (!list_leave(old->rt, old, NULL))
    return;
  pthread_mutex_lock(&ad->mu);
  old->retired_next = ad->retired;
  ad->retired = old;
  /* seq_cst: in the word's one order (see actio__unpin): either a call in
   * progress sees the flag as it leaves, or this sees none in progress. */
  uint64_t w = atomic_fetch_or_explicit(&ad->users, ACTIO__ADDR_RETIRED, memory_order_seq_cst);
  pthread_mutex_unlock(&ad->mu);
  if ((w & ACTIO__ADDR_COUNT) == 0)
    reclaim(ad, 0);
}


void actio__address_release(actio_actor *addr) {
  actio__addr *ad = addr->addr;
  /* Relaxed: settled, cur changes no more; we stored it. */
  actio_actor *last = atomic_load_explicit(&ad->cur, memory_order_relaxed);
  ACTIO__ASSERT(last->stopped && ad->last == NULL && !ad->moving);
  if (!list_leave(addr->rt, addr, last))
    return;
  ad->last = last; /* the list's reference, dropped with the address */
  actio__actor_unref(addr); /* the list's */
}

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
    for (actio_actor *r = atomic_load_explicit(&a->addr->retired, memory_order_relaxed), *next;
         r != NULL; r = next) {
      next = r->retired_next;
      actio__actor_unref(r);
    }
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
  free(a);
}

void actio__actor_ref(actio_actor *a) {
  /* Relaxed: a reference is made from one held already. */
  atomic_fetch_add_explicit(&a->refs, 1, memory_order_relaxed);
}

void actio__actor_unref(actio_actor *a) { actio__actor_unref_n(a, 1); }

void actio__actor_unref_n(actio_actor *a, uint32_t k) {
  if (a == NULL || k == 0)
    return;
  /* acq_rel: every holder's last use of the actor happens before the free. */
  uint32_t before = atomic_fetch_sub_explicit(&a->refs, k, memory_order_acq_rel);
  ACTIO__ASSERT(before >= k);
  if (before == k)
    actio__actor_free(a);
}

/* Frees the instances retired from ad if no call is in progress through
 * it: each was replaced before it was retired, so a call that began since
 * cannot reach it, and one that began before is counted in users. */
static void reclaim(actio__addr *ad) {
  actio_actor *list = NULL;
  pthread_mutex_lock(&ad->mu);
  if (atomic_load_explicit(&ad->users, memory_order_seq_cst) == 0) {
    list = atomic_load_explicit(&ad->retired, memory_order_relaxed);
    atomic_store_explicit(&ad->retired, NULL, memory_order_relaxed);
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
  /* seq_cst: the count's drop before the look at retired, paired with
   * the retirer's store of retired before its look at the count. */
  if (atomic_fetch_sub_explicit(&ad->users, 1, memory_order_seq_cst) == 1 &&
      atomic_load_explicit(&ad->retired, memory_order_seq_cst) != NULL)
    reclaim(ad);
}

actio_actor *actio__actor_pin(const actio_actor *a) { return actio__pin(a); }
void actio__actor_unpin(const actio_actor *a) { actio__unpin(a); }

void actio__address_retire(actio_actor *addr, actio_actor *old) {
  actio__addr *ad = addr->addr;
  actio_runtime *rt = old->rt;
  ACTIO__ASSERT(old->addr == NULL && old->stopped &&
                atomic_load_explicit(&ad->cur, memory_order_relaxed) != old);
  pthread_mutex_lock(&rt->mu);
  int closing = rt->closing; /* its stop walks the list: left to destroy */
  if (!closing) {
    if (old->next != NULL)
      old->next->prev = old->prev;
    else
      rt->actors = old->prev;
    if (old->prev != NULL)
      old->prev->next = old->next;
  }
  pthread_mutex_unlock(&rt->mu);
  if (closing)
    return;
  pthread_mutex_lock(&ad->mu);
  old->retired_next = atomic_load_explicit(&ad->retired, memory_order_relaxed);
  /* seq_cst: before the look at the count, paired with actio__unpin. */
  atomic_store_explicit(&ad->retired, old, memory_order_seq_cst);
  pthread_mutex_unlock(&ad->mu);
  if (atomic_load_explicit(&ad->users, memory_order_seq_cst) == 0)
    reclaim(ad);
}


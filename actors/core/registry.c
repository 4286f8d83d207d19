/* registry.c: actors by name, runtime-wide (Erlang's register/whereis):
 * a name stands for one actor until it is unregistered or the actor stops;
 * and monitors, futures that complete when an actor stops. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actio/actor.h"
#include "actio/error.h"
#include "actors/core/actor_impl.h"
#include "actors/core/actor_internal.h"
#include "actors/core/future_internal.h"
#include "actors/core/runtime.h"

/* ---- names ---- */

struct actio__name {
  struct actio__name *next; /* in its bucket */
  actio_actor *a;
  char name[];
};

static size_t bucket(const char *name) {
  size_t h = 5381;
  for (const unsigned char *p = (const unsigned char *)name; *p; p++)
    h = h * 33 + *p;
  return h % ACTIO__NAME_BUCKETS;
}

/* The entry of `name` (the link that points at it), under reg_mu. */
static struct actio__name **find(actio_runtime *rt, const char *name) {
  struct actio__name **p = &rt->names[bucket(name)];
  while (*p != NULL && strcmp((*p)->name, name) != 0)
    p = &(*p)->next;
  return p;
}

int actio_register(actio_actor *a, const char *name) {
  if (a == NULL || name == NULL || *name == '\0')
    return ACTIO_EINVAL;
  actio_runtime *rt = a->rt;
  size_t len = strlen(name) + 1;
  struct actio__name *n = malloc(sizeof *n + len);
  if (n == NULL)
    return ACTIO_ENOMEM;
  n->a = a;
  memcpy(n->name, name, len);
  int rc = 0;
  pthread_mutex_lock(&rt->reg_mu);
  struct actio__name **p = find(rt, name);
  if (a->unnamed) /* stopped: its names were released for good */
    rc = ACTIO_ECLOSED;
  else if (*p != NULL)
    rc = ACTIO_EEXIST;
  if (rc == 0) {
    n->next = NULL;
    *p = n;
    a->names++;
  }
  pthread_mutex_unlock(&rt->reg_mu);
  if (rc != 0)
    free(n);
  return rc;
}

actio_actor *actio_whereis(actio_runtime *rt, const char *name) {
  if (rt == NULL || name == NULL)
    return NULL;
  pthread_mutex_lock(&rt->reg_mu);
  struct actio__name *n = *find(rt, name);
  actio_actor *a = n != NULL ? n->a : NULL;
  pthread_mutex_unlock(&rt->reg_mu);
  return a;
}

int actio_unregister(actio_runtime *rt, const char *name) {
  if (rt == NULL || name == NULL)
    return ACTIO_EINVAL;
  pthread_mutex_lock(&rt->reg_mu);
  struct actio__name **p = find(rt, name), *n = *p;
  if (n != NULL) {
    *p = n->next;
    n->a->names--;
  }
  pthread_mutex_unlock(&rt->reg_mu);
  free(n);
  return n != NULL ? 0 : ACTIO_ENONAME;
}

void actio__names_release(actio_actor *a) {
  actio_runtime *rt = a->rt;
  struct actio__name *gone = NULL;
  pthread_mutex_lock(&rt->reg_mu);
  a->unnamed = 1;
  for (size_t b = 0; a->names > 0 && b < ACTIO__NAME_BUCKETS; b++)
    for (struct actio__name **p = &rt->names[b]; *p != NULL;) {
      struct actio__name *n = *p;
      if (n->a != a) {
        p = &n->next;
        continue;
      }
      *p = n->next;
      n->next = gone;
      gone = n;
      a->names--;
    }
  pthread_mutex_unlock(&rt->reg_mu);
  while (gone != NULL) {
    struct actio__name *next = gone->next;
    free(gone);
    gone = next;
  }
}

void actio__names_free(actio_runtime *rt) {
  for (size_t b = 0; b < ACTIO__NAME_BUCKETS; b++)
    while (rt->names[b] != NULL) {
      struct actio__name *next = rt->names[b]->next;
      free(rt->names[b]);
      rt->names[b] = next;
    }
}

/* ---- monitors ---- */

/* A monitor of an instance: in its list until it stops, until the future
 * is cancelled, or until a sweep finds it held by nobody else. Whoever
 * takes it off the list frees it. */
struct actio__watch {
  struct actio__watch *prev, *next;
  actio_actor *a;   /* a reference */
  actio_future *f;  /* the list's reference */
  int linked;       /* guarded by a->fail_mu */
};

static void watch_free(struct actio__watch *w) {
  actio_future_unref(w->f);
  actio__actor_unref(w->a);
  free(w);
}

/* The actor's end as a monitor reports it: resolved for a stop, failed
 * with the failure when it had failed. */
static void watch_end(struct actio__watch *w, int failed, int code, const char *why) {
  if (failed)
    actio_future_fail(w->f, code < 0 ? code : ACTIO_EFATAL, "actor %s failed: %s",
                      w->a->name, why);
  else
    actio_future_resolve(w->f, NULL, NULL);
}

static void unlink_locked(struct actio__watch *w) {
  if (w->prev != NULL)
    w->prev->next = w->next;
  else
    w->a->watchers = w->next;
  if (w->next != NULL)
    w->next->prev = w->prev;
  w->linked = 0;
  w->a->nwatchers--;
}

/* Monitors whose every other holder let go (the caller dropped its future
 * without cancelling it): nobody can see them end, so they leave the list,
 * on the returned chain (linked by next) for the caller to free outside the
 * lock. A monitor still held (by its caller, a callback, a gather) stays. */
static struct actio__watch *sweep_locked(actio_actor *a) {
  struct actio__watch *gone = NULL;
  for (struct actio__watch *w = a->watchers, *next; w != NULL; w = next) {
    next = w->next;
    if (actio__future_sole_ref(w->f)) {
      unlink_locked(w);
      w->next = gone;
      gone = w;
    }
  }
  return gone;
}

/* The cancel hook: a cancelled monitor leaves the list at once. */
static void unwatch(void *arg) {
  struct actio__watch *w = arg;
  pthread_mutex_lock(&w->a->fail_mu);
  int mine = w->linked;
  if (mine)
    unlink_locked(w);
  pthread_mutex_unlock(&w->a->fail_mu);
  if (mine)
    watch_free(w); /* the canceller holds its own reference to f */
}

int actio_monitor(actio_actor *target, actio_future **out) {
  if (target == NULL || out == NULL)
    return ACTIO_EINVAL;
  struct actio__watch *w = calloc(1, sizeof *w);
  int rc = w != NULL ? actio_future_create(&w->f) : ACTIO_ENOMEM;
  if (rc != 0) {
    free(w);
    return rc;
  }
  actio_actor *a = actio__pin(target);
  actio__actor_ref(a);
  actio__unpin(target);
  w->a = a;
  actio_future_ref(w->f); /* the caller's */
  *out = w->f;
  /* Before it is shared: nobody can cancel f yet. */
  (void)actio_future_on_cancel(w->f, unwatch, w);
  pthread_mutex_lock(&a->fail_mu);
  int ended = a->ended, failed = a->is_failed, code = a->fail_code;
  const char *why = a->fail_why ? a->fail_why : actio_strerror(code);
  struct actio__watch *gone = NULL;
  if (!ended) {
    /* The list stays within twice the monitors still held (and 16): a
     * sweep each time it doubles, so each monitor pays for one look. */
    if (a->nwatchers >= a->watch_sweep) {
      gone = sweep_locked(a);
      a->watch_sweep = a->nwatchers < 8 ? 16 : 2 * a->nwatchers;
    }
    w->next = a->watchers;
    if (w->next != NULL)
      w->next->prev = w;
    a->watchers = w;
    w->linked = 1;
    a->nwatchers++;
  }
  pthread_mutex_unlock(&a->fail_mu);
  while (gone != NULL) { /* held by no one else: no hook can be running */
    struct actio__watch *next = gone->next;
    actio_future_clear_cancel(gone->f);
    watch_free(gone);
    gone = next;
  }
  if (!ended)
    return 0; /* w is the list's now: it may be gone already */
  /* Stopped already: reported at once. */
  actio_future_clear_cancel(w->f);
  watch_end(w, failed, code, why); /* why lives as long as a */
  watch_free(w);
  return 0;
}

size_t actio__watchers_count(actio_actor *a) {
  pthread_mutex_lock(&a->fail_mu);
  size_t n = a->nwatchers;
  pthread_mutex_unlock(&a->fail_mu);
  return n;
}

void actio__watchers_fire(actio_actor *a) {
  pthread_mutex_lock(&a->fail_mu);
  a->ended = 1;
  struct actio__watch *list = a->watchers;
  a->watchers = NULL;
  a->nwatchers = 0;
  for (struct actio__watch *w = list; w != NULL; w = w->next)
    w->linked = 0;
  int failed = a->is_failed, code = a->fail_code;
  const char *why = a->fail_why ? a->fail_why : actio_strerror(code);
  pthread_mutex_unlock(&a->fail_mu);
  while (list != NULL) {
    struct actio__watch *next = list->next;
    actio_future_clear_cancel(list->f); /* a hook running now finds it taken */
    watch_end(list, failed, code, why);
    watch_free(list);
    list = next;
  }
}

/* runtime.h: the runtime's fields, shared by the actor core and the
 * deadline module (no call runs between them through this header). */
#ifndef ACTIO_ACTORS_CORE_RUNTIME_H
#define ACTIO_ACTORS_CORE_RUNTIME_H

#include <pthread.h>
#include <stdint.h>

#include "actio/actor.h"
#include "actors/core/deadline.h"
#include "actors/core/sched.h"

enum { ACTIO__NAME_BUCKETS = 64 };

struct actio_runtime {
  pthread_mutex_t mu; /* guards the actor list and closing */
  actio_actor *actors;
  int closing;        /* stopping: spawns are refused */
  pthread_mutex_t stop_mu; /* serialises actio_runtime_stop; guards stopped */
  int stopped;        /* every actor, the scheduler and the timer stopped */
  actio__timer *timer;
  actio__sched *sched; /* made by the first scheduled actor's spawn */
  _Atomic uint64_t dead_letters;
  _Atomic int timers_off; /* a stop began: sends due are dropped, new ones refused */
  actio_runtime_opts opts;
  pthread_mutex_t reg_mu; /* guards names and the actors' names, unnamed */
  struct actio__name *names[ACTIO__NAME_BUCKETS]; /* registry.c */
};

#endif

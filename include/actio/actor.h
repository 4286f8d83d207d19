/** @file actio/actor.h
 * The runtime, and actors: a behavior, its state, a lock-free mailbox and a
 * pool of worker threads. */
#ifndef ACTIO_ACTOR_H
#define ACTIO_ACTOR_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "actio/future.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup runtime Runtime and actors
 * The runtime, and actors: a behavior, its state, a lock-free mailbox and a
 * pool of worker threads.
 * @{ */

/** The runtime: it owns the actors spawned in it and a timer thread for
 * deadlines, sleeps and delayed sends (actio_runtime_create,
 * actio_runtime_destroy). */
typedef struct actio_runtime actio_runtime;
/** An actor: a behavior, its state, a mailbox and worker threads
 * (actio_actor_spawn). Its runtime owns the handle. */
typedef struct actio_actor actio_actor;

/** A message refused because its actor had stopped (a dead letter), seen on
 * the sender's thread before the send fails with ACTIO_ECLOSED; `msg` is
 * still the sender's. Keep it short: it runs inside the send. */
typedef void (*actio_dead_letter_fn)(void *arg, actio_actor *to, void *msg);

/** Zero means the default for every field. */
typedef struct actio_runtime_opts {
  actio_dead_letter_fn dead_letter; /**< NULL: only counted */
  void *dead_letter_arg;            /**< passed to dead_letter */
  unsigned threads; /**< scheduler threads shared by the actors spawned
                         without workers of their own; 0: one per core */
} actio_runtime_opts;

/** Creates a runtime: it owns actors and a timer thread for deadlines.
 * opts may be NULL. Returns 0, ACTIO_ENOMEM or a negated errno from
 * pthread_create. Any thread. */
int actio_runtime_create(actio_runtime **out, const actio_runtime_opts *opts);

/** How an actor, or a whole runtime, stops (actio_actor_stop,
 * actio_runtime_stop). */
typedef enum actio_stop_mode {
  ACTIO_STOP_DRAIN = 0, /**< handle every message accepted, then stop */
  ACTIO_STOP_NOW = 1,   /**< stop after the messages being handled; cancel
                             the rest (askers see ACTIO_ECANCELED) */
} actio_stop_mode;

/** Stops the whole runtime, as `mode` says for every actor: spawns are
 * refused from the start, then each actor is stopped newest first (a
 * supervisor stops its own children, and restarts nothing any more), the
 * scheduler and timer threads end, and futures still waiting for a
 * deadline or a sleep are cancelled (ACTIO_ECANCELED); delayed and
 * periodic sends (actio/timer.h) are dropped from the start, through their
 * behavior's drop. With ACTIO_STOP_NOW every
 * mailbox closes before anything is waited for: work in progress is ended
 * and every request accepted but not done completes with ACTIO_ECANCELED
 * (transfers and queries included), so it returns without waiting for a
 * stalled server; a supervisor's children stop now too, whatever their
 * specs say. Afterwards sends fail with ACTIO_ECLOSED, spawns and
 * actio_future_set_deadline too; handles stay valid until
 * actio_runtime_destroy, which then only frees. A second call returns once
 * the first is done; ACTIO_STOP_NOW from another thread hurries one that
 * drains. Returns 0, ACTIO_EINVAL, or ACTIO_ESTATE on one of this
 * runtime's own threads (a worker, a scheduler thread, the timer's
 * callbacks). Any other thread. */
int actio_runtime_stop(actio_runtime *rt, actio_stop_mode mode);

/** actio_runtime_stop(rt, ACTIO_STOP_DRAIN) unless it was stopped already,
 * then joins every thread and frees everything, actor handles included.
 * Call from a thread that is not one of this runtime's, and not while
 * another calls actio_runtime_stop. NULL accepted. */
void actio_runtime_destroy(actio_runtime *rt);

/** Messages refused because their actor was stopped (dead letters). Any
 * thread. */
uint64_t actio_runtime_dead_letters(const actio_runtime *rt);

/** Makes `f` fail with ACTIO_ETIMEDOUT and "deadline of <timeout_ms> ms
 * passed" (running its cancel hook; an HTTP request a worker has taken puts
 * its method and URL before that text) if it is still pending timeout_ms
 * from now; actio_future_remaining_ms(f) tells the operation how long it
 * has. The timer holds its own reference to `f` until then; a runtime stop
 * cancels it first (ACTIO_ECANCELED). Returns 0, ACTIO_EINVAL, ACTIO_ENOMEM,
 * or ACTIO_ECLOSED once rt stopped. Any thread.
 * @ingroup futures */
int actio_future_set_deadline(actio_runtime *rt, actio_future *f,
                              int64_t timeout_ms);

/**
 * What an actor does. Each worker thread calls worker_init once, then
 * handle for each message it takes, then worker_stop. Only handle is
 * required. All callbacks run on the actor's worker threads; state shared
 * between workers (actio_actor_state) needs the behavior's own locking. A
 * scheduled actor (no workers of its own, the default) has one context and
 * handles one message at a time, on whichever scheduler thread runs it:
 * its context needs no lock, and the runtime orders one message's handling
 * before the next's. A runnable example: demos/counter.c.
 */
typedef struct actio_behavior {
  /** Sets *worker, this thread's context. A negative return fails the spawn. */
  int (*worker_init)(actio_actor *self, void **worker);
  /**
   * Handles one message. `msg` is the handler's from now on (free it, or
   * keep it). `reply` is the asker's future, or NULL for tell; it
   * is borrowed for the call: complete it before returning, or take a
   * reference (actio_future_ref) to complete it later. A negative return
   * fails a reply still pending with that code and counts a failure;
   * ACTIO_EFATAL also fails the actor (see actio_actor_fail).
   */
  int (*handle)(actio_actor *self, void *worker, void *msg, actio_future *reply);
  /** Frees this thread's context. */
  void (*worker_stop)(actio_actor *self, void *worker);
  /** Frees a message that was accepted but will never be handled (its actor
   * stopped at once, or its asker cancelled first). NULL: nothing to free. */
  void (*drop)(actio_actor *self, void *msg);
  /**
   * For workers that also wait on sockets (libcurl, libpq), all three or
   * none. An idle worker calls wait() instead of sleeping on the mailbox;
   * wait returns when its own I/O needs attention, when wake() was called
   * for it, or after a bounded time. A new message calls wake() for one
   * waiting worker, on the sender's thread: it must be quick and
   * thread-safe (a write to an eventfd). busy() says
   * whether the worker still has work in flight: a draining stop keeps the
   * worker waiting until it has none; a stop-now goes straight to
   * worker_stop, which must then end that work (fail its futures).
   * A message the worker sends its own actor (a callback's, maybe inside
   * wait) calls wake() on the worker's own thread: wait must then not
   * block, as it must not once a slot frees before it would (a request
   * ended, timed out or was cancelled inside the wait) while it entered
   * full: a full worker is not woken by sends (see full), so it would
   * sleep on messages nobody takes; it returns, and the loop takes them.
   * @{ */
  void (*wait)(actio_actor *self, void *worker);
  void (*wake)(actio_actor *self, void *worker);
  int (*busy)(actio_actor *self, void *worker);
  /** @} */
  /** Optional, for socket workers: 1 while the worker holds work it cannot
   * start yet (its connections are all taken). It then takes no more
   * messages and is not woken for them, so an idle worker gets them: the
   * shared mailbox balances the load. */
  int (*full)(actio_actor *self, void *worker);
} actio_behavior;

/** Zero means the default for every field. */
typedef struct actio_actor_opts {
  const char *name;       /**< copied; default "actor"; worker i's thread
                               is named "<name>-<i>" (15 bytes at most) */
  /** 0 (the default): the actor is scheduled on the runtime's threads
   * (actio_runtime_opts.threads), one message at a time, sharing them with
   * the other scheduled actors, so its handler must not block (no waiting
   * on a future, no blocking I/O); worker_init and worker_stop run once, on
   * the threads that spawn and stop it. N: N threads of its own, which
   * take its messages concurrently: for handlers that block. Socket
   * behaviors always have threads of their own (default 1). */
  unsigned workers;
  size_t capacity;        /**< mailbox size, rounded up to a power of 2; default 1024 */
  void *state;            /**< the behavior's shared state
                               (actio_actor_state): borrowed, unless
                               state_free is set */
  unsigned spin;          /**< polls of an empty mailbox before sleeping; default 256 */
  void (*state_free)(void *state); /**< called when the runtime frees the
                                       actor, or by a spawn that fails; may
                                       be NULL */
} actio_actor_opts;

/** Starts an actor: its mailbox and its workers, each having run worker_init
 * before this returns. The behavior struct must outlive the actor. The
 * runtime owns the handle (freed by actio_runtime_destroy). Returns 0,
 * ACTIO_EINVAL, ACTIO_ENOMEM, ACTIO_ECLOSED (runtime stopping), a
 * negated errno from pthread_create, or worker_init's error. Any thread. */
int actio_actor_spawn(actio_runtime *rt, const actio_behavior *b,
                      const actio_actor_opts *opts, actio_actor **out);

/** The state given at spawn, the name, the runtime, the behavior. On a
 * supervised child's address, those of the instance running now: the
 * state and the name are then valid until that instance is replaced (its
 * memory is freed); keep the address, and ask again. Any thread. @{ */
void *actio_actor_state(const actio_actor *a);
const char *actio_actor_name(const actio_actor *a);
actio_runtime *actio_actor_runtime(const actio_actor *a);
const actio_behavior *actio_actor_behavior(const actio_actor *a);
/** @} */

/** The actor whose worker is the calling thread (an instance, never a
 * supervised child's address), or NULL on other threads. A supervised
 * child's instance is freed once its supervisor has replaced it and
 * nothing refers to it any more: keep its address (actio_sup_lookup). */
actio_actor *actio_actor_self(void);

/**
 * Sends `msg` (ownership passes to the actor on success). A full mailbox
 * fails at once with ACTIO_EFULL when timeout_ms is 0, or waits up to
 * timeout_ms (< 0: as long as it takes) and then fails with
 * ACTIO_ETIMEDOUT. A stopped actor refuses with ACTIO_ECLOSED (a dead
 * letter). Sent to a supervised child's address (actio_sup_lookup) while
 * its supervisor restarts it, the message waits for the new instance in
 * the same way: ACTIO_EAGAIN at once when timeout_ms is 0, ACTIO_ETIMEDOUT
 * after timeout_ms; ACTIO_ECLOSED if it is not restarted. On failure `msg`
 * stays the caller's. A scheduled actor, or one with one worker, handles
 * one thread's messages in the order sent. Any thread, workers included.
 */
int actio_tell(actio_actor *a, void *msg, int64_t timeout_ms);

/** As actio_tell, and *out is a future the handler completes (the caller's
 * reference). Cancelling it before a worker takes the message drops the
 * message unhandled. On failure no future is made. Any thread, as
 * actio_tell. */
int actio_ask(actio_actor *a, void *msg, int64_t timeout_ms, actio_future **out);

/** Stops accepting messages, then stops the workers as `mode` says and joins
 * them. The handle stays valid (the runtime frees it). Idempotent. On a
 * supervised child's address, stops the instance running now (its
 * supervisor does not restart it: a stop is no failure). Returns 0, or
 * ACTIO_ESTATE when called from one of the actor's own workers. Any other
 * thread. */
int actio_actor_stop(actio_actor *a, actio_stop_mode mode);

/** Counters of an actor, read without stopping it. */
typedef struct actio_actor_stats {
  uint64_t accepted;  /**< messages taken into the mailbox */
  uint64_t handled;   /**< handle calls that returned 0 */
  uint64_t failed;    /**< handle calls that returned an error */
  uint64_t dropped;   /**< accepted but never handled (cancelled) */
  size_t depth;       /**< in the mailbox now */
} actio_actor_stats;

/** Fills *out with the counters of `a`, read one by one without stopping it
 * (while it runs they need not add up). Any thread. */
void actio_actor_stats_get(const actio_actor *a, actio_actor_stats *out);

/** What a supervisor and an operator want to see of an actor. Requests are
 * asks and the I/O actors' operations, timed from the call to the
 * completion of their future. */
typedef struct actio_actor_metrics {
  actio_actor_stats stats; /**< the actor's counters */
  uint64_t in_flight;      /**< requests not completed yet: waiting plus
                                running */
  uint64_t waiting;        /**< of them, not started: in the mailbox, or
                                taken and waiting for a connection */
  uint64_t running;        /**< of them, started: a handler took the ask,
                                a transfer, a query or a file operation
                                runs */
  uint64_t completed;      /**< requests completed with a value */
  uint64_t errors;         /**< requests failed or cancelled */
  /** Their latency (within 1/8): median, 90th and 99th percentiles, the
   * slowest. @{ */
  double p50_ms, p90_ms, p99_ms, max_ms;
  /** @} */
  int failed;              /**< actio_actor_fail was called */
} actio_actor_metrics;

/** A snapshot, read without stopping the actor. Any thread. */
void actio_actor_metrics_get(const actio_actor *a, actio_actor_metrics *out);

/** Prints a header and one line per running actor of rt (oldest first):
 * name, depth, in flight, completed, errors, p50/p99/max in ms. Any
 * thread. */
void actio_runtime_metrics_print(actio_runtime *rt, FILE *out);

/**
 * Reports that actor `a` cannot go on: its state is broken, or its server
 * has been gone for longer than it may wait. The first report counts; its
 * supervisor, if it has one, then restarts it (see actio/supervisor.h) or
 * gives up. The actor keeps handling messages until it is stopped. Any
 * thread, its own workers included.
 */
void actio_actor_fail(actio_actor *a, int code, const char *why);

/** 1 once actio_actor_fail was called for `a`. Any thread. */
int actio_actor_failed(const actio_actor *a);

/** Registers `a` (an actor, or a supervised child's address) under
 * `name`, runtime-wide (copied), until actio_unregister or until `a`
 * stops: an instance's names go when it stops, an address's when its
 * child is stopped for good (a restart keeps them). An actor may have
 * several names. Returns 0, ACTIO_EINVAL (NULL, or an empty name),
 * ACTIO_EEXIST (the name stands for an actor already), ACTIO_ECLOSED (`a`
 * stopped) or ACTIO_ENOMEM. Any thread. */
int actio_register(actio_actor *a, const char *name);

/** The actor registered under `name` in rt, or NULL (none, or rt or name
 * NULL). Borrowed: valid as long as the handle registered is (a
 * supervised child's address: until its child is stopped for good by
 * actio_sup_stop_child, else until the runtime is destroyed; an
 * instance of one: until it is replaced). Any thread. */
actio_actor *actio_whereis(actio_runtime *rt, const char *name);

/** Frees `name` in rt. Returns 0, ACTIO_EINVAL (rt or name NULL) or
 * ACTIO_ENONAME (no actor has that name). Any thread. */
int actio_unregister(actio_runtime *rt, const char *name);

/** A monitor: *out completes once actor `a` stops (Erlang's monitor). It
 * resolves (value NULL) when `a` stopped without failing; it fails with
 * the failure's code and message ("actor NAME failed: WHY") when
 * actio_actor_fail had been called for it. An actor that has stopped
 * already reports at once. On a supervised child's address it watches
 * the instance running now, whose restart ends it (failed, with the
 * failure that caused the restart). Cancel *out to stop watching; a
 * monitor whose every reference was dropped uncancelled (nothing can see
 * it end) is let go by a later actio_monitor of `a`, so an actor watched
 * again and again keeps at most twice the monitors still held, and 16.
 * Returns 0 (*out is the caller's reference), ACTIO_EINVAL or
 * ACTIO_ENOMEM. Any thread. */
int actio_monitor(actio_actor *a, actio_future **out);

/** actio_map (see actio/future.h) under one deadline for the whole group:
 * each item's future gets the group's time left as its own deadline (so an
 * HTTP transfer or a query is bounded by it: cancelled when it passes), and
 * *out fails with ACTIO_ETIMEDOUT then, cancelling what still runs. An item
 * started with no time left fails at once. timeout_ms < 0: no deadline (rt
 * may then be NULL). Returns 0, ACTIO_EINVAL or ACTIO_ENOMEM.
 * @ingroup futures */
int actio_map_within(actio_runtime *rt, size_t n, size_t limit,
                     int64_t timeout_ms, actio_map_fn fn, void *arg,
                     actio_gather_policy policy, actio_future **out);

/** @} */

#ifdef __cplusplus
}
#endif
#endif /* ACTIO_ACTOR_H */

/** @file actio/supervisor.h
 * Supervision trees: a supervisor starts its children in order, restarts
 * those that fail within a restart intensity, and stops them in reverse
 * order. */
#ifndef ACTIO_SUPERVISOR_H
#define ACTIO_SUPERVISOR_H

#include <stddef.h>
#include <stdint.h>

#include "actio/actor.h"
#include "actio/future.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup supervision Supervision
 * A child fails when actio_actor_fail is called for it: by its own
 * behavior (a handler returning ACTIO_EFATAL), by an I/O actor that gave up
 * (a database pool past its retry budget), or by a child supervisor that
 * gave up. The supervisor then restarts, as its strategy says:
 *
 *  - ACTIO_ONE_FOR_ONE:  the failed child alone;
 *  - ACTIO_ONE_FOR_ALL:  every child (stopped in reverse, started in order);
 *  - ACTIO_REST_FOR_ONE: the failed child and those started after it.
 *
 * A restart stops the old instance (as its spec says: draining by default,
 * so what it accepted still completes) and starts a new one from the spec,
 * after a pause that doubles with each restart in the period, with jitter.
 * More than max_restarts restarts within period_ms and the supervisor gives
 * up: it stops its children, tells its monitor, and fails itself with
 * ACTIO_EINTENSITY, which its own supervisor sees.
 *
 * A child's address (actio_sup_lookup) survives its restarts: every call
 * that takes an actio_actor reaches, through it, the instance running now.
 * A replaced instance is freed once no call through the address and no
 * request of it is still in progress, so memory does not grow with
 * restarts; a handle to the instance itself is valid until it is
 * replaced. The address itself lasts until its child is stopped for good
 * by actio_sup_stop_child.
 * A send that meets a restart waits for the new instance, within its own
 * timeout (see actio_tell), so nothing sent is lost or left unanswered.
 * A send from an actor's own thread (a handler, a callback on a worker)
 * does not wait for a restart while its own actor is being stopped, for
 * the restart may be waiting for that thread: it fails with ACTIO_EAGAIN.
 * After actio_runtime_stop(ACTIO_STOP_NOW) no restart comes, and sends
 * waiting for one fail with ACTIO_ECLOSED.
 *
 * The supervisor is an actor with one worker, which is where restarts and
 * the monitor run; it is stopped like any actor, stopping its children in
 * reverse order first (stopped with ACTIO_STOP_NOW, it stops them now too,
 * whatever their specs say).
 * @{ */

/** Which children a failure restarts (see the list above). */
typedef enum actio_sup_strategy {
  ACTIO_ONE_FOR_ONE = 0,  /**< the failed child alone (the default) */
  ACTIO_ONE_FOR_ALL = 1,  /**< every child */
  ACTIO_REST_FOR_ONE = 2, /**< the failed child and those started after it */
} actio_sup_strategy;

/** Starts one instance of a child in rt and sets *out. actio_db_child,
 * actio_http_child, actio_file_child and actio_sup_child are ready
 * made; any function spawning an actor will do. An address (another
 * supervisor's child) is refused: the start fails with ACTIO_EINVAL. */
typedef int (*actio_child_start_fn)(actio_runtime *rt, void *arg,
                                    actio_actor **out);

/** One child of a supervisor: how to start it, and how it is treated. */
typedef struct actio_child_spec {
  const char *name;           /**< unique among its siblings; copied */
  actio_child_start_fn start; /**< starts an instance; required */
  void *arg;                  /**< borrowed: it must outlive the supervisor */
  int temporary;              /**< 1: not restarted; its failure is reported */
  actio_stop_mode stop;       /**< how an instance is stopped; default drain */
} actio_child_spec;

/** What a monitor hears of. */
typedef enum actio_sup_event_kind {
  ACTIO_SUP_CHILD_FAILED,     /**< code, reason: why */
  ACTIO_SUP_CHILD_RESTARTED,  /**< a new instance runs */
  ACTIO_SUP_GAVE_UP,          /**< code, reason: the failure too many */
  /** A child's connection (a NATS connection's actor, actio/nats.h) was
   * lost: code, reason say why; its client reconnects. @{ */
  ACTIO_SUP_CHILD_DISCONNECTED,
  ACTIO_SUP_CHILD_RECONNECTED, /**< and it is back */
  /** @} */
} actio_sup_event_kind;

/** A failure, restart or giving up, as a monitor hears of it. */
typedef struct actio_sup_event {
  actio_sup_event_kind kind;  /**< what happened */
  const char *supervisor;     /**< the supervisor's name */
  const char *child;          /**< the child's name (giving up: the one that
                                   failed last) */
  int code;                   /**< the failure's code (see kind) */
  const char *reason;         /**< the failure's text (see kind) */
  unsigned restarts;          /**< restarts within the period, this included */
} actio_sup_event;

/** Hears of failures and restarts, on the supervisor's worker (valid
 * during the call). */
typedef void (*actio_sup_monitor_fn)(void *arg, const actio_sup_event *ev);

/** Zero means the default for every field. */
typedef struct actio_sup_opts {
  const char *name;           /**< default "supervisor"; copied */
  actio_sup_strategy strategy; /**< default ACTIO_ONE_FOR_ONE */
  unsigned max_restarts;      /**< R: default 3 */
  int64_t period_ms;          /**< T: default 5000 */
  int64_t backoff_ms;         /**< first pause before a restart; default 10;
                                   < 0: none */
  int64_t backoff_max_ms;     /**< default 1000 */
  actio_sup_monitor_fn monitor; /**< NULL: events are only counted */
  void *monitor_arg;          /**< passed to monitor; borrowed for the
                                   supervisor's life */
} actio_sup_opts;

/** Starts a supervisor and its n children, in order (the array is copied;
 * opts may be NULL). If a child fails to start, those started are stopped
 * in reverse and its error is returned. Returns 0, ACTIO_EINVAL (no start
 * function, a name missing or used twice), ACTIO_ENOMEM, or the error of a
 * child's start. Any thread that is not one of the supervisor's children. */
int actio_sup_spawn(actio_runtime *rt, const actio_sup_opts *opts,
                    const actio_child_spec *children, size_t n,
                    actio_actor **out);

/** A supervisor as another's child: the spec's arg for actio_sup_child. */
typedef struct actio_sup_def {
  actio_sup_opts opts;              /**< the supervisor's options */
  const actio_child_spec *children; /**< its children, in start order */
  size_t n;                         /**< how many */
} actio_sup_def;

/** actio_sup_spawn as a supervisor's child start: `def` is the
 * actio_sup_def * (its children array too), borrowed for the parent
 * supervisor's life. Returns as actio_sup_spawn. */
int actio_sup_child(actio_runtime *rt, void *def, actio_actor **out);

/** The address of child `name`: the same handle across the child's
 * restarts, reaching whichever instance runs now (sends, asks, the I/O
 * actors' calls, stop, stats). NULL when there is no such child or it is
 * stopped for good (a temporary one that failed, or its supervisor gave up
 * or stopped); an address kept from before then refuses sends with
 * ACTIO_ECLOSED. A child of a restarted supervisor is a new child: look it
 * up again through the supervisor's own address. actio_actor_self() on the
 * child's workers is the instance, not the address. Borrowed: valid until
 * the child is stopped for good by actio_sup_stop_child or
 * actio_sup_stop_child_at (then freed, see there), else until the runtime
 * is destroyed. Any thread. */
actio_actor *actio_sup_lookup(actio_actor *sup, const char *name);

/** Starts a child under the running supervisor `sup` at run time
 * (Erlang's dynamic supervisor: one actor per tenant, per connection):
 * its worker starts it after the children it has, and its strategy and
 * restart intensity then apply to it as to them. `spec` is copied (its
 * name too; its arg is borrowed until the child is stopped for good). Once
 * started, *out resolves with the child's address as its value (as
 * actio_sup_lookup returns it, borrowed). *out fails with ACTIO_EEXIST
 * when a child of that name exists, with the start's error when the start
 * fails, ACTIO_ECLOSED when the supervisor stops or gave up first. Returns
 * 0 (*out is the caller's reference), ACTIO_EINVAL (not a supervisor, no
 * spec, name or start function), ACTIO_ENOMEM, or ACTIO_ECLOSED (the
 * supervisor stopped). Any thread. */
int actio_sup_start_child(actio_actor *sup, const actio_child_spec *spec,
                          actio_future **out);

/** Stops child `name` for good (as its spec says, draining by default) and
 * removes it: lookups find it no more, its name is free for a new child,
 * and its address and last instance are freed once nothing holds them, so
 * memory does not grow with children started and stopped. Works on the
 * children given at spawn too. *out resolves (value NULL) once it is
 * stopped, fails with ACTIO_ENONAME when there is no such child, and with
 * ACTIO_ECLOSED when the supervisor stops first. Once *out resolved, the
 * child's address must not be used any more, as a destroyed handle: a send
 * through it still waiting then (for room, or for a restart) ends safely,
 * refused with ACTIO_ECLOSED, and the library's own holders (a delayed send, a fan-out, a
 * transaction with retries) keep it until they end; a file handle opened
 * through it must be closed first. Returns 0, ACTIO_EINVAL, ACTIO_ENOMEM or ACTIO_ECLOSED. Any
 * thread. */
int actio_sup_stop_child(actio_actor *sup, const char *name, actio_future **out);

/** As actio_sup_stop_child, for the child whose address is `child` (as
 * actio_sup_lookup or actio_sup_start_child gave it). Any thread. */
int actio_sup_stop_child_at(actio_actor *sup, actio_actor *child,
                            actio_future **out);

/** How a fan-out spreads its calls over the children it names. */
typedef enum actio_sup_spread {
  ACTIO_SPREAD_ROUND_ROBIN = 0, /**< call i to child i % nchildren (the
                                     default; one child: all to it) */
  ACTIO_SPREAD_BY_INDEX = 1,    /**< each call to the child its `to` says */
} actio_sup_spread;

/** One request of a fan-out (actio_sup_fanout). */
typedef struct actio_sup_call {
  void *msg;      /**< the message, as actio_ask sends it; lent, not given:
                       it must stay valid until the fan-out's future
                       completes, and the child's handler and drop must not
                       free it (an idempotent one may be handled twice) */
  size_t to;      /**< ACTIO_SPREAD_BY_INDEX: the index of its child in the
                       children named; else ignored */
  int idempotent; /**< 1: sent again to the new instance when the child
                       fails with it in flight and is restarted */
} actio_sup_call;

/** Zero means the default for every field. */
typedef struct actio_sup_fanout_opts {
  actio_gather_policy policy; /**< default ACTIO_GATHER_FAIL_FAST */
  int64_t timeout_ms;         /**< one deadline for the whole fan-out, resends
                                   included; 0 (the default) or < 0: none */
  actio_sup_spread spread;    /**< default ACTIO_SPREAD_ROUND_ROBIN */
} actio_sup_fanout_opts;

/** Sends the n calls to children of supervisor `sup` as asks (to one child,
 * or spread over the nchildren named, as opts->spread says) and gathers
 * them into *out, as actio_gather does under opts->policy: item i
 * (actio_gather_item) is call i's future, with the value its handler
 * replied (borrowed) or its error. One deadline, opts->timeout_ms, bounds
 * it all: once it passes *out fails with ACTIO_ETIMEDOUT and what is still
 * pending is cancelled; cancelling *out cancels every call.
 *
 * A call is lost to a failure when it fails (a handler's ACTIO_EFATAL, a
 * stop-now's ACTIO_ECANCELED) on an instance of the child that has failed.
 * An idempotent call is then sent again, by the supervisor's worker once
 * it has restarted the child, to the new instance, as many times as it
 * takes within the deadline; any other call fails with ACTIO_ERESTARTED
 * ("supervisor S: child C restarted while call I was in flight: ..."). An
 * idempotent call lost by a child not restarted (temporary, stopped for
 * good, its supervisor gave up or stopped) fails with ACTIO_ECLOSED. Every
 * call completes exactly once.
 *
 * The calls are sent from this thread, which waits for room in a full
 * mailbox or for a restart in progress, within the deadline (as actio_ask
 * with that timeout); a call that cannot be sent fails with the send's
 * error. The children's addresses are held until *out and every resend
 * are done. Returns 0 (*out is the caller's reference), ACTIO_EINVAL (sup
 * not a supervisor; calls, children, a child's name or out NULL; n or
 * nchildren 0; a `to` out of range; a bad policy or spread), ACTIO_ENONAME
 * (no child running under a name given), ACTIO_ENOMEM, or what
 * actio_future_set_deadline returns; no call is sent then. Any thread
 * that is not one of the children's workers. */
int actio_sup_fanout(actio_actor *sup, const char *const *children, size_t nchildren,
                     const actio_sup_call *calls, size_t n,
                     const actio_sup_fanout_opts *opts, actio_future **out);

/** A supervisor's counters (actio_sup_stats_get). */
typedef struct actio_sup_stats {
  uint64_t failures;  /**< child failures seen */
  uint64_t restarts;  /**< child instances started again */
  int gave_up;        /**< 1: it gave up (too many restarts) */
} actio_sup_stats;

/** The supervisor's counters (zeros for an actor that is not one). Any
 * thread. */
void actio_sup_stats_get(actio_actor *sup, actio_sup_stats *out);

/** @} */

#ifdef __cplusplus
}
#endif
#endif /* ACTIO_SUPERVISOR_H */

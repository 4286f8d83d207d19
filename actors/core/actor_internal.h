/* actor_internal.h: what the I/O actors and the supervisor may do with an
 * actor beyond the public API. */
#ifndef ACTIO_ACTOR_INTERNAL_H
#define ACTIO_ACTOR_INTERNAL_H

#include <stdint.h>

#include "actio/actor.h"
#include "actors/core/bell.h"

/*
 * The one path of every I/O request, whose future `reply` the request
 * holds: reply gets the deadline of the actio_map_within group being
 * started on this thread, the caller gets its own reference, the request is
 * queued, and it is timed in the actor's metrics. On success *out is the
 * caller's reference to reply; on failure msg and reply are still the
 * caller's. reply may be NULL (an internal request nobody waits for), and
 * out with it.
 *
 * actio__request queues msg in the actor's mailbox, waiting up to
 * timeout_ms for room (see actio_tell); actio__request_bound queues it in
 * the inbox of the worker it is bound to (a transaction's connection), by
 * its embedded `link`, and fails with ACTIO_ECLOSED once that worker left.
 */
int actio__request(actio_actor *a, void *msg, actio_future *reply,
                   int64_t timeout_ms, actio_future **out);
int actio__request_bound(actio_actor *a, actio__bell *bell,
                         actio__bell_link *link, actio_future *reply,
                         actio_future **out);
/* A request one of a's own workers sends from its thread (a completion's
 * callback starting the next query) is handled by that worker at once,
 * skipping the mailbox, when room(worker) says it can start it: no other
 * worker takes it while this one's connection just freed up, and nobody
 * is woken. room must count what the worker holds, so that the bound the
 * mailbox would have kept holds. Returns ACTIO_EAGAIN, with msg and reply
 * still the caller's, when the caller is not such a worker, the actor is
 * stopping or room says no: then send it with actio__request. */
int actio__request_self(actio_actor *a, void *msg, actio_future *reply,
                        actio_future **out, int (*room)(void *worker));

/* For a socket behavior's wait (actio_behavior.wait), on its worker, just
 * before it blocks and after what may free a slot there (timers, cancels,
 * requests ended): 1 if it may block, 0 if it must return at once. A
 * worker that entered its wait full is not advertised, so no send wakes
 * it; if it has room now, this advertises it and then looks at the
 * mailbox, which pairs with the senders as the loop's own check does.
 * `a` is the wait's own self. */
int actio__wait_may_sleep(actio_actor *a);

/* Counts `f` as a request of `a` in flight, timed from now to its
 * completion (the actor's metrics). Call once `f` is sure to complete: after
 * the send succeeded. */
void actio__actor_track(actio_actor *a, actio_future *f);

/* Marks the request `f` of `a` (NULL: none) running: a worker started its
 * work (a transfer, a query on a connection, a file operation). Until
 * then it counts as waiting, in the metrics. Any thread; idempotent. */
void actio__request_begin(actio_actor *a, actio_future *f);

/* 1 when the calling thread works for `a` (an address: for its instance
 * now): actio_actor_self() == a, addresses resolved. */
int actio__actor_is_self(const actio_actor *a);

/* actio_tell for the library's own messages: refused by a stopped actor,
 * it is no dead letter (neither counted nor shown to the user's hook). */
int actio__tell_quiet(actio_actor *a, void *msg, int64_t timeout_ms);

/* actio_ask, and *took (unless NULL) is the instance that took msg (a
 * itself, or the one its address reached), referenced: the caller drops
 * it with actio__actor_unref. Any thread. */
int actio__ask_at(actio_actor *a, void *msg, int64_t timeout_ms, actio_future **out,
                  actio_actor **took);

/* Called once, by actio_actor_fail, on the failing thread, under the
 * actor's failure lock, with kind ACTIO_SUP_CHILD_FAILED; and by
 * actio__actor_notice with its kind, under the same lock. It must not
 * block, nor touch the actor's failure (actio_actor_fail,
 * actio_actor_failed, its metrics). */
typedef void (*actio__fail_fn)(void *arg, actio_actor *a, int kind, int code,
                               const char *why);

/* Sets who hears of `a`'s failure (its supervisor); fn NULL: nobody. If
 * `a` already failed, fn runs at once. Once it returns, the previous hook
 * runs no more (its argument may be freed). */
void actio__actor_set_monitor(actio_actor *a, actio__fail_fn fn, void *arg);

/* Calls fn(hook's argument, arg) if `a`'s failure hook is `hook`, under
 * the lock that keeps that argument valid (fn must not block), and returns
 * what it returns; else ACTIO_EINVAL. `a` an instance. Any thread. */
int actio__actor_monitor_call(actio_actor *a, actio__fail_fn hook,
                              int (*fn)(void *hook_arg, void *arg), void *arg);

/* Tells whoever hears of `a`'s failure (its supervisor, which passes it to
 * its monitor) of an event that is no failure: kind is an
 * actio_sup_event_kind (ACTIO_SUP_CHILD_DISCONNECTED, ...). Nothing once
 * `a` failed, or when nobody listens. Any thread; it does not block. */
void actio__actor_notice(actio_actor *a, int kind, int code, const char *why);

/* Marks `a` as stopped by its supervisor: the runtime's stop leaves it to
 * it, so that a tree stops in its own order. */
void actio__actor_set_owned(actio_actor *a);

/* 1 once `a` is being stopped now (actio_actor_stop or actio_runtime_stop
 * with ACTIO_STOP_NOW): a supervisor then stops its children now too. */
int actio__actor_stopping_now(const actio_actor *a);

/* Sleeps ms milliseconds on a's own worker, unless `a` is stopped now
 * meanwhile: 0 after the pause, ACTIO_ECANCELED if cut short. */
int actio__actor_pause(actio_actor *a, int64_t ms);

/* 1 once actio_runtime_stop began: spawns are refused from then on. */
int actio__runtime_closing(actio_runtime *rt);

/*
 * A supervised child's address: an actio_actor handle that is no instance
 * but stands for one, which every call reaches through it (a send costs one
 * acquire load more). Its supervisor moves it from instance to instance:
 * while a restart runs (moving 1), a send its instance refused waits, up to
 * its own timeout, for the next one; once settled (moving 0) on a stopped
 * instance, sends fail with ACTIO_ECLOSED.
 *
 * create makes one standing for `first` (an instance, or an address whose
 * instance it takes), named `name`, owned by the runtime like any actor.
 * Returns 0 or ACTIO_ENOMEM. move sets its instance (to != NULL) and its
 * moving flag, and wakes the senders waiting for either. Any thread.
 */
int actio__address_create(actio_actor *first, const char *name, actio_actor **out);
void actio__address_move(actio_actor *addr, actio_actor *to, int moving);
/* 1 if a is an address, 0 if an instance. */
int actio__is_address(const actio_actor *a);

/* `old`, an instance addr reached before, is stopped and replaced (addr
 * reaches another now), its failure hook cleared: it leaves the
 * runtime's list, and it is freed once no call through addr that may have
 * reached it is in progress (actio__pin) and no reference is left. While
 * the runtime stops, it is left to actio_runtime_destroy. The supervisor's
 * worker. */
void actio__address_retire(actio_actor *addr, actio_actor *old);

/* addr's child is stopped for good and gone from its supervisor (settled:
 * cur is its last instance, stopped, and nothing finds addr any more): the
 * address and that instance leave the runtime's list, and both are freed
 * once no reference to addr (a delayed send's, a fan-out's) is left and no
 * call through it is in progress. While the runtime stops, they are left
 * to actio_runtime_destroy. The supervisor's worker. */
void actio__address_release(actio_actor *addr);

/* supervisor.c: work run on a supervisor's worker, once it has handled the
 * failures noted (so after the restarts they called for): run(job, 0), or
 * run(job, ACTIO_ECLOSED) as the supervisor stops. The job is the
 * caller's; it is run exactly once. */
typedef struct actio__sup_job {
  struct actio__sup_job *next;
  void (*run)(struct actio__sup_job *job, int rc);
} actio__sup_job;

/* Queues job on supervisor `sup` (an instance) and wakes its worker.
 * Returns 0, or ACTIO_ECLOSED (its worker left: job is not run). Any
 * thread; it never waits. */
int actio__sup_defer(actio_actor *sup, actio__sup_job *job);

/* Queues job on the supervisor of instance `a`, one of its children: it
 * runs after the failures noted are handled, so after the restart that a
 * failure of `a` calls for (and `a`'s address reaches the new instance by
 * then). Returns 0, ACTIO_EINVAL (`a` has no supervisor: job is not run)
 * or ACTIO_ECLOSED (as actio__sup_defer). Any thread; it never waits. */
int actio__sup_defer_child(actio_actor *a, actio__sup_job *job);

/* Supervisor `sup` (an instance, or an address reaching one), referenced
 * into *inst. Returns 0 or ACTIO_EINVAL (not a supervisor). Any thread. */
int actio__sup_ref(actio_actor *sup, actio_actor **inst);
/* The address of child `name` of supervisor instance `inst`, referenced
 * into *addr. Returns 0 or ACTIO_ENONAME (no such child running). Any
 * thread. */
int actio__sup_child_ref(actio_actor *inst, const char *name, actio_actor **addr);
/* The supervisor's name. */
const char *actio__sup_name(const actio_actor *inst);

/* A call in progress through `a` (an address, or an instance): no
 * instance it reaches is freed before actio__actor_unpin(a). pin returns
 * the instance `a` stands for now. Any thread; nests. */
actio_actor *actio__actor_pin(const actio_actor *a);
void actio__actor_unpin(const actio_actor *a);

/* registry.c: `a` stopped (an address: settled for good): its names are
 * released and refused from now on. The runtime's names freed with it.
 * Any thread. */
void actio__names_release(actio_actor *a);
void actio__names_free(actio_runtime *rt);

/* registry.c: the instance `a` stopped: its monitors complete (resolved,
 * or failed with its failure), and later ones report at once. */
void actio__watchers_fire(actio_actor *a);
/* How many monitors are on a's list now (for tests). Any thread. */
size_t actio__watchers_count(actio_actor *a);

/* References that keep an actor allocated (a transaction holding its
 * database actor's state); the last unref of a retired instance frees it.
 * Any thread. */
void actio__actor_ref(actio_actor *a);
void actio__actor_unref(actio_actor *a);
/* Drops k references at once (a NULL actor or k 0: nothing). */
void actio__actor_unref_n(actio_actor *a, uint32_t k);

#endif

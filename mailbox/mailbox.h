/* mailbox.h: a bounded lock-free multi-producer multi-consumer queue of
 * two-word messages, with sleeping consumers and optional blocking producers. */
#ifndef ACTIO_MAILBOX_H
#define ACTIO_MAILBOX_H

#include <stddef.h>
#include <stdint.h>

/*
 * Design: Dmitry Vyukov's bounded MPMC array queue on Concurrency Kit's ck_pr
 * primitives. Each cell carries a sequence number; a producer reserves a
 * position with one CAS and publishes by storing the cell's sequence. No
 * producer ever waits for another producer, so a preempted sender cannot
 * stall the rest (the trap of ck_ring's MP enqueue with more senders than
 * cores). A preempted sender can only delay consumers at its own cell, and
 * they sleep rather than spin while it is descheduled.
 *
 * Every call may come from any thread unless noted.
 */

typedef struct actio__mbox actio__mbox;

/* A message: two words, owned by whoever holds the message. */
typedef struct actio__mbox_msg {
  void *a;
  void *b;
} actio__mbox_msg;

/* Called by a sender after each accepted push, for consumers that sleep
 * elsewhere (in poll() on sockets) and must be woken by other means. */
typedef void (*actio__mbox_wake_fn)(void *arg);

/* Creates a mailbox holding at least `capacity` messages (rounded up to a
 * power of two, at least 2). Returns 0, ACTIO_EINVAL or ACTIO_ENOMEM. */
int actio__mbox_create(actio__mbox **out, size_t capacity);

/* Frees the mailbox. Messages still inside are not freed: drain first. Call
 * only once no other thread uses it. NULL is accepted. */
void actio__mbox_destroy(actio__mbox *mb);

/* Sets the wake hook (NULL to clear). Call before any producer runs. */
void actio__mbox_set_wake(actio__mbox *mb, actio__mbox_wake_fn fn, void *arg);

/* Sets how many times an empty-handed consumer polls before it sleeps
 * (default 256). Call before any consumer runs. */
void actio__mbox_set_spin(actio__mbox *mb, unsigned spins);

/*
 * Pushes `msg`. With timeout_ms 0 a full mailbox fails at once with
 * ACTIO_EFULL; with timeout_ms > 0 the sender sleeps up to that long for
 * room, then fails with ACTIO_ETIMEDOUT; with timeout_ms < 0 it waits as long
 * as it takes. A sleeping sender is woken once a quarter of the mailbox is
 * free (so that it pushes a batch rather than one message per wake-up), and
 * takes any room there is when its time runs out. A closed mailbox fails
 * with ACTIO_ECLOSED, also for a sender that was waiting. On failure the
 * message is still the caller's.
 */
int actio__mbox_push(actio__mbox *mb, const actio__mbox_msg *msg,
                     int64_t timeout_ms);

/*
 * Pops the oldest message into *out. Waits as push does: timeout_ms 0 fails
 * at once with ACTIO_EAGAIN when empty, > 0 sleeps up to that long then
 * ACTIO_ETIMEDOUT, < 0 waits forever. A consumer polls briefly before it
 * sleeps, unless a few others poll already (half the cores' worth).
 * Returns ACTIO_ECLOSED only once the mailbox is closed and every
 * message accepted before the close has been popped.
 */
int actio__mbox_pop(actio__mbox *mb, actio__mbox_msg *out, int64_t timeout_ms);

/* Pops up to max of the oldest messages into out[] (in order) and sets *n:
 * the run already published at the head, claimed at once, or else one,
 * waiting as actio__mbox_pop does. Returns 0 (*n >= 1) or what
 * actio__mbox_pop returns; ACTIO_EINVAL for max 0. For a consumer that
 * handles what it takes itself: messages it holds are not another's. */
int actio__mbox_pop_many(actio__mbox *mb, actio__mbox_msg *out, size_t max,
                         size_t *n, int64_t timeout_ms);

/* Closes the mailbox: later pushes fail with ACTIO_ECLOSED; messages already
 * accepted stay poppable. Wakes every sleeping producer and consumer.
 * Idempotent. */
void actio__mbox_close(actio__mbox *mb);

/* 1 once actio__mbox_close has begun (pushes from then on may still be
 * accepted until it has ended). */
int actio__mbox_is_closed(const actio__mbox *mb);

/* 1 when a pop would not find the mailbox empty now: the oldest message is
 * published, or the mailbox is closed. For a consumer that goes idle and
 * looks again (after a full fence) for a send it may have missed. */
int actio__mbox_ready(const actio__mbox *mb);

/* Messages inside now (a snapshot: exact only when nobody is pushing or
 * popping), and the capacity. */
size_t actio__mbox_depth(const actio__mbox *mb);
size_t actio__mbox_capacity(const actio__mbox *mb);

#endif

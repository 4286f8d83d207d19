/* db_worker.c: a database worker: its loop (one poll over its bell and
 * its connections), its timers, the requests it takes from the mailbox and
 * its inbox, and where the end of every unit is dispatched. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "actors/core/actor_internal.h"
#include "actors/db/db_internal.h"
#include "base/clock.h"

/* ---- the worker's wake-up ---- */

static void efd_write(int efd) {
  uint64_t one = 1;
  ssize_t n = write(efd, &one, sizeof one);
  (void)n; /* a full counter still wakes the poll */
}

/* The bell's wake function: under the bell's lock, so never once the
 * worker closed it (and its eventfd with it). */
static void bell_wake(void *worker) { efd_write(((db_worker *)worker)->efd); }

/* The request an inbox link is embedded in. */
static db_req *req_of(actio__bell_link *l) {
  return (db_req *)(void *)((char *)l - offsetof(db_req, link));
}

/* ---- results ---- */

/* Every unit's end comes here from io/pg: what all have in common, then
 * what each kind of request does. */
void actio__db_on_unit(void *ctx, void *unit, int rc, actio__pg_result *res,
                       const actio__pg_error *err, const char *msg) {
  db_worker *w = ctx;
  db_req *r = unit;
  conn *c = r->c;
  if (rc == ACTIO__PG_COPY_IN || rc == ACTIO__PG_COPY_OUT) {
    actio__db_copy_started(w, r, rc == ACTIO__PG_COPY_OUT);
    return; /* the unit goes on */
  }
  actio__db_q_unlink(&w->sent, NULL, r);
  if (c != NULL && c->cancel_for == r)
    c->cancel_for = NULL;
  /* Relaxed: a statistic; only this worker writes its slot. */
  atomic_store_explicit(&w->pub->queries, ++w->queries, memory_order_relaxed);
  if (rc == ACTIO_ECONN && w->stopping)
    rc = ACTIO_ECANCELED, msg = "database actor stopped";
  /* A prepared statement this session does not have: the Parse sent with
   * r failed (cancelled, say; not for the name being taken: then it is
   * there), or a DISCARD ALL of the caller's own dropped it. Prepared again
   * at its next use here. */
  if (rc != 0 && c != NULL && (r->kind == K_QUERY || r->kind == K_TQUERY) &&
      r->more != NULL && r->more->stmt != NULL &&
      ((r->more->parse && !r->more->parsed &&
        !(err != NULL && actio__pg_error_is(err, "42P05"))) ||
       (rc == ACTIO_ESQL && err != NULL && actio__pg_error_is(err, "26000"))))
    r->more->stmt->on[c->slot] = 0;
  /* Cancelled by a request meant for the unit ahead of it, over before
   * the request landed: a pooled one is sent again (with nothing new sent
   * on c until that request is over, no request lands on it twice), a few
   * times at most; one bound to c cannot be (its transaction failed, or
   * the next of the session's ran already), so its message says why. One
   * request may cancel two statements: PostgreSQL (before 17) signals the
   * backend and then its process group, and a backend that ended the first
   * statement in between takes the second signal in the next one. So a
   * mark stays while its unit is in flight, and a 57014 of its own (a
   * statement_timeout) is taken for the request's: sent again, bounded. */
  if (rc == ACTIO_ESQL && r->stray && c != NULL &&
      !atomic_load_explicit(&r->cancel, memory_order_acquire) && err != NULL &&
      actio__pg_error_is(err, "57014")) {
    r->stray = 0;
    if ((r->kind == K_QUERY || r->kind == K_BATCH || r->kind == K_PREPARE) &&
        r->resent < DB_RESENDS) {
      if (r->kind == K_PREPARE && !((db_prepare_head *)actio__db_req_ext(r))->parsed)
        ((db_prepare_head *)actio__db_req_ext(r))->stmt->on[c->slot] = 0; /* not there */
      if (r->kind == K_BATCH)
        ((db_batch_head *)actio__db_req_ext(r))->failed = -1;
      r->resent++;
      r->queued_ns = w->now_ns; /* its wait for a connection starts again */
      r->c = NULL;
      r->prev = NULL;
      actio__db_pend_push_front(w, r);
      return;
    }
    msg = "57014: cancelled by the cancel request of a query ahead of it on its connection "
          "(cancelled by its caller), which was over before the request landed";
  }
  if (c != NULL && r->kind != K_QUERY && r->kind != K_BATCH && r->kind != K_PREPARE &&
      c->state != C_EMPTY)
    c->simple = 0;
  /* Its slot is free from now: a callback below may start the next query
   * here (actio__request_self). The next count of the room corrects what
   * this guesses, and pending stays bounded by the slots either way. */
  if (c != NULL && (r->kind == K_QUERY || r->kind == K_BATCH || r->kind == K_PREPARE) &&
      c->state == C_READY)
    w->conn_room++;
  const char *tag = rc == 0 && r->kind == K_QUERY && c != NULL
                        ? actio__pg_result_command_tag(res) : "";
  if ((tag[0] == 'B' && strcmp(tag, "BEGIN") == 0) ||
      (tag[0] == 'S' && tag[1] == 'T' && strcmp(tag, "START TRANSACTION") == 0)) {
    /* A transaction block on a shared connection would swallow the
     * queries pipelined behind it: close the connection (the server rolls
     * back; those queries fail with ACTIO_ECONN). */
    actio__pg_result_free(res);
    c->doomed = 1;
    actio__db_req_fail(r, ACTIO_EINVAL,
                       "a transaction on a pooled connection: use actio_db_begin");
    return;
  }
  /* Nothing in flight and nothing pinned: idle from now on (unpinning a
   * transaction or a COPY says so too), as of the wait that brought the
   * answer: one clock read a wait rather than one a query. */
  if (c != NULL && c->txn == NULL && c->copy == NULL && c->state == C_READY &&
      actio__pg_conn_inflight(c->pc) == 0)
    c->idle_ns = w->now_ns;
  switch (r->kind) {
  case K_BATCH:
    actio__db_batch_ended(w, r, rc, res, err, msg);
    return;
  case K_STREAM:
    actio__db_stream_ended(w, r, rc, res, err, msg);
    return;
  case K_BEGIN:
  case K_END:
  case K_TDROP:
    actio__db_txn_ended(w, r, rc, res, err, msg);
    return;
  case K_COPY:
    actio__db_copy_ended(w, r, rc, res, err, msg);
    return;
  case K_LISTEN:
  case K_UNLISTEN:
  case K_RELISTEN:
    actio__db_listen_ended(w, r, rc, res, err, msg);
    return;
  case K_INIT:
    actio__db_init_ended(w, r, rc, res, err, msg);
    return;
  case K_PREPARE:
    actio__db_prepare_ended(w, r, rc, res, err, msg);
    return;
  case K_SCRIPT:
    if (c != NULL && c->state != C_EMPTY)
      actio__db_conn_release(c);
    break;
  default:
    break;
  }
  actio__db_req_end(r, rc, res, err, msg);
}

/* ---- the loop ---- */

static void service(db_worker *w, conn *c, short revents) {
  if (c->state == C_CONNECTING) {
    char err[256];
    int rc = actio__pg_conn_connect(c->pc, err, sizeof err);
    if (rc == ACTIO_EPENDING)
      return;
    if (rc != 0) {
      if (c == &w->lc) {
        actio__db_listener_failed(w, rc, err);
        return;
      }
      actio__db_connect_failed(w, c, rc, err);
      return;
    }
    c->state = C_READY;
    c->since_ns = c->idle_ns = actio__now_ns();
    if (c == &w->lc)
      w->lfails = 0;
    else /* up once its on_connect_sql and on_connect said so */
      actio__db_conn_init(w, c, 1);
    return;
  }
  if (c->state != C_READY)
    return;
  if ((revents & POLLOUT) && actio__pg_conn_flush(c->pc) != 0) {
    actio__db_conn_broken(w, c);
    return;
  }
  if (c->copy != NULL && !c->copy->out)
    actio__db_copy_pump_in(w, c);
  if (c->state != C_READY)
    return;
  if (actio__pg_conn_input(c->pc, actio__db_on_unit, w) != 0) {
    actio__db_conn_broken(w, c);
    return;
  }
  if (c->copy != NULL && !c->copy->out)
    actio__db_copy_pump_in(w, c); /* the server may have just said it is ready */
  if (c->state != C_READY)
    return;
  if (c->stream != NULL && actio__pg_conn_in_rows(c->pc)) {
    actio__db_stream_pump(w, c);
    if (c->state == C_READY && !actio__pg_conn_in_rows(c->pc) &&
        actio__pg_conn_input(c->pc, actio__db_on_unit, w) != 0) {
      actio__db_conn_broken(w, c);
      return;
    }
  }
  if (c->state != C_READY)
    return;
  if (c->copy != NULL && c->copy->out && actio__pg_conn_in_copy(c->pc)) {
    actio__db_copy_pump_out(w, c);
    if (c->state == C_READY && !actio__pg_conn_in_copy(c->pc) &&
        actio__pg_conn_input(c->pc, actio__db_on_unit, w) != 0) {
      actio__db_conn_broken(w, c);
      return;
    }
  }
  if (c == &w->lc)
    actio__pg_conn_notifications(c->pc, actio__db_listen_deliver, w);
  if (c->doomed) {
    actio__db_conn_doom_close(w, c);
    return;
  }
  if (c->init == INIT_WANTED) /* a session's reset is over */
    actio__db_conn_init(w, c, 0);
  if (c->state == C_READY)
    actio__db_conn_pump(w, c);
}

static void on_cancel(void *arg) {
  db_req *r = arg;
  atomic_store_explicit(&r->cancel, 1, memory_order_release);
  actio__bell_ring(r->w->bell);
}

/* The requests from the inbox: bound to a connection of this worker. */
static void take_inbox(db_worker *w) {
  for (actio__bell_link *l = actio__bell_take(w->bell), *next; l != NULL; l = next) {
    next = l->next;
    db_req *r = req_of(l);
    r->prev = r->next = NULL; /* out of the inbox: its links are the lists' now */
    /* Bound requests only: those that name a connection of this worker. */
    ACTIO__ASSERT(r->kind == K_TQUERY || r->kind == K_END || r->kind == K_TDROP ||
                  (r->kind == K_COPY && r->txn != NULL) || r->kind == K_CWRITE ||
                  r->kind == K_CEND || r->kind == K_CDROP || r->kind == K_LISTEN ||
                  r->kind == K_UNLISTEN);
    r->w = w;
    w->used = 1;
    if (r->kind == K_END && actio_future_is_done(r->reply) && r->commit) {
      r->commit = 0; /* a commit cancelled before it left: roll back */
      r->sql = "ROLLBACK";
    }
    /* Never withdrawn: COPY data (the stream stays whole) and the end of a
     * transaction (its connection must not stay inside it). */
    int keep = r->kind == K_CWRITE || r->kind == K_CEND || r->kind == K_CDROP ||
               r->kind == K_END || r->kind == K_TDROP;
    if (!keep && actio_future_is_done(r->reply)) {
      actio__db_req_free(r); /* cancelled before it got here */
      continue;
    }
    if (!keep && actio_future_on_cancel(r->reply, on_cancel, r) == ACTIO_ECANCELED) {
      actio__db_req_fail(r, ACTIO_ECANCELED, "cancelled");
      continue;
    }
    if (r->kind == K_LISTEN || r->kind == K_UNLISTEN) {
      actio__db_q_push(&w->lq_head, &w->lq_tail, r); /* we hold the listener */
      continue;
    }
    if (r->kind == K_CWRITE || r->kind == K_CEND || r->kind == K_CDROP) {
      actio_db_copy *cp = r->copy;
      if (cp->c == NULL) {
        actio__db_req_end(r, r->kind == K_CDROP ? 0 : ACTIO_ECONN, NULL, NULL,
                          "COPY: its connection was lost");
        continue;
      }
      actio__db_q_push(&cp->q_head, &cp->q_tail, r);
      /* Not copy_pump_in alone: once the end is sent, the server's answer
       * may already sit in libpq's buffer, and the socket stay quiet. */
      service(w, cp->c, POLLIN);
      continue;
    }
    conn *c = r->txn->c;
    if (c == NULL) {
      actio__db_req_fail(r, ACTIO_ECONN, "the transaction's connection was lost");
      continue;
    }
    actio__db_q_push(&c->q_head, &c->q_tail, r);
    actio__db_conn_pump(w, c);
  }
}

/* Cancelled requests: those not sent are dropped, those running are
 * cancelled on the server (one at a time per connection). */
static void reap_cancelled(db_worker *w) {
  for (int q = 0; q < 2; q++)
    for (db_req *r = q == 0 ? w->pend_head : w->lq_head, *next; r != NULL; r = next) {
      next = r->next;
      if (atomic_load_explicit(&r->cancel, memory_order_acquire)) {
        if (q == 0)
          actio__db_pend_unlink(w, r);
        else
          actio__db_q_unlink(&w->lq_head, &w->lq_tail, r);
        actio__db_req_fail(r, ACTIO_ECANCELED, "cancelled");
      }
    }
  for (unsigned i = 0; i <= w->nconns; i++) {
    conn *c = i < w->nconns ? &w->conns[i] : &w->lc;
    if (c->state != C_READY)
      continue;
    for (db_req *r = c->q_head, *next; r != NULL; r = next) {
      next = r->next; /* ends of transactions never have the flag */
      if (atomic_load_explicit(&r->cancel, memory_order_acquire)) {
        actio__db_q_unlink(&c->q_head, &c->q_tail, r);
        actio__db_req_fail(r, ACTIO_ECANCELED, "cancelled");
      }
    }
    actio__db_cancel_head(w, c);
  }
}

/* The longest poll with no timer due (actio__db_set_idle_poll_ms): a safety
 * net, as every event that needs the worker wakes it. Relaxed: a setting
 * read at each wait, nothing published with it. */
static _Atomic int idle_poll_ms = 1000;

void actio__db_set_idle_poll_ms(int ms) {
  atomic_store_explicit(&idle_poll_ms, ms, memory_order_relaxed);
}

unsigned actio__db_rooms(actio_actor *db) {
  db_state *st = actio__db_state(db);
  unsigned n = 0;
  for (unsigned i = 0; st != NULL && i < st->o.workers; i++)
    n += atomic_load_explicit(&st->pub[i].room, memory_order_relaxed) != 0;
  return n;
}

/* Timers: acquire timeouts, connect timeouts, pings, lifetimes, and the
 * end of cancel jobs. Returns the milliseconds until the next one (-1:
 * none, with actio__db_set_idle_poll_ms(-1)). */
static int timers(db_worker *w) {
  db_state *st = w->st;
  int idle_ms = atomic_load_explicit(&idle_poll_ms, memory_order_relaxed);
  int64_t now = w->now_ns = actio__now_ns();
  int64_t next = idle_ms < 0 ? INT64_MAX : now + idle_ms * ACTIO__NS_PER_MS;
  int64_t acquire = (int64_t)st->o.acquire_timeout_ms * ACTIO__NS_PER_MS;
  for (db_req *r = w->pend_head, *nx; r != NULL; r = nx) {
    nx = r->next;
    if (r->queued_ns + acquire <= now) {
      actio__db_pend_unlink(w, r);
      char m[96];
      snprintf(m, sizeof m, "no database connection free within %ld ms (acquire_timeout_ms)",
               st->o.acquire_timeout_ms);
      actio__db_req_fail(r, ACTIO_ETIMEDOUT, m);
    } else if (r->queued_ns + acquire < next) {
      next = r->queued_ns + acquire;
    }
  }
  int64_t connect = (int64_t)st->o.connect_timeout_ms * ACTIO__NS_PER_MS;
  for (unsigned i = 0; i <= w->nconns; i++) {
    conn *c = i < w->nconns ? &w->conns[i] : &w->lc;
    if (c->state == C_CONNECTING) {
      if (c->since_ns + connect <= now) {
        if (c == &w->lc)
          actio__db_listener_failed(w, ACTIO_ECONN, "connect timed out");
        else
          actio__db_connect_failed(w, c, ACTIO_ECONN, "connect timed out");
      } else if (c->since_ns + connect < next) {
        next = c->since_ns + connect;
      }
      continue;
    }
    if (c->state != C_READY)
      continue;
    if (c->cancel != NULL && atomic_load_explicit(&c->cancel->done, memory_order_acquire)) {
      if (c->cancel_for != NULL) { /* delivered, and its target still runs */
        int64_t again = actio__db_cancel_again(w, c, now);
        if (again < next)
          next = again;
      } else {
        actio__db_job_unref(c->cancel); /* delivered, and its target is over */
        c->cancel = NULL;
        actio__db_conn_pump(w, c); /* what its transaction sent meanwhile */
        if (c->state != C_READY)
          continue;
      }
    }
    if (c == &w->lc || c->txn != NULL || c->copy != NULL || c->cancel != NULL ||
        actio__pg_conn_inflight(c->pc) > 0)
      continue;
    if (st->o.max_lifetime_ms > 0) {
      int64_t end = c->since_ns + (int64_t)st->o.max_lifetime_ms * ACTIO__NS_PER_MS;
      if (end <= now) {
        actio__db_conn_close(w, c, 0, "connection past its lifetime");
        continue;
      }
      if (end < next)
        next = end;
    }
    if (st->o.health_check_ms > 0) {
      int64_t due = c->idle_ns + (int64_t)st->o.health_check_ms * ACTIO__NS_PER_MS;
      if (due <= now) {
        actio__pg_query ping = {.sql = "SELECT 1"};
        c->idle_ns = now;
        if (actio__pg_conn_send(c->pc, &ping, NULL) != 0)
          actio__db_conn_broken(w, c);
        continue;
      }
      if (due < next)
        next = due;
    }
  }
  /* Down past the retry budget, with work or a minimum to keep: the pool
   * cannot do its job; its supervisor decides what follows. */
  if (w->pend_head == NULL && actio__db_count_ready(w) >= w->min)
    w->down_since_ns = 0; /* nothing asks for a connection: the clock stops */
  if (st->o.retry_budget_ms > 0 && w->down_since_ns != 0 &&
      (w->pend_head != NULL || actio__db_count_ready(w) < w->min)) {
    int64_t end = w->down_since_ns + (int64_t)st->o.retry_budget_ms * ACTIO__NS_PER_MS;
    if (end <= now) {
      char why[128];
      snprintf(why, sizeof why, "no PostgreSQL connection for %ld ms",
               st->o.retry_budget_ms);
      actio_actor_fail(w->self, ACTIO_ECONN, why);
    } else if (end < next) {
      next = end;
    }
  }
  if (w->retry_ns > now && w->retry_ns < next &&
      (w->pend_head != NULL || actio__db_count_ready(w) < w->min))
    next = w->retry_ns;
  if (w->lretry_ns > now && w->lretry_ns < next && w->lc.state == C_EMPTY &&
      (w->subs != NULL || w->lq_head != NULL))
    next = w->lretry_ns;
  if (next == INT64_MAX)
    return -1;
  return (int)actio__ns_to_ms_ceil(next - now); /* at most idle_poll_ms */
}

static void db_wait(actio_actor *self, void *worker) {
  db_worker *w = worker;
  /* What it sent itself before this call, the loop took already; only
   * what callbacks send from here on may wait in the mailbox. */
  w->self_woken = 0;
  int timeout = timers(w); /* first: it frees connections from cancels */
  actio__db_stmt_reap(w);
  w->queued = 0;
  actio__db_dispatch(w);
  actio__db_listener_pump(w);
  nfds_t n = 0;
  conn *map[w->nconns + 1];
  w->pfds[n++] = (struct pollfd){.fd = w->efd, .events = POLLIN};
  for (unsigned i = 0; i <= w->nconns; i++) {
    conn *c = i < w->nconns ? &w->conns[i] : &w->lc;
    if (c->state == C_EMPTY)
      continue;
    short ev = actio__pg_conn_events(c->pc);
    if ((c->copy != NULL && c->copy->ready != NULL) || actio__db_stream_waiting(c))
      ev &= (short)~POLLIN; /* the consumer asked to wait */
    map[n - 1] = c;
    w->pfds[n++] = (struct pollfd){.fd = actio__pg_conn_fd(c->pc), .events = ev};
  }
  /* Its mailbox has work, or a callback above (past the dispatch) gave it
   * a request: only look at the sockets. */
  if (w->self_woken || w->queued) {
    timeout = 0;
  } else {
    /* It may sleep: others see its room as the sends above left it, not
     * as it was before the pops that filled it (they would leave the
     * mailbox to it while it sleeps). Entered full, it may have room now
     * (a timer failed its pending requests, a cancel freed a
     * connection): then it must be advertised, or not sleep. */
    actio__db_publish_stats(w);
    if (timeout != 0 && !actio__wait_may_sleep(self))
      timeout = 0;
  }
  if (poll(w->pfds, n, timeout) < 0)
    n = 0; /* EINTR: the loop calls again; the sends above count */
  if (timeout != 0) /* it may have slept */
    w->now_ns = actio__now_ns();
  if (n > 0 && (w->pfds[0].revents & POLLIN)) {
    uint64_t v;
    ssize_t rd = read(w->efd, &v, sizeof v);
    (void)rd;
  }
  int rang = n > 0 && actio__bell_rang(w->bell);
  for (nfds_t i = 1; i < n; i++) {
    conn *c = map[i - 1];
    if (c->copy != NULL && c->copy->ready != NULL &&
        actio_future_is_done(c->copy->ready)) {
      actio__db_copy_resume(w, c);
      service(w, c, POLLIN); /* rows or the end may be buffered already */
    } else if (c->stream != NULL && c->state == C_READY && actio__db_stream_resume(w, c)) {
      service(w, c, POLLIN); /* the consumer is ready again, or gave up */
    }
    if (w->pfds[i].revents != 0)
      service(w, c, w->pfds[i].revents);
  }
  if (rang) {
    take_inbox(w);
  }
  reap_cancelled(w);
  actio__db_publish_stats(w);
}

static void db_wake(actio_actor *self, void *worker) {
  db_worker *w = worker;
  (void)self;
  /* A callback on this very worker sent it a message (a closed loop of
   * queries does so at every completion): no need for a system call, the
   * worker looks at its mailbox as soon as this wait returns. */
  if (pthread_equal(pthread_self(), w->thread)) {
    w->self_woken = 1;
    return;
  }
  /* Not a ring: nothing waits in the inbox, the mailbox has the message. */
  efd_write(w->efd);
}

/* Whether a request sent on c has a caller still waiting for it. One that
 * was cancelled, or passed its deadline, has none: its end on the server
 * may wait on a cancel request that cannot get through (a server
 * unreachable now), and a draining stop does not wait for that. */
static int awaited_on(db_worker *w, conn *c) {
  for (db_req *r = w->sent; r != NULL; r = r->next)
    if (r->c == c && r->reply != NULL && !actio_future_is_done(r->reply))
      return 1; /* (a COPY under way has let go of its future: c->copy) */
  return 0;
}

/* Work accepted and not done: a draining stop waits for it. Not an open
 * transaction or a COPY FROM waiting for its caller, who may never come,
 * nor what only a cancelled request left running. */
static int db_busy(actio_actor *self, void *worker) {
  db_worker *w = worker;
  (void)self;
  if (w->pend_head != NULL || w->lq_head != NULL)
    return 1;
  if (actio__bell_has_mail(w->bell))
    return 1;
  for (unsigned i = 0; i < w->nconns; i++) {
    conn *c = &w->conns[i];
    if (c->state != C_READY)
      continue;
    int waits_for_caller = c->copy != NULL && c->copy->started && !c->copy->out &&
                           c->copy->q_head == NULL && c->copy->end == NULL;
    if (waits_for_caller)
      continue;
    int inflight = actio__pg_conn_inflight(c->pc) > 0;
    if (c->q_head != NULL || (inflight && (c->stream != NULL || c->copy != NULL)) ||
        awaited_on(w, c))
      return 1;
  }
  return 0;
}

static int db_handle(actio_actor *self, void *worker, void *msg, actio_future *unused) {
  db_worker *w = worker;
  db_req *r = msg;
  (void)self;
  (void)unused;
  if (actio_future_is_done(r->reply)) {
    actio__db_req_free(r); /* cancelled or past its deadline while queued */
    return 0;
  }
  ACTIO__ASSERT(r->kind == K_QUERY || r->kind == K_SCRIPT || r->kind == K_BEGIN ||
                r->kind == K_BATCH || r->kind == K_STREAM || r->kind == K_PREPARE ||
                (r->kind == K_COPY && r->txn == NULL)); /* the mailbox's kinds */
  r->w = w;
  w->used = 1;
  if (actio_future_on_cancel(r->reply, on_cancel, r) == ACTIO_ECANCELED) {
    actio__db_req_fail(r, ACTIO_ECANCELED, "cancelled");
    return 0;
  }
  actio__db_pend_push(w, r);
  w->queued = 1; /* inside a wait: no poll before the next dispatch */
  return 0;
}

static int db_init(actio_actor *self, void **worker) {
  db_state *st = actio_actor_state(self);
  db_worker *w = calloc(1, sizeof *w);
  if (w == NULL)
    return ACTIO_ENOMEM;
  unsigned nw = st->o.workers, i = atomic_fetch_add_explicit(&st->next_worker, 1,
                                                             memory_order_relaxed);
  /* This worker's share of the pool: an even split, the first ones taking
   * the remainder. */
  w->index = i;
  w->nconns = st->o.max_connections / nw + (i < st->o.max_connections % nw);
  w->min = st->o.min_connections / nw + (i < st->o.min_connections % nw);
  if (w->nconns == 0)
    w->nconns = 1;
  /* Its connections' slots follow those of the workers before it. */
  unsigned base = i * (st->o.max_connections / nw) +
                  (i < st->o.max_connections % nw ? i : st->o.max_connections % nw);
  int rc = ACTIO_ENOMEM;
  w->conns = calloc(w->nconns, sizeof *w->conns);
  w->pfds = calloc(w->nconns + 2, sizeof *w->pfds);
  if (w->conns == NULL || w->pfds == NULL)
    goto fail_alloc;
  for (unsigned k = 0; k < w->nconns; k++)
    w->conns[k].slot = base + k;
  w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (w->efd < 0) {
    rc = -errno;
    goto fail_alloc;
  }
  if ((rc = actio__bell_create(&w->bell, bell_wake, w)) != 0)
    goto fail_efd;
  w->st = st;
  w->self = self;
  w->pub = &st->pub[i];
  w->now_ns = actio__now_ns();
  w->thread = pthread_self(); /* worker_init runs on the worker */
  if (i == 0) { /* the listener: before spawn returns, so before any call */
    st->listener = w->bell;
    actio__bell_ref(w->bell);
  }
  if (!st->o.lazy)
    actio__db_dispatch(w); /* starts connecting */
  *worker = w;
  return 0;
fail_efd:
  close(w->efd);
fail_alloc:
  free(w->conns);
  free(w->pfds);
  free(w);
  return rc;
}

/* close's visitor: gathers what was left in the inbox, in order. */
static void collect(actio__bell_link *l, void *arg) {
  db_req ***tail = arg;
  db_req *r = req_of(l);
  r->next = NULL;
  **tail = r;
  *tail = &r->next;
}

static void db_stop(actio_actor *self, void *worker) {
  db_worker *w = worker;
  (void)self;
  w->stopping = 1;
  actio__db_stmt_reaper_gone(w);
  if (w->st->o.workers > 1) { /* no more room here for anyone to count on */
    atomic_store_explicit(&w->pub->room, 0, memory_order_relaxed);
    w->pub_room = 0;
  }
  /* Later pushes are refused; what got in before the close is ended
   * outside the bell's lock (a future's callbacks may push again). */
  db_req *left = NULL, **tail = &left;
  actio__bell_close(w->bell, collect, &tail);
  while (left != NULL) {
    db_req *r = left;
    left = r->next;
    actio__db_req_fail(r, ACTIO_ECANCELED, "database actor stopped");
  }
  while (w->pend_head != NULL) {
    db_req *r = w->pend_head;
    actio__db_pend_unlink(w, r);
    actio__db_req_fail(r, ACTIO_ECANCELED, "database actor stopped");
  }
  ACTIO__ASSERT(w->npend == 0);
  while (w->lq_head != NULL) {
    db_req *r = w->lq_head;
    actio__db_q_unlink(&w->lq_head, &w->lq_tail, r);
    actio__db_req_fail(r, ACTIO_ECANCELED, "database actor stopped");
  }
  for (unsigned i = 0; i <= w->nconns; i++) {
    conn *c = i < w->nconns ? &w->conns[i] : &w->lc;
    /* What a connection runs is cancelled on the server as well: closing
     * it alone leaves the backend running it to its end. */
    db_req *h = c->state == C_READY ? actio__pg_conn_head(c->pc) : NULL;
    if (h != NULL && c->cancel == NULL && !h->cancel_sent)
      actio__db_cancel_on_server(w, c, h);
    actio__db_conn_close(w, c, ACTIO_ECANCELED, "database actor stopped");
  }
  for (sub *s = w->subs, *next; s != NULL; s = next) {
    next = s->next;
    free(s->channel);
    free(s);
  }
  actio__db_publish_stats(w);
  actio__bell_unref(w->bell);
  close(w->efd); /* after the close: no ring writes to it any more */
  free(w->conns);
  free(w->pfds);
  free(w);
}

/* No room here while another worker has some: take no more from the
 * mailbox, so that one does. With no room anywhere every worker takes
 * them, and they wait (and time out) in its queue. */
static int db_full(actio_actor *self, void *worker) {
  (void)self;
  db_worker *w = worker;
  if (w->st->o.workers < 2)
    return 0;
  /* This runs at every pop: its own room first (its own fields), and
   * only without any the others' published hints (a load each, of lines
   * they write). */
  if (actio__db_room(w) > 0)
    return 0;
  for (unsigned i = 0; i < w->st->o.workers; i++)
    if (i != w->index && atomic_load_explicit(&w->st->pub[i].room, memory_order_relaxed))
      return 1;
  return 0;
}

const actio_behavior actio__db_behavior = {
    .worker_init = db_init,
    .handle = db_handle,
    .worker_stop = db_stop,
    .drop = actio__db_drop,
    .wait = db_wait,
    .wake = db_wake,
    .busy = db_busy,
    .full = db_full,
};


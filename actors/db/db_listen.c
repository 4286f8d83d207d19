/* db_listen.c: LISTEN/NOTIFY: worker 0 holds a connection of its own,
 * outside the pool, for every subscription; it is restored after a loss,
 * and each subscriber then hears that notifications may have been
 * missed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/core/actor_internal.h"
#include "actors/db/db_internal.h"
#include "base/clock.h"

/* ---- the worker's side ---- */

/* LISTEN is in effect: the subscription counts only if its caller still
 * waits (a cancelled one may have freed its argument). */
static void listen_done(db_worker *w, db_req *r, actio__pg_result *res) {
  actio_future_clear_cancel(r->reply);
  if (actio_future_resolve(r->reply, res, actio__db_result_free) == 0) {
    sub *s = r->arg;
    s->next = w->subs;
    w->subs = s;
    r->arg = NULL;
  } else {
    actio__pg_result_free(res);
  }
  actio__db_req_free(r);
}

/* A notification to every subscriber of its channel. */
void actio__db_listen_deliver(void *arg, const actio__pg_notification *n) {
  db_worker *w = arg;
  for (sub *s = w->subs; s != NULL; s = s->next)
    if (strcmp(s->channel, n->channel) == 0) {
      actio_db_notification note = {n->channel, n->payload, n->pid, 0};
      s->fn(s->arg, &note);
    }
}

/* The listener could not connect: it backs off; with nothing to restore,
 * the requests waiting for it fail now. */
void actio__db_listener_failed(db_worker *w, int rc, const char *err) {
  char msg[512];
  snprintf(msg, sizeof msg, "connecting to PostgreSQL: %s", err);
  int lost = w->lost;
  actio__db_conn_close(w, &w->lc, rc, msg);
  w->lost = lost;
  w->lretry_ns = actio__db_retry_at(w->st, ++w->lfails);
  if (w->subs != NULL)
    return;
  while (w->lq_head != NULL) {
    db_req *r = w->lq_head;
    actio__db_q_unlink(&w->lq_head, &w->lq_tail, r);
    actio__db_req_fail(r, rc, msg);
  }
}

/* Sends the listener its next LISTEN or UNLISTEN, or restores them. */
void actio__db_listener_pump(db_worker *w) {
  conn *c = &w->lc;
  int64_t now = actio__now_ns();
  if (c->state == C_EMPTY && (w->subs != NULL || w->lq_head != NULL) &&
      now >= w->lretry_ns) {
    char err[256];
    int rc = actio__pg_conn_start(&c->pc, w->st->o.dsn, 0, err, sizeof err);
    if (rc == 0) {
      c->state = C_CONNECTING;
      c->since_ns = now;
      return;
    }
    actio__db_listener_failed(w, rc, err);
    return;
  }
  /* Nothing new while a cancel request is on its way: it could land on it. */
  if (c->state != C_READY || c->cancel != NULL || actio__pg_conn_inflight(c->pc) > 0)
    return;
  if (w->lost && w->subs != NULL) { /* restore every channel at once */
    size_t len = 1;
    for (sub *s = w->subs; s != NULL; s = s->next)
      len += 2 * strlen(s->channel) + 12;
    db_req *r = calloc(1, sizeof *r + len);
    if (r == NULL)
      return;
    r->kind = K_RELISTEN;
    char *p = r->bytes;
    for (sub *s = w->subs; s != NULL; s = s->next) {
      char q[140];
      actio__db_quote_ident(q, sizeof q, s->channel);
      p += sprintf(p, "LISTEN %s;", q);
    }
    r->sql = r->bytes;
    r->nocache = 1;
    int rc = actio__pg_conn_send_simple(c->pc, r->sql, 0, r);
    if (rc != 0) {
      free(r);
      if (rc != ACTIO_ENOMEM) /* out of memory: again at the next pump */
        actio__db_conn_broken(w, c);
      return;
    }
    r->c = c;
    actio__db_sent_add(w, r);
    w->lost = 0;
    return;
  }
  while (w->lq_head != NULL) {
    db_req *r = w->lq_head;
    actio__db_q_unlink(&w->lq_head, &w->lq_tail, r);
    sub *same = NULL;
    for (sub *s = w->subs; s != NULL; s = s->next)
      if (strcmp(s->channel, r->channel) == 0)
        same = s;
    if (r->kind == K_UNLISTEN) {
      int others = 0;
      for (sub **pp = &w->subs; *pp != NULL;) {
        sub *s = *pp;
        if (strcmp(s->channel, r->channel) == 0 && s->fn == r->nfn && s->arg == r->arg &&
            r->nfn != NULL) {
          *pp = s->next;
          free(s->channel);
          free(s);
          r->nfn = NULL; /* one subscription removed */
          continue;
        }
        others += strcmp(s->channel, r->channel) == 0;
        pp = &s->next;
      }
      if (r->nfn != NULL) {
        actio__db_req_fail(r, ACTIO_EINVAL, "UNLISTEN: no such subscription");
        continue;
      }
      if (others > 0) {
        actio__db_req_end(r, 0, actio__pg_result_empty(), NULL, NULL);
        continue;
      }
    } else if (same != NULL) { /* the channel is listened to already */
      listen_done(w, r, actio__pg_result_empty());
      continue;
    }
    char q[140];
    actio__db_quote_ident(q, sizeof q, r->channel);
    char sql[160];
    snprintf(sql, sizeof sql, "%s %s", r->kind == K_LISTEN ? "LISTEN" : "UNLISTEN", q);
    r->sql = sql;
    r->nocache = 1;
    int rc = actio__pg_conn_send_simple(c->pc, sql, 0, r);
    if (rc == ACTIO_ENOMEM) { /* r alone fails; the connection is fine */
      actio__db_req_fail(r, rc, "LISTEN or UNLISTEN not sent: out of memory");
      continue;
    }
    if (rc != 0) {
      actio__db_q_push(&w->lq_head, &w->lq_tail, r);
      actio__db_conn_broken(w, c);
      return;
    }
    r->sql = NULL; /* sql was copied by libpq */
    r->c = c;
    actio__db_sent_add(w, r);
    return;
  }
}

void actio__db_listen_ended(db_worker *w, db_req *r, int rc, actio__pg_result *res,
                            const actio__pg_error *err, const char *msg) {
  if (r->kind == K_RELISTEN) { /* the listener is back: say what may have been missed */
    if (rc == 0)
      for (sub *s = w->subs; s != NULL; s = s->next) {
        actio_db_notification n = {s->channel, "", 0, 1};
        s->fn(s->arg, &n);
      }
    w->lost = rc != 0;
    if (rc == 0)
      actio__pg_result_free(res);
    actio__db_req_free(r);
    return;
  }
  if (r->kind == K_LISTEN && rc == 0) {
    listen_done(w, r, res);
    return;
  }
  actio__db_req_end(r, rc, res, err, msg);
}

/* ---- the API ---- */

void actio_db_notification_free(actio_db_notification *n) { free(n); }

/* Tells a copy of n to the actor `arg`; a full mailbox drops it. */
static void notify_actor(void *arg, const actio_db_notification *n) {
  size_t lc = strlen(n->channel) + 1, lp = strlen(n->payload) + 1;
  actio_db_notification *copy = malloc(sizeof *copy + lc + lp);
  if (copy == NULL)
    return;
  char *p = (char *)(copy + 1);
  copy->channel = memcpy(p, n->channel, lc);
  copy->payload = memcpy(p + lc, n->payload, lp);
  copy->pid = n->pid;
  copy->missed = n->missed;
  if (actio_tell(arg, copy, 0) != 0)
    free(copy);
}

static int listen_send(actio_actor *db, enum kind kind, const char *channel,
                       actio_db_notify_fn fn, void *arg, actio_future **out);

/* Under a pin on db: the state it reads stays. */
static int listen_req(actio_actor *db, enum kind kind, const char *channel,
                      actio_db_notify_fn fn, void *arg, actio_future **out) {
  if (db == NULL)
    return ACTIO_EINVAL;
  actio__actor_pin(db);
  int rc = listen_send(db, kind, channel, fn, arg, out);
  actio__actor_unpin(db);
  return rc;
}

static int listen_send(actio_actor *db, enum kind kind, const char *channel,
                       actio_db_notify_fn fn, void *arg, actio_future **out) {
  db_state *st = actio__db_state(db);
  if (st == NULL || out == NULL || channel == NULL || *channel == '\0' ||
      strlen(channel) > 63 || (fn == NULL && arg == NULL))
    return ACTIO_EINVAL;
  db_req *r = actio__db_req_new(kind, NULL, channel, strlen(channel));
  if (r == NULL)
    return ACTIO_ENOMEM;
  r->nfn = fn ? fn : notify_actor;
  r->arg = arg;
  if (kind == K_LISTEN) {
    sub *s = calloc(1, sizeof *s);
    if (s == NULL || (s->channel = strdup(channel)) == NULL) {
      free(s);
      free(r);
      return ACTIO_ENOMEM;
    }
    s->fn = r->nfn;
    s->arg = arg;
    r->arg = s;
  }
  /* Straight to the worker whose connection listens. */
  return actio__db_submit_bound(st, st->listener, r, 0, out);
}

int actio_db_listen(actio_actor *db, const char *channel, actio_db_notify_fn fn,
                    void *arg, actio_future **out) {
  return listen_req(db, K_LISTEN, channel, fn, arg, out);
}

int actio_db_unlisten(actio_actor *db, const char *channel, actio_db_notify_fn fn,
                      void *arg, actio_future **out) {
  return listen_req(db, K_UNLISTEN, channel, fn, arg, out);
}

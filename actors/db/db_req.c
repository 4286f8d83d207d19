/* db_req.c: a request's life: made with copies of its arguments, sent
 * through the mailbox or a worker's inbox (the one request path), ended by
 * completing its future; the server's error kept on a failed future. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/core/actor_internal.h"
#include "actors/core/deadline.h"
#include "actors/core/future_internal.h"
#include "actors/db/db_internal.h"
#include "base/clock.h"

/* ---- transactions and copies: reference counts ---- */

void actio__db_txn_unref(actio_db_txn *t) {
  if (t == NULL || !actio__db_unref(&t->refs))
    return;
  ACTIO__ASSERT(t->c == NULL); /* a pinned connection holds a reference */
  actio__bell_unref(t->bell);
  actio_actor *db = t->st->self;
  free(t);
  actio__actor_unref(db);
}

void actio__db_copy_unref(actio_db_copy *cp) {
  if (cp == NULL || !actio__db_unref(&cp->refs))
    return;
  ACTIO__ASSERT(cp->c == NULL && cp->q_head == NULL && cp->ready == NULL);
  actio__bell_unref(cp->bell);
  actio__db_txn_unref(cp->txn);
  actio_actor *db = cp->st->self;
  free(cp);
  actio__actor_unref(db);
}

void actio__db_stmt_unref(actio_db_stmt *s) {
  if (s == NULL || !actio__db_unref(&s->refs))
    return;
  for (int i = 0; i < s->ncols; i++)
    free(s->cnames[i]);
  free(s->cnames);
  free(s->ctypes);
  free(s->ptypes);
  free(s->sql);
  free(s->on);
  free(s->gdone);
  actio_actor *db = s->st->self;
  free(s);
  actio__actor_unref(db);
}

/* ---- requests ---- */

/* The kinds sent as statements with parameters (the union's first arm). */
static int with_params(enum kind kind) {
  return kind == K_QUERY || kind == K_BEGIN || kind == K_TQUERY || kind == K_END ||
         kind == K_TDROP || kind == K_BATCH || kind == K_STREAM;
}

void actio__db_req_free(db_req *r) {
  if (r->kind == K_LISTEN && r->arg != NULL) { /* a subscription never made */
    sub *s = r->arg;
    free(s->channel);
    free(s);
  }
  if (with_params(r->kind) && r->more != NULL)
    actio__db_stmt_unref(r->more->stmt);
  if (r->kind == K_PREPARE) /* a statement never handed over */
    actio__db_stmt_unref(((db_prepare_head *)actio__db_req_ext(r))->stmt);
  actio_future_unref(r->reply);
  actio__db_txn_unref(r->txn);
  actio__db_copy_unref(r->copy);
  free(r);
}

/* What a queued query costs is its future and this request: for
 * SELECT $1::int with one text value, 104 bytes of header and 26 of
 * copies, a 144-byte heap block (glibc). A field more must find room. */
_Static_assert(sizeof(db_req) <= 104, "a request's header outgrew its budget");
/* The values' pointers sit first in the block behind the header. */
_Static_assert(offsetof(db_req, bytes) % _Alignof(char *) == 0,
               "a request's block must be aligned for its pointers");

/* 1 if a value of in is binary: only then are lengths and formats kept
 * (libpq takes none for all text). */
static int any_binary(const actio_db_request *in) {
  for (int i = 0; in->formats != NULL && i < in->nparams; i++)
    if (in->formats[i])
      return 1;
  return 0;
}

/* Copies sql, the parameters and data into one block behind the request:
 * the values' pointers, then (only when the caller gave types or a binary
 * value) a db_params and its arrays, then the SQL, the values and data. */
static db_req *req_new(enum kind kind, const actio_db_request *in, size_t ext,
                       const void *data, size_t len);

db_req *actio__db_req_new(enum kind kind, const actio_db_request *in,
                          const void *data, size_t len) {
  return req_new(kind, in, 0, data, len);
}

db_req *actio__db_req_new_ext(enum kind kind, const actio_db_request *in,
                              size_t ext) {
  return req_new(kind, in, ext, NULL, 0);
}

static db_req *req_new(enum kind kind, const actio_db_request *in, size_t ext,
                       const void *data, size_t len) {
  if (in != NULL && in->typed != NULL) { /* written as binary values, copied as such */
    actio_db_request q;
    void *mem = actio__db_typed_encode(in, &q);
    db_req *r = mem ? req_new(kind, &q, ext, data, len) : NULL;
    free(mem);
    return r;
  }
  actio_db_stmt *ps = in ? (actio_db_stmt *)in->stmt : NULL;
  const char *sql = ps ? ps->sql : in ? in->sql : NULL;
  size_t lsql = sql ? strlen(sql) + 1 : 0;
  int n = in ? in->nparams : 0;
  /* A prepared statement's types are the server's own: sent along when
   * the statement runs unnamed (a stream, or once destroyed). */
  const uint32_t *in_types = in && in->types ? in->types : ps ? ps->ptypes : NULL;
  int typed = n > 0 && in_types != NULL, bin = n > 0 && any_binary(in);
  size_t vals = 0;
  for (int i = 0; i < n; i++)
    if (in->params[i] != NULL)
      vals += in->formats && in->formats[i] ? (size_t)in->lengths[i]
                                            : strlen(in->params[i]) + 1;
  size_t arrays = (size_t)n * sizeof(char *);
  if (typed || bin || ps)
    arrays += sizeof(db_params) + (typed ? (size_t)n * sizeof(uint32_t) : 0) +
              (bin ? (size_t)n * 2 * sizeof(int) : 0);
  ext = (ext + 15) & ~(size_t)15; /* what follows stays aligned */
  db_req *r = malloc(sizeof *r + ext + arrays + lsql + vals + (data ? len + 1 : 0));
  if (r == NULL)
    return NULL;
  memset(r, 0, sizeof *r + ext);
  r->kind = (uint8_t)kind;
  r->queued_ns = actio__now_ns();
  char *p = r->bytes + ext;
  char **v = (char **)(void *)p;
  p += (size_t)n * sizeof *v;
  db_params *more = NULL;
  uint32_t *types = NULL;
  int *lens = NULL, *fmts = NULL;
  if (typed || bin || ps) {
    more = (db_params *)(void *)p;
    p += sizeof *more;
    if (typed) {
      types = (uint32_t *)(void *)p;
      p += (size_t)n * sizeof *types;
    }
    if (bin) {
      lens = (int *)(void *)p;
      fmts = lens + n;
      p = (char *)(fmts + n);
    }
    *more = (db_params){.types = types, .lengths = lens, .formats = fmts, .stmt = ps};
    if (ps != NULL)
      actio__db_ref(&ps->refs);
  }
  if (lsql) {
    r->sql = memcpy(p, sql, lsql);
    p += lsql;
  }
  for (int i = 0; i < n; i++) {
    int b = in->formats && in->formats[i];
    if (typed)
      types[i] = in_types[i];
    if (bin) {
      fmts[i] = b;
      lens[i] = b && in->params[i] != NULL ? in->lengths[i] : 0;
    }
    v[i] = NULL;
    if (in->params[i] != NULL) {
      size_t l = b ? (size_t)in->lengths[i] : strlen(in->params[i]) + 1;
      v[i] = memcpy(p, in->params[i], l);
      p += l;
    }
  }
  if (with_params(kind)) {
    r->nparams = n;
    r->binary_results = in->binary_results;
    r->values = n > 0 ? (const char *const *)v : NULL;
    r->more = more;
  } else { /* a script or a COPY is SQL alone; the rest has none */
    ACTIO__ASSERT(n == 0 && (in == NULL || !in->binary_results) && ps == NULL);
  }
  if (data != NULL) {
    char *d = memcpy(p, data, len);
    p[len] = '\0';
    if (kind == K_LISTEN || kind == K_UNLISTEN) {
      r->channel = d;
    } else {
      ACTIO__ASSERT(kind == K_CWRITE || kind == K_CEND);
      r->data = d;
      r->len = len;
    }
  }
  return r;
}

/* 1 if c may be in a dollar quote's tag (first: start it), as in an
 * identifier: letters, '_', the bytes of UTF-8, and digits after the first. */
static int tag_char(unsigned char c, int first) {
  return (unsigned)((c | 0x20) - 'a') < 26u || c == '_' || c >= 0x80 ||
         (!first && (unsigned)(c - '0') < 10u);
}

/* The length of a dollar quote's delimiter at p ("$$", "$tag$"), or 0. */
static size_t dollar_tag(const char *p) {
  if (p[0] != '$')
    return 0;
  size_t k = 1;
  if (tag_char((unsigned char)p[1], 1))
    for (k = 2; tag_char((unsigned char)p[k], 0); k++)
      ;
  return p[k] == '$' ? k + 1 : 0;
}

/*
 * The statement as a label, read as PostgreSQL's lexer reads it (with
 * standard_conforming_strings on, its default): a string literal shows as
 * '***'; a dollar-quoted one, or a literal holding a backslash (where it
 * ends depends on E'' and the server's settings), hides the rest of the
 * statement; comments are dropped, quoted identifiers kept; white space
 * and control bytes become one space. Cut after `max` bytes, then "...".
 */
static void label_sql(const char *sql, size_t max, char *out, size_t cap) {
  size_t n = 0;
  const char *p = sql;
  int ident = 0, hidden = 0;
  while (*p != '\0' && n < max && n + 8 < cap) {
    unsigned char c = (unsigned char)*p;
    if (ident) { /* a quoted identifier is shown */
      ident = c != '"';
      out[n++] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
      p++;
      continue;
    }
    if (c == '\'') { /* a literal's contents are never shown */
      const char *q = p + 1;
      while (*q != '\0' && *q != '\\' && (*q != '\'' || q[1] == '\''))
        q += *q == '\'' ? 2 : 1; /* '' is a quote within it */
      memcpy(out + n, "'***'", 5);
      n += 4;
      hidden = *q != '\''; /* a backslash, or no end */
      if (hidden)
        break;
      n++;
      p = q + 1;
      continue;
    }
    if (dollar_tag(p) != 0) {
      memcpy(out + n, "$***", 4);
      n += 4;
      hidden = 1;
      break;
    }
    if (c == '-' && p[1] == '-') { /* a comment: dropped */
      p += strcspn(p, "\n");
      c = ' ';
    } else if (c == '/' && p[1] == '*') { /* nested, as PostgreSQL's are */
      int depth = 0;
      do {
        depth += p[0] == '/' && p[1] == '*' ? 1 : p[0] == '*' && p[1] == '/' ? -1 : 0;
        p += (p[0] == '/' && p[1] == '*') || (p[0] == '*' && p[1] == '/') ? 2 : 1;
      } while (*p != '\0' && depth > 0);
      c = ' ';
    } else {
      ident = c == '"';
      p++;
    }
    if (c <= ' ' || c == 0x7f) { /* runs of white space as one space */
      if (n > 0 && out[n - 1] != ' ')
        out[n++] = ' ';
      continue;
    }
    out[n++] = (char)c;
  }
  while (n > 0 && out[n - 1] == ' ')
    n--;
  if ((hidden || *p != '\0') && n + 4 <= cap)
    memcpy(out + n, "...", 3), n += 3;
  if (cap > 0)
    out[n < cap ? n : cap - 1] = '\0';
}

void actio__db_req_label(const db_req *r, char *out, size_t cap) {
  enum { MAX = 80 }; /* bytes of statement shown */
  const char *sql = r->sql;
  if (sql == NULL) {
    const char *what = r->kind == K_CWRITE ? "COPY data"
                       : r->kind == K_CEND ? "the end of a COPY"
                       : r->kind == K_CDROP ? "the abort of a COPY"
                       : r->kind == K_LISTEN ? "LISTEN"
                       : r->kind == K_UNLISTEN ? "UNLISTEN" : "request";
    int listen = (r->kind == K_LISTEN || r->kind == K_UNLISTEN) && r->channel != NULL;
    snprintf(out, cap, "%s%s%.*s", what, listen ? " " : "", MAX, listen ? r->channel : "");
    return;
  }
  label_sql(sql, MAX, out, cap);
}

/* A request's future, with its deadline: `timeout_ms` or the pool's (its
 * message names the statement and the limit). */
static int req_future(db_state *st, db_req *r, long timeout_ms) {
  int rc = actio_future_create(&r->reply);
  if (rc != 0)
    return rc;
  long t = timeout_ms > 0 ? timeout_ms : st->o.query_timeout_ms;
  char what[128], msg[256];
  if (t > 0) {
    actio__db_req_label(r, what, sizeof what);
    snprintf(msg, sizeof msg, "%s: timed out after %ld ms (%s)", what, t,
             timeout_ms > 0 ? "its timeout_ms" : "the pool's query_timeout_ms");
  }
  if (t > 0 && (rc = actio__deadline_after(st->rt, r->reply, t, msg)) != 0) {
    actio_future_unref(r->reply);
    r->reply = NULL;
    return rc;
  }
  return 0;
}

/* The server's error, copied so that it outlives its result. */
typedef struct db_err {
  actio_db_error e;
  long index; /* a batch's statement or row that failed, or -1 */
  char buf[];
} db_err;

static void db_err_free(void *p) { free(p); }

static db_err *err_copy(const actio__pg_error *pe) {
  const char *f[5] = {pe->sqlstate, pe->severity, pe->message, pe->detail,
                      pe->hint};
  size_t total = 0;
  for (int i = 0; i < 5; i++)
    total += f[i] ? strlen(f[i]) + 1 : 0;
  db_err *e = malloc(sizeof *e + total);
  if (e == NULL)
    return NULL;
  const char **dst[5] = {&e->e.sqlstate, &e->e.severity, &e->e.message,
                         &e->e.detail, &e->e.hint};
  char *p = e->buf;
  for (int i = 0; i < 5; i++) {
    *dst[i] = NULL;
    if (f[i]) {
      size_t l = strlen(f[i]) + 1;
      *dst[i] = memcpy(p, f[i], l);
      p += l;
    }
  }
  e->index = -1;
  if (e->e.sqlstate == NULL)
    e->e.sqlstate = "";
  if (e->e.message == NULL)
    e->e.message = "";
  return e;
}

const actio_db_error *actio_db_error_get(const actio_future *f) {
  if (f == NULL || !actio_future_is_done(f))
    return NULL;
  db_err *e = actio__future_aux(f, db_err_free);
  return e ? &e->e : NULL;
}

long actio_db_batch_index(const actio_future *f) {
  if (f == NULL || !actio_future_is_done(f))
    return -1;
  db_err *e = actio__future_aux(f, db_err_free);
  return e ? e->index : -1;
}

void actio__db_result_free(void *p) { actio__pg_result_free(p); }

int actio__db_forward(actio_future *to, actio_future *from) {
  const db_err *e = actio__future_aux(from, db_err_free);
  if (actio_future_status(from) == 0 || e == NULL)
    return actio__future_adopt(to, from);
  actio__pg_error pe = {.sqlstate = e->e.sqlstate, .severity = e->e.severity,
                        .message = e->e.message, .detail = e->e.detail,
                        .hint = e->e.hint};
  db_err *copy = err_copy(&pe);
  if (copy == NULL) /* the text alone */
    return actio__future_adopt(to, from);
  copy->index = e->index;
  int rc = actio__future_fail_aux(to, actio_future_status(from),
                                  actio_future_errmsg(from), copy, db_err_free);
  if (rc != 0)
    free(copy);
  return rc;
}

void actio__db_req_end(db_req *r, int rc, actio__pg_result *res,
                       const actio__pg_error *err, const char *msg) {
  db_err *e;
  char *text = NULL; /* "<statement>: <msg>" */
  if (r->reply != NULL && rc != 0) {
    char what[128];
    actio__db_req_label(r, what, sizeof what);
    if (asprintf(&text, "%s: %s", what, msg && *msg ? msg : actio_strerror(rc)) < 0)
      text = NULL;
    else
      msg = text;
  }
  if (r->reply == NULL) {
    if (rc == 0)
      actio__pg_result_free(res);
  } else {
    actio_future_clear_cancel(r->reply); /* no hook runs after this */
    if (rc == 0) {
      if (actio_future_resolve(r->reply, res, actio__db_result_free) != 0)
        actio__pg_result_free(res);
    } else if (err != NULL && (e = err_copy(err)) != NULL) {
      if (r->kind == K_BATCH)
        e->index = ((const db_batch_head *)actio__db_req_ext(r))->failed;
      if (actio__future_fail_aux(r->reply, rc, msg, e, db_err_free) != 0)
        free(e);
    } else { /* no server error, or no memory to copy it: the text alone */
      actio_future_fail(r->reply, rc, "%s", msg && *msg ? msg : actio_strerror(rc));
    }
  }
  free(text);
  actio__db_req_free(r);
}

/* req_end for a failure without the server's error. */
void actio__db_req_fail(db_req *r, int rc, const char *msg) {
  actio__db_req_end(r, rc, NULL, NULL, msg);
}

/* ---- sending ---- */

void actio__db_quote_ident(char *out, size_t len, const char *id) {
  size_t j = 0;
  out[j++] = '"';
  for (const char *p = id; *p && j + 3 < len; p++) {
    if (*p == '"')
      out[j++] = '"';
    out[j++] = *p;
  }
  out[j++] = '"';
  out[j] = '\0';
}

void actio__db_drop(actio_actor *self, void *msg) {
  db_req *r = msg;
  (void)self;
  actio__db_req_fail(r, ACTIO_ECANCELED, "database actor stopped");
}

db_state *actio__db_state(actio_actor *db) {
  return db != NULL && actio_actor_behavior(db)->drop == actio__db_drop
             ? actio_actor_state(db)
             : NULL;
}

int actio__db_request_check(const actio_db_request *q) {
  /* Past the protocol's limit libpq refuses the send, which the worker
   * could not tell from a broken connection. */
  if (q == NULL || (q->sql == NULL) == (q->stmt == NULL) || q->nparams < 0 ||
      q->nparams > 65535 || (q->stmt != NULL && q->nparams != q->stmt->nparams))
    return ACTIO_EINVAL;
  if (q->typed != NULL)
    return q->params || q->lengths || q->formats || q->types
               ? ACTIO_EINVAL
               : actio__db_typed_check(q->typed, q->nparams);
  if (q->nparams > 0 && q->params == NULL)
    return ACTIO_EINVAL;
  for (int i = 0; i < q->nparams; i++)
    if (q->formats && q->formats[i] && q->params[i] != NULL &&
        (q->lengths == NULL || q->lengths[i] < 0))
      return ACTIO_EINVAL;
  return 0;
}

int actio__db_request_valid(const actio_db_request *q) {
  return actio__db_request_check(q) == 0;
}

/* Sends r through the mailbox; on success *out is the caller's future. */
int actio__db_submit(actio_actor *db, db_state *st, db_req *r, long timeout_ms,
                     actio_future **out) {
  int rc = req_future(st, r, timeout_ms);
  int self = rc == 0 && actio__actor_is_self(db);
  /* One of its own workers, from a completion's callback: the next query
   * goes on the connection that just freed, if that worker has room. */
  if (self)
    rc = actio__request_self(db, r, r->reply, out, actio__db_has_room);
  /* Else the mailbox. A worker sending to its own actor must not wait for
   * room it alone could make. */
  if ((rc == 0 && !self) || rc == ACTIO_EAGAIN)
    rc = actio__request(db, r, r->reply, st->o.fail_when_full || self ? 0 : -1, out);
  if (rc != 0)
    actio__db_req_free(r);
  return rc;
}

/* Sends r to the inbox of the worker it is bound to (a transaction's or a
 * COPY's connection, the listener); on success *out is the caller's
 * future. Without out, r gets no future (the drop of a forgotten
 * transaction or COPY). */
int actio__db_submit_bound(db_state *st, actio__bell *b, db_req *r, long timeout_ms,
                           actio_future **out) {
  int rc = out ? req_future(st, r, timeout_ms) : 0;
  if (rc == 0)
    rc = actio__request_bound(st->self, b, &r->link, r->reply, out);
  if (rc != 0)
    actio__db_req_free(r);
  return rc;
}

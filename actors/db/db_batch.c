/* db_batch.c: executemany (one statement, N parameter sets) and batches of
 * different statements: each one pipelined unit before one Sync, so the
 * server runs it as one implicit transaction, all or nothing. */
#include <ctype.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/core/actor_internal.h"
#include "actors/db/db_internal.h"

/* One statement of a batch of different ones. */
typedef struct bstmt {
  const char *sql; /* in the ext */
  int nparams;
  int binary;      /* binary results */
  size_t first;    /* its first value in the request's values */
} bstmt;

/* A batch's ext, first in its request's block. */
typedef struct batch_ext {
  db_batch_head h;
  int width;                 /* executemany: values per row; -1: a batch */
  uint64_t *affected;        /* per statement (row) */
  actio__pg_result **res;    /* per statement: a batch's results, else NULL */
  bstmt *st;                 /* a batch's statements, else NULL */
} batch_ext;

struct actio_db_batch_result {
  size_t n;
  uint64_t total;
  uint64_t *affected;
  actio__pg_result **res; /* NULL for an executemany */
};

/* ---- the worker's side ---- */

void actio__db_batch_get(void *unit, size_t i, actio__pg_query *q) {
  db_req *r = unit;
  batch_ext *b = actio__db_req_ext(r);
  memset(q, 0, sizeof *q);
  if (b->width >= 0) {
    q->sql = r->sql; /* the same pointer for every row: prepared once */
    q->nparams = b->width;
    q->values = r->values != NULL ? r->values + i * (size_t)b->width : NULL;
    q->cache = !r->nocache && !r->w->st->o.no_statement_cache;
    return;
  }
  q->sql = b->st[i].sql;
  q->nparams = b->st[i].nparams;
  q->values = b->st[i].nparams > 0 ? r->values + b->st[i].first : NULL;
  q->binary_results = b->st[i].binary;
}

void actio__db_batch_each(void *unit, size_t i, actio__pg_result *res) {
  batch_ext *b = actio__db_req_ext(unit);
  if (res == NULL) {
    b->h.failed = (long)i;
    return;
  }
  b->affected[i] = actio__pg_result_affected(res);
  if (b->res == NULL) {
    actio__pg_result_free(res);
    return;
  }
  actio__pg_result_free(b->res[i]); /* a batch sent again after a stray cancel */
  b->res[i] = res;
}

static void batch_result_free(void *p) { actio_db_batch_result_free(p); }

/* The results gathered so far (a batch that failed). */
static void drop_results(batch_ext *b) {
  for (size_t i = 0; b->res != NULL && i < b->h.n; i++) {
    actio__pg_result_free(b->res[i]);
    b->res[i] = NULL;
  }
}

void actio__db_batch_ended(db_worker *w, db_req *r, int rc, actio__pg_result *res,
                           const actio__pg_error *err, const char *msg) {
  batch_ext *b = actio__db_req_ext(r);
  conn *c = r->c;
  (void)w;
  actio__pg_result_free(res); /* the unit's own: empty */
  if (rc == 0 && c != NULL && c->state == C_READY && !actio__pg_conn_txn_idle(c->pc)) {
    /* It opened a transaction block, which would swallow what is
     * pipelined behind it: close the connection (the server rolls back). */
    c->doomed = 1;
    rc = ACTIO_EINVAL;
    msg = "a batch left a transaction open: it was rolled back";
  }
  if (rc != 0) {
    drop_results(b);
    char m[600];
    if (b->h.failed >= 0 && err != NULL) {
      snprintf(m, sizeof m, "%s %ld: %s", b->width >= 0 ? "row" : "statement",
               b->h.failed, msg);
      msg = m;
      if (b->st != NULL)
        r->sql = b->st[b->h.failed].sql; /* its label names the one that failed */
    }
    actio__db_req_end(r, rc, NULL, err, msg);
    return;
  }
  size_t n = b->h.n, per = b->res != NULL ? sizeof *b->res : 0;
  actio_db_batch_result *out = malloc(sizeof *out + n * (sizeof *out->affected + per));
  if (out == NULL) {
    drop_results(b);
    actio__db_req_fail(r, ACTIO_ENOMEM, "the batch ran, but its result: out of memory");
    return;
  }
  out->n = n;
  out->total = 0;
  out->affected = (uint64_t *)(void *)(out + 1);
  memcpy(out->affected, b->affected, n * sizeof *out->affected);
  for (size_t i = 0; i < n; i++)
    out->total += out->affected[i];
  out->res = NULL;
  if (b->res != NULL) {
    out->res = (actio__pg_result **)(void *)(out->affected + n);
    memcpy(out->res, b->res, n * sizeof *out->res);
    memset(b->res, 0, n * sizeof *b->res);
  }
  actio_future_clear_cancel(r->reply);
  if (actio_future_resolve(r->reply, out, batch_result_free) != 0)
    actio_db_batch_result_free(out);
  actio__db_req_free(r);
}

/* ---- the API ---- */

/* 1 if sql opens with a statement that begins or ends a transaction: it
 * would split the batch's implicit one. Comments and blanks first. */
static int txn_control(const char *sql) {
  static const char *const verbs[] = {"BEGIN", "START", "COMMIT", "END",
                                      "ROLLBACK", "ABORT"};
  const char *p = sql;
  for (;;) {
    while (isspace((unsigned char)*p) || *p == ';')
      p++;
    if (p[0] == '-' && p[1] == '-')
      p += strcspn(p, "\n");
    else if (p[0] == '/' && p[1] == '*')
      p = strstr(p + 2, "*/") ? strstr(p + 2, "*/") + 2 : p + strlen(p);
    else
      break;
  }
  size_t len = 0;
  while (isalpha((unsigned char)p[len]))
    len++;
  for (size_t i = 0; i < sizeof verbs / sizeof *verbs; i++)
    if (len == strlen(verbs[i]) && strncasecmp(p, verbs[i], len) == 0)
      return 1;
  return 0;
}

/* The ext's size and layout for n statements (width -1: a batch, with
 * `sqls` bytes of statement text). */
static size_t ext_size(size_t n, int batch, size_t sqls) {
  size_t s = sizeof(batch_ext) + n * sizeof(uint64_t);
  if (batch)
    s += n * (sizeof(actio__pg_result *) + sizeof(bstmt)) + sqls;
  return s;
}

static batch_ext *ext_init(db_req *r, size_t n, int width) {
  batch_ext *b = actio__db_req_ext(r);
  b->h.n = n;
  b->h.failed = -1;
  b->width = width;
  b->affected = (uint64_t *)(void *)(b + 1);
  if (width < 0) {
    b->res = (actio__pg_result **)(void *)(b->affected + n);
    b->st = (bstmt *)(void *)(b->res + n);
  }
  return b;
}

/* Under a pin on db. params: row-major, or NULL with row. */
static int many(actio_actor *db, const char *sql, int nparams, size_t nrows,
                const char *const *params, actio_db_row_params_fn row, void *arg,
                actio_future **out) {
  db_state *st = actio__db_state(db);
  if (st == NULL || out == NULL || sql == NULL || nrows == 0 || nparams < 0 ||
      nparams > 65535 || (nparams > 0 && params == NULL && row == NULL) ||
      (size_t)nparams * nrows > INT_MAX || nrows > LONG_MAX || txn_control(sql))
    return ACTIO_EINVAL;
  size_t total = (size_t)nparams * nrows;
  const char **flat = NULL;
  if (row != NULL && total > 0) { /* the caller's rows, gathered now */
    if ((flat = malloc(total * sizeof *flat)) == NULL)
      return ACTIO_ENOMEM;
    for (size_t i = 0; i < nrows; i++) {
      const char *const *v = row(arg, i);
      if (v == NULL) {
        free(flat);
        return ACTIO_EINVAL;
      }
      memcpy(flat + i * (size_t)nparams, v, (size_t)nparams * sizeof *flat);
    }
    params = flat;
  }
  actio_db_request in = {.sql = sql, .nparams = (int)total, .params = params};
  db_req *r = actio__db_req_new_ext(K_BATCH, &in, ext_size(nrows, 0, 0));
  free(flat);
  if (r == NULL)
    return ACTIO_ENOMEM;
  ext_init(r, nrows, nparams);
  return actio__db_submit(db, st, r, 0, out); /* the pool's query timeout */
}

int actio_db_executemany(actio_actor *db, const char *sql, int nparams, size_t nrows,
                         const char *const *params, actio_future **out) {
  if (db == NULL)
    return ACTIO_EINVAL;
  actio__actor_pin(db);
  int rc = many(db, sql, nparams, nrows, params, NULL, NULL, out);
  actio__actor_unpin(db);
  return rc;
}

int actio_db_executemany_fn(actio_actor *db, const char *sql, int nparams, size_t nrows,
                            actio_db_row_params_fn row, void *arg, actio_future **out) {
  if (db == NULL || row == NULL)
    return ACTIO_EINVAL;
  actio__actor_pin(db);
  int rc = many(db, sql, nparams, nrows, NULL, row, arg, out);
  actio__actor_unpin(db);
  return rc;
}

/* Under a pin on db. */
static int batch(actio_actor *db, const actio_db_request *stmts, size_t n,
                 actio_future **out) {
  db_state *st = actio__db_state(db);
  if (st == NULL || out == NULL || stmts == NULL || n == 0 || n > LONG_MAX)
    return ACTIO_EINVAL;
  size_t total = 0, sqls = 0;
  for (size_t i = 0; i < n; i++) {
    const actio_db_request *q = &stmts[i];
    /* Text values only: binary ones and types would need arrays of their
     * own per statement. */
    if (!actio__db_request_valid(q) || q->types != NULL || q->formats != NULL ||
        q->typed != NULL || q->stmt != NULL ||
        txn_control(q->sql))
      return ACTIO_EINVAL;
    total += (size_t)q->nparams;
    sqls += strlen(q->sql) + 1;
  }
  if (total > INT_MAX)
    return ACTIO_EINVAL;
  const char **flat = total > 0 ? malloc(total * sizeof *flat) : NULL;
  if (total > 0 && flat == NULL)
    return ACTIO_ENOMEM;
  for (size_t i = 0, k = 0; i < n; i++) {
    if (stmts[i].nparams == 0)
      continue; /* its params may be NULL */
    memcpy(flat + k, stmts[i].params, (size_t)stmts[i].nparams * sizeof *flat);
    k += (size_t)stmts[i].nparams;
  }
  actio_db_request in = {.sql = stmts[0].sql, .nparams = (int)total, .params = flat};
  db_req *r = actio__db_req_new_ext(K_BATCH, &in, ext_size(n, 1, sqls));
  free(flat);
  if (r == NULL)
    return ACTIO_ENOMEM;
  batch_ext *b = ext_init(r, n, -1);
  char *text = (char *)(void *)(b->st + n);
  for (size_t i = 0, k = 0; i < n; i++) {
    size_t l = strlen(stmts[i].sql) + 1;
    b->st[i] = (bstmt){.sql = memcpy(text, stmts[i].sql, l),
                       .nparams = stmts[i].nparams,
                       .binary = stmts[i].binary_results != 0,
                       .first = k};
    text += l;
    k += (size_t)stmts[i].nparams;
  }
  return actio__db_submit(db, st, r, 0, out); /* the pool's query timeout */
}

int actio_db_batch(actio_actor *db, const actio_db_request *stmts, size_t n,
                   actio_future **out) {
  if (db == NULL)
    return ACTIO_EINVAL;
  actio__actor_pin(db);
  int rc = batch(db, stmts, n, out);
  actio__actor_unpin(db);
  return rc;
}

/* ---- results ---- */

void actio_db_batch_result_free(actio_db_batch_result *b) {
  if (b == NULL)
    return;
  for (size_t i = 0; b->res != NULL && i < b->n; i++)
    actio__pg_result_free(b->res[i]);
  free(b);
}

size_t actio_db_batch_count(const actio_db_batch_result *b) { return b ? b->n : 0; }

uint64_t actio_db_batch_affected(const actio_db_batch_result *b) {
  return b ? b->total : 0;
}

uint64_t actio_db_batch_affected_at(const actio_db_batch_result *b, size_t i) {
  return b != NULL && i < b->n ? b->affected[i] : 0;
}

const actio_db_result *actio_db_batch_result_at(const actio_db_batch_result *b,
                                                size_t i) {
  return b != NULL && b->res != NULL && i < b->n
             ? (const actio_db_result *)(const void *)b->res[i]
             : NULL;
}

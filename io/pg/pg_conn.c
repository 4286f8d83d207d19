/* pg_conn.c: one PostgreSQL connection over libpq's non-blocking API.
 *
 * In pipeline mode every unit is its statement (a Parse first when the
 * statement is not prepared yet) followed by a Sync, so an error aborts
 * nothing but its own unit. Results then come as: [prepare's result, NULL],
 * the statement's result, NULL, PGRES_PIPELINE_SYNC. A batch is one unit
 * of many statements before one Sync (one implicit transaction): each
 * statement's result and NULL, then the Sync. Scripts, COPY, LISTEN and
 * streams (single-row mode) leave pipeline mode for the time of their
 * unit. */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/socket.h>

#include <libpq-fe.h>

#include "actio/error.h"
#include "io/pg/pg_conn.h"
#include "io/pg/pg_error.h"
#include "io/pg/pg_private.h"
#include "io/pg/pg_result.h"

/* A prepared statement, in the hash table and the LRU list. Units that use
 * it hold references: a statement whose Parse failed lingers (unhashed)
 * until they are done, so they report the Parse's error. */
typedef struct stmt {
  char *sql;
  uint32_t *types;
  int nparams;
  unsigned refs;
  int dropped;      /* out of the cache; freed by its last unit */
  PGresult *failed; /* the Parse's error, once known */
  struct stmt *hnext;
  struct stmt *lprev, *lnext; /* LRU: head is the most recent */
  uint64_t hash;
  unsigned long number; /* its name is actio_<number> */
  char name[24];
} stmt;

enum stage { ST_PREP, ST_QUERY, ST_SYNC, ST_COPY, ST_DRAIN, ST_ROWS };

typedef struct unit {
  void *arg;
  stmt *prep;     /* the statement it prepares or uses, or NULL */
  int preparing;  /* it carries the Parse */
  int simple;     /* sent with the simple protocol, not pipelined */
  int use_failed; /* its error is its statement's failed Parse */
  int copy;       /* sent as a COPY: its data phase is the caller's */
  int *parsed;    /* a caller's named Parse: set to 1 once it succeeded */
  unsigned long dealloc; /* an internal DEALLOCATE's statement number, or 0 */
  enum stage stage;
  /* A batch: n statements before one Sync, their results handed to each
   * one by one (see actio__pg_conn_send_batch); n 0 for any other unit. */
  actio__pg_batch_each_fn each;
  size_t n, index;
  PGresult *res;  /* the result to hand over */
  int rc;         /* 0, or the error res carries */
  struct unit *next;
} unit;

struct actio__pg_conn {
  PGconn *pg;
  int connecting;
  PostgresPollingStatusType poll;
  int want_write; /* PQflush left data behind */
  int tcp;        /* over TCP (not a Unix socket): corking applies */
  int corked;
  unit *head, *tail, *spare;
  size_t inflight;
  /* statement cache */
  unsigned cache_max, cache_n;
  stmt **table; /* cache_max * 2 buckets */
  stmt *lru, *lru_tail;
  unsigned long next_name;
  /* Evicted statements whose DEALLOCATE met a failed transaction (25P02),
   * by number: sent again once the session is idle. Up to cache_max; past
   * that, stale_all: DEALLOCATE ALL then, and the cache starts afresh. */
  unsigned long *stale;
  unsigned nstale;
  int stale_all;
  actio__pg_notice_fn notice_fn;
  void *notice_arg;
};

/* Notices (NOTICE, WARNING) go to the caller's function, never to stderr. */
static void notice(void *arg, const PGresult *res) {
  actio__pg_conn *c = arg;
  if (c->notice_fn == NULL)
    return;
  actio__pg_error e;
  actio__pg_error_read(actio__pg_wrap((PGresult *)res), &e);
  c->notice_fn(c->notice_arg, &e);
}

void actio__pg_conn_on_notice(actio__pg_conn *c, actio__pg_notice_fn fn, void *arg) {
  c->notice_fn = fn;
  c->notice_arg = arg;
}

void actio__pg_conn_message(const actio__pg_conn *c, char *buf, size_t len) {
  const char *text = c != NULL && c->pg != NULL ? PQerrorMessage(c->pg) : NULL;
  /* Once connected, libpq's text may hold the server's errors of earlier
   * statements (terse: no detail), whose values the server quotes. Before,
   * it names the host, the user and the database, which are no secret. */
  if (c != NULL && !c->connecting)
    actio__pg_masked_line(NULL, text, buf, len);
  else
    actio__pg_one_line(text, buf, len);
}

int actio__pg_dsn_check(const char *dsn) {
  char *err = NULL;
  PQconninfoOption *parsed = PQconninfoParse(dsn, &err);
  PQfreemem(err); /* its text may quote the DSN: never shown */
  if (parsed == NULL)
    return ACTIO_EDSN;
  PQconninfoFree(parsed);
  return 0;
}

int actio__pg_conn_start(actio__pg_conn **out, const char *dsn,
                         unsigned cache_size, char *err, size_t errlen) {
  actio__pg_conn *c = calloc(1, sizeof *c);
  if (c == NULL)
    goto fail_mem;
  if (cache_size > 0) {
    c->table = calloc((size_t)cache_size * 2, sizeof *c->table);
    c->stale = malloc(sizeof *c->stale * cache_size);
    if (c->table == NULL || c->stale == NULL)
      goto fail_mem;
    c->cache_max = cache_size;
  }
  /* The DSN goes in as "dbname" with expansion, so it may be a key=value
   * string or a URI; the application name says who we are. */
  const char *keys[] = {"dbname", "fallback_application_name", NULL};
  const char *vals[] = {dsn, "actio", NULL};
  c->pg = PQconnectStartParams(keys, vals, 1);
  if (c->pg == NULL)
    goto fail_mem;
  if (PQstatus(c->pg) == CONNECTION_BAD) {
    actio__pg_conn_message(c, err, errlen);
    PQfinish(c->pg);
    free(c->stale);
    free(c->table);
    free(c);
    return ACTIO_ECONN;
  }
  PQsetNoticeReceiver(c->pg, notice, c);
  c->connecting = 1;
  c->poll = PGRES_POLLING_WRITING; /* libpq's rule for the first wait */
  *out = c;
  return 0;
fail_mem:
  snprintf(err, errlen, "%s", actio_strerror(ACTIO_ENOMEM));
  if (c != NULL) {
    free(c->stale);
    free(c->table);
  }
  free(c);
  return ACTIO_ENOMEM;
}

static int auth_failure(const char *msg) {
  return strstr(msg, "authentication failed") != NULL ||
         strstr(msg, "no password supplied") != NULL ||
         strstr(msg, "no pg_hba.conf entry") != NULL;
}

int actio__pg_conn_connect(actio__pg_conn *c, char *err, size_t errlen) {
  if (!c->connecting)
    return 0;
  c->poll = PQconnectPoll(c->pg);
  if (c->poll == PGRES_POLLING_READING || c->poll == PGRES_POLLING_WRITING)
    return ACTIO_EPENDING;
  if (c->poll == PGRES_POLLING_FAILED) {
    actio__pg_conn_message(c, err, errlen);
    return auth_failure(err) ? ACTIO_EAUTH : ACTIO_ECONN;
  }
  c->connecting = 0;
  /* From now on the errors libpq writes into its own text (PQerrorMessage,
   * a broken connection's message) keep no detail, hint, context or
   * statement: a key's value, a failing row, a literal. The fields of each
   * result stay whole. */
  PQsetErrorVerbosity(c->pg, PQERRORS_TERSE);
  struct sockaddr_storage sa;
  socklen_t len = sizeof sa;
  if (getsockname(PQsocket(c->pg), (struct sockaddr *)&sa, &len) == 0)
    c->tcp = sa.ss_family == AF_INET || sa.ss_family == AF_INET6;
  if (PQsetnonblocking(c->pg, 1) != 0 || PQenterPipelineMode(c->pg) != 1) {
    actio__pg_conn_message(c, err, errlen);
    return ACTIO_ECONN;
  }
  return 0;
}

/* ---- the statement cache ---- */

static uint64_t stmt_hash(const char *sql, int nparams, const uint32_t *types) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (const unsigned char *p = (const unsigned char *)sql; *p; p++)
    h = (h ^ *p) * 1099511628211ull;
  for (int i = 0; types != NULL && i < nparams; i++)
    h = (h ^ types[i]) * 1099511628211ull;
  return h ^ (uint64_t)nparams;
}

/* 1 if s is q's statement: the same text and parameter types. */
static int stmt_is(const stmt *s, const actio__pg_query *q) {
  if (s->nparams != q->nparams || strcmp(s->sql, q->sql) != 0)
    return 0;
  for (int i = 0; i < q->nparams; i++)
    if ((s->types ? s->types[i] : 0) != (q->types ? q->types[i] : 0))
      return 0;
  return 1;
}

static stmt **bucket(actio__pg_conn *c, uint64_t h) {
  return &c->table[h % ((uint64_t)c->cache_max * 2)];
}

static void lru_unlink(actio__pg_conn *c, stmt *s) {
  if (s->lprev)
    s->lprev->lnext = s->lnext;
  else
    c->lru = s->lnext;
  if (s->lnext)
    s->lnext->lprev = s->lprev;
  else
    c->lru_tail = s->lprev;
  s->lprev = s->lnext = NULL;
}

static void lru_front(actio__pg_conn *c, stmt *s) {
  s->lnext = c->lru;
  s->lprev = NULL;
  if (c->lru)
    c->lru->lprev = s;
  c->lru = s;
  if (c->lru_tail == NULL)
    c->lru_tail = s;
}

static void stmt_free(stmt *s) {
  PQclear(s->failed);
  free(s->sql);
  free(s->types);
  free(s);
}

/* Takes s out of the table and the list; freed now or by its last unit. */
static void stmt_drop(actio__pg_conn *c, stmt *s) {
  stmt **pp = bucket(c, s->hash);
  while (*pp != NULL && *pp != s)
    pp = &(*pp)->hnext;
  if (*pp == s) {
    *pp = s->hnext;
    lru_unlink(c, s);
    c->cache_n--;
  }
  s->hnext = NULL;
  s->dropped = 1;
  if (s->refs == 0)
    stmt_free(s);
}

static void stmt_unref(stmt *s) {
  if (--s->refs == 0 && s->dropped)
    stmt_free(s);
}

/* ---- units ---- */

static unit *unit_push(actio__pg_conn *c, void *arg) {
  unit *u = c->spare;
  if (u != NULL)
    c->spare = u->next;
  else if ((u = malloc(sizeof *u)) == NULL)
    return NULL;
  memset(u, 0, sizeof *u);
  u->arg = arg;
  if (c->tail)
    c->tail->next = u;
  else
    c->head = u;
  c->tail = u;
  c->inflight++;
  return u;
}

static void unit_pop(actio__pg_conn *c) {
  unit *u = c->head;
  c->head = u->next;
  if (c->head == NULL)
    c->tail = NULL;
  c->inflight--;
  if (u->prep)
    stmt_unref(u->prep);
  PQclear(u->res);
  u->next = c->spare;
  c->spare = u;
}

/* Withdraws the unit just pushed at the tail (its send failed). */
static void unit_unpush(actio__pg_conn *c) {
  unit *prev = NULL;
  for (unit *u = c->head; u != c->tail; u = u->next)
    prev = u;
  unit *u = c->tail;
  if (prev)
    prev->next = NULL;
  else
    c->head = NULL;
  c->tail = prev;
  c->inflight--;
  if (u->prep)
    stmt_unref(u->prep);
  u->next = c->spare;
  c->spare = u;
}

static void keep(unit *u, PGresult *res);

/* Sends "DEALLOCATE actio_<number>" (number 0: DEALLOCATE ALL) as an
 * internal unit. */
static int deallocate(actio__pg_conn *c, unsigned long number) {
  char sql[48];
  if (number == 0)
    snprintf(sql, sizeof sql, "DEALLOCATE ALL");
  else
    snprintf(sql, sizeof sql, "DEALLOCATE actio_%lu", number); /* our own name */
  if (unit_push(c, NULL) == NULL)
    return ACTIO_ENOMEM;
  if (!PQsendQueryParams(c->pg, sql, 0, NULL, NULL, NULL, NULL, 0) ||
      !PQpipelineSync(c->pg)) {
    unit_unpush(c);
    return ACTIO_ECONN;
  }
  c->tail->stage = ST_QUERY;
  c->tail->dealloc = number;
  return 0;
}

/* Sends the DEALLOCATEs that met a failed transaction again once the
 * session is idle (nothing in flight, no transaction block): at the end of
 * the input that ended the ROLLBACK, unless more units were sent behind
 * it; then at a later idle moment. */
static void stale_send(actio__pg_conn *c) {
  if ((c->nstale == 0 && !c->stale_all) || c->inflight > 0 ||
      PQtransactionStatus(c->pg) != PQTRANS_IDLE)
    return;
  if (c->stale_all) {
    /* Nothing is in flight, so no unit holds a cached statement. */
    while (c->lru != NULL)
      stmt_drop(c, c->lru);
    if (deallocate(c, 0) == 0) {
      c->stale_all = 0;
      c->nstale = 0;
    }
  }
  while (c->nstale > 0 && deallocate(c, c->stale[c->nstale - 1]) == 0)
    c->nstale--;
  c->want_write = PQflush(c->pg) == 1;
}

/* Finds or makes the statement for q; sets *fresh when it must be parsed. */
static stmt *stmt_get(actio__pg_conn *c, const actio__pg_query *q, int *fresh) {
  /* The one used last, first: a loop of one statement neither hashes its
   * text nor moves it in the LRU at every query. */
  if (c->lru != NULL && stmt_is(c->lru, q)) {
    *fresh = 0;
    return c->lru;
  }
  uint64_t h = stmt_hash(q->sql, q->nparams, q->types);
  for (stmt *s = *bucket(c, h); s != NULL; s = s->hnext)
    if (s->hash == h && stmt_is(s, q)) {
      lru_unlink(c, s);
      lru_front(c, s);
      *fresh = 0;
      return s;
    }
  if (c->cache_n == c->cache_max) { /* evict the least recently used */
    stmt *old = c->lru_tail;
    unsigned long number = old->number;
    stmt_drop(c, old);
    if (deallocate(c, number) != 0)
      return NULL;
  }
  stmt *s = calloc(1, sizeof *s);
  if (s == NULL || (s->sql = strdup(q->sql)) == NULL)
    goto fail;
  if (q->types != NULL && q->nparams > 0) {
    s->types = malloc(sizeof *s->types * (size_t)q->nparams);
    if (s->types == NULL)
      goto fail;
    memcpy(s->types, q->types, sizeof *s->types * (size_t)q->nparams);
  }
  s->nparams = q->nparams;
  s->hash = h;
  s->number = ++c->next_name;
  snprintf(s->name, sizeof s->name, "actio_%lu", s->number);
  stmt **b = bucket(c, h);
  s->hnext = *b;
  *b = s;
  lru_front(c, s);
  c->cache_n++;
  *fresh = 1;
  return s;
fail:
  if (s)
    free(s->sql);
  free(s);
  return NULL;
}

/* Sends q by its caller's statement name (see actio__pg_query.name). */
static int send_named(actio__pg_conn *c, const actio__pg_query *q, void *arg) {
  unit *u = unit_push(c, arg);
  if (u == NULL)
    return ACTIO_ENOMEM;
  u->stage = q->prepare ? ST_PREP : ST_QUERY;
  u->preparing = q->prepare;
  u->parsed = q->prepare ? q->parsed : NULL;
  int ok = (!q->prepare || PQsendPrepare(c->pg, q->name, q->sql, q->nparams,
                                         (const Oid *)q->types)) &&
           PQsendQueryPrepared(c->pg, q->name, q->nparams, q->values, q->lengths,
                               q->formats, q->binary_results) &&
           PQpipelineSync(c->pg);
  if (!ok) {
    unit_unpush(c);
    return ACTIO_ECONN;
  }
  c->want_write = PQflush(c->pg) == 1;
  return 0;
}

int actio__pg_conn_send_describe(actio__pg_conn *c, const char *name, const char *sql,
                                 int nparams, const uint32_t *types, int parse,
                                 void *arg, int *parsed) {
  unit *u = unit_push(c, arg);
  if (u == NULL)
    return ACTIO_ENOMEM;
  u->parsed = parse ? parsed : NULL;
  u->stage = ST_QUERY;
  u->n = parse ? 2 : 1; /* the Prepare's result, if any, and the description:
                           the latter kept */
  if ((parse && !PQsendPrepare(c->pg, name, sql, nparams, (const Oid *)types)) ||
      !PQsendDescribePrepared(c->pg, name) || !PQpipelineSync(c->pg)) {
    unit_unpush(c);
    return ACTIO_ECONN;
  }
  c->want_write = PQflush(c->pg) == 1;
  return 0;
}

int actio__pg_described_params(const actio__pg_result *r) {
  return r ? PQnparams(actio__pg_res(r)) : 0;
}

uint32_t actio__pg_described_param_type(const actio__pg_result *r, int i) {
  return r && i >= 0 && i < PQnparams(actio__pg_res(r)) ? PQparamtype(actio__pg_res(r), i) : 0;
}

int actio__pg_conn_send(actio__pg_conn *c, const actio__pg_query *q, void *arg) {
  stmt *s = NULL;
  int fresh = 0;
  if (q->name != NULL)
    return send_named(c, q, arg);
  if (q->cache && c->cache_max > 0 && (s = stmt_get(c, q, &fresh)) == NULL)
    return PQstatus(c->pg) == CONNECTION_BAD ? ACTIO_ECONN : ACTIO_ENOMEM;
  unit *u = unit_push(c, arg);
  if (u == NULL) {
    if (fresh)
      stmt_drop(c, s); /* never parsed */
    return ACTIO_ENOMEM;
  }
  int ok;
  if (s != NULL) {
    s->refs++;
    u->prep = s;
    u->preparing = fresh;
    u->stage = fresh ? ST_PREP : ST_QUERY;
    ok = (!fresh || PQsendPrepare(c->pg, s->name, q->sql, q->nparams,
                                  (const Oid *)q->types)) &&
         PQsendQueryPrepared(c->pg, s->name, q->nparams, q->values, q->lengths,
                             q->formats, q->binary_results);
  } else {
    u->stage = ST_QUERY;
    ok = PQsendQueryParams(c->pg, q->sql, q->nparams, (const Oid *)q->types, q->values,
                           q->lengths, q->formats, q->binary_results);
  }
  /* The Sync flushes (before libpq 17 there is no other way): one send
   * per unit, never a delay; actio__pg_conn_cork batches them. */
  if (ok)
    ok = PQpipelineSync(c->pg);
  if (!ok) {
    if (fresh)
      stmt_drop(c, s); /* never parsed: nobody may use its name */
    unit_unpush(c);
    return ACTIO_ECONN;
  }
  c->want_write = PQflush(c->pg) == 1;
  return 0;
}

int actio__pg_conn_send_batch(actio__pg_conn *c, size_t n,
                              actio__pg_batch_get_fn get,
                              actio__pg_batch_each_fn each, void *arg) {
  actio__pg_query q0, q;
  stmt *s = NULL;
  int fresh = 0;
  get(arg, 0, &q0);
  /* Only the first statement is prepared (and cached): the statements
   * after it that share its text and count use it. Preparing any other
   * could evict one this batch uses, and a DEALLOCATE sent mid-batch
   * would bring a Sync of its own. */
  if (q0.cache && c->cache_max > 0 && (s = stmt_get(c, &q0, &fresh)) == NULL)
    return PQstatus(c->pg) == CONNECTION_BAD ? ACTIO_ECONN : ACTIO_ENOMEM;
  unit *u = unit_push(c, arg);
  if (u == NULL) {
    if (fresh)
      stmt_drop(c, s);
    return ACTIO_ENOMEM;
  }
  u->each = each;
  u->n = n;
  u->stage = fresh ? ST_PREP : ST_QUERY;
  if (s != NULL) {
    s->refs++;
    u->prep = s;
    u->preparing = fresh;
  }
  int ok = !fresh || PQsendPrepare(c->pg, s->name, q0.sql, q0.nparams,
                                   (const Oid *)q0.types);
  for (size_t i = 0; ok && i < n; i++) {
    if (i > 0)
      get(arg, i, &q);
    else
      q = q0;
    if (s != NULL && q.sql == q0.sql && q.nparams == q0.nparams)
      ok = PQsendQueryPrepared(c->pg, s->name, q.nparams, q.values, q.lengths,
                               q.formats, q.binary_results);
    else
      ok = PQsendQueryParams(c->pg, q.sql, q.nparams, (const Oid *)q.types,
                             q.values, q.lengths, q.formats, q.binary_results);
  }
  /* One Sync for them all: the server runs the statements up to it as one
   * implicit transaction, and an error skips the rest and rolls back. */
  if (ok)
    ok = PQpipelineSync(c->pg);
  if (!ok) {
    if (fresh)
      stmt_drop(c, s);
    unit_unpush(c);
    return ACTIO_ECONN;
  }
  c->want_write = PQflush(c->pg) == 1;
  return 0;
}

/* Leaves pipeline mode (nothing may be in flight) for a unit of the
 * simple kind, pushed in *u; pipeline mode comes back once it ends. 0,
 * ACTIO_ESTATE or ACTIO_ENOMEM. */
static int simple_push(actio__pg_conn *c, void *arg, unit **u) {
  if (c->inflight > 0 || PQexitPipelineMode(c->pg) != 1)
    return ACTIO_ESTATE;
  if ((*u = unit_push(c, arg)) == NULL) {
    PQenterPipelineMode(c->pg);
    return ACTIO_ENOMEM;
  }
  (*u)->simple = 1;
  return 0;
}

int actio__pg_conn_send_stream(actio__pg_conn *c, const actio__pg_query *q,
                               size_t chunk, void *arg) {
  unit *u;
  int rc = simple_push(c, arg, &u);
  if (rc != 0)
    return rc;
  u->stage = ST_ROWS;
  int ok = PQsendQueryParams(c->pg, q->sql, q->nparams, (const Oid *)q->types,
                             q->values, q->lengths, q->formats, q->binary_results);
#ifdef LIBPQ_HAS_CHUNK_MODE
  ok = ok && PQsetChunkedRowsMode(c->pg, chunk > 1 ? (int)chunk : 1);
#else
  (void)chunk;
  ok = ok && PQsetSingleRowMode(c->pg);
#endif
  if (!ok) {
    unit_unpush(c);
    PQenterPipelineMode(c->pg);
    return ACTIO_ECONN;
  }
  c->want_write = PQflush(c->pg) == 1;
  return 0;
}

int actio__pg_conn_stream_get(actio__pg_conn *c, actio__pg_result **rows) {
  unit *u = c->head;
  if (u == NULL || u->stage != ST_ROWS)
    return ACTIO_EEOF;
  if (PQisBusy(c->pg))
    return 0;
  PGresult *res = PQgetResult(c->pg);
  ExecStatusType st = PQresultStatus(res);
#ifdef LIBPQ_HAS_CHUNK_MODE
  if (st == PGRES_TUPLES_CHUNK) {
#else
  if (st == PGRES_SINGLE_TUPLE) {
#endif
    *rows = actio__pg_wrap(res);
    return PQntuples(res);
  }
  /* The end (its tag, or the error): the unit keeps it, and the NULL
   * after it ends the unit in actio__pg_conn_input. */
  u->stage = ST_QUERY;
  if (res != NULL)
    keep(u, res);
  return ACTIO_EEOF;
}

int actio__pg_conn_in_rows(const actio__pg_conn *c) {
  return c->head != NULL && c->head->stage == ST_ROWS;
}

int actio__pg_conn_send_simple(actio__pg_conn *c, const char *sql, int copy,
                               void *arg) {
  unit *u;
  int rc = simple_push(c, arg, &u);
  if (rc != 0)
    return rc;
  u->copy = copy;
  u->stage = ST_QUERY;
  if (!PQsendQuery(c->pg, sql)) {
    unit_unpush(c);
    return ACTIO_ECONN;
  }
  c->want_write = PQflush(c->pg) == 1;
  return 0;
}

void actio__pg_conn_copy_done(actio__pg_conn *c) {
  if (c->head != NULL && c->head->stage == ST_COPY)
    c->head->stage = ST_QUERY;
}

void actio__pg_conn_cork(actio__pg_conn *c) {
  int on = 1;
  if (c->tcp && !c->corked &&
      setsockopt(PQsocket(c->pg), IPPROTO_TCP, TCP_CORK, &on, sizeof on) == 0)
    c->corked = 1;
}

int actio__pg_conn_uncork(actio__pg_conn *c) {
  int off = 0;
  if (c->corked) {
    c->corked = 0;
    /* Clearing the cork sends what it held, at once. */
    setsockopt(PQsocket(c->pg), IPPROTO_TCP, TCP_CORK, &off, sizeof off);
  }
  return actio__pg_conn_flush(c);
}

int actio__pg_conn_output_pending(const actio__pg_conn *c) {
  return c->want_write;
}

int actio__pg_conn_in_copy(const actio__pg_conn *c) {
  return c->head != NULL && c->head->stage == ST_COPY;
}

/* ---- results ---- */

/* The error code of a failed result (see actio__pg_error_code). */
static int result_code(const PGresult *res) {
  actio__pg_error e;
  actio__pg_error_read(actio__pg_wrap((PGresult *)res), &e);
  return actio__pg_error_code(&e);
}

/* Hands the head unit's outcome over and retires it. */
static void unit_end(actio__pg_conn *c, actio__pg_done_fn done, void *ctx) {
  unit *u = c->head;
  PGresult *res = u->res;
  int rc = u->rc;
  u->res = NULL;
  stmt *s = u->prep;
  if (s != NULL)
    s->refs++; /* its failed Parse may be the error we lend */
  int lent = u->use_failed;
  if (lent) {
    /* It used the name of a statement whose Parse failed in an earlier
     * unit: its own error ("does not exist") would only confuse. */
    PQclear(res);
    res = s->failed;
    rc = result_code(res);
  } else if (res == NULL && rc == 0) { /* e.g. a script of only comments */
    res = PQmakeEmptyPGresult(c->pg, PGRES_EMPTY_QUERY);
    if (res == NULL)
      rc = ACTIO_ENOMEM;
  }
  void *arg = u->arg;
  int simple = u->simple;
  unsigned long dealloc = u->dealloc;
  unit_pop(c);
  if (simple)
    PQenterPipelineMode(c->pg); /* idle now, so it cannot fail but on OOM */
  char msg[512];
  msg[0] = '\0'; /* not the whole buffer: this runs at every query */
  actio__pg_error err;
  int server = 0; /* err describes the server's error */
  if (rc == ACTIO_EINVAL) {
    snprintf(msg, sizeof msg, "a COPY runs only through actio_db_copy_in "
                              "and actio_db_copy_out");
  } else if (rc == ACTIO_ENOMEM) {
    snprintf(msg, sizeof msg, "%s", actio_strerror(rc));
  } else if (rc != 0) {
    actio__pg_error_read(actio__pg_wrap(res), &err);
    actio__pg_error_format(&err, msg, sizeof msg);
    server = rc == ACTIO_ESQL || rc == ACTIO_ERETRY;
  }
  /* A DEALLOCATE inside a failed transaction block: the server refused it
   * and keeps the statement; try again once the block is over. */
  if (dealloc != 0 && server && actio__pg_error_is(&err, "25P02")) {
    if (c->nstale < c->cache_max)
      c->stale[c->nstale++] = dealloc;
    else
      c->stale_all = 1;
  }
  if (arg != NULL)
    done(ctx, arg, rc, rc == 0 ? actio__pg_wrap(res) : NULL,
         server ? &err : NULL, msg);
  if ((rc != 0 || arg == NULL) && !lent) /* an error is only lent */
    PQclear(res);
  if (s != NULL)
    stmt_unref(s);
}

/* Keeps the first error of a unit; else its last result. */
static void keep(unit *u, PGresult *res) {
  ExecStatusType st = PQresultStatus(res);
  if (st == PGRES_PIPELINE_ABORTED) {
    PQclear(res); /* only after an error of this same unit */
    return;
  }
  if (st == PGRES_FATAL_ERROR || st == PGRES_NONFATAL_ERROR ||
      st == PGRES_BAD_RESPONSE) {
    if (u->rc == 0) {
      PQclear(u->res);
      u->res = res;
      u->rc = result_code(res);
      return;
    }
    if (u->rc == ACTIO_EINVAL && u->res == NULL) { /* the refused COPY's */
      u->res = res;
      return;
    }
  } else if (u->rc == 0) {
    PQclear(u->res);
    u->res = res;
    return;
  }
  PQclear(res);
}

/* One result (or NULL) for the head unit. */
static void on_result(actio__pg_conn *c, PGresult *res, actio__pg_done_fn done,
                      void *ctx) {
  unit *u = c->head;
  if (u->stage == ST_PREP) {
    if (res == NULL) {
      u->stage = ST_QUERY;
      return;
    }
    if (PQresultStatus(res) != PGRES_COMMAND_OK && u->prep == NULL) {
      keep(u, res); /* a caller's named statement: its Parse's error */
    } else if (PQresultStatus(res) != PGRES_COMMAND_OK) {
      /* The Parse failed: the statement never existed; units that already
       * use its name will report this error too. */
      stmt *s = u->prep;
      stmt_drop(c, s);
      keep(u, res);
      s->failed = u->res; /* the unit's error, lent to those that follow */
      u->res = NULL;
      u->use_failed = 1;
    } else {
      PQclear(res);
      if (u->parsed != NULL) /* a caller's named statement: there now */
        *u->parsed = 1;
    }
    return;
  }
  if (res == NULL) {
    if (u->simple)
      unit_end(c, done, ctx);
    else if (u->stage == ST_QUERY && ++u->index >= u->n)
      u->stage = ST_SYNC; /* a batch's last statement, or the only one */
    return;
  }
  ExecStatusType st = PQresultStatus(res);
  if (st == PGRES_PIPELINE_SYNC) {
    PQclear(res);
    if (!u->preparing)
      u->use_failed = u->prep != NULL && u->prep->failed != NULL;
    unit_end(c, done, ctx);
    return;
  }
  if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT) {
    PQclear(res);
    if (u->copy) {
      u->stage = ST_COPY;
      done(ctx, u->arg, st == PGRES_COPY_IN ? ACTIO__PG_COPY_IN : ACTIO__PG_COPY_OUT,
           NULL, NULL, "");
      return;
    }
    /* A COPY sent as a plain query: nobody would feed or read it. End it
     * here (refused, or its rows drained) and fail the unit. */
    u->rc = ACTIO_EINVAL;
    if (st == PGRES_COPY_IN) {
      PQputCopyEnd(c->pg, "COPY runs only through actio_db_copy_in");
      c->want_write = PQflush(c->pg) == 1;
    } else {
      u->stage = ST_DRAIN;
    }
    return;
  }
  /* A cached plan the server no longer accepts (its table changed, or a
   * DISCARD ALL dropped it): forget it, so the next use prepares again. */
  if (st == PGRES_FATAL_ERROR && u->prep != NULL && !u->preparing) {
    actio__pg_error e;
    actio__pg_error_read(actio__pg_wrap(res), &e);
    if (actio__pg_error_is(&e, "0A000") || actio__pg_error_is(&e, "26000"))
      stmt_drop(c, u->prep);
  }
  /* A named Parse's own result: the statement exists on the server from
   * now on, whatever becomes of its Describe. */
  if (u->parsed != NULL && u->index == 0 && st == PGRES_COMMAND_OK)
    *u->parsed = 1;
  if (u->each != NULL && u->stage == ST_QUERY) { /* a batch's statement */
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK ||
        st == PGRES_EMPTY_QUERY) {
      u->each(u->arg, u->index, actio__pg_wrap(res));
      return;
    }
    if (u->rc == 0 && st != PGRES_PIPELINE_ABORTED)
      u->each(u->arg, u->index, NULL); /* the first to fail */
  }
  keep(u, res);
}

/* Reads and drops the rows of a COPY TO nobody asked for. */
static void drain(actio__pg_conn *c) {
  char *row;
  int n;
  while ((n = PQgetCopyData(c->pg, &row, 1)) > 0)
    PQfreemem(row);
  if (n < 0)
    c->head->stage = ST_QUERY; /* done (or broken: the result says which) */
}

int actio__pg_conn_input(actio__pg_conn *c, actio__pg_done_fn done, void *ctx) {
  if (c->want_write && actio__pg_conn_flush(c) != 0)
    return ACTIO_ECONN;
  if (!PQconsumeInput(c->pg))
    return ACTIO_ECONN;
  while (c->head != NULL && c->head->stage != ST_COPY && c->head->stage != ST_ROWS) {
    if (c->head->stage == ST_DRAIN) {
      drain(c);
      if (c->head->stage == ST_DRAIN)
        break; /* more rows to come */
      continue;
    }
    if (PQisBusy(c->pg))
      break;
    on_result(c, PQgetResult(c->pg), done, ctx);
  }
  if (PQstatus(c->pg) == CONNECTION_BAD)
    return ACTIO_ECONN;
  stale_send(c);
  return 0;
}

int actio__pg_conn_flush(actio__pg_conn *c) {
  int rc = PQflush(c->pg);
  c->want_write = rc == 1;
  return rc < 0 ? ACTIO_ECONN : 0;
}

void actio__pg_conn_destroy(actio__pg_conn *c, actio__pg_done_fn done,
                            void *ctx, const char *msg) {
  if (c == NULL)
    return;
  while (c->head != NULL) {
    void *arg = c->head->arg;
    unit_pop(c);
    if (arg != NULL)
      done(ctx, arg, ACTIO_ECONN, NULL, NULL, msg);
  }
  while (c->lru != NULL)
    stmt_drop(c, c->lru);
  for (unit *u = c->spare, *next; u != NULL; u = next) {
    next = u->next;
    free(u);
  }
  PQfinish(c->pg);
  free(c->stale);
  free(c->table);
  free(c);
}

int actio__pg_conn_fd(const actio__pg_conn *c) { return PQsocket(c->pg); }

short actio__pg_conn_events(const actio__pg_conn *c) {
  if (c->connecting)
    return c->poll == PGRES_POLLING_READING ? POLLIN : POLLOUT;
  return (short)(POLLIN | (c->want_write ? POLLOUT : 0));
}

size_t actio__pg_conn_inflight(const actio__pg_conn *c) { return c->inflight; }

void *actio__pg_conn_head(const actio__pg_conn *c) {
  return c->head ? c->head->arg : NULL;
}

PGconn *actio__pg_conn_libpq(const actio__pg_conn *c) { return c->pg; }

int actio__pg_conn_backend_pid(const actio__pg_conn *c) { return PQbackendPID(c->pg); }

int actio__pg_conn_server_version(const actio__pg_conn *c) {
  return PQserverVersion(c->pg);
}

void actio__pg_conn_forget_statements(actio__pg_conn *c) {
  while (c->lru != NULL)
    stmt_drop(c, c->lru); /* no unit holds one: nothing is in flight */
  c->nstale = 0;
  c->stale_all = 0;
}

int actio__pg_conn_txn_idle(const actio__pg_conn *c) {
  /* ACTIVE: units pipelined behind are running; the last ReadyForQuery
   * said idle, or libpq would report INTRANS or INERROR. */
  PGTransactionStatusType st = PQtransactionStatus(c->pg);
  return st == PQTRANS_IDLE || st == PQTRANS_ACTIVE;
}

/* ---- COPY data and notifications ---- */

/* PQputCopyData and PQputCopyEnd: 1 taken, 0 buffer full, -1 broken. */
static int put_rc(int rc) {
  return rc == 1 ? 0 : rc == 0 ? ACTIO_EAGAIN : ACTIO_ECONN;
}

int actio__pg_conn_copy_put(actio__pg_conn *c, const void *data, size_t len) {
  return put_rc(PQputCopyData(c->pg, data, (int)len));
}

int actio__pg_conn_copy_end(actio__pg_conn *c, const char *error) {
  return put_rc(PQputCopyEnd(c->pg, error));
}

int actio__pg_conn_copy_get(actio__pg_conn *c, char **row) {
  int n = PQgetCopyData(c->pg, row, 1);
  if (n >= 0)
    return n;
  return n == -1 ? ACTIO_EEOF : ACTIO_ECONN;
}

void actio__pg_copy_row_free(char *row) { PQfreemem(row); }

void actio__pg_conn_notifications(actio__pg_conn *c,
                                  void (*fn)(void *arg,
                                             const actio__pg_notification *n),
                                  void *arg) {
  PGnotify *n;
  while ((n = PQnotifies(c->pg)) != NULL) {
    actio__pg_notification note = {n->relname, n->extra ? n->extra : "", n->be_pid};
    fn(arg, &note);
    PQfreemem(n);
  }
}

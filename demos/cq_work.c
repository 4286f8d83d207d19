/* cq_work.c: the pages and queries the completion-queue demos start, and
 * what they print as each completes (cq_work.h). */
#include <stdio.h>

#include "cq_work.h"

/* A tag says what completed: the kind in the high half, the index below. */
enum { PAGE = 1, QUERY = 2 };
#define TAG(kind, i) ((uint64_t)(kind) << 32 | (uint32_t)(i))

static const struct {
  const char *what, *sql;
  int nparams;
  const char *params[2];
} queries[] = {
    {"6 * 7", "SELECT $1::int * $2::int", 2, {"6", "7"}},
    {"rows in 1..1000", "SELECT count(*) FROM generate_series(1, $1::int)", 1, {"1000"}},
    {"a slow one", "SELECT 'slept ' || $1 || ' s' FROM pg_sleep($1::float8)", 1, {"0.2"}},
    {"1 / 0", "SELECT 1 / $1::int", 1, {"0"}},
};
enum { NQUERIES = sizeof queries / sizeof queries[0] };

int cq_work_start(cq_work *w, int argc, char **argv) {
  *w = (cq_work){0};
  if (argc < 2) {
    fprintf(stderr, "usage: %s DSN [URL...]\n", argv[0]);
    return 1;
  }
  actio_db_opts dbo = {.dsn = argv[1], .max_connections = 2};
  actio_http_opts ho = {.timeout_ms = 10000};
  int rc;
  if ((rc = actio_runtime_create(&w->rt, NULL)) != 0 ||
      (rc = actio_http_spawn(w->rt, &ho, &w->http)) != 0 ||
      (rc = actio_db_spawn(w->rt, &dbo, &w->db)) != 0 || (rc = actio_cq_create(&w->cq)) != 0) {
    fprintf(stderr, "start: %s\n", actio_strerror(rc));
    return 1;
  }
  /* Start everything, register each future with its tag, and let go of our
   * reference: the queue holds one until the loop drains it. */
  for (int i = 2; i < argc; i++) {
    actio_future *f;
    if ((rc = actio_http_get(w->http, argv[i], &f)) != 0 ||
        (rc = actio_cq_add(w->cq, f, TAG(PAGE, w->pages))) != 0) {
      fprintf(stderr, "GET %s: %s\n", argv[i], actio_strerror(rc));
      return 1;
    }
    actio_future_unref(f);
    w->pages++;
  }
  for (int i = 0; i < NQUERIES; i++) {
    actio_future *f;
    if ((rc = actio_db_query(w->db, queries[i].sql, queries[i].nparams, queries[i].params, &f)) != 0 ||
        (rc = actio_cq_add(w->cq, f, TAG(QUERY, i))) != 0) {
      fprintf(stderr, "query %d: %s\n", i, actio_strerror(rc));
      return 1;
    }
    actio_future_unref(f);
    w->queries++;
  }
  w->in_flight = w->pages + w->queries;
  printf("started %d pages and %d queries\n", w->pages, w->queries);
  return 0;
}

/* One completion, on the loop's thread. */
static void report(uint64_t tag, actio_future *f) {
  unsigned i = (uint32_t)tag;
  int st = actio_future_status(f);
  if (tag >> 32 == PAGE) {
    if (st == 0) {
      const actio_http_response *r = actio_future_value(f);
      printf("page %u: %ld, %zu bytes\n", i, r->status, r->body_len);
    } else {
      printf("page %u: failed (%s): %s\n", i, actio_err_name(st), actio_future_errmsg(f));
    }
    return;
  }
  const char *text;
  if (st == 0 && actio_db_text(actio_future_value(f), 0, 0, &text) == 0) {
    printf("query %u (%s): %s\n", i, queries[i].what, text);
  } else {
    const actio_db_error *e = actio_db_error_get(f);
    printf("query %u (%s): failed (%s), SQLSTATE %s: %s\n", i, queries[i].what,
           actio_err_name(st), e ? e->sqlstate : "-", e ? e->message : actio_future_errmsg(f));
  }
}

void cq_work_drain(cq_work *w) {
  actio_cq_event ev[16];
  int n;
  /* Fewer than asked: the queue is empty and its descriptor reset. */
  do {
    n = actio_cq_drain(w->cq, ev, 16);
    for (int i = 0; i < n; i++) {
      report(ev[i].tag, ev[i].future);
      actio_future_unref(ev[i].future); /* the queue's reference, handed to us */
      w->in_flight--;
    }
  } while (n == 16);
  fflush(stdout);
}

void cq_work_tick(cq_work *w) {
  w->ticks++;
  printf("tick %d (%d in flight)\n", w->ticks, w->in_flight);
  fflush(stdout);
}

int cq_work_finished(const cq_work *w) { return w->in_flight == 0 && w->ticks >= MIN_TICKS; }

int cq_work_end(cq_work *w) {
  int status = w->in_flight == 0 ? 0 : 1;
  printf("done: %d pages and %d queries completed, the loop ticked %d times\n",
         w->pages, w->queries, w->ticks);
  actio_cq_destroy(w->cq); /* after the loop let go of its descriptor */
  actio_runtime_destroy(w->rt);
  return status;
}

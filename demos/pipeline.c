/* pipeline.c: the main demo: fetch a list of URLs concurrently, save each
 * body to a file, record each URL in PostgreSQL, print a summary. What a
 * Python program would write with aiohttp, aiofiles, asyncpg and
 * asyncio.gather under a Semaphore:
 *
 *   async def one(line, url):
 *       async with sem:
 *           try:
 *               async with session.get(url, timeout=t) as r:
 *                   body = await r.read()
 *               digest = sha256(body) if len(body) <= 65536 else \
 *                   await loop.run_in_executor(pool, sha256, body)
 *               async with aiofiles.open(path, "wb") as f: await f.write(body)
 *           except Exception as e: error = str(e)
 *           await db.execute("INSERT ...", run, line, url, ...)   # retried
 *   await asyncio.gather(*(one(i, u) for i, u in enumerate(urls)))
 *
 * Here each URL is one chain of futures, fetch -> hash -> save -> record
 * (actio_future_then; actio_future_catch is the except), and actio_map runs
 * the chains with at most --concurrency of them in flight. A body of up to
 * 64 KiB is hashed on the HTTP worker that fetched it, a larger one on the
 * hasher's pool. The record step
 * hands its row to a batcher (actio_batcher_add): rows go to the server in
 * batches, each one actio_db_executemany, so one transaction. A row goes
 * at once when no batch is in flight, and the rows that come while one is
 * go together as the next (group commit: up to 64 rows, at most 5 ms
 * behind), so no row waits for a batch to fill; the rows of the files
 * made durable together (one group of actio_file_write_durable) reach the
 * batcher as one burst and go as one batch. A row goes only once its
 * file is durable, so every row committed names a file that is there, with
 * its size and SHA-256.
 *
 *   actio-pipeline --dsn DSN --out DIR [--concurrency N] [--timeout MS]
 *                  [--retries N] [--run-id ID] URLS|-
 *
 * URLS is a file with one URL a line ("-": standard input); blank lines and
 * lines starting with '#' are skipped. Each URL gets one row in the table
 * actio_pipeline (made if missing; see CREATE_TABLE) keyed by (run_id,
 * line), and a URL answered with a status below 400 gets its body saved as
 * DIR/<line>.body (line numbers, never names from the URL), written
 * atomically. A bad URL, a DNS failure, a timeout or a 4xx/5xx is a row
 * with its status (0 when there was no response) and an error text. A
 * password or token in a URL never reaches the table or the output: both
 * show URLs as actio_http_redact_url writes them ("user:***@",
 * "token=***"), as the library's error texts do; the line number leads
 * back to the URL as listed.
 *
 * Run again with the same --run-id (after a crash, say), it skips the lines
 * already recorded under it and does the rest: no line gets two rows. Files
 * left half-written by a killed run are removed first.
 *
 * Exit status: 0 when every URL was recorded, whether it was fetched or
 * failed; 1 when a row could not be recorded (after retries: the summary
 * lists those URLs) or the table could not be made; 2 on bad usage.
 *
 * For a soak (scripts/soak.sh), one long-lived process can run the list
 * again and again: --rounds N and/or --duration SECONDS (a round started
 * before the time is up runs to its end). Round K's rows have the run_id
 * "<run-id>-K"; each round prints the lines it could not record
 * ("  round K not recorded: line L URL: why") and then
 * "round K: N URLs, R recorded, U not recorded, F failed, S s" (F: fetched
 * or saved with an error, recorded or not), and the run ends with a
 * "rounds:" total instead of the summary. --samples FILE has a thread write
 * a line a second: seconds since the start, Unix time, RSS in KiB, open
 * descriptors, threads, rounds done, then depth, waiting, running and in
 * flight of each actor (http, db, files, hasher), then the heap in use and
 * the heap held, in KiB (glibc's mallinfo2; -1 elsewhere); the first line,
 * starting with '#', names the columns. --stages prints after the summary
 * how long the recorded URLs spent in each step (fetch, hash, save, record:
 * median, p90 and p99, in ms): where a URL's time goes. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <actio.h>

#include "stages.h"

#ifdef __GLIBC__
#include <malloc.h> /* mallinfo2, for --samples; mallopt */
#endif

/* hash is the SHA-256 of the body as saved, in hex. */
static const char CREATE_TABLE[] =
    "CREATE TABLE IF NOT EXISTS actio_pipeline (\n"
    "  run_id text NOT NULL,\n"
    "  line int NOT NULL,                  -- line of the URL in the list\n"
    "  url text NOT NULL,                  -- its secrets masked\n"
    "  status int NOT NULL,                -- HTTP status; 0: no response\n"
    "  bytes bigint NOT NULL,              -- body length\n"
    "  hash text,                          -- SHA-256 of the body (hex), when saved\n"
    "  latency_ms double precision NOT NULL,\n"
    "  error text,                         -- NULL when fetched and saved\n"
    "  file text,                          -- where the body was saved\n"
    "  fetched_at timestamptz NOT NULL DEFAULT now(),\n"
    "  PRIMARY KEY (run_id, line))";

/* ON CONFLICT: an INSERT that failed with a lost connection may have run
 * anyway; its retry must not make a second row. */
static const char INSERT_ROW[] =
    "INSERT INTO actio_pipeline (run_id, line, url, status, bytes, hash, latency_ms, error, file)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (run_id, line) DO NOTHING";

enum { INLINE_HASH_MAX = 64 << 10 }; /* bodies hashed where they were fetched */

enum { DB_ATTEMPTS = 10 }; /* inserts: 50 ms backoff, doubling, at most 1 s */

/* One URL and everything learnt about it. Each step of its chain writes
 * here and the next step reads it: a future's completion orders them. */
typedef struct job {
  size_t line;
  char *url;
  char *shown;      /* the URL for the table and the output: secrets masked */
  double start_ms, latency_ms;
  actio_future *fetch, *save, *insert; /* the running step's own future */
  long status;
  size_t bytes;
  char hash[65];
  char *file;       /* set once saved */
  char *error;      /* why it failed, NULL if fetched and saved */
  int db_attempts;
  char *db_error;   /* set when the row could not be recorded */
  int recorded;
  char text[4][32];   /* line, status, bytes, latency: the row's numbers */
  const char *params[9]; /* the row, as executemany reads it */
  double at[4];       /* when fetched, hashed, saved and recorded (--stages) */
} job;

typedef struct pipeline {
  actio_runtime *rt;
  actio_actor *http, *files, *db, *hasher;
  actio_batcher *rows; /* rows to record, in batches */
  const char *out, *run_id;
  long timeout_ms;
  int retries;
  job *jobs;
  size_t n;
  size_t skipped;   /* lines recorded by an earlier run of this run_id */
  atomic_size_t done, failed, db_retries;
  atomic_uint_least64_t bytes;
} pipeline;

static pipeline P;

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* A formatted string, malloc'd (NULL when out of memory). */
__attribute__((format(printf, 1, 2))) static char *str_printf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int len = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *s = len < 0 ? NULL : malloc((size_t)len + 1);
  if (s) {
    va_start(ap, fmt);
    vsnprintf(s, (size_t)len + 1, fmt, ap);
    va_end(ap);
  }
  return s;
}

/* asyncio.sleep(ms) as a future: a future nobody completes, with a
 * deadline; settled, so the deadline's ETIMEDOUT becomes a plain wake-up. */
static int sleep_ms(int64_t ms, actio_future **out) {
  actio_future *t = NULL;
  int rc = actio_future_create(&t);
  if (rc == 0 && (rc = actio_future_set_deadline(P.rt, t, ms)) == 0)
    rc = settled(t, out);
  actio_future_unref(t);
  return rc;
}

/* ---- the hasher: a custom actor, loop.run_in_executor(pool, sha256) ----
 * Hashing a large body takes milliseconds; on a pool of its own it never
 * holds up the HTTP workers' event loops. Small ones skip it (step_hash). */
static int hash_body(actio_actor *self, void *worker, void *msg, actio_future *reply) {
  (void)self;
  (void)worker;
  job *j = msg;
  const actio_http_response *r = actio_future_value(j->fetch);
  if (sha256_hex(r->body, r->body_len, j->hash) != 0)
    return actio_future_fail(reply, ACTIO_ENOMEM, "sha256 of %s failed", j->shown);
  return actio_future_resolve(reply, NULL, NULL);
}
static const actio_behavior hasher = {.handle = hash_body};

/* ---- the steps of one URL ---- */

static int insert_row(job *j, actio_future **next);

/* Step 2, after the fetch: note the outcome; hash a body worth saving. */
static int step_hash(actio_future *prev, void *arg, actio_future **next) {
  (void)prev;
  job *j = arg;
  j->at[0] = now_ms();
  j->latency_ms = j->at[0] - j->start_ms;
  int st = actio_future_status(j->fetch);
  if (st != 0) { /* bad URL, DNS, refused, timeout, dropped... */
    const char *msg = actio_future_errmsg(j->fetch);
    j->error = str_printf("%s: %s", actio_err_name(st), msg ? msg : actio_strerror(st));
    return 0; /* *next NULL: on to the next step */
  }
  const actio_http_response *r = actio_future_value(j->fetch);
  j->status = r->status;
  j->bytes = r->body_len;
  if (r->status >= 400) {
    j->error = str_printf("HTTP %ld", r->status);
    return 0;
  }
  /* A page hashes in microseconds, less than a hop to another thread costs
   * (and under load a hop waits for the scheduler): here, on the HTTP
   * worker. A large body goes to the hasher's pool, so that it never holds
   * up the worker's transfers for milliseconds. */
  if (r->body_len <= INLINE_HASH_MAX) {
    if (sha256_hex(r->body, r->body_len, j->hash) != 0)
      j->error = str_printf("sha256 of %s failed", j->shown);
    return 0;
  }
  return actio_ask(P.hasher, j, -1, next);
}

/* Writes the body to path durably: resolved once it is on disk under its
 * name. A temporary file beside it, fsynced, then group commit: the files
 * that arrive together are renamed and share one fsync of the folder. */
static int save_durably(const char *path, const actio_http_response *r, actio_future **out) {
  return actio_file_write_durable(P.files, path, r->body, r->body_len, out);
}

/* Step 3: save the body durably. */
static int step_save(actio_future *prev, void *arg, actio_future **next) {
  (void)prev;
  job *j = arg;
  j->at[1] = now_ms();
  if (j->error)
    return 0;
  char path[4096];
  snprintf(path, sizeof path, "%s/%06zu.body", P.out, j->line);
  int rc = save_durably(path, actio_future_value(j->fetch), &j->save);
  if (rc != 0)
    return rc;
  j->file = strdup(path);
  return settled(j->save, next);
}

/* Step 4: note how the save went, drop the body, record the row. */
static int step_record(actio_future *prev, void *arg, actio_future **next) {
  (void)prev;
  job *j = arg;
  j->at[2] = now_ms();
  if (j->save) {
    int st = actio_future_status(j->save);
    if (st != 0) {
      j->error = str_printf("save: %s", actio_future_errmsg(j->save));
      free(j->file);
      j->file = NULL;
      j->hash[0] = '\0';
    }
    actio_future_unref(j->save);
    j->save = NULL;
  }
  /* The body was copied by the write: free it now rather than with the
   * future, which the deadline timer may hold a while longer. */
  actio_http_response_free(actio_future_take(j->fetch));
  actio_future_unref(j->fetch);
  j->fetch = NULL;
  return insert_row(j, next);
}

/* Errors worth another try: the connection was lost or refused, the
 * server is shutting down or starting up (SQLSTATE class 57 and 08). */
static int retryable(actio_future *f) {
  int st = actio_future_status(f);
  if (st == ACTIO_ECONN || st == ACTIO_ETIMEDOUT || st == ACTIO_EAGAIN)
    return 1;
  const actio_db_error *e = actio_db_error_get(f);
  return e && e->sqlstate &&
         (strncmp(e->sqlstate, "57", 2) == 0 || strncmp(e->sqlstate, "08", 2) == 0);
}

static void finish(job *j) {
  if (j->error || !j->recorded)
    atomic_fetch_add_explicit(&P.failed, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&P.bytes, j->bytes, memory_order_relaxed);
  atomic_fetch_add_explicit(&P.done, 1, memory_order_relaxed);
}

static int retry_insert(actio_future *prev, void *arg, actio_future **next) {
  (void)prev;
  return insert_row(arg, next);
}

/* After an INSERT: done, or wait and send it again, or give up. */
static int step_inserted(actio_future *prev, void *arg, actio_future **next) {
  (void)prev;
  job *j = arg;
  actio_future *q = j->insert;
  j->insert = NULL;
  int st = actio_future_status(q);
  int rc = 0;
  if (st == 0) {
    j->at[3] = now_ms();
    j->recorded = 1; /* "INSERT 0 0" too: an earlier try got through */
    finish(j);
  } else if (actio_future_status(q) == ACTIO_EAGAIN && j->db_attempts < DB_ATTEMPTS) {
    rc = insert_row(j, next); /* its batch was rolled back for another row */
  } else if (retryable(q) && j->db_attempts < DB_ATTEMPTS) {
    atomic_fetch_add_explicit(&P.db_retries, 1, memory_order_relaxed);
    int64_t wait = 50LL << (j->db_attempts - 1);
    wait = (wait > 1000 ? 1000 : wait) + (int64_t)(j->line * 7919 % 50); /* jitter */
    actio_future *z;
    if ((rc = sleep_ms(wait, &z)) == 0) {
      rc = actio_future_then(z, retry_insert, j, next);
      actio_future_unref(z);
    }
  } else {
    free(j->db_error);
    const char *msg = actio_future_errmsg(q);
    j->db_error = str_printf("%s: %s", actio_err_name(st), msg ? msg : "");
    finish(j);
  }
  actio_future_unref(q);
  return rc;
}

/* Row i of a batch of jobs, as executemany's text parameters (made by
 * insert_row; read until the call returns). */
static const char *const *row_params(void *arg, size_t i) {
  job *j = actio_batch_item(arg, i);
  return j->params;
}

/* A batch refused for one row (a constraint, bad text): that row fails
 * with the server's error, the others with ACTIO_EAGAIN, to be sent again
 * in another batch. */
static int batch_failed(actio_future *f, void *arg, actio_future **next) {
  (void)next;
  actio_batch *batch = arg;
  long bad = actio_db_batch_index(f);
  if (bad < 0 || (size_t)bad >= actio_batch_count(batch))
    return 0; /* the whole batch failed: every row takes its error */
  for (size_t i = 0; i < actio_batch_count(batch); i++)
    if (i == (size_t)bad)
      actio_batch_fail_item(batch, i, actio_future_status(f), "%s", actio_future_errmsg(f));
    else
      actio_batch_fail_item(batch, i, ACTIO_EAGAIN, "rolled back with row %ld", bad);
  return 0;
}

/* The batcher's call: one executemany, one transaction, for the batch. */
static int insert_batch(actio_batch *batch, void *arg, actio_future **out) {
  (void)arg;
  actio_future *f;
  int rc = actio_db_executemany_fn(P.db, INSERT_ROW, 9, actio_batch_count(batch), row_params,
                                   batch, &f);
  if (rc != 0)
    return rc;
  rc = actio_future_set_deadline(P.rt, f, 10000); /* then retried */
  if (rc == 0)
    rc = actio_future_catch(f, batch_failed, batch, out);
  actio_future_unref(f);
  return rc;
}

/* Queues the job's row for the next batch. */
static int insert_row(job *j, actio_future **next) {
  snprintf(j->text[0], sizeof j->text[0], "%zu", j->line);
  snprintf(j->text[1], sizeof j->text[1], "%ld", j->status);
  snprintf(j->text[2], sizeof j->text[2], "%zu", j->bytes);
  snprintf(j->text[3], sizeof j->text[3], "%.3f", j->latency_ms);
  const char *p[] = {P.run_id,   j->text[0], j->shown, j->text[1], j->text[2],
                     j->hash[0] ? j->hash : NULL, j->text[3], j->error, j->file};
  memcpy(j->params, p, sizeof p);
  j->db_attempts++;
  int rc = actio_batcher_add(P.rows, j, ACTIO_BATCH_WAIT, &j->insert);
  if (rc != 0) /* e.g. ACTIO_ECLOSED: fail this try like any other */
    rc = actio_future_failed(&j->insert, rc, "insert: %s", actio_strerror(rc));
  actio_future *s;
  if (rc == 0 && (rc = settled(j->insert, &s)) == 0) {
    rc = actio_future_then(s, step_inserted, j, next);
    actio_future_unref(s);
  }
  return rc;
}

/* Starts URL i for actio_map: the whole chain at once, as futures. */
static int start_url(size_t i, void *arg, actio_future **out) {
  (void)arg;
  job *j = &P.jobs[i];
  j->start_ms = now_ms();
  actio_http_request req = {.url = j->url, .timeout_ms = P.timeout_ms,
                            .retries = P.retries, .retry_backoff_ms = 100};
  int rc = actio_http_send(P.http, &req, &j->fetch);
  if (rc == 0) /* the deadline bounds it all: queue, attempts, retry waits */
    rc = actio_future_set_deadline(P.rt, j->fetch, P.timeout_ms);
  else
    rc = actio_future_failed(&j->fetch, rc, "GET %s: %s", j->shown, actio_strerror(rc));
  actio_future *fetched, *hashed, *saved;
  if (rc != 0 || (rc = settled(j->fetch, &fetched)) != 0)
    return rc;
  rc = actio_future_then(fetched, step_hash, j, &hashed);
  actio_future_unref(fetched);
  if (rc != 0)
    return rc;
  rc = actio_future_then(hashed, step_save, j, &saved);
  actio_future_unref(hashed);
  if (rc != 0)
    return rc;
  rc = actio_future_then(saved, step_record, j, out);
  actio_future_unref(saved);
  return rc;
}

/* ---- reading the list, progress, summary ---- */

typedef struct list {
  job *jobs;
  size_t n, cap, lines;
} list;

/* url as the table and the output show it: its password and tokens
 * masked. NULL when out of memory. */
static char *masked(const char *url) {
  int n = actio_http_redact_url(P.http, url, NULL, 0);
  char *s = n < 0 ? NULL : malloc((size_t)n + 1);
  if (s)
    actio_http_redact_url(P.http, url, s, (size_t)n + 1);
  return s;
}

/* Called on a file worker with the next lines of the list, in order. */
static int add_lines(void *arg, const actio_line *lines, size_t n) {
  list *l = arg;
  for (size_t i = 0; i < n; i++) {
    l->lines++;
    const char *s = lines[i].data, *e = s + lines[i].len;
    while (s < e && (*s == ' ' || *s == '\t'))
      s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
      e--;
    if (s == e || *s == '#')
      continue;
    if (l->n == l->cap) {
      size_t cap = l->cap ? 2 * l->cap : 1024;
      job *jobs = realloc(l->jobs, cap * sizeof *jobs);
      if (!jobs)
        return ACTIO_ENOMEM;
      l->jobs = jobs;
      l->cap = cap;
    }
    job *j = memset(&l->jobs[l->n], 0, sizeof *j);
    j->line = l->lines;
    j->url = strndup(s, (size_t)(e - s));
    if (!j->url || !(j->shown = masked(j->url))) {
      free(j->url);
      return ACTIO_ENOMEM;
    }
    l->n++;
  }
  return 0;
}

static void progress(int tty, double t0, int last) {
  size_t done = atomic_load(&P.done), failed = atomic_load(&P.failed);
  double secs = (now_ms() - t0) / 1e3;
  double rate = secs > 0 ? (double)done / secs : 0;
  if (tty) { /* redrawn in place; a terminal only */
    enum { W = 30 };
    int fill = P.n ? (int)(W * done / P.n) : W;
    printf("\r[%.*s%*s] %zu/%zu  %3d%%  %zu failed  %.0f URLs/s ", fill,
           "##############################", W - fill, "", done, P.n,
           P.n ? (int)(100 * done / P.n) : 100, failed, rate);
    if (last)
      putchar('\n');
  } else {
    printf("progress: %zu/%zu done, %zu failed, %.1f s\n", done, P.n, failed, secs);
  }
  fflush(stdout);
}

/* ---- the soak mode: rounds of the list, samples of the process ---- */

typedef struct tally {
  size_t fetched, failed, unrecorded; /* failed: with an error or not recorded */
  size_t errors;                      /* fetched or saved with an error */
  uint64_t bytes;
} tally;

static tally count_jobs(void) {
  tally t = {0};
  for (size_t i = 0; i < P.n; i++) {
    const job *j = &P.jobs[i];
    t.bytes += j->bytes;
    if (!j->error && j->recorded)
      t.fetched++;
    else
      t.failed++;
    if (!j->recorded)
      t.unrecorded++;
    if (j->error)
      t.errors++;
  }
  return t;
}

/* Every URL not recorded, for whoever must retry them. */
static void print_unrecorded(const char *prefix) {
  for (size_t i = 0; i < P.n; i++)
    if (!P.jobs[i].recorded)
      printf("  %snot recorded: line %zu %s: %s\n", prefix, P.jobs[i].line, P.jobs[i].shown,
             P.jobs[i].db_error ? P.jobs[i].db_error
                                : "stopped before the record step (out of memory?)");
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* --stages: how long the recorded URLs spent in each step, from its
 * start (the fetch) or the previous step's end to its own end. The record
 * step counts the wait for a batch and the batch's transaction. */
static void print_stages(void) {
  static const char *const names[] = {"fetch", "hash", "save", "record", "all"};
  double *v = malloc((P.n ? P.n : 1) * sizeof *v);
  if (!v)
    return;
  printf("stages, ms (median p90 p99):");
  for (int s = 0; s < 5; s++) {
    size_t m = 0;
    for (size_t i = 0; i < P.n; i++) {
      const job *j = &P.jobs[i];
      if (j->recorded && j->at[3] > 0)
        v[m++] = s == 4   ? j->at[3] - j->start_ms
                 : s == 0 ? j->at[0] - j->start_ms
                          : j->at[s] - j->at[s - 1];
    }
    if (m == 0)
      break;
    qsort(v, m, sizeof *v, cmp_double);
    printf("%s %s %.2f %.2f %.2f", s ? "," : "", names[s], v[m / 2], v[m * 9 / 10],
           v[m * 99 / 100]);
  }
  putchar('\n');
  free(v);
}

static void free_job_texts(job *j) {
  free(j->file);
  free(j->error);
  free(j->db_error);
}

static atomic_size_t rounds_done; /* for the sampler */

/* Runs the list round after round, each under its own run_id, until
 * `rounds` (0: no limit) or `duration_s` (0: no limit) is reached. Returns
 * 0 when every round ran to its end, else -1 (a round that could not start
 * or whose chains did not all finish, e.g. out of memory, ends the rounds:
 * its jobs may still be in use, so they are not reset). Totals go to *sum. */
static int run_rounds(long rounds, long duration_s, long concurrency, tally *sum) {
  const char *base = P.run_id;
  double t0 = now_ms();
  int rc = 0;
  for (long k = 1; (rounds == 0 || k <= rounds) &&
                   (duration_s == 0 || now_ms() - t0 < 1e3 * (double)duration_s);
       k++) {
    for (size_t i = 0; i < P.n; i++) { /* the last round's outcome, not its URL */
      job *j = &P.jobs[i];
      free_job_texts(j);
      *j = (job){.line = j->line, .url = j->url, .shown = j->shown};
    }
    atomic_store_explicit(&P.done, 0, memory_order_relaxed);
    atomic_store_explicit(&P.failed, 0, memory_order_relaxed);
    char *id = str_printf("%s-%ld", base, k);
    actio_future *all = NULL;
    double r0 = now_ms();
    P.run_id = id;
    if (!id ||
        actio_map(P.n, (size_t)concurrency, start_url, NULL, ACTIO_GATHER_SETTLE_ALL, &all) != 0) {
      printf("round %ld: could not start\n", k);
      rc = -1;
    } else {
      actio_future_wait(all, -1);
      actio_future_unref(all);
      size_t done = atomic_load_explicit(&P.done, memory_order_relaxed);
      if (done != P.n) {
        printf("round %ld: stopped, %zu of %zu URLs finished\n", k, done, P.n);
        rc = -1;
      }
    }
    P.run_id = base;
    free(id);
    if (rc != 0)
      break;
    tally t = count_jobs();
    char prefix[48];
    snprintf(prefix, sizeof prefix, "round %ld ", k);
    print_unrecorded(prefix);
    printf("round %ld: %zu URLs, %zu recorded, %zu not recorded, %zu failed, %.2f s\n", k, P.n,
           P.n - t.unrecorded, t.unrecorded, t.errors, (now_ms() - r0) / 1e3);
    fflush(stdout);
    sum->unrecorded += t.unrecorded;
    sum->errors += t.errors;
    sum->bytes += t.bytes;
    atomic_fetch_add_explicit(&rounds_done, 1, memory_order_relaxed);
  }
  return rc;
}

/* Resident set in KiB: /proc/self/statm's second field, in pages. */
static long rss_kib(void) {
  long size = 0, resident = -1;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f) {
    if (fscanf(f, "%ld %ld", &size, &resident) != 2)
      resident = -1;
    fclose(f);
  }
  return resident < 0 ? -1 : resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Open descriptors, not counting the one that reads them. */
static long open_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  if (!d)
    return -1;
  long n = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;)
    n += e->d_name[0] != '.';
  closedir(d);
  return n - 1;
}

static long thread_count(void) {
  char line[256];
  long n = -1;
  FILE *f = fopen("/proc/self/status", "r");
  if (f) {
    while (fgets(line, sizeof line, f) && sscanf(line, "Threads: %ld", &n) != 1) {
    }
    fclose(f);
  }
  return n;
}

/* A thread that writes a line of figures to `out` once a second. */
typedef struct sampler {
  FILE *out;
  double t0;
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t wake; /* on CLOCK_MONOTONIC; signalled to stop */
  int stop;            /* under lock */
} sampler;

static void sample(sampler *s) {
  struct timespec wall;
  clock_gettime(CLOCK_REALTIME, &wall);
  fprintf(s->out, "%.3f %.3f %ld %ld %ld %zu", (now_ms() - s->t0) / 1e3,
          (double)wall.tv_sec + (double)wall.tv_nsec / 1e9, rss_kib(), open_fds(),
          thread_count(), atomic_load_explicit(&rounds_done, memory_order_relaxed));
  actio_actor *actors[] = {P.http, P.db, P.files, P.hasher};
  for (size_t i = 0; i < sizeof actors / sizeof *actors; i++) {
    actio_actor_metrics m;
    actio_actor_metrics_get(actors[i], &m);
    fprintf(s->out, " %zu %" PRIu64 " %" PRIu64 " %" PRIu64, m.stats.depth, m.waiting, m.running,
            m.in_flight);
  }
  /* The allocator's view tells a leak (in use grows) from its caches and
   * arenas filling up (RSS grows, in use does not). */
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
  struct mallinfo2 mi = mallinfo2();
  fprintf(s->out, " %zu %zu", mi.uordblks / 1024, (mi.arena + mi.hblkhd) / 1024);
#else
  fputs(" -1 -1", s->out);
#endif
  fputc('\n', s->out);
  fflush(s->out);
}

static void *sampler_main(void *arg) {
  sampler *s = arg;
  struct timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  pthread_mutex_lock(&s->lock);
  while (!s->stop) {
    pthread_mutex_unlock(&s->lock);
    sample(s);
    pthread_mutex_lock(&s->lock);
    next.tv_sec++;
    while (!s->stop && pthread_cond_timedwait(&s->wake, &s->lock, &next) != ETIMEDOUT) {
    }
  }
  pthread_mutex_unlock(&s->lock);
  return NULL;
}

/* Opens path and starts the sampler; 0, or an errno value. */
static int sampler_start(sampler *s, const char *path) {
  pthread_condattr_t attr;
  if (!(s->out = fopen(path, "w")))
    return errno;
  fprintf(s->out, "# elapsed_s unix_s rss_kib fds threads rounds");
  static const char *names[] = {"http", "db", "files", "hasher"};
  for (size_t i = 0; i < sizeof names / sizeof *names; i++)
    fprintf(s->out, " %s_depth %s_waiting %s_running %s_in_flight", names[i], names[i], names[i],
            names[i]);
  fprintf(s->out, " heap_used_kib heap_kib");
  fputc('\n', s->out);
  s->t0 = now_ms();
  s->stop = 0;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&s->wake, &attr);
  pthread_condattr_destroy(&attr);
  pthread_mutex_init(&s->lock, NULL);
  int rc = pthread_create(&s->thread, NULL, sampler_main, s);
  if (rc != 0) {
    pthread_cond_destroy(&s->wake);
    pthread_mutex_destroy(&s->lock);
    fclose(s->out);
    s->out = NULL;
  }
  return rc;
}

/* Stops and joins a started sampler, with a last line of figures. */
static void sampler_stop(sampler *s) {
  if (!s->out)
    return;
  pthread_mutex_lock(&s->lock);
  s->stop = 1;
  pthread_cond_signal(&s->wake);
  pthread_mutex_unlock(&s->lock);
  pthread_join(s->thread, NULL);
  sample(s);
  pthread_cond_destroy(&s->wake);
  pthread_mutex_destroy(&s->lock);
  fclose(s->out);
  s->out = NULL;
}

static int usage(const char *argv0) {
  fprintf(stderr,
          "usage: %s --dsn DSN --out DIR [--concurrency N] [--timeout MS] [--retries N]\n"
          "       [--run-id ID] [--rounds N] [--duration SECONDS] [--samples FILE]\n"
          "       [--stages] URLS\n"
          "  URLS           a file with one URL a line, or - for standard input\n"
          "  --dsn          PostgreSQL connection string (libpq); rows go to the\n"
          "                 table actio_pipeline, made if missing\n"
          "  --out          folder for the bodies, made if missing: <line>.body\n"
          "  --concurrency  URLs in flight at most (default 32)\n"
          "  --timeout      per URL, all attempts included, in ms (default 30000)\n"
          "  --retries      more HTTP attempts after a dropped connection or a\n"
          "                 429/502/503/504 (default 2)\n"
          "  --run-id       the rows' run_id (default: time and process id); run again\n"
          "                 with the same one, it skips the lines recorded already\n"
          "  --rounds       run the list N times in this process, round K under the\n"
          "                 run_id <run-id>-K, with a line per round (for a soak)\n"
          "  --duration     run rounds until SECONDS have passed (with --rounds:\n"
          "                 whichever comes first)\n"
          "  --samples      write a line a second to FILE: elapsed s, Unix time, RSS KiB,\n"
          "                 descriptors, threads, rounds done, and each actor's depth,\n"
          "                 waiting, running and in flight (http, db, files, hasher),\n"
          "                 heap in use and held KiB\n"
          "  --stages       after the summary, how long URLs spent in each step (fetch,\n"
          "                 hash, save, record; ms, median, p90, p99)\n",
          argv0);
  return 2;
}

/* A whole positive number up to max, else -1. */
static long number(const char *s, long max) {
  char *end;
  long v = s ? strtol(s, &end, 10) : -1;
  return s && *s && *end == '\0' && v >= 0 && v <= max ? v : -1;
}

/* Waits for f; on failure prints what failed. Returns f's status. */
static int await(actio_future *f, const char *what) {
  int st = actio_future_wait(f, -1);
  if (st != 0)
    fprintf(stderr, "actio-pipeline: %s: %s\n", what, actio_future_errmsg(f));
  return st;
}

/* Before the first round: removes what atomic writes of a killed run left
 * in the output folder, and drops the lines this run_id recorded already
 * (a rerun after a crash does the rest). Not in a soak, whose rounds have
 * run_ids of their own. Returns 0 or -1 (said on stderr). */
static int resume(void) {
  actio_future *f = NULL;
  int rc = actio_file_clean_leftovers(P.files, P.out, &f);
  if (rc == 0)
    rc = await(f, "remove the leftovers of a killed run");
  actio_future_unref(f);
  f = NULL;
  const char *sql = "SELECT line FROM actio_pipeline WHERE run_id = $1";
  if (rc != 0 || (rc = actio_db_query(P.db, sql, 1, &P.run_id, &f)) != 0 ||
      (rc = await(f, "read the lines recorded already")) != 0) {
    actio_future_unref(f);
    return -1;
  }
  const actio_db_result *r = actio_future_value(f);
  size_t n = actio_db_rows(r), max = 0;
  for (size_t i = 0; i < P.n; i++)
    max = P.jobs[i].line > max ? P.jobs[i].line : max;
  unsigned char *done = n ? calloc(max + 1, 1) : NULL;
  for (size_t i = 0; done && i < n; i++) {
    int32_t line;
    if (actio_db_int32(r, i, 0, &line) == 0 && line >= 0 && (size_t)line <= max)
      done[line] = 1;
  }
  actio_future_unref(f);
  if (n && !done)
    return -1;
  size_t kept = 0;
  for (size_t i = 0; i < P.n; i++) {
    if (done && done[P.jobs[i].line]) {
      free(P.jobs[i].url);
      free(P.jobs[i].shown);
      P.skipped++;
    } else {
      P.jobs[kept++] = P.jobs[i];
    }
  }
  P.n = kept;
  free(done);
  return 0;
}

int main(int argc, char **argv) {
  const char *dsn = NULL, *src = NULL, *samples = NULL;
  int stages = 0;
  long concurrency = 32, rounds = 0, duration_s = 0;
  char run_id[64];
  P.timeout_ms = 30000;
  P.retries = 2;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--dsn") == 0 && v)
      dsn = v, i++;
    else if (strcmp(a, "--out") == 0 && v)
      P.out = v, i++;
    else if (strcmp(a, "--run-id") == 0 && v)
      P.run_id = v, i++;
    else if (strcmp(a, "--concurrency") == 0 && (concurrency = number(v, 100000)) > 0)
      i++;
    else if (strcmp(a, "--timeout") == 0 && (P.timeout_ms = number(v, 86400000)) > 0)
      i++;
    else if (strcmp(a, "--retries") == 0 && (P.retries = (int)number(v, 100)) >= 0)
      i++;
    else if (strcmp(a, "--rounds") == 0 && (rounds = number(v, 1000000000)) > 0)
      i++;
    else if (strcmp(a, "--duration") == 0 && (duration_s = number(v, 31536000)) > 0)
      i++;
    else if (strcmp(a, "--samples") == 0 && v)
      samples = v, i++;
    else if (strcmp(a, "--stages") == 0)
      stages = 1;
    else if ((a[0] != '-' || strcmp(a, "-") == 0) && !src)
      src = a;
    else
      return usage(argv[0]);
  }
  if (!dsn || !P.out || !src)
    return usage(argv[0]);
  if (!P.run_id) {
    time_t t = time(NULL);
    struct tm tm;
    strftime(run_id, sizeof run_id, "%Y%m%d-%H%M%S", gmtime_r(&t, &tm));
    snprintf(run_id + strlen(run_id), sizeof run_id - strlen(run_id), "-%ld", (long)getpid());
    P.run_id = run_id;
  }
#ifdef __GLIBC__
  /* Each transfer's 64 KiB read buffer (libcurl's, made and freed per
   * transfer on the HTTP worker) leaves the top of its thread's heap over
   * glibc's 128 KiB trim threshold whenever a few transfers end together:
   * glibc hands those pages back (madvise) and the next transfers fault
   * them in again. This program's heap peaks at a few MiB: kept, not
   * trimmed. */
  mallopt(M_TRIM_THRESHOLD, 32 << 20);
#endif

  /* One runtime; an actor per kind of I/O, and the hasher. */
  actio_http_opts hopts = {.workers = 2, .max_connections = concurrency};
  /* A durable write's worker only writes the content: its group flushes
   * all contents at once (one syncfs), renames them and fsyncs the folder
   * (actio_file_write_durable). A few workers do: one leads a group's flush
   * while the others write the next (4 used 4-6% less CPU a URL than 32). */
  actio_file_opts fopts = {.workers = 4};
  actio_db_opts dopts = {.dsn = dsn, .max_connections = 4, .reconnect_max_ms = 1000,
                         .acquire_timeout_ms = 5000};
  /* A transaction at a time: a row goes at once to an idle server, and
   * the rows that come during a transaction go in the next (up to 64, at
   * most 5 ms behind); room for every URL in flight, so a record step never
   * waits for it. */
  actio_batcher_opts bopts = {.max_items = 64, .max_wait_ms = 5,
                              .capacity = (size_t)(concurrency < 64 ? 64 : concurrency)};
  int rc;
  if ((rc = actio_runtime_create(&P.rt, NULL)) != 0 ||
      (rc = actio_file_spawn(P.rt, &fopts, &P.files)) != 0 ||
      (rc = actio_http_spawn(P.rt, &hopts, &P.http)) != 0 ||
      (rc = actio_db_spawn(P.rt, &dopts, &P.db)) != 0 ||
      (rc = actio_actor_spawn(P.rt, &hasher, &(actio_actor_opts){.name = "hasher", .workers = 2},
                              &P.hasher)) != 0 ||
      (rc = actio_batcher_create(P.rt, &bopts, insert_batch, NULL, &P.rows)) != 0) {
    fprintf(stderr, "actio-pipeline: start: %s\n", actio_strerror(rc));
    actio_batcher_destroy(P.rows);
    actio_runtime_destroy(P.rt);
    return 1;
  }

  /* The list, the output folder and the table, all at once. */
  list l = {0};
  actio_future *f[3] = {NULL, NULL, NULL}, *all;
  if ((rc = actio_file_lines(P.files, strcmp(src, "-") == 0 ? "/dev/stdin" : src, add_lines,
                             &l, &f[0])) != 0 ||
      (rc = actio_file_mkdir(P.files, P.out, 0777, &f[1])) != 0 ||
      (rc = actio_db_script(P.db, CREATE_TABLE, &f[2])) != 0)
    fprintf(stderr, "actio-pipeline: start: %s\n", actio_strerror(rc));
  int ok = rc == 0 && await(f[0], "read the URL list") == 0 &&
           await(f[1], "make the output folder") == 0 && await(f[2], "create the table") == 0;
  for (int i = 0; i < 3; i++)
    actio_future_unref(f[i]);
  P.jobs = l.jobs;
  P.n = l.n;
  if (ok && rounds == 0 && duration_s == 0)
    ok = resume() == 0;

  int tty = isatty(STDOUT_FILENO), soak = rounds > 0 || duration_s > 0;
  sampler smp = {0};
  if (ok && samples && (rc = sampler_start(&smp, samples)) != 0) {
    fprintf(stderr, "actio-pipeline: samples to %s: %s\n", samples, strerror(rc));
    ok = 0;
  }
  double t0 = now_ms();
  tally t = {0};
  if (ok) {
    printf("run %s: %zu URLs, %ld at a time, bodies to %s", P.run_id, P.n, concurrency, P.out);
    if (P.skipped)
      printf(" (%zu more recorded by an earlier run: skipped)", P.skipped);
    putchar('\n');
    fflush(stdout);
    /* await gather(*(one(i) for i in range(n))), at most `concurrency` at once */
    if (soak) {
      ok = run_rounds(rounds, duration_s, concurrency, &t) == 0;
    } else if (actio_map(P.n, (size_t)concurrency, start_url, NULL, ACTIO_GATHER_SETTLE_ALL,
                         &all) != 0) {
      ok = 0;
    } else {
      while (actio_future_wait(all, tty ? 100 : 1000) == ACTIO_EPENDING)
        progress(tty, t0, 0);
      progress(tty, t0, 1);
      actio_future_unref(all);
    }
  }
  double secs = (now_ms() - t0) / 1e3;
  sampler_stop(&smp);
  actio_batcher_destroy(P.rows); /* empty: every chain has ended */
  actio_runtime_destroy(P.rt); /* every actor drained: the jobs are ours again */
  for (size_t i = 0; i < P.n; i++) { /* left by a chain that could not start */
    actio_future_unref(P.jobs[i].fetch);
    actio_future_unref(P.jobs[i].save);
    actio_future_unref(P.jobs[i].insert);
  }

  if (soak) {
    size_t k = atomic_load_explicit(&rounds_done, memory_order_relaxed);
    if (ok)
      printf("rounds: %zu of %zu URLs, %zu recorded, %zu not recorded, %zu failed, %.1f MiB,"
             " %.2f s; %zu insert retries; run_id %s-1..%zu\n",
             k, P.n, k * P.n - t.unrecorded, t.unrecorded, t.errors,
             (double)t.bytes / (1 << 20), secs,
             atomic_load_explicit(&P.db_retries, memory_order_relaxed), P.run_id, k);
  } else {
    t = count_jobs();
    size_t shown = 0;
    for (size_t i = 0; i < P.n; i++)
      if (P.jobs[i].error && shown++ < 10)
        printf("  failed: line %zu %s: %s\n", P.jobs[i].line, P.jobs[i].shown, P.jobs[i].error);
    if (shown > 10)
      printf("  ... and %zu more failures: SELECT line, url, error FROM actio_pipeline"
             " WHERE run_id = '%s' AND error IS NOT NULL\n", shown - 10, P.run_id);
    if (ok) {
      print_unrecorded("");
      printf("summary: %zu URLs, %zu ok, %zu failed (%zu not recorded), %.1f MiB, %.3f s,"
             " %.0f URLs/s; %zu insert retries; run_id %s\n",
             P.n, t.fetched, t.failed, t.unrecorded, (double)t.bytes / (1 << 20), secs,
             secs > 0 ? (double)P.n / secs : 0.0, atomic_load(&P.db_retries), P.run_id);
      if (stages)
        print_stages();
    }
  }
  for (size_t i = 0; i < P.n; i++) {
    free(P.jobs[i].url);
    free(P.jobs[i].shown);
    free_job_texts(&P.jobs[i]);
  }
  free(P.jobs);
  return ok && t.unrecorded == 0 ? 0 : 1;
}

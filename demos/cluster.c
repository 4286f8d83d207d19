/* cluster.c: the pipeline across processes: a coordinator publishes URLs
 * as JetStream jobs, and worker processes, on any host, each take jobs and
 * run the pipeline's stages on them (fetch, hash, save, record in
 * PostgreSQL, as demos/pipeline.c does for one process). A job is
 * acknowledged once its row is recorded; a worker that dies before that
 * leaves its jobs to be delivered again, to whichever worker is there.
 *
 *   actio-cluster publish --nats URLS --run ID [--stream S] LIST
 *   actio-cluster work --nats URLS --run ID --name NAME --dsn DSN --out DIR
 *                      [--stream S] [--in-flight N] [--ack-wait MS]
 *
 * URLS: one NATS URL or several, comma-separated (a cluster's). Each
 * makes the run's stream (PAGES_ID unless --stream, the subject pages.ID,
 * replicas 3, a work queue: a job is kept until a worker acks it) unless
 * it is there. publish then publishes line L of LIST (blank lines
 * and '#' lines skipped, but counted) as the job "L<TAB>URL" with the id
 * "ID-L": published again (the publish timed out, a server died), the
 * stream keeps it once. It prints "published N jobs" once each is stored.
 *
 * work records each job as a row of the table actio_cluster, keyed by
 * (run_id, line), with the worker's name and the job's delivery count: the
 * INSERT does nothing for a line recorded already (a job delivered again
 * after its worker died past the insert, before the ack), so each line has
 * one row whoever did it and however often. A fetch that fails is a row
 * with its error, as in the pipeline; a row that cannot be recorded fails
 * the job, which the stream delivers again after a delay. The worker runs
 * until SIGTERM or SIGINT, then stops pulling, lets the jobs it took end
 * (acked, or failed back to the stream), and prints its summary:
 *   worker NAME: taken T (R delivered again), recorded W, found recorded D,
 *   failed F */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <actio.h>

#include "stages.h"

/* Workers start together: the lock (held to the end of the script's one
 * transaction) lets one make the table and the others find it made, where
 * two CREATE TABLE IF NOT EXISTS at once fail one with a duplicate key. */
static const char CREATE_TABLE[] =
    "SELECT pg_advisory_xact_lock(1414);\n"
    "CREATE TABLE IF NOT EXISTS actio_cluster (\n"
    "  run_id text NOT NULL,\n"
    "  line int NOT NULL,                  -- line of the URL in the list\n"
    "  url text NOT NULL,                  -- its secrets masked\n"
    "  status int NOT NULL,                -- HTTP status; 0: no response\n"
    "  bytes bigint NOT NULL,              -- body length\n"
    "  hash text,                          -- SHA-256 of the body (hex), when saved\n"
    "  error text,                         -- NULL when fetched and saved\n"
    "  file text,                          -- where the body was saved\n"
    "  worker text NOT NULL,               -- who recorded it\n"
    "  deliveries int NOT NULL,            -- the job's delivery then\n"
    "  recorded_at timestamptz NOT NULL DEFAULT now(),\n"
    "  PRIMARY KEY (run_id, line))";

static const char INSERT_ROW[] =
    "INSERT INTO actio_cluster (run_id, line, url, status, bytes, hash, error, file, worker,"
    " deliveries) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    " ON CONFLICT (run_id, line) DO NOTHING";

static int usage(void) {
  fprintf(stderr,
          "usage: actio-cluster publish --nats URLS --run ID [--stream S] LIST\n"
          "       actio-cluster work --nats URLS --run ID --name NAME --dsn DSN --out DIR\n"
          "                          [--stream S] [--in-flight N] [--ack-wait MS]\n");
  return 2;
}

typedef struct args {
  const char *nats, *run, *name, *dsn, *out, *stream, *list;
  long in_flight, ack_wait_ms;
} args;

static long number(const char *s) {
  char *end;
  long v = s ? strtol(s, &end, 10) : -1;
  return s && *s && !*end && v > 0 ? v : -1;
}

static int parse(int argc, char **argv, args *a) {
  *a = (args){.in_flight = 32, .ack_wait_ms = 5000};
  for (int i = 2; i < argc; i++) {
    const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    const char **s = strcmp(k, "--nats") == 0     ? &a->nats
                     : strcmp(k, "--run") == 0    ? &a->run
                     : strcmp(k, "--name") == 0   ? &a->name
                     : strcmp(k, "--dsn") == 0    ? &a->dsn
                     : strcmp(k, "--out") == 0    ? &a->out
                     : strcmp(k, "--stream") == 0 ? &a->stream
                                                  : NULL;
    if (s != NULL && v != NULL)
      *s = v, i++;
    else if (strcmp(k, "--in-flight") == 0 && (a->in_flight = number(v)) > 0)
      i++;
    else if (strcmp(k, "--ack-wait") == 0 && (a->ack_wait_ms = number(v)) > 0)
      i++;
    else if (k[0] != '-' && a->list == NULL)
      a->list = k;
    else
      return -1;
  }
  /* The run is part of subjects and names: letters, digits, '-' and '_'. */
  for (const char *c = a->run; c != NULL && *c; c++)
    if (!(*c == '-' || *c == '_' || (*c >= '0' && *c <= '9') || ((*c | 32) >= 'a' && (*c | 32) <= 'z')))
      return -1;
  if (a->nats == NULL || a->run == NULL || strlen(a->run) > 64)
    return -1;
  if (a->stream == NULL) { /* PAGES_RUN */
    static char stream[80];
    snprintf(stream, sizeof stream, "PAGES_%s", a->run);
    a->stream = stream;
  }
  return 0;
}

static int connect_nats(actio_runtime *rt, const char *urls, const char *name,
                        actio_actor **out) {
  char err[512] = "";
  actio_nats_opts o = {.url = urls, .name = name, .max_reconnect = -1,
                       .reconnect_wait_ms = 100, .errbuf = err, .errbuf_size = sizeof err};
  int rc = actio_nats_spawn(rt, &o, out);
  if (rc != 0)
    fprintf(stderr, "actio-cluster: %s\n", err);
  return rc;
}

/* Makes the run's stream unless it is there (the coordinator and each
 * worker: whoever comes first): the subject pages.RUN, 3 replicas, a work
 * queue. 0 or the error, told. */
static int ensure_stream(actio_actor *nats, const args *a) {
  char subjects[128], err[512] = "";
  snprintf(subjects, sizeof subjects, "pages.%s", a->run);
  /* A cluster still electing its leaders (three workers and the
   * coordinator asking at once, on a slow machine) may time a request out:
   * ask again, a few times. */
  actio_nats_stream_opts so = {.name = a->stream, .subjects = subjects, .replicas = 3,
                               .timeout_ms = 20000};
  int rc = ACTIO_ETIMEDOUT;
  for (int i = 0; i < 5 && rc == ACTIO_ETIMEDOUT; i++)
    rc = actio_nats_stream_ensure(nats, &so, err, sizeof err);
  if (rc != 0)
    fprintf(stderr, "actio-cluster: stream %s: %s: %s\n", a->stream, actio_err_name(rc), err);
  return rc;
}

/* ---- publish ---- */

/* Job `line` as published: "LINE<TAB>URL", its id "RUN-LINE". */
static int job_make(actio_nats_job *job, char *data, size_t size, char *id, size_t idsize,
                    const char *subject, const char *run, size_t line, const char *url) {
  int n = snprintf(data, size, "%zu\t%s", line, url);
  snprintf(id, idsize, "%s-%zu", run, line);
  *job = (actio_nats_job){.subject = subject, .data = data, .len = (size_t)n, .id = id,
                         .timeout_ms = 5000};
  return n < 0 || (size_t)n >= size ? ACTIO_EINVAL : 0;
}

/* Publishes job `line` again and waits for the stream's ack, as often as
 * it takes while the cluster loses a server (a time-out, a connection
 * gone, no leader yet): the same id, so the stream keeps it once. 0 or
 * the last failure. */
static int publish_again(actio_actor *nats, const char *subject, const char *run, size_t line,
                         const char *url) {
  char data[8192], id[128];
  actio_nats_job job;
  int rc = job_make(&job, data, sizeof data, id, sizeof id, subject, run, line, url);
  for (int attempt = 0; attempt < 20 && rc != ACTIO_EINVAL; attempt++) {
    actio_future *f;
    rc = actio_nats_job_publish(nats, &job, &f);
    if (rc == 0) {
      rc = actio_future_wait(f, -1);
      if (rc != 0 && attempt == 19)
        fprintf(stderr, "actio-cluster: job %zu: %s\n", line, actio_future_errmsg(f));
      actio_future_unref(f);
    }
    if (rc == 0 || (rc != ACTIO_ETIMEDOUT && rc != ACTIO_ENATS && rc != ACTIO_EFULL &&
                    rc != ACTIO_EJETSTREAM))
      break;
  }
  return rc;
}

/* A job published and not yet acked. */
typedef struct sent {
  actio_future *f; /* NULL: not sent (publish it again) */
  size_t line;
  char *url;
} sent;

/* Waits for s's ack; on a failure publishes it again. 0 or the error. */
static int settle(actio_actor *nats, const char *subject, const char *run, sent *s) {
  int rc = s->f != NULL ? actio_future_wait(s->f, -1) : ACTIO_ENATS;
  actio_future_unref(s->f);
  if (rc != 0)
    rc = publish_again(nats, subject, run, s->line, s->url);
  free(s->url);
  *s = (sent){0};
  return rc;
}

static int publish(const args *a) {
  FILE *in = fopen(a->list, "r");
  if (in == NULL) {
    fprintf(stderr, "actio-cluster: %s: %s\n", a->list, strerror(errno));
    return 1;
  }
  actio_runtime *rt;
  actio_actor *nats;
  if (actio_runtime_create(&rt, NULL) != 0 || connect_nats(rt, a->nats, "coordinator", &nats) != 0)
    return 1;
  char subject[128];
  snprintf(subject, sizeof subject, "pages.%s", a->run);
  int rc = ensure_stream(nats, a);
  if (rc != 0) {
    actio_runtime_destroy(rt);
    return 1;
  }
  /* Up to WINDOW jobs waiting for their acks at once (the stream's acks
   * come in order of the list, each job's slot taken again WINDOW later). */
  enum { WINDOW = 256 };
  static sent win[WINDOW];
  char buf[8192], data[8192], id[128];
  size_t line = 0, n = 0;
  while (rc == 0 && fgets(buf, sizeof buf, in) != NULL) {
    line++;
    char *s = buf, *e = buf + strcspn(buf, "\r\n");
    *e = '\0';
    while (*s == ' ' || *s == '\t')
      s++;
    if (*s == '\0' || *s == '#')
      continue;
    sent *slot = &win[n % WINDOW];
    if (slot->url != NULL)
      rc = settle(nats, subject, a->run, slot);
    actio_nats_job job;
    if (rc == 0 && (rc = job_make(&job, data, sizeof data, id, sizeof id, subject, a->run, line,
                                  s)) == 0) {
      *slot = (sent){.line = line, .url = strdup(s)};
      if (slot->url == NULL)
        rc = ACTIO_ENOMEM;
      else if (actio_nats_job_publish(nats, &job, &slot->f) != 0)
        slot->f = NULL; /* settled by publishing it again */
      n += rc == 0;
    }
  }
  for (size_t i = 0; i < WINDOW; i++)
    if (win[i].url != NULL) {
      int r = settle(nats, subject, a->run, &win[i]);
      rc = rc != 0 ? rc : r;
    }
  fclose(in);
  actio_runtime_destroy(rt);
  if (rc != 0) {
    fprintf(stderr, "actio-cluster: publishing line %zu: %s\n", line, actio_strerror(rc));
    return 1;
  }
  printf("published %zu jobs to stream %s, subject %s\n", n, a->stream, subject);
  return 0;
}

/* ---- work: the pipeline's stages, for one job at a time each ---- */

typedef struct worker_ctx {
  actio_runtime *rt;
  actio_actor *http, *files, *db, *hasher;
  const args *a;
  atomic_size_t recorded, found, failed;
} worker_ctx;

static worker_ctx W;

/* One job on its way: what the stages learn, as in pipeline.c's job. */
typedef struct page {
  actio_future *reply;          /* the job's: its success acks the job */
  actio_future *fetch, *save;
  char line[24], deliveries[24], status[24], bytes[24];
  char hash[65];
  char *url, *file, *error;
} page;

static void page_end(page *p, int code, const char *why) {
  if (code == 0)
    (void)actio_future_resolve(p->reply, NULL, NULL);
  else
    (void)actio_future_fail(p->reply, code, "line %s: %s", p->line, why);
  actio_future_unref(p->reply);
  actio_http_response_free(actio_future_take(p->fetch));
  actio_future_unref(p->fetch);
  actio_future_unref(p->save);
  free(p->url);
  free(p->file);
  free(p->error);
  free(p);
}

static int hash_body(actio_actor *self, void *worker, void *msg, actio_future *reply) {
  (void)self;
  (void)worker;
  page *p = msg;
  const actio_http_response *r = actio_future_value(p->fetch);
  if (sha256_hex(r->body, r->body_len, p->hash) != 0)
    return actio_future_fail(reply, ACTIO_ENOMEM, "sha256 failed");
  return actio_future_resolve(reply, NULL, NULL);
}
static const actio_behavior hasher = {.handle = hash_body};

/* After the fetch: its outcome; a body worth saving is hashed. */
static int stage_hash(actio_future *prev, void *arg, actio_future **next) {
  (void)prev;
  page *p = arg;
  int st = actio_future_status(p->fetch);
  if (st != 0) {
    const char *m = actio_future_errmsg(p->fetch);
    p->error = strdup(m != NULL ? m : actio_strerror(st));
    return 0;
  }
  const actio_http_response *r = actio_future_value(p->fetch);
  snprintf(p->status, sizeof p->status, "%ld", r->status);
  snprintf(p->bytes, sizeof p->bytes, "%zu", r->body_len);
  if (r->status >= 400) {
    char e[32];
    snprintf(e, sizeof e, "HTTP %ld", r->status);
    p->error = strdup(e);
    return 0;
  }
  return actio_ask(W.hasher, p, -1, next);
}

/* Saves the body atomically, under the line's number. */
static int stage_save(actio_future *prev, void *arg, actio_future **next) {
  (void)prev;
  page *p = arg;
  if (p->error != NULL)
    return 0;
  char path[4096];
  snprintf(path, sizeof path, "%s/%s-%06ld.body", W.a->out, W.a->run, atol(p->line));
  const actio_http_response *r = actio_future_value(p->fetch);
  int rc = actio_file_write(W.files, path, r->body, r->body_len, ACTIO_WRITE_ATOMIC, &p->save);
  if (rc == 0 && (p->file = strdup(path)) != NULL)
    rc = settled(p->save, next);
  return rc;
}

/* Records the row; the job's outcome is the insert's. */
static int stage_record(actio_future *prev, void *arg, actio_future **next) {
  (void)prev;
  page *p = arg;
  if (p->save != NULL && actio_future_status(p->save) != 0 && p->error == NULL) {
    const char *m = actio_future_errmsg(p->save);
    p->error = strdup(m != NULL ? m : "save failed");
    free(p->file);
    p->file = NULL;
    p->hash[0] = '\0';
  }
  const char *params[] = {W.a->run, p->line,  p->url,   p->status, p->bytes,
                          p->hash[0] ? p->hash : NULL, p->error, p->file,
                          W.a->name, p->deliveries};
  actio_db_request req = {.sql = INSERT_ROW, .nparams = 10, .params = params,
                          .timeout_ms = 10000};
  return actio_db_send(W.db, &req, next);
}

static void recorded(actio_future *f, void *arg) {
  page *p = arg;
  int st = actio_future_status(f);
  if (st == 0) {
    int mine = actio_db_affected(actio_future_value(f)) == 1;
    atomic_fetch_add_explicit(mine ? &W.recorded : &W.found, 1, memory_order_relaxed);
    page_end(p, 0, NULL);
  } else {
    atomic_fetch_add_explicit(&W.failed, 1, memory_order_relaxed);
    page_end(p, st, actio_future_errmsg(f)); /* the stream delivers it again */
  }
}

/* The chain's first stage: the GET. */
static int stage_fetch(actio_future *prev, void *arg, actio_future **next) {
  (void)prev;
  page *p = arg;
  actio_http_request req = {.url = p->url, .timeout_ms = 10000, .retries = 2,
                            .retry_backoff_ms = 100};
  int rc = actio_http_send(W.http, &req, &p->fetch);
  if (rc != 0 && (rc = actio_future_failed(&p->fetch, rc, "GET %s: %s", p->url,
                                           actio_strerror(rc))) != 0)
    return rc;
  return settled(p->fetch, next);
}

/* The local actor the NATS worker asks: one job, "LINE<TAB>URL", through
 * fetch -> hash -> save -> record; its reply completes once recorded. The
 * stages hang on `start`, resolved once the whole chain is built: a chain
 * that cannot be built (out of memory) is failed there, before any stage
 * runs, so that nothing is left to read p once page_end frees it. */
static int take_job(actio_actor *self, void *worker, void *msg, actio_future *reply) {
  (void)self;
  (void)worker;
  const actio_nats_msg *m = msg;
  size_t len;
  const char *d = actio_nats_msg_data(m, &len);
  const char *tab = memchr(d, '\t', len);
  page *p = calloc(1, sizeof *p);
  if (p == NULL)
    return ACTIO_ENOMEM;
  if (tab == NULL || tab == d || (size_t)(tab - d) >= sizeof p->line) {
    free(p);
    return actio_future_fail(reply, ACTIO_EINVAL, "not a job: no line number");
  }
  memcpy(p->line, d, (size_t)(tab - d));
  p->url = strndup(tab + 1, len - (size_t)(tab - d) - 1);
  snprintf(p->deliveries, sizeof p->deliveries, "%llu",
           (unsigned long long)actio_nats_msg_deliveries(m));
  snprintf(p->status, sizeof p->status, "0");
  snprintf(p->bytes, sizeof p->bytes, "0");
  actio_future_ref(reply);
  p->reply = reply;
  actio_future *start = NULL, *f = NULL, *g = NULL;
  int rc = p->url != NULL ? actio_future_create(&start) : ACTIO_ENOMEM;
  if (rc == 0 && (rc = actio_future_then(start, stage_fetch, p, &f)) == 0 &&
      (rc = actio_future_then(f, stage_hash, p, &g)) == 0) {
    actio_future_unref(f);
    f = NULL;
    if ((rc = actio_future_then(g, stage_save, p, &f)) == 0) {
      actio_future_unref(g);
      g = NULL;
      if ((rc = actio_future_then(f, stage_record, p, &g)) == 0)
        rc = actio_future_on_done(g, recorded, p);
    }
  }
  actio_future_unref(f);
  actio_future_unref(g);
  if (rc == 0) {
    (void)actio_future_resolve(start, NULL, NULL); /* the GET starts */
  } else if (start != NULL) {
    /* Every stage registered is failed past here and none runs. */
    (void)actio_future_fail(start, rc, NULL);
  }
  actio_future_unref(start);
  if (rc != 0)
    page_end(p, rc, actio_strerror(rc));
  return 0;
}
static const actio_behavior pages = {.handle = take_job};

static int work(const args *a) {
  if (a->name == NULL || a->dsn == NULL || a->out == NULL)
    return usage();
  /* SIGTERM and SIGINT are waited for here, on the main thread alone. */
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);
  W.a = a;
  actio_http_opts ho = {.workers = 1, .max_connections = a->in_flight};
  actio_file_opts fo = {.workers = 8};
  actio_db_opts dbo = {.dsn = a->dsn, .max_connections = 2, .reconnect_max_ms = 1000,
                       .acquire_timeout_ms = 5000};
  actio_actor *nats, *actor;
  actio_actor_opts po = {.name = "pages", .capacity = 1024};
  int rc;
  if ((rc = actio_runtime_create(&W.rt, NULL)) != 0 ||
      (rc = actio_file_spawn(W.rt, &fo, &W.files)) != 0 ||
      (rc = actio_http_spawn(W.rt, &ho, &W.http)) != 0 ||
      (rc = actio_db_spawn(W.rt, &dbo, &W.db)) != 0 ||
      (rc = actio_actor_spawn(W.rt, &hasher, &(actio_actor_opts){.name = "hasher"},
                              &W.hasher)) != 0 ||
      (rc = actio_actor_spawn(W.rt, &pages, &po, &actor)) != 0 ||
      (rc = connect_nats(W.rt, a->nats, a->name, &nats)) != 0) {
    fprintf(stderr, "actio-cluster: worker %s: start: %s\n", a->name, actio_strerror(rc));
    return 1;
  }
  actio_future *f[2] = {NULL, NULL};
  if ((rc = actio_file_mkdir(W.files, a->out, 0777, &f[0])) == 0 &&
      (rc = actio_db_script(W.db, CREATE_TABLE, &f[1])) == 0 &&
      (rc = actio_future_wait(f[0], -1)) == 0)
    rc = actio_future_wait(f[1], -1);
  if (rc != 0)
    fprintf(stderr, "actio-cluster: worker %s: %s\n", a->name,
            f[1] != NULL && actio_future_is_done(f[1]) && actio_future_status(f[1]) != 0
                ? actio_future_errmsg(f[1])
                : actio_strerror(rc));
  actio_future_unref(f[0]);
  actio_future_unref(f[1]);
  char consumer[128], subject[128], err[512] = "";
  snprintf(consumer, sizeof consumer, "workers-%s", a->run);
  snprintf(subject, sizeof subject, "pages.%s", a->run);
  actio_nats_worker_opts wo = {.stream = a->stream, .consumer = consumer, .subject = subject,
                               .batch = (int)(a->in_flight / 2 > 0 ? a->in_flight / 2 : 1),
                               .max_in_flight = (int)a->in_flight,
                               .max_deliveries = 20, .ack_wait_ms = a->ack_wait_ms,
                               .nak_delay_ms = 200};
  actio_nats_worker *w = NULL;
  if (rc == 0 && (rc = ensure_stream(nats, a)) == 0 &&
      (rc = actio_nats_worker_create(nats, actor, &wo, &w, err, sizeof err)) != 0)
    fprintf(stderr, "actio-cluster: worker %s: %s: %s\n", a->name, actio_err_name(rc), err);
  if (rc != 0) {
    actio_runtime_destroy(W.rt);
    return 1;
  }
  printf("worker %s: pulling %s from %s\n", a->name, subject, a->stream);
  fflush(stdout);
  int sig;
  sigwait(&sigs, &sig);
  actio_nats_worker_stop(w);
  actio_nats_worker_stats ws;
  actio_nats_worker_stats_get(w, &ws);
  actio_nats_worker_destroy(w);
  actio_runtime_destroy(W.rt);
  printf("worker %s: taken %llu (%llu delivered again), recorded %zu, found recorded %zu,"
         " failed %zu\n",
         a->name, (unsigned long long)ws.fetched, (unsigned long long)ws.redelivered,
         atomic_load(&W.recorded), atomic_load(&W.found), atomic_load(&W.failed));
  return 0;
}

int main(int argc, char **argv) {
  args a;
  if (argc < 2 || parse(argc, argv, &a) != 0)
    return usage();
  if (strcmp(argv[1], "publish") == 0 && a.list != NULL)
    return publish(&a);
  if (strcmp(argv[1], "work") == 0)
    return work(&a);
  return usage();
}

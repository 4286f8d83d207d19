/* test_faults.c: fault injection, the way curl's torture tests and SQLite's
 * OOM tests go. Each scenario (file requests, HTTP requests, queries,
 * transactions, combinators, asks, a supervisor restart, a completion
 * queue and its lanes, groups, queues and locks, durable writes, a batcher,
 * sessions and prepared statements with typed values, HTTP bodies made by
 * a callback or read from a file and headers first, JetStream jobs done by
 * a worker; each from runtime
 * creation to destruction) runs once to count the library's allocations,
 * thread and eventfd creations and fsyncs, then again with call 1, 2, ...
 * failing in turn (tests/faults.c), and once per descriptor limit with
 * RLIMIT_NOFILE leaving it 0, 1, 2, ... free descriptors. Every call must succeed or fail
 * with the fault's error, every future complete likewise, nothing leak (run
 * it under ASan) and nothing hang (an alarm fails the run loudly). */
#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "actio.h"
#include "faults.h"
#include "io/file/file_io.h"
#include "fixture/fixture_spawn.h"
#include "nats_server.h"
#include "pg_server.h"
#include "test_util.h"

#ifdef FAULTS_SANITIZER
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef FAULTS_ASAN /* each run is checked for leaks on its own, to name the fault */
#include <sanitizer/lsan_interface.h>
#endif

/* A run that takes this long hangs: fail it rather than CI. */
#define HANG_SECONDS 60

static char fixture[128], dsn[512], pg_dir[256], files_dir[256], body_file[256];
static pid_t fixture_pid;
static char nats_dir[256], nats_url[128]; /* a JetStream cluster's node */

/* ---- the run under way: what may fail, and how ---- */

/* Under a counted fault, a call that fails returns the fault's own error;
 * with descriptors short (mode FDS), any error that names the cause. */
enum { FDS = FAULT_KINDS };
static int mode;
static long failures; /* calls and futures that failed in this run */
static char run_note[256];

static const char *mode_name(int m) {
  static const char *const names[] = {"allocation", "thread", "eventfd", "fsync",
                                      "descriptor"};
  return names[m];
}

static int expected(int m) {
  return m == FAULT_ALLOC    ? ACTIO_ENOMEM
         : m == FAULT_THREAD ? -EAGAIN
         : m == FAULT_FSYNC  ? -EIO
                             : -EMFILE;
}

/* 1 if a call or future failing with rc (and message msg) is the fault's
 * doing, as the mode allows. */
static int fault_explains(int rc, const char *msg) {
  if (mode == FDS)
    return rc == -EMFILE || (msg != NULL && strstr(msg, "Too many open files") != NULL);
  return fault_injected() && rc == expected(mode);
}

/* A public call's return (and the message it wrote, or NULL): 1 if it
 * succeeded, 0 if the fault made it fail. */
static int ok_msg(int rc, const char *msg, const char *call) {
  if (rc == 0)
    return 1;
  if (!fault_explains(rc, msg))
    ck_abort_msg("%s: %s returned %s (%s) under a %s fault", run_note, call,
                 actio_err_name(rc), msg != NULL ? msg : "", mode_name(mode));
  failures++;
  return 0;
}
#define ok(rc, call) ok_msg((rc), NULL, (call))

/* Waits for f (the alarm bounds the wait); returns 0 if it completed with
 * `want`, else the fault's error. */
static int settled(actio_future *f, int want, const char *what) {
  int st = actio_future_wait(f, -1);
  if (st == want)
    return 0;
  if (!fault_explains(st, actio_future_errmsg(f)))
    ck_abort_msg("%s: %s failed with %s (%s) under a %s fault", run_note, what,
                 actio_err_name(st), actio_future_errmsg(f), mode_name(mode));
  failures++;
  return st;
}

#define TRY(call)             \
  do {                        \
    if (!ok((call), #call))   \
      goto out;               \
  } while (0)

/* Waits for f to complete as `want` (0: succeed); to `out` if it failed. */
#define AWAIT_AS(f, want)                    \
  do {                                       \
    if (settled((f), (want), #f) != 0)       \
      goto out;                              \
  } while (0)
#define AWAIT(f) AWAIT_AS(f, 0)

static void unref_all(actio_future **fs, size_t n) {
  for (size_t i = 0; i < n; i++)
    actio_future_unref(fs[i]);
}

/* ---- an actor of our own ---- */

/* Its message FAIL makes it fail (a handler's ACTIO_EFATAL). */
#define FAIL ((void *)(uintptr_t)-1)

/* Replies to an ask with the message itself. */
static int echo_handle(actio_actor *self, void *worker, void *msg, actio_future *reply) {
  (void)self;
  (void)worker;
  if (msg == FAIL)
    return ACTIO_EFATAL;
  if (reply != NULL)
    actio_future_resolve(reply, msg, NULL);
  return 0;
}

static const actio_behavior echo = {.handle = echo_handle};

/* An echo actor; arg: its workers as an integer (0: scheduled). */
static int echo_start(actio_runtime *rt, void *workers, actio_actor **out) {
  actio_actor_opts o = {.name = "echo", .workers = (unsigned)(uintptr_t)workers};
  return actio_actor_spawn(rt, &echo, &o, out);
}

/* ---- the scenarios ---- */

static int count_lines(void *arg, const actio_line *lines, size_t n) {
  (void)lines;
  *(size_t *)arg += n;
  return 0;
}

/* Counts a stream's bytes (an HTTP body's, a file's). */
static int count_bytes(void *arg, const void *data, size_t len, actio_future **ready) {
  (void)data;
  (void)ready;
  *(size_t *)arg += len;
  return 0;
}

/* A file written, read whole, by lines, streamed, through a handle,
 * copied, and listed; a temporary file made and its size read. */
static void file_requests(void) {
  actio_runtime *rt = NULL;
  actio_actor *files;
  actio_future *f[10] = {0};
  size_t lines = 0, streamed = 0;
  TRY(actio_runtime_create(&rt, NULL));
  TRY(actio_file_spawn(rt, &(actio_file_opts){.root = files_dir, .workers = 1}, &files));
  TRY(actio_file_write(files, "f.txt", "hello\nworld\n", 12, ACTIO_WRITE_ATOMIC, &f[0]));
  AWAIT(f[0]);
  TRY(actio_file_read(files, "f.txt", &f[1]));
  AWAIT(f[1]);
  ck_assert_str_eq(((const actio_buf *)actio_future_value(f[1]))->data, "hello\nworld\n");
  TRY(actio_file_lines(files, "f.txt", count_lines, &lines, &f[2]));
  AWAIT(f[2]);
  ck_assert_uint_eq(lines, 2);
  TRY(actio_file_stream(files, "f.txt", 4, count_bytes, &streamed, &f[6]));
  AWAIT(f[6]);
  ck_assert_uint_eq(streamed, 12);
  TRY(actio_file_open(files, "f.txt", O_RDONLY, 0, &f[3]));
  AWAIT(f[3]);
  actio_fh *h = actio_future_take(f[3]);
  int read = ok(actio_fh_pread(h, 6, 5, &f[4]), "actio_fh_pread");
  if (read && settled(f[4], 0, "pread") == 0)
    ck_assert_str_eq(((const actio_buf *)actio_future_value(f[4]))->data, "world");
  actio_future *closed;
  ck_assert_int_eq(actio_fh_close(h, &closed), 0); /* never for want of memory */
  settled(closed, 0, "close");
  actio_future_unref(closed);
  TRY(actio_file_copy(files, "f.txt", "g.txt", &f[7]));
  AWAIT(f[7]);
  TRY(actio_file_list(files, ".", &f[5]));
  AWAIT(f[5]);
  ck_assert_str_eq(((char **)actio_future_value(f[5]))[1], "g.txt");
  TRY(actio_file_tempfile(files, "tmp-", &f[8]));
  AWAIT(f[8]);
  TRY(actio_file_stat(files, actio_future_value(f[8]), &f[9]));
  AWAIT(f[9]);
  ck_assert_int_eq(((const struct stat *)actio_future_value(f[9]))->st_size, 0);
out:
  unref_all(f, 10);
  actio_runtime_destroy(rt);
}

/* Durable writes, two workers flushing them: each completes or fails with
 * the fault; none leaves a temporary file, whatever failed. */
static void durable_writes(void) {
  actio_runtime *rt = NULL;
  actio_actor *files;
  actio_future *f[5] = {0};
  char path[32];
  TRY(actio_runtime_create(&rt, NULL));
  TRY(actio_file_spawn(rt, &(actio_file_opts){.root = files_dir, .workers = 2}, &files));
  TRY(actio_file_mkdir(files, "d", 0755, &f[4]));
  AWAIT(f[4]);
  for (int i = 0; i < 4; i++) {
    snprintf(path, sizeof path, "d/%d", i);
    TRY(actio_file_write_durable(files, path, "durable\n", 8, &f[i]));
  }
  for (int i = 0; i < 4; i++)
    settled(f[i], 0, "durable write");
out:
  unref_all(f, 5);
  actio_runtime_destroy(rt);
  char d[300];
  snprintf(d, sizeof d, "%s/d", files_dir);
  DIR *dir = opendir(d);
  for (struct dirent *e; dir != NULL && (e = readdir(dir)) != NULL;) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    ck_assert_msg(e->d_name[0] != '.', "%s: left behind: %s", run_note, e->d_name);
    unlinkat(dirfd(dir), e->d_name, 0); /* the file scenario lists the root */
  }
  if (dir != NULL)
    closedir(dir);
  rmdir(d);
}

/* A POST with a header and a body, a body streamed to a consumer, one
 * saved to a file, and one cancelled. */
static void http_requests(void) {
  actio_runtime *rt = NULL;
  actio_actor *http;
  actio_future *f[4] = {0};
  char echo_url[200], chunked[200], bytes[200], saved[300], delay[200];
  snprintf(delay, sizeof delay, "%s/delay/10000", fixture);
  snprintf(echo_url, sizeof echo_url, "%s/echo", fixture);
  snprintf(chunked, sizeof chunked, "%s/chunked/5000", fixture);
  snprintf(bytes, sizeof bytes, "%s/bytes/3000", fixture);
  snprintf(saved, sizeof saved, "%s/saved", files_dir);
  const char *headers[] = {"X-Fault: on", NULL};
  size_t streamed = 0;
  actio_http_request post = {.method = "POST", .url = echo_url, .headers = headers,
                             .body = "ping", .body_len = 4};
  actio_http_request stream = {.url = chunked, .on_chunk = count_bytes,
                               .chunk_arg = &streamed};
  actio_http_request save = {.url = bytes, .save_to = saved};
  TRY(actio_runtime_create(&rt, NULL));
  TRY(actio_http_spawn(rt, &(actio_http_opts){.workers = 1}, &http));
  TRY(actio_http_send(http, &post, &f[0]));
  AWAIT(f[0]);
  const actio_http_response *resp = actio_future_value(f[0]);
  ck_assert_int_eq(resp->status, 200);
  ck_assert_ptr_nonnull(strstr(resp->body, "X-Fault: on"));
  ck_assert_ptr_nonnull(strstr(resp->body, "ping"));
  TRY(actio_http_send(http, &stream, &f[1]));
  AWAIT(f[1]);
  ck_assert_uint_eq(streamed, 5000);
  TRY(actio_http_send(http, &save, &f[2]));
  AWAIT(f[2]);
  ck_assert_uint_eq(((const actio_http_response *)actio_future_value(f[2]))->body_len, 3000);
  ck_assert_int_eq(access(saved, F_OK), 0);
  TRY(actio_http_get(http, delay, &f[3]));
  actio_future_cancel(f[3]);
  AWAIT_AS(f[3], ACTIO_ECANCELED);
out:
  unref_all(f, 4);
  actio_runtime_destroy(rt);
}

static const actio_db_opts one_connection = {.workers = 1, .max_connections = 1};

/* Resolves the future `arg` with the first notification's payload. */
static void on_notify(void *arg, const actio_db_notification *n) {
  actio_future_resolve(arg, (void *)(uintptr_t)(n->missed ? 2 : strcmp(n->payload, "hi") == 0), NULL);
}

/* A query with text parameters, one typed with a binary result, a script,
 * a query past its timeout (cancelled on the server), and a
 * notification heard through LISTEN. */
static void queries(void) {
  actio_runtime *rt = NULL;
  actio_actor *db;
  actio_future *f[7] = {0}, *heard = NULL;
  actio_db_opts o = one_connection;
  o.dsn = dsn;
  const char *params[] = {"42"};
  const uint32_t int8[] = {20};
  actio_db_request typed = {.sql = "SELECT $1", .nparams = 1, .params = params,
                            .types = int8, .binary_results = 1};
  actio_db_request slow = {.sql = "SELECT pg_sleep(2)", .timeout_ms = 100};
  TRY(actio_runtime_create(&rt, NULL));
  TRY(actio_db_spawn(rt, &o, &db));
  TRY(actio_db_query(db, "SELECT $1::int", 1, params, &f[0]));
  AWAIT(f[0]);
  int32_t v = 0;
  ck_assert_int_eq(actio_db_int32(actio_future_value(f[0]), 0, 0, &v), 0);
  ck_assert_int_eq(v, 42);
  TRY(actio_db_send(db, &typed, &f[1]));
  AWAIT(f[1]);
  int64_t big = 0;
  ck_assert_int_eq(actio_db_int64(actio_future_value(f[1]), 0, 0, &big), 0);
  ck_assert_int_eq(big, 42);
  TRY(actio_db_script(db, "SELECT 1; SELECT 2", &f[2]));
  AWAIT(f[2]);
  TRY(actio_db_send(db, &slow, &f[3]));
  AWAIT_AS(f[3], ACTIO_ETIMEDOUT);
  TRY(actio_future_create(&heard));
  TRY(actio_db_listen(db, "faults", on_notify, heard, &f[4]));
  AWAIT(f[4]);
  TRY(actio_db_query(db, "NOTIFY faults, 'hi'", 0, NULL, &f[5]));
  AWAIT(f[5]);
  AWAIT(heard);
  if ((uintptr_t)actio_future_value(heard) != 1)
    ck_abort_msg("%s: heard %lu", run_note, (unsigned long)(uintptr_t)actio_future_value(heard));
  TRY(actio_db_unlisten(db, "faults", on_notify, heard, &f[6]));
  AWAIT(f[6]);
out:
  unref_all(f, 7);
  actio_runtime_destroy(rt); /* before `heard`: a late notification uses it */
  actio_future_unref(heard);
}

/* The body of a retried transaction: one query. */
static int txn_body(actio_db_txn *t, void *arg, actio_future **out) {
  (void)arg;
  return actio_db_txn_query(t, "SELECT 1", 0, NULL, out);
}

/* A transaction with a savepoint and a COPY, committed; then one run by
 * actio_db_transaction. */
static void transactions(void) {
  actio_runtime *rt = NULL;
  actio_actor *db;
  actio_future *f[9] = {0};
  actio_db_opts o = one_connection;
  o.dsn = dsn;
  const char *params[] = {"7"};
  TRY(actio_runtime_create(&rt, NULL));
  TRY(actio_db_spawn(rt, &o, &db));
  TRY(actio_db_begin(db, NULL, &f[0]));
  AWAIT(f[0]);
  actio_db_txn *t = actio_future_value(f[0]);
  TRY(actio_db_txn_query(t, "CREATE TEMP TABLE copied (n int) ON COMMIT DROP", 0, NULL, &f[1]));
  AWAIT(f[1]);
  TRY(actio_db_savepoint(t, "s", &f[2]));
  AWAIT(f[2]);
  TRY(actio_db_copy_in(db, t, "COPY copied FROM STDIN", &f[3]));
  AWAIT(f[3]);
  actio_db_copy *cp = actio_future_value(f[3]);
  TRY(actio_db_copy_write(cp, "1\n2\n", 4, &f[4]));
  AWAIT(f[4]);
  TRY(actio_db_copy_end(cp, NULL, &f[5]));
  AWAIT(f[5]);
  TRY(actio_db_txn_query(t, "SELECT count(*)::int + $1 FROM copied", 1, params, &f[6]));
  AWAIT(f[6]);
  int32_t v = 0;
  ck_assert_int_eq(actio_db_int32(actio_future_value(f[6]), 0, 0, &v), 0);
  ck_assert_int_eq(v, 9);
  TRY(actio_db_commit(t, &f[7]));
  AWAIT(f[7]);
  TRY(actio_db_transaction(db, NULL, 1, txn_body, NULL, &f[8]));
  AWAIT(f[8]);
out:
  unref_all(f, 9);
  actio_runtime_destroy(rt);
}

/* Starts map item i: an ask of the actor `a`. */
static int map_ask(size_t i, void *a, actio_future **out) {
  return actio_ask(a, (void *)(i + 1), -1, out);
}

/* Asks of a scheduled actor gathered under a deadline, raced with any,
 * mapped two at a time, and taken as they complete. */
static void combinators(void) {
  actio_runtime *rt = NULL;
  actio_actor *a;
  actio_future *fs[3] = {0}, *g = NULL, *any = NULL, *map = NULL;
  actio_as_completed *ac = NULL;
  TRY(actio_runtime_create(&rt, NULL));
  TRY(echo_start(rt, (void *)0, &a));
  for (uintptr_t i = 0; i < 3; i++)
    TRY(actio_ask(a, (void *)(i + 1), -1, &fs[i]));
  TRY(actio_gather(fs, 3, ACTIO_GATHER_FAIL_FAST, &g));
  TRY(actio_future_set_deadline(rt, g, 600000));
  AWAIT(g);
  for (size_t i = 0; i < 3; i++)
    ck_assert_uint_eq((uintptr_t)actio_future_value(actio_gather_item(g, i)), i + 1);
  TRY(actio_any(fs, 3, &any));
  AWAIT(any);
  TRY(actio_map_within(rt, 4, 2, 600000, map_ask, a, ACTIO_GATHER_FAIL_FAST, &map));
  AWAIT(map);
  ck_assert_uint_eq((uintptr_t)actio_future_value(actio_gather_item(map, 3)), 4);
  TRY(actio_as_completed_create(&ac, fs, 3));
  size_t seen = 0, index;
  while (actio_as_completed_next(ac, -1, &index) == 0)
    seen += index + 1;
  ck_assert_uint_eq(seen, 6);
out:
  actio_as_completed_destroy(ac);
  actio_future_unref(map);
  actio_future_unref(any);
  actio_future_unref(g);
  unref_all(fs, 3);
  actio_runtime_destroy(rt);
}

/* The chain's next step: another ask of the same actor. */
static int ask_again(actio_future *prev, void *a, actio_future **next) {
  return actio_ask(a, (void *)((uintptr_t)actio_future_value(prev) + 1), -1, next);
}

/* A tell and an ask of an actor with a thread of its own, a second ask
 * chained to the first. */
static void asks(void) {
  actio_runtime *rt = NULL;
  actio_actor *a;
  actio_future *f = NULL, *then = NULL;
  TRY(actio_runtime_create(&rt, NULL));
  TRY(echo_start(rt, (void *)1, &a));
  TRY(actio_tell(a, (void *)1, -1));
  TRY(actio_ask(a, (void *)41, -1, &f));
  TRY(actio_future_then(f, ask_again, a, &then));
  AWAIT(then);
  ck_assert_uint_eq((uintptr_t)actio_future_value(then), 42);
out:
  actio_future_unref(then);
  actio_future_unref(f);
  actio_runtime_destroy(rt);
}

/* Asks delivered through a completion queue to a loop that polls its
 * descriptor; the last is left registered when the queue goes. */
static void completion_queue(void) {
  actio_runtime *rt = NULL;
  actio_actor *a;
  actio_cq *cq = NULL;
  actio_future *f[4] = {0};
  TRY(actio_runtime_create(&rt, NULL));
  TRY(echo_start(rt, (void *)1, &a));
  TRY(actio_cq_create(&cq));
  for (uintptr_t i = 0; i < 3; i++) {
    TRY(actio_ask(a, (void *)(i + 1), -1, &f[i]));
    TRY(actio_cq_add(cq, f[i], i));
  }
  for (int got = 0; got < 3;) {
    struct pollfd p = {.fd = actio_cq_fd(cq), .events = POLLIN};
    ck_assert_int_eq(poll(&p, 1, -1), 1);
    actio_cq_event ev[2];
    int n = actio_cq_drain(cq, ev, 2);
    for (int i = 0; i < n; i++, got++) {
      if (settled(ev[i].future, 0, "a drained ask") == 0)
        ck_assert_ptr_eq(actio_future_value(ev[i].future), (void *)(uintptr_t)(ev[i].tag + 1));
      actio_future_unref(ev[i].future);
    }
  }
  TRY(actio_ask(a, (void *)7, -1, &f[3]));
  TRY(actio_cq_add(cq, f[3], 7));
out:
  actio_cq_destroy(cq);
  unref_all(f, 4);
  actio_runtime_destroy(rt);
}

/* A continuation that leaves the outcome as it is. */
static int as_it_is(actio_future *prev, void *arg, actio_future **next) {
  (void)prev;
  (void)arg;
  (void)next;
  return 0;
}

/* Asks in a task group, one of them caught and cleaned up after; an item
 * through a queue to a get waiting for it, and a join waiting for it to be
 * done; a lock, a semaphore and an event waited for. */
static void sync_structures(void) {
  actio_runtime *rt = NULL;
  actio_actor *a;
  actio_group *tg = NULL;
  actio_queue *q = NULL;
  actio_lock *l = NULL;
  actio_sem *s = NULL;
  actio_event *e = NULL;
  actio_future *f[11] = {0};
  TRY(actio_runtime_create(&rt, NULL));
  TRY(echo_start(rt, (void *)0, &a));
  TRY(actio_group_create(&tg, ACTIO_GATHER_FAIL_FAST));
  for (uintptr_t i = 0; i < 2; i++) {
    TRY(actio_ask(a, (void *)(i + 1), -1, &f[i]));
    TRY(actio_group_add(tg, f[i]));
  }
  TRY(actio_group_wait(tg, &f[2]));
  AWAIT(f[2]);
  TRY(actio_future_catch(f[0], as_it_is, NULL, &f[3]));
  TRY(actio_future_finally(f[3], as_it_is, NULL, &f[4]));
  AWAIT(f[4]);
  TRY(actio_queue_create(&q, 1, NULL));
  TRY(actio_queue_get(q, &f[5]));
  TRY(actio_queue_put(q, (void *)5, &f[6]));
  AWAIT(f[5]);
  ck_assert_ptr_eq(actio_future_value(f[5]), (void *)5);
  TRY(actio_queue_join(q, &f[10])); /* the item got, not yet done: it waits */
  TRY(actio_queue_task_done(q));
  AWAIT(f[10]);
  TRY(actio_lock_create(&l));
  TRY(actio_lock_acquire(l, &f[7]));
  TRY(actio_lock_acquire(l, &f[8]));
  TRY(actio_lock_release(l));
  AWAIT(f[8]);
  TRY(actio_sem_create(&s, 1));
  TRY(actio_event_create(&e));
  TRY(actio_event_wait(e, &f[9]));
  actio_event_set(e);
  AWAIT(f[9]);
out:
  actio_group_destroy(tg);
  actio_queue_destroy(q);
  actio_lock_destroy(l);
  actio_sem_destroy(s);
  actio_event_destroy(e);
  unref_all(f, 11);
  actio_runtime_destroy(rt);
}

/* Resolved by the supervisor's monitor at the second restart or when it
 * gives up. */
static actio_future *restarted;
static int restarts;

static void on_sup_event(void *arg, const actio_sup_event *ev) {
  (void)arg;
  if (ev->kind == ACTIO_SUP_GAVE_UP ||
      (ev->kind == ACTIO_SUP_CHILD_RESTARTED && ++restarts == 2))
    actio_future_resolve(restarted, (void *)(uintptr_t)ev->kind, NULL);
}

/* One of two children fails, and both are restarted (one for all); the
 * new instances answer. */
static void supervisor_restart(void) {
  actio_runtime *rt = NULL;
  actio_actor *sup;
  actio_future *failed = NULL, *f[2] = {0};
  restarted = NULL;
  restarts = 0;
  actio_child_spec kids[] = {{.name = "a", .start = echo_start},
                             {.name = "b", .start = echo_start, .arg = (void *)1}};
  actio_sup_opts so = {.strategy = ACTIO_ONE_FOR_ALL, .backoff_ms = 1,
                       .monitor = on_sup_event};
  TRY(actio_runtime_create(&rt, NULL));
  TRY(actio_future_create(&restarted));
  TRY(actio_sup_spawn(rt, &so, kids, 2, &sup));
  actio_actor *first = actio_sup_lookup(sup, "a");
  ck_assert_ptr_nonnull(first);
  TRY(actio_ask(first, FAIL, -1, &failed));
  ck_assert_int_eq(actio_future_wait(failed, -1), ACTIO_EFATAL);
  AWAIT(restarted);
  ck_assert_uint_eq((uintptr_t)actio_future_value(restarted), ACTIO_SUP_CHILD_RESTARTED);
  ck_assert_ptr_eq(actio_sup_lookup(sup, "a"), first); /* its address survives */
  for (uintptr_t i = 0; i < 2; i++) {
    TRY(actio_ask(actio_sup_lookup(sup, i ? "b" : "a"), (void *)(i + 5), -1, &f[i]));
    AWAIT(f[i]);
    ck_assert_uint_eq((uintptr_t)actio_future_value(f[i]), i + 5);
  }
out:
  unref_all(f, 2);
  actio_future_unref(failed);
  actio_runtime_destroy(rt);
  actio_future_unref(restarted);
}

static void *one_tick(void *arg) { return arg; }

/* A sleep, a delayed send and a periodic one, cancelled. */
static void timers(void) {
  actio_runtime *rt = NULL;
  actio_actor *a;
  actio_future *f = NULL;
  actio_timer *once = NULL, *every = NULL;
  TRY(actio_runtime_create(&rt, NULL));
  TRY(echo_start(rt, (void *)0, &a));
  TRY(actio_sleep(rt, 1, &f));
  TRY(actio_send_after(a, (void *)1, 0, &once));
  TRY(actio_send_every(a, 3600 * 1000, one_tick, (void *)2, &every));
  AWAIT(f);
  ck_assert_int_eq(actio_timer_cancel(every), 0);
out:
  actio_timer_release(every);
  actio_timer_release(once);
  actio_future_unref(f);
  actio_runtime_destroy(rt);
}

/* ---- session 7's APIs ---- */

/* An item of the batcher: its number, malloc'd (item_free frees it). */
static int add_item(actio_batcher *b, int v, actio_batch_mode m, actio_future **out) {
  int *item = malloc(sizeof *item);
  ck_assert_ptr_nonnull(item);
  *item = v;
  int rc = actio_batcher_add(b, item, m, out);
  if (rc != 0)
    free(item); /* refused: still ours */
  return rc;
}

/* A batch: its odd items resolved with their number, the even ones left
 * to the batch's outcome (a NULL value), an ask of the echo actor `arg`. */
static int batch_ask(actio_batch *batch, void *arg, actio_future **out) {
  for (size_t i = 0; i < actio_batch_count(batch); i++) {
    int v = *(int *)actio_batch_item(batch, i);
    if (v % 2 == 1)
      ck_assert_int_eq(actio_batch_resolve_item(batch, i, (void *)(uintptr_t)v, NULL), 0);
  }
  return actio_ask(arg, (void *)(uintptr_t)100, -1, out);
}

/* A batch that ends only when cancelled: a sleep of 10 minutes. */
static int batch_stuck(actio_batch *batch, void *rt, actio_future **out) {
  (void)batch;
  return actio_sleep(rt, 600000, out);
}

/* Items batched (the first alone, the rest three at a time or after 1
 * ms): three accepted at once, three more waiting for room; then one
 * collected by a timed batcher of a long wait, cancelled by its destroy
 * (sent at once, and resolved, if its timer could not be armed); one in a
 * batch that never ends, cancelled by its batcher's destroy. */
static void batcher(void) {
  actio_runtime *rt = NULL;
  actio_actor *a;
  actio_batcher *b = NULL, *slow = NULL, *stuck = NULL;
  actio_future *f[8] = {0};
  actio_batcher_opts o = {.max_items = 3, .max_wait_ms = 1, .capacity = 3, .item_free = free};
  TRY(actio_runtime_create(&rt, NULL));
  TRY(echo_start(rt, (void *)0, &a));
  TRY(actio_batcher_create(rt, &o, batch_ask, a, &b));
  for (int i = 0; i < 6; i++)
    TRY(add_item(b, i + 1, i < 3 ? ACTIO_BATCH_NOWAIT : ACTIO_BATCH_WAIT, &f[i]));
  for (int i = 0; i < 6; i++)
    if (settled(f[i], 0, "a batched item") == 0)
      ck_assert_uint_eq((uintptr_t)actio_future_value(f[i]), (i + 1) % 2 ? (uintptr_t)i + 1 : 0);
  o.max_wait_ms = 600000;
  o.eager = ACTIO_BATCH_TIMED; /* collected, not sent at once */
  TRY(actio_batcher_create(rt, &o, batch_ask, a, &slow));
  TRY(add_item(slow, 7, ACTIO_BATCH_NOWAIT, &f[6]));
  ck_assert_int_eq(actio_batcher_add(slow, NULL, ACTIO_BATCH_NOWAIT, &f[0]), ACTIO_EINVAL);
  actio_batcher_destroy(slow);
  slow = NULL;
  if (!fault_injected() || actio_future_wait(f[6], -1) != 0)
    settled(f[6], ACTIO_ECANCELED, "an item collected at the destroy");
  o.max_items = 1;
  TRY(actio_batcher_create(rt, &o, batch_stuck, rt, &stuck));
  TRY(add_item(stuck, 8, ACTIO_BATCH_NOWAIT, &f[7]));
  actio_batcher_destroy(stuck);
  stuck = NULL;
  settled(f[7], ACTIO_ECANCELED, "an item of a batch in flight at the destroy");
out:
  actio_batcher_destroy(stuck);
  actio_batcher_destroy(slow);
  actio_batcher_destroy(b);
  unref_all(f, 8);
  actio_runtime_destroy(rt);
}

/* A statement prepared, run pooled with typed values (an array among
 * them) and in a session, the session released; a second session dropped
 * without a release while its query runs, and a pooled query waiting for
 * its connection, when the runtime stops now. */
static void sessions_and_statements(void) {
  actio_runtime *rt = NULL;
  actio_actor *db;
  actio_future *f[9] = {0};
  actio_db_stmt *stmt = NULL;
  actio_db_array *arr = NULL;
  actio_db_opts o = one_connection;
  o.dsn = dsn;
  actio_db_param elems[] = {{.type = ACTIO_DB_INT4, .v.i = 1}, {.type = ACTIO_DB_INT4, .null = 1}};
  actio_db_param typed[] = {{.type = ACTIO_DB_INT8, .v.i = 40},
                            {.type = ACTIO_DB_INT4_ARRAY, .v.array = {elems, 2}},
                            {.type = ACTIO_DB_NUMERIC, .v.s = "2.5"},
                            {.type = ACTIO_DB_TEXT, .v.s = "t"}};
  TRY(actio_runtime_create(&rt, NULL));
  TRY(actio_db_spawn(rt, &o, &db));
  TRY(actio_db_prepare(db, "SELECT $1::int8 + 2, $2::int4[], $3::numeric, $4::text", 4, NULL, &f[0]));
  AWAIT(f[0]);
  stmt = actio_future_take(f[0]);
  ck_assert_int_eq(actio_db_stmt_params(stmt), 4);
  actio_db_request run = {.stmt = stmt, .nparams = 4, .typed = typed, .binary_results = 1};
  TRY(actio_db_send(db, &run, &f[1]));
  AWAIT(f[1]);
  int64_t v = 0;
  ck_assert_int_eq(actio_db_int64(actio_future_value(f[1]), 0, 0, &v), 0);
  ck_assert_int_eq(v, 42);
  if (ok(actio_db_array_get(actio_future_value(f[1]), 0, 1, &arr), "actio_db_array_get"))
    ck_assert_uint_eq(arr->count, 2);
  char *num = NULL;
  if (ok(actio_db_numeric(actio_future_value(f[1]), 0, 2, &num), "actio_db_numeric"))
    ck_assert_str_eq(num, "2.5");
  free(num);
  TRY(actio_db_acquire(db, &f[2]));
  AWAIT(f[2]);
  actio_db_session *s = actio_future_value(f[2]);
  TRY(actio_db_session_query(s, "SET application_name = 'faults'", 0, NULL, &f[3]));
  TRY(actio_db_session_send(s, &run, &f[4]));
  AWAIT(f[3]);
  AWAIT(f[4]);
  TRY(actio_db_session_release(s, &f[5]));
  AWAIT(f[5]);
  actio_future *refused = NULL; /* released: refused, whatever fails */
  ck_assert_int_eq(actio_db_session_query(s, "SELECT 1", 0, NULL, &refused), ACTIO_ESTATE);
  ck_assert_int_eq(actio_db_session_release(s, &refused), ACTIO_ESTATE);
  ck_assert_ptr_null(refused);
  TRY(actio_db_acquire(db, &f[6]));
  AWAIT(f[6]);
  TRY(actio_db_session_query(actio_future_value(f[6]), "SELECT pg_sleep(30)", 0, NULL, &f[7]));
  actio_future_unref(f[6]); /* dropped: released once its query is over */
  f[6] = NULL;
  TRY(actio_db_query(db, "SELECT 1", 0, NULL, &f[8])); /* waits for the connection */
out:
  actio_db_array_free(arr);
  actio_db_stmt_destroy(stmt);
  unref_all(f, 7); /* before the runtime: a session's goes back to its pool */
  if (rt != NULL) /* now: a drain would wait for it */
    ck_assert_int_eq(actio_runtime_stop(rt, ACTIO_STOP_NOW), 0);
  for (int i = 7; i < 9; i++) {
    if (f[i] != NULL)
      settled(f[i], ACTIO_ECANCELED, "a query left running or waiting at the runtime's stop");
    actio_future_unref(f[i]);
  }
  actio_runtime_destroy(rt);
}

/* Hands the upload's body over in two calls, the first after a pause. */
typedef struct upload_state {
  int calls;
} upload_state;

static int upload_body(void *arg, void *buf, size_t cap, size_t *len, actio_future **ready) {
  upload_state *u = arg;
  ck_assert_uint_ge(cap, 4);
  *len = 0;
  switch (u->calls++) {
  case 0: return actio_future_resolved(ready, NULL, NULL); /* a pause */
  case 1: memcpy(buf, "pong", 4); *len = 4; return 0;
  default: return 0;
  }
}

/* An upload paused on a future nobody completes. */
typedef struct held_upload {
  actio_future *held;
  atomic_int paused;
} held_upload;

static int upload_held(void *arg, void *buf, size_t cap, size_t *len, actio_future **ready) {
  held_upload *h = arg;
  (void)buf;
  (void)cap;
  *len = 0;
  actio_future_ref(h->held); /* the transfer's */
  *ready = h->held;
  atomic_store_explicit(&h->paused, 1, memory_order_release);
  return 0;
}

static void on_trace(void *arg, const actio_http_trace *t) {
  (void)t;
  atomic_fetch_add_explicit((atomic_int *)arg, 1, memory_order_relaxed);
}

static void on_log(void *arg, const char *line) {
  ck_assert_ptr_nonnull(line);
  atomic_fetch_add_explicit((atomic_int *)arg, 1, memory_order_relaxed);
}

/* An upload callback's body, a file's, and headers before a streamed
 * body, traced and logged; and two left in flight when the runtime stops:
 * one waiting for its response, one for its upload's next bytes. */
static void http_bodies(void) {
  actio_runtime *rt = NULL;
  actio_actor *http;
  actio_future *f[6] = {0};
  held_upload h = {0};
  atomic_int traced = 0, logged = 0;
  upload_state u = {0};
  size_t streamed = 0;
  char echo_url[200], chunked[200], delay[200];
  snprintf(echo_url, sizeof echo_url, "%s/echo", fixture);
  snprintf(chunked, sizeof chunked, "%s/chunked/5000", fixture);
  snprintf(delay, sizeof delay, "%s/delay/30000", fixture);
  actio_http_request up = {.url = echo_url, .upload = upload_body, .upload_arg = &u};
  actio_http_request filed = {.url = echo_url, .body_file = body_file};
  actio_http_request stream = {.url = chunked, .on_chunk = count_bytes, .chunk_arg = &streamed};
  actio_http_opts o = {.workers = 1, .trace = on_trace, .trace_arg = &traced,
                       .log = on_log, .log_arg = &logged};
  TRY(actio_runtime_create(&rt, NULL));
  TRY(actio_http_spawn(rt, &o, &http));
  TRY(actio_http_send(http, &up, &f[0]));
  AWAIT(f[0]);
  ck_assert_ptr_nonnull(strstr(((const actio_http_response *)actio_future_value(f[0]))->body, "pong"));
  TRY(actio_http_send(http, &filed, &f[1]));
  AWAIT(f[1]);
  ck_assert_ptr_nonnull(strstr(((const actio_http_response *)actio_future_value(f[1]))->body, "filed"));
  actio_http_request both = {.url = echo_url, .upload = upload_body, .body_file = body_file};
  ck_assert_int_eq(actio_http_send(http, &both, &f[2]), ACTIO_EINVAL);
  ck_assert_int_eq(actio_http_send_head(http, &stream, NULL, &f[2]), ACTIO_EINVAL);
  TRY(actio_http_send_head(http, &stream, &f[2], &f[3]));
  AWAIT(f[2]);
  ck_assert_int_eq(((const actio_http_response *)actio_future_value(f[2]))->status, 200);
  AWAIT(f[3]);
  ck_assert_uint_eq(streamed, 5000);
  ck_assert_int_gt(atomic_load_explicit(&traced, memory_order_relaxed), 0);
  ck_assert_int_gt(atomic_load_explicit(&logged, memory_order_relaxed), 0);
  TRY(actio_http_get(http, delay, &f[4]));
  TRY(actio_future_create(&h.held));
  actio_http_request paused = {.url = echo_url, .upload = upload_held, .upload_arg = &h};
  TRY(actio_http_send(http, &paused, &f[5]));
  while (!atomic_load_explicit(&h.paused, memory_order_acquire) && !actio_future_is_done(f[5]))
    sched_yield(); /* paused, or failed */
out:
  unref_all(f, 4);
  if (rt != NULL) /* now: a drain would wait for them */
    ck_assert_int_eq(actio_runtime_stop(rt, ACTIO_STOP_NOW), 0);
  for (int i = 4; i < 6; i++) {
    if (f[i] != NULL)
      settled(f[i], ACTIO_ECANCELED, "a request left in flight at the runtime's stop");
    actio_future_unref(f[i]);
  }
  if (h.held != NULL) /* its producer completes it: the transfer's bell waits on it */
    actio_future_resolve(h.held, NULL, NULL);
  actio_future_unref(h.held);
  actio_runtime_destroy(rt);
}

/* Jobs published to a work queue of their own and done by a worker for
 * the echo actor (its answer acks them); a job left unacked at a failure
 * is delivered again after the ack wait, so the queue empties whatever
 * failed, once the worker runs. */
static void jobs(void) {
  static int runs; /* a stream per run: none inherits another's jobs */
  actio_runtime *rt = NULL;
  actio_actor *a, *c;
  actio_nats_worker *w = NULL;
  actio_future *f[3] = {0};
  char name[32], subject[48], id[48];
  snprintf(name, sizeof name, "F%d_%d", (int)getpid(), ++runs);
  snprintf(subject, sizeof subject, "f%d_%d.job", (int)getpid(), runs);
  actio_nats_stream_opts so = {.name = name, .subjects = subject, .memory = 1};
  actio_nats_worker_opts wo = {.stream = name, .consumer = "w", .batch = 2,
                               .ack_wait_ms = 1000, .nak_delay_ms = 10, .fetch_wait_ms = 100};
  char err[256] = "";
  actio_nats_opts no = {.url = nats_url, .errbuf = err, .errbuf_size = sizeof err};
  TRY(actio_runtime_create(&rt, NULL));
  TRY(echo_start(rt, (void *)0, &a));
  if (!ok_msg(actio_nats_spawn(rt, &no, &c), err, "actio_nats_spawn"))
    goto out;
  TRY(actio_nats_stream_ensure(c, &so, err, sizeof err));
  for (int i = 0; i < 3; i++) {
    snprintf(id, sizeof id, "%s-%d", name, i);
    actio_nats_job job = {.subject = subject, .data = "job", .len = 3, .id = id};
    TRY(actio_nats_job_publish(c, &job, &f[i]));
  }
  for (int i = 0; i < 3; i++)
    AWAIT(f[i]);
  TRY(actio_nats_worker_create(c, a, &wo, &w, err, sizeof err));
  actio_nats_stream_info info = {.msgs = 1};
  int rc;
  while ((rc = actio_nats_stream_info_get(c, name, &info)) != 0 || info.msgs > 0) {
    ok(rc, "actio_nats_stream_info_get"); /* the fault's: asked again */
    nanosleep(&(struct timespec){0, 1000000}, NULL);
  }
  TRY(actio_nats_worker_stop(w));
out:
  actio_nats_worker_destroy(w);
  unref_all(f, 3);
  actio_runtime_destroy(rt);
}

/* 70 asks of an actor with two workers (two completing threads, so two
 * lanes), more than a lane's segment of 31 on each, registered on a
 * queue and drained; 5 more left registered when the queue goes. The
 * queue may not lose an event for want of memory once a registration
 * was accepted. */
static void cq_lanes(void) {
  enum { N = 70, LEFT = 5 };
  actio_runtime *rt = NULL;
  actio_actor *a;
  actio_cq *cq = NULL;
  actio_future *f[N + LEFT] = {0};
  int added = 0;
  TRY(actio_runtime_create(&rt, NULL));
  TRY(echo_start(rt, (void *)2, &a));
  TRY(actio_cq_create(&cq));
  for (; added < N; added++) {
    TRY(actio_ask(a, (void *)(uintptr_t)(added + 1), -1, &f[added]));
    TRY(actio_cq_add(cq, f[added], (uint64_t)added));
  }
out:
  for (int got = 0; cq != NULL && got < added;) {
    struct pollfd p = {.fd = actio_cq_fd(cq), .events = POLLIN};
    ck_assert_int_eq(poll(&p, 1, -1), 1);
    actio_cq_event ev[16];
    int n = actio_cq_drain(cq, ev, 16);
    for (int i = 0; i < n; i++, got++) {
      if (settled(ev[i].future, 0, "a drained ask") == 0)
        ck_assert_ptr_eq(actio_future_value(ev[i].future), (void *)(uintptr_t)(ev[i].tag + 1));
      actio_future_unref(ev[i].future);
    }
  }
  for (int i = N; cq != NULL && added == N && i < N + LEFT; i++)
    if (ok(actio_ask(a, (void *)1, -1, &f[i]), "actio_ask"))
      ok(actio_cq_add(cq, f[i], (uint64_t)i), "actio_cq_add");
  actio_cq_destroy(cq);
  unref_all(f, N + LEFT);
  actio_runtime_destroy(rt);
}

typedef struct scenario {
  const char *name;
  void (*run)(void);
} scenario;

static const scenario scenarios[] = {
    {"file requests", file_requests}, {"HTTP requests", http_requests},
    {"queries", queries},             {"transactions", transactions},
    {"combinators", combinators},     {"asks", asks},
    {"supervisor restart", supervisor_restart}, {"completion queue", completion_queue},
    {"groups, queues and locks", sync_structures},
    {"timers", timers},               {"durable writes", durable_writes},
    {"batcher", batcher},             {"sessions and statements", sessions_and_statements},
    {"HTTP bodies", http_bodies},     {"jobs", jobs},
    {"completion queue lanes", cq_lanes},
};
enum { NSCENARIOS = sizeof scenarios / sizeof *scenarios };

/* ---- running them ---- */

/* The alarm (a hang) or an abort (a broken invariant): says which run. */
static void on_signal(int sig) {
  const char *what = sig == SIGALRM ? ": hung\n" : ": aborted\n";
  if (write(2, run_note, strlen(run_note)) < 0 || write(2, what, strlen(what)) < 0)
    _exit(3);
  signal(SIGABRT, SIG_DFL);
  abort();
}

/* One run of s under the current mode; returns how many of its calls and
 * futures failed. `n` names the fault in messages. */
static long run_once(const scenario *s, long n) {
  snprintf(run_note, sizeof run_note, "%s, %s fault %ld", s->name, mode_name(mode), n);
  failures = 0;
  /* Here, not in main: Check's runner installs its own handler, and a
   * test's process inherits it. */
  struct sigaction sa = {.sa_handler = on_signal};
  sigaction(SIGALRM, &sa, NULL);
  sigaction(SIGABRT, &sa, NULL);
  alarm(HANG_SECONDS);
  s->run();
  alarm(0);
  return failures;
}

/* Fails the test if the last run leaked (under ASan; it needs a few
 * descriptors of its own). */
static void check_leaks(void) {
#ifdef FAULTS_ASAN
  if (__lsan_do_recoverable_leak_check() != 0)
    ck_abort_msg("%s: leaked (above)", run_note);
#endif
}

/* To reproduce one failure: FAULTS_SCENARIO picks the scenarios whose
 * name contains it, FAULTS_AT the one fault to inject. */
static int picked(const scenario *s) {
  const char *only = getenv("FAULTS_SCENARIO");
  return only == NULL || strstr(s->name, only) != NULL;
}

/* Runs s with call n of `kind` failing, for n = 1, 2, ... until a run makes
 * fewer than n calls. */
static void torture(const scenario *s, fault_kind kind) {
  if (!picked(s))
    return;
  mode = (int)kind;
  fault_arm(kind, 0);
  run_once(s, 0);
  long count = fault_disarm(), n = 1;
  check_leaks();
  ck_assert_int_eq(failures, 0);
  const char *at = getenv("FAULTS_AT");
  if (at != NULL)
    n = atol(at);
  for (;; n++) {
    fault_arm(kind, n);
    run_once(s, n);
    fault_disarm();
    check_leaks();
    if (!fault_injected() || at != NULL)
      break;
  }
  printf("%-20s %-10s %4ld calls, %4ld runs\n", s->name, mode_name(kind), count, n);
}

START_TEST(allocations_fail_one_at_a_time) {
  torture(&scenarios[_i], FAULT_ALLOC);
}
END_TEST

START_TEST(threads_and_eventfds_fail_one_at_a_time) {
  torture(&scenarios[_i], FAULT_THREAD);
  torture(&scenarios[_i], FAULT_EVENTFD);
}
END_TEST

START_TEST(fsyncs_fail_one_at_a_time) {
  torture(&scenarios[_i], FAULT_FSYNC);
}
END_TEST

/* An atomic write whose folder fsync (its second fsync, after the file's)
 * fails completes with that error, as a durable group's write does: its
 * name may not be on the disk. The new content is in place, no temporary. */
START_TEST(atomic_write_fails_with_its_folder_fsync) {
  actio_runtime *rt;
  actio_actor *files;
  actio_future *f;
  char root[300]; /* its own, so the scenarios' listings stay as they were */
  snprintf(root, sizeof root, "%s/folder-fsync", files_dir);
  ck_assert_int_eq(mkdir(root, 0755), 0);
  ck_assert_int_eq(actio_runtime_create(&rt, NULL), 0);
  ck_assert_int_eq(actio_file_spawn(rt, &(actio_file_opts){.root = root, .workers = 1},
                                    &files), 0);
  ck_assert_int_eq(actio_file_write(files, "f", "old", 3, 0, &f), 0);
  ck_assert_int_eq(actio_future_wait(f, -1), 0);
  actio_future_unref(f);
  fault_arm(FAULT_FSYNC, 2);
  ck_assert_int_eq(actio_file_write(files, "f", "new!", 4, ACTIO_WRITE_ATOMIC, &f),
                   0);
  ck_assert_int_eq(actio_future_wait(f, -1), -EIO);
  ck_assert_int_eq(fault_disarm(), 2);
  ck_assert(fault_injected());
  ck_assert_str_eq(actio_future_errmsg(f), "write f: Input/output error");
  actio_future_unref(f);
  ck_assert_int_eq(actio_file_read(files, "f", &f), 0);
  ck_assert_int_eq(actio_future_wait(f, -1), 0);
  ck_assert_str_eq(((const actio_buf *)actio_future_value(f))->data, "new!");
  actio_future_unref(f);
  ck_assert_int_eq(actio_file_clean_leftovers(files, ".", &f), 0);
  ck_assert_int_eq(actio_future_wait(f, -1), 0);
  ck_assert_uint_eq(*(const uint64_t *)actio_future_value(f), 0);
  actio_future_unref(f);
  actio_runtime_destroy(rt);
}
END_TEST

/* A group over several folders fsyncs each folder once (folders named
 * alike share one), after a file fsynced again as it takes over another
 * mode; a failing folder fsync fails that folder's files only. Driven
 * through io/file, where the fsyncs are counted. */
START_TEST(a_group_fsyncs_each_folder_once) {
  char top[300], p[400];
  snprintf(top, sizeof top, "%s/group-folders", files_dir);
  ck_assert_int_eq(mkdir(top, 0755), 0);
  static const char *const sub[] = {"a", "b"};
  for (size_t i = 0; i < 2; i++) {
    snprintf(p, sizeof p, "%s/%s", top, sub[i]);
    ck_assert_int_eq(mkdir(p, 0755), 0);
  }
  snprintf(p, sizeof p, "%s/b/old", top);
  int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
  ck_assert_int_ge(fd, 0);
  close(fd);
  actio__root root;
  ck_assert_int_eq(actio__root_open(&root, top), 0);
  /* Folders "a", the root, "b", "./a": four fsyncs, after b/old's. */
  static const char *const paths[] = {"a/x", "top", "b/x", "./a/y", "a/z", "b/old", "b/y"};
  enum { N = sizeof paths / sizeof *paths };
  for (int fail = 0; fail < 2; fail++) {
    actio__fio_atomic *as[N];
    void *args[N] = {NULL};
    int rcs[N];
    umask(022); /* new content 0644: b/old's 0600 is taken over */
    for (size_t i = 0; i < N; i++) {
      ck_assert_int_eq(actio__fio_atomic_open(&root, paths[i], 0666, &as[i]), 0);
      ck_assert_int_eq(actio__fio_write_fd(actio__fio_atomic_fd(as[i]), paths[i],
                                           strlen(paths[i]), -1), 0);
      ck_assert_int_eq(actio__fio_atomic_flush(as[i]), 0);
    }
    fault_arm(FAULT_FSYNC, fail ? 4 : 0); /* 4: folder b's */
    actio__fio_atomic_commit_group(as, N, rcs, NULL, NULL, args);
    ck_assert_int_eq(fault_disarm(), 5);
    ck_assert(fault_injected() == fail);
    for (size_t i = 0; i < N; i++) {
      ck_assert_int_eq(rcs[i], fail && paths[i][0] == 'b' ? -EIO : 0);
      snprintf(p, sizeof p, "%s/%s", top, paths[i]);
      struct stat st;
      ck_assert_int_eq(stat(p, &st), 0);
      ck_assert_uint_eq(st.st_mode & 07777, i == 5 ? 0600 : 0644);
    }
  }
  actio__root_close(&root);
}
END_TEST

/* Hooks for actio__fio_syncfs_flushes: any file system trusted, or none
 * (the type asked of kept). */
static _Atomic long fs_asked;
static int fs_flushes(long f_type) {
  (void)f_type;
  return 1;
}
static int fs_unknown(long f_type) {
  atomic_store(&fs_asked, f_type);
  return 0;
}

/* A folder for a group's cases: top, top/a, and top/prev (0600, "before"). */
static void group_folder(const char *top) {
  char p[400];
  ck_assert_int_eq(mkdir(top, 0755), 0);
  snprintf(p, sizeof p, "%s/a", top);
  ck_assert_int_eq(mkdir(p, 0755), 0);
  snprintf(p, sizeof p, "%s/prev", top);
  int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(write(fd, "before", 6), 6);
  close(fd);
}

/* Commits "a/x", "prev" and "y" (each its path as content) as one group in
 * top, whose contents it flushes, with the fail-th flush call failing (0:
 * none): `calls` made, the items of the `failed` mask failing, each of them
 * left as it was (prev keeps its content and mode, no temporary left). */
static void group_case(const char *top, int fail, int calls, unsigned failed_mask) {
  static const char *const paths[] = {"a/x", "prev", "y"};
  enum { N = sizeof paths / sizeof *paths };
  char p[400];
  actio__root root;
  ck_assert_int_eq(actio__root_open(&root, top), 0);
  actio__fio_atomic *as[N];
  void *args[N] = {NULL};
  int rcs[N];
  dev_t devs[N];
  umask(022);
  for (size_t i = 0; i < N; i++) {
    ck_assert_int_eq(actio__fio_atomic_open(&root, paths[i], 0666, &as[i]), 0);
    ck_assert_int_eq(actio__fio_write_fd(actio__fio_atomic_fd(as[i]), paths[i],
                                         strlen(paths[i]), -1), 0);
  }
  fault_arm(FAULT_FSYNC, fail);
  actio__fio_atomic_commit_group(as, N, rcs, devs, NULL, args);
  ck_assert_int_eq(fault_disarm(), calls);
  ck_assert(fault_injected() == (fail != 0));
  for (size_t i = 0; i < N; i++) {
    int failed = (failed_mask >> i) & 1;
    ck_assert_int_eq(rcs[i], failed ? -EIO : 0);
    snprintf(p, sizeof p, "%s/%s", top, paths[i]);
    char got[16] = "";
    int fd = open(p, O_RDONLY);
    if (failed && i != 1) {
      ck_assert_int_lt(fd, 0); /* never put in place */
      continue;
    }
    ck_assert_int_ge(fd, 0);
    ck_assert_int_ge(read(fd, got, sizeof got - 1), 0);
    close(fd);
    ck_assert_str_eq(got, failed ? "before" : paths[i]);
    struct stat st;
    ck_assert_int_eq(stat(p, &st), 0);
    ck_assert_uint_eq(st.st_mode & 07777, i == 1 ? 0600 : 0644);
  }
  /* Nothing but what was there and what was put in place. */
  DIR *d = opendir(top);
  ck_assert_ptr_nonnull(d);
  int entries = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;)
    entries += e->d_name[0] != '.';
  closedir(d);
  ck_assert_int_eq(entries, (failed_mask & 4) ? 2 : 3); /* a, prev (, y) */
  actio__root_close(&root);
}

/* A group that flushes its contents itself (syncfs, then an fsync of one
 * content, then a check of each other content's own write error): the
 * syncfs or the fsync failing fails every item, none put in place (a
 * replaced file keeps its old content and mode), no temporary left; a
 * content's own check failing fails that item alone; none failing, one
 * flush for the group, then the folders' fsyncs as above. */
START_TEST(a_group_flush_failing_fails_the_whole_group) {
  char top[300];
  snprintf(top, sizeof top, "%s/group-flush", files_dir);
  group_folder(top);
  /* One syncfs for the group wherever the test's folder is. */
  atomic_store_explicit(&actio__fio_fs_hook, fs_flushes, memory_order_release);
  /* The call that fails (0: none), the calls made, the items that fail.
   * The calls: syncfs, fsync, the checks of prev and y, prev's fsync for
   * the mode it takes over, folder a's and the root's fsyncs. In this
   * order, no case finds what an earlier one put in place. */
  static const struct {
    int fail, calls;
    unsigned failed;
  } cases[] = {{1, 1, 7}, {2, 2, 7}, {3, 6, 2}, {0, 7, 0}};
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++)
    group_case(top, cases[k].fail, cases[k].calls, cases[k].failed);
  atomic_store_explicit(&actio__fio_fs_hook, NULL, memory_order_release);
}
END_TEST

/* On a file system where syncfs may not flush (FUSE, NFS...: not known to
 * actio__fio_syncfs_flushes), a group fsyncs each content before any
 * rename, and one failing fails that item alone. */
START_TEST(a_group_on_an_unknown_file_system_fsyncs_each) {
  ck_assert(actio__fio_syncfs_flushes(EXT4_SUPER_MAGIC));
  ck_assert(actio__fio_syncfs_flushes(TMPFS_MAGIC));
  ck_assert(!actio__fio_syncfs_flushes(FUSE_SUPER_MAGIC));
  ck_assert(!actio__fio_syncfs_flushes(NFS_SUPER_MAGIC));
  ck_assert(!actio__fio_syncfs_flushes(0));
  /* The calls: the three contents' fsyncs, prev's fsync for the mode it
   * takes over, the fsyncs of folder a and of the root, each if an item
   * is left in it. No syncfs, no check. A folder each. */
  static const struct {
    int fail, calls;
    unsigned failed;
  } cases[] = {{0, 6, 0}, {1, 5, 1}, {2, 5, 2}, {3, 6, 4}};
  atomic_store_explicit(&actio__fio_fs_hook, fs_unknown, memory_order_release);
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
    char top[300];
    snprintf(top, sizeof top, "%s/unknown-fs-%zu", files_dir, k);
    group_folder(top);
    atomic_store(&fs_asked, 0);
    group_case(top, cases[k].fail, cases[k].calls, cases[k].failed);
    struct statfs sf;
    ck_assert_int_eq(statfs(top, &sf), 0);
    ck_assert_int_eq(atomic_load(&fs_asked), (long)sf.f_type); /* asked of its own */
  }
  atomic_store_explicit(&actio__fio_fs_hook, NULL, memory_order_release);
}
END_TEST

/* The statements actio_db_prepare named on db's connection (a pool of
 * one), once those destroyed are deallocated: polled, as the workers reap
 * destroyed statements when free to (bounded in queries, not in time). */
static int64_t prepared_settled(actio_actor *db) {
  int64_t n = -1;
  for (int i = 0; i < 1000 && n != 0; i++) {
    actio_future *f;
    actio_db_request q = {.sql = "SELECT count(*) FROM pg_prepared_statements "
                                 "WHERE name LIKE 'actio\\_s%'",
                          .no_cache = 1};
    ck_assert_int_eq(actio_db_send(db, &q, &f), 0);
    ck_assert_int_eq(actio_future_wait(f, -1), 0);
    ck_assert_int_eq(actio_db_int64(actio_future_value(f), 0, 0, &n), 0);
    actio_future_unref(f);
  }
  return n;
}

/* A prepare failing for want of memory at any of its allocations, the
 * copy of its description among them (the server has prepared it then),
 * leaves no statement on the server. */
START_TEST(failed_prepare_leaves_no_statement) {
  actio_runtime *rt;
  actio_actor *db;
  ck_assert_int_eq(actio_runtime_create(&rt, NULL), 0);
  ck_assert_int_eq(actio_db_spawn(rt, &(actio_db_opts){.dsn = dsn, .max_connections = 1}, &db),
                   0);
  ck_assert_int_eq(prepared_settled(db), 0); /* connected */
  long n = 1;
  for (int injected = 1; injected; n++) {
    actio_future *f = NULL;
    fault_arm(FAULT_ALLOC, n);
    int rc = actio_db_prepare(db, "SELECT $1::int AS a, 'x'::text AS b", 0, NULL, &f);
    int st = rc == 0 ? actio_future_wait(f, -1) : rc;
    fault_disarm();
    injected = fault_injected();
    ck_assert_msg(st == 0 || (injected && st == ACTIO_ENOMEM), "allocation %ld: %s", n,
                  actio_err_name(st));
    actio_future_unref(f); /* destroys a statement made */
    ck_assert_msg(prepared_settled(db) == 0, "allocation %ld failing left a statement", n);
  }
  ck_assert_int_gt(n, 2);
  actio_runtime_destroy(rt);
}
END_TEST

/* Runs s with 0, 1, 2, ... descriptors free until it succeeds whole. */
START_TEST(descriptors_run_out) {
  const scenario *s = &scenarios[_i];
  if (!picked(s))
    return;
  struct rlimit all;
  ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &all), 0);
#ifdef FAULTS_SANITIZER
  /* A report needs the symbolizer (a process behind a pipe), and TSan's
   * suppressions need its names: start it while descriptors are left. */
  char name[64];
  __sanitizer_symbolize_pc(__builtin_return_address(0), "%f", name, sizeof name);
#endif
  int lowest = dup(0); /* the lowest free descriptor: those below are taken */
  ck_assert_int_ge(lowest, 0);
  close(lowest);
  mode = FDS;
  long k = 0;
  for (;; k++) {
    ck_assert_int_lt(k, 256);
    struct rlimit few = {(rlim_t)(lowest + k), all.rlim_max};
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &few), 0);
    long failed = run_once(s, k);
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &all), 0);
    check_leaks();
    if (failed == 0)
      break;
  }
  printf("%-20s %-10s %4ld free before it ran\n", s->name, mode_name(FDS), k);
}
END_TEST

/* ---- the servers, started once by main ---- */

static int pg(const char *verb) {
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "bash '%s' %s '%s' > /dev/null", PG_SERVER_SH, verb, pg_dir);
  return system(cmd);
}

/* The DSN from the env file pg_server.sh wrote: PG_DSN='...'. */
static int read_dsn(void) {
  char path[300], line[1024];
  snprintf(path, sizeof path, "%s/env", pg_dir);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return -1;
  while (fgets(line, sizeof line, f) != NULL)
    if (sscanf(line, "PG_DSN='%511[^']'", dsn) == 1)
      break;
  fclose(f);
  return dsn[0] ? 0 : -1;
}

/* A JetStream cluster in nats_dir; nats_url its first node. */
static int nats_start(void) {
  char env[300];
  if (mkdtemp(nats_dir) == NULL || nats_server_sh("cluster", nats_dir, NULL) != 0)
    return -1;
  snprintf(env, sizeof env, "%s/cluster.env", nats_dir);
  return env_get(env, "NATS_JS_URL1", nats_url, sizeof nats_url);
}

int main(void) {
  snprintf(pg_dir, sizeof pg_dir, "/tmp/actio-test-faults-pg-XXXXXX");
  snprintf(files_dir, sizeof files_dir, "/tmp/actio-test-faults-XXXXXX");
  snprintf(body_file, sizeof body_file, "/tmp/actio-test-faults-body-XXXXXX");
  int rc = EXIT_FAILURE, body = mkstemp(body_file); /* a body file to send */
  snprintf(nats_dir, sizeof nats_dir, "/tmp/actio-test-faults-nats-XXXXXX");
  if (body < 0 || write(body, "filed", 5) != 5 || close(body) != 0 || nats_start() != 0 ||
      mkdtemp(files_dir) == NULL || mkdtemp(pg_dir) == NULL || fixture_spawn(FIXTURE_SERVER, &fixture_pid, fixture, sizeof fixture) != 0 ||
      pg("start") != 0 || read_dsn() != 0) {
    fprintf(stderr, "test_faults: could not start the servers\n");
  } else {
    Suite *s = suite_create("faults");
    TCase *tc = tcase_with_timeout("faults", 1800);
    tcase_add_loop_test(tc, allocations_fail_one_at_a_time, 0, NSCENARIOS);
    tcase_add_loop_test(tc, threads_and_eventfds_fail_one_at_a_time, 0, NSCENARIOS);
    tcase_add_loop_test(tc, fsyncs_fail_one_at_a_time, 0, NSCENARIOS);
    tcase_add_loop_test(tc, descriptors_run_out, 0, NSCENARIOS);
    suite_add_tcase(s, tc);
    TCase *one = tcase_create("one fault"); /* CK_RUN_CASE="one fault" runs these alone */
    tcase_add_test(one, atomic_write_fails_with_its_folder_fsync);
    tcase_add_test(one, a_group_fsyncs_each_folder_once);
    tcase_add_test(one, a_group_flush_failing_fails_the_whole_group);
    tcase_add_test(one, a_group_on_an_unknown_file_system_fsyncs_each);
    tcase_add_test(one, failed_prepare_leaves_no_statement);
    suite_add_tcase(s, one);
    rc = run_suite(s);
  }
  if (fixture_pid > 0) {
    kill(fixture_pid, SIGTERM);
    waitpid(fixture_pid, NULL, 0);
  }
  pg("stop");
  if (nats_dir[0] != '\0')
    nats_servers_stop(nats_dir, "test_faults");
  char cmd[900];
  snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s' '%s'", pg_dir, files_dir, body_file);
  if (system(cmd) != 0)
    fprintf(stderr, "test_faults: could not remove %s and %s\n", pg_dir, files_dir);
  return rc;
}

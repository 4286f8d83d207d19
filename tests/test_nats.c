/* test_nats.c: remote actors over NATS (actio/nats.h) against real
 * nats-server processes started by tests/nats_server.sh. */
#include <dirent.h>
#include <nats/nats.h>
#include <time.h>

#include "actors/core/actor_internal.h"
#include "actors/nats/nats_internal.h"
#include "nats_server.h"
#include "pg_server.h"
#include "test_util.h"

static char servers_dir[256];
static char nats_url[256], auth_url[256], auth_user[64], auth_password[64];
static char token_url[256], token[64], tls_url[256], ca_file[512], nkey_url[256],
    nkey_public[128], nkey_seed_file[512];

static actio_runtime *rt;

/* An error code of no meaning to actio: it travels all the same. */
#define ACTIO_ERANGE_TEST (-ERANGE)

static void setup(void) { ck_assert_int_eq(actio_runtime_create(&rt, NULL), 0); }
static void teardown(void) { actio_runtime_destroy(rt); }

static actio_actor *connect_plain(void) {
  actio_actor *c;
  char err[256] = "";
  actio_nats_opts o = {.url = nats_url, .errbuf = err, .errbuf_size = sizeof err};
  int rc = actio_nats_spawn(rt, &o, &c);
  ck_assert_msg(rc == 0, "connect: %s: %s", actio_err_name(rc), err);
  return c;
}

/* ---- the served actors ---- */

/* A responder: counts what it handles, and answers with the request's
 * bytes; an id it has seen takes no effect twice (idempotent); held, it
 * keeps the replies unanswered. */
typedef struct responder {
  pthread_mutex_t mu;
  atomic_int handled;
  int hold;                  /* 1: keep the replies */
  actio_future *held[256];
  atomic_int nheld;
  int fail_code;             /* != 0: fail every reply with it */
} responder;

/* Effects by request id, shared by the responders of a test. */
static pthread_mutex_t effects_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned char effects[4096];
static atomic_int effects_total;

static int respond(actio_actor *self, void *worker, void *msg, actio_future *reply) {
  (void)worker;
  responder *r = actio_actor_state(self);
  actio_nats_msg *m = msg;
  size_t len;
  const char *data = actio_nats_msg_data(m, &len);
  atomic_fetch_add(&r->handled, 1);
  if (len > 0 && len < 16) {
    char id[16];
    memcpy(id, data, len);
    id[len] = '\0';
    unsigned k = (unsigned)strtoul(id, NULL, 10) % sizeof effects;
    pthread_mutex_lock(&effects_mu);
    if (!effects[k]++) /* the effect: once per id */
      atomic_fetch_add(&effects_total, 1);
    else
      effects[k] = 1;
    pthread_mutex_unlock(&effects_mu);
  }
  if (r->fail_code != 0)
    return actio_future_fail(reply, r->fail_code, "remote failure %d", 42), 0;
  pthread_mutex_lock(&r->mu);
  int hold = r->hold;
  if (hold) {
    actio_future_ref(reply);
    r->held[atomic_fetch_add(&r->nheld, 1)] = reply;
  }
  pthread_mutex_unlock(&r->mu);
  if (hold)
    return 0;
  actio_nats_msg *out;
  ck_assert_int_eq(actio_nats_msg_create(&out, data, len), 0);
  ck_assert_int_eq(actio_nats_msg_add_header(out, "Served-By", actio_actor_name(self)), 0);
  if (actio_future_resolve(reply, out, actio_nats_msg_free_fn) != 0)
    actio_nats_msg_free(out);
  return 0;
}

static const actio_behavior responder_behavior = {.handle = respond};

static actio_actor *spawn_responder(responder *r, const char *name) {
  memset(r, 0, sizeof *r);
  pthread_mutex_init(&r->mu, NULL);
  actio_actor *a;
  actio_actor_opts o = {.name = name, .state = r};
  ck_assert_int_eq(actio_actor_spawn(rt, &responder_behavior, &o, &a), 0);
  return a;
}

/* Answers the replies r held (with an empty reply). */
static void release_held(responder *r) {
  pthread_mutex_lock(&r->mu);
  r->hold = 0;
  int n = atomic_load(&r->nheld);
  atomic_store(&r->nheld, 0);
  pthread_mutex_unlock(&r->mu);
  for (int i = 0; i < n; i++) {
    actio_future_resolve(r->held[i], NULL, NULL);
    actio_future_unref(r->held[i]);
  }
}

static actio_future *ask_id(actio_actor *c, const char *subject, unsigned id,
                            const actio_nats_request *base) {
  char data[16];
  snprintf(data, sizeof data, "%u", id);
  actio_nats_request req = base ? *base : (actio_nats_request){0};
  req.subject = subject;
  req.data = data;
  req.len = strlen(data);
  actio_future *f;
  int rc = actio_nats_ask(c, &req, &f);
  ck_assert_msg(rc == 0, "ask %u: %s", id, actio_err_name(rc));
  return f;
}

/* A responder that holds its replies, served on subject over a
 * connection of its own (*server); the requester's connection returned. */
static actio_actor *serve_holder(responder *r, const char *subject, actio_actor **server,
                                 actio_nats_service **svc) {
  actio_actor *a = spawn_responder(r, "holder");
  r->hold = 1;
  *server = connect_plain();
  ck_assert_int_eq(actio_nats_serve(*server, subject, a, NULL, svc), 0);
  return connect_plain();
}

/* Three responders, each served on subject in queue group `queue` over a
 * connection of its own. */
static void serve_three(responder r[3], actio_actor *conns[3], actio_nats_service *svc[3],
                        const char *subject, const char *queue) {
  actio_nats_serve_opts so = {.queue = queue};
  for (int i = 0; i < 3; i++) {
    char name[16];
    snprintf(name, sizeof name, "responder%d", i);
    actio_actor *a = spawn_responder(&r[i], name);
    conns[i] = connect_plain();
    ck_assert_int_eq(actio_nats_serve(conns[i], subject, a, &so, &svc[i]), 0);
  }
}

/* ---- tests ---- */

START_TEST(queue_group_of_three_shares_the_load) {
  enum { N = 300 };
  responder r[3];
  actio_actor *conns[3];
  actio_nats_service *svc[3];
  serve_three(r, conns, svc, "svc.echo", "workers");
  actio_actor *c = connect_plain();
  actio_future *fs[N];
  for (unsigned i = 0; i < N; i++)
    fs[i] = ask_id(c, "svc.echo", i, NULL);
  actio_future *all;
  ck_assert_int_eq(actio_gather(fs, N, ACTIO_GATHER_SETTLE_ALL, &all), 0);
  ck_assert_int_eq(actio_future_wait(all, -1), 0);
  for (unsigned i = 0; i < N; i++) {
    ck_assert_msg(actio_future_status(fs[i]) == 0, "%u: %s", i, actio_future_errmsg(fs[i]));
    const actio_nats_msg *m = actio_future_value(fs[i]);
    size_t len;
    const char *d = actio_nats_msg_data(m, &len);
    char want[16];
    snprintf(want, sizeof want, "%u", i);
    ck_assert_int_eq(len, strlen(want));
    ck_assert(memcmp(d, want, len) == 0);
    ck_assert_ptr_nonnull(actio_nats_msg_header(m, "Served-By"));
    actio_future_unref(fs[i]);
  }
  actio_future_unref(all);
  int total = 0;
  for (int i = 0; i < 3; i++) {
    int h = atomic_load(&r[i].handled);
    ck_assert_msg(h > 0, "responder %d handled nothing", i);
    total += h;
  }
  ck_assert_int_eq(total, N);
  actio_nats_stats st;
  actio_nats_stats_get(c, &st);
  ck_assert_uint_eq(st.replies, N);
  ck_assert_uint_eq(st.sent, N);
  ck_assert_uint_eq(st.pending, 0);
  ck_assert_int_eq(st.connected, 1);
  actio_actor_metrics m;
  WAIT_FOR((actio_actor_metrics_get(c, &m), m.completed == N));
  uint64_t served = 0;
  for (int i = 0; i < 3; i++) {
    actio_nats_stats_get(conns[i], &st);
    served += st.served;
    actio_nats_unserve(svc[i]);
  }
  ck_assert_uint_eq(served, N);
}
END_TEST

START_TEST(errors_travel_back_with_their_code) {
  responder r;
  actio_actor *a = spawn_responder(&r, "failing");
  r.fail_code = ACTIO_ESQL;
  actio_actor *server = connect_plain(), *c = connect_plain();
  actio_nats_service *svc;
  ck_assert_int_eq(actio_nats_serve(server, "svc.fail", a, NULL, &svc), 0);
  actio_future *f = ask_id(c, "svc.fail", 1, NULL);
  ck_assert_int_eq(actio_future_wait(f, -1), ACTIO_ESQL);
  ck_assert_str_eq(actio_future_errmsg(f), "remote failure 42");
  actio_future_unref(f);
  actio_nats_stats st;
  actio_nats_stats_get(server, &st);
  ck_assert_uint_eq(st.served_errors, 1);
  actio_nats_unserve(svc);
}
END_TEST

/* The codec test's actor: its message is an int (decoded from the request's
 * text), its value the int doubled. */
static int doubler(actio_actor *self, void *worker, void *msg, actio_future *reply) {
  (void)self;
  (void)worker;
  int *v = msg;
  *v *= 2;
  if (actio_future_resolve(reply, v, free) != 0)
    free(v);
  return 0;
}

static void doubler_drop(actio_actor *self, void *msg) {
  (void)self;
  free(msg);
}

static const actio_behavior doubler_behavior = {.handle = doubler, .drop = doubler_drop};

static int decode_int(void *arg, const actio_nats_msg *req, void **msg) {
  (void)arg;
  size_t len;
  const char *d = actio_nats_msg_data(req, &len);
  if (len == 0 || len > 9 || strcmp(actio_nats_msg_subject(req), "svc.double") != 0)
    return ACTIO_ETYPE;
  int *v = malloc(sizeof *v);
  char text[10];
  memcpy(text, d, len);
  text[len] = '\0';
  *v = atoi(text);
  *msg = v;
  return 0;
}

static int encode_int(void *arg, void *value, actio_nats_msg **reply) {
  (void)arg;
  char text[16];
  int n = snprintf(text, sizeof text, "%d", *(int *)value);
  if (*(int *)value > 1000)
    return ACTIO_ERANGE_TEST;
  return actio_nats_msg_create(reply, text, (size_t)n);
}

static int decode_reply(void *arg, const actio_nats_msg *reply, void **value,
                        actio_free_fn *free_fn) {
  (void)arg;
  size_t len;
  const char *d = actio_nats_msg_data(reply, &len);
  int *v = malloc(sizeof *v);
  char text[16];
  snprintf(text, sizeof text, "%.*s", (int)len, d);
  *v = atoi(text);
  *value = v;
  *free_fn = free;
  return 0;
}

START_TEST(user_encoding_and_decoding) {
  actio_actor *a;
  ck_assert_int_eq(actio_actor_spawn(rt, &doubler_behavior, NULL, &a), 0);
  actio_actor *server = connect_plain(), *c = connect_plain();
  actio_nats_serve_opts so = {.decode = decode_int, .encode = encode_int};
  actio_nats_service *svc;
  ck_assert_int_eq(actio_nats_serve(server, "svc.double", a, &so, &svc), 0);
  actio_nats_request req = {.decode = decode_reply};
  actio_future *f = ask_id(c, "svc.double", 21, &req);
  ck_assert_int_eq(actio_future_wait(f, -1), 0);
  ck_assert_int_eq(*(int *)actio_future_value(f), 42);
  actio_future_unref(f);
  /* A request its decoder refuses; a value its encoder refuses. */
  actio_nats_request raw = {.subject = "svc.double"};
  ck_assert_int_eq(actio_nats_ask(c, &raw, &f), 0);
  ck_assert_int_eq(actio_future_wait(f, -1), ACTIO_ETYPE);
  ck_assert_str_eq(actio_future_errmsg(f), "decoding the request failed");
  actio_future_unref(f);
  f = ask_id(c, "svc.double", 900, NULL);
  ck_assert_int_eq(actio_future_wait(f, -1), ACTIO_ERANGE_TEST);
  actio_future_unref(f);
  actio_nats_unserve(svc);
}
END_TEST

START_TEST(no_responders_fails_at_once) {
  actio_actor *c = connect_plain();
  actio_future *f = ask_id(c, "nobody.here", 1, NULL);
  ck_assert_int_eq(actio_future_wait(f, -1), ACTIO_ENORESPONDERS);
  ck_assert_ptr_nonnull(strstr(actio_future_errmsg(f), "nobody.here"));
  actio_future_unref(f);
  /* Idempotent: retried, then the same failure. */
  actio_nats_request req = {.retries = 2, .retry_backoff_ms = 5};
  f = ask_id(c, "nobody.here", 2, &req);
  ck_assert_int_eq(actio_future_wait(f, -1), ACTIO_ENORESPONDERS);
  actio_future_unref(f);
  actio_nats_stats st;
  actio_nats_stats_get(c, &st);
  ck_assert_uint_eq(st.no_responders, 4);
  ck_assert_uint_eq(st.retries, 2);
  ck_assert_uint_eq(st.pending, 0);
}
END_TEST

/* actio_map_within's items: asks of svc.slow on map_conn. */
static actio_actor *map_conn;

static atomic_int map_inherited;

static int map_ask(size_t i, void *arg, actio_future **out) {
  (void)arg;
  *out = ask_id(map_conn, "svc.slow", 100 + (unsigned)i, NULL);
  if (actio_future_remaining_ms(*out) > 0)
    atomic_fetch_add(&map_inherited, 1);
  return 0;
}

START_TEST(deadline_timeout_and_cancel) {
  responder r;
  actio_actor *server;
  actio_nats_service *svc;
  actio_actor *c = serve_holder(&r, "svc.slow", &server, &svc);
  /* The future's deadline. */
  actio_future *f = ask_id(c, "svc.slow", 1, NULL);
  ck_assert_int_eq(actio_future_set_deadline(rt, f, 50), 0);
  ck_assert_int_eq(actio_future_wait(f, -1), ACTIO_ETIMEDOUT);
  actio_future_unref(f);
  /* An attempt's timeout. */
  actio_nats_request req = {.timeout_ms = 30};
  f = ask_id(c, "svc.slow", 2, &req);
  ck_assert_int_eq(actio_future_wait(f, -1), ACTIO_ETIMEDOUT);
  ck_assert_ptr_nonnull(strstr(actio_future_errmsg(f), "no reply from svc.slow"));
  actio_future_unref(f);
  /* A group's deadline (an hour: whatever the machine's speed, both items
   * start within it) reaches each remote request started in it; the
   * group's cancel ends them. */
  map_conn = c;
  ck_assert_int_eq(actio_map_within(rt, 2, 0, 3600000, map_ask, NULL, ACTIO_GATHER_SETTLE_ALL,
                                    &f), 0);
  ck_assert_int_eq(atomic_load(&map_inherited), 2);
  actio_future_cancel(f);
  for (size_t i = 0; i < 2; i++)
    ck_assert_int_eq(actio_future_wait(actio_gather_item(f, i), -1), ACTIO_ECANCELED);
  actio_future_unref(f);
  /* A cancel: out of the table at once. */
  f = ask_id(c, "svc.slow", 3, NULL);
  WAIT_FOR(atomic_load(&r.nheld) == 5);
  ck_assert_int_eq(actio_future_cancel(f), 0);
  ck_assert_int_eq(actio_future_status(f), ACTIO_ECANCELED);
  actio_future_unref(f);
  actio_nats_stats st;
  actio_nats_stats_get(c, &st);
  ck_assert_uint_eq(st.pending, 0);
  /* The replies come now: each one late, dropped and counted. */
  release_held(&r);
  WAIT_FOR((actio_nats_stats_get(c, &st), st.late_replies == 5));
  ck_assert_uint_eq(st.replies, 0);
  ck_assert_uint_eq(st.timeouts, 1);
  actio_nats_unserve(svc);
}
END_TEST

START_TEST(oversized_payloads_and_bad_subjects_refused) {
  actio_actor *c = connect_plain();
  actio__nats_state *st;
  ck_assert_int_eq(actio__nats_state_of(c, &st), 0);
  size_t max = (size_t)st->max_payload;
  ck_assert_uint_gt(max, 0);
  char *big = calloc(1, max + 1);
  actio_nats_request req = {.subject = "svc.big", .data = big, .len = max + 1};
  actio_future *f = NULL;
  ck_assert_int_eq(actio_nats_ask(c, &req, &f), ACTIO_EPAYLOAD);
  ck_assert_ptr_null(f);
  const char *hdr[] = {"Key", "value", NULL};
  req.len = max;
  req.headers = hdr; /* the headers count too */
  ck_assert_int_eq(actio_nats_ask(c, &req, &f), ACTIO_EPAYLOAD);
  free(big);
  const char *bad[] = {"", "a b", "a..b", ".a", "a.", "a.*", "a.>", "a*b", "a\tb", ">"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    actio_nats_request r2 = {.subject = bad[i], .data = "x", .len = 1};
    ck_assert_msg(actio_nats_ask(c, &r2, &f) == ACTIO_ESUBJECT, "subject '%s'", bad[i]);
  }
  const char *odd[] = {"Key", NULL};
  actio_nats_request r3 = {.subject = "a.b", .headers = odd};
  ck_assert_int_eq(actio_nats_ask(c, &r3, &f), ACTIO_EINVAL);
  const char *nl[] = {"Key", "line\r\nInjected: 1", NULL};
  r3.headers = nl;
  ck_assert_int_eq(actio_nats_ask(c, &r3, &f), ACTIO_EINVAL);
  responder r;
  actio_actor *a = spawn_responder(&r, "wild");
  actio_nats_service *svc = NULL;
  ck_assert_int_eq(actio_nats_serve(c, "a.>.b", a, NULL, &svc), ACTIO_ESUBJECT);
  ck_assert_int_eq(actio_nats_serve(c, "a b", a, NULL, &svc), ACTIO_ESUBJECT);
  ck_assert_int_eq(actio_nats_serve(c, "svc.*.x", a, NULL, &svc), 0);
  actio_nats_unserve(svc);
  ck_assert_int_eq(actio_nats_serve(c, "svc.>", a, NULL, &svc), 0);
  actio_nats_unserve(svc);
  ck_assert_int_eq(actio_nats_ask(NULL, &r3, &f), ACTIO_EINVAL);
  ck_assert_int_eq(actio_nats_ask(a, &req, &f), ACTIO_EINVAL); /* no connection */
}
END_TEST

START_TEST(wrong_credentials_refused_secret_never_shown) {
  char err[512] = "";
  actio_actor *c = NULL;
  actio_nats_opts o = {.url = auth_url, .user = auth_user, .password = "wr0ng-secret-pw",
                       .errbuf = err, .errbuf_size = sizeof err, .max_reconnect = -1};
  ck_assert_int_eq(actio_nats_spawn(rt, &o, &c), ACTIO_ENATSAUTH);
  ck_assert_ptr_null(c);
  ck_assert_msg(strstr(err, "credentials refused") != NULL, "%s", err);
  ck_assert_msg(strstr(err, "wr0ng-secret-pw") == NULL, "%s", err);
  /* In the URL: masked there too. */
  char url[512];
  snprintf(url, sizeof url, "nats://%s:wr0ng-url-pw@%s", auth_user, auth_url + 7);
  actio_nats_opts o2 = {.url = url, .errbuf = err, .errbuf_size = sizeof err};
  ck_assert_int_eq(actio_nats_spawn(rt, &o2, &c), ACTIO_ENATSAUTH);
  ck_assert_msg(strstr(err, "wr0ng-url-pw") == NULL, "%s", err);
  ck_assert_msg(strstr(err, "actio:***@") != NULL, "%s", err);
  /* No credentials at all. */
  actio_nats_opts o3 = {.url = auth_url, .errbuf = err, .errbuf_size = sizeof err};
  ck_assert_int_eq(actio_nats_spawn(rt, &o3, &c), ACTIO_ENATSAUTH);
  /* The right ones work. */
  actio_nats_opts ok = {.url = auth_url, .user = auth_user, .password = auth_password};
  ck_assert_int_eq(actio_nats_spawn(rt, &ok, &c), 0);
  /* No server there. */
  actio_nats_opts none = {.url = "nats://127.0.0.1:1", .errbuf = err,
                          .errbuf_size = sizeof err};
  actio_actor *c2;
  ck_assert_int_eq(actio_nats_spawn(rt, &none, &c2), ACTIO_ENATS);
  ck_assert_msg(strstr(err, "127.0.0.1:1") != NULL, "%s", err);
}
END_TEST

/* Connects with o, then asks a subject nobody serves: the server's answer
 * proves the connection works. */
static void connects_and_asks(actio_nats_opts *o) {
  char err[512] = "";
  o->errbuf = err;
  o->errbuf_size = sizeof err;
  actio_actor *c;
  int rc = actio_nats_spawn(rt, o, &c);
  ck_assert_msg(rc == 0, "%s: %s", actio_err_name(rc), err);
  actio_future *f = ask_id(c, "nobody.here", 1, NULL);
  ck_assert_int_eq(actio_future_wait(f, -1), ACTIO_ENORESPONDERS);
  actio_future_unref(f);
}

/* The spawn fails with want, and its text holds `shown` and not `secret`. */
static void refused(actio_nats_opts *o, int want, const char *shown, const char *secret) {
  char err[512] = "";
  o->errbuf = err;
  o->errbuf_size = sizeof err;
  actio_actor *c = NULL;
  int rc = actio_nats_spawn(rt, o, &c);
  ck_assert_msg(rc == want, "%s, not %s: %s", actio_err_name(rc), actio_err_name(want), err);
  ck_assert_ptr_null(c);
  ck_assert_msg(shown == NULL || strstr(err, shown) != NULL, "no '%s' in: %s", shown, err);
  ck_assert_msg(secret == NULL || strstr(err, secret) == NULL, "secret in: %s", err);
}

START_TEST(tokens_nkeys_and_tls) {
  /* A token: given, or in the URL. */
  actio_nats_opts o = {.url = token_url, .token = token};
  connects_and_asks(&o);
  o = (actio_nats_opts){.url = token_url, .token = "wr0ng-token"};
  refused(&o, ACTIO_ENATSAUTH, "credentials refused", "wr0ng-token");
  char url[512];
  snprintf(url, sizeof url, "nats://wr0ng-url-token@%s", token_url + 7);
  o = (actio_nats_opts){.url = url};
  refused(&o, ACTIO_ENATSAUTH, "nats://***@", "wr0ng-url-token");
  /* An NKey: its seed signs the server's nonce. */
  o = (actio_nats_opts){.url = nkey_url, .nkey_public = nkey_public,
                        .nkey_seed_file = nkey_seed_file};
  connects_and_asks(&o);
  o = (actio_nats_opts){.url = nkey_url};
  refused(&o, ACTIO_ENATSAUTH, NULL, NULL);
  /* TLS, verified against the test CA; against the system's store, the
   * test CA's certificate is refused: verification is on by default. */
  o = (actio_nats_opts){.url = tls_url, .ca_file = ca_file};
  connects_and_asks(&o);
  o = (actio_nats_opts){.url = tls_url};
  refused(&o, ACTIO_ETLS, NULL, NULL);
  o = (actio_nats_opts){.url = tls_url, .tls_skip_verify = 1};
  connects_and_asks(&o);
  /* A TLS server asked in plain text. */
  char plain[512];
  snprintf(plain, sizeof plain, "nats://%s", tls_url + 6);
  o = (actio_nats_opts){.url = plain};
  refused(&o, ACTIO_ETLS, NULL, NULL);
  /* Bad options, refused before connecting. */
  o = (actio_nats_opts){.url = nkey_url, .nkey_public = nkey_public};
  refused(&o, ACTIO_EINVAL, NULL, NULL);
  o = (actio_nats_opts){.url = tls_url, .client_cert = ca_file};
  refused(&o, ACTIO_EINVAL, NULL, NULL);
}
END_TEST

/* libnats before 3.8 sends no signature when its first byte is 0, and the
 * server refuses that connection (1 nonce in 256: CI's nkey connect failed
 * so once). Such a signature is refused here, and the connect tried again. */
START_TEST(nkey_signatures_libnats_would_drop) {
  /* A throwaway seed (the bytes 1 to 32), and two nonces: with this seed,
   * the first signs to a signature whose first byte is 0. */
  const char *seed = "SUAACAQDAQCQMBYIBEFAWDANBYHRAEISCMKBKFQXDAMRUGY4DUPB6IC5CQ";
  const char *zero_nonce = "nonce-271", *other_nonce = "nonce-0";
  unsigned char *sig;
  int len;
  ck_assert_int_eq(nats_Open(-1), NATS_OK);
  ck_assert_int_eq(nats_Sign(seed, zero_nonce, &sig, &len), NATS_OK);
  ck_assert_int_eq(sig[0], 0);
  free(sig);
  char path[600];
  snprintf(path, sizeof path, "%s.test", nkey_seed_file);
  FILE *f = fopen(path, "w");
  fprintf(f, "%s\n", seed);
  fclose(f);
  int rc = actio__nats_sign_nonce(path, zero_nonce, &sig, &len);
  if (nats_GetVersionNumber() < 0x030800) {
    ck_assert_int_eq(rc, ACTIO_EAGAIN);
    ck_assert_ptr_null(sig);
    ck_assert_int_eq(len, 0);
  } else {
    ck_assert_int_eq(rc, 0);
    free(sig);
  }
  ck_assert_int_eq(actio__nats_sign_nonce(path, other_nonce, &sig, &len), 0);
  ck_assert_int_eq(len, 64);
  ck_assert_int_ne(sig[0], 0);
  free(sig);
  /* The seed in a .creds file, after a JWT line longer than read_seed's
   * buffer whose 256th character starts "SU" (a piece of the JWT, read as
   * a line of its own, was taken for the seed); no seed; no file. */
  char jwt[301];
  memset(jwt, 'a', 300);
  memcpy(jwt + 255, "SU", 2);
  jwt[300] = '\0';
  f = fopen(path, "w");
  fprintf(f, "-----BEGIN NATS USER JWT-----\n%s\n------END NATS USER JWT------\n\n", jwt);
  fprintf(f, "-----BEGIN USER NKEY SEED-----\n  %s\n------END USER NKEY SEED------\n", seed);
  fclose(f);
  ck_assert_int_eq(actio__nats_sign_nonce(path, other_nonce, &sig, &len), 0);
  ck_assert_int_eq(len, 64);
  free(sig);
  f = fopen(path, "w");
  fprintf(f, "SUNOTBASE32!\n");
  fclose(f);
  ck_assert_int_eq(actio__nats_sign_nonce(path, other_nonce, &sig, &len), ACTIO_EINVAL);
  ck_assert_ptr_null(sig);
  unlink(path);
  ck_assert_int_eq(actio__nats_sign_nonce(path, other_nonce, &sig, &len), -ENOENT);
  /* Through the server: every connect succeeds (without the retry, 64
   * connects failed so in 22% of runs). */
  for (int i = 0; i < 64; i++) {
    actio__nats_conf conf = {.url = nkey_url, .nkey_public = nkey_public,
                             .nkey_seed_file = nkey_seed_file, .connect_timeout_ms = 5000,
                             .max_reconnect = 0};
    actio__nats_conn *conn;
    char err[256];
    rc = actio__nats_connect(&conf, &conn, err, sizeof err);
    ck_assert_msg(rc == 0, "connect %d: %s", i, err);
    actio__nats_destroy(conn);
  }
  /* A seed file that is not there, or holds no valid seed (none, a bad
   * character, a bad checksum): refused before any connect, saying why. */
  char err[512] = "";
  actio_actor *nc = NULL;
  actio_nats_opts no = {.url = nkey_url, .nkey_public = nkey_public, .nkey_seed_file = path,
                        .errbuf = err, .errbuf_size = sizeof err};
  ck_assert_int_eq(actio_nats_spawn(rt, &no, &nc), -ENOENT);
  ck_assert_ptr_null(nc);
  ck_assert_msg(strstr(err, "No such file") != NULL && strstr(err, path) != NULL, "%s", err);
  const char *bad[] = {"# no seed here", "SUNOTBASE32!",
                       "SUAACAQDAQCQMBYIBEFAWDANBYHRAEISCMKBKFQXDAMRUGY4DUPB6IC5CA"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    f = fopen(path, "w");
    fprintf(f, "%s\n", bad[i]);
    fclose(f);
    rc = actio_nats_spawn(rt, &no, &nc);
    ck_assert_msg(rc == ACTIO_EINVAL, "%s: %s: %s", bad[i], actio_err_name(rc), err);
    ck_assert_msg(strstr(err, "no valid seed") != NULL, "%s", err);
    ck_assert_ptr_null(nc);
  }
  unlink(path);
}
END_TEST

START_TEST(a_responder_killed_mid_run_with_retries) {
  enum { N = 400 };
  memset(effects, 0, sizeof effects);
  atomic_store(&effects_total, 0);
  responder r[3];
  actio_actor *conns[3];
  actio_nats_service *svc[3];
  serve_three(r, conns, svc, "svc.kill", "killed");
  r[0].hold = 1; /* the victim takes requests and never answers */
  actio_actor *c = connect_plain();
  /* Retries enough for a loaded machine: an attempt to a live responder
   * that takes over 200 ms is tried again too. */
  actio_nats_request req = {.timeout_ms = 200, .retries = 20, .retry_backoff_ms = 10};
  actio_future *fs[N];
  for (unsigned i = 0; i < N / 2; i++)
    fs[i] = ask_id(c, "svc.kill", i, &req);
  /* Mid-run, once it holds some: the victim's connection goes. */
  WAIT_FOR(atomic_load(&r[0].nheld) >= 5);
  ck_assert_int_eq(actio_actor_stop(conns[0], ACTIO_STOP_NOW), 0);
  for (unsigned i = N / 2; i < N; i++)
    fs[i] = ask_id(c, "svc.kill", i, &req);
  actio_future *all;
  ck_assert_int_eq(actio_gather(fs, N, ACTIO_GATHER_SETTLE_ALL, &all), 0);
  ck_assert_int_eq(actio_future_wait(all, -1), 0);
  for (unsigned i = 0; i < N; i++) {
    ck_assert_msg(actio_future_status(fs[i]) == 0, "%u: %s", i, actio_future_errmsg(fs[i]));
    actio_future_unref(fs[i]);
  }
  actio_future_unref(all);
  /* Every request's effect once, though some were handled twice. */
  ck_assert_int_eq(atomic_load(&effects_total), N);
  int handled = 0;
  for (int i = 0; i < 3; i++)
    handled += atomic_load(&r[i].handled);
  ck_assert_int_ge(handled, N + 5);
  actio_nats_stats st;
  actio_nats_stats_get(c, &st);
  ck_assert_uint_ge(st.retries, 5);
  ck_assert_uint_ge(st.timeouts, 5);
  ck_assert_uint_eq(st.pending, 0);
  release_held(&r[0]); /* answered on a closed connection: nowhere */
  for (int i = 0; i < 3; i++)
    actio_nats_unserve(svc[i]);
}
END_TEST

/* A thread of the stress: its asks, some cancelled at once, some with an
 * attempt timeout of 1 ms, racing their replies. */
typedef struct stresser {
  actio_actor *c;
  unsigned base;
  int bad;
} stresser;

static void *stress_thread(void *arg) {
  stresser *s = arg;
  enum { PER = 300 };
  actio_future *fs[PER];
  for (unsigned i = 0; i < PER; i++) {
    actio_nats_request req = {.timeout_ms = i % 5 == 0 ? 1 : 0,
                              .retries = i % 7 == 0 ? 1 : 0, .retry_backoff_ms = 1};
    fs[i] = ask_id(s->c, "svc.stress", s->base + i, &req);
    if (i % 3 == 0)
      (void)actio_future_cancel(fs[i]);
  }
  for (unsigned i = 0; i < PER; i++) {
    int rc = actio_future_wait(fs[i], -1);
    if (rc != 0 && rc != ACTIO_ECANCELED && rc != ACTIO_ETIMEDOUT)
      s->bad++;
    if (rc == 0 && actio_future_value(fs[i]) == NULL)
      s->bad++;
    actio_future_unref(fs[i]);
  }
  return NULL;
}

START_TEST(stress_replies_cancels_and_timeouts_race) {
  responder r[3];
  actio_actor *conns[3];
  actio_nats_service *svc[3];
  serve_three(r, conns, svc, "svc.stress", "stress");
  actio_actor *c = connect_plain();
  enum { T = 4 };
  pthread_t t[T];
  stresser s[T];
  for (int i = 0; i < T; i++)
    s[i] = (stresser){.c = c, .base = (unsigned)i * 1000};
  start_threads(t, T, stress_thread, s, sizeof *s);
  join_threads(t, T);
  for (int i = 0; i < T; i++)
    ck_assert_int_eq(s[i].bad, 0);
  actio_nats_stats st;
  actio_nats_stats_get(c, &st);
  ck_assert_uint_eq(st.pending, 0);
  ck_assert_uint_ge(st.sent, T * 300);
  /* A request counts in the metrics once its future's callbacks ran,
   * which may be after a waiter woke. */
  actio_actor_metrics m;
  WAIT_FOR((actio_actor_metrics_get(c, &m), m.completed + m.errors == st.sent - st.retries));
  for (int i = 0; i < 3; i++)
    actio_nats_unserve(svc[i]);
}
END_TEST

START_TEST(pending_requests_bounded) {
  responder r;
  actio_actor *server, *c;
  actio_nats_service *svc;
  (void)serve_holder(&r, "svc.full", &server, &svc);
  actio_nats_opts o = {.url = nats_url, .max_pending = 4};
  ck_assert_int_eq(actio_nats_spawn(rt, &o, &c), 0);
  actio_future *fs[4], *f = NULL;
  for (unsigned i = 0; i < 4; i++)
    fs[i] = ask_id(c, "svc.full", i, NULL);
  actio_nats_request req = {.subject = "svc.full", .data = "x", .len = 1};
  ck_assert_int_eq(actio_nats_ask(c, &req, &f), ACTIO_EFULL);
  WAIT_FOR(atomic_load(&r.nheld) == 4);
  release_held(&r);
  for (unsigned i = 0; i < 4; i++) {
    ck_assert_int_eq(actio_future_wait(fs[i], -1), 0);
    actio_future_unref(fs[i]);
  }
  ck_assert_int_eq(actio_nats_ask(c, &req, &f), 0);
  ck_assert_int_eq(actio_future_wait(f, -1), 0);
  actio_future_unref(f);
  /* What a pending request costs beside its future. */
  printf("pending request: %zu bytes + subject (%zu for \"svc.full\")\n",
         actio__nats_pend_size(0) - 1, actio__nats_pend_size(strlen("svc.full")));
  actio_nats_unserve(svc);
}
END_TEST

START_TEST(stop_fails_pending_requests) {
  responder r;
  actio_actor *server;
  actio_nats_service *svc;
  actio_actor *c = serve_holder(&r, "svc.stop", &server, &svc);
  actio_future *f = ask_id(c, "svc.stop", 1, NULL);
  WAIT_FOR(atomic_load(&r.nheld) == 1);
  ck_assert_int_eq(actio_actor_stop(c, ACTIO_STOP_DRAIN), 0);
  ck_assert_int_eq(actio_future_wait(f, -1), ACTIO_ECLOSED);
  actio_future_unref(f);
  actio_nats_request req = {.subject = "svc.stop"};
  ck_assert_int_eq(actio_nats_ask(c, &req, &f), ACTIO_ECLOSED);
  /* The server's stop ends its service; the handle is still freed here. */
  ck_assert_int_eq(actio_actor_stop(server, ACTIO_STOP_DRAIN), 0);
  release_held(&r);
  actio_nats_unserve(svc);
}
END_TEST

/* The plain server: killed (SIGKILL), or started again on its port. */
static void plain_server(const char *verb) {
  ck_assert_int_eq(nats_server_sh(verb, servers_dir, NULL), 0);
}

/* What a supervisor's monitor heard, in order. */
static pthread_mutex_t heard_mu = PTHREAD_MUTEX_INITIALIZER;
static int heard[64];
static int nheard;

static void monitor(void *arg, const actio_sup_event *ev) {
  (void)arg;
  pthread_mutex_lock(&heard_mu);
  if (nheard < 64)
    heard[nheard++] = ev->kind;
  pthread_mutex_unlock(&heard_mu);
  /* A secret never reaches a monitor either. */
  ck_assert_ptr_null(strstr(ev->reason, auth_password));
}

static int heard_kind(int kind) {
  pthread_mutex_lock(&heard_mu);
  int found = 0;
  for (int i = 0; i < nheard; i++)
    found |= heard[i] == kind;
  pthread_mutex_unlock(&heard_mu);
  return found;
}

START_TEST(reconnects_reach_the_supervisor_and_the_metrics) {
  actio_nats_opts o = {.url = nats_url, .reconnect_wait_ms = 20, .max_reconnect = -1};
  actio_child_spec spec = {.name = "nats", .start = actio_nats_child, .arg = &o};
  actio_sup_opts so = {.monitor = monitor};
  actio_actor *sup;
  ck_assert_int_eq(actio_sup_spawn(rt, &so, &spec, 1, &sup), 0);
  actio_actor *c = actio_sup_lookup(sup, "nats");
  ck_assert_ptr_nonnull(c);
  /* Served and asked through the child's address. */
  responder r;
  actio_actor *a = spawn_responder(&r, "echo");
  actio_nats_service *svc;
  ck_assert_int_eq(actio_nats_serve(c, "svc.sup", a, NULL, &svc), 0);
  /* A connection whose pending requests fail when it drops. */
  responder h;
  actio_actor *holder = spawn_responder(&h, "holder");
  h.hold = 1;
  actio_nats_service *hsvc;
  ck_assert_int_eq(actio_nats_serve(c, "svc.held", holder, NULL, &hsvc), 0);
  actio_nats_opts fo = {.url = nats_url, .reconnect_wait_ms = 20, .max_reconnect = -1,
                        .disconnect = ACTIO_NATS_FAIL};
  actio_actor *failing;
  ck_assert_int_eq(actio_nats_spawn(rt, &fo, &failing), 0);
  actio_future *lost = ask_id(failing, "svc.held", 1, NULL);
  actio_nats_request wait_req = {.timeout_ms = 60000};
  actio_future *kept = ask_id(c, "svc.held", 2, &wait_req);
  WAIT_FOR(atomic_load(&h.nheld) == 2);
  plain_server("kill");
  /* ACTIO_NATS_FAIL: failed when the connection drops. */
  ck_assert_int_eq(actio_future_wait(lost, -1), ACTIO_ENATS);
  actio_future_unref(lost);
  WAIT_FOR(heard_kind(ACTIO_SUP_CHILD_DISCONNECTED));
  /* While it is down: ACTIO_NATS_FAIL refuses new requests; under
   * ACTIO_NATS_WAIT they wait in cnats's buffer, bounded by their attempt
   * timeout and by their future's deadline, retries included. */
  actio_nats_request down = {.subject = "svc.sup", .data = "1", .len = 1};
  actio_future *f = NULL;
  ck_assert_int_eq(actio_nats_ask(failing, &down, &f), ACTIO_ENATS);
  ck_assert_ptr_null(f);
  down.timeout_ms = 50;
  ck_assert_int_eq(actio_nats_ask(c, &down, &f), 0);
  ck_assert_int_eq(actio_future_wait(f, -1), ACTIO_ETIMEDOUT);
  ck_assert_ptr_nonnull(strstr(actio_future_errmsg(f), "no reply from svc.sup within 50 ms"));
  actio_future_unref(f);
  down = (actio_nats_request){.subject = "svc.sup", .timeout_ms = 20, .retries = 1000,
                              .retry_backoff_ms = 1};
  ck_assert_int_eq(actio_nats_ask(c, &down, &f), 0);
  ck_assert_int_eq(actio_future_set_deadline(rt, f, 200), 0);
  /* The deadline's failure, or the last attempt's, when the pause before
   * the next would pass the deadline. */
  ck_assert_int_eq(actio_future_wait(f, -1), ACTIO_ETIMEDOUT);
  actio_future_unref(f);
  plain_server("restart");
  WAIT_FOR(heard_kind(ACTIO_SUP_CHILD_RECONNECTED));
  actio_nats_stats st;
  actio_nats_stats_get(c, &st);
  ck_assert_uint_ge(st.disconnects, 1);
  ck_assert_uint_ge(st.reconnects, 1);
  /* ACTIO_NATS_WAIT: still pending, within its timeout (its reply was
   * lost with the server). */
  ck_assert_int_eq(actio_future_is_done(kept), 0);
  ck_assert_int_eq(actio_future_cancel(kept), 0);
  actio_future_unref(kept);
  /* The subscriptions came back with the connection. */
  actio_nats_request req = {.retries = 50, .retry_backoff_ms = 20};
  f = ask_id(c, "svc.sup", 7, &req);
  ck_assert_int_eq(actio_future_wait(f, -1), 0);
  ck_assert_str_eq(actio_nats_msg_subject(actio_future_value(f)) != NULL ? "inbox" : "",
                   "inbox");
  actio_future_unref(f);
  actio_sup_stats ss;
  actio_sup_stats_get(sup, &ss);
  ck_assert_uint_eq(ss.failures, 0); /* a reconnect is no failure */
  release_held(&h);
  actio_nats_unserve(svc);
  actio_nats_unserve(hsvc);
}
END_TEST

START_TEST(closed_for_good_fails_the_actor) {
  actio_nats_opts o = {.url = nats_url, .reconnect_wait_ms = 10, .max_reconnect = 1};
  actio_actor *c;
  ck_assert_int_eq(actio_nats_spawn(rt, &o, &c), 0);
  responder h;
  actio_actor *server;
  actio_nats_service *svc;
  (void)serve_holder(&h, "svc.gone", &server, &svc);
  actio_nats_request req = {.timeout_ms = 60000};
  actio_future *f = ask_id(c, "svc.gone", 1, &req);
  WAIT_FOR(atomic_load(&h.nheld) == 1);
  plain_server("kill");
  /* Reconnects run out: the pending request fails, and so does the actor
   * (its supervisor, had it one, would start another). */
  ck_assert_int_eq(actio_future_wait(f, -1), ACTIO_ENATS);
  actio_future_unref(f);
  WAIT_FOR(actio_actor_failed(c));
  actio_nats_request again = {.subject = "svc.gone"};
  ck_assert_int_eq(actio_nats_ask(c, &again, &f), ACTIO_ENATS);
  plain_server("restart");
  /* Its stop ends what is left on the closed connection. */
  ck_assert_int_eq(actio_actor_stop(c, ACTIO_STOP_DRAIN), 0);
  release_held(&h);
  actio_nats_unserve(svc);
}
END_TEST

START_TEST(a_restarted_connection_serves_its_subjects_again) {
  actio_nats_opts o = {.url = nats_url};
  actio_actor *sup, *c = supervised_nats(rt, &o, 0, &sup);
  responder r;
  actio_actor *a = spawn_responder(&r, "again");
  actio_nats_service *svc, *direct;
  actio_nats_serve_opts qo = {.queue = "again"};
  ck_assert_int_eq(actio_nats_serve(c, "svc.again", a, &qo, &svc), 0);
  /* Served through the instance, not the address: it ends with it. */
  actio_actor *first = actio__actor_pin(c);
  ck_assert_int_eq(actio_nats_serve(first, "svc.once", a, NULL, &direct), 0);
  actio__actor_unpin(c);
  actio_actor *asker = connect_plain();
  actio_future *f = ask_id(asker, "svc.again", 1, NULL);
  ck_assert_int_eq(actio_future_wait(f, -1), 0);
  actio_future_unref(f);
  /* The connection fails, and its supervisor starts another. */
  actio_actor_fail(c, ACTIO_ENATS, "test: the connection killed");
  actio_sup_stats ss;
  WAIT_FOR((actio_sup_stats_get(sup, &ss), ss.restarts == 1));
  /* Asks succeed afterwards: the new instance serves the subject (retried
   * while its subscription is on its way). */
  actio_nats_request req = {.timeout_ms = 2000, .retries = 10, .retry_backoff_ms = 10};
  for (unsigned i = 2; i < 12; i++) {
    f = ask_id(asker, "svc.again", i, &req);
    ck_assert_msg(actio_future_wait(f, -1) == 0, "%u: %s", i, actio_future_errmsg(f));
    actio_future_unref(f);
  }
  actio_nats_stats st;
  actio_nats_stats_get(c, &st);
  ck_assert_uint_ge(st.served, 10); /* the new instance's (more if retried) */
  /* And through the restarted address too. */
  f = ask_id(c, "svc.again", 12, &req);
  ck_assert_int_eq(actio_future_wait(f, -1), 0);
  actio_future_unref(f);
  f = ask_id(asker, "svc.once", 13, NULL);
  ck_assert_int_eq(actio_future_wait(f, -1), ACTIO_ENORESPONDERS);
  actio_future_unref(f);
  ck_assert_int_ge(atomic_load(&r.handled), 12);
  /* Unserved, it stays so through a second restart. */
  actio_nats_unserve(svc);
  actio_nats_unserve(direct);
  actio_actor_fail(c, ACTIO_ENATS, "test: killed again");
  WAIT_FOR((actio_sup_stats_get(sup, &ss), ss.restarts == 2));
  f = ask_id(asker, "svc.again", 14, NULL);
  ck_assert_int_eq(actio_future_wait(f, -1), ACTIO_ENORESPONDERS);
  actio_future_unref(f);
}
END_TEST

/* The threads of this process now. */
static int threads_now(void) {
  int n = 0;
  DIR *d = opendir("/proc/self/task");
  ck_assert_ptr_nonnull(d);
  for (struct dirent *e; (e = readdir(d)) != NULL;)
    n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

static pthread_mutex_t bare_mu = PTHREAD_MUTEX_INITIALIZER;
static int bare_heard;

static void bare_reply(void *arg, actio__nats_msg *m) {
  (void)arg;
  actio__nats_msg_free(m);
  pthread_mutex_lock(&bare_mu);
  bare_heard = 1;
  pthread_mutex_unlock(&bare_mu);
}

static void bare_done(void *arg) { (void)arg; }

static int bare_replied(void) {
  pthread_mutex_lock(&bare_mu);
  int h = bare_heard;
  pthread_mutex_unlock(&bare_mu);
  return h;
}

START_TEST(a_connection_costs_no_thread_beyond_cnats) {
  /* cnats's own threads for the library, started by a first connection. */
  actio_actor *warm = connect_plain();
  actio_future *f = ask_id(warm, "nobody.here", 1, NULL);
  ck_assert_int_eq(actio_future_wait(f, -1), ACTIO_ENORESPONDERS);
  actio_future_unref(f);
  /* cnats alone, as the actor uses it: a connection, a wildcard inbox,
   * a request answered. */
  int before = threads_now();
  actio__nats_conf conf = {.url = nats_url, .name = "bare", .connect_timeout_ms = 2000,
                           .max_reconnect = 1, .reconnect_wait_ms = 500};
  actio__nats_conn *bare;
  char err[256];
  ck_assert_int_eq(actio__nats_connect(&conf, &bare, err, sizeof err), 0);
  actio__nats_sub *sub;
  ck_assert_int_eq(actio__nats_subscribe(bare, "_INBOX.bare.*", NULL, bare_reply, bare_done,
                                         NULL, &sub), 0);
  ck_assert_int_eq(actio__nats_publish(bare, "nobody.here", "_INBOX.bare.1", NULL, "x", 1), 0);
  WAIT_FOR(bare_replied());
  int per_conn = threads_now() - before;
  before = threads_now();
  actio__nats_sub *sub2;
  ck_assert_int_eq(actio__nats_subscribe(bare, "bare.two", NULL, bare_reply, bare_done, NULL,
                                         &sub2), 0);
  int per_sub = threads_now() - before;
  /* The connection's actor, with requests that time out and are retried:
   * the runtime's timer rings it, no thread of its own does. */
  before = threads_now();
  actio_actor *c = connect_plain();
  responder r;
  actio_actor *server;
  actio_nats_service *svc;
  actio_actor *asker = serve_holder(&r, "svc.threads", &server, &svc);
  int served = threads_now() - before;
  actio_nats_request req = {.timeout_ms = 5, .retries = 2, .retry_backoff_ms = 1};
  f = ask_id(c, "svc.threads", 2, &req);
  ck_assert_int_eq(actio_future_wait(f, -1), ACTIO_ETIMEDOUT);
  actio_future_unref(f);
  actio_nats_stats st;
  actio_nats_stats_get(c, &st);
  ck_assert_uint_eq(st.retries, 2);
  ck_assert_uint_eq(st.timeouts, 3);
  /* Three connections (c, the server's, the asker's), one served subject
   * on the server's: cnats's threads, none more. */
  ck_assert_int_eq(served, 3 * per_conn + per_sub);
  (void)asker;
  release_held(&r);
  actio_nats_unserve(svc);
  actio__nats_unsubscribe(sub);
  actio__nats_unsubscribe(sub2);
  actio__nats_destroy(bare);
}
END_TEST

START_TEST(messages_built_and_bad_arguments) {
  actio_nats_msg *m = NULL;
  ck_assert_int_eq(actio_nats_msg_create(NULL, "x", 1), ACTIO_EINVAL);
  ck_assert_int_eq(actio_nats_msg_create(&m, NULL, 1), ACTIO_EINVAL);
  ck_assert_int_eq(actio_nats_msg_create(&m, NULL, 0), 0);
  size_t len = 7;
  ck_assert_ptr_null(actio_nats_msg_data(m, &len));
  ck_assert_uint_eq(len, 0);
  actio_nats_msg_free(m);
  ck_assert_int_eq(actio_nats_msg_create(&m, "abc", 3), 0);
  ck_assert(memcmp(actio_nats_msg_data(m, NULL), "abc", 3) == 0);
  ck_assert_ptr_null(actio_nats_msg_subject(m)); /* built: none */
  ck_assert_int_eq(actio_nats_msg_add_header(m, "Trace-Id", "t-1"), 0);
  ck_assert_int_eq(actio_nats_msg_add_header(m, "Other", ""), 0);
  const char *bad_keys[] = {"", "a:b", "a b", "a\nb"};
  for (size_t i = 0; i < sizeof bad_keys / sizeof *bad_keys; i++)
    ck_assert_int_eq(actio_nats_msg_add_header(m, bad_keys[i], "v"), ACTIO_EINVAL);
  ck_assert_int_eq(actio_nats_msg_add_header(m, "Key", "line\r\nInjected: 1"), ACTIO_EINVAL);
  ck_assert_int_eq(actio_nats_msg_add_header(m, NULL, "v"), ACTIO_EINVAL);
  ck_assert_int_eq(actio_nats_msg_add_header(NULL, "k", "v"), ACTIO_EINVAL);
  ck_assert_str_eq(actio_nats_msg_header(m, "trace-id"), "t-1"); /* without case */
  ck_assert_str_eq(actio_nats_msg_header(m, "Other"), "");
  ck_assert_ptr_null(actio_nats_msg_header(m, "Missing"));
  ck_assert_ptr_null(actio_nats_msg_header(m, NULL));
  ck_assert_ptr_null(actio_nats_msg_header(NULL, "k"));
  ck_assert_ptr_null(actio_nats_msg_data(NULL, &len));
  actio_nats_msg_free(m);
  actio_nats_msg_free(NULL);
  actio_nats_unserve(NULL);
  /* A received message takes no header. */
  responder r;
  actio_actor *a = spawn_responder(&r, "echo");
  actio_actor *c = connect_plain();
  actio_nats_service *svc;
  ck_assert_int_eq(actio_nats_serve(c, "svc.msg", a, NULL, &svc), 0);
  const char *h[] = {"Trace-Id", "t-2", NULL};
  actio_nats_request req = {.subject = "svc.msg", .data = "hi", .len = 2, .headers = h};
  actio_future *f;
  ck_assert_int_eq(actio_nats_ask(c, &req, &f), 0);
  ck_assert_int_eq(actio_future_wait(f, -1), 0);
  actio_nats_msg *got = actio_future_value(f);
  ck_assert_int_eq(actio_nats_msg_add_header(got, "k", "v"), ACTIO_EINVAL);
  ck_assert_str_eq(actio_nats_msg_header(got, "Served-By"), "echo");
  ck_assert_ptr_nonnull(actio_nats_msg_subject(got)); /* the inbox it came to */
  actio_future_unref(f);
  /* Bad arguments to the calls, and counters of what is no connection. */
  actio_nats_service *s2 = NULL;
  ck_assert_int_eq(actio_nats_serve(NULL, "a", a, NULL, &s2), ACTIO_EINVAL);
  ck_assert_int_eq(actio_nats_serve(c, NULL, a, NULL, &s2), ACTIO_EINVAL);
  ck_assert_int_eq(actio_nats_serve(c, "a", NULL, NULL, &s2), ACTIO_EINVAL);
  ck_assert_int_eq(actio_nats_serve(a, "a", a, NULL, &s2), ACTIO_EINVAL);
  actio_nats_serve_opts bad_queue = {.queue = "a b"};
  ck_assert_int_eq(actio_nats_serve(c, "a", a, &bad_queue, &s2), ACTIO_EINVAL);
  ck_assert_ptr_null(s2);
  actio_nats_request neg = {.subject = "a", .retries = -1};
  ck_assert_int_eq(actio_nats_ask(c, &neg, &f), ACTIO_EINVAL);
  actio_nats_request nodata = {.subject = "a", .len = 3};
  ck_assert_int_eq(actio_nats_ask(c, &nodata, &f), ACTIO_EINVAL);
  actio_nats_stats st;
  actio_nats_stats_get(a, &st);
  ck_assert_uint_eq(st.sent, 0);
  ck_assert_int_eq(st.connected, 0);
  actio_nats_stats_get(NULL, &st);
  ck_assert_int_eq(actio_nats_spawn(rt, NULL, &c), ACTIO_EINVAL);
  actio_nats_opts bad = {.url = nats_url, .max_reconnect = -2};
  ck_assert_int_eq(actio_nats_spawn(rt, &bad, &c), ACTIO_EINVAL);
  actio_nats_unserve(svc);
}
END_TEST

/* ---- the servers ---- */

static int start_servers(void) {
  snprintf(servers_dir, sizeof servers_dir, "/tmp/actio-test-nats-XXXXXX");
  if (mkdtemp(servers_dir) == NULL)
    return -1;
  char env[512];
  if (nats_server_sh("start", servers_dir, NULL) != 0)
    return -1;
  snprintf(env, sizeof env, "%s/env", servers_dir);
  return env_get(env, "NATS_URL", nats_url, sizeof nats_url) ||
                 env_get(env, "NATS_AUTH_URL", auth_url, sizeof auth_url) ||
                 env_get(env, "NATS_AUTH_USER", auth_user, sizeof auth_user) ||
                 env_get(env, "NATS_AUTH_PASSWORD", auth_password, sizeof auth_password) ||
                 env_get(env, "NATS_TOKEN_URL", token_url, sizeof token_url) ||
                 env_get(env, "NATS_TOKEN", token, sizeof token) ||
                 env_get(env, "NATS_TLS_URL", tls_url, sizeof tls_url) ||
                 env_get(env, "NATS_CA_FILE", ca_file, sizeof ca_file) ||
                 env_get(env, "NATS_NKEY_URL", nkey_url, sizeof nkey_url) ||
                 env_get(env, "NATS_NKEY_PUBLIC", nkey_public, sizeof nkey_public) ||
                 env_get(env, "NATS_NKEY_SEED_FILE", nkey_seed_file, sizeof nkey_seed_file)
             ? -1
             : 0;
}

static void stop_servers(void) { nats_servers_stop(servers_dir, "test_nats"); }

int main(void) {
  if (start_servers() != 0) {
    fprintf(stderr, "test_nats: the NATS servers did not start\n");
    stop_servers();
    return EXIT_FAILURE;
  }
  Suite *s = suite_create("nats");
  TCase *tc = tcase_with_timeout("request_reply", 120);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, queue_group_of_three_shares_the_load);
  tcase_add_test(tc, errors_travel_back_with_their_code);
  tcase_add_test(tc, user_encoding_and_decoding);
  tcase_add_test(tc, no_responders_fails_at_once);
  tcase_add_test(tc, deadline_timeout_and_cancel);
  tcase_add_test(tc, oversized_payloads_and_bad_subjects_refused);
  tcase_add_test(tc, wrong_credentials_refused_secret_never_shown);
  tcase_add_test(tc, tokens_nkeys_and_tls);
  tcase_add_test(tc, nkey_signatures_libnats_would_drop);
  tcase_add_test(tc, a_responder_killed_mid_run_with_retries);
  tcase_add_test(tc, pending_requests_bounded);
  tcase_add_test(tc, stress_replies_cancels_and_timeouts_race);
  tcase_add_test(tc, stop_fails_pending_requests);
  tcase_add_test(tc, reconnects_reach_the_supervisor_and_the_metrics);
  tcase_add_test(tc, closed_for_good_fails_the_actor);
  tcase_add_test(tc, a_restarted_connection_serves_its_subjects_again);
  tcase_add_test(tc, a_connection_costs_no_thread_beyond_cnats);
  tcase_add_test(tc, messages_built_and_bad_arguments);
  suite_add_tcase(s, tc);
  int rc = run_suite(s);
  stop_servers();
  return rc;
}

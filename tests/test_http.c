/* test_http.c: the HTTP actor against real servers on loopback: nginx
 * (static files, TLS with a throwaway CA, HTTP/2) and the fixture server
 * (statuses, delays, redirects, drops, big and chunked bodies, echo). */
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "actio.h"
#include "actors/core/bell.h"
#include "actors/http/http_internal.h"
#include "fixture/fixture_spawn.h"
#include "io/file/file_io.h"
#include "io/http/http_redact.h"
#include "test_util.h"

static char nginx_http[1024], nginx_https[1024], ca_file[1024], fixture[128];
static char nginx_mtls[1024], client_cert[1024], client_key[1024];
static char proxy_url[1024], proxy_auth_url[1024], socks_url[1024], socks_auth_url[1024];
static char squid_url[1024], fwd_proxy_url[1024];
static char servers_dir[256];
static pid_t fixture_pid;

static actio_runtime *rt;
static actio_actor *http;

/* ---- the servers, started once by main ---- */

static int read_env(const char *path) {
  static const struct {
    const char *name;
    char *to;
  } vars[] = {{"NGINX_HTTP_URL=", nginx_http},   {"NGINX_HTTPS_URL=", nginx_https},
              {"CA_FILE=", ca_file},             {"NGINX_MTLS_URL=", nginx_mtls},
              {"CLIENT_CERT=", client_cert},     {"CLIENT_KEY=", client_key},
              {"PROXY_URL=", proxy_url},         {"PROXY_AUTH_URL=", proxy_auth_url},
              {"SOCKS_URL=", socks_url},         {"SOCKS_AUTH_URL=", socks_auth_url},
              {"SQUID_URL=", squid_url},         {"FWD_PROXY_URL=", fwd_proxy_url}};
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return -1;
  char line[1000];
  while (fgets(line, sizeof line, f) != NULL) {
    line[strcspn(line, "\n")] = '\0';
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
      size_t n = strlen(vars[i].name);
      if (strncmp(line, vars[i].name, n) == 0)
        snprintf(vars[i].to, 1024, "%s", line + n); /* each is 1024 bytes */
    }
  }
  fclose(f);
  for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
    if (vars[i].to[0] == '\0')
      return -1;
  return 0;
}

static int start_servers(void) {
  snprintf(servers_dir, sizeof servers_dir, "/tmp/actio-test-http-XXXXXX");
  if (mkdtemp(servers_dir) == NULL)
    return -1;
  char cmd[1024], env[512];
  snprintf(cmd, sizeof cmd, "bash '%s' start '%s' > /dev/null", HTTP_SERVERS_SH, servers_dir);
  if (system(cmd) != 0)
    return -1;
  snprintf(env, sizeof env, "%s/env", servers_dir);
  if (read_env(env) != 0)
    return -1;
  return fixture_spawn(FIXTURE_SERVER, &fixture_pid, fixture, sizeof fixture);
}

static void stop_servers(void) {
  if (fixture_pid > 0) {
    kill(fixture_pid, SIGTERM);
    waitpid(fixture_pid, NULL, 0);
  }
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "bash '%s' stop '%s' >/dev/null 2>&1; rm -rf '%s'",
           HTTP_SERVERS_SH, servers_dir, servers_dir);
  if (system(cmd) != 0)
    fprintf(stderr, "test_http: stopping the servers failed\n");
}

/* ---- helpers ---- */

static void setup(void) {
  ck_assert_int_eq(actio_runtime_create(&rt, NULL), 0);
  actio_http_opts o = {.ca_file = ca_file};
  ck_assert_int_eq(actio_http_spawn(rt, &o, &http), 0);
}

static void teardown(void) { actio_runtime_destroy(rt); }

static char *url(const char *base, const char *path) {
  static _Thread_local char buf[8][2048];
  static _Thread_local int k;
  char *u = buf[k++ % 8];
  snprintf(u, 2048, "%s%s", base, path);
  return u;
}

/* Waits and checks the status; returns the response (or NULL on error). */
static actio_http_response *expect(actio_future *f, int status) {
  int st = actio_future_wait(f, -1);
  if (st != status)
    ck_abort_msg("status %s (%s), expected %s", actio_err_name(st),
                 actio_future_errmsg(f) ? actio_future_errmsg(f) : "",
                 actio_err_name(status));
  return actio_future_value(f);
}

static actio_future *get(actio_actor *a, const char *u) {
  actio_future *f;
  ck_assert_int_eq(actio_http_get(a, u, &f), 0);
  return f;
}

/* ---- a server in the test itself, for states the test must see ---- */

/* A listener that never answers: connects complete into its queue (up to
 * `backlog`, then they stall) until the test accepts them, and no answer
 * comes unless the test writes one. Returns its fd; *sa and *u get its
 * address and URL. */
static int stalled_server(int backlog, struct sockaddr_in *sa, char *u, size_t len) {
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  *sa = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t sl = sizeof *sa;
  ck_assert_int_eq(bind(lfd, (struct sockaddr *)sa, sl), 0);
  ck_assert_int_eq(listen(lfd, backlog), 0);
  ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)sa, &sl), 0);
  snprintf(u, len, "http://127.0.0.1:%d/", ntohs(sa->sin_port));
  return lfd;
}

/* Accepts the next connection and reads a request's head from it: once
 * this returns, the request is on the server, in flight. Returns the
 * connection, which the caller answers or leaves stalled. */
static int accept_request(int lfd) {
  int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
  ck_assert_int_ge(fd, 0);
  char head[4096];
  size_t len = 0;
  while (len < 4 || memcmp(head + len - 4, "\r\n\r\n", 4) != 0) {
    ck_assert_uint_lt(len, sizeof head);
    ssize_t n = read(fd, head + len, 1);
    ck_assert_int_eq(n, 1);
    len++;
  }
  return fd;
}

/* ---- tests ---- */

START_TEST(get_static_file) {
  actio_future *f = get(http, url(nginx_http, "/1k"));
  actio_http_response *r = expect(f, 0);
  ck_assert_int_eq(r->status, 200);
  ck_assert_uint_eq(r->body_len, 1024);
  ck_assert_int_eq(r->http_version, 11);
  ck_assert_str_eq(r->url, url(nginx_http, "/1k"));
  ck_assert_ptr_nonnull(actio_http_header(r, "content-length"));
  ck_assert_str_eq(actio_http_header(r, "Content-Length"), "1024");
  ck_assert(r->total_ms >= r->first_byte_ms && r->first_byte_ms >= r->connect_ms);
  ck_assert_int_eq(r->attempts, 1);
  actio_future_unref(f);
}
END_TEST

START_TEST(connections_are_reused) {
  int opened = 0;
  for (int i = 0; i < 20; i++) {
    actio_future *f = get(http, url(nginx_http, "/1k"));
    opened += expect(f, 0)->new_connections;
    actio_future_unref(f);
  }
  /* Two workers: at most one connection each, kept alive. */
  ck_assert_int_ge(opened, 1);
  ck_assert_int_le(opened, 2);
}
END_TEST

START_TEST(methods_headers_and_bodies) {
  const char *methods[] = {"POST", "PUT", "PATCH", "DELETE"};
  for (size_t i = 0; i < 4; i++) {
    const char *hdrs[] = {"X-Test: yes", "Content-Type: text/plain", NULL};
    actio_http_request req = {.method = methods[i], .url = url(fixture, "/echo"),
                              .headers = hdrs, .body = "payload!", .body_len = 8};
    actio_future *f;
    ck_assert_int_eq(actio_http_send(http, &req, &f), 0);
    actio_http_response *r = expect(f, 0);
    ck_assert_int_eq(r->status, 200);
    ck_assert_int_eq(strncmp(r->body, methods[i], strlen(methods[i])), 0);
    ck_assert_ptr_nonnull(strstr(r->body, "X-Test: yes"));
    ck_assert_ptr_nonnull(strstr(r->body, "\npayload!"));
    actio_future_unref(f);
  }
  actio_http_request head = {.method = "HEAD", .url = url(nginx_http, "/64k")};
  actio_future *f;
  ck_assert_int_eq(actio_http_send(http, &head, &f), 0);
  actio_http_response *r = expect(f, 0);
  ck_assert_int_eq(r->status, 200);
  ck_assert_uint_eq(r->body_len, 0);
  ck_assert_str_eq(actio_http_header(r, "content-length"), "65536");
  actio_future_unref(f);
}
END_TEST

START_TEST(repeated_headers_are_kept) {
  actio_future *f = get(http, url(fixture, "/headers"));
  actio_http_response *r = expect(f, 0);
  ck_assert_uint_eq(actio_http_header_count(r, "set-cookie"), 2);
  ck_assert_str_eq(actio_http_header_nth(r, "SET-COOKIE", 0), "a=1");
  ck_assert_str_eq(actio_http_header_nth(r, "Set-Cookie", 1), "b=2");
  ck_assert_uint_eq(actio_http_header_count(r, "x-multi"), 2);
  ck_assert_ptr_null(actio_http_header(r, "x-absent"));
  ck_assert_ptr_null(actio_http_header_nth(r, "set-cookie", 2));
  actio_future_unref(f);
}
END_TEST

START_TEST(statuses_complete_and_raise_on_request) {
  actio_future *f = get(http, url(fixture, "/status/404"));
  actio_http_response *r = expect(f, 0);
  ck_assert_int_eq(r->status, 404);
  ck_assert_int_eq(actio_http_raise_for_status(r), ACTIO_EHTTP);
  actio_future_unref(f);
  f = get(http, url(fixture, "/status/503"));
  ck_assert_int_eq(expect(f, 0)->status, 503);
  actio_future_unref(f);
  f = get(http, url(fixture, "/status/204"));
  r = expect(f, 0);
  ck_assert_int_eq(actio_http_raise_for_status(r), 0);
  actio_future_unref(f);
}
END_TEST

START_TEST(redirects_followed_limited_and_kept_to_http) {
  actio_future *f = get(http, url(fixture, "/redirect/3"));
  actio_http_response *r = expect(f, 0);
  ck_assert_int_eq(r->status, 200);
  ck_assert_int_eq(r->redirects, 3);
  ck_assert_str_eq(r->url, url(fixture, "/redirect/0"));
  actio_future_unref(f);
  f = get(http, url(fixture, "/loop"));
  expect(f, ACTIO_EREDIRECTS);
  ck_assert_ptr_nonnull(strstr(actio_future_errmsg(f), "/loop"));
  actio_future_unref(f);
  actio_http_request no = {.url = url(fixture, "/redirect/1"), .max_redirects = -1};
  ck_assert_int_eq(actio_http_send(http, &no, &f), 0);
  ck_assert_int_eq(expect(f, 0)->status, 302);
  actio_future_unref(f);
  /* A redirect to another scheme is never followed. */
  f = get(http, url(fixture, "/redirect-to?url=file:///etc/passwd"));
  expect(f, ACTIO_ESCHEME);
  actio_future_unref(f);
}
END_TEST

START_TEST(bad_urls_and_refused_connections) {
  actio_future *f = get(http, "ht!tp://x");
  expect(f, ACTIO_EURL);
  actio_future_unref(f);
  f = get(http, "ftp://127.0.0.1/x");
  expect(f, ACTIO_ESCHEME);
  ck_assert_ptr_nonnull(strstr(actio_future_errmsg(f), "ftp://127.0.0.1/x"));
  actio_future_unref(f);
  f = get(http, "http://127.0.0.1:1/");
  expect(f, -ECONNREFUSED);
  actio_future_unref(f);
  /* A DNS failure without a DNS query: a 64-byte label is longer than DNS
   * allows, so the resolver fails it locally and nothing leaves the host. */
  char name[128];
  snprintf(name, sizeof name, "http://%064d.test/", 0);
  f = get(http, name);
  expect(f, ACTIO_EDNS);
  ck_assert_ptr_nonnull(strstr(actio_future_errmsg(f), ".test"));
  actio_future_unref(f);
  ck_assert_int_eq(actio_http_get(http, NULL, &f), ACTIO_EINVAL);
  actio_actor *not_http;
  ck_assert_int_eq(actio_file_spawn(rt, NULL, &not_http), 0);
  ck_assert_int_eq(actio_http_get(not_http, "http://127.0.0.1/", &f), ACTIO_EINVAL);
}
END_TEST

/* A method that is not an HTTP token (RFC 9110) is refused by the call
 * itself: no future, nothing queued. Any token is sent as given. */
START_TEST(bad_method_refused_at_the_call) {
  const char *bad[] = {"GE T", "", "GET\r\nX-Injected: 1", "G(ET)", "G\xc3\x89T",
                       "GET/1.1"};
  actio_actor_metrics before, after;
  actio_actor_metrics_get(http, &before);
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    actio_http_request req = {.method = bad[i], .url = url(fixture, "/echo")};
    actio_future *f = NULL;
    ck_assert_int_eq(actio_http_send(http, &req, &f), ACTIO_EINVAL);
    ck_assert_ptr_null(f);
  }
  actio_actor_metrics_get(http, &after);
  ck_assert_uint_eq(after.stats.accepted, before.stats.accepted);
  ck_assert_uint_eq(after.in_flight, before.in_flight);
  actio_http_request custom = {.method = "X-Custom_1", .url = url(fixture, "/echo")};
  actio_future *f;
  ck_assert_int_eq(actio_http_send(http, &custom, &f), 0);
  actio_http_response *r = expect(f, 0);
  ck_assert_int_eq(r->status, 200);
  ck_assert_int_eq(strncmp(r->body, "X-Custom_1 /echo", 16), 0);
  actio_future_unref(f);
}
END_TEST

/* Answers that come after an hour: never, within a test. */
#define NEVER_MS "3600000"

START_TEST(timeouts) {
  actio_http_request slow = {.url = url(fixture, "/delay/" NEVER_MS), .timeout_ms = 200};
  actio_future *f;
  ck_assert_int_eq(actio_http_send(http, &slow, &f), 0);
  expect(f, ACTIO_ETIMEDOUT);
  actio_future_unref(f);
  actio_http_request stall = {.url = url(fixture, "/stall/" NEVER_MS), .idle_timeout_ms = 1000};
  ck_assert_int_eq(actio_http_send(http, &stall, &f), 0);
  expect(f, ACTIO_EIDLE);
  ck_assert_ptr_nonnull(strstr(actio_future_errmsg(f), "no data for 1000 ms (the idle timeout)"));
  actio_future_unref(f);
  /* The caller's deadline bounds the whole request. */
  f = get(http, url(fixture, "/delay/" NEVER_MS));
  ck_assert_int_eq(actio_future_set_deadline(rt, f, 200), 0);
  expect(f, ACTIO_ETIMEDOUT);
  actio_future_unref(f);
  /* And the actor goes on. */
  f = get(http, url(nginx_http, "/1k"));
  expect(f, 0);
  actio_future_unref(f);
}
END_TEST

/* Plain http is HTTP/1.1 here: a request to a host whose one connection
 * is busy opens another at once, never waiting behind the slow one. */
START_TEST(no_head_of_line_blocking_over_http) {
  actio_actor *one;
  actio_http_opts o = {.workers = 1};
  ck_assert_int_eq(actio_http_spawn(rt, &o, &one), 0);
  actio_future *slow = get(one, url(fixture, "/delay/" NEVER_MS));
  actio_future *fast = get(one, url(fixture, "/status/200"));
  ck_assert_int_eq(expect(fast, 0)->status, 200);
  ck_assert_int_eq(actio_future_is_done(slow), 0);
  actio_future_cancel(slow);
  actio_future_unref(slow);
  actio_future_unref(fast);
}
END_TEST

/* One deadline for a group: each request has it from the moment it is
 * made, so the transfer is bounded by it, not only cancelled by it. */
typedef struct slow_job {
  actio_actor *http;
  const char *u;
  _Atomic int inherited;
} slow_job;

static int start_slow(size_t i, void *arg, actio_future **out) {
  slow_job *j = arg;
  (void)i;
  int rc = actio_http_get(j->http, j->u, out);
  int64_t left = rc == 0 ? actio_future_remaining_ms(*out) : -1;
  if (left > 0 && left <= 3600000)
    atomic_fetch_add(&j->inherited, 1);
  return rc;
}

START_TEST(group_deadline_reaches_each_request) {
  /* An hour: the first two items start within map_within, on this thread,
   * each with the group's time left as its own deadline, however slow the
   * machine. That the deadline then fails a group is the combinators'
   * test; here the group is cancelled, and its requests with it. */
  slow_job j = {.http = http, .u = url(fixture, "/delay/" NEVER_MS)};
  actio_future *g;
  ck_assert_int_eq(actio_map_within(rt, 4, 2, 3600000, start_slow, &j,
                                    ACTIO_GATHER_SETTLE_ALL, &g), 0);
  ck_assert_int_eq(atomic_load(&j.inherited), 2);
  actio_future_cancel(g);
  ck_assert_int_eq(actio_future_wait(g, -1), ACTIO_ECANCELED);
  for (size_t i = 0; i < 4; i++) {
    actio_future *it = actio_gather_item(g, i);
    if (it != NULL)
      ck_assert_int_lt(actio_future_wait(it, -1), 0);
  }
  actio_future_unref(g);
}
END_TEST

START_TEST(cancel_removes_the_transfer) {
  char base[64];
  struct sockaddr_in sa;
  int lfd = stalled_server(64, &sa, base, sizeof base);
  actio_future *f = get(http, url(base, "never"));
  int conn = accept_request(lfd); /* in flight, and never answered */
  ck_assert_int_eq(actio_future_cancel(f), 0);
  expect(f, ACTIO_ECANCELED);
  actio_future_unref(f);
  char c;
  ck_assert_int_eq(read(conn, &c, 1), 0); /* the transfer was ended: closed */
  close(conn);
  close(lfd);
  /* A stop now would hang on a transfer left behind: it must not. */
  ck_assert_int_eq(actio_actor_stop(http, ACTIO_STOP_DRAIN), 0);
}
END_TEST

START_TEST(bodies_over_the_limit_and_dropped_connections) {
  actio_http_request big = {.url = url(fixture, "/bytes/10000000"), .max_body = 1 << 20};
  actio_future *f;
  ck_assert_int_eq(actio_http_send(http, &big, &f), 0);
  expect(f, ACTIO_ETOOBIG);
  actio_future_unref(f);
  actio_http_request chunked = {.url = url(fixture, "/chunked/5000000"), .max_body = 1 << 20};
  ck_assert_int_eq(actio_http_send(http, &chunked, &f), 0);
  expect(f, ACTIO_ETOOBIG);
  actio_future_unref(f);
  f = get(http, url(fixture, "/chunked/300000"));
  actio_http_response *r = expect(f, 0);
  ck_assert_uint_eq(r->body_len, 300000);
  ck_assert_int_eq(r->body[26], 'a');
  actio_future_unref(f);
  f = get(http, url(fixture, "/drop"));
  expect(f, ACTIO_EPARTIAL);
  actio_future_unref(f);
}
END_TEST

START_TEST(tls_verified_and_http2_multiplexed) {
  /* Without the throwaway CA the server's certificate fails verification. */
  actio_actor *plain;
  actio_http_opts none = {0};
  ck_assert_int_eq(actio_http_spawn(rt, &none, &plain), 0);
  actio_future *f = get(plain, url(nginx_https, "/1k"));
  expect(f, ACTIO_ETLS);
  actio_future_unref(f);
  /* With it: verified, and HTTP/2 carries many streams on one connection. */
  actio_actor *h2;
  actio_http_opts one = {.ca_file = ca_file, .workers = 1};
  ck_assert_int_eq(actio_http_spawn(rt, &one, &h2), 0);
  enum { N = 20 };
  actio_future *fs[N], *all;
  for (int i = 0; i < N; i++)
    fs[i] = get(h2, url(nginx_https, "/64k"));
  ck_assert_int_eq(actio_gather(fs, N, ACTIO_GATHER_FAIL_FAST, &all), 0);
  expect(all, 0);
  int opened = 0;
  for (int i = 0; i < N; i++) {
    actio_http_response *r = actio_future_value(fs[i]);
    ck_assert_int_eq(r->status, 200);
    ck_assert_int_eq(r->http_version, 20);
    ck_assert_uint_eq(r->body_len, 65536);
    opened += r->new_connections;
    actio_future_unref(fs[i]);
  }
  ck_assert_int_eq(opened, 1);
  actio_future_unref(all);
}
END_TEST

START_TEST(many_requests_at_once) {
  enum { N = 500 };
  actio_future *fs[N], *all;
  for (int i = 0; i < N; i++)
    fs[i] = get(http, url(i % 2 ? nginx_http : fixture, i % 2 ? "/1k" : "/status/200"));
  ck_assert_int_eq(actio_gather(fs, N, ACTIO_GATHER_FAIL_FAST, &all), 0);
  expect(all, 0);
  for (int i = 0; i < N; i++) {
    ck_assert_int_eq(((actio_http_response *)actio_future_value(fs[i]))->status, 200);
    actio_future_unref(fs[i]);
  }
  actio_future_unref(all);
}
END_TEST

START_TEST(stop_now_cancels_transfers_in_flight) {
  char base[64];
  struct sockaddr_in sa;
  int lfd = stalled_server(64, &sa, base, sizeof base), conns[5];
  actio_future *fs[5];
  for (int i = 0; i < 5; i++)
    fs[i] = get(http, url(base, "never"));
  for (int i = 0; i < 5; i++)
    conns[i] = accept_request(lfd); /* all five in flight, never answered */
  ck_assert_int_eq(actio_actor_stop(http, ACTIO_STOP_NOW), 0);
  for (int i = 0; i < 5; i++) {
    expect(fs[i], ACTIO_ECANCELED);
    actio_future_unref(fs[i]);
    close(conns[i]);
  }
  close(lfd);
  actio_future *late;
  ck_assert_int_eq(actio_http_get(http, url(nginx_http, "/1k"), &late), ACTIO_ECLOSED);
}
END_TEST

static actio_http_request late_req;

static int send_late(size_t i, void *arg, actio_future **out) {
  (void)i;
  (void)arg;
  return actio_http_send(http, &late_req, out);
}

START_TEST(retries_for_idempotent_requests) {
  /* The fixture answers 503 with Retry-After: 1 the first k times per key. */
  actio_http_request get2 = {.url = url(fixture, "/retry/a/2"), .retries = 3};
  actio_future *f;
  ck_assert_int_eq(actio_http_send(http, &get2, &f), 0);
  actio_http_response *r = expect(f, 0);
  ck_assert_int_eq(r->status, 200);
  ck_assert_int_eq(r->attempts, 3);
  actio_future_unref(f);
  /* POST is not retried unless asked. */
  actio_http_request post = {.method = "POST", .url = url(fixture, "/retry/b/1"),
                             .retries = 3, .body = "x", .body_len = 1};
  ck_assert_int_eq(actio_http_send(http, &post, &f), 0);
  r = expect(f, 0);
  ck_assert_int_eq(r->status, 503);
  ck_assert_int_eq(r->attempts, 1);
  actio_future_unref(f);
  post.url = url(fixture, "/retry/c/1");
  post.retry_any_method = 1;
  ck_assert_int_eq(actio_http_send(http, &post, &f), 0);
  r = expect(f, 0);
  ck_assert_int_eq(r->status, 200);
  ck_assert_int_eq(r->attempts, 2);
  actio_future_unref(f);
  /* Out of retries: the last answer stands. */
  actio_http_request few = {.url = url(fixture, "/retry/d/5"), .retries = 1};
  ck_assert_int_eq(actio_http_send(http, &few, &f), 0);
  r = expect(f, 0);
  ck_assert_int_eq(r->status, 503);
  ck_assert_int_eq(r->attempts, 2);
  actio_future_unref(f);
  /* Off by default. */
  f = get(http, url(fixture, "/retry/e/1"));
  r = expect(f, 0);
  ck_assert_int_eq(r->status, 503);
  ck_assert_int_eq(r->attempts, 1);
  actio_future_unref(f);
  /* A wait that would end past the deadline is not started. The deadline
   * must be there before the answer can come: a group's is given to the
   * request as it is made. */
  late_req = (actio_http_request){.url = url(fixture, "/retry/g/3"), .retries = 5,
                                  .retry_backoff_ms = 120000};
  actio_future *g;
  ck_assert_int_eq(actio_map_within(rt, 1, 1, 10000, send_late, NULL,
                                    ACTIO_GATHER_SETTLE_ALL, &g), 0);
  ck_assert_int_eq(actio_future_wait(g, -1), 0);
  r = expect(actio_gather_item(g, 0), 0);
  ck_assert_int_eq(r->status, 503);
  ck_assert_int_eq(r->attempts, 1);
  actio_future_unref(g);
  /* Connection failures are retried with backoff, then reported. */
  actio_http_request refused = {.url = "http://127.0.0.1:1/", .retries = 2,
                                .retry_backoff_ms = 10};
  ck_assert_int_eq(actio_http_send(http, &refused, &f), 0);
  expect(f, -ECONNREFUSED);
  actio_future_unref(f);
}
END_TEST

typedef struct {
  uint64_t bytes, bad;
  int chunks;
  actio_future *pending[4096];
  _Atomic int npending;
  int fail_with;
} body_sink;

static int take_chunk(void *arg, const void *data, size_t len, actio_future **ready) {
  body_sink *s = arg;
  const char *p = data;
  for (size_t i = 0; i < len; i++)
    s->bad += p[i] != (char)('a' + (s->bytes + i) % 26);
  s->bytes += len;
  if (s->fail_with)
    return s->fail_with;
  if (s->chunks++ % 4 == 0) { /* every 4th chunk: wait for the test thread */
    int n = atomic_load_explicit(&s->npending, memory_order_relaxed);
    if (n < 4096) {
      actio_future_create(ready);
      actio_future_ref(*ready);
      s->pending[n] = *ready;
      atomic_store_explicit(&s->npending, n + 1, memory_order_release);
    }
  }
  return 0;
}

START_TEST(body_to_a_consumer_with_backpressure) {
  body_sink *s = calloc(1, sizeof *s);
  actio_http_request req = {.url = url(fixture, "/bytes/3000000"),
                            .on_chunk = take_chunk, .chunk_arg = s};
  actio_future *f;
  ck_assert_int_eq(actio_http_send(http, &req, &f), 0);
  int released = 0;
  while (actio_future_wait(f, 1) == ACTIO_EPENDING)
    if (released < atomic_load_explicit(&s->npending, memory_order_acquire)) {
      actio_future_resolve(s->pending[released], NULL, NULL);
      actio_future_unref(s->pending[released++]);
    }
  /* A wait asked for by the very last chunk is still open: the transfer
   * ended without needing it. */
  while (released < atomic_load_explicit(&s->npending, memory_order_acquire)) {
    actio_future_resolve(s->pending[released], NULL, NULL);
    actio_future_unref(s->pending[released++]);
  }
  actio_http_response *r = expect(f, 0);
  ck_assert_uint_eq(r->body_len, 3000000);
  ck_assert_uint_eq(s->bytes, 3000000);
  ck_assert_uint_eq(s->bad, 0);
  ck_assert_int_gt(released, 1);
  actio_future_unref(f);
  /* A consumer that fails ends the request with its code. */
  memset(s, 0, sizeof *s);
  s->fail_with = -EPIPE;
  ck_assert_int_eq(actio_http_send(http, &req, &f), 0);
  expect(f, -EPIPE);
  ck_assert_ptr_nonnull(strstr(actio_future_errmsg(f), "body consumer failed"));
  actio_future_unref(f);
  free(s);
}
END_TEST

/* How many names in d match the atomic writes' temporaries (*size: the
 * last one's size; size may be NULL). */
static int leftovers_in(const char *d, off_t *size) {
  DIR *dd = opendir(d);
  ck_assert_ptr_nonnull(dd);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(dd)) != NULL) {
    struct stat st;
    if (!actio__fio_is_leftover(e->d_name))
      continue;
    ck_assert_int_eq(fstatat(dirfd(dd), e->d_name, &st, 0), 0);
    if (size != NULL)
      *size = st.st_size;
    n++;
  }
  closedir(dd);
  return n;
}

/* The size of the file with no name (O_TMPFILE) in folder d that this
 * process has open, or -1 if there is none. */
static off_t unnamed_in(const char *d) {
  off_t size = -1;
  DIR *fds = opendir("/proc/self/fd");
  struct dirent *e;
  char prefix[700];
  snprintf(prefix, sizeof prefix, "%s/#", d);
  while ((e = readdir(fds)) != NULL) {
    char link[300], target[1024];
    struct stat st;
    snprintf(link, sizeof link, "/proc/self/fd/%s", e->d_name);
    ssize_t l = readlink(link, target, sizeof target - 1);
    if (l <= 0)
      continue;
    target[l] = '\0';
    if (strncmp(target, prefix, strlen(prefix)) == 0 && stat(link, &st) == 0)
      size = st.st_size;
  }
  closedir(fds);
  return size;
}

START_TEST(save_to_shows_nothing_until_complete) {
  /* _i 0: through O_TMPFILE where the file system has it; 1: the named
   * fallback, forced. The body is half there: in a file without a name, or
   * under a temporary name that a process killed now would leave. */
  actio__fio_use_tmpfile(_i == 0);
  char d[600], dest[700];
  snprintf(d, sizeof d, "%s/save-%d", servers_dir, (int)_i);
  ck_assert_int_eq(mkdir(d, 0755), 0);
  int probe = open(d, O_TMPFILE | O_WRONLY, 0600);
  int unnamed = _i == 0 && probe >= 0;
  if (probe >= 0)
    close(probe);
  snprintf(dest, sizeof dest, "%s/dest", d);
  FILE *fp = fopen(dest, "w");
  fputs("old", fp);
  fclose(fp);
  actio_actor *h;
  ck_assert_int_eq(actio_http_spawn(rt, NULL, &h), 0);
  actio_http_request req = {.url = url(fixture, "/stall/3600000"), .save_to = dest};
  actio_future *f;
  ck_assert_int_eq(actio_http_send(h, &req, &f), 0);
  off_t size = 0;
  if (unnamed) {
    while (unnamed_in(d) != 5) /* "01234" written, the rest an hour away */
      usleep(1000);
    ck_assert_int_eq(leftovers_in(d, NULL), 0);
  } else {
    while (leftovers_in(d, &size) == 0 || size != 5)
      usleep(1000);
    ck_assert_int_eq(unnamed_in(d), -1);
  }
  actio_future_cancel(f);
  expect(f, ACTIO_ECANCELED);
  actio_future_unref(f);
  /* A complete body replaces the old file, in either way. */
  req.url = url(fixture, "/bytes/100000");
  ck_assert_int_eq(actio_http_send(h, &req, &f), 0);
  ck_assert_uint_eq(expect(f, 0)->body_len, 100000);
  actio_future_unref(f);
  ck_assert_int_eq(actio_actor_stop(h, ACTIO_STOP_DRAIN), 0); /* both ended */
  ck_assert_int_eq(leftovers_in(d, NULL), 0);
  ck_assert_int_eq(unnamed_in(d), -1);
  struct stat st;
  ck_assert_int_eq(stat(dest, &st), 0);
  ck_assert_int_eq(st.st_size, 100000);
  actio__fio_use_tmpfile(-1);
}
END_TEST

START_TEST(body_saved_to_a_file) {
  char path[600], cmd[2048];
  snprintf(path, sizeof path, "%s/saved-8m", servers_dir);
  actio_http_request req = {.url = url(nginx_http, "/8m"), .save_to = path};
  actio_future *f;
  ck_assert_int_eq(actio_http_send(http, &req, &f), 0);
  actio_http_response *r = expect(f, 0);
  ck_assert_uint_eq(r->body_len, 8u << 20);
  ck_assert_uint_eq(strlen(r->body), 0);
  snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s/www/8m'", path, servers_dir);
  ck_assert_int_eq(system(cmd), 0);
  actio_future_unref(f);
  /* A failed transfer leaves neither the file nor a temporary one. */
  snprintf(path, sizeof path, "%s/dropped", servers_dir);
  req.url = url(fixture, "/drop");
  ck_assert_int_eq(actio_http_send(http, &req, &f), 0);
  expect(f, ACTIO_EPARTIAL);
  actio_future_unref(f);
  ck_assert_int_ne(access(path, F_OK), 0);
  ck_assert_int_eq(leftovers_in(servers_dir, NULL), 0);
  req.save_to = "/nonexistent/folder/file";
  ck_assert_int_eq(actio_http_send(http, &req, &f), 0);
  expect(f, -ENOENT);
  ck_assert_ptr_nonnull(strstr(actio_future_errmsg(f), "saving to /nonexistent/folder/file"));
  actio_future_unref(f);
}
END_TEST

static actio_future *held2;

/* Pauses on the first chunk (the test completes the wait), fails on the
 * next: the one libcurl hands over while unpausing. */
static int hold_then_fail(void *arg, const void *data, size_t len, actio_future **ready) {
  int *calls = arg;
  (void)data;
  (void)len;
  if ((*calls)++ > 0)
    return -EPIPE;
  actio_future_create(ready);
  actio_future_ref(*ready);
  __atomic_store_n(&held2, *ready, __ATOMIC_RELEASE);
  return 0;
}

static void *resolve_after(void *arg) {
  actio_future **slot = arg;
  actio_future *f;
  while ((f = __atomic_load_n(slot, __ATOMIC_ACQUIRE)) == NULL)
    usleep(1000);
  usleep(1500000); /* longer than the idle timeout below */
  actio_future_resolve(f, NULL, NULL);
  return NULL;
}

static actio_future *held;

static int hold_once(void *arg, const void *data, size_t len, actio_future **ready) {
  (void)arg;
  (void)data;
  (void)len;
  if (__atomic_load_n(&held, __ATOMIC_ACQUIRE) != NULL)
    return 0;
  actio_future_create(ready);
  actio_future_ref(*ready);
  __atomic_store_n(&held, *ready, __ATOMIC_RELEASE);
  return 0;
}

START_TEST(review_regressions) {
  /* save_to is copied: the caller may free it at once. */
  char *path = malloc(700);
  snprintf(path, 700, "%s/copied-path", servers_dir);
  actio_http_request req = {.url = url(nginx_http, "/1k"), .save_to = path};
  actio_future *f;
  ck_assert_int_eq(actio_http_send(http, &req, &f), 0);
  char keep[700];
  snprintf(keep, sizeof keep, "%s", path);
  memset(path, 'x', 699);
  free(path);
  ck_assert_uint_eq(expect(f, 0)->body_len, 1024);
  ck_assert_int_eq(access(keep, F_OK), 0);
  actio_future_unref(f);

  /* A consumer that fails on the chunk handed over after a pause fails the
   * request. */
  int calls = 0;
  held2 = NULL;
  actio_http_request fail2 = {.url = url(fixture, "/chunked/300000"),
                              .on_chunk = hold_then_fail, .chunk_arg = &calls};
  ck_assert_int_eq(actio_http_send(http, &fail2, &f), 0);
  actio_future *h2;
  while ((h2 = __atomic_load_n(&held2, __ATOMIC_ACQUIRE)) == NULL)
    usleep(1000);
  actio_future_resolve(h2, NULL, NULL);
  expect(f, -EPIPE);
  actio_future_unref(f);
  actio_future_unref(h2);

  /* Backpressure is not idleness. */
  held = NULL;
  actio_http_request slow = {.url = url(nginx_http, "/64k"), .on_chunk = hold_once,
                             .idle_timeout_ms = 300};
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, resolve_after, &held), 0);
  ck_assert_int_eq(actio_http_send(http, &slow, &f), 0);
  ck_assert_uint_eq(expect(f, 0)->body_len, 65536);
  actio_future_unref(f);
  pthread_join(t, NULL);
  actio_future_unref(held);

  /* A retried answer never reaches save_to: cancelled while waiting to
   * retry, the old file stays. */
  char dest[700], cmd[1600];
  snprintf(dest, sizeof dest, "%s/keep-me", servers_dir);
  FILE *fp = fopen(dest, "w");
  fputs("GOOD", fp);
  fclose(fp);
  char base[64];
  struct sockaddr_in sa;
  int lfd = stalled_server(64, &sa, base, sizeof base);
  actio_http_request retry = {.url = url(base, "clobber"), .retries = 3, .save_to = dest};
  ck_assert_int_eq(actio_http_send(http, &retry, &f), 0);
  int conn = accept_request(lfd);
  static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n"
                             "Content-Length: 4\r\nConnection: close\r\n\r\nBAD!";
  ck_assert_int_eq(write(conn, busy, sizeof busy - 1), (ssize_t)(sizeof busy - 1));
  close(conn);
  conn = accept_request(lfd); /* the 503 came and was dealt with: this is the retry */
  ck_assert_int_eq(actio_future_cancel(f), 0);
  expect(f, ACTIO_ECANCELED);
  actio_future_unref(f);
  close(conn);
  close(lfd);
  snprintf(cmd, sizeof cmd, "grep -qx GOOD '%s'", dest);
  ck_assert_int_eq(system(cmd), 0);
}
END_TEST

START_TEST(client_certificates) {
  /* The server asks for a certificate: without one nginx answers 400. */
  actio_future *f = get(http, url(nginx_mtls, "/1k"));
  ck_assert_int_eq(expect(f, 0)->status, 400);
  actio_future_unref(f);
  actio_actor *with;
  actio_http_opts o = {.ca_file = ca_file, .client_cert = client_cert,
                       .client_key = client_key};
  ck_assert_int_eq(actio_http_spawn(rt, &o, &with), 0);
  f = get(with, url(nginx_mtls, "/1k"));
  actio_http_response *r = expect(f, 0);
  ck_assert_int_eq(r->status, 200);
  ck_assert_uint_eq(r->body_len, 1024);
  actio_future_unref(f);
}
END_TEST

START_TEST(per_host_connection_limit) {
  actio_actor *one;
  actio_http_opts o = {.workers = 1, .max_host_connections = 1};
  ck_assert_int_eq(actio_http_spawn(rt, &o, &one), 0);
  enum { N = 8 };
  actio_future *fs[N], *all;
  for (int i = 0; i < N; i++)
    fs[i] = get(one, url(fixture, "/delay/50"));
  ck_assert_int_eq(actio_gather(fs, N, ACTIO_GATHER_FAIL_FAST, &all), 0);
  expect(all, 0);
  int opened = 0;
  for (int i = 0; i < N; i++) {
    opened += ((actio_http_response *)actio_future_value(fs[i]))->new_connections;
    actio_future_unref(fs[i]);
  }
  ck_assert_int_eq(opened, 1); /* all eight queued for the one connection */
  actio_future_unref(all);
}
END_TEST

/* Waits until `a`'s workers have taken `n` messages. */
static void wait_handled(actio_actor *a, uint64_t n) {
  for (actio_actor_stats st;; sched_yield()) {
    actio_actor_stats_get(a, &st);
    if (st.handled >= n)
      return;
  }
}

START_TEST(backlog_waits_in_the_mailbox) {
  char u[64];
  struct sockaddr_in sa;
  int lfd = stalled_server(64, &sa, u, sizeof u);
  /* Two transfer slots, a mailbox of four: the seventh request is refused. */
  actio_actor *h;
  actio_http_opts o = {.workers = 1, .max_connections = 2, .capacity = 4,
                       .fail_when_full = 1};
  ck_assert_int_eq(actio_http_spawn(rt, &o, &h), 0);
  actio_future *fs[6], *f;
  for (int i = 0; i < 2; i++)
    fs[i] = get(h, u);
  wait_handled(h, 2); /* both slots taken */
  for (int i = 2; i < 6; i++)
    fs[i] = get(h, u);
  ck_assert_int_eq(actio_http_get(h, u, &f), ACTIO_EFULL);
  actio_actor_stats st;
  actio_actor_stats_get(h, &st);
  ck_assert_uint_eq(st.depth, 4); /* queued in the mailbox, not in libcurl */
  ck_assert_uint_eq(st.handled, 2);
  actio_actor_metrics m;
  actio_actor_metrics_get(h, &m);
  ck_assert_uint_eq(m.in_flight, 6);
  ck_assert_uint_eq(m.running, 2);
  ck_assert_uint_eq(m.waiting, 4);
  /* A stop-now ends them all: two running, four never started. */
  ck_assert_int_eq(actio_actor_stop(h, ACTIO_STOP_NOW), 0);
  for (int i = 0; i < 6; i++) {
    expect(fs[i], ACTIO_ECANCELED);
    actio_future_unref(fs[i]);
  }
  actio_actor_stats_get(h, &st);
  ck_assert_uint_eq(st.dropped, 4);
  close(lfd);
}
END_TEST

/* What the first answer's callback does, on the worker's thread: answers
 * the second request, whose answer the worker then reads before it sleeps,
 * and sends a third, which reuses the first's connection and stalls. */
typedef struct refill {
  actio_actor *h;
  const char *url;
  int second_fd;
  ssize_t wrote;
  int rc;
  actio_future *stalled;
} refill;

static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

static void refill_on_first(actio_future *f, void *arg) {
  (void)f;
  refill *r = arg;
  r->wrote = write(r->second_fd, answer, sizeof answer - 1);
  r->rc = actio_http_get(r->h, r->url, &r->stalled);
}

START_TEST(a_full_worker_freed_before_it_sleeps_takes_its_mailbox) {
  /* A worker with its slots full waits on its transfers without
   * advertising: senders wake only workers with room. Here its wait's
   * first look at the sockets ends a transfer (the answer was there), so it
   * has room before it sleeps. It must go back to its mailbox: before, it
   * slept until its poll's timeout (libcurl's next timer, else a second)
   * while the next request waited in the mailbox. Here no timeout comes
   * (no idle limit, timeouts of an hour), so a worker that sleeps hangs
   * the test. */
  actio__http_set_idle_poll_ms(-1);
  char u[64];
  struct sockaddr_in sa;
  int lfd = stalled_server(8, &sa, u, sizeof u);
  actio_actor *h;
  actio_http_opts o = {.workers = 1, .max_connections = 2, .connect_timeout_ms = 3600000,
                       .timeout_ms = 3600000};
  ck_assert_int_eq(actio_http_spawn(rt, &o, &h), 0);
  actio_future *first = get(h, u);
  int first_fd = accept_request(lfd);
  actio_future *second = get(h, u);
  refill r = {.h = h, .url = u, .second_fd = accept_request(lfd), .rc = -1};
  /* Both slots taken. The first answer's callback answers the second and
   * takes a slot again with a request that stalls on the kept connection. */
  ck_assert_int_eq(actio_future_on_done(first, refill_on_first, &r), 0);
  ck_assert_int_eq(write(first_fd, answer, sizeof answer - 1), (ssize_t)sizeof answer - 1);
  expect(first, 0);
  expect(second, 0); /* read by the worker's next wait, before its poll */
  ck_assert_int_eq(r.wrote, (ssize_t)sizeof answer - 1);
  ck_assert_int_eq(r.rc, 0);
  /* One slot is free: a new request must start now, not after the poll. */
  actio_future *next = get(h, url(nginx_http, "/1k"));
  ck_assert_int_eq(expect(next, 0)->status, 200);
  ck_assert_int_eq(actio_actor_stop(h, ACTIO_STOP_NOW), 0);
  expect(r.stalled, ACTIO_ECANCELED);
  actio_future *fs[] = {first, second, next, r.stalled};
  for (size_t i = 0; i < sizeof fs / sizeof fs[0]; i++)
    actio_future_unref(fs[i]);
  close(first_fd);
  close(r.second_fd);
  close(lfd);
  actio__http_set_idle_poll_ms(1000);
}
END_TEST

START_TEST(connect_timeout) {
  /* A listener whose accept queue is full drops further SYNs on Linux, so
   * a connect to it never completes. */
  char u[64];
  struct sockaddr_in sa;
  int lfd = stalled_server(0, &sa, u, sizeof u);
  /* One connection fills the queue (backlog 0 holds one); the listener's
   * TCP_INFO counts what its queue holds. */
  int fill = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  ck_assert(connect(fill, (struct sockaddr *)&sa, sizeof sa) == 0 || errno == EINPROGRESS);
  for (;;) {
    struct tcp_info ti;
    socklen_t tl = sizeof ti;
    ck_assert_int_eq(getsockopt(lfd, IPPROTO_TCP, TCP_INFO, &ti, &tl), 0);
    if (ti.tcpi_unacked > ti.tcpi_sacked) /* queued > backlog: full */
      break;
    usleep(1000); /* paces the polling */
  }
  actio_http_request req = {.url = u, .connect_timeout_ms = 300};
  actio_future *f;
  ck_assert_int_eq(actio_http_send(http, &req, &f), 0);
  expect(f, ACTIO_ECONNTIMEOUT);
  actio_future_unref(f);
  close(fill);
  close(lfd);
}
END_TEST

/* ---- secrets kept out of texts for people ---- */

static const char *redacted(const char *in, size_t len, const char *const *extra) {
  static char out[1024];
  size_t n = actio__http_redact(in, len, extra, out, sizeof out);
  ck_assert_uint_eq(n, strlen(out));
  return out;
}

START_TEST(urls_redacted_for_messages) {
  static const struct { const char *in, *want; } cases[] = {
      {"http://alice:SECRETPW@127.0.0.1:1/x?token=TOPSECRET",
       "http://alice:***@127.0.0.1:1/x?token=***"},
      {"https://TOKEN123@github.com/o/r.git", "https://***@github.com/o/r.git"},
      {"http://h/p?a=1&Access_Token=s1;x-api-key=s2&monkey=ok&apiKey=s3&X-Amz-Signature=s4"
       "&%74oken=s5&sig=s6&q=token#id_token=s7&b=2",
       "http://h/p?a=1&Access_Token=***&monkey=ok&apiKey=***&X-Amz-Signature=***"
       "&%74oken=***&sig=***&q=token#id_token=***&b=2"},
      /* a secret's value runs to the next '&' (libcurl's reading) */
      {"http://h/?a=1;token=s1?s2;s3&b=2", "http://h/?a=1;token=***&b=2"},
      /* libcurl takes a scheme that starts with a digit or '+' */
      {"80cp://alice:pw@h/", "80cp://alice:***@h/"},
      {"+ttp://alice:pw@h/", "+ttp://alice:***@h/"},
      {"http://h/#/route?access_token=s1", "http://h/#/route?access_token=***"},
      /* libcurl rejects a password holding '/' or '?': its message would show it */
      {"http://alice:p/ss@host/x", "http://alice:***@host/x"},
      {"http://alice:p?ss@host/x", "http://alice:***@host/x"},
      {"http://a@b.example:c@host/", "http://a@b.example:***@host/"},
      {"alice:pw@host/x", "alice:***@host/x"},
      {"http://[::1]:8080/a@b", "http://***@b"},
      {"http://[::1]/a@b", "http://[::1]/a@b"},
      {"http://host:8080/users/@me?user=bob", "http://host:8080/users/@me?user=bob"},
      {"http://h/r?next=http://u:pw@x/y&z=1", "http://h/r?next=http://u:***@x/y&z=1"},
      {"", ""},
      {"?", "?"},
      {"http://h/?=v&key", "http://h/?=v&key"},
      /* Spaces or control bytes before the URL: libcurl sees no scheme and
       * its message quotes the URL whole. */
      {" http://user:hunter2@127.0.0.1:9/", " http://user:***@127.0.0.1:9/"},
      {"\t\x01http://user:hunter2@h/", "%09%01http://user:***@h/"},
      {"<http://user:hunter2@h/>", "<http://user:***@h/>"},
      {"ht tp://user:hunter2@h/", "ht tp://user:***@h/"},
      /* A password holding '/' after digits, which libcurl reads as a port:
       * masked to the '@', as an '@' after a ':' in the path is */
      {"http://admin:2024/hunter2@host/x", "http://admin:***@host/x"},
      {"http://host:8080/users/bob@example.com/p", "http://host:***@example.com/p"},
      {"http://host/users/bob@example.com", "http://host/users/bob@example.com"},
      {"https://registry.example:8443/@scope/pkg", "https://registry.example:8443/@scope/pkg"},
      /* A name judged as written too: "s%77%7auth" reads as "swzuth"
       * decoded, as a name ending in "auth" as written (found by the fuzzer) */
      {"http://h/?s%77%7auth=p1&s%77%7a=ok", "http://h/?s%77%7auth=***&s%77%7a=ok"},
      /* Names with bracketed keys, and secret words ending longer names */
      {"http://h/?user[password]=p1&token[]=p2&a[b][api_key]=p3&user[name]=bob",
       "http://h/?user[password]=***&token[]=***&a[b][api_key]=***&user[name]=bob"},
      {"http://h/?accesstoken=p1&client_secret=p2&api_key=p3&userPassword=p4&PHPSESSID=p5"
       "&password_confirmation=p6&tokens=p7&privatekey=p8&api_keys=p9&monkey=ok&turkeys=ok"
       "&to%0Aken=p10",
       "http://h/?accesstoken=***&client_secret=***&api_key=***&userPassword=***&PHPSESSID=***"
       "&password_confirmation=***&tokens=***&privatekey=***&api_keys=***&monkey=ok&turkeys=ok"
       "&to%0Aken=***"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
    ck_assert_str_eq(redacted(cases[i].in, strlen(cases[i].in), NULL), cases[i].want);
  /* The caller's names, matched as the built-in ones. */
  const char *const extra[] = {"code", "", NULL};
  ck_assert_str_eq(redacted("http://h/?code=c1&error_code=c2&zip=1", 37, extra),
                   "http://h/?code=***&error_code=***&zip=1");
  ck_assert_str_eq(redacted("http://h/?code=c1", 17, NULL), "http://h/?code=c1");
  /* A name too long to judge is masked. */
  char longname[400];
  memset(longname, 'a', sizeof longname);
  memcpy(longname, "http://h/?", 10);
  memcpy(longname + 390, "=SECRETVAL", 10);
  ck_assert_ptr_null(strstr(redacted(longname, sizeof longname, NULL), "SECRETVAL"));
  /* Control bytes and NULs are escaped: a message stays one line. */
  ck_assert_str_eq(redacted("http://h/a\nb\x01\x7f", 14, NULL), "http://h/a%0Ab%01%7F");
  ck_assert_str_eq(redacted("http://h/\0x", 11, NULL), "http://h/%00x");
  /* A cut text says so, and returns the length the whole would take. */
  char small[16];
  const char *u = "http://alice:pw@host/long/path";
  ck_assert_uint_eq(actio__http_redact(u, strlen(u), NULL, small, sizeof small), 31);
  ck_assert_str_eq(small, "http://alice...");
  ck_assert_uint_eq(actio__http_redact(u, strlen(u), NULL, NULL, 0), 31);
  /* The public call: the session's names, or the built-in ones alone. */
  const char *const mine[] = {"sid", NULL};
  actio_http_opts o = {.secret_params = mine};
  actio_actor *h;
  ck_assert_int_eq(actio_http_spawn(rt, &o, &h), 0);
  char out[128];
  const char *v = "http://u:p@h/?sid=S1&token=T1";
  ck_assert_int_eq(actio_http_redact_url(h, v, out, sizeof out), 33);
  ck_assert_str_eq(out, "http://u:***@h/?sid=***&token=***");
  ck_assert_int_eq(actio_http_redact_url(NULL, v, out, sizeof out), 32);
  ck_assert_str_eq(out, "http://u:***@h/?sid=S1&token=***");
  ck_assert_int_eq(actio_http_redact_url(NULL, v, NULL, 0), 32);
  ck_assert_int_eq(actio_http_redact_url(NULL, NULL, out, sizeof out), ACTIO_EINVAL);
  ck_assert_int_eq(actio_http_redact_url(NULL, v, NULL, 4), ACTIO_EINVAL);
  actio_actor *not_http;
  ck_assert_int_eq(actio_file_spawn(rt, NULL, &not_http), 0);
  ck_assert_int_eq(actio_http_redact_url(not_http, v, out, sizeof out), ACTIO_EINVAL);
}
END_TEST

/* The secrets of the URLs below: none may reach a text for people. */
static void no_secret(const char *text) {
  static const char *const secrets[] = {"SECRETPW", "TOPSECRET", "SESSIONSECRET", "PW2",
                                        "hunter2"};
  ck_assert_ptr_nonnull(text);
  for (size_t i = 0; i < sizeof secrets / sizeof *secrets; i++)
    if (strstr(text, secrets[i]) != NULL)
      ck_abort_msg("a secret in \"%s\"", text);
}

/* Takes the first chunk and holds the transfer there: the request is
 * running on a worker from then on. */
typedef struct paused_at {
  _Atomic int taken;
  actio_future *ready;
} paused_at;

static int hold_first(void *arg, const void *data, size_t len, actio_future **ready) {
  paused_at *h = arg;
  (void)data;
  (void)len;
  ck_assert_int_eq(actio_future_create(&h->ready), 0);
  actio_future_ref(h->ready);
  *ready = h->ready;
  atomic_store_explicit(&h->taken, 1, memory_order_release);
  return 0;
}

/* Sends a GET of u held at its first chunk; returns once it is held. */
static actio_future *get_paused(actio_actor *a, const char *u, paused_at *h) {
  actio_http_request req = {.url = u, .on_chunk = hold_first, .chunk_arg = h};
  actio_future *f;
  ck_assert_int_eq(actio_http_send(a, &req, &f), 0);
  while (!atomic_load_explicit(&h->taken, memory_order_acquire))
    ck_assert_int_eq(actio_future_wait(f, 1), ACTIO_EPENDING);
  return f;
}

static void release(paused_at *h) {
  actio_future_resolve(h->ready, NULL, NULL);
  actio_future_unref(h->ready);
  h->ready = NULL;
  atomic_store_explicit(&h->taken, 0, memory_order_relaxed);
}

START_TEST(secrets_stay_out_of_error_texts) {
  char names[2][16] = {"sessid", ""};
  const char *mine[] = {names[0], NULL};
  actio_http_opts o = {.secret_params = mine, .ca_file = ca_file};
  actio_actor *h;
  ck_assert_int_eq(actio_http_spawn(rt, &o, &h), 0);
  strcpy(names[0], "other"); /* the session kept a copy */
  const char *refused = "http://alice:SECRETPW@127.0.0.1:1/x?token=TOPSECRET&sessid=SESSIONSECRET";
  /* The future's message. */
  actio_future *f = get(h, refused);
  expect(f, -ECONNREFUSED);
  const char *m = actio_future_errmsg(f);
  no_secret(m);
  ck_assert_ptr_nonnull(strstr(m, "GET http://alice:***@127.0.0.1:1/x?token=***&sessid=***: "));
  actio_future_unref(f);
  /* A retried request's: the last attempt's, and how many there were. */
  actio_http_request retried = {.url = refused, .retries = 2, .retry_backoff_ms = 1};
  ck_assert_int_eq(actio_http_send(h, &retried, &f), 0);
  expect(f, -ECONNREFUSED);
  no_secret(actio_future_errmsg(f));
  ck_assert_ptr_nonnull(strstr(actio_future_errmsg(f), "(after 3 attempts)"));
  actio_future_unref(f);
  /* URLs libcurl reads otherwise than a person would: spaces or a control
   * byte before the scheme (libcurl rejects it and quotes it whole), a
   * password holding '/' after digits (read as a port and a path), secrets
   * in bracketed or longer names. */
  static const struct {
    const char *url;
    int rc;
    const char *shown;
  } odd[] = {
      {" http://user:hunter2@127.0.0.1:9/", ACTIO_EURL, "GET  http://user:***@127.0.0.1:9/: "},
      {"\thttp://user:hunter2@127.0.0.1:9/", ACTIO_EURL, "GET %09http://user:***@127.0.0.1:9/: "},
      {"http://127.0.0.1:1/hunter2@host/", -ECONNREFUSED, "GET http://127.0.0.1:***@host/: "},
      {"http://127.0.0.1:1/?user[password]=hunter2&token[]=hunter2&accesstoken=hunter2"
       "&client_secret=hunter2",
       -ECONNREFUSED,
       "GET http://127.0.0.1:1/?user[password]=***&token[]=***&accesstoken=***"
       "&client_secret=***: "},
  };
  for (size_t i = 0; i < sizeof odd / sizeof *odd; i++) {
    f = get(h, odd[i].url);
    expect(f, odd[i].rc);
    no_secret(actio_future_errmsg(f));
    if (strstr(actio_future_errmsg(f), odd[i].shown) == NULL)
      ck_abort_msg("\"%s\" does not hold \"%s\"", actio_future_errmsg(f), odd[i].shown);
    actio_future_unref(f);
  }
  /* A redirect refused: the target it was refused for, by name. */
  f = get(h, url(fixture, "/redirect-to?url=file:///etc/passwd&token=TOPSECRET"));
  expect(f, ACTIO_ESCHEME);
  no_secret(actio_future_errmsg(f));
  ck_assert_ptr_nonnull(strstr(actio_future_errmsg(f),
                               "redirect to file:///etc/passwd refused: only http and https"));
  actio_future_unref(f);
  /* A redirect to where the transfer failed: that URL, masked too. */
  f = get(h, url(fixture, "/redirect-to?url=http://bob:PW2@127.0.0.1:1/y"));
  expect(f, -ECONNREFUSED);
  no_secret(actio_future_errmsg(f));
  ck_assert_ptr_nonnull(strstr(actio_future_errmsg(f), "(after 1 redirect, at http://bob:***@127.0.0.1:1/y)"));
  actio_future_unref(f);
  /* A cancel and a deadline of a running request name it, masked. */
  char held_url[512];
  snprintf(held_url, sizeof held_url, "http://alice:SECRETPW@%s/bytes/3000000?token=TOPSECRET",
           fixture + strlen("http://"));
  paused_at hd = {0};
  f = get_paused(h, held_url, &hd);
  ck_assert_int_eq(actio_future_cancel(f), 0);
  expect(f, ACTIO_ECANCELED);
  m = actio_future_errmsg(f);
  no_secret(m);
  ck_assert_ptr_nonnull(strstr(m, "GET http://alice:***@127.0.0.1:"));
  ck_assert_ptr_nonnull(strstr(m, "/bytes/3000000?token=***: operation canceled"));
  actio_future_unref(f);
  release(&hd);
  f = get_paused(h, held_url, &hd);
  ck_assert_int_eq(actio_future_set_deadline(rt, f, 1), 0);
  expect(f, ACTIO_ETIMEDOUT);
  no_secret(actio_future_errmsg(f));
  ck_assert_ptr_nonnull(strstr(actio_future_errmsg(f), "/bytes/3000000?token=***: deadline of 1 ms passed"));
  actio_future_unref(f);
  release(&hd);
  /* The metrics print names no URL. */
  char *text = metrics_text(rt);
  ck_assert_ptr_nonnull(strstr(text, "http"));
  no_secret(text);
  free(text);
  /* The actor stopping under a running request. */
  f = get_paused(h, held_url, &hd);
  ck_assert_int_eq(actio_actor_stop(h, ACTIO_STOP_NOW), 0);
  expect(f, ACTIO_ECANCELED);
  no_secret(actio_future_errmsg(f));
  ck_assert_ptr_nonnull(strstr(actio_future_errmsg(f), "?token=***: HTTP actor stopped"));
  actio_future_unref(f);
  release(&hd);
}
END_TEST

START_TEST(failures_say_what_happened) {
  /* A body over the limit, chunked or not: the limit, not libcurl's
   * "Failure writing output to destination". */
  const char *paths[] = {"/chunked/5000000", "/bytes/5000000"};
  for (int i = 0; i < 2; i++) {
    actio_http_request req = {.url = url(fixture, paths[i]), .max_body = 1 << 20};
    actio_future *f;
    ck_assert_int_eq(actio_http_send(http, &req, &f), 0);
    expect(f, ACTIO_ETOOBIG);
    ck_assert_ptr_nonnull(strstr(actio_future_errmsg(f),
                                 "response body larger than max_body (1048576 bytes)"));
    actio_future_unref(f);
  }
  /* A file that cannot be made: its name. */
  actio_http_request save = {.url = url(fixture, "/status/200"),
                             .save_to = "/nonexistent-dir/out"};
  actio_future *f;
  ck_assert_int_eq(actio_http_send(http, &save, &f), 0);
  expect(f, -ENOENT);
  ck_assert_ptr_nonnull(strstr(actio_future_errmsg(f), ": saving to /nonexistent-dir/out: "));
  actio_future_unref(f);
}
END_TEST

/* ---- paths the tests above leave out ---- */

START_TEST(a_supervised_http_actor) {
  /* actio_http_child starts the actor with the spec's options: here a
   * body limit. */
  actio_http_opts o = {.max_body = 4};
  actio_child_spec spec = {.name = "http", .start = actio_http_child, .arg = &o};
  actio_actor *sup;
  ck_assert_int_eq(actio_sup_spawn(rt, NULL, &spec, 1, &sup), 0);
  actio_actor *child = actio_sup_lookup(sup, "http");
  ck_assert_ptr_nonnull(child);
  actio_future *f = get(child, url(fixture, "/bytes/4"));
  ck_assert_str_eq(expect(f, 0)->body, "abcd");
  actio_future_unref(f);
  f = get(child, url(fixture, "/bytes/5"));
  expect(f, ACTIO_ETOOBIG);
  actio_future_unref(f);
}
END_TEST

START_TEST(a_folder_of_hashed_certificates) {
  /* ca_path: the throwaway CA, found by its hash in a folder. */
  char certs[300], cmd[4096];
  snprintf(certs, sizeof certs, "%s/certs", servers_dir);
  snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s' '%s/ca.pem' && openssl rehash '%s'",
           certs, ca_file, certs, certs);
  ck_assert_int_eq(system(cmd), 0);
  actio_actor *h;
  ck_assert_int_eq(actio_http_spawn(rt, &(actio_http_opts){.ca_path = certs}, &h), 0);
  actio_future *f = get(h, url(nginx_https, "/1k"));
  ck_assert_int_eq(expect(f, 0)->status, 200);
  actio_future_unref(f);
}
END_TEST

START_TEST(methods_without_a_body) {
  /* PUT and POST with no body, and an empty body that is still one. */
  struct {
    const char *method;
    const void *body;
    const char *sent;
  } cases[] = {{"PUT", NULL, "PUT /echo\n"}, {"POST", NULL, "POST /echo\n"},
               {"DELETE", "", "DELETE /echo\n"}};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    actio_http_request req = {.method = cases[i].method, .url = url(fixture, "/echo"),
                              .body = cases[i].body};
    actio_future *f;
    ck_assert_int_eq(actio_http_send(http, &req, &f), 0);
    actio_http_response *r = expect(f, 0);
    ck_assert_int_eq(strncmp(r->body, cases[i].sent, strlen(cases[i].sent)), 0);
    ck_assert_ptr_nonnull(strstr(r->body, "\n\n"));
    ck_assert_str_eq(strstr(r->body, "\n\n"), "\n\n"); /* nothing after the headers */
    actio_future_unref(f);
  }
}
END_TEST

static int ready_at_once(void *arg, const void *data, size_t len, actio_future **ready) {
  (void)data;
  *(size_t *)arg += len;
  return actio_future_resolved(ready, NULL, NULL);
}

START_TEST(a_consumer_ready_at_once) {
  size_t got = 0;
  actio_http_request req = {.url = url(fixture, "/chunked/100000"), .on_chunk = ready_at_once,
                            .chunk_arg = &got};
  actio_future *f;
  ck_assert_int_eq(actio_http_send(http, &req, &f), 0);
  ck_assert_uint_eq(expect(f, 0)->body_len, 100000);
  ck_assert_uint_eq(got, 100000);
  actio_future_unref(f);
}
END_TEST

START_TEST(transient_statuses_retried_others_not) {
  /* 429, 502, 503 and 504 are tried again; 500 is an answer. */
  long statuses[] = {429, 502, 504, 500};
  for (size_t i = 0; i < 4; i++) {
    char path[32];
    snprintf(path, sizeof path, "/status/%ld", statuses[i]);
    actio_http_request req = {.url = url(fixture, path), .retries = 1, .retry_backoff_ms = 1};
    actio_future *f;
    ck_assert_int_eq(actio_http_send(http, &req, &f), 0);
    actio_http_response *r = expect(f, 0);
    ck_assert_int_eq(r->status, statuses[i]);
    ck_assert_int_eq(r->attempts, statuses[i] == 500 ? 1 : 2);
    ck_assert_int_eq(actio_http_raise_for_status(r), ACTIO_EHTTP);
    actio_future_unref(f);
  }
  /* A body consumer is never retried: what it was given cannot be taken
   * back. */
  size_t got = 0;
  actio_http_request streamed = {.url = url(fixture, "/status/503"), .retries = 3,
                                 .retry_backoff_ms = 1, .on_chunk = ready_at_once,
                                 .chunk_arg = &got};
  actio_future *f;
  ck_assert_int_eq(actio_http_send(http, &streamed, &f), 0);
  ck_assert_int_eq(expect(f, 0)->attempts, 1);
  actio_future_unref(f);
  /* Bad arguments, and questions asked of no response. */
  actio_http_request none = {0};
  ck_assert_int_eq(actio_http_send(NULL, &none, &f), ACTIO_EINVAL);
  ck_assert_int_eq(actio_http_send(http, NULL, &f), ACTIO_EINVAL);
  ck_assert_int_eq(actio_http_send(http, &none, &f), ACTIO_EINVAL);
  ck_assert_ptr_null(actio_http_header(NULL, "x"));
  ck_assert_int_eq(actio_http_raise_for_status(NULL), 0);
  f = get(http, url(fixture, "/status/200"));
  ck_assert_ptr_null(actio_http_header(expect(f, 0), NULL));
  ck_assert_int_eq(actio_http_raise_for_status(expect(f, 0)), 0);
  actio_future_unref(f);
}
END_TEST

/* A body consumer that holds its HTTP worker at the gate: what is sent
 * meanwhile waits in the mailbox. */
static int hold_worker(void *arg, const void *data, size_t len, actio_future **ready) {
  (void)data, (void)len, (void)ready;
  gate_hold(arg);
  return 0;
}

START_TEST(a_request_cancelled_while_queued_is_never_sent) {
  actio_actor *one;
  ck_assert_int_eq(actio_http_spawn(rt, &(actio_http_opts){.workers = 1}, &one), 0);
  test_gate g = TEST_GATE_INIT;
  actio_http_request holding = {.url = url(fixture, "/bytes/10"), .on_chunk = hold_worker,
                                .chunk_arg = &g};
  actio_future *h, *queued;
  ck_assert_int_eq(actio_http_send(one, &holding, &h), 0);
  gate_wait_held(&g);
  /* A key of its own: the fixture counts the requests it got for it. */
  char path[64];
  snprintf(path, sizeof path, "/retry/never-%d/1", (int)getpid());
  queued = get(one, url(fixture, path));
  ck_assert_int_eq(actio_future_cancel(queued), 0);
  gate_open(&g);
  ck_assert_uint_eq(expect(h, 0)->body_len, 10);
  expect(queued, ACTIO_ECANCELED);
  actio_future_unref(h);
  actio_future_unref(queued);
  /* The cancelled one never reached the server: this is the key's first
   * request, refused with a 503 as the first k = 1 are. */
  actio_future *f = get(one, url(fixture, path));
  ck_assert_int_eq(expect(f, 0)->status, 503);
  actio_future_unref(f);
}
END_TEST

/* A proxy named in the environment is not used: requests go where their
 * URLs say. The "proxy" is a listener that would take the connection. Set
 * before the actor's threads exist (the environment is no thread's). */
START_TEST(proxy_variables_ignored) {
  struct sockaddr_in sa;
  char proxy[64];
  int lfd = stalled_server(8, &sa, proxy, sizeof proxy);
  const char *names[] = {"http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY",
                         "all_proxy", "ALL_PROXY"};
  for (size_t i = 0; i < sizeof names / sizeof *names; i++)
    ck_assert_int_eq(setenv(names[i], proxy, 1), 0);
  setup();
  actio_future *f = get(http, url(nginx_http, "/1k"));
  ck_assert_uint_eq(expect(f, 0)->body_len, 1024);
  actio_future_unref(f);
  teardown();
  /* Nothing came to the proxy. */
  ck_assert_int_eq(fcntl(lfd, F_SETFL, O_NONBLOCK), 0);
  ck_assert_int_eq(accept4(lfd, NULL, NULL, SOCK_CLOEXEC), -1);
  ck_assert_int_eq(errno, EAGAIN);
  close(lfd);
}
END_TEST


/* ---- headers, query parameters, forms, multipart, auth ---- */

/* Sends req, waits, and expects a response. */
static actio_http_response *send_ok(actio_http_request *req, actio_future **f) {
  ck_assert_int_eq(actio_http_send(http, req, f), 0);
  return expect(*f, 0);
}


/* A header with CR or LF in it would smuggle in a header or a request of
 * its own: refused by the call, no future, nothing queued; so are the
 * same bytes in a part's or the auth's strings. */
START_TEST(header_with_cr_or_lf_refused_at_the_call) {
  const char *const bad[][2] = {{"X-A: 1\r\nX-Injected: 1", NULL},
                                {"X-A: 1\n", NULL},
                                {"X-Ok: 1", "X-B: a\rb"}};
  actio_actor_metrics before, after;
  actio_actor_metrics_get(http, &before);
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    const char *hdrs[] = {bad[i][0], bad[i][1], NULL};
    actio_http_request req = {.url = url(fixture, "/echo"), .headers = hdrs};
    actio_future *f = NULL;
    ck_assert_int_eq(actio_http_send(http, &req, &f), ACTIO_EINVAL);
    ck_assert_ptr_null(f);
  }
  actio_http_part part = {.name = "a\r\nContent-Type: evil", .data = "x", .data_len = 1};
  actio_http_request req = {.url = url(fixture, "/echo"), .parts = &part, .nparts = 1};
  actio_future *f = NULL;
  ck_assert_int_eq(actio_http_send(http, &req, &f), ACTIO_EINVAL);
  actio_http_auth auth = {.type = ACTIO_HTTP_AUTH_BEARER, .token = "t\r\nX-Injected: 1"};
  req = (actio_http_request){.url = url(fixture, "/echo"), .auth = &auth};
  ck_assert_int_eq(actio_http_send(http, &req, &f), ACTIO_EINVAL);
  ck_assert_ptr_null(f);
  actio_actor_metrics_get(http, &after);
  ck_assert_uint_eq(after.stats.accepted, before.stats.accepted);
  /* A value with no CR or LF is sent as given. */
  const char *ok[] = {"X-Tab: a\tb", NULL};
  req = (actio_http_request){.url = url(fixture, "/echo"), .headers = ok};
  ck_assert_ptr_nonnull(strstr(send_ok(&req, &f)->body, "X-Tab: a\tb\n"));
  actio_future_unref(f);
}
END_TEST

START_TEST(query_parameters_built_and_encoded) {
  const actio_http_param ps[] = {{"q", "a b&c=d"}, {"\xc3\xbc", "#+/"}, {"empty", ""}};
  char *u = NULL;
  ck_assert_int_eq(actio_http_url_build("http://h:1/p?x=1#frag", ps, 3, &u), 0);
  ck_assert_str_eq(u, "http://h:1/p?x=1&q=a%20b%26c%3Dd&%C3%BC=%23%2B%2F&empty=#frag");
  free(u);
  ck_assert_int_eq(actio_http_url_build("https://h/", NULL, 0, &u), 0);
  ck_assert_str_eq(u, "https://h/");
  free(u);
  /* The server sees each parameter as given. */
  ck_assert_int_eq(actio_http_url_build(url(fixture, "/echo"), ps, 2, &u), 0);
  actio_future *f = get(http, u);
  free(u);
  actio_http_response *r = expect(f, 0);
  ck_assert_int_eq(strncmp(r->body, "GET /echo?q=a%20b%26c%3Dd&%C3%BC=%23%2B%2F\n", 43), 0);
  actio_future_unref(f);
  /* Bad bases and arguments. */
  u = (char *)"untouched";
  ck_assert_int_eq(actio_http_url_build("ftp://h/x", ps, 1, &u), ACTIO_ESCHEME);
  ck_assert_int_eq(actio_http_url_build("file:///etc/passwd", ps, 1, &u), ACTIO_ESCHEME);
  ck_assert_int_eq(actio_http_url_build("gopher://h/", NULL, 0, &u), ACTIO_ESCHEME);
  ck_assert_int_eq(actio_http_url_build("http://", ps, 1, &u), ACTIO_EURL);
  ck_assert_int_eq(actio_http_url_build("not a url", ps, 1, &u), ACTIO_EURL);
  ck_assert_int_eq(actio_http_url_build("http://h:99999/", ps, 1, &u), ACTIO_EURL);
  ck_assert_str_eq(u, "untouched");
  const actio_http_param nul[] = {{NULL, "v"}}, nulv[] = {{"n", NULL}};
  ck_assert_int_eq(actio_http_url_build(NULL, ps, 1, &u), ACTIO_EINVAL);
  ck_assert_int_eq(actio_http_url_build("http://h/", ps, 1, NULL), ACTIO_EINVAL);
  ck_assert_int_eq(actio_http_url_build("http://h/", NULL, 1, &u), ACTIO_EINVAL);
  ck_assert_int_eq(actio_http_url_build("http://h/", nul, 1, &u), ACTIO_EINVAL);
  ck_assert_int_eq(actio_http_url_build("http://h/", nulv, 1, &u), ACTIO_EINVAL);
}
END_TEST

START_TEST(form_bodies_urlencoded) {
  const actio_http_param form[] = {{"a", "1 2"}, {"b&", "=\xc3\xa9"}};
  actio_http_request req = {.url = url(fixture, "/echo"), .form = form, .nform = 2};
  actio_future *f;
  actio_http_response *r = send_ok(&req, &f);
  ck_assert_int_eq(strncmp(r->body, "POST /echo\n", 11), 0);
  ck_assert_ptr_nonnull(strstr(r->body, "Content-Type: application/x-www-form-urlencoded\n"));
  ck_assert_str_eq(strstr(r->body, "\n\n") + 2, "a=1%202&b%26=%3D%C3%A9");
  actio_future_unref(f);
  /* A Content-Type of the caller's is kept; PUT as asked. */
  const char *hdrs[] = {"content-type: text/x-mine", NULL};
  req.headers = hdrs;
  req.method = "PUT";
  r = send_ok(&req, &f);
  ck_assert_int_eq(strncmp(r->body, "PUT /echo\n", 10), 0);
  ck_assert_ptr_nonnull(strstr(r->body, "text/x-mine"));
  ck_assert_ptr_null(strstr(r->body, "urlencoded"));
  actio_future_unref(f);
  /* Bad forms. */
  actio_http_request both = {.url = url(fixture, "/echo"), .form = form, .nform = 2,
                             .body = "x", .body_len = 1};
  ck_assert_int_eq(actio_http_send(http, &both, &f), ACTIO_EINVAL);
  const actio_http_param nul[] = {{"a", NULL}};
  actio_http_request bad = {.url = url(fixture, "/echo"), .form = nul, .nform = 1};
  ck_assert_int_eq(actio_http_send(http, &bad, &f), ACTIO_EINVAL);
  bad.form = NULL;
  ck_assert_int_eq(actio_http_send(http, &bad, &f), ACTIO_EINVAL);
}
END_TEST

/* A file of `size` bytes (sparse: zeros) at a fresh path in path. */
static void make_file(char *path, size_t len, off_t size) {
  snprintf(path, len, "/tmp/actio-test-part-XXXXXX");
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(ftruncate(fd, size), 0);
  close(fd);
}

START_TEST(multipart_values_and_files) {
  char small[64], big[64];
  make_file(small, sizeof small, 0);
  FILE *fp = fopen(small, "w");
  ck_assert_ptr_nonnull(fp);
  fputs("file content\n", fp);
  fclose(fp);
  make_file(big, sizeof big, 3 << 20);
  actio_http_part parts[] = {
      {.name = "field", .data = "value", .data_len = 5},
      {.name = "doc", .file = small, .filename = "notes.txt", .content_type = "text/plain"},
      {.name = "raw", .file = small},
  };
  actio_http_request req = {.url = url(fixture, "/echo"), .parts = parts, .nparts = 3};
  actio_future *f;
  actio_http_response *r = send_ok(&req, &f);
  ck_assert_int_eq(strncmp(r->body, "POST /echo\n", 11), 0);
  ck_assert_ptr_nonnull(strstr(r->body, "Content-Type: multipart/form-data; boundary="));
  ck_assert_ptr_nonnull(strstr(r->body, "Content-Disposition: form-data; name=\"field\"\r\n\r\nvalue\r\n"));
  ck_assert_ptr_nonnull(strstr(r->body, "name=\"doc\"; filename=\"notes.txt\"\r\n"
                                        "Content-Type: text/plain\r\n\r\nfile content\n\r\n"));
  const char *base = strrchr(small, '/') + 1;
  char disp[128];
  snprintf(disp, sizeof disp, "name=\"raw\"; filename=\"%s\"\r\n"
           "Content-Type: application/octet-stream\r\n\r\nfile content\n", base);
  ck_assert_ptr_nonnull(strstr(r->body, disp));
  actio_future_unref(f);
  /* A big file goes whole, read as it is sent. */
  actio_http_part one = {.name = "big", .file = big};
  req = (actio_http_request){.url = url(fixture, "/sink"), .parts = &one, .nparts = 1};
  unsigned long long got = 0;
  ck_assert_int_eq(sscanf(send_ok(&req, &f)->body, "received %llu", &got), 1);
  ck_assert_uint_gt(got, 3u << 20);
  ck_assert_uint_lt(got, (3u << 20) + 1024);
  actio_future_unref(f);
  /* A file gone before its attempt starts: the error names it. */
  unlink(small);
  req = (actio_http_request){.url = url(fixture, "/echo"), .parts = parts, .nparts = 2};
  ck_assert_int_eq(actio_http_send(http, &req, &f), 0);
  expect(f, -ENOENT);
  ck_assert_ptr_nonnull(strstr(actio_future_errmsg(f), small));
  ck_assert_ptr_nonnull(strstr(actio_future_errmsg(f), "\"doc\""));
  actio_future_unref(f);
  /* A folder is no file. */
  actio_http_part dir = {.name = "d", .file = "/tmp"};
  req.parts = &dir;
  req.nparts = 1;
  ck_assert_int_eq(actio_http_send(http, &req, &f), 0);
  expect(f, ACTIO_EINVAL);
  ck_assert_ptr_nonnull(strstr(actio_future_errmsg(f), "not a regular file"));
  actio_future_unref(f);
  /* Bad parts. */
  actio_http_part bad[] = {{.data = "x", .data_len = 1},
                           {.name = "n", .data = "x", .data_len = 1, .file = big},
                           {.name = "n", .data_len = 3},
                           {.name = "n", .file = ""}};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    req.parts = &bad[i];
    ck_assert_int_eq(actio_http_send(http, &req, &f), ACTIO_EINVAL);
  }
  req = (actio_http_request){.url = url(fixture, "/echo"), .parts = parts, .nparts = 1,
                             .body = "x", .body_len = 1};
  ck_assert_int_eq(actio_http_send(http, &req, &f), ACTIO_EINVAL);
  unlink(big);
}
END_TEST

/* Sends req (its body read from the file at path) to a server in the
 * test, truncates the file once 1 MiB has arrived, reads on, and expects
 * the request to fail with -EIO, the message naming the file. */
static void upload_cut_short(actio_http_request *req, const char *path) {
  struct sockaddr_in sa;
  char base[64];
  int lfd = stalled_server(8, &sa, base, sizeof base);
  const char *hdrs[] = {"Expect:", NULL}; /* no wait for a 100 Continue */
  req->url = base;
  req->headers = hdrs;
  actio_future *f;
  ck_assert_int_eq(actio_http_send(http, req, &f), 0);
  int conn = accept_request(lfd);
  static char buf[1 << 16];
  size_t got = 0;
  while (got < (1u << 20)) { /* the upload is under way */
    ssize_t n = read(conn, buf, sizeof buf);
    ck_assert_int_gt(n, 0);
    got += (size_t)n;
  }
  ck_assert_int_eq(truncate(path, 0), 0);
  while (read(conn, buf, sizeof buf) > 0) { /* until the client gives up */
  }
  expect(f, -EIO);
  ck_assert_ptr_nonnull(strstr(actio_future_errmsg(f), path));
  ck_assert_ptr_nonnull(strstr(actio_future_errmsg(f), "shrank during the upload"));
  actio_future_unref(f);
  close(conn);
  close(lfd);
  unlink(path);
}

/* A file part cut short while it is being sent fails the request, the
 * message naming the file: the server reads part of the body, the file
 * is truncated, the server reads on. */
START_TEST(multipart_file_cut_short_mid_upload) {
  char path[64];
  make_file(path, sizeof path, (off_t)64 << 20);
  actio_http_part part = {.name = "f", .file = path};
  actio_http_request req = {.parts = &part, .nparts = 1};
  upload_cut_short(&req, path);
}
END_TEST

START_TEST(basic_bearer_and_digest_auth) {
  actio_http_auth basic = {.type = ACTIO_HTTP_AUTH_BASIC, .user = "alice", .password = "s3cret"};
  actio_http_request req = {.url = url(fixture, "/auth/basic/alice/s3cret"), .auth = &basic};
  actio_future *f;
  actio_http_response *r = send_ok(&req, &f);
  ck_assert_int_eq(r->status, 200);
  ck_assert_str_eq(r->body, "hello alice\n");
  actio_future_unref(f);
  req.url = url(fixture, "/auth/basic/alice/other");
  ck_assert_int_eq(send_ok(&req, &f)->status, 401);
  actio_future_unref(f);
  actio_http_auth bearer = {.type = ACTIO_HTTP_AUTH_BEARER, .token = "tok.123"};
  req = (actio_http_request){.url = url(fixture, "/auth/bearer/tok.123"), .auth = &bearer};
  r = send_ok(&req, &f);
  ck_assert_int_eq(r->status, 200);
  actio_future_unref(f);
  req.auth = NULL;
  ck_assert_int_eq(send_ok(&req, &f)->status, 401);
  actio_future_unref(f);
  /* Digest answers the challenge; a form body is sent again for it. */
  actio_http_auth digest = {.type = ACTIO_HTTP_AUTH_DIGEST, .user = "bob", .password = "pw"};
  const actio_http_param form[] = {{"k", "v"}};
  req = (actio_http_request){.url = url(fixture, "/auth/digest/bob/pw"), .auth = &digest};
  r = send_ok(&req, &f);
  ck_assert_int_eq(r->status, 200);
  ck_assert_str_eq(r->body, "hello bob\n");
  actio_future_unref(f);
  req.form = form;
  req.nform = 1;
  ck_assert_int_eq(send_ok(&req, &f)->status, 200);
  actio_future_unref(f);
  digest.password = "wrong";
  ck_assert_int_eq(send_ok(&req, &f)->status, 401);
  actio_future_unref(f);
  /* Bad auth. */
  actio_http_auth bad[] = {{.type = ACTIO_HTTP_AUTH_BASIC},
                           {.type = ACTIO_HTTP_AUTH_BASIC, .user = "a:b"},
                           {.type = ACTIO_HTTP_AUTH_BEARER},
                           {.type = ACTIO_HTTP_AUTH_BEARER, .token = ""},
                           {.type = (actio_http_auth_type)99, .user = "u"}};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    req = (actio_http_request){.url = url(fixture, "/echo"), .auth = &bad[i]};
    ck_assert_int_eq(actio_http_send(http, &req, &f), ACTIO_EINVAL);
  }
}
END_TEST

/* Credentials go with a redirect to the same host and port, never to
 * another one (another fixture server: another port), nor do they reach
 * an error's message. */
START_TEST(credentials_stay_with_their_host) {
  char other[128];
  pid_t pid;
  ck_assert_int_eq(fixture_spawn(FIXTURE_SERVER, &pid, other, sizeof other), 0);
  actio_http_auth basic = {.type = ACTIO_HTTP_AUTH_BASIC, .user = "alice", .password = "s3cret"};
  actio_http_auth bearer = {.type = ACTIO_HTTP_AUTH_BEARER, .token = "tok.123"};
  const actio_http_auth *auths[] = {&basic, &bearer, NULL};
  const char *own[] = {"Authorization: Basic b3duOmhlYWRlcg==", NULL};
  for (size_t i = 0; i < 3; i++) {
    for (int away = 0; away < 2; away++) {
      char *u, target[256];
      snprintf(target, sizeof target, "%s/echo", away ? other : fixture);
      const actio_http_param p[] = {{"url", target}};
      ck_assert_int_eq(actio_http_url_build(url(fixture, "/redirect-to"), p, 1, &u), 0);
      actio_http_request req = {.url = u, .auth = auths[i], .headers = auths[i] ? NULL : own};
      actio_future *f;
      actio_http_response *r = send_ok(&req, &f);
      free(u);
      ck_assert_int_eq(r->redirects, 1);
      ck_assert_int_eq(strncmp(r->body, "GET /echo\n", 10), 0);
      if (away)
        ck_assert_ptr_null(strstr(r->body, "Authorization"));
      else
        ck_assert_ptr_nonnull(strstr(r->body, "Authorization: "));
      actio_future_unref(f);
    }
  }
  kill(pid, SIGTERM);
  waitpid(pid, NULL, 0);
  /* A failure's message names the request, not its secrets. */
  for (size_t i = 0; i < 2; i++) {
    actio_http_request req = {.url = "http://127.0.0.1:1/", .auth = auths[i]};
    actio_future *f;
    ck_assert_int_eq(actio_http_send(http, &req, &f), 0);
    expect(f, -ECONNREFUSED);
    ck_assert_ptr_null(strstr(actio_future_errmsg(f), "s3cret"));
    ck_assert_ptr_null(strstr(actio_future_errmsg(f), "tok.123"));
    actio_future_unref(f);
  }
}
END_TEST


/* ---- proxies ---- */

/* Sends req through http and waits for its outcome; returns the future. */
static actio_future *send_wait(actio_actor *a, const actio_http_request *req, int status) {
  actio_future *f;
  ck_assert_int_eq(actio_http_send(a, req, &f), 0);
  expect(f, status);
  return f;
}

/* tinyproxy names itself in a Via header ("1.1 host (tinyproxy/1.11.1)"),
 * which /echo shows. */
#define VIA_PROXY "(tinyproxy/"

START_TEST(proxies_per_actor_and_per_request) {
  actio_http_proxy px = {.url = proxy_url};
  actio_actor *a;
  actio_http_opts o = {.ca_file = ca_file, .proxy = &px};
  ck_assert_int_eq(actio_http_spawn(rt, &o, &a), 0);
  actio_http_request req = {.url = url(fixture, "/echo")};
  actio_future *f = send_wait(a, &req, 0);
  ck_assert_ptr_nonnull(strstr(((actio_http_response *)actio_future_value(f))->body, VIA_PROXY));
  actio_future_unref(f);
  /* https: a CONNECT tunnel, the server's certificate still checked. */
  req.url = url(nginx_https, "/1k");
  f = send_wait(a, &req, 0);
  ck_assert_uint_eq(((actio_http_response *)actio_future_value(f))->body_len, 1024);
  actio_future_unref(f);
  /* One request goes direct ("" ), one through another proxy (SOCKS). */
  actio_http_proxy direct = {.url = ""}, socks = {.url = socks_url};
  req = (actio_http_request){.url = url(fixture, "/echo"), .proxy = &direct};
  f = send_wait(a, &req, 0);
  ck_assert_ptr_null(strstr(((actio_http_response *)actio_future_value(f))->body, VIA_PROXY));
  actio_future_unref(f);
  req.proxy = &socks;
  f = send_wait(a, &req, 0);
  ck_assert_ptr_null(strstr(((actio_http_response *)actio_future_value(f))->body, VIA_PROXY));
  actio_future_unref(f);
  /* A no_proxy list sends its hosts direct. */
  actio_http_proxy some = {.url = proxy_url, .no_proxy = "example.com,127.0.0.1"};
  req.proxy = &some;
  f = send_wait(a, &req, 0);
  ck_assert_ptr_null(strstr(((actio_http_response *)actio_future_value(f))->body, VIA_PROXY));
  actio_future_unref(f);
  /* Credentials: the proxy's, for plain http and for a tunnel; socks5
   * too. */
  actio_http_proxy authed = {.url = proxy_auth_url, .user = "actio", .password = "proxy-pw"};
  actio_http_proxy sauthed = {.url = socks_auth_url, .user = "actio", .password = "socks-pw"};
  const actio_http_proxy *good[] = {&authed, &sauthed};
  for (size_t i = 0; i < 2; i++) {
    req = (actio_http_request){.url = url(fixture, "/echo"), .proxy = good[i]};
    f = send_wait(a, &req, 0);
    ck_assert_int_eq(((actio_http_response *)actio_future_value(f))->status, 200);
    actio_future_unref(f);
    req.url = url(nginx_https, "/1k");
    f = send_wait(a, &req, 0);
    ck_assert_uint_eq(((actio_http_response *)actio_future_value(f))->body_len, 1024);
    actio_future_unref(f);
  }
}
END_TEST

/* Connections a worker opened, and attempts that opened none. */
typedef struct conn_count {
  _Atomic int opened, reused;
} conn_count;

static void count_connections(void *arg, const actio_http_trace *t) {
  conn_count *c = arg;
  /* Relaxed: read after the futures' completion, which orders them. */
  if (t->event == ACTIO_HTTP_TRACE_CONNECT)
    atomic_fetch_add_explicit(&c->opened, 1, memory_order_relaxed);
  else if (t->event == ACTIO_HTTP_TRACE_END && t->reused)
    atomic_fetch_add_explicit(&c->reused, 1, memory_order_relaxed);
}

/* An actor of one worker through px, counting its connections in count
 * (zeroed). */
static actio_actor *spawn_counting(actio_http_proxy *px, conn_count *count) {
  atomic_store_explicit(&count->opened, 0, memory_order_relaxed);
  atomic_store_explicit(&count->reused, 0, memory_order_relaxed);
  actio_actor *a;
  actio_http_opts o = {.workers = 1, .ca_file = ca_file, .proxy = px,
                       .trace = count_connections, .trace_arg = count};
  ck_assert_int_eq(actio_http_spawn(rt, &o, &a), 0);
  return a;
}

/* Through a proxy that keeps its connections alive (squid; tinyproxy closes
 * each after its response), a worker's GETs share one connection to it,
 * whatever their host, and a CONNECT tunnel is kept for the next request
 * to its host. */
START_TEST(a_keep_alive_proxy_connection_reused) {
  static conn_count count;
  actio_http_proxy px = {.url = squid_url};
  actio_actor *a = spawn_counting(&px, &count);
  actio_http_request req = {.url = url(fixture, "/echo")};
  actio_future *f = send_wait(a, &req, 0);
  ck_assert_ptr_nonnull(strstr(((actio_http_response *)actio_future_value(f))->body, "(squid/"));
  actio_future_unref(f);
  enum { N = 20 };
  for (int i = 0; i < N; i++) {
    req.url = url(nginx_http, "/1k");
    f = send_wait(a, &req, 0);
    ck_assert_uint_eq(((actio_http_response *)actio_future_value(f))->body_len, 1024);
    actio_future_unref(f);
  }
  ck_assert_int_eq(atomic_load_explicit(&count.opened, memory_order_relaxed), 1);
  ck_assert_int_eq(atomic_load_explicit(&count.reused, memory_order_relaxed), N);
  for (int i = 0; i < 2; i++) {
    req.url = url(nginx_https, "/1k");
    f = send_wait(a, &req, 0);
    ck_assert_uint_eq(((actio_http_response *)actio_future_value(f))->body_len, 1024);
    actio_future_unref(f);
  }
  ck_assert_int_eq(atomic_load_explicit(&count.opened, memory_order_relaxed), 2);
  ck_assert_int_eq(atomic_load_explicit(&count.reused, memory_order_relaxed), N + 1);
}
END_TEST

/* The benchmarks' forward proxy (nginx, tests/http_servers.sh) keeps a
 * client's connection as squid does, which its benchmark rows assume: a
 * worker's GETs through it share one connection. It forwards to nginx
 * only: another host gets its 403, not a resolver's guess. */
START_TEST(the_forward_proxy_keeps_its_connection) {
  static conn_count count;
  actio_http_proxy px = {.url = fwd_proxy_url};
  actio_actor *a = spawn_counting(&px, &count);
  enum { N = 20 };
  actio_http_request req = {.url = url(nginx_http, "/1k")};
  for (int i = 0; i < N; i++) {
    actio_future *f = send_wait(a, &req, 0);
    const actio_http_response *r = actio_future_value(f);
    ck_assert_int_eq(r->status, 200);
    ck_assert_uint_eq(r->body_len, 1024);
    actio_future_unref(f);
  }
  ck_assert_int_eq(atomic_load_explicit(&count.opened, memory_order_relaxed), 1);
  ck_assert_int_eq(atomic_load_explicit(&count.reused, memory_order_relaxed), N - 1);
  req.url = url(fixture, "/echo");
  actio_future *f = send_wait(a, &req, 0);
  ck_assert_int_eq(((actio_http_response *)actio_future_value(f))->status, 403);
  actio_future_unref(f);
}
END_TEST

/* Each proxy failure is its own error, naming the proxy and never its
 * password. */
START_TEST(proxy_failures_say_so) {
  char msg[1024];
  /* Down: nothing listens on port 1. */
  actio_http_proxy down = {.url = "http://127.0.0.1:1"}, sdown = {.url = "socks5h://127.0.0.1:1"};
  /* Refuses: tinyproxy and squid tunnel to nginx's TLS port only, not
   * mTLS's. */
  actio_http_proxy open = {.url = proxy_url}, squid = {.url = squid_url};
  /* Credentials: none, or wrong (tinyproxy answers a wrong password with
   * 401, which only a tunnel's answer tells from the server's). */
  actio_http_proxy none = {.url = proxy_auth_url};
  actio_http_proxy wrong = {.url = proxy_auth_url, .user = "actio", .password = "wrong-pw"};
  actio_http_proxy swrong = {.url = socks_auth_url, .user = "actio", .password = "wrong-pw"};
  actio_http_proxy snone = {.url = socks_auth_url};
  struct {
    const actio_http_proxy *p;
    const char *target;
    int rc;
    const char *says;
  } cases[] = {
      {&down, nginx_http, ACTIO_EPROXY, "proxy http://127.0.0.1:1: "},
      {&sdown, nginx_http, ACTIO_EPROXY, "proxy socks5h://127.0.0.1:1: "},
      {&open, nginx_mtls, ACTIO_EPROXY, "403"},
      {&squid, nginx_mtls, ACTIO_EPROXY, "403"},
      {&none, nginx_http, ACTIO_EPROXYAUTH, "authentication failed: status 407"},
      {&none, nginx_https, ACTIO_EPROXYAUTH, "authentication failed"},
      {&wrong, nginx_https, ACTIO_EPROXYAUTH, "authentication failed"},
      {&swrong, nginx_http, ACTIO_EPROXYAUTH, "authentication failed"},
      {&snone, nginx_http, ACTIO_EPROXYAUTH, "authentication failed"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    actio_http_request req = {.url = url(cases[i].target, "/1k"), .proxy = cases[i].p};
    actio_future *f = send_wait(http, &req, cases[i].rc);
    snprintf(msg, sizeof msg, "%s", actio_future_errmsg(f));
    ck_assert_msg(strstr(msg, cases[i].says) != NULL, "case %zu: %s", i, msg);
    ck_assert_msg(strstr(msg, cases[i].p->url) != NULL, "case %zu: %s", i, msg);
    ck_assert_ptr_null(strstr(msg, "wrong-pw"));
    actio_future_unref(f);
  }
  /* Bad proxies, refused at the call and at spawn. */
  actio_http_proxy bad[] = {{.url = "ftp://127.0.0.1:21"}, {.url = "127.0.0.1:8080"},
                            {.url = NULL}, {.url = proxy_url, .password = "a\r\nb"}};
  actio_actor *a = NULL;
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    actio_http_request req = {.url = url(fixture, "/echo"), .proxy = &bad[i]};
    actio_future *f = NULL;
    ck_assert_int_eq(actio_http_send(http, &req, &f), ACTIO_EINVAL);
    actio_http_opts o = {.proxy = &bad[i]};
    ck_assert_int_eq(actio_http_spawn(rt, &o, &a), ACTIO_EINVAL);
    ck_assert_ptr_null(a);
  }
}
END_TEST

/* With proxy_from_env the environment's proxy is used (set before the
 * actor's threads exist). */
START_TEST(proxy_variables_on_request) {
  ck_assert_int_eq(setenv("http_proxy", proxy_url, 1), 0);
  ck_assert_int_eq(actio_runtime_create(&rt, NULL), 0);
  actio_http_opts o = {.proxy_from_env = 1};
  ck_assert_int_eq(actio_http_spawn(rt, &o, &http), 0);
  actio_future *f = get(http, url(fixture, "/echo"));
  ck_assert_ptr_nonnull(strstr(expect(f, 0)->body, VIA_PROXY));
  actio_future_unref(f);
  teardown();
  unsetenv("http_proxy");
}
END_TEST


/* ---- cookies ---- */

/* The Cookie header /echo saw, or "" (in buf). */
static const char *cookie_sent(actio_actor *a, char *buf, size_t len) {
  actio_future *f = get(a, url(fixture, "/echo"));
  const char *c = strstr(expect(f, 0)->body, "\nCookie: ");
  snprintf(buf, len, "%.*s", c ? (int)strcspn(c + 9, "\n") : 0, c ? c + 9 : "");
  actio_future_unref(f);
  return buf;
}

/* An HTTP actor of rt's with a cookie jar. */
static actio_actor *spawn_with_jar(void) {
  actio_actor *a;
  actio_http_opts o = {.cookies = 1};
  ck_assert_int_eq(actio_http_spawn(rt, &o, &a), 0);
  return a;
}

START_TEST(cookies_kept_read_set_saved_and_loaded) {
  actio_actor *a = spawn_with_jar();
  char sent[256];
  ck_assert_str_eq(cookie_sent(a, sent, sizeof sent), "");
  actio_future *f = get(a, url(fixture, "/headers")); /* Set-Cookie a=1, b=2 */
  expect(f, 0);
  actio_future_unref(f);
  cookie_sent(a, sent, sizeof sent);
  ck_assert_msg(strstr(sent, "a=1") && strstr(sent, "b=2"), "sent: %s", sent);
  actio_http_cookie *c;
  size_t n;
  ck_assert_int_eq(actio_http_cookies_get(a, &c, &n), 0);
  ck_assert_uint_eq(n, 2);
  for (size_t i = 0; i < n; i++) {
    ck_assert_str_eq(c[i].domain, "127.0.0.1");
    ck_assert_str_eq(c[i].path, "/");
    ck_assert_str_eq(c[i].value, strcmp(c[i].name, "a") == 0 ? "1" : "2");
    ck_assert_int_eq(c[i].expires, 0);
  }
  actio_http_cookies_free(c, n);
  /* Set: sent where it belongs only. */
  actio_http_cookie mine = {.domain = "127.0.0.1", .name = "c", .value = "3 4", .http_only = 1};
  actio_http_cookie other = {.domain = "example.com", .name = "d", .value = "5", .subdomains = 1,
                             .secure = 1, .expires = 4102444800};
  ck_assert_int_eq(actio_http_cookie_set(a, &mine), 0);
  ck_assert_int_eq(actio_http_cookie_set(a, &other), 0);
  cookie_sent(a, sent, sizeof sent);
  ck_assert_msg(strstr(sent, "c=3 4") && !strstr(sent, "d=5"), "sent: %s", sent);
  /* Saved, cleared, loaded back. */
  char path[64];
  make_file(path, sizeof path, 0);
  ck_assert_int_eq(actio_http_cookies_save(a, path), 0);
  struct stat st;
  ck_assert_int_eq(stat(path, &st), 0);
  ck_assert_int_eq(st.st_mode & 0777, 0600);
  ck_assert_int_eq(actio_http_cookies_clear(a), 0);
  ck_assert_int_eq(actio_http_cookies_get(a, &c, &n), 0);
  ck_assert_uint_eq(n, 0);
  actio_http_cookies_free(c, n);
  ck_assert_str_eq(cookie_sent(a, sent, sizeof sent), "");
  ck_assert_int_eq(actio_http_cookies_load(a, path), 0);
  ck_assert_int_eq(actio_http_cookies_get(a, &c, &n), 0);
  ck_assert_uint_eq(n, 4);
  int seen = 0;
  for (size_t i = 0; i < n; i++) {
    if (strcmp(c[i].name, "c") == 0) {
      ck_assert(c[i].http_only && !c[i].subdomains && !c[i].secure);
      ck_assert_str_eq(c[i].value, "3 4");
      seen++;
    } else if (strcmp(c[i].name, "d") == 0) {
      ck_assert(!c[i].http_only && c[i].subdomains && c[i].secure);
      ck_assert_str_eq(c[i].domain, "example.com");
      ck_assert_int_eq(c[i].expires, 4102444800);
      seen++;
    }
  }
  ck_assert_int_eq(seen, 2);
  actio_http_cookies_free(c, n);
  cookie_sent(a, sent, sizeof sent);
  ck_assert_msg(strstr(sent, "a=1") && strstr(sent, "c=3 4"), "sent: %s", sent);
  unlink(path);
}
END_TEST

START_TEST(cookie_files_and_bad_cookies_refused) {
  actio_actor *a = spawn_with_jar();
  /* Files that cannot be read or written. */
  ck_assert_int_eq(actio_http_cookies_load(a, "/nonexistent/cookies.txt"), -ENOENT);
  ck_assert_int_eq(actio_http_cookies_load(a, "/tmp"), -EISDIR);
  ck_assert_int_eq(actio_http_cookies_save(a, "/nonexistent/cookies.txt"), -ENOENT);
  ck_assert_int_eq(actio_http_cookies_save(a, "/tmp"), -EISDIR);
  ck_assert_int_eq(actio_http_cookies_load(a, NULL), ACTIO_EINVAL);
  /* A file with other lines: the cookies in it are taken. */
  char path[64];
  make_file(path, sizeof path, 0);
  FILE *fp = fopen(path, "w");
  ck_assert_ptr_nonnull(fp);
  fputs("# a comment\n\nnot a cookie\n127.0.0.1\tFALSE\t/\tFALSE\t0\tk\tv\n", fp);
  fclose(fp);
  ck_assert_int_eq(actio_http_cookies_load(a, path), 0);
  unlink(path);
  actio_http_cookie *c;
  size_t n;
  ck_assert_int_eq(actio_http_cookies_get(a, &c, &n), 0);
  ck_assert_uint_eq(n, 1);
  ck_assert_str_eq(c[0].name, "k");
  actio_http_cookies_free(c, n);
  /* Bad cookies. */
  actio_http_cookie bad[] = {{.name = "n"},
                             {.domain = "h"},
                             {.domain = "h", .name = "a;b"},
                             {.domain = "h", .name = "a=b"},
                             {.domain = "h", .name = "n", .value = "a\tb"},
                             {.domain = "h", .name = "n", .value = "a\r\nb"},
                             {.domain = ".h", .name = "n"}};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    ck_assert_int_eq(actio_http_cookie_set(a, &bad[i]), ACTIO_EINVAL);
  /* An actor without a jar keeps nothing and refuses the calls. */
  actio_future *f = get(http, url(fixture, "/headers"));
  expect(f, 0);
  actio_future_unref(f);
  char sent[256];
  ck_assert_str_eq(cookie_sent(http, sent, sizeof sent), "");
  ck_assert_int_eq(actio_http_cookies_get(http, &c, &n), ACTIO_EINVAL);
  ck_assert_int_eq(actio_http_cookie_set(http, &(actio_http_cookie){.domain = "h", .name = "n"}),
                   ACTIO_EINVAL);
  ck_assert_int_eq(actio_http_cookies_clear(http), ACTIO_EINVAL);
  ck_assert_int_eq(actio_http_cookies_save(http, "/tmp/x"), ACTIO_EINVAL);
}
END_TEST

/* ---- compression ---- */

/* Bodies come decoded, whatever the server's Content-Encoding; max_body
 * counts the decoded bytes, so a bomb (10 GiB of zeros in about 10 MB of
 * gzip, deflated as it is sent) stops at the limit; a corrupt gzip body
 * fails with ACTIO_EDECODE. */
START_TEST(compressed_bodies_decoded_and_limited) {
  actio_future *f;
  actio_http_request req = {.url = url(fixture, "/echo")};
  actio_http_response *r = send_ok(&req, &f);
  const char *ae = strstr(r->body, "Accept-Encoding: ");
  ck_assert_ptr_nonnull(ae);
  ae += 17;
  ck_assert_ptr_nonnull(strstr(ae, "gzip"));
  ck_assert_ptr_nonnull(strstr(ae, "deflate"));
  ck_assert_ptr_nonnull(strstr(ae, "br"));
  actio_future_unref(f);
  /* The fixture's gzip, made as it goes. */
  req.url = url(fixture, "/gzip/3000000");
  r = send_ok(&req, &f);
  ck_assert_str_eq(actio_http_header(r, "Content-Encoding"), "gzip");
  ck_assert_uint_eq(r->body_len, 3000000);
  for (size_t i = 0; i < r->body_len; i += 4093)
    ck_assert_int_eq(r->body[i], 'a' + (int)(i % 26));
  actio_future_unref(f);
  /* nginx's, over HTTP/1.1 and HTTP/2. */
  const char *bases[] = {nginx_http, nginx_https};
  for (size_t i = 0; i < 2; i++) {
    req.url = url(bases[i], "/gz/1m.json");
    r = send_ok(&req, &f);
    ck_assert_str_eq(actio_http_header(r, "Content-Encoding"), "gzip");
    ck_assert_uint_eq(r->body_len, 1u << 20);
    ck_assert_int_eq(strncmp(r->body, "{\"id\": 0, ", 10), 0);
    actio_future_unref(f);
  }
  /* A bomb, in memory and decoded. */
  req = (actio_http_request){.url = url(fixture, "/gzip-zeros/10737418240"), .max_body = 4 << 20};
  ck_assert_int_eq(actio_http_send(http, &req, &f), 0);
  expect(f, ACTIO_ETOOBIG);
  ck_assert_ptr_nonnull(strstr(actio_future_errmsg(f),
                               "decoded response body larger than max_body (4194304 bytes)"));
  actio_future_unref(f);
  /* Under the limit, the same stream decodes whole. */
  req.url = url(fixture, "/gzip-zeros/4194304");
  r = send_ok(&req, &f);
  ck_assert_uint_eq(r->body_len, 4u << 20);
  ck_assert_int_eq(r->body[(4u << 20) - 1], 0);
  actio_future_unref(f);
  /* Corrupt. */
  req = (actio_http_request){.url = url(fixture, "/gzip-corrupt")};
  ck_assert_int_eq(actio_http_send(http, &req, &f), 0);
  expect(f, ACTIO_EDECODE);
  ck_assert_ptr_nonnull(strstr(actio_future_errmsg(f), "not decoded (Content-Encoding)"));
  ck_assert_ptr_nonnull(strstr(actio_future_errmsg(f), "/gzip-corrupt"));
  actio_future_unref(f);
  /* The connection it broke is not reused in a bad state. */
  req.url = url(fixture, "/gzip/100");
  ck_assert_uint_eq(send_ok(&req, &f)->body_len, 100);
  actio_future_unref(f);
}
END_TEST

/* ---- bodies made or read as they are sent ---- */

/* An upload callback: `total` bytes of a..z, a pause (a future the test
 * completes) every 4th call up to 20, or a failure at fail_after bytes
 * (fail_with), or the end at `total` whatever upload_len says. */
typedef struct upload_src {
  uint64_t total, sent, fail_after;
  int fail_with;
  unsigned calls;
  _Atomic int npending;
  actio_future *pending[20]; /* the test's references */
  _Atomic int released;      /* of them, completed (counted first) */
  _Atomic int asked_while_paused;
} upload_src;

static int produce(void *arg, void *buf, size_t cap, size_t *len, actio_future **ready) {
  upload_src *u = arg;
  int np = atomic_load_explicit(&u->npending, memory_order_relaxed);
  /* Acquire: pairs with the test's release before it completes a pause. */
  if (atomic_load_explicit(&u->released, memory_order_acquire) < np)
    atomic_fetch_add_explicit(&u->asked_while_paused, 1, memory_order_relaxed);
  if (u->fail_with != 0 && u->sent >= u->fail_after)
    return u->fail_with;
  if (++u->calls % 4 == 0 && np < 20) {
    actio_future *f;
    if (actio_future_create(&f) != 0)
      return ACTIO_ENOMEM;
    actio_future_ref(f); /* one for the transfer, one for the test */
    u->pending[np] = f;
    /* Release: the test reads pending[np] after it sees the count. */
    atomic_store_explicit(&u->npending, np + 1, memory_order_release);
    *ready = f;
    return 0;
  }
  size_t n = u->total - u->sent < cap ? (size_t)(u->total - u->sent) : cap;
  char *b = buf;
  for (size_t i = 0; i < n; i++)
    b[i] = (char)('a' + (u->sent + i) % 26);
  u->sent += n;
  *len = n;
  return 0;
}

/* Waits for f, completing each pause of u as it comes (fail_code: the
 * last one fails with it instead). Returns f's status. */
static int run_upload(actio_future *f, upload_src *u, int fail_code) {
  int released = 0;
  for (;;) {
    int st = actio_future_wait(f, 1);
    int np = atomic_load_explicit(&u->npending, memory_order_acquire);
    for (; released < np; released++) {
      /* Release: the producer sees the count before the pause ends. */
      atomic_store_explicit(&u->released, released + 1, memory_order_release);
      if (fail_code != 0 && released == 19)
        actio_future_fail(u->pending[released], fail_code, "producer gave up");
      else
        actio_future_resolve(u->pending[released], NULL, NULL);
      actio_future_unref(u->pending[released]);
    }
    if (st != ACTIO_EPENDING)
      return st;
  }
}

START_TEST(uploads_from_a_callback_with_backpressure) {
  upload_src *u = calloc(1, sizeof *u);
  /* Chunked, to /echo: the body arrives as made. */
  u->total = 8 << 20;
  actio_http_request req = {.url = url(fixture, "/echo"), .upload = produce, .upload_arg = u};
  actio_future *f;
  ck_assert_int_eq(actio_http_send(http, &req, &f), 0);
  ck_assert_int_eq(run_upload(f, u, 0), 0);
  actio_http_response *r = actio_future_value(f);
  ck_assert_int_eq(strncmp(r->body, "POST /echo\n", 11), 0);
  ck_assert_ptr_nonnull(strstr(r->body, "Transfer-Encoding: chunked\n"));
  const char *body = strstr(r->body, "\n\n") + 2;
  ck_assert_uint_eq(r->body_len - (size_t)(body - r->body), 8u << 20);
  for (size_t i = 0; i < (8u << 20); i += 997)
    ck_assert_int_eq(body[i], 'a' + (int)(i % 26));
  ck_assert_int_eq(atomic_load(&u->npending), 20);
  ck_assert_int_eq(atomic_load(&u->asked_while_paused), 0);
  actio_future_unref(f);
  /* 128 MiB with a Content-Length, never held: /sink counts it. */
  memset(u, 0, sizeof *u);
  u->total = (uint64_t)128 << 20;
  req = (actio_http_request){.url = url(fixture, "/sink"), .method = "PUT", .upload = produce,
                             .upload_arg = u, .upload_len = (int64_t)128 << 20};
  ck_assert_int_eq(actio_http_send(http, &req, &f), 0);
  ck_assert_int_eq(run_upload(f, u, 0), 0);
  ck_assert_str_eq(((actio_http_response *)actio_future_value(f))->body, "received 134217728\n");
  ck_assert_int_eq(atomic_load(&u->asked_while_paused), 0);
  actio_future_unref(f);
  /* A callback that fails ends the request once, with its code. */
  memset(u, 0, sizeof *u);
  u->total = 64 << 20;
  u->fail_after = 1 << 20;
  u->fail_with = -EPIPE;
  req = (actio_http_request){.url = url(fixture, "/sink"), .upload = produce, .upload_arg = u};
  ck_assert_int_eq(actio_http_send(http, &req, &f), 0);
  ck_assert_int_eq(run_upload(f, u, 0), -EPIPE);
  ck_assert_ptr_nonnull(strstr(actio_future_errmsg(f), "upload callback failed: "));
  ck_assert_ptr_nonnull(strstr(actio_future_errmsg(f), "/sink"));
  actio_future_unref(f);
  /* So does a future it asked to wait for that fails. */
  memset(u, 0, sizeof *u);
  u->total = 64 << 20;
  ck_assert_int_eq(actio_http_send(http, &req, &f), 0);
  ck_assert_int_eq(run_upload(f, u, -ECONNABORTED), -ECONNABORTED);
  ck_assert_ptr_nonnull(strstr(actio_future_errmsg(f), "upload callback's future failed"));
  actio_future_unref(f);
  /* Ending short of upload_len. */
  memset(u, 0, sizeof *u);
  u->total = 1000;
  req.upload_len = 2000;
  ck_assert_int_eq(actio_http_send(http, &req, &f), 0);
  ck_assert_int_eq(run_upload(f, u, 0), -EIO);
  ck_assert_ptr_nonnull(strstr(actio_future_errmsg(f), "ended after 1000 of the 2000 bytes"));
  actio_future_unref(f);
  /* A 307 would send the body again, which a callback's cannot be. */
  memset(u, 0, sizeof *u);
  u->total = 1000;
  char *ru;
  const actio_http_param rp[] = {{"url", "/echo"}, {"code", "307"}};
  ck_assert_int_eq(actio_http_url_build(url(fixture, "/redirect-to"), rp, 2, &ru), 0);
  req = (actio_http_request){.url = ru, .upload = produce, .upload_arg = u, .upload_len = 1000};
  ck_assert_int_eq(actio_http_send(http, &req, &f), 0);
  ck_assert_int_eq(run_upload(f, u, 0), ACTIO_ETRANSFER);
  ck_assert_ptr_nonnull(strstr(actio_future_errmsg(f), "cannot be sent again"));
  actio_future_unref(f);
  free(ru);
  /* Digest: libcurl sends no body until the challenge is answered. */
  memset(u, 0, sizeof *u);
  u->total = 1000;
  actio_http_auth digest = {.type = ACTIO_HTTP_AUTH_DIGEST, .user = "bob", .password = "pw"};
  req = (actio_http_request){.url = url(fixture, "/auth/digest/bob/pw"), .upload = produce,
                             .upload_arg = u, .auth = &digest};
  ck_assert_int_eq(actio_http_send(http, &req, &f), 0);
  ck_assert_int_eq(run_upload(f, u, 0), 0);
  ck_assert_str_eq(((actio_http_response *)actio_future_value(f))->body, "hello bob\n");
  ck_assert_uint_eq(u->sent, 1000);
  actio_future_unref(f);
  /* Refused at the call. */
  actio_http_request bad[] = {
      {.url = fixture, .upload = produce, .body = "x", .body_len = 1},
      {.url = fixture, .upload = produce, .body_file = "/etc/hostname"},
      {.url = fixture, .upload = produce, .upload_len = -1},
      {.url = fixture, .upload_len = 10},
      {.url = fixture, .body_file = ""},
      {.url = fixture, .body_file = "/etc/hostname", .nform = 1,
       .form = (const actio_http_param[]){{"a", "b"}}},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    ck_assert_int_eq(actio_http_send(http, &bad[i], &f), ACTIO_EINVAL);
  free(u);
}
END_TEST

START_TEST(bodies_read_from_files) {
  char path[64];
  make_file(path, sizeof path, 0);
  FILE *fp = fopen(path, "w");
  for (size_t i = 0; i < (3u << 20); i++)
    fputc('a' + (int)(i % 26), fp);
  fclose(fp);
  actio_http_request req = {.url = url(fixture, "/echo"), .body_file = path, .method = "PUT"};
  actio_future *f;
  actio_http_response *r = send_ok(&req, &f);
  ck_assert_int_eq(strncmp(r->body, "PUT /echo\n", 10), 0);
  ck_assert_ptr_nonnull(strstr(r->body, "Content-Length: 3145728\n"));
  const char *body = strstr(r->body, "\n\n") + 2;
  ck_assert_uint_eq(r->body_len - (size_t)(body - r->body), 3u << 20);
  for (size_t i = 0; i < (3u << 20); i += 991)
    ck_assert_int_eq(body[i], 'a' + (int)(i % 26));
  actio_future_unref(f);
  /* Sent again from the start after a 307, after a 503 (a retry) and for
   * a digest challenge. */
  char *ru;
  const actio_http_param rp[] = {{"url", "/echo"}, {"code", "307"}};
  ck_assert_int_eq(actio_http_url_build(url(fixture, "/redirect-to"), rp, 2, &ru), 0);
  req = (actio_http_request){.url = ru, .body_file = path};
  r = send_ok(&req, &f);
  free(ru);
  ck_assert_int_eq(r->redirects, 1);
  ck_assert_int_eq(strncmp(r->body, "POST /echo\n", 11), 0);
  ck_assert_uint_eq(r->body_len - (size_t)(strstr(r->body, "\n\n") + 2 - r->body), 3u << 20);
  actio_future_unref(f);
  actio_http_auth digest = {.type = ACTIO_HTTP_AUTH_DIGEST, .user = "bob", .password = "pw"};
  req = (actio_http_request){.url = url(fixture, "/auth/digest/bob/pw"), .body_file = path,
                             .auth = &digest};
  ck_assert_str_eq(send_ok(&req, &f)->body, "hello bob\n");
  actio_future_unref(f);
  req = (actio_http_request){.url = url(fixture, "/retry/bodyfile/1"), .body_file = path,
                             .retries = 1, .retry_any_method = 1, .retry_backoff_ms = 1};
  r = send_ok(&req, &f);
  ck_assert_int_eq(r->attempts, 2);
  ck_assert_str_eq(r->body, "ok after 1\n");
  actio_future_unref(f);
  /* Missing: the errno, the message naming it. */
  unlink(path);
  req = (actio_http_request){.url = url(fixture, "/echo"), .body_file = path};
  ck_assert_int_eq(actio_http_send(http, &req, &f), 0);
  expect(f, -ENOENT);
  ck_assert_ptr_nonnull(strstr(actio_future_errmsg(f), "body file "));
  ck_assert_ptr_nonnull(strstr(actio_future_errmsg(f), path));
  actio_future_unref(f);
}
END_TEST

/* A body file cut short while it is sent fails the request with -EIO. */
/* A consumer's future that pauses a transfer and is then dropped, never
 * completed, by a consumer whose request was cancelled: the worker's ring
 * on it goes when the transfer ends (it kept the worker's bell, and the
 * future itself, alive for ever: past the actor's end). */
START_TEST(abandoned_pause_futures_keep_no_ring) {
  actio_http_opts o = {.ca_file = ca_file};
  actio_actor *h;
  ck_assert_int_eq(actio_http_spawn(rt, &o, &h), 0);
  long base = actio__bell_rings_pending();
  for (int i = 0; i < 8; i++) {
    paused_at hd = {0};
    actio_future *f = get_paused(h, url(fixture, "/bytes/200000"), &hd);
    ck_assert_int_eq(actio_future_cancel(f), 0);
    expect(f, ACTIO_ECANCELED);
    actio_future_unref(f);
    actio_future_unref(hd.ready); /* dropped, pending */

    upload_src *u = calloc(1, sizeof *u);
    u->total = 1 << 20;
    actio_http_request req = {.url = url(fixture, "/sink"), .upload = produce, .upload_arg = u};
    ck_assert_int_eq(actio_http_send(h, &req, &f), 0);
    while (atomic_load_explicit(&u->npending, memory_order_acquire) == 0)
      ck_assert_int_eq(actio_future_wait(f, 1), ACTIO_EPENDING);
    ck_assert_int_eq(actio_future_cancel(f), 0);
    expect(f, ACTIO_ECANCELED);
    actio_future_unref(f);
    actio_future_unref(u->pending[0]); /* dropped, pending */
    free(u);
  }
  /* Joined: every call the workers had is freed. */
  ck_assert_int_eq(actio_actor_stop(h, ACTIO_STOP_NOW), 0);
  ck_assert_int_eq(actio__bell_rings_pending(), base);
}
END_TEST

START_TEST(body_file_cut_short_mid_upload) {
  char path[64];
  make_file(path, sizeof path, (off_t)64 << 20);
  actio_http_request req = {.body_file = path};
  upload_cut_short(&req, path);
}
END_TEST

/* ---- headers first ---- */

START_TEST(headers_first_then_the_body_or_not) {
  actio_future *head, *f;
  /* Memory body: the head has the headers, no body. */
  actio_http_request req = {.url = url(fixture, "/headers")};
  ck_assert_int_eq(actio_http_send_head(http, &req, &head, &f), 0);
  actio_http_response *h = expect(head, 0);
  ck_assert_int_eq(h->status, 200);
  ck_assert_uint_eq(h->body_len, 0);
  ck_assert_str_eq(h->body, "");
  ck_assert_uint_eq(actio_http_header_count(h, "X-Multi"), 2);
  ck_assert_str_eq(actio_http_header_nth(h, "X-Multi", 1), "two");
  ck_assert_str_eq(expect(f, 0)->body, "headers\n");
  actio_future_unref(head);
  actio_future_unref(f);
  /* After redirects and a retried 503: the final response's. */
  req.url = url(fixture, "/redirect/2");
  ck_assert_int_eq(actio_http_send_head(http, &req, &head, &f), 0);
  h = expect(head, 0);
  ck_assert_int_eq(h->status, 200);
  ck_assert_int_eq(h->redirects, 2);
  expect(f, 0);
  actio_future_unref(head);
  actio_future_unref(f);
  req = (actio_http_request){.url = url(fixture, "/retry/head/1"), .retries = 1,
                             .retry_backoff_ms = 1};
  ck_assert_int_eq(actio_http_send_head(http, &req, &head, &f), 0);
  h = expect(head, 0);
  ck_assert_int_eq(h->status, 200);
  ck_assert_int_eq(h->attempts, 2);
  actio_future_unref(head);
  actio_future_unref(f);
  /* No body at all (HEAD, 204): the head comes at the end. */
  req = (actio_http_request){.url = url(fixture, "/status/204")};
  ck_assert_int_eq(actio_http_send_head(http, &req, &head, &f), 0);
  ck_assert_int_eq(expect(head, 0)->status, 204);
  expect(f, 0);
  actio_future_unref(head);
  actio_future_unref(f);
  /* A request failing before its headers fails both. */
  req = (actio_http_request){.url = "http://127.0.0.1:1/"};
  ck_assert_int_eq(actio_http_send_head(http, &req, &head, &f), 0);
  expect(f, -ECONNREFUSED);
  expect(head, -ECONNREFUSED);
  ck_assert_str_eq(actio_future_errmsg(head), actio_future_errmsg(f));
  actio_future_unref(head);
  actio_future_unref(f);
  ck_assert_int_eq(actio_http_send_head(http, &req, NULL, &f), ACTIO_EINVAL);
}
END_TEST

/* A body streamed after its head, stopped halfway by a cancel: the
 * request completes once, cancelled, and its connection is not reused. */
START_TEST(body_stopped_after_its_head) {
  actio_actor *one; /* one worker: one connection cache to look at */
  actio_http_opts o = {.workers = 1};
  ck_assert_int_eq(actio_http_spawn(rt, &o, &one), 0);
  body_sink *s = calloc(1, sizeof *s);
  actio_http_request req = {.url = url(fixture, "/bytes/50000000"), .on_chunk = take_chunk,
                            .chunk_arg = s};
  actio_future *head, *f;
  ck_assert_int_eq(actio_http_send_head(one, &req, &head, &f), 0);
  actio_http_response *h = expect(head, 0);
  ck_assert_int_eq(h->status, 200);
  ck_assert_str_eq(actio_http_header(h, "Content-Length"), "50000000");
  /* The consumer holds the body at its first chunk. */
  while (atomic_load_explicit(&s->npending, memory_order_acquire) == 0)
    ck_assert_int_eq(actio_future_wait(f, 1), ACTIO_EPENDING);
  ck_assert_int_eq(actio_future_cancel(f), 0);
  expect(f, ACTIO_ECANCELED);
  for (int i = 0; i < atomic_load_explicit(&s->npending, memory_order_acquire); i++) {
    actio_future_resolve(s->pending[i], NULL, NULL);
    actio_future_unref(s->pending[i]);
  }
  ck_assert_uint_lt(s->bytes, 50000000);
  ck_assert_uint_eq(s->bad, 0);
  actio_future_unref(head);
  actio_future_unref(f);
  /* The next request to the host gets a new connection: the cut one was
   * closed; the one after reuses that. */
  f = get(one, url(fixture, "/bytes/10"));
  ck_assert_int_eq(expect(f, 0)->new_connections, 1);
  actio_future_unref(f);
  f = get(one, url(fixture, "/bytes/10"));
  ck_assert_int_eq(expect(f, 0)->new_connections, 0);
  actio_future_unref(f);
  free(s);
}
END_TEST

/* ---- tracing and the request log ---- */

typedef struct trace_rec {
  pthread_mutex_t mu;
  int n;
  actio_http_trace ev[64];
} trace_rec;

static void record_trace(void *arg, const actio_http_trace *t) {
  trace_rec *r = arg;
  pthread_mutex_lock(&r->mu);
  if (r->n < 64) {
    r->ev[r->n] = *t;
    r->ev[r->n].method = r->ev[r->n].url = NULL; /* lent: not kept */
    r->n++;
  }
  pthread_mutex_unlock(&r->mu);
}

/* The events recorded for tag, as letters: S D C T F E. */
static const char *events_of(trace_rec *r, void *tag, const actio_http_trace **end) {
  static char seq[64];
  int k = 0;
  pthread_mutex_lock(&r->mu);
  for (int i = 0; i < r->n; i++)
    if (r->ev[i].tag == tag) {
      seq[k++] = "SDCTFE"[r->ev[i].event];
      if (r->ev[i].event == ACTIO_HTTP_TRACE_END)
        *end = &r->ev[i];
    }
  pthread_mutex_unlock(&r->mu);
  seq[k] = '\0';
  return seq;
}

START_TEST(trace_hooks_tell_each_step) {
  static trace_rec rec = {.mu = PTHREAD_MUTEX_INITIALIZER};
  rec.n = 0;
  actio_actor *a;
  actio_http_opts o = {.workers = 1, .ca_file = ca_file, .trace = record_trace,
                       .trace_arg = &rec};
  ck_assert_int_eq(actio_http_spawn(rt, &o, &a), 0);
  static int tags[5];
  struct {
    const char *url;
    const char *seq;
    int reused, rc;
    long status;
  } cases[] = {
      {url(fixture, "/bytes/10"), "SDCFE", 0, 0, 200},
      {url(fixture, "/status/404"), "SFE", 1, 0, 404}, /* the same connection */
      {url(nginx_https, "/1k"), "SDCTFE", 0, 0, 200},
      {"http://127.0.0.1:1/", "SE", 1, -ECONNREFUSED, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    actio_http_request req = {.url = cases[i].url, .tag = &tags[i]};
    actio_future *f;
    ck_assert_int_eq(actio_http_send(a, &req, &f), 0);
    actio_future_wait(f, -1);
    ck_assert_int_eq(actio_future_status(f), cases[i].rc);
    actio_future_unref(f);
    const actio_http_trace *end = NULL;
    ck_assert_str_eq(events_of(&rec, &tags[i], &end), cases[i].seq);
    ck_assert_int_eq(end->rc, cases[i].rc);
    ck_assert_int_eq(end->status, cases[i].status);
    ck_assert_int_eq(end->reused, cases[i].reused);
    ck_assert_int_eq(end->attempt, 1);
    ck_assert(end->ms >= 0);
  }
  /* A retried request: each attempt told, numbered. */
  actio_http_request req = {.url = url(fixture, "/retry/trace/1"), .tag = &tags[4],
                            .retries = 1, .retry_backoff_ms = 1};
  actio_future *f;
  ck_assert_int_eq(actio_http_send(a, &req, &f), 0);
  expect(f, 0);
  actio_future_unref(f);
  const actio_http_trace *end = NULL;
  ck_assert_str_eq(events_of(&rec, &tags[4], &end), "SFESFE");
  ck_assert_int_eq(end->attempt, 2);
  ck_assert_int_eq(end->status, 200);
}
END_TEST

typedef struct log_rec {
  pthread_mutex_t mu;
  char text[1 << 16];
  size_t len;
} log_rec;

static void record_line(void *arg, const char *line) {
  log_rec *r = arg;
  pthread_mutex_lock(&r->mu);
  int n = snprintf(r->text + r->len, sizeof r->text - r->len, "%s\n", line);
  if (n > 0 && (size_t)n < sizeof r->text - r->len)
    r->len += (size_t)n;
  pthread_mutex_unlock(&r->mu);
}

/* The log shows requests and their headers, never a secret: credentials
 * of every kind, a URL's password and secret parameters, cookies both
 * ways, a proxy's credentials. */
START_TEST(request_log_never_shows_a_secret) {
  static log_rec rec = {.mu = PTHREAD_MUTEX_INITIALIZER};
  rec.len = 0;
  actio_http_proxy px = {.url = proxy_auth_url, .user = "actio", .password = "proxy-pw"};
  actio_actor *a;
  actio_http_opts o = {.ca_file = ca_file, .log = record_line, .log_arg = &rec,
                       .log_headers = 1};
  ck_assert_int_eq(actio_http_spawn(rt, &o, &a), 0);
  actio_http_auth basic = {.type = ACTIO_HTTP_AUTH_BASIC, .user = "alice", .password = "s3cret"};
  actio_http_auth bearer = {.type = ACTIO_HTTP_AUTH_BEARER, .token = "tok.bearer"};
  const char *hdrs[] = {"Cookie: sid=cookiesecret", "X-Api-Key: keysecret",
                        "Authorization: Token ownsecret", NULL};
  char u1[256], u2[256];
  snprintf(u1, sizeof u1, "http://u:urlpass@%s/echo?token=tok.query&x=1", fixture + 7);
  snprintf(u2, sizeof u2, "%s/redirect-to?url=/headers?access_token=tok.loc", fixture);
  actio_http_request reqs[] = {
      {.url = url(fixture, "/echo"), .auth = &basic},
      {.url = url(fixture, "/echo"), .auth = &bearer},
      {.url = url(fixture, "/echo"), .headers = hdrs},
      {.url = u1},
      {.url = u2},
      {.url = url(nginx_http, "/1k"), .proxy = &px},
      {.url = url(nginx_https, "/1k"), .proxy = &px, .auth = &basic},
      {.url = url(fixture, "/headers")},
  };
  for (size_t i = 0; i < sizeof reqs / sizeof *reqs; i++) {
    actio_future *f;
    ck_assert_int_eq(actio_http_send(a, &reqs[i], &f), 0);
    expect(f, 0);
    actio_future_unref(f);
  }
  actio_http_request bad = {.url = "http://u:urlpass@127.0.0.1:1/?api_key=k3y", .auth = &basic};
  actio_future *f;
  ck_assert_int_eq(actio_http_send(a, &bad, &f), 0);
  expect(f, -ECONNREFUSED);
  actio_future_unref(f);
  ck_assert_int_eq(actio_actor_stop(a, ACTIO_STOP_DRAIN), 0); /* nothing more is written */
  const char *secrets[] = {"s3cret", "YWxpY2U6czNjcmV0", "tok.bearer", "cookiesecret",
                           "keysecret", "ownsecret", "urlpass", "dTp1cmxwYXNz", "tok.query",
                           "tok.loc", "proxy-pw", "YWN0aW86cHJveHktcHc=", "k3y"};
  for (size_t i = 0; i < sizeof secrets / sizeof *secrets; i++)
    if (strstr(rec.text, secrets[i]) != NULL) {
      fprintf(stderr, "%s", rec.text);
      ck_abort_msg("the log shows %s", secrets[i]);
    }
  const char *shown[] = {"> GET ",
                         "> Authorization: Basic ***\n",
                         "> Authorization: Bearer ***\n",
                         "> Authorization: Token ***\n",
                         "> Cookie: ***\n",
                         "> X-Api-Key: ***\n",
                         "> Proxy-Authorization: Basic ***\n",
                         "< Set-Cookie: ***\n",
                         "< Location: /headers?access_token=***\n",
                         "u:***@127.0.0.1",
                         "token=***&x=1",
                         "< HTTP/1.1 200 OK\n",
                         ": 200, 1024 bytes in ",
                         "! GET http://u:***@127.0.0.1:1/?api_key=***: "};
  for (size_t i = 0; i < sizeof shown / sizeof *shown; i++)
    if (strstr(rec.text, shown[i]) == NULL) {
      fprintf(stderr, "%s", rec.text);
      ck_abort_msg("the log lacks \"%s\"", shown[i]);
    }
}
END_TEST

START_TEST(header_lines_masked) {
  static const char *const cases[][2] = {
      {"Authorization: Basic YWxpY2U6czNjcmV0\r\n", "Authorization: Basic ***"},
      {"authorization:Bearer abc", "authorization:Bearer ***"},
      {"Authorization: abc", "Authorization: ***"},
      {"Proxy-Authorization: Digest username=\"u\"", "Proxy-Authorization: Digest ***"},
      {"Cookie: a=1; b=2", "Cookie: ***"},
      {"Set-Cookie: sid=x; Path=/", "Set-Cookie: ***"},
      {"X-Auth-Token: t", "X-Auth-Token: ***"},
      {"X-Session-Key: t", "X-Session-Key: ***"},
      {"Content-Type: text/plain", "Content-Type: text/plain"},
      {"Keep-Alive: timeout=5", "Keep-Alive: timeout=5"},
      {"GET /a?password=p&b=1 HTTP/1.1", "GET /a?password=***&b=1 HTTP/1.1"},
      {"Location: http://u:p@h/x?sig=s", "Location: http://u:***@h/x?sig=***"},
      {"Referer: https://h/?token=t", "Referer: https://h/?token=***"},
      {"HTTP/1.1 302 Found", "HTTP/1.1 302 Found"},
      {"X-Odd: a\x01z", "X-Odd: a%01z"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char out[256];
    size_t n = actio__http_redact_header(cases[i][0], strlen(cases[i][0]), NULL, out, sizeof out);
    ck_assert_str_eq(out, cases[i][1]);
    ck_assert_uint_eq(n, strlen(cases[i][1]));
  }
  char small[16];
  const char *l = "Location: http://h/?token=abcdefgh";
  ck_assert_uint_eq(actio__http_redact_header(l, strlen(l), NULL, small, sizeof small),
                    strlen("Location: http://h/?token=***"));
  ck_assert_str_eq(small, "Location: ht...");
}
END_TEST

int main(void) {
  if (start_servers() != 0) {
    fprintf(stderr, "test_http: could not start the test servers\n");
    stop_servers();
    return EXIT_FAILURE;
  }
  Suite *s = suite_create("http");
  TCase *tc = tcase_with_timeout("requests", 60);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, get_static_file);
  tcase_add_test(tc, no_head_of_line_blocking_over_http);
  tcase_add_test(tc, group_deadline_reaches_each_request);
  tcase_add_test(tc, connections_are_reused);
  tcase_add_test(tc, methods_headers_and_bodies);
  tcase_add_test(tc, repeated_headers_are_kept);
  tcase_add_test(tc, statuses_complete_and_raise_on_request);
  tcase_add_test(tc, redirects_followed_limited_and_kept_to_http);
  tcase_add_test(tc, bad_urls_and_refused_connections);
  tcase_add_test(tc, bad_method_refused_at_the_call);
  tcase_add_test(tc, timeouts);
  tcase_add_test(tc, cancel_removes_the_transfer);
  tcase_add_test(tc, bodies_over_the_limit_and_dropped_connections);
  tcase_add_test(tc, tls_verified_and_http2_multiplexed);
  tcase_add_test(tc, many_requests_at_once);
  tcase_add_test(tc, stop_now_cancels_transfers_in_flight);
  tcase_add_test(tc, retries_for_idempotent_requests);
  tcase_add_test(tc, body_to_a_consumer_with_backpressure);
  tcase_add_test(tc, body_saved_to_a_file);
  tcase_add_loop_test(tc, save_to_shows_nothing_until_complete, 0, 2);
  tcase_add_test(tc, client_certificates);
  tcase_add_test(tc, per_host_connection_limit);
  tcase_add_test(tc, connect_timeout);
  tcase_add_test(tc, backlog_waits_in_the_mailbox);
  tcase_add_test(tc, a_full_worker_freed_before_it_sleeps_takes_its_mailbox);
  tcase_add_test(tc, review_regressions);
  tcase_add_test(tc, urls_redacted_for_messages);
  tcase_add_test(tc, secrets_stay_out_of_error_texts);
  tcase_add_test(tc, failures_say_what_happened);
  suite_add_tcase(s, tc);
  tc = tcase_with_timeout("paths", 60);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, a_supervised_http_actor);
  tcase_add_test(tc, a_folder_of_hashed_certificates);
  tcase_add_test(tc, methods_without_a_body);
  tcase_add_test(tc, a_consumer_ready_at_once);
  tcase_add_test(tc, transient_statuses_retried_others_not);
  tcase_add_test(tc, a_request_cancelled_while_queued_is_never_sent);
  tcase_add_test(tc, header_with_cr_or_lf_refused_at_the_call);
  tcase_add_test(tc, query_parameters_built_and_encoded);
  tcase_add_test(tc, form_bodies_urlencoded);
  tcase_add_test(tc, multipart_values_and_files);
  tcase_add_test(tc, multipart_file_cut_short_mid_upload);
  tcase_add_test(tc, basic_bearer_and_digest_auth);
  tcase_add_test(tc, credentials_stay_with_their_host);
  tcase_add_test(tc, proxies_per_actor_and_per_request);
  tcase_add_test(tc, proxy_failures_say_so);
  tcase_add_test(tc, a_keep_alive_proxy_connection_reused);
  tcase_add_test(tc, the_forward_proxy_keeps_its_connection);
  tcase_add_test(tc, cookies_kept_read_set_saved_and_loaded);
  tcase_add_test(tc, cookie_files_and_bad_cookies_refused);
  suite_add_tcase(s, tc);
  tc = tcase_with_timeout("bodies", 60);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, compressed_bodies_decoded_and_limited);
  tcase_add_test(tc, uploads_from_a_callback_with_backpressure);
  tcase_add_test(tc, abandoned_pause_futures_keep_no_ring);
  tcase_add_test(tc, bodies_read_from_files);
  tcase_add_test(tc, body_file_cut_short_mid_upload);
  tcase_add_test(tc, headers_first_then_the_body_or_not);
  tcase_add_test(tc, body_stopped_after_its_head);
  tcase_add_test(tc, trace_hooks_tell_each_step);
  tcase_add_test(tc, request_log_never_shows_a_secret);
  tcase_add_test(tc, header_lines_masked);
  suite_add_tcase(s, tc);
  tc = tcase_with_timeout("environment", 60); /* makes its own actor */
  tcase_add_test(tc, proxy_variables_ignored);
  tcase_add_test(tc, proxy_variables_on_request);
  suite_add_tcase(s, tc);
  int rc = run_suite(s);
  stop_servers();
  return rc;
}

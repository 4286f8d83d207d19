/* http_api.c: the HTTP actor's calls: spawn one, and send it requests (the
 * arguments checked and copied here, on the caller's thread). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actio.h"
#include "actors/core/actor_internal.h"
#include "actors/http/http_internal.h"
#include "io/http/http_redact.h"

static void http_state_free(void *p) {
  actio__http_state *st = p;
  actio__http_share_destroy(st->share);
  for (size_t i = 0; i < sizeof st->strings / sizeof *st->strings; i++)
    free(st->strings[i]);
  free(st->secret_params);
  free(st);
}

static const char *keep(actio__http_state *st, int i, const char *s, int *ok) {
  if (s == NULL)
    return NULL;
  st->strings[i] = strdup(s);
  if (st->strings[i] == NULL)
    *ok = 0;
  return st->strings[i];
}

/* A NULL-terminated list of strings copied into one block (NULL for
 * NULL), or NULL with *ok cleared when out of memory. */
static char **keep_list(const char *const *in, int *ok) {
  if (in == NULL)
    return NULL;
  size_t n = 0, bytes = 0;
  for (; in[n] != NULL; n++)
    bytes += strlen(in[n]) + 1;
  char **out = malloc((n + 1) * sizeof *out + bytes);
  if (out == NULL) {
    *ok = 0;
    return NULL;
  }
  char *p = (char *)(out + n + 1);
  for (size_t i = 0; i < n; i++) {
    size_t l = strlen(in[i]) + 1;
    out[i] = memcpy(p, in[i], l);
    p += l;
  }
  out[n] = NULL;
  return out;
}

int actio_http_spawn(actio_runtime *rt, const actio_http_opts *opts,
                     actio_actor **out) {
  actio_http_opts o = opts ? *opts : (actio_http_opts){0};
  if (rt == NULL || out == NULL)
    return ACTIO_EINVAL;
  int rc = actio__http_global_init();
  if (rc != 0)
    return rc;
  actio__http_state *st = calloc(1, sizeof *st);
  if (st == NULL)
    return ACTIO_ENOMEM;
  int ok = 1;
  char ua[64];
  snprintf(ua, sizeof ua, "actio/%d.%d.%d", ACTIO_VERSION_MAJOR,
           ACTIO_VERSION_MINOR, ACTIO_VERSION_PATCH);
  st->conf = (actio__http_conf){
      .max_connections = o.max_connections > 0 ? o.max_connections : 64,
      .max_host_connections = o.max_host_connections,
      .connect_timeout_ms = o.connect_timeout_ms > 0 ? o.connect_timeout_ms : 10000,
      .timeout_ms = o.timeout_ms > 0 ? o.timeout_ms : 300000,
      .idle_timeout_ms = o.idle_timeout_ms,
      .max_redirects = o.max_redirects ? o.max_redirects : 10,
      .max_body = o.max_body ? o.max_body : (size_t)64 << 20,
      .ca_file = keep(st, 0, o.ca_file, &ok),
      .ca_path = keep(st, 1, o.ca_path, &ok),
      .client_cert = keep(st, 2, o.client_cert, &ok),
      .client_key = keep(st, 3, o.client_key, &ok),
      .user_agent = keep(st, 4, o.user_agent ? o.user_agent : ua, &ok),
  };
  st->secret_params = keep_list(o.secret_params, &ok);
  st->conf.secret_params = (const char *const *)st->secret_params;
  st->fail_when_full = o.fail_when_full;
  rc = ok ? actio__http_share_create(&st->share) : ACTIO_ENOMEM;
  if (rc != 0) {
    http_state_free(st);
    return rc;
  }
  actio_actor_opts ao = {
      .name = "http",
      .workers = o.workers ? o.workers : 2,
      .capacity = o.capacity ? o.capacity : 4096,
      .state = st,
      .state_free = http_state_free,
  };
  return actio_actor_spawn(rt, &actio__http_behavior, &ao, out);
}

/* Copies what the caller lent into one block behind the call, and takes
 * the request's fields apart: what a transfer needs goes to io. */
static actio__http_call *call_copy(const actio_http_request *in,
                                   const char *method) {
  size_t n = 0, nh = 0;
  size_t lu = strlen(in->url) + 1, lm = strlen(method) + 1;
  for (const char *const *h = in->headers; h != NULL && *h != NULL; h++, nh++)
    n += strlen(*h) + 1;
  size_t body = in->body ? in->body_len : 0;
  size_t ls = in->save_to ? strlen(in->save_to) + 1 : 0;
  size_t total = sizeof(actio__http_call) + (nh + 1) * sizeof(char *) + lu + lm + n + ls + body;
  actio__http_call *c = malloc(total);
  if (c == NULL)
    return NULL;
  memset(c, 0, sizeof *c);
  c->io = (actio__http_req){
      .body_len = in->body_len,
      .timeout_ms = in->timeout_ms,
      .connect_timeout_ms = in->connect_timeout_ms,
      .idle_timeout_ms = in->idle_timeout_ms,
      .max_redirects = in->max_redirects,
      .max_body = in->max_body,
  };
  c->retries = in->retries;
  c->retry_any_method = in->retry_any_method;
  c->retry_backoff_ms = in->retry_backoff_ms;
  c->on_chunk = in->on_chunk;
  c->chunk_arg = in->chunk_arg;
  char **hv = (char **)(void *)c->bytes;
  char *p = (char *)(hv + nh + 1);
  for (size_t i = 0; i < nh; i++) {
    size_t l = strlen(in->headers[i]) + 1;
    hv[i] = memcpy(p, in->headers[i], l);
    p += l;
  }
  hv[nh] = NULL;
  c->io.headers = nh ? (const char *const *)hv : NULL;
  c->io.url = memcpy(p, in->url, lu);
  p += lu;
  c->io.method = memcpy(p, method, lm);
  p += lm;
  if (ls) {
    c->save_to = memcpy(p, in->save_to, ls);
    p += ls;
  }
  if (body) {
    c->io.body = memcpy(p, in->body, body);
  } else if (in->body != NULL) {
    c->io.body = p; /* an empty body, still a body */
  }
  return c;
}

static int http_send(actio_actor *http, const actio_http_request *req,
                     actio_future **out);

int actio_http_send(actio_actor *http, const actio_http_request *req,
                    actio_future **out) {
  if (http == NULL || req == NULL || out == NULL)
    return ACTIO_EINVAL;
  actio__actor_pin(http); /* its state stays while the call reads it */
  int rc = http_send(http, req, out);
  actio__actor_unpin(http);
  return rc;
}

static int http_send(actio_actor *http, const actio_http_request *req,
                     actio_future **out) {
  /* The one place the default method is decided: the call's copy holds
   * it from here on. */
  const char *method = req->method != NULL ? req->method : "GET";
  /* Whatever can only fail later is refused now, with no future made. */
  if (req->url == NULL || actio_actor_behavior(http) != &actio__http_behavior ||
      (req->body == NULL && req->body_len > 0) || !actio__http_method_valid(method))
    return ACTIO_EINVAL;
  actio__http_state *st = actio_actor_state(http);
  actio__http_call *c = call_copy(req, method);
  if (c == NULL)
    return ACTIO_ENOMEM;
  int rc = actio_future_create(&c->reply);
  if (rc != 0) {
    free(c);
    return rc;
  }
  rc = actio__request(http, c, c->reply, st->fail_when_full ? 0 : -1, out);
  if (rc != 0)
    actio__http_call_free(c);
  return rc;
}

int actio_http_get(actio_actor *http, const char *url, actio_future **out) {
  actio_http_request req = {.url = url};
  return actio_http_send(http, &req, out);
}

int actio_http_redact_url(const actio_actor *http, const char *url, char *out,
                          size_t size) {
  if (url == NULL || (out == NULL && size > 0) ||
      (http != NULL && actio_actor_behavior(http) != &actio__http_behavior))
    return ACTIO_EINVAL;
  if (http != NULL)
    actio__actor_pin(http);
  const actio__http_state *st = http ? actio_actor_state(http) : NULL;
  size_t n = actio__http_redact(url, strlen(url), st ? st->conf.secret_params : NULL,
                                out, size);
  if (http != NULL)
    actio__actor_unpin(http);
  return n < INT_MAX ? (int)n : INT_MAX;
}

int actio_http_child(actio_runtime *rt, void *opts, actio_actor **out) {
  return actio_http_spawn(rt, opts, out);
}

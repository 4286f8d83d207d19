/* http_api.c: the HTTP actor's calls: spawn one, and send it requests (the
 * arguments checked and copied here, on the caller's thread). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

/* 1 when s holds a CR or LF: it would end a header line early. */
static int crlf(const char *s) { return s != NULL && strpbrk(s, "\r\n") != NULL; }

/* 1 when p names a scheme libcurl proxies through ("" too: none), and no
 * string of it has CR or LF. */
static int proxy_valid(const actio_http_proxy *p) {
  static const char *const schemes[] = {"http://", "https://", "socks5://", "socks5h://"};
  if (crlf(p->url) || crlf(p->user) || crlf(p->password) || crlf(p->no_proxy))
    return 0;
  if (p->url == NULL || *p->url == '\0')
    return 1;
  for (size_t i = 0; i < sizeof schemes / sizeof *schemes; i++)
    if (strncasecmp(p->url, schemes[i], strlen(schemes[i])) == 0)
      return 1;
  return 0;
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
  if (o.proxy != NULL) {
    if (!proxy_valid(o.proxy) || o.proxy->url == NULL) {
      http_state_free(st);
      return ACTIO_EINVAL;
    }
    st->conf.proxy = (actio__http_proxy){
        .url = keep(st, 5, o.proxy->url, &ok),
        .user = keep(st, 6, o.proxy->user, &ok),
        .password = keep(st, 7, o.proxy->password, &ok),
        .no_proxy = keep(st, 8, o.proxy->no_proxy, &ok),
    };
  }
  st->conf.proxy_from_env = o.proxy_from_env;
  if (o.trace != NULL) {
    st->trace = o.trace;
    st->trace_arg = o.trace_arg;
    st->conf.trace = actio__http_trace_relay;
    st->conf.trace_arg = st;
  }
  st->conf.log = o.log;
  st->conf.log_arg = o.log_arg;
  st->conf.log_headers = o.log != NULL && o.log_headers;
  st->conf.cookies = o.cookies != 0;
  st->secret_params = keep_list(o.secret_params, &ok);
  st->conf.secret_params = (const char *const *)st->secret_params;
  st->fail_when_full = o.fail_when_full;
  rc = ok ? actio__http_share_create(&st->share, st->conf.cookies) : ACTIO_ENOMEM;
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

/* Bytes of s with its NUL, 0 for NULL. */
static size_t slen(const char *s) { return s ? strlen(s) + 1 : 0; }

/* Copies s (if any) to *p and moves *p past it. */
static const char *put(char **p, const void *s, size_t n) {
  if (s == NULL && n == 0)
    return NULL;
  const char *at = *p;
  if (n > 0)
    memcpy(*p, s, n);
  *p += n;
  return at;
}

/* What the rare options take behind the call: the block, the parts and
 * their strings. 0 when the request has none. */
static size_t more_size(const actio_http_request *in, int head) {
  if (in->parts == NULL && in->auth == NULL && in->proxy == NULL && in->upload == NULL &&
      in->body_file == NULL && in->tag == NULL && !head)
    return 0;
  size_t n = sizeof(actio__http_more) + in->nparts * sizeof(actio__http_part);
  for (size_t i = 0; i < in->nparts; i++) {
    const actio_http_part *p = &in->parts[i];
    n += slen(p->name) + slen(p->file) + slen(p->filename) + slen(p->content_type) +
         p->data_len + 1;
  }
  if (in->proxy != NULL)
    n += slen(in->proxy->url) + slen(in->proxy->user) + slen(in->proxy->password) +
         slen(in->proxy->no_proxy);
  if (in->auth != NULL)
    n += slen(in->auth->user) + slen(in->auth->password ? in->auth->password : "") +
         slen(in->auth->token);
  return n + slen(in->body_file);
}

/* Copies the rare options of c's request to *p (more_size bytes,
 * pointer-aligned). */
static const actio__http_more *more_copy(actio__http_call *c, const actio_http_request *in,
                                         int head, char **p) {
  actio__http_more *m = (actio__http_more *)(void *)*p;
  actio__http_part *parts = (actio__http_part *)(m + 1);
  *p = (char *)(parts + in->nparts);
  *m = (actio__http_more){
      .parts = in->parts ? parts : NULL,
      .nparts = in->nparts,
      .source = in->upload ? actio__http_upload_source : NULL,
      .source_arg = c,
      .source_len = in->upload_len,
      .on_head = head ? actio__http_head_ready : NULL,
      .head_arg = c,
      .tag = in->tag,
  };
  m->body_file = put(p, in->body_file, slen(in->body_file));
  for (size_t i = 0; i < in->nparts; i++) {
    const actio_http_part *q = &in->parts[i];
    parts[i] = (actio__http_part){
        .name = put(p, q->name, slen(q->name)),
        .file = put(p, q->file, slen(q->file)),
        .filename = put(p, q->filename, slen(q->filename)),
        .type = put(p, q->content_type, slen(q->content_type)),
        .data_len = q->data_len,
    };
    if (q->file == NULL) { /* a value: NUL-terminated, for libcurl too */
      parts[i].data = put(p, q->data ? q->data : "", q->data_len);
      *(*p)++ = '\0';
    }
  }
  if (in->proxy != NULL)
    m->proxy = (actio__http_proxy){
        .url = put(p, in->proxy->url, slen(in->proxy->url)),
        .user = put(p, in->proxy->user, slen(in->proxy->user)),
        .password = put(p, in->proxy->password, slen(in->proxy->password)),
        .no_proxy = put(p, in->proxy->no_proxy, slen(in->proxy->no_proxy)),
    };
  if (in->auth != NULL) {
    const actio_http_auth *a = in->auth;
    m->auth = a->type == ACTIO_HTTP_AUTH_BASIC    ? ACTIO__HTTP_AUTH_BASIC
              : a->type == ACTIO_HTTP_AUTH_BEARER ? ACTIO__HTTP_AUTH_BEARER
              : a->type == ACTIO_HTTP_AUTH_DIGEST ? ACTIO__HTTP_AUTH_DIGEST
                                                  : ACTIO__HTTP_AUTH_NONE;
    m->user = put(p, a->user, slen(a->user));
    const char *pw = a->password ? a->password : ""; /* NULL is empty */
    m->password = put(p, pw, slen(pw));
    m->token = put(p, a->token, slen(a->token));
  }
  return m;
}

/* Copies what the caller lent into one block behind the call, and takes
 * the request's fields apart: what a transfer needs goes to io, the rare
 * options behind one pointer. */
static actio__http_call *call_copy(const actio_http_request *in,
                                   const char *method, int head) {
  size_t n = 0, nh = 0;
  size_t lu = strlen(in->url) + 1, lm = strlen(method) + 1;
  for (const char *const *h = in->headers; h != NULL && *h != NULL; h++, nh++)
    n += strlen(*h) + 1;
  size_t body = in->body ? in->body_len : 0;
  size_t ls = slen(in->save_to), lmore = more_size(in, head);
  size_t total = sizeof(actio__http_call) + (nh + 1) * sizeof(char *) + lmore + lu + lm + n +
                 ls + body;
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
  c->upload = in->upload;
  c->upload_arg = in->upload_arg;
  c->on_chunk = in->on_chunk;
  c->chunk_arg = in->chunk_arg;
  char **hv = (char **)(void *)c->bytes;
  char *p = (char *)(hv + nh + 1);
  if (lmore) /* pointer-aligned, right after the header pointers */
    c->io.more = more_copy(c, in, head, &p);
  for (size_t i = 0; i < nh; i++)
    hv[i] = (char *)put(&p, in->headers[i], strlen(in->headers[i]) + 1);
  hv[nh] = NULL;
  c->io.headers = nh ? (const char *const *)hv : NULL;
  c->io.url = put(&p, in->url, lu);
  c->io.method = put(&p, method, lm);
  c->save_to = put(&p, in->save_to, ls);
  if (body) {
    c->io.body = put(&p, in->body, body);
  } else if (in->body != NULL) {
    c->io.body = p; /* an empty body, still a body */
  }
  return c;
}

/* 1 when the request's headers, form, parts and auth are well made. */
static int extras_valid(const actio_http_request *r) {
  for (const char *const *h = r->headers; h != NULL && *h != NULL; h++)
    if (crlf(*h))
      return 0;
  int bodies = (r->body != NULL) + (r->nform > 0) + (r->nparts > 0) + (r->upload != NULL) +
               (r->body_file != NULL);
  if (bodies > 1 || (r->nform > 0 && r->form == NULL) || (r->nparts > 0 && r->parts == NULL) ||
      r->upload_len < 0 || (r->upload_len > 0 && r->upload == NULL) ||
      (r->body_file != NULL && *r->body_file == '\0'))
    return 0;
  for (size_t i = 0; i < r->nform; i++)
    if (r->form[i].name == NULL || r->form[i].value == NULL)
      return 0;
  for (size_t i = 0; i < r->nparts; i++) {
    const actio_http_part *p = &r->parts[i];
    if (p->name == NULL || crlf(p->name) || crlf(p->filename) || crlf(p->content_type) ||
        (p->data == NULL && p->data_len > 0) ||
        (p->file != NULL && (p->data != NULL || *p->file == '\0')))
      return 0;
  }
  if (r->proxy != NULL && (r->proxy->url == NULL || !proxy_valid(r->proxy)))
    return 0;
  const actio_http_auth *a = r->auth;
  if (a == NULL || a->type == ACTIO_HTTP_AUTH_NONE)
    return 1;
  if (crlf(a->user) || crlf(a->password) || crlf(a->token))
    return 0;
  if (a->type == ACTIO_HTTP_AUTH_BEARER)
    return a->token != NULL && *a->token != '\0';
  return (a->type == ACTIO_HTTP_AUTH_BASIC || a->type == ACTIO_HTTP_AUTH_DIGEST) &&
         a->user != NULL && strchr(a->user, ':') == NULL;
}

/* The request with its form encoded as its body, and the form's
 * Content-Type among its headers unless they have one: *hv (NULL if not
 * needed) and form->s are the caller's to free. */
static int form_body(const actio_http_request *in, actio_http_request *out,
                     actio__http_text *form, const char ***hv) {
  *out = *in;
  *hv = NULL;
  for (size_t i = 0; i < in->nform; i++) {
    int rc = actio__http_text_param(form, in->form[i].name, in->form[i].value);
    if (rc != 0)
      return rc;
  }
  out->body = form->s ? form->s : "";
  out->body_len = form->len;
  size_t nh = 0;
  for (const char *const *h = in->headers; h != NULL && *h != NULL; h++, nh++)
    if (strncasecmp(*h, "Content-Type:", 13) == 0)
      return 0;
  *hv = malloc((nh + 2) * sizeof **hv);
  if (*hv == NULL)
    return ACTIO_ENOMEM;
  if (nh)
    memcpy(*hv, in->headers, nh * sizeof **hv);
  (*hv)[nh] = "Content-Type: application/x-www-form-urlencoded";
  (*hv)[nh + 1] = NULL;
  out->headers = *hv;
  return 0;
}

static int http_send(actio_actor *http, const actio_http_request *req,
                     actio_future **head, actio_future **out);

int actio_http_send(actio_actor *http, const actio_http_request *req,
                    actio_future **out) {
  if (http == NULL || req == NULL || out == NULL)
    return ACTIO_EINVAL;
  actio__actor_pin(http); /* its state stays while the call reads it */
  int rc = http_send(http, req, NULL, out);
  actio__actor_unpin(http);
  return rc;
}

int actio_http_send_head(actio_actor *http, const actio_http_request *req,
                         actio_future **head, actio_future **out) {
  if (http == NULL || req == NULL || head == NULL || out == NULL)
    return ACTIO_EINVAL;
  actio__actor_pin(http);
  int rc = http_send(http, req, head, out);
  actio__actor_unpin(http);
  return rc;
}

static int http_send(actio_actor *http, const actio_http_request *req,
                     actio_future **head, actio_future **out) {
  /* The one place the default method is decided: the call's copy holds
   * it from here on. */
  const char *method = req->method != NULL           ? req->method
                       : req->nform || req->nparts || req->upload || req->body_file
                           ? "POST"
                                                     : "GET";
  /* Whatever can only fail later is refused now, with no future made. */
  if (req->url == NULL || actio_actor_behavior(http) != &actio__http_behavior ||
      (req->body == NULL && req->body_len > 0) || !actio__http_method_valid(method) ||
      !extras_valid(req))
    return ACTIO_EINVAL;
  actio__http_state *st = actio_actor_state(http);
  actio__http_call *c = NULL;
  if (req->nform > 0) {
    actio_http_request r;
    actio__http_text form = {0};
    const char **hv;
    if (form_body(req, &r, &form, &hv) == 0)
      c = call_copy(&r, method, head != NULL);
    free(hv);
    free(form.s);
  } else {
    c = call_copy(req, method, head != NULL);
  }
  if (c == NULL)
    return ACTIO_ENOMEM;
  int rc = actio_future_create(&c->reply);
  if (rc == 0 && head != NULL && (rc = actio_future_create(&c->head)) == 0)
    actio_future_ref(c->head); /* the caller's, taken while c is surely alive */
  if (rc != 0) {
    actio_future_unref(c->reply);
    free(c);
    return rc;
  }
  actio_future *h = c->head; /* once sent, c may be gone already */
  rc = actio__request(http, c, c->reply, st->fail_when_full ? 0 : -1, out);
  if (head != NULL) {
    if (rc == 0)
      *head = h;
    else
      actio_future_unref(h);
  }
  if (rc != 0)
    actio__http_call_free(c);
  return rc;
}

int actio_http_get(actio_actor *http, const char *url, actio_future **out) {
  actio_http_request req = {.url = url};
  return actio_http_send(http, &req, out);
}

int actio_http_url_build(const char *base, const actio_http_param *params,
                         size_t n, char **out) {
  if (base == NULL || out == NULL || (params == NULL && n > 0))
    return ACTIO_EINVAL;
  for (size_t i = 0; i < n; i++)
    if (params[i].name == NULL || params[i].value == NULL)
      return ACTIO_EINVAL;
  actio__http_text q = {0};
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++)
    rc = actio__http_text_param(&q, params[i].name, params[i].value);
  if (rc == 0)
    rc = actio__http_url_join(base, q.s, out);
  free(q.s);
  return rc;
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

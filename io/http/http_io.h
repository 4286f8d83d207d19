/* http_io.h: libcurl's multi interface for one worker thread: transfers in,
 * completions out through a callback. Knows nothing of futures or actors;
 * no libcurl type leaves io/http. */
#ifndef ACTIO_IO_HTTP_IO_H
#define ACTIO_IO_HTTP_IO_H

#include <stddef.h>

#include "actio/error.h"
#include "io/http/http_result.h"

/* A proxy: url NULL means "not set here" (a request then takes the
 * session's), "" means none (go direct). */
typedef struct actio__http_proxy {
  const char *url;              /* http, https, socks5 or socks5h */
  const char *user, *password;  /* NULL: none, or the URL's userinfo */
  const char *no_proxy;         /* hosts that go direct, libcurl's syntax */
} actio__http_proxy;

/* What a trace hook is told of a transfer (actio__http_conf.trace). */
enum { ACTIO__HTTP_TRACE_START, ACTIO__HTTP_TRACE_DNS, ACTIO__HTTP_TRACE_CONNECT,
       ACTIO__HTTP_TRACE_TLS, ACTIO__HTTP_TRACE_FIRST_BYTE, ACTIO__HTTP_TRACE_END };
typedef struct actio__http_trace {
  int event;   /* ACTIO__HTTP_TRACE_* */
  double ms;   /* since the transfer started */
  int reused;  /* its connection was reused (FIRST_BYTE, END) */
  long status; /* END: the last response's, 0 if none */
  int rc;      /* END: 0 or the transfer's error */
} actio__http_trace;

/* Session-wide settings (the strings are borrowed for the loop's life). */
typedef struct actio__http_conf {
  long max_connections, max_host_connections;
  long connect_timeout_ms, timeout_ms, idle_timeout_ms;
  int max_redirects;
  size_t max_body;
  const char *ca_file, *ca_path, *client_cert, *client_key, *user_agent;
  const char *const *secret_params; /* more parameter names to mask in
                                       messages (actio__http_redact) */
  actio__http_proxy proxy;      /* the session's, url NULL: none */
  int proxy_from_env;           /* no proxy set: take the environment's */
  int cookies;                  /* the share keeps a cookie jar */
  /* Runs on the loop's thread at each event of a transfer; xarg is the
   * transfer's done arg. NULL: none. */
  void (*trace)(void *arg, void *xarg, const actio__http_trace *t);
  void *trace_arg;
  /* The request log: a line a call, secrets masked (actio__http_redact
   * and actio__http_redact_header), on the loop's thread. NULL: none. */
  void (*log)(void *arg, const char *line);
  void *log_arg;
  int log_headers;              /* the log shows headers sent and received */
} actio__http_conf;

typedef struct actio__http_loop actio__http_loop;
typedef struct actio__http_xfer actio__http_xfer;

/* Takes body chunks instead of memory, on the loop's thread: returns 0
 * (taken), 1 (taken, but pause the transfer before the next chunk until
 * actio__http_xfer_resume) or a negative code (fails the transfer with
 * it). */
typedef int (*actio__http_sink_fn)(void *arg, const void *data, size_t len);

/* One part of a multipart/form-data body: an in-memory value, or a file
 * read from disk while the transfer runs (never loaded whole). */
typedef struct actio__http_part {
  const char *name;
  const char *data;     /* the value (NULL for a file part) */
  size_t data_len;
  const char *file;     /* or the file's path, opened by each attempt */
  const char *filename; /* the name the server is told; NULL: none (a
                           value) or the file's last path segment */
  const char *type;     /* its Content-Type; NULL: none for a value,
                           application/octet-stream for a file */
} actio__http_part;

/* A request body made as it is sent (actio__http_more.source), on the
 * loop's thread: writes up to cap bytes at buf, sets *len (0: the end) and
 * returns 0; or returns 1 (nothing ready: the upload pauses until
 * actio__http_xfer_resume_upload, then asks again), or a negative code
 * (fails the transfer with it). */
typedef int (*actio__http_source_fn)(void *arg, char *buf, size_t cap, size_t *len);

/* How a request authenticates (actio__http_more.auth). */
enum { ACTIO__HTTP_AUTH_NONE, ACTIO__HTTP_AUTH_BASIC, ACTIO__HTTP_AUTH_BEARER,
       ACTIO__HTTP_AUTH_DIGEST };

/* A request's rarely used options, behind one pointer so that a plain
 * request does not carry them. Borrowed as the request is. */
typedef struct actio__http_more {
  const actio__http_part *parts; /* a multipart body; NULL: none */
  size_t nparts;
  int auth;                      /* ACTIO__HTTP_AUTH_* */
  const char *user, *password;   /* basic and digest */
  const char *token;             /* bearer */
  actio__http_proxy proxy;       /* url NULL: the session's */
  /* A body read as it is sent, instead of body and parts: */
  actio__http_source_fn source;  /* from the caller (never sent twice) */
  void *source_arg;
  long long source_len;          /* the bytes it gives; <= 0: unknown,
                                    sent chunked */
  const char *body_file;         /* or a file, opened by each attempt */
  void *tag;                     /* the caller's, for its trace hook */
  /* Runs once per attempt on the loop's thread, as the final response's
   * body starts (its first byte, before the sink sees it): its status and
   * headers are in (actio__http_xfer_head). NULL: none. */
  void (*on_head)(void *arg, actio__http_xfer *x);
  void *head_arg;
} actio__http_more;

/* One request as a transfer needs it. Zero fields take the loop's
 * settings. Everything is borrowed until actio__http_xfer_free. */
typedef struct actio__http_req {
  const char *method;           /* a token (actio__http_method_valid) */
  const char *url;
  const char *const *headers;   /* "Name: value" strings, NULL-terminated;
                                   may be NULL */
  const void *body;             /* NULL: none */
  size_t body_len;
  long timeout_ms, connect_timeout_ms, idle_timeout_ms;
  int max_redirects;            /* -1: do not follow */
  size_t max_body;              /* the largest body kept in memory */
  /* Where the body goes instead of memory: */
  actio__http_sink_fn sink;
  void *sink_arg;
  const actio__http_more *more; /* NULL: no rare option */
} actio__http_req;

/* Runs once per transfer, on the loop's thread, when it ends: rc is 0 (the
 * response is ready, take it with actio__http_xfer_take) or an ACTIO_*
 * code, with a message naming the method and URL (actio__http_head), and
 * after a redirect the URL it failed at. The transfer is out of
 * the loop by then; free it with actio__http_xfer_free. */
typedef void (*actio__http_done_fn)(actio__http_xfer *x, int rc,
                                    const char *msg, void *arg);

/* "METHOD URL" for a message, the URL masked (actio__http_redact with
 * c's secret_params) and cut to fit out (cap bytes, NUL-terminated).
 * Returns what was written. Any thread. */
size_t actio__http_head(const actio__http_conf *c, const char *method,
                        const char *url, char *out, size_t cap);

/* 1 if m is an HTTP method: a token (RFC 9110 tchar), else 0. Any thread. */
int actio__http_method_valid(const char *m);

/* ---- URLs and form bodies (http_url.c) ---- */

/* Text that grows: a query or a form body being built. */
typedef struct actio__http_text {
  char *s; /* NUL-terminated once anything was added */
  size_t len, cap;
} actio__http_text;

/* Appends "name=value" to t, '&' first unless t is empty, both
 * percent-encoded (all but A-Z a-z 0-9 - . _ ~), as a query or an
 * application/x-www-form-urlencoded body wants them. Returns 0 or
 * ACTIO_ENOMEM (t keeps what it had). */
int actio__http_text_param(actio__http_text *t, const char *name,
                           const char *value);

/* Checks `base` (an http or https URL with a host: else ACTIO_EURL or
 * ACTIO_ESCHEME) and writes it, with `query` (encoded; may be NULL)
 * appended to its own, into *out (malloc'd; a fragment stays last).
 * Returns 0, ACTIO_EURL, ACTIO_ESCHEME or ACTIO_ENOMEM. Any thread. */
int actio__http_url_join(const char *base, const char *query, char **out);

/* libcurl's global set-up, once per process, before any thread uses it. */
int actio__http_global_init(void);

/* The caches every loop of a session shares: DNS and TLS sessions (not
 * connections: libcurl's shared connection cache has known races), and
 * with `cookies` a cookie jar. Locked inside: any thread. */
typedef struct actio__http_share actio__http_share;
int actio__http_share_create(actio__http_share **out, int cookies);
void actio__http_share_destroy(actio__http_share *s);

/* The share's cookie jar (made with cookies set), any thread. A line is
 * one cookie in the Netscape format curl reads and writes: domain,
 * subdomains flag, path, secure flag, expiry, name and value, separated
 * by tabs, "#HttpOnly_" before the domain of an HttpOnly cookie. */
/* Adds one line (or a "Set-Cookie:" header line). Returns 0 or
 * ACTIO_ENOMEM. */
int actio__http_cookie_add(actio__http_share *s, const char *line);
/* Calls fn with each cookie's line, until fn returns non-zero (returned).
 * Returns 0, that, or ACTIO_ENOMEM. */
int actio__http_cookie_each(actio__http_share *s,
                            int (*fn)(void *arg, const char *line), void *arg);
/* Empties the jar. */
void actio__http_cookie_clear(actio__http_share *s);
/* Adds every cookie line of the file at path (others are skipped).
 * Returns 0, a negated errno (it cannot be opened or read) or
 * ACTIO_ENOMEM. */
int actio__http_cookie_load(actio__http_share *s, const char *path);
/* Writes the jar to path in the Netscape format, replacing what is there
 * at once (a file beside it, then renamed). Returns 0, a negated errno
 * (the file or its folder cannot be written) or ACTIO_ENOMEM. */
int actio__http_cookie_save(actio__http_share *s, const char *path);

int actio__http_loop_create(actio__http_loop **out, const actio__http_conf *conf,
                            actio__http_share *share);
/* Ends every transfer still in the loop with ACTIO_ECANCELED, then frees. */
void actio__http_loop_destroy(actio__http_loop *l);

/* Runs what the last poll found ready and the timers due, and reports
 * what ended (their done functions run here). Never blocks. */
void actio__http_loop_run(actio__http_loop *l);
/* Waits up to max_ms (less if a transfer's timer or idle limit is due
 * sooner; 0: only looks) for a socket, a timer or a wakeup, and keeps what
 * it found for the next run. Runs nothing. */
void actio__http_loop_poll(actio__http_loop *l, int max_ms);
/* Makes a wait return now. Any thread, while the loop exists. */
void actio__http_loop_wakeup(actio__http_loop *l);

/* Makes a transfer for `req` (method and URL set: the caller checked them).
 * cap_ms caps its total time, the caller's deadline (< 0: none beyond the
 * settings). Returns 0, ACTIO_ENOMEM, or the error opening a multipart
 * file part or the body file (a negated errno; why, cap bytes, then says
 * which). */
int actio__http_xfer_create(actio__http_xfer **out, actio__http_loop *l,
                            const actio__http_req *req, long cap_ms,
                            actio__http_done_fn done, void *arg, char *why,
                            size_t cap);
/* Starts it. On failure it was not started (call free). */
int actio__http_loop_add(actio__http_loop *l, actio__http_xfer *x);
/* Stops a running transfer now; done runs with ACTIO_ECANCELED. */
void actio__http_loop_cancel(actio__http_loop *l, actio__http_xfer *x);
/* Unpauses a transfer its sink paused (on the loop's thread); the chunk
 * libcurl held goes to the sink now. Returns 0, or the sink's error (the
 * caller then cancels the transfer). */
int actio__http_xfer_resume(actio__http_xfer *x);

/* Unpauses an upload its source paused (on the loop's thread): the source
 * is asked again now. Returns 0, or the source's error (the caller then
 * cancels the transfer). */
int actio__http_xfer_resume_upload(actio__http_xfer *x);

/* The status of the response arriving now (0: none yet). */
long actio__http_xfer_status_now(actio__http_xfer *x);

/* After done: the status and Retry-After (ms, 0 if none) of the last
 * response, 0 if there was none. */
long actio__http_xfer_status(const actio__http_xfer *x);
long actio__http_xfer_retry_after_ms(const actio__http_xfer *x);
/* The status, URL, version, redirects, timings so far and headers of the
 * response that is arriving (from on_head, or done before the free) into
 * *out, copied, with an empty body. Returns 0 or ACTIO_ENOMEM. */
int actio__http_xfer_head(actio__http_xfer *x, actio__http_result *out);

/* After done reported 0: moves the result into *out (nothing is copied);
 * the caller cleans it up. */
void actio__http_xfer_take(actio__http_xfer *x, actio__http_result *out);
/* Frees a transfer that is not in the loop (never added, or done ran).
 * NULL accepted. */
void actio__http_xfer_free(actio__http_xfer *x);

#endif

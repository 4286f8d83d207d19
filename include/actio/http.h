/** @file actio/http.h
 * The HTTP actor: concurrent HTTP on libcurl's multi interface (what
 * aiohttp's ClientSession gives Python), every request a future. */
#ifndef ACTIO_HTTP_H
#define ACTIO_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "actio/actor.h"
#include "actio/future.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup http HTTP
 * Each worker thread drives one libcurl multi handle with many transfers in
 * flight; requests arrive through the actor's lock-free mailbox and wake a
 * worker out of its poll. Connections are kept alive and reused, HTTP/2 is
 * negotiated over TLS and multiplexed, the DNS and TLS-session caches are
 * shared between workers. Only http and https are ever spoken, after a
 * redirect too. TLS certificates are verified against the system trust
 * store unless a CA file or folder is given. Proxies named in the
 * environment (http_proxy, HTTPS_PROXY, ALL_PROXY) are not used unless
 * opts.proxy_from_env asks: a request goes where its URL says, or through
 * the proxy the actor or the request names.
 *
 * A request fails with ACTIO_EURL, ACTIO_ESCHEME, ACTIO_EDNS,
 * -ECONNREFUSED, -ECONNRESET (the connection dropped as the request was
 * sent), ACTIO_ECONNTIMEOUT, ACTIO_ETIMEDOUT (total time), ACTIO_EIDLE,
 * ACTIO_ETLS, ACTIO_EREDIRECTS, ACTIO_ETOOBIG (max_body, counted decoded),
 * ACTIO_EDECODE (a body its Content-Encoding does not decode),
 * ACTIO_EPARTIAL, ACTIO_ECANCELED or ACTIO_ETRANSFER, with a message naming the method,
 * the URL (secrets masked, as actio_http_redact_url writes it) and what
 * happened, and after a redirect the URL it happened at. A 4xx
 * or 5xx status is a completed request carrying its status, as in aiohttp;
 * actio_http_raise_for_status turns it into an error when wanted.
 * @{ */

/** A proxy, for every request of an actor (actio_http_opts.proxy) or for
 * one (actio_http_request.proxy). Copied. */
typedef struct actio_http_proxy {
  /** "http://host:port", "https://host:port" (TLS to the proxy, verified
   * as servers are), "socks5://host:port" (names resolved here) or
   * "socks5h://host:port" (names resolved by the proxy). For one request,
   * "" means none: straight to the server. */
  const char *url;
  const char *user;     /**< the proxy's credentials; NULL: none (or the
                             URL's userinfo). Never in a message */
  const char *password; /**< with user; NULL: empty */
  /** Hosts reached directly, comma-separated: a name matches itself and
   * its subdomains, an address itself, "*" every host. NULL: none. With
   * such a list a refused connection is -ECONNREFUSED, whichever end
   * refused it. */
  const char *no_proxy;
} actio_http_proxy;

/** The events of a request's attempt that a trace hook is told
 * (actio_http_opts.trace), in this order. DNS, CONNECT and TLS come
 * together, when a new connection is ready and the request is about to be
 * sent on it (each with its own time), once per connection opened: none
 * when a connection is reused, TLS only over https. After a redirect to
 * another host they come again for the new connection. */
typedef enum actio_http_trace_event {
  ACTIO_HTTP_TRACE_START,      /**< a worker started the attempt */
  ACTIO_HTTP_TRACE_DNS,        /**< the name was resolved (ms: when) */
  ACTIO_HTTP_TRACE_CONNECT,    /**< TCP (or the proxy) connected */
  ACTIO_HTTP_TRACE_TLS,        /**< the TLS handshake was done */
  ACTIO_HTTP_TRACE_FIRST_BYTE, /**< the response's first byte came */
  ACTIO_HTTP_TRACE_END         /**< the attempt ended (status, rc) */
} actio_http_trace_event;

/** What a trace hook is told; lent for the call. */
typedef struct actio_http_trace {
  actio_http_trace_event event; /**< what happened */
  void *tag;          /**< the request's actio_http_request.tag */
  const char *method; /**< the request's method */
  const char *url;    /**< the request's URL as given (not masked: for a
                           log, actio_http_redact_url) */
  int attempt;        /**< 1, then 2... with retries */
  double ms;          /**< since the attempt started */
  int reused;         /**< FIRST_BYTE and END: 1 when no connection was
                           opened for the attempt (no DNS, CONNECT, TLS) */
  long status;        /**< END: the last response's status, 0 if none */
  int rc;             /**< END: 0, or the code the attempt failed with */
} actio_http_trace;

/** A trace hook (actio_http_opts.trace): runs on an HTTP worker at each
 * event of each attempt, so it must be quick and must not wait. */
typedef void (*actio_http_trace_fn)(void *arg, const actio_http_trace *t);

/** One line of the request log (actio_http_opts.log), without a newline,
 * lent for the call, on an HTTP worker: "> METHOD URL" as an attempt
 * starts, "< METHOD URL: STATUS, N bytes in T ms" as it ends (", connection
 * reused" when no connection was opened), "! " and the error's message
 * when it fails; with log_headers also "> " and "< " before each header
 * line sent and received. Secrets are masked: URLs as
 * actio_http_redact_url writes them (a request line's target, Location and
 * Referer too), and "***" for the values of Authorization and
 * Proxy-Authorization (the scheme kept), Cookie, Set-Cookie and any header
 * whose name is a secret's as a query parameter's would be (X-Api-Key,
 * X-Auth-Token). */
typedef void (*actio_http_log_fn)(void *arg, const char *line);

/** Session defaults; zero means the default for every field. */
typedef struct actio_http_opts {
  unsigned workers;            /**< threads, one multi handle each; default 2 */
  size_t capacity;             /**< mailbox size: requests waiting for a
                                    worker's transfer slot; default 4096 */
  long max_connections;        /**< open connections per worker, and the
                                    transfers it runs at once; default 64.
                                    The requests beyond wait in the mailbox
                                    (capacity, fail_when_full) */
  long max_host_connections;   /**< per host and worker; default no limit */
  long connect_timeout_ms;     /**< default 10 s */
  long timeout_ms;             /**< one attempt, from its start; default 300 s
                                    (a future's deadline bounds all of it:
                                    queueing, attempts and retry waits) */
  long idle_timeout_ms;        /**< no byte for this long fails (checked about
                                    once a second); default none */
  int max_redirects;           /**< default 10; -1: do not follow redirects */
  size_t max_body;             /**< largest body kept in memory; default 64 MiB */
  const char *ca_file;         /**< PEM bundle to verify servers with */
  const char *ca_path;         /**< folder of hashed CA certificates */
  const char *client_cert;     /**< PEM client certificate, with client_key */
  const char *client_key;      /**< PEM private key of client_cert */
  const char *user_agent;      /**< default "actio/<version>" */
  int fail_when_full;          /**< 1: a full mailbox fails with ACTIO_EFULL */
  /** More query parameter names whose values messages mask, beside the
   * built-in ones (actio_http_redact_url): NULL-terminated, copied; a name
   * matches as a word at the end of a parameter's name or of a bracketed
   * key ("code": "code", "error_code", "user[code]"; not "zipcode"). NULL:
   * the built-in names only. */
  const char *const *secret_params;
  /** Every request's proxy unless it names its own; NULL: none. A proxy
   * that cannot be reached or refuses a request fails it with
   * ACTIO_EPROXY, one that refuses its credentials (a 407, a SOCKS
   * rejection) with ACTIO_EPROXYAUTH; the message names the proxy. */
  const actio_http_proxy *proxy;
  /** 1: with no proxy set, use those named in the environment (http_proxy,
   * HTTPS_PROXY, ALL_PROXY, NO_PROXY), as curl does. 0 (default): they
   * are ignored. */
  int proxy_from_env;
  /** 1: keep cookies in a jar of the actor's, shared by its requests (and
   * workers): a Set-Cookie is stored and sent back where it belongs
   * (domain, path, secure, expiry), as curl's cookie engine does. See
   * actio_http_cookies_get and the calls after it. 0 (default): none. */
  int cookies;
  actio_http_trace_fn trace;   /**< NULL (default): no tracing */
  void *trace_arg;             /**< passed to trace; must outlive the actor */
  actio_http_log_fn log;       /**< the request log; NULL (default): none */
  void *log_arg;               /**< passed to log; must outlive the actor */
  int log_headers;             /**< 1: the log shows headers too (libcurl's
                                    verbose mode: slower) */
} actio_http_opts;

/** Spawns an HTTP actor in `rt` (opts may be NULL; strings are copied).
 * Returns 0, ACTIO_EINVAL (a proxy as actio_http_send refuses one), ACTIO_ENOMEM, a libcurl set-up failure as
 * ACTIO_ETRANSFER, or an actor spawn error (actio_actor_spawn). Any
 * thread. */
int actio_http_spawn(actio_runtime *rt, const actio_http_opts *opts,
                     actio_actor **out);

/** actio_http_spawn as a supervisor's child start (actio/supervisor.h): arg
 * is the actio_http_opts * (or NULL), borrowed for the supervisor's life. */
int actio_http_child(actio_runtime *rt, void *opts, actio_actor **out);

/** Receives a streamed response body, chunk by chunk, on an HTTP worker
 * (valid during the call). To apply backpressure set *ready to a future (a
 * reference the transfer takes): the transfer pauses until it completes,
 * without holding the worker. A negative return fails the request with
 * that code. */
typedef int (*actio_http_chunk_fn)(void *arg, const void *data, size_t len,
                                   actio_future **ready);

/** Produces a request body as it is sent (actio_http_request.upload), on
 * an HTTP worker: writes up to cap bytes at buf (valid during the call),
 * sets *len and returns 0; *len 0 ends the body. With nothing ready yet,
 * set *ready to a future (a reference the transfer takes) and *len to 0:
 * the upload pauses, without holding the worker, until it completes, then
 * this is called again (a failed future fails the request with its code).
 * A negative return fails the request with that code, the message saying
 * the upload callback failed. */
typedef int (*actio_http_upload_fn)(void *arg, void *buf, size_t cap,
                                    size_t *len, actio_future **ready);

/** A name and a value: a query parameter (actio_http_url_build) or a
 * form field (actio_http_request.form). */
typedef struct actio_http_param {
  const char *name;  /**< not encoded: any bytes */
  const char *value; /**< not encoded: any bytes; "" is empty */
} actio_http_param;

/** Writes into *out (malloc'd; the caller frees it with free) `base` with
 * the n params appended to its query in order, after any query it has,
 * each name and value percent-encoded (all but A-Z a-z 0-9 - . _ ~, so
 * '&', '=', '#', '+' and spaces arrive as given); a fragment stays last.
 * Returns 0, ACTIO_EINVAL (base or out NULL, params NULL with n > 0, a
 * name or value NULL), ACTIO_EURL (base is no URL, or has no host),
 * ACTIO_ESCHEME (not http or https) or ACTIO_ENOMEM, *out untouched on
 * error. Thread-safe; needs no actor. */
int actio_http_url_build(const char *base, const actio_http_param *params,
                         size_t n, char **out);

/** One part of a multipart/form-data body (actio_http_request.parts):
 * a value, or a file streamed from disk. */
typedef struct actio_http_part {
  const char *name;         /**< the field's name; required */
  const void *data;         /**< a value, copied at the call (NULL with
                                 data_len 0: empty) */
  size_t data_len;          /**< bytes of data */
  const char *file;         /**< or a file's path, instead of data: opened
                                 when each attempt starts and read as the
                                 upload goes, never loaded whole. Missing
                                 or unreadable then, the request fails with
                                 the negated errno; cut short while it is
                                 sent, with -EIO; the message names the
                                 file and the part */
  const char *filename;     /**< the file name the server is told; default
                                 the file's last path segment (none for a
                                 value) */
  const char *content_type; /**< default: none for a value (text/plain
                                 implied), application/octet-stream for a
                                 file */
} actio_http_part;

/** How a request authenticates (actio_http_auth.type). */
typedef enum actio_http_auth_type {
  ACTIO_HTTP_AUTH_NONE = 0,
  ACTIO_HTTP_AUTH_BASIC,  /**< user and password, sent at once */
  ACTIO_HTTP_AUTH_BEARER, /**< "Authorization: Bearer <token>" */
  ACTIO_HTTP_AUTH_DIGEST  /**< user and password, answering the server's
                               challenge (a second round trip) */
} actio_http_auth_type;

/** Credentials for one request (actio_http_request.auth), copied at the
 * call. They go to the URL's host and port only: never after a redirect to
 * another one (where a caller's own Authorization header is dropped too),
 * and never into a message. No CR or LF anywhere, no ':' in user. */
typedef struct actio_http_auth {
  actio_http_auth_type type; /**< NONE: as if auth were NULL */
  const char *user;     /**< basic and digest: required */
  const char *password; /**< basic and digest: NULL is empty */
  const char *token;    /**< bearer: required */
} actio_http_auth;

/** One request. Zero fields take the session's defaults. */
typedef struct actio_http_request {
  const char *method;           /**< GET (default), HEAD, POST, PUT, PATCH,
                                     DELETE, or another token */
  const char *url;              /**< http:// or https://; required (with
                                     parameters: actio_http_url_build) */
  const char *const *headers;   /**< "Name: value" strings, NULL-terminated;
                                     a CR or LF in one is refused */
  const void *body;             /**< request body, copied; may be NULL */
  size_t body_len;              /**< bytes of body */
  /** This request's limits, as the session's of the same names. @{ */
  long timeout_ms, connect_timeout_ms, idle_timeout_ms;
  /** @} */
  int max_redirects;            /**< 0: the session's; -1: do not follow */
  size_t max_body;              /**< 0: the session's */
  /** Retries, off by default: up to `retries` more attempts after a
   * connection failure, a dropped response, or a 429, 502, 503 or 504, with
   * exponential backoff from retry_backoff_ms (default 200) and jitter,
   * waiting at least as long as a Retry-After header asks, never past the
   * future's deadline. Only idempotent methods (GET, HEAD, PUT, DELETE,
   * OPTIONS) unless retry_any_method is set. */
  int retries;
  int retry_any_method;         /**< 1: retry any method, POST too */
  long retry_backoff_ms;        /**< the first pause; default 200 */
  /** Where the body goes instead of memory (then body is empty and
   * body_len counts what was delivered; max_body does not apply):
   * to a callback, with backpressure. */
  actio_http_chunk_fn on_chunk;
  void *chunk_arg;              /**< passed to on_chunk; must live until the
                                     future completes */
  const char *save_to;          /**< or to this file (when on_chunk is NULL),
                                     replaced once the body is complete as
                                     by an ACTIO_WRITE_ATOMIC file write, but
                                     not fsynced; what a process killed
                                     meanwhile leaves: see actio_file_write */
  /** A body of form fields instead of `body`: nform names and values,
   * sent application/x-www-form-urlencoded (that Content-Type unless the
   * headers give one). The method defaults to POST. */
  const actio_http_param *form;
  size_t nform;                 /**< fields in form */
  /** Or a multipart/form-data body of nparts parts (libcurl sets the
   * Content-Type with its boundary). The method defaults to POST. */
  const actio_http_part *parts;
  size_t nparts;                /**< parts in parts */
  const actio_http_auth *auth;  /**< NULL: none (or the URL's userinfo) */
  const actio_http_proxy *proxy; /**< NULL: the actor's */
  /** Or a body made as it is sent, by this callback, so that a body larger
   * than memory is never held (the method defaults to POST). It is called
   * as libcurl's upload buffer empties (16 KiB at a time or less) and may
   * pause the upload (actio_http_upload_fn). Its body is sent once: the
   * request is not retried, and a redirect that would send it again (307,
   * 308) fails it with ACTIO_ETRANSFER (digest auth works: libcurl sends
   * no body before the challenge is answered). */
  actio_http_upload_fn upload;
  void *upload_arg;             /**< passed to upload; must live until the
                                     future completes */
  /** The bytes upload gives, sent as Content-Length (ending short of them
   * fails the request with -EIO; it is not asked for more). 0: unknown,
   * sent chunked (HTTP/1.1) or as it comes (HTTP/2). */
  int64_t upload_len;
  void *tag;                    /**< handed to the trace hook as is */
  /** Or a body read from this file as it is sent (pread, a buffer at a
   * time, never loaded whole), its size at the start of each attempt the
   * Content-Length; the method defaults to POST. Missing or unreadable,
   * the request fails with the negated errno; cut short while it is sent,
   * with -EIO; the message names the file. Sent again from its start for
   * a redirect, an auth round or a retry. */
  const char *body_file;
} actio_http_request;

/** The value of a request's future, freed with it. */
typedef struct actio_http_response {
  long status;            /**< 200, 404, ... */
  const char *url;        /**< the effective URL, after redirects */
  int http_version;       /**< 10, 11, 20 or 30 */
  const char *body;       /**< NUL-terminated (not counted in body_len) */
  size_t body_len;        /**< bytes of body */
  /** Milliseconds from the start of the request to: name resolved,
   * connected, TLS handshake done, first byte, complete. @{ */
  double dns_ms, connect_ms, tls_ms, first_byte_ms, total_ms;
  /** @} */
  int redirects;          /**< redirects followed */
  int new_connections;    /**< connections opened for it (0: one was reused) */
  int attempts;           /**< tries it took (1 without retries) */
} actio_http_response;

/** Frees a response taken out of its future with actio_future_take. NULL is
 * accepted. Any thread, once nothing reads it. */
void actio_http_response_free(actio_http_response *r);

/** Sends a request; *out's value is an actio_http_response *. The request
 * is copied (its strings, headers and body): the caller may free it at once.
 * Returns 0, or ACTIO_EINVAL (no URL, not an HTTP actor, a method that is
 * not an HTTP token, body_len without a body, a header with CR or LF in
 * it, more than one of body, form, parts, upload and body_file, a form
 * field or part without a name, a part with both data and file,
 * upload_len below 0 or without upload, an empty body_file, auth without
 * what its type needs or with CR or LF, a proxy without a URL or of another scheme
 * than http, https, socks5 and socks5h), ACTIO_ENOMEM, ACTIO_ECLOSED,
 * ACTIO_EFULL, and makes no future. Thread-safe. The future's deadline
 * (actio_future_set_deadline) bounds the whole request, time in the queue
 * included; cancelling the future removes the transfer at once. */
int actio_http_send(actio_actor *http, const actio_http_request *req,
                    actio_future **out);

/** Sends a request as actio_http_send does, and makes *head too, which
 * completes as soon as the final response's status and headers are in
 * (after redirects, auth rounds and retries), before its body: its value
 * an actio_http_response with an empty body (body_len 0) and the timings
 * so far, freed with it. The body then goes where req says (memory,
 * on_chunk with its backpressure, save_to), and *out completes when it
 * ends, as with actio_http_send. To stop the body, cancel *out: the
 * transfer ends at once, *out fails with ACTIO_ECANCELED, and its HTTP/1
 * connection is closed, never reused (an HTTP/2 stream is reset). A
 * request that fails before its headers fails *head too, with *out's
 * code and message. Returns as actio_http_send (ACTIO_EINVAL also for
 * head NULL), and on error makes neither future. Thread-safe. */
int actio_http_send_head(actio_actor *http, const actio_http_request *req,
                         actio_future **head, actio_future **out);

/** GET url: actio_http_send with only a URL; returns as it does.
 * Thread-safe. */
int actio_http_get(actio_actor *http, const char *url, actio_future **out);

/** The first value of header `name` (case-insensitive, borrowed from the
 * response), or NULL. */
const char *actio_http_header(const actio_http_response *r, const char *name);
/** How many times header `name` came, and the i-th value (repeats are kept,
 * in order, such as Set-Cookie; NULL past the last). @{ */
size_t actio_http_header_count(const actio_http_response *r, const char *name);
const char *actio_http_header_nth(const actio_http_response *r,
                                  const char *name, size_t i);
/** @} */

/** Writes `url` into out (size bytes, NUL-terminated when size > 0) as fit
 * for a log or a stored error, as the messages of `http`'s requests name
 * URLs: "***" in place of the userinfo's password (or of a user name with no
 * password: often a token), and of the value of every query or fragment
 * parameter whose name is a secret's. The URL is read past spaces or
 * control bytes before it, and a '/' in a password does not hide it
 * ("admin:2024/pw@host" shows "admin:***@host"; an '@' after a ':' and
 * before any '?' or '#' ends what is masked, unless it starts a path
 * segment: "/users/@me" is kept). A name is judged percent-decoded,
 * without case, and in parts: before any '[' and each key between
 * brackets ("user[password]", "token[]"). A part is a secret's when it
 * holds password, passwd, passphrase, secret or credential; or ends with
 * token, apikey, pwd, signature, sig, auth, authorization, session,
 * sessionid, sessid or jwt, or one of those and an 's' ("accesstoken",
 * "PHPSESSID", "tokens"); or ends with key(s) or one of `http`'s
 * opts.secret_params as a word: all of it, after a byte that is no letter
 * or digit or a lower-to-upper case change, and for key after access,
 * private, signing, client, master, shared, encryption, auth or api
 * ("api_key", "apiKey", "privatekey"; not "monkey"). Control bytes become
 * %XX. `http` may be NULL (the built-in names only). A response's own URL
 * is never masked: this call is for texts meant for people.
 * Returns the length of the whole text, as snprintf (when it is size or
 * more, out holds a cut copy ending in "..."), or ACTIO_EINVAL (url NULL,
 * out NULL with size > 0, `http` not an HTTP actor). Thread-safe. */
int actio_http_redact_url(const actio_actor *http, const char *url, char *out,
                          size_t size);

/** One cookie of an actor's jar (actio_http_opts.cookies). */
typedef struct actio_http_cookie {
  const char *domain; /**< "example.com" (or an address); required */
  const char *path;   /**< NULL: "/" */
  const char *name;   /**< required, not empty */
  const char *value;  /**< NULL: empty */
  int64_t expires;    /**< Unix time; 0: a session cookie */
  int subdomains;     /**< 1: sent to domain's subdomains too */
  int secure;         /**< 1: sent over https only */
  int http_only;      /**< the HttpOnly mark, kept and saved */
} actio_http_cookie;

/** The cookies in `http`'s jar: *out an array of *n (malloc'd, strings
 * included; free it with actio_http_cookies_free). Returns 0, ACTIO_EINVAL
 * (not an HTTP actor, or one without opts.cookies; a NULL argument) or
 * ACTIO_ENOMEM. Thread-safe. */
int actio_http_cookies_get(actio_actor *http, actio_http_cookie **out, size_t *n);
/** Frees what actio_http_cookies_get gave. NULL accepted. */
void actio_http_cookies_free(actio_http_cookie *c, size_t n);
/** Puts a cookie into `http`'s jar (copied), replacing one of the same
 * domain, path and name; its requests send it from now on. Returns 0,
 * ACTIO_EINVAL (as actio_http_cookies_get, no domain or name, or a tab,
 * CR or LF in a string, a ';' or '=' in name) or ACTIO_ENOMEM.
 * Thread-safe. */
int actio_http_cookie_set(actio_actor *http, const actio_http_cookie *c);
/** Empties `http`'s jar. Returns 0 or ACTIO_EINVAL. Thread-safe. */
int actio_http_cookies_clear(actio_actor *http);
/** Adds the cookies of a file in the Netscape format (what curl -c and
 * actio_http_cookies_save write; lines that are no cookie are skipped) to
 * `http`'s jar. Returns 0, ACTIO_EINVAL (as actio_http_cookies_get, or
 * path NULL), the negated errno of a file that cannot be read (-ENOENT,
 * -EACCES, -EISDIR...), or ACTIO_ENOMEM. Thread-safe. */
int actio_http_cookies_load(actio_actor *http, const char *path);
/** Writes `http`'s jar to path in the Netscape format, mode 0600 (cookies
 * are credentials), replacing the file at once: readers see the old file
 * or the new one whole. Returns 0, ACTIO_EINVAL (as
 * actio_http_cookies_load), the negated errno of a file or folder that
 * cannot be written (-ENOENT, -EACCES, -EISDIR...), or ACTIO_ENOMEM.
 * Thread-safe. */
int actio_http_cookies_save(actio_actor *http, const char *path);

/** ACTIO_EHTTP for a status of 400 or more, else 0 (aiohttp's
 * raise_for_status). */
int actio_http_raise_for_status(const actio_http_response *r);

/** @} */

#ifdef __cplusplus
}
#endif
#endif /* ACTIO_HTTP_H */

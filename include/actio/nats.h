/** @file actio/nats.h
 * Remote actors over NATS: serve a local actor on a subject, ask a remote
 * subject and get a future (request/reply, at most once). */
#ifndef ACTIO_NATS_H
#define ACTIO_NATS_H

#include <stddef.h>
#include <stdint.h>

#include "actio/actor.h"
#include "actio/future.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup nats NATS
 * One NATS connection is one actor (actio_nats_spawn), so that a supervisor
 * can own it; the connection is cnats's (the NATS C client), which also
 * reconnects. Over it:
 *
 *  - actio_nats_serve makes a local actor answer requests on a subject,
 *    under a queue group, so that N processes share the load: each request
 *    is an actio_ask to the actor, whose future's value (or error) goes
 *    back to the requester;
 *  - actio_nats_ask sends a request and returns a future: a remote request
 *    is a future like any other (gather, map, deadlines, cancellation).
 *
 * All replies come back on one subscription per connection, a wildcard
 * inbox with a token per request: no thread and no subscription per
 * request. A pending request costs one record (104 bytes and its subject,
 * in one block; with retries, its data and headers too) beside its future.
 * Pending requests are bounded (max_pending): beyond, asks fail with
 * ACTIO_EFULL. Each attempt has a timeout; the runtime's timer (no thread
 * per connection) rings the connection's actor when the first attempt is
 * due, whose handler ends the attempts that timed out and sends the
 * retries.
 *
 * Errors travel: a served actor that fails its reply with code C and a
 * message makes the asker's future fail with C and that message (in the
 * headers Actio-Error and Actio-Message of an empty reply). Requests with
 * no subscriber fail at once with ACTIO_ENORESPONDERS.
 *
 * Disconnects: cnats reconnects (max_reconnect, reconnect_wait_ms), and
 * renews the subscriptions. What happens to requests meanwhile is
 * opts.disconnect: ACTIO_NATS_WAIT (the default) keeps the pending ones
 * and buffers new ones in cnats's reconnect buffer (8 MiB; past it a send
 * fails with ACTIO_ENATS), each bounded by its attempt timeout and its
 * future's deadline; ACTIO_NATS_FAIL fails the pending ones with
 * ACTIO_ENATS when the connection drops and refuses new ones until it is
 * back. Disconnects and reconnects are counted (actio_nats_stats) and
 * reported to the connection's supervisor's monitor
 * (ACTIO_SUP_CHILD_DISCONNECTED, ACTIO_SUP_CHILD_RECONNECTED); a
 * connection closed for good (reconnects ran out) fails the actor
 * (actio_actor_fail with ACTIO_ENATS), which its supervisor restarts.
 * @{ */

/** What requests do while the connection is down (actio_nats_opts). */
typedef enum actio_nats_disconnect_policy {
  ACTIO_NATS_WAIT = 0, /**< keep them, within their timeouts and deadlines */
  ACTIO_NATS_FAIL = 1, /**< fail them with ACTIO_ENATS, refuse new ones */
} actio_nats_disconnect_policy;

/** A connection's settings; zero means the default for every field.
 * Strings are copied. Secrets (password, token, the URL's userinfo) never
 * appear in a message: URLs are shown with them as "***". */
typedef struct actio_nats_opts {
  const char *url;            /**< "nats://host:port", several comma-separated;
                                   user:password@ or token@ allowed; required */
  const char *name;           /**< the connection's name on the server;
                                   default "actio" */
  const char *user;           /**< user and password, or ... */
  const char *password;       /**< the user's password */
  const char *token;          /**< ... a token, or ... */
  const char *nkey_public;    /**< ... an NKey: the user's public key and ... */
  const char *nkey_seed_file; /**< ... the file holding its seed */
  /** TLS, with the server's certificate verified (against ca_file, or the
   * system's store) unless tls_skip_verify. A "tls://" URL or a ca_file
   * turns it on too. @{ */
  int tls;
  const char *ca_file;
  const char *client_cert;    /**< PEM client certificate, with client_key */
  const char *client_key;
  int tls_skip_verify;        /**< 1: no verification (tests only) */
  /** @} */
  long connect_timeout_ms;    /**< per server and attempt; default 2000 */
  int max_reconnect;          /**< reconnect attempts before giving up;
                                   default 60; -1: for ever */
  long reconnect_wait_ms;     /**< between attempts on one server; default 500 */
  long timeout_ms;            /**< an attempt's default timeout: 10 s */
  size_t max_pending;         /**< requests pending at once; default 4096 */
  actio_nats_disconnect_policy disconnect; /**< default ACTIO_NATS_WAIT */
  /** Where a failed connect says why (secrets masked), NUL-terminated;
   * NULL: nowhere. Written by the thread that spawns. */
  char *errbuf;
  size_t errbuf_size;         /**< errbuf's bytes */
} actio_nats_opts;

/** Connects (blocking, within connect_timeout_ms per server) and spawns the
 * connection's actor in rt. Returns 0; ACTIO_EINVAL (no URL, a bad option);
 * ACTIO_ENATSAUTH (credentials refused); ACTIO_ETLS (the TLS handshake or
 * the server's certificate); ACTIO_ENATS (no server reached); ACTIO_ENOMEM;
 * or an actor spawn error. opts->errbuf then tells why. Any thread. */
int actio_nats_spawn(actio_runtime *rt, const actio_nats_opts *opts,
                     actio_actor **out);

/** actio_nats_spawn as a supervisor's child start (actio/supervisor.h): arg
 * is the actio_nats_opts * (borrowed for the supervisor's life). */
int actio_nats_child(actio_runtime *rt, void *opts, actio_actor **out);

/** A message: a request a served actor receives, a reply an asker gets,
 * or one built to be sent back (actio_nats_msg_create). Bytes and headers. */
typedef struct actio_nats_msg actio_nats_msg;

/** The data of m (borrowed from it; *len its bytes; len may be NULL). */
const void *actio_nats_msg_data(const actio_nats_msg *m, size_t *len);
/** The first value of header `key` (borrowed), or NULL. */
const char *actio_nats_msg_header(const actio_nats_msg *m, const char *key);
/** The subject it came on (a reply: the inbox), or NULL for one built. */
const char *actio_nats_msg_subject(const actio_nats_msg *m);

/** Builds a reply of len bytes of data (copied; data may be NULL when len
 * is 0). Returns 0, ACTIO_EINVAL or ACTIO_ENOMEM. */
int actio_nats_msg_create(actio_nats_msg **out, const void *data, size_t len);
/** Adds header key: value to a message built by actio_nats_msg_create
 * (both copied; printable, no line breaks, key without ':'). Returns 0,
 * ACTIO_EINVAL, ACTIO_ENOMEM. */
int actio_nats_msg_add_header(actio_nats_msg *m, const char *key, const char *value);
/** Frees a message built, or taken out of a future. NULL accepted. */
void actio_nats_msg_free(actio_nats_msg *m);
/** actio_nats_msg_free as a future's free function. */
void actio_nats_msg_free_fn(void *m);

/** Makes a request's value from its reply: set *value (and *free_fn, may be
 * NULL) or return a negative code (the request fails with it). Runs on the
 * connection's reply thread; the reply is borrowed for the call. */
typedef int (*actio_nats_decode_reply_fn)(void *arg, const actio_nats_msg *reply,
                                          void **value, actio_free_fn *free_fn);

/** One remote request. */
typedef struct actio_nats_request {
  const char *subject;        /**< where to; no wildcards; required */
  const void *data;           /**< the bytes (borrowed for the call, copied
                                   when retries are on) */
  size_t len;                 /**< bytes of data */
  /** Headers as key, value, key, value, ..., NULL (borrowed for the call,
   * copied when retries are on); NULL: none. */
  const char *const *headers;
  long timeout_ms;            /**< each attempt; 0: the connection's */
  /** The request is idempotent: up to `retries` more attempts after a
   * timeout or no responders, after a pause from retry_backoff_ms (default
   * 50) doubling each time, with jitter, never past the future's deadline.
   * 0: one attempt. */
  int retries;
  long retry_backoff_ms;      /**< the first pause; default 50 */
  actio_nats_decode_reply_fn decode; /**< NULL: the value is the reply, an
                                          actio_nats_msg * */
  void *decode_arg;           /**< passed to decode */
} actio_nats_request;

/** Sends req on connection `nats` and sets *out, the caller's reference,
 * to its future: its value is the reply (an actio_nats_msg *, freed with
 * the future, or decode's value). It fails with the served actor's own
 * code and message; ACTIO_ENORESPONDERS (nobody serves the subject);
 * ACTIO_ETIMEDOUT (no reply within the attempt's timeout, after the
 * retries); ACTIO_ENATS (the connection lost, policy ACTIO_NATS_FAIL, or
 * closed); ACTIO_ECANCELED. Its deadline (actio_future_set_deadline, or an
 * actio_map_within group's) bounds all of it; cancelling it removes the
 * pending request at once, and a reply that comes later is dropped and
 * counted (late_replies). Returns 0, or, with no future made: ACTIO_EINVAL
 * (NULL arguments, not a NATS connection, headers that are not pairs or
 * not printable), ACTIO_ESUBJECT (an invalid subject: empty, with spaces,
 * an empty token, a wildcard), ACTIO_EPAYLOAD (over the server's
 * max_payload: refused before sending), ACTIO_EFULL (max_pending requests
 * pending), ACTIO_ENATS (disconnected under ACTIO_NATS_FAIL, closed, or
 * cnats's reconnect buffer full), ACTIO_ECLOSED (the actor stopped),
 * ACTIO_ENOMEM. Thread-safe. */
int actio_nats_ask(actio_actor *nats, const actio_nats_request *req,
                   actio_future **out);

/** A subject served by a local actor (actio_nats_serve). */
typedef struct actio_nats_service actio_nats_service;

/** The local actor's message made from a request: set *msg (then the
 * actor's, as any message it is sent) or return a negative code (the
 * requester's future fails with it). Runs on the service's thread; the
 * request is borrowed for the call. */
typedef int (*actio_nats_decode_fn)(void *arg, const actio_nats_msg *req, void **msg);
/** The reply made from the actor's value: set *reply (built with
 * actio_nats_msg_create; NULL for an empty reply) or return a negative
 * code (sent back as the error). The value stays the future's. */
typedef int (*actio_nats_encode_fn)(void *arg, void *value, actio_nats_msg **reply);

/** How a subject is served; zero means the default for every field. */
typedef struct actio_nats_serve_opts {
  const char *queue;          /**< queue group: one member answers each
                                   request; NULL: every subscriber does */
  /** Without decode, the actor's message is the request itself, an
   * actio_nats_msg * the service owns until the reply completes (the
   * behavior's drop must leave it alone). */
  actio_nats_decode_fn decode;
  /** Without encode, the reply future's value is an actio_nats_msg *
   * (built; NULL for an empty reply). */
  actio_nats_encode_fn encode;
  void *codec_arg;            /**< passed to decode and encode */
} actio_nats_serve_opts;

/** Serves `actor` on `subject` (wildcards allowed) over connection `nats`:
 * each request is asked of the actor (a full mailbox refuses it: the
 * requester gets ACTIO_EFULL), and its future's value or error is sent
 * back. `actor` must stay valid while served. Served through a
 * supervised connection's address (actio_sup_lookup), the subject is
 * served again by each instance its supervisor starts after a restart,
 * once that restart is done; through an instance, it ends with the
 * instance. Returns 0 (*out is the caller's: actio_nats_unserve),
 * ACTIO_EINVAL, ACTIO_ESUBJECT, ACTIO_ENATS, ACTIO_ECLOSED (the
 * connection's actor stopped), ACTIO_ENOMEM. Thread-safe. */
int actio_nats_serve(actio_actor *nats, const char *subject, actio_actor *actor,
                     const actio_nats_serve_opts *opts, actio_nats_service **out);

/** Stops serving: no request is taken once it returned (those taken are
 * still answered), and frees the handle. A connection's stop ends its
 * services first; the handle is still to be freed here. NULL accepted.
 * Not from the served actor's handler. */
void actio_nats_unserve(actio_nats_service *s);

/** A connection's counters (actio_nats_stats_get). */
typedef struct actio_nats_stats {
  uint64_t pending;       /**< requests waiting for a reply now */
  uint64_t sent;          /**< attempts published, retries included */
  uint64_t replies;       /**< replies that completed a request */
  uint64_t retries;       /**< attempts after the first */
  uint64_t timeouts;      /**< attempts that timed out */
  uint64_t no_responders; /**< attempts nobody served */
  uint64_t late_replies;  /**< replies dropped: the request was over */
  uint64_t served;        /**< requests taken by this connection's services */
  uint64_t served_errors; /**< of them, answered with an error */
  uint64_t disconnects;   /**< connection lost */
  uint64_t reconnects;    /**< connection back */
  int connected;          /**< 1 now */
} actio_nats_stats;

/** Fills *out (zeros for an actor that is no NATS connection). Any
 * thread. */
void actio_nats_stats_get(actio_actor *nats, actio_nats_stats *out);

/** @} */

#ifdef __cplusplus
}
#endif
#endif /* ACTIO_NATS_H */

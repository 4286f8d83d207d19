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
 * connection's actor in rt. Returns 0; ACTIO_EINVAL (no URL, a bad option,
 * no valid seed in nkey_seed_file); -errno (nkey_seed_file cannot be read:
 * -ENOENT, -EACCES);
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

/** @defgroup jobs JetStream work queues
 * Jobs published to a stream kept by the NATS servers (JetStream), each
 * taken by one worker of many, in any process, at least once.
 *
 *  - actio_nats_stream_ensure makes a work-queue stream (each job kept
 *    until one worker acknowledges it), replicated on a cluster's servers;
 *  - actio_nats_job_publish sends a job, with a message id for
 *    de-duplication, and returns a future that the stream's ack completes;
 *  - actio_nats_worker_create pulls jobs in batches from a durable
 *    consumer that workers share, and asks a local actor to do each: its
 *    future's success acknowledges the job, its failure NAKs it with a
 *    delay, and past max_deliveries the job goes to a dead-letter subject.
 *
 * All of it on a connection made by actio_nats_spawn.
 * @{ */

/** A stream's settings (actio_nats_stream_ensure); zero means the
 * default for every field. Strings are borrowed for the call. */
typedef struct actio_nats_stream_opts {
  const char *name;        /**< the stream's name (no '.', '*', '>' or
                                spaces); required */
  /** The subjects it keeps, comma-separated, wildcards allowed (as
   * "jobs.>"); required. */
  const char *subjects;
  int replicas;            /**< copies kept, on as many servers of a
                                cluster (1 to 5); default 1 */
  int memory;              /**< 1: kept in memory; default on disk */
  /** 1: kept by limits, not as a work queue: every message stays (within
   * max_msgs) however often it is read, as a dead-letter stream wants. */
  int limits;
  int64_t max_msgs;        /**< messages kept at most; past it a publish
                                fails (ACTIO_EJETSTREAM); default 1000000 */
  int64_t max_bytes;       /**< bytes kept at most; default 1 GiB */
  long duplicate_window_ms;/**< how long a job's id is remembered;
                                default 120000 */
  long timeout_ms;         /**< the round trip; default the connection's */
} actio_nats_stream_opts;

/** Makes the stream unless one of that name is there (then it is left as
 * it is). Blocks for a round trip or two. Returns 0; ACTIO_EINVAL (NULL
 * or bad options); ACTIO_ESUBJECT (an invalid subject); ACTIO_EJETSTREAM
 * (JetStream is off on the server, or refused: errbuf, if given, says
 * why); ACTIO_ETIMEDOUT; ACTIO_ENATS; ACTIO_ECLOSED (the connection's
 * actor stopped); ACTIO_ENOMEM. Thread-safe. */
int actio_nats_stream_ensure(actio_actor *nats, const actio_nats_stream_opts *opts,
                             char *errbuf, size_t errbuf_size);

/** A stream's counts (actio_nats_stream_info). */
typedef struct actio_nats_stream_info {
  uint64_t msgs;           /**< kept now (a work queue: not yet acked) */
  uint64_t bytes;          /**< their bytes */
  uint64_t first_seq;      /**< the oldest kept's sequence */
  uint64_t last_seq;       /**< the last stored's */
  int64_t consumers;       /**< durable consumers (the workers' queues) */
} actio_nats_stream_info;

/** Fills *out with stream `name`'s counts. Blocks for a round trip.
 * Returns 0, ACTIO_ENOSTREAM (none of that name), ACTIO_EINVAL,
 * ACTIO_ETIMEDOUT, ACTIO_ENATS, ACTIO_EJETSTREAM, ACTIO_ECLOSED.
 * Thread-safe. */
int actio_nats_stream_info_get(actio_actor *nats, const char *name,
                               actio_nats_stream_info *out);

/** Deletes stream `name` and what it keeps. Blocks for a round trip.
 * Returns 0, ACTIO_ENOSTREAM, ACTIO_EINVAL, ACTIO_ETIMEDOUT, ACTIO_ENATS,
 * ACTIO_EJETSTREAM, ACTIO_ECLOSED. Thread-safe. */
int actio_nats_stream_delete(actio_actor *nats, const char *name);

/** One job to publish. */
typedef struct actio_nats_job {
  const char *subject;     /**< a subject a stream keeps; no wildcards;
                                required */
  const void *data;        /**< the bytes (copied at the call) */
  size_t len;              /**< bytes of data */
  /** Its id for de-duplication (the Nats-Msg-Id header): published again
   * with the same id within the stream's duplicate window, it is stored
   * once (the future succeeds all the same). NULL: none. */
  const char *id;
  /** Headers as key, value, ..., NULL (copied at the call); NULL: none. */
  const char *const *headers;
  long timeout_ms;         /**< the stream's ack; 0: the connection's */
} actio_nats_job;

/** Publishes job on connection `nats` without waiting, and sets *out, the
 * caller's reference, to a future the stream's ack completes: its value
 * is the job's stream sequence, as (void *)(uintptr_t) (a duplicate's:
 * the first's). It fails with ACTIO_ENOSTREAM (no stream keeps the
 * subject, or, in a cluster, none answers for it now: while its leader
 * is elected again after a server is lost), ACTIO_ETIMEDOUT (no ack within timeout_ms: the job may or may
 * not be stored; publish it again with the same id), ACTIO_EJETSTREAM
 * (the stream refused it, as when full; the server's text is the
 * message), ACTIO_ECLOSED (the connection stopped first). Cancelling the
 * future does not take the job back. Returns 0, or, with no future made:
 * ACTIO_EINVAL, ACTIO_ESUBJECT, ACTIO_EPAYLOAD (over max_payload),
 * ACTIO_EFULL (max_pending publishes waiting for their ack, the
 * connection's bound, apart from its requests'), ACTIO_ENATS,
 * ACTIO_ECLOSED, ACTIO_ENOMEM. Thread-safe. */
int actio_nats_job_publish(actio_actor *nats, const actio_nats_job *job, actio_future **out);

/** The number of times the job m was delivered, this one included (1 the
 * first time); 0 for a message that is no job. Effects that must happen
 * once can test it (and the job's id header, Nats-Msg-Id). */
uint64_t actio_nats_msg_deliveries(const actio_nats_msg *m);
/** The job's sequence in its stream; 0 for a message that is no job. */
uint64_t actio_nats_msg_sequence(const actio_nats_msg *m);

/** A worker pulling jobs for a local actor (actio_nats_worker_create). */
typedef struct actio_nats_worker actio_nats_worker;

/** A worker's settings; zero means the default for every field. Strings
 * are copied. */
typedef struct actio_nats_worker_opts {
  const char *stream;      /**< the stream; required */
  /** The durable consumer the workers of this queue share: made with the
   * settings below by the first worker, and taken as it is by the
   * others; each job goes to one of them. Required. */
  const char *consumer;
  const char *subject;     /**< only jobs on this subject (wildcards
                                allowed); NULL: all the stream keeps */
  int batch;               /**< jobs asked for per pull, at most; default 32 */
  /** Jobs given to the actor and not yet done, at most: the worker pulls
   * a batch only once there is room for it, and none meanwhile (the
   * actor's mailbox must hold as many). Default 2 * batch; a batch over
   * it is cut to it. */
  int max_in_flight;
  int max_deliveries;      /**< deliveries before a job is dead-lettered;
                                default 5 */
  /** Where a job goes past max_deliveries, published to JetStream (a
   * stream must keep the subject; actio_nats_stream_opts.limits suits
   * it), with its data and headers and Actio-Job-Subject,
   * Actio-Job-Deliveries, and the last failure's Actio-Error and
   * Actio-Message; once stored there the job is terminated. If that
   * publish fails, the job is NAKed again. NULL: the job is terminated
   * (and counted, dead). */
  const char *dead_letter;
  long ack_wait_ms;        /**< a new consumer's ack wait: an unacked job
                                is delivered again after it; default 30000 */
  /** A failed job's delay before its next delivery: nak_delay_ms doubled
   * for each delivery so far, at most 60 s, jittered. Default 1000. */
  long nak_delay_ms;
  /** How often a job still running tells the server so (an in-progress
   * ack, which starts its ack wait again); default ack_wait_ms / 3. */
  long progress_ms;
  long job_timeout_ms;     /**< each job's deadline, as its future's
                                (a job past it is NAKed); 0: none */
  long fetch_wait_ms;      /**< how long a pull waits for jobs, and so
                                how long a stop may wait; default 500 */
  actio_nats_decode_fn decode; /**< NULL: the actor's message is the job,
                                    an actio_nats_msg * */
  void *decode_arg;        /**< passed to decode */
} actio_nats_worker_opts;

/** Starts a worker for `actor` on connection `nats`: it makes the durable
 * consumer unless it is there, and pulls jobs on a thread of its own.
 * Each job is asked of the actor (actio_ask: its message is the job, an
 * actio_nats_msg * the worker owns until the ask's future completes, or
 * decode's). The future's success acks the job; its failure NAKs it with
 * a delay, or past max_deliveries dead-letters it; a job delivered more
 * than max_deliveries times (its worker crashed, say) is dead-lettered
 * unasked. Returns 0 (*out the caller's: stop, then destroy),
 * ACTIO_EINVAL, ACTIO_ESUBJECT, ACTIO_ENOSTREAM, ACTIO_EJETSTREAM (errbuf,
 * if given, says why), ACTIO_ETIMEDOUT, ACTIO_ENATS, ACTIO_ECLOSED,
 * ACTIO_ENOMEM. `actor` must outlive the worker. cnats's reconnects carry
 * a worker over (its pulls fail, and are tried again, while the
 * connection is down). Made through a supervised connection's address
 * (actio_sup_lookup), it follows a restart too: once a pull fails, it
 * pulls from the instance the supervisor put there, on the same durable
 * consumer; the jobs it had taken are acked through that instance (one
 * whose ack was lost is delivered again after ack_wait). Made on an
 * instance, it keeps to it. Thread-safe. */
int actio_nats_worker_create(actio_actor *nats, actio_actor *actor,
                             const actio_nats_worker_opts *opts, actio_nats_worker **out,
                             char *errbuf, size_t errbuf_size);

/** Stops pulling and drains: returns once every job the worker took has
 * ended acked, NAKed (and so delivered again, to any worker) or
 * dead-lettered, each as its future completes (bounded by job_timeout_ms
 * if set). No job is left to wait for its ack wait, except one the server
 * sent as the last pull expired (rare: it comes again after ack_wait).
 * Returns 0 (ACTIO_EINVAL for NULL); a second call does nothing. Not from
 * the actor's handler. */
int actio_nats_worker_stop(actio_nats_worker *w);

/** Frees the worker. Without a stop first, it is a crash as the server
 * sees it: it stops pulling, cancels the futures of the jobs in flight,
 * and acks none: the server delivers them again after the ack wait. A
 * handler still holding such a job must not read its message once its
 * future is cancelled. NULL accepted. Not from the actor's handler. */
void actio_nats_worker_destroy(actio_nats_worker *w);

/** A worker's counters (actio_nats_worker_stats_get). */
typedef struct actio_nats_worker_stats {
  uint64_t fetched;        /**< jobs taken */
  uint64_t redelivered;    /**< of them, delivered before (deliveries > 1) */
  uint64_t acked;          /**< done */
  uint64_t naked;          /**< failed, to be delivered again */
  uint64_t dead;           /**< dead-lettered (or terminated) */
  uint64_t progress;       /**< in-progress acks sent */
  uint64_t in_flight;      /**< now */
} actio_nats_worker_stats;

/** Fills *out (zeros for NULL). Any thread. */
void actio_nats_worker_stats_get(actio_nats_worker *w, actio_nats_worker_stats *out);

/** @} */

#ifdef __cplusplus
}
#endif
#endif /* ACTIO_NATS_H */

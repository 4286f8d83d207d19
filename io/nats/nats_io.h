/* nats_io.h: cnats (the NATS C client) behind io's own types: a connection
 * and its events, publishing, subscriptions, received messages, the headers
 * an error travels in, subjects and the URLs messages may show. No natsMsg
 * or natsConnection leaves io/nats. */
#ifndef ACTIO_IO_NATS_IO_H
#define ACTIO_IO_NATS_IO_H

#include <stddef.h>
#include <stdint.h>

typedef struct actio__nats_conn actio__nats_conn;
typedef struct actio__nats_sub actio__nats_sub;
/* A received message: cnats's, owned by whoever it was handed to until
 * actio__nats_msg_free. */
typedef struct actio__nats_msg actio__nats_msg;

/* What cnats tells of its connection, on a thread of its own. */
typedef enum actio__nats_event {
  ACTIO__NATS_DISCONNECTED = 1, /* lost: cnats reconnects */
  ACTIO__NATS_RECONNECTED = 2,  /* back (subscriptions renewed by cnats) */
  ACTIO__NATS_CLOSED = 3,       /* for good: reconnects ran out, or closed */
} actio__nats_event;
typedef void (*actio__nats_event_fn)(void *arg, actio__nats_event ev);

/* How to connect. Strings are borrowed for the call. */
typedef struct actio__nats_conf {
  const char *url;              /* one URL or several, comma-separated */
  const char *name;             /* shown by the server */
  const char *user, *password;  /* or in the URL's userinfo */
  const char *token;
  const char *nkey_public, *nkey_seed_file; /* NKey: both */
  const char *ca_file;          /* TLS: verify the server against it */
  const char *cert_file, *key_file; /* TLS client certificate */
  int tls;                      /* 1: TLS required */
  int tls_skip_verify;          /* 1: no verification (tests only) */
  int64_t connect_timeout_ms;
  int max_reconnect;            /* -1: for ever */
  int64_t reconnect_wait_ms;
  actio__nats_event_fn on_event;
  void *event_arg;
} actio__nats_conf;

/* Connects (blocking, up to the connect timeout per server). Returns 0, or
 * ACTIO_ENATSAUTH (credentials refused), ACTIO_ETLS, ACTIO_ENATS (no server,
 * or another failure), ACTIO_EINVAL (a bad option, or no valid seed in the
 * NKey seed file), -errno (the seed file cannot be read), ACTIO_ENOMEM; err
 * then holds why, naming the URL with its secrets masked (never a password
 * or a token). */
int actio__nats_connect(const actio__nats_conf *conf, actio__nats_conn **out,
                        char *err, size_t errlen);
/* Signs the server's nonce (NUL-ended) with the NKey seed in seed_file, a
 * seed file or a .creds file (its first line starting "SU"); the seed is
 * wiped once used. *sig (malloc'd, *len bytes) is the caller's. Returns 0;
 * ACTIO_EAGAIN: a signature that this libnats, older than 3.8, would not
 * send (its first byte is 0; nats.c #705): connect again, for a new nonce;
 * ACTIO_EINVAL: no valid seed there; ACTIO_ENOMEM; or -errno, the file
 * unreadable. Any thread. */
int actio__nats_sign_nonce(const char *seed_file, const char *nonce, unsigned char **sig,
                           int *len);
/* Closes the connection: no message or event callback runs once it
 * returned (cnats's subscription threads are done). Idempotent; not from
 * one of cnats's callbacks. */
void actio__nats_close(actio__nats_conn *c);
/* Closes if need be, then frees. NULL accepted. */
void actio__nats_destroy(actio__nats_conn *c);

/* The server's max_payload: the largest message (headers and data). */
int64_t actio__nats_max_payload(actio__nats_conn *c);

/* Publishes data (len bytes) to subject, with reply-to `reply` (NULL:
 * none) and headers (key, value, key, value, ..., NULL; NULL: none).
 * While reconnecting, cnats buffers it. Returns 0, ACTIO_EPAYLOAD,
 * ACTIO_ENATS (closed, or the reconnect buffer full), ACTIO_ENOMEM. Any
 * thread. */
int actio__nats_publish(actio__nats_conn *c, const char *subject, const char *reply,
                        const char *const *headers, const void *data, size_t len);
/* Publishes an error reply: empty, with the code and text in headers
 * (the text on one line). */
int actio__nats_publish_error(actio__nats_conn *c, const char *reply, int code,
                              const char *text);

/* Called with each message, on the subscription's own cnats thread; m is
 * the callee's (actio__nats_msg_free). */
typedef void (*actio__nats_msg_fn)(void *arg, actio__nats_msg *m);
/* Subscribes fn to subject (wildcards allowed), in queue group `queue`
 * (NULL: none). done(arg) runs once, after the last fn call, once the
 * subscription has ended (actio__nats_unsubscribe or the connection
 * closed). Returns once the server has it (a round trip, within the
 * connect timeout). Returns 0, ACTIO_ENATS, ACTIO_ENOMEM; on failure done
 * never runs. */
int actio__nats_subscribe(actio__nats_conn *c, const char *subject, const char *queue,
                          actio__nats_msg_fn fn, void (*done)(void *arg), void *arg,
                          actio__nats_sub **out);
/* Ends the subscription; done follows, on cnats's thread, once no call of
 * fn can come, and the handle is freed then. */
void actio__nats_unsubscribe(actio__nats_sub *s);

/* A received message's parts, borrowed from it. @{ */
const char *actio__nats_msg_subject(const actio__nats_msg *m);
const char *actio__nats_msg_reply(const actio__nats_msg *m); /* NULL: none */
const void *actio__nats_msg_data(const actio__nats_msg *m);
size_t actio__nats_msg_len(const actio__nats_msg *m);
/* The first value of header key, or NULL. */
const char *actio__nats_msg_header(actio__nats_msg *m, const char *key);
/* 1: the server's "no responders" status (503) for a request. */
int actio__nats_msg_no_responders(actio__nats_msg *m);
/* An error reply's code (< 0) and text (borrowed; may be NULL); 0 when m
 * is no error reply. */
int actio__nats_msg_error(actio__nats_msg *m, const char **text);
/* @} */
void actio__nats_msg_free(actio__nats_msg *m);

/* A fresh inbox prefix, "_INBOX.<unique>", into out. Returns 0 or
 * ACTIO_ENOMEM. */
int actio__nats_inbox(char *out, size_t len);

/* 1 when s is a valid subject to publish to (wildcards 0) or subscribe to
 * (wildcards 1): tokens of printable bytes without spaces, none empty;
 * with wildcards, '*' as a whole token and '>' as the whole last one. */
int actio__nats_subject_valid(const char *s, int wildcards);

/* url (one or several, comma-separated) into out (size bytes,
 * NUL-terminated) with the userinfo's password, or a user name standing
 * alone (a token), as "***". */
void actio__nats_redact_url(const char *url, char *out, size_t size);

#endif

/* nats_io.c: the only file that calls cnats: connecting, publishing,
 * subscribing, reading received messages, error headers, subjects. */
#include <errno.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "actio/error.h"
#include "io/nats/nats_io.h"
#include "io/nats/nats_conn.h"

/* The headers an error reply carries: its actio code and its text. */
#define HDR_CODE "Actio-Error"
#define HDR_TEXT "Actio-Message"

struct actio__nats_sub {
  actio__nats_conn *c;
  natsSubscription *sub;
  actio__nats_msg_fn fn;
  void (*done)(void *arg);
  void *arg;
  /* Two holders: the handle, until actio__nats_unsubscribe, and cnats's
   * dispatch, until on_complete (which a closed connection brings too).
   * Acq_rel: whoever drops the last frees s after the other's reads. */
  _Atomic int refs;
  int failed;  /* the subscribe failed: done is not called (set before the
                  unsubscribe that brings on_complete) */
};

/* A natsMsg travels as an actio__nats_msg: the same pointer, never
 * dereferenced outside this file. */
static natsMsg *raw(const actio__nats_msg *m) { return (natsMsg *)(void *)m; }

int actio__nats_code_of(natsStatus s) {
  switch (s) {
  case NATS_OK:
    return 0;
  case NATS_NO_MEMORY:
    return ACTIO_ENOMEM;
  case NATS_CONNECTION_AUTH_FAILED:
  case NATS_NOT_PERMITTED:
    return ACTIO_ENATSAUTH;
  case NATS_SSL_ERROR:
  case NATS_SECURE_CONNECTION_WANTED:
  case NATS_SECURE_CONNECTION_REQUIRED:
    return ACTIO_ETLS;
  case NATS_MAX_PAYLOAD:
    return ACTIO_EPAYLOAD;
  case NATS_INVALID_ARG:
  case NATS_INVALID_SUBJECT:
  case NATS_INVALID_QUEUE_NAME:
  case NATS_ADDRESS_MISSING:
    return ACTIO_EINVAL;
  default:
    return ACTIO_ENATS;
  }
}

static void on_disconnected(natsConnection *nc, void *arg) {
  (void)nc;
  actio__nats_conn *c = arg;
  if (c->on_event != NULL)
    c->on_event(c->event_arg, ACTIO__NATS_DISCONNECTED);
}

static void on_reconnected(natsConnection *nc, void *arg) {
  (void)nc;
  actio__nats_conn *c = arg;
  if (c->on_event != NULL)
    c->on_event(c->event_arg, ACTIO__NATS_RECONNECTED);
}

static void on_closed(natsConnection *nc, void *arg) {
  (void)nc;
  actio__nats_conn *c = arg;
  if (c->on_event != NULL)
    c->on_event(c->event_arg, ACTIO__NATS_CLOSED);
  pthread_mutex_lock(&c->mu);
  c->closed_seen = 1;
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
}

/* Every occurrence of secret in s becomes "***". */
static void mask(char *s, const char *secret) {
  size_t n = secret != NULL ? strlen(secret) : 0;
  if (n == 0)
    return;
  for (char *p = strstr(s, secret); p != NULL; p = strstr(p + 3, secret)) {
    memmove(p + 3, p + n, strlen(p + n) + 1);
    memcpy(p, "***", 3);
  }
}

/* The NKey seed in the file at path: a seed file, or a .creds file (the
 * first line that starts "SU", as cnats reads it). Copies it to seed (NUL
 * ended) and wipes what it read. Returns 0, -errno (it cannot be read),
 * ACTIO_EINVAL (no seed there). */
static int read_seed(const char *path, char *seed, size_t size) {
  FILE *f = fopen(path, "re");
  if (f == NULL)
    return errno == EINVAL ? ACTIO_EINVAL : -errno;
  /* stdio's buffer is ours, to be wiped: its own would go back to the heap
   * with the file's text in it. */
  char buf[512], line[256];
  (void)setvbuf(f, buf, _IOFBF, sizeof buf);
  int rc = ACTIO_EINVAL, at_start = 1;
  while (rc != 0 && fgets(line, sizeof line, f) != NULL) {
    /* A line longer than the buffer (a .creds file's JWT) comes in pieces:
     * only its first piece starts a line ("SU" may begin any other). */
    int starts = at_start;
    at_start = strchr(line, '\n') != NULL;
    if (!starts)
      continue;
    const char *p = line + strspn(line, " \t");
    size_t n = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567");
    if (p[0] == 'S' && p[1] == 'U' && n < size) {
      memcpy(seed, p, n);
      seed[n] = '\0';
      rc = 0;
    }
  }
  fclose(f);
  explicit_bzero(buf, sizeof buf);
  explicit_bzero(line, sizeof line);
  return rc;
}

/* What read_seed's or actio__nats_sign_nonce's rc says about a seed file,
 * for an error text (actio_strerror: an actio code too, and thread-safe,
 * as the signature runs on cnats's reconnect thread). */
static const char *seed_problem(int rc) {
  return rc == ACTIO_EINVAL ? "no valid seed in it (a line \"SU...\")" : actio_strerror(rc);
}

int actio__nats_sign_nonce(const char *seed_file, const char *nonce, unsigned char **sig,
                           int *len) {
  char seed[128];
  *sig = NULL;
  *len = 0;
  int rc = read_seed(seed_file, seed, sizeof seed);
  if (rc != 0)
    return rc;
  /* nats_Sign's decoding tables are set up by nats_Open (which a connect
   * calls too; idempotent). */
  natsStatus s = nats_Open(-1);
  if (s == NATS_OK)
    s = nats_Sign(seed, nonce, sig, len);
  explicit_bzero(seed, sizeof seed);
  if (s != NATS_OK)
    return actio__nats_code_of(s) == ACTIO_ENOMEM ? ACTIO_ENOMEM : ACTIO_EINVAL;
  /* cnats before 3.8 sends no signature at all when its first byte is 0
   * (its base64 encoder took that for an empty input: nats.c #705), and
   * the server refuses the connection: 1 nonce in 256. */
  if (nats_GetVersionNumber() < 0x030800 && *len > 0 && (*sig)[0] == 0) {
    free(*sig);
    *sig = NULL;
    *len = 0;
    return ACTIO_EAGAIN;
  }
  return 0;
}

/* cnats's signature handler: signs the server's nonce, on the thread that
 * connects or reconnects. A signature cnats would drop fails this attempt
 * (counted in c->unsendable_sigs), and the next one brings a new nonce. */
static natsStatus sign_nonce(char **why, unsigned char **sig, int *len, const char *nonce,
                             void *arg) {
  actio__nats_conn *c = arg;
  int rc = actio__nats_sign_nonce(c->seed_file, nonce, sig, len);
  if (rc == 0)
    return NATS_OK;
  if (rc == ACTIO_EAGAIN)
    atomic_fetch_add_explicit(&c->unsendable_sigs, 1, memory_order_relaxed);
  char text[160];
  snprintf(text, sizeof text, "NKey seed file: %s",
           rc == ACTIO_EAGAIN ? "a signature this libnats cannot send (nats.c #705)"
                              : seed_problem(rc));
  *why = strdup(text);
  return rc == ACTIO_ENOMEM ? NATS_NO_MEMORY : NATS_ERR;
}

/* The servers: one URL, or several comma-separated, which cnats 3.4's
 * SetURL takes for one (and then reaches none): split here. */
static natsStatus set_servers(natsOptions *o, const char *url) {
  if (strchr(url, ',') == NULL)
    return natsOptions_SetURL(o, url);
  char *copy = strdup(url);
  if (copy == NULL)
    return NATS_NO_MEMORY;
  const char *servers[64];
  int n = 0;
  for (char *save = NULL, *t = strtok_r(copy, ",", &save); t != NULL && n < 64;
       t = strtok_r(NULL, ",", &save)) {
    while (*t == ' ')
      t++;
    if (*t != '\0')
      servers[n++] = t;
  }
  natsStatus s = n > 0 ? natsOptions_SetServers(o, servers, n) : NATS_ADDRESS_MISSING;
  free(copy);
  return s;
}

static natsStatus set_options(natsOptions *o, const actio__nats_conf *conf,
                              actio__nats_conn *c) {
  natsStatus s = set_servers(o, conf->url);
  if (s == NATS_OK && conf->name != NULL)
    s = natsOptions_SetName(o, conf->name);
  if (s == NATS_OK && (conf->user != NULL || conf->password != NULL))
    s = natsOptions_SetUserInfo(o, conf->user, conf->password);
  if (s == NATS_OK && conf->token != NULL)
    s = natsOptions_SetToken(o, conf->token);
  if (s == NATS_OK && conf->nkey_seed_file != NULL)
    s = natsOptions_SetNKey(o, conf->nkey_public, sign_nonce, c);
  if (s == NATS_OK && (conf->tls || conf->ca_file != NULL || conf->cert_file != NULL))
    s = natsOptions_SetSecure(o, true);
  if (s == NATS_OK && conf->ca_file != NULL)
    s = natsOptions_LoadCATrustedCertificates(o, conf->ca_file);
  if (s == NATS_OK && conf->cert_file != NULL)
    s = natsOptions_LoadCertificatesChain(o, conf->cert_file, conf->key_file);
  if (s == NATS_OK && conf->tls_skip_verify)
    s = natsOptions_SkipServerVerification(o, true);
  if (s == NATS_OK)
    s = natsOptions_SetTimeout(o, conf->connect_timeout_ms);
  if (s == NATS_OK)
    s = natsOptions_SetMaxReconnect(o, conf->max_reconnect);
  if (s == NATS_OK)
    s = natsOptions_SetReconnectWait(o, conf->reconnect_wait_ms);
  if (s == NATS_OK)
    s = natsOptions_SetDisconnectedCB(o, on_disconnected, c);
  if (s == NATS_OK)
    s = natsOptions_SetReconnectedCB(o, on_reconnected, c);
  if (s == NATS_OK)
    s = natsOptions_SetClosedCB(o, on_closed, c);
  return s;
}

/* Why no server could be reached, when it is that no socket can be opened
 * (cnats says only "No server available"), else "". */
static const char *no_socket_why(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0) {
    close(fd);
    return "";
  }
  return errno == EMFILE ? " (Too many open files)"
         : errno == ENFILE ? " (Too many open files in system)"
                           : "";
}

int actio__nats_connect(const actio__nats_conf *conf, actio__nats_conn **out,
                        char *err, size_t errlen) {
  char url[512];
  actio__nats_redact_url(conf->url, url, sizeof url);
  /* A seed file that holds no valid seed is the caller's mistake, told as
   * such before any connect (cnats would say only that the connect failed):
   * a signature made with it proves the seed (its base32, its checksum). */
  if (conf->nkey_seed_file != NULL) {
    unsigned char *sig;
    int len;
    int rc = actio__nats_sign_nonce(conf->nkey_seed_file, "actio", &sig, &len);
    free(sig);
    if (rc == ACTIO_EAGAIN)
      rc = 0; /* a valid seed: only this signature would not be sent */
    if (rc != 0) {
      snprintf(err, errlen, "NATS %s: NKey seed file %s: %s", url, conf->nkey_seed_file,
               seed_problem(rc));
      return rc;
    }
  }
  actio__nats_conn *c = calloc(1, sizeof *c);
  if (c == NULL) {
    snprintf(err, errlen, "NATS %s: out of memory", url);
    return ACTIO_ENOMEM;
  }
  c->on_event = conf->on_event;
  c->flush_ms = conf->connect_timeout_ms;
  c->event_arg = conf->event_arg;
  pthread_mutex_init(&c->mu, NULL);
  pthread_cond_init(&c->cv, NULL);
  natsOptions *o = NULL;
  natsStatus s = NATS_NO_MEMORY;
  if (conf->nkey_seed_file == NULL || (c->seed_file = strdup(conf->nkey_seed_file)) != NULL)
    s = natsOptions_Create(&o);
  const char *stage = "options";
  if (s == NATS_OK)
    s = set_options(o, conf, c);
  if (s == NATS_OK) {
    stage = "connect";
    /* A signature cnats could not send failed the attempt (sign_nonce):
     * connect again, for a new nonce. An attempt fails so 1 time in 256. */
    for (int tries = 0; tries < 8; tries++) {
      unsigned dropped = atomic_load_explicit(&c->unsendable_sigs, memory_order_relaxed);
      s = natsConnection_Connect(&c->nc, o);
      if (s == NATS_OK ||
          atomic_load_explicit(&c->unsendable_sigs, memory_order_relaxed) == dropped)
        break;
    }
  }
  natsOptions_Destroy(o);
  if (s == NATS_OK) {
    *out = c;
    return 0;
  }
  int rc = actio__nats_code_of(s);
  const char *why = nats_GetLastError(NULL);
  char text[256];
  snprintf(text, sizeof text, "%s%s", why != NULL && *why ? why : natsStatus_GetText(s),
           s == NATS_NO_SERVER ? no_socket_why() : "");
  mask(text, conf->password);
  mask(text, conf->token);
  snprintf(err, errlen, "NATS %s to %s failed: %s%s", stage, url, text,
           rc == ACTIO_ENATSAUTH ? " (credentials refused)" : "");
  pthread_cond_destroy(&c->cv);
  pthread_mutex_destroy(&c->mu);
  free(c->seed_file);
  free(c);
  return rc;
}

void actio__nats_close(actio__nats_conn *c) {
  if (c == NULL || c->closing)
    return;
  c->closing = 1;
  natsConnection_Close(c->nc);
  /* cnats runs the closed callback on its own thread, maybe after Close
   * returned: wait for it, so that nothing calls back into a freed c. */
  pthread_mutex_lock(&c->mu);
  while (!c->closed_seen)
    pthread_cond_wait(&c->cv, &c->mu);
  pthread_mutex_unlock(&c->mu);
}

void actio__nats_destroy(actio__nats_conn *c) {
  if (c == NULL)
    return;
  actio__nats_close(c);
  natsConnection_Destroy(c->nc);
  pthread_cond_destroy(&c->cv);
  pthread_mutex_destroy(&c->mu);
  free(c->seed_file);
  free(c);
}

int64_t actio__nats_max_payload(actio__nats_conn *c) {
  return natsConnection_GetMaxPayload(c->nc);
}

int actio__nats_publish(actio__nats_conn *c, const char *subject, const char *reply,
                        const char *const *headers, const void *data, size_t len) {
  if (len > INT32_MAX)
    return ACTIO_EPAYLOAD;
  natsStatus s;
  if (headers == NULL || headers[0] == NULL) {
    s = reply != NULL ? natsConnection_PublishRequest(c->nc, subject, reply, data, (int)len)
                      : natsConnection_Publish(c->nc, subject, data, (int)len);
  } else {
    natsMsg *m = NULL;
    s = natsMsg_Create(&m, subject, reply, data, (int)len);
    for (size_t i = 0; s == NATS_OK && headers[i] != NULL && headers[i + 1] != NULL; i += 2)
      s = natsMsgHeader_Add(m, headers[i], headers[i + 1]);
    if (s == NATS_OK)
      s = natsConnection_PublishMsg(c->nc, m);
    natsMsg_Destroy(m);
  }
  return actio__nats_code_of(s);
}

int actio__nats_publish_error(actio__nats_conn *c, const char *reply, int code,
                              const char *text) {
  char num[16], line[512];
  snprintf(num, sizeof num, "%d", code);
  /* A header value is one line of printable bytes. */
  snprintf(line, sizeof line, "%s", text != NULL ? text : actio_strerror(code));
  for (char *p = line; *p; p++)
    if ((unsigned char)*p < 0x20 || *p == 0x7f)
      *p = ' ';
  const char *h[] = {HDR_CODE, num, HDR_TEXT, line, NULL};
  return actio__nats_publish(c, reply, NULL, h, NULL, 0);
}

static void on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *arg) {
  (void)nc;
  (void)sub;
  actio__nats_sub *s = arg;
  s->fn(s->arg, (actio__nats_msg *)(void *)m);
}

static void sub_unref(actio__nats_sub *s) {
  if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
    free(s);
}

/* cnats's last word on a subscription: its message callback has returned
 * for good, so s, which that callback reads, may go from now on. */
static void on_complete(void *arg) {
  actio__nats_sub *s = arg;
  if (!s->failed)
    s->done(s->arg);
  sub_unref(s);
}

int actio__nats_subscribe(actio__nats_conn *c, const char *subject, const char *queue,
                          actio__nats_msg_fn fn, void (*done)(void *arg), void *arg,
                          actio__nats_sub **out) {
  actio__nats_sub *s = calloc(1, sizeof *s);
  if (s == NULL)
    return ACTIO_ENOMEM;
  s->c = c;
  s->fn = fn;
  s->done = done;
  s->arg = arg;
  atomic_init(&s->refs, 2);
  natsStatus st = queue != NULL
                      ? natsConnection_QueueSubscribe(&s->sub, c->nc, subject, queue, on_msg, s)
                      : natsConnection_Subscribe(&s->sub, c->nc, subject, on_msg, s);
  if (st != NATS_OK) {
    free(s);
    return actio__nats_code_of(st) == ACTIO_EINVAL ? ACTIO_EINVAL : ACTIO_ENATS;
  }
  st = natsSubscription_SetOnCompleteCB(s->sub, on_complete, s);
  if (st != NATS_OK) {
    /* Closed already (the connection went): a message call may still be
     * on its way out, reading s, and nothing will say when it is done:
     * s is left to it, not freed. */
    natsSubscription_Unsubscribe(s->sub);
    natsSubscription_Destroy(s->sub);
    return ACTIO_ENATS;
  }
  /* No limit of cnats's own on what waits for the callback: the actors
   * above bound their work themselves. Then a round trip: the server has
   * the subscription once this returns, so a request sent next from
   * anywhere finds it. */
  st = natsSubscription_SetPendingLimits(s->sub, -1, -1);
  if (st == NATS_OK)
    st = natsConnection_FlushTimeout(c->nc, c->flush_ms);
  if (st != NATS_OK) {
    s->failed = 1;
    actio__nats_unsubscribe(s);
    return ACTIO_ENATS;
  }
  *out = s;
  return 0;
}

void actio__nats_sub_end(actio__nats_conn *c, natsSubscription *sub) {
  (void)natsSubscription_Unsubscribe(sub);
  if (nats_GetVersionNumber() < 0x030500 &&
      natsConnection_Status(c->nc) == NATS_CONN_STATUS_CONNECTED)
    (void)natsConnection_FlushTimeout(c->nc, c->flush_ms);
  natsSubscription_Destroy(sub);
}

void actio__nats_unsubscribe(actio__nats_sub *s) {
  if (s == NULL)
    return;
  actio__nats_sub_end(s->c, s->sub);
  sub_unref(s);
}

const char *actio__nats_msg_subject(const actio__nats_msg *m) {
  return natsMsg_GetSubject(raw(m));
}

const char *actio__nats_msg_reply(const actio__nats_msg *m) {
  const char *r = natsMsg_GetReply(raw(m));
  return r != NULL && *r ? r : NULL;
}

const void *actio__nats_msg_data(const actio__nats_msg *m) {
  return natsMsg_GetData(raw(m));
}

size_t actio__nats_msg_len(const actio__nats_msg *m) {
  int n = natsMsg_GetDataLength(raw(m));
  return n > 0 ? (size_t)n : 0;
}

const char *actio__nats_msg_header(actio__nats_msg *m, const char *key) {
  const char *v = NULL;
  return natsMsgHeader_Get(raw(m), key, &v) == NATS_OK ? v : NULL;
}

int actio__nats_msg_no_responders(actio__nats_msg *m) {
  return natsMsg_IsNoResponders(raw(m));
}

int actio__nats_msg_error(actio__nats_msg *m, const char **text) {
  const char *num = actio__nats_msg_header(m, HDR_CODE);
  if (num == NULL)
    return 0;
  long code = strtol(num, NULL, 10);
  *text = actio__nats_msg_header(m, HDR_TEXT);
  /* Not a code at all: a failure all the same, of the transport's. */
  return code < 0 && code > -100000 ? (int)code : ACTIO_ENATS;
}

void actio__nats_msg_free(actio__nats_msg *m) { natsMsg_Destroy(raw(m)); }

int actio__nats_inbox(char *out, size_t len) {
  natsInbox *in = NULL;
  if (natsInbox_Create(&in) != NATS_OK)
    return ACTIO_ENOMEM;
  int n = snprintf(out, len, "%s", in);
  natsInbox_Destroy(in);
  return n > 0 && (size_t)n < len ? 0 : ACTIO_ENOMEM;
}

int actio__nats_subject_valid(const char *s, int wildcards) {
  if (s == NULL || *s == '\0')
    return 0;
  const char *tok = s;
  for (const char *p = s;; p++) {
    if (*p == '.' || *p == '\0') {
      size_t n = (size_t)(p - tok);
      if (n == 0)
        return 0; /* an empty token: "a..b", ".a", "a." */
      if (n == 1 && (*tok == '*' || *tok == '>')) {
        if (!wildcards || (*tok == '>' && *p != '\0'))
          return 0;
      } else {
        for (const char *q = tok; q < p; q++)
          if (*q == '*' || *q == '>')
            return 0; /* a wildcard inside a token */
      }
      if (*p == '\0')
        return 1;
      tok = p + 1;
    } else if ((unsigned char)*p <= ' ' || *p == 0x7f) {
      return 0; /* spaces and control bytes end a subject in the protocol */
    }
  }
}

void actio__nats_redact_url(const char *url, char *out, size_t size) {
  if (size == 0)
    return;
  size_t o = 0;
  const char *p = url != NULL ? url : "";
  while (*p) {
    const char *end = strchr(p, ',');
    if (end == NULL)
      end = p + strlen(p);
    const char *host = p, *scheme = strstr(p, "://");
    if (scheme != NULL && scheme < end)
      host = scheme + 3;
    const char *at = NULL;
    for (const char *q = host; q < end && *q != '/'; q++)
      if (*q == '@')
        at = q; /* the last '@' before the path ends the userinfo */
    const char *keep_to = host; /* copy up to here, then mask */
    if (at != NULL) {
      const char *colon = memchr(host, ':', (size_t)(at - host));
      keep_to = colon != NULL ? colon + 1 : host;
    }
    for (const char *q = p; q < end && o + 1 < size; q++) {
      if (at != NULL && q == keep_to) {
        for (const char *m = "***"; *m && o + 1 < size; m++)
          out[o++] = *m;
        q = at - 1; /* resume at the '@' */
        continue;
      }
      out[o++] = *q;
    }
    p = end;
    if (*p == ',' && o + 1 < size)
      out[o++] = *p++;
    else if (*p == ',')
      p++;
  }
  out[o] = '\0';
}

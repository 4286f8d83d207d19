/* http_io.c: one libcurl multi handle per worker thread: transfers with
 * connection reuse, HTTP/2 multiplexing, limits, timeouts, redirects kept to
 * http and https, TLS verification, a body size limit (on the decoded
 * bytes), and errors mapped to actio's codes, multipart and file bodies
 * read from disk as they go, bodies from a source that may pause, the
 * headers told before the body, and auth.
 * Every libcurl call of the library is in io/http. */
#include "io/http/http_io.h"

#include <ctype.h>
#include <fcntl.h>
#include <stdarg.h>
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/debug.h"
#include "io/http/http_redact.h"

typedef struct file_src file_src;

struct actio__http_xfer {
  CURL *easy;
  actio__http_loop *loop;
  const actio__http_req *req; /* borrowed until free */
  struct curl_slist *headers;
  curl_mime *mime;        /* a multipart body, or NULL */
  const actio__http_proxy *proxy; /* the one in use, or NULL */
  int upload_rc;          /* a file or the source failed: this code,
                             upload_err why */
  file_src *body_file;    /* the body read from a file, or NULL */
  long long sourced;      /* bytes the caller's source gave */
  int upload_wait;        /* the source paused the upload */
  int rewind_refused;     /* the source's body was asked for again */
  char *upload_err;
  actio__http_result res;
  size_t max_body;
  int too_big;
  int head_told;          /* on_head ran */
  int first_byte_told;    /* the trace saw the first byte */
  long conns_told;        /* new connections the trace was told of */
  int64_t start_ns;       /* when it was added to the loop */
  int encoded;            /* the response has a Content-Encoding: max_body
                             counts what libcurl decoded */
  int pause_next;         /* the sink asked to pause before the next chunk */
  int sink_rc;            /* a sink's error */
  int socket_errno;       /* why a socket could not be opened, or 0 */
  int watch_errno;        /* why its socket could not be watched, or 0 */
  size_t delivered;       /* bytes given to the sink */
  long status, retry_after_ms;
  long idle_ms;           /* 0: no idle limit */
  int idle_expired;
  curl_off_t last_dl, last_ul;
  int64_t last_activity_ns;
  int in_loop;
  actio__http_done_fn done;
  void *arg;
  char err[CURL_ERROR_SIZE];
  actio__http_xfer *prev, *next; /* in the loop's list */
};

struct actio__http_share {
  CURLSH *sh;
  int cookies;
  pthread_mutex_t locks[CURL_LOCK_DATA_LAST];
};

/* What the loop knows of a descriptor (fds[fd]). */
enum {
  FD_OURS = 1,   /* a connection's socket open_socket made, not yet closed */
  FD_IN_SET = 2, /* in the epoll set */
  FD_IN = 4,     /* registered for reading */
  FD_OUT = 8,    /* registered for writing */
  FD_WANTED = 16 /* libcurl waits on it (it said IN, OUT or both) */
};

enum { LOOP_EVENTS = 64 }; /* events taken from the kernel at once */

struct actio__http_loop {
  CURLM *multi;
  const actio__http_conf *conf;
  actio__http_share *share;
  actio__http_xfer *list; /* transfers in the multi handle */
  CURL **spare; /* easy handles kept for reuse */
  size_t nspare, spare_cap;
  int epfd;     /* libcurl's sockets (CURLMOPT_SOCKETFUNCTION) and wakefd */
  int wakefd;   /* an eventfd, edge-triggered: written by wakeup */
  unsigned char *fds; /* FD_* bits, by descriptor */
  size_t fds_cap;
  size_t idle_xfers; /* of the transfers in the loop, those with an idle limit */
  int sweep;    /* a transfer's socket could not be watched: sweep ends it */
  int nev;      /* events the last poll took, for the next run */
  struct epoll_event ev[LOOP_EVENTS];
};

/* ---- global and shared state ---- */

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void global_init(void) { global_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

int actio__http_global_init(void) {
  pthread_once(&global_once, global_init);
  return global_rc == CURLE_OK ? 0 : ACTIO_ETRANSFER;
}

size_t actio__http_head(const actio__http_conf *c, const char *method,
                        const char *url, char *out, size_t cap) {
  int n = snprintf(out, cap, "%.40s ", method);
  if (n < 0 || (size_t)n >= cap)
    return cap > 0 ? strlen(out) : 0;
  size_t u = actio__http_redact(url, strlen(url), c->secret_params, out + n, cap - (size_t)n);
  return (size_t)n + (u < cap - (size_t)n ? u : cap - (size_t)n - 1);
}

int actio__http_method_valid(const char *m) {
  if (m == NULL || *m == '\0')
    return 0;
  for (; *m; m++)
    if (!isalnum((unsigned char)*m) && strchr("!#$%&'*+-.^_`|~", *m) == NULL)
      return 0;
  return 1;
}

static void share_lock(CURL *h, curl_lock_data d, curl_lock_access a, void *p) {
  actio__http_share *s = p;
  (void)h;
  (void)a;
  pthread_mutex_lock(&s->locks[d]);
}

static void share_unlock(CURL *h, curl_lock_data d, void *p) {
  actio__http_share *s = p;
  (void)h;
  pthread_mutex_unlock(&s->locks[d]);
}

int actio__http_share_create(actio__http_share **out, int cookies) {
  actio__http_share *s = calloc(1, sizeof *s);
  if (s == NULL)
    return ACTIO_ENOMEM;
  for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
    pthread_mutex_init(&s->locks[i], NULL);
  s->sh = curl_share_init();
  if (s->sh == NULL) {
    actio__http_share_destroy(s);
    return ACTIO_ENOMEM;
  }
  curl_share_setopt(s->sh, CURLSHOPT_LOCKFUNC, share_lock);
  curl_share_setopt(s->sh, CURLSHOPT_UNLOCKFUNC, share_unlock);
  curl_share_setopt(s->sh, CURLSHOPT_USERDATA, s);
  curl_share_setopt(s->sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
  curl_share_setopt(s->sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  if (cookies)
    curl_share_setopt(s->sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_COOKIE);
  s->cookies = cookies;
  *out = s;
  return 0;
}

/* ---- the cookie jar ---- */

/* An easy handle on the share: the jar is reached through one. */
static CURL *jar_handle(actio__http_share *s) {
  ACTIO__ASSERT(s->cookies);
  CURL *e = curl_easy_init();
  if (e != NULL && curl_easy_setopt(e, CURLOPT_SHARE, s->sh) != CURLE_OK) {
    curl_easy_cleanup(e);
    e = NULL;
  }
  return e;
}

static int jar_command(actio__http_share *s, const char *what) {
  CURL *e = jar_handle(s);
  if (e == NULL)
    return ACTIO_ENOMEM;
  CURLcode cc = curl_easy_setopt(e, CURLOPT_COOKIELIST, what);
  curl_easy_cleanup(e);
  return cc == CURLE_OK ? 0 : ACTIO_ENOMEM;
}

int actio__http_cookie_add(actio__http_share *s, const char *line) {
  return jar_command(s, line);
}

void actio__http_cookie_clear(actio__http_share *s) { (void)jar_command(s, "ALL"); }

int actio__http_cookie_each(actio__http_share *s,
                            int (*fn)(void *arg, const char *line), void *arg) {
  CURL *e = jar_handle(s);
  struct curl_slist *list = NULL;
  if (e == NULL || curl_easy_getinfo(e, CURLINFO_COOKIELIST, &list) != CURLE_OK) {
    curl_easy_cleanup(e);
    return ACTIO_ENOMEM;
  }
  curl_easy_cleanup(e);
  int rc = 0;
  for (struct curl_slist *l = list; l != NULL && rc == 0; l = l->next)
    rc = fn(arg, l->data);
  curl_slist_free_all(list);
  return rc;
}

int actio__http_cookie_load(actio__http_share *s, const char *path) {
  FILE *f = fopen(path, "re");
  if (f == NULL)
    return -errno;
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  int rc = 0;
  errno = 0;
  while (rc == 0 && (n = getline(&line, &cap, f)) >= 0) {
    line[strcspn(line, "\r\n")] = '\0';
    /* curl skips what is no cookie; comments, but for HttpOnly's mark. */
    if (line[0] != '\0' && (line[0] != '#' || strncmp(line, "#HttpOnly_", 10) == 0))
      rc = actio__http_cookie_add(s, line);
  }
  if (rc == 0 && ferror(f)) /* EISDIR and EIO come here, not at fopen */
    rc = errno ? -errno : -EIO;
  free(line);
  fclose(f);
  return rc;
}

static int write_line(void *arg, const char *line) {
  return fprintf(arg, "%s\n", line) < 0 ? -errno : 0;
}

int actio__http_cookie_save(actio__http_share *s, const char *path) {
  size_t len = strlen(path);
  char *tmp = malloc(len + 8);
  if (tmp == NULL)
    return ACTIO_ENOMEM;
  memcpy(tmp, path, len);
  memcpy(tmp + len, ".XXXXXX", 8);
  int fd = mkostemp(tmp, O_CLOEXEC);
  if (fd < 0) {
    int rc = -errno;
    free(tmp);
    return rc;
  }
  FILE *f = fdopen(fd, "w");
  int rc = f != NULL ? 0 : -errno;
  if (rc == 0 && fputs("# Netscape HTTP Cookie File\n", f) < 0)
    rc = -errno;
  if (rc == 0)
    rc = actio__http_cookie_each(s, write_line, f);
  if (f != NULL && fclose(f) != 0 && rc == 0)
    rc = -errno;
  if (f == NULL)
    close(fd);
  if (rc == 0 && rename(tmp, path) != 0)
    rc = -errno;
  if (rc != 0)
    unlink(tmp);
  free(tmp);
  return rc;
}

void actio__http_share_destroy(actio__http_share *s) {
  if (s == NULL)
    return;
  if (s->sh != NULL)
    curl_share_cleanup(s->sh);
  for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
    pthread_mutex_destroy(&s->locks[i]);
  free(s);
}

/* ---- loops ---- */

/* The FD_* bits of fd, made room for: NULL when out of memory. */
static unsigned char *fd_bits(actio__http_loop *l, curl_socket_t fd) {
  if (fd < 0)
    return NULL;
  if ((size_t)fd >= l->fds_cap) {
    size_t cap = l->fds_cap ? l->fds_cap : 64;
    while (cap <= (size_t)fd)
      cap *= 2;
    unsigned char *f = realloc(l->fds, cap);
    if (f == NULL)
      return NULL;
    memset(f + l->fds_cap, 0, cap - l->fds_cap);
    l->fds = f;
    l->fds_cap = cap;
  }
  return &l->fds[fd];
}

/* Puts fd in the epoll set for `want` (FD_IN and/or FD_OUT), or takes it
 * out (0). *b says what the set holds and is updated. */
/* epoll_ctl on a socket's number, as the system call itself. The number
 * may no longer be the socket's: libcurl before 8.2 closes a socket that
 * failed to connect without telling, and an event may come for a number
 * already taken out. By then it may be another thread's descriptor, which
 * ThreadSanitizer takes epoll_ctl for a use of, racing that descriptor's
 * close; clang 14's TSan even crashes reporting it, when openat (which it
 * does not intercept) made the descriptor (pipeline_e2e and pipeline_chaos
 * under TSan, session 15). The set is the loop thread's alone, so TSan
 * misses no ordering by not seeing these calls. */
static int set_ctl(actio__http_loop *l, int op, curl_socket_t fd, struct epoll_event *ev) {
  return (int)syscall(SYS_epoll_ctl, l->epfd, op, fd, ev);
}

static int fd_register(actio__http_loop *l, curl_socket_t fd, unsigned char *b, int want) {
  int op;
  if (want == 0)
    op = EPOLL_CTL_DEL;
  else
    op = *b & FD_IN_SET ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
  struct epoll_event ev = {.events = (want & FD_IN ? EPOLLIN : 0u) |
                                     (want & FD_OUT ? EPOLLOUT : 0u),
                           .data.fd = fd};
  int rc = set_ctl(l, op, fd, op == EPOLL_CTL_DEL ? NULL : &ev);
  /* A descriptor closed behind the loop's back left the set, and its
   * number may be a new descriptor's: the set is told what is so. */
  if (rc != 0 && errno == ENOENT && op == EPOLL_CTL_MOD)
    rc = set_ctl(l, op = EPOLL_CTL_ADD, fd, &ev);
  else if (rc != 0 && errno == EEXIST && op == EPOLL_CTL_ADD)
    rc = set_ctl(l, op = EPOLL_CTL_MOD, fd, &ev);
  if (rc != 0 && op == EPOLL_CTL_DEL) {
    *b = 0; /* closed behind the loop's back (libcurl before 8.2 closes a
               socket that failed to connect without telling): its number
               is no longer ours, and whatever has it next is in no set */
  } else if (rc != 0) {
    int err = errno; /* the kernel may keep the old mask: taken out */
    set_ctl(l, EPOLL_CTL_DEL, fd, NULL);
    errno = err;
    *b &= (unsigned char)~(FD_IN_SET | FD_IN | FD_OUT);
  } else if (op == EPOLL_CTL_DEL)
    *b &= (unsigned char)~(FD_IN_SET | FD_IN | FD_OUT);
  else
    *b = (unsigned char)((*b & ~(FD_IN | FD_OUT)) | FD_IN_SET | want);
  return op == EPOLL_CTL_DEL ? 0 : rc;
}

/* A socket of e's could not be watched (errno says why): the run's sweep
 * ends its transfer, which would otherwise wait for nothing. Not -1 to
 * libcurl, which would fail every transfer of the loop from then on. */
static int watch_failed(actio__http_loop *l, CURL *e) {
  int err = errno;
  actio__http_xfer *x = NULL;
  curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&x);
  if (x != NULL && x->watch_errno == 0) { /* NULL: libcurl's own handle */
    x->watch_errno = err;
    l->sweep = 1;
  }
  return 0;
}

/* CURLMOPT_SOCKETFUNCTION: what libcurl waits for on a socket. A
 * connection's socket stays in the set for reading when libcurl lets go of
 * it (its transfer ended, it waits idle in the cache): taking it out and
 * putting it back for the next transfer on it would cost two system calls
 * a request. Its close (close_socket) takes it out; so does the first event
 * it brings while unwanted (the server closed it, say). Other sockets
 * (libcurl's resolver's) are told every change: they are closed where the
 * loop does not see it. */
static int on_socket(CURL *e, curl_socket_t fd, int what, void *arg, void *sockp) {
  actio__http_loop *l = arg;
  (void)sockp;
  unsigned char *b = fd_bits(l, fd);
  if (b == NULL) {
    errno = ENOMEM;
    return watch_failed(l, e);
  }
  int want = what == CURL_POLL_IN      ? FD_IN
             : what == CURL_POLL_OUT   ? FD_OUT
             : what == CURL_POLL_INOUT ? FD_IN | FD_OUT
                                       : 0;
  if (want != 0)
    *b |= FD_WANTED;
  else
    *b &= (unsigned char)~FD_WANTED;
  int has = *b & (FD_IN | FD_OUT);
  if (*b & FD_OURS) {
    if (want == 0 && (has == FD_IN || !(*b & FD_IN_SET)))
      return 0; /* kept for reading, or in no set */
    if (want != 0 && has == want && (*b & FD_IN_SET))
      return 0;
  }
  return fd_register(l, fd, b, want) == 0 ? 0 : watch_failed(l, e);
}

/* CURLOPT_CLOSESOCKETFUNCTION (data: the loop): a connection's socket
 * leaves the set as it closes, and its number is no longer ours. */
static int close_socket(void *arg, curl_socket_t fd) {
  actio__http_loop *l = arg;
  if (fd >= 0 && (size_t)fd < l->fds_cap) {
    /* Taken out first: the set holds a socket until every descriptor of it
     * is closed, and a forked child may hold one (its events would then
     * come for a number no longer ours, forever). */
    if (l->fds[fd] & FD_IN_SET)
      set_ctl(l, EPOLL_CTL_DEL, fd, NULL);
    l->fds[fd] = 0;
  }
  return close(fd);
}

int actio__http_loop_create(actio__http_loop **out, const actio__http_conf *conf,
                            actio__http_share *share) {
  actio__http_loop *l = calloc(1, sizeof *l);
  if (l == NULL)
    return ACTIO_ENOMEM;
  int rc = 0;
  l->wakefd = -1;
  l->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (l->epfd < 0) {
    rc = -errno;
    goto fail_epoll;
  }
  l->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  /* Edge-triggered: each write is an event of its own, so nothing reads
   * the count back (it would take 2^64 wakeups to fill). */
  struct epoll_event wev = {.events = EPOLLIN | EPOLLET, .data.fd = l->wakefd};
  if (l->wakefd < 0 || epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->wakefd, &wev) != 0) {
    rc = -errno;
    goto fail_wake;
  }
  l->multi = curl_multi_init();
  if (l->multi == NULL) {
    rc = ACTIO_ENOMEM;
    goto fail_wake;
  }
  l->conf = conf;
  l->share = share;
  /* libcurl tells which sockets to wait on, and each socket's event runs
   * only the transfers on it: no poll(0) of every transfer's socket at
   * each run, as curl_multi_perform's would do, nor a poll set made anew
   * at each wait. */
  curl_multi_setopt(l->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
  curl_multi_setopt(l->multi, CURLMOPT_SOCKETDATA, l);
  curl_multi_setopt(l->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
  curl_multi_setopt(l->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, conf->max_connections);
  /* Keep as many idle connections as may be open. libcurl's default cache
   * holds four per transfer in the handle, so whenever the loop holds few
   * (between two batches from the mailbox) it closes connections it soon
   * opens again: 136 to 1000 connects for 20000 GETs at 64 in flight, where
   * two workers need about 100. */
  curl_multi_setopt(l->multi, CURLMOPT_MAXCONNECTS, conf->max_connections);
  if (conf->max_host_connections > 0)
    curl_multi_setopt(l->multi, CURLMOPT_MAX_HOST_CONNECTIONS, conf->max_host_connections);
  *out = l;
  return 0;
fail_wake:
  if (l->wakefd >= 0)
    close(l->wakefd);
  close(l->epfd);
fail_epoll:
  free(l);
  return rc;
}

static void finish_xfer(actio__http_loop *l, actio__http_xfer *x, CURLcode cc);

void actio__http_loop_destroy(actio__http_loop *l) {
  if (l == NULL)
    return;
  while (l->list != NULL)
    actio__http_loop_cancel(l, l->list);
  for (size_t i = 0; i < l->nspare; i++)
    curl_easy_cleanup(l->spare[i]);
  free(l->spare);
  curl_multi_cleanup(l->multi); /* its cached connections close here */
  close(l->wakefd);
  close(l->epfd);
  free(l->fds);
  free(l);
}

void actio__http_loop_wakeup(actio__http_loop *l) {
  uint64_t one = 1;
  /* Full only after 2^64 - 2 wakeups: no write fails that matters. */
  (void)!write(l->wakefd, &one, sizeof one);
}

static void drain_done(actio__http_loop *l) {
  CURLMsg *m;
  int left;
  while ((m = curl_multi_info_read(l->multi, &left)) != NULL) {
    if (m->msg != CURLMSG_DONE)
      continue;
    actio__http_xfer *x = NULL;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
    ACTIO__ASSERT(x != NULL && x->easy == m->easy_handle);
    finish_xfer(l, x, m->data.result);
  }
}

static void sweep(actio__http_loop *l);

void actio__http_loop_run(actio__http_loop *l) {
  int running;
  int nev = l->nev;
  l->nev = 0;
  for (int i = 0; i < nev; i++) {
    curl_socket_t fd = l->ev[i].data.fd;
    uint32_t got = l->ev[i].events;
    if (fd == l->wakefd)
      continue;
    unsigned char *b = fd_bits(l, fd);
    if (b == NULL || !(*b & FD_IN_SET)) {
      /* Taken out by an earlier event's run, or the set and the bits
       * disagree (a failed change): out it goes, or it would fire at
       * every poll. An error (not in the set) is the first case. */
      set_ctl(l, EPOLL_CTL_DEL, fd, NULL);
      continue;
    }
    if (!(*b & FD_WANTED)) { /* an idle connection kept in the set */
      fd_register(l, fd, b, 0);
      continue;
    }
    /* As libcurl's own poll reads them: an error or a hang-up is news
     * for the reader and the writer. */
    int bits = (got & (EPOLLIN | EPOLLERR | EPOLLHUP) ? CURL_CSELECT_IN : 0) |
               (got & (EPOLLOUT | EPOLLERR | EPOLLHUP) ? CURL_CSELECT_OUT : 0);
    curl_multi_socket_action(l->multi, fd, bits, &running);
  }
  long t = -1;
  if (curl_multi_timeout(l->multi, &t) == CURLM_OK && t == 0)
    curl_multi_socket_action(l->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  drain_done(l);
  if (l->idle_xfers > 0 || l->sweep)
    sweep(l);
}

void actio__http_loop_poll(actio__http_loop *l, int max_ms) {
  long t = -1;
  curl_multi_timeout(l->multi, &t);
  int wait_ms = t < 0 || t > max_ms ? max_ms : (int)t;
  /* A transfer's idle limit ends the wait: libcurl calls on_progress only
   * when the transfer runs, and a silent one does not. */
  int64_t now = l->idle_xfers > 0 ? actio__now_ns() : 0;
  for (actio__http_xfer *x = l->idle_xfers > 0 ? l->list : NULL; x != NULL; x = x->next)
    if (x->idle_ms > 0 && !x->pause_next && !x->upload_wait) {
      int64_t left = actio__ns_to_ms_ceil(x->last_activity_ns +
                                          x->idle_ms * ACTIO__NS_PER_MS - now);
      if (left < wait_ms)
        wait_ms = left > 0 ? (int)left : 0;
    }
  if (l->nev > 0)
    return; /* what it has, the run takes first */
  int n = epoll_wait(l->epfd, l->ev, LOOP_EVENTS, wait_ms);
  l->nev = n > 0 ? n : 0;
}

/* ---- tracing and the request log ---- */

static double ms(CURL *e, CURLINFO what) {
  curl_off_t us = 0;
  curl_easy_getinfo(e, what, &us);
  return (double)us / 1000.0;
}

static double since_start_ms(const actio__http_xfer *x) {
  return (double)(actio__now_ns() - x->start_ns) / 1e6;
}

static long new_conns(actio__http_xfer *x) {
  long conns = 0;
  curl_easy_getinfo(x->easy, CURLINFO_NUM_CONNECTS, &conns);
  return conns;
}

static void trace(actio__http_xfer *x, int event, double ms, long status, int rc) {
  const actio__http_conf *c = x->loop->conf;
  if (c->trace == NULL)
    return;
  actio__http_trace t = {.event = event, .ms = ms, .status = status, .rc = rc,
                         .reused = event >= ACTIO__HTTP_TRACE_FIRST_BYTE && new_conns(x) == 0};
  c->trace(c->trace_arg, x->arg, &t);
}

__attribute__((format(printf, 2, 3))) static void log_line(const actio__http_conf *c,
                                                            const char *fmt, ...) {
  char line[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  c->log(c->log_arg, line);
}

/* libcurl is about to send a request (each redirect's too) on a connection
 * it opened or reused: the new connection's DNS, connect and TLS times are
 * known now (CURLOPT_PREREQFUNCTION). */
static int on_prereq(void *arg, char *ip, char *local_ip, int port, int local_port) {
  actio__http_xfer *x = arg;
  (void)ip;
  (void)local_ip;
  (void)port;
  (void)local_port;
  long conns = new_conns(x);
  if (conns > x->conns_told) {
    x->conns_told = conns;
    trace(x, ACTIO__HTTP_TRACE_DNS, ms(x->easy, CURLINFO_NAMELOOKUP_TIME_T), 0, 0);
    trace(x, ACTIO__HTTP_TRACE_CONNECT, ms(x->easy, CURLINFO_CONNECT_TIME_T), 0, 0);
    double tls = ms(x->easy, CURLINFO_APPCONNECT_TIME_T);
    if (tls > 0)
      trace(x, ACTIO__HTTP_TRACE_TLS, tls, 0, 0);
  }
  return CURL_PREREQFUNC_OK;
}

/* The headers sent and received, for the log (CURLOPT_DEBUGFUNCTION with
 * CURLOPT_VERBOSE: only with log_headers), each line masked. */
static int on_debug(CURL *e, curl_infotype type, char *data, size_t size, void *arg) {
  actio__http_xfer *x = arg;
  const actio__http_conf *c = x->loop->conf;
  (void)e;
  if (type != CURLINFO_HEADER_OUT && type != CURLINFO_HEADER_IN)
    return 0;
  /* A block sent holds every line; one received, one. */
  for (size_t i = 0; i < size;) {
    size_t end = i;
    while (end < size && data[end] != '\n')
      end++;
    size_t len = end - i;
    while (len > 0 && data[i + len - 1] == '\r')
      len--;
    if (len > 0) {
      char line[1024];
      actio__http_redact_header(data + i, len, c->secret_params, line, sizeof line);
      log_line(c, "%c %s", type == CURLINFO_HEADER_OUT ? '>' : '<', line);
    }
    i = end + 1;
  }
  return 0;
}

/* ---- what libcurl hands a transfer ---- */

static size_t on_body(char *data, size_t size, size_t n, void *arg) {
  actio__http_xfer *x = arg;
  actio__http_result *r = &x->res;
  size_t len = size * n;
  const actio__http_more *m = x->req->more;
  if (!x->head_told && m != NULL && m->on_head != NULL) {
    /* libcurl hands over no body of a redirect or an auth round */
    x->head_told = 1;
    m->on_head(m->head_arg, x);
  }
  if (x->req->sink != NULL) {
    if (x->pause_next)
      return CURL_WRITEFUNC_PAUSE; /* libcurl hands this chunk again later */
    int rc = x->req->sink(x->req->sink_arg, data, len);
    if (rc < 0) {
      x->sink_rc = rc;
      return 0;
    }
    x->pause_next = rc == 1;
    x->delivered += len;
    return len;
  }
  if (r->body_len + len > x->max_body) {
    x->too_big = 1;
    return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
  }
  if (actio__http_result_reserve(r, r->body_len + len + 1) != 0)
    return 0;
  memcpy(r->body + r->body_len, data, len);
  r->body_len += len;
  return len;
}

/* Keeps the headers of the last response only (see
 * actio__http_result_header_line). */
static size_t on_header(char *line, size_t size, size_t n, void *arg) {
  actio__http_xfer *x = arg;
  actio__http_result *r = &x->res;
  size_t len = size * n;
  if (!x->first_byte_told) {
    x->first_byte_told = 1;
    trace(x, ACTIO__HTTP_TRACE_FIRST_BYTE, since_start_ms(x), 0, 0);
  }
  if (len >= 5 && strncmp(line, "HTTP/", 5) == 0) /* a new response */
    x->encoded = 0;
  else if (len >= 17 && strncasecmp(line, "Content-Encoding:", 17) == 0)
    x->encoded = strncasecmp(line + 17 + strspn(line + 17, " \t"), "identity", 8) != 0;
  if (x->req->sink == NULL && len >= 15 &&
      strncasecmp(line, "Content-Length:", 15) == 0) {
    /* Size the body buffer once: no regrowth, no page-sized churn. */
    unsigned long long cl = strtoull(line + 15, NULL, 10);
    if (cl > 0 && cl <= x->max_body && r->body_len == 0)
      actio__http_result_reserve(r, (size_t)cl + 1);
  }
  return actio__http_result_header_line(r, line, len) == 0 ? len : 0;
}

/* Called often while bytes move, and about once a second otherwise: fails
 * the transfer once nothing moved for idle_ms. */
static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow,
                       curl_off_t ultotal, curl_off_t ulnow) {
  actio__http_xfer *x = arg;
  int64_t now = actio__now_ns();
  (void)dltotal;
  (void)ultotal;
  if (dlnow != x->last_dl || ulnow != x->last_ul || x->pause_next || x->upload_wait) {
    /* Bytes moved, or our own consumer holds the transfer: not idle. */
    x->last_dl = dlnow;
    x->last_ul = ulnow;
    x->last_activity_ns = now;
    return 0;
  }
  if (now - x->last_activity_ns < x->idle_ms * ACTIO__NS_PER_MS)
    return 0;
  x->idle_expired = 1;
  return 1; /* aborts: CURLE_ABORTED_BY_CALLBACK */
}

/* ---- bodies read as they are sent: files and a caller's source ---- */

/* A file sent as a multipart part or as the whole body: opened when the
 * transfer is made, read where libcurl asks (pread, libcurl's upload
 * buffer at a time: never loaded whole), closed with the transfer. */
struct file_src {
  actio__http_xfer *x;
  const char *path;
  const char *part; /* the part's name, NULL for the body */
  int fd;
  curl_off_t size, pos;
};

/* Fails the transfer's upload with rc, once, saying why. */
__attribute__((format(printf, 3, 4))) static void
upload_failed(actio__http_xfer *x, int rc, const char *fmt, ...) {
  if (x->upload_rc != 0)
    return;
  char why[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  x->upload_rc = rc;
  x->upload_err = strdup(why); /* NULL: the code's text will do */
}

/* "file P of part "N"" or "body file P", for messages. */
static const char *file_what(const char *path, const char *part, char *out, size_t cap) {
  if (part != NULL)
    snprintf(out, cap, "file %s of part \"%s\"", path, part);
  else
    snprintf(out, cap, "body file %s", path);
  return out;
}

static size_t file_read(char *buf, size_t size, size_t n, void *arg) {
  file_src *f = arg;
  size_t want = size * n;
  char what[300];
  if ((curl_off_t)want > f->size - f->pos)
    want = (size_t)(f->size - f->pos);
  if (want == 0)
    return 0;
  ssize_t got;
  do
    got = pread(f->fd, buf, want, (off_t)f->pos);
  while (got < 0 && errno == EINTR);
  if (got < 0) {
    int e = errno;
    upload_failed(f->x, -e, "reading %s: %s",
                  file_what(f->path, f->part, what, sizeof what), strerror(e));
    return CURL_READFUNC_ABORT;
  }
  if (got == 0) { /* cut short since it was opened: what is sent is wrong */
    upload_failed(f->x, -EIO, "%s shrank during the upload (%lld of %lld bytes read)",
                  file_what(f->path, f->part, what, sizeof what), (long long)f->pos,
                  (long long)f->size);
    return CURL_READFUNC_ABORT;
  }
  f->pos += got;
  return (size_t)got;
}

/* A redirect or an auth round sends the body again from the start. */
static int file_seek(void *arg, curl_off_t offset, int origin) {
  file_src *f = arg;
  if (origin != SEEK_SET || offset < 0 || offset > f->size)
    return CURL_SEEKFUNC_FAIL;
  f->pos = offset;
  return CURL_SEEKFUNC_OK;
}

static void file_free(void *arg) {
  file_src *f = arg;
  if (f != NULL)
    close(f->fd);
  free(f);
}

/* Opens the file at path (of part `part`, NULL for the body) into *out.
 * Returns 0, a negated errno or ACTIO_EINVAL (why says which file) or
 * ACTIO_ENOMEM. */
static int file_open(actio__http_xfer *x, const char *path, const char *part,
                     file_src **out, char *why, size_t cap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  int rc = 0;
  if (fd < 0 || fstat(fd, &st) != 0)
    rc = -errno;
  else if (!S_ISREG(st.st_mode))
    rc = ACTIO_EINVAL;
  if (rc != 0) {
    char what[300];
    snprintf(why, cap, "%s: %s", file_what(path, part, what, sizeof what),
             rc == ACTIO_EINVAL ? "not a regular file" : strerror(-rc));
    if (fd >= 0)
      close(fd);
    return rc;
  }
  file_src *f = malloc(sizeof *f);
  if (f == NULL) {
    close(fd);
    return ACTIO_ENOMEM;
  }
  *f = (file_src){.x = x, .path = path, .part = part, .fd = fd, .size = (curl_off_t)st.st_size};
  *out = f;
  return 0;
}

/* Adds the file part p to mime. Returns 0, or as file_open. */
static int add_file_part(actio__http_xfer *x, curl_mimepart *mp,
                         const actio__http_part *p, char *why, size_t cap) {
  file_src *f;
  int rc = file_open(x, p->file, p->name, &f, why, cap);
  if (rc != 0)
    return rc;
  if (curl_mime_data_cb(mp, f->size, file_read, file_seek, file_free, f) != CURLE_OK) {
    file_free(f);
    return ACTIO_ENOMEM;
  }
  const char *base = strrchr(p->file, '/');
  return curl_mime_filename(mp, p->filename ? p->filename : base ? base + 1 : p->file) ==
                 CURLE_OK ? 0 : ACTIO_ENOMEM;
}

/* libcurl's read function for a body that is no multipart: the body file,
 * or the caller's source, which may pause the upload. */
static size_t on_upload(char *buf, size_t size, size_t n, void *arg) {
  actio__http_xfer *x = arg;
  const actio__http_more *m = x->req->more;
  size_t cap = size * n;
  if (x->body_file != NULL)
    return file_read(buf, 1, cap, x->body_file);
  if (m == NULL || m->source == NULL)
    return 0;
  if (x->upload_wait)
    return CURL_READFUNC_PAUSE; /* asked again before the resume */
  if (m->source_len > 0) {
    if (x->sourced >= m->source_len)
      return 0; /* all that was announced: the source is not asked again */
    if ((long long)cap > m->source_len - x->sourced)
      cap = (size_t)(m->source_len - x->sourced);
  }
  size_t len = 0;
  int rc = m->source(m->source_arg, buf, cap, &len);
  if (rc < 0) {
    upload_failed(x, rc, "upload callback failed: %s", actio_strerror(rc));
    return CURL_READFUNC_ABORT;
  }
  if (rc == 1) {
    x->upload_wait = 1;
    return CURL_READFUNC_PAUSE;
  }
  ACTIO__ASSERT(len <= cap);
  if (len == 0 && m->source_len > 0 && x->sourced < m->source_len) {
    upload_failed(x, -EIO, "upload callback ended after %lld of the %lld bytes announced",
                  (long long)x->sourced, (long long)m->source_len);
    return CURL_READFUNC_ABORT;
  }
  x->sourced += (long long)len;
  return len;
}

/* A redirect or an auth round would send the body again: a body file
 * starts over, a source cannot (libcurl then fails the transfer). */
static int on_upload_seek(void *arg, curl_off_t offset, int origin) {
  actio__http_xfer *x = arg;
  if (x->body_file != NULL)
    return file_seek(x->body_file, offset, origin);
  if (origin == SEEK_SET && offset == 0 && x->sourced == 0)
    return CURL_SEEKFUNC_OK;
  x->rewind_refused = 1;
  return CURL_SEEKFUNC_CANTSEEK;
}

/* The multipart body of more, as x->mime. Returns 0, or as add_file_part. */
static int make_mime(actio__http_xfer *x, const actio__http_more *m, char *why,
                     size_t cap) {
  x->mime = curl_mime_init(x->easy);
  if (x->mime == NULL)
    return ACTIO_ENOMEM;
  for (size_t i = 0; i < m->nparts; i++) {
    const actio__http_part *p = &m->parts[i];
    curl_mimepart *mp = curl_mime_addpart(x->mime);
    const char *type = p->type ? p->type : p->file ? "application/octet-stream" : NULL;
    if (mp == NULL || curl_mime_name(mp, p->name) != CURLE_OK ||
        (type != NULL && curl_mime_type(mp, type) != CURLE_OK))
      return ACTIO_ENOMEM;
    int rc = 0;
    if (p->file != NULL)
      rc = add_file_part(x, mp, p, why, cap);
    else if (curl_mime_data(mp, p->data, p->data_len) != CURLE_OK ||
             (p->filename != NULL && curl_mime_filename(mp, p->filename) != CURLE_OK))
      rc = ACTIO_ENOMEM;
    if (rc != 0)
      return rc;
  }
  return 0;
}

/* ---- easy handles ---- */

/* libcurl takes a socket it could not open for a refused connection and
 * drops its errno: opened here, the errno is kept (EMFILE, ENFILE). */
static curl_socket_t open_socket(void *arg, curlsocktype purpose,
                                 struct curl_sockaddr *a) {
  actio__http_xfer *x = arg;
  (void)purpose;
  /* Close-on-exec: a child's copy would keep it in the loop's set. */
  curl_socket_t fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
  if (fd == CURL_SOCKET_BAD) {
    x->socket_errno = errno;
    return fd;
  }
  /* A new descriptor is in no epoll set, whatever its number was before. */
  unsigned char *b = fd_bits(x->loop, fd);
  if (b != NULL) /* else it is told every change, as a socket not ours */
    *b = FD_OURS;
  return fd;
}

/* What every transfer of the session shares, set once per easy handle. */
static void session_options(actio__http_loop *l, CURL *e) {
  const actio__http_conf *c = l->conf;
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_SHARE, l->share->sh);
  /* Only http and https, on the first request and after every redirect. */
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
  curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(e, CURLOPT_USERAGENT, c->user_agent);
  /* 64 KiB reads (libcurl's default is 16): a quarter of the recv calls
   * and body callbacks on large bodies, still below malloc's mmap
   * threshold for the buffer libcurl makes per transfer. */
  curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 64L * 1024);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(e, CURLOPT_READFUNCTION, on_upload);
  if (c->trace != NULL)
    curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_prereq);
  if (c->log != NULL && c->log_headers) {
    curl_easy_setopt(e, CURLOPT_DEBUGFUNCTION, on_debug);
    curl_easy_setopt(e, CURLOPT_VERBOSE, 1L);
  }
  curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, on_upload_seek);
  curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket);
  /* A cached connection closes with the loop as its data: not a transfer
   * of it, which may be gone by then. */
  curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, close_socket);
  curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, l);
  if (c->cookies) /* turns libcurl's cookie engine on, over the shared jar */
    curl_easy_setopt(e, CURLOPT_COOKIEFILE, "");
  if (c->ca_file != NULL) { /* servers, and https proxies */
    curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file);
    curl_easy_setopt(e, CURLOPT_PROXY_CAINFO, c->ca_file);
  }
  if (c->ca_path != NULL) {
    curl_easy_setopt(e, CURLOPT_CAPATH, c->ca_path);
    curl_easy_setopt(e, CURLOPT_PROXY_CAPATH, c->ca_path);
  }
  if (c->client_cert != NULL)
    curl_easy_setopt(e, CURLOPT_SSLCERT, c->client_cert);
  if (c->client_key != NULL)
    curl_easy_setopt(e, CURLOPT_SSLKEY, c->client_key);
}

/* An easy handle with the session's options: a spare one keeps them, and
 * every transfer sets all of its own (so none leaks from the last one). */
static CURL *easy_get(actio__http_loop *l) {
  if (l->nspare > 0)
    return l->spare[--l->nspare];
  CURL *e = curl_easy_init();
  if (e != NULL)
    session_options(l, e);
  return e;
}

static void easy_put(actio__http_loop *l, CURL *e) {
  ACTIO__ASSERT(l->nspare <= l->spare_cap);
  if (l->nspare == l->spare_cap) {
    size_t cap = l->spare_cap ? l->spare_cap * 2 : 16;
    if (cap > 256) { /* enough spares */
      curl_easy_cleanup(e);
      return;
    }
    CURL **s = realloc(l->spare, cap * sizeof *s);
    if (s == NULL) {
      curl_easy_cleanup(e);
      return;
    }
    l->spare = s;
    l->spare_cap = cap;
  }
  l->spare[l->nspare++] = e;
}

/* ---- transfers ---- */

int actio__http_xfer_resume(actio__http_xfer *x) {
  ACTIO__ASSERT(x->in_loop && x->pause_next);
  x->pause_next = 0;
  x->last_activity_ns = actio__now_ns(); /* a pause is not idle */
  /* The upload stays paused while its source waits. */
  CURLcode cc = curl_easy_pause(x->easy, x->upload_wait ? CURLPAUSE_SEND : CURLPAUSE_CONT);
  if (x->sink_rc != 0)
    return x->sink_rc;
  return cc == CURLE_OK ? 0 : ACTIO_ETRANSFER;
}

int actio__http_xfer_resume_upload(actio__http_xfer *x) {
  ACTIO__ASSERT(x->in_loop && x->upload_wait);
  x->upload_wait = 0;
  x->last_activity_ns = actio__now_ns();
  /* libcurl asks the source again from inside this call. */
  CURLcode cc = curl_easy_pause(x->easy, x->pause_next ? CURLPAUSE_RECV : CURLPAUSE_CONT);
  if (x->upload_rc != 0)
    return x->upload_rc;
  return cc == CURLE_OK ? 0 : ACTIO_ETRANSFER;
}

long actio__http_xfer_status(const actio__http_xfer *x) { return x->status; }

long actio__http_xfer_status_now(actio__http_xfer *x) {
  long st = 0;
  curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &st);
  return st;
}

long actio__http_xfer_retry_after_ms(const actio__http_xfer *x) {
  return x->retry_after_ms;
}

void actio__http_xfer_take(actio__http_xfer *x, actio__http_result *out) {
  ACTIO__ASSERT(!x->in_loop);
  *out = x->res;
  memset(&x->res, 0, sizeof x->res);
}

void actio__http_xfer_free(actio__http_xfer *x) {
  if (x == NULL)
    return;
  /* Still in the multi handle, libcurl would run a freed transfer. */
  ACTIO__ASSERT(!x->in_loop);
  if (x->easy != NULL) {
    /* The handle points at the body it was given: not past this. */
    if (x->mime != NULL)
      curl_easy_setopt(x->easy, CURLOPT_MIMEPOST, NULL);
    easy_put(x->loop, x->easy);
  }
  curl_mime_free(x->mime);
  file_free(x->body_file);
  free(x->upload_err);
  curl_slist_free_all(x->headers);
  actio__http_result_cleanup(&x->res);
  free(x);
}

static long pick(long req, long conf) { return req != 0 ? req : conf; }

int actio__http_xfer_create(actio__http_xfer **out, actio__http_loop *l,
                            const actio__http_req *req, long cap_ms,
                            actio__http_done_fn done, void *arg, char *why,
                            size_t cap) {
  const actio__http_conf *c = l->conf;
  const char *method = req->method;
  ACTIO__ASSERT(req->url != NULL && actio__http_method_valid(method));
  actio__http_xfer *x = calloc(1, sizeof *x);
  if (x == NULL)
    return ACTIO_ENOMEM;
  x->loop = l;
  x->req = req;
  x->done = done;
  x->arg = arg;
  int rc = ACTIO_ENOMEM;
  x->easy = easy_get(l);
  if (x->easy == NULL)
    goto fail;
  for (const char *const *h = req->headers; h != NULL && *h != NULL; h++) {
    struct curl_slist *n = curl_slist_append(x->headers, *h);
    if (n == NULL)
      goto fail;
    x->headers = n;
  }
  x->max_body = req->max_body ? req->max_body : c->max_body;

  CURL *e = x->easy;
  curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)x);
  curl_easy_setopt(e, CURLOPT_URL, req->url);
  /* Over TLS a second request to a host waits to share the first one's
   * connection (HTTP/2 streams). Not over plain http, which is HTTP/1.1
   * here: it would wait for the first response's headers for nothing. */
  curl_easy_setopt(e, CURLOPT_PIPEWAIT,
                   (long)(strncasecmp(req->url, "https:", 6) == 0));
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->err);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
  curl_easy_setopt(e, CURLOPT_XFERINFODATA, x);
  curl_easy_setopt(e, CURLOPT_READDATA, x);
  curl_easy_setopt(e, CURLOPT_PREREQDATA, x);
  curl_easy_setopt(e, CURLOPT_DEBUGDATA, x);
  curl_easy_setopt(e, CURLOPT_SEEKDATA, x);
  curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, x);
  curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE,
                   req->sink ? (curl_off_t)0 : (curl_off_t)x->max_body);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);

  int redirects = req->max_redirects ? req->max_redirects : c->max_redirects;
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, redirects >= 0 ? 1L : 0L);
  curl_easy_setopt(e, CURLOPT_MAXREDIRS, redirects >= 0 ? (long)redirects : 0L);

  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                   pick(req->connect_timeout_ms, c->connect_timeout_ms));
  long total = pick(req->timeout_ms, c->timeout_ms);
  if (cap_ms >= 0 && (total <= 0 || cap_ms < total))
    total = cap_ms > 0 ? cap_ms : 1; /* the caller's deadline */
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, total > 0 ? total : 0L);
  x->idle_ms = pick(req->idle_timeout_ms, c->idle_timeout_ms);
  /* libcurl's low-speed limit averages over seconds, so a few bytes and
   * then silence can pass it: on_progress counts silence instead. */
  if (x->idle_ms > 0)
    x->last_activity_ns = actio__now_ns();
  curl_easy_setopt(e, CURLOPT_NOPROGRESS, x->idle_ms > 0 ? 0L : 1L);

  const actio__http_more *m = req->more;
  /* The request's proxy, else the session's. None set means none, not
   * the environment's (http_proxy, HTTPS_PROXY, no_proxy) unless the
   * session opts in: a request goes where its URL says, and libcurl is
   * spared reading the environment at every transfer. */
  const actio__http_proxy *px = m != NULL && m->proxy.url != NULL ? &m->proxy : &c->proxy;
  x->proxy = px->url != NULL && *px->url != '\0' ? px : NULL;
  curl_easy_setopt(e, CURLOPT_PROXY, px->url ? px->url : c->proxy_from_env ? NULL : "");
  curl_easy_setopt(e, CURLOPT_PROXYUSERNAME, x->proxy ? px->user : NULL);
  curl_easy_setopt(e, CURLOPT_PROXYPASSWORD, x->proxy ? px->password : NULL);
  curl_easy_setopt(e, CURLOPT_NOPROXY, x->proxy ? px->no_proxy : NULL);
  /* Credentials go to the URL's host only: libcurl drops them on a
   * redirect elsewhere (CURLOPT_UNRESTRICTED_AUTH is never set). */
  int auth = m ? m->auth : ACTIO__HTTP_AUTH_NONE;
  curl_easy_setopt(e, CURLOPT_HTTPAUTH,
                   auth == ACTIO__HTTP_AUTH_DIGEST   ? CURLAUTH_DIGEST
                   : auth == ACTIO__HTTP_AUTH_BEARER ? CURLAUTH_BEARER
                                                     : CURLAUTH_BASIC);
  int userpw = auth == ACTIO__HTTP_AUTH_BASIC || auth == ACTIO__HTTP_AUTH_DIGEST;
  curl_easy_setopt(e, CURLOPT_USERNAME, userpw ? m->user : NULL);
  curl_easy_setopt(e, CURLOPT_PASSWORD, userpw ? m->password : NULL);
  curl_easy_setopt(e, CURLOPT_XOAUTH2_BEARER,
                   auth == ACTIO__HTTP_AUTH_BEARER ? m->token : NULL);

  /* The method: back to a plain GET first, whatever the handle did last. */
  curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
  curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, NULL);
  if (m != NULL && m->parts != NULL) {
    if ((rc = make_mime(x, m, why, cap)) != 0)
      goto fail;
    curl_easy_setopt(e, CURLOPT_MIMEPOST, x->mime);
    if (strcmp(method, "POST") != 0)
      curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
  } else if (m != NULL && (m->source != NULL || m->body_file != NULL)) {
    curl_off_t size = m->source_len > 0 ? (curl_off_t)m->source_len : -1; /* chunked */
    if (m->body_file != NULL) {
      if ((rc = file_open(x, m->body_file, NULL, &x->body_file, why, cap)) != 0)
        goto fail;
      size = x->body_file->size;
    }
    /* POST mode with no fields: libcurl reads the body through on_upload */
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, NULL);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, size);
    if (strcmp(method, "POST") != 0)
      curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
  } else if (strcmp(method, "HEAD") == 0) {
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  } else if (strcmp(method, "GET") != 0 || req->body != NULL) {
    if (strcmp(method, "POST") != 0)
      curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    if (req->body != NULL || strcmp(method, "POST") == 0) {
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
      curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body ? (const char *)req->body : "");
    }
  }
  *out = x;
  return 0;
fail:
  actio__http_xfer_free(x);
  return rc;
}

int actio__http_loop_add(actio__http_loop *l, actio__http_xfer *x) {
  ACTIO__ASSERT(!x->in_loop && x->loop == l); /* a transfer is added once */
  if (curl_multi_add_handle(l->multi, x->easy) != CURLM_OK)
    return ACTIO_ETRANSFER;
  x->in_loop = 1;
  l->idle_xfers += x->idle_ms > 0;
  x->next = l->list;
  if (l->list != NULL)
    l->list->prev = x;
  l->list = x;
  x->start_ns = actio__now_ns();
  trace(x, ACTIO__HTTP_TRACE_START, 0, 0, 0);
  if (l->conf->log != NULL) {
    char head[1024];
    actio__http_head(l->conf, x->req->method, x->req->url, head, sizeof head);
    log_line(l->conf, "> %s", head);
  }
  return 0;
}

static void unlink_xfer(actio__http_loop *l, actio__http_xfer *x) {
  ACTIO__ASSERT(x->in_loop);
  ACTIO__ASSERT(x->prev != NULL ? x->prev->next == x : l->list == x);
  ACTIO__ASSERT(x->next == NULL || x->next->prev == x);
  curl_multi_remove_handle(l->multi, x->easy);
  x->in_loop = 0;
  ACTIO__ASSERT(x->idle_ms <= 0 || l->idle_xfers > 0);
  l->idle_xfers -= x->idle_ms > 0;
  if (x->prev != NULL)
    x->prev->next = x->next;
  else
    l->list = x->next;
  if (x->next != NULL)
    x->next->prev = x->prev;
  x->prev = x->next = NULL;
}

void actio__http_loop_cancel(actio__http_loop *l, actio__http_xfer *x) {
  if (!x->in_loop)
    return;
  finish_xfer(l, x, CURLE_ABORTED_BY_CALLBACK);
}

/* Ends the transfers whose socket could not be watched, and those with an
 * idle limit that got no byte for that long: libcurl runs a transfer only
 * at its socket's events and its timers, so on_progress alone would not
 * see silence. */
static void sweep(actio__http_loop *l) {
  int64_t now = actio__now_ns();
  l->sweep = 0;
again:
  for (actio__http_xfer *x = l->list; x != NULL; x = x->next) {
    if (x->watch_errno != 0) {
      finish_xfer(l, x, CURLE_ABORTED_BY_CALLBACK);
      goto again;
    }
    if (x->idle_ms <= 0)
      continue;
    if (x->pause_next || x->upload_wait) { /* our own consumer holds it */
      x->last_activity_ns = now;
    } else if (now - x->last_activity_ns >= x->idle_ms * ACTIO__NS_PER_MS) {
      x->idle_expired = 1;
      finish_xfer(l, x, CURLE_ABORTED_BY_CALLBACK);
      goto again; /* its callbacks may have changed the list */
    }
  }
}

/* ---- how a transfer ended ---- */


/* 10, 11, 20 or 30 for libcurl's CURL_HTTP_VERSION_*, 0 if unknown. */
static int version_of(long v) {
  return v == CURL_HTTP_VERSION_1_0   ? 10
         : v == CURL_HTTP_VERSION_1_1 ? 11
         : v == CURL_HTTP_VERSION_2_0 ? 20
         : v == CURL_HTTP_VERSION_3   ? 30
                                      : 0;
}

/* A failure of the proxy in use: ACTIO_EPROXY or ACTIO_EPROXYAUTH, or 0
 * when it was not the proxy's. */
static int proxy_error(actio__http_xfer *x, CURLcode cc) {
  long connect_code = 0, px = 0;
  switch (cc) {
  case CURLE_COULDNT_RESOLVE_PROXY:
    return ACTIO_EPROXY;
  case CURLE_COULDNT_CONNECT:
    /* To the proxy, unless the host is one of its no_proxy list. */
    return x->proxy->no_proxy == NULL ? ACTIO_EPROXY : 0;
  case CURLE_PROXY: /* a SOCKS proxy's answer */
    curl_easy_getinfo(x->easy, CURLINFO_PROXY_ERROR, &px);
    return px == CURLPX_USER_REJECTED || px == CURLPX_NO_AUTH ? ACTIO_EPROXYAUTH
                                                              : ACTIO_EPROXY;
  default:
    /* A CONNECT's answer (tinyproxy answers wrong credentials with 401) */
    curl_easy_getinfo(x->easy, CURLINFO_HTTP_CONNECTCODE, &connect_code);
    if (connect_code == 407 || connect_code == 401)
      return ACTIO_EPROXYAUTH;
    return connect_code >= 300 ? ACTIO_EPROXY : 0;
  }
}

static int map_error(actio__http_xfer *x, CURLcode cc) {
  int rc = x->proxy != NULL ? proxy_error(x, cc) : 0;
  if (rc != 0)
    return rc;
  switch (cc) {
  case CURLE_URL_MALFORMAT:
    return ACTIO_EURL;
  case CURLE_UNSUPPORTED_PROTOCOL:
    return ACTIO_ESCHEME;
  case CURLE_COULDNT_RESOLVE_HOST:
    return ACTIO_EDNS;
  case CURLE_COULDNT_CONNECT: {
    if (x->socket_errno != 0)
      return -x->socket_errno;
    long os = 0;
    curl_easy_getinfo(x->easy, CURLINFO_OS_ERRNO, &os);
    return os > 0 ? -(int)os : -ECONNREFUSED;
  }
  case CURLE_OPERATION_TIMEDOUT: {
    curl_off_t connected = 0;
    curl_easy_getinfo(x->easy, CURLINFO_CONNECT_TIME_T, &connected);
    return connected == 0 ? ACTIO_ECONNTIMEOUT : ACTIO_ETIMEDOUT;
  }
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CIPHER:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_ISSUER_ERROR:
  case CURLE_SSL_CRL_BADFILE:
  case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
  case CURLE_SSL_INVALIDCERTSTATUS:
    return ACTIO_ETLS;
  case CURLE_TOO_MANY_REDIRECTS:
    return ACTIO_EREDIRECTS;
  case CURLE_FILESIZE_EXCEEDED:
    return ACTIO_ETOOBIG;
  case CURLE_BAD_CONTENT_ENCODING:
    return ACTIO_EDECODE;
  case CURLE_WRITE_ERROR:
    return x->sink_rc ? x->sink_rc : x->too_big ? ACTIO_ETOOBIG : -ENOMEM;
  case CURLE_SEND_ERROR:
    /* The connection dropped as the request went out: libcurl's "Connection
     * died, tried 5 times before giving up" too, when every connection it
     * took from its cache had been closed by the other end without a word
     * (tinyproxy closes each one after its response). Retryable. */
    return -ECONNRESET;
  case CURLE_PARTIAL_FILE:
  case CURLE_RECV_ERROR:
  case CURLE_GOT_NOTHING:
  case CURLE_HTTP2:
  case CURLE_HTTP2_STREAM:
    return ACTIO_EPARTIAL;
  case CURLE_READ_ERROR:
    return x->upload_rc ? x->upload_rc : ACTIO_ETRANSFER;
  case CURLE_SEND_FAIL_REWIND:
    return ACTIO_ETRANSFER; /* the source's body was asked for again */
  case CURLE_ABORTED_BY_CALLBACK:
    if (x->watch_errno != 0)
      return -x->watch_errno;
    if (x->upload_rc != 0)
      return x->upload_rc;
    return x->idle_expired ? ACTIO_EIDLE : ACTIO_ECANCELED;
  case CURLE_OUT_OF_MEMORY:
    return ACTIO_ENOMEM;
  default:
    return ACTIO_ETRANSFER;
  }
}

/* Fills r's status, URL, version, counts and timings from what libcurl
 * measured so far. Returns 0 or ACTIO_ENOMEM (the URL). */
static int fill_meta(actio__http_xfer *x, actio__http_result *r) {
  CURL *e = x->easy;
  long v = 0, redirects = 0, conns = 0;
  char *url = NULL;
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r->status);
  curl_easy_getinfo(e, CURLINFO_HTTP_VERSION, &v);
  curl_easy_getinfo(e, CURLINFO_EFFECTIVE_URL, &url);
  curl_easy_getinfo(e, CURLINFO_REDIRECT_COUNT, &redirects);
  curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &conns);
  r->http_version = version_of(v);
  r->redirects = (int)redirects;
  r->new_connections = (int)conns;
  r->dns_ms = ms(e, CURLINFO_NAMELOOKUP_TIME_T);
  r->connect_ms = ms(e, CURLINFO_CONNECT_TIME_T);
  r->tls_ms = ms(e, CURLINFO_APPCONNECT_TIME_T);
  r->first_byte_ms = ms(e, CURLINFO_STARTTRANSFER_TIME_T);
  r->total_ms = ms(e, CURLINFO_TOTAL_TIME_T);
  free(r->url);
  r->url = strdup(url ? url : x->req->url);
  return r->url != NULL ? 0 : ACTIO_ENOMEM;
}

/* Fills the result from what libcurl measured. Returns 0 or ACTIO_ENOMEM. */
static int fill_result(actio__http_xfer *x) {
  actio__http_result *r = &x->res;
  int rc = fill_meta(x, r);
  if (r->body == NULL && actio__http_result_reserve(r, 1) != 0) {
    rc = ACTIO_ENOMEM;
  } else if (x->req->sink != NULL) {
    r->body[0] = '\0'; /* the body went elsewhere: say how much */
    r->body_len = x->delivered;
  } else {
    r->body[r->body_len] = '\0';
  }
  return rc;
}

int actio__http_xfer_head(actio__http_xfer *x, actio__http_result *out) {
  const actio__http_result *r = &x->res;
  memset(out, 0, sizeof *out);
  int rc = fill_meta(x, out);
  if (rc == 0 && (actio__http_result_reserve(out, 1) != 0 ||
                  (r->hdr_len > 0 && (out->hdr = malloc(r->hdr_len)) == NULL)))
    rc = ACTIO_ENOMEM;
  if (rc != 0) {
    actio__http_result_cleanup(out);
    return rc;
  }
  out->body[0] = '\0';
  if (r->hdr_len > 0)
    memcpy(out->hdr, r->hdr, r->hdr_len);
  out->hdr_len = out->hdr_cap = r->hdr_len;
  out->nhdr = r->nhdr;
  return 0;
}

/* "proxy URL: what", the proxy's URL masked as a request's is. */
static int proxy_text(actio__http_xfer *x, int rc, const char *what, char *out, size_t cap) {
  char u[400];
  const char *url = x->proxy->url;
  actio__http_redact(url, strlen(url), x->loop->conf->secret_params, u, sizeof u);
  return snprintf(out, cap, "proxy %s: %s%s", u,
                  rc == ACTIO_EPROXYAUTH ? "authentication failed: " : "", what);
}

/* What went wrong, for the message: in actio's words where libcurl's
 * would mislead ("Failure writing output to destination" for a body over
 * the limit), and where a redirect led when the transfer failed there. */
static void failure_text(actio__http_xfer *x, CURLcode cc, int rc, char *out,
                         size_t cap) {
  int n;
  if (rc == ACTIO_ECANCELED)
    n = snprintf(out, cap, "cancelled");
  else if (rc == ACTIO_EIDLE)
    n = snprintf(out, cap, "no data for %ld ms (the idle timeout)", x->idle_ms);
  else if (rc == ACTIO_ETOOBIG)
    n = snprintf(out, cap, "%sresponse body larger than max_body (%zu bytes)",
                 x->encoded ? "decoded " : "", x->max_body);
  else if (rc == ACTIO_EDECODE)
    n = snprintf(out, cap, "response body not decoded (Content-Encoding): %s",
                 x->err[0] ? x->err : curl_easy_strerror(cc));
  else if (rc == ACTIO_EPROXY || rc == ACTIO_EPROXYAUTH)
    n = proxy_text(x, rc, x->err[0] ? x->err : curl_easy_strerror(cc), out, cap);
  else if (x->rewind_refused)
    n = snprintf(out, cap, "the upload callback's body cannot be sent again, as a "
                 "redirect (307, 308) asked");
  else if (x->upload_rc != 0 && rc == x->upload_rc)
    n = snprintf(out, cap, "%s", x->upload_err ? x->upload_err : actio_strerror(rc));
  else if (x->sink_rc != 0)
    n = snprintf(out, cap, "body consumer failed: %s", actio_strerror(x->sink_rc));
  else if (x->socket_errno != 0)
    n = snprintf(out, cap, "no socket: %s", actio_strerror(-x->socket_errno));
  else if (x->watch_errno != 0 && rc == -x->watch_errno)
    n = snprintf(out, cap, "socket not watched: %s", actio_strerror(rc));
  else if (rc == ACTIO_ENOMEM) /* libcurl says "Failure writing output" */
    n = snprintf(out, cap, "out of memory");
  else
    n = snprintf(out, cap, "%s", x->err[0] ? x->err : curl_easy_strerror(cc));
  long redirects = 0;
  char *at = NULL, target[400];
  curl_easy_getinfo(x->easy, CURLINFO_REDIRECT_COUNT, &redirects);
  curl_easy_getinfo(x->easy, CURLINFO_EFFECTIVE_URL, &at);
  if (redirects <= 0 || at == NULL || n < 0 || (size_t)n >= cap)
    return;
  actio__http_redact(at, strlen(at), x->loop->conf->secret_params, target, sizeof target);
  if (rc == ACTIO_ESCHEME) /* the target's scheme is what was refused */
    snprintf(out, cap, "redirect to %s refused: only http and https are followed", target);
  else
    snprintf(out + n, cap - (size_t)n, " (after %ld redirect%s, at %s)", redirects,
             redirects == 1 ? "" : "s", target);
}

static void finish_xfer(actio__http_loop *l, actio__http_xfer *x, CURLcode cc) {
  unlink_xfer(l, x);
  const actio__http_req *req = x->req;
  int rc = 0;
  char msg[CURL_ERROR_SIZE + 1024], why[CURL_ERROR_SIZE + 512];
  msg[0] = '\0';
  curl_off_t after = 0;
  curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
  if (curl_easy_getinfo(x->easy, CURLINFO_RETRY_AFTER, &after) == CURLE_OK && after > 0)
    x->retry_after_ms = after < 86400 ? (long)after * 1000 : 86400000L; /* a day */
  if (cc != CURLE_OK) {
    rc = map_error(x, cc);
    failure_text(x, cc, rc, why, sizeof why);
  } else if (x->proxy != NULL && x->status == 407) {
    /* Only a proxy answers 407: the request never reached the server. */
    rc = ACTIO_EPROXYAUTH;
    proxy_text(x, rc, "status 407", why, sizeof why);
  } else if ((rc = fill_result(x)) != 0) {
    snprintf(why, sizeof why, "out of memory");
  }
  if (rc != 0) {
    size_t n = actio__http_head(l->conf, req->method, req->url, msg, 512);
    snprintf(msg + n, sizeof msg - n, ": %s", why);
  }
  double total = since_start_ms(x);
  trace(x, ACTIO__HTTP_TRACE_END, total, x->status, rc);
  if (l->conf->log != NULL && rc != 0) {
    log_line(l->conf, "! %s", msg);
  } else if (l->conf->log != NULL) {
    char head[1024];
    actio__http_head(l->conf, req->method, req->url, head, sizeof head);
    log_line(l->conf, "< %s: %ld, %zu bytes in %.1f ms%s", head, x->status, x->res.body_len,
             total, new_conns(x) == 0 ? ", connection reused" : "");
  }
  x->done(x, rc, msg, x->arg);
}

/* file_worker.c: the file actor's workers: each request runs through
 * io/file on a worker thread; streams that wait for their consumer park in
 * the actor's bell and hold no worker meanwhile. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "actio/error.h"
#include "actors/core/actor_internal.h"
#include "actors/core/burst.h"
#include "actors/core/future_internal.h"
#include "actors/file/file_internal.h"
#include "base/debug.h"

static int stopped(void *arg) { return actio_future_is_done(((actio__file_req *)arg)->reply); }

/* The commit point of an atomic write: after it, a cancel is too late. */
static int refuse_commit(void *arg) {
  actio__file_req *r = arg;
  r->claimed = actio__future_claim(r->reply);
  return !r->claimed;
}

static void buf_free(void *p) {
  actio_buf *b = p;
  free(b->data);
  free(b);
}

static actio_buf *buf_wrap(char *data, size_t len) {
  actio_buf *b = malloc(sizeof *b);
  if (b == NULL) {
    free(data);
    return NULL;
  }
  *b = (actio_buf){len, data};
  return b;
}

static void *box_u64(uint64_t v) {
  uint64_t *p = malloc(sizeof *p);
  if (p != NULL)
    *p = v;
  return p;
}

/* ---- the operations, on a worker ---- */

static int do_read(actio__file_state *st, actio__file_req *r, void **value) {
  int fd = actio__fio_open(&st->root, r->path, O_RDONLY, 0);
  if (fd < 0)
    return fd;
  char *data;
  size_t len;
  int rc = actio__fio_read_fd(fd, &data, &len, st->max_read);
  close(fd);
  if (rc == 0 && (*value = buf_wrap(data, len)) == NULL)
    rc = -ENOMEM;
  return rc;
}

static int write_chunks(int fd, actio__file_req *r, int64_t offset) {
  size_t done = 0;
  while (done < r->len) {
    if (stopped(r))
      return -ECANCELED;
    size_t n = r->len - done < (1u << 20) ? r->len - done : (1u << 20);
    int rc = actio__fio_write_fd(fd, r->data + done, n,
                                 offset < 0 ? -1 : offset + (int64_t)done);
    if (rc != 0)
      return rc;
    done += n;
  }
  return 0;
}

static int do_write(actio__file_state *st, actio__file_req *r) {
  if (r->flags & ACTIO_WRITE_ATOMIC) {
    actio__fio_atomic *a;
    int rc = actio__fio_atomic_open(&st->root, r->path, 0666, &a);
    if (rc == 0 && (rc = write_chunks(actio__fio_atomic_fd(a), r, -1)) != 0)
      actio__fio_atomic_abort(a);
    else if (rc == 0)
      rc = actio__fio_atomic_commit(a, 1, refuse_commit, r);
    return rc;
  }
  int oflags = O_WRONLY | O_CREAT;
  oflags |= (r->flags & ACTIO_WRITE_APPEND) ? O_APPEND
            : (r->flags & ACTIO_WRITE_EXCL) ? O_EXCL
                                            : O_TRUNC;
  int fd = actio__fio_open(&st->root, r->path, oflags, 0666);
  if (fd < 0)
    return fd;
  int rc = write_chunks(fd, r, -1);
  if (rc == 0 && (r->flags & ACTIO_WRITE_SYNC))
    rc = actio__fio_sync(fd);
  if (close(fd) != 0 && rc == 0)
    rc = -errno;
  return rc;
}

/* ---- durable writes: group commit ---- */

/* Commits the waiting durable writes as groups until none waits, with the
 * leader's slot of arrays. Runs on a leading worker, g->lock held on entry
 * and on return. */
static void lead_groups(actio__file_group *g, unsigned slot) {
  actio__fio_atomic **items = g->items + (size_t)slot * g->max;
  void **reqs = g->reqs + (size_t)slot * g->max;
  int *rcs = g->rcs + (size_t)slot * g->max;
  dev_t *devs = g->devs ? g->devs + (size_t)slot * g->max : NULL;
  while (g->head != NULL) {
    size_t n = 0;
    for (actio__file_req *r = g->head; r != NULL; r = r->next, n++) {
      items[n] = r->atomic;
      reqs[n] = r;
      r->atomic = NULL; /* the group frees it */
    }
    ACTIO__ASSERT(n == g->waiting && n <= g->max);
    g->head = NULL;
    g->tail = &g->head;
    g->waiting = 0;
    /* Arrivals from now on form the next group. */
    pthread_cond_broadcast(&g->room);
    pthread_mutex_unlock(&g->lock);
    actio__fio_atomic_commit_group(items, n, rcs, devs, refuse_commit, reqs);
    /* One burst: what the completions start and would send at once (rows
     * for a batcher) goes together at its end. */
    actio__burst_begin();
    for (size_t i = 0; i < n; i++)
      actio__file_finish(reqs[i], rcs[i], NULL, NULL);
    actio__burst_end();
    pthread_mutex_lock(&g->lock);
  }
}

/* Writes r's content beside its target (and, with flush_each_file, flushes
 * it), then hands it to the group commit.
 * Returns nonzero (r failed alone, not handed over) or 0: r belongs to a
 * group, which completes it. */
static int do_durable(actio__file_state *st, actio__file_req *r) {
  int rc = actio__fio_atomic_open(&st->root, r->path, 0666, &r->atomic);
  if (rc != 0)
    return rc;
  /* The group flushes the contents of its file systems at once (syncfs);
   * with flush_each_file, each worker its own (docs/architecture.md, group
   * commit). */
  actio__file_group *g = &st->group;
  if ((rc = write_chunks(actio__fio_atomic_fd(r->atomic), r, -1)) != 0 ||
      (g->devs == NULL && (rc = actio__fio_atomic_flush(r->atomic)) != 0)) {
    actio__fio_atomic_abort(r->atomic);
    r->atomic = NULL;
    return rc;
  }
  pthread_mutex_lock(&g->lock);
  while (g->waiting >= g->max)
    pthread_cond_wait(&g->room, &g->lock);
  r->next = NULL;
  *g->tail = r;
  g->tail = &r->next;
  g->waiting++;
  /* A group is committed by its leader; while max_leaders are at it, the
   * arrivals wait for one of them to come back for the next. */
  if (g->leaders < g->max_leaders) {
    unsigned slot = g->free_slots[g->max_leaders - g->leaders - 1];
    g->leaders++;
    lead_groups(g, slot);
    g->leaders--;
    g->free_slots[g->max_leaders - g->leaders - 1] = slot;
  }
  pthread_mutex_unlock(&g->lock);
  return 0;
}

static int do_open(actio__file_state *st, actio__file_req *r, void **value) {
  size_t l = strlen(r->path) + 1;
  actio_fh *h = malloc(sizeof *h + l);
  if (h == NULL)
    return -ENOMEM;
  /* Made now, so that closing never fails for want of memory. */
  if (actio_future_create(&h->closed) != 0) {
    free(h);
    return -ENOMEM;
  }
  h->fd = actio__fio_open(&st->root, r->path, r->flags, r->mode);
  if (h->fd < 0) {
    int rc = h->fd;
    actio_future_unref(h->closed);
    free(h);
    return rc;
  }
  h->files = r->files;
  atomic_init(&h->refs, 1);
  atomic_init(&h->closing, 0);
  atomic_init(&h->pos, 0);
  memcpy(h->path, r->path, l);
  *value = h;
  return 0;
}

static int do_pread(actio__file_req *r, void **value) {
  char *data = malloc(r->len + 1);
  if (data == NULL)
    return -ENOMEM;
  int64_t got = actio__fio_pread(r->fh->fd, data, r->len, r->offset);
  if (got < 0) {
    free(data);
    return (int)got;
  }
  data[got] = '\0';
  return (*value = buf_wrap(data, (size_t)got)) ? 0 : -ENOMEM;
}

static int lines_cb(void *arg, const actio__line *lines, size_t n) {
  actio__file_req *r = arg;
  if (stopped(r))
    return -ECANCELED;
  /* actio__line and actio_line have the same layout by construction. A
   * positive return must not pass for a line count: it stops, cancelled. */
  int rc = r->lines_fn(r->arg, (const actio_line *)lines, n);
  return rc > 0 ? ACTIO_ECANCELED : rc;
}

_Static_assert(sizeof(actio__line) == sizeof(actio_line) &&
                   offsetof(actio__line, len) == offsetof(actio_line, len),
               "line layouts must match");

static int do_lines(actio__file_state *st, actio__file_req *r, void **value) {
  int fd = actio__fio_open(&st->root, r->path, O_RDONLY, 0);
  if (fd < 0)
    return fd;
  int64_t n = actio__fio_lines(fd, 4096, 0, lines_cb, r);
  close(fd);
  if (n < 0)
    return (int)n;
  return (*value = box_u64((uint64_t)n)) ? 0 : -ENOMEM;
}

static void stream_step(actio__file_state *st, actio__file_req *r);

/* Runs under the bell's lock, where the actor cannot be freed: a ready
 * consumer sends its stream back to the workers. */
typedef struct resume {
  actio__file_req *r;
  int status; /* the consumer's future's */
  int rc;     /* the send's */
} resume;

static void resume_locked(void *arg) {
  resume *x = arg;
  x->rc = 0;
  if (x->status != 0)
    return;
  /* Never block a thread that serves another actor; a plain thread may
   * wait for room. */
  x->rc = actio_tell(x->r->files, x->r, 0);
  if (x->rc == ACTIO_EFULL && actio_actor_self() == NULL)
    x->rc = actio_tell(x->r->files, x->r, -1);
}

/* The consumer's ready future completed: continue on a file worker. */
static void stream_resume(actio_future *ready, void *arg) {
  actio__file_req *r = arg;
  actio__bell *parked = r->parked;
  resume x = {.r = r, .status = actio_future_status(ready)};
  r->parked = NULL;
  if (!actio__bell_withdraw(parked, &r->link, resume_locked, &x)) {
    /* The actor is gone; its stop failed this stream. */
    actio__file_req_free(r);
    actio__bell_unref(parked);
    return;
  }
  actio__bell_unref(parked);
  if (x.status != 0) {
    char *msg = NULL;
    if (asprintf(&msg, "stream %s: consumer failed: %s", r->path,
                 actio_future_errmsg(ready)) < 0)
      msg = NULL;
    actio_future *reply = r->reply;
    r->reply = NULL;
    actio__file_req_free(r); /* the descriptor closes before anyone sees the failure */
    actio_future_fail(reply, x.status, "%s", msg ? msg : actio_strerror(x.status));
    actio_future_unref(reply);
    free(msg);
  } else if (x.rc == ACTIO_EFULL && actio__actor_is_self(r->files)) {
    stream_step(actio_actor_state(r->files), r); /* already on a file worker */
  } else if (x.rc != 0) {
    actio__file_finish(r, x.rc, NULL, NULL); /* stopped, or full while on another actor */
  }
}

static void stream_step(actio__file_state *st, actio__file_req *r) {
  if (r->fd < 0) {
    r->fd = actio__fio_open(&st->root, r->path, O_RDONLY, 0);
    if (r->fd < 0) {
      int rc = r->fd;
      r->fd = -1;
      actio__file_finish(r, rc, NULL, NULL);
      return;
    }
    posix_fadvise(r->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    if ((r->buf = malloc(r->len)) == NULL) {
      actio__file_finish(r, -ENOMEM, NULL, NULL);
      return;
    }
  }
  for (;;) {
    if (stopped(r)) {
      actio__file_req_free(r);
      return;
    }
    int64_t n = actio__fio_read(r->fd, r->buf, r->len);
    if (n < 0) {
      actio__file_finish(r, (int)n, NULL, NULL);
      return;
    }
    if (n == 0) {
      void *v = box_u64(r->total);
      actio__file_finish(r, v ? 0 : -ENOMEM, v, free);
      return;
    }
    r->total += (uint64_t)n;
    actio_future *ready = NULL;
    int rc = r->chunk_fn(r->arg, r->buf, (size_t)n, &ready);
    if (rc < 0) {
      actio_future_unref(ready);
      actio__file_finish(r, rc, NULL, NULL);
      return;
    }
    if (ready != NULL) {
      if (actio_future_is_done(ready) && actio_future_status(ready) == 0) {
        actio_future_unref(ready); /* ready already: no need to yield */
        continue;
      }
      /* Park r, then hand it to the callback: it may run, and free r, at
       * once. */
      r->parked = st->parked;
      actio__bell_ref(r->parked);
      if (actio__bell_push(r->parked, &r->link, 0) != 0) { /* never while running */
        actio__bell_unref(r->parked);
        r->parked = NULL;
        actio_future_unref(ready);
        actio__file_finish(r, ACTIO_ECANCELED, NULL, NULL);
        return;
      }
      if (actio_future_on_done(ready, stream_resume, r) != 0) {
        resume x = {.r = r, .status = ACTIO_ENOMEM};
        actio__bell *parked = r->parked;
        r->parked = NULL;
        if (actio__bell_withdraw(parked, &r->link, resume_locked, &x))
          actio__file_finish(r, ACTIO_ENOMEM, NULL, NULL);
        else
          actio__file_req_free(r); /* the actor stopped: its future failed */
        actio__bell_unref(parked);
      }
      actio_future_unref(ready);
      return;
    }
  }
}

static void *stat_box(const struct stat *s) {
  struct stat *p = malloc(sizeof *p);
  if (p != NULL)
    *p = *s;
  return p;
}

static int files_handle(actio_actor *self, void *worker, void *msg,
                        actio_future *unused) {
  actio__file_state *st = actio_actor_state(self);
  actio__file_req *r = msg;
  void *value = NULL;
  actio_free_fn vfree = free;
  struct stat sb;
  int rc = 0;
  (void)worker;
  (void)unused;
  if (stopped(r)) { /* cancelled or past its deadline: skip */
    actio__file_req_free(r);
    return 0;
  }
  actio__request_begin(self, r->reply);
  switch (r->op) {
  case OP_READ:
    rc = do_read(st, r, &value);
    vfree = buf_free;
    break;
  case OP_WRITE:
    rc = do_write(st, r);
    break;
  case OP_OPEN:
    rc = do_open(st, r, &value);
    vfree = actio__fh_abandon;
    break;
  case OP_PREAD:
    rc = do_pread(r, &value);
    vfree = buf_free;
    break;
  case OP_PWRITE:
    rc = write_chunks(r->fh->fd, r, (int64_t)r->offset);
    break;
  case OP_SYNC:
    rc = actio__fio_sync(r->fh->fd);
    break;
  case OP_LINES:
    rc = do_lines(st, r, &value);
    break;
  case OP_STREAM:
    stream_step(st, r);
    return 0;
  case OP_DURABLE:
    if ((rc = do_durable(st, r)) == 0)
      return 0; /* its group completes it */
    break;
  case OP_STAT:
    rc = actio__fio_stat(&st->root, r->path, &sb);
    if (rc == 0 && (value = stat_box(&sb)) == NULL)
      rc = -ENOMEM;
    break;
  case OP_EXISTS:
    rc = actio__fio_stat(&st->root, r->path, &sb);
    if (rc == 0 || rc == -ENOENT || rc == -ENOTDIR) {
      int *e = malloc(sizeof *e);
      if (e != NULL)
        *e = rc == 0;
      rc = e ? 0 : -ENOMEM;
      value = e;
    }
    break;
  case OP_MKDIR:
    rc = actio__fio_mkdir_p(&st->root, r->path, r->mode);
    break;
  case OP_RENAME:
    rc = actio__fio_rename(&st->root, r->path, r->path2);
    break;
  case OP_UNLINK:
    rc = actio__fio_unlink(&st->root, r->path);
    break;
  case OP_LIST: {
    char **names;
    size_t n;
    rc = actio__fio_list(&st->root, r->path, &names, &n);
    value = rc == 0 ? names : NULL;
    break;
  }
  case OP_COPY:
    rc = actio__fio_copy(&st->root, r->path, r->path2, stopped, r);
    break;
  case OP_CLEAN: {
    int64_t n = actio__fio_clean_leftovers(&st->root, r->path);
    rc = n < 0 ? (int)n : (value = box_u64((uint64_t)n)) ? 0 : -ENOMEM;
    break;
  }
  case OP_TEMP: {
    char *path = NULL;
    int fd = actio__fio_mkstemp(&st->root, r->path, &path);
    if (fd >= 0) {
      close(fd);
      value = path;
    }
    rc = fd < 0 ? fd : 0;
    break;
  }
  }
  actio__file_finish(r, rc, value, vfree);
  return 0;
}

/* Accepted but never run: the actor stopped at once. */
static void files_drop(actio_actor *self, void *msg) {
  actio__file_req *r = msg;
  (void)self;
  actio_future_fail(r->reply, ACTIO_ECANCELED, "%s %s: file actor stopped",
                    actio__file_op_name(r->op), actio__file_req_path(r));
  actio__file_req_free(r);
}

const actio_behavior actio__file_behavior = {
    .handle = files_handle,
    .drop = files_drop,
};

/* Under the bell's lock, for each stream still waiting for its consumer:
 * it ends here; its request is freed by its callback whenever the consumer
 * completes. */
static void fail_parked(actio__bell_link *l, void *arg) {
  actio__file_req *r = (actio__file_req *)(void *)((char *)l - offsetof(actio__file_req, link));
  (void)arg;
  if (r->fd >= 0) {
    close(r->fd);
    r->fd = -1;
  }
  actio_future_fail(r->reply, ACTIO_ECANCELED, "stream %s: file actor stopped",
                    r->path);
}

static void files_state_free(void *arg) {
  actio__file_state *st = arg;
  if (st->parked != NULL) {
    actio__bell_close(st->parked, fail_parked, NULL);
    actio__bell_unref(st->parked);
  }
  actio__root_close(&st->root);
  if (st->group.items != NULL) {
    pthread_mutex_destroy(&st->group.lock);
    pthread_cond_destroy(&st->group.room);
  }
  free(st->group.items);
  free(st->group.reqs);
  free(st->group.rcs);
  free(st->group.devs);
  free(st->group.free_slots);
  free(st);
}

/* All or nothing: on failure g holds nothing to free. */
static int group_init(actio__file_group *g, size_t max, unsigned leaders, int each) {
  g->max = max;
  g->max_leaders = leaders;
  g->tail = &g->head;
  g->items = calloc(max * leaders, sizeof *g->items);
  g->reqs = calloc(max * leaders, sizeof *g->reqs);
  g->rcs = calloc(max * leaders, sizeof *g->rcs);
  g->devs = each ? NULL : calloc(max * leaders, sizeof *g->devs);
  g->free_slots = calloc(leaders, sizeof *g->free_slots);
  if (g->items != NULL && g->reqs != NULL && g->rcs != NULL && (each || g->devs != NULL) &&
      g->free_slots != NULL && pthread_mutex_init(&g->lock, NULL) == 0) {
    for (unsigned k = 0; k < leaders; k++)
      g->free_slots[k] = k;
    if (pthread_cond_init(&g->room, NULL) == 0)
      return 0;
    pthread_mutex_destroy(&g->lock);
  }
  free(g->items);
  free(g->reqs);
  free(g->rcs);
  free(g->devs);
  free(g->free_slots);
  g->items = NULL;
  g->reqs = NULL;
  g->rcs = NULL;
  g->devs = NULL;
  g->free_slots = NULL;
  return ACTIO_ENOMEM;
}

int actio_file_spawn(actio_runtime *rt, const actio_file_opts *opts,
                      actio_actor **out) {
  actio_file_opts o = opts ? *opts : (actio_file_opts){0};
  if (rt == NULL || out == NULL)
    return ACTIO_EINVAL;
  actio__file_state *st = calloc(1, sizeof *st);
  if (st == NULL)
    return ACTIO_ENOMEM;
  int rc = actio__root_open(&st->root, o.root);
  if (rc != 0) {
    free(st);
    return rc;
  }
  st->max_read = o.max_read ? o.max_read : (size_t)1 << 30;
  st->fail_when_full = o.fail_when_full;
  unsigned workers = o.workers ? o.workers : 8;
  /* A group's leader is a worker: more leaders than workers never run. */
  unsigned leaders = o.max_groups == 0 ? 1 : o.max_groups < workers ? o.max_groups : workers;
  rc = actio__bell_create(&st->parked, NULL, st);
  if (rc == 0)
    rc = group_init(&st->group, o.max_group ? o.max_group : 64, leaders, o.flush_each_file);
  if (rc != 0) {
    files_state_free(st);
    return rc;
  }
  actio_actor_opts ao = {
      .name = "files",
      .workers = workers,
      .capacity = o.capacity ? o.capacity : 4096,
      .state = st,
      .state_free = files_state_free,
  };
  return actio_actor_spawn(rt, &actio__file_behavior, &ao, out);
}

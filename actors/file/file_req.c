/* file_req.c: the file actor's requests and handles: made, sent through
 * the one request path, completed and freed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "actio/error.h"
#include "actors/core/actor_internal.h"
#include "actors/core/future_internal.h"
#include "actors/file/file_internal.h"
#include "base/debug.h"

static const char *const op_names[] = {
    "read", "write", "open", "pread", "pwrite", "fsync", "lines", "stream",
    "stat", "exists", "mkdir", "rename", "unlink", "list", "copy", "tempfile",
    "clean leftovers", "durable write",
};

const char *actio__file_op_name(actio__file_op op) {
  ACTIO__ASSERT((size_t)op < sizeof op_names / sizeof *op_names);
  return op_names[op];
}

/* ---- handles ---- */

void actio__fh_unref(actio_fh *h) {
  uint32_t before = atomic_fetch_sub_explicit(&h->refs, 1, memory_order_acq_rel);
  ACTIO__ASSERT(before > 0);
  if (before != 1)
    return;
  int rc = close(h->fd) == 0 ? 0 : -errno;
  if (rc == 0)
    actio_future_resolve(h->closed, NULL, NULL);
  else
    actio_future_fail(h->closed, rc, "close %s: %s", h->path, actio_strerror(rc));
  actio_future_unref(h->closed);
  free(h);
}

void actio__fh_abandon(void *p) {
  actio_fh *h = p;
  atomic_store_explicit(&h->closing, 1, memory_order_relaxed);
  actio__fh_unref(h);
}

/* ---- requests ---- */

void actio__file_req_free(actio__file_req *r) {
  if (r->fd >= 0)
    close(r->fd);
  if (r->op == OP_DURABLE)
    actio__fio_atomic_abort(r->atomic);
  free(r->buf);
  if (r->fh != NULL)
    actio__fh_unref(r->fh);
  actio_future_unref(r->reply);
  free(r);
}

actio__file_req *actio__file_req_new(actio_actor *files, actio__file_op o,
                                     const char *path, const char *path2,
                                     const void *data, size_t len) {
  size_t l1 = path ? strlen(path) + 1 : 0, l2 = path2 ? strlen(path2) + 1 : 0;
  if (data == NULL)
    len = 0;
  if (len > SIZE_MAX - sizeof(actio__file_req) - l1 - l2)
    return NULL;
  actio__file_req *r = malloc(sizeof *r + l1 + l2 + len);
  if (r == NULL)
    return NULL;
  memset(r, 0, sizeof *r);
  r->op = o;
  r->files = files;
  r->fd = -1;
  char *p = r->inline_bytes;
  if (path) {
    r->path = memcpy(p, path, l1);
    p += l1;
  }
  if (path2) {
    r->path2 = memcpy(p, path2, l2);
    p += l2;
  }
  if (len) {
    r->data = memcpy(p, data, len);
    r->len = len;
  }
  return r;
}

/* Whether a send to `files` waits for room (-1) or fails when full (0):
 * its instance's setting, read under a pin (a supervised child's replaced
 * instance may be freed). */
static int64_t send_timeout(const actio_actor *files) {
  actio__actor_pin(files);
  int64_t t = ((const actio__file_state *)actio_actor_state(files))->fail_when_full ? 0 : -1;
  actio__actor_unpin(files);
  return t;
}

int actio__file_req_send(actio__file_req *r, actio_future **out) {
  int rc = actio_future_create(&r->reply);
  if (rc != 0) {
    actio__file_req_free(r);
    return rc;
  }
  rc = actio__request(r->files, r, r->reply, send_timeout(r->files), out);
  if (rc != 0)
    actio__file_req_free(r);
  return rc;
}

const char *actio__file_req_path(const actio__file_req *r) {
  return r->fh ? r->fh->path : r->path;
}

/* The request's own descriptors and its handle reference go first, so
 * whoever sees the future complete sees them released. */
void actio__file_finish(actio__file_req *r, int rc, void *value,
                        actio_free_fn value_free) {
  char *msg = NULL;
  if (rc < 0) {
    char why[96];
    if (rc == -EFBIG && r->op == OP_READ) { /* "File too large" says not which limit */
      actio__actor_pin(r->files);
      snprintf(why, sizeof why, "larger than max_read (%zu bytes)",
               ((const actio__file_state *)actio_actor_state(r->files))->max_read);
      actio__actor_unpin(r->files);
    } else
      snprintf(why, sizeof why, "%s", actio_strerror(rc));
    if ((r->path2 != NULL
             ? asprintf(&msg, "%s %s -> %s: %s", actio__file_op_name(r->op), r->path,
                        r->path2, why)
             : asprintf(&msg, "%s %s: %s", actio__file_op_name(r->op),
                        actio__file_req_path(r), why)) < 0)
      msg = NULL;
  }
  actio_future *reply = r->reply;
  int claimed = r->claimed;
  r->reply = NULL;
  actio__file_req_free(r);
  if (rc < 0) {
    if (claimed) {
      actio__future_settle(reply, rc, NULL, NULL, msg); /* takes msg */
    } else {
      actio_future_fail(reply, rc, "%s", msg ? msg : actio_strerror(rc));
      free(msg);
    }
  } else if (claimed) {
    actio__future_settle(reply, 0, value, value_free, NULL);
  } else if (actio_future_resolve(reply, value, value_free) != 0 &&
             value != NULL && value_free != NULL) {
    value_free(value); /* cancelled meanwhile: nobody will see it */
  }
  actio_future_unref(reply);
}

/* file_internal.h: the file actor's requests, handles and state, shared by
 * its public calls (file_api.c), their lifetime (file_req.c) and its workers
 * (file_worker.c). */
#ifndef ACTIO_ACTORS_FILE_INTERNAL_H
#define ACTIO_ACTORS_FILE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "actio/file.h"
#include "actors/core/bell.h"
#include "io/file/file_io.h"

typedef enum actio__file_op {
  OP_READ, OP_WRITE, OP_OPEN, OP_PREAD, OP_PWRITE, OP_SYNC, OP_LINES,
  OP_STREAM, OP_STAT, OP_EXISTS, OP_MKDIR, OP_RENAME, OP_UNLINK, OP_LIST,
  OP_COPY, OP_TEMP, OP_CLEAN, OP_DURABLE,
} actio__file_op;

typedef struct actio__file_req actio__file_req;

/* Durable writes waiting for their group's flush (group commit): the
 * worker that finds no flush running leads, committing what waits as one
 * group, then the next, until none waits; the others leave theirs and go
 * on. At most max wait; past that a worker waits for room. */
typedef struct actio__file_group {
  pthread_mutex_t lock;
  pthread_cond_t room;
  actio__file_req *head, **tail; /* in arrival order */
  size_t waiting, max;
  unsigned leaders, max_leaders; /* groups being committed, and the most */
  /* Each leader's arrays, max each, made at spawn: slot k's are at k * max.
   * free_slots[0..max_leaders - leaders) are the unused slots. */
  actio__fio_atomic **items;
  void **reqs;
  int *rcs;
  dev_t *devs; /* the contents' file systems; NULL: each flushed its own */
  unsigned *free_slots;
} actio__file_group;

typedef struct actio__file_state {
  actio__root root;
  size_t max_read;
  int fail_when_full;
  /* Streams that wait for their consumer hold no worker and sit in no
   * mailbox: they wait in this bell's inbox. The bell outlives the actor
   * (each parked stream holds a reference), so a consumer that completes
   * after the actor is gone finds it closed and only frees its request. */
  actio__bell *parked;
  actio__file_group group;
} actio__file_state;

struct actio_fh {
  actio_actor *files;
  int fd;
  _Atomic uint32_t refs;   /* 1 while open, + 1 per request in flight */
  _Atomic int closing;
  _Atomic uint64_t pos;    /* sequential position, reserved at call time */
  actio_future *closed;    /* made at open, completed by the last reference */
  char path[];
};

struct actio__file_req {
  actio__file_op op;
  actio_actor *files;
  actio_future *reply; /* the request's reference */
  actio_fh *fh;        /* handle requests hold a reference */
  const char *path, *path2;
  const char *data;    /* a copy, inside this allocation */
  size_t len;
  uint64_t offset;
  int flags;
  mode_t mode;
  actio_lines_fn lines_fn;
  actio_chunk_fn chunk_fn;
  void *arg;
  int claimed;         /* the reply passed its commit point */
  int fd;              /* a stream between chunks */
  char *buf;
  uint64_t total;
  union {
    struct { /* a stream's */
      actio__bell *parked; /* while parked: the bell it waits in (a reference) */
      actio__bell_link link;
    };
    struct { /* a durable write's */
      actio__fio_atomic *atomic; /* until its group commits */
      actio__file_req *next;     /* in its group */
    };
  };
  char inline_bytes[]; /* paths, then data */
};

/* The file actor's behavior (its identity: a call checks it was given a
 * file actor). */
extern const actio_behavior actio__file_behavior;

/* The name of an operation, for messages ("read", "write", ...). */
const char *actio__file_op_name(actio__file_op op);

/* A request for `files` with path, path2 and data copied inside it (each
 * may be NULL). Returns NULL when out of memory. */
actio__file_req *actio__file_req_new(actio_actor *files, actio__file_op op,
                                     const char *path, const char *path2,
                                     const void *data, size_t len);
/* Frees r: its descriptor, buffer, handle reference and future reference. */
void actio__file_req_free(actio__file_req *r);
/* Makes r's future and sends r through the one request path; r is freed
 * on failure. On success *out is the caller's reference to r's future. */
int actio__file_req_send(actio__file_req *r, actio_future **out);
/* The path a request names (its handle's for handle requests). */
const char *actio__file_req_path(const actio__file_req *r);
/* Completes r's future with rc (an error naming the operation and path) or
 * value, then frees r; value is freed here if nobody can see it. */
void actio__file_finish(actio__file_req *r, int rc, void *value,
                        actio_free_fn value_free);

/* Drops a reference to h; the last closes it and completes its close
 * future. */
void actio__fh_unref(actio_fh *h);
/* The value free function of an open future whose handle nobody took. */
void actio__fh_abandon(void *h);

#endif

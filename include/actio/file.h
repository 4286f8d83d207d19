/** @file actio/file.h
 * The file actor: asynchronous file I/O (what aiofiles gives Python), every
 * operation a future. */
#ifndef ACTIO_FILE_H
#define ACTIO_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "actio/actor.h"
#include "actio/future.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup files Files
 * The file actor is an actor (actio_actor) whose workers make plain blocking
 * system calls, so many files are read and written at once while the
 * callers' threads never block. Spawn it once per runtime; stop it with
 * actio_actor_stop or let actio_runtime_destroy do it.
 *
 * Every operation below: returns 0 and sets *out to a future (the caller's
 * reference), or returns ACTIO_EINVAL (NULL or empty arguments, not a file
 * actor), ACTIO_ENOMEM, ACTIO_ECLOSED (the actor was stopped) or
 * ACTIO_EFULL (mailbox full and fail_when_full set) and makes no future.
 * The future fails with a negated errno (-ENOENT, -EACCES, -EISDIR,
 * -ENOSPC, ...) or ACTIO_ESANDBOX, and a message naming the operation and
 * the path. Paths and data are copied: the caller may free them at once.
 * Every function is thread-safe. Cancelling a future before its request
 * runs drops the request; long requests (large writes, copies, streams,
 * lines) also stop between chunks. No descriptor is ever leaked.
 * @{ */

/** The file actor's settings; zero means the default for every field. */
typedef struct actio_file_opts {
  unsigned workers;     /**< worker threads; default 8: more than cores, since
                             workers block in the kernel (journal, truncate) */
  size_t capacity;      /**< mailbox size; default 4096 */
  /** Sandbox: when set, every path resolves beneath this folder; "..",
   * absolute paths and symlinks that would leave it fail with
   * ACTIO_ESANDBOX. For file names that come from untrusted input. */
  const char *root;
  size_t max_read;      /**< largest whole-file read in bytes; default 1 GiB */
  int fail_when_full;   /**< 1: a full mailbox fails at once with ACTIO_EFULL;
                             0 (default): the caller waits for room */
  unsigned max_group;   /**< most durable writes put in place as one group
                             (actio_file_write_durable); default 64 */
  unsigned max_groups;  /**< most groups of durable writes committed at once,
                             each by its own worker (at most `workers`);
                             default 1 */
  int flush_each_file;  /**< 1: each durable write fsyncs its own file on its
                             worker; 0 (default): a group's contents are
                             flushed at once, one syncfs(2) per file system
                             (actio_file_write_durable) */
} actio_file_opts;

/** Spawns a file actor in `rt`. opts may be NULL; root is used only during
 * the call. Returns 0, ACTIO_EINVAL, ACTIO_ENOMEM, a negated errno (the root
 * cannot be opened), or an actor spawn error (actio_actor_spawn). */
int actio_file_spawn(actio_runtime *rt, const actio_file_opts *opts,
                      actio_actor **out);

/** actio_file_spawn as a supervisor's child start (actio/supervisor.h):
 * arg is the actio_file_opts * (or NULL), borrowed for the supervisor's
 * life. */
int actio_file_child(actio_runtime *rt, void *opts, actio_actor **out);

/** A byte buffer: the value of read futures. data is NUL-terminated (not
 * counted in len), so text can be used as a C string. Freed with its future. */
typedef struct actio_buf {
  size_t len;  /**< bytes in data, without the NUL */
  char *data;  /**< the bytes, then a NUL */
} actio_buf;

/* ---- whole files ---- */

/** Reads a whole file. Value: actio_buf *. -EFBIG past opts.max_read. */
int actio_file_read(actio_actor *files, const char *path, actio_future **out);

/** The flags of actio_file_write, or-ed together. */
enum {
  ACTIO_WRITE_TRUNC = 0,  /**< create or truncate (the default) */
  ACTIO_WRITE_APPEND = 1, /**< create or append */
  ACTIO_WRITE_EXCL = 2,   /**< create; fail with -EEXIST if it exists */
  ACTIO_WRITE_ATOMIC = 4, /**< through a temporary file, fsync and rename: a
                               reader sees the old file or the new, never a mix;
                               on failure or cancel the old file stays intact,
                               but for the folder's fsync after the rename: it
                               fails the write (-EIO, ...) with the new file
                               in place, its name maybe not on the disk.
                               What a process killed meanwhile leaves: see
                               actio_file_write */
  ACTIO_WRITE_SYNC = 8,   /**< fsync before completing */
};

/** Writes len bytes of data (copied) to path, created with mode 0666 & ~umask
 * (an atomic write keeps the mode of the file it replaces). flags: the
 * ACTIO_WRITE_* above. Value: NULL.
 *
 * An atomic write (and an HTTP request's save_to) writes beside the target.
 * Where the file system has O_TMPFILE (ext4, xfs, btrfs, tmpfs; Linux and
 * /proc needed) the new content has no name until it is complete, so a
 * process killed meanwhile leaves nothing. It then gets its name in one
 * link when the target does not exist; a replacement is linked under a
 * temporary name, then renamed over the target: a process killed between
 * those two calls leaves that one complete temporary file. Elsewhere the
 * content is written under the temporary name from the start, and a process
 * killed meanwhile leaves it, up to the full size. Temporary names are
 * "." NAME ".actio-" 16 lowercase hex digits ".tmp" (NAME: the target's
 * name, cut to 60 bytes), hidden; actio_file_clean_leftovers removes
 * them. An atomic write replaces a regular file, or a symbolic link (the
 * link itself, not what it points to); anything else at the path is
 * refused: a folder with -EISDIR, a device, FIFO or socket with -EINVAL
 * (found when the content is put in place, which is when a replaced
 * file's mode is read). */
int actio_file_write(actio_actor *files, const char *path, const void *data,
                     size_t len, int flags, actio_future **out);

/** Writes len bytes of data (copied) to path atomically and durably, as
 * ACTIO_WRITE_ATOMIC does, sharing the flushes of many files (group
 * commit). The worker that runs it writes the content to a temporary file
 * beside the target (see actio_file_write); the file then joins the group
 * waiting to be put in place. A group's contents are flushed at once: one
 * syncfs(2) of each file system they are on (then an fsync of one of
 * them, for the metadata that syncfs writes after its own flush), and
 * only then renamed over their targets, and their folders fsynced, each
 * folder once; each other content's own write error is then checked
 * (sync_file_range's wait, no writing). syncfs also writes what other
 * programs left unwritten on that file system, and can report their write
 * errors; it needs Linux 5.8 to report any. Only on the file systems known
 * to flush what syncfs writes (ext2/3/4, XFS, Btrfs, F2FS; tmpfs has
 * nothing to flush): on any other (FUSE, NFS, CIFS, 9p, overlayfs...)
 * each content of the group is fsynced instead, as with flush_each_file.
 * With
 * opts.flush_each_file, each worker fsyncs its own file instead, and a
 * write waits for no one else's data. While one group is committed, the
 * writes that arrive form the next group (no timer: a lone write goes at
 * once), up to opts.max_group in a group; past that the workers wait, then
 * the mailbox fills. With opts.max_groups above 1, up to that many groups
 * are committed at once, each by the worker that found fewer leading: a
 * write waits for no group but its own, and every group flushes itself.
 * docs/architecture.md says why syncfs by default.
 *
 * Value: NULL, once the file, its content and its name are on the disk.
 * Each write fails on its own (a missing folder, -EISDIR, ACTIO_ESANDBOX,
 * -ENOSPC, its content's write error, ...), leaving the old file and no
 * temporary; a failed flush (-EIO, ...) fails every write of the group on
 * that file system (with flush_each_file, that file's write alone), a
 * failed folder fsync every write of the group into that folder. Cancelled
 * before its rename, a write leaves the old file.
 *
 * Memory: each queued write holds its copy of path and data; while it
 * waits for its group it also holds its file's descriptor (the group opens
 * each folder once). */
int actio_file_write_durable(actio_actor *files, const char *path, const void *data,
                             size_t len, actio_future **out);

/* ---- handles ---- */

/** An open file (actio_file_open); its requests run on the file actor's
 * workers, the handle staying open while they are in flight. Thread-safe.
 * Once actio_fh_close was called, its requests fail with ACTIO_ESTATE. */
typedef struct actio_fh actio_fh;

/** Opens path with open(2) flags (O_RDONLY, O_WRONLY|O_CREAT|O_TRUNC, ...)
 * and mode. Value: actio_fh *; take it with actio_future_take and end it with
 * actio_fh_close. A handle never taken is closed with its future. */
int actio_file_open(actio_actor *files, const char *path, int flags,
                    mode_t mode, actio_future **out);

/** Reads up to len bytes at offset (pread). Value: actio_buf *, shorter at
 * the end of the file, empty past it. */
int actio_fh_pread(actio_fh *h, uint64_t offset, size_t len, actio_future **out);
/** Writes all of data (copied) at offset (pwrite). Value: NULL. */
int actio_fh_pwrite(actio_fh *h, uint64_t offset, const void *data, size_t len,
                    actio_future **out);
/** Sequential read and write at the handle's own position, in the order the
 * calls were made from one thread. @{ */
int actio_fh_read(actio_fh *h, size_t len, actio_future **out);
int actio_fh_write(actio_fh *h, const void *data, size_t len, actio_future **out);
/** @} */
/** fsync(2). Value: NULL. */
int actio_fh_sync(actio_fh *h, actio_future **out);
/** Closes the handle once the requests still using it are done; the future
 * completes after close(2). The handle must not be used after this call
 * returns 0. ACTIO_ESTATE if it is already closing; never ACTIO_ENOMEM. */
int actio_fh_close(actio_fh *h, actio_future **out);

/* ---- lines and streams ---- */

/** One line of a file (actio_file_lines). */
typedef struct actio_line {
  const char *data; /**< not NUL-terminated */
  size_t len;       /**< without its `"\n"` or `"\r\n"` */
} actio_line;

/** Called with the next complete lines of a file, in order; they are valid
 * during the call only. Runs on a file worker: keep it short, do not block.
 * A nonzero return stops the scan: a negative one (an ACTIO_* code or a
 * negated errno) fails the future with it, a positive one with
 * ACTIO_ECANCELED. */
typedef int (*actio_lines_fn)(void *arg, const actio_line *lines, size_t n);

/** Iterates the lines of a file in batches (Python's `async for line in f`
 * without a thread hop per line). Lines end at `"\n"`; a `"\r"` before it is
 * dropped; the last line may lack a newline; empty lines count; a line is
 * never split or truncated, however long. Value: uint64_t * (the count). */
int actio_file_lines(actio_actor *files, const char *path, actio_lines_fn fn,
                     void *arg, actio_future **out);

/** Called with each chunk of a streamed file (valid during the call). To
 * apply backpressure, set *ready to a future (a reference the stream takes):
 * the next chunk is read once it completes, without holding a worker; if it
 * fails, the stream fails with its error. A negative return fails the
 * stream with that code. */
typedef int (*actio_chunk_fn)(void *arg, const void *data, size_t len,
                              actio_future **ready);

/** Reads a file in chunks of `chunk` bytes (0: 128 KiB) to fn. For large files
 * and for feeding other actors (an HTTP upload, a database COPY).
 * Value: uint64_t * (bytes read). */
int actio_file_stream(actio_actor *files, const char *path, size_t chunk,
                      actio_chunk_fn fn, void *arg, actio_future **out);

/* ---- the file system ---- */

/** stat(2), following symlinks (within the sandbox). Value: struct stat *. */
int actio_file_stat(actio_actor *files, const char *path, actio_future **out);
/** Whether path exists. Value: int * (1 exists, 0 does not); other errors
 * fail the future. */
int actio_file_exists(actio_actor *files, const char *path, actio_future **out);
/** mkdir -p: creates path and missing parents; existing folders are fine.
 * Value: NULL. */
int actio_file_mkdir(actio_actor *files, const char *path, mode_t mode,
                     actio_future **out);
/** rename(2). Value: NULL. */
int actio_file_rename(actio_actor *files, const char *from, const char *to,
                      actio_future **out);
/** Removes a file or an empty folder. Value: NULL. */
int actio_file_unlink(actio_actor *files, const char *path, actio_future **out);
/** Lists a folder: value char ** (sorted names without "." and "..", ending
 * with NULL; one allocation). */
int actio_file_list(actio_actor *files, const char *path, actio_future **out);
/** Copies a regular file (copy_file_range where the kernel can), keeping
 * its mode. Value: NULL. */
int actio_file_copy(actio_actor *files, const char *from, const char *to,
                    actio_future **out);
/** Creates a new empty file named prefix + 6 random characters (prefix may
 * include a folder). Value: char * (its path). */
int actio_file_tempfile(actio_actor *files, const char *prefix,
                        actio_future **out);

/** Removes what atomic writes killed midway left in the folder dir (see
 * actio_file_write): the regular files whose names match
 * "." NAME ".actio-" 16 lowercase hex digits ".tmp"; not below dir, nothing
 * else. Run it when no atomic write or save_to into dir is in progress, from
 * any process (at start-up, say): a write whose temporary it removes fails
 * with -ENOENT and leaves the old file. Value: uint64_t * (files removed).
 * Fails with -ENOENT, -ENOTDIR, -EACCES, ... or ACTIO_ESANDBOX. */
int actio_file_clean_leftovers(actio_actor *files, const char *dir,
                               actio_future **out);

/** @} */

#ifdef __cplusplus
}
#endif
#endif /* ACTIO_FILE_H */

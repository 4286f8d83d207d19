/* file_io.h: blocking file-system operations for the file actor's workers:
 * plain syscalls, an optional sandbox root, a line splitter. Knows nothing
 * of futures or actors; every int return is 0 / a count, or a negated errno
 * (ACTIO_ESANDBOX for a path that would leave the sandbox). */
#ifndef ACTIO_IO_FILE_IO_H
#define ACTIO_IO_FILE_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

/* Where relative paths start. With `beneath` set, resolution may not leave
 * dirfd: no "..", absolute path or symlink that points outside. */
typedef struct actio__root {
  int dirfd; /* AT_FDCWD, or an O_PATH descriptor of the sandbox root */
  int beneath;
} actio__root;

/* Chooses how sandboxed paths resolve: 1 (default) openat2 where the kernel
 * has it, 0 the component walk. For tests of the fallback. */
void actio__fio_use_openat2(int on);

/* Opens dir as a sandbox root. Returns 0 or a negated errno. */
int actio__root_open(actio__root *r, const char *dir);
void actio__root_close(actio__root *r);

/* openat(2) with the root's rules. Returns an fd or a negated errno. */
int actio__fio_open(const actio__root *r, const char *path, int flags, mode_t mode);

/* Reads what is left of fd into a fresh buffer (NUL-terminated, not counted
 * in *len), up to max bytes (0: no limit; more fails with -EFBIG). */
int actio__fio_read_fd(int fd, char **data, size_t *len, size_t max);
/* Writes all of data, retrying short writes. At `offset` unless it is -1. */
int actio__fio_write_fd(int fd, const void *data, size_t len, int64_t offset);

/* Reads up to len bytes at offset, retrying short reads: returns the count
 * (short only at the end of the file) or a negated errno. */
int64_t actio__fio_pread(int fd, void *buf, size_t len, uint64_t offset);
/* One read(2) at the file position, retried on EINTR: the count (0 at the
 * end) or a negated errno. */
int64_t actio__fio_read(int fd, void *buf, size_t len);
/* fsync(2): 0 or a negated errno. */
int actio__fio_sync(int fd);

/* Calls `stop` between chunks of long operations; nonzero aborts the
 * operation with -ECANCELED. May be NULL. */
typedef int (*actio__fio_stop_fn)(void *arg);

/* ---- atomic replacement ---- */

/* A file being written that replaces its target whole once committed, in
 * the target's folder so the last step is a rename. Where the file system
 * has O_TMPFILE the content has no name until the commit, so a process
 * that dies leaves nothing; the commit links it straight to the target's
 * name when there is no target yet, else to a temporary name and renames
 * that over the target: a death between those two calls leaves the whole
 * new content under the temporary name. Elsewhere (EOPNOTSUPP, EISDIR or
 * EINVAL from O_TMPFILE, or no /proc) the content is written under the
 * temporary name from the start. Temporary names match
 * actio__fio_is_leftover. One thread at a time. */
typedef struct actio__fio_atomic actio__fio_atomic;

/* Starts replacing path under the root, a new file created with mode (less
 * the umask), a replacement with the mode of the file it replaces. The
 * target is not looked at before the commit (which refuses a folder,
 * device, FIFO or socket there: EISDIR or EINVAL); a missing folder fails
 * here. The root's descriptor must outlive a. Returns 0 and *out, or a
 * negated errno (nothing made). */
int actio__fio_atomic_open(const actio__root *r, const char *path, mode_t mode,
                           actio__fio_atomic **out);
/* Where the content goes (write at will; the commit closes it). */
int actio__fio_atomic_fd(const actio__fio_atomic *a);
/* Puts the content in place and frees a. With sync, fsyncs the file before
 * and the folder after (and the file again when it takes over a mode). Just before it links or renames, last_say (may be
 * NULL) gets a last say: nonzero aborts with -ECANCELED. On any failure or
 * refusal before the rename the old file is untouched; a failed folder
 * fsync (after it) returns its error with the new file in place, its name
 * maybe not on the disk. No temporary is left either way. */
int actio__fio_atomic_commit(actio__fio_atomic *a, int sync,
                             actio__fio_stop_fn last_say, void *arg);
/* fsync(2) of a's content, for a group commit: 0 or a negated errno. */
int actio__fio_atomic_flush(actio__fio_atomic *a);
/* Commits n replacements with one fsync per folder for them all (group
 * commit). Their contents are flushed here when devs is given (room for n:
 * one syncfs(2) per file system they are on, then an fsync of one of
 * them; on a file system syncfs may not flush, an fsync of each), else each was flushed with actio__fio_atomic_flush. Each is then
 * put in place as by actio__fio_atomic_commit (last_say with args[i]), and
 * each folder touched is fsynced once (folders named alike, under one
 * root, are opened once for the group). rcs[i] gets item i's result: its
 * own failure, its file system's flush's, or its folder fsync's for every
 * item in that folder. Frees every item; an item that failed leaves its
 * old file untouched and no temporary. */
void actio__fio_atomic_commit_group(actio__fio_atomic *const *as, size_t n, int *rcs,
                                    dev_t *devs, actio__fio_stop_fn last_say,
                                    void *const *args);
/* Whether a group may flush the contents on a file system of this type
 * (statfs's f_type) with one syncfs(2): the local ones known to flush what
 * it writes (ext2/3/4, XFS, Btrfs, F2FS, and tmpfs, with nothing to flush).
 * On any other (FUSE, NFS, CIFS, 9p, overlayfs...) syncfs may hand the
 * data on without asking the server or daemon to keep it: each content
 * there is fsynced instead. */
int actio__fio_syncfs_flushes(long f_type);
/* Tests only: when set, decides in place of actio__fio_syncfs_flushes. */
typedef int (*actio__fio_fs_hook_fn)(long f_type);
extern _Atomic(actio__fio_fs_hook_fn) actio__fio_fs_hook;
/* Drops the content: the old file is untouched, no temporary is left; frees
 * a. NULL accepted. */
void actio__fio_atomic_abort(actio__fio_atomic *a);
/* 1 if name has the temporary names' pattern, "." NAME ".actio-" 16
 * lowercase hex digits ".tmp", else 0. */
int actio__fio_is_leftover(const char *name);
/* Removes the regular files named by that pattern in the folder path under
 * the root (not below it). Returns how many, or a negated errno. */
int64_t actio__fio_clean_leftovers(const actio__root *r, const char *path);
/* Chooses where atomic replacements write: 1 O_TMPFILE where the file
 * system has it, 0 named temporaries only, -1 (the default) O_TMPFILE if
 * /proc is mounted. For tests of the fallback. */
void actio__fio_use_tmpfile(int on);
/* Chooses how an O_TMPFILE file gets its name: 1 (the default) linkat by
 * its descriptor while the kernel allows it, 0 through /proc/self/fd. For
 * tests of the fallback. */
void actio__fio_link_by_fd(int on);

/* The rest mirror their system calls, on paths under the root. */
int actio__fio_stat(const actio__root *r, const char *path, struct stat *st);
int actio__fio_mkdir_p(const actio__root *r, const char *path, mode_t mode);
int actio__fio_rename(const actio__root *r, const char *from, const char *to);
int actio__fio_unlink(const actio__root *r, const char *path);
/* Copies a regular file (copy_file_range, falling back to read/write). */
int actio__fio_copy(const actio__root *r, const char *from, const char *to,
                    actio__fio_stop_fn stop, void *stop_arg);
/* Names in a folder, without "." and "..", sorted, as one allocation:
 * *names is an array of *count pointers into the same block. */
int actio__fio_list(const actio__root *r, const char *path, char ***names,
                    size_t *count);
/* Creates a new empty file "<prefix>XXXXXX" under the root; *path gets the
 * name (caller frees). Returns an open fd. */
int actio__fio_mkstemp(const actio__root *r, const char *prefix, char **path);

/* ---- lines ---- */

typedef struct actio__line {
  const char *data;
  size_t len; /* without the "\n" or "\r\n" */
} actio__line;

/* Called with complete lines in file order; they are valid during the call.
 * Nonzero stops the scan with that value. */
typedef int (*actio__lines_cb)(void *arg, const actio__line *lines, size_t n);

/* Splits what is left of fd into lines on "\n" (a "\r" before it is dropped),
 * calling `cb` with batches of up to `batch` lines. The last line may lack a
 * newline; empty lines count. A line longer than the buffer grows it: never
 * split, never truncated (up to max_line bytes, 0 = no limit, else -E2BIG).
 * Returns the number of lines, or a negated errno / cb's value. */
int64_t actio__fio_lines(int fd, size_t batch, size_t max_line,
                         actio__lines_cb cb, void *arg);

/* Which splitter actio__fio_lines runs, for tests that must reach each one:
 * the best the CPU has (the default), memchr per line (other CPUs'), SSE2
 * or AVX2. Returns 0, -EINVAL (no such splitter) or -ENOTSUP (SSE2/AVX2
 * off x86-64, AVX2 where the CPU lacks it). Any thread; later calls use it. */
enum { ACTIO__SPLIT_AUTO, ACTIO__SPLIT_MEMCHR, ACTIO__SPLIT_SSE2, ACTIO__SPLIT_AVX2 };
int actio__fio_lines_split(int how);

#endif

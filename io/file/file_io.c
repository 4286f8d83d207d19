/* file_io.c: blocking file operations with an optional sandbox root
 * (openat2 RESOLVE_BENEATH, or a checked component walk where the kernel
 * lacks it) and a memchr-based line splitter. */
#include "io/file/file_io.h"

#include <dirent.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "actio/error.h"

#define IO_CHUNK (1u << 20)

static int neg_errno(void) { return errno ? -errno : -EIO; }

/* Names for temporary files: unique within the process by the counter,
 * across processes by the pid, across runs by the clock. */
static unsigned long long unique_suffix(void) {
  static _Atomic unsigned long long counter;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  unsigned long long c = atomic_fetch_add_explicit(&counter, 1, memory_order_relaxed);
  return (c << 40) ^ ((unsigned long long)getpid() << 20) ^
         (unsigned long long)ts.tv_nsec ^ ((unsigned long long)ts.tv_sec << 30);
}

/* ---- sandbox resolution ---- */

int actio__root_open(actio__root *r, const char *dir) {
  if (dir == NULL) {
    *r = (actio__root){AT_FDCWD, 0};
    return 0;
  }
  int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return neg_errno();
  *r = (actio__root){fd, 1};
  return 0;
}

void actio__root_close(actio__root *r) {
  if (r->beneath && r->dirfd >= 0)
    close(r->dirfd);
  r->dirfd = -1;
}

/* Cleared on the first ENOSYS; relaxed: every thread reaches the same value. */
static _Atomic int has_openat2 = 1;

void actio__fio_use_openat2(int on) {
  atomic_store_explicit(&has_openat2, on ? 1 : 0, memory_order_relaxed);
}

/* Fallback walk: every component opened with O_NOFOLLOW beneath the last,
 * ".." refused, so neither a symlink nor ".." can lead out. Symlinks are
 * refused outright here, a stricter rule than openat2's. */
static int open_walk(const actio__root *r, const char *path, int flags, mode_t mode) {
  char *copy = strdup(path), *save = NULL;
  if (copy == NULL)
    return -ENOMEM;
  int dir = r->dirfd, rc = -ENOENT;
  char *part = strtok_r(copy, "/", &save);
  while (part != NULL) {
    char *next = strtok_r(NULL, "/", &save);
    if (strcmp(part, "..") == 0) {
      rc = ACTIO_ESANDBOX;
      break;
    }
    int fd = next ? openat(dir, part, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                  : openat(dir, part, flags | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0) {
      rc = errno == ELOOP ? ACTIO_ESANDBOX : neg_errno();
      break;
    }
    if (dir != r->dirfd)
      close(dir);
    dir = fd;
    rc = fd;
    part = next;
  }
  if (rc < 0 && dir != r->dirfd)
    close(dir);
  free(copy);
  return rc;
}

int actio__fio_open(const actio__root *r, const char *path, int flags, mode_t mode) {
  if (path == NULL || *path == '\0')
    return -EINVAL;
  if (!r->beneath) {
    int fd = openat(r->dirfd, path, flags | O_CLOEXEC, mode);
    return fd < 0 ? neg_errno() : fd;
  }
  if (path[0] == '/')
    return ACTIO_ESANDBOX;
  if (atomic_load_explicit(&has_openat2, memory_order_relaxed)) {
    struct open_how how = {
        .flags = (uint64_t)(flags | O_CLOEXEC),
        .mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
    };
    long fd = syscall(SYS_openat2, r->dirfd, path, &how, sizeof how);
    if (fd >= 0)
      return (int)fd;
    if (errno == EXDEV)
      return ACTIO_ESANDBOX;
    if (errno != ENOSYS)
      return neg_errno();
    atomic_store_explicit(&has_openat2, 0, memory_order_relaxed);
  }
  return open_walk(r, path, flags, mode);
}

/* Splits path into its folder, the first *dir_len bytes of path ("/" for
 * "/x"; none, meaning ".", for "x"), and its last component *leaf, which
 * points into path.
 * Returns 0, or the error for a path that names no file in a folder. */
static int split_path(const actio__root *r, const char *path, const char **leaf,
                      size_t *dir_len) {
  if (path == NULL || *path == '\0')
    return -EINVAL;
  const char *slash = strrchr(path, '/');
  *leaf = slash ? slash + 1 : path;
  *dir_len = slash == NULL ? 0 : slash == path ? 1 : (size_t)(slash - path);
  if (r->beneath && strcmp(*leaf, "..") == 0)
    return ACTIO_ESANDBOX;
  if (**leaf == '\0' || strcmp(*leaf, ".") == 0 || strcmp(*leaf, "..") == 0)
    return -EINVAL;
  return 0;
}

/* Opens beneath the root, with flags, the folder made of path's first
 * dir_len bytes (as split_path gives them). */
static int open_folder(const actio__root *r, const char *path, size_t dir_len,
                       int flags, mode_t mode) {
  if (dir_len == 0)
    return actio__fio_open(r, ".", flags, mode);
  char *dir = strndup(path, dir_len);
  if (dir == NULL)
    return -ENOMEM;
  int fd = actio__fio_open(r, dir, flags, mode);
  free(dir);
  return fd;
}

/* Splits path into the folder it names, opened beneath the root (readable,
 * so it can be fsynced), and its last component. *leaf points into path. */
static int open_parent(const actio__root *r, const char *path, const char **leaf) {
  size_t dir_len;
  int rc = split_path(r, path, leaf, &dir_len);
  return rc != 0 ? rc : open_folder(r, path, dir_len, O_RDONLY | O_DIRECTORY, 0);
}

/* Opens the folder path beneath the root for readdir. */
static int open_dir(const actio__root *r, const char *path, DIR **out) {
  int fd = actio__fio_open(r, path, O_RDONLY | O_DIRECTORY, 0);
  if (fd < 0)
    return fd;
  if ((*out = fdopendir(fd)) == NULL) {
    int e = neg_errno();
    close(fd);
    return e;
  }
  return 0;
}

/* ---- whole files ---- */

int actio__fio_read_fd(int fd, char **data, size_t *len, size_t max) {
  struct stat st;
  size_t cap = 4096, n = 0, size = 0;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
    /* A regular file is read up to the size it has now, in one read when
     * it can be: no probe for an end of file that fstat already gave. */
    size = (size_t)st.st_size;
    cap = size + 1;
  }
  if (max != 0 && cap - 1 > max)
    cap = max + 1; /* max < cap - 1 < SIZE_MAX: no wrap */
  char *buf = malloc(cap + 1);
  if (buf == NULL)
    return -ENOMEM;
  for (;;) {
    if (n == cap) {
      if (max != 0 && n > max) {
        free(buf);
        return -EFBIG;
      }
      size_t ncap = cap * 2;
      char *nb = realloc(buf, ncap + 1);
      if (nb == NULL) {
        free(buf);
        return -ENOMEM;
      }
      buf = nb;
      cap = ncap;
    }
    ssize_t r = read(fd, buf + n, cap - n);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      int e = neg_errno();
      free(buf);
      return e;
    }
    if (r == 0)
      break;
    n += (size_t)r;
    if (size != 0 && n == size)
      break;
  }
  if (max != 0 && n > max) {
    free(buf);
    return -EFBIG;
  }
  buf[n] = '\0';
  *data = buf;
  *len = n;
  return 0;
}

int64_t actio__fio_pread(int fd, void *buf, size_t len, uint64_t offset) {
  size_t got = 0;
  while (got < len) {
    ssize_t n = pread(fd, (char *)buf + got, len - got, (off_t)(offset + got));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -errno;
    if (n == 0)
      break;
    got += (size_t)n;
  }
  return (int64_t)got;
}

int64_t actio__fio_read(int fd, void *buf, size_t len) {
  for (;;) {
    ssize_t n = read(fd, buf, len);
    if (n >= 0)
      return n;
    if (errno != EINTR)
      return -errno;
  }
}

int actio__fio_sync(int fd) { return fsync(fd) == 0 ? 0 : -errno; }

int actio__fio_write_fd(int fd, const void *data, size_t len, int64_t offset) {
  const char *p = data;
  while (len > 0) {
    ssize_t w = offset < 0 ? write(fd, p, len) : pwrite(fd, p, len, offset);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return neg_errno();
    }
    p += w;
    len -= (size_t)w;
    if (offset >= 0)
      offset += w;
  }
  return 0;
}

/* ---- atomic replacement ---- */

/* The fallback's temporaries and the name an O_TMPFILE file is linked under
 * before its rename: "." LEAF ".actio-" 16 hex digits ".tmp", LEAF being
 * the target's name cut to 60 bytes (file.h documents the pattern). */
#define LEFTOVER_MID ".actio-"
#define LEFTOVER_END ".tmp"
#define LEFTOVER_HEX 16

struct actio__fio_atomic {
  actio__root root; /* the commit opens the folder beneath it */
  int dir;          /* the target's folder, from the commit on; else -1 */
  int own_dir;      /* dir is this item's to close (not lent, not tmp_dir) */
  int tmp_dir;      /* the fallback's: the folder its temporary was made in */
  int fd;           /* the new content */
  int named;        /* the fallback: tmp names the content from the start */
  size_t dir_len;   /* path[0, dir_len) names the folder (split_path) */
  const char *leaf; /* the target's name in it, in path */
  char tmp[1 + 60 + sizeof LEFTOVER_MID - 1 + LEFTOVER_HEX + sizeof LEFTOVER_END];
  char path[];      /* the target, as given */
};

/* -1 until first use; then 1: O_TMPFILE where the file system has it, 0:
 * named temporaries only. An O_TMPFILE file is linked by its descriptor
 * where the kernel allows that, else through /proc/self/fd (link_fd):
 * without /proc, where the first may be refused too, it stays off.
 * Relaxed: every thread reaches the same value. */
static _Atomic int use_tmpfile = -1;

void actio__fio_use_tmpfile(int on) {
  atomic_store_explicit(&use_tmpfile, on < 0 ? -1 : on != 0, memory_order_relaxed);
}

static int tmpfile_on(void) {
  int on = atomic_load_explicit(&use_tmpfile, memory_order_relaxed);
  if (on < 0) {
    on = access("/proc/self/fd", X_OK) == 0;
    atomic_store_explicit(&use_tmpfile, on, memory_order_relaxed);
  }
  return on;
}

static void name_tmp(actio__fio_atomic *a) {
  snprintf(a->tmp, sizeof a->tmp, ".%.60s" LEFTOVER_MID "%016llx" LEFTOVER_END,
           a->leaf, unique_suffix());
}

int actio__fio_is_leftover(const char *name) {
  size_t l = strlen(name), tail = sizeof LEFTOVER_MID - 1 + LEFTOVER_HEX +
                                  sizeof LEFTOVER_END - 1;
  if (name[0] != '.' || l < tail + 2)
    return 0;
  const char *t = name + l - tail;
  if (memcmp(t, LEFTOVER_MID, sizeof LEFTOVER_MID - 1) != 0 ||
      strcmp(t + tail - (sizeof LEFTOVER_END - 1), LEFTOVER_END) != 0)
    return 0;
  for (int i = 0; i < LEFTOVER_HEX; i++)
    if (!strchr("0123456789abcdef", t[sizeof LEFTOVER_MID - 1 + i]))
      return 0;
  return 1;
}

/* The fallback: a new file under a fresh temporary name. */
static int open_named(actio__fio_atomic *a, mode_t mode) {
  for (int attempt = 0; attempt < 100; attempt++) {
    name_tmp(a);
    int fd = openat(a->tmp_dir, a->tmp,
                    O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd >= 0 || errno != EEXIST) {
      if (fd < 0)
        a->tmp[0] = '\0';
      return fd < 0 ? neg_errno() : fd;
    }
  }
  a->tmp[0] = '\0';
  return -EEXIST;
}

/* Frees a; removes the temporary name it still holds. Its dir may be lent
 * to other items: free them first. */
static void atomic_free(actio__fio_atomic *a) {
  if (a->fd >= 0)
    close(a->fd);
  if (a->tmp[0] != '\0')
    unlinkat(a->named ? a->tmp_dir : a->dir, a->tmp, 0);
  if (a->own_dir)
    close(a->dir);
  if (a->tmp_dir >= 0)
    close(a->tmp_dir);
  free(a);
}

/* The target is looked at only when the commit puts the content in place
 * (see put_in_place): a new file costs no stat, and the folder is opened
 * by the commit, once for a whole group. */
int actio__fio_atomic_open(const actio__root *r, const char *path, mode_t mode,
                           actio__fio_atomic **out) {
  const char *leaf;
  size_t dir_len;
  int rc = split_path(r, path, &leaf, &dir_len);
  if (rc != 0)
    return rc;
  size_t l = strlen(path) + 1;
  actio__fio_atomic *a = malloc(sizeof *a + l);
  if (a == NULL)
    return -ENOMEM;
  *a = (actio__fio_atomic){.root = *r, .dir = -1, .tmp_dir = -1, .fd = -1,
                           .dir_len = dir_len};
  memcpy(a->path, path, l);
  a->leaf = a->path + (leaf - path);
  int fd = -EOPNOTSUPP;
  if (tmpfile_on())
    fd = open_folder(r, path, dir_len, O_TMPFILE | O_WRONLY, mode);
  /* EISDIR: a kernel without O_TMPFILE; the others: a file system. */
  if (fd == -EOPNOTSUPP || fd == -EISDIR || fd == -EINVAL) {
    a->named = 1;
    fd = a->tmp_dir = open_folder(r, path, dir_len, O_RDONLY | O_DIRECTORY, 0);
    /* Its temporary shows its content under a name from the start: never
     * more open than the file it replaces (a 0600 file's new content is
     * not 0644 meanwhile). take_over makes the mode exact at the commit. */
    struct stat old;
    if (fd >= 0 && fstatat(fd, a->leaf, &old, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISREG(old.st_mode))
      mode &= old.st_mode & 0777;
    if (fd >= 0)
      fd = open_named(a, mode);
  }
  if (fd < 0) {
    atomic_free(a);
    return fd;
  }
  a->fd = fd;
  *out = a;
  return 0;
}

int actio__fio_atomic_fd(const actio__fio_atomic *a) { return a->fd; }

/* linkat of an O_TMPFILE file by its descriptor (AT_EMPTY_PATH: root, or
 * CAP_DAC_READ_SEARCH, or since Linux 6.10 the file's opener) until the
 * kernel refuses that (ENOENT, where a link through /proc/self/fd then
 * works), else through /proc/self/fd, a path lookup more. Relaxed: every
 * thread reaches the same value. */
static _Atomic int link_by_fd = 1;

void actio__fio_link_by_fd(int on) {
  atomic_store_explicit(&link_by_fd, on != 0, memory_order_relaxed);
}

static int link_fd(int fd, int dir, const char *name) {
  int by_fd = atomic_load_explicit(&link_by_fd, memory_order_relaxed);
  if (by_fd && linkat(fd, "", dir, name, AT_EMPTY_PATH) == 0)
    return 0;
  if (by_fd && errno != ENOENT)
    return neg_errno();
  char proc[32];
  snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
  if (linkat(AT_FDCWD, proc, dir, name, AT_SYMLINK_FOLLOW) != 0)
    return neg_errno();
  if (by_fd) /* refused by descriptor, not for a missing folder */
    atomic_store_explicit(&link_by_fd, 0, memory_order_relaxed);
  return 0;
}

/* Links an O_TMPFILE file under a fresh temporary name (in a->tmp), to be
 * renamed over its target. */
static int link_tmp(actio__fio_atomic *a) {
  for (int attempt = 0; attempt < 100; attempt++) {
    name_tmp(a);
    int rc = link_fd(a->fd, a->dir, a->tmp);
    if (rc != -EEXIST) {
      if (rc != 0)
        a->tmp[0] = '\0';
      return rc;
    }
  }
  a->tmp[0] = '\0';
  return -EEXIST;
}

/* The target exists (or did): refused unless it is a regular file or a
 * symbolic link, since the rename would put a plain file in place of a
 * folder, a device (/dev/null), a FIFO or a socket. A regular file's mode
 * passes to the new content, fsynced again with sync when it changes (the
 * content's flush did not write it). */
static int take_over(actio__fio_atomic *a, int sync) {
  struct stat old, now;
  if (fstatat(a->dir, a->leaf, &old, AT_SYMLINK_NOFOLLOW) != 0)
    return errno == ENOENT ? 0 : neg_errno(); /* gone meanwhile: renamed to */
  if (S_ISDIR(old.st_mode))
    return -EISDIR;
  if (!S_ISREG(old.st_mode))
    return S_ISLNK(old.st_mode) ? 0 : -EINVAL;
  if (fstat(a->fd, &now) != 0)
    return neg_errno();
  if ((now.st_mode & 07777) == (old.st_mode & 07777))
    return 0;
  if (fchmod(a->fd, old.st_mode & 07777) != 0 || (sync && fsync(a->fd) != 0))
    return neg_errno();
  return 0;
}

/* Opens a's folder beneath its root as a->dir, a's to close. */
static int open_dir_of(actio__fio_atomic *a) {
  int fd = open_folder(&a->root, a->path, a->dir_len, O_RDONLY | O_DIRECTORY, 0);
  if (fd < 0)
    return fd;
  a->dir = fd;
  a->own_dir = 1;
  return 0;
}

/* Links or renames the content into place in a->dir and closes it; a stays
 * to be freed. An O_TMPFILE file is linked straight to its target's name,
 * which fails only when a file has it (EEXIST); only then is the target
 * looked at, and the content linked under a temporary name and renamed
 * over it. With sync, a mode taken over is made durable too. */
static int put_in_place(actio__fio_atomic *a, int sync, actio__fio_stop_fn last_say,
                        void *arg) {
  int rc = 0;
  if (last_say != NULL && last_say(arg))
    rc = -ECANCELED;
  if (rc == 0 && a->named)
    rc = take_over(a, sync);
  else if (rc == 0 && (rc = link_fd(a->fd, a->dir, a->leaf)) == -EEXIST &&
           (rc = take_over(a, sync)) == 0)
    rc = link_tmp(a);
  if (close(a->fd) != 0 && rc == 0)
    rc = neg_errno();
  a->fd = -1;
  if (rc == 0 && a->tmp[0] != '\0') {
    if (renameat(a->named ? a->tmp_dir : a->dir, a->tmp, a->dir, a->leaf) != 0)
      rc = neg_errno(); /* atomic_free removes the temporary */
    else
      a->tmp[0] = '\0';
  }
  return rc;
}

int actio__fio_atomic_commit(actio__fio_atomic *a, int sync,
                             actio__fio_stop_fn last_say, void *arg) {
  int rc = sync && fsync(a->fd) != 0 ? neg_errno() : 0;
  if (rc == 0 && a->named)
    a->dir = a->tmp_dir;
  else if (rc == 0)
    rc = open_dir_of(a);
  if (rc == 0)
    rc = put_in_place(a, sync, last_say, arg);
  /* The new name itself durable. A failure fails the write, as a group's
   * does: the name is in place but may not be on the disk. */
  if (rc == 0 && sync && fsync(a->dir) != 0)
    rc = neg_errno();
  atomic_free(a);
  return rc;
}

int actio__fio_atomic_flush(actio__fio_atomic *a) {
  return fsync(a->fd) == 0 ? 0 : neg_errno();
}

/* Whether a and b name their folders alike, under one root. */
static int same_folder(const actio__fio_atomic *a, const actio__fio_atomic *b) {
  return a->root.dirfd == b->root.dirfd && a->root.beneath == b->root.beneath &&
         a->dir_len == b->dir_len && memcmp(a->path, b->path, a->dir_len) == 0;
}

_Atomic(actio__fio_fs_hook_fn) actio__fio_fs_hook;

int actio__fio_syncfs_flushes(long f_type) {
  switch (f_type) {
  case EXT4_SUPER_MAGIC: /* ext2 and ext3 too */
  case XFS_SUPER_MAGIC:
  case BTRFS_SUPER_MAGIC:
  case F2FS_SUPER_MAGIC:
  case TMPFS_MAGIC:
    return 1;
  default:
    return 0;
  }
}

/* Whether one syncfs flushes the contents on fd's file system. */
static int syncfs_flushes(int fd) {
  struct statfs s;
  if (fstatfs(fd, &s) != 0)
    return 0; /* the safe way: an fsync each */
  actio__fio_fs_hook_fn hook = atomic_load_explicit(&actio__fio_fs_hook, memory_order_acquire);
  return hook != NULL ? hook((long)s.f_type) : actio__fio_syncfs_flushes((long)s.f_type);
}

/* One flush for the contents of a group, for each file system they are on:
 * syncfs(2) writes all of its dirty data and metadata, then has the disk
 * flush its cache; an fsync of one of the contents (clean by then: a flush
 * alone) follows, since an ext4 without a journal writes the inodes after
 * that flush. Only then may a name point at them. A failure fails every
 * item on that file system. Then each other content's own write error, if
 * any, fails it alone: syncfs reports an error once to whoever asks first
 * (and not at all before Linux 5.8), a descriptor's own since its open
 * (sync_file_range's wait: no writing, its pages are clean by then). On a
 * file system where syncfs may not flush (actio__fio_syncfs_flushes), each
 * content is fsynced instead. */
static void flush_file_systems(actio__fio_atomic *const *as, size_t n, int *rcs,
                               dev_t *devs) {
  for (size_t i = 0; i < n; i++) {
    struct stat st;
    rcs[i] = fstat(as[i]->fd, &st) == 0 ? 0 : neg_errno();
    devs[i] = rcs[i] == 0 ? st.st_dev : 0;
  }
  for (size_t i = 0; i < n; i++) {
    int first = rcs[i] == 0 && devs[i] != 0; /* 0: flushed on its own */
    for (size_t j = 0; j < i && first; j++)
      first = rcs[j] != 0 || devs[j] != devs[i];
    if (!first)
      continue;
    if (!syncfs_flushes(as[i]->fd)) {
      dev_t dev = devs[i];
      for (size_t k = i; k < n; k++)
        if (rcs[k] == 0 && devs[k] == dev) {
          rcs[k] = actio__fio_atomic_flush(as[k]);
          devs[k] = 0;
        }
      continue;
    }
    int rc = syncfs(as[i]->fd) == 0 && fsync(as[i]->fd) == 0 ? 0 : neg_errno();
    for (size_t k = i + 1; k < n; k++)
      if (rcs[k] == 0 && devs[k] == devs[i])
        rcs[k] = rc != 0 ? rc
                 : sync_file_range(as[k]->fd, 0, 0, SYNC_FILE_RANGE_WAIT_BEFORE) == 0
                     ? 0
                     : neg_errno();
    rcs[i] = rc;
  }
}

void actio__fio_atomic_commit_group(actio__fio_atomic *const *as, size_t n, int *rcs,
                                    dev_t *devs, actio__fio_stop_fn last_say,
                                    void *const *args) {
  for (size_t i = 0; i < n; i++)
    rcs[i] = 0;
  if (devs != NULL)
    flush_file_systems(as, n, rcs, devs);
  /* Each folder opened once for the group: an item borrows the folder of
   * an earlier one that names it alike (a fallback's own folder counts),
   * so names given alike share one descriptor, and one fsync below. Two
   * names of one folder ("d" and "./d") get two: more flushes, never
   * fewer. */
  for (size_t i = 0; i < n; i++) {
    actio__fio_atomic *a = as[i];
    if (rcs[i] != 0)
      continue; /* its file system's flush failed: left as it was */
    for (size_t j = 0; j < i && a->dir < 0; j++)
      if (as[j]->dir >= 0 && same_folder(as[j], a))
        a->dir = as[j]->dir;
    if (a->dir < 0 && a->named)
      a->dir = a->tmp_dir;
    else if (a->dir < 0)
      rcs[i] = open_dir_of(a);
    if (rcs[i] == 0)
      rcs[i] = put_in_place(a, 1, last_say, args[i]);
  }
  /* One fsync per folder, after all of its renames. A failure fails every
   * item put in that folder: a second fsync could succeed without the
   * names being on the disk. */
  for (size_t i = 0; i < n; i++) {
    if (rcs[i] != 0)
      continue;
    int first = 1;
    for (size_t j = 0; j < i && first; j++)
      first = rcs[j] != 0 || as[j]->dir != as[i]->dir;
    if (first && fsync(as[i]->dir) != 0) {
      int rc = neg_errno();
      for (size_t k = i; k < n; k++)
        if (rcs[k] == 0 && as[k]->dir == as[i]->dir)
          rcs[k] = rc;
    }
  }
  /* Borrowers (later) before lenders. */
  for (size_t i = n; i-- > 0;)
    atomic_free(as[i]);
}

void actio__fio_atomic_abort(actio__fio_atomic *a) {
  if (a != NULL)
    atomic_free(a);
}

int64_t actio__fio_clean_leftovers(const actio__root *r, const char *path) {
  DIR *d;
  int rc = open_dir(r, path, &d);
  if (rc != 0)
    return rc;
  int64_t removed = 0;
  struct dirent *e;
  while (rc == 0 && (errno = 0, e = readdir(d)) != NULL) {
    struct stat st;
    if (!actio__fio_is_leftover(e->d_name))
      continue;
    /* Only regular files: a folder or a link of that name is not ours. */
    if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISREG(st.st_mode))
      continue;
    if (unlinkat(dirfd(d), e->d_name, 0) == 0)
      removed++;
    else if (errno != ENOENT) /* ENOENT: removed meanwhile */
      rc = neg_errno();
  }
  if (rc == 0 && errno != 0)
    rc = neg_errno();
  closedir(d);
  return rc != 0 ? rc : removed;
}

/* ---- the file system ---- */

int actio__fio_stat(const actio__root *r, const char *path, struct stat *st) {
  if (!r->beneath) {
    if (path == NULL || *path == '\0')
      return -EINVAL;
    return fstatat(r->dirfd, path, st, 0) == 0 ? 0 : neg_errno();
  }
  int fd = actio__fio_open(r, path, O_PATH, 0);
  if (fd < 0)
    return fd;
  int rc = fstat(fd, st) == 0 ? 0 : neg_errno();
  close(fd);
  return rc;
}

int actio__fio_mkdir_p(const actio__root *r, const char *path, mode_t mode) {
  if (path == NULL || *path == '\0')
    return -EINVAL;
  char *copy = strdup(path);
  if (copy == NULL)
    return -ENOMEM;
  int rc = 0;
  size_t n = strlen(copy);
  while (n > 1 && copy[n - 1] == '/')
    copy[--n] = '\0';
  /* Create each prefix in turn; existing folders are fine. Empty and "."
   * components name nothing new; ".." is checked by the resolution of the
   * prefixes that follow it (refused in a sandbox). */
  for (char *p = copy + 1;; p++) {
    int end = *p == '\0';
    if (*p != '/' && !end)
      continue;
    *p = '\0';
    const char *last = strrchr(copy, '/');
    last = last ? last + 1 : copy;
    int skip = *last == '\0' || strcmp(last, ".") == 0 ||
               (strcmp(last, "..") == 0 && !r->beneath);
    const char *leaf;
    int dir = skip ? 0 : open_parent(r, copy, &leaf);
    if (dir < 0) {
      rc = dir;
    } else if (!skip) {
      if (mkdirat(dir, leaf, mode) != 0 && errno != EEXIST)
        rc = neg_errno();
      close(dir);
    }
    if (rc != 0 || end)
      break;
    *p = '/';
  }
  if (rc == 0) { /* the last one must be a folder, not a file */
    struct stat st;
    rc = actio__fio_stat(r, copy, &st);
    if (rc == 0 && !S_ISDIR(st.st_mode))
      rc = -ENOTDIR;
  }
  free(copy);
  return rc;
}

int actio__fio_rename(const actio__root *r, const char *from, const char *to) {
  const char *lf, *lt;
  int df = open_parent(r, from, &lf);
  if (df < 0)
    return df;
  int dt = open_parent(r, to, &lt);
  if (dt < 0) {
    close(df);
    return dt;
  }
  int rc = renameat(df, lf, dt, lt) == 0 ? 0 : neg_errno();
  close(df);
  close(dt);
  return rc;
}

int actio__fio_unlink(const actio__root *r, const char *path) {
  const char *leaf;
  int dir = open_parent(r, path, &leaf);
  if (dir < 0)
    return dir;
  int rc = unlinkat(dir, leaf, 0) == 0 ? 0 : neg_errno();
  if (rc == -EISDIR && unlinkat(dir, leaf, AT_REMOVEDIR) == 0)
    rc = 0; /* an empty folder goes too, as with remove(3) */
  close(dir);
  return rc;
}

int actio__fio_copy(const actio__root *r, const char *from, const char *to,
                    actio__fio_stop_fn stop, void *stop_arg) {
  int in = actio__fio_open(r, from, O_RDONLY, 0);
  if (in < 0)
    return in;
  struct stat st;
  if (fstat(in, &st) != 0 || !S_ISREG(st.st_mode)) {
    int rc = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
    close(in);
    return rc;
  }
  int out = actio__fio_open(r, to, O_WRONLY | O_CREAT | O_TRUNC, st.st_mode & 07777);
  if (out < 0) {
    close(in);
    return out;
  }
  int rc = 0, fallback = 0;
  char *buf = NULL;
  for (;;) {
    if (stop != NULL && stop(stop_arg)) {
      rc = -ECANCELED;
      break;
    }
    ssize_t n;
    if (!fallback) {
      n = copy_file_range(in, NULL, out, NULL, IO_CHUNK, 0);
      if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL ||
                    errno == EOPNOTSUPP)) {
        fallback = 1;
        continue;
      }
    } else {
      if (buf == NULL && (buf = malloc(IO_CHUNK)) == NULL) {
        rc = -ENOMEM;
        break;
      }
      n = read(in, buf, IO_CHUNK);
      if (n > 0 && (rc = actio__fio_write_fd(out, buf, (size_t)n, -1)) != 0)
        break;
    }
    if (n < 0) {
      if (errno == EINTR)
        continue;
      rc = neg_errno();
      break;
    }
    if (n == 0)
      break;
  }
  free(buf);
  close(in);
  if (close(out) != 0 && rc == 0)
    rc = neg_errno();
  if (rc != 0)
    actio__fio_unlink(r, to);
  return rc;
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

int actio__fio_list(const actio__root *r, const char *path, char ***names,
                    size_t *count) {
  DIR *d;
  int rc = open_dir(r, path, &d);
  if (rc != 0)
    return rc;
  /* Two passes over one growing text block, then the pointer array in front
   * of it, so the caller frees a single allocation. */
  size_t n = 0, bytes = 0, cap = 4096;
  char *text = malloc(cap);
  rc = text ? 0 : -ENOMEM;
  struct dirent *e;
  while (rc == 0 && (errno = 0, e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    size_t l = strlen(e->d_name) + 1;
    if (bytes + l > cap) {
      while (bytes + l > cap)
        cap *= 2;
      char *t = realloc(text, cap);
      if (t == NULL) {
        rc = -ENOMEM;
        break;
      }
      text = t;
    }
    memcpy(text + bytes, e->d_name, l);
    bytes += l;
    n++;
  }
  if (rc == 0 && errno != 0)
    rc = neg_errno();
  closedir(d);
  char **out = NULL;
  if (rc == 0 && (out = malloc((n + 1) * sizeof *out + bytes)) == NULL)
    rc = -ENOMEM;
  if (rc == 0) {
    char *block = (char *)(out + n + 1);
    memcpy(block, text, bytes);
    for (size_t i = 0; i < n; i++) {
      out[i] = block;
      block += strlen(block) + 1;
    }
    out[n] = NULL;
    qsort(out, n, sizeof *out, cmp_names);
    *names = out;
    *count = n;
  }
  free(text);
  return rc;
}

int actio__fio_mkstemp(const actio__root *r, const char *prefix, char **path) {
  size_t l = strlen(prefix);
  char *name = malloc(l + 7);
  if (name == NULL)
    return -ENOMEM;
  for (int attempt = 0; attempt < 100; attempt++) {
    static const char abc[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    unsigned long long x = unique_suffix();
    memcpy(name, prefix, l);
    for (int i = 0; i < 6; i++, x /= sizeof abc - 1)
      name[l + i] = abc[x % (sizeof abc - 1)];
    name[l + 6] = '\0';
    int fd = actio__fio_open(r, name, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd >= 0) {
      *path = name;
      return fd;
    }
    if (fd != -EEXIST) {
      free(name);
      return fd;
    }
  }
  free(name);
  return -EEXIST;
}

/* ---- lines ---- */

/* The batch being filled, and where it goes. */
typedef struct splitter {
  actio__line *lines;
  size_t n, batch, max_line;
  int64_t count;
  actio__lines_cb cb;
  void *arg;
} splitter;

/* Ends a line at buf[pos] ('\n' there, or the end of the file when eof):
 * records [*start, pos) without a "\r" before the newline, and hands over a
 * full batch. Returns 0 or the error that stops the scan. */
static int end_line(splitter *sp, char *buf, size_t *start, size_t pos, int nl) {
  size_t len = pos - *start;
  if (sp->max_line != 0 && len > sp->max_line)
    return -E2BIG;
  if (nl && len > 0 && buf[pos - 1] == '\r')
    len--;
  sp->lines[sp->n++] = (actio__line){buf + *start, len};
  *start = pos + 1;
  if (sp->n < sp->batch)
    return 0;
  sp->count += (int64_t)sp->n;
  size_t n = sp->n;
  sp->n = 0;
  return sp->cb(sp->arg, sp->lines, n);
}

/* Ends a line at each bit set in mask (bit k: a '\n' at buf[base + k]). */
static inline int end_lines_in_mask(splitter *sp, char *buf, size_t *start,
                                    size_t base, uint64_t mask) {
  while (mask != 0) {
    int rc = end_line(sp, buf, start, base + (size_t)__builtin_ctzll(mask), 1);
    if (rc != 0)
      return rc;
    mask &= mask - 1;
  }
  return 0;
}

/* The tail (and the whole range on other CPUs): memchr per line. */
static int split_tail(splitter *sp, char *buf, size_t *start, size_t i, size_t to) {
  while (i < to) {
    char *hit = memchr(buf + i, '\n', to - i);
    if (hit == NULL)
      break;
    i = (size_t)(hit - buf);
    int rc = end_line(sp, buf, start, i++, 1);
    if (rc != 0)
      return rc;
  }
  return 0;
}

/*
 * Ends a line at every '\n' in buf[from, to). Lines are short on average
 * (tens of bytes), so instead of a memchr call per line this compares 64
 * bytes at a time and walks the bits of the match mask: AVX2 where the CPU
 * has it (checked once at run time), SSE2 (every x86-64) otherwise.
 */
#if defined(__x86_64__)
__attribute__((target("avx2"))) static int split_avx2(splitter *sp, char *buf,
                                                      size_t *start, size_t from,
                                                      size_t to) {
  const __m256i nl = _mm256_set1_epi8('\n');
  size_t i = from;
  for (; i + 64 <= to; i += 64) {
    __m256i a = _mm256_loadu_si256((const __m256i *)(const void *)(buf + i));
    __m256i b = _mm256_loadu_si256((const __m256i *)(const void *)(buf + i + 32));
    uint64_t mask = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(a, nl)) |
                    (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(b, nl)) << 32;
    int rc = end_lines_in_mask(sp, buf, start, i, mask);
    if (rc != 0)
      return rc;
  }
  return split_tail(sp, buf, start, i, to);
}

static int split_sse2(splitter *sp, char *buf, size_t *start, size_t from,
                      size_t to) {
  const __m128i nl = _mm_set1_epi8('\n');
  size_t i = from;
  for (; i + 64 <= to; i += 64) {
    uint64_t mask = 0;
    for (int k = 0; k < 4; k++) {
      __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(buf + i + 16 * k));
      mask |= (uint64_t)(uint16_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, nl)) << (16 * k);
    }
    int rc = end_lines_in_mask(sp, buf, start, i, mask);
    if (rc != 0)
      return rc;
  }
  return split_tail(sp, buf, start, i, to);
}
#endif

/* ACTIO__SPLIT_*: AUTO until the first split detects the CPU, or a test
 * chooses. Relaxed: it guards no other data, and every thread that detects
 * computes the same. */
static _Atomic int split_how = ACTIO__SPLIT_AUTO;

int actio__fio_lines_split(int how) {
  if (how < ACTIO__SPLIT_AUTO || how > ACTIO__SPLIT_AVX2)
    return -EINVAL;
#if defined(__x86_64__)
  if (how == ACTIO__SPLIT_AVX2 && !__builtin_cpu_supports("avx2"))
    return -ENOTSUP;
#else
  if (how == ACTIO__SPLIT_SSE2 || how == ACTIO__SPLIT_AVX2)
    return -ENOTSUP;
#endif
  atomic_store_explicit(&split_how, how, memory_order_relaxed);
  return 0;
}

static int split_range(splitter *sp, char *buf, size_t *start, size_t from,
                       size_t to) {
  int how = atomic_load_explicit(&split_how, memory_order_relaxed);
  if (how == ACTIO__SPLIT_AUTO) {
#if defined(__x86_64__)
    how = __builtin_cpu_supports("avx2") ? ACTIO__SPLIT_AVX2 : ACTIO__SPLIT_SSE2;
#else
    how = ACTIO__SPLIT_MEMCHR;
#endif
    int unset = ACTIO__SPLIT_AUTO; /* a test's choice made meanwhile stays */
    atomic_compare_exchange_strong_explicit(&split_how, &unset, how,
                                            memory_order_relaxed,
                                            memory_order_relaxed);
  }
#if defined(__x86_64__)
  if (how == ACTIO__SPLIT_AVX2)
    return split_avx2(sp, buf, start, from, to);
  if (how == ACTIO__SPLIT_SSE2)
    return split_sse2(sp, buf, start, from, to);
#endif
  return split_tail(sp, buf, start, from, to);
}

int64_t actio__fio_lines(int fd, size_t batch, size_t max_line,
                         actio__lines_cb cb, void *arg) {
  /* 128 KiB reads keep the buffer in a core's L2 cache while it is split. */
  size_t cap = 128 << 10, start = 0, end = 0;
  char *buf = malloc(cap);
  splitter sp = {.batch = batch ? batch : 1024, .max_line = max_line,
                 .cb = cb, .arg = arg};
  sp.lines = malloc(sp.batch * sizeof *sp.lines);
  int64_t rc = 0;
  if (buf == NULL || sp.lines == NULL)
    rc = -ENOMEM;
  posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  int eof = 0;
  while (rc == 0 && !eof) {
    /* Keep the unfinished line at the front; grow only when it fills all. */
    if (start > 0) {
      memmove(buf, buf + start, end - start);
      end -= start;
      start = 0;
    }
    if (end == cap) {
      if (max_line != 0 && end > max_line) {
        rc = -E2BIG;
        break;
      }
      char *nb = realloc(buf, cap * 2);
      if (nb == NULL) {
        rc = -ENOMEM;
        break;
      }
      buf = nb;
      cap *= 2;
    }
    ssize_t r = read(fd, buf + end, cap - end);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      rc = neg_errno();
      break;
    }
    eof = r == 0;
    size_t from = end; /* the bytes before hold no newline */
    end += (size_t)r;
    rc = split_range(&sp, buf, &start, from, end);
    if (rc == 0 && eof && end > start)
      rc = end_line(&sp, buf, &start, end, 0); /* the last line, unterminated */
    if (rc == 0 && sp.n > 0) {
      /* Hand over what this read completed: the next one moves the buffer
       * under the lines' pointers. */
      sp.count += (int64_t)sp.n;
      rc = cb(arg, sp.lines, sp.n);
      sp.n = 0;
    }
  }
  free(buf);
  free(sp.lines);
  return rc != 0 ? rc : sp.count;
}

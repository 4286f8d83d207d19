/* test_file.c: the file actor against real files: every operation, every
 * error, the sandbox, cancellation without leaks, lines, streams, durable
 * writes in groups, and concurrency over 10,000 files. */
#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "actio.h"
#include "actors/core/burst.h"
#include "io/file/file_io.h"
#include "test_util.h"

static actio_runtime *rt;
static actio_actor *files;
static char dir[256];

static void path_in(char *out, size_t n, const char *name) {
  int k = snprintf(out, n, "%s/%s", dir, name);
  ck_assert(k > 0 && (size_t)k < n);
}

static void rm_rf(const char *p) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", p);
  ck_assert_int_eq(system(cmd), 0);
}

/* Descriptors open on files under the test folder: sanitizer runtimes open
 * their own now and then, so only ours are counted. */
static int count_fds(void) {
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    char link[300], target[512];
    snprintf(link, sizeof link, "/proc/self/fd/%s", e->d_name);
    ssize_t l = readlink(link, target, sizeof target - 1);
    if (l > 0) {
      target[l] = '\0';
      n += strncmp(target, dir, strlen(dir)) == 0;
    }
  }
  closedir(d);
  return n;
}

static void make_dir(void) {
  snprintf(dir, sizeof dir, "/tmp/actio-test-file-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void setup(void) {
  make_dir();
  ck_assert_int_eq(actio_runtime_create(&rt, NULL), 0);
  ck_assert_int_eq(actio_file_spawn(rt, NULL, &files), 0);
}

static void teardown(void) {
  actio_runtime_destroy(rt); /* NULL in the kill case's fixture */
  rt = NULL;
  actio__fio_use_tmpfile(-1); /* a loop test may have forced the fallbacks */
  actio__fio_link_by_fd(1);
  rm_rf(dir);
}

/* Waits for f, checks its status, returns its value; drops the reference
 * through *keep so the value stays valid until the caller unrefs it. */
static void *expect(actio_future *f, int status) {
  int st = actio_future_wait(f, -1);
  if (st != status)
    ck_abort_msg("status %s (%s), expected %s", actio_err_name(st),
                 actio_future_errmsg(f) ? actio_future_errmsg(f) : "", actio_err_name(status));
  return actio_future_value(f);
}

static void write_file(const char *name, const char *text) {
  char p[512];
  path_in(p, sizeof p, name);
  FILE *fp = fopen(p, "w");
  ck_assert_ptr_nonnull(fp);
  fputs(text, fp);
  fclose(fp);
}

static char *slurp(const char *name) {
  char p[512];
  path_in(p, sizeof p, name);
  FILE *fp = fopen(p, "r");
  if (fp == NULL)
    return NULL;
  static char buf[1 << 16];
  size_t n = fread(buf, 1, sizeof buf - 1, fp);
  buf[n] = '\0';
  fclose(fp);
  return buf;
}

/* The names in folder, sorted and comma-separated, as the file actor
 * lists them. */
static char *listing(const char *folder) {
  static char out[512];
  actio_future *f;
  ck_assert_int_eq(actio_file_list(files, folder, &f), 0);
  out[0] = '\0';
  for (char **n = expect(f, 0); *n != NULL; n++)
    snprintf(out + strlen(out), sizeof out - strlen(out), "%s%s", out[0] ? "," : "", *n);
  actio_future_unref(f);
  return out;
}

START_TEST(read_write_append_exclusive) {
  char p[512];
  actio_future *f;
  path_in(p, sizeof p, "a.txt");
  ck_assert_int_eq(actio_file_write(files, p, "hello\n", 6, 0, &f), 0);
  expect(f, 0);
  actio_future_unref(f);
  ck_assert_int_eq(actio_file_write(files, p, "world\n", 6, ACTIO_WRITE_APPEND, &f), 0);
  expect(f, 0);
  actio_future_unref(f);
  ck_assert_int_eq(actio_file_read(files, p, &f), 0);
  actio_buf *b = expect(f, 0);
  ck_assert_uint_eq(b->len, 12);
  ck_assert_str_eq(b->data, "hello\nworld\n");
  actio_future_unref(f);
  ck_assert_int_eq(actio_file_write(files, p, "x", 1, ACTIO_WRITE_EXCL, &f), 0);
  expect(f, -EEXIST);
  actio_future_unref(f);
  /* Truncate is the default; an empty write makes an empty file. */
  ck_assert_int_eq(actio_file_write(files, p, NULL, 0, ACTIO_WRITE_SYNC, &f), 0);
  expect(f, 0);
  actio_future_unref(f);
  ck_assert_str_eq(slurp("a.txt"), "");
}
END_TEST

START_TEST(errors_name_the_operation_and_path) {
  char p[512];
  actio_future *f;
  path_in(p, sizeof p, "missing.txt");
  ck_assert_int_eq(actio_file_read(files, p, &f), 0);
  expect(f, -ENOENT);
  ck_assert_ptr_nonnull(strstr(actio_future_errmsg(f), "read "));
  ck_assert_ptr_nonnull(strstr(actio_future_errmsg(f), "missing.txt"));
  actio_future_unref(f);
  ck_assert_int_eq(actio_file_read(files, dir, &f), 0); /* a folder */
  expect(f, -EISDIR);
  actio_future_unref(f);
  ck_assert_int_eq(actio_file_write(files, "/dev/full", "x", 1, 0, &f), 0);
  expect(f, -ENOSPC); /* disk full */
  actio_future_unref(f);
  path_in(p, sizeof p, "no/such/folder/x");
  ck_assert_int_eq(actio_file_write(files, p, "x", 1, ACTIO_WRITE_ATOMIC, &f), 0);
  expect(f, -ENOENT);
  actio_future_unref(f);
  /* An atomic write replaces a file, never a folder or a FIFO (nor a
   * device: /dev/null would become a plain file). */
  ck_assert_int_eq(actio_file_write(files, dir, "x", 1, ACTIO_WRITE_ATOMIC, &f), 0);
  expect(f, -EISDIR);
  actio_future_unref(f);
  path_in(p, sizeof p, "fifo");
  ck_assert_int_eq(mkfifo(p, 0600), 0);
  ck_assert_int_eq(actio_file_write(files, p, "x", 1, ACTIO_WRITE_ATOMIC, &f), 0);
  expect(f, -EINVAL);
  actio_future_unref(f);
  struct stat sb;
  ck_assert_int_eq(lstat(p, &sb), 0);
  ck_assert(S_ISFIFO(sb.st_mode));
  ck_assert_int_eq(unlink(p), 0);
}
END_TEST

static int ignore_msg(actio_actor *self, void *worker, void *msg, actio_future *reply) {
  (void)self, (void)worker, (void)msg, (void)reply;
  return 0;
}

START_TEST(bad_arguments_are_refused_at_once) {
  actio_future *f = NULL;
  ck_assert_int_eq(actio_file_read(files, NULL, &f), ACTIO_EINVAL);
  ck_assert_int_eq(actio_file_read(files, "", &f), ACTIO_EINVAL);
  ck_assert_int_eq(actio_file_read(NULL, "x", &f), ACTIO_EINVAL);
  ck_assert_int_eq(actio_file_read(files, "x", NULL), ACTIO_EINVAL);
  ck_assert_int_eq(actio_file_write(files, "x", NULL, 3, 0, &f), ACTIO_EINVAL);
  ck_assert_int_eq(actio_file_write(files, "x", "a", 1, 0x100, &f), ACTIO_EINVAL);
  ck_assert_int_eq(actio_file_write(files, "x", "a", 1,
                                    ACTIO_WRITE_ATOMIC | ACTIO_WRITE_APPEND, &f),
                   ACTIO_EINVAL);
  ck_assert_int_eq(actio_file_rename(files, "x", NULL, &f), ACTIO_EINVAL);
  ck_assert_int_eq(actio_file_lines(files, "x", NULL, NULL, &f), ACTIO_EINVAL);
  ck_assert_int_eq(actio_fh_close(NULL, &f), ACTIO_EINVAL);
  /* An actor that is not a file actor is refused too. */
  static const actio_behavior ignorer = {.handle = ignore_msg}; /* outlives the test */
  actio_actor *other;
  ck_assert_int_eq(actio_actor_spawn(rt, &ignorer, NULL, &other), 0);
  ck_assert_int_eq(actio_file_read(other, "/etc/hostname", &f), ACTIO_EINVAL);
  ck_assert_int_eq(actio_file_write(other, "x", "a", 1, 0, &f), ACTIO_EINVAL);
  ck_assert_int_eq(actio_file_stat(other, "/", &f), ACTIO_EINVAL);
  ck_assert_int_eq(actio_file_open(other, "/etc/hostname", O_RDONLY, 0, &f), ACTIO_EINVAL);
  ck_assert_ptr_null(f);
  actio_actor_stats st;
  actio_actor_stats_get(other, &st);
  ck_assert_uint_eq(st.accepted, 0); /* nothing reached it */
}
END_TEST

START_TEST(permission_denied) {
  char p[512];
  actio_future *f;
  write_file("secret", "s");
  path_in(p, sizeof p, "secret");
  ck_assert_int_eq(chmod(p, 0), 0);
  ck_assert_int_eq(chmod(dir, 0755), 0);
  /* root passes permission checks: a fresh process (this test binary, see
   * main) drops to nobody and reads the file with its own runtime. */
  char *argv[] = {"test_file", "--read-as-nobody", p, NULL};
  pid_t pid;
  ck_assert_int_eq(posix_spawn(&pid, "/proc/self/exe", NULL, NULL, argv, environ), 0);
  int status;
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  ck_assert(WIFEXITED(status));
  ck_assert_int_eq(WEXITSTATUS(status), 0);
  (void)f;
}
END_TEST

/* The other half of permission_denied, in its own process. */
static int read_as_nobody(const char *path) {
  actio_runtime *crt;
  actio_actor *cfiles;
  actio_future *f;
  if (geteuid() == 0 && setresuid(65534, 65534, 65534) != 0)
    return 2;
  if (actio_runtime_create(&crt, NULL) != 0 ||
      actio_file_spawn(crt, NULL, &cfiles) != 0 ||
      actio_file_read(cfiles, path, &f) != 0)
    return 3;
  int ok = actio_future_wait(f, -1) == -EACCES &&
           strstr(actio_future_errmsg(f), "secret") != NULL;
  actio_future_unref(f);
  actio_runtime_destroy(crt);
  return ok ? 0 : 1;
}

/* Loop tests over atomic writes: _i 0 writes through O_TMPFILE where the
 * file system has it, 1 through the named fallback. */
/* The ways an atomic replacement writes: 0 O_TMPFILE linked by its
 * descriptor, 1 named temporaries, 2 O_TMPFILE linked through /proc. */
static void atomic_mode(int i) {
  actio__fio_use_tmpfile(i != 1);
  actio__fio_link_by_fd(i != 2);
}

START_TEST(atomic_write_replaces_whole_or_not_at_all) {
  char p[512];
  actio_future *f;
  atomic_mode(_i);
  write_file("cfg", "old");
  path_in(p, sizeof p, "cfg");
  chmod(p, 0640);
  ck_assert_int_eq(actio_file_write(files, p, "new!", 4, ACTIO_WRITE_ATOMIC, &f), 0);
  expect(f, 0);
  actio_future_unref(f);
  ck_assert_str_eq(slurp("cfg"), "new!");
  struct stat st;
  ck_assert_int_eq(stat(p, &st), 0);
  ck_assert_uint_eq(st.st_mode & 0777, 0640); /* the mode survives */

  /* A write that fails half-way (file size limit) leaves the old file and
   * no temporary file. */
  signal(SIGXFSZ, SIG_IGN);
  struct rlimit lim = {1 << 20, 1 << 20};
  ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
  size_t big = 3 << 20;
  char *data = malloc(big);
  memset(data, 'z', big);
  ck_assert_int_eq(actio_file_write(files, p, data, big, ACTIO_WRITE_ATOMIC, &f), 0);
  expect(f, -EFBIG);
  actio_future_unref(f);
  free(data);
  ck_assert_str_eq(slurp("cfg"), "new!");
  actio_future *l;
  ck_assert_int_eq(actio_file_list(files, dir, &l), 0);
  char **names = expect(l, 0);
  ck_assert_str_eq(names[0], "cfg");
  ck_assert_ptr_null(names[1]);
  actio_future_unref(l);
}
END_TEST

/* A lines callback that holds its file worker at the gate (test_util.h):
 * what is sent meanwhile waits in the mailbox of a one-worker actor. */
static int hold_worker(void *arg, const actio_line *lines, size_t n) {
  (void)lines, (void)n;
  gate_hold(arg);
  return 0;
}

/* The size of path, as the one worker of `a` sees it after what it took
 * before (a request sent later completes after the earlier ones). */
static off_t size_seen_by(actio_actor *a, const char *path) {
  actio_future *s;
  ck_assert_int_eq(actio_file_stat(a, path, &s), 0);
  off_t size = ((struct stat *)expect(s, 0))->st_size;
  actio_future_unref(s);
  return size;
}

START_TEST(cancelled_atomic_write_leaves_nothing) {
  char p[512], q[512];
  write_file("big", "before");
  write_file("held", "x\n");
  path_in(p, sizeof p, "big");
  path_in(q, sizeof q, "held");
  size_t big = 64 << 20;
  char *data = malloc(big);
  memset(data, 'q', big);
  actio_actor *one;
  ck_assert_int_eq(actio_file_spawn(rt, &(actio_file_opts){.workers = 1}, &one), 0);
  int fds = count_fds();
  actio_future *f, *l;

  /* Queued: the one worker is held, so the cancel certainly comes first. */
  test_gate g = TEST_GATE_INIT;
  ck_assert_int_eq(actio_file_lines(one, q, hold_worker, &g, &l), 0);
  gate_wait_held(&g);
  ck_assert_int_eq(actio_file_write(one, p, data, big, ACTIO_WRITE_ATOMIC, &f), 0);
  ck_assert_int_eq(actio_future_cancel(f), 0);
  gate_open(&g);
  expect(l, 0);
  expect(f, ACTIO_ECANCELED);
  actio_future_unref(f);
  actio_future_unref(l);
  ck_assert_int_eq(size_seen_by(one, p), 6);

  /* Under way: cancelled once the write has opened its temporary file (or
   * has finished). Which side of the commit point the cancel lands on is a
   * race, and the cancel's answer says which: cancelled, the old file
   * stays; too late, the write completed whole. */
  ck_assert_int_eq(count_fds(), fds);
  ck_assert_int_eq(actio_file_write(one, p, data, big, ACTIO_WRITE_ATOMIC, &f), 0);
  while (count_fds() == fds && !actio_future_is_done(f))
    sched_yield();
  int cancelled = actio_future_cancel(f) == 0;
  ck_assert_int_eq(actio_future_wait(f, -1), cancelled ? ACTIO_ECANCELED : 0);
  actio_future_unref(f);
  ck_assert_int_eq(size_seen_by(one, p), cancelled ? 6 : (off_t)big);

  /* Done: too late to cancel. */
  ck_assert_int_eq(actio_file_write(one, p, data, big, ACTIO_WRITE_ATOMIC, &f), 0);
  expect(f, 0);
  ck_assert_int_eq(actio_future_cancel(f), ACTIO_EALREADY);
  actio_future_unref(f);
  ck_assert_int_eq(size_seen_by(one, p), (off_t)big);
  free(data);

  actio_actor_stop(one, ACTIO_STOP_DRAIN); /* every request has finished */
  ck_assert_int_eq(count_fds(), fds);
  ck_assert_str_eq(listing(dir), "big,held"); /* no temporary file left */
}
END_TEST

/* The names in dir besides "target": how many match the leftovers'
 * pattern (*size: the last one's size) and how many do not. */
static void others_in_dir(int *leftovers, off_t *size, int *strangers) {
  *leftovers = *strangers = 0;
  DIR *d = opendir(dir);
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
        strcmp(e->d_name, "target") == 0)
      continue;
    if (!actio__fio_is_leftover(e->d_name)) {
      ++*strangers;
      continue;
    }
    struct stat st;
    ck_assert_int_eq(fstatat(dirfd(d), e->d_name, &st, 0), 0);
    *size = st.st_size;
    ++*leftovers;
  }
  closedir(d);
}

/* The child of atomic_write_killed_midway: writes 4 of 16 MiB of an atomic
 * replacement of dir/target, says so on fd, and waits to be killed. */
static void write_until_killed(int fd, int tmpfile) {
  char p[512];
  path_in(p, sizeof p, "target");
  actio__fio_use_tmpfile(tmpfile);
  actio__root cwd = {AT_FDCWD, 0};
  actio__fio_atomic *a;
  static char mib[1 << 20];
  memset(mib, 'n', sizeof mib);
  if (actio__fio_atomic_open(&cwd, p, 0666, &a) != 0)
    _exit(1);
  for (int i = 0; i < 4; i++)
    if (actio__fio_write_fd(actio__fio_atomic_fd(a), mib, sizeof mib, -1) != 0)
      _exit(2);
  if (write(fd, "m", 1) != 1) /* midway */
    _exit(3);
  for (;;)
    pause();
}

/* Forks a child running child(fd, tmpfile), fd the write end of a pipe
 * whose read end is returned in *rd. */
static pid_t fork_writer(void (*child)(int, int), int tmpfile, int *rd) {
  int ch[2];
  ck_assert_int_eq(pipe(ch), 0);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    close(ch[0]);
    child(ch[1], tmpfile);
    _exit(9); /* the children loop until killed */
  }
  close(ch[1]);
  *rd = ch[0];
  return pid;
}

/* Kills the child with SIGKILL and reaps it. */
static void kill_writer(pid_t pid) {
  ck_assert_int_eq(kill(pid, SIGKILL), 0);
  int status;
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

/* After the kill, in a runtime of the test's: actio_file_clean_leftovers
 * removes the `leftovers` temporaries, no more. */
static void clean_leftovers_after_kill(int leftovers) {
  ck_assert_int_eq(actio_runtime_create(&rt, NULL), 0);
  ck_assert_int_eq(actio_file_spawn(rt, NULL, &files), 0);
  actio_future *f;
  ck_assert_int_eq(actio_file_clean_leftovers(files, dir, &f), 0);
  ck_assert_uint_eq(*(uint64_t *)expect(f, 0), (uint64_t)leftovers);
  actio_future_unref(f);
}

START_TEST(atomic_write_killed_midway) {
  /* _i 0: O_TMPFILE where the file system has it; 1: the named fallback. */
  write_file("target", "old");
  int probe = open(dir, O_TMPFILE | O_WRONLY, 0600);
  int unnamed = _i == 0 && probe >= 0; /* what this file system can do */
  if (probe >= 0)
    close(probe);
  int rd;
  pid_t pid = fork_writer(write_until_killed, _i == 0, &rd);
  char c;
  ck_assert_int_eq(read(rd, &c, 1), 1); /* the child is midway */
  close(rd);
  kill_writer(pid);
  int leftovers, strangers;
  off_t size = 0;
  others_in_dir(&leftovers, &size, &strangers);
  ck_assert_int_eq(strangers, 0);
  ck_assert_str_eq(slurp("target"), "old");
  if (unnamed) {
    ck_assert_int_eq(leftovers, 0); /* nothing but the old target */
  } else {
    ck_assert_int_eq(leftovers, 1); /* the named temporary, as written */
    ck_assert_int_eq(size, 4 << 20);
  }
  /* The clean call removes what was left, and only that. */
  clean_leftovers_after_kill(leftovers);
  others_in_dir(&leftovers, &size, &strangers);
  ck_assert_int_eq(leftovers + strangers, 0);
  ck_assert_str_eq(slurp("target"), "old");
}
END_TEST

START_TEST(leftovers_are_recognised_and_cleaned) {
  const char *ours[] = {".target.actio-0123456789abcdef.tmp", ".x.actio-ffffffffffffffff.tmp"};
  const char *not_ours[] = {
      "target.actio-0123456789abcdef.tmp",  /* not hidden */
      ".target.actio-0123456789ABCDEF.tmp", /* upper case */
      ".target.actio-0123456789abcde.tmp",  /* 15 digits */
      ".target.actio-0123456789abcdef.tmpx", ".target.tmp",
      ".actio-0123456789abcdef.tmp",        /* no name */
  };
  for (size_t i = 0; i < sizeof ours / sizeof *ours; i++) {
    ck_assert(actio__fio_is_leftover(ours[i]));
    write_file(ours[i], "left");
  }
  for (size_t i = 0; i < sizeof not_ours / sizeof *not_ours; i++) {
    ck_assert(!actio__fio_is_leftover(not_ours[i]));
    write_file(not_ours[i], "keep");
  }
  /* A folder or a link of that name is not a leftover either. */
  char p[512];
  path_in(p, sizeof p, ".d.actio-0123456789abcdef.tmp");
  ck_assert_int_eq(mkdir(p, 0755), 0);
  path_in(p, sizeof p, ".l.actio-0123456789abcdef.tmp");
  ck_assert_int_eq(symlink("target.actio-0123456789abcdef.tmp", p), 0);
  actio_future *f;
  ck_assert_int_eq(actio_file_clean_leftovers(files, dir, &f), 0);
  ck_assert_uint_eq(*(uint64_t *)expect(f, 0), 2);
  actio_future_unref(f);
  for (size_t i = 0; i < sizeof ours / sizeof *ours; i++)
    ck_assert_ptr_null(slurp(ours[i]));
  for (size_t i = 0; i < sizeof not_ours / sizeof *not_ours; i++)
    ck_assert_str_eq(slurp(not_ours[i]), "keep");
  path_in(p, sizeof p, ".l.actio-0123456789abcdef.tmp");
  struct stat st;
  ck_assert_int_eq(lstat(p, &st), 0);
  path_in(p, sizeof p, ".d.actio-0123456789abcdef.tmp");
  ck_assert_int_eq(stat(p, &st), 0);
  /* Errors: bad arguments at the call; the rest on the future. */
  ck_assert_int_eq(actio_file_clean_leftovers(files, NULL, &f), ACTIO_EINVAL);
  ck_assert_int_eq(actio_file_clean_leftovers(files, "", &f), ACTIO_EINVAL);
  path_in(p, sizeof p, "missing");
  ck_assert_int_eq(actio_file_clean_leftovers(files, p, &f), 0);
  expect(f, -ENOENT);
  ck_assert_ptr_nonnull(strstr(actio_future_errmsg(f), "missing"));
  actio_future_unref(f);
  path_in(p, sizeof p, not_ours[0]);
  ck_assert_int_eq(actio_file_clean_leftovers(files, p, &f), 0);
  expect(f, -ENOTDIR);
  actio_future_unref(f);
  actio_actor *boxed;
  actio_file_opts o = {.root = dir};
  ck_assert_int_eq(actio_file_spawn(rt, &o, &boxed), 0);
  ck_assert_int_eq(actio_file_clean_leftovers(boxed, "..", &f), 0);
  expect(f, ACTIO_ESANDBOX);
  actio_future_unref(f);
}
END_TEST

START_TEST(handles_positional_and_sequential) {
  char p[512];
  actio_future *f, *w1, *w2, *r, *s, *c;
  path_in(p, sizeof p, "h.bin");
  int fds = count_fds();
  ck_assert_int_eq(actio_file_open(files, p, O_RDWR | O_CREAT | O_TRUNC, 0600, &f), 0);
  expect(f, 0);
  actio_fh *h = actio_future_take(f);
  actio_future_unref(f);
  ck_assert_int_eq(actio_fh_write(h, "abc", 3, &w1), 0);
  ck_assert_int_eq(actio_fh_write(h, "defg", 4, &w2), 0);
  expect(w1, 0);
  expect(w2, 0);
  ck_assert_int_eq(actio_fh_pwrite(h, 1, "B", 1, &f), 0);
  expect(f, 0);
  actio_future_unref(f);
  ck_assert_int_eq(actio_fh_sync(h, &s), 0);
  expect(s, 0);
  ck_assert_int_eq(actio_fh_pread(h, 0, 100, &r), 0);
  actio_buf *b = expect(r, 0);
  ck_assert_str_eq(b->data, "aBcdefg");
  actio_future_unref(r);
  ck_assert_int_eq(actio_fh_pread(h, 50, 10, &r), 0);
  b = expect(r, 0);
  ck_assert_uint_eq(b->len, 0); /* past the end: empty */
  actio_future_unref(r);
  /* Close waits for what is in flight; afterwards the fd is gone. */
  actio_future *late;
  ck_assert_int_eq(actio_fh_pread(h, 0, 3, &late), 0);
  ck_assert_int_eq(actio_fh_close(h, &c), 0);
  b = expect(late, 0);
  ck_assert_str_eq(b->data, "aBc");
  expect(c, 0);
  ck_assert_int_eq(count_fds(), fds);
  actio_future_unref(late);
  actio_future_unref(c);
  actio_future_unref(w1);
  actio_future_unref(w2);
  actio_future_unref(s);
}
END_TEST

START_TEST(an_untaken_handle_is_closed_with_its_future) {
  char p[512];
  actio_future *f;
  write_file("x", "x");
  path_in(p, sizeof p, "x");
  int fds = count_fds();
  ck_assert_int_eq(actio_file_open(files, p, O_RDONLY, 0, &f), 0);
  expect(f, 0);
  ck_assert_int_eq(count_fds(), fds + 1);
  actio_future_unref(f);
  /* The worker may still hold its own reference for a moment: the last one
   * to go closes the handle. Once the actor has stopped, both have. */
  actio_actor_stop(files, ACTIO_STOP_DRAIN);
  ck_assert_int_eq(count_fds(), fds);
  ck_assert_int_eq(actio_file_open(files, p, O_RDONLY, 0, &f), ACTIO_ECLOSED);
}
END_TEST

START_TEST(open_errors) {
  char p[512];
  actio_future *f;
  write_file("x", "x");
  path_in(p, sizeof p, "x");
  ck_assert_int_eq(actio_file_open(files, p, O_RDONLY | O_DIRECTORY, 0, &f), 0);
  expect(f, -ENOTDIR);
  actio_future_unref(f);
  path_in(p, sizeof p, "nope");
  ck_assert_int_eq(actio_file_open(files, p, O_RDONLY, 0, &f), 0);
  expect(f, -ENOENT);
  actio_future_unref(f);
}
END_TEST

START_TEST(file_system_operations) {
  char p[512], q[512];
  actio_future *f;
  path_in(p, sizeof p, "d1/d2/d3");
  ck_assert_int_eq(actio_file_mkdir(files, p, 0755, &f), 0);
  expect(f, 0);
  actio_future_unref(f);
  ck_assert_int_eq(actio_file_mkdir(files, p, 0755, &f), 0); /* again: fine */
  expect(f, 0);
  actio_future_unref(f);
  write_file("d1/d2/d3/file", "12345");
  path_in(p, sizeof p, "d1/d2/d3/file");
  ck_assert_int_eq(actio_file_mkdir(files, p, 0755, &f), 0);
  expect(f, -ENOTDIR);
  actio_future_unref(f);
  ck_assert_int_eq(actio_file_stat(files, p, &f), 0);
  struct stat *st = expect(f, 0);
  ck_assert_int_eq(st->st_size, 5);
  actio_future_unref(f);
  ck_assert_int_eq(actio_file_exists(files, p, &f), 0);
  ck_assert_int_eq(*(int *)expect(f, 0), 1);
  actio_future_unref(f);
  path_in(q, sizeof q, "d1/copy");
  ck_assert_int_eq(actio_file_copy(files, p, q, &f), 0);
  expect(f, 0);
  actio_future_unref(f);
  ck_assert_str_eq(slurp("d1/copy"), "12345");
  path_in(p, sizeof p, "d1/moved");
  ck_assert_int_eq(actio_file_rename(files, q, p, &f), 0);
  expect(f, 0);
  actio_future_unref(f);
  ck_assert_int_eq(actio_file_exists(files, q, &f), 0);
  ck_assert_int_eq(*(int *)expect(f, 0), 0);
  actio_future_unref(f);
  path_in(q, sizeof q, "d1");
  ck_assert_str_eq(listing(q), "d2,moved");
  ck_assert_int_eq(actio_file_unlink(files, p, &f), 0);
  expect(f, 0);
  actio_future_unref(f);
  ck_assert_int_eq(actio_file_unlink(files, p, &f), 0);
  expect(f, -ENOENT);
  actio_future_unref(f);
  path_in(p, sizeof p, "d1/tmp-");
  ck_assert_int_eq(actio_file_tempfile(files, p, &f), 0);
  char *tmp = expect(f, 0);
  ck_assert_int_eq(strncmp(tmp, p, strlen(p)), 0);
  ck_assert_uint_eq(strlen(tmp), strlen(p) + 6);
  ck_assert_int_eq(access(tmp, F_OK), 0);
  actio_future_unref(f);
  ck_assert_int_eq(actio_file_copy(files, dir, q, &f), 0);
  expect(f, -EISDIR);
  actio_future_unref(f);
}
END_TEST

/* ---- sandbox ---- */

START_TEST(sandbox_keeps_paths_inside) {
  actio_actor *boxed;
  actio_file_opts o = {.root = dir, .workers = 1};
  ck_assert_int_eq(actio_file_spawn(rt, &o, &boxed), 0);
  char outside[512], p[512];
  snprintf(outside, sizeof outside, "%s-outside", dir);
  FILE *fp = fopen(outside, "w");
  fputs("secret", fp);
  fclose(fp);
  path_in(p, sizeof p, "inside");
  mkdir(p, 0755);
  write_file("inside/ok.txt", "fine");
  path_in(p, sizeof p, "inside/link-out");
  ck_assert_int_eq(symlink(outside, p), 0);
  path_in(p, sizeof p, "inside/link-in");
  ck_assert_int_eq(symlink("ok.txt", p), 0);

  actio_future *f;
  ck_assert_int_eq(actio_file_read(boxed, "inside/ok.txt", &f), 0);
  ck_assert_str_eq(((actio_buf *)expect(f, 0))->data, "fine");
  actio_future_unref(f);
  ck_assert_int_eq(actio_file_read(boxed, "inside/link-in", &f), 0);
  ck_assert_str_eq(((actio_buf *)expect(f, 0))->data, "fine");
  actio_future_unref(f);
  const char *escapes[] = {"../x", "inside/../../x", "inside/link-out", outside,
                           "/etc/passwd"};
  for (size_t i = 0; i < sizeof escapes / sizeof *escapes; i++) {
    ck_assert_int_eq(actio_file_read(boxed, escapes[i], &f), 0);
    expect(f, ACTIO_ESANDBOX);
    actio_future_unref(f);
    ck_assert_int_eq(actio_file_write(boxed, escapes[i], "x", 1, 0, &f), 0);
    expect(f, ACTIO_ESANDBOX);
    actio_future_unref(f);
    if (strcmp(escapes[i], "inside/link-out") == 0)
      continue; /* an atomic write replaces the link itself: see below */
    ck_assert_int_eq(actio_file_write(boxed, escapes[i], "x", 1, ACTIO_WRITE_ATOMIC, &f), 0);
    expect(f, ACTIO_ESANDBOX);
    actio_future_unref(f);
  }
  /* An atomic write to a link renames a new file over the link: the file
   * outside is never touched. */
  ck_assert_int_eq(actio_file_write(boxed, "inside/link-out", "x", 1, ACTIO_WRITE_ATOMIC, &f), 0);
  expect(f, 0);
  actio_future_unref(f);
  fp = fopen(outside, "r");
  char got[16] = "";
  ck_assert_ptr_nonnull(fgets(got, sizeof got, fp));
  fclose(fp);
  ck_assert_str_eq(got, "secret");
  struct stat lst;
  path_in(p, sizeof p, "inside/link-out");
  ck_assert_int_eq(lstat(p, &lst), 0);
  ck_assert(S_ISREG(lst.st_mode));
  ck_assert_int_eq(actio_file_mkdir(boxed, "inside/../../evil", 0755, &f), 0);
  expect(f, ACTIO_ESANDBOX);
  actio_future_unref(f);
  ck_assert_int_eq(actio_file_unlink(boxed, "inside/link-out/..", &f), 0);
  expect(f, ACTIO_ESANDBOX);
  actio_future_unref(f);
  ck_assert_int_eq(actio_file_rename(boxed, "inside/ok.txt", "../stolen", &f), 0);
  expect(f, ACTIO_ESANDBOX);
  actio_future_unref(f);
  /* Writing through the sandbox stays inside. */
  ck_assert_int_eq(actio_file_write(boxed, "inside/new", "n", 1, 0, &f), 0);
  expect(f, 0);
  actio_future_unref(f);
  ck_assert_str_eq(slurp("inside/new"), "n");
  ck_assert_int_eq(access(outside, F_OK), 0);
  unlink(outside);
}
END_TEST

START_TEST(sandbox_fallback_walk_is_stricter) {
  /* Without openat2 (old kernels, valgrind) paths are walked one component
   * at a time: ".." and every symlink are refused, even one that stays
   * inside. */
  actio_actor *boxed;
  actio_file_opts o = {.root = dir, .workers = 1};
  ck_assert_int_eq(actio_file_spawn(rt, &o, &boxed), 0);
  char p[512];
  path_in(p, sizeof p, "in");
  mkdir(p, 0755);
  write_file("in/ok.txt", "fine");
  path_in(p, sizeof p, "in/link");
  ck_assert_int_eq(symlink("ok.txt", p), 0);
  actio__fio_use_openat2(0);
  actio_future *f;
  ck_assert_int_eq(actio_file_read(boxed, "in/ok.txt", &f), 0);
  ck_assert_str_eq(((actio_buf *)expect(f, 0))->data, "fine");
  actio_future_unref(f);
  const char *refused[] = {"in/link", "in/../in/ok.txt", "../x", "/etc/passwd"};
  for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
    ck_assert_int_eq(actio_file_read(boxed, refused[i], &f), 0);
    expect(f, ACTIO_ESANDBOX);
    actio_future_unref(f);
  }
  ck_assert_int_eq(actio_file_write(boxed, "in/new", "n", 1, ACTIO_WRITE_ATOMIC, &f), 0);
  expect(f, 0);
  actio_future_unref(f);
  ck_assert_str_eq(slurp("in/new"), "n");
  actio__fio_use_openat2(1);
}
END_TEST

START_TEST(sandbox_root_must_exist) {
  actio_actor *a;
  actio_file_opts o = {.root = "/nonexistent/actio"};
  ck_assert_int_eq(actio_file_spawn(rt, &o, &a), -ENOENT);
}
END_TEST

/* ---- lines ---- */

typedef struct {
  uint64_t count, hash;
  size_t longest;
} line_sum;

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
  const unsigned char *s = p;
  for (size_t i = 0; i < n; i++)
    h = (h ^ s[i]) * 1099511628211ULL;
  return h;
}

static int sum_lines(void *arg, const actio_line *lines, size_t n) {
  line_sum *s = arg;
  for (size_t i = 0; i < n; i++) {
    s->hash = fnv(s->hash, lines[i].data, lines[i].len);
    s->hash = fnv(s->hash, "|", 1);
    if (lines[i].len > s->longest)
      s->longest = lines[i].len;
  }
  s->count += n;
  return 0;
}

/* Writes `lines` lines of random lengths, empty lines, CRLF endings, a 1 MiB
 * line every `big` lines (0: none), and a last line without a newline to
 * path; returns the hash sum_lines gives them. */
static uint64_t write_lines(const char *path, int lines, int big) {
  FILE *fp = fopen(path, "w");
  ck_assert_ptr_nonnull(fp);
  char *line = malloc((1 << 20) + 1);
  uint64_t seed = 42, expect_hash = 1469598103934665603ULL;
  for (int i = 0; i < lines; i++) {
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    size_t len = (seed >> 33) % 120;
    if (i % 97 == 0)
      len = 0;
    if (big != 0 && i % big == 1)
      len = 1 << 20;
    for (size_t k = 0; k < len; k++)
      line[k] = (char)('a' + (seed >> (k % 50)) % 26);
    fwrite(line, 1, len, fp);
    if (i == lines - 1)
      ; /* no newline at the end */
    else if (i % 3 == 0)
      fputs("\r\n", fp);
    else
      fputc('\n', fp);
    expect_hash = fnv(fnv(expect_hash, line, len), "|", 1);
  }
  fclose(fp);
  free(line);
  return expect_hash;
}

/* Splits path's lines and checks their count and hash; returns the
 * longest line's length. */
static size_t check_lines(const char *path, uint64_t lines, uint64_t hash) {
  line_sum s = {0, 1469598103934665603ULL, 0};
  actio_future *f;
  ck_assert_int_eq(actio_file_lines(files, path, sum_lines, &s, &f), 0);
  ck_assert_uint_eq(*(uint64_t *)expect(f, 0), lines);
  ck_assert_uint_eq(s.count, lines);
  ck_assert_uint_eq(s.hash, hash);
  actio_future_unref(f);
  return s.longest;
}

START_TEST(lines_of_a_million_line_file) {
  /* The expected count and hash come from the generator. */
  char p[512];
  path_in(p, sizeof p, "lines.txt");
  enum { LINES = 1000000 };
  uint64_t expect_hash = write_lines(p, LINES, 250000);
  ck_assert_uint_eq(check_lines(p, LINES, expect_hash), 1 << 20);
}
END_TEST

static int edge_lines(void *arg, const actio_line *lines, size_t n) {
  char *out = arg;
  for (size_t i = 0; i < n; i++) {
    strncat(out, lines[i].data, lines[i].len);
    strcat(out, "|");
  }
  return 0;
}

static int stop_early(void *arg, const actio_line *lines, size_t n) {
  (void)lines;
  (void)n;
  return *(int *)arg;
}

START_TEST(lines_edge_cases) {
  const char *cases[][2] = {
      {"", ""},
      {"\n", "|"},
      {"a", "a|"},
      {"a\n", "a|"},
      {"a\r\nb\r\n\r\n", "a|b||"},
      {"x\ry\n", "x\ry|"},
      {"\n\nz", "||z|"},
  };
  char p[512];
  path_in(p, sizeof p, "edge");
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    write_file("edge", cases[i][0]);
    char out[64] = "";
    actio_future *f;
    ck_assert_int_eq(actio_file_lines(files, p, edge_lines, out, &f), 0);
    expect(f, 0);
    ck_assert_str_eq(out, cases[i][1]);
    actio_future_unref(f);
  }
  write_file("edge", "1\n2\n");
  actio_future *f;
  int stop_with = -EPROTO;
  ck_assert_int_eq(actio_file_lines(files, p, stop_early, &stop_with, &f), 0);
  expect(f, -EPROTO);
  actio_future_unref(f);
  stop_with = 7; /* positive: stopped, never mistaken for a count */
  ck_assert_int_eq(actio_file_lines(files, p, stop_early, &stop_with, &f), 0);
  expect(f, ACTIO_ECANCELED);
  actio_future_unref(f);
}
END_TEST

/* ---- streams ---- */

typedef struct {
  uint64_t bytes, hash;
  int chunks;
  actio_future *pending[64];
  _Atomic int npending; /* pending[] entries published to the test thread */
} sink;

static int slow_sink(void *arg, const void *data, size_t len, actio_future **ready) {
  sink *s = arg;
  s->hash = fnv(s->hash, data, len);
  s->bytes += len;
  /* Every other chunk asks the stream to wait for a future the test
   * completes later, from its own thread. */
  if (s->chunks++ % 2 == 0) {
    actio_future_create(ready);
    actio_future_ref(*ready);
    int n = atomic_load_explicit(&s->npending, memory_order_relaxed);
    s->pending[n] = *ready;
    atomic_store_explicit(&s->npending, n + 1, memory_order_release);
  }
  return 0;
}

START_TEST(stream_with_backpressure) {
  char p[512];
  path_in(p, sizeof p, "stream.bin");
  FILE *fp = fopen(p, "w");
  uint64_t want = 1469598103934665603ULL;
  for (int i = 0; i < 40000; i++) {
    char l[32];
    int n = snprintf(l, sizeof l, "%d,", i * 7);
    fwrite(l, 1, (size_t)n, fp);
    want = fnv(want, l, (size_t)n);
  }
  long size = ftell(fp);
  fclose(fp);
  sink s = {.hash = 1469598103934665603ULL};
  actio_future *f;
  ck_assert_int_eq(actio_file_stream(files, p, 16384, slow_sink, &s, &f), 0);
  /* Release each wait as it appears, until the stream ends. */
  int released = 0;
  while (actio_future_wait(f, 1) == ACTIO_EPENDING) {
    actio_future *r = NULL;
    if (released < atomic_load_explicit(&s.npending, memory_order_acquire))
      r = s.pending[released++];
    if (r != NULL) {
      actio_future_resolve(r, NULL, NULL);
      actio_future_unref(r);
    }
  }
  ck_assert_uint_eq(*(uint64_t *)expect(f, 0), (uint64_t)size);
  ck_assert_uint_eq(s.bytes, (uint64_t)size);
  ck_assert_uint_eq(s.hash, want);
  ck_assert_int_gt(released, 1);
  actio_future_unref(f);
}
END_TEST

/* Copies a stream into a handle: each chunk's write is the next chunk's
 * ready future, so the reader never runs ahead of the writer. */
static int to_handle(void *arg, const void *data, size_t len, actio_future **ready) {
  return actio_fh_write(arg, data, len, ready);
}

START_TEST(stream_into_a_file_through_a_handle) {
  char src[512], dst[512];
  path_in(src, sizeof src, "src.bin");
  path_in(dst, sizeof dst, "dst.bin");
  FILE *fp = fopen(src, "w");
  for (int i = 0; i < 300000; i++)
    fprintf(fp, "%d\n", i);
  fclose(fp);
  actio_future *o, *st, *c;
  ck_assert_int_eq(actio_file_open(files, dst, O_WRONLY | O_CREAT | O_TRUNC, 0644, &o), 0);
  expect(o, 0);
  actio_fh *h = actio_future_take(o);
  actio_future_unref(o);
  ck_assert_int_eq(actio_file_stream(files, src, 4096, to_handle, h, &st), 0);
  uint64_t n = *(uint64_t *)expect(st, 0);
  ck_assert_int_eq(actio_fh_close(h, &c), 0);
  expect(c, 0);
  struct stat a, b;
  ck_assert_int_eq(stat(src, &a), 0);
  ck_assert_int_eq(stat(dst, &b), 0);
  ck_assert_uint_eq(n, (uint64_t)a.st_size);
  ck_assert_int_eq(b.st_size, a.st_size);
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", src, dst);
  ck_assert_int_eq(system(cmd), 0);
  actio_future_unref(st);
  actio_future_unref(c);
}
END_TEST

static int failing_sink(void *arg, const void *data, size_t len, actio_future **ready) {
  (void)arg;
  (void)data;
  (void)len;
  return actio_future_failed(ready, -EPIPE, "consumer went away");
}

START_TEST(stream_fails_with_its_consumer) {
  char p[512];
  write_file("s2", "some bytes");
  path_in(p, sizeof p, "s2");
  int fds = count_fds();
  actio_future *f;
  ck_assert_int_eq(actio_file_stream(files, p, 4, failing_sink, NULL, &f), 0);
  expect(f, -EPIPE);
  ck_assert_ptr_nonnull(strstr(actio_future_errmsg(f), "consumer went away"));
  actio_future_unref(f);
  ck_assert_int_eq(count_fds(), fds);
}
END_TEST

/* ---- stop ---- */

START_TEST(requests_after_stop_are_refused) {
  actio_future *f = NULL;
  actio_actor_stop(files, ACTIO_STOP_DRAIN);
  ck_assert_int_eq(actio_file_read(files, "/etc/hostname", &f), ACTIO_ECLOSED);
  ck_assert_ptr_null(f);
}
END_TEST

/* ---- concurrency: many writers, readers over 10,000 files ---- */

enum { NFILES = 10000, THREADS = 4 };

typedef struct {
  int id;
  int ok;
} worker_arg;

static void *writer(void *p) {
  worker_arg *w = p;
  char path[512], text[64];
  actio_future *fs[NFILES / THREADS];
  int n = 0;
  for (int i = w->id; i < NFILES; i += THREADS) {
    snprintf(path, sizeof path, "%s/many/f%05d", dir, i);
    int len = snprintf(text, sizeof text, "file %d\n", i);
    ck_assert_int_eq(actio_file_write(files, path, text, (size_t)len, 0, &fs[n++]), 0);
  }
  for (int i = 0; i < n; i++) {
    w->ok += actio_future_wait(fs[i], -1) == 0;
    actio_future_unref(fs[i]);
  }
  return NULL;
}

static void *reader(void *p) {
  worker_arg *w = p;
  char path[512], text[64];
  actio_future *fs[NFILES / THREADS];
  int n = 0;
  for (int i = w->id; i < NFILES; i += THREADS) {
    snprintf(path, sizeof path, "%s/many/f%05d", dir, i);
    ck_assert_int_eq(actio_file_read(files, path, &fs[n++]), 0);
  }
  n = 0;
  for (int i = w->id; i < NFILES; i += THREADS, n++) {
    snprintf(text, sizeof text, "file %d\n", i);
    if (actio_future_wait(fs[n], -1) == 0 &&
        strcmp(((actio_buf *)actio_future_value(fs[n]))->data, text) == 0)
      w->ok++;
    actio_future_unref(fs[n]);
  }
  return NULL;
}

START_TEST(many_writers_and_readers) {
  char p[512];
  path_in(p, sizeof p, "many");
  mkdir(p, 0755);
  worker_arg a[THREADS];
  pthread_t t[THREADS];
  for (int i = 0; i < THREADS; i++)
    a[i] = (worker_arg){i, 0};
  start_threads(t, THREADS, writer, a, sizeof a[0]);
  join_threads(t, THREADS);
  int ok = 0;
  for (int i = 0; i < THREADS; i++) {
    ok += a[i].ok;
    a[i].ok = 0;
  }
  ck_assert_int_eq(ok, NFILES);
  start_threads(t, THREADS, reader, a, sizeof a[0]);
  join_threads(t, THREADS);
  ok = 0;
  for (int i = 0; i < THREADS; i++)
    ok += a[i].ok;
  ck_assert_int_eq(ok, NFILES);
}
END_TEST

/* ---- durable writes: group commit ---- */

/* File i's content: its size and bytes both depend on i. */
static size_t durable_size(size_t i) { return (i * 7919) % (64 << 10) + 1; }

static char *durable_data(size_t i) {
  size_t n = durable_size(i);
  char *d = malloc(n);
  ck_assert_ptr_nonnull(d);
  for (size_t k = 0; k < n; k++)
    d[k] = (char)('a' + (i + k) % 26);
  return d;
}

/* 1 if path holds file n's content, exactly. */
static int holds_durable(const char *path, size_t n) {
  size_t len = durable_size(n);
  char *want = durable_data(n), *got = malloc(len + 1);
  int fd = open(path, O_RDONLY);
  ck_assert_msg(fd >= 0, "%s: %s", path, strerror(errno));
  int same = read(fd, got, len + 1) == (ssize_t)len && memcmp(got, want, len) == 0;
  close(fd);
  free(want);
  free(got);
  return same;
}

/* path holds file i's content, exactly. */
static void check_durable(const char *path, size_t i) {
  ck_assert_msg(holds_durable(path, i), "%s: content differs", path);
}

/* No temporary name left in folder, and `want` names in all. */
static void check_no_leftovers(const char *folder, int want) {
  DIR *d = opendir(folder);
  ck_assert_ptr_nonnull(d);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    ck_assert_msg(!actio__fio_is_leftover(e->d_name), "left behind: %s", e->d_name);
    n++;
  }
  closedir(d);
  ck_assert_int_eq(n, want);
}

#define DURABLE_FILES 300

/* Many durable writes at once, in groups of at most 8 (so many groups),
 * some replacing files: every file whole, no temporary left, no
 * descriptor kept. Each way to make the content (_i 0-2), flushed by the
 * group; and (3) each file flushed by its worker. */
START_TEST(durable_writes_in_groups) {
  atomic_mode(_i);
  actio_actor *g;
  ck_assert_int_eq(
      actio_file_spawn(rt, &(actio_file_opts){.max_group = 8, .flush_each_file = _i == 3}, &g),
      0);
  char p[512];
  for (size_t i = 0; i < DURABLE_FILES; i += 10) { /* older content to replace */
    snprintf(p, sizeof p, "d%03zu", i);
    write_file(p, "old");
  }
  int fds = count_fds();
  actio_future *f[DURABLE_FILES];
  for (size_t i = 0; i < DURABLE_FILES; i++) {
    snprintf(p, sizeof p, "%s/d%03zu", dir, i);
    char *data = durable_data(i);
    ck_assert_int_eq(actio_file_write_durable(g, p, data, durable_size(i), &f[i]), 0);
    free(data); /* copied */
  }
  for (size_t i = 0; i < DURABLE_FILES; i++) {
    ck_assert_ptr_null(expect(f[i], 0));
    actio_future_unref(f[i]);
  }
  for (size_t i = 0; i < DURABLE_FILES; i++) {
    snprintf(p, sizeof p, "%s/d%03zu", dir, i);
    check_durable(p, i);
  }
  check_no_leftovers(dir, DURABLE_FILES);
  ck_assert_int_eq(count_fds(), fds);
}
END_TEST

enum { BURST_FILES = 8 };
static atomic_int in_burst, callbacks;
static void note_burst(actio_future *f, void *arg) {
  (void)f;
  (void)arg;
  atomic_fetch_add_explicit(&in_burst, actio__burst_active(), memory_order_relaxed);
  atomic_fetch_add_explicit(&callbacks, 1, memory_order_relaxed);
}

/* A group's completions are one burst on its leader: a callback of a
 * durable write runs inside it (so a batcher its callbacks feed sends what
 * the group brings as one batch), and nothing is left in a burst after. */
START_TEST(durable_completions_run_in_a_burst) {
  actio_actor *g;
  ck_assert_int_eq(actio_file_spawn(rt, &(actio_file_opts){.workers = 1}, &g), 0);
  write_file("list", "a\n");
  char p[512];
  path_in(p, sizeof p, "list");
  atomic_store(&in_burst, 0);
  atomic_store(&callbacks, 0);
  actio_future *hold, *f[BURST_FILES];
  test_gate gate = TEST_GATE_INIT;
  ck_assert_int_eq(actio_file_lines(g, p, hold_worker, &gate, &hold), 0);
  gate_wait_held(&gate);
  for (size_t i = 0; i < BURST_FILES; i++) { /* queued behind the held worker */
    snprintf(p, sizeof p, "%s/b%zu", dir, i);
    char *data = durable_data(i);
    ck_assert_int_eq(actio_file_write_durable(g, p, data, durable_size(i), &f[i]), 0);
    free(data);
    ck_assert_int_eq(actio_future_on_done(f[i], note_burst, NULL), 0);
  }
  gate_open(&gate);
  ck_assert_ptr_nonnull(expect(hold, 0));
  actio_future_unref(hold);
  for (size_t i = 0; i < BURST_FILES; i++) {
    ck_assert_ptr_null(expect(f[i], 0));
    actio_future_unref(f[i]);
  }
  while (atomic_load(&callbacks) < BURST_FILES) /* they may run after the wake-up */
    sched_yield();
  ck_assert_int_eq(atomic_load(&in_burst), BURST_FILES);
  ck_assert_int_eq(actio__burst_active(), 0);
  for (size_t i = 0; i < BURST_FILES; i++) {
    snprintf(p, sizeof p, "%s/b%zu", dir, i);
    check_durable(p, i);
  }
}
END_TEST

/* Writes that cannot be made fail each on its own, with its own error,
 * among writes that succeed; none leaves a temporary. */
START_TEST(a_failing_durable_write_fails_alone) {
  atomic_mode(_i);
  char p[512], sub[512];
  path_in(sub, sizeof sub, "sub");
  mkdir(sub, 0755);
  path_in(p, sizeof p, "sub/afolder");
  mkdir(p, 0755);
  actio_actor *boxed;
  ck_assert_int_eq(actio_file_spawn(rt, &(actio_file_opts){.root = dir}, &boxed), 0);
  struct { actio_actor *a; const char *path; int status; } w[] = {
      {files, "sub/ok0", 0},
      {files, "missing/x", -ENOENT},
      {files, "sub/ok1", 0},
      {files, "sub/afolder", -EISDIR},
      {boxed, "../escape", ACTIO_ESANDBOX},
      {boxed, "sub/ok2", 0},
      {files, "sub/ok3", 0},
  };
  size_t n = sizeof w / sizeof *w;
  actio_future *f[sizeof w / sizeof *w];
  for (size_t i = 0; i < n; i++) {
    if (w[i].a == boxed)
      snprintf(p, sizeof p, "%s", w[i].path);
    else
      path_in(p, sizeof p, w[i].path);
    char *data = durable_data(i);
    ck_assert_int_eq(actio_file_write_durable(w[i].a, p, data, durable_size(i), &f[i]), 0);
    free(data);
  }
  for (size_t i = 0; i < n; i++) {
    expect(f[i], w[i].status);
    if (w[i].status != 0)
      ck_assert_ptr_nonnull(strstr(actio_future_errmsg(f[i]), w[i].path));
    actio_future_unref(f[i]);
  }
  for (size_t i = 0; i < n; i++)
    if (w[i].status == 0) {
      path_in(p, sizeof p, w[i].path);
      check_durable(p, i);
    }
  check_no_leftovers(sub, 5); /* afolder and ok0..ok3 */
  check_no_leftovers(dir, 1);
  /* Bad arguments make no future. */
  actio_future *none = NULL;
  ck_assert_int_eq(actio_file_write_durable(files, NULL, "x", 1, &none), ACTIO_EINVAL);
  ck_assert_int_eq(actio_file_write_durable(files, "", "x", 1, &none), ACTIO_EINVAL);
  ck_assert_int_eq(actio_file_write_durable(files, p, NULL, 1, &none), ACTIO_EINVAL);
  ck_assert_int_eq(actio_file_write_durable(files, p, "x", 1, NULL), ACTIO_EINVAL);
  ck_assert_ptr_null(none);
  /* An empty file is a file. */
  path_in(p, sizeof p, "empty");
  ck_assert_int_eq(actio_file_write_durable(files, p, NULL, 0, &none), 0);
  expect(none, 0);
  actio_future_unref(none);
  struct stat st;
  ck_assert_int_eq(stat(p, &st), 0);
  ck_assert_int_eq(st.st_size, 0);
}
END_TEST

static int refuse_marked(void *arg) { return arg != NULL; }

/* An atomic replacement of path holding file i's content, flushed: a
 * group's item as a durable write makes it. */
static actio__fio_atomic *open_flushed(const actio__root *r, const char *path, mode_t mode,
                                       size_t i) {
  actio__fio_atomic *a;
  ck_assert_int_eq(actio__fio_atomic_open(r, path, mode, &a), 0);
  char *data = durable_data(i);
  ck_assert_int_eq(actio__fio_write_fd(actio__fio_atomic_fd(a), data, durable_size(i), -1),
                   0);
  free(data);
  ck_assert_int_eq(actio__fio_atomic_flush(a), 0);
  return a;
}

/* Within one group (the commit of io/file, driven directly): an item whose
 * rename fails (its target became a folder after it was opened) and items
 * refused at their last say fail alone; the others are in place; no
 * temporary is left. */
START_TEST(a_group_commits_around_its_failures) {
  atomic_mode(_i);
  actio__root root = {AT_FDCWD, 0};
  enum { N = 6 };
  actio__fio_atomic *as[N];
  void *args[N];
  int rcs[N];
  char p[512];
  for (size_t i = 0; i < N; i++) {
    snprintf(p, sizeof p, "%s/g%zu", dir, i);
    as[i] = open_flushed(&root, p, 0644, i);
    args[i] = (void *)(intptr_t)(i == 3); /* refused: item 3 */
  }
  path_in(p, sizeof p, "g4");
  ck_assert_int_eq(mkdir(p, 0755), 0); /* item 4's target, now a folder */
  actio__fio_atomic_commit_group(as, N, rcs, NULL, refuse_marked, args);
  for (size_t i = 0; i < N; i++) {
    snprintf(p, sizeof p, "%s/g%zu", dir, i);
    if (i == 3) {
      ck_assert_int_eq(rcs[i], -ECANCELED);
      ck_assert_int_ne(access(p, F_OK), 0);
    } else if (i == 4) {
      ck_assert_int_eq(rcs[i], -EISDIR);
    } else {
      ck_assert_int_eq(rcs[i], 0);
      check_durable(p, i);
    }
  }
  check_no_leftovers(dir, N - 1);
  ck_assert_int_eq(count_fds(), 0);
}
END_TEST

/* A write of file i to path (durable, or atomic with durable 0); returns
 * its status. */
static int write_whole(actio_actor *a, const char *path, size_t i, int durable) {
  char *data = durable_data(i);
  actio_future *f;
  int rc = durable ? actio_file_write_durable(a, path, data, durable_size(i), &f)
                   : actio_file_write(a, path, data, durable_size(i), ACTIO_WRITE_ATOMIC, &f);
  free(data);
  ck_assert_int_eq(rc, 0);
  rc = actio_future_wait(f, -1);
  actio_future_unref(f);
  return rc;
}

static mode_t mode_of(const char *path) {
  struct stat st;
  ck_assert_int_eq(lstat(path, &st), 0);
  return st.st_mode;
}

/* Durable and atomic writes look at their target only at the commit: a
 * replaced file keeps its mode (the same as a new file's, or another), a
 * new one gets the umask's; a folder and a FIFO are refused and stay; a
 * symbolic link is replaced by the file, what it points at untouched. */
START_TEST(replacements_keep_modes_and_refuse_what_is_no_file) {
  atomic_mode(_i);
  umask(022);
  static const struct {
    const char *name;
    mode_t old; /* 0: none */
    int status;
    mode_t want;
  } t[] = {{"m600", 0600, 0, 0600},   {"m644", 0644, 0, 0644},
           {"m755", 04755, 0, 04755}, {"new", 0, 0, 0644},
           {"link", 0, 0, 0644},      {"fifo", 0, -EINVAL, 0},
           {"folder", 0, -EISDIR, 0}};
  size_t n = sizeof t / sizeof *t;
  char p[512];
  for (int durable = 0; durable < 2; durable++) {
    for (size_t i = 0; i < n; i++) {
      path_in(p, sizeof p, t[i].name);
      rm_rf(p);
      if (t[i].old != 0) {
        write_file(t[i].name, "old");
        ck_assert_int_eq(chmod(p, t[i].old), 0);
      }
    }
    write_file("pointed", "pointed");
    path_in(p, sizeof p, "link");
    ck_assert_int_eq(symlink("pointed", p), 0);
    path_in(p, sizeof p, "fifo");
    ck_assert_int_eq(mkfifo(p, 0600), 0);
    path_in(p, sizeof p, "folder");
    ck_assert_int_eq(mkdir(p, 0700), 0);
    for (size_t i = 0; i < n; i++) {
      path_in(p, sizeof p, t[i].name);
      ck_assert_int_eq(write_whole(files, p, i, durable), t[i].status);
      if (t[i].status == 0) {
        check_durable(p, i);
        ck_assert_uint_eq(mode_of(p), S_IFREG | t[i].want);
      }
    }
    ck_assert_str_eq(slurp("pointed"), "pointed");
    path_in(p, sizeof p, "fifo");
    ck_assert(S_ISFIFO(mode_of(p)));
    path_in(p, sizeof p, "folder");
    ck_assert(S_ISDIR(mode_of(p)));
    check_no_leftovers(dir, (int)n + 1);
  }
  ck_assert_int_eq(count_fds(), 0);
}
END_TEST

/* The fallback's temporary has a name from its open on: it is never more
 * open than the file it replaces, while its content is written and waits
 * for its commit; the commit gives it the target's mode exactly. */
START_TEST(a_fallback_temporary_is_never_more_open_than_its_target) {
  actio__fio_use_tmpfile(0);
  umask(022);
  actio__root cwd = {AT_FDCWD, 0};
  static const mode_t modes[] = {0600, 0640, 0400, 04755};
  char p[512];
  for (size_t i = 0; i < sizeof modes / sizeof *modes; i++) {
    path_in(p, sizeof p, "secret");
    rm_rf(p);
    write_file("secret", "old");
    ck_assert_int_eq(chmod(p, modes[i]), 0);
    actio__fio_atomic *a = open_flushed(&cwd, p, 0666, i);
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int temps = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
      if (!actio__fio_is_leftover(e->d_name))
        continue;
      char t[1024];
      snprintf(t, sizeof t, "%s/%s", dir, e->d_name);
      ck_assert_msg((mode_of(t) & 0777 & ~modes[i]) == 0, "temporary %o, target %o",
                    (unsigned)(mode_of(t) & 07777), (unsigned)modes[i]);
      temps++;
    }
    closedir(d);
    ck_assert_int_eq(temps, 1);
    ck_assert_int_eq(actio__fio_atomic_commit(a, 1, NULL, NULL), 0);
    check_durable(p, i);
    ck_assert_uint_eq(mode_of(p), S_IFREG | modes[i]);
    check_no_leftovers(dir, 1);
  }
  ck_assert_int_eq(count_fds(), 0);
}
END_TEST

/* Targets made between a replacement's open and its commit, which finds
 * the name taken when it links: a file is replaced and keeps its mode (in
 * a group, and alone), a FIFO refused, a symbolic link replaced. */
START_TEST(targets_made_after_the_open) {
  atomic_mode(_i);
  umask(022);
  actio__root cwd = {AT_FDCWD, 0};
  enum { N = 4 };
  actio__fio_atomic *as[N];
  void *args[N] = {NULL};
  int rcs[N];
  char p[512];
  for (size_t i = 0; i < N; i++) {
    snprintf(p, sizeof p, "%s/late%zu", dir, i);
    as[i] = open_flushed(&cwd, p, 0666, i);
  }
  write_file("late0", "old");
  path_in(p, sizeof p, "late0");
  ck_assert_int_eq(chmod(p, 0600), 0);
  path_in(p, sizeof p, "late1");
  ck_assert_int_eq(mkfifo(p, 0600), 0);
  write_file("pointed", "pointed");
  path_in(p, sizeof p, "late2");
  ck_assert_int_eq(symlink("pointed", p), 0);
  write_file("late3", "old");
  path_in(p, sizeof p, "late3");
  ck_assert_int_eq(chmod(p, 0640), 0);
  actio__fio_atomic_commit_group(as, N - 1, rcs, NULL, NULL, args);
  ck_assert_int_eq(actio__fio_atomic_commit(as[N - 1], 1, NULL, NULL), 0);
  ck_assert_int_eq(rcs[0], 0);
  ck_assert_int_eq(rcs[1], -EINVAL);
  ck_assert_int_eq(rcs[2], 0);
  static const mode_t want[N] = {S_IFREG | 0600, S_IFIFO | 0600, S_IFREG | 0644,
                                 S_IFREG | 0640};
  for (size_t i = 0; i < N; i++) {
    snprintf(p, sizeof p, "%s/late%zu", dir, i);
    ck_assert_uint_eq(mode_of(p), want[i]);
    if (i != 1)
      check_durable(p, i);
  }
  ck_assert_str_eq(slurp("pointed"), "pointed");
  check_no_leftovers(dir, N + 1);
  ck_assert_int_eq(count_fds(), 0);
}
END_TEST

/* One group over several folders under a sandbox root, the root among
 * them and one folder named two ways, its contents flushed by the group
 * (syncfs): every file in place, no temporary anywhere, no descriptor
 * kept. */
START_TEST(a_group_spans_folders) {
  atomic_mode(_i);
  char p[512];
  path_in(p, sizeof p, "a");
  ck_assert_int_eq(mkdir(p, 0755), 0);
  path_in(p, sizeof p, "b");
  ck_assert_int_eq(mkdir(p, 0755), 0);
  path_in(p, sizeof p, "b/c");
  ck_assert_int_eq(mkdir(p, 0755), 0);
  actio__root root;
  ck_assert_int_eq(actio__root_open(&root, dir), 0);
  int fds = count_fds();
  static const char *const paths[] = {"a/x", "top", "b/x", "./a/y", "a/z",
                                      "b/c/x", "b/y", "top2"};
  enum { N = sizeof paths / sizeof *paths };
  actio__fio_atomic *as[N];
  void *args[N] = {NULL};
  int rcs[N];
  dev_t devs[N];
  for (size_t i = 0; i < N; i++) {
    ck_assert_int_eq(actio__fio_atomic_open(&root, paths[i], 0644, &as[i]), 0);
    char *data = durable_data(i);
    ck_assert_int_eq(
        actio__fio_write_fd(actio__fio_atomic_fd(as[i]), data, durable_size(i), -1), 0);
    free(data);
  }
  actio__fio_atomic_commit_group(as, N, rcs, devs, NULL, args);
  for (size_t i = 0; i < N; i++) {
    ck_assert_int_eq(rcs[i], 0);
    path_in(p, sizeof p, paths[i]);
    check_durable(p, i);
  }
  ck_assert_int_eq(count_fds(), fds);
  actio__root_close(&root);
  check_no_leftovers(dir, 4); /* a, b, top, top2 */
  path_in(p, sizeof p, "a");
  check_no_leftovers(p, 3);
  path_in(p, sizeof p, "b");
  check_no_leftovers(p, 3);
  path_in(p, sizeof p, "b/c");
  check_no_leftovers(p, 1);
}
END_TEST

/* Durable writes in a sandbox: "..", an absolute path, and (with openat2)
 * a folder link that leads out are refused; a file link is replaced by the
 * file, what it points at outside untouched; nothing is made outside. */
START_TEST(durable_writes_stay_in_the_sandbox) {
  actio__fio_use_openat2(_i == 0);
  char box[512], out[512], p[512];
  path_in(box, sizeof box, "box");
  path_in(out, sizeof out, "outside");
  ck_assert_int_eq(mkdir(box, 0755), 0);
  ck_assert_int_eq(mkdir(out, 0755), 0);
  path_in(p, sizeof p, "box/sub");
  ck_assert_int_eq(mkdir(p, 0755), 0);
  write_file("outside/secret", "secret");
  path_in(p, sizeof p, "box/dir-out");
  ck_assert_int_eq(symlink("../outside", p), 0);
  path_in(p, sizeof p, "box/file-out");
  ck_assert_int_eq(symlink("../outside/secret", p), 0);
  actio_actor *boxed;
  ck_assert_int_eq(actio_file_spawn(rt, &(actio_file_opts){.root = box}, &boxed), 0);
  char abs_out[600];
  snprintf(abs_out, sizeof abs_out, "%s/x", out);
  const char *escapes[] = {"../outside/x", "sub/../../outside/x", abs_out,
                           _i == 0 ? "dir-out/x" : "../x"};
  for (size_t i = 0; i < sizeof escapes / sizeof *escapes; i++)
    ck_assert_int_eq(write_whole(boxed, escapes[i], i, 1), ACTIO_ESANDBOX);
  if (_i == 0) { /* the walk refuses every link */
    ck_assert_int_eq(write_whole(boxed, "file-out", 0, 1), 0);
    path_in(p, sizeof p, "box/file-out");
    ck_assert(S_ISREG(mode_of(p)));
    check_durable(p, 0);
  }
  ck_assert_int_eq(write_whole(boxed, "inside", 1, 1), 0);
  path_in(p, sizeof p, "box/inside");
  check_durable(p, 1);
  ck_assert_str_eq(slurp("outside/secret"), "secret");
  check_no_leftovers(out, 1);
  check_no_leftovers(box, 4);
  actio__fio_use_openat2(1);
}
END_TEST

/* A queued durable write cancelled before it runs never makes its file. */
START_TEST(a_cancelled_durable_write_leaves_nothing) {
  char p[512], q[512];
  write_file("held", "x\n");
  path_in(q, sizeof q, "held");
  path_in(p, sizeof p, "never");
  actio_actor *one;
  ck_assert_int_eq(actio_file_spawn(rt, &(actio_file_opts){.workers = 1}, &one), 0);
  test_gate g = TEST_GATE_INIT;
  actio_future *l, *f, *after;
  ck_assert_int_eq(actio_file_lines(one, q, hold_worker, &g, &l), 0);
  gate_wait_held(&g);
  ck_assert_int_eq(actio_file_write_durable(one, p, "data", 4, &f), 0);
  ck_assert_int_eq(actio_future_cancel(f), 0);
  path_in(p, sizeof p, "after");
  ck_assert_int_eq(actio_file_write_durable(one, p, "data", 4, &after), 0);
  gate_open(&g);
  expect(l, 0);
  expect(f, ACTIO_ECANCELED);
  expect(after, 0);
  actio_future_unref(l);
  actio_future_unref(f);
  actio_future_unref(after);
  ck_assert_str_eq(slurp("after"), "data");
  check_no_leftovers(dir, 2); /* held, after */
}
END_TEST

typedef struct durable_writer {
  actio_actor *files;
  int id;
} durable_writer;

/* Writes DURABLE_FILES files into its own folder and as many into the
 * shared one, 32 in flight at a time. */
static void *durable_thread(void *arg) {
  durable_writer *w = arg;
  actio_future *f[32];
  char p[512];
  for (size_t base = 0; base < 2 * DURABLE_FILES; base += 32) {
    size_t n = 2 * DURABLE_FILES - base < 32 ? 2 * DURABLE_FILES - base : 32;
    for (size_t k = 0; k < n; k++) {
      size_t i = base + k;
      if (i % 2)
        snprintf(p, sizeof p, "%s/shared/t%d-%03zu", dir, w->id, i);
      else
        snprintf(p, sizeof p, "%s/own%d/%03zu", dir, w->id, i);
      char *data = durable_data(i);
      ck_assert_int_eq(actio_file_write_durable(w->files, p, data, durable_size(i), &f[k]), 0);
      free(data);
    }
    for (size_t k = 0; k < n; k++) {
      expect(f[k], 0);
      actio_future_unref(f[k]);
    }
  }
  return NULL;
}

/* Two threads write durably at once through one actor with small groups:
 * their files share groups and folders. With groups of one, workers wait
 * for room at every turn. With several groups committed at once (_i >= 2),
 * by leaders on their own slots, or more asked than there are workers
 * (_i == 3), every file still ends durable, under its name, once. */
START_TEST(durable_writes_from_two_threads) {
  actio_actor *g;
  static const actio_file_opts opts[] = {
      {.max_group = 16, .workers = 4},
      {.max_group = 1, .workers = 4},
      {.max_group = 4, .max_groups = 3, .workers = 4},
      {.max_group = 1, .max_groups = 100, .workers = 4},
  };
  actio_file_opts o = opts[_i];
  ck_assert_int_eq(actio_file_spawn(rt, &o, &g), 0);
  char p[512];
  const char *folders[] = {"shared", "own0", "own1"};
  for (int i = 0; i < 3; i++) {
    path_in(p, sizeof p, folders[i]);
    ck_assert_int_eq(mkdir(p, 0755), 0);
  }
  durable_writer w[2] = {{g, 0}, {g, 1}};
  pthread_t t[2];
  start_threads(t, 2, durable_thread, w, sizeof w[0]);
  join_threads(t, 2);
  for (int id = 0; id < 2; id++)
    for (size_t i = 0; i < 2 * DURABLE_FILES; i++) {
      if (i % 2)
        snprintf(p, sizeof p, "%s/shared/t%d-%03zu", dir, id, i);
      else
        snprintf(p, sizeof p, "%s/own%d/%03zu", dir, id, i);
      check_durable(p, i);
    }
  for (int i = 0; i < 3; i++) {
    path_in(p, sizeof p, folders[i]);
    check_no_leftovers(p, i == 0 ? 2 * DURABLE_FILES : DURABLE_FILES);
  }
}
END_TEST

/* The child of durable_writes_killed_midway: rounds of KILLED_FILES durable
 * writes, file i of round r holding durable_data(r * KILLED_FILES + i),
 * each round over before the next starts and told on fd by a byte. */
#define KILLED_FILES 8
static void write_durably_until_killed(int fd, int tmpfile) {
  actio__fio_use_tmpfile(tmpfile);
  actio_runtime *own;
  actio_actor *g;
  if (actio_runtime_create(&own, NULL) != 0 ||
      actio_file_spawn(own, &(actio_file_opts){.root = dir, .workers = 2, .max_group = 4},
                       &g) != 0)
    _exit(1);
  for (size_t r = 0;; r++) {
    actio_future *f[KILLED_FILES];
    char name[16];
    for (size_t i = 0; i < KILLED_FILES; i++) {
      snprintf(name, sizeof name, "k%zu", i);
      char *data = durable_data(r * KILLED_FILES + i);
      if (actio_file_write_durable(g, name, data, durable_size(r * KILLED_FILES + i), &f[i]) != 0)
        _exit(2);
      free(data);
    }
    for (size_t i = 0; i < KILLED_FILES; i++) {
      if (actio_future_wait(f[i], -1) != 0)
        _exit(3);
      actio_future_unref(f[i]);
    }
    if (write(fd, "r", 1) != 1)
      _exit(4);
  }
}

/* 1 if a temporary name is in dir. */
static int leftover_there(void) {
  DIR *d = opendir(dir);
  ck_assert_ptr_nonnull(d);
  int seen = 0;
  for (struct dirent *e; !seen && (e = readdir(d)) != NULL;)
    seen = actio__fio_is_leftover(e->d_name);
  closedir(d);
  return seen;
}

/* A process making durable writes in groups, killed (SIGKILL) in the
 * middle of them: each file holds the last round it finished or the one
 * under way, whole; nothing but leftovers of the documented name is left
 * beside them, and actio_file_clean_leftovers removes exactly those. */
START_TEST(durable_writes_killed_midway) {
  int rd;
  pid_t pid = fork_writer(write_durably_until_killed, _i == 0, &rd);
  char c;
  size_t rounds = 0;
  while (rounds < 3 && read(rd, &c, 1) == 1) /* some rounds done: mid-run */
    rounds++;
  ck_assert_uint_eq(rounds, 3);
  /* Killed once a temporary name is there (the named fallback's as it is
   * written; O_TMPFILE's between its link and its rename: a short while, so
   * looked for a bounded number of times). */
  for (int looks = 0; looks < 20000 && !leftover_there(); looks++)
    ;
  kill_writer(pid);
  while (read(rd, &c, 1) == 1) /* the rounds it finished before the kill */
    rounds++;
  close(rd);
  char p[512], name[16];
  for (size_t i = 0; i < KILLED_FILES; i++) {
    snprintf(name, sizeof name, "k%zu", i);
    path_in(p, sizeof p, name);
    ck_assert_msg(holds_durable(p, (rounds - 1) * KILLED_FILES + i) ||
                      holds_durable(p, rounds * KILLED_FILES + i),
                  "%s holds neither round %zu nor %zu whole", name, rounds - 1, rounds);
  }
  int leftovers = 0;
  DIR *d = opendir(dir);
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 || e->d_name[0] == 'k')
      continue;
    ck_assert_msg(actio__fio_is_leftover(e->d_name), "a stranger: %s", e->d_name);
    leftovers++;
  }
  closedir(d);
  ck_assert_int_le(leftovers, KILLED_FILES);
  clean_leftovers_after_kill(leftovers);
  check_no_leftovers(dir, KILLED_FILES);
}
END_TEST

extern char **environ;

/* ---- regressions from review ---- */

START_TEST(mkdir_accepts_dot_and_double_slash) {
  char p[512];
  actio_future *f;
  path_in(p, sizeof p, "m1//m2/./m3/");
  ck_assert_int_eq(actio_file_mkdir(files, p, 0755, &f), 0);
  expect(f, 0);
  actio_future_unref(f);
  struct stat st;
  path_in(p, sizeof p, "m1/m2/m3");
  ck_assert_int_eq(stat(p, &st), 0);
  ck_assert(S_ISDIR(st.st_mode));
}
END_TEST

START_TEST(atomic_write_of_a_new_file_keeps_the_umask) {
  char p[512];
  actio_future *f;
  atomic_mode(_i);
  umask(022);
  path_in(p, sizeof p, "fresh");
  ck_assert_int_eq(actio_file_write(files, p, "x", 1, ACTIO_WRITE_ATOMIC, &f), 0);
  expect(f, 0);
  actio_future_unref(f);
  struct stat st;
  ck_assert_int_eq(stat(p, &st), 0);
  ck_assert_uint_eq(st.st_mode & 0777, 0644);
}
END_TEST

START_TEST(a_read_over_the_limit_names_it) {
  actio_actor *small;
  actio_file_opts o = {.max_read = 5};
  ck_assert_int_eq(actio_file_spawn(rt, &o, &small), 0);
  write_file("eleven", "eleven byte");
  char p[512], want[600];
  path_in(p, sizeof p, "eleven");
  actio_future *f;
  ck_assert_int_eq(actio_file_read(small, p, &f), 0);
  expect(f, -EFBIG);
  snprintf(want, sizeof want, "read %s: larger than max_read (5 bytes)", p);
  ck_assert_str_eq(actio_future_errmsg(f), want);
  actio_future_unref(f);
}
END_TEST

START_TEST(no_read_limit_means_no_limit) {
  actio_actor *unlimited;
  actio_file_opts o = {.max_read = SIZE_MAX};
  ck_assert_int_eq(actio_file_spawn(rt, &o, &unlimited), 0);
  write_file("eleven", "eleven byte");
  char p[512];
  path_in(p, sizeof p, "eleven");
  actio_future *f;
  ck_assert_int_eq(actio_file_read(unlimited, p, &f), 0);
  ck_assert_str_eq(((actio_buf *)expect(f, 0))->data, "eleven byte");
  actio_future_unref(f);
}
END_TEST

START_TEST(a_refused_sequential_call_gives_its_range_back) {
  char p[512];
  actio_future *f;
  write_file("seq", "0123456789");
  path_in(p, sizeof p, "seq");
  ck_assert_int_eq(actio_file_open(files, p, O_RDWR, 0, &f), 0);
  expect(f, 0);
  actio_fh *h = actio_future_take(f);
  actio_future_unref(f);
  ck_assert_int_eq(actio_fh_read(h, SIZE_MAX, &f), ACTIO_EINVAL);
  ck_assert_int_eq(actio_fh_pwrite(h, UINT64_MAX - 1, "x", 1, &f), ACTIO_EINVAL);
  ck_assert_int_eq(actio_fh_read(h, 4, &f), 0);
  ck_assert_str_eq(((actio_buf *)expect(f, 0))->data, "0123");
  actio_future_unref(f);
  ck_assert_int_eq(actio_fh_close(h, &f), 0);
  expect(f, 0);
  actio_future_unref(f);
}
END_TEST

static actio_future *held_ready;

static int hold_first(void *arg, const void *data, size_t len, actio_future **ready) {
  (void)arg;
  (void)data;
  (void)len;
  if (__atomic_load_n(&held_ready, __ATOMIC_ACQUIRE) == NULL) {
    actio_future_create(ready);
    actio_future_ref(*ready);
    __atomic_store_n(&held_ready, *ready, __ATOMIC_RELEASE);
  }
  return 0;
}

START_TEST(a_waiting_stream_ends_with_its_actor) {
  actio_runtime *own;
  actio_actor *f2;
  ck_assert_int_eq(actio_runtime_create(&own, NULL), 0);
  ck_assert_int_eq(actio_file_spawn(own, NULL, &f2), 0);
  write_file("waits", "some bytes to stream");
  char p[512];
  path_in(p, sizeof p, "waits");
  held_ready = NULL;
  actio_future *f;
  ck_assert_int_eq(actio_file_stream(f2, p, 4, hold_first, NULL, &f), 0);
  while (__atomic_load_n(&held_ready, __ATOMIC_ACQUIRE) == NULL)
    usleep(1000);
  actio_runtime_destroy(own); /* the stop waits for the worker that parks it */
  expect(f, ACTIO_ECANCELED); /* it ended with the actor */
  actio_future_unref(f);
  ck_assert_int_eq(count_fds(), 0);
  actio_future *h = __atomic_load_n(&held_ready, __ATOMIC_ACQUIRE);
  actio_future_resolve(h, NULL, NULL); /* nothing left to touch */
  actio_future_unref(h);
}
END_TEST

/* ---- paths the tests above leave out ---- */

START_TEST(lines_split_alike_by_every_splitter) {
  /* Lines across the splitters' 64-byte blocks, split by each splitter the
   * CPU has (memchr, SSE2, AVX2), then the default one: the same lines. */
  char p[512];
  path_in(p, sizeof p, "blocks.txt");
  enum { LINES = 20000 };
  uint64_t want = write_lines(p, LINES, 0);
  ck_assert_int_eq(actio__fio_lines_split(ACTIO__SPLIT_AVX2 + 1), -EINVAL);
  int how[] = {ACTIO__SPLIT_MEMCHR, ACTIO__SPLIT_SSE2, ACTIO__SPLIT_AVX2, ACTIO__SPLIT_AUTO};
  for (size_t k = 0; k < sizeof how / sizeof *how; k++) {
    int rc = actio__fio_lines_split(how[k]);
    if (rc == -ENOTSUP)
      continue; /* not on this CPU */
    ck_assert_int_eq(rc, 0);
    check_lines(p, LINES, want);
  }
}
END_TEST

START_TEST(copy_falls_back_where_the_kernel_cannot) {
  /* copy_file_range refuses a /proc file (EXDEV, or EINVAL on older
   * kernels): the copy reads and writes instead. */
  char q[512];
  path_in(q, sizeof q, "version");
  actio_future *f;
  ck_assert_int_eq(actio_file_copy(files, "/proc/version", q, &f), 0);
  expect(f, 0);
  actio_future_unref(f);
  char want[1024] = "";
  FILE *fp = fopen("/proc/version", "r");
  ck_assert_ptr_nonnull(fp);
  size_t n = fread(want, 1, sizeof want - 1, fp);
  fclose(fp);
  ck_assert_uint_gt(n, 0);
  ck_assert_str_eq(slurp("version"), want);
  /* Neither a folder nor a pipe is a file to copy. */
  char pipe_path[512];
  path_in(pipe_path, sizeof pipe_path, "pipe");
  ck_assert_int_eq(mkfifo(pipe_path, 0600), 0);
  ck_assert_int_eq(actio_file_copy(files, dir, q, &f), 0);
  expect(f, -EISDIR);
  actio_future_unref(f);
  int fd = open(pipe_path, O_RDWR); /* so the copy's open does not wait */
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(actio_file_copy(files, pipe_path, q, &f), 0);
  expect(f, -EINVAL);
  actio_future_unref(f);
  close(fd);
}
END_TEST

typedef struct {
  char path[512];
  size_t len;
} pipe_feed;

/* Writes len bytes of a known pattern into the pipe, then closes it. */
static void *feed_pipe(void *p) {
  pipe_feed *pf = p;
  int fd = open(pf->path, O_WRONLY);
  for (size_t i = 0; fd >= 0 && i < pf->len; i++) {
    char c = (char)('a' + i % 26);
    if (write(fd, &c, 1) != 1)
      break; /* the reader gave up */
  }
  if (fd >= 0)
    close(fd);
  return NULL;
}

START_TEST(reads_a_pipe_of_unknown_size) {
  /* A pipe has no size to read up to: the buffer grows as data comes, up
   * to max_read. */
  signal(SIGPIPE, SIG_IGN); /* the refused read closes its end first */
  pipe_feed pf = {.len = 10000};
  path_in(pf.path, sizeof pf.path, "pipe");
  ck_assert_int_eq(mkfifo(pf.path, 0600), 0);
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, feed_pipe, &pf), 0);
  actio_future *f;
  ck_assert_int_eq(actio_file_read(files, pf.path, &f), 0);
  actio_buf *b = expect(f, 0);
  ck_assert_uint_eq(b->len, pf.len);
  for (size_t i = 0; i < b->len; i++)
    ck_assert_int_eq(b->data[i], 'a' + (int)(i % 26));
  actio_future_unref(f);
  ck_assert_int_eq(pthread_join(t, NULL), 0);
  actio_actor *small;
  ck_assert_int_eq(actio_file_spawn(rt, &(actio_file_opts){.max_read = 5000}, &small), 0);
  ck_assert_int_eq(pthread_create(&t, NULL, feed_pipe, &pf), 0);
  ck_assert_int_eq(actio_file_read(small, pf.path, &f), 0);
  expect(f, -EFBIG);
  actio_future_unref(f);
  ck_assert_int_eq(pthread_join(t, NULL), 0);
}
END_TEST

START_TEST(folders_and_temporary_files) {
  char p[512];
  actio_future *f;
  /* A folder of many long names: the listing grows past its first guess. */
  path_in(p, sizeof p, "many");
  mkdir(p, 0755);
  enum { NAMES = 300 };
  for (int i = NAMES - 1; i >= 0; i--) {
    char name[128];
    snprintf(name, sizeof name, "many/%03d-a-rather-long-name-to-fill-the-listing", i);
    write_file(name, "");
  }
  ck_assert_int_eq(actio_file_list(files, p, &f), 0);
  char **names = expect(f, 0);
  for (int i = 0; i < NAMES; i++) {
    char want[128];
    snprintf(want, sizeof want, "%03d-a-rather-long-name-to-fill-the-listing", i);
    ck_assert_str_eq(names[i], want);
  }
  ck_assert_ptr_null(names[NAMES]);
  actio_future_unref(f);
  /* unlink takes an empty folder, not a full one. */
  ck_assert_int_eq(actio_file_unlink(files, p, &f), 0);
  expect(f, -EISDIR);
  actio_future_unref(f);
  path_in(p, sizeof p, "empty");
  mkdir(p, 0755);
  ck_assert_int_eq(actio_file_unlink(files, p, &f), 0);
  expect(f, 0);
  actio_future_unref(f);
  ck_assert_int_eq(access(p, F_OK), -1);
  /* A temporary file in a folder that does not exist. */
  path_in(p, sizeof p, "no-such-folder/tmp-");
  ck_assert_int_eq(actio_file_tempfile(files, p, &f), 0);
  expect(f, -ENOENT);
  actio_future_unref(f);
}
END_TEST

START_TEST(stat_in_a_sandbox) {
  actio_actor *boxed;
  ck_assert_int_eq(actio_file_spawn(rt, &(actio_file_opts){.root = dir}, &boxed), 0);
  write_file("five", "12345");
  actio_future *f;
  ck_assert_int_eq(actio_file_stat(boxed, "five", &f), 0);
  ck_assert_int_eq(((struct stat *)expect(f, 0))->st_size, 5);
  actio_future_unref(f);
  ck_assert_int_eq(actio_file_stat(boxed, "../five", &f), 0);
  expect(f, ACTIO_ESANDBOX);
  actio_future_unref(f);
  ck_assert_int_eq(actio_file_stat(boxed, "missing", &f), 0);
  expect(f, -ENOENT);
  actio_future_unref(f);
}
END_TEST

static int ready_at_once(void *arg, const void *data, size_t len, actio_future **ready) {
  (void)data;
  *(uint64_t *)arg += len;
  return actio_future_resolved(ready, NULL, NULL);
}

static int refuse_second(void *arg, const void *data, size_t len, actio_future **ready) {
  (void)data;
  (void)len;
  (void)ready;
  return ++*(int *)arg == 2 ? -EPROTO : 0;
}

START_TEST(stream_consumers_ready_at_once_or_refusing) {
  write_file("s3", "0123456789");
  char p[512];
  path_in(p, sizeof p, "s3");
  actio_future *f;
  uint64_t seen = 0;
  ck_assert_int_eq(actio_file_stream(files, p, 3, ready_at_once, &seen, &f), 0);
  ck_assert_uint_eq(*(uint64_t *)expect(f, 0), 10);
  ck_assert_uint_eq(seen, 10);
  actio_future_unref(f);
  int calls = 0;
  ck_assert_int_eq(actio_file_stream(files, p, 3, refuse_second, &calls, &f), 0);
  expect(f, -EPROTO);
  ck_assert_int_eq(calls, 2);
  actio_future_unref(f);
  path_in(p, sizeof p, "missing");
  ck_assert_int_eq(actio_file_stream(files, p, 3, ready_at_once, &seen, &f), 0);
  expect(f, -ENOENT);
  actio_future_unref(f);
  ck_assert_int_eq(count_fds(), 0);
}
END_TEST

/* A call that made its future (sent is 0), and the future fails with
 * `status`; the future is let go. */
static void fails(int sent, actio_future **f, int status) {
  ck_assert_int_eq(sent, 0);
  expect(*f, status);
  actio_future_unref(*f);
}

START_TEST(errors_of_each_operation) {
  char p[512], q[512];
  actio_future *f;
  write_file("eight", "12345678");
  path_in(p, sizeof p, "eight");
  /* A regular file over max_read. */
  actio_actor *small;
  ck_assert_int_eq(actio_file_spawn(rt, &(actio_file_opts){.max_read = 4}, &small), 0);
  fails(actio_file_read(small, p, &f), &f, -EFBIG);
  /* A folder is no file to read, split or stream. */
  fails(actio_file_read(files, dir, &f), &f, -EISDIR);
  line_sum none = {0, 0, 0};
  fails(actio_file_lines(files, dir, sum_lines, &none, &f), &f, -EISDIR);
  uint64_t seen = 0;
  fails(actio_file_stream(files, dir, 0, ready_at_once, &seen, &f), &f, -EISDIR);
  ck_assert_int_eq(actio_file_stream(files, dir, 0, NULL, NULL, &f), ACTIO_EINVAL);
  /* Refused at the call: an actor that is not a file actor, flags that
   * contradict each other, a handle's missing arguments. */
  actio_actor *sup;
  ck_assert_int_eq(actio_sup_spawn(rt, NULL, NULL, 0, &sup), 0);
  ck_assert_int_eq(actio_file_read(sup, p, &f), ACTIO_EINVAL);
  ck_assert_int_eq(actio_file_open(sup, p, O_RDONLY, 0, &f), ACTIO_EINVAL);
  ck_assert_int_eq(actio_file_write(files, p, "x", 1, ACTIO_WRITE_APPEND | ACTIO_WRITE_EXCL, &f),
                   ACTIO_EINVAL);
  ck_assert_int_eq(actio_fh_pread(NULL, 0, 1, &f), ACTIO_EINVAL);
  ck_assert_int_eq(actio_fh_sync(NULL, &f), ACTIO_EINVAL);
  path_in(q, sizeof q, "missing");
  fails(actio_file_lines(files, q, sum_lines, &none, &f), &f, -ENOENT);
  ck_assert_uint_eq(none.count, 0);
  /* A handle opened for writing does not read. */
  ck_assert_int_eq(actio_file_open(files, p, O_WRONLY, 0, &f), 0);
  actio_fh *h = expect(f, 0);
  actio_future *r;
  fails(actio_fh_pread(h, 0, 4, &r), &r, -EBADF);
  actio_future_unref(f); /* closes the handle never taken */
  /* Names that are missing, or not folders. */
  path_in(q, sizeof q, "no-such-folder/x");
  fails(actio_file_rename(files, q, p, &f), &f, -ENOENT);
  path_in(q, sizeof q, "missing");
  fails(actio_file_rename(files, q, p, &f), &f, -ENOENT);
  fails(actio_file_copy(files, q, p, &f), &f, -ENOENT);
  path_in(q, sizeof q, "no-such-folder/copy");
  fails(actio_file_copy(files, p, q, &f), &f, -ENOENT);
  fails(actio_file_list(files, q, &f), &f, -ENOENT);
  fails(actio_file_list(files, p, &f), &f, -ENOTDIR);
  path_in(q, sizeof q, "eight/under-a-file");
  ck_assert_int_eq(actio_file_exists(files, q, &f), 0);
  ck_assert_int_eq(*(int *)expect(f, 0), 0);
  actio_future_unref(f);
  path_in(q, sizeof q, "d/.");
  fails(actio_file_unlink(files, q, &f), &f, -EINVAL);
  ck_assert_str_eq(slurp("eight"), "12345678"); /* untouched by all of it */
  /* The failed pread held the handle until its worker freed the request,
   * a moment after its reply: the handle closes then (a leak would time
   * the test out). */
  while (count_fds() != 0)
    sched_yield();
}
END_TEST

/* Spawns a one-worker file actor in rt and holds its worker at the gate. */
static actio_actor *held_actor(test_gate *g, actio_future **held) {
  actio_actor *one;
  ck_assert_int_eq(actio_file_spawn(rt, &(actio_file_opts){.workers = 1}, &one), 0);
  write_file("gate", "one line\n");
  char p[512];
  path_in(p, sizeof p, "gate");
  ck_assert_int_eq(actio_file_lines(one, p, hold_worker, g, held), 0);
  gate_wait_held(g);
  return one;
}

START_TEST(a_request_cancelled_while_queued_never_runs) {
  test_gate g = TEST_GATE_INIT;
  actio_future *held, *w, *l, *after;
  actio_actor *one = held_actor(&g, &held);
  char p[512], gp[512];
  path_in(p, sizeof p, "never");
  path_in(gp, sizeof gp, "gate");
  ck_assert_int_eq(actio_file_write(one, p, "x", 1, 0, &w), 0);
  line_sum none = {0, 0, 0};
  ck_assert_int_eq(actio_file_lines(one, gp, sum_lines, &none, &l), 0);
  ck_assert_int_eq(actio_future_cancel(w), 0);
  ck_assert_int_eq(actio_future_cancel(l), 0);
  ck_assert_int_eq(actio_file_exists(one, p, &after), 0);
  gate_open(&g);
  ck_assert_uint_eq(*(uint64_t *)expect(held, 0), 1);
  /* One worker takes them in order: the cancelled two came first. */
  ck_assert_int_eq(*(int *)expect(after, 0), 0);
  expect(w, ACTIO_ECANCELED);
  expect(l, ACTIO_ECANCELED);
  ck_assert_uint_eq(none.count, 0);
  ck_assert_int_eq(access(p, F_OK), -1);
  actio_future_unref(held);
  actio_future_unref(w);
  actio_future_unref(l);
  actio_future_unref(after);
}
END_TEST

/* Reads the gate's file with the actor `a`. */
static int read_gate(void *a, actio_future **f) {
  char p[512];
  path_in(p, sizeof p, "gate");
  return actio_file_read(a, p, f);
}

START_TEST(a_stop_now_drops_what_waits) {
  test_gate g = TEST_GATE_INIT;
  actio_future *held, *fs[64];
  actio_actor *one = held_actor(&g, &held);
  int n = 0, extra = 0;
  char p[512];
  for (; n < 8; n++) {
    snprintf(p, sizeof p, "%s/dropped-%d", dir, n);
    ck_assert_int_eq(actio_file_write(one, p, "x", 1, 0, &fs[n]), 0);
  }
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, stop_now_thread, one), 0);
  /* The stop closes the mailbox, then waits for the held worker; requests
   * sent until the close wait too. */
  ck_assert_int_eq(send_until_refused(read_gate, one, fs, 64, &n, &extra), ACTIO_ECLOSED);
  gate_open(&g);
  ck_assert_int_eq(pthread_join(t, NULL), 0);
  ck_assert_uint_eq(*(uint64_t *)expect(held, 0), 1); /* it was running: it ends */
  actio_future_unref(held);
  for (int i = 0; i < n; i++) {
    expect(fs[i], ACTIO_ECANCELED);
    ck_assert_ptr_nonnull(strstr(actio_future_errmsg(fs[i]), "file actor stopped"));
    actio_future_unref(fs[i]);
  }
  for (int i = 0; i < 8; i++) {
    snprintf(p, sizeof p, "%s/dropped-%d", dir, i);
    ck_assert_int_eq(access(p, F_OK), -1);
  }
  actio_actor_stats st;
  actio_actor_stats_get(one, &st);
  ck_assert_uint_eq(st.dropped, (uint64_t)(n + extra));
}
END_TEST

START_TEST(a_supervised_file_actor) {
  /* actio_file_child starts the actor with the spec's options: here a
   * sandbox. */
  actio_file_opts o = {.root = dir, .workers = 1};
  actio_child_spec spec = {.name = "files", .start = actio_file_child, .arg = &o};
  actio_actor *sup;
  ck_assert_int_eq(actio_sup_spawn(rt, NULL, &spec, 1, &sup), 0);
  actio_actor *child = actio_sup_lookup(sup, "files");
  ck_assert_ptr_nonnull(child);
  write_file("inside", "in");
  actio_future *f;
  ck_assert_int_eq(actio_file_read(child, "inside", &f), 0);
  ck_assert_str_eq(((actio_buf *)expect(f, 0))->data, "in");
  actio_future_unref(f);
  ck_assert_int_eq(actio_file_read(child, "../outside", &f), 0);
  expect(f, ACTIO_ESANDBOX);
  actio_future_unref(f);
}
END_TEST

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--read-as-nobody") == 0)
    return read_as_nobody(argv[2]);
  Suite *s = suite_create("file");
  TCase *tc = tcase_with_timeout("operations", 60);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, read_write_append_exclusive);
  tcase_add_test(tc, errors_name_the_operation_and_path);
  tcase_add_test(tc, bad_arguments_are_refused_at_once);
  tcase_add_test(tc, permission_denied);
  tcase_add_loop_test(tc, atomic_write_replaces_whole_or_not_at_all, 0, 3);
  tcase_add_test(tc, cancelled_atomic_write_leaves_nothing);
  tcase_add_test(tc, handles_positional_and_sequential);
  tcase_add_test(tc, an_untaken_handle_is_closed_with_its_future);
  tcase_add_test(tc, open_errors);
  tcase_add_test(tc, file_system_operations);
  tcase_add_test(tc, sandbox_keeps_paths_inside);
  tcase_add_test(tc, sandbox_root_must_exist);
  tcase_add_test(tc, sandbox_fallback_walk_is_stricter);
  tcase_add_test(tc, lines_edge_cases);
  tcase_add_test(tc, stream_with_backpressure);
  tcase_add_test(tc, stream_fails_with_its_consumer);
  tcase_add_test(tc, stream_into_a_file_through_a_handle);
  tcase_add_test(tc, mkdir_accepts_dot_and_double_slash);
  tcase_add_loop_test(tc, atomic_write_of_a_new_file_keeps_the_umask, 0, 3);
  tcase_add_test(tc, leftovers_are_recognised_and_cleaned);
  tcase_add_test(tc, no_read_limit_means_no_limit);
  tcase_add_test(tc, a_read_over_the_limit_names_it);
  tcase_add_test(tc, a_refused_sequential_call_gives_its_range_back);
  tcase_add_test(tc, a_waiting_stream_ends_with_its_actor);
  tcase_add_test(tc, requests_after_stop_are_refused);
  suite_add_tcase(s, tc);
  tc = tcase_with_timeout("paths", 60);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, lines_split_alike_by_every_splitter);
  tcase_add_test(tc, copy_falls_back_where_the_kernel_cannot);
  tcase_add_test(tc, reads_a_pipe_of_unknown_size);
  tcase_add_test(tc, folders_and_temporary_files);
  tcase_add_test(tc, stat_in_a_sandbox);
  tcase_add_test(tc, stream_consumers_ready_at_once_or_refusing);
  tcase_add_test(tc, errors_of_each_operation);
  tcase_add_test(tc, a_request_cancelled_while_queued_never_runs);
  tcase_add_test(tc, a_stop_now_drops_what_waits);
  tcase_add_test(tc, a_supervised_file_actor);
  suite_add_tcase(s, tc);
  tc = tcase_with_timeout("durable", 120);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_loop_test(tc, durable_writes_in_groups, 0, 4);
  tcase_add_loop_test(tc, a_failing_durable_write_fails_alone, 0, 3);
  tcase_add_test(tc, durable_completions_run_in_a_burst);
  tcase_add_loop_test(tc, a_group_commits_around_its_failures, 0, 3);
  tcase_add_loop_test(tc, replacements_keep_modes_and_refuse_what_is_no_file, 0, 3);
  tcase_add_loop_test(tc, targets_made_after_the_open, 0, 3);
  tcase_add_test(tc, a_fallback_temporary_is_never_more_open_than_its_target);
  tcase_add_loop_test(tc, a_group_spans_folders, 0, 3);
  tcase_add_loop_test(tc, durable_writes_stay_in_the_sandbox, 0, 2);
  tcase_add_test(tc, a_cancelled_durable_write_leaves_nothing);
  tcase_add_loop_test(tc, durable_writes_from_two_threads, 0, 4);
  suite_add_tcase(s, tc);
  TCase *big = tcase_with_timeout("large", 600);
  tcase_add_checked_fixture(big, setup, teardown);
  tcase_add_test(big, lines_of_a_million_line_file);
  tcase_add_test(big, many_writers_and_readers);
  suite_add_tcase(s, big);
  /* Forks: a fixture without a runtime, so the child copies no threads. */
  TCase *kill = tcase_with_timeout("kill", 60);
  tcase_add_checked_fixture(kill, make_dir, teardown);
  tcase_add_loop_test(kill, atomic_write_killed_midway, 0, 2);
  tcase_add_loop_test(kill, durable_writes_killed_midway, 0, 2);
  suite_add_tcase(s, kill);
  return run_suite(s);
}

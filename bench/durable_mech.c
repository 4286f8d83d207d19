/* durable_mech.c: durable-mechanisms: files/s and CPU a file of the ways to
 * make a group of new files durable (content flushed, then linked, then the
 * folder fsynced), in plain system calls, for choosing the file actor's
 * group commit (docs/architecture.md, "Group commit"). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum {
  M_SERIAL, M_PARALLEL, M_SFR_FDATASYNC, M_SFR_SYNCFS, M_SYNCFS, M_PARALLEL_FSYNC,
  M_COUNT
};
static const char *const mech_names[M_COUNT] = {
    "fsync_serial", "fdatasync_parallel", "sfr_then_fdatasync", "sfr_then_syncfs",
    "syncfs", "fsync_parallel"};

typedef struct run {
  const char *dir;
  int topfd;         /* dir */
  int dirfd;         /* this run's folder in it */
  size_t files, size, group, threads;
  int mech;
  char *payload;
  int *fds;          /* the group's O_TMPFILE descriptors */
  size_t base, n;    /* the group's first file and its size */
  pthread_barrier_t start, done;
  int quit;
} run;

static double now_sec(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what) {
  perror(what);
  exit(1);
}

static void write_all(int fd, const char *p, size_t len) {
  while (len > 0) {
    ssize_t w = write(fd, p, len);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0)
      die("write");
    p += w;
    len -= (size_t)w;
  }
}

typedef struct worker {
  run *r;
  size_t index;
} worker;

/* The file actor's workers: each writes its share of the group (and, by
 * mechanism, starts or waits for its writeback). */
static void *work(void *arg) {
  worker *w = arg;
  run *r = w->r;
  for (;;) {
    pthread_barrier_wait(&r->start);
    if (r->quit)
      return NULL;
    for (size_t i = w->index; i < r->n; i += r->threads) {
      int fd = openat(r->dirfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
      if (fd < 0)
        die("open O_TMPFILE");
      write_all(fd, r->payload, r->size);
      if (r->mech == M_PARALLEL && fdatasync(fd) != 0)
        die("fdatasync");
      if (r->mech == M_PARALLEL_FSYNC && fsync(fd) != 0) /* the file actor's */
        die("fsync");
      if ((r->mech == M_SFR_FDATASYNC || r->mech == M_SFR_SYNCFS) &&
          sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE) != 0)
        die("sync_file_range");
      r->fds[i] = fd;
    }
    pthread_barrier_wait(&r->done);
  }
}

static void name_file(size_t i, char *buf, size_t cap) {
  snprintf(buf, cap, "f%07zu", i);
}

/* One group: written by the workers, flushed, linked, the folder fsynced. */
static void one_group(run *r) {
  pthread_barrier_wait(&r->start);
  pthread_barrier_wait(&r->done);
  switch (r->mech) {
  case M_SERIAL:
    for (size_t i = 0; i < r->n; i++)
      if (fsync(r->fds[i]) != 0)
        die("fsync");
    break;
  case M_SFR_FDATASYNC:
    for (size_t i = 0; i < r->n; i++)
      if (fdatasync(r->fds[i]) != 0)
        die("fdatasync");
    break;
  case M_SFR_SYNCFS:
  case M_SYNCFS:
    if (syncfs(r->dirfd) != 0)
      die("syncfs");
    break;
  default:
    break;
  }
  for (size_t i = 0; i < r->n; i++) {
    char proc[32], name[32];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", r->fds[i]);
    name_file(r->base + i, name, sizeof name);
    if (linkat(AT_FDCWD, proc, r->dirfd, name, AT_SYMLINK_FOLLOW) != 0)
      die("linkat");
    close(r->fds[i]);
  }
  if (fsync(r->dirfd) != 0)
    die("fsync dir");
}

/* The process's CPU time (user and system, all threads), in seconds. */
static double cpu_sec(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* Files/s of run k, in a folder of its own; *cpu_us gets the process's
 * CPU time a file (what the kernel's flusher threads spend for it is not
 * counted). */
static double one_run(run *r, size_t k, double *cpu_us) {
  char sub[32];
  snprintf(sub, sizeof sub, "run-%03zu", k);
  if (mkdirat(r->topfd, sub, 0777) != 0 ||
      (r->dirfd = openat(r->topfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
    die(sub);
  double t0 = now_sec(), c0 = cpu_sec();
  for (r->base = 0; r->base < r->files; r->base += r->group) {
    r->n = r->files - r->base < r->group ? r->files - r->base : r->group;
    one_group(r);
  }
  double secs = now_sec() - t0;
  *cpu_us = (cpu_sec() - c0) * 1e6 / (double)r->files;
  /* Nothing is removed until all runs are over: on an ext4 without a
   * journal, new inodes pass over those freed in the last minutes one by
   * one, which would tax the runs after a removal. What a run left dirty
   * is flushed outside the timing. */
  if (syncfs(r->dirfd) != 0)
    die("syncfs");
  close(r->dirfd);
  return (double)r->files / secs;
}

/* Removes the runs' folders. */
static void clean_runs(run *r, size_t runs) {
  for (size_t k = 0; k < runs; k++) {
    char sub[32], name[32];
    snprintf(sub, sizeof sub, "run-%03zu", k);
    int d = openat(r->topfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d < 0)
      die(sub);
    for (size_t i = 0; i < r->files; i++) {
      name_file(i, name, sizeof name);
      if (unlinkat(d, name, 0) != 0)
        die("unlink");
    }
    close(d);
    if (unlinkat(r->topfd, sub, AT_REMOVEDIR) != 0)
      die("rmdir");
  }
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  run r = {.dir = "/var/tmp/durable-mech", .files = 1024, .size = 16384,
           .group = 32, .threads = 8};
  size_t rounds = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *k = argv[i], *v = argv[i + 1];
    if (strcmp(k, "--dir") == 0)
      r.dir = v;
    else if (strcmp(k, "--files") == 0)
      r.files = strtoull(v, NULL, 10);
    else if (strcmp(k, "--size") == 0)
      r.size = strtoull(v, NULL, 10);
    else if (strcmp(k, "--group") == 0)
      r.group = strtoull(v, NULL, 10);
    else if (strcmp(k, "--threads") == 0)
      r.threads = strtoull(v, NULL, 10);
    else if (strcmp(k, "--rounds") == 0)
      rounds = strtoull(v, NULL, 10);
    else {
      fprintf(stderr,
              "usage: durable-mech [--dir D] [--files N] [--size B] [--group G]\n"
              "       [--threads T] [--rounds R]\n");
      return 2;
    }
  }
  if (r.files == 0 || r.group == 0 || r.threads == 0 || rounds == 0 || rounds > 99)
    return 2;
  mkdir(r.dir, 0777);
  if ((r.topfd = open(r.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
    die(r.dir);
  r.payload = malloc(r.size ? r.size : 1);
  r.fds = calloc(r.group, sizeof *r.fds);
  if (r.payload == NULL || r.fds == NULL)
    die("malloc");
  for (size_t i = 0; i < r.size; i++)
    r.payload[i] = (char)('a' + i % 26);
  pthread_barrier_init(&r.start, NULL, (unsigned)r.threads + 1);
  pthread_barrier_init(&r.done, NULL, (unsigned)r.threads + 1);
  pthread_t *ts = calloc(r.threads, sizeof *ts);
  worker *ws = calloc(r.threads, sizeof *ws);
  for (size_t t = 0; t < r.threads; t++) {
    ws[t] = (worker){&r, t};
    if (pthread_create(&ts[t], NULL, work, &ws[t]) != 0)
      die("pthread_create");
  }
  double rate[M_COUNT][100], cpu[M_COUNT][100];
  /* Alternated rounds: each round runs every mechanism, starting with a
   * different one, so drift on a shared machine spreads over all. */
  for (size_t k = 0; k < rounds; k++)
    for (int j = 0; j < M_COUNT; j++) {
      r.mech = (int)((k + (size_t)j) % M_COUNT);
      rate[r.mech][k] = one_run(&r, k * M_COUNT + (size_t)j, &cpu[r.mech][k]);
    }
  clean_runs(&r, rounds * M_COUNT);
  r.quit = 1;
  pthread_barrier_wait(&r.start);
  for (size_t t = 0; t < r.threads; t++)
    pthread_join(ts[t], NULL);
  for (int m = 0; m < M_COUNT; m++) {
    double sorted[100], cpus[100];
    memcpy(sorted, rate[m], rounds * sizeof *sorted);
    qsort(sorted, rounds, sizeof *sorted, cmp_double);
    memcpy(cpus, cpu[m], rounds * sizeof *cpus);
    qsort(cpus, rounds, sizeof *cpus, cmp_double);
    printf("{\"mechanism\": \"%s\", \"files\": %zu, \"size\": %zu, \"group\": %zu, "
           "\"threads\": %zu, \"rounds\": %zu, \"median_files_per_sec\": %.0f, "
           "\"min\": %.0f, \"max\": %.0f, \"median_cpu_us_per_file\": %.1f, "
           "\"cpu_min\": %.1f, \"cpu_max\": %.1f}\n",
           mech_names[m], r.files, r.size, r.group, r.threads, rounds,
           sorted[rounds / 2], sorted[0], sorted[rounds - 1], cpus[rounds / 2], cpus[0],
           cpus[rounds - 1]);
  }
  free(ts);
  free(ws);
  free(r.fds);
  free(r.payload);
  close(r.topfd);
  return 0;
}

/* lines.c: fuzzes the file actor's line splitter (actio__fio_lines) through
 * each of its paths (memchr, SSE2, AVX2 where the CPU has it) against a
 * plain splitter written here: every path must hand over the same lines in
 * the same order, in batches of the size asked, and end the same way.
 *
 * Input: five control bytes, then the file's bytes.
 *   [0] batch (0: the default)       [1] max_line (0: none; <128: that many
 *   bytes; else (b - 127) * 4 KiB)   [2] read size (0: a file, read whole;
 *   else packets of at least that many bytes, so lines cross reads)
 *   [3] the callback stops the scan at its n-th call (0: never)
 *   [4] from 247 up, the bytes are repeated 2^(b - 246) times, up to 512
 *   (lines past the 128 KiB buffer, which then grows) */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "io/file/file_io.h"

#define STOP (-EDOM) /* the callback's own stop: nothing else returns it */

typedef struct ref {
  const char *d;
  size_t len, pos;  /* the file, and where the next line starts */
  size_t nlines;    /* lines in the file */
  size_t first_long; /* the first line longer than max_line, or SIZE_MAX */
  size_t next;      /* lines handed over so far */
  size_t batch;
  unsigned calls, stop_at;
  int stopped;
} ref;

/* The line at d[pos, ...): its length as handed over, and where the next
 * one starts. raw: its length with a "\r" before the newline. */
static size_t ref_line(const ref *r, size_t pos, size_t *raw, size_t *next) {
  const char *nl = memchr(r->d + pos, '\n', r->len - pos);
  size_t end = nl ? (size_t)(nl - r->d) : r->len;
  *raw = end - pos;
  *next = nl ? end + 1 : end;
  return *raw - (nl != NULL && *raw > 0 && r->d[end - 1] == '\r');
}

static int on_lines(void *arg, const actio__line *lines, size_t n) {
  ref *r = arg;
  FUZZ_CHECK(n >= 1 && n <= r->batch, "a batch of %zu lines (batch %zu)", n, r->batch);
  for (size_t i = 0; i < n; i++) {
    FUZZ_CHECK(r->next < r->nlines, "line %zu of %zu", r->next, r->nlines);
    FUZZ_CHECK(r->next < r->first_long, "line %zu is too long, yet handed over", r->next);
    size_t raw, after, len = ref_line(r, r->pos, &raw, &after);
    FUZZ_CHECK(lines[i].len == len, "line %zu: %zu bytes, expected %zu", r->next,
               lines[i].len, len);
    FUZZ_CHECK(len == 0 || memcmp(lines[i].data, r->d + r->pos, len) == 0,
               "line %zu differs", r->next);
    r->pos = after;
    r->next++;
  }
  if (++r->calls == r->stop_at) {
    r->stopped = 1;
    return STOP;
  }
  return 0;
}

/* A descriptor whose reads bring d: a file read whole, or packets of at
 * least `chunk` bytes, each read bringing one (a packet is never cut: they
 * are far smaller than what the splitter asks for). */
static int source(const char *d, size_t len, unsigned chunk) {
  if (chunk == 0 || len > (32u << 10)) {
    int fd = memfd_create("lines", MFD_CLOEXEC);
    FUZZ_CHECK(fd >= 0, "memfd_create: %s", strerror(errno));
    for (size_t off = 0; off < len;) {
      ssize_t w = write(fd, d + off, len - off);
      FUZZ_CHECK(w > 0, "write: %s", strerror(errno));
      off += (size_t)w;
    }
    FUZZ_CHECK(lseek(fd, 0, SEEK_SET) == 0, "lseek: %s", strerror(errno));
    return fd;
  }
  int sv[2];
  FUZZ_CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0,
             "socketpair: %s", strerror(errno));
  size_t size = (len + 63) / 64; /* at most 64 packets: they fit the buffer */
  if (size < chunk)
    size = chunk;
  for (size_t off = 0; off < len; off += size) {
    size_t n = len - off < size ? len - off : size;
    FUZZ_CHECK(send(sv[1], d + off, n, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)n,
               "send: %s", strerror(errno));
  }
  close(sv[1]); /* the reader sees the end once the packets are read */
  return sv[0];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_in in = {data, size};
  size_t batch = fuzz_byte(&in);
  uint8_t m = fuzz_byte(&in);
  size_t max_line = m == 0 ? 0 : m < 128 ? m : (size_t)(m - 127) * 4096;
  unsigned chunk = fuzz_byte(&in);
  unsigned stop_at = fuzz_byte(&in);
  uint8_t rep = fuzz_byte(&in);
  size_t times = rep < 247 ? 1 : (size_t)1 << (rep - 246);

  size_t len = in.n * times;
  char *d = malloc(len ? len : 1);
  FUZZ_CHECK(d != NULL, "out of memory");
  for (size_t k = 0; k < times; k++)
    memcpy(d + k * in.n, in.p, in.n);

  ref base = {.d = d, .len = len, .first_long = SIZE_MAX,
              .batch = batch ? batch : 1024, .stop_at = stop_at};
  for (size_t pos = 0; pos < len; base.nlines++) {
    size_t raw, next;
    ref_line(&base, pos, &raw, &next);
    if (max_line != 0 && raw > max_line && base.first_long == SIZE_MAX)
      base.first_long = base.nlines;
    pos = next;
  }

  static const int paths[] = {ACTIO__SPLIT_MEMCHR, ACTIO__SPLIT_SSE2, ACTIO__SPLIT_AVX2};
  for (size_t p = 0; p < sizeof paths / sizeof *paths; p++) {
    int rc = actio__fio_lines_split(paths[p]);
    if (rc == -ENOTSUP)
      continue; /* not on this CPU */
    FUZZ_CHECK(rc == 0, "actio__fio_lines_split: %d", rc);
    ref r = base;
    int fd = source(d, len, chunk);
    int64_t n = actio__fio_lines(fd, batch, max_line, on_lines, &r);
    close(fd);
    if (r.stopped)
      FUZZ_CHECK(n == STOP, "path %d: %lld after the callback stopped", paths[p], (long long)n);
    else if (base.first_long != SIZE_MAX)
      FUZZ_CHECK(n == -E2BIG, "path %d: %lld, expected -E2BIG for line %zu",
                 paths[p], (long long)n, base.first_long);
    else
      FUZZ_CHECK(n == (int64_t)base.nlines && r.next == base.nlines,
                 "path %d: %lld lines (%zu handed over), expected %zu", paths[p],
                 (long long)n, r.next, base.nlines);
  }
  free(d);
  return 0;
}

/* fuzz.h: what the libFuzzer targets share: a check that stops the run with
 * its reason, and a reader of the control bytes in front of an input. */
#ifndef ACTIO_TESTS_FUZZ_H
#define ACTIO_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A wrong outcome: libFuzzer saves the input as a crash-* file. */
#define FUZZ_CHECK(cond, ...)                                                \
  do {                                                                       \
    if (!(cond)) {                                                           \
      fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                          \
      fputc('\n', stderr);                                                   \
      abort();                                                               \
    }                                                                        \
  } while (0)

/* The input, read from the front. */
typedef struct fuzz_in {
  const uint8_t *p;
  size_t n;
} fuzz_in;

/* The next byte, or 0 when the input is used up. */
static inline uint8_t fuzz_byte(fuzz_in *in) {
  if (in->n == 0)
    return 0;
  in->n--;
  return *in->p++;
}

/* The bytes up to the next `sep` (not included; it is skipped), or all that
 * is left. */
static inline fuzz_in fuzz_until(fuzz_in *in, uint8_t sep) {
  fuzz_in part = {in->p, 0};
  while (part.n < in->n && in->p[part.n] != sep)
    part.n++;
  size_t used = part.n < in->n ? part.n + 1 : part.n;
  in->p += used;
  in->n -= used;
  return part;
}

/* A NUL-terminated copy of part (malloc'd; aborts when out of memory). */
static inline char *fuzz_str(fuzz_in part) {
  char *s = malloc(part.n + 1);
  FUZZ_CHECK(s != NULL, "out of memory");
  for (size_t i = 0; i < part.n; i++)
    s[i] = (char)part.p[i];
  s[part.n] = '\0';
  return s;
}

/* FNV-1a over the input: a secret made from it cannot be written into the
 * input that makes it, so no fixed text, and nothing the fuzzer learns,
 * holds one by chance. */
static inline uint64_t fuzz_hash(const uint8_t *p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

/* A NUL-terminated copy of part (malloc'd) with the k-th `marker` replaced
 * by secrets[k] (the last one once they run out); *len gets its length,
 * *used the number of markers. */
static inline char *fuzz_fill(fuzz_in part, const char *marker, char (*secrets)[24],
                              int nsecrets, size_t *len, int *used) {
  size_t m = strlen(marker), n = 0;
  char *s = malloc(part.n * 24 + 1); /* a marker is at least one byte */
  FUZZ_CHECK(s != NULL, "out of memory");
  *used = 0;
  for (size_t i = 0; i < part.n;) {
    if (part.n - i >= m && memcmp(part.p + i, marker, m) == 0) {
      const char *secret = secrets[*used < nsecrets ? *used : nsecrets - 1];
      memcpy(s + n, secret, strlen(secret));
      n += strlen(secret);
      i += m;
      ++*used;
    } else {
      s[n++] = (char)part.p[i++];
    }
  }
  s[n] = '\0';
  *len = n;
  return s;
}

#endif

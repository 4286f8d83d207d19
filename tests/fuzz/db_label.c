/* db_label.c: fuzzes the label a failed or timed-out query's message starts
 * with (actio__db_req_label): the statement with its string literals
 * masked. The input is a program that writes a statement out of tokens
 * whose kind PostgreSQL's lexer cannot mistake (words, parameters, quoted
 * identifiers and comments holding quotes of every kind, and literals in
 * each of its forms: '...' with its prefixes, E'...' with backslash
 * escapes, $$...$$ and $tag$...$tag$), each literal holding a secret of its
 * own made from a hash of the input. No secret may be in the label, which
 * must be one line within its buffer.
 *
 * Input: a byte for the buffer's size, then tokens: a kind byte, a length
 * byte, and that many bytes of content (filtered for the kind). */
#include <string.h>

#include "actors/db/db_internal.h"
#include "fuzz.h"

#define MAX_SECRETS 8

typedef struct sql {
  char *s;
  size_t n, cap;
} sql;

static void add(sql *q, const char *p, size_t n) {
  if (q->n + n + 1 > q->cap) {
    q->cap = (q->n + n + 1) * 2;
    q->s = realloc(q->s, q->cap);
    FUZZ_CHECK(q->s != NULL, "out of memory");
  }
  memcpy(q->s + q->n, p, n);
  q->n += n;
  q->s[q->n] = '\0';
}

static void adds(sql *q, const char *s) { add(q, s, strlen(s)); }

/* The content's bytes but those in `drop` (and NUL). */
static void add_filtered(sql *q, fuzz_in part, const char *drop) {
  for (size_t i = 0; i < part.n; i++)
    if (part.p[i] != 0 && strchr(drop, part.p[i]) == NULL)
      add(q, (const char *)part.p + i, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint64_t h = fuzz_hash(data, size);
  char secrets[MAX_SECRETS][24];
  for (int k = 0; k < MAX_SECRETS; k++)
    snprintf(secrets[k], sizeof secrets[k], "k%015llx%x", (unsigned long long)(h >> 4), k);

  fuzz_in in = {data, size};
  size_t cap = fuzz_byte(&in);
  sql q = {0};
  adds(&q, "");
  int nsecrets = 0;
  static const char *const prefixes[] = {"", "N", "X", "B", "U&", "n", "x", "b", "u&"};
  while (in.n > 0) {
    uint8_t kind = fuzz_byte(&in);
    size_t len = fuzz_byte(&in);
    fuzz_in part = {in.p, len < in.n ? len : in.n};
    in.p += part.n;
    in.n -= part.n;
    const char *secret = secrets[nsecrets < MAX_SECRETS ? nsecrets : MAX_SECRETS - 1];
    adds(&q, " ");
    switch (kind % 9) {
    case 0: /* words and punctuation: nothing that starts a literal or a comment */
      add_filtered(&q, part, "'\"$\\-/");
      break;
    case 1: /* a parameter */
      adds(&q, "$");
      add(&q, "123456789", 1 + len % 9);
      break;
    case 2: /* '...', its quotes doubled, after a prefix */
      adds(&q, prefixes[kind / 9 % 9]);
      adds(&q, "'");
      add_filtered(&q, part, "'\\");
      adds(&q, kind & 0x80 ? "''" : "");
      adds(&q, secret);
      adds(&q, "'");
      nsecrets++;
      break;
    case 3: /* E'...' with its escapes */
      adds(&q, kind & 0x80 ? "E'\\'" : "e'\\\\");
      add_filtered(&q, part, "'\\");
      adds(&q, secret);
      adds(&q, "\\''");
      nsecrets++;
      break;
    case 4: /* $$...$$ */
      adds(&q, "$$");
      add_filtered(&q, part, "$");
      adds(&q, secret);
      adds(&q, "$$");
      nsecrets++;
      break;
    case 5: /* $tag$...$tag$ */
      adds(&q, kind & 0x80 ? "$pw$" : "$_t9$");
      add_filtered(&q, part, "$");
      adds(&q, secret);
      adds(&q, kind & 0x80 ? "$pw$" : "$_t9$");
      nsecrets++;
      break;
    case 6: /* a quoted identifier: quotes of the other kinds inside */
      adds(&q, "\"");
      add_filtered(&q, part, "\"");
      adds(&q, "\"");
      break;
    case 7: /* a line comment */
      adds(&q, "--");
      add_filtered(&q, part, "\n");
      adds(&q, "\n");
      break;
    case 8: /* a block comment, one nested in it */
      adds(&q, "/* ");
      add_filtered(&q, part, "*/");
      adds(&q, kind & 0x80 ? " /* ' */ */" : " */");
      break;
    }
  }

  actio_db_request req = {.sql = q.s};
  db_req *r = actio__db_req_new(K_QUERY, &req, NULL, 0);
  FUZZ_CHECK(r != NULL, "out of memory");
  char out[260];
  memset(out, 'x', sizeof out);
  actio__db_req_label(r, out, cap);
  if (cap == 0) {
    FUZZ_CHECK(out[0] == 'x', "wrote into an empty buffer");
  } else {
    size_t n = strnlen(out, cap);
    FUZZ_CHECK(n < cap, "not NUL-terminated within %zu bytes", cap);
    FUZZ_CHECK(n <= 80 + 8, "%zu bytes: longer than a label", n);
    for (size_t i = 0; i < n; i++)
      FUZZ_CHECK((unsigned char)out[i] >= 0x20 && out[i] != 0x7f, "a control byte at %zu", i);
    for (int k = 0; k < nsecrets && k < MAX_SECRETS; k++)
      FUZZ_CHECK(strstr(out, secrets[k]) == NULL, "secret %d shown: \"%s\" for \"%s\"", k,
                 out, q.s);
  }
  actio__db_req_free(r);
  free(q.s);
  return 0;
}

/* http_redact.c: fuzzes the masking of URLs for messages and logs
 * (actio__http_redact, behind actio_http_redact_url and every HTTP error
 * text) with libcurl's own URL parser as the judge: whatever libcurl would
 * send as the password, and the value of a query parameter whose name is a
 * secret's, must not be in the text. The text must also be one line, end
 * within its buffer, and report its whole length.
 *
 * Input: a flags byte (the output buffer's size, and whether the session
 * adds the name "custom"), then the URL, in which each "$S" is replaced by
 * a secret of its own made from a hash of the input, so that no fixed text
 * (the names the fuzzer learns, the masks) can contain one by chance. A
 * secret is judged only where libcurl finds it in masked places alone. */
#include <curl/curl.h>
#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "io/http/http_redact.h"

/* The names masked whatever surrounds them (http_redact.h); the judge
 * knows only these, compared whole. */
static const char *const secret_names[] = {
    "token", "key", "apikey", "password", "passwd", "pwd", "passphrase", "secret",
    "signature", "sig", "credential", "credentials", "auth", "authorization",
    "session", "sessionid", "jwt", NULL};

#define MAX_SECRETS 16

static int secret_name(const char *name, int custom) {
  for (const char *const *n = secret_names; *n != NULL; n++)
    if (strcasecmp(name, *n) == 0)
      return 1;
  return custom && strcasecmp(name, "custom") == 0;
}

/* As libcurl reads the URL: 1 when `secret` is in its password or in the
 * value of a query parameter named as a secret's, and nowhere else (not in
 * the host, the path, another parameter, ...); else 0. */
static int only_where_masked(const char *url, const char *secret, int custom) {
  CURLU *u = curl_url();
  FUZZ_CHECK(u != NULL, "out of memory");
  int masked = 0, elsewhere = 0;
  if (curl_url_set(u, CURLUPART_URL, url, CURLU_GUESS_SCHEME | CURLU_NON_SUPPORT_SCHEME) ==
      CURLUE_OK) {
    static const CURLUPart others[] = {CURLUPART_SCHEME, CURLUPART_USER, CURLUPART_OPTIONS,
                                       CURLUPART_HOST, CURLUPART_ZONEID, CURLUPART_PORT,
                                       CURLUPART_PATH, CURLUPART_FRAGMENT};
    char *part = NULL;
    for (size_t i = 0; i < sizeof others / sizeof *others; i++, part = NULL) {
      if (curl_url_get(u, others[i], &part, 0) == CURLUE_OK && strstr(part, secret))
        elsewhere = 1;
      curl_free(part);
    }
    if (curl_url_get(u, CURLUPART_PASSWORD, &part, 0) == CURLUE_OK && strstr(part, secret))
      masked = 1;
    curl_free(part);
    part = NULL;
    if (curl_url_get(u, CURLUPART_QUERY, &part, 0) == CURLUE_OK) {
      for (char *save = NULL, *p = strtok_r(part, "&", &save); p != NULL;
           p = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(p, '=');
        if (eq != NULL)
          *eq = '\0';
        int in_value = eq != NULL && strstr(eq + 1, secret) != NULL;
        if (strstr(p, secret) != NULL || (in_value && !secret_name(p, custom)))
          elsewhere = 1;
        else if (in_value)
          masked = 1;
      }
    }
    curl_free(part);
  }
  curl_url_cleanup(u);
  return masked && !elsewhere;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_in in = {data, size};
  uint8_t flags = fuzz_byte(&in);
  char secrets[MAX_SECRETS][24];
  uint64_t h = fuzz_hash(data, size);
  for (int k = 0; k < MAX_SECRETS; k++) /* 17 bytes each: none starts another */
    snprintf(secrets[k], sizeof secrets[k], "s%015llx%x", (unsigned long long)(h >> 4), k);
  int nsecrets;
  size_t len;
  char *url = fuzz_fill(in, "$S", secrets, MAX_SECRETS, &len, &nsecrets);
  if (nsecrets > MAX_SECRETS)
    nsecrets = MAX_SECRETS;
  static const char *const extra[] = {"custom", NULL};
  int custom = flags & 1;
  size_t cap = (flags >> 1) == 127 ? 0 : (size_t)(flags >> 1) * 8 + 1; /* 0, 1 .. 1009 */

  char out[1024];
  memset(out, 'x', sizeof out);
  size_t whole = actio__http_redact(url, len, custom ? extra : NULL, out, cap);
  if (cap == 0) {
    FUZZ_CHECK(out[0] == 'x', "wrote into an empty buffer");
  } else {
    size_t n = strnlen(out, cap);
    FUZZ_CHECK(n < cap, "not NUL-terminated within %zu bytes", cap);
    FUZZ_CHECK(n == (whole < cap ? whole : cap - 1), "%zu bytes written of %zu (cap %zu)",
               n, whole, cap);
    for (size_t i = 0; i < n; i++)
      FUZZ_CHECK((unsigned char)out[i] >= 0x20 && out[i] != 0x7f, "a control byte at %zu", i);
    if (whole >= cap && cap > 3)
      FUZZ_CHECK(memcmp(out + cap - 4, "...", 3) == 0, "a cut text without \"...\"");
    /* The whole text, and with enough room, the judge's verdict. */
    size_t fcap = len * 6 + 64; /* a byte is at most "%XX", a mask "***" */
    char *full = malloc(fcap);
    FUZZ_CHECK(full != NULL, "out of memory");
    size_t all = actio__http_redact(url, len, custom ? extra : NULL, full, fcap);
    FUZZ_CHECK(all == whole && all < fcap, "lengths %zu and %zu (room %zu)", all, whole, fcap);
    /* libcurl reads a C string: the judge passes over URLs holding a NUL. */
    for (int k = 0; k < nsecrets && memchr(url, '\0', len) == NULL; k++)
      if (strstr(full, secrets[k]) != NULL && only_where_masked(url, secrets[k], custom))
        FUZZ_CHECK(0, "secret %d is in \"%s\"", k, full);
    free(full);
  }
  free(url);
  return 0;
}

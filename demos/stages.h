/* stages.h: what the pipeline demos' stages share (demos/pipeline.c in one
 * process, demos/cluster.c across several): a failure that flows on to the
 * next stage as a plain value, and a body's SHA-256 in hex. */
#ifndef ACTIO_DEMO_STAGES_H
#define ACTIO_DEMO_STAGES_H

#include <pthread.h>

#include <actio.h>

#include <openssl/evp.h>

/* The stages look at their own future for the outcome, so a failure flows
 * on to the record stage instead of ending the chain: a catch whose
 * handler turns it into a plain NULL value (Python's `except Exception`).
 * A value passes the catch unchanged. */
static int go_on(actio_future *failed, void *arg, actio_future **next) {
  (void)failed;
  (void)arg;
  return actio_future_resolved(next, NULL, NULL);
}

static int settled(actio_future *f, actio_future **out) {
  return actio_future_catch(f, go_on, NULL, out);
}

/* OpenSSL 3 looks EVP_sha256() up in its provider store at every digest
 * (a lock, a search: 0.5 to 0.8 us a call on the machine of the pipeline's
 * benchmarks): fetched once here instead, and kept to the end. */
static EVP_MD *sha256_md;
static void sha256_fetch(void) { sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL); }

/* The SHA-256 of len bytes at data, as 64 hex digits and a NUL, into hex.
 * OpenSSL's libcrypto (already there, under libcurl's TLS) does it, with
 * SHA-NI where the CPU has it. 0, or -1 when libcrypto fails. Any thread. */
static int sha256_hex(const void *data, size_t len, char hex[65]) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  static const char digits[] = "0123456789abcdef";
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  pthread_once(&once, sha256_fetch);
  if (sha256_md == NULL || EVP_Digest(data, len, md, &mdlen, sha256_md, NULL) != 1 ||
      mdlen != 32)
    return -1;
  /* By hand: 32 snprintf "%02x" took 3.5 to 4 us, a third of a page's hash. */
  for (unsigned int i = 0; i < 32; i++) {
    hex[2 * i] = digits[md[i] >> 4];
    hex[2 * i + 1] = digits[md[i] & 15];
  }
  hex[64] = '\0';
  return 0;
}

#endif

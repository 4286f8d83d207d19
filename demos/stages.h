/* stages.h: what the pipeline demos' stages share (demos/pipeline.c in one
 * process, demos/cluster.c across several): a failure that flows on to the
 * next stage as a plain value, and a body's SHA-256 in hex. */
#ifndef ACTIO_DEMO_STAGES_H
#define ACTIO_DEMO_STAGES_H

#include <stdio.h>

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

/* The SHA-256 of len bytes at data, as 64 hex digits and a NUL, into hex.
 * OpenSSL's libcrypto (already there, under libcurl's TLS) does it, with
 * SHA-NI where the CPU has it. 0, or -1 when libcrypto fails. */
static int sha256_hex(const void *data, size_t len, char hex[65]) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1)
    return -1;
  for (unsigned int i = 0; i < mdlen && i < 32; i++)
    snprintf(hex + 2 * i, 3, "%02x", md[i]);
  return 0;
}

#endif

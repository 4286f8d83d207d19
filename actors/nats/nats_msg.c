/* nats_msg.c: messages as the public API shows them: received ones (a view
 * of io's message) and replies built by a served actor. */
#include <stdlib.h>
#include <string.h>

#include "actio.h"
#include "actors/nats/nats_internal.h"

void actio__nats_msg_view(actio_nats_msg *m, actio__nats_msg *rx) {
  *m = (actio_nats_msg){
      .rx = rx,
      .data = actio__nats_msg_data(rx),
      .len = actio__nats_msg_len(rx),
  };
}

actio_nats_msg *actio__nats_msg_wrap(actio__nats_msg *rx) {
  actio_nats_msg *m = malloc(sizeof *m);
  if (m != NULL)
    actio__nats_msg_view(m, rx);
  return m;
}

const void *actio_nats_msg_data(const actio_nats_msg *m, size_t *len) {
  if (len != NULL)
    *len = m != NULL ? m->len : 0;
  return m != NULL ? m->data : NULL;
}

const char *actio_nats_msg_header(const actio_nats_msg *m, const char *key) {
  if (m == NULL || key == NULL)
    return NULL;
  if (m->rx != NULL)
    return actio__nats_msg_header(m->rx, key);
  for (size_t i = 0; i + 1 < m->nh; i += 2)
    if (strcasecmp(m->headers[i], key) == 0)
      return m->headers[i + 1];
  return NULL;
}

const char *actio_nats_msg_subject(const actio_nats_msg *m) {
  return m != NULL && m->rx != NULL ? actio__nats_msg_subject(m->rx) : NULL;
}

int actio_nats_msg_create(actio_nats_msg **out, const void *data, size_t len) {
  if (out == NULL || (data == NULL && len > 0))
    return ACTIO_EINVAL;
  actio_nats_msg *m = calloc(1, sizeof *m + len);
  if (m == NULL)
    return ACTIO_ENOMEM;
  if (len > 0)
    m->data = memcpy(m + 1, data, len);
  m->len = len;
  *out = m;
  return 0;
}

/* 1 when s is fit for a header line (a key: no ':' nor space either). */
static int printable(const char *s, int key) {
  if (key && *s == '\0')
    return 0;
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || *s == 0x7f || (key && (*s == ':' || *s == ' ')))
      return 0;
  return 1;
}

int actio_nats_msg_add_header(actio_nats_msg *m, const char *key, const char *value) {
  if (m == NULL || m->rx != NULL || key == NULL || value == NULL ||
      !printable(key, 1) || !printable(value, 0))
    return ACTIO_EINVAL;
  char **h = realloc(m->headers, (m->nh + 3) * sizeof *h);
  if (h == NULL)
    return ACTIO_ENOMEM;
  m->headers = h;
  h[m->nh] = strdup(key);
  h[m->nh + 1] = strdup(value);
  if (h[m->nh] == NULL || h[m->nh + 1] == NULL) {
    free(h[m->nh]);
    free(h[m->nh + 1]);
    h[m->nh] = NULL;
    return ACTIO_ENOMEM;
  }
  m->nh += 2;
  h[m->nh] = NULL;
  return 0;
}

void actio_nats_msg_free(actio_nats_msg *m) {
  if (m == NULL)
    return;
  if (m->rx != NULL)
    actio__nats_msg_free(m->rx);
  for (size_t i = 0; i < m->nh; i++)
    free(m->headers[i]);
  free(m->headers);
  free(m);
}

void actio_nats_msg_free_fn(void *m) { actio_nats_msg_free(m); }

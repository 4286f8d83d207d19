/* http_cookie.c: an HTTP actor's cookie jar, read and changed through the
 * API: cookies as structs here, as lines of libcurl's jar in io/http. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actio.h"
#include "actors/core/actor_internal.h"
#include "actors/http/http_internal.h"

/* The jar of `http`, pinned (unpin with jar_done), or NULL when http is
 * no HTTP actor with cookies. */
static actio__http_share *jar_of(actio_actor *http) {
  if (http == NULL || actio_actor_behavior(http) != &actio__http_behavior)
    return NULL;
  actio__actor_pin(http); /* its state stays while the call uses it */
  actio__http_state *st = actio_actor_state(http);
  if (!st->conf.cookies) {
    actio__actor_unpin(http);
    return NULL;
  }
  return st->share;
}

static void jar_done(actio_actor *http) { actio__actor_unpin(http); }

typedef struct cookies {
  actio_http_cookie *c;
  size_t n, cap;
} cookies;

/* Takes one of libcurl's lines apart (see actio__http_cookie_add); the
 * cookie's strings live in one copy of it, which its domain starts. */
static int take_line(void *arg, const char *line) {
  cookies *all = arg;
  if (all->n == all->cap) {
    size_t cap = all->cap ? all->cap * 2 : 16;
    actio_http_cookie *c = realloc(all->c, cap * sizeof *c);
    if (c == NULL)
      return ACTIO_ENOMEM;
    all->c = c;
    all->cap = cap;
  }
  actio_http_cookie k = {0};
  if (strncmp(line, "#HttpOnly_", 10) == 0) {
    k.http_only = 1;
    line += 10;
  }
  if (*line == '.')
    line++; /* a domain's subdomains: the flag says so too */
  char *copy = strdup(line), *f[7];
  if (copy == NULL)
    return ACTIO_ENOMEM;
  char *p = copy;
  for (int i = 0; i < 7; i++) {
    f[i] = p;
    p = i < 6 ? strchr(p, '\t') : NULL;
    if (i < 6 && p == NULL) { /* not a line curl writes: left out */
      free(copy);
      return 0;
    }
    if (p != NULL)
      *p++ = '\0';
  }
  k.domain = f[0];
  k.subdomains = strcmp(f[1], "TRUE") == 0;
  k.path = f[2];
  k.secure = strcmp(f[3], "TRUE") == 0;
  k.expires = strtoll(f[4], NULL, 10);
  k.name = f[5];
  k.value = f[6];
  all->c[all->n++] = k;
  return 0;
}

int actio_http_cookies_get(actio_actor *http, actio_http_cookie **out, size_t *n) {
  if (out == NULL || n == NULL)
    return ACTIO_EINVAL;
  actio__http_share *jar = jar_of(http);
  if (jar == NULL)
    return ACTIO_EINVAL;
  cookies all = {0};
  int rc = actio__http_cookie_each(jar, take_line, &all);
  jar_done(http);
  if (rc != 0) {
    actio_http_cookies_free(all.c, all.n);
    return rc;
  }
  *out = all.c;
  *n = all.n;
  return 0;
}

void actio_http_cookies_free(actio_http_cookie *c, size_t n) {
  for (size_t i = 0; c != NULL && i < n; i++)
    free((char *)c[i].domain); /* the block of its strings */
  free(c);
}

/* 1 when s (NULL is fine) would break a line of the jar. */
static int breaks_line(const char *s) { return s != NULL && strpbrk(s, "\t\r\n") != NULL; }

int actio_http_cookie_set(actio_actor *http, const actio_http_cookie *c) {
  if (c == NULL || c->domain == NULL || *c->domain == '\0' || c->name == NULL ||
      *c->name == '\0' || strpbrk(c->name, ";=") != NULL || breaks_line(c->domain) ||
      breaks_line(c->path) || breaks_line(c->name) || breaks_line(c->value) ||
      c->domain[0] == '.' || c->expires < 0)
    return ACTIO_EINVAL;
  char *line = NULL;
  if (asprintf(&line, "%s%s%s\t%s\t%s\t%s\t%" PRId64 "\t%s\t%s",
               c->http_only ? "#HttpOnly_" : "", c->subdomains ? "." : "", c->domain,
               c->subdomains ? "TRUE" : "FALSE", c->path ? c->path : "/",
               c->secure ? "TRUE" : "FALSE", c->expires, c->name,
               c->value ? c->value : "") < 0)
    return ACTIO_ENOMEM;
  actio__http_share *jar = jar_of(http);
  int rc = jar ? actio__http_cookie_add(jar, line) : ACTIO_EINVAL;
  if (jar != NULL)
    jar_done(http);
  free(line);
  return rc;
}

int actio_http_cookies_clear(actio_actor *http) {
  actio__http_share *jar = jar_of(http);
  if (jar == NULL)
    return ACTIO_EINVAL;
  actio__http_cookie_clear(jar);
  jar_done(http);
  return 0;
}

/* Loads or saves the jar of http at path. */
static int with_file(actio_actor *http, const char *path,
                     int (*fn)(actio__http_share *, const char *)) {
  actio__http_share *jar = path ? jar_of(http) : NULL;
  if (jar == NULL)
    return ACTIO_EINVAL;
  int rc = fn(jar, path);
  jar_done(http);
  return rc;
}

int actio_http_cookies_load(actio_actor *http, const char *path) {
  return with_file(http, path, actio__http_cookie_load);
}

int actio_http_cookies_save(actio_actor *http, const char *path) {
  return with_file(http, path, actio__http_cookie_save);
}

/* pg_server.h: a suite's own PostgreSQL, through tests/pg_server.sh, and
 * the values of the env file it writes. */
#ifndef ACTIO_TEST_PG_SERVER_H
#define ACTIO_TEST_PG_SERVER_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Runs `bash script verb dir` (pg_server.sh start, restart or stop);
 * returns its exit status. */
static inline int pg_server(const char *script, const char *verb, const char *dir) {
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "bash '%s' %s '%s' > /dev/null", script, verb, dir);
  return system(cmd);
}

/* The value of KEY=value or KEY='value' in an env file (pg_server.sh's)
 * into out. Returns 0, or -1 if absent. */
static inline int env_get(const char *path, const char *key, char *out, size_t len) {
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return -1;
  char line[1024];
  int found = -1;
  while (found != 0 && fgets(line, sizeof line, f) != NULL) {
    line[strcspn(line, "\n")] = '\0';
    char *v = strchr(line, '=');
    if (v == NULL)
      continue;
    *v++ = '\0';
    if (*v == '\'') {
      v++;
      v[strcspn(v, "'")] = '\0';
    }
    if (strcmp(line, key) == 0) {
      snprintf(out, len, "%s", v);
      found = 0;
    }
  }
  fclose(f);
  return found;
}

#endif

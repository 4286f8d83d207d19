/* nats_server.h: what the NATS suites share: waiting for a state, and
 * driving tests/nats_server.sh (NATS_SERVER_SH) on their servers' folder. */
#ifndef ACTIO_TESTS_NATS_SERVER_H
#define ACTIO_TESTS_NATS_SERVER_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* Polls cond until it holds: waits for a state, and fails the test only
 * when it never comes (two minutes, for the slowest sanitizer run). */
#define WAIT_FOR(cond)                                                        \
  do {                                                                        \
    int64_t waited_ = 0;                                                      \
    while (!(cond)) {                                                         \
      ck_assert_msg(waited_ < 120000, "never: %s", #cond);                    \
      nanosleep(&(struct timespec){0, 1000000}, NULL);                        \
      waited_++;                                                              \
    }                                                                         \
  } while (0)

/* Runs `nats_server.sh verb dir [arg]` quietly; its exit status. */
static inline int nats_server_sh(const char *verb, const char *dir, const char *arg) {
  char cmd[1400];
  snprintf(cmd, sizeof cmd, "bash '%s' %s '%s' %s > /dev/null", NATS_SERVER_SH, verb, dir,
           arg != NULL ? arg : "");
  return system(cmd);
}

/* Stops every server of dir, then removes it; `who` names the suite. */
static inline void nats_servers_stop(const char *dir, const char *who) {
  char cmd[1400];
  snprintf(cmd, sizeof cmd, "bash '%s' stop '%s' >/dev/null 2>&1; rm -rf '%s'", NATS_SERVER_SH,
           dir, dir);
  if (system(cmd) != 0)
    fprintf(stderr, "%s: stopping the servers failed\n", who);
}

#endif

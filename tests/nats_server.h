/* nats_server.h: what the NATS suites share: waiting for a state, a
 * supervised connection, and driving tests/nats_server.sh
 * (NATS_SERVER_SH) on their servers' folder. */
#ifndef ACTIO_TESTS_NATS_SERVER_H
#define ACTIO_TESTS_NATS_SERVER_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "actio.h"

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
/* A connection made with o (borrowed for the supervisor's life) as child
 * "nats" of a supervisor spawned in rt, restarted without a pause: its
 * address; *sup the supervisor. */
static inline actio_actor *supervised_nats(actio_runtime *rt, const actio_nats_opts *o,
                                           unsigned max_restarts, actio_actor **sup) {
  actio_child_spec spec = {.name = "nats", .start = actio_nats_child, .arg = (void *)o};
  actio_sup_opts so = {.backoff_ms = -1, .max_restarts = max_restarts};
  ck_assert_int_eq(actio_sup_spawn(rt, &so, &spec, 1, sup), 0);
  return actio_sup_lookup(*sup, "nats");
}

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

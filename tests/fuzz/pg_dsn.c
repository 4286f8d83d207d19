/* pg_dsn.c: fuzzes what the database actor does with a DSN before any
 * server answers: the check actio_db_spawn makes (actio__pg_dsn_check),
 * then the start of a connection (actio__pg_conn_start) and the message it
 * gives when that fails. The password must never be in that message.
 *
 * Input: the DSN (key=value or URI), in which every "$PW" is replaced by a
 * secret made from a hash of the input, so that no fixed text (libpq's
 * messages, the names the fuzzer learns) can contain it by chance. Where the
 * password holds the secret and no other parameter does, the message must
 * not. Connections start only when no byte would leave the machine: every
 * host a Unix socket folder (which holds no PostgreSQL socket here) and no
 * hostaddr; for other DSNs only the check runs. */
#include <string.h>

#include "actio/error.h"
#include "fuzz.h"
#include "io/pg/pg_conn.h"
#include "io/pg/pg_private.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  /* Only the DSN speaks: no defaults from the environment, and service and
   * password files that do not exist. */
  static const char *const vars[] = {"PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE",
                                     "PGUSER", "PGPASSWORD", "PGOPTIONS", "PGSSLMODE",
                                     "PGREQUIRESSL", "PGGSSENCMODE", "PGSERVICE",
                                     "PGTARGETSESSIONATTRS", "PGCONNECT_TIMEOUT"};
  for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
    unsetenv(vars[i]);
  setenv("PGSERVICEFILE", "/nonexistent/actio-fuzz/pg_service.conf", 1);
  setenv("PGSYSCONFDIR", "/nonexistent/actio-fuzz", 1);
  setenv("PGPASSFILE", "/nonexistent/actio-fuzz/pgpass", 1);
  return 0;
}

/* 1 when every host is a Unix socket folder ("" is the default one) and no
 * hostaddr is given: starting a connection then stays on this machine. */
static int stays_here(const PQconninfoOption *o) {
  for (; o->keyword != NULL; o++) {
    if (o->val == NULL || *o->val == '\0')
      continue;
    if (strcmp(o->keyword, "hostaddr") == 0)
      return 0;
    if (strcmp(o->keyword, "host") == 0)
      for (const char *h = o->val; h != NULL; h = strchr(h, ',') ? strchr(h, ',') + 1 : NULL)
        if (*h != ',' && *h != '\0' && *h != '/' && *h != '@')
          return 0;
  }
  return 1;
}

/* 1 when the password holds the secret and no other parameter does. */
static int secret_is_password(const PQconninfoOption *o, const char *secret) {
  int in_password = 0;
  for (; o->keyword != NULL; o++) {
    if (o->val == NULL || strstr(o->val, secret) == NULL)
      continue;
    if (strcmp(o->keyword, "password") != 0)
      return 0;
    in_password = 1;
  }
  return in_password;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char secret[1][24];
  snprintf(secret[0], sizeof secret[0], "pw%016llx", (unsigned long long)fuzz_hash(data, size));
  size_t len;
  int used;
  char *dsn = fuzz_fill((fuzz_in){data, size}, "$PW", secret, 1, &len, &used);
  char *perr = NULL;
  PQconninfoOption *opts = PQconninfoParse(dsn, &perr);
  PQfreemem(perr);
  int rc = actio__pg_dsn_check(dsn);
  FUZZ_CHECK(rc == (opts != NULL ? 0 : ACTIO_EDSN), "check: %s, libpq %s", actio_err_name(rc),
             opts != NULL ? "parses it" : "does not");
  if (opts != NULL && stays_here(opts)) {
    char err[256];
    memset(err, 'x', sizeof err);
    actio__pg_conn *c = NULL;
    rc = actio__pg_conn_start(&c, dsn, size % 4, err, sizeof err);
    if (rc == 0) {
      actio__pg_conn_destroy(c, NULL, NULL, "fuzz");
    } else {
      FUZZ_CHECK(rc == ACTIO_ECONN, "start: %s", actio_err_name(rc));
      size_t n = strnlen(err, sizeof err);
      FUZZ_CHECK(n > 0 && n < sizeof err, "start: no message, or not ended");
      FUZZ_CHECK(strpbrk(err, "\n\r\t") == NULL, "start: \"%s\" is not one line", err);
      if (secret_is_password(opts, secret[0]))
        FUZZ_CHECK(strstr(err, secret[0]) == NULL, "start: \"%s\" shows the password", err);
    }
  }
  PQconninfoFree(opts);
  free(dsn);
  return 0;
}

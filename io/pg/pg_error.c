/* pg_error.c: the server's error fields, read once per failed result, and
 * the one-line texts io/pg makes of them and of libpq's own messages. */
#include "io/pg/pg_error.h"

#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>

#include "actio/error.h"
#include "io/pg/pg_private.h"

void actio__pg_one_line(const char *in, char *buf, size_t len) {
  if (len == 0)
    return;
  snprintf(buf, len, "%s", in != NULL && *in ? in : "unknown error");
  for (char *p = buf; *p; p++)
    if (*p == '\n' || *p == '\r' || *p == '\t')
      *p = ' ';
  size_t n = strlen(buf);
  while (n > 0 && buf[n - 1] == ' ')
    buf[--n] = '\0';
}

void actio__pg_error_read(const actio__pg_result *res, actio__pg_error *out) {
  const PGresult *r = actio__pg_res(res);
  out->sqlstate = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  out->severity = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
  out->message = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
  out->detail = PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL);
  out->hint = PQresultErrorField(r, PG_DIAG_MESSAGE_HINT);
  out->full = PQresultErrorMessage(r);
}

void actio__pg_error_format(const actio__pg_error *e, char *buf, size_t len) {
  if (e->message == NULL) {
    actio__pg_one_line(e->full, buf, len);
    return;
  }
  char tmp[1024];
  int n = snprintf(tmp, sizeof tmp, "%s: %s", e->sqlstate ? e->sqlstate : "?????",
                   e->message);
  if (e->detail && n >= 0 && (size_t)n < sizeof tmp)
    n += snprintf(tmp + n, sizeof tmp - (size_t)n, " (detail: %s)", e->detail);
  if (e->hint && n >= 0 && (size_t)n < sizeof tmp)
    snprintf(tmp + n, sizeof tmp - (size_t)n, " (hint: %s)", e->hint);
  actio__pg_one_line(tmp, buf, len);
}

int actio__pg_error_is(const actio__pg_error *e, const char *state) {
  return e->sqlstate != NULL && strcmp(e->sqlstate, state) == 0;
}

int actio__pg_error_code(const actio__pg_error *e) {
  if (e->sqlstate == NULL)
    return ACTIO_ECONN; /* made up by libpq: the connection failed */
  if (actio__pg_error_is(e, "40001") || actio__pg_error_is(e, "40P01"))
    return ACTIO_ERETRY;
  return ACTIO_ESQL;
}

/* pg_error.c: the server's error fields, read once per failed result, and
 * the one-line texts io/pg makes of them and of libpq's own messages. */
#include "io/pg/pg_error.h"

#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>

#include "actio/error.h"
#include "io/pg/pg_private.h"

/* buf on one line: newlines, carriage returns and tabs as spaces, no
 * trailing blank. */
static void tidy(char *buf) {
  for (char *p = buf; *p; p++)
    if (*p == '\n' || *p == '\r' || *p == '\t')
      *p = ' ';
  size_t n = strlen(buf);
  while (n > 0 && buf[n - 1] == ' ')
    buf[--n] = '\0';
}

void actio__pg_one_line(const char *in, char *buf, size_t len) {
  if (len == 0)
    return;
  snprintf(buf, len, "%s", in != NULL && *in ? in : "unknown error");
  tidy(buf);
}

void actio__pg_masked_line(const char *head, const char *in, char *buf, size_t len) {
  if (len == 0)
    return;
  if (in == NULL || *in == '\0')
    in = "unknown error";
  /* The server puts values between double quotes as they are, a '"' in
   * them not doubled ("...: \"a\" pw \"b\""), so no pairing of quotes can
   * tell a value's from the text's: all from the first to the last goes.
   * Written from the whole text, so a cut can only drop its end. */
  const char *first = strchr(in, '"'), *last = strrchr(in, '"');
  if (first == NULL)
    snprintf(buf, len, "%s%s", head ? head : "", in);
  else
    snprintf(buf, len, "%s%.*s\"***\"%s", head ? head : "", (int)(first - in), in,
             last > first ? last + 1 : "");
  tidy(buf);
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
    actio__pg_masked_line(NULL, e->full, buf, len);
    return;
  }
  char head[16];
  snprintf(head, sizeof head, "%s: ", e->sqlstate ? e->sqlstate : "?????");
  actio__pg_masked_line(head, e->message, buf, len);
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

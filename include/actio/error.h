/** @file actio/error.h
 * Return codes shared by every actio API. */
#ifndef ACTIO_ERROR_H
#define ACTIO_ERROR_H

#include <errno.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup errors Errors
 * Every actio function that can fail returns an int: 0 on success, a negative
 * code on failure. System errors are the negated errno (ACTIO_EINVAL is
 * -EINVAL); codes of actio's own start at -4000, far above any errno.
 * The X-macro keeps the names, codes and texts in one table.
 * @{ */

/** The system errors actio returns under its own names: X(name, code,
 * text) for each. */
#define ACTIO_ERRNO_MAP(X)                                                    \
  X(EINVAL, -EINVAL, "invalid argument")                                      \
  X(ENOMEM, -ENOMEM, "out of memory")                                         \
  X(EAGAIN, -EAGAIN, "resource temporarily unavailable")                      \
  X(ETIMEDOUT, -ETIMEDOUT, "timed out")                                       \
  X(ECANCELED, -ECANCELED, "operation canceled")                              \
  X(EEXIST, -EEXIST, "already exists")                                        \
  X(ERANGE, -ERANGE, "value out of range of the requested type")

/** actio's own codes: X(name, code, text) for each. */
#define ACTIO_OWN_MAP(X)                                                      \
  X(EFULL, -4001, "mailbox or queue full")                                    \
  X(ECLOSED, -4002, "actor, mailbox or queue closed")                         \
  X(EPENDING, -4003, "future still pending")                                  \
  X(EALREADY, -4004, "future already completed")                              \
  X(EEOF, -4005, "no more items")                                             \
  X(EALLFAILED, -4006, "every future failed")                                 \
  X(ESTATE, -4007, "operation not allowed in this state")                    \
  X(ESANDBOX, -4008, "path escapes the sandbox root")                        \
  X(EURL, -4010, "malformed URL")                                             \
  X(ESCHEME, -4011, "unsupported URL scheme (only http and https)")           \
  X(EDNS, -4012, "host name could not be resolved")                           \
  X(ECONNTIMEOUT, -4013, "connect timed out")                                 \
  X(EIDLE, -4014, "no data within the idle timeout")                          \
  X(ETLS, -4015, "TLS handshake or certificate verification failed")          \
  X(EREDIRECTS, -4016, "too many redirects")                                  \
  X(ETOOBIG, -4017, "response body over the size limit")                      \
  X(EPARTIAL, -4018, "connection closed before the whole response arrived")   \
  X(EHTTP, -4019, "HTTP status 4xx or 5xx")                                   \
  X(ETRANSFER, -4020, "HTTP transfer failed")                                \
  X(ESQL, -4021, "SQL error reported by the server")                          \
  X(ERETRY, -4022, "serialization failure or deadlock: retry the transaction") \
  X(ECONN, -4023, "database connection failed or lost")                       \
  X(EAUTH, -4024, "database authentication failed")                           \
  X(EDSN, -4025, "invalid database connection string")                        \
  X(ENULL, -4026, "value is SQL NULL")                                        \
  X(ETYPE, -4027, "value does not convert to the requested type")            \
  X(ECOLUMN, -4030, "no column of that name in the result")                  \
  X(EFATAL, -4028, "the actor failed and must be restarted")                  \
  X(EINTENSITY, -4029, "too many restarts: the supervisor gave up")          \
  X(ENONAME, -4040, "no actor or child has that name")                       \
  X(ERESTARTED, -4041, "the child restarted while the request was in flight") \
  X(ENORESPONDERS, -4050, "no responders on the NATS subject")                \
  X(ENATS, -4051, "NATS connection failed, lost or closed")                   \
  X(ENATSAUTH, -4052, "NATS authorization failed")                            \
  X(EPAYLOAD, -4053, "message over the NATS server's max_payload")            \
  X(ESUBJECT, -4054, "invalid NATS subject")                                 \
  X(ENOSTREAM, -4055, "no JetStream stream for the subject or name")         \
  X(EJETSTREAM, -4056, "JetStream refused the request")                      \
  X(EPROXY, -4060, "HTTP proxy unreachable, or it refused the request")       \
  X(EPROXYAUTH, -4061, "HTTP proxy authentication failed")                   \
  X(EDECODE, -4062, "HTTP response body could not be decoded (Content-Encoding)")

/** The whole table, for building your own: X(name, code, text) for each
 * code, the name without its ACTIO_ prefix. */
#define ACTIO_ERR_MAP(X) ACTIO_ERRNO_MAP(X) ACTIO_OWN_MAP(X)

/** The codes: ACTIO_ followed by each name of the table, its text being what
 * actio_strerror returns. */
enum {
#define ACTIO__ERR_ENUM(name, code, text) ACTIO_##name = (code),
  ACTIO_ERR_MAP(ACTIO__ERR_ENUM)
#undef ACTIO__ERR_ENUM
};

/** Human-readable text for `rc` (an ACTIO_* code or a negated errno).
 * Returns a static string, never NULL; any thread. */
const char *actio_strerror(int rc);

/** The symbolic name of `rc` ("ECANCELED", "EFULL", ...), or "UNKNOWN".
 * Static string; any thread. */
const char *actio_err_name(int rc);

/** @} */

#ifdef __cplusplus
}
#endif
#endif /* ACTIO_ERROR_H */

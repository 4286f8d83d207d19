/* http_redact.h: a URL made fit for a message or a log: what may be a
 * secret in it (a password, a token) masked. */
#ifndef ACTIO_IO_HTTP_REDACT_H
#define ACTIO_IO_HTTP_REDACT_H

#include <stddef.h>

/*
 * Writes the `len` bytes of `url` (any bytes; NULs are allowed) to out,
 * with "***" in place of:
 *  - the userinfo's password ("user:***@host"), or the whole userinfo when
 *    it has no password ("***@host": a lone user name is often a token, as
 *    in https://TOKEN@github.com). A URL that libcurl would reject because
 *    its password holds a '/', '?' or '#' is masked up to its last '@';
 *  - the value of every query or fragment parameter whose name, percent-
 *    decoded and compared without case, is a secret's: one of the built-in
 *    names (token, key, apikey, password, passwd, pwd, passphrase, secret,
 *    signature, sig, credential, credentials, auth, authorization, session,
 *    sessionid, jwt) or of `extra` (NULL-terminated, may be NULL), or ends
 *    with one of them after '-', '_', '.' or a change from lower to upper
 *    case: "access_token", "x-api-key", "X-Amz-Signature", "apiKey" are
 *    masked, "monkey" is not. Parameters are split at '&', ';' and '?',
 *    but a secret's value runs to the next '&' (or '#'): "token=a;b=c"
 *    is "token=***".
 *    A URL in another parameter's value ("?next=http://u:pw@h/") gets its
 *    userinfo masked; one percent-encoded there is not looked into.
 * Control bytes are written as %XX, so the text stays on one line.
 * Returns the length of the whole text; at most cap - 1 bytes of it are
 * written, always NUL-terminated (cap > 0), and a cut text ends with
 * "..." (cap > 3). Pure: no allocation, no global state; any thread.
 */
size_t actio__http_redact(const char *url, size_t len, const char *const *extra,
                          char *out, size_t cap);

#endif

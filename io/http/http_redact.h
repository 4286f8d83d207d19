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
 *    in https://TOKEN@github.com). The URL is read past spaces and control
 *    bytes before it, and from a "://" before any '/', '@', '?' or '#'
 *    when no scheme starts it ("<http://u:pw@h/>": libcurl rejects such a URL
 *    and its message quotes it whole). What a person may have meant as a
 *    userinfo is masked too, up to its last '@': up to an '@' before the
 *    first '?' or '#' that has a ':' (not an IPv6 literal's) somewhere
 *    before it and does not start a path segment, so "admin:2024/pw@host"
 *    (libcurl: port 2024, path "/pw@host") and "host:8080/a/b@c" lose all
 *    before the '@', "/users/@me" and "host/a/b@c" keep theirs; and up to
 *    the last '@' at all when the "port" is no number ("u:pa?ss@host");
 *  - the value of every query or fragment parameter whose name is a
 *    secret's. Parameters are split at '&', ';' and '?', but a secret's
 *    value runs to the next '&' (or '#'): "token=a;b=c" is "token=***".
 *    A name is judged percent-decoded, without case, with tabs and line
 *    breaks left out, and in parts: the name before any '[' and each key
 *    between brackets ("user[password]", "token[]", "a[0][api_key]"). A
 *    part is a secret's name when
 *      - it holds password, passwd, passphrase, secret or credential
 *        anywhere ("password_confirmation", "client_secret");
 *      - it ends with token, apikey, pwd, signature, sig, auth,
 *        authorization, session, sessionid, sessid or jwt, or one of them
 *        and an 's' ("accesstoken", "PHPSESSID", "tokens");
 *      - it ends with key or keys as a word: all of it, or after a byte
 *        that is no letter or digit, a lower-to-upper case change, or one
 *        of access, private, signing, client, master, shared, encryption,
 *        auth, api ("api_key", "x-api-key", "apiKey", "privatekey"; not
 *        "monkey", "turkeys");
 *      - it ends with one of `extra` (NULL-terminated, may be NULL) as a
 *        word, in the same sense.
 *    A URL in another parameter's value ("?next=http://u:pw@h/") gets its
 *    userinfo masked; one percent-encoded there is not looked into.
 * Control bytes are written as %XX, so the text stays on one line.
 * Returns the length of the whole text; at most cap - 1 bytes of it are
 * written, always NUL-terminated (cap > 0), and a cut text ends with
 * "..." (cap > 3). Pure: no allocation, no global state; any thread.
 */
size_t actio__http_redact(const char *url, size_t len, const char *const *extra,
                          char *out, size_t cap);

/*
 * Writes one header line (`len` bytes, its CR LF dropped) fit for a log:
 * the value of Cookie, Set-Cookie and of every header whose name is a
 * secret's as a parameter's would be (Authorization, Proxy-Authorization,
 * X-Api-Key, X-Auth-Token...) as "***", an Authorization's scheme kept
 * ("Authorization: Bearer ***"); a request line's target and the URL of
 * Location, Content-Location and Referer masked as actio__http_redact
 * does. Returns and writes as actio__http_redact. Pure; any thread.
 */
size_t actio__http_redact_header(const char *line, size_t len, const char *const *extra,
                                 char *out, size_t cap);

#endif

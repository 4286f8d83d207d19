/** @file actio/db.h
 * The database actor: PostgreSQL over libpq's non-blocking API (what asyncpg
 * gives Python), every query a future. */
#ifndef ACTIO_DB_H
#define ACTIO_DB_H

#include <stddef.h>
#include <stdint.h>

#include "actio/actor.h"
#include "actio/future.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup db Database
 * A pool of connections, each owned by one worker thread that drives all of
 * its connections from one poll. Independent queries that reach one
 * connection are pipelined (libpq pipeline mode), each ending at its own sync
 * point, so one caller's error never fails another's query. Statements are
 * prepared on first use and kept per connection (LRU). Parameters travel
 * apart from the SQL, never interpolated into it.
 *
 * A query fails with ACTIO_ESQL (the server's error; actio_db_error tells
 * SQLSTATE, message, detail and hint), ACTIO_ERETRY (serialization failure
 * or deadlock: retry the transaction), ACTIO_ECONN (no connection, or it was
 * lost; the query may or may not have run), ACTIO_EAUTH, ACTIO_ETIMEDOUT
 * (query timeout, deadline, or no connection free in time), ACTIO_ECANCELED,
 * ACTIO_EINVAL. A query timed out or cancelled while running is cancelled on
 * the server too; nothing new is sent on its connection until the server
 * took that request, so it never reaches a later query. The server drops
 * a request that lands before the query runs (between its protocol
 * messages): one delivered while the query still runs goes again, after a
 * pause that doubles from 0.5-1 s to 5-10 s, until the query is over.
 * Should the query end before the request lands, the request may reach
 * one sent behind it already: a pooled one is sent again (three times at
 * most), a transaction's or session's fails (57014, its message saying
 * whose cancel it was). A connection's next sends (a transaction's COMMIT
 * or ROLLBACK, a session's reset) wait for that request to be over, and
 * libpq's PQcancel, which sends it, has no timeout of its own: a server that
 * takes the cancel connection but never answers holds them that long. It never
 * holds the pool's end: a draining stop does not wait for what a cancelled
 * query left running, and a cancel request still on its way
 * connect_timeout_ms after the stop goes on without the pool. No message
 * ever contains the password.
 *
 * A failed query's message (actio_future_errmsg) is fit to log or store:
 * "STATEMENT: SQLSTATE: message", the statement with its literals masked,
 * the server's primary message with all from its first double quote to its
 * last as "***" (where the server quotes a parameter's or a literal's
 * value, unescaped), and neither detail nor hint (a duplicate key's value,
 * a failing row). A message a function of yours raises without quotes
 * (RAISE EXCEPTION '%', secret) is shown as it is.
 * @{ */

/** A notice the server sent a session (RAISE NOTICE, a WARNING, "there is
 * no transaction in progress"), lent to actio_db_opts.on_notice. The text
 * is the server's: a function's RAISE may put any value in it, secrets
 * included, unmasked; what of it is logged is the caller's choice. */
typedef struct actio_db_notice {
  const char *severity; /**< "WARNING", "NOTICE", "INFO", "LOG", "DEBUG",
                             never translated; "" from libpq itself */
  const char *sqlstate; /**< "01000", "00000", ...; "" from libpq itself */
  const char *message;  /**< the primary message */
  const char *detail;   /**< NULL when the server gave none */
  const char *hint;     /**< NULL when the server gave none */
} actio_db_notice;

/** What a pool hook is told of the connection it runs for; lent for the
 * call. */
typedef struct actio_db_conn_info {
  int backend_pid;    /**< the server process serving it */
  int server_version; /**< as libpq's PQserverVersion: 170002 for 17.2 */
  int lost;           /**< on_release only: 1 if the connection is closed,
                           not given back (see on_release) */
} actio_db_conn_info;

/** A query's result, the value of its future (freed with it). It is read
 * only: any thread may read it while it holds the future. */
typedef struct actio_db_result actio_db_result;

/** Pool settings; zero means the default for every field. */
typedef struct actio_db_opts {
  const char *dsn;             /**< libpq connection string or URI (copied);
                                    required */
  unsigned workers;            /**< threads, each driving its share of the
                                    connections; default 2 (1 for a pool of
                                    one) */
  unsigned min_connections;    /**< kept open; default 1 */
  unsigned max_connections;    /**< default 10 */
  int lazy;                    /**< 1: open even the first connections only
                                    when a query needs one */
  unsigned pipeline_depth;     /**< independent queries in flight on one
                                    connection; default 32; 1: no pipelining */
  unsigned statement_cache;    /**< prepared statements per connection;
                                    default 256 */
  int no_statement_cache;      /**< 1: never prepare (pgbouncer in transaction
                                    mode) */
  long connect_timeout_ms;     /**< default 10 s */
  long acquire_timeout_ms;     /**< longest wait for a connection; default 30 s */
  long query_timeout_ms;       /**< default none; a query still running then
                                    is cancelled on the server */
  long health_check_ms;        /**< an idle connection is pinged this often;
                                    default 30 s; -1: never */
  long max_lifetime_ms;        /**< replaced once idle past this age; default
                                    1 h; -1: never */
  /** Backoff between failed connects, doubling from min (default 100 ms)
   * to max (10 s). @{ */
  long reconnect_min_ms;
  long reconnect_max_ms;
  /** @} */
  long retry_budget_ms;        /**< with no connection for this long while
                                    queries wait (or below min_connections),
                                    the actor fails (actio_actor_fail) and its
                                    supervisor restarts it; default 0: never */
  size_t capacity;             /**< mailbox size; default 4096 */
  int fail_when_full;          /**< 1: a full mailbox fails with ACTIO_EFULL */
  /** Called with each notice a pooled connection receives, on the database
   * worker's thread that drives it, in the order they came and before the
   * result of the statement that raised them. It must not block (the
   * worker's other connections wait) nor call back into this actor
   * waiting for a future. n and its strings are lent for the call: copy
   * what you keep. NULL: notices are dropped, never printed. */
  void (*on_notice)(void *arg, const actio_db_notice *n);
  void *notice_arg;            /**< on_notice's first argument (borrowed
                                    for the actor's life) */
  /** Pool hooks. Each runs on the database worker's thread that drives
   * the connection, and must not block (its other connections wait) nor
   * wait for a future of this actor; it may read c, keep what it copies,
   * send requests (not wait for them). They are not run for the LISTEN
   * connection. @{ */
  /** SQL (copied; several statements allowed, no parameters) run with the
   * simple protocol on each new connection before any request may use it,
   * and again after a session's reset (DISCARD ALL undoes its SETs). */
  const char *on_connect_sql;
  /** Called once per new connection, after on_connect_sql; `init` is its
   * last statement's result (NULL without on_connect_sql), lent for the
   * call. A negative return, like a failing on_connect_sql, discards the
   * connection: it counts as a failed connect (the pool backs off before
   * the next, reconnect_min_ms doubling), and with no other connection
   * the requests waiting fail with that code and a message naming the
   * hook ("on-connect SQL failed: 42P01: ..."). */
  int (*on_connect)(void *arg, const actio_db_conn_info *c,
                    const actio_db_result *init);
  /** Called when a connection is taken for a session (actio_db_acquire)
   * or a transaction (actio_db_begin), before the caller has it. A
   * negative return fails that acquire or BEGIN with the code and closes
   * the connection. */
  int (*on_acquire)(void *arg, const actio_db_conn_info *c);
  /** Called once for each connection on_acquire accepted, when it is
   * given back: after its reset (a session's) or its COMMIT or ROLLBACK,
   * c->lost 0; a negative return closes the connection instead of pooling
   * it. A connection lost meanwhile (the server closed it, as
   * pg_terminate_backend does, it broke, its reset failed, or the actor
   * was destroyed) is given back with c->lost 1 once the pool sees it (at
   * the session's release or the transaction's end at the latest, before
   * that completes), and closed whatever the hook returns. */
  int (*on_release)(void *arg, const actio_db_conn_info *c);
  void *hook_arg; /**< the hooks' first argument (borrowed for the actor's
                       life) */
  /** @} */
} actio_db_opts;

/** Spawns a database actor in `rt` (strings are copied). Connecting happens
 * in the background; a server that is down fails the queries, not the
 * spawn. Returns 0, ACTIO_EINVAL (no DSN), ACTIO_EDSN (the connection
 * string does not parse), ACTIO_ENOMEM, or an actor spawn error. Any
 * thread. */
int actio_db_spawn(actio_runtime *rt, const actio_db_opts *opts,
                   actio_actor **out);

/** actio_db_spawn as a supervisor's child start (actio/supervisor.h): arg
 * is the actio_db_opts *, borrowed for the supervisor's life. */
int actio_db_child(actio_runtime *rt, void *opts, actio_actor **out);

/* ---- typed values ---- */

/** The type OIDs the typed getters and parameters know (PostgreSQL's
 * pg_type: what actio_db_column_type returns). */
enum {
  ACTIO_DB_BOOL = 16,               /**< boolean */
  ACTIO_DB_BYTEA = 17,              /**< bytea */
  ACTIO_DB_INT8 = 20,               /**< bigint */
  ACTIO_DB_INT2 = 21,               /**< smallint */
  ACTIO_DB_INT4 = 23,               /**< integer */
  ACTIO_DB_TEXT = 25,               /**< text */
  ACTIO_DB_JSON = 114,              /**< json */
  ACTIO_DB_FLOAT4 = 700,            /**< real */
  ACTIO_DB_FLOAT8 = 701,            /**< double precision */
  ACTIO_DB_VARCHAR = 1043,          /**< character varying */
  ACTIO_DB_DATE = 1082,             /**< date */
  ACTIO_DB_TIMESTAMP = 1114,        /**< timestamp without time zone */
  ACTIO_DB_TIMESTAMPTZ = 1184,      /**< timestamp with time zone */
  ACTIO_DB_INTERVAL = 1186,         /**< interval */
  ACTIO_DB_NUMERIC = 1700,          /**< numeric */
  ACTIO_DB_UUID = 2950,             /**< uuid */
  ACTIO_DB_JSONB = 3802,            /**< jsonb */
  ACTIO_DB_BOOL_ARRAY = 1000,       /**< boolean[] */
  ACTIO_DB_BYTEA_ARRAY = 1001,      /**< bytea[] */
  ACTIO_DB_INT2_ARRAY = 1005,       /**< smallint[] */
  ACTIO_DB_INT4_ARRAY = 1007,       /**< integer[] */
  ACTIO_DB_TEXT_ARRAY = 1009,       /**< text[] */
  ACTIO_DB_VARCHAR_ARRAY = 1015,    /**< character varying[] */
  ACTIO_DB_INT8_ARRAY = 1016,       /**< bigint[] */
  ACTIO_DB_FLOAT4_ARRAY = 1021,     /**< real[] */
  ACTIO_DB_FLOAT8_ARRAY = 1022,     /**< double precision[] */
  ACTIO_DB_JSON_ARRAY = 199,        /**< json[] */
  ACTIO_DB_TIMESTAMP_ARRAY = 1115,  /**< timestamp[] */
  ACTIO_DB_DATE_ARRAY = 1182,       /**< date[] */
  ACTIO_DB_TIMESTAMPTZ_ARRAY = 1185, /**< timestamptz[] */
  ACTIO_DB_INTERVAL_ARRAY = 1187,   /**< interval[] */
  ACTIO_DB_NUMERIC_ARRAY = 1231,    /**< numeric[] */
  ACTIO_DB_UUID_ARRAY = 2951,       /**< uuid[] */
  ACTIO_DB_JSONB_ARRAY = 3807,      /**< jsonb[] */
};

/** timestamp's and timestamptz's 'infinity' and '-infinity', read and
 * written as microseconds. @{ */
#define ACTIO_DB_TIME_INFINITY INT64_MAX
#define ACTIO_DB_TIME_NINFINITY INT64_MIN
/** @} */
/** date's 'infinity' and '-infinity', read and written as days. @{ */
#define ACTIO_DB_DATE_INFINITY INT32_MAX
#define ACTIO_DB_DATE_NINFINITY INT32_MIN
/** @} */

/** An interval as PostgreSQL keeps it: three fields, never normalized
 * into each other (a month is not 30 days, nor a day 24 hours, across a
 * change of daylight saving time). */
typedef struct actio_db_interval {
  int32_t months; /**< months (years are 12) */
  int32_t days;   /**< days */
  int64_t usec;   /**< microseconds */
} actio_db_interval;

/**
 * A typed parameter, sent in binary with its type OID (actio_db_request's
 * typed). Set type, then the one field of v it names:
 * - ACTIO_DB_INT2, _INT4, _INT8: i (past the type's range: ACTIO_ERANGE at
 *   the call);
 * - ACTIO_DB_FLOAT4, _FLOAT8: f (NaN and infinities too); ACTIO_DB_BOOL: b;
 * - ACTIO_DB_TEXT, _VARCHAR, _JSON, _JSONB: s (NUL-ended UTF-8);
 * - ACTIO_DB_NUMERIC: s, exact decimal text ([+-]digits[.digits][e[+-]n],
 *   NaN, Infinity, -Infinity; anything else is ACTIO_ETYPE at the call);
 * - ACTIO_DB_BYTEA: bytes (any bytes, zeros too);
 * - ACTIO_DB_UUID: uuid (16 bytes, in the order they are printed);
 * - ACTIO_DB_DATE: date, days since 1970-01-01 (ACTIO_DB_DATE_INFINITY);
 * - ACTIO_DB_TIMESTAMPTZ: ts, microseconds since 1970-01-01 00:00 UTC;
 *   ACTIO_DB_TIMESTAMP: ts, the same count read as a local time without
 *   zone (ACTIO_DB_TIME_INFINITY for either);
 * - ACTIO_DB_INTERVAL: interval;
 * - an array type above (ACTIO_DB_INT4_ARRAY, ...): array, count elements
 *   of its element type, one dimension, lower bound 1 (an element of
 *   another type: ACTIO_EINVAL).
 * null 1 is SQL NULL of that type, v unread. Borrowed during the call:
 * the request copies what it sends.
 */
typedef struct actio_db_param {
  uint32_t type; /**< a type OID above */
  int null;      /**< 1: SQL NULL */
  /** The value, by type. */
  union {
    int64_t i;                   /**< int2, int4, int8 */
    double f;                    /**< float4, float8 */
    int b;                       /**< bool: 0 or not */
    const char *s;               /**< text, varchar, json, jsonb, numeric */
    /** bytea's bytes */
    struct {
      const void *data; /**< len bytes */
      size_t len;       /**< their number */
    } bytes;
    uint8_t uuid[16];            /**< uuid */
    int32_t date;                /**< date */
    int64_t ts;                  /**< timestamp, timestamptz */
    actio_db_interval interval;  /**< interval */
    /** an array's elements */
    struct {
      const struct actio_db_param *elems; /**< count values */
      size_t count;                       /**< 0: an empty array */
    } array;
  } v;
} actio_db_param;

/* ---- queries and results ---- */

/** A statement prepared with actio_db_prepare, shared by the pool's
 * connections. */
typedef struct actio_db_stmt actio_db_stmt;

/** One query. Zero fields take the defaults. */
typedef struct actio_db_request {
  const char *sql;              /**< one statement, with $1, $2, ...; NULL
                                     with stmt */
  int nparams;                  /**< values in params */
  const char *const *params;    /**< values, text unless formats says
                                     binary; NULL is SQL NULL; copied */
  const int *lengths;           /**< byte lengths of binary values */
  const int *formats;           /**< per value: 0 text, 1 binary; NULL: text */
  const uint32_t *types;        /**< type OIDs; NULL (or 0): the server infers */
  int binary_results;           /**< 1: results in binary format */
  long timeout_ms;              /**< 0: the pool's query_timeout_ms */
  int no_cache;                 /**< 1: do not prepare this statement */
  const actio_db_param *typed;  /**< instead of params: nparams typed
                                     values, sent in binary with their
                                     types (params, lengths, formats and
                                     types stay NULL) */
  /** A prepared statement (actio_db_prepare) to run instead of sql, with
   * exactly its number of parameters (types NULL: its described ones). On
   * each connection it is prepared at its first use there. Not in a
   * batch. Borrowed for the call: the request keeps it alive. */
  const actio_db_stmt *stmt;
} actio_db_request;

/** Sends a query; *out's value is an actio_db_result *. Returns 0, or
 * ACTIO_EINVAL (NULL sql, negative nparams or more than 65535, a binary
 * value without its length, typed values with params, types or formats,
 * a typed value of no type above, not a database actor; with stmt: sql
 * given too, or nparams not its count of parameters), ACTIO_ERANGE or
 * ACTIO_ETYPE (a typed value that does not fit its type, see
 * actio_db_param), ACTIO_ENOMEM, ACTIO_ECLOSED, ACTIO_EFULL, and makes no future.
 * Thread-safe. The future's deadline bounds queueing and running. Queued,
 * SELECT $1::int with one value holds 240 bytes (future and request). */
int actio_db_send(actio_actor *db, const actio_db_request *req,
                  actio_future **out);

/** actio_db_send with text parameters only. Thread-safe. */
int actio_db_query(actio_actor *db, const char *sql, int nparams,
                   const char *const *params, actio_future **out);

/** Runs a script of several statements (a migration) with the simple query
 * protocol, on a connection of its own for the time; no parameters. The
 * value is the last statement's result. Returns as actio_db_send.
 * Thread-safe. */
int actio_db_script(actio_actor *db, const char *sql, actio_future **out);

/** Frees a result taken out of its future. NULL accepted. Any thread, once
 * nothing reads it. */
void actio_db_result_free(actio_db_result *r);

/** The number of rows and of columns (0 for a NULL result). @{ */
size_t actio_db_rows(const actio_db_result *r);
int actio_db_columns(const actio_db_result *r);
/** @} */
/** Column name and type OID, or NULL / 0 when col is out of range. @{ */
const char *actio_db_column_name(const actio_db_result *r, int col);
uint32_t actio_db_column_type(const actio_db_result *r, int col);
/** @} */
/** The column number of `name`, or -1. As in SQL, `name` is folded to lower
 * case unless it is double-quoted. */
int actio_db_column_index(const actio_db_result *r, const char *name);
/** The column number of `name` (folded as in actio_db_column_index), or
 * ACTIO_ECOLUMN (no such column, or r or name NULL): the form to pass
 * straight to a getter, whose col then fails with ACTIO_EINVAL. */
int actio_db_result_column(const actio_db_result *r, const char *name);
/** The command tag ("SELECT 3", "INSERT 0 1") and the rows it affected. @{ */
const char *actio_db_command_tag(const actio_db_result *r);
uint64_t actio_db_affected(const actio_db_result *r);
/** @} */

/** 1 if the value is SQL NULL, 0 if not, ACTIO_EINVAL out of range. */
int actio_db_is_null(const actio_db_result *r, size_t row, int col);

/**
 * Typed getters of the value at (row, col): 0, ACTIO_EINVAL (row or column
 * out of range, out NULL), ACTIO_ENULL (the value is SQL NULL; *out
 * untouched), ACTIO_ETYPE (a column of a type the getter does not read,
 * or bytes not of its type), ACTIO_ERANGE (a value the C type cannot
 * hold), ACTIO_ENOMEM (the getters that allocate). Each checks the
 * column's type OID, in text and binary results alike (binary_results):
 * - int16, int32, int64: smallint, integer, bigint (a narrower type into
 *   a wider one; a wider one that does not fit: ACTIO_ERANGE);
 * - double: real, double precision (NaN and infinities too);
 * - bool: boolean;
 * - text: in a text result any column, as the server printed it; in a
 *   binary one text, varchar, char, name, xml, json, jsonb and the
 *   unknown type (a literal), borrowed from the result, NUL-ended;
 * - json: json and jsonb only, their text (jsonb's version byte skipped);
 * - bytea: bytea, decoded into *data (malloc'd, the caller frees it,
 *   zero bytes kept) and *len;
 * - numeric: numeric as its exact decimal text, all its digits and its
 *   scale ("NaN", "Infinity", "-Infinity" too), malloc'd;
 * - uuid: uuid, its 16 bytes into out[0..16), in printed order;
 * - date: days since 1970-01-01 (ACTIO_DB_DATE_INFINITY and _NINFINITY);
 * - timestamp: timestamptz as microseconds since 1970-01-01 00:00 UTC
 *   (the wire carries UTC, whatever the session's TimeZone), and
 *   timestamp without time zone as the same count of its wall-clock time,
 *   zone unknown (ACTIO_DB_TIME_INFINITY and _NINFINITY; past the year
 *   294246 ACTIO_ERANGE);
 * - interval: interval, its months, days and microseconds.
 * date, timestamp and interval read binary results only (ACTIO_ETYPE in
 * a text one); the others read both. Any thread holding the result.
 * @{ */
int actio_db_text(const actio_db_result *r, size_t row, int col,
                  const char **out);
int actio_db_int16(const actio_db_result *r, size_t row, int col, int16_t *out);
int actio_db_int32(const actio_db_result *r, size_t row, int col, int32_t *out);
int actio_db_int64(const actio_db_result *r, size_t row, int col, int64_t *out);
int actio_db_double(const actio_db_result *r, size_t row, int col, double *out);
int actio_db_bool(const actio_db_result *r, size_t row, int col, int *out);
int actio_db_bytea(const actio_db_result *r, size_t row, int col, void **data,
                   size_t *len);
int actio_db_json(const actio_db_result *r, size_t row, int col, const char **out);
int actio_db_numeric(const actio_db_result *r, size_t row, int col, char **out);
int actio_db_uuid(const actio_db_result *r, size_t row, int col, uint8_t *out);
int actio_db_date(const actio_db_result *r, size_t row, int col, int32_t *out);
int actio_db_timestamp(const actio_db_result *r, size_t row, int col, int64_t *out);
int actio_db_interval_get(const actio_db_result *r, size_t row, int col,
                          actio_db_interval *out);
/** @} */

/** One value: an element of an actio_db_array. */
typedef struct actio_db_value {
  uint32_t type;    /**< its type OID */
  int binary;       /**< 1: binary format (always, in an array) */
  const char *data; /**< its bytes, NUL-ended; NULL: SQL NULL */
  size_t len;       /**< their number, the NUL left out */
} actio_db_value;

/** A one-dimensional array read from a binary result (actio_db_array_get). */
typedef struct actio_db_array {
  uint32_t elem_type;    /**< the elements' type OID */
  int32_t lbound;        /**< the first index in SQL (1 unless set) */
  size_t count;          /**< the elements */
  actio_db_value *elems; /**< count values, read with actio_db_value_* */
} actio_db_array;

/** The array at (row, col), of one of the array types above, from a
 * binary result: *out is a copy that outlives the result, the caller's to
 * free with actio_db_array_free. An empty array has count 0; a NULL
 * element's data is NULL. Returns 0, ACTIO_EINVAL, ACTIO_ENULL (the array
 * itself is NULL), ACTIO_ETYPE (not an array type above, a text result,
 * more than one dimension, bytes that do not parse), ACTIO_ENOMEM. */
int actio_db_array_get(const actio_db_result *r, size_t row, int col,
                       actio_db_array **out);
/** NULL accepted. */
void actio_db_array_free(actio_db_array *a);

/** The typed getters for one value (an array's element): the same types,
 * codes and contracts as actio_db_int64 and the others, v NULL being
 * ACTIO_EINVAL. text and json point into the array's copy. @{ */
int actio_db_value_text(const actio_db_value *v, const char **out);
int actio_db_value_int16(const actio_db_value *v, int16_t *out);
int actio_db_value_int32(const actio_db_value *v, int32_t *out);
int actio_db_value_int64(const actio_db_value *v, int64_t *out);
int actio_db_value_double(const actio_db_value *v, double *out);
int actio_db_value_bool(const actio_db_value *v, int *out);
int actio_db_value_bytea(const actio_db_value *v, void **data, size_t *len);
int actio_db_value_json(const actio_db_value *v, const char **out);
int actio_db_value_numeric(const actio_db_value *v, char **out);
int actio_db_value_uuid(const actio_db_value *v, uint8_t *out);
int actio_db_value_date(const actio_db_value *v, int32_t *out);
int actio_db_value_timestamp(const actio_db_value *v, int64_t *out);
int actio_db_value_interval(const actio_db_value *v, actio_db_interval *out);
/** @} */

/** What the server said about a failed query. */
typedef struct actio_db_error {
  const char *sqlstate;   /**< "42P01", ... */
  const char *severity;   /**< "ERROR", "FATAL" */
  const char *message;    /**< the primary message */
  const char *detail;     /**< NULL when the server gave none */
  const char *hint;       /**< NULL when the server gave none */
} actio_db_error;

/** The server's error behind a future that failed with ACTIO_ESQL or
 * ACTIO_ERETRY (borrowed from the future), else NULL. Whole and unmasked,
 * unlike actio_future_errmsg: the message, detail and hint may quote the
 * query's values, parameters and literals, secrets included ("Key
 * (api_key)=(...) already exists."); what of it is logged or stored is the
 * caller's choice. Any thread, once the future is done. */
const actio_db_error *actio_db_error_get(const actio_future *f);

/* ---- prepared statements ---- */

/** Prepares `sql` (one statement; nparams parameters, their type OIDs in
 * types or NULL for the server to infer) on a pooled connection and asks
 * the server to describe it; *out's value is the actio_db_stmt *, freed
 * with the future unless taken (then actio_db_stmt_destroy). Run it with
 * actio_db_request.stmt, pooled or in a transaction or session. The
 * server's refusal (a syntax error, an unknown table) fails *out with
 * ACTIO_ESQL. Returns 0, ACTIO_EINVAL (not a database actor, NULL sql or
 * out, nparams out of 0..65535), ACTIO_ENOMEM, ACTIO_ECLOSED, ACTIO_EFULL,
 * and makes no future. Thread-safe. */
int actio_db_prepare(actio_actor *db, const char *sql, int nparams,
                     const uint32_t *types, actio_future **out);

/** Destroys a statement taken out of its future: each connection that
 * prepared it DEALLOCATEs it when it is next free to (lazily; a
 * connection closed meanwhile has nothing to drop). Queries already sent
 * with it still run; s may not be used for new ones. NULL accepted.
 * Destroying s twice is the caller's bug: Debug and sanitizer builds
 * abort (as for a future released twice); a release build ignores the
 * second call while s lives (after, it is a use after free). Thread-safe. */
void actio_db_stmt_destroy(actio_db_stmt *s);

/** What the server described: the parameters' count and type OIDs, the
 * result's columns, their names and type OIDs (NULL / 0 out of range);
 * and the statement's name on the server ("actio_s1"). The strings are
 * s's own, valid until it is destroyed (copy one to keep it). Any
 * thread. @{ */
int actio_db_stmt_params(const actio_db_stmt *s);
uint32_t actio_db_stmt_param_type(const actio_db_stmt *s, int i);
int actio_db_stmt_columns(const actio_db_stmt *s);
const char *actio_db_stmt_column_name(const actio_db_stmt *s, int col);
uint32_t actio_db_stmt_column_type(const actio_db_stmt *s, int col);
const char *actio_db_stmt_name(const actio_db_stmt *s);
/** @} */

/* ---- transactions ---- */

/** A transaction: a connection kept from the pool until commit or rollback
 * (actio_db_begin). Thread-safe. */
typedef struct actio_db_txn actio_db_txn;

/** A transaction's isolation level. */
typedef enum actio_db_isolation {
  ACTIO_DB_READ_COMMITTED = 0,  /**< the server's default */
  ACTIO_DB_REPEATABLE_READ = 1, /**< REPEATABLE READ */
  ACTIO_DB_SERIALIZABLE = 2,    /**< SERIALIZABLE: be ready for ACTIO_ERETRY */
} actio_db_isolation;

/** How a transaction begins; zero is READ COMMITTED, read-write. */
typedef struct actio_db_txn_opts {
  actio_db_isolation isolation; /**< the isolation level */
  int read_only;                /**< 1: READ ONLY */
  int deferrable;               /**< 1: DEFERRABLE, with SERIALIZABLE and
                                     read_only */
} actio_db_txn_opts;

/** Begins a transaction on a connection it keeps until commit or rollback;
 * *out's value is the actio_db_txn * (opts may be NULL). A transaction
 * dropped without either (its future freed) is rolled back. A failed or
 * cancelled transaction never returns its connection to the pool dirty.
 * Free the transaction (or its future) before actio_runtime_destroy: it
 * goes back to an actor the runtime frees. */
int actio_db_begin(actio_actor *db, const actio_db_txn_opts *opts,
                   actio_future **out);

/** Releases a transaction taken out of its future (actio_future_take),
 * rolling it back if still open. NULL accepted. */
void actio_db_txn_free(actio_db_txn *t);

/** Queries inside the transaction run in the order sent. ACTIO_ESTATE once
 * it was committed or rolled back. Thread-safe. @{ */
int actio_db_txn_send(actio_db_txn *t, const actio_db_request *req,
                      actio_future **out);
int actio_db_txn_query(actio_db_txn *t, const char *sql, int nparams,
                       const char *const *params, actio_future **out);
/** @} */

/** Ends the transaction; the connection goes back to the pool. A commit of
 * a transaction that had failed rolls it back and fails with ACTIO_ESQL
 * (SQLSTATE 25P02). ACTIO_ESTATE if it had ended already. @{ */
int actio_db_commit(actio_db_txn *t, actio_future **out);
int actio_db_rollback(actio_db_txn *t, actio_future **out);
/** @} */

/** SAVEPOINT, ROLLBACK TO SAVEPOINT and RELEASE SAVEPOINT; `name` is quoted
 * as an identifier. @{ */
int actio_db_savepoint(actio_db_txn *t, const char *name, actio_future **out);
int actio_db_rollback_to(actio_db_txn *t, const char *name, actio_future **out);
int actio_db_release(actio_db_txn *t, const char *name, actio_future **out);
/** @} */

/** The body of a retried transaction: send its queries on t and set *out to
 * the future of its last step (a reference the helper takes over), or
 * return a negative code to roll back and fail. */
typedef int (*actio_db_txn_fn)(actio_db_txn *t, void *arg, actio_future **out);

/** Runs fn inside a transaction and commits. On ACTIO_ERETRY (SQLSTATE 40001
 * or 40P01, from a query or the commit) it rolls back and runs fn again,
 * at most `retries` more times. *out resolves with the value of fn's
 * future (borrowed from it) once committed. fn runs on the thread that
 * completed BEGIN. Returns 0, ACTIO_EINVAL (not a database actor, no fn,
 * negative retries, an isolation level out of range) or ACTIO_ENOMEM; a
 * BEGIN that fails fails *out. */
int actio_db_transaction(actio_actor *db, const actio_db_txn_opts *opts,
                         int retries, actio_db_txn_fn fn, void *arg,
                         actio_future **out);

/* ---- session connections ---- */

/** A connection taken out of the pool without a transaction, for what
 * lives in a session: temporary tables, advisory locks, SET, PREPARE, or
 * transactions of its own (send BEGIN and COMMIT on it). Thread-safe. */
typedef struct actio_db_session actio_db_session;

/** Takes a connection out of the pool; *out's value is the
 * actio_db_session *. It waits for a free connection as a query does (the
 * future's deadline, acquire_timeout_ms: ACTIO_ETIMEDOUT) and the pool's
 * on_acquire hook may refuse it. A session dropped without
 * actio_db_session_release (its future freed, actio_db_session_free) is
 * released the same way, and must be before actio_runtime_destroy (the
 * connection goes back to an actor the runtime frees). Returns 0,
 * ACTIO_EINVAL (not a database actor, out NULL), ACTIO_ENOMEM,
 * ACTIO_ECLOSED, ACTIO_EFULL, and makes no future. Thread-safe. */
int actio_db_acquire(actio_actor *db, actio_future **out);

/** Queries on the session's connection, run in the order sent (pipelined
 * behind each other); as actio_db_send and actio_db_query otherwise.
 * ACTIO_ESTATE once it was released. Thread-safe. @{ */
int actio_db_session_send(actio_db_session *s, const actio_db_request *req,
                          actio_future **out);
int actio_db_session_query(actio_db_session *s, const char *sql, int nparams,
                           const char *const *params, actio_future **out);
/** @} */

/** Gives the connection back once the queries sent before are over: a
 * transaction left open or failed is rolled back, then DISCARD ALL drops
 * the session's temporary tables, advisory locks, settings, prepared
 * statements and LISTENs, on_connect_sql runs again and on_release is
 * called. *out resolves (value NULL) once the reset is done; if it fails,
 * the connection is closed instead and *out fails with its error.
 * ACTIO_ESTATE if released already. Thread-safe. */
int actio_db_session_release(actio_db_session *s, actio_future **out);

/** Frees a session taken out of its future (actio_future_take), releasing
 * it as actio_db_session_release does unless it was; nobody waits for
 * the reset. NULL accepted. */
void actio_db_session_free(actio_db_session *s);

/* ---- COPY ---- */

/** A COPY ... FROM STDIN in progress (actio_db_copy_in). */
typedef struct actio_db_copy actio_db_copy;

/** Starts COPY ... FROM STDIN (`sql`), in transaction t or on a connection
 * of its own (t NULL). *out's value is the actio_db_copy * once the server
 * is ready for data; freeing it without actio_db_copy_end aborts the COPY. */
int actio_db_copy_in(actio_actor *db, actio_db_txn *t, const char *sql,
                     actio_future **out);

/** Releases a COPY taken out of its future, aborting it unless it ended.
 * NULL accepted. */
void actio_db_copy_free(actio_db_copy *c);

/** Sends data (copied; rows in the COPY format the statement names). *out
 * completes once libpq took it: wait on it, or return it as a stream's
 * backpressure future, to keep memory bounded. In order per thread.
 * ACTIO_ESTATE once the COPY ended. */
int actio_db_copy_write(actio_db_copy *c, const void *data, size_t len,
                        actio_future **out);

/** Ends the COPY: commits the rows (error NULL) or aborts it with `error` as
 * the reason. *out's value is the result ("COPY n", actio_db_affected).
 * ACTIO_ESTATE if it had ended already. */
int actio_db_copy_end(actio_db_copy *c, const char *error, actio_future **out);

/** Receives COPY data, one row per call, on a database worker (valid during
 * the call). To apply backpressure set *ready to a future (a reference the
 * COPY takes): no more rows are read until it completes. A negative return
 * fails the COPY with that code. */
typedef int (*actio_db_row_fn)(void *arg, const void *data, size_t len,
                               actio_future **ready);

/** Runs COPY ... TO STDOUT (`sql`), handing each row to fn. *out's value is
 * the result ("COPY n") once every row was handed over. */
int actio_db_copy_out(actio_actor *db, actio_db_txn *t, const char *sql,
                      actio_db_row_fn fn, void *arg, actio_future **out);

/* ---- batches ---- */

/** What a batch or an executemany resolves with (freed with its future, or
 * with actio_db_batch_result_free once taken). Read only: any thread. */
typedef struct actio_db_batch_result actio_db_batch_result;

/** Row i's values for actio_db_executemany_fn: nparams pointers (NULL is
 * SQL NULL), read during the call; NULL refuses the call (ACTIO_EINVAL). */
typedef const char *const *(*actio_db_row_params_fn)(void *arg, size_t i);

/**
 * Runs `sql` once per row of parameters, nrows > 0 sets of nparams text
 * values (row-major: params[i * nparams + j]; copied), as ONE pipelined
 * unit with one sync point: the server runs them as one implicit
 * transaction, so all take effect or none does. The statement is prepared
 * once (statement cache). *out's value is an actio_db_batch_result (rows
 * affected in all and per row). A row that fails (a constraint) fails *out
 * with ACTIO_ESQL, nothing done, its index in actio_db_batch_index and in
 * the message ("row 7: 23505: ..."). Not retried, but after a cancel meant
 * for the query ahead of it (nothing of it ran). The pool's query timeout,
 * a deadline or a cancel of *out cancels it on the server. Returns 0 or
 * ACTIO_EINVAL (no sql, nrows 0, nparams out of 0..65535, more than
 * INT_MAX values, a statement that begins or ends a transaction: BEGIN,
 * START, COMMIT, END, ROLLBACK, ABORT), ACTIO_ENOMEM, ACTIO_ECLOSED,
 * ACTIO_EFULL; then no future. Thread-safe.
 */
int actio_db_executemany(actio_actor *db, const char *sql, int nparams, size_t nrows,
                         const char *const *params, actio_future **out);
/** actio_db_executemany with row i's values from row(arg, i), called nrows
 * times before this returns. */
int actio_db_executemany_fn(actio_actor *db, const char *sql, int nparams, size_t nrows,
                            actio_db_row_params_fn row, void *arg, actio_future **out);

/** n > 0 different statements (sql, nparams, params as text and
 * binary_results of each; copied) as one pipelined unit with one sync
 * point: all or nothing, as actio_db_executemany, the failing statement's
 * index in actio_db_batch_index. Each statement's result is kept
 * (actio_db_batch_result_at). ACTIO_EINVAL also for types, formats or
 * typed (text values only) and for a statement that begins or ends a
 * transaction. */
int actio_db_batch(actio_actor *db, const actio_db_request *stmts, size_t n,
                   actio_future **out);

/** The index of the statement (row) whose error failed a batch's future,
 * or -1 (not a batch, not a server error, or the statement itself failed
 * to prepare). Any thread, once the future is done. */
long actio_db_batch_index(const actio_future *f);

/** NULL accepted. */
void actio_db_batch_result_free(actio_db_batch_result *b);
/** Statements (rows) run; rows affected by all; by statement i (0 out of
 * range). @{ */
size_t actio_db_batch_count(const actio_db_batch_result *b);
uint64_t actio_db_batch_affected(const actio_db_batch_result *b);
uint64_t actio_db_batch_affected_at(const actio_db_batch_result *b, size_t i);
/** @} */
/** Statement i's result (borrowed from b), for actio_db_batch; NULL for an
 * executemany or out of range. */
const actio_db_result *actio_db_batch_result_at(const actio_db_batch_result *b,
                                                size_t i);

/* ---- streamed rows and cursors ---- */

/** A batch of streamed rows, valid during the consumer's call. */
typedef struct actio_db_rowset actio_db_rowset;

/** Receives streamed rows on a database worker. To apply backpressure set
 * *ready to a future (a reference the stream takes): no more rows are read
 * (they wait in the server's socket) until it completes; failed, it fails
 * the stream. A negative return fails the stream with that code. */
typedef int (*actio_db_stream_fn)(void *arg, const actio_db_rowset *rows,
                                  actio_future **ready);

/**
 * Runs req and hands its rows to fn as they come, up to batch_rows (0:
 * 256; at most 65536) a call, in libpq's single-row mode (chunked mode when
 * built with libpq 17). The stream runs on a connection taken out of the
 * pipeline for its time, so a slow consumer holds back no other query. *out
 * resolves with the final result (no rows; tag "SELECT n") once every row
 * was handed over. Cancelling *out or freeing it before it is done (its
 * last reference dropped: nobody wants the rows), its deadline
 * (req->timeout_ms, the pool's query timeout), fn returning an error or
 * its ready future failing cancel the query on the server; the rows still
 * on their way are dropped and the connection goes back to the pool.
 * Memory: the rows of one call, each row a libpq result. Returns 0,
 * ACTIO_EINVAL (as actio_db_send, no fn, batch_rows too large),
 * ACTIO_ENOMEM, ACTIO_ECLOSED, ACTIO_EFULL. Thread-safe.
 */
int actio_db_stream(actio_actor *db, const actio_db_request *req, size_t batch_rows,
                    actio_db_stream_fn fn, void *arg, actio_future **out);

/** The rows in a streamed batch. */
size_t actio_db_rowset_count(const actio_db_rowset *rows);
/** The result holding row i of the batch and, in *row, its row number
 * there (read it with actio_db_text and the other getters); NULL out of
 * range. */
const actio_db_result *actio_db_rowset_at(const actio_db_rowset *rows, size_t i,
                                        size_t *row);

/** A cursor inside a transaction (DECLARE ... NO SCROLL CURSOR), for
 * callers that page. Not thread-safe; its transaction must outlive it. */
typedef struct actio_db_cursor actio_db_cursor;

/** Declares a cursor for req's query in t; *cur is the caller's at once
 * (its FETCHes may be sent before the DECLARE completes: they run in
 * order), *out completes once declared. Returns 0, ACTIO_EINVAL,
 * ACTIO_ENOMEM or ACTIO_ESTATE (t ended), with nothing made. */
int actio_db_cursor_open(actio_db_txn *t, const actio_db_request *req,
                         actio_db_cursor **cur, actio_future **out);
/** FETCH FORWARD n (1 to 10^9): *out's value is an actio_db_result with
 * the next rows, none once they are over. */
int actio_db_cursor_fetch(actio_db_cursor *cur, size_t n, actio_future **out);
/** CLOSE: frees the cursor's rows on the server before the transaction
 * ends (its end closes it anyway). */
int actio_db_cursor_close(actio_db_cursor *cur, actio_future **out);
/** Frees the handle (not the server's cursor). NULL accepted. */
void actio_db_cursor_free(actio_db_cursor *cur);

/* ---- LISTEN / NOTIFY ---- */

/** A notification (NOTIFY) heard on a channel. */
typedef struct actio_db_notification {
  const char *channel; /**< the channel it came on */
  const char *payload; /**< "" when there was none */
  int pid;       /**< the notifying backend */
  int missed;    /**< 1: the listening connection was lost and restored;
                      notifications sent meanwhile are gone (channel set,
                      payload "") */
} actio_db_notification;

/** Receives notifications on a database worker (valid during the call). */
typedef void (*actio_db_notify_fn)(void *arg, const actio_db_notification *n);

/** Subscribes to `channel` (quoted as an identifier) on the actor's
 * listening connection; *out resolves once LISTEN is in effect. With fn
 * NULL, `arg` is an actio_actor * and each notification is told to it as
 * an actio_db_notification * that its handler frees with
 * actio_db_notification_free (a notification its full mailbox refuses is
 * dropped). After a reconnect the subscriptions are restored and each
 * subscriber gets one notification with `missed` set. */
int actio_db_listen(actio_actor *db, const char *channel,
                    actio_db_notify_fn fn, void *arg, actio_future **out);

/** Removes the subscription made with the same channel, fn and arg. */
int actio_db_unlisten(actio_actor *db, const char *channel,
                      actio_db_notify_fn fn, void *arg, actio_future **out);

/** Frees a notification an actor was told (see actio_db_listen). NULL
 * accepted. */
void actio_db_notification_free(actio_db_notification *n);

/* ---- the pool ---- */

/** The pool's counters (actio_db_stats_get). */
typedef struct actio_db_stats {
  unsigned connections; /**< open now */
  unsigned idle;        /**< open, nothing in flight, not in a transaction */
  unsigned connecting;  /**< being opened now */
  uint64_t connects;    /**< successful connects since spawn */
  uint64_t failures;    /**< failed connects and lost connections */
  uint64_t queries;     /**< completed, ok or not */
  uint64_t cancels;     /**< cancel requests sent to the server */
} actio_db_stats;

/** A snapshot of the pool's counters (summed over workers; zeros for an
 * actor that is not a database actor). Any thread. */
void actio_db_stats_get(actio_actor *db, actio_db_stats *out);

/** @} */

#ifdef __cplusplus
}
#endif
#endif /* ACTIO_DB_H */

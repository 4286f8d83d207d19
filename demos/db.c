/* db.c: query PostgreSQL as asyncpg would: a parameterized query, a COPY
 * of a few rows, a transaction, rows read back, and a server error.
 *   actio-demo-db DSN      e.g. 'host=127.0.0.1 dbname=app user=app'
 * Makes, then drops, a table actio_demo_accounts. */
#include <stdio.h>
#include <string.h>

#include <actio.h>

/* Waits for f like `await`; prints the server's error if it failed. */
static int await(actio_future *f, const char *what) {
  int st = actio_future_wait(f, -1);
  if (st != 0) {
    const actio_db_error *e = actio_db_error_get(f);
    fprintf(stderr, "%s failed: %s%s%s\n", what, actio_future_errmsg(f),
            e ? " SQLSTATE " : "", e ? e->sqlstate : "");
  }
  return st;
}

/* The body of the transaction: both updates or neither. actio_db_transaction
 * runs it again if the server reports a serialization failure. */
static int transfer(actio_db_txn *t, void *arg, actio_future **out) {
  (void)arg;
  actio_future *first;
  const char *from[] = {"alice", "30"}, *to[] = {"bob", "30"};
  int rc = actio_db_txn_query(t, "UPDATE actio_demo_accounts SET balance = balance - $2"
                                 " WHERE name = $1", 2, from, &first);
  if (rc != 0)
    return rc;
  actio_future_unref(first); /* queries in a transaction run in order */
  return actio_db_txn_query(t, "UPDATE actio_demo_accounts SET balance = balance + $2"
                               " WHERE name = $1", 2, to, out);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s DSN\n", argv[0]);
    return 2;
  }
  actio_runtime *rt;
  actio_actor *db;
  actio_future *f = NULL;
  /* pool = await asyncpg.create_pool(dsn, max_size=4) */
  actio_db_opts opts = {.dsn = argv[1], .max_connections = 4};
  if (actio_runtime_create(&rt, NULL) != 0 || actio_db_spawn(rt, &opts, &db) != 0)
    return 1;
  int failed = 1;

  /* await pool.fetchrow("SELECT $1::int + $2::int", 2, 40): the values
   * travel apart from the SQL, never pasted into it. */
  const char *p[] = {"2", "40"};
  if (actio_db_query(db, "SELECT $1::int + $2::int AS answer, current_setting('server_version')",
                     2, p, &f) != 0 || await(f, "query"))
    goto out;
  int32_t answer;
  const char *version;
  actio_db_int32(actio_future_value(f), 0, 0, &answer);
  actio_db_text(actio_future_value(f), 0, 1, &version);
  printf("SELECT $1 + $2 with 2 and 40: %d (PostgreSQL %s)\n", answer, version);
  actio_future_unref(f);
  f = NULL;

  /* await pool.execute(script): several statements, no parameters */
  if (actio_db_script(db, "DROP TABLE IF EXISTS actio_demo_accounts;"
                          "CREATE TABLE actio_demo_accounts (name text PRIMARY KEY,"
                          " balance int NOT NULL CHECK (balance >= 0))", &f) != 0 ||
      await(f, "create table"))
    goto out;
  actio_future_unref(f);
  f = NULL;

  /* await con.copy_records_to_table(...): rows in COPY's text format */
  if (actio_db_copy_in(db, NULL, "COPY actio_demo_accounts (name, balance) FROM STDIN", &f) != 0 ||
      await(f, "copy"))
    goto out;
  actio_db_copy *copy = actio_future_value(f); /* freed with f: aborts unless ended */
  const char rows[] = "alice\t100\nbob\t50\ncarol\t0\n";
  actio_future *w = NULL, *end = NULL;
  int st = actio_db_copy_write(copy, rows, strlen(rows), &w);
  if (st == 0 && (st = await(w, "copy write")) == 0 &&
      (st = actio_db_copy_end(copy, NULL, &end)) == 0 && (st = await(end, "copy end")) == 0)
    printf("COPY: %llu rows\n", (unsigned long long)actio_db_affected(actio_future_value(end)));
  actio_future_unref(w);
  actio_future_unref(end);
  if (st != 0)
    goto out;
  actio_future_unref(f);
  f = NULL;

  /* async with con.transaction(): two updates, committed together */
  if (actio_db_transaction(db, NULL, 3, transfer, NULL, &f) != 0 || await(f, "transaction"))
    goto out;
  actio_future_unref(f);
  f = NULL;
  printf("transaction: moved 30 from alice to bob\n");

  /* for row in await pool.fetch("SELECT ..."): */
  if (actio_db_query(db, "SELECT name, balance FROM actio_demo_accounts ORDER BY name", 0, NULL,
                     &f) != 0 || await(f, "select"))
    goto out;
  const actio_db_result *r = actio_future_value(f);
  for (size_t i = 0; i < actio_db_rows(r); i++) {
    const char *name;
    int32_t balance;
    actio_db_text(r, i, 0, &name);
    actio_db_int32(r, i, 1, &balance);
    printf("  %-6s %4d\n", name, balance);
  }
  actio_future_unref(f);
  f = NULL;

  /* A constraint the server enforces: the error carries its SQLSTATE. */
  const char *too_much[] = {"carol", "1"};
  if (actio_db_query(db, "UPDATE actio_demo_accounts SET balance = balance - $2 WHERE name = $1",
                     2, too_much, &f) == 0) {
    actio_future_wait(f, -1);
    const actio_db_error *e = actio_db_error_get(f);
    printf("as expected: %s (SQLSTATE %s)\n", e ? e->message : actio_future_errmsg(f),
           e ? e->sqlstate : "?");
    actio_future_unref(f);
    f = NULL;
  }

  if (actio_db_script(db, "DROP TABLE actio_demo_accounts", &f) != 0 || await(f, "drop table"))
    goto out;
  failed = 0;
out: /* f: the step that failed, or the last one */
  actio_future_unref(f);
  actio_runtime_destroy(rt);
  return failed;
}

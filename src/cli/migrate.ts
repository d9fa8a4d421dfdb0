/** `session-manager migrate`: applies database migrations and exits. */
import type { Config } from "../config.js";
import { openDatabase, startEmbeddedPostgres } from "../db/database.js";
import { migrate } from "../db/migrate.js";
import { createLogger } from "../log.js";

/** Applies pending migrations to DATABASE_URL (or the embedded database) and prints what it did. */
export async function migrateCommand(_args: string[], config: Config): Promise<void> {
  const log = createLogger(config.logLevel);
  const embedded =
    config.databaseUrl === null ? await startEmbeddedPostgres({ dir: config.embeddedPgDir, port: config.embeddedPgPort, log }) : null;
  const sql = openDatabase({ url: config.databaseUrl ?? embedded!.url, max: 1 });
  try {
    const applied = await migrate(sql);
    process.stdout.write(applied.length === 0 ? "database is up to date\n" : `applied migrations: ${applied.join(", ")}\n`);
  } finally {
    await sql.end();
    await embedded?.stop();
  }
}

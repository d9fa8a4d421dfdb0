/** `session-manager migrate`: applies database migrations and exits. */
import type { Config } from "../config.js";
import { migrate } from "../db/migrate.js";
import { createLogger } from "../log.js";
import { openCommandDatabase } from "./database.js";

/** Applies pending migrations to DATABASE_URL (or the embedded database) and prints what it did. */
export async function migrateCommand(_args: string[], config: Config): Promise<void> {
  const db = await openCommandDatabase(config, createLogger(config.logLevel), 1);
  try {
    const applied = await migrate(db.sql);
    process.stdout.write(applied.length === 0 ? "database is up to date\n" : `applied migrations: ${applied.join(", ")}\n`);
  } finally {
    await db.close();
  }
}

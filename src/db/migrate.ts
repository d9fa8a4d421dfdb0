/**
 * Applies the plain SQL migrations in `migrations/` with postgrator, inside one
 * transaction that holds an advisory lock, so replicas starting at the same
 * time apply each migration exactly once and never see a half-applied schema.
 * postgrator records applied versions (with checksums) in `schemaversion`.
 */
import { readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import Postgrator from "postgrator";
import type { Sql } from "./database.js";

/** The folder of the migration files (NNN.do.name.sql, forward only). */
export const MIGRATIONS_DIR = fileURLToPath(new URL("../../migrations", import.meta.url));

// Two-int advisory keys do not overlap the bigint keys used for user locks.
const LOCK_CLASS = 0x5e55;
const LOCK_MIGRATIONS = 1;

/**
 * Migrates the database to the newest version.
 *
 * @returns the versions applied by this call (empty if already current).
 */
export async function migrate(sql: Sql): Promise<number[]> {
  return sql.begin(async (tx) => {
    await tx`select pg_advisory_xact_lock(${LOCK_CLASS}::int, ${LOCK_MIGRATIONS}::int)`;
    const postgrator = new Postgrator({
      migrationPattern: `${MIGRATIONS_DIR}/*.sql`,
      driver: "pg",
      schemaTable: "schemaversion",
      validateChecksums: true,
      execQuery: async (query) => ({ rows: await tx.unsafe(query) }),
    });
    const applied = await postgrator.migrate();
    return applied.map((migration) => migration.version);
  });
}

/** Returns the newest migration version in MIGRATIONS_DIR (what a current database has applied). */
export function newestMigration(): number {
  return Math.max(0, ...readdirSync(MIGRATIONS_DIR).filter((name) => /^\d+\.do\./.test(name)).map((name) => Number(name.split(".")[0])));
}

/** Returns the newest version applied to the database (0 before any). @throws the driver's error when the database cannot be reached. */
export async function appliedMigration(sql: Sql): Promise<number> {
  const [row] = await sql<{ version: number | null }[]>`select max(version)::int as version from schemaversion`;
  return row?.version ?? 0;
}

/**
 * Creates a database of its own for tests that must see every row of a
 * table (sweepers end every lapsed session they find, so they would touch
 * other test files' sessions in the shared test database).
 */
import postgres from "postgres";
import { inject } from "vitest";
import { openDatabase, type Sql } from "../../src/db/database.js";
import { migrate } from "../../src/db/migrate.js";

/** Holds an isolated, migrated database. */
export interface IsolatedDatabase {
  url: string;
  sql: Sql;
  /** Closes `sql` and drops the database. */
  drop(): Promise<void>;
}

/** Creates and migrates a fresh database on the test server. */
export async function createIsolatedDatabase(prefix: string, max = 20): Promise<IsolatedDatabase> {
  const shared = new URL(inject("databaseUrl"));
  const name = `${prefix}_${Date.now()}_${process.pid}_${Math.floor(Math.random() * 1e6)}`;
  const admin = postgres(shared.toString(), { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  const url = new URL(shared);
  url.pathname = `/${name}`;
  const sql = openDatabase({ url: url.toString(), max, applicationName: "session-manager-test" });
  await migrate(sql);
  return {
    url: url.toString(),
    sql,
    async drop() {
      await sql.end();
      await admin.unsafe(`drop database if exists ${name} with (force)`);
      await admin.end();
    },
  };
}

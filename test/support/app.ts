/** Starts the real service (port 0) on the test database. */
import pino, { type Logger } from "pino";
import { inject } from "vitest";
import { startApp, type App } from "../../src/app.js";
import { loadConfig, type Config } from "../../src/config.js";
import { openDatabase, type Sql } from "../../src/db/database.js";

/** Returns the test database's URL (see global-setup.ts). */
export function databaseUrl(): string {
  return inject("databaseUrl");
}

/** Opens a pool on the test database. */
export function openTestDatabase(max = 10): Sql {
  return openDatabase({ url: databaseUrl(), max, applicationName: "session-manager-test" });
}

/**
 * Starts the service on a free port with test-friendly settings. Pass
 * `{ feedNotify: false }` to run without LISTEN/NOTIFY; TEST_FEED_NOTIFY=off
 * makes that the default for the whole suite. The sweeper is off unless
 * `sweepIntervalMs` is given. `log` replaces the silent logger.
 */
export async function startTestApp(overrides: Partial<Config> = {}, log?: Logger): Promise<App> {
  const config: Config = {
    ...loadConfig({}),
    host: "127.0.0.1",
    port: 0,
    // Tests of credentials (test/auth) turn it on; the rest test the service.
    auth: "off",
    databaseUrl: databaseUrl(),
    watchPollMs: 20,
    watchHeartbeatMs: 1_000,
    shutdownGraceMs: 500,
    feedNotify: process.env.TEST_FEED_NOTIFY !== "off",
    // Sweepers end lapsed sessions of every test file sharing the database; tests that want one turn it on.
    sweepIntervalMs: 0,
    // The event loop of an in-process app is the test's too; tests of load admission turn it on.
    watchAdmissionDelayMs: 0,
    ...overrides,
  };
  return startApp(config, log ?? pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" }));
}

let counter = 0;

/** Returns an id unique across test files and runs, for users and record ids. */
export function uniqueId(prefix: string): string {
  counter += 1;
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${counter}`;
}

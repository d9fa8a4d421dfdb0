/**
 * Profiles the service's write path in one process, without a transport
 * (`node --import tsx bench/write-path.ts`; not a test): an embedded
 * PostgreSQL 18 in a temporary folder, the service wired by src/wiring.ts,
 * and WRITE_PATH_CONCURRENCY (50) closed-loop callers per workload
 * (StartSession for new users, AppendSessionEvent round-robin over seeded
 * sessions, EndSession once per seeded session, HeartbeatSession). Prints,
 * per workload: calls/s, p50/p99, Node CPU ms per call, socket writes per
 * call (all of this process's sockets are PostgreSQL connections), calls per
 * transaction (the write batches' size), statements and
 * round trips per call (counted at the wire through postgres.js `debug` and
 * the socket's writes), and the wait events PostgreSQL backends were seen
 * in (sampled from pg_stat_activity every 5 ms).
 *
 * Environment: WRITE_PATH_SECONDS (5), WRITE_PATH_CONCURRENCY (50),
 * WRITE_PATH_POOL (20), WRITE_BATCH_MAX / WRITE_BATCH_WAIT_US (passed to the
 * service as in src/config.ts), WRITE_PATH_ONLY (comma-separated workloads),
 * WRITE_PATH_SAMPLE (1; 0 leaves out the wait sampler and the statement
 * counter, which cost CPU in this process: the sampler polls every 5 ms, and
 * the counter makes postgres.js capture a stack trace per statement).
 */
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { loadConfig } from "../src/config.js";
import { openDatabase, startEmbeddedPostgres } from "../src/db/database.js";
import { migrate } from "../src/db/migrate.js";
import { createLogger } from "../src/log.js";
import { wireService } from "../src/wiring.js";

const SECONDS = Number(process.env.WRITE_PATH_SECONDS ?? 5);
const CONCURRENCY = Number(process.env.WRITE_PATH_CONCURRENCY ?? 50);
const POOL = Number(process.env.WRITE_PATH_POOL ?? 20);
const SEED = Number(process.env.WRITE_PATH_SEED ?? 8000);
const SAMPLE = process.env.WRITE_PATH_SAMPLE !== "0";
const ONLY = (process.env.WRITE_PATH_ONLY ?? "start,append,heartbeat,end").split(",");
const config = loadConfig(process.env);

// Socket writes (each a syscall, and on loopback the receiver's wake-up): every client socket in this process is a PostgreSQL connection.
let socketWrites = 0;
const socketWrite = net.Socket.prototype.write;
net.Socket.prototype.write = function (this: net.Socket, ...args: Parameters<net.Socket["write"]>) {
  socketWrites++;
  return socketWrite.apply(this, args);
} as net.Socket["write"];

const tmp = mkdtempSync(join(os.tmpdir(), "session-manager-write-path-"));
chmodSync(tmp, 0o755);
const log = createLogger("silent");
const db = await startEmbeddedPostgres({ dir: join(tmp, "pg"), port: 20000 + Math.floor(Math.random() * 20000), log });
const admin = openDatabase({ url: db.url, max: 2 });
await migrate(admin);

let statements = 0;
const sql = postgres(db.url, {
  max: POOL,
  prepare: true,
  onnotice: () => {},
  // postgres.js captures a stack trace per statement when `debug` is set.
  debug: SAMPLE
    ? () => {
        statements++;
      }
    : undefined,
  connection: { application_name: "write-path", idle_in_transaction_session_timeout: 10_000, timezone: "UTC" },
});
// Transactions (begin calls: one per write batch, one per command retried alone).
let transactions = 0;
for (const name of ["begin", "beginPipelined"] as const) {
  const patched = sql as unknown as Record<string, (...args: unknown[]) => unknown>;
  const begin = patched[name]?.bind(sql);
  if (begin === undefined) continue;
  patched[name] = (...args: unknown[]) => {
    transactions++;
    return begin(...args);
  };
}
const wiring = wireService({
  ...config,
  sql,
  log,
  feedNotify: true,
  sweepIntervalMs: 0,
});
const service = wiring.service;

function percentile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

async function sampleWaits(stop: { done: boolean }): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  while (!stop.done && SAMPLE) {
    const rows = await admin<{ w: string }[]>`
      select coalesce(wait_event_type || ':' || wait_event, 'cpu') || ' ' || state
        || case when wait_event is null and state = 'active' and ${process.env.WRITE_PATH_QUERIES === "1"} then ' ' || left(regexp_replace(query, '[[:space:]]+', ' ', 'g'), 90) else '' end as w
      from pg_stat_activity where application_name = 'write-path' and state <> 'idle'
    `;
    for (const { w } of rows) counts.set(w, (counts.get(w) ?? 0) + 1);
    await new Promise((r) => setTimeout(r, 5));
  }
  return counts;
}

async function run(name: string, call: (i: number) => Promise<unknown>, limit = Infinity) {
  let next = 0;
  const latencies: number[] = [];
  let errors = 0;
  const firstError: string[] = [];
  const deadline = performance.now() + SECONDS * 1000;
  const s0 = statements;
  const w0 = socketWrites;
  const x0 = transactions;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const stop = { done: false };
  const waits = sampleWaits(stop);
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < deadline && next < limit) {
        const i = next++;
        const started = performance.now();
        try {
          await call(i);
        } catch (error) {
          errors++;
          if (firstError.length < 1) firstError.push(String(error));
        }
        latencies.push(performance.now() - started);
      }
    }),
  );
  const wall = (performance.now() - t0) / 1000;
  stop.done = true;
  const cpu = process.cpuUsage(cpu0);
  const waitCounts = [...(await waits).entries()].sort((a, b) => b[1] - a[1]).slice(0, 6);
  latencies.sort((a, b) => a - b);
  const n = latencies.length;
  console.log(
    `${name.padEnd(10)} ${(n / wall).toFixed(0).padStart(6)} calls/s  p50 ${percentile(latencies, 0.5).toFixed(2)} ms  p99 ${percentile(latencies, 0.99).toFixed(2)} ms  ` +
      `errors ${errors}  Node CPU ${((cpu.user + cpu.system) / 1000 / n).toFixed(3)} ms/call  statements ${((statements - s0) / n).toFixed(2)}/call  socket writes ${((socketWrites - w0) / n).toFixed(2)}/call  ` +
      `calls/transaction ${(n / Math.max(1, transactions - x0)).toFixed(2)}` +
      (firstError.length ? `  first error: ${firstError[0]}` : ""),
  );
  console.log(`           waits: ${waitCounts.map(([w, c]) => `${w} ${c}`).join(", ")}`);
}

try {
  const tag = Date.now().toString(36);
  // Seed sessions for append/heartbeat/end.
  const seeded: string[] = [];
  await Promise.all(
    Array.from({ length: 50 }, async (_, w) => {
      for (let i = w; i < SEED; i += 50) {
        const r = await service.startSession({
          recordId: `seed-${i}`, userId: `seed-${tag}-${i}`, performerId: "", eventTime: null, idleTimeoutMs: null,
          maxDurationMs: null, metadata: { channel: "voice" }, isTrainingData: false, conflictPolicy: "reject",
        });
        seeded[i] = r.session.sessionId;
      }
    }),
  );
  await admin`vacuum analyze`;
  await admin`checkpoint`;
  if (ONLY.includes("start")) {
    await run("start", (i) =>
      service.startSession({
        recordId: `start-${i}`, userId: `u-${tag}-${i}`, performerId: "", eventTime: null, idleTimeoutMs: null,
        maxDurationMs: null, metadata: { channel: "voice" }, isTrainingData: false, conflictPolicy: "reject",
      }),
    );
  }
  if (ONLY.includes("append")) {
    await run("append", (i) =>
      service.appendSessionEvent({
        recordId: `evt-${i}`, sessionId: seeded[i % seeded.length]!, type: "care.input.received", eventTime: null,
        source: "speech-worker", performerId: "", payload: { text: "hello" },
      }),
    );
  }
  if (ONLY.includes("heartbeat")) {
    await run("heartbeat", (i) => service.heartbeatSession(seeded[i % seeded.length]!));
  }
  if (ONLY.includes("end")) {
    await run("end", (i) => service.endSession({ recordId: `end-${i}`, sessionId: seeded[i]!, performerId: "", eventTime: null }), seeded.length);
  }
} finally {
  await wiring.close();
  await sql.end({ timeout: 2 });
  await admin.end({ timeout: 2 });
  await db.stop();
  rmSync(tmp, { recursive: true, force: true });
}
process.exit(0);

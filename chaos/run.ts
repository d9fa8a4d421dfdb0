/**
 * The chaos harness (issue 13): `npm run chaos -- [--seed N] [--duration S]
 * [--replicas N] [--storm-clients N]`. Starts its own PostgreSQL 18, one
 * replica per network namespace, writers and watchers; runs the nemesis for
 * `--duration` seconds; heals everything; checks that every replica serves
 * again within 30 s, then checks the database and every history
 * (checker.ts, test/replicas/feed-checker.ts, `session-manager verify
 * --all`). Prints a summary and writes it to .data/chaos-<seed>.json (the
 * full history to .data/chaos-<seed>-history.jsonl). Exit code 0 only with
 * 0 anomalies.
 */
import { execFile } from "node:child_process";
import { appendFileSync, chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs, promisify } from "node:util";
import { createBackoff } from "../src/client/retry.js";
import { openDatabase, type Sql } from "../src/db/database.js";
import { comparePositions, decodeCursor, type FeedPosition } from "../src/domain/cursor.js";
import { checkSubscriber, type CheckResult } from "../test/replicas/feed-checker.js";
import { createSubscriber, runSubscriber, type Subscriber } from "../test/replicas/feed-subscriber.js";
import { freePort } from "../test/support/ports.js";
import { waitFor } from "../test/support/wait.js";
import { checkDatabase, loadDatabase, type Anomaly } from "./checker.js";
import { createHistory, type Op } from "./history.js";
import { startLatencyProxy, type LatencyProxy } from "./latency-proxy.js";
import { createNetwork, removeNetworks, type ReplicaNet } from "./network.js";
import { FAULT_KINDS, runNemesis, type Fault } from "./nemesis.js";
import { startChaosPostgres, type ChaosPostgres } from "./postgres.js";
import { createApiKey, createReplicaSet, type ReplicaSet } from "./replicas.js";
import { createRng } from "./rng.js";
import { checkTheChecks } from "./self-check.js";
import { APPEND_TYPES, runStorm, runWriter, type CallPolicy, type StormReport, type WorkloadContext } from "./workload.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const TEMP_PREFIX = "sm-chaos-";
/** Every replica must serve again this long after the nemesis stops (issue 13). */
const RECOVERY_LIMIT_MS = 30_000;
/** The proxies' port on each replica's database address. */
const PROXY_PORT = 6432;

const { values: args } = parseArgs({
  options: {
    seed: { type: "string" },
    duration: { type: "string", default: "90" },
    replicas: { type: "string", default: "3" },
    writers: { type: "string", default: "8" },
    "storm-clients": { type: "string", default: "2000" },
  },
});
const seed = args.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(args.seed);
const durationS = Number(args.duration);
const replicaCount = Number(args.replicas);
const writerCount = Number(args.writers);
const stormClients = Number(args["storm-clients"]);
for (const [name, value] of Object.entries({ seed, duration: durationS, replicas: replicaCount, writers: writerCount, "storm-clients": stormClients })) {
  if (!Number.isInteger(value) || value < 0 || (name === "replicas" && (value < 1 || value > 250))) {
    console.error(`--${name}: expected a non-negative integer${name === "replicas" ? " from 1 to 250" : ""}, got ${String(value)}`);
    process.exit(2);
  }
}

const started = performance.now();
const clock = () => Math.round(performance.now() - started);
const log = (line: string) => console.log(`${new Date().toISOString().slice(11, 19)} ${line}`);

/** What must be undone at exit, latest first. */
const cleanups: (() => Promise<void> | void)[] = [];
let cleaning: Promise<void> | null = null;
function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    for (const step of cleanups.splice(0).reverse()) {
      try {
        await step();
      } catch (error) {
        console.error(`cleanup: ${String(error)}`);
      }
    }
  })();
  return cleaning;
}
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    log(`${signal}: cleaning up`);
    void cleanUp().then(() => process.exit(130));
  });
}

/** The file in a run's temp folder listing the pids of its replicas and proxy, one a line. */
const PID_FILE = "pids";

/**
 * Kills what a crashed earlier run left, by the pids it wrote down (each
 * checked to still be a replica or the proxy) and its PostgreSQL's
 * postmaster.pid, then removes its temp folder and the namespaces.
 */
function removeLeftovers(): void {
  for (const name of readdirSync(tmpdir()).filter((entry) => entry.startsWith(TEMP_PREFIX))) {
    const dir = join(tmpdir(), name);
    let pids: string[] = [];
    try {
      pids = readFileSync(join(dir, PID_FILE), "utf8").split("\n").filter((line) => line !== "");
    } catch {
      // it wrote none
    }
    for (const pid of pids) {
      try {
        const command = readFileSync(`/proc/${pid}/cmdline`, "utf8");
        if (command.includes("chaos/latency-proxy.ts") || command.includes("src/cli/index.ts")) {
          process.kill(Number(pid), "SIGKILL");
          log(`killed pid ${pid} of an earlier run`);
        }
      } catch {
        // exited long ago
      }
    }
    try {
      const pid = Number(readFileSync(join(dir, "pg", "postmaster.pid"), "utf8").split("\n")[0]);
      process.kill(pid, "SIGCONT");
      process.kill(pid, "SIGKILL");
      log(`killed the PostgreSQL (pid ${pid}) of an earlier run in ${dir}`);
    } catch {
      // no server left
    }
    rmSync(dir, { recursive: true, force: true });
  }
  removeNetworks();
}

/** Opens a stream at the live head and returns its caught_up cursor (where a watcher "from now" starts). */
async function headCursor(replicas: ReplicaSet): Promise<string> {
  return waitFor(
    async () => {
      const stop = new AbortController();
      const timer = setTimeout(() => stop.abort(), 5_000);
      try {
        for await (const response of replicas.alive()[0]!.grpc.watchSessionEvents({}, { signal: stop.signal })) {
          if (response.frame.case === "caughtUp") return response.frame.value.cursor;
        }
      } catch {
        // try again
      } finally {
        clearTimeout(timer);
        stop.abort();
      }
      return "";
    },
    { timeoutMs: 60_000, intervalMs: 200, message: "a caught_up cursor" },
  );
}

async function lastPosition(sql: Sql): Promise<FeedPosition | null> {
  const [row] = await sql<{ tx_id: string; id: string }[]>`
    select tx_id::text as tx_id, id::text as id
    from session_events
    -- the table's columns, not the text aliases above (those would sort "1000" before "999")
    order by session_events.tx_id desc, session_events.id desc
    limit 1
  `;
  return row === undefined ? null : { txId: BigInt(row.tx_id), id: BigInt(row.id) };
}

/** Runs `session-manager verify --all` on the chaos database; returns its exit code and output. */
async function verifyAll(url: string): Promise<{ code: number; output: string }> {
  try {
    const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", "src/cli/index.ts", "verify", "--all"], {
      cwd: ROOT,
      env: { ...process.env, DATABASE_URL: url, LOG_LEVEL: "warn" },
    });
    return { code: 0, output: stdout.trim() };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: failed.code ?? 1, output: `${failed.stdout ?? ""}${failed.stderr ?? ""}`.trim() };
  }
}

function tally(ops: Op[]): Record<string, { ok: number; fail: number; info: number }> {
  const table: Record<string, { ok: number; fail: number; info: number }> = {};
  for (const op of ops) {
    const row = (table[op.kind] ??= { ok: 0, fail: 0, info: 0 });
    if (op.outcome !== null) row[op.outcome] += 1;
  }
  return table;
}

async function main(): Promise<number> {
  log(`chaos: seed ${seed}, ${durationS} s of nemesis, ${replicaCount} replicas, ${writerCount} writers, storms of ${stormClients} clients`);
  log("stand-ins on this machine: partitions are blackhole routes in network namespaces (no iptables/nft); latency is chaos/latency-proxy.ts (no sch_netem)");
  if (process.getuid?.() !== 0) throw new Error("the chaos harness needs root (network namespaces, veth pairs, routes)");
  removeLeftovers();
  const rng = createRng(seed);

  const dir = mkdtempSync(join(tmpdir(), TEMP_PREFIX));
  chmodSync(dir, 0o755); // PostgreSQL runs as the postgres user
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  cleanups.push(() => removeNetworks());
  const nets: ReplicaNet[] = [];
  for (let n = 1; n <= replicaCount; n += 1) nets.push(createNetwork(n)); // throws (loudly) without namespaces

  const postgres: ChaosPostgres = await startChaosPostgres(dir, await freePort());
  cleanups.push(() => postgres.stop());
  log(`postgres 18 on 127.0.0.1:${postgres.port} (data in ${dir}/pg)`);
  const proxy: LatencyProxy = await startLatencyProxy(
    nets.map((net) => ({ listenHost: net.databaseAddress, listenPort: PROXY_PORT, upstreamHost: "127.0.0.1", upstreamPort: postgres.port })),
  );
  cleanups.push(() => proxy.stop());
  const track = (pid: number) => appendFileSync(join(dir, PID_FILE), `${pid}\n`);
  track(proxy.pid);
  const apiKey = await createApiKey(postgres.url);
  const databaseUrls = nets.map((net) => postgres.url.replace(`127.0.0.1:${postgres.port}`, `${net.databaseAddress}:${PROXY_PORT}`));
  const logDir = join(ROOT, ".data", `chaos-${seed}-logs`);
  rmSync(logDir, { recursive: true, force: true });
  mkdirSync(logDir, { recursive: true });
  const replicas = await createReplicaSet({
    logDir,
    onSpawn: track,
    nets,
    databaseUrls,
    apiKey,
    env: { SWEEP_INTERVAL_MS: "1000", WATCH_HEARTBEAT_MS: "1000", WATCH_POLL_MS: "100", SHUTDOWN_GRACE_MS: "500", DB_POOL_MAX: "8" },
  });
  cleanups.push(() => replicas.stopAll());
  log(`replicas serving: ${nets.map((net) => `${net.replicaAddress}:8080 (${net.namespace})`).join(", ")}`);

  // Clients.
  const history = createHistory(started);
  const stopWriters = new AbortController();
  const ctx: WorkloadContext = { replicas, history, signal: stopWriters.signal, attemptErrors: {}, errorSamples: {} };
  const policy: CallPolicy = { attemptTimeoutMs: 2_000, budgetMs: 20_000, backoff: () => createBackoff({ initialMs: 50, maxMs: 1_000 }) };
  const users = Array.from({ length: Math.ceil(writerCount / 2) }, (_, u) => `u${u}`);
  const writing = Array.from({ length: writerCount }, (_, w) =>
    runWriter(ctx, { name: `w${w}`, userId: users[Math.floor(w / 2)]!, rng: rng.fork(), policy, thinkMs: [10, 60] }),
  );

  const head = await headCursor(replicas);
  const subscribers: Subscriber[] = [
    createSubscriber("all-from-start", { userId: "", types: [] }, ""),
    createSubscriber("all-from-head", { userId: "", types: [] }, head),
    createSubscriber("user-u0", { userId: "u0", types: [] }, ""),
    createSubscriber("user-u1-from-head", { userId: users[1 % users.length]!, types: [] }, head),
    createSubscriber("care-prefix", { userId: "", types: ["care.*"] }, ""),
    createSubscriber("note-and-ended", { userId: "", types: [APPEND_TYPES[1], "session.ended"] }, head),
  ];
  const stopSubscribers = new AbortController();
  const subscribing = subscribers.map((subscriber, i) =>
    runSubscriber(subscriber, { replicas: () => replicas.alive(), signal: stopSubscribers.signal, churnMs: [500, 4_000], grpc: i % 2 === 0, offset: i }),
  );

  // Nemesis.
  const stopNemesis = AbortSignal.timeout(durationS * 1_000);
  // Recovery: every replica serves within 30 s of this moment, with nothing done by hand. The
  // probes start at once, while the fault in force heals (a storm may still be draining then).
  let recovering: Promise<{ replica: string; serving: boolean; recoveryMs: number | null }[]> = Promise.resolve([]);
  stopNemesis.addEventListener(
    "abort",
    () => {
      const nemesisEnd = performance.now();
      recovering = Promise.all(
        replicas.slots.map(async (_, i) => {
          const ok = await waitFor(() => replicas.serves(i, 2_000), { timeoutMs: RECOVERY_LIMIT_MS, intervalMs: 100 }).catch(() => false);
          return { replica: `r${i + 1}`, serving: ok, recoveryMs: ok ? Math.round(performance.now() - nemesisEnd) : null };
        }),
      );
    },
    { once: true },
  );
  let stormCount = 0;
  const nemesis = await runNemesis(
    rng.fork(),
    {
      replicas,
      postgres,
      proxy,
      latencyMs: 2_500,
      clock,
      log,
      storm: (jitter, outage) => runStorm(ctx, rng.fork(), { tag: `storm${++stormCount}`, clients: stormClients, jitter, outage }),
    },
    stopNemesis,
  );
  log(`nemesis stopped after ${nemesis.faults.length} faults; everything healed; waiting for every replica to serve`);

  const recovery = await recovering;
  for (const row of recovery) log(`${row.replica}: ${row.serving ? `serving ${row.recoveryMs} ms after the nemesis stopped` : "NOT serving 30 s after the nemesis stopped"}`);

  stopWriters.abort();
  await Promise.all(writing);
  log(`writers stopped: ${history.ops.length} operations`);

  // Watchers: let every one reach the last event, then stop them.
  const sql = openDatabase({ url: postgres.url, max: 2, applicationName: "chaos-checker" });
  cleanups.push(() => sql.end({ timeout: 1 }));
  const last = await lastPosition(sql);
  const behind = () => subscribers.filter((sub) => last !== null && (sub.cursor === "" || comparePositions(decodeCursor(sub.cursor), last) < 0));
  const caughtUp = await waitFor(() => behind().length === 0, { timeoutMs: 60_000, intervalMs: 100 }).catch(() => false);
  stopSubscribers.abort();
  await Promise.allSettled(subscribing);

  // Checks.
  const anomalies: Anomaly[] = [];
  if (!caughtUp) anomalies.push({ kind: "watch-stalled", detail: `watchers still behind the last event 60 s after the writers stopped: ${behind().map((sub) => sub.name).join(", ")}` });
  for (const row of recovery) if (!row.serving) anomalies.push({ kind: "recovery", detail: `replica ${row.replica} did not serve within 30 s after the nemesis stopped` });
  for (const crash of replicas.crashes) anomalies.push({ kind: "replica-crash", detail: crash });
  const unfinished = history.ops.filter((op) => op.outcome === null);
  if (unfinished.length > 0) anomalies.push({ kind: "harness", detail: `${unfinished.length} operations never completed`, ops: unfinished.slice(0, 5) });
  const rows = await loadDatabase(sql);
  anomalies.push(...checkDatabase(rows, history.ops));
  const verify = await verifyAll(postgres.url);
  if (verify.code !== 0) anomalies.push({ kind: "verify", detail: `session-manager verify --all exited ${verify.code}: ${verify.output}` });
  const feeds: CheckResult[] = await Promise.all(subscribers.map((subscriber) => checkSubscriber(sql, subscriber)));
  for (const feed of feeds) {
    if (feed.skips + feed.duplicates + feed.reorders + feed.unexpected > 0) {
      anomalies.push({ kind: "feed", detail: `watcher ${feed.name} (${feed.filter}): skips ${feed.skips}, duplicates ${feed.duplicates}, reorders ${feed.reorders}, unexpected ${feed.unexpected}; ${feed.firstAnomaly}` });
    }
    if (feed.expected === 0) anomalies.push({ kind: "feed", detail: `watcher ${feed.name} (${feed.filter}) expected nothing: the check would be empty` });
  }
  // Info'd operations: how many did take effect (stored) and how many did not.
  const stored = new Set([...rows.events, ...rows.records].map((row) => `${row.user_id}\u0000${row.record_id}`));
  const infos = history.ops.filter((op) => op.outcome === "info" && op.kind !== "heartbeat");
  const infoStored = infos.filter((op) => stored.has(`${op.userId}\u0000${op.recordId}`)).length;
  // Codes that are neither an answer nor a timeout/lost connection: defects of the service, not of the history.
  const findings = Object.entries(ctx.errorSamples)
    .filter(([what]) => / (INTERNAL|UNKNOWN|DATA_LOSS)/.test(what) && !what.endsWith("(client transport)"))
    .map(([what, message]) => `${what}: ${message}`);
  const blind = await checkTheChecks(sql, rows, history.ops, subscribers);
  anomalies.push(...blind);
  log(`self-check: ${blind.length === 0 ? "every planted fault was found (7 of 7)" : `${blind.length} planted faults went unnoticed`}`);

  // Summary.
  const faultsByKind = Object.fromEntries(FAULT_KINDS.map((kind) => [kind, nemesis.faults.filter((fault: Fault) => fault.kind === kind).length]));
  const summary = {
    seed,
    durationS,
    replicas: replicaCount,
    writers: writerCount,
    stormClients,
    wallS: Math.round(clock() / 1000),
    standIns: "partitions: blackhole routes in network namespaces (no iptables/nft); latency: chaos/latency-proxy.ts (no sch_netem)",
    operations: tally(history.ops),
    attemptErrors: ctx.attemptErrors,
    errorSamples: ctx.errorSamples,
    infoOperations: { stored: infoStored, notStored: infos.length - infoStored },
    findings,
    faultsByKind,
    faults: nemesis.faults,
    storms: nemesis.storms satisfies StormReport[],
    recovery,
    watchers: feeds.map(({ deliveredIds: _d, expectedIds: _e, ...feed }) => feed),
    database: { sessions: rows.sessions.length, events: rows.events.length, requestRecords: rows.records.length },
    verify: verify.output,
    anomalies,
  };
  mkdirSync(join(ROOT, ".data"), { recursive: true });
  writeFileSync(join(ROOT, ".data", `chaos-${seed}.json`), `${JSON.stringify(summary, (_, value: unknown) => (typeof value === "bigint" ? value.toString() : value), 2)}\n`);
  writeFileSync(join(ROOT, ".data", `chaos-${seed}-history.jsonl`), history.ops.map((op) => JSON.stringify(op)).join("\n") + "\n");

  console.log("\noperations by outcome:");
  console.table(summary.operations);
  console.log("attempt errors by code:", JSON.stringify(ctx.attemptErrors));
  for (const [what, message] of Object.entries(ctx.errorSamples)) console.log(`  first ${what}: ${message}`);
  console.log(`info operations (indeterminate): ${infoStored} took effect, ${infos.length - infoStored} did not`);
  console.log(`findings (not counted as anomalies): ${findings.length === 0 ? "none" : ""}`);
  for (const finding of findings) console.log(`- ${finding}`);
  console.log("faults by kind:", JSON.stringify(faultsByKind));
  for (const storm of nemesis.storms) {
    console.log(`retry storm: ${storm.clients} clients ${storm.jitter ? "with" : "without"} jitter, outage ${storm.outageMs} ms, drained ${storm.drainMs} ms after it, ${storm.attempts} attempts; ok ${storm.ok} fail ${storm.fail} info ${storm.info}`);
  }
  console.log("recovery:", recovery.map((row) => `${row.replica} ${row.recoveryMs ?? "never"} ms`).join(", "));
  console.log(`watchers: ${feeds.map((feed) => `${feed.name} ${feed.delivered}/${feed.expected} in ${feed.segments} streams`).join("; ")}`);
  console.log(`database: ${summary.database.sessions} sessions, ${summary.database.events} events, ${summary.database.requestRecords} request records; ${verify.output}`);
  console.log(`\nanomalies: ${anomalies.length}`);
  for (const anomaly of anomalies.slice(0, 50)) console.log(`- [${anomaly.kind}] ${anomaly.detail}`);
  console.log(`\nseed ${seed}; summary in .data/chaos-${seed}.json; wall time ${summary.wallS} s`);
  return anomalies.length === 0 ? 0 : 1;
}

let exitCode = 1;
try {
  exitCode = await main();
} catch (error) {
  console.error(`chaos: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  console.error(`seed ${seed}`);
  exitCode = 2;
} finally {
  await cleanUp();
}
process.exit(exitCode);

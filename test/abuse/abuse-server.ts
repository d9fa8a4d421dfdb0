/**
 * The server under abuse: a real replica as a child process (so its memory
 * is its own and can be read from /proc), ordinary clients that keep calling
 * it while an abuse runs, and the peak RSS of each abuse.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { expect } from "vitest";
import { databaseUrl, uniqueId } from "../support/app.js";
import { waitFor } from "../support/wait.js";
import { startReplica, type Replica } from "../replicas/replica-process.js";

/** The service path of every RPC. */
export const SERVICE = "/sessionmanager.v1.SessionManagerService";
/** A session id no session has. */
export const UNKNOWN_SESSION_ID = "sess_01ARZ3NDEKTSV4RRFFQ69G5FAV";
const MIB = 1024 * 1024;

/** Memory of a process, in MiB, from /proc/<pid>/status. */
export interface Memory {
  /** Resident set size now (VmRSS). */
  rssMiB: number;
  /** Peak resident set size since the process started or its peak was last reset (VmHWM). */
  peakMiB: number;
}

/** Reads VmRSS and VmHWM of `pid`. */
export function memoryOf(pid: number): Memory {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)![1]) / 1024;
  return { rssMiB: kib("VmRSS"), peakMiB: kib("VmHWM") };
}

/** Resets the peak RSS (VmHWM) of `pid` to its current RSS (Linux clear_refs, "5"). */
export function resetPeak(pid: number): void {
  writeFileSync(`/proc/${pid}/clear_refs`, "5");
}

/** Holds what one abuse did to the server. */
export interface AbuseReport {
  name: string;
  /** RSS when the abuse began, MiB. */
  beforeMiB: number;
  /** Peak RSS during the abuse, MiB. */
  peakMiB: number;
  /** Ordinary calls that succeeded while it ran. */
  ordinaryCalls: number;
  /** How long it ran, ms. */
  ms: number;
}

/** A replica under abuse, with its idle baseline. */
export interface AbuseServer {
  replica: Replica;
  port: number;
  pid: number;
  /** RSS of the idle server after its first calls, MiB. */
  baselineMiB: number;
  /** One line per abuse run so far. */
  reports: AbuseReport[];
  /** Stops the replica (SIGTERM) and prints the reports. */
  stop(): Promise<void>;
}

/** Starts a replica with `env` on the test database, warms it up and records its idle RSS. */
export async function startAbuseServer(name: string, env: Record<string, string> = {}): Promise<AbuseServer> {
  const replica = await startReplica(name, databaseUrl(), env);
  const pid = replica.child.pid!;
  // Warm up both paths (HTTP/1.1 and h2c) before taking the baseline.
  await runOrdinaryRound(replica, await startOrdinarySession(replica));
  const server: AbuseServer = {
    replica,
    port: replica.port,
    pid,
    baselineMiB: memoryOf(pid).rssMiB,
    reports: [],
    async stop() {
      await replica.kill("SIGTERM");
      const lines = server.reports.map((r) => `  ${r.name}: peak ${r.peakMiB.toFixed(0)} MiB (before ${r.beforeMiB.toFixed(0)}), ${r.ordinaryCalls} ordinary calls ok, ${r.ms} ms`);
      console.log(`abuse server ${name}: idle baseline RSS ${server.baselineMiB.toFixed(0)} MiB\n${lines.join("\n")}`);
    },
  };
  return server;
}

async function startOrdinarySession(replica: Replica): Promise<string> {
  const started = await replica.grpc.startSession({ recordId: uniqueId("rec"), userId: uniqueId("ordinary") });
  return started.session!.sessionId;
}

/** One round of ordinary calls: an append and a get over each client (Connect JSON over HTTP/1.1, gRPC over h2c). */
async function runOrdinaryRound(replica: Replica, sessionId: string): Promise<void> {
  const options = { timeoutMs: 15_000 };
  await replica.connect.appendSessionEvent({ recordId: uniqueId("rec"), sessionId, type: "care.ordinary", source: "abuse-test" }, options);
  await replica.grpc.getSession({ sessionId }, options);
  await replica.grpc.appendSessionEvent({ recordId: uniqueId("rec"), sessionId, type: "care.ordinary", source: "abuse-test" }, options);
  await replica.connect.getSession({ sessionId }, options);
}

/** Configures `underAbuse`. */
export interface UnderAbuseOptions {
  /** Largest peak RSS allowed, as MiB above the idle baseline. Default 200. */
  maxGrowthMiB?: number;
  /** Rounds of ordinary calls that must complete while the abuse runs; the abuse is repeated until they do. Default 3. */
  ordinaryRounds?: number;
}

/**
 * Runs `abuse` (again and again, until the ordinary clients completed
 * `ordinaryRounds` rounds while it ran) with an ordinary client calling
 * AppendSessionEvent and GetSession in a loop beside it. Every ordinary call
 * must succeed, the server must stay up, and its peak RSS must stay within
 * `maxGrowthMiB` of the idle baseline. Returns what each run of `abuse`
 * returned.
 */
export async function underAbuse<T>(server: AbuseServer, name: string, abuse: (run: number) => Promise<T>, options: UnderAbuseOptions = {}): Promise<T[]> {
  const { maxGrowthMiB = 200, ordinaryRounds = 3 } = options;
  const { replica, pid } = server;
  const sessionId = await startOrdinarySession(replica);
  const beforeMiB = memoryOf(pid).rssMiB;
  resetPeak(pid);
  const started = performance.now();
  let rounds = 0;
  let stop = false;
  let failure: { error: unknown } | null = null;
  const ordinary = (async () => {
    try {
      while (!stop) {
        await runOrdinaryRound(replica, sessionId);
        rounds++;
      }
    } catch (error) {
      failure = { error };
    }
  })();
  const results: T[] = [];
  try {
    do results.push(await abuse(results.length));
    while (failure === null && rounds < ordinaryRounds && replica.alive);
  } finally {
    stop = true;
    await ordinary;
  }
  if (failure !== null) throw new Error(`an ordinary call failed during ${name}`, { cause: (failure as { error: unknown }).error });
  expect(replica.alive, `server exited during ${name}:\n${replica.logs.join("\n")}`).toBe(true);
  // The server still serves after the abuse.
  await runOrdinaryRound(replica, sessionId);
  const peakMiB = memoryOf(pid).peakMiB;
  server.reports.push({ name, beforeMiB, peakMiB, ordinaryCalls: rounds * 4, ms: Math.round(performance.now() - started) });
  expect(peakMiB, `peak RSS during ${name} (idle baseline ${server.baselineMiB.toFixed(0)} MiB)`).toBeLessThan(server.baselineMiB + maxGrowthMiB);
  return results;
}

/** Waits until `pid`'s RSS is back within `slackMiB` of `baselineMiB` (memory an abuse held is released). */
export async function waitForRssBelow(server: AbuseServer, slackMiB: number): Promise<void> {
  await waitFor(() => memoryOf(server.pid).rssMiB < server.baselineMiB + slackMiB, {
    timeoutMs: 10_000,
    intervalMs: 100,
    message: () => `RSS ${memoryOf(server.pid).rssMiB.toFixed(0)} MiB to fall below ${(server.baselineMiB + slackMiB).toFixed(0)} MiB`,
  });
}

export { MIB };

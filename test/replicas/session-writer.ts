/**
 * A writer that runs one user's sessions (start, appends, end, again) through
 * whichever replicas are alive, retrying each call on transient errors with
 * the SAME request (same record_id), as the contract asks of clients.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { createBackoff } from "../../src/client/retry.js";
import { waitFor } from "../support/wait.js";
import type { Replica, SessionClient } from "./replica-process.js";

/** Lists the codes a writer retries when a server sent them: the replica or the database was unreachable. */
const RETRY_CODES = new Set([Code.Unavailable, Code.Aborted, Code.Unknown, Code.Canceled, Code.DeadlineExceeded]);

/** Counts a writer's work. */
export interface WriterStats {
  calls: number;
  /** Retries by the code that caused them. */
  retries: Record<string, number>;
}

/** Configures `runWriter`. */
export interface WriterOptions {
  userId: string;
  /** Appended types are `${typePrefix}.input` and `${typePrefix}.note`. */
  typePrefix: string;
  appendsPerSession: number;
  /** Returns the replicas that are alive now. */
  replicas: () => Replica[];
  /** Stops starting new calls (the current one is finished). */
  signal: AbortSignal;
  /** Spreads this writer's calls over the replicas. */
  offset: number;
}

/** Writes sessions for `options.userId` until the signal aborts; returns its stats. */
export async function runWriter(options: WriterOptions): Promise<WriterStats> {
  const stats: WriterStats = { calls: 0, retries: {} };
  const call = <T>(fn: (client: SessionClient) => Promise<T>) => callWithRetry(options, stats, fn);
  for (let session = 0; !options.signal.aborted; session += 1) {
    const key = `${options.userId}-s${session}`;
    const started = await call((client) => client.startSession({ recordId: `${key}-start`, userId: options.userId }));
    const sessionId = started.session!.sessionId;
    for (let i = 0; i < options.appendsPerSession && !options.signal.aborted; i += 1) {
      const type = `${options.typePrefix}.${i % 2 === 0 ? "input" : "note"}`;
      await call((client) => client.appendSessionEvent({ recordId: `${key}-a${i}`, sessionId, type, source: "replica-test", payload: { i } }));
    }
    await call((client) => client.endSession({ recordId: `${key}-end`, sessionId }));
  }
  return stats;
}

async function callWithRetry<T>(options: WriterOptions, stats: WriterStats, fn: (client: SessionClient) => Promise<T>): Promise<T> {
  const deadline = Date.now() + 60_000;
  // The CLI's reconnect backoff; waits end early only when the call's minute is up.
  const backoff = createBackoff({ initialMs: 40, maxMs: 500 });
  const giveUp = AbortSignal.timeout(60_000);
  for (let attempt = 0; ; attempt += 1) {
    const turn = options.offset + stats.calls + attempt;
    stats.calls += attempt === 0 ? 1 : 0;
    const alive = options.replicas();
    if (alive.length === 0) {
      // Every replica is down: wait for one to come back.
      await waitFor(() => options.replicas().length > 0, { timeoutMs: Math.max(0, deadline - Date.now()), intervalMs: 20, message: "a live replica" });
      continue;
    }
    const replica = alive[turn % alive.length]!;
    try {
      return await fn(turn % 2 === 0 ? replica.connect : replica.grpc);
    } catch (error) {
      const failure = ConnectError.from(error);
      // Errors raised by the client's transport (not sent by a server), e.g.
      // EPIPE while the replica dies, are network errors whatever their code.
      const transient = RETRY_CODES.has(failure.code) || !failure.isWireError;
      if (!transient || Date.now() > deadline) throw failure;
      const code = failure.isWireError ? Code[failure.code] : `${Code[failure.code]}(network)`;
      stats.retries[code] = (stats.retries[code] ?? 0) + 1;
      await backoff.wait(giveUp);
    }
  }
}

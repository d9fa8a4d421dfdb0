/**
 * The benchmark's writer, a child process of bench/watch.ts so its CPU and
 * event loop are separate from the subscribers': appends events at a steady
 * rate over its own HTTP/2 connection and reports, per event, when the
 * AppendSessionEvent call was sent and when it returned (ms since the
 * epoch, `performance.timeOrigin + performance.now()`).
 *
 * Protocol (IPC): the parent sends `{ type: "run", baseUrl, sessionIds,
 * rate, durationMs, runId }`; the writer sends `{ type: "acks", acks:
 * [eventId, sessionIndex, sentAt, ackedAt][] }` every 200 ms and finally
 * `{ type: "done", sent, acked, failed, failures (by code), cpuMs }`. Each
 * call gives up after 10 s (DEADLINE_EXCEEDED), so an overloaded server
 * shows as failed appends instead of a hang.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { SessionManagerService } from "../gen/sessionmanager/v1/session_manager_service_pb.js";
import { nowMs, ownCpuMs } from "./proc-stats.js";

/** Describes one write run. */
export interface WriteRun {
  type: "run";
  baseUrl: string;
  sessionIds: string[];
  /** Appends per second. */
  rate: number;
  durationMs: number;
  runId: string;
}

/** Names one acknowledged append: event id, session index, sent at, acked at. */
export type Ack = [string, number, number, number];

let client: Client<typeof SessionManagerService> | null = null;

async function write(run: WriteRun): Promise<void> {
  client ??= createClient(SessionManagerService, createGrpcTransport({ baseUrl: run.baseUrl }));
  const cpuStart = ownCpuMs();
  const intervalMs = 1000 / run.rate;
  const total = Math.floor((run.durationMs / 1000) * run.rate);
  let pending: Ack[] = [];
  let acked = 0;
  let failed = 0;
  const failures: Record<string, number> = {};
  const flush = setInterval(() => {
    if (pending.length === 0) return;
    process.send!({ type: "acks", acks: pending });
    pending = [];
  }, 200);
  const inFlight = new Set<Promise<void>>();
  const start = nowMs();
  for (let i = 0; i < total; i += 1) {
    const due = start + i * intervalMs;
    const wait = due - nowMs();
    if (wait > 1) await sleep(wait);
    const sessionIndex = i % run.sessionIds.length;
    const sentAt = nowMs();
    const call = client
      .appendSessionEvent({
        recordId: `${run.runId}-${i}`,
        sessionId: run.sessionIds[sessionIndex]!,
        type: "bench.tick",
        source: "bench-writer",
        payload: { i },
      }, { timeoutMs: 10_000 })
      .then(
        (response) => {
          acked += 1;
          pending.push([response.event!.eventId, sessionIndex, sentAt, nowMs()]);
        },
        (error: unknown) => {
          failed += 1;
          const connectError = ConnectError.from(error);
          const code = Code[connectError.code];
          failures[code] = (failures[code] ?? 0) + 1;
          // The first message of each code goes to stderr, so a run says what failed, not only how often.
          if (failures[code] === 1) process.stderr.write(`[writer] first ${code}: ${connectError.rawMessage}${connectError.cause ? ` (cause: ${String(connectError.cause)})` : ""}\n`);
        },
      )
      .finally(() => inFlight.delete(call));
    inFlight.add(call);
  }
  await Promise.all(inFlight);
  clearInterval(flush);
  if (pending.length > 0) process.send!({ type: "acks", acks: pending });
  process.send!({ type: "done", sent: total, acked, failed, failures, cpuMs: ownCpuMs() - cpuStart });
}

process.on("message", (message: WriteRun) => {
  if (message.type === "run") void write(message);
});

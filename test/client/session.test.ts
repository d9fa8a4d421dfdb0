/**
 * Session handles against a real server: background heartbeats keep a
 * session with a short idle timeout alive past it, stop while it is paused,
 * and stop when the session ends under the handle (ended by another client,
 * superseded), which the handle reports; dispose ends the session exactly
 * once, also when the body throws.
 */
import { type Interceptor } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../src/app.js";
import { createSessionManagerClient, EndReason, SessionEndedError, SessionState, type SessionEnd } from "../../src/client/index.js";
import { startTestApp, uniqueId } from "../support/app.js";
import { mintKey } from "../support/credentials.js";
import { startProxy } from "./proxy.js";
import { sleep, waitFor } from "../support/wait.js";

let app: App;
let writer: string;

beforeAll(async () => {
  app = await startTestApp({ auth: "required" });
  writer = (await mintKey(app.sql, "writer")).token;
});

afterAll(async () => {
  await app?.stop();
});

/** A client that counts the attempts of each method it sends. */
function countingClient() {
  const calls = new Map<string, number>();
  const count: Interceptor = (next) => (req) => {
    calls.set(req.method.name, (calls.get(req.method.name) ?? 0) + 1);
    return next(req);
  };
  const client = createSessionManagerClient({ baseUrl: `http://127.0.0.1:${app.port}`, credential: writer, interceptors: [count] });
  return { client, calls: (method: string) => calls.get(method) ?? 0 };
}

async function endedEvents(sessionId: string): Promise<number> {
  const [row] = await app.sql<{ n: number }[]>`select count(*)::int as n from session_events where session_id = ${sessionId} and type = 'session.ended'`;
  return row!.n;
}

describe("openSession", () => {
  it("heartbeats every third of the idle timeout, so the session outlives its idle timeout", async () => {
    const { client, calls } = countingClient();
    await using session = await client.openSession({ userId: uniqueId("handle-alive"), idleTimeoutMs: 3_000 });
    expect(session.heartbeatIntervalMs).toBe(1_000);
    // Wait (by the database clock) until the session is older than two idle timeouts.
    await waitFor(
      async () => {
        const [row] = await app.sql<{ old: boolean }[]>`
          select now() - start_time > interval '6 seconds' as old from sessions where session_id = ${session.sessionId}`;
        return row!.old;
      },
      { timeoutMs: 20_000, intervalMs: 200, message: "the session to be 6 s old" },
    );
    const now = await client.getSession({ sessionId: session.sessionId });
    expect(SessionState[now.state]).toBe("ACTIVE");
    expect(calls("HeartbeatSession")).toBeGreaterThanOrEqual(4);
    const [row] = await app.sql<{ lag_ms: number }[]>`
      select (extract(epoch from now() - last_activity_time) * 1000)::float8 as lag_ms from sessions where session_id = ${session.sessionId}`;
    expect(row!.lag_ms).toBeLessThan(3_000);
    expect(session.ended).toBe(false);
  });

  it("sends no heartbeat while the session is paused, and starts again on resume", async () => {
    const { client, calls } = countingClient();
    await using session = await client.openSession({ userId: uniqueId("handle-paused"), idleTimeoutMs: 1_000 });
    await waitFor(() => calls("HeartbeatSession") >= 1, { message: "a first heartbeat" });
    await session.pause();
    expect(session.paused).toBe(true);
    const beforePause = calls("HeartbeatSession");
    await sleep(1_200); // proves that no heartbeat is sent during more than three periods of 333 ms
    expect(calls("HeartbeatSession")).toBe(beforePause);
    expect(SessionState[(await client.getSession({ sessionId: session.sessionId })).state]).toBe("PAUSED");

    await session.resume();
    await waitFor(() => calls("HeartbeatSession") > beforePause, { message: "a heartbeat after resume" });
    await session.append("care.handle.resumed", { ok: true });
  });

  it("ends the session exactly once on dispose, also when the body throws", async () => {
    const { client, calls } = countingClient();
    let sessionId = "";
    let handle: { ended: boolean; signal: AbortSignal } | undefined;
    const run = async () => {
      await using session = await client.openSession({ userId: uniqueId("handle-throws"), idleTimeoutMs: 60_000 });
      sessionId = session.sessionId;
      handle = session;
      const event = await session.append("care.handle.work", { step: 1 });
      expect(event.seq).toBe(2n);
      throw new Error("the work failed");
    };
    await expect(run()).rejects.toThrow("the work failed");
    expect(handle!.ended).toBe(true);
    expect(handle!.signal.aborted).toBe(true);
    expect(await endedEvents(sessionId)).toBe(1);
    const [row] = await app.sql<{ state: string; end_reason: string }[]>`select state, end_reason from sessions where session_id = ${sessionId}`;
    expect(row).toEqual({ state: "ended", end_reason: "client" });
    expect(calls("EndSession")).toBe(1);
  });

  it("withSession ends the session when the body returns, once however often end and dispose are called", async () => {
    const { client, calls } = countingClient();
    let sessionId = "";
    const result = await client.withSession({ userId: uniqueId("handle-with") }, async (session) => {
      sessionId = session.sessionId;
      await session.append("care.handle.work");
      await session.update({ metadata: { reviewed: false }, isTrainingData: true });
      const [first, second] = await Promise.all([session.end(), session.end()]);
      expect(second).toBe(first);
      expect(first.byThisHandle).toBe(true);
      expect(EndReason[first.endReason]).toBe("CLIENT");
      return "done";
    });
    expect(result).toBe("done");
    expect(calls("EndSession")).toBe(1);
    expect(await endedEvents(sessionId)).toBe(1);
    const stored = await client.getSession({ sessionId });
    expect(stored.isTrainingData).toBe(true);
    expect(stored.metadata).toEqual({ reviewed: false });
  });

  it("reports a session ended by another client, and stops heartbeating", async () => {
    const { client, calls } = countingClient();
    const ends: SessionEnd[] = [];
    const userId = uniqueId("handle-ended-under");
    const session = await client.openSession({ userId, idleTimeoutMs: 1_000, onEnded: (end) => ends.push(end) });
    await waitFor(() => calls("HeartbeatSession") >= 1, { message: "a first heartbeat" });

    const other = createSessionManagerClient({ baseUrl: `http://127.0.0.1:${app.port}`, transport: "grpc", credential: writer });
    await other.endSession({ sessionId: session.sessionId });
    await waitFor(() => session.ended, { message: "the handle to report the end" });
    expect(ends).toHaveLength(1);
    expect(EndReason[ends[0]!.endReason]).toBe("CLIENT");
    expect(ends[0]!.byThisHandle).toBe(false);
    expect(session.signal.reason).toBeInstanceOf(SessionEndedError);

    const afterEnd = calls("HeartbeatSession");
    await sleep(1_000); // proves that no heartbeat is sent during three periods after the end
    expect(calls("HeartbeatSession")).toBe(afterEnd);
    await session.close();
    expect(await endedEvents(session.sessionId)).toBe(1);
    expect(ends).toHaveLength(1);
  });

  it("reports a session superseded by a newer one of its user", async () => {
    const { client } = countingClient();
    const userId = uniqueId("handle-superseded");
    const ends: SessionEnd[] = [];
    await using first = await client.openSession({ userId, idleTimeoutMs: 1_000, onEnded: (end) => ends.push(end) });
    await using second = await client.openSession({ userId, conflictPolicy: "supersede" });
    await waitFor(() => first.ended, { message: "the first handle to report the end" });
    expect(EndReason[first.endInfo!.endReason]).toBe("SUPERSEDED");
    expect(first.endInfo!.session.sessionId).toBe(first.sessionId);
    expect(ends).toHaveLength(1);
    expect(second.ended).toBe(false);
    expect(await endedEvents(first.sessionId)).toBe(1);
  });

  it("survives its replica being stopped in the middle of the body: every append written once, the session ended once", async () => {
    let replica = await startTestApp({ auth: "required" });
    const proxy = await startProxy(replica.port);
    const attempts = new Map<string, number>();
    const countRecordIds: Interceptor = (next) => (req) => {
      const recordId = (req.message as { recordId?: string }).recordId;
      if (recordId) attempts.set(recordId, (attempts.get(recordId) ?? 0) + 1);
      return next(req);
    };
    const client = createSessionManagerClient({
      baseUrl: `http://127.0.0.1:${proxy.port}`,
      transport: "grpc",
      credential: writer,
      interceptors: [countRecordIds],
      retry: { initialDelayMs: 50, maxDelayMs: 500, maxAttempts: 20 },
    });
    let sessionId = "";
    try {
      await client.withSession({ userId: uniqueId("session-restart") }, async (session) => {
        sessionId = session.sessionId;
        await session.append("care.before", { n: 1 });
        // The replica goes away mid-body; a new one on the same database takes its place behind the proxy.
        proxy.setUpstream(null);
        proxy.cutAll();
        await replica.stop();
        const appending = session.append("care.during", { n: 2 });
        replica = await startTestApp({ auth: "required" });
        proxy.setUpstream(replica.port);
        await appending;
        await session.append("care.after", { n: 3 });
      });
    } finally {
      await replica.stop();
      await proxy.close();
    }
    const rows = await app.sql<{ type: string; record_id: string }[]>`
      select type, record_id from session_events where session_id = ${sessionId} order by seq`;
    expect(rows.map((row) => row.type)).toEqual(["session.started", "care.before", "care.during", "care.after", "session.ended"]);
    // The append sent while the replica was gone was retried with its one record_id.
    const during = rows.find((row) => row.type === "care.during")!.record_id;
    expect(attempts.get(during)).toBeGreaterThan(1);
  });
});

/**
 * Session policies in memory (real handlers, real service, an isolated real
 * database with no sweeper running): lazy enforcement of idle timeouts and
 * max durations, supersede, pause/resume, UpdateSession.
 */
import { timestampDate, timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConflictPolicy } from "../../gen/sessionmanager/v1/session_manager_service_pb.js";
import { EndReason, SessionState } from "../../gen/sessionmanager/v1/session_pb.js";
import { uniqueId } from "../support/app.js";
import { createIsolatedDatabase, type IsolatedDatabase } from "../support/isolated-database.js";
import { createInMemoryClient, errorMetadata, expectError, type SessionClient } from "../support/rpc.js";

let db: IsolatedDatabase;
let client: SessionClient;
beforeAll(async () => {
  db = await createIsolatedDatabase("sm_policies");
  client = createInMemoryClient(db.sql).client;
});
afterAll(() => db.drop());

/**
 * Moves a session's clock back by `ms`, as if that much time had passed since
 * it started: start, last activity and both deadlines (the generated
 * `deadline` follows). Its events keep their times: session_events refuses
 * UPDATE, and the rules read only the session row.
 */
async function backdate(sessionId: string, ms: number): Promise<void> {
  const rows = await db.sql`
    update sessions
    set start_time = start_time - ${ms} * interval '1 millisecond',
      last_activity_time = last_activity_time - ${ms} * interval '1 millisecond',
      expire_time = expire_time - ${ms} * interval '1 millisecond',
      max_end_time = max_end_time - ${ms} * interval '1 millisecond'
    where session_id = ${sessionId}
    returning session_id
  `;
  expect(rows).toHaveLength(1);
}

/** Returns the instant `ms` before `time`. */
function before(time: Timestamp | undefined, ms: number): Date {
  return new Date(timestampDate(time!).getTime() - ms);
}

async function eventTypes(sessionId: string): Promise<string[]> {
  const rows = await db.sql<{ type: string }[]>`select type from session_events where session_id = ${sessionId} order by seq`;
  return rows.map((row) => row.type);
}

async function start(userId: string, extra: Record<string, unknown> = {}) {
  return client.startSession({ recordId: uniqueId("rec"), userId, ...extra });
}

describe("lazy enforcement (no sweeper has run)", () => {
  it("reports a session past its idle deadline as ENDED at its last activity, refuses activity, lists it as ended", async () => {
    const userId = uniqueId("user");
    const { session } = await start(userId, { idleTimeout: { seconds: 1n } });
    const sessionId = session!.sessionId;
    await backdate(sessionId, 1_100);
    const { session: got } = await client.getSession({ sessionId });
    expect(got).toMatchObject({ state: SessionState.ENDED, endReason: EndReason.IDLE_TIMEOUT, lastSeq: 1n });
    expect(timestampDate(got!.endTime!)).toEqual(before(session!.lastActivityTime, 1_100));
    expect(got!.expireTime).toBeUndefined();
    await expectError(client.heartbeatSession({ sessionId }), Code.FailedPrecondition, "SESSION_ENDED");
    await expectError(client.appendSessionEvent({ recordId: uniqueId("rec"), sessionId, type: "t", source: "s" }), Code.FailedPrecondition, "SESSION_ENDED");
    await expectError(client.pauseSession({ recordId: uniqueId("rec"), sessionId }), Code.FailedPrecondition, "SESSION_ENDED");
    expect((await client.listSessions({ userId, state: SessionState.ACTIVE })).sessions).toHaveLength(0);
    expect((await client.listSessions({ userId, state: SessionState.ENDED })).sessions.map((s) => s.sessionId)).toEqual([sessionId]);
    expect(await eventTypes(sessionId)).toEqual(["session.started"]);
  });

  it("records the timeout end first when the user starts again, in the same transaction", async () => {
    const userId = uniqueId("user");
    const first = (await start(userId, { idleTimeout: { seconds: 1n } })).session!;
    await backdate(first.sessionId, 1_100);
    const second = (await start(userId)).session!;
    expect(second).toMatchObject({ sessionIndex: 2n, previousSessionId: first.sessionId, state: SessionState.ACTIVE });
    expect(await eventTypes(first.sessionId)).toEqual(["session.started", "session.ended"]);
    const { events } = await client.listSessionEvents({ sessionId: first.sessionId });
    expect(events[1]!.payload).toEqual({ end_reason: "END_REASON_IDLE_TIMEOUT" });
    expect(events[1]!.recordId).toMatch(/^system\//);
    const { session: ended } = await client.getSession({ sessionId: first.sessionId });
    expect(ended).toMatchObject({ state: SessionState.ENDED, endReason: EndReason.IDLE_TIMEOUT, lastSeq: 2n });
    expect(timestampDate(ended!.endTime!)).toEqual(before(first.lastActivityTime, 1_100));
  });

  it("answers EndSession on a lapsed session with its timeout end, recorded once", async () => {
    const userId = uniqueId("user");
    const { session } = await start(userId, { idleTimeout: { seconds: 1n } });
    await backdate(session!.sessionId, 1_100);
    const first = await client.endSession({ recordId: uniqueId("rec"), sessionId: session!.sessionId });
    const second = await client.endSession({ recordId: uniqueId("rec"), sessionId: session!.sessionId });
    expect(first.session!.endReason).toBe(EndReason.IDLE_TIMEOUT);
    expect(second.event).toEqual(first.event);
    expect(await eventTypes(session!.sessionId)).toEqual(["session.started", "session.ended"]);
  });

  it("ends a session at start + max_duration whatever its activity", async () => {
    const userId = uniqueId("user");
    const { session } = await start(userId, { maxDuration: { seconds: 1n }, idleTimeout: { seconds: 60n } });
    await backdate(session!.sessionId, 500);
    await client.heartbeatSession({ sessionId: session!.sessionId });
    await backdate(session!.sessionId, 600);
    const { session: got } = await client.getSession({ sessionId: session!.sessionId });
    expect(got).toMatchObject({ state: SessionState.ENDED, endReason: EndReason.MAX_DURATION });
    expect(timestampDate(got!.endTime!).getTime() - before(session!.startTime, 1_100).getTime()).toBe(1_000);
  });
});

describe("conflict policy", () => {
  it("supersedes the open session atomically", async () => {
    const userId = uniqueId("user");
    const first = (await start(userId)).session!;
    const second = (await start(userId, { conflictPolicy: ConflictPolicy.SUPERSEDE })).session!;
    expect(second).toMatchObject({ sessionIndex: 2n, previousSessionId: first.sessionId });
    const { session: old } = await client.getSession({ sessionId: first.sessionId });
    expect(old).toMatchObject({ state: SessionState.ENDED, endReason: EndReason.SUPERSEDED });
    const { events } = await client.listSessionEvents({ sessionId: first.sessionId });
    expect(events.at(-1)!.payload).toEqual({ end_reason: "END_REASON_SUPERSEDED", superseded_by: second.sessionId });
  });

  it("keeps a consistent chain under 50 parallel superseding starts", async () => {
    const userId = uniqueId("user");
    const results = await Promise.all(Array.from({ length: 50 }, () => start(userId, { conflictPolicy: ConflictPolicy.SUPERSEDE })));
    expect(results).toHaveLength(50);
    const { sessions } = await client.listSessions({ userId, pageSize: 100 });
    const byIndex = [...sessions].sort((a, b) => Number(a.sessionIndex - b.sessionIndex));
    expect(byIndex.map((s) => Number(s.sessionIndex))).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    expect(sessions.filter((s) => s.state !== SessionState.ENDED)).toHaveLength(1);
    expect(byIndex.at(-1)!.state).toBe(SessionState.ACTIVE);
    for (const [i, session] of byIndex.entries()) {
      expect(session.previousSessionId).toBe(i === 0 ? "" : byIndex[i - 1]!.sessionId);
      if (i < 49) expect(session.endReason).toBe(EndReason.SUPERSEDED);
    }
  });

  it("rejects by default and names the open session", async () => {
    const userId = uniqueId("user");
    const first = (await start(userId)).session!;
    const error = await expectError(start(userId, { conflictPolicy: ConflictPolicy.REJECT }), Code.FailedPrecondition, "ACTIVE_SESSION_EXISTS");
    expect(errorMetadata(error).session_id).toBe(first.sessionId);
  });
});

describe("pause and resume", () => {
  it("stops the idle clock while paused, refuses activity, keeps the open slot, and resumes", async () => {
    const userId = uniqueId("user");
    const { session } = await start(userId, { idleTimeout: { seconds: 1n } });
    const sessionId = session!.sessionId;
    const paused = (await client.pauseSession({ recordId: uniqueId("rec"), sessionId })).session!;
    expect(paused.state).toBe(SessionState.PAUSED);
    expect(paused.expireTime).toBeUndefined();
    await backdate(sessionId, 1_200);
    expect((await client.getSession({ sessionId })).session!.state).toBe(SessionState.PAUSED);
    await expectError(client.heartbeatSession({ sessionId }), Code.FailedPrecondition, "SESSION_PAUSED");
    await expectError(client.appendSessionEvent({ recordId: uniqueId("rec"), sessionId, type: "t", source: "s" }), Code.FailedPrecondition, "SESSION_PAUSED");
    await expectError(start(userId), Code.FailedPrecondition, "ACTIVE_SESSION_EXISTS");
    const again = (await client.pauseSession({ recordId: uniqueId("rec"), sessionId })).session!;
    // Unchanged, but for the clock moved back above.
    const backdated = { startTime: timestampFromDate(before(paused.startTime, 1_200)), lastActivityTime: timestampFromDate(before(paused.lastActivityTime, 1_200)) };
    expect(again).toEqual({ ...paused, ...backdated });
    const resumed = (await client.resumeSession({ recordId: uniqueId("rec"), sessionId })).session!;
    expect(resumed.state).toBe(SessionState.ACTIVE);
    expect(timestampDate(resumed.expireTime!).getTime() - timestampDate(resumed.lastActivityTime!).getTime()).toBe(1_000);
    await client.heartbeatSession({ sessionId });
    expect(await eventTypes(sessionId)).toEqual(["session.started", "session.paused", "session.resumed"]);
  });

  it("remembers a pause that changed nothing: its retry after a resume does not pause again", async () => {
    const { session } = await start(uniqueId("user"));
    const sessionId = session!.sessionId;
    await client.pauseSession({ recordId: uniqueId("rec"), sessionId });
    const noop = { recordId: uniqueId("rec"), sessionId };
    expect((await client.pauseSession(noop)).session!.state).toBe(SessionState.PAUSED);
    await client.resumeSession({ recordId: uniqueId("rec"), sessionId });
    expect((await client.pauseSession(noop)).session!.state).toBe(SessionState.ACTIVE);
    await expectError(client.resumeSession(noop), Code.AlreadyExists, "RECORD_ID_REUSED");
    await expectError(client.appendSessionEvent({ ...noop, type: "t", source: "s" }), Code.AlreadyExists, "RECORD_ID_REUSED");
    await expectError(start(session!.userId, { recordId: noop.recordId }), Code.AlreadyExists, "RECORD_ID_REUSED");
    expect(await eventTypes(sessionId)).toEqual(["session.started", "session.paused", "session.resumed"]);
  });

  it("replays by record_id, rejects a reuse, and refuses unknown or ended sessions", async () => {
    const userId = uniqueId("user");
    const { session } = await start(userId);
    const sessionId = session!.sessionId;
    const recordId = uniqueId("rec");
    await client.pauseSession({ recordId, sessionId });
    await client.pauseSession({ recordId, sessionId });
    await expectError(client.resumeSession({ recordId, sessionId }), Code.AlreadyExists, "RECORD_ID_REUSED");
    await client.endSession({ recordId: uniqueId("rec"), sessionId });
    await expectError(client.resumeSession({ recordId: uniqueId("rec"), sessionId }), Code.FailedPrecondition, "SESSION_ENDED");
    await expectError(client.pauseSession({ recordId: uniqueId("rec"), sessionId: "sess_01ARZ3NDEKTSV4RRFFQ69G5FAV" }), Code.NotFound, "SESSION_NOT_FOUND");
    expect(await eventTypes(sessionId)).toEqual(["session.started", "session.paused", "session.ended"]);
  });
});

describe("UpdateSession", () => {
  it("updates masked fields only, records old and new values, and works after the end", async () => {
    const userId = uniqueId("user");
    const { session } = await start(userId, { metadata: { a: 1 } });
    const sessionId = session!.sessionId;
    const updated = await client.updateSession({
      recordId: uniqueId("rec"),
      session: { sessionId, metadata: { a: 2 }, isTrainingData: true },
      updateMask: { paths: ["metadata"] },
    });
    expect(updated.session).toMatchObject({ metadata: { a: 2 }, isTrainingData: false, lastSeq: 2n });
    await client.endSession({ recordId: uniqueId("rec"), sessionId });
    const curated = await client.updateSession({ recordId: uniqueId("rec"), session: { sessionId, isTrainingData: true }, updateMask: { paths: ["is_training_data"] } });
    expect(curated.session).toMatchObject({ isTrainingData: true, state: SessionState.ENDED, metadata: { a: 2 } });
    const { events } = await client.listSessionEvents({ sessionId });
    expect(events.map((e) => e.type)).toEqual(["session.started", "session.updated", "session.ended", "session.updated"]);
    expect(events[1]!.payload).toEqual({ update_mask: ["metadata"], changes: { metadata: { old: { a: 1 }, new: { a: 2 } } } });
  });

  it("records a lapse before an update, so the log stays in time order", async () => {
    const { session } = await start(uniqueId("user"), { idleTimeout: { seconds: 1n } });
    await backdate(session!.sessionId, 1_100);
    const { session: updated } = await client.updateSession({ recordId: uniqueId("rec"), session: { sessionId: session!.sessionId, isTrainingData: true }, updateMask: { paths: ["is_training_data"] } });
    expect(updated).toMatchObject({ state: SessionState.ENDED, endReason: EndReason.IDLE_TIMEOUT, isTrainingData: true, lastSeq: 3n });
    expect(await eventTypes(session!.sessionId)).toEqual(["session.started", "session.ended", "session.updated"]);
  });

  it("replays by record_id and rejects a reuse", async () => {
    const { session } = await start(uniqueId("user"));
    const request = { recordId: uniqueId("rec"), session: { sessionId: session!.sessionId, isTrainingData: true }, updateMask: { paths: ["is_training_data"] } };
    await client.updateSession(request);
    await client.updateSession(request);
    expect(await eventTypes(session!.sessionId)).toEqual(["session.started", "session.updated"]);
    await expectError(client.updateSession({ ...request, session: { sessionId: session!.sessionId, isTrainingData: false } }), Code.AlreadyExists, "RECORD_ID_REUSED");
  });

  it.each([
    ["an unknown mask path", { paths: ["state"] }],
    ["an empty mask", { paths: [] }],
    ["a repeated path", { paths: ["metadata", "metadata"] }],
    ["no mask", undefined],
  ])("rejects %s (INVALID_ARGUMENT, INVALID_REQUEST)", async (_name, updateMask) => {
    const { session } = await start(uniqueId("user"));
    await expectError(
      client.updateSession({ recordId: uniqueId("rec"), session: { sessionId: session!.sessionId, metadata: { x: 1 } }, updateMask }),
      Code.InvalidArgument,
      "INVALID_REQUEST",
    );
    expect(await eventTypes(session!.sessionId)).toEqual(["session.started"]);
  });

  it("rejects oversized metadata and unknown sessions", async () => {
    const { session } = await start(uniqueId("user"));
    await expectError(
      client.updateSession({ recordId: uniqueId("rec"), session: { sessionId: session!.sessionId, metadata: { big: "x".repeat(17_000) } }, updateMask: { paths: ["metadata"] } }),
      Code.InvalidArgument,
      "INVALID_REQUEST",
    );
    await expectError(
      client.updateSession({ recordId: uniqueId("rec"), session: { sessionId: "sess_01ARZ3NDEKTSV4RRFFQ69G5FAV" }, updateMask: { paths: ["is_training_data"] } }),
      Code.NotFound,
      "SESSION_NOT_FOUND",
    );
  });
});

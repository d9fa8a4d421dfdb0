/**
 * The lifecycle RPCs in memory (real handlers, real service, real Postgres):
 * behaviour, idempotency (AIP-155) and every error code and reason.
 */
import { equals } from "@bufbuild/protobuf";
import { durationMs, timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterAll, describe, expect, it } from "vitest";
import { StartSessionResponseSchema, EndSessionResponseSchema } from "../../gen/sessionmanager/v1/session_manager_service_pb.js";
import { EndReason, SessionState } from "../../gen/sessionmanager/v1/session_pb.js";
import { encodePageToken } from "../../src/domain/page-token.js";
import { openTestDatabase, uniqueId } from "../support/app.js";
import { waitFor } from "../support/wait.js";
import { createInMemoryClient, errorMetadata, expectError } from "../support/rpc.js";

const sql = openTestDatabase(20);
const { client } = createInMemoryClient(sql, { defaultIdleTimeoutMs: 600_000 });
afterAll(() => sql.end());

async function start(userId = uniqueId("user"), extra: Record<string, unknown> = {}) {
  return client.startSession({ recordId: uniqueId("rec"), userId, ...extra });
}

async function storedCounts(userId: string) {
  const [row] = await sql<{ sessions: string; events: string; open: string }[]>`
    select
      (select count(*) from sessions where user_id = ${userId}) as sessions,
      (select count(*) from session_events where user_id = ${userId}) as events,
      (select count(*) from sessions where user_id = ${userId} and state <> 'ended') as open
  `;
  return { sessions: Number(row!.sessions), events: Number(row!.events), open: Number(row!.open) };
}

describe("StartSession", () => {
  it("starts an active session with its session.started event as seq 1", async () => {
    const userId = uniqueId("user");
    const res = await client.startSession({
      recordId: uniqueId("rec"),
      userId,
      performerId: "caregiver-7",
      metadata: { channel: "voice", tags: ["a", "b"] },
      isTrainingData: true,
      idleTimeout: { seconds: 90n },
    });
    const session = res.session!;
    expect(session.sessionId).toMatch(/^sess_[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(session.userId).toBe(userId);
    expect(session.state).toBe(SessionState.ACTIVE);
    expect(session.lastSeq).toBe(1n);
    expect(session.isTrainingData).toBe(true);
    expect(session.metadata).toEqual({ channel: "voice", tags: ["a", "b"] });
    expect(durationMs(session.idleTimeout!)).toBe(90_000);
    const startMs = timestampDate(session.startTime!).getTime();
    expect(timestampDate(session.expireTime!).getTime() - startMs).toBe(90_000);
    expect(session.endTime).toBeUndefined();
    expect(Math.abs(startMs - Date.now())).toBeLessThan(60_000);

    const event = res.event!;
    expect(event.eventId).toMatch(/^evt_[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(event).toMatchObject({ seq: 1n, type: "session.started", source: "session_manager", userId, performerId: "caregiver-7" });
    expect(event.sessionId).toBe(session.sessionId);
    expect(event.cursor).not.toBe("");
    expect(event.payload).toMatchObject({ idle_timeout: "90s", is_training_data: true });
  });

  it("uses the configured default idle timeout and the caller's event_time", async () => {
    const eventTime = new Date("2026-01-02T03:04:05.678Z");
    const res = await start(undefined, { eventTime: timestampFromDate(eventTime) });
    expect(durationMs(res.session!.idleTimeout!)).toBe(600_000);
    expect(timestampDate(res.event!.eventTime!).toISOString()).toBe(eventTime.toISOString());
    expect(res.event!.receiveTime).toEqual(res.session!.startTime);
  });

  it("returns the original response to a retry and writes nothing", async () => {
    const userId = uniqueId("user");
    const request = { recordId: uniqueId("rec"), userId, metadata: { b: 1, a: { d: 2, c: 3 } } };
    const first = await client.startSession(request);
    await client.heartbeatSession({ sessionId: first.session!.sessionId });
    const again = await client.startSession(request);
    expect(equals(StartSessionResponseSchema, again, first)).toBe(true);
    expect(await storedCounts(userId)).toEqual({ sessions: 1, events: 1, open: 1 });
  });

  it("rejects a reused record_id with a different request (ALREADY_EXISTS, RECORD_ID_REUSED)", async () => {
    const userId = uniqueId("user");
    const recordId = uniqueId("rec");
    await client.startSession({ recordId, userId, metadata: { v: 1 } });
    const error = await expectError(
      client.startSession({ recordId, userId, metadata: { v: 2 } }),
      Code.AlreadyExists,
      "RECORD_ID_REUSED",
    );
    expect(errorMetadata(error).record_id).toBe(recordId);
    expect(await storedCounts(userId)).toEqual({ sessions: 1, events: 1, open: 1 });
  });

  it("rejects a second open session (FAILED_PRECONDITION, ACTIVE_SESSION_EXISTS) and names the open one", async () => {
    const userId = uniqueId("user");
    const first = await start(userId);
    const error = await expectError(start(userId), Code.FailedPrecondition, "ACTIVE_SESSION_EXISTS");
    expect(errorMetadata(error).session_id).toBe(first.session!.sessionId);
    expect(await storedCounts(userId)).toEqual({ sessions: 1, events: 1, open: 1 });
  });

  it("gives concurrent duplicates (same record_id) one write and identical answers", async () => {
    const userId = uniqueId("user");
    const request = { recordId: uniqueId("rec"), userId, metadata: { k: "v" } };
    const results = await Promise.all(Array.from({ length: 20 }, () => client.startSession(request)));
    for (const result of results) expect(equals(StartSessionResponseSchema, result, results[0]!)).toBe(true);
    expect(await storedCounts(userId)).toEqual({ sessions: 1, events: 1, open: 1 });
  });

  it("lets exactly one of 50 parallel starts for one user win", async () => {
    const userId = uniqueId("user");
    const settled = await Promise.allSettled(Array.from({ length: 50 }, () => start(userId)));
    const won = settled.filter((result) => result.status === "fulfilled");
    expect(won).toHaveLength(1);
    for (const result of settled) {
      if (result.status === "rejected") {
        await expectError(Promise.reject(result.reason), Code.FailedPrecondition, "ACTIVE_SESSION_EXISTS");
      }
    }
    expect(await storedCounts(userId)).toEqual({ sessions: 1, events: 1, open: 1 });
  });

  it("starts a new session once the previous one ended", async () => {
    const userId = uniqueId("user");
    const first = await start(userId);
    await client.endSession({ recordId: uniqueId("rec"), sessionId: first.session!.sessionId });
    const second = await start(userId);
    expect(second.session!.sessionId).not.toBe(first.session!.sessionId);
    expect(await storedCounts(userId)).toEqual({ sessions: 2, events: 3, open: 1 });
  });

  it.each([
    ["empty user_id", { userId: "" }],
    ["user_id with a space", { userId: "a b" }],
    ["user_id of 129 characters", { userId: "u".repeat(129) }],
    ["empty record_id", { recordId: "" }],
    ["idle_timeout under 1 s", { idleTimeout: { nanos: 999_000_000 } }],
    ["idle_timeout over 7 days", { idleTimeout: { seconds: 604_801n } }],
    ["event_time before 2000", { eventTime: { seconds: 0n } }],
    ["metadata over 16 KiB", { metadata: { big: "x".repeat(16 * 1024) } }],
    ["metadata with NUL", { metadata: { "bad\u0000key": 1 } }],
    ["metadata string with NUL", { metadata: { k: "a\u0000b" } }],
  ])("rejects %s (INVALID_ARGUMENT, INVALID_REQUEST) and stores nothing", async (_name, override) => {
    const userId = uniqueId("user");
    await expectError(
      client.startSession({ recordId: uniqueId("rec"), userId, ...override }),
      Code.InvalidArgument,
      "INVALID_REQUEST",
    );
    expect(await storedCounts(userId)).toEqual({ sessions: 0, events: 0, open: 0 });
  });
});

describe("EndSession", () => {
  it("ends a session with END_REASON_CLIENT and a session.ended event", async () => {
    const started = await start();
    const sessionId = started.session!.sessionId;
    const res = await client.endSession({ recordId: uniqueId("rec"), sessionId, performerId: "nurse-1" });
    expect(res.session).toMatchObject({ state: SessionState.ENDED, endReason: EndReason.CLIENT, lastSeq: 2n });
    expect(res.session!.expireTime).toBeUndefined();
    expect(res.session!.endTime).toEqual(res.event!.receiveTime);
    expect(res.event).toMatchObject({ seq: 2n, type: "session.ended", source: "session_manager", performerId: "nurse-1" });
    expect(res.event!.payload).toEqual({ end_reason: "END_REASON_CLIENT" });
  });

  it("returns the original end to a retry and to a new request on an ended session", async () => {
    const started = await start();
    const sessionId = started.session!.sessionId;
    const request = { recordId: uniqueId("rec"), sessionId };
    const first = await client.endSession(request);
    const retry = await client.endSession(request);
    const other = await client.endSession({ recordId: uniqueId("rec"), sessionId });
    expect(equals(EndSessionResponseSchema, retry, first)).toBe(true);
    expect(equals(EndSessionResponseSchema, other, first)).toBe(true);
    expect(await storedCounts(started.session!.userId)).toEqual({ sessions: 1, events: 2, open: 0 });
  });

  it("returns NOT_FOUND, SESSION_NOT_FOUND for an unknown session", async () => {
    await expectError(
      client.endSession({ recordId: uniqueId("rec"), sessionId: "sess_01ARZ3NDEKTSV4RRFFQ69G5FAV" }),
      Code.NotFound,
      "SESSION_NOT_FOUND",
    );
  });

  it("rejects a record_id that started the session (ALREADY_EXISTS, RECORD_ID_REUSED)", async () => {
    const started = await start();
    await expectError(
      client.endSession({ recordId: started.event!.recordId, sessionId: started.session!.sessionId }),
      Code.AlreadyExists,
      "RECORD_ID_REUSED",
    );
    expect((await client.getSession({ sessionId: started.session!.sessionId })).session!.state).toBe(SessionState.ACTIVE);
  });

  it("rejects a malformed session_id (INVALID_ARGUMENT, INVALID_REQUEST)", async () => {
    await expectError(client.endSession({ recordId: uniqueId("rec"), sessionId: "sess_nope" }), Code.InvalidArgument, "INVALID_REQUEST");
  });
});

describe("HeartbeatSession and GetSession", () => {
  it("moves last_activity_time and expire_time without writing an event", async () => {
    const started = await start(undefined, { idleTimeout: { seconds: 60n } });
    const sessionId = started.session!.sessionId;
    // The database clock must move past the start: wait until it has, not for a fixed time.
    await waitFor(async () => (await sql<[{ later: boolean }]>`select clock_timestamp() > ${timestampDate(started.session!.lastActivityTime!)} as later`)[0].later);
    const { session } = await client.heartbeatSession({ sessionId });
    const last = timestampDate(session!.lastActivityTime!).getTime();
    expect(last).toBeGreaterThan(timestampDate(started.session!.lastActivityTime!).getTime());
    expect(timestampDate(session!.expireTime!).getTime() - last).toBe(60_000);
    expect(session!.lastSeq).toBe(1n);
    const got = await client.getSession({ sessionId });
    expect(got.session).toEqual(session);
  });

  it("returns FAILED_PRECONDITION, SESSION_ENDED on an ended session and changes nothing", async () => {
    const started = await start();
    const sessionId = started.session!.sessionId;
    const ended = await client.endSession({ recordId: uniqueId("rec"), sessionId });
    await expectError(client.heartbeatSession({ sessionId }), Code.FailedPrecondition, "SESSION_ENDED");
    expect((await client.getSession({ sessionId })).session).toEqual(ended.session);
  });

  it("returns NOT_FOUND, SESSION_NOT_FOUND for unknown ids", async () => {
    const sessionId = "sess_01ARZ3NDEKTSV4RRFFQ69G5FAV";
    await expectError(client.heartbeatSession({ sessionId }), Code.NotFound, "SESSION_NOT_FOUND");
    await expectError(client.getSession({ sessionId }), Code.NotFound, "SESSION_NOT_FOUND");
  });
});

describe("AppendSessionEvent", () => {
  it("appends events with dense seq and counts as activity", async () => {
    const started = await start();
    const sessionId = started.session!.sessionId;
    const seqs: bigint[] = [];
    for (let i = 0; i < 3; i++) {
      const { event } = await client.appendSessionEvent({
        recordId: uniqueId("rec"),
        sessionId,
        type: "care.input.received",
        source: "speech-worker",
        payload: { i },
      });
      seqs.push(event!.seq);
      expect(event).toMatchObject({ type: "care.input.received", source: "speech-worker", payload: { i } });
    }
    expect(seqs).toEqual([2n, 3n, 4n]);
    const { session } = await client.getSession({ sessionId });
    expect(session!.lastSeq).toBe(4n);
    expect(timestampDate(session!.lastActivityTime!).getTime()).toBeGreaterThan(timestampDate(started.session!.lastActivityTime!).getTime() - 1);
  });

  it("assigns dense seq under concurrent appends", async () => {
    const started = await start();
    const sessionId = started.session!.sessionId;
    const events = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        client.appendSessionEvent({ recordId: uniqueId("rec"), sessionId, type: "t", source: "s", payload: { i } }),
      ),
    );
    expect(events.map((e) => Number(e.event!.seq)).sort((a, b) => a - b)).toEqual(Array.from({ length: 30 }, (_, i) => i + 2));
  });

  it("replays a retry and rejects a reuse", async () => {
    const started = await start();
    const request = { recordId: uniqueId("rec"), sessionId: started.session!.sessionId, type: "t", source: "s", payload: { a: 1 } };
    const first = await client.appendSessionEvent(request);
    const retry = await client.appendSessionEvent(request);
    expect(retry.event).toEqual(first.event);
    await expectError(client.appendSessionEvent({ ...request, payload: { a: 2 } }), Code.AlreadyExists, "RECORD_ID_REUSED");
    expect(await storedCounts(started.session!.userId)).toEqual({ sessions: 1, events: 2, open: 1 });
  });

  it("replays a retry that arrives after the session ended", async () => {
    const started = await start();
    const sessionId = started.session!.sessionId;
    const request = { recordId: uniqueId("rec"), sessionId, type: "t", source: "s" };
    const first = await client.appendSessionEvent(request);
    await client.endSession({ recordId: uniqueId("rec"), sessionId });
    expect((await client.appendSessionEvent(request)).event).toEqual(first.event);
  });

  it("returns FAILED_PRECONDITION, SESSION_ENDED on an ended session", async () => {
    const started = await start();
    const sessionId = started.session!.sessionId;
    await client.endSession({ recordId: uniqueId("rec"), sessionId });
    await expectError(
      client.appendSessionEvent({ recordId: uniqueId("rec"), sessionId, type: "t", source: "s" }),
      Code.FailedPrecondition,
      "SESSION_ENDED",
    );
    expect(await storedCounts(started.session!.userId)).toEqual({ sessions: 1, events: 2, open: 0 });
  });

  it("returns NOT_FOUND, SESSION_NOT_FOUND for an unknown session", async () => {
    await expectError(
      client.appendSessionEvent({ recordId: uniqueId("rec"), sessionId: "sess_01ARZ3NDEKTSV4RRFFQ69G5FAV", type: "t", source: "s" }),
      Code.NotFound,
      "SESSION_NOT_FOUND",
    );
  });

  it("rejects lifecycle types (INVALID_ARGUMENT, RESERVED_EVENT_TYPE)", async () => {
    const started = await start();
    await expectError(
      client.appendSessionEvent({ recordId: uniqueId("rec"), sessionId: started.session!.sessionId, type: "session.ended", source: "s" }),
      Code.InvalidArgument,
      "RESERVED_EVENT_TYPE",
    );
    expect(await storedCounts(started.session!.userId)).toEqual({ sessions: 1, events: 1, open: 1 });
  });

  it.each([
    ["payload over 64 KiB", { payload: { big: "x".repeat(64 * 1024) } }],
    ["payload with NUL", { payload: { k: ["\u0000"] } }],
    ["missing source", { source: "" }],
    ["type with a slash", { type: "a/b" }],
  ])("rejects %s (INVALID_ARGUMENT, INVALID_REQUEST)", async (_name, override) => {
    const started = await start();
    await expectError(
      client.appendSessionEvent({ recordId: uniqueId("rec"), sessionId: started.session!.sessionId, type: "t", source: "s", ...override }),
      Code.InvalidArgument,
      "INVALID_REQUEST",
    );
    expect(await storedCounts(started.session!.userId)).toEqual({ sessions: 1, events: 1, open: 1 });
  });
});

describe("ListSessions and ListSessionEvents", () => {
  it("lists a user's sessions newest first across pages, with a state filter", async () => {
    const userId = uniqueId("user");
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const started = await start(userId);
      ids.push(started.session!.sessionId);
      if (i < 4) await client.endSession({ recordId: uniqueId("rec"), sessionId: started.session!.sessionId });
    }
    const seen: string[] = [];
    let pageToken = "";
    do {
      const page = await client.listSessions({ userId, pageSize: 2, pageToken });
      expect(page.sessions.length).toBeLessThanOrEqual(2);
      seen.push(...page.sessions.map((s) => s.sessionId));
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    expect(seen).toEqual([...ids].reverse());
    const active = await client.listSessions({ userId, state: SessionState.ACTIVE });
    expect(active.sessions.map((s) => s.sessionId)).toEqual([ids[4]]);
    const ended = await client.listSessions({ userId, state: SessionState.ENDED });
    expect(ended.sessions).toHaveLength(4);
  });

  it("rejects a page token from other filters or a forged one (INVALID_ARGUMENT, INVALID_PAGE_TOKEN)", async () => {
    const userId = uniqueId("user");
    for (let i = 0; i < 2; i++) {
      const started = await start(userId);
      await client.endSession({ recordId: uniqueId("rec"), sessionId: started.session!.sessionId });
    }
    const page = await client.listSessions({ userId, pageSize: 1 });
    expect(page.nextPageToken).not.toBe("");
    await expectError(client.listSessions({ userId: uniqueId("user"), pageSize: 1, pageToken: page.nextPageToken }), Code.InvalidArgument, "INVALID_PAGE_TOKEN");
    await expectError(client.listSessions({ userId, pageToken: "garbage" }), Code.InvalidArgument, "INVALID_PAGE_TOKEN");
  });

  it.each([
    ["a year-0 time", { t: "0000-01-01T00:00:00.000Z", s: "sess_01ARZ3NDEKTSV4RRFFQ69G5FAV" }],
    ["a far-future time", { t: "+275760-09-13T00:00:00.000Z", s: "sess_01ARZ3NDEKTSV4RRFFQ69G5FAV" }],
    ["a NUL in the session id", { t: "2026-01-01T00:00:00.000Z", s: "sess_\u0000" }],
  ])("rejects a forged page token with %s (INVALID_PAGE_TOKEN, never INTERNAL)", async (_name, position) => {
    const userId = uniqueId("user");
    const pageToken = encodePageToken({ userId, state: null }, position);
    await expectError(client.listSessions({ userId, pageToken }), Code.InvalidArgument, "INVALID_PAGE_TOKEN");
  });

  it("rejects page_size over 1000 (INVALID_ARGUMENT, INVALID_REQUEST)", async () => {
    await expectError(client.listSessions({ pageSize: 1001 }), Code.InvalidArgument, "INVALID_REQUEST");
  });

  it("pages through a session's events in seq order", async () => {
    const started = await start();
    const sessionId = started.session!.sessionId;
    for (let i = 0; i < 6; i++) {
      await client.appendSessionEvent({ recordId: uniqueId("rec"), sessionId, type: "t", source: "s", payload: { i } });
    }
    await client.endSession({ recordId: uniqueId("rec"), sessionId });
    const seqs: bigint[] = [];
    let pageToken = "";
    do {
      const page = await client.listSessionEvents({ sessionId, pageSize: 3, pageToken });
      seqs.push(...page.events.map((e) => e.seq));
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    expect(seqs).toEqual([1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n]);
    await expectError(client.listSessionEvents({ sessionId: "sess_01ARZ3NDEKTSV4RRFFQ69G5FAV" }), Code.NotFound, "SESSION_NOT_FOUND");
  });
});

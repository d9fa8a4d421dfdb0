import { describe, expect, it } from "vitest";
import { DomainError } from "../../src/domain/errors.js";
import {
  checkAppend,
  isReplay,
  planAppend,
  planEnd,
  planHeartbeat,
  planStart,
  requestHash,
  sessionAsStarted,
  type StartCommand,
} from "../../src/domain/session.js";

const now = new Date("2026-11-22T10:00:00.000Z");
const later = new Date("2026-11-22T10:05:00.000Z");
const command: StartCommand = {
  recordId: "r1",
  userId: "u1",
  performerId: "",
  eventTime: null,
  idleTimeoutMs: null,
  metadata: { a: 1 },
  isTrainingData: false,
};

function reasonOf(run: () => unknown): string | null {
  try {
    run();
    return null;
  } catch (error) {
    return error instanceof DomainError ? error.reason : "other";
  }
}

describe("session rules", () => {
  it("starts active, with seq 1 and the default idle deadline", () => {
    const { session, event } = planStart(command, "h", null, now, 60_000);
    expect(session).toMatchObject({ state: "active", lastSeq: 1, idleTimeoutMs: 60_000, startTime: now, endTime: null });
    expect(session.expireTime).toEqual(new Date(now.getTime() + 60_000));
    expect(event).toMatchObject({ seq: 1, type: "session.started", source: "session_manager", eventTime: now, receiveTime: now });
  });

  it("refuses a second open session and names it", () => {
    const open = planStart(command, "h", null, now, 60_000).session;
    expect(reasonOf(() => planStart(command, "h", open, now, 60_000))).toBe("ACTIVE_SESSION_EXISTS");
  });

  it("ends with END_REASON_CLIENT at the next seq and clears the deadline", () => {
    const open = planStart(command, "h", null, now, 60_000).session;
    const { session, event } = planEnd(open, { recordId: "r2", sessionId: open.sessionId, performerId: "p", eventTime: null }, "h2", later);
    expect(session).toMatchObject({ state: "ended", endReason: "client", endTime: later, expireTime: null, lastSeq: 2 });
    expect(event).toMatchObject({ seq: 2, type: "session.ended", payload: { end_reason: "END_REASON_CLIENT" } });
  });

  it("moves the deadline on heartbeat and append, and refuses both once ended", () => {
    const open = planStart(command, "h", null, now, 60_000).session;
    expect(planHeartbeat(open, later).expireTime).toEqual(new Date(later.getTime() + 60_000));
    const append = { recordId: "r3", sessionId: open.sessionId, type: "care.x", eventTime: null, source: "w", performerId: "", payload: {} };
    const appended = planAppend(open, append, "h3", later);
    expect(appended.session.lastSeq).toBe(2);
    expect(appended.event).toMatchObject({ seq: 2, type: "care.x", receiveTime: later });
    const ended = planEnd(open, { recordId: "r2", sessionId: open.sessionId, performerId: "", eventTime: null }, "h2", later).session;
    expect(reasonOf(() => planHeartbeat(ended, later))).toBe("SESSION_ENDED");
    expect(reasonOf(() => planAppend(ended, append, "h3", later))).toBe("SESSION_ENDED");
  });

  it("reserves the session. type prefix", () => {
    const append = { recordId: "r", sessionId: "s", type: "session.paused", eventTime: null, source: "w", performerId: "", payload: {} };
    expect(reasonOf(() => checkAppend(append))).toBe("RESERVED_EVENT_TYPE");
    expect(reasonOf(() => checkAppend({ ...append, type: "sessions.x" }))).toBeNull();
  });

  it("fingerprints requests without their record_id, independent of key order", () => {
    expect(requestHash("StartSession", command)).toBe(requestHash("StartSession", { ...command, recordId: "other" }));
    expect(requestHash("StartSession", command)).not.toBe(requestHash("StartSession", { ...command, metadata: { a: 2 } }));
    expect(requestHash("StartSession", command)).not.toBe(requestHash("EndSession", command));
    expect(requestHash("X", { recordId: "r", m: { a: 1, b: 2 } })).toBe(requestHash("X", { recordId: "r", m: { b: 2, a: 1 } }));
  });

  it("tells a retry from a reused record_id", () => {
    const { event } = planStart(command, "hash-1", null, now, 60_000);
    expect(isReplay(null, "hash-1")).toBe(false);
    expect(isReplay(event, "hash-1")).toBe(true);
    expect(reasonOf(() => isReplay(event, "hash-2"))).toBe("RECORD_ID_REUSED");
  });

  it("rebuilds the session as it was started", () => {
    const started = planStart(command, "h", null, now, 60_000);
    const ended = planEnd(started.session, { recordId: "r2", sessionId: started.session.sessionId, performerId: "", eventTime: null }, "h", later).session;
    expect(sessionAsStarted(ended, started.event)).toEqual(started.session);
  });
});

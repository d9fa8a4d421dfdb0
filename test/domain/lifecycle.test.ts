import { describe, expect, it } from "vitest";
import { chainHash, verifyChain } from "../../src/domain/chain.js";
import { checkAppend, classifyRequest, requestHash, type StartCommand } from "../../src/domain/commands.js";
import { DomainError } from "../../src/domain/errors.js";
import {
  planAppend,
  planEnd,
  planHeartbeat,
  planLapse,
  planMakeRoom,
  planPause,
  planResume,
  planStart,
  planUpdate,
  sessionAsStarted,
  type SessionChange,
} from "../../src/domain/lifecycle.js";
import { effectiveSession, lapseOf, type NewSessionEvent, type Session } from "../../src/domain/session.js";

const t0 = new Date("2026-11-22T10:00:00.000Z");
const at = (seconds: number) => new Date(t0.getTime() + seconds * 1000);
const command: StartCommand = {
  recordId: "r1",
  userId: "u1",
  performerId: "",
  eventTime: null,
  idleTimeoutMs: 60_000,
  maxDurationMs: null,
  metadata: { a: 1 },
  isTrainingData: false,
  conflictPolicy: "reject",
};
const start = (overrides: Partial<StartCommand> = {}, previous: Session | null = null) =>
  planStart({ ...command, ...overrides }, "h", previous, "sess_01ARZ3NDEKTSV4RRFFQ69G5FAV", t0, 1_800_000);
const endCommand = { recordId: "r2", sessionId: "s", performerId: "", eventTime: null };
const append = { recordId: "r3", sessionId: "s", type: "care.x", eventTime: null, source: "w", performerId: "", payload: { n: 1 } };

function reasonOf(run: () => unknown): string | null {
  try {
    run();
    return null;
  } catch (error) {
    return error instanceof DomainError ? error.reason : `unexpected ${String(error)}`;
  }
}

describe("start", () => {
  it("starts active with seq 1, index 1 and the idle deadline; default idle timeout applies", () => {
    const { session, event } = start();
    expect(session).toMatchObject({ state: "active", lastSeq: 1, sessionIndex: 1, previousSessionId: "", idleTimeoutMs: 60_000, endTime: null });
    expect(session.expireTime).toEqual(at(60));
    expect(session.lastHash).toBe(event.hash);
    expect(event).toMatchObject({ seq: 1, type: "session.started", source: "session_manager", eventTime: t0, receiveTime: t0 });
    expect(start({ idleTimeoutMs: null }).session.idleTimeoutMs).toBe(1_800_000);
  });

  it("chains the user's sessions by index and previous id", () => {
    const first = start().session;
    const second = planStart(command, "h", first, "sess_01ARZ3NDEKTSV4RRFFQ69G5FAW", at(5), 1_800_000).session;
    expect(second).toMatchObject({ sessionIndex: 2, previousSessionId: first.sessionId });
  });

  it("rebuilds the session as it was started", () => {
    const started = start();
    const ended = planEnd(started.session, endCommand, "h", at(10)).after;
    expect(sessionAsStarted(ended, started.event)).toEqual(started.session);
  });
});

describe("lapse", () => {
  it("ends an idle session at its last activity, exactly at the deadline", () => {
    const { session } = start();
    expect(lapseOf(session, at(59.999))).toBeNull();
    expect(lapseOf(session, at(60))).toEqual({ reason: "idle_timeout", endTime: t0 });
    const view = effectiveSession(session, at(61));
    expect(view).toMatchObject({ state: "ended", endReason: "idle_timeout", endTime: t0, expireTime: null });
  });

  it("ends at start + max_duration whatever the activity, and while paused", () => {
    let { session } = start({ maxDurationMs: 100_000 });
    for (const s of [40, 80]) session = planHeartbeat(session, at(s));
    expect(lapseOf(session, at(100))).toEqual({ reason: "max_duration", endTime: at(100) });
    const paused = planPause(start({ maxDurationMs: 100_000 }).session, "p", "h", at(10))!.after;
    expect(paused.expireTime).toBeNull();
    expect(lapseOf(paused, at(99))).toBeNull();
    expect(lapseOf(paused, at(100))?.reason).toBe("max_duration");
  });

  it("takes the earlier deadline when both passed", () => {
    const { session } = start({ maxDurationMs: 120_000 });
    expect(lapseOf(session, at(500))).toEqual({ reason: "idle_timeout", endTime: t0 });
  });

  it("records the lapse as one session.ended event with a system record id", () => {
    const { session } = start();
    expect(planLapse(session, at(30))).toBeNull();
    const lapse = planLapse(session, at(90))!;
    expect(lapse.after).toMatchObject({ state: "ended", endReason: "idle_timeout", endTime: t0, lastSeq: 2 });
    expect(lapse.event).toMatchObject({ seq: 2, type: "session.ended", payload: { end_reason: "END_REASON_IDLE_TIMEOUT" }, receiveTime: at(90) });
    expect(lapse.event.recordId).toMatch(/^system\/idle_timeout\//);
  });
});

describe("make room for a new session", () => {
  it("rejects by default, supersedes on request, and records a lapse instead when the open one lapsed", () => {
    const { session } = start();
    expect(planMakeRoom(null, "reject", "new", at(1))).toBeNull();
    expect(reasonOf(() => planMakeRoom(session, "reject", "new", at(1)))).toBe("ACTIVE_SESSION_EXISTS");
    const superseded = planMakeRoom(session, "supersede", "new", at(1))!;
    expect(superseded.after).toMatchObject({ state: "ended", endReason: "superseded", endTime: at(1) });
    expect(superseded.event.payload).toEqual({ end_reason: "END_REASON_SUPERSEDED", superseded_by: "new" });
    expect(planMakeRoom(session, "reject", "new", at(600))!.after.endReason).toBe("idle_timeout");
  });
});

describe("activity, pause and resume", () => {
  it("moves the deadline on heartbeat and append; refuses both when paused or ended", () => {
    const { session } = start();
    expect(planHeartbeat(session, at(30)).expireTime).toEqual(at(90));
    const appended = planAppend(session, append, "h3", at(30));
    expect(appended.after).toMatchObject({ lastSeq: 2, lastActivityTime: at(30), expireTime: at(90) });
    const paused = planPause(session, "p", "h", at(1))!.after;
    expect(reasonOf(() => planHeartbeat(paused, at(2)))).toBe("SESSION_PAUSED");
    expect(reasonOf(() => planAppend(paused, append, "h", at(2)))).toBe("SESSION_PAUSED");
    const ended = planEnd(session, endCommand, "h", at(1)).after;
    expect(reasonOf(() => planHeartbeat(ended, at(2)))).toBe("SESSION_ENDED");
    expect(reasonOf(() => planHeartbeat(session, at(61)))).toBe("SESSION_ENDED");
    expect(reasonOf(() => planEnd(ended, endCommand, "h", at(3)))).toBe("SESSION_ENDED");
  });

  it("pauses and resumes once each; the idle clock restarts on resume", () => {
    const { session } = start();
    const paused = planPause(session, "p", "h", at(10))!;
    expect(paused.event.type).toBe("session.paused");
    expect(planPause(paused.after, "p2", "h", at(11))).toBeNull();
    expect(lapseOf(paused.after, at(10_000))).toBeNull();
    const resumed = planResume(paused.after, "r", "h", at(1000))!;
    expect(resumed.after).toMatchObject({ state: "active", lastActivityTime: at(1000), expireTime: at(1060), lastSeq: 3 });
    expect(planResume(resumed.after, "r2", "h", at(1001))).toBeNull();
    expect(reasonOf(() => planPause(session, "p", "h", at(61)))).toBe("SESSION_ENDED");
  });

  it("reserves the session. type prefix", () => {
    expect(reasonOf(() => checkAppend({ ...append, type: "session.paused" }))).toBe("RESERVED_EVENT_TYPE");
    expect(reasonOf(() => checkAppend({ ...append, type: "sessions.x" }))).toBeNull();
  });
});

describe("update", () => {
  it("changes only the masked fields and records old and new values, also after the end", () => {
    const ended = planEnd(start().session, endCommand, "h", at(1)).after;
    const { after, event } = planUpdate(ended, { recordId: "u", sessionId: ended.sessionId, isTrainingData: true }, "h", at(2));
    expect(after).toMatchObject({ isTrainingData: true, metadata: { a: 1 }, state: "ended", lastSeq: 3 });
    expect(event).toMatchObject({ type: "session.updated", payload: { update_mask: ["is_training_data"], changes: { is_training_data: { old: false, new: true } } } });
  });
});

describe("idempotency keys", () => {
  it("fingerprints requests without their record_id, independent of key order", () => {
    expect(requestHash("StartSession", command)).toBe(requestHash("StartSession", { ...command, recordId: "other" }));
    expect(requestHash("StartSession", command)).not.toBe(requestHash("StartSession", { ...command, metadata: { a: 2 } }));
    expect(requestHash("StartSession", command)).not.toBe(requestHash("EndSession", command));
    expect(requestHash("X", { recordId: "r", m: { a: 1, b: 2 } })).toBe(requestHash("X", { recordId: "r", m: { b: 2, a: 1 } }));
  });

  it("tells a retry from a reused record_id", () => {
    const { event } = start();
    expect(classifyRequest(null, "h")).toBe("new");
    expect(classifyRequest(event, "h")).toBe("retry");
    expect(reasonOf(() => classifyRequest(event, "other"))).toBe("RECORD_ID_REUSED");
  });
});

describe("hash chain", () => {
  function history(): { session: Session; events: NewSessionEvent[] } {
    const started = start();
    const steps: SessionChange[] = [];
    let session = started.session;
    for (let i = 0; i < 3; i++) {
      const step = planAppend(session, { ...append, recordId: `a${i}` }, "h", at(i + 1));
      steps.push(step);
      session = step.after;
    }
    return { session, events: [started.event, ...steps.map((step) => step.event)] };
  }

  it("links each event to the previous one", () => {
    const { session, events } = history();
    expect(events[0]!.hash).toBe(chainHash("", events[0]!));
    expect(events[2]!.hash).toBe(chainHash(events[1]!.hash, events[2]!));
    expect(verifyChain(session.sessionId, events, session.lastSeq, session.lastHash)).toBeNull();
  });

  it("reports the first broken link: changed content, a missing event, a dropped tail", () => {
    const { session, events } = history();
    const tampered = events.map((event, i) => (i === 2 ? { ...event, payload: { n: 2 } } : event));
    expect(verifyChain(session.sessionId, tampered, session.lastSeq, session.lastHash)).toMatchObject({ seq: 3 });
    const gap = events.filter((_, i) => i !== 1);
    expect(verifyChain(session.sessionId, gap, session.lastSeq, session.lastHash)).toMatchObject({ seq: 2 });
    expect(verifyChain(session.sessionId, events.slice(0, 3), session.lastSeq, session.lastHash)).toMatchObject({ seq: 4 });
  });
});

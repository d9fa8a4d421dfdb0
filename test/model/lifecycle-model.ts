/**
 * An in-memory model of the session lifecycle as the contract documents it,
 * and fast-check commands that run each RPC against the model and the real
 * service side by side. Every rule below cites where it is written: the
 * proto's RPC comments (proto/sessionmanager/v1/session_manager_service.proto),
 * the Session message (session.proto) or the README. Nothing here calls
 * src/domain: the model must be able to disagree with the implementation.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type fc from "fast-check";
import { expect } from "vitest";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { ConflictPolicy } from "../../gen/sessionmanager/v1/session_manager_service_pb.js";
import { EndReason, SessionState, type Session, type SessionEvent } from "../../gen/sessionmanager/v1/session_pb.js";
import type { Sql } from "../../src/db/database.js";
import type { Sweeper } from "../../src/service/sweeper.js";
import type { SessionClient } from "../support/rpc.js";

type Reason = "client" | "idle_timeout" | "max_duration" | "superseded";
type JsonObject = { [key: string]: string | number | boolean | null };

/** A session as the model knows it. */
export interface ModelSession {
  id: string;
  userId: string;
  /** The stored state: a lapse that no one recorded yet leaves it ACTIVE or PAUSED. */
  state: "active" | "paused" | "ended";
  /** Set when time passed a deadline (idle timeout or max duration) and the end is not recorded yet. */
  lapse: "idle_timeout" | "max_duration" | null;
  endReason: Reason | null;
  /** Event types in seq order (seq = index + 1). */
  events: string[];
  /** The "session.ended" event as first answered, for EndSession on an ended session. */
  endEvent: { eventId: string; seq: bigint } | null;
  hasMaxDuration: boolean;
  metadata: JsonObject;
  isTrainingData: boolean;
  sessionIndex: number;
  previousSessionId: string;
}

/** A request the service recorded under its record_id, and what it answered (for replays). */
export interface RecordedRequest {
  method: "StartSession" | "AppendSessionEvent" | "EndSession" | "PauseSession" | "ResumeSession" | "UpdateSession";
  request: Record<string, unknown>;
  sessionId: string;
  /** For Start, Append and End, which answer with the original response: the event answered. */
  event: { eventId: string; seq: bigint } | null;
}

/** The whole model: users, their sessions in creation order, and every recorded request by user and record_id. */
export interface Model {
  users: string[];
  sessions: ModelSession[];
  records: Map<string, RecordedRequest>;
  /** Record ids an EndSession sent to a lapsed session: the proto says they are not stored, so they are free to use again. */
  freedRecordIds: { recordId: string; sessionId: string }[];
  /** Counts issued record ids, so each new request gets a fresh one. */
  nextRecord: number;
}

/** What the commands act on: the in-memory client over the real handlers, the database and a sweeper. */
export interface Real {
  client: SessionClient;
  sql: Sql;
  sweeper: Sweeper;
  prefix: string;
}

type Command = fc.AsyncCommand<Model, Real>;

const UNKNOWN_SESSION = "sess_01ARZ3NDEKTSV4RRFFQ69G5FAV";
/** The idle timeout every modelled session gets; time passes only by backdating, never by waiting. */
const IDLE_TIMEOUT_S = 600n;
const MAX_DURATION_S = 3600n;

const STATES = { active: SessionState.ACTIVE, paused: SessionState.PAUSED, ended: SessionState.ENDED } as const;
const REASONS: Record<Reason, EndReason> = {
  client: EndReason.CLIENT,
  idle_timeout: EndReason.IDLE_TIMEOUT,
  max_duration: EndReason.MAX_DURATION,
  superseded: EndReason.SUPERSEDED,
};

/** Returns a fresh record id (unique per user is all the contract asks; these are unique per run). */
function freshRecordId(model: Model, real: Real): string {
  model.nextRecord += 1;
  return `${real.prefix}-rec-${model.nextRecord}`;
}

function recordKey(userId: string, recordId: string): string {
  return `${userId}\u0000${recordId}`;
}

/** Returns the user's open session (stored ACTIVE or PAUSED; it may have lapsed). Contract: at most one per user. */
function openSession(model: Model, userId: string): ModelSession | null {
  return model.sessions.find((s) => s.userId === userId && s.state !== "ended") ?? null;
}

/** Reads a session as every RPC reports it: a lapsed session reads as ENDED before its end is recorded (proto: "Until then every RPC already treats the session as ENDED"). */
function effective(session: ModelSession): { state: ModelSession["state"]; endReason: Reason | null } {
  if (session.state !== "ended" && session.lapse !== null) return { state: "ended", endReason: session.lapse };
  return { state: session.state, endReason: session.endReason };
}

/** Records a lapse: one "session.ended" event with the lapse's reason (proto, service comment "Idle timeout": "ended exactly once ... and one session.ended event"). */
function recordLapse(session: ModelSession): void {
  if (session.state === "ended" || session.lapse === null) return;
  session.state = "ended";
  session.endReason = session.lapse;
  session.lapse = null;
  session.events.push("session.ended");
  session.endEvent = null;
}

/**
 * Sends a request once, or twice at once (`twice`: a retry racing its
 * original, as a client whose first attempt timed out sends it). README
 * (Idempotency): "nothing is written twice" and the retry answers like the
 * original, so both answers must agree; the first is returned.
 */
async function sendOnceOrTwice<T extends { event?: SessionEvent; session?: Session }>(twice: boolean, send: () => Promise<T>) {
  if (!twice) return attempt(send());
  const [first, second] = await Promise.all([attempt(send()), attempt(send())]);
  const outcome = (r: typeof first) =>
    r.error !== null
      ? `${Code[r.error.code]} ${r.error.findDetails(ErrorInfoSchema).map((i) => i.reason).join(",")}`
      : `OK ${r.ok.session?.sessionId ?? ""} ${r.ok.event?.eventId ?? ""} ${r.ok.event?.seq ?? ""}`;
  expect(outcome(second), "a retry racing its original").toBe(outcome(first));
  return first;
}

/** Awaits a call, returning its response or its ConnectError. */
async function attempt<T>(call: Promise<T>): Promise<{ ok: T; error: null } | { ok: null; error: ConnectError }> {
  try {
    return { ok: await call, error: null };
  } catch (error) {
    return { ok: null, error: ConnectError.from(error) };
  }
}

/** Checks that a call failed with `code` and ErrorInfo `reason`. */
function expectFailure(result: { error: ConnectError | null }, code: Code, reason: string): ConnectError {
  expect(result.error, `expected ${Code[code]} ${reason}`).not.toBeNull();
  expect(`${Code[result.error!.code]} ${result.error!.findDetails(ErrorInfoSchema).map((i) => i.reason).join(",")}`).toBe(`${Code[code]} ${reason}`);
  return result.error!;
}

function expectOk<T>(result: { ok: T | null; error: ConnectError | null }): T {
  if (result.error !== null) throw new Error(`expected success, got ${Code[result.error.code]} ${result.error.findDetails(ErrorInfoSchema).map((i) => i.reason).join(",")}: ${result.error.rawMessage}`);
  return result.ok!;
}

/** Checks a Session message against the model's session as every RPC reports it now. */
function expectSession(actual: Session | undefined, session: ModelSession): void {
  const now = effective(session);
  expect({
    sessionId: actual?.sessionId,
    state: SessionState[actual?.state ?? 0],
    endReason: EndReason[actual?.endReason ?? 0],
    lastSeq: actual?.lastSeq,
    isTrainingData: actual?.isTrainingData,
    metadata: actual?.metadata,
  }).toEqual({
    sessionId: session.id,
    state: SessionState[STATES[now.state]],
    endReason: EndReason[now.endReason === null ? EndReason.UNSPECIFIED : REASONS[now.endReason]],
    lastSeq: BigInt(session.events.length),
    isTrainingData: session.isTrainingData,
    metadata: session.metadata,
  });
}

/**
 * Checks the stored state after a command: GetSession reports the model's
 * session, and the event log holds exactly the model's event types in seq
 * order (seq dense from 1, session.proto `last_seq`).
 */
export async function expectStored(real: Real, session: ModelSession): Promise<void> {
  const { session: got } = await real.client.getSession({ sessionId: session.id });
  expectSession(got, session);
  const rows = await real.sql<{ seq: string; type: string }[]>`
    select e.seq::text as seq, e.type
    from session_events as e
    where e.session_id = ${session.id}
    -- By the bigint column: ordered by the text alias, "10" sorted before "2".
    order by e.seq
  `;
  expect(rows.map((row) => row.type), `events of ${session.id}`).toEqual(session.events);
  expect(rows.map((row) => Number(row.seq))).toEqual(session.events.map((_, i) => i + 1));
}

function pickSession(model: Model, index: number): ModelSession | null {
  return model.sessions.length === 0 ? null : model.sessions[index % model.sessions.length]!;
}

/** StartSession with either conflict policy (proto: StartSession, ConflictPolicy). */
export class StartCommand implements Command {
  constructor(
    readonly user: number,
    readonly supersede: boolean,
    readonly withMaxDuration: boolean,
    readonly trainingData: boolean,
    readonly twice = false,
  ) {}
  check = () => true;
  async run(model: Model, real: Real): Promise<void> {
    const userId = model.users[this.user % model.users.length]!;
    const request = {
      recordId: freshRecordId(model, real),
      userId,
      idleTimeout: { seconds: IDLE_TIMEOUT_S },
      ...(this.withMaxDuration ? { maxDuration: { seconds: MAX_DURATION_S } } : {}),
      conflictPolicy: this.supersede ? ConflictPolicy.SUPERSEDE : ConflictPolicy.REJECT,
      isTrainingData: this.trainingData,
      metadata: { n: model.nextRecord },
    };
    const result = await sendOnceOrTwice(this.twice, () => real.client.startSession(request));
    const open = openSession(model, userId);
    // Proto (service comment "Idle timeout"): a lapsed open session's end is recorded by "the user's next StartSession".
    if (open !== null && open.lapse !== null) recordLapse(open);
    const stillOpen = openSession(model, userId);
    if (stillOpen !== null && !this.supersede) {
      // Proto StartSession: FAILED_PRECONDITION, ACTIVE_SESSION_EXISTS; ErrorInfo.metadata["session_id"] names it.
      const error = expectFailure(result, Code.FailedPrecondition, "ACTIVE_SESSION_EXISTS");
      expect(error.findDetails(ErrorInfoSchema)[0]!.metadata.session_id).toBe(stillOpen.id);
      if (open !== null) await expectStored(real, open);
      return;
    }
    const response = expectOk(result);
    if (stillOpen !== null) {
      // Proto: with SUPERSEDE, "the user's open session is ended with END_REASON_SUPERSEDED in the same transaction".
      stillOpen.state = "ended";
      stillOpen.endReason = "superseded";
      stillOpen.events.push("session.ended");
    }
    const previous = model.sessions.filter((s) => s.userId === userId).at(-1);
    const session: ModelSession = {
      id: response.session!.sessionId,
      userId,
      state: "active",
      lapse: null,
      endReason: null,
      events: ["session.started"],
      endEvent: null,
      hasMaxDuration: this.withMaxDuration,
      metadata: request.metadata,
      isTrainingData: this.trainingData,
      // session.proto: session_index is "1-based ordinal among its user's sessions"; previous_session_id "the user's session before this one".
      sessionIndex: model.sessions.filter((s) => s.userId === userId).length + 1,
      previousSessionId: previous?.id ?? "",
    };
    model.sessions.push(session);
    expectSession(response.session, session);
    expect([response.session!.sessionIndex, response.session!.previousSessionId]).toEqual([BigInt(session.sessionIndex), session.previousSessionId]);
    // Proto StartSessionResponse.event: 'The "session.started" event (seq 1)'.
    expect([response.event!.type, response.event!.seq]).toEqual(["session.started", 1n]);
    model.records.set(recordKey(userId, request.recordId), { method: "StartSession", request, sessionId: session.id, event: { eventId: response.event!.eventId, seq: 1n } });
    if (open !== null) await expectStored(real, open);
    await expectStored(real, session);
  }
  toString = () => `Start(user ${this.user}, ${this.supersede ? "supersede" : "reject"}${this.withMaxDuration ? ", max" : ""}${this.twice ? ", twice at once" : ""})`;
}

/** HeartbeatSession (proto: SESSION_ENDED for ended or lapsed, SESSION_PAUSED; writes no event). */
export class HeartbeatCommand implements Command {
  constructor(readonly target: number) {}
  check = (model: Readonly<Model>) => model.sessions.length > 0;
  async run(model: Model, real: Real): Promise<void> {
    const session = pickSession(model, this.target)!;
    const result = await attempt(real.client.heartbeatSession({ sessionId: session.id }));
    const now = effective(session);
    if (now.state === "ended") expectFailure(result, Code.FailedPrecondition, "SESSION_ENDED");
    else if (now.state === "paused") expectFailure(result, Code.FailedPrecondition, "SESSION_PAUSED");
    else expectSession(expectOk(result).session, session);
    await expectStored(real, session);
  }
  toString = () => `Heartbeat(${this.target})`;
}

/** AppendSessionEvent (proto: next seq; SESSION_ENDED, SESSION_PAUSED; idempotent by record_id). */
export class AppendCommand implements Command {
  constructor(
    readonly target: number,
    readonly text: string,
    readonly twice = false,
  ) {}
  check = (model: Readonly<Model>) => model.sessions.length > 0;
  async run(model: Model, real: Real): Promise<void> {
    const session = pickSession(model, this.target)!;
    const request = { recordId: freshRecordId(model, real), sessionId: session.id, type: "care.model", source: "model", payload: { text: this.text } };
    const result = await sendOnceOrTwice(this.twice, () => real.client.appendSessionEvent(request));
    const now = effective(session);
    if (now.state === "ended") expectFailure(result, Code.FailedPrecondition, "SESSION_ENDED");
    else if (now.state === "paused") expectFailure(result, Code.FailedPrecondition, "SESSION_PAUSED");
    else {
      const { event } = expectOk(result);
      session.events.push("care.model");
      expect([event!.type, event!.seq, event!.sessionId]).toEqual(["care.model", BigInt(session.events.length), session.id]);
      model.records.set(recordKey(session.userId, request.recordId), { method: "AppendSessionEvent", request, sessionId: session.id, event: { eventId: event!.eventId, seq: event!.seq } });
    }
    await expectStored(real, session);
  }
  toString = () => `Append(${this.target}${this.twice ? ", twice at once" : ""})`;
}

/** PauseSession or ResumeSession (proto: a no-op on a session already in that state is still recorded; SESSION_ENDED). */
export class PauseResumeCommand implements Command {
  constructor(
    readonly target: number,
    readonly pause: boolean,
  ) {}
  check = (model: Readonly<Model>) => model.sessions.length > 0;
  async run(model: Model, real: Real): Promise<void> {
    const session = pickSession(model, this.target)!;
    const request = { recordId: freshRecordId(model, real), sessionId: session.id };
    const result = await attempt<{ session?: Session }>(this.pause ? real.client.pauseSession(request) : real.client.resumeSession(request));
    if (effective(session).state === "ended") {
      expectFailure(result, Code.FailedPrecondition, "SESSION_ENDED");
    } else {
      const response = expectOk(result);
      const target = this.pause ? "paused" : "active";
      if (session.state !== target) {
        session.state = target;
        session.events.push(this.pause ? "session.paused" : "session.resumed");
      }
      expectSession(response.session, session);
      model.records.set(recordKey(session.userId, request.recordId), { method: this.pause ? "PauseSession" : "ResumeSession", request, sessionId: session.id, event: null });
    }
    await expectStored(real, session);
  }
  toString = () => `${this.pause ? "Pause" : "Resume"}(${this.target})`;
}

/** UpdateSession (proto: also after the end; records "session.updated"; a lapse is recorded first, service comment "Idle timeout"). */
export class UpdateCommand implements Command {
  constructor(
    readonly target: number,
    readonly trainingData: boolean,
    readonly withMetadata: boolean,
  ) {}
  check = (model: Readonly<Model>) => model.sessions.length > 0;
  async run(model: Model, real: Real): Promise<void> {
    const session = pickSession(model, this.target)!;
    const metadata = { updated: model.nextRecord + 1 };
    const request = {
      recordId: freshRecordId(model, real),
      session: { sessionId: session.id, isTrainingData: this.trainingData, ...(this.withMetadata ? { metadata } : {}) },
      updateMask: { paths: this.withMetadata ? ["is_training_data", "metadata"] : ["is_training_data"] },
    };
    const response = expectOk(await attempt(real.client.updateSession(request)));
    recordLapse(session);
    session.isTrainingData = this.trainingData;
    if (this.withMetadata) session.metadata = metadata;
    session.events.push("session.updated");
    expectSession(response.session, session);
    model.records.set(recordKey(session.userId, request.recordId), { method: "UpdateSession", request, sessionId: session.id, event: null });
    await expectStored(real, session);
  }
  toString = () => `Update(${this.target}, training=${this.trainingData}${this.withMetadata ? ", metadata" : ""})`;
}

/** EndSession (proto: END_REASON_CLIENT; on a lapsed session records the lapse, the caller's record_id not stored; on an ended one returns the original end event). */
export class EndCommand implements Command {
  constructor(readonly target: number) {}
  check = (model: Readonly<Model>) => model.sessions.length > 0;
  async run(model: Model, real: Real): Promise<void> {
    const session = pickSession(model, this.target)!;
    const request = { recordId: freshRecordId(model, real), sessionId: session.id };
    const response = expectOk(await attempt(real.client.endSession(request)));
    const wasLapsed = session.state !== "ended" && session.lapse !== null;
    const wasOpen = session.state !== "ended" && !wasLapsed;
    if (wasLapsed) recordLapse(session);
    if (wasOpen) {
      session.state = "ended";
      session.endReason = "client";
      session.events.push("session.ended");
    }
    expectSession(response.session, session);
    expect(response.event!.type).toBe("session.ended");
    if (session.endEvent === null) {
      // The first answer that shows the end fixes the event every later EndSession returns.
      session.endEvent = { eventId: response.event!.eventId, seq: response.event!.seq };
      if (wasOpen || wasLapsed) expect(response.event!.seq).toBe(BigInt(session.events.lastIndexOf("session.ended") + 1));
    } else {
      expect({ eventId: response.event!.eventId, seq: response.event!.seq }).toEqual(session.endEvent);
    }
    if (wasOpen) model.records.set(recordKey(session.userId, request.recordId), { method: "EndSession", request, sessionId: session.id, event: session.endEvent });
    if (wasLapsed) model.freedRecordIds.push({ recordId: request.recordId, sessionId: session.id });
    await expectStored(real, session);
  }
  toString = () => `End(${this.target})`;
}

/** GetSession and the other RPCs on a session that does not exist: NOT_FOUND, SESSION_NOT_FOUND (proto). */
export class NotFoundCommand implements Command {
  check = () => true;
  async run(model: Model, real: Real): Promise<void> {
    const recordId = freshRecordId(model, real);
    const calls: (() => Promise<unknown>)[] = [
      () => real.client.getSession({ sessionId: UNKNOWN_SESSION }),
      () => real.client.heartbeatSession({ sessionId: UNKNOWN_SESSION }),
      () => real.client.endSession({ recordId, sessionId: UNKNOWN_SESSION }),
      () => real.client.pauseSession({ recordId, sessionId: UNKNOWN_SESSION }),
    ];
    for (const call of calls) expectFailure(await attempt(call()), Code.NotFound, "SESSION_NOT_FOUND");
  }
  toString = () => "NotFound";
}

/**
 * Time passes for one session: its idle deadline (ACTIVE only: the idle clock
 * stops while PAUSED, session.proto `expire_time`) or its max duration (any
 * open session with one) lies in the past, done by backdating the session row
 * in SQL. The other deadline stays in the future, so the reason is unambiguous.
 */
export class TimePassesCommand implements Command {
  constructor(
    readonly target: number,
    readonly maxDuration: boolean,
  ) {}
  check = (model: Readonly<Model>) => model.sessions.length > 0;
  async run(model: Model, real: Real): Promise<void> {
    const session = pickSession(model, this.target)!;
    if (session.state === "ended" || session.lapse !== null) return;
    if (this.maxDuration) {
      if (!session.hasMaxDuration) return;
      await real.sql`
        update sessions
        set start_time = now() - interval '1 second' - max_duration_ms * interval '1 millisecond',
          max_end_time = now() - interval '1 second'
        where session_id = ${session.id}
      `;
      session.lapse = "max_duration";
    } else {
      if (session.state !== "active") return;
      await real.sql`
        update sessions
        set last_activity_time = now() - interval '1 second' - idle_timeout_ms * interval '1 millisecond',
          expire_time = now() - interval '1 second'
        where session_id = ${session.id}
      `;
      session.lapse = "idle_timeout";
    }
    await expectStored(real, session);
  }
  toString = () => `TimePasses(${this.target}, ${this.maxDuration ? "max duration" : "idle"})`;
}

/** One sweeper pass: every lapsed session's end is recorded, exactly once (src/service/sweeper.ts header; proto "Idle timeout"). */
export class SweepCommand implements Command {
  check = () => true;
  async run(model: Model, real: Real): Promise<void> {
    await real.sweeper.sweep();
    for (const session of model.sessions) recordLapse(session);
    for (const session of model.sessions) await expectStored(real, session);
  }
  toString = () => "Sweep";
}

/**
 * Sends a recorded request again with the same record_id. README
 * (Idempotency): "StartSession and AppendSessionEvent answer with the
 * original response; EndSession with the original end; PauseSession,
 * ResumeSession and UpdateSession with the session as it is now", and
 * nothing is written.
 */
export class ReplayCommand implements Command {
  constructor(readonly pick: number) {}
  check = (model: Readonly<Model>) => model.records.size > 0;
  async run(model: Model, real: Real): Promise<void> {
    const recorded = [...model.records.values()][this.pick % model.records.size]!;
    const session = model.sessions.find((s) => s.id === recorded.sessionId)!;
    const response = expectOk(await attempt(call(real.client, recorded.method, recorded.request))) as { session?: Session; event?: SessionEvent };
    if (recorded.event !== null) expect({ eventId: response.event?.eventId, seq: response.event?.seq }).toEqual(recorded.event);
    if (recorded.method === "StartSession") {
      expect([response.session?.sessionId, SessionState[response.session?.state ?? 0], response.session?.lastSeq]).toEqual([session.id, "ACTIVE", 1n]);
    } else if (recorded.method !== "AppendSessionEvent" && recorded.method !== "EndSession") {
      expectSession(response.session, session);
    }
    await expectStored(real, session);
  }
  toString = () => `Replay(${this.pick})`;
}

/**
 * Uses a record id that an EndSession on a lapsed session sent: proto
 * EndSession, "under a system record id (the caller's `record_id` is then
 * not stored)", so an UpdateSession with it is a new request, not
 * RECORD_ID_REUSED.
 */
export class ReuseFreedRecordIdCommand implements Command {
  constructor(readonly pick: number) {}
  check = (model: Readonly<Model>) => model.freedRecordIds.length > 0;
  async run(model: Model, real: Real): Promise<void> {
    const [freed] = model.freedRecordIds.splice(this.pick % model.freedRecordIds.length, 1);
    const session = model.sessions.find((s) => s.id === freed!.sessionId)!;
    const request = { recordId: freed!.recordId, session: { sessionId: session.id, isTrainingData: !session.isTrainingData }, updateMask: { paths: ["is_training_data"] } };
    const response = expectOk(await attempt(real.client.updateSession(request)));
    session.isTrainingData = !session.isTrainingData;
    session.events.push("session.updated");
    expectSession(response.session, session);
    model.records.set(recordKey(session.userId, request.recordId), { method: "UpdateSession", request, sessionId: session.id, event: null });
    await expectStored(real, session);
  }
  toString = () => `ReuseFreedRecordId(${this.pick})`;
}

/** Sends a different request with a recorded record_id: ALREADY_EXISTS, RECORD_ID_REUSED, nothing written (README, Idempotency). */
export class ChangedReplayCommand implements Command {
  constructor(readonly pick: number) {}
  check = (model: Readonly<Model>) => model.records.size > 0;
  async run(model: Model, real: Real): Promise<void> {
    const recorded = [...model.records.values()][this.pick % model.records.size]!;
    const session = model.sessions.find((s) => s.id === recorded.sessionId)!;
    const { method, request } = changed(recorded);
    expectFailure(await attempt(call(real.client, method, request)), Code.AlreadyExists, "RECORD_ID_REUSED");
    await expectStored(real, session);
  }
  toString = () => `ChangedReplay(${this.pick})`;
}

/** Returns a request that differs from the recorded one in one field (or in its method), with the same record_id. */
function changed(recorded: RecordedRequest): { method: RecordedRequest["method"]; request: Record<string, unknown> } {
  const request = recorded.request;
  switch (recorded.method) {
    case "StartSession":
      return { method: "StartSession", request: { ...request, metadata: { changed: true } } };
    case "AppendSessionEvent":
      return { method: "AppendSessionEvent", request: { ...request, payload: { changed: true } } };
    case "EndSession":
      return { method: "EndSession", request: { ...request, performerId: "someone-else" } };
    case "PauseSession":
      return { method: "ResumeSession", request };
    case "ResumeSession":
      return { method: "PauseSession", request };
    case "UpdateSession": {
      const session = request.session as { isTrainingData: boolean };
      return { method: "UpdateSession", request: { ...request, session: { ...session, isTrainingData: !session.isTrainingData } } };
    }
  }
}

function call(client: SessionClient, method: RecordedRequest["method"], request: Record<string, unknown>): Promise<unknown> {
  switch (method) {
    case "StartSession":
      return client.startSession(request);
    case "AppendSessionEvent":
      return client.appendSessionEvent(request);
    case "EndSession":
      return client.endSession(request);
    case "PauseSession":
      return client.pauseSession(request);
    case "ResumeSession":
      return client.resumeSession(request);
    case "UpdateSession":
      return client.updateSession(request);
  }
}

/** Creates an empty model for `users`. */
export function emptyModel(users: string[]): Model {
  return { users, sessions: [], records: new Map(), freedRecordIds: [], nextRecord: 0 };
}

/** Checks the invariant across the model's users: at most one open session each (README, Design notes, "one open session per user"). */
export async function expectOneOpenPerUser(real: Real, model: Model): Promise<void> {
  const rows = await real.sql<{ user_id: string; open: number }[]>`
    select user_id, count(*)::int as open
    from sessions
    where user_id in ${real.sql(model.users)}
      and state in ('active', 'paused')
    group by user_id
    having count(*) > 1
  `;
  expect(rows).toEqual([]);
}

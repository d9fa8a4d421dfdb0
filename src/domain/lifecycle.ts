/**
 * Lifecycle rules: pure functions that decide what a request does to a
 * session, given the stored state and the database clock's `now`. Each
 * returns a SessionChange (the session before and after, and the event that
 * records it) for the service to store in one transaction.
 */
import { chainHash } from "./chain.js";
import type { AppendCommand, EndCommand, StartCommand, UpdateCommand } from "./commands.js";
import { DomainError } from "./errors.js";
import { newEventId } from "./ids.js";
import type { JsonObject } from "./json.js";
import { lapseOf, LIFECYCLE_SOURCE, LIFECYCLE_TYPES, type EndReason, type NewSessionEvent, type Session } from "./session.js";

/**
 * What the plan functions return: `after` is `before` with the change applied
 * and its chain head (`lastSeq`, `lastHash`) moved to `event`.
 */
export interface SessionChange {
  before: Session;
  after: Session;
  event: NewSessionEvent;
}

/** Holds what an event says; the chain fields (seq, hash) are derived. */
interface EventFields {
  recordId: string;
  requestHash: string;
  type: string;
  eventTime: Date | null;
  source: string;
  performerId: string;
  payload: JsonObject;
}

/** Marks record ids of events the service writes on its own ('/' is not allowed in callers' ids). */
const SYSTEM_RECORD_PREFIX = "system/";
/** Marks the request hash of events the service writes on its own. */
const SYSTEM_REQUEST_HASH = "system";

const END_REASON_NAMES: Record<EndReason, string> = {
  client: "END_REASON_CLIENT",
  idle_timeout: "END_REASON_IDLE_TIMEOUT",
  superseded: "END_REASON_SUPERSEDED",
  max_duration: "END_REASON_MAX_DURATION",
};

/** Appends an event to a session: next seq, chained hash, new head. */
function change(before: Session, next: Partial<Session>, fields: EventFields, now: Date): SessionChange {
  const seq = before.lastSeq + 1;
  const unhashed = {
    eventId: newEventId(),
    userId: before.userId,
    sessionId: before.sessionId,
    seq,
    recordId: fields.recordId,
    requestHash: fields.requestHash,
    type: fields.type,
    eventTime: fields.eventTime ?? now,
    receiveTime: now,
    source: fields.source,
    performerId: fields.performerId,
    payload: fields.payload,
  };
  const event: NewSessionEvent = { ...unhashed, hash: chainHash(before.lastHash, unhashed) };
  return { before, after: { ...before, ...next, lastSeq: seq, lastHash: event.hash }, event };
}

function lifecycleFields(type: string, recordId: string, requestHash: string, performerId = "", eventTime: Date | null = null, payload: JsonObject = {}): EventFields {
  return { recordId, requestHash, type, eventTime, source: LIFECYCLE_SOURCE, performerId, payload };
}

/** @throws DomainError SESSION_ENDED if the session has ended or lapsed at `now`. */
function checkNotEnded(session: Session, now: Date): void {
  if (session.state === "ended" || lapseOf(session, now) !== null) {
    throw new DomainError("SESSION_ENDED", "the session has ended", { session_id: session.sessionId });
  }
}

/** @throws DomainError SESSION_ENDED or SESSION_PAUSED unless the session is ACTIVE at `now`. */
function checkActive(session: Session, now: Date): void {
  checkNotEnded(session, now);
  if (session.state === "paused") {
    throw new DomainError("SESSION_PAUSED", "the session is paused; resume it first", { session_id: session.sessionId });
  }
}

function ended(session: Session, reason: EndReason, endTime: Date, extra: JsonObject, fields: Omit<EventFields, "type" | "source" | "payload">, now: Date): SessionChange {
  return change(
    session,
    { state: "ended", endTime, endReason: reason, expireTime: null },
    { ...fields, type: LIFECYCLE_TYPES.ended, source: LIFECYCLE_SOURCE, payload: { end_reason: END_REASON_NAMES[reason], ...extra } },
    now,
  );
}

/**
 * Plans recording the end of a lapsed session (idle timeout or max duration).
 *
 * @returns null if the session has not lapsed at `now`.
 */
export function planLapse(session: Session, now: Date): SessionChange | null {
  const lapse = lapseOf(session, now);
  if (lapse === null) return null;
  const recordId = `${SYSTEM_RECORD_PREFIX}${lapse.reason}/${session.sessionId}`;
  return ended(session, lapse.reason, lapse.endTime, {}, { recordId, requestHash: SYSTEM_REQUEST_HASH, performerId: "", eventTime: lapse.endTime }, now);
}

/**
 * Plans ending a session with END_REASON_SUPERSEDED at `now`; the event's payload
 * names `superseded_by`. Checks nothing: planMakeRoom calls it for an open session.
 */
export function planSupersede(session: Session, newSessionId: string, now: Date): SessionChange {
  const recordId = `${SYSTEM_RECORD_PREFIX}superseded/${session.sessionId}`;
  return ended(session, "superseded", now, { superseded_by: newSessionId }, { recordId, requestHash: SYSTEM_REQUEST_HASH, performerId: "", eventTime: null }, now);
}

/** Plans ending an open session with END_REASON_CLIENT. */
export function planEnd(session: Session, command: EndCommand, hash: string, now: Date): SessionChange {
  checkNotEnded(session, now);
  return ended(session, "client", now, {}, { recordId: command.recordId, requestHash: hash, performerId: command.performerId, eventTime: command.eventTime }, now);
}

/** A new ACTIVE session (seq 1) and its "session.started" event, whose payload holds the effective idle timeout. */
export interface SessionStart {
  session: Session;
  event: NewSessionEvent;
}

/**
 * Plans a new session (seq 1). `previous` names the user's latest session
 * (null for a new user); the caller has already ended it if it was open.
 */
export function planStart(
  command: StartCommand,
  hash: string,
  previous: Pick<Session, "sessionIndex" | "sessionId"> | null,
  sessionId: string,
  now: Date,
  defaultIdleTimeoutMs: number,
): SessionStart {
  const idleTimeoutMs = command.idleTimeoutMs ?? defaultIdleTimeoutMs;
  const blank: Session = {
    sessionId,
    userId: command.userId,
    sessionIndex: (previous?.sessionIndex ?? 0) + 1,
    previousSessionId: previous?.sessionId ?? "",
    state: "active",
    startTime: now,
    endTime: null,
    lastActivityTime: now,
    expireTime: new Date(now.getTime() + idleTimeoutMs),
    idleTimeoutMs,
    maxDurationMs: command.maxDurationMs,
    endReason: null,
    performerId: command.performerId,
    isTrainingData: command.isTrainingData,
    metadata: command.metadata,
    lastSeq: 0,
    lastHash: "",
  };
  const payload: JsonObject = {
    idle_timeout: formatDuration(idleTimeoutMs),
    metadata: command.metadata,
    is_training_data: command.isTrainingData,
    previous_session_id: blank.previousSessionId,
    ...(command.maxDurationMs === null ? {} : { max_duration: formatDuration(command.maxDurationMs) }),
  };
  const { after, event } = change(blank, {}, lifecycleFields(LIFECYCLE_TYPES.started, command.recordId, hash, command.performerId, command.eventTime, payload), now);
  return { session: after, event };
}

/**
 * Decides what happens to the user's open session when a new one starts.
 *
 * @returns the change that ends it (lapsed, or superseded), or null if there is none.
 * @throws DomainError ACTIVE_SESSION_EXISTS if it is running and the policy is reject.
 */
export function planMakeRoom(open: Session | null, policy: StartCommand["conflictPolicy"], newId: string, now: Date): SessionChange | null {
  if (open === null || open.state === "ended") return null;
  const lapse = planLapse(open, now);
  if (lapse !== null) return lapse;
  if (policy === "supersede") return planSupersede(open, newId, now);
  throw new DomainError("ACTIVE_SESSION_EXISTS", "the user already has an open session", { session_id: open.sessionId, user_id: open.userId });
}

/**
 * Rebuilds a session as StartSession returned it, from the stored session and
 * its "session.started" event, so a retried start returns the original response.
 */
export function sessionAsStarted(session: Session, started: NewSessionEvent): Session {
  return {
    ...session,
    state: "active",
    startTime: started.receiveTime,
    endTime: null,
    lastActivityTime: started.receiveTime,
    expireTime: new Date(started.receiveTime.getTime() + session.idleTimeoutMs),
    endReason: null,
    metadata: (started.payload.metadata as JsonObject | undefined) ?? {},
    isTrainingData: started.payload.is_training_data === true,
    lastSeq: 1,
    lastHash: started.hash,
  };
}

/**
 * Plans recording activity: moves the idle deadline. Writes no event.
 *
 * @throws DomainError SESSION_ENDED, SESSION_PAUSED.
 */
export function planHeartbeat(session: Session, now: Date): Session {
  checkActive(session, now);
  return { ...session, lastActivityTime: now, expireTime: new Date(now.getTime() + session.idleTimeoutMs) };
}

/**
 * Plans appending a caller's event (next seq); it counts as activity.
 *
 * @throws DomainError SESSION_ENDED, SESSION_PAUSED.
 */
export function planAppend(session: Session, command: AppendCommand, hash: string, now: Date): SessionChange {
  const touched = planHeartbeat(session, now);
  return change(
    session,
    { lastActivityTime: touched.lastActivityTime, expireTime: touched.expireTime },
    { recordId: command.recordId, requestHash: hash, type: command.type, eventTime: command.eventTime, source: command.source, performerId: command.performerId, payload: command.payload },
    now,
  );
}

/**
 * Plans pausing: the idle clock stops. Pausing a PAUSED session changes nothing.
 *
 * @returns null if already paused.
 * @throws DomainError SESSION_ENDED.
 */
export function planPause(session: Session, recordId: string, hash: string, now: Date): SessionChange | null {
  checkNotEnded(session, now);
  if (session.state === "paused") return null;
  return change(session, { state: "paused", lastActivityTime: now, expireTime: null }, lifecycleFields(LIFECYCLE_TYPES.paused, recordId, hash), now);
}

/**
 * Plans resuming: the idle clock restarts from now. Resuming an ACTIVE session changes nothing.
 *
 * @returns null if already active.
 * @throws DomainError SESSION_ENDED.
 */
export function planResume(session: Session, recordId: string, hash: string, now: Date): SessionChange | null {
  checkNotEnded(session, now);
  if (session.state === "active") return null;
  const expireTime = new Date(now.getTime() + session.idleTimeoutMs);
  return change(session, { state: "active", lastActivityTime: now, expireTime }, lifecycleFields(LIFECYCLE_TYPES.resumed, recordId, hash), now);
}

/**
 * Plans updating metadata and/or is_training_data (allowed after the end too:
 * curation). The event carries the mask and each field's old and new value.
 */
export function planUpdate(session: Session, command: UpdateCommand, hash: string, now: Date): SessionChange {
  const next: Partial<Session> = {};
  const changes: JsonObject = {};
  const mask: string[] = [];
  if (command.metadata !== undefined) {
    next.metadata = command.metadata;
    changes.metadata = { old: session.metadata, new: command.metadata };
    mask.push("metadata");
  }
  if (command.isTrainingData !== undefined) {
    next.isTrainingData = command.isTrainingData;
    changes.is_training_data = { old: session.isTrainingData, new: command.isTrainingData };
    mask.push("is_training_data");
  }
  return change(session, next, lifecycleFields(LIFECYCLE_TYPES.updated, command.recordId, hash, "", null, { update_mask: mask, changes }), now);
}

/** Formats milliseconds as a protobuf JSON Duration ("1.5s"). */
function formatDuration(ms: number): string {
  return `${ms / 1000}s`;
}

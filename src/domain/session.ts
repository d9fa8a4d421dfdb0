/**
 * Session lifecycle rules: pure functions that decide what a request does,
 * given the stored state and the database clock's `now`. No SQL, no
 * transport types; the service layer loads state, calls these, and stores
 * the result in one transaction.
 */
import { createHash } from "node:crypto";
import type { FeedPosition } from "./cursor.js";
import { DomainError } from "./errors.js";
import { newEventId, newSessionId } from "./ids.js";
import { canonicalJson, checkJsonObject, type JsonObject } from "./json.js";

/** Names a session's lifecycle state. */
export type SessionState = "active" | "paused" | "ended";
/** Names why a session ended. */
export type EndReason = "client" | "idle_timeout" | "superseded" | "max_duration";

/** Holds a session as stored. Times are database-clock instants (ms precision). */
export interface Session {
  sessionId: string;
  userId: string;
  state: SessionState;
  startTime: Date;
  endTime: Date | null;
  lastActivityTime: Date;
  /** The idle deadline, `lastActivityTime + idleTimeoutMs`; null once ended. */
  expireTime: Date | null;
  idleTimeoutMs: number;
  endReason: EndReason | null;
  performerId: string;
  isTrainingData: boolean;
  metadata: JsonObject;
  lastSeq: number;
}

/** Holds an event to be written; storage adds its feed position. */
export interface NewSessionEvent {
  eventId: string;
  userId: string;
  sessionId: string;
  /** Dense per session: 1, 2, 3, ... */
  seq: number;
  /** The idempotency key of the request that wrote it. */
  recordId: string;
  /** Fingerprint of that request, to tell a retry from a reuse of the key. */
  requestHash: string;
  type: string;
  eventTime: Date;
  receiveTime: Date;
  source: string;
  performerId: string;
  payload: JsonObject;
}

/** Holds a stored event with its position in the global feed. */
export interface SessionEvent extends NewSessionEvent {
  position: FeedPosition;
}

/** Names the source of lifecycle events. */
export const LIFECYCLE_SOURCE = "session_manager";
/** Names the lifecycle event types; callers may not append types with this prefix. */
export const LIFECYCLE_TYPES = { started: "session.started", ended: "session.ended" } as const;
const RESERVED_TYPE_PREFIX = "session.";

/** Caps `metadata` at 16 KiB of JSON. */
export const MAX_METADATA_BYTES = 16 * 1024;
/** Caps `payload` at 64 KiB of JSON. */
export const MAX_PAYLOAD_BYTES = 64 * 1024;

/** Holds a StartSession request. Optional fields are null when not given. */
export interface StartCommand {
  recordId: string;
  userId: string;
  performerId: string;
  eventTime: Date | null;
  idleTimeoutMs: number | null;
  metadata: JsonObject;
  isTrainingData: boolean;
}

/** Holds an EndSession request. */
export interface EndCommand {
  recordId: string;
  sessionId: string;
  performerId: string;
  eventTime: Date | null;
}

/** Holds an AppendSessionEvent request. */
export interface AppendCommand {
  recordId: string;
  sessionId: string;
  type: string;
  eventTime: Date | null;
  source: string;
  performerId: string;
  payload: JsonObject;
}

/** Holds a session together with the event that a request wrote or replays. */
export interface SessionWithEvent {
  session: Session;
  event: SessionEvent;
}

/**
 * Fingerprints a mutating request (everything but its record_id), so a retry
 * can be told apart from a reuse of the idempotency key (AIP-155).
 */
export function requestHash<T extends { recordId: string }>(method: string, command: T): string {
  const { recordId: _ignored, ...rest } = command;
  return createHash("sha256").update(canonicalJson({ method, ...rest })).digest("base64url");
}

/**
 * Decides whether a request whose record_id is already in the log is a retry.
 *
 * @returns true for a retry (same request), false if the key is unused.
 * @throws DomainError RECORD_ID_REUSED if the key was used for another request.
 */
export function isReplay(existing: NewSessionEvent | null, hash: string): boolean {
  if (existing === null) return false;
  if (existing.requestHash !== hash) {
    throw new DomainError("RECORD_ID_REUSED", "record_id was already used for a different request", {
      record_id: existing.recordId,
    });
  }
  return true;
}

/** Checks the parts of a StartSession request that the proto cannot express. */
export function checkStart(command: StartCommand): void {
  checkJsonObject("metadata", command.metadata, MAX_METADATA_BYTES);
}

/** Checks the parts of an AppendSessionEvent request that the proto cannot express. */
export function checkAppend(command: AppendCommand): void {
  if (command.type.startsWith(RESERVED_TYPE_PREFIX)) {
    throw new DomainError("RESERVED_EVENT_TYPE", `type: types starting with "${RESERVED_TYPE_PREFIX}" are reserved for lifecycle events`, {
      field: "type",
    });
  }
  checkJsonObject("payload", command.payload, MAX_PAYLOAD_BYTES);
}

/**
 * Plans a new session and its "session.started" event (seq 1).
 *
 * @param open the user's ACTIVE or PAUSED session, if any.
 * @throws DomainError ACTIVE_SESSION_EXISTS if `open` is not null.
 */
export function planStart(
  command: StartCommand,
  hash: string,
  open: Session | null,
  now: Date,
  defaultIdleTimeoutMs: number,
): { session: Session; event: NewSessionEvent } {
  if (open !== null) {
    throw new DomainError("ACTIVE_SESSION_EXISTS", "the user already has an open session", {
      session_id: open.sessionId,
      user_id: open.userId,
    });
  }
  const idleTimeoutMs = command.idleTimeoutMs ?? defaultIdleTimeoutMs;
  const session: Session = {
    sessionId: newSessionId(),
    userId: command.userId,
    state: "active",
    startTime: now,
    endTime: null,
    lastActivityTime: now,
    expireTime: new Date(now.getTime() + idleTimeoutMs),
    idleTimeoutMs,
    endReason: null,
    performerId: command.performerId,
    isTrainingData: command.isTrainingData,
    metadata: command.metadata,
    lastSeq: 1,
  };
  const event = lifecycleEvent(session, 1, LIFECYCLE_TYPES.started, command, hash, now, {
    idle_timeout: formatDuration(idleTimeoutMs),
    metadata: command.metadata,
    is_training_data: command.isTrainingData,
  });
  return { session, event };
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
  };
}

/**
 * Plans ending an open session with END_REASON_CLIENT and its "session.ended" event.
 * The caller handles an already ENDED session (it returns the original end).
 */
export function planEnd(session: Session, command: EndCommand, hash: string, now: Date): { session: Session; event: NewSessionEvent } {
  const ended: Session = {
    ...session,
    state: "ended",
    endTime: now,
    expireTime: null,
    endReason: "client",
    lastSeq: session.lastSeq + 1,
  };
  const event = lifecycleEvent(ended, ended.lastSeq, LIFECYCLE_TYPES.ended, command, hash, now, { end_reason: "END_REASON_CLIENT" });
  return { session: ended, event };
}

/**
 * Plans recording activity on a session: moves its idle deadline.
 *
 * @throws DomainError SESSION_ENDED if the session has ended.
 */
export function planHeartbeat(session: Session, now: Date): Session {
  checkOpen(session);
  return { ...session, lastActivityTime: now, expireTime: new Date(now.getTime() + session.idleTimeoutMs) };
}

/**
 * Plans appending a caller's event (next seq); it counts as activity.
 *
 * @throws DomainError SESSION_ENDED if the session has ended.
 */
export function planAppend(session: Session, command: AppendCommand, hash: string, now: Date): { session: Session; event: NewSessionEvent } {
  const touched = planHeartbeat(session, now);
  const next: Session = { ...touched, lastSeq: session.lastSeq + 1 };
  const event: NewSessionEvent = {
    eventId: newEventId(),
    userId: session.userId,
    sessionId: session.sessionId,
    seq: next.lastSeq,
    recordId: command.recordId,
    requestHash: hash,
    type: command.type,
    eventTime: command.eventTime ?? now,
    receiveTime: now,
    source: command.source,
    performerId: command.performerId,
    payload: command.payload,
  };
  return { session: next, event };
}

/** @throws DomainError SESSION_ENDED if the session has ended. */
function checkOpen(session: Session): void {
  if (session.state === "ended") {
    throw new DomainError("SESSION_ENDED", "the session has ended", { session_id: session.sessionId });
  }
}

function lifecycleEvent(
  session: Session,
  seq: number,
  type: string,
  command: { recordId: string; performerId: string; eventTime: Date | null },
  hash: string,
  now: Date,
  payload: JsonObject,
): NewSessionEvent {
  return {
    eventId: newEventId(),
    userId: session.userId,
    sessionId: session.sessionId,
    seq,
    recordId: command.recordId,
    requestHash: hash,
    type,
    eventTime: command.eventTime ?? now,
    receiveTime: now,
    source: LIFECYCLE_SOURCE,
    performerId: command.performerId,
    payload,
  };
}

/** Formats milliseconds as a protobuf JSON Duration ("1.5s"). */
function formatDuration(ms: number): string {
  return `${ms / 1000}s`;
}

/**
 * Sessions and events as the domain sees them, and the rule that decides when
 * an open session has lapsed (idle timeout or max duration). Pure: no SQL, no
 * transport types. Times are database-clock instants with ms precision.
 */
import type { FeedPosition } from "./cursor.js";
import type { JsonObject } from "./json.js";

/** The proto's SessionState without the prefix and the _UNSPECIFIED value; "ended" is final. */
export type SessionState = "active" | "paused" | "ended";
/**
 * The proto's EndReason without the prefix and the _UNSPECIFIED value: "client"
 * comes from EndSession, "superseded" from a StartSession with the supersede
 * policy, the others from lapseOf.
 */
export type EndReason = "client" | "idle_timeout" | "superseded" | "max_duration";

/** A session as stored, which may have lapsed without saying so: report it through effectiveSession. */
export interface Session {
  sessionId: string;
  userId: string;
  /** 1-based ordinal among the user's sessions. */
  sessionIndex: number;
  /** The user's session before this one; "" for the first. */
  previousSessionId: string;
  state: SessionState;
  startTime: Date;
  endTime: Date | null;
  lastActivityTime: Date;
  /** The idle deadline, `lastActivityTime + idleTimeoutMs`; null while paused and once ended. */
  expireTime: Date | null;
  idleTimeoutMs: number;
  /** Null for no limit. */
  maxDurationMs: number | null;
  endReason: EndReason | null;
  performerId: string;
  isTrainingData: boolean;
  metadata: JsonObject;
  lastSeq: number;
  /** Hash of the event at `lastSeq`, the head of the session's hash chain. */
  lastHash: string;
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
  /** Link in the session's hash chain (see chain.ts). */
  hash: string;
}

/** Holds a stored event with its position in the global feed. */
export interface SessionEvent extends NewSessionEvent {
  position: FeedPosition;
}

/** The `source` of the events the service writes itself. Callers may send it too: the type, not the source, marks a lifecycle event. */
export const LIFECYCLE_SOURCE = "session_manager";

/** Names the lifecycle event types; callers may not append types with the "session." prefix. */
export const LIFECYCLE_TYPES = {
  started: "session.started",
  paused: "session.paused",
  resumed: "session.resumed",
  updated: "session.updated",
  ended: "session.ended",
} as const;

/** Returns when the session ends by itself, its max duration included; null without a limit. */
export function maxEndTime(session: Session): Date | null {
  return session.maxDurationMs === null ? null : new Date(session.startTime.getTime() + session.maxDurationMs);
}

/** How a lapsed session ended, as lapseOf decides; planLapse records it as "session.ended". */
export interface Lapse {
  reason: "idle_timeout" | "max_duration";
  /** For an idle timeout, the last activity (the session covers its real activity); else the max end time. */
  endTime: Date;
}

/**
 * Tells whether an open session has lapsed at `now`: its idle deadline (only
 * while ACTIVE) or its max end time has passed. When both have, the earlier
 * one decides.
 *
 * @returns the lapse, or null if the session is ended or still running.
 */
export function lapseOf(session: Session, now: Date): Lapse | null {
  if (session.state === "ended") return null;
  const idleAt = session.state === "active" ? session.expireTime : null;
  const maxAt = maxEndTime(session);
  if (idleAt !== null && idleAt <= now && (maxAt === null || idleAt <= maxAt)) {
    return { reason: "idle_timeout", endTime: session.lastActivityTime };
  }
  if (maxAt !== null && maxAt <= now) return { reason: "max_duration", endTime: maxAt };
  return null;
}

/**
 * Returns the session as every RPC reports it at `now`: a lapsed session
 * reads as ENDED even before its end is recorded (lazy enforcement).
 */
export function effectiveSession(session: Session, now: Date): Session {
  const lapse = lapseOf(session, now);
  if (lapse === null) return session;
  return { ...session, state: "ended", endTime: lapse.endTime, endReason: lapse.reason, expireTime: null };
}

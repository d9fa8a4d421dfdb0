/**
 * Maps between protobuf messages (gen/) and domain types. The only place that
 * knows both.
 */
import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromDate, type Duration, type Timestamp } from "@bufbuild/protobuf/wkt";
import { encodeCursor } from "../domain/cursor.js";
import { invalidRequest } from "../domain/errors.js";
import { isReadableJson } from "../domain/json.js";
import type { EndReason as DomainEndReason, Session, SessionEvent, SessionState as DomainState } from "../domain/session.js";
import {
  EndReason,
  SessionEventSchema,
  SessionSchema,
  SessionState,
  type Session as SessionMessage,
  type SessionEvent as SessionEventMessage,
} from "../../gen/sessionmanager/v1/session_pb.js";

const STATES: Record<DomainState, SessionState> = {
  active: SessionState.ACTIVE,
  paused: SessionState.PAUSED,
  ended: SessionState.ENDED,
};

const END_REASONS: Record<DomainEndReason, EndReason> = {
  client: EndReason.CLIENT,
  idle_timeout: EndReason.IDLE_TIMEOUT,
  superseded: EndReason.SUPERSEDED,
  max_duration: EndReason.MAX_DURATION,
};

/**
 * Maps a domain session to its message. Metadata too deep for standard
 * decoders (stored before the depth limit) is withheld: sent empty with
 * `metadata_withheld` set.
 */
export function toSessionMessage(session: Session): SessionMessage {
  const readable = isReadableJson(session.metadata);
  return create(SessionSchema, {
    sessionId: session.sessionId,
    userId: session.userId,
    state: STATES[session.state],
    startTime: timestampFromDate(session.startTime),
    endTime: session.endTime ? timestampFromDate(session.endTime) : undefined,
    lastActivityTime: timestampFromDate(session.lastActivityTime),
    expireTime: session.expireTime ? timestampFromDate(session.expireTime) : undefined,
    idleTimeout: durationFromMs(session.idleTimeoutMs),
    endReason: session.endReason ? END_REASONS[session.endReason] : EndReason.UNSPECIFIED,
    performerId: session.performerId,
    isTrainingData: session.isTrainingData,
    metadata: readable ? session.metadata : {},
    metadataWithheld: !readable,
    lastSeq: BigInt(session.lastSeq),
    sessionIndex: BigInt(session.sessionIndex),
    previousSessionId: session.previousSessionId,
    maxDuration: session.maxDurationMs === null ? undefined : durationFromMs(session.maxDurationMs),
  });
}

/**
 * Remembers each event's message. The feed's fan-out hands the SAME
 * SessionEvent object to every stream it feeds, so the message (and its
 * cursor) is built once per row per replica, not once per subscriber. Connect
 * still serializes the message once per stream: it offers no way to share the
 * encoded bytes. Keys are weak: a message lives as long as its event.
 */
const eventMessages = new WeakMap<SessionEvent, SessionEventMessage>();

/**
 * Maps a domain event to its message, with its cursor; memoized per event
 * object (treat as read-only). A payload too deep for standard decoders
 * (stored before the depth limit) is withheld: sent empty with
 * `payload_withheld` set, so it can never wedge a binary reader.
 */
export function toEventMessage(event: SessionEvent): SessionEventMessage {
  let message = eventMessages.get(event);
  if (message === undefined) {
    message = buildEventMessage(event);
    eventMessages.set(event, message);
  }
  return message;
}

function buildEventMessage(event: SessionEvent): SessionEventMessage {
  const readable = isReadableJson(event.payload);
  return create(SessionEventSchema, {
    eventId: event.eventId,
    cursor: encodeCursor(event.position),
    sessionId: event.sessionId,
    seq: BigInt(event.seq),
    userId: event.userId,
    recordId: event.recordId,
    type: event.type,
    eventTime: timestampFromDate(event.eventTime),
    receiveTime: timestampFromDate(event.receiveTime),
    source: event.source,
    performerId: event.performerId,
    payload: readable ? event.payload : {},
    payloadWithheld: !readable,
    hash: event.hash,
  });
}

/** Maps a state filter; UNSPECIFIED means any (null). */
export function fromStateFilter(state: SessionState): DomainState | null {
  const entry = Object.entries(STATES).find(([, value]) => value === state);
  return entry ? (entry[0] as DomainState) : null;
}

/**
 * Converts an optional Timestamp to a Date.
 *
 * @throws DomainError INVALID_REQUEST if `nanos` is outside 0..999,999,999.
 */
export function optionalDate(field: string, timestamp: Timestamp | undefined): Date | null {
  if (timestamp === undefined) return null;
  if (timestamp.nanos < 0 || timestamp.nanos > 999_999_999) throw invalidRequest(field, "nanos must be 0 to 999,999,999");
  return new Date(Number(timestamp.seconds) * 1000 + Math.floor(timestamp.nanos / 1_000_000));
}

/**
 * Converts an optional Duration to whole milliseconds.
 *
 * @throws DomainError INVALID_REQUEST if `nanos` is outside -999,999,999..999,999,999.
 */
export function optionalMs(field: string, duration: Duration | undefined): number | null {
  if (duration === undefined) return null;
  if (Math.abs(duration.nanos) > 999_999_999) throw invalidRequest(field, "nanos must be -999,999,999 to 999,999,999");
  return Number(duration.seconds) * 1000 + Math.trunc(duration.nanos / 1_000_000);
}

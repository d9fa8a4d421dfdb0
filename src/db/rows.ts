/**
 * Rows of sessions and session_events as postgres.js returns them, and their
 * mapping to domain types. Every repository maps rows here and nowhere else,
 * and inserts events with the one column list below.
 */
import type { JsonObject } from "../domain/json.js";
import type { EndReason, Session, SessionEvent, SessionState } from "../domain/session.js";
import type { Executor } from "./database.js";

/** Names the columns of a sessions row as postgres.js returns them (bigint as text). */
export interface SessionRow {
  user_id: string;
  session_id: string;
  session_index: string;
  previous_session_id: string;
  state: SessionState;
  start_time: Date;
  end_time: Date | null;
  last_activity_time: Date;
  expire_time: Date | null;
  idle_timeout_ms: string;
  max_duration_ms: string | null;
  end_reason: EndReason | null;
  performer_id: string;
  is_training_data: boolean;
  metadata: JsonObject;
  last_seq: string;
  last_hash: string;
}

/** Names the columns of a session_events row as postgres.js returns them (xid8 and bigint as text). */
export interface EventRow {
  user_id: string;
  session_id: string;
  seq: string;
  tx_id: string;
  id: string;
  event_id: string;
  record_id: string;
  request_hash: string;
  type: string;
  event_time: Date;
  receive_time: Date;
  source: string;
  performer_id: string;
  payload: JsonObject;
  hash: string;
}

/**
 * Lists the columns an insert into session_events writes, as a fragment for
 * `insert into session_events (${eventInsertColumns(tx)})`. The database
 * assigns the rest: tx_id (the writing transaction's id) and id.
 */
export function eventInsertColumns(ex: Executor) {
  return ex`
    user_id, session_id, seq, event_id, record_id, request_hash, type,
    event_time, receive_time, source, performer_id, payload, hash
  `;
}

/** Names a session by its full key (the sessions primary key). */
export interface SessionKey {
  userId: string;
  sessionId: string;
}

/** Maps a sessions row to a Session; its bigint columns become numbers. */
export function toSession(row: SessionRow): Session {
  return {
    sessionId: row.session_id,
    userId: row.user_id,
    sessionIndex: Number(row.session_index),
    previousSessionId: row.previous_session_id,
    state: row.state,
    startTime: row.start_time,
    endTime: row.end_time,
    lastActivityTime: row.last_activity_time,
    expireTime: row.expire_time,
    idleTimeoutMs: Number(row.idle_timeout_ms),
    maxDurationMs: row.max_duration_ms === null ? null : Number(row.max_duration_ms),
    endReason: row.end_reason,
    performerId: row.performer_id,
    isTrainingData: row.is_training_data,
    metadata: row.metadata,
    lastSeq: Number(row.last_seq),
    lastHash: row.last_hash,
  };
}

/** Maps a session_events row to a SessionEvent: `seq` becomes a number, (tx_id, id) its `position` as bigints. */
export function toEvent(row: EventRow): SessionEvent {
  return {
    eventId: row.event_id,
    userId: row.user_id,
    sessionId: row.session_id,
    seq: Number(row.seq),
    recordId: row.record_id,
    requestHash: row.request_hash,
    type: row.type,
    eventTime: row.event_time,
    receiveTime: row.receive_time,
    source: row.source,
    performerId: row.performer_id,
    payload: row.payload,
    hash: row.hash,
    position: { txId: BigInt(row.tx_id), id: BigInt(row.id) },
  };
}

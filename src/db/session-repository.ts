/**
 * SQL for sessions and their event log. Every function takes the executor
 * first, so it runs on the pool or inside the service's transaction. Rows are
 * mapped to domain types here and nowhere else.
 */
import type { JsonObject } from "../domain/json.js";
import type { EndReason, NewSessionEvent, Session, SessionEvent, SessionState } from "../domain/session.js";
import type { Executor } from "./database.js";

interface SessionRow {
  user_id: string;
  session_id: string;
  state: SessionState;
  start_time: Date;
  end_time: Date | null;
  last_activity_time: Date;
  expire_time: Date | null;
  idle_timeout_ms: string;
  end_reason: EndReason | null;
  performer_id: string;
  is_training_data: boolean;
  metadata: JsonObject;
  last_seq: string;
}

/** Names the columns of a session_events row as postgres.js returns them. */
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
}

/**
 * Takes the per-user advisory lock for the rest of the transaction. Every
 * transaction that writes a user's sessions or events takes it first, before
 * anything assigns a transaction id, so transaction-id order matches the
 * order in which a user's changes happen (see src/feed/feed-reader.ts).
 */
export async function lockUser(tx: Executor, userId: string): Promise<void> {
  await tx`select pg_advisory_xact_lock(hashtextextended(${userId}, 0))`;
}

/**
 * Takes the advisory lock of a session's user (see `lockUser`).
 *
 * @returns false if no such session exists (nothing is locked).
 */
export async function lockUserOfSession(tx: Executor, sessionId: string): Promise<boolean> {
  const rows = await tx`
    select pg_advisory_xact_lock(hashtextextended(user_id, 0))
    from sessions
    where session_id = ${sessionId}
  `;
  return rows.length > 0;
}

/** Reads the database clock (the service's only time source), truncated to ms. */
export async function readClock(ex: Executor): Promise<Date> {
  const [row] = await ex<{ now: Date }[]>`select clock_timestamp() as now`;
  return row!.now;
}

/** Finds a session by id. */
export async function findSession(ex: Executor, sessionId: string): Promise<Session | null> {
  const [row] = await ex<SessionRow[]>`
    select *
    from sessions
    where session_id = ${sessionId}
  `;
  return row ? toSession(row) : null;
}

/** Finds the user's ACTIVE or PAUSED session. */
export async function findOpenSession(ex: Executor, userId: string): Promise<Session | null> {
  const [row] = await ex<SessionRow[]>`
    select *
    from sessions
    where user_id = ${userId}
      and state <> 'ended'
  `;
  return row ? toSession(row) : null;
}

/** Finds the event a user's request with this idempotency key wrote. */
export async function findEventByRecordId(ex: Executor, userId: string, recordId: string): Promise<SessionEvent | null> {
  const [row] = await ex<EventRow[]>`
    select *
    from session_events
    where user_id = ${userId}
      and record_id = ${recordId}
  `;
  return row ? toEvent(row) : null;
}

/** Finds the event that a request of the session's user with this idempotency key wrote. */
export async function findEventOfSessionUser(ex: Executor, sessionId: string, recordId: string): Promise<SessionEvent | null> {
  const [row] = await ex<EventRow[]>`
    select *
    from session_events
    where user_id = (select user_id from sessions where session_id = ${sessionId} limit 1)
      and record_id = ${recordId}
  `;
  return row ? toEvent(row) : null;
}

/** Finds one event of a session by its type (the first, by seq). */
export async function findEventByType(ex: Executor, session: Session, type: string): Promise<SessionEvent | null> {
  const [row] = await ex<EventRow[]>`
    select *
    from session_events
    where user_id = ${session.userId}
      and session_id = ${session.sessionId}
      and type = ${type}
    order by seq
    limit 1
  `;
  return row ? toEvent(row) : null;
}

/** Inserts a new session and its first event in one statement. */
export async function insertSessionWithEvent(tx: Executor, session: Session, event: NewSessionEvent): Promise<SessionEvent> {
  const [row] = await tx<{ tx_id: string; id: string }[]>`
    with new_session as (
      insert into sessions (
        user_id, session_id, state, start_time, end_time, last_activity_time, expire_time,
        idle_timeout_ms, end_reason, performer_id, is_training_data, metadata, last_seq
      )
      values (
        ${session.userId}, ${session.sessionId}, ${session.state}, ${session.startTime}, ${session.endTime},
        ${session.lastActivityTime}, ${session.expireTime}, ${session.idleTimeoutMs}, ${session.endReason},
        ${session.performerId}, ${session.isTrainingData}, ${tx.json(session.metadata)}, ${session.lastSeq}
      )
      returning user_id, session_id
    )
    ${insertEvent(tx, event, tx`select user_id, session_id from new_session`)}
  `;
  return { ...event, position: { txId: BigInt(row!.tx_id), id: BigInt(row!.id) } };
}

/**
 * Stores a session's new state and appends an event, in one statement. The
 * update only applies if the stored `last_seq` is still `previousSeq`.
 *
 * @returns the stored event, or null if the session changed meanwhile.
 */
export async function updateSessionWithEvent(
  tx: Executor,
  session: Session,
  previousSeq: number,
  event: NewSessionEvent,
): Promise<SessionEvent | null> {
  const [row] = await tx<{ tx_id: string; id: string }[]>`
    with updated as (
      ${updateSession(tx, session, previousSeq)}
    )
    ${insertEvent(tx, event, tx`select user_id, session_id from updated`)}
  `;
  return row ? { ...event, position: { txId: BigInt(row.tx_id), id: BigInt(row.id) } } : null;
}

/**
 * Stores a session's new state (activity only, no event).
 *
 * @returns false if the session changed meanwhile (its `last_seq` moved).
 */
export async function storeSession(tx: Executor, session: Session, previousSeq: number): Promise<boolean> {
  const rows = await tx`${updateSession(tx, session, previousSeq)}`;
  return rows.length > 0;
}

function updateSession(tx: Executor, session: Session, previousSeq: number) {
  return tx`
    update sessions
    set state = ${session.state},
        end_time = ${session.endTime},
        last_activity_time = ${session.lastActivityTime},
        expire_time = ${session.expireTime},
        end_reason = ${session.endReason},
        metadata = ${tx.json(session.metadata)},
        is_training_data = ${session.isTrainingData},
        last_seq = ${session.lastSeq}
    where user_id = ${session.userId}
      and session_id = ${session.sessionId}
      and last_seq = ${previousSeq}
    returning user_id, session_id
  `;
}

function insertEvent(tx: Executor, event: NewSessionEvent, source: ReturnType<Executor>) {
  return tx`
    insert into session_events (
      user_id, session_id, seq, event_id, record_id, request_hash, type,
      event_time, receive_time, source, performer_id, payload
    )
    select
      user_id, session_id, ${event.seq}, ${event.eventId}, ${event.recordId}, ${event.requestHash}, ${event.type},
      ${event.eventTime}, ${event.receiveTime}, ${event.source}, ${event.performerId}, ${tx.json(event.payload)}
    from (${source}) as target
    returning tx_id::text as tx_id, id::text as id
  `;
}

/** Selects sessions for `listSessions`. */
export interface SessionFilter {
  /** Only this user's sessions; null for all users. */
  userId: string | null;
  /** Only sessions in this state; null for any. */
  state: SessionState | null;
}

/** Names a position in the newest-first session order. */
export interface SessionPosition {
  startTime: Date;
  sessionId: string;
}

/** Lists sessions newest first (start_time, then session_id, descending), after a keyset position. */
export async function listSessions(
  ex: Executor,
  filter: SessionFilter,
  after: SessionPosition | null,
  limit: number,
): Promise<Session[]> {
  const rows = await ex<SessionRow[]>`
    select *
    from sessions
    where true
      ${filter.userId === null ? ex`` : ex`and user_id = ${filter.userId}`}
      ${filter.state === null ? ex`` : ex`and state = ${filter.state}`}
      ${after === null ? ex`` : ex`and (start_time, session_id) < (${after.startTime}, ${after.sessionId})`}
    order by start_time desc, session_id desc
    limit ${limit}
  `;
  return rows.map(toSession);
}

/** Lists a session's events in seq order after `afterSeq`. */
export async function listSessionEvents(ex: Executor, session: Session, afterSeq: number, limit: number): Promise<SessionEvent[]> {
  const rows = await ex<EventRow[]>`
    select *
    from session_events
    where user_id = ${session.userId}
      and session_id = ${session.sessionId}
      and seq > ${afterSeq}
    order by seq
    limit ${limit}
  `;
  return rows.map(toEvent);
}

function toSession(row: SessionRow): Session {
  return {
    sessionId: row.session_id,
    userId: row.user_id,
    state: row.state,
    startTime: row.start_time,
    endTime: row.end_time,
    lastActivityTime: row.last_activity_time,
    expireTime: row.expire_time,
    idleTimeoutMs: Number(row.idle_timeout_ms),
    endReason: row.end_reason,
    performerId: row.performer_id,
    isTrainingData: row.is_training_data,
    metadata: row.metadata,
    lastSeq: Number(row.last_seq),
  };
}

/** Maps an event row (with `tx_id` as text) to a domain event. */
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
    position: { txId: BigInt(row.tx_id), id: BigInt(row.id) },
  };
}

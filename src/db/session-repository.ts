/**
 * SQL for sessions and their event log. Every function takes the executor
 * first, so it runs on the pool or inside the service's transaction. Rows are
 * mapped to domain types here and nowhere else.
 */
import type { JsonObject } from "../domain/json.js";
import type { SessionChange } from "../domain/lifecycle.js";
import { maxEndTime, type EndReason, type NewSessionEvent, type Session, type SessionEvent, type SessionState } from "../domain/session.js";
import type { Executor } from "./database.js";

/** Names the columns of a sessions row as postgres.js returns them. */
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

/** Holds a session read together with the database clock of the same statement. */
export interface SessionRead {
  session: Session;
  now: Date;
}

/**
 * Takes the per-user advisory lock for the rest of the transaction. Every
 * transaction that writes a user's sessions or events takes it first, before
 * anything assigns a transaction id, so transaction-id order matches the
 * order in which a user's changes happen (the feed orders by it).
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

/** Reads the database clock (the service's only time source). */
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

/** Finds a session by id, with the statement's clock (for the lazy view of lapsed sessions). */
export async function findSessionWithClock(ex: Executor, sessionId: string): Promise<SessionRead | null> {
  const [row] = await ex<(SessionRow & { db_now: Date })[]>`
    select *, now() as db_now
    from sessions
    where session_id = ${sessionId}
  `;
  return row ? { session: toSession(row), now: row.db_now } : null;
}

/** Holds a user's session counter and latest session. */
export interface UserHistory {
  /** session_index of the user's latest session (pruned sessions still count). */
  lastIndex: number;
  lastSessionId: string;
  /** The latest session (the only one that can be open); null if pruned. */
  latest: Session | null;
}

/** Finds a user's session counter and latest session; null for a user without sessions. */
export async function findUserHistory(ex: Executor, userId: string): Promise<UserHistory | null> {
  const [row] = await ex<({ last_session_index: string; last_session_id: string } & Partial<SessionRow>)[]>`
    select users.last_session_index, users.last_session_id, sessions.*
    from users
    left join sessions
      on sessions.user_id = users.user_id
     and sessions.session_id = users.last_session_id
    where users.user_id = ${userId}
  `;
  if (!row) return null;
  return {
    lastIndex: Number(row.last_session_index),
    lastSessionId: row.last_session_id,
    latest: row.session_id ? toSession(row as SessionRow) : null,
  };
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

/** Holds the idempotency record of a request that wrote no event. */
export interface RequestRecord {
  recordId: string;
  requestHash: string;
}

/** Finds the record of an event-less request by a session's user and idempotency key. */
export async function findRequestRecordOfSessionUser(ex: Executor, sessionId: string, recordId: string): Promise<RequestRecord | null> {
  const [row] = await ex<{ record_id: string; request_hash: string }[]>`
    select record_id, request_hash
    from request_records
    where user_id = (select user_id from sessions where session_id = ${sessionId} limit 1)
      and record_id = ${recordId}
  `;
  return row ? { recordId: row.record_id, requestHash: row.request_hash } : null;
}

/** Finds the record of an event-less request by user and idempotency key. */
export async function findRequestRecord(ex: Executor, userId: string, recordId: string): Promise<RequestRecord | null> {
  const [row] = await ex<{ record_id: string; request_hash: string }[]>`
    select record_id, request_hash
    from request_records
    where user_id = ${userId}
      and record_id = ${recordId}
  `;
  return row ? { recordId: row.record_id, requestHash: row.request_hash } : null;
}

/** Records a request that wrote no event, so its retries are recognised. */
export async function insertRequestRecord(tx: Executor, session: Session, recordId: string, requestHash: string): Promise<void> {
  await tx`
    insert into request_records (user_id, record_id, request_hash, session_id)
    values (${session.userId}, ${recordId}, ${requestHash}, ${session.sessionId})
  `;
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

/** Inserts a new session and its first event, and makes it the user's latest session, in one statement. */
export async function insertSession(tx: Executor, session: Session, event: NewSessionEvent): Promise<SessionEvent> {
  const [row] = await tx<{ tx_id: string; id: string }[]>`
    with new_session as (
      insert into sessions (
        user_id, session_id, session_index, previous_session_id, state, start_time, end_time,
        last_activity_time, expire_time, idle_timeout_ms, max_duration_ms, max_end_time, end_reason,
        performer_id, is_training_data, metadata, last_seq, last_hash
      )
      values (
        ${session.userId}, ${session.sessionId}, ${session.sessionIndex}, ${session.previousSessionId}, ${session.state},
        ${session.startTime}, ${session.endTime}, ${session.lastActivityTime}, ${session.expireTime},
        ${session.idleTimeoutMs}, ${session.maxDurationMs},
        ${maxEndTime(session)},
        ${session.endReason}, ${session.performerId}, ${session.isTrainingData}, ${tx.json(session.metadata)},
        ${session.lastSeq}, ${session.lastHash}
      )
      returning user_id, session_id
    ),
    latest as (
      insert into users (user_id, last_session_index, last_session_id)
      select user_id, ${session.sessionIndex}, session_id
      from new_session
      on conflict (user_id) do update
        set last_session_index = excluded.last_session_index,
            last_session_id = excluded.last_session_id
      returning user_id
    )
    insert into session_events (
      user_id, session_id, seq, event_id, record_id, request_hash, type,
      event_time, receive_time, source, performer_id, payload, hash
    )
    select
      new_session.user_id, new_session.session_id, ${event.seq}, ${event.eventId}, ${event.recordId},
      ${event.requestHash}, ${event.type}, ${event.eventTime}, ${event.receiveTime}, ${event.source},
      ${event.performerId}, ${tx.json(event.payload)}, ${event.hash}
    from new_session
    join latest on latest.user_id = new_session.user_id
    returning tx_id, id
  `;
  return { ...event, position: { txId: BigInt(row!.tx_id), id: BigInt(row!.id) } };
}

/**
 * Stores session changes and appends their events, in one statement for any
 * number of sessions. A change applies only if the stored `last_seq` still
 * equals `before.lastSeq` (the caller holds the user's lock, so it does;
 * this guards against writers that do not).
 *
 * @returns the stored events, in the order of `changes`; one that did not
 *   apply is missing (compare lengths).
 */
export async function applyChanges(tx: Executor, changes: SessionChange[]): Promise<SessionEvent[]> {
  if (changes.length === 0) return [];
  const input = changes.map(({ before, after, event }, ord) => ({
    ord,
    user_id: after.userId,
    session_id: after.sessionId,
    previous_seq: before.lastSeq,
    state: after.state,
    end_time: after.endTime?.toISOString() ?? null,
    last_activity_time: after.lastActivityTime.toISOString(),
    expire_time: after.expireTime?.toISOString() ?? null,
    end_reason: after.endReason,
    // Metadata is rewritten only when it changed (UpdateSession); null keeps it.
    metadata: after.metadata === before.metadata ? null : after.metadata,
    is_training_data: after.isTrainingData,
    last_seq: after.lastSeq,
    last_hash: after.lastHash,
    event_id: event.eventId,
    record_id: event.recordId,
    request_hash: event.requestHash,
    type: event.type,
    event_time: event.eventTime.toISOString(),
    receive_time: event.receiveTime.toISOString(),
    source: event.source,
    performer_id: event.performerId,
    payload: event.payload,
    hash: event.hash,
  }));
  const rows = await tx<{ ord: number; tx_id: string; id: string }[]>`
    with input as (
      select *
      from jsonb_to_recordset(${tx.json(input)}) as t(
        ord int, user_id text, session_id text, previous_seq bigint, state text, end_time timestamptz,
        last_activity_time timestamptz, expire_time timestamptz, end_reason text, metadata jsonb,
        is_training_data boolean, last_seq bigint, last_hash text, event_id text, record_id text,
        request_hash text, type text, event_time timestamptz, receive_time timestamptz, source text,
        performer_id text, payload jsonb, hash text
      )
    ),
    updated as (
      update sessions
      set state = input.state,
          end_time = input.end_time,
          last_activity_time = input.last_activity_time,
          expire_time = input.expire_time,
          end_reason = input.end_reason,
          metadata = coalesce(input.metadata, sessions.metadata),
          is_training_data = input.is_training_data,
          last_seq = input.last_seq,
          last_hash = input.last_hash
      from input
      where sessions.user_id = input.user_id
        and sessions.session_id = input.session_id
        and sessions.last_seq = input.previous_seq
      returning sessions.user_id, sessions.session_id
    ),
    inserted as (
      insert into session_events (
        user_id, session_id, seq, event_id, record_id, request_hash, type,
        event_time, receive_time, source, performer_id, payload, hash
      )
      select
        input.user_id, input.session_id, input.last_seq, input.event_id, input.record_id, input.request_hash,
        input.type, input.event_time, input.receive_time, input.source, input.performer_id, input.payload, input.hash
      from input
      join updated using (user_id, session_id)
      order by input.ord
      returning event_id, tx_id, id
    )
    select input.ord, inserted.tx_id, inserted.id
    from inserted
    join input using (event_id)
    order by input.ord
  `;
  return rows.map((row) => ({ ...changes[row.ord]!.event, position: { txId: BigInt(row.tx_id), id: BigInt(row.id) } }));
}

/**
 * Stores a heartbeat (activity only, no event).
 *
 * @returns false if the session changed meanwhile (its `last_seq` moved).
 */
export async function touchSession(tx: Executor, session: Session): Promise<boolean> {
  const rows = await tx`
    update sessions
    set last_activity_time = ${session.lastActivityTime},
        expire_time = ${session.expireTime}
    where user_id = ${session.userId}
      and session_id = ${session.sessionId}
      and last_seq = ${session.lastSeq}
      and state = 'active'
    returning 1
  `;
  return rows.length > 0;
}

/** Selects sessions for `listSessions`. */
export interface SessionFilter {
  /** Only this user's sessions; null for all users. */
  userId: string | null;
  /** Only sessions in this state as reported (a lapsed session counts as ended); null for any. */
  state: SessionState | null;
}

/** Names a position in the newest-first session order. */
export interface SessionPosition {
  startTime: Date;
  sessionId: string;
}

/** Lists sessions newest first (start_time, then session_id, descending), after a keyset position. */
export async function listSessions(ex: Executor, filter: SessionFilter, after: SessionPosition | null, limit: number): Promise<{ sessions: Session[]; now: Date }> {
  const rows = await ex<(SessionRow & { db_now: Date })[]>`
    select *, now() as db_now
    from sessions
    where true
      ${filter.userId === null ? ex`` : ex`and user_id = ${filter.userId}`}
      ${stateCondition(ex, filter.state)}
      ${after === null ? ex`` : ex`and (start_time, session_id) < (${after.startTime}, ${after.sessionId})`}
    order by start_time desc, session_id desc
    limit ${limit}
  `;
  const now = rows[0]?.db_now ?? new Date();
  return { sessions: rows.map(toSession), now };
}

/** Filters by reported state: a session whose deadline passed reads as ended (see domain lapseOf). */
function stateCondition(ex: Executor, state: SessionState | null) {
  switch (state) {
    case null:
      return ex``;
    case "ended":
      return ex`and (state = 'ended' or deadline <= now())`;
    default:
      return ex`and state = ${state} and (deadline is null or deadline > now())`;
  }
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

/** Maps a session row to a domain session. */
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

/** Maps an event row to a domain event. */
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

/** Names a session by its full key. */
export interface SessionKey {
  userId: string;
  sessionId: string;
}

/**
 * Picks up to `limit` open sessions whose deadline has passed, oldest
 * deadline first, and takes their users' advisory locks with try-lock,
 * skipping users whose lock is busy (a writer or another sweeper holds it;
 * they are retried on a later pass). Try-locks never wait, so sweepers cannot
 * deadlock; a second sweeper skips the first one's users and takes the next
 * ones. The lock is tried row by row until `limit` are held, so no lock is
 * taken for a session that is not returned.
 */
export async function lockLapsedSessions(tx: Executor, limit: number): Promise<SessionKey[]> {
  const rows = await tx<{ user_id: string; session_id: string }[]>`
    with candidates as materialized (
      select user_id, session_id
      from sessions
      where state <> 'ended'
        and deadline <= now()
      order by deadline
      limit ${limit * 4}
    )
    select user_id, session_id
    from candidates
    where pg_try_advisory_xact_lock(hashtextextended(user_id, 0))
    limit ${limit}
  `;
  return rows.map((row) => ({ userId: row.user_id, sessionId: row.session_id }));
}

/** Finds sessions by their keys (in no particular order). */
export async function findSessions(ex: Executor, keys: SessionKey[]): Promise<Session[]> {
  if (keys.length === 0) return [];
  const rows = await ex<SessionRow[]>`
    select sessions.*
    from sessions
    join unnest(${keys.map((key) => key.userId)}::text[], ${keys.map((key) => key.sessionId)}::text[]) as wanted(user_id, session_id)
      using (user_id, session_id)
  `;
  return rows.map(toSession);
}

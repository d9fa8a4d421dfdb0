/**
 * SQL of a write batch (src/service/write-batch.ts): the locks, reads and
 * writes of any number of mutating commands in one transaction, a few
 * statements each, sent pipelined (postgres.js writes the statements issued
 * in one tick as one packet), so a batch costs the same round trips as one
 * command.
 *
 * Every function takes the service's transaction; the reads run after
 * `lockUsers` in the same pipeline, so they see the state as of the locks.
 */
import { maxEndTime, type Session, type SessionEvent } from "../domain/session.js";
import type { Transaction } from "./database.js";
import type { UserHistory } from "./session-repository.js";
import { eventInsertColumns, toEvent, toSession, type EventRow, type SessionRow } from "./rows.js";

/**
 * Makes the rest of the transaction run its prepared statements on generic
 * plans. PostgreSQL's default (plan_cache_mode auto) keeps replanning a
 * statement whose generic plan it costs higher than its custom ones, which
 * `= any($1::text[])` always is (10 elements assumed, 1 given): about 0.3
 * to 0.7 ms of planning per statement and execution, most of a batch's
 * database time at low load. The batch's generic plans are index probes
 * (checked with EXPLAIN EXECUTE). Sent first in the batch's first exchange.
 */
export async function useGenericPlans(tx: Transaction): Promise<void> {
  await tx`set local plan_cache_mode = force_generic_plan`;
}

/**
 * Takes the advisory lock of every user named, directly or through one of
 * their sessions, in user_id order (the order prune takes them in too, see
 * audit-repository.ts), so two batches or a batch and a prune never wait
 * for each other in a cycle. One statement; it assigns no transaction id.
 */
export async function lockUsers(tx: Transaction, userIds: string[], sessionIds: string[]): Promise<void> {
  await tx`
    select pg_advisory_xact_lock(hashtextextended(user_id, 0))
    from (
      select user_id from unnest(${userIds}::text[]) as user_id
      union
      select user_id from sessions where session_id = any(${sessionIds}::text[])
      order by user_id
    ) as locked
  `;
}

/** Finds sessions by id (as stored); missing ids are absent from the result. */
export async function findSessionsById(tx: Transaction, sessionIds: string[]): Promise<Session[]> {
  const rows = await tx<SessionRow[]>`
    select *
    from sessions
    where session_id = any(${sessionIds}::text[])
  `;
  return rows.map(toSession);
}

/** Finds the session counter and latest session of each user; users without sessions are absent. */
export async function findUserHistories(tx: Transaction, userIds: string[]): Promise<Map<string, UserHistory>> {
  const rows = await tx<({ history_user_id: string; last_session_index: string; last_session_id: string } & Partial<SessionRow>)[]>`
    select users.user_id as history_user_id, users.last_session_index, users.last_session_id, sessions.*
    from users
    left join sessions
      on sessions.user_id = users.user_id
     and sessions.session_id = users.last_session_id
    where users.user_id = any(${userIds}::text[])
  `;
  return new Map(
    rows.map((row) => [
      row.history_user_id,
      {
        lastIndex: Number(row.last_session_index),
        lastSessionId: row.last_session_id,
        latest: row.session_id ? toSession(row as SessionRow) : null,
      },
    ]),
  );
}

/**
 * Names idempotency keys to look up: `byUser` pairs a user with a
 * record_id, `bySession` a session (whose user owns the key) with one.
 */
export interface KeyLookup {
  byUser: { userId: string; recordId: string }[];
  bySession: { sessionId: string; recordId: string }[];
}

/** What the earlier requests with the looked-up keys left: events, and request records of event-less requests. */
export interface FoundKeys {
  events: SessionEvent[];
  records: { userId: string; recordId: string; requestHash: string }[];
}

/** Finds the events and request records of the looked-up keys (two statements, pipelined). */
export async function findKeys(tx: Transaction, keys: KeyLookup): Promise<FoundKeys> {
  const userIds = keys.byUser.map((k) => k.userId);
  const userRecords = keys.byUser.map((k) => k.recordId);
  const sessionIds = keys.bySession.map((k) => k.sessionId);
  const sessionRecords = keys.bySession.map((k) => k.recordId);
  const owners = () => tx`
    select user_id, record_id
    from unnest(${userIds}::text[], ${userRecords}::text[]) as k(user_id, record_id)
    union
    select sessions.user_id, k.record_id
    from unnest(${sessionIds}::text[], ${sessionRecords}::text[]) as k(session_id, record_id)
    join sessions on sessions.session_id = k.session_id
  `;
  const [events, records] = await Promise.all([
    tx<EventRow[]>`
      select session_events.*
      from (${owners()}) as k
      join session_events using (user_id, record_id)
    `,
    tx<{ user_id: string; record_id: string; request_hash: string }[]>`
      select request_records.user_id, request_records.record_id, request_records.request_hash
      from (${owners()}) as k
      join request_records using (user_id, record_id)
    `,
  ]);
  return {
    events: events.map(toEvent),
    records: records.map((row) => ({ userId: row.user_id, recordId: row.record_id, requestHash: row.request_hash })),
  };
}

/** Finds the "session.ended" event of each session given (at most one each). */
export async function findEndEvents(tx: Transaction, sessions: Pick<Session, "userId" | "sessionId">[]): Promise<SessionEvent[]> {
  const rows = await tx<EventRow[]>`
    select session_events.*
    from unnest(${sessions.map((s) => s.userId)}::text[], ${sessions.map((s) => s.sessionId)}::text[]) as k(user_id, session_id)
    join session_events using (user_id, session_id)
    where session_events.type = 'session.ended'
  `;
  return rows.map(toEvent);
}

/** A stored session's new state, applied only if its `last_seq` is still `previousSeq`. */
export interface SessionUpdate {
  session: Session;
  previousSeq: number;
}

/**
 * Stores the new state of existing sessions (one statement; metadata and
 * is_training_data are left as they are). Its guard fails inside the
 * statement, so the transaction is aborted at the statement itself.
 *
 * @throws PostgresError 40001 (serialization_failure, from
 *   `session_manager_check`) when a session's `last_seq` is no longer
 *   `previousSeq`: a writer without the user's lock changed it; the
 *   transaction is aborted and is retried by the caller.
 */
export async function updateSessions(tx: Transaction, updates: SessionUpdate[]): Promise<void> {
  const column = <T>(pick: (update: SessionUpdate) => T) => updates.map(pick);
  // postgres.js types an array of Dates as one timestamptz; ISO strings are cast by the statement.
  const times = (pick: (session: Session) => Date | null) => updates.map((u) => pick(u.session)?.toISOString() ?? null);
  // unnest, not jsonb_to_recordset: the planner takes unnest of a parameter for 10 rows, so it
  // probes the primary key per row; a set-returning function counts as 100 rows, and below a few
  // thousand sessions that made it hash-join a scan of the whole table.
  await tx`
    with updated as (
      update sessions
      set state = input.state,
          end_time = input.end_time,
          last_activity_time = input.last_activity_time,
          expire_time = input.expire_time,
          end_reason = input.end_reason,
          last_seq = input.last_seq,
          last_hash = input.last_hash
      from unnest(
        ${column((u) => u.session.userId)}::text[],
        ${column((u) => u.session.sessionId)}::text[],
        ${column((u) => u.previousSeq)}::bigint[],
        ${column((u) => u.session.state)}::text[],
        ${times((s) => s.endTime)}::timestamptz[],
        ${times((s) => s.lastActivityTime)}::timestamptz[],
        ${times((s) => s.expireTime)}::timestamptz[],
        ${column((u) => u.session.endReason)}::text[],
        ${column((u) => u.session.lastSeq)}::bigint[],
        ${column((u) => u.session.lastHash)}::text[]
      ) as input(user_id, session_id, previous_seq, state, end_time, last_activity_time, expire_time, end_reason, last_seq, last_hash)
      where sessions.user_id = input.user_id
        and sessions.session_id = input.session_id
        and sessions.last_seq = input.previous_seq
      returning 1
    )
    select session_manager_check(count(*) = ${updates.length}, 'a session changed without its user lock held') from updated
  `;
}

/**
 * Inserts new sessions (in their state at the end of the batch) and makes
 * each user's newest one its latest session (users row), in one statement.
 */
export async function insertSessions(tx: Transaction, sessions: Session[]): Promise<void> {
  const input = sessions.map((s) => ({
    user_id: s.userId,
    session_id: s.sessionId,
    session_index: s.sessionIndex,
    previous_session_id: s.previousSessionId,
    state: s.state,
    start_time: s.startTime,
    end_time: s.endTime,
    last_activity_time: s.lastActivityTime,
    expire_time: s.expireTime,
    idle_timeout_ms: s.idleTimeoutMs,
    max_duration_ms: s.maxDurationMs,
    max_end_time: maxEndTime(s),
    end_reason: s.endReason,
    performer_id: s.performerId,
    is_training_data: s.isTrainingData,
    metadata: s.metadata,
    last_seq: s.lastSeq,
    last_hash: s.lastHash,
  }));
  const latest = new Map<string, Session>();
  for (const s of sessions) if ((latest.get(s.userId)?.sessionIndex ?? 0) < s.sessionIndex) latest.set(s.userId, s);
  const users = [...latest.values()].map((s) => ({ user_id: s.userId, last_session_index: s.sessionIndex, last_session_id: s.sessionId }));
  await tx`
    with new_sessions as (
      insert into sessions (
        user_id, session_id, session_index, previous_session_id, state, start_time, end_time,
        last_activity_time, expire_time, idle_timeout_ms, max_duration_ms, max_end_time, end_reason,
        performer_id, is_training_data, metadata, last_seq, last_hash
      )
      select
        user_id, session_id, session_index, previous_session_id, state, start_time, end_time,
        last_activity_time, expire_time, idle_timeout_ms, max_duration_ms, max_end_time, end_reason,
        performer_id, is_training_data, metadata, last_seq, last_hash
      from jsonb_to_recordset(${tx.json(input)}) as t(
        user_id text, session_id text, session_index bigint, previous_session_id text, state text,
        start_time timestamptz, end_time timestamptz, last_activity_time timestamptz, expire_time timestamptz,
        idle_timeout_ms bigint, max_duration_ms bigint, max_end_time timestamptz, end_reason text,
        performer_id text, is_training_data boolean, metadata jsonb, last_seq bigint, last_hash text
      )
      returning 1
    )
    insert into users (user_id, last_session_index, last_session_id)
    select user_id, last_session_index, last_session_id
    from jsonb_to_recordset(${tx.json(users)}) as u(user_id text, last_session_index bigint, last_session_id text)
    on conflict (user_id) do update
      set last_session_index = excluded.last_session_index,
          last_session_id = excluded.last_session_id
  `;
}

/**
 * Appends events in the given order (one statement): their ids, and so
 * their feed order within the transaction, follow it.
 *
 * @returns the feed position of each event, by event_id.
 */
export async function insertEvents(tx: Transaction, events: Omit<SessionEvent, "position">[]): Promise<Map<string, SessionEvent["position"]>> {
  const input = events.map((e, ord) => ({
    ord,
    user_id: e.userId,
    session_id: e.sessionId,
    seq: e.seq,
    event_id: e.eventId,
    record_id: e.recordId,
    request_hash: e.requestHash,
    type: e.type,
    event_time: e.eventTime,
    receive_time: e.receiveTime,
    source: e.source,
    performer_id: e.performerId,
    payload: e.payload,
    hash: e.hash,
  }));
  const rows = await tx<{ event_id: string; tx_id: string; id: string }[]>`
    insert into session_events (${eventInsertColumns(tx)})
    select user_id, session_id, seq, event_id, record_id, request_hash, type, event_time, receive_time, source, performer_id, payload, hash
    from jsonb_to_recordset(${tx.json(input)}) as t(
      ord int, user_id text, session_id text, seq bigint, event_id text, record_id text, request_hash text, type text,
      event_time timestamptz, receive_time timestamptz, source text, performer_id text, payload jsonb, hash text
    )
    order by ord
    returning event_id, tx_id, id
  `;
  return new Map(rows.map((row) => [row.event_id, { txId: BigInt(row.tx_id), id: BigInt(row.id) }]));
}

/**
 * SQL for sessions and their event log: reads, the writes of a session's
 * lifecycle, and listing. Every function takes the executor first; those
 * that write take the service's transaction (the caller holds the user's
 * lock, see src/db/locks.ts). Rows are mapped in src/db/rows.ts.
 */
import type { SessionChange } from "../domain/lifecycle.js";
import { maxEndTime, type NewSessionEvent, type Session, type SessionEvent, type SessionState } from "../domain/session.js";
import type { Executor, Transaction } from "./database.js";
import { eventInsertColumns, toEvent, toSession, type EventRow, type SessionRow } from "./rows.js";

/** Holds a session read together with the database clock of the same statement. */
export interface SessionRead {
  session: Session;
  now: Date;
}

/** Finds a session as stored (a lapse not yet recorded still reads as open); null if there is none. */
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

/**
 * Stores session changes and appends their events, in one statement for any
 * number of sessions. A change applies only if the stored `last_seq` still
 * equals `before.lastSeq` (the caller holds the user's lock, so it does;
 * this guards against writers that do not).
 *
 * @returns the stored events, in the order of `changes`; one that did not
 *   apply is missing (compare lengths).
 */
export async function applyChanges(tx: Transaction, changes: SessionChange[]): Promise<SessionEvent[]> {
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
      insert into session_events (${eventInsertColumns(tx)})
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

/** Selects sessions for `listSessions`. */
export interface SessionFilter {
  /** Only this user's sessions; null for all users. */
  userId: string | null;
  /** Only sessions in this state as reported (a lapsed session counts as ended); null for any. */
  state: SessionState | null;
}

/** A keyset position in `listSessions` order; ListSessions page tokens carry it. */
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

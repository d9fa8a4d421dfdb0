/**
 * SQL for audit (`session-manager verify`) and retention
 * (`session-manager prune`): sessions in pages, their events in seq order,
 * and the removal of whole ended sessions.
 */
import type { FeedPosition } from "../domain/cursor.js";
import type { Session, SessionEvent } from "../domain/session.js";
import type { Executor, Transaction } from "./database.js";
import { toEvent, toSession, type EventRow, type SessionKey, type SessionRow } from "./rows.js";

/** Selects the sessions to verify; all fields null means every session. */
export interface AuditScope {
  sessionId: string | null;
  userId: string | null;
}

/** Lists sessions in (user_id, session_id) order after a key, within a scope. */
export async function listSessionsForAudit(ex: Executor, scope: AuditScope, after: SessionKey | null, limit: number): Promise<Session[]> {
  const rows = await ex<SessionRow[]>`
    select *
    from sessions
    where true
      ${scope.sessionId === null ? ex`` : ex`and session_id = ${scope.sessionId}`}
      ${scope.userId === null ? ex`` : ex`and user_id = ${scope.userId}`}
      ${after === null ? ex`` : ex`and (user_id, session_id) > (${after.userId}, ${after.sessionId})`}
    order by user_id, session_id
    limit ${limit}
  `;
  return rows.map(toSession);
}

/** Loads the events of several sessions, grouped by session id, each in seq order. */
export async function eventsOfSessions(ex: Executor, sessions: SessionKey[]): Promise<Map<string, SessionEvent[]>> {
  const grouped = new Map<string, SessionEvent[]>(sessions.map((key) => [key.sessionId, []]));
  if (sessions.length === 0) return grouped;
  const rows = await ex<EventRow[]>`
    select session_events.*
    from session_events
    join unnest(${sessions.map((key) => key.userId)}::text[], ${sessions.map((key) => key.sessionId)}::text[]) as wanted(user_id, session_id)
      using (user_id, session_id)
    order by session_events.user_id, session_events.session_id, session_events.seq
  `;
  for (const row of rows) grouped.get(row.session_id)?.push(toEvent(row));
  return grouped;
}

/** Lists up to `limit` ENDED sessions that ended before `endedBefore`, oldest first, after a keyset position. */
export async function listPrunable(ex: Executor, endedBefore: Date, after: Session | null, limit: number): Promise<Session[]> {
  const rows = await ex<SessionRow[]>`
    select *
    from sessions
    where state = 'ended'
      and end_time < ${endedBefore}
      ${after === null ? ex`` : ex`and (end_time, user_id, session_id) > (${after.endTime}, ${after.userId}, ${after.sessionId})`}
    order by end_time, user_id, session_id
    limit ${limit}
  `;
  return rows.map(toSession);
}

/** Counts the ENDED sessions that ended before `endedBefore`, and their events. */
export async function countPrunable(ex: Executor, endedBefore: Date): Promise<{ sessions: number; events: number }> {
  const [row] = await ex<[{ sessions: string; events: string }]>`
    select count(*) as sessions, coalesce(sum(last_seq), 0) as events
    from sessions
    where state = 'ended'
      and end_time < ${endedBefore}
  `;
  return { sessions: Number(row.sessions), events: Number(row.events) };
}

/**
 * Deletes whole ENDED sessions with their events, in the caller's
 * transaction, and moves the feed's retention watermark past every deleted
 * event. Locks each user first (sorted, so prunes cannot deadlock), then
 * deletes only sessions still ENDED with the `last_seq` the caller archived
 * (an UpdateSession may have appended meanwhile; such a session is left for
 * the next pass).
 *
 * @returns the number of sessions and events deleted.
 */
export async function deleteSessions(tx: Transaction, sessions: Session[]): Promise<{ sessions: number; events: number }> {
  if (sessions.length === 0) return { sessions: 0, events: 0 };
  const users = [...new Set(sessions.map((session) => session.userId))].sort();
  await tx`select pg_advisory_xact_lock(hashtextextended(user_id, 0)) from unnest(${users}::text[]) as user_id order by user_id`;
  await tx`select set_config('session_manager.prune', 'on', true)`;
  const [row] = await tx<[{ sessions: string; events: string }]>`
    with doomed as (
      select sessions.user_id, sessions.session_id
      from sessions
      join unnest(
        ${sessions.map((s) => s.userId)}::text[],
        ${sessions.map((s) => s.sessionId)}::text[],
        ${sessions.map((s) => s.lastSeq)}::bigint[]
      ) as wanted(user_id, session_id, last_seq)
        on sessions.user_id = wanted.user_id
       and sessions.session_id = wanted.session_id
       and sessions.last_seq = wanted.last_seq
      where sessions.state = 'ended'
    ),
    deleted_events as (
      delete from session_events
      using doomed
      where session_events.user_id = doomed.user_id
        and session_events.session_id = doomed.session_id
      returning session_events.tx_id, session_events.id
    ),
    newest as (
      select tx_id, id
      from deleted_events
      order by tx_id desc, id desc
      limit 1
    ),
    watermark as (
      update feed_watermark
      set tx_id = newest.tx_id, id = newest.id
      from newest
      where (newest.tx_id, newest.id) > (feed_watermark.tx_id, feed_watermark.id)
      returning 1
    )
    select
      (select count(*) from doomed) as sessions,
      (select count(*) from deleted_events) as events,
      (select count(*) from watermark) as moved
  `;
  await tx`
    delete from sessions
    using unnest(
      ${sessions.map((s) => s.userId)}::text[],
      ${sessions.map((s) => s.sessionId)}::text[],
      ${sessions.map((s) => s.lastSeq)}::bigint[]
    ) as wanted(user_id, session_id, last_seq)
    where sessions.user_id = wanted.user_id
      and sessions.session_id = wanted.session_id
      and sessions.last_seq = wanted.last_seq
      and sessions.state = 'ended'
  `;
  return { sessions: Number(row.sessions), events: Number(row.events) };
}

/** Reads the feed's retention watermark: the newest position prune has deleted, (0, 0) before the first prune. */
export async function readWatermark(ex: Executor): Promise<FeedPosition> {
  const [row] = await ex<[{ tx_id: string; id: string }]>`select tx_id, id from feed_watermark`;
  return { txId: BigInt(row.tx_id), id: BigInt(row.id) };
}

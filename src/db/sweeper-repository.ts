/**
 * SQL of the sweeper (src/service/sweeper.ts), which ends sessions whose
 * deadline passed: it picks and locks them, then loads them.
 */
import type { Session } from "../domain/session.js";
import type { Executor, Transaction } from "./database.js";
import { toSession, type SessionKey, type SessionRow } from "./rows.js";

/**
 * Picks up to `limit` open sessions whose deadline has passed, oldest
 * deadline first, and takes their users' advisory locks with try-lock,
 * skipping users whose lock is busy (a writer or another sweeper holds it;
 * they are retried on a later pass). Try-locks never wait, so sweepers cannot
 * deadlock; a second sweeper skips the first one's users and takes the next
 * ones. The lock is tried row by row until `limit` are held, so no lock is
 * taken for a session that is not returned.
 */
export async function lockLapsedSessions(tx: Transaction, limit: number): Promise<SessionKey[]> {
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

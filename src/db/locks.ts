/**
 * The per-user advisory lock that orders a user's writes, and the database
 * clock. Every transaction that writes a user's sessions or events takes the
 * user's lock first (the sweeper and prune take it too; see
 * src/db/sweeper-repository.ts and src/db/audit-repository.ts).
 */
import type { Executor, Transaction } from "./database.js";

/**
 * Takes the advisory lock of a session's user for the rest of the
 * transaction. Every transaction that writes a user's sessions or events
 * takes it first, before anything assigns a transaction id, so
 * transaction-id order matches the order in which a user's changes happen
 * (the feed orders by it). A write batch takes all its users' locks in one
 * statement (`lockUsers` in src/db/batch-repository.ts).
 *
 * @returns false if no such session exists (nothing is locked).
 */
export async function lockUserOfSession(tx: Transaction, sessionId: string): Promise<boolean> {
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

/**
 * The audit use case: recomputes the hash chains of a session, a user or
 * every session (see src/domain/chain.ts) and finds the first broken link.
 */
import { eventsOfSessions, listSessionsForAudit, type AuditScope } from "../db/audit-repository.js";
import type { Sql } from "../db/database.js";
import type { SessionKey } from "../db/rows.js";
import { verifyChain, type BrokenLink } from "../domain/chain.js";
import { inSnapshot } from "./transaction.js";

const PAGE_SIZE = 200;

/** What `verifyChains` found, counted up to the first broken session (it stops there). */
export interface VerifyReport {
  /** Sessions checked, the broken one included. */
  sessions: number;
  /** Events of the checked sessions. */
  events: number;
  /** The first broken link, or null when every chain in scope holds. */
  broken: BrokenLink | null;
}

/**
 * Verifies the chains in scope, page by page in (user_id, session_id) order,
 * stopping at the first broken link.
 *
 * @throws DomainError DATABASE_UNAVAILABLE.
 */
export async function verifyChains(sql: Sql, scope: AuditScope): Promise<VerifyReport> {
  const report: VerifyReport = { sessions: 0, events: 0, broken: null };
  let after: SessionKey | null = null;
  for (;;) {
    // One snapshot per page, so a write between the two reads cannot look like a broken chain.
    const { sessions, events } = await inSnapshot(sql, async (tx) => {
      const sessions = await listSessionsForAudit(tx, scope, after, PAGE_SIZE);
      return { sessions, events: await eventsOfSessions(tx, sessions) };
    });
    for (const session of sessions) {
      const log = events.get(session.sessionId) ?? [];
      report.sessions += 1;
      report.events += log.length;
      report.broken = verifyChain(session.sessionId, log, session.lastSeq, session.lastHash);
      if (report.broken !== null) return report;
    }
    if (sessions.length < PAGE_SIZE) return report;
    after = sessions.at(-1)!;
  }
}

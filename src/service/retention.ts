/**
 * The retention use case: removes whole ENDED sessions that ended before a
 * time, never ACTIVE or PAUSED ones. With an archive folder each session is
 * first written to `<dir>/<session_id>.jsonl` (CloudEvents JSON Lines, seq
 * order, with hashes; see cloud-events.ts), atomically (temporary file,
 * fsync, rename). Sessions are removed in batches, one transaction each, and
 * the feed's retention watermark moves past them (older WatchSessionEvents
 * cursors become OUT_OF_RANGE). Safe to re-run after a crash: an archived but
 * not yet deleted session is archived again (same file) and deleted; a batch
 * is deleted whole or not at all.
 */
import { mkdir, open, rename } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "pino";
import { countPrunable, deleteSessions, eventsOfSessions, listPrunable } from "../db/audit-repository.js";
import type { Sql } from "../db/database.js";
import type { Session, SessionEvent } from "../domain/session.js";
import { toCloudEvent } from "./cloud-events.js";
import { inRead, inTransaction } from "./transaction.js";

const BATCH_SIZE = 200;

/** Holds what a prune did (or, for a dry run, would do). A session changed during the run is left for the next one. */
export interface PruneReport {
  sessions: number;
  events: number;
  archived: number;
}

/** Configures `pruneSessions`. */
export interface PruneOptions {
  /** Only sessions that ended strictly before this time are removed. */
  endedBefore: Date;
  /** Folder for the archive files (created if missing); null for no archive. */
  archiveDir: string | null;
  /** Only counts what would be removed; writes and removes nothing. */
  dryRun: boolean;
}

/**
 * Prunes (or counts, for a dry run) the sessions that ended before
 * `endedBefore`; each batch's deletion runs through `inTransaction` (retried
 * on races).
 *
 * @throws DomainError DATABASE_UNAVAILABLE; the file system's error if an archive file cannot be written.
 */
export async function pruneSessions(sql: Sql, log: Logger, options: PruneOptions): Promise<PruneReport> {
  if (options.dryRun) {
    const counts = await inRead(sql, (ex) => countPrunable(ex, options.endedBefore));
    return { ...counts, archived: 0 };
  }
  if (options.archiveDir !== null) await mkdir(options.archiveDir, { recursive: true });
  const report: PruneReport = { sessions: 0, events: 0, archived: 0 };
  let after: Session | null = null;
  for (;;) {
    const batch = await inRead(sql, (ex) => listPrunable(ex, options.endedBefore, after, BATCH_SIZE));
    if (batch.length === 0) return report;
    after = batch.at(-1)!;
    if (options.archiveDir !== null) {
      const events = await inRead(sql, (ex) => eventsOfSessions(ex, batch));
      for (const session of batch) await archive(options.archiveDir, session, events.get(session.sessionId) ?? []);
      report.archived += batch.length;
    }
    const deleted = await inTransaction(sql, log, (tx) => deleteSessions(tx, batch));
    report.sessions += deleted.sessions;
    report.events += deleted.events;
  }
}

/** Writes one session's events to `<dir>/<session_id>.jsonl`, replacing any earlier copy atomically. */
async function archive(dir: string, session: Session, events: SessionEvent[]): Promise<void> {
  const target = join(dir, `${session.sessionId}.jsonl`);
  const temporary = `${target}.tmp`;
  const file = await open(temporary, "w");
  try {
    const lines = events.map((event) => JSON.stringify(toCloudEvent(event)));
    await file.writeFile(lines.map((line) => `${line}\n`).join(""));
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(temporary, target);
}

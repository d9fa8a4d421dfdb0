/**
 * `session-manager prune`: removes whole ENDED sessions that ended before a
 * time, never ACTIVE or PAUSED ones. With `--archive <dir>` each session is
 * first written to `<dir>/<session_id>.jsonl` (CloudEvents JSON Lines, seq
 * order, with hashes), atomically (temporary file, fsync, rename). Sessions
 * are removed in batches, one transaction each, and the feed's retention
 * watermark moves past them (older WatchSessionEvents cursors become
 * OUT_OF_RANGE). Safe to re-run after a crash: an archived but not yet
 * deleted session is archived again (same file) and deleted; a batch is
 * deleted whole or not at all.
 */
import { mkdir, open, rename } from "node:fs/promises";
import { join } from "node:path";
import pino from "pino";
import type { Config } from "../config.js";
import type { Sql } from "../db/database.js";
import { countPrunable, deleteSessions, eventsOfSessions, listPrunable } from "../db/audit-repository.js";
import type { Session, SessionEvent } from "../domain/session.js";
import { toCloudEvent } from "./cloud-events.js";
import { openCommandDatabase } from "./database.js";
import { exitWithUsage, parseCommandOptions } from "./options.js";

const USAGE = `usage: session-manager prune --ended-before <time> [--archive <dir>] [--dry-run]

Removes ENDED sessions (and their events) that ended before <time>, an
RFC 3339 timestamp such as 2026-01-01T00:00:00Z. ACTIVE and PAUSED sessions
are never touched.

options:
  --ended-before <time>  required
  --archive <dir>        first write each session to <dir>/<session_id>.jsonl
  --dry-run              only count what would be removed
  -h, --help             show this help
`;

const OPTIONS = {
  "ended-before": { type: "string" },
  archive: { type: "string" },
  "dry-run": { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

const BATCH_SIZE = 200;

/** Holds what a prune did (or, for a dry run, would do). A session changed during the run is left for the next one. */
export interface PruneReport {
  sessions: number;
  events: number;
  archived: number;
}

/** Configures `prune`. */
export interface PruneOptions {
  endedBefore: Date;
  /** Folder for the archive files; null for no archive. */
  archiveDir: string | null;
  dryRun: boolean;
}

/** Prunes (or counts, for a dry run) the sessions that ended before `endedBefore`. */
export async function prune(sql: Sql, options: PruneOptions): Promise<PruneReport> {
  if (options.dryRun) {
    const counts = await countPrunable(sql, options.endedBefore);
    return { ...counts, archived: 0 };
  }
  if (options.archiveDir !== null) await mkdir(options.archiveDir, { recursive: true });
  const report: PruneReport = { sessions: 0, events: 0, archived: 0 };
  let after: Session | null = null;
  for (;;) {
    const batch = await listPrunable(sql, options.endedBefore, after, BATCH_SIZE);
    if (batch.length === 0) return report;
    after = batch.at(-1)!;
    if (options.archiveDir !== null) {
      const events = await eventsOfSessions(sql, batch);
      for (const session of batch) await archive(options.archiveDir, session, events.get(session.sessionId) ?? []);
      report.archived += batch.length;
    }
    const deleted = await sql.begin((tx) => deleteSessions(tx, batch));
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

/** Runs the prune command; see USAGE. */
export async function pruneCommand(args: string[], config: Config): Promise<void> {
  const options = parseCommandOptions(args, OPTIONS, USAGE);
  const raw = options["ended-before"];
  if (raw === undefined) exitWithUsage("--ended-before is required", USAGE);
  const endedBefore = new Date(raw);
  if (!/^\d{4}-\d{2}-\d{2}T/.test(raw) || Number.isNaN(endedBefore.getTime())) {
    exitWithUsage(`--ended-before ${JSON.stringify(raw)} is not an RFC 3339 timestamp`, USAGE);
  }
  if (options.archive !== undefined) {
    try {
      await mkdir(options.archive, { recursive: true });
    } catch (error) {
      process.stderr.write(`session-manager: cannot use --archive ${options.archive}: ${(error as Error).message}\n`);
      process.exit(1);
    }
  }
  const db = await openCommandDatabase(config, pino({ level: config.logLevel }, pino.destination(2)));
  try {
    const report = await prune(db.sql, { endedBefore, archiveDir: options.archive ?? null, dryRun: options["dry-run"] === true });
    const verb = options["dry-run"] ? "would remove" : "removed";
    const archived = options.archive && !options["dry-run"] ? `; archived ${report.archived} sessions to ${options.archive}` : "";
    process.stdout.write(`${verb} ${report.sessions} sessions and ${report.events} events that ended before ${endedBefore.toISOString()}${archived}\n`);
  } finally {
    await db.close();
  }
}

/**
 * `session-manager prune`: parses the options, runs the retention use case
 * (src/service/retention.ts: removes whole ENDED sessions that ended before
 * a time, optionally archiving each first) and prints what it did.
 */
import { mkdir } from "node:fs/promises";
import pino from "pino";
import type { Config } from "../config.js";
import { pruneSessions } from "../service/retention.js";
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

/** Runs `session-manager prune`; exits 2 on bad options, 1 if the `--archive` folder cannot be created. */
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
  const log = pino({ level: config.logLevel }, pino.destination(2));
  const db = await openCommandDatabase(config, log);
  try {
    const report = await pruneSessions(db.sql, log, { endedBefore, archiveDir: options.archive ?? null, dryRun: options["dry-run"] === true });
    const verb = options["dry-run"] ? "would remove" : "removed";
    const archived = options.archive && !options["dry-run"] ? `; archived ${report.archived} sessions to ${options.archive}` : "";
    process.stdout.write(`${verb} ${report.sessions} sessions and ${report.events} events that ended before ${endedBefore.toISOString()}${archived}\n`);
  } finally {
    await db.close();
  }
}

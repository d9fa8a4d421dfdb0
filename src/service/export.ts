/**
 * The export use case: events from the database as JSON Lines in the
 * CloudEvents 1.0 JSON format (see cloud-events.ts), one event per line.
 *
 * What it exports: one session's timeline (in seq order), or a range of the
 * global feed, optionally one user's (in feed order (tx_id, id), the order
 * WatchSessionEvents delivers). Only events below the visibility horizon read
 * at the start are exported, so the result is a stable snapshot: no event can
 * later appear inside a range already written, and a later run of the same
 * range with an `until` bound writes the same lines. Rows are read in keyset
 * pages, so memory stays flat however large the export.
 */
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
import { FEED_START, positionBelowHorizon, type FeedPosition } from "../domain/cursor.js";
import { DomainError } from "../domain/errors.js";
import type { SessionEvent } from "../domain/session.js";
import { toCloudEvent } from "./cloud-events.js";
import { inRead } from "./transaction.js";

const PAGE_SIZE = 1000;

/** Names what an export reads: one session in seq order, or a feed range in feed order. */
export type ExportSelection =
  | { kind: "session"; sessionId: string; trainingDataOnly: boolean }
  | { kind: "feed"; filter: FeedRangeFilter };

/** Receives what an export writes, in order. */
export interface ExportSink {
  /**
   * Called once, before the first page. `count` counts the events the export
   * will write; it reads them all, so call it only when a total is worth that
   * (e.g. for a progress bar).
   */
  begin(count: () => Promise<number>): Promise<void>;
  /** Takes one page: `lines` holds `events` JSON Lines, each ending with "\n"; resolves once it may be called again. */
  write(lines: string, events: number): Promise<void>;
}

/** What `exportEvents` returns; `session-manager export` reports the count and notes `uncommittedAfter`. */
export interface ExportReport {
  /** Events written. */
  events: number;
  /**
   * For a feed range whose `until` lies at or beyond the horizon: the last
   * position the export could include (events after it were not committed
   * yet when it started). Null otherwise.
   */
  uncommittedAfter: FeedPosition | null;
}

/**
 * Streams the selected events to `sink`, page by page, below the horizon read
 * at the start.
 *
 * @throws DomainError SESSION_NOT_FOUND (message "no session <id>"), DATABASE_UNAVAILABLE; whatever `sink` throws.
 */
export async function exportEvents(sql: Sql, selection: ExportSelection, sink: ExportSink): Promise<ExportReport> {
  const { horizon } = await inRead(sql, readFeedBounds);
  if (selection.kind === "session") {
    return { events: await exportSession(sql, selection, horizon, sink), uncommittedAfter: null };
  }
  const events = await exportFeedRange(sql, selection.filter, horizon, sink);
  const { until } = selection.filter;
  return { events, uncommittedAfter: until !== null && until.txId >= horizon ? positionBelowHorizon(horizon) : null };
}

async function exportSession(
  sql: Sql,
  selection: { sessionId: string; trainingDataOnly: boolean },
  horizon: bigint,
  sink: ExportSink,
): Promise<number> {
  const userId = await inRead(sql, (ex) => findSessionOwner(ex, selection.sessionId));
  if (userId === null) {
    throw new DomainError("SESSION_NOT_FOUND", `no session ${selection.sessionId}`, { session_id: selection.sessionId });
  }
  const owner = { userId, sessionId: selection.sessionId };
  await sink.begin(() => inRead(sql, (ex) => countSession(ex, owner, selection.trainingDataOnly, horizon)));
  let written = 0;
  let afterSeq = 0;
  for (;;) {
    const events = await inRead(sql, (ex) => readSessionPage(ex, owner, selection.trainingDataOnly, horizon, afterSeq, PAGE_SIZE));
    if (events.length === 0) return written;
    await writePage(sink, events);
    written += events.length;
    afterSeq = events.at(-1)!.seq;
  }
}

async function exportFeedRange(sql: Sql, filter: FeedRangeFilter, horizon: bigint, sink: ExportSink): Promise<number> {
  await sink.begin(() => inRead(sql, (ex) => countFeedRange(ex, filter, horizon)));
  let written = 0;
  let after = filter.after ?? FEED_START;
  for (;;) {
    const events = await inRead(sql, (ex) => readFeedRangePage(ex, filter, horizon, after, PAGE_SIZE));
    if (events.length === 0) return written;
    await writePage(sink, events);
    written += events.length;
    after = events.at(-1)!.position;
  }
}

async function writePage(sink: ExportSink, events: SessionEvent[]): Promise<void> {
  const lines = events.map((event) => `${JSON.stringify(toCloudEvent(event))}\n`).join("");
  await sink.write(lines, events.length);
}

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
import { setTimeout as sleep } from "node:timers/promises";
import type { Executor, Sql } from "../db/database.js";
import { readOnPrimary, type ReadOn } from "../db/read-pools.js";
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
import { toDomainError } from "../db/errors.js";

const PAGE_SIZE = 1000;
const REPLAY_WAIT_MS = 30_000;
const REPLAY_POLL_MS = 50;

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
 * at the start. Reads run through `read` (a standby's `ReadPools.read`;
 * default: `sql`, the primary), each page on a node that has replayed that far.
 *
 * @throws DomainError SESSION_NOT_FOUND (message "no session <id>"), DATABASE_UNAVAILABLE; whatever `sink` throws.
 */
export async function exportEvents(sql: Sql, selection: ExportSelection, sink: ExportSink, read: ReadOn = readOnPrimary(sql)): Promise<ExportReport> {
  const { horizon } = await guarded(() => read(readFeedBounds));
  const reads = readBelow(read, horizon);
  if (selection.kind === "session") {
    return { events: await exportSession(reads, selection, horizon, sink), uncommittedAfter: null };
  }
  const events = await exportFeedRange(reads, selection.filter, horizon, sink);
  const { until } = selection.filter;
  return { events, uncommittedAfter: until !== null && until.txId >= horizon ? positionBelowHorizon(horizon) : null };
}

/**
 * Returns a reader that runs each page on a node whose horizon has reached
 * `horizon` (the export's snapshot): a fallback to a standby that has not
 * replayed as far would otherwise return a page with rows missing. Waits for
 * such a node's replay (polling every REPLAY_POLL_MS) up to REPLAY_WAIT_MS.
 *
 * @throws DomainError DATABASE_UNAVAILABLE if no node reaches it in time, or none answers.
 */
function readBelow(read: ReadOn, horizon: bigint): <T>(work: (ex: Executor) => Promise<T>) => Promise<T> {
  return async (work) => {
    const deadline = performance.now() + REPLAY_WAIT_MS;
    for (;;) {
      const result = await guarded(() =>
        read(async (ex) => ((await readFeedBounds(ex)).horizon >= horizon ? { value: await work(ex) } : null)),
      );
      if (result !== null) return result.value;
      if (performance.now() >= deadline) {
        throw new DomainError("DATABASE_UNAVAILABLE", "no database node has replayed as far as the export's snapshot; retry later");
      }
      await sleep(REPLAY_POLL_MS);
    }
  };
}

type Reads = ReturnType<typeof readBelow>;

/** Runs `work`, turning connection failures into DATABASE_UNAVAILABLE. */
async function guarded<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    throw toDomainError(error);
  }
}

async function exportSession(
  reads: Reads,
  selection: { sessionId: string; trainingDataOnly: boolean },
  horizon: bigint,
  sink: ExportSink,
): Promise<number> {
  const userId = await reads((ex) => findSessionOwner(ex, selection.sessionId));
  if (userId === null) {
    throw new DomainError("SESSION_NOT_FOUND", `no session ${selection.sessionId}`, { session_id: selection.sessionId });
  }
  const owner = { userId, sessionId: selection.sessionId };
  await sink.begin(() => reads((ex) => countSession(ex, owner, selection.trainingDataOnly, horizon)));
  let written = 0;
  let afterSeq = 0;
  for (;;) {
    const events = await reads((ex) => readSessionPage(ex, owner, selection.trainingDataOnly, horizon, afterSeq, PAGE_SIZE));
    if (events.length === 0) return written;
    await writePage(sink, events);
    written += events.length;
    afterSeq = events.at(-1)!.seq;
  }
}

async function exportFeedRange(reads: Reads, filter: FeedRangeFilter, horizon: bigint, sink: ExportSink): Promise<number> {
  await sink.begin(() => reads((ex) => countFeedRange(ex, filter, horizon)));
  let written = 0;
  let after = filter.after ?? FEED_START;
  for (;;) {
    const events = await reads((ex) => readFeedRangePage(ex, filter, horizon, after, PAGE_SIZE));
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

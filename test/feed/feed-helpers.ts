/**
 * Shared pieces of the feed tests: a feed wired by src/wiring.ts, background
 * watchers, and the table's own order for a filter, written independently of
 * the feed's SQL so the two can disagree.
 */
import pino from "pino";
import type postgres from "postgres";
import type { Sql } from "../../src/db/database.js";
import { readFeedBounds } from "../../src/db/feed-repository.js";
import { comparePositions, decodeCursor, encodeCursor, positionBelowHorizon, type FeedPosition } from "../../src/domain/cursor.js";
import type { Feed, WatchFrame, WatchQuery } from "../../src/feed/watch.js";
import { wireService } from "../../src/wiring.js";

/** Configures `startFeed`: the feed's settings, with test-friendly defaults. */
export interface StartFeedOptions {
  /** LISTEN/NOTIFY wake-ups (FEED_NOTIFY). Default on. */
  notify?: boolean;
  pollMs?: number;
  heartbeatMs?: number;
  queueFrames?: number;
  batchSize?: number;
}

/** Wires a replica's service and feed (src/wiring.ts) with test-friendly settings and no sweeper. */
export function startFeed(sql: Sql, options: StartFeedOptions = {}) {
  return wireService({
    sql,
    log: pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" }),
    defaultIdleTimeoutMs: 1_800_000,
    watchPollMs: options.pollMs ?? 20,
    watchHeartbeatMs: options.heartbeatMs ?? 1_000,
    watchQueueFrames: options.queueFrames,
    feedBatchSize: options.batchSize,
    feedNotify: options.notify ?? true,
    sweepIntervalMs: 0,
  });
}

/** Builds a full WatchQuery from the fields a test cares about. */
export function query(fields: Partial<WatchQuery>): WatchQuery {
  return { userId: "", sessionId: "", types: [], afterCursor: "", fromBeginning: false, ...fields };
}

/** Names a stream consumed in the background by `watchInBackground`. */
export type Watcher = ReturnType<typeof watchInBackground>;

/**
 * Consumes `feed.watch(q)` in the background, recording every frame. A stream
 * that fails, or ends before `stop()`, is a failure: `frames`, `events()` and
 * `lastCursor()` rethrow it, so "nothing arrived" cannot pass because the
 * stream died.
 */
export function watchInBackground(feed: Feed, q: WatchQuery) {
  const controller = new AbortController();
  const frames: WatchFrame[] = [];
  let failure: unknown = null;
  const done = (async () => {
    try {
      for await (const frame of feed.watch(q, controller.signal)) frames.push(frame);
      if (!controller.signal.aborted) failure = new Error("the stream ended before stop()");
    } catch (error) {
      if (!controller.signal.aborted) failure = error;
    }
  })();
  const received = () => {
    if (failure !== null) throw failure;
    return frames;
  };
  return {
    /** Returns every frame received so far; throws the stream's failure. */
    get frames(): WatchFrame[] {
      return received();
    },
    /** Returns the event frames received so far; throws the stream's failure. */
    events: () => received().flatMap((frame) => (frame.kind === "event" ? [frame] : [])),
    /** Returns the cursor of the last frame of any kind, or "" before the first; throws the stream's failure. */
    lastCursor: () => received().at(-1)?.cursor ?? "",
    /** Returns the stream's failure, or null. */
    failure: () => failure,
    /** Cancels the stream and waits for it to end. */
    async stop(): Promise<void> {
      controller.abort();
      await done;
    },
  };
}

/** Returns the cursor at the current horizon: every event after it is new. */
export async function headCursor(sql: Sql): Promise<string> {
  return encodeCursor(positionBelowHorizon((await readFeedBounds(sql)).horizon));
}

/**
 * Inserts a session row directly (no service), for tests that write events
 * on their own connections. Mirrors the columns test/feed/horizon.test.ts uses.
 */
export async function insertSession(ex: Sql, userId: string, sessionId: string): Promise<void> {
  await ex`
    insert into sessions (user_id, session_id, session_index, state, start_time, last_activity_time, idle_timeout_ms, last_seq, last_hash)
    values (${userId}, ${sessionId}, 1, 'active', now(), now(), 60000, 0, '')
  `;
}

/** Inserts one event directly on `ex` (the pool, or a reserved connection inside BEGIN). */
export async function insertEvent(ex: Sql | postgres.ReservedSql, row: { userId: string; sessionId: string; seq: number; eventId: string }): Promise<void> {
  await ex`
    insert into session_events (user_id, session_id, seq, event_id, record_id, request_hash, type, event_time, receive_time, source, hash)
    values (${row.userId}, ${row.sessionId}, ${row.seq}, ${row.eventId}, ${row.eventId}, 'h', 'test.event', now(), now(), 'test', '')
  `;
}

/** Holds one row of the table in feed order. */
export interface TableRow {
  eventId: string;
  userId: string;
  sessionId: string;
  seq: number;
  type: string;
  position: FeedPosition;
}

/**
 * Reads the table's (tx_id, id) order for a filter in the range (after, until],
 * with its own SQL (prefixes through left(), not like), as the oracle.
 */
export async function tableOrder(sql: Sql, q: Partial<WatchQuery>, after: FeedPosition, until: FeedPosition): Promise<TableRow[]> {
  const types = (q.types ?? []).filter((type) => !type.endsWith(".*"));
  const prefixes = (q.types ?? []).filter((type) => type.endsWith(".*")).map((type) => type.slice(0, -1));
  const rows = await sql<{ event_id: string; user_id: string; session_id: string; seq: string; type: string; tx_id: string; id: string }[]>`
    select event_id, user_id, session_id, seq::text, type, tx_id::text, id::text
    from session_events
    where (tx_id, id) > (${after.txId.toString()}::xid8, ${after.id.toString()}::bigint)
      and (tx_id, id) <= (${until.txId.toString()}::xid8, ${until.id.toString()}::bigint)
      and (${q.userId ?? ""} = '' or user_id = ${q.userId ?? ""})
      and (${q.sessionId ?? ""} = '' or session_id = ${q.sessionId ?? ""})
      and (
        cardinality(${types}::text[]) + cardinality(${prefixes}::text[]) = 0
        or type = any(${types}::text[])
        or exists (select 1 from unnest(${prefixes}::text[]) as p where left(type, length(p)) = p)
      )
    order by session_events.tx_id, session_events.id -- qualified: the output columns are text
  `;
  return rows.map((row) => ({
    eventId: row.event_id,
    userId: row.user_id,
    sessionId: row.session_id,
    seq: Number(row.seq),
    type: row.type,
    position: { txId: BigInt(row.tx_id), id: BigInt(row.id) },
  }));
}

/** Returns the feed position of an event in the table. */
export async function positionOf(sql: Sql, eventId: string): Promise<FeedPosition> {
  const [row] = await sql<{ tx_id: string; id: string }[]>`select tx_id::text, id::text from session_events where event_id = ${eventId}`;
  return { txId: BigInt(row!.tx_id), id: BigInt(row!.id) };
}

/** Tells whether cursors never go back and each event's cursor is after every earlier frame's. */
export function cursorsIncrease(frames: WatchFrame[]): boolean {
  let last: FeedPosition | null = null;
  for (const frame of frames) {
    const position = decodeCursor(frame.cursor);
    const order = last === null ? 1 : comparePositions(position, last);
    if (order < 0 || (order === 0 && frame.kind === "event")) return false;
    last = position;
  }
  return true;
}

/** Returns a seeded pseudo-random generator in [0, 1) (mulberry32), so a failure can be replayed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

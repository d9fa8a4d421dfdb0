/**
 * WatchSessionEvents, independent of the transport: turns a subscription into
 * an async stream of frames.
 *
 * Ordering technique: the transaction-visibility horizon (see `readFeed` in
 * src/db/feed-repository.ts): rows are read below pg_snapshot_xmin, ordered
 * and resumed by (tx_id, id). Each stream is driven by its own position: it
 * reads the table from there with its filters (catch-up) until it reaches the
 * replica's tail reader, then takes the rows the tail reader fans out (live).
 * Both hand over exact, adjacent position ranges (see src/feed/tail-reader.ts
 * for the hand-off invariant). Nothing kept in this process decides what is
 * delivered: any replica can serve any subscriber from its cursor alone.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import type { Sql } from "../db/database.js";
import { isDatabaseUnavailable, toDomainError } from "../db/errors.js";
import { readFeed, readFeedBounds, readNextTransactionId, type FeedBounds, type FeedPage } from "../db/feed-repository.js";
import { readOnPrimary, type ReadOn } from "../db/read-pools.js";
import { FEED_START, comparePositions, decodeCursor, encodeCursor, positionBelowHorizon, type FeedPosition } from "../domain/cursor.js";
import { DomainError } from "../domain/errors.js";
import { toFilter } from "./filter.js";
import type { PushSource, Sink } from "./push.js";
import { createSubscriber, type EventFrame, type Subscriber } from "./subscription.js";
import { createTailReader, type TailStats } from "./tail-reader.js";

/** Holds a WatchSessionEvents request; empty strings and lists mean "any". */
export interface WatchQuery {
  userId: string;
  sessionId: string;
  /** Exact types, or prefixes written as "care.*". */
  types: string[];
  afterCursor: string;
  fromBeginning: boolean;
}

/**
 * One frame of a watch. "caught_up" comes once, when every event of a transaction
 * below the start horizon has been delivered; "heartbeat" after `heartbeatMs`
 * without frames. Each frame's cursor is where to resume.
 */
export type WatchFrame = EventFrame | { kind: "caught_up"; cursor: string } | { kind: "heartbeat"; cursor: string };

/** Configures `createFeed`. */
export interface FeedOptions {
  /** The primary's pool: LISTEN and the check of cursors ahead of the read node run here. */
  sql: Sql;
  /**
   * Where the feed's reads run: the tail reader and every catch-up read (a
   * standby's `ReadPools.read`, see src/db/read-pools.ts). Default: `sql`.
   */
  read?: ReadOn;
  /**
   * How long a stream whose after_cursor lies ahead of the read node's
   * horizon (a fresh write the standby has not replayed, or a transaction
   * still open on the primary) waits for the horizon to pass it before
   * INVALID_CURSOR, in ms (READ_REPLAY_WAIT_MS). Default 5,000.
   */
  replayWaitMs?: number;
  /** Interval of the polling fallback (NOTIFY lost or off), in ms. */
  pollMs: number;
  /** Interval of heartbeat frames on an idle stream, in ms. */
  heartbeatMs: number;
  log: Logger;
  /** Frames a stream may have queued before it falls back to table reads. Default 1000. */
  queueFrames?: number;
  /** LISTEN channel for wake-ups (see notifier.ts), or null (FEED_NOTIFY=off). Default null. */
  notifyChannel?: string | null;
  /** Rows read per query. Default 500. */
  batchSize?: number;
  /** Streams this replica serves at once; one more is refused with TOO_MANY_STREAMS. Default 20,000. */
  maxStreams?: number;
}

/** How long a client refused with TOO_MANY_STREAMS is asked to wait, in ms (RetryInfo). */
const STREAMS_RETRY_AFTER_MS = 1_000;

/**
 * The frames of one watch. Pulled with `next()`, or, once `pushTo` gave it
 * a sink, event frames may also be written there while the stream waits at
 * the tail (src/feed/push.ts): frames reach the sink in feed order, each
 * once, either way.
 */
export type WatchStream = AsyncGenerator<WatchFrame> & PushSource<WatchFrame>;

/** WatchSessionEvents for one replica, independent of the transport. */
export interface Feed {
  /**
   * Streams frames for `query` until `signal` aborts (ends quietly) or the
   * feed closes (throws SERVER_SHUTTING_DOWN).
   *
   * @throws DomainError INVALID_CURSOR (malformed, ahead of every
   *   transaction id the primary has assigned, or still ahead of the read
   *   node's horizon after `replayWaitMs`), CURSOR_EXPIRED (older than the retention watermark, or
   *   overtaken by a prune), TOO_MANY_STREAMS (the replica is full; checked
   *   before any database work), DATABASE_UNAVAILABLE.
   */
  watch(query: WatchQuery, signal: AbortSignal): WatchStream;
  /** Reads new rows now (after a local commit or a notification) instead of at the next poll. */
  wake(): void;
  /** Returns subscriber and queue numbers (see TailStats). */
  stats(): TailStats;
  /** Ends every open stream with SERVER_SHUTTING_DOWN and stops polling and LISTEN. */
  close(): void;
}

/**
 * Creates the feed with one tail reader for all of its streams; it makes no
 * queries while nobody watches.
 */
export function createFeed(options: FeedOptions): Feed {
  const { sql, pollMs, heartbeatMs, log } = options;
  const read = options.read ?? readOnPrimary(sql);
  const replayWaitMs = options.replayWaitMs ?? 5_000;
  const batchSize = options.batchSize ?? 500;
  const capacity = options.queueFrames ?? 1000;
  const maxStreams = options.maxStreams ?? 20_000;
  // The open streams, and whether `close` ended them.
  const streams = new Set<Subscriber>();
  let starting = 0;
  let closed = false;
  const reader = createTailReader({ sql, read, pollMs, pageSize: batchSize, channel: options.notifyChannel ?? null, log });

  /**
   * One generator per stream, with no generators below it: every frame
   * passes each generator level as promise turns, and with 10,000 streams
   * those turns were most of the fan-out's CPU. A stream waiting at the
   * tail lets the fan-out write its frames to the sink instead of waking it
   * (see `Subscriber.offer`). No AbortSignal.any either (composite signals
   * cost a refresh per listener change): the stream checks its own signal
   * and `closed`, and `close` wakes it.
   */
  function watch(query: WatchQuery, signal: AbortSignal): WatchStream {
    // The sink may come before the generator has created its subscriber (before the first next()).
    let sink: Sink<WatchFrame> | null = null;
    let subscriber: Subscriber | null = null;
    const frames = generate(query, signal, (sub) => {
      subscriber = sub;
      if (sink !== null) sub.pushTo(sink);
    });
    return Object.assign(frames, {
      pushTo(next: Sink<WatchFrame>) {
        sink = next;
        subscriber?.pushTo(next);
      },
    });
  }

  async function* generate(query: WatchQuery, signal: AbortSignal, created: (sub: Subscriber) => void): AsyncGenerator<WatchFrame> {
    // Admission control: a full replica refuses new streams rather than let
    // fan-out starve the writes that share its event loop.
    if (streams.size + starting >= maxStreams) throw tooManyStreams(maxStreams);
    starting++;
    const { sub, horizon, accepted } = await start(query, signal).finally(() => starting--);
    created(sub);
    streams.add(sub);
    reader.add(sub);
    try {
      // caught_up: every event of a transaction below the start horizon has been delivered.
      const caughtUpAt = positionBelowHorizon(horizon);
      let caughtUp = false;
      let nudged = false;
      while (!signal.aborted && !closed) {
        if (!caughtUp && comparePositions(sub.cursor(), caughtUpAt) >= 0) {
          caughtUp = true;
          sub.lastFrameAt = Date.now();
          yield { kind: "caught_up", cursor: encodeCursor(sub.cursor()) };
          continue;
        }
        const frame = sub.take();
        if (frame !== undefined) {
          sub.lastFrameAt = Date.now();
          yield frame;
          continue;
        }
        const idleMs = heartbeatMs - (Date.now() - sub.lastFrameAt);
        if (idleMs <= 0) {
          sub.lastFrameAt = Date.now();
          yield { kind: "heartbeat", cursor: encodeCursor(sub.cursor()) };
          continue;
        }
        if (sub.attached || reader.tryAttach(sub)) {
          // Caught up, at the tail, nothing queued: the fan-out may write frames to the sink meanwhile.
          await sub.wait(idleMs, caughtUp);
          continue;
        }
        const tail = reader.tail();
        if (tail === null || comparePositions(sub.position, tail) > 0) {
          // Ahead of the tail (a live start, or a cursor from another replica): the next read passes it.
          // Ask for that read once, not per wait: a cursor from the future would otherwise spin it.
          if (!nudged) reader.wake();
          nudged = true;
          await sub.wait(Math.min(idleMs, pollMs));
          continue;
        }
        const page = await catchUpPage(sub, tail, accepted, signal);
        if (page === null) continue;
        for (const event of page.events) {
          sub.advance(event.position);
          sub.lastFrameAt = Date.now();
          yield { kind: "event", event, cursor: encodeCursor(event.position) };
        }
        // A short page read everything up to the tail, or up to the horizon of the node that
        // answered if that is lower (a fallback to a standby further behind): that range is done.
        // Never backwards: rows up to the position were delivered already.
        if (page.events.length < batchSize) {
          const done = minPosition(tail, positionBelowHorizon(page.horizon));
          if (comparePositions(done, sub.position) > 0) sub.advance(done);
          else if (page.events.length === 0) await sub.wait(pollMs); // that node must replay first
        }
      }
    } finally {
      reader.remove(sub);
      streams.delete(sub);
      sub.close();
    }
    // A client's cancel or deadline ends the stream quietly; only shutdown is an error.
    if (closed && !signal.aborted) {
      throw new DomainError("SERVER_SHUTTING_DOWN", "the server is shutting down; resume on another replica with the last cursor");
    }
  }

  /**
   * Checks the stream's cursor against the read node's bounds and creates
   * its subscriber. `horizon` is the start horizon (caught_up comes once
   * everything below it was delivered); `accepted` the retention watermark
   * the stream starts under: only a prune during the stream (a newer
   * watermark past its position) can remove rows it has not read.
   */
  async function start(query: WatchQuery, signal: AbortSignal): Promise<{ sub: Subscriber; horizon: bigint; accepted: FeedPosition }> {
    let afterCursor = query.afterCursor === "" ? null : decodeCursor(query.afterCursor);
    let bounds: FeedBounds;
    try {
      bounds = await read(readFeedBounds);
      if (afterCursor !== null && afterCursor.txId >= bounds.horizon) {
        // Past the newest event but below xmin (a heartbeat cursor from a version whose positions
        // could pass the newest event): no event lies in between, so the horizon is the same place.
        if (afterCursor.txId < bounds.xmin) afterCursor = positionBelowHorizon(bounds.horizon);
        else bounds = await awaitHorizon(afterCursor, bounds, signal);
      }
    } catch (error) {
      throw toDomainError(error);
    }
    if (afterCursor !== null && comparePositions(afterCursor, bounds.watermark) < 0) throw cursorExpired(bounds.watermark);
    // from_beginning means everything retained: rows of kept sessions below the watermark too.
    const position = afterCursor ?? (query.fromBeginning ? FEED_START : positionBelowHorizon(bounds.horizon));
    const sub = createSubscriber({ filter: toFilter(query), position, capacity, signal });
    return { sub, horizon: bounds.horizon, accepted: bounds.watermark };
  }

  /**
   * Waits (at most `replayWaitMs`, polling every `pollMs`) until the read
   * node's horizon passes `cursor`, and returns the bounds read then. A
   * cursor from a write can lie ahead of the horizon: on a standby that has
   * not replayed the write yet, or on the primary while an older
   * transaction is open. One ahead of every id the primary has assigned was
   * never issued here and fails at once.
   *
   * @throws DomainError INVALID_CURSOR.
   */
  async function awaitHorizon(cursor: FeedPosition, bounds: FeedBounds, signal: AbortSignal): Promise<FeedBounds> {
    const notIssued = () => new DomainError("INVALID_CURSOR", "after_cursor lies ahead of this database's feed; it was not issued here");
    const next = await readNextTransactionId(sql).catch((error: unknown) => {
      if (isDatabaseUnavailable(error)) return null; // the primary is away (a failover): only the wait can tell
      throw error;
    });
    if (next !== null && cursor.txId >= next) throw notIssued();
    const deadline = performance.now() + replayWaitMs;
    while (cursor.txId >= bounds.horizon) {
      const left = deadline - performance.now();
      if (left <= 0 || signal.aborted) throw notIssued();
      await sleep(Math.min(pollMs, left));
      bounds = await read(readFeedBounds);
    }
    return bounds;
  }

  /** Reads the stream's next rows, up to the tail; null after a transient failure. */
  async function catchUpPage(sub: Subscriber, tail: FeedPosition, accepted: FeedPosition, signal: AbortSignal): Promise<FeedPage | null> {
    let page: FeedPage;
    try {
      page = await read((ex) => readFeed(ex, sub.position, sub.filter, batchSize, tail));
    } catch (error) {
      if (signal.aborted || closed) return null;
      if (!isDatabaseUnavailable(error)) throw toDomainError(error);
      log.warn({ err: error }, "feed read failed; retrying");
      await sub.wait(pollMs);
      return null;
    }
    // Retention moved past the stream while it ran: rows it has not read may be gone.
    const pruned = comparePositions(page.watermark, accepted) > 0 && comparePositions(sub.position, page.watermark) < 0;
    if (pruned) throw cursorExpired(page.watermark);
    return page;
  }

  return {
    watch,
    wake: reader.wake,
    stats: () => reader.stats(),
    close() {
      closed = true;
      for (const sub of streams) sub.wake();
      reader.close();
    },
  };
}

function minPosition(a: FeedPosition, b: FeedPosition): FeedPosition {
  return comparePositions(a, b) <= 0 ? a : b;
}

function tooManyStreams(limit: number): DomainError {
  const error = new DomainError("TOO_MANY_STREAMS", `this replica serves its limit of ${limit} WatchSessionEvents streams; retry later or on another replica`, {
    limit: String(limit),
    scope: "replica",
  });
  error.retryAfterMs = STREAMS_RETRY_AFTER_MS;
  return error;
}

function cursorExpired(watermark: FeedPosition): DomainError {
  return new DomainError("CURSOR_EXPIRED", "after_cursor is older than the retained events; resume from earliest_cursor", {
    earliest_cursor: encodeCursor(watermark),
  });
}

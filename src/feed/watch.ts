/**
 * WatchSessionEvents, independent of the transport: turns a subscription into
 * an async stream of frames read from the event table.
 *
 * Ordering technique: the transaction-visibility horizon (see
 * `readFeed` in src/db/session-repository.ts). Catch-up and live tailing are
 * the same cursor-driven read, repeated every `pollMs`; there is no hand-off
 * between them, so none can lose or repeat an event. Nothing kept in this
 * process decides what is delivered: any replica can serve any subscriber
 * from the cursor alone.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import type { Sql } from "../db/database.js";
import { isDatabaseUnavailable } from "../db/errors.js";
import { readFeed, type FeedFilter } from "../db/feed-repository.js";
import { comparePositions, decodeCursor, encodeCursor, FEED_START, positionBelowHorizon, type FeedPosition } from "../domain/cursor.js";
import { DomainError } from "../domain/errors.js";
import type { SessionEvent } from "../domain/session.js";
import { translate } from "../service/session-service.js";

/** Holds a WatchSessionEvents request; empty strings and lists mean "any". */
export interface WatchQuery {
  userId: string;
  sessionId: string;
  /** Exact types, or prefixes written as "care.*". */
  types: string[];
  afterCursor: string;
  fromBeginning: boolean;
}

/** Names one frame of the stream. */
export type WatchFrame =
  | { kind: "event"; event: SessionEvent; cursor: string }
  | { kind: "caught_up"; cursor: string }
  | { kind: "heartbeat"; cursor: string };

/** Configures `createFeed`. */
export interface FeedOptions {
  sql: Sql;
  /** Interval between table reads of an idle stream, in ms. */
  pollMs: number;
  /** Interval of heartbeat frames on an idle stream, in ms. */
  heartbeatMs: number;
  log: Logger;
  /** Rows read per query. Default 500. */
  batchSize?: number;
}

/** Names the feed created by `createFeed`. */
export type Feed = ReturnType<typeof createFeed>;

/** Creates the feed: `watch` streams frames; `close` ends every stream with SERVER_SHUTTING_DOWN. */
export function createFeed(options: FeedOptions) {
  const { sql, pollMs, heartbeatMs, log } = options;
  const batchSize = options.batchSize ?? 500;
  const closing = new AbortController();

  async function horizonNow(): Promise<bigint> {
    const [row] = await sql<{ horizon: string }[]>`select pg_snapshot_xmin(pg_current_snapshot())::text as horizon`;
    return BigInt(row!.horizon);
  }

  async function* watch(query: WatchQuery, signal: AbortSignal): AsyncGenerator<WatchFrame> {
    const filter = toFilter(query);
    const stop = AbortSignal.any([signal, closing.signal]);
    let head: bigint;
    let position: FeedPosition;
    try {
      head = await horizonNow();
      position = query.afterCursor !== "" ? decodeCursor(query.afterCursor) : query.fromBeginning ? FEED_START : positionBelowHorizon(head);
    } catch (error) {
      throw translate(error);
    }
    let caughtUp = false;
    let lastFrameAt = Date.now();
    while (!stop.aborted) {
      let full = false;
      try {
        const page = await readFeed(sql, position, filter, batchSize);
        for (const event of page.events) {
          position = event.position;
          lastFrameAt = Date.now();
          yield { kind: "event", event, cursor: encodeCursor(position) };
        }
        full = page.events.length === batchSize;
        if (!full) {
          // Everything below the horizon has been read: the resume point moves
          // past events that did not match the filters.
          const scanned = positionBelowHorizon(page.horizon);
          if (comparePositions(scanned, position) > 0) position = scanned;
          if (!caughtUp && page.horizon >= head) {
            caughtUp = true;
            lastFrameAt = Date.now();
            yield { kind: "caught_up", cursor: encodeCursor(position) };
          }
        }
      } catch (error) {
        if (!isDatabaseUnavailable(error)) throw translate(error);
        log.warn({ err: error }, "feed read failed; retrying");
      }
      if (Date.now() - lastFrameAt >= heartbeatMs) {
        lastFrameAt = Date.now();
        yield { kind: "heartbeat", cursor: encodeCursor(position) };
      }
      if (!full) await pause(Math.min(pollMs, heartbeatMs), stop);
    }
    if (closing.signal.aborted && !signal.aborted) {
      throw new DomainError("SERVER_SHUTTING_DOWN", "the server is shutting down; resume on another replica with the last cursor");
    }
  }

  return {
    watch,
    /** Ends every open stream with SERVER_SHUTTING_DOWN. */
    close(): void {
      closing.abort();
    },
  };
}

function toFilter(query: WatchQuery): FeedFilter {
  const prefixes = query.types.filter((type) => type.endsWith(".*"));
  return {
    userId: query.userId === "" ? null : query.userId,
    sessionId: query.sessionId === "" ? null : query.sessionId,
    types: query.types.filter((type) => !type.endsWith(".*")),
    typePrefixes: prefixes.map((prefix) => prefix.slice(0, -1)),
  };
}

async function pause(ms: number, signal: AbortSignal): Promise<void> {
  try {
    await sleep(ms, undefined, { signal });
  } catch {
    // Aborted: the caller's loop checks the signal.
  }
}

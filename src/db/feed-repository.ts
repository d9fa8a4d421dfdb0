/**
 * SQL of the event feed: reads of session_events in global feed order, the
 * visibility horizon and the retention watermark.
 */
import type { FeedPosition } from "../domain/cursor.js";
import type { SessionEvent } from "../domain/session.js";
import type { Executor } from "./database.js";
import { afterPosition, untilPosition } from "./feed-position.js";
import { toEvent, type EventRow } from "./rows.js";

/** Selects events for `readFeed`; empty lists and nulls match everything. */
export interface FeedFilter {
  userId: string | null;
  sessionId: string | null;
  /** Exact event types. */
  types: string[];
  /** Type prefixes, e.g. "care." for the filter "care.*". */
  typePrefixes: string[];
}

/** Holds where the feed stands: its horizon and its retention watermark. */
export interface FeedBounds {
  /** Every transaction with an id below this had finished when the statement ran. */
  horizon: bigint;
  /** Events at or before this position may have been pruned (table feed_watermark). */
  watermark: FeedPosition;
}

/** Holds one page of the feed and the bounds it was read under (one snapshot). */
export interface FeedPage extends FeedBounds {
  events: SessionEvent[];
}

interface BoundsRow {
  horizon: string;
  watermark_tx_id: string;
  watermark_id: string;
}

/**
 * Reads the events after `after` (and at or before `until`, when given) in
 * feed order, (tx_id, id), below the transaction-visibility horizon:
 * pg_snapshot_xmin of the reading statement's snapshot. Every transaction
 * below the horizon has committed or aborted, so no event can later appear
 * at a position this read has passed. The watermark comes from the same
 * snapshot: if rows after `after` were pruned, the watermark shows it.
 */
export async function readFeed(
  ex: Executor,
  after: FeedPosition,
  filter: FeedFilter,
  limit: number,
  until: FeedPosition | null = null,
): Promise<FeedPage> {
  const rows = await ex<(EventRow & BoundsRow)[]>`
    with snapshot as (
      select pg_snapshot_xmin(pg_current_snapshot()) as horizon
    )
    select
      snapshot.horizon::text as horizon,
      coalesce(w.tx_id, '0')::text as watermark_tx_id,
      coalesce(w.id, 0)::text as watermark_id,
      e.*
    from snapshot
    left join feed_watermark as w on true
    left join lateral (
      select *
      from session_events
      where ${afterPosition(ex, after)}
        and tx_id < snapshot.horizon
        ${untilPosition(ex, until)}
        ${filter.userId === null ? ex`` : ex`and user_id = ${filter.userId}`}
        ${filter.sessionId === null ? ex`` : ex`and session_id = ${filter.sessionId}`}
        ${typeCondition(ex, filter)}
      order by session_events.tx_id, session_events.id
      limit ${limit}
    ) as e on true
  `;
  const events = rows.filter((row) => row.event_id !== null).map(toEvent);
  return { ...toBounds(rows[0]!), events };
}

/** Reads the current horizon and retention watermark in one statement. */
export async function readFeedBounds(ex: Executor): Promise<FeedBounds> {
  const [row] = await ex<BoundsRow[]>`
    select
      pg_snapshot_xmin(pg_current_snapshot())::text as horizon,
      coalesce(w.tx_id, '0')::text as watermark_tx_id,
      coalesce(w.id, 0)::text as watermark_id
    from (select 1) as one
    left join feed_watermark as w on true
  `;
  return toBounds(row!);
}

/**
 * Reads the first transaction id not yet assigned on the node `ex` reads
 * (pg_snapshot_xmax of the statement's snapshot). On the primary no cursor
 * this database issued can reach it; on a standby it is as replayed.
 */
export async function readNextTransactionId(ex: Executor): Promise<bigint> {
  const [row] = await ex<{ xmax: string }[]>`select pg_snapshot_xmax(pg_current_snapshot())::text as xmax`;
  return BigInt(row!.xmax);
}

function toBounds(row: BoundsRow): FeedBounds {
  return {
    horizon: BigInt(row.horizon),
    watermark: { txId: BigInt(row.watermark_tx_id), id: BigInt(row.watermark_id) },
  };
}

function typeCondition(ex: Executor, filter: FeedFilter) {
  if (filter.types.length === 0 && filter.typePrefixes.length === 0) return ex``;
  const patterns = filter.typePrefixes.map((prefix) => `${prefix.replace(/[\\%_]/g, "\\$&")}%`);
  return ex`and (type = any(${filter.types}::text[]) or type like any(${patterns}::text[]))`;
}

/** Sends a feed wake-up on `channel` (outside any business transaction; the payload is empty). */
export async function notifyFeed(ex: Executor, channel: string): Promise<void> {
  await ex`select pg_notify(${channel}, '')`;
}

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
  /**
   * Every transaction with an id below this had finished when the statement
   * ran, and no id below it can be handed out again (see `BOUNDS`): the
   * feed's positions never pass it.
   */
  horizon: bigint;
  /**
   * pg_snapshot_xmin of the same snapshot (>= `horizon`): every transaction
   * below it had finished, and no event lies at or past `horizon` below it.
   */
  xmin: bigint;
  /** Events at or before this position may have been pruned (table feed_watermark). */
  watermark: FeedPosition;
}

/** Holds one page of the feed and the bounds it was read under (one snapshot). */
export interface FeedPage extends FeedBounds {
  events: SessionEvent[];
}

interface BoundsRow {
  xmin: string;
  horizon: string;
  watermark_tx_id: string;
  watermark_id: string;
}

/**
 * The feed's bounds as a CTE `bounds (xmin, horizon, watermark_tx_id,
 * watermark_id)` from one snapshot.
 *
 * `xmin` (and `xmin_text`) is pg_snapshot_xmin of the statement's snapshot: every transaction
 * below it has committed or aborted, so no event can later appear below it.
 * `horizon` is `xmin`, but never more than one past the newest event below it
 * (or the retention watermark, when that is newer): after a crash
 * (pg_ctl stop -m immediate, a kill -9 of the postmaster, a failover)
 * PostgreSQL hands out again transaction ids whose assignment never reached
 * its WAL, such as the id of a transaction that rolled back or was still open,
 * and a position past such an id would sort the new transaction's events
 * behind a cursor already given out. The newest event's transaction
 * committed, so its id and every id below it are durable (with
 * synchronous_commit on) and are never reused. Found by the chaos harness
 * (chaos/repro/xid-reuse-after-crash.ts).
 */
function boundsCte(ex: Executor) {
  return ex`
    with snapshot as (
      select pg_snapshot_xmin(pg_current_snapshot()) as xmin
    ), bounds as (
      select
        snapshot.xmin,
        snapshot.xmin::text as xmin_text,
        least(
          snapshot.xmin::text::numeric,
          greatest(
            coalesce(
              (select e.tx_id from session_events as e where e.tx_id < snapshot.xmin order by e.tx_id desc limit 1),
              '0'
            )::text::numeric,
            coalesce(w.tx_id, '0')::text::numeric
          ) + 1
        )::text as horizon,
        coalesce(w.tx_id, '0')::text as watermark_tx_id,
        coalesce(w.id, 0)::text as watermark_id
      from snapshot
      left join feed_watermark as w on true
    )
  `;
}

/**
 * Reads the events after `after` (and at or before `until`, when given) in
 * feed order, (tx_id, id), below the transaction-visibility horizon (see
 * `boundsCte`), so no event can later appear at a position this read has
 * passed. The watermark comes from the same snapshot: if rows after `after`
 * were pruned, the watermark shows it.
 */
export async function readFeed(
  ex: Executor,
  after: FeedPosition,
  filter: FeedFilter,
  limit: number,
  until: FeedPosition | null = null,
): Promise<FeedPage> {
  const rows = await ex<(EventRow & BoundsRow)[]>`
    ${boundsCte(ex)}
    select bounds.xmin_text as xmin, bounds.horizon, bounds.watermark_tx_id, bounds.watermark_id, e.*
    from bounds
    left join lateral (
      select *
      from session_events
      where ${afterPosition(ex, after)}
        and tx_id < bounds.xmin
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

/** Reads the current horizon and retention watermark in one statement (see `boundsCte`). */
export async function readFeedBounds(ex: Executor): Promise<FeedBounds> {
  const [row] = await ex<BoundsRow[]>`
    ${boundsCte(ex)}
    select xmin_text as xmin, horizon, watermark_tx_id, watermark_id from bounds
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
    xmin: BigInt(row.xmin),
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

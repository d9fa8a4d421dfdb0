/**
 * SQL of the event feed: reads of session_events in global feed order.
 */
import type { FeedPosition } from "../domain/cursor.js";
import type { Executor } from "./database.js";
import { toEvent, type EventRow } from "./session-repository.js";
import type { SessionEvent } from "../domain/session.js";

/** Selects events for `readFeed`; empty lists and nulls match everything. */
export interface FeedFilter {
  userId: string | null;
  sessionId: string | null;
  /** Exact event types. */
  types: string[];
  /** Type prefixes, e.g. "care." for the filter "care.*". */
  typePrefixes: string[];
}

/** Holds one page of the feed and the horizon it was read below. */
export interface FeedPage {
  events: SessionEvent[];
  /** Every transaction with an id below this had finished when the page was read. */
  horizon: bigint;
}

/**
 * Reads the events after `after` in feed order, (tx_id, id), below the
 * transaction-visibility horizon: pg_snapshot_xmin of the reading statement's
 * snapshot. Every transaction below the horizon has committed or aborted, so
 * no event can later appear at a position this read has passed.
 */
export async function readFeed(ex: Executor, after: FeedPosition, filter: FeedFilter, limit: number): Promise<FeedPage> {
  const rows = await ex<(EventRow & { horizon: string })[]>`
    with snapshot as (
      select pg_snapshot_xmin(pg_current_snapshot()) as horizon
    )
    select snapshot.horizon::text as horizon, e.*
    from snapshot
    left join lateral (
      select *
      from session_events
      where (tx_id, id) > (${after.txId.toString()}::xid8, ${after.id.toString()}::bigint)
        and tx_id < snapshot.horizon
        ${filter.userId === null ? ex`` : ex`and user_id = ${filter.userId}`}
        ${filter.sessionId === null ? ex`` : ex`and session_id = ${filter.sessionId}`}
        ${typeCondition(ex, filter)}
      order by session_events.tx_id, session_events.id
      limit ${limit}
    ) as e on true
  `;
  const horizon = BigInt(rows[0]!.horizon);
  const events = rows.filter((row) => row.event_id !== null).map(toEvent);
  return { events, horizon };
}

function typeCondition(ex: Executor, filter: FeedFilter) {
  if (filter.types.length === 0 && filter.typePrefixes.length === 0) return ex``;
  const patterns = filter.typePrefixes.map((prefix) => `${prefix.replace(/[\\%_]/g, "\\$&")}%`);
  return ex`and (type = any(${filter.types}::text[]) or type like any(${patterns}::text[]))`;
}


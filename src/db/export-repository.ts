/**
 * SQL of the timeline export: keyset pages of session_events below a fixed
 * transaction-visibility horizon.
 *
 * The horizon is read once when an export starts and passed to every page.
 * Every transaction below it had finished when it was read, so the set of rows
 * below it never changes again: an export is a stable snapshot without
 * holding a transaction open for its whole run (see `readFeed` in
 * src/db/feed-repository.ts for the same invariant on the live feed).
 */
import type { FeedPosition } from "../domain/cursor.js";
import type { SessionEvent } from "../domain/session.js";
import type { Executor } from "./database.js";
import { afterPosition, untilPosition } from "./feed-position.js";
import { toEvent, type EventRow } from "./rows.js";

/** Selects the events of a feed-order export; nulls match everything. */
export interface FeedRangeFilter {
  userId: string | null;
  /** Exclusive lower bound; null starts before the first event. */
  after: FeedPosition | null;
  /** Inclusive upper bound; null ends at the horizon. */
  until: FeedPosition | null;
  /** Keeps only events of sessions with is_training_data. */
  trainingDataOnly: boolean;
}

/** Finds the user that owns a session, or null if no session has this id. */
export async function findSessionOwner(ex: Executor, sessionId: string): Promise<string | null> {
  const [row] = await ex<{ user_id: string }[]>`
    select user_id
    from sessions
    where session_id = ${sessionId}
    limit 1
  `;
  return row?.user_id ?? null;
}

/**
 * Reads up to `limit` events of the feed after `after` in feed order
 * (tx_id, id), below `horizon`, that match `filter`.
 */
export async function readFeedRangePage(
  ex: Executor,
  filter: FeedRangeFilter,
  horizon: bigint,
  after: FeedPosition,
  limit: number,
): Promise<SessionEvent[]> {
  const rows = await ex<EventRow[]>`
    select e.*
    from session_events as e
    where ${feedRangeCondition(ex, filter, horizon, after)}
    order by e.tx_id, e.id
    limit ${limit}
  `;
  return rows.map(toEvent);
}

/** Counts the events `readFeedRangePage` would return from the start of `filter`. */
export async function countFeedRange(ex: Executor, filter: FeedRangeFilter, horizon: bigint): Promise<number> {
  const [row] = await ex<{ count: string }[]>`
    select count(*) as count
    from session_events as e
    where ${feedRangeCondition(ex, filter, horizon, filter.after ?? { txId: 0n, id: 0n })}
  `;
  return Number(row!.count);
}

/** Selects the events of `filter` after `after` and below `horizon` (shared by page and count). */
function feedRangeCondition(ex: Executor, filter: FeedRangeFilter, horizon: bigint, after: FeedPosition) {
  return ex`
    ${afterPosition(ex, after)}
    and e.tx_id < ${horizon.toString()}::xid8
    ${untilPosition(ex, filter.until)}
    ${filter.userId === null ? ex`` : ex`and e.user_id = ${filter.userId}`}
    ${trainingDataCondition(ex, filter.trainingDataOnly)}
  `;
}

/**
 * Reads up to `limit` events of one session with `seq` greater than
 * `afterSeq`, in seq order, below `horizon`. A session's events are written
 * under its user's lock, so the ones below the horizon form a seq prefix.
 */
export async function readSessionPage(
  ex: Executor,
  owner: { userId: string; sessionId: string },
  trainingDataOnly: boolean,
  horizon: bigint,
  afterSeq: number,
  limit: number,
): Promise<SessionEvent[]> {
  const rows = await ex<EventRow[]>`
    select e.*
    from session_events as e
    where e.user_id = ${owner.userId}
      and e.session_id = ${owner.sessionId}
      and e.seq > ${afterSeq}
      and e.tx_id < ${horizon.toString()}::xid8
      ${trainingDataCondition(ex, trainingDataOnly)}
    order by e.seq
    limit ${limit}
  `;
  return rows.map(toEvent);
}

/** Counts the events `readSessionPage` would return from seq 1. */
export async function countSession(
  ex: Executor,
  owner: { userId: string; sessionId: string },
  trainingDataOnly: boolean,
  horizon: bigint,
): Promise<number> {
  const [row] = await ex<{ count: string }[]>`
    select count(*) as count
    from session_events as e
    where e.user_id = ${owner.userId}
      and e.session_id = ${owner.sessionId}
      and e.tx_id < ${horizon.toString()}::xid8
      ${trainingDataCondition(ex, trainingDataOnly)}
  `;
  return Number(row!.count);
}

function trainingDataCondition(ex: Executor, trainingDataOnly: boolean) {
  if (!trainingDataOnly) return ex``;
  return ex`
    and exists (
      select
      from sessions as s
      where s.user_id = e.user_id
        and s.session_id = e.session_id
        and s.is_training_data
    )
  `;
}

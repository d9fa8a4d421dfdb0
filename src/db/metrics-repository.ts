/**
 * The one query behind the database gauges of src/observability/metrics.ts.
 */
import type { Executor } from "./database.js";

/** Numbers about the whole database, for metrics. */
export interface DatabaseGauges {
  active: number;
  paused: number;
  /** Open sessions whose deadline has passed (what the sweeper has yet to end). */
  lapsedPending: number;
  /**
   * Age of the oldest transaction with a transaction id (those alone hold
   * pg_snapshot_xmin, the feed's horizon, back), prepared ones included, in
   * seconds; 0 when there is none. Other roles' transactions are visible
   * only to superusers and members of pg_read_all_stats.
   */
  horizonAgeSeconds: number;
}

/** Reads the gauges in one statement (index scans of the open sessions, and pg_stat_activity). */
export async function readDatabaseGauges(ex: Executor): Promise<DatabaseGauges> {
  const [row] = await ex<{ active: string; paused: string; lapsed: string; horizon_age: number }[]>`
    select
      (select count(*) from sessions where state = 'active') as active,
      (select count(*) from sessions where state = 'paused') as paused,
      (select count(*) from sessions where state <> 'ended' and deadline <= now()) as lapsed,
      (select coalesce(extract(epoch from clock_timestamp() - min(started)), 0)::float8
         from (select xact_start as started from pg_stat_activity where backend_xid is not null
               union all
               select prepared from pg_prepared_xacts) as holders) as horizon_age
  `;
  return {
    active: Number(row!.active),
    paused: Number(row!.paused),
    lapsedPending: Number(row!.lapsed),
    horizonAgeSeconds: Number(row!.horizon_age),
  };
}

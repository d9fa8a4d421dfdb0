/**
 * Where reads run: the pools of the PostgreSQL hot standbys (READ_DATABASE_URLS)
 * and the fallback to the primary. The one module that knows standbys exist:
 * callers hand it a read (`read(work)`) and get the result from whichever node
 * answered.
 *
 * Why a standby can serve the feed: a hot standby's snapshot is built from the
 * primary's running transactions as replayed (PostgreSQL docs, "Hot Standby"),
 * so pg_snapshot_xmin(pg_current_snapshot()) on a standby is a visibility
 * horizon that already accounts for replay: every transaction below it has
 * committed or aborted on the primary AND been replayed here. Reads below it
 * return the same rows as on the primary, and a (tx_id, id) cursor means the
 * same position on every node of the group (and after a failover). A standby
 * that lags only has a lower horizon: the feed waits, never skips.
 *
 * Failures:
 * - Recovery conflicts: a standby cancels a query whose snapshot or locks get
 *   in the way of replay ("canceling statement due to conflict with
 *   recovery", SQLSTATE 40001 serialization_failure; seen on PostgreSQL 18
 *   in test/standby). The read is retried (a short pause, then on the same node up
 *   to 4 more times, then on the next node); callers never see it.
 * - A node that cannot be reached (see `isDatabaseUnavailable`; also 57P04
 *   database_dropped, which PostgreSQL's source uses when replay drops the
 *   database under a standby session; not exercised by the tests) is
 *   marked down for DOWN_RECHECK_MS: reads go to the next standby in order,
 *   then to the primary. Each transition is logged once (warn when leaving a
 *   node, info when it is back) and counted per standby.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import { openDatabase, type Sql } from "./database.js";
import { codeOf, isDatabaseUnavailable, isRecoveryConflict } from "./errors.js";

/** Runs one read (one or more statements outside any transaction of the caller) on some node and returns its result. */
export type ReadOn = <T>(work: (sql: Sql) => Promise<T>) => Promise<T>;

/** Returns a `ReadOn` that runs every read on `sql` as it is (no retry): reads with no standby configured. */
export function readOnPrimary(sql: Sql): ReadOn {
  return (work) => work(sql);
}

/** Configures `createReadPools`. */
export interface ReadPoolsOptions {
  /** The primary's pool (DATABASE_URL): the last fallback. */
  primary: Sql;
  /** Standby URLs in order of preference (READ_DATABASE_URLS). */
  urls: string[];
  /** Maximum connections per standby pool. */
  max: number;
  log: Logger;
}

/** One standby as metrics show it. */
export interface StandbyLag {
  /** host:port of its URL (never the credentials). */
  standby: string;
  /** Seconds of the primary's commits it has received but not replayed (0 when replay is current); null when unreachable or unknown. */
  seconds: number | null;
}

/** The read pools (see the module comment). */
export interface ReadPools {
  /** Runs a read on the first healthy standby, else the primary (see the module comment for retries and fallback). */
  read: ReadOn;
  /** True when at least one standby is configured. */
  hasStandbys: boolean;
  /** Reads each standby's replay lag (metrics); a standby marked down reports null without a query. */
  replayLag(): Promise<StandbyLag[]>;
  /** Returns, per standby, how many reads left it for the next node so far. */
  fallbacks(): Map<string, number>;
  /** Ends the standby pools (the primary's stays open: its owner ends it). */
  close(): Promise<void>;
}

/** How long a node that failed is skipped before a read tries it again, in ms. */
export const DOWN_RECHECK_MS = 1_000;
const CONFLICT_ATTEMPTS = 5;
const DATABASE_DROPPED = "57P04";

interface Node {
  name: string;
  sql: Sql;
  standby: boolean;
  downUntil: number;
  fallbacks: number;
}

/** Creates the standby pools; with no URLs, `read` runs every read on the primary exactly as before. */
export function createReadPools(options: ReadPoolsOptions): ReadPools {
  const { primary, log } = options;
  const standbys: Node[] = options.urls.map((url) => ({
    name: hostOf(url),
    sql: openDatabase({ url, max: options.max, applicationName: "session-manager-reads", connectTimeoutSeconds: 5 }),
    standby: true,
    downUntil: 0,
    fallbacks: 0,
  }));
  const nodes: Node[] = [...standbys, { name: "primary", sql: primary, standby: false, downUntil: 0, fallbacks: 0 }];

  async function read<T>(work: (sql: Sql) => Promise<T>): Promise<T> {
    const now = performance.now();
    const order = nodes.filter((node) => node.downUntil <= now || !node.standby);
    let lastError: unknown = null;
    for (const [index, node] of order.entries()) {
      const next = order[index + 1]?.name ?? null;
      try {
        const result = await attempt(node, work);
        if (node.downUntil > 0) {
          node.downUntil = 0;
          log.info({ node: node.name }, "database node answers again; reads use it");
        }
        return result;
      } catch (error) {
        if (next === null || !(isDatabaseUnavailable(error) || codeOf(error) === DATABASE_DROPPED || isRecoveryConflict(error))) throw error;
        lastError = error;
        node.fallbacks++;
        if (!isRecoveryConflict(error)) {
          if (node.downUntil === 0) log.warn({ node: node.name, next, err: error }, "database node unavailable for reads; falling back");
          node.downUntil = performance.now() + DOWN_RECHECK_MS;
        }
      }
    }
    throw lastError;
  }

  async function attempt<T>(node: Node, work: (sql: Sql) => Promise<T>): Promise<T> {
    for (let tries = 1; ; tries++) {
      try {
        return await work(node.sql);
      } catch (error) {
        if (!isRecoveryConflict(error) || tries >= CONFLICT_ATTEMPTS) throw error;
        log.debug({ node: node.name, err: error, tries }, "read cancelled by a recovery conflict; retrying");
        await sleep(5 * tries);
      }
    }
  }

  return {
    read: standbys.length === 0 ? readOnPrimary(primary) : read,
    hasStandbys: standbys.length > 0,
    async replayLag() {
      return Promise.all(
        standbys.map(async (node) => ({
          standby: node.name,
          seconds: node.downUntil > performance.now() ? null : await readReplayLag(node.sql).catch(() => null),
        })),
      );
    },
    fallbacks: () => new Map(standbys.map((node) => [node.name, node.fallbacks])),
    async close() {
      await Promise.all(standbys.map((node) => node.sql.end({ timeout: 5 })));
    },
  };
}

/**
 * Reads how far a standby's replay trails what it received, in seconds: 0
 * when it has replayed everything it received (or is no longer in recovery,
 * e.g. promoted), else the age of the last replayed commit. Null before it
 * replayed any commit.
 */
async function readReplayLag(sql: Sql): Promise<number | null> {
  const [row] = await sql<{ seconds: number | null }[]>`
    select
      case
        when not pg_is_in_recovery() then 0
        when pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() then 0
        else extract(epoch from now() - pg_last_xact_replay_timestamp())
      end::float8 as seconds
  `;
  return row?.seconds ?? null;
}

function hostOf(url: string): string {
  try {
    const { hostname, port } = new URL(url);
    return `${hostname}:${port || "5432"}`;
  } catch {
    return "standby";
  }
}

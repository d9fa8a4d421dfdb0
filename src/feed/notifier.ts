/**
 * Wake-ups after commits. The table is the truth; a notification only tells
 * tail readers (this replica's and the others', through LISTEN) to read now
 * instead of at their next poll. Notifications can be lost (a listener that
 * reconnects misses them), so readers also poll.
 *
 * NOTIFY is sent after the business transaction commits, on its own, never
 * inside it: NOTIFY in a transaction takes a cluster-wide lock at commit and
 * serializes committers, and a full notify queue would fail the commit.
 */
import type { Logger } from "pino";
import type { Sql } from "../db/database.js";
import { notifyFeed } from "../db/feed-repository.js";

/** The PostgreSQL NOTIFY/LISTEN channel of feed wake-ups; replicas hear each other's commits only on the same one. */
export const FEED_CHANNEL = "session_events";

/** Configures `createCommitNotifier`; NOTIFY runs on `sql` (the pool), and its failures are logged to `log` as warnings. */
export interface CommitNotifierOptions {
  sql: Sql;
  /** Wakes this replica's tail reader directly, without a round trip. */
  wakeLocal: () => void;
  /** Sends NOTIFY for other replicas. False (FEED_NOTIFY=off): local wake-ups only. */
  broadcast: boolean;
  log: Logger;
  /** Minimum time between two NOTIFYs, in ms; commits in between share one. Default 5. */
  coalesceMs?: number;
  /** Default FEED_CHANNEL. */
  channel?: string;
}

/** What `createCommitNotifier` returns: wiring passes `notify` as every writer's `onEventsCommitted` and calls `close` at shutdown. */
export type CommitNotifier = ReturnType<typeof createCommitNotifier>;

/**
 * Creates the callback for SessionService's `onEventsCommitted`: wakes the
 * local feed at once and sends at most one `pg_notify` per `coalesceMs`.
 */
export function createCommitNotifier(options: CommitNotifierOptions) {
  const { sql, wakeLocal, log } = options;
  const coalesceMs = options.coalesceMs ?? 5;
  const channel = options.channel ?? FEED_CHANNEL;
  let pending = false;
  let timer: NodeJS.Timeout | null = null;
  let sending: Promise<void> | null = null;
  let closed = false;
  let lastSentAt = -Infinity;

  // Leading edge: the first commit of a quiet period is announced at once.
  function schedule(): void {
    if (timer !== null || sending !== null || closed) return;
    timer = setTimeout(flush, Math.max(0, lastSentAt + coalesceMs - performance.now()));
  }

  function flush(): void {
    timer = null;
    if (!pending || closed) return;
    pending = false;
    lastSentAt = performance.now();
    sending = send().finally(() => {
      sending = null;
      if (pending) schedule();
    });
  }

  async function send(): Promise<void> {
    try {
      await notifyFeed(sql, channel);
    } catch (error) {
      // Readers poll anyway; a lost wake-up only costs latency.
      log.warn({ err: error }, "feed NOTIFY failed");
    }
  }

  return {
    /** Reports that a transaction that wrote events has committed. */
    notify(): void {
      wakeLocal();
      if (!options.broadcast || closed) return;
      pending = true;
      schedule();
    },

    /** Stops sending; waits for a NOTIFY in flight. */
    async close(): Promise<void> {
      closed = true;
      if (timer !== null) clearTimeout(timer);
      await sending;
    },
  };
}

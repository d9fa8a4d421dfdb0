/**
 * Wires the service, the feed, their commit notifier and the sweeper on one
 * pool: the one place that knows how they connect. `startApp` (src/app.ts)
 * adds the database and the server around it; tests call it directly.
 */
import type { Logger } from "pino";
import type { Sql } from "./db/database.js";
import type { ReadOn } from "./db/read-pools.js";
import { createCommitNotifier, FEED_CHANNEL } from "./feed/notifier.js";
import { createFeed, type Feed } from "./feed/watch.js";
import { createSessionService, type SessionService } from "./service/session-service.js";
import type { OnCommitted } from "./service/commits.js";
import { createSweeper, type Sweeper } from "./service/sweeper.js";

/** Configures `wireService`; names follow Config (src/config.ts). */
export interface WiringOptions {
  /** The primary's pool: writes, idempotency lookups, the sweeper, NOTIFY and LISTEN. */
  sql: Sql;
  /**
   * Where the feed reads (tail reader, catch-up) and, with `readConsistency`
   * "replica", GetSession/ListSessions/ListSessionEvents: a standby's
   * `ReadPools.read` (src/db/read-pools.ts). Default: `sql`.
   */
  read?: ReadOn;
  /** READ_CONSISTENCY: "primary" (default) keeps unary reads on `sql`; "replica" sends them through `read`. */
  readConsistency?: "primary" | "replica";
  /** READ_REPLAY_WAIT_MS: how long Watch waits for the read node to reach an after_cursor. Default 5,000. */
  readReplayWaitMs?: number;
  log: Logger;
  defaultIdleTimeoutMs: number;
  watchPollMs: number;
  watchHeartbeatMs: number;
  watchQueueFrames?: number;
  /** Concurrent WatchSessionEvents streams per replica (WATCH_STREAMS_MAX). Default 20,000. */
  watchStreamsMax?: number;
  /** Rows per feed query. Default 500. */
  feedBatchSize?: number;
  /** LISTEN/NOTIFY wake-ups across replicas (FEED_NOTIFY); local wake-ups happen either way. */
  feedNotify: boolean;
  /** 0 runs no sweeper (lazy enforcement still applies). */
  sweepIntervalMs: number;
  sweepBatchSize?: number;
  /** Called after each committed transaction that wrote events, with what it wrote (metrics). */
  onCommitted?: OnCommitted;
  /** Called after each sweeper pass (metrics): sessions ended, duration in seconds. */
  onSweep?: (ended: number, seconds: number) => void;
  /** Group commit (WRITE_BATCH_MAX, WRITE_BATCH_WAIT_US, WRITE_BATCHES_IN_FLIGHT); defaults in src/service/write-batch.ts. */
  writeBatchMax?: number;
  writeBatchWaitUs?: number;
  writeBatchesInFlight?: number;
}

/** What `wireService` returns; its owner (startApp, or a test) starts the sweeper and ends the pool. */
export interface Wiring {
  service: SessionService;
  feed: Feed;
  /** Null when `sweepIntervalMs` is 0. Not started: call `sweeper.start()`. */
  sweeper: Sweeper | null;
  /** Ends every stream (SERVER_SHUTTING_DOWN), stops the sweeper and the notifier; the pool stays open. */
  close(): Promise<void>;
}

/**
 * Wires the parts: the service and the sweeper report committed events to a
 * notifier that wakes this replica's feed at once and, with `feedNotify`, the
 * other replicas through one coalesced NOTIFY after commit (never inside the
 * business transaction).
 */
export function wireService(options: WiringOptions): Wiring {
  const { sql, log } = options;
  const feed = createFeed({
    sql,
    read: options.read,
    replayWaitMs: options.readReplayWaitMs,
    log,
    pollMs: options.watchPollMs,
    heartbeatMs: options.watchHeartbeatMs,
    queueFrames: options.watchQueueFrames,
    maxStreams: options.watchStreamsMax,
    batchSize: options.feedBatchSize,
    notifyChannel: options.feedNotify ? FEED_CHANNEL : null,
  });
  const notifier = createCommitNotifier({ sql, wakeLocal: feed.wake, broadcast: options.feedNotify, log });
  const committed: OnCommitted = (report) => {
    notifier.notify();
    options.onCommitted?.(report);
  };
  const service = createSessionService({
    sql,
    log,
    defaultIdleTimeoutMs: options.defaultIdleTimeoutMs,
    onEventsCommitted: committed,
    writeBatchMax: options.writeBatchMax,
    writeBatchWaitUs: options.writeBatchWaitUs,
    writeBatchesInFlight: options.writeBatchesInFlight,
    unaryReads: options.readConsistency === "replica" ? options.read : undefined,
  });
  const sweeper =
    options.sweepIntervalMs > 0
      ? createSweeper({
          sql,
          log,
          intervalMs: options.sweepIntervalMs,
          batchSize: options.sweepBatchSize,
          onEventsCommitted: committed,
          onPass: options.onSweep,
        })
      : null;
  return {
    service,
    feed,
    sweeper,
    async close() {
      feed.close();
      await sweeper?.stop();
      await notifier.close();
    },
  };
}

/**
 * The idle-timeout sweeper. Every replica runs one; together they end each
 * lapsed session exactly once (idle timeout or max duration) with one
 * "session.ended" event:
 *   - each batch is one transaction that try-locks the users of up to
 *     `batchSize` lapsed sessions (busy users are skipped, never waited for,
 *     so sweepers and writers cannot deadlock),
 *   - re-reads those sessions after the locks (a heartbeat that committed
 *     before is seen and wins) and the database clock,
 *   - and records every lapse in one statement.
 * Batches repeat while there is work; the sweeper sleeps `intervalMs` when
 * there is none. Reads and writes never depend on it having run: every RPC
 * treats a lapsed session as ended (lazy enforcement).
 */
import type { Logger } from "pino";
import type { Sql } from "../db/database.js";
import { readClock } from "../db/locks.js";
import * as repo from "../db/session-repository.js";
import { findSessions, lockLapsedSessions } from "../db/sweeper-repository.js";
import { planLapse, type SessionChange } from "../domain/lifecycle.js";
import { reportOf, type OnCommitted } from "./commits.js";
import { inTransaction, StaleSession } from "./transaction.js";

/** Configures `createSweeper`. */
export interface SweeperOptions {
  sql: Sql;
  log: Logger;
  /** Pause between passes when nothing is left to end, in ms. */
  intervalMs: number;
  /** Sessions per batch (one transaction). Default 500. */
  batchSize?: number;
  /** Called after a batch that ended sessions has committed, with what it wrote. */
  onEventsCommitted?: OnCommitted;
  /** Called after each pass of the loop that did not fail: sessions it ended, and its duration in seconds (metrics). */
  onPass?: (ended: number, seconds: number) => void;
}

/** What `sweepBatch` returns; `sweep` stops once `locked` falls below the batch size (nothing more to take for now). */
export interface SweepResult {
  /** Lapsed sessions whose user lock this batch took. */
  locked: number;
  /** Sessions ended by this batch (fewer than locked if a heartbeat came first). */
  ended: number;
}

/** Ends lapsed sessions in the background; any number may run against one database. */
export interface Sweeper {
  /** Runs batches while they come back full; resolves with how many sessions were ended. */
  sweep(): Promise<number>;
  /** Ends the lapsed sessions of one batch (one transaction). */
  sweepBatch(): Promise<SweepResult>;
  /** Runs in the background: sweeps until no batch comes back full, then waits `intervalMs`, and again. */
  start(): void;
  /** Stops after the current batch; resolves when it has. */
  stop(): Promise<void>;
}

/** Creates a sweeper; call `start()` to run it in the background, `stop()` to end it. */
export function createSweeper(options: SweeperOptions): Sweeper {
  const { sql, log, intervalMs } = options;
  const batchSize = options.batchSize ?? 500;
  const committed = options.onEventsCommitted ?? (() => {});
  let running: Promise<void> | null = null;
  let stopping = false;
  let wake: (() => void) | null = null;

  async function sweepBatch(): Promise<SweepResult> {
    const result = await inTransaction(sql, log, async (tx) => {
      const locked = await lockLapsedSessions(tx, batchSize);
      const [sessions, now] = await Promise.all([findSessions(tx, locked), readClock(tx)]);
      const changes = sessions.map((session) => planLapse(session, now)).filter((change): change is SessionChange => change !== null);
      const events = await repo.applyChanges(tx, changes);
      if (events.length !== changes.length) throw new StaleSession();
      return { locked: locked.length, ended: events.length, report: reportOf(changes) };
    });
    if (result.ended > 0) committed(result.report);
    return { locked: result.locked, ended: result.ended };
  }

  async function sweep(): Promise<number> {
    let total = 0;
    for (;;) {
      const { ended, locked } = await sweepBatch();
      total += ended;
      if (locked < batchSize || stopping) return total;
    }
  }

  async function loop(): Promise<void> {
    while (!stopping) {
      try {
        const started = performance.now();
        const ended = await sweep();
        options.onPass?.(ended, (performance.now() - started) / 1000);
        if (ended > 0) log.info({ ended }, "sweeper ended lapsed sessions");
      } catch (error) {
        log.warn({ err: error }, "sweep failed; retrying next interval");
      }
      if (stopping) return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, intervalMs);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = null;
    }
  }

  return {
    sweep,
    sweepBatch,
    start(): void {
      if (running === null) running = loop();
    },
    async stop(): Promise<void> {
      stopping = true;
      wake?.();
      await running;
    },
  };
}

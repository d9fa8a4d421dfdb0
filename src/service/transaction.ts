/**
 * Runs the service's transactions: retries when a concurrent writer won a
 * race, and turns database failures into the errors callers should see.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import { beginPipelined, type Executor, type PipelinedTransaction, type Sql } from "../db/database.js";
import { isRetryable, toDomainError } from "../db/errors.js";
import { inDatabaseSpan } from "../observability/tracing.js";

/** Signals that a session changed between read and write; the transaction is retried. */
export class StaleSession extends Error {
  constructor() {
    super("the session changed during the transaction");
    this.name = "StaleSession";
  }
}

const MAX_ATTEMPTS = 5;

/**
 * Runs `work` in a transaction (`beginPipelined`: BEGIN travels with
 * `work`'s first statements, and `work` may send COMMIT with its last ones),
 * retrying up to 5 times (after a jittered
 * pause of up to 5 ms per attempt) on unique violations,
 * deadlocks, serialization failures and StaleSession, and turning connection
 * failures into DATABASE_UNAVAILABLE.
 */
export async function inTransaction<T>(sql: Sql, log: Logger, work: (tx: PipelinedTransaction) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await inDatabaseSpan("db.transaction", () => beginPipelined(sql, work));
    } catch (error) {
      const retry = error instanceof StaleSession || isRetryable(error);
      if (retry && attempt < MAX_ATTEMPTS) {
        log.debug({ err: error, attempt }, "retrying transaction");
        // A short jittered pause lets the winner of the race commit first.
        await sleep(Math.random() * 5 * attempt);
        continue;
      }
      throw toDomainError(error);
    }
  }
}

/** Runs a read on the pool, turning connection failures into DATABASE_UNAVAILABLE. */
export async function inRead<T>(sql: Sql, work: (ex: Executor) => Promise<T>): Promise<T> {
  try {
    return await work(sql);
  } catch (error) {
    throw toDomainError(error);
  }
}

/**
 * Runs several reads in one read-only repeatable-read transaction, so they
 * all see the same snapshot, turning connection failures into
 * DATABASE_UNAVAILABLE. Not retried: a read-only repeatable-read
 * transaction never fails with a serialization error.
 */
export async function inSnapshot<T>(sql: Sql, work: (tx: PipelinedTransaction) => Promise<T>): Promise<T> {
  try {
    return await inDatabaseSpan("db.transaction", () => beginPipelined(sql, work, "isolation level repeatable read read only"));
  } catch (error) {
    throw toDomainError(error);
  }
}

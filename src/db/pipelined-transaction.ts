/**
 * A transaction whose BEGIN travels in the same packet as its first
 * statements and whose COMMIT travels with its last ones: a write batch
 * (src/service/write-batch.ts) costs two round trips instead of four.
 * postgres.js's `sql.begin` awaits BEGIN before its callback runs and COMMIT
 * after the callback returns; on this 2-core machine each round trip costs
 * the replica about 0.1 ms of CPU on top of its wait (bench/write-path.ts).
 *
 * Sending COMMIT before the last statements' results are known is safe
 * because PostgreSQL runs a connection's statements in order: a statement
 * that fails aborts the transaction, every later one fails with 25P02, and
 * the COMMIT behind them ends it as ROLLBACK (that command tag, no error).
 * So a guard that must hold for the transaction to commit has to fail in
 * SQL, inside the statement (see `session_manager_check`, migration 006),
 * not in a check of the statement's result afterwards.
 */
import type { Sql, Transaction } from "./database.js";
import { codeOf, isDatabaseUnavailable } from "./errors.js";

/** SQLSTATE of a statement sent after an earlier one failed in the same transaction. */
const IN_FAILED_TRANSACTION = "25P02";

/**
 * Sends COMMIT right behind `last` and resolves with their results once the
 * transaction has committed. Statements run in the order they were issued:
 * a postgres.js query is issued when it is first awaited (as the repository
 * functions do at once) or, if not yet, when passed here, in array order.
 *
 * @throws the failed statement's error (the transaction rolled back; the
 *   statements after it fail with 25P02, which is not reported), or
 *   COMMIT's own error (e.g. a lost connection; whether it committed is
 *   then unknown, as with any COMMIT).
 */
export type CommitWith = <T extends readonly unknown[]>(last: readonly [...T]) => Promise<{ -readonly [K in keyof T]: Awaited<T[K]> }>;

/**
 * Runs `work` in a transaction on a reserved connection. BEGIN is issued
 * before `work` starts, so `work`'s first statements go out with it; `work`
 * must end the transaction with `commitWith` (its last statements, or `[]`).
 * If `work` throws before that, the transaction is rolled back. The
 * connection returns to the pool, unless it was lost (then nothing more is
 * sent on it: the server ends the transaction).
 *
 * @throws what `work` or `commitWith` throws; the driver's error when no
 *   connection can be had.
 */
export async function pipelinedTransaction<T>(sql: Sql, work: (tx: Transaction, commitWith: CommitWith) => Promise<T>): Promise<T> {
  const connection = await sql.reserve();
  // A reserved connection runs statements like a transaction's once BEGIN has run; TransactionSql only adds savepoints.
  const tx = connection as unknown as Transaction;
  let committing = false;
  const begun = connection`begin`.then(
    () => null,
    (error: unknown) => ({ error }),
  );
  const commitWith: CommitWith = async (last) => {
    committing = true;
    const commit = connection`commit`;
    const settled = await Promise.allSettled([...last, commit]);
    // BEGIN was answered before anything `work` awaited; if it failed, the connection is broken and so is everything after it.
    const beginFailure = await begun;
    if (beginFailure !== null) throw beginFailure.error;
    const failures = settled.flatMap((outcome) => (outcome.status === "rejected" ? [outcome.reason as unknown] : []));
    if (failures.length > 0) throw failures.find((error) => codeOf(error) !== IN_FAILED_TRANSACTION) ?? failures[0];
    const tag = (settled[settled.length - 1] as PromiseFulfilledResult<{ command: string }>).value.command;
    if (tag !== "COMMIT") throw new Error(`COMMIT answered ${tag}`);
    return settled.slice(0, -1).map((outcome) => (outcome as PromiseFulfilledResult<unknown>).value) as never;
  };
  let lost = false;
  try {
    return await work(tx, commitWith);
  } catch (error) {
    lost = isDatabaseUnavailable(error);
    if (!committing && !lost) await connection`rollback`.catch(() => {});
    throw error;
  } finally {
    // A lost connection is not given back: postgres.js has already put it among its closed
    // connections (to reconnect on demand), and `release` would move it to the open ones, where
    // the next statement would be written to a socket that is gone. PostgreSQL rolled it back.
    if (!lost) connection.release();
  }
}

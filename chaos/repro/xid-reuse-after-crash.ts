/**
 * Fixed in src/db/feed-repository.ts (`boundsCte`): the feed's positions no
 * longer pass the newest event, whose commit is durable, so a reused id sorts
 * after every cursor handed out (test/feed/horizon.test.ts). This script
 * still exits 1: it shows what PostgreSQL does, which the fix allows for.
 *
 * Reproduced the feed skip the chaos harness found (seed 5, fault
 * postgres-restart): after an immediate shutdown (a crash) PostgreSQL can
 * hand out again a transaction id that it had assigned before the crash to
 * a transaction that did not commit durably (its abort record is not
 * flushed). The feed (README "The event feed") may already have moved a
 * subscriber's cursor past that id, because the horizon
 * pg_snapshot_xmin(pg_current_snapshot()) passed it when that transaction
 * ended; an event committed after the restart under the reused id then sorts
 * BEHIND the cursor and is never delivered.
 *
 * Run as root: `node --import tsx chaos/repro/xid-reuse-after-crash.ts`. It
 * starts its own PostgreSQL 18 (chaos/postgres.ts) in a temp folder, then:
 * a transaction takes an id X and rolls back; the horizon is now X+1 (a
 * heartbeat would carry the cursor (X, max)); `pg_ctl stop -m immediate`,
 * start; a new transaction is given X again. Exit 1 while ids are reused.
 */
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openDatabase } from "../../src/db/database.js";
import { freePort } from "../../test/support/ports.js";
import { startChaosPostgres } from "../postgres.js";

const dir = mkdtempSync(join(tmpdir(), "sm-chaos-repro-"));
chmodSync(dir, 0o755);
const postgres = await startChaosPostgres(dir, await freePort());
let reused = false;
try {
  let sql = openDatabase({ url: postgres.url, max: 1 });
  await sql`create table t (x int)`;
  const x = await sql.begin(async (tx) => {
    const [row] = await tx<[{ xid: string }]>`select pg_current_xact_id()::text as xid`;
    await tx`insert into t values (1)`;
    // Throwing makes postgres.js roll back; the abort record is not flushed (aborts never wait for WAL).
    throw Object.assign(new Error("rollback"), { xid: row.xid });
  }).catch((error: { xid: string }) => error.xid);
  const [{ horizon }] = await sql<[{ horizon: string }]>`select pg_snapshot_xmin(pg_current_snapshot())::text as horizon`;
  console.log(`before the crash: transaction ${x} rolled back; the horizon is ${horizon}, so a cursor (${x}, max) is already handed out`);
  await sql.end({ timeout: 1 });
  await postgres.crash();
  await postgres.start();
  sql = openDatabase({ url: postgres.url, max: 1 });
  const next = await sql.begin(async (tx) => {
    const [row] = await tx<[{ xid: string }]>`select pg_current_xact_id()::text as xid`;
    await tx`insert into t values (2)`;
    return row.xid;
  });
  await sql.end({ timeout: 1 });
  reused = BigInt(next) <= BigInt(x);
  console.log(`after pg_ctl stop -m immediate and start: the next transaction committed as ${next}${reused ? ` (<= ${x}: its rows sort behind the cursor and the feed never delivers them)` : " (not reused)"}`);
} finally {
  await postgres.stop();
  rmSync(dir, { recursive: true, force: true });
}
process.exit(reused ? 1 : 0);

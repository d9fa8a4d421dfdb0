/**
 * Pipelined transactions (src/db/pipelined-transaction.ts) against a real
 * PostgreSQL, on a pool of ONE connection, so every check after a
 * transaction runs on the connection the transaction used: a transaction
 * commits only when every statement did; a failing last statement rolls the
 * whole transaction back although COMMIT was already sent; a failure before
 * COMMIT rolls back; the connection comes back out of any transaction. And
 * the write batch's session update, whose guard fails inside the statement
 * (migration 006), so the COMMIT behind it cannot commit a stale update.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { updateSessions, useGenericPlans } from "../../src/db/batch-repository.js";
import { findSession } from "../../src/db/session-repository.js";
import { openDatabase } from "../../src/db/database.js";
import { isDatabaseUnavailable } from "../../src/db/errors.js";
import { pipelinedTransaction } from "../../src/db/pipelined-transaction.js";
import { createSessionService } from "../../src/service/session-service.js";
import pino from "pino";
import { createIsolatedDatabase, type IsolatedDatabase } from "../support/isolated-database.js";
import { waitFor } from "../support/wait.js";

let db: IsolatedDatabase;

beforeAll(async () => {
  db = await createIsolatedDatabase("pipelined", 1);
  await db.sql`create table probe (k text primary key, v int not null check (v >= 0))`;
});
afterAll(() => db.drop());

async function stored(): Promise<Record<string, number>> {
  const rows = await db.sql<{ k: string; v: number }[]>`select k, v from probe`;
  return Object.fromEntries(rows.map((row) => [row.k, row.v]));
}

/** Tells whether the pool's connection is outside any transaction: then two statements are two transactions. */
async function outsideTransaction(): Promise<boolean> {
  const [[first], [second]] = [await db.sql<[{ id: string }]>`select txid_current()::text as id`, await db.sql<[{ id: string }]>`select txid_current()::text as id`];
  return first!.id !== second!.id;
}

describe("pipelined transaction", () => {
  it("commits the statements of both exchanges together and returns the last ones' results", async () => {
    await db.sql`delete from probe`;
    const [inserted, count] = await pipelinedTransaction(db.sql, async (tx, commitWith) => {
      const [[first]] = await Promise.all([tx<[{ v: number }]>`insert into probe values ('a', 1) returning v`]);
      return commitWith([tx<{ k: string }[]>`insert into probe values ('b', ${first!.v + 1}) returning k`, tx<[{ n: number }]>`select count(*)::int as n from probe`]);
    });
    expect(inserted.map((row) => row.k)).toEqual(["b"]);
    expect(count[0]!.n).toBe(2);
    expect(await stored()).toEqual({ a: 1, b: 2 });
    expect(await outsideTransaction()).toBe(true);
  });

  it("rolls everything back when a last statement fails, although COMMIT went out behind it", async () => {
    await db.sql`delete from probe`;
    const failure = pipelinedTransaction(db.sql, async (tx, commitWith) => {
      await tx`insert into probe values ('c', 1)`;
      return commitWith([tx`insert into probe values ('d', 1)`, tx`insert into probe values ('e', -1)`, tx`insert into probe values ('f', 1)`]);
    });
    await expect(failure).rejects.toMatchObject({ code: "23514" });
    expect(await stored()).toEqual({});
    expect(await outsideTransaction()).toBe(true);
  });

  it("rolls back when the work fails before committing", async () => {
    await db.sql`delete from probe`;
    const failure = pipelinedTransaction(db.sql, async (tx) => {
      await tx`insert into probe values ('g', 1)`;
      throw new Error("decided not to commit");
    });
    await expect(failure).rejects.toThrow("decided not to commit");
    expect(await stored()).toEqual({});
    expect(await outsideTransaction()).toBe(true);
  });

  it("keeps generic plans to its own transaction", async () => {
    await pipelinedTransaction(db.sql, async (tx, commitWith) => {
      await useGenericPlans(tx);
      const [[inside]] = await Promise.all([tx<[{ plan_cache_mode: string }]>`show plan_cache_mode`]);
      expect(inside!.plan_cache_mode).toBe("force_generic_plan");
      return commitWith([]);
    });
    const [after] = await db.sql<[{ plan_cache_mode: string }]>`show plan_cache_mode`;
    expect(after.plan_cache_mode).toBe("auto");
  });

  it("fails with the connection's error when PostgreSQL drops it mid-transaction, sends nothing more on it, and the pool reconnects", async () => {
    const other = openDatabase({ url: db.url, max: 1 });
    let pid = 0;
    try {
      const lost = pipelinedTransaction(db.sql, async (tx, commitWith) => {
        [{ pid }] = await tx<[{ pid: number }]>`insert into probe values ('i', 1) returning pg_backend_pid() as pid`;
        await other`select pg_terminate_backend(${pid})`;
        await waitFor(async () => (await other<[{ n: number }]>`select count(*)::int as n from pg_stat_activity where pid = ${pid}`)[0].n === 0);
        await new Promise((resolve) => setTimeout(resolve, 100)); // the socket's close reaches postgres.js
        return commitWith([tx`insert into probe values ('j', 1)`]);
      });
      await expect(lost).rejects.toSatisfy(isDatabaseUnavailable);
      const [again] = await db.sql<[{ pid: number }]>`select pg_backend_pid() as pid`;
      expect(again.pid).not.toBe(pid);
      expect(await stored()).not.toHaveProperty("i");
    } finally {
      await other.end();
    }
  });
});

describe("the write batch's session update", () => {
  it("fails with 40001 inside the statement when a session's last_seq moved, and nothing of its transaction commits", async () => {
    const service = createSessionService({ sql: db.sql, log: pino({ level: "silent" }), defaultIdleTimeoutMs: 60_000, writeBatchMax: 1, writeBatchWaitUs: 0, writeBatchesInFlight: 1 });
    const { session } = await service.startSession({
      recordId: "start-1", userId: "user-stale", performerId: "", eventTime: null, idleTimeoutMs: null, maxDurationMs: null,
      metadata: {}, isTrainingData: false, conflictPolicy: "reject",
    });
    await db.sql`delete from probe`;
    const paused = { ...session, state: "paused" as const, expireTime: null };
    const stale = pipelinedTransaction(db.sql, async (tx, commitWith) =>
      commitWith([tx`insert into probe values ('h', 1)`, updateSessions(tx, [{ session: paused, previousSeq: session.lastSeq - 1 }])]),
    );
    await expect(stale).rejects.toMatchObject({ code: "40001" });
    expect(await stored()).toEqual({});
    expect((await findSession(db.sql, session.sessionId))?.state).toBe("active");

    await pipelinedTransaction(db.sql, async (tx, commitWith) => commitWith([updateSessions(tx, [{ session: paused, previousSeq: session.lastSeq }])]));
    expect((await findSession(db.sql, session.sessionId))?.state).toBe("paused");
  });
});

/**
 * The write batch's statements (src/db/batch-repository.ts) against a real
 * PostgreSQL: the session update's guard fails inside the statement
 * (`session_manager_check`, migration 006) with 40001, so nothing of its
 * transaction commits, and the batch's generic plans stay in its transaction.
 */
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { updateSessions, useGenericPlans } from "../../src/db/batch-repository.js";
import { beginPipelined } from "../../src/db/database.js";
import { findSession } from "../../src/db/session-repository.js";
import { createSessionService } from "../../src/service/session-service.js";
import { createIsolatedDatabase, type IsolatedDatabase } from "../support/isolated-database.js";

let db: IsolatedDatabase;

beforeAll(async () => {
  db = await createIsolatedDatabase("batch_sql", 1);
  await db.sql`create table probe (k text primary key, v int not null check (v >= 0))`;
});
afterAll(() => db.drop());

async function stored(): Promise<Record<string, number>> {
  const rows = await db.sql<{ k: string; v: number }[]>`select k, v from probe`;
  return Object.fromEntries(rows.map((row) => [row.k, row.v]));
}

describe("the batch's generic plans", () => {
  it("stay in its transaction", async () => {
    await db.sql.begin(async (tx) => {
      await useGenericPlans(tx);
      const [inside] = await tx<[{ plan_cache_mode: string }]>`show plan_cache_mode`;
      expect(inside.plan_cache_mode).toBe("force_generic_plan");
    });
    const [after] = await db.sql<[{ plan_cache_mode: string }]>`show plan_cache_mode`;
    expect(after.plan_cache_mode).toBe("auto");
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
    // As in a batch: the update and COMMIT in one pipeline, so the guard must fail inside the statement.
    const stale = beginPipelined(db.sql, (tx) =>
      Promise.all([tx`insert into probe values ('h', 1)`, updateSessions(tx, [{ session: paused, previousSeq: session.lastSeq - 1 }]), tx.commit()]),
    );
    await expect(stale).rejects.toMatchObject({ code: "40001" });
    expect(await stored()).toEqual({});
    expect((await findSession(db.sql, session.sessionId))?.state).toBe("active");

    await beginPipelined(db.sql, (tx) => Promise.all([updateSessions(tx, [{ session: paused, previousSeq: session.lastSeq }]), tx.commit()]));
    expect((await findSession(db.sql, session.sessionId))?.state).toBe("paused");
  });
});

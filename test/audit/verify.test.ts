/** `verify` recomputes hash chains; tampering done as a superuser is found. */
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyChains } from "../../src/service/audit.js";
import { createSessionService, type SessionService } from "../../src/service/session-service.js";
import { uniqueId } from "../support/app.js";
import { createIsolatedDatabase, type IsolatedDatabase } from "../support/isolated-database.js";

let db: IsolatedDatabase;
let service: SessionService;
const users: string[] = [];

beforeAll(async () => {
  db = await createIsolatedDatabase("sm_verify");
  service = createSessionService({ sql: db.sql, defaultIdleTimeoutMs: 60_000, log: pino({ level: "silent" }) });
  for (let u = 0; u < 3; u++) {
    const userId = uniqueId("audit");
    users.push(userId);
    for (let s = 0; s < 2; s++) {
      const { session } = await service.startSession({
        recordId: uniqueId("rec"), userId, performerId: "", eventTime: null, idleTimeoutMs: null, maxDurationMs: null,
        metadata: { s }, isTrainingData: false, conflictPolicy: "reject",
      });
      for (let e = 0; e < 3; e++) {
        await service.appendSessionEvent({
          recordId: uniqueId("rec"), sessionId: session.sessionId, type: "care.note", eventTime: null, source: "test", performerId: "", payload: { e, text: "héllo" },
        });
      }
      await service.endSession({ recordId: uniqueId("rec"), sessionId: session.sessionId, performerId: "", eventTime: null });
    }
  }
});
afterAll(() => db.drop());

/** Changes stored rows as a superuser would, bypassing the append-only triggers. */
async function tamper(statement: (tx: typeof db.sql) => Promise<unknown>): Promise<void> {
  await db.sql.begin(async (tx) => {
    await tx`set local session_replication_role = replica`;
    await statement(tx as unknown as typeof db.sql);
  });
}

describe("verify", () => {
  it("finds every chain intact after normal use", async () => {
    const report = await verifyChains(db.sql, { sessionId: null, userId: null });
    expect(report).toEqual({ sessions: 6, events: 30, broken: null });
    expect((await verifyChains(db.sql, { sessionId: null, userId: users[0]! })).sessions).toBe(2);
  });

  it("reports the first broken link when a stored payload is changed", async () => {
    const [target] = await db.sql<[{ session_id: string }]>`select session_id from sessions where user_id = ${users[1]!} order by session_index limit 1`;
    await tamper((tx) => tx`update session_events set payload = '{"e": 1, "text": "edited"}' where session_id = ${target.session_id} and seq = 3`);
    const report = await verifyChains(db.sql, { sessionId: null, userId: users[1]! });
    expect(report.broken).toMatchObject({ sessionId: target.session_id, seq: 3 });
    expect((await verifyChains(db.sql, { sessionId: null, userId: users[0]! })).broken).toBeNull();
  });

  it("reports a removed event and a removed tail", async () => {
    const sessions = await db.sql<{ session_id: string }[]>`select session_id from sessions where user_id = ${users[2]!} order by session_index`;
    await tamper((tx) => tx`delete from session_events where session_id = ${sessions[0]!.session_id} and seq = 2`);
    expect((await verifyChains(db.sql, { sessionId: sessions[0]!.session_id, userId: null })).broken).toMatchObject({ seq: 2 });
    await tamper((tx) => tx`delete from session_events where session_id = ${sessions[1]!.session_id} and seq = 5`);
    expect((await verifyChains(db.sql, { sessionId: sessions[1]!.session_id, userId: null })).broken).toMatchObject({ seq: 5 });
  });
});

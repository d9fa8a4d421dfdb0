/** `prune` removes whole ended sessions safely; the archive verifies offline. */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readWatermark } from "../../src/db/audit-repository.js";
import { chainHash } from "../../src/domain/chain.js";
import { pruneSessions } from "../../src/service/retention.js";
import { createSessionService, type SessionService } from "../../src/service/session-service.js";
import { uniqueId } from "../support/app.js";
import { createIsolatedDatabase, type IsolatedDatabase } from "../support/isolated-database.js";

let db: IsolatedDatabase;
let service: SessionService;
const archiveDir = mkdtempSync(join(tmpdir(), "sm-prune-"));
const log = pino({ level: "silent" });

beforeAll(async () => {
  db = await createIsolatedDatabase("sm_prune");
  service = createSessionService({ sql: db.sql, defaultIdleTimeoutMs: 60_000, log: pino({ level: "silent" }) });
});
afterAll(async () => {
  await db.drop();
  rmSync(archiveDir, { recursive: true, force: true });
});

async function startSession(userId: string) {
  return service.startSession({
    recordId: uniqueId("rec"), userId, performerId: "", eventTime: null, idleTimeoutMs: null, maxDurationMs: null,
    metadata: {}, isTrainingData: false, conflictPolicy: "reject",
  });
}

async function counts() {
  const [row] = await db.sql<[{ sessions: string; events: string; open: string }]>`
    select (select count(*) from sessions) as sessions, (select count(*) from session_events) as events,
           (select count(*) from sessions where state <> 'ended') as open
  `;
  return { sessions: Number(row.sessions), events: Number(row.events), open: Number(row.open) };
}

describe("prune", () => {
  it("counts on a dry run, then archives and removes only ended sessions, moving the feed watermark", async () => {
    const ended: string[] = [];
    for (let i = 0; i < 5; i++) {
      const { session } = await startSession(uniqueId("old"));
      await service.appendSessionEvent({ recordId: uniqueId("rec"), sessionId: session.sessionId, type: "care.x", eventTime: null, source: "t", performerId: "", payload: { i } });
      await service.endSession({ recordId: uniqueId("rec"), sessionId: session.sessionId, performerId: "", eventTime: null });
      ended.push(session.sessionId);
    }
    const open = await startSession(uniqueId("open"));
    const paused = await startSession(uniqueId("paused"));
    await service.pauseSession({ recordId: uniqueId("rec"), sessionId: paused.session.sessionId });
    const cutoff = new Date(Date.now() + 60_000);
    const before = await counts();

    const dry = await pruneSessions(db.sql, log, { endedBefore: cutoff, archiveDir, dryRun: true });
    expect(dry).toEqual({ sessions: 5, events: 15, archived: 0 });
    expect(await counts()).toEqual(before);
    expect(readdirSync(archiveDir)).toEqual([]);

    const done = await pruneSessions(db.sql, log, { endedBefore: cutoff, archiveDir, dryRun: false });
    expect(done).toEqual({ sessions: 5, events: 15, archived: 5 });
    expect(await counts()).toEqual({ sessions: 2, events: 3, open: 2 });
    expect(readdirSync(archiveDir).sort()).toEqual(ended.map((id) => `${id}.jsonl`).sort());
    expect((await readWatermark(db.sql)).txId).toBeGreaterThan(0n);
    expect((await service.getSession(open.session.sessionId)).state).toBe("active");

    // The archive carries the hash chain: an auditor can check it offline.
    const lines = readFileSync(join(archiveDir, `${ended[0]}.jsonl`), "utf8").trim().split("\n").map((line) => JSON.parse(line));
    expect(lines.map((line) => line.type)).toEqual(["session.started", "care.x", "session.ended"]);
    let previous = "";
    for (const line of lines) {
      const recomputed = chainHash(previous, {
        eventId: line.id, userId: line.userid, sessionId: line.sessionid, seq: line.seq, recordId: line.recordid, type: line.type,
        eventTime: new Date(line.time), receiveTime: new Date(line.receivetime), source: line.source.replace("/sessionmanager/", ""),
        performerId: line.performerid ?? "", payload: line.data,
      });
      expect(line.hash).toBe(recomputed);
      previous = line.hash;
    }

    expect(await pruneSessions(db.sql, log, { endedBefore: cutoff, archiveDir, dryRun: false })).toEqual({ sessions: 0, events: 0, archived: 0 });
  });

  it("leaves sessions that ended after the cutoff", async () => {
    const { session } = await startSession(uniqueId("recent"));
    await service.endSession({ recordId: uniqueId("rec"), sessionId: session.sessionId, performerId: "", eventTime: null });
    const report = await pruneSessions(db.sql, log, { endedBefore: new Date(Date.now() - 60_000), archiveDir: null, dryRun: false });
    expect(report.sessions).toBe(0);
    expect((await service.getSession(session.sessionId)).state).toBe("ended");
  });

  it("keeps counting a user's sessions after their latest one is pruned", async () => {
    const userId = uniqueId("counted");
    let last = "";
    for (let i = 0; i < 2; i++) {
      const { session } = await startSession(userId);
      await service.endSession({ recordId: uniqueId("rec"), sessionId: session.sessionId, performerId: "", eventTime: null });
      last = session.sessionId;
    }
    await pruneSessions(db.sql, log, { endedBefore: new Date(Date.now() + 60_000), archiveDir: null, dryRun: false });
    const { session } = await startSession(userId);
    expect(session).toMatchObject({ sessionIndex: 3, previousSessionId: last });
  });
});

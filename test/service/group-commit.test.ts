/**
 * Group commit (src/service/write-batch.ts) against a real PostgreSQL: calls
 * made in the same turn of the event loop share one transaction (their
 * events carry the same tx_id, which every test checks, so a test cannot
 * pass without a batch), and each keeps the guarantees it has alone:
 * idempotency by record_id, one open session per user, dense seq, the hash
 * chain, per-user feed order, and its own errors.
 */
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Sql } from "../../src/db/database.js";
import type { AppendCommand, EndCommand, StartCommand } from "../../src/domain/commands.js";
import { FEED_START, type FeedPosition } from "../../src/domain/cursor.js";
import { DomainError } from "../../src/domain/errors.js";
import { verifyChains } from "../../src/service/audit.js";
import { createSessionService, type SessionService } from "../../src/service/session-service.js";
import { openTestDatabase, uniqueId } from "../support/app.js";
import { createIsolatedDatabase, type IsolatedDatabase } from "../support/isolated-database.js";
import { tableOrder } from "../feed/feed-helpers.js";
import { waitFor } from "../support/wait.js";

const log = pino({ level: "silent" });
const END: FeedPosition = { txId: (1n << 63n) - 1n, id: (1n << 63n) - 1n };

function serviceOn(sql: Sql, writeBatchMax = 100): SessionService {
  // One batch in flight: every call made in one turn joins it.
  return createSessionService({ sql, log, defaultIdleTimeoutMs: 1_800_000, writeBatchMax, writeBatchWaitUs: 0, writeBatchesInFlight: 1 });
}

function start(userId: string, fields: Partial<StartCommand> = {}): StartCommand {
  return {
    recordId: uniqueId("start"), userId, performerId: "", eventTime: null, idleTimeoutMs: null, maxDurationMs: null,
    metadata: {}, isTrainingData: false, conflictPolicy: "reject", ...fields,
  };
}

function append(sessionId: string, fields: Partial<AppendCommand> = {}): AppendCommand {
  return { recordId: uniqueId("evt"), sessionId, type: "care.note", eventTime: null, source: "group-commit-test", performerId: "", payload: {}, ...fields };
}

function end(sessionId: string, fields: Partial<EndCommand> = {}): EndCommand {
  return { recordId: uniqueId("end"), sessionId, performerId: "", eventTime: null, ...fields };
}

/** Settles calls made together; a failure is returned as its DomainError reason (anything else rethrows). */
async function together<T>(calls: Promise<T>[]): Promise<(T | string)[]> {
  const settled = await Promise.allSettled(calls);
  return settled.map((s) => {
    if (s.status === "fulfilled") return s.value;
    if (s.reason instanceof DomainError) return s.reason.reason;
    throw s.reason;
  });
}

function txIds(events: { position: FeedPosition }[]): Set<bigint> {
  return new Set(events.map((event) => event.position.txId));
}

/** Checks each session's events in feed order: seq 1, 2, 3, ... */
function expectDenseInFeedOrder(rows: { sessionId: string; seq: number }[]) {
  const seqs = new Map<string, number[]>();
  for (const row of rows) seqs.set(row.sessionId, [...(seqs.get(row.sessionId) ?? []), row.seq]);
  for (const [sessionId, list] of seqs) expect(list, sessionId).toEqual(list.map((_, i) => i + 1));
}

describe("group commit", () => {
  const sql = openTestDatabase(10);
  const service = serviceOn(sql);
  afterAll(() => sql.end());

  it("answers two calls with the same record_id in one batch as if sequential: one write, then its replay", async () => {
    const userId = uniqueId("gc-same-key");
    const { session } = await service.startSession(start(userId));
    const command = append(session.sessionId, { payload: { n: 1 } });
    const [first, second, reused] = await together([
      service.appendSessionEvent(command),
      service.appendSessionEvent({ ...command }),
      service.appendSessionEvent({ ...command, payload: { n: 2 } }),
    ]);
    expect(typeof first === "object" && first.replayed).toBe(false);
    expect(typeof second === "object" && second.replayed).toBe(true);
    expect(reused).toBe("RECORD_ID_REUSED");
    if (typeof first !== "object" || typeof second !== "object") throw new Error("unreachable");
    expect(second.event).toEqual(first.event);
    expect(first.event.seq).toBe(2);
    const rows = await sql`select seq from session_events where session_id = ${session.sessionId} and record_id = ${command.recordId}`;
    expect(rows.length).toBe(1);

    // StartSession too: the retry in the same batch returns the session it started.
    const startCommand = start(uniqueId("gc-same-start"));
    const [a, b] = await together([service.startSession(startCommand), service.startSession({ ...startCommand })]);
    if (typeof a !== "object" || typeof b !== "object") throw new Error(`expected two answers, got ${String(a)} and ${String(b)}`);
    expect([a.replayed, b.replayed]).toEqual([false, true]);
    expect(b.session).toEqual(a.session);
    expect(b.event).toEqual(a.event);
    expect(txIds([a.event, b.event]).size).toBe(1);
  });

  it("runs two StartSession calls for one user in one batch in order: the second gets ACTIVE_SESSION_EXISTS, or supersedes with SUPERSEDE", async () => {
    const userId = uniqueId("gc-two-starts");
    const [first, second] = await together([service.startSession(start(userId)), service.startSession(start(userId))]);
    if (typeof first !== "object") throw new Error(`first start failed: ${first}`);
    expect(second).toBe("ACTIVE_SESSION_EXISTS");

    const other = uniqueId("gc-supersede");
    const [a, b] = await together([service.startSession(start(other)), service.startSession(start(other, { conflictPolicy: "supersede" }))]);
    if (typeof a !== "object" || typeof b !== "object") throw new Error(`expected two sessions, got ${String(a)} and ${String(b)}`);
    expect(txIds([a.event, b.event]).size).toBe(1);
    expect(b.session.sessionIndex).toBe(a.session.sessionIndex + 1);
    expect(b.session.previousSessionId).toBe(a.session.sessionId);
    const order = await tableOrder(sql, { userId: other }, FEED_START, END);
    expect(order.map((row) => [row.sessionId, row.type])).toEqual([
      [a.session.sessionId, "session.started"],
      [a.session.sessionId, "session.ended"],
      [b.session.sessionId, "session.started"],
    ]);
    const states = await sql<{ session_id: string; state: string; end_reason: string | null }[]>`
      select session_id, state, end_reason from sessions where user_id = ${other} order by session_index
    `;
    expect(states.map((row) => [row.session_id, row.state, row.end_reason])).toEqual([
      [a.session.sessionId, "ended", "superseded"],
      [b.session.sessionId, "active", null],
    ]);
    expect((await verifyChains(sql, { userId: other, sessionId: null })).broken).toBeNull();
  });

  it("fails only the calls whose rules fail; the rest of the batch commits", async () => {
    const userId = uniqueId("gc-failures");
    const { session } = await service.startSession(start(userId));
    const { session: ended } = await service.startSession(start(uniqueId("gc-ended")));
    await service.endSession(end(ended.sessionId));
    const results = await together<unknown>([
      service.appendSessionEvent(append(session.sessionId)),
      service.appendSessionEvent(append("sess_00000000000000000000000000")),
      service.appendSessionEvent(append(ended.sessionId)),
      service.heartbeatSession(ended.sessionId),
      service.startSession(start(userId)),
      service.appendSessionEvent(append(session.sessionId)),
      service.heartbeatSession(session.sessionId),
    ]);
    expect(results.slice(1, 5)).toEqual(["SESSION_NOT_FOUND", "SESSION_ENDED", "SESSION_ENDED", "ACTIVE_SESSION_EXISTS"]);
    const [x, , , , , y] = results as { event: { seq: number; position: FeedPosition } }[];
    expect([x!.event.seq, y!.event.seq]).toEqual([2, 3]);
    expect(txIds([x!.event, y!.event]).size).toBe(1);
    const heartbeat = results[6] as { lastActivityTime: Date; lastSeq: number };
    expect(heartbeat.lastSeq).toBe(3);
    const [stored] = await sql<{ last_seq: string; last_activity_time: Date }[]>`
      select last_seq, last_activity_time from sessions where session_id = ${session.sessionId}
    `;
    expect(Number(stored!.last_seq)).toBe(3);
    expect(stored!.last_activity_time).toEqual(heartbeat.lastActivityTime);
    expect((await verifyChains(sql, { userId, sessionId: null })).broken).toBeNull();
  });

  it("keeps dense seq, hash chains, one open session per user and per-user feed order across a batch of many users", async () => {
    const users = Array.from({ length: 12 }, () => uniqueId("gc-many"));
    const started = await Promise.all(users.map((userId) => service.startSession(start(userId))));
    const sessions = started.map((s) => s.session.sessionId);
    // One batch: per user three appends, a heartbeat, an end, a new start and an append to the ended session.
    const calls: Promise<unknown>[] = [];
    users.forEach((userId, i) => {
      const sessionId = sessions[i]!;
      calls.push(service.appendSessionEvent(append(sessionId)));
      calls.push(service.appendSessionEvent(append(sessionId)));
      calls.push(service.heartbeatSession(sessionId));
      calls.push(service.appendSessionEvent(append(sessionId)));
      calls.push(service.endSession(end(sessionId)));
      calls.push(service.startSession(start(userId)));
      calls.push(service.appendSessionEvent(append(sessionId)));
    });
    const results = await together(calls);
    const failures = results.filter((r) => typeof r === "string");
    expect(failures).toEqual(users.map(() => "SESSION_ENDED"));
    const events = results.flatMap((r) => (typeof r === "object" && r !== null && "event" in r ? [(r as { event: { position: FeedPosition } }).event] : []));
    expect(events.length).toBe(users.length * 5);
    expect(txIds(events).size).toBe(1);

    for (const [i, userId] of users.entries()) {
      const order = await tableOrder(sql, { userId }, FEED_START, END);
      expect(order.map((row) => row.type)).toEqual([
        "session.started", "care.note", "care.note", "care.note", "session.ended", "session.started",
      ]);
      expect(order[4]!.sessionId).toBe(sessions[i]);
      expectDenseInFeedOrder(order);
      const open = await sql`select 1 from sessions where user_id = ${userId} and state <> 'ended'`;
      expect(open.length).toBe(1);
      expect((await verifyChains(sql, { userId, sessionId: null })).broken).toBeNull();
    }
  });
});

describe("group commit across replicas", () => {
  const sqlA = openTestDatabase(5);
  const sqlB = openTestDatabase(5);
  afterAll(async () => {
    await sqlA.end();
    await sqlB.end();
  });

  it("never deadlocks two replicas batching the same users in opposite orders (locks in user_id order)", async () => {
    // Each replica logs "write batch failed" when a batch's transaction fails (a deadlock does).
    const failures: string[] = [];
    const capture = pino({ level: "debug" }, { write: (line: string) => void (line.includes("write batch failed") && failures.push(line)) });
    const replica = (sql: Sql) =>
      createSessionService({ sql, log: capture, defaultIdleTimeoutMs: 1_800_000, writeBatchMax: 100, writeBatchWaitUs: 0, writeBatchesInFlight: 1 });
    const [a, b] = [replica(sqlA), replica(sqlB)];
    // user_ids that sort the same in every collation: one prefix, then one digit.
    const base = uniqueId("gc-replicas");
    const users = Array.from({ length: 8 }, (_, i) => `${base}-u${i + 1}`);
    const sessions = (await Promise.all(users.map((userId) => a.startSession(start(userId))))).map((s) => s.session.sessionId);
    // A third transaction holds the 4th user's lock, so both batches stop halfway: locking in
    // arrival order, replica A would hold users 1-3 and B users 8-5, and then deadlock on 4 and 5.
    const blocker = await sqlA.reserve();
    try {
      await blocker`begin`;
      await blocker`select pg_advisory_xact_lock(hashtextextended(${users[3]!}, 0))`;
      const forward = Promise.all(sessions.map((sessionId) => a.appendSessionEvent(append(sessionId))));
      const backward = Promise.all([...sessions].reverse().map((sessionId) => b.appendSessionEvent(append(sessionId))));
      await waitFor(async () => {
        const [{ n }] = await sqlA<[{ n: number }]>`select count(*)::int as n from pg_locks where locktype = 'advisory' and not granted`;
        return n >= 2;
      }, { message: "both batches waiting for locks" });
      await blocker`commit`;
      const done = [...(await forward), ...(await backward)];
      expect(txIds(done.map((d) => d.event)).size).toBe(2);
    } finally {
      blocker.release();
    }
    expect(failures).toEqual([]);
    for (const userId of users) {
      const order = await tableOrder(sqlA, { userId }, FEED_START, END);
      expect(order.map((row) => row.seq)).toEqual([1, 2, 3]);
    }
  });
});

describe("group commit when the transaction itself fails", () => {
  let db: IsolatedDatabase;
  beforeAll(async () => {
    db = await createIsolatedDatabase("sm_group_commit");
    // A real failure inside the batch's transaction: inserting an event whose
    // record_id starts with "explode-once" fails the first time (a sequence
    // counts outside transactions, so the rollback does not reset it) with a
    // serialization failure; "poison" fails every time.
    await db.sql.unsafe(`
      create sequence explosions;
      create function fail_marked_events() returns trigger language plpgsql as $$
      begin
        if new.record_id like 'poison%' then
          raise exception 'poisoned event' using errcode = 'P0001';
        end if;
        if new.record_id like 'explode-once%' then
          if nextval('explosions') = 1 then
            raise exception 'explosion' using errcode = '40001';
          end if;
        end if;
        return new;
      end;
      $$;
      create trigger fail_marked_events before insert on session_events for each row execute function fail_marked_events();
    `);
  });
  afterAll(() => db.drop());

  it("runs each call again alone, so one call's database failure fails no other and nothing is answered uncommitted", async () => {
    const service = serviceOn(db.sql);
    const users = Array.from({ length: 4 }, () => uniqueId("gc-fail"));
    const started = await Promise.all(users.map((userId) => service.startSession(start(userId))));
    const sessionIds = started.map((s) => s.session.sessionId);
    const results = await Promise.allSettled([
      service.appendSessionEvent(append(sessionIds[0]!)),
      service.appendSessionEvent(append(sessionIds[1]!, { recordId: uniqueId("explode-once") })),
      service.appendSessionEvent(append(sessionIds[2]!, { recordId: uniqueId("poison") })),
      service.endSession(end(sessionIds[3]!)),
    ]);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "fulfilled", "rejected", "fulfilled"]);
    expect(String((results[2] as PromiseRejectedResult).reason)).toContain("poisoned event");
    // The batch failed, so the others committed alone: three transactions, not one.
    const events = results.flatMap((r) => (r.status === "fulfilled" ? [(r.value as { event: { position: FeedPosition } }).event] : []));
    expect(txIds(events).size).toBe(3);
    const [{ n: explosions }] = await db.sql<[{ n: string }]>`select last_value::text as n from explosions`;
    expect(explosions).toBe("2");
    const counts = await db.sql<{ session_id: string; n: string }[]>`
      select session_id, count(*)::text as n from session_events where session_id = any(${sessionIds}::text[]) group by session_id
    `;
    expect(Object.fromEntries(counts.map((row) => [row.session_id, Number(row.n)]))).toEqual({
      [sessionIds[0]!]: 2,
      [sessionIds[1]!]: 2,
      [sessionIds[2]!]: 1,
      [sessionIds[3]!]: 2,
    });
    expect((await verifyChains(db.sql, { userId: null, sessionId: null })).broken).toBeNull();
  });

  it("with WRITE_BATCH_MAX=1 runs every call in its own transaction", async () => {
    const service = serviceOn(db.sql, 1);
    const { session } = await service.startSession(start(uniqueId("gc-alone")));
    const appended = await Promise.all([service.appendSessionEvent(append(session.sessionId)), service.appendSessionEvent(append(session.sessionId))]);
    expect(txIds(appended.map((a) => a.event)).size).toBe(2);
    expect(appended.map((a) => a.event.seq).sort()).toEqual([2, 3]);
  });
});

/**
 * The feed's ordering technique (WATCH.md): rows are read below the
 * transaction-visibility horizon in (tx_id, id) order. These tests hold
 * transactions open on dedicated connections to force late commits.
 */
import { afterAll, describe, expect, it } from "vitest";
import type { Sql } from "../../src/db/database.js";
import { readFeed, readFeedBounds, type FeedFilter } from "../../src/db/feed-repository.js";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { SessionManagerService } from "../../gen/sessionmanager/v1/session_manager_service_pb.js";
import { encodeCursor, positionBelowHorizon, type FeedPosition } from "../../src/domain/cursor.js";
import { openTestDatabase, startTestApp, uniqueId } from "../support/app.js";
import { createIsolatedDatabase } from "../support/isolated-database.js";
import { waitFor } from "../support/wait.js";

const sql = openTestDatabase(10);
afterAll(() => sql.end());

/** The largest id a cursor holds (int8), as positionBelowHorizon gives. */
const MAX_POSITION_ID = (1n << 63n) - 1n;
const everything: FeedFilter = { userId: null, sessionId: null, types: [], typePrefixes: [] };

async function headPosition(): Promise<FeedPosition> {
  const { horizon } = await readFeed(sql, { txId: 0n, id: 0n }, everything, 1);
  return positionBelowHorizon(horizon);
}

async function createSession(userId: string): Promise<string> {
  const sessionId = uniqueId("sess");
  await sql`
    insert into sessions (user_id, session_id, session_index, state, start_time, last_activity_time, idle_timeout_ms, last_seq, last_hash)
    values (${userId}, ${sessionId}, 1, 'active', now(), now(), 60000, 0, '')
  `;
  return sessionId;
}

/** Inserts one event on `ex` (a reserved connection inside BEGIN, or the pool); returns its event_id. */
async function insertEvent(ex: Sql, userId: string, sessionId: string, seq: number): Promise<string> {
  const eventId = uniqueId("evt");
  await ex`
    insert into session_events (user_id, session_id, seq, event_id, record_id, request_hash, type, event_time, receive_time, source, hash)
    values (${userId}, ${sessionId}, ${seq}, ${eventId}, ${uniqueId("rec")}, 'h', 'test.event', now(), now(), 'test', '')
  `;
  return eventId;
}

/** Reads the feed like a subscriber, from `position` until nothing new is below the horizon; keeps only `mine`. */
async function drain(state: { position: FeedPosition }, mine: Set<string>): Promise<string[]> {
  const seen: string[] = [];
  for (;;) {
    const page = await readFeed(sql, state.position, everything, 100);
    for (const event of page.events) {
      state.position = event.position;
      if (mine.has(event.userId)) seen.push(event.eventId);
    }
    if (page.events.length < 100) {
      const below = positionBelowHorizon(page.horizon);
      if (below.txId > state.position.txId) state.position = below;
      return seen;
    }
  }
}

/** The broken technique WATCH.md warns about: horizon filter but id order and an id cursor. */
async function drainByIdOrder(state: { lastId: bigint }, mine: Set<string>): Promise<string[]> {
  const rows = await sql<{ id: string; event_id: string; user_id: string }[]>`
    select id, event_id, user_id
    from session_events
    where id > ${state.lastId.toString()}::bigint
      and tx_id < pg_snapshot_xmin(pg_current_snapshot())
    order by id
  `;
  for (const row of rows) state.lastId = BigInt(row.id);
  return rows.filter((row) => mine.has(row.user_id)).map((row) => row.event_id);
}

/**
 * Reads repeatedly until `count` events of ours arrived (other test files'
 * open transactions may hold the horizon back for a moment), then once more
 * to catch extras.
 */
async function collect(read: () => Promise<string[]>, count: number): Promise<string[]> {
  const seen: string[] = [];
  await waitFor(
    async () => {
      seen.push(...(await read()));
      return seen.length >= count;
    },
    { timeoutMs: 10_000, message: () => `${count} events of ours (got ${JSON.stringify(seen)})` },
  );
  seen.push(...(await read()));
  return seen;
}

async function openTransaction() {
  const conn = await sql.reserve();
  await conn`begin`;
  return conn;
}

describe("feed horizon", () => {
  it("delivers nothing past an open transaction, then both events exactly once after it commits", async () => {
    const [userA, userB] = [uniqueId("user"), uniqueId("user")];
    const [sessionA, sessionB] = [await createSession(userA), await createSession(userB)];
    const mine = new Set([userA, userB]);
    const reader = { position: await headPosition() };

    const a = await openTransaction();
    const eventA = await insertEvent(a as unknown as Sql, userA, sessionA, 1);
    const eventB = await insertEvent(sql, userB, sessionB, 1);

    expect(await drain(reader, mine)).toEqual([]);
    await a`commit`;
    a.release();
    expect(await collect(() => drain(reader, mine), 2)).toEqual([eventA, eventB]);
  });

  it("delivers a later transaction's event without a stall when an earlier one rolls back", async () => {
    const [userA, userB] = [uniqueId("user"), uniqueId("user")];
    const [sessionA, sessionB] = [await createSession(userA), await createSession(userB)];
    const mine = new Set([userA, userB]);
    const reader = { position: await headPosition() };

    const a = await openTransaction();
    await insertEvent(a as unknown as Sql, userA, sessionA, 1);
    const eventB = await insertEvent(sql, userB, sessionB, 1);
    expect(await drain(reader, mine)).toEqual([]);
    await a`rollback`;
    a.release();
    expect(await collect(() => drain(reader, mine), 1)).toEqual([eventB]);
  });

  it("keeps the event that the id-ordered reader loses (T1 takes its xid first, T2 inserts first)", async () => {
    const [user1, user2] = [uniqueId("user"), uniqueId("user")];
    const [session1, session2] = [await createSession(user1), await createSession(user2)];
    const mine = new Set([user1, user2]);
    const good = { position: await headPosition() };
    const [{ max }] = await sql<[{ max: string }]>`select coalesce(max(id), 0)::text as max from session_events`;
    const broken = { lastId: BigInt(max) };

    const t1 = await openTransaction();
    const t2 = await openTransaction();
    await t1`select pg_current_xact_id()`; // T1 takes the lower xid (its session write, in the service)
    await t2`select pg_current_xact_id()`;
    const event2 = await insertEvent(t2 as unknown as Sql, user2, session2, 1); // lower id
    const event1 = await insertEvent(t1 as unknown as Sql, user1, session1, 1); // higher id
    await t1`commit`;

    const goodFirst = await collect(() => drain(good, mine), 1);
    const brokenFirst = await collect(() => drainByIdOrder(broken, mine), 1);
    await t2`commit`;
    t1.release();
    t2.release();
    const goodSecond = await collect(() => drain(good, mine), 1);
    const brokenSecond = await drainByIdOrder(broken, mine);

    expect([...goodFirst, ...goodSecond]).toEqual([event1, event2]);
    // The broken reader moved its cursor past T2's lower id: T2's event is lost.
    expect([...brokenFirst, ...brokenSecond]).toEqual([event1]);
  });
});

describe("feed horizon after a crash", () => {
  it("never passes the newest event, so an id that only an unfinished or rolled-back transaction held may be reused", async () => {
    // Its own database: "the newest event" must be this test's, not another file's.
    const db = await createIsolatedDatabase("feed_durable", 3);
    try {
      const userId = uniqueId("durable");
      const sessionId = uniqueId("sess");
      await db.sql`
        insert into sessions (user_id, session_id, session_index, state, start_time, last_activity_time, idle_timeout_ms, last_seq, last_hash)
        values (${userId}, ${sessionId}, 1, 'active', now(), now(), 60000, 0, '')
      `;
      await insertEvent(db.sql, userId, sessionId, 1);
      const [{ newest }] = await db.sql<[{ newest: string }]>`select max(tx_id::text::numeric)::text as newest from session_events`;
      // A transaction takes an id, writes an event and rolls back: its abort record need not reach
      // the WAL before a crash, and PostgreSQL may then hand its id out again
      // (chaos/repro/xid-reuse-after-crash.ts shows it with pg_ctl stop -m immediate).
      const rolledBack = await db.sql
        .begin(async (tx) => {
          const [{ xid }] = await tx<[{ xid: string }]>`select pg_current_xact_id()::text as xid`;
          await insertEvent(tx as unknown as Sql, userId, sessionId, 2);
          throw Object.assign(new Error("roll back"), { xid });
        })
        .catch((error: { xid: string }) => BigInt(error.xid));
      // Wait until every transaction up to it has finished cluster-wide (other test files share the server).
      await waitFor(async () => {
        const [{ xmin }] = await db.sql<[{ xmin: string }]>`select pg_snapshot_xmin(pg_current_snapshot())::text as xmin`;
        return BigInt(xmin) > rolledBack;
      }, { message: "the snapshot's xmin to pass the rolled-back transaction" });

      const bounds = await readFeedBounds(db.sql);
      const page = await readFeed(db.sql, { txId: 0n, id: 0n }, everything, 10);
      expect(bounds.xmin).toBeGreaterThan(rolledBack);
      for (const horizon of [bounds.horizon, page.horizon]) {
        expect(horizon).toBe(BigInt(newest) + 1n);
        // A position the feed hands out (a heartbeat's, the tail's) stays below the reusable id.
        expect(positionBelowHorizon(horizon).txId).toBeLessThan(rolledBack);
      }

      // A heartbeat cursor of the earlier rule (just below xmin, past the newest event) still
      // resumes, at once, from the same place: no event lies between it and the horizon.
      const app = await startTestApp({ databaseUrl: db.url, readReplayWaitMs: 200 });
      try {
        const client = createClient(SessionManagerService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${app.port}` }));
        const controller = new AbortController();
        const frames = client.watchSessionEvents({ afterCursor: encodeCursor({ txId: bounds.xmin - 1n, id: MAX_POSITION_ID }) }, { signal: controller.signal })[Symbol.asyncIterator]();
        expect((await frames.next()).value?.frame.case).toBe("caughtUp");
        const eventId = await insertEvent(db.sql, userId, sessionId, 2);
        let delivered: string | undefined;
        while (delivered === undefined) {
          const { value } = await frames.next();
          if (value?.frame.case === "event") delivered = value.frame.value.eventId;
        }
        expect(delivered).toBe(eventId);
        controller.abort();
      } finally {
        await app.stop();
      }
    } finally {
      await db.drop();
    }
  });
});

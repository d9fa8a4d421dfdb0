/**
 * Randomized interleavings (fast-check): writers on reserved connections
 * begin, take their transaction id, insert, commit or roll back in random
 * orders while readers poll: `readFeed` directly (small pages) and the real
 * `feed.watch` (fan-out, unfiltered and filtered). Every reader must deliver
 * exactly the committed events, in table order, with increasing cursors.
 * Runs with NOTIFY on (LISTEN wake-ups) and off (polling only).
 */
import fc from "fast-check";
import pino from "pino";
import type postgres from "postgres";
import { afterAll, describe, expect, it } from "vitest";
import { readFeed } from "../../src/db/feed-repository.js";
import { comparePositions, decodeCursor, positionBelowHorizon, type FeedPosition } from "../../src/domain/cursor.js";
import { EVERYTHING } from "../../src/feed/filter.js";
import { createCommitNotifier } from "../../src/feed/notifier.js";
import { openTestDatabase, uniqueId } from "../support/app.js";
import { sleep, waitFor } from "../support/wait.js";
import {
  cursorsIncrease,
  headCursor,
  insertEvent as insertEventRow,
  insertSession,
  query,
  startFeed,
  tableOrder,
  watchInBackground,
} from "./feed-helpers.js";

const sql = openTestDatabase(20);
afterAll(() => sql.end());

const WRITERS = 3;
const END: FeedPosition = { txId: (1n << 63n) - 1n, id: (1n << 63n) - 1n };
const step = fc.record({
  writer: fc.nat({ max: WRITERS - 1 }),
  op: fc.constantFrom("xid", "insert", "insert", "commit", "rollback", "poll"),
});
const scenario = fc.record({
  steps: fc.array(step, { minLength: 4, maxLength: 24 }),
  finish: fc.array(fc.boolean(), { minLength: WRITERS, maxLength: WRITERS }),
});

interface Writer {
  userId: string;
  sessionId: string;
  conn: postgres.ReservedSql;
  open: boolean;
  pending: string[];
}

let seq = 0;

async function createWriter(): Promise<Writer> {
  const userId = uniqueId("fc-user");
  const sessionId = uniqueId("sess");
  await insertSession(sql, userId, sessionId);
  return { userId, sessionId, conn: await sql.reserve(), open: false, pending: [] };
}

/** Reads like a subscriber: pages of 3 from `state.position` until nothing new is below the horizon. */
async function drain(state: { position: FeedPosition; seen: string[] }): Promise<void> {
  for (;;) {
    const page = await readFeed(sql, state.position, EVERYTHING, 3);
    for (const event of page.events) {
      state.position = event.position;
      state.seen.push(event.eventId);
    }
    if (page.events.length < 3) {
      const below = positionBelowHorizon(page.horizon);
      if (comparePositions(below, state.position) > 0) state.position = below;
      return;
    }
  }
}

describe.each([
  ["NOTIFY on", true],
  ["NOTIFY off", false],
])("randomized interleavings, %s", (_name, notify) => {
  const { feed, close } = startFeed(sql, { notify, pollMs: notify ? 200 : 20, heartbeatMs: 100, batchSize: 3 });
  // Announces commits to other replicas only, so with NOTIFY on the wake-up must come through LISTEN.
  const remote = createCommitNotifier({ sql, wakeLocal: () => {}, broadcast: notify, log: pino({ level: "silent" }) });
  afterAll(async () => {
    await remote.close();
    await close();
  });

  it("delivers exactly the committed events, in order, to polling readers and watchers", async () => {
    await fc.assert(
      fc.asyncProperty(scenario, async ({ steps, finish }) => {
        const writers = await Promise.all(Array.from({ length: WRITERS }, createWriter));
        const mine = new Set(writers.map((w) => w.userId));
        const start = await headCursor(sql);
        const poller = { position: decodeCursor(start), seen: [] as string[] };
        const all = watchInBackground(feed, query({ afterCursor: start }));
        const one = watchInBackground(feed, query({ afterCursor: start, userId: writers[0]!.userId }));
        const committed: string[] = [];
        const rolledBack: string[] = [];
        const end = async (w: Writer, commit: boolean) => {
          await w.conn.unsafe(commit ? "commit" : "rollback");
          (commit ? committed : rolledBack).push(...w.pending);
          [w.open, w.pending] = [false, []];
          if (commit) remote.notify();
        };
        try {
          for (const { writer, op } of steps) {
            const w = writers[writer]!;
            if (op === "poll") await drain(poller);
            else if (op === "commit" || op === "rollback") {
              if (w.open) await end(w, op === "commit");
            } else {
              if (!w.open) {
                await w.conn`begin`;
                w.open = true;
              }
              if (op === "xid") await w.conn`select pg_current_xact_id()`;
              else w.pending.push(await insertEvent(w));
            }
          }
          for (const [i, w] of writers.entries()) if (w.open) await end(w, finish[i]!);

          const ours = (ids: string[]) => ids.filter((id) => committed.includes(id));
          await waitFor(async () => {
            await drain(poller);
            return ours(poller.seen).length >= committed.length;
          }, { message: "poller got every committed event" });
          const table = (await tableOrder(sql, {}, decodeCursor(start), END)).filter((row) => mine.has(row.userId));
          const onlyFirst = table.filter((row) => row.userId === writers[0]!.userId).map((row) => row.eventId);
          await waitFor(() => all.events().filter((f) => mine.has(f.event.userId)).length >= table.length, { message: "watcher got every event" });
          await waitFor(() => one.events().length >= onlyFirst.length, { message: "filtered watcher got every event" });
          await sleep(30); // proves a negative: no stray duplicate shows up meanwhile

          expect(new Set(table.map((row) => row.eventId))).toEqual(new Set(committed));
          expect(poller.seen.filter((id) => committed.includes(id))).toEqual(table.map((row) => row.eventId));
          expect(poller.seen.filter((id) => rolledBack.includes(id))).toEqual([]);
          expect(all.events().filter((f) => mine.has(f.event.userId)).map((f) => f.event.eventId)).toEqual(table.map((row) => row.eventId));
          expect(one.events().map((f) => f.event.eventId)).toEqual(onlyFirst);
          expect(cursorsIncrease(all.frames) && cursorsIncrease(one.frames)).toBe(true);
        } finally {
          await Promise.all([all.stop(), one.stop()]);
          for (const w of writers) {
            if (w.open) await w.conn.unsafe("rollback");
            w.conn.release();
          }
        }
      }),
      { numRuns: 12 },
    );
  });
});

async function insertEvent(w: Writer): Promise<string> {
  const eventId = uniqueId("fc-evt");
  seq += 1;
  await insertEventRow(w.conn, { userId: w.userId, sessionId: w.sessionId, seq, eventId });
  return eventId;
}

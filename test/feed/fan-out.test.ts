/**
 * Fan-out correctness: many streams with different filters and start
 * positions (live, an old cursor, a cursor in the middle of the writes,
 * from_beginning) on ONE feed. Each receives exactly the table's order for
 * its filter from its start, whether it was served by catch-up reads, by the
 * tail reader's fan-out, or both; the fan-out hands the same event objects
 * (and so the same memoized protobuf messages) to every stream.
 */
import { afterAll, describe, expect, it } from "vitest";
import { comparePositions, decodeCursor, FEED_START, type FeedPosition } from "../../src/domain/cursor.js";
import type { WatchQuery } from "../../src/feed/watch.js";
import { toEventMessage } from "../../src/transport/convert.js";
import { openTestDatabase, uniqueId } from "../support/app.js";
import { createInMemoryClient } from "../support/rpc.js";
import { waitFor } from "../support/wait.js";
import { cursorsIncrease, headCursor, query, tableOrder, watchInBackground, type Watcher } from "./feed-helpers.js";

const sql = openTestDatabase(10);
// Pages of 4 rows: catch-up and tail reads both cross page boundaries.
const app = createInMemoryClient(sql, { heartbeatMs: 100, batchSize: 4 });
afterAll(async () => {
  await app.close();
  await sql.end();
});

interface Subscription {
  name: string;
  q: WatchQuery;
  watcher: Watcher;
}

describe("fan-out", () => {
  it("gives every stream exactly the table's order for its filter from its start", async () => {
    const tag = uniqueId("fan").replace(/-/g, "");
    const types = [`care.${tag}.a`, `care.${tag}.b`, `ops.${tag}.x`];
    const users = [uniqueId("fan-user"), uniqueId("fan-user"), uniqueId("fan-user")];
    const sessions: string[] = [];
    const cursors: string[] = [];
    let n = 0;
    const write = async (count: number) => {
      for (let i = 0; i < count; i++, n++) {
        const event = await app.client.appendSessionEvent({ recordId: uniqueId("rec"), sessionId: sessions[n % 3]!, type: types[Math.floor(n / 3) % 3]!, source: "fan-out" });
        cursors.push(event.event!.cursor);
      }
    };
    const subs: Subscription[] = [];
    const subscribe = (name: string, fields: Partial<WatchQuery>) => {
      const q = query(fields);
      subs.push({ name, q, watcher: watchInBackground(app.feed, q) });
    };

    const head0 = await headCursor(sql);
    subscribe("user 0, live", { userId: users[0] });
    subscribe("care prefix, live", { types: [`care.${tag}.*`] });
    subscribe("everything, live", {});
    subscribe("user 1 ops, old cursor", { userId: users[1], types: [types[2]!], afterCursor: head0 });
    subscribe("user 2, from beginning", { userId: users[2], fromBeginning: true });
    await waitFor(() => subs.every((s) => s.watcher.frames.length > 0), { message: "first streams started" });
    for (const userId of users) sessions.push((await app.client.startSession({ recordId: uniqueId("rec"), userId })).session!.sessionId);
    await write(20);

    subscribe("user 0, old cursor", { userId: users[0], afterCursor: head0 });
    subscribe("two types, mid cursor", { types: [types[0]!, types[2]!], afterCursor: cursors[4] });
    subscribe("session 1, live", { sessionId: sessions[1] });
    subscribe("user 0 again, old cursor", { userId: users[0], afterCursor: head0 });
    await write(20);
    subscribe("user 1, old cursor", { userId: users[1], afterCursor: head0 });
    subscribe("user 2 care, from beginning", { userId: users[2], types: [`care.${tag}.*`], fromBeginning: true });
    for (let i = 0; i < 12; i++) subscribe(`session ${i % 3}, mid cursor ${i}`, { sessionId: sessions[i % 3], afterCursor: cursors[i * 3] });

    // Everyone reaches the tail: from now on rows arrive through the fan-out only.
    await waitFor(() => app.feed.stats().attached === subs.length, { message: "every stream attached to the tail reader" });
    const beforeLast = cursors.length;
    await write(30);
    const end = decodeCursor(cursors.at(-1)!);
    await waitFor(() => subs.every((s) => s.watcher.lastCursor() !== "" && comparePositions(decodeCursor(s.watcher.lastCursor()), end) >= 0), { message: "every stream past the last write" });

    for (const { name, q, watcher } of subs) {
      expect(watcher.failure(), name).toBeNull();
      expect(cursorsIncrease(watcher.frames), name).toBe(true);
      const start = startOf(q, watcher);
      const delivered = watcher.events().filter((frame) => comparePositions(frame.event.position, end) <= 0);
      const expected = await tableOrder(sql, q, start, end);
      expect(delivered.map((frame) => frame.event.eventId), name).toEqual(expected.map((row) => row.eventId));
    }
    expect(subs.find((s) => s.name === "session 1, live")!.watcher.events().length).toBeGreaterThan(10);

    // One object per row per replica: the same event (and message) reached every user-0 stream.
    const lastCursors = new Set(cursors.slice(beforeLast));
    const [a, b, c] = subs.filter((s) => s.q.userId === users[0]).map((s) => s.watcher.events().filter((frame) => lastCursors.has(frame.cursor)));
    expect(a!.length).toBeGreaterThan(5);
    a!.forEach((frame, i) => {
      expect(b![i]!.event).toBe(frame.event);
      expect(c![i]!.event).toBe(frame.event);
      expect(toEventMessage(b![i]!.event)).toBe(toEventMessage(frame.event));
    });
    await Promise.all(subs.map((s) => s.watcher.stop()));
  });
});

/** Returns where a stream started: its cursor, the watermark (from_beginning), or its first caught_up (live). */
function startOf(q: WatchQuery, watcher: Watcher): FeedPosition {
  if (q.afterCursor !== "") return decodeCursor(q.afterCursor);
  if (q.fromBeginning) return FEED_START;
  const first = watcher.frames[0]!;
  expect(first.kind).toBe("caught_up");
  return decodeCursor(first.cursor);
}

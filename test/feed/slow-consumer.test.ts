/**
 * Slow consumer (WATCH.md): one stream stops reading while others continue
 * and many events are written. Its queue never exceeds WATCH_QUEUE_FRAMES
 * (it is detached and falls back to table reads), the others are not held
 * back, and when it reads again it gets everything, in order, once.
 */
import { afterAll, describe, expect, it } from "vitest";
import { FEED_START, type FeedPosition } from "../../src/domain/cursor.js";
import type { WatchFrame } from "../../src/feed/watch.js";
import type { TailStats } from "../../src/feed/tail-reader.js";
import { openTestDatabase, uniqueId } from "../support/app.js";
import { createInMemoryClient } from "../support/rpc.js";
import { waitFor } from "../support/wait.js";
import { cursorsIncrease, query, tableOrder, watchInBackground } from "./feed-helpers.js";

const QUEUE_FRAMES = 20;
const APPENDS = 150;
const END: FeedPosition = { txId: (1n << 63n) - 1n, id: (1n << 63n) - 1n };

const sql = openTestDatabase(10);
const app = createInMemoryClient(sql, { queueFrames: QUEUE_FRAMES, heartbeatMs: 60_000 });
afterAll(async () => {
  await app.close();
  await sql.end();
});

describe("slow consumer", () => {
  it("keeps the slow stream's queue bounded, does not hold others back, and delivers everything when it reads again", async () => {
    const userId = uniqueId("slow");
    const stop = new AbortController();
    const slow = app.feed.watch(query({ userId }), stop.signal)[Symbol.asyncIterator]();
    const slowFrames: WatchFrame[] = [(await slow.next()).value as WatchFrame];
    expect(slowFrames[0]!.kind).toBe("caught_up");
    const fast = [watchInBackground(app.feed, query({ userId })), watchInBackground(app.feed, query({ userId }))];
    await waitFor(() => fast.every((w) => w.frames.length > 0), { message: "fast streams caught up" });

    // The slow stream takes one live event through the fan-out, then stops reading (suspended, attached).
    const pending = slow.next();
    const started = await app.client.startSession({ recordId: uniqueId("rec"), userId });
    const sessionId = started.session!.sessionId;
    slowFrames.push((await pending).value as WatchFrame);
    expect(slowFrames[1]!.kind).toBe("event");
    await waitFor(() => app.feed.stats().attached === 3, { message: "all three streams at the tail" });
    const samples: TailStats[] = [];
    for (let i = 0; i < APPENDS; i++) {
      await app.client.appendSessionEvent({ recordId: uniqueId("rec"), sessionId, type: "care.tick", source: "slow-test", payload: { i } });
      samples.push(app.feed.stats());
    }
    const table = await tableOrder(sql, { userId }, FEED_START, END);
    expect(table.length).toBe(APPENDS + 1);
    await waitFor(() => fast.every((w) => w.events().length >= table.length), { message: "fast streams got every event while the slow one stalled" });
    samples.push(app.feed.stats());

    expect(Math.max(...samples.map((s) => s.maxQueuedFrames))).toBeLessThanOrEqual(QUEUE_FRAMES);
    expect(samples.at(-1)!.overflows).toBeGreaterThan(0);
    expect(samples.at(-1)!.subscribers).toBeGreaterThanOrEqual(3);

    // Reads again: everything arrives, in table order, exactly once.
    while (slowFrames.filter((frame) => frame.kind === "event").length < table.length) {
      const next = await slow.next();
      if (next.done) break;
      slowFrames.push(next.value);
    }
    const slowEvents = slowFrames.flatMap((frame) => (frame.kind === "event" ? [frame.event.eventId] : []));
    expect(slowEvents).toEqual(table.map((row) => row.eventId));
    expect(cursorsIncrease(slowFrames)).toBe(true);
    for (const w of fast) {
      expect(w.events().map((frame) => frame.event.eventId)).toEqual(table.map((row) => row.eventId));
      expect(cursorsIncrease(w.frames)).toBe(true);
    }
    stop.abort();
    await slow.return(undefined);
    await Promise.all(fast.map((w) => w.stop()));
    expect(app.feed.stats().subscribers).toBe(0);
  });
});

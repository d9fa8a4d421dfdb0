/**
 * Resume (WATCH.md): subscribers cancel at random points, and resume with the
 * last cursor they saw (from an event, caught_up or heartbeat frame) on a
 * random one of two replicas (two feeds; writes wake them through NOTIFY).
 * The concatenated segments equal the table's order for the filter.
 */
import { afterAll, describe, expect, it } from "vitest";
import { comparePositions, decodeCursor, type FeedPosition } from "../../src/domain/cursor.js";
import type { Feed, WatchFrame, WatchQuery } from "../../src/feed/watch.js";
import { openTestDatabase, uniqueId } from "../support/app.js";
import { createInMemoryClient } from "../support/rpc.js";
import { sleep, waitFor } from "../support/wait.js";
import { cursorsIncrease, headCursor, query, seededRandom, startFeed, tableOrder } from "./feed-helpers.js";

const sql = openTestDatabase(12);
const writer = createInMemoryClient(sql);
const replicas = [startFeed(sql, { heartbeatMs: 40 }), startFeed(sql, { heartbeatMs: 40, queueFrames: 5 })];
afterAll(async () => {
  await Promise.all([writer.close(), ...replicas.map((replica) => replica.close())]);
  await sql.end();
});

/** Reads one segment: up to `maxFrames` frames or `maxMs`, whichever ends first. */
async function segment(feed: Feed, q: WatchQuery, maxFrames: number, maxMs: number): Promise<WatchFrame[]> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), maxMs);
  const frames: WatchFrame[] = [];
  try {
    for await (const frame of feed.watch(q, controller.signal)) {
      frames.push(frame);
      if (frames.length >= maxFrames) break;
    }
  } finally {
    clearTimeout(timer);
  }
  return frames;
}

describe("resume", () => {
  it("gives the table's order when segments are cut at random points and resumed on either replica", async () => {
    const seed = Date.now() % 100_000;
    const random = seededRandom(seed);
    const tag = uniqueId("res").replace(/-/g, "");
    const types = [`care.${tag}.a`, `care.${tag}.b`, `ops.${tag}.x`];
    const users = [uniqueId("res-user"), uniqueId("res-user"), uniqueId("res-user")];
    const filters: Partial<WatchQuery>[] = [
      { userId: users[0] },
      { userId: users[1], types: [`care.${tag}.*`] },
      { types: [types[1]!] },
      { userId: users[0], types: [types[2]!, "session.started"] },
      { userId: users[2], types: ["never.*"] }, // only caught_up and heartbeat frames move its cursor
      {},
    ];
    const start = await headCursor(sql);
    let end: FeedPosition | null = null;

    const writing = (async () => {
      let last = "";
      for (const userId of users) {
        const { session } = await writer.client.startSession({ recordId: uniqueId("rec"), userId });
        for (let i = 0; i < 15; i++) {
          const { event } = await writer.client.appendSessionEvent({ recordId: uniqueId("rec"), sessionId: session!.sessionId, type: types[i % 3]!, source: "resume" });
          if (random() < 0.3) await sleep(5); // spreads the writes, so cuts land between them: no cut may skip or repeat one
          last = event!.cursor;
        }
        last = (await writer.client.endSession({ recordId: uniqueId("rec"), sessionId: session!.sessionId })).event!.cursor;
      }
      end = decodeCursor(last);
    })();

    const results = await Promise.all(
      filters.map(async (fields) => {
        let cursor = start;
        const frames: WatchFrame[] = [];
        let segments = 0;
        while (end === null || comparePositions(decodeCursor(cursor), end) < 0) {
          const replica = replicas[Math.floor(random() * 2)]!;
          const got = await segment(replica.feed, query({ ...fields, afterCursor: cursor }), 1 + Math.floor(random() * 6), 20 + random() * 80);
          frames.push(...got);
          cursor = got.at(-1)?.cursor ?? cursor;
          segments++;
        }
        return { fields, frames, segments, final: decodeCursor(cursor) };
      }),
    );
    await writing;

    for (const { fields, frames, segments, final } of results) {
      const name = `${JSON.stringify(fields)} (seed ${seed})`;
      expect(segments, name).toBeGreaterThan(2);
      expect(cursorsIncrease(frames), name).toBe(true);
      const expected = await tableOrder(sql, fields, decodeCursor(start), final);
      const delivered = frames.flatMap((frame) => (frame.kind === "event" ? [frame.event.eventId] : []));
      expect(delivered, name).toEqual(expected.map((row) => row.eventId));
    }
    const narrow = results[4]!;
    expect(narrow.frames.every((frame) => frame.kind !== "event")).toBe(true);
    expect(comparePositions(narrow.final, end!)).toBeGreaterThanOrEqual(0);
    await waitFor(() => replicas.every((replica) => replica.feed.stats().subscribers === 0), { message: "streams ended" });
  });
});

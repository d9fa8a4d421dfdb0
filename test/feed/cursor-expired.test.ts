/**
 * Retention: events at or before feed_watermark may have been pruned. A
 * cursor strictly before it is OUT_OF_RANGE / CURSOR_EXPIRED with
 * earliest_cursor; from_beginning still delivers every retained row; a
 * stream overtaken by a newer watermark while reading fails the same way
 * instead of skipping rows; a cursor ahead of the database is INVALID_CURSOR. Runs on a
 * database of its own: moving the watermark of the shared test database
 * would expire other test files' streams.
 */
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeCursor, encodeCursor } from "../../src/domain/cursor.js";
import { DomainError } from "../../src/domain/errors.js";
import type { WatchFrame } from "../../src/feed/watch.js";
import { uniqueId } from "../support/app.js";
import { createIsolatedDatabase, type IsolatedDatabase } from "../support/isolated-database.js";
import { createInMemoryClient, errorMetadata, expectError, type InMemoryClient } from "../support/rpc.js";
import { query, startFeed } from "./feed-helpers.js";

let db: IsolatedDatabase;
let app: InMemoryClient;
const userId = uniqueId("expiry");
const cursors: string[] = [];
const eventIds: string[] = [];

beforeAll(async () => {
  db = await createIsolatedDatabase("sm_feed_expiry");
  app = createInMemoryClient(db.sql);
  const started = await app.client.startSession({ recordId: uniqueId("rec"), userId });
  const record = (event: { cursor: string; eventId: string }) => void (cursors.push(event.cursor), eventIds.push(event.eventId));
  record(started.event!);
  for (let i = 0; i < 6; i++) {
    record((await app.client.appendSessionEvent({ recordId: uniqueId("rec"), sessionId: started.session!.sessionId, type: "care.x", source: "expiry" })).event!);
  }
});

afterAll(async () => {
  await app?.close();
  await db?.drop();
});

async function setWatermark(cursor: string | null): Promise<void> {
  const { txId, id } = cursor === null ? { txId: 0n, id: 0n } : decodeCursor(cursor);
  await db.sql`update feed_watermark set tx_id = ${txId.toString()}::xid8, id = ${id.toString()}::bigint`;
}

/** Reads a stream until `count` events arrived, then cancels it; returns the event ids. */
async function firstEvents(fields: { afterCursor?: string; fromBeginning?: boolean }, count: number): Promise<string[]> {
  const controller = new AbortController();
  const ids: string[] = [];
  for await (const res of app.client.watchSessionEvents({ userId, ...fields }, { signal: controller.signal })) {
    if (res.frame.case === "event") ids.push(res.frame.value.eventId);
    if (ids.length === count) break;
  }
  return ids;
}

describe("INVALID_CURSOR", () => {
  it("rejects a well-formed cursor that lies ahead of this database's feed", async () => {
    const { txId } = decodeCursor(cursors.at(-1)!);
    const future = encodeCursor({ txId: txId + 1_000_000n, id: 1n });
    await expectError(firstEvents({ afterCursor: future }, 1), Code.InvalidArgument, "INVALID_CURSOR");
  });
});

describe("CURSOR_EXPIRED", () => {
  it("rejects a cursor before the watermark with earliest_cursor, accepts one at it; from_beginning keeps every retained row", async () => {
    try {
      await setWatermark(cursors[2]!);
      const expired = await expectError(firstEvents({ afterCursor: cursors[1]! }, 1), Code.OutOfRange, "CURSOR_EXPIRED");
      expect(errorMetadata(expired)).toEqual({ earliest_cursor: cursors[2] });
      expect(await firstEvents({ afterCursor: cursors[2]! }, 4)).toEqual(eventIds.slice(3));
      expect(await firstEvents({ fromBeginning: true }, 7)).toEqual(eventIds);
      await setWatermark(null);
      expect(await firstEvents({ fromBeginning: true }, 7)).toEqual(eventIds);
    } finally {
      await setWatermark(null);
    }
  });

  it("fails a stream that the watermark overtakes while it reads, instead of skipping rows", async () => {
    const replica = startFeed(db.sql, { batchSize: 2 });
    const frames = replica.feed.watch(query({ userId, afterCursor: cursors[0]! }), new AbortController().signal)[Symbol.asyncIterator]();
    try {
      const first = (await frames.next()).value as WatchFrame;
      expect(first.kind === "event" && first.event.eventId).toBe(eventIds[1]);
      await setWatermark(cursors[4]!);
      expect(((await frames.next()).value as WatchFrame).cursor).toBe(cursors[2]); // the rest of the page already read
      const error = await frames.next().then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(DomainError);
      expect((error as DomainError).reason).toBe("CURSOR_EXPIRED");
      expect((error as DomainError).metadata).toEqual({ earliest_cursor: cursors[4] });
    } finally {
      await setWatermark(null);
      await frames.return(undefined);
      await replica.close();
    }
  });
});

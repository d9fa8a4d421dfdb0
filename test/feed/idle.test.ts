/**
 * A replica's feed makes no queries while nobody subscribes: the tail reader
 * stops polling when its last stream ends and starts again with the next.
 * Counts every statement the feed's own pool sends (postgres.js `debug`).
 */
import postgres from "postgres";
import { afterAll, describe, expect, it } from "vitest";
import { databaseUrl, uniqueId } from "../support/app.js";
import { query, startFeed, waitFor, watchInBackground } from "./feed-helpers.js";

let statements = 0;
const sql = postgres(databaseUrl(), { max: 4, onnotice: () => {}, debug: () => void statements++ });
const replica = startFeed(sql, { pollMs: 10, notify: false });
afterAll(async () => {
  await replica.close();
  await sql.end();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("idle feed", () => {
  it("stops querying when the last stream ends, and resumes with the next one", async () => {
    const first = watchInBackground(replica.feed, query({ userId: uniqueId("idle") }));
    await waitFor(() => replica.feed.stats().attached === 1, "stream at the tail");
    const before = statements;
    await sleep(100);
    expect(statements - before).toBeGreaterThan(3); // polling every 10 ms
    await first.stop();
    expect(replica.feed.stats().subscribers).toBe(0);

    await sleep(30); // a read in flight may still finish
    const idleFrom = statements;
    await sleep(200);
    expect(statements).toBe(idleFrom);

    const second = watchInBackground(replica.feed, query({ userId: uniqueId("idle") }));
    await waitFor(() => replica.feed.stats().attached === 1, "second stream at the tail");
    expect(statements).toBeGreaterThan(idleFrom);
    await second.stop();
  });
});

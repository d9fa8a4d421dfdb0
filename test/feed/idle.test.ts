/**
 * A replica's feed makes no queries while nobody subscribes: the tail reader
 * stops polling when its last stream ends and starts again with the next.
 * Counts every statement the feed's own pool sends (postgres.js `debug`).
 */
import postgres from "postgres";
import { afterAll, describe, expect, it } from "vitest";
import { databaseUrl, uniqueId } from "../support/app.js";
import { sleep, waitFor } from "../support/wait.js";
import { query, startFeed, watchInBackground } from "./feed-helpers.js";

let statements = 0;
const sql = postgres(databaseUrl(), { max: 4, onnotice: () => {}, debug: () => void statements++ });
const replica = startFeed(sql, { pollMs: 10, notify: false });
afterAll(async () => {
  await replica.close();
  await sql.end();
});

describe("idle feed", () => {
  it("stops querying when the last stream ends, and resumes with the next one", async () => {
    const first = watchInBackground(replica.feed, query({ userId: uniqueId("idle") }));
    await waitFor(() => replica.feed.stats().attached === 1, { message: "stream at the tail" });
    const before = statements;
    await waitFor(() => statements - before > 3, { timeoutMs: 1_000, message: "the feed polling every 10 ms" });
    expect(first.events()).toEqual([]); // and the stream is alive (this throws if it failed)
    await first.stop();
    expect(replica.feed.stats().subscribers).toBe(0);

    // A read in flight may still send its statement: wait for a quiet 50 ms
    // (five poll intervals). A feed that keeps polling never gets there.
    let seen = -1;
    await waitFor(
      () => {
        const quiet = statements === seen;
        seen = statements;
        return quiet;
      },
      { timeoutMs: 2_000, intervalMs: 50, message: "the feed to stop querying after its last stream ended" },
    );
    const idleFrom = statements;
    await sleep(200); // proves a negative: no query at all while nobody subscribes
    expect(statements).toBe(idleFrom);

    const second = watchInBackground(replica.feed, query({ userId: uniqueId("idle") }));
    await waitFor(() => replica.feed.stats().attached === 1, { message: "second stream at the tail" });
    expect(statements).toBeGreaterThan(idleFrom);
    await second.stop();
  });
});

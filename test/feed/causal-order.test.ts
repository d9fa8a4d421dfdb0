/**
 * Causal order under contention (WATCH.md): many concurrent Start, End and
 * Append calls on a few users through the real handlers. In delivery order,
 * every session's seq is 1, 2, 3, ... and each user's session.started and
 * session.ended events alternate. Breaks if the per-user advisory lock stops
 * being taken before the transaction id, or if the feed reorders rows.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, describe, expect, it } from "vitest";
import { ConflictPolicy } from "../../gen/sessionmanager/v1/session_manager_service_pb.js";
import { FEED_START, type FeedPosition } from "../../src/domain/cursor.js";
import { openTestDatabase, uniqueId } from "../support/app.js";
import { createInMemoryClient, type SessionClient } from "../support/rpc.js";
import { waitFor } from "../support/wait.js";
import { cursorsIncrease, query, seededRandom, tableOrder, watchInBackground } from "./feed-helpers.js";

const sql = openTestDatabase(20);
const app = createInMemoryClient(sql);
afterAll(async () => {
  await app.close();
  await sql.end();
});

const END: FeedPosition = { txId: (1n << 63n) - 1n, id: (1n << 63n) - 1n };
const EXPECTED_FAILURES = new Set([Code.FailedPrecondition, Code.NotFound]);

/** Runs `ops` random calls for one user; the user's current session is shared by its workers. */
async function worker(client: SessionClient, user: { id: string; current: string | null }, ops: number, random: () => number) {
  for (let i = 0; i < ops; i++) {
    const pick = random();
    try {
      if (pick < 0.3 || user.current === null) {
        const conflictPolicy = random() < 0.3 ? ConflictPolicy.SUPERSEDE : ConflictPolicy.REJECT;
        const started = await client.startSession({ recordId: uniqueId("rec"), userId: user.id, conflictPolicy });
        user.current = started.session!.sessionId;
      } else if (pick < 0.5) {
        await client.endSession({ recordId: uniqueId("rec"), sessionId: user.current });
      } else {
        await client.appendSessionEvent({ recordId: uniqueId("rec"), sessionId: user.current, type: "care.note", source: "causal-test" });
      }
    } catch (error) {
      // Losing a race (session already open or already ended) is expected; anything else is not.
      if (!(error instanceof ConnectError) || !EXPECTED_FAILURES.has(error.code)) throw error;
    }
  }
}

function checkCausalOrder(events: { sessionId: string; seq: number; type: string }[]) {
  const seqs = new Map<string, number[]>();
  for (const event of events) seqs.set(event.sessionId, [...(seqs.get(event.sessionId) ?? []), event.seq]);
  for (const [sessionId, list] of seqs) expect(list, sessionId).toEqual(list.map((_, i) => i + 1));
  const lifecycle = events.filter((event) => event.type.startsWith("session."));
  lifecycle.forEach((event, i) => {
    expect(event.type, `lifecycle event ${i}`).toBe(i % 2 === 0 ? "session.started" : "session.ended");
    if (i % 2 === 1) expect(event.sessionId).toBe(lifecycle[i - 1]!.sessionId);
  });
}

describe("causal order under contention", () => {
  it("delivers every session's seq densely and each user's started/ended alternately", async () => {
    const seed = Date.now() % 100_000;
    const random = seededRandom(seed);
    const users = Array.from({ length: 3 }, () => ({ id: uniqueId("causal"), current: null as string | null }));
    const perUser = users.map((user) => watchInBackground(app.feed, query({ userId: user.id })));
    const everything = watchInBackground(app.feed, query({}));
    const watchers = [...perUser, everything];
    await waitFor(() => watchers.every((w) => w.frames.some((f) => f.kind === "caught_up")), { message: "watchers caught up" });

    await Promise.all(users.flatMap((user) => Array.from({ length: 4 }, () => worker(app.client, user, 12, random))));

    const tables = await Promise.all(users.map((user) => tableOrder(sql, { userId: user.id }, FEED_START, END)));
    const mine = new Set(users.map((user) => user.id));
    const total = tables.reduce((sum, rows) => sum + rows.length, 0);
    const ours = () => everything.events().filter((frame) => mine.has(frame.event.userId));
    await waitFor(() => perUser.every((w, i) => w.events().length >= tables[i]!.length) && ours().length >= total, { message: `all events (seed ${seed})` });
    await Promise.all(watchers.map((w) => w.stop()));

    users.forEach((user, i) => {
      const delivered = perUser[i]!.events().map((frame) => frame.event);
      expect(delivered.map((event) => event.eventId), `user ${i}, seed ${seed}`).toEqual(tables[i]!.map((row) => row.eventId));
      expect(delivered.length).toBeGreaterThan(5);
      checkCausalOrder(delivered);
      checkCausalOrder(ours().map((frame) => frame.event).filter((event) => event.userId === user.id));
    });
    expect(ours().length).toBe(total);
    for (const w of watchers) {
      expect(w.failure()).toBeNull();
      expect(cursorsIncrease(w.frames)).toBe(true);
    }
  });
});

/**
 * LISTEN/NOTIFY is a wake-up only. On a database of its own (no other test
 * file's notifications or open transactions), with polling slowed to a
 * minute: a NOTIFY wakes the tail reader; FEED_NOTIFY off means no LISTEN at
 * all; a LISTEN connection that is killed reconnects and re-reads on its own
 * (notifications sent meanwhile are lost); commit announcements coalesce.
 */
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCommitNotifier, FEED_CHANNEL } from "../../src/feed/notifier.js";
import { uniqueId } from "../support/app.js";
import { createIsolatedDatabase, type IsolatedDatabase } from "../support/isolated-database.js";
import { sleep, waitFor } from "../support/wait.js";
import { insertEvent, insertSession, query, startFeed, watchInBackground } from "./feed-helpers.js";

const SLOW_POLL_MS = 60_000;
let db: IsolatedDatabase;
beforeAll(async () => {
  db = await createIsolatedDatabase("sm_feed_notify");
});
afterAll(() => db?.drop());

/** How long a written event must stay undelivered without a wake-up (polling is slowed to a minute). */
const QUIET_MS = 300;

/** Starts a feed and a caught-up watcher of a new user; returns a function that writes one event for that user. */
async function watchNewUser(notify: boolean) {
  const replica = startFeed(db.sql, { notify, pollMs: SLOW_POLL_MS, heartbeatMs: SLOW_POLL_MS });
  const userId = uniqueId("notify");
  const sessionId = uniqueId("sess");
  await insertSession(db.sql, userId, sessionId);
  const watcher = watchInBackground(replica.feed, query({ userId }));
  await waitFor(() => replica.feed.stats().attached === 1 && replica.feed.stats().hasListened === notify, { message: "watcher at the tail, LISTEN in place" });
  let seq = 0;
  const write = () => insertEvent(db.sql, { userId, sessionId, seq: ++seq, eventId: uniqueId("evt") });
  return { replica, watcher, write };
}

function listenBackends() {
  return db.sql<{ pid: number }[]>`
    select pid from pg_stat_activity where datname = current_database() and query ilike 'listen%' and pid <> pg_backend_pid()
  `;
}

describe("NOTIFY wake-ups", () => {
  it("delivers on a NOTIFY from any connection, and not before it", async () => {
    const { replica, watcher, write } = await watchNewUser(true);
    try {
      await write();
      await sleep(QUIET_MS); // proves a negative: no delivery without a wake-up
      expect(watcher.events()).toEqual([]); // throws if the stream died
      await db.sql`select pg_notify(${FEED_CHANNEL}, '')`;
      await waitFor(() => watcher.events().length === 1, { message: "woken by NOTIFY", timeoutMs: 5_000 });
    } finally {
      await watcher.stop();
      await replica.close();
    }
  });

  it("does not LISTEN with FEED_NOTIFY off; a local wake still reads", async () => {
    const { replica, watcher, write } = await watchNewUser(false);
    try {
      expect(await listenBackends()).toEqual([]);
      await write();
      await db.sql`select pg_notify(${FEED_CHANNEL}, '')`;
      await sleep(QUIET_MS); // proves a negative: a NOTIFY does not reach a feed that does not LISTEN
      expect(watcher.events()).toEqual([]); // throws if the stream died
      replica.feed.wake();
      await waitFor(() => watcher.events().length === 1, { message: "woken locally", timeoutMs: 5_000 });
    } finally {
      await watcher.stop();
      await replica.close();
    }
  });

  it("re-reads when the LISTEN connection comes back, without any NOTIFY", async () => {
    const { replica, watcher, write } = await watchNewUser(true);
    try {
      await write();
      await sleep(QUIET_MS); // proves a negative: no delivery without a wake-up
      expect(watcher.events()).toEqual([]); // throws if the stream died
      const backends = await listenBackends();
      expect(backends.length).toBe(1);
      await db.sql`select pg_terminate_backend(${backends[0]!.pid})`;
      await waitFor(() => watcher.events().length === 1, { message: "re-read after re-LISTEN", timeoutMs: 10_000 });
    } finally {
      await watcher.stop();
      await replica.close();
    }
  });

  it("sends one NOTIFY for a burst of commits", async () => {
    let received = 0;
    const listener = await db.sql.listen(FEED_CHANNEL, () => received++);
    let woken = 0;
    const notifier = createCommitNotifier({ sql: db.sql, wakeLocal: () => woken++, broadcast: true, coalesceMs: 50, log: pino({ level: "silent" }) });
    for (let i = 0; i < 100; i++) notifier.notify();
    await waitFor(() => received >= 1, { message: "the burst's first NOTIFY", timeoutMs: 5_000 });
    await sleep(QUIET_MS); // proves a negative: at most one more NOTIFY (the coalesced one) follows
    expect(woken).toBe(100);
    expect(received).toBeGreaterThanOrEqual(1);
    expect(received).toBeLessThanOrEqual(2);
    await notifier.close();
    await listener.unlisten();
  });
});

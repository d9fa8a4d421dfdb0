/**
 * The feed's wake-ups (src/feed/wake-ups.ts) when PostgreSQL is unreachable
 * as LISTEN starts: the poll keeps waking the reader, LISTEN comes into
 * place once PostgreSQL is back (postgres.js LISTENs again after it
 * reconnects), and then one NOTIFY wakes the reader once. (Asking for
 * LISTEN again at every poll tick registered the callback once per tick:
 * one NOTIFY then woke the reader as many times.) PostgreSQL's reachability
 * is a TCP relay in front of the test database that is closed, then opened.
 */
import net from "node:net";
import pino from "pino";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createWakeUps } from "../../src/feed/wake-ups.js";
import { freePort } from "../support/ports.js";
import { createIsolatedDatabase, type IsolatedDatabase } from "../support/isolated-database.js";
import { sleep, waitFor } from "../support/wait.js";

let db: IsolatedDatabase;
beforeAll(async () => {
  db = await createIsolatedDatabase("sm_wake_ups", 2);
});
afterAll(() => db?.drop());

/** Opens a TCP relay to `target` on `port`; resolves when it accepts connections. */
async function openRelay(port: number, target: URL): Promise<net.Server> {
  const relay = net.createServer((client) => {
    const upstream = net.connect(Number(target.port), target.hostname);
    client.pipe(upstream).pipe(client);
    client.on("error", () => upstream.destroy());
    upstream.on("error", () => client.destroy());
  });
  await new Promise<void>((resolve) => relay.listen(port, "127.0.0.1", resolve));
  return relay;
}

describe("feed wake-ups", () => {
  it("polls while LISTEN fails, LISTENs once PostgreSQL is back, and wakes once per NOTIFY", async () => {
    const target = new URL(db.url);
    const port = await freePort();
    const url = new URL(db.url);
    url.host = `127.0.0.1:${port}`;
    // Nothing listens on `port` yet: every connection is refused. A short backoff keeps the test short.
    const sql = postgres(url.toString(), { max: 1, onnotice: () => {}, backoff: () => 0.05 });
    const channel = `wake_ups_${process.pid}_${Date.now()}`;
    let wakes = 0;
    const wakeUps = createWakeUps({ sql, pollMs: 10, channel, wake: () => wakes++, log: pino({ level: "silent" }) });
    let relay: net.Server | undefined;
    try {
      wakeUps.start();
      await waitFor(() => wakes >= 20, { message: "20 poll ticks while PostgreSQL is unreachable" });
      expect(wakeUps.hasListened()).toBe(false);
      relay = await openRelay(port, target);
      await waitFor(() => wakeUps.hasListened(), { message: "LISTEN in place after PostgreSQL came back" });
      wakeUps.stop(); // no more poll ticks: from here on, only notifications wake
      await sleep(50);
      const before = wakes;
      await db.sql`select pg_notify(${channel}, '')`;
      await waitFor(() => wakes > before, { message: "a wake-up for the NOTIFY" });
      await sleep(200); // any further wake-ups for the same NOTIFY arrive together with the first
      expect(wakes - before).toBe(1);
    } finally {
      wakeUps.close();
      await sql.end({ timeout: 1 });
      relay?.close();
    }
  });
});

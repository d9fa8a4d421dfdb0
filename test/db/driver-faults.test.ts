/**
 * postgres.js (patched in patches/postgres+3.4.9.patch) under faults:
 * - a connection lost while it is being set up: every new connection first
 *   reads the server's array types (`fetch_types`), and nothing awaited that
 *   read, so a reset at that moment (PostgreSQL restarting, a backend
 *   terminated under load) was an unhandled rejection that ended the
 *   process. The connection is reset at the network layer, as the kernel
 *   would (ECONNRESET), exactly when the array-type query is written.
 * - a statement that fails, or loses its connection, after some of its rows
 *   arrived: the next statement on the connection got its rows behind that
 *   many holes (`const [row] = rows` was undefined: a session that exists
 *   read as SESSION_NOT_FOUND, seen under pg_terminate_backend), and a
 *   terminated backend's FATAL error also failed the first statement sent
 *   after the reconnect.
 */
import net from "node:net";
import { once } from "node:events";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "../support/wait.js";
import { createIsolatedDatabase, type IsolatedDatabase } from "../support/isolated-database.js";

let db: IsolatedDatabase;

beforeAll(async () => {
  db = await createIsolatedDatabase("driver_loss", 1);
});
afterAll(() => db.drop());

describe("postgres.js under faults", () => {
  it("fails the waiting query, not the process, when the connection resets while array types are read; the next query reconnects", async () => {
    const url = new URL(db.url);
    let resets = 0;
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => void unhandled.push(reason);
    process.on("unhandledRejection", onUnhandled);
    // `socket` (postgres.js's hook for a custom connection) is not in its types.
    const options = {
      max: 1,
      onnotice: () => {},
      // The first connection is reset as the array-type query goes out; later ones are left alone.
      socket: async () => {
        const socket = net.connect(Number(url.port), url.hostname);
        await once(socket, "connect");
        const write = socket.write;
        socket.write = function (this: net.Socket, chunk: unknown, ...rest: unknown[]) {
          if (resets === 0 && String(chunk).includes("typcategory")) {
            resets++;
            this.destroy(Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" }));
            return false;
          }
          return (write as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
        } as net.Socket["write"];
        return socket;
      },
    };
    const sql = postgres(db.url, options as postgres.Options<Record<string, postgres.PostgresType>>);
    try {
      await expect(sql`select 1 as one`).rejects.toMatchObject({ code: "ECONNRESET" });
      expect(await sql<[{ one: number }]>`select 1 as one`).toEqual([{ one: 1 }]);
      // An unhandled rejection is reported after the microtasks of the turn that made it.
      await new Promise((resolve) => setImmediate(resolve));
      expect({ resets, unhandled }).toEqual({ resets: 1, unhandled: [] });
    } finally {
      process.off("unhandledRejection", onUnhandled);
      await sql.end({ timeout: 1 });
    }
  });

  it("gives the next statement all its rows, from the first, after one failed mid-stream", async () => {
    const sql = postgres(db.url, { max: 1, onnotice: () => {} });
    try {
      // Three rows go out before the fourth divides by zero; the second statement is pipelined behind it.
      const failing = sql`select i, 1 / (4 - i) as boom from generate_series(1, 10) as i`.catch((error: { code?: string }) => error.code);
      const next = sql<{ x: number }[]>`select x from generate_series(1, 5) as x`;
      expect(await failing).toBe("22012");
      const rows = await next;
      expect({ length: rows.length, x: [...rows].map((row) => row?.x) }).toEqual({ length: 5, x: [1, 2, 3, 4, 5] });
    } finally {
      await sql.end({ timeout: 1 });
    }
  });

  it("answers the first statement on a reconnected connection with its own rows (from the first, and not the old backend's FATAL error) after the old one was lost mid-stream", async () => {
    const sql = postgres(db.url, { max: 1, onnotice: () => {} });
    const killer = postgres(db.url, { max: 1, onnotice: () => {} });
    try {
      const [{ pid }] = await sql<[{ pid: number }]>`select pg_backend_pid() as pid`;
      // Rows stream at once; the backend then sleeps inside the same statement until it is terminated.
      const lost = sql`select i, case when i = 4 then pg_sleep(30)::text end as wait from generate_series(1, 10) as i`.catch((error: { code?: string }) => error.code);
      await waitFor(async () => (await killer<{ n: number }[]>`select count(*)::int as n from pg_stat_activity where pid = ${pid} and wait_event = 'PgSleep'`)[0]!.n === 1);
      await killer`select pg_terminate_backend(${pid})`;
      expect(await lost).toMatch(/^(57P01|CONNECTION_CLOSED|ECONNRESET)$/);
      const rows = await sql<{ x: number }[]>`select x from generate_series(1, 5) as x`;
      expect({ length: rows.length, x: [...rows].map((row) => row?.x) }).toEqual({ length: 5, x: [1, 2, 3, 4, 5] });
    } finally {
      await Promise.all([sql.end({ timeout: 1 }), killer.end({ timeout: 1 })]);
    }
  });
});

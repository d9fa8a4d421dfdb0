/**
 * postgres.js (patched in patches/postgres+3.4.9.patch) when a connection is
 * lost while it is being set up: every new connection first reads the
 * server's array types (`fetch_types`), and nothing awaited that read, so a
 * reset connection at that moment (PostgreSQL restarting, a backend
 * terminated under load) was an unhandled rejection that ended the process.
 * The connection is reset here at the network layer, as the kernel would
 * (ECONNRESET), exactly when the array-type query is written.
 */
import net from "node:net";
import { once } from "node:events";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createIsolatedDatabase, type IsolatedDatabase } from "../support/isolated-database.js";

let db: IsolatedDatabase;

beforeAll(async () => {
  db = await createIsolatedDatabase("driver_loss", 1);
});
afterAll(() => db.drop());

describe("postgres.js connection setup", () => {
  it("fails the waiting query, not the process, when the connection resets while array types are read; the next query reconnects", async () => {
    const url = new URL(db.url);
    let resets = 0;
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => void unhandled.push(reason);
    process.on("unhandledRejection", onUnhandled);
    const sql = postgres(db.url, {
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
    });
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
});

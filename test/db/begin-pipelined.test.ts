/**
 * `beginPipelined` (src/db/database.ts; a patch of postgres.js's begin in
 * patches/postgres+3.4.9.patch) against a real PostgreSQL, on a pool of ONE
 * connection, so every check after a transaction runs on the connection the
 * transaction used: BEGIN goes out with the first statements, and COMMIT
 * with the last ones; a failing statement in the COMMIT's pipeline rolls
 * the whole transaction back; a statement issued after COMMIT is refused,
 * never run outside the transaction; a lost connection fails the
 * transaction, a statement the work still issues after that is refused (the
 * pool may have reconnected the same connection object for other work), and
 * the pool reconnects; the connection always comes back outside any
 * transaction.
 */
import net from "node:net";
import type postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { beginPipelined, openDatabase } from "../../src/db/database.js";
import { isDatabaseUnavailable } from "../../src/db/errors.js";
import { createIsolatedDatabase, type IsolatedDatabase } from "../support/isolated-database.js";
import { waitFor } from "../support/wait.js";

let db: IsolatedDatabase;
const originalWrite = net.Socket.prototype.write;

beforeAll(async () => {
  db = await createIsolatedDatabase("pipelined", 1);
  await db.sql`create table probe (k text primary key, v int not null check (v >= 0))`;
});
afterAll(() => db.drop());

async function stored(): Promise<Record<string, number>> {
  const rows = await db.sql<{ k: string; v: number }[]>`select k, v from probe`;
  return Object.fromEntries(rows.map((row) => [row.k, row.v]));
}

/** Tells whether the pool's connection is outside any transaction: then two statements are two transactions. */
async function outsideTransaction(): Promise<boolean> {
  const [first] = await db.sql<[{ id: string }]>`select txid_current()::text as id`;
  const [second] = await db.sql<[{ id: string }]>`select txid_current()::text as id`;
  return first.id !== second.id;
}

describe("beginPipelined", () => {
  it("runs the first statements inside the transaction and commits the last ones with COMMIT in one pipeline", async () => {
    await db.sql`delete from probe`;
    const [inserted, count] = await beginPipelined(db.sql, async (tx) => {
      const [first] = await tx<[{ v: number; tx: string }]>`insert into probe values ('a', 1) returning v, txid_current()::text as tx`;
      const [again] = await tx<[{ tx: string }]>`select txid_current()::text as tx`;
      expect(again.tx).toBe(first.tx);
      const [rows, counted] = await Promise.all([
        tx<{ k: string }[]>`insert into probe values ('b', ${first.v + 1}) returning k`,
        tx<[{ n: number }]>`select count(*)::int as n from probe`,
        tx.commit(),
      ]);
      return [rows, counted] as const;
    });
    expect(inserted.map((row) => row.k)).toEqual(["b"]);
    expect(count[0]!.n).toBe(2);
    expect(await stored()).toEqual({ a: 1, b: 2 });
    expect(await outsideTransaction()).toBe(true);
  });

  it("sends a transaction of two exchanges in two socket writes: BEGIN with the first, COMMIT with the last", async () => {
    await db.sql`delete from probe`;
    await db.sql`select 1`; // the pool's connection is open and its statements prepared below are not
    const writes = vi.spyOn(net.Socket.prototype, "write");
    try {
      await beginPipelined(db.sql, async (tx) => {
        await Promise.all([tx`select 1`, tx`select count(*) from probe`, tx`insert into probe values ('n', 1)`]);
        await Promise.all([tx`insert into probe values ('o', 1)`, tx`update probe set v = v + 1`, tx.commit()]);
      });
      const prepared = writes.mock.calls.length;
      writes.mockClear();
      await beginPipelined(db.sql, async (tx) => {
        await Promise.all([tx`select 1`, tx`select count(*) from probe`, tx`insert into probe values ('p', 1)`]);
        await Promise.all([tx`insert into probe values ('q', 1)`, tx`update probe set v = v + 1`, tx.commit()]);
      });
      expect({ prepared: prepared >= 2, writes: writes.mock.calls.length }).toEqual({ prepared: true, writes: 2 });
    } finally {
      writes.mockRestore();
    }
    expect(await stored()).toEqual({ n: 3, o: 3, p: 2, q: 2 });
  });

  it("rolls everything back when a statement in COMMIT's pipeline fails, although COMMIT went out behind it", async () => {
    await db.sql`delete from probe`;
    const failure = beginPipelined(db.sql, async (tx) => {
      await tx`insert into probe values ('c', 1)`;
      return Promise.all([tx`insert into probe values ('d', 1)`, tx`insert into probe values ('e', -1)`, tx`insert into probe values ('f', 1)`, tx.commit()]);
    });
    await expect(failure).rejects.toMatchObject({ code: "23514" });
    expect(await stored()).toEqual({});
    expect(await outsideTransaction()).toBe(true);
  });

  it("refuses a statement issued after COMMIT instead of running it outside the transaction", async () => {
    await db.sql`delete from probe`;
    const late = beginPipelined(db.sql, async (tx) => {
      await Promise.all([tx`insert into probe values ('k', 1)`, tx.commit()]);
      await tx`insert into probe values ('l', 1)`;
    });
    await expect(late).rejects.toMatchObject({ code: "AFTER_COMMIT" });
    expect(await stored()).toEqual({ k: 1 });
    expect(await outsideTransaction()).toBe(true);
  });

  it("rolls back when the work fails before committing, and commits by itself when the work does not", async () => {
    await db.sql`delete from probe`;
    const failure = beginPipelined(db.sql, async (tx) => {
      await tx`insert into probe values ('g', 1)`;
      throw new Error("decided not to commit");
    });
    await expect(failure).rejects.toThrow("decided not to commit");
    expect(await stored()).toEqual({});
    await beginPipelined(db.sql, async (tx) => {
      await tx`insert into probe values ('m', 1)`;
    });
    expect(await stored()).toEqual({ m: 1 });
    expect(await outsideTransaction()).toBe(true);
  });

  it("passes BEGIN's options", async () => {
    const [level] = await beginPipelined(db.sql, (tx) => tx<[{ level: string }]>`select current_setting('transaction_isolation') as level`, "isolation level repeatable read read only");
    expect(level.level).toBe("repeatable read");
  });

  it("fails with the connection's error when PostgreSQL drops it mid-transaction, refuses what the work still issues, and the pool reconnects", async () => {
    const other = openDatabase({ url: db.url, max: 1 });
    let pid = 0;
    try {
      const lost = beginPipelined(db.sql, async (tx) => {
        [{ pid }] = await tx<[{ pid: number }]>`insert into probe values ('i', 1) returning pg_backend_pid() as pid`;
        await other`select pg_terminate_backend(${pid})`;
        await waitFor(async () => (await other<[{ n: number }]>`select count(*)::int as n from pg_stat_activity where pid = ${pid}`)[0].n === 0);
        return Promise.all([tx`insert into probe values ('j', 1)`, tx.commit()]);
      });
      await expect(lost).rejects.toSatisfy(isDatabaseUnavailable);
      const [again] = await db.sql<[{ pid: number }]>`select pg_backend_pid() as pid`;
      expect(again.pid).not.toBe(pid);
      expect(await stored()).not.toHaveProperty("i");
      expect(await stored()).not.toHaveProperty("j");
    } finally {
      await other.end();
    }
  });
});

/**
 * postgres.js reserves a connection for a transaction in BEGIN's `onexecute`
 * hook; unpatched, `execute` skipped the hook when the socket asked to wait
 * or the connection's pipeline was full, so BEGIN ran on a connection the
 * pool went on sharing (later pool statements ran inside that transaction)
 * and `begin` failed with a TypeError that no caller could catch.
 */
describe.each([
  ["sql.begin", (work: (tx: postgres.TransactionSql) => Promise<unknown>, options: string) => db.sql.begin(options, work)],
  ["beginPipelined", (work: (tx: postgres.TransactionSql) => Promise<unknown>, options: string) => beginPipelined(db.sql, work, options)],
] as const)("%s reserves its connection", (_, begin) => {
  it("when the socket asks to wait as BEGIN is written", async () => {
    await db.sql`select 1`;
    // BEGIN's options may hold spaces: 17,000 of them make BEGIN a write past postgres.js's flush size.
    const options = "isolation level repeatable read read only" + " ".repeat(17_000);
    const writes = vi.spyOn(net.Socket.prototype, "write");
    writes.mockImplementation(function (this: net.Socket, ...args: unknown[]) {
      originalWrite.apply(this, args as never);
      return false; // the bytes went out; the socket only asks the writer to wait for "drain"
    } as never);
    let inside: string;
    try {
      [{ inside }] = await (begin(async (tx) => tx<[{ inside: string }]>`select current_setting('transaction_read_only') as inside`, options) as Promise<[{ inside: string }]>);
    } finally {
      writes.mockRestore();
    }
    expect(inside).toBe("on");
    expect(await outsideTransaction()).toBe(true);
  });

  it("when the connection's pipeline is full as BEGIN is handed to it", async () => {
    // postgres.js pipelines up to 100 statements per connection (max_pipeline): BEGIN comes
    // 99th to 103rd, so that one of these runs hands it over as the statement that fills the pipeline.
    const statement = (i: number) => db.sql<[{ i: number }]>`select ${i}::int as i`;
    await statement(0); // prepared: a statement not yet prepared is described first, alone
    for (let count = 98; count <= 102; count++) {
      const ahead = Array.from({ length: count }, (_, i) => statement(i).execute()); // sent now, not when awaited
      const [{ inside }] = (await begin(async (tx) => tx<[{ inside: string }]>`select current_setting('transaction_read_only') as inside`, "isolation level repeatable read read only")) as [{ inside: string }];
      expect((await Promise.all(ahead)).map(([row]) => row.i)).toEqual(Array.from({ length: count }, (_, i) => i));
      expect(inside).toBe("on");
      expect(await outsideTransaction()).toBe(true);
    }
  });
});

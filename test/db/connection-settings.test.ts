/**
 * The pool's session settings hold whatever the database's own defaults are: postgres.js reads a
 * timestamp by handing PostgreSQL's text to `new Date`, which only ISO output parses right, and
 * a bytea (an API key's secret hash) as hex.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase } from "../../src/db/database.js";
import { readClock } from "../../src/db/locks.js";
import { createIsolatedDatabase, type IsolatedDatabase } from "../support/isolated-database.js";

let db: IsolatedDatabase;

beforeAll(async () => {
  db = await createIsolatedDatabase("datestyle");
  const [row] = await db.sql<{ name: string }[]>`select current_database() as name`;
  // What a DBA in a day-month locale might set; new connections get it unless they say otherwise.
  await db.sql.unsafe(`alter database ${row!.name} set datestyle = 'SQL, DMY'`);
  await db.sql.unsafe(`alter database ${row!.name} set bytea_output = 'escape'`);
});

afterAll(async () => {
  await db.drop();
});

describe("a pool on a database whose DateStyle is not ISO and whose bytea_output is escape", () => {
  it("reads timestamps as stored (day 25 stays day 25, 3 December stays December)", async () => {
    const sql = openDatabase({ url: db.url, max: 1 });
    try {
      const [row] = await sql<{ style: string; a: Date; b: Date }[]>`
        select current_setting('datestyle') as style, '2030-01-25 10:00:00.123+00'::timestamptz as a, '2026-12-03 08:09:10+00'::timestamptz as b`;
      expect(row!.a.toISOString()).toBe("2030-01-25T10:00:00.123Z");
      expect(row!.b.toISOString()).toBe("2026-12-03T08:09:10.000Z");
      expect(row!.style).toMatch(/^ISO/);
      const clock = await readClock(sql);
      expect(Math.abs(clock.getTime() - Date.now())).toBeLessThan(60_000); // the database clock, read right
    } finally {
      await sql.end();
    }
  });

  it("reads bytea as stored", async () => {
    const sql = openDatabase({ url: db.url, max: 1 });
    try {
      const [row] = await sql<{ bytes: Buffer }[]>`select '\\x0102ff5c'::bytea as bytes`;
      expect([...row!.bytes]).toEqual([0x01, 0x02, 0xff, 0x5c]);
    } finally {
      await sql.end();
    }
  });
});

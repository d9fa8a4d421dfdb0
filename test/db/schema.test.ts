/**
 * The schema and migration runner against a real, migrated PostgreSQL:
 * constraints hold even for writers that bypass the service.
 */
import { afterAll, describe, expect, it } from "vitest";
import { readdirSync } from "node:fs";
import { MIGRATIONS_DIR, appliedMigration, migrate, newestMigration } from "../../src/db/migrate.js";
import { openTestDatabase, uniqueId } from "../support/app.js";

const sql = openTestDatabase();
afterAll(() => sql.end());

async function insertSession(userId: string, sessionId: string, state: "active" | "paused" | "ended") {
  const ended = state === "ended";
  await sql`
    insert into sessions (user_id, session_id, session_index, state, start_time, end_time, last_activity_time, expire_time, idle_timeout_ms, end_reason, last_seq, last_hash)
    values (${userId}, ${sessionId}, 1, ${state}, now(), ${ended ? new Date() : null}, now(), ${state === "active" ? new Date() : null}, 1000, ${ended ? "client" : null}, 1, '')
  `;
}

async function sqlState(run: () => Promise<unknown>): Promise<string | null> {
  try {
    await run();
    return null;
  } catch (error) {
    return (error as { code?: string }).code ?? "unknown";
  }
}

describe("migrations", () => {
  it("apply once when several replicas migrate at the same time", async () => {
    const results = await Promise.all([migrate(sql), migrate(sql), migrate(sql)]);
    expect(results).toEqual([[], [], []]);
    const rows = await sql<{ version: string }[]>`select version from schemaversion order by version`;
    const files = readdirSync(MIGRATIONS_DIR).filter((name) => /^\d+\.do\./.test(name));
    expect(rows.map((row) => Number(row.version))).toEqual([0, ...files.map((name) => Number(name.split(".")[0])).sort((a, b) => a - b)]);
    expect(await appliedMigration(sql)).toBe(newestMigration());
  });
});

describe("schema", () => {
  it("allows one open (active or paused) session per user, any number of ended ones", async () => {
    const userId = uniqueId("user");
    await insertSession(userId, uniqueId("sess"), "ended");
    await insertSession(userId, uniqueId("sess"), "ended");
    await insertSession(userId, uniqueId("sess"), "paused");
    expect(await sqlState(() => insertSession(userId, uniqueId("sess"), "active"))).toBe("23505");
    await insertSession(uniqueId("user"), uniqueId("sess"), "active");
  });

  it("rejects an ended session without end_time or end_reason", async () => {
    const code = await sqlState(
      () => sql`
        insert into sessions (user_id, session_id, session_index, state, start_time, last_activity_time, idle_timeout_ms, last_seq, last_hash)
        values (${uniqueId("user")}, ${uniqueId("sess")}, 1, 'ended', now(), now(), 1000, 1, '')
      `,
    );
    expect(code).toBe("23514");
  });

  it("keeps record_id unique per user and seq unique per session", async () => {
    const userId = uniqueId("user");
    const sessionId = uniqueId("sess");
    await insertSession(userId, sessionId, "active");
    const insertEvent = (seq: number, recordId: string) => sql`
      insert into session_events (user_id, session_id, seq, event_id, record_id, request_hash, type, event_time, receive_time, source, hash)
      values (${userId}, ${sessionId}, ${seq}, ${uniqueId("evt")}, ${recordId}, 'h', 't', now(), now(), 's', '')
    `;
    await insertEvent(1, "r1");
    expect(await sqlState(() => insertEvent(2, "r1"))).toBe("23505");
    expect(await sqlState(() => insertEvent(1, "r2"))).toBe("23505");
  });

  it("rejects UPDATE, DELETE and TRUNCATE on the event log; DELETE only with the prune setting", async () => {
    const userId = uniqueId("user");
    const sessionId = uniqueId("sess");
    await insertSession(userId, sessionId, "ended");
    await sql`
      insert into session_events (user_id, session_id, seq, event_id, record_id, request_hash, type, event_time, receive_time, source, hash)
      values (${userId}, ${sessionId}, 1, ${uniqueId("evt")}, ${uniqueId("rec")}, 'h', 't', now(), now(), 's', '')
    `;
    expect(await sqlState(() => sql`update session_events set payload = '{"x":1}' where user_id = ${userId}`)).toBe("42501");
    expect(await sqlState(() => sql`delete from session_events where user_id = ${userId}`)).toBe("42501");
    expect(await sqlState(() => sql.begin((tx) => tx`truncate session_events`))).toBe("42501");
    const deleted = await sql.begin(async (tx) => {
      await tx`select set_config('session_manager.prune', 'on', true)`;
      return tx`delete from session_events where user_id = ${userId} returning 1`;
    });
    expect(deleted).toHaveLength(1);
    expect(await sqlState(() => sql`delete from session_events where user_id = ${userId}`)).toBeNull();
  });
});

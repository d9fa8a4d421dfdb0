/**
 * `session-manager prune` killed with SIGKILL midway, then run again: every
 * ended session is archived whole and removed exactly once; nothing else is
 * touched.
 */
import { spawn, execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createIsolatedDatabase, type IsolatedDatabase } from "../support/isolated-database.js";
import { waitFor } from "../support/wait.js";

const run = promisify(execFile);
const SESSIONS = 3000;
let db: IsolatedDatabase;
const archiveDir = mkdtempSync(join(tmpdir(), "sm-prune-crash-"));

beforeAll(async () => {
  db = await createIsolatedDatabase("sm_prune_crash");
  // Ended sessions with 3 events each, plus open ones that must survive.
  await db.sql`
    with s as (
      insert into sessions (user_id, session_id, session_index, state, start_time, end_time, last_activity_time, idle_timeout_ms, end_reason, last_seq, last_hash)
      select 'old-' || n, 'sess_old_' || n, 1, 'ended', now() - interval '2 days', now() - interval '1 day', now() - interval '1 day', 1000, 'client', 3, 'h'
      from generate_series(1, ${SESSIONS}) as n
      returning user_id, session_id
    )
    insert into session_events (user_id, session_id, seq, event_id, record_id, request_hash, type, event_time, receive_time, source, payload, hash)
    select user_id, session_id, seq, 'evt_' || session_id || '_' || seq, 'rec-' || session_id || '-' || seq, 'h', 't', now(), now(), 's', jsonb_build_object('seq', seq), 'h'
    from s, generate_series(1, 3) as seq
  `;
  await db.sql`
    insert into sessions (user_id, session_id, session_index, state, start_time, last_activity_time, expire_time, idle_timeout_ms, last_seq, last_hash)
    select 'open-' || n, 'sess_open_' || n, 1, 'active', now() - interval '2 days', now(), now() + interval '1 hour', 3600000, 0, ''
    from generate_series(1, 10) as n
  `;
});
afterAll(async () => {
  await db.drop();
  rmSync(archiveDir, { recursive: true, force: true });
});

const args = ["bin/session-manager.js", "prune", "--ended-before", new Date().toISOString(), "--archive", archiveDir];
const env = () => ({ ...process.env, DATABASE_URL: db.url, LOG_LEVEL: "silent" });

async function remaining(): Promise<{ ended: number; open: number; events: number }> {
  const [row] = await db.sql<[{ ended: string; open: string; events: string }]>`
    select (select count(*) from sessions where state = 'ended') as ended,
           (select count(*) from sessions where state <> 'ended') as open,
           (select count(*) from session_events) as events
  `;
  return { ended: Number(row.ended), open: Number(row.open), events: Number(row.events) };
}

describe("prune after a crash", () => {
  it("finishes correctly when run again after SIGKILL midway", async () => {
    const child = spawn("node_modules/.bin/node", args, { env: env(), stdio: "ignore" });
    const exited = new Promise((resolve) => child.once("exit", resolve));
    // Kill it once some sessions are archived and some removed, well before the end.
    try {
      await waitFor(async () => (await remaining()).ended <= SESSIONS - 400 && readdirSync(archiveDir).length >= 400, {
        timeoutMs: 60_000,
        intervalMs: 5,
        message: "prune to archive and remove 400 sessions",
      });
    } finally {
      child.kill("SIGKILL");
      await exited;
    }
    const midway = await remaining();
    expect(midway.ended).toBeGreaterThan(0);
    expect(midway.ended).toBeLessThan(SESSIONS);

    const { stdout } = await run("node_modules/.bin/node", args, { env: env() });
    expect(stdout).toMatch(new RegExp(`^removed ${midway.ended} sessions and ${midway.ended * 3} events`));
    expect(await remaining()).toEqual({ ended: 0, open: 10, events: 0 });

    const files = readdirSync(archiveDir).sort();
    expect(files).toHaveLength(SESSIONS);
    expect(files.every((file) => /^sess_old_\d+\.jsonl$/.test(file))).toBe(true);
    for (const file of files.filter((_, i) => i % 97 === 0)) {
      const lines = readFileSync(join(archiveDir, file), "utf8").trim().split("\n").map((line) => JSON.parse(line));
      expect(lines.map((line) => line.seq)).toEqual([1, 2, 3]);
      expect(lines.every((line) => `${line.subject}.jsonl` === file)).toBe(true);
    }
  });
});

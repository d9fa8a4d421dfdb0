/**
 * Sweepers against a real, isolated PostgreSQL: exactly-once ends under
 * concurrency, and heartbeats racing the deadline.
 */
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase } from "../../src/db/database.js";
import { createSessionService } from "../../src/service/session-service.js";
import { createSweeper, type Sweeper } from "../../src/service/sweeper.js";
import { uniqueId } from "../support/app.js";
import { createIsolatedDatabase, type IsolatedDatabase } from "../support/isolated-database.js";
import { sleep, waitFor } from "../support/wait.js";

const log = pino({ level: "silent" });
let db: IsolatedDatabase;
beforeAll(async () => {
  db = await createIsolatedDatabase("sm_sweeper", 30);
});
afterAll(() => db.drop());

/** Starts `count` sweepers, each with its own pool, as separate replicas would have. */
function startSweepers(count: number, intervalMs: number) {
  const pools = Array.from({ length: count }, () => openDatabase({ url: db.url, max: 3 }));
  const sweepers: Sweeper[] = pools.map((sql) => createSweeper({ sql, log, intervalMs, batchSize: 500 }));
  for (const sweeper of sweepers) sweeper.start();
  return async () => {
    await Promise.all(sweepers.map((sweeper) => sweeper.stop()));
    await Promise.all(pools.map((sql) => sql.end()));
  };
}

async function lapsedOpenCount(prefix: string): Promise<number> {
  const [row] = await db.sql<[{ n: string }]>`
    select count(*)::text as n from sessions where user_id like ${`${prefix}%`} and state <> 'ended'
  `;
  return Number(row.n);
}

describe("sweepers", () => {
  it("end 10,000 sessions expiring in the same second exactly once, within two intervals, three sweepers at once", async () => {
    const prefix = uniqueId("bulk");
    const count = 10_000;
    const intervalMs = 5_000; // the default SWEEP_INTERVAL_MS
    // Bulk-create sessions (with their started events) whose idle deadline is 1 s from now.
    await db.sql`
      with s as (
        insert into sessions (user_id, session_id, session_index, state, start_time, last_activity_time, expire_time, idle_timeout_ms, last_seq, last_hash)
        select ${prefix} || '-' || n, 'sess_bulk_' || n, 1, 'active', now(), now(), now() + interval '1 second', 1000, 1, 'h'
        from generate_series(1, ${count}) as n
        returning user_id, session_id
      )
      insert into session_events (user_id, session_id, seq, event_id, record_id, request_hash, type, event_time, receive_time, source, hash)
      select user_id, session_id, 1, 'evt_' || session_id, 'start-' || session_id, 'h', 'session.started', now(), now(), 'session_manager', 'h'
      from s
    `;
    const [{ deadline }] = await db.sql<[{ deadline: Date }]>`select max(expire_time) as deadline from sessions where user_id like ${`${prefix}%`}`;
    const stop = startSweepers(3, intervalMs);
    let finishedAt: number;
    try {
      await waitFor(async () => (await lapsedOpenCount(prefix)) === 0, { timeoutMs: 30_000, intervalMs: 50, message: `the sweepers to end all ${count} sessions` });
      finishedAt = Date.now();
    } finally {
      await stop();
    }

    expect(await lapsedOpenCount(prefix)).toBe(0);
    const [check] = await db.sql<[{ sessions: string; ends: string; dup: string; wrong: string }]>`
      select
        (select count(*) from sessions where user_id like ${`${prefix}%`} and state = 'ended' and end_reason = 'idle_timeout') as sessions,
        (select count(*) from session_events where user_id like ${`${prefix}%`} and type = 'session.ended') as ends,
        (select count(*) from (
          select session_id from session_events where user_id like ${`${prefix}%`} and type = 'session.ended'
          group by session_id having count(*) > 1) d) as dup,
        (select count(*) from sessions where user_id like ${`${prefix}%`} and (end_time <> last_activity_time or last_seq <> 2)) as wrong
    `;
    expect(check).toEqual({ sessions: String(count), ends: String(count), dup: "0", wrong: "0" });
    const lagMs = finishedAt - deadline.getTime();
    console.log(`sweepers: ${count} sessions ended ${lagMs} ms after their deadline (interval ${intervalMs} ms)`);
    expect(lagMs).toBeLessThan(2 * intervalMs);
  });

  it("never times out a session whose heartbeat committed inside its window; one end event per session", async () => {
    const service = createSessionService({ sql: db.sql, defaultIdleTimeoutMs: 1_000, log });
    const users = Array.from({ length: 40 }, () => uniqueId("race"));
    const started = await Promise.all(users.map((userId) => service.startSession({
      recordId: uniqueId("rec"), userId, performerId: "", eventTime: null, idleTimeoutMs: 300, maxDurationMs: null, metadata: {}, isTrainingData: false, conflictPolicy: "reject",
    })));
    const stop = startSweepers(3, 20);
    // Each session gets heartbeats at random moments around its deadline; some land in time, some too late.
    const lastCommitted = new Map<string, number>();
    try {
      await Promise.all(
        started.map(async ({ session }) => {
          lastCommitted.set(session.sessionId, session.lastActivityTime.getTime());
          for (let i = 0; i < 4; i++) {
            await sleep(150 + Math.random() * 250); // the workload's timing: no heartbeat committed in time may be overruled
            try {
              const touched = await service.heartbeatSession(session.sessionId);
              lastCommitted.set(session.sessionId, touched.lastActivityTime.getTime());
            } catch (error) {
              expect((error as { reason?: string }).reason).toBe("SESSION_ENDED");
            }
          }
          if (Math.random() < 0.5) {
            // Ending a session a sweeper has already ended answers with its recorded end, not an error.
            const { session: ended } = await service.endSession({ recordId: uniqueId("rec"), sessionId: session.sessionId, performerId: "", eventTime: null });
            expect(ended.state).toBe("ended");
          }
        }),
      );
      await waitFor(
        async () => {
          const [{ open }] = await db.sql<[{ open: number }]>`select count(*)::int as open from sessions where user_id in ${db.sql(users)} and state <> 'ended'`;
          return open === 0;
        },
        { timeoutMs: 10_000, message: "the sweepers to end every lapsed session" },
      );
    } finally {
      await stop();
    }

    const rows = await db.sql<{ session_id: string; state: string; end_reason: string | null; end_time: Date | null; ends: string }[]>`
      select s.session_id, s.state, s.end_reason, s.end_time,
        (select count(*) from session_events e where e.user_id = s.user_id and e.session_id = s.session_id and e.type = 'session.ended') as ends
      from sessions s
      where s.user_id in ${db.sql(users)}
    `;
    expect(rows).toHaveLength(users.length);
    let timedOut = 0;
    for (const row of rows) {
      expect(row.state).toBe("ended");
      expect(row.ends).toBe("1");
      if (row.end_reason === "idle_timeout") {
        timedOut++;
        // The recorded end is the last committed activity: no committed heartbeat was overruled.
        expect(row.end_time!.getTime()).toBe(lastCommitted.get(row.session_id));
      }
    }
    expect(timedOut).toBeGreaterThan(0);
  });
});
